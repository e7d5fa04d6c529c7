/*
 * resize: scale the input to width x height (ops.md section 4). Both given:
 * exactly that size, aspect ignored; one given: the other follows the
 * input's aspect ratio (the host's derive_size rule).
 *
 * ops_resample() is the resampler of every scaling op (resize, fitmethod,
 * zoom). vips_resize() with separate hscale = w / in_w and vscale =
 * h / in_h, Lanczos3 kernel; alpha is premultiplied around it so that
 * transparent pixels do not bleed colour. vips_resize() may round its size
 * one pixel off the target, so a final vips_embed() to exactly w x h crops
 * the extra pixel or repeats the edge one (at most one row or column):
 * the size infer() promises is the size execute() makes.
 * ops_resample_from() is the same from a source decoded at a reduced scale
 * (shrink-on-load): the scale factors come from the extent the full image
 * covers in it, so pixel centres map exactly as from the full image.
 */
#include "ops.h"

typedef struct resize_params {
    kiln_length width;
    kiln_length height;
} resize_params;

static const kiln_param_spec resize_specs[] = {
    KILN_P_LENGTH(resize_params, width, KILN_AXIS_WIDTH, KILN_UNITS_SIZE,
                  "output width; alone, the height follows the aspect ratio",
                  .flags = KILN_PARAM_ONE_OF),
    KILN_P_LENGTH(resize_params, height, KILN_AXIS_HEIGHT, KILN_UNITS_SIZE,
                  "output height; alone, the width follows the aspect ratio",
                  .flags = KILN_PARAM_ONE_OF),
};

int
ops_resample(VipsImage *in, int w, int h, VipsImage **out, kiln_error *err)
{
    return ops_resample_from(in, vips_image_get_width(in),
                             vips_image_get_height(in), w, h, out, err);
}

int
ops_resample_from(VipsImage *in, double ext_w, double ext_h, int w, int h,
                  VipsImage **out, kiln_error *err)
{
    VipsImage *t[5] = {NULL};
    VipsImage *cur = in;
    int in_w = vips_image_get_width(in);
    int in_h = vips_image_get_height(in);
    bool has_alpha = vips_image_hasalpha(in);
    VipsBandFormat format = vips_image_get_format(in);
    int rc;

    if (w == in_w && h == in_h && ext_w == in_w && ext_h == in_h) {
        *out = in;
        g_object_ref(in);
        return KILN_OK;
    }
    if (has_alpha) {
        if (vips_premultiply(cur, &t[0], NULL)) {
            goto fail;
        }
        cur = t[0];
    }
    if (vips_resize(cur, &t[1], w / ext_w, "vscale", h / ext_h, "kernel",
                    VIPS_KERNEL_LANCZOS3, NULL)) {
        goto fail;
    }
    cur = t[1];
    if (has_alpha) {
        if (vips_unpremultiply(cur, &t[2], NULL) ||
            vips_cast(t[2], &t[3], format, NULL)) {
            goto fail;
        }
        cur = t[3];
    }
    if (vips_image_get_width(cur) != w || vips_image_get_height(cur) != h) {
        if (vips_embed(cur, &t[4], 0, 0, w, h, "extend", VIPS_EXTEND_COPY,
                       NULL)) {
            goto fail;
        }
        cur = t[4];
    }
    g_object_ref(cur);
    *out = cur;
    rc = KILN_OK;
    goto done;

fail:
    rc = ops_api->error_set_vips(err, "resize");
done:
    for (int i = 4; i >= 0; i--) {
        if (t[i] != NULL) {
            g_object_unref(t[i]);
        }
    }
    return rc;
}

static int
resize_infer(const void *params, const kiln_shape *in, kiln_shape *out,
             kiln_error *err)
{
    const resize_params *p = params;

    *out = *in;
    return ops_api->derive_size(&p->width, &p->height, in->width, in->height,
                                &out->width, &out->height, err);
}

/* A resize to its input's size returns the input (ops_resample). */
static bool
resize_is_noop(const void *params, const kiln_shape *in)
{
    kiln_shape out;
    kiln_error err;

    return in != NULL && resize_infer(params, in, &out, &err) == KILN_OK &&
           out.width == in->width && out.height == in->height;
}

static bool
resize_sample_scale(const void *params, const kiln_shape *in, double *sx,
                    double *sy)
{
    kiln_shape out;
    kiln_error err;

    if (resize_infer(params, in, &out, &err) != KILN_OK) {
        return false;
    }
    *sx = (double)out.width / in->width;
    *sy = (double)out.height / in->height;
    return true;
}

static int
resize_execute_reduced(kiln_exec *ctx, const void *params,
                       const kiln_reduction *r, VipsImage *const *in,
                       VipsImage **out, kiln_error *err)
{
    kiln_shape size;
    int rc;

    (void)ctx;
    rc = resize_infer(params, &r->bound, &size, err);
    if (rc != KILN_OK) {
        return rc;
    }
    return ops_resample_from(in[0], r->bound.width * r->xscale,
                             r->bound.height * r->yscale, size.width,
                             size.height, out, err);
}

static int
resize_execute(kiln_exec *ctx, const void *params, VipsImage *const *in,
               VipsImage **out, kiln_error *err)
{
    const resize_params *p = params;
    int w, h;
    int rc;

    (void)ctx;
    rc =
        ops_api->derive_size(&p->width, &p->height, vips_image_get_width(in[0]),
                             vips_image_get_height(in[0]), &w, &h, err);
    if (rc != KILN_OK) {
        return rc;
    }
    return ops_resample(in[0], w, h, out, err);
}

const kiln_op resize_op = {
    .name = "resize",
    .summary = "scale to a width and/or height",
    .doc = "Scales the image to width x height. With both given the result "
           "has exactly that size and the aspect ratio may change; with one "
           "given the other follows the input's aspect ratio. Resampling is "
           "Lanczos3.",
    .n_inputs = 1,
    .flags = KILN_OP_PURE | KILN_OP_SEQUENTIAL,
    .params_size = sizeof(resize_params),
    .params = resize_specs,
    .n_params = KILN_N_ELEMENTS(resize_specs),
    .infer = resize_infer,
    .execute = resize_execute,
    .is_noop = resize_is_noop,
    .sample_scale = resize_sample_scale,
    .execute_reduced = resize_execute_reduced,
};
