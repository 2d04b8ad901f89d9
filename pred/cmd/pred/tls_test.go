package main

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/prepred/prepred/api/certgen"
	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/api/tlsfiles"
	"github.com/prepred/prepred/pred/predtest"
)

// tlsCallTimeout bounds one call of the TLS tests.
const tlsCallTimeout = 10 * time.Second

// testPKI writes a CA, a server certificate for 127.0.0.1 and localhost
// and client certificates into a temporary directory.
type testPKI struct {
	dir, caFile, certFile, keyFile string
	ca                             *certgen.CA
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	ca, err := certgen.NewCA("pred test CA")
	if err != nil {
		t.Fatal(err)
	}
	p := &testPKI{dir: t.TempDir(), ca: ca}
	p.caFile = p.dir + "/ca.crt"
	if err := certgen.WriteFile(p.caFile, ca.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	p.certFile, p.keyFile = p.issue(t, "pred", certgen.Options{Server: true, DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	return p
}

func (p *testPKI) issue(t *testing.T, name string, o certgen.Options) (string, string) {
	t.Helper()
	leaf, err := p.ca.Issue(name, o)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := leaf.Write(p.dir, name)
	if err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// clientTLS is a client configuration trusting p's CA, presenting the
// certificate in certFile and keyFile when they are not empty.
func (p *testPKI) clientTLS(t *testing.T, certFile, keyFile string) *tls.Config {
	t.Helper()
	s, err := tlsfiles.New(tlsfiles.Options{CAFile: p.caFile, CertFile: certFile, KeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	return s.ClientConfig("")
}

// waitLog waits for a pred log line containing every one of parts.
func waitLog(t *testing.T, srv *predtest.Server, parts ...string) {
	t.Helper()
	srv.WaitLog(t, tlsCallTimeout, func(line string) bool {
		for _, p := range parts {
			if !strings.Contains(line, p) {
				return false
			}
		}
		return true
	})
}

func healthCheck(addr string, creds credentials.TransportCredentials) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), tlsCallTimeout)
	defer cancel()
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	return err
}

func httpsGet(t *testing.T, cfg *tls.Config, url string) (int, string) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: tlsCallTimeout}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestTLSWithoutClientCertificates(t *testing.T) {
	p := newTestPKI(t)
	srv := predtest.StartTLS(t, credentials.NewTLS(p.clientTLS(t, "", "")), []string{"PRED_TLS_CERT_FILE=" + p.certFile, "PRED_TLS_KEY_FILE=" + p.keyFile})

	if err := healthCheck(srv.GRPCAddr, insecure.NewCredentials()); err == nil {
		t.Fatal("a plaintext gRPC client was served by a TLS pred")
	}
	waitLog(t, srv, `"tls handshake refused"`, `"listener":"grpc"`, "first record does not look like a TLS handshake")

	code, body := httpsGet(t, p.clientTLS(t, "", ""), "https://"+srv.HTTPAddr+"/v2/models/colors")
	if code != http.StatusOK || !strings.Contains(body, `"colors"`) {
		t.Fatalf("model metadata over HTTPS = %d %s", code, body)
	}
	resp, err := http.Get("http://" + srv.HTTPAddr + "/v2/health/ready")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("plaintext HTTP answered 200 by a TLS pred")
		}
	}
	waitLog(t, srv, "TLS handshake error", `"listener":"http"`)
}

func TestMutualTLS(t *testing.T) {
	p := newTestPKI(t)
	clientCert, clientKey := p.issue(t, "prep", certgen.Options{Client: true})
	good := p.clientTLS(t, clientCert, clientKey)
	srv := predtest.StartTLS(t, credentials.NewTLS(good), nil,
		"--tls-cert-file", p.certFile, "--tls-key-file", p.keyFile, "--tls-client-ca-file", p.caFile,
		"--management-api", "--management-token", "s3cret")

	other := newTestPKI(t)
	strangerCert, strangerKey := other.issue(t, "stranger", certgen.Options{Client: true})
	expiredCert, expiredKey := p.issue(t, "expired", certgen.Options{Client: true, NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	refused := []struct {
		name      string
		cfg       *tls.Config
		serverLog string
	}{
		{"no client certificate", p.clientTLS(t, "", ""), "client didn't provide a certificate"},
		{"unknown CA", p.clientTLS(t, strangerCert, strangerKey), "certificate signed by unknown authority"},
		{"expired", p.clientTLS(t, expiredCert, expiredKey), "certificate has expired"},
	}
	for _, tc := range refused {
		t.Run("grpc "+tc.name, func(t *testing.T) {
			if err := healthCheck(srv.GRPCAddr, credentials.NewTLS(tc.cfg)); err == nil {
				t.Fatal("served")
			}
			waitLog(t, srv, `"tls handshake refused"`, `"listener":"grpc"`, tc.serverLog)
		})
	}

	// With the certificate every gRPC service answers.
	ctx, cancel := context.WithTimeout(context.Background(), tlsCallTimeout)
	defer cancel()
	md, err := predv1.NewPredServiceClient(srv.Dial(t)).ModelMetadata(ctx, &predv1.ModelMetadataRequest{Model: "colors"})
	if err != nil || md.GetModel() != "colors" {
		t.Fatalf("ModelMetadata with a client certificate = %v, %v", md, err)
	}

	base := "https://" + srv.HTTPAddr
	noCert := p.clientTLS(t, "", "")
	for _, path := range []string{"/v2/health/live", "/v2/health/ready", "/metrics"} {
		if code, body := httpsGet(t, noCert, base+path); code != http.StatusOK {
			t.Errorf("%s without a client certificate = %d %s, want 200 (open for probes)", path, code, body)
		}
	}
	for _, path := range []string{"/v2/models/colors", "/v2", "/v1/models/colors", "/v2/repository/index"} {
		code, body := httpsGet(t, noCert, base+path)
		if code != http.StatusForbidden || !strings.Contains(body, "client certificate is required") {
			t.Errorf("%s without a client certificate = %d %s, want 403", path, code, body)
		}
	}
	waitLog(t, srv, `"request refused: no client certificate"`, `"path":"/v2/models/colors"`)
	if code, body := httpsGet(t, good, base+"/v2/models/colors"); code != http.StatusOK {
		t.Errorf("/v2/models/colors with a client certificate = %d %s", code, body)
	}
	// The repository API needs both: the certificate and its token.
	req, _ := http.NewRequest(http.MethodPost, base+"/v2/repository/index", nil)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: good}, Timeout: tlsCallTimeout}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("repository index with a certificate, without the token = %d, want 401", resp.StatusCode)
	}
	req.Header.Set("Authorization", "Bearer s3cret")
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("repository index with certificate and token = %d, want 200", resp.StatusCode)
	}
	// A stranger's certificate does not pass the HTTP handshake either.
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: p.clientTLS(t, strangerCert, strangerKey)}, Timeout: tlsCallTimeout}
	if resp, err := c.Get(base + "/v2/health/live"); err == nil {
		resp.Body.Close()
		t.Errorf("a client certificate of an unknown CA passed the HTTP handshake: %d", resp.StatusCode)
	}
	waitLog(t, srv, "TLS handshake error", "certificate signed by unknown authority")
}

func TestParseTLSConfig(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--tls-cert-file", "a.crt"}, "go together"},
		{[]string{"--tls-key-file", "a.key"}, "go together"},
		{[]string{"--tls-client-ca-file", "ca.crt"}, "needs --tls-cert-file"},
	} {
		if _, err := parseConfig(tc.args, func(string) string { return "" }, io.Discard); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseConfig(%q) = %v, want %q", tc.args, err, tc.want)
		}
	}
	env := map[string]string{"PRED_TLS_CERT_FILE": "c", "PRED_TLS_KEY_FILE": "k", "PRED_TLS_CLIENT_CA_FILE": "ca"}
	c, err := parseConfig(nil, func(k string) string { return env[k] }, io.Discard)
	if err != nil || c.tls != (tlsFiles{certFile: "c", keyFile: "k", clientCAFile: "ca"}) {
		t.Fatalf("from env: %+v, %v", c.tls, err)
	}
}
