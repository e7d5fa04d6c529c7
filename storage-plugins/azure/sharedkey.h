/*
 * Shared Key authorization for the Azure Blob service: the string to sign
 * of a request (verb, the standard headers in their fixed order, the
 * canonicalized x-ms-* headers and the canonicalized resource) and its
 * HMAC-SHA256 signature under the account key. request.c signs every call
 * of the "azure" storage backend with it; tests/sharedkey_vectors.c checks
 * it on its own. Nothing here knows about kiln, so the check links alone.
 */
#ifndef KILN_STORAGE_PLUGINS_AZURE_SHAREDKEY_H
#define KILN_STORAGE_PLUGINS_AZURE_SHAREDKEY_H

#include <stddef.h>
#include <stdint.h>

/* Account keys are 64 bytes; room for longer ones all the same. */
#define AZURE_SK_KEY_MAX 128
/* Base64 of a SHA-256 MAC: 44 characters and a NUL. */
#define AZURE_SK_SIG_SIZE 45
/* "Sun, 06 Nov 1994 08:49:37 GMT" and a NUL. */
#define AZURE_SK_DATE_SIZE 30

/* One name/value pair: a header or a query parameter. */
typedef struct azure_sk_pair {
    const char *name;
    const char *value;
} azure_sk_pair;

/* What the signature covers. Standard header values are NULL or "" when
 * the request does not send them. `headers` may list any headers: only
 * those named x-ms-* (any case) are signed. `path` is the URL path as
 * sent (percent-encoded, starting with "/", including an emulator's
 * account segment); `query` holds the decoded query parameters. */
typedef struct azure_sk_request {
    const char *verb;
    const char *content_encoding;
    const char *content_language;
    uint64_t content_length; /* 0 signs as an empty line */
    const char *content_md5;
    const char *content_type;
    const char *date;
    const char *if_modified_since;
    const char *if_match;
    const char *if_none_match;
    const char *if_unmodified_since;
    const char *range;
    const azure_sk_pair *headers;
    size_t n_headers;
    const char *account;
    const char *path;
    const azure_sk_pair *query;
    size_t n_query;
} azure_sk_request;

/* The string to sign of `r`, in a new malloc'd string (the caller frees
 * it), or NULL when out of memory. */
char *azure_sk_string_to_sign(const azure_sk_request *r);

/* Base64 HMAC-SHA256 of `sts` under `key` into `out`. Returns 0, or -1
 * when OpenSSL fails. */
int azure_sk_sign(const unsigned char *key, size_t key_len, const char *sts,
                  char out[AZURE_SK_SIG_SIZE]);

/* Decodes a base64 account key into `out` (AZURE_SK_KEY_MAX bytes) and
 * sets *len. Returns 0, or -1 when `b64` is not base64 or decodes to
 * nothing or too much. Never copies the key anywhere else. */
int azure_sk_decode_key(const char *b64, unsigned char *out, size_t *len);

/* Encodes `len` bytes of `in` as base64 into `out`, which must hold
 * 4 * ((len + 2) / 3) + 1 bytes; returns the length written. */
size_t azure_sk_base64(const unsigned char *in, size_t len, char *out);

/* Formats `t` (seconds since the epoch) as an RFC 1123 date in GMT, in
 * the C locale whatever the process's locale is. */
void azure_sk_date(int64_t t, char out[AZURE_SK_DATE_SIZE]);

#endif /* KILN_STORAGE_PLUGINS_AZURE_SHAREDKEY_H */
