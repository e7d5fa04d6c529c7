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

/* Random sizes, band counts and factors from 1 to 20, on noise, with the
 * AVX2 rows (where the CPU has them) and with the portable ones. */
static void
test_reducev_matches_definition(void)
{
    for (int portable = 0; portable < 2; portable++) {
        if (portable) {
            setenv("KILN_REDUCEV_PORTABLE", "1", 1); /* both kernels */
        }
        unsigned seed = 1301;
        for (int k = 0; k < 40; k++) {
            int w = 1 + (int)(rand_r(&seed) % 300);
            int h = 2 + (int)(rand_r(&seed) % 300);
            int bands = 1 + (int)(rand_r(&seed) % 4);
            double f = 1.0 + (rand_r(&seed) % 19000) / 1000.0;
            VipsImage *noise = NULL, *joined = NULL, *u0 = NULL;
            VipsImage *bandsv[4];
            CU_ASSERT_EQUAL_FATAL(vips_gaussnoise(&noise, w, h, "mean", 128.0,
                                                  "sigma", 80.0, "seed", k,
                                                  NULL),
                                  0);
            for (int b = 0; b < bands; b++) {
                bandsv[b] = noise;
            }
            CU_ASSERT_EQUAL_FATAL(vips_bandjoin(bandsv, &joined, bands, NULL),
                                  0);
            CU_ASSERT_EQUAL_FATAL(
                vips_cast(joined, &u0, VIPS_FORMAT_UCHAR, NULL), 0);
            VipsImage *u8 = vips_image_copy_memory(u0);
            CU_ASSERT_PTR_NOT_NULL_FATAL(u8);
            double worst = tr_worst(u8, f);
            double worst_h = tr_worst_h(u8, f);
            CU_ASSERT(worst >= 0 && worst <= 1.0);
            CU_ASSERT(worst_h >= 0 && worst_h <= 1.0);
            if (worst < 0 || worst > 1.0 || worst_h < 0 || worst_h > 1.0) {
                fprintf(stderr,
                        "reduce (%s): %dx%d, %d bands, factor %g: %g (v), "
                        "%g (h) levels from the definition\n",
                        portable ? "portable" : "this CPU's", w, h, bands, f,
                        worst, worst_h);
            }
            g_object_unref(u8);
            g_object_unref(u0);
            g_object_unref(joined);
            g_object_unref(noise);
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
