/*
 * annotation on the magick backend (ops.md section 5): MagickCore's
 * AnnotateImage(), the function behind `convert -gravity G -pointsize N
 * -fill C -annotate +X+Y TEXT`, with the same DrawInfo that command
 * builds: pointsize = size (MagickCore's 72 dpi makes a point a pixel:
 * the em size), fill = the colour with its alpha, gravity and "+X+Y"
 * geometry, so placement and line alignment are ImageMagick's own, the
 * convention ops-vips' layout box follows.
 *
 * - Font: resolved with fontconfig exactly as on the libvips backend
 *   (ops_font_match(), ops-vips/fontmatch.h), the same warning for a
 *   family that is not installed. MagickCore is given the matched font's
 *   file (and face), not the family name: its own type registry lists
 *   each font under its first family name only, so a family fontconfig
 *   matched under another of its names would silently become MagickCore's
 *   fallback (Open Sans, then any sans) and the warning would lie.
 * - Text: taken literally. `convert` expands "%" escapes and reads
 *   "@file" (InterpretImageProperties(), in the command-line layer);
 *   AnnotateImage() does neither, so the text goes in unescaped (escaping
 *   "%" here would draw "%%"). It splits lines only at "\n" and
 *   mishandles a lone "\r", so every "\r\n" and "\r" becomes "\n" first,
 *   the line breaks Pango honours on the libvips backend.
 * - A text whose drawing would exceed 64 megapixels is refused at "text"
 *   as on the libvips backend, measured with GetMultilineTypeMetrics()
 *   (no pixels drawn): FreeType rasterises every glyph whole, even where
 *   it falls outside the image.
 *
 * The output keeps the input's size and alpha; the blend is computed in
 * 16 bits and rounded to 8 once (mk_settle).
 */
#include "magick.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../ops-vips/fontmatch.h"
#include "../ops-vips/geom.h"

/* The libvips backend's bound (ops-vips/annotation.c). */
#define ANNOTATION_MAX_PIXELS 64e6

/* A copy of `text` with "\r\n" and "\r" as "\n" (malloc()ed, or NULL). */
static char *
annotation_lines(const char *text)
{
    size_t n = strlen(text);
    char *s = malloc(n + 1);
    char *q = s;

    if (s == NULL) {
        return NULL;
    }
    for (const char *c = text; *c != '\0'; c++) {
        if (*c == '\r' || *c == '\n') {
            if (c[0] == '\r' && c[1] == '\n') {
                c++;
            }
            *q++ = '\n';
        } else {
            *q++ = *c;
        }
    }
    *q = '\0';
    return s;
}

/* The DrawInfo `convert -font FILE -pointsize N -fill C -gravity G
 * -annotate +X+Y TEXT` makes, for `text` (taken over: freed with it). */
static DrawInfo *
annotation_draw_info(const annotation_params *p, const char *family,
                     const char *file, int face, char *text)
{
    static const GravityType gravity_of[] = {
        [KILN_GRAVITY_NORTHWEST] = NorthWestGravity,
        [KILN_GRAVITY_NORTH] = NorthGravity,
        [KILN_GRAVITY_NORTHEAST] = NorthEastGravity,
        [KILN_GRAVITY_WEST] = WestGravity,
        [KILN_GRAVITY_CENTER] = CenterGravity,
        [KILN_GRAVITY_EAST] = EastGravity,
        [KILN_GRAVITY_SOUTHWEST] = SouthWestGravity,
        [KILN_GRAVITY_SOUTH] = SouthGravity,
        [KILN_GRAVITY_SOUTHEAST] = SouthEastGravity,
    };
    char geometry[64];
    DrawInfo *di = AcquireDrawInfo();

    if (di == NULL) {
        free(text);
        return NULL;
    }
    if (file[0] != '\0') {
        (void)CloneString(&di->font, file);
        di->face = (size_t)face;
    } else {
        (void)CloneString(&di->family, family);
    }
    di->text = AcquireString(text);
    free(text);
    di->pointsize = p->size;
    di->fill.red = mk_q16(p->color.r);
    di->fill.green = mk_q16(p->color.g);
    di->fill.blue = mk_q16(p->color.b);
    di->fill.opacity = mk_q16(255u - p->color.a);
    di->text_antialias = MagickTrue;
    di->gravity = gravity_of[p->gravity];
    snprintf(geometry, sizeof geometry, "%+d%+d", ops_px(&p->xoffset),
             ops_px(&p->yoffset));
    (void)CloneString(&di->geometry, geometry);
    return di;
}

/* Refuses a text whose drawing would exceed ANNOTATION_MAX_PIXELS: its
 * advance box plus an em of margin each way, as the libvips backend
 * estimates its mask. */
static int
annotation_check_area(Image *im, const DrawInfo *di, double size,
                      kiln_error *err)
{
    TypeMetric m;
    double w, h;

    if (GetMultilineTypeMetrics(im, di, &m) == MagickFalse) {
        return mk_error(err, KILN_EINVAL, &im->exception,
                        "annotation: cannot measure the text");
    }
    w = m.width + 2 * size;
    h = m.height + size;
    if (w * h <= ANNOTATION_MAX_PIXELS) {
        return KILN_OK;
    }
    return mk_api->error_set_param(
        err, KILN_ELIMIT, "text",
        "the text would render to about %.0fx%.0f px, above the limit of "
        "%.0f megapixels (use a smaller size or a shorter text)",
        w, h, ANNOTATION_MAX_PIXELS / 1e6);
}

static int
annotation_execute(kiln_exec *ctx, const void *params, void *const *in,
                   void **out, kiln_error *err)
{
    const annotation_params *p = params;
    const Image *src = in[0];
    char family[256], file[4096];
    bool is_fallback = false;
    DrawInfo *di = NULL;
    Image *res = NULL;
    char *text;
    int face = 0;
    int rc;

    rc = ops_font_match(mk_api, p->font, family, sizeof family, file,
                        sizeof file, &face, &is_fallback, err);
    if (rc != KILN_OK) {
        return rc;
    }
    if (is_fallback) {
        mk_api->exec_warn(ctx, "font \"%s\" is not installed; used \"%s\"",
                          p->font, family);
    }
    MagickBooleanType matte = src->matte; /* res may be src itself */
    rc = mk_writable(src, &res, err);
    if (rc != KILN_OK) {
        return rc;
    }
    if (p->size < 1 || p->color.a == 0) {
        /* Nothing legible or nothing visible: the input unchanged. */
        *out = res;
        return KILN_OK;
    }
    text = annotation_lines(p->text);
    di =
        text != NULL ? annotation_draw_info(p, family, file, face, text) : NULL;
    if (di == NULL) {
        DestroyImage(res);
        return mk_api->error_set(err, KILN_ENOMEM, "out of memory");
    }
    rc = annotation_check_area(res, di, p->size, err);
    if (rc == KILN_OK && AnnotateImage(res, di) == MagickFalse) {
        rc = mk_error(err, KILN_EINTERNAL, &res->exception,
                      "annotation: ImageMagick could not draw the text");
    }
    DestroyDrawInfo(di);
    if (rc == KILN_OK) {
        /* Drawing gives the image an opaque alpha channel; over an opaque
         * image the result is opaque: drop it again. */
        res->matte = matte;
        rc = mk_settle(res, err);
    }
    if (rc != KILN_OK) {
        DestroyImage(res);
        return rc;
    }
    *out = res;
    return KILN_OK;
}

const kiln_op_impl annotation_magick = {
    .size = sizeof(kiln_op_impl),
    .op = "annotation",
    .backend = "magick",
    .execute_native = annotation_execute,
};
