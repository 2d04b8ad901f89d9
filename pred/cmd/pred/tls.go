package main

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"log"
	"net"
	"net/http"

	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/prepred/prepred/api/tlsfiles"
)

// tlsFiles are pred's TLS settings: with a certificate and key both ports
// serve TLS; with a client CA too, both require client certificates
// (mTLS).
type tlsFiles struct {
	certFile, keyFile, clientCAFile string
}

func (f tlsFiles) check() error {
	switch {
	case (f.certFile == "") != (f.keyFile == ""):
		return errors.New("--tls-cert-file and --tls-key-file go together (PRED_TLS_CERT_FILE, PRED_TLS_KEY_FILE)")
	case f.clientCAFile != "" && f.certFile == "":
		return errors.New("--tls-client-ca-file needs --tls-cert-file and --tls-key-file: client certificates are verified over TLS only")
	}
	return nil
}

// openHTTPPaths are the HTTP paths served without a client certificate
// under mTLS, for probes and scrapers that present none (the kubelet's
// HTTPS probes cannot): liveness, readiness and metrics, which run no
// model and reveal no data. Every other path (inference, model metadata,
// the repository API) needs a verified client certificate.
var openHTTPPaths = map[string]bool{
	"/v2/health/live":  true,
	"/v2/health/ready": true,
	"/metrics":         true,
}

// serverTLS is pred's TLS when it is on.
type serverTLS struct {
	store *tlsfiles.Store
	mtls  bool
	log   *zap.Logger
}

// newServerTLS loads the files; nil, nil when TLS is off.
func newServerTLS(f tlsFiles, log *zap.Logger) (*serverTLS, error) {
	if f.certFile == "" {
		return nil, nil
	}
	log = log.Named("tls")
	store, err := tlsfiles.New(tlsfiles.Options{
		CertFile: f.certFile, KeyFile: f.keyFile, CAFile: f.clientCAFile,
		OnReload: func(i tlsfiles.Info) { logTLSFiles(log, "tls files reloaded", i) },
		OnError:  func(err error) { log.Error("tls files", zap.Error(err)) },
	})
	if err != nil {
		return nil, err
	}
	t := &serverTLS{store: store, mtls: f.clientCAFile != "", log: log}
	logTLSFiles(log, "tls on", store.Info(), zap.Bool("client_certificates_required", t.mtls))
	return t, nil
}

func logTLSFiles(log *zap.Logger, msg string, i tlsfiles.Info, fields ...zap.Field) {
	log.Info(msg, append(fields, zap.String("cert_file", i.CertFile), zap.String("serial", i.Serial.Text(16)),
		zap.String("subject", i.Subject), zap.Strings("dns_names", i.DNSNames), zap.Time("not_after", i.NotAfter),
		zap.String("client_ca_file", i.CAFile), zap.Int("client_cas", i.CAs))...)
}

// grpcOptions are the gRPC server's transport credentials: TLS, with
// client certificates required and verified under mTLS (for every service,
// grpc.health.v1 included: the kubelet's gRPC probe cannot do TLS, so
// probes use HTTP or the healthcheck binary). Failed handshakes are logged
// with their cause.
func (t *serverTLS) grpcOptions() []grpc.ServerOption {
	if t == nil {
		return nil
	}
	auth := tls.NoClientCert
	if t.mtls {
		auth = tls.RequireAndVerifyClientCert
	}
	return []grpc.ServerOption{grpc.Creds(tlsfiles.ServerCredentials(t.store.ServerConfig(auth, nil), func(remote net.Addr, err error) {
		t.log.Warn("tls handshake refused", zap.String("listener", "grpc"), zap.String("remote_addr", remote.String()), zap.Error(err))
	}))}
}

// httpListener serves TLS on ln. Under mTLS a client certificate is
// verified when given and required by requireClientCert, so that the
// openHTTPPaths answer without one.
func (t *serverTLS) httpListener(ln net.Listener) net.Listener {
	if t == nil {
		return ln
	}
	auth := tls.NoClientCert
	if t.mtls {
		auth = tls.VerifyClientCertIfGiven
	}
	return tls.NewListener(ln, t.store.ServerConfig(auth, []string{"h2", "http/1.1"}))
}

// httpErrorLog logs what net/http reports, failed TLS handshakes among it
// ("http: TLS handshake error from ADDR: CAUSE").
func (t *serverTLS) httpErrorLog(base *zap.Logger) *log.Logger {
	if t == nil {
		return nil
	}
	l, _ := zap.NewStdLogAt(base.Named("http").With(zap.String("listener", "http")), zap.WarnLevel)
	return l
}

// requireClientCert refuses, under mTLS, requests without a verified
// client certificate, except to the openHTTPPaths, with 403 and the Open
// Inference Protocol's error body.
func (t *serverTLS) requireClientCert(next http.Handler) http.Handler {
	if t == nil || !t.mtls {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if openHTTPPaths[r.URL.Path] || (r.TLS != nil && len(r.TLS.VerifiedChains) > 0) {
			next.ServeHTTP(w, r)
			return
		}
		t.log.Warn("request refused: no client certificate", zap.String("listener", "http"), zap.String("remote_addr", r.RemoteAddr),
			zap.String("method", r.Method), zap.String("path", r.URL.Path))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		body, _ := json.Marshal(map[string]string{"error": "a client certificate is required: this pred verifies client certificates (mTLS) on every path but /v2/health/live, /v2/health/ready and /metrics"})
		_, _ = w.Write(body)
	})
}
