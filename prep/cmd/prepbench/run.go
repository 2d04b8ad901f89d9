package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/prep/internal/imageprep"
)

const usage = `Usage:
  prepbench load -url http://127.0.0.1:8000 -image IMAGE [-c 1,4,16] [-n 200] [-max-time 60s]
  prepbench preprocess -pred 127.0.0.1:50051 -model resnet50 -image IMAGE [-n 200]

load prints one line per concurrency:
  load model=M c=C n=N errors=E images_per_s=X p50_ms=X p99_ms=X mean_ms=X seconds=X
preprocess prints:
  preprocess model=M n=N mean_ms=X p50_ms=X min_ms=X
`

// Limits of one run, so that a mistaken flag cannot run for hours.
const (
	// maxRequests bounds -n.
	maxRequests = 1_000_000
	// callTimeout bounds one request or RPC.
	callTimeout = 60 * time.Second
	// maxPixels is the preprocessing limit, prep's default.
	maxPixels = 50_000_000
)

// run executes the subcommand in args and writes its results to stdout.
func run(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("no subcommand\n" + strings.TrimSpace(usage))
	}
	switch args[0] {
	case "load":
		return runLoad(ctx, args[1:], stdout)
	case "preprocess":
		return runPreprocess(ctx, args[1:], stdout)
	case "-h", "-help", "--help", "help":
		_, err := io.WriteString(stdout, usage)
		return err
	}
	return fmt.Errorf("unknown subcommand %q\n%s", args[0], strings.TrimSpace(usage))
}

// loadConfig are the flags of "load".
type loadConfig struct {
	url         string
	path        string
	image       string
	concurrency []int
	requests    int
	warmup      int
	maxTime     time.Duration
}

func parseLoad(args []string) (loadConfig, error) {
	var c loadConfig
	var levels string
	fs := flag.NewFlagSet("prepbench load", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.url, "url", "http://127.0.0.1:8000", "prep's base URL")
	fs.StringVar(&c.path, "path", "/predict/label", "prediction route; the image is sent as the classic JSON body {\"data\": \"<base64>\"}")
	fs.StringVar(&c.image, "image", "", "image file to send (required)")
	fs.StringVar(&levels, "c", "1,4,16", "comma-separated numbers of concurrent clients")
	fs.IntVar(&c.requests, "n", 200, "requests measured per concurrency")
	fs.IntVar(&c.warmup, "warmup", 0, "requests per concurrency before measuring (default: 2 per client)")
	fs.DurationVar(&c.maxTime, "max-time", 60*time.Second, "bound of one concurrency's measurement; it stops early with fewer requests")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	switch {
	case fs.NArg() > 0:
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	case c.image == "":
		return c, errors.New("-image is required")
	case c.requests < 1 || c.requests > maxRequests:
		return c, fmt.Errorf("-n %d is outside 1..%d", c.requests, maxRequests)
	case c.maxTime <= 0:
		return c, fmt.Errorf("-max-time %v must be positive", c.maxTime)
	case c.warmup < 0:
		return c, fmt.Errorf("-warmup %d must not be negative", c.warmup)
	}
	for _, f := range strings.Split(levels, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 1024 {
			return c, fmt.Errorf("-c %q: each level is a number of clients in 1..1024", levels)
		}
		c.concurrency = append(c.concurrency, n)
	}
	return c, nil
}

// result is one concurrency's measurement.
type result struct {
	clients   int
	latencies []time.Duration // successful requests
	errors    int
	firstErr  string
	elapsed   time.Duration
}

func runLoad(ctx context.Context, args []string, stdout io.Writer) error {
	cfg, err := parseLoad(args)
	if err != nil {
		return err
	}
	img, err := os.ReadFile(cfg.image)
	if err != nil {
		return err
	}
	body, err := json.Marshal(map[string]string{"data": base64.StdEncoding.EncodeToString(img)})
	if err != nil {
		return err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = slices.Max(cfg.concurrency)
	client := &http.Client{Transport: tr, Timeout: callTimeout}
	defer client.CloseIdleConnections()
	model, err := readyModel(ctx, client, cfg.url)
	if err != nil {
		return err
	}
	url := strings.TrimSuffix(cfg.url, "/") + cfg.path
	failed := false
	for _, c := range cfg.concurrency {
		warmup := cfg.warmup
		if warmup == 0 {
			warmup = 2 * c
		}
		if r := measure(ctx, client, url, body, c, warmup, cfg.maxTime); r.errors > 0 {
			return fmt.Errorf("warm-up at concurrency %d: %d errors, first: %s", c, r.errors, r.firstErr)
		}
		r := measure(ctx, client, url, body, c, cfg.requests, cfg.maxTime)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		n := len(r.latencies)
		slices.Sort(r.latencies)
		fmt.Fprintf(stdout, "load model=%s c=%d n=%d errors=%d images_per_s=%.2f p50_ms=%.2f p99_ms=%.2f mean_ms=%.2f seconds=%.2f\n",
			model, c, n, r.errors, float64(n)/r.elapsed.Seconds(),
			ms(percentile(r.latencies, 50)), ms(percentile(r.latencies, 99)), ms(mean(r.latencies)), r.elapsed.Seconds())
		if r.errors > 0 {
			fmt.Fprintf(stdout, "# first error at c=%d: %s\n", c, r.firstErr)
			failed = true
		}
	}
	if failed {
		return errors.New("some requests failed")
	}
	return nil
}

// readyModel reads prep's /ready and returns the model it serves; prep must
// be ready.
func readyModel(ctx context.Context, client *http.Client, base string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	url := strings.TrimSuffix(base, "/") + "/ready"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	var body struct {
		Model string `json:"model"`
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &body) != nil {
		return "", fmt.Errorf("GET %s: %d %.300s", url, resp.StatusCode, b)
	}
	return body.Model, nil
}

// measure sends n requests from clients concurrent clients, closed loop,
// stopping early at maxTime.
func measure(ctx context.Context, client *http.Client, url string, body []byte, clients, n int, maxTime time.Duration) result {
	ctx, cancel := context.WithTimeout(ctx, maxTime)
	defer cancel()
	var (
		mu   sync.Mutex
		next int
		r    = result{clients: clients, latencies: make([]time.Duration, 0, n)}
		wg   sync.WaitGroup
	)
	start := time.Now()
	for range clients {
		wg.Go(func() {
			for {
				mu.Lock()
				if next >= n || ctx.Err() != nil {
					mu.Unlock()
					return
				}
				next++
				mu.Unlock()
				t0 := time.Now()
				err := send(ctx, client, url, body)
				d := time.Since(t0)
				mu.Lock()
				switch {
				case err == nil:
					r.latencies = append(r.latencies, d)
				case ctx.Err() == nil:
					r.errors++
					if r.firstErr == "" {
						r.firstErr = err.Error()
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	r.elapsed = time.Since(start)
	return r
}

// send posts body and reads the answer; anything but 200 is an error.
func send(ctx context.Context, client *http.Client, url string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%d %.300s", resp.StatusCode, b)
	}
	return nil
}

func runPreprocess(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("prepbench preprocess", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	pred := fs.String("pred", "127.0.0.1:50051", "pred's gRPC address, to read the model's preprocessing spec")
	model := fs.String("model", "resnet50", "model whose spec is executed")
	image := fs.String("image", "", "image file to preprocess (required)")
	n := fs.Int("n", 200, "timed runs")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	case *image == "":
		return errors.New("-image is required")
	case *n < 1 || *n > maxRequests:
		return fmt.Errorf("-n %d is outside 1..%d", *n, maxRequests)
	}
	img, err := os.ReadFile(*image)
	if err != nil {
		return err
	}
	spec, err := announcedSpec(ctx, *pred, *model)
	if err != nil {
		return err
	}
	p, err := imageprep.New(spec, imageprep.Limits{MaxPixels: maxPixels})
	if err != nil {
		return fmt.Errorf("the spec of model %q: %w", *model, err)
	}
	dst := make([]float32, p.TensorLen())
	// The first run sizes the decoder's pooled buffers: keep it out.
	if err := p.Process(img, dst); err != nil {
		return err
	}
	times := make([]time.Duration, *n)
	for i := range times {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		t0 := time.Now()
		if err := p.Process(img, dst); err != nil {
			return err
		}
		times[i] = time.Since(t0)
	}
	slices.Sort(times)
	fmt.Fprintf(stdout, "preprocess model=%s n=%d mean_ms=%.3f p50_ms=%.3f min_ms=%.3f\n",
		*model, *n, ms(mean(times)), ms(percentile(times, 50)), ms(times[0]))
	return nil
}

// announcedSpec reads the preprocessing spec pred announces for model.
func announcedSpec(ctx context.Context, addr, model string) (*predv1.PreprocessSpec, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	md, err := predv1.NewPredServiceClient(conn).ModelMetadata(ctx, &predv1.ModelMetadataRequest{Model: model}, grpc.WaitForReady(true))
	if err != nil {
		return nil, fmt.Errorf("model metadata of %q from pred at %s: %w", model, addr, err)
	}
	return md.GetPreprocess(), nil
}

// percentile returns the p-th percentile (nearest rank) of sorted values.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (p*len(sorted) + 99) / 100 // ceil(p/100 * n), 1-based
	return sorted[max(i, 1)-1]
}

func mean(v []time.Duration) time.Duration {
	if len(v) == 0 {
		return 0
	}
	var sum time.Duration
	for _, d := range v {
		sum += d
	}
	return sum / time.Duration(len(v))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
