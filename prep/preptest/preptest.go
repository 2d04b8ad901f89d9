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
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prepred/prepred/pred/predtest"
	"github.com/prepred/prepred/pred/proctest"
)

// Time limits of a server's life in a test.
const (
	// listenTimeout bounds the wait for the "listening" log line.
	listenTimeout = 30 * time.Second
	// stopTimeout bounds the wait for exit after SIGTERM before SIGKILL; it
	// exceeds prep's drain bound at the default request timeouts of tests.
	stopTimeout = 90 * time.Second
)

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

	proc *proctest.Process
}

// Start runs prep on 127.0.0.1:0 with extraArgs (which win over that, e.g.
// "--pred-address", addr) and an environment without PREP_* and
// PRED_ADDRESS variables. It returns once prep logs "listening"; prep
// serves /health then and reads its model contract in the background.
// When the test ends prep is sent SIGTERM; a non-zero exit the test did
// not ask for fails the test.
func Start(tb testing.TB, extraArgs ...string) *Server {
	tb.Helper()
	return StartEnv(tb, nil, extraArgs...)
}

// StartEnv is Start with env ("KEY=value") added to the environment, e.g.
// the OTEL_* variables that configure tracing.
func StartEnv(tb testing.TB, env []string, extraArgs ...string) *Server {
	tb.Helper()
	args := append([]string{"--http-addr", "127.0.0.1:0"}, extraArgs...)
	cmd := exec.Command(Binary(tb), args...)
	cmd.Env = append(cleanEnv(), env...)
	proc, err := proctest.Start("prep", cmd)
	if err != nil {
		tb.Fatalf("preptest: %v", err)
	}
	s := &Server{proc: proc}
	tb.Cleanup(func() {
		if s.proc.Stopped() {
			s.Kill() // a no-op once it has exited
			return
		}
		if code := s.Stop(); code != 0 {
			tb.Errorf("preptest: prep exited with code %d\n%s", code, s.Output())
		}
	})

	line, ok := s.waitLogFrom(0, listenTimeout, func(m map[string]any) bool { return m["msg"] == "listening" })
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

// WaitLog waits until prep has logged a JSON line (on stdout) for which
// match returns true and returns it decoded. It fails the test after
// timeout or when prep exits without such a line.
func (s *Server) WaitLog(tb testing.TB, timeout time.Duration, match func(map[string]any) bool) map[string]any {
	tb.Helper()
	return s.WaitLogSince(tb, 0, timeout, match)
}

// Mark returns the number of stdout lines logged so far, for
// WaitLogSince.
func (s *Server) Mark() int { return s.proc.Mark() }

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

// waitLogFrom waits up to timeout for a JSON stdout line after the first
// mark lines for which match returns true, and returns it decoded.
func (s *Server) waitLogFrom(mark int, timeout time.Duration, match func(map[string]any) bool) (map[string]any, bool) {
	var found map[string]any
	_, ok := s.proc.WaitLine(mark, timeout, func(line string) bool {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil || !match(m) {
			return false
		}
		found = m
		return true
	})
	return found, ok
}

// Signal sends sig to prep without waiting; Wait returns the exit code.
func (s *Server) Signal(sig os.Signal) error { return s.proc.Signal(sig) }

// Wait waits up to timeout for prep to exit and returns its exit code
// (-1 when killed by a signal) and whether it exited.
func (s *Server) Wait(timeout time.Duration) (int, bool) { return s.proc.Wait(timeout) }

// Stop sends SIGTERM, waits for prep to exit (sending SIGKILL after a
// bound) and returns its exit code. It may be called more than once.
func (s *Server) Stop() int {
	// A prep that exited on its own is not marked stopped, so that the
	// cleanup still reports an exit the test did not ask for.
	select {
	case <-s.proc.Exited():
		return s.proc.ExitCode()
	default:
	}
	return s.proc.Stop(stopTimeout)
}

// Kill sends SIGKILL and waits for the process to exit.
func (s *Server) Kill() { s.proc.Kill() }

// Exited is closed once the process has exited.
func (s *Server) Exited() <-chan struct{} { return s.proc.Exited() }

// ExitCode returns the exit code once the process has exited (-1 when it
// was killed by a signal), and 0 before.
func (s *Server) ExitCode() int { return s.proc.ExitCode() }

// Logs returns the JSON log lines prep has written to stdout so far.
func (s *Server) Logs() []string { return s.proc.Stdout() }

// Output formats prep's stdout and stderr for a failure message.
func (s *Server) Output() string { return s.proc.Output() }
