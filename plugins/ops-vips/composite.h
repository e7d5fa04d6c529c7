/*
 * ops-vips internal: compositing an overlay over an op's input, shared by
 * annotation and watermark. Both place a region by gravity (the host's
 * place()), may put it partly or wholly outside the input, and must keep
 * the input's size and bands.
 */
#ifndef KILN_PLUGINS_OPS_VIPS_COMPOSITE_H
#define KILN_PLUGINS_OPS_VIPS_COMPOSITE_H

#include "ops.h"

/*
 * Composites `overlay` over `base` with Porter-Duff OVER, the overlay's
 * top-left corner at (x, y) in base coordinates (either may be negative or
 * beyond the base: the overlay is clipped to the base). `overlay` is sRGB
 * with straight (not premultiplied) alpha in its last band, 4 bands, any
 * numeric format with alpha on the 0..255 scale; `base` is 8-bit sRGB with
 * 3 or 4 bands. Only the covered rectangle is recomputed; results are
 * rounded to the nearest level. *out is one new reference with the size,
 * bands and format of `base` (an opaque base stays opaque: its alpha after
 * OVER is 255, so it is not added). libvips failures are reported with
 * `what` (the op's name) as the message prefix.
 */
int ops_composite_over(VipsImage *base, VipsImage *overlay, int x, int y,
                       const char *what, VipsImage **out, kiln_error *err);

#endif /* KILN_PLUGINS_OPS_VIPS_COMPOSITE_H */
