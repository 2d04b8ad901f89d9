// Package apikey holds the API keys prep's data endpoints accept: keys
// given inline (PREP_API_KEYS) and keys in a file (PREP_API_KEYS_FILE, one
// a line), the file re-read when it changes. A presented key is compared
// with every key in constant time, so neither the time taken nor an early
// exit shows which key, or how much of one, matched.
package apikey

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// Limits of a keys file.
const (
	// MaxFileBytes bounds the keys file.
	MaxFileBytes = 1 << 20
	// MaxKeys bounds the keys accepted at once: each request compares its
	// key with all of them.
	MaxKeys = 4096
	// DefaultCheckInterval is how often, at most, the file is looked at: a
	// key added or revoked applies within this long.
	DefaultCheckInterval = time.Second
	// racyWindow: a file read less than this after its modification time
	// may have changed again within the file system's timestamp
	// granularity, keeping its size and time; its content is compared at
	// the next check.
	racyWindow = 2 * time.Second
)

// Options say where keys come from.
type Options struct {
	// Keys are accepted as given (empty strings are ignored).
	Keys []string
	// File holds more keys, one a line; blank lines and lines starting
	// with # are ignored. It is re-read when it changes; while it cannot
	// be read the keys read before stay, and an empty file accepts none
	// of its own.
	File string
	// CheckInterval bounds how often File is looked at (0:
	// DefaultCheckInterval, negative: at every check).
	CheckInterval time.Duration
	// OnReload is called with the number of keys after File changed;
	// OnError once per change of File that could not be used.
	OnReload func(keys int)
	OnError  func(error)
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Keys is a set of accepted API keys. Its methods are safe for concurrent
// use.
type Keys struct {
	o      Options
	inline [][sha256.Size]byte

	// mu guards the fields below.
	mu       sync.Mutex
	fromFile [][sha256.Size]byte
	checked  time.Time
	size     int64
	mtime    time.Time
	sum      [sha256.Size]byte
	// racy: the file was read too soon after its modification time to
	// trust size and time alone.
	racy    bool
	lastErr string
}

// New returns the keys of o, or nil when o names none (no key required).
func New(o Options) (*Keys, error) {
	if o.CheckInterval == 0 {
		o.CheckInterval = DefaultCheckInterval
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	k := &Keys{o: o}
	for _, key := range o.Keys {
		if key = strings.TrimSpace(key); key != "" {
			k.inline = append(k.inline, sha256.Sum256([]byte(key)))
		}
	}
	if len(k.inline) > MaxKeys {
		return nil, fmt.Errorf("apikey: %d keys, at most %d", len(k.inline), MaxKeys)
	}
	if o.File == "" {
		if len(k.inline) == 0 {
			return nil, nil
		}
		return k, nil
	}
	fi, err := os.Stat(o.File)
	if err != nil {
		return nil, fmt.Errorf("apikey: %w", err)
	}
	keys, sum, err := readFile(o.File)
	if err != nil {
		return nil, err
	}
	k.fromFile, k.sum, k.size, k.mtime, k.checked = keys, sum, fi.Size(), fi.ModTime(), o.Now()
	k.racy = k.checked.Sub(k.mtime) < racyWindow
	return k, nil
}

// Len returns the number of keys accepted now.
func (k *Keys) Len() int {
	file := k.current()
	return len(k.inline) + len(file)
}

// Valid reports whether key is one of the keys. It hashes key and
// compares the hash with every key's in constant time, without an early
// exit.
func (k *Keys) Valid(key string) bool {
	file := k.current()
	sum := sha256.Sum256([]byte(key))
	ok := 0
	for i := range k.inline {
		ok |= subtle.ConstantTimeCompare(sum[:], k.inline[i][:])
	}
	for i := range file {
		ok |= subtle.ConstantTimeCompare(sum[:], file[i][:])
	}
	return ok == 1 && key != ""
}

// current returns the file's keys, re-reading the file first when it may
// have changed.
func (k *Keys) current() [][sha256.Size]byte {
	if k.o.File == "" {
		return nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.o.Now()
	if k.o.CheckInterval > 0 && now.Sub(k.checked) < k.o.CheckInterval {
		return k.fromFile
	}
	k.checked = now
	fi, err := os.Stat(k.o.File)
	if err != nil {
		k.report(fmt.Errorf("apikey: %w; keeping the %d keys read before", err, len(k.fromFile)))
		return k.fromFile
	}
	if fi.Size() == k.size && fi.ModTime().Equal(k.mtime) && !k.racy {
		return k.fromFile
	}
	k.size, k.mtime = fi.Size(), fi.ModTime()
	k.racy = now.Sub(k.mtime) < racyWindow
	keys, sum, err := readFile(k.o.File)
	if err != nil {
		k.report(fmt.Errorf("%w; keeping the %d keys read before", err, len(k.fromFile)))
		return k.fromFile
	}
	k.lastErr = ""
	if sum != k.sum {
		k.fromFile, k.sum = keys, sum
		if k.o.OnReload != nil {
			k.o.OnReload(len(k.inline) + len(keys))
		}
	}
	return k.fromFile
}

func (k *Keys) report(err error) {
	if msg := err.Error(); msg != k.lastErr {
		k.lastErr = msg
		if k.o.OnError != nil {
			k.o.OnError(err)
		}
	}
}

// readFile reads the keys of a file; the error never quotes a key.
func readFile(name string) ([][sha256.Size]byte, [sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	f, err := os.Open(name)
	if err != nil {
		return nil, sum, fmt.Errorf("apikey: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, sum, fmt.Errorf("apikey: read %s: %w", name, err)
	}
	if len(b) > MaxFileBytes {
		return nil, sum, fmt.Errorf("apikey: %s is larger than %d bytes", name, MaxFileBytes)
	}
	sum = sha256.Sum256(b)
	var keys [][sha256.Size]byte
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), MaxFileBytes)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if len(keys) == MaxKeys {
			return nil, sum, fmt.Errorf("apikey: %s holds more than %d keys", name, MaxKeys)
		}
		keys = append(keys, sha256.Sum256([]byte(line)))
	}
	if err := sc.Err(); err != nil {
		return nil, sum, fmt.Errorf("apikey: read %s: %w", name, err)
	}
	return keys, sum, nil
}

// Header names a key may come in.
const (
	AuthorizationHeader = "Authorization"
	APIKeyHeader        = "X-API-Key"
)

// ErrNoKey is FromRequest's error when the request carries no key.
var ErrNoKey = errors.New("no API key: send Authorization: Bearer KEY or X-API-Key: KEY")

// FromRequest returns the key a request presents as "Authorization:
// Bearer KEY" or "X-API-Key: KEY".
func FromRequest(h http.Header) (string, error) {
	if scheme, token, ok := strings.Cut(h.Get(AuthorizationHeader), " "); ok && strings.EqualFold(scheme, "Bearer") {
		if token = strings.TrimSpace(token); token != "" {
			return token, nil
		}
	}
	if key := strings.TrimSpace(h.Get(APIKeyHeader)); key != "" {
		return key, nil
	}
	return "", ErrNoKey
}
