package tlsfiles

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"

	"google.golang.org/grpc/credentials"
)

// MinVersion is the lowest TLS version either side accepts.
const MinVersion = tls.VersionTLS12

// ServerConfig returns a server configuration that presents the Store's
// certificate and, unless clientAuth is tls.NoClientCert, verifies client
// certificates against its CA bundle; both as they are at each handshake.
// nextProtos are the ALPN protocols offered (gRPC adds "h2" itself).
func (s *Store) ServerConfig(clientAuth tls.ClientAuthType, nextProtos []string) *tls.Config {
	base := &tls.Config{MinVersion: MinVersion, ClientAuth: clientAuth, NextProtos: nextProtos}
	return &tls.Config{
		MinVersion: MinVersion,
		NextProtos: nextProtos,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			snap := s.current()
			if snap.cert == nil {
				return nil, errors.New("tls: no server certificate configured")
			}
			c := base.Clone()
			c.Certificates = []tls.Certificate{*snap.cert}
			if clientAuth != tls.NoClientCert {
				c.ClientCAs = snap.pool
			}
			return c, nil
		},
	}
}

// ClientConfig returns a client configuration that verifies the server's
// certificate against the Store's CA bundle (the system roots without
// one) and serverName (empty: the name dialled), and presents the Store's
// certificate when the server asks for one; both as they are at each
// handshake.
func (s *Store) ClientConfig(serverName string) *tls.Config {
	return &tls.Config{
		MinVersion: MinVersion,
		ServerName: serverName,
		// Go's own verification would use a CA pool fixed when the config
		// is made; VerifyConnection does the same checks with the pool of
		// the moment, so that a rotated CA bundle applies. The handshake
		// fails unless it passes.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return verifyServer(cs, s.current().pool)
		},
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if cert := s.current().cert; cert != nil {
				return cert, nil
			}
			return &tls.Certificate{}, nil // none: the server decides
		},
	}
}

// verifyServer verifies the server's chain against roots (nil: the system
// roots) and the name the client asked for, as crypto/tls does.
func verifyServer(cs tls.ConnectionState, roots *x509.CertPool) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("tls: the server sent no certificate")
	}
	if cs.ServerName == "" {
		return errors.New("tls: no server name to verify the server's certificate with: set the expected name")
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		DNSName:       cs.ServerName,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return &tls.CertificateVerificationError{UnverifiedCertificates: cs.PeerCertificates, Err: err}
	}
	return nil
}

// ServerCredentials are gRPC transport credentials of cfg that call
// onFailure with the peer's address and the cause of every failed
// handshake (a plaintext client, an unknown CA, a missing or expired
// client certificate), which gRPC itself does not log.
func ServerCredentials(cfg *tls.Config, onFailure func(remote net.Addr, err error)) credentials.TransportCredentials {
	return &loggingCreds{TransportCredentials: credentials.NewTLS(cfg), onFailure: onFailure}
}

type loggingCreds struct {
	credentials.TransportCredentials
	onFailure func(net.Addr, error)
}

// ServerHandshake implements credentials.TransportCredentials.
func (c *loggingCreds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	out, info, err := c.TransportCredentials.ServerHandshake(conn)
	if err != nil && c.onFailure != nil {
		c.onFailure(conn.RemoteAddr(), err)
	}
	return out, info, err
}

// ClientHandshake implements credentials.TransportCredentials.
func (c *loggingCreds) ClientHandshake(ctx context.Context, authority string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return c.TransportCredentials.ClientHandshake(ctx, authority, conn)
}

// Clone implements credentials.TransportCredentials.
func (c *loggingCreds) Clone() credentials.TransportCredentials {
	return &loggingCreds{TransportCredentials: c.TransportCredentials.Clone(), onFailure: c.onFailure}
}
