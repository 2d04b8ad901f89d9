package deploy_test

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
)

// TestComposeTLSOverride runs scripts/gen-certs.sh and loads the compose
// files with docker-compose.tls.yml: every certificate file the services
// are told to use exists in the mounted directory, and the certificates
// work together: pred accepts prep's client certificate, and prep verifies
// pred's certificate under the name it is told to expect.
func TestComposeTLSOverride(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("scripts/gen-certs.sh needs openssl")
	}
	dir := t.TempDir()
	cmd := exec.Command("bash", filepath.Join(repoRoot(t), "scripts", "gen-certs.sh"), dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gen-certs.sh: %v\n%s", err, out)
	}
	p := mustLoadCompose(t, map[string]string{"PREPRED_CERTS": dir}, "docker-compose.yml", "docker-compose.tls.yml")
	files := map[string]string{} // variable -> file on the host
	for _, name := range []string{"pred", "prep"} {
		s := service(t, p, name)
		var mount string
		for _, v := range s.Volumes {
			if v.Target == "/certs" {
				if !v.ReadOnly || v.Source != dir {
					t.Errorf("%s mounts %s at /certs (read-only %v), want %s read-only", name, v.Source, v.ReadOnly, dir)
				}
				mount = v.Source
			}
		}
		for k, v := range s.Environment {
			if !strings.Contains(k, "_TLS_") || strings.HasSuffix(k, "SERVER_NAME") {
				continue
			}
			rel, ok := strings.CutPrefix(deref(v), "/certs/")
			if !ok {
				t.Errorf("%s %s=%s is not under /certs", name, k, deref(v))
				continue
			}
			host := filepath.Join(mount, path.Clean(rel))
			if _, err := os.Stat(host); err != nil {
				t.Errorf("%s %s: %v", name, k, err)
			}
			files[k] = host
		}
		// The health checks are the base file's: the binary follows the
		// variables.
		if s.HealthCheck == nil || len(s.HealthCheck.Test) == 0 {
			t.Errorf("%s lost its healthcheck", name)
		}
	}
	prep := service(t, p, "prep")
	serverName := deref(prep.Environment["PRED_TLS_SERVER_NAME"])
	if serverName != "pred" {
		t.Errorf("PRED_TLS_SERVER_NAME %q, want the service name pred", serverName)
	}
	if t.Failed() {
		return
	}

	load := func(cert, key string) tls.Certificate {
		c, err := tls.LoadX509KeyPair(files[cert], files[key])
		if err != nil {
			t.Fatalf("%s, %s: %v", cert, key, err)
		}
		return c
	}
	pool := func(name string) *x509.CertPool {
		b, err := os.ReadFile(files[name])
		if err != nil {
			t.Fatal(err)
		}
		p := x509.NewCertPool()
		if !p.AppendCertsFromPEM(b) {
			t.Fatalf("%s holds no certificate", name)
		}
		return p
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{load("PRED_TLS_CERT_FILE", "PRED_TLS_KEY_FILE")},
		ClientCAs:    pool("PRED_TLS_CLIENT_CA_FILE"),
		ClientAuth:   tls.RequireAndVerifyClientCert,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	for _, client := range []struct {
		name string
		cert tls.Certificate
	}{
		{"prep's client certificate", load("PRED_TLS_CLIENT_CERT_FILE", "PRED_TLS_CLIENT_KEY_FILE")},
		// The healthcheck in pred's container presents pred's own.
		{"pred's certificate as the probe's", load("PRED_TLS_CERT_FILE", "PRED_TLS_KEY_FILE")},
	} {
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool("PRED_TLS_CA_FILE"), ServerName: serverName, Certificates: []tls.Certificate{client.cert}})
		if err == nil {
			_, err = c.Write([]byte("x"))
			if err == nil {
				_, err = io.ReadFull(c, make([]byte, 1))
			}
			c.Close()
		}
		if err != nil {
			t.Errorf("mTLS with %s: %v", client.name, err)
		}
	}
	// prep's HTTPS certificate verifies for localhost, as curl --cacert uses it.
	leaf := load("PREP_TLS_CERT_FILE", "PREP_TLS_KEY_FILE").Leaf
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool("PRED_TLS_CA_FILE"), DNSName: "localhost"}); err != nil {
		t.Errorf("prep's certificate for localhost: %v", err)
	}
}
