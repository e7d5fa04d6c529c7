/*
 * ulb on the magick backend: auto-levels between the 0.5% and 99.5%
 * luminance bounds, the same gain and offset on R, G and B, alpha
 * untouched (ops.md; the exact definition is in ops-vips/ulb.c). Computed
 * on the 8-bit pixels (mk_export) with the arithmetic libvips 8.14 does
 * for ops-vips' ulb, so both backends give the same bytes: the luma
 * rounded from a float, the levels from a float or double gain and offset
 * as vips_linear picks (exact ties such as 0.114 x 250 = 28.5 fall the
 * way libvips' roundings take them).
 */
#include "magick.h"

#include <math.h>
#include <stdlib.h>

/* The share of pixels cut at each end, as a fraction of all pixels. */
#define ULB_CUT 0.005

/* lo and hi from a 256-bin histogram of n pixels (ops.md). */
static void
ulb_bounds(const uint64_t hist[256], uint64_t n, int *lo, int *hi)
{
    double cut = ULB_CUT * (double)n;
    uint64_t below = 0, above = 0;

    *lo = 255;
    for (int v = 0; v < 256; v++) {
        below += hist[v];
        if ((double)below >= cut) {
            *lo = v;
            break;
        }
    }
    *hi = 0;
    for (int v = 255; v >= 0; v--) {
        above += hist[v];
        if ((double)above >= cut) {
            *hi = v;
            break;
        }
    }
}

/* The luma level of one pixel as ops-vips computes it: vips_recomb sums
 * in double and stores a float, vips_linear1(1, 0.5) adds in float, and
 * the conversion to 8 bits clips and truncates. */
static uint8_t
ulb_luma(const uint8_t *px)
{
    double t = 0.0;

    t += 0.299 * px[0];
    t += 0.587 * px[1];
    t += 0.114 * px[2];

    float y = (float)t;
    float r = 1.0f * y + 0.5f;

    return (uint8_t)fmax(0.0, fmin(255.0, r));
}

static int
ulb_execute(kiln_exec *ctx, const void *params, void *const *in, void **out,
            kiln_error *err)
{
    const Image *src = in[0];
    uint64_t hist[256] = {0};
    uint8_t lut[256];
    uint8_t *buf = NULL;
    Image *res = NULL;
    int bands, lo, hi;

    (void)ctx;
    (void)params;
    int rc = mk_export(src, &buf, &bands, err);
    if (rc != KILN_OK) {
        return rc;
    }
    size_t n = (size_t)src->columns * src->rows;
    for (size_t i = 0; i < n; i++) {
        hist[ulb_luma(buf + i * (size_t)bands)]++;
    }
    ulb_bounds(hist, n, &lo, &hi);
    if (hi <= lo) {
        /* A flat image is returned unchanged. */
        free(buf);
        rc = mk_clone(src, &res, err);
        if (rc == KILN_OK) {
            *out = res;
        }
        return rc;
    }
    /* c' = gain c + offset, + 0.5 so that the truncation rounds halves
     * up. vips_linear shrinks constants whose elements are all equal to
     * one and then computes in float: that is the 3-band case; with
     * alpha (gain and offset 1 and 0 for it) it computes in double. The
     * two differ on exact ties such as 1.7 x 95 + 0.5 = 162. */
    double gain = 255.0 / (hi - lo);
    double offset = -lo * gain + 0.5;

    for (int v = 0; v < 256; v++) {
        double t;

        if (bands == 3) {
            float a1 = (float)gain, b1 = (float)offset;
            float tf = a1 * v + b1;

            t = tf;
        } else {
            t = gain * v + offset;
        }
        lut[v] = (uint8_t)fmax(0.0, fmin(255.0, t));
    }
    for (size_t i = 0; i < n; i++) {
        uint8_t *px = buf + i * (size_t)bands;

        px[0] = lut[px[0]];
        px[1] = lut[px[1]];
        px[2] = lut[px[2]];
    }
    rc = mk_import(src, (int)src->columns, (int)src->rows, bands, buf, &res,
                   err);
    free(buf);
    if (rc == KILN_OK) {
        *out = res;
    }
    return rc;
}

const kiln_op_impl ulb_magick = {
    .size = sizeof(kiln_op_impl),
    .op = "ulb",
    .backend = "magick",
    .execute_native = ulb_execute,
};
