/*
 * AWS Signature Version 4, as S3 uses it: the canonical request (method,
 * path encoded once and never normalized, sorted query, canonical headers,
 * payload hash), the string to sign over its SHA-256, and the HMAC chain
 * from the secret key through date, region and service to the signature.
 * See sigv4.h for the contract; tests/sigv4_vectors.c for the evidence.
 */
#define _GNU_SOURCE /* strdup */

#include "sigv4.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#define S3_SIG_ALGORITHM "AWS4-HMAC-SHA256"

/* One query parameter or header while it is being sorted; `order` keeps
 * repeated header names in the order they were given. */
typedef struct s3_sig_pair {
    char *name;
    char *value;
    size_t order;
} s3_sig_pair;

static const char s3_hex_lower[] = "0123456789abcdef";
static const char s3_hex_upper[] = "0123456789ABCDEF";

void
s3_buf_add(s3_buf *b, const void *data, size_t n)
{
    if (b->failed) {
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap < 64 ? 64 : b->cap;
        char *p;

        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        p = realloc(b->p, cap);
        if (p == NULL) {
            b->failed = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    if (n > 0) {
        memcpy(b->p + b->len, data, n);
    }
    b->len += n;
    b->p[b->len] = '\0';
}

void
s3_buf_adds(s3_buf *b, const char *s)
{
    s3_buf_add(b, s, strlen(s));
}

void
s3_buf_addc(s3_buf *b, char c)
{
    s3_buf_add(b, &c, 1);
}

static bool
s3_is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
           c == '~';
}

void
s3_buf_add_uri(s3_buf *b, const char *s, size_t n, bool keep_slash)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (s3_is_unreserved(c) || (keep_slash && c == '/')) {
            s3_buf_addc(b, (char)c);
        } else {
            char esc[3] = {'%', s3_hex_upper[c >> 4], s3_hex_upper[c & 15]};

            s3_buf_add(b, esc, 3);
        }
    }
}

void
s3_buf_free(s3_buf *b, bool wipe)
{
    if (b->p != NULL && wipe) {
        OPENSSL_cleanse(b->p, b->cap);
    }
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
    b->failed = false;
}

static void
s3_hex(const unsigned char *in, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = s3_hex_lower[in[i] >> 4];
        out[2 * i + 1] = s3_hex_lower[in[i] & 15];
    }
    out[2 * n] = '\0';
}

void
s3_sha256_hex(const void *data, size_t n, char out[S3_SHA256_HEX])
{
    unsigned char md[SHA256_DIGEST_LENGTH];

    SHA256(data, n, md);
    s3_hex(md, sizeof md, out);
}

/* out = HMAC-SHA256(key, msg); 32 bytes. */
static int
s3_hmac(const unsigned char *key, size_t key_len, const char *msg,
        unsigned char out[SHA256_DIGEST_LENGTH])
{
    unsigned int len = 0;

    if (HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)msg,
             strlen(msg), out, &len) == NULL ||
        len != SHA256_DIGEST_LENGTH) {
        return -1;
    }
    return 0;
}

static int
s3_hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Percent-decodes s[0..n) and encodes the result again, so that a query
 * arrives in one canonical spelling whichever way the caller escaped it.
 * A "%" not followed by two hex digits stands for itself. */
static char *
s3_reencode(const char *s, size_t n)
{
    s3_buf raw = {0};
    s3_buf enc = {0};

    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n) {
            int hi = s3_hexval(s[i + 1]);
            int lo = s3_hexval(s[i + 2]);

            if (hi >= 0 && lo >= 0) {
                s3_buf_addc(&raw, (char)(hi << 4 | lo));
                i += 2;
                continue;
            }
        }
        s3_buf_addc(&raw, s[i]);
    }
    s3_buf_add(&raw, "", 0);
    if (!raw.failed) {
        s3_buf_add_uri(&enc, raw.p, raw.len, false);
        s3_buf_add(&enc, "", 0);
    }
    s3_buf_free(&raw, false);
    if (raw.failed || enc.failed) {
        s3_buf_free(&enc, false);
        return NULL;
    }
    return enc.p;
}

/* Query parameters sort by name, then value. */
static int
s3_query_cmp(const void *a, const void *b)
{
    const s3_sig_pair *x = a;
    const s3_sig_pair *y = b;
    int c = strcmp(x->name, y->name);

    return c != 0 ? c : strcmp(x->value, y->value);
}

/* Headers sort by name; repeated names keep the order they came in, since
 * their values are joined in that order. */
static int
s3_header_cmp(const void *a, const void *b)
{
    const s3_sig_pair *x = a;
    const s3_sig_pair *y = b;
    int c = strcmp(x->name, y->name);

    if (c != 0) {
        return c;
    }
    return x->order < y->order ? -1 : x->order > y->order;
}

static void
s3_pairs_free(s3_sig_pair *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(p[i].name);
        free(p[i].value);
    }
    free(p);
}

/* Appends the canonical query: each name=value re-encoded, sorted by name
 * then value, joined by "&"; a parameter without "=" has an empty value. */
static int
s3_add_canonical_query(s3_buf *b, const char *query)
{
    s3_sig_pair *pairs = NULL;
    size_t n = 0;
    size_t cap = 0;
    const char *p = query;
    int rc = -1;

    while (p != NULL && *p != '\0') {
        const char *end = strchr(p, '&');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        size_t name_len = eq != NULL ? (size_t)(eq - p) : len;

        if (len > 0) {
            if (n == cap) {
                size_t ncap = cap == 0 ? 8 : cap * 2;
                s3_sig_pair *np = realloc(pairs, ncap * sizeof *np);

                if (np == NULL) {
                    goto done;
                }
                pairs = np;
                cap = ncap;
            }
            pairs[n].name = s3_reencode(p, name_len);
            pairs[n].value = eq != NULL
                                 ? s3_reencode(eq + 1, len - name_len - 1)
                                 : s3_reencode("", 0);
            pairs[n].order = n;
            n++;
            if (pairs[n - 1].name == NULL || pairs[n - 1].value == NULL) {
                goto done;
            }
        }
        p = end != NULL ? end + 1 : NULL;
    }
    if (n > 0) {
        qsort(pairs, n, sizeof *pairs, s3_query_cmp);
    }
    for (size_t i = 0; i < n; i++) {
        if (i > 0) {
            s3_buf_addc(b, '&');
        }
        s3_buf_adds(b, pairs[i].name);
        s3_buf_addc(b, '=');
        s3_buf_adds(b, pairs[i].value);
    }
    rc = 0;
done:
    s3_pairs_free(pairs, n);
    return rc;
}

/* A header value with leading and trailing white space removed and every
 * inner run of white space (folded lines included) made one space. */
static char *
s3_trimall(const char *v)
{
    size_t n = strlen(v);
    char *out = malloc(n + 1);
    size_t k = 0;
    bool space = false;

    if (out == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        char c = v[i];

        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            space = k > 0;
            continue;
        }
        if (space) {
            out[k++] = ' ';
            space = false;
        }
        out[k++] = c;
    }
    out[k] = '\0';
    return out;
}

/* Appends the canonical headers block (each "name:value\n") to b and the
 * signed header list ("a;b;c") to names. */
static int
s3_add_canonical_headers(s3_buf *b, s3_buf *names, const s3_sig_input *in)
{
    s3_sig_pair *h = calloc(in->n_headers + 1, sizeof *h);
    int rc = -1;

    if (h == NULL) {
        return -1;
    }
    for (size_t i = 0; i < in->n_headers; i++) {
        h[i].name = strdup(in->headers[i].name);
        h[i].value = s3_trimall(in->headers[i].value);
        h[i].order = i;
        if (h[i].name == NULL || h[i].value == NULL) {
            goto done;
        }
        for (char *c = h[i].name; *c != '\0'; c++) {
            if (*c >= 'A' && *c <= 'Z') {
                *c = (char)(*c - 'A' + 'a');
            }
        }
    }
    qsort(h, in->n_headers, sizeof *h, s3_header_cmp);
    for (size_t i = 0; i < in->n_headers; i++) {
        bool first = i == 0 || strcmp(h[i].name, h[i - 1].name) != 0;
        bool last =
            i + 1 == in->n_headers || strcmp(h[i].name, h[i + 1].name) != 0;

        if (first) {
            if (names->len > 0) {
                s3_buf_addc(names, ';');
            }
            s3_buf_adds(names, h[i].name);
            s3_buf_adds(b, h[i].name);
            s3_buf_addc(b, ':');
        } else {
            s3_buf_addc(b, ',');
        }
        s3_buf_adds(b, h[i].value);
        if (last) {
            s3_buf_addc(b, '\n');
        }
    }
    rc = 0;
done:
    s3_pairs_free(h, in->n_headers);
    return rc;
}

/* The signing key: HMAC chain over date, region, service, "aws4_request",
 * starting from "AWS4" + secret. */
static int
s3_signing_key(const s3_sig_input *in, const char *date,
               unsigned char key[SHA256_DIGEST_LENGTH])
{
    s3_buf secret = {0};
    unsigned char k1[SHA256_DIGEST_LENGTH];
    unsigned char k2[SHA256_DIGEST_LENGTH];
    int rc = -1;

    s3_buf_adds(&secret, "AWS4");
    s3_buf_adds(&secret, in->secret_access_key);
    if (!secret.failed &&
        s3_hmac((const unsigned char *)secret.p, secret.len, date, k1) == 0 &&
        s3_hmac(k1, sizeof k1, in->region, k2) == 0 &&
        s3_hmac(k2, sizeof k2, in->service, k1) == 0 &&
        s3_hmac(k1, sizeof k1, "aws4_request", key) == 0) {
        rc = 0;
    }
    OPENSSL_cleanse(k1, sizeof k1);
    OPENSSL_cleanse(k2, sizeof k2);
    s3_buf_free(&secret, true);
    return rc;
}

int
s3_sign(const s3_sig_input *in, s3_sig_output *out)
{
    s3_buf creq = {0};
    s3_buf names = {0};
    s3_buf sts = {0};
    s3_buf auth = {0};
    s3_buf scope = {0};
    char date[9];
    char creq_hash[S3_SHA256_HEX];
    unsigned char key[SHA256_DIGEST_LENGTH];
    unsigned char sig[SHA256_DIGEST_LENGTH];
    int rc = -1;

    memset(out, 0, sizeof *out);
    if (strlen(in->amz_date) != 16) {
        return -1;
    }
    memcpy(date, in->amz_date, 8);
    date[8] = '\0';

    s3_buf_adds(&creq, in->method);
    s3_buf_addc(&creq, '\n');
    s3_buf_adds(&creq, in->path);
    s3_buf_addc(&creq, '\n');
    if (s3_add_canonical_query(&creq, in->query) != 0) {
        goto done;
    }
    s3_buf_addc(&creq, '\n');
    if (s3_add_canonical_headers(&creq, &names, in) != 0) {
        goto done;
    }
    s3_buf_addc(&creq, '\n');
    s3_buf_add(&names, "", 0);
    if (names.failed) {
        goto done;
    }
    s3_buf_adds(&creq, names.p);
    s3_buf_addc(&creq, '\n');
    s3_buf_adds(&creq, in->payload_hash);

    s3_buf_adds(&scope, date);
    s3_buf_addc(&scope, '/');
    s3_buf_adds(&scope, in->region);
    s3_buf_addc(&scope, '/');
    s3_buf_adds(&scope, in->service);
    s3_buf_adds(&scope, "/aws4_request");
    if (creq.failed || scope.failed) {
        goto done;
    }

    s3_sha256_hex(creq.p, creq.len, creq_hash);
    s3_buf_adds(&sts, S3_SIG_ALGORITHM "\n");
    s3_buf_adds(&sts, in->amz_date);
    s3_buf_addc(&sts, '\n');
    s3_buf_adds(&sts, scope.p);
    s3_buf_addc(&sts, '\n');
    s3_buf_adds(&sts, creq_hash);
    if (sts.failed || s3_signing_key(in, date, key) != 0) {
        goto done;
    }
    if (s3_hmac(key, sizeof key, sts.p, sig) != 0) {
        goto done;
    }
    s3_hex(sig, sizeof sig, out->signature);

    s3_buf_adds(&auth, S3_SIG_ALGORITHM " Credential=");
    s3_buf_adds(&auth, in->access_key_id);
    s3_buf_addc(&auth, '/');
    s3_buf_adds(&auth, scope.p);
    s3_buf_adds(&auth, ", SignedHeaders=");
    s3_buf_adds(&auth, names.p);
    s3_buf_adds(&auth, ", Signature=");
    s3_buf_adds(&auth, out->signature);
    if (auth.failed) {
        goto done;
    }
    out->canonical_request = creq.p;
    out->string_to_sign = sts.p;
    out->authorization = auth.p;
    creq.p = sts.p = auth.p = NULL;
    rc = 0;
done:
    OPENSSL_cleanse(key, sizeof key);
    s3_buf_free(&creq, false);
    s3_buf_free(&names, false);
    s3_buf_free(&sts, false);
    s3_buf_free(&auth, false);
    s3_buf_free(&scope, false);
    return rc;
}

void
s3_sig_output_free(s3_sig_output *out)
{
    free(out->canonical_request);
    free(out->string_to_sign);
    free(out->authorization);
    memset(out, 0, sizeof *out);
}
