package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
)

// tlsFlags say how the probe speaks TLS. Unset, they follow the server's
// own variables in the container, so that the image's HEALTHCHECK and the
// compose file work unchanged with TLS on:
//   - -grpc, and -http without PREP_TLS_CERT_FILE: pred's. TLS when
//     PRED_TLS_CERT_FILE is set; when PRED_TLS_CLIENT_CA_FILE is set too
//     (mTLS) the probe presents PRED_TLS_CERT_FILE/PRED_TLS_KEY_FILE, the
//     server's own certificate, which must then allow client
//     authentication (extended key usage clientAuth).
//   - -http with PREP_TLS_CERT_FILE: prep's HTTPS.
//
// Without -ca-file the server's certificate is not verified: the probe
// talks over loopback to the process of its own container. With it, the
// chain and -server-name (default: the probed host) are verified.
type tlsFlags struct {
	on                        bool
	caFile, certFile, keyFile string
	serverName                string
	plainOK                   bool
}

func (f *tlsFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&f.on, "tls", false, "speak TLS (default: when the server's PRED_TLS_CERT_FILE or PREP_TLS_CERT_FILE is set)")
	fs.StringVar(&f.caFile, "ca-file", "", "verify the server's certificate with this CA bundle (default: not verified, for a probe of its own container over loopback)")
	fs.StringVar(&f.certFile, "cert-file", "", "client certificate to present (default under mTLS: PRED_TLS_CERT_FILE)")
	fs.StringVar(&f.keyFile, "key-file", "", "key of -cert-file (default under mTLS: PRED_TLS_KEY_FILE)")
	fs.StringVar(&f.serverName, "server-name", "", "name the server's certificate must hold with -ca-file (default: the probed host)")
	fs.BoolVar(&f.plainOK, "plaintext", false, "never speak TLS, whatever the server's variables say")
}

// config returns the probe's TLS configuration, nil for plaintext.
func (f tlsFlags) config(grpcProbe bool, getenv func(string) string) (*tls.Config, error) {
	if f.plainOK {
		return nil, nil
	}
	certFile, keyFile := f.certFile, f.keyFile
	switch {
	case !grpcProbe && getenv("PREP_TLS_CERT_FILE") != "":
		f.on = true
	case getenv("PRED_TLS_CERT_FILE") != "":
		f.on = true
		if certFile == "" && getenv("PRED_TLS_CLIENT_CA_FILE") != "" {
			certFile, keyFile = getenv("PRED_TLS_CERT_FILE"), getenv("PRED_TLS_KEY_FILE")
		}
	}
	if !f.on && f.caFile == "" && certFile == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: f.serverName}
	if f.caFile == "" {
		// Loopback to its own container: what is checked is the server's
		// health, not its identity.
		cfg.InsecureSkipVerify = true
	} else {
		b, err := os.ReadFile(f.caFile)
		if err != nil {
			return nil, fmt.Errorf("-ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("-ca-file %s holds no PEM certificate", f.caFile)
		}
		cfg.RootCAs = pool
	}
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("-cert-file and -key-file go together")
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
