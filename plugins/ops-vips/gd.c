/*
 * ops-vips GD machinery (see gd.h): per-channel lookup tables for the
 * point ops, and the two neighbourhood filters of libgd's gd_filter.c,
 * gdImageConvolution() and gdImageSelectiveBlur(), rewritten over libvips
 * memory so that they run on tens of megapixels.
 *
 * Exactness: GD computes in `float` and truncates. The loops below do the
 * same single-precision operations in the same order (products and sums
 * row-major over the kernel, a real division by the divisor, never a
 * multiplication by its reciprocal). The build uses -std=c11, in which GCC
 * does not contract a * b + c into a fused multiply-add, and x86-64 float
 * arithmetic is plain IEEE single precision, so each intermediate rounds
 * exactly as libgd's does.
 */
#include "gd.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

/* A pixel outside the image, as GD's gdImageGetTrueColorPixel() returns
 * it for the selective blur: black (and opaque). */
static const VipsPel gd_black[4] = {0, 0, 0, 0};

int
gd_check_input(VipsImage *in, const char *what, kiln_error *err)
{
    int bands = vips_image_get_bands(in);

    if (vips_image_get_format(in) != VIPS_FORMAT_UCHAR ||
        (bands != 3 && bands != 4)) {
        return ops_api->error_set(
            err, KILN_EINVAL,
            "%s: input is %s with %d bands (expected 8-bit sRGB, 3 bands "
            "or 4 with alpha)",
            what, vips_enum_nick(VIPS_TYPE_BAND_FORMAT, in->BandFmt), bands);
    }
    return KILN_OK;
}

int
gd_map(VipsImage *in, const gd_lut lut, const char *what, VipsImage **out,
       kiln_error *err)
{
    VipsPel table[256 * 4];
    VipsImage *t = NULL;
    int bands = vips_image_get_bands(in);
    int rc = gd_check_input(in, what, err);

    if (rc != KILN_OK) {
        return rc;
    }
    /* A bands-band table: maplut looks band b up in table band b, and the
     * alpha band maps to itself. */
    for (int v = 0; v < 256; v++) {
        for (int b = 0; b < bands; b++) {
            table[v * bands + b] = b < 3 ? lut[b][v] : (VipsPel)v;
        }
    }
    t = vips_image_new_from_memory_copy(table, (size_t)256 * bands, 256, 1,
                                        bands, VIPS_FORMAT_UCHAR);
    if (t != NULL) {
        /* maplut gives its output the interpretation of a many-band
         * table: keep the input's (sRGB), or libvips stops seeing the
         * alpha band as alpha. */
        t->Type = vips_image_get_interpretation(in);
    }
    if (t == NULL || vips_maplut(in, out, t, NULL)) {
        rc = ops_api->error_set_vips(err, what);
    }
    if (t != NULL) {
        g_object_unref(t);
    }
    return rc;
}

/* ------------------------------------------------------- convolution */

/* What the generate function needs, owned by the output image. */
typedef struct gd_conv {
    float kernel[9];
    float div;
    float offset;
} gd_conv;

/* Fills `out_region` from the input embedded by one replicated pixel on each
 * side: output (x, y) has its 3x3 neighbourhood at embedded (x..x+2, y..y+2).
 */
static int
gd_conv_gen(VipsRegion *out_region, void *seq, void *a, void *b, gboolean *stop)
{
    VipsRegion *ir = seq;
    const gd_conv *c = b;
    const VipsRect *r = &out_region->valid;
    VipsRect need = {r->left, r->top, r->width + 2, r->height + 2};
    int bands = out_region->im->Bands;

    (void)a;
    (void)stop;
    if (vips_region_prepare(ir, &need)) {
        return -1;
    }
    size_t ls = VIPS_REGION_LSKIP(ir);
    size_t off[9];

    for (int j = 0; j < 3; j++) {
        for (int i = 0; i < 3; i++) {
            off[j * 3 + i] = j * ls + (size_t)i * bands;
        }
    }
    for (int y = 0; y < r->height; y++) {
        const VipsPel *p = VIPS_REGION_ADDR(ir, r->left, r->top + y);
        VipsPel *q = VIPS_REGION_ADDR(out_region, r->left, r->top + y);

        for (int x = 0; x < r->width; x++) {
            for (int band = 0; band < 3; band++) {
                float sum = 0.0f;

                for (int k = 0; k < 9; k++) {
                    sum += (float)p[off[k] + band] * c->kernel[k];
                }
                sum = sum / c->div + c->offset;
                sum = sum > 255.0f ? 255.0f : (sum < 0.0f ? 0.0f : sum);
                q[band] = (VipsPel)(int)sum;
            }
            if (bands == 4) {
                q[3] = p[off[4] + 3];
            }
            p += bands;
            q += bands;
        }
    }
    return 0;
}

int
gd_convolve(VipsImage *in, const float kernel[9], float div, float offset,
            const char *what, VipsImage **out, kiln_error *err)
{
    VipsImage *emb = NULL, *o = NULL;
    gd_conv *c;
    int w = vips_image_get_width(in);
    int h = vips_image_get_height(in);
    int rc = gd_check_input(in, what, err);

    if (rc != KILN_OK) {
        return rc;
    }
    assert(div != 0.0f);
    /* GD clamps neighbour coordinates into the image: replicate edges. */
    if (vips_embed(in, &emb, 1, 1, w + 2, h + 2, "extend", VIPS_EXTEND_COPY,
                   NULL)) {
        goto fail;
    }
    o = vips_image_new();
    /* From here `o` owns `emb`, whatever happens. */
    vips_object_local(o, emb);
    if (vips_image_pipelinev(o, VIPS_DEMAND_STYLE_SMALLTILE, emb, NULL)) {
        goto fail;
    }
    o->Xsize = w;
    o->Ysize = h;
    c = VIPS_NEW(VIPS_OBJECT(o), gd_conv);
    if (c == NULL) {
        goto fail;
    }
    memcpy(c->kernel, kernel, sizeof c->kernel);
    c->div = div;
    c->offset = offset;
    if (vips_image_generate(o, vips_start_one, gd_conv_gen, vips_stop_one, emb,
                            c)) {
        goto fail;
    }
    *out = o;
    return KILN_OK;

fail:
    rc = ops_api->error_set_vips(err, what);
    if (o != NULL) {
        g_object_unref(o);
    } else if (emb != NULL) {
        g_object_unref(emb);
    }
    return rc;
}

/* ---------------------------------------------------- selective blur */

/* Four floats in one SSE register (a GCC/Clang extension): the three
 * colour channels side by side. Each lane rounds exactly as a scalar
 * float does, so this is GD's per-channel arithmetic three at a time. */
typedef float gd_v4 __attribute__((vector_size(16)));

/*
 * One pixel of GD's selective blur, per colour channel: neighbour weight
 * 1 / |centre - neighbour| (1 when equal), centre weight 0.5, each weight
 * divided by their sum (summed row-major), then the weighted sum of the
 * nine values (row-major), clamped and truncated. n[4] is the centre.
 * recip[d] is 1.0f / d, the same float GD's division gives. The weights
 * are divided by the sum, never multiplied by its reciprocal, as GD does.
 */
static inline void
gd_selective_pixel(const VipsPel *const n[9], const float recip[256],
                   VipsPel out[3])
{
    const VipsPel *c = n[4];
    gd_v4 wt[9], v[9];
    gd_v4 sum = {0.0f, 0.0f, 0.0f, 0.0f};
    gd_v4 acc = {0.0f, 0.0f, 0.0f, 0.0f};

    for (int k = 0; k < 9; k++) {
        const VipsPel *p = n[k];

        v[k] = (gd_v4){p[0], p[1], p[2], 0.0f};
        if (k == 4) {
            wt[k] = (gd_v4){0.5f, 0.5f, 0.5f, 0.5f};
        } else {
            wt[k] = (gd_v4){recip[abs(c[0] - p[0])], recip[abs(c[1] - p[1])],
                            recip[abs(c[2] - p[2])], 1.0f};
        }
        sum += wt[k];
    }
    /* sum >= 0.5 in every lane: GD's zero test always passes. */
    for (int k = 0; k < 9; k++) {
        acc += v[k] * (wt[k] / sum);
    }
    for (int band = 0; band < 3; band++) {
        float a = acc[band];

        a = a > 255.0f ? 255.0f : (a < 0.0f ? 0.0f : a);
        out[band] = (VipsPel)(int)a;
    }
}

/* Runs the blur in place over a w x h image of `bands` bands with `ls`
 * bytes per line. Row-major, as GD: pixel (x, y) sees the already-written
 * results of the row above and of its left neighbour. */
static void
gd_selective_run(VipsPel *base, int w, int h, int bands, size_t ls)
{
    float recip[256];

    recip[0] = 1.0f;
    for (int d = 1; d < 256; d++) {
        recip[d] = 1.0f / (float)d;
    }
    for (int y = 0; y < h; y++) {
        VipsPel *row = base + (size_t)y * ls;
        const VipsPel *rows[3] = {
            y > 0 ? row - ls : NULL,
            row,
            y < h - 1 ? row + ls : NULL,
        };

        for (int x = 0; x < w; x++) {
            const VipsPel *n[9];
            VipsPel res[3];

            for (int j = 0; j < 3; j++) {
                for (int i = 0; i < 3; i++) {
                    int nx = x - 1 + i;

                    n[j * 3 + i] = rows[j] == NULL || nx < 0 || nx >= w
                                       ? gd_black
                                       : rows[j] + (size_t)nx * bands;
                }
            }
            gd_selective_pixel(n, recip, res);
            memcpy(row + (size_t)x * bands, res, 3);
        }
    }
}

int
gd_selective_blur(VipsImage *in, const char *what, VipsImage **out,
                  kiln_error *err)
{
    VipsImage *m = NULL;
    int rc = gd_check_input(in, what, err);

    if (rc != KILN_OK) {
        return rc;
    }
    /* A private memory copy: the blur writes into it. */
    m = vips_image_new_memory();
    if (vips_image_write(in, m)) {
        g_object_unref(m);
        return ops_api->error_set_vips(err, what);
    }
    gd_selective_run(VIPS_IMAGE_ADDR(m, 0, 0), m->Xsize, m->Ysize, m->Bands,
                     VIPS_IMAGE_SIZEOF_LINE(m));
    *out = m;
    return KILN_OK;
}
