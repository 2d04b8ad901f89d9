package e2e

// Tests of TLS and mTLS between prep and pred, prep's HTTPS, certificate
// rotation under load and API keys, with real processes and certificates
// made at test time.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"math/big"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/credentials"

	"github.com/prepred/prepred/api/certgen"
	"github.com/prepred/prepred/pred/predtest"
	"github.com/prepred/prepred/prep/preptest"
)

// reloadDeadline bounds the wait for a rotated file to be used: the files
// are looked at once a second.
const reloadDeadline = 10 * time.Second

// pki is a CA and the certificates of a prep/pred pair, as files.
type pki struct {
	dir    string
	ca     *certgen.CA
	caFile string
}

func newPKI(t testing.TB, name string) *pki {
	t.Helper()
	ca, err := certgen.NewCA(name)
	if err != nil {
		t.Fatal(err)
	}
	p := &pki{dir: t.TempDir(), ca: ca}
	p.caFile = filepath.Join(p.dir, "ca.crt")
	if err := certgen.WriteFile(p.caFile, ca.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// issue writes <name>.crt and <name>.key (replacing earlier ones) and
// returns the certificate.
func (p *pki) issue(t testing.TB, name string, o certgen.Options) *x509.Certificate {
	t.Helper()
	leaf, err := p.ca.Issue(name, o)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := leaf.Write(p.dir, name); err != nil {
		t.Fatal(err)
	}
	return leaf.Cert
}

func (p *pki) cert(name string) string { return filepath.Join(p.dir, name+".crt") }
func (p *pki) key(name string) string  { return filepath.Join(p.dir, name+".key") }

// serverOptions are those of a server certificate for loopback.
func serverOptions() certgen.Options {
	return certgen.Options{Server: true, DNSNames: []string{"localhost", "pred.test"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}
}

// clientConfig trusts p's CA and presents <name>.crt unless name is empty.
func (p *pki) clientConfig(t testing.TB, name string) *tls.Config {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(p.ca.CertPEM)
	cfg := &tls.Config{RootCAs: pool}
	if name != "" {
		cert, err := tls.LoadX509KeyPair(p.cert(name), p.key(name))
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg
}

// startMTLSPred starts pred with mTLS on both ports, and files written in p.
func startMTLSPred(t *testing.T, p *pki, extra ...string) *predtest.Server {
	t.Helper()
	p.issue(t, "pred", serverOptions())
	p.issue(t, "probe", certgen.Options{Client: true})
	args := append([]string{"--model-repository", release(t, []int64{1}, nil),
		"--tls-cert-file", p.cert("pred"), "--tls-key-file", p.key("pred"), "--tls-client-ca-file", p.caFile}, extra...)
	return predtest.StartTLS(t, credentials.NewTLS(p.clientConfig(t, "probe")), nil, args...)
}

// prepTLSArgs are prep's arguments to dial pred with mTLS.
func prepTLSArgs(p *pki, client string) []string {
	return []string{"--pred-tls-ca-file", p.caFile, "--pred-tls-client-cert-file", p.cert(client), "--pred-tls-client-key-file", p.key(client)}
}

// tlsAnswer is an exchange with prep over HTTPS.
type tlsAnswer struct {
	answer
	serial *big.Int // of prep's certificate
}

// doTLS sends a request over HTTPS with client and reads the whole answer.
func doTLS(ctx context.Context, client *http.Client, method, url string, body []byte, header ...string) tlsAnswer {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	a := tlsAnswer{answer: answer{start: time.Now()}}
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		a.err = err
		return a
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		a.err = err
		return a
	}
	defer resp.Body.Close()
	a.status = resp.StatusCode
	a.body, a.err = io.ReadAll(resp.Body)
	a.end = time.Now()
	if resp.TLS != nil && len(resp.TLS.PeerCertificates) > 0 {
		a.serial = resp.TLS.PeerCertificates[0].SerialNumber
	}
	return a
}

func httpsClient(cfg *tls.Config, keepAlive bool) *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: !keepAlive, MaxIdleConnsPerHost: 4}}
}

// waitPrepReady polls prep's /ready at url until it has status and its
// body contains every one of parts.
func waitPrepReady(t *testing.T, client *http.Client, url string, status int, parts ...string) tlsAnswer {
	t.Helper()
	end := time.Now().Add(contractTimeout)
	for {
		a := doTLS(context.Background(), client, http.MethodGet, url+"/ready", nil)
		ok := a.err == nil && a.status == status
		for _, p := range parts {
			ok = ok && strings.Contains(string(a.body), p)
		}
		if ok {
			return a
		}
		if time.Now().After(end) {
			t.Fatalf("GET %s/ready: no %d with %q within %v; last: %v", url, status, parts, contractTimeout, a.answer)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitPredLog waits for a pred log line containing every one of parts.
func waitPredLog(t *testing.T, pred *predtest.Server, parts ...string) {
	t.Helper()
	pred.WaitLog(t, contractTimeout, func(line string) bool {
		for _, p := range parts {
			if !strings.Contains(line, p) {
				return false
			}
		}
		return true
	})
}

// TestMutualTLS: prep serves HTTPS and talks to pred over mTLS, and the
// colors model answers right; each misconfiguration is refused with its
// cause in pred's log, and prep's /ready is 503 naming it, never served
// in plaintext.
func TestMutualTLS(t *testing.T) {
	p := newPKI(t, "prepred test CA")
	pred := startMTLSPred(t, p)
	p.issue(t, "prep-client", certgen.Options{Client: true})
	p.issue(t, "prep", serverOptions())

	prep := startPrep(t, pred.GRPCAddr, append(prepTLSArgs(p, "prep-client"), "--tls-cert-file", p.cert("prep"), "--tls-key-file", p.key("prep"))...)
	url := "https://" + prep.HTTPAddr
	client := httpsClient(p.clientConfig(t, ""), true)
	waitPrepReady(t, client, url, http.StatusOK, `"spec_fingerprint"`)
	a := doTLS(context.Background(), client, http.MethodPost, url+"/predict/topk?k=1", redBody(t))
	expectLabel(t, a.answer, "red", 1)
	if resp, err := http.Get("http://" + prep.HTTPAddr + "/health"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("HTTPS prep answered plaintext HTTP with 200")
		}
	}

	other := newPKI(t, "some other CA")
	other.issue(t, "stranger", certgen.Options{Client: true})
	p.issue(t, "expired", certgen.Options{Client: true, NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	cases := []struct {
		name string
		args []string
		// ready is what prep's /ready must name, predLog what pred's log.
		ready, predLog string
	}{
		{"plaintext prep", nil, "if pred serves TLS, set PRED_TLS_CA_FILE", "first record does not look like a TLS handshake"},
		{"unknown CA of pred's certificate", []string{"--pred-tls-ca-file", other.caFile}, "x509: certificate signed by unknown authority", ""},
		{"wrong server name", []string{"--pred-tls-ca-file", p.caFile, "--pred-tls-server-name", "wrong.example"}, "not wrong.example", ""},
		{"no client certificate", []string{"--pred-tls-ca-file", p.caFile}, "certificate required", "client didn't provide a certificate"},
		{"client certificate of an unknown CA", []string{"--pred-tls-ca-file", p.caFile, "--pred-tls-client-cert-file", other.cert("stranger"), "--pred-tls-client-key-file", other.key("stranger")}, "unknown certificate authority", "certificate signed by unknown authority"},
		{"expired client certificate", prepTLSArgs(p, "expired"), "expired certificate", "certificate has expired"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bad := startPrep(t, pred.GRPCAddr, tc.args...)
			got := waitPrepReady(t, http.DefaultClient, bad.URL, http.StatusServiceUnavailable, tc.ready)
			if code, _ := got.errorCode(); code != "not_ready" {
				t.Errorf("/ready = %v, want not_ready", got.answer)
			}
			t.Logf("/ready: %s", got.body)
			if tc.predLog != "" {
				waitPredLog(t, pred, `"tls handshake refused"`, tc.predLog)
			}
			if a := predictRed(t, bad, redBody(t)); a.status != http.StatusServiceUnavailable {
				t.Errorf("prediction through the refused prep: %v, want 503", a)
			}
			bad.Stop()
		})
	}
}

// TestCertificateRotationUnderLoad: while clients send requests to prep
// over HTTPS, each on a new connection, every certificate is replaced in
// place: prep's server certificate, its client certificate and pred's
// server certificate. New handshakes get the new certificates (the serial
// says which), and no request fails: connections made before keep
// theirs. pred closes connections after a second, so prep reconnects
// with the new files throughout.
func TestCertificateRotationUnderLoad(t *testing.T) {
	p := newPKI(t, "prepred test CA")
	pred := startMTLSPred(t, p, "--grpc-max-connection-age", "1s")
	p.issue(t, "prep-client", certgen.Options{Client: true})
	first := p.issue(t, "prep", serverOptions())
	prep := startPrep(t, pred.GRPCAddr, append(prepTLSArgs(p, "prep-client"), "--tls-cert-file", p.cert("prep"), "--tls-key-file", p.key("prep"))...)
	url := "https://" + prep.HTTPAddr
	cfg := p.clientConfig(t, "")
	waitPrepReady(t, httpsClient(cfg, true), url, http.StatusOK)

	body := redBody(t)
	client := httpsClient(cfg, false) // a handshake per request
	var sawNew atomic.Bool
	var second atomic.Pointer[big.Int]
	l := startLoad(t, 2, 100000, 0, func(ctx context.Context) answer {
		a := doTLS(ctx, client, http.MethodPost, url+"/predict/topk?k=1", body)
		if s := second.Load(); s != nil && a.serial != nil && a.serial.Cmp(s) == 0 {
			sawNew.Store(true)
		}
		return a.answer
	})
	l.waitFor(t, "the first answers", func(as []answer) bool { return len(as) >= 10 })

	second.Store(p.issue(t, "prep", serverOptions()).SerialNumber)
	p.issue(t, "prep-client", certgen.Options{Client: true})
	predSecond := p.issue(t, "pred", serverOptions())
	prep.WaitLog(t, reloadDeadline, func(m map[string]any) bool {
		return m["msg"] == "tls files reloaded" && m["serial"] == second.Load().Text(16)
	})
	mark := len(l.snapshot())
	l.waitFor(t, "answers with prep's new certificate", func(as []answer) bool { return sawNew.Load() && len(as) >= mark+20 })
	// pred's next handshakes present its new certificate.
	end := time.Now().Add(reloadDeadline)
	for {
		conn, err := tls.Dial("tcp", pred.GRPCAddr, &tls.Config{RootCAs: cfg.RootCAs, ServerName: "pred.test", NextProtos: []string{"h2"}, Certificates: p.clientConfig(t, "probe").Certificates})
		if err != nil {
			t.Fatal(err)
		}
		serial := conn.ConnectionState().PeerCertificates[0].SerialNumber
		conn.Close()
		if serial.Cmp(predSecond.SerialNumber) == 0 {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("pred still presents serial %X, want the new %X", serial, predSecond.SerialNumber)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// prep has reconnected to pred since (connections live a second).
	mark = len(l.snapshot())
	pred.WaitLog(t, reloadDeadline, func(line string) bool { return strings.Contains(line, `"tls files reloaded"`) })
	l.waitFor(t, "answers after pred's rotation", func(as []answer) bool { return len(as) >= mark+40 })
	answers := l.stop()
	for i, a := range answers {
		if a.status != http.StatusOK {
			t.Fatalf("answer %d of %d failed: %v", i, len(answers), a)
		}
		if label, _, err := a.label(); err != nil || label != "red" {
			t.Fatalf("answer %d: %q, %v", i, label, err)
		}
	}
	if first.SerialNumber.Cmp(second.Load()) == 0 {
		t.Fatal("the rotated certificate has the first one's serial")
	}
	t.Logf("%d answers, all 200 red, across the rotation", len(answers))
}

// TestAPIKeysFile: prep requires a key from its keys file; a missing or
// wrong key gets 401 with the error JSON, a listed one the answer, and a
// rewritten file applies without a restart. /health, /ready and /metrics
// stay open.
func TestAPIKeysFile(t *testing.T) {
	pred := startPred(t, release(t, []int64{1}, nil), "")
	keysFile := filepath.Join(t.TempDir(), "keys")
	if err := certgen.WriteFile(keysFile, []byte("# clients\nkey-one\nkey-two\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	prep := preptest.StartEnv(t, []string{"PREP_API_KEYS_FILE=" + keysFile, "PREP_API_KEYS=inline-key"}, "--pred-address", pred.GRPCAddr, "--model", "colors")
	prep.WaitLog(t, contractTimeout, isContractLoaded(1))
	for _, path := range []string{"/health", "/ready", "/metrics"} {
		if a := get(t, prep.URL+path); a.status != http.StatusOK {
			t.Errorf("GET %s without a key = %v, want 200", path, a)
		}
	}
	body := redBody(t)
	send := func(header ...string) answer {
		return doTLS(context.Background(), http.DefaultClient, http.MethodPost, prep.URL+"/predict/topk?k=1", body, header...).answer
	}
	for _, h := range [][]string{nil, {"Authorization", "Bearer key-three"}, {"X-API-Key", "key-on"}} {
		a := send(h...)
		if code, _ := a.errorCode(); a.status != http.StatusUnauthorized || code != "unauthorized" {
			t.Errorf("with %q: %v, want 401 unauthorized", h, a)
		}
	}
	for _, h := range [][]string{{"Authorization", "Bearer key-one"}, {"X-API-Key", "key-two"}, {"X-API-Key", "inline-key"}} {
		expectLabel(t, send(h...), "red", 1)
	}

	if err := certgen.WriteFile(keysFile, []byte("key-three\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	end := time.Now().Add(reloadDeadline)
	for send("X-API-Key", "key-one").status != http.StatusUnauthorized {
		if time.Now().After(end) {
			t.Fatalf("the revoked key still works %v after the file changed", reloadDeadline)
		}
		time.Sleep(50 * time.Millisecond)
	}
	expectLabel(t, send("Authorization", "Bearer key-three"), "red", 1)
	expectLabel(t, send("X-API-Key", "inline-key"), "red", 1)
	prep.WaitLog(t, reloadDeadline, func(m map[string]any) bool { return m["msg"] == "api keys reloaded" })

	metrics := get(t, prep.URL+"/metrics")
	if !bytes.Contains(metrics.body, []byte(`prep_auth_failures_total{reason="invalid"}`)) {
		t.Error("no prep_auth_failures_total in /metrics")
	}
	for _, line := range prep.Logs() {
		for _, key := range []string{"key-one", "key-two", "key-three", "inline-key"} {
			if strings.Contains(line, key) {
				t.Errorf("prep logged key %q: %s", key, line)
			}
		}
	}
}
