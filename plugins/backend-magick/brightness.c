/*
 * brightness on the magick backend: add `bright_level` (-255..255) to R,
 * G and B, clamped to 0..255, alpha untouched (ops.md, GD's
 * IMG_FILTER_BRIGHTNESS). The same integer table as ops-vips' brightness,
 * applied to the 8-bit values (mk_lut), so both backends give the same
 * bytes.
 */
#include "magick.h"

static int
brightness_execute(kiln_exec *ctx, const void *params, void *const *in,
                   void **out, kiln_error *err)
{
    const brightness_params *p = params;
    const Image *src = in[0];
    int level = (int)p->bright_level;
    uint8_t lut[3][256];

    (void)ctx;
    for (int v = 0; v < 256; v++) {
        int c = v + level;

        lut[0][v] = lut[1][v] = lut[2][v] =
            (uint8_t)(c > 255 ? 255 : (c < 0 ? 0 : c));
    }
    return mk_lut(src, (const uint8_t(*)[256])lut, (Image **)out, err);
}

const kiln_op_impl brightness_magick = {
    .size = sizeof(kiln_op_impl),
    .op = "brightness",
    .backend = "magick",
    .execute_native = brightness_execute,
};
