/*
 * plugins/backend-vips/encode.c's direct JPEG encoder (encode_jpeg_direct),
 * checked against libvips' own saver: for random images (noise over a gradient,
 * flat, one pixel, odd sizes) at every quality from 1 to 100, the bytes
 * must be vips_jpegsave's with strip, exactly; and it takes only what it
 * can (an image in memory, 8-bit sRGB, 3 bands). And HEIC: a shape the
 * encoder refuses is an error, never a file without its image.
 */
#include <CUnit/CUnit.h>
#include <stdlib.h>
#include <string.h>

#include "../../plugins/backend-vips/vips.h"

int test_encode_register(void);

/* The bytes encode_jpeg_direct writes for `im` at quality q (g_free). */
static void *
te_direct(VipsImage *im, int q, size_t *len)
{
    VipsTarget *t = vips_target_new_to_memory();
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT_EQUAL(encode_jpeg_direct(im, q, t), 0);
    VipsBlob *b = NULL;
    g_object_get(t, "blob", &b, NULL);
    void *copy = NULL;
    *len = 0;
    if (b != NULL) {
        size_t n = 0;
        const void *d = vips_blob_get(b, &n);
        copy = g_memdup2(d, n);
        *len = n;
        vips_area_unref(VIPS_AREA(b));
    }
    g_object_unref(t);
    return copy;
}

/* A w x h sRGB image in memory: noise of `sigma` over a diagonal
 * gradient. */
static VipsImage *
te_image(int w, int h, double sigma, int seed)
{
    VipsImage *n = NULL, *x = NULL, *g = NULL, *sum = NULL, *rgb = NULL,
              *u8 = NULL;
    CU_ASSERT_EQUAL_FATAL(vips_gaussnoise(&n, w, h, "mean", 0.0, "sigma", sigma,
                                          "seed", seed, NULL),
                          0);
    CU_ASSERT_EQUAL_FATAL(vips_xyz(&x, w, h, NULL), 0);
    CU_ASSERT_EQUAL_FATAL(vips_linear1(x, &g, 128.0 / (w + h + 1), 40.0, NULL),
                          0);
    VipsImage *bands[3] = {NULL};
    VipsImage *g0 = NULL, *g1 = NULL;
    CU_ASSERT_EQUAL_FATAL(vips_extract_band(g, &g0, 0, NULL), 0);
    CU_ASSERT_EQUAL_FATAL(vips_extract_band(g, &g1, 1, NULL), 0);
    bands[0] = g0;
    bands[1] = g1;
    CU_ASSERT_EQUAL_FATAL(vips_add(g0, g1, &bands[2], NULL), 0);
    CU_ASSERT_EQUAL_FATAL(vips_bandjoin(bands, &rgb, 3, NULL), 0);
    CU_ASSERT_EQUAL_FATAL(vips_add(rgb, n, &sum, NULL), 0);
    CU_ASSERT_EQUAL_FATAL(vips_cast(sum, &u8, VIPS_FORMAT_UCHAR, NULL), 0);
    VipsImage *m = vips_image_copy_memory(u8);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    m->Type = VIPS_INTERPRETATION_sRGB;
    g_object_unref(n);
    g_object_unref(x);
    g_object_unref(g);
    g_object_unref(g0);
    g_object_unref(g1);
    g_object_unref(bands[2]);
    g_object_unref(rgb);
    g_object_unref(sum);
    g_object_unref(u8);
    return m;
}

static void
test_encode_matches_libvips(void)
{
    unsigned seed = 1307;
    int bad = 0;
    for (int k = 0; k < 24; k++) {
        int w = k == 0 ? 1 : 1 + (int)(rand_r(&seed) % 400);
        int h = k == 0 ? 1 : 1 + (int)(rand_r(&seed) % 300);
        double sigma = k % 5 == 1 ? 0 : (double)(rand_r(&seed) % 60);
        VipsImage *im = te_image(w, h, sigma, k);
        CU_ASSERT(encode_jpeg_direct_ok(im));
        /* Every quality across the images, each image several. */
        for (int q = 1 + k % 7; q <= 100; q += 7) {
            size_t n = 0, m = 0;
            void *mine = te_direct(im, q, &n);
            void *theirs = NULL;
            CU_ASSERT_EQUAL_FATAL(vips_jpegsave_buffer(im, &theirs, &m, "Q", q,
                                                       "strip", TRUE, NULL),
                                  0);
            if (mine == NULL || n != m || memcmp(mine, theirs, n) != 0) {
                if (bad++ < 5) {
                    fprintf(stderr,
                            "encode_jpeg_direct: %dx%d sigma %g Q %d: %zu "
                            "bytes, libvips %zu\n",
                            w, h, sigma, q, n, m);
                }
            }
            g_free(mine);
            g_free(theirs);
        }
        g_object_unref(im);
    }
    CU_ASSERT_EQUAL(bad, 0);
}

/* A pipeline image, one band, or another format: libvips' saver. */
static void
test_encode_takes_only_memory_rgb(void)
{
    VipsImage *im = te_image(16, 16, 10, 1), *lazy = NULL, *grey = NULL;
    CU_ASSERT(encode_jpeg_direct_ok(im));
    CU_ASSERT_EQUAL_FATAL(vips_invert(im, &lazy, NULL), 0);
    CU_ASSERT(!encode_jpeg_direct_ok(lazy));
    CU_ASSERT_EQUAL_FATAL(vips_extract_band(im, &grey, 0, NULL), 0);
    VipsImage *g = vips_image_copy_memory(grey);
    CU_ASSERT(!encode_jpeg_direct_ok(g));
    g_object_unref(g);
    g_object_unref(grey);
    g_object_unref(lazy);
    g_object_unref(im);
}

/* HEIC: a shape x265 refuses is an error, not a file without its image;
 * the shapes at the edge of the rule bind enforces write and read back. */
static void
test_encode_heic_checked(void)
{
    static const int shapes[][3] = {
        /* w, h, writes */
        {1, 4216, 1}, {31, 4216, 1}, {32, 4224, 1}, {1, 4217, 0},
        {4300, 1, 0}, {16, 9000, 0}, {8, 8, 1},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        int w = shapes[i][0], h = shapes[i][1];
        VipsImage *im = te_image(w, h, 10, (unsigned)i + 1);
        VipsTarget *t = vips_target_new_to_memory();
        CU_ASSERT_PTR_NOT_NULL_FATAL(t);
        int rc = encode_save(im, FORMAT_HEIC, 50, t);
        CU_ASSERT_EQUAL(rc == 0, shapes[i][2] == 1);
        /* The rule bind refuses with is the same. */
        int lo = w < h ? w : h, hi = w < h ? h : w;
        CU_ASSERT_EQUAL(lo < GRAPH_HEIC_NARROW &&
                            hi > graph_format_narrow_max(FORMAT_HEIC),
                        shapes[i][2] == 0);
        if (rc != 0) {
            CU_ASSERT_PTR_NOT_NULL(
                strstr(vips_error_buffer(), "did not encode"));
            vips_error_clear();
        }
        g_object_unref(t);
        g_object_unref(im);
    }
}

int
test_encode_register(void)
{
    CU_pSuite s = CU_add_suite("encode", NULL, NULL);
    if (s == NULL) {
        return 1;
    }
    CU_add_test(s, "direct JPEG: libvips' bytes at every quality",
                test_encode_matches_libvips);
    CU_add_test(s, "direct JPEG: only 8-bit RGB in memory",
                test_encode_takes_only_memory_rgb);
    CU_add_test(s, "HEIC: a shape the encoder refuses is an error",
                test_encode_heic_checked);
    return 0;
}
