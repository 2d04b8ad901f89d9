package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/prepred/prepred/prep/internal/apikey"
	"github.com/prepred/prepred/prep/internal/fakepred"
	"github.com/prepred/prepred/prep/internal/imageprep"
	"github.com/prepred/prepred/prep/internal/predclient"
)

// startKeyedAPI serves the API in front of a fake colors pred, requiring
// the keys k-one and k-two, logging to the returned observer.
func startKeyedAPI(t *testing.T) (*httptest.Server, *observer.ObservedLogs) {
	t.Helper()
	md := fakepred.ColorsMetadata()
	pred := fakepred.Start(t, md)
	pred.SetPredict(fakepred.ColorsModel(md))
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
	keys, err := apikey.New(apikey.Options{Keys: []string{"k-one", "k-two"}})
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.DebugLevel)
	srv := httptest.NewServer(New(Config{Client: client, RequestTimeout: testTimeout, MaxBodyBytes: testMaxBody, APIKeys: keys, Logger: zap.New(core)}))
	t.Cleanup(srv.Close)
	return srv, logs
}

func TestAPIKeys(t *testing.T) {
	srv, logs := startKeyedAPI(t)
	body := jsonBody(solidJPEG(t, 64, 64, red))

	post := func(path string, header ...string) response {
		return do(t, http.MethodPost, srv.URL+path, "application/json", strings.NewReader(body), header...)
	}
	for _, tc := range []struct {
		name   string
		header []string
		reason string
	}{
		{"no key", nil, "missing"},
		{"wrong bearer", []string{"Authorization", "Bearer k-three"}, "invalid"},
		{"prefix of a key", []string{"X-API-Key", "k-on"}, "invalid"},
		{"other scheme", []string{"Authorization", "Basic k-one"}, "missing"},
	} {
		r := post("/predict/label", tc.header...)
		wantError(t, r, http.StatusUnauthorized, codeUnauthorized)
		if got := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer ") {
			t.Errorf("%s: WWW-Authenticate %q, want a Bearer challenge", tc.name, got)
		}
	}
	for _, h := range [][]string{{"Authorization", "Bearer k-one"}, {"X-API-Key", "k-two"}} {
		r := post("/predict/label", h...)
		if r.status != http.StatusOK || !bytes.Contains(r.body, []byte("red")) {
			t.Errorf("with %s: %d %s, want 200 red", h[0], r.status, r.body)
		}
	}
	// Every data endpoint needs the key; probes, metrics, page and docs
	// do not.
	for _, path := range []string{"/metadata", "/label", "/v1/models", "/v1/models/colors/metadata", "/predict/test"} {
		wantError(t, do(t, http.MethodGet, srv.URL+path, "", nil), http.StatusUnauthorized, codeUnauthorized)
	}
	for _, path := range []string{"/v1/models/colors/predict", "/predict/topk", "/predict/batch", "/predict"} {
		wantError(t, post(path), http.StatusUnauthorized, codeUnauthorized)
	}
	for _, path := range []string{"/health", "/ready", "/metrics", "/", "/docs", "/openapi.json"} {
		if r := do(t, http.MethodGet, srv.URL+path, "", nil); r.status != http.StatusOK {
			t.Errorf("GET %s without a key = %d, want 200", path, r.status)
		}
	}
	m := do(t, http.MethodGet, srv.URL+"/metrics", "", nil)
	for _, want := range []string{`prep_auth_failures_total{reason="invalid"} 2`, `prep_auth_failures_total{reason="missing"} 11`} {
		if !bytes.Contains(m.body, []byte(want)) {
			t.Errorf("metrics lack %s", want)
		}
	}
	for _, e := range logs.All() {
		line, _ := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()).EncodeEntry(e.Entry, e.Context)
		for _, key := range []string{"k-one", "k-two", "k-three", "k-on"} {
			if bytes.Contains(line.Bytes(), []byte(key)) {
				t.Errorf("a log line holds key %q: %s", key, line.Bytes())
			}
		}
	}
	if logs.FilterMessage("api key refused").Len() == 0 {
		t.Error("refusals are not logged")
	}
}

// TestOpenAPISecurityMatchesAuth: every operation /openapi.json documents
// with the API key schemes answers 401 without a key when prep runs with
// keys, and every operation documented without them does not.
func TestOpenAPISecurityMatchesAuth(t *testing.T) {
	srv, _ := startKeyedAPI(t)
	var doc struct {
		Paths map[string]map[string]struct {
			Security []map[string][]string `json:"security"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(openAPIDoc, &doc); err != nil {
		t.Fatal(err)
	}
	body := jsonBody(solidJPEG(t, 64, 64, red))
	checked := 0
	for path, item := range doc.Paths {
		for method, op := range item {
			keyed := len(op.Security) > 0
			url := srv.URL + strings.ReplaceAll(path, "{model}", "colors")
			var r response
			if method == "post" {
				r = do(t, http.MethodPost, url, "application/json", strings.NewReader(body))
			} else {
				r = do(t, strings.ToUpper(method), url, "", nil)
			}
			if got := r.status == http.StatusUnauthorized; got != keyed {
				t.Errorf("%s %s without a key: %d; documented as needing one: %v", strings.ToUpper(method), path, r.status, keyed)
			}
			checked++
		}
	}
	if checked < 20 {
		t.Errorf("only %d operations checked", checked)
	}
}
