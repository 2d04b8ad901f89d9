package httpapi

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/gif"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/image/bmp"
	"golang.org/x/image/webp"

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

// imagePixels returns width*height from the header of an encoded image, 0
// when it cannot be read. It reads the header only (no pixels); JPEG and
// PNG, the common cases, without allocating.
func imagePixels(img []byte) int64 {
	var decodeConfig func(io.Reader) (image.Config, error)
	switch {
	case bytes.HasPrefix(img, []byte{0xFF, 0xD8, 0xFF}):
		w, h := jpegSize(img)
		return int64(w) * int64(h)
	case bytes.HasPrefix(img, []byte("\x89PNG\r\n\x1a\n")):
		// The IHDR chunk comes first: length, "IHDR", width, height.
		if len(img) < 24 || string(img[12:16]) != "IHDR" {
			return 0
		}
		return int64(binary.BigEndian.Uint32(img[16:])) * int64(binary.BigEndian.Uint32(img[20:]))
	case bytes.HasPrefix(img, []byte("GIF8")):
		decodeConfig = gif.DecodeConfig
	case len(img) >= 12 && string(img[:4]) == "RIFF" && string(img[8:12]) == "WEBP":
		decodeConfig = webp.DecodeConfig
	case bytes.HasPrefix(img, []byte("BM")):
		decodeConfig = bmp.DecodeConfig
	default:
		return 0
	}
	cfg, err := decodeConfig(bytes.NewReader(img))
	if err != nil {
		return 0
	}
	return int64(cfg.Width) * int64(cfg.Height)
}

// jpegSize finds the frame header (SOFn) of a JPEG by walking its marker
// segments and returns the frame's width and height, 0 and 0 without one.
func jpegSize(b []byte) (w, h int) {
	for i := 2; i+4 <= len(b); {
		if b[i] != 0xFF {
			return 0, 0
		}
		marker := b[i+1]
		switch {
		case marker == 0xFF: // fill byte
			i++
			continue
		case marker == 0xD8 || (marker >= 0xD0 && marker <= 0xD7) || marker == 0x01: // no length
			i += 2
			continue
		case marker == 0xD9 || marker == 0xDA: // end of image, start of scan: no frame header before
			return 0, 0
		}
		length := int(binary.BigEndian.Uint16(b[i+2:]))
		// SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC): precision(1)
		// height(2) width(2).
		if marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC {
			if i+9 > len(b) {
				return 0, 0
			}
			return int(binary.BigEndian.Uint16(b[i+7:])), int(binary.BigEndian.Uint16(b[i+5:]))
		}
		i += 2 + length
	}
	return 0, 0
}
