/*
 * ops-vips' own Lanczos3 reductions (plugins/ops-vips/reducev.c and
 * reduceh.c), linked in from the plugin's sources: over random heights,
 * widths, band counts and factors, on both paths of each (SIMD and
 * portable), each must
 * agree within one level with the reduction computed here in double from
 * its definition, and have libvips' output height. Random images
 * (gaussnoise) are the hard case for rounding.
 */
#include <CUnit/CUnit.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../plugins/ops-vips/ops.h"

int test_reducev_register(void);

static double
tr_lanczos3(double x)
{
    x = fabs(x);
    if (x < 1e-9) {
        return 1.0;
    }
    if (x >= 3.0) {
        return 0.0;
    }
    double px = G_PI * x;
    return 3.0 * sin(px) * sin(px / 3.0) / (px * px);
}

/* The same for ops_reduceh, along rows: output column x centred on input
 * column (x + 0.5) f - 0.5, edge columns repeated. */
static double
tr_worst_h(VipsImage *u8, double f)
{
    VipsImage *mine = NULL;
    CU_ASSERT_EQUAL_FATAL(ops_reduceh(u8, f, &mine), 0);
    VipsImage *m = vips_image_copy_memory(mine);
    g_object_unref(mine);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    int w = u8->Xsize, h = u8->Ysize, bands = u8->Bands;
    double worst = -1;
    if (m->Xsize == (int)fmax(1, rint(w / f)) && m->Ysize == h &&
        m->Bands == bands) {
        worst = 0;
        for (int y = 0; y < h; y++) {
            const uint8_t *row = (const uint8_t *)VIPS_IMAGE_ADDR(u8, 0, y);
            const uint8_t *got = (const uint8_t *)VIPS_IMAGE_ADDR(m, 0, y);
            for (int x = 0; x < m->Xsize; x++) {
                double c = (x + 0.5) * f - 0.5;
                for (int b = 0; b < bands; b++) {
                    double s = 0, sw = 0;
                    for (int t = (int)ceil(c - 3 * f);
                         t <= (int)floor(c + 3 * f); t++) {
                        int cc = t < 0 ? 0 : t >= w ? w - 1 : t;
                        double wt = tr_lanczos3((t - c) / f);
                        s += wt * row[cc * bands + b];
                        sw += wt;
                    }
                    double want = fmin(255, fmax(0, s / sw));
                    worst = fmax(worst, fabs(got[x * bands + b] - want));
                }
            }
        }
    }
    g_object_unref(m);
    return worst;
}

/* The largest difference, in levels, between ops_reducev's output and the
 * reduction computed here in double from the definition: output row y
 * centred on input row (y + 0.5) f - 0.5, Lanczos3 stretched by f,
 * weights normalised, edge rows repeated; -1 on a size mismatch. */
static double
tr_worst(VipsImage *u8, double f)
{
    VipsImage *mine = NULL;
    CU_ASSERT_EQUAL_FATAL(ops_reducev(u8, f, &mine), 0);
    VipsImage *m = vips_image_copy_memory(mine);
    g_object_unref(mine);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    int w = u8->Xsize, h = u8->Ysize, bands = u8->Bands;
    double worst = -1;
    if (m->Ysize == (int)fmax(1, rint(h / f)) && m->Xsize == w &&
        m->Bands == bands) {
        worst = 0;
        for (int y = 0; y < m->Ysize; y++) {
            double c = (y + 0.5) * f - 0.5;
            for (int x = 0; x < w * bands; x++) {
                double s = 0, sw = 0;
                for (int t = (int)ceil(c - 3 * f); t <= (int)floor(c + 3 * f);
                     t++) {
                    int r = t < 0 ? 0 : t >= h ? h - 1 : t;
                    double wt = tr_lanczos3((t - c) / f);
                    s += wt * ((const uint8_t *)VIPS_IMAGE_ADDR(u8, 0, r))[x];
                    sw += wt;
                }
                double want = fmin(255, fmax(0, s / sw));
                double got = ((const uint8_t *)VIPS_IMAGE_ADDR(m, 0, y))[x];
                worst = fmax(worst, fabs(got - want));
            }
        }
    }
    g_object_unref(m);
    return worst;
}

/* Random regions of an image made by ops_reduceh: each must hold what
 * the same columns of the whole image hold. The SIMD paths treat the
 * columns near a region's edges apart from the rest, and store a 3-band
 * pixel as 4 bytes, which only later columns may overwrite. */
static int
tr_regions_h(VipsImage *u8, double f, unsigned *seed)
{
    VipsImage *mine = NULL;
    CU_ASSERT_EQUAL_FATAL(ops_reduceh(u8, f, &mine), 0);
    VipsImage *whole = vips_image_copy_memory(mine);
    CU_ASSERT_PTR_NOT_NULL_FATAL(whole);
    VipsRegion *reg = vips_region_new(mine);
    int bad = 0;
    for (int k = 0; k < 8 && !bad; k++) {
        VipsRect r;
        r.left = (int)(rand_r(seed) % (unsigned)whole->Xsize);
        r.top = (int)(rand_r(seed) % (unsigned)whole->Ysize);
        r.width = 1 + (int)(rand_r(seed) % (unsigned)(whole->Xsize - r.left));
        r.height = 1 + (int)(rand_r(seed) % (unsigned)(whole->Ysize - r.top));
        CU_ASSERT_EQUAL_FATAL(vips_region_prepare(reg, &r), 0);
        for (int y = r.top; y < r.top + r.height && !bad; y++) {
            bad = memcmp(VIPS_REGION_ADDR(reg, r.left, y),
                         VIPS_IMAGE_ADDR(whole, r.left, y),
                         (size_t)r.width * u8->Bands) != 0;
        }
        if (bad) {
            fprintf(stderr, "reduceh region %dx%d+%d+%d differs\n", r.width,
                    r.height, r.left, r.top);
        }
    }
    g_object_unref(reg);
    g_object_unref(whole);
    g_object_unref(mine);
    return bad;
}

/* Random sizes, band counts and factors from 1 to 20, on noise (each band
 * its own), with the fastest kernels this CPU has, with SSE4.1 only
 * (reduceh) and with the portable ones. */
static void
test_reducev_matches_definition(void)
{
    static const char *const paths[] = {NULL, "sse4.1", "1"};
    for (int path = 0; path < 3; path++) {
        if (paths[path] != NULL) {
            setenv("KILN_REDUCEV_PORTABLE", paths[path], 1);
        }
        unsigned seed = 1301;
        for (int k = 0; k < 40; k++) {
            int w = 1 + (int)(rand_r(&seed) % 300);
            int h = 2 + (int)(rand_r(&seed) % 300);
            int bands = 1 + (int)(rand_r(&seed) % 4);
            double f = 1.0 + (rand_r(&seed) % 19000) / 1000.0;
            VipsImage *noise[4] = {NULL}, *joined = NULL, *u0 = NULL;
            for (int b = 0; b < bands; b++) {
                CU_ASSERT_EQUAL_FATAL(vips_gaussnoise(&noise[b], w, h, "mean",
                                                      128.0, "sigma", 80.0,
                                                      "seed", k * 4 + b, NULL),
                                      0);
            }
            CU_ASSERT_EQUAL_FATAL(vips_bandjoin(noise, &joined, bands, NULL),
                                  0);
            CU_ASSERT_EQUAL_FATAL(
                vips_cast(joined, &u0, VIPS_FORMAT_UCHAR, NULL), 0);
            VipsImage *u8 = vips_image_copy_memory(u0);
            CU_ASSERT_PTR_NOT_NULL_FATAL(u8);
            double worst = tr_worst(u8, f);
            double worst_h = tr_worst_h(u8, f);
            int bad_regions = tr_regions_h(u8, f, &seed);
            CU_ASSERT(worst >= 0 && worst <= 1.0);
            CU_ASSERT(worst_h >= 0 && worst_h <= 1.0);
            CU_ASSERT_EQUAL(bad_regions, 0);
            if (worst < 0 || worst > 1.0 || worst_h < 0 || worst_h > 1.0) {
                fprintf(stderr,
                        "reduce (%s): %dx%d, %d bands, factor %g: %g (v), "
                        "%g (h) levels from the definition\n",
                        paths[path] ? paths[path] : "this CPU's", w, h, bands,
                        f, worst, worst_h);
            }
            g_object_unref(u8);
            g_object_unref(u0);
            g_object_unref(joined);
            for (int b = 0; b < bands; b++) {
                g_object_unref(noise[b]);
            }
        }
    }
    unsetenv("KILN_REDUCEV_PORTABLE");
}

/* Outside its range it refuses, as libvips' own would, with a message. */
static void
test_reducev_refuses(void)
{
    VipsImage *im = NULL, *f = NULL, *out = NULL;
    CU_ASSERT_EQUAL_FATAL(vips_black(&im, 8, 8, NULL), 0);
    CU_ASSERT_EQUAL_FATAL(vips_cast(im, &f, VIPS_FORMAT_FLOAT, NULL), 0);
    vips_error_clear();
    CU_ASSERT_NOT_EQUAL(ops_reducev(f, 2.0, &out), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(vips_error_buffer(), "ops_reducev"));
    vips_error_clear();
    g_object_unref(im);
    g_object_unref(f);
}

int
test_reducev_register(void)
{
    CU_pSuite s = CU_add_suite("reducev", NULL, NULL);
    if (s == NULL) {
        return 1;
    }
    CU_add_test(s, "agrees with the definition, both row paths",
                test_reducev_matches_definition);
    CU_add_test(s, "refuses what it does not do", test_reducev_refuses);
    return 0;
}
