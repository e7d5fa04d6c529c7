/*
 * resize on the magick backend (ops.md section 5), and mk_resample(), the
 * resampler of every scaling op of this backend (resize, fitmethod, zoom,
 * watermark). The size is ops-vips' (the host's derive_size(), the same
 * rule); the pixels are MagickCore's ResizeImage() with its LanczosFilter
 * (Lanczos3), the same call as `convert -filter Lanczos -resize WxH!`,
 * which weighs colour by alpha itself, so transparent pixels do not bleed.
 * It computes in 16 bits; mk_settle() rounds the result back to 8 bits
 * as `convert` does when it writes an 8-bit PNG, so the two agree
 * exactly. libvips' Lanczos3 (the default backend) differs in its kernel
 * details, not in its geometry: tests/exec/magick_geometry_ops.sh holds
 * the two above a PSNR floor.
 */
#include "magick.h"

int
mk_resample(const Image *in, int w, int h, Image **out, kiln_error *err)
{
    ExceptionInfo *ex;
    Image *res;
    int rc;

    /* As ops_resample(): a resample to the input's own size is the input
     * (Lanczos3 at scale 1 is the identity up to rounding anyway). */
    if ((size_t)w == in->columns && (size_t)h == in->rows) {
        return mk_clone(in, out, err);
    }
    ex = AcquireExceptionInfo();
    res = ResizeImage(in, (size_t)w, (size_t)h, LanczosFilter, 1.0, ex);
    if (res == NULL) {
        mk_error(err, KILN_EINTERNAL, ex,
                 "resize: ImageMagick's resize failed");
        DestroyExceptionInfo(ex);
        return err->code;
    }
    DestroyExceptionInfo(ex);
    /* ResizeImage() scales the virtual canvas too; kiln's images have
     * none (a later crop or composite would read its offsets). */
    res->page = (RectangleInfo){0, 0, 0, 0};
    rc = mk_settle(res, err);
    if (rc != KILN_OK) {
        DestroyImage(res);
        return rc;
    }
    *out = res;
    return KILN_OK;
}

/* The size comes from the input the op was bound against (bw x bh),
 * the pixels from `src`, which may be a reduced decode of it. */
static int
resize_run(const resize_params *p, const Image *src, int bw, int bh, void **out,
           kiln_error *err)
{
    Image *res = NULL;
    int w, h;
    int rc;

    rc = mk_api->derive_size(&p->width, &p->height, bw, bh, &w, &h, err);
    if (rc != KILN_OK) {
        return rc;
    }
    rc = mk_resample(src, w, h, &res, err);
    if (rc != KILN_OK) {
        return rc;
    }
    *out = res;
    return KILN_OK;
}

static int
resize_execute(kiln_exec *ctx, const void *params, void *const *in, void **out,
               kiln_error *err)
{
    const Image *src = in[0];

    (void)ctx;
    return resize_run(params, src, (int)src->columns, (int)src->rows, out, err);
}

/* On a JPEG decoded at a reduced scale (shrink-on-load, -O2): ResizeImage
 * straight from the smaller image to the bound size, as `convert -define
 * jpeg:size=... -resize` does. */
static int
resize_execute_reduced(kiln_exec *ctx, const void *params,
                       const kiln_reduction *r, void *const *in, void **out,
                       kiln_error *err)
{
    (void)ctx;
    return resize_run(params, in[0], r->bound.width, r->bound.height, out, err);
}

const kiln_op_impl resize_magick = {
    .size = sizeof(kiln_op_impl),
    .op = "resize",
    .backend = "magick",
    .execute_native = resize_execute,
    .execute_native_reduced = resize_execute_reduced,
};
