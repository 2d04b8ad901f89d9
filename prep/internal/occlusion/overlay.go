package occlusion

import (
	"image"
	"image/color"
	"image/draw"
	"math"
)

// maxOverlayAlpha is the opacity of the heat map over the cell that
// matters most; weaker cells are proportionally more transparent, so the
// image stays visible everywhere.
const maxOverlayAlpha = 0.6

// Overlay returns img with grid drawn over it as a heat map: each cell
// tinted red where occluding it lowered the class's probability and blue
// where it raised it, with an opacity proportional to the score relative
// to the grid's largest magnitude. A grid of zeros leaves img as it is.
func Overlay(img image.Image, grid [][]float64) *image.NRGBA {
	b := img.Bounds()
	out := image.NewNRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	draw.Draw(out, out.Bounds(), img, b.Min, draw.Src)
	var top float64
	for _, row := range grid {
		for _, v := range row {
			top = max(top, math.Abs(v))
		}
	}
	if top == 0 || len(grid) == 0 || len(grid[0]) == 0 {
		return out
	}
	rows, cols := len(grid), len(grid[0])
	w, h := b.Dx(), b.Dy()
	for r, row := range grid {
		for c, v := range row {
			a := uint8(math.Round(255 * maxOverlayAlpha * math.Abs(v) / top))
			if a == 0 {
				continue
			}
			tint := color.NRGBA{R: 255, A: a}
			if v < 0 {
				tint = color.NRGBA{B: 255, A: a}
			}
			cell := image.Rect(c*w/cols, r*h/rows, (c+1)*w/cols, (r+1)*h/rows)
			draw.Draw(out, cell, image.NewUniform(tint), image.Point{}, draw.Over)
		}
	}
	return out
}
