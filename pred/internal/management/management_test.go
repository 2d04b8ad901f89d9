package management

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/prepred/prepred/pred/internal/registry"
)

// fakeRepository records the calls it gets.
type fakeRepository struct {
	mu    sync.Mutex
	calls []string
	err   error
}

func (f *fakeRepository) List() []registry.VersionState {
	return []registry.VersionState{
		{Model: "broken", State: registry.StateUnavailable, Reason: "invalid config"},
		{Model: "colors", Version: 1, State: registry.StateUnloading},
		{Model: "colors", Version: 2, State: registry.StateReady},
	}
}

func (f *fakeRepository) record(call string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
	return f.err
}

func (f *fakeRepository) LoadModel(_ context.Context, name string) error {
	return f.record("load " + name)
}

func (f *fakeRepository) UnloadModel(_ context.Context, name string) error {
	return f.record("unload " + name)
}

func (f *fakeRepository) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// call serves one request from remoteAddr through h.
func call(h http.Handler, method, path, remoteAddr, auth, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.RemoteAddr = remoteAddr
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

const (
	local  = "127.0.0.1:40000"
	local6 = "[::1]:40000"
	remote = "10.1.2.3:40000"
)

func TestAccess(t *testing.T) {
	tests := []struct {
		name     string
		opts     Options
		remote   string
		auth     string
		wantCode int
		wantBody string
	}{
		{"disabled", Options{}, local, "", 403, "disabled; start pred with --management-api"},
		{"loopback", Options{Enabled: true}, local, "", 200, ""},
		{"loopback v6", Options{Enabled: true}, local6, "", 200, ""},
		{"remote without a token configured", Options{Enabled: true}, remote, "", 403, "only loopback callers"},
		{"remote with the token", Options{Enabled: true, Token: "s3cret"}, remote, "Bearer s3cret", 200, ""},
		{"scheme case", Options{Enabled: true, Token: "s3cret"}, remote, "bearer s3cret", 200, ""},
		{"no token", Options{Enabled: true, Token: "s3cret"}, remote, "", 401, "needs the management token"},
		{"loopback still needs the token", Options{Enabled: true, Token: "s3cret"}, local, "", 401, "needs the management token"},
		{"wrong token", Options{Enabled: true, Token: "s3cret"}, local, "Bearer s3cret2", 401, "needs the management token"},
		{"prefix of the token", Options{Enabled: true, Token: "s3cret"}, local, "Bearer s3cre", 401, ""},
		{"basic auth", Options{Enabled: true, Token: "s3cret"}, local, "Basic czNjcmV0", 401, ""},
		{"disabled with a token", Options{Token: "s3cret"}, local, "Bearer s3cret", 403, "disabled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			repo := &fakeRepository{}
			h := Handler(repo, tt.opts)
			for _, path := range []string{"/v2/repository/index", "/v2/repository/models/colors/load", "/v2/repository/models/colors/unload"} {
				rec := call(h, "POST", path, tt.remote, tt.auth, "")
				if rec.Code != tt.wantCode || !strings.Contains(rec.Body.String(), tt.wantBody) {
					t.Errorf("POST %s = %d %s, want %d containing %q", path, rec.Code, rec.Body, tt.wantCode, tt.wantBody)
				}
				if rec.Code == 401 && rec.Header().Get("WWW-Authenticate") == "" {
					t.Errorf("401 without WWW-Authenticate")
				}
			}
			wantCalls := 0
			if tt.wantCode == 200 {
				wantCalls = 2
			}
			if got := repo.Calls(); len(got) != wantCalls {
				t.Errorf("repository calls %v, want %d", got, wantCalls)
			}
		})
	}
}

func TestIndex(t *testing.T) {
	h := Handler(&fakeRepository{}, Options{Enabled: true})
	tests := []struct {
		body string
		want []indexEntry
	}{
		{"", []indexEntry{
			{Name: "broken", State: "UNAVAILABLE", Reason: "invalid config"},
			{Name: "colors", Version: "1", State: "UNLOADING"},
			{Name: "colors", Version: "2", State: "READY"},
		}},
		{`{"ready": true}`, []indexEntry{{Name: "colors", Version: "2", State: "READY"}}},
	}
	for _, tt := range tests {
		rec := call(h, "POST", "/v2/repository/index", local, "", tt.body)
		if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("index = %d %s", rec.Code, rec.Body)
		}
		var got []indexEntry
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
			t.Fatal(err)
		}
		if len(got) != len(tt.want) {
			t.Fatalf("index(%s) = %+v, want %+v", tt.body, got, tt.want)
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("index(%s)[%d] = %+v, want %+v", tt.body, i, got[i], tt.want[i])
			}
		}
	}
	// Triton's shape: version is a string, absent for a model as a whole.
	rec := call(h, "POST", "/v2/repository/index", local, "", "")
	if !strings.Contains(rec.Body.String(), `{"name":"colors","version":"2","state":"READY"}`) || strings.Contains(rec.Body.String(), `"name":"broken","version"`) {
		t.Errorf("index body %s", rec.Body)
	}
}

func TestLoadAndUnload(t *testing.T) {
	tests := []struct {
		name      string
		method    string
		path      string
		body      string
		repoErr   error
		wantCode  int
		wantBody  string
		wantCalls string
	}{
		{name: "load", method: "POST", path: "/v2/repository/models/colors/load", wantCode: 200, wantCalls: "load colors"},
		{name: "load with empty object", method: "POST", path: "/v2/repository/models/colors/load", body: `{}`, wantCode: 200, wantCalls: "load colors"},
		{name: "unload", method: "POST", path: "/v2/repository/models/colors/unload", body: `{"parameters":{"unload_dependents":true}}`, wantCode: 200, wantCalls: "unload colors"},
		{name: "load with a config override", method: "POST", path: "/v2/repository/models/colors/load", body: `{"parameters":{"config":"{}"}}`, wantCode: 400, wantBody: `load parameters [\"config\"] are not supported`},
		{name: "bad JSON", method: "POST", path: "/v2/repository/models/colors/load", body: `{`, wantCode: 400, wantBody: "not the expected JSON"},
		{name: "body too large", method: "POST", path: "/v2/repository/models/colors/load", body: `{"x":"` + strings.Repeat("a", maxBodyBytes) + `"}`, wantCode: 400, wantBody: "larger than"},
		{name: "escaping name reaches the registry decoded", method: "POST", path: "/v2/repository/models/..%2Fetc/load",
			repoErr: status.Error(codes.InvalidArgument, `invalid model name "../etc"`), wantCode: 400, wantBody: "invalid model name", wantCalls: "load ../etc"},
		{name: "unknown model", method: "POST", path: "/v2/repository/models/nosuch/unload",
			repoErr: status.Error(codes.NotFound, `model "nosuch" is not served`), wantCode: 404, wantBody: "not served", wantCalls: "unload nosuch"},
		{name: "model fails to load", method: "POST", path: "/v2/repository/models/broken/load",
			repoErr: status.Error(codes.FailedPrecondition, `model "broken" failed to load: invalid config`), wantCode: 400, wantBody: "failed to load", wantCalls: "load broken"},
		{name: "shutting down", method: "POST", path: "/v2/repository/models/colors/load",
			repoErr: status.Error(codes.Unavailable, "pred is shutting down"), wantCode: 503, wantCalls: "load colors"},
		{name: "GET", method: "GET", path: "/v2/repository/models/colors/load", wantCode: 405},
		{name: "path with a slash", method: "POST", path: "/v2/repository/models/a/b/load", wantCode: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			repo := &fakeRepository{err: tt.repoErr}
			rec := call(Handler(repo, Options{Enabled: true}), tt.method, tt.path, local, "", tt.body)
			body, _ := io.ReadAll(rec.Body)
			if rec.Code != tt.wantCode || !strings.Contains(string(body), tt.wantBody) {
				t.Errorf("%s %s = %d %s, want %d containing %q", tt.method, tt.path, rec.Code, body, tt.wantCode, tt.wantBody)
			}
			if got := strings.Join(repo.Calls(), ","); got != tt.wantCalls {
				t.Errorf("calls %q, want %q", got, tt.wantCalls)
			}
			if tt.wantCode == 200 && len(body) != 0 {
				t.Errorf("success body %q, want empty", body)
			}
		})
	}
}
