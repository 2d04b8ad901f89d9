package deploy_test

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The InferenceService is a custom resource of KServe; these types mirror
// the part of serving.kserve.io/v1beta1 that the example uses (a component
// is a PodSpec plus KServe's scaling fields), so strict decoding rejects a
// misspelled or misplaced field as the CRD's schema would.
type inferenceService struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Predictor   *kserveComponent `json:"predictor"`
		Transformer *kserveComponent `json:"transformer,omitempty"`
	} `json:"spec"`
}

type kserveComponent struct {
	corev1.PodSpec       `json:",inline"`
	MinReplicas          *int32  `json:"minReplicas,omitempty"`
	MaxReplicas          int32   `json:"maxReplicas,omitempty"`
	ScaleTarget          *int32  `json:"scaleTarget,omitempty"`
	ScaleMetric          *string `json:"scaleMetric,omitempty"`
	ContainerConcurrency *int64  `json:"containerConcurrency,omitempty"`
	TimeoutSeconds       *int64  `json:"timeout,omitempty"`
}

func TestKServeInferenceService(t *testing.T) {
	var isvc inferenceService
	if err := decodeStrict(readRepoFile(t, "deploy/kserve/inferenceservice.yaml"), &isvc); err != nil {
		t.Fatal(err)
	}
	if isvc.APIVersion != "serving.kserve.io/v1beta1" || isvc.Kind != "InferenceService" || isvc.Name == "" {
		t.Fatalf("%s %s %q: want a named serving.kserve.io/v1beta1 InferenceService", isvc.APIVersion, isvc.Kind, isvc.Name)
	}
	// Two ports on pred need KServe's raw Deployment mode (Knative allows one).
	if mode := isvc.Annotations["serving.kserve.io/deploymentMode"]; mode != "RawDeployment" && mode != "Standard" {
		t.Errorf("deploymentMode %q, want RawDeployment", mode)
	}
	pred, prep := isvc.Spec.Predictor, isvc.Spec.Transformer
	if pred == nil || prep == nil {
		t.Fatal("want a predictor (pred) and a transformer (prep)")
	}
	for role, comp := range map[string]*kserveComponent{"predictor": pred, "transformer": prep} {
		if len(comp.Containers) != 1 || comp.Containers[0].Name != "kserve-container" {
			t.Fatalf("%s: want exactly one container named kserve-container", role)
		}
		checkPodSecurity(t, role, comp.PodSpec)
		c := comp.Containers[0]
		if c.ReadinessProbe == nil || c.LivenessProbe == nil {
			t.Errorf("%s: readiness and liveness probes are required", role)
		}
		if comp.MinReplicas == nil || *comp.MinReplicas < 1 || comp.MaxReplicas < *comp.MinReplicas {
			t.Errorf("%s: replicas min %v max %d", role, comp.MinReplicas, comp.MaxReplicas)
		}
		if _, ok := c.Resources.Requests[corev1.ResourceCPU]; !ok {
			t.Errorf("%s: no CPU request for the CPU scale target", role)
		}
	}

	pc := pred.Containers[0]
	if !strings.HasPrefix(pc.Image, "prepred/pred:") || envOf(pc, "PROTOCOL") != "v2" {
		t.Errorf("predictor image %q PROTOCOL %q, want the pred image speaking v2 (Open Inference Protocol)", pc.Image, envOf(pc, "PROTOCOL"))
	}
	// KServe's Service sends port 80 to the first port (OIP REST) and keeps the rest.
	if len(pc.Ports) != 2 || pc.Ports[0].ContainerPort != 8001 || pc.Ports[1].ContainerPort != 50051 {
		t.Errorf("predictor ports %+v, want 8001 (REST) first, then 50051 (gRPC)", pc.Ports)
	}
	if envOf(pc, "PRED_HTTP_ADDR") != ":8001" || envOf(pc, "PRED_GRPC_ADDR") != ":50051" {
		t.Errorf("predictor listens on %q/%q, not on its declared ports", envOf(pc, "PRED_HTTP_ADDR"), envOf(pc, "PRED_GRPC_ADDR"))
	}

	tc := prep.Containers[0]
	if !strings.HasPrefix(tc.Image, "prepred/prep:") {
		t.Errorf("transformer image %q, want the prep image", tc.Image)
	}
	// KServe appends --model_name/--predictor_host/--http_port to the
	// transformer's arguments; prep must not receive them as flags.
	if len(tc.Command) < 4 || tc.Command[0] != "/bin/sh" || tc.Command[1] != "-c" || tc.Command[2] != "exec /usr/local/bin/prep" {
		t.Errorf("transformer command %q: KServe's extra arguments would reach prep", tc.Command)
	}
	if len(tc.Ports) != 1 || tc.Ports[0].ContainerPort != 8080 || envOf(tc, "PREP_HTTP_ADDR") != ":8080" {
		t.Errorf("transformer ports %+v PREP_HTTP_ADDR %q, want 8080 (KServe's transformer port)", tc.Ports, envOf(tc, "PREP_HTTP_ADDR"))
	}
	wantAddr := "dns:///" + isvc.Name + "-predictor:50051"
	if got := envOf(tc, "PRED_ADDRESS"); got != wantAddr {
		t.Errorf("transformer PRED_ADDRESS %q, want %q (the predictor Service's gRPC port)", got, wantAddr)
	}
	if !slices.ContainsFunc(tc.Env, func(e corev1.EnvVar) bool { return e.Name == "PREP_MODEL" }) {
		t.Error("transformer does not set PREP_MODEL")
	}
}
