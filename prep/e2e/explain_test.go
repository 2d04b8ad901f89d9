package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"net/http"
	"strings"
	"testing"

	"github.com/prepred/prepred/pred/predtest"
)

// explanation is the JSON answer of /explain.
type explanation struct {
	Label           string      `json:"label"`
	ClassIndex      int         `json:"class_index"`
	Probability     float64     `json:"probability"`
	Grid            [][]float64 `json:"grid"`
	Inferences      int         `json:"inferences"`
	Width           int         `json:"width"`
	Height          int         `json:"height"`
	Model           string      `json:"model"`
	Version         int64       `json:"version"`
	SpecFingerprint string      `json:"spec_fingerprint"`
}

// squareImage encodes as PNG a w x h image of background bg with a side x
// side square of fg at (x, y).
func squareImage(t *testing.T, w, h int, bg, fg color.Color, x, y, side int) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for py := range h {
		for px := range w {
			c := bg
			if px >= x && px < x+side && py >= y && py < y+side {
				c = fg
			}
			img.Set(px, py, c)
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// imageAnswer is an answer with its headers.
type imageAnswer struct {
	status int
	header http.Header
	body   []byte
}

func (a imageAnswer) String() string { return fmt.Sprintf("%d %.400s", a.status, a.body) }

// postImage sends img as the raw body.
func postImage(t *testing.T, url string, img []byte) imageAnswer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "image/png")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	return imageAnswer{status: resp.StatusCode, header: resp.Header, body: buf.Bytes()}
}

// predItems is pred's count of items inferred for the colors model
// (pred_inference_count_total, every version).
func predItems(t *testing.T, pred *predtest.Server) float64 {
	t.Helper()
	return predCount(t, pred, "pred_inference_count_total", `model="colors"`)
}

func decodeExplanation(t *testing.T, a imageAnswer) explanation {
	t.Helper()
	if a.status != http.StatusOK {
		t.Fatalf("explain: %v", a)
	}
	var e explanation
	if err := json.Unmarshal(a.body, &e); err != nil {
		t.Fatalf("explain: %v: %s", err, a.body)
	}
	return e
}

func formatGrid(g [][]float64) string {
	var b strings.Builder
	for _, row := range g {
		for _, v := range row {
			fmt.Fprintf(&b, "%7.3f", v)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// meanColor is the colors model's spec mean as 8-bit RGB: 0 (nearly)
// after normalization, the zero baseline's color.
var meanColor = color.NRGBA{124, 116, 104, 255}

// TestExplainRedSquare explains, with real pred and ONNX Runtime, the
// colors model's answer for a red square on the spec's mean color, which
// the model averages to "red": the cells covering the square score the
// largest drops of P(red), cells away from it about zero. Run for the
// square at two places, through both routes and two body forms, with the
// JSON and PNG answers; the inferences stated are what pred counted.
func TestExplainRedSquare(t *testing.T) {
	pred := startPred(t, predtest.ModelRepository(t), "")
	prep := startPrep(t, pred.GRPCAddr)
	prep.WaitLog(t, contractTimeout, isContractLoaded(1))
	red := color.NRGBA{255, 0, 0, 255}
	const size, side, cell = 64, 44, 8 // window=stride=4 tensor pixels: an 8x8 grid of 8-pixel cells

	for _, tt := range []struct {
		name  string
		x, y  int
		route string
	}{
		{"bottom right", 20, 20, "/explain"},
		{"top left", 0, 0, "/v1/models/colors/explain"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			img := squareImage(t, size, size, meanColor, red, tt.x, tt.y, side)
			before := predItems(t, pred)
			e := decodeExplanation(t, postImage(t, prep.URL+tt.route+"?window=4&stride=4", img))
			if e.Label != "red" || e.ClassIndex != 2 || e.Model != "colors" || e.Version != 1 || e.SpecFingerprint == "" {
				t.Fatalf("explanation of %s %d (model %s version %d fingerprint %q), want red of colors version 1", e.Label, e.ClassIndex, e.Model, e.Version, e.SpecFingerprint)
			}
			if e.Width != size || e.Height != size || len(e.Grid) != size/cell || len(e.Grid[0]) != size/cell {
				t.Fatalf("explanation of a %dx%d image with a %dx%d grid", e.Width, e.Height, len(e.Grid), len(e.Grid[0]))
			}
			if e.Inferences != 8*8+1 {
				t.Errorf("inferences = %d, want 65 (8x8 patches and the image)", e.Inferences)
			}
			if got := predItems(t, pred) - before; got != float64(e.Inferences) {
				t.Errorf("pred inferred %v items, the explanation says %d", got, e.Inferences)
			}
			t.Logf("P(red) = %.4f, grid:\n%s", e.Probability, formatGrid(e.Grid))

			// P(red) is the prediction's.
			p := decodeProbabilities(t, postImage(t, prep.URL+"/predict", img))
			if math.Abs(p[2]-e.Probability) > 1e-9 {
				t.Errorf("probability %v, /predict says %v", e.Probability, p[2])
			}

			// Cells inside the square score high, cells outside it about 0.
			top, inside := 0.0, math.Inf(1)
			far := 0.0
			for r, row := range e.Grid {
				for c, v := range row {
					x0, y0 := c*cell, r*cell
					switch {
					case x0 >= tt.x && x0+cell <= tt.x+side && y0 >= tt.y && y0+cell <= tt.y+side:
						inside = min(inside, v)
					case x0+cell <= tt.x || x0 >= tt.x+side || y0+cell <= tt.y || y0 >= tt.y+side:
						far = max(far, math.Abs(v))
					}
					top = max(top, v)
				}
			}
			if inside < 0.05 || inside < top/2 {
				t.Errorf("a cell inside the square scores %.4f (top %.4f), want a clear drop", inside, top)
			}
			if far > top/50 {
				t.Errorf("a cell away from the square scores %.4f, want about 0 (top %.4f)", far, top)
			}

			// The PNG: the image, its size, tinted red where the drop is.
			body, err := json.Marshal(map[string]string{"data": base64.StdEncoding.EncodeToString(img)})
			if err != nil {
				t.Fatal(err)
			}
			a := post(context.Background(), http.DefaultClient, prep.URL+tt.route+"?window=4&stride=4&format=png", body)
			if a.status != http.StatusOK {
				t.Fatalf("format=png: %v", a)
			}
			pic, err := png.Decode(bytes.NewReader(a.body))
			if err != nil {
				t.Fatalf("format=png: %v", err)
			}
			if b := pic.Bounds(); b.Dx() != size || b.Dy() != size {
				t.Fatalf("format=png: %v, want %dx%d", b, size, size)
			}
			// A pixel in the corner opposite the square.
			fx, fy := 2, 2
			if tt.x == 0 {
				fx, fy = size-2, size-2
			}
			farPx := color.NRGBAModel.Convert(pic.At(fx, fy)).(color.NRGBA)
			if farPx != meanColor {
				t.Errorf("format=png: a pixel away from the square is %v, want the image's %v", farPx, meanColor)
			}
			// The background pixel just left of the square, in a cell that
			// overlaps it, is tinted red.
			if tt.x > 0 {
				edge := color.NRGBAModel.Convert(pic.At(tt.x-2, tt.y+side/2)).(color.NRGBA)
				if int(edge.R) < int(meanColor.R)+10 || int(edge.G) > int(meanColor.G)-10 {
					t.Errorf("format=png: the cell at the square's edge is %v, want %v tinted red", edge, meanColor)
				}
			}
		})
	}

	t.Run("over the limit", func(t *testing.T) {
		img := squareImage(t, size, size, meanColor, red, 0, 0, side)
		before := predItems(t, pred)
		a := postImage(t, prep.URL+"/explain?window=1&stride=1", img)
		if a.status != http.StatusBadRequest || !strings.Contains(string(a.body), "inferences") {
			t.Errorf("window=1 stride=1 (1025 inferences): %v, want 400 naming the inferences", a)
		}
		if got := predItems(t, pred) - before; got != 0 {
			t.Errorf("pred inferred %v items for a refused explanation", got)
		}
	})
}

// decodeProbabilities reads a /predict answer.
func decodeProbabilities(t *testing.T, a imageAnswer) []float64 {
	t.Helper()
	var b struct {
		Prediction [][]float64 `json:"prediction"`
	}
	if a.status != http.StatusOK || json.Unmarshal(a.body, &b) != nil || len(b.Prediction) != 1 {
		t.Fatalf("predict: %v", a)
	}
	return b.Prediction[0]
}
