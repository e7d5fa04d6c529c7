/*
 * Stage 1 of the compiler: JSON text to a syntax tree. cJSON does the
 * parsing; a syntax error is reported with its line and column. The tree
 * wraps cJSON's nodes so that every node knows its JSON path
 * ("jobs[0].transformations[1].width"), which every later error carries.
 */
#include "../core/kiln.h"

#include <stdlib.h>
#include <string.h>

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
    size_t i = 0;
    cJSON_ArrayForEach(c, v)
    {
        const char *cp;
        if (cJSON_IsArray(v)) {
            cp = arena_printf(a, "%s[%zu]", path, i);
        } else if (path[0] == '\0') {
            cp = arena_strdup(a, c->string);
        } else {
            cp = arena_printf(a, "%s.%s", path, c->string);
        }
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
