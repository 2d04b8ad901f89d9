//go:build containers

package containers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	// commandTimeout bounds one docker or compose command.
	commandTimeout = 3 * time.Minute
	// probeLifetime bounds the helper container that reads pred's metrics
	// from inside the network: it exits by itself even if nothing removes it.
	probeLifetime = 20 * time.Minute
	// probeImage has curl; the build made or pulled it.
	probeImage = "golang:1.26-bookworm"
	// testLabel marks containers the checks start outside Compose.
	testLabel = "prepred.test.project"
)

// stack is the Compose project under test and the commands that drive it.
type stack struct {
	docker  string
	compose []string
	project string
	publish string
	root    string // repository root: docker-compose.yml and testdata
	network string // the project's default network
	probe   string // helper container on network, for pred's metrics
}

// newStack reads the settings scripts/test-containers.sh passes. Missing
// ones fail the test: with the tag on, the checks must run, not skip.
func newStack(t *testing.T) *stack {
	t.Helper()
	get := func(key string) string {
		v := os.Getenv(key)
		if v == "" {
			t.Fatalf("%s is not set: run the container checks with scripts/test-containers.sh (make test-containers)", key)
		}
		return v
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	s := &stack{
		docker:  get("PREPRED_TEST_DOCKER"),
		compose: strings.Fields(get("PREPRED_TEST_COMPOSE")),
		project: get("PREPRED_TEST_PROJECT"),
		publish: get("PREPRED_TEST_PUBLISH"),
		root:    root,
	}
	s.network = s.project + "_default"
	return s
}

// cmd runs name with args in the repository root, with the Compose
// settings of the run in its environment, and returns its stdout.
func (s *stack) cmd(ctx context.Context, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	c := exec.CommandContext(ctx, name, args...)
	c.Dir = s.root
	c.Env = append(os.Environ(), "PREP_MODEL=colors", "PREP_PUBLISH="+s.publish, "COMPOSE_PROJECT_NAME="+s.project)
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := c.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// dockerCmd runs the docker client.
func (s *stack) dockerCmd(t *testing.T, args ...string) string {
	t.Helper()
	out, err := s.cmd(t.Context(), s.docker, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// composeCmd runs Compose on the unchanged docker-compose.yml.
func (s *stack) composeCmd(t *testing.T, args ...string) string {
	t.Helper()
	full := append(append(s.compose[1:len(s.compose):len(s.compose)], "-p", s.project, "-f", "docker-compose.yml"), args...)
	out, err := s.cmd(t.Context(), s.compose[0], full...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// containers returns the IDs of the service's running containers.
func (s *stack) containers(t *testing.T, service string) []string {
	t.Helper()
	return strings.Fields(s.dockerCmd(t, "ps", "-q", "--no-trunc",
		"--filter", "label=com.docker.compose.project="+s.project,
		"--filter", "label=com.docker.compose.service="+service))
}

// container is what the checks read of docker inspect.
type container struct {
	ID           string `json:"Id"`
	Name         string
	Image        string
	RestartCount int
	State        struct {
		Status    string
		Running   bool
		ExitCode  int
		StartedAt string
		Health    *struct{ Status string }
	}
	NetworkSettings struct {
		Networks map[string]struct{ IPAddress string }
		Ports    map[string][]struct{ HostIp, HostPort string }
	}
}

func (c container) health() string {
	if c.State.Health == nil {
		return "no health check"
	}
	return c.State.Health.Status
}

func (s *stack) inspect(t *testing.T, id string) container {
	t.Helper()
	var cs []container
	if err := json.Unmarshal([]byte(s.dockerCmd(t, "inspect", id)), &cs); err != nil || len(cs) != 1 {
		t.Fatalf("docker inspect %s: %d results, %v", id, len(cs), err)
	}
	return cs[0]
}

// hostPort is the 127.0.0.1 port a prep container publishes 8000 on.
func (s *stack) hostPort(t *testing.T, id string) string {
	t.Helper()
	c := s.inspect(t, id)
	for _, b := range c.NetworkSettings.Ports["8000/tcp"] {
		if b.HostIp == "127.0.0.1" && b.HostPort != "" {
			return b.HostPort
		}
	}
	t.Fatalf("prep container %s publishes no 127.0.0.1 port: %v", c.Name, c.NetworkSettings.Ports)
	return ""
}

// ip is a container's address on the project's network.
func (s *stack) ip(t *testing.T, id string) string {
	t.Helper()
	c := s.inspect(t, id)
	n, ok := c.NetworkSettings.Networks[s.network]
	if !ok || n.IPAddress == "" {
		t.Fatalf("container %s has no address on %s: %v", c.Name, s.network, c.NetworkSettings.Networks)
	}
	return n.IPAddress
}

// waitHealthy waits until every container in ids is running and healthy.
func (s *stack) waitHealthy(t *testing.T, timeout time.Duration, ids ...string) {
	t.Helper()
	waitFor(t, timeout, "containers healthy", func() string {
		var pending []string
		for _, id := range ids {
			if c := s.inspect(t, id); !c.State.Running || c.health() != "healthy" {
				pending = append(pending, fmt.Sprintf("%s %s/%s", c.Name, c.State.Status, c.health()))
			}
		}
		return strings.Join(pending, ", ")
	})
}

// startProbe starts the helper container on the project's network that
// reads pred's metrics port, which no host port publishes.
func (s *stack) startProbe(t *testing.T) {
	t.Helper()
	s.probe = s.project + "-probe"
	s.dockerCmd(t, "run", "-d", "--rm", "--name", s.probe, "--label", testLabel+"="+s.project,
		"--network", s.network, "--read-only", "--cap-drop", "ALL", "--entrypoint", "sleep",
		probeImage, fmt.Sprint(int(probeLifetime.Seconds())))
	t.Cleanup(func() { s.stopProbe() })
}

func (s *stack) stopProbe() {
	if s.probe != "" {
		_, _ = s.cmd(context.Background(), s.docker, "rm", "-f", s.probe)
		s.probe = ""
	}
}

// Metrics of pred's colors requests that predCount reads.
const (
	predAnswered = "pred_inference_request_success_total" // answered successfully
	predReceived = "pred_inference_requests_total"        // received, whatever the answer
)

// predCount returns metric (predAnswered, predReceived) for the colors
// model from pred container id's own metrics.
func (s *stack) predCount(t *testing.T, id, metric string) float64 {
	t.Helper()
	url := "http://" + s.ip(t, id) + ":8001/metrics"
	text := s.dockerCmd(t, "exec", s.probe, "curl", "-fsS", "--max-time", "5", url)
	return metricSum(text, metric, `model="colors"`)
}
