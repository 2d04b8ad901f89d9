//go:build !purego && cgo

// The resampler of resampleGo (resample.go) in C: the same integer
// arithmetic, so the same results, with AVX2 chosen at run time. Sums are
// formed in another order than Pillow's; int32 addition makes that exact.
// Weights are split as w = hi*2048 + lo (hi and lo fit int16) so that 16-bit
// multiply-adds do the work: sum(v*w) = (sum(v*hi) << 11) + sum(v*lo).

#include <string.h>
#include <immintrin.h>
#include "native.h"

#define PREP_BITS 22
#define PREP_HALF (1 << (PREP_BITS - 1))

static inline uint8_t prep_clip8(int32_t v) {
	if (v >= (1 << PREP_BITS << 8)) return 255;
	if (v <= 0) return 0;
	return (uint8_t)(v >> PREP_BITS);
}

// prep_have_avx2 reads the CPU features libgcc detected at start-up.
static int prep_have_avx2(void) { return __builtin_cpu_supports("avx2"); }

// ---- portable C ----

static void hpass_c(const uint8_t *in, uint8_t *out, const prep_plan *pl) {
	for (int i = 0; i < pl->w; i++) {
		const uint8_t *p = in + (size_t)pl->hstart[i] * 4;
		const int32_t *kk = pl->hk + (size_t)i * pl->hkstride;
		int32_t s0 = PREP_HALF, s1 = PREP_HALF, s2 = PREP_HALF;
		for (int x = 0; x < pl->hn[i]; x++) {
			s0 += p[4 * x] * kk[x];
			s1 += p[4 * x + 1] * kk[x];
			s2 += p[4 * x + 2] * kk[x];
		}
		out[4 * i] = prep_clip8(s0);
		out[4 * i + 1] = prep_clip8(s1);
		out[4 * i + 2] = prep_clip8(s2);
		out[4 * i + 3] = 0;
	}
}

static void vrow_c(const uint8_t *in, ptrdiff_t stride, int nbytes, int nn, const int32_t *kk, uint8_t *out) {
	for (int i = 0; i < nbytes; i++) {
		int32_t s = PREP_HALF;
		const uint8_t *p = in + i;
		for (int j = 0; j < nn; j++, p += stride) {
			s += *p * kk[j];
		}
		out[i] = prep_clip8(s);
	}
}

static void normalize_c(const uint8_t *row, int from, int w, const float *lut, float *d0, float *d1, float *d2) {
	for (int x = from; x < w; x++) {
		d0[x] = lut[row[4 * x]];
		d1[x] = lut[256 + row[4 * x + 1]];
		d2[x] = lut[512 + row[4 * x + 2]];
	}
}

// ---- AVX2 ----

// hpass4_avx2 resamples four rows (in[r] -> out[r]) with the fixed-tap
// weights; the weights, loaded once for the four rows, are what limits the
// speed for long filters.
__attribute__((target("avx2")))
static void hpass4_avx2(const uint8_t *const in[4], uint8_t *const out[4], const prep_plan *pl) {
	const __m128i half = _mm_set1_epi32(PREP_HALF);
	// Four RGBX pixels -> words (r0 r1 g0 g1 b0 b1 x0 x1 | r2 r3 g2 g3 b2 b3 x2 x3).
	const __m256i shuf = _mm256_setr_epi8(
		0, -1, 4, -1, 1, -1, 5, -1, 2, -1, 6, -1, 3, -1, 7, -1,
		8, -1, 12, -1, 9, -1, 13, -1, 10, -1, 14, -1, 11, -1, 15, -1);
	const int ktaps = pl->hktaps;
	for (int i = 0; i < pl->w; i++) {
		const size_t off = (size_t)pl->hfstart[i] * 4;
		const uint8_t *p0 = in[0] + off, *p1 = in[1] + off, *p2 = in[2] + off, *p3 = in[3] + off;
		const __m256i *kk = (const __m256i *)(pl->hkw + (size_t)i * ktaps * 8);
		__m256i h0 = _mm256_setzero_si256(), l0 = h0, h1 = h0, l1 = h0, h2 = h0, l2 = h0, h3 = h0, l3 = h0;
		for (int x = 0; x < ktaps; x += 4, kk += 2) {
			const __m256i khi = _mm256_loadu_si256(kk);
			const __m256i klo = _mm256_loadu_si256(kk + 1);
#define ROW(p, h, l) do { \
				__m256i v_ = _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(p + 4 * x))), shuf); \
				h = _mm256_add_epi32(h, _mm256_madd_epi16(v_, khi)); \
				l = _mm256_add_epi32(l, _mm256_madd_epi16(v_, klo)); \
			} while (0)
			ROW(p0, h0, l0);
			ROW(p1, h1, l1);
			ROW(p2, h2, l2);
			ROW(p3, h3, l3);
#undef ROW
		}
#define SUM(h, l) ({ \
			__m256i a_ = _mm256_add_epi32(_mm256_slli_epi32(h, 11), l); \
			__m128i s_ = _mm_add_epi32(_mm256_castsi256_si128(a_), _mm256_extracti128_si256(a_, 1)); \
			_mm_srai_epi32(_mm_add_epi32(s_, half), PREP_BITS); \
		})
		__m128i s0 = SUM(h0, l0), s1 = SUM(h1, l1), s2 = SUM(h2, l2), s3 = SUM(h3, l3);
#undef SUM
		// Saturating packs clip to 0..255 exactly as prep_clip8 does.
		__m128i r = _mm_packus_epi16(_mm_packs_epi32(s0, s1), _mm_packs_epi32(s2, s3));
		*(int32_t *)(out[0] + 4 * i) = _mm_cvtsi128_si32(r);
		*(int32_t *)(out[1] + 4 * i) = _mm_extract_epi32(r, 1);
		*(int32_t *)(out[2] + 4 * i) = _mm_extract_epi32(r, 2);
		*(int32_t *)(out[3] + 4 * i) = _mm_extract_epi32(r, 3);
	}
}

// madd_pair accumulates 16 bytes of two rows (a, b) times a packed weight
// pair into hi/lo sums: L covers bytes 0-3 and 8-11, H bytes 4-7 and 12-15.
#define MADD_PAIR(a, b, khi, klo, hL, lL, hH, lH) do { \
		__m256i A_ = _mm256_cvtepu8_epi16(a), B_ = _mm256_cvtepu8_epi16(b); \
		__m256i L_ = _mm256_unpacklo_epi16(A_, B_), H_ = _mm256_unpackhi_epi16(A_, B_); \
		hL = _mm256_add_epi32(hL, _mm256_madd_epi16(L_, khi)); \
		lL = _mm256_add_epi32(lL, _mm256_madd_epi16(L_, klo)); \
		hH = _mm256_add_epi32(hH, _mm256_madd_epi16(H_, khi)); \
		lH = _mm256_add_epi32(lH, _mm256_madd_epi16(H_, klo)); \
	} while (0)

__attribute__((target("avx2")))
static inline __m256i finish_words(__m256i hL, __m256i lL, __m256i hH, __m256i lH) {
	const __m256i half = _mm256_set1_epi32(PREP_HALF);
	__m256i L = _mm256_srai_epi32(_mm256_add_epi32(_mm256_add_epi32(_mm256_slli_epi32(hL, 11), lL), half), PREP_BITS);
	__m256i H = _mm256_srai_epi32(_mm256_add_epi32(_mm256_add_epi32(_mm256_slli_epi32(hH, 11), lH), half), PREP_BITS);
	return _mm256_packs_epi32(L, H); // words of bytes 0-7 | 8-15, in order
}

// vrow_avx2 computes nbytes (a multiple of 32) bytes of one output row from
// nn rows of in, taking rows in pairs.
__attribute__((target("avx2")))
static void vrow_avx2(const uint8_t *in, ptrdiff_t stride, int nbytes, int nn, const int32_t *kp, uint8_t *out) {
	for (int i = 0; i < nbytes; i += 32) {
		__m256i z = _mm256_setzero_si256();
		__m256i hL0 = z, lL0 = z, hH0 = z, lH0 = z, hL1 = z, lL1 = z, hH1 = z, lH1 = z;
		const uint8_t *p = in + i;
		for (int j = 0; j < nn; j += 2, p += 2 * stride) {
			// For odd nn the last pair's second weight is zero; read the
			// first row again rather than one past the end.
			const uint8_t *q = j + 1 < nn ? p + stride : p;
			__m256i khi = _mm256_set1_epi32(kp[j]);
			__m256i klo = _mm256_set1_epi32(kp[j + 1]);
			MADD_PAIR(_mm_loadu_si128((const __m128i *)p), _mm_loadu_si128((const __m128i *)q), khi, klo, hL0, lL0, hH0, lH0);
			MADD_PAIR(_mm_loadu_si128((const __m128i *)(p + 16)), _mm_loadu_si128((const __m128i *)(q + 16)), khi, klo, hL1, lL1, hH1, lH1);
		}
		__m256i w0 = finish_words(hL0, lL0, hH0, lH0); // bytes 0-7 | 8-15
		__m256i w1 = finish_words(hL1, lL1, hH1, lH1); // bytes 16-23 | 24-31
		__m256i r = _mm256_packus_epi16(w0, w1);        // 0-7 16-23 | 8-15 24-31
		_mm256_storeu_si256((__m256i *)(out + i), _mm256_permute4x64_epi64(r, 0xD8));
	}
}

// normalize_avx2 writes pixels 0 .. (w & ~7)-1 of an RGBX row as
// (v*scale - mean) / std, in the same float32 steps as the lookup table.
__attribute__((target("avx2")))
static int normalize_avx2(const uint8_t *row, int w, const float *norm, float *d0, float *d1, float *d2) {
	// Byte c of each pixel into the low byte of its 32-bit lane.
#define SEL(c) _mm256_setr_epi8(c, -1, -1, -1, 4 + c, -1, -1, -1, 8 + c, -1, -1, -1, 12 + c, -1, -1, -1, \
		c, -1, -1, -1, 4 + c, -1, -1, -1, 8 + c, -1, -1, -1, 12 + c, -1, -1, -1)
	const __m256i sel0 = SEL(0), sel1 = SEL(1), sel2 = SEL(2);
#undef SEL
	const __m256 scale = _mm256_set1_ps(norm[0]);
	const __m256 m0 = _mm256_set1_ps(norm[1]), m1 = _mm256_set1_ps(norm[2]), m2 = _mm256_set1_ps(norm[3]);
	const __m256 s0 = _mm256_set1_ps(norm[4]), s1 = _mm256_set1_ps(norm[5]), s2 = _mm256_set1_ps(norm[6]);
	int x = 0;
	for (; x + 8 <= w; x += 8) {
		__m256i v = _mm256_loadu_si256((const __m256i *)(row + 4 * x));
		__m256 f0 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_shuffle_epi8(v, sel0)), scale);
		__m256 f1 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_shuffle_epi8(v, sel1)), scale);
		__m256 f2 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_shuffle_epi8(v, sel2)), scale);
		_mm256_storeu_ps(d0 + x, _mm256_div_ps(_mm256_sub_ps(f0, m0), s0));
		_mm256_storeu_ps(d1 + x, _mm256_div_ps(_mm256_sub_ps(f1, m1), s1));
		_mm256_storeu_ps(d2 + x, _mm256_div_ps(_mm256_sub_ps(f2, m2), s2));
	}
	return x;
}

// ---- passes ----

void prep_hpass_rows(const uint8_t *src, ptrdiff_t sstride, int n, int first, const prep_plan *pl) {
	const int avx2 = !pl->portable && prep_have_avx2() && pl->hktaps > 0;
	int y = 0;
	if (avx2) {
		for (; y < n; y += 4) {
			// A short last group repeats its last row.
			const uint8_t *in[4];
			uint8_t *out[4];
			for (int r = 0; r < 4; r++) {
				int yy = y + r < n ? y + r : n - 1;
				in[r] = src + yy * sstride;
				out[r] = pl->tmp + (size_t)(first + yy) * pl->tstride;
			}
			hpass4_avx2(in, out, pl);
		}
	}
	for (; y < n; y++) {
		hpass_c(src + y * sstride, pl->tmp + (size_t)(first + y) * pl->tstride, pl);
	}
}

void prep_vpass(const uint8_t *in, ptrdiff_t istride, const prep_plan *pl) {
	const int avx2 = !pl->portable && prep_have_avx2();
	const int w = pl->w;
	for (int y = 0; y < pl->h; y++) {
		const uint8_t *row;
		if (pl->vk != NULL) {
			const uint8_t *first = in + (ptrdiff_t)(pl->vstart[y] - pl->y0) * istride;
			if (avx2) {
				vrow_avx2(first, istride, pl->tstride, pl->vn[y], pl->vkp + (size_t)y * pl->vkstride, pl->rowbuf);
			} else {
				vrow_c(first, istride, w * 4, pl->vn[y], pl->vk + (size_t)y * pl->vkstride, pl->rowbuf);
			}
			row = pl->rowbuf;
		} else {
			row = in + (ptrdiff_t)(pl->cy + y - pl->y0) * istride;
		}
		const size_t off = (size_t)y * pl->dstride;
		float *d0 = pl->dst[0] + off, *d1 = pl->dst[1] + off, *d2 = pl->dst[2] + off;
		int x = avx2 ? normalize_avx2(row, w, pl->norm, d0, d1, d2) : 0;
		normalize_c(row, x, w, pl->lut, d0, d1, d2);
	}
}

void prep_resample(const uint8_t *src, ptrdiff_t sstride, prep_plan plan) {
	const prep_plan *pl = &plan;
	const uint8_t *rows = src + (ptrdiff_t)pl->y0 * sstride;
	if (pl->hk != NULL) {
		prep_hpass_rows(rows, sstride, pl->y1 - pl->y0, 0, pl);
		prep_vpass(pl->tmp, pl->tstride, pl);
	} else {
		prep_vpass(rows + (size_t)pl->cx * 4, sstride, pl);
	}
}
