/*
 * The value lexer: turns the strings a job gives for lengths ("120px",
 * "50%"), numbers ("750") and colours ("#ff8800", "rgb(0, 0, 0)") into
 * typed values. dsl/compile calls it while it type-checks parameters
 * against an op's param spec; binding the values to an input comes later.
 * The scanners are written in value_lexer.re (re2c); value_lexer.c is
 * generated from it.
 */
#ifndef KILN_DSL_VALUE_LEXER_H
#define KILN_DSL_VALUE_LEXER_H

#include "kiln/plugin.h"

/*
 * Every function below reads a NUL-terminated text (borrowed) and returns
 * KILN_OK, or KILN_EINVAL with the caller-owned *err filled: err->code,
 * err->message (lower case, quoting the bad text and saying what was
 * expected), err->offset and err->length (the byte offset and byte length
 * of the bad part inside `text`, for a caret line; the length may be 0
 * when the bad part is "nothing", e.g. an empty text or a missing digit at
 * the end). err->path is never touched: the caller sets the JSON path. On
 * failure the output is left untouched. Quoted texts are escaped (quotes,
 * backslashes, control bytes, invalid UTF-8) and cut with "..." when long.
 */

/* Lexes a length: `-?[0-9]+(\.[0-9]+)?` followed by one optional unit
 * (nothing, "px", "%", "w" or "h"); no spaces, nothing else. The unit must
 * be in `allowed_units`, a non-empty mask of kiln_unit (nothing and "px"
 * both mean KILN_UNIT_PX). On success sets out->is_set, out->unit,
 * out->value (the number in that unit), out->text = text (borrowed: it
 * must outlive *out) and out->px = 0 (the host fills it at bind time).
 * Errors: an unknown unit, a unit not in allowed_units, and any text that
 * does not start like a length. */
int dsl_lex_length(const char *text, unsigned allowed_units, kiln_length *out,
                   kiln_error *err);

/* Lexes a number given as a string where a number is expected ("750",
 * "-1.5"): `-?[0-9]+(\.[0-9]+)?` only (no exponent, sign "+", spaces).
 * Sets *out and *n_decimals (the count of digits after the point, 0 when
 * there is none), so the caller can check a max_decimals rule. */
int dsl_lex_number(const char *text, double *out, int *n_decimals,
                   kiln_error *err);

/* Lexes a colour: "#rgb", "#rgba", "#rrggbb", "#rrggbbaa" (hex digits in
 * either case), "rgb(r, g, b)" and "rgba(r, g, b, a)" (r, g, b integers
 * 0..255, a a number 0..1; spaces and tabs allowed inside the parentheses
 * around the components), "transparent", and the names black silver gray
 * grey white maroon red purple fuchsia green lime olive yellow navy blue
 * teal aqua orange. Names and "rgb"/"rgba" are case-insensitive. Sets
 * out->is_set and r, g, b, a (a = 255 unless given; rgba()'s a is
 * rounded from a * 255, halves up). Errors: an unknown colour (with a
 * "did you mean" when a name is within edit distance 2) and an rgb()
 * component that is out of range or not an integer. */
int dsl_lex_color(const char *text, kiln_color *out, kiln_error *err);

#endif /* KILN_DSL_VALUE_LEXER_H */
