package detect

import (
	"image"
	"image/color"
	"image/draw"
	"strconv"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"

	"github.com/prepred/prepred/prep/internal/postprocess"
)

// palette holds the class colors, class i taking palette[i % len]: the
// 20 colors Ultralytics draws with, so that pictures look as users of
// YOLO expect.
var palette = [...]color.NRGBA{
	{0xFF, 0x38, 0x38, 0xFF}, {0xFF, 0x9D, 0x97, 0xFF}, {0xFF, 0x70, 0x1F, 0xFF}, {0xFF, 0xB2, 0x1D, 0xFF},
	{0xCF, 0xD2, 0x31, 0xFF}, {0x48, 0xF9, 0x0A, 0xFF}, {0x92, 0xCC, 0x17, 0xFF}, {0x3D, 0xDB, 0x86, 0xFF},
	{0x1A, 0x93, 0x34, 0xFF}, {0x00, 0xD4, 0xBB, 0xFF}, {0x2C, 0x99, 0xA8, 0xFF}, {0x00, 0xC2, 0xFF, 0xFF},
	{0x34, 0x45, 0x93, 0xFF}, {0x64, 0x73, 0xFF, 0xFF}, {0x00, 0x18, 0xEC, 0xFF}, {0x84, 0x38, 0xFF, 0xFF},
	{0x52, 0x00, 0x85, 0xFF}, {0xCB, 0x38, 0xFF, 0xFF}, {0xFF, 0x95, 0xC8, 0xFF}, {0xFF, 0x37, 0xC7, 0xFF},
}

// Color returns the color boxes of class are drawn in.
func Color(class int) color.NRGBA {
	return palette[(class%len(palette)+len(palette))%len(palette)]
}

// Line widths: Ultralytics' default, 0.3% of the mean side, at least
// minLineWidth pixels.
const (
	lineWidthPerMille = 3
	minLineWidth      = 2
)

// LineWidth returns the width of the box lines Draw draws on an image of
// w x h pixels.
func LineWidth(w, h int) int {
	return max(minLineWidth, ((w+h)/2*lineWidthPerMille+500)/1000)
}

// labelPad is the margin around a label's text, in pixels.
const labelPad = 2

// Draw draws each box on img as a rectangle of its class's color, its
// lines inside the box's edges, with a tag of that color holding the
// label (labels[class], else the class index) and the score: above the
// box, or inside its top when there is no room above.
func Draw(img *image.NRGBA, boxes []Box, labels []string) {
	b := img.Bounds()
	lw := LineWidth(b.Dx(), b.Dy())
	face := basicfont.Face7x13
	for _, bx := range boxes {
		col := Color(bx.Class)
		r := pixelRect(bx).Intersect(b)
		if r.Empty() {
			continue
		}
		src := image.NewUniform(col)
		for _, edge := range []image.Rectangle{
			{r.Min, image.Pt(r.Max.X, min(r.Min.Y+lw, r.Max.Y))},
			{image.Pt(r.Min.X, max(r.Max.Y-lw, r.Min.Y)), r.Max},
			{r.Min, image.Pt(min(r.Min.X+lw, r.Max.X), r.Max.Y)},
			{image.Pt(max(r.Max.X-lw, r.Min.X), r.Min.Y), r.Max},
		} {
			draw.Draw(img, edge, src, image.Point{}, draw.Src)
		}

		text := postprocess.Label(labels, bx.Class) + " " + strconv.FormatFloat(float64(bx.Score), 'f', 2, 32)
		tw := font.MeasureString(face, text).Ceil() + 2*labelPad
		th := face.Height + 2*labelPad
		tag := image.Rect(r.Min.X, r.Min.Y-th, r.Min.X+tw, r.Min.Y)
		if tag.Min.Y < b.Min.Y {
			tag = tag.Add(image.Pt(0, th)) // no room above: inside the box
		}
		if tag.Max.X > b.Max.X {
			tag = tag.Add(image.Pt(b.Max.X-tag.Max.X, 0))
		}
		draw.Draw(img, tag, src, image.Point{}, draw.Src)
		d := font.Drawer{Dst: img, Src: image.NewUniform(textColor(col)), Face: face,
			Dot: fixed.P(tag.Min.X+labelPad, tag.Min.Y+labelPad+face.Ascent)}
		d.DrawString(text)
	}
}

// pixelRect is the rectangle of whole pixels a box touches.
func pixelRect(bx Box) image.Rectangle {
	return image.Rect(int(bx.X1), int(bx.Y1), ceil(bx.X2), ceil(bx.Y2))
}

func ceil(v float32) int {
	i := int(v)
	if float32(i) < v {
		i++
	}
	return i
}

// textColor is black on light colors and white on dark ones (by luma).
func textColor(c color.NRGBA) color.Color {
	if 299*int(c.R)+587*int(c.G)+114*int(c.B) > 150*1000 {
		return color.Black
	}
	return color.White
}
