/*
 * annotation: draw text over the input (ops.md section 4). `text` (UTF-8,
 * 1..1000 characters) is rendered anti-aliased in `color` with the font
 * family `font` (fontconfig's best match when it is not installed, with a
 * warning) at `size` px, placed by gravity and inward offsets, and
 * composited over the input; text outside the image is clipped. The output
 * keeps the input's size and bands. execute comes with the next issue.
 */
#include "ops.h"

/* ops.md counts characters; the spec's max_len bounds bytes (4 per
 * character at most in UTF-8). */
#define ANNOTATION_MAX_CHARS 1000

typedef struct annotation_params {
    const char *font;
    kiln_color color;
    const char *text;
    double size;
    kiln_gravity gravity;
    kiln_length xoffset;
    kiln_length yoffset;
} annotation_params;

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

const kiln_op annotation_op = {
    .name = "annotation",
    .summary = "draw text placed by gravity and offsets",
    .doc = "Draws text (1 to 1000 characters of UTF-8) anti-aliased in "
           "color, with the font family font at size pixels, placed by "
           "gravity (default northwest) and offsets. A font that is not "
           "installed falls back to fontconfig's best match, with a "
           "warning. Text outside the image is clipped; the size is "
           "unchanged.",
    .n_inputs = 1,
    .flags = KILN_OP_PURE | KILN_OP_SEQUENTIAL,
    .params_size = sizeof(annotation_params),
    .params = annotation_specs,
    .n_params = KILN_N_ELEMENTS(annotation_specs),
    .infer = annotation_infer,
    .execute = NULL,
};
