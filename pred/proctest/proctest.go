// Package proctest runs a child process for tests: it captures the lines
// the process writes to stdout and stderr, tracks its exit, and signals,
// stops or kills it. predtest and preptest build their servers on it.
//
//	p, err := proctest.Start("pred", exec.Command(bin, args...))
//	line, ok := p.WaitLine(0, time.Minute, func(l string) bool { return strings.Contains(l, "listening") })
//	code := p.Stop(time.Minute)
package proctest

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// maxLine bounds one line read from the process; a longer line ends the
// capture of that stream (the rest is drained and dropped).
const maxLine = 1 << 20

// Process is a running child process and what it has written so far.
type Process struct {
	name   string // names the process in Output
	cmd    *exec.Cmd
	exited chan struct{} // closed once the process has exited and its output is read

	mu        sync.Mutex
	stdout    []string
	lineAdded chan struct{} // closed and replaced whenever a stdout line arrives
	stderr    []string
	exitCode  int
	stopped   bool // Signal, Stop or Kill was called
}

// Pid is the process's ID, for reading its /proc files.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// StatusKB reads a "Vm..." line (VmRSS, VmHWM, ...) of /proc/<pid>/status,
// in KiB.
func StatusKB(pid int, field string) (int64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// Start starts cmd, which must not have Stdout or Stderr set, and captures
// its output line by line. On Linux it also makes the kernel kill the
// process if the test process dies without stopping it (e.g. killed by go
// test's timeout). name names the process in Output.
func Start(name string, cmd *exec.Cmd) (*Process, error) {
	p := &Process{name: name, cmd: cmd, exited: make(chan struct{}), lineAdded: make(chan struct{})}
	dieWithParent(cmd)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("stdout of %s: %w", name, err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, fmt.Errorf("stderr of %s: %w", name, err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}

	var readers sync.WaitGroup
	readers.Go(func() { p.readLines(stdout, &p.stdout, true) })
	readers.Go(func() { p.readLines(stderr, &p.stderr, false) })
	go func() {
		// Wait closes the pipes, so it must come after the readers.
		readers.Wait()
		_ = cmd.Wait() // the exit status is in ProcessState
		p.mu.Lock()
		p.exitCode = -1
		if ps := cmd.ProcessState; ps != nil {
			p.exitCode = ps.ExitCode()
		}
		p.mu.Unlock()
		close(p.exited)
	}()
	return p, nil
}

// readLines collects the lines of r into *dst, announcing each on
// lineAdded when notify is set.
func (p *Process) readLines(r io.Reader, dst *[]string, notify bool) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	for sc.Scan() {
		p.mu.Lock()
		*dst = append(*dst, sc.Text())
		if notify {
			close(p.lineAdded)
			p.lineAdded = make(chan struct{})
		}
		p.mu.Unlock()
	}
	_, _ = io.Copy(io.Discard, r) // a line over maxLine: keep the pipe drained
}

// WaitLine waits up to timeout for a stdout line, after the first from
// lines (a Mark), for which match returns true, and returns it. ok is
// false after timeout or when the process exited without such a line
// (Exited tells which).
func (p *Process) WaitLine(from int, timeout time.Duration, match func(line string) bool) (line string, ok bool) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	seen := from
	for {
		p.mu.Lock()
		lines, added := p.stdout[seen:], p.lineAdded
		p.mu.Unlock()
		for _, l := range lines {
			if match(l) {
				return l, true
			}
		}
		seen += len(lines)
		select {
		case <-added:
		case <-p.exited:
			// Every line has been read by now; look at the last ones.
			for _, l := range p.Stdout()[seen:] {
				if match(l) {
					return l, true
				}
			}
			return "", false
		case <-timer.C:
			return "", false
		}
	}
}

// Signal sends sig to the process without waiting for it.
func (p *Process) Signal(sig os.Signal) error {
	p.markStopped()
	return p.cmd.Process.Signal(sig)
}

// Wait waits up to timeout for the process to exit and returns its exit
// code (-1 when killed by a signal) and whether it exited.
func (p *Process) Wait(timeout time.Duration) (int, bool) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-p.exited:
		return p.ExitCode(), true
	case <-timer.C:
		return 0, false
	}
}

// Stop sends SIGTERM, waits up to timeout for the process to exit (then
// sends SIGKILL) and returns its exit code (-1 when killed by a signal).
// It may be called more than once.
func (p *Process) Stop(timeout time.Duration) int {
	p.markStopped()
	select {
	case <-p.exited:
		return p.ExitCode()
	default:
	}
	_ = p.Signal(syscall.SIGTERM)
	if code, ok := p.Wait(timeout); ok {
		return code
	}
	p.Kill()
	return p.ExitCode()
}

// Kill sends SIGKILL and waits for the process to exit.
func (p *Process) Kill() {
	p.markStopped()
	_ = p.cmd.Process.Kill()
	<-p.exited
}

func (p *Process) markStopped() {
	p.mu.Lock()
	p.stopped = true
	p.mu.Unlock()
}

// Stopped reports whether Signal, Stop or Kill has been called.
func (p *Process) Stopped() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stopped
}

// Exited is closed once the process has exited and its output is read.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// ExitCode returns the exit code once the process has exited (-1 when it
// was killed by a signal), and 0 before.
func (p *Process) ExitCode() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exitCode
}

// Mark returns the number of stdout lines so far, for WaitLine.
func (p *Process) Mark() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.stdout)
}

// Stdout returns the lines the process has written to stdout so far.
func (p *Process) Stdout() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.stdout...)
}

// Stderr returns the lines the process has written to stderr so far.
func (p *Process) Stderr() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.stderr...)
}

// Output formats the process's stdout and stderr for a failure message.
func (p *Process) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	b.WriteString("--- " + p.name + " stdout ---\n")
	for _, l := range p.stdout {
		b.WriteString(l + "\n")
	}
	if len(p.stderr) > 0 {
		b.WriteString("--- " + p.name + " stderr ---\n")
		for _, l := range p.stderr {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}
