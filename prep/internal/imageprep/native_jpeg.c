//go:build !purego && cgo

// JPEG decoding with libjpeg-turbo, the library Pillow uses, with the
// settings Pillow uses (islow IDCT, fancy upsampling, libjpeg's color
// conversion), so decoded pixels are bit-identical to Pillow's.

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <jpeglib.h>
#include <jerror.h>
#include "native.h"

typedef struct {
	struct jpeg_error_mgr pub;
	jmp_buf jump;
	int too_many_scans;
} prep_err;

static void prep_error_exit(j_common_ptr cinfo) {
	prep_err *e = (prep_err *)cinfo->err;
	longjmp(e->jump, 1);
}

// prep_emit_message treats a truncated stream as an error, as Pillow does
// ("image file is truncated"); other warnings (extraneous bytes, corrupt
// data libjpeg recovers from) are ignored, as Pillow ignores them.
static void prep_emit_message(j_common_ptr cinfo, int level) {
	if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) {
		prep_err *e = (prep_err *)cinfo->err;
		longjmp(e->jump, 1);
	}
}

static void prep_output_message(j_common_ptr cinfo) {}

// PREP_MAX_SCANS bounds the scans of a progressive JPEG: each scan costs a
// pass over the image, so thousands of tiny scans make a small file take
// seconds to decode. 500 is TurboJPEG's TJFLAG_LIMITSCANS limit; encoders
// write about 10.
#define PREP_MAX_SCANS 500

// PREP_MAX_MEMORY bounds libjpeg's own allocations (a progressive JPEG
// keeps all its coefficients: 2 bytes per sample). Beyond it libjpeg fails
// cleanly ("backing store not supported") instead of exhausting memory
// when no pixel limit is set.
#define PREP_MAX_MEMORY (1L << 30)

static void prep_progress(j_common_ptr cinfo) {
	if (((j_decompress_ptr)cinfo)->input_scan_number > PREP_MAX_SCANS) {
		prep_err *e = (prep_err *)cinfo->err;
		e->too_many_scans = 1;
		longjmp(e->jump, 1);
	}
}

// cmyk_rgbx is Pillow's "CMYK;I" unpacking (Pillow assumes Adobe's
// inverted CMYK) followed by its cmyk2rgb conversion: nk - MULDIV255(c, nk).
static void cmyk_rgbx(const unsigned char *in, unsigned char *out, int w) {
	for (int x = 0; x < w; x++) {
		int nk = in[4 * x + 3]; // 255 - (255 - k)
		for (int c = 0; c < 3; c++) {
			int v = 255 - in[4 * x + c];
			int t = v * nk + 128;
			int r = nk - (((t >> 8) + t) >> 8);
			out[4 * x + c] = r < 0 ? 0 : (unsigned char)r;
		}
		out[4 * x + 3] = 255;
	}
}

// start sets up cinfo (error handling done by the caller) and reads the
// header. It returns 0 when decoding can go on.
static int start(struct jpeg_decompress_struct *cinfo, struct jpeg_progress_mgr *progress,
	const unsigned char *data, unsigned long len, long long max_pixels, prep_result *res) {
	jpeg_create_decompress(cinfo);
	cinfo->mem->max_memory_to_use = PREP_MAX_MEMORY;
	progress->progress_monitor = prep_progress;
	cinfo->progress = progress;
	jpeg_mem_src(cinfo, data, len);
	jpeg_read_header(cinfo, TRUE);
	res->width = (int)cinfo->image_width;
	res->height = (int)cinfo->image_height;
	if (max_pixels > 0 && (long long)cinfo->image_width * cinfo->image_height > max_pixels) {
		res->code = PREP_TOO_LARGE;
		return 1;
	}
	// RGBX output holds the same values as Pillow's JCS_RGB, one pixel per
	// 32-bit lane.
	cinfo->out_color_space = cinfo->num_components == 4 ? JCS_CMYK : JCS_EXT_RGBX;
	return 0;
}

#define PREP_JPEG_SETUP(cinfo, err, res, cmyk) \
	memset(res, 0, sizeof(*res)); \
	cinfo.err = jpeg_std_error(&err.pub); \
	err.pub.error_exit = prep_error_exit; \
	err.pub.emit_message = prep_emit_message; \
	err.pub.output_message = prep_output_message; \
	err.too_many_scans = 0; \
	if (setjmp(err.jump)) { \
		if (err.too_many_scans) { \
			snprintf(res->msg, sizeof(res->msg), "progressive JPEG has more than %d scans", PREP_MAX_SCANS); \
		} else { \
			err.pub.format_message((j_common_ptr)&cinfo, res->msg); \
		} \
		res->code = PREP_INVALID; \
		jpeg_destroy_decompress(&cinfo); \
		free(cmyk); \
		return; \
	}

// read_row decodes the next scanline into row (RGBX).
static void read_row(struct jpeg_decompress_struct *cinfo, unsigned char *row, unsigned char *cmyk) {
	JSAMPROW rows[1] = {cmyk != NULL ? cmyk : row};
	if (jpeg_read_scanlines(cinfo, rows, 1) != 1) {
		ERREXIT(cinfo, JERR_INPUT_EOF);
	}
	if (cmyk != NULL) {
		cmyk_rgbx(cmyk, row, (int)cinfo->output_width);
	}
}

static unsigned char *alloc_cmyk(struct jpeg_decompress_struct *cinfo) {
	if (cinfo->out_color_space != JCS_CMYK) {
		return NULL;
	}
	unsigned char *p = malloc((size_t)cinfo->output_width * 4);
	if (p == NULL) {
		ERREXIT1(cinfo, JERR_OUT_OF_MEMORY, 0);
	}
	return p;
}

// prep_jpeg_decode decodes data into out as RGBX (stride 4*width). When out
// is too small (outcap < 4*width*height), it returns PREP_NEED_BUFFER with
// the size filled in and decodes nothing; images with more than max_pixels
// pixels (if > 0) are refused from the header alone.
void prep_jpeg_decode(const unsigned char *data, unsigned long len, unsigned char *out, size_t outcap,
	long long max_pixels, prep_result *res) {
	struct jpeg_decompress_struct cinfo;
	struct jpeg_progress_mgr progress;
	prep_err err;
	unsigned char *volatile cmyk = NULL;

	PREP_JPEG_SETUP(cinfo, err, res, cmyk)
	if (start(&cinfo, &progress, data, len, max_pixels, res) != 0) {
		jpeg_destroy_decompress(&cinfo);
		return;
	}
	if ((size_t)cinfo.image_width * cinfo.image_height * 4 > outcap) {
		res->code = PREP_NEED_BUFFER;
		jpeg_destroy_decompress(&cinfo);
		return;
	}
	jpeg_start_decompress(&cinfo);
	cmyk = alloc_cmyk(&cinfo);
	size_t stride = (size_t)cinfo.output_width * 4;
	while (cinfo.output_scanline < cinfo.output_height) {
		read_row(&cinfo, out + (size_t)cinfo.output_scanline * stride, cmyk);
	}
	jpeg_finish_decompress(&cinfo);
	jpeg_destroy_decompress(&cinfo);
	free(cmyk);
	res->code = PREP_OK;
}

// prep_jpeg_process decodes data row by row, resampling each group of
// PREP_LINES rows the plan needs as soon as they are decoded, so the full
// image is never stored. lines holds PREP_LINES rows of 4*width bytes plus
// padding. It returns
// PREP_SIZE_CHANGED if the image is not width x height after all.
void prep_jpeg_process(const unsigned char *data, unsigned long len, int width, int height,
	uint8_t *lines, prep_plan plan, prep_result *res) {
	const prep_plan *pl = &plan;
	struct jpeg_decompress_struct cinfo;
	struct jpeg_progress_mgr progress;
	prep_err err;
	unsigned char *volatile cmyk = NULL;

	PREP_JPEG_SETUP(cinfo, err, res, cmyk)
	if (start(&cinfo, &progress, data, len, 0, res) != 0) {
		jpeg_destroy_decompress(&cinfo);
		return;
	}
	if (res->width != width || res->height != height) {
		res->code = PREP_SIZE_CHANGED;
		jpeg_destroy_decompress(&cinfo);
		return;
	}
	jpeg_start_decompress(&cinfo);
	cmyk = alloc_cmyk(&cinfo);
	const size_t stride = (size_t)width * 4;
	// Rows before y0 are decoded and dropped; rows y0..y1-1 are
	// resampled in groups (or copied, cropped, when there is no horizontal
	// pass).
	int pending = 0; // rows waiting in lines
	while ((int)cinfo.output_scanline < pl->y1) {
		int y = (int)cinfo.output_scanline;
		unsigned char *row = lines + (size_t)pending * stride;
		read_row(&cinfo, row, cmyk);
		if (y < pl->y0) {
			continue;
		}
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
	// The remaining rows do not matter, but like Pillow a truncated
	// remainder is an error: decode them into the line buffer.
	while (cinfo.output_scanline < cinfo.output_height) {
		read_row(&cinfo, lines, cmyk);
	}
	jpeg_finish_decompress(&cinfo);
	jpeg_destroy_decompress(&cinfo);
	free(cmyk);
	prep_vpass(pl->tmp, pl->tstride, pl);
	res->code = PREP_OK;
}
