package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prepred/prepred/pred/predtest"
	"github.com/prepred/prepred/prep/internal/detect"
	"github.com/prepred/prepred/prep/preptest"
)

// The squares detector's classes and the colors the test paints them in:
// solid, well inside its masks (R > 0.6, G < 0.4, B < 0.4 for red, and so
// on).
var squareColors = map[string]color.NRGBA{
	"red":   {220, 20, 20, 255},
	"green": {20, 200, 20, 255},
	"blue":  {20, 20, 220, 255},
}

var squaresLabels = []string{"red", "green", "blue"}

// square is one painted square, in pixels of the image as displayed.
type square struct {
	label   string
	x, y, s int
}

func (q square) box() detect.Box {
	return detect.Box{X1: float32(q.x), Y1: float32(q.y), X2: float32(q.x + q.s), Y2: float32(q.y + q.s)}
}

// paint returns a w x h image of bg with the squares on it.
func paint(w, h int, bg color.NRGBA, squares []square) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.SetNRGBA(x, y, bg)
		}
	}
	for _, q := range squares {
		for y := q.y; y < q.y+q.s; y++ {
			for x := q.x; x < q.x+q.s; x++ {
				img.SetNRGBA(x, y, squareColors[q.label])
			}
		}
	}
	return img
}

func encodePNG(t *testing.T, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// rotatedJPEG encodes img (as it is to be displayed) as a JPEG stored
// rotated a quarter turn counter-clockwise, with EXIF orientation 6
// ("rotate 90° clockwise to display"), as a phone held upright writes it.
func rotatedJPEG(t *testing.T, img *image.NRGBA) []byte {
	t.Helper()
	w, h := img.Bounds().Dx(), img.Bounds().Dy()
	stored := image.NewNRGBA(image.Rect(0, 0, h, w))
	// Displayed (xd, yd) is stored (yd, w-1-xd).
	for ys := range w {
		for xs := range h {
			stored.SetNRGBA(xs, ys, img.NRGBAAt(w-1-ys, xs))
		}
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, stored, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	// APP1 "Exif": a little-endian TIFF header and one IFD entry,
	// Orientation (0x0112) SHORT = 6.
	var tiff bytes.Buffer
	tiff.WriteString("Exif\x00\x00II*\x00")
	le := binary.LittleEndian
	tiff.Write(le.AppendUint32(nil, 8))
	tiff.Write(le.AppendUint16(nil, 1))
	tiff.Write(le.AppendUint16(nil, 0x0112))
	tiff.Write(le.AppendUint16(nil, 3))
	tiff.Write(le.AppendUint32(nil, 1))
	tiff.Write(le.AppendUint32(nil, 6))
	tiff.Write(le.AppendUint32(nil, 0))
	app1 := append([]byte{0xFF, 0xE1}, binary.BigEndian.AppendUint16(nil, uint16(2+tiff.Len()))...)
	app1 = append(app1, tiff.Bytes()...)
	jpg := b.Bytes()
	return append(append(append([]byte{}, jpg[:2]...), app1...), jpg[2:]...)
}

// boxesAnswer is the JSON answer of /predict/boxes.
type boxesAnswer struct {
	Boxes []struct {
		Label      string  `json:"label"`
		ClassIndex int     `json:"class_index"`
		Score      float32 `json:"score"`
		X1         float32 `json:"x1"`
		Y1         float32 `json:"y1"`
		X2         float32 `json:"x2"`
		Y2         float32 `json:"y2"`
	} `json:"boxes"`
	Model   string `json:"model"`
	Version int64  `json:"version"`
	Image   struct {
		Width  int `json:"width"`
		Height int `json:"height"`
	} `json:"image"`
}

func decodeBoxes(t *testing.T, a imageAnswer) boxesAnswer {
	t.Helper()
	if a.status != http.StatusOK {
		t.Fatalf("boxes: %v", a)
	}
	var b boxesAnswer
	if err := json.Unmarshal(a.body, &b); err != nil {
		t.Fatalf("boxes: %v: %s", err, a.body)
	}
	return b
}

// minIoU is how well each box must match its square.
const minIoU = 0.9

// matchSquares checks that b holds exactly one box per square, with its
// label and an IoU of at least minIoU, on a w x h image, and nothing else.
func matchSquares(t *testing.T, b boxesAnswer, w, h int, squares []square) {
	t.Helper()
	if b.Model != "squares" || b.Image.Width != w || b.Image.Height != h {
		t.Errorf("model %q, image %dx%d; want squares on %dx%d", b.Model, b.Image.Width, b.Image.Height, w, h)
	}
	used := make([]bool, len(b.Boxes))
	for _, q := range squares {
		best, bestIoU := -1, 0.0
		for i, g := range b.Boxes {
			iou := detect.IoU(detect.Box{X1: g.X1, Y1: g.Y1, X2: g.X2, Y2: g.Y2}, q.box())
			if !used[i] && iou > bestIoU {
				best, bestIoU = i, iou
			}
		}
		if best < 0 || bestIoU < minIoU {
			t.Errorf("square %+v: best box IoU %.3f (boxes %+v)", q, bestIoU, b.Boxes)
			continue
		}
		used[best] = true
		if g := b.Boxes[best]; g.Label != q.label || squaresLabels[g.ClassIndex] != q.label {
			t.Errorf("square %+v: box %+v has the wrong label", q, g)
		}
	}
	for i, u := range used {
		if !u {
			t.Errorf("extra box %+v", b.Boxes[i])
		}
	}
}

// detectRepository is a model repository holding the generated colors and
// squares models only (not resnet50, whose load these tests do not need).
func detectRepository(t *testing.T) string {
	t.Helper()
	src := predtest.ModelRepository(t)
	repo := t.TempDir()
	for _, model := range []string{"colors", "squares"} {
		if err := os.CopyFS(filepath.Join(repo, model), os.DirFS(filepath.Join(src, model))); err != nil {
			t.Fatalf("copy the %s model: %v", model, err)
		}
	}
	return repo
}

// TestDetect runs the generated squares detector beside the colors
// classifier with real pred and ONNX Runtime.
func TestDetect(t *testing.T) {
	pred := startPred(t, detectRepository(t), "")
	prep := startPrep(t, pred.GRPCAddr)
	prep.WaitLog(t, contractTimeout, isContractLoaded(1))
	t.Run("squares", func(t *testing.T) { testDetectSquares(t, prep) })
	t.Run("picture", func(t *testing.T) { testDetectPicture(t, prep) })
	t.Run("kind mismatch", func(t *testing.T) { testDetectKindMismatch(t, pred, prep) })
}

// testDetectSquares: on generated images with squares at known places,
// letterboxed with padding above and below, left and right, none,
// downscaled, upscaled, and an EXIF-rotated JPEG, every square comes back
// as one box of its color with IoU >= 0.9 in the displayed image's
// pixels, and nothing else; in every input form of /predict/label.
func testDetectSquares(t *testing.T, prep *preptest.Server) {
	white, lightGray := color.NRGBA{255, 255, 255, 255}, color.NRGBA{225, 225, 225, 255}

	for _, tt := range []struct {
		name    string
		w, h    int
		bg      color.NRGBA
		squares []square
		jpeg    bool // EXIF-rotated JPEG instead of PNG
	}{
		{"640x480 pads top and bottom", 640, 480, white, []square{{"red", 50, 60, 120}, {"green", 300, 200, 80}, {"blue", 500, 350, 100}}, false},
		{"480x640 pads left and right", 480, 640, lightGray, []square{{"blue", 30, 40, 150}, {"red", 300, 400, 120}}, false},
		{"640x640 no padding", 640, 640, white, []square{{"green", 0, 0, 100}, {"red", 540, 540, 100}}, false},
		{"1200x500 downscaled", 1200, 500, lightGray, []square{{"green", 100, 100, 200}, {"red", 700, 60, 300}, {"blue", 1050, 300, 120}}, false},
		{"300x900 downscaled, pads left and right", 300, 900, white, []square{{"red", 50, 100, 150}, {"red", 100, 600, 180}}, false},
		{"320x200 upscaled", 320, 200, white, []square{{"blue", 20, 20, 40}, {"green", 200, 100, 60}}, false},
		{"EXIF-rotated JPEG", 640, 480, white, []square{{"red", 40, 40, 140}, {"green", 400, 250, 120}}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pic := paint(tt.w, tt.h, tt.bg, tt.squares)
			img := encodePNG(t, pic)
			if tt.jpeg {
				img = rotatedJPEG(t, pic)
			}
			b := decodeBoxes(t, postImage(t, prep.URL+"/v1/models/squares/predict/boxes", img))
			matchSquares(t, b, tt.w, tt.h, tt.squares)
		})
	}

	// Every input form of /predict/label, and the default-model route
	// with ?model=.
	pic := paint(640, 480, white, []square{{"green", 100, 100, 90}})
	img := encodePNG(t, pic)
	jsonBody := []byte(`{"data": "` + base64.StdEncoding.EncodeToString(img) + `"}`)
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	fw, err := mw.CreateFormFile("file", "squares.png")
	if err != nil {
		t.Fatal(err)
	}
	fw.Write(img)
	mw.Close()
	for name, a := range map[string]imageAnswer{
		"json":       postBody(t, prep.URL+"/v1/models/squares/predict/boxes", "application/json", jsonBody),
		"multipart":  postBody(t, prep.URL+"/v1/models/squares/predict/boxes", mw.FormDataContentType(), form.Bytes()),
		"raw, model": postImage(t, prep.URL+"/predict/boxes?model=squares", img),
	} {
		t.Run(name, func(t *testing.T) {
			matchSquares(t, decodeBoxes(t, a), 640, 480, []square{{"green", 100, 100, 90}})
		})
	}

	// Nothing to find: no boxes.
	if b := decodeBoxes(t, postImage(t, prep.URL+"/v1/models/squares/predict/boxes", encodePNG(t, paint(500, 300, white, nil)))); len(b.Boxes) != 0 {
		t.Errorf("a blank image: boxes %+v", b.Boxes)
	}
}

// postBody sends body with the given Content-Type.
func postBody(t *testing.T, url, contentType string, body []byte) imageAnswer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	client := http.Client{Timeout: callTimeout}
	resp, err := client.Do(req)
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

// testDetectPicture: ?format=png answers the original image, of its
// size, with each square's box drawn on its edges in its class's color
// and the rest of the image unchanged; ?format=jpeg a JPEG of that size.
func testDetectPicture(t *testing.T, prep *preptest.Server) {
	const w, h = 640, 480
	white := color.NRGBA{255, 255, 255, 255}
	squares := []square{{"red", 60, 80, 120}, {"blue", 400, 260, 100}}
	img := encodePNG(t, paint(w, h, white, squares))
	b := decodeBoxes(t, postImage(t, prep.URL+"/v1/models/squares/predict/boxes", img))
	matchSquares(t, b, w, h, squares)

	a := postImage(t, prep.URL+"/v1/models/squares/predict/boxes?format=png", img)
	if a.status != http.StatusOK || a.header.Get("Content-Type") != "image/png" || a.header.Get("X-Box-Count") != "2" {
		t.Fatalf("format=png: %v, Content-Type %q, X-Box-Count %q", a, a.header.Get("Content-Type"), a.header.Get("X-Box-Count"))
	}
	pic, err := png.Decode(bytes.NewReader(a.body))
	if err != nil {
		t.Fatal(err)
	}
	if pic.Bounds() != image.Rect(0, 0, w, h) {
		t.Fatalf("picture %v, want the original %dx%d", pic.Bounds(), w, h)
	}
	at := func(x, y int) color.NRGBA { return color.NRGBAModel.Convert(pic.At(x, y)).(color.NRGBA) }
	for _, g := range b.Boxes {
		want := detect.Color(g.ClassIndex)
		x1, y1, x2, y2 := int(g.X1), int(g.Y1), int(g.X2+0.999)-1, int(g.Y2+0.999)-1
		mx, my := (x1+x2)/2, (y1+y2)/2
		for _, p := range []image.Point{{x1, my}, {x2, my}, {mx, y2}} {
			if got := at(p.X, p.Y); got != want {
				t.Errorf("%s box edge (%d,%d) = %v, want its class color %v", g.Label, p.X, p.Y, got, want)
			}
		}
		// Inside the lines the square is as painted.
		if got := at(mx, my); got != squareColors[g.Label] {
			t.Errorf("%s box center (%d,%d) = %v, want the square's %v", g.Label, mx, my, got, squareColors[g.Label])
		}
	}
	for _, p := range []image.Point{{5, 470}, {630, 10}, {300, 200}} {
		if got := at(p.X, p.Y); got != white {
			t.Errorf("(%d,%d) = %v, want the unchanged background", p.X, p.Y, got)
		}
	}

	a = postImage(t, prep.URL+"/v1/models/squares/predict/boxes?format=jpeg&conf=0.5", img)
	if a.status != http.StatusOK || a.header.Get("Content-Type") != "image/jpeg" {
		t.Fatalf("format=jpeg: %v", a)
	}
	if cfg, err := jpeg.DecodeConfig(bytes.NewReader(a.body)); err != nil || cfg.Width != w || cfg.Height != h {
		t.Errorf("format=jpeg: %+v, %v; want a %dx%d JPEG", cfg, err, w, h)
	}
}

// testDetectKindMismatch: a detector asked for labels, probabilities or
// an explanation, and a classifier asked for boxes, answer 422
// model_kind_mismatch naming the model's kind, and pred runs nothing for
// them.
func testDetectKindMismatch(t *testing.T, pred *predtest.Server, prep *preptest.Server) {
	colorsBefore := predCount(t, pred, "pred_inference_count_total", `model="colors"`)
	squaresBefore := predCount(t, pred, "pred_inference_count_total", `model="squares"`)
	img := encodePNG(t, paint(100, 100, color.NRGBA{255, 255, 255, 255}, []square{{"red", 10, 10, 60}}))
	for _, c := range []struct{ path, kind string }{
		{"/v1/models/squares/predict/label", "is a detector (output_kind OUTPUT_KIND_YOLO)"},
		{"/predict?model=squares", "is a detector"},
		{"/v1/models/squares/predict/topk", "is a detector"},
		{"/v1/models/squares/explain", "is a detector"},
		{"/predict/boxes", `model "colors" version 1 is a classifier (output_kind OUTPUT_KIND_LOGITS)`},
		{"/v1/models/colors/predict/boxes", "is a classifier"},
	} {
		a := postImage(t, prep.URL+c.path, img)
		code, msg := answer{status: a.status, body: a.body}.errorCode()
		if a.status != http.StatusUnprocessableEntity || code != "model_kind_mismatch" || !strings.Contains(msg, c.kind) {
			t.Errorf("%s: %v; want 422 model_kind_mismatch saying %q", c.path, a, c.kind)
		}
	}
	for model, before := range map[string]float64{"colors": colorsBefore, "squares": squaresBefore} {
		if n := predCount(t, pred, "pred_inference_count_total", fmt.Sprintf("model=%q", model)); n != before {
			t.Errorf("pred inferred %v items of %s for refused requests", n-before, model)
		}
	}
}
