package deploy_test

import (
	"bufio"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// certificate is the part of cert-manager's Certificate (cert-manager.io/v1)
// the chart renders, decoded strictly: a field the chart sets that is not
// here fails the test.
type certificate struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		SecretName  string   `json:"secretName"`
		CommonName  string   `json:"commonName"`
		DNSNames    []string `json:"dnsNames"`
		Usages      []string `json:"usages"`
		Duration    string   `json:"duration"`
		RenewBefore string   `json:"renewBefore"`
		PrivateKey  struct {
			Algorithm      string `json:"algorithm"`
			Size           int    `json:"size"`
			RotationPolicy string `json:"rotationPolicy"`
		} `json:"privateKey"`
		IssuerRef struct {
			Name  string `json:"name"`
			Kind  string `json:"kind"`
			Group string `json:"group"`
		} `json:"issuerRef"`
	} `json:"spec"`
}

// renderTLS renders the chart with args and returns the typed objects and
// the cert-manager Certificates by name.
func renderTLS(t *testing.T, args ...string) (*rendered, map[string]*certificate) {
	t.Helper()
	out, err := helm(t, append([]string{"template", release, chartDir, "--namespace", namespace, "--kube-version", kubeVersion}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	certs := map[string]*certificate{}
	var rest strings.Builder
	reader := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(out)))
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var tm metav1.TypeMeta
		if err := utilyaml.Unmarshal(doc, &tm); err != nil {
			t.Fatal(err)
		}
		if tm.APIVersion+"/"+tm.Kind != "cert-manager.io/v1/Certificate" {
			rest.WriteString("---\n")
			rest.Write(doc)
			continue
		}
		c := &certificate{}
		if err := decodeStrict(doc, c); err != nil {
			t.Fatalf("Certificate: %v\n%s", err, doc)
		}
		certs[c.Name] = c
	}
	r, err := decodeManifests(rest.String())
	if err != nil {
		t.Fatal(err)
	}
	checkRenderedTLS(t, r)
	return r, certs
}

const (
	predName = release + "-pred"
	prepName = release + "-prep"
	predHost = predName + "." + namespace + ".svc.cluster.local"
)

// checkRenderedTLS checks what every TLS rendering holds: each variable
// names a file of a read-only Secret mount without subPath (so rotations
// reach the pod), pred's probes are HTTPS GETs of its open health paths,
// and prep checks pred's certificate for the name it dials.
func checkRenderedTLS(t *testing.T, r *rendered) {
	t.Helper()
	for _, name := range []string{predName, prepName} {
		spec := mustGet(t, r.deployments, name).Spec.Template.Spec
		c := spec.Containers[0]
		m := slices.IndexFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == "tls" })
		v := slices.IndexFunc(spec.Volumes, func(v corev1.Volume) bool { return v.Name == "tls" })
		if m < 0 || v < 0 || spec.Volumes[v].Secret == nil || !c.VolumeMounts[m].ReadOnly || c.VolumeMounts[m].SubPath != "" {
			t.Fatalf("%s: no read-only secret mount without subPath: mounts %+v volumes %+v", name, c.VolumeMounts, spec.Volumes)
		}
		dir := c.VolumeMounts[m].MountPath
		for _, e := range c.Env {
			if strings.Contains(e.Name, "_TLS_") && strings.HasSuffix(e.Name, "_FILE") && !strings.HasPrefix(e.Value, dir+"/") {
				t.Errorf("%s %s=%s is not in the secret mount %s", name, e.Name, e.Value, dir)
			}
		}
	}
	pred := mustGet(t, r.deployments, predName).Spec.Template.Spec.Containers[0]
	for probe, p := range map[string]*corev1.Probe{"startup": pred.StartupProbe, "readiness": pred.ReadinessProbe, "liveness": pred.LivenessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Scheme != corev1.URISchemeHTTPS || !strings.HasPrefix(p.HTTPGet.Path, "/v2/health/") || p.GRPC != nil {
			t.Errorf("pred %s probe %+v, want an HTTPS GET of /v2/health/...", probe, p)
		}
	}
	for _, env := range []string{"PRED_TLS_CERT_FILE", "PRED_TLS_KEY_FILE"} {
		if envOf(pred, env) == "" {
			t.Errorf("pred: %s not set", env)
		}
	}
	prep := mustGet(t, r.deployments, prepName).Spec.Template.Spec.Containers[0]
	addr := strings.TrimPrefix(envOf(prep, "PRED_ADDRESS"), "dns:///")
	if host, _, _ := strings.Cut(addr, ":"); envOf(prep, "PRED_TLS_SERVER_NAME") != host || host != predHost {
		t.Errorf("prep PRED_TLS_SERVER_NAME %q, want the host it dials %q (%s)", envOf(prep, "PRED_TLS_SERVER_NAME"), host, predHost)
	}
	if envOf(prep, "PRED_TLS_CA_FILE") == "" {
		t.Error("prep: PRED_TLS_CA_FILE not set")
	}
}

func secretOf(t *testing.T, r *rendered, deployment string) string {
	t.Helper()
	for _, v := range mustGet(t, r.deployments, deployment).Spec.Template.Spec.Volumes {
		if v.Name == "tls" && v.Secret != nil {
			return v.Secret.SecretName
		}
	}
	t.Fatalf("%s has no tls secret volume", deployment)
	return ""
}

func TestHelmTLSExistingSecrets(t *testing.T) {
	args := []string{"--set", "tls.enabled=true", "--set", "tls.existingSecret.pred=pred-certs", "--set", "tls.existingSecret.prep=prep-certs"}
	if out, err := helm(t, append([]string{"lint", "--strict", "--kube-version", kubeVersion, chartDir}, args...)...); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	r, certs := renderTLS(t, args...)
	if len(certs) != 0 {
		t.Errorf("existing secrets render Certificates: %v", keys(certs))
	}
	if got := secretOf(t, r, predName); got != "pred-certs" {
		t.Errorf("pred mounts %q, want pred-certs", got)
	}
	if got := secretOf(t, r, prepName); got != "prep-certs" {
		t.Errorf("prep mounts %q, want prep-certs", got)
	}
	pred := mustGet(t, r.deployments, predName).Spec.Template.Spec.Containers[0]
	prep := mustGet(t, r.deployments, prepName).Spec.Template.Spec.Containers[0]
	for c, envs := range map[*corev1.Container][]string{&pred: {"PRED_TLS_CLIENT_CA_FILE"}, &prep: {"PREP_TLS_CERT_FILE", "PRED_TLS_CLIENT_CERT_FILE", "PRED_TLS_CLIENT_KEY_FILE"}} {
		for _, e := range envs {
			if envOf(*c, e) == "" {
				t.Errorf("%s: %s not set (mTLS and HTTPS are the defaults)", c.Name, e)
			}
		}
	}
	for _, p := range []*corev1.Probe{prep.ReadinessProbe, prep.LivenessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Scheme != corev1.URISchemeHTTPS {
			t.Errorf("prep probe %+v, want HTTPS", p)
		}
	}
	if got := mustGet(t, r.deployments, predName).Spec.Template.Annotations["prometheus.io/scheme"]; got != "https" {
		t.Errorf("pred scrape scheme %q, want https", got)
	}
	test := mustGet(t, r.pods, release+"-test-ready")
	for _, c := range test.Spec.Containers {
		if c.Name == "pred-serving" && (!slices.Contains(c.Command, "-cert-file") || !slices.Contains(c.Command, predHost)) {
			t.Errorf("helm test probe of pred %q: want it to present prep's client certificate and check %s", c.Command, predHost)
		}
	}

	// Without mTLS and HTTPS: TLS to pred only.
	r, _ = renderTLS(t, append(args, "--set", "tls.mutual=false", "--set", "tls.prepHTTPS=false")...)
	pred = mustGet(t, r.deployments, predName).Spec.Template.Spec.Containers[0]
	prep = mustGet(t, r.deployments, prepName).Spec.Template.Spec.Containers[0]
	for _, e := range []string{"PRED_TLS_CLIENT_CA_FILE"} {
		if envOf(pred, e) != "" {
			t.Errorf("pred %s set without mTLS", e)
		}
	}
	for _, e := range []string{"PREP_TLS_CERT_FILE", "PRED_TLS_CLIENT_CERT_FILE"} {
		if envOf(prep, e) != "" {
			t.Errorf("prep %s set without mTLS and HTTPS", e)
		}
	}
	if p := prep.ReadinessProbe; p.HTTPGet.Scheme == corev1.URISchemeHTTPS {
		t.Error("prep probes HTTPS without prepHTTPS")
	}
}

func TestHelmTLSCertManager(t *testing.T) {
	args := []string{"--set", "tls.enabled=true", "--set", "tls.source=certManager", "--set", "tls.certManager.issuerRef.name=prepred-ca", "--set", "tls.certManager.issuerRef.kind=ClusterIssuer"}
	if out, err := helm(t, append([]string{"lint", "--strict", "--kube-version", kubeVersion, chartDir}, args...)...); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	r, certs := renderTLS(t, args...)
	if len(certs) != 2 {
		t.Fatalf("Certificates %v, want one for pred and one for prep", keys(certs))
	}
	for _, name := range []string{predName, prepName} {
		c := mustGet(t, certs, name)
		if c.Spec.SecretName != secretOf(t, r, name) {
			t.Errorf("%s: Certificate fills %q, the pod mounts %q", name, c.Spec.SecretName, secretOf(t, r, name))
		}
		if !slices.Contains(c.Spec.DNSNames, name+"."+namespace+".svc.cluster.local") || !slices.Contains(c.Spec.DNSNames, name) {
			t.Errorf("%s: dnsNames %v lack the Service's names", name, c.Spec.DNSNames)
		}
		if !slices.Contains(c.Spec.Usages, "server auth") || !slices.Contains(c.Spec.Usages, "client auth") {
			t.Errorf("%s: usages %v, want server auth and client auth", name, c.Spec.Usages)
		}
		if c.Spec.IssuerRef.Name != "prepred-ca" || c.Spec.IssuerRef.Kind != "ClusterIssuer" || c.Spec.PrivateKey.RotationPolicy != "Always" {
			t.Errorf("%s: issuerRef %+v privateKey %+v", name, c.Spec.IssuerRef, c.Spec.PrivateKey)
		}
	}
}

func TestHelmTLSRejectsIncompleteValues(t *testing.T) {
	for name, args := range map[string][]string{
		"existing secrets unnamed": {"--set", "tls.enabled=true"},
		"one secret unnamed":       {"--set", "tls.enabled=true", "--set", "tls.existingSecret.pred=x"},
		"issuer unnamed":           {"--set", "tls.enabled=true", "--set", "tls.source=certManager"},
		"unknown source":           {"--set", "tls.enabled=true", "--set", "tls.source=vault"},
		"unknown key":              {"--set", "tls.certFile=x"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := helm(t, append([]string{"template", release, chartDir, "--kube-version", kubeVersion}, args...)...); err == nil {
				t.Fatal("rendered")
			}
		})
	}
}
