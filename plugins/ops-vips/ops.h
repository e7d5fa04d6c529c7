/*
 * ops-vips internal header: the host API pointer, the fifteen op
 * descriptors that plugin.c registers, and the resamplers several ops
 * share. The ops' geometry (sizes, regions, placements), which other pixel
 * backends share too, is in geom.h.
 */
#ifndef KILN_PLUGINS_OPS_VIPS_OPS_H
#define KILN_PLUGINS_OPS_VIPS_OPS_H

#include <stdbool.h>
#include <stdint.h>

#include "kiln/ops.h"
#include "kiln/plugin.h"
#include "../../kernels/kern.h"
#include "geom.h"

/* The host's function table, stored by ops_init() before any op runs. */
extern const kiln_host_api *ops_api;

/* Each op's definition (NAME_op) and its libvips implementation
 * (NAME_vips), both in the file named after it. */
extern const kiln_op annotation_op, blur_op, brightness_op, colorize_op,
    contrast_op, crop_op, enhance_op, filter_op, fitmethod_op, flip_op,
    resize_op, rotate_op, ulb_op, watermark_op, zoom_op;
extern const kiln_op_impl annotation_vips, blur_vips, brightness_vips,
    colorize_vips, contrast_vips, crop_vips, enhance_vips, filter_vips,
    fitmethod_vips, flip_vips, resize_vips, rotate_vips, ulb_vips,
    watermark_vips, zoom_vips;

/*
 * Resamples `in` to exactly w x h with Lanczos3 (premultiplied when the
 * image has alpha); *out is one new reference with the bands and format of
 * `in`. Defined in resize.c; reports libvips failures as "resize".
 */
int ops_resample(VipsImage *in, int w, int h, VipsImage **out, kiln_error *err);

/*
 * The same for an input that is a reduced decode of the image the op was
 * planned for (kiln_op.execute_reduced): that image covers ext_w x ext_h
 * pixels of `in` (its bound size times the reduction's scales, possibly
 * fractional and a little past in's edge), and is resampled to w x h.
 */
int ops_resample_from(VipsImage *in, double ext_w, double ext_h, int w, int h,
                      double gap, VipsImage **out, kiln_error *err);

/* vips_resize()'s "gap" (how much box shrinking precedes Lanczos3): 2, its
 * default, for the image the op was planned for (the -O0 semantics); 0,
 * Lanczos3 alone (kiln's own passes for 8-bit images, reducev.c and
 * reduceh.c), for an input already reduced: by the decoder (shrink-on-
 * load), whose DCT scaling did the coarse part better than a box would
 * (a box after it cost 1 to 5 dB against an exact reduction), or by an
 * earlier resample (fuse-resamples, reuse-reductions), where kiln's own
 * passes made five widths of a 4K photo 20% faster than libvips' box and
 * Lanczos3. ops_resample_gap() picks it for a kiln_reduction. */
#define OPS_GAP_FULL 2.0
/* The largest reduction libvips' Lanczos3 reduceh/reducev take in one
 * step (their kernel is limited to 2000 points: 6 x 333 + 1). */
#define OPS_REDUCE_MAX 300.0

/* The vertical half of a Lanczos3 reduction of an 8-bit image by
 * vshrink (1 to KERN_REDUCE_MAX), libvips' geometry, vectorised (reducev.c). 0
 * or -1 with the libvips error buffer set, as libvips' own functions. */
int ops_reducev(VipsImage *in, double vshrink, VipsImage **out);
/* The horizontal half, the same way (reduceh.c). */
int ops_reduceh(VipsImage *in, double hshrink, VipsImage **out);
double ops_resample_gap(const kiln_reduction *r);

/*
 * Only the rectangle `win` (inside w x h) of what ops_resample_from()
 * would make, the same pixels: for an input that is not reduced (ext_w,
 * ext_h its own size) it resamples a cut of `in` around the rectangle,
 * aligned to libvips' pixel grid (resize.c says how); otherwise, or when
 * no aligned cut is smaller, the whole, then cuts. *out: one new reference
 * of win->width x win->height.
 */
int ops_resample_window(VipsImage *in, double ext_w, double ext_h, int w, int h,
                        double gap, const kiln_rect *win, VipsImage **out,
                        kiln_error *err);

/* An output with the input's size and bands. */
static inline int
ops_infer_same(const kiln_shape *in, kiln_shape *out)
{
    *out = *in;
    return KILN_OK;
}

#endif /* KILN_PLUGINS_OPS_VIPS_OPS_H */
