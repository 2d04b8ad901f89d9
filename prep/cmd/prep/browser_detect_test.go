package main

import (
	"context"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/prepred/prepred/prep/internal/detect"
)

// detectScreenshot, if set, is where TestWebPageInChromium writes a PNG of
// the page showing the squares detector's boxes (the README's picture):
//
//	go test ./prep/cmd/prep -run TestWebPageInChromium -detect-screenshot $PWD/prep/internal/httpapi/web/screenshots/boxes.png
var detectScreenshot = flag.String("detect-screenshot", "", "write a PNG screenshot of the page with a detector's boxes to this path")

// squaresPNG writes a w x h white PNG with the given solid squares (label:
// rectangle) for the squares detector, and returns its path.
func squaresPNG(t *testing.T, w, h int, squares map[string]image.Rectangle) string {
	t.Helper()
	colors := map[string]color.NRGBA{"red": {220, 20, 20, 255}, "green": {20, 200, 20, 255}, "blue": {20, 20, 220, 255}}
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			c := color.NRGBA{255, 255, 255, 255}
			for label, r := range squares {
				if (image.Point{x, y}).In(r) {
					c = colors[label]
				}
			}
			img.SetNRGBA(x, y, c)
		}
	}
	path := filepath.Join(t.TempDir(), "squares.png")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
	return path
}

// pageBox is one row of the page's box list.
type pageBox struct {
	Label string  `json:"label"`
	Class int     `json:"class"`
	X1    float64 `json:"x1"`
	Y1    float64 `json:"y1"`
	X2    float64 `json:"x2"`
	Y2    float64 `json:"y2"`
}

// detectInPage uploads path through the page's file input with the
// detector chosen and waits for the page to show its boxes; it returns the
// rows of the box list.
func detectInPage(t *testing.T, tab context.Context, path string) []pageBox {
	t.Helper()
	if _, err := chromedp.Run(tab, chromedp.Evaluate[any](`document.body.dataset.state = "idle"`)); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(tab,
		chromedp.SetUploadFiles(chromedp.ID("file"), []string{path}),
		chromedp.WaitVisible(chromedp.CSS(`body[data-state="done"], body[data-state="error"]`)),
	); err != nil {
		t.Fatalf("upload %s: %v", filepath.Base(path), err)
	}
	if state, _ := chromedp.Run(tab, chromedp.Evaluate[string](`document.body.dataset.state`)); state != "done" {
		msg, _ := chromedp.Run(tab, chromedp.Text(chromedp.ID("error")))
		t.Fatalf("the page shows an error for %s: %s", filepath.Base(path), msg)
	}
	rows, err := chromedp.Run(tab, chromedp.Evaluate[[]pageBox](`[...document.querySelectorAll("#boxes li")].map(li => {
		const [x1, y1, x2, y2] = li.dataset.box.split(",").map(Number);
		return {label: li.dataset.label, class: Number(li.dataset.class), x1, y1, x2, y2};
	})`))
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// checkDetectorInPage chooses the squares detector on the page, uploads
// an image with a red and a blue square and checks that the page lists
// one box per square, shows the classifier's parts no longer, and draws
// the image on its canvas at its own size with each box's edges in its
// class's color, the squares' insides and the background as they were.
func checkDetectorInPage(t *testing.T, tab context.Context) {
	t.Helper()
	if err := chromedp.Do(tab,
		chromedp.WaitReady(chromedp.CSS(`#model option[value="squares"]`)),
		chromedp.SetValue(chromedp.ID("model"), "squares"),
	); err != nil {
		t.Fatalf("choose squares: %v", err)
	}
	squares := map[string]image.Rectangle{"red": image.Rect(60, 80, 180, 200), "blue": image.Rect(400, 260, 500, 360)}
	rows := detectInPage(t, tab, squaresPNG(t, 640, 480, squares))
	slices.SortFunc(rows, func(a, b pageBox) int { return strings.Compare(a.Label, b.Label) })
	if len(rows) != 2 || rows[0].Label != "blue" || rows[1].Label != "red" {
		t.Fatalf("box rows %+v, want one blue and one red", rows)
	}
	for _, r := range rows {
		sq := squares[r.Label]
		got := detect.Box{X1: float32(r.X1), Y1: float32(r.Y1), X2: float32(r.X2), Y2: float32(r.Y2)}
		want := detect.Box{X1: float32(sq.Min.X), Y1: float32(sq.Min.Y), X2: float32(sq.Max.X), Y2: float32(sq.Max.Y)}
		if iou := detect.IoU(got, want); iou < 0.9 {
			t.Errorf("%s box %+v: IoU %.3f with the square %v", r.Label, r, iou, sq)
		}
	}
	if shown, err := chromedp.Run(tab, chromedp.Evaluate[bool](`!document.getElementById("detection").hidden && document.getElementById("classification").hidden`)); err != nil || !shown {
		t.Errorf("with a detector: boxes shown and classification hidden = %v (%v)", shown, err)
	}

	// The canvas: pixels at the middle of each box's left line, at its
	// center and far from every box.
	var probes []image.Point
	for _, r := range rows {
		// The 2-pixel line covers [x1, x1+2): its pixel at ceil(x1) fully.
		x, y := int(math.Ceil(r.X1)), int(math.Round((r.Y1+r.Y2)/2))
		probes = append(probes, image.Pt(x, y), image.Pt(int((r.X1+r.X2)/2), y))
	}
	probes = append(probes, image.Pt(620, 20))
	js := fmt.Sprintf(`(() => {
		const c = document.getElementById("boxes-canvas"), g = c.getContext("2d");
		return [[c.width, c.height, 0]].concat(%s.map(([x, y]) => [...g.getImageData(x, y, 1, 1).data].slice(0, 3)));
	})()`, pointsJS(probes))
	px, err := chromedp.Run(tab, chromedp.Evaluate[[][]int](js))
	if err != nil {
		t.Fatal(err)
	}
	if len(px) != len(probes)+1 || px[0][0] != 640 || px[0][1] != 480 {
		t.Fatalf("canvas %v, want 640x480 and %d probes", px, len(probes))
	}
	squareColor := map[string][3]int{"red": {220, 20, 20}, "blue": {20, 20, 220}}
	for i, r := range rows {
		c := detect.Color(r.Class)
		if edge := px[1+2*i]; !near(edge, [3]int{int(c.R), int(c.G), int(c.B)}) {
			t.Errorf("%s box's left line at %v is %v, want its class color %v", r.Label, probes[2*i], edge, c)
		}
		if inside := px[2+2*i]; !near(inside, squareColor[r.Label]) {
			t.Errorf("%s box's center at %v is %v, want the square's %v", r.Label, probes[2*i+1], inside, squareColor[r.Label])
		}
	}
	if far := px[len(px)-1]; !near(far, [3]int{255, 255, 255}) {
		t.Errorf("canvas far from the boxes is %v, want the white background", far)
	}
	if *detectScreenshot != "" {
		shot, err := chromedp.Run(tab, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(*detectScreenshot, shot, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// near compares colors within a few levels (the canvas antialiases).
func near(got []int, want [3]int) bool {
	if len(got) != 3 {
		return false
	}
	for i := range 3 {
		if got[i] < want[i]-8 || got[i] > want[i]+8 {
			return false
		}
	}
	return true
}

func pointsJS(ps []image.Point) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = fmt.Sprintf("[%d,%d]", p.X, p.Y)
	}
	return "[" + strings.Join(parts, ",") + "]"
}
