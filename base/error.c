/*
 * Errors: filling a caller-owned kiln_error, copying libvips' global error
 * buffer out at once (concurrent jobs would otherwise steal each other's
 * text), and the collected error list the compiler prints with a caret
 * line under the bad part of a value (as jq does).
 */
#include "host.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

int
err_vset(kiln_error *err, int code, const char *fmt, va_list ap)
{
    if (err == NULL) {
        return code;
    }
    err->code = code;
    err->offset = -1;
    err->length = 0;
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    return code;
}

int
err_set(kiln_error *err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    err_vset(err, code, fmt, ap);
    va_end(ap);
    return code;
}

int
err_set_path(kiln_error *err, int code, const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    err_vset(err, code, fmt, ap);
    va_end(ap);
    if (err != NULL) {
        snprintf(err->path, sizeof err->path, "%s", path ? path : "");
    }
    return code;
}

int
err_set_param(kiln_error *err, int code, const char *param, const char *fmt,
              ...)
{
    va_list ap;
    va_start(ap, fmt);
    err_vset(err, code, fmt, ap);
    va_end(ap);
    if (err != NULL) {
        snprintf(err->path, sizeof err->path, "%s", param ? param : "");
    }
    return code;
}

int
err_set_vips(kiln_error *err, const char *what)
{
    /* libvips messages end in newlines and may hold several lines; keep
     * them on one line so results and logs stay one record each. */
    char buf[sizeof err->message];
    snprintf(buf, sizeof buf, "%s", vips_error_buffer());
    vips_error_clear();
    /* libvips 8.14's disc sink reports its writer's -1 as an errno
     * ("wbuffer_write: write failed" then this line): the line says
     * nothing, and the real errno is in the lines before it. */
    static const char unknown[] = "unix error: Unknown error -1";
    for (char *u = strstr(buf, unknown); u != NULL; u = strstr(u, unknown)) {
        char *next = u + strlen(unknown);
        if (*next == '\n') {
            next++;
        }
        memmove(u, next, strlen(next) + 1);
    }
    size_t n = strlen(buf);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' ')) {
        buf[--n] = '\0';
    }
    for (char *p = buf; *p; p++) {
        if (*p == '\n') {
            *p = ';';
        }
    }
    if (n == 0) {
        return err_set(err, KILN_EVIPS, "%s failed", what ? what : "libvips");
    }
    if (what == NULL) {
        return err_set(err, KILN_EVIPS, "%s", buf);
    }
    return err_set(err, KILN_EVIPS, "%s: %s", what, buf);
}

const char *
err_errno_text(int e, char *buf, size_t size)
{
    snprintf(buf, size, "%s", g_strerror(e));
    if (buf[0] >= 'A' && buf[0] <= 'Z') {
        buf[0] = (char)(buf[0] - 'A' + 'a');
    }
    return buf;
}

void
err_clear(kiln_error *err)
{
    memset(err, 0, sizeof *err);
    err->offset = -1;
}

void
err_prefix_path(kiln_error *err, const char *prefix)
{
    char buf[sizeof err->path];
    if (prefix == NULL || prefix[0] == '\0') {
        return;
    }
    if (err->path[0] == '\0') {
        snprintf(buf, sizeof buf, "%s", prefix);
    } else {
        snprintf(buf, sizeof buf, "%s.%s", prefix, err->path);
    }
    memcpy(err->path, buf, sizeof buf);
}

void
errlist_add(errlist *l, const kiln_error *e, const char *value)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        err_item *items = realloc(l->items, cap * sizeof *items);
        if (items == NULL) {
            return; /* out of memory: the earlier errors still print */
        }
        l->items = items;
        l->cap = cap;
    }
    err_item *it = &l->items[l->n++];
    it->e = *e;
    it->value = value ? strdup(value) : NULL;
}

void
errlist_vaddf(errlist *l, const char *path, const char *value, int offset,
              int length, const char *fmt, va_list ap)
{
    kiln_error e;
    err_clear(&e);
    err_vset(&e, KILN_EINVAL, fmt, ap);
    e.offset = offset;
    e.length = length;
    snprintf(e.path, sizeof e.path, "%s", path ? path : "");
    errlist_add(l, &e, value);
}

void
errlist_free(errlist *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->items[i].value);
    }
    free(l->items);
    memset(l, 0, sizeof *l);
}

void
err_format(const kiln_error *e, char *buf, size_t size)
{
    if (e->path[0] != '\0') {
        snprintf(buf, size, "%s: %s", e->path, e->message);
    } else {
        snprintf(buf, size, "%s", e->message);
    }
}

void
errlist_print(const errlist *l, FILE *f)
{
    for (size_t i = 0; i < l->n; i++) {
        const err_item *it = &l->items[i];
        char line[1100];
        err_format(&it->e, line, sizeof line);
        fprintf(f, "%s\n", line);
        if (it->value == NULL || it->e.offset < 0) {
            continue;
        }
        /* The offset counts bytes inside the string's text; a JSON string
         * prints with a leading quote, so the caret moves one column. */
        int shift = it->value[0] == '"' ? 1 : 0;
        int len = it->e.length > 0 ? it->e.length : 1;
        fprintf(f, "    %s\n    %*s", it->value, it->e.offset + shift, "");
        for (int k = 0; k < len; k++) {
            fputc('^', f);
        }
        fputc('\n', f);
    }
}

const char *
err_quote(char *out, size_t size, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;
    /* Keep room for an escape (4), the ellipsis (3), '"' and NUL. */
    size_t limit = size - 9;

    out[n++] = '"';
    for (; s != NULL && *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (n >= limit) {
            memcpy(out + n, "...", 3);
            n += 3;
            break;
        }
        if (c == '"' || c == '\\') {
            out[n++] = '\\';
            out[n++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            out[n++] = '\\';
            out[n++] = 'x';
            out[n++] = hex[c >> 4];
            out[n++] = hex[c & 0xf];
        } else {
            out[n++] = (char)c;
        }
    }
    out[n++] = '"';
    out[n] = '\0';
    return out;
}
