/*
 * ops-vips: the shipped transformations, executed with libvips. This file
 * holds the plugin descriptor (the one exported symbol) and init(), which
 * registers every op; each op lives in the file named after it.
 */
#include "ops.h"

#include "kiln/version.h"

const kiln_host_api *ops_api;

static const kiln_op *const ops_all[] = {
    &annotation_op, &blur_op,    &brightness_op, &colorize_op,  &contrast_op,
    &crop_op,       &enhance_op, &filter_op,     &fitmethod_op, &flip_op,
    &resize_op,     &rotate_op,  &ulb_op,        &watermark_op, &zoom_op,
};
static const kiln_op_impl *const impls_all[] = {
    &annotation_vips, &blur_vips,      &brightness_vips, &colorize_vips,
    &contrast_vips,   &crop_vips,      &enhance_vips,    &filter_vips,
    &fitmethod_vips,  &flip_vips,      &resize_vips,     &rotate_vips,
    &ulb_vips,        &watermark_vips, &zoom_vips,
};

/* Stores the host table and registers every op's definition, then its
 * libvips implementation; returns the first failure (the host then undoes
 * the registrations already made). */
static int
ops_init(kiln_plugin *self, const kiln_host_api *api, kiln_error *err)
{
    ops_api = api;
    for (size_t i = 0; i < KILN_N_ELEMENTS(ops_all); i++) {
        int rc = api->register_op(self, ops_all[i], err);

        if (rc != KILN_OK) {
            return rc;
        }
    }
    for (size_t i = 0; i < KILN_N_ELEMENTS(impls_all); i++) {
        int rc = api->register_op_impl(self, impls_all[i], err);

        if (rc != KILN_OK) {
            return rc;
        }
    }
    return KILN_OK;
}

KILN_PLUGIN_DEFINE("ops-vips", KILN_VERSION_STRING,
                   "image transformations executed with libvips", ops_init,
                   NULL);
