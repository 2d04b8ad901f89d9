package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/api/spec"
	"github.com/prepred/prepred/pred/internal/repository"
	"github.com/prepred/prepred/pred/predtest"
)

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    config
		wantErr string
	}{
		{
			name: "defaults",
			want: config{grpcAddr: ":50051", httpAddr: ":8001", modelRepo: "models", logLevel: zapcore.InfoLevel},
		},
		{
			name: "env overrides defaults",
			env:  map[string]string{"PRED_GRPC_ADDR": ":1", "PRED_HTTP_ADDR": ":2", "PRED_MODEL_REPOSITORY": "/m", "ONNXRUNTIME_LIB": "/lib.so", "PRED_LOG_LEVEL": "debug"},
			want: config{grpcAddr: ":1", httpAddr: ":2", modelRepo: "/m", ortLib: "/lib.so", logLevel: zapcore.DebugLevel},
		},
		{
			name: "flags win over env",
			args: []string{"--grpc-addr", ":3", "-http-addr=:4", "--model-repository", "/r", "--ort-lib", "/x.so", "--log-level", "warn"},
			env:  map[string]string{"PRED_GRPC_ADDR": ":1", "PRED_HTTP_ADDR": ":2", "PRED_MODEL_REPOSITORY": "/m", "ONNXRUNTIME_LIB": "/lib.so", "PRED_LOG_LEVEL": "debug"},
			want: config{grpcAddr: ":3", httpAddr: ":4", modelRepo: "/r", ortLib: "/x.so", logLevel: zapcore.WarnLevel},
		},
		{name: "bad level in env", env: map[string]string{"PRED_LOG_LEVEL": "loud"}, wantErr: "log level"},
		{name: "unknown flag", args: []string{"--port", "1"}, wantErr: "flag provided but not defined: -port"},
		{name: "positional", args: []string{"models"}, wantErr: "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseConfig(tt.args, func(k string) string { return tt.env[k] }, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseConfig = %v, want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.want.ortLib == "" {
				tt.want.ortLib = got.ortLib // the default depends on the working directory
				if got.ortLib != systemORTLibrary && got.ortLib != projectORTLibrary {
					t.Errorf("default ortLib = %q", got.ortLib)
				}
			}
			if tt.want.serving == (servingConfig{}) {
				tt.want.serving = defaultServing // TestParseServingConfig covers these
			}
			if tt.want.overload == (overloadConfig{}) {
				tt.want.overload = defaultOverload // TestParseOverloadConfig covers these
			}
			if got != tt.want {
				t.Errorf("parseConfig = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestRunFailsToStart(t *testing.T) {
	repo := t.TempDir()
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"missing repository", []string{"--model-repository", filepath.Join(repo, "absent"), "--ort-lib", predtest.ORTLibrary(t)}, "model repository"},
		{"missing library", []string{"--model-repository", repo, "--ort-lib", filepath.Join(repo, "libonnxruntime.so.1")}, "--ort-lib"},
		{"bad http address", []string{"--model-repository", repo, "--ort-lib", predtest.ORTLibrary(t), "--grpc-addr", "127.0.0.1:0", "--http-addr", "256.0.0.1:0"}, "http listen"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := run(context.Background(), tt.args, func(string) string { return "" }, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("run = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

// copyModel copies a generated model into repo.
func copyModel(t *testing.T, repo, name string) {
	t.Helper()
	src := filepath.Join(predtest.ModelRepository(t), name)
	err := filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		dst := filepath.Join(repo, name, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func colorsRequest(t *testing.T, conn *grpc.ClientConn, rgb [3]uint8, batch int) *predv1.PredictRequest {
	t.Helper()
	md, err := predv1.NewPredServiceClient(conn).ModelMetadata(testCtx(t), &predv1.ModelMetadataRequest{Model: "colors"})
	if err != nil {
		t.Fatal(err)
	}
	s := md.GetPreprocess()
	return &predv1.PredictRequest{
		Model:           "colors",
		SpecFingerprint: md.GetSpecFingerprint(),
		Inputs: []*predv1.Tensor{{
			Dtype:   predv1.DataType_DATA_TYPE_FLOAT32,
			Shape:   []int64{int64(batch), 3, int64(s.GetHeight()), int64(s.GetWidth())},
			RawData: predtest.ConstantImages(s, slices.Repeat([][3]uint8{rgb}, batch)...),
		}},
	}
}

func predictLabel(t *testing.T, conn *grpc.ClientConn, rgb [3]uint8) string {
	t.Helper()
	client := predv1.NewPredServiceClient(conn)
	md, err := client.ModelMetadata(testCtx(t), &predv1.ModelMetadataRequest{Model: "colors"})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Predict(testCtx(t), colorsRequest(t, conn, rgb, 1))
	if err != nil {
		t.Fatalf("Predict: %v", err)
	}
	return md.GetLabels()[predtest.Argmax(predtest.Float32s(resp.GetOutputs()[0].GetRawData()))]
}

// TestRunServesUntilCancelled runs pred in-process, as main does, and
// cancels its context as SIGTERM would.
func TestRunServesUntilCancelled(t *testing.T) {
	repo := t.TempDir()
	copyModel(t, repo, "colors")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdoutR, stdoutW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--model-repository", repo, "--ort-lib", predtest.ORTLibrary(t)},
			func(string) string { return "" }, stdoutW)
		stdoutW.Close()
	}()
	lines := make(chan map[string]any, 100)
	go func() {
		sc := bufio.NewScanner(stdoutR)
		for sc.Scan() {
			var entry map[string]any
			if err := json.Unmarshal(sc.Bytes(), &entry); err != nil {
				entry = map[string]any{"msg": "not JSON: " + sc.Text()}
			}
			lines <- entry
		}
		close(lines)
	}()
	var grpcAddr string
	for entry := range lines {
		if entry["msg"] == "listening" {
			grpcAddr, _ = entry["grpc_addr"].(string)
			if _, ok := entry["http_addr"].(string); !ok {
				t.Errorf("listening line without http_addr: %v", entry)
			}
			break
		}
	}
	if grpcAddr == "" {
		t.Fatalf("run exited without listening: %v", <-done)
	}
	conn := dial(t, grpcAddr)
	waitServing(t, conn, "")
	if got := predictLabel(t, conn, [3]uint8{255, 0, 0}); got != "red" {
		t.Errorf("red image: %s", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run after cancel = %v, want nil", err)
	}
	var msgs []string
	for entry := range lines {
		msgs = append(msgs, fmt.Sprint(entry["msg"]))
	}
	if !slices.Contains(msgs, "shutting down") || msgs[len(msgs)-1] != "stopped" {
		t.Errorf("log after listening: %q, want shutting down ... stopped", msgs)
	}
}

func waitServing(t *testing.T, conn *grpc.ClientConn, service string) {
	t.Helper()
	stream, err := healthpb.NewHealthClient(conn).Watch(testCtx(t), &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		t.Fatal(err)
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("health watch: %v", err)
		}
		if resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return
		}
	}
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(testCtx(t), "GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// TestServer runs the pred binary against the generated repository.
func TestServer(t *testing.T) {
	srv := predtest.Start(t, "--log-level", "debug")
	conn := srv.Dial(t)
	health := healthpb.NewHealthClient(conn)

	for service, want := range map[string]healthpb.HealthCheckResponse_ServingStatus{
		"":                            healthpb.HealthCheckResponse_SERVING,
		"prepred.pred.v1.PredService": healthpb.HealthCheckResponse_SERVING,
		"colors":                      healthpb.HealthCheckResponse_SERVING,
		"resnet50":                    healthpb.HealthCheckResponse_SERVING,
	} {
		resp, err := health.Check(testCtx(t), &healthpb.HealthCheckRequest{Service: service})
		if err != nil || resp.GetStatus() != want {
			t.Errorf("Check(%q) = %v, %v; want %v", service, resp, err, want)
		}
	}

	for rgb, want := range map[[3]uint8]string{{255, 0, 0}: "red", {0, 0, 255}: "blue", {255, 255, 255}: "white"} {
		if got := predictLabel(t, conn, rgb); got != want {
			t.Errorf("%v: %s, want %s", rgb, got, want)
		}
	}

	// The metadata's fingerprint is that of the spec in the repository.
	text, err := os.ReadFile(filepath.Join(predtest.ModelRepository(t), "resnet50", repository.ConfigTextFile))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := repository.ParseConfig(text, false)
	if err != nil {
		t.Fatal(err)
	}
	wantFP, _ := spec.Fingerprint(cfg.GetPreprocess())
	md, err := predv1.NewPredServiceClient(conn).ModelMetadata(testCtx(t), &predv1.ModelMetadataRequest{Model: "resnet50"})
	if err != nil || md.GetSpecFingerprint() != wantFP {
		t.Errorf("resnet50 metadata fingerprint = %q (%v), want %q", md.GetSpecFingerprint(), err, wantFP)
	}

	// The request ID reaches the log.
	ctx := metadata.AppendToOutgoingContext(testCtx(t), "x-request-id", "e2e-42")
	if _, err := predv1.NewPredServiceClient(conn).Predict(ctx, colorsRequest(t, conn, [3]uint8{0, 255, 0}, 2)); err != nil {
		t.Fatal(err)
	}
	srv.WaitLog(t, time.Minute, func(l string) bool {
		return strings.Contains(l, `"request_id":"e2e-42"`) && strings.Contains(l, `"model":"colors"`)
	})

	base := "http://" + srv.HTTPAddr
	if code, body := httpGet(t, base+"/v2/health/live"); code != 200 {
		t.Errorf("live: %d %s", code, body)
	}
	if code, body := httpGet(t, base+"/v2/health/ready"); code != 200 || !strings.Contains(body, "true") {
		t.Errorf("ready: %d %s", code, body)
	}
	code, body := httpGet(t, base+"/metrics")
	if want := `pred_inference_requests_total{code="OK",model="colors",version="1"} 4`; code != 200 || !strings.Contains(body, want) {
		t.Errorf("metrics: %d, want a line %q in\n%s", code, want, body)
	}
	if !strings.Contains(body, `pred_inference_duration_seconds_count{model="colors",version="1"} 4`) {
		t.Errorf("metrics: no duration histogram for colors")
	}

	if code := srv.Stop(); code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
}

// TestBrokenModelDoesNotStopServer serves a repository holding a broken
// model beside a good one.
func TestBrokenModelDoesNotStopServer(t *testing.T) {
	repo := t.TempDir()
	copyModel(t, repo, "colors")
	broken := filepath.Join(repo, "broken")
	if err := os.MkdirAll(filepath.Join(broken, "1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(broken, repository.ConfigTextFile), []byte(`name: "broken" platform: "onnxruntime_onnx"`), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := predtest.Start(t, "--model-repository", repo)
	conn := srv.Dial(t)

	list, err := predv1.NewPredServiceClient(conn).ListModels(testCtx(t), &predv1.ListModelsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.GetModels()) != 2 {
		t.Fatalf("ListModels = %v", list)
	}
	if b := list.GetModels()[0]; b.GetModel() != "broken" || b.GetState() != "UNAVAILABLE" || !strings.Contains(b.GetReason(), "inputs is empty") {
		t.Errorf("broken model state = %v", b)
	}
	if c := list.GetModels()[1]; c.GetModel() != "colors" || c.GetState() != "READY" {
		t.Errorf("colors state = %v", c)
	}
	resp, err := healthpb.NewHealthClient(conn).Check(testCtx(t), &healthpb.HealthCheckRequest{Service: "broken"})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("Check(broken) = %v, %v; want NOT_SERVING", resp, err)
	}
	if got := predictLabel(t, conn, [3]uint8{255, 0, 255}); got != "magenta" {
		t.Errorf("magenta image: %s", got)
	}
	srv.WaitLog(t, time.Minute, func(l string) bool {
		return strings.Contains(l, `"msg":"model failed to load"`) && strings.Contains(l, `"model":"broken"`)
	})
}

// TestSIGTERMDrainsInFlight stops pred while requests run: they complete,
// health watchers hear NOT_SERVING and pred exits 0.
func TestSIGTERMDrainsInFlight(t *testing.T) {
	srv := predtest.Start(t, "--log-level", "debug")
	conn := srv.Dial(t)
	client := predv1.NewPredServiceClient(conn)

	watch, err := healthpb.NewHealthClient(conn).Watch(testCtx(t), &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := watch.Recv(); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health watch: %v, %v", resp, err)
	}

	const requests = 2
	req := &predv1.PredictRequest{Model: "resnet50", Inputs: []*predv1.Tensor{{
		Dtype: predv1.DataType_DATA_TYPE_FLOAT32, Shape: []int64{8, 3, 224, 224}, RawData: make([]byte, 8*3*224*224*4),
	}}}
	var wg sync.WaitGroup
	errs := make([]error, requests)
	for i := range requests {
		wg.Go(func() {
			ctx := metadata.AppendToOutgoingContext(testCtx(t), "x-request-id", fmt.Sprintf("inflight-%d", i))
			_, errs[i] = client.Predict(ctx, req)
		})
	}

	// No event says a request has reached the model; poll the in-flight
	// gauge until both have.
	inFlight := regexp.MustCompile(`(?m)^pred_inference_in_flight (\S+)$`)
	deadline := time.Now().Add(time.Minute)
	for {
		_, body := httpGet(t, "http://"+srv.HTTPAddr+"/metrics")
		if m := inFlight.FindStringSubmatch(body); m != nil {
			if n, _ := strconv.ParseFloat(m[1], 64); n == requests {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the requests never were in flight together")
		}
		time.Sleep(5 * time.Millisecond)
	}

	if code := srv.Stop(); code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("request %d in flight at SIGTERM: %v", i, err)
		}
	}
	var last healthpb.HealthCheckResponse_ServingStatus
	for {
		resp, err := watch.Recv()
		if err != nil {
			break
		}
		last = resp.GetStatus()
	}
	if last != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("last health status %v, want NOT_SERVING", last)
	}

	// Both requests finished after shutdown began.
	logs := srv.Logs()
	shutdown := slices.IndexFunc(logs, func(l string) bool { return strings.Contains(l, `"msg":"shutting down"`) })
	for i := range requests {
		done := slices.IndexFunc(logs, func(l string) bool { return strings.Contains(l, fmt.Sprintf(`"request_id":"inflight-%d"`, i)) })
		if shutdown < 0 || done < shutdown {
			t.Errorf("request %d logged at line %d, shutdown at line %d:\n%s", i, done, shutdown, strings.Join(logs, "\n"))
		}
	}
	if !strings.Contains(logs[len(logs)-1], `"msg":"stopped"`) {
		t.Errorf("last log line %s, want stopped", logs[len(logs)-1])
	}
}

// TestBinaryExitsNonZeroOnStartError checks main's exit status.
func TestBinaryExitsNonZeroOnStartError(t *testing.T) {
	cmd := exec.Command(predtest.Binary(t), "--model-repository", filepath.Join(t.TempDir(), "absent"))
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit: %v, want status 1", err)
	}
	if !strings.Contains(string(out), "pred: model repository") {
		t.Errorf("output %q, want the reason", out)
	}
}
