/*
 * Calls to the Blob service for the "azure" backend: a pool of libcurl
 * handle pairs (one multi handle driving one easy handle, so a pair keeps
 * its connections between calls and a streamed read can be driven a bit
 * at a time), Shared Key signed requests, retries with backoff when the
 * service is busy, and the error messages for what comes back. read.c and
 * write.c build on it.
 */
#define _GNU_SOURCE

#include "azure.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

struct azure_conn {
    CURLM *multi;
    CURL *easy;
    bool attached; /* the easy handle is in the multi handle */
    azure_conn *next;
};

static void
azure_conn_free(azure_conn *c)
{
    if (c == NULL) {
        return;
    }
    azure_stop(c);
    if (c->easy != NULL) {
        curl_easy_cleanup(c->easy);
    }
    if (c->multi != NULL) {
        curl_multi_cleanup(c->multi);
    }
    free(c);
}

azure_conn *
azure_conn_take(azure_state *st, kiln_error *err)
{
    azure_conn *c;

    pthread_mutex_lock(&st->pool_lock);
    c = st->idle;
    if (c != NULL) {
        st->idle = c->next;
        st->n_idle--;
    }
    pthread_mutex_unlock(&st->pool_lock);
    if (c != NULL) {
        c->next = NULL;
        return c;
    }

    c = calloc(1, sizeof *c);
    if (c == NULL) {
        azure_api->error_set(err, KILN_ENOMEM, "out of memory");
        return NULL;
    }
    c->multi = curl_multi_init();
    c->easy = curl_easy_init();
    if (c->multi == NULL || c->easy == NULL) {
        azure_conn_free(c);
        azure_api->error_set(err, KILN_ENOMEM,
                             "cannot create a libcurl handle");
        return NULL;
    }
    return c;
}

void
azure_conn_give(azure_state *st, azure_conn *c)
{
    bool keep = false;

    if (c == NULL) {
        return;
    }
    azure_stop(c);
    pthread_mutex_lock(&st->pool_lock);
    if (st->n_idle < AZURE_POOL_MAX) {
        c->next = st->idle;
        st->idle = c;
        st->n_idle++;
        keep = true;
    }
    pthread_mutex_unlock(&st->pool_lock);
    if (!keep) {
        azure_conn_free(c);
    }
}

CURL *
azure_conn_easy(azure_conn *c)
{
    return c->easy;
}

void
azure_pool_clear(azure_state *st)
{
    azure_conn *c = st->idle;

    while (c != NULL) {
        azure_conn *next = c->next;

        azure_conn_free(c);
        c = next;
    }
    st->idle = NULL;
    st->n_idle = 0;
}

double
azure_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Percent-encodes `s` for a URL path (keeping "/" when `keep_slash`):
 * everything but the unreserved characters. A new string, or NULL. */
static char *
azure_encode(const char *s, bool keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *out = malloc(3 * n + 1);
    char *p = out;

    if (out == NULL) {
        return NULL;
    }
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;

        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
            (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
            c == '~' || (c == '/' && keep_slash)) {
            *p++ = (char)c;
        } else {
            *p++ = '%';
            *p++ = hex[c >> 4];
            *p++ = hex[c & 0xf];
        }
    }
    *p = '\0';
    return out;
}

/* Copies the value of a header line into `out`, trimmed. */
static void
azure_header_value(const char *v, size_t n, char *out, size_t size)
{
    while (n > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        n--;
    }
    while (n > 0 && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' ' ||
                     v[n - 1] == '\t')) {
        n--;
    }
    if (n >= size) {
        n = size - 1;
    }
    memcpy(out, v, n);
    out[n] = '\0';
}

static size_t
azure_on_header(char *buf, size_t size, size_t nmemb, void *user)
{
    azure_xfer *x = user;
    azure_response *r = x->resp;
    size_t len = size * nmemb;
    const char *colon;
    char value[160];

    x->last_progress = azure_now();
    if (len >= 5 && strncmp(buf, "HTTP/", 5) == 0) {
        /* A new answer (after "100 Continue", say): forget the last. */
        const char *sp = memchr(buf, ' ', len);

        r->status = sp != NULL ? strtol(sp + 1, NULL, 10) : 0;
        r->code[0] = '\0';
        r->etag[0] = '\0';
        r->content_length = -1;
        r->total_length = -1;
        x->headers_done = false;
        return len;
    }
    if (buf[0] == '\r' || buf[0] == '\n') {
        if (r->status >= 200) {
            x->headers_done = true;
        }
        return len;
    }
    colon = memchr(buf, ':', len);
    if (colon == NULL) {
        return len;
    }
    azure_header_value(colon + 1, len - (size_t)(colon + 1 - buf), value,
                       sizeof value);
#define AZURE_IS(name)                                                         \
    ((size_t)(colon - buf) == strlen(name) &&                                  \
     strncasecmp(buf, name, strlen(name)) == 0)
    if (AZURE_IS("x-ms-error-code")) {
        snprintf(r->code, sizeof r->code, "%s", value);
    } else if (AZURE_IS("etag")) {
        snprintf(r->etag, sizeof r->etag, "%s", value);
    } else if (AZURE_IS("content-length")) {
        r->content_length = strtoll(value, NULL, 10);
    } else if (AZURE_IS("content-range")) {
        const char *slash = strchr(value, '/');

        if (slash != NULL && slash[1] != '*') {
            r->total_length = strtoll(slash + 1, NULL, 10);
        }
    }
#undef AZURE_IS
    return len;
}

/* The body of an ordinary call: kept (cut) only when it is an error. */
static size_t
azure_on_body(char *buf, size_t size, size_t nmemb, void *user)
{
    azure_xfer *x = user;
    size_t len = size * nmemb;

    x->last_progress = azure_now();
    if (x->resp->status >= 300) {
        size_t room = sizeof x->errbody - 1 - x->errbody_len;
        size_t n = len < room ? len : room;

        memcpy(x->errbody + x->errbody_len, buf, n);
        x->errbody_len += n;
        x->errbody[x->errbody_len] = '\0';
    }
    return len;
}

static size_t
azure_on_upload(char *buf, size_t size, size_t nmemb, void *user)
{
    azure_xfer *x = user;
    size_t room = size * nmemb;
    size_t left = x->body_len - x->body_pos;
    size_t n = left < room ? left : room;

    x->last_progress = azure_now();
    if (n > 0) {
        memcpy(buf, x->body + x->body_pos, n);
        x->body_pos += n;
    }
    return n;
}

/* libcurl rewinds the body when it sends it again, e.g. on a fresh
 * connection after a reused one turned out to be closed. */
static int
azure_on_seek(void *user, curl_off_t offset, int origin)
{
    azure_xfer *x = user;

    if (origin != SEEK_SET || offset < 0 || (size_t)offset > x->body_len) {
        return CURL_SEEKFUNC_CANTSEEK;
    }
    x->body_pos = (size_t)offset;
    return CURL_SEEKFUNC_OK;
}

/* Appends "Name: value" to the list; false when out of memory. */
static bool
azure_add_header(struct curl_slist **list, const char *name, const char *value)
{
    char line[512];
    struct curl_slist *l;

    snprintf(line, sizeof line, "%s: %s", name, value);
    l = curl_slist_append(*list, line);
    if (l == NULL) {
        return false;
    }
    *list = l;
    return true;
}

int
azure_prepare(azure_state *st, azure_conn *c, const azure_request *req,
              azure_xfer *x, struct curl_slist **headers, kiln_error *err)
{
    bool is_put = strcmp(req->method, "PUT") == 0;
    char date[AZURE_SK_DATE_SIZE];
    char sig[AZURE_SK_SIG_SIZE];
    char auth[160];
    azure_sk_pair ms[5];
    azure_sk_pair query[2];
    size_t n_ms = 0;
    size_t n_query = 0;
    azure_sk_request sk;
    char *blob = NULL;
    char *id = NULL;
    char *url = NULL;
    char *path = NULL;
    char *sts = NULL;
    struct curl_slist *list = NULL;
    CURL *e = c->easy;
    int rc = KILN_OK;
    bool ok;

    *headers = NULL;
    x->body = req->body;
    x->body_len = req->body_len;
    x->body_pos = 0;
    x->errbody_len = 0;
    x->errbody[0] = '\0';
    x->headers_done = false;
    x->last_progress = azure_now();
    memset(x->resp, 0, sizeof *x->resp);
    x->resp->content_length = -1;
    x->resp->total_length = -1;

    azure_sk_date((int64_t)time(NULL), date);
    blob = azure_encode(req->blob, true);
    id = req->block_id != NULL ? azure_encode(req->block_id, false) : NULL;
    if (blob == NULL || (req->block_id != NULL && id == NULL)) {
        rc = azure_api->error_set(err, KILN_ENOMEM, "out of memory");
        goto done;
    }
    if (asprintf(&url, "%s/%s/%s%s%s%s%s", st->endpoint, st->container, blob,
                 req->comp != NULL ? "?comp=" : "",
                 req->comp != NULL ? req->comp : "",
                 id != NULL ? "&blockid=" : "", id != NULL ? id : "") < 0 ||
        asprintf(&path, "%s/%s/%s", st->path_prefix, st->container, blob) < 0) {
        url = path = NULL;
        rc = azure_api->error_set(err, KILN_ENOMEM, "out of memory");
        goto done;
    }

    ms[n_ms++] = (azure_sk_pair){"x-ms-date", date};
    ms[n_ms++] = (azure_sk_pair){"x-ms-version", AZURE_API_VERSION};
    if (req->blob_type != NULL) {
        ms[n_ms++] = (azure_sk_pair){"x-ms-blob-type", req->blob_type};
    }
    if (req->blob_content_type != NULL) {
        ms[n_ms++] =
            (azure_sk_pair){"x-ms-blob-content-type", req->blob_content_type};
    }
    if (req->range != NULL) {
        ms[n_ms++] = (azure_sk_pair){"x-ms-range", req->range};
    }
    if (req->comp != NULL) {
        query[n_query++] = (azure_sk_pair){"comp", req->comp};
    }
    if (req->block_id != NULL) {
        query[n_query++] = (azure_sk_pair){"blockid", req->block_id};
    }
    sk = (azure_sk_request){
        .verb = req->method,
        .content_length = is_put ? req->body_len : 0,
        .content_type = req->content_type,
        .if_match = req->if_match,
        .headers = ms,
        .n_headers = n_ms,
        .account = st->account,
        .path = path,
        .query = query,
        .n_query = n_query,
    };
    sts = azure_sk_string_to_sign(&sk);
    if (sts == NULL) {
        rc = azure_api->error_set(err, KILN_ENOMEM, "out of memory");
        goto done;
    }
    if (azure_sk_sign(st->key, st->key_len, sts, sig) != 0) {
        rc = azure_api->error_set(err, KILN_EINTERNAL,
                                  "HMAC-SHA256 failed in OpenSSL");
        goto done;
    }
    snprintf(auth, sizeof auth, "SharedKey %s:%s", st->account, sig);

    ok = true;
    for (size_t i = 0; i < n_ms && ok; i++) {
        ok = azure_add_header(&list, ms[i].name, ms[i].value);
    }
    if (ok && req->if_match != NULL) {
        ok = azure_add_header(&list, "If-Match", req->if_match);
    }
    if (ok && req->content_type != NULL) {
        ok = azure_add_header(&list, "Content-Type", req->content_type);
    }
    if (ok && req->content_type == NULL) {
        /* A name with nothing after the colon removes what libcurl would
         * add on its own: the signature covers Content-Type, and waiting
         * for "100 Continue" costs a round trip. */
        struct curl_slist *l = curl_slist_append(list, "Content-Type:");

        ok = l != NULL;
        list = ok ? l : list;
    }
    if (ok) {
        struct curl_slist *l = curl_slist_append(list, "Expect:");

        ok = l != NULL;
        list = ok ? l : list;
    }
    if (ok) {
        ok = azure_add_header(&list, "Authorization", auth);
    }
    OPENSSL_cleanse(auth, sizeof auth);
    OPENSSL_cleanse(sig, sizeof sig);
    if (!ok) {
        rc = azure_api->error_set(err, KILN_ENOMEM, "out of memory");
        goto done;
    }

    /* reset keeps the handle's connections, only the options go. */
    curl_easy_reset(e);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, st->connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, st->protocols);
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, st->protocols);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    /* The environment's proxy variables are not ours to follow: "" is
     * no proxy at all. */
    curl_easy_setopt(e, CURLOPT_PROXY, st->proxy);
    if (st->ca_file != NULL) {
        curl_easy_setopt(e, CURLOPT_CAINFO, st->ca_file);
    }
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT,
                     "kiln/" KILN_VERSION_STRING " storage-azure");
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->resp->curl_error);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, azure_on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, azure_on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    if (is_put) {
        curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE,
                         (curl_off_t)req->body_len);
        curl_easy_setopt(e, CURLOPT_READFUNCTION, azure_on_upload);
        curl_easy_setopt(e, CURLOPT_READDATA, x);
        curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, azure_on_seek);
        curl_easy_setopt(e, CURLOPT_SEEKDATA, x);
    } else {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    }
    *headers = list;
    list = NULL;

done:
    curl_slist_free_all(list);
    free(sts);
    free(path);
    free(url);
    free(id);
    free(blob);
    return rc;
}

int
azure_start(azure_conn *c, kiln_error *err)
{
    if (curl_multi_add_handle(c->multi, c->easy) != CURLM_OK) {
        return azure_api->error_set(err, KILN_EINTERNAL,
                                    "cannot start a libcurl transfer");
    }
    c->attached = true;
    return KILN_OK;
}

void
azure_step(azure_conn *c, int timeout_ms, bool *done, CURLcode *rc)
{
    int running = 0;
    int left = 0;
    CURLMsg *msg;

    if (curl_multi_perform(c->multi, &running) != CURLM_OK) {
        *done = true;
        *rc = CURLE_OUT_OF_MEMORY;
        return;
    }
    while ((msg = curl_multi_info_read(c->multi, &left)) != NULL) {
        if (msg->msg == CURLMSG_DONE && msg->easy_handle == c->easy) {
            *done = true;
            *rc = msg->data.result;
        }
    }
    if (!*done && timeout_ms > 0) {
        curl_multi_poll(c->multi, NULL, 0, timeout_ms, NULL);
    }
}

void
azure_stop(azure_conn *c)
{
    if (c->attached) {
        curl_multi_remove_handle(c->multi, c->easy);
        c->attached = false;
    }
}

/* Copies the text between <tag> and </tag> of `body` into `out` (first
 * line only; the service appends request ids and times on later lines). */
static void
azure_xml_field(const char *body, const char *tag, char *out, size_t size)
{
    char open[32];
    char close[32];
    const char *a;
    const char *b;
    size_t n;

    snprintf(open, sizeof open, "<%s>", tag);
    snprintf(close, sizeof close, "</%s>", tag);
    a = strstr(body, open);
    if (a == NULL) {
        return;
    }
    a += strlen(open);
    b = strstr(a, close);
    if (b == NULL) {
        return;
    }
    n = strcspn(a, "\r\n");
    if (n > (size_t)(b - a)) {
        n = (size_t)(b - a);
    }
    if (n >= size) {
        n = size - 1;
    }
    memcpy(out, a, n);
    out[n] = '\0';
}

void
azure_parse_error(azure_xfer *x)
{
    azure_response *r = x->resp;

    if (x->errbody_len == 0) {
        return;
    }
    if (r->code[0] == '\0') {
        azure_xml_field(x->errbody, "Code", r->code, sizeof r->code);
    }
    azure_xml_field(x->errbody, "Message", r->message, sizeof r->message);
}

bool
azure_retryable(CURLcode rc, long status)
{
    switch (rc) {
    case CURLE_OK:
        return status >= 500 || status == 408 || status == 429;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return true;
    default:
        return false;
    }
}

/* Why an attempt failed, for the log and messages. */
static const char *
azure_why(const azure_response *r, char *buf, size_t size)
{
    if (r->curl_rc != CURLE_OK) {
        snprintf(buf, size, "%s",
                 r->curl_error[0] != '\0' ? r->curl_error
                                          : curl_easy_strerror(r->curl_rc));
    } else {
        snprintf(buf, size, "HTTP %ld %s", r->status,
                 r->code[0] != '\0' ? r->code : "without error code");
    }
    return buf;
}

void
azure_retry_wait(azure_state *st, int attempt, const char *method,
                 const char *blob, const azure_response *last)
{
    char qb[AZURE_QUOTE_MAX];
    char qc[AZURE_QUOTE_MAX];
    char why[CURL_ERROR_SIZE + 32];
    long ms;
    struct timespec ts;
    unsigned int seed;

    if (attempt <= 1) {
        return;
    }
    azure_api->log(
        azure_self, KILN_LOG_WARN,
        "%s blob %s in container %s failed (%s); retry %d of %d", method,
        azure_quote(qb, blob), azure_quote(qc, st->container),
        azure_why(last, why, sizeof why), attempt - 1, st->attempts - 1);
    ms = AZURE_BACKOFF_MS;
    for (int i = 2; i < attempt && ms < AZURE_BACKOFF_MAX_MS; i++) {
        ms *= 2;
    }
    if (ms > AZURE_BACKOFF_MAX_MS) {
        ms = AZURE_BACKOFF_MAX_MS;
    }
    /* Jitter spreads the workers that failed together. */
    /* Through 64 bits: the microseconds since boot overflow an unsigned
     * int after 71 minutes, and that conversion is undefined (the ASan
     * build's float-cast-overflow check found it). */
    seed = (unsigned int)(uint64_t)(azure_now() * 1e6);
    ms += rand_r(&seed) % (AZURE_BACKOFF_MS / 2);
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

int
azure_run(azure_state *st, const azure_request *req, azure_response *resp,
          const char *what, kiln_error *err)
{
    azure_xfer x = {.resp = resp};
    azure_conn *c = azure_conn_take(st, err);
    CURLcode rc = CURLE_OK;
    int ret = KILN_OK;

    if (c == NULL) {
        return err->code;
    }
    for (int attempt = 1; attempt <= st->attempts; attempt++) {
        struct curl_slist *headers = NULL;
        bool done = false;

        azure_retry_wait(st, attempt, req->method, req->blob, resp);
        ret = azure_prepare(st, c, req, &x, &headers, err);
        if (ret == KILN_OK) {
            ret = azure_start(c, err);
        }
        if (ret != KILN_OK) {
            curl_slist_free_all(headers);
            break;
        }
        rc = CURLE_OK;
        while (!done) {
            azure_step(c, 500, &done, &rc);
            if (!done && azure_now() - x.last_progress > st->stall_timeout) {
                rc = CURLE_OPERATION_TIMEDOUT;
                snprintf(resp->curl_error, sizeof resp->curl_error,
                         "no byte moved for %g s (stall_timeout)",
                         st->stall_timeout);
                done = true;
            }
        }
        azure_stop(c);
        curl_slist_free_all(headers);
        resp->curl_rc = rc;
        resp->attempts = attempt;
        if (rc == CURLE_OK) {
            azure_parse_error(&x);
        }
        if (!azure_retryable(rc, rc == CURLE_OK ? resp->status : 0)) {
            break;
        }
    }
    azure_conn_give(st, c);
    if (ret == KILN_OK && rc != CURLE_OK) {
        ret = azure_fail_transport(st, resp, req->blob, what, err);
    }
    return ret;
}

int
azure_fail_transport(azure_state *st, const azure_response *resp,
                     const char *blob, const char *what, kiln_error *err)
{
    char qb[AZURE_QUOTE_MAX];
    char qc[AZURE_QUOTE_MAX];
    char qe[AZURE_QUOTE_MAX];
    char why[CURL_ERROR_SIZE + 32];
    bool tls = false;

    switch (resp->curl_rc) {
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
        tls = true;
        break;
    default:
        break;
    }
    return azure_api->error_set(
        err, KILN_EIO, "%s blob %s in container %s: %s %s (%s; %d attempt%s)",
        what, azure_quote(qb, blob), azure_quote(qc, st->container),
        tls ? "TLS failed (check ca_file and the server's certificate) with"
            : "cannot reach",
        azure_quote(qe, st->endpoint), azure_why(resp, why, sizeof why),
        resp->attempts, resp->attempts == 1 ? "" : "s");
}

int
azure_fail(azure_state *st, const azure_response *resp, const char *blob,
           const char *what, kiln_error *err)
{
    char qb[AZURE_QUOTE_MAX];
    char qc[AZURE_QUOTE_MAX];
    char qa[AZURE_QUOTE_MAX];
    const char *code = resp->code[0] != '\0' ? resp->code : "no error code";
    char detail[300] = "";

    azure_quote(qb, blob);
    azure_quote(qc, st->container);
    azure_quote(qa, st->account);
    if (resp->message[0] != '\0') {
        snprintf(detail, sizeof detail, ": %s", resp->message);
    }
    if (resp->status == 404 && strcmp(code, "ContainerNotFound") == 0) {
        return azure_api->error_set(err, KILN_ENOTFOUND,
                                    "%s blob %s: container %s not "
                                    "found in account %s (404 %s)",
                                    what, qb, qc, qa, code);
    }
    if (resp->status == 404) {
        return azure_api->error_set(err, KILN_ENOTFOUND,
                                    "blob %s not found in container %s "
                                    "of account %s (404 %s)",
                                    qb, qc, qa, code);
    }
    /* Azure says AuthenticationFailed; Azurite says AuthorizationFailure
     * with the same message. Either way the signature did not match. */
    if (resp->status == 403 &&
        (strcmp(code, "AuthenticationFailed") == 0 ||
         strncmp(resp->message, "Server failed to authenticate", 29) == 0)) {
        return azure_api->error_set(err, KILN_EPERM,
                                    "%s blob %s in container %s: account %s "
                                    "refused the account key (403 %s; check "
                                    "the \"key\" setting: expected the base64 "
                                    "key of this account)",
                                    what, qb, qc, qa, code);
    }
    if (resp->status == 401 || resp->status == 403) {
        return azure_api->error_set(err, KILN_EPERM,
                                    "%s blob %s in container %s of "
                                    "account %s: access refused (%ld %s%s)",
                                    what, qb, qc, qa, resp->status, code,
                                    detail);
    }
    /* Reads send If-Match with the first answer's ETag. */
    if (resp->status == 412 && strcmp(code, "ConditionNotMet") == 0) {
        return azure_api->error_set(err, KILN_EIO,
                                    "%s blob %s in container %s of "
                                    "account %s: it changed while kiln was "
                                    "reading it (412 %s)",
                                    what, qb, qc, qa, code);
    }
    return azure_api->error_set(err, KILN_EIO,
                                "%s blob %s in container %s of account "
                                "%s: the service answered %ld %s%s (%d "
                                "attempt%s)",
                                what, qb, qc, qa, resp->status, code, detail,
                                resp->attempts, resp->attempts == 1 ? "" : "s");
}
