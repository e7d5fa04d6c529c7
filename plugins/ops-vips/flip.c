/*
 * flip: mirror the image (ops.md section 4). "x" and "horizontal" mirror
 * left-right, "y" and "vertical" top-bottom; vips_flip() is lossless and
 * keeps the size and bands.
 */
#include "ops.h"

/* The first two values mirror left-right, the last two top-bottom. */
static const char *const flip_directions[] = {"x", "horizontal", "y",
                                              "vertical", NULL};

static const kiln_param_spec flip_specs[] = {
    KILN_P_ENUM(flip_params, direction, flip_directions, 0,
                "x or horizontal mirrors left-right, y or vertical "
                "top-bottom",
                .flags = KILN_PARAM_REQUIRED),
};

static int
flip_infer(const void *params, const kiln_shape *in, kiln_shape *out,
           kiln_error *err)
{
    (void)params;
    (void)err;
    return ops_infer_same(in, out);
}

/* Mirroring one axis twice gives the input back; mirroring both axes is
 * a rotation by 180, which is another op's business. */
static int
flip_compose(const void *first, const void *second, void *merged)
{
    bool a_x = ((const flip_params *)first)->direction < 2;
    bool b_x = ((const flip_params *)second)->direction < 2;

    (void)merged;
    return a_x == b_x ? KILN_COMPOSE_IDENTITY : KILN_COMPOSE_NONE;
}

static int
flip_execute(kiln_exec *ctx, const void *params, VipsImage *const *in,
             VipsImage **out, kiln_error *err)
{
    const flip_params *p = params;
    VipsDirection dir =
        p->direction < 2 ? VIPS_DIRECTION_HORIZONTAL : VIPS_DIRECTION_VERTICAL;

    (void)ctx;
    if (vips_flip(in[0], out, dir, NULL)) {
        return ops_api->error_set_vips(err, "flip");
    }
    return KILN_OK;
}

const kiln_op flip_op = {
    .size = sizeof(kiln_op),
    .name = "flip",
    .summary = "mirror left-right or top-bottom",
    .doc = "Mirrors the image: direction x (or horizontal) swaps left and "
           "right, y (or vertical) swaps top and bottom. Lossless; the size "
           "is unchanged.",
    .n_inputs = 1,
    .flags = KILN_OP_PURE,
    .params_size = sizeof(flip_params),
    .params = flip_specs,
    .n_params = KILN_N_ELEMENTS(flip_specs),
    .infer = flip_infer,
    .compose = flip_compose,
};

const kiln_op_impl flip_vips = {
    .size = sizeof(kiln_op_impl),
    .op = "flip",
    .backend = "vips",
    .execute = flip_execute,
};
