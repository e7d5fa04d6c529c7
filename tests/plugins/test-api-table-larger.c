/* Loader acceptance: host_api_size is sizeof(kiln_host_api) + 64 (a newer
 * SDK's table), calling nothing past the host's. */
#include "kiln/plugin.h"

static int test_init(kiln_plugin *self, const kiln_host_api *api,
                     kiln_error *err);

/* Written by hand (not KILN_PLUGIN_DEFINE) to carry another number. */
KILN_EXPORT const kiln_plugin_descriptor kiln_plugin_descriptor_v2 = {
    .abi_major = KILN_ABI_MAJOR,
    .abi_minor = KILN_ABI_MINOR,
    .size = sizeof(kiln_plugin_descriptor),
    .host_api_size = sizeof(kiln_host_api) + 64,
    .vips_major = VIPS_MAJOR_VERSION,
    .vips_minor = VIPS_MINOR_VERSION,
    .name = "test-api-table-larger",
    .version = KILN_VERSION_STRING,
    .summary = "test plugin built with a larger host table, using none of it",
    .init = test_init,
    .fini = NULL};

/* Uses nothing newer than the host has: it loads. */
static int
test_init(kiln_plugin *self, const kiln_host_api *api, kiln_error *err)
{
    (void)self;
    (void)api;
    (void)err;
    return KILN_OK;
}
