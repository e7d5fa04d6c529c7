/*
 * fitmethod: fit the input to a width x height box (ops.md section 4).
 * box: scale to fit inside, keeping aspect. stretch: exactly W x H.
 * cropbox: scale to cover, then crop W x H placed by gravity. letterbox:
 * box, then pad to exactly W x H with `color` at alpha opacity/10 (times
 * the colour's own alpha), the image placed by gravity; the result has an
 * alpha band when the input had one or the pad is not opaque. outside:
 * scale to the smallest size that covers W x H, no crop. Upscaling is
 * allowed. ops_fit_plan_make() (geom.h, shared with the other backends)
 * computes every size and position once for infer and execute;
 * resampling is ops_resample() (exact size, Lanczos3). Every fit type
 * resamples the whole input once, so it can run on a source decoded at a
 * reduced scale (execute_reduced: the plan comes from the bound input, the
 * resample from the smaller image), and with a window (KILN_OP_WINDOWED,
 * the pass crop-first): box, stretch, outside and cropbox resample only
 * around the window (ops_resample_window), letterbox makes the whole and
 * cuts the window out.
 */
#include "ops.h"

static const char *const fitmethod_types[] = {"box",       "stretch", "cropbox",
                                              "letterbox", "outside", NULL};

static const kiln_param_spec fitmethod_specs[] = {
    KILN_P_COLOR(fitmethod_params, color, NULL, "letterbox padding colour",
                 .flags = KILN_PARAM_REQUIRED),
    KILN_P_ENUM(fitmethod_params, fit_type, fitmethod_types, FIT_BOX,
                "how the image meets the box: box, stretch, cropbox, "
                "letterbox or outside",
                .flags = KILN_PARAM_REQUIRED),
    KILN_P_GRAVITY(fitmethod_params, gravity, KILN_GRAVITY_NORTHWEST,
                   "where cropbox crops and letterbox places the image",
                   .flags = KILN_PARAM_REQUIRED),
    KILN_P_LENGTH(fitmethod_params, width, KILN_AXIS_WIDTH, KILN_UNITS_SIZE,
                  "box width; alone, the height follows the aspect ratio",
                  .flags = KILN_PARAM_ONE_OF),
    KILN_P_LENGTH(fitmethod_params, height, KILN_AXIS_HEIGHT, KILN_UNITS_SIZE,
                  "box height; alone, the width follows the aspect ratio",
                  .flags = KILN_PARAM_ONE_OF),
    KILN_P_NUMBER(fitmethod_params, opacity, 0, 10, 10,
                  "letterbox padding opacity, 0 transparent to 10 opaque"),
};

static int
fitmethod_infer(const void *params, const kiln_shape *in, kiln_shape *out,
                kiln_error *err)
{
    ops_fit_plan plan;
    int rc = ops_fit_plan_make(ops_api, params, in->width, in->height,
                               in->has_alpha, &plan, err);

    if (rc != KILN_OK) {
        return rc;
    }
    *out = *in;
    out->width = plan.out_w;
    out->height = plan.out_h;
    if (plan.has_alpha && !in->has_alpha) {
        out->bands++;
        out->has_alpha = true;
    }
    return KILN_OK;
}

/* True when the plan changes nothing: scaled to the input's own size,
 * nothing cut, nothing padded, no alpha band added. */
static bool
fitmethod_is_noop(const void *params, const kiln_shape *in)
{
    ops_fit_plan plan;
    kiln_error err;

    return in != NULL &&
           ops_fit_plan_make(ops_api, params, in->width, in->height,
                             in->has_alpha, &plan, &err) == KILN_OK &&
           plan.scaled_w == in->width && plan.scaled_h == in->height &&
           plan.out_w == in->width && plan.out_h == in->height &&
           plan.has_alpha == in->has_alpha;
}

static bool
fitmethod_sample_scale(const void *params, const kiln_shape *in, double *sx,
                       double *sy)
{
    ops_fit_plan plan;
    kiln_error err;

    if (ops_fit_plan_make(ops_api, params, in->width, in->height, in->has_alpha,
                          &plan, &err) != KILN_OK) {
        return false;
    }
    *sx = (double)plan.scaled_w / in->width;
    *sy = (double)plan.scaled_h / in->height;
    return true;
}

/* A resample and nothing else when the plan neither cuts nor pads nor
 * adds alpha: every box, stretch and outside fit of an opaque input, a
 * cropbox or letterbox whose box is the scaled size. */
static bool
fitmethod_resample_to(const void *params, const kiln_shape *in, int *w, int *h)
{
    ops_fit_plan plan;
    kiln_error err;

    if (ops_fit_plan_make(ops_api, params, in->width, in->height, in->has_alpha,
                          &plan, &err) != KILN_OK ||
        plan.out_w != plan.scaled_w || plan.out_h != plan.scaled_h ||
        plan.has_alpha != in->has_alpha) {
        return false;
    }
    *w = plan.scaled_w;
    *h = plan.scaled_h;
    return true;
}

/* Plans for an iw x ih input and resamples `in`, which covers ext_w x
 * ext_h of it (the whole of `in` outside shrink-on-load). With `win` not
 * NULL, makes only that rectangle of the output. */
static int
fitmethod_run(const fitmethod_params *p, int iw, int ih, double ext_w,
              double ext_h, double gap, const kiln_rect *win, VipsImage *in,
              VipsImage **out, kiln_error *err)
{
    ops_fit_plan plan;
    VipsImage *t[4] = {NULL};
    VipsImage *cur;
    VipsArrayDouble *background = NULL;
    bool in_alpha = vips_image_hasalpha(in);
    int rc;

    rc = ops_fit_plan_make(ops_api, p, iw, ih, in_alpha, &plan, err);
    if (rc != KILN_OK) {
        return rc;
    }
    if (win != NULL && p->fit_type != FIT_LETTERBOX) {
        /* The output is the scaled image, or (cropbox) its rectangle at
         * plan.x, plan.y: the window is a rectangle of the scaled one. */
        kiln_rect sw = *win;

        if (p->fit_type == FIT_CROPBOX) {
            sw.x += plan.x;
            sw.y += plan.y;
        }
        return ops_resample_window(in, ext_w, ext_h, plan.scaled_w,
                                   plan.scaled_h, gap, &sw, out, err);
    }
    rc = ops_resample_from(in, ext_w, ext_h, plan.scaled_w, plan.scaled_h, gap,
                           &t[0], err);
    if (rc != KILN_OK) {
        return rc;
    }
    cur = t[0];

    if (p->fit_type == FIT_CROPBOX) {
        if (vips_extract_area(cur, &t[1], plan.x, plan.y, plan.out_w,
                              plan.out_h, NULL)) {
            goto fail;
        }
        cur = t[1];
    } else if (p->fit_type == FIT_LETTERBOX) {
        double bg[4] = {p->color.r, p->color.g, p->color.b, plan.pad_alpha};

        if (plan.has_alpha && !in_alpha) {
            if (vips_bandjoin_const1(cur, &t[1], 255, NULL)) {
                goto fail;
            }
            cur = t[1];
        }
        background = vips_array_double_new(bg, plan.has_alpha ? 4 : 3);
        if (background == NULL ||
            vips_embed(cur, &t[2], plan.x, plan.y, plan.out_w, plan.out_h,
                       "extend", VIPS_EXTEND_BACKGROUND, "background",
                       background, NULL)) {
            goto fail;
        }
        cur = t[2];
        if (win != NULL) {
            if (vips_extract_area(cur, &t[3], win->x, win->y, win->width,
                                  win->height, NULL)) {
                goto fail;
            }
            cur = t[3];
        }
    }
    g_object_ref(cur);
    *out = cur;
    rc = KILN_OK;
    goto done;

fail:
    rc = ops_api->error_set_vips(err, "fitmethod");
done:
    if (background != NULL) {
        vips_area_unref(VIPS_AREA(background));
    }
    for (int i = 3; i >= 0; i--) {
        if (t[i] != NULL) {
            g_object_unref(t[i]);
        }
    }
    return rc;
}

static int
fitmethod_execute(kiln_exec *ctx, const void *params, VipsImage *const *in,
                  VipsImage **out, kiln_error *err)
{
    int w = vips_image_get_width(in[0]);
    int h = vips_image_get_height(in[0]);

    (void)ctx;
    return fitmethod_run(params, w, h, w, h, OPS_GAP_FULL, NULL, in[0], out,
                         err);
}

static int
fitmethod_execute_reduced(kiln_exec *ctx, const void *params,
                          const kiln_reduction *r, VipsImage *const *in,
                          VipsImage **out, kiln_error *err)
{
    (void)ctx;
    return fitmethod_run(params, r->bound.width, r->bound.height,
                         r->bound.width * r->xscale,
                         r->bound.height * r->yscale, ops_resample_gap(r),
                         r->has_window ? &r->window : NULL, in[0], out, err);
}

const kiln_op fitmethod_op = {
    .size = sizeof(kiln_op),
    .name = "fitmethod",
    .summary = "fit into a box: box, stretch, cropbox, letterbox, outside",
    .doc = "Fits the image to a width x height box. box scales it to fit "
           "inside, keeping its aspect ratio; stretch scales to exactly the "
           "box; cropbox scales to cover the box, then crops it, placed by "
           "gravity; letterbox fits inside, then pads to the box with color "
           "at opacity (0 to 10), the image placed by gravity; outside "
           "scales to the smallest size that covers the box, without "
           "cropping. Upscaling is allowed.",
    .n_inputs = 1,
    .flags = KILN_OP_PURE | KILN_OP_SEQUENTIAL | KILN_OP_WINDOWED,
    .params_size = sizeof(fitmethod_params),
    .params = fitmethod_specs,
    .n_params = KILN_N_ELEMENTS(fitmethod_specs),
    .infer = fitmethod_infer,
    .is_noop = fitmethod_is_noop,
    .sample_scale = fitmethod_sample_scale,
    .resample_to = fitmethod_resample_to,
};

const kiln_op_impl fitmethod_vips = {
    .size = sizeof(kiln_op_impl),
    .op = "fitmethod",
    .backend = "vips",
    .execute = fitmethod_execute,
    .execute_reduced = fitmethod_execute_reduced,
};
