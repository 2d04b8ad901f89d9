package main

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/prepred/prepred/api/inflight"
	"github.com/prepred/prepred/pred/internal/grpcserver"
)

// defaultOverload is the overload configuration without flags.
var defaultOverload = overloadConfig{
	maxInflightBytes:         inflight.DefaultLimit(),
	maxConnections:           defaultMaxConnections,
	httpReadTimeout:          defaultHTTPReadTimeout,
	grpcMaxConcurrentStreams: grpcserver.DefaultMaxConcurrentStreams,
}

func TestParseOverloadConfig(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    overloadConfig
		wantErr string
	}{
		{name: "defaults", want: defaultOverload},
		{name: "environment", env: map[string]string{
			"PRED_MAX_INFLIGHT_BYTES": "1048576", "PRED_MAX_CONNECTIONS": "8", "PRED_HTTP_READ_TIMEOUT": "2s", "PRED_GRPC_MAX_CONCURRENT_STREAMS": "4",
		}, want: overloadConfig{maxInflightBytes: 1 << 20, maxConnections: 8, httpReadTimeout: 2 * time.Second, grpcMaxConcurrentStreams: 4}},
		{name: "flag wins", args: []string{"--max-connections", "0"}, env: map[string]string{"PRED_MAX_CONNECTIONS": "8"},
			want: overloadConfig{maxInflightBytes: inflight.DefaultLimit(), httpReadTimeout: defaultHTTPReadTimeout, grpcMaxConcurrentStreams: grpcserver.DefaultMaxConcurrentStreams}},
		{name: "zero budget", args: []string{"--max-inflight-bytes", "0"}, wantErr: "--max-inflight-bytes"},
		{name: "negative connections", args: []string{"--max-connections", "-1"}, wantErr: "--max-connections"},
		{name: "bad timeout", args: []string{"--http-read-timeout", "0s"}, wantErr: "--http-read-timeout"},
		{name: "zero streams", args: []string{"--grpc-max-concurrent-streams", "0"}, wantErr: "--grpc-max-concurrent-streams"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseConfig(tt.args, func(k string) string { return tt.env[k] }, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseConfig = %v, want an error naming %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.overload != tt.want {
				t.Errorf("overload = %+v, want %+v", c.overload, tt.want)
			}
		})
	}
}
