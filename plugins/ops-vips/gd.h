/*
 * ops-vips GD machinery: what brightness, colorize, contrast and filter
 * share to reproduce libgd's gd_filter.c (PHP's imagefilter()) exactly on
 * 8-bit sRGB images, 3 bands or 4 with alpha. Colour channels are
 * transformed, alpha is always passed through unchanged. Defined in gd.c.
 */
#ifndef KILN_PLUGINS_OPS_VIPS_GD_H
#define KILN_PLUGINS_OPS_VIPS_GD_H

#include <stdint.h>

#include "ops.h"

/* One 256-entry table per colour channel: lut[channel][value], R G B. */
typedef uint8_t gd_lut[3][256];

/*
 * Checks that `in` is what the GD ops work on: uchar, 3 bands or 4 with
 * alpha (the op contract). Reports anything else as KILN_EINVAL with
 * the op's name `what`.
 */
int gd_check_input(VipsImage *in, const char *what, kiln_error *err);

/*
 * Maps each colour channel of `in` through its table (vips_maplut); alpha
 * keeps its values. *out is one new reference with the bands and format
 * of `in`. Reports libvips failures as `what`.
 */
int gd_map(VipsImage *in, const gd_lut lut, const char *what, VipsImage **out,
           kiln_error *err);

/*
 * GD's gdImageConvolution(): for each colour channel, the 3x3 neighbourhood
 * (edge pixels replicated) times `kernel` (row-major), accumulated in
 * single precision in row-major order, then sum / div + offset, clamped to
 * 0..255 and truncated. `div` must not be 0. Alpha is copied. *out is one
 * new reference (computed on demand, in parallel). Reports libvips failures
 * as `what`.
 */
int gd_convolve(VipsImage *in, const float kernel[9], float div, float offset,
                const char *what, VipsImage **out, kiln_error *err);

/*
 * GD's gdImageSelectiveBlur(), processed in place in row-major order as GD
 * does (neighbours above and to the left are already filtered when a pixel
 * is computed; neighbours outside the image read as black). Evaluates
 * `in` into memory; *out is one new reference to a memory image. Alpha is
 * copied. Reports libvips failures as `what`.
 */
int gd_selective_blur(VipsImage *in, const char *what, VipsImage **out,
                      kiln_error *err);

#endif /* KILN_PLUGINS_OPS_VIPS_GD_H */
