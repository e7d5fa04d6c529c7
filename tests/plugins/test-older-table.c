/* Loader acceptance: built against a smaller (older minor) host table. */
#include "kiln/plugin.h"

/* The table as an older SDK saw it: everything before exec_warn. */
#define TEST_OLDER_API_SIZE offsetof(kiln_host_api, exec_warn)

static int test_older_init(kiln_plugin *self, const kiln_host_api *api,
                           kiln_error *err);
static int test_older_infer(const void *params, const kiln_shape *in,
                            kiln_shape *out, kiln_error *err);
static int test_older_execute(kiln_exec *ctx, const void *params,
                              VipsImage *const *in, VipsImage **out,
                              kiln_error *err);

static const kiln_op test_older_op = {
    .size = sizeof(kiln_op),
    .name = "test-older-table-copy",
    .summary = "pass the input through (a test op)",
    .n_inputs = 1,
    .flags = KILN_OP_PURE | KILN_OP_SEQUENTIAL,
    .infer = test_older_infer,
};
static const kiln_op_impl test_older_vips = {
    .size = sizeof(kiln_op_impl),
    .op = "test-older-table-copy",
    .backend = "vips",
    .execute = test_older_execute,
};

/* Written by hand (not KILN_PLUGIN_DEFINE) to claim the smaller table. */
KILN_EXPORT const kiln_plugin_descriptor kiln_plugin_descriptor_v2 = {
    .abi_major = KILN_ABI_MAJOR,
    .abi_minor = KILN_ABI_MINOR,
    .size = sizeof(kiln_plugin_descriptor),
    .host_api_size = TEST_OLDER_API_SIZE,
    .vips_major = VIPS_MAJOR_VERSION,
    .vips_minor = VIPS_MINOR_VERSION,
    .name = "test-older-table",
    .version = KILN_VERSION_STRING,
    .summary = "test plugin built against a smaller host table",
    .init = test_older_init,
    .fini = NULL};

static int
test_older_infer(const void *params, const kiln_shape *in, kiln_shape *out,
                 kiln_error *err)
{
    (void)params;
    (void)err;
    *out = in[0];
    return KILN_OK;
}

static int
test_older_execute(kiln_exec *ctx, const void *params, VipsImage *const *in,
                   VipsImage **out, kiln_error *err)
{
    (void)ctx;
    (void)params;
    (void)err;
    g_object_ref(in[0]);
    *out = in[0];
    return KILN_OK;
}

static int
test_older_init(kiln_plugin *self, const kiln_host_api *api, kiln_error *err)
{
    /* A plugin this old only knows members below its table size; it
     * calls nothing beyond them. */
    if (api->size < TEST_OLDER_API_SIZE) {
        return api->error_set(err, KILN_EABI,
                              "host table of %zu bytes is smaller than %zu",
                              api->size, (size_t)TEST_OLDER_API_SIZE);
    }
    int rc = api->register_op(self, &test_older_op, err);
    return rc == KILN_OK ? api->register_op_impl(self, &test_older_vips, err)
                         : rc;
}
