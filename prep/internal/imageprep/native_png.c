//go:build !purego && cgo

// PNG decoding, row by row into the resampler. Go parses the chunks
// (native_png.go); this file inflates the image data (with libdeflate when
// Go hands it the whole stream and room for all rows, with zlib, as Pillow
// does, otherwise or when libdeflate refuses the stream),
// reverses the row filters and converts each row to RGBX, compositing
// transparent pixels onto the background like Image.paste(im, mask=alpha).
// PNG is lossless, so any correct decoder yields Pillow's pixels.

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <libdeflate.h>
#include <emmintrin.h>
#include "native.h"

// blend is Pillow's BLEND: an exact rounding of (bg*(255-a) + c*a) / 255.
static inline uint8_t blend(int c, int a, int bg) {
	unsigned t = (unsigned)(bg * (255 - a) + c * a + 128);
	return (uint8_t)(((t >> 8) + t) >> 8);
}

static inline uint8_t paeth(int a, int b, int c) {
	int p = a + b - c;
	int pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
	if (pa <= pb && pa <= pc) return (uint8_t)a;
	if (pb <= pc) return (uint8_t)b;
	return (uint8_t)c;
}

// paeth_sse2 reverses the Paeth filter a pixel (bpp = 3, 4, 6 or 8 bytes) at
// a time in 16-bit lanes, as libpng's SSE2 code does; SSE2 is part of
// x86-64. Loads read up to 8 bytes: the row buffers are padded for that.
#define PAETH_SSE2(BPP) \
	static void paeth##BPP(uint8_t *row, const uint8_t *prev, size_t n) { \
		const __m128i zero = _mm_setzero_si128(); \
		__m128i a, b = zero, c, d = zero; \
		for (size_t i = 0; i + BPP <= n; i += BPP) { \
			c = b; \
			b = _mm_unpacklo_epi8(_mm_loadl_epi64((const __m128i *)(prev + i)), zero); \
			a = d; \
			d = _mm_unpacklo_epi8(_mm_loadl_epi64((const __m128i *)(row + i)), zero); \
			__m128i pa = _mm_sub_epi16(b, c), pb = _mm_sub_epi16(a, c); \
			__m128i pc = _mm_add_epi16(pa, pb); \
			pa = _mm_max_epi16(pa, _mm_sub_epi16(zero, pa)); \
			pb = _mm_max_epi16(pb, _mm_sub_epi16(zero, pb)); \
			pc = _mm_max_epi16(pc, _mm_sub_epi16(zero, pc)); \
			__m128i smallest = _mm_min_epi16(pc, _mm_min_epi16(pa, pb)); \
			__m128i isa = _mm_cmpeq_epi16(smallest, pa), isb = _mm_cmpeq_epi16(smallest, pb); \
			__m128i bc = _mm_or_si128(_mm_and_si128(isb, b), _mm_andnot_si128(isb, c)); \
			__m128i nearest = _mm_or_si128(_mm_and_si128(isa, a), _mm_andnot_si128(isa, bc)); \
			d = _mm_add_epi16(d, nearest); \
			d = _mm_and_si128(d, _mm_set1_epi16(0xff)); \
			uint8_t out[16]; \
			_mm_storeu_si128((__m128i *)out, _mm_packus_epi16(d, d)); \
			memcpy(row + i, out, BPP); \
		} \
	}
PAETH_SSE2(3)
PAETH_SSE2(4)
PAETH_SSE2(6)
PAETH_SSE2(8)

// unfilter reverses the filter of row (n bytes, bpp bytes per pixel) given
// the previous, already unfiltered row (zeros for the first).
static int unfilter(int type, uint8_t *row, const uint8_t *prev, size_t n, int bpp) {
	size_t i;
	switch (type) {
	case 0:
		break;
	case 1:
		for (i = bpp; i < n; i++) row[i] += row[i - bpp];
		break;
	case 2:
		for (i = 0; i < n; i++) row[i] += prev[i];
		break;
	case 3:
		for (i = 0; i < (size_t)bpp; i++) row[i] += prev[i] >> 1;
		for (; i < n; i++) row[i] += (uint8_t)((row[i - bpp] + prev[i]) >> 1);
		break;
	case 4:
		switch (bpp) {
		case 3: paeth3(row, prev, n); return 0;
		case 4: paeth4(row, prev, n); return 0;
		case 6: paeth6(row, prev, n); return 0;
		case 8: paeth8(row, prev, n); return 0;
		}
		for (i = 0; i < (size_t)bpp; i++) row[i] += prev[i];
		for (; i < n; i++) row[i] += paeth(row[i - bpp], prev[i], prev[i - bpp]);
		break;
	default:
		return -1;
	}
	return 0;
}

// sample returns sample x of a row of depth-bit samples (depth < 8),
// scaled to 8 bits as Pillow's unpackers do (1 bit: *255, 2: *85, 4: *17).
static inline int low_depth_sample(const uint8_t *row, int x, int depth) {
	int per = 8 / depth;
	int shift = 8 - depth * (x % per + 1);
	return (row[x / per] >> shift) & ((1 << depth) - 1);
}

// convert turns one unfiltered row into RGBX.
static void convert(const uint8_t *in, uint8_t *out, int w, const prep_png *png) {
	const int d = png->depth;
	const uint8_t *bg = png->background;
	switch (png->color_type) {
	case 0: // gray
		for (int x = 0; x < w; x++) {
			int raw, v;
			if (d == 16) {
				raw = in[2 * x] << 8 | in[2 * x + 1];
				v = in[2 * x];
			} else if (d == 8) {
				raw = v = in[x];
			} else {
				raw = low_depth_sample(in, x, d);
				v = raw * (255 / ((1 << d) - 1));
			}
			if (png->has_key && raw == png->key[0]) {
				out[4 * x] = bg[0], out[4 * x + 1] = bg[1], out[4 * x + 2] = bg[2];
			} else {
				out[4 * x] = out[4 * x + 1] = out[4 * x + 2] = (uint8_t)v;
			}
		}
		break;
	case 2: // RGB
		for (int x = 0; x < w; x++) {
			int r, g, b, keyed = 0;
			if (d == 16) {
				const uint8_t *p = in + 6 * x;
				r = p[0], g = p[2], b = p[4];
				keyed = png->has_key && (p[0] << 8 | p[1]) == png->key[0] && (p[2] << 8 | p[3]) == png->key[1] &&
					(p[4] << 8 | p[5]) == png->key[2];
			} else {
				const uint8_t *p = in + 3 * x;
				r = p[0], g = p[1], b = p[2];
				keyed = png->has_key && r == png->key[0] && g == png->key[1] && b == png->key[2];
			}
			if (keyed) {
				out[4 * x] = bg[0], out[4 * x + 1] = bg[1], out[4 * x + 2] = bg[2];
			} else {
				out[4 * x] = (uint8_t)r, out[4 * x + 1] = (uint8_t)g, out[4 * x + 2] = (uint8_t)b;
			}
		}
		break;
	case 3: // palette, already composited (png->palette is RGBX)
		for (int x = 0; x < w; x++) {
			int i = d == 8 ? in[x] : low_depth_sample(in, x, d);
			memcpy(out + 4 * x, png->palette + 4 * i, 4);
		}
		break;
	case 4: // gray + alpha
		for (int x = 0; x < w; x++) {
			int v = d == 16 ? in[4 * x] : in[2 * x];
			int a = d == 16 ? in[4 * x + 2] : in[2 * x + 1];
			out[4 * x] = blend(v, a, bg[0]);
			out[4 * x + 1] = blend(v, a, bg[1]);
			out[4 * x + 2] = blend(v, a, bg[2]);
		}
		break;
	case 6: // RGBA
		for (int x = 0; x < w; x++) {
			const uint8_t *p = d == 16 ? in + 8 * x : in + 4 * x;
			const int s = d == 16 ? 2 : 1;
			int a = p[3 * s];
			out[4 * x] = blend(p[0], a, bg[0]);
			out[4 * x + 1] = blend(p[s], a, bg[1]);
			out[4 * x + 2] = blend(p[2 * s], a, bg[2]);
		}
		break;
	}
}

// inflate_row inflates exactly n bytes into buf, moving on through the IDAT
// chunks. It returns 0 on success.
static int inflate_row(z_stream *zs, uint8_t *buf, size_t n, const unsigned char *data,
	const int32_t *chunks, int nchunks, int *next) {
	zs->next_out = buf;
	zs->avail_out = (uInt)n;
	while (zs->avail_out > 0) {
		if (zs->avail_in == 0) {
			if (*next >= nchunks) return -1; // truncated
			zs->next_in = (Bytef *)(data + chunks[2 * *next]);
			zs->avail_in = (uInt)chunks[2 * *next + 1];
			(*next)++;
			continue;
		}
		int rc = inflate(zs, Z_NO_FLUSH);
		if (rc == Z_STREAM_END && zs->avail_out > 0) return -1;
		if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) return -1;
		if (rc == Z_BUF_ERROR && zs->avail_in > 0) return -1;
	}
	return 0;
}

// decompressor is this thread's libdeflate decompressor: a cgo call runs on
// one thread from start to end, so no two calls share it.
static __thread struct libdeflate_decompressor *decompressor;

// inflate_all inflates the zlib stream z into exactly n bytes of raw. It
// returns 0 only when the stream is complete, valid (Adler-32 included) and
// holds exactly n bytes; anything else goes to the streaming zlib path,
// which then decides as before (it reads only the bytes the rows need).
static int inflate_all(const unsigned char *z, size_t zlen, uint8_t *raw, size_t n) {
	if (decompressor == NULL && (decompressor = libdeflate_alloc_decompressor()) == NULL) return -1;
	size_t got = 0;
	if (libdeflate_zlib_decompress(decompressor, z, zlen, raw, n, &got) != LIBDEFLATE_SUCCESS) return -1;
	return got == n ? 0 : -1;
}

void prep_png_process(const unsigned char *data, const int32_t *chunks, int nchunks,
	const unsigned char *z, size_t zlen, uint8_t *raw, prep_png png,
	uint8_t *work, uint8_t *lines, prep_plan plan, prep_result *res) {
	const prep_plan *pl = &plan;
	const int w = png.width;
	const int channels[7] = {1, 0, 3, 1, 2, 0, 4};
	const int bits = channels[png.color_type] * png.depth;
	const size_t rowbytes = ((size_t)w * bits + 7) / 8;
	const int bpp = bits < 8 ? 1 : bits / 8;
	const size_t stride = (size_t)w * 4;
	uint8_t *cur = work, *prev = work + rowbytes + 1;
	z_stream zs;
	int next = 0, pending = 0;

	memset(res, 0, sizeof(*res));
	memset(&zs, 0, sizeof(zs));
	if (raw != NULL && inflate_all(z, zlen, raw, (size_t)png.height * (rowbytes + 1)) != 0) {
		raw = NULL;
	}
	if (raw == NULL && inflateInit(&zs) != Z_OK) {
		res->code = PREP_INVALID;
		strcpy(res->msg, "zlib initialization failed");
		return;
	}
	memset(prev, 0, rowbytes + 1);
	for (int y = 0; y < png.height; y++) {
		// The filter byte, then the row.
		if (raw != NULL) {
			cur = raw + (size_t)y * (rowbytes + 1);
		} else if (inflate_row(&zs, cur, rowbytes + 1, data, chunks, nchunks, &next) != 0) {
			res->code = PREP_INVALID;
			snprintf(res->msg, sizeof(res->msg), "image data: %s", zs.msg != NULL ? zs.msg : "truncated");
			inflateEnd(&zs);
			return;
		}
		if (unfilter(cur[0], cur + 1, prev + 1, rowbytes, bpp) != 0) {
			if (raw == NULL) inflateEnd(&zs);
			res->code = PREP_INVALID;
			strcpy(res->msg, "unknown row filter");
			return;
		}
		// prev is now the row just unfiltered; in raw, rows stay in place.
		uint8_t *t = prev;
		prev = cur;
		cur = raw != NULL ? NULL : t;
		// Rows outside y0..y1-1 only need inflating and unfiltering.
		if (y < pl->y0 || y >= pl->y1) {
			continue;
		}
		uint8_t *row = lines + (size_t)pending * stride;
		convert(prev + 1, row, w, &png);
		if (pl->hk == NULL) {
			memcpy(pl->tmp + (size_t)(y - pl->y0) * pl->tstride, row + (size_t)pl->cx * 4, (size_t)pl->w * 4);
			continue;
		}
		pending++;
		if (pending == PREP_LINES || y + 1 == pl->y1) {
			prep_hpass_rows(lines, (ptrdiff_t)stride, pending, y + 1 - pending - pl->y0, pl);
			pending = 0;
		}
	}
	if (raw == NULL) inflateEnd(&zs);
	prep_vpass(pl->tmp, pl->tstride, pl);
	res->code = PREP_OK;
}
