//go:build containers

package containers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	// startTimeout bounds the wait for a replica to become healthy; the
	// health checks run every 10 s and pred loads ResNet-50 first.
	startTimeout = 3 * time.Minute
	// rejoinTimeout bounds the wait for prep to send calls to a pred that
	// came back or was added: gRPC re-resolves DNS at most every 30 s.
	rejoinTimeout = 2 * time.Minute
	// followTimeout bounds the wait for every prep to use a new contract.
	followTimeout = 90 * time.Second
	// spreadRequests are sent to measure how calls spread over the preds;
	// each pred must answer at least minShare of them.
	spreadRequests = 200
	// killLoad is the load a pred is killed under (killRate a second);
	// the kill comes once killAfter requests are done.
	killLoad  = 600
	killRate  = 100
	killAfter = 150
	// rollRate is the load's rate while replicas are replaced, rollMax its
	// bound.
	rollRate = 50
	rollMax  = 20000
	// stopGrace is docker stop's timeout, as the Compose file's stop_grace_period.
	stopGrace = "30"
	// prepImage and predImage are the images docker-compose.yml names.
	predImage = "prepred/pred:local"
)

// TestContainers drives the Compose stack through the checks in order;
// each builds on the state the previous one left.
func TestContainers(t *testing.T) {
	s := newStack(t)
	images := colorImages(t, s.root, "red", "blue", "yellow", "cyan")
	down := false
	t.Cleanup(func() {
		if !down {
			s.stopProbe()
			_, _ = s.cmd(context.Background(), s.compose[0], append(append([]string(nil), s.compose[1:]...),
				"-p", s.project, "-f", "docker-compose.yml", "down", "--volumes", "--remove-orphans", "--timeout", "10")...)
		}
	})

	s.composeCmd(t, "up", "-d", "--no-build", "--scale", "pred=2", "--scale", "prep=2")
	preds, preps := s.containers(t, "pred"), s.containers(t, "prep")
	if len(preds) != 2 || len(preps) != 2 {
		t.Fatalf("--scale pred=2 --scale prep=2 started %d preds and %d preps", len(preds), len(preps))
	}
	s.waitHealthy(t, startTimeout, append(slices.Clone(preds), preps...)...)
	s.startProbe(t)

	step := func(name string, f func(t *testing.T)) {
		if !t.Run(name, f) {
			t.FailNow()
		}
	}

	step("every prep answers the README request", func(t *testing.T) {
		body := images[0].body // red
		for _, id := range preps {
			port := s.hostPort(t, id)
			resp, err := http.Post("http://127.0.0.1:"+port+"/predict/label", "application/json", strings.NewReader(string(body)))
			if err != nil {
				t.Fatalf("prep on port %s: %v", port, err)
			}
			got, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(got)) != `{"prediction":"red"}` {
				t.Errorf("prep on port %s answered red.jpg with %s %s, want {\"prediction\":\"red\"}", port, resp.Status, got)
			}
		}
	})

	step("calls spread over both preds by their metrics", func(t *testing.T) {
		before := map[string]float64{}
		for _, id := range preds {
			before[id] = s.predCount(t, id, predAnswered)
		}
		l := newLoad(images, s.ports(t, preps)...)
		ctx, cancel := context.WithTimeout(t.Context(), loadTimeout)
		defer cancel()
		l.run(ctx, spreadRequests, spreadRequests, nil)
		if l.stats.get(outcomeOK) != spreadRequests {
			t.Fatalf("load: %v", &l.stats)
		}
		total := 0.0
		share := map[string]float64{}
		for _, id := range preds {
			share[s.inspect(t, id).Name] = s.predCount(t, id, predAnswered) - before[id]
			total += share[s.inspect(t, id).Name]
		}
		t.Logf("%d requests through both preps; colors requests each pred answered: %v", spreadRequests, share)
		if total < spreadRequests {
			t.Errorf("the preds answered %v requests, fewer than the %d sent", total, spreadRequests)
		}
		for _, name := range sortedKeys(share) {
			if share[name] < minShare*spreadRequests {
				t.Errorf("pred %s answered %v of %d requests, want at least %v", name, share[name], spreadRequests, minShare*spreadRequests)
			}
		}
	})

	step("a pred killed under load fails no request and comes back", func(t *testing.T) {
		victim := preds[0]
		restarts := s.inspect(t, victim).RestartCount
		l := newLoad(images, s.ports(t, preps)...)
		ctx, cancel := context.WithTimeout(t.Context(), loadTimeout)
		defer cancel()
		stop, wait := l.background(ctx, killRate, killLoad)
		defer func() { stop(); wait() }()
		waitFor(t, loadTimeout, "load before the kill", func() string {
			if n := l.stats.total(); n < killAfter {
				return fmt.Sprintf("%d of %d requests done", n, killAfter)
			}
			return ""
		})
		s.crash(t, victim)
		killedAt := l.stats.total()
		wait()
		t.Logf("SIGKILL after %d requests: %v", killedAt, &l.stats)
		if l.stats.get(outcomeOK) != killLoad {
			t.Fatalf("%d requests, want all %d answered right: %v", l.stats.total(), killLoad, &l.stats)
		}
		waitFor(t, startTimeout, "restart policy", func() string {
			if c := s.inspect(t, victim); c.RestartCount <= restarts {
				return fmt.Sprintf("restart count %d, state %s", c.RestartCount, c.State.Status)
			}
			return ""
		})
		s.waitHealthy(t, startTimeout, victim)
		s.waitServes(t, images, preps, victim)
	})

	step("preps replaced one at a time under load lose no request", func(t *testing.T) {
		l := newLoad(images, s.ports(t, preps)...)
		ctx, cancel := context.WithTimeout(t.Context(), loadTimeout)
		defer cancel()
		stop, wait := l.background(ctx, rollRate, rollMax)
		defer func() { stop(); wait() }()
		current := slices.Clone(preps)
		inFlightAtStop := 0
		for _, old := range preps {
			fresh := s.scaleUp(t, "prep", len(current)+1, current)
			s.waitHealthy(t, startTimeout, fresh)
			oldPort := s.hostPort(t, old)
			current = append(slices.DeleteFunc(current, func(id string) bool { return id == old }), fresh)
			// The client stops sending to the old replica, as a load
			// balancer deregisters a target, and the replica is stopped at
			// once: requests still in flight on it must finish.
			l.setTargets(s.ports(t, current)...)
			inFlightAtStop += l.busy(oldPort)
			s.dockerCmd(t, "stop", "--time", stopGrace, old)
			if c := s.inspect(t, old); c.State.ExitCode != 0 {
				t.Errorf("prep %s exited with %d on SIGTERM, want 0 (a graceful stop)", c.Name, c.State.ExitCode)
			}
			s.dockerCmd(t, "rm", old)
		}
		stop()
		wait()
		t.Logf("2 preps replaced: %v; requests in flight on a replica when it got SIGTERM: %d", &l.stats, inFlightAtStop)
		if n := l.stats.total(); n == 0 || l.stats.get(outcomeOK) != n {
			t.Fatalf("want every request answered right: %v", &l.stats)
		}
		preps = current
	})

	step("a pred release with another spec is followed without a wrong label", func(t *testing.T) {
		s.buildRelease2(t)
		fpBefore := s.fingerprint(t, preps[0])
		prepState := map[string]string{}
		for _, id := range preps {
			c := s.inspect(t, id)
			prepState[id] = fmt.Sprintf("%s restarts %d", c.State.StartedAt, c.RestartCount)
		}

		l := newLoad(images, s.ports(t, preps)...)
		ctx, cancel := context.WithTimeout(t.Context(), loadTimeout)
		defer cancel()
		stop, wait := l.background(ctx, rollRate, rollMax)
		defer func() { stop(); wait() }()
		current := slices.Clone(preds)
		// phase logs what the load got since the previous phase ended.
		mark := l.stats.snapshot()
		phase := func(what string) {
			t.Logf("%-44s %s", what+":", l.stats.since(mark))
			mark = l.stats.snapshot()
		}
		for i, old := range preds {
			fresh := s.scaleUp(t, "pred", len(current)+1, current)
			s.waitHealthy(t, startTimeout, fresh)
			phase(fmt.Sprintf("release 2 replica %d starting", i+1))
			s.dockerCmd(t, "stop", "--time", stopGrace, old)
			s.dockerCmd(t, "rm", old)
			current = append(slices.DeleteFunc(current, func(id string) bool { return id == old }), fresh)
			// prep learns of the new replica when it re-resolves pred's
			// name after losing the old one; wait until it sends calls
			// there. While a replica of release 1 is left, those calls
			// are the ones that teach prep to keep release 1's tensors
			// away from it, unless prep has moved to release 2 already.
			s.waitCalls(t, l, fresh, predReceived)
			phase(fmt.Sprintf("release 1 replica %d stopped, until 2 is used", i+1))
		}
		waitFor(t, followTimeout, "preps following the new spec", func() string {
			var behind []string
			for _, id := range preps {
				if s.fingerprint(t, id) == fpBefore {
					behind = append(behind, s.inspect(t, id).Name)
				}
			}
			return strings.Join(behind, ", ")
		})
		phase("until every prep uses the new spec")
		stop()
		wait()
		t.Logf("release 2 rolled in: %v", &l.stats)
		if n := l.stats.get(outcomeWrongLabel); n != 0 {
			t.Errorf("%d labels computed from a tensor that did not match the model's spec: %v", n, &l.stats)
		}
		if n := l.stats.get(outcomeOtherError); n != 0 {
			t.Errorf("%d requests failed other than by the contract's refusal: %v", n, &l.stats)
		}
		// prep sends each tensor to a replica that serves its spec while
		// one is up, and re-reads the contract and retries when none is:
		// a refusal reaches a client only in the race of a re-read with
		// the last old replica's stop.
		if n := l.stats.get(outcomeContract); n > maxRollRefusals {
			t.Errorf("%d requests refused by the contract during the roll, want at most %d: %v", n, maxRollRefusals, &l.stats)
		}

		settle := newLoad(images, s.ports(t, preps)...)
		settle.run(ctx, killRate, settleRequests, nil)
		if settle.stats.get(outcomeOK) != settleRequests {
			t.Errorf("after the roll, want all %d requests answered right: %v", settleRequests, &settle.stats)
		}
		for _, id := range preps {
			c := s.inspect(t, id)
			if got := fmt.Sprintf("%s restarts %d", c.State.StartedAt, c.RestartCount); got != prepState[id] {
				t.Errorf("prep %s was restarted: started %s, before %s", c.Name, got, prepState[id])
			}
		}
		preds = current
	})

	step("down leaves no container, network or volume", func(t *testing.T) {
		s.stopProbe()
		s.composeCmd(t, "down", "--volumes", "--remove-orphans", "--timeout", "30")
		down = true
		label := "label=com.docker.compose.project=" + s.project
		for _, kind := range []string{"container", "network", "volume"} {
			args := []string{kind, "ls", "-q", "--filter", label}
			if kind == "container" {
				args = []string{"ps", "-aq", "--filter", label}
			}
			if left := strings.Fields(s.dockerCmd(t, args...)); len(left) > 0 {
				t.Errorf("after down, %ss of project %s remain: %v", kind, s.project, left)
			}
		}
		if left := strings.Fields(s.dockerCmd(t, "ps", "-aq", "--filter", "label="+testLabel+"="+s.project)); len(left) > 0 {
			t.Errorf("after down, helper containers remain: %v", left)
		}
		if _, err := s.cmd(t.Context(), s.docker, "network", "inspect", s.network); err == nil {
			t.Errorf("after down, network %s remains", s.network)
		}
	})
}

// crash SIGKILLs the main process of container id from the engine's host,
// as a crash would end it. docker kill marks the container as stopped by
// hand (Docker 20.10), so its restart policy would not apply; a signal to
// the process itself leaves the engine seeing an unexpected exit. A helper
// container in the host's PID namespace sends it, so the PID is the
// engine's host's, wherever the engine runs.
func (s *stack) crash(t *testing.T, id string) {
	t.Helper()
	var pid int
	if _, err := fmt.Sscan(s.dockerCmd(t, "inspect", "--format", "{{.State.Pid}}", id), &pid); err != nil || pid <= 1 {
		t.Fatalf("container %s: no process to kill (pid %d, %v)", id, pid, err)
	}
	s.dockerCmd(t, "run", "--rm", "--pid", "host", "--network", "none", "--label", testLabel+"="+s.project,
		"--entrypoint", "sh", probeImage, "-c", fmt.Sprintf("kill -KILL %d", pid))
}

// ports returns the host ports of the prep containers.
func (s *stack) ports(t *testing.T, ids []string) []string {
	t.Helper()
	var ports []string
	for _, id := range ids {
		ports = append(ports, s.hostPort(t, id))
	}
	return ports
}

// scaleUp starts one more replica of service with Compose, keeping the
// running ones, and returns its ID.
func (s *stack) scaleUp(t *testing.T, service string, n int, running []string) string {
	t.Helper()
	s.composeCmd(t, "up", "-d", "--no-deps", "--no-recreate", "--no-build", "--scale", fmt.Sprintf("%s=%d", service, n), service)
	var fresh []string
	for _, id := range s.containers(t, service) {
		if !slices.Contains(running, id) {
			fresh = append(fresh, id)
		}
	}
	if len(fresh) != 1 {
		t.Fatalf("--scale %s=%d started %d new containers, want 1", service, n, len(fresh))
	}
	return fresh[0]
}

// waitServes sends small loads through the preps until pred id has answered
// some of them: prep uses that replica again.
func (s *stack) waitServes(t *testing.T, images []colorImage, preps []string, id string) {
	t.Helper()
	before := s.predCount(t, id, predAnswered)
	l := newLoad(images, s.ports(t, preps)...)
	stop, wait := l.background(t.Context(), rollRate, rollMax)
	defer func() { stop(); wait() }()
	s.waitCalls(t, l, id, predAnswered)
	stop()
	wait()
	if n := l.stats.total(); l.stats.get(outcomeOK) != n {
		t.Errorf("while waiting for pred to be used again: %v", &l.stats)
	}
	t.Logf("prep sends calls to the restarted pred again (%v answered before the kill)", before)
}

// waitCalls waits until metric (predAnswered, predReceived) of pred id
// grows with the load that runs meanwhile.
func (s *stack) waitCalls(t *testing.T, l *load, id, metric string) {
	t.Helper()
	start := s.predCount(t, id, metric)
	name := s.inspect(t, id).Name
	waitFor(t, rejoinTimeout, "prep sending calls to "+name, func() string {
		if n := s.predCount(t, id, metric); n <= start {
			return fmt.Sprintf("%s unchanged on it (%d requests of the load done)", metric, l.stats.total())
		}
		return ""
	})
}

// fingerprint is the spec fingerprint prep container id uses, from /ready.
func (s *stack) fingerprint(t *testing.T, id string) string {
	t.Helper()
	resp, err := http.Get("http://127.0.0.1:" + s.hostPort(t, id) + "/ready")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		SpecFingerprint string `json:"spec_fingerprint"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponseBytes)).Decode(&r); err != nil {
		t.Fatalf("prep /ready: %s: %v", resp.Status, err)
	}
	return r.SpecFingerprint
}

// buildRelease2 makes the second pred release and points the Compose file's
// image tag at it: the built image with the colors model written for BGR
// input (genmodels -colors-color-order BGR), which announces another
// PreprocessSpec. A tensor made with the first release's spec gives wrong
// labels on it. The first release keeps the tag prepred/pred:release1 and
// gets prepred/pred:local back at the end.
func (s *stack) buildRelease2(t *testing.T) {
	t.Helper()
	dir := t.TempDir()
	gen := exec.CommandContext(t.Context(), "go", "run", "./pred/cmd/genmodels",
		"-out", filepath.Join(dir, "models"), "-model", "colors", "-colors-color-order", "BGR")
	gen.Dir = s.root
	if out, err := gen.CombinedOutput(); err != nil {
		t.Fatalf("genmodels: %v: %s", err, out)
	}
	dockerfile := "FROM " + predImage + "\nCOPY models/colors/ /models/colors/\n"
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		t.Fatal(err)
	}
	s.dockerCmd(t, "tag", predImage, "prepred/pred:release1")
	t.Cleanup(func() {
		_, _ = s.cmd(context.Background(), s.docker, "tag", "prepred/pred:release1", predImage)
	})
	s.dockerCmd(t, "build", "--network", "none", "-t", "prepred/pred:release2", dir)
	s.dockerCmd(t, "tag", "prepred/pred:release2", predImage)
}
