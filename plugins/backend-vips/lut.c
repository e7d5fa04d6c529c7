/*
 * The executor's side of the optimizer's fused lookup (dsl/pass_fuse_luts.c
 * defines the op, `dsl_lut_op`; the compiler runs no pixels): the table on
 * the colour bands, alpha mapped to itself, with the same checks and
 * libvips call as ops-vips' lookup ops (gd_map).
 */
#include "vips.h"

int
lut_run(const void *params, VipsImage *in, VipsImage **out, kiln_error *err)
{
    const dsl_lut_params *p = params;
    VipsPel table[256 * 4];
    int bands = vips_image_get_bands(in);
    if (vips_image_get_format(in) != VIPS_FORMAT_UCHAR ||
        (bands != 3 && bands != 4)) {
        return err_set(err, KILN_EINVAL,
                       "lut: input has %d bands of format %d (expected "
                       "8-bit sRGB, 3 bands or 4 with alpha)",
                       bands, (int)vips_image_get_format(in));
    }
    for (int v = 0; v < 256; v++) {
        for (int b = 0; b < bands; b++) {
            table[v * bands + b] = b < 3 ? p->table[b][v] : (VipsPel)v;
        }
    }
    VipsImage *t = vips_image_new_from_memory_copy(
        table, (size_t)256 * bands, 256, 1, bands, VIPS_FORMAT_UCHAR);
    if (t != NULL) {
        /* maplut labels its output like a many-band table: keep sRGB. */
        t->Type = vips_image_get_interpretation(in);
    }
    int rc = KILN_OK;
    if (t == NULL || vips_maplut(in, out, t, NULL) != 0) {
        rc = err_set_vips(err, "lut");
    }
    if (t != NULL) {
        g_object_unref(t);
    }
    return rc;
}
