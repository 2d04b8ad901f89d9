package httpapi

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/prepred/prepred/prep/internal/metrics"
)

// ServerTimingHeader carries the durations of a prediction's stages (W3C
// Server Timing): payload, decode_preprocess, pred, postprocess and total,
// in milliseconds.
const ServerTimingHeader = "Server-Timing"

// timingsKey is the gin context key holding a request's *timings.
const timingsKey = "prep.timings"

// timingStages are the stages Server-Timing reports, in order.
var timingStages = [...]string{metrics.StagePayload, metrics.StageDecodePreprocess, metrics.StagePred, metrics.StagePostprocess}

// timings are the stage durations of one request, written by its handler's
// goroutine only.
type timings struct {
	start time.Time
	// dur and ran are by index in timingStages.
	dur [len(timingStages)]time.Duration
	ran [len(timingStages)]bool
}

func timingsOf(c *gin.Context) *timings {
	if t, ok := c.Get(timingsKey); ok {
		return t.(*timings)
	}
	return nil
}

// timing adds d to the request's Server-Timing entry for stage.
func (s *server) timing(c *gin.Context, stage string, d time.Duration) {
	t := timingsOf(c)
	if t == nil {
		return
	}
	for i, name := range timingStages {
		if name == stage {
			t.dur[i] += d
			t.ran[i] = true
		}
	}
}

// stage records d for stage: in Server-Timing and in the stage histogram.
func (s *server) stage(c *gin.Context, stage string, d time.Duration) {
	s.timing(c, stage, d)
	s.metrics.Stage.WithLabelValues(stage).Observe(d.Seconds())
}

// setServerTiming writes the Server-Timing header of the stages that ran,
// plus the total so far; it must be called before the body is written.
func setServerTiming(c *gin.Context) {
	t := timingsOf(c)
	if t == nil || !slices.Contains(t.ran[:], true) {
		return
	}
	var b strings.Builder
	for i, name := range timingStages {
		if t.ran[i] {
			b.WriteString(name + ";dur=" + millis(t.dur[i]) + ", ")
		}
	}
	b.WriteString("total;dur=" + millis(time.Since(t.start)))
	c.Header(ServerTimingHeader, b.String())
}

func millis(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 3, 64)
}

// respond answers 200 with body as JSON, with the Server-Timing header.
func respond(c *gin.Context, body any) {
	setServerTiming(c)
	c.JSON(http.StatusOK, body)
}
