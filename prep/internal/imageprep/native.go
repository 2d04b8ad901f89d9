//go:build !purego && cgo

package imageprep

// The cgo build decodes JPEG with libjpeg-turbo (native_jpeg.c), producing
// Pillow's pixels exactly, PNG with libdeflate, or zlib for what libdeflate
// does not take (native_png.c), both streaming rows into the SIMD resampler
// of native_resample.c. Build: Debian's libjpeg62-turbo-dev, zlib1g-dev
// and libdeflate-dev; run: libjpeg62-turbo, zlib1g and libdeflate0 (none
// in prep's image, which links them statically).
// Build with -tags purego (or CGO_ENABLED=0) for the pure-Go fallback.

/*
#cgo CFLAGS: -O2
#cgo LDFLAGS: -ljpeg -lz -ldeflate
#include "native.h"
*/
import "C"

import (
	"sync"
	"unsafe"
)

const (
	// nativeJPEG: JPEG decoding uses libjpeg-turbo.
	nativeJPEG = true
	// nativeResample: resampling uses the C code.
	nativeResample = true
)

func i32p(s []int32) *C.int32_t {
	if len(s) == 0 {
		return nil
	}
	return (*C.int32_t)(unsafe.Pointer(unsafe.SliceData(s)))
}

func u8p(s []byte) *C.uint8_t { return (*C.uint8_t)(unsafe.Pointer(unsafe.SliceData(s))) }

// nativeWork holds what one native resampling needs besides the plan's
// coefficients: the C plan, pooled work buffers, and the decoder's result.
type nativeWork struct {
	plan   C.prep_plan
	tmp    *[]byte
	rowBuf *[]byte
	res    C.prep_result
}

// nativeWorkPool recycles nativeWork values (res would otherwise escape to
// the heap on every call).
var nativeWorkPool = sync.Pool{New: func() any { return new(nativeWork) }}

// setup fills w for pl, writing into dst.
func (p *Preprocessor) setupNative(w *nativeWork, pl *resamplePlan, dst []float32) {
	W, H := pl.w, pl.h
	ts := tmpStride(W)
	w.tmp = getBuf((pl.y1-pl.y0)*ts + imagePad)
	w.rowBuf = getBuf(ts + imagePad)
	c := &w.plan
	p.fillPad(pl, dst)
	*c = C.prep_plan{
		w: C.int(W), h: C.int(H), cx: C.int(pl.cx), cy: C.int(pl.cy), y0: C.int(pl.y0), y1: C.int(pl.y1), dstride: C.int(pl.stride),
		lut:  (*C.float)(unsafe.Pointer(&p.lutRGB[0])),
		norm: (*C.float)(unsafe.Pointer(&p.normRGB[0])),
		tmp:  u8p(*w.tmp), tstride: C.int(ts), rowbuf: u8p(*w.rowBuf),
	}
	if p.portableC {
		c.portable = 1
	}
	if hc := pl.hc; hc != nil {
		c.hkstride, c.hstart, c.hn, c.hk = C.int(hc.kstride), i32p(hc.start), i32p(hc.n), i32p(hc.k)
		if hc.ktaps > 0 {
			c.hktaps, c.hfstart = C.int(hc.ktaps), i32p(hc.fstart)
			c.hkw = (*C.int16_t)(unsafe.Pointer(unsafe.SliceData(hc.kw)))
		}
	}
	if vc := pl.vc; vc != nil {
		c.vkstride, c.vstart, c.vn, c.vk, c.vkp = C.int(vc.kstride), i32p(vc.start), i32p(vc.n), i32p(vc.k), i32p(vc.kpair)
	}
	for rgb := range 3 {
		c.dst[rgb] = (*C.float)(unsafe.Pointer(&dst[p.planeOf[rgb]*pl.plane+pl.off]))
	}
}

// releaseBuffers returns w's work buffers to their pools.
func (w *nativeWork) releaseBuffers() {
	putBuf(w.tmp)
	putBuf(w.rowBuf)
	w.tmp, w.rowBuf = nil, nil
	w.plan = C.prep_plan{}
}

func (p *Preprocessor) resampleNative(src *rgbImage, pl *resamplePlan, dst []float32) {
	w := nativeWorkPool.Get().(*nativeWork)
	defer nativeWorkPool.Put(w)
	p.setupNative(w, pl, dst)
	C.prep_resample(u8p(src.pix), C.ptrdiff_t(src.stride), w.plan)
	w.releaseBuffers()
}

// decodeJPEGNative is used for JPEG input. With no EXIF orientation to
// apply, it decodes and resamples in one pass and returns done; otherwise
// it returns the decoded image.
func (p *Preprocessor) decodeJPEGNative(img []byte, dst []float32) (m rgbImage, buf *[]byte, done bool, err error) {
	// The frame header gives the size, so the limit is applied and the
	// buffers sized before libjpeg sees the data.
	info, ok := scanJPEG(img)
	if !ok {
		return m, nil, false, errorf(CodeInvalidImage, "decode JPEG: no frame header before the scan")
	}
	if err := p.checkSize(formatJPEG, info.width, info.height); err != nil {
		return m, nil, false, err
	}
	w := nativeWorkPool.Get().(*nativeWork)
	defer nativeWorkPool.Put(w)
	res := &w.res
	if info.orientation == 1 && p.native {
		pl := p.plan(info.width, info.height)
		p.setupNative(w, &pl, dst)
		lines := getBuf(C.PREP_LINES*info.width*pixelSize + imagePad)
		C.prep_jpeg_process(u8p(img), C.ulong(len(img)), C.int(info.width), C.int(info.height), u8p(*lines), w.plan, res)
		putBuf(lines)
		w.releaseBuffers()
		switch res.code {
		case C.PREP_OK:
			return m, nil, true, nil
		case C.PREP_INVALID:
			return m, nil, false, errorf(CodeInvalidImage, "decode JPEG: %s", C.GoString(&res.msg[0]))
		}
		// libjpeg read another size than scanJPEG (several frame
		// headers): decode the whole image below.
	}

	buf = getImageBuf(info.width, info.height)
	for {
		C.prep_jpeg_decode(u8p(img), C.ulong(len(img)), u8p(*buf), C.size_t(len(*buf)-imagePad),
			C.longlong(p.limits.MaxPixels), res)
		if res.code != C.PREP_NEED_BUFFER {
			break
		}
		putBuf(buf)
		if err := p.checkSize(formatJPEG, int(res.width), int(res.height)); err != nil {
			return m, nil, false, err
		}
		buf = getImageBuf(int(res.width), int(res.height))
	}
	width, height := int(res.width), int(res.height)
	switch res.code {
	case C.PREP_OK:
	case C.PREP_TOO_LARGE:
		putBuf(buf)
		return m, nil, false, p.checkSize(formatJPEG, width, height)
	default:
		putBuf(buf)
		return m, nil, false, errorf(CodeInvalidImage, "decode JPEG: %s", C.GoString(&res.msg[0]))
	}
	m = rgbImage{w: width, h: height, stride: width * pixelSize, pix: *buf}
	if info.orientation != 1 {
		obuf := getImageBuf(height, width)
		m = orient(&m, info.orientation, *obuf)
		putBuf(buf)
		buf = obuf
	}
	return m, buf, false, nil
}
