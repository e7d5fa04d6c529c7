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
 * ops_resample_window() makes only a rectangle of that output (the
 * optimizer pass crop-first): it resamples a cut of the input around the
 * rectangle, aligned so that libvips' pixel grid is the full image's, and
 * gives the same pixels as resampling the whole and cutting after.
 */
#include "ops.h"

#include <math.h>

static int resize_scaled(VipsImage *in, double hscale, double vscale, int w,
                         int h, double gap, VipsImage **out, kiln_error *err);

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
                             vips_image_get_height(in), w, h, OPS_GAP_FULL, out,
                             err);
}

double
ops_resample_gap(const kiln_reduction *r)
{
    return r->xscale != 1 || r->yscale != 1 ? 0.0 : OPS_GAP_FULL;
}

int
ops_resample_from(VipsImage *in, double ext_w, double ext_h, int w, int h,
                  double gap, VipsImage **out, kiln_error *err)
{
    if (w == vips_image_get_width(in) && h == vips_image_get_height(in) &&
        ext_w == w && ext_h == h) {
        *out = in;
        g_object_ref(in);
        return KILN_OK;
    }
    return resize_scaled(in, w / ext_w, h / ext_h, w, h, gap, out, err);
}

/* Resamples `in` by hscale x vscale (vips_resize, Lanczos3, premultiplied
 * around it for alpha) to exactly w x h: vips_resize may round one pixel
 * off, which a final embed cuts or repeats. */
static int
resize_scaled(VipsImage *in, double hscale, double vscale, int w, int h,
              double gap, VipsImage **out, kiln_error *err)
{
    VipsImage *t[5] = {NULL};
    VipsImage *cur = in;
    bool has_alpha = vips_image_hasalpha(in);
    VipsBandFormat format = vips_image_get_format(in);
    int rc;

    /* libvips 8.14's reduceh/reducev refuse a Lanczos3 kernel of over
     * 2000 points, a reduction by more than about 333 ("reduce factor
     * too large"): a reduced input fused from two steps can ask for one
     * (the issue-11 long run: 4173x815 to 5x1). Such a reduction starts
     * with libvips' box shrink, as a whole-image resample does. */
    if (gap == 0 &&
        (1 / hscale > OPS_REDUCE_MAX || 1 / vscale > OPS_REDUCE_MAX)) {
        gap = OPS_GAP_FULL;
    }

    if (has_alpha) {
        if (vips_premultiply(cur, &t[0], NULL)) {
            goto fail;
        }
        cur = t[0];
    }
    /* An already reduced 8-bit image without alpha (gap 0: shrink-on-load,
     * fuse-resamples, reuse-reductions; the thumbnail case): both Lanczos3
     * passes are kiln's own, vectorised (reducev.c, reduceh.c), vertical
     * first as vips_resize() does; with gap 0 it does nothing else. */
    bool own_v = gap == 0 && !has_alpha && format == VIPS_FORMAT_UCHAR &&
                 vips_image_get_coding(cur) == VIPS_CODING_NONE && vscale < 1 &&
                 1 / vscale <= KERN_REDUCE_MAX;
    if (own_v) {
        if (ops_reducev(cur, 1 / vscale, &t[0])) {
            goto fail;
        }
        if (hscale < 1 && 1 / hscale <= KERN_REDUCE_MAX
                ? ops_reduceh(t[0], 1 / hscale, &t[1])
                : vips_resize(t[0], &t[1], hscale, "vscale", 1.0, "kernel",
                              VIPS_KERNEL_LANCZOS3, "gap", gap, NULL)) {
            goto fail;
        }
    } else if (vips_resize(cur, &t[1], hscale, "vscale", vscale, "kernel",
                           VIPS_KERNEL_LANCZOS3, "gap", gap, NULL)) {
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

/* gcd of two positive integers. */
static int64_t
resize_gcd(int64_t a, int64_t b)
{
    while (b != 0) {
        int64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/*
 * One axis of a window: the output span [*o0, *o1) that covers output
 * pixels [x, x + len) plus a margin, chosen so that resampling input
 * pixels [*o0 * in_n / out_n, *o1 * in_n / out_n) (to in_n at the image's
 * end) gives output pixels o0.. exactly as the whole resample does.
 * libvips 8.14's vips_resize() box-shrinks by k = floor(in / (2 out)) and
 * then reduces with Lanczos3, output pixel j centred on input
 * (j + 0.5) h - 0.5 of the shrunk image (h its remaining factor). A cut
 * starting at input X0 keeps that grid when X0 is an output pixel's edge
 * exactly (X0 = o0 in_n / out_n an integer) and a multiple of k (the box
 * cells start where the full image's do): o0 a multiple of
 * step = q k / gcd(p, k), in_n / out_n = p / q in lowest terms. The
 * margin keeps every neighbour an edge pixel reads: Lanczos3 reads 3
 * output pixels each side; enlargements read 3 input pixels, up to
 * 3 ceil(out_n / in_n) output ones. 4 of them, measured exact (0 pixels
 * differ) on 500 random sizes and rectangles from 0.05 to 3 times. An
 * axis with no aligned edge inside (sizes share no factor) is not cut.
 */
static void
resize_window_axis(int in_n, int out_n, int x, int len, int *o0, int *o1)
{
    int64_t k = (int64_t)floor((double)in_n / (2.0 * out_n));
    int64_t g = resize_gcd(in_n, out_n);
    int64_t p = in_n / g, q = out_n / g;
    int64_t margin = 4 * (out_n > in_n ? (out_n + in_n - 1) / in_n : 1);

    if (k < 1) {
        k = 1;
    }
    int64_t step = q * k / resize_gcd(p, k);
    int64_t a = x - margin, b = (int64_t)x + len + margin;

    a = a < 0 ? 0 : a / step * step;
    b = (b + step - 1) / step * step;
    *o0 = (int)a;
    *o1 = b > out_n ? out_n : (int)b;
}

int
ops_resample_window(VipsImage *in, double ext_w, double ext_h, int w, int h,
                    double gap, const kiln_rect *win, VipsImage **out,
                    kiln_error *err)
{
    int in_w = vips_image_get_width(in);
    int in_h = vips_image_get_height(in);
    VipsImage *cut = NULL, *part = NULL;
    int ox0 = 0, ox1 = w, oy0 = 0, oy1 = h;
    int rc;

    /* A reduced input keeps the whole resample: the alignment above is for
     * the full image's integer pixel grid and libvips' box shrink. */
    if (ext_w == in_w && ext_h == in_h && gap == OPS_GAP_FULL) {
        resize_window_axis(in_w, w, win->x, win->width, &ox0, &ox1);
        resize_window_axis(in_h, h, win->y, win->height, &oy0, &oy1);
    }
    if (ox0 == 0 && ox1 == w && oy0 == 0 && oy1 == h) {
        rc = ops_resample_from(in, ext_w, ext_h, w, h, gap, &part, err);
    } else {
        int ix0 = (int)((int64_t)ox0 * in_w / w);
        int iy0 = (int)((int64_t)oy0 * in_h / h);
        int ix1 = ox1 == w ? in_w : (int)((int64_t)ox1 * in_w / w);
        int iy1 = oy1 == h ? in_h : (int)((int64_t)oy1 * in_h / h);

        if (vips_extract_area(in, &cut, ix0, iy0, ix1 - ix0, iy1 - iy0, NULL)) {
            return ops_api->error_set_vips(err, "resize");
        }
        /* The whole image's factors, not the cut's rounded ones. */
        rc = resize_scaled(cut, (double)w / in_w, (double)h / in_h, ox1 - ox0,
                           oy1 - oy0, OPS_GAP_FULL, &part, err);
        g_object_unref(cut);
    }
    if (rc != KILN_OK) {
        return rc;
    }
    if (vips_extract_area(part, out, win->x - ox0, win->y - oy0, win->width,
                          win->height, NULL)) {
        g_object_unref(part);
        return ops_api->error_set_vips(err, "resize");
    }
    g_object_unref(part);
    return KILN_OK;
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

/* Always a resample of the whole input (ops_resample_from). */
static bool
resize_resample_to(const void *params, const kiln_shape *in, int *w, int *h)
{
    kiln_shape out;
    kiln_error err;

    if (resize_infer(params, in, &out, &err) != KILN_OK) {
        return false;
    }
    *w = out.width;
    *h = out.height;
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
    if (r->has_window) {
        return ops_resample_window(
            in[0], r->bound.width * r->xscale, r->bound.height * r->yscale,
            size.width, size.height, ops_resample_gap(r), &r->window, out, err);
    }
    return ops_resample_from(in[0], r->bound.width * r->xscale,
                             r->bound.height * r->yscale, size.width,
                             size.height, ops_resample_gap(r), out, err);
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
    .size = sizeof(kiln_op),
    .name = "resize",
    .summary = "scale to a width and/or height",
    .doc = "Scales the image to width x height. With both given the result "
           "has exactly that size and the aspect ratio may change; with one "
           "given the other follows the input's aspect ratio. Resampling is "
           "Lanczos3.",
    .n_inputs = 1,
    .flags = KILN_OP_PURE | KILN_OP_SEQUENTIAL | KILN_OP_WINDOWED,
    .params_size = sizeof(resize_params),
    .params = resize_specs,
    .n_params = KILN_N_ELEMENTS(resize_specs),
    .infer = resize_infer,
    .is_noop = resize_is_noop,
    .sample_scale = resize_sample_scale,
    .resample_to = resize_resample_to,
};

const kiln_op_impl resize_vips = {
    .size = sizeof(kiln_op_impl),
    .op = "resize",
    .backend = "vips",
    .execute = resize_execute,
    .execute_reduced = resize_execute_reduced,
};
