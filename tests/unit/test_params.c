/*
 * Host parameter parsing: every kind, defaults, ranges, numeric strings,
 * one-of groups, aliases, and the exact text of each error.
 */
#include <CUnit/CUnit.h>
#include <string.h>

#include "../../core/kiln.h"

int test_params_register(void);

typedef struct tp_params {
    double level;
    double degrees;
    kiln_length width;
    kiln_length height;
    kiln_length xoffset;
    kiln_gravity gravity;
    int mode;
    kiln_color color;
    const char *source;
    bool fit;
} tp_params;

static const char *const tp_modes[] = {"box", "stretch", "cropbox", NULL};

static const kiln_param_spec tp_specs[] = {
    KILN_P_NUMBER(tp_params, level, -255, 255, 0, "level",
                  .flags = KILN_PARAM_REQUIRED | KILN_PARAM_INTEGER),
    KILN_P_NUMBER(tp_params, degrees, 0, 360, 0, "angle", .max_decimals = 2),
    KILN_P_LENGTH(tp_params, width, KILN_AXIS_WIDTH, KILN_UNITS_SIZE, "w",
                  .flags = KILN_PARAM_ONE_OF),
    KILN_P_LENGTH(tp_params, height, KILN_AXIS_HEIGHT, KILN_UNITS_SIZE, "h",
                  .flags = KILN_PARAM_ONE_OF),
    KILN_P_LENGTH(tp_params, xoffset, KILN_AXIS_X, KILN_UNITS_OFFSET, "x"),
    KILN_P_GRAVITY(tp_params, gravity, KILN_GRAVITY_NORTHWEST, "g"),
    KILN_P_ENUM(tp_params, mode, tp_modes, 1, "mode"),
    KILN_P_COLOR(tp_params, color, "#ffffff", "colour"),
    KILN_P_STRING(tp_params, source, NULL, "src", .alias = "Source"),
    KILN_P_BOOL(tp_params, fit, true, "fit"),
};

typedef struct parsed {
    arena *a;
    errlist errs;
    tp_params *p;
    int rc;
} parsed;

static parsed
parse(const char *json)
{
    parsed r = {arena_new(), {0}, NULL, 0};
    cJSON *obj = cJSON_Parse(json);
    CU_ASSERT_PTR_NOT_NULL_FATAL(obj);
    static const char *const skip[] = {"type", NULL};
    r.rc = params_parse(r.a, tp_specs, KILN_N_ELEMENTS(tp_specs),
                        sizeof(tp_params), obj, "jobs[0].transformations[1]",
                        skip, (void **)&r.p, &r.errs);
    cJSON_Delete(obj);
    return r;
}

static void
done(parsed *r)
{
    errlist_free(&r->errs);
    arena_free(r->a);
}

/* Asserts error i reads "path: message". */
static void
expect(parsed *r, size_t i, const char *want)
{
    CU_ASSERT_FATAL(r->errs.n > i);
    char got[1200];
    err_format(&r->errs.items[i].e, got, sizeof got);
    if (strcmp(got, want) != 0) {
        fprintf(stderr, "\n  got:  %s\n  want: %s\n", got, want);
    }
    CU_ASSERT_STRING_EQUAL(got, want);
}

static void
test_defaults_and_values(void)
{
    parsed r = parse("{\"type\":\"x\",\"level\":\"-20\",\"width\":\"50%\","
                     "\"xoffset\":-3,\"gravity\":\"middle\","
                     "\"Source\":\"/a.png\",\"degrees\":\"90.25\"}");
    CU_ASSERT_EQUAL(r.rc, KILN_OK);
    CU_ASSERT_EQUAL(r.errs.n, 0);
    CU_ASSERT_DOUBLE_EQUAL(r.p->level, -20, 0);
    CU_ASSERT_DOUBLE_EQUAL(r.p->degrees, 90.25, 1e-12);
    CU_ASSERT_TRUE(r.p->width.is_set);
    CU_ASSERT_EQUAL(r.p->width.unit, KILN_UNIT_PERCENT);
    CU_ASSERT_FALSE(r.p->height.is_set);
    CU_ASSERT_EQUAL(r.p->xoffset.px, -3);
    CU_ASSERT_EQUAL(r.p->gravity, KILN_GRAVITY_CENTER);
    CU_ASSERT_EQUAL(r.p->mode, 1);
    CU_ASSERT_EQUAL(r.p->color.r, 255);
    CU_ASSERT_FALSE(r.p->color.is_set);
    CU_ASSERT_STRING_EQUAL(r.p->source, "/a.png");
    CU_ASSERT_TRUE(r.p->fit);
    done(&r);
}

static void
test_errors(void)
{
    parsed r = parse("{\"type\":\"x\",\"levle\":1,\"width\":0,"
                     "\"degrees\":45.123,\"gravity\":\"centre\","
                     "\"mode\":\"boxx\",\"fit\":\"yes\"}");
    CU_ASSERT_EQUAL(r.rc, KILN_EINVAL);
    expect(&r, 0,
           "jobs[0].transformations[1].levle: unknown parameter "
           "\"levle\" (did you mean \"level\"?)");
    expect(&r, 1,
           "jobs[0].transformations[1].level: missing required "
           "parameter \"level\"");
    expect(&r, 2,
           "jobs[0].transformations[1].degrees: 45.123 has 3 "
           "decimals (expected at most 2)");
    expect(&r, 3,
           "jobs[0].transformations[1].width: size 0 is out of "
           "range (expected 1..65535 px)");
    expect(&r, 4,
           "jobs[0].transformations[1].gravity: unknown gravity "
           "\"centre\" (did you mean \"center\"?) (expected one of: "
           "northwest, north, northeast, west, center, east, "
           "southwest, south, southeast, middle)");
    expect(&r, 5,
           "jobs[0].transformations[1].mode: unknown value \"boxx\" "
           "(did you mean \"box\"?) (expected one of: box, stretch, "
           "cropbox)");
    expect(&r, 6,
           "jobs[0].transformations[1].fit: expected true or false, "
           "got \"yes\"");
    CU_ASSERT_EQUAL(r.errs.n, 7);
    done(&r);
}

static void
test_ranges_and_one_of(void)
{
    parsed r = parse("{\"level\":300.5,\"xoffset\":\"5w\"}");
    expect(&r, 0,
           "jobs[0].transformations[1].level: 300.5 is not a whole "
           "number");
    expect(&r, 1,
           "jobs[0].transformations[1].xoffset: unit \"w\" is not "
           "allowed here in \"5w\" (expected px or %)");
    expect(&r, 2,
           "jobs[0].transformations[1]: one of width or height is "
           "required");
    CU_ASSERT_EQUAL(r.errs.n, 3);
    /* The caret marks the unit inside the value's text. */
    CU_ASSERT_EQUAL(r.errs.items[1].e.offset, 1);
    CU_ASSERT_EQUAL(r.errs.items[1].e.length, 1);
    CU_ASSERT_STRING_EQUAL(r.errs.items[1].value, "\"5w\"");
    done(&r);
    r = parse("{\"level\":256,\"height\":\"-5%\"}");
    expect(&r, 0,
           "jobs[0].transformations[1].level: 256 is out of range "
           "(expected -255..255)");
    expect(&r, 1,
           "jobs[0].transformations[1].height: size \"-5%\" is "
           "negative (expected 1..65535 px or a positive "
           "percentage)");
    done(&r);
}

static void
test_bind(void)
{
    parsed r = parse("{\"level\":1,\"width\":\"50h\",\"xoffset\":\"10%\"}");
    CU_ASSERT_EQUAL_FATAL(r.rc, KILN_OK);
    kiln_shape in = {97, 61, 3, false};
    CU_ASSERT_EQUAL(params_bind(tp_specs, KILN_N_ELEMENTS(tp_specs), r.p, &in,
                                "p", &r.errs),
                    KILN_OK);
    CU_ASSERT_EQUAL(r.p->width.px, 31);   /* 30.5 of the height */
    CU_ASSERT_EQUAL(r.p->xoffset.px, 10); /* 9.7 */
    char buf[64];
    params_format_value(&tp_specs[2], r.p, false, buf, sizeof buf);
    CU_ASSERT_STRING_EQUAL(buf, "50% of in.h");
    params_format_value(&tp_specs[2], r.p, true, buf, sizeof buf);
    CU_ASSERT_STRING_EQUAL(buf, "31 (50h)");
    done(&r);
}

int
test_params_register(void)
{
    CU_pSuite s = CU_add_suite("params", NULL, NULL);
    if (s == NULL) {
        return 1;
    }
    CU_add_test(s, "defaults and values", test_defaults_and_values);
    CU_add_test(s, "error texts", test_errors);
    CU_add_test(s, "ranges and one-of", test_ranges_and_one_of);
    CU_add_test(s, "bind and format", test_bind);
    return CU_get_error() == CUE_SUCCESS ? 0 : 1;
}
