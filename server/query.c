/*
 * Values the API reads from what a client writes (server.h): query
 * strings (percent-decoding, one parameter by name), the three ways a
 * client may write a time, and the one rule for a service id that every
 * endpoint applies.
 */
#include "server.h"

#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <string.h>
#include <time.h>

static int
query_hex(int c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Decodes [s, s + n) ('+' is a space, %XX a byte) into out; false when
 * it does not fit, has a bad escape or decodes to a NUL. */
static bool
query_decode(const char *s, size_t n, char *out, size_t size)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            int a = i + 1 < n ? query_hex((unsigned char)s[i + 1]) : -1;
            int b = i + 2 < n ? query_hex((unsigned char)s[i + 2]) : -1;
            if (a < 0 || b < 0) {
                return false;
            }
            c = a * 16 + b;
            i += 2;
        }
        if (c == 0 || k + 1 >= size) {
            return false;
        }
        out[k++] = (char)c;
    }
    out[k] = '\0';
    return true;
}

int
server_query_get(const char *query, const char *name, char *out, size_t size)
{
    out[0] = '\0';
    if (query == NULL) {
        return 0;
    }
    for (const char *p = query; *p != '\0';) {
        size_t len = strcspn(p, "&");
        const char *eq = memchr(p, '=', len);
        size_t klen = eq != NULL ? (size_t)(eq - p) : len;
        char key[64];
        if (query_decode(p, klen, key, sizeof key) && strcmp(key, name) == 0) {
            const char *v = eq != NULL ? eq + 1 : p + len;
            size_t vlen = (size_t)(p + len - v);
            return query_decode(v, vlen, out, size) ? 1 : -1;
        }
        p += len;
        if (*p == '&') {
            p++;
        }
    }
    return 0;
}

bool
server_parse_time(const char *text, int64_t *out)
{
    size_t n = strlen(text);
    if (n > 0 && n <= 12 && strspn(text, "0123456789") == n) {
        *out = 0;
        for (size_t i = 0; i < n; i++) {
            *out = *out * 10 + (text[i] - '0');
        }
        return true;
    }
    static const char *const formats[] = {"%Y-%m-%d %H:%M:%S",
                                          "%Y-%m-%dT%H:%M:%SZ"};
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++) {
        struct tm tm;
        memset(&tm, 0, sizeof tm);
        const char *end = strptime(text, formats[i], &tm);
        if (end != NULL && *end == '\0') {
            *out = (int64_t)timegm(&tm);
            return true;
        }
    }
    return false;
}

void
server_format_time(int64_t t, char out[32])
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, 32, "%Y-%m-%d %H:%M:%S", &tm);
}
