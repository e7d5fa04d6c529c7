/*
 * Ops that break the op contract (plugin.h, kiln_op.execute), each in one
 * way, for tests/exec/op_contract.sh: the host must name the op, its
 * path and this plugin, in its own words. "test-contract-liar" claims
 * KILN_OP_SEQUENTIAL but reads its input bottom up (a vertical flip):
 * the stream must decode the source again and the job must still be
 * right.
 */
#include "kiln/plugin.h"

static int test_contract_init(kiln_plugin *self, const kiln_host_api *api,
                              kiln_error *err);

static const kiln_host_api *test_contract_api;

static int
test_contract_same(const void *params, const kiln_shape *in, kiln_shape *out,
                   kiln_error *err)
{
    (void)params;
    (void)err;
    *out = in[0];
    return KILN_OK;
}

/* The input relabelled multiband, as vips_maplut with a many-band table
 * does: vips_image_hasalpha() no longer sees the alpha. */
static int
test_contract_multiband(kiln_exec *ctx, const void *params,
                        VipsImage *const *in, VipsImage **out, kiln_error *err)
{
    (void)ctx;
    (void)params;
    if (vips_copy(in[0], out, "interpretation", VIPS_INTERPRETATION_MULTIBAND,
                  NULL) != 0) {
        return test_contract_api->error_set_vips(err, "test-contract");
    }
    return KILN_OK;
}

/* One band where infer promised the input's. */
static int
test_contract_one_band(kiln_exec *ctx, const void *params, VipsImage *const *in,
                       VipsImage **out, kiln_error *err)
{
    (void)ctx;
    (void)params;
    VipsImage *t = NULL;
    if (vips_extract_band(in[0], &t, 0, NULL) != 0 ||
        vips_copy(t, out, "interpretation", VIPS_INTERPRETATION_sRGB, NULL) !=
            0) {
        if (t != NULL) {
            g_object_unref(t);
        }
        return test_contract_api->error_set_vips(err, "test-contract");
    }
    g_object_unref(t);
    return KILN_OK;
}

/* Float pixels. */
static int
test_contract_float(kiln_exec *ctx, const void *params, VipsImage *const *in,
                    VipsImage **out, kiln_error *err)
{
    (void)ctx;
    (void)params;
    if (vips_cast_float(in[0], out, NULL) != 0) {
        return test_contract_api->error_set_vips(err, "test-contract");
    }
    return KILN_OK;
}

/* Two pixels wider than infer said. */
static int
test_contract_wider(kiln_exec *ctx, const void *params, VipsImage *const *in,
                    VipsImage **out, kiln_error *err)
{
    (void)ctx;
    (void)params;
    if (vips_embed(in[0], out, 0, 0, in[0]->Xsize + 2, in[0]->Ysize, NULL) !=
        0) {
        return test_contract_api->error_set_vips(err, "test-contract");
    }
    return KILN_OK;
}

/* A libvips call that fails (band 9 of a 3- or 4-band image), reported
 * the way plugins should: error_set_vips with the op's name. */
static int
test_contract_libvips(kiln_exec *ctx, const void *params, VipsImage *const *in,
                      VipsImage **out, kiln_error *err)
{
    (void)ctx;
    (void)params;
    if (vips_extract_band(in[0], out, 9, NULL) != 0) {
        return test_contract_api->error_set_vips(err, "test-contract-libvips");
    }
    return KILN_OK;
}

/* Claims to read top to bottom; reads bottom up. */
static int
test_contract_liar(kiln_exec *ctx, const void *params, VipsImage *const *in,
                   VipsImage **out, kiln_error *err)
{
    (void)ctx;
    (void)params;
    if (vips_flip(in[0], out, VIPS_DIRECTION_VERTICAL, NULL) != 0) {
        return test_contract_api->error_set_vips(err, "test-contract-liar");
    }
    return KILN_OK;
}

#define TEST_CONTRACT_OP(NAME, FLAGS, EXEC)                                    \
    {                                                                          \
        .size = sizeof(kiln_op), .name = NAME,                                 \
        .summary = "breaks the op contract (a test op)", .n_inputs = 1,        \
        .flags = (FLAGS), .infer = test_contract_same,                         \
    }
#define TEST_CONTRACT_IMPL(NAME, FLAGS, EXEC)                                  \
    {                                                                          \
        .size = sizeof(kiln_op_impl), .op = NAME, .backend = "vips",           \
        .execute = (EXEC),                                                     \
    }
#define TEST_CONTRACT_ALL(X)                                                   \
    X("test-contract-multiband", KILN_OP_PURE, test_contract_multiband),       \
        X("test-contract-one-band", KILN_OP_PURE, test_contract_one_band),     \
        X("test-contract-float", KILN_OP_PURE, test_contract_float),           \
        X("test-contract-wider", KILN_OP_PURE, test_contract_wider),           \
        X("test-contract-libvips", KILN_OP_PURE, test_contract_libvips),       \
        X("test-contract-liar", KILN_OP_PURE | KILN_OP_SEQUENTIAL,             \
          test_contract_liar)

static const kiln_op test_contract_ops[] = {
    TEST_CONTRACT_ALL(TEST_CONTRACT_OP)};
/* Defined, implemented by no backend: requests naming it are refused at
 * submission. */
static const kiln_op test_contract_no_impl =
    TEST_CONTRACT_OP("test-contract-no-impl", KILN_OP_PURE, NULL);
static const kiln_op_impl test_contract_impls[] = {
    TEST_CONTRACT_ALL(TEST_CONTRACT_IMPL)};

KILN_PLUGIN_DEFINE("test-contract", KILN_VERSION_STRING,
                   "ops that break the op contract", test_contract_init, NULL);

static int
test_contract_init(kiln_plugin *self, const kiln_host_api *api, kiln_error *err)
{
    test_contract_api = api;
    for (size_t i = 0; i < KILN_N_ELEMENTS(test_contract_ops); i++) {
        int rc = api->register_op(self, &test_contract_ops[i], err);
        if (rc == KILN_OK) {
            rc = api->register_op_impl(self, &test_contract_impls[i], err);
        }
        if (rc != KILN_OK) {
            return rc;
        }
    }
    return api->register_op(self, &test_contract_no_impl, err);
}
