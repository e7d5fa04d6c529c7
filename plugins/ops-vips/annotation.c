/*
 * annotation: draw text over the input (ops.md section 4). `text` (UTF-8,
 * 1..1000 characters) is rendered anti-aliased in `color` with the font
 * family `font` at `size` px, placed by gravity and inward offsets, and
 * composited over the input; text outside the image is clipped. The output
 * keeps the input's size and bands.
 *
 * The family is resolved with fontconfig first (ops_font_match(),
 * fontmatch.h, shared with the other backends): a family that is not
 * installed becomes fontconfig's best match, a warning in the job's result
 * says which, and that family is what Pango (vips_text()) is given, so the
 * warning names the font that was drawn. What is placed is the text's
 * layout box (ImageMagick's -annotate convention): its width is the
 * advance width of the longest line, its height the line height times the
 * number of lines, so the baseline does not move with the letters in the
 * text and northwest +0+0 leaves the font's ascent above the capitals.
 * Lines are aligned left, centred or right by the gravity's column.
 */
#include "composite.h"

#include <stdio.h>

#include "fontmatch.h"

/* ops.md counts characters; the spec's max_len bounds bytes (4 per
 * character at most in UTF-8). */
#define ANNOTATION_MAX_CHARS 1000

/* vips_text() draws the whole text in memory (5 bytes a pixel) before any
 * of it is clipped; a text whose ink would cover more pixels than this is
 * refused rather than exhausting memory. */
#define ANNOTATION_MAX_MASK_PIXELS 64e6

/* A glyph drawn at alpha 1/65536 (so no pixel shows it) at both ends of
 * every line. vips_text() reports only the ink box of what it draws,
 * relative to the layout's origin; these markers pin the ink box to the
 * layout box horizontally, and two small renders of the marker alone
 * measure its ink, its advance and the line height (annotation_probe). */
#define ANNOTATION_MARK "<span alpha=\"1\">|</span>"

/* The rendered text: a coverage mask and where the layout box sits in it. */
typedef struct annotation_text {
    VipsImage *mask;  /* 1 band, 0..255 coverage */
    int box_x, box_y; /* the layout box's top-left, mask coordinates */
    int box_w, box_h; /* the layout box's size */
} annotation_text;

/* What the markers measure for one font: the right edge of the marker's
 * ink relative to its pen position, its advance width and the line height
 * (all px). */
typedef struct annotation_probe {
    int ink_right;
    int advance;
    int line_height;
} annotation_probe;

static const kiln_param_spec annotation_specs[] = {
    KILN_P_STRING(annotation_params, font, NULL,
                  "font family, resolved through fontconfig",
                  .flags = KILN_PARAM_REQUIRED, .min_len = 1),
    KILN_P_COLOR(annotation_params, color, NULL, "text colour",
                 .flags = KILN_PARAM_REQUIRED),
    KILN_P_STRING(annotation_params, text, NULL,
                  "the text to draw, 1 to 1000 characters",
                  .flags = KILN_PARAM_REQUIRED, .min_len = 1,
                  .max_len = 4 * ANNOTATION_MAX_CHARS),
    KILN_P_NUMBER(annotation_params, size, 0, 1000, 0,
                  "font size in pixels, greater than 0",
                  .flags = KILN_PARAM_REQUIRED | KILN_PARAM_MIN_EXCLUSIVE),
    KILN_P_GRAVITY(annotation_params, gravity, KILN_GRAVITY_NORTHWEST,
                   "where the text sits on the image"),
    KILN_P_LENGTH(annotation_params, xoffset, KILN_AXIS_X, KILN_UNITS_OFFSET,
                  "horizontal offset, inward from the gravity's edge"),
    KILN_P_LENGTH(annotation_params, yoffset, KILN_AXIS_Y, KILN_UNITS_OFFSET,
                  "vertical offset, inward from the gravity's edge"),
};

static int
annotation_infer(const void *params, const kiln_shape *in, kiln_shape *out,
                 kiln_error *err)
{
    const annotation_params *p = params;
    size_t n_chars = 0;

    /* Count UTF-8 lead bytes; the host has checked the encoding. */
    for (const unsigned char *s = (const unsigned char *)p->text; *s; s++) {
        n_chars += (*s & 0xC0) != 0x80;
    }
    if (n_chars > ANNOTATION_MAX_CHARS) {
        return ops_api->error_set_param(
            err, KILN_EINVAL, "text",
            "text is %zu characters long (expected at most %d)", n_chars,
            ANNOTATION_MAX_CHARS);
    }
    return ops_infer_same(in, out);
}

/* The text as Pango markup: escaped, a marker at both ends of each line.
 * Sets *n_lines and *max_chars (the longest line, in characters). */
static char *
annotation_markup(const char *text, int *n_lines, int *max_chars)
{
    GString *s = g_string_new(ANNOTATION_MARK);
    const char *line = text;
    int n_chars = 0;

    *n_lines = 1;
    *max_chars = 0;
    for (const char *c = text;; c++) {
        if (*c != '\n' && *c != '\r' && *c != '\0') {
            n_chars += (*c & 0xC0) != 0x80;
            continue;
        }
        char *escaped = g_markup_escape_text(line, c - line);

        g_string_append(s, escaped);
        g_free(escaped);
        g_string_append(s, ANNOTATION_MARK);
        *max_chars = n_chars > *max_chars ? n_chars : *max_chars;
        if (*c == '\0') {
            break;
        }
        /* "\r\n" is one line break for Pango, as "\n" and "\r" are. */
        if (c[0] == '\r' && c[1] == '\n') {
            g_string_append_c(s, *c++);
        }
        g_string_append_c(s, *c);
        g_string_append(s, ANNOTATION_MARK);
        line = c + 1;
        n_chars = 0;
        (*n_lines)++;
    }
    return g_string_free(s, FALSE);
}

/* vips_text() of `markup` in `font` (a Pango description), lines aligned
 * by `align`; *out is one new reference, a 1-band coverage mask whose
 * Xoffset/Yoffset are its ink box's position relative to the layout. */
static int
annotation_draw(const char *markup, const char *font, VipsAlign align,
                VipsImage **out, kiln_error *err)
{
    if (vips_text(out, markup, "font", font, "align", align, NULL)) {
        return ops_api->error_set_vips(err, "annotation");
    }
    return KILN_OK;
}

/* Measures the marker in `font` (see ANNOTATION_MARK). */
static int
annotation_measure(const char *font, annotation_probe *pr, kiln_error *err)
{
    VipsImage *one = NULL, *two = NULL;
    int rc;

    rc = annotation_draw(ANNOTATION_MARK, font, VIPS_ALIGN_LOW, &one, err);
    if (rc == KILN_OK) {
        rc = annotation_draw(ANNOTATION_MARK ANNOTATION_MARK
                             "\n" ANNOTATION_MARK,
                             font, VIPS_ALIGN_LOW, &two, err);
    }
    if (rc == KILN_OK) {
        pr->ink_right = one->Xoffset + one->Xsize;
        pr->advance = two->Xsize - one->Xsize;
        pr->line_height = two->Ysize - one->Ysize;
    }
    if (two != NULL) {
        g_object_unref(two);
    }
    if (one != NULL) {
        g_object_unref(one);
    }
    return rc;
}

/* Refuses a text whose mask would exceed ANNOTATION_MAX_MASK_PIXELS. A
 * generous bound (3 em a character) clears ordinary texts at no cost;
 * beyond it the text is drawn at 10 px and scaled up to decide. */
static int
annotation_check_area(const char *markup, const char *family, double size,
                      int n_lines, int max_chars, const annotation_probe *pr,
                      kiln_error *err)
{
    double h = (double)n_lines * pr->line_height + size;
    double w = (max_chars + 2.0) * size * 3;
    VipsImage *small = NULL;
    char *font;
    int rc;

    if (w * h <= ANNOTATION_MAX_MASK_PIXELS) {
        return KILN_OK;
    }
    font = g_strdup_printf("%s, 10px", family);
    rc = annotation_draw(markup, font, VIPS_ALIGN_LOW, &small, err);
    g_free(font);
    if (rc != KILN_OK) {
        return rc;
    }
    w = small->Xsize * size / 10 + 2 * size;
    g_object_unref(small);
    if (w * h <= ANNOTATION_MAX_MASK_PIXELS) {
        return KILN_OK;
    }
    return ops_api->error_set_param(
        err, KILN_ELIMIT, "text",
        "the text would render to about %.0fx%.0f px, above the limit of "
        "%.0f megapixels (use a smaller size or a shorter text)",
        w, h, ANNOTATION_MAX_MASK_PIXELS / 1e6);
}

/* Renders p->text in `family` into *txt (txt->mask is a new reference). */
static int
annotation_render(const annotation_params *p, const char *family,
                  annotation_text *txt, kiln_error *err)
{
    static const VipsAlign align_of[] = {
        [KILN_GRAVITY_NORTHWEST] = VIPS_ALIGN_LOW,
        [KILN_GRAVITY_NORTH] = VIPS_ALIGN_CENTRE,
        [KILN_GRAVITY_NORTHEAST] = VIPS_ALIGN_HIGH,
        [KILN_GRAVITY_WEST] = VIPS_ALIGN_LOW,
        [KILN_GRAVITY_CENTER] = VIPS_ALIGN_CENTRE,
        [KILN_GRAVITY_EAST] = VIPS_ALIGN_HIGH,
        [KILN_GRAVITY_SOUTHWEST] = VIPS_ALIGN_LOW,
        [KILN_GRAVITY_SOUTH] = VIPS_ALIGN_CENTRE,
        [KILN_GRAVITY_SOUTHEAST] = VIPS_ALIGN_HIGH,
    };
    char size_text[G_ASCII_DTOSTR_BUF_SIZE];
    annotation_probe pr = {0};
    VipsImage *mask = NULL;
    char *markup, *font;
    int n_lines, max_chars;
    int rc;

    /* "Family, 12px": the trailing comma ends the family list, so words
     * such as "Bold" stay part of the family name; "px" is an absolute
     * size, independent of vips_text()'s dpi. */
    g_ascii_formatd(size_text, sizeof size_text, "%.6g", p->size);
    font = g_strdup_printf("%s, %spx", family, size_text);
    markup = annotation_markup(p->text, &n_lines, &max_chars);
    rc = annotation_measure(font, &pr, err);
    if (rc == KILN_OK) {
        rc = annotation_check_area(markup, family, p->size, n_lines, max_chars,
                                   &pr, err);
    }
    if (rc == KILN_OK) {
        rc = annotation_draw(markup, font, align_of[p->gravity], &mask, err);
    }
    g_free(markup);
    g_free(font);
    if (rc != KILN_OK) {
        return rc;
    }
    /* Layout coordinates: the widest line's first marker is drawn at x 0,
     * its last one at (layout width - advance), so the rightmost ink is
     * that plus the marker's ink_right; the text lies between them. */
    txt->mask = mask;
    txt->box_x = pr.advance - mask->Xoffset;
    txt->box_y = -mask->Yoffset;
    txt->box_w = mask->Xoffset + mask->Xsize - pr.ink_right - pr.advance;
    txt->box_w = txt->box_w < 0 ? 0 : txt->box_w;
    txt->box_h = n_lines * pr.line_height;
    return KILN_OK;
}

/* The mask as a 4-band float sRGB overlay in the text colour, alpha =
 * coverage x colour alpha. *out is one new reference. */
static int
annotation_overlay(VipsImage *mask, const kiln_color *c, VipsImage **out,
                   kiln_error *err)
{
    double ink[3] = {c->r, c->g, c->b};
    VipsImage *t[2] = {NULL};
    int rc = KILN_OK;

    t[0] = vips_image_new_from_image(mask, ink, 3);
    if (t[0] == NULL || vips_linear1(mask, &t[1], c->a / 255.0, 0, NULL) ||
        vips_bandjoin2(t[0], t[1], out, NULL)) {
        rc = ops_api->error_set_vips(err, "annotation");
    }
    for (int i = 1; i >= 0; i--) {
        if (t[i] != NULL) {
            g_object_unref(t[i]);
        }
    }
    return rc;
}

static int
annotation_execute(kiln_exec *ctx, const void *params, VipsImage *const *in,
                   VipsImage **out, kiln_error *err)
{
    const annotation_params *p = params;
    annotation_text txt = {NULL};
    VipsImage *overlay = NULL;
    char family[256];
    bool is_fallback = false;
    int x, y;
    int rc;

    rc = ops_font_match(ops_api, p->font, family, sizeof family, NULL, 0, NULL,
                        &is_fallback, err);
    if (rc != KILN_OK) {
        return rc;
    }
    if (is_fallback) {
        ops_api->exec_warn(ctx, "font \"%s\" is not installed; used \"%s\"",
                           p->font, family);
    }
    if (p->size < 1 || p->color.a == 0) {
        /* Nothing legible or nothing visible: the input unchanged. */
        g_object_ref(in[0]);
        *out = in[0];
        return KILN_OK;
    }
    rc = annotation_render(p, family, &txt, err);
    if (rc != KILN_OK) {
        return rc;
    }
    rc = annotation_overlay(txt.mask, &p->color, &overlay, err);
    if (rc == KILN_OK) {
        ops_api->place(p->gravity, vips_image_get_width(in[0]),
                       vips_image_get_height(in[0]), txt.box_w, txt.box_h,
                       ops_px(&p->xoffset), ops_px(&p->yoffset), &x, &y);
        rc = ops_composite_over(in[0], overlay, x - txt.box_x, y - txt.box_y,
                                "annotation", out, err);
    }
    if (overlay != NULL) {
        g_object_unref(overlay);
    }
    g_object_unref(txt.mask);
    return rc;
}

const kiln_op annotation_op = {
    .size = sizeof(kiln_op),
    .name = "annotation",
    .summary = "draw text placed by gravity and offsets",
    .doc = "Draws text (1 to 1000 characters of UTF-8, taken literally) "
           "anti-aliased in color, with the font family font at size "
           "pixels (the em size), placed by gravity (default northwest) "
           "and offsets. What is placed is the text's layout box: the "
           "advance width of its longest line by the line height times the "
           "number of lines, so northwest +0+0 leaves the font's ascent "
           "above the capitals, as ImageMagick's -annotate does; lines "
           "align left, centre or right by the gravity's column. A font "
           "that is not installed falls back to fontconfig's best match, "
           "with a warning naming it. Text outside the image is clipped; "
           "the size is unchanged.",
    .n_inputs = 1,
    .flags = KILN_OP_PURE | KILN_OP_SEQUENTIAL,
    .params_size = sizeof(annotation_params),
    .params = annotation_specs,
    .n_params = KILN_N_ELEMENTS(annotation_specs),
    .infer = annotation_infer,
};

const kiln_op_impl annotation_vips = {
    .size = sizeof(kiln_op_impl),
    .op = "annotation",
    .backend = "vips",
    .execute = annotation_execute,
};
