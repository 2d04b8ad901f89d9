package inflight

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func TestBudgetTryReserve(t *testing.T) {
	b := NewBudget(100)
	if !b.TryReserve(60, ReasonBody) || !b.TryReserve(40, ReasonBody) {
		t.Fatal("reservations within the limit were refused")
	}
	if b.TryReserve(1, ReasonBody) {
		t.Fatal("a reservation beyond the limit was granted")
	}
	if got := b.Refused(ReasonBody); got != 1 {
		t.Errorf("Refused(body) = %d, want 1", got)
	}
	b.Release(40)
	if got := b.InUse(); got != 60 {
		t.Errorf("InUse = %d, want 60", got)
	}
	if !b.TryReserve(40, ReasonBody) {
		t.Error("released bytes were not reusable")
	}
}

func TestBudgetReserveWaits(t *testing.T) {
	b := NewBudget(100)
	if !b.TryReserve(100, ReasonWork) {
		t.Fatal("full reservation refused")
	}
	got := make(chan int64)
	go func() {
		n, err := b.Reserve(context.Background(), 500) // cut to the limit
		if err != nil {
			t.Error(err)
		}
		got <- n
	}()
	select {
	case n := <-got:
		t.Fatalf("Reserve returned %d while the budget was spent", n)
	case <-time.After(20 * time.Millisecond):
	}
	b.Release(100)
	if n := <-got; n != 100 {
		t.Errorf("Reserve = %d, want the limit, 100", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.Reserve(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Errorf("Reserve on a spent budget with a cancelled context = %v, want context.Canceled", err)
	}
}

func TestReservationGrowAndRelease(t *testing.T) {
	b := NewBudget(100)
	rv := b.reserve(10, ReasonBody)
	if !rv.TryGrow(80, ReasonWork) || rv.TryGrow(11, ReasonWork) {
		t.Fatal("TryGrow did not respect the limit")
	}
	rv.Release()
	rv.Release()
	if b.InUse() != 0 {
		t.Errorf("InUse after Release = %d, want 0", b.InUse())
	}
	if rv.TryGrow(1, ReasonWork) {
		t.Error("a released reservation grew")
	}
}

// untouchable is a body that fails the test when read.
type untouchable struct{ t *testing.T }

func (u untouchable) Read([]byte) (int, error) {
	u.t.Error("the body of a refused request was read")
	return 0, io.EOF
}
func (untouchable) Close() error { return nil }

func refuseJSON(w http.ResponseWriter, _ *http.Request, code int, msg string) {
	w.Header().Set("Retry-After", "1")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, msg)
}

func TestHandlerRefusesBeforeReading(t *testing.T) {
	b := NewBudget(1000)
	if !b.TryReserve(900, ReasonBody) {
		t.Fatal("setup reservation refused")
	}
	called := false
	h := Handler(b, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { called = true }), refuseJSON)
	for _, tt := range []struct {
		declared int64
		want     int
	}{{200, http.StatusServiceUnavailable}, {2000, http.StatusRequestEntityTooLarge}} {
		r := httptest.NewRequest(http.MethodPost, "/", nil)
		r.Body, r.ContentLength = untouchable{t}, tt.declared
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tt.want {
			t.Errorf("declared %d: status %d, want %d", tt.declared, w.Code, tt.want)
		}
	}
	if called {
		t.Error("the handler ran for a refused request")
	}
	if got := b.Refused(ReasonBody); got != 2 {
		t.Errorf("Refused(body) = %d, want 2", got)
	}
}

func TestHandlerHoldsUntilAnswered(t *testing.T) {
	b := NewBudget(1000)
	var during int64
	h := Handler(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		during = b.InUse()
		if FromContext(r.Context()) == nil {
			t.Error("no reservation in the request context")
		}
		_, _ = io.Copy(io.Discard, r.Body)
	}), refuseJSON)
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(strings.Repeat("x", 300)))
	h.ServeHTTP(httptest.NewRecorder(), r)
	if during != 300 || b.InUse() != 0 {
		t.Errorf("in use during the request %d, after %d; want 300 and 0", during, b.InUse())
	}
}

func TestHandlerStreamingBodyCutOff(t *testing.T) {
	b := NewBudget(3 * StreamStep)
	var readErr error
	var read int64
	h := Handler(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		read, readErr = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusBadRequest) // what a handler makes of a read error
		_, _ = io.WriteString(w, "bad body")
	}), refuseJSON)
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(strings.Repeat("x", 10*StreamStep)))
	r.ContentLength = -1
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if !errors.Is(readErr, ErrOverloaded) || read > 3*StreamStep {
		t.Errorf("read %d bytes, error %v; want at most %d and ErrOverloaded", read, readErr, 3*StreamStep)
	}
	if w.Code != http.StatusServiceUnavailable || strings.Contains(w.Body.String(), "bad body") {
		t.Errorf("answer %d %q, want the 503 refusal only", w.Code, w.Body.String())
	}
	if b.InUse() != 0 || b.Refused(ReasonBodyStream) == 0 {
		t.Errorf("in use %d, stream refusals %d; want 0 and some", b.InUse(), b.Refused(ReasonBodyStream))
	}

	// A chunked body that fits is read whole.
	r = httptest.NewRequest(http.MethodPost, "/", strings.NewReader(strings.Repeat("x", 2*StreamStep+1)))
	r.ContentLength = -1
	h.ServeHTTP(httptest.NewRecorder(), r)
	if readErr != nil || read != 2*StreamStep+1 {
		t.Errorf("fitting chunked body: read %d, %v", read, readErr)
	}
}

func TestListenerRefusesBeyondLimit(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	reported := make(chan int64, 10)
	l := Limit(inner, 2, ListenerOptions{Refusal: HTTPRefusal(2), OnRefused: func(n int64) { reported <- n }})
	defer l.Close()
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	dial()
	dial()
	first := <-accepted
	<-accepted
	third := dial()
	_ = third.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(third), nil)
	if err != nil {
		t.Fatalf("the refused connection: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" || !strings.Contains(string(body), `"code":"overloaded"`) {
		t.Errorf("refusal %d %v %s", resp.StatusCode, resp.Header, body)
	}
	if n := <-reported; n != 1 || l.Refused() != 1 || l.Open() != 2 {
		t.Errorf("reported %d, refused %d, open %d; want 1, 1, 2", n, l.Refused(), l.Open())
	}
	first.Close()
	first.Close() // a second Close gives back nothing more
	dial()
	select {
	case c := <-accepted:
		c.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("no connection accepted after one was closed")
	}
	if l.Open() != 1 {
		t.Errorf("open = %d, want 1", l.Open())
	}
}

func TestMemoryFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if got := cgroupLimit(write("max", "max\n")); got != 0 {
		t.Errorf(`cgroupLimit("max") = %d, want 0`, got)
	}
	if got := cgroupLimit(write("limit", "536870912\n")); got != 512<<20 {
		t.Errorf("cgroupLimit = %d, want 512 MiB", got)
	}
	if got := cgroupLimit(write("v1", "9223372036854771712\n")); got != 0 {
		t.Errorf("cgroupLimit(v1 unlimited) = %d, want 0", got)
	}
	if got := memTotal(write("meminfo", "MemFree: 1 kB\nMemTotal:       24576000 kB\n")); got != 24576000<<10 {
		t.Errorf("memTotal = %d", got)
	}
	if d := DefaultLimit(); d < MinDefaultLimit || d > MaxDefaultLimit {
		t.Errorf("DefaultLimit = %d, outside [%d, %d]", d, MinDefaultLimit, MaxDefaultLimit)
	}
}

func TestGRPCGuard(t *testing.T) {
	b := NewBudget(TapMinFree + 100)
	g := NewGRPCGuard(b, 1<<20)
	if g.ReadSlots() != minReadSlots {
		t.Fatalf("ReadSlots = %d, want %d", g.ReadSlots(), minReadSlots)
	}
	info := &tap.Info{FullMethodName: "/p.S/M"}
	var ctxs []context.Context
	for range minReadSlots {
		ctx, err := g.Tap(context.Background(), info)
		if err != nil {
			t.Fatalf("tap refused with slots free: %v", err)
		}
		ctxs = append(ctxs, ctx)
	}
	if _, err := g.Tap(context.Background(), info); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("tap with every read slot taken = %v, want RESOURCE_EXHAUSTED", err)
	}
	// An RPC that ends before its interceptor gives its slot back, once.
	g.HandleRPC(ctxs[0], &stats.End{})
	g.HandleRPC(ctxs[0], &stats.End{})
	if len(g.slots) != minReadSlots-1 {
		t.Fatalf("slots taken after one End = %d, want %d", len(g.slots), minReadSlots-1)
	}

	ui := &grpc.UnaryServerInfo{FullMethod: "/p.S/M"}
	var during int64
	handler := func(ctx context.Context, req any) (any, error) { during = b.InUse(); return req, nil }
	small := wrapperspb.Bytes(make([]byte, 1000))
	if _, err := g.Unary(ctxs[1], small, ui, handler); err != nil || during < 1000 || b.InUse() != 0 {
		t.Errorf("small message: err %v, in use during %d, after %d", err, during, b.InUse())
	}
	if len(g.slots) != minReadSlots-2 {
		t.Errorf("the interceptor did not give the read slot back")
	}
	big := wrapperspb.Bytes(make([]byte, TapMinFree+200))
	if _, err := g.Unary(ctxs[2], big, ui, handler); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("message larger than the budget = %v, want RESOURCE_EXHAUSTED", err)
	}

	b.TryReserve(101, ReasonWork)
	if _, err := g.Tap(context.Background(), info); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("tap with less than TapMinFree left = %v, want RESOURCE_EXHAUSTED", err)
	}
	if _, err := g.Tap(context.Background(), &tap.Info{FullMethodName: "/grpc.health.v1.Health/Check"}); err != nil {
		t.Errorf("tap refused a health check: %v", err)
	}
	if b.Refused(ReasonGRPCMessage) != 1 || b.Refused(ReasonGRPCStream) != 2 {
		t.Errorf("refusals: message %d, stream %d; want 1 and 2", b.Refused(ReasonGRPCMessage), b.Refused(ReasonGRPCStream))
	}

	open := NewGRPCGuard(nil, 0)
	if _, err := open.Tap(context.Background(), info); err != nil {
		t.Errorf("a guard without budget refused: %v", err)
	}
	if _, err := open.Unary(context.Background(), big, ui, handler); err != nil {
		t.Errorf("a guard without budget refused: %v", err)
	}
}
