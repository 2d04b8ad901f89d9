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
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/prepred/prepred/pred/modelgen"
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

// maxLogLine bounds one log line read from the server.
const maxLogLine = 1 << 20

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
	return bin, nil
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

	cmd    *exec.Cmd
	exited chan struct{} // closed once the process has exited and its output is read

	mu       sync.Mutex
	logs     []string
	logAdded chan struct{} // closed and replaced whenever a log line arrives
	stderr   []string
	exitCode int
	stopped  bool // Stop or Kill was called
}

// Start runs pred on 127.0.0.1:0 (gRPC and HTTP) with the generated model
// repository and the ONNX Runtime library, plus extraArgs (which win over
// those, e.g. "--model-repository", dir). It returns once the server logs
// "listening" and reports health SERVING. When the test ends the server is
// sent SIGTERM; a non-zero exit the test did not ask for fails the test.
func Start(tb testing.TB, extraArgs ...string) *Server {
	tb.Helper()
	args := []string{
		"--grpc-addr", "127.0.0.1:0",
		"--http-addr", "127.0.0.1:0",
		"--model-repository", ModelRepository(tb),
		"--ort-lib", ORTLibrary(tb),
	}
	args = append(args, extraArgs...)
	s := &Server{cmd: exec.Command(Binary(tb), args...), exited: make(chan struct{}), logAdded: make(chan struct{})}
	dieWithParent(s.cmd)
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		tb.Fatalf("predtest: %v", err)
	}
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		tb.Fatalf("predtest: %v", err)
	}
	if err := s.cmd.Start(); err != nil {
		tb.Fatalf("predtest: start pred: %v", err)
	}

	listening := make(chan [2]string, 1)
	var readers sync.WaitGroup
	readers.Add(2)
	go func() {
		defer readers.Done()
		s.readLogs(stdout, listening)
	}()
	go func() {
		defer readers.Done()
		s.readStderr(stderr)
	}()
	go func() {
		readers.Wait()
		_ = s.cmd.Wait() // the exit status is in ProcessState
		s.mu.Lock()
		s.exitCode = -1
		if ps := s.cmd.ProcessState; ps != nil {
			s.exitCode = ps.ExitCode()
		}
		s.mu.Unlock()
		close(s.exited)
	}()
	tb.Cleanup(func() {
		s.mu.Lock()
		asked := s.stopped
		s.mu.Unlock()
		if asked {
			return
		}
		if code := s.Stop(); code != 0 {
			tb.Errorf("predtest: pred exited with code %d\n%s", code, s.output())
		}
	})

	timer := time.NewTimer(listenTimeout)
	defer timer.Stop()
	select {
	case addrs := <-listening:
		s.GRPCAddr, s.HTTPAddr = addrs[0], addrs[1]
	case <-s.exited:
		tb.Fatalf("predtest: pred exited with code %d before listening\n%s", s.ExitCode(), s.output())
	case <-timer.C:
		s.Kill()
		tb.Fatalf("predtest: pred did not log \"listening\" within %v\n%s", listenTimeout, s.output())
	}
	if err := s.waitServing(); err != nil {
		s.Kill()
		tb.Fatalf("predtest: %v\n%s", err, s.output())
	}
	return s
}

// readLogs collects stdout lines and reports the addresses of the
// "listening" line.
func (s *Server) readLogs(r io.Reader, listening chan<- [2]string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLogLine)
	found := false
	for sc.Scan() {
		line := sc.Text()
		s.mu.Lock()
		s.logs = append(s.logs, line)
		close(s.logAdded)
		s.logAdded = make(chan struct{})
		s.mu.Unlock()
		if found {
			continue
		}
		var entry struct {
			Msg      string `json:"msg"`
			GRPCAddr string `json:"grpc_addr"`
			HTTPAddr string `json:"http_addr"`
		}
		if json.Unmarshal([]byte(line), &entry) == nil && entry.Msg == "listening" {
			found = true
			listening <- [2]string{entry.GRPCAddr, entry.HTTPAddr}
		}
	}
	io.Copy(io.Discard, r) // a line over maxLogLine: keep the pipe drained
}

func (s *Server) readStderr(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLogLine)
	for sc.Scan() {
		s.mu.Lock()
		s.stderr = append(s.stderr, sc.Text())
		s.mu.Unlock()
	}
	io.Copy(io.Discard, r)
}

// waitServing watches the overall health status until SERVING.
func (s *Server) waitServing() error {
	conn, err := grpc.NewClient(s.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("dial %s: %w", s.GRPCAddr, err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), servingTimeout)
	defer cancel()
	go func() {
		select {
		case <-s.exited:
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
			case <-s.exited:
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

// Dial returns a client connection to the server's gRPC address, closed
// when the test ends.
func (s *Server) Dial(tb testing.TB) *grpc.ClientConn {
	tb.Helper()
	conn, err := grpc.NewClient(s.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatalf("predtest: dial %s: %v", s.GRPCAddr, err)
	}
	tb.Cleanup(func() { conn.Close() })
	return conn
}

// Stop sends SIGTERM, waits for the process to exit (sending SIGKILL after
// a bound) and returns its exit code (-1 when killed by a signal). It may
// be called more than once.
func (s *Server) Stop() int {
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	select {
	case <-s.exited:
		return s.ExitCode()
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case <-s.exited:
	case <-timer.C:
		s.Kill()
	}
	return s.ExitCode()
}

// Kill sends SIGKILL and waits for the process to exit.
func (s *Server) Kill() {
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	_ = s.cmd.Process.Kill()
	<-s.exited
}

// Exited is closed once the process has exited.
func (s *Server) Exited() <-chan struct{} { return s.exited }

// ExitCode returns the exit code once the process has exited (-1 when it
// was killed by a signal), and 0 before.
func (s *Server) ExitCode() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.exitCode
}

// Logs returns the JSON log lines the server has written to stdout so far.
func (s *Server) Logs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.logs...)
}

// WaitLog waits until the server has logged a line for which match
// returns true, and returns it. The server writes a request's log line
// before answering, but the line reaches the test through a pipe, so a
// test that has its answer may still have to wait for the line. WaitLog
// fails the test after timeout or when the server exits without such a
// line.
func (s *Server) WaitLog(tb testing.TB, timeout time.Duration, match func(line string) bool) string {
	tb.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	seen := 0
	for {
		s.mu.Lock()
		lines, added := s.logs[seen:], s.logAdded
		s.mu.Unlock()
		for _, l := range lines {
			if match(l) {
				return l
			}
		}
		seen += len(lines)
		select {
		case <-added:
		case <-s.exited:
			// Every line has been read by now; look at the last ones.
			for _, l := range s.Logs()[seen:] {
				if match(l) {
					return l
				}
			}
			tb.Fatalf("predtest: pred exited without the awaited log line\n%s", s.output())
		case <-timer.C:
			tb.Fatalf("predtest: the awaited log line did not come within %v\n%s", timeout, s.output())
		}
	}
}

// Stderr returns the lines the server (or ONNX Runtime) has written to
// stderr so far.
func (s *Server) Stderr() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.stderr...)
}

// output formats the server's output for a failure message.
func (s *Server) output() string {
	var b strings.Builder
	b.WriteString("--- pred stdout ---\n")
	for _, l := range s.Logs() {
		b.WriteString(l + "\n")
	}
	if e := s.Stderr(); len(e) > 0 {
		b.WriteString("--- pred stderr ---\n")
		for _, l := range e {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}
