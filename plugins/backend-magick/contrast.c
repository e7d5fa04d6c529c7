/*
 * contrast on the magick backend: with f = ((100 + level) / 100)^2 each
 * colour channel becomes clamp(((c / 255 - 0.5) f + 0.5) 255), truncated;
 * alpha untouched (ops.md; GD's IMG_FILTER_CONTRAST with -level). The
 * table repeats ops-vips' contrast_lut step for step in double precision
 * (GD's order), so both backends give the same bytes; level 0 returns
 * the input unchanged, as ops.md promises and ops-vips does.
 */
#include "magick.h"

static int
contrast_execute(kiln_exec *ctx, const void *params, void *const *in,
                 void **out, kiln_error *err)
{
    const contrast_params *p = params;
    const Image *src = in[0];
    uint8_t lut[3][256];

    (void)ctx;
    if (p->level == 0) {
        Image *same = NULL;
        int rc = mk_clone(src, &same, err);

        if (rc == KILN_OK) {
            *out = same;
        }
        return rc;
    }
    /* GD: contrast = (100 - arg) / 100, squared, with arg = -level; each
     * step rounds as GD's does, which is why the expression is split. */
    double f = (100.0 - -p->level) / 100.0;

    f = f * f;
    for (int v = 0; v < 256; v++) {
        double c = (double)v / 255.0;

        c = c - 0.5;
        c = c * f;
        c = c + 0.5;
        c = c * 255.0;
        c = c > 255.0 ? 255.0 : (c < 0.0 ? 0.0 : c);
        lut[0][v] = lut[1][v] = lut[2][v] = (uint8_t)(int)c;
    }
    return mk_lut(src, (const uint8_t(*)[256])lut, (Image **)out, err);
}

const kiln_op_impl contrast_magick = {
    .size = sizeof(kiln_op_impl),
    .op = "contrast",
    .backend = "magick",
    .execute_native = contrast_execute,
};
