/*
 * AWS Signature Version 4 for the "s3" storage backend, and the small
 * string helpers it is built on. Pure functions over OpenSSL's SHA-256 and
 * HMAC with no I/O: http.c signs every request with s3_sign(), and
 * tests/sigv4_vectors.c checks the canonical request, string to sign and
 * Authorization header against the AWS test suite.
 */
#ifndef KILN_STORAGE_PLUGINS_S3_SIGV4_H
#define KILN_STORAGE_PLUGINS_S3_SIGV4_H

#include <stdbool.h>
#include <stddef.h>

/* Room for a SHA-256 in lower-case hex and its NUL. */
#define S3_SHA256_HEX 65

/* A growable string. Appending never fails loudly: on allocation failure
 * `failed` is set and later appends do nothing, so a builder checks once
 * at the end. */
typedef struct s3_buf {
    char *p;
    size_t len;
    size_t cap;
    bool failed;
} s3_buf;

void s3_buf_add(s3_buf *b, const void *data, size_t n);
void s3_buf_adds(s3_buf *b, const char *s);
/* Appends one byte. */
void s3_buf_addc(s3_buf *b, char c);
/* Appends `s` URI-encoded as SigV4 wants it: every byte but A-Z a-z 0-9
 * - _ . ~ becomes %XX (upper-case hex); "/" is kept when keep_slash. */
void s3_buf_add_uri(s3_buf *b, const char *s, size_t n, bool keep_slash);
/* Frees the text (zeroing it first when `wipe`: it held a secret). */
void s3_buf_free(s3_buf *b, bool wipe);

/* SHA-256 of data, in lower-case hex. */
void s3_sha256_hex(const void *data, size_t n, char out[S3_SHA256_HEX]);

/* One header to sign: any case, any surrounding or repeated white space
 * (the canonical form lower-cases the name and trims the value). */
typedef struct s3_sig_header {
    const char *name;
    const char *value;
} s3_sig_header;

/* What is signed. Every header in `headers` is signed (the caller puts
 * host, x-amz-date, x-amz-content-sha256 and x-amz-security-token there
 * when it sends them); repeated names are joined with "," in order. */
typedef struct s3_sig_input {
    const char *method;
    const char *path;  /* URI-encoded once, as sent; S3 never normalizes */
    const char *query; /* as sent ("a=1&b"), or NULL; re-encoded, sorted */
    const s3_sig_header *headers;
    size_t n_headers;
    const char *payload_hash; /* hex SHA-256 or "UNSIGNED-PAYLOAD" */
    const char *access_key_id;
    const char *secret_access_key;
    const char *region;
    const char *service;  /* "s3" */
    const char *amz_date; /* "20150830T123600Z", the x-amz-date value */
} s3_sig_input;

/* The intermediate texts are kept for the test vectors and for debugging;
 * none holds a secret. */
typedef struct s3_sig_output {
    char *canonical_request;
    char *string_to_sign;
    char *authorization; /* the Authorization header's value */
    char signature[S3_SHA256_HEX];
} s3_sig_output;

/* Signs `in` into *out (free it with s3_sig_output_free, also after a
 * failure). Returns 0, or -1 when out of memory or when amz_date is not
 * 16 characters. */
int s3_sign(const s3_sig_input *in, s3_sig_output *out);
void s3_sig_output_free(s3_sig_output *out);

#endif /* KILN_STORAGE_PLUGINS_S3_SIGV4_H */
