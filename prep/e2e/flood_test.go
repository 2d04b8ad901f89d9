package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prepred/prepred/pred/predtest"
	"github.com/prepred/prepred/prep/preptest"
)

// Sizes of the flood test: uploads of floodBody bytes against a budget
// that admits floodAdmitted of them, with room left for good requests.
const (
	floodBody      = 4 << 20
	floodAdmitted  = 4
	floodBudget    = floodAdmitted*floodBody + 2<<20
	floodUploads   = 40
	floodGood      = 10
	floodIdle      = 60
	floodMaxConns  = 120
	floodSentFirst = 64 << 10 // bytes an upload sends before it stalls
	// slowBodyReadTimeout is prep's --read-timeout in the test.
	slowBodyReadTimeout = 2 * time.Second
)

// heldBody is an upload that sends first bytes, then stalls until release
// is closed, then sends the rest (zeros: not an image).
type heldBody struct {
	size, first int64
	sent        atomic.Int64
	release     <-chan struct{}
}

func (b *heldBody) Read(p []byte) (int, error) {
	sent := b.sent.Load()
	if sent >= b.size {
		return 0, io.EOF
	}
	limit := b.size
	if sent >= b.first {
		<-b.release
	} else {
		limit = b.first
	}
	n := int(min(int64(len(p)), limit-sent))
	clear(p[:n])
	b.sent.Add(int64(n))
	return n, nil
}

// floodAnswer is what one upload got back, and how much of its body had
// been sent by then.
type floodAnswer struct {
	status     int
	retryAfter string
	body       string
	sent       int64
	err        error
}

// upload posts a held body of floodBody bytes as a raw image.
func upload(client *http.Client, url string, release <-chan struct{}) floodAnswer {
	body := &heldBody{size: floodBody, first: floodSentFirst, release: release}
	req, err := http.NewRequest(http.MethodPost, url, body)
	if err != nil {
		return floodAnswer{err: err}
	}
	req.ContentLength = floodBody
	req.Header.Set("Content-Type", "image/jpeg")
	resp, err := client.Do(req)
	if err != nil {
		return floodAnswer{err: err, sent: body.sent.Load()}
	}
	sent := body.sent.Load()
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return floodAnswer{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), body: string(b), sent: sent}
}

// metricValue reads one sample of prep's or pred's /metrics.
func metricValue(t testing.TB, url, name, labels string) float64 {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name+labels) + ` (\S+)$`)
	m := re.FindStringSubmatch(string(b))
	if m == nil {
		t.Fatalf("/metrics has no %s%s", name, labels)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// dialIdle opens a connection that sends nothing; it is closed when the
// test ends.
func dialIdle(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestFloodIsShedBeforeReading floods a real prep (in front of a real pred)
// with uploads far past its in-flight budget, idle connections and a slow
// body, and checks that the good requests sent alongside get their right
// answers, that the uploads beyond the budget are refused before their
// bodies are sent, and that prep lives on with its budget returned.
func TestFloodIsShedBeforeReading(t *testing.T) {
	pred := predtest.Start(t)
	prep := preptest.Start(t, "--pred-address", pred.GRPCAddr, "--model", "colors",
		"--max-inflight-bytes", strconv.Itoa(floodBudget), "--max-body-bytes", strconv.Itoa(floodBody),
		"--max-connections", strconv.Itoa(floodMaxConns), "--read-timeout", slowBodyReadTimeout.String())
	prep.WaitLog(t, contractTimeout, func(m map[string]any) bool { return m["msg"] == "model contract loaded" })
	good := redBody(t)
	if a := predictRed(t, prep, good); a.status != http.StatusOK {
		t.Fatalf("before the flood: %v", a)
	}

	for range floodIdle {
		dialIdle(t, prep.HTTPAddr)
	}

	release := make(chan struct{})
	var releaseOnce sync.Once
	releaseAll := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(releaseAll)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: loadTimeout}
	answers := make(chan floodAnswer, floodUploads)
	for range floodUploads {
		go func() { answers <- upload(client, prep.URL+"/predict/label", release) }()
	}
	deadline := time.After(loadTimeout)
	var refused []floodAnswer
	for len(refused) < floodUploads-floodAdmitted {
		select {
		case a := <-answers:
			refused = append(refused, a)
		case <-deadline:
			t.Fatalf("%d of %d uploads answered while %d should be held; got %+v", len(refused), floodUploads, floodAdmitted, refused)
		}
	}
	answered503 := 0
	for _, a := range refused {
		// The answer races the client's own writes: now and then the
		// client sees its write fail on the closed connection first.
		switch {
		case a.err != nil && (errors.Is(a.err, syscall.EPIPE) || errors.Is(a.err, syscall.ECONNRESET)):
		case a.err != nil || a.status != http.StatusServiceUnavailable || a.retryAfter == "" || !strings.Contains(a.body, `"code":"overloaded"`):
			t.Errorf("refused upload: %+v (%v), want 503 overloaded with Retry-After", a, a.err)
		default:
			answered503++
		}
		if a.sent > floodSentFirst {
			t.Errorf("a refused upload had sent %d bytes, more than it sends before it stalls (%d): its body was read", a.sent, floodSentFirst)
		}
	}
	if answered503 == 0 {
		t.Error("no refused upload read its 503 answer")
	}
	if got := metricValue(t, prep.URL, "prep_inflight_bytes", `{budget="requests"}`); got != floodAdmitted*floodBody {
		t.Errorf("prep_inflight_bytes while %d uploads are held = %v, want %d", floodAdmitted, got, floodAdmitted*floodBody)
	}

	// Good requests alongside the held uploads all get their answer.
	var wg sync.WaitGroup
	goodAnswers := make([]answer, floodGood)
	for i := range goodAnswers {
		wg.Go(func() { goodAnswers[i] = post(context.Background(), client, prep.URL+"/predict/topk?k=1", good) })
	}
	wg.Wait()
	for _, a := range goodAnswers {
		if label, _, err := a.label(); err != nil || label != "red" {
			t.Errorf("good request during the flood: %v (%v), want red", a, err)
		}
	}

	// A slow body is cut off by the read timeout instead of holding its
	// reservation.
	slow := dialIdle(t, prep.HTTPAddr)
	fmt.Fprintf(slow, "POST /predict/label HTTP/1.1\r\nHost: prep\r\nContent-Type: image/jpeg\r\nContent-Length: 100000\r\n\r\nslow")
	_ = slow.SetReadDeadline(time.Now().Add(loadTimeout))
	if _, err := io.ReadAll(slow); err != nil {
		t.Errorf("the slow body's connection was not closed by prep: %v", err)
	}

	// Connections beyond the limit are answered 503 and closed.
	refusedConn := false
	for range floodMaxConns {
		c := dialIdle(t, prep.HTTPAddr)
		_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(b), "overloaded") {
				t.Errorf("connection beyond the limit: %d %s", resp.StatusCode, b)
			}
			refusedConn = true
			break
		}
	}
	if !refusedConn {
		t.Errorf("no connection was refused with %d idle ones open beyond --max-connections %d", floodMaxConns+floodIdle, floodMaxConns)
	}
	if got := metricValue(t, prep.URL, "prep_refused_connections_total", `{listener="http"}`); got < 1 {
		t.Errorf("prep_refused_connections_total = %v, want at least 1", got)
	}

	// The held uploads finish: their bodies are read and refused as
	// images, not as overload.
	releaseAll()
	for range floodAdmitted {
		select {
		case a := <-answers:
			if a.err != nil || a.status < 400 || a.status >= 500 {
				t.Errorf("admitted upload: %+v, want a 4xx about the image", a)
			}
		case <-time.After(loadTimeout):
			t.Fatal("the admitted uploads did not finish")
		}
	}
	if got := metricValue(t, prep.URL, "prep_inflight_bytes", `{budget="requests"}`); got != 0 {
		t.Errorf("prep_inflight_bytes after the flood = %v, want 0", got)
	}
	// The burst is over: its memory goes back to the operating system.
	prep.WaitLog(t, loadTimeout, func(m map[string]any) bool {
		return m["msg"] == "returned the memory of a burst to the operating system"
	})
	if got := metricValue(t, prep.URL, "prep_memory_returns_total", ""); got < 1 {
		t.Errorf("prep_memory_returns_total after the flood = %v, want at least 1", got)
	}
	if got := metricValue(t, prep.URL, "prep_overload_refusals_total", `{reason="body"}`); got < floodUploads-floodAdmitted {
		t.Errorf("prep_overload_refusals_total{reason=body} = %v, want at least %d", got, floodUploads-floodAdmitted)
	}
	select {
	case <-prep.Exited():
		t.Fatalf("prep exited during the flood:\n%s", prep.Output())
	default:
	}
	if a := predictRed(t, prep, good); a.status != http.StatusOK {
		t.Errorf("after the flood: %v", a)
	}
}
