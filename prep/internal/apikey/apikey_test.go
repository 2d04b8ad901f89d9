package apikey

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestValid(t *testing.T) {
	k, err := New(Options{Keys: []string{"alpha", " beta ", ""}})
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]bool{"alpha": true, "beta": true, "": false, "alph": false, "alphaa": false, "gamma": false} {
		if got := k.Valid(key); got != want {
			t.Errorf("Valid(%q) = %v, want %v", key, got, want)
		}
	}
	if k, err := New(Options{Keys: []string{"", " "}}); k != nil || err != nil {
		t.Errorf("New without keys = %v, %v; want nil, nil (no key required)", k, err)
	}
}

func TestFromRequest(t *testing.T) {
	for _, tc := range []struct {
		headers map[string]string
		want    string
	}{
		{map[string]string{"Authorization": "Bearer k1"}, "k1"},
		{map[string]string{"Authorization": "bearer  k1 "}, "k1"},
		{map[string]string{"X-API-Key": "k2"}, "k2"},
		{map[string]string{"Authorization": "Basic dXNlcjpwdw==", "X-API-Key": "k3"}, "k3"},
		{map[string]string{"Authorization": "Bearer "}, ""},
		{map[string]string{}, ""},
	} {
		h := http.Header{}
		for k, v := range tc.headers {
			h.Set(k, v)
		}
		got, err := FromRequest(h)
		if got != tc.want || (tc.want == "") != (err != nil) {
			t.Errorf("FromRequest(%v) = %q, %v; want %q", tc.headers, got, err, tc.want)
		}
	}
}

func writeKeys(t *testing.T, name, content string) {
	t.Helper()
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, name); err != nil {
		t.Fatal(err)
	}
}

func TestFileIsReRead(t *testing.T) {
	file := filepath.Join(t.TempDir(), "keys")
	writeKeys(t, file, "# team A\nfile-one\n\n  file-two  \n")
	var mu sync.Mutex
	var reloads []int
	var errs []error
	k, err := New(Options{Keys: []string{"inline"}, File: file, CheckInterval: -1,
		OnReload: func(n int) { mu.Lock(); reloads = append(reloads, n); mu.Unlock() },
		OnError:  func(err error) { mu.Lock(); errs = append(errs, err); mu.Unlock() },
	})
	if err != nil {
		t.Fatal(err)
	}
	check := func(when string, want map[string]bool) {
		t.Helper()
		for key, ok := range want {
			if got := k.Valid(key); got != ok {
				t.Errorf("%s: Valid(%q) = %v, want %v", when, key, got, ok)
			}
		}
	}
	check("start", map[string]bool{"inline": true, "file-one": true, "file-two": true, "# team A": false, "file-three": false})

	writeKeys(t, file, "file-two\nfile-three\n")
	check("after rotation", map[string]bool{"inline": true, "file-one": false, "file-two": true, "file-three": true})

	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	check("file removed", map[string]bool{"file-two": true, "file-three": true})
	check("file removed, again", map[string]bool{"file-three": true})

	writeKeys(t, file, "")
	check("empty file", map[string]bool{"inline": true, "file-two": false, "file-three": false})

	mu.Lock()
	defer mu.Unlock()
	if len(reloads) != 2 || reloads[0] != 3 || reloads[1] != 1 {
		t.Errorf("reloads reported %v, want [3 1] (keys after each change)", reloads)
	}
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "keeping the 2 keys read before") {
		t.Errorf("errors reported %v, want one saying the keys are kept", errs)
	}
	for _, err := range errs {
		if strings.Contains(err.Error(), "file-two") {
			t.Errorf("an error quotes a key: %v", err)
		}
	}
}

func TestCheckInterval(t *testing.T) {
	file := filepath.Join(t.TempDir(), "keys")
	writeKeys(t, file, "old\n")
	now := time.Now()
	var mu sync.Mutex
	k, err := New(Options{File: file, CheckInterval: time.Minute, Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now }})
	if err != nil {
		t.Fatal(err)
	}
	writeKeys(t, file, "new\n")
	if !k.Valid("old") || k.Valid("new") {
		t.Fatal("the file was re-read within the check interval")
	}
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	if k.Valid("old") || !k.Valid("new") {
		t.Fatal("the file was not re-read after the check interval")
	}
}

func TestFileLimits(t *testing.T) {
	dir := t.TempDir()
	if _, err := New(Options{File: filepath.Join(dir, "missing")}); err == nil {
		t.Error("a missing keys file at start is not an error")
	}
	many := filepath.Join(dir, "many")
	writeKeys(t, many, strings.Repeat("k\n", MaxKeys+1))
	if _, err := New(Options{File: many}); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("a file of %d keys: %v, want an error", MaxKeys+1, err)
	}
}

func BenchmarkValid(b *testing.B) {
	keys := make([]string, 16)
	for i := range keys {
		keys[i] = strings.Repeat("x", 30) + string(rune('a'+i))
	}
	k, err := New(Options{Keys: keys})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if !k.Valid(keys[7]) {
			b.Fatal("invalid")
		}
	}
}
