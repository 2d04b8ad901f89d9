package imageprep

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkStages times decoding (to a full RGBX image) and resampling
// separately, and each resampler.
func BenchmarkStages(b *testing.B) {
	p, err := New(resnet50Spec(), Limits{})
	if err != nil {
		b.Fatal(err)
	}
	p.native = false // decode to an image instead of streaming
	for _, name := range benchImages {
		img, err := os.ReadFile(filepath.Join(repoRoot, "testdata/images", name))
		if err != nil {
			b.Fatal(err)
		}
		dst := make([]float32, p.TensorLen())
		b.Run("decode/"+name, func(b *testing.B) {
			b.ReportAllocs()
			defer cpuTimer(b)()
			for b.Loop() {
				_, buf, _, err := p.decode(img, dst)
				if err != nil {
					b.Fatal(err)
				}
				putBuf(buf)
			}
		})
		src, buf, _, err := p.decode(img, dst)
		if err != nil {
			b.Fatal(err)
		}
		for _, native := range []bool{false, true} {
			if native && !nativeResample {
				continue
			}
			b.Run(map[bool]string{false: "resample-go/", true: "resample-native/"}[native]+name, func(b *testing.B) {
				b.ReportAllocs()
				defer cpuTimer(b)()
				pl := p.plan(src.w, src.h)
				for b.Loop() {
					if native {
						p.resampleNative(&src, &pl, dst)
					} else {
						p.resampleGo(&src, &pl, dst)
					}
				}
			})
		}
		putBuf(buf)
	}
}
