/*
 * fitmethod on the magick backend (ops.md section 5): ops-vips' plan
 * (ops_fit_plan_make(), geom.h: every size, the cropbox cut and the
 * letterbox position) carried out with this backend's primitives. The
 * input is resampled once (mk_resample: ResizeImage, Lanczos3); cropbox
 * then cuts the box (mk_cut, exact); letterbox copies the scaled image
 * onto a canvas of the padding colour at alpha color.a x opacity / 10
 * (CompositeImage with CopyCompositeOp: the image's pixels replace the
 * canvas's, alpha included, as the libvips backend's vips_embed and
 * `convert -background C -compose Copy -gravity G -extent WxH` do).
 */
#include "cut.h"

#include "../ops-vips/geom.h"

/* The letterbox: `scaled` copied onto the padding at the plan's place. */
static int
fitmethod_pad(const fitmethod_params *p, const ops_fit_plan *plan,
              Image *scaled, Image **out, kiln_error *err)
{
    uint8_t rgba[4] = {p->color.r, p->color.g, p->color.b,
                       (uint8_t)plan->pad_alpha};
    Image *canvas = NULL;
    int rc;

    rc = mk_canvas(scaled, plan->out_w, plan->out_h, rgba, plan->has_alpha,
                   &canvas, err);
    if (rc != KILN_OK) {
        return rc;
    }
    /* An opaque image on see-through padding: CopyCompositeOp copies the
     * source's opacity too, which an image without matte does not keep
     * (MagickCore leaves it unset), so make it opaque first. */
    if (plan->has_alpha && !scaled->matte &&
        SetImageAlphaChannel(scaled, OpaqueAlphaChannel) == MagickFalse) {
        rc = mk_error(err, KILN_EINTERNAL, &scaled->exception,
                      "fitmethod: cannot add alpha to the image");
        DestroyImage(canvas);
        return rc;
    }
    if (CompositeImage(canvas, CopyCompositeOp, scaled, plan->x, plan->y) ==
        MagickFalse) {
        rc = mk_error(err, KILN_EINTERNAL, &canvas->exception,
                      "fitmethod: cannot place the image on the letterbox");
        DestroyImage(canvas);
        return rc;
    }
    *out = canvas;
    return KILN_OK;
}

/* The plan comes from the input the op was bound against (bw x bh), the
 * pixels from `src`, which may be a reduced decode of it. */
static int
fitmethod_run(const fitmethod_params *p, const Image *src, int bw, int bh,
              void **out, kiln_error *err)
{
    Image *scaled = NULL, *res = NULL;
    ops_fit_plan plan;
    int rc;

    rc = ops_fit_plan_make(mk_api, p, bw, bh, src->matte != MagickFalse, &plan,
                           err);
    if (rc != KILN_OK) {
        return rc;
    }
    rc = mk_resample(src, plan.scaled_w, plan.scaled_h, &scaled, err);
    if (rc != KILN_OK) {
        return rc;
    }
    if (p->fit_type == FIT_CROPBOX) {
        kiln_rect box = {plan.x, plan.y, plan.out_w, plan.out_h};

        rc = mk_cut(scaled, &box, "fitmethod", &res, err);
        DestroyImage(scaled);
    } else if (p->fit_type == FIT_LETTERBOX) {
        rc = fitmethod_pad(p, &plan, scaled, &res, err);
        DestroyImage(scaled);
    } else {
        res = scaled;
    }
    if (rc != KILN_OK) {
        return rc;
    }
    *out = res;
    return KILN_OK;
}

static int
fitmethod_execute(kiln_exec *ctx, const void *params, void *const *in,
                  void **out, kiln_error *err)
{
    const Image *src = in[0];

    (void)ctx;
    return fitmethod_run(params, src, (int)src->columns, (int)src->rows, out,
                         err);
}

/* On a JPEG decoded at a reduced scale (shrink-on-load, -O2). */
static int
fitmethod_execute_reduced(kiln_exec *ctx, const void *params,
                          const kiln_reduction *r, void *const *in, void **out,
                          kiln_error *err)
{
    (void)ctx;
    return fitmethod_run(params, in[0], r->bound.width, r->bound.height, out,
                         err);
}

const kiln_op_impl fitmethod_magick = {
    .size = sizeof(kiln_op_impl),
    .op = "fitmethod",
    .backend = "magick",
    .execute_native = fitmethod_execute,
    .execute_native_reduced = fitmethod_execute_reduced,
};
