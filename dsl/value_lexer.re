/*
 * The value lexer: re2c scanners for the strings a job gives as lengths
 * ("120px", "50%", "50w"), numbers ("750") and colours ("#ff8800",
 * "rgb(0, 0, 0)", "white"). dsl/compile calls it while type-checking
 * parameters; errors locate the bad bytes so the caller can draw a caret.
 * Edit this file, never value_lexer.c: `make lexers` regenerates it.
 */
#include "value_lexer.h"

#include <assert.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Room for a quoted text in a message: the quotes, escapes and an
 * ellipsis for a long text. Two of them fit in kiln_error.message. */
#define QUOTE_MAX 256

/* Room for a number quoted without quotation marks (a colour component). */
#define COMPONENT_MAX 40

/* Longest colour name, and the longest text compared with the names for a
 * "did you mean" (an edit distance of 2 cannot bridge more). */
#define NAME_MAX_LEN 11
#define SUGGEST_MAX_LEN (NAME_MAX_LEN + 2)

/* The message every malformed length gets. */
#define LENGTH_EXPECTED                                                       \
    "expected a length like 120, \"120px\", \"50%%\", \"50w\" or \"50h\""

/* The message every unknown colour gets when no name is close. */
#define COLOR_EXPECTED                                                        \
    "expected #rrggbb, #rgb, rgb(r, g, b) or a colour name such as \"white\""

/* What scan_unit() found after the number of a length. */
typedef enum unit_match {
    UNIT_OK,      /* a known unit (or none) and then the end */
    UNIT_UNKNOWN, /* a run of unit-like bytes that is not a unit */
    UNIT_JUNK     /* a byte that cannot start or continue a unit */
} unit_match;

/* A named colour. */
typedef struct color_name {
    const char *name;
    uint8_t r, g, b, a;
} color_name;

static int lex_fail(kiln_error *err, size_t offset, size_t length,
                    const char *fmt, ...) KILN_PRINTF(4, 5);

/* The CSS level 1 colours, orange and transparent. Lower case; the order
 * breaks ties between equally close suggestions. */
static const color_name color_names[] = {
    {"black", 0x00, 0x00, 0x00, 0xff},   {"silver", 0xc0, 0xc0, 0xc0, 0xff},
    {"gray", 0x80, 0x80, 0x80, 0xff},    {"grey", 0x80, 0x80, 0x80, 0xff},
    {"white", 0xff, 0xff, 0xff, 0xff},   {"maroon", 0x80, 0x00, 0x00, 0xff},
    {"red", 0xff, 0x00, 0x00, 0xff},     {"purple", 0x80, 0x00, 0x80, 0xff},
    {"fuchsia", 0xff, 0x00, 0xff, 0xff}, {"green", 0x00, 0x80, 0x00, 0xff},
    {"lime", 0x00, 0xff, 0x00, 0xff},    {"olive", 0x80, 0x80, 0x00, 0xff},
    {"yellow", 0xff, 0xff, 0x00, 0xff},  {"navy", 0x00, 0x00, 0x80, 0xff},
    {"blue", 0x00, 0x00, 0xff, 0xff},    {"teal", 0x00, 0x80, 0x80, 0xff},
    {"aqua", 0x00, 0xff, 0xff, 0xff},    {"orange", 0xff, 0xa5, 0x00, 0xff},
    {"transparent", 0x00, 0x00, 0x00, 0x00},
};

/* Unit names in the order messages list them, with their kiln_unit. */
static const struct {
    const char *name;
    kiln_unit unit;
} unit_names[] = {
    {"px", KILN_UNIT_PX},
    {"%", KILN_UNIT_PERCENT},
    {"w", KILN_UNIT_W},
    {"h", KILN_UNIT_H},
};

/* Definitions shared by every scanner below. The texts end with a NUL,
 * which no rule reads past: it is the sentinel. */
/*!re2c
    re2c:define:YYCTYPE = "unsigned char";
    re2c:define:YYCURSOR = cur;
    re2c:define:YYMARKER = mar;
    re2c:yyfill:enable = 0;

    end = "\x00";
    number = "-"? [0-9]+ ("." [0-9]+)?;
    unit = "px" | "%" | "w" | "h";
    unit_char = [a-zA-Z%\x80-\xff];
    hex = [0-9a-fA-F];
    component = "-"? ([0-9]+ ("." [0-9]+)? | "." [0-9]+);
*/

/* Clamps a byte count to an int for kiln_error's offset and length. */
static int
to_int(size_t n)
{
    if (n > INT_MAX) {
        return INT_MAX;
    }
    return (int)n;
}

/* Sets err to KILN_EINVAL with a message and the bad part
 * [offset, offset + length) of the text; leaves err->path alone. */
static int
lex_fail(kiln_error *err, size_t offset, size_t length, const char *fmt, ...)
{
    va_list ap;

    err->code = KILN_EINVAL;
    err->offset = to_int(offset);
    err->length = to_int(length);
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    return KILN_EINVAL;
}

/* Returns the byte length of the valid UTF-8 sequence at s (n bytes
 * available, s[0] >= 0x80), or 0 when it is not valid UTF-8. */
static size_t
utf8_length(const unsigned char *s, size_t n)
{
    size_t len;
    unsigned char lo = 0x80;
    unsigned char hi = 0xbf;

    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        len = 2;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        len = 3;
        if (s[0] == 0xe0) {
            lo = 0xa0; /* overlong */
        } else if (s[0] == 0xed) {
            hi = 0x9f; /* surrogates */
        }
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        len = 4;
        if (s[0] == 0xf0) {
            lo = 0x90; /* overlong */
        } else if (s[0] == 0xf4) {
            hi = 0x8f; /* above U+10FFFF */
        }
    } else {
        return 0;
    }
    if (len > n || s[1] < lo || s[1] > hi) {
        return 0;
    }
    for (size_t i = 2; i < len; i++) {
        if (s[i] < 0x80 || s[i] > 0xbf) {
            return 0;
        }
    }
    return len;
}

/* Writes the n bytes at s into out (size bytes, at least 8) escaping
 * quotes, backslashes, control bytes and invalid UTF-8, between double
 * quotes when is_quoted, and cut with "..." when it does not fit, so a
 * hostile value cannot forge a message or break the JSON it goes into.
 * Returns out. */
static const char *
quote_span(char *out, size_t size, const char *s, size_t n, bool is_quoted)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t limit = size - 5; /* room for '...', the closing quote, NUL */
    size_t o = 0;
    size_t i = 0;

    if (is_quoted) {
        out[o++] = '"';
    }
    while (i < n) {
        char tmp[5];
        const char *src = tmp;
        size_t k;
        size_t adv = 1;

        if (u[i] == '"' || u[i] == '\\') {
            tmp[0] = '\\';
            tmp[1] = (char)u[i];
            k = 2;
        } else if (u[i] < 0x20 || u[i] == 0x7f) {
            snprintf(tmp, sizeof(tmp), "\\x%02x", u[i]);
            k = 4;
        } else if (u[i] < 0x80) {
            src = s + i;
            k = 1;
        } else {
            adv = utf8_length(u + i, n - i);
            if (adv == 0) {
                snprintf(tmp, sizeof(tmp), "\\x%02x", u[i]);
                k = 4;
                adv = 1;
            } else {
                src = s + i;
                k = adv;
            }
        }
        if (o + k > limit) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        memcpy(out + o, src, k);
        o += k;
        i += adv;
    }
    if (is_quoted) {
        out[o++] = '"';
    }
    out[o] = '\0';
    return out;
}

/* quote_span() for a whole NUL-terminated text, between quotes. */
static const char *
quote(char out[QUOTE_MAX], const char *s)
{
    return quote_span(out, QUOTE_MAX, s, strlen(s), true);
}

/* Converts the text [s, e), which matched `number` or `component`, to a
 * double without strtod (whose decimal point follows the locale), and
 * counts the digits after the point into *n_decimals. Up to 15
 * significant digits and 22 decimals the result is correctly rounded;
 * beyond, it is within an ulp or two, which no parameter can notice. */
static double
number_value(const unsigned char *s, const unsigned char *e, int *n_decimals)
{
    static const double pow10[] = {
        1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
        1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
        1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
    };
    bool is_negative = false;
    bool is_fraction = false;
    uint64_t mant = 0; /* value = mant * 10^exp10 */
    long exp10 = 0;
    int n_sig = 0;
    int n_dec = 0;
    double v;

    if (s < e && *s == '-') {
        is_negative = true;
        s++;
    }
    for (; s < e; s++) {
        int d;

        if (*s == '.') {
            is_fraction = true;
            continue;
        }
        d = *s - '0';
        if (is_fraction && n_dec < INT_MAX) {
            n_dec++;
        }
        if (mant == 0 && d == 0) {
            /* A leading zero: only its place counts. */
            if (is_fraction && exp10 > LONG_MIN) {
                exp10--;
            }
        } else if (n_sig < 19) {
            mant = mant * 10 + (uint64_t)d;
            n_sig++;
            if (is_fraction) {
                exp10--;
            }
        } else if (!is_fraction && exp10 < LONG_MAX) {
            exp10++; /* a digit beyond uint64_t's precision */
        }
    }
    if (exp10 == 0) {
        v = (double)mant;
    } else if (n_sig <= 15 && exp10 < 0 && exp10 >= -22) {
        v = (double)mant / pow10[-exp10];
    } else if (n_sig <= 15 && exp10 > 0 && exp10 <= 22) {
        v = (double)mant * pow10[exp10];
    } else if (exp10 < -400) {
        v = 0.0;
    } else if (exp10 > 400) {
        v = HUGE_VAL;
    } else {
        v = (double)mant * pow(10.0, (double)exp10);
    }
    *n_decimals = n_dec;
    return is_negative ? -v : v;
}

/* Matches a number at the start of s. Returns its end, or NULL with *bad
 * at the first byte that cannot continue one. */
static const unsigned char *
scan_number(const unsigned char *s, const unsigned char **bad)
{
    const unsigned char *cur = s;
    const unsigned char *mar = s;

    /*!re2c
        number { return cur; }
        "-"    { *bad = cur; return NULL; }
        *      { *bad = s; return NULL; }
    */
}

/* Matches the unit of a length at s, the byte after its number. On
 * UNIT_OK sets *unit and *end (where the unit's text ends); on
 * UNIT_UNKNOWN *end is the end of the unknown unit; on UNIT_JUNK *end is
 * the first bad byte. */
static unit_match
scan_unit(const unsigned char *s, kiln_unit *unit, const unsigned char **end)
{
    const unsigned char *cur = s;

    /*!re2c
        end        { *unit = KILN_UNIT_PX; *end = s; return UNIT_OK; }
        "px" end   { *unit = KILN_UNIT_PX; *end = cur - 1; return UNIT_OK; }
        "%" end    {
            *unit = KILN_UNIT_PERCENT;
            *end = cur - 1;
            return UNIT_OK;
        }
        "w" end    { *unit = KILN_UNIT_W; *end = cur - 1; return UNIT_OK; }
        "h" end    { *unit = KILN_UNIT_H; *end = cur - 1; return UNIT_OK; }
        unit       { *end = cur; return UNIT_JUNK; }
        unit_char+ { *end = cur; return UNIT_UNKNOWN; }
        *          { *end = s; return UNIT_JUNK; }
    */
}

/* Writes the units of the mask `units` as "px, % or w" into out. */
static const char *
unit_list(char *out, size_t size, unsigned units)
{
    size_t n_units = 0;
    size_t n_done = 0;

    for (size_t i = 0; i < KILN_N_ELEMENTS(unit_names); i++) {
        if (units & unit_names[i].unit) {
            n_units++;
        }
    }
    out[0] = '\0';
    for (size_t i = 0; i < KILN_N_ELEMENTS(unit_names); i++) {
        const char *sep = "";

        if (!(units & unit_names[i].unit)) {
            continue;
        }
        if (n_done > 0) {
            sep = n_done + 1 == n_units ? " or " : ", ";
        }
        strncat(out, sep, size - strlen(out) - 1);
        strncat(out, unit_names[i].name, size - strlen(out) - 1);
        n_done++;
    }
    return out;
}

int
dsl_lex_length(const char *text, unsigned allowed_units, kiln_length *out,
               kiln_error *err)
{
    const unsigned char *s = (const unsigned char *)text;
    const unsigned char *num_end;
    const unsigned char *bad = NULL;
    const unsigned char *unit_end = NULL;
    kiln_unit unit = KILN_UNIT_PX;
    size_t n;
    int n_decimals;
    char q_text[QUOTE_MAX];
    char q_unit[QUOTE_MAX];
    char expected[32];

    assert(text != NULL && out != NULL && err != NULL);
    assert((allowed_units & KILN_UNITS_SIZE) != 0);
    n = strlen(text);

    num_end = scan_number(s, &bad);
    if (num_end == NULL) {
        return lex_fail(err, (size_t)(bad - s), n - (size_t)(bad - s),
                        LENGTH_EXPECTED ", got %s", quote(q_text, text));
    }
    switch (scan_unit(num_end, &unit, &unit_end)) {
    case UNIT_OK:
        break;
    case UNIT_UNKNOWN:
        return lex_fail(
            err, (size_t)(num_end - s), (size_t)(unit_end - num_end),
            "unknown unit %s in %s (expected px, %%, w or h)",
            quote_span(q_unit, sizeof(q_unit), (const char *)num_end,
                       (size_t)(unit_end - num_end), true),
            quote(q_text, text));
    case UNIT_JUNK:
        return lex_fail(err, (size_t)(unit_end - s),
                        n - (size_t)(unit_end - s), LENGTH_EXPECTED ", got %s",
                        quote(q_text, text));
    }

    if (!(allowed_units & unit)) {
        unit_list(expected, sizeof(expected), allowed_units);
        if (unit_end == num_end) {
            /* Nothing written after the number: point just past it. */
            return lex_fail(err, n, 0,
                            "a length without a unit is not allowed here "
                            "in %s (expected %s)",
                            quote(q_text, text), expected);
        }
        return lex_fail(
            err, (size_t)(num_end - s), (size_t)(unit_end - num_end),
            "unit %s is not allowed here in %s (expected %s)",
            quote_span(q_unit, sizeof(q_unit), (const char *)num_end,
                       (size_t)(unit_end - num_end), true),
            quote(q_text, text), expected);
    }

    out->is_set = true;
    out->unit = unit;
    out->value = number_value(s, num_end, &n_decimals);
    out->px = 0;
    out->text = text;
    return KILN_OK;
}

int
dsl_lex_number(const char *text, double *out, int *n_decimals,
               kiln_error *err)
{
    const unsigned char *s = (const unsigned char *)text;
    const unsigned char *num_end;
    const unsigned char *bad = NULL;
    size_t n;
    char q_text[QUOTE_MAX];

    assert(text != NULL && out != NULL && n_decimals != NULL);
    assert(err != NULL);
    n = strlen(text);

    num_end = scan_number(s, &bad);
    if (num_end != NULL && *num_end != '\0') {
        bad = num_end;
    }
    if (num_end == NULL || *num_end != '\0') {
        return lex_fail(err, (size_t)(bad - s), n - (size_t)(bad - s),
                        "expected a number, got %s", quote(q_text, text));
    }
    *out = number_value(s, num_end, n_decimals);
    return KILN_OK;
}

/* ---------------------------------------------------------- colours */

/* The value of a hex digit (already matched by `hex`). */
static unsigned
hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return (unsigned)(c - '0');
    }
    if (c >= 'a' && c <= 'f') {
        return (unsigned)(c - 'a' + 10);
    }
    return (unsigned)(c - 'A' + 10);
}

/* Decodes the n_digits (3, 4, 6 or 8) hex digits at s into *out. */
static void
color_from_hex(const unsigned char *s, size_t n_digits, kiln_color *out)
{
    uint8_t c[4] = {0, 0, 0, 0xff};
    size_t n_comps = n_digits == 3 || n_digits == 6 ? 3 : 4;

    for (size_t i = 0; i < n_comps; i++) {
        if (n_digits <= 4) {
            c[i] = (uint8_t)(hex_value(s[i]) * 17);
        } else {
            c[i] = (uint8_t)(hex_value(s[2 * i]) << 4 |
                             hex_value(s[2 * i + 1]));
        }
    }
    out->is_set = true;
    out->r = c[0];
    out->g = c[1];
    out->b = c[2];
    out->a = c[3];
}

/* Matches a component of rgb() or rgba() at s. Returns its end, or NULL
 * when s does not start one. */
static const unsigned char *
scan_component(const unsigned char *s)
{
    const unsigned char *cur = s;
    const unsigned char *mar = s;

    /*!re2c
        component { return cur; }
        *         { return NULL; }
    */
}

/* Skips spaces and tabs. */
static const unsigned char *
skip_blanks(const unsigned char *s)
{
    while (*s == ' ' || *s == '\t') {
        s++;
    }
    return s;
}

/* The edit distance between a and b (b at most NAME_MAX_LEN bytes). */
static size_t
edit_distance(const char *a, const char *b)
{
    size_t row[NAME_MAX_LEN + 1];
    size_t n_b = strlen(b);

    assert(n_b <= NAME_MAX_LEN);
    for (size_t j = 0; j <= n_b; j++) {
        row[j] = j;
    }
    for (size_t i = 1; a[i - 1] != '\0'; i++) {
        size_t diag = row[0];

        row[0] = i;
        for (size_t j = 1; j <= n_b; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);

            if (up + 1 < best) {
                best = up + 1;
            }
            if (row[j - 1] + 1 < best) {
                best = row[j - 1] + 1;
            }
            diag = up;
            row[j] = best;
        }
    }
    return row[n_b];
}

/* Looks text up among the colour names, ignoring ASCII case; fails with
 * an unknown colour error, suggesting the closest name when one is within
 * edit distance 2. */
static int
color_from_name(const char *text, kiln_color *out, kiln_error *err)
{
    char lower[SUGGEST_MAX_LEN + 1];
    char q_text[QUOTE_MAX];
    size_t n = strlen(text);
    const color_name *best = NULL;
    size_t best_distance = 3;

    if (n <= SUGGEST_MAX_LEN) {
        for (size_t i = 0; i <= n; i++) {
            char c = text[i];

            lower[i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
        }
        for (size_t i = 0; i < KILN_N_ELEMENTS(color_names); i++) {
            size_t d = edit_distance(lower, color_names[i].name);

            if (d == 0) {
                out->is_set = true;
                out->r = color_names[i].r;
                out->g = color_names[i].g;
                out->b = color_names[i].b;
                out->a = color_names[i].a;
                return KILN_OK;
            }
            if (d < best_distance) {
                best = &color_names[i];
                best_distance = d;
            }
        }
    }
    if (best != NULL) {
        return lex_fail(err, 0, n, "unknown colour %s (did you mean \"%s\"?)",
                        quote(q_text, text), best->name);
    }
    return lex_fail(err, 0, n, "unknown colour %s (" COLOR_EXPECTED ")",
                    quote(q_text, text));
}

/* Parses the n_comps components of rgb( or rgba( starting at s (just
 * after the parenthesis) up to the closing one, which must end the text.
 * The syntax is checked in full before any range. */
static int
color_from_function(const char *text, const unsigned char *s,
                    size_t n_comps, kiln_color *out, kiln_error *err)
{
    const unsigned char *start[4];
    const unsigned char *end[4];
    uint8_t c[4] = {0, 0, 0, 0xff};
    char q_text[QUOTE_MAX];
    char q_comp[COMPONENT_MAX];

    for (size_t i = 0; i < n_comps; i++) {
        s = skip_blanks(s);
        start[i] = s;
        end[i] = scan_component(s);
        if (end[i] == NULL) {
            return color_from_name(text, out, err);
        }
        s = skip_blanks(end[i]);
        if (*s != (i + 1 < n_comps ? ',' : ')')) {
            return color_from_name(text, out, err);
        }
        s++;
    }
    if (*s != '\0') {
        return color_from_name(text, out, err);
    }

    for (size_t i = 0; i < n_comps; i++) {
        size_t offset = (size_t)(start[i] - (const unsigned char *)text);
        size_t length = (size_t)(end[i] - start[i]);
        bool is_alpha = i == 3;
        double max = is_alpha ? 1.0 : 255.0;
        int n_decimals;
        double v = number_value(start[i], end[i], &n_decimals);

        quote_span(q_comp, sizeof(q_comp), (const char *)start[i], length,
                   false);
        if (v < 0.0 || v > max) {
            return lex_fail(err, offset, length,
                            "colour component %s is out of range in %s "
                            "(expected %s)",
                            q_comp, quote(q_text, text),
                            is_alpha ? "0..1" : "0..255");
        }
        if (is_alpha) {
            double a = floor(v * 255.0 + 0.5);

            c[i] = (uint8_t)a;
        } else if (v != floor(v)) {
            return lex_fail(err, offset, length,
                            "colour component %s is not an integer in %s "
                            "(expected 0..255)",
                            q_comp, quote(q_text, text));
        } else {
            c[i] = (uint8_t)v;
        }
    }
    out->is_set = true;
    out->r = c[0];
    out->g = c[1];
    out->b = c[2];
    out->a = c[3];
    return KILN_OK;
}

int
dsl_lex_color(const char *text, kiln_color *out, kiln_error *err)
{
    const unsigned char *s = (const unsigned char *)text;
    const unsigned char *cur = s;
    const unsigned char *mar = s;

    assert(text != NULL && out != NULL && err != NULL);

    /*!re2c
        "#" (hex{3} | hex{4} | hex{6} | hex{8}) end {
            color_from_hex(s + 1, (size_t)(cur - s) - 2, out);
            return KILN_OK;
        }
        'rgb('  { return color_from_function(text, cur, 3, out, err); }
        'rgba(' { return color_from_function(text, cur, 4, out, err); }
        *       { return color_from_name(text, out, err); }
    */
}
