//go:build !purego && cgo

package imageprep

// jpegMaxLevelDiff is zero: libjpeg-turbo with Pillow's settings decodes to
// the same pixels as Pillow.
const jpegMaxLevelDiff = 0

func jpegLevelBound(string, bool) int { return jpegMaxLevelDiff }
