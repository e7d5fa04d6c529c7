/*
 * crop: cut a width x height region out of the input, never resampling
 * (ops.md section 4). The region is placed by gravity and inward offsets
 * (the host's place(), ImageMagick's convention). fit true: a region larger
 * than the input is first shrunk uniformly, keeping its aspect ratio, then
 * placed, then shifted as little as needed to lie inside the input. fit
 * false: the placed region is intersected with the input, as
 * `convert -gravity G -crop WxH+X+Y +repage` does; an empty intersection is
 * an error. ops_crop_region() (geom.h, shared with the other backends) does
 * the arithmetic for both infer and execute.
 */
#include "ops.h"

static const kiln_param_spec crop_specs[] = {
    KILN_P_GRAVITY(crop_params, gravity, KILN_GRAVITY_NORTHWEST,
                   "where the region sits in the input",
                   .flags = KILN_PARAM_REQUIRED),
    KILN_P_LENGTH(crop_params, width, KILN_AXIS_WIDTH, KILN_UNITS_SIZE,
                  "region width; alone, the height follows the aspect ratio",
                  .flags = KILN_PARAM_ONE_OF),
    KILN_P_LENGTH(crop_params, height, KILN_AXIS_HEIGHT, KILN_UNITS_SIZE,
                  "region height; alone, the width follows the aspect ratio",
                  .flags = KILN_PARAM_ONE_OF),
    KILN_P_LENGTH(crop_params, xoffset, KILN_AXIS_X, KILN_UNITS_OFFSET,
                  "horizontal offset, inward from the gravity's edge"),
    KILN_P_LENGTH(crop_params, yoffset, KILN_AXIS_Y, KILN_UNITS_OFFSET,
                  "vertical offset, inward from the gravity's edge"),
    KILN_P_BOOL(crop_params, fit, true,
                "shrink and shift the region to fit inside the input "
                "(false: keep only its part inside the input)"),
};

static int
crop_infer(const void *params, const kiln_shape *in, kiln_shape *out,
           kiln_error *err)
{
    kiln_rect r;
    int rc = ops_crop_region(ops_api, params, in->width, in->height, &r, err);

    if (rc != KILN_OK) {
        return rc;
    }
    *out = *in;
    out->width = r.width;
    out->height = r.height;
    return KILN_OK;
}

/* A region that is the whole input is the input (vips_extract_area). */
static bool
crop_is_noop(const void *params, const kiln_shape *in)
{
    kiln_rect r;
    kiln_error err;

    return in != NULL &&
           ops_crop_region(ops_api, params, in->width, in->height, &r, &err) ==
               KILN_OK &&
           r.x == 0 && r.y == 0 && r.width == in->width &&
           r.height == in->height;
}

/* The rectangle crop_execute() cuts, for the optimizer (crop-first). */
static bool
crop_region_of(const void *params, const kiln_shape *in, kiln_rect *r)
{
    kiln_error err;

    return in != NULL && ops_crop_region(ops_api, params, in->width, in->height,
                                         r, &err) == KILN_OK;
}

static int
crop_execute(kiln_exec *ctx, const void *params, VipsImage *const *in,
             VipsImage **out, kiln_error *err)
{
    kiln_rect r;
    int rc;

    (void)ctx;
    rc = ops_crop_region(ops_api, params, vips_image_get_width(in[0]),
                         vips_image_get_height(in[0]), &r, err);
    if (rc != KILN_OK) {
        return rc;
    }
    if (vips_extract_area(in[0], out, r.x, r.y, r.width, r.height, NULL)) {
        return ops_api->error_set_vips(err, "crop");
    }
    return KILN_OK;
}

const kiln_op crop_op = {
    .size = sizeof(kiln_op),
    .name = "crop",
    .summary = "cut out a region placed by gravity and offsets",
    .doc = "Keeps a width x height region of the input, placed by gravity "
           "and offsets that move inward from the gravity's edge; pixels "
           "are never resampled. With fit true (the default) a region "
           "larger than the input is shrunk, keeping its aspect ratio, and "
           "shifted to lie inside the input. With fit false only the part "
           "of the region inside the input is kept, and a region entirely "
           "outside is an error.",
    .n_inputs = 1,
    .flags = KILN_OP_PURE | KILN_OP_SEQUENTIAL,
    .params_size = sizeof(crop_params),
    .params = crop_specs,
    .n_params = KILN_N_ELEMENTS(crop_specs),
    .infer = crop_infer,
    .is_noop = crop_is_noop,
    .region = crop_region_of,
};

const kiln_op_impl crop_vips = {
    .size = sizeof(kiln_op_impl),
    .op = "crop",
    .backend = "vips",
    .execute = crop_execute,
};
