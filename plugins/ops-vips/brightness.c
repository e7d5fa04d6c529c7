/*
 * brightness: add `bright_level` (-255..255) to R, G and B, clamped to
 * 0..255, alpha untouched: GD's IMG_FILTER_BRIGHTNESS (ops.md section 4).
 * The output keeps the input's size and bands. One lookup table on the
 * colour bands (gd_map), which is GD's integer arithmetic exactly.
 */
#include "gd.h"

static const kiln_param_spec brightness_specs[] = {
    KILN_P_NUMBER(brightness_params, bright_level, -255, 255, 0,
                  "amount added to red, green and blue, -255 to 255",
                  .flags = KILN_PARAM_REQUIRED | KILN_PARAM_INTEGER),
};

static int
brightness_infer(const void *params, const kiln_shape *in, kiln_shape *out,
                 kiln_error *err)
{
    (void)params;
    (void)err;
    return ops_infer_same(in, out);
}

static bool
brightness_is_noop(const void *params, const kiln_shape *in)
{
    (void)in;
    return ((const brightness_params *)params)->bright_level == 0;
}

/* The table execute maps the colour bands through. */
static bool
brightness_lut(const void *params, gd_lut lut)
{
    int level = (int)((const brightness_params *)params)->bright_level;

    for (int v = 0; v < 256; v++) {
        int c = v + level;

        c = c > 255 ? 255 : (c < 0 ? 0 : c);
        lut[0][v] = lut[1][v] = lut[2][v] = (uint8_t)c;
    }
    return true;
}

static int
brightness_execute(kiln_exec *ctx, const void *params, VipsImage *const *in,
                   VipsImage **out, kiln_error *err)
{
    gd_lut lut;

    (void)ctx;
    brightness_lut(params, lut);
    return gd_map(in[0], lut, "brightness", out, err);
}

const kiln_op brightness_op = {
    .size = sizeof(kiln_op),
    .name = "brightness",
    .summary = "add a level to red, green and blue",
    .doc = "Adds bright_level (-255 to 255) to the red, green and blue "
           "channels, clamped to 0..255; alpha is untouched. Same as GD's "
           "IMG_FILTER_BRIGHTNESS.",
    .n_inputs = 1,
    .flags = KILN_OP_PURE | KILN_OP_SEQUENTIAL,
    .params_size = sizeof(brightness_params),
    .params = brightness_specs,
    .n_params = KILN_N_ELEMENTS(brightness_specs),
    .infer = brightness_infer,
    .is_noop = brightness_is_noop,
    .lut = brightness_lut,
};

const kiln_op_impl brightness_vips = {
    .size = sizeof(kiln_op_impl),
    .op = "brightness",
    .backend = "vips",
    .execute = brightness_execute,
};
