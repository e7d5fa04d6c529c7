/*
 * enhance: ImageMagick's -enhance noise reduction, a 5x5 weighted mean
 * over the neighbours within a colour-distance threshold; must agree with
 * Debian's `convert -enhance` within 2 levels (ops.md section 4). No
 * parameters; the output keeps the input's size and bands.
 *
 * The definition, as ImageMagick 6 (Q16) computes it and as kiln
 * reproduces it. Channels are taken on ImageMagick's 16-bit scale
 * (v16 = 257 * v8) and written back as round(v16 / 257). For the centre
 * pixel c and each pixel n of its 5x5 neighbourhood, with s = 1 / 65535,
 * mean_k = s * (n_k + c_k) / 2 and d_k = s * (n_k - c_k):
 *
 *     D = (4 + mean_R) d_R^2 + (7 - mean_G) d_G^2 + (5 - mean_B) d_B^2
 *         + (5 - mean_O) d_O^2
 *
 * where O is the opacity (65535 - alpha16; 0 for opaque images). Pixels
 * with D < 0.069 take part with the weights
 *
 *      5  8 10  8  5
 *      8 20 40 20  8
 *     10 40 80 40 10
 *      8 20 40 20  8
 *      5  8 10  8  5
 *
 * and each colour channel becomes q16 = trunc((sum w n16 + W / 2 - 1) / W),
 * W = sum of the weights taken (the centre always is, so W >= 80), and
 * finally trunc(q16 / 257) on the 8-bit scale.
 * Pixels outside the image repeat the nearest edge pixel (ImageMagick's
 * default "edge" virtual pixels). An image narrower or shorter than 5
 * pixels is returned unchanged, as ImageMagick does. Alpha is part of the
 * distance but is copied unchanged to the output.
 *
 * The distance terms depend only on the 8-bit values of the two pixels, so
 * they are tabulated once (256 x 256 doubles per formula, evaluated with
 * ImageMagick's exact operation order so that the threshold test agrees
 * bit for bit); the inner loop is then three or four loads, adds and one
 * compare per neighbour. The op runs as a libvips generate function over
 * regions of the input embedded by 2 pixels (edge copy).
 */
#include "ops.h"

#include <stdlib.h>

/* ImageMagick's acceptance threshold on the weighted squared distance. */
#define ENHANCE_THRESHOLD 0.069

/* Distance tables, term[k][c][n]: the term of a channel whose centre
 * value is c and neighbour value n (8-bit). Index 0: red, (4 + mean);
 * 1: green, (7 - mean); 2: blue and opacity, (5 - mean). */
typedef struct enhance_tables {
    double term[3][256][256];
} enhance_tables;

/* The 5x5 weights, row by row. */
/* clang-format off */
static const int enhance_weights[5][5] = {
    { 5,  8, 10,  8,  5},
    { 8, 20, 40, 20,  8},
    {10, 40, 80, 40, 10},
    { 8, 20, 40, 20,  8},
    { 5,  8, 10,  8,  5},
};
/* clang-format on */

static const double enhance_base[3] = {4.0, 7.0, 5.0};

/* Filled once, then read-only; never freed (1.5 MB for the process). */
static enhance_tables *enhance_tab;

/* Builds the tables. The expression order is ImageMagick's:
 * mean = s * (n + c) / 2, d = s * (n - c), term = (base +- mean) * d * d,
 * all in double on 16-bit values. */
static gpointer
enhance_build_tables(gpointer unused)
{
    enhance_tables *t = malloc(sizeof *t);
    const double s = 1.0 / 65535.0;

    (void)unused;
    if (t == NULL) {
        return NULL;
    }
    for (int k = 0; k < 3; k++) {
        for (int c = 0; c < 256; c++) {
            for (int n = 0; n < 256; n++) {
                double c16 = c * 257.0;
                double n16 = n * 257.0;
                double mean = s * (n16 + c16) / 2.0;
                double d = s * (n16 - c16);
                double f =
                    k == 0 ? enhance_base[k] + mean : enhance_base[k] - mean;

                t->term[k][c][n] = f * d * d;
            }
        }
    }
    enhance_tab = t;
    return t;
}

/* One output region: every pixel from the 5x5 window of the embedded
 * input, whose (x, y) is the output's (x - 2, y - 2). */
static int
enhance_gen(VipsRegion *out_region, void *seq, void *a, void *b, gboolean *stop)
{
    VipsRegion *ir = seq;
    const enhance_tables *t = b;
    const VipsRect *r = &out_region->valid;
    VipsRect need = {r->left, r->top, r->width + 4, r->height + 4};
    int bands = ir->im->Bands;
    bool has_alpha = bands == 4;

    (void)a;
    (void)stop;
    if (vips_region_prepare(ir, &need)) {
        return -1;
    }
    for (int y = 0; y < r->height; y++) {
        const VipsPel *row[5];
        VipsPel *q = VIPS_REGION_ADDR(out_region, r->left, r->top + y);

        for (int j = 0; j < 5; j++) {
            row[j] = VIPS_REGION_ADDR(ir, r->left, r->top + y + j);
        }
        for (int x = 0; x < r->width; x++) {
            const VipsPel *c = row[2] + (x + 2) * bands;
            const double *tr = t->term[0][c[0]];
            const double *tg = t->term[1][c[1]];
            const double *tb = t->term[2][c[2]];
            const double *ta = has_alpha ? t->term[2][255 - c[3]] : NULL;
            int64_t sum_r = 0, sum_g = 0, sum_b = 0, total = 0;

            for (int j = 0; j < 5; j++) {
                const VipsPel *n = row[j] + x * bands;

                for (int i = 0; i < 5; i++, n += bands) {
                    double dist = tr[n[0]];

                    dist += tg[n[1]];
                    dist += tb[n[2]];
                    if (has_alpha) {
                        dist += ta[255 - n[3]];
                    }
                    if (dist < ENHANCE_THRESHOLD) {
                        int w = enhance_weights[j][i];

                        sum_r += w * n[0];
                        sum_g += w * n[1];
                        sum_b += w * n[2];
                        total += w;
                    }
                }
            }
            /* ImageMagick: trunc((sum16 + W / 2 - 1) / W) into a 16-bit
             * quantum; Debian's convert then writes trunc(q16 / 257) to an
             * 8-bit file (measured: bit-identical, where rounding to the
             * nearest 8-bit level is 1 level above in half the pixels). */
            double half = total / 2.0 - 1.0;
            int64_t s[3] = {sum_r, sum_g, sum_b};

            for (int k = 0; k < 3; k++) {
                unsigned q16 =
                    (unsigned)((257.0 * (double)s[k] + half) / (double)total);

                q[k] = (VipsPel)(q16 / 257);
            }
            if (has_alpha) {
                q[3] = c[3];
            }
            q += bands;
        }
    }
    return 0;
}

static int
enhance_infer(const void *params, const kiln_shape *in, kiln_shape *out,
              kiln_error *err)
{
    (void)params;
    (void)err;
    return ops_infer_same(in, out);
}

/* ImageMagick leaves images under 5 pixels on a side unchanged. */
static bool
enhance_is_noop(const void *params, const kiln_shape *in)
{
    (void)params;
    return in != NULL && (in->width < 5 || in->height < 5);
}

static int
enhance_execute(kiln_exec *ctx, const void *params, VipsImage *const *in,
                VipsImage **out, kiln_error *err)
{
    static GOnce once = G_ONCE_INIT;
    VipsImage *src = in[0];
    VipsImage *pad = NULL;
    VipsImage *res = NULL;
    int w = vips_image_get_width(src);
    int h = vips_image_get_height(src);
    int bands = vips_image_get_bands(src);
    enhance_tables *t;

    (void)ctx;
    (void)params;
    if (vips_image_get_format(src) != VIPS_FORMAT_UCHAR ||
        (bands != 3 && bands != 4)) {
        return ops_api->error_set(err, KILN_EINTERNAL,
                                  "enhance: expected 8-bit sRGB with 3 or 4 "
                                  "bands, got %d bands of format %d",
                                  bands, (int)vips_image_get_format(src));
    }
    /* ImageMagick leaves images under 5 pixels on a side unchanged. */
    if (w < 5 || h < 5) {
        g_object_ref(src);
        *out = src;
        return KILN_OK;
    }
    t = g_once(&once, enhance_build_tables, NULL);
    if (t == NULL) {
        return ops_api->error_set(err, KILN_ENOMEM,
                                  "enhance: out of memory for its tables");
    }
    if (vips_embed(src, &pad, 2, 2, w + 4, h + 4, "extend", VIPS_EXTEND_COPY,
                   NULL)) {
        goto fail;
    }
    res = vips_image_new();
    if (vips_image_pipelinev(res, VIPS_DEMAND_STYLE_SMALLTILE, pad, NULL)) {
        goto fail;
    }
    res->Xsize = w;
    res->Ysize = h;
    if (vips_image_generate(res, vips_start_one, enhance_gen, vips_stop_one,
                            pad, t)) {
        goto fail;
    }
    /* res holds pad from here on and drops it when it closes. */
    vips_object_local(res, pad);
    *out = res;
    return KILN_OK;

fail:
    if (res != NULL) {
        g_object_unref(res);
    }
    if (pad != NULL) {
        g_object_unref(pad);
    }
    return ops_api->error_set_vips(err, "enhance");
}

const kiln_op enhance_op = {
    .size = sizeof(kiln_op),
    .name = "enhance",
    .summary = "reduce noise like ImageMagick's -enhance",
    .doc = "Reduces noise the way ImageMagick's -enhance does: each pixel "
           "becomes a weighted mean of the pixels in its 5x5 neighbourhood "
           "whose colour is close to its own. No parameters; the size is "
           "unchanged.",
    .n_inputs = 1,
    .flags = KILN_OP_PURE | KILN_OP_SEQUENTIAL,
    .params_size = 0,
    .params = NULL,
    .n_params = 0,
    .infer = enhance_infer,
    .is_noop = enhance_is_noop,
};

const kiln_op_impl enhance_vips = {
    .size = sizeof(kiln_op_impl),
    .op = "enhance",
    .backend = "vips",
    .execute = enhance_execute,
};
