/*
 * Ops that take their time, for the runner's tests. "test-stall" is a
 * poison pill (tests/exec/poison.sh): it never returns from execute() and
 * never looks at a cancel flag, as a decoder stuck inside one native call
 * does (librsvg rendering a huge blur was the case met); nothing
 * in-process can stop it, and the runner's backstop must end it anyway.
 * "test-sleep" returns its input after 3 s whatever the machine's speed
 * (the lease test of tests/unit/test_runner.c needs a run that outlives
 * a 1 s lease).
 */
#include <unistd.h>

#include "kiln/plugin.h"

static int test_stall_init(kiln_plugin *self, const kiln_host_api *api,
                           kiln_error *err);

static int
test_stall_infer(const void *params, const kiln_shape *in, kiln_shape *out,
                 kiln_error *err)
{
    (void)params;
    (void)err;
    *out = in[0];
    return KILN_OK;
}

static int
test_stall_execute(kiln_exec *ctx, const void *params, VipsImage *const *in,
                   VipsImage **out, kiln_error *err)
{
    (void)ctx;
    (void)params;
    (void)in;
    (void)out;
    (void)err;
    for (;;) {
        sleep(1);
    }
    return KILN_OK;
}

static int
test_stall_sleep(kiln_exec *ctx, const void *params, VipsImage *const *in,
                 VipsImage **out, kiln_error *err)
{
    (void)ctx;
    (void)params;
    (void)err;
    sleep(3);
    g_object_ref(in[0]);
    *out = in[0];
    return KILN_OK;
}

static const kiln_op test_sleep_op = {
    .size = sizeof(kiln_op),
    .name = "test-sleep",
    .summary = "returns its input after 3 s (a test op)",
    .n_inputs = 1,
    .flags = KILN_OP_PURE,
    .infer = test_stall_infer,
};
static const kiln_op_impl test_sleep_vips = {
    .size = sizeof(kiln_op_impl),
    .op = "test-sleep",
    .backend = "vips",
    .execute = test_stall_sleep,
};

static const kiln_op test_stall_op = {
    .size = sizeof(kiln_op),
    .name = "test-stall",
    .summary = "never returns (a test op)",
    .n_inputs = 1,
    .flags = KILN_OP_PURE,
    .infer = test_stall_infer,
};
static const kiln_op_impl test_stall_vips = {
    .size = sizeof(kiln_op_impl),
    .op = "test-stall",
    .backend = "vips",
    .execute = test_stall_execute,
};

KILN_PLUGIN_DEFINE("test-stall", KILN_VERSION_STRING,
                   "an op that never returns, for the poison-pill tests",
                   test_stall_init, NULL);

static int
test_stall_init(kiln_plugin *self, const kiln_host_api *api, kiln_error *err)
{
    int rc = api->register_op(self, &test_stall_op, err);
    if (rc == KILN_OK) {
        rc = api->register_op_impl(self, &test_stall_vips, err);
    }
    if (rc == KILN_OK) {
        rc = api->register_op(self, &test_sleep_op, err);
    }
    if (rc == KILN_OK) {
        rc = api->register_op_impl(self, &test_sleep_vips, err);
    }
    return rc;
}
