/*
 * brightness on the magick backend: add `bright_level` (-255..255) to R,
 * G and B, clamped to 0..255, alpha untouched (ops.md, GD's
 * IMG_FILTER_BRIGHTNESS). The same integer table as ops-vips' brightness,
 * applied to the 8-bit pixels (mk_export), so both backends give the same
 * bytes.
 */
#include "magick.h"

#include <stdlib.h>

static int
brightness_execute(kiln_exec *ctx, const void *params, void *const *in,
                   void **out, kiln_error *err)
{
    const brightness_params *p = params;
    const Image *src = in[0];
    int level = (int)p->bright_level;
    uint8_t lut[256];
    uint8_t *buf = NULL;
    Image *res = NULL;
    int bands;

    (void)ctx;
    for (int v = 0; v < 256; v++) {
        int c = v + level;

        lut[v] = (uint8_t)(c > 255 ? 255 : (c < 0 ? 0 : c));
    }
    int rc = mk_export(src, &buf, &bands, err);
    if (rc != KILN_OK) {
        return rc;
    }
    size_t n = (size_t)src->columns * src->rows;
    for (size_t i = 0; i < n; i++) {
        uint8_t *px = buf + i * (size_t)bands;

        px[0] = lut[px[0]];
        px[1] = lut[px[1]];
        px[2] = lut[px[2]];
    }
    rc = mk_import(src, (int)src->columns, (int)src->rows, bands, buf, &res,
                   err);
    free(buf);
    if (rc == KILN_OK) {
        *out = res;
    }
    return rc;
}

const kiln_op_impl brightness_magick = {
    .size = sizeof(kiln_op_impl),
    .op = "brightness",
    .backend = "magick",
    .execute_native = brightness_execute,
};
