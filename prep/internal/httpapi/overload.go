package httpapi

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/prepred/prepred/api/inflight"
	"github.com/prepred/prepred/prep/internal/imageprep"
	"github.com/prepred/prepred/prep/internal/metrics"
)

// DefaultMaxDecodeBytes is Config.MaxDecodeBytes when left zero: room for
// one image at the default pixel limit (50 Mpx at decodedBytesPerPixel) and
// some, so that the largest accepted image can always be decoded.
const DefaultMaxDecodeBytes = 256 << 20

// decodedBytesPerPixel is what a decoded pixel holds at most while an image
// is decoded and resized: four 8-bit samples (RGBA, CMYK).
const decodedBytesPerPixel = 4

// float32Bytes is the size of one tensor element.
const float32Bytes = 4

// base64Ratio is how much a base64 JSON body shrinks when decoded: the
// decoded image is held beside the body, at most 3/4 of its size.
const (
	base64Num = 3
	base64Den = 4
)

// setupOverload sets the memory budgets from cfg and reports them, and the
// listener's connections, in the metrics.
func (s *server) setupOverload(cfg Config) {
	s.budget = cfg.Budget
	n := cfg.MaxDecodeBytes
	if n <= 0 {
		n = DefaultMaxDecodeBytes
	}
	s.decode = inflight.NewBudget(n)
	o := metrics.Overload{Budgets: map[string]*inflight.Budget{"decode": s.decode}, Listeners: map[string]*inflight.Listener{}, Reclaimer: cfg.Reclaimer}
	if cfg.Budget != nil {
		o.Budgets["requests"] = cfg.Budget
	}
	if cfg.Listener != nil {
		o.Listeners["http"] = cfg.Listener
	}
	s.metrics.RegisterOverload(o)
}

// withBudget wraps the API so that every request reserves its body in the
// budget before it is read; without a budget it returns h.
func (s *server) withBudget(h http.Handler) http.Handler {
	if s.budget == nil {
		return h
	}
	return inflight.Handler(s.budget, h, refuse)
}

// refuse answers a request refused by the budget in prep's error format.
func refuse(w http.ResponseWriter, _ *http.Request, status int, msg string) {
	code := codeOverloaded
	if status == http.StatusRequestEntityTooLarge {
		code = codeBodyTooLarge
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", retryAfterSeconds)
	}
	w.WriteHeader(status)
	// The message holds only numbers; encoding cannot fail.
	body, _ := json.Marshal(errorBody{Error: errorDetail{Code: code, Message: msg}})
	_, _ = w.Write(body)
}

// overloaded is the answer to a request whose working memory does not fit.
func (s *server) overloaded(what string) *apiError {
	return newError(http.StatusServiceUnavailable, codeOverloaded, "the server is overloaded: no memory left for %s (%d of %d bytes in flight are taken); retry later", what, s.budget.InUse(), s.budget.Limit())
}

// reserveDecodedPayload grows the request's reservation, before its JSON
// body is read, by the base64 image it will decode beside the body.
func (s *server) reserveDecodedPayload(c *gin.Context) *apiError {
	rv := inflight.FromContext(c.Request.Context())
	if rv == nil || c.Request.ContentLength <= 0 {
		return nil
	}
	if !rv.TryGrow(c.Request.ContentLength*base64Num/base64Den, inflight.ReasonWork) {
		return s.overloaded("the decoded payload")
	}
	return nil
}

// reserveImage counts one image's preprocessing: its tensor of tensorLen
// floats joins the request's reservation (refused at once when it does not
// fit), and its decoded pixels wait for room in the decode budget, which
// bounds the memory of decoding alongside MaxConcurrentPreprocess. release
// gives the decode bytes back; size is the image's from its header, after
// EXIF orientation (zero when p cannot read one or refuses it: decoding
// then answers why).
func (s *server) reserveImage(ctx context.Context, p *imageprep.Preprocessor, img []byte, tensorLen int) (release func(), size imageSize, aerr *apiError) {
	if rv := inflight.FromContext(ctx); rv != nil && !rv.TryGrow(int64(tensorLen)*float32Bytes, inflight.ReasonWork) {
		return nil, size, s.overloaded("the image's tensor")
	}
	var px int64
	if w, h, err := p.ImageSize(img); err == nil {
		size = imageSize{w, h}
		px = int64(w) * int64(h)
	} else {
		px = imageprep.Pixels(img) // e.g. a header over the pixel limit
	}
	if px <= 0 {
		// Not a header imageprep reads: the decoder rejects most such
		// images, and those it takes are bounded by the pixel limit.
		px = int64(tensorLen)
	}
	n, err := s.decode.Reserve(ctx, px*decodedBytesPerPixel)
	if err != nil {
		return nil, size, newError(http.StatusServiceUnavailable, codeOverloaded, "no memory to decode the image within the request timeout: %v", err)
	}
	return func() { s.decode.Release(n) }, size, nil
}
