// Package preptest starts real prep processes for tests: it builds the prep
// binary, runs it on an ephemeral loopback port and stops it when the test
// ends. It is the prep counterpart of pred's predtest, for tests that need
// a separate process (signals, exit codes, a kill).
//
//	pred := predtest.Start(t)
//	prep := preptest.Start(t, "--pred-address", pred.GRPCAddr, "--model", "colors")
//	resp, err := http.Get(prep.URL + "/ready")
//
// The binary is built once per test process (go build's cache makes that a
// link step when nothing changed) and installed atomically as
// <repository>/.cache/preptest/prep (prep-race under the race detector).
package preptest

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prepred/prepred/pred/predtest"
)

// Time limits of a server's life in a test.
const (
	// listenTimeout bounds the wait for the "listening" log line.
	listenTimeout = 30 * time.Second
	// stopTimeout bounds the wait for exit after SIGTERM before SIGKILL; it
	// exceeds prep's drain bound at the default request timeouts of tests.
	stopTimeout = 90 * time.Second
)

// maxLogLine bounds one log line read from the server.
const maxLogLine = 1 << 20

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary returns the path of the prep binary, built once per process (with
// the race detector when the test binary has it).
func Binary(tb testing.TB) string {
	tb.Helper()
	root := predtest.RepoRoot(tb)
	buildOnce.Do(func() { binPath, buildErr = build(root) })
	if buildErr != nil {
		tb.Fatalf("preptest: %v", buildErr)
	}
	return binPath
}

func build(root string) (string, error) {
	return predtest.BuildBinary(root, "preptest", "prep", "github.com/prepred/prepred/prep/cmd/prep")
}

// Server is a running prep process.
type Server struct {
	// HTTPAddr is the bound loopback address; URL is "http://" + HTTPAddr.
	HTTPAddr string
	URL      string

	cmd    *exec.Cmd
	exited chan struct{} // closed once the process has exited and its output is read

	mu       sync.Mutex
	logs     []string
	logAdded chan struct{} // closed and replaced whenever a log line arrives
	stderr   []string
	exitCode int
	stopped  bool // Stop, Kill or Signal was called
}

// Start runs prep on 127.0.0.1:0 with extraArgs (which win over that, e.g.
// "--pred-address", addr) and an environment without PREP_* and
// PRED_ADDRESS variables. It returns once prep logs "listening"; prep
// serves /health then and reads its model contract in the background.
// When the test ends prep is sent SIGTERM; a non-zero exit the test did
// not ask for fails the test.
func Start(tb testing.TB, extraArgs ...string) *Server {
	tb.Helper()
	args := append([]string{"--http-addr", "127.0.0.1:0"}, extraArgs...)
	s := &Server{cmd: exec.Command(Binary(tb), args...), exited: make(chan struct{}), logAdded: make(chan struct{})}
	s.cmd.Env = cleanEnv()
	dieWithParent(s.cmd)
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		tb.Fatalf("preptest: %v", err)
	}
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		tb.Fatalf("preptest: %v", err)
	}
	if err := s.cmd.Start(); err != nil {
		tb.Fatalf("preptest: start prep: %v", err)
	}

	var readers sync.WaitGroup
	readers.Go(func() { s.readLines(stdout, &s.logs) })
	readers.Go(func() { s.readLines(stderr, &s.stderr) })
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
			s.Kill() // a no-op once it has exited
			return
		}
		if code := s.Stop(); code != 0 {
			tb.Errorf("preptest: prep exited with code %d\n%s", code, s.Output())
		}
	})

	line, ok := s.waitLog(listenTimeout, func(m map[string]any) bool { return m["msg"] == "listening" })
	if !ok {
		s.Kill()
		tb.Fatalf("preptest: prep did not log \"listening\" within %v\n%s", listenTimeout, s.Output())
	}
	s.HTTPAddr, _ = line["http_addr"].(string)
	if s.HTTPAddr == "" {
		s.Kill()
		tb.Fatalf("preptest: listening line without http_addr: %v", line)
	}
	s.URL = "http://" + s.HTTPAddr
	return s
}

// cleanEnv is the test process's environment without prep's configuration
// variables, so that only the arguments configure prep.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PREP_") || strings.HasPrefix(kv, "PRED_ADDRESS=") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// readLines collects the lines of r into *dst.
func (s *Server) readLines(r io.Reader, dst *[]string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLogLine)
	for sc.Scan() {
		s.mu.Lock()
		*dst = append(*dst, sc.Text())
		close(s.logAdded)
		s.logAdded = make(chan struct{})
		s.mu.Unlock()
	}
	_, _ = io.Copy(io.Discard, r) // a line over maxLogLine: keep the pipe drained
}

// WaitLog waits until prep has logged a JSON line (on stdout) for which
// match returns true and returns it decoded. It fails the test after
// timeout or when prep exits without such a line.
func (s *Server) WaitLog(tb testing.TB, timeout time.Duration, match func(map[string]any) bool) map[string]any {
	tb.Helper()
	return s.WaitLogSince(tb, 0, timeout, match)
}

// Mark returns the number of stdout lines logged so far, for
// WaitLogSince.
func (s *Server) Mark() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.logs)
}

// WaitLogSince is WaitLog looking only at the lines logged after the
// first mark lines.
func (s *Server) WaitLogSince(tb testing.TB, mark int, timeout time.Duration, match func(map[string]any) bool) map[string]any {
	tb.Helper()
	line, ok := s.waitLogFrom(mark, timeout, match)
	if !ok {
		tb.Fatalf("preptest: the awaited log line did not come within %v or before prep exited\n%s", timeout, s.Output())
	}
	return line
}

func (s *Server) waitLog(timeout time.Duration, match func(map[string]any) bool) (map[string]any, bool) {
	return s.waitLogFrom(0, timeout, match)
}

func (s *Server) waitLogFrom(seen int, timeout time.Duration, match func(map[string]any) bool) (map[string]any, bool) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		s.mu.Lock()
		lines, added := s.logs[seen:], s.logAdded
		s.mu.Unlock()
		for _, l := range lines {
			var m map[string]any
			if json.Unmarshal([]byte(l), &m) == nil && match(m) {
				return m, true
			}
		}
		seen += len(lines)
		select {
		case <-added:
		case <-s.exited:
			for _, l := range s.Logs()[seen:] {
				var m map[string]any
				if json.Unmarshal([]byte(l), &m) == nil && match(m) {
					return m, true
				}
			}
			return nil, false
		case <-timer.C:
			return nil, false
		}
	}
}

// Signal sends sig to prep without waiting; Wait returns the exit code.
func (s *Server) Signal(sig os.Signal) error {
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	return s.cmd.Process.Signal(sig)
}

// Wait waits up to timeout for prep to exit and returns its exit code
// (-1 when killed by a signal) and whether it exited.
func (s *Server) Wait(timeout time.Duration) (int, bool) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-s.exited:
		return s.ExitCode(), true
	case <-timer.C:
		return 0, false
	}
}

// Stop sends SIGTERM, waits for prep to exit (sending SIGKILL after a
// bound) and returns its exit code. It may be called more than once.
func (s *Server) Stop() int {
	select {
	case <-s.exited:
		return s.ExitCode()
	default:
	}
	_ = s.Signal(syscall.SIGTERM)
	if code, ok := s.Wait(stopTimeout); ok {
		return code
	}
	s.Kill()
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

// Logs returns the JSON log lines prep has written to stdout so far.
func (s *Server) Logs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.logs...)
}

// Output formats prep's stdout and stderr for a failure message.
func (s *Server) Output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	b.WriteString("--- prep stdout ---\n")
	for _, l := range s.logs {
		b.WriteString(l + "\n")
	}
	if len(s.stderr) > 0 {
		b.WriteString("--- prep stderr ---\n")
		for _, l := range s.stderr {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}
