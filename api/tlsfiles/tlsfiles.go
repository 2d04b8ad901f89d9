// Package tlsfiles builds TLS configurations from PEM files that are re-read
// when they change, as cert-manager, Vault agents and Kubernetes Secret
// volumes replace them: a certificate and key, and a CA bundle (the roots
// a client trusts, or the client CAs a server verifies). New handshakes use
// the new files; connections already open keep theirs, so requests in
// flight are not dropped.
//
// Files are checked at handshakes, at most once per CheckInterval: a file
// whose size or modification time changed is read again. A change that
// cannot be used (unparseable PEM, a key that does not match the
// certificate, an empty CA bundle, a certificate that expired while the
// one in use is still valid) keeps the files in use and is reported once,
// until the files change again.
package tlsfiles

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"sync"
	"time"
)

// DefaultCheckInterval is how often, at most, a Store looks at its files:
// a rotated certificate is used within this long of being written.
const DefaultCheckInterval = time.Second

// MaxFileBytes bounds one PEM file: a CA bundle of a few hundred
// certificates fits; anything larger is not a certificate file.
const MaxFileBytes = 1 << 20

// Options name the files of a Store.
type Options struct {
	// CertFile and KeyFile are the certificate (chain) and private key this
	// side presents: both or neither.
	CertFile, KeyFile string
	// CAFile is a bundle of CA certificates: the roots a client verifies
	// the server with (empty: the system roots), or the CAs a server
	// verifies client certificates with (empty: no client certificates).
	CAFile string
	// CheckInterval bounds how often the files are looked at (0:
	// DefaultCheckInterval, negative: at every handshake).
	CheckInterval time.Duration
	// OnReload, if set, is called when changed files have been loaded.
	OnReload func(Info)
	// OnError, if set, is called once per change of the files that could
	// not be used (the files in use are kept), and for a certificate in use
	// that has expired.
	OnError func(error)
	// Now is the clock (nil: time.Now); tests set it.
	Now func() time.Time
}

// Info describes the files a Store uses.
type Info struct {
	// CertFile, KeyFile and CAFile are as configured.
	CertFile, KeyFile, CAFile string
	// Serial, Subject, DNSNames and NotAfter describe the leaf certificate
	// (zero without CertFile).
	Serial   *big.Int
	Subject  string
	DNSNames []string
	NotAfter time.Time
	// CAs is the number of certificates in the CA bundle.
	CAs int
}

// Store holds the current certificate and CA bundle of its files. Its
// methods are safe for concurrent use.
type Store struct {
	o Options

	// mu guards the fields below.
	mu sync.Mutex
	// cur is what handshakes use.
	cur *snapshot
	// checked is when the files were last looked at.
	checked time.Time
	// tried is the stamp of the files last read, loaded or not; racy says
	// they were read too soon after being modified to trust it alone.
	tried stamp
	racy  bool
	// badSum is the content last refused as expired, and lastErr the last
	// error reported, so that a bad change is reported once.
	badSum  [sha256.Size]byte
	lastErr string
}

// snapshot is one loaded set of files.
type snapshot struct {
	cert *tls.Certificate // nil without CertFile
	pool *x509.CertPool   // nil without CAFile
	info Info
	sum  [sha256.Size]byte
}

// fileStamp identifies a version of a file by what stat says.
type fileStamp struct {
	size  int64
	mtime time.Time
}

// stamp holds the fileStamps of the cert, key and CA file.
type stamp [3]fileStamp

// racyWindow: files read less than this after their modification time may
// have changed again within the file system's timestamp granularity,
// keeping size and time; their content is compared at the next check. It
// is well above the granularity of common file systems.
const racyWindow = 2 * time.Second

// recent reports whether a file of st was modified within racyWindow
// before now.
func (st stamp) recent(now time.Time) bool {
	for _, f := range st {
		if !f.mtime.IsZero() && now.Sub(f.mtime) < racyWindow {
			return true
		}
	}
	return false
}

// New loads the files. It fails when they cannot be read or used; an
// expired certificate is loaded, and reported through OnError, so that
// the peer's refusal names the cause.
func New(o Options) (*Store, error) {
	if (o.CertFile == "") != (o.KeyFile == "") {
		return nil, fmt.Errorf("tls: a certificate file needs a key file and a key file a certificate file (certificate %q, key %q)", o.CertFile, o.KeyFile)
	}
	if o.CertFile == "" && o.CAFile == "" {
		return nil, errors.New("tls: no certificate and no CA file")
	}
	if o.CheckInterval == 0 {
		o.CheckInterval = DefaultCheckInterval
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Store{o: o}
	st, err := s.stat()
	if err != nil {
		return nil, err
	}
	snap, err := s.read()
	if err != nil {
		return nil, err
	}
	s.cur, s.tried, s.checked = snap, st, o.Now()
	s.racy = st.recent(s.checked)
	if err := s.expired(snap); err != nil {
		s.report(fmt.Errorf("%w; it is in use until its files are replaced", err))
	}
	return s, nil
}

// Info describes the files in use.
func (s *Store) Info() Info { return s.current().info }

// Certificate returns the certificate in use (nil without CertFile),
// after looking at the files if CheckInterval has passed.
func (s *Store) Certificate() *tls.Certificate { return s.current().cert }

// Pool returns the CA bundle in use (nil without CAFile), after looking at
// the files if CheckInterval has passed.
func (s *Store) Pool() *x509.CertPool { return s.current().pool }

// current returns the snapshot to use, re-reading changed files first.
func (s *Store) current() *snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.o.Now()
	if s.o.CheckInterval > 0 && now.Sub(s.checked) < s.o.CheckInterval {
		return s.cur
	}
	s.checked = now
	st, err := s.stat()
	if err != nil {
		s.reportOnce(fmt.Errorf("%w; keeping the files loaded before", err))
		return s.cur
	}
	// A file written twice within the file system's timestamp granularity
	// can keep its size and time: while a file is that recent, its content
	// is compared too.
	if st == s.tried && !s.racy {
		return s.cur
	}
	s.tried, s.racy = st, st.recent(now)
	snap, err := s.read()
	switch {
	case err != nil:
		s.reportOnce(fmt.Errorf("%w; keeping the files loaded before (certificate serial %s)", err, serialText(s.cur.info.Serial)))
		return s.cur
	case snap.sum == s.cur.sum:
		s.lastErr = "" // unchanged, or changed back
		return s.cur
	case snap.sum == s.badSum:
		return s.cur // reported already
	}
	if s.expired(s.cur) == nil {
		if err := s.expired(snap); err != nil {
			s.badSum = snap.sum
			s.reportOnce(fmt.Errorf("%w; keeping the files loaded before (certificate serial %s)", err, serialText(s.cur.info.Serial)))
			return s.cur
		}
	}
	s.cur, s.lastErr = snap, ""
	if s.o.OnReload != nil {
		s.o.OnReload(snap.info)
	}
	return s.cur
}

// reportOnce reports err unless the last report said the same.
func (s *Store) reportOnce(err error) {
	if msg := err.Error(); msg != s.lastErr {
		s.lastErr = msg
		s.report(err)
	}
}

// expired says why snap's certificate is no longer valid; nil if it is.
func (s *Store) expired(snap *snapshot) error {
	if snap.cert == nil {
		return nil
	}
	if now := s.o.Now(); now.After(snap.info.NotAfter) {
		return fmt.Errorf("tls: certificate %s (serial %s) expired at %s", s.o.CertFile, serialText(snap.info.Serial), snap.info.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

func (s *Store) report(err error) {
	if s.o.OnError != nil {
		s.o.OnError(err)
	}
}

// stat returns the stamp of the files.
func (s *Store) stat() (stamp, error) {
	var st stamp
	for i, name := range []string{s.o.CertFile, s.o.KeyFile, s.o.CAFile} {
		if name == "" {
			continue
		}
		fi, err := os.Stat(name)
		if err != nil {
			return st, fmt.Errorf("tls: %w", err)
		}
		st[i] = fileStamp{size: fi.Size(), mtime: fi.ModTime()}
	}
	return st, nil
}

// read reads and checks the files.
func (s *Store) read() (*snapshot, error) {
	snap := &snapshot{info: Info{CertFile: s.o.CertFile, KeyFile: s.o.KeyFile, CAFile: s.o.CAFile}}
	h := sha256.New()
	if s.o.CertFile != "" {
		certPEM, err := readFile(s.o.CertFile)
		if err != nil {
			return nil, err
		}
		keyPEM, err := readFile(s.o.KeyFile)
		if err != nil {
			return nil, err
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("tls: certificate %s with key %s: %w", s.o.CertFile, s.o.KeyFile, err)
		}
		leaf := cert.Leaf // parsed by X509KeyPair
		snap.cert = &cert
		snap.info.Serial, snap.info.Subject, snap.info.DNSNames, snap.info.NotAfter = leaf.SerialNumber, leaf.Subject.String(), leaf.DNSNames, leaf.NotAfter
		h.Write(certPEM)
		h.Write(keyPEM)
	}
	if s.o.CAFile != "" {
		caPEM, err := readFile(s.o.CAFile)
		if err != nil {
			return nil, err
		}
		pool, n, err := parseBundle(caPEM)
		if err != nil {
			return nil, fmt.Errorf("tls: CA file %s: %w", s.o.CAFile, err)
		}
		snap.pool, snap.info.CAs = pool, n
		h.Write(caPEM)
	}
	h.Sum(snap.sum[:0])
	return snap, nil
}

// readFile reads a PEM file of at most MaxFileBytes.
func readFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("tls: read %s: %w", name, err)
	}
	if len(b) > MaxFileBytes {
		return nil, fmt.Errorf("tls: %s is larger than %d bytes: not a PEM certificate file", name, MaxFileBytes)
	}
	return b, nil
}

// parseBundle parses the CERTIFICATE blocks of a PEM bundle; one that
// holds none, or a block that does not parse, is an error.
func parseBundle(b []byte) (*x509.CertPool, int, error) {
	pool := x509.NewCertPool()
	n := 0
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, 0, fmt.Errorf("certificate %d: %w", n+1, err)
		}
		pool.AddCert(cert)
		n++
	}
	if n == 0 {
		return nil, 0, errors.New("no PEM CERTIFICATE block")
	}
	return pool, n, nil
}

// serialText formats a serial number as hex, as openssl shows it.
func serialText(n *big.Int) string {
	if n == nil {
		return "none"
	}
	return fmt.Sprintf("%X", n)
}
