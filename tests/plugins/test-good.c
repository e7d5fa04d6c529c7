/* Loader success path; a copy made writable by others must be refused. */
#include "kiln/plugin.h"

static int test_good_init(kiln_plugin *self, const kiln_host_api *api,
                          kiln_error *err);
static int test_good_infer(const void *params, const kiln_shape *in,
                           kiln_shape *out, kiln_error *err);
static int test_good_execute(kiln_exec *ctx, const void *params,
                             VipsImage *const *in, VipsImage **out,
                             kiln_error *err);

/* Set by init, before any op can run. */
static const kiln_host_api *test_good_api;

/* No parameters: params_size 0, an empty spec table. */
static const kiln_op test_good_op = {
    .size = sizeof(kiln_op),
    .name = "test-good-invert",
    .summary = "invert every band, alpha included (a test op)",
    .n_inputs = 1,
    .flags = KILN_OP_PURE | KILN_OP_SEQUENTIAL,
    .params_size = 0,
    .params = NULL,
    .n_params = 0,
    .infer = test_good_infer,
};
static const kiln_op_impl test_good_vips = {
    .size = sizeof(kiln_op_impl),
    .op = "test-good-invert",
    .backend = "vips",
    .execute = test_good_execute,
};

KILN_PLUGIN_DEFINE("test-good", KILN_VERSION_STRING,
                   "valid test plugin with one op", test_good_init, NULL);

static int
test_good_infer(const void *params, const kiln_shape *in, kiln_shape *out,
                kiln_error *err)
{
    (void)params;
    (void)err;
    *out = in[0];
    return KILN_OK;
}

static int
test_good_execute(kiln_exec *ctx, const void *params, VipsImage *const *in,
                  VipsImage **out, kiln_error *err)
{
    (void)ctx;
    (void)params;
    if (vips_invert(in[0], out, NULL) != 0) {
        return test_good_api->error_set_vips(err, "cannot invert");
    }
    return KILN_OK;
}

static int
test_good_init(kiln_plugin *self, const kiln_host_api *api, kiln_error *err)
{
    test_good_api = api;
    int rc = api->register_op(self, &test_good_op, err);
    return rc == KILN_OK ? api->register_op_impl(self, &test_good_vips, err)
                         : rc;
}
