package deploy_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

const (
	chartDir = "deploy/helm/prepred"
	// kubeVersion is the cluster version the chart is rendered for: helm
	// built with `go install` assumes v1.20 otherwise, below the chart's
	// kubeVersion constraint.
	kubeVersion = "1.31.0"
	// helmTimeout bounds one helm command.
	helmTimeout = 2 * time.Minute
	namespace   = "ml"
	release     = "prepred"
)

// helmBinary finds helm 3: the one scripts/install-helm.sh puts in
// .cache/tools/bin, else the one on PATH.
func helmBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(repoRoot(t), ".cache/tools/bin/helm")
	if _, err := os.Stat(bin); err != nil {
		bin, err = exec.LookPath("helm")
		if err != nil {
			t.Fatal("helm not found in .cache/tools/bin or on PATH: run scripts/install-helm.sh")
		}
	}
	out, err := exec.Command(bin, "version", "--template", "{{.Version}}").Output()
	if err != nil || !strings.HasPrefix(string(out), "v3.") {
		t.Fatalf("%s version = %q (%v): the chart is tested with helm 3; run scripts/install-helm.sh", bin, out, err)
	}
	return bin
}

// helm runs helm with its state directories in a temporary directory, so
// nothing of the user's helm configuration takes part.
func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), helmTimeout)
	defer cancel()
	home := t.TempDir()
	cmd := exec.CommandContext(ctx, helmBinary(t), args...)
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// valueSets are the values the chart is linted and rendered with: the
// defaults and each example in the chart's ci/ directory.
func valueSets(t *testing.T) map[string][]string {
	t.Helper()
	sets := map[string][]string{"defaults": nil}
	files, err := filepath.Glob(filepath.Join(repoRoot(t), chartDir, "ci", "*-values.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no example values in %s/ci: %v", chartDir, err)
	}
	for _, f := range files {
		sets[strings.TrimSuffix(filepath.Base(f), "-values.yaml")] = []string{"-f", f}
	}
	return sets
}

func TestHelmLint(t *testing.T) {
	for name, args := range valueSets(t) {
		t.Run(name, func(t *testing.T) {
			out, err := helm(t, append([]string{"lint", "--strict", "--kube-version", kubeVersion, chartDir}, args...)...)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
		})
	}
}

// rendered holds the typed objects of one `helm template`.
type rendered struct {
	deployments map[string]*appsv1.Deployment
	services    map[string]*corev1.Service
	hpas        map[string]*autoscalingv2.HorizontalPodAutoscaler
	pdbs        map[string]*policyv1.PodDisruptionBudget
	pods        map[string]*corev1.Pod
}

// newObject returns an empty typed object for a rendered document's
// apiVersion and kind; a kind the chart is not expected to render is an error.
func (r *rendered) newObject(tm metav1.TypeMeta) (obj any, store func(name string) error) {
	add := func(m any, o any) func(string) error {
		return func(name string) error {
			switch m := m.(type) {
			case map[string]*appsv1.Deployment:
				return put(m, name, o.(*appsv1.Deployment))
			case map[string]*corev1.Service:
				return put(m, name, o.(*corev1.Service))
			case map[string]*autoscalingv2.HorizontalPodAutoscaler:
				return put(m, name, o.(*autoscalingv2.HorizontalPodAutoscaler))
			case map[string]*policyv1.PodDisruptionBudget:
				return put(m, name, o.(*policyv1.PodDisruptionBudget))
			case map[string]*corev1.Pod:
				return put(m, name, o.(*corev1.Pod))
			}
			panic("unreachable")
		}
	}
	switch tm.APIVersion + "/" + tm.Kind {
	case "apps/v1/Deployment":
		o := &appsv1.Deployment{}
		return o, add(r.deployments, o)
	case "v1/Service":
		o := &corev1.Service{}
		return o, add(r.services, o)
	case "autoscaling/v2/HorizontalPodAutoscaler":
		o := &autoscalingv2.HorizontalPodAutoscaler{}
		return o, add(r.hpas, o)
	case "policy/v1/PodDisruptionBudget":
		o := &policyv1.PodDisruptionBudget{}
		return o, add(r.pdbs, o)
	case "v1/Pod":
		o := &corev1.Pod{}
		return o, add(r.pods, o)
	}
	return nil, nil
}

func put[T any](m map[string]T, name string, o T) error {
	if _, dup := m[name]; dup {
		return fmt.Errorf("two objects of one kind named %q", name)
	}
	m[name] = o
	return nil
}

// decodeManifests decodes every document of a multi-document YAML stream
// strictly into its typed Kubernetes object.
func decodeManifests(stream string) (*rendered, error) {
	r := &rendered{
		deployments: map[string]*appsv1.Deployment{},
		services:    map[string]*corev1.Service{},
		hpas:        map[string]*autoscalingv2.HorizontalPodAutoscaler{},
		pdbs:        map[string]*policyv1.PodDisruptionBudget{},
		pods:        map[string]*corev1.Pod{},
	}
	reader := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(stream)))
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return r, nil
		}
		if err != nil {
			return nil, err
		}
		var tm metav1.TypeMeta
		if err := utilyaml.Unmarshal(doc, &tm); err != nil {
			return nil, fmt.Errorf("document %q: %w", doc, err)
		}
		if tm.Kind == "" && tm.APIVersion == "" {
			if len(bytes.TrimSpace(stripComments(doc))) == 0 {
				continue // only comments
			}
			return nil, fmt.Errorf("document without apiVersion and kind:\n%s", doc)
		}
		obj, store := r.newObject(tm)
		if obj == nil {
			return nil, fmt.Errorf("no typed check for %s %s: add one to this test", tm.APIVersion, tm.Kind)
		}
		if err := decodeStrict(doc, obj); err != nil {
			return nil, fmt.Errorf("%s %s: %w\n%s", tm.APIVersion, tm.Kind, err, doc)
		}
		if err := store(obj.(metav1.Object).GetName()); err != nil {
			return nil, fmt.Errorf("%s %s: %w", tm.APIVersion, tm.Kind, err)
		}
	}
}

// stripComments drops comment lines and document separators.
func stripComments(doc []byte) []byte {
	var out []byte
	for _, line := range bytes.Split(doc, []byte("\n")) {
		l := bytes.TrimSpace(line)
		if !bytes.HasPrefix(l, []byte("#")) && !bytes.Equal(l, []byte("---")) {
			out = append(out, line...)
		}
	}
	return out
}

func renderChart(t *testing.T, args ...string) *rendered {
	t.Helper()
	out, err := helm(t, append([]string{"template", release, chartDir, "--namespace", namespace, "--kube-version", kubeVersion}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	r, err := decodeManifests(out)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestHelmTemplate(t *testing.T) {
	for name, args := range valueSets(t) {
		t.Run(name, func(t *testing.T) {
			r := renderChart(t, args...)
			checkRendered(t, name, r)
		})
	}
}

// checkRendered asserts what every rendering must hold; name says which
// value set was rendered, for the assertions that depend on it.
func checkRendered(t *testing.T, name string, r *rendered) {
	t.Helper()
	pred := mustGet(t, r.deployments, "prepred-pred")
	prep := mustGet(t, r.deployments, "prepred-prep")
	if len(r.deployments) != 2 {
		t.Errorf("deployments %v, want prepred-pred and prepred-prep", keys(r.deployments))
	}

	for _, d := range []*appsv1.Deployment{pred, prep} {
		checkDeployment(t, d)
	}
	checkPredPod(t, name, pred)
	checkPrepPod(t, prep)

	// Services: pred headless with gRPC and HTTP; each selects only its own pods.
	predSvc := mustGet(t, r.services, "prepred-pred")
	if predSvc.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("pred Service clusterIP %q, want None (headless): prep balances over pod addresses", predSvc.Spec.ClusterIP)
	}
	checkServicePorts(t, predSvc, map[string]int32{"grpc": 50051, "http": 8001})
	prepSvc := mustGet(t, r.services, "prepred-prep")
	if prepSvc.Spec.ClusterIP == corev1.ClusterIPNone {
		t.Error("prep Service is headless; it is the entry point and needs a virtual IP")
	}
	checkServicePorts(t, prepSvc, nil)
	for svc, d := range map[*corev1.Service]*appsv1.Deployment{predSvc: pred, prepSvc: prep} {
		sel := labels.SelectorFromSet(svc.Spec.Selector)
		if !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			t.Errorf("Service %s does not select the pods of %s", svc.Name, d.Name)
		}
		other := map[*appsv1.Deployment]*appsv1.Deployment{pred: prep, prep: pred}[d]
		if sel.Matches(labels.Set(other.Spec.Template.Labels)) {
			t.Errorf("Service %s also selects the pods of %s", svc.Name, other.Name)
		}
	}

	// prep reaches every pred pod through the headless Service's DNS name.
	wantAddr := fmt.Sprintf("dns:///%s.%s.svc.cluster.local:%d", predSvc.Name, namespace, 50051)
	if got := envOf(prep.Spec.Template.Spec.Containers[0], "PRED_ADDRESS"); got != wantAddr {
		t.Errorf("prep PRED_ADDRESS %q, want %q", got, wantAddr)
	}

	// Autoscalers target their own Deployment, which then leaves replicas to them.
	for _, d := range []*appsv1.Deployment{pred, prep} {
		hpa, ok := r.hpas[d.Name]
		if !ok {
			if d.Spec.Replicas == nil {
				t.Errorf("%s has neither replicas nor an autoscaler", d.Name)
			}
			continue
		}
		ref := hpa.Spec.ScaleTargetRef
		if ref.APIVersion != "apps/v1" || ref.Kind != "Deployment" || ref.Name != d.Name {
			t.Errorf("HPA %s targets %+v, want Deployment %s", hpa.Name, ref, d.Name)
		}
		if d.Spec.Replicas != nil {
			t.Errorf("%s sets replicas although HPA %s scales it: every upgrade would reset the scale", d.Name, hpa.Name)
		}
		if hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas < 1 || *hpa.Spec.MinReplicas > hpa.Spec.MaxReplicas {
			t.Errorf("HPA %s replicas min %v max %d", hpa.Name, hpa.Spec.MinReplicas, hpa.Spec.MaxReplicas)
		}
		if len(hpa.Spec.Metrics) != 1 || hpa.Spec.Metrics[0].Resource == nil || hpa.Spec.Metrics[0].Resource.Name != corev1.ResourceCPU ||
			hpa.Spec.Metrics[0].Resource.Target.Type != autoscalingv2.UtilizationMetricType || hpa.Spec.Metrics[0].Resource.Target.AverageUtilization == nil {
			t.Errorf("HPA %s metrics %+v, want one CPU utilization target", hpa.Name, hpa.Spec.Metrics)
		}
		if _, ok := d.Spec.Template.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU]; !ok {
			t.Errorf("%s has no CPU request: HPA %s's utilization target is a share of it", d.Name, hpa.Name)
		}
	}
	for n := range r.hpas {
		if _, ok := r.deployments[n]; !ok {
			t.Errorf("HPA %s has no Deployment of its name", n)
		}
	}

	// Disruption budgets select exactly their component's pods.
	for n, pdb := range r.pdbs {
		d, ok := r.deployments[n]
		if !ok {
			t.Errorf("PDB %s has no Deployment of its name", n)
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err != nil || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			t.Errorf("PDB %s does not select the pods of %s (%v)", n, d.Name, err)
		}
		if (pdb.Spec.MaxUnavailable == nil) == (pdb.Spec.MinAvailable == nil) {
			t.Errorf("PDB %s: want exactly one of maxUnavailable and minAvailable", n)
		}
	}

	// The helm test pod probes the rendered Services with the images' health probe.
	for _, pod := range r.pods {
		if pod.Annotations["helm.sh/hook"] != "test" {
			t.Errorf("Pod %s is not a helm test hook", pod.Name)
		}
		checkPodSecurity(t, pod.Name, pod.Spec)
		for _, c := range pod.Spec.Containers {
			if len(c.Command) < 3 || c.Command[0] != "/usr/local/bin/healthcheck" {
				t.Errorf("test container %s command %q", c.Name, c.Command)
				continue
			}
			host, _, _ := strings.Cut(c.Command[2], ":")
			if _, ok := r.services[host]; !ok {
				t.Errorf("test container %s probes %q, which is no rendered Service", c.Name, c.Command[2])
			}
		}
	}
	for _, objs := range []map[string]metav1.Object{asObjects(r.deployments), asObjects(r.services), asObjects(r.hpas), asObjects(r.pdbs), asObjects(r.pods)} {
		for n, o := range objs {
			for _, l := range []string{"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component", "app.kubernetes.io/managed-by", "helm.sh/chart"} {
				if o.GetLabels()[l] == "" {
					t.Errorf("%s lacks label %s", n, l)
				}
			}
		}
	}
}

func checkDeployment(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil || sel.Empty() || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
		t.Errorf("%s: selector %v does not match its pod labels %v (%v)", d.Name, d.Spec.Selector, d.Spec.Template.Labels, err)
	}
	spec := d.Spec.Template.Spec
	checkPodSecurity(t, d.Name, spec)
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Errorf("%s mounts a service account token it does not use", d.Name)
	}
	if len(spec.Containers) != 1 {
		t.Fatalf("%s: %d containers, want 1", d.Name, len(spec.Containers))
	}
	c := spec.Containers[0]
	if c.ReadinessProbe == nil || c.LivenessProbe == nil {
		t.Errorf("%s: readiness %v, liveness %v: both probes are required", d.Name, c.ReadinessProbe, c.LivenessProbe)
	}
	for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := c.Resources.Requests[res]; !ok {
			t.Errorf("%s: no %s request", d.Name, res)
		}
	}
	if _, ok := c.Resources.Limits[corev1.ResourceMemory]; !ok {
		t.Errorf("%s: no memory limit", d.Name)
	}
	if spec.TerminationGracePeriodSeconds == nil || *spec.TerminationGracePeriodSeconds < 10 {
		t.Errorf("%s: terminationGracePeriodSeconds %v leaves no time to drain", d.Name, spec.TerminationGracePeriodSeconds)
	}
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Exec != nil {
		if cmd := c.Lifecycle.PreStop.Exec.Command; len(cmd) != 2 || cmd[0] != "sleep" {
			t.Errorf("%s: preStop %q", d.Name, cmd)
		}
	}
	if ru := d.Spec.Strategy.RollingUpdate; ru == nil || ru.MaxUnavailable == nil || ru.MaxUnavailable.IntValue() != 0 {
		t.Errorf("%s: rolling update may take pods away before new ones are ready", d.Name)
	}
}

func checkPodSecurity(t *testing.T, owner string, spec corev1.PodSpec) {
	t.Helper()
	psc := spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		t.Errorf("%s: pod securityContext %+v, want runAsNonRoot with a non-zero runAsUser", owner, psc)
	}
	if psc != nil && (psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault) {
		t.Errorf("%s: seccomp profile %+v, want RuntimeDefault", owner, psc.SeccompProfile)
	}
	for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
		sc := c.SecurityContext
		if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
			sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
			t.Errorf("%s container %s: securityContext %+v, want no privilege escalation, read-only root, all capabilities dropped", owner, c.Name, sc)
		}
		if !strings.Contains(c.Image, ":") || strings.HasSuffix(c.Image, ":") {
			t.Errorf("%s container %s: image %q has no tag", owner, c.Name, c.Image)
		}
	}
}

func checkPredPod(t *testing.T, name string, d *appsv1.Deployment) {
	t.Helper()
	spec := d.Spec.Template.Spec
	c := spec.Containers[0]
	checkContainerPorts(t, d.Name, c, map[string]int32{"grpc": 50051, "http": 8001})
	for probeName, p := range map[string]*corev1.Probe{"startup": c.StartupProbe, "readiness": c.ReadinessProbe} {
		if p == nil || p.GRPC == nil || p.GRPC.Port != 50051 {
			t.Errorf("%s %s probe %+v, want native gRPC health on 50051", d.Name, probeName, p)
		}
	}
	if p := c.LivenessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/v2/health/live" || p.HTTPGet.Port.String() != "http" {
		t.Errorf("%s liveness probe %+v, want GET /v2/health/live on the http port", d.Name, p)
	}
	for _, env := range []string{"PRED_GRPC_ADDR", "PRED_HTTP_ADDR", "PRED_MODEL_REPOSITORY"} {
		if envOf(c, env) == "" {
			t.Errorf("%s: %s not set", d.Name, env)
		}
	}

	// The model repository: where PRED_MODEL_REPOSITORY points there must be
	// the image's repository or a read-only mount of the configured source.
	repo := envOf(c, "PRED_MODEL_REPOSITORY")
	mount := slices.IndexFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == repo })
	vol := slices.IndexFunc(spec.Volumes, func(v corev1.Volume) bool { return v.Name == "models" })
	switch name {
	case "pvc":
		if mount < 0 || !c.VolumeMounts[mount].ReadOnly || c.VolumeMounts[mount].SubPath != "repository" {
			t.Fatalf("%s: no read-only mount of the claim's subPath at %s: %+v", d.Name, repo, c.VolumeMounts)
		}
		if v := spec.Volumes[vol]; vol < 0 || v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != "prepred-models" || !v.PersistentVolumeClaim.ReadOnly {
			t.Errorf("%s: models volume %+v, want read-only claim prepred-models", d.Name, v)
		}
	case "model-image":
		if mount < 0 || vol < 0 || spec.Volumes[vol].EmptyDir == nil || spec.Volumes[vol].EmptyDir.SizeLimit == nil {
			t.Fatalf("%s: want an emptyDir with a size limit mounted at %s; mounts %+v volumes %+v", d.Name, repo, c.VolumeMounts, spec.Volumes)
		}
		if len(spec.InitContainers) != 1 {
			t.Fatalf("%s: %d init containers, want one that fills the repository", d.Name, len(spec.InitContainers))
		}
		ic := spec.InitContainers[0]
		if ic.Image != "registry.example.com/prepred/models:2026-11-01" || !slices.Equal(ic.Command, []string{"cp", "-R", "/models/.", "/repository/"}) ||
			len(ic.VolumeMounts) != 1 || ic.VolumeMounts[0].Name != "models" || ic.VolumeMounts[0].MountPath != "/repository" {
			t.Errorf("%s: init container %+v does not copy the model image's /models into the volume", d.Name, ic)
		}
	default:
		if mount >= 0 || vol >= 0 || len(spec.InitContainers) != 0 || repo != "/models" {
			t.Errorf("%s: source image wants the repository baked into the image at /models, got %s with mounts %+v", d.Name, repo, c.VolumeMounts)
		}
	}
	if name == "gpu" {
		gpus := c.Resources.Limits["nvidia.com/gpu"]
		if gpus.Value() != 1 || len(spec.Tolerations) == 0 || len(spec.NodeSelector) == 0 {
			t.Errorf("%s: GPU values give gpu limit %v, tolerations %v, nodeSelector %v", d.Name, gpus.String(), spec.Tolerations, spec.NodeSelector)
		}
	}
}

func checkPrepPod(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	c := d.Spec.Template.Spec.Containers[0]
	checkContainerPorts(t, d.Name, c, map[string]int32{"http": 8000})
	probes := map[string]*corev1.Probe{"/ready": c.ReadinessProbe, "/health": c.LivenessProbe}
	for path, p := range probes {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != path || p.HTTPGet.Port.String() != "http" {
			t.Errorf("%s probe for %s: %+v", d.Name, path, p)
		}
	}
	if got := envOf(c, "PREP_HTTP_ADDR"); got != ":8000" {
		t.Errorf("%s PREP_HTTP_ADDR %q, want :8000 (the container port)", d.Name, got)
	}
}

func checkContainerPorts(t *testing.T, owner string, c corev1.Container, want map[string]int32) {
	t.Helper()
	got := map[string]int32{}
	for _, p := range c.Ports {
		got[p.Name] = p.ContainerPort
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s container ports %v, want %v", owner, got, want)
	}
}

// checkServicePorts asserts named target ports; want nil only checks that
// every port targets a named container port.
func checkServicePorts(t *testing.T, svc *corev1.Service, want map[string]int32) {
	t.Helper()
	got := map[string]int32{}
	for _, p := range svc.Spec.Ports {
		if p.TargetPort.String() != p.Name {
			t.Errorf("Service %s port %s targets %q, want the container port of the same name", svc.Name, p.Name, p.TargetPort.String())
		}
		got[p.Name] = p.Port
	}
	if want != nil && fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Service %s ports %v, want %v", svc.Name, got, want)
	}
}

func envOf(c corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

func mustGet[T any](t *testing.T, m map[string]T, name string) T {
	t.Helper()
	v, ok := m[name]
	if !ok {
		t.Fatalf("%s not rendered (have %v)", name, keys(m))
	}
	return v
}

func keys[T any](m map[string]T) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func asObjects[T metav1.Object](m map[string]T) map[string]metav1.Object {
	out := map[string]metav1.Object{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

// TestHelmRejectsBadValues shows that the values schema and the template
// checks stop a broken configuration before anything reaches a cluster.
func TestHelmRejectsBadValues(t *testing.T) {
	tests := []struct {
		name string
		set  string
		want string
	}{
		{"misspelled key", "pred.replicas=3", "additional properties 'replicas' not allowed"},
		{"wrong type", "pred.replicaCount=three", "replicaCount"},
		{"unknown repository source", "pred.modelRepository.source=s3", "source"},
		{"pvc without claim", "pred.modelRepository.source=pvc", "needs pred.modelRepository.pvc.claimName"},
		{"autoscaling without CPU request", "prep.resources.requests.cpu=null", "prep.autoscaling.enabled needs prep.resources.requests.cpu"},
		{"min above max", "pred.autoscaling.minReplicas=20", "exceeds maxReplicas"},
		{"bad request timeout", "prep.requestTimeout=10", "requestTimeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := helm(t, "template", release, chartDir, "--kube-version", kubeVersion, "--set", tt.set)
			if err == nil {
				t.Fatalf("--set %s rendered without error", tt.set)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("--set %s: error does not mention %q:\n%v", tt.set, tt.want, err)
			}
		})
	}
}

// TestDecodeManifestsIsStrict shows that the typed decoding catches what a
// loose YAML decode would drop silently.
func TestDecodeManifestsIsStrict(t *testing.T) {
	const svc = "apiVersion: v1\nkind: Service\nmetadata:\n  name: x\nspec:\n  clusterIP: None\n"
	tests := []struct {
		name, doc, want string
	}{
		{"unknown field", svc + "  clusterIp: None\n", `unknown field "spec.clusterIp"`},
		{"field in wrong case", svc + "  Selector: {a: b}\n", `unknown field "spec.Selector"`},
		{"duplicate field", svc + "  clusterIP: None\n", `key "clusterIP" already set`},
		{"wrong type", "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\nspec:\n  replicas: two\n", "replicas"},
		{"bad quantity", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\nspec:\n  containers:\n  - name: c\n    resources:\n      limits:\n        memory: 2 gigs\n", "quantities must match"},
		{"unexpected kind", "apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\n", "no typed check for v1 Secret"},
		{"same name twice", svc + "---\n" + svc, `two objects of one kind named "x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeManifests(tt.doc)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("decode error %v, want one containing %q", err, tt.want)
			}
		})
	}
	if r, err := decodeManifests("---\n# Source: only a comment\n---\n" + svc); err != nil || len(r.services) != 1 {
		t.Fatalf("valid stream: %v", err)
	}
}
