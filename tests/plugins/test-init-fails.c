/* Loader refusal: init() registers an op, then fails; the loader undoes it. */
#include "kiln/plugin.h"

typedef struct test_fails_params {
    double amount;
} test_fails_params;

static int test_fails_init(kiln_plugin *self, const kiln_host_api *api,
                           kiln_error *err);
static int test_fails_infer(const void *params, const kiln_shape *in,
                            kiln_shape *out, kiln_error *err);

static const kiln_param_spec test_fails_spec[] = {
    KILN_P_NUMBER(test_fails_params, amount, 0, 100, 0,
                  "a number nobody reads"),
};

/* A valid op: after the failed init the host must no longer know it. */
static const kiln_op test_fails_op = {
    .size = sizeof(kiln_op),
    .name = "test-init-fails",
    .summary = "registered by a plugin whose init fails",
    .n_inputs = 1,
    .flags = KILN_OP_PURE,
    .params_size = sizeof(test_fails_params),
    .params = test_fails_spec,
    .n_params = KILN_N_ELEMENTS(test_fails_spec),
    .infer = test_fails_infer,
};

KILN_PLUGIN_DEFINE("test-init-fails", KILN_VERSION_STRING,
                   "test plugin whose init fails after registering an op",
                   test_fails_init, NULL);

static int
test_fails_infer(const void *params, const kiln_shape *in, kiln_shape *out,
                 kiln_error *err)
{
    (void)params;
    (void)err;
    *out = in[0];
    return KILN_OK;
}

static int
test_fails_init(kiln_plugin *self, const kiln_host_api *api, kiln_error *err)
{
    int rc = api->register_op(self, &test_fails_op, err);

    if (rc != KILN_OK) {
        return rc;
    }
    return api->error_set(err, KILN_EINVAL, "test plugin failed on purpose");
}
