package httpapi

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
)

// Headers that set a request's deadline, capped by Config.MaxRequestTimeout.
const (
	// TimeoutHeader takes a Go duration ("250ms", "2s", "1m30s") or a
	// decimal number of seconds ("2.5").
	TimeoutHeader = "X-Request-Timeout"
	// GRPCTimeoutHeader takes gRPC's timeout format: up to 8 digits and a
	// unit, H, M, S, m (milliseconds), u or n ("500m", "2S").
	GRPCTimeoutHeader = "Grpc-Timeout"
)

// maxModelNameLen bounds a model name taken from a request.
const maxModelNameLen = 128

// options are what a prediction request's path, query and headers select.
type options struct {
	// model and version select the contract; version 0 is the highest
	// version pred serves.
	model   string
	version int64
	// topK is the number of classes asked for with ?top_k= (or ?k=), 0 when
	// not asked.
	topK int
	// timeout is the request's deadline after its body has been read;
	// timeoutSet says that a header set it.
	timeout    time.Duration
	timeoutSet bool
}

// parseOptions reads the model selection (path parameter model, query
// model and version), top_k (and k where allowK) and the timeout headers;
// on failure it has answered the request.
func (s *server) parseOptions(c *gin.Context, allowK bool) (options, bool) {
	o, aerr := s.options(c, allowK)
	if aerr != nil {
		writeError(c, aerr)
		return o, false
	}
	return o, true
}

func (s *server) options(c *gin.Context, allowK bool) (options, *apiError) {
	o := options{timeout: s.timeout}
	model := c.Param("model")
	if model == "" {
		model = c.Query("model")
	}
	if len(model) > maxModelNameLen || strings.ContainsFunc(model, func(r rune) bool { return r <= ' ' || r > '~' }) {
		return o, newError(http.StatusBadRequest, codeBadRequest, "model name %.40q must be 1 to %d printable ASCII characters", model, maxModelNameLen)
	}
	q, versionSet := c.GetQuery("version")
	if versionSet {
		v, err := strconv.ParseInt(q, 10, 64)
		if err != nil || v < 0 {
			return o, newError(http.StatusBadRequest, codeBadRequest, "query parameter version=%q must be a model version (a positive integer) or 0 for the latest", q)
		}
		o.version = v
	}
	switch {
	case model == "" || model == s.client.Model():
		o.model = s.client.Model()
		if !versionSet {
			o.version = s.client.Version()
		}
	default:
		o.model = model
	}

	name, q, ok := "top_k", "", false
	if q, ok = c.GetQuery(name); !ok && allowK {
		name = "k"
		q, ok = c.GetQuery(name)
	}
	if ok {
		n, err := strconv.Atoi(q)
		if err != nil || n < 1 {
			return o, newError(http.StatusBadRequest, codeBadRequest, "query parameter %s=%q must be a positive integer", name, q)
		}
		o.topK = n
	}

	for _, h := range []string{TimeoutHeader, GRPCTimeoutHeader} {
		v := c.GetHeader(h)
		if v == "" {
			continue
		}
		parse := parseTimeout
		if h == GRPCTimeoutHeader {
			parse = parseGRPCTimeout
		}
		d, err := parse(v)
		if err != nil {
			return o, newError(http.StatusBadRequest, codeInvalidTimeout, "header %s: %v", h, err)
		}
		o.timeout, o.timeoutSet = min(d, s.maxTimeout), true
		break
	}
	return o, nil
}

// parseTimeout reads a positive Go duration or decimal number of seconds.
func parseTimeout(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		secs, ferr := strconv.ParseFloat(v, 64)
		if ferr != nil || math.IsNaN(secs) || secs > float64(1<<62)/float64(time.Second) {
			return 0, fmt.Errorf("%q is neither a duration (250ms, 2s) nor a number of seconds", v)
		}
		d = time.Duration(secs * float64(time.Second))
	}
	if d <= 0 {
		return 0, fmt.Errorf("%q must be positive", v)
	}
	return d, nil
}

// grpcTimeoutUnits are the units of gRPC's timeout header.
var grpcTimeoutUnits = map[byte]time.Duration{
	'H': time.Hour, 'M': time.Minute, 'S': time.Second,
	'm': time.Millisecond, 'u': time.Microsecond, 'n': time.Nanosecond,
}

// maxGRPCTimeoutDigits is the most digits gRPC's timeout format allows.
const maxGRPCTimeoutDigits = 8

// parseGRPCTimeout reads gRPC's timeout format: 1 to 8 digits and a unit.
func parseGRPCTimeout(v string) (time.Duration, error) {
	bad := fmt.Errorf("%q is not a gRPC timeout (1 to %d digits and a unit H, M, S, m, u or n, e.g. 500m)", v, maxGRPCTimeoutDigits)
	if len(v) < 2 || len(v) > maxGRPCTimeoutDigits+1 {
		return 0, bad
	}
	unit, ok := grpcTimeoutUnits[v[len(v)-1]]
	if !ok {
		return 0, bad
	}
	n, err := strconv.ParseUint(v[:len(v)-1], 10, 64)
	if err != nil {
		return 0, bad
	}
	if n == 0 {
		return 0, fmt.Errorf("%q must be positive", v)
	}
	// 8 digits of hours overflow a Duration; such a timeout means no limit
	// below the cap.
	if n > uint64(1<<62)/uint64(unit) {
		return time.Duration(1 << 62), nil
	}
	return time.Duration(n) * unit, nil
}
