/*
 * contrast: with f = ((100 + level) / 100)^2, each colour channel becomes
 * clamp(((c / 255 - 0.5) * f + 0.5) * 255), truncated (ops.md section 4).
 * level 0 is the identity, positive raises contrast, -100 gives flat grey;
 * GD's IMG_FILTER_CONTRAST with -level. The output keeps the input's size
 * and bands.
 *
 * One lookup table on the colour bands (gd_map), filled with GD's own
 * double-precision steps in GD's order, so every level matches php-gd
 * bit for bit, with one deliberate exception: level 0 returns the input
 * untouched. GD's arithmetic is not the identity there (c / 255 * 255
 * loses a bit, and truncation turns 1 into 0, 2 into 1, 5 into 4, ... for
 * twenty values below 59); ops.md promises the identity, within the
 * 1-level tolerance of GD.
 */
#include "gd.h"

static const kiln_param_spec contrast_specs[] = {
    KILN_P_NUMBER(contrast_params, level, -100, 100, 0,
                  "-100 (flat grey) to 100; positive raises contrast",
                  .flags = KILN_PARAM_REQUIRED),
};

static int
contrast_infer(const void *params, const kiln_shape *in, kiln_shape *out,
               kiln_error *err)
{
    (void)params;
    (void)err;
    return ops_infer_same(in, out);
}

static bool
contrast_is_noop(const void *params, const kiln_shape *in)
{
    (void)in;
    return ((const contrast_params *)params)->level == 0;
}

/* The table execute maps the colour bands through: the identity at level
 * 0, GD's arithmetic otherwise. */
static bool
contrast_lut(const void *params, gd_lut lut)
{
    const contrast_params *p = params;
    double f;

    /* GD: contrast = (100 - arg) / 100, squared, with arg = -level. */
    f = (100.0 - -p->level) / 100.0;
    f = f * f;
    for (int v = 0; v < 256; v++) {
        double c = (double)v / 255.0;

        c = c - 0.5;
        c = c * f;
        c = c + 0.5;
        c = c * 255.0;
        c = c > 255.0 ? 255.0 : (c < 0.0 ? 0.0 : c);
        lut[0][v] = lut[1][v] = lut[2][v] =
            p->level == 0 ? (uint8_t)v : (uint8_t)(int)c;
    }
    return true;
}

static int
contrast_execute(kiln_exec *ctx, const void *params, VipsImage *const *in,
                 VipsImage **out, kiln_error *err)
{
    const contrast_params *p = params;
    gd_lut lut;
    int rc;

    (void)ctx;
    rc = gd_check_input(in[0], "contrast", err);
    if (rc != KILN_OK) {
        return rc;
    }
    if (p->level == 0) {
        g_object_ref(in[0]);
        *out = in[0];
        return KILN_OK;
    }
    contrast_lut(params, lut);
    return gd_map(in[0], lut, "contrast", out, err);
}

const kiln_op contrast_op = {
    .size = sizeof(kiln_op),
    .name = "contrast",
    .summary = "raise or lower contrast",
    .doc = "Scales each colour channel's distance from mid-grey by "
           "((100 + level) / 100) squared, clamped and truncated; level 0 "
           "changes nothing, positive levels raise contrast and -100 gives "
           "flat grey. Same as GD's IMG_FILTER_CONTRAST with the sign "
           "inverted.",
    .n_inputs = 1,
    .flags = KILN_OP_PURE | KILN_OP_SEQUENTIAL,
    .params_size = sizeof(contrast_params),
    .params = contrast_specs,
    .n_params = KILN_N_ELEMENTS(contrast_specs),
    .infer = contrast_infer,
    .is_noop = contrast_is_noop,
    .lut = contrast_lut,
};

const kiln_op_impl contrast_vips = {
    .size = sizeof(kiln_op_impl),
    .op = "contrast",
    .backend = "vips",
    .execute = contrast_execute,
};
