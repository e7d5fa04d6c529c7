/*
 * colorize on the magick backend: add `red`, `green` and `blue` (0..255)
 * to their channels, clamped, alpha untouched (ops.md, GD's
 * IMG_FILTER_COLORIZE with alpha 0). One integer table per channel, as in
 * ops-vips' colorize, applied to the 8-bit pixels (mk_lut), so both
 * backends give the same bytes.
 */
#include "magick.h"

static int
colorize_execute(kiln_exec *ctx, const void *params, void *const *in,
                 void **out, kiln_error *err)
{
    const colorize_params *p = params;
    const Image *src = in[0];
    const int add[3] = {(int)p->red, (int)p->green, (int)p->blue};
    uint8_t lut[3][256];

    (void)ctx;
    for (int b = 0; b < 3; b++) {
        for (int v = 0; v < 256; v++) {
            int c = v + add[b];

            lut[b][v] = (uint8_t)(c > 255 ? 255 : c);
        }
    }
    return mk_lut(src, (const uint8_t(*)[256])lut, (Image **)out, err);
}

const kiln_op_impl colorize_magick = {
    .size = sizeof(kiln_op_impl),
    .op = "colorize",
    .backend = "magick",
    .execute_native = colorize_execute,
};
