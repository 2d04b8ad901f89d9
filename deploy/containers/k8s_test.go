//go:build k8s

package containers_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	// k8sNamespace and k8sRelease are where the chart is installed.
	k8sNamespace = "prepred-test"
	k8sRelease   = "prepred"
	// k8sReadyTimeout bounds waits for pods to be Ready (image start,
	// pred's model loading, the probes' periods).
	k8sReadyTimeout = 4 * time.Minute
	// k8sRejoinTimeout bounds the wait for prep to send calls to a new pred
	// pod: its gRPC client re-resolves the headless Service's name.
	k8sRejoinTimeout = 2 * time.Minute
	// k8sFollowTimeout bounds the wait for every prep to use a new contract.
	k8sFollowTimeout = 2 * time.Minute
	// Load through kubectl port-forward: k8sRate requests a second; the
	// pred pod is deleted once k8sDeleteAfter requests of k8sDeleteLoad are done.
	k8sRate        = 40
	k8sDeleteLoad  = 400
	k8sDeleteAfter = 100
	// k8sSpreadRequests measure how calls spread over the pred pods; each
	// must answer at least minShare of them.
	k8sSpreadRequests = 200
	// k8sRollMax bounds the load during the helm upgrade.
	k8sRollMax = 20000
	// portForwardTimeout bounds the wait for kubectl port-forward's port.
	portForwardTimeout = 30 * time.Second
	// prepPort is prep's container and Service port (the chart's default).
	prepPort = 8000
)

// kube runs kubectl and helm against the cluster of scripts/k8s-up.sh.
type kube struct {
	root, kubeconfig, kubectl, helm string
	// values are the values a user sets on the chart (--set).
	values []string
}

func newKube(t *testing.T) *kube {
	t.Helper()
	k := &kube{
		kubeconfig: os.Getenv("PREPRED_TEST_KUBECONFIG"),
		kubectl:    os.Getenv("PREPRED_TEST_KUBECTL"),
		helm:       os.Getenv("PREPRED_TEST_HELM"),
	}
	if k.kubeconfig == "" || k.kubectl == "" || k.helm == "" {
		t.Fatal("PREPRED_TEST_KUBECONFIG, PREPRED_TEST_KUBECTL and PREPRED_TEST_HELM must be set; run scripts/test-k8s.sh (make test-k8s)")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	k.root = root
	// What a user sets for images imported into the node, and the colors
	// model, whose labels a test can check. The CPU requests are scaled
	// to a one-node cluster of 2 cores: the defaults (2 CPUs a pred pod,
	// 1 a prep pod, 2 replicas each) ask for 6.
	k.values = []string{
		"pred.image.repository=prepred/pred", "pred.image.tag=local", "pred.image.pullPolicy=Never",
		"prep.image.repository=prepred/prep", "prep.image.tag=local", "prep.image.pullPolicy=Never",
		"prep.model=colors",
		"pred.resources.requests.cpu=200m", "prep.resources.requests.cpu=100m",
		// One pred pod at first; the checks scale it to 2 through the HPA.
		"pred.autoscaling.minReplicas=1",
	}
	return k
}

func (k *kube) run(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = k.root
	cmd.Env = append(os.Environ(), "KUBECONFIG="+k.kubeconfig)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %v: %s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func (k *kube) ctl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := k.run(t.Context(), k.kubectl, append([]string{"-n", k8sNamespace}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (k *kube) helmCmd(t *testing.T, args ...string) string {
	t.Helper()
	out, err := k.run(t.Context(), k.helm, append(args, "-n", k8sNamespace)...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// setArgs turns values into --set flags.
func setArgs(values []string) []string {
	var args []string
	for _, v := range values {
		args = append(args, "--set", v)
	}
	return args
}

// pod is what the checks read of a pod.
type pod struct {
	Metadata struct {
		Name              string
		UID               string
		DeletionTimestamp *time.Time
	}
	Status struct {
		Phase             string
		ContainerStatuses []struct {
			Ready        bool
			RestartCount int
			Image        string
		}
	}
}

func (p pod) ready() bool {
	if p.Status.Phase != "Running" || len(p.Status.ContainerStatuses) == 0 {
		return false
	}
	for _, c := range p.Status.ContainerStatuses {
		if !c.Ready {
			return false
		}
	}
	return true
}

// pods lists the pods of component (pred, prep).
func (k *kube) pods(t *testing.T, component string) []pod {
	t.Helper()
	var list struct{ Items []pod }
	out := k.ctl(t, "get", "pods", "-o", "json", "-l",
		"app.kubernetes.io/instance="+k8sRelease+",app.kubernetes.io/component="+component)
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("kubectl get pods: %v", err)
	}
	return list.Items
}

// waitReady waits until component has exactly n pods, all Ready, none of
// them terminating, and returns their names.
func (k *kube) waitReady(t *testing.T, component string, n int) []string {
	t.Helper()
	var names []string
	waitFor(t, k8sReadyTimeout, fmt.Sprintf("%d ready %s pods", n, component), func() string {
		pods := k.pods(t, component)
		names = names[:0]
		var state []string
		for _, p := range pods {
			names = append(names, p.Metadata.Name)
			state = append(state, fmt.Sprintf("%s %s ready=%v terminating=%v", p.Metadata.Name, p.Status.Phase, p.ready(), p.Metadata.DeletionTimestamp != nil))
			if !p.ready() || p.Metadata.DeletionTimestamp != nil {
				return strings.Join(state, "; ")
			}
		}
		if len(pods) != n {
			return strings.Join(state, "; ")
		}
		return ""
	})
	slices.Sort(names)
	return names
}

// portForward runs kubectl port-forward to target (svc/NAME or pod/NAME)
// port and returns the local port on 127.0.0.1; it runs until owner's
// cleanup.
func (k *kube) portForward(owner *testing.T, target string, port int) (string, error) {
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, k.kubectl, "-n", k8sNamespace, "port-forward", "--address", "127.0.0.1", target, fmt.Sprintf(":%d", port))
	cmd.Env = append(os.Environ(), "KUBECONFIG="+k.kubeconfig)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		return "", err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		cancel()
		return "", err
	}
	owner.Cleanup(func() { cancel(); _ = cmd.Wait() })
	found := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`Forwarding from 127\.0\.0\.1:(\d+) ->`)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() { // reads to the end so that kubectl never blocks
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
		close(found)
	}()
	select {
	case p, ok := <-found:
		if !ok {
			return "", fmt.Errorf("kubectl port-forward %s ended: %s", target, stderr.String())
		}
		return p, nil
	case <-time.After(portForwardTimeout):
		return "", fmt.Errorf("kubectl port-forward %s: no port in %v", target, portForwardTimeout)
	}
}

// predSuccesses returns the colors requests pred pod name answered, from
// its own metrics, read through the API server's pod proxy.
func (k *kube) predSuccesses(t *testing.T, name string) float64 {
	t.Helper()
	text := k.ctl(t, "get", "--raw", fmt.Sprintf("/api/v1/namespaces/%s/pods/%s:8001/proxy/metrics", k8sNamespace, name))
	return metricSum(text, "pred_inference_request_success_total", `model="colors"`)
}

// fingerprint is the spec fingerprint prep (at local port) uses, from /ready.
func prepFingerprint(t *testing.T, port string) string {
	t.Helper()
	resp, err := http.Get("http://127.0.0.1:" + port + "/ready")
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

// waitCallsTo waits until pred pod name has answered colors requests of
// the load that runs meanwhile.
func (k *kube) waitCallsTo(t *testing.T, l *load, name string) {
	t.Helper()
	start := k.predSuccesses(t, name)
	waitFor(t, k8sRejoinTimeout, "prep sending calls to "+name, func() string {
		if n := k.predSuccesses(t, name); n <= start {
			return fmt.Sprintf("no call answered by it (%d requests of the load done)", l.stats.total())
		}
		return ""
	})
}

// diagnose logs what a failure needs: the pods, the namespace's events
// and the tail of every container's log.
func (k *kube) diagnose(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, args := range [][]string{
		{"get", "pods", "-o", "wide"},
		{"get", "events", "--sort-by=.lastTimestamp"},
		{"logs", "--all-containers", "--prefix", "--tail=30", "-l", "app.kubernetes.io/instance=" + k8sRelease},
	} {
		out, _ := k.run(ctx, k.kubectl, append([]string{"-n", k8sNamespace}, args...)...)
		t.Logf("kubectl %s:\n%s", strings.Join(args, " "), out)
	}
}

// TestKubernetes installs the chart on the cluster of scripts/k8s-up.sh
// and drives it through the checks in order; each builds on the state the
// previous one left.
func TestKubernetes(t *testing.T) {
	outer := t
	k := newKube(t)
	images := colorImages(t, k.root, "red", "blue", "yellow", "cyan")
	installed := false
	t.Cleanup(func() {
		if t.Failed() {
			k.diagnose(t)
		}
		if installed {
			_, _ = k.run(context.Background(), k.helm, "uninstall", k8sRelease, "-n", k8sNamespace, "--wait", "--timeout", "2m")
		}
		_, _ = k.run(context.Background(), k.kubectl, "delete", "namespace", k8sNamespace, "--ignore-not-found", "--wait=true", "--timeout=2m")
	})
	step := func(name string, f func(t *testing.T)) {
		if !t.Run(name, f) {
			t.FailNow()
		}
	}

	var preps, preds []string
	step("helm install: every pod Ready, HPAs and PDBs accepted", func(t *testing.T) {
		args := append([]string{"install", k8sRelease, "deploy/helm/prepred", "--create-namespace", "--wait", "--timeout", "5m"}, setArgs(k.values)...)
		k.helmCmd(t, args...)
		installed = true
		// prep's HPA (minReplicas 2) scales it from its first pod.
		preds = k.waitReady(t, "pred", 1)
		preps = k.waitReady(t, "prep", 2)
		for _, kind := range []string{"hpa", "pdb"} {
			for _, c := range []string{"pred", "prep"} {
				k.ctl(t, "get", kind, k8sRelease+"-"+c)
			}
		}
		for _, c := range []string{"pred", "prep"} {
			var hpa struct {
				Status struct {
					DesiredReplicas int
					Conditions      []struct{ Type, Status, Reason, Message string }
				}
			}
			if err := json.Unmarshal([]byte(k.ctl(t, "get", "hpa", k8sRelease+"-"+c, "-o", "json")), &hpa); err != nil {
				t.Fatal(err)
			}
			t.Logf("hpa %s-%s: desired %d, conditions %+v", k8sRelease, c, hpa.Status.DesiredReplicas, hpa.Status.Conditions)
		}
		t.Logf("pods: pred %v, prep %v", preds, preps)
	})

	step("helm test", func(t *testing.T) {
		t.Log(k.helmCmd(t, "test", k8sRelease, "--timeout", "3m"))
	})

	prepPorts := map[string]string{}
	step("the README request through kubectl port-forward to prep's Service", func(t *testing.T) {
		port, err := k.portForward(t, "svc/"+k8sRelease+"-prep", prepPort)
		if err != nil {
			t.Fatal(err)
		}
		o, detail := predictLabel(t.Context(), http.DefaultClient, port, images[0])
		if o != outcomeOK {
			t.Fatalf("red.jpg through svc/%s-prep: %s", k8sRelease, detail)
		}
		// The load goes to each prep pod through a port-forward of its own,
		// which lasts to the end of the test.
		for _, p := range preps {
			if prepPorts[p], err = k.portForward(outer, "pod/"+p, prepPort); err != nil {
				t.Fatal(err)
			}
		}
	})
	ports := func() []string {
		var ps []string
		for _, p := range preps {
			ps = append(ps, prepPorts[p])
		}
		return ps
	}

	step("pred scaled to 2 by its HPA gets calls on the new pod", func(t *testing.T) {
		// The prep pods resolved pred's Service when it had one pod: they
		// find the new one when pred's connections reach their maximum age
		// (pred.maxConnectionAge) and they reconnect and re-resolve.
		warm := newLoad(images, ports()...)
		stop, wait := warm.background(t.Context(), k8sRate, k8sRollMax)
		defer func() { stop(); wait() }()
		k.values = append(k.values, "pred.autoscaling.minReplicas=2")
		k.helmCmd(t, append([]string{"upgrade", k8sRelease, "deploy/helm/prepred", "--wait", "--timeout", "5m"}, setArgs(k.values)...)...)
		now := k.waitReady(t, "pred", 2)
		for _, p := range now {
			k.waitCallsTo(t, warm, p)
		}
		stop()
		wait()
		if n := warm.stats.total(); warm.stats.get(outcomeOK) != n {
			t.Fatalf("while scaling pred: %v", &warm.stats)
		}
		t.Logf("pred pods %v answer calls; %d requests meanwhile", now, warm.stats.total())
		preds = now
	})

	step("calls spread over both pred pods by their metrics", func(t *testing.T) {
		before := map[string]float64{}
		for _, p := range preds {
			before[p] = k.predSuccesses(t, p)
		}
		l := newLoad(images, ports()...)
		ctx, cancel := context.WithTimeout(t.Context(), loadTimeout)
		defer cancel()
		l.run(ctx, k8sRate, k8sSpreadRequests, nil)
		if l.stats.get(outcomeOK) != k8sSpreadRequests {
			t.Fatalf("load: %v", &l.stats)
		}
		share := map[string]float64{}
		total := 0.0
		for _, p := range preds {
			share[p] = k.predSuccesses(t, p) - before[p]
			total += share[p]
		}
		t.Logf("%d requests through both prep pods; colors requests each pred pod answered: %v", k8sSpreadRequests, share)
		if total < k8sSpreadRequests {
			t.Errorf("the pred pods answered %v requests, fewer than the %d sent", total, k8sSpreadRequests)
		}
		for _, p := range sortedKeys(share) {
			if share[p] < minShare*k8sSpreadRequests {
				t.Errorf("pred pod %s answered %v of %d requests, want at least %v", p, share[p], k8sSpreadRequests, minShare*k8sSpreadRequests)
			}
		}
	})

	step("a pred pod deleted under load fails no request and is replaced", func(t *testing.T) {
		victim := preds[0]
		l := newLoad(images, ports()...)
		ctx, cancel := context.WithTimeout(t.Context(), loadTimeout)
		defer cancel()
		stop, wait := l.background(ctx, k8sRate, k8sDeleteLoad)
		defer func() { stop(); wait() }()
		waitFor(t, loadTimeout, "load before the delete", func() string {
			if n := l.stats.total(); n < k8sDeleteAfter {
				return fmt.Sprintf("%d of %d requests done", n, k8sDeleteAfter)
			}
			return ""
		})
		k.ctl(t, "delete", "pod", victim, "--wait=false")
		deletedAt := l.stats.total()
		wait()
		t.Logf("deleted %s after %d requests: %v", victim, deletedAt, &l.stats)
		if n := l.stats.get(outcomeOK); n != k8sDeleteLoad {
			t.Errorf("%d requests, want all %d answered right: %v", l.stats.total(), k8sDeleteLoad, &l.stats)
		}
		now := k.waitReady(t, "pred", 2)
		if slices.Contains(now, victim) {
			t.Fatalf("deleted pod %s still listed: %v", victim, now)
		}
		var fresh string
		for _, p := range now {
			if !slices.Contains(preds, p) {
				fresh = p
			}
		}
		// prep finds the replacement when pred's connections reach their
		// maximum age (pred.maxConnectionAge) and it re-resolves.
		again := newLoad(images, ports()...)
		stopAgain, waitAgain := again.background(t.Context(), k8sRate, k8sRollMax)
		defer func() { stopAgain(); waitAgain() }()
		k.waitCallsTo(t, again, fresh)
		stopAgain()
		waitAgain()
		if n := again.stats.total(); again.stats.get(outcomeOK) != n {
			t.Errorf("while waiting for prep to use the replacement: %v", &again.stats)
		}
		t.Logf("replacement %s answers calls after %d more requests", fresh, again.stats.total())
		preds = now
	})

	step("helm upgrade to a pred with another spec: no wrong label, prep follows without a restart", func(t *testing.T) {
		fpBefore := map[string]string{}
		for _, p := range preps {
			fpBefore[p] = prepFingerprint(t, prepPorts[p])
		}
		prepState := map[string]string{}
		for _, p := range k.pods(t, "prep") {
			prepState[p.Metadata.Name] = fmt.Sprintf("uid %s restarts %d", p.Metadata.UID, p.Status.ContainerStatuses[0].RestartCount)
		}
		l := newLoad(images, ports()...)
		ctx, cancel := context.WithTimeout(t.Context(), loadTimeout)
		defer cancel()
		stop, wait := l.background(ctx, k8sRate, k8sRollMax)
		defer func() { stop(); wait() }()
		mark := l.stats.snapshot()
		phase := func(what string) {
			t.Logf("%-40s %s", what+":", l.stats.since(mark))
			mark = l.stats.snapshot()
		}
		values := append(slices.Clone(k.values), "pred.image.tag=release2")
		k.helmCmd(t, append([]string{"upgrade", k8sRelease, "deploy/helm/prepred", "--wait", "--timeout", "5m"}, setArgs(values)...)...)
		phase("helm upgrade --wait")
		now := k.waitReady(t, "pred", 2)
		for _, p := range k.pods(t, "pred") {
			if img := p.Status.ContainerStatuses[0].Image; !strings.HasSuffix(img, ":release2") {
				t.Errorf("pred pod %s runs %s after the upgrade", p.Metadata.Name, img)
			}
		}
		waitFor(t, k8sFollowTimeout, "prep pods following the new spec", func() string {
			var behind []string
			for _, p := range preps {
				if prepFingerprint(t, prepPorts[p]) == fpBefore[p] {
					behind = append(behind, p)
				}
			}
			return strings.Join(behind, ", ")
		})
		phase("until every prep uses the new spec")
		for _, p := range now {
			k.waitCallsTo(t, l, p)
		}
		phase("until both new pred pods are used")
		stop()
		wait()
		t.Logf("release 2 rolled in: %v", &l.stats)
		if n := l.stats.get(outcomeWrongLabel); n != 0 {
			t.Errorf("%d labels computed from a tensor that did not match the model's spec: %v", n, &l.stats)
		}
		if n := l.stats.get(outcomeOtherError); n != 0 {
			t.Errorf("%d requests failed other than by the contract's refusal: %v", n, &l.stats)
		}
		if n := l.stats.get(outcomeContract); n > maxRollRefusals {
			t.Errorf("%d requests refused by the contract during the upgrade, want at most %d: %v", n, maxRollRefusals, &l.stats)
		}
		settle := newLoad(images, ports()...)
		settle.run(t.Context(), k8sRate, settleRequests, nil)
		if settle.stats.get(outcomeOK) != settleRequests {
			t.Errorf("after the upgrade, want all %d requests answered right: %v", settleRequests, &settle.stats)
		}
		for _, p := range k.pods(t, "prep") {
			got := fmt.Sprintf("uid %s restarts %d", p.Metadata.UID, p.Status.ContainerStatuses[0].RestartCount)
			if got != prepState[p.Metadata.Name] {
				t.Errorf("prep pod %s was replaced or restarted: %s, before %s", p.Metadata.Name, got, prepState[p.Metadata.Name])
			}
		}
		preds = now
	})

	step("helm uninstall leaves no object", func(t *testing.T) {
		k.helmCmd(t, "uninstall", k8sRelease, "--wait", "--timeout", "3m")
		installed = false
		// The uninstall deletes the chart's objects; the garbage collector
		// then deletes what they owned (ReplicaSets, pods, EndpointSlices).
		kinds := "all,configmaps,secrets,serviceaccounts,endpointslices,poddisruptionbudgets,horizontalpodautoscalers,roles,rolebindings"
		waitFor(t, k8sReadyTimeout, "no object of the release left", func() string {
			left := strings.Fields(k.ctl(t, "get", kinds, "-l", "app.kubernetes.io/instance="+k8sRelease, "-o", "name"))
			left = append(left, strings.Fields(k.ctl(t, "get", "pods", "-o", "name"))...)
			left = append(left, strings.Fields(k.ctl(t, "get", "secrets", "-l", "owner=helm,name="+k8sRelease, "-o", "name"))...)
			return strings.Join(left, ", ")
		})
	})
}
