package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prepred/prepred/api/otelsetup"
	"github.com/prepred/prepred/pred/predtest"
	"github.com/prepred/prepred/pred/proctest"
	"github.com/prepred/prepred/prep/preptest"
)

// Time limits of the tracing test.
const (
	// jaegerBuildTimeout bounds scripts/install-jaeger.sh: a cold build of
	// Jaeger takes about 10 minutes on 2 cores, a warm one a moment.
	jaegerBuildTimeout = 20 * time.Minute
	// jaegerReadyTimeout bounds Jaeger's start.
	jaegerReadyTimeout = time.Minute
	// traceTimeout bounds the wait for every span of the request's trace
	// to be queryable: both services export in batches (every 100 ms with
	// the OTEL_BSP_SCHEDULE_DELAY the test sets), Jaeger batches too.
	traceTimeout = time.Minute
	// pollInterval spaces the test's queries to Jaeger.
	pollInterval = 100 * time.Millisecond
	// jaegerStartTries bounds restarts of Jaeger when another process took
	// one of the free ports picked for it before it bound them.
	jaegerStartTries = 3
)

// jaegerConfig is an all-in-one Jaeger on loopback: OTLP receivers (gRPC
// and HTTP), in-memory storage, the query API; no metrics endpoint.
const jaegerConfig = `service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: info
      encoding: json
      output_paths: [stdout]
extensions:
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:%d
    grpc:
      endpoint: 127.0.0.1:%d
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 1000
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:%d
      http:
        endpoint: 127.0.0.1:%d
processors:
  batch:
    timeout: 50ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
`

// jaeger is a running Jaeger.
type jaeger struct {
	queryURL string // http://127.0.0.1:port of the query API
	otlpGRPC string // http://127.0.0.1:port of the OTLP/gRPC receiver
	otlpHTTP string // http://127.0.0.1:port of the OTLP/HTTP receiver
}

// jaegerBinary builds Jaeger if needed (scripts/install-jaeger.sh) and
// returns its path.
func jaegerBinary(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), jaegerBuildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(predtest.RepoRoot(t), "scripts", "install-jaeger.sh"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("scripts/install-jaeger.sh: %v\n%s", err, stderr.Bytes())
	}
	return strings.TrimSpace(string(out))
}

// freePorts returns n loopback ports that were free a moment ago.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}

// startJaeger runs Jaeger on free loopback ports until the test ends.
func startJaeger(t *testing.T) *jaeger {
	t.Helper()
	bin := jaegerBinary(t)
	dir := t.TempDir()
	for try := 1; ; try++ {
		ports := freePorts(t, 4)
		cfg := filepath.Join(dir, fmt.Sprintf("config-%d.yaml", try))
		if err := os.WriteFile(cfg, fmt.Appendf(nil, jaegerConfig, ports[0], ports[1], ports[2], ports[3]), 0o644); err != nil {
			t.Fatal(err)
		}
		proc, err := proctest.Start("jaeger", exec.Command(bin, "--config", cfg))
		if err != nil {
			t.Fatal(err)
		}
		_, ready := proc.WaitLine(0, jaegerReadyTimeout, func(l string) bool { return strings.Contains(l, "Everything is ready") })
		if ready {
			t.Cleanup(func() { proc.Stop(stopTimeout) })
			return &jaeger{
				queryURL: fmt.Sprintf("http://127.0.0.1:%d", ports[0]),
				otlpGRPC: fmt.Sprintf("http://127.0.0.1:%d", ports[2]),
				otlpHTTP: fmt.Sprintf("http://127.0.0.1:%d", ports[3]),
			}
		}
		proc.Kill()
		if try == jaegerStartTries {
			t.Fatalf("jaeger did not start in %d tries:\n%s", try, proc.Output())
		}
	}
}

// stopTimeout bounds Jaeger's exit after SIGTERM.
const stopTimeout = 10 * time.Second

// jaegerSpan is a span as Jaeger's query API (/api/traces/{id}) returns it.
type jaegerSpan struct {
	TraceID       string `json:"traceID"`
	SpanID        string `json:"spanID"`
	OperationName string `json:"operationName"`
	References    []struct {
		RefType string `json:"refType"`
		SpanID  string `json:"spanID"`
	} `json:"references"`
	StartTime int64 `json:"startTime"` // microseconds since the epoch
	Duration  int64 `json:"duration"`  // microseconds
	Tags      []struct {
		Key   string `json:"key"`
		Value any    `json:"value"`
	} `json:"tags"`
	ProcessID string `json:"processID"`
	service   string
}

func (s *jaegerSpan) parent() string {
	for _, r := range s.References {
		if r.RefType == "CHILD_OF" {
			return r.SpanID
		}
	}
	return ""
}

func (s *jaegerSpan) end() int64 { return s.StartTime + s.Duration }

func (s *jaegerSpan) tag(key string) any {
	for _, t := range s.Tags {
		if t.Key == key {
			return t.Value
		}
	}
	return nil
}

// traceSpans queries Jaeger for the spans of trace id; none while it has
// not stored the trace.
func (j *jaeger) traceSpans(t *testing.T, id string) []*jaegerSpan {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.queryURL+"/api/traces/"+id, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("query jaeger: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode == http.StatusNotFound {
		return nil
	}
	var out struct {
		Data []struct {
			Spans     []*jaegerSpan `json:"spans"`
			Processes map[string]struct {
				ServiceName string `json:"serviceName"`
			} `json:"processes"`
		} `json:"data"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &out) != nil {
		t.Fatalf("jaeger answered %d: %s", resp.StatusCode, body)
	}
	if len(out.Data) > 1 {
		t.Fatalf("jaeger returned %d traces for ID %s", len(out.Data), id)
	}
	var spans []*jaegerSpan
	for _, d := range out.Data {
		for _, s := range d.Spans {
			s.service = d.Processes[s.ProcessID].ServiceName
			spans = append(spans, s)
		}
	}
	return spans
}

// spanKey names a span by service and operation.
type spanKey struct{ service, op string }

// TestTraceAcrossPrepAndPred sends one request with a W3C traceparent
// through real prep and pred exporting to a real Jaeger, and checks that
// Jaeger holds one trace with the spans of both services, nested and in
// order, with the model's attributes, and that both services' request log
// lines carry its IDs.
func TestTraceAcrossPrepAndPred(t *testing.T) {
	j := startJaeger(t)
	common := []string{"OTEL_BSP_SCHEDULE_DELAY=100", "OTEL_TRACES_SAMPLER=parentbased_always_on"}
	// pred exports over OTLP/gRPC, prep over OTLP/HTTP: both exporters run.
	pred := predtest.StartEnv(t, append([]string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + j.otlpGRPC, "OTEL_EXPORTER_OTLP_PROTOCOL=grpc"}, common...),
		"--model-repository", release(t, []int64{1}, nil), "--log-level", "debug")
	prep := startPrepEnv(t, pred.GRPCAddr, append([]string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + j.otlpHTTP}, common...))
	prep.WaitLog(t, contractTimeout, isContractLoaded(1))

	const traceID, clientSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	ready := get(t, prep.URL+"/ready")
	var readyBody struct {
		Fingerprint string `json:"spec_fingerprint"`
	}
	if ready.status != http.StatusOK || json.Unmarshal(ready.body, &readyBody) != nil || readyBody.Fingerprint == "" {
		t.Fatalf("/ready: %v", ready)
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, prep.URL+"/predict/label", bytes.NewReader(redBody(t)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", "00-"+traceID+"-"+clientSpan+"-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"red"`) {
		t.Fatalf("/predict/label: %d %s", resp.StatusCode, body)
	}

	const (
		request    = "POST /predict/label"
		predict    = "prepred.pred.v1.PredService/Predict"
		preprocess = "preprocess"
	)
	want := []spanKey{
		{"prep", request}, {"prep", preprocess}, {"prep", "decode_resize_normalize"}, {"prep", predict},
		{"pred", predict}, {"pred", "queue"}, {"pred", "batch"}, {"pred", "ort.run"},
	}
	byKey := map[spanKey]*jaegerSpan{}
	deadline := time.Now().Add(traceTimeout)
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		spans := j.traceSpans(t, traceID)
		clear(byKey)
		for _, s := range spans {
			if s.TraceID != traceID {
				t.Fatalf("span %s %s in trace %s, want %s", s.service, s.OperationName, s.TraceID, traceID)
			}
			k := spanKey{s.service, s.OperationName}
			if byKey[k] != nil {
				t.Fatalf("two spans %v in the trace", k)
			}
			byKey[k] = s
		}
		if len(byKey) >= len(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v Jaeger has %d spans of trace %s, want %v: %v", traceTimeout, len(spans), traceID, want, byKey)
		}
		<-tick.C
	}
	if len(byKey) != len(want) {
		t.Errorf("trace has %d spans, want %d: %v", len(byKey), len(want), byKey)
	}
	span := func(k spanKey) *jaegerSpan {
		s := byKey[k]
		if s == nil {
			t.Fatalf("no span %v in the trace", k)
		}
		return s
	}
	// parent, child: the child's parent is parent; it starts no earlier
	// and ends no later.
	nested := []struct{ parent, child spanKey }{
		{want[0], want[1]}, {want[1], want[2]}, {want[0], want[3]},
		{want[3], want[4]}, {want[4], want[5]}, {want[4], want[6]}, {want[6], want[7]},
	}
	if p := span(want[0]).parent(); p != clientSpan {
		t.Errorf("prep's request span has parent %q, want the traceparent's span %s", p, clientSpan)
	}
	for _, n := range nested {
		p, c := span(n.parent), span(n.child)
		if c.parent() != p.SpanID {
			t.Errorf("%v has parent %s, want %v (%s)", n.child, c.parent(), n.parent, p.SpanID)
		}
		// Clocks are the same machine's; Jaeger keeps microseconds, start
		// and duration each truncated, so an end may move by one.
		if c.StartTime < p.StartTime || c.end() > p.end()+1 {
			t.Errorf("%v [%d, %d] is not within %v [%d, %d]", n.child, c.StartTime, c.end(), n.parent, p.StartTime, p.end())
		}
	}
	// In order: the call to pred after preprocessing, the batch after the
	// queue wait.
	if span(want[3]).StartTime+1 < span(want[1]).end() {
		t.Error("the pred call starts before preprocessing ended")
	}
	if span(want[6]).StartTime+1 < span(want[5]).end() {
		t.Error("the batch starts before the queue wait ended")
	}
	for _, k := range []spanKey{want[0], want[4], want[5], want[6], want[7]} {
		s := span(k)
		if s.tag(otelsetup.AttrModel) != "colors" || s.tag(otelsetup.AttrVersion) != float64(1) || s.tag(otelsetup.AttrFingerprint) != readyBody.Fingerprint {
			t.Errorf("%v: model %v version %v fingerprint %v, want colors 1 %s", k,
				s.tag(otelsetup.AttrModel), s.tag(otelsetup.AttrVersion), s.tag(otelsetup.AttrFingerprint), readyBody.Fingerprint)
		}
	}
	if got := span(want[6]).tag(otelsetup.AttrBatchSize); got != float64(1) {
		t.Errorf("batch size %v, want 1", got)
	}

	// The request log lines of both services carry the trace's IDs.
	line := prep.WaitLog(t, callTimeout, func(m map[string]any) bool { return m["msg"] == "request" && m["route"] == "/predict/label" })
	if line["trace_id"] != traceID || line["span_id"] != span(want[0]).SpanID {
		t.Errorf("prep's request line has trace_id %v span_id %v, want %s %s", line["trace_id"], line["span_id"], traceID, span(want[0]).SpanID)
	}
	predLine := pred.WaitLog(t, callTimeout, func(l string) bool {
		return strings.Contains(l, `"msg":"rpc"`) && strings.Contains(l, `"method":"/`+predict+`"`)
	})
	var m map[string]any
	if err := json.Unmarshal([]byte(predLine), &m); err != nil {
		t.Fatal(err)
	}
	if m["trace_id"] != traceID || m["span_id"] != span(want[4]).SpanID {
		t.Errorf("pred's rpc line has trace_id %v span_id %v, want %s %s", m["trace_id"], m["span_id"], traceID, span(want[4]).SpanID)
	}
}

// startPrepEnv is startPrep with env added to prep's environment.
func startPrepEnv(t *testing.T, predAddress string, env []string, extra ...string) *preptest.Server {
	t.Helper()
	return preptest.StartEnv(t, env, append([]string{"--pred-address", predAddress, "--model", "colors"}, extra...)...)
}
