//go:build !purego && cgo

// Declarations shared by the C half of the cgo build: libjpeg-turbo
// decoding (native_jpeg.c) and the SIMD resampler (native_resample.c).

#ifndef PREP_NATIVE_H
#define PREP_NATIVE_H

#include <stddef.h>
#include <stdint.h>

// prep_plan is one resampling job, filled in by Go (resamplePlan) for an
// image of RGBX rows.
typedef struct {
	int w, h;   // output size
	int cx, cy; // crop offsets of a skipped pass (cy in source rows)
	int y0, y1; // source rows used: y0 .. y1-1

	// Horizontal pass (hk == NULL: skipped). Outputs i reads hn[i] pixels
	// from hstart[i] with weights hk[i*hkstride ...]; the fixed-tap form
	// (hktaps > 0) reads hktaps pixels from hfstart[i] with split 16-bit
	// weights hkw.
	int hkstride;
	const int32_t *hstart, *hn, *hk;
	int hktaps;
	const int32_t *hfstart;
	const int16_t *hkw;

	// Vertical pass (vk == NULL: skipped), likewise, with vkp holding the
	// weights of taps (2p, 2p+1) split and packed as 16-bit pairs: hi pair
	// at [2p], lo pair at [2p+1].
	int vkstride;
	const int32_t *vstart, *vn, *vk, *vkp;

	// Normalization: lut is 3 x 256 floats for R, G, B; norm is scale, then
	// mean and std for R, G, B; dst the first output value of the planes
	// R, G and B go to, whose rows are dstride floats apart (w, or more
	// when the output is a window of a larger, padded plane).
	const float *lut;
	const float *norm;
	float *dst[3];
	int dstride;

	// Work buffers: tmp holds (y1-y0) rows of tstride bytes (+ padding),
	// rowbuf one row.
	uint8_t *tmp;
	int tstride;
	uint8_t *rowbuf;

	// portable selects the plain C code even where AVX2 is available
	// (tests use it to check that code too).
	int portable;
} prep_plan;

// prep_resample resamples RGBX rows y0..y1-1 (src points at row 0). The
// entry points from Go take the plan by value: cgo lets Go pass a struct of
// pointers to Go memory that way, not a pointer to one.
void prep_resample(const uint8_t *src, ptrdiff_t sstride, prep_plan plan);

// prep_hpass_rows runs the horizontal pass on n rows (n <= 2 unless the
// caller knows better): row i of src goes to row (first+i) of plan->tmp.
void prep_hpass_rows(const uint8_t *src, ptrdiff_t sstride, int n, int first, const prep_plan *plan);

// prep_vpass runs the vertical pass and normalization on rows already in
// plan->tmp (or, when the horizontal pass is skipped, on in).
void prep_vpass(const uint8_t *in, ptrdiff_t istride, const prep_plan *plan);

enum {
	PREP_OK = 0,
	PREP_INVALID = 1,
	PREP_TOO_LARGE = 2,
	PREP_NEED_BUFFER = 3,
	PREP_SIZE_CHANGED = 4,
};

typedef struct {
	int width, height;
	int code;
	char msg[200];
} prep_result;

// PREP_LINES is the number of rows prep_jpeg_process buffers.
#define PREP_LINES 4

void prep_jpeg_decode(const unsigned char *data, unsigned long len, unsigned char *out, size_t outcap,
	long long max_pixels, prep_result *res);

void prep_jpeg_process(const unsigned char *data, unsigned long len, int width, int height,
	uint8_t *lines, prep_plan plan, prep_result *res);

// prep_png describes a non-interlaced PNG whose chunks Go has parsed.
typedef struct {
	int width, height;
	int depth, color_type;
	// palette: up to 256 RGBX entries, already composited onto the
	// background (color type 3).
	uint8_t palette[256 * 4];
	// key: the tRNS color of color types 0 (key[0]) and 2, at the image's
	// bit depth.
	int has_key;
	int key[3];
	uint8_t background[3];
} prep_png;

// prep_png_process inflates the image data (chunks: offset, length pairs
// into data) and resamples it row by row. work holds two rows of
// (width*8 + 1) bytes plus 16 bytes of padding; lines PREP_LINES RGBX rows.
// When raw is not NULL, z holds the whole zlib stream (zlen bytes, the
// IDAT chunks' data in order) and raw room for every row with its filter
// byte plus 16 bytes of padding: the stream is then inflated at once with
// libdeflate, falling back to streaming zlib if libdeflate refuses it.
void prep_png_process(const unsigned char *data, const int32_t *chunks, int nchunks,
	const unsigned char *z, size_t zlen, uint8_t *raw, prep_png png,
	uint8_t *work, uint8_t *lines, prep_plan plan, prep_result *res);

#endif
