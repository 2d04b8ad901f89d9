package tlsfiles

import (
	"crypto/tls"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prepred/prepred/api/certgen"
)

// pki is a CA with files in a temporary directory.
type pki struct {
	t   *testing.T
	dir string
	ca  *certgen.CA
}

func newPKI(t *testing.T, name string) *pki {
	t.Helper()
	ca, err := certgen.NewCA(name)
	if err != nil {
		t.Fatal(err)
	}
	return &pki{t: t, dir: t.TempDir(), ca: ca}
}

// issue writes a certificate for localhost and 127.0.0.1 as <name>.crt and
// .key, over any previous one, and returns it.
func (p *pki) issue(name string, o certgen.Options) *certgen.Leaf {
	p.t.Helper()
	if o.DNSNames == nil {
		o.DNSNames = []string{"localhost"}
		o.IPs = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	leaf, err := p.ca.Issue(name, o)
	if err != nil {
		p.t.Fatal(err)
	}
	if _, _, err := leaf.Write(p.dir, name); err != nil {
		p.t.Fatal(err)
	}
	return leaf
}

func (p *pki) file(name string) string { return filepath.Join(p.dir, name) }

// writeCA writes the CA bundle of cas as <name>.
func (p *pki) writeCA(name string, cas ...*certgen.CA) string {
	p.t.Helper()
	var b []byte
	for _, ca := range cas {
		b = append(b, ca.CertPEM...)
	}
	if err := certgen.WriteFile(p.file(name), b, 0o644); err != nil {
		p.t.Fatal(err)
	}
	return p.file(name)
}

// recorder collects a Store's reports.
type recorder struct {
	mu      sync.Mutex
	reloads []Info
	errs    []error
}

func (r *recorder) options(o Options) Options {
	o.OnReload = func(i Info) { r.mu.Lock(); r.reloads = append(r.reloads, i); r.mu.Unlock() }
	o.OnError = func(err error) { r.mu.Lock(); r.errs = append(r.errs, err); r.mu.Unlock() }
	return o
}

func (r *recorder) counts() (reloads, errs int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.reloads), len(r.errs)
}

func (r *recorder) lastErr() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.errs) == 0 {
		return nil
	}
	return r.errs[len(r.errs)-1]
}

// serve runs a TLS echo server with cfg on loopback until the test ends.
// Each connection echoes one line per line until closed.
func serve(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

// dial connects with cfg and completes the handshake, returning the
// server's leaf serial.
func dial(t *testing.T, addr string, cfg *tls.Config) (*tls.Conn, *big.Int, error) {
	t.Helper()
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return nil, nil, err
	}
	// TLS 1.3 clients finish before the server has checked their
	// certificate: a round trip shows whether the server accepted it.
	if _, err := c.Write([]byte("x")); err != nil {
		c.Close()
		return nil, nil, err
	}
	buf := make([]byte, 1)
	if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, buf); err != nil {
		c.Close()
		return nil, nil, err
	}
	t.Cleanup(func() { c.Close() })
	return c, c.ConnectionState().PeerCertificates[0].SerialNumber, nil
}

func TestServerCertificateRotation(t *testing.T) {
	p := newPKI(t, "test CA")
	first := p.issue("server", certgen.Options{})
	var rec recorder
	srv, err := New(rec.options(Options{CertFile: p.file("server.crt"), KeyFile: p.file("server.key"), CheckInterval: -1}))
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, srv.ServerConfig(tls.NoClientCert, nil))
	client, err := New(Options{CAFile: p.writeCA("ca.pem", p.ca)})
	if err != nil {
		t.Fatal(err)
	}
	old, serial, err := dial(t, addr, client.ClientConfig("localhost"))
	if err != nil {
		t.Fatal(err)
	}
	if serial.Cmp(first.Cert.SerialNumber) != 0 {
		t.Fatalf("serial %X, want the first certificate's %X", serial, first.Cert.SerialNumber)
	}

	second := p.issue("server", certgen.Options{})
	_, serial, err = dial(t, addr, client.ClientConfig("localhost"))
	if err != nil {
		t.Fatal(err)
	}
	if serial.Cmp(second.Cert.SerialNumber) != 0 {
		t.Fatalf("after rotation serial %X, want the second certificate's %X", serial, second.Cert.SerialNumber)
	}
	// The connection made before the rotation still works.
	if _, err := old.Write([]byte("y")); err != nil {
		t.Fatalf("old connection after rotation: %v", err)
	}
	if _, err := io.ReadFull(old, make([]byte, 1)); err != nil {
		t.Fatalf("old connection after rotation: %v", err)
	}
	if reloads, errs := rec.counts(); reloads != 1 || errs != 0 {
		t.Fatalf("%d reloads and %d errors reported, want 1 and 0 (%v)", reloads, errs, rec.lastErr())
	}
	if got := srv.Info().Serial; got.Cmp(second.Cert.SerialNumber) != 0 {
		t.Fatalf("Info serial %X, want %X", got, second.Cert.SerialNumber)
	}
}

func TestBadReplacementKeepsTheOldFiles(t *testing.T) {
	p := newPKI(t, "test CA")
	first := p.issue("server", certgen.Options{})
	var rec recorder
	s, err := New(rec.options(Options{CertFile: p.file("server.crt"), KeyFile: p.file("server.key"), CAFile: p.writeCA("ca.pem", p.ca), CheckInterval: -1}))
	if err != nil {
		t.Fatal(err)
	}
	other := newPKI(t, "other CA")
	otherLeaf, err := other.ca.Issue("server", certgen.Options{DNSNames: []string{"localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		write func()
		want  string
	}{
		{"garbage certificate", func() { write(t, p.file("server.crt"), []byte("not PEM")) }, "failed to find any PEM data"},
		{"key of another certificate", func() { write(t, p.file("server.key"), otherLeaf.KeyPEM) }, "private key does not match public key"},
		{"empty CA bundle", func() { write(t, p.file("ca.pem"), nil) }, "no PEM CERTIFICATE block"},
		{"expired replacement", func() {
			p.issue("server", certgen.Options{NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})
		}, "expired at"},
		{"file removed", func() {
			if err := os.Remove(p.file("server.key")); err != nil {
				t.Fatal(err)
			}
		}, "no such file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, errsBefore := rec.counts()
			tc.write()
			for range 3 { // reported once, however many handshakes see it
				if got := s.Certificate(); got.Leaf.SerialNumber.Cmp(first.Cert.SerialNumber) != 0 {
					t.Fatalf("certificate %X in use, want the first %X", got.Leaf.SerialNumber, first.Cert.SerialNumber)
				}
				if s.Pool() == nil {
					t.Fatal("CA pool dropped")
				}
			}
			if _, errs := rec.counts(); errs != errsBefore+1 {
				t.Fatalf("%d errors reported, want %d", errs, errsBefore+1)
			}
			if err := rec.lastErr(); !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "keeping the files loaded before") {
				t.Fatalf("error %q, want it to name %q and say the old files are kept", err, tc.want)
			}
			// Repair for the next case.
			p.issue("server", certgen.Options{})
			p.writeCA("ca.pem", p.ca)
			first = &certgen.Leaf{Cert: s.Certificate().Leaf}
		})
	}
}

func write(t *testing.T, name string, b []byte) {
	t.Helper()
	if err := certgen.WriteFile(name, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestExpiredCertificateIsReplaced(t *testing.T) {
	p := newPKI(t, "test CA")
	p.issue("server", certgen.Options{NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	var rec recorder
	s, err := New(rec.options(Options{CertFile: p.file("server.crt"), KeyFile: p.file("server.key"), CheckInterval: -1}))
	if err != nil {
		t.Fatalf("an expired certificate must load (the peer's refusal names it): %v", err)
	}
	if err := rec.lastErr(); err == nil || !strings.Contains(err.Error(), "expired at") {
		t.Fatalf("expiry at start reported as %v", err)
	}
	addr := serve(t, s.ServerConfig(tls.NoClientCert, nil))
	client, err := New(Options{CAFile: p.writeCA("ca.pem", p.ca)})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := dial(t, addr, client.ClientConfig("localhost")); err == nil || !strings.Contains(err.Error(), "certificate has expired") {
		t.Fatalf("dial with the expired certificate: %v, want certificate has expired", err)
	}
	fresh := p.issue("server", certgen.Options{})
	_, serial, err := dial(t, addr, client.ClientConfig("localhost"))
	if err != nil {
		t.Fatalf("after replacing the expired certificate: %v", err)
	}
	if serial.Cmp(fresh.Cert.SerialNumber) != 0 {
		t.Fatalf("serial %X, want the fresh %X", serial, fresh.Cert.SerialNumber)
	}
}

func TestClientVerification(t *testing.T) {
	p := newPKI(t, "test CA")
	p.issue("server", certgen.Options{})
	srv, err := New(Options{CertFile: p.file("server.crt"), KeyFile: p.file("server.key")})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, srv.ServerConfig(tls.NoClientCert, nil))
	other := newPKI(t, "other CA")
	client, err := New(Options{CAFile: other.writeCA("ca.pem", other.ca), CheckInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := dial(t, addr, client.ClientConfig("localhost")); err == nil || !strings.Contains(err.Error(), "x509: certificate signed by unknown authority") {
		t.Fatalf("dial trusting another CA: %v, want unknown authority", err)
	}
	// The CA bundle is re-read: trusting both CAs now.
	other.writeCA("ca.pem", other.ca, p.ca)
	if _, _, err := dial(t, addr, client.ClientConfig("localhost")); err != nil {
		t.Fatalf("dial after the CA bundle gained the server's CA: %v", err)
	}
	_, _, err = dial(t, addr, client.ClientConfig("pred.example"))
	if err == nil || !strings.Contains(err.Error(), "certificate is valid for localhost, not pred.example") {
		t.Fatalf("dial expecting another name: %v, want the name mismatch", err)
	}
	var verr *tls.CertificateVerificationError
	if !errors.As(err, &verr) {
		t.Fatalf("name mismatch is %T, want *tls.CertificateVerificationError", err)
	}
}

func TestMutualTLSAndClientRotation(t *testing.T) {
	p := newPKI(t, "test CA")
	p.issue("server", certgen.Options{Server: true})
	first := p.issue("client", certgen.Options{Client: true})
	srv, err := New(Options{CertFile: p.file("server.crt"), KeyFile: p.file("server.key"), CAFile: p.writeCA("ca.pem", p.ca), CheckInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []*big.Int
	cfg := srv.ServerConfig(tls.RequireAndVerifyClientCert, nil)
	cfg.VerifyConnection = nil
	base := cfg.GetConfigForClient
	cfg.GetConfigForClient = func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		c, err := base(h)
		if err != nil {
			return nil, err
		}
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			mu.Lock()
			seen = append(seen, cs.PeerCertificates[0].SerialNumber)
			mu.Unlock()
			return nil
		}
		return c, nil
	}
	addr := serve(t, cfg)

	noCert, err := New(Options{CAFile: p.file("ca.pem")})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := dial(t, addr, noCert.ClientConfig("localhost")); err == nil || !strings.Contains(err.Error(), "certificate required") {
		t.Fatalf("dial without a client certificate: %v, want certificate required", err)
	}
	client, err := New(Options{CertFile: p.file("client.crt"), KeyFile: p.file("client.key"), CAFile: p.file("ca.pem"), CheckInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := dial(t, addr, client.ClientConfig("localhost")); err != nil {
		t.Fatal(err)
	}
	second := p.issue("client", certgen.Options{Client: true})
	if _, _, err := dial(t, addr, client.ClientConfig("localhost")); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 || seen[0].Cmp(first.Cert.SerialNumber) != 0 || seen[1].Cmp(second.Cert.SerialNumber) != 0 {
		t.Fatalf("server saw client serials %X, want %X then %X", seen, first.Cert.SerialNumber, second.Cert.SerialNumber)
	}

	expired := p.issue("client", certgen.Options{Client: true, NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	expiredStore, err := New(Options{CertFile: p.file("client.crt"), KeyFile: p.file("client.key"), CAFile: p.file("ca.pem")})
	if err != nil {
		t.Fatal(err)
	}
	if expiredStore.Info().Serial.Cmp(expired.Cert.SerialNumber) != 0 {
		t.Fatal("the expired client certificate was not loaded")
	}
	if _, _, err := dial(t, addr, expiredStore.ClientConfig("localhost")); err == nil || !strings.Contains(err.Error(), "expired certificate") {
		t.Fatalf("dial with an expired client certificate: %v, want expired certificate", err)
	}
}

func TestCheckInterval(t *testing.T) {
	p := newPKI(t, "test CA")
	first := p.issue("server", certgen.Options{})
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s, err := New(Options{CertFile: p.file("server.crt"), KeyFile: p.file("server.key"), CheckInterval: time.Minute, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	second := p.issue("server", certgen.Options{})
	if got := s.Certificate().Leaf.SerialNumber; got.Cmp(first.Cert.SerialNumber) != 0 {
		t.Fatalf("within the check interval serial %X, want the first %X", got, first.Cert.SerialNumber)
	}
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	if got := s.Certificate().Leaf.SerialNumber; got.Cmp(second.Cert.SerialNumber) != 0 {
		t.Fatalf("after the check interval serial %X, want the second %X", got, second.Cert.SerialNumber)
	}
}

func TestNewRefusesIncompleteOptions(t *testing.T) {
	p := newPKI(t, "test CA")
	p.issue("server", certgen.Options{})
	for _, o := range []Options{
		{},
		{CertFile: p.file("server.crt")},
		{KeyFile: p.file("server.key")},
		{CAFile: p.file("missing.pem")},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) succeeded", o)
		}
	}
}
