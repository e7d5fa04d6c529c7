/*
 * watermark: composite another image over the input (ops.md section 4).
 * `source` is read from the job's service storage (exec_load_image(), which
 * decodes it like a source: auto-orient, sRGB, 8-bit), scaled to width x
 * height with ops_resample() (percent units refer to the base image, so
 * the host binds them against our input as usual; one missing dimension
 * follows the watermark's own aspect, known only at execute; at least one
 * is required, ops.md section 2), given an opaque alpha if it has none,
 * its alpha multiplied by opacity / 10, and composited OVER the input
 * placed by gravity and inward offsets (ImageMagick's -gravity/-geometry
 * convention), clipped to the input. The output keeps the input's size
 * and bands.
 */
#include "composite.h"

#include <stdio.h>
#include <string.h>

static const kiln_param_spec watermark_specs[] = {
    KILN_P_STRING(watermark_params, source, NULL,
                  "path of the watermark image in the job's storage",
                  .flags = KILN_PARAM_REQUIRED, .alias = "Source",
                  .min_len = 1),
    KILN_P_GRAVITY(watermark_params, gravity, KILN_GRAVITY_NORTHWEST,
                   "where the watermark sits on the image",
                   .flags = KILN_PARAM_REQUIRED),
    KILN_P_LENGTH(watermark_params, width, KILN_AXIS_WIDTH, KILN_UNITS_SIZE,
                  "watermark width (percent of the image); alone, the "
                  "height follows the watermark's aspect ratio",
                  .flags = KILN_PARAM_ONE_OF),
    KILN_P_LENGTH(watermark_params, height, KILN_AXIS_HEIGHT, KILN_UNITS_SIZE,
                  "watermark height (percent of the image); alone, the "
                  "width follows the watermark's aspect ratio",
                  .flags = KILN_PARAM_ONE_OF),
    KILN_P_LENGTH(watermark_params, xoffset, KILN_AXIS_X, KILN_UNITS_OFFSET,
                  "horizontal offset, inward from the gravity's edge"),
    KILN_P_LENGTH(watermark_params, yoffset, KILN_AXIS_Y, KILN_UNITS_OFFSET,
                  "vertical offset, inward from the gravity's edge"),
    KILN_P_NUMBER(watermark_params, opacity, 0, 10, 10,
                  "watermark opacity, 0 invisible to 10 as drawn"),
};

static int
watermark_infer(const void *params, const kiln_shape *in, kiln_shape *out,
                kiln_error *err)
{
    (void)params;
    (void)err;
    return ops_infer_same(in, out);
}

/* Loads the watermark; a failure names the path and points at "source"
 * (the host prefixes the node's JSON path). */
static int
watermark_load(kiln_exec *ctx, const char *path, VipsImage **out,
               kiln_error *err)
{
    char msg[sizeof err->message];
    int rc = ops_api->exec_load_image(ctx, path, out, err);

    if (rc == KILN_OK) {
        return KILN_OK;
    }
    snprintf(msg, sizeof msg, "%s", err->message);
    if (strstr(msg, path) != NULL) {
        return ops_api->error_set_param(err, rc, "source", "%s", msg);
    }
    return ops_api->error_set_param(
        err, rc, "source", "cannot load watermark \"%s\": %s", path, msg);
}

static int
watermark_execute(kiln_exec *ctx, const void *params, VipsImage *const *in,
                  VipsImage **out, kiln_error *err)
{
    const watermark_params *p = params;
    VipsImage *t[4] = {NULL};
    VipsImage *cur;
    int w, h, x, y;
    int rc;

    rc = watermark_load(ctx, p->source, &t[0], err);
    if (rc != KILN_OK) {
        return rc;
    }
    /* Lengths are already pixels of the base; a missing one follows the
     * watermark's aspect ratio. */
    rc = ops_api->derive_size(&p->width, &p->height, vips_image_get_width(t[0]),
                              vips_image_get_height(t[0]), &w, &h, err);
    if (rc != KILN_OK) {
        goto done;
    }
    rc = ops_resample(t[0], w, h, &t[1], err);
    if (rc != KILN_OK) {
        goto done;
    }
    cur = t[1];
    if (!vips_image_hasalpha(cur)) {
        if (vips_bandjoin_const1(cur, &t[2], 255, NULL)) {
            goto fail;
        }
        cur = t[2];
    }
    if (p->opacity < 10) {
        /* In float: the blend rounds once, in ops_composite_over(). */
        double a[4] = {1, 1, 1, p->opacity / 10};
        double b[4] = {0, 0, 0, 0};

        if (vips_linear(cur, &t[3], a, b, 4, NULL)) {
            goto fail;
        }
        cur = t[3];
    }
    ops_api->place(p->gravity, vips_image_get_width(in[0]),
                   vips_image_get_height(in[0]), w, h, ops_px(&p->xoffset),
                   ops_px(&p->yoffset), &x, &y);
    rc = ops_composite_over(in[0], cur, x, y, "watermark", out, err);
    goto done;

fail:
    rc = ops_api->error_set_vips(err, "watermark");
done:
    for (int i = 3; i >= 0; i--) {
        if (t[i] != NULL) {
            g_object_unref(t[i]);
        }
    }
    return rc;
}

const kiln_op watermark_op = {
    .size = sizeof(kiln_op),
    .name = "watermark",
    .summary = "composite an image from storage over the input",
    .doc = "Reads source from the job's storage, scales it to width x "
           "height (percentages refer to the image being watermarked; with "
           "one given, the other follows the watermark's aspect ratio; at "
           "least one is required), fades it to opacity (0 to 10) and "
           "composites it placed by gravity and offsets; parts outside "
           "the image are clipped. The size and bands are unchanged.",
    .n_inputs = 1,
    .flags = KILN_OP_NEEDS_STORAGE | KILN_OP_SEQUENTIAL,
    .params_size = sizeof(watermark_params),
    .params = watermark_specs,
    .n_params = KILN_N_ELEMENTS(watermark_specs),
    .infer = watermark_infer,
};

const kiln_op_impl watermark_vips = {
    .size = sizeof(kiln_op_impl),
    .op = "watermark",
    .backend = "vips",
    .execute = watermark_execute,
};
