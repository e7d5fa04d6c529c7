/*
 * enhance on the magick backend: ImageMagick 6's -enhance itself
 * (MagickCore's EnhanceImage, which ops.md defines the op by), brought
 * back to 8 bits by truncation as ops.md and convert do it: on opaque
 * images the same bytes as `convert -enhance` writing an 8-bit PNG, and
 * as the libvips backend's reimplementation (ops-vips/enhance.c; the
 * contract allows 2 levels).
 *
 * Two differences from plain EnhanceImage, both as ops.md says: an image
 * under 5 px on a side, for which EnhanceImage makes nothing, is returned
 * unchanged (convert -enhance leaves it so too); and alpha is kept.
 * EnhanceImage averages opacity like a colour; it still takes part in
 * the colour distance, but the output gets the input's alpha back.
 */
#include "magick.h"

/* Brings EnhanceImage's result `dst` back to 8 bits as ops.md and
 * convert do: trunc(q16 / 257). (ImageMagick 6.9.11 writes an 8-bit PNG
 * through ScaleQuantumToAny, which truncates; mk_settle rounds, which
 * would differ from convert in about half the pixels.) With alpha, `dst`
 * gets the opacity of `src` back. */
static bool
enhance_settle(const Image *src, Image *dst, ExceptionInfo *ex)
{
    CacheView *sv = AcquireVirtualCacheView(src, ex);
    CacheView *dv = AcquireAuthenticCacheView(dst, ex);
    bool keep_alpha = src->matte && dst->matte;
    int ok = 1;

    /* Rows on MagickCore's OpenMP threads, as backend.c's loops. */
#pragma omp parallel for schedule(static) reduction(& : ok)
    for (ssize_t y = 0; y < (ssize_t)dst->rows; y++) {
        const PixelPacket *p =
            GetCacheViewVirtualPixels(sv, 0, y, src->columns, 1, ex);
        PixelPacket *q =
            GetCacheViewAuthenticPixels(dv, 0, y, dst->columns, 1, ex);

        if (p == NULL || q == NULL) {
            ok = 0;
            continue;
        }
        for (size_t x = 0; x < dst->columns; x++) {
            SetPixelRed(q + x, mk_q16(GetPixelRed(q + x) / 257u));
            SetPixelGreen(q + x, mk_q16(GetPixelGreen(q + x) / 257u));
            SetPixelBlue(q + x, mk_q16(GetPixelBlue(q + x) / 257u));
            if (keep_alpha) {
                SetPixelOpacity(q + x, GetPixelOpacity(p + x));
            }
        }
        if (SyncCacheViewAuthenticPixels(dv, ex) == MagickFalse) {
            ok = 0;
        }
    }
    DestroyCacheView(dv);
    DestroyCacheView(sv);
    return ok;
}

static int
enhance_execute(kiln_exec *ctx, const void *params, void *const *in, void **out,
                kiln_error *err)
{
    const Image *src = in[0];
    ExceptionInfo *ex = NULL;
    Image *priv = NULL, *res = NULL;
    int rc;

    (void)ctx;
    (void)params;
    if (src->columns < 5 || src->rows < 5) {
        /* EnhanceImage returns NULL for these, without an exception. */
        rc = mk_clone(src, &res, err);
        if (rc == KILN_OK) {
            *out = res;
        }
        return rc;
    }
    /* EnhanceImage opens its input for writing (an authentic cache
     * view), which makes MagickCore copy a shared pixel cache into that
     * image: give it one only this op sees, never the host's shared
     * input. */
    rc = mk_writable(src, &priv, err);
    if (rc != KILN_OK) {
        return rc;
    }
    ex = AcquireExceptionInfo();
    res = EnhanceImage(priv, ex);
    if (res == NULL) {
        mk_error(err, KILN_EINTERNAL, ex, "enhance: cannot reduce the noise");
        goto fail;
    }
    priv = DestroyImage(priv);
    if (!enhance_settle(src, res, ex)) {
        mk_error(err, KILN_EINTERNAL, ex, "enhance: cannot write the pixels");
        goto fail;
    }
    DestroyExceptionInfo(ex);
    /* The samples are 8-bit already (enhance_settle): the rest of the
     * backend's contract. */
    res->colorspace = sRGBColorspace;
    res->depth = 8;
    *out = res;
    return KILN_OK;

fail:
    if (res != NULL) {
        DestroyImage(res);
    }
    if (priv != NULL) {
        DestroyImage(priv);
    }
    DestroyExceptionInfo(ex);
    return err->code;
}

const kiln_op_impl enhance_magick = {
    .size = sizeof(kiln_op_impl),
    .op = "enhance",
    .backend = "magick",
    .execute_native = enhance_execute,
};
