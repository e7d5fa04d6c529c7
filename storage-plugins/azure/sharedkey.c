/*
 * Shared Key signing for the Azure Blob service (the 2009-09-19 and later
 * format). The string to sign is the verb and twelve standard header
 * values, one per line in a fixed order, then every x-ms-* header as
 * "name:value\n" sorted by lower-cased name, then the canonicalized
 * resource: "/" account, the encoded URL path, and each query parameter as
 * "\nname:value" sorted by lower-cased name with decoded values. The
 * signature is base64(HMAC-SHA256(base64-decoded key, string to sign)).
 */
#define _GNU_SOURCE

#include "sharedkey.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

/* A growing string; `failed` sticks after the first allocation failure so
 * the builder needs one check at the end. */
typedef struct sk_str {
    char *s;
    size_t len, cap;
    bool failed;
} sk_str;

/* A pair with a lower-cased name, for sorting. */
typedef struct sk_item {
    char *name;
    const char *value;
} sk_item;

static void
sk_put(sk_str *b, const char *s, size_t n)
{
    if (b->failed || (n == 0 && b->s != NULL)) {
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap == 0 ? 256 : b->cap;
        char *p;

        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        p = realloc(b->s, cap);
        if (p == NULL) {
            b->failed = true;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    if (n > 0) {
        memcpy(b->s + b->len, s, n);
    }
    b->len += n;
    b->s[b->len] = '\0';
}

static void
sk_puts(sk_str *b, const char *s)
{
    sk_put(b, s, s != NULL ? strlen(s) : 0);
}

/* A standard header's line: its value (or nothing) and "\n". */
static void
sk_line(sk_str *b, const char *value)
{
    sk_puts(b, value);
    sk_put(b, "\n", 1);
}

/* A header value as the service compares it: surrounding white space
 * trimmed, each inner run of white space as one space. */
static void
sk_put_value(sk_str *b, const char *v)
{
    bool space = false;

    while (*v == ' ' || *v == '\t') {
        v++;
    }
    for (; *v != '\0'; v++) {
        if (*v == ' ' || *v == '\t' || *v == '\r' || *v == '\n') {
            space = true;
            continue;
        }
        if (space) {
            sk_put(b, " ", 1);
            space = false;
        }
        sk_put(b, v, 1);
    }
}

static char *
sk_lower_dup(const char *s)
{
    char *d = strdup(s);

    if (d != NULL) {
        for (char *p = d; *p != '\0'; p++) {
            *p = (char)tolower((unsigned char)*p);
        }
    }
    return d;
}

static int
sk_item_cmp(const void *a, const void *b)
{
    const sk_item *x = a;
    const sk_item *y = b;
    int c = strcmp(x->name, y->name);

    if (c != 0) {
        return c;
    }
    return strcmp(x->value != NULL ? x->value : "",
                  y->value != NULL ? y->value : "");
}

/* Copies the pairs (only the x-ms-* ones when `ms_only`) with lower-cased
 * names into a sorted array; returns the count, or -1 when out of
 * memory. */
static long
sk_sorted(const azure_sk_pair *pairs, size_t n, bool ms_only, sk_item **out)
{
    sk_item *items = calloc(n + 1, sizeof *items);
    size_t k = 0;

    *out = items;
    if (items == NULL) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (ms_only && strncasecmp(pairs[i].name, "x-ms-", 5) != 0) {
            continue;
        }
        items[k].name = sk_lower_dup(pairs[i].name);
        items[k].value = pairs[i].value;
        if (items[k].name == NULL) {
            for (size_t j = 0; j < k; j++) {
                free(items[j].name);
            }
            free(items);
            *out = NULL;
            return -1;
        }
        k++;
    }
    qsort(items, k, sizeof *items, sk_item_cmp);
    return (long)k;
}

static void
sk_items_free(sk_item *items, long n)
{
    for (long i = 0; i < n; i++) {
        free(items[i].name);
    }
    free(items);
}

/* Appends "name:value" per distinct name; a name given several times gets
 * its values, in sorted order, joined by commas (both the header and the
 * query rules say so). `before` and `after` frame each entry. */
static void
sk_put_items(sk_str *b, const sk_item *items, long n, const char *before,
             const char *after, bool normalize)
{
    for (long i = 0; i < n; i++) {
        bool same = i > 0 && strcmp(items[i].name, items[i - 1].name) == 0;

        if (same) {
            sk_put(b, ",", 1);
        } else {
            if (i > 0) {
                sk_puts(b, after);
            }
            sk_puts(b, before);
            sk_puts(b, items[i].name);
            sk_put(b, ":", 1);
        }
        if (normalize) {
            sk_put_value(b, items[i].value != NULL ? items[i].value : "");
        } else {
            sk_puts(b, items[i].value);
        }
    }
    if (n > 0) {
        sk_puts(b, after);
    }
}

char *
azure_sk_string_to_sign(const azure_sk_request *r)
{
    sk_str b = {0};
    sk_item *headers = NULL;
    sk_item *query = NULL;
    long n_headers;
    long n_query;
    char length[24] = "";

    if (r->content_length > 0) {
        snprintf(length, sizeof length, "%llu",
                 (unsigned long long)r->content_length);
    }
    sk_line(&b, r->verb);
    sk_line(&b, r->content_encoding);
    sk_line(&b, r->content_language);
    sk_line(&b, length);
    sk_line(&b, r->content_md5);
    sk_line(&b, r->content_type);
    sk_line(&b, r->date);
    sk_line(&b, r->if_modified_since);
    sk_line(&b, r->if_match);
    sk_line(&b, r->if_none_match);
    sk_line(&b, r->if_unmodified_since);
    sk_line(&b, r->range);

    n_headers = sk_sorted(r->headers, r->n_headers, true, &headers);
    n_query = sk_sorted(r->query, r->n_query, false, &query);
    if (n_headers < 0 || n_query < 0) {
        b.failed = true;
    } else {
        sk_put_items(&b, headers, n_headers, "", "\n", true);
        sk_put(&b, "/", 1);
        sk_puts(&b, r->account);
        sk_puts(&b, r->path);
        sk_put_items(&b, query, n_query, "\n", "", false);
    }
    if (headers != NULL) {
        sk_items_free(headers, n_headers);
    }
    if (query != NULL) {
        sk_items_free(query, n_query);
    }
    if (b.failed) {
        free(b.s);
        return NULL;
    }
    return b.s;
}

size_t
azure_sk_base64(const unsigned char *in, size_t len, char *out)
{
    /* EVP_EncodeBlock writes no line breaks and NUL-terminates. */
    return (size_t)EVP_EncodeBlock((unsigned char *)out, in, (int)len);
}

int
azure_sk_sign(const unsigned char *key, size_t key_len, const char *sts,
              char out[AZURE_SK_SIG_SIZE])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;

    if (HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)sts,
             strlen(sts), mac, &mac_len) == NULL ||
        mac_len != 32) {
        return -1;
    }
    azure_sk_base64(mac, mac_len, out);
    return 0;
}

int
azure_sk_decode_key(const char *b64, unsigned char *out, size_t *len)
{
    unsigned char tmp[AZURE_SK_KEY_MAX + 3];
    size_t n = strlen(b64);
    size_t pad = 0;
    int got;

    *len = 0;
    /* EVP_DecodeBlock ignores neither bad lengths nor, reliably, bad
     * characters in every OpenSSL version: check both here. */
    if (n == 0 || n % 4 != 0 || n / 4 * 3 > sizeof tmp) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)b64[i];

        if (c == '=' && i >= n - 2) {
            pad++;
            continue;
        }
        if (pad > 0 || !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                         (c >= '0' && c <= '9') || c == '+' || c == '/')) {
            return -1;
        }
    }
    got = EVP_DecodeBlock(tmp, (const unsigned char *)b64, (int)n);
    if (got < 0 || (size_t)got < pad || (size_t)got - pad == 0 ||
        (size_t)got - pad > AZURE_SK_KEY_MAX) {
        OPENSSL_cleanse(tmp, sizeof tmp);
        return -1;
    }
    /* EVP_DecodeBlock counts the padding as zero bytes. */
    *len = (size_t)got - pad;
    memcpy(out, tmp, *len);
    OPENSSL_cleanse(tmp, sizeof tmp);
    return 0;
}

void
azure_sk_date(int64_t t, char out[AZURE_SK_DATE_SIZE])
{
    /* strftime's %a and %b follow the locale; the header must not. */
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed",
                                    "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr",
                                       "May", "Jun", "Jul", "Aug",
                                       "Sep", "Oct", "Nov", "Dec"};
    time_t tt = (time_t)t;
    struct tm tm;

    gmtime_r(&tt, &tm);
    snprintf(out, AZURE_SK_DATE_SIZE, "%s, %02d %s %04d %02d:%02d:%02d GMT",
             days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12],
             tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}
