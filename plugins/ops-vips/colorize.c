/*
 * colorize: add `red`, `green` and `blue` (0..255 each) to their channels,
 * clamped, alpha untouched: GD's IMG_FILTER_COLORIZE with alpha 0 (ops.md
 * section 4). The output keeps the input's size and bands. One lookup
 * table per colour band (gd_map), which is GD's integer arithmetic exactly.
 */
#include "gd.h"

static const kiln_param_spec colorize_specs[] = {
    KILN_P_NUMBER(colorize_params, red, 0, 255, 0,
                  "amount added to red, 0 to 255",
                  .flags = KILN_PARAM_REQUIRED | KILN_PARAM_INTEGER),
    KILN_P_NUMBER(colorize_params, green, 0, 255, 0,
                  "amount added to green, 0 to 255",
                  .flags = KILN_PARAM_REQUIRED | KILN_PARAM_INTEGER),
    KILN_P_NUMBER(colorize_params, blue, 0, 255, 0,
                  "amount added to blue, 0 to 255",
                  .flags = KILN_PARAM_REQUIRED | KILN_PARAM_INTEGER),
};

static int
colorize_infer(const void *params, const kiln_shape *in, kiln_shape *out,
               kiln_error *err)
{
    (void)params;
    (void)err;
    return ops_infer_same(in, out);
}

static bool
colorize_is_noop(const void *params, const kiln_shape *in)
{
    const colorize_params *p = params;

    (void)in;
    return p->red == 0 && p->green == 0 && p->blue == 0;
}

/* The tables execute maps the colour bands through. */
static bool
colorize_lut(const void *params, gd_lut lut)
{
    const colorize_params *p = params;
    const int add[3] = {(int)p->red, (int)p->green, (int)p->blue};

    for (int band = 0; band < 3; band++) {
        for (int v = 0; v < 256; v++) {
            int c = v + add[band];

            lut[band][v] = (uint8_t)(c > 255 ? 255 : c);
        }
    }
    return true;
}

static int
colorize_execute(kiln_exec *ctx, const void *params, VipsImage *const *in,
                 VipsImage **out, kiln_error *err)
{
    gd_lut lut;

    (void)ctx;
    colorize_lut(params, lut);
    return gd_map(in[0], lut, "colorize", out, err);
}

const kiln_op colorize_op = {
    .size = sizeof(kiln_op),
    .name = "colorize",
    .summary = "add amounts to red, green and blue",
    .doc = "Adds red, green and blue (0 to 255 each) to their channels, "
           "clamped to 0..255; alpha is untouched. Same as GD's "
           "IMG_FILTER_COLORIZE with alpha 0.",
    .n_inputs = 1,
    .flags = KILN_OP_PURE | KILN_OP_SEQUENTIAL,
    .params_size = sizeof(colorize_params),
    .params = colorize_specs,
    .n_params = KILN_N_ELEMENTS(colorize_specs),
    .infer = colorize_infer,
    .is_noop = colorize_is_noop,
    .lut = colorize_lut,
};

const kiln_op_impl colorize_vips = {
    .size = sizeof(kiln_op_impl),
    .op = "colorize",
    .backend = "vips",
    .execute = colorize_execute,
};
