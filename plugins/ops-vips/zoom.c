/*
 * zoom: zoom into the centre and fill a width x height box (ops.md section
 * 4). With z = 1 + level, the centred region of round(w / z) x
 * round(h / z) input pixels (halves up, at least 1) is kept, then treated
 * as fitmethod cropbox with gravity center: scaled to cover W x H keeping
 * aspect (ops_resample(), exact size) and cropped to exactly W x H.
 * level 0 is a plain cover-crop. ops_zoom_plan_make() (geom.h, shared with
 * the other backends) serves infer and execute.
 */
#include "ops.h"

static const kiln_param_spec zoom_specs[] = {
    KILN_P_LENGTH(zoom_params, width, KILN_AXIS_WIDTH, KILN_UNITS_SIZE,
                  "output width; alone, the height follows the aspect ratio",
                  .flags = KILN_PARAM_ONE_OF),
    KILN_P_LENGTH(zoom_params, height, KILN_AXIS_HEIGHT, KILN_UNITS_SIZE,
                  "output height; alone, the width follows the aspect ratio",
                  .flags = KILN_PARAM_ONE_OF),
    KILN_P_NUMBER(zoom_params, level, 0, 10, 0,
                  "zoom level: the centre 1 / (1 + level) of the input is "
                  "kept",
                  .flags = KILN_PARAM_REQUIRED),
};

static int
zoom_infer(const void *params, const kiln_shape *in, kiln_shape *out,
           kiln_error *err)
{
    ops_zoom_plan plan;
    int rc =
        ops_zoom_plan_make(ops_api, params, in->width, in->height, &plan, err);

    if (rc != KILN_OK) {
        return rc;
    }
    *out = *in;
    out->width = plan.out_w;
    out->height = plan.out_h;
    return KILN_OK;
}

/* Level 0 to the input's own size keeps the whole input, scales it by 1
 * (ops_resample returns it) and cuts nothing. */
static bool
zoom_is_noop(const void *params, const kiln_shape *in)
{
    ops_zoom_plan plan;
    kiln_error err;

    return in != NULL && ((const zoom_params *)params)->level == 0 &&
           ops_zoom_plan_make(ops_api, params, in->width, in->height, &plan,
                              &err) == KILN_OK &&
           plan.out_w == in->width && plan.out_h == in->height &&
           plan.scaled_w == in->width && plan.scaled_h == in->height;
}

static int
zoom_execute(kiln_exec *ctx, const void *params, VipsImage *const *in,
             VipsImage **out, kiln_error *err)
{
    ops_zoom_plan plan;
    VipsImage *region = NULL;
    VipsImage *scaled = NULL;
    int rc;

    (void)ctx;
    rc = ops_zoom_plan_make(ops_api, params, vips_image_get_width(in[0]),
                            vips_image_get_height(in[0]), &plan, err);
    if (rc != KILN_OK) {
        return rc;
    }
    if (vips_extract_area(in[0], &region, plan.region.x, plan.region.y,
                          plan.region.width, plan.region.height, NULL)) {
        return ops_api->error_set_vips(err, "zoom");
    }
    rc = ops_resample(region, plan.scaled_w, plan.scaled_h, &scaled, err);
    if (rc == KILN_OK && vips_extract_area(scaled, out, plan.x, plan.y,
                                           plan.out_w, plan.out_h, NULL)) {
        rc = ops_api->error_set_vips(err, "zoom");
    }
    if (scaled != NULL) {
        g_object_unref(scaled);
    }
    g_object_unref(region);
    return rc;
}

const kiln_op zoom_op = {
    .size = sizeof(kiln_op),
    .name = "zoom",
    .summary = "zoom into the centre and fill a width x height box",
    .doc = "Keeps the centred 1 / (1 + level) of the input (level 0 to 10) "
           "and scales it, keeping its aspect ratio, to cover width x "
           "height, cropping the overflow evenly from both sides. level 0 "
           "is a plain cover-crop.",
    .n_inputs = 1,
    .flags = KILN_OP_PURE | KILN_OP_SEQUENTIAL,
    .params_size = sizeof(zoom_params),
    .params = zoom_specs,
    .n_params = KILN_N_ELEMENTS(zoom_specs),
    .infer = zoom_infer,
    .is_noop = zoom_is_noop,
};

const kiln_op_impl zoom_vips = {
    .size = sizeof(kiln_op_impl),
    .op = "zoom",
    .backend = "vips",
    .execute = zoom_execute,
};
