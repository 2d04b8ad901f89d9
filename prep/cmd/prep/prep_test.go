package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// Time limits of the tests in this package.
const (
	// startTimeout bounds the wait for prep's "listening" line.
	startTimeout = 30 * time.Second
	// stopTimeout bounds the wait for run to return after its context ends.
	stopTimeout = 30 * time.Second
	// callTimeout bounds one HTTP call of a test.
	callTimeout = 30 * time.Second
	// maxLogLine bounds one log line read from prep.
	maxLogLine = 1 << 20
)

// prepProc is prep's run function serving in the test process.
type prepProc struct {
	// URL is "http://" plus the address prep listens on.
	URL string

	cancel context.CancelFunc
	done   chan error // receives run's result

	mu       sync.Mutex
	logs     []string
	logAdded chan struct{} // closed and replaced whenever a line arrives
}

// startPrep calls run with args (an empty environment) and returns once it
// logs "listening". When the test ends prep is stopped and must return nil.
func startPrep(t *testing.T, args ...string) *prepProc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	p := &prepProc{cancel: cancel, done: make(chan error, 1), logAdded: make(chan struct{})}
	go func() {
		err := run(ctx, args, func(string) string { return "" }, pw)
		_ = pw.Close()
		p.done <- err
	}()
	go p.readLogs(pr)
	t.Cleanup(func() {
		if err := p.stop(t); err != nil {
			t.Errorf("run returned %v", err)
		}
	})

	line := p.waitLog(t, startTimeout, func(m map[string]any) bool { return m["msg"] == "listening" })
	addr, _ := line["http_addr"].(string)
	if addr == "" {
		t.Fatalf("listening line without http_addr: %v", line)
	}
	p.URL = "http://" + addr
	return p
}

func (p *prepProc) readLogs(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLogLine)
	for sc.Scan() {
		p.mu.Lock()
		p.logs = append(p.logs, sc.Text())
		close(p.logAdded)
		p.logAdded = make(chan struct{})
		p.mu.Unlock()
	}
	_, _ = io.Copy(io.Discard, r) // keep the pipe drained after an overlong line
}

// stop cancels run's context and returns run's result (once; later calls
// return nil).
func (p *prepProc) stop(t *testing.T) error {
	p.cancel()
	select {
	case err, ok := <-p.done:
		if ok {
			close(p.done)
		}
		return err
	case <-time.After(stopTimeout):
		t.Fatalf("run did not return within %v of its context ending\n%s", stopTimeout, p.output())
		return nil
	}
}

func (p *prepProc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return "--- prep log ---\n" + strings.Join(p.logs, "\n")
}

// waitLog waits for a JSON log line for which match is true and returns it
// decoded.
func (p *prepProc) waitLog(t *testing.T, timeout time.Duration, match func(map[string]any) bool) map[string]any {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	seen := 0
	for {
		p.mu.Lock()
		lines, added := p.logs[seen:], p.logAdded
		p.mu.Unlock()
		for _, l := range lines {
			var m map[string]any
			if json.Unmarshal([]byte(l), &m) == nil && match(m) {
				return m
			}
		}
		seen += len(lines)
		select {
		case <-added:
		case <-timer.C:
			t.Fatalf("the awaited log line did not come within %v\n%s", timeout, p.output())
		}
	}
}

// waitContract waits until prep logs that it loaded the contract.
func (p *prepProc) waitContract(t *testing.T) map[string]any {
	t.Helper()
	return p.waitLog(t, startTimeout, func(m map[string]any) bool { return m["msg"] == "model contract loaded" })
}

type httpResponse struct {
	status int
	header http.Header
	body   []byte
}

func call(t *testing.T, method, url, contentType string, body []byte) httpResponse {
	t.Helper()
	r, err := tryCall(method, url, contentType, body)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// tryCall is call for goroutines other than the test's.
func tryCall(method, url, contentType string, body []byte) (httpResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return httpResponse{}, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return httpResponse{}, fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return httpResponse{}, fmt.Errorf("%s %s: reading the body: %w", method, url, err)
	}
	return httpResponse{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// errorOf decodes an {"error": {"code", "message"}} body, failing the test
// if r is not one.
func errorOf(t *testing.T, r httpResponse) (code, message string) {
	t.Helper()
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil || body.Error.Code == "" || body.Error.Message == "" {
		t.Fatalf("status %d body %s is not a JSON error: %v", r.status, r.body, err)
	}
	return body.Error.Code, body.Error.Message
}

// solidJPEG encodes a w x h image of one color at quality 95.
func solidJPEG(t *testing.T, w, h int, c color.RGBA) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.SetRGBA(x, y, c)
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
