// Package e2e tests the release contract between prep and pred, and how
// the pair behaves under faults, with real processes: pred built and
// started by predtest (ONNX Runtime, generated models), prep built and
// started by preptest, over loopback sockets. Model repositories for other
// releases are made in t.TempDir() from the generated colors model.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/prototext"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/pred/predtest"
	"github.com/prepred/prepred/prep/preptest"
)

// Time limits of the tests in this package. They bound waits for events;
// no test sleeps to synchronise.
const (
	// callTimeout bounds one HTTP or gRPC call of a test.
	callTimeout = 30 * time.Second
	// contractTimeout bounds the wait for prep to load (or refuse) a model
	// contract: pred may still be loading its models.
	contractTimeout = 60 * time.Second
	// loadTimeout bounds one load phase of a test (all its requests).
	loadTimeout = 2 * time.Minute
)

// colorsLabels are the labels of the colors model, in output order.
var colorsLabels = []string{"black", "white", "red", "green", "blue", "yellow", "cyan", "magenta", "gray"}

// redBody is the classic JSON body of testdata/images/red.jpg: with the
// colors model it is "red" when preprocessed as RGB and "blue" as BGR.
func redBody(t *testing.T) []byte {
	t.Helper()
	img, err := os.ReadFile(filepath.Join(predtest.RepoRoot(t), "testdata", "images", "red.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(map[string]string{"data": base64.StdEncoding.EncodeToString(img)})
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// release writes a model repository in a new temporary directory holding
// the generated colors model at each of versions (the same weights file),
// with its configuration changed by edit (nil: unchanged). It is one
// release of the model as a team would ship it.
func release(t *testing.T, versions []int64, edit func(*predv1.ModelConfig)) string {
	t.Helper()
	repo := t.TempDir()
	writeRelease(t, repo, versions, edit)
	return repo
}

// writeRelease writes the colors model of a release into the model
// repository repo, over what it holds: the configuration last, so that a
// reload sees the new versions' files in place.
func writeRelease(t *testing.T, repo string, versions []int64, edit func(*predv1.ModelConfig)) {
	t.Helper()
	src := filepath.Join(predtest.ModelRepository(t), "colors")
	dst := filepath.Join(repo, "colors")
	text, err := os.ReadFile(filepath.Join(src, "config.pbtxt"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := &predv1.ModelConfig{}
	if err := prototext.Unmarshal(text, cfg); err != nil {
		t.Fatalf("colors config.pbtxt: %v", err)
	}
	if edit != nil {
		edit(cfg)
	}
	text, err = prototext.MarshalOptions{Multiline: true}.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	labels, err := os.ReadFile(filepath.Join(src, "labels.json"))
	if err != nil {
		t.Fatal(err)
	}
	weights, err := os.ReadFile(filepath.Join(src, "1", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) {
		path := filepath.Join(dst, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("labels.json", labels)
	for _, v := range versions {
		write(filepath.Join(strconv.FormatInt(v, 10), "model.onnx"), weights)
	}
	write("config.pbtxt", text)
}

// bgr changes a release's spec to BGR channel order: the colors model's
// weights are unchanged, so a red image preprocessed as this spec says
// scores "blue".
func bgr(c *predv1.ModelConfig) {
	c.Preprocess.ColorOrder = predv1.ColorOrder_COLOR_ORDER_BGR
}

// startPred starts pred serving the model repository repo, on addr when
// addr is not empty (another release of a pred that was stopped there),
// with extra arguments.
func startPred(t *testing.T, repo, addr string, extra ...string) *predtest.Server {
	t.Helper()
	args := []string{"--model-repository", repo}
	if addr != "" {
		args = append(args, "--grpc-addr", addr)
	}
	return predtest.Start(t, append(args, extra...)...)
}

// startPrep starts prep serving the colors model of the pred(s) at
// predAddress, with extra arguments.
func startPrep(t *testing.T, predAddress string, extra ...string) *preptest.Server {
	t.Helper()
	return preptest.Start(t, append([]string{"--pred-address", predAddress, "--model", "colors"}, extra...)...)
}

// isContractLoaded matches prep's log line announcing a loaded contract
// of the given model version.
func isContractLoaded(version int64) func(map[string]any) bool {
	return func(m map[string]any) bool {
		v, _ := m["version"].(float64)
		return m["msg"] == "model contract loaded" && int64(v) == version
	}
}

// isContractRefused matches prep's log line saying that the contract is not
// loaded, with a reason containing every one of parts.
func isContractRefused(parts ...string) func(map[string]any) bool {
	return func(m map[string]any) bool {
		msg, _ := m["error"].(string)
		if m["msg"] != "model contract not loaded" {
			return false
		}
		for _, p := range parts {
			if !strings.Contains(msg, p) {
				return false
			}
		}
		return true
	}
}

// answer is one HTTP exchange with prep.
type answer struct {
	start, end time.Time
	status     int
	body       []byte
	// err is a transport error: no HTTP answer.
	err error
}

// topK is the body of /predict/topk.
type topK struct {
	Prediction []struct {
		Label string `json:"label"`
	} `json:"prediction"`
	Model   string `json:"model"`
	Version int64  `json:"version"`
}

// label returns the label and version of a 200 /predict/topk answer.
func (a answer) label() (string, int64, error) {
	var b topK
	if err := json.Unmarshal(a.body, &b); err != nil || len(b.Prediction) == 0 {
		return "", 0, fmt.Errorf("not a top-k answer (%v): %.300s", err, a.body)
	}
	return b.Prediction[0].Label, b.Version, nil
}

// errorCode returns the code and message of an error answer.
func (a answer) errorCode() (code, message string) {
	var b struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	_ = json.Unmarshal(a.body, &b)
	return b.Error.Code, b.Error.Message
}

func (a answer) String() string {
	if a.err != nil {
		return "transport error: " + a.err.Error()
	}
	return fmt.Sprintf("%d %.400s", a.status, a.body)
}

// refused reports whether a is a connection refused before any answer:
// nothing listens, the listener closed with the connection still in its
// backlog (reset), or the server closed a connection it had just accepted
// because it is shutting down (EOF). Load clients use a new connection
// per request where this matters, so none of these can cut off a request
// that was being served.
func (a answer) refused() bool {
	return a.status == 0 && (errors.Is(a.err, syscall.ECONNREFUSED) || errors.Is(a.err, syscall.ECONNRESET) || errors.Is(a.err, io.EOF))
}

// newHTTPClient returns a client for load: conns keep-alive connections
// (0: a new connection per request).
func newHTTPClient(conns int) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = conns
	tr.DisableKeepAlives = conns == 0
	return &http.Client{Transport: tr}
}

// post sends body to url and reads the whole answer.
func post(ctx context.Context, client *http.Client, url string, body []byte) answer {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	a := answer{start: time.Now()}
	defer func() { a.end = time.Now() }()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		a.err = err
		return a
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		a.err = err
		a.end = time.Now()
		return a
	}
	defer resp.Body.Close()
	a.status = resp.StatusCode
	a.body, a.err = io.ReadAll(resp.Body)
	a.end = time.Now()
	return a
}

// get reads url.
func get(t *testing.T, url string) answer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return answer{status: resp.StatusCode, body: b}
}

// predictRed posts the red image to prep's /predict/topk?k=1.
func predictRed(t *testing.T, prep *preptest.Server, body []byte) answer {
	t.Helper()
	return post(context.Background(), http.DefaultClient, prep.URL+"/predict/topk?k=1", body)
}

// load is a bounded closed-loop load: clients goroutines each send
// requests one after another, at most one per pace, until stop is called,
// max answers have been collected in all, or loadTimeout passes; a client
// whose connection is refused stops. Every answer is kept, in order of
// completion.
type load struct {
	mu      sync.Mutex
	answers []answer
	added   chan struct{} // closed and replaced whenever an answer arrives

	cancel context.CancelFunc
	done   chan struct{}
}

// startLoad starts the clients; the load stops when the test ends at the
// latest.
func startLoad(t *testing.T, clients, max int, pace time.Duration, send func(ctx context.Context) answer) *load {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), loadTimeout)
	l := &load{added: make(chan struct{}), cancel: cancel, done: make(chan struct{})}
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			var tick <-chan time.Time
			if pace > 0 {
				ticker := time.NewTicker(pace)
				defer ticker.Stop()
				tick = ticker.C
			}
			for ctx.Err() == nil {
				if tick != nil {
					select {
					case <-tick:
					case <-ctx.Done():
						return
					}
				}
				a := send(ctx)
				if ctx.Err() != nil && a.err != nil {
					return // cancelled by stop: not an answer
				}
				l.mu.Lock()
				if len(l.answers) >= max {
					l.mu.Unlock()
					cancel()
					return
				}
				l.answers = append(l.answers, a)
				close(l.added)
				l.added = make(chan struct{})
				l.mu.Unlock()
				if a.refused() {
					return
				}
			}
		})
	}
	go func() {
		wg.Wait()
		cancel()
		close(l.done)
	}()
	t.Cleanup(func() { l.stop() })
	return l
}

// stop ends the load and waits for the clients; it returns every answer.
func (l *load) stop() []answer {
	l.cancel()
	<-l.done
	return l.snapshot()
}

// wait returns every answer once the load has ended by itself (max
// answers, or loadTimeout).
func (l *load) wait() []answer {
	<-l.done
	return l.snapshot()
}

func (l *load) snapshot() []answer {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]answer(nil), l.answers...)
}

// waitFor waits until cond holds for the answers so far and returns them;
// it fails the test when the load ends first.
func (l *load) waitFor(t *testing.T, what string, cond func([]answer) bool) []answer {
	t.Helper()
	for {
		l.mu.Lock()
		answers, added := l.answers, l.added
		l.mu.Unlock()
		if cond(answers) {
			return append([]answer(nil), answers...)
		}
		select {
		case <-added:
		case <-l.done:
			if answers := l.snapshot(); cond(answers) {
				return answers
			}
			t.Fatalf("the load ended before %s; %d answers, last: %v", what, len(l.snapshot()), last(l.snapshot()))
		}
	}
}

func last(as []answer) any {
	if len(as) == 0 {
		return "none"
	}
	return as[len(as)-1]
}

// countOK counts the 200 answers that ended after since.
func countOK(since time.Time) func([]answer) int {
	return func(as []answer) int {
		n := 0
		for _, a := range as {
			if a.err == nil && a.status == http.StatusOK && a.end.After(since) {
				n++
			}
		}
		return n
	}
}

// atLeast turns a count into a condition for waitFor.
func atLeast(n int, count func([]answer) int) func([]answer) bool {
	return func(as []answer) bool { return count(as) >= n }
}

// metric reads the value of an unlabelled gauge or counter (e.g.
// go_goroutines) from a Prometheus text endpoint.
func metric(t *testing.T, url, name string) float64 {
	t.Helper()
	a := get(t, url)
	if a.status != http.StatusOK {
		t.Fatalf("GET %s: %v", url, a)
	}
	sc := bufio.NewScanner(bytes.NewReader(a.body))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("%s: %s: %v", url, sc.Text(), err)
			}
			return f
		}
	}
	t.Fatalf("%s has no metric %s", url, name)
	return 0
}

// predOK is pred's count of successful Predict calls of the colors model
// (pred_inference_requests_total, every version).
func predOK(t *testing.T, pred *predtest.Server) float64 {
	t.Helper()
	return predCount(t, pred, "pred_inference_requests_total", `model="colors"`, `code="OK"`)
}

// predCount sums the samples of pred's counter metric whose labels
// contain every one of labels.
func predCount(t *testing.T, pred *predtest.Server, metric string, labels ...string) float64 {
	t.Helper()
	a := get(t, "http://"+pred.HTTPAddr+"/metrics")
	var n float64
	sc := bufio.NewScanner(bytes.NewReader(a.body))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
lines:
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, metric+"{") {
			continue
		}
		for _, l := range labels {
			if !strings.Contains(line, l) {
				continue lines
			}
		}
		f, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("pred metrics: %s: %v", line, err)
		}
		n += f
	}
	return n
}
