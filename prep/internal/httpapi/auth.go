package httpapi

import (
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/prepred/prepred/prep/internal/apikey"
)

// codeUnauthorized is the error code of a request without a valid API key.
const codeUnauthorized = "unauthorized"

// Reasons of prep_auth_failures_total.
const (
	authMissing = "missing"
	authInvalid = "invalid"
)

// requireAPIKey answers requests without one of keys with 401, the error
// JSON and a WWW-Authenticate challenge, and counts them by reason. The
// key is never logged: the access log has no request headers, and this
// logs only the reason. nil keys require nothing.
func (s *server) requireAPIKey(keys *apikey.Keys) gin.HandlerFunc {
	if keys == nil {
		return func(c *gin.Context) { c.Next() }
	}
	failures := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "prep_auth_failures_total",
		Help: "Requests refused with 401 for a missing or invalid API key, by reason.",
	}, []string{"reason"})
	for _, r := range []string{authMissing, authInvalid} {
		failures.WithLabelValues(r)
	}
	s.metrics.Registry.MustRegister(failures)
	return func(c *gin.Context) {
		key, err := apikey.FromRequest(c.Request.Header)
		reason, msg := "", ""
		switch {
		case err != nil:
			reason, msg = authMissing, "this endpoint needs an API key: send Authorization: Bearer KEY or X-API-Key: KEY"
		case !keys.Valid(key):
			reason, msg = authInvalid, "the API key is not valid"
		default:
			c.Next()
			return
		}
		failures.WithLabelValues(reason).Inc()
		s.log.Debug("api key refused", zap.String("reason", reason), zap.String("path", c.Request.URL.Path), zap.String("request_id", requestIDOf(c)))
		c.Header("WWW-Authenticate", `Bearer realm="prep", charset="UTF-8"`)
		writeError(c, newError(http.StatusUnauthorized, codeUnauthorized, "%s", msg))
	}
}
