package inflight

import (
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// refuseWriteTimeout bounds writing a refusal to a connection beyond the
// limit; the answer is a few hundred bytes that fit the socket's buffer.
const refuseWriteTimeout = 100 * time.Millisecond

// refusalLogInterval is how often at most Listener calls OnRefused, so
// that a flood of connections does not become a flood of log lines.
const refusalLogInterval = time.Second

// ListenerOptions configure Limit.
type ListenerOptions struct {
	// Refusal, if set, is written to each connection refused before it is
	// closed (e.g. HTTPRefusal on a plaintext HTTP listener); else the
	// connection is closed at once.
	Refusal []byte
	// OnRefused, if set, is called at most once a second while
	// connections are refused, with the number refused since its last call
	// (for a log line).
	OnRefused func(refused int64)
}

// Listener accepts at most a fixed number of open connections; beyond it
// it accepts and closes each new one at once (after writing the refusal),
// so that clients learn at once instead of waiting in the kernel's
// backlog, as golang.org/x/net/netutil.LimitListener would make them.
type Listener struct {
	net.Listener
	max  int64
	opts ListenerOptions

	open    atomic.Int64
	refused atomic.Int64
	// unlogged counts refusals not yet reported to OnRefused; lastLog is
	// when it was last called (unix nanoseconds).
	unlogged atomic.Int64
	lastLog  atomic.Int64
}

// Limit returns l accepting at most max open connections (max <= 0: no
// limit, but connections are still counted).
func Limit(l net.Listener, max int, opts ListenerOptions) *Listener {
	return &Listener{Listener: l, max: int64(max), opts: opts}
}

// Open is the number of connections accepted and not yet closed.
func (l *Listener) Open() int64 { return l.open.Load() }

// Refused is the number of connections refused so far.
func (l *Listener) Refused() int64 { return l.refused.Load() }

// Max is the connection limit (0: none).
func (l *Listener) Max() int64 { return max(l.max, 0) }

// Accept returns the next connection within the limit, refusing those
// beyond it.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if n := l.open.Add(1); l.max > 0 && n > l.max {
			l.open.Add(-1)
			l.refuse(c)
			continue
		}
		return &limitedConn{Conn: c, l: l}, nil
	}
}

func (l *Listener) refuse(c net.Conn) {
	l.refused.Add(1)
	if len(l.opts.Refusal) > 0 {
		_ = c.SetWriteDeadline(time.Now().Add(refuseWriteTimeout))
		_, _ = c.Write(l.opts.Refusal)
	}
	_ = c.Close()
	if l.opts.OnRefused == nil {
		return
	}
	l.unlogged.Add(1)
	now := time.Now().UnixNano()
	last := l.lastLog.Load()
	if now-last >= int64(refusalLogInterval) && l.lastLog.CompareAndSwap(last, now) {
		l.opts.OnRefused(l.unlogged.Swap(0))
	}
}

// limitedConn gives its slot back when closed, once.
type limitedConn struct {
	net.Conn
	l    *Listener
	once sync.Once
}

// CloseWrite shuts down the writing side where the connection can (TCP):
// net/http does so before closing a connection whose request body it did
// not read, so that the client reads the answer instead of a reset.
func (c *limitedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *limitedConn) Close() error {
	c.once.Do(func() { c.l.open.Add(-1) })
	return c.Conn.Close()
}

// HTTPRefusal is an HTTP/1.1 503 answer with Retry-After and a JSON body
// {"error": {"code": "overloaded", "message": ...}}, for Listener's
// Refusal on a plaintext HTTP listener of at most max connections.
func HTTPRefusal(max int) []byte {
	body := `{"error":{"code":"overloaded","message":"the server has its maximum of ` + strconv.Itoa(max) + ` open connections; retry later"}}`
	return []byte("HTTP/1.1 503 Service Unavailable\r\n" +
		"Content-Type: application/json\r\n" +
		"Retry-After: 1\r\n" +
		"Connection: close\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
}

// Attach sets the listener l accepts from, for a Listener made with
// Limit(nil, ...) before its listener exists, and returns l.
func (l *Listener) Attach(inner net.Listener) *Listener {
	l.Listener = inner
	return l
}
