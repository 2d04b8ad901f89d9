package inflight

import (
	"errors"
	"fmt"
	"io"
	"net/http"
)

// StreamStep is what a body of unknown length (chunked) reserves before it
// is read; as it is read its reservation doubles, and a body that outgrows
// what the budget has left is cut off with ErrOverloaded.
const StreamStep = 64 << 10

// ErrOverloaded is the error a body of unknown length returns from Read
// once it needs more of the budget than is left.
var ErrOverloaded = errors.New("the server is overloaded: the request body outgrew the memory left for requests in flight")

// RefuseFunc writes the answer to a request refused with status (503 for
// an overload, with Retry-After; 413 for a body larger than the whole
// budget) and a message for the client. It must not read the body.
type RefuseFunc func(w http.ResponseWriter, r *http.Request, status int, msg string)

// Handler reserves in b each request's declared Content-Length before next
// can read a byte of its body, and releases it when next has answered. A
// request that does not fit is refused at once with refuse, its body
// unread; net/http then closes the connection after the answer (with a
// FIN and a short wait, so that the client reads the answer) unless the
// rest of the body is small (256 KiB) and cheap to discard. A body of unknown length
// reserves StreamStep and grows as it is read. next finds the reservation
// with FromContext and may grow it for memory it needs besides the body.
func Handler(b *Budget, next http.Handler, refuse RefuseFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		declared := r.ContentLength
		if r.Body == nil || r.Body == http.NoBody {
			declared = 0
		}
		if declared > b.Limit() {
			b.refused[ReasonBody].Add(1)
			refuse(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("the request body of %d bytes is larger than the memory this server gives all requests in flight (%d bytes)", declared, b.Limit()))
			return
		}
		n, reason := declared, ReasonBody
		if declared < 0 {
			n, reason = StreamStep, ReasonBodyStream
		}
		rv := b.reserve(n, reason)
		if rv == nil {
			refuse(w, r, http.StatusServiceUnavailable, overloadedMessage(b))
			return
		}
		defer rv.Release()
		r = r.WithContext(NewContext(r.Context(), rv))
		if declared >= 0 {
			next.ServeHTTP(w, r)
			return
		}
		body := &growingBody{ReadCloser: r.Body, rv: rv}
		r.Body = body
		next.ServeHTTP(&refusingWriter{ResponseWriter: w, r: r, body: body, b: b, refuse: refuse}, r)
	})
}

// overloadedMessage tells a refused client what is spent.
func overloadedMessage(b *Budget) string {
	return fmt.Sprintf("the server is overloaded: %d of the %d bytes it gives requests in flight are taken; retry later", b.InUse(), b.Limit())
}

// growingBody is a body of unknown length that reads no further than its
// reservation, growing it (doubling) as needed.
type growingBody struct {
	io.ReadCloser
	rv      *Reservation
	read    int64
	refused bool
}

func (g *growingBody) Read(p []byte) (int, error) {
	if g.refused {
		return 0, ErrOverloaded
	}
	left := g.rv.Held() - g.read
	if left <= 0 {
		step := max(g.rv.Held(), StreamStep)
		if !g.rv.TryGrow(step, ReasonBodyStream) && (step == StreamStep || !g.rv.TryGrow(StreamStep, ReasonBodyStream)) {
			g.refused = true
			return 0, ErrOverloaded
		}
		left = g.rv.Held() - g.read
	}
	if int64(len(p)) > left {
		p = p[:left]
	}
	n, err := g.ReadCloser.Read(p)
	g.read += int64(n)
	return n, err
}

// refusingWriter answers with the refusal, instead of whatever the handler
// makes of its read error, once the body has been cut off by the budget.
type refusingWriter struct {
	http.ResponseWriter
	r       *http.Request
	body    *growingBody
	b       *Budget
	refuse  RefuseFunc
	decided bool // the first WriteHeader or Write has happened
	swallow bool // the handler's answer is replaced by the refusal
}

func (rw *refusingWriter) decide() {
	if rw.decided {
		return
	}
	rw.decided = true
	if rw.body.refused {
		rw.swallow = true
		h := rw.ResponseWriter.Header()
		for k := range h {
			delete(h, k)
		}
		rw.refuse(rw.ResponseWriter, rw.r, http.StatusServiceUnavailable, overloadedMessage(rw.b))
	}
}

func (rw *refusingWriter) WriteHeader(code int) {
	rw.decide()
	if !rw.swallow {
		rw.ResponseWriter.WriteHeader(code)
	}
}

func (rw *refusingWriter) Write(p []byte) (int, error) {
	rw.decide()
	if rw.swallow {
		return len(p), nil
	}
	return rw.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection.
func (rw *refusingWriter) Unwrap() http.ResponseWriter { return rw.ResponseWriter }
