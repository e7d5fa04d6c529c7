/*
 * Unit tests of the value lexer (dsl/value_lexer.re): every accepted form
 * of lengths, numbers and colours, and every error message with the
 * offset and length of the part it blames. tests/unit/main.c runs the
 * suite through test_value_lexer_register().
 */
#include "../../dsl/value_lexer.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <CUnit/CUnit.h>

/* Checks with the line of the caller and a message saying which input
 * failed and how, since CUnit alone prints only the condition. */
#define EXPECT(cond, ...) expect((cond), line, __VA_ARGS__)

#define LENGTH_OK(text, units, unit, value)                                    \
    check_length_ok(__LINE__, (text), (units), (unit), (value))
#define LENGTH_FAIL(text, units, message, offset, length)                      \
    check_length_fail(__LINE__, (text), (units), (message), (offset), (length))
#define NUMBER_OK(text, value, n_decimals)                                     \
    check_number_ok(__LINE__, (text), (value), (n_decimals))
#define NUMBER_FAIL(text, offset, length)                                      \
    check_number_fail(__LINE__, (text), (offset), (length))
#define COLOR_OK(text, r, g, b, a)                                             \
    check_color_ok(__LINE__, (text), (r), (g), (b), (a))
#define COLOR_FAIL(text, message, offset, length)                              \
    check_color_fail(__LINE__, (text), (message), (offset), (length))

/* The generic texts of two messages. */
#define LENGTH_EXPECTED                                                        \
    "expected a length like 120, \"120px\", \"50%\", \"50w\" or \"50h\", got "
#define COLOR_EXPECTED                                                         \
    " (expected #rrggbb, #rgb, rgb(r, g, b) or a colour name such as "         \
    "\"white\")"

int test_value_lexer_register(void);

static void expect(bool cond, int line, const char *fmt, ...) KILN_PRINTF(3, 4);

/* Records one assertion at `line` of this file. */
static void
expect(bool cond, int line, const char *fmt, ...)
{
    char what[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    CU_assertImplementation(cond ? CU_TRUE : CU_FALSE, (unsigned)line, what,
                            __FILE__, "", CU_FALSE);
}

/* An error whose fields are all recognisably unset. */
static void
error_init(kiln_error *err)
{
    memset(err, 0, sizeof(*err));
    err->offset = -7;
    err->length = -7;
    strcpy(err->path, "kept.path");
    strcpy(err->message, "unset");
}

/* Checks a failure's code, message, offset and length, and that the path
 * was left alone. */
static void
check_error(int line, const char *text, int rc, const kiln_error *err,
            const char *message, int offset, int length)
{
    EXPECT(rc == KILN_EINVAL, "%s: rc %d, expected KILN_EINVAL", text, rc);
    EXPECT(err->code == KILN_EINVAL, "%s: code %d", text, err->code);
    EXPECT(strcmp(err->message, message) == 0,
           "%s: message\n    got      [%s]\n    expected [%s]", text,
           err->message, message);
    EXPECT(err->offset == offset, "%s: offset %d, expected %d", text,
           err->offset, offset);
    EXPECT(err->length == length, "%s: length %d, expected %d", text,
           err->length, length);
    EXPECT(strcmp(err->path, "kept.path") == 0, "%s: path changed to %s", text,
           err->path);
}

static void
check_length_ok(int line, const char *text, unsigned units, kiln_unit unit,
                double value)
{
    kiln_length len = {.px = 99};
    kiln_error err;
    int rc;

    error_init(&err);
    rc = dsl_lex_length(text, units, &len, &err);
    EXPECT(rc == KILN_OK, "%s: rc %d (%s)", text, rc, err.message);
    EXPECT(len.is_set, "%s: is_set", text);
    EXPECT(len.unit == unit, "%s: unit %d, expected %d", text, len.unit, unit);
    EXPECT(len.value == value, "%s: value %.17g, expected %.17g", text,
           len.value, value);
    EXPECT(len.px == 0, "%s: px %d", text, len.px);
    EXPECT(len.text == text, "%s: text is not the borrowed pointer", text);
    EXPECT(strcmp(err.message, "unset") == 0, "%s: err touched", text);
}

static void
check_length_fail(int line, const char *text, unsigned units,
                  const char *message, int offset, int length)
{
    kiln_length len = {.is_set = false, .value = 42.0};
    kiln_error err;
    int rc;

    error_init(&err);
    rc = dsl_lex_length(text, units, &len, &err);
    check_error(line, text, rc, &err, message, offset, length);
    EXPECT(!len.is_set && len.value == 42.0 && len.text == NULL,
           "%s: output touched on failure", text);
}

static void
check_number_ok(int line, const char *text, double value, int n_decimals)
{
    double v = -12345.0;
    int n = -1;
    kiln_error err;
    int rc;

    error_init(&err);
    rc = dsl_lex_number(text, &v, &n, &err);
    EXPECT(rc == KILN_OK, "%s: rc %d (%s)", text, rc, err.message);
    EXPECT(v == value, "%s: value %.17g, expected %.17g", text, v, value);
    EXPECT(n == n_decimals, "%s: n_decimals %d, expected %d", text, n,
           n_decimals);
}

static void
check_number_fail(int line, const char *text, int offset, int length)
{
    char message[512];
    double v = -12345.0;
    int n = -1;
    kiln_error err;
    int rc;

    snprintf(message, sizeof(message), "expected a number, got \"%s\"", text);
    error_init(&err);
    rc = dsl_lex_number(text, &v, &n, &err);
    check_error(line, text, rc, &err, message, offset, length);
    EXPECT(v == -12345.0 && n == -1, "%s: output touched on failure", text);
}

static void
check_color_ok(int line, const char *text, int r, int g, int b, int a)
{
    kiln_color c = {.is_set = false};
    kiln_error err;
    int rc;

    error_init(&err);
    rc = dsl_lex_color(text, &c, &err);
    EXPECT(rc == KILN_OK, "%s: rc %d (%s)", text, rc, err.message);
    EXPECT(c.is_set, "%s: is_set", text);
    EXPECT(c.r == r && c.g == g && c.b == b && c.a == a,
           "%s: got %d,%d,%d,%d, expected %d,%d,%d,%d", text, c.r, c.g, c.b,
           c.a, r, g, b, a);
}

static void
check_color_fail(int line, const char *text, const char *message, int offset,
                 int length)
{
    kiln_color c = {.is_set = false, .r = 1, .g = 2, .b = 3, .a = 4};
    kiln_error err;
    int rc;

    error_init(&err);
    rc = dsl_lex_color(text, &c, &err);
    check_error(line, text, rc, &err, message, offset, length);
    EXPECT(!c.is_set && c.r == 1 && c.g == 2 && c.b == 3 && c.a == 4,
           "%s: output touched on failure", text);
}

/* ------------------------------------------------------------ lengths */

static void
test_length_forms(void)
{
    LENGTH_OK("120", KILN_UNITS_SIZE, KILN_UNIT_PX, 120.0);
    LENGTH_OK("120px", KILN_UNITS_SIZE, KILN_UNIT_PX, 120.0);
    LENGTH_OK("50%", KILN_UNITS_SIZE, KILN_UNIT_PERCENT, 50.0);
    LENGTH_OK("50w", KILN_UNITS_SIZE, KILN_UNIT_W, 50.0);
    LENGTH_OK("50h", KILN_UNITS_SIZE, KILN_UNIT_H, 50.0);
    LENGTH_OK("-10", KILN_UNITS_OFFSET, KILN_UNIT_PX, -10.0);
    LENGTH_OK("-10px", KILN_UNITS_OFFSET, KILN_UNIT_PX, -10.0);
    LENGTH_OK("-25%", KILN_UNITS_OFFSET, KILN_UNIT_PERCENT, -25.0);
    LENGTH_OK("12.5%", KILN_UNITS_SIZE, KILN_UNIT_PERCENT, 12.5);
    LENGTH_OK("0", KILN_UNITS_SIZE, KILN_UNIT_PX, 0.0);
    LENGTH_OK("007", KILN_UNITS_SIZE, KILN_UNIT_PX, 7.0);
    LENGTH_OK("0.5px", KILN_UNITS_SIZE, KILN_UNIT_PX, 0.5);
    LENGTH_OK("-0.25h", KILN_UNITS_SIZE, KILN_UNIT_H, -0.25);
    LENGTH_OK("33.333w", KILN_UNITS_SIZE, KILN_UNIT_W, 33.333);
    LENGTH_OK("65535", KILN_UNIT_PX, KILN_UNIT_PX, 65535.0);
    LENGTH_OK("50%", KILN_UNIT_PERCENT, KILN_UNIT_PERCENT, 50.0);
}

static void
test_length_unknown_unit(void)
{
    LENGTH_FAIL("12pxx", KILN_UNITS_SIZE,
                "unknown unit \"pxx\" in \"12pxx\" (expected px, %, w or h)", 2,
                3);
    /* The list of units is the full one even where fewer are allowed. */
    LENGTH_FAIL("12pxx", KILN_UNITS_OFFSET,
                "unknown unit \"pxx\" in \"12pxx\" (expected px, %, w or h)", 2,
                3);
    LENGTH_FAIL("12PX", KILN_UNITS_SIZE,
                "unknown unit \"PX\" in \"12PX\" (expected px, %, w or h)", 2,
                2);
    LENGTH_FAIL("10em", KILN_UNITS_SIZE,
                "unknown unit \"em\" in \"10em\" (expected px, %, w or h)", 2,
                2);
    LENGTH_FAIL("1.5e3", KILN_UNITS_SIZE,
                "unknown unit \"e\" in \"1.5e3\" (expected px, %, w or h)", 3,
                1);
    LENGTH_FAIL("50%x", KILN_UNITS_SIZE,
                "unknown unit \"%x\" in \"50%x\" (expected px, %, w or h)", 2,
                2);
    LENGTH_FAIL("12pt ", KILN_UNITS_SIZE,
                "unknown unit \"pt\" in \"12pt \" (expected px, %, w or h)", 2,
                2);
    /* UTF-8 units are quoted as they are; offsets count bytes. */
    LENGTH_FAIL("12\xc2\xb5m", KILN_UNITS_SIZE,
                "unknown unit \"\xc2\xb5m\" in \"12\xc2\xb5m\" (expected px, "
                "%, w or h)",
                2, 3);
}

static void
test_length_unit_not_allowed(void)
{
    LENGTH_FAIL("50w", KILN_UNITS_OFFSET,
                "unit \"w\" is not allowed here in \"50w\" (expected px or %)",
                2, 1);
    LENGTH_FAIL("-7.5h", KILN_UNITS_OFFSET,
                "unit \"h\" is not allowed here in \"-7.5h\" (expected px or "
                "%)",
                4, 1);
    LENGTH_FAIL("50h", KILN_UNIT_PX,
                "unit \"h\" is not allowed here in \"50h\" (expected px)", 2,
                1);
    LENGTH_FAIL("50%", KILN_UNIT_PX | KILN_UNIT_W | KILN_UNIT_H,
                "unit \"%\" is not allowed here in \"50%\" (expected px, w or "
                "h)",
                2, 1);
    LENGTH_FAIL("50px", KILN_UNIT_PERCENT,
                "unit \"px\" is not allowed here in \"50px\" (expected %)", 2,
                2);
    LENGTH_FAIL("50px", KILN_UNIT_W | KILN_UNIT_H,
                "unit \"px\" is not allowed here in \"50px\" (expected w or "
                "h)",
                2, 2);
    /* A bare number means px; the caret goes where the unit would be. */
    LENGTH_FAIL("50", KILN_UNIT_PERCENT,
                "a length without a unit is not allowed here in \"50\" "
                "(expected %)",
                2, 0);
}

static void
test_length_malformed(void)
{
    LENGTH_FAIL("", KILN_UNITS_SIZE, LENGTH_EXPECTED "\"\"", 0, 0);
    LENGTH_FAIL("abc", KILN_UNITS_SIZE, LENGTH_EXPECTED "\"abc\"", 0, 3);
    LENGTH_FAIL("px", KILN_UNITS_SIZE, LENGTH_EXPECTED "\"px\"", 0, 2);
    LENGTH_FAIL("%", KILN_UNITS_SIZE, LENGTH_EXPECTED "\"%\"", 0, 1);
    /* The bad part runs from the first bad byte to the end. */
    LENGTH_FAIL(" 12", KILN_UNITS_SIZE, LENGTH_EXPECTED "\" 12\"", 0, 3);
    LENGTH_FAIL("12 ", KILN_UNITS_SIZE, LENGTH_EXPECTED "\"12 \"", 2, 1);
    LENGTH_FAIL("12 px", KILN_UNITS_SIZE, LENGTH_EXPECTED "\"12 px\"", 2, 3);
    LENGTH_FAIL("12px ", KILN_UNITS_SIZE, LENGTH_EXPECTED "\"12px \"", 4, 1);
    LENGTH_FAIL("50%%", KILN_UNITS_SIZE,
                "unknown unit \"%%\" in \"50%%\" (expected px, %, w or h)", 2,
                2);
    LENGTH_FAIL("1.", KILN_UNITS_SIZE, LENGTH_EXPECTED "\"1.\"", 1, 1);
    LENGTH_FAIL(".5", KILN_UNITS_SIZE, LENGTH_EXPECTED "\".5\"", 0, 2);
    LENGTH_FAIL("1.5.3", KILN_UNITS_SIZE, LENGTH_EXPECTED "\"1.5.3\"", 3, 2);
    LENGTH_FAIL("--1", KILN_UNITS_SIZE, LENGTH_EXPECTED "\"--1\"", 1, 2);
    LENGTH_FAIL("-", KILN_UNITS_SIZE, LENGTH_EXPECTED "\"-\"", 1, 0);
    LENGTH_FAIL("-px", KILN_UNITS_SIZE, LENGTH_EXPECTED "\"-px\"", 1, 2);
    LENGTH_FAIL("+5", KILN_UNITS_SIZE, LENGTH_EXPECTED "\"+5\"", 0, 2);
    LENGTH_FAIL("1,5", KILN_UNITS_SIZE, LENGTH_EXPECTED "\"1,5\"", 1, 2);
    LENGTH_FAIL("12-", KILN_UNITS_SIZE, LENGTH_EXPECTED "\"12-\"", 2, 1);
}

static void
test_length_quoting(void)
{
    char long_text[1001];
    kiln_length len = {.is_set = false};
    kiln_error err;
    size_t n;
    int line = __LINE__;

    /* Quotes, backslashes and control bytes are escaped in messages. */
    LENGTH_FAIL("1\"x", KILN_UNITS_SIZE, LENGTH_EXPECTED "\"1\\\"x\"", 1, 2);
    LENGTH_FAIL("1\\", KILN_UNITS_SIZE, LENGTH_EXPECTED "\"1\\\\\"", 1, 1);
    LENGTH_FAIL("1\n", KILN_UNITS_SIZE, LENGTH_EXPECTED "\"1\\x0a\"", 1, 1);
    LENGTH_FAIL("\xff", KILN_UNITS_SIZE, LENGTH_EXPECTED "\"\\xff\"", 0, 1);
    LENGTH_FAIL("1\xc3", KILN_UNITS_SIZE,
                "unknown unit \"\\xc3\" in \"1\\xc3\" (expected px, %, w or "
                "h)",
                1, 1);

    /* A long text is cut with "..." and the offsets still cover it all. */
    memset(long_text, 'a', 1000);
    long_text[1000] = '\0';
    error_init(&err);
    EXPECT(dsl_lex_length(long_text, KILN_UNITS_SIZE, &len, &err) ==
               KILN_EINVAL,
           "long text accepted");
    n = strlen(err.message);
    EXPECT(strncmp(err.message, LENGTH_EXPECTED "\"aaa",
                   strlen(LENGTH_EXPECTED "\"aaa")) == 0,
           "long text: message [%s]", err.message);
    EXPECT(n > 4 && strcmp(err.message + n - 4, "...\"") == 0,
           "long text: message not cut with an ellipsis [%s]", err.message);
    EXPECT(n < 400, "long text: message of %zu bytes", n);
    EXPECT(err.offset == 0 && err.length == 1000,
           "long text: offset %d length %d", err.offset, err.length);

    /* A cut never splits a UTF-8 sequence. */
    for (size_t i = 0; i + 2 <= 1000; i += 2) {
        long_text[i] = (char)0xc3;
        long_text[i + 1] = (char)0xa9;
    }
    long_text[0] = '1';
    long_text[1] = 'x';
    error_init(&err);
    EXPECT(dsl_lex_length(long_text, KILN_UNITS_SIZE, &len, &err) ==
               KILN_EINVAL,
           "long unit accepted");
    n = strlen(err.message);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)err.message[i];

        if (c == 0xc3) {
            EXPECT(i + 1 < n && (unsigned char)err.message[i + 1] == 0xa9,
                   "split UTF-8 sequence at %zu", i);
        }
    }
    EXPECT(err.offset == 1 && err.length == 999,
           "long unit: offset %d length %d", err.offset, err.length);
}

/* ------------------------------------------------------------ numbers */

static void
test_number_forms(void)
{
    NUMBER_OK("750", 750.0, 0);
    NUMBER_OK("-1.5", -1.5, 1);
    NUMBER_OK("90.25", 90.25, 2);
    NUMBER_OK("0", 0.0, 0);
    NUMBER_OK("0.1", 0.1, 1);
    NUMBER_OK("0.001", 0.001, 3);
    NUMBER_OK("1.50", 1.5, 2);
    NUMBER_OK("007.0", 7.0, 1);
    NUMBER_OK("123456.789", 123456.789, 3);
    NUMBER_OK("359.99", 359.99, 2);
    NUMBER_OK("-255", -255.0, 0);
    NUMBER_OK("100000000000000000000", 1e20, 0);
    NUMBER_OK("9007199254740993", 9007199254740992.0, 0);
}

static void
test_number_precision(void)
{
    double v = 0.0;
    int n = 0;
    kiln_error err;
    int line = __LINE__;

    /* Beyond 15 significant digits the value is within an ulp or two. */
    error_init(&err);
    EXPECT(dsl_lex_number("3.14159265358979323846264338327950288", &v, &n,
                          &err) == KILN_OK,
           "long pi: %s", err.message);
    EXPECT(fabs(v - 3.14159265358979323846) < 1e-15, "long pi: %.17g", v);
    EXPECT(n == 35, "long pi: n_decimals %d", n);

    error_init(&err);
    EXPECT(dsl_lex_number("0.000000000000000000000000000001", &v, &n, &err) ==
               KILN_OK,
           "tiny: %s", err.message);
    EXPECT(fabs(v - 1e-30) < 1e-44, "tiny: %.17g", v);
    EXPECT(n == 30, "tiny: n_decimals %d", n);
}

static void
test_number_malformed(void)
{
    NUMBER_FAIL("1e3", 1, 2);
    NUMBER_FAIL("12a", 2, 1);
    NUMBER_FAIL("", 0, 0);
    NUMBER_FAIL("abc", 0, 3);
    NUMBER_FAIL(" 1", 0, 2);
    NUMBER_FAIL("1 ", 1, 1);
    NUMBER_FAIL("1.", 1, 1);
    NUMBER_FAIL(".5", 0, 2);
    NUMBER_FAIL("-", 1, 0);
    NUMBER_FAIL("--1", 1, 2);
    NUMBER_FAIL("+1", 0, 2);
    NUMBER_FAIL("12px", 2, 2);
    NUMBER_FAIL("50%", 2, 1);
    NUMBER_FAIL("0x10", 1, 3);
    NUMBER_FAIL("1,5", 1, 2);
    NUMBER_FAIL("inf", 0, 3);
    NUMBER_FAIL("nan", 0, 3);
}

/* ------------------------------------------------------------ colours */

static void
test_color_hex(void)
{
    COLOR_OK("#fff", 255, 255, 255, 255);
    COLOR_OK("#000", 0, 0, 0, 255);
    COLOR_OK("#F80", 255, 136, 0, 255);
    COLOR_OK("#f808", 255, 136, 0, 136);
    COLOR_OK("#ff8800", 255, 136, 0, 255);
    COLOR_OK("#FF8800", 255, 136, 0, 255);
    COLOR_OK("#aBcDeF", 0xab, 0xcd, 0xef, 255);
    COLOR_OK("#12345678", 0x12, 0x34, 0x56, 0x78);
    COLOR_OK("#ff880000", 255, 136, 0, 0);
}

static void
test_color_hex_malformed(void)
{
    COLOR_FAIL("#", "unknown colour \"#\"" COLOR_EXPECTED, 0, 1);
    COLOR_FAIL("#ff", "unknown colour \"#ff\"" COLOR_EXPECTED, 0, 3);
    COLOR_FAIL("#12345", "unknown colour \"#12345\"" COLOR_EXPECTED, 0, 6);
    COLOR_FAIL("#1234567", "unknown colour \"#1234567\"" COLOR_EXPECTED, 0, 8);
    COLOR_FAIL("#123456789", "unknown colour \"#123456789\"" COLOR_EXPECTED, 0,
               10);
    COLOR_FAIL("#ggg", "unknown colour \"#ggg\"" COLOR_EXPECTED, 0, 4);
    COLOR_FAIL("ff8800", "unknown colour \"ff8800\"" COLOR_EXPECTED, 0, 6);
    COLOR_FAIL("#fff ", "unknown colour \"#fff \"" COLOR_EXPECTED, 0, 5);
    COLOR_FAIL(" #fff", "unknown colour \" #fff\"" COLOR_EXPECTED, 0, 5);
}

static void
test_color_rgb(void)
{
    COLOR_OK("rgb(255, 128, 0)", 255, 128, 0, 255);
    COLOR_OK("rgb(0,0,0)", 0, 0, 0, 255);
    COLOR_OK("rgb( 1 ,2 , 3 )", 1, 2, 3, 255);
    COLOR_OK("rgb(\t1,\t2,\t3\t)", 1, 2, 3, 255);
    COLOR_OK("RGB(10, 20, 30)", 10, 20, 30, 255);
    COLOR_OK("Rgba(10, 20, 30, 1)", 10, 20, 30, 255);
    COLOR_OK("rgb(1.0, 2.00, 003)", 1, 2, 3, 255);
    COLOR_OK("rgb(-0, 0, 0)", 0, 0, 0, 255);
    COLOR_OK("rgba(10, 20, 30, 0.5)", 10, 20, 30, 128);
    COLOR_OK("rgba(0,0,0,0)", 0, 0, 0, 0);
    COLOR_OK("rgba(0, 0, 0, 1.0)", 0, 0, 0, 255);
    COLOR_OK("rgba(0, 0, 0, .25)", 0, 0, 0, 64);
    COLOR_OK("rgba(255, 255, 255, 0.1)", 255, 255, 255, 26);
}

static void
test_color_rgb_range(void)
{
    COLOR_FAIL("rgb(300, 0, 0)",
               "colour component 300 is out of range in \"rgb(300, 0, 0)\" "
               "(expected 0..255)",
               4, 3);
    COLOR_FAIL("rgb(0, -1, 0)",
               "colour component -1 is out of range in \"rgb(0, -1, 0)\" "
               "(expected 0..255)",
               7, 2);
    COLOR_FAIL("rgb(0, 0,  256 )",
               "colour component 256 is out of range in \"rgb(0, 0,  256 )\" "
               "(expected 0..255)",
               11, 3);
    COLOR_FAIL("rgb(255.5, 0, 0)",
               "colour component 255.5 is out of range in \"rgb(255.5, 0, "
               "0)\" (expected 0..255)",
               4, 5);
    COLOR_FAIL("rgb(1.5, 0, 0)",
               "colour component 1.5 is not an integer in \"rgb(1.5, 0, 0)\" "
               "(expected 0..255)",
               4, 3);
    COLOR_FAIL("rgba(0, 0, 0, 1.5)",
               "colour component 1.5 is out of range in \"rgba(0, 0, 0, "
               "1.5)\" (expected 0..1)",
               14, 3);
    COLOR_FAIL("rgba(0, 0, 0, -0.5)",
               "colour component -0.5 is out of range in \"rgba(0, 0, 0, "
               "-0.5)\" (expected 0..1)",
               14, 4);
    COLOR_FAIL("rgba(0, 0, 0, 255)",
               "colour component 255 is out of range in \"rgba(0, 0, 0, "
               "255)\" (expected 0..1)",
               14, 3);
    /* The first bad component is the one blamed. */
    COLOR_FAIL("rgb(0, 999, 999)",
               "colour component 999 is out of range in \"rgb(0, 999, 999)\" "
               "(expected 0..255)",
               7, 3);
}

static void
test_color_rgb_malformed(void)
{
    COLOR_FAIL("rgb(0, 0)", "unknown colour \"rgb(0, 0)\"" COLOR_EXPECTED, 0,
               9);
    COLOR_FAIL("rgb(0, 0, 0", "unknown colour \"rgb(0, 0, 0\"" COLOR_EXPECTED,
               0, 11);
    COLOR_FAIL("rgb(0, 0, 0) ",
               "unknown colour \"rgb(0, 0, 0) \"" COLOR_EXPECTED, 0, 13);
    COLOR_FAIL("rgb (0, 0, 0)",
               "unknown colour \"rgb (0, 0, 0)\"" COLOR_EXPECTED, 0, 13);
    COLOR_FAIL("rgba(0, 0, 0)",
               "unknown colour \"rgba(0, 0, 0)\"" COLOR_EXPECTED, 0, 13);
    COLOR_FAIL("rgb(0, 0, 0, 1)",
               "unknown colour \"rgb(0, 0, 0, 1)\"" COLOR_EXPECTED, 0, 15);
    COLOR_FAIL("rgb(0, 0, x)", "unknown colour \"rgb(0, 0, x)\"" COLOR_EXPECTED,
               0, 12);
    COLOR_FAIL("rgb(0,, 0, 0)",
               "unknown colour \"rgb(0,, 0, 0)\"" COLOR_EXPECTED, 0, 13);
    COLOR_FAIL("rgb(1., 0, 0)",
               "unknown colour \"rgb(1., 0, 0)\"" COLOR_EXPECTED, 0, 13);
    COLOR_FAIL("rgb(50%, 0, 0)",
               "unknown colour \"rgb(50%, 0, 0)\"" COLOR_EXPECTED, 0, 14);
}

static void
test_color_names(void)
{
    static const struct {
        const char *name;
        int r, g, b, a;
    } names[] = {
        {"black", 0, 0, 0, 255},       {"silver", 192, 192, 192, 255},
        {"gray", 128, 128, 128, 255},  {"grey", 128, 128, 128, 255},
        {"white", 255, 255, 255, 255}, {"maroon", 128, 0, 0, 255},
        {"red", 255, 0, 0, 255},       {"purple", 128, 0, 128, 255},
        {"fuchsia", 255, 0, 255, 255}, {"green", 0, 128, 0, 255},
        {"lime", 0, 255, 0, 255},      {"olive", 128, 128, 0, 255},
        {"yellow", 255, 255, 0, 255},  {"navy", 0, 0, 128, 255},
        {"blue", 0, 0, 255, 255},      {"teal", 0, 128, 128, 255},
        {"aqua", 0, 255, 255, 255},    {"orange", 255, 165, 0, 255},
        {"transparent", 0, 0, 0, 0},
    };

    for (size_t i = 0; i < KILN_N_ELEMENTS(names); i++) {
        COLOR_OK(names[i].name, names[i].r, names[i].g, names[i].b, names[i].a);
    }
    COLOR_OK("WHITE", 255, 255, 255, 255);
    COLOR_OK("Orange", 255, 165, 0, 255);
    COLOR_OK("TransParent", 0, 0, 0, 0);
}

static void
test_color_unknown(void)
{
    COLOR_FAIL("blu", "unknown colour \"blu\" (did you mean \"blue\"?)", 0, 3);
    COLOR_FAIL("Whte", "unknown colour \"Whte\" (did you mean \"white\"?)", 0,
               4);
    COLOR_FAIL("purpel", "unknown colour \"purpel\" (did you mean \"purple\"?)",
               0, 6);
    COLOR_FAIL("transparnt",
               "unknown colour \"transparnt\" (did you mean "
               "\"transparent\"?)",
               0, 10);
    COLOR_FAIL("ORANGES",
               "unknown colour \"ORANGES\" (did you mean \"orange\"?)", 0, 7);
    COLOR_FAIL("xyz", "unknown colour \"xyz\"" COLOR_EXPECTED, 0, 3);
    COLOR_FAIL("", "unknown colour \"\"" COLOR_EXPECTED, 0, 0);
    COLOR_FAIL("chartreuse", "unknown colour \"chartreuse\"" COLOR_EXPECTED, 0,
               10);
    COLOR_FAIL("transparentxyz",
               "unknown colour \"transparentxyz\"" COLOR_EXPECTED, 0, 14);
    COLOR_FAIL(" white",
               "unknown colour \" white\" (did you mean "
               "\"white\"?)",
               0, 6);
    COLOR_FAIL("white\"",
               "unknown colour \"white\\\"\" (did you mean "
               "\"white\"?)",
               0, 6);
}

int
test_value_lexer_register(void)
{
    static const struct {
        const char *name;
        CU_TestFunc fn;
    } tests[] = {
        {"length forms", test_length_forms},
        {"length unknown unit", test_length_unknown_unit},
        {"length unit not allowed", test_length_unit_not_allowed},
        {"length malformed", test_length_malformed},
        {"length quoting", test_length_quoting},
        {"number forms", test_number_forms},
        {"number precision", test_number_precision},
        {"number malformed", test_number_malformed},
        {"colour hex", test_color_hex},
        {"colour hex malformed", test_color_hex_malformed},
        {"colour rgb", test_color_rgb},
        {"colour rgb range", test_color_rgb_range},
        {"colour rgb malformed", test_color_rgb_malformed},
        {"colour names", test_color_names},
        {"colour unknown", test_color_unknown},
    };
    CU_pSuite suite = CU_add_suite("value_lexer", NULL, NULL);

    if (suite == NULL) {
        return (int)CU_get_error();
    }
    for (size_t i = 0; i < KILN_N_ELEMENTS(tests); i++) {
        if (CU_add_test(suite, tests[i].name, tests[i].fn) == NULL) {
            return (int)CU_get_error();
        }
    }
    return CUE_SUCCESS;
}
