/* Loader refusal: ABI major is KILN_ABI_MAJOR + 1 (a different major). */
#include "kiln/plugin.h"

static int test_init(kiln_plugin *self, const kiln_host_api *api,
                     kiln_error *err);

/* Written by hand (not KILN_PLUGIN_DEFINE) to carry a wrong number. */
KILN_EXPORT const kiln_plugin_descriptor kiln_plugin_descriptor_v2 = {
    .abi_major = KILN_ABI_MAJOR + 1,
    .abi_minor = KILN_ABI_MINOR,
    .size = sizeof(kiln_plugin_descriptor),
    .host_api_size = sizeof(kiln_host_api),
    .vips_major = VIPS_MAJOR_VERSION,
    .vips_minor = VIPS_MINOR_VERSION,
    .name = "test-abi-major",
    .version = KILN_VERSION_STRING,
    .summary = "test plugin the loader must refuse (abi-major)",
    .init = test_init,
    .fini = NULL};

/* Never called by a correct loader; fails loudly if it is. */
static int
test_init(kiln_plugin *self, const kiln_host_api *api, kiln_error *err)
{
    (void)self;
    return api->error_set(err, KILN_EINTERNAL,
                          "init of refused plugin \"%s\" was called",
                          kiln_plugin_descriptor_v2.name);
}
