/*
 * rotate: turn the image clockwise by `degrees` (0..360, two decimals at
 * most; ops.md section 4). Multiples of 90 use vips_rot(): exact, lossless,
 * same bands. Other angles rotate about the centre with a bicubic
 * vips_affine() onto the rotated bounding box, W = round(w|cos| + h|sin|),
 * H = round(w|sin| + h|cos|) (halves up), which is the size vips_rotate()
 * picks (ops_rotate_size(), geom.h, shared with the other backends). We pass
 * that box as `oarea` ourselves instead of calling vips_rotate(), so the size
 * cannot drift from what infer() promised, and we map centre to centre in
 * libvips' pixel-index coordinates (pixel i is sampled at i, so an n-pixel axis
 * has its centre at (n - 1) / 2). The corners the rotated image does not cover
 * are transparent: an opaque alpha band is added first when the input has none,
 * and vips_affine() fills with 0 and premultiplies around the interpolation
 * itself.
 */
#include <math.h>

#include "ops.h"

static const kiln_param_spec rotate_specs[] = {
    KILN_P_NUMBER(rotate_params, degrees, 0, 360, 0,
                  "clockwise angle in degrees", .flags = KILN_PARAM_REQUIRED,
                  .max_decimals = 2),
};

static int
rotate_infer(const void *params, const kiln_shape *in, kiln_shape *out,
             kiln_error *err)
{
    const rotate_params *p = params;

    *out = *in;
    if (ops_rotate_quarters(p->degrees) < 0) {
        out->bands = in->has_alpha ? in->bands : in->bands + 1;
        out->has_alpha = true;
    }
    return ops_rotate_size(ops_api, p, in->width, in->height, &out->width,
                           &out->height, err);
}

/* 0 and 360 degrees: vips_rot by no quarter turn is the input. */
static bool
rotate_is_noop(const void *params, const kiln_shape *in)
{
    (void)in;
    return ops_rotate_quarters(((const rotate_params *)params)->degrees) == 0;
}

/* Quarter turns add up exactly (vips_rot is lossless); other angles
 * resample, and two resamples are not one. */
static int
rotate_compose(const void *first, const void *second, void *merged)
{
    int a = ops_rotate_quarters(((const rotate_params *)first)->degrees);
    int b = ops_rotate_quarters(((const rotate_params *)second)->degrees);

    if (a < 0 || b < 0) {
        return KILN_COMPOSE_NONE;
    }
    if ((a + b) % 4 == 0) {
        return KILN_COMPOSE_IDENTITY;
    }
    ((rotate_params *)merged)->degrees = 90.0 * ((a + b) % 4);
    return KILN_COMPOSE_MERGED;
}

static int
rotate_execute(kiln_exec *ctx, const void *params, VipsImage *const *in,
               VipsImage **out, kiln_error *err)
{
    static const VipsAngle quarter_angles[] = {
        VIPS_ANGLE_D0, VIPS_ANGLE_D90, VIPS_ANGLE_D180, VIPS_ANGLE_D270};
    const rotate_params *p = params;
    int w = vips_image_get_width(in[0]);
    int h = vips_image_get_height(in[0]);
    int q = ops_rotate_quarters(p->degrees);
    VipsImage *t[3] = {NULL};
    VipsImage *cur = in[0];
    VipsInterpolate *bicubic = NULL;
    VipsArrayInt *area = NULL;
    VipsArrayDouble *background = NULL;
    double rad = p->degrees * (VIPS_PI / 180);
    int ow = 0, oh = 0;
    int rc;

    (void)ctx;
    if (q >= 0) {
        if (vips_rot(in[0], out, quarter_angles[q], NULL)) {
            return ops_api->error_set_vips(err, "rotate");
        }
        return KILN_OK;
    }
    rc = ops_rotate_size(ops_api, p, w, h, &ow, &oh, err);
    if (rc != KILN_OK) {
        return rc;
    }

    if (!vips_image_hasalpha(cur)) {
        if (vips_bandjoin_const1(cur, &t[0], 255, NULL)) {
            goto fail;
        }
        cur = t[0];
    }

    bicubic = vips_interpolate_new("bicubic");
    area = vips_array_int_newv(4, 0, 0, ow, oh);
    background = vips_array_double_newv(4, 0.0, 0.0, 0.0, 0.0);
    if (bicubic == NULL || area == NULL || background == NULL) {
        goto fail;
    }
    /* Forward map: out = R * (in - in_centre) + out_centre, R turning
     * clockwise on screen (y grows downwards). */
    if (vips_affine(cur, &t[1], cos(rad), -sin(rad), sin(rad), cos(rad),
                    "interpolate", bicubic, "oarea", area, "idx",
                    -(w - 1) / 2.0, "idy", -(h - 1) / 2.0, "odx",
                    (ow - 1) / 2.0, "ody", (oh - 1) / 2.0, "background",
                    background, NULL)) {
        goto fail;
    }
    cur = t[1];
    if (vips_image_get_format(cur) != VIPS_FORMAT_UCHAR) {
        if (vips_cast_uchar(cur, &t[2], NULL)) {
            goto fail;
        }
        cur = t[2];
    }
    /* The rotated image is rendered once, here. Read through the affine,
     * every region a later op asks for (a resize's tall strips, a blur's
     * margins) recomputes a slanted band of the input around it: a
     * 1942x1730 rotation then a resize to a tenth took 40 s that way, 0.4
     * s from memory (the chain property tests found it). */
    cur = vips_image_copy_memory(cur);
    if (cur == NULL) {
        goto fail;
    }
    *out = cur;
    rc = KILN_OK;
    goto done;

fail:
    rc = ops_api->error_set_vips(err, "rotate");
done:
    if (background != NULL) {
        vips_area_unref(VIPS_AREA(background));
    }
    if (area != NULL) {
        vips_area_unref(VIPS_AREA(area));
    }
    if (bicubic != NULL) {
        g_object_unref(bicubic);
    }
    for (int i = 2; i >= 0; i--) {
        if (t[i] != NULL) {
            g_object_unref(t[i]);
        }
    }
    return rc;
}

const kiln_op rotate_op = {
    .size = sizeof(kiln_op),
    .name = "rotate",
    .summary = "turn clockwise by an angle in degrees",
    .doc = "Turns the image clockwise by degrees (0 to 360, at most two "
           "decimals). Multiples of 90 are exact and lossless. Other angles "
           "rotate about the centre onto the rotated bounding box; the "
           "corners it adds are transparent, so the result has an alpha "
           "band.",
    .n_inputs = 1,
    .flags = KILN_OP_PURE,
    .params_size = sizeof(rotate_params),
    .params = rotate_specs,
    .n_params = KILN_N_ELEMENTS(rotate_specs),
    .infer = rotate_infer,
    .is_noop = rotate_is_noop,
    .compose = rotate_compose,
};

const kiln_op_impl rotate_vips = {
    .size = sizeof(kiln_op_impl),
    .op = "rotate",
    .backend = "vips",
    .execute = rotate_execute,
};
