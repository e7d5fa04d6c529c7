/*
 * Reading a blob for the "azure" backend: a VipsSource whose reads pull
 * the body of one Get Blob through libcurl's multi interface, a bit at a
 * time, so nothing is copied to disk and at most a small buffer is held.
 * The first request is made when the source is opened, so a missing blob
 * or a refused key fails open_read with its own error. Seeks are lazy: a
 * short skip forward reads on, a jump asks for a range (x-ms-range) of the
 * same version of the blob (If-Match), and the first bytes are kept so
 * that libvips can sniff the format and rewind without a new request.
 */
#define _GNU_SOURCE

#include "azure.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bytes buffered ahead of the reader before the transfer is paused. */
#define AZURE_READ_BUFFER (256 * 1024)
/* A seek at most this far ahead reads on instead of a new request. */
#define AZURE_SKIP_MAX (1024 * 1024)
/* The first bytes of the blob kept for rewinds (format sniffing). */
#define AZURE_HEAD_KEEP (64 * 1024)

struct azure_reader {
    azure_state *st;
    VipsSource *src;           /* not a reference: the reader dies with it */
    azure_reader *prev, *next; /* in st->readers */
    char *blob;
    azure_conn *conn;
    struct curl_slist *headers;
    azure_response resp;
    azure_xfer x;
    char range[48];
    char etag[128]; /* of the first answer: later ranges must match it */
    bool active;    /* a transfer is started and not yet stopped */
    bool done;      /* ... and it has ended, with result rc */
    bool paused;    /* ... and it waits for room in buf */
    bool unranged;  /* ... and it ignored the range: skip any distance */
    CURLcode rc;
    int restarts; /* transfers begun again after a failure */
    int64_t length;
    int64_t pos;        /* where the next read starts */
    int64_t stream_pos; /* the blob offset of buf[off] */
    unsigned char *buf;
    size_t off, len;
    unsigned char head[AZURE_HEAD_KEEP];
    size_t head_len; /* bytes 0..head_len-1 of the blob are in head */
};

/* Ends the transfer and gives the handle pair back to the pool (a
 * transfer stopped midway closes its connection; the pair is reused). */
static void
azure_reader_release(azure_reader *r)
{
    if (r->conn != NULL) {
        azure_conn_give(r->st, r->conn);
        r->conn = NULL;
    }
    curl_slist_free_all(r->headers);
    r->headers = NULL;
    free(r->buf);
    r->buf = NULL;
    r->active = r->done = r->paused = false;
    r->off = r->len = 0;
}

static void
azure_reader_free(azure_reader *r)
{
    if (r == NULL) {
        return;
    }
    azure_reader_release(r);
    free(r->blob);
    free(r);
}

/* The source was finalized: forget the reader. */
static void
azure_reader_gone(gpointer data, GObject *where_the_object_was)
{
    azure_reader *r = data;
    azure_state *st = r->st;

    (void)where_the_object_was;
    pthread_mutex_lock(&st->readers_lock);
    if (r->prev != NULL) {
        r->prev->next = r->next;
    } else {
        st->readers = r->next;
    }
    if (r->next != NULL) {
        r->next->prev = r->prev;
    }
    pthread_mutex_unlock(&st->readers_lock);
    azure_reader_free(r);
}

void
azure_readers_close(azure_state *st)
{
    /* libvips may keep a source in its operation cache until it shuts
     * down, after this plugin is unloaded: leave such a source with no
     * handler, weak reference or data that points into the plugin. */
    pthread_mutex_lock(&st->readers_lock);
    while (st->readers != NULL) {
        azure_reader *r = st->readers;

        st->readers = r->next;
        g_signal_handlers_disconnect_by_data(r->src, r);
        g_object_weak_unref(G_OBJECT(r->src), azure_reader_gone, r);
        azure_reader_free(r);
    }
    pthread_mutex_unlock(&st->readers_lock);
}

/* The body of the Get Blob: appended to buf, or the transfer pauses when
 * buf is full (libcurl hands the same bytes again on resume). */
static size_t
azure_reader_on_body(char *data, size_t size, size_t nmemb, void *user)
{
    azure_reader *r = user;
    size_t n = size * nmemb;

    r->x.last_progress = azure_now();
    if (r->resp.status < 200 || r->resp.status >= 300) {
        size_t room = sizeof r->x.errbody - 1 - r->x.errbody_len;
        size_t k = n < room ? n : room;

        memcpy(r->x.errbody + r->x.errbody_len, data, k);
        r->x.errbody_len += k;
        r->x.errbody[r->x.errbody_len] = '\0';
        return n;
    }
    if (r->off > 0 && r->len + n > AZURE_READ_BUFFER) {
        memmove(r->buf, r->buf + r->off, r->len - r->off);
        r->len -= r->off;
        r->off = 0;
    }
    if (r->len + n > AZURE_READ_BUFFER && r->len > 0) {
        r->paused = true;
        return CURL_WRITEFUNC_PAUSE;
    }
    if (r->len + n > AZURE_READ_BUFFER) {
        /* One chunk larger than the buffer: libcurl never sends one, but
         * take it rather than pause for ever. */
        unsigned char *b = realloc(r->buf, n);

        if (b == NULL) {
            return 0;
        }
        r->buf = b;
    }
    memcpy(r->buf + r->len, data, n);
    r->len += n;
    return n;
}

/* Stops the current transfer, if any. */
static void
azure_reader_stop(azure_reader *r)
{
    if (r->conn != NULL) {
        azure_stop(r->conn);
    }
    curl_slist_free_all(r->headers);
    r->headers = NULL;
    r->active = false;
    r->done = false;
    r->paused = false;
    r->off = r->len = 0;
}

/* Starts a Get Blob from offset `from`. */
static int
azure_reader_start(azure_reader *r, int64_t from, kiln_error *err)
{
    azure_request req = {.method = "GET", .blob = r->blob};
    int rc;

    azure_reader_stop(r);
    if (r->conn == NULL) {
        r->conn = azure_conn_take(r->st, err);
        if (r->conn == NULL) {
            return err->code;
        }
    }
    if (r->buf == NULL) {
        r->buf = malloc(AZURE_READ_BUFFER);
        if (r->buf == NULL) {
            return azure_api->error_set(err, KILN_ENOMEM, "out of memory");
        }
    }
    if (from > 0) {
        snprintf(r->range, sizeof r->range, "bytes=%" PRId64 "-", from);
        req.range = r->range;
    }
    if (r->etag[0] != '\0') {
        req.if_match = r->etag;
    }
    rc = azure_prepare(r->st, r->conn, &req, &r->x, &r->headers, err);
    if (rc != KILN_OK) {
        return rc;
    }
    curl_easy_setopt(azure_conn_easy(r->conn), CURLOPT_WRITEFUNCTION,
                     azure_reader_on_body);
    curl_easy_setopt(azure_conn_easy(r->conn), CURLOPT_WRITEDATA, r);
    rc = azure_start(r->conn, err);
    if (rc != KILN_OK) {
        return rc;
    }
    r->active = true;
    r->rc = CURLE_OK;
    r->stream_pos = from;
    r->unranged = false;
    return KILN_OK;
}

/* Drives the transfer once (waiting up to 200 ms); a transfer silent
 * for stall_timeout since `since` ends as timed out. */
static void
azure_reader_step(azure_reader *r, double since)
{
    double last = r->x.last_progress > since ? r->x.last_progress : since;

    if (r->paused) {
        r->paused = false;
        curl_easy_pause(azure_conn_easy(r->conn), CURLPAUSE_CONT);
    }
    azure_step(r->conn, 200, &r->done, &r->rc);
    if (!r->done && !r->paused && azure_now() - last > r->st->stall_timeout) {
        r->done = true;
        r->rc = CURLE_OPERATION_TIMEDOUT;
        snprintf(r->resp.curl_error, sizeof r->resp.curl_error,
                 "no byte moved for %g s (stall_timeout)",
                 r->st->stall_timeout);
    }
}

/* Makes a Get Blob from `from` and waits for its status, with retries.
 * On success the transfer is running (or done, for a short blob) and
 * the headers are known. */
static int
azure_reader_open_at(azure_reader *r, int64_t from, kiln_error *err)
{
    int rc = KILN_OK;

    for (int attempt = 1; attempt <= r->st->attempts; attempt++) {
        double since;

        azure_retry_wait(r->st, attempt, "GET", r->blob, &r->resp);
        since = azure_now();
        rc = azure_reader_start(r, from, err);
        if (rc != KILN_OK) {
            return rc;
        }
        while (!r->x.headers_done && !r->done) {
            azure_reader_step(r, since);
        }
        r->resp.attempts = attempt;
        r->resp.curl_rc = r->rc;
        if (r->x.headers_done && r->resp.status >= 200 &&
            r->resp.status < 300) {
            /* A server that ignores the range sends the blob from 0:
             * reading on skips to `from`. */
            if (r->resp.status == 200) {
                r->stream_pos = 0;
                r->unranged = from > 0;
            }
            return KILN_OK;
        }
        /* An error answer: its body is short, read it to the end. */
        while (r->x.headers_done && !r->done) {
            azure_reader_step(r, since);
        }
        azure_stop(r->conn);
        r->active = false;
        if (r->rc == CURLE_OK) {
            azure_parse_error(&r->x);
        }
        if (!azure_retryable(r->rc, r->rc == CURLE_OK ? r->resp.status : 0)) {
            break;
        }
    }
    if (r->rc != CURLE_OK) {
        return azure_fail_transport(r->st, &r->resp, r->blob, "cannot read",
                                    err);
    }
    return azure_fail(r->st, &r->resp, r->blob, "cannot read", err);
}

/* Reports err through libvips, whose caller only sees -1. */
static gint64
azure_reader_vips_error(const kiln_error *err)
{
    vips_error("azure", "%s", err->message);
    return -1;
}

/* Moves bytes from buf into head while they continue it. */
static void
azure_reader_keep_head(azure_reader *r, size_t n)
{
    if (r->stream_pos == (int64_t)r->head_len &&
        r->head_len < AZURE_HEAD_KEEP) {
        size_t k = AZURE_HEAD_KEEP - r->head_len;

        if (k > n) {
            k = n;
        }
        memcpy(r->head + r->head_len, r->buf + r->off, k);
        r->head_len += k;
    }
}

/* One read: from head, or what the transfer has buffered (waiting for
 * some when there is none). Returns 0 at the end, -1 on error. */
static gint64
azure_reader_read_some(azure_reader *r, void *out, gint64 want)
{
    double since = azure_now();
    kiln_error err;

    if (want <= 0 || r->pos >= r->length) {
        return 0;
    }
    if (r->pos < (int64_t)r->head_len) {
        size_t k = r->head_len - (size_t)r->pos;

        if ((gint64)k > want) {
            k = (size_t)want;
        }
        memcpy(out, r->head + r->pos, k);
        r->pos += (int64_t)k;
        return (gint64)k;
    }

    for (;;) {
        size_t avail = r->len - r->off;

        if (r->active && r->pos < r->stream_pos &&
            r->stream_pos - r->pos <= (int64_t)r->off) {
            /* A step back into what buf still holds: no new request. */
            r->off -= (size_t)(r->stream_pos - r->pos);
            r->stream_pos = r->pos;
            continue;
        }
        if (r->active && avail > 0 && r->stream_pos <= r->pos) {
            /* Skip up to pos, or hand out what is there. */
            size_t k = r->stream_pos < r->pos ? (size_t)(r->pos - r->stream_pos)
                                              : (size_t)want;
            bool skip = r->stream_pos < r->pos;

            if (k > avail) {
                k = avail;
            }
            azure_reader_keep_head(r, k);
            if (!skip) {
                memcpy(out, r->buf + r->off, k);
                r->pos += (int64_t)k;
            }
            r->off += k;
            r->stream_pos += (int64_t)k;
            if (r->done && r->rc == CURLE_OK && r->off == r->len &&
                r->stream_pos >= r->length) {
                /* All of it is read: free the connection and the buffer
                 * now, libvips may keep the source for a long time. */
                azure_reader_release(r);
            }
            if (!skip) {
                return (gint64)k;
            }
            continue;
        }
        if (!r->active || r->pos < r->stream_pos ||
            (r->pos - r->stream_pos > AZURE_SKIP_MAX && !r->unranged)) {
            err.message[0] = '\0';
            if (azure_reader_open_at(r, r->pos, &err) != KILN_OK) {
                return azure_reader_vips_error(&err);
            }
            continue;
        }
        if (r->done) {
            /* Ended before pos reached the length: the connection broke
             * or the answer was short. Ask again from pos. */
            r->resp.curl_rc = r->rc != CURLE_OK ? r->rc : CURLE_PARTIAL_FILE;
            if (r->restarts + 1 >= r->st->attempts) {
                r->resp.attempts = r->restarts + 1;
                azure_fail_transport(r->st, &r->resp, r->blob, "cannot read",
                                     &err);
                return azure_reader_vips_error(&err);
            }
            r->restarts++;
            {
                char qb[AZURE_QUOTE_MAX];
                char qc[AZURE_QUOTE_MAX];

                azure_api->log(
                    azure_self, KILN_LOG_WARN,
                    "reading blob %s in container %s broke off at byte "
                    "%" PRId64 " (%s); resuming there, retry %d of %d",
                    azure_quote(qb, r->blob), azure_quote(qc, r->st->container),
                    r->stream_pos,
                    r->resp.curl_error[0] != '\0'
                        ? r->resp.curl_error
                        : curl_easy_strerror(r->resp.curl_rc),
                    r->restarts, r->st->attempts - 1);
            }
            azure_reader_stop(r);
            continue;
        }
        azure_reader_step(r, since);
    }
}

/* Fills the whole request unless the blob ends: libtiff, for one, takes
 * a short read for a broken file. */
static gint64
azure_reader_read(VipsSourceCustom *src, void *out, gint64 want, void *user)
{
    azure_reader *r = user;
    gint64 done = 0;

    (void)src;
    while (done < want) {
        gint64 n = azure_reader_read_some(r, (char *)out + done, want - done);

        if (n < 0) {
            return -1;
        }
        if (n == 0) {
            break;
        }
        done += n;
    }
    return done;
}

static gint64
azure_reader_seek(VipsSourceCustom *src, gint64 offset, int whence, void *user)
{
    azure_reader *r = user;
    gint64 to;

    (void)src;
    switch (whence) {
    case SEEK_SET:
        to = offset;
        break;
    case SEEK_CUR:
        to = r->pos + offset;
        break;
    case SEEK_END:
        to = r->length + offset;
        break;
    default:
        to = -1;
        break;
    }
    if (to < 0 || to > r->length) {
        vips_error("azure",
                   "seek to %" PRId64 " outside blob of %" PRId64 " bytes",
                   (int64_t)to, r->length);
        return -1;
    }
    /* Only the position moves; the next read decides whether the
     * running transfer still serves it. */
    r->pos = to;
    return to;
}

int
azure_source_new(azure_state *st, const char *name, VipsSource **out,
                 kiln_error *err)
{
    azure_reader *r = calloc(1, sizeof *r);
    VipsSourceCustom *src;
    int rc;

    *out = NULL;
    if (r == NULL) {
        return azure_api->error_set(err, KILN_ENOMEM, "out of memory");
    }
    r->st = st;
    r->x.resp = &r->resp;
    r->blob = strdup(name);
    if (r->blob == NULL) {
        free(r);
        return azure_api->error_set(err, KILN_ENOMEM, "out of memory");
    }
    rc = azure_reader_open_at(r, 0, err);
    if (rc != KILN_OK) {
        azure_reader_free(r);
        return rc;
    }
    r->length = r->resp.content_length;
    if (r->length < 0) {
        char qb[AZURE_QUOTE_MAX];

        azure_reader_free(r);
        return azure_api->error_set(err, KILN_EIO,
                                    "cannot read blob %s: the answer "
                                    "has no Content-Length",
                                    azure_quote(qb, name));
    }
    snprintf(r->etag, sizeof r->etag, "%s", r->resp.etag);
    if (r->length == 0) {
        azure_reader_release(r);
    }

    src = vips_source_custom_new();
    if (src == NULL) {
        azure_reader_free(r);
        return azure_api->error_set_vips(err, "cannot make a source");
    }
    g_signal_connect(src, "read", G_CALLBACK(azure_reader_read), r);
    g_signal_connect(src, "seek", G_CALLBACK(azure_reader_seek), r);
    /* The reader lives as long as the source, or until the storage is
     * closed (azure_readers_close). */
    r->src = VIPS_SOURCE(src);
    g_object_weak_ref(G_OBJECT(src), azure_reader_gone, r);
    pthread_mutex_lock(&st->readers_lock);
    r->next = st->readers;
    if (r->next != NULL) {
        r->next->prev = r;
    }
    st->readers = r;
    pthread_mutex_unlock(&st->readers_lock);
    *out = VIPS_SOURCE(src);
    return KILN_OK;
}
