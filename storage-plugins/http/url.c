/*
 * URL helpers of the "http" storage backend: the "allow" setting's
 * prefixes and their check, redirect targets resolved with libcurl's URL
 * API (the parser the connection itself uses, so a check and a request
 * cannot disagree on the host), and URLs as error messages show them,
 * without the parts that may carry credentials.
 */
#define _GNU_SOURCE /* strdup, strtok_r, strcasecmp */

#include "http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* What the parts of an http(s) URL look like after libcurl parsed it. */
typedef struct url_parts {
    char *scheme;
    char *host;
    char *port;
    char *path;
    bool has_extras; /* a user name, password, query or fragment */
} url_parts;

static void
url_parts_free(url_parts *p)
{
    curl_free(p->scheme);
    curl_free(p->host);
    curl_free(p->port);
    curl_free(p->path);
    memset(p, 0, sizeof *p);
}

/* Parses `url` into *p (port as digits, the scheme's default when none is
 * written). Returns false when libcurl does not take it as a URL with a
 * host. */
static bool
url_split(const char *url, url_parts *p)
{
    static const CURLUPart extras[] = {CURLUPART_USER, CURLUPART_PASSWORD,
                                       CURLUPART_QUERY, CURLUPART_FRAGMENT};
    CURLU *u = curl_url();
    bool is_ok = false;

    memset(p, 0, sizeof *p);
    if (u == NULL) {
        return false;
    }
    if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_SCHEME, &p->scheme, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &p->host, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_PORT, &p->port, CURLU_DEFAULT_PORT) ==
            CURLUE_OK &&
        curl_url_get(u, CURLUPART_PATH, &p->path, 0) == CURLUE_OK) {
        is_ok = true;
    }
    for (size_t i = 0; is_ok && i < sizeof extras / sizeof extras[0]; i++) {
        char *v = NULL;

        if (curl_url_get(u, extras[i], &v, 0) == CURLUE_OK) {
            p->has_extras = true;
        }
        curl_free(v);
    }
    curl_url_cleanup(u);
    if (!is_ok) {
        url_parts_free(p);
    }
    return is_ok;
}

/* Appends s[0..n) to out at *pos, escaping quotes, backslashes and
 * control bytes; stops at `limit`. Returns false once cut. */
static bool
shown_append(char *out, size_t *pos, size_t limit, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (*pos >= limit) {
            return false;
        }
        if (c == '"' || c == '\\') {
            out[(*pos)++] = '\\';
            out[(*pos)++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            out[(*pos)++] = '\\';
            out[(*pos)++] = 'x';
            out[(*pos)++] = hex[c >> 4];
            out[(*pos)++] = hex[c & 0xf];
        } else {
            out[(*pos)++] = (char)c;
        }
    }
    return true;
}

const char *
http_shown(char out[HTTP_SHOWN_MAX], const char *url)
{
    /* Keep room for an escape (4), the ellipsis (3), '"' and NUL. */
    size_t limit = HTTP_SHOWN_MAX - 9;
    size_t pos = 0;
    const char *host = url;
    const char *sep = strstr(url, "://");
    const char *end;
    bool is_whole;

    /* Done by hand rather than with libcurl so that a URL libcurl refuses
     * is still shown, and still without its credentials. */
    if (sep != NULL) {
        const char *auth_end;

        host = sep + 3;
        auth_end = host + strcspn(host, "/?#");
        for (const char *p = host; p < auth_end; p++) {
            if (*p == '@') {
                host = p + 1;
            }
        }
    }
    end = host + strcspn(host, "?#");

    out[pos++] = '"';
    is_whole = shown_append(out, &pos, limit, url,
                            sep != NULL ? (size_t)(sep + 3 - url) : 0) &&
               shown_append(out, &pos, limit, host, (size_t)(end - host));
    if (!is_whole) {
        memcpy(out + pos, "...", 3);
        pos += 3;
    }
    out[pos++] = '"';
    out[pos] = '\0';
    return out;
}

/* Checks one entry of "allow" and appends it to st->prefixes. */
static int
prefix_add(http_state *st, const char *entry, kiln_error *err)
{
    char q[HTTP_SHOWN_MAX];
    url_parts p;
    http_prefix *grown;
    http_prefix *x;

    if (!url_split(entry, &p)) {
        return http_api->error_set_param(
            err, KILN_EINVAL, "allow",
            "setting allow: %s is not a URL prefix (expected e.g. "
            "\"https://cdn.example.com/images/\")",
            http_shown(q, entry));
    }
    if (strcmp(p.scheme, "http") != 0 && strcmp(p.scheme, "https") != 0) {
        url_parts_free(&p);
        return http_api->error_set_param(err, KILN_EINVAL, "allow",
                                         "setting allow: %s is not an http:// "
                                         "or https:// URL prefix",
                                         http_shown(q, entry));
    }
    if (p.has_extras) {
        url_parts_free(&p);
        return http_api->error_set_param(
            err, KILN_EINVAL, "allow",
            "setting allow: the prefix for %s has a user name, password, "
            "query or fragment (expected scheme, host, optional port and "
            "path only)",
            http_shown(q, entry));
    }

    grown = realloc(st->prefixes, (st->n_prefixes + 1) * sizeof *grown);
    if (grown == NULL) {
        url_parts_free(&p);
        return http_api->error_set(err, KILN_ENOMEM, "out of memory");
    }
    st->prefixes = grown;
    x = &st->prefixes[st->n_prefixes];
    x->scheme = strdup(p.scheme);
    x->host = strdup(p.host);
    x->port = strtol(p.port, NULL, 10);
    x->path = strdup(p.path);
    url_parts_free(&p);
    st->n_prefixes++;
    if (x->scheme == NULL || x->host == NULL || x->path == NULL) {
        return http_api->error_set(err, KILN_ENOMEM, "out of memory");
    }
    return KILN_OK;
}

int
http_prefixes_parse(http_state *st, const char *text, kiln_error *err)
{
    char *copy;
    char *save = NULL;
    int rc = KILN_OK;

    if (text == NULL || text[0] == '\0') {
        return KILN_OK;
    }
    copy = strdup(text);
    if (copy == NULL) {
        return http_api->error_set(err, KILN_ENOMEM, "out of memory");
    }
    for (char *tok = strtok_r(copy, " ,\t\r\n", &save); tok != NULL;
         tok = strtok_r(NULL, " ,\t\r\n", &save)) {
        rc = prefix_add(st, tok, err);
        if (rc != KILN_OK) {
            break;
        }
    }
    free(copy);
    return rc;
}

void
http_prefixes_free(http_state *st)
{
    for (size_t i = 0; i < st->n_prefixes; i++) {
        free(st->prefixes[i].scheme);
        free(st->prefixes[i].host);
        free(st->prefixes[i].path);
    }
    free(st->prefixes);
    st->prefixes = NULL;
    st->n_prefixes = 0;
}

/* True when `path` starts with the prefix's path at a segment boundary:
 * "/img" covers "/img" and "/img/a.jpg" but not "/img2/a.jpg"; "/img/"
 * covers what starts with it. */
static bool
prefix_path_covers(const char *prefix, const char *path)
{
    size_t n = strlen(prefix);

    if (strncmp(prefix, path, n) != 0) {
        return false;
    }
    return n > 0 && (prefix[n - 1] == '/' || path[n] == '\0' || path[n] == '/');
}

bool
http_prefix_allows(const http_state *st, const char *url)
{
    url_parts p;
    long port;
    bool is_allowed = false;

    if (st->n_prefixes == 0) {
        return true;
    }
    if (!url_split(url, &p)) {
        return false;
    }
    port = strtol(p.port, NULL, 10);
    for (size_t i = 0; i < st->n_prefixes && !is_allowed; i++) {
        const http_prefix *x = &st->prefixes[i];

        is_allowed = strcmp(x->scheme, p.scheme) == 0 &&
                     strcasecmp(x->host, p.host) == 0 && x->port == port &&
                     prefix_path_covers(x->path, p.path);
    }
    url_parts_free(&p);
    return is_allowed;
}

int
http_resolve_location(const char *base, const char *location, char **out)
{
    CURLU *u = curl_url();
    char *s = NULL;
    int rc = KILN_EINVAL;

    *out = NULL;
    if (u == NULL) {
        return KILN_ENOMEM;
    }
    /* Setting a relative URL on a handle that holds one resolves it
     * against that one (RFC 3986 section 5), as a browser would. */
    if (curl_url_set(u, CURLUPART_URL, base, 0) == CURLUE_OK &&
        curl_url_set(u, CURLUPART_URL, location, 0) == CURLUE_OK &&
        curl_url_set(u, CURLUPART_FRAGMENT, NULL, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_URL, &s, 0) == CURLUE_OK) {
        *out = strdup(s);
        rc = *out != NULL ? KILN_OK : KILN_ENOMEM;
    }
    curl_free(s);
    curl_url_cleanup(u);
    return rc;
}
