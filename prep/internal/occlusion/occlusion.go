// Package occlusion explains a classifier's answer by occlusion
// sensitivity: it plans square patches over a preprocessed NCHW tensor,
// writes copies of the tensor with one patch replaced by a baseline (zero
// after normalization, or a blurred copy of the image), and maps the drop
// in the class's probability per patch back onto a grid that tiles the
// original image, through the resize and crop that made the tensor. It is
// model-agnostic and needs no gradients: only inferences.
package occlusion

import (
	"fmt"
	"math"
)

// Baseline is what an occluded patch is filled with.
type Baseline int

// The baselines.
const (
	// BaselineZero fills the patch with 0 in the normalized tensor: the
	// spec's mean color, the neutral input of a model trained with it.
	BaselineZero Baseline = iota
	// BaselineBlur fills the patch with a box-blurred copy of the image,
	// which removes detail without introducing a foreign color.
	BaselineBlur
)

func (b Baseline) String() string {
	if b == BaselineBlur {
		return "blur"
	}
	return "zero"
}

// ParseBaseline reads a baseline by name: "zero" or "blur".
func ParseBaseline(s string) (Baseline, error) {
	switch s {
	case "zero":
		return BaselineZero, nil
	case "blur":
		return BaselineBlur, nil
	}
	return 0, fmt.Errorf("baseline %q is not one of zero, blur", s)
}

// defaultWindowDivisor makes the default window an eighth of the tensor's
// shorter side (28 pixels of a 224x224 input, 4 of a 32x32 one).
const defaultWindowDivisor = 8

// maxGridSide bounds the rows and columns of a grid.
const maxGridSide = 256

// Params are an explanation's patches: square windows of Window tensor
// pixels, Stride pixels apart.
type Params struct {
	Window   int
	Stride   int
	Baseline Baseline
}

// Defaults returns the default parameters for a w x h tensor: a window of
// an eighth of its shorter side and half a window's stride.
func Defaults(w, h int) Params {
	win := max(1, min(w, h)/defaultWindowDivisor)
	return Params{Window: win, Stride: max(1, win/2)}
}

// Plan is the patches of one explanation over a tensor of 3 x H x W.
type Plan struct {
	W, H   int
	Params Params
	// Xs and Ys are the patches' left and top tensor coordinates; patch i
	// is at (Xs[i%len(Xs)], Ys[i/len(Xs)]).
	Xs, Ys []int
}

// ParamError is a request for patches that cannot be planned; its message
// names the parameter and its bounds.
type ParamError struct{ Message string }

func (e *ParamError) Error() string { return e.Message }

// NewPlan plans p over a w x h tensor. The plan may need at most
// maxInferences inferences (its patches and the unoccluded image); more,
// or a window or stride out of range, is a *ParamError.
func NewPlan(w, h int, p Params, maxInferences int) (*Plan, error) {
	side := min(w, h)
	if p.Window < 1 || p.Window > side {
		return nil, &ParamError{fmt.Sprintf("window=%d is out of range: patches are 1 to %d tensor pixels wide (the model's input is %dx%d)", p.Window, side, w, h)}
	}
	if p.Stride < 1 || p.Stride > p.Window {
		return nil, &ParamError{fmt.Sprintf("stride=%d is out of range: 1 to the window (%d), so that the patches cover the whole input", p.Stride, p.Window)}
	}
	nx, ny := positions(w, p.Window, p.Stride), positions(h, p.Window, p.Stride)
	if n := nx*ny + 1; n > maxInferences {
		return nil, &ParamError{fmt.Sprintf("window=%d stride=%d need %d inferences (%dx%d patches and the image) on the model's %dx%d input; at most %d are allowed: use a larger stride or window", p.Window, p.Stride, n, nx, ny, w, h, maxInferences)}
	}
	pl := &Plan{W: w, H: h, Params: p, Xs: make([]int, nx), Ys: make([]int, ny)}
	fill(pl.Xs, w, p.Window, p.Stride)
	fill(pl.Ys, h, p.Window, p.Stride)
	return pl, nil
}

// positions is the number of patches of size win, stride apart, that cover
// size pixels, the last one flush with the end.
func positions(size, win, stride int) int {
	return (size-win+stride-1)/stride + 1
}

func fill(pos []int, size, win, stride int) {
	for i := range pos {
		pos[i] = min(i*stride, size-win)
	}
}

// Patches is the number of occluded copies.
func (pl *Plan) Patches() int { return len(pl.Xs) * len(pl.Ys) }

// Inferences is what the plan costs: every patch and the unoccluded image.
func (pl *Plan) Inferences() int { return pl.Patches() + 1 }

// Patch returns patch i's left and top tensor coordinates.
func (pl *Plan) Patch(i int) (x, y int) { return pl.Xs[i%len(pl.Xs)], pl.Ys[i/len(pl.Xs)] }

// Occlude writes base into dst with patch i taken from fill (nil: zeros).
// base, fill and dst hold 3*H*W values.
func (pl *Plan) Occlude(dst, base, fill []float32, i int) {
	copy(dst, base)
	x0, y0 := pl.Patch(i)
	win, plane := pl.Params.Window, pl.W*pl.H
	for c := range 3 {
		for y := y0; y < y0+win; y++ {
			row := c*plane + y*pl.W
			d := dst[row+x0 : row+x0+win]
			if fill == nil {
				clear(d)
			} else {
				copy(d, fill[row+x0:row+x0+win])
			}
		}
	}
}

// Fill returns what occluded patches are filled with for the plan's
// baseline: nil for zeros, or a copy of base blurred by a box of the
// window's size.
func (pl *Plan) Fill(base []float32) []float32 {
	if pl.Params.Baseline != BaselineBlur {
		return nil
	}
	return BoxBlur(base, pl.W, pl.H, max(1, pl.Params.Window/2))
}

// BoxBlur returns a copy of the 3 x h x w tensor t with each plane blurred
// by a (2r+1)-pixel box, horizontally then vertically; the box is cut at
// the edges and its mean taken over the pixels inside.
func BoxBlur(t []float32, w, h, r int) []float32 {
	out := make([]float32, len(t))
	tmp := make([]float32, w*h)
	plane := w * h
	for c := range 3 {
		src, dst := t[c*plane:(c+1)*plane], out[c*plane:(c+1)*plane]
		for y := range h {
			boxLine(tmp[y*w:], src[y*w:], w, 1, r)
		}
		for x := range w {
			boxLine(dst[x:], tmp[x:], h, w, r)
		}
	}
	return out
}

// boxLine blurs the n values of src, step apart, into dst.
func boxLine(dst, src []float32, n, step, r int) {
	var sum float64
	lo, hi := 0, 0 // the window is src[lo:hi) in elements
	for i := range n {
		for hi < n && hi <= i+r {
			sum += float64(src[hi*step])
			hi++
		}
		for lo < i-r {
			sum -= float64(src[lo*step])
			lo++
		}
		dst[i*step] = float32(sum / float64(hi-lo))
	}
}

// Geometry is how the tensor was made from the original image: the image
// (after EXIF orientation) of ImageW x ImageH pixels was resized to
// ResizedW x ResizedH, and the tensor is the window at (CropX, CropY) of it.
type Geometry struct {
	ImageW, ImageH     int
	ResizedW, ResizedH int
	CropX, CropY       int
}

// Grid maps drops, the probability drop of each patch in plan order, onto
// the original image: rows top to bottom, each a slice of columns left to
// right, whose cells tile the image evenly, about one stride of the tensor
// per cell. A cell's score is the mean drop of the patches whose area in
// the image overlaps it; cells no patch reaches (outside a center crop)
// are 0, since occluding them cannot change the answer.
func (pl *Plan) Grid(drops []float64, g Geometry) [][]float64 {
	cols := min(maxGridSide, max(1, ceilDiv(g.ResizedW, pl.Params.Stride)))
	rows := min(maxGridSide, max(1, ceilDiv(g.ResizedH, pl.Params.Stride)))
	// sx and sy turn resized-image pixels into original pixels; cw and ch
	// are a cell's size in original pixels.
	sx, sy := float64(g.ImageW)/float64(g.ResizedW), float64(g.ImageH)/float64(g.ResizedH)
	cw, ch := float64(g.ImageW)/float64(cols), float64(g.ImageH)/float64(rows)
	sum := make([]float64, rows*cols)
	count := make([]int, rows*cols)
	win := float64(pl.Params.Window)
	for i, d := range drops {
		px, py := pl.Patch(i)
		x0, x1 := (float64(g.CropX+px))*sx, (float64(g.CropX+px)+win)*sx
		y0, y1 := (float64(g.CropY+py))*sy, (float64(g.CropY+py)+win)*sy
		c0, c1 := cellRange(x0, x1, cw, cols)
		r0, r1 := cellRange(y0, y1, ch, rows)
		for r := r0; r < r1; r++ {
			for c := c0; c < c1; c++ {
				sum[r*cols+c] += d
				count[r*cols+c]++
			}
		}
	}
	grid := make([][]float64, rows)
	for r := range grid {
		grid[r] = make([]float64, cols)
		for c := range grid[r] {
			if n := count[r*cols+c]; n > 0 {
				grid[r][c] = sum[r*cols+c] / float64(n)
			}
		}
	}
	return grid
}

// cellRange is the cells [first, end) of size cell, n in all, that the
// interval [a, b) overlaps.
func cellRange(a, b, cell float64, n int) (int, int) {
	// A tiny tolerance keeps an interval that ends exactly on a cell edge
	// (as most do) from reaching into the next cell by rounding.
	const eps = 1e-9
	first := int(math.Floor(a/cell + eps))
	end := int(math.Ceil(b/cell - eps))
	return max(0, first), min(n, end)
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }
