/*
 * Requests of the "s3" backend: a pool of libcurl transfer slots (one easy
 * handle and the multi handle that keeps its connections, so keep-alive
 * connections are reused across calls and threads), each request signed
 * with SigV4 right before it is sent, and a retry loop with exponential
 * backoff and jitter for transport failures, 5xx, 429 and throttling.
 * read.c drives its streaming GET on a slot itself; everything else goes
 * through s3_request().
 */
#define _GNU_SOURCE /* strdup, memmem, gmtime_r */

#include "s3.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

/* Idle slots kept per bucket; more are made on demand and freed when
 * given back to a full pool. */
#define S3_POOL_IDLE_MAX 32

/* Backoff: 100 ms doubling to at most 5 s, half of it random; a server's
 * Retry-After is honoured up to 20 s. */
#define S3_BACKOFF_BASE_MS 100
#define S3_BACKOFF_CAP_MS 5000
#define S3_RETRY_AFTER_CAP_S 20

/* SHA-256 of nothing: the payload hash of GET, DELETE and empty POST. */
#define S3_EMPTY_SHA256                                                        \
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

#define S3_USER_AGENT "kiln-storage-s3/" KILN_VERSION_STRING

/* ---------------------------------------------------------------- pool */

void
s3_conn_free(s3_conn *c)
{
    if (c == NULL) {
        return;
    }
    if (c->easy != NULL) {
        curl_easy_cleanup(c->easy);
    }
    if (c->multi != NULL) {
        curl_multi_cleanup(c->multi);
    }
    free(c);
}

s3_conn *
s3_conn_get(s3_state *st)
{
    s3_conn *c;

    pthread_mutex_lock(&st->pool_lock);
    c = st->idle;
    if (c != NULL) {
        st->idle = c->next;
        st->n_idle--;
    }
    pthread_mutex_unlock(&st->pool_lock);
    if (c == NULL) {
        c = calloc(1, sizeof *c);
        if (c == NULL) {
            return NULL;
        }
        c->easy = curl_easy_init();
        c->multi = curl_multi_init();
        if (c->easy == NULL || c->multi == NULL) {
            s3_conn_free(c);
            return NULL;
        }
        /* The default bound follows the handles currently added, which is
         * none between two requests: keep the connection regardless. */
        curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, 2L);
    }
    c->next = NULL;
    return c;
}

void
s3_conn_put(s3_state *st, s3_conn *c)
{
    bool keep;

    if (c == NULL) {
        return;
    }
    c->up = NULL;
    c->up_len = c->up_off = 0;
    pthread_mutex_lock(&st->pool_lock);
    keep = st->n_idle < S3_POOL_IDLE_MAX;
    if (keep) {
        c->next = st->idle;
        st->idle = c;
        st->n_idle++;
    }
    pthread_mutex_unlock(&st->pool_lock);
    if (!keep) {
        s3_conn_free(c);
    }
}

/* ------------------------------------------------------------ outcomes */

static void
s3_outcome_clear(s3_outcome *o)
{
    o->curl = CURLE_OK;
    o->curl_text[0] = '\0';
    o->status = 0;
    o->code[0] = '\0';
    o->message[0] = '\0';
    o->region[0] = '\0';
    o->etag[0] = '\0';
    o->retry_after_s = 0;
    o->content_length = -1;
    o->range_start = -1;
    o->range_total = -1;
    o->body.len = 0;
    o->body.failed = false;
    if (o->body.p != NULL) {
        o->body.p[0] = '\0';
    }
}

/* Clears an outcome for a new request, keeping its body buffer. */
static void
s3_outcome_reset(s3_outcome *o)
{
    s3_outcome_clear(o);
    o->attempts = 0;
}

void
s3_outcome_free(s3_outcome *o)
{
    s3_buf_free(&o->body, false);
}

void
s3_outcome_finish(s3_outcome *o, CURL *easy, CURLcode rc)
{
    long status = 0;
    curl_off_t len = -1;

    o->curl = rc;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &len);
    o->status = rc == CURLE_OK ? status : 0;
    o->content_length = len;
    if (o->body.p == NULL || o->body.len == 0) {
        return;
    }
    /* Error documents come with 4xx/5xx, and CompleteMultipartUpload may
     * send one with 200 after it has started answering. */
    if (o->status < 200 || o->status > 299 ||
        memmem(o->body.p, o->body.len, "<Error>", 7) != NULL) {
        s3_xml_text(o->body.p, o->body.len, "Code", o->code, sizeof o->code);
        s3_xml_text(o->body.p, o->body.len, "Message", o->message,
                    sizeof o->message);
        if (o->region[0] == '\0') {
            s3_xml_text(o->body.p, o->body.len, "Region", o->region,
                        sizeof o->region);
        }
    }
}

/* A 2xx without an error document. */
static bool
s3_outcome_ok(const s3_outcome *o)
{
    return o->curl == CURLE_OK && o->status >= 200 && o->status <= 299 &&
           o->code[0] == '\0';
}

bool
s3_outcome_retryable(const s3_outcome *o)
{
    switch (o->curl) {
    case CURLE_OK:
        break;
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
    if (o->status >= 500 || o->status == 429) {
        return true;
    }
    return strcmp(o->code, "RequestTimeout") == 0 ||
           strcmp(o->code, "SlowDown") == 0 ||
           strcmp(o->code, "InternalError") == 0 ||
           strcmp(o->code, "ServiceUnavailable") == 0;
}

void
s3_backoff(int attempt, const s3_outcome *o)
{
    long ms;
    unsigned int rnd = 0;
    struct timespec ts;

    if (o != NULL && o->retry_after_s > 0) {
        ms = (o->retry_after_s < S3_RETRY_AFTER_CAP_S ? o->retry_after_s
                                                      : S3_RETRY_AFTER_CAP_S) *
             1000;
    } else {
        ms = S3_BACKOFF_BASE_MS;
        for (int i = 1; i < attempt && ms < S3_BACKOFF_CAP_MS; i++) {
            ms *= 2;
        }
        if (ms > S3_BACKOFF_CAP_MS) {
            ms = S3_BACKOFF_CAP_MS;
        }
        /* Full jitter on half the delay keeps many workers that failed
         * together from retrying together. */
        if (getrandom(&rnd, sizeof rnd, GRND_NONBLOCK) != (ssize_t)sizeof rnd) {
            rnd = (unsigned int)clock();
        }
        ms = ms / 2 + (long)(rnd % (unsigned int)(ms / 2 + 1));
    }
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) != 0) {
    }
}

void
s3_log_retry(const s3_state *st, const char *method, const char *key,
             long long from, const s3_outcome *o, int attempt)
{
    char qk[200];
    char why[CURL_ERROR_SIZE + 32];
    char at[48] = "";

    if (o->curl != CURLE_OK) {
        snprintf(why, sizeof why, "%s", curl_easy_strerror(o->curl));
    } else {
        snprintf(why, sizeof why, "HTTP %ld%s%s", o->status,
                 o->code[0] != '\0' ? " " : "", o->code);
    }
    if (from > 0) {
        snprintf(at, sizeof at, " from byte %lld", from);
    }
    s3_api->log(s3_self, KILN_LOG_WARN,
                "%s %s%s in bucket \"%s\" failed (%s); retry %d of %d", method,
                s3_quote(qk, sizeof qk, key != NULL ? key : ""), at, st->bucket,
                why, attempt, st->retries);
}

/* ---------------------------------------------------------- callbacks */

static size_t
s3_body_cb(char *data, size_t size, size_t n, void *user)
{
    s3_outcome *o = user;
    size_t len = size * n;
    size_t room = o->body.len < S3_BODY_MAX ? S3_BODY_MAX - o->body.len : 0;

    /* Bodies we read whole are small documents; the rest is dropped. */
    s3_buf_add(&o->body, data, len < room ? len : room);
    return len;
}

/* Case-insensitive "Name:" prefix; returns the trimmed value or NULL. */
static const char *
s3_header_value(const char *line, size_t len, const char *name, size_t *vlen)
{
    size_t n = strlen(name);
    const char *v;
    const char *end = line + len;

    if (len <= n || strncasecmp(line, name, n) != 0 || line[n] != ':') {
        return NULL;
    }
    v = line + n + 1;
    while (v < end && (*v == ' ' || *v == '\t')) {
        v++;
    }
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' ||
                       end[-1] == '\t')) {
        end--;
    }
    *vlen = (size_t)(end - v);
    return v;
}

static void
s3_copy_value(char *out, size_t size, const char *v, size_t n)
{
    if (n >= size) {
        n = size - 1;
    }
    memcpy(out, v, n);
    out[n] = '\0';
}

static size_t
s3_header_cb(char *data, size_t size, size_t n, void *user)
{
    s3_outcome *o = user;
    size_t len = size * n;
    const char *v;
    size_t vlen;
    char num[64];
    long long a = -1;
    long long b = -1;
    long long t = -1;

    if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        /* A new response (after a 100 Continue, say): forget the last. */
        o->etag[0] = '\0';
        o->region[0] = '\0';
        o->retry_after_s = 0;
        o->range_start = o->range_total = -1;
        return len;
    }
    v = s3_header_value(data, len, "ETag", &vlen);
    if (v != NULL) {
        s3_copy_value(o->etag, sizeof o->etag, v, vlen);
        return len;
    }
    v = s3_header_value(data, len, "x-amz-bucket-region", &vlen);
    if (v != NULL) {
        s3_copy_value(o->region, sizeof o->region, v, vlen);
        return len;
    }
    v = s3_header_value(data, len, "Retry-After", &vlen);
    if (v != NULL) {
        s3_copy_value(num, sizeof num, v, vlen);
        o->retry_after_s = strtol(num, NULL, 10);
        return len;
    }
    v = s3_header_value(data, len, "Content-Range", &vlen);
    if (v != NULL) {
        s3_copy_value(num, sizeof num, v, vlen);
        if (sscanf(num, "bytes %lld-%lld/%lld", &a, &b, &t) == 3) {
            o->range_start = (curl_off_t)a;
            o->range_total = (curl_off_t)t;
        }
    }
    return len;
}

static size_t
s3_upload_cb(char *buf, size_t size, size_t n, void *user)
{
    s3_conn *c = user;
    size_t room = size * n;
    size_t left = c->up_len - c->up_off;
    size_t k = left < room ? left : room;

    if (k > 0) {
        memcpy(buf, c->up + c->up_off, k);
        c->up_off += k;
    }
    return k;
}

/* libcurl rewinds the body when it must send it again on a new
 * connection. */
static int
s3_upload_seek_cb(void *user, curl_off_t off, int origin)
{
    s3_conn *c = user;

    if (origin != SEEK_SET || off < 0 || (size_t)off > c->up_len) {
        return CURL_SEEKFUNC_FAIL;
    }
    c->up_off = (size_t)off;
    return CURL_SEEKFUNC_OK;
}

/* ------------------------------------------------------------ requests */

static int
s3_add_header(struct curl_slist **list, const char *name, const char *value)
{
    s3_buf line = {0};
    struct curl_slist *l;
    bool secret = strcmp(name, "Authorization") == 0 ||
                  strcmp(name, "x-amz-security-token") == 0;

    s3_buf_adds(&line, name);
    s3_buf_addc(&line, ':');
    if (value[0] != '\0') {
        s3_buf_addc(&line, ' ');
        s3_buf_adds(&line, value);
    }
    if (line.failed) {
        return -1;
    }
    l = curl_slist_append(*list, line.p);
    s3_buf_free(&line, secret);
    if (l == NULL) {
        return -1;
    }
    *list = l;
    return 0;
}

int
s3_conn_prepare(s3_state *st, s3_conn *c, const s3_req *req, s3_outcome *o,
                s3_sink_fn sink, void *sink_user, struct curl_slist **headers)
{
    CURL *h = c->easy;
    s3_buf path = {0};
    s3_buf url = {0};
    char payload[S3_SHA256_HEX];
    char amz_date[17];
    s3_sig_header sh[5];
    size_t n = 0;
    s3_sig_input in;
    s3_sig_output sig = {0};
    struct curl_slist *list = NULL;
    time_t now = time(NULL);
    struct tm tm;
    int rc = -1;

    *headers = NULL;
    gmtime_r(&now, &tm);
    strftime(amz_date, sizeof amz_date, "%Y%m%dT%H%M%SZ", &tm);
    if (req->body_len > 0) {
        s3_sha256_hex(req->body, req->body_len, payload);
    } else {
        memcpy(payload, S3_EMPTY_SHA256, sizeof payload);
    }

    s3_buf_adds(&path, st->path_base);
    s3_buf_addc(&path, '/');
    if (req->key != NULL) {
        s3_buf_add_uri(&path, req->key, strlen(req->key), true);
    }
    s3_buf_adds(&url, st->base_url);
    s3_buf_add(&url, path.p != NULL ? path.p : "", path.len);
    if (req->query != NULL) {
        s3_buf_addc(&url, '?');
        s3_buf_adds(&url, req->query);
    }
    if (path.failed || url.failed) {
        goto done;
    }

    sh[n].name = "host";
    sh[n++].value = st->host;
    sh[n].name = "x-amz-content-sha256";
    sh[n++].value = payload;
    sh[n].name = "x-amz-date";
    sh[n++].value = amz_date;
    if (st->session_token != NULL) {
        sh[n].name = "x-amz-security-token";
        sh[n++].value = st->session_token;
    }
    if (req->content_type != NULL) {
        sh[n].name = "content-type";
        sh[n++].value = req->content_type;
    }
    memset(&in, 0, sizeof in);
    in.method = req->method;
    in.path = path.p;
    in.query = req->query;
    in.headers = sh;
    in.n_headers = n;
    in.payload_hash = payload;
    in.access_key_id = st->access_key_id;
    in.secret_access_key = st->secret_access_key;
    in.region = st->region;
    in.service = "s3";
    in.amz_date = amz_date;
    if (s3_sign(&in, &sig) != 0) {
        goto done;
    }

    /* The Host header is given explicitly: it is what was signed. */
    if (s3_add_header(&list, "Host", st->host) != 0 ||
        s3_add_header(&list, "x-amz-content-sha256", payload) != 0 ||
        s3_add_header(&list, "x-amz-date", amz_date) != 0 ||
        (st->session_token != NULL &&
         s3_add_header(&list, "x-amz-security-token", st->session_token) !=
             0) ||
        s3_add_header(&list, "Content-Type",
                      req->content_type != NULL ? req->content_type : "") !=
            0 ||
        s3_add_header(&list, "Authorization", sig.authorization) != 0 ||
        (req->range != NULL && s3_add_header(&list, "Range", req->range)) ||
        (req->if_match != NULL &&
         s3_add_header(&list, "If-Match", req->if_match) != 0) ||
        /* No 100-continue round trip before every part. */
        s3_add_header(&list, "Expect", "") != 0) {
        goto done;
    }

    curl_easy_reset(h);
    s3_outcome_clear(o);
    curl_easy_setopt(h, CURLOPT_URL, url.p);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(h, CURLOPT_SHARE, st->share);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    /* We encode the path ourselves and sign it as sent. */
    curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, st->connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, st->stall_timeout_s);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    /* "" turns off the proxy variables of the environment. */
    curl_easy_setopt(h, CURLOPT_PROXY, st->proxy);
    if (st->ca_file != NULL) {
        curl_easy_setopt(h, CURLOPT_CAINFO, st->ca_file);
    }
    curl_easy_setopt(h, CURLOPT_USERAGENT, S3_USER_AGENT);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, o->curl_text);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, s3_header_cb);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, o);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION,
                     sink != NULL ? sink : s3_body_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, sink != NULL ? sink_user : o);

    c->up = req->body;
    c->up_len = req->body_len;
    c->up_off = 0;
    if (strcmp(req->method, "PUT") == 0) {
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, s3_upload_cb);
        curl_easy_setopt(h, CURLOPT_READDATA, c);
        curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, s3_upload_seek_cb);
        curl_easy_setopt(h, CURLOPT_SEEKDATA, c);
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE,
                         (curl_off_t)req->body_len);
    } else if (strcmp(req->method, "POST") == 0) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS,
                         req->body != NULL ? (const char *)req->body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t)req->body_len);
    } else if (strcmp(req->method, "GET") != 0) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
    }
    *headers = list;
    list = NULL;
    rc = 0;
done:
    curl_slist_free_all(list);
    s3_sig_output_free(&sig);
    s3_buf_free(&path, false);
    s3_buf_free(&url, false);
    return rc;
}

/* Runs the prepared transfer to its end on the slot's multi handle (which
 * keeps the connection for the next request). */
static CURLcode
s3_conn_run(s3_conn *c)
{
    CURLcode rc = CURLE_OK;
    CURLMsg *m;
    int running = 1;
    int left;

    if (curl_multi_add_handle(c->multi, c->easy) != CURLM_OK) {
        return CURLE_FAILED_INIT;
    }
    while (running) {
        CURLMcode mc = curl_multi_perform(c->multi, &running);

        if (mc == CURLM_OK && running) {
            mc = curl_multi_poll(c->multi, NULL, 0, 1000, NULL);
        }
        if (mc != CURLM_OK) {
            rc = CURLE_RECV_ERROR;
            break;
        }
    }
    while ((m = curl_multi_info_read(c->multi, &left)) != NULL) {
        if (m->msg == CURLMSG_DONE && m->easy_handle == c->easy) {
            rc = m->data.result;
        }
    }
    curl_multi_remove_handle(c->multi, c->easy);
    return rc;
}

bool
s3_request(s3_state *st, const s3_req *req, s3_outcome *o)
{
    s3_outcome_reset(o);
    for (int attempt = 0;; attempt++) {
        struct curl_slist *headers = NULL;
        s3_conn *c;

        if (attempt > 0) {
            s3_log_retry(st, req->method, req->key, 0, o, attempt);
            s3_backoff(attempt, o);
        }
        c = s3_conn_get(st);
        if (c == NULL ||
            s3_conn_prepare(st, c, req, o, NULL, NULL, &headers) != 0) {
            s3_conn_put(st, c);
            s3_outcome_clear(o);
            o->curl = CURLE_OUT_OF_MEMORY;
            o->attempts = attempt + 1;
            return false;
        }
        s3_outcome_finish(o, c->easy, s3_conn_run(c));
        curl_slist_free_all(headers);
        s3_conn_put(st, c);
        o->attempts = attempt + 1;
        if (s3_outcome_ok(o)) {
            return true;
        }
        if (attempt >= st->retries || !s3_outcome_retryable(o)) {
            return false;
        }
    }
}
