/*
 * zoom on the magick backend (ops.md section 5): ops-vips' plan
 * (ops_zoom_plan_make(), geom.h) cut, scaled and cut again with this
 * backend's primitives: the centred 1 / (1 + level) of the input
 * (mk_cut), resampled to cover the output (mk_resample: ResizeImage,
 * Lanczos3) and the output cut from its centre. The cuts are exact; the
 * resample is `convert -filter Lanczos -resize WxH!`'s.
 */
#include "cut.h"

#include "../ops-vips/geom.h"

static int
zoom_execute(kiln_exec *ctx, const void *params, void *const *in, void **out,
             kiln_error *err)
{
    const Image *src = in[0];
    Image *region = NULL, *scaled = NULL, *res = NULL;
    ops_zoom_plan plan;
    int rc;

    (void)ctx;
    rc = ops_zoom_plan_make(mk_api, params, (int)src->columns, (int)src->rows,
                            &plan, err);
    if (rc != KILN_OK) {
        return rc;
    }
    rc = mk_cut(src, &plan.region, "zoom", &region, err);
    if (rc == KILN_OK) {
        rc = mk_resample(region, plan.scaled_w, plan.scaled_h, &scaled, err);
    }
    if (rc == KILN_OK) {
        kiln_rect part = {plan.x, plan.y, plan.out_w, plan.out_h};

        rc = mk_cut(scaled, &part, "zoom", &res, err);
    }
    if (scaled != NULL) {
        DestroyImage(scaled);
    }
    if (region != NULL) {
        DestroyImage(region);
    }
    if (rc != KILN_OK) {
        return rc;
    }
    *out = res;
    return KILN_OK;
}

const kiln_op_impl zoom_magick = {
    .size = sizeof(kiln_op_impl),
    .op = "zoom",
    .backend = "magick",
    .execute_native = zoom_execute,
};
