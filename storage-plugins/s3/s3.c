/*
 * The "s3" storage backend: a service's files are objects in one bucket of
 * Amazon S3 or an S3-compatible server (MinIO, Ceph, Google Cloud Storage's
 * XML API with HMAC keys). This file holds the plugin descriptor, the
 * settings table, open()/close() (endpoint and addressing checked once),
 * the mapping of job paths to keys, and the error messages every failure
 * ends in. Requests are made by http.c, reads streamed by read.c, writes
 * uploaded by write.c.
 */
#define _GNU_SOURCE /* strdup, memmem, vasprintf */

#include "s3.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

/* Room for a quoted key or bucket in a message. */
#define S3_QUOTE_MAX 200

static int s3_init(kiln_plugin *self, const kiln_host_api *api,
                   kiln_error *err);
static void s3_fini(kiln_plugin *self);
static int s3_open(kiln_plugin *self, const void *settings, void **state,
                   kiln_error *err);
static void s3_close(void *state);

const kiln_host_api *s3_api;
kiln_plugin *s3_self;

/* libcurl's global state is released when both fini() has run and the
 * last bucket state is gone: a source held by libvips' operation cache
 * keeps one until the host drops that cache. */
static bool s3_curl_ready;
static bool s3_fini_done;
static int s3_live_states; /* atomic */

static const kiln_param_spec s3_settings_spec[] = {
    KILN_P_STRING(s3_settings, bucket, NULL,
                  "the bucket that holds the "
                  "service's files",
                  .flags = KILN_PARAM_REQUIRED, .min_len = 1, .max_len = 255),
    KILN_P_STRING(s3_settings, region, NULL,
                  "the bucket's region, e.g. \"eu-west-1\" (\"auto\" for "
                  "Google Cloud Storage)",
                  .flags = KILN_PARAM_REQUIRED, .min_len = 1, .max_len = 63),
    KILN_P_STRING(s3_settings, endpoint, NULL,
                  "http(s)://host[:port] of an S3-compatible server; "
                  "default https://s3.REGION.amazonaws.com",
                  .min_len = 1, .max_len = 1024),
    KILN_P_BOOL(s3_settings, path_style, false,
                "address the bucket in the path (host/bucket/key) rather "
                "than in the host name (bucket.host/key)"),
    KILN_P_STRING(s3_settings, access_key_id, NULL, "access key id",
                  .flags = KILN_PARAM_REQUIRED | KILN_PARAM_SECRET,
                  .min_len = 1, .max_len = 256),
    KILN_P_STRING(s3_settings, secret_access_key, NULL,
                  "secret access key; give it as ${ENV}",
                  .flags = KILN_PARAM_REQUIRED | KILN_PARAM_SECRET,
                  .min_len = 1, .max_len = 1024),
    KILN_P_STRING(s3_settings, session_token, NULL,
                  "session token of temporary credentials",
                  .flags = KILN_PARAM_SECRET, .min_len = 1, .max_len = 8192),
    KILN_P_STRING(s3_settings, prefix, NULL,
                  "key prefix put before every path, e.g. \"images/\"",
                  .max_len = 512),
    KILN_P_NUMBER(s3_settings, part_size, S3_PART_MIN_MIB, S3_PART_MAX_MIB, 8,
                  "MiB: outputs above this are uploaded in parts of this "
                  "size; a pending output holds up to twice this in memory",
                  .flags = KILN_PARAM_INTEGER),
    KILN_P_NUMBER(s3_settings, retries, 0, 10, 3,
                  "attempts after the first on a transport error, 5xx, 429 "
                  "or throttling answer",
                  .flags = KILN_PARAM_INTEGER),
    KILN_P_NUMBER(s3_settings, connect_timeout, 0.1, 300, 10,
                  "seconds to wait for a connection"),
    KILN_P_NUMBER(s3_settings, stall_timeout, 1, 3600, 30,
                  "seconds a transfer may move no data before it fails",
                  .flags = KILN_PARAM_INTEGER),
    KILN_P_STRING(s3_settings, proxy, NULL,
                  "proxy URL; proxies from the environment are never used",
                  .min_len = 1, .max_len = 1024),
    KILN_P_STRING(s3_settings, ca_file, NULL,
                  "PEM file of the certificate authorities to trust instead "
                  "of the system's",
                  .min_len = 1, .max_len = 4096),
};

static const kiln_storage s3_storage = {
    .size = sizeof(kiln_storage),
    .name = "s3",
    .summary = "objects in an Amazon S3 or S3-compatible bucket",
    .settings_size = sizeof(s3_settings),
    .settings = s3_settings_spec,
    .n_settings = KILN_N_ELEMENTS(s3_settings_spec),
    .open = s3_open,
    .close = s3_close,
    .open_read = s3_open_read,
    .open_write = s3_open_write,
    .commit = s3_commit,
    .abort = s3_abort,
};

KILN_PLUGIN_DEFINE("storage-s3", KILN_VERSION_STRING,
                   "Amazon S3 and S3-compatible storage (SigV4, streaming "
                   "reads, multipart uploads)",
                   s3_init, s3_fini);

static int
s3_init(kiln_plugin *self, const kiln_host_api *api, kiln_error *err)
{
    s3_api = api;
    s3_self = self;
    /* Reference-counted by libcurl, and thread-safe since 7.84; the host
     * may have called it already. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        return api->error_set(err, KILN_EINTERNAL,
                              "libcurl failed to initialize");
    }
    s3_curl_ready = true;
    s3_fini_done = false;
    return api->register_storage(self, &s3_storage, err);
}

static void
s3_fini(kiln_plugin *self)
{
    (void)self;
    s3_fini_done = true;
    if (s3_curl_ready &&
        __atomic_load_n(&s3_live_states, __ATOMIC_ACQUIRE) == 0) {
        curl_global_cleanup();
        s3_curl_ready = false;
    }
}

/* ------------------------------------------------------------ messages */

const char *
s3_quote(char *out, size_t size, const char *s)
{
    return s3_api->quote(out, size, s);
}

int
s3_fail_nomem(kiln_error *err, const char *key)
{
    char qk[S3_QUOTE_MAX];

    return s3_api->error_set(err, KILN_ENOMEM, "out of memory for %s",
                             s3_quote(qk, sizeof qk, key));
}

/* What an operator should look at for a 403, by S3 error code. */
static const char *
s3_denied_hint(const char *code)
{
    if (strcmp(code, "InvalidAccessKeyId") == 0) {
        return "expected a known key: check access_key_id";
    }
    if (strcmp(code, "SignatureDoesNotMatch") == 0) {
        return "expected a matching signature: check secret_access_key "
               "and region";
    }
    if (strcmp(code, "RequestTimeTooSkewed") == 0) {
        return "expected this machine's clock within 15 minutes of the "
               "server's";
    }
    if (strcmp(code, "ExpiredToken") == 0 ||
        strcmp(code, "InvalidToken") == 0) {
        return "expected valid temporary credentials: renew session_token";
    }
    return "expected credentials allowed to do this: check access_key_id, "
           "secret_access_key and the bucket's policy";
}

/* A transport failure in words, for the message. */
static const char *
s3_transport_what(CURLcode rc)
{
    switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
        return "cannot resolve the host of";
    case CURLE_COULDNT_CONNECT:
        return "cannot connect to";
    case CURLE_OPERATION_TIMEDOUT:
        return "timed out (connect_timeout or stall_timeout) talking to";
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CACERT_BADFILE:
        return "TLS failed (check ca_file and the server's certificate) "
               "with";
    default:
        return "transfer failed with";
    }
}

int
s3_fail(const s3_state *st, kiln_error *err, const char *verb, const char *key,
        const s3_outcome *o)
{
    char qk[S3_QUOTE_MAX];
    char qb[S3_QUOTE_MAX];
    char qe[S3_QUOTE_MAX];
    char tries[48] = "";
    char code[S3_CODE_MAX + 8];
    char said[S3_TEXT_MAX + 4] = "";

    s3_quote(qk, sizeof qk, key);
    s3_quote(qb, sizeof qb, st->bucket);
    s3_quote(qe, sizeof qe, st->endpoint);
    if (o->attempts > 1) {
        snprintf(tries, sizeof tries, "; %d attempts", o->attempts);
    }
    if (o->curl != CURLE_OK) {
        return s3_api->error_set(
            err, KILN_EIO, "cannot %s %s in bucket %s: %s %s (%s%s)", verb, qk,
            qb, s3_transport_what(o->curl), qe,
            o->curl_text[0] != '\0' ? o->curl_text
                                    : curl_easy_strerror(o->curl),
            tries);
    }
    snprintf(code, sizeof code, " %s", o->code);
    if (o->code[0] == '\0') {
        code[0] = '\0';
    }
    if (o->message[0] != '\0') {
        snprintf(said, sizeof said, ": %s", o->message);
    }

    if (o->status == 404 && strcmp(o->code, "NoSuchBucket") == 0) {
        return s3_api->error_set(
            err, KILN_EINVAL,
            "cannot %s %s in bucket %s: the bucket does not exist at %s "
            "(404 NoSuchBucket; expected an existing bucket: check the "
            "bucket, endpoint and path_style settings)",
            verb, qk, qb, qe);
    }
    if (o->status == 404 &&
        (o->code[0] == '\0' || strcmp(o->code, "NoSuchKey") == 0)) {
        return s3_api->error_set(err, KILN_ENOTFOUND,
                                 "cannot %s %s in bucket %s: no such "
                                 "object (404%s)",
                                 verb, qk, qb, code);
    }
    if (o->status == 412) {
        return s3_api->error_set(err, KILN_EIO,
                                 "cannot %s %s in bucket %s: the object "
                                 "changed while it was being read (412%s; "
                                 "expected it unchanged until the process "
                                 "ends)",
                                 verb, qk, qb, code);
    }
    if (o->status == 403) {
        return s3_api->error_set(err, KILN_EPERM,
                                 "cannot %s %s in bucket %s: access "
                                 "denied (403%s%s; %s)",
                                 verb, qk, qb, code, said,
                                 s3_denied_hint(o->code));
    }
    if (o->region[0] != '\0' && strcmp(o->region, st->region) != 0 &&
        (o->status == 301 || o->status == 307 || o->status == 400)) {
        char qr[S3_QUOTE_MAX];
        char qc[S3_QUOTE_MAX];

        s3_quote(qr, sizeof qr, o->region);
        s3_quote(qc, sizeof qc, st->region);
        return s3_api->error_set(err, KILN_EINVAL,
                                 "cannot %s %s in bucket %s: the bucket "
                                 "is in region %s, not %s (%ld%s; expected "
                                 "region %s in the settings)",
                                 verb, qk, qb, qr, qc, o->status, code, qr);
    }
    if (o->status == 301 || o->status == 307) {
        return s3_api->error_set(err, KILN_EINVAL,
                                 "cannot %s %s in bucket %s: the bucket "
                                 "is not served at %s (%ld%s; expected the "
                                 "bucket's own region, endpoint and "
                                 "path_style)",
                                 verb, qk, qb, qe, o->status, code);
    }
    return s3_api->error_set(err, KILN_EIO,
                             "cannot %s %s in bucket %s: HTTP %ld%s%s "
                             "(expected a 2xx answer%s)",
                             verb, qk, qb, o->status, code, said, tries);
}

gint64
s3_seek_position(gint64 pos, gint64 size, gint64 offset, int whence)
{
    gint64 to;

    switch (whence) {
    case SEEK_SET:
        to = offset;
        break;
    case SEEK_CUR:
        to = pos + offset;
        break;
    case SEEK_END:
        to = size + offset;
        break;
    default:
        return -1;
    }
    return to >= 0 ? to : -1;
}

bool
s3_xml_text(const char *xml, size_t len, const char *tag, char *out,
            size_t size)
{
    char open[64];
    char close[64];
    const char *a;
    const char *b;
    size_t k = 0;

    out[0] = '\0';
    if (xml == NULL || len == 0) {
        return false;
    }
    snprintf(open, sizeof open, "<%s>", tag);
    snprintf(close, sizeof close, "</%s>", tag);
    a = memmem(xml, len, open, strlen(open));
    if (a == NULL) {
        return false;
    }
    a += strlen(open);
    b = memmem(a, len - (size_t)(a - xml), close, strlen(close));
    if (b == NULL) {
        return false;
    }
    while (a < b && k + 1 < size) {
        static const struct {
            const char *ent;
            char c;
        } ents[] = {{"&amp;", '&'},
                    {"&lt;", '<'},
                    {"&gt;", '>'},
                    {"&quot;", '"'},
                    {"&apos;", '\''}};
        char c = *a++;

        if (c == '&') {
            for (size_t i = 0; i < KILN_N_ELEMENTS(ents); i++) {
                size_t n = strlen(ents[i].ent) - 1;

                if ((size_t)(b - a) >= n &&
                    memcmp(a, ents[i].ent + 1, n) == 0) {
                    c = ents[i].c;
                    a += n;
                    break;
                }
            }
        }
        /* Server text goes into messages and logs: no control bytes. */
        out[k++] = (unsigned char)c < 0x20 || c == 0x7f ? ' ' : c;
    }
    out[k] = '\0';
    return true;
}

/* ---------------------------------------------------------------- keys */

char *
s3_key_for(const s3_state *st, const char *path, kiln_error *err)
{
    char q[S3_QUOTE_MAX];
    size_t plen = strlen(st->prefix);
    size_t len;
    size_t *tops = NULL;
    size_t depth = 0;
    size_t n = 0;
    char *key = NULL;
    const char *p;

    if (path == NULL || path[0] == '\0') {
        s3_api->error_set(err, KILN_EINVAL,
                          "empty path (expected an object path such as "
                          "\"/in/a.jpg\")");
        return NULL;
    }
    len = strlen(path);
    if (path[len - 1] == '/') {
        s3_api->error_set(err, KILN_EINVAL,
                          "path %s ends with \"/\" (expected an object "
                          "name after the last \"/\")",
                          s3_quote(q, sizeof q, path));
        return NULL;
    }
    for (p = path; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            s3_api->error_set(err, KILN_EINVAL,
                              "path %s holds a control character "
                              "(expected printable text)",
                              s3_quote(q, sizeof q, path));
            return NULL;
        }
    }
    if (len > S3_KEY_MAX * 4) {
        s3_api->error_set(err, KILN_EINVAL,
                          "path %s is too long (expected a key of at "
                          "most %d bytes)",
                          s3_quote(q, sizeof q, path), S3_KEY_MAX);
        return NULL;
    }
    key = malloc(plen + len + 1);
    tops = malloc((len / 2 + 2) * sizeof *tops);
    if (key == NULL || tops == NULL) {
        free(key);
        free(tops);
        s3_fail_nomem(err, path);
        return NULL;
    }
    memcpy(key, st->prefix, plen);
    n = plen;
    /* Components are resolved as the local backend resolves them, so the
     * same request means the same objects on either: "a//b" and "a/./b"
     * are "a/b", and ".." steps back but never above the prefix. */
    for (p = path; *p != '\0';) {
        const char *end = strchr(p, '/');
        size_t clen = end != NULL ? (size_t)(end - p) : strlen(p);

        if (clen == 2 && p[0] == '.' && p[1] == '.') {
            if (depth == 0) {
                free(key);
                free(tops);
                s3_api->error_set(err, KILN_EPERM,
                                  "path %s escapes the storage root "
                                  "(\"..\" above the top of the bucket%s)",
                                  s3_quote(q, sizeof q, path),
                                  plen > 0 ? "'s prefix" : "");
                return NULL;
            }
            n = tops[--depth];
        } else if (clen > 0 && !(clen == 1 && p[0] == '.')) {
            tops[depth++] = n;
            if (n > plen) {
                key[n++] = '/';
            }
            memcpy(key + n, p, clen);
            n += clen;
        }
        p += clen;
        while (*p == '/') {
            p++;
        }
    }
    key[n] = '\0';
    free(tops);
    if (n == plen) {
        free(key);
        s3_api->error_set(err, KILN_EINVAL,
                          "path %s does not name an object (expected a "
                          "file name after the last \"/\")",
                          s3_quote(q, sizeof q, path));
        return NULL;
    }
    if (n > S3_KEY_MAX) {
        free(key);
        s3_api->error_set(err, KILN_EINVAL,
                          "path %s makes a key of %zu bytes (expected "
                          "at most %d)",
                          s3_quote(q, sizeof q, path), n, S3_KEY_MAX);
        return NULL;
    }
    return key;
}

/* ------------------------------------------------------- open and close */

void
s3_state_ref(s3_state *st)
{
    __atomic_add_fetch(&st->refs, 1, __ATOMIC_RELAXED);
}

static void
s3_free_secret(char *s)
{
    if (s != NULL) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}

void
s3_state_unref(s3_state *st)
{
    if (st == NULL || __atomic_sub_fetch(&st->refs, 1, __ATOMIC_ACQ_REL) > 0) {
        return;
    }
    while (st->idle != NULL) {
        s3_conn *c = st->idle;

        st->idle = c->next;
        s3_conn_free(c);
    }
    if (st->share != NULL) {
        curl_share_cleanup(st->share);
    }
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++) {
        pthread_mutex_destroy(&st->share_locks[i]);
    }
    pthread_mutex_destroy(&st->pool_lock);
    free(st->bucket);
    free(st->region);
    s3_free_secret(st->access_key_id);
    s3_free_secret(st->secret_access_key);
    s3_free_secret(st->session_token);
    free(st->prefix);
    free(st->proxy);
    free(st->ca_file);
    free(st->endpoint);
    free(st->base_url);
    free(st->host);
    free(st->path_base);
    free(st);
    if (__atomic_sub_fetch(&s3_live_states, 1, __ATOMIC_ACQ_REL) == 0 &&
        s3_fini_done && s3_curl_ready) {
        curl_global_cleanup();
        s3_curl_ready = false;
    }
}

static void
s3_share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *user)
{
    s3_state *st = user;

    (void)h;
    (void)access;
    pthread_mutex_lock(&st->share_locks[data]);
}

static void
s3_share_unlock(CURL *h, curl_lock_data data, void *user)
{
    s3_state *st = user;

    (void)h;
    pthread_mutex_unlock(&st->share_locks[data]);
}

static char *s3_printf(const char *fmt, ...) KILN_PRINTF(1, 2);

static char *
s3_printf(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;

    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0) {
        s = NULL;
    }
    va_end(ap);
    return s;
}

/* Checks a bucket name: S3's rules for a name that goes into a host name,
 * looser ones (GCS allows "_") when it only goes into the path. */
static int
s3_check_bucket(const s3_settings *s, kiln_error *err)
{
    char q[S3_QUOTE_MAX];
    size_t n = strlen(s->bucket);

    for (const char *p = s->bucket; *p != '\0'; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '.';

        if (s->path_style) {
            ok = ok || c == '_' || (c >= 'A' && c <= 'Z');
        }
        if (!ok) {
            return s3_api->error_set_param(
                err, KILN_EINVAL, "bucket",
                "bucket %s is not a valid bucket name (expected %s)",
                s3_quote(q, sizeof q, s->bucket),
                s->path_style ? "letters, digits, \".\", \"-\" and \"_\""
                              : "lower-case letters, digits, \".\" and "
                                "\"-\"; other names need path_style: true");
        }
    }
    if (!s->path_style &&
        (n < 3 || n > 63 || s->bucket[0] == '.' || s->bucket[0] == '-' ||
         s->bucket[n - 1] == '.' || s->bucket[n - 1] == '-')) {
        return s3_api->error_set_param(
            err, KILN_EINVAL, "bucket",
            "bucket %s cannot be a host name (expected 3 to 63 characters "
            "that start and end with a letter or digit, or path_style: "
            "true)",
            s3_quote(q, sizeof q, s->bucket));
    }
    return KILN_OK;
}

static int
s3_check_region(const char *region, kiln_error *err)
{
    char q[S3_QUOTE_MAX];

    for (const char *p = region; *p != '\0'; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
              *p == '-')) {
            return s3_api->error_set_param(
                err, KILN_EINVAL, "region",
                "region %s is not a region name (expected lower-case "
                "letters, digits and \"-\", e.g. \"eu-west-1\")",
                s3_quote(q, sizeof q, region));
        }
    }
    return KILN_OK;
}

/* Credentials go into headers: the key id into the Authorization
 * header's Credential=ID/date/..., the token as a header value. Their
 * values are secrets, so a message names the setting, never the value. */
static int
s3_check_credentials(const s3_settings *s, kiln_error *err)
{
    for (const char *p = s->access_key_id; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;

        if (c <= 0x20 || c >= 0x7f || c == '/' || c == ',' || c == '=') {
            return s3_api->error_set_param(
                err, KILN_EINVAL, "access_key_id",
                "access_key_id holds a character that cannot be sent "
                "(expected letters and digits, as in "
                "\"AKIAIOSFODNN7EXAMPLE\")");
        }
    }
    for (const char *p = s->session_token; p != NULL && *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;

        if (c < 0x20 || c == 0x7f) {
            return s3_api->error_set_param(
                err, KILN_EINVAL, "session_token",
                "session_token holds a control character (expected the "
                "token as issued, on one line)");
        }
    }
    return KILN_OK;
}

/* Splits the endpoint setting into scheme and host[:port]. */
static int
s3_parse_endpoint(const char *endpoint, char **scheme, char **hostport,
                  kiln_error *err)
{
    char q[S3_QUOTE_MAX];
    CURLU *u = curl_url();
    char *sch = NULL;
    char *host = NULL;
    char *port = NULL;
    char *path = NULL;
    char *extra = NULL;
    int rc = KILN_OK;

    *scheme = *hostport = NULL;
    s3_quote(q, sizeof q, endpoint);
    if (u == NULL) {
        return s3_api->error_set(err, KILN_ENOMEM, "out of memory");
    }
    if (curl_url_set(u, CURLUPART_URL, endpoint, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &sch, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        rc = s3_api->error_set_param(err, KILN_EINVAL, "endpoint",
                                     "endpoint %s is not a URL (expected "
                                     "http://host[:port] or "
                                     "https://host[:port])",
                                     q);
        goto done;
    }
    if (strcmp(sch, "http") != 0 && strcmp(sch, "https") != 0) {
        rc = s3_api->error_set_param(err, KILN_EINVAL, "endpoint",
                                     "endpoint %s is not an http(s) URL "
                                     "(expected http://host[:port] or "
                                     "https://host[:port])",
                                     q);
        goto done;
    }
    if (curl_url_get(u, CURLUPART_USER, &extra, 0) == CURLUE_OK ||
        curl_url_get(u, CURLUPART_QUERY, &extra, 0) == CURLUE_OK ||
        curl_url_get(u, CURLUPART_FRAGMENT, &extra, 0) == CURLUE_OK ||
        (curl_url_get(u, CURLUPART_PATH, &path, 0) == CURLUE_OK &&
         strcmp(path, "/") != 0 && path[0] != '\0')) {
        rc = s3_api->error_set_param(err, KILN_EINVAL, "endpoint",
                                     "endpoint %s has more than a scheme, "
                                     "host and port (expected "
                                     "http(s)://host[:port]; the bucket "
                                     "goes in \"bucket\", key prefixes in "
                                     "\"prefix\")",
                                     q);
        goto done;
    }
    (void)curl_url_get(u, CURLUPART_PORT, &port, 0);
    *scheme = strdup(sch);
    *hostport = port != NULL ? s3_printf("%s:%s", host, port) : strdup(host);
    if (*scheme == NULL || *hostport == NULL) {
        free(*scheme);
        free(*hostport);
        *scheme = *hostport = NULL;
        rc = s3_api->error_set(err, KILN_ENOMEM, "out of memory");
    }
done:
    curl_free(sch);
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_free(extra);
    curl_url_cleanup(u);
    return rc;
}

/* "images" and "/images/" both mean keys under "images/". */
static char *
s3_norm_prefix(const char *prefix, kiln_error *err)
{
    char q[S3_QUOTE_MAX];
    const char *p = prefix != NULL ? prefix : "";
    size_t n;

    while (*p == '/') {
        p++;
    }
    n = strlen(p);
    for (const char *c = p; *c != '\0'; c++) {
        if ((unsigned char)*c < 0x20 || *c == 0x7f) {
            s3_api->error_set_param(err, KILN_EINVAL, "prefix",
                                    "prefix %s holds a control character "
                                    "(expected printable text)",
                                    s3_quote(q, sizeof q, prefix));
            return NULL;
        }
    }
    if (n == 0) {
        return strdup("");
    }
    return p[n - 1] == '/' ? strdup(p) : s3_printf("%s/", p);
}

static int
s3_open(kiln_plugin *self, const void *settings, void **state, kiln_error *err)
{
    (void)self; /* a backend that makes no host call outside init */
    const s3_settings *s = settings;
    char q[S3_QUOTE_MAX];
    char *scheme = NULL;
    char *hostport = NULL;
    char *prefix;
    s3_state *st;
    int rc;

    *state = NULL;
    rc = s3_check_bucket(s, err);
    if (rc == KILN_OK) {
        rc = s3_check_region(s->region, err);
    }
    if (rc == KILN_OK) {
        rc = s3_check_credentials(s, err);
    }
    if (rc != KILN_OK) {
        return rc;
    }
    if (s->ca_file != NULL && access(s->ca_file, R_OK) != 0) {
        return s3_api->error_set_param(err, KILN_EINVAL, "ca_file",
                                       "ca_file %s cannot be read (expected "
                                       "a readable PEM file)",
                                       s3_quote(q, sizeof q, s->ca_file));
    }
    if (s->endpoint != NULL) {
        rc = s3_parse_endpoint(s->endpoint, &scheme, &hostport, err);
        if (rc != KILN_OK) {
            return rc;
        }
    } else {
        scheme = strdup("https");
        hostport = s3_printf("s3.%s.amazonaws.com", s->region);
    }

    prefix = s3_norm_prefix(s->prefix, err);
    if (prefix == NULL && err->code != KILN_OK) {
        free(scheme);
        free(hostport);
        return err->code;
    }
    st = calloc(1, sizeof *st);
    if (st == NULL || scheme == NULL || hostport == NULL || prefix == NULL) {
        free(st);
        free(scheme);
        free(hostport);
        free(prefix);
        return s3_api->error_set(err, KILN_ENOMEM, "out of memory");
    }
    st->refs = 1;
    __atomic_add_fetch(&s3_live_states, 1, __ATOMIC_ACQ_REL);
    pthread_mutex_init(&st->pool_lock, NULL);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++) {
        pthread_mutex_init(&st->share_locks[i], NULL);
    }
    st->bucket = strdup(s->bucket);
    st->region = strdup(s->region);
    st->access_key_id = strdup(s->access_key_id);
    st->secret_access_key = strdup(s->secret_access_key);
    st->session_token =
        s->session_token != NULL ? strdup(s->session_token) : NULL;
    st->proxy = strdup(s->proxy != NULL ? s->proxy : "");
    st->ca_file = s->ca_file != NULL ? strdup(s->ca_file) : NULL;
    st->endpoint = s3_printf("%s://%s", scheme, hostport);
    if (s->path_style) {
        st->host = strdup(hostport);
        st->path_base = s3_printf("/%s", s->bucket);
    } else {
        st->host = s3_printf("%s.%s", s->bucket, hostport);
        st->path_base = strdup("");
    }
    st->base_url =
        st->host != NULL ? s3_printf("%s://%s", scheme, st->host) : NULL;
    st->part_size = (size_t)s->part_size * S3_MIB;
    st->retries = (int)s->retries;
    st->connect_timeout_ms = (long)(s->connect_timeout * 1000);
    st->stall_timeout_s = (long)s->stall_timeout;
    free(scheme);
    free(hostport);
    st->prefix = prefix;
    if (st->bucket == NULL || st->region == NULL || st->access_key_id == NULL ||
        st->secret_access_key == NULL ||
        (s->session_token != NULL && st->session_token == NULL) ||
        st->proxy == NULL || (s->ca_file != NULL && st->ca_file == NULL) ||
        st->endpoint == NULL || st->host == NULL || st->path_base == NULL ||
        st->base_url == NULL) {
        s3_state_unref(st);
        return s3_api->error_set(err, KILN_ENOMEM, "out of memory");
    }

    st->share = curl_share_init();
    if (st->share == NULL ||
        curl_share_setopt(st->share, CURLSHOPT_LOCKFUNC, s3_share_lock) ||
        curl_share_setopt(st->share, CURLSHOPT_UNLOCKFUNC, s3_share_unlock) ||
        curl_share_setopt(st->share, CURLSHOPT_USERDATA, st) ||
        curl_share_setopt(st->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) ||
        curl_share_setopt(st->share, CURLSHOPT_SHARE,
                          CURL_LOCK_DATA_SSL_SESSION)) {
        s3_state_unref(st);
        return s3_api->error_set(err, KILN_EINTERNAL,
                                 "cannot set up libcurl's share object");
    }
    *state = st;
    return KILN_OK;
}

static void
s3_close(void *state)
{
    s3_state_unref(state);
}
