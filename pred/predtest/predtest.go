// Package predtest starts real pred servers for tests, in pred and in the
// modules that talk to it: it builds the pred binary, runs it on ephemeral
// loopback ports against the generated model repository and a real ONNX
// Runtime, and stops it when the test ends.
//
//	srv := predtest.Start(t)
//	conn := srv.Dial(t)
//
// The binary is built once per test process (go build's cache makes that
// a link step when nothing changed) and installed atomically as
// <repository>/.cache/predtest/pred (pred-race under the race detector):
// a library cannot act when the test process exits, so the binary stays,
// but there is only ever one, in the git-ignored cache directory.
package predtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/prepred/prepred/pred/modelgen"
	"github.com/prepred/prepred/pred/proctest"
)

// Time limits of a server's life in a test.
const (
	// buildTimeout bounds building the binary (a cold build compiles gRPC
	// and ONNX Runtime's cgo wrapper).
	buildTimeout = 5 * time.Minute
	// listenTimeout bounds the wait for the "listening" log line.
	listenTimeout = 30 * time.Second
	// servingTimeout bounds the wait for health SERVING: loading the models,
	// slower under the race detector.
	servingTimeout = 2 * time.Minute
	// stopTimeout bounds the wait for exit after SIGTERM before SIGKILL; it
	// exceeds pred's own shutdown bounds.
	stopTimeout = 45 * time.Second
)

var (
	rootOnce sync.Once
	root     string
	rootErr  error

	ortOnce sync.Once
	ortLib  string
	ortErr  error

	modelsOnce sync.Once
	modelsDir  string
	modelsErr  error

	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// RepoRoot returns the repository root: the nearest directory at or above
// the working directory that holds go.work.
func RepoRoot(tb testing.TB) string {
	tb.Helper()
	rootOnce.Do(func() {
		dir, err := os.Getwd()
		if err != nil {
			rootErr = err
			return
		}
		for {
			if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
				root = dir
				return
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				rootErr = errors.New("no go.work found above the working directory")
				return
			}
			dir = parent
		}
	})
	if rootErr != nil {
		tb.Fatalf("predtest: repository root: %v", rootErr)
	}
	return root
}

// ORTLibrary returns the path of the ONNX Runtime library: $ONNXRUNTIME_LIB,
// or what scripts/install-onnxruntime.sh installs (run once per process).
func ORTLibrary(tb testing.TB) string {
	tb.Helper()
	r := RepoRoot(tb)
	ortOnce.Do(func() {
		if lib := os.Getenv("ONNXRUNTIME_LIB"); lib != "" {
			ortLib = lib
			return
		}
		cmd := exec.Command("bash", filepath.Join(r, "scripts", "install-onnxruntime.sh"))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			ortErr = fmt.Errorf("scripts/install-onnxruntime.sh: %w\n%s", err, stderr.Bytes())
			return
		}
		ortLib = strings.TrimSpace(string(out))
	})
	if ortErr != nil {
		tb.Fatalf("predtest: %v", ortErr)
	}
	return ortLib
}

// ModelRepository returns the generated model repository (<root>/models),
// generating it first if needed.
func ModelRepository(tb testing.TB) string {
	tb.Helper()
	r := RepoRoot(tb)
	modelsOnce.Do(func() {
		modelsDir = filepath.Join(r, "models")
		modelsErr = modelgen.Ensure(modelsDir)
	})
	if modelsErr != nil {
		tb.Fatalf("predtest: model repository: %v", modelsErr)
	}
	return modelsDir
}

// Binary returns the path of the pred binary, built once per process (with
// the race detector when the test binary has it).
func Binary(tb testing.TB) string {
	tb.Helper()
	r := RepoRoot(tb)
	buildOnce.Do(func() { binPath, buildErr = build(r) })
	if buildErr != nil {
		tb.Fatalf("predtest: %v", buildErr)
	}
	return binPath
}

func build(root string) (string, error) {
	return BuildBinary(root, "predtest", "pred", "github.com/prepred/prepred/pred/cmd/pred")
}

// BuildBinary builds the command at pkg into <root>/.cache/<dir>/<name>
// (<name>-race under the race detector) and returns its path. The binary is
// swapped in atomically, so processes already running the previous one are
// unaffected; preptest builds prep with it too.
func BuildBinary(root, dir, name, pkg string) (string, error) {
	dir = filepath.Join(root, ".cache", dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("build directory: %w", err)
	}
	if raceEnabled() {
		name += "-race"
	}
	tmp, err := os.CreateTemp(dir, name+"-*.tmp")
	if err != nil {
		return "", fmt.Errorf("build directory: %w", err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name()) // gone after the rename unless the build failed

	args := []string{"build", "-o", tmp.Name()}
	if raceEnabled() {
		args = append(args, "-race")
	}
	args = append(args, pkg)
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	// The rename is atomic: a process that started the previous binary
	// keeps running it, and one starting now sees a complete file.
	bin := filepath.Join(dir, name)
	if err := os.Rename(tmp.Name(), bin); err != nil {
		return "", fmt.Errorf("install the %s binary: %w", name, err)
	}
	if err := statSources(ctx, root, pkg); err != nil {
		return "", err
	}
	return bin, nil
}

// statSources stats every file of the repository's packages that pkg is
// built from, and the module files. go test caches a passing result
// against the files the test opened or statted, by size and modification
// time, and knows nothing of the binaries a test builds and runs: without
// this, a test of the pred or prep binary would report its cached result
// after their sources changed. Dependencies outside the repository are
// pinned by go.mod and go.sum.
func statSources(ctx context.Context, root, pkg string) error {
	cmd := exec.CommandContext(ctx, "go", "list", "-deps",
		"-f", "{{if and .Module .Module.Main}}{{.Dir}} {{.Module.GoMod}}{{end}}", pkg)
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("go list -deps %s: %w", pkg, err)
	}
	// A missing file is recorded as missing.
	_, _ = os.Stat(filepath.Join(root, "go.work"))
	_, _ = os.Stat(filepath.Join(root, "go.work.sum"))
	mods := map[string]bool{}
	for line := range strings.Lines(string(out)) {
		d, mod, _ := strings.Cut(strings.TrimSpace(line), " ")
		if d == "" {
			continue // a package from outside the workspace
		}
		if !mods[mod] {
			mods[mod] = true
			_, _ = os.Stat(mod)
			_, _ = os.Stat(strings.TrimSuffix(mod, ".mod") + ".sum")
		}
		entries, err := os.ReadDir(d)
		if err != nil {
			return fmt.Errorf("sources of %s: %w", pkg, err)
		}
		for _, e := range entries {
			if e.Type().IsRegular() {
				_, _ = os.Stat(filepath.Join(d, e.Name()))
			}
		}
	}
	return nil
}

func raceEnabled() bool {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range info.Settings {
		if s.Key == "-race" && s.Value == "true" {
			return true
		}
	}
	return false
}

// Server is a running pred process.
type Server struct {
	// GRPCAddr and HTTPAddr are the bound loopback addresses.
	GRPCAddr string
	HTTPAddr string
	// creds are the transport credentials of Dial.
	creds credentials.TransportCredentials

	proc *proctest.Process
}

// Start runs pred on 127.0.0.1:0 (gRPC and HTTP) with the generated model
// repository and the ONNX Runtime library, plus extraArgs (which win over
// those, e.g. "--model-repository", dir). It returns once the server logs
// "listening" and reports health SERVING. When the test ends the server is
// sent SIGTERM; a non-zero exit the test did not ask for fails the test.
func Start(tb testing.TB, extraArgs ...string) *Server {
	tb.Helper()
	return StartEnv(tb, nil, extraArgs...)
}

// StartEnv is Start with env ("KEY=value") added to the test process's
// environment, e.g. the OTEL_* variables that configure tracing.
func StartEnv(tb testing.TB, env []string, extraArgs ...string) *Server {
	tb.Helper()
	return start(tb, env, nil, extraArgs)
}

// StartTLS is StartEnv for a pred serving TLS (extraArgs name its
// certificate files): creds are what the health check on start and Dial
// connect with.
func StartTLS(tb testing.TB, creds credentials.TransportCredentials, env []string, extraArgs ...string) *Server {
	tb.Helper()
	return start(tb, env, creds, extraArgs)
}

// start runs pred; creds nil means plaintext.
func start(tb testing.TB, env []string, creds credentials.TransportCredentials, extraArgs []string) *Server {
	tb.Helper()
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	args := []string{
		"--grpc-addr", "127.0.0.1:0",
		"--http-addr", "127.0.0.1:0",
		"--model-repository", ModelRepository(tb),
		"--ort-lib", ORTLibrary(tb),
	}
	args = append(args, extraArgs...)
	cmd := exec.Command(Binary(tb), args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	proc, err := proctest.Start("pred", cmd)
	if err != nil {
		tb.Fatalf("predtest: %v", err)
	}
	s := &Server{proc: proc, creds: creds}
	tb.Cleanup(func() {
		if s.proc.Stopped() {
			return
		}
		if code := s.Stop(); code != 0 {
			tb.Errorf("predtest: pred exited with code %d\n%s", code, s.output())
		}
	})

	var addrs [2]string // of the "listening" line
	_, ok := s.proc.WaitLine(0, listenTimeout, func(line string) bool {
		var entry struct {
			Msg      string `json:"msg"`
			GRPCAddr string `json:"grpc_addr"`
			HTTPAddr string `json:"http_addr"`
		}
		if json.Unmarshal([]byte(line), &entry) != nil || entry.Msg != "listening" {
			return false
		}
		addrs = [2]string{entry.GRPCAddr, entry.HTTPAddr}
		return true
	})
	if !ok {
		select {
		case <-s.proc.Exited():
			tb.Fatalf("predtest: pred exited with code %d before listening\n%s", s.ExitCode(), s.output())
		default:
			s.Kill()
			tb.Fatalf("predtest: pred did not log \"listening\" within %v\n%s", listenTimeout, s.output())
		}
	}
	s.GRPCAddr, s.HTTPAddr = addrs[0], addrs[1]
	if err := s.waitServing(); err != nil {
		s.Kill()
		tb.Fatalf("predtest: %v\n%s", err, s.output())
	}
	return s
}

// waitServing watches the overall health status until SERVING.
func (s *Server) waitServing() error {
	conn, err := grpc.NewClient(s.GRPCAddr, grpc.WithTransportCredentials(s.creds))
	if err != nil {
		return fmt.Errorf("dial %s: %w", s.GRPCAddr, err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), servingTimeout)
	defer cancel()
	go func() {
		select {
		case <-s.proc.Exited():
			cancel()
		case <-ctx.Done():
		}
	}()
	stream, err := healthpb.NewHealthClient(conn).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return fmt.Errorf("health watch: %w", err)
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			select {
			case <-s.proc.Exited():
				return fmt.Errorf("pred exited with code %d before serving", s.ExitCode())
			default:
				return fmt.Errorf("waiting for health SERVING: %w", err)
			}
		}
		if resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return nil
		}
	}
}

// Pid is pred's process ID, for reading its /proc files (memory).
func (s *Server) Pid() int { return s.proc.Pid() }

// Dial returns a client connection to the server's gRPC address, closed
// when the test ends.
func (s *Server) Dial(tb testing.TB) *grpc.ClientConn {
	tb.Helper()
	conn, err := grpc.NewClient(s.GRPCAddr, grpc.WithTransportCredentials(s.creds))
	if err != nil {
		tb.Fatalf("predtest: dial %s: %v", s.GRPCAddr, err)
	}
	tb.Cleanup(func() { conn.Close() })
	return conn
}

// Stop sends SIGTERM, waits for the process to exit (sending SIGKILL after
// a bound) and returns its exit code (-1 when killed by a signal). It may
// be called more than once.
func (s *Server) Stop() int { return s.proc.Stop(stopTimeout) }

// Kill sends SIGKILL and waits for the process to exit.
func (s *Server) Kill() { s.proc.Kill() }

// Exited is closed once the process has exited.
func (s *Server) Exited() <-chan struct{} { return s.proc.Exited() }

// ExitCode returns the exit code once the process has exited (-1 when it
// was killed by a signal), and 0 before.
func (s *Server) ExitCode() int { return s.proc.ExitCode() }

// Logs returns the JSON log lines the server has written to stdout so far.
func (s *Server) Logs() []string { return s.proc.Stdout() }

// WaitLog waits until the server has logged a line for which match
// returns true, and returns it. The server writes a request's log line
// before answering, but the line reaches the test through a pipe, so a
// test that has its answer may still have to wait for the line. WaitLog
// fails the test after timeout or when the server exits without such a
// line.
func (s *Server) WaitLog(tb testing.TB, timeout time.Duration, match func(line string) bool) string {
	tb.Helper()
	line, ok := s.proc.WaitLine(0, timeout, match)
	if ok {
		return line
	}
	select {
	case <-s.proc.Exited():
		tb.Fatalf("predtest: pred exited without the awaited log line\n%s", s.output())
	default:
		tb.Fatalf("predtest: the awaited log line did not come within %v\n%s", timeout, s.output())
	}
	return ""
}

// Stderr returns the lines the server (or ONNX Runtime) has written to
// stderr so far.
func (s *Server) Stderr() []string { return s.proc.Stderr() }

// output formats the server's output for a failure message.
func (s *Server) output() string { return s.proc.Output() }
