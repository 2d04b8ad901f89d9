package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"image/color"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/api/inflight"
	"github.com/prepred/prepred/prep/internal/fakepred"
	"github.com/prepred/prepred/prep/internal/httpapi"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestParseConfig(t *testing.T) {
	defaults := config{
		httpAddr: ":8000", predAddress: "localhost:50051", model: "resnet50",
		requestTimeout: 10 * time.Second, maxRequestTimeout: time.Minute, maxBodyBytes: 32 << 20, maxPixels: 50_000_000,
		maxBatchImages: 32, logLevel: zapcore.InfoLevel,
		overload: overloadConfig{maxInflightBytes: inflight.DefaultLimit(), maxDecodeBytes: httpapi.DefaultMaxDecodeBytes, maxConnections: 1024, readTimeout: time.Minute},
	}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want func(c *config)
	}{
		{"defaults", nil, nil, func(*config) {}},
		{"environment", nil, map[string]string{
			"PREP_HTTP_ADDR": "127.0.0.1:9000", "PRED_ADDRESS": "pred:1", "PREP_MODEL": "colors", "PREP_MODEL_VERSION": "3",
			"PREP_REQUEST_TIMEOUT": "1500ms", "PREP_MAX_REQUEST_TIMEOUT": "20s", "PREP_MAX_BODY_BYTES": "1024", "PREP_MAX_PIXELS": "99",
			"PREP_MAX_BATCH_IMAGES": "4", "PREP_LOG_LEVEL": "debug",
			"PREP_MAX_INFLIGHT_BYTES": "4096", "PREP_MAX_DECODE_BYTES": "2048", "PREP_MAX_CONNECTIONS": "10", "PREP_READ_TIMEOUT": "3s",
		}, func(c *config) {
			*c = config{httpAddr: "127.0.0.1:9000", predAddress: "pred:1", model: "colors", modelVersion: 3,
				requestTimeout: 1500 * time.Millisecond, maxRequestTimeout: 20 * time.Second, maxBodyBytes: 1024, maxPixels: 99,
				maxBatchImages: 4, logLevel: zapcore.DebugLevel,
				overload: overloadConfig{maxInflightBytes: 4096, maxDecodeBytes: 2048, maxConnections: 10, readTimeout: 3 * time.Second}}
		}},
		{"flags win over the environment",
			[]string{"--model", "resnet50", "--request-timeout=2s", "-log-level", "warn"},
			map[string]string{"PREP_MODEL": "colors", "PREP_REQUEST_TIMEOUT": "5s", "PRED_ADDRESS": "pred:2"},
			func(c *config) {
				c.requestTimeout, c.logLevel, c.predAddress = 2*time.Second, zapcore.WarnLevel, "pred:2"
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseConfig(tt.args, envOf(tt.env), &bytes.Buffer{})
			if err != nil {
				t.Fatal(err)
			}
			want := defaults
			tt.want(&want)
			if got != want {
				t.Errorf("config = %+v\nwant     %+v", got, want)
			}
		})
	}
}

func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"bad environment value", nil, map[string]string{"PREP_REQUEST_TIMEOUT": "soon"}, "PREP_REQUEST_TIMEOUT"},
		{"bad flag value", []string{"--max-body-bytes", "lots"}, nil, "max-body-bytes"},
		{"unknown flag", []string{"--colour"}, nil, "colour"},
		{"stray argument", []string{"colors"}, nil, "unexpected arguments"},
		{"zero timeout", []string{"--request-timeout", "0s"}, nil, "request-timeout"},
		{"timeout above its cap", []string{"--request-timeout", "2m"}, nil, "max-request-timeout"},
		{"zero batch", []string{"--max-batch-images", "0"}, nil, "max-batch-images"},
		{"negative version", []string{"--model-version", "-1"}, nil, "model-version"},
		{"empty model", nil, map[string]string{"PREP_MODEL": ""}, ""},
		{"bad log level", []string{"--log-level", "loud"}, nil, "log-level"},
		{"budget below the body limit", []string{"--max-inflight-bytes", "1000"}, nil, "max-inflight-bytes"},
		{"zero decode budget", []string{"--max-decode-bytes", "0"}, nil, "max-decode-bytes"},
		{"negative connections", []string{"--max-connections", "-1"}, nil, "max-connections"},
		{"zero read timeout", []string{"--read-timeout", "0s"}, nil, "read-timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfig(tt.args, envOf(tt.env), &bytes.Buffer{})
			if tt.want == "" {
				if err != nil {
					t.Errorf("an empty variable is unset, yet: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("parseConfig = %v, want an error naming %q", err, tt.want)
			}
		})
	}
}

func TestRunHelp(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-h"}, envOf(nil), &out); err != nil {
		t.Fatalf("run -h = %v", err)
	}
	for _, want := range []string{"-pred-address", "PRED_ADDRESS", "-max-pixels", "PREP_MAX_PIXELS"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("usage lacks %q:\n%s", want, out.String())
		}
	}
	if _, err := parseConfig([]string{"-h"}, envOf(nil), &out); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("parseConfig -h = %v", err)
	}
}

func TestRunFailsOnBusyAddress(t *testing.T) {
	p := startPrep(t, "--http-addr", "127.0.0.1:0", "--pred-address", "127.0.0.1:1", "--model", "colors")
	addr := strings.TrimPrefix(p.URL, "http://")
	err := run(context.Background(), []string{"--http-addr", addr, "--model", "colors"}, envOf(nil), &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), addr) {
		t.Errorf("run on a busy address = %v", err)
	}
}

// TestGracefulShutdown: a request in flight when prep is told to stop is
// answered, then run returns nil.
func TestGracefulShutdown(t *testing.T) {
	md := fakepred.ColorsMetadata()
	pred := fakepred.Start(t, md)
	entered, release := make(chan struct{}), make(chan struct{})
	model := fakepred.ColorsModel(md)
	pred.SetPredict(func(ctx context.Context, req *predv1.PredictRequest) (*predv1.PredictResponse, error) {
		close(entered)
		<-release
		return model(ctx, req)
	})
	p := startPrep(t, "--http-addr", "127.0.0.1:0", "--pred-address", pred.Addr, "--model", "colors")
	p.waitContract(t)

	type result struct {
		r   httpResponse
		err error
	}
	answered := make(chan result, 1)
	body := []byte(`{"data": "` + base64.StdEncoding.EncodeToString(solidJPEG(t, 40, 30, color.RGBA{0, 0, 240, 255})) + `"}`)
	go func() {
		r, err := tryCall(http.MethodPost, p.URL+"/predict/label", "application/json", body)
		answered <- result{r, err}
	}()
	select {
	case <-entered:
	case <-time.After(callTimeout):
		t.Fatal("the request did not reach pred")
	}
	p.cancel()
	p.waitLog(t, stopTimeout, func(m map[string]any) bool { return m["msg"] == "shutting down" })
	close(release)

	res := <-answered
	if res.err != nil {
		t.Fatal(res.err)
	}
	if r := res.r; r.status != http.StatusOK || string(r.body) != `{"prediction":"blue"}` {
		t.Errorf("in-flight request got %d %s", r.status, r.body)
	}
	if err := p.stop(t); err != nil {
		t.Errorf("run = %v, want nil", err)
	}
}
