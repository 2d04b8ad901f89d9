package imageprep

// orient applies EXIF orientation o (2..8) to src, writing into buf (at
// least 4*w*h bytes), the way Pillow's ImageOps.exif_transpose does.
func orient(src *rgbImage, o int, buf []byte) rgbImage {
	w, h := src.w, src.h
	dw, dh := w, h
	if o >= 5 {
		dw, dh = h, w
	}
	dst := rgbImage{w: dw, h: dh, stride: dw * pixelSize, pix: buf}
	// For each destination pixel (x, y), the source pixel is
	// (sx0 + x*dxx + y*dxy, sy0 + x*dyx + y*dyy).
	var sx0, sy0, dxx, dxy, dyx, dyy int
	switch o {
	case 2: // FLIP_LEFT_RIGHT
		sx0, dxx, dyy = w-1, -1, 1
	case 3: // ROTATE_180
		sx0, sy0, dxx, dyy = w-1, h-1, -1, -1
	case 4: // FLIP_TOP_BOTTOM
		sy0, dxx, dyy = h-1, 1, -1
	case 5: // TRANSPOSE
		dxy, dyx = 1, 1
	case 6: // ROTATE_270 (90° clockwise)
		sy0, dxy, dyx = h-1, 1, -1
	case 7: // TRANSVERSE
		sx0, sy0, dxy, dyx = w-1, h-1, -1, -1
	case 8: // ROTATE_90 (90° counter-clockwise)
		sx0, dxy, dyx = w-1, -1, 1
	default:
		for y := range h {
			copy(dst.pix[y*dst.stride:], src.row(y))
		}
		return dst
	}
	// Step through the source with precomputed byte offsets.
	stepX := dxx*pixelSize + dyx*src.stride
	stepY := dxy*pixelSize + dyy*src.stride
	base := sx0*pixelSize + sy0*src.stride
	for y := range dh {
		s := base + y*stepY
		row := dst.row(y)
		for x := 0; x < len(row); x += pixelSize {
			copy(row[x:x+pixelSize], src.pix[s:s+pixelSize])
			s += stepX
		}
	}
	return dst
}
