//go:build !purego && cgo

package imageprep

/*
#include "native.h"
*/
import "C"

import (
	"encoding/binary"
	"hash/crc32"
)

// pngInfo is what decodePNGNative needs from a PNG's chunks.
type pngInfo struct {
	width, height    int
	depth, colorType int
	interlaced       bool
	plte, trns       []byte
	idat             []int32 // offset, length pairs into the file
	orientation      int
}

// maxNativePNGWidth bounds the row buffers of the streaming decoder; wider
// (rare, and within Limits) images go to image/png.
const maxNativePNGWidth = 1 << 16

// pngDepthOK lists the bit depths PNG allows per color type.
var pngDepthOK = map[int][]int{0: {1, 2, 4, 8, 16}, 2: {8, 16}, 3: {1, 2, 4, 8}, 4: {8, 16}, 6: {8, 16}}

// parsePNG reads the chunks of a PNG file, checking their CRCs. ok is false
// for anything it does not handle; image/png then decodes the file (or
// reports what is wrong with it).
func parsePNG(b []byte) (info pngInfo, ok bool) {
	info.orientation = 1
	i := 8
	for i+12 <= len(b) {
		n := int(binary.BigEndian.Uint32(b[i:]))
		if n > len(b)-i-12 {
			return info, false
		}
		typ, data := string(b[i+4:i+8]), b[i+8:i+8+n]
		if crc32.ChecksumIEEE(b[i+4:i+8+n]) != binary.BigEndian.Uint32(b[i+8+n:]) {
			return info, false
		}
		switch typ {
		case "IHDR":
			if n != 13 || i != 8 {
				return info, false
			}
			info.width = int(binary.BigEndian.Uint32(data))
			info.height = int(binary.BigEndian.Uint32(data[4:]))
			info.depth, info.colorType = int(data[8]), int(data[9])
			if data[10] != 0 || data[11] != 0 || data[12] > 1 {
				return info, false
			}
			info.interlaced = data[12] == 1
		case "PLTE":
			info.plte = data
		case "tRNS":
			info.trns = data
		case "eXIf":
			info.orientation = exifOrientation(trimExifPrefix(data))
		case "IDAT":
			info.idat = append(info.idat, int32(i+8), int32(n))
		case "IEND":
			return info, validPNG(&info)
		}
		i += 12 + n
	}
	return info, false
}

func validPNG(info *pngInfo) bool {
	if info.width <= 0 || info.height <= 0 || len(info.idat) == 0 {
		return false
	}
	depthOK := false
	for _, d := range pngDepthOK[info.colorType] {
		depthOK = depthOK || d == info.depth
	}
	if !depthOK || (info.colorType == 3 && (len(info.plte) == 0 || len(info.plte)%3 != 0 || len(info.plte) > 768)) {
		return false
	}
	switch info.colorType {
	case 0:
		// A transparent gray at a depth below 8 is left to image/png.
		return info.trns == nil || (len(info.trns) == 2 && info.depth >= 8)
	case 2:
		return info.trns == nil || len(info.trns) == 6
	case 3:
		return len(info.trns) <= len(info.plte)/3
	}
	return info.trns == nil
}

// decodePNGNative decodes and resamples a PNG in one pass, streaming rows
// from zlib into the resampler. ok is false when the file is left to
// image/png: an interlaced or unusual PNG, EXIF orientation to apply, or
// chunks that do not parse.
func (p *Preprocessor) decodePNGNative(img []byte, dst []float32) (ok bool, err error) {
	info, ok := parsePNG(img)
	if !ok || info.interlaced || info.orientation != 1 || info.width > maxNativePNGWidth {
		return false, nil
	}
	if err := p.checkSize(formatPNG, info.width, info.height); err != nil {
		return true, err
	}
	var png C.prep_png
	png.width, png.height = C.int(info.width), C.int(info.height)
	png.depth, png.color_type = C.int(info.depth), C.int(info.colorType)
	for c := range 3 {
		png.background[c] = C.uint8_t(p.background[c])
	}
	switch info.colorType {
	case 0, 2:
		if info.trns != nil {
			png.has_key = 1
			for c := range len(info.trns) / 2 {
				png.key[c] = C.int(binary.BigEndian.Uint16(info.trns[2*c:]))
			}
		}
	case 3:
		for i := range len(info.plte) / 3 {
			a := uint8(255)
			if i < len(info.trns) {
				a = info.trns[i]
			}
			for c := range 3 {
				png.palette[4*i+c] = C.uint8_t(blend(info.plte[3*i+c], a, p.background[c]))
			}
		}
	}

	w := nativeWorkPool.Get().(*nativeWork)
	defer nativeWorkPool.Put(w)
	pl := p.plan(info.width, info.height)
	p.setupNative(w, &pl, dst)
	work := getBuf(2*(info.width*8+1) + imagePad)
	lines := getBuf(C.PREP_LINES*info.width*pixelSize + imagePad)
	z, zbuf, raw := wholeStream(img, &info)
	var zp, rawp *C.uint8_t
	if raw != nil {
		zp, rawp = u8p(z), u8p(*raw)
	}
	C.prep_png_process(u8p(img), i32p(info.idat), C.int(len(info.idat)/2), zp, C.size_t(len(z)), rawp, png,
		u8p(*work), u8p(*lines), w.plan, &w.res)
	if raw != nil {
		putBuf(raw)
	}
	if zbuf != nil {
		putBuf(zbuf)
	}
	putBuf(lines)
	putBuf(work)
	w.releaseBuffers()
	if w.res.code != C.PREP_OK {
		return true, errorf(CodeInvalidImage, "decode PNG: %s", C.GoString(&w.res.msg[0]))
	}
	return true, nil
}

// maxWholePNGBytes bounds the image data that is inflated at once: the
// rows with their filter bytes, in one buffer. Beyond it the data streams
// through zlib row by row, in memory that does not grow with the height.
const maxWholePNGBytes = 64 << 20

// wholeStream returns the zlib stream of a PNG's image data in one piece
// (the IDAT chunk itself when there is one, else a pooled copy of their
// data, zbuf) and a pooled buffer with room for every row, padded; raw is
// nil when the rows would take more than maxWholePNGBytes.
func wholeStream(img []byte, info *pngInfo) (z []byte, zbuf, raw *[]byte) {
	channels := [7]int{1, 0, 3, 1, 2, 0, 4}[info.colorType]
	rowBytes := (info.width*channels*info.depth + 7) / 8
	n := info.height * (rowBytes + 1)
	if n > maxWholePNGBytes || n <= 0 {
		return nil, nil, nil
	}
	if len(info.idat) == 2 {
		z = img[info.idat[0] : info.idat[0]+info.idat[1]]
	} else {
		total := 0
		for i := 1; i < len(info.idat); i += 2 {
			total += int(info.idat[i])
		}
		zbuf = getBuf(total)
		z = (*zbuf)[:0]
		for i := 0; i < len(info.idat); i += 2 {
			z = append(z, img[info.idat[i]:info.idat[i]+info.idat[i+1]]...)
		}
	}
	return z, zbuf, getBuf(n + imagePad)
}
