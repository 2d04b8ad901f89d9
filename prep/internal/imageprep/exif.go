package imageprep

import "encoding/binary"

// jpegInfo is what prep reads from a JPEG's markers before decoding.
type jpegInfo struct {
	width, height int
	orientation   int // EXIF orientation 1..8 (1 when absent or unreadable)
}

// scanJPEG walks the markers of a JPEG stream up to the first scan: the frame
// size from the SOF marker and, like Pillow, the orientation (tag 0x0112 of
// IFD0) from the first APP1 "Exif" segment. ok is false when no frame header
// precedes the scan.
func scanJPEG(b []byte) (info jpegInfo, ok bool) {
	info.orientation = 1
	if len(b) < 4 || b[0] != 0xFF || b[1] != 0xD8 {
		return info, false
	}
	sawExif := false
	i := 2
	for i+4 <= len(b) {
		if b[i] != 0xFF {
			return info, ok
		}
		marker := b[i+1]
		if marker == 0xFF { // fill byte
			i++
			continue
		}
		if marker == 0xD8 || (marker >= 0xD0 && marker <= 0xD7) || marker == 0x01 {
			i += 2
			continue
		}
		if marker == 0xDA || marker == 0xD9 { // start of scan or end: no more headers
			return info, ok
		}
		n := int(binary.BigEndian.Uint16(b[i+2:]))
		if n < 2 || i+2+n > len(b) {
			return info, ok
		}
		seg := b[i+4 : i+2+n]
		switch {
		case marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC:
			// SOFn: precision, height, width, components.
			if len(seg) >= 5 && !ok {
				info.height = int(binary.BigEndian.Uint16(seg[1:]))
				info.width = int(binary.BigEndian.Uint16(seg[3:]))
				ok = true
			}
		case marker == 0xE1 && !sawExif && len(seg) >= 6 && string(seg[:5]) == "Exif\x00":
			sawExif = true
			info.orientation = exifOrientation(seg[6:])
		}
		i += 2 + n
	}
	return info, ok
}

// jpegOrientation returns the EXIF orientation (1..8) of a JPEG stream.
func jpegOrientation(b []byte) int {
	info, _ := scanJPEG(b)
	return info.orientation
}

// exifOrientation reads tag 0x0112 from IFD0 of a TIFF-structured EXIF block.
func exifOrientation(t []byte) int {
	if len(t) < 8 {
		return 1
	}
	var bo binary.ByteOrder
	switch string(t[:2]) {
	case "II":
		bo = binary.LittleEndian
	case "MM":
		bo = binary.BigEndian
	default:
		return 1
	}
	if bo.Uint16(t[2:]) != 42 {
		return 1
	}
	off := int(bo.Uint32(t[4:]))
	if off < 8 || off+2 > len(t) {
		return 1
	}
	n := int(bo.Uint16(t[off:]))
	for e := range n {
		p := off + 2 + 12*e
		if p+12 > len(t) {
			return 1
		}
		if bo.Uint16(t[p:]) != 0x0112 {
			continue
		}
		var v int
		switch bo.Uint16(t[p+2:]) {
		case 3: // SHORT
			v = int(bo.Uint16(t[p+8:]))
		case 4: // LONG
			v = int(bo.Uint32(t[p+8:]))
		default:
			return 1
		}
		if v >= 1 && v <= 8 {
			return v
		}
		return 1
	}
	return 1
}

// pngOrientation returns the EXIF orientation of a PNG stream from its eXIf
// chunk (which Pillow's exif_transpose honours too), or 1.
func pngOrientation(b []byte) int {
	const sigLen = 8
	i := sigLen
	for i+12 <= len(b) {
		n := int(binary.BigEndian.Uint32(b[i:]))
		typ := string(b[i+4 : i+8])
		if n < 0 || n > len(b)-i-12 {
			return 1
		}
		if typ == "eXIf" {
			return exifOrientation(trimExifPrefix(b[i+8 : i+8+n]))
		}
		if typ == "IEND" {
			return 1
		}
		i += 12 + n
	}
	return 1
}

// webpOrientation returns the EXIF orientation of a WebP stream from its
// EXIF chunk, or 1.
func webpOrientation(b []byte) int {
	i := 12 // "RIFF" size "WEBP"
	for i+8 <= len(b) {
		n := int(binary.LittleEndian.Uint32(b[i+4:]))
		if n < 0 || n > len(b)-i-8 {
			return 1
		}
		if string(b[i:i+4]) == "EXIF" {
			return exifOrientation(trimExifPrefix(b[i+8 : i+8+n]))
		}
		i += 8 + n + n&1 // chunks are padded to even sizes
	}
	return 1
}

// trimExifPrefix drops the "Exif\0\0" header some writers put before the
// TIFF structure.
func trimExifPrefix(b []byte) []byte {
	if len(b) >= 6 && string(b[:6]) == "Exif\x00\x00" {
		return b[6:]
	}
	return b
}
