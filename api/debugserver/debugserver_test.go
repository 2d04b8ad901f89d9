package debugserver

import (
	"bytes"
	"io"
	"net/http"
	"testing"

	"go.uber.org/zap"
)

func TestServesProfiles(t *testing.T) {
	s, err := Start("127.0.0.1:0", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	if s.Public() {
		t.Error("a loopback listener says it is public")
	}
	base := "http://" + s.Addr().String()
	for _, tc := range []struct {
		path, want string
	}{
		{"/debug/pprof/", "goroutine"},
		{"/debug/pprof/goroutine?debug=1", "goroutine profile:"},
		{"/debug/pprof/cmdline", "debugserver.test"},
	} {
		resp, err := http.Get(base + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(tc.want)) {
			t.Errorf("GET %s: %d, body without %q: %.200s", tc.path, resp.StatusCode, tc.want, body)
		}
	}
	// A heap profile is a gzip'd protobuf.
	resp, err := http.Get(base + "/debug/pprof/heap")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.HasPrefix(body, []byte{0x1f, 0x8b}) {
		t.Errorf("GET /debug/pprof/heap: %d, %d bytes, not gzip", resp.StatusCode, len(body))
	}
	if resp, err := http.Get(base + "/predict"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET /predict on the debug listener: %d, want 404", resp.StatusCode)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(base + "/debug/pprof/"); err == nil {
		t.Error("the debug listener still answers after Close")
	}
}
