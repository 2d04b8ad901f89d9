package main

import (
	"crypto/tls"
	"errors"
	"net"
	"strings"

	"go.uber.org/zap"
	"google.golang.org/grpc/credentials"

	"github.com/prepred/prepred/api/tlsfiles"
	"github.com/prepred/prepred/prep/internal/apikey"
)

// tlsConfig holds prep's TLS settings: its own HTTPS listener, and how it
// dials pred.
type tlsConfig struct {
	// certFile and keyFile make prep serve HTTPS.
	certFile, keyFile string
	// predTLS dials pred over TLS; any of the pred* settings below implies
	// it. Without it prep dials pred in plaintext: it never falls back
	// from one to the other.
	predTLS bool
	// predCAFile is the CA bundle pred's certificate is verified with
	// (empty: the system roots).
	predCAFile string
	// predCertFile and predKeyFile are the client certificate prep
	// presents to pred (mTLS).
	predCertFile, predKeyFile string
	// predServerName is the name pred's certificate must hold (empty: the
	// host of --pred-address).
	predServerName string
}

func (c *tlsConfig) check() error {
	if c.predCAFile != "" || c.predCertFile != "" || c.predServerName != "" {
		c.predTLS = true
	}
	switch {
	case (c.certFile == "") != (c.keyFile == ""):
		return errors.New("-tls-cert-file and -tls-key-file go together (PREP_TLS_CERT_FILE, PREP_TLS_KEY_FILE)")
	case (c.predCertFile == "") != (c.predKeyFile == ""):
		return errors.New("-pred-tls-client-cert-file and -pred-tls-client-key-file go together (PRED_TLS_CLIENT_CERT_FILE, PRED_TLS_CLIENT_KEY_FILE)")
	}
	return nil
}

// tlsStore opens files with reloads and errors logged.
func tlsStore(log *zap.Logger, o tlsfiles.Options) (*tlsfiles.Store, error) {
	o.OnReload = func(i tlsfiles.Info) { logTLSInfo(log, "tls files reloaded", i) }
	o.OnError = func(err error) { log.Error("tls files", zap.Error(err)) }
	s, err := tlsfiles.New(o)
	if err != nil {
		return nil, err
	}
	logTLSInfo(log, "tls on", s.Info())
	return s, nil
}

func logTLSInfo(log *zap.Logger, msg string, i tlsfiles.Info) {
	fields := []zap.Field{zap.String("ca_file", i.CAFile), zap.Int("cas", i.CAs)}
	if i.Serial != nil {
		fields = append(fields, zap.String("cert_file", i.CertFile), zap.String("serial", i.Serial.Text(16)),
			zap.String("subject", i.Subject), zap.Strings("dns_names", i.DNSNames), zap.Time("not_after", i.NotAfter))
	}
	log.Info(msg, fields...)
}

// predCredentials are the transport credentials prep dials pred with:
// nil (plaintext) unless predTLS.
func (c tlsConfig) predCredentials(log *zap.Logger) (credentials.TransportCredentials, error) {
	if !c.predTLS {
		return nil, nil
	}
	log = log.Named("pred_tls").With(zap.String("server_name", c.predServerName))
	if c.predCAFile == "" && c.predCertFile == "" {
		// System roots only: nothing to re-read.
		log.Info("tls on", zap.String("ca_file", "(system roots)"))
		return credentials.NewTLS(&tls.Config{MinVersion: tlsfiles.MinVersion, ServerName: c.predServerName}), nil
	}
	s, err := tlsStore(log, tlsfiles.Options{CertFile: c.predCertFile, KeyFile: c.predKeyFile, CAFile: c.predCAFile})
	if err != nil {
		return nil, err
	}
	return s.ClientCredentials(c.predServerName), nil
}

// listener serves HTTPS on ln when a certificate is configured; failed
// handshakes reach the HTTP server's ErrorLog with their cause.
func (c tlsConfig) listener(log *zap.Logger, ln net.Listener) (net.Listener, error) {
	if c.certFile == "" {
		return ln, nil
	}
	s, err := tlsStore(log.Named("tls"), tlsfiles.Options{CertFile: c.certFile, KeyFile: c.keyFile})
	if err != nil {
		return nil, err
	}
	return tls.NewListener(ln, s.ServerConfig(tls.NoClientCert, []string{"h2", "http/1.1"})), nil
}

// apiKeys loads the configured API keys; nil when none are configured.
func apiKeys(cfg config, log *zap.Logger) (*apikey.Keys, error) {
	keys, err := apikey.New(apikey.Options{
		Keys:     strings.Split(cfg.apiKeys, ","),
		File:     cfg.apiKeysFile,
		OnReload: func(n int) { log.Info("api keys reloaded", zap.Int("keys", n)) },
		OnError:  func(err error) { log.Error("api keys", zap.Error(err)) },
	})
	if err != nil {
		return nil, err
	}
	if keys != nil {
		log.Info("api keys required", zap.Int("keys", keys.Len()), zap.String("file", cfg.apiKeysFile))
	}
	return keys, nil
}
