/*
 * The registry's side of ABI 2: op definitions and their per-backend
 * implementations, spec tables stepped through by each entry's own size
 * (larger entries from a newer SDK accepted only when what this host does
 * not know is zero), and length defaults, checked at registration and
 * applied by the parser as if written.
 */
#include <CUnit/CUnit.h>
#include <stdlib.h>
#include <string.h>

#include "../../core/kiln.h"
#include "../../dsl/value_lexer.h"

int test_registry_register(void);

typedef struct tr_params {
    kiln_length margin;
} tr_params;

static int
tr_infer(const void *params, const kiln_shape *in, kiln_shape *out,
         kiln_error *err)
{
    (void)params;
    (void)err;
    *out = *in;
    return KILN_OK;
}

static int
tr_execute(kiln_exec *ctx, const void *params, VipsImage *const *in,
           VipsImage **out, kiln_error *err)
{
    (void)ctx;
    (void)params;
    (void)err;
    g_object_ref(in[0]);
    *out = in[0];
    return KILN_OK;
}

static bool
tr_sample(const void *params, const kiln_shape *in, double *sx, double *sy)
{
    (void)params;
    (void)in;
    *sx = *sy = 0.5;
    return true;
}

static const kiln_param_spec tr_specs[] = {
    KILN_P_LENGTH(tr_params, margin, KILN_AXIS_X, KILN_UNITS_OFFSET, "m",
                  .def_length = "10%"),
};

static kiln_op
tr_op(const char *name, const kiln_param_spec *specs, size_t n)
{
    return (kiln_op){.size = sizeof(kiln_op),
                     .name = name,
                     .n_inputs = 1,
                     .params_size = sizeof(tr_params),
                     .params = specs,
                     .n_params = n,
                     .infer = tr_infer};
}

static int
tr_add(registry *r, kiln_op op, char *msg, size_t size)
{
    kiln_error err;
    err_clear(&err);
    int rc = registry_add_op(r, NULL, &op, &err);
    snprintf(msg, size, "%s", err.message);
    return rc;
}

/* Definitions, implementations by backend, and what is refused. */
static void
test_registry_impls(void)
{
    registry r = {.check_length = dsl_lex_length};
    kiln_error err;
    char msg[1024];
    CU_ASSERT_EQUAL(tr_add(&r, tr_op("tr", tr_specs, 1), msg, sizeof msg),
                    KILN_OK);
    const reg_op *op = registry_find_op(&r, "tr");
    CU_ASSERT_PTR_NOT_NULL_FATAL(op);
    CU_ASSERT_EQUAL(op->n_impls, 0);
    kiln_op_impl vips = {.size = sizeof vips,
                         .op = "tr",
                         .backend = "vips",
                         .execute = tr_execute};
    err_clear(&err);
    CU_ASSERT_EQUAL(registry_add_op_impl(&r, NULL, &vips, &err), KILN_OK);
    CU_ASSERT_PTR_NOT_NULL(registry_op_impl(op, "vips"));
    CU_ASSERT_PTR_NULL(registry_op_impl(op, "magick"));
    /* A second one for the same backend, one for an unknown op, one
     * without execute, one without a size. */
    CU_ASSERT_EQUAL(registry_add_op_impl(&r, NULL, &vips, &err), KILN_EEXIST);
    kiln_op_impl bad = vips;
    bad.op = "nope";
    CU_ASSERT_EQUAL(registry_add_op_impl(&r, NULL, &bad, &err), KILN_ENOTFOUND);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "is not defined"));
    bad = vips;
    bad.execute = NULL;
    CU_ASSERT_EQUAL(registry_add_op_impl(&r, NULL, &bad, &err), KILN_EINVAL);
    bad = vips;
    bad.size = 0;
    CU_ASSERT_EQUAL(registry_add_op_impl(&r, NULL, &bad, &err), KILN_EABI);
    /* An op with sample_scale needs execute_reduced in every
     * implementation. */
    kiln_op scaled = tr_op("tr-scaled", tr_specs, 1);
    scaled.sample_scale = tr_sample;
    CU_ASSERT_EQUAL(registry_add_op(&r, NULL, &scaled, &err), KILN_OK);
    bad = vips;
    bad.op = "tr-scaled";
    CU_ASSERT_EQUAL(registry_add_op_impl(&r, NULL, &bad, &err), KILN_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "execute_reduced"));
    /* A definition from a newer SDK: larger, its unknown members zero,
     * loads; one of them set, refused. */
    size_t big = sizeof(kiln_op) + 4 * sizeof(void *);
    unsigned char *buf = calloc(1, big);
    CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
    kiln_op newer = tr_op("tr-newer", tr_specs, 1);
    newer.size = big;
    memcpy(buf, &newer, sizeof newer);
    CU_ASSERT_EQUAL(registry_add_op(&r, NULL, (const kiln_op *)buf, &err),
                    KILN_OK);
    newer.name = "tr-newer-used";
    memcpy(buf, &newer, sizeof newer);
    buf[big - 1] = 1;
    CU_ASSERT_EQUAL(registry_add_op(&r, NULL, (const kiln_op *)buf, &err),
                    KILN_EABI);
    CU_ASSERT_PTR_NOT_NULL(
        strstr(err.message, "\"tr-newer-used\" sets members this host"));
    free(buf);
    /* An op definition without its size. */
    kiln_op nosize = tr_op("tr-nosize", tr_specs, 1);
    nosize.size = 0;
    CU_ASSERT_EQUAL(registry_add_op(&r, NULL, &nosize, &err), KILN_EABI);
    registry_free(&r);
}

/* Spec entries of another size: larger with a zero tail loads, larger with
 * a member set that this host does not know is refused, smaller or mixed
 * is refused. */
static void
test_registry_spec_sizes(void)
{
    size_t big = sizeof(kiln_param_spec) + 2 * sizeof(void *);
    unsigned char *table = calloc(2, big);
    CU_ASSERT_PTR_NOT_NULL_FATAL(table);
    for (int i = 0; i < 2; i++) {
        kiln_param_spec s = tr_specs[0];
        s.size = big;
        s.name = i == 0 ? "margin" : "other";
        s.offset = 0;
        memcpy(table + (size_t)i * big, &s, sizeof s);
    }
    registry r = {.check_length = dsl_lex_length};
    char msg[1024];
    CU_ASSERT_EQUAL(tr_add(&r,
                           tr_op("tr-big", (const kiln_param_spec *)table, 2),
                           msg, sizeof msg),
                    KILN_OK);
    const reg_op *op = registry_find_op(&r, "tr-big");
    CU_ASSERT_PTR_NOT_NULL_FATAL(op);
    CU_ASSERT_STRING_EQUAL(op->op.params[1].name, "other");
    table[big + sizeof(kiln_param_spec)] = 1; /* a newer member, set */
    CU_ASSERT_EQUAL(tr_add(&r,
                           tr_op("tr-newer", (const kiln_param_spec *)table, 2),
                           msg, sizeof msg),
                    KILN_EABI);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "\"other\" sets members this host"));
    kiln_param_spec small = tr_specs[0];
    small.size = sizeof(kiln_param_spec) / 2;
    CU_ASSERT_EQUAL(tr_add(&r, tr_op("tr-small", &small, 1), msg, sizeof msg),
                    KILN_EABI);
    registry_free(&r);
    free(table);
}

/* A length default is checked at registration and parsed as if written. */
static void
test_registry_length_default(void)
{
    registry r = {.check_length = dsl_lex_length};
    char msg[1024];
    kiln_param_spec s = tr_specs[0];
    s.def_length = "10 %";
    CU_ASSERT_EQUAL(tr_add(&r, tr_op("tr-baddef", &s, 1), msg, sizeof msg),
                    KILN_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "its default \"10 %\" is not a length"));
    s = tr_specs[0];
    s.flags = KILN_PARAM_REQUIRED;
    CU_ASSERT_EQUAL(tr_add(&r, tr_op("tr-reqdef", &s, 1), msg, sizeof msg),
                    KILN_EINVAL);
    arena *a = arena_new();
    errlist errs = {0};
    cJSON *obj = cJSON_Parse("{}");
    tr_params *p = NULL;
    CU_ASSERT_EQUAL(params_parse(a, tr_specs, 1, sizeof(tr_params), obj, "x",
                                 NULL, (void **)&p, &errs),
                    KILN_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT(p->margin.is_set);
    CU_ASSERT_EQUAL(p->margin.unit, KILN_UNIT_PERCENT);
    CU_ASSERT_DOUBLE_EQUAL(p->margin.value, 10, 1e-12);
    CU_ASSERT_STRING_EQUAL(p->margin.text, "10%");
    char buf[64];
    params_describe_default(&tr_specs[0], buf, sizeof buf);
    CU_ASSERT_STRING_EQUAL(buf, "default 10%");
    cJSON_Delete(obj);
    errlist_free(&errs);
    arena_free(a);
    registry_free(&r);
}

static int
tb_native(kiln_exec *ctx, const void *params, void *const *in, void **out,
          kiln_error *err)
{
    (void)ctx;
    (void)params;
    (void)err;
    *out = in[0];
    return KILN_OK;
}

static int
tb_native_reduced(kiln_exec *ctx, const void *params, const kiln_reduction *r,
                  void *const *in, void **out, kiln_error *err)
{
    (void)r;
    return tb_native(ctx, params, in, out, err);
}

static int
tb_probe(VipsSource *src, kiln_image_info *info, kiln_error *err)
{
    (void)src;
    (void)info;
    (void)err;
    return KILN_OK;
}

static int
tb_decode(kiln_exec *ctx, VipsSource *src, const kiln_decode_opts *o,
          void **image, kiln_error *err)
{
    (void)ctx;
    (void)src;
    (void)o;
    (void)image;
    (void)err;
    return KILN_OK;
}

static int
tb_encode(kiln_exec *ctx, void *image, const kiln_encode_opts *o, VipsTarget *t,
          kiln_error *err)
{
    (void)ctx;
    (void)image;
    (void)o;
    (void)t;
    (void)err;
    return KILN_OK;
}

static void
tb_shape(void *image, kiln_shape *out)
{
    (void)image;
    (void)out;
}

static int
tb_to_vips(void *image, VipsImage **out, kiln_error *err)
{
    (void)image;
    (void)out;
    (void)err;
    return KILN_OK;
}

static int
tb_from_vips(VipsImage *in, void **image, kiln_error *err)
{
    (void)in;
    (void)image;
    (void)err;
    return KILN_OK;
}

static void *
tb_ref(void *image)
{
    return image;
}

static void
tb_unref(void *image)
{
    (void)image;
}

/* Pixel backends: what a backend must provide, the names it may take,
 * which implementation an op runs with on each (its own, else libvips'),
 * and which function each kind of implementation must set. */
static void
test_registry_backends(void)
{
    static const char *const fmts[] = {"png", NULL};
    registry r = {.check_length = dsl_lex_length};
    kiln_error err;
    char msg[1024];
    kiln_backend be = {.size = sizeof be,
                       .name = "tb",
                       .read_formats = fmts,
                       .write_formats = fmts,
                       .probe = tb_probe,
                       .decode = tb_decode,
                       .encode = tb_encode,
                       .shape = tb_shape,
                       .to_vips = tb_to_vips,
                       .from_vips = tb_from_vips,
                       .ref = tb_ref,
                       .unref = tb_unref};
    CU_ASSERT_FALSE(registry_has_backend(&r, "tb"));
    /* "vips" is the built-in backend-vips' registration, not a given. */
    CU_ASSERT_FALSE(registry_has_backend(&r, "vips"));
    err_clear(&err);
    CU_ASSERT_EQUAL(registry_add_backend(&r, NULL, &be, &err), KILN_OK);
    CU_ASSERT_TRUE(registry_has_backend(&r, "tb"));
    CU_ASSERT_PTR_NOT_NULL(registry_find_backend(&r, "tb"));
    /* Run through the SDK until an executor of whole graphs is set. */
    CU_ASSERT_FALSE(registry_find_backend(&r, "tb")->runs_graphs);
    CU_ASSERT_FALSE(registry_set_runs_graphs(&r, "gone"));
    CU_ASSERT_TRUE(registry_set_runs_graphs(&r, "tb"));
    CU_ASSERT_TRUE(registry_find_backend(&r, "tb")->runs_graphs);
    /* Twice, the built-in's name from another plugin, a missing
     * function, no size. */
    CU_ASSERT_EQUAL(registry_add_backend(&r, NULL, &be, &err), KILN_EEXIST);
    kiln_backend bad = be;
    bad.name = "vips";
    kiln_plugin outsider = {.name = "third-party"};
    CU_ASSERT_EQUAL(registry_add_backend(&r, NULL, &bad, &err), KILN_EEXIST);
    CU_ASSERT_EQUAL(registry_add_backend(&r, &outsider, &bad, &err),
                    KILN_EEXIST);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "built-in"));
    CU_ASSERT_FALSE(registry_has_backend(&r, "vips"));
    kiln_plugin builtin = {.name = "backend-vips", .builtin = true};
    CU_ASSERT_EQUAL(registry_add_backend(&r, &builtin, &bad, &err), KILN_OK);
    CU_ASSERT_TRUE(registry_has_backend(&r, "vips"));
    CU_ASSERT_EQUAL(registry_add_backend(&r, &builtin, &bad, &err),
                    KILN_EEXIST);
    bad = be;
    bad.name = "tb2";
    bad.from_vips = NULL;
    CU_ASSERT_EQUAL(registry_add_backend(&r, NULL, &bad, &err), KILN_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "from_vips"));
    bad = be;
    bad.name = "Bad Name";
    CU_ASSERT_EQUAL(registry_add_backend(&r, NULL, &bad, &err), KILN_EINVAL);
    bad = be;
    bad.size = 0;
    CU_ASSERT_EQUAL(registry_add_backend(&r, NULL, &bad, &err), KILN_EABI);
    /* Implementations: libvips' needs execute, any other execute_native
     * and nothing else. */
    CU_ASSERT_EQUAL(tr_add(&r, tr_op("a", tr_specs, 1), msg, sizeof msg),
                    KILN_OK);
    CU_ASSERT_EQUAL(tr_add(&r, tr_op("b", tr_specs, 1), msg, sizeof msg),
                    KILN_OK);
    CU_ASSERT_EQUAL(tr_add(&r, tr_op("c", tr_specs, 1), msg, sizeof msg),
                    KILN_OK);
    kiln_op_impl av = {
        .size = sizeof av, .op = "a", .backend = "vips", .execute = tr_execute};
    kiln_op_impl at = {.size = sizeof at,
                       .op = "a",
                       .backend = "tb",
                       .execute_native = tb_native,
                       .execute_native_reduced = tb_native_reduced};
    kiln_op_impl bv = av;
    bv.op = "b";
    kiln_op_impl ct = at;
    ct.op = "c";
    CU_ASSERT_EQUAL(registry_add_op_impl(&r, NULL, &av, &err), KILN_OK);
    CU_ASSERT_EQUAL(registry_add_op_impl(&r, NULL, &at, &err), KILN_OK);
    CU_ASSERT_EQUAL(registry_add_op_impl(&r, NULL, &bv, &err), KILN_OK);
    CU_ASSERT_EQUAL(registry_add_op_impl(&r, NULL, &ct, &err), KILN_OK);
    kiln_op_impl wrong = bv;
    wrong.execute_native = tb_native; /* both */
    wrong.backend = "tb";
    CU_ASSERT_EQUAL(registry_add_op_impl(&r, NULL, &wrong, &err), KILN_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "execute_native"));
    wrong = ct;
    wrong.backend = "vips"; /* native only, on libvips */
    CU_ASSERT_EQUAL(registry_add_op_impl(&r, NULL, &wrong, &err), KILN_EINVAL);
    /* 2.1's execute_native_reduced is a native backend's, never libvips'
     * (which has execute_reduced). */
    wrong = bv;
    wrong.op = "c";
    wrong.execute_native_reduced = tb_native_reduced;
    CU_ASSERT_EQUAL(registry_add_op_impl(&r, NULL, &wrong, &err), KILN_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "\"vips\" implementation"));
    const reg_op *a = registry_find_op(&r, "a");
    const reg_op *b = registry_find_op(&r, "b");
    const reg_op *c = registry_find_op(&r, "c");
    /* a: its own on each; b: libvips' on tb too; c: nothing on libvips,
     * its own on tb; nothing on a backend that is not loaded. */
    CU_ASSERT_STRING_EQUAL(registry_impl_for(&r, a, "tb")->impl.backend, "tb");
    CU_ASSERT_STRING_EQUAL(registry_impl_for(&r, a, "vips")->impl.backend,
                           "vips");
    CU_ASSERT_STRING_EQUAL(registry_impl_for(&r, b, "tb")->impl.backend,
                           "vips");
    CU_ASSERT_PTR_NULL(registry_impl_for(&r, c, "vips"));
    CU_ASSERT_STRING_EQUAL(registry_impl_for(&r, c, "tb")->impl.backend, "tb");
    CU_ASSERT_PTR_NULL(registry_impl_for(&r, b, "gone"));
    registry_free(&r);
}

int
test_registry_register(void)
{
    CU_pSuite s = CU_add_suite("registry", NULL, NULL);
    if (s == NULL) {
        return 1;
    }
    CU_add_test(s, "definitions and implementations", test_registry_impls);
    CU_add_test(s, "spec entries by their own size", test_registry_spec_sizes);
    CU_add_test(s, "length defaults", test_registry_length_default);
    CU_add_test(s, "pixel backends", test_registry_backends);
    return 0;
}
