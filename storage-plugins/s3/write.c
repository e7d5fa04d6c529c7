/*
 * Writing objects for the "s3" backend. open_write() hands libvips a
 * VipsTarget over memory buffers of at most part_size bytes: nothing is
 * sent while the output fits one part, and commit() PUTs it in one
 * request. A larger output becomes a multipart upload: every full part
 * after the first is uploaded as soon as the encoder moves past it, the
 * first part and the last are uploaded at commit(), which then completes
 * the upload. S3 shows an object only when its PUT or its
 * CompleteMultipartUpload succeeds, so the destination is whole or as it
 * was; abort() drops the buffers and aborts a started upload. The first
 * part stays in memory because encoders seek back to patch headers
 * (libtiff rewrites the first IFD offset at the end).
 */
#define _GNU_SOURCE /* strdup, strcasecmp */

#include "s3.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* One destination between open_write() and commit()/abort(). Referenced
 * by the handle and by the target, which libvips may finalize later. */
typedef struct s3_writer {
    int refs; /* atomic */
    s3_state *st;
    char *key;
    const char *content_type;
    GMutex lock;
    size_t part; /* part size */

    unsigned char *first; /* bytes [0, first_len) */
    size_t first_len;
    size_t first_cap;
    unsigned char *cur; /* part cur_no (>= 2): bytes from (cur_no-1)*part */
    size_t cur_len;
    size_t cur_cap;
    int cur_no; /* 0 until the output passes the first part */

    gint64 pos;
    gint64 size;

    char *upload_id;                /* once a multipart upload started */
    char (*etags)[S3_ETAG_MAX + 1]; /* etags[k]: part k's ETag */
    int etags_cap;

    bool failed;  /* a write failed: commit must not publish */
    bool settled; /* commit() or abort() ran */
    kiln_error error;
} s3_writer;

static void
s3_writer_unref(s3_writer *w)
{
    if (__atomic_sub_fetch(&w->refs, 1, __ATOMIC_ACQ_REL) > 0) {
        return;
    }
    free(w->first);
    free(w->cur);
    free(w->upload_id);
    free(w->etags);
    free(w->key);
    g_mutex_clear(&w->lock);
    s3_state_unref(w->st);
    free(w);
}

static void
s3_writer_unref_cb(gpointer p)
{
    s3_writer_unref(p);
}

/* The Content-Type S3 will serve the object with, from its extension. */
static const char *
s3_content_type(const char *key)
{
    static const struct {
        const char *ext;
        const char *type;
    } types[] = {
        {".jpg", "image/jpeg"},  {".jpeg", "image/jpeg"},
        {".png", "image/png"},   {".webp", "image/webp"},
        {".gif", "image/gif"},   {".tif", "image/tiff"},
        {".tiff", "image/tiff"}, {".avif", "image/avif"},
        {".heic", "image/heic"}, {".heif", "image/heif"},
    };
    const char *dot = strrchr(key, '.');

    if (dot != NULL && strchr(dot, '/') == NULL) {
        for (size_t i = 0; i < KILN_N_ELEMENTS(types); i++) {
            if (strcasecmp(dot, types[i].ext) == 0) {
                return types[i].type;
            }
        }
    }
    return "application/octet-stream";
}

/* Records the first failure (later ones follow from it) and reports it to
 * libvips too, so the encoder stops with the reason. */
static void
s3_writer_failed(s3_writer *w)
{
    w->failed = true;
    vips_error("s3", "%s", w->error.message);
}

static int s3_writer_setf(s3_writer *w, int code, const char *fmt, ...)
    KILN_PRINTF(3, 4);

static int
s3_writer_setf(s3_writer *w, int code, const char *fmt, ...)
{
    char text[sizeof w->error.message];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (!w->failed) {
        s3_api->error_set(&w->error, code, "%s", text);
    }
    s3_writer_failed(w);
    return -1;
}

/* The "uploadId=..." query part. */
static int
s3_upload_query(const s3_writer *w, int part_no, s3_buf *q)
{
    if (part_no > 0) {
        char num[32];

        snprintf(num, sizeof num, "partNumber=%d&", part_no);
        s3_buf_adds(q, num);
    }
    s3_buf_adds(q, "uploadId=");
    s3_buf_add_uri(q, w->upload_id, strlen(w->upload_id), false);
    return q->failed ? -1 : 0;
}

/* Sends one request on the writer's key and fills *o (the caller frees
 * it). On failure err, when given, says why. Returns 0 or -1. */
static int
s3_writer_call(s3_writer *w, const char *method, const char *query,
               const void *body, size_t len, const char *content_type,
               s3_outcome *o, kiln_error *err)
{
    s3_req req;

    memset(&req, 0, sizeof req);
    req.method = method;
    req.key = w->key;
    req.query = query;
    req.body = body;
    req.body_len = len;
    req.content_type = content_type;
    if (s3_request(w->st, &req, o)) {
        return 0;
    }
    if (err != NULL) {
        s3_fail(w->st, err, "write", w->key, o);
    }
    return -1;
}

/* CreateMultipartUpload, once. Returns 0, or -1 with w->error set. */
static int
s3_writer_start_upload(s3_writer *w, kiln_error *err)
{
    s3_outcome o = {0};
    char id[1024];
    int rc = 0;

    if (w->upload_id != NULL) {
        return 0;
    }
    if (s3_writer_call(w, "POST", "uploads", NULL, 0, w->content_type, &o,
                       err) != 0) {
        rc = -1;
    } else if (!s3_xml_text(o.body.p, o.body.len, "UploadId", id, sizeof id) ||
               id[0] == '\0') {
        char qk[200];

        s3_api->error_set(err, KILN_EIO,
                          "cannot write %s in bucket \"%s\": the answer "
                          "to CreateMultipartUpload has no UploadId "
                          "(expected an InitiateMultipartUploadResult)",
                          s3_quote(qk, sizeof qk, w->key), w->st->bucket);
        rc = -1;
    } else {
        w->upload_id = strdup(id);
        if (w->upload_id == NULL) {
            s3_fail_nomem(err, w->key);
            rc = -1;
        }
    }
    s3_outcome_free(&o);
    return rc;
}

/* UploadPart; keeps the part's ETag. */
static int
s3_writer_put_part(s3_writer *w, int part_no, const unsigned char *data,
                   size_t len, kiln_error *err)
{
    s3_outcome o = {0};
    s3_buf q = {0};
    int rc = -1;

    if (part_no > S3_PARTS_MAX) {
        char qk[200];

        s3_api->error_set(err, KILN_ELIMIT,
                          "cannot write %s in bucket \"%s\": the output "
                          "needs more than %d parts of %zu MiB (expected a "
                          "larger part_size)",
                          s3_quote(qk, sizeof qk, w->key), w->st->bucket,
                          S3_PARTS_MAX, w->part / S3_MIB);
        return -1;
    }
    if (s3_writer_start_upload(w, err) != 0) {
        return -1;
    }
    if (part_no >= w->etags_cap) {
        int cap = w->etags_cap == 0 ? 16 : w->etags_cap;
        void *e;

        while (cap <= part_no) {
            cap *= 2;
        }
        e = realloc(w->etags, (size_t)cap * sizeof *w->etags);
        if (e == NULL) {
            s3_fail_nomem(err, w->key);
            return -1;
        }
        w->etags = e;
        memset(w->etags + w->etags_cap, 0,
               (size_t)(cap - w->etags_cap) * sizeof *w->etags);
        w->etags_cap = cap;
    }
    if (s3_upload_query(w, part_no, &q) != 0) {
        s3_fail_nomem(err, w->key);
        goto done;
    }
    if (s3_writer_call(w, "PUT", q.p, data, len, NULL, &o, err) != 0) {
        goto done;
    }
    snprintf(w->etags[part_no], sizeof w->etags[part_no], "%s", o.etag);
    rc = 0;
done:
    s3_buf_free(&q, false);
    s3_outcome_free(&o);
    return rc;
}

/* Grows one part buffer to hold `need` bytes (never beyond a part). */
static int
s3_writer_reserve(s3_writer *w, unsigned char **buf, size_t *cap, size_t need)
{
    size_t c = *cap == 0 ? 64 * 1024 : *cap;
    unsigned char *b;

    if (need <= *cap) {
        return 0;
    }
    while (c < need) {
        c *= 2;
    }
    if (c > w->part) {
        c = w->part;
    }
    b = realloc(*buf, c);
    if (b == NULL) {
        return -1;
    }
    *buf = b;
    *cap = c;
    return 0;
}

/* Moves the current part on to part_no, uploading the one it leaves
 * (zero-filled to a full part if the encoder skipped ahead). */
static int
s3_writer_advance(s3_writer *w, int part_no)
{
    char qk[200];

    if (part_no < w->cur_no) {
        return s3_writer_setf(w, KILN_EIO,
                              "cannot write %s in bucket \"%s\": the "
                              "encoder went back to part %d, which was "
                              "uploaded already (expected a part_size above "
                              "the output's size)",
                              s3_quote(qk, sizeof qk, w->key), w->st->bucket,
                              part_no);
    }
    if (part_no > (w->cur_no < 2 ? 2 : w->cur_no + 1)) {
        return s3_writer_setf(w, KILN_EIO,
                              "cannot write %s in bucket \"%s\": the "
                              "encoder skipped a whole part (expected "
                              "sequential output)",
                              s3_quote(qk, sizeof qk, w->key), w->st->bucket);
    }
    if (w->cur_no >= 2) {
        kiln_error e;

        memset(&e, 0, sizeof e);
        if (s3_writer_reserve(w, &w->cur, &w->cur_cap, w->part) != 0) {
            return s3_writer_setf(w, KILN_ENOMEM, "out of memory for %s",
                                  s3_quote(qk, sizeof qk, w->key));
        }
        memset(w->cur + w->cur_len, 0, w->part - w->cur_len);
        if (s3_writer_put_part(w, w->cur_no, w->cur, w->part, &e) != 0) {
            if (!w->failed) {
                w->error = e;
            }
            s3_writer_failed(w);
            return -1;
        }
    } else if (w->first_len < w->part) {
        if (s3_writer_reserve(w, &w->first, &w->first_cap, w->part) != 0) {
            return s3_writer_setf(w, KILN_ENOMEM, "out of memory for %s",
                                  s3_quote(qk, sizeof qk, w->key));
        }
        memset(w->first + w->first_len, 0, w->part - w->first_len);
        w->first_len = w->part;
    }
    w->cur_no = part_no;
    w->cur_len = 0;
    return 0;
}

static gint64
s3_writer_write(s3_writer *w, const unsigned char *data, gint64 len)
{
    gint64 done = 0;
    char qk[200];

    if (w->failed || w->settled) {
        return -1;
    }
    while (done < len) {
        int part_no = (int)(w->pos / (gint64)w->part) + 1;
        size_t off = (size_t)(w->pos % (gint64)w->part);
        size_t k = w->part - off;
        unsigned char **buf = &w->first;
        size_t *blen = &w->first_len;
        size_t *bcap = &w->first_cap;

        if ((gint64)k > len - done) {
            k = (size_t)(len - done);
        }
        if (part_no > 1) {
            if (part_no != w->cur_no && s3_writer_advance(w, part_no) != 0) {
                return -1;
            }
            buf = &w->cur;
            blen = &w->cur_len;
            bcap = &w->cur_cap;
        }
        if (s3_writer_reserve(w, buf, bcap, off + k) != 0) {
            return s3_writer_setf(w, KILN_ENOMEM, "out of memory for %s",
                                  s3_quote(qk, sizeof qk, w->key));
        }
        if (off > *blen) {
            memset(*buf + *blen, 0, off - *blen);
        }
        memcpy(*buf + off, data + done, k);
        if (off + k > *blen) {
            *blen = off + k;
        }
        w->pos += (gint64)k;
        done += (gint64)k;
        if (w->pos > w->size) {
            w->size = w->pos;
        }
    }
    return len;
}

static gint64
s3_target_write(VipsTargetCustom *t, const void *data, gint64 len,
                gpointer user)
{
    s3_writer *w = user;
    gint64 n;

    (void)t;
    g_mutex_lock(&w->lock);
    n = s3_writer_write(w, data, len);
    g_mutex_unlock(&w->lock);
    return n;
}

/* Reads back what is still in memory (encoders that patch headers read
 * them first). */
static gint64
s3_target_read(VipsTargetCustom *t, void *data, gint64 len, gpointer user)
{
    s3_writer *w = user;
    gint64 n = -1;
    gint64 base;

    (void)t;
    g_mutex_lock(&w->lock);
    base = (gint64)(w->cur_no >= 2 ? (size_t)(w->cur_no - 1) * w->part : 0);
    if (w->pos >= w->size) {
        n = 0;
    } else if (w->pos < (gint64)w->first_len) {
        n = (gint64)w->first_len - w->pos;
        n = n < len ? n : len;
        memcpy(data, w->first + w->pos, (size_t)n);
    } else if (w->cur_no >= 2 && w->pos >= base &&
               w->pos < base + (gint64)w->cur_len) {
        n = base + (gint64)w->cur_len - w->pos;
        n = n < len ? n : len;
        memcpy(data, w->cur + (w->pos - base), (size_t)n);
    } else {
        vips_error("s3", "cannot read back byte %lld: it was uploaded",
                   (long long)w->pos);
    }
    if (n > 0) {
        w->pos += n;
    }
    g_mutex_unlock(&w->lock);
    return n;
}

static gint64
s3_target_seek(VipsTargetCustom *t, gint64 offset, int whence, gpointer user)
{
    s3_writer *w = user;
    gint64 to;

    (void)t;
    g_mutex_lock(&w->lock);
    to = s3_seek_position(w->pos, w->size, offset, whence);
    if (to >= 0) {
        w->pos = to;
    }
    g_mutex_unlock(&w->lock);
    return to;
}

/* Nothing to flush: the upload happens at commit(). */
static int
s3_target_end(VipsTargetCustom *t, gpointer user)
{
    s3_writer *w = user;
    int rc;

    (void)t;
    g_mutex_lock(&w->lock);
    rc = w->failed ? -1 : 0;
    g_mutex_unlock(&w->lock);
    return rc;
}

int
s3_open_write(void *state, const char *path, VipsTarget **target, void **handle,
              kiln_error *err)
{
    s3_state *st = state;
    VipsTargetCustom *t;
    s3_writer *w;
    char *key;
    int rc;

    *target = NULL;
    *handle = NULL;
    key = s3_key_for(st, path, err);
    if (key == NULL) {
        return err->code;
    }
    w = calloc(1, sizeof *w);
    if (w == NULL) {
        rc = s3_fail_nomem(err, key);
        free(key);
        return rc;
    }
    w->refs = 1;
    w->st = st;
    s3_state_ref(st);
    w->key = key;
    w->content_type = s3_content_type(key);
    w->part = st->part_size;
    g_mutex_init(&w->lock);

    t = vips_target_custom_new();
    if (t == NULL) {
        s3_writer_unref(w);
        return s3_api->error_set_vips(err, "cannot make a target");
    }
    g_signal_connect(t, "write", G_CALLBACK(s3_target_write), w);
    g_signal_connect(t, "read", G_CALLBACK(s3_target_read), w);
    g_signal_connect(t, "seek", G_CALLBACK(s3_target_seek), w);
    g_signal_connect(t, "end", G_CALLBACK(s3_target_end), w);
    __atomic_add_fetch(&w->refs, 1, __ATOMIC_RELAXED);
    g_object_set_data_full(G_OBJECT(t), "kiln-s3-writer", w,
                           s3_writer_unref_cb);
    *target = VIPS_TARGET(t);
    *handle = w;
    return KILN_OK;
}

/* AbortMultipartUpload, best effort: parts left behind cost storage until
 * a lifecycle rule removes them, so say so in the log. */
static void
s3_writer_abort_upload(s3_writer *w)
{
    s3_outcome o = {0};
    s3_buf q = {0};

    if (w->upload_id == NULL) {
        return;
    }
    if (s3_upload_query(w, 0, &q) == 0) {
        if (s3_writer_call(w, "DELETE", q.p, NULL, 0, NULL, &o, NULL) != 0 &&
            o.status != 404) {
            kiln_error e;

            memset(&e, 0, sizeof e);
            s3_fail(w->st, &e, "abort the upload of", w->key, &o);
            s3_api->log(s3_self, KILN_LOG_WARN,
                        "%s; its parts stay until the bucket's lifecycle "
                        "rule (AbortIncompleteMultipartUpload) removes them",
                        e.message);
        }
    }
    s3_buf_free(&q, false);
    s3_outcome_free(&o);
    free(w->upload_id);
    w->upload_id = NULL;
}

/* CompleteMultipartUpload over parts 1..n. */
static int
s3_writer_complete(s3_writer *w, int n, kiln_error *err)
{
    s3_outcome o = {0};
    s3_buf xml = {0};
    s3_buf q = {0};
    int rc = -1;

    s3_buf_adds(&xml, "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws."
                      "com/doc/2006-03-01/\">");
    for (int k = 1; k <= n; k++) {
        char num[64];

        snprintf(num, sizeof num, "<Part><PartNumber>%d</PartNumber><ETag>", k);
        s3_buf_adds(&xml, num);
        for (const char *c = w->etags[k]; *c != '\0'; c++) {
            if (*c == '&') {
                s3_buf_adds(&xml, "&amp;");
            } else if (*c == '<') {
                s3_buf_adds(&xml, "&lt;");
            } else {
                s3_buf_addc(&xml, *c);
            }
        }
        s3_buf_adds(&xml, "</ETag></Part>");
    }
    s3_buf_adds(&xml, "</CompleteMultipartUpload>");
    if (xml.failed || s3_upload_query(w, 0, &q) != 0) {
        s3_fail_nomem(err, w->key);
        goto done;
    }
    if (s3_writer_call(w, "POST", q.p, xml.p, xml.len, "application/xml", &o,
                       err) != 0) {
        goto done;
    }
    rc = 0;
done:
    s3_buf_free(&xml, false);
    s3_buf_free(&q, false);
    s3_outcome_free(&o);
    return rc;
}

/* Always consumes the handle. On failure nothing new is visible at the
 * key: a PUT or a CompleteMultipartUpload that failed changed nothing. */
int
s3_commit(void *state, void *handle, kiln_error *err)
{
    s3_writer *w = handle;
    int rc = KILN_OK;

    (void)state;
    g_mutex_lock(&w->lock);
    w->settled = true;
    if (w->failed) {
        *err = w->error;
        rc = err->code != KILN_OK ? err->code : KILN_EIO;
    } else if (w->size <= (gint64)w->part) {
        s3_outcome o = {0};

        if (s3_writer_call(w, "PUT", NULL, w->first, (size_t)w->size,
                           w->content_type, &o, err) != 0) {
            rc = err->code;
        }
        s3_outcome_free(&o);
    } else {
        /* The parts in between went up while encoding. */
        size_t last = (size_t)(w->size - (gint64)(w->cur_no - 1) * w->part);

        if (s3_writer_put_part(w, 1, w->first, w->part, err) != 0 ||
            s3_writer_put_part(w, w->cur_no, w->cur, last, err) != 0 ||
            s3_writer_complete(w, w->cur_no, err) != 0) {
            rc = err->code != KILN_OK ? err->code : KILN_EIO;
        }
    }
    if (rc != KILN_OK) {
        s3_writer_abort_upload(w);
    }
    g_mutex_unlock(&w->lock);
    s3_writer_unref(w);
    return rc;
}

void
s3_abort(void *state, void *handle)
{
    s3_writer *w = handle;

    (void)state;
    if (w == NULL) {
        return;
    }
    g_mutex_lock(&w->lock);
    w->settled = true;
    s3_writer_abort_upload(w);
    g_mutex_unlock(&w->lock);
    s3_writer_unref(w);
}
