/*
 * blur: Gaussian blur (ops.md section 4) with standard deviation `sigma`
 * (> 0) and a kernel reaching at most `radius` px from the centre (0:
 * automatic, ceil(3 sigma)); edges extend by copy. Large sigmas may be
 * approximated within a mean absolute error of 1 level. The output keeps
 * the input's size and bands.
 *
 * The exact operator: out(x, y) = sum over |i|, |j| <= R of
 * g(i) g(j) in(x + i, y + j), g(i) = exp(-i^2 / (2 sigma^2)) normalised
 * so that its 2R + 1 taps sum to 1, coordinates outside the input clamped
 * to the nearest edge pixel; the result is rounded to the nearest level.
 *
 * R is capped at 5 sigma (BLUR_TAIL): the taps beyond weigh under 6e-7.
 * Two ways to compute it, by k = floor(min(sigma / 3, R / 8))
 * (blur_factor()):
 *
 * - k < 2: exactly that, one separable float convolution (vips_convsep,
 *   whose own edge handling is copy).
 * - k >= 2: the image, extended by copy, is shrunk by the integer factor
 *   k (box means, in float), blurred on that coarse grid with
 *   blur_coarse_kernel(), and enlarged back onto the input's exact pixel
 *   grid with a bicubic (Catmull-Rom) interpolator. The coarse kernel's
 *   variance is reduced by the box's so that the total matches sigma^2;
 *   its end taps are weighted by the part of their k-pixel cell that lies
 *   within R, which keeps the truncation where the exact kernel has it.
 *   The blurred signal has no detail finer than sigma, so 3 coarse pixels
 *   per sigma (and 8 per radius) lose almost nothing. Measured against
 *   the exact float result (tests/exec/enhance_ulb_blur.sh): mean absolute
 *   error 0.25-0.35 levels, of which 0.25 is the final rounding itself;
 *   the largest single difference is about 1 level for untruncated
 *   kernels and 3 for strongly truncated ones (sigma 300, radius 100).
 *   The cost is one read of the input, a small convolution and one
 *   interpolation pass, whatever sigma and R are: the public example
 *   (sigma 218, radius 465) adds about 0.25 s to a 6 MP conversion.
 *
 * With alpha, the colour is blurred premultiplied by alpha (transparent
 * pixels do not bleed into opaque ones) and divided back by the blurred
 * alpha; the alpha band itself is copied unchanged.
 */
#include "ops.h"

#include <math.h>
#include <stdlib.h>

/* Coarse grid: at least this many coarse pixels per sigma... */
#define BLUR_SIGMA_PER_K 3.0
/* ...and per kernel radius, so the truncation stays sharp enough. */
#define BLUR_RADIUS_PER_K 8.0
/* Taps beyond 5 sigma together weigh under 6e-7: at most 0.0002 of a
 * level, so a longer kernel only costs time. */
#define BLUR_TAIL 5.0
/* Full-resolution copy margin around the input before shrinking, in
 * coarse pixels: one pure-copy cell plus the interpolator's reach. */
#define BLUR_MARGIN_CELLS 3

static const kiln_param_spec blur_specs[] = {
    KILN_P_NUMBER(blur_params, sigma, 0, 1000, 0,
                  "standard deviation in pixels, greater than 0",
                  .flags = KILN_PARAM_REQUIRED | KILN_PARAM_MIN_EXCLUSIVE),
    KILN_P_NUMBER(blur_params, radius, 0, 2000, 0,
                  "kernel radius in pixels; 0 means 3 sigma",
                  .flags = KILN_PARAM_REQUIRED | KILN_PARAM_INTEGER),
};

/* The kernel radius in pixels: the request's, or ceil(3 sigma); never
 * beyond BLUR_TAIL sigma, whose outer taps cannot change a result (sigma 1
 * with radius 2000 would otherwise convolve with 4001 taps, nearly all
 * zero). */
static int
blur_radius(const blur_params *p)
{
    int tail = (int)ceil(BLUR_TAIL * p->sigma);
    int r = p->radius >= 1 ? (int)p->radius : (int)ceil(3.0 * p->sigma);

    if (r > tail) {
        r = tail;
    }
    return r < 1 ? 1 : r;
}

/* The shrink factor: 1 (exact) unless both sigma and the radius span
 * enough coarse pixels. */
static int
blur_factor(double sigma, int radius)
{
    double k = fmin(sigma / BLUR_SIGMA_PER_K, radius / BLUR_RADIUS_PER_K);

    return k < 2 ? 1 : (int)k;
}

/* The exact 1-D kernel, 2R + 1 taps of exp(-i^2 / (2 sigma^2)) summing
 * to 1; NULL with the libvips error set. */
static VipsImage *
blur_exact_kernel(double sigma, int radius)
{
    VipsImage *m = vips_image_new_matrix(2 * radius + 1, 1);
    double sum = 0;

    if (m == NULL) {
        return NULL;
    }
    for (int i = -radius; i <= radius; i++) {
        double v = exp(-(double)i * i / (2.0 * sigma * sigma));

        *VIPS_MATRIX(m, i + radius, 0) = v;
        sum += v;
    }
    for (int i = 0; i <= 2 * radius; i++) {
        *VIPS_MATRIX(m, i, 0) /= sum;
    }
    return m;
}

/* The kernel on the grid shrunk by k. Tap m stands for the k pixels
 * around offset m k; it is the Gaussian of variance sigma^2 / k^2 minus
 * the variance the k-pixel box mean adds ((k^2 - 1) / 12 px^2), weighted
 * by the share of its cell inside [-R - 1/2, R + 1/2]. */
static VipsImage *
blur_coarse_kernel(double sigma, int radius, int k)
{
    double s2 = (sigma * sigma - (k * k - 1) / 12.0) / ((double)k * k);
    double reach = (radius + 0.5) / k; /* R in cells */
    int n = (int)ceil(reach - 0.5);    /* last tap with a share */
    VipsImage *m;
    double sum = 0;

    if (n < 1) {
        n = 1;
    }
    m = vips_image_new_matrix(2 * n + 1, 1);
    if (m == NULL) {
        return NULL;
    }
    for (int i = -n; i <= n; i++) {
        double share = fmin(1.0, fmax(0.0, reach - (abs(i) - 0.5)));
        double v = share * exp(-(double)i * i / (2.0 * s2));

        *VIPS_MATRIX(m, i + n, 0) = v;
        sum += v;
    }
    for (int i = 0; i <= 2 * n; i++) {
        *VIPS_MATRIX(m, i, 0) /= sum;
    }
    return m;
}

/* The blurred image as float, every band of `in` treated alike; *out is
 * one new reference. */
static int
blur_float(VipsImage *in, double sigma, int radius, VipsImage **out)
{
    int w = vips_image_get_width(in);
    int h = vips_image_get_height(in);
    int k = blur_factor(sigma, radius);
    VipsImage *kern = NULL;
    VipsImage *t[5] = {NULL};
    VipsInterpolate *cubic = NULL;
    VipsArrayInt *area = NULL;
    int rc = -1;

    if (k == 1) {
        kern = blur_exact_kernel(sigma, radius);
        if (kern == NULL || vips_convsep(in, out, kern, "precision",
                                         VIPS_PRECISION_FLOAT, NULL)) {
            goto done;
        }
        rc = 0;
        goto done;
    }

    /* Extend by copy so that the first and last BLUR_MARGIN_CELLS cells
     * on each side lie wholly outside the input, and round the size up to
     * whole cells; shrink; blur the coarse grid (copy edges again, which
     * continue the pure-copy cells exactly); interpolate back. Output
     * pixel x sits at coarse position (x + margin - (k - 1) / 2) / k. */
    int margin = BLUR_MARGIN_CELLS * k;
    int ew = (w + 2 * margin + k - 1) / k * k;
    int eh = (h + 2 * margin + k - 1) / k * k;
    double off = -margin + (k - 1) / 2.0;

    kern = blur_coarse_kernel(sigma, radius, k);
    if (kern == NULL || vips_cast(in, &t[0], VIPS_FORMAT_FLOAT, NULL) ||
        vips_embed(t[0], &t[1], margin, margin, ew, eh, "extend",
                   VIPS_EXTEND_COPY, NULL) ||
        vips_shrink(t[1], &t[2], k, k, NULL) ||
        vips_convsep(t[2], &t[3], kern, "precision", VIPS_PRECISION_FLOAT,
                     NULL)) {
        goto done;
    }
    /* The interpolator reads each coarse pixel for k x k output pixels;
     * without this copy every output tile would recompute the shrink and
     * the convolution of its whole neighbourhood. The coarse float image
     * takes at most as much memory as the 8-bit input (k >= 2). */
    t[4] = vips_image_copy_memory(t[3]);
    if (t[4] == NULL) {
        goto done;
    }
    cubic = vips_interpolate_new("bicubic");
    area = vips_array_int_newv(4, 0, 0, w, h);
    if (cubic == NULL ||
        vips_affine(t[4], out, (double)k, 0.0, 0.0, (double)k, "interpolate",
                    cubic, "odx", off, "ody", off, "oarea", area, NULL)) {
        goto done;
    }
    rc = 0;

done:
    if (area != NULL) {
        vips_area_unref(VIPS_AREA(area));
    }
    if (cubic != NULL) {
        g_object_unref(cubic);
    }
    for (int i = 4; i >= 0; i--) {
        if (t[i] != NULL) {
            g_object_unref(t[i]);
        }
    }
    if (kern != NULL) {
        g_object_unref(kern);
    }
    return rc;
}

static int
blur_infer(const void *params, const kiln_shape *in, kiln_shape *out,
           kiln_error *err)
{
    /* sigma > 0 is the host's check (KILN_PARAM_MIN_EXCLUSIVE). */
    (void)params;
    (void)err;
    return ops_infer_same(in, out);
}

static int
blur_execute(kiln_exec *ctx, const void *params, VipsImage *const *in,
             VipsImage **out, kiln_error *err)
{
    const blur_params *p = params;
    VipsImage *src = in[0];
    int bands = vips_image_get_bands(src);
    int radius = blur_radius(p);
    VipsImage *t[6] = {NULL};

    (void)ctx;
    if (vips_image_get_format(src) != VIPS_FORMAT_UCHAR ||
        (bands != 3 && bands != 4)) {
        return ops_api->error_set(err, KILN_EINTERNAL,
                                  "blur: expected 8-bit sRGB with 3 or 4 "
                                  "bands, got %d bands of format %d",
                                  bands, (int)vips_image_get_format(src));
    }
    if (bands == 3) {
        /* float -> uchar, rounding halves up (vips_linear truncates). */
        if (blur_float(src, p->sigma, radius, &t[0]) ||
            vips_linear1(t[0], out, 1.0, 0.5, "uchar", TRUE, NULL)) {
            goto fail;
        }
    } else {
        if (vips_premultiply(src, &t[0], NULL) ||
            blur_float(t[0], p->sigma, radius, &t[1]) ||
            vips_unpremultiply(t[1], &t[2], NULL) ||
            vips_extract_band(t[2], &t[3], 0, "n", 3, NULL) ||
            vips_linear1(t[3], &t[4], 1.0, 0.5, "uchar", TRUE, NULL) ||
            vips_extract_band(src, &t[5], 3, NULL) ||
            vips_bandjoin2(t[4], t[5], out, NULL)) {
            goto fail;
        }
    }
    for (int i = 5; i >= 0; i--) {
        if (t[i] != NULL) {
            g_object_unref(t[i]);
        }
    }
    return KILN_OK;

fail:
    for (int i = 5; i >= 0; i--) {
        if (t[i] != NULL) {
            g_object_unref(t[i]);
        }
    }
    return ops_api->error_set_vips(err, "blur");
}

const kiln_op blur_op = {
    .size = sizeof(kiln_op),
    .name = "blur",
    .summary = "Gaussian blur",
    .doc = "Blurs with a Gaussian of standard deviation sigma (pixels, "
           "above 0) whose kernel reaches at most radius pixels from the "
           "centre; radius 0 means 3 sigma. Edge pixels are extended. The "
           "size is unchanged.",
    .n_inputs = 1,
    .flags = KILN_OP_PURE | KILN_OP_SEQUENTIAL,
    .params_size = sizeof(blur_params),
    .params = blur_specs,
    .n_params = KILN_N_ELEMENTS(blur_specs),
    .infer = blur_infer,
};

const kiln_op_impl blur_vips = {
    .size = sizeof(kiln_op_impl),
    .op = "blur",
    .backend = "vips",
    .execute = blur_execute,
};
