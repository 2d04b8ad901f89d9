package deploy_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction with its continuation lines joined.
type instruction struct {
	line int
	cmd  string // upper case: FROM, RUN, ...
	args string
}

type stage struct {
	name   string // the AS name, or the stage index
	base   string // the FROM image with ARG defaults substituted
	instrs []instruction
}

type dockerfile struct {
	path    string
	argDefs map[string]string // ARGs before the first FROM and their defaults
	stages  []stage
}

var argRef = regexp.MustCompile(`\$\{(\w+)\}|\$(\w+)`)

// parseDockerfile reads the instructions of a Dockerfile: comment lines are
// skipped (also inside continuations), a trailing backslash continues the
// instruction on the next line. That is all of the syntax the project's
// Dockerfiles use; no parser directives or heredocs.
func parseDockerfile(t *testing.T, rel string) dockerfile {
	t.Helper()
	df := dockerfile{path: rel, argDefs: map[string]string{}}
	sc := bufio.NewScanner(bytes.NewReader(readRepoFile(t, rel)))
	var cur strings.Builder
	start := 0
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if cur.Len() == 0 {
			start = n
		}
		if body, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(body)
			cur.WriteString(" ")
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		cur.Reset()
		in := instruction{line: start, cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)}
		switch {
		case in.cmd == "ARG" && len(df.stages) == 0:
			name, def, _ := strings.Cut(in.args, "=")
			df.argDefs[name] = def
		case in.cmd == "FROM":
			fields := strings.Fields(in.args)
			st := stage{name: strconv.Itoa(len(df.stages))}
			if len(fields) == 3 && strings.EqualFold(fields[1], "AS") {
				st.name = fields[2]
			} else if len(fields) != 1 {
				t.Fatalf("%s:%d: FROM %q: want IMAGE [AS NAME]", rel, in.line, in.args)
			}
			st.base = argRef.ReplaceAllStringFunc(fields[0], func(ref string) string {
				name := strings.Trim(ref, "${}")
				def, ok := df.argDefs[name]
				if !ok {
					t.Fatalf("%s:%d: FROM uses ARG %s, which has no global default", rel, in.line, name)
				}
				return def
			})
			df.stages = append(df.stages, st)
		case len(df.stages) == 0:
			t.Fatalf("%s:%d: %s before the first FROM", rel, in.line, in.cmd)
		default:
			last := &df.stages[len(df.stages)-1]
			last.instrs = append(last.instrs, in)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if cur.Len() != 0 {
		t.Fatalf("%s: ends inside a continued instruction", rel)
	}
	if len(df.stages) == 0 {
		t.Fatalf("%s: no FROM", rel)
	}
	return df
}

func (df dockerfile) stage(t *testing.T, name string) stage {
	t.Helper()
	for _, s := range df.stages {
		if s.name == name {
			return s
		}
	}
	t.Fatalf("%s: no stage %q", df.path, name)
	return stage{}
}

// all returns the arguments of every instruction cmd in the stage.
func (s stage) all(cmd string) []string {
	var out []string
	for _, in := range s.instrs {
		if in.cmd == cmd {
			out = append(out, in.args)
		}
	}
	return out
}

// one returns the arguments of the stage's only instruction cmd.
func (s stage) one(t *testing.T, cmd string) string {
	t.Helper()
	all := s.all(cmd)
	if len(all) != 1 {
		t.Fatalf("stage %s: %d %s instructions, want 1", s.name, len(all), cmd)
	}
	return all[0]
}

// env returns the stage's ENV settings (KEY=VALUE form).
func (s stage) env(t *testing.T) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, args := range s.all("ENV") {
		for _, kv := range strings.Fields(args) {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				t.Fatalf("stage %s: ENV %q: use KEY=VALUE", s.name, args)
			}
			env[k] = v
		}
	}
	return env
}

// copiesFrom returns the destinations of the stage's COPY --from=src instructions.
func (s stage) copiesFrom(src string) []string {
	var dsts []string
	for _, args := range s.all("COPY") {
		f := strings.Fields(args)
		if len(f) >= 3 && f[0] == "--from="+src {
			dsts = append(dsts, f[len(f)-1])
		}
	}
	return dsts
}

// checkRuntimeStage asserts what every image that runs a service needs.
func checkRuntimeStage(t *testing.T, df dockerfile, s stage, ports []string, probe string) {
	t.Helper()
	user := s.one(t, "USER")
	uid, _, _ := strings.Cut(user, ":")
	if n, err := strconv.Atoi(uid); err != nil || n == 0 {
		t.Errorf("%s stage %s: USER %q, want a numeric non-root uid (Kubernetes runAsNonRoot checks it)", df.path, s.name, user)
	}
	hc := s.one(t, "HEALTHCHECK")
	_, cmd, ok := strings.Cut(hc, " CMD ")
	if !ok || !strings.HasPrefix(cmd, "/usr/local/bin/healthcheck ") || !strings.Contains(cmd, probe) {
		t.Errorf("%s stage %s: HEALTHCHECK %q, want the healthcheck binary with %q", df.path, s.name, hc, probe)
	}
	for _, flag := range []string{"--interval=", "--timeout=", "--start-period=", "--retries="} {
		if !strings.Contains(hc, flag) {
			t.Errorf("%s stage %s: HEALTHCHECK without %s", df.path, s.name, flag)
		}
	}
	var entry []string
	if err := json.Unmarshal([]byte(s.one(t, "ENTRYPOINT")), &entry); err != nil || len(entry) == 0 {
		t.Errorf("%s stage %s: ENTRYPOINT must be exec form (signals reach the server): %v", df.path, s.name, err)
	}
	if got := strings.Fields(strings.Join(s.all("EXPOSE"), " ")); !slices.Equal(got, ports) {
		t.Errorf("%s stage %s: EXPOSE %v, want %v", df.path, s.name, got, ports)
	}
	if got := s.one(t, "STOPSIGNAL"); got != "SIGTERM" {
		t.Errorf("%s stage %s: STOPSIGNAL %q, want SIGTERM", df.path, s.name, got)
	}
	if !slices.Contains(s.copiesFrom("build"), "/usr/local/bin/") {
		t.Errorf("%s stage %s: binaries are not copied from the build stage", df.path, s.name)
	}
}

// checkStageGraph asserts that COPY --from names an earlier stage.
func checkStageGraph(t *testing.T, df dockerfile) {
	t.Helper()
	for i, s := range df.stages {
		for _, args := range s.all("COPY") {
			f := strings.Fields(args)
			if len(f) == 0 || !strings.HasPrefix(f[0], "--from=") {
				continue
			}
			src := strings.TrimPrefix(f[0], "--from=")
			if !slices.ContainsFunc(df.stages[:i], func(p stage) bool { return p.name == src }) {
				t.Errorf("%s stage %s: COPY --from=%s is not an earlier stage", df.path, s.name, src)
			}
		}
	}
}

func TestPredDockerfile(t *testing.T) {
	df := parseDockerfile(t, "pred/Dockerfile")
	checkStageGraph(t, df)

	wantBases := map[string]string{
		"build":      "golang:1.26-bookworm",
		"ort-cpu":    "golang:1.26-bookworm",
		"ort-gpu":    "golang:1.26-bookworm",
		"cpu-rootfs": "build",
		"cpu":        "scratch",
	}
	for name, base := range wantBases {
		if got := df.stage(t, name).base; got != base {
			t.Errorf("stage %s FROM %q, want %q", name, got, base)
		}
	}
	if got := df.stage(t, "gpu").base; !regexp.MustCompile(`^nvidia/cuda:12\.[0-9.]+-cudnn-runtime-ubuntu2[4-9]\.04$`).MatchString(got) {
		t.Errorf("gpu stage FROM %q, want a CUDA 12 cuDNN runtime on an Ubuntu with glibc >= bookworm's", got)
	}
	if last := df.stages[len(df.stages)-1].name; last != "cpu" {
		t.Errorf("last stage %q: the default target should be cpu", last)
	}

	build := strings.Join(df.stage(t, "build").all("RUN"), "\n")
	for _, want := range []string{
		"CGO_ENABLED=1 go build -trimpath -tags netgo,osusergo -ldflags='-s -w' -o /out/bin/pred ./pred/cmd/pred",
		"CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/bin/healthcheck ./deploy/cmd/healthcheck",
		"go run ./pred/cmd/genmodels -out /out/models",
	} {
		if !strings.Contains(build, want) {
			t.Errorf("build stage does not run %q", want)
		}
	}
	if run := df.stage(t, "ort-cpu").one(t, "RUN"); !strings.Contains(run, "/src/scripts/install-onnxruntime.sh") {
		t.Errorf("ort-cpu stage does not use scripts/install-onnxruntime.sh: %q", run)
	}
	gpuRun := df.stage(t, "ort-gpu").one(t, "RUN")
	for _, want := range []string{"onnxruntime-linux-x64-gpu-${ORT_GPU_VERSION}", "sha256sum -c", "libonnxruntime_providers_cuda.so"} {
		if !strings.Contains(gpuRun, want) {
			t.Errorf("ort-gpu stage RUN lacks %q", want)
		}
	}

	// The scratch image gets the libraries pred and ONNX Runtime load, the
	// shell its health check runs in, and uid 65532's passwd entry.
	rootfs := df.stage(t, "cpu-rootfs").one(t, "RUN")
	for _, want := range []string{"ldd /out/bin/pred /opt/onnxruntime/lib/libonnxruntime.so.1", `"$root/bin/sh"`, "pred:x:65532:65532:", "ca-certificates.crt"} {
		if !strings.Contains(rootfs, want) {
			t.Errorf("cpu-rootfs stage RUN lacks %q", want)
		}
	}
	if !slices.Contains(df.stage(t, "cpu").copiesFrom("cpu-rootfs"), "/") {
		t.Error("cpu stage does not copy the cpu-rootfs files to /")
	}

	for _, name := range []string{"cpu", "gpu"} {
		s := df.stage(t, name)
		t.Run(name, func(t *testing.T) {
			checkRuntimeStage(t, df, s, []string{"50051", "8001"}, `-grpc "${PRED_GRPC_ADDR:-:50051}"`)
			env := s.env(t)
			if env["ONNXRUNTIME_LIB"] != "/opt/onnxruntime/lib/libonnxruntime.so.1" || !slices.Contains(s.copiesFrom("ort-"+name), "/opt/onnxruntime/lib/") {
				t.Errorf("ONNXRUNTIME_LIB=%q, copies from ort-%s %v: the library must be where the variable points", env["ONNXRUNTIME_LIB"], name, s.copiesFrom("ort-"+name))
			}
			if env["PRED_MODEL_REPOSITORY"] != "/models" || !slices.Contains(s.copiesFrom("build"), "/models/") {
				t.Errorf("PRED_MODEL_REPOSITORY=%q: the generated repository must be copied to /models", env["PRED_MODEL_REPOSITORY"])
			}
			if env["PRED_GRPC_ADDR"] != ":50051" || env["PRED_HTTP_ADDR"] != ":8001" {
				t.Errorf("PRED_GRPC_ADDR=%q PRED_HTTP_ADDR=%q, want :50051 and :8001", env["PRED_GRPC_ADDR"], env["PRED_HTTP_ADDR"])
			}
		})
	}
}

func TestPrepDockerfile(t *testing.T) {
	df := parseDockerfile(t, "prep/Dockerfile")
	checkStageGraph(t, df)
	build, runtime := df.stage(t, "build"), df.stage(t, "runtime")
	if build.base != "golang:1.26-bookworm" || runtime.base != "scratch" {
		t.Errorf("bases %q, %q: want golang:1.26-bookworm and scratch", build.base, runtime.base)
	}
	// prep's JPEG decoder links libjpeg-turbo (-ljpeg) through cgo,
	// statically: the scratch image has no shared libraries.
	runs := strings.Join(build.all("RUN"), "\n")
	for _, want := range []string{
		"libjpeg62-turbo-dev",
		"libdeflate-dev",
		"busybox-static",
		"CGO_ENABLED=1 go build -trimpath -tags netgo,osusergo -ldflags='-s -w -linkmode external -extldflags \"-static\"' -o /out/bin/prep ./prep/cmd/prep",
		"CGO_ENABLED=0 go build -trimpath -tags nogrpc -ldflags='-s -w' -o /out/bin/healthcheck ./deploy/cmd/healthcheck",
		`cp /bin/busybox "$root/bin/sh"`,
		"prep:x:65532:65532:",
		"ca-certificates.crt",
	} {
		if !strings.Contains(runs, want) {
			t.Errorf("build stage does not run %q", want)
		}
	}
	if !slices.Contains(runtime.copiesFrom("build"), "/") {
		t.Error("runtime stage does not copy the build's rootfs files to /")
	}
	checkRuntimeStage(t, df, runtime, []string{"8000"}, `-http "${PREP_HTTP_ADDR:-:8000}" -path /ready`)
	if env := runtime.env(t); env["PREP_HTTP_ADDR"] != ":8000" {
		t.Errorf("PREP_HTTP_ADDR=%q, want :8000", env["PREP_HTTP_ADDR"])
	}
}

// TestDockerfileBuildTargets checks that what the Dockerfiles build and
// copy exists in the repository.
func TestDockerfileBuildTargets(t *testing.T) {
	root := repoRoot(t)
	for _, pkg := range []string{"pred/cmd/pred", "pred/cmd/genmodels", "prep/cmd/prep", "deploy/cmd/healthcheck"} {
		matches, err := filepath.Glob(filepath.Join(root, pkg, "*.go"))
		if err != nil || len(matches) == 0 {
			t.Errorf("%s: no Go package, but a Dockerfile builds it", pkg)
		}
	}
	if fi, err := os.Stat(filepath.Join(root, "scripts/install-onnxruntime.sh")); err != nil || fi.Mode()&0o111 == 0 {
		t.Errorf("scripts/install-onnxruntime.sh must exist and be executable: %v", err)
	}
}

// dockerignoreMatcher implements the .dockerignore rules the project uses:
// a pattern excludes a path and everything under it; "*" and "?" stay
// within one path element, "**" spans any number of them; a leading "/" is
// the context root. Exceptions ("!") are not used.
func dockerignoreMatcher(t *testing.T) func(path string) bool {
	t.Helper()
	var res []*regexp.Regexp
	for _, line := range strings.Split(string(readRepoFile(t, ".dockerignore")), "\n") {
		p := strings.TrimSpace(line)
		if p == "" || strings.HasPrefix(p, "#") {
			continue
		}
		if strings.HasPrefix(p, "!") {
			t.Fatalf(".dockerignore: exception %q: extend the matcher in this test first", p)
		}
		p = filepath.Clean(strings.TrimPrefix(p, "/"))
		var re strings.Builder
		re.WriteString("^")
		for i := 0; i < len(p); i++ {
			switch {
			case strings.HasPrefix(p[i:], "**/"):
				re.WriteString("(.*/)?")
				i += 2
			case strings.HasPrefix(p[i:], "**"):
				re.WriteString(".*")
				i++
			case p[i] == '*':
				re.WriteString("[^/]*")
			case p[i] == '?':
				re.WriteString("[^/]")
			default:
				re.WriteString(regexp.QuoteMeta(p[i : i+1]))
			}
		}
		re.WriteString("(/.*)?$")
		res = append(res, regexp.MustCompile(re.String()))
	}
	return func(path string) bool {
		return slices.ContainsFunc(res, func(re *regexp.Regexp) bool { return re.MatchString(path) })
	}
}

func TestDockerignore(t *testing.T) {
	ignored := dockerignoreMatcher(t)
	needed := []string{
		"go.work", "go.work.sum",
		"api/go.mod", "api/gen/prepred/pred/v1/pred.pb.go",
		"pred/go.mod", "pred/cmd/pred/main.go", "pred/cmd/genmodels/main.go",
		"prep/go.mod", "prep/cmd/prep/main.go",
		"deploy/go.mod", "deploy/go.sum", "deploy/cmd/healthcheck/main.go",
		"scripts/install-onnxruntime.sh",
	}
	for _, p := range needed {
		if ignored(p) {
			t.Errorf("%s is excluded from the build context, but the image build needs it", p)
		}
	}
	left := []string{
		".git/HEAD", ".cache/onnxruntime/1.24.3/libonnxruntime.so.1", "models/resnet50/1/model.onnx",
		"bin/pred", "prep/internal/x/x.test", "testdata/images/cat.png", "deploy/helm/prepred/Chart.yaml",
	}
	for _, p := range left {
		if !ignored(p) {
			t.Errorf("%s is in the build context; it should be left out", p)
		}
	}
}

func TestDockerfileParser(t *testing.T) {
	dir := t.TempDir()
	src := "ARG BASE=debian:bookworm-slim\n# comment\nFROM ${BASE} AS one\nRUN a \\\n  # inside\n  b\nENV X=1 Y=2\nFROM one\nCOPY --from=one /a /b\n"
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(repoRoot(t), filepath.Join(dir, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := parseDockerfile(t, rel)
	want := fmt.Sprintf("%d stages, %q from %q, RUN %q, ENV %v", 2, "one", "debian:bookworm-slim", "a  b", map[string]string{"X": "1", "Y": "2"})
	got := fmt.Sprintf("%d stages, %q from %q, RUN %q, ENV %v", len(df.stages), df.stages[0].name, df.stages[0].base, df.stages[0].one(t, "RUN"), df.stages[0].env(t))
	if got != want {
		t.Errorf("parsed %s, want %s", got, want)
	}
	if got := df.stages[1].copiesFrom("one"); !slices.Equal(got, []string{"/b"}) {
		t.Errorf("copiesFrom = %v", got)
	}
}
