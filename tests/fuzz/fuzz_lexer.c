/*
 * Fuzzes the value lexer (dsl/value_lexer.re, generated into
 * value_lexer.c by re2c): dsl_lex_length, dsl_lex_number and
 * dsl_lex_color on hostile texts, checked against the contract in
 * value_lexer.h: KILN_OK or KILN_EINVAL only; on failure a message, an
 * offset and length inside the text, err->path and the output untouched;
 * on success the values the grammar says. A broken rule aborts with what
 * did not hold.
 *
 * Input: byte 0 picks the scanner (bits 0-1: 0 length, 1 number, 2 and 3
 * colour) and, for lengths, the allowed units (bits 2-5, a kiln_unit
 * mask; none set means all); the rest is the text, copied into a buffer of
 * exactly its length plus the NUL, so a read past the sentinel shows.
 */
#include "fuzz_common.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../../dsl/value_lexer.h"

/* Bytes the outputs and err->path are filled with before a call, to see
 * whether a failing call wrote them. */
#define POISON 0xa5

/* The end of `-?[0-9]+(\.[0-9]+)?` at the start of s, or NULL. */
static const char *
lexer_match_number(const char *s)
{
    if (*s == '-') {
        s++;
    }
    if (!isdigit((unsigned char)*s)) {
        return NULL;
    }
    while (isdigit((unsigned char)*s)) {
        s++;
    }
    if (*s == '.' && isdigit((unsigned char)s[1])) {
        s++;
        while (isdigit((unsigned char)*s)) {
            s++;
        }
    }
    return s;
}

/* The unit a length's tail names, or 0 when it is none of them. */
static unsigned
lexer_unit_of(const char *tail)
{
    if (*tail == '\0' || strcmp(tail, "px") == 0) {
        return KILN_UNIT_PX;
    }
    if (strcmp(tail, "%") == 0) {
        return KILN_UNIT_PERCENT;
    }
    if (strcmp(tail, "w") == 0) {
        return KILN_UNIT_W;
    }
    if (strcmp(tail, "h") == 0) {
        return KILN_UNIT_H;
    }
    return 0;
}

/* The number the text [s, e) writes, by the C library. */
static double
lexer_strtod(const char *s, const char *e)
{
    char buf[64];
    size_t n = (size_t)(e - s);
    char *copy = n < sizeof buf ? buf : malloc(n + 1);
    if (copy == NULL) {
        return NAN;
    }
    memcpy(copy, s, n);
    copy[n] = '\0';
    double v = strtod(copy, NULL);
    if (copy != buf) {
        free(copy);
    }
    return v;
}

/* The lexer converts without strtod and promises correct rounding up to
 * 15 significant digits, an ulp or two beyond: a relative 1e-9 tells a
 * wrong number from rounding. */
static bool
lexer_close(double got, double want)
{
    if (got == want) {
        return true;
    }
    if (isinf(got) || isinf(want) || isnan(got) || isnan(want)) {
        return false;
    }
    double scale = fmax(fabs(got), fabs(want));
    return fabs(got - want) <= 1e-9 * scale + 1e-300;
}

/* The checks every failing call must pass. */
static void
lexer_check_error(const char *what, const char *text, int rc,
                  const kiln_error *err, const void *out, size_t out_size)
{
    size_t n = strlen(text);
    if (rc != KILN_EINVAL || err->code != KILN_EINVAL) {
        fuzz_fail("%s: failed with %d (err->code %d), expected KILN_EINVAL",
                  what, rc, err->code);
    }
    if (memchr(err->message, '\0', sizeof err->message) == NULL ||
        err->message[0] == '\0') {
        fuzz_fail("%s: no NUL-terminated message", what);
    }
    if (err->offset < 0 || err->length < 0 || (size_t)err->offset > n ||
        (size_t)err->length > n - (size_t)err->offset) {
        fuzz_fail("%s: bad part [%d, +%d) is outside the %zu-byte text "
                  "(message: %s)",
                  what, err->offset, err->length, n, err->message);
    }
    for (size_t i = 0; i < sizeof err->path; i++) {
        if ((unsigned char)err->path[i] != POISON) {
            fuzz_fail("%s: err->path was written", what);
        }
    }
    const unsigned char *o = out;
    for (size_t i = 0; i < out_size; i++) {
        if (o[i] != POISON) {
            fuzz_fail("%s: the output was written on failure", what);
        }
    }
}

static void
lexer_length(const char *text, unsigned units)
{
    kiln_length out;
    kiln_error err;
    memset(&out, POISON, sizeof out);
    memset(&err, POISON, sizeof err);
    int rc = dsl_lex_length(text, units, &out, &err);
    const char *end = lexer_match_number(text);
    unsigned unit = end != NULL ? lexer_unit_of(end) : 0;
    bool valid = unit != 0 && (units & unit) != 0;
    if (rc != KILN_OK) {
        lexer_check_error("dsl_lex_length", text, rc, &err, &out, sizeof out);
        if (valid) {
            fuzz_fail("dsl_lex_length refused a valid length (units %#x): %s",
                      units, err.message);
        }
        return;
    }
    if (!valid) {
        fuzz_fail("dsl_lex_length accepted a text the grammar refuses "
                  "(units %#x)",
                  units);
    }
    if (!out.is_set || out.unit != (kiln_unit)unit || out.px != 0 ||
        out.text != text) {
        fuzz_fail("dsl_lex_length: is_set %d, unit %d (expected %u), px %d, "
                  "text %s",
                  out.is_set, (int)out.unit, unit, out.px,
                  out.text == text ? "borrowed" : "not the text");
    }
    double want = lexer_strtod(text, end);
    if (!lexer_close(out.value, want)) {
        fuzz_fail("dsl_lex_length: value %.17g, strtod says %.17g", out.value,
                  want);
    }
}

static void
lexer_number(const char *text)
{
    struct {
        double v;
        int n_decimals;
    } out;
    kiln_error err;
    memset(&out, POISON, sizeof out);
    memset(&err, POISON, sizeof err);
    int rc = dsl_lex_number(text, &out.v, &out.n_decimals, &err);
    const char *end = lexer_match_number(text);
    bool valid = end != NULL && *end == '\0';
    if (rc != KILN_OK) {
        lexer_check_error("dsl_lex_number", text, rc, &err, &out, sizeof out);
        if (valid) {
            fuzz_fail("dsl_lex_number refused a valid number: %s", err.message);
        }
        return;
    }
    if (!valid) {
        fuzz_fail("dsl_lex_number accepted a text the grammar refuses");
    }
    const char *dot = strchr(text, '.');
    int decimals = dot != NULL ? (int)strlen(dot + 1) : 0;
    if (out.n_decimals != decimals) {
        fuzz_fail("dsl_lex_number: %d decimals, the text has %d",
                  out.n_decimals, decimals);
    }
    double want = lexer_strtod(text, end);
    if (!lexer_close(out.v, want)) {
        fuzz_fail("dsl_lex_number: value %.17g, strtod says %.17g", out.v,
                  want);
    }
}

static int
lexer_hex(char c)
{
    return isdigit((unsigned char)c) ? c - '0'
                                     : tolower((unsigned char)c) - 'a' + 10;
}

static void
lexer_color(const char *text)
{
    static const char *const names[] = {
        "black",  "silver",  "gray",  "grey",   "white",      "maroon", "red",
        "purple", "fuchsia", "green", "lime",   "olive",      "yellow", "navy",
        "blue",   "teal",    "aqua",  "orange", "transparent"};
    kiln_color out;
    kiln_error err;
    memset(&out, POISON, sizeof out);
    memset(&err, POISON, sizeof err);
    int rc = dsl_lex_color(text, &out, &err);
    size_t n = strlen(text);
    /* What the grammar says, where it is simple enough to restate: hex
     * forms and names. rgb()/rgba() get the contract checks only. */
    int verdict = -1; /* 1 valid, 0 invalid, -1 not restated */
    if (text[0] == '#') {
        verdict = n == 4 || n == 5 || n == 7 || n == 9;
        for (size_t i = 1; i < n && verdict; i++) {
            verdict = isxdigit((unsigned char)text[i]) != 0;
        }
    } else if (strncasecmp(text, "rgb", 3) != 0) {
        verdict = 0;
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
            if (strcasecmp(text, names[i]) == 0) {
                verdict = 1;
            }
        }
    }
    if (rc != KILN_OK) {
        lexer_check_error("dsl_lex_color", text, rc, &err, &out, sizeof out);
        if (verdict == 1) {
            fuzz_fail("dsl_lex_color refused a valid colour: %s", err.message);
        }
        return;
    }
    if (verdict == 0) {
        fuzz_fail("dsl_lex_color accepted a text the grammar refuses");
    }
    if (!out.is_set) {
        fuzz_fail("dsl_lex_color: is_set is false on success");
    }
    if (text[0] == '#') {
        bool one = n == 4 || n == 5;
        int step = one ? 1 : 2;
        int v[4] = {0, 0, 0, 255};
        for (size_t k = 0; k < (n - 1) / (size_t)step; k++) {
            const char *p = text + 1 + k * (size_t)step;
            v[k] = one ? lexer_hex(p[0]) * 17
                       : lexer_hex(p[0]) * 16 + lexer_hex(p[1]);
        }
        if (out.r != v[0] || out.g != v[1] || out.b != v[2] || out.a != v[3]) {
            fuzz_fail("dsl_lex_color: %d,%d,%d,%d, expected %d,%d,%d,%d", out.r,
                      out.g, out.b, out.a, v[0], v[1], v[2], v[3]);
        }
    }
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    char *text = malloc(size);
    if (text == NULL) {
        return 0;
    }
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    unsigned units = (data[0] >> 2) & KILN_UNITS_SIZE;
    if (units == 0) {
        units = KILN_UNITS_SIZE;
    }
    switch (data[0] & 3) {
    case 0:
        lexer_length(text, units);
        break;
    case 1:
        lexer_number(text);
        break;
    default:
        lexer_color(text);
        break;
    }
    free(text);
    return 0;
}
