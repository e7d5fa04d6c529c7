/*
 * backend-magick: registers the "magick" pixel backend (backend.c) and
 * its implementations of the fifteen shipped ops, one file per op. The
 * ops themselves (names, parameters, shapes) are ops-vips' definitions:
 * enable ops-vips before this plugin. MagickCore starts at the first
 * decode, not here, so a deployment that loads the plugin and runs no
 * magick service pays nothing for it.
 */
#include "magick.h"

const kiln_host_api *mk_api;

static const kiln_op_impl *const mk_impls[] = {
    &annotation_magick, &blur_magick,      &brightness_magick, &colorize_magick,
    &contrast_magick,   &crop_magick,      &enhance_magick,    &filter_magick,
    &fitmethod_magick,  &flip_magick,      &resize_magick,     &rotate_magick,
    &ulb_magick,        &watermark_magick, &zoom_magick,
};

static int
mk_init(kiln_plugin *self, const kiln_host_api *api, kiln_error *err)
{
    mk_api = api;
    if (!KILN_HOST_HAS(api, register_backend) ||
        !KILN_HOST_HAS(api, exec_load_native)) {
        return api->error_set(err, KILN_EABI,
                              "this host cannot register pixel backends "
                              "(kiln 2.0 with backends is needed)");
    }
    int rc = api->register_backend(self, &mk_backend, err);
    for (size_t i = 0;
         rc == KILN_OK && i < sizeof mk_impls / sizeof mk_impls[0]; i++) {
        rc = api->register_op_impl(self, mk_impls[i], err);
    }
    return rc;
}

static void
mk_fini(kiln_plugin *self)
{
    (void)self;
    mk_stop();
}

KILN_PLUGIN_DEFINE("backend-magick", "1.0.0",
                   "MagickCore (ImageMagick 6) pixel backend \"magick\" and "
                   "its implementations of the shipped ops",
                   mk_init, mk_fini);
