package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	inferencepb "github.com/prepred/prepred/api/gen/inference"
	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/pred/internal/ortrt"
	"github.com/prepred/prepred/pred/internal/repository"
	"github.com/prepred/prepred/pred/internal/tensor"
)

// Limits that keep one benchmark run bounded.
const (
	// maxRequests bounds --requests and the request counts of the memory
	// runs.
	maxRequests = 1_000_000
	// maxClients bounds --clients.
	maxClients = 256
	// requestTimeout bounds one request.
	requestTimeout = time.Minute
)

// The benchmark's cases, in the order they run.
var allCases = []string{"ort", "grpc", "oip", "batch", "rss"}

type config struct {
	predBin     string
	ortLib      string
	repo        string
	workDir     string
	model       string
	rssModel    string
	requests    int
	clients     int
	batchReqs   int
	caseTimeout time.Duration
	rounds      int
	rssCounts   []int
	rssModelN   int
	cases       []string
}

func parseConfig(args []string, getenv func(string) string, usage io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("predbench", flag.ContinueOnError)
	fs.SetOutput(usage)
	defaultLib := getenv("ONNXRUNTIME_LIB")
	if defaultLib == "" {
		defaultLib = ".cache/onnxruntime/1.24.3/libonnxruntime.so.1"
	}
	var cases, rssCounts string
	fs.StringVar(&c.predBin, "pred-bin", "bin/pred", "pred binary to start")
	fs.StringVar(&c.ortLib, "ort-lib", defaultLib, "ONNX Runtime library (env ONNXRUNTIME_LIB)")
	fs.StringVar(&c.repo, "model-repository", "models", "model repository holding the models")
	fs.StringVar(&c.workDir, "work-dir", ".cache/bench", "directory for the benchmark's model repository (hard links to the models)")
	fs.StringVar(&c.model, "model", "resnet50", "model of the latency and batching cases")
	fs.StringVar(&c.rssModel, "rss-model", "colors", "model of the many-request memory runs")
	fs.IntVar(&c.requests, "requests", 200, "requests per latency case (ort, grpc, oip)")
	fs.IntVar(&c.clients, "clients", 8, "concurrent clients of the batching and memory cases")
	fs.IntVar(&c.batchReqs, "batch-requests", 400, "requests per batching case, over all clients")
	fs.DurationVar(&c.caseTimeout, "case-timeout", 2*time.Minute, "longest a case may run in one round; it stops early with what it measured")
	fs.IntVar(&c.rounds, "rounds", 10, "rounds the cases take turns in, each with its share of the requests, so that a machine whose speed drifts affects every case alike")
	fs.StringVar(&rssCounts, "rss-requests", "1000,20000", "comma-separated request counts of --rss-model after which pred's VmRSS is read")
	fs.IntVar(&c.rssModelN, "rss-model-requests", 1000, "requests of --model after which pred's VmRSS is read again (0: skip)")
	fs.StringVar(&cases, "cases", strings.Join(allCases, ","), "comma-separated cases to run: "+strings.Join(allCases, ", "))
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	for _, name := range strings.Split(cases, ",") {
		if !slices.Contains(allCases, name) {
			return c, fmt.Errorf("unknown case %q (known: %s)", name, strings.Join(allCases, ", "))
		}
		c.cases = append(c.cases, name)
	}
	for _, s := range strings.Split(rssCounts, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > maxRequests {
			return c, fmt.Errorf("--rss-requests: %q is not a count in [1, %d]", s, maxRequests)
		}
		c.rssCounts = append(c.rssCounts, n)
	}
	slices.Sort(c.rssCounts)
	switch {
	case c.requests < 1 || c.requests > maxRequests, c.batchReqs < 1 || c.batchReqs > maxRequests, c.rssModelN < 0 || c.rssModelN > maxRequests:
		return c, fmt.Errorf("request counts must be in [1, %d]", maxRequests)
	case c.clients < 1 || c.clients > maxClients:
		return c, fmt.Errorf("--clients must be in [1, %d]", maxClients)
	case c.rounds < 1 || c.rounds > c.requests || c.rounds > c.batchReqs:
		return c, fmt.Errorf("--rounds must be in [1, requests]")
	}
	return c, nil
}

// result is what one case measured.
type result struct {
	name      string
	requests  int
	images    int
	elapsed   time.Duration
	latencies []time.Duration
	note      string
	load      string // /proc/loadavg when the case ended
}

// add merges another round of the same case into r.
func (r *result) add(o result) {
	r.name = o.name
	r.requests += o.requests
	r.images += o.images
	r.elapsed += o.elapsed
	r.latencies = append(r.latencies, o.latencies...)
	if o.note != "" {
		r.note = o.note
	}
	r.load = o.load
}

func (r result) row() string {
	if r.requests == 0 {
		return fmt.Sprintf("| %s | – | – | – | – | %s | %s |", r.name, r.note, r.load)
	}
	slices.Sort(r.latencies)
	pct := func(p float64) time.Duration {
		i := int(math.Ceil(p*float64(len(r.latencies)))) - 1
		return r.latencies[max(i, 0)]
	}
	rate := float64(r.images) / r.elapsed.Seconds()
	return fmt.Sprintf("| %s | %d | %.1f | %.2f | %.2f | %s | %s |", r.name, r.requests, rate,
		ms(pct(0.50)), ms(pct(0.99)), r.note, r.load)
}

// ratioRow describes the per-round ratios of rates to base.
func ratioRow(name string, rates, base []float64) string {
	var ratios []float64
	for i := range min(len(rates), len(base)) {
		if base[i] > 0 {
			ratios = append(ratios, rates[i]/base[i])
		}
	}
	if len(ratios) == 0 {
		return fmt.Sprintf("| %s | – | – | – |", name)
	}
	slices.Sort(ratios)
	median := ratios[len(ratios)/2]
	if len(ratios)%2 == 0 {
		median = (ratios[len(ratios)/2-1] + median) / 2
	}
	return fmt.Sprintf("| %s | %.3f | %.3f | %.3f |", name, median, ratios[0], ratios[len(ratios)-1])
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	cfg, err := parseConfig(args, getenv, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	model, err := repository.ScanModel(cfg.repo, cfg.model)
	if err == nil && model.Err != nil {
		err = model.Err
	}
	if err != nil {
		return fmt.Errorf("model %s: %w", cfg.model, err)
	}
	input, err := newInput(model.Config, 1)
	if err != nil {
		return err
	}

	fmt.Fprintf(stdout, "# pred benchmark\n\n")
	fmt.Fprintf(stdout, "- date: %s\n- machine: %s, %d CPUs (GOMAXPROCS %d)\n- load average at start: %s\n",
		time.Now().UTC().Format(time.RFC3339), cpuModel(), runtime.NumCPU(), runtime.GOMAXPROCS(0), loadAvg())
	fmt.Fprintf(stdout, "- model: %s version %d (%s), input %v; runtime options %s (the same in-process and in pred)\n",
		cfg.model, lastVersion(model).Number, lastVersion(model).Path, input.Shape, runtimeOptions(model.Config))
	fmt.Fprintf(stdout, "- dynamic_batching: %s\n", batchingText(model.Config))
	fmt.Fprintf(stdout, "- the cases take turns in %d rounds; latencies are over all rounds\n\n", cfg.rounds)

	cases, cleanup, err := setupCases(ctx, cfg, model, input)
	defer cleanup()
	if err != nil {
		return err
	}
	results := make([]result, len(cases))
	rates := make([][]float64, len(cases)) // images/s per round
	for round := range cfg.rounds {
		for i, c := range cases {
			n := c.requests / cfg.rounds
			if round < c.requests%cfg.rounds {
				n++
			}
			r, err := c.run(ctx, n)
			results[i].add(r)
			if err != nil {
				return fmt.Errorf("%s: %w", r.name, err)
			}
			if r.elapsed > 0 {
				rates[i] = append(rates[i], float64(r.images)/r.elapsed.Seconds())
			}
		}
	}
	if len(results) > 0 {
		fmt.Fprintln(stdout, "| case | requests | images/s | p50 ms | p99 ms | note | load avg after |")
		fmt.Fprintln(stdout, "| --- | ---: | ---: | ---: | ---: | --- | --- |")
		for _, r := range results {
			fmt.Fprintln(stdout, r.row())
		}
	}
	if len(cases) > 1 && slices.Contains(cfg.cases, "ort") {
		// The ort case comes first. Rounds are seconds apart, so the ratio
		// within a round is free of the drift a shared machine has between
		// rounds.
		fmt.Fprintf(stdout, "\n| throughput / ONNX Runtime in-process, within each round | median | min | max |\n| --- | ---: | ---: | ---: |\n")
		for i := 1; i < len(cases); i++ {
			fmt.Fprintln(stdout, ratioRow(results[i].name, rates[i], rates[0]))
		}
	}
	cleanup()

	if slices.Contains(cfg.cases, "rss") {
		lines, err := benchMemory(ctx, cfg, input)
		fmt.Fprintf(stdout, "\n| pred VmRSS, serving %s as is | MiB |\n| --- | ---: |\n", cfg.repo)
		for _, l := range lines {
			fmt.Fprintln(stdout, l)
		}
		if err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "\nload average at end: %s\n", loadAvg())
	return nil
}

// benchCase is one case: it sends n requests and says what it measured.
type benchCase struct {
	requests int // over all rounds
	run      func(ctx context.Context, n int) (result, error)
}

// setupCases opens what the selected cases need: an ONNX Runtime session
// in this process, and a pred serving the model as configured and a copy
// without dynamic batching. cleanup releases them; it may be called more
// than once.
func setupCases(ctx context.Context, cfg config, model repository.Model, input tensor.Tensor) (cases []benchCase, cleanup func(), err error) {
	var closers []func()
	cleanup = func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
		closers = nil
	}
	want := func(name string) bool { return slices.Contains(cfg.cases, name) }
	var srv *server
	if want("grpc") || want("oip") || want("batch") {
		repo, err := benchRepository(cfg, model)
		if err != nil {
			return nil, cleanup, err
		}
		closers = append(closers, func() { os.RemoveAll(repo) })
		if srv, err = startPred(ctx, cfg.predBin, "--model-repository", repo, "--ort-lib", cfg.ortLib); err != nil {
			return nil, cleanup, err
		}
		closers = append(closers, srv.stop)
	}
	if want("ort") {
		ort, err := openORT(ctx, cfg, model, input)
		if err != nil {
			return nil, cleanup, fmt.Errorf("ort case: %w", err)
		}
		closers = append(closers, ort.close)
		cases = append(cases, benchCase{cfg.requests, ort.measure})
	}
	// sequential measures one client's requests and where their time went
	// inside pred.
	sequential := func(name string, predict predictFunc) benchCase {
		var total stats
		return benchCase{cfg.requests, func(ctx context.Context, n int) (result, error) {
			before, err := execStats(ctx, srv, cfg.model)
			if err != nil {
				return result{name: name}, err
			}
			r, err := drive(ctx, cfg, name, n, 1, 1, true, predict)
			if err != nil {
				return r, err
			}
			after, err := execStats(ctx, srv, cfg.model)
			if err != nil {
				return r, err
			}
			d := after.sub(before)
			total = stats{queueSum: total.queueSum + d.queueSum, inferSum: total.inferSum + d.inferSum, reqSum: total.reqSum + d.reqSum,
				queueN: total.queueN + d.queueN, inferN: total.inferN + d.inferN, reqN: total.reqN + d.reqN}
			r.note = total.inPred()
			return r, nil
		}}
	}
	if want("grpc") {
		cases = append(cases, sequential("pred, native gRPC (prepred.pred.v1), batch 1, sequential", nativePredict(srv, cfg.model, input)))
	}
	if want("oip") {
		c := sequential("pred, Open Inference Protocol gRPC (ModelInfer), batch 1, sequential", oipPredict(srv, cfg.model, input))
		cases = append(cases, benchCase{c.requests, func(ctx context.Context, n int) (result, error) {
			r, err := c.run(ctx, n)
			if status.Code(err) == codes.Unimplemented {
				return result{name: r.name, note: "skipped: this pred does not serve inference.GRPCInferenceService", load: loadAvg()}, nil
			}
			return r, err
		}})
	}
	if want("batch") {
		for _, m := range []string{cfg.model, cfg.model + noBatchSuffix} {
			name := fmt.Sprintf("pred, native gRPC, batch 1, %d concurrent clients, ", cfg.clients)
			if m == cfg.model {
				name += "dynamic batching"
			} else {
				name += "no dynamic batching"
			}
			var execs, items float64
			cases = append(cases, benchCase{cfg.batchReqs, func(ctx context.Context, n int) (result, error) {
				before, err := execStats(ctx, srv, m)
				if err != nil {
					return result{name: name}, err
				}
				r, err := drive(ctx, cfg, name, n, cfg.clients, 1, true, nativePredict(srv, m, input))
				after, statErr := execStats(ctx, srv, m)
				if err == nil && statErr == nil {
					// The first request of each round runs outside the
					// measurement but is counted here too.
					d := after.sub(before)
					execs += d.execs
					items += d.items
					if execs > 0 {
						r.note = fmt.Sprintf("%.0f executions, %.2f images per execution", execs, items/execs)
					}
				}
				return r, err
			}})
		}
	}
	return cases, cleanup, nil
}

func lastVersion(m repository.Model) repository.Version {
	if len(m.Versions) == 0 {
		return repository.Version{}
	}
	return m.Versions[len(m.Versions)-1]
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func runtimeOptions(cfg *predv1.ModelConfig) string {
	rt := cfg.GetRuntime()
	if rt == nil {
		return "ONNX Runtime's defaults (intra-op threads = physical cores)"
	}
	return strings.TrimSpace(prototext.Format(rt))
}

func batchingText(cfg *predv1.ModelConfig) string {
	if cfg.GetDynamicBatching() == nil {
		return "none"
	}
	return fmt.Sprintf("max_batch_size %d, %s", cfg.GetMaxBatchSize(), strings.Join(strings.Fields(prototext.Format(cfg.GetDynamicBatching())), " "))
}

// newInput returns a deterministic input of the model's first input for
// n images; the cost of a convolutional network does not depend on it.
func newInput(cfg *predv1.ModelConfig, n int64) (tensor.Tensor, error) {
	if len(cfg.GetInputs()) != 1 {
		return tensor.Tensor{}, fmt.Errorf("model %s has %d inputs; the benchmark sends one", cfg.GetName(), len(cfg.GetInputs()))
	}
	spec := cfg.GetInputs()[0]
	if spec.GetDtype() != predv1.DataType_DATA_TYPE_FLOAT32 {
		return tensor.Tensor{}, fmt.Errorf("model %s takes %v; the benchmark sends float32", cfg.GetName(), spec.GetDtype())
	}
	shape := []int64{}
	if cfg.GetMaxBatchSize() > 0 {
		shape = append(shape, n)
	}
	for _, d := range spec.GetShape() {
		shape = append(shape, max(d, 1))
	}
	count, err := tensor.ElementCount(shape)
	if err != nil {
		return tensor.Tensor{}, err
	}
	data := make([]byte, 0, 4*count)
	for i := range count {
		data = binary.LittleEndian.AppendUint32(data, math.Float32bits(float32(i%251)/251-0.5))
	}
	return tensor.Tensor{Name: spec.GetName(), DType: spec.GetDtype(), Shape: shape, Data: data}, nil
}

// ortCase runs the model in this process through ONNX Runtime, as pred
// does, one image at a time.
type ortCase struct {
	rt     *ortrt.Runtime
	sess   *ortrt.Session
	in     []tensor.Tensor
	shapes [][]int64
	cfg    config
}

func openORT(ctx context.Context, cfg config, model repository.Model, input tensor.Tensor) (*ortCase, error) {
	rt, err := ortrt.New(cfg.ortLib)
	if err != nil {
		return nil, err
	}
	c := &ortCase{rt: rt, in: []tensor.Tensor{input}, cfg: cfg}
	opts := ortrt.FromConfig(model.Config.GetRuntime())
	for _, o := range model.Config.GetOutputs() {
		opts.OutputNames = append(opts.OutputNames, o.GetName())
		shape := o.GetShape()
		if model.Config.GetMaxBatchSize() > 0 {
			shape = append([]int64{1}, shape...)
		}
		if slices.Contains(shape, -1) {
			shape = nil
		}
		c.shapes = append(c.shapes, shape)
	}
	if c.sess, err = rt.Open(lastVersion(model).Path, opts); err != nil {
		rt.Close()
		return nil, err
	}
	if _, err := c.sess.Run(ctx, c.in, c.shapes); err != nil { // warm-up, as pred's
		c.close()
		return nil, err
	}
	return c, nil
}

func (c *ortCase) measure(ctx context.Context, n int) (result, error) {
	r := result{name: "ONNX Runtime in-process, batch 1, sequential"}
	deadline := time.Now().Add(c.cfg.caseTimeout)
	start := time.Now()
	for r.requests < n && time.Now().Before(deadline) && ctx.Err() == nil {
		t := time.Now()
		if _, err := c.sess.Run(ctx, c.in, c.shapes); err != nil {
			return r, err
		}
		r.latencies = append(r.latencies, time.Since(t))
		r.requests++
	}
	r.elapsed, r.images, r.load = time.Since(start), r.requests, loadAvg()
	return r, nil
}

func (c *ortCase) close() {
	c.sess.Close()
	c.rt.Close()
}

// noBatchSuffix names the copy of the model without dynamic batching.
const noBatchSuffix = "-nobatch"

// benchRepository makes the repository pred serves in the latency and
// batching cases: the model as configured and a copy without dynamic
// batching, hard links to the repository's files (copies across file
// systems).
func benchRepository(cfg config, model repository.Model) (string, error) {
	if err := os.MkdirAll(cfg.workDir, 0o755); err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp(cfg.workDir, "repo-")
	if err != nil {
		return "", err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(dir)
		}
	}()
	plain := proto.Clone(model.Config).(*predv1.ModelConfig)
	plain.Name += noBatchSuffix
	plain.DynamicBatching = nil
	models := []struct {
		src, name string
		config    *predv1.ModelConfig
	}{{cfg.model, cfg.model, nil}, {cfg.model, plain.Name, plain}}
	for _, m := range models {
		if err := linkTree(filepath.Join(cfg.repo, m.src), filepath.Join(dir, m.name)); err != nil {
			return "", fmt.Errorf("model %s: %w", m.src, err)
		}
		if m.config == nil {
			continue
		}
		text, err := prototext.MarshalOptions{Multiline: true}.Marshal(m.config)
		if err != nil {
			return "", err
		}
		for _, name := range []string{repository.ConfigTextFile, repository.ConfigJSONFile} {
			os.Remove(filepath.Join(dir, m.name, name))
		}
		if err := os.WriteFile(filepath.Join(dir, m.name, repository.ConfigTextFile), text, 0o644); err != nil {
			return "", err
		}
	}
	ok = true
	return dir, nil
}

// linkTree recreates the directory tree src at dst with hard links (or
// copies) of its files.
func linkTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if err := os.Link(path, target); err == nil {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
}

// predictFunc sends one request of the benchmark's input.
type predictFunc func(ctx context.Context) error

func nativePredict(srv *server, model string, input tensor.Tensor) predictFunc {
	client := predv1.NewPredServiceClient(srv.conn)
	req := &predv1.PredictRequest{Model: model, Inputs: []*predv1.Tensor{{
		Name: input.Name, Dtype: input.DType, Shape: input.Shape, RawData: input.Data,
	}}}
	return func(ctx context.Context) error {
		_, err := client.Predict(ctx, req)
		return err
	}
}

func oipPredict(srv *server, model string, input tensor.Tensor) predictFunc {
	client := inferencepb.NewGRPCInferenceServiceClient(srv.conn)
	req := &inferencepb.ModelInferRequest{
		ModelName:        model,
		Inputs:           []*inferencepb.ModelInferRequest_InferInputTensor{{Name: input.Name, Datatype: "FP32", Shape: input.Shape}},
		RawInputContents: [][]byte{input.Data},
	}
	return func(ctx context.Context) error {
		_, err := client.ModelInfer(ctx, req)
		return err
	}
}

// drive sends n requests from clients concurrent clients (stopping early
// at the case timeout) and records each request's latency. With warm, one
// more request goes first, outside the measurement.
func drive(ctx context.Context, cfg config, name string, n, clients, imagesPerRequest int, warm bool, predict predictFunc) (result, error) {
	if warm {
		if err := predict(ctx); err != nil {
			return result{name: name}, err
		}
	}
	r := result{name: name}
	deadline := time.Now().Add(cfg.caseTimeout)
	var next atomic.Int64
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	start := time.Now()
	for range clients {
		wg.Go(func() {
			var local []time.Duration
			for next.Add(1) <= int64(n) && time.Now().Before(deadline) && ctx.Err() == nil {
				rctx, cancel := context.WithTimeout(ctx, requestTimeout)
				t := time.Now()
				err := predict(rctx)
				cancel()
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				local = append(local, time.Since(t))
			}
			mu.Lock()
			r.latencies = append(r.latencies, local...)
			mu.Unlock()
		})
	}
	wg.Wait()
	r.elapsed = time.Since(start)
	r.requests = len(r.latencies)
	r.images = r.requests * imagesPerRequest
	r.load = loadAvg()
	return r, firstErr
}

// benchMemory starts pred on the repository as it is and reads its VmRSS
// after start, after the --rss-requests counts of --rss-model requests and
// after --rss-model-requests more of --model.
func benchMemory(ctx context.Context, cfg config, input tensor.Tensor) ([]string, error) {
	srv, err := startPred(ctx, cfg.predBin, "--model-repository", cfg.repo, "--ort-lib", cfg.ortLib)
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	var lines []string
	read := func(what string) error {
		kib, err := srv.rssKiB()
		if err != nil {
			return err
		}
		lines = append(lines, fmt.Sprintf("| %s | %d |", what, kib/1024))
		return nil
	}
	if err := read("after start (models loaded and warmed up)"); err != nil {
		return lines, err
	}
	small, err := repository.ScanModel(cfg.repo, cfg.rssModel)
	if err != nil {
		return lines, err
	}
	smallInput, err := newInput(small.Config, 1)
	if err != nil {
		return lines, err
	}
	done := 0
	for _, n := range cfg.rssCounts {
		r, err := drive(ctx, cfg, "memory run", n-done, cfg.clients, 1, false, nativePredict(srv, cfg.rssModel, smallInput))
		done += r.requests
		if err != nil {
			return lines, fmt.Errorf("memory run: %w", err)
		}
		if err := read(fmt.Sprintf("after %d %s requests (%d clients; %.0f requests/s)", done, cfg.rssModel, cfg.clients, float64(r.requests)/r.elapsed.Seconds())); err != nil {
			return lines, err
		}
	}
	if cfg.rssModelN > 0 {
		r, err := drive(ctx, cfg, "memory run", cfg.rssModelN, cfg.clients, 1, false, nativePredict(srv, cfg.model, input))
		if err != nil {
			return lines, fmt.Errorf("memory run: %w", err)
		}
		if err := read(fmt.Sprintf("then after %d %s requests (%d clients; %.1f requests/s)", r.requests, cfg.model, cfg.clients, float64(r.requests)/r.elapsed.Seconds())); err != nil {
			return lines, err
		}
	}
	return lines, nil
}

// stats are a model's counters from /metrics: executions, items, and the
// sums (seconds) and counts of the queue, run and request durations.
type stats struct {
	execs, items               float64
	queueSum, inferSum, reqSum float64
	queueN, inferN, reqN       float64
}

// sub returns the change from before to s.
func (s stats) sub(before stats) stats {
	return stats{s.execs - before.execs, s.items - before.items,
		s.queueSum - before.queueSum, s.inferSum - before.inferSum, s.reqSum - before.reqSum,
		s.queueN - before.queueN, s.inferN - before.inferN, s.reqN - before.reqN}
}

// inPred describes where the time went inside pred.
func (s stats) inPred() string {
	mean := func(sum, n float64) float64 {
		if n == 0 {
			return 0
		}
		return sum / n * 1000
	}
	return fmt.Sprintf("mean in pred: request %.2f ms = queue %.2f ms + run %.2f ms + rest", mean(s.reqSum, s.reqN), mean(s.queueSum, s.queueN), mean(s.inferSum, s.inferN))
}

func execStats(ctx context.Context, srv *server, model string) (stats, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+srv.httpAddr+"/metrics", nil)
	if err != nil {
		return stats{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return stats{}, fmt.Errorf("metrics: %w", err)
	}
	defer resp.Body.Close()
	var s stats
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	label := `{model="` + model + `",`
	for sc.Scan() {
		line := sc.Text()
		for _, m := range []struct {
			name string
			dst  *float64
		}{
			{"pred_inference_exec_count_total", &s.execs}, {"pred_inference_count_total", &s.items},
			{"pred_inference_queue_duration_seconds_sum", &s.queueSum}, {"pred_inference_queue_duration_seconds_count", &s.queueN},
			{"pred_inference_compute_infer_duration_seconds_sum", &s.inferSum}, {"pred_inference_compute_infer_duration_seconds_count", &s.inferN},
			{"pred_inference_request_duration_seconds_sum", &s.reqSum}, {"pred_inference_request_duration_seconds_count", &s.reqN},
		} {
			if rest, ok := strings.CutPrefix(line, m.name+label); ok {
				if i := strings.LastIndexByte(rest, ' '); i >= 0 {
					v, _ := strconv.ParseFloat(rest[i+1:], 64)
					*m.dst += v
				}
			}
		}
	}
	return s, sc.Err()
}
