package main

import (
	"errors"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/pred/predtest"
)

// Sizes of the flood test: OIP uploads of floodBody bytes against a budget
// that admits floodAdmitted of them, with floodRoom left for good requests.
const (
	floodBody      = 4 << 20
	floodAdmitted  = 4
	floodRoom      = 1 << 20
	floodBudget    = floodAdmitted*floodBody + floodRoom
	floodUploads   = 20
	floodSentFirst = 64 << 10 // bytes an upload sends before it stalls
	floodTimeout   = 2 * time.Minute
)

// heldBody sends first bytes, then stalls until release is closed, then
// sends the rest (spaces: not valid JSON).
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
	for i := range p[:n] {
		p[i] = ' '
	}
	b.sent.Add(int64(n))
	return n, nil
}

type floodAnswer struct {
	status     int
	retryAfter string
	body       string
	sent       int64
	err        error
}

// upload posts a held body of size bytes to an OIP infer URL.
func upload(client *http.Client, url string, size int64, release <-chan struct{}) floodAnswer {
	body := &heldBody{size: size, first: min(floodSentFirst, size), release: release}
	req, err := http.NewRequest(http.MethodPost, url, body)
	if err != nil {
		return floodAnswer{err: err}
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return floodAnswer{err: err, sent: body.sent.Load()}
	}
	sent := body.sent.Load()
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return floodAnswer{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), body: string(b), sent: sent}
}

// metric reads one sample of pred's /metrics.
func metric(t *testing.T, srv *predtest.Server, sample string) float64 {
	t.Helper()
	_, body := httpGet(t, "http://"+srv.HTTPAddr+"/metrics")
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(sample) + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("/metrics has no %s", sample)
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// TestFloodIsShedBeforeReading floods pred's HTTP side past its in-flight
// budget and checks that the uploads beyond it are refused before their
// bodies are sent while gRPC predictions alongside get their right
// answers; then fills the budget and checks that new gRPC calls are
// refused with RESOURCE_EXHAUSTED while health checks still answer.
func TestFloodIsShedBeforeReading(t *testing.T) {
	srv := predtest.Start(t, "--max-inflight-bytes", strconv.Itoa(floodBudget), "--max-connections", "100")
	conn := srv.Dial(t)
	red := [3]uint8{255, 0, 0}
	if got := predictLabel(t, conn, red); got != "red" {
		t.Fatalf("before the flood: %q", got)
	}
	url := "http://" + srv.HTTPAddr + "/v2/models/colors/infer"
	release := make(chan struct{})
	var once sync.Once
	releaseAll := func() { once.Do(func() { close(release) }) }
	t.Cleanup(releaseAll)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: floodTimeout}

	answers := make(chan floodAnswer, floodUploads+1)
	for range floodUploads {
		go func() { answers <- upload(client, url, floodBody, release) }()
	}
	deadline := time.After(floodTimeout)
	answered503 := 0
	for i := range floodUploads - floodAdmitted {
		select {
		case a := <-answers:
			// The answer races the client's own writes: now and then the
			// client sees its write fail on the closed connection first.
			switch {
			case a.err != nil && (errors.Is(a.err, syscall.EPIPE) || errors.Is(a.err, syscall.ECONNRESET)):
			case a.err != nil || a.status != http.StatusServiceUnavailable || a.retryAfter == "" || !strings.Contains(a.body, `"error":"the server is overloaded`):
				t.Errorf("refused upload: %+v (%v), want 503 with Retry-After and an OIP error", a, a.err)
			default:
				answered503++
			}
			if a.sent > floodSentFirst {
				t.Errorf("a refused upload had sent %d bytes, more than it sends before it stalls (%d)", a.sent, floodSentFirst)
			}
		case <-deadline:
			t.Fatalf("%d of %d uploads answered while %d should be held", i, floodUploads, floodAdmitted)
		}
	}
	if answered503 == 0 {
		t.Error("no refused upload read its 503 answer")
	}
	if got := metric(t, srv, `pred_overload_refusals_total{reason="body"}`); got != floodUploads-floodAdmitted {
		t.Errorf("pred_overload_refusals_total{reason=body} = %v, want %d", got, floodUploads-floodAdmitted)
	}
	if got := metric(t, srv, `pred_inflight_bytes{budget="requests"}`); got != floodAdmitted*floodBody {
		t.Errorf("pred_inflight_bytes = %v, want %d", got, floodAdmitted*floodBody)
	}
	var wg sync.WaitGroup
	labels := make([]string, 8)
	for i := range labels {
		wg.Go(func() { labels[i] = predictLabel(t, conn, red) })
	}
	wg.Wait()
	for _, l := range labels {
		if l != "red" {
			t.Errorf("gRPC prediction during the flood = %q, want red", l)
		}
	}

	// One more upload takes all but a few bytes of the budget: new gRPC
	// streams are refused at the tap, before their message is read.
	req := colorsRequest(t, conn, red, 1)
	go func() { answers <- upload(client, url, floodRoom-1024, release) }()
	waitFor(t, func() bool { return metric(t, srv, `pred_inflight_bytes{budget="requests"}`) == floodBudget-1024 })
	_, err := predv1.NewPredServiceClient(conn).Predict(testCtx(t), req)
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("Predict with the budget spent = %v, want RESOURCE_EXHAUSTED", err)
	}
	h, err := healthpb.NewHealthClient(conn).Check(testCtx(t), &healthpb.HealthCheckRequest{})
	if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health with the budget spent = %v, %v; want SERVING", h, err)
	}
	if got := metric(t, srv, `pred_overload_refusals_total{reason="grpc_stream"}`); got < 1 {
		t.Errorf("grpc_stream refusals = %v, want at least 1", got)
	}

	releaseAll()
	for range floodAdmitted + 1 {
		select {
		case a := <-answers:
			if a.err != nil || a.status != http.StatusBadRequest {
				t.Errorf("admitted upload: %+v, want 400 (its body is not JSON)", a)
			}
		case <-time.After(floodTimeout):
			t.Fatal("the admitted uploads did not finish")
		}
	}
	if got := metric(t, srv, `pred_inflight_bytes{budget="requests"}`); got != 0 {
		t.Errorf("pred_inflight_bytes after the flood = %v, want 0", got)
	}
	// The burst is over: its memory goes back to the operating system.
	srv.WaitLog(t, floodTimeout, func(line string) bool {
		return strings.Contains(line, "returned the memory of a burst to the operating system")
	})
	if got := metric(t, srv, "pred_memory_returns_total"); got < 1 {
		t.Errorf("pred_memory_returns_total after the flood = %v, want at least 1", got)
	}
	if got := predictLabel(t, conn, red); got != "red" {
		t.Errorf("after the flood: %q", got)
	}
}

// waitFor polls cond, which reads state the test cannot be told about
// (a server's metrics), until it holds or floodTimeout passes.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(floodTimeout); !cond(); {
		if time.Now().After(end) {
			t.Fatal("condition not met within the flood timeout")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
