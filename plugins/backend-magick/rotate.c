/*
 * rotate on the magick backend (ops.md section 5). Multiples of 90 are
 * MagickCore's IntegralRotateImage() (what RotateImage() and `convert
 * -rotate 90` call for them): samples moved, never computed, so the
 * result equals the libvips backend's vips_rot() exactly.
 *
 * Any other angle turns the image clockwise about its centre onto the
 * canvas ops-vips' infer() gives (ops_rotate_size(), geom.h), the corners
 * transparent: an opaque alpha is added to an input without one, and the
 * background is transparent black, as on the libvips backend. In
 * ImageMagick 6.9 RotateImage() is DistortImage() with the
 * scale-rotate-translate distortion about the centre and a best-fit
 * canvas, which is up to a few pixels larger than the rounded bounding
 * box; we call the same distortion with "distort:viewport" set to the
 * infer() size and the centre mapped to that canvas's centre, so the
 * size is exact and the image is not shifted by the cut. It resamples
 * with MagickCore's EWA filter (alpha-weighted), as `convert -alpha set
 * -background none -virtual-pixel background -define
 * distort:viewport=WxH+0+0 -distort SRT "cx,cy 1 D ncx,ncy"` does.
 */
#include "magick.h"

#include <stdio.h>

#include "../ops-vips/geom.h"

/* The turn by any angle that is not a multiple of 90. */
static int
rotate_any(const Image *src, double degrees, int ow, int oh, Image **out,
           kiln_error *err)
{
    /* Centre to centre: MagickCore's pixel i covers [i, i + 1). */
    double args[6] = {src->columns / 2.0, src->rows / 2.0, 1.0, degrees,
                      ow / 2.0,           oh / 2.0};
    char viewport[64];
    ExceptionInfo *ex;
    Image *work = NULL;
    Image *res;
    int rc;

    rc = mk_writable(src, &work, err);
    if (rc != KILN_OK) {
        return rc;
    }
    work->page = (RectangleInfo){0, 0, 0, 0};
    if (!work->matte &&
        SetImageAlphaChannel(work, OpaqueAlphaChannel) == MagickFalse) {
        rc = mk_error(err, KILN_EINTERNAL, &work->exception,
                      "rotate: cannot add alpha to the image");
        DestroyImage(work);
        return rc;
    }
    /* What the distortion reads outside the input: transparent black. */
    work->background_color.red = 0;
    work->background_color.green = 0;
    work->background_color.blue = 0;
    work->background_color.opacity = TransparentOpacity;
    snprintf(viewport, sizeof viewport, "%dx%d+0+0", ow, oh);
    (void)SetImageVirtualPixelMethod(work, BackgroundVirtualPixelMethod);
    if (SetImageArtifact(work, "distort:viewport", viewport) == MagickFalse) {
        DestroyImage(work);
        return mk_api->error_set(err, KILN_ENOMEM, "out of memory");
    }
    ex = AcquireExceptionInfo();
    res = DistortImage(work, ScaleRotateTranslateDistortion, 6, args,
                       MagickFalse, ex);
    DestroyImage(work);
    if (res == NULL) {
        mk_error(err, KILN_EINTERNAL, ex,
                 "rotate: ImageMagick's rotation failed");
        DestroyExceptionInfo(ex);
        return err->code;
    }
    DestroyExceptionInfo(ex);
    /* The settings were for this distortion only: later ops on the
     * result see the input's. */
    (void)DeleteImageArtifact(res, "distort:viewport");
    (void)SetImageVirtualPixelMethod(res, GetImageVirtualPixelMethod(src));
    res->background_color = src->background_color;
    res->page = (RectangleInfo){0, 0, 0, 0};
    rc = mk_settle(res, err);
    if (rc != KILN_OK) {
        DestroyImage(res);
        return rc;
    }
    *out = res;
    return KILN_OK;
}

static int
rotate_execute(kiln_exec *ctx, const void *params, void *const *in, void **out,
               kiln_error *err)
{
    const rotate_params *p = params;
    const Image *src = in[0];
    int q = ops_rotate_quarters(p->degrees);
    ExceptionInfo *ex;
    Image *res = NULL;
    int ow = 0, oh = 0;
    int rc;

    (void)ctx;
    if (q == 0) {
        rc = mk_clone(src, &res, err);
    } else if (q > 0) {
        ex = AcquireExceptionInfo();
        res = IntegralRotateImage(src, (size_t)q, ex);
        if (res == NULL) {
            mk_error(err, KILN_EINTERNAL, ex,
                     "rotate: ImageMagick's rotation failed");
            DestroyExceptionInfo(ex);
            return err->code;
        }
        DestroyExceptionInfo(ex);
        res->page = (RectangleInfo){0, 0, 0, 0};
        rc = KILN_OK;
    } else {
        rc = ops_rotate_size(mk_api, p, (int)src->columns, (int)src->rows, &ow,
                             &oh, err);
        if (rc == KILN_OK) {
            rc = rotate_any(src, p->degrees, ow, oh, &res, err);
        }
    }
    if (rc != KILN_OK) {
        return rc;
    }
    *out = res;
    return KILN_OK;
}

const kiln_op_impl rotate_magick = {
    .size = sizeof(kiln_op_impl),
    .op = "rotate",
    .backend = "magick",
    .execute_native = rotate_execute,
};
