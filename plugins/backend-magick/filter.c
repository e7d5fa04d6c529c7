/*
 * filter on the magick backend: PHP GD's imagefilter() family (ops.md):
 * negate, grayscale, bw, sepia, the 3x3 GD convolutions (edgedetect,
 * emboss, blurgaussian, meanremoval, smooth with its `weight`) and GD's
 * in-place selective blur. Colour channels only, alpha kept.
 *
 * Every filter runs on the 8-bit pixels (mk_export) with the arithmetic of
 * ops-vips' filter.c and gd.c, so both backends give the same bytes:
 * grayscale, bw and sepia sum in double in GD's order and truncate (sepia
 * with ops-vips' 1e-7 nudge), the convolutions and the selective blur
 * repeat GD's single-precision steps in GD's order. The build's -std=c11
 * keeps GCC from fusing a * b + c, so each float rounds as libgd's does.
 * smooth's zero divisor is refused by the op's infer() (ops-vips).
 */
#include "magick.h"

#include <stdlib.h>
#include <string.h>

/* GD's kernels (gd_filter.c), row-major, with divisor and offset. */
static const struct {
    float kernel[9];
    float div;
    float offset;
} filter_kernels[] = {
    [FILTER_EDGEDETECT] = {{-1, 0, -1, 0, 4, 0, -1, 0, -1}, 1, 127},
    [FILTER_EMBOSS] = {{1.5f, 0, 0, 0, 0, 0, 0, 0, -1.5f}, 1, 127},
    [FILTER_BLURGAUSSIAN] = {{1, 2, 1, 2, 4, 2, 1, 2, 1}, 16, 0},
    [FILTER_MEANREMOVAL] = {{-1, -1, -1, -1, 9, -1, -1, -1, -1}, 1, 0},
};

/* A pixel outside the image, as GD's selective blur reads it: black. */
static const uint8_t filter_black[4] = {0, 0, 0, 0};

/* Four floats in one SSE register (a GCC/Clang extension), the three
 * colour channels side by side; each lane rounds exactly as a scalar
 * float does (as in ops-vips' gd.c). */
typedef float filter_v4 __attribute__((vector_size(16)));

/* One recombined value truncated to 8 bits: libvips' cast from double
 * clips to 0..255, then truncates. */
static uint8_t
filter_trunc(double v)
{
    return (uint8_t)(v < 0.0 ? 0.0 : (v > 255.0 ? 255.0 : v));
}

/* grayscale, bw and sepia, in place. The sums start from 0 and add the
 * terms left to right in double, as vips_recomb and GD's expression do. */
static void
filter_recolour(uint8_t *buf, size_t n, int bands, int filter)
{
    /* clang-format off */
    static const double sepia[3][3] = {{.3588, .7044, .1368},
                                       {.2990, .5870, .1140},
                                       {.2392, .4696, .0912}};
    /* clang-format on */

    for (size_t i = 0; i < n; i++) {
        uint8_t *px = buf + i * (size_t)bands;
        double r = px[0], g = px[1], b = px[2];

        if (filter == FILTER_SEPIA) {
            uint8_t o[3];

            for (int k = 0; k < 3; k++) {
                double t = 0.0;

                t += sepia[k][0] * r;
                t += sepia[k][1] * g;
                t += sepia[k][2] * b;
                /* With four-decimal coefficients and integer inputs the
                 * exact sums are multiples of 1e-4: 1e-7 undoes the
                 * double rounding error that would turn 16 into
                 * 15.999... and moves no other value across an integer
                 * (ops-vips' filter_recolour). */
                o[k] = filter_trunc(1.0 * t + 1e-7);
            }
            memcpy(px, o, 3);
        } else {
            double t = 0.0;

            t += .299 * r;
            t += .587 * g;
            t += .114 * b;

            uint8_t y = filter_trunc(t);

            if (filter == FILTER_BW) {
                y = y >= 128 ? 255 : 0;
            }
            px[0] = px[1] = px[2] = y;
        }
    }
}

/* filter_recolour for mk_rows: one row of RGB, user the filter. */
static void
filter_recolour_row(uint8_t *rgb, size_t n, void *user)
{
    filter_recolour(rgb, n, 3, *(const int *)user);
}

/* GD's gdImageConvolution(): per colour channel, the 3x3 neighbourhood
 * (edge pixels repeated) times `kernel`, summed in float row by row, then
 * sum / div + offset, clamped and truncated. Reads `src`, writes `dst`
 * (alpha copied). */
static void
filter_convolve(const uint8_t *src, uint8_t *dst, int w, int h, int bands,
                const float kernel[9], float div, float offset)
{
    /* Rows are independent (src to dst): MagickCore's OpenMP threads
     * share them, as its own convolution does. */
#pragma omp parallel for schedule(static)
    for (int y = 0; y < h; y++) {
        const uint8_t *rows[3];

        for (int j = 0; j < 3; j++) {
            int yy = y - 1 + j;

            yy = yy < 0 ? 0 : (yy >= h ? h - 1 : yy);
            rows[j] = src + (size_t)yy * w * bands;
        }
        for (int x = 0; x < w; x++) {
            size_t col[3];
            uint8_t *q = dst + ((size_t)y * w + x) * bands;

            for (int i = 0; i < 3; i++) {
                int xx = x - 1 + i;

                xx = xx < 0 ? 0 : (xx >= w ? w - 1 : xx);
                col[i] = (size_t)xx * bands;
            }
            for (int band = 0; band < 3; band++) {
                float sum = 0.0f;

                for (int j = 0; j < 3; j++) {
                    for (int i = 0; i < 3; i++) {
                        sum +=
                            (float)rows[j][col[i] + band] * kernel[j * 3 + i];
                    }
                }
                sum = sum / div + offset;
                sum = sum > 255.0f ? 255.0f : (sum < 0.0f ? 0.0f : sum);
                q[band] = (uint8_t)(int)sum;
            }
            if (bands == 4) {
                q[3] = rows[1][col[1] + 3];
            }
        }
    }
}

/* One pixel of GD's selective blur, per colour channel: neighbour weight
 * 1 / |centre - neighbour| (1 when equal), centre weight 0.5, each weight
 * divided by their sum, then the weighted sum of the nine values, clamped
 * and truncated. n[4] is the centre; recip[d] is 1.0f / d. */
static inline void
filter_selective_pixel(const uint8_t *const n[9], const float recip[256],
                       uint8_t out[3])
{
    const uint8_t *c = n[4];
    filter_v4 wt[9], v[9];
    filter_v4 sum = {0.0f, 0.0f, 0.0f, 0.0f};
    filter_v4 acc = {0.0f, 0.0f, 0.0f, 0.0f};

    for (int k = 0; k < 9; k++) {
        const uint8_t *p = n[k];

        v[k] = (filter_v4){p[0], p[1], p[2], 0.0f};
        if (k == 4) {
            wt[k] = (filter_v4){0.5f, 0.5f, 0.5f, 0.5f};
        } else {
            wt[k] =
                (filter_v4){recip[abs(c[0] - p[0])], recip[abs(c[1] - p[1])],
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
        out[band] = (uint8_t)(int)a;
    }
}

/* GD's gdImageSelectiveBlur(), in place and row-major as GD runs it:
 * pixel (x, y) sees the results already written above and to its left;
 * neighbours outside the image read as black. */
static void
filter_selective(uint8_t *buf, int w, int h, int bands)
{
    size_t ls = (size_t)w * bands;
    float recip[256];

    recip[0] = 1.0f;
    for (int d = 1; d < 256; d++) {
        recip[d] = 1.0f / (float)d;
    }
    for (int y = 0; y < h; y++) {
        uint8_t *row = buf + (size_t)y * ls;
        const uint8_t *rows[3] = {
            y > 0 ? row - ls : NULL,
            row,
            y < h - 1 ? row + ls : NULL,
        };

        for (int x = 0; x < w; x++) {
            const uint8_t *n[9];
            uint8_t res[3];

            for (int j = 0; j < 3; j++) {
                for (int i = 0; i < 3; i++) {
                    int nx = x - 1 + i;

                    n[j * 3 + i] = rows[j] == NULL || nx < 0 || nx >= w
                                       ? filter_black
                                       : rows[j] + (size_t)nx * bands;
                }
            }
            filter_selective_pixel(n, recip, res);
            memcpy(row + (size_t)x * bands, res, 3);
        }
    }
}

static int
filter_execute(kiln_exec *ctx, const void *params, void *const *in, void **out,
               kiln_error *err)
{
    const filter_params *p = params;
    const Image *src = in[0];
    int w = (int)src->columns, h = (int)src->rows;
    size_t n = (size_t)w * h;
    uint8_t *buf = NULL, *dst = NULL;
    Image *res = NULL;
    int bands;

    (void)ctx;
    if (p->filter < FILTER_NEGATE || p->filter > FILTER_BLURSELECTIVE) {
        return mk_api->error_set(err, KILN_EINTERNAL,
                                 "filter: unknown filter %d", p->filter);
    }
    if (p->filter == FILTER_GRAYSCALE || p->filter == FILTER_BW ||
        p->filter == FILTER_SEPIA) {
        int f = p->filter;
        return mk_rows(src, filter_recolour_row, &f, (Image **)out, err);
    }
    if (p->filter == FILTER_NEGATE) {
        /* A table: no copy of the pixels into 8-bit and back. */
        uint8_t lut[3][256];
        for (int v = 0; v < 256; v++) {
            lut[0][v] = lut[1][v] = lut[2][v] = (uint8_t)(255 - v);
        }
        return mk_lut(src, (const uint8_t(*)[256])lut, (Image **)out, err);
    }
    int rc = mk_export(src, &buf, &bands, err);
    if (rc != KILN_OK) {
        return rc;
    }
    switch (p->filter) {
    case FILTER_BLURSELECTIVE:
        filter_selective(buf, w, h, bands);
        break;
    default: {
        /* The convolutions read their input unchanged: a second buffer. */
        float kernel[9], div, offset;

        if (p->filter == FILTER_SMOOTH) {
            /* PHP hands GD the weight as a float; GD sums the divisor in
             * float. */
            float wt = (float)p->weight;

            for (int k = 0; k < 9; k++) {
                kernel[k] = k == 4 ? wt : 1.0f;
            }
            div = wt + 8.0f;
            offset = 0.0f;
        } else {
            memcpy(kernel, filter_kernels[p->filter].kernel, sizeof kernel);
            div = filter_kernels[p->filter].div;
            offset = filter_kernels[p->filter].offset;
        }
        if (div == 0.0f) {
            free(buf);
            return mk_api->error_set_param(
                err, KILN_EINVAL, "weight",
                "weight \"%.10g\" makes the smooth divisor weight + 8 zero "
                "(expected any other number)",
                p->weight);
        }
        dst = malloc(n * (size_t)bands > 0 ? n * (size_t)bands : 1);
        if (dst == NULL) {
            free(buf);
            return mk_api->error_set(err, KILN_ENOMEM, "filter: out of memory");
        }
        filter_convolve(buf, dst, w, h, bands, kernel, div, offset);
        free(buf);
        buf = dst;
        break;
    }
    }
    rc = mk_import(src, w, h, bands, buf, &res, err);
    free(buf);
    if (rc == KILN_OK) {
        *out = res;
    }
    return rc;
}

const kiln_op_impl filter_magick = {
    .size = sizeof(kiln_op_impl),
    .op = "filter",
    .backend = "magick",
    .execute_native = filter_execute,
};
