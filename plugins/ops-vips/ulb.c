/*
 * ulb: "upper/lower bound" auto-levels, the project's interpretation
 * (ops.md section 4): find the 0.5th and 99.5th percentiles of luminance
 * and stretch linearly so they map to 0 and 255, applying the same gain
 * and offset to R, G and B so hues keep. No parameters; the output keeps
 * the input's size and bands.
 *
 * Exact definition. Luminance is Rec. 601 luma on the stored (gamma
 * encoded) 8-bit values, Y = 0.299 R + 0.587 G + 0.114 B, rounded to the
 * nearest level (halves up). Over all N pixels (alpha is ignored: every
 * pixel counts, transparent or not), lo is the smallest level L with
 * #(Y <= L) >= 0.5% of N, and hi the largest level L with
 * #(Y >= L) >= 0.5% of N. With hi > lo, every colour channel becomes
 * c' = clamp(round(255 * (c - lo) / (hi - lo))) (halves up, clamped to
 * 0..255); alpha is copied unchanged. With hi <= lo (a flat image) the
 * image is returned unchanged.
 *
 * Two passes over the input: a histogram of Y (vips_hist_find), then one
 * vips_linear. The histogram needs every row before the first output row
 * exists, so the input is first copied into memory (read once, in order):
 * the op is then `sequential` for the host, which can stream the source
 * through whatever comes before ulb (a resize: only the small image is
 * held) instead of holding the whole decoded source.
 */
#include "ops.h"

/* The share of pixels cut at each end, as a fraction of all pixels. */
#define ULB_CUT 0.005

static int
ulb_infer(const void *params, const kiln_shape *in, kiln_shape *out,
          kiln_error *err)
{
    (void)params;
    (void)err;
    return ops_infer_same(in, out);
}

/* lo and hi from a 256-bin histogram of N pixels (definition above). */
static void
ulb_bounds(const guint32 *hist, uint64_t n, int *lo, int *hi)
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

static int
ulb_execute(kiln_exec *ctx, const void *params, VipsImage *const *in,
            VipsImage **out, kiln_error *err)
{
    VipsImage *src = NULL;
    int bands = vips_image_get_bands(in[0]);
    uint64_t n = (uint64_t)vips_image_get_width(in[0]) *
                 (uint64_t)vips_image_get_height(in[0]);
    VipsImage *m = NULL, *t[3] = {NULL};
    guint32 *hist = NULL;
    size_t size = 0;
    double a[4], b[4];
    int lo, hi, rc;

    (void)ctx;
    (void)params;
    if (vips_image_get_format(in[0]) != VIPS_FORMAT_UCHAR ||
        (bands != 3 && bands != 4)) {
        return ops_api->error_set(err, KILN_EINTERNAL,
                                  "ulb: expected 8-bit sRGB with 3 or 4 "
                                  "bands, got %d bands of format %d",
                                  bands, (int)vips_image_get_format(in[0]));
    }
    src = vips_image_copy_memory(in[0]);
    if (src == NULL) {
        goto fail;
    }
    /* Y = round(.299 R + .587 G + .114 B); the alpha column is 0. */
    m = vips_image_new_matrixv(bands, 1, 0.299, 0.587, 0.114, 0.0);
    if (m == NULL || vips_recomb(src, &t[0], m, NULL) ||
        vips_linear1(t[0], &t[1], 1.0, 0.5, "uchar", TRUE, NULL) ||
        vips_hist_find(t[1], &t[2], NULL)) {
        goto fail;
    }
    hist = vips_image_write_to_memory(t[2], &size);
    if (hist == NULL) {
        goto fail;
    }
    if (vips_image_get_format(t[2]) != VIPS_FORMAT_UINT ||
        size != 256 * sizeof(guint32)) {
        rc = ops_api->error_set(err, KILN_EINTERNAL,
                                "ulb: unexpected histogram (%zu bytes)", size);
        goto done;
    }
    ulb_bounds(hist, n, &lo, &hi);
    if (hi <= lo) {
        g_object_ref(src);
        *out = src;
        rc = KILN_OK;
        goto done;
    }
    /* c' = gain c + offset, + 0.5 so that vips_linear's truncation to
     * uchar rounds halves up; alpha gets 1 * a + 0. */
    double gain = 255.0 / (hi - lo);
    for (int i = 0; i < 3; i++) {
        a[i] = gain;
        b[i] = -lo * gain + 0.5;
    }
    a[3] = 1.0;
    b[3] = 0.0;
    if (vips_linear(src, out, a, b, bands, "uchar", TRUE, NULL)) {
        goto fail;
    }
    rc = KILN_OK;
    goto done;

fail:
    rc = ops_api->error_set_vips(err, "ulb");
done:
    g_free(hist);
    for (int i = 2; i >= 0; i--) {
        if (t[i] != NULL) {
            g_object_unref(t[i]);
        }
    }
    if (m != NULL) {
        g_object_unref(m);
    }
    if (src != NULL) {
        g_object_unref(src);
    }
    return rc;
}

const kiln_op ulb_op = {
    .size = sizeof(kiln_op),
    .name = "ulb",
    .summary = "auto-levels between the 0.5% and 99.5% luminance bounds",
    .doc = "Stretches the image so that the 0.5th percentile of luminance "
           "becomes black and the 99.5th white, with the same gain and "
           "offset on red, green and blue so hues keep. No parameters; the "
           "size is unchanged.",
    .n_inputs = 1,
    .flags = KILN_OP_PURE | KILN_OP_SEQUENTIAL, /* reads its copy twice */
    .params_size = 0,
    .params = NULL,
    .n_params = 0,
    .infer = ulb_infer,
};

const kiln_op_impl ulb_vips = {
    .size = sizeof(kiln_op_impl),
    .op = "ulb",
    .backend = "vips",
    .execute = ulb_execute,
};
