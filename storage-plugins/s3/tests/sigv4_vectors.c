/*
 * Checks the s3 backend's SigV4 signer (../sigv4.c) against the AWS
 * Signature Version 4 test suite (the aws-c-auth cases in
 * ../shared/testdata/aws-sigv4/): for every case it rebuilds the request
 * from request.txt and context.json, signs it with header signing as the
 * backend does, and compares the canonical request, the string to sign,
 * the signature and the Authorization header with the expected files.
 *
 * Usage: s3-sigv4-vectors DIR. Prints "ok sigv4/CASE" or "FAIL sigv4/CASE:
 * why" per case; exits 1 when a case fails or none ran. Cases that ask
 * for path normalization on a path it would change do not apply (S3 signs
 * the path exactly as sent): a "#" comment line names them. The
 * query-signing (presigned URL) files are not used: the backend never
 * presigns.
 */
#define _GNU_SOURCE /* strdup */

#include "../sigv4.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#define VEC_MAX_HEADERS 32

typedef struct vec_request {
    char method[16];
    char *target; /* path and query as on the request line */
    char *names[VEC_MAX_HEADERS];
    char *values[VEC_MAX_HEADERS];
    size_t n_headers;
    const char *body;
    size_t body_len;
} vec_request;

static int n_ok, n_fail, n_na;

/* Reads a whole file, NUL-terminated; NULL when it cannot. */
static char *
vec_slurp(const char *dir, const char *name, size_t *len)
{
    char path[4096];
    FILE *f;
    char *p = NULL;
    long n;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 &&
        fseek(f, 0, SEEK_SET) == 0) {
        p = malloc((size_t)n + 1);
        if (p != NULL && fread(p, 1, (size_t)n, f) != (size_t)n) {
            free(p);
            p = NULL;
        }
        if (p != NULL) {
            p[n] = '\0';
            if (len != NULL) {
                *len = (size_t)n;
            }
        }
    }
    fclose(f);
    return p;
}

/* Expected texts end without a newline; some files carry one anyway. */
static void
vec_chomp(char *s)
{
    size_t n = strlen(s);

    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r')) {
        s[--n] = '\0';
    }
}

/* Parses request.txt: a request line, "Name:value" headers (a line that
 * starts with white space continues the previous value), an empty line
 * and the body. The text is modified in place. */
static int
vec_parse_request(char *text, vec_request *r)
{
    char *line = text;
    char *nl = strchr(line, '\n');
    char *sp;
    size_t n;

    memset(r, 0, sizeof *r);
    if (nl == NULL) {
        return -1;
    }
    *nl = '\0';
    sp = strchr(line, ' ');
    if (sp == NULL || (size_t)(sp - line) >= sizeof r->method) {
        return -1;
    }
    memcpy(r->method, line, (size_t)(sp - line));
    r->target = sp + 1;
    n = strlen(r->target);
    if (n > 9 && strcmp(r->target + n - 9, " HTTP/1.1") == 0) {
        r->target[n - 9] = '\0';
    }
    line = nl + 1;
    while (*line != '\0' && *line != '\n') {
        char *colon;

        nl = strchr(line, '\n');
        if (nl != NULL) {
            *nl = '\0';
        }
        if ((*line == ' ' || *line == '\t') && r->n_headers > 0) {
            /* A folded line: the signer's trimming joins it with a space. */
            char *prev = r->values[r->n_headers - 1];
            size_t a = strlen(prev);
            size_t b = strlen(line);
            char *joined = malloc(a + b + 2);

            if (joined == NULL) {
                return -1;
            }
            memcpy(joined, prev, a);
            joined[a] = '\n';
            memcpy(joined + a + 1, line, b + 1);
            free(prev);
            r->values[r->n_headers - 1] = joined;
        } else {
            colon = strchr(line, ':');
            if (colon == NULL || r->n_headers == VEC_MAX_HEADERS) {
                return -1;
            }
            *colon = '\0';
            r->names[r->n_headers] = strdup(line);
            r->values[r->n_headers] = strdup(colon + 1);
            if (r->names[r->n_headers] == NULL ||
                r->values[r->n_headers] == NULL) {
                return -1;
            }
            r->n_headers++;
        }
        if (nl == NULL) {
            line = nl;
            break;
        }
        line = nl + 1;
    }
    if (line != NULL && *line == '\n') {
        r->body = line + 1;
        r->body_len = strlen(r->body);
    } else {
        r->body = "";
    }
    return 0;
}

static void
vec_request_free(vec_request *r)
{
    for (size_t i = 0; i < r->n_headers; i++) {
        free(r->names[i]);
        free(r->values[i]);
    }
}

/* True when RFC 3986 dot-segment removal and slash merging would change
 * the path. */
static int
vec_path_needs_normalizing(const char *p)
{
    size_t n = strlen(p);

    return strstr(p, "//") != NULL || strstr(p, "/./") != NULL ||
           strstr(p, "/../") != NULL ||
           (n >= 2 && strcmp(p + n - 2, "/.") == 0) ||
           (n >= 3 && strcmp(p + n - 3, "/..") == 0);
}

static const char *
vec_json_string(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* "2015-08-30T12:36:00Z" -> "20150830T123600Z" */
static int
vec_amz_date(const char *ts, char out[17])
{
    size_t k = 0;

    for (; *ts != '\0' && k < 16; ts++) {
        if (*ts != '-' && *ts != ':') {
            out[k++] = *ts;
        }
    }
    out[k] = '\0';
    return k == 16 && *ts == '\0' ? 0 : -1;
}

static void
vec_fail(const char *name, const char *what, const char *got, const char *want)
{
    printf("FAIL sigv4/%s: %s differs; got <<%s>> expected <<%s>>\n", name,
           what, got, want);
    n_fail++;
}

static void
vec_case(const char *dir, const char *name)
{
    char *ctx_text = vec_slurp(dir, "context.json", NULL);
    char *req_text = vec_slurp(dir, "request.txt", NULL);
    char *want_creq = vec_slurp(dir, "header-canonical-request.txt", NULL);
    char *want_sts = vec_slurp(dir, "header-string-to-sign.txt", NULL);
    char *want_sig = vec_slurp(dir, "header-signature.txt", NULL);
    char *want_signed = vec_slurp(dir, "header-signed-request.txt", NULL);
    cJSON *ctx = NULL;
    vec_request req;
    s3_sig_header headers[VEC_MAX_HEADERS + 3];
    size_t n = 0;
    s3_buf path = {0};
    char amz_date[17];
    char body_hash[S3_SHA256_HEX];
    s3_sig_input in;
    s3_sig_output out = {0};
    const cJSON *creds;
    const char *token;
    const char *want_auth;
    char *query;
    char *eol;
    int sign_body;
    int omit_token;

    memset(&req, 0, sizeof req);
    if (ctx_text == NULL || req_text == NULL || want_creq == NULL ||
        want_sts == NULL || want_sig == NULL || want_signed == NULL) {
        printf("FAIL sigv4/%s: a file of the case is missing\n", name);
        n_fail++;
        goto done;
    }
    ctx = cJSON_Parse(ctx_text);
    creds = cJSON_GetObjectItemCaseSensitive(ctx, "credentials");
    if (ctx == NULL || creds == NULL || vec_parse_request(req_text, &req) ||
        vec_json_string(ctx, "timestamp") == NULL ||
        vec_amz_date(vec_json_string(ctx, "timestamp"), amz_date) != 0) {
        printf("FAIL sigv4/%s: cannot parse context.json or request.txt\n",
               name);
        n_fail++;
        goto done;
    }
    query = strchr(req.target, '?');
    if (query != NULL) {
        *query++ = '\0';
    }
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ctx, "normalize")) &&
        vec_path_needs_normalizing(req.target)) {
        printf("# sigv4/%s does not apply: it normalizes the path, S3 signs "
               "paths as sent\n",
               name);
        n_na++;
        goto done;
    }
    sign_body =
        cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ctx, "sign_body"));
    omit_token = cJSON_IsTrue(
        cJSON_GetObjectItemCaseSensitive(ctx, "omit_session_token"));
    token = vec_json_string(creds, "token");

    s3_sha256_hex(req.body, req.body_len, body_hash);
    for (size_t i = 0; i < req.n_headers; i++) {
        headers[n].name = req.names[i];
        headers[n++].value = req.values[i];
    }
    headers[n].name = "X-Amz-Date";
    headers[n++].value = amz_date;
    if (sign_body) {
        headers[n].name = "x-amz-content-sha256";
        headers[n++].value = body_hash;
    }
    /* omit_session_token: the token is sent but left out of the
     * signature, which is then the same as without a token. */
    if (token != NULL && !omit_token) {
        headers[n].name = "X-Amz-Security-Token";
        headers[n++].value = token;
    }
    s3_buf_add_uri(&path, req.target, strlen(req.target), true);
    s3_buf_add(&path, "", 0);

    memset(&in, 0, sizeof in);
    in.method = req.method;
    in.path = path.p;
    in.query = query;
    in.headers = headers;
    in.n_headers = n;
    in.payload_hash = body_hash;
    in.access_key_id = vec_json_string(creds, "access_key_id");
    in.secret_access_key = vec_json_string(creds, "secret_access_key");
    in.region = vec_json_string(ctx, "region");
    in.service = vec_json_string(ctx, "service");
    in.amz_date = amz_date;
    if (path.failed || in.access_key_id == NULL ||
        in.secret_access_key == NULL || in.region == NULL ||
        in.service == NULL || s3_sign(&in, &out) != 0) {
        printf("FAIL sigv4/%s: signing failed\n", name);
        n_fail++;
        goto done;
    }

    vec_chomp(want_creq);
    vec_chomp(want_sts);
    vec_chomp(want_sig);
    want_auth = strstr(want_signed, "\nAuthorization:");
    if (want_auth == NULL) {
        printf("FAIL sigv4/%s: no Authorization line in "
               "header-signed-request.txt\n",
               name);
        n_fail++;
        goto done;
    }
    want_auth += strlen("\nAuthorization:");
    eol = strchr(want_auth, '\n');
    if (eol != NULL) {
        *eol = '\0';
    }
    if (strcmp(out.canonical_request, want_creq) != 0) {
        vec_fail(name, "canonical request", out.canonical_request, want_creq);
    } else if (strcmp(out.string_to_sign, want_sts) != 0) {
        vec_fail(name, "string to sign", out.string_to_sign, want_sts);
    } else if (strcmp(out.signature, want_sig) != 0) {
        vec_fail(name, "signature", out.signature, want_sig);
    } else if (strcmp(out.authorization, want_auth) != 0) {
        vec_fail(name, "Authorization header", out.authorization, want_auth);
    } else {
        printf("ok sigv4/%s\n", name);
        n_ok++;
    }
done:
    s3_sig_output_free(&out);
    s3_buf_free(&path, false);
    vec_request_free(&req);
    cJSON_Delete(ctx);
    free(ctx_text);
    free(req_text);
    free(want_creq);
    free(want_sts);
    free(want_sig);
    free(want_signed);
}

static int
vec_name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int
main(int argc, char **argv)
{
    DIR *d;
    struct dirent *e;
    char **names = NULL;
    size_t n = 0;
    size_t cap = 0;

    if (argc != 2) {
        fprintf(stderr, "usage: %s VECTOR-DIR\n", argv[0]);
        return 2;
    }
    d = opendir(argv[1]);
    if (d == NULL) {
        fprintf(stderr, "%s: cannot open %s\n", argv[0], argv[1]);
        return 2;
    }
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        if (n == cap) {
            cap = cap == 0 ? 64 : cap * 2;
            names = realloc(names, cap * sizeof *names);
            if (names == NULL) {
                return 2;
            }
        }
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    if (n > 0) {
        qsort(names, n, sizeof *names, vec_name_cmp);
    }
    for (size_t i = 0; i < n; i++) {
        char dir[4096];

        snprintf(dir, sizeof dir, "%s/%s", argv[1], names[i]);
        vec_case(dir, names[i]);
        free(names[i]);
    }
    free(names);
    printf("# sigv4 vectors: %d passed, %d failed, %d not applicable\n", n_ok,
           n_fail, n_na);
    return n_fail == 0 && n_ok > 0 ? 0 : 1;
}
