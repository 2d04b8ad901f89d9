//go:build purego || !cgo

package imageprep

import "strings"

// jpegMaxLevelDiff bounds image/jpeg against libjpeg-turbo after resizing.
// Chroma upsampling and color conversion are libjpeg's (ycc.go), so what
// differs is the IDCT: image/jpeg's rounds differently from libjpeg's
// islow, by a level or two per pixel before resizing.
const jpegMaxLevelDiff = 3

// jpegExoticMaxLevelDiff bounds JPEGs whose color conversion image/jpeg
// does itself: Adobe RGB with subsampled components and YCCK, where it
// replicates samples that libjpeg interpolates, which shows at edges.
// Where an axis is not downscaled nothing averages that away:
// jpegExoticUnshrunkMaxLevelDiff.
const (
	jpegExoticMaxLevelDiff         = 40
	jpegExoticUnshrunkMaxLevelDiff = 100
)

func jpegLevelBound(path string, unshrunk bool) int {
	if strings.Contains(path, "rgb.jpeg") || strings.Contains(path, "ycck") {
		if unshrunk {
			return jpegExoticUnshrunkMaxLevelDiff
		}
		return jpegExoticMaxLevelDiff
	}
	return jpegMaxLevelDiff
}
