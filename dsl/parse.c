/*
 * Stage 1 of the compiler: JSON text to a syntax tree. cJSON does the
 * parsing; a syntax error is reported with its line and column. The tree
 * wraps cJSON's nodes so that every node knows its JSON path
 * ("jobs[0].transformations[1].width"), which every later error carries.
 */
#include "dsl.h"

#include <stdlib.h>
#include <string.h>

/* path + "[i]", or path + "." + key (key alone at the root), in the
 * arena. Written by hand: a tree of 10,000 transformations has some
 * 40,000 paths, and formatting them with printf took a quarter of the
 * compile. */
static const char *
dsl_child_path(arena *a, const char *path, size_t plen, const char *key,
               size_t i)
{
    char idx[24];
    size_t klen, n = 0;
    if (key == NULL) {
        char rev[24];
        do {
            rev[n++] = (char)('0' + i % 10);
            i /= 10;
        } while (i > 0);
        idx[0] = '[';
        for (size_t k = 0; k < n; k++) {
            idx[1 + k] = rev[n - 1 - k];
        }
        idx[n + 1] = ']';
        klen = n + 2;
        key = idx;
    } else {
        klen = strlen(key);
    }
    bool dot = key != idx && plen > 0;
    char *out = arena_alloc(a, plen + dot + klen + 1);
    if (out == NULL) {
        return NULL;
    }
    memcpy(out, path, plen);
    if (dot) {
        out[plen] = '.';
    }
    memcpy(out + plen + dot, key, klen);
    out[plen + dot + klen] = '\0';
    return out;
}

static dsl_node *
dsl_build(arena *a, const cJSON *v, const char *path, const char *key)
{
    dsl_node *n = arena_alloc(a, sizeof *n);
    if (n == NULL) {
        return NULL;
    }
    n->json = v;
    n->path = path;
    n->key = key;
    if (!cJSON_IsObject(v) && !cJSON_IsArray(v)) {
        return n;
    }
    size_t count = (size_t)cJSON_GetArraySize(v);
    n->children = arena_alloc(a, (count ? count : 1) * sizeof *n->children);
    if (n->children == NULL) {
        return NULL;
    }
    const cJSON *c;
    size_t i = 0, plen = strlen(path);
    bool array = cJSON_IsArray(v);
    cJSON_ArrayForEach(c, v)
    {
        const char *cp =
            dsl_child_path(a, path, plen, array ? NULL : c->string, i);
        if (cp == NULL) {
            return NULL;
        }
        dsl_node *child = dsl_build(a, c, cp, c->string);
        if (child == NULL) {
            return NULL;
        }
        n->children[i++] = child;
    }
    n->n_children = i;
    return n;
}

/* Line and column (1-based) of byte `at` in text. */
static void
dsl_line_col(const char *text, const char *at, int *line, int *col)
{
    *line = 1;
    *col = 1;
    for (const char *p = text; p < at; p++) {
        if (*p == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

/* Length of the well-formed UTF-8 sequence at p (RFC 3629: no overlong
 * forms, no surrogates, nothing above U+10FFFF), or 0. */
static size_t
dsl_utf8_len(const unsigned char *p, const unsigned char *end)
{
    size_t n;
    unsigned int min, cp;
    if (p[0] < 0x80) {
        return 1;
    } else if ((p[0] & 0xe0) == 0xc0) {
        n = 2, min = 0x80, cp = p[0] & 0x1fu;
    } else if ((p[0] & 0xf0) == 0xe0) {
        n = 3, min = 0x800, cp = p[0] & 0x0fu;
    } else if ((p[0] & 0xf8) == 0xf0) {
        n = 4, min = 0x10000, cp = p[0] & 0x07u;
    } else {
        return 0;
    }
    if ((size_t)(end - p) < n) {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = cp << 6 | (p[i] & 0x3fu);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }
    return n;
}

/* What cJSON lets through but a request must not hold: bytes that are not
 * UTF-8 (they would be stored, written into paths and make the status
 * body invalid JSON), and the escape \u0000 inside a string (cJSON
 * decodes it to a NUL, which cuts the C string: "/a.jpg\u0000.png" read
 * as "/a.jpg"). */
static int
dsl_check_text(const char *text, size_t len, kiln_error *err)
{
    const unsigned char *p = (const unsigned char *)text;
    const unsigned char *end = p + len;
    bool in_string = false;
    int line, col;
    while (p < end) {
        size_t n = dsl_utf8_len(p, end);
        if (n == 0) {
            dsl_line_col(text, (const char *)p, &line, &col);
            return err_set(err, KILN_EINVAL,
                           "invalid JSON at line %d, column %d: the byte "
                           "0x%02x is not UTF-8 (a request is UTF-8 text)",
                           line, col, *p);
        }
        if (*p == '"') {
            in_string = !in_string;
        } else if (in_string && *p == '\\' && p + 1 < end) {
            if (p[1] == 'u' && end - p >= 6 && memcmp(p + 2, "0000", 4) == 0) {
                dsl_line_col(text, (const char *)p, &line, &col);
                return err_set(
                    err, KILN_EINVAL,
                    "invalid JSON at line %d, column %d: \"\\u0000\" "
                    "(a string in a request cannot hold a NUL "
                    "character)",
                    line, col);
            }
            p += 2; /* the escaped character, never a closing quote */
            continue;
        }
        p += n;
    }
    return KILN_OK;
}

int
dsl_parse_json(const char *text, size_t len, cJSON **out, kiln_error *err)
{
    const char *end = NULL;
    int line, col;
    size_t blank = 0;
    while (blank < len && (text[blank] == ' ' || text[blank] == '\n' ||
                           text[blank] == '\r' || text[blank] == '\t')) {
        blank++;
    }
    if (blank == len) {
        return err_set(err, KILN_EINVAL,
                       "empty document (expected a JSON object)");
    }
    /* JSON text has no NUL bytes: cJSON skips them as blanks, and the
     * request is later kept and re-read as a C string, which one would
     * cut short (the fuzzer found a body that compiled, then crashed the
     * server when jobs were added to its process). */
    const char *nul = memchr(text, '\0', len);
    if (nul != NULL) {
        dsl_line_col(text, nul, &line, &col);
        return err_set(err, KILN_EINVAL,
                       "invalid JSON at line %d, column %d: a NUL byte "
                       "(JSON text cannot hold one)",
                       line, col);
    }
    int rc = dsl_check_text(text, len, err);
    if (rc != KILN_OK) {
        return rc;
    }
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, false);
    if (root == NULL) {
        const char *at = cJSON_GetErrorPtr();
        if (at == NULL || at < text || at > text + len) {
            at = text + len;
        }
        dsl_line_col(text, at, &line, &col);
        if (at >= text + len) {
            return err_set(err, KILN_EINVAL,
                           "invalid JSON: unexpected end of input at line "
                           "%d, column %d",
                           line, col);
        }
        /* Quote the offending token only: up to the next space or line
         * break, at most 12 bytes. */
        int n = 0;
        while (n < 12 && at + n < text + len && at[n] != ' ' && at[n] != '\n' &&
               at[n] != '\r' && at[n] != '\t' && at[n] != '\0') {
            n++;
        }
        return err_set(err, KILN_EINVAL,
                       "invalid JSON at line %d, column %d: unexpected "
                       "\"%.*s\"",
                       line, col, n > 0 ? n : 1, at);
    }
    /* Text after the value is an error too (a second object pasted by
     * mistake). */
    while (end != NULL && end < text + len &&
           (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t')) {
        end++;
    }
    if (end != NULL && end < text + len && *end != '\0') {
        dsl_line_col(text, end, &line, &col);
        cJSON_Delete(root);
        return err_set(err, KILN_EINVAL,
                       "invalid JSON at line %d, column %d: text after the "
                       "end of the document",
                       line, col);
    }
    *out = root;
    return KILN_OK;
}

int
dsl_parse(arena *a, const char *text, size_t len, dsl_node **out,
          kiln_error *err)
{
    cJSON *root = NULL;
    int rc = dsl_parse_json(text, len, &root, err);
    if (rc != KILN_OK) {
        return rc;
    }
    /* The cJSON document is not in the arena (cJSON allocates on its
     * own); dsl_release() deletes it when the graph is done with it. */
    dsl_node *n = dsl_build(a, root, "", NULL);
    if (n == NULL) {
        cJSON_Delete(root);
        return err_set(err, KILN_ENOMEM, "out of memory");
    }
    *out = n;
    return KILN_OK;
}

void
dsl_release(dsl_node *root)
{
    if (root != NULL) {
        cJSON_Delete((cJSON *)root->json);
    }
}

const dsl_node *
dsl_child(const dsl_node *n, const char *key)
{
    for (size_t i = 0; n != NULL && i < n->n_children; i++) {
        if (n->children[i]->key != NULL &&
            strcmp(n->children[i]->key, key) == 0) {
            return n->children[i];
        }
    }
    return NULL;
}

const char *
dsl_value_text(arena *a, const cJSON *v)
{
    char *s = cJSON_PrintUnformatted(v);
    if (s == NULL) {
        return "?";
    }
    const char *r;
    if (strlen(s) > 200) {
        r = arena_printf(a, "%.197s...", s);
    } else {
        r = arena_strdup(a, s);
    }
    free(s);
    return r ? r : "?";
}
