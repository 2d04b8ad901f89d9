package httpapi

import (
	"crypto/rand"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/prepred/prepred/api/otelsetup"
	"github.com/prepred/prepred/prep/internal/metrics"
)

// RequestIDHeader carries a request's ID in both directions.
const RequestIDHeader = "X-Request-ID"

// maxRequestIDLen bounds an ID accepted from a client; a longer or
// non-printable one is replaced by a fresh ID.
const maxRequestIDLen = 128

// requestIDKey is the gin context key holding the request's ID.
const requestIDKey = "prep.request_id"

// requestID takes the client's X-Request-ID, or makes one, and echoes it in
// the response.
func requestID() gin.HandlerFunc {
	return func(c *gin.Context) {
		id := c.GetHeader(RequestIDHeader)
		if !validRequestID(id) {
			id = rand.Text()
		}
		c.Set(requestIDKey, id)
		c.Header(RequestIDHeader, id)
		c.Next()
	}
}

// validRequestID accepts 1..maxRequestIDLen visible ASCII characters, which
// are also valid in gRPC metadata and log lines.
func validRequestID(id string) bool {
	if id == "" || len(id) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] > '~' {
			return false
		}
	}
	return true
}

func requestIDOf(c *gin.Context) string { return c.GetString(requestIDKey) }

// Gin context keys of what a prediction's handler records for the access
// log: the model and version that answered, the images of a batch.
const (
	modelKey   = "prep.model"
	versionKey = "prep.version"
	imagesKey  = "prep.images"
)

// instrument counts and times each request in m by its route pattern, and
// gives the handler a *timings for the Server-Timing header.
func instrument(m *metrics.Metrics) gin.HandlerFunc {
	return func(c *gin.Context) {
		t := &timings{start: time.Now()}
		c.Set(timingsKey, t)
		c.Next()
		route := routeOf(c)
		m.HTTPRequests.WithLabelValues(route, c.Request.Method, strconv.Itoa(c.Writer.Status())).Inc()
		m.HTTPDuration.WithLabelValues(route).Observe(time.Since(t.start).Seconds())
	}
}

// routeOf is the request's route pattern, "unmatched" for none: a label of
// bounded cardinality, unlike the path.
func routeOf(c *gin.Context) string {
	if r := c.FullPath(); r != "" {
		return r
	}
	return "unmatched"
}

// probeRoutes are the routes of liveness and readiness probes and of metric
// scrapes, whose successes are logged at debug level only.
var probeRoutes = map[string]bool{"/health": true, "/ready": true, "/metrics": true}

// accessLog logs one line per request once it is answered.
func accessLog(log *zap.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		route := routeOf(c)
		status := c.Writer.Status()
		fields := []zap.Field{
			zap.String("request_id", requestIDOf(c)),
			zap.String("method", c.Request.Method),
			zap.String("route", route),
			zap.String("path", c.Request.URL.Path),
			zap.Int("status", status),
			zap.Duration("duration", time.Since(start)),
			zap.Int64("bytes_in", c.Request.ContentLength),
			zap.Int("bytes_out", c.Writer.Size()),
			zap.String("remote", c.ClientIP()),
		}
		// The IDs of the request's span, when it is traced, so that the
		// line and the trace join.
		if tid, sid, ok := otelsetup.IDs(c.Request.Context()); ok {
			fields = append(fields, zap.String("trace_id", tid), zap.String("span_id", sid))
		}
		if model := c.GetString(modelKey); model != "" {
			fields = append(fields, zap.String("model", model), zap.Int64("version", c.GetInt64(versionKey)))
		}
		if n := c.GetInt(imagesKey); n > 0 {
			fields = append(fields, zap.Int("images", n))
		}
		if code := c.GetString(errorCodeKey); code != "" {
			fields = append(fields, zap.String("error_code", code))
		}
		switch {
		case status == http.StatusInternalServerError:
			log.Error("request", fields...) // a bug in prep
		case status > http.StatusInternalServerError:
			log.Warn("request", fields...) // pred unavailable, slow or refusing
		case status == http.StatusOK && probeRoutes[route]:
			log.Debug("request", fields...) // probes every few seconds
		default:
			log.Info("request", fields...)
		}
	}
}

// recovery turns a panic, which is a bug in prep, into a logged error and a
// JSON 500 answer.
func recovery(log *zap.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			r := recover()
			if r == nil {
				return
			}
			if r == http.ErrAbortHandler {
				panic(r)
			}
			log.Error("panic while serving a request", zap.String("request_id", requestIDOf(c)), zap.Any("panic", r), zap.StackSkip("stack", 2))
			if c.Writer.Written() {
				c.Abort()
				return
			}
			writeError(c, newError(http.StatusInternalServerError, codeInternal, "internal error (request id %s)", requestIDOf(c)))
		}()
		c.Next()
	}
}
