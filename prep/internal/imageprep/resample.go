package imageprep

import (
	"encoding/binary"
	"math"
	"sync"
)

// This file reproduces Pillow's ImagingResample for 8-bit RGB images
// (libImaging/Resample.c, Pillow 9.x), bit for bit: the same filters and
// support, the same coefficient normalization and fixed-point rounding, a
// horizontal pass clipped to 8 bits, then a vertical pass. The vertical pass
// writes normalized float32 NCHW values directly.

// precisionBits is Pillow's PRECISION_BITS for 8-bit resampling: 32-8-2.
const precisionBits = 32 - 8 - 2

// filter is one of Pillow's resampling filters.
type filter struct {
	name    string
	support float64
	eval    func(x float64) float64
}

var (
	bilinearFilter = filter{name: "bilinear", support: 1, eval: bilinear}
	bicubicFilter  = filter{name: "bicubic", support: 2, eval: bicubic}
)

func bilinear(x float64) float64 {
	if x < 0 {
		x = -x
	}
	if x < 1 {
		return 1 - x
	}
	return 0
}

// bicubic is Pillow's bicubic_filter with a = -0.5. The explicit float64
// conversions keep every product rounded separately, as the C code does.
func bicubic(x float64) float64 {
	const a = -0.5
	if x < 0 {
		x = -x
	}
	if x < 1 {
		return float64(float64(float64(float64((a+2)*x)-(a+3))*x)*x) + 1
	}
	if x < 2 {
		return float64(float64(float64(float64(float64(x-5)*x)+8)*x)-4) * a
	}
	return 0
}

// axisCoeffs are fixed-point resampling weights for a run of output pixels
// along one axis: output i reads inputs start[i] .. start[i]+n[i]-1 with
// weights k[i*kstride : i*kstride+n[i]]. kstride is even and the weights
// past n[i] are zero, so SIMD code may read taps in pairs.
type axisCoeffs struct {
	kstride int
	start   []int32
	n       []int32
	k       []int32

	// The same weights with a fixed number of taps, for SIMD code: output
	// i reads inputs fstart[i] .. fstart[i]+ktaps-1, the window shifted
	// inside the image where it would cross its end, and zero weights
	// added. ktaps is a multiple of 4, and 0 when the input is shorter
	// than that. kw holds the weights split as w = hi<<11 + lo (hi signed,
	// lo in 0..2047, both fit int16) for 16-bit multiply-add: per output
	// and group of 4 taps t0..t3, 16 words hi (t0,t1 four times, then t2,t3
	// four times), then 16 words lo in the same order.
	ktaps  int
	fstart []int32
	kw     []int16

	// kpair holds the weights of taps (2p, 2p+1) split like kw and packed
	// as 16-bit pairs (first tap in the low half): the hi pair at
	// [i*kstride+2p], the lo pair at [i*kstride+2p+1].
	kpair []int32
}

// splitBits is where weights are split for 16-bit arithmetic: |w| <= 1<<22,
// so w>>splitBits and w&(1<<splitBits-1) both fit int16.
const splitBits = 11

// computeAxis returns Pillow's coefficients (precompute_coeffs followed by
// normalize_coeffs_8bpc) for resizing inSize to outSize, restricted to output
// pixels first .. first+count-1.
func computeAxis(inSize, outSize, first, count int, f *filter) *axisCoeffs {
	scale := float64(inSize) / float64(outSize)
	filterscale := scale
	if filterscale < 1 {
		filterscale = 1
	}
	support := f.support * filterscale
	ksize := int(math.Ceil(support))*2 + 1
	kstride := ksize + 1
	c := &axisCoeffs{
		kstride: kstride,
		start:   make([]int32, count),
		n:       make([]int32, count),
		k:       make([]int32, count*kstride),
	}
	w := make([]float64, ksize)
	ss := 1.0 / filterscale
	for i := range count {
		xx := first + i
		center := float64(float64(xx)+0.5) * scale
		// C's (int) conversion truncates toward zero.
		xmin := int(center - support + 0.5)
		if xmin < 0 {
			xmin = 0
		}
		xmax := int(center + support + 0.5)
		if xmax > inSize {
			xmax = inSize
		}
		xmax -= xmin
		ww := 0.0
		for x := range xmax {
			v := f.eval(float64(float64(x+xmin)-center+0.5) * ss)
			w[x] = v
			ww += v
		}
		k := c.k[i*kstride : (i+1)*kstride]
		for x := range xmax {
			v := w[x]
			if ww != 0 {
				v /= ww
			}
			if v < 0 {
				k[x] = int32(-0.5 + v*(1<<precisionBits))
			} else {
				k[x] = int32(0.5 + v*(1<<precisionBits))
			}
		}
		c.start[i] = int32(xmin)
		c.n[i] = int32(xmax)
	}
	c.kpair = make([]int32, len(c.k))
	for i := range count {
		k := c.k[i*kstride : (i+1)*kstride]
		for t := 0; t+1 < kstride; t += 2 {
			pack := func(a, b int32) int32 { return int32(uint32(uint16(a)) | uint32(b)<<16) }
			c.kpair[i*kstride+t] = pack(k[t]>>splitBits, k[t+1]>>splitBits)
			c.kpair[i*kstride+t+1] = pack(k[t]&(1<<splitBits-1), k[t+1]&(1<<splitBits-1))
		}
	}
	c.expand(inSize)
	return c
}

// expand fills the fixed-tap fields of c for an axis of inSize inputs.
func (c *axisCoeffs) expand(inSize int) {
	taps := 0
	for _, n := range c.n {
		taps = max(taps, int(n))
	}
	taps = (taps + 3) &^ 3
	if taps == 0 || taps > inSize {
		return
	}
	c.ktaps = taps
	c.fstart = make([]int32, len(c.n))
	c.kw = make([]int16, len(c.n)*taps*8)
	w := make([]int32, taps)
	for i := range c.n {
		start := min(int(c.start[i]), inSize-taps)
		shift := int(c.start[i]) - start
		c.fstart[i] = int32(start)
		clear(w)
		copy(w[shift:], c.k[i*c.kstride:i*c.kstride+int(c.n[i])])
		kw := c.kw[i*taps*8 : (i+1)*taps*8]
		for g := 0; g < taps; g += 4 {
			hi, lo := kw[g*8:g*8+16], kw[g*8+16:g*8+32]
			for half := range 2 {
				for rep := range 4 {
					for t := range 2 {
						v := w[g+2*half+t]
						hi[half*8+rep*2+t] = int16(v >> splitBits)
						lo[half*8+rep*2+t] = int16(v & (1<<splitBits - 1))
					}
				}
			}
		}
	}
}

// clip8 is Pillow's clip8: round-half-up was folded into the accumulator's
// initial value, so this shifts and saturates.
func clip8(v int32) uint8 {
	if v >= 1<<precisionBits<<8 {
		return 255
	}
	if v <= 0 {
		return 0
	}
	return uint8(v >> precisionBits)
}

// maxCachedAxes bounds the coefficient cache. Inputs of many different sizes
// simply recompute; the cache only saves work for repeated sizes.
const maxCachedAxes = 256

type axisKey struct {
	in, out, first, count int
}

// coeffCache memoizes computeAxis for one filter.
type coeffCache struct {
	mu sync.Mutex
	m  map[axisKey]*axisCoeffs
}

func (cc *coeffCache) get(in, out, first, count int, f *filter) *axisCoeffs {
	key := axisKey{in, out, first, count}
	cc.mu.Lock()
	c, ok := cc.m[key]
	cc.mu.Unlock()
	if ok {
		return c
	}
	c = computeAxis(in, out, first, count, f)
	cc.mu.Lock()
	if cc.m == nil || len(cc.m) >= maxCachedAxes {
		cc.m = make(map[axisKey]*axisCoeffs)
	}
	cc.m[key] = c
	cc.mu.Unlock()
	return c
}

// geometry returns the size the image is resized to and the top-left corner
// of the width x height window kept from it; for LETTERBOX that corner is
// (-left, -top), outside the resized image, whose window is then padded.
func (p *Preprocessor) geometry(inW, inH int) (rw, rh, cx, cy int) {
	if p.letterbox {
		_, left, top, nw, nh := LetterboxBox(inW, inH, p.width, p.height)
		return nw, nh, -left, -top
	}
	if p.shorterSide == 0 {
		return p.width, p.height, 0, 0
	}
	// torchvision's _compute_resized_output_size: the longer side is
	// int(size * long / short), computed in float64 and truncated.
	s := p.shorterSide
	if inW <= inH {
		rw, rh = s, int(float64(s*inH)/float64(inW))
	} else {
		rw, rh = int(float64(s*inW)/float64(inH)), s
	}
	// torchvision's center_crop: int(round((size - crop) / 2.0)), where
	// Python's round rounds half to even.
	cx = int(math.RoundToEven(float64(rw-p.width) / 2))
	cy = int(math.RoundToEven(float64(rh-p.height) / 2))
	return rw, rh, cx, cy
}

// pixelSize is the bytes per pixel of decoded images: R, G, B and one
// unused byte, so that a pixel is one 32-bit SIMD lane.
const pixelSize = 4

// imagePad is the slack after an image buffer that SIMD code may read past
// the last pixel (always with zero weight).
const imagePad = 64

// rgbImage is 8-bit RGBX, pixelSize bytes per pixel.
type rgbImage struct {
	w, h   int
	stride int
	pix    []uint8
}

func (m *rgbImage) row(y int) []uint8 { return m.pix[y*m.stride : y*m.stride+m.w*pixelSize] }

// resamplePlan is the work to turn an inW x inH image into the spec's
// tensor: which source rows are read, and the coefficients of each pass
// (nil when Pillow skips the pass because that axis keeps its size; then
// cx or cy is the crop offset on that axis). The passes write a w x h
// window of each plane, at value off with rows stride apart: the whole
// plane, or for LETTERBOX the resized image inside its padding.
type resamplePlan struct {
	w, h   int
	hc, vc *axisCoeffs
	cx, cy int
	y0, y1 int
	// off and stride place the window in a plane of plane values.
	off, stride, plane int
	// padded: the values outside the window are the pad color's.
	padded bool
}

func (p *Preprocessor) plan(inW, inH int) resamplePlan {
	rw, rh, cx, cy := p.geometry(inW, inH)
	pl := resamplePlan{w: p.width, h: p.height, stride: p.width, plane: p.width * p.height}
	if p.letterbox {
		// The window is the whole resized image, at (-cx, -cy).
		pl.w, pl.h, pl.off, pl.padded = rw, rh, -cy*p.width-cx, true
		cx, cy = 0, 0
	}
	pl.cx, pl.cy, pl.y0, pl.y1 = cx, cy, cy, cy+pl.h
	if rw != inW {
		pl.hc = p.coeffs.get(inW, rw, cx, pl.w, p.filter)
	}
	if rh != inH {
		pl.vc = p.coeffs.get(inH, rh, cy, pl.h, p.filter)
		pl.y0 = int(pl.vc.start[0])
		pl.y1 = int(pl.vc.start[pl.h-1] + pl.vc.n[pl.h-1])
	}
	return pl
}

// tmpStride is the row stride of horizontally resampled rows: a multiple of
// 32 bytes so that SIMD code handles whole vectors.
func tmpStride(w int) int { return (w*pixelSize + 31) &^ 31 }

// resample resizes src per the spec and writes the normalized tensor to dst.
func (p *Preprocessor) resample(src *rgbImage, dst []float32) {
	pl := p.plan(src.w, src.h)
	if p.native {
		p.resampleNative(src, &pl, dst)
		return
	}
	p.resampleGo(src, &pl, dst)
}

// resampleGo is the portable implementation of resample.
func (p *Preprocessor) resampleGo(src *rgbImage, pl *resamplePlan, dst []float32) {
	W, H := pl.w, pl.h
	y0, y1 := pl.y0, pl.y1
	p.fillPad(pl, dst)

	// tmp holds the horizontally resampled rows y0..y1-1.
	var tmp rgbImage
	if pl.hc != nil {
		tmpBuf := getBuf((y1-y0)*tmpStride(W) + imagePad)
		defer putBuf(tmpBuf)
		tmp = rgbImage{w: W, h: y1 - y0, stride: tmpStride(W), pix: *tmpBuf}
		for y := y0; y < y1; y++ {
			horizontalPass(src.row(y), tmp.row(y-y0), pl.hc)
		}
	} else {
		off := y0*src.stride + pl.cx*pixelSize
		tmp = rgbImage{w: W, h: y1 - y0, stride: src.stride, pix: src.pix[off:]}
	}

	plane, S := pl.plane, pl.stride
	var luts [3]*[256]float32
	var planes [3][]float32
	for c := range 3 {
		j := p.channelOrder[c]
		luts[j] = &p.lut[c]
		planes[j] = dst[c*plane+pl.off : (c+1)*plane]
	}
	l0, l1, l2 := luts[0], luts[1], luts[2]

	if pl.vc == nil {
		for y := range H {
			row := tmp.row(pl.cy + y - y0)
			d0, d1, d2 := planes[0][y*S:y*S+W], planes[1][y*S:y*S+W], planes[2][y*S:y*S+W]
			for x := range W {
				px := row[x*pixelSize : x*pixelSize+3 : x*pixelSize+3]
				d0[x] = l0[px[0]]
				d1[x] = l1[px[1]]
				d2[x] = l2[px[2]]
			}
		}
		return
	}

	vc := pl.vc
	accBuf := getInt64s(2 * W)
	defer putInt64s(accBuf)
	accRB, accG := (*accBuf)[:W], (*accBuf)[W:2*W]
	for y := range H {
		clear(accRB)
		clear(accG)
		k := vc.k[y*vc.kstride:]
		start := int(vc.start[y]) - y0
		for j := range int(vc.n[y]) {
			c := int64(k[j])
			row := tmp.row(start + j)
			row = row[:W*pixelSize]
			for x := range accRB {
				v := binary.LittleEndian.Uint32(row[x*pixelSize:])
				accRB[x] += int64(uint64(v&0xff)|uint64(v&0xff0000)<<16) * c
				accG[x] += int64(v>>8&0xff) * c
			}
		}
		d0, d1, d2 := planes[0][y*S:y*S+W], planes[1][y*S:y*S+W], planes[2][y*S:y*S+W]
		for x := range W {
			r, b := splitRB(accRB[x])
			d0[x] = l0[clip8(r+half)]
			d1[x] = l1[clip8(int32(accG[x])+half)]
			d2[x] = l2[clip8(b+half)]
		}
	}
}

// half is the rounding term Pillow starts its sums with.
const half = 1 << (precisionBits - 1)

// The portable vertical pass adds two channels with one multiplication: R in
// the low 32 bits, B in the high 32 bits of an int64 (R + B<<32). Each sum
// fits int32, so splitRB recovers both exactly.
func splitRB(s int64) (r, b int32) {
	r = int32(uint32(s))
	return r, int32((s - int64(r)) >> 32)
}

// horizontalPass resamples one RGBX row into out (len pixelSize*count).
func horizontalPass(in, out []uint8, hc *axisCoeffs) {
	for i := range hc.start {
		n := int(hc.n[i])
		k := hc.k[i*hc.kstride : i*hc.kstride+n]
		p := in[int(hc.start[i])*pixelSize:]
		p = p[:n*pixelSize]
		s0, s1, s2 := int32(half), int32(half), int32(half)
		for x, c := range k {
			px := p[x*pixelSize : x*pixelSize+3 : x*pixelSize+3]
			s0 += int32(px[0]) * c
			s1 += int32(px[1]) * c
			s2 += int32(px[2]) * c
		}
		o := out[i*pixelSize : i*pixelSize+3 : i*pixelSize+3]
		o[0], o[1], o[2] = clip8(s0), clip8(s1), clip8(s2)
	}
}
