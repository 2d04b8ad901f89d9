//go:build containers || k8s

package containers_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const (
	// requestTimeout bounds one request of the load.
	requestTimeout = 10 * time.Second
	// maxResponseBytes bounds what is read of one answer.
	maxResponseBytes = 1 << 16
	// maxKeptErrors is how many failure messages a load keeps for the report.
	maxKeptErrors = 10
	// loadTimeout bounds any one load.
	loadTimeout = 5 * time.Minute
	// minShare is the least share of a spread load each pred must answer.
	minShare = 0.25
	// settleRequests, all answered right, close a spec roll.
	settleRequests = 200
	// pollInterval is how often a state is polled while waiting for it.
	pollInterval = 250 * time.Millisecond
)

// colorImage is a request body whose right label is known.
type colorImage struct {
	label string
	body  []byte
}

// colorImages loads the one-color test images, as the README's request
// sends them: base64 in {"data": ...}. Red, blue, yellow and cyan all
// change label when R and B are swapped, so a tensor prepared in the wrong
// channel order shows.
func colorImages(t *testing.T, root string, labels ...string) []colorImage {
	t.Helper()
	var imgs []colorImage
	for _, l := range labels {
		raw, err := os.ReadFile(filepath.Join(root, "testdata", "images", l+".jpg"))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := json.Marshal(map[string]string{"data": base64.StdEncoding.EncodeToString(raw)})
		imgs = append(imgs, colorImage{label: l, body: body})
	}
	return imgs
}

// maxRollRefusals bounds the requests the contract refuses while a pred
// release with another spec rolls in (a plain round robin over the mixed
// replicas refused thousands).
const maxRollRefusals = 10

// outcome is how one request ended.
type outcome int

const (
	outcomeOK         outcome = iota // 200 with the right label
	outcomeWrongLabel                // 200 with another label: a mismatched tensor
	outcomeContract                  // prep refused because the contract changed (contract_changed, contract_mismatch)
	outcomeOtherError                // any other failure
	numOutcomes
)

// stats counts the outcomes of a load.
type stats struct {
	mu     sync.Mutex
	counts [numOutcomes]int
	errors []string
	// wrong counts wrong labels by "want->got".
	wrong map[string]int
}

func (s *stats) add(o outcome, detail string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts[o]++
	if o == outcomeWrongLabel {
		if s.wrong == nil {
			s.wrong = map[string]int{}
		}
		s.wrong[detail]++
	}
	if o != outcomeOK && len(s.errors) < maxKeptErrors {
		s.errors = append(s.errors, detail)
	}
}

func (s *stats) get(o outcome) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[o]
}

// since returns the counts added after the snapshot before, as a report.
func (s *stats) since(before [numOutcomes]int) string {
	now := s.snapshot()
	return fmt.Sprintf("%d ok, %d wrong, %d refused, %d other",
		now[outcomeOK]-before[outcomeOK], now[outcomeWrongLabel]-before[outcomeWrongLabel],
		now[outcomeContract]-before[outcomeContract], now[outcomeOtherError]-before[outcomeOtherError])
}

func (s *stats) snapshot() [numOutcomes]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts
}

func (s *stats) total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.counts {
		n += c
	}
	return n
}

func (s *stats) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	msg := fmt.Sprintf("%d ok, %d wrong labels %v, %d refused by the contract, %d other errors",
		s.counts[outcomeOK], s.counts[outcomeWrongLabel], s.wrong, s.counts[outcomeContract], s.counts[outcomeOtherError])
	if len(s.errors) > 0 {
		msg += "; first failures: " + strings.Join(s.errors, " | ")
	}
	return msg
}

// load sends the README's request to a changing set of prep replicas
// (host ports on 127.0.0.1), at most rate requests a second from a few
// workers, until max requests are done, stop is called or its context
// ends. Each request goes to the next target round-robin and is sent once:
// no retries, so every failure counts.
type load struct {
	client  *http.Client
	images  []colorImage
	targets atomic.Pointer[[]string]
	// inFlight counts requests in flight by target port.
	inFlightMu sync.Mutex
	inFlight   map[string]int
	stats      stats
	seq        atomic.Int64
}

func newLoad(images []colorImage, ports ...string) *load {
	l := &load{
		client: &http.Client{
			Timeout:   requestTimeout,
			Transport: &http.Transport{MaxIdleConnsPerHost: loadWorkers, IdleConnTimeout: 30 * time.Second},
		},
		images:   images,
		inFlight: map[string]int{},
	}
	l.setTargets(ports...)
	return l
}

// loadWorkers bounds the requests in flight.
const loadWorkers = 4

// setTargets replaces the ports new requests go to.
func (l *load) setTargets(ports ...string) {
	p := append([]string(nil), ports...)
	l.targets.Store(&p)
}

// busy reports the requests in flight to port.
func (l *load) busy(port string) int {
	l.inFlightMu.Lock()
	defer l.inFlightMu.Unlock()
	return l.inFlight[port]
}

// run sends the load and returns when it is done: max requests, stop
// closed, or ctx ended.
func (l *load) run(ctx context.Context, rate, max int, stop <-chan struct{}) {
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	var wg sync.WaitGroup
	for range loadWorkers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case <-stop:
					return
				case <-tick.C:
				}
				n := l.seq.Add(1)
				if n > int64(max) {
					return
				}
				l.one(ctx, n)
			}
		})
	}
	wg.Wait()
}

func (l *load) one(ctx context.Context, n int64) {
	targets := *l.targets.Load()
	port := targets[int(n)%len(targets)]
	img := l.images[int(n)%len(l.images)]
	l.inFlightMu.Lock()
	l.inFlight[port]++
	l.inFlightMu.Unlock()
	defer func() {
		l.inFlightMu.Lock()
		l.inFlight[port]--
		l.inFlightMu.Unlock()
	}()
	o, detail := predictLabel(ctx, l.client, port, img)
	l.stats.add(o, detail)
}

// predictLabel sends one request and classifies its answer.
func predictLabel(ctx context.Context, client *http.Client, port string, img colorImage) (outcome, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://127.0.0.1:"+port+"/predict/label", bytes.NewReader(img.body))
	if err != nil {
		return outcomeOtherError, err.Error()
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return outcomeOtherError, fmt.Sprintf("port %s: %v", port, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return outcomeOtherError, fmt.Sprintf("port %s: reading the answer: %v", port, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error struct{ Code, Message string }
		}
		_ = json.Unmarshal(body, &e)
		if e.Error.Code == "contract_changed" || e.Error.Code == "contract_mismatch" {
			return outcomeContract, fmt.Sprintf("port %s: %s %s", port, resp.Status, e.Error.Code)
		}
		return outcomeOtherError, fmt.Sprintf("port %s: %s %s", port, resp.Status, bytes.TrimSpace(body))
	}
	var answer struct{ Prediction string }
	if err := json.Unmarshal(body, &answer); err != nil {
		return outcomeOtherError, fmt.Sprintf("port %s: answer %q: %v", port, body, err)
	}
	if answer.Prediction != img.label {
		return outcomeWrongLabel, img.label + "->" + answer.Prediction
	}
	return outcomeOK, ""
}

// background runs l in a goroutine; wait returns once it has finished.
func (l *load) background(ctx context.Context, rate, max int) (stop func(), wait func()) {
	stopCh := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.run(ctx, rate, max, stopCh)
	}()
	var once sync.Once
	return func() { once.Do(func() { close(stopCh) }) }, func() { <-done }
}

// sortedKeys is for stable reports.
func sortedKeys(m map[string]float64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// waitFor polls cond until it returns "" or timeout passes; cond returns
// what it still waits for, which the failure reports.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		pending := cond()
		if pending == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still %s after %v", what, pending, timeout)
		}
		time.Sleep(pollInterval)
	}
}

// metricSum adds the samples of metric whose labels contain label.
func metricSum(text, metric, label string) float64 {
	var sum float64
	for _, line := range strings.Split(text, "\n") {
		name, rest, ok := strings.Cut(line, "{")
		if !ok || name != metric || !strings.Contains(rest, label) {
			continue
		}
		_, value, ok := strings.Cut(rest, "} ")
		var v float64
		if _, err := fmt.Sscan(value, &v); ok && err == nil {
			sum += v
		}
	}
	return sum
}
