package tlsfiles

import (
	"context"
	"crypto/tls"
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
// certificate against the Store's CA bundle as it is now (the system roots
// without one) and serverName (empty: the name dialled), and presents the
// Store's certificate of the moment when the server asks for one. Make one
// per connection, or use ClientCredentials, for a rotated CA bundle to
// apply.
func (s *Store) ClientConfig(serverName string) *tls.Config {
	return &tls.Config{
		MinVersion: MinVersion,
		ServerName: serverName,
		RootCAs:    s.current().pool,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if cert := s.current().cert; cert != nil {
				return cert, nil
			}
			return &tls.Certificate{}, nil // none: the server decides
		},
	}
}

// ClientCredentials are gRPC transport credentials that make each
// connection with ClientConfig(serverName) of the moment: the server's
// certificate is checked against the CA bundle and name (serverName, or
// the target's host when empty), and the current client certificate is
// presented.
func (s *Store) ClientCredentials(serverName string) credentials.TransportCredentials {
	return &clientCreds{s: s, serverName: serverName}
}

type clientCreds struct {
	s          *Store
	serverName string
}

// ClientHandshake implements credentials.TransportCredentials.
// grpc's TLS credentials check the name of the authority they are given,
// so the expected name, when set, is given as the authority.
func (c *clientCreds) ClientHandshake(ctx context.Context, authority string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	if c.serverName != "" {
		authority = c.serverName
	}
	return credentials.NewTLS(c.s.ClientConfig(c.serverName)).ClientHandshake(ctx, authority, conn)
}

// ServerHandshake implements credentials.TransportCredentials; these are
// client credentials.
func (c *clientCreds) ServerHandshake(net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("tlsfiles: client credentials cannot serve")
}

// Info implements credentials.TransportCredentials.
func (c *clientCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "tls"}
}

// Clone implements credentials.TransportCredentials.
func (c *clientCreds) Clone() credentials.TransportCredentials {
	return &clientCreds{s: c.s, serverName: c.serverName}
}

// OverrideServerName implements credentials.TransportCredentials.
//
// Deprecated: as grpc's, use grpc.WithAuthority.
func (c *clientCreds) OverrideServerName(name string) error {
	c.serverName = name
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
