/*
 * crop on the magick backend (ops.md section 5): the region is ops-vips'
 * own (ops_crop_region(), geom.h: gravity placement, fit's shrink and
 * shift, fit false's intersection), so the size is exactly what infer()
 * gave; the pixels are MagickCore's CropImage() of that region, copied
 * untouched, as `convert -crop WxH+X+Y +repage` and the libvips backend's
 * vips_extract_area() give them. mk_cut() serves the other ops that cut.
 */
#include "cut.h"

#include <stdio.h>

#include "../ops-vips/geom.h"

int
mk_cut(const Image *in, const kiln_rect *r, const char *what, Image **out,
       kiln_error *err)
{
    RectangleInfo geo = {(size_t)r->width, (size_t)r->height, r->x, r->y};
    ExceptionInfo *ex;
    Image *whole = NULL;
    Image *res;
    char msg[128];
    int rc;

    /* CropImage() reads its geometry relative to the image's virtual
     * canvas; a decoder may leave one (a GIF frame's offset). A
     * copy-on-write clone without it costs no pixels and leaves `in`,
     * which the host shares, alone. */
    rc = mk_clone(in, &whole, err);
    if (rc != KILN_OK) {
        return rc;
    }
    whole->page = (RectangleInfo){0, 0, 0, 0};
    ex = AcquireExceptionInfo();
    res = CropImage(whole, &geo, ex);
    DestroyImage(whole);
    if (res == NULL) {
        snprintf(msg, sizeof msg, "%s: cannot cut %dx%d%+d%+d out of %zux%zu",
                 what, r->width, r->height, r->x, r->y, in->columns, in->rows);
        mk_error(err, KILN_EINTERNAL, ex, msg);
        DestroyExceptionInfo(ex);
        return err->code;
    }
    DestroyExceptionInfo(ex);
    res->page = (RectangleInfo){0, 0, 0, 0};
    *out = res;
    return KILN_OK;
}

static int
crop_execute(kiln_exec *ctx, const void *params, void *const *in, void **out,
             kiln_error *err)
{
    const Image *src = in[0];
    Image *res = NULL;
    kiln_rect r;
    int rc;

    (void)ctx;
    rc = ops_crop_region(mk_api, params, (int)src->columns, (int)src->rows, &r,
                         err);
    if (rc != KILN_OK) {
        return rc;
    }
    rc = mk_cut(src, &r, "crop", &res, err);
    if (rc != KILN_OK) {
        return rc;
    }
    *out = res;
    return KILN_OK;
}

const kiln_op_impl crop_magick = {
    .size = sizeof(kiln_op_impl),
    .op = "crop",
    .backend = "magick",
    .execute_native = crop_execute,
};
