package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// testCerts writes a CA (ca.crt) and a certificate for 127.0.0.1 usable
// by servers and clients (server.crt, server.key) into a temporary
// directory.
func testCerts(t *testing.T) (dir string, pool *x509.CertPool, cert tls.Certificate) {
	t.Helper()
	dir = t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "pred"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"pred"}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	files := map[string][]byte{
		"ca.crt":     pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		"server.crt": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		"server.key": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pool = x509.NewCertPool()
	pool.AddCert(ca)
	cert, err = tls.X509KeyPair(files["server.crt"], files["server.key"])
	if err != nil {
		t.Fatal(err)
	}
	return dir, pool, cert
}

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestProbeGRPCWithMutualTLS(t *testing.T) {
	dir, pool, cert := testCerts(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert})))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	addr := portOnly(t, lis.Addr().String())

	predEnv := map[string]string{
		"PRED_TLS_CERT_FILE":      filepath.Join(dir, "server.crt"),
		"PRED_TLS_KEY_FILE":       filepath.Join(dir, "server.key"),
		"PRED_TLS_CLIENT_CA_FILE": filepath.Join(dir, "ca.crt"),
	}
	for _, tc := range []struct {
		name    string
		env     map[string]string
		args    []string
		healthy bool
		say     string
	}{
		{"pred's variables", predEnv, nil, true, "SERVING"},
		{"verified with -ca-file", predEnv, []string{"-ca-file", filepath.Join(dir, "ca.crt"), "-server-name", "pred"}, true, "SERVING"},
		{"wrong -server-name", predEnv, []string{"-ca-file", filepath.Join(dir, "ca.crt"), "-server-name", "other"}, false, "not other"},
		{"no variables: plaintext", nil, nil, false, "unhealthy"},
		{"TLS without a client certificate", map[string]string{"PRED_TLS_CERT_FILE": predEnv["PRED_TLS_CERT_FILE"]}, nil, false, "unhealthy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := runEnv(context.Background(), append([]string{"-grpc", addr}, tc.args...), envOf(tc.env), &out)
			if (err == nil) != tc.healthy || !strings.Contains(out.String(), tc.say) {
				t.Fatalf("healthcheck = %v, %q; want healthy %v saying %q", err, out.String(), tc.healthy, tc.say)
			}
		})
	}
}

func TestProbeHTTPS(t *testing.T) {
	dir, _, cert := testCerts(t)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"ready":"ok"}`))
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	addr := portOnly(t, srv.Listener.Addr().String())
	var out bytes.Buffer
	if err := runEnv(context.Background(), []string{"-http", addr}, envOf(map[string]string{"PREP_TLS_CERT_FILE": filepath.Join(dir, "server.crt")}), &out); err != nil || !strings.Contains(out.String(), "https://") {
		t.Fatalf("HTTPS probe with prep's variables = %v, %q", err, out.String())
	}
	out.Reset()
	if err := runEnv(context.Background(), []string{"-http", addr}, envOf(nil), &out); err == nil {
		t.Fatalf("plaintext probe of an HTTPS server passed: %q", out.String())
	}
}
