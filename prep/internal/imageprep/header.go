package imageprep

import (
	"bytes"
	"encoding/binary"
)

// Pixels returns width*height from the header of an encoded image, 0 when
// it cannot be read. It reads the header only (no pixels); JPEG and PNG,
// the common cases, without allocating. Callers size the memory a decode
// will take with it before decoding, and report it afterwards.
func Pixels(img []byte) int64 {
	f := sniff(img)
	if f == formatUnknown {
		return 0
	}
	w, h, err := headerSize(f, img)
	if err != nil {
		return 0
	}
	return int64(w) * int64(h)
}

// headerSize reads the width and height the header of img, of format f,
// declares (before EXIF orientation): JPEG and PNG by walking their first
// bytes, without allocating; the others, and a JPEG or PNG the walk cannot
// read, by their decoder's DecodeConfig, whose failure is an *Error.
func headerSize(f format, img []byte) (w, h int, err error) {
	switch f {
	case formatJPEG:
		if w, h := jpegSize(img); w > 0 && h > 0 {
			return w, h, nil
		}
	case formatPNG:
		// The IHDR chunk comes first: length, "IHDR", width, height.
		if len(img) >= 24 && string(img[12:16]) == "IHDR" {
			return int(binary.BigEndian.Uint32(img[16:])), int(binary.BigEndian.Uint32(img[20:])), nil
		}
	}
	cfg, err := decodeConfigFuncs[f](bytes.NewReader(img))
	if err != nil {
		return 0, 0, decodeError(f, err)
	}
	return cfg.Width, cfg.Height, nil
}

// jpegSize finds the frame header (SOFn) of a JPEG by walking its marker
// segments and returns the frame's width and height, 0 and 0 without one.
func jpegSize(b []byte) (w, h int) {
	for i := 2; i+4 <= len(b); {
		if b[i] != 0xFF {
			return 0, 0
		}
		marker := b[i+1]
		switch {
		case marker == 0xFF: // fill byte
			i++
			continue
		case marker == 0xD8 || (marker >= 0xD0 && marker <= 0xD7) || marker == 0x01: // no length
			i += 2
			continue
		case marker == 0xD9 || marker == 0xDA: // end of image, start of scan: no frame header before
			return 0, 0
		}
		length := int(binary.BigEndian.Uint16(b[i+2:]))
		// SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC): precision(1)
		// height(2) width(2).
		if marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC {
			if i+9 > len(b) {
				return 0, 0
			}
			return int(binary.BigEndian.Uint16(b[i+7:])), int(binary.BigEndian.Uint16(b[i+5:]))
		}
		i += 2 + length
	}
	return 0, 0
}
