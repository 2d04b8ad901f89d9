package detect

import (
	"image"
	"image/color"
	"testing"
)

// gray is the background of the drawing tests.
var gray = color.NRGBA{200, 200, 200, 255}

func grayImage(w, h int) *image.NRGBA {
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i := 0; i < len(m.Pix); i += 4 {
		m.Pix[i], m.Pix[i+1], m.Pix[i+2], m.Pix[i+3] = gray.R, gray.G, gray.B, gray.A
	}
	return m
}

func TestDraw(t *testing.T) {
	const w, h = 400, 300
	img := grayImage(w, h)
	boxes := []Box{
		{X1: 50, Y1: 100, X2: 150, Y2: 200, Score: 0.9, Class: 0},
		{X1: 250.4, Y1: 0, X2: 380.6, Y2: 120, Score: 0.5, Class: 2}, // at the top: tag inside
	}
	Draw(img, boxes, []string{"red", "green", "blue"})
	lw := LineWidth(w, h)
	if lw != minLineWidth {
		t.Fatalf("LineWidth(%d, %d) = %d, want %d", w, h, lw, minLineWidth)
	}
	at := func(x, y int) color.NRGBA { return img.NRGBAAt(x, y) }

	// Box 0: every pixel of its left, right and bottom lines, and of its
	// top line right of the tag, has the class color.
	c0 := Color(0)
	for y := 100; y < 200; y++ {
		for d := range lw {
			if got := at(50+d, y); got != c0 {
				t.Fatalf("left edge (%d,%d) = %v, want %v", 50+d, y, got, c0)
			}
			if got := at(149-d, y); got != c0 {
				t.Fatalf("right edge (%d,%d) = %v, want %v", 149-d, y, got, c0)
			}
		}
	}
	for x := 50; x < 150; x++ {
		for d := range lw {
			if got := at(x, 199-d); got != c0 {
				t.Fatalf("bottom edge (%d,%d) = %v, want %v", x, 199-d, got, c0)
			}
			if got := at(x, 100+d); got != c0 {
				t.Fatalf("top edge (%d,%d) = %v, want %v", x, 100+d, got, c0)
			}
		}
	}
	// Inside the lines and around the box: unchanged.
	for _, p := range []image.Point{{50 + lw, 150}, {100, 150}, {149 - lw, 198 - lw}, {49, 150}, {150, 150}, {100, 200}, {100, 250}} {
		if got := at(p.X, p.Y); got != gray {
			t.Errorf("(%d,%d) = %v, want the background %v", p.X, p.Y, got, gray)
		}
	}
	// Its tag sits above the box, from its left edge, in the class color
	// with the text in white or black.
	tagH := 13 + 2*labelPad
	var text int
	for y := 100 - tagH; y < 100; y++ {
		for x := 50; x < 80; x++ {
			switch at(x, y) {
			case c0:
			case color.NRGBA{255, 255, 255, 255}, color.NRGBA{0, 0, 0, 255}:
				text++
			default:
				// Antialiasing is off in basicfont: only the two colors.
				t.Fatalf("tag pixel (%d,%d) = %v, neither the class color nor text", x, y, at(x, y))
			}
		}
	}
	if text == 0 {
		t.Error("the tag above box 0 holds no text")
	}
	if got := at(50, 100-tagH-1); got != gray {
		t.Errorf("above the tag = %v, want the background", got)
	}

	// Box 1: fractional edges cover the pixels they touch, 250..380; the
	// tag is inside the top of the box, the bottom edge and sides are lines.
	c2 := Color(2)
	for _, p := range []image.Point{{250, 60}, {380, 60}, {300, 119}, {251, 119}, {360, 0}, {360, 1}} {
		if got := at(p.X, p.Y); got != c2 {
			t.Errorf("box 1 edge (%d,%d) = %v, want %v", p.X, p.Y, got, c2)
		}
	}
	for _, p := range []image.Point{{249, 60}, {381, 60}, {300, 120}, {300, 60}} {
		if got := at(p.X, p.Y); got != gray {
			t.Errorf("around box 1 (%d,%d) = %v, want the background", p.X, p.Y, got)
		}
	}
}

func TestDrawClipsAndSkips(t *testing.T) {
	img := grayImage(100, 100)
	// A box outside the image is not drawn; one reaching past the right
	// edge gets its tag moved inside the image.
	Draw(img, []Box{{X1: 150, Y1: 150, X2: 160, Y2: 160, Score: 1, Class: 0}, {X1: 90, Y1: 50, X2: 100, Y2: 60, Score: 0.75, Class: 123}}, nil)
	if got := img.NRGBAAt(99, 55); got != Color(123) {
		t.Errorf("right edge of the clipped box = %v, want %v", got, Color(123))
	}
	if got := img.NRGBAAt(99, 49); got == gray {
		t.Error("the tag of the box at the right edge is not inside the image")
	}
	if got := img.NRGBAAt(10, 10); got != gray {
		t.Errorf("(10,10) = %v, want the background", got)
	}
}

func TestColor(t *testing.T) {
	if Color(0) == Color(1) || Color(0) != Color(len(palette)) || Color(-1) != Color(len(palette)-1) {
		t.Error("Color does not cycle through the palette")
	}
	if LineWidth(4000, 3000) != 11 {
		t.Errorf("LineWidth(4000, 3000) = %d, want 11 (0.3%% of 3500)", LineWidth(4000, 3000))
	}
}
