/*
 * watermark on the magick backend (ops.md section 5). `source` is decoded
 * from the job's storage by this backend (exec_load_native: upright,
 * sRGB, 8-bit), scaled to width x height (one missing side follows the
 * watermark's aspect, as on the libvips backend; mk_resample: ResizeImage,
 * Lanczos3), given an opaque alpha when it has none, its alpha multiplied
 * by opacity / 10 (EvaluateImageChannel, in 16 bits: the blend rounds to
 * 8 bits once, in mk_settle) and composited with CompositeImage's
 * OverCompositeOp at the place the host's place() gives, clipped to the
 * input: `convert base ( wm -filter Lanczos -resize WxH! -alpha set
 * -channel A -evaluate multiply K +channel ) -gravity G -geometry +X+Y
 * -composite`. The output keeps the input's size and alpha.
 */
#include "magick.h"

#include <stdio.h>
#include <string.h>

#include "../ops-vips/geom.h"

/* Loads the watermark; a failure names the path and points at "source"
 * (the host prefixes the node's JSON path), as on the libvips backend. */
static int
watermark_load(kiln_exec *ctx, const char *path, Image **out, kiln_error *err)
{
    char msg[sizeof err->message];
    void *img = NULL;
    int rc = mk_api->exec_load_native(ctx, path, &img, err);

    if (rc == KILN_OK) {
        *out = img;
        return KILN_OK;
    }
    snprintf(msg, sizeof msg, "%s", err->message);
    if (strstr(msg, path) != NULL) {
        return mk_api->error_set_param(err, rc, "source", "%s", msg);
    }
    return mk_api->error_set_param(
        err, rc, "source", "cannot load watermark \"%s\": %s", path, msg);
}

/* The scaled watermark, with alpha, faded to p->opacity. */
static int
watermark_prepare(const watermark_params *p, const Image *wm, Image **out,
                  kiln_error *err)
{
    Image *scaled = NULL;
    ExceptionInfo *ex;
    int w, h;
    int rc;

    /* Lengths are already pixels of the base; a missing one follows the
     * watermark's aspect ratio. */
    rc = mk_api->derive_size(&p->width, &p->height, (int)wm->columns,
                             (int)wm->rows, &w, &h, err);
    if (rc != KILN_OK) {
        return rc;
    }
    rc = mk_resample(wm, w, h, &scaled, err);
    if (rc != KILN_OK) {
        return rc;
    }
    if (!scaled->matte &&
        SetImageAlphaChannel(scaled, OpaqueAlphaChannel) == MagickFalse) {
        rc = mk_error(err, KILN_EINTERNAL, &scaled->exception,
                      "watermark: cannot add alpha to the watermark");
        DestroyImage(scaled);
        return rc;
    }
    if (p->opacity < 10) {
        ex = AcquireExceptionInfo();
        if (EvaluateImageChannel(scaled, OpacityChannel,
                                 MultiplyEvaluateOperator, p->opacity / 10,
                                 ex) == MagickFalse) {
            mk_error(err, KILN_EINTERNAL, ex,
                     "watermark: cannot fade the watermark");
            DestroyExceptionInfo(ex);
            DestroyImage(scaled);
            return err->code;
        }
        DestroyExceptionInfo(ex);
    }
    *out = scaled;
    return KILN_OK;
}

static int
watermark_execute(kiln_exec *ctx, const void *params, void *const *in,
                  void **out, kiln_error *err)
{
    const watermark_params *p = params;
    const Image *src = in[0];
    Image *wm = NULL, *overlay = NULL, *res = NULL;
    int x, y;
    int rc;

    rc = watermark_load(ctx, p->source, &wm, err);
    if (rc != KILN_OK) {
        return rc;
    }
    rc = watermark_prepare(p, wm, &overlay, err);
    mk_backend.unref(wm);
    if (rc != KILN_OK) {
        return rc;
    }
    mk_api->place(p->gravity, (int)src->columns, (int)src->rows,
                  (int)overlay->columns, (int)overlay->rows,
                  ops_px(&p->xoffset), ops_px(&p->yoffset), &x, &y);
    MagickBooleanType matte = src->matte;
    RectangleInfo area = {overlay->columns, overlay->rows, x, y};
    rc = mk_writable(src, &res, err);
    if (rc != KILN_OK) {
        DestroyImage(overlay);
        return rc;
    }
    if (CompositeImage(res, OverCompositeOp, overlay, x, y) == MagickFalse) {
        rc = mk_error(err, KILN_EINTERNAL, &res->exception,
                      "watermark: cannot composite the watermark");
        DestroyImage(overlay);
        DestroyImage(res);
        return rc;
    }
    DestroyImage(overlay);
    /* OVER onto an opaque image is opaque: no alpha appears. */
    res->matte = matte;
    rc = mk_settle_area(res, &area, err); /* only what the blend changed */
    if (rc != KILN_OK) {
        DestroyImage(res);
        return rc;
    }
    *out = res;
    return KILN_OK;
}

const kiln_op_impl watermark_magick = {
    .size = sizeof(kiln_op_impl),
    .op = "watermark",
    .backend = "magick",
    .execute_native = watermark_execute,
};
