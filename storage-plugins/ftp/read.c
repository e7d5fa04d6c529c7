/*
 * Reads for the "ftp" storage backend: open_read() starts a RETR and
 * hands libvips a custom VipsSource that streams it. Each read of the
 * source drives the transfer until some bytes arrived, then pauses it,
 * so nothing touches the disk and at most a chunk sits in memory. When
 * the server gave the file's size (SIZE, which curl sends before RETR),
 * the source is seekable: the engine learns the size before decoding
 * (max_file_size), the first bytes are kept so that format sniffing and
 * header re-reads rewind for free, short forward seeks read through and
 * any other seek restarts the RETR at the new offset (REST).
 */
#define _GNU_SOURCE

#include "ftp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The first bytes of the file kept for rewinds (loaders sniff the
 * start, then read the header again). */
#define FTP_HEAD_MAX (256 * 1024)
/* A forward seek up to this far reads through instead of a new RETR. */
#define FTP_SKIP_MAX (1024 * 1024)

/* One open source: owned by the VipsSource, freed when it is. */
typedef struct ftp_reader {
    ftp_live live;
    ftp_state *st; /* a reference */
    char *path;    /* the job's path, for messages */
    char *url;
    pthread_mutex_t lock;
    ftp_slot *slot; /* the running or paused RETR, or NULL */
    bool is_paused;
    bool is_oom;
    int64_t size; /* from SIZE, or -1: then the source cannot seek */
    int64_t end;  /* the file's end once a RETR reached it, or -1 */
    int64_t pos;  /* where libvips reads next */
    /* Bytes received and not yet read: buf[used..len) holds the file
     * from offset buf_off + used; buf_off + len is where the RETR is. */
    unsigned char *buf;
    size_t len, used, cap;
    int64_t buf_off;
    /* The file's first head_len bytes. */
    unsigned char *head;
    size_t head_len, head_cap;
    /* A failure while streaming, repeated to every later read. */
    char failure[sizeof(((kiln_error *)0)->message)];
} ftp_reader;

/* Write callback of the RETR: appends to the buffer, and to the head
 * while the bytes are among the file's first FTP_HEAD_MAX. */
static size_t
ftp_reader_on_data(char *data, size_t size, size_t n, void *u)
{
    ftp_reader *r = u;
    size_t len = size * n;
    int64_t at = r->buf_off + (int64_t)r->len;

    if (at <= (int64_t)r->head_len && r->head_len < FTP_HEAD_MAX) {
        size_t skip = (size_t)((int64_t)r->head_len - at);

        if (skip < len) {
            size_t k = len - skip;

            if (k > FTP_HEAD_MAX - r->head_len) {
                k = FTP_HEAD_MAX - r->head_len;
            }
            if (!ftp_grow(&r->head, &r->head_cap, r->head_len + k,
                          FTP_HEAD_MAX)) {
                r->is_oom = true;
                return 0;
            }
            memcpy(r->head + r->head_len, data + skip, k);
            r->head_len += k;
        }
    }
    if (r->used == r->len) {
        r->buf_off += (int64_t)r->len;
        r->used = r->len = 0;
    }
    if (!ftp_grow(&r->buf, &r->cap, r->len + len, 0)) {
        r->is_oom = true;
        return 0;
    }
    memcpy(r->buf + r->len, data, len);
    r->len += len;
    return len;
}

static bool
ftp_reader_has_data(void *u)
{
    ftp_reader *r = u;

    return r->used < r->len;
}

/* Records a streaming failure from err for this and every later read,
 * and in the libvips error buffer, which the engine reports. */
static gint64
ftp_reader_failed(ftp_reader *r, const kiln_error *err)
{
    if (r->failure[0] == '\0') {
        snprintf(r->failure, sizeof r->failure, "%s", err->message);
    }
    vips_error("ftp", "%s", r->failure);
    return -1;
}

/* Ends the current RETR, if any. A RETR ended before the file's end
 * makes curl close that connection; a finished one is reused. */
static void
ftp_reader_stop(ftp_reader *r)
{
    if (r->slot != NULL) {
        ftp_slot_give(r->st, r->slot);
        r->slot = NULL;
    }
    r->is_paused = false;
}

/* Starts a RETR at `offset`, dropping buffered bytes. */
static int
ftp_reader_start(ftp_reader *r, int64_t offset, kiln_error *err)
{
    int rc;

    ftp_reader_stop(r);
    r->buf_off = offset;
    r->used = r->len = 0;
    rc = ftp_slot_take(r->st, &r->slot, err);
    if (rc != KILN_OK) {
        return rc;
    }
    rc = ftp_slot_prepare(r->st, r->slot, r->url, err);
    if (rc == KILN_OK &&
        (curl_easy_setopt(r->slot->easy, CURLOPT_WRITEFUNCTION,
                          ftp_reader_on_data) != CURLE_OK ||
         curl_easy_setopt(r->slot->easy, CURLOPT_WRITEDATA, r) != CURLE_OK ||
         curl_easy_setopt(r->slot->easy, CURLOPT_RESUME_FROM_LARGE,
                          (curl_off_t)offset) != CURLE_OK)) {
        rc = ftp_api->error_set(err, KILN_EINTERNAL,
                                "libcurl refused a download option");
    }
    if (rc == KILN_OK) {
        rc = ftp_slot_start(r->slot, err);
    }
    if (rc != KILN_OK) {
        ftp_reader_stop(r);
    }
    return rc;
}

/* Drives the RETR until bytes are buffered or it ended. A RETR that
 * ended well marks the file's end and goes back to the pool. */
static int
ftp_reader_fill(ftp_reader *r, kiln_error *err)
{
    if (r->is_paused) {
        r->is_paused = false;
        curl_easy_pause(r->slot->easy, CURLPAUSE_CONT);
    }
    if (!ftp_slot_run(r->slot, ftp_reader_has_data, r)) {
        return KILN_OK;
    }
    if (r->is_oom) {
        ftp_reader_stop(r);
        return ftp_api->error_set(err, KILN_ENOMEM, "out of memory");
    }
    if (r->slot->result != CURLE_OK) {
        int rc = ftp_fail(r->st, r->slot, FTP_OP_READ, r->path, err);

        ftp_reader_stop(r);
        return rc;
    }
    r->end = r->buf_off + (int64_t)r->len;
    ftp_reader_stop(r);
    if (r->size >= 0 && r->end != r->size) {
        char q[FTP_QUOTE_MAX];

        return ftp_api->error_set(err, KILN_EIO,
                                  "cannot read %s from %s: the server sent "
                                  "%lld bytes where SIZE said %lld (the file "
                                  "changed while being read?)",
                                  ftp_quote(q, r->path), r->st->display,
                                  (long long)r->end, (long long)r->size);
    }
    return KILN_OK;
}

/* Copies up to `want` bytes at r->pos from the head or the buffer
 * (read bytes stay there until the next chunk arrives, so a short seek
 * back is served too); returns how many (0: neither holds r->pos). */
static gint64
ftp_reader_copy(ftp_reader *r, unsigned char *out, gint64 want)
{
    int64_t hi = r->buf_off + (int64_t)r->len;
    int64_t n = 0;

    if (r->pos < (int64_t)r->head_len) {
        n = (int64_t)r->head_len - r->pos;
        if (n > want) {
            n = want;
        }
        memcpy(out, r->head + r->pos, (size_t)n);
    } else if (r->pos >= r->buf_off && r->pos < hi) {
        n = hi - r->pos;
        if (n > want) {
            n = want;
        }
        memcpy(out, r->buf + (r->pos - r->buf_off), (size_t)n);
    }
    /* Bytes up to the new position need not be kept for reading. */
    if (n > 0 && r->pos + n > r->buf_off + (int64_t)r->used &&
        r->pos + n <= hi) {
        r->used = (size_t)(r->pos + n - r->buf_off);
    }
    r->pos += n;
    return n;
}

static gint64
ftp_reader_read_some(ftp_reader *r, unsigned char *out, gint64 want)
{
    kiln_error err;

    if (r->failure[0] != '\0') {
        vips_error("ftp", "%s", r->failure);
        return -1;
    }
    if (want <= 0) {
        return 0;
    }
    for (;;) {
        gint64 n = ftp_reader_copy(r, out, want);
        int64_t hi = r->buf_off + (int64_t)r->len;
        int rc;

        if (n > 0) {
            return n;
        }
        if ((r->end >= 0 && r->pos >= r->end) ||
            (r->size >= 0 && r->pos >= r->size)) {
            return 0;
        }
        if (r->slot != NULL && r->pos >= hi && r->pos - hi <= FTP_SKIP_MAX) {
            /* The RETR is at pos or a little before: read on; the copy
             * above skips what lies before pos. */
            r->used = r->len;
            rc = ftp_reader_fill(r, &err);
        } else {
            rc = ftp_reader_start(r, r->pos, &err);
        }
        if (rc != KILN_OK) {
            return ftp_reader_failed(r, &err);
        }
    }
}

static gint64
ftp_reader_read(VipsSourceCustom *src, void *out, gint64 want, void *u)
{
    ftp_reader *r = u;
    gint64 n;

    (void)src;
    pthread_mutex_lock(&r->lock);
    /* Whole reads up to the end: libvips' TIFF glue hands libtiff what
     * one read returns, and libtiff takes a short read for an error. */
    n = 0;
    while (n < want) {
        gint64 k = ftp_reader_read_some(r, (unsigned char *)out + n, want - n);

        if (k < 0 && n == 0) {
            n = -1;
        }
        if (k <= 0) {
            break;
        }
        n += k;
    }
    /* Paused between reads, so a decoder that pauses long does not trip
     * the low-speed timeout. */
    if (r->slot != NULL && !r->slot->is_done && !r->is_paused) {
        curl_easy_pause(r->slot->easy, CURLPAUSE_RECV);
        r->is_paused = true;
    }
    pthread_mutex_unlock(&r->lock);
    return n;
}

/* Seeks only move r->pos; the next read fetches what is needed. */
static gint64
ftp_reader_seek(VipsSourceCustom *src, gint64 offset, int whence, void *u)
{
    ftp_reader *r = u;
    gint64 to;

    (void)src;
    pthread_mutex_lock(&r->lock);
    to = ftp_seek_to(r->pos, r->size, offset, whence);
    /* Without a size libvips treats the source as a pipe. */
    if (r->size < 0 || to < 0) {
        to = -1;
    } else {
        r->pos = to;
    }
    pthread_mutex_unlock(&r->lock);
    return to;
}

static void
ftp_reader_free(void *u)
{
    ftp_reader *r = u;

    ftp_reader_stop(r);
    ftp_state_unref(r->st);
    pthread_mutex_destroy(&r->lock);
    free(r->buf);
    free(r->head);
    free(r->url);
    free(r->path);
    free(r);
}

int
ftp_open_read(void *state, const char *path, VipsSource **out, kiln_error *err)
{
    ftp_state *st = state;
    ftp_reader *r;
    VipsSourceCustom *src;
    char *dir_url = NULL;
    char *name = NULL;
    int rc;

    *out = NULL;
    rc = ftp_path_split(st, path, &dir_url, &name, err);
    if (rc != KILN_OK) {
        return rc;
    }
    r = calloc(1, sizeof *r);
    if (r == NULL) {
        free(dir_url);
        free(name);
        return ftp_api->error_set(err, KILN_ENOMEM, "out of memory");
    }
    pthread_mutex_init(&r->lock, NULL);
    g_atomic_int_inc(&st->refs);
    r->st = st;
    r->size = -1;
    r->end = -1;
    r->url = ftp_url_join(dir_url, name);
    r->path = strdup(path);
    free(dir_url);
    free(name);
    if (r->url == NULL || r->path == NULL) {
        ftp_reader_free(r);
        return ftp_api->error_set(err, KILN_ENOMEM, "out of memory");
    }

    /* Up to the first bytes now: a missing file, a refused login or an
     * unreachable server is reported here, named, not by the decoder. */
    rc = ftp_reader_start(r, 0, err);
    if (rc == KILN_OK) {
        curl_off_t size = -1;

        if (!ftp_slot_run(r->slot, ftp_reader_has_data, r)) {
            /* Known once data flows: from SIZE or the 150 reply. */
            if (curl_easy_getinfo(r->slot->easy,
                                  CURLINFO_CONTENT_LENGTH_DOWNLOAD_T,
                                  &size) == CURLE_OK &&
                size >= 0) {
                r->size = size;
            }
        } else {
            rc = ftp_reader_fill(r, err);
            if (rc == KILN_OK) {
                r->size = r->end;
            }
        }
    }
    if (rc != KILN_OK) {
        ftp_reader_free(r);
        return rc;
    }
    if (r->slot != NULL) {
        curl_easy_pause(r->slot->easy, CURLPAUSE_RECV);
        r->is_paused = true;
    }

    src = vips_source_custom_new();
    if (src == NULL) {
        ftp_reader_free(r);
        return ftp_api->error_set_vips(err, "cannot make a source");
    }
    g_signal_connect(src, "read", G_CALLBACK(ftp_reader_read), r);
    g_signal_connect(src, "seek", G_CALLBACK(ftp_reader_seek), r);
    ftp_live_attach(&r->live, G_OBJECT(src), r, ftp_reader_free);
    *out = VIPS_SOURCE(src);
    return KILN_OK;
}
