package proctest

import (
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// waitTimeout bounds the waits of these tests; the processes are shells.
const waitTimeout = 10 * time.Second

// start runs script under sh and stops it when the test ends.
func start(t *testing.T, script string) *Process {
	t.Helper()
	p, err := Start("sh", exec.Command("sh", "-c", script))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	return p
}

func TestWaitLineAndOutput(t *testing.T) {
	p := start(t, "echo one; echo oops >&2; echo two; exec sleep 60")
	if line, ok := p.WaitLine(0, waitTimeout, func(l string) bool { return l == "two" }); !ok || line != "two" {
		t.Fatalf("WaitLine = %q, %v; want \"two\", true\n%s", line, ok, p.Output())
	}
	mark := p.Mark()
	if mark != 2 {
		t.Errorf("Mark = %d, want 2", mark)
	}
	if _, ok := p.WaitLine(mark, 50*time.Millisecond, func(string) bool { return true }); ok {
		t.Error("WaitLine after the last line found one")
	}
	if got := strings.Join(p.Stdout(), ","); got != "one,two" {
		t.Errorf("Stdout = %q", got)
	}
	if code := p.Stop(waitTimeout); code != -1 {
		t.Errorf("Stop = %d, want -1 (killed by SIGTERM)", code)
	}
	if !p.Stopped() {
		t.Error("Stopped = false after Stop")
	}
	// Every line has been read once the process has exited.
	if got := strings.Join(p.Stderr(), ","); got != "oops" {
		t.Errorf("Stderr = %q", got)
	}
	want := "--- sh stdout ---\none\ntwo\n--- sh stderr ---\noops\n"
	if got := p.Output(); got != want {
		t.Errorf("Output = %q, want %q", got, want)
	}
}

func TestWaitLineExited(t *testing.T) {
	p := start(t, "echo last; exit 3")
	if _, ok := p.WaitLine(0, waitTimeout, func(l string) bool { return l == "never" }); ok {
		t.Fatal("WaitLine found a line the process never wrote")
	}
	select {
	case <-p.Exited():
	default:
		t.Fatal("WaitLine gave up before the process exited")
	}
	if code := p.ExitCode(); code != 3 {
		t.Errorf("ExitCode = %d, want 3", code)
	}
	if p.Stopped() {
		t.Error("Stopped = true, but nothing stopped the process")
	}
	if code := p.Stop(waitTimeout); code != 3 {
		t.Errorf("Stop after exit = %d, want 3", code)
	}
}

func TestSignalWait(t *testing.T) {
	p := start(t, "trap 'exit 7' HUP; echo ready; while :; do sleep 1; done")
	if _, ok := p.WaitLine(0, waitTimeout, func(l string) bool { return l == "ready" }); !ok {
		t.Fatalf("no ready line\n%s", p.Output())
	}
	if code, ok := p.Wait(10 * time.Millisecond); ok {
		t.Fatalf("Wait = %d, true before any signal", code)
	}
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if code, ok := p.Wait(waitTimeout); !ok || code != 7 {
		t.Errorf("Wait = %d, %v; want 7, true", code, ok)
	}
}

func TestStopKillsAfterTimeout(t *testing.T) {
	p := start(t, "trap '' TERM; echo ready; while :; do sleep 1; done")
	if _, ok := p.WaitLine(0, waitTimeout, func(l string) bool { return l == "ready" }); !ok {
		t.Fatalf("no ready line\n%s", p.Output())
	}
	if code := p.Stop(100 * time.Millisecond); code != -1 {
		t.Errorf("Stop = %d, want -1 (killed by SIGKILL)", code)
	}
}
