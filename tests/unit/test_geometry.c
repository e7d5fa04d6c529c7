/*
 * Geometry tests: placement by gravity (ImageMagick's convention), length
 * units and rounding, and the derived dimension, as ops.md sections 2 and
 * 3 state them.
 */
#include <CUnit/CUnit.h>
#include <string.h>

#include "../../core/kiln.h"

int test_geometry_register(void);

static kiln_length
len(kiln_unit unit, double v, const char *text)
{
    kiln_length l = {true, unit, v, 0, text};
    if (unit == KILN_UNIT_PX) {
        l.px = (int)geom_round(v);
    }
    return l;
}

static void
test_round(void)
{
    CU_ASSERT_EQUAL(geom_round(2.5), 3);
    CU_ASSERT_EQUAL(geom_round(-2.5), -3);
    CU_ASSERT_EQUAL(geom_round(2.4999), 2);
    CU_ASSERT_EQUAL(geom_round(0.5), 1);
    CU_ASSERT_EQUAL(geom_round(-0.5), -1);
}

static void
test_place_all(void)
{
    /* Canvas 100x61, region 31x20, offsets 7, 5: the middle column is
     * 100/2 - 31/2 = 35 (ImageMagick), not (100 - 31)/2 = 34. */
    struct {
        kiln_gravity g;
        int x, y;
    } want[] = {
        {KILN_GRAVITY_NORTHWEST, 7, 5},   {KILN_GRAVITY_NORTH, 42, 5},
        {KILN_GRAVITY_NORTHEAST, 62, 5},  {KILN_GRAVITY_WEST, 7, 25},
        {KILN_GRAVITY_CENTER, 42, 25},    {KILN_GRAVITY_EAST, 62, 25},
        {KILN_GRAVITY_SOUTHWEST, 7, 36},  {KILN_GRAVITY_SOUTH, 42, 36},
        {KILN_GRAVITY_SOUTHEAST, 62, 36},
    };
    for (size_t i = 0; i < 9; i++) {
        int x, y;
        geom_place(want[i].g, 100, 61, 31, 20, 7, 5, &x, &y);
        CU_ASSERT_EQUAL(x, want[i].x);
        CU_ASSERT_EQUAL(y, want[i].y);
    }
}

static void
test_place_truncates_toward_zero(void)
{
    int x, y;
    /* 10/2 - 13/2 = -1 and 11/2 - 14/2 = -2, as convert places them. */
    geom_place(KILN_GRAVITY_CENTER, 10, 11, 13, 14, 0, 0, &x, &y);
    CU_ASSERT_EQUAL(x, -1);
    CU_ASSERT_EQUAL(y, -2);
    /* Negative offsets move outward from an edge gravity. */
    geom_place(KILN_GRAVITY_SOUTHEAST, 100, 50, 10, 10, -3, -4, &x, &y);
    CU_ASSERT_EQUAL(x, 93);
    CU_ASSERT_EQUAL(y, 44);
}

static void
test_resolve_units(void)
{
    int px = 0;
    kiln_error e;
    kiln_length l = len(KILN_UNIT_PERCENT, 50, "50%");
    CU_ASSERT_EQUAL(geom_resolve_length(&l, KILN_AXIS_WIDTH, 97, 61, &px, &e),
                    KILN_OK);
    CU_ASSERT_EQUAL(px, 49); /* 48.5 rounds away from zero */
    CU_ASSERT_EQUAL(geom_resolve_length(&l, KILN_AXIS_HEIGHT, 97, 61, &px, &e),
                    KILN_OK);
    CU_ASSERT_EQUAL(px, 31); /* 30.5 */
    l = len(KILN_UNIT_W, 50, "50w");
    CU_ASSERT_EQUAL(geom_resolve_length(&l, KILN_AXIS_HEIGHT, 97, 61, &px, &e),
                    KILN_OK);
    CU_ASSERT_EQUAL(px, 49);
    l = len(KILN_UNIT_H, 50, "50h");
    CU_ASSERT_EQUAL(geom_resolve_length(&l, KILN_AXIS_WIDTH, 97, 61, &px, &e),
                    KILN_OK);
    CU_ASSERT_EQUAL(px, 31);
    l = len(KILN_UNIT_PERCENT, -10, "-10%");
    CU_ASSERT_EQUAL(geom_resolve_length(&l, KILN_AXIS_X, 97, 61, &px, &e),
                    KILN_OK);
    CU_ASSERT_EQUAL(px, -10); /* -9.7 */
}

static void
test_resolve_errors(void)
{
    int px = 0;
    kiln_error e;
    err_clear(&e);
    kiln_length l = len(KILN_UNIT_PERCENT, 0.4, "0.4%");
    CU_ASSERT_EQUAL(geom_resolve_length(&l, KILN_AXIS_WIDTH, 100, 50, &px, &e),
                    KILN_EINVAL);
    CU_ASSERT_STRING_EQUAL(e.message, "\"0.4%\" of an input width of 100 px "
                                      "is 0 px, below 1 px");
    l = len(KILN_UNIT_PERCENT, 2000, "2000%");
    CU_ASSERT_EQUAL(
        geom_resolve_length(&l, KILN_AXIS_HEIGHT, 100, 5000, &px, &e),
        KILN_ELIMIT);
    CU_ASSERT_STRING_EQUAL(e.message, "\"2000%\" resolves to 100000 px, "
                                      "above the maximum of 65535 px");
}

static void
test_derive(void)
{
    int w = 0, h = 0;
    kiln_error e;
    err_clear(&e);
    kiln_length W = len(KILN_UNIT_PX, 100, "100"), none = {0};
    CU_ASSERT_EQUAL(geom_derive_size(&W, &none, 97, 61, &w, &h, &e), KILN_OK);
    CU_ASSERT_EQUAL(w, 100);
    CU_ASSERT_EQUAL(h, 63); /* 62.886 */
    kiln_length H = len(KILN_UNIT_PX, 10, "10");
    CU_ASSERT_EQUAL(geom_derive_size(&none, &H, 97, 61, &w, &h, &e), KILN_OK);
    CU_ASSERT_EQUAL(w, 16); /* 15.9 */
    CU_ASSERT_EQUAL(h, 10);
    CU_ASSERT_EQUAL(geom_derive_size(&W, &H, 97, 61, &w, &h, &e), KILN_OK);
    CU_ASSERT_EQUAL(w, 100);
    CU_ASSERT_EQUAL(h, 10);
    CU_ASSERT_EQUAL(geom_derive_size(&none, &none, 97, 61, &w, &h, &e),
                    KILN_EINVAL);
    CU_ASSERT_STRING_EQUAL(e.message, "one of width or height is required");
    kiln_length tiny = len(KILN_UNIT_PX, 1, "1");
    CU_ASSERT_EQUAL(geom_derive_size(&tiny, &none, 1000, 10, &w, &h, &e),
                    KILN_EINVAL);
    CU_ASSERT_STRING_EQUAL(e.path, "width");
    CU_ASSERT_STRING_EQUAL(e.message, "the derived height of 0 px is "
                                      "outside 1..65535 (aspect 1000x10)");
}

int
test_geometry_register(void)
{
    CU_pSuite s = CU_add_suite("geometry", NULL, NULL);
    if (s == NULL) {
        return 1;
    }
    CU_add_test(s, "round half away from zero", test_round);
    CU_add_test(s, "place: nine gravities", test_place_all);
    CU_add_test(s, "place: truncation, negative offsets",
                test_place_truncates_toward_zero);
    CU_add_test(s, "resolve units", test_resolve_units);
    CU_add_test(s, "resolve errors", test_resolve_errors);
    CU_add_test(s, "derive size", test_derive);
    return CU_get_error() == CUE_SUCCESS ? 0 : 1;
}
