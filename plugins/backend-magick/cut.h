/*
 * backend-magick internal: cutting a rectangle out of an image, shared by
 * the ops that crop (crop, zoom, fitmethod's cropbox). Defined in crop.c.
 */
#ifndef KILN_PLUGINS_BACKEND_MAGICK_CUT_H
#define KILN_PLUGINS_BACKEND_MAGICK_CUT_H

#include "magick.h"

/*
 * A new image holding the rectangle *r of `in` (which must lie inside
 * it), pixels copied untouched, without a virtual canvas (as `convert
 * +repage -crop WxH+X+Y +repage`). `in` is not changed. KILN_OK, or an
 * error naming `what` (the op).
 */
int mk_cut(const Image *in, const kiln_rect *r, const char *what, Image **out,
           kiln_error *err);

#endif /* KILN_PLUGINS_BACKEND_MAGICK_CUT_H */
