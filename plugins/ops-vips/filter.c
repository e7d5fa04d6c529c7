/*
 * filter: PHP GD's imagefilter() family (ops.md section 4.1): negate,
 * grayscale, bw, sepia, the 3x3 GD convolutions (edgedetect, emboss,
 * blurgaussian, meanremoval, smooth with its `weight`) and GD's in-place
 * selective blur. Colour channels only, alpha unchanged; on opaque 8-bit
 * input the result must match php-gd within 1 level. The output keeps the
 * input's size and bands.
 *
 * How each is exact: negate is a lookup table; grayscale and bw recombine
 * in double precision with GD's coefficients in GD's order (vips_recomb on
 * a double image sums 0 + .299 R + .587 G + .114 B, as GD's expression
 * does) and truncate with vips_cast, which truncates toward zero (and
 * clamps) in libvips 8.14; sepia (not a GD filter) recombines the same way
 * and truncates the exact decimal result (see filter_recolour), clamped.
 * The convolutions and the selective blur are gd.c's loops, which repeat
 * GD's float arithmetic step for step.
 */
#include "gd.h"

static const char *const filter_names[] = {
    "negate", "grayscale",    "bw",          "sepia",  "edgedetect",
    "emboss", "blurgaussian", "meanremoval", "smooth", "blurselective",
    NULL};

static const kiln_param_spec filter_specs[] = {
    KILN_P_ENUM(filter_params, filter, filter_names, FILTER_NEGATE,
                "which GD filter to apply", .flags = KILN_PARAM_REQUIRED),
    KILN_P_NUMBER(filter_params, weight, -1e6, 1e6, 1,
                  "smooth only: weight of the centre pixel; the kernel is "
                  "divided by weight + 8"),
};

static int
filter_infer(const void *params, const kiln_shape *in, kiln_shape *out,
             kiln_error *err)
{
    const filter_params *p = params;

    /* GD would divide by zero: reject it rather than copy undefined
     * behaviour. GD sums the divisor in float, so a weight that is -8 as
     * a float (-8.0000001) is rejected too. */
    if (p->filter == FILTER_SMOOTH && (float)p->weight + 8.0f == 0.0f) {
        return ops_api->error_set_param(
            err, KILN_EINVAL, "weight",
            "weight \"%.10g\" makes the smooth divisor weight + 8 zero "
            "(expected any other number)",
            p->weight);
    }
    return ops_infer_same(in, out);
}

/* GD's kernels (gd_filter.c), row-major, with divisor and offset. */
static const struct {
    float kernel[9];
    float div;
    float offset;
} filter_kernels[] = {
    [FILTER_EDGEDETECT] = {{-1, 0, -1, 0, 4, 0, -1, 0, -1}, 1, 127},
    [FILTER_EMBOSS] = {{1.5f, 0, 0, 0, 0, 0, 0, 0, -1.5f}, 1, 127},
    [FILTER_BLURGAUSSIAN] = {{1, 2, 1, 2, 4, 2, 1, 2, 1}, 16, 0},
    [FILTER_MEANREMOVAL] = {{-1, -1, -1, -1, 9, -1, -1, -1, -1}, 1, 0},
};

/*
 * The colour bands of `in` (3) recombined through the rows x 3 matrix
 * `m` in double precision: *out is a double image with `rows` bands.
 */
static int
filter_recomb(VipsImage *in, const double *m, int rows, VipsImage **out)
{
    VipsImage *t[3] = {NULL};
    int rc = -1;

    if (vips_extract_band(in, &t[0], 0, "n", 3, NULL) ||
        vips_cast(t[0], &t[1], VIPS_FORMAT_DOUBLE, NULL)) {
        goto done;
    }
    t[2] = vips_image_new_matrix_from_array(3, rows, m, 3 * rows);
    if (t[2] == NULL || vips_recomb(t[1], out, t[2], NULL)) {
        goto done;
    }
    rc = 0;
done:
    for (int i = 2; i >= 0; i--) {
        if (t[i] != NULL) {
            g_object_unref(t[i]);
        }
    }
    return rc;
}

/*
 * grayscale, bw and sepia: a 3-band uchar colour image made from `in`,
 * with in's alpha band joined back when there is one, tagged sRGB.
 */
static int
filter_recolour(VipsImage *in, int filter, VipsImage **out, kiln_error *err)
{
    static const double gray[3] = {.299, .587, .114};
    static const double sepia[9] = {.3588, .7044, .1368, .2990, .5870,
                                    .1140, .2392, .4696, .0912};
    VipsImage *t[6] = {NULL};
    VipsImage *parts[4];
    int n = 0;
    int rc = KILN_OK;

    if (filter == FILTER_SEPIA) {
        /* Clamped and truncated, like GD's filters and like
         * `convert -color-matrix`. With four-decimal coefficients and
         * integer inputs the exact sums are multiples of 1e-4; adding
         * 1e-7 undoes the double rounding error (about 1e-13) that would
         * turn an exact integer such as 20 * .8 = 16 into 15.999..., and
         * moves no other value across an integer. */
        const double one = 1.0, tiny = 1e-7;

        if (filter_recomb(in, sepia, 3, &t[0]) ||
            vips_linear(t[0], &t[1], &one, &tiny, 1, NULL) ||
            vips_cast(t[1], &t[2], VIPS_FORMAT_UCHAR, NULL)) {
            goto fail;
        }
        parts[n++] = t[2];
    } else {
        /* GD's (int) cast: vips_cast truncates, and v >= 0. */
        if (filter_recomb(in, gray, 1, &t[0]) ||
            vips_cast(t[0], &t[1], VIPS_FORMAT_UCHAR, NULL)) {
            goto fail;
        }
        if (filter == FILTER_BW) {
            /* 255 where true, 0 where false. */
            if (vips_moreeq_const1(t[1], &t[2], 128, NULL)) {
                goto fail;
            }
        }
        parts[0] = parts[1] = parts[2] = t[filter == FILTER_BW ? 2 : 1];
        n = 3;
    }
    if (vips_image_get_bands(in) == 4) {
        if (vips_extract_band(in, &t[3], 3, NULL)) {
            goto fail;
        }
        parts[n++] = t[3];
    }
    if (vips_bandjoin(parts, &t[4], n, NULL) ||
        vips_copy(t[4], out, "interpretation", VIPS_INTERPRETATION_sRGB,
                  NULL)) {
        goto fail;
    }
    goto done;

fail:
    rc = ops_api->error_set_vips(err, "filter");
done:
    for (int i = 5; i >= 0; i--) {
        if (t[i] != NULL) {
            g_object_unref(t[i]);
        }
    }
    return rc;
}

/* negate is a table on the colour bands; the other filters mix bands or
 * neighbours. */
static bool
filter_lut(const void *params, gd_lut lut)
{
    if (((const filter_params *)params)->filter != FILTER_NEGATE) {
        return false;
    }
    for (int v = 0; v < 256; v++) {
        lut[0][v] = lut[1][v] = lut[2][v] = (uint8_t)(255 - v);
    }
    return true;
}

static int
filter_execute(kiln_exec *ctx, const void *params, VipsImage *const *in,
               VipsImage **out, kiln_error *err)
{
    const filter_params *p = params;
    int rc;

    (void)ctx;
    rc = gd_check_input(in[0], "filter", err);
    if (rc != KILN_OK) {
        return rc;
    }
    switch (p->filter) {
    case FILTER_NEGATE: {
        gd_lut lut;

        filter_lut(params, lut);
        return gd_map(in[0], lut, "filter", out, err);
    }
    case FILTER_GRAYSCALE:
    case FILTER_BW:
    case FILTER_SEPIA:
        return filter_recolour(in[0], p->filter, out, err);
    case FILTER_EDGEDETECT:
    case FILTER_EMBOSS:
    case FILTER_BLURGAUSSIAN:
    case FILTER_MEANREMOVAL:
        return gd_convolve(in[0], filter_kernels[p->filter].kernel,
                           filter_kernels[p->filter].div,
                           filter_kernels[p->filter].offset, "filter", out,
                           err);
    case FILTER_SMOOTH: {
        /* PHP hands GD the weight as a float; GD sums the divisor in
         * float. infer() has rejected a zero divisor. */
        float w = (float)p->weight;
        const float kernel[9] = {1, 1, 1, 1, w, 1, 1, 1, 1};

        return gd_convolve(in[0], kernel, w + 8.0f, 0.0f, "filter", out, err);
    }
    case FILTER_BLURSELECTIVE:
        return gd_selective_blur(in[0], "filter", out, err);
    default:
        return ops_api->error_set(err, KILN_EINTERNAL,
                                  "filter: unknown filter %d", p->filter);
    }
}

const kiln_op filter_op = {
    .size = sizeof(kiln_op),
    .name = "filter",
    .summary = "apply a PHP GD imagefilter() effect",
    .doc = "Applies one of GD's filters, matching PHP's imagefilter(): "
           "negate, grayscale, bw, sepia, edgedetect, emboss, blurgaussian, "
           "meanremoval, smooth (with weight, default 1) or blurselective. "
           "Colour channels only; alpha is unchanged, and so is the size.",
    .n_inputs = 1,
    .flags = KILN_OP_PURE | KILN_OP_SEQUENTIAL,
    .params_size = sizeof(filter_params),
    .params = filter_specs,
    .n_params = KILN_N_ELEMENTS(filter_specs),
    .infer = filter_infer,
    .lut = filter_lut,
};

const kiln_op_impl filter_vips = {
    .size = sizeof(kiln_op_impl),
    .op = "filter",
    .backend = "vips",
    .execute = filter_execute,
};
