/*
 * The "magick" pixel backend: MagickCore (ImageMagick 6, Q16) decoding,
 * encoding and conversion to and from libvips, with kiln's safety rules
 * (docs/backends.md):
 *
 * - The format is told from the file's first bytes by kiln's own table
 *   and the coder is pinned to it ("JPEG:" and affirm): ImageMagick never
 *   guesses a coder, so an MVG or MSL drawing renamed .jpg is refused
 *   before any coder runs.
 * - A security policy set at start-up denies every coder but the ones
 *   below, every delegate (external program), and indirect file names
 *   ("@file"), whatever the system's policy.xml says.
 * - Resource limits (width, height, area, memory, map, disk, list length)
 *   are set before the first decode; the pixel limit of the job is
 *   checked from the header (probe) before decoding; the job's time limit
 *   stops a decode through a progress monitor (MagickCore's own time
 *   resource counts from the library's start, for the whole process, so a
 *   server would die of it).
 */
#define _GNU_SOURCE /* memmem */
#include "magick.h"

#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* --------------------------------------------------------- formats */

typedef struct mk_format {
    const char *name;  /* kiln's name: "jpeg" */
    const char *coder; /* ImageMagick's: "JPEG" */
    bool alpha;        /* can be written with alpha */
    bool vips;         /* libvips reads it too (mk_probe_vips) */
} mk_format;

static const mk_format mk_formats[] = {
    {"jpeg", "JPEG", false, true}, {"png", "PNG", true, true},
    {"gif", "GIF", true, true},    {"webp", "WEBP", true, true},
    {"tiff", "TIFF", true, true},  {"bmp", "BMP", true, false},
    {"psd", "PSD", true, false},   {"pcx", "PCX", false, false},
    {"xwd", "XWD", false, false},  {"dpx", "DPX", false, false},
    {"pnm", "PNM", false, false},
};

static const char *const mk_read_formats[] = {"jpeg", "png", "gif", "webp",
                                              "tiff", "bmp", "psd", "pcx",
                                              "xwd",  "dpx", "pnm", NULL};
static const char *const mk_write_formats[] = {"jpeg", "png",  "gif",
                                               "webp", "tiff", NULL};

/* Every coder the backend may run; the policy denies all others. */
#define MK_CODERS "{JPEG,PNG,GIF,WEBP,TIFF,BMP,PSD,PCX,XWD,DPX,PNM}"

static const mk_format *
mk_format_named(const char *name)
{
    for (size_t i = 0; i < sizeof mk_formats / sizeof mk_formats[0]; i++) {
        if (strcmp(mk_formats[i].name, name) == 0) {
            return &mk_formats[i];
        }
    }
    return NULL;
}

static uint32_t
mk_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

/* The format of `b` from its first bytes, or NULL. `what` gets a name
 * for some formats the backend refuses ("an SVG document"). */
static const mk_format *
mk_sniff(const unsigned char *b, size_t n, const char **what)
{
    *what = NULL;
    const char *name = NULL;
    if (n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) {
        name = "jpeg";
    } else if (n >= 8 && memcmp(b, "\x89PNG\r\n\x1a\n", 8) == 0) {
        name = "png";
    } else if (n >= 6 &&
               (memcmp(b, "GIF87a", 6) == 0 || memcmp(b, "GIF89a", 6) == 0)) {
        name = "gif";
    } else if (n >= 12 && memcmp(b, "RIFF", 4) == 0 &&
               memcmp(b + 8, "WEBP", 4) == 0) {
        name = "webp";
    } else if (n >= 4 &&
               (memcmp(b, "II*\0", 4) == 0 || memcmp(b, "MM\0*", 4) == 0)) {
        name = "tiff";
    } else if (n >= 18 && b[0] == 'B' && b[1] == 'M' &&
               (b[14] == 12 || b[14] == 40 || b[14] == 52 || b[14] == 56 ||
                b[14] == 64 || b[14] == 108 || b[14] == 124) &&
               b[15] == 0 && b[16] == 0 && b[17] == 0) {
        name = "bmp";
    } else if (n >= 6 && memcmp(b, "8BPS\0\1", 6) == 0) {
        name = "psd";
    } else if (n >= 128 && b[0] == 0x0A && b[1] <= 5 && b[1] != 1 &&
               b[2] == 1 &&
               (b[3] == 1 || b[3] == 2 || b[3] == 4 || b[3] == 8)) {
        name = "pcx";
    } else if (n >= 100 && mk_be32(b + 4) == 7 && mk_be32(b) >= 100 &&
               mk_be32(b) < 4096) {
        name = "xwd";
    } else if (n >= 4 &&
               (memcmp(b, "SDPX", 4) == 0 || memcmp(b, "XPDS", 4) == 0)) {
        name = "dpx";
    } else if (n >= 3 && b[0] == 'P' && b[1] >= '1' && b[1] <= '6' &&
               (b[2] == ' ' || b[2] == '\n' || b[2] == '\r' || b[2] == '\t' ||
                b[2] == '#')) {
        name = "pnm";
    }
    if (name != NULL) {
        return mk_format_named(name);
    }
    /* What it is, for the message, when it says so near its start. */
    char head[513];
    size_t l = n < sizeof head - 1 ? n : sizeof head - 1;
    memcpy(head, b, l);
    for (size_t i = 0; i < l; i++) {
        head[i] = head[i] == '\0' ? ' ' : head[i];
    }
    head[l] = '\0';
    if (l >= 5 && memcmp(head, "%PDF-", 5) == 0) {
        *what = "a PDF document";
    } else if (l >= 2 && memcmp(head, "%!", 2) == 0) {
        *what = "a PostScript document";
    } else if (strstr(head, "<svg") != NULL) {
        *what = "an SVG document";
    } else if (strstr(head, "<image") != NULL && strstr(head, "<?xml")) {
        *what = "an MSL script";
    } else if (strstr(head, "graphic-context") != NULL ||
               strstr(head, "viewbox") != NULL) {
        *what = "an MVG drawing";
    }
    return NULL;
}

/* ------------------------------------------------------ start-up */

static pthread_once_t mk_once = PTHREAD_ONCE_INIT;
static int mk_start_rc = KILN_OK;
static char mk_start_why[512];
static bool mk_started;

/* Denies every coder but kiln's, every delegate and "@file" names. The
 * last matching policy decides in ImageMagick 6, so the allow-list comes
 * after the denial of everything. */
static const char mk_policy[] =
    "<policymap>"
    "<policy domain=\"delegate\" rights=\"none\" pattern=\"*\"/>"
    "<policy domain=\"coder\" rights=\"none\" pattern=\"*\"/>"
    "<policy domain=\"coder\" rights=\"read|write\" pattern=\"" MK_CODERS "\"/>"
    "<policy domain=\"path\" rights=\"none\" pattern=\"@*\"/>"
    "</policymap>";

static void
mk_start_once(void)
{
    /* MagickCore stays until the process ends: its coder modules keep
     * state for the life of the process, and ending it (MagickCoreTerminus)
     * unloads them with some of that state unreachable. Pinning the
     * library keeps it mapped when the host unloads this plugin. */
    Dl_info dl;
    if (dladdr((void *)MagickCoreGenesis, &dl) != 0 && dl.dli_fname != NULL) {
        (void)dlopen(dl.dli_fname, RTLD_NOW | RTLD_NODELETE | RTLD_NOLOAD);
    }
    MagickCoreGenesis("kiln", MagickFalse);
    mk_started = true;
    ExceptionInfo *ex = AcquireExceptionInfo();
    if (SetMagickSecurityPolicy(mk_policy, ex) == MagickFalse) {
        snprintf(mk_start_why, sizeof mk_start_why,
                 "ImageMagick refused kiln's security policy%s%s",
                 ex->reason != NULL ? ": " : "",
                 ex->reason != NULL ? ex->reason : "");
        mk_start_rc = KILN_EINTERNAL;
    }
    DestroyExceptionInfo(ex);
    /* kiln's largest side; the rest bound what one decode or op may use
     * before MagickCore refuses (a pixel cache larger than memory and map
     * goes to disk, up to the disk limit). The system's policy.xml may
     * lower any of them, never raise them. */
    SetMagickResourceLimit(WidthResource, 65535);
    SetMagickResourceLimit(HeightResource, 65535);
    SetMagickResourceLimit(AreaResource, (MagickSizeType)256 << 20);
    SetMagickResourceLimit(MemoryResource, (MagickSizeType)2 << 30);
    SetMagickResourceLimit(MapResource, (MagickSizeType)4 << 30);
    SetMagickResourceLimit(DiskResource, (MagickSizeType)4 << 30);
    SetMagickResourceLimit(ListLengthResource, 64);
}

int
mk_start(kiln_error *err)
{
    pthread_once(&mk_once, mk_start_once);
    if (mk_start_rc != KILN_OK) {
        return mk_api->error_set(err, mk_start_rc, "%s", mk_start_why);
    }
    return KILN_OK;
}

void
mk_stop(void)
{
    /* Nothing: see mk_start_once. */
    (void)mk_started;
}

/* -------------------------------------------------------- helpers */

int
mk_error(kiln_error *err, int code, ExceptionInfo *ex, const char *what)
{
    const char *reason =
        ex != NULL && ex->severity != UndefinedException ? ex->reason : NULL;
    const char *desc = reason != NULL ? ex->description : NULL;
    if (reason != NULL && strstr(reason, "exceeds limit") != NULL) {
        /* MagickCore's own limits (backend.c's, lowered by the system's
         * policy.xml): a limit the job ran into, not a failure. */
        mk_api->error_set(
            err, KILN_ELIMIT,
            "%s: an image of this size is above the limit of "
            "%llu x %llu pixels that ImageMagick has here (the "
            "system's policy.xml may lower kiln's 65535)",
            what, (unsigned long long)GetMagickResourceLimit(WidthResource),
            (unsigned long long)GetMagickResourceLimit(HeightResource));
    } else if (reason != NULL && strstr(reason, "resources exhausted")) {
        mk_api->error_set(
            err, KILN_ELIMIT,
            "%s: above the limit of ImageMagick's pixel cache "
            "here (memory %llu MB, disk %llu MB; the system's "
            "policy.xml may lower kiln's)",
            what,
            (unsigned long long)(GetMagickResourceLimit(MemoryResource) >> 20),
            (unsigned long long)(GetMagickResourceLimit(DiskResource) >> 20));
    } else if (reason != NULL) {
        mk_api->error_set(err, code, "%s; ImageMagick said: %s%s%s%s", what,
                          reason, desc != NULL ? " (" : "",
                          desc != NULL ? desc : "", desc != NULL ? ")" : "");
    } else {
        mk_api->error_set(err, code, "%s", what);
    }
    if (ex != NULL) {
        ClearMagickException(ex);
    }
    return err->code;
}

/* The rows of `im` are independent in these loops: they run on
 * MagickCore's OpenMP threads, as its own operations do (one cache view
 * serves several threads). */
int
mk_export(const Image *im, uint8_t **buf, int *bands, kiln_error *err)
{
    int nb = im->matte ? 4 : 3;
    size_t w = im->columns, rowb = w * (size_t)nb;
    uint8_t *b = malloc(rowb * im->rows > 0 ? rowb * im->rows : 1);
    if (b == NULL) {
        return mk_api->error_set(err, KILN_ENOMEM, "out of memory");
    }
    ExceptionInfo *ex = AcquireExceptionInfo();
    CacheView *v = AcquireVirtualCacheView(im, ex);
    int ok = 1;
#pragma omp parallel for schedule(static) reduction(& : ok)
    for (ssize_t y = 0; y < (ssize_t)im->rows; y++) {
        const PixelPacket *p = GetCacheViewVirtualPixels(v, 0, y, w, 1, ex);
        if (p == NULL) {
            ok = 0;
            continue;
        }
        uint8_t *q = b + (size_t)y * rowb;
        for (size_t x = 0; x < w; x++, p++, q += nb) {
            q[0] = (uint8_t)mk_q8(GetPixelRed(p));
            q[1] = (uint8_t)mk_q8(GetPixelGreen(p));
            q[2] = (uint8_t)mk_q8(GetPixelBlue(p));
            if (nb == 4) {
                q[3] = (uint8_t)(255u - mk_q8(GetPixelOpacity(p)));
            }
        }
    }
    v = DestroyCacheView(v);
    if (!ok) {
        free(b);
        mk_error(err, KILN_EINTERNAL, ex, "cannot read the image's pixels");
        DestroyExceptionInfo(ex);
        return err->code;
    }
    DestroyExceptionInfo(ex);
    *buf = b;
    *bands = nb;
    return KILN_OK;
}

int
mk_import(const Image *like, int w, int h, int bands, const uint8_t *buf,
          Image **out, kiln_error *err)
{
    ExceptionInfo *ex = AcquireExceptionInfo();
    /* A blank image with like's settings (its progress monitor and the
     * job's deadline), of w x h; every pixel is written below. */
    Image *im = like != NULL
                    ? CloneImage(like, (size_t)w, (size_t)h, MagickTrue, ex)
                    : AcquireImage(NULL);
    if (im != NULL && like == NULL &&
        SetImageExtent(im, (size_t)w, (size_t)h) == MagickFalse) {
        InheritException(ex, &im->exception);
        im = DestroyImage(im);
    }
    if (im == NULL) {
        mk_error(err, KILN_EINTERNAL, ex, "cannot make an image of pixels");
        DestroyExceptionInfo(ex);
        return err->code;
    }
    im->matte = bands == 4 ? MagickTrue : MagickFalse;
    im->colorspace = sRGBColorspace;
    im->depth = 8;
    im->storage_class = DirectClass;
    size_t rowb = (size_t)w * (size_t)bands;
    CacheView *v = AcquireAuthenticCacheView(im, ex);
    int ok = 1;
#pragma omp parallel for schedule(static) reduction(& : ok)
    for (ssize_t y = 0; y < (ssize_t)h; y++) {
        PixelPacket *q =
            QueueCacheViewAuthenticPixels(v, 0, y, (size_t)w, 1, ex);
        if (q == NULL) {
            ok = 0;
            continue;
        }
        const uint8_t *p = buf + (size_t)y * rowb;
        for (int x = 0; x < w; x++, q++, p += bands) {
            SetPixelRed(q, mk_q16(p[0]));
            SetPixelGreen(q, mk_q16(p[1]));
            SetPixelBlue(q, mk_q16(p[2]));
            SetPixelOpacity(q,
                            bands == 4 ? mk_q16(255u - p[3]) : OpaqueOpacity);
        }
        if (SyncCacheViewAuthenticPixels(v, ex) == MagickFalse) {
            ok = 0;
        }
    }
    v = DestroyCacheView(v);
    if (!ok) {
        im = DestroyImage(im);
        mk_error(err, KILN_EINTERNAL, ex, "cannot write the image's pixels");
        DestroyExceptionInfo(ex);
        return err->code;
    }
    DestroyExceptionInfo(ex);
    *out = im;
    return KILN_OK;
}

int
mk_settle_area(Image *im, const RectangleInfo *area, kiln_error *err)
{
    /* The area, cut to the image. */
    ssize_t x0 = area->x > 0 ? area->x : 0, y0 = area->y > 0 ? area->y : 0;
    ssize_t x1 = area->x + (ssize_t)area->width,
            y1 = area->y + (ssize_t)area->height;
    x1 = x1 < (ssize_t)im->columns ? x1 : (ssize_t)im->columns;
    y1 = y1 < (ssize_t)im->rows ? y1 : (ssize_t)im->rows;
    size_t aw = x1 > x0 ? (size_t)(x1 - x0) : 0;
    ExceptionInfo *ex = AcquireExceptionInfo();
    CacheView *v = AcquireAuthenticCacheView(im, ex);
    int ok = 1;
    bool matte = im->matte != MagickFalse;
#pragma omp parallel for schedule(static) reduction(& : ok)
    for (ssize_t y = y0; y < y1; y++) {
        PixelPacket *q =
            aw > 0 ? GetCacheViewAuthenticPixels(v, x0, y, aw, 1, ex) : NULL;
        if (q == NULL) {
            ok = aw == 0 ? ok : 0;
            continue;
        }
        for (size_t x = 0; x < aw; x++, q++) {
            SetPixelRed(q, mk_q16(mk_q8(GetPixelRed(q))));
            SetPixelGreen(q, mk_q16(mk_q8(GetPixelGreen(q))));
            SetPixelBlue(q, mk_q16(mk_q8(GetPixelBlue(q))));
            SetPixelOpacity(q, matte ? mk_q16(mk_q8(GetPixelOpacity(q)))
                                     : OpaqueOpacity);
        }
        if (SyncCacheViewAuthenticPixels(v, ex) == MagickFalse) {
            ok = 0;
        }
    }
    v = DestroyCacheView(v);
    if (!ok) {
        mk_error(err, KILN_EINTERNAL, ex, "cannot write the image's pixels");
        DestroyExceptionInfo(ex);
        return err->code;
    }
    DestroyExceptionInfo(ex);
    im->colorspace = sRGBColorspace;
    im->depth = 8;
    return KILN_OK;
}

int
mk_settle(Image *im, kiln_error *err)
{
    RectangleInfo all = {im->columns, im->rows, 0, 0};
    return mk_settle_area(im, &all, err);
}

int
mk_writable(const Image *in, Image **out, kiln_error *err)
{
    if (in->reference_count == 1) {
        /* Only the host holds it, and it lets it go once the op returns
         * (the executor's last job owns the source; an op's output has
         * one holder): no one can see the change. */
        *out = ReferenceImage((Image *)in);
        return KILN_OK;
    }
    return mk_clone(in, out, err);
}

int
mk_rows(const Image *in, mk_row_fn fn, void *user, Image **out, kiln_error *err)
{
    Image *im = NULL;
    int rc = mk_writable(in, &im, err);
    if (rc != KILN_OK) {
        return rc;
    }
    size_t w = im->columns;
    ExceptionInfo *ex = AcquireExceptionInfo();
    CacheView *v = AcquireAuthenticCacheView(im, ex);
    int ok = 1;
#pragma omp parallel for schedule(static) reduction(& : ok)
    for (ssize_t y = 0; y < (ssize_t)im->rows; y++) {
        uint8_t *rgb = malloc(w * 3);
        PixelPacket *q =
            rgb != NULL ? GetCacheViewAuthenticPixels(v, 0, y, w, 1, ex) : NULL;
        if (q == NULL) {
            free(rgb);
            ok = 0;
            continue;
        }
        for (size_t x = 0; x < w; x++) {
            rgb[3 * x] = (uint8_t)mk_q8(GetPixelRed(q + x));
            rgb[3 * x + 1] = (uint8_t)mk_q8(GetPixelGreen(q + x));
            rgb[3 * x + 2] = (uint8_t)mk_q8(GetPixelBlue(q + x));
        }
        fn(rgb, w, user);
        for (size_t x = 0; x < w; x++) {
            SetPixelRed(q + x, mk_q16(rgb[3 * x]));
            SetPixelGreen(q + x, mk_q16(rgb[3 * x + 1]));
            SetPixelBlue(q + x, mk_q16(rgb[3 * x + 2]));
        }
        free(rgb);
        if (SyncCacheViewAuthenticPixels(v, ex) == MagickFalse) {
            ok = 0;
        }
    }
    v = DestroyCacheView(v);
    if (!ok) {
        im = DestroyImage(im);
        mk_error(err, KILN_EINTERNAL, ex, "cannot write the image's pixels");
        DestroyExceptionInfo(ex);
        return err->code;
    }
    DestroyExceptionInfo(ex);
    *out = im;
    return KILN_OK;
}

/* mk_lut's row: lut is the tables. */
static void
mk_lut_row(uint8_t *rgb, size_t n, void *user)
{
    const uint8_t(*lut)[256] = user;
    for (size_t i = 0; i < n; i++, rgb += 3) {
        rgb[0] = lut[0][rgb[0]];
        rgb[1] = lut[1][rgb[1]];
        rgb[2] = lut[2][rgb[2]];
    }
}

int
mk_lut(const Image *in, const uint8_t lut[3][256], Image **out, kiln_error *err)
{
    return mk_rows(in, mk_lut_row, (void *)lut, out, err);
}

int
mk_clone(const Image *in, Image **out, kiln_error *err)
{
    ExceptionInfo *ex = AcquireExceptionInfo();
    Image *im = CloneImage(in, 0, 0, MagickTrue, ex);
    if (im == NULL) {
        mk_error(err, KILN_ENOMEM, ex, "cannot copy the image");
        DestroyExceptionInfo(ex);
        return err->code;
    }
    DestroyExceptionInfo(ex);
    *out = im;
    return KILN_OK;
}

int
mk_canvas(const Image *like, int w, int h, const uint8_t rgba[4],
          bool with_alpha, Image **out, kiln_error *err)
{
    int nb = with_alpha ? 4 : 3;
    size_t n = (size_t)w * (size_t)h;
    uint8_t *b = malloc(n * (size_t)nb);
    if (b == NULL) {
        return mk_api->error_set(err, KILN_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        memcpy(b + i * (size_t)nb, rgba, (size_t)nb);
    }
    int rc = mk_import(like, w, h, nb, b, out, err);
    free(b);
    return rc;
}

/* ------------------------------------------------ time and limits */

static double
mk_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The job's deadline travels in the images' client_data as whole
 * milliseconds of CLOCK_MONOTONIC (no memory to own): every image an op
 * makes from a decoded one inherits it, and MagickCore's long loops (the
 * coders' rows, resizing, convolution) ask the monitor as they go. */
static MagickBooleanType
mk_monitor(const char *text, const MagickOffsetType offset,
           const MagickSizeType span, void *client_data)
{
    (void)text;
    (void)offset;
    (void)span;
    uintptr_t at = (uintptr_t)client_data;
    return at == 0 || mk_now() * 1e3 < (double)at ? MagickTrue : MagickFalse;
}

/* --------------------------------------------------------- probe */

/* The source's bytes (the storage's source, read whole: MagickCore
 * decodes from memory). */
static const unsigned char *
mk_map(VipsSource *src, size_t *len, kiln_error *err)
{
    const void *b = vips_source_map(src, len);
    if (b == NULL) {
        mk_api->error_set_vips(err, "reading the source");
    }
    return b;
}

static int
mk_refuse(const unsigned char *b, size_t n, kiln_error *err)
{
    const char *what = NULL;
    mk_sniff(b, n, &what);
    if (what != NULL) {
        return mk_api->error_set(err, KILN_EINVAL,
                                 "is %s, which the magick backend does not "
                                 "read (it reads JPEG, PNG, GIF, WebP, TIFF, "
                                 "BMP, PSD, PCX, XWD, DPX and PNM)",
                                 what);
    }
    return mk_api->error_set(err, KILN_EINVAL,
                             "is in no image format the magick backend reads "
                             "(JPEG, PNG, GIF, WebP, TIFF, BMP, PSD, PCX, XWD, "
                             "DPX and PNM)");
}

/* An ImageInfo pinned to `f`'s coder, first frame only. */
static ImageInfo *
mk_info(const mk_format *f)
{
    ImageInfo *ii = AcquireImageInfo();
    snprintf(ii->filename, sizeof ii->filename, "%s:kiln", f->coder);
    snprintf(ii->magick, sizeof ii->magick, "%s", f->coder);
    ii->affirm = MagickTrue;
    ii->number_scenes = 1;
    ii->scene = 0;
    ii->scenes = AcquireString("0");
    return ii;
}

/* The EXIF orientation (1..8) of a decoded or pinged image. */
static OrientationType
mk_orientation(Image *im)
{
    if (im->orientation != UndefinedOrientation) {
        return im->orientation;
    }
    const char *o = GetImageProperty(im, "exif:Orientation");
    int v = o != NULL ? atoi(o) : 0;
    return v >= 1 && v <= 8 ? (OrientationType)v : TopLeftOrientation;
}

/* The header as libvips reads it, for the formats both backends read:
 * its size and alpha are then what the libvips backend (and `kiln
 * compile --source`) binds a request to, so a request binds alike on
 * both. MagickCore's ping does not say whether a TIFF has alpha, and
 * gives a GIF alpha only when its first frame has a transparent colour
 * where libvips looks at every frame. */
static bool
mk_probe_vips(VipsSource *src, kiln_image_info *info)
{
    VipsImage *h = vips_image_new_from_source(src, "", "access",
                                              VIPS_ACCESS_SEQUENTIAL, NULL);
    if (h == NULL) {
        vips_error_clear();
        return false;
    }
    bool swap = vips_image_get_orientation_swap(h);
    info->width = swap ? h->Ysize : h->Xsize;
    info->height = swap ? h->Xsize : h->Ysize;
    info->has_alpha = vips_image_hasalpha(h);
    g_object_unref(h);
    return true;
}

static int
mk_probe(VipsSource *src, kiln_image_info *info, kiln_error *err)
{
    int rc = mk_start(err);
    if (rc != KILN_OK) {
        return rc;
    }
    size_t n = 0;
    const unsigned char *b = mk_map(src, &n, err);
    if (b == NULL) {
        return err->code;
    }
    const char *what;
    const mk_format *f = mk_sniff(b, n, &what);
    if (f == NULL) {
        return mk_refuse(b, n, err);
    }
    ImageInfo *ii = mk_info(f);
    ExceptionInfo *ex = AcquireExceptionInfo();
    Image *im = PingBlob(ii, b, n, ex);
    DestroyImageInfo(ii);
    if (im == NULL) {
        char what2[64];
        snprintf(what2, sizeof what2, "cannot read the %s header", f->name);
        mk_error(err, KILN_EINVAL, ex, what2);
        DestroyExceptionInfo(ex);
        return err->code;
    }
    DestroyExceptionInfo(ex);
    OrientationType o = mk_orientation(im);
    bool swap = o >= LeftTopOrientation;
    info->width = (int)(swap ? im->rows : im->columns);
    info->height = (int)(swap ? im->columns : im->rows);
    info->has_alpha = im->matte != MagickFalse;
    snprintf(info->format, sizeof info->format, "%s", f->name);
    DestroyImageList(im);
    if (f->vips) {
        kiln_image_info v = *info;
        if (mk_probe_vips(src, &v) && v.width == info->width &&
            v.height == info->height) {
            info->has_alpha = v.has_alpha;
        }
    }
    if (info->width < 1 || info->height < 1 || info->width > 65535 ||
        info->height > 65535) {
        return mk_api->error_set(err, KILN_ELIMIT,
                                 "declares %dx%d pixels (at most 65535 a side)",
                                 info->width, info->height);
    }
    return KILN_OK;
}

/* ---------------------------------------------------------- decode */

/* True when an ICC profile names itself sRGB (then it maps to sRGB as
 * an identity, as exec.c decides for libvips). */
static bool
mk_profile_is_srgb(const StringInfo *p)
{
    const unsigned char *d = GetStringInfoDatum(p);
    size_t len = GetStringInfoLength(p);
    if (len < 132 || memcmp(d + 16, "RGB ", 4) != 0) {
        return false;
    }
    static const char utf16[] = {0, 's', 0, 'R', 0, 'G', 0, 'B'};
    return memmem(d, len, "sRGB", 4) != NULL ||
           memmem(d, len, utf16, sizeof utf16) != NULL;
}

/* Into sRGB: through an embedded profile when there is one that is not
 * sRGB already (CMYK, Adobe RGB), else by colour space. */
static int
mk_to_srgb(Image *im, ExceptionInfo *ex, kiln_error *err)
{
    const StringInfo *icc = GetImageProfile(im, "icc");
    if (icc != NULL && !mk_profile_is_srgb(icc)) {
        VipsBlob *srgb = NULL;
        if (vips_profile_load("srgb", &srgb, NULL) != 0) {
            return mk_api->error_set_vips(err, "the sRGB profile");
        }
        size_t len = 0;
        const void *d = vips_blob_get(srgb, &len);
        MagickBooleanType ok = ProfileImage(im, "icc", d, len, MagickTrue);
        vips_area_unref(VIPS_AREA(srgb));
        if (ok == MagickFalse) {
            return mk_error(err, KILN_EINVAL, &im->exception,
                            "colour conversion to sRGB");
        }
    }
    if (im->colorspace != sRGBColorspace &&
        TransformImageColorspace(im, sRGBColorspace) == MagickFalse) {
        return mk_error(err, KILN_EINVAL, &im->exception,
                        "colour conversion to sRGB");
    }
    (void)ex;
    return KILN_OK;
}

/* The host's hint for a reduced decode (kiln_decode_opts.min_width,
 * shrink-on-load at -O2) as ImageMagick's own, `-define jpeg:size=WxH`:
 * libjpeg's DCT scaling to the smallest eighth of the size that still
 * covers it. The hint is upright and jpeg:size is in the file's axes,
 * swapped for an EXIF orientation that turns the image (read from the
 * header by libvips, which is cheap; on no header, no hint). */
static void
mk_jpeg_size_hint(VipsSource *src, const kiln_decode_opts *opts, ImageInfo *ii)
{
    if (opts->size < offsetof(kiln_decode_opts, min_height) + sizeof(int) ||
        opts->min_width <= 0 || opts->min_height <= 0) {
        return;
    }
    VipsImage *h = vips_image_new_from_source(src, "", "access",
                                              VIPS_ACCESS_SEQUENTIAL, NULL);
    if (h == NULL) {
        vips_error_clear();
        return;
    }
    bool swap = vips_image_get_orientation_swap(h);
    g_object_unref(h);
    char size[48];
    snprintf(size, sizeof size, "%dx%d",
             swap ? opts->min_height : opts->min_width,
             swap ? opts->min_width : opts->min_height);
    SetImageOption(ii, "jpeg:size", size);
}

static int
mk_decode(kiln_exec *ctx, VipsSource *src, const kiln_decode_opts *opts,
          void **image, kiln_error *err)
{
    (void)ctx;
    int rc = mk_start(err);
    if (rc != KILN_OK) {
        return rc;
    }
    size_t n = 0;
    const unsigned char *b = mk_map(src, &n, err);
    if (b == NULL) {
        return err->code;
    }
    const char *what;
    const mk_format *f = mk_sniff(b, n, &what);
    if (f == NULL) {
        return mk_refuse(b, n, err);
    }
    ImageInfo *ii = mk_info(f);
    if (strcmp(f->name, "jpeg") == 0) {
        mk_jpeg_size_hint(src, opts, ii);
    }
    uintptr_t at = opts->max_seconds > 0
                       ? (uintptr_t)((mk_now() + opts->max_seconds) * 1e3)
                       : 0;
    SetImageInfoProgressMonitor(ii, mk_monitor, (void *)at);
    ExceptionInfo *ex = AcquireExceptionInfo();
    Image *im = BlobToImage(ii, b, n, ex);
    DestroyImageInfo(ii);
    if (im == NULL || ex->severity >= ErrorException) {
        if (im != NULL) {
            DestroyImageList(im);
        }
        char w[80];
        snprintf(w, sizeof w, "%s",
                 at != 0 && mk_now() * 1e3 >= (double)at
                     ? "the decode ran past max_process_time"
                     : "damaged or truncated?");
        mk_error(err, KILN_EINVAL, ex, w);
        DestroyExceptionInfo(ex);
        return err->code;
    }
    if (GetNextImageInList(im) != NULL) {
        DestroyImageList(SplitImageList(im)); /* the first frame only */
    }
    if (opts->max_pixels > 0 &&
        (int64_t)im->columns * (int64_t)im->rows > opts->max_pixels) {
        /* The header said less than the pixels are (probe checked it). */
        int64_t px = (int64_t)im->columns * (int64_t)im->rows;
        DestroyImage(im);
        DestroyExceptionInfo(ex);
        return mk_api->error_set(err, KILN_ELIMIT,
                                 "decodes to %lld pixels, above the limit of "
                                 "%lld",
                                 (long long)px, (long long)opts->max_pixels);
    }
    SetImageProgressMonitor(im, mk_monitor, (void *)at);
    OrientationType o = mk_orientation(im);
    if (o != TopLeftOrientation && o != UndefinedOrientation) {
        Image *up = AutoOrientImage(im, o, ex);
        if (up == NULL) {
            DestroyImage(im);
            mk_error(err, KILN_EINVAL, ex, "auto-orient");
            DestroyExceptionInfo(ex);
            return err->code;
        }
        DestroyImage(im);
        im = up;
    }
    im->orientation = TopLeftOrientation;
    /* kiln's images have no virtual canvas: a file's own page geometry,
     * or the one TransverseImage() leaves unswapped for orientation 7,
     * would become a GIF's logical screen (chains seed 77: a 80x120
     * result written 120x120). */
    im->page = (RectangleInfo){0, 0, 0, 0};
    /* An 8-bit sRGB file decodes to exact 8-bit quanta: rounding them
     * again (mk_settle) was an eighth of a plain conversion's time. */
    bool exact = im->depth <= 8 && im->colorspace == sRGBColorspace &&
                 GetImageProfile(im, "icc") == NULL;
    bool had_alpha = im->matte != MagickFalse;
    rc = mk_to_srgb(im, ex, err);
    DestroyExceptionInfo(ex);
    if (rc != KILN_OK) {
        DestroyImage(im);
        return rc;
    }
    /* Nothing of the source's metadata goes further: the pixels are
     * upright sRGB now, and outputs carry no metadata. */
    StripImage(im);
    (void)had_alpha;
    /* Alpha exactly when the header said so (the job was bound to it). */
    if (opts->has_alpha && !im->matte) {
        SetImageAlphaChannel(im, OpaqueAlphaChannel);
    } else if (!opts->has_alpha && im->matte) {
        SetImageAlphaChannel(im, DeactivateAlphaChannel);
        im->matte = MagickFalse;
    }
    rc = exact ? KILN_OK : mk_settle(im, err);
    if (rc != KILN_OK) {
        DestroyImage(im);
        return rc;
    }
    im->depth = 8;
    *image = im;
    return KILN_OK;
}

/* ---------------------------------------------------------- encode */

static int mk_to_vips(void *image, VipsImage **out, kiln_error *err);

/* Transparent pixels onto `bg`, in place, alpha dropped: ImageMagick's
 * `-background C -alpha remove` (the over operator in double, rounded
 * to a quantum) and its rounding to 8 bits, in one pass. */
static int
mk_flatten(Image *im, const uint8_t bg[3], kiln_error *err)
{
    const double b[3] = {mk_q16(bg[0]), mk_q16(bg[1]), mk_q16(bg[2])};
    ExceptionInfo *ex = AcquireExceptionInfo();
    CacheView *v = AcquireAuthenticCacheView(im, ex);
    int ok = 1;
#pragma omp parallel for schedule(static) reduction(& : ok)
    for (ssize_t y = 0; y < (ssize_t)im->rows; y++) {
        PixelPacket *q =
            GetCacheViewAuthenticPixels(v, 0, y, im->columns, 1, ex);
        if (q == NULL) {
            ok = 0;
            continue;
        }
        for (size_t x = 0; x < im->columns; x++, q++) {
            double a = QuantumScale * (QuantumRange - GetPixelOpacity(q));
            double c[3] = {GetPixelRed(q), GetPixelGreen(q), GetPixelBlue(q)};
            Quantum o[3];
            for (int k = 0; k < 3; k++) {
                double t = a * c[k] + (1.0 - a) * b[k];
                o[k] = t <= 0.0            ? 0
                       : t >= QuantumRange ? QuantumRange
                                           : (Quantum)(t + 0.5);
            }
            SetPixelRed(q, mk_q16(mk_q8(o[0])));
            SetPixelGreen(q, mk_q16(mk_q8(o[1])));
            SetPixelBlue(q, mk_q16(mk_q8(o[2])));
            SetPixelOpacity(q, OpaqueOpacity);
        }
        if (SyncCacheViewAuthenticPixels(v, ex) == MagickFalse) {
            ok = 0;
        }
    }
    v = DestroyCacheView(v);
    if (!ok) {
        mk_error(err, KILN_EINTERNAL, ex, "cannot flatten the image");
        DestroyExceptionInfo(ex);
        return err->code;
    }
    DestroyExceptionInfo(ex);
    im->matte = MagickFalse;
    return KILN_OK;
}

/* TIFF through libvips' writer (lossless either way): ImageMagick 6.9.11
 * writes TIFF into a blob that grows without being cleared, so the byte
 * that aligns the directory after an odd-sized strip is whatever memory
 * held (the chain property tests saw two runs of one request differ). */
static int
mk_encode_tiff(void *image, VipsTarget *target, kiln_error *err)
{
    VipsImage *v = NULL;
    int rc = mk_to_vips(image, &v, err);
    if (rc != KILN_OK) {
        return rc;
    }
    void *buf = NULL;
    size_t len = 0;
    int r = vips_tiffsave_buffer(v, &buf, &len, "strip", TRUE, NULL);
    g_object_unref(v);
    if (r != 0) {
        return mk_api->error_set_vips(err, "cannot encode tiff");
    }
    r = vips_target_write(target, buf, len);
    g_free(buf);
    if (r != 0) {
        return mk_api->error_set_vips(err, "writing the result");
    }
    return KILN_OK;
}

static int
mk_encode(kiln_exec *ctx, void *image, const kiln_encode_opts *opts,
          VipsTarget *target, kiln_error *err)
{
    (void)ctx;
    const mk_format *f = mk_format_named(opts->format);
    if (f == NULL) {
        return mk_api->error_set(err, KILN_EINVAL,
                                 "the magick backend does not write %s",
                                 opts->format);
    }
    if (strcmp(f->name, "tiff") == 0) {
        return mk_encode_tiff(image, target, err);
    }
    Image *im = NULL;
    if (mk_writable(image, &im, err) != KILN_OK) {
        return err->code;
    }
    ExceptionInfo *ex = AcquireExceptionInfo();
    if (im->matte && !f->alpha &&
        mk_flatten(im, opts->background, err) != KILN_OK) {
        DestroyImage(im);
        DestroyExceptionInfo(ex);
        return err->code;
    }
    im->depth = 8;
    StripImage(im);
    ImageInfo *ii = AcquireImageInfo();
    snprintf(ii->magick, sizeof ii->magick, "%s", f->coder);
    snprintf(im->magick, sizeof im->magick, "%s", f->coder);
    snprintf(ii->filename, sizeof ii->filename, "%s:kiln", f->coder);
    snprintf(im->filename, sizeof im->filename, "%s:kiln", f->coder);
    ii->affirm = MagickTrue;
    if (strcmp(f->name, "png") == 0) {
        /* 8-bit RGB or RGBA, as the job's shape says: ImageMagick's PNG
         * writer would otherwise drop an alpha band that is opaque
         * everywhere, or write grey or a palette. */
        SetImageOption(ii, "png:color-type", im->matte ? "6" : "2");
        SetImageOption(ii, "png:bit-depth", "8");
    }
    if (strcmp(f->name, "jpeg") == 0 || strcmp(f->name, "webp") == 0) {
        /* The contract's quality 0 is the encoders' lowest, 1. */
        ii->quality = (size_t)(opts->quality < 1 ? 1 : opts->quality);
        im->quality = ii->quality;
    }
    size_t len = 0;
    void *blob = ImageToBlob(ii, im, &len, ex);
    DestroyImageInfo(ii);
    DestroyImage(im);
    if (blob == NULL || len == 0) {
        if (blob != NULL) {
            RelinquishMagickMemory(blob);
        }
        char w[64];
        snprintf(w, sizeof w, "cannot encode %s", f->name);
        mk_error(err, KILN_EINVAL, ex, w);
        DestroyExceptionInfo(ex);
        return err->code;
    }
    DestroyExceptionInfo(ex);
    int r = vips_target_write(target, blob, len);
    RelinquishMagickMemory(blob);
    if (r != 0) {
        return mk_api->error_set_vips(err, "writing the result");
    }
    return KILN_OK;
}

/* ----------------------------------------------------- conversions */

static void
mk_shape(void *image, kiln_shape *out)
{
    const Image *im = image;
    out->width = (int)im->columns;
    out->height = (int)im->rows;
    out->has_alpha = im->matte != MagickFalse;
    out->bands = out->has_alpha ? 4 : 3;
}

static int
mk_to_vips(void *image, VipsImage **out, kiln_error *err)
{
    const Image *im = image;
    uint8_t *buf = NULL;
    int bands = 0;
    int rc = mk_export(im, &buf, &bands, err);
    if (rc != KILN_OK) {
        return rc;
    }
    VipsImage *v = vips_image_new_from_memory_copy(
        buf, (size_t)im->columns * im->rows * (size_t)bands, (int)im->columns,
        (int)im->rows, bands, VIPS_FORMAT_UCHAR);
    free(buf);
    if (v == NULL) {
        return mk_api->error_set_vips(err, "conversion to libvips");
    }
    v->Type = VIPS_INTERPRETATION_sRGB;
    *out = v;
    return KILN_OK;
}

static int
mk_from_vips(VipsImage *in, void **image, kiln_error *err)
{
    if (in->BandFmt != VIPS_FORMAT_UCHAR ||
        (in->Bands != 3 && in->Bands != 4)) {
        return mk_api->error_set(err, KILN_EINVAL,
                                 "conversion from libvips: not 8-bit RGB or "
                                 "RGBA");
    }
    size_t size = 0;
    void *buf = vips_image_write_to_memory(in, &size);
    if (buf == NULL) {
        return mk_api->error_set_vips(err, "conversion from libvips");
    }
    Image *im = NULL;
    int rc = mk_import(NULL, in->Xsize, in->Ysize, in->Bands, buf, &im, err);
    g_free(buf);
    if (rc == KILN_OK) {
        *image = im;
    }
    return rc;
}

static void *
mk_ref(void *image)
{
    return ReferenceImage(image);
}

static void
mk_unref(void *image)
{
    if (image != NULL) {
        DestroyImage(image);
    }
}

const kiln_backend mk_backend = {
    .size = sizeof(kiln_backend),
    .name = "magick",
    .summary = "MagickCore (ImageMagick 6, Q16): PSD, PCX, XWD, DPX, BMP, PNM "
               "and the common formats, ImageMagick's own operations",
    .read_formats = mk_read_formats,
    .write_formats = mk_write_formats,
    .probe = mk_probe,
    .decode = mk_decode,
    .encode = mk_encode,
    .shape = mk_shape,
    .to_vips = mk_to_vips,
    .from_vips = mk_from_vips,
    .ref = mk_ref,
    .unref = mk_unref,
};
