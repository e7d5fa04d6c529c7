/*
 * Compositing shared by annotation and watermark (composite.h): clip the
 * placed overlay to the input, blend that rectangle with vips_composite2()
 * in float, round back to 8 bits and insert it into the input, so a small
 * overlay on a large photo touches only the pixels it covers.
 */
#include "composite.h"

int
ops_composite_over(VipsImage *base, VipsImage *overlay, int x, int y,
                   const char *what, VipsImage **out, kiln_error *err)
{
    VipsImage *t[9] = {NULL};
    VipsImage *cur;
    VipsRect area = {x, y, vips_image_get_width(overlay),
                     vips_image_get_height(overlay)};
    VipsRect image = {0, 0, vips_image_get_width(base),
                      vips_image_get_height(base)};
    VipsRect r;
    bool base_alpha = vips_image_hasalpha(base);
    int rc;

    vips_rect_intersectrect(&area, &image, &r);
    if (vips_rect_isempty(&r)) {
        /* Wholly outside: the input unchanged. */
        g_object_ref(base);
        *out = base;
        return KILN_OK;
    }
    /* composite2 in float so that the blend is rounded once, at the end
     * (its 8-bit path truncates). Both sides are labelled sRGB, which the
     * pixels are, so that composite2 converts nothing. */
    if (vips_extract_area(overlay, &t[0], r.left - x, r.top - y, r.width,
                          r.height, NULL) ||
        vips_cast_float(t[0], &t[1], NULL) ||
        vips_copy(t[1], &t[2], "interpretation", VIPS_INTERPRETATION_sRGB,
                  NULL) ||
        vips_extract_area(base, &t[3], r.left, r.top, r.width, r.height,
                          NULL) ||
        vips_cast_float(t[3], &t[4], NULL) ||
        vips_copy(t[4], &t[5], "interpretation", VIPS_INTERPRETATION_sRGB,
                  NULL) ||
        vips_composite2(t[5], t[2], &t[6], VIPS_BLEND_MODE_OVER,
                        "compositing_space", VIPS_INTERPRETATION_sRGB, NULL)) {
        goto fail;
    }
    cur = t[6];
    if (!base_alpha) {
        if (vips_extract_band(cur, &t[7], 0, "n", 3, NULL)) {
            goto fail;
        }
        cur = t[7];
    }
    /* + 0.5, then the cast to uchar truncates: round half up. */
    if (vips_linear1(cur, &t[8], 1.0, 0.5, "uchar", TRUE, NULL) ||
        vips_insert(base, t[8], out, r.left, r.top, NULL)) {
        goto fail;
    }
    rc = KILN_OK;
    goto done;

fail:
    rc = ops_api->error_set_vips(err, what);
done:
    for (int i = 8; i >= 0; i--) {
        if (t[i] != NULL) {
            g_object_unref(t[i]);
        }
    }
    return rc;
}
