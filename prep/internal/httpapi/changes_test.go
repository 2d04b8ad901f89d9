package httpapi

import (
	"context"
	"image/color"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/prep/internal/fakepred"
	"github.com/prepred/prepred/prep/internal/imageprep"
	"github.com/prepred/prepred/prep/internal/predclient"
)

// scrape returns the value of the first sample of /metrics whose line
// starts with prefix (a name, or a name with its first labels), "" for
// none.
func scrape(t *testing.T, url, prefix string) string {
	t.Helper()
	r := do(t, http.MethodGet, url+"/metrics", "", nil)
	for line := range strings.SplitSeq(string(r.body), "\n") {
		if strings.HasPrefix(line, prefix) {
			if i := strings.LastIndexByte(line, ' '); i > 0 {
				return line[i+1:]
			}
		}
	}
	return ""
}

// TestClientGoneIs499: a client that disconnects while pred works on its
// request is logged and counted with status 499 (client closed request),
// not as a 503 of prep or pred.
func TestClientGoneIs499(t *testing.T) {
	md := fakepred.ColorsMetadata()
	pred := fakepred.Start(t, md)
	arrived := make(chan struct{}, 1)
	pred.SetPredict(func(ctx context.Context, _ *predv1.PredictRequest) (*predv1.PredictResponse, error) {
		arrived <- struct{}{}
		<-ctx.Done() // held until prep cancels the call
		return nil, ctx.Err()
	})
	client, err := predclient.New(predclient.Config{Target: pred.Addr, Model: "colors", Limits: imageprep.Limits{MaxPixels: testMaxPixels}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if _, err := client.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.InfoLevel)
	srv := httptest.NewServer(New(Config{Client: client, Logger: zap.New(core), RequestTimeout: testTimeout, MaxBodyBytes: testMaxBody}))
	t.Cleanup(srv.Close)

	reqCtx, cancelReq := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(reqCtx, http.MethodPost, srv.URL+"/predict/label", strings.NewReader(jsonBody(solidJPEG(t, 16, 16, color.White))))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	done := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	select {
	case <-arrived:
	case <-ctx.Done():
		t.Fatal("the request did not reach pred")
	}
	cancelReq()
	if err := <-done; err == nil {
		t.Fatal("the cancelled request got an answer")
	}

	var entry observer.LoggedEntry
	for {
		if found := logs.FilterMessage("request").FilterField(zap.String("route", "/predict/label")).All(); len(found) > 0 {
			entry = found[0]
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("no access log line for the cancelled request")
		case <-time.After(5 * time.Millisecond):
		}
	}
	fields := entry.ContextMap()
	if fields["status"] != int64(StatusClientClosedRequest) || fields["error_code"] != codeClientClosedRequest {
		t.Errorf("access log: status %v error_code %v, want 499 %s", fields["status"], fields["error_code"], codeClientClosedRequest)
	}
	if entry.Level != zapcore.InfoLevel {
		t.Errorf("access log level %v, want info (not a server fault)", entry.Level)
	}
	if got := scrape(t, srv.URL, `prep_http_requests_total{code="499",method="POST",route="/predict/label"}`); got != "1" {
		t.Errorf("prep_http_requests_total for 499 = %q, want 1", got)
	}
	if got := scrape(t, srv.URL, `prep_http_requests_total{code="503"`); got != "" {
		t.Errorf("a 503 was counted: %s", got)
	}
}

// TestReadyModel: /ready?model= answers for another model than the
// default, 404 for one pred does not have, 400 for an invalid name.
func TestReadyModel(t *testing.T) {
	api := startAPI(t, testTimeout, true)
	inverse := fakepred.ColorsMetadata()
	inverse.Model, inverse.Version = "inverse", 3
	api.pred.AddModel(inverse)
	tests := []struct {
		path   string
		status int
		code   string
		body   string
	}{
		{"/ready", http.StatusOK, "", `"model":"colors"`},
		{"/ready?model=colors", http.StatusOK, "", `"version":1`},
		{"/ready?model=inverse", http.StatusOK, "", `"version":3`},
		{"/ready?model=nope", http.StatusNotFound, codeModelNotFound, `nope`},
		{"/ready?model=inverse&version=2", http.StatusNotFound, codeModelNotFound, `no version 2`},
		{"/ready?model=a%20b", http.StatusBadRequest, codeBadRequest, `model name`},
	}
	for _, tt := range tests {
		r := do(t, http.MethodGet, api.url+tt.path, "", nil)
		if tt.code != "" {
			if msg := wantError(t, r, tt.status, tt.code); !strings.Contains(msg, tt.body) {
				t.Errorf("%s: message %q lacks %q", tt.path, msg, tt.body)
			}
			continue
		}
		if r.status != tt.status || !strings.Contains(string(r.body), tt.body) {
			t.Errorf("%s: %d %s, want %d with %s", tt.path, r.status, r.body, tt.status, tt.body)
		}
	}
}
