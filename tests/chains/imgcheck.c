/*
 * imgcheck: what the chain property tests (tests/chains/chains.py) read
 * back from kiln's outputs, for every format kiln writes, in one process.
 * Each line of standard input is a path, or two paths separated by a tab;
 * each answer is one JSON line on standard output: the first image's size,
 * bands, alpha and loader, and for a pair the PSNR of the second against
 * the first over every band (colour premultiplied by alpha where there is
 * alpha; 99 when the pixels are identical) or why the two cannot be
 * compared. An unreadable file answers {"ok": false, ...}.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <vips/vips.h>

/* Prints s as a JSON string (the paths and libvips' messages are ASCII
 * apart from what we escape here). */
static void
put_json_string(const char *s)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            printf("\\%c", *p);
        } else if (*p < 0x20) {
            printf("\\u%04x", *p);
        } else {
            putchar(*p);
        }
    }
    putchar('"');
}

static void
put_failure(const char *what, const char *path)
{
    char msg[512];
    snprintf(msg, sizeof msg, "%s %s: %s", what, path, vips_error_buffer());
    vips_error_clear();
    printf("{\"ok\": false, \"error\": ");
    put_json_string(msg);
    printf("}\n");
}

/* The whole image, first page only, fully decoded (so that a truncated
 * file fails here rather than looking fine from its header). */
static VipsImage *
load(const char *path)
{
    VipsImage *im =
        vips_image_new_from_file(path, "access", VIPS_ACCESS_RANDOM, "fail_on",
                                 VIPS_FAIL_ON_ERROR, NULL);
    double avg;
    if (im != NULL && vips_avg(im, &avg, NULL) != 0) {
        g_object_unref(im);
        return NULL;
    }
    return im;
}

/* PSNR of b against a over every band, on the 0..255 scale; 99 when the
 * pixels are equal. -1 when the shapes differ (*why says how). With
 * alpha, colour is compared premultiplied by it, as it shows when the
 * image is composited (ImageMagick's compare weighs it the same way): the
 * colour of a nearly transparent pixel is invisible, and a resample that
 * divides by a small alpha to store it moves it far for nothing. */
static double
psnr(VipsImage *a, VipsImage *b, const char **why)
{
    VipsImage *pa = NULL, *pb = NULL, *d = NULL, *sq = NULL;
    double mse = -1;
    if (a->Xsize != b->Xsize || a->Ysize != b->Ysize) {
        *why = "sizes differ";
        return -1;
    }
    if (a->Bands != b->Bands) {
        *why = "band counts differ";
        return -1;
    }
    *why = "libvips could not compare them";
    if (vips_image_hasalpha(a)) {
        if (vips_premultiply(a, &pa, NULL) != 0 ||
            vips_premultiply(b, &pb, NULL) != 0) {
            goto done;
        }
    } else {
        pa = g_object_ref(a);
        pb = g_object_ref(b);
    }
    if (vips_subtract(pa, pb, &d, NULL) == 0 &&
        vips_multiply(d, d, &sq, NULL) == 0 && vips_avg(sq, &mse, NULL) == 0) {
        *why = NULL;
    }
done:
    if (*why != NULL) {
        vips_error_clear();
        mse = -1;
    }
    VipsImage *all[] = {sq, d, pb, pa};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        if (all[i] != NULL) {
            g_object_unref(all[i]);
        }
    }
    if (mse < 0) {
        return -1;
    }
    if (mse == 0) {
        return 99;
    }
    double db = 10 * log10(255.0 * 255.0 / mse);
    return db > 98 ? 98 : db;
}

int
main(int argc, char **argv)
{
    if (VIPS_INIT(argv[0])) {
        vips_error_exit(NULL);
    }
    (void)argc;
    char line[8192];
    while (fgets(line, sizeof line, stdin) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        char *second = strchr(line, '\t');
        if (second != NULL) {
            *second++ = '\0';
        }
        VipsImage *a = load(line);
        if (a == NULL) {
            put_failure("cannot read", line);
            fflush(stdout);
            continue;
        }
        const char *loader = "";
        if (vips_image_get_typeof(a, VIPS_META_LOADER) != 0) {
            vips_image_get_string(a, VIPS_META_LOADER, &loader);
        }
        printf("{\"ok\": true, \"width\": %d, \"height\": %d, \"bands\": %d, "
               "\"alpha\": %s, \"bits\": %d, \"loader\": ",
               a->Xsize, a->Ysize, a->Bands,
               vips_image_hasalpha(a) ? "true" : "false",
               a->BandFmt == VIPS_FORMAT_USHORT ? 16 : 8);
        put_json_string(loader);
        if (vips_image_hasalpha(a)) {
            /* The least alpha: 255 means the alpha band says nothing. */
            VipsImage *al = NULL;
            double least = -1;
            if (vips_extract_band(a, &al, a->Bands - 1, NULL) == 0 &&
                vips_min(al, &least, NULL) == 0) {
                if (a->BandFmt == VIPS_FORMAT_USHORT) {
                    least /= 257;
                }
                printf(", \"alpha_min\": %g", least);
            }
            vips_error_clear();
            if (al != NULL) {
                g_object_unref(al);
            }
        }
        if (second != NULL) {
            VipsImage *b = load(second);
            if (b == NULL) {
                printf(", \"psnr\": null, \"why\": ");
                char msg[512];
                snprintf(msg, sizeof msg, "cannot read %s: %s", second,
                         vips_error_buffer());
                vips_error_clear();
                put_json_string(msg);
            } else {
                const char *why = NULL;
                double db = psnr(a, b, &why);
                if (why != NULL) {
                    printf(", \"psnr\": null, \"why\": ");
                    put_json_string(why);
                } else {
                    printf(", \"psnr\": %.2f", db);
                }
                g_object_unref(b);
            }
        }
        printf("}\n");
        fflush(stdout);
        g_object_unref(a);
    }
    vips_shutdown();
    return 0;
}
