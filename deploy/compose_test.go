package deploy_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
)

// loadCompose loads Compose files the way `docker compose` does (schema
// validation, interpolation from env only, normalization, path resolution),
// without a Docker engine.
func loadCompose(t *testing.T, env map[string]string, files ...string) (*types.Project, error) {
	t.Helper()
	root := repoRoot(t)
	details := types.ConfigDetails{WorkingDir: root, Environment: env}
	for _, f := range files {
		path := filepath.Join(root, f)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		details.ConfigFiles = append(details.ConfigFiles, types.ConfigFile{Filename: path, Content: b})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return loader.LoadWithContext(ctx, details, func(o *loader.Options) {
		o.SetProjectName("prepred", true)
		o.ResolvePaths = true
	})
}

func mustLoadCompose(t *testing.T, env map[string]string, files ...string) *types.Project {
	t.Helper()
	p, err := loadCompose(t, env, files...)
	if err != nil {
		t.Fatalf("load %v: %v", files, err)
	}
	return p
}

func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, err := p.GetService(name)
	if err != nil {
		t.Fatalf("service %q: %v", name, err)
	}
	return s
}

func TestComposeServices(t *testing.T) {
	p := mustLoadCompose(t, map[string]string{}, "docker-compose.yml")
	root := repoRoot(t)

	if got := p.ServiceNames(); !slices.Equal(sortedCopy(got), []string{"pred", "prep"}) {
		t.Fatalf("services = %v, want pred and prep", got)
	}
	wantBuild := map[string]struct{ dockerfile, target string }{
		"pred": {"pred/Dockerfile", "cpu"},
		"prep": {"prep/Dockerfile", ""},
	}
	for _, name := range []string{"pred", "prep"} {
		s := service(t, p, name)
		t.Run(name, func(t *testing.T) {
			if s.ContainerName != "" {
				t.Errorf("container_name %q: a fixed name breaks --scale", s.ContainerName)
			}
			if s.Build == nil {
				t.Fatal("no build section")
			}
			if s.Build.Context != root {
				t.Errorf("build context %q, want the repository root %q (go.work)", s.Build.Context, root)
			}
			want := wantBuild[name]
			if s.Build.Dockerfile != want.dockerfile || s.Build.Target != want.target {
				t.Errorf("build dockerfile %q target %q, want %q target %q", s.Build.Dockerfile, s.Build.Target, want.dockerfile, want.target)
			}
			if _, err := os.Stat(filepath.Join(root, s.Build.Dockerfile)); err != nil {
				t.Errorf("dockerfile: %v", err)
			}
			hc := s.HealthCheck
			if hc == nil || hc.Disable || len(hc.Test) < 2 {
				t.Fatalf("healthcheck missing or disabled: %+v", hc)
			}
			if hc.Test[0] != "CMD-SHELL" || !strings.HasPrefix(hc.Test[1], "/usr/local/bin/healthcheck ") {
				t.Errorf("healthcheck test %q, want the image's health probe", hc.Test)
			}
			if hc.Interval == nil || hc.Timeout == nil || hc.StartPeriod == nil || hc.Retries == nil {
				t.Errorf("healthcheck timing incomplete: %+v", hc)
			}
			if s.Restart != types.RestartPolicyUnlessStopped {
				t.Errorf("restart %q, want %q", s.Restart, types.RestartPolicyUnlessStopped)
			}
			if s.StopGracePeriod == nil || time.Duration(*s.StopGracePeriod) < 10*time.Second {
				t.Errorf("stop_grace_period %v: in-flight requests need time to drain", s.StopGracePeriod)
			}
			if s.StopSignal != "SIGTERM" {
				t.Errorf("stop_signal %q, want SIGTERM (graceful stop)", s.StopSignal)
			}
			if !s.ReadOnly || !slices.Contains(s.CapDrop, "ALL") || !slices.Contains(s.SecurityOpt, "no-new-privileges:true") {
				t.Errorf("hardening: read_only=%v cap_drop=%v security_opt=%v", s.ReadOnly, s.CapDrop, s.SecurityOpt)
			}
		})
	}

	pred := service(t, p, "pred")
	if len(pred.Ports) != 0 {
		t.Errorf("pred publishes %+v: a host port breaks --scale pred=N", pred.Ports)
	}
	if got := []string(pred.Expose); !slices.Contains(got, "50051") || !slices.Contains(got, "8001") {
		t.Errorf("pred expose %v, want 50051 and 8001", got)
	}
	wantEnv(t, pred, map[string]string{
		"PRED_GRPC_ADDR":        ":50051",
		"PRED_HTTP_ADDR":        ":8001",
		"PRED_MODEL_REPOSITORY": "/models",
		"PRED_LOG_LEVEL":        "info",
	})
	if !strings.Contains(pred.HealthCheck.Test[1], "-grpc") {
		t.Errorf("pred healthcheck %q does not probe gRPC health", pred.HealthCheck.Test)
	}

	prep := service(t, p, "prep")
	dep, ok := prep.DependsOn["pred"]
	if !ok || dep.Condition != types.ServiceConditionHealthy {
		t.Errorf("prep depends_on pred = %+v, want condition %s", prep.DependsOn, types.ServiceConditionHealthy)
	}
	wantEnv(t, prep, map[string]string{
		"PREP_HTTP_ADDR": ":8000",
		"PRED_ADDRESS":   "dns:///pred:50051",
		"PREP_MODEL":     "resnet50",
	})
	if !strings.Contains(prep.HealthCheck.Test[1], "-path /ready") {
		t.Errorf("prep healthcheck %q does not probe /ready", prep.HealthCheck.Test)
	}
	if len(prep.Ports) != 1 {
		t.Fatalf("prep ports %+v, want one mapping", prep.Ports)
	}
	port := prep.Ports[0]
	if port.Target != 8000 || port.Published != "8000-8009" || port.HostIP != "127.0.0.1" {
		t.Errorf("prep port %+v, want 127.0.0.1:8000-8009 -> 8000 (a range, so --scale prep=N finds free ports)", port)
	}
}

func TestComposeInterpolation(t *testing.T) {
	p := mustLoadCompose(t, map[string]string{
		"PREP_PUBLISH":   "0.0.0.0:9000-9003",
		"PREP_MODEL":     "colors",
		"PRED_LOG_LEVEL": "debug",
	}, "docker-compose.yml")
	port := service(t, p, "prep").Ports[0]
	if port.HostIP != "0.0.0.0" || port.Published != "9000-9003" || port.Target != 8000 {
		t.Errorf("PREP_PUBLISH override: port %+v", port)
	}
	wantEnv(t, service(t, p, "prep"), map[string]string{"PREP_MODEL": "colors"})
	wantEnv(t, service(t, p, "pred"), map[string]string{"PRED_LOG_LEVEL": "debug"})
	// $$ keeps the variable for the container's shell.
	if got := service(t, p, "pred").HealthCheck.Test[1]; !strings.Contains(got, `"${PRED_GRPC_ADDR}"`) {
		t.Errorf("pred healthcheck %q: the address must be expanded in the container", got)
	}
}

func TestComposeGPUOverride(t *testing.T) {
	p := mustLoadCompose(t, map[string]string{}, "docker-compose.yml", "docker-compose.gpu.yml")
	pred := service(t, p, "pred")
	if pred.Build == nil || pred.Build.Target != "gpu" || pred.Build.Dockerfile != "pred/Dockerfile" {
		t.Fatalf("pred build %+v, want pred/Dockerfile target gpu", pred.Build)
	}
	if _, ok := pred.Build.Args["ORT_GPU_SHA256"]; !ok {
		t.Errorf("pred build args %v: ORT_GPU_SHA256 should be passed through", pred.Build.Args)
	}
	if pred.Image == service(t, mustLoadCompose(t, map[string]string{}, "docker-compose.yml"), "pred").Image {
		t.Errorf("GPU image %q has the CPU image's name", pred.Image)
	}
	if pred.Deploy == nil || pred.Deploy.Resources.Reservations == nil {
		t.Fatal("pred has no deploy.resources.reservations")
	}
	var gpu bool
	for _, d := range pred.Deploy.Resources.Reservations.Devices {
		if d.Driver == "nvidia" && slices.Contains(d.Capabilities, "gpu") && d.Count != 0 {
			gpu = true
		}
	}
	if !gpu {
		t.Errorf("no nvidia gpu device reservation in %+v", pred.Deploy.Resources.Reservations.Devices)
	}
	// The override leaves everything else of the base file in place.
	if len(pred.Ports) != 0 || pred.HealthCheck == nil || len(pred.HealthCheck.Test) == 0 {
		t.Errorf("override lost pred's base settings: ports %+v healthcheck %+v", pred.Ports, pred.HealthCheck)
	}
	if pred.HealthCheck.StartPeriod == nil || time.Duration(*pred.HealthCheck.StartPeriod) < 2*time.Minute {
		t.Errorf("GPU start_period %v: loading onto the GPU needs longer", pred.HealthCheck.StartPeriod)
	}
	if prep := service(t, p, "prep"); prep.Build == nil || prep.Build.Dockerfile != "prep/Dockerfile" {
		t.Errorf("override changed prep's build: %+v", prep.Build)
	}
}

// TestComposeValidationRejects shows that the loader validates against the
// Compose schema, so TestComposeServices would catch a malformed file.
func TestComposeValidationRejects(t *testing.T) {
	base := string(readRepoFile(t, "docker-compose.yml"))
	tests := []struct {
		name, old, new string
	}{
		{"misspelled key", "    healthcheck:\n      test: [\"CMD-SHELL\", \"/usr/local/bin/healthcheck -grpc", "    helthcheck:\n      test: [\"CMD-SHELL\", \"/usr/local/bin/healthcheck -grpc"},
		{"unknown depends_on condition", "condition: service_healthy", "condition: service_ready"},
		{"bad duration", "stop_grace_period: 30s", "stop_grace_period: thirty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(base, tt.old) {
				t.Fatalf("docker-compose.yml no longer contains %q; update the test", tt.old)
			}
			dir := t.TempDir()
			path := filepath.Join(dir, "docker-compose.yml")
			if err := os.WriteFile(path, []byte(strings.Replace(base, tt.old, tt.new, 1)), 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, err := loader.LoadWithContext(ctx, types.ConfigDetails{
				WorkingDir:  dir,
				ConfigFiles: []types.ConfigFile{{Filename: path}},
				Environment: map[string]string{},
			}, func(o *loader.Options) { o.SetProjectName("prepred", true) })
			if err == nil {
				t.Fatal("loaded without error")
			}
			t.Logf("rejected: %v", err)
		})
	}
}

func wantEnv(t *testing.T, s types.ServiceConfig, want map[string]string) {
	t.Helper()
	for k, v := range want {
		got, ok := s.Environment[k]
		if !ok || got == nil || *got != v {
			t.Errorf("%s: environment %s = %v, want %q", s.Name, k, deref(got), v)
		}
	}
}

func deref(s *string) string {
	if s == nil {
		return "<unset>"
	}
	return *s
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}
