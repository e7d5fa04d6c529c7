/*
 * Reading objects for the "s3" backend: open_read() starts one GET and
 * hands libvips a seekable VipsSource that streams its body. Bytes flow
 * from libcurl into a bounded window of the object (the transfer pauses
 * while the window is full of bytes libvips has not read) and out to
 * libvips as it reads; reads are whole, as from a file, because some
 * loaders (libtiff) take a short read for an error. The first bytes of
 * the object are kept, and so is a stretch behind the read position, so
 * the rewinds and small backward seeks of loaders cost no request; any
 * other backward or far seek restarts the GET with a Range (and If-Match,
 * so a replaced object is noticed). A connection lost mid-body is resumed
 * where it broke, within the retry budget.
 */
#define _GNU_SOURCE /* strdup */

#include "s3.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bytes kept from the start of the object for rewinds. */
#define S3_HEAD_MAX (256 * 1024)
/* The window between libcurl and libvips. */
#define S3_WINDOW (512 * 1024)
/* Bytes kept behind the read position for small backward seeks. */
#define S3_KEEP_BEHIND (128 * 1024)
/* A forward seek at most this far ahead of the stream is read through
 * instead of requested anew. */
#define S3_SKIP_MAX (256 * 1024)

/* One open source. libvips serializes reads of one source, but the lock
 * makes that an invariant of ours rather than a property of the loader. */
typedef struct s3_reader {
    s3_state *st; /* one reference */
    char *key;
    GMutex lock;
    gint64 size; /* -1 until the first answer */
    char etag[S3_ETAG_MAX];
    gint64 pos; /* where libvips reads next */

    unsigned char *head; /* bytes [0, head_len) of the object */
    size_t head_len;
    size_t head_cap;

    /* Bytes [win_off, win_off + win_len) of the object, as the current
     * (or last) GET delivered them; the GET has reached their end. */
    unsigned char *win;
    gint64 win_off;
    size_t win_len;
    size_t win_cap;

    /* The GET in flight, if any. */
    s3_conn *conn;
    struct curl_slist *headers;
    s3_outcome out;
    bool running;  /* conn->easy is in conn->multi */
    bool paused;   /* the sink paused the transfer: the window was full */
    bool done;     /* the transfer ended; `result` says how */
    bool no_range; /* the server answered a Range with the whole object */
    CURLcode result;
    int resumes; /* broken transfers resumed so far */
    bool failed; /* a read failed: every later one fails the same way */
} s3_reader;

/* Body bytes from libcurl. An error document goes to the outcome; object
 * bytes to the end of the window, after dropping what lies well behind the
 * read position; when the rest is still unread the transfer pauses. */
static size_t
s3_reader_sink(char *data, size_t size, size_t n, void *user)
{
    s3_reader *r = user;
    size_t len = size * n;
    long status = 0;

    curl_easy_getinfo(r->conn->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status < 200 || status > 299) {
        size_t room =
            r->out.body.len < S3_BODY_MAX ? S3_BODY_MAX - r->out.body.len : 0;

        s3_buf_add(&r->out.body, data, len < room ? len : room);
        return len;
    }
    if (r->win_len + len > r->win_cap) {
        gint64 reached = r->win_off + (gint64)r->win_len;
        gint64 keep = (r->pos < reached ? r->pos : reached) - S3_KEEP_BEHIND;

        if (keep > r->win_off) {
            size_t drop = (size_t)(keep - r->win_off);

            memmove(r->win, r->win + drop, r->win_len - drop);
            r->win_off += (gint64)drop;
            r->win_len -= drop;
        }
    }
    if (r->win_len + len > r->win_cap) {
        unsigned char *w;

        if (r->win_len > 0) {
            r->paused = true;
            return CURL_WRITEFUNC_PAUSE;
        }
        /* An empty window takes any chunk, or nothing would move. */
        w = realloc(r->win, len);
        if (w == NULL) {
            return 0;
        }
        r->win = w;
        r->win_cap = len;
    }
    memcpy(r->win + r->win_len, data, len);
    r->win_len += len;
    return len;
}

/* Ends the GET in flight (a transfer cut short closes its connection) and
 * gives the slot back; the window stays. */
static void
s3_reader_stop(s3_reader *r)
{
    if (r->running) {
        curl_multi_remove_handle(r->conn->multi, r->conn->easy);
        r->running = false;
    }
    curl_slist_free_all(r->headers);
    r->headers = NULL;
    if (r->conn != NULL) {
        s3_conn_put(r->st, r->conn);
        r->conn = NULL;
    }
    r->paused = r->done = false;
    r->result = CURLE_OK;
}

/* One step of the transfer: unpause, perform, wait for the socket. */
static void
s3_reader_drive(s3_reader *r)
{
    size_t before = r->win_len;
    gint64 off = r->win_off;
    CURLMcode mc;
    CURLMsg *m;
    int running = 0;
    int left;

    if (r->paused) {
        r->paused = false;
        /* Delivers what libcurl held back straight into the sink. */
        if (curl_easy_pause(r->conn->easy, CURLPAUSE_CONT) != CURLE_OK) {
            r->done = true;
            r->result = CURLE_RECV_ERROR;
            return;
        }
        if (r->paused) {
            return;
        }
    }
    mc = curl_multi_perform(r->conn->multi, &running);
    while ((m = curl_multi_info_read(r->conn->multi, &left)) != NULL) {
        if (m->msg == CURLMSG_DONE && m->easy_handle == r->conn->easy) {
            r->done = true;
            r->result = m->data.result;
        }
    }
    if (mc != CURLM_OK && !r->done) {
        r->done = true;
        r->result = CURLE_RECV_ERROR;
    }
    if (!r->done && !r->paused && r->win_len == before && r->win_off == off) {
        curl_multi_poll(r->conn->multi, NULL, 0, 1000, NULL);
    }
}

/* Starts a GET of the object from byte `from` and waits for the head of
 * the answer. Returns 0 when the body is flowing, -1 with r->out saying
 * why not. */
static int
s3_reader_begin(s3_reader *r, gint64 from)
{
    char range[48];
    s3_req req;
    long status = 0;

    s3_reader_stop(r);
    r->no_range = false;
    r->win_off = from;
    r->win_len = 0;
    memset(&req, 0, sizeof req);
    req.method = "GET";
    req.key = r->key;
    if (from > 0) {
        snprintf(range, sizeof range, "bytes=%lld-", (long long)from);
        req.range = range;
    }
    /* Every request after the first must see the same object. */
    if (r->etag[0] != '\0') {
        req.if_match = r->etag;
    }
    r->conn = s3_conn_get(r->st);
    if (r->conn == NULL ||
        s3_conn_prepare(r->st, r->conn, &req, &r->out, s3_reader_sink, r,
                        &r->headers) != 0) {
        s3_reader_stop(r);
        r->out.curl = CURLE_OUT_OF_MEMORY;
        return -1;
    }
    if (curl_multi_add_handle(r->conn->multi, r->conn->easy) != CURLM_OK) {
        s3_reader_stop(r);
        r->out.curl = CURLE_FAILED_INIT;
        return -1;
    }
    r->running = true;
    while (!r->done && r->win_len == 0 && !r->paused) {
        s3_reader_drive(r);
    }
    curl_easy_getinfo(r->conn->easy, CURLINFO_RESPONSE_CODE, &status);
    if (r->done && (r->result == CURLE_OK || r->win_len == 0)) {
        s3_outcome_finish(&r->out, r->conn->easy, r->result);
    } else {
        /* Flowing, or broken after some of the body arrived: what came is
         * used, and the read path resumes from where it stopped. */
        r->out.curl = CURLE_OK;
        r->out.status = status;
        curl_easy_getinfo(r->conn->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T,
                          &r->out.content_length);
    }
    if (r->out.curl != CURLE_OK || (status != 200 && status != 206)) {
        s3_reader_stop(r);
        r->win_len = 0;
        return -1;
    }
    if (status == 206 && r->out.range_start != from) {
        /* Not what was asked for: say so in the message. */
        snprintf(r->out.code, sizeof r->out.code, "UnexpectedContentRange");
        s3_reader_stop(r);
        r->win_len = 0;
        return -1;
    }
    if (status == 200 && from > 0) {
        /* The whole object from byte 0: a server that ignores Range is
         * read through to the wanted byte. */
        r->win_off = 0;
        r->no_range = true;
    }
    return 0;
}

/* s3_reader_begin with retries for what may pass. */
static int
s3_reader_begin_retrying(s3_reader *r, gint64 from)
{
    for (int attempt = 0;; attempt++) {
        if (attempt > 0) {
            s3_log_retry(r->st, "GET", r->key, (long long)from, &r->out,
                         attempt);
            s3_backoff(attempt, &r->out);
        }
        if (s3_reader_begin(r, from) == 0) {
            r->out.attempts = attempt + 1;
            return 0;
        }
        r->out.attempts = attempt + 1;
        if (attempt >= r->st->retries || !s3_outcome_retryable(&r->out)) {
            return -1;
        }
    }
}

/* Reports a failed read to libvips, which passes it on to the job. The
 * reader stays failed: starting afresh on the next read could mix two
 * versions of an object, or hide the error behind a short read. */
static void
s3_reader_error(s3_reader *r)
{
    kiln_error e;

    r->failed = true;
    memset(&e, 0, sizeof e);
    s3_fail(r->st, &e, "read", r->key, &r->out);
    vips_error("s3", "%s", e.message);
}

/* (Re)allocates the window, freed once an object was read to its end. */
static int
s3_reader_window(s3_reader *r)
{
    r->win = malloc(S3_WINDOW);
    if (r->win == NULL) {
        return -1;
    }
    r->win_cap = S3_WINDOW;
    r->win_off = r->win_len = 0;
    return 0;
}

/* Keeps bytes just handed out at r->pos when they extend the head. */
static void
s3_reader_keep_head(s3_reader *r, const unsigned char *data, size_t n)
{
    size_t k;

    if (r->pos != (gint64)r->head_len || r->head_len >= S3_HEAD_MAX) {
        return;
    }
    k = n < S3_HEAD_MAX - r->head_len ? n : S3_HEAD_MAX - r->head_len;
    if (r->head_len + k > r->head_cap) {
        size_t cap = r->head_cap == 0 ? 16 * 1024 : r->head_cap;
        unsigned char *h;

        while (cap < r->head_len + k) {
            cap *= 2;
        }
        if (cap > S3_HEAD_MAX) {
            cap = S3_HEAD_MAX;
        }
        h = realloc(r->head, cap);
        if (h == NULL) {
            return; /* only a cache */
        }
        r->head = h;
        r->head_cap = cap;
    }
    memcpy(r->head + r->head_len, data, k);
    r->head_len += k;
}

/* After a transfer broke (or ended short) before the byte wanted: resume
 * from there with a new GET, within the retry budget. */
static int
s3_reader_resume(s3_reader *r)
{
    char qk[200];
    gint64 at = r->win_off + (gint64)r->win_len;

    r->out.curl = r->result != CURLE_OK ? r->result : CURLE_PARTIAL_FILE;
    r->out.status = 0;
    if (r->resumes >= r->st->retries || !s3_outcome_retryable(&r->out)) {
        s3_reader_stop(r);
        return -1;
    }
    r->resumes++;
    s3_api->log(s3_self, KILN_LOG_WARN,
                "reading %s in bucket \"%s\" broke at byte %lld (%s); "
                "resuming, %d of %d",
                s3_quote(qk, sizeof qk, r->key), r->st->bucket, (long long)at,
                curl_easy_strerror(r->out.curl), r->resumes, r->st->retries);
    s3_backoff(r->resumes, NULL);
    return s3_reader_begin_retrying(r, r->pos);
}

/* Copies what it can of [pos, pos + len) from the head or the window,
 * moving the stream as needed. Returns the count, 0 at the end, -1 on
 * error (reported to libvips). */
static gint64
s3_reader_read_some(s3_reader *r, unsigned char *data, gint64 len)
{
    if (r->failed) {
        s3_reader_error(r);
        return -1;
    }
    if (len <= 0 || r->pos >= r->size) {
        return 0;
    }
    if (len > r->size - r->pos) {
        len = r->size - r->pos;
    }
    if (r->pos < (gint64)r->head_len) {
        gint64 n = (gint64)r->head_len - r->pos;

        n = n < len ? n : len;
        memcpy(data, r->head + r->pos, (size_t)n);
        r->pos += n;
        return n;
    }
    for (;;) {
        gint64 reached = r->win_off + (gint64)r->win_len;

        /* A finished transfer gives its connection back at once. */
        if (r->conn != NULL && r->done && r->result == CURLE_OK &&
            reached >= r->size) {
            s3_reader_stop(r);
        }
        if (r->win == NULL && s3_reader_window(r) != 0) {
            r->out.curl = CURLE_OUT_OF_MEMORY;
            s3_reader_error(r);
            return -1;
        }
        if (r->pos >= r->win_off && r->pos < reached) {
            size_t n = (size_t)(reached - r->pos);

            n = (gint64)n < len ? n : (size_t)len;
            memcpy(data, r->win + (r->pos - r->win_off), n);
            s3_reader_keep_head(r, data, n);
            r->pos += (gint64)n;
            /* Read to the end with nothing in flight: the buffers go, as
             * libvips' cache may keep this source long after (a seek back
             * costs a new request). */
            if (r->pos >= r->size && r->conn == NULL) {
                free(r->win);
                free(r->head);
                r->win = r->head = NULL;
                r->win_len = r->win_cap = r->head_len = r->head_cap = 0;
            }
            return (gint64)n;
        }
        if (r->conn != NULL && r->pos >= reached &&
            (r->pos - reached <= S3_SKIP_MAX || r->no_range)) {
            if (!r->done) {
                s3_reader_drive(r);
                continue;
            }
            if (s3_reader_resume(r) != 0) {
                s3_reader_error(r);
                return -1;
            }
            continue;
        }
        if (s3_reader_begin_retrying(r, r->pos) != 0) {
            s3_reader_error(r);
            return -1;
        }
    }
}

/* Whole reads, as from a file: libtiff takes a short one for an error. */
static gint64
s3_reader_read(s3_reader *r, unsigned char *data, gint64 len)
{
    gint64 total = 0;

    while (total < len) {
        gint64 n = s3_reader_read_some(r, data + total, len - total);

        if (n < 0) {
            return total > 0 ? total : -1;
        }
        if (n == 0) {
            break;
        }
        total += n;
    }
    return total;
}

static gint64
s3_source_read(VipsSourceCustom *src, void *data, gint64 len, gpointer user)
{
    s3_reader *r = user;
    gint64 n;

    (void)src;
    g_mutex_lock(&r->lock);
    n = s3_reader_read(r, data, len);
    g_mutex_unlock(&r->lock);
    return n;
}

/* Seeks only move the position; the stream follows on the next read. */
static gint64
s3_source_seek(VipsSourceCustom *src, gint64 offset, int whence, gpointer user)
{
    s3_reader *r = user;
    gint64 to;

    (void)src;
    g_mutex_lock(&r->lock);
    to = s3_seek_position(r->pos, r->size, offset, whence);
    if (to >= 0) {
        r->pos = to;
    }
    g_mutex_unlock(&r->lock);
    return to;
}

static void
s3_reader_free(gpointer p)
{
    s3_reader *r = p;

    s3_reader_stop(r);
    s3_outcome_free(&r->out);
    free(r->win);
    free(r->head);
    free(r->key);
    g_mutex_clear(&r->lock);
    s3_state_unref(r->st);
    free(r);
}

int
s3_open_read(void *state, const char *path, VipsSource **out, kiln_error *err)
{
    s3_state *st = state;
    VipsSourceCustom *src;
    s3_reader *r;
    char *key;
    int rc;

    *out = NULL;
    key = s3_key_for(st, path, err);
    if (key == NULL) {
        return err->code;
    }
    r = calloc(1, sizeof *r);
    if (r == NULL) {
        rc = s3_fail_nomem(err, key);
        free(key);
        return rc;
    }
    r->st = st;
    s3_state_ref(st);
    r->key = key;
    g_mutex_init(&r->lock);
    r->size = -1;
    if (s3_reader_window(r) != 0) {
        rc = s3_fail_nomem(err, key);
        s3_reader_free(r);
        return rc;
    }

    /* The first GET answers for the object: missing, forbidden or there,
     * and how long it is. */
    if (s3_reader_begin_retrying(r, 0) != 0) {
        rc = s3_fail(st, err, "read", key, &r->out);
        s3_reader_free(r);
        return rc;
    }
    if (r->out.content_length < 0) {
        char qk[200];

        rc = s3_api->error_set(err, KILN_EIO,
                               "cannot read %s in bucket \"%s\": the "
                               "answer has no Content-Length (expected an "
                               "S3 GET Object answer)",
                               s3_quote(qk, sizeof qk, key), st->bucket);
        s3_reader_free(r);
        return rc;
    }
    r->size = (gint64)r->out.content_length;
    memcpy(r->etag, r->out.etag, sizeof r->etag);

    src = vips_source_custom_new();
    if (src == NULL) {
        s3_reader_free(r);
        return s3_api->error_set_vips(err, "cannot make a source");
    }
    g_signal_connect(src, "read", G_CALLBACK(s3_source_read), r);
    g_signal_connect(src, "seek", G_CALLBACK(s3_source_seek), r);
    /* The reader lives as long as the source, whoever holds it last. */
    g_object_set_data_full(G_OBJECT(src), "kiln-s3-reader", r, s3_reader_free);
    *out = VIPS_SOURCE(src);
    return KILN_OK;
}
