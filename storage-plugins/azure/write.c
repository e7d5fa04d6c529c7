/*
 * Writing a blob for the "azure" backend: a VipsTarget that uploads a
 * block blob. Output up to single_put_max bytes stays in memory and goes
 * up in one Put Blob at commit. Beyond that the output is cut into blocks
 * of block_size: each is staged with Put Block as soon as the writer has
 * moved past it, and commit stages the last one and names them all in a
 * Put Block List. Staged blocks stay invisible until that list is put;
 * after an abort the service discards them. The first block is kept in
 * memory until commit, so encoders that seek back to patch a header
 * (TIFF) work whatever the size.
 */
#define _GNU_SOURCE

#include "azure.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* Block ids: "kiln-" 16 hex digits "-" 5 digits, 27 bytes, so base64 has
 * no padding; one random part per upload, as two uploads of the same
 * blob share its list of uncommitted blocks. */
#define AZURE_ID_RAW 27
#define AZURE_ID_B64 37

typedef struct azure_write {
    azure_state *st;
    VipsTarget *target; /* a weak pointer: NULL once it is finalized */
    char *blob;
    const char *content_type;
    char id_random[17];
    /* Until staging starts: everything written, [0, size). */
    unsigned char *mem;
    size_t mem_cap;
    /* Once staging: block 0 (kept), and block `cur` being filled. */
    bool staging;
    unsigned char *head;
    unsigned char *cur_buf;
    uint32_t cur;
    uint32_t n_staged; /* blocks 1..n_staged are staged */
    int64_t pos, size;
    bool failed;
    kiln_error err; /* the first failure, for commit */
} azure_write;

/* Content types for the formats kiln writes, by extension. */
static const char *
azure_content_type(const char *name)
{
    static const char *const types[][2] = {
        {"jpg", "image/jpeg"},  {"jpeg", "image/jpeg"}, {"png", "image/png"},
        {"webp", "image/webp"}, {"gif", "image/gif"},   {"tif", "image/tiff"},
        {"tiff", "image/tiff"}, {"avif", "image/avif"}, {"heic", "image/heic"},
        {"heif", "image/heif"},
    };
    const char *dot = strrchr(name, '.');

    if (dot != NULL && strchr(dot, '/') == NULL) {
        for (size_t i = 0; i < KILN_N_ELEMENTS(types); i++) {
            if (strcasecmp(dot + 1, types[i][0]) == 0) {
                return types[i][1];
            }
        }
    }
    return "application/octet-stream";
}

static void
azure_block_id(const azure_write *w, uint32_t index, char out[AZURE_ID_B64])
{
    char raw[AZURE_ID_RAW + 1];

    snprintf(raw, sizeof raw, "kiln-%s-%05" PRIu32, w->id_random, index);
    azure_sk_base64((const unsigned char *)raw, AZURE_ID_RAW, out);
}

static void
azure_write_free(azure_write *w)
{
    if (w == NULL) {
        return;
    }
    /* libvips may keep the target alive after this (and after the
     * plugin is unloaded): leave nothing on it that points here. */
    if (w->target != NULL) {
        g_signal_handlers_disconnect_by_data(w->target, w);
        g_object_remove_weak_pointer(G_OBJECT(w->target),
                                     (gpointer *)&w->target);
    }
    free(w->mem);
    free(w->head);
    free(w->cur_buf);
    free(w->blob);
    free(w);
}

/* Records the first failure and reports it to libvips. */
static gint64
azure_write_failed(azure_write *w)
{
    w->failed = true;
    vips_error("azure", "%s", w->err.message);
    return -1;
}

/* Put Block of block `index`. */
static int
azure_put_block(azure_write *w, uint32_t index, const unsigned char *data,
                size_t len, kiln_error *err)
{
    char id[AZURE_ID_B64];
    azure_response resp;
    azure_request req = {
        .method = "PUT",
        .blob = w->blob,
        .comp = "block",
        .block_id = id,
        .body = data,
        .body_len = len,
    };
    int rc;

    azure_block_id(w, index, id);
    rc = azure_run(w->st, &req, &resp, "cannot write", err);
    if (rc == KILN_OK && resp.status != 201) {
        rc = azure_fail(w->st, &resp, w->blob, "cannot write", err);
    }
    return rc;
}

/* Stages block `cur` (holes left as zeros) and starts the next one. */
static int
azure_next_block(azure_write *w, kiln_error *err)
{
    int rc;

    if (w->cur + 1 >= AZURE_MAX_BLOCKS) {
        char qb[AZURE_QUOTE_MAX];

        return azure_api->error_set(err, KILN_ELIMIT,
                                    "cannot write blob %s: the output "
                                    "needs more than %d blocks of %zu bytes "
                                    "(raise block_size)",
                                    azure_quote(qb, w->blob), AZURE_MAX_BLOCKS,
                                    w->st->block_size);
    }
    rc = azure_put_block(w, w->cur, w->cur_buf, w->st->block_size, err);
    if (rc != KILN_OK) {
        return rc;
    }
    w->n_staged = w->cur;
    w->cur++;
    memset(w->cur_buf, 0, w->st->block_size);
    return KILN_OK;
}

/* Leaves the all-in-memory mode once the output outgrows
 * single_put_max: the memory holds exactly single_put_max bytes here. */
static int
azure_start_staging(azure_write *w, kiln_error *err)
{
    size_t bs = w->st->block_size;
    size_t have = (size_t)w->size;
    size_t at = bs;

    w->head = malloc(bs);
    w->cur_buf = calloc(1, bs);
    if (w->head == NULL || w->cur_buf == NULL) {
        return azure_api->error_set(err, KILN_ENOMEM, "out of memory");
    }
    memcpy(w->head, w->mem, bs);
    w->staging = true;
    w->cur = 1;
    while (at + bs <= have) {
        int rc;

        memcpy(w->cur_buf, w->mem + at, bs);
        rc = azure_next_block(w, err);
        if (rc != KILN_OK) {
            return rc;
        }
        at += bs;
    }
    memcpy(w->cur_buf, w->mem + at, have - at);
    free(w->mem);
    w->mem = NULL;
    w->mem_cap = 0;
    return KILN_OK;
}

/* Writes `len` bytes at w->pos into memory; false when out of memory. */
static bool
azure_mem_write(azure_write *w, const unsigned char *data, size_t len)
{
    size_t end = (size_t)w->pos + len;

    if (end > w->mem_cap) {
        size_t cap = w->mem_cap == 0 ? 64 * 1024 : w->mem_cap;
        unsigned char *m;

        while (cap < end) {
            cap *= 2;
        }
        if (cap > w->st->single_put_max) {
            cap = w->st->single_put_max;
        }
        m = realloc(w->mem, cap);
        if (m == NULL) {
            return false;
        }
        w->mem = m;
        w->mem_cap = cap;
    }
    if ((size_t)w->pos > (size_t)w->size) {
        memset(w->mem + w->size, 0, (size_t)w->pos - (size_t)w->size);
    }
    memcpy(w->mem + w->pos, data, len);
    return true;
}

static gint64
azure_target_write(VipsTargetCustom *t, const void *data, gint64 length,
                   void *user)
{
    azure_write *w = user;
    const unsigned char *p = data;
    size_t left = (size_t)length;
    size_t bs = w->st->block_size;
    char qb[AZURE_QUOTE_MAX];

    (void)t;
    if (w->failed) {
        return azure_write_failed(w);
    }
    while (left > 0) {
        size_t n;

        if (!w->staging) {
            size_t max = w->st->single_put_max;

            if ((size_t)w->pos >= max) {
                /* Past the threshold: fill any hole up to it, stage. */
                if (w->mem_cap < max) {
                    unsigned char *m = realloc(w->mem, max);

                    if (m == NULL) {
                        goto nomem;
                    }
                    w->mem = m;
                    w->mem_cap = max;
                }
                memset(w->mem + w->size, 0, max - (size_t)w->size);
                w->size = (int64_t)max;
                if (azure_start_staging(w, &w->err) != KILN_OK) {
                    return azure_write_failed(w);
                }
                continue;
            }
            n = max - (size_t)w->pos;
            n = n < left ? n : left;
            if (!azure_mem_write(w, p, n)) {
                goto nomem;
            }
        } else {
            uint64_t block = (uint64_t)w->pos / bs;
            size_t at = (size_t)((uint64_t)w->pos % bs);

            n = bs - at;
            n = n < left ? n : left;
            if (block == 0) {
                memcpy(w->head + at, p, n);
            } else if (block == w->cur) {
                memcpy(w->cur_buf + at, p, n);
            } else if (block > w->cur) {
                if (azure_next_block(w, &w->err) != KILN_OK) {
                    return azure_write_failed(w);
                }
                continue;
            } else {
                azure_api->error_set(&w->err, KILN_EIO,
                                     "cannot write blob %s: the "
                                     "encoder went back to offset %" PRId64
                                     ", in a block already uploaded (raise "
                                     "block_size or single_put_max)",
                                     azure_quote(qb, w->blob), w->pos);
                return azure_write_failed(w);
            }
        }
        p += n;
        left -= n;
        w->pos += (int64_t)n;
        if (w->pos > w->size) {
            w->size = w->pos;
        }
    }
    return length;

nomem:
    azure_api->error_set(&w->err, KILN_ENOMEM, "out of memory writing blob %s",
                         azure_quote(qb, w->blob));
    return azure_write_failed(w);
}

/* Reads back what is still in memory (TIFF writers read their header). */
static gint64
azure_target_read(VipsTargetCustom *t, void *out, gint64 length, void *user)
{
    azure_write *w = user;
    size_t bs = w->st->block_size;
    size_t n;

    (void)t;
    if (length <= 0 || w->pos >= w->size) {
        return 0;
    }
    n = (size_t)(w->size - w->pos);
    n = n < (size_t)length ? n : (size_t)length;
    if (!w->staging) {
        memcpy(out, w->mem + w->pos, n);
    } else {
        uint64_t block = (uint64_t)w->pos / bs;
        size_t at = (size_t)((uint64_t)w->pos % bs);

        n = n < bs - at ? n : bs - at;
        if (block == 0) {
            memcpy(out, w->head + at, n);
        } else if (block == w->cur) {
            memcpy(out, w->cur_buf + at, n);
        } else {
            vips_error("azure",
                       "cannot read back offset %" PRId64
                       ": that block is already uploaded",
                       w->pos);
            return -1;
        }
    }
    w->pos += (int64_t)n;
    return (gint64)n;
}

static gint64
azure_target_seek(VipsTargetCustom *t, gint64 offset, int whence, void *user)
{
    azure_write *w = user;
    gint64 to;

    (void)t;
    switch (whence) {
    case SEEK_SET:
        to = offset;
        break;
    case SEEK_CUR:
        to = w->pos + offset;
        break;
    case SEEK_END:
        to = w->size + offset;
        break;
    default:
        to = -1;
        break;
    }
    if (to < 0) {
        vips_error("azure", "bad seek to %" PRId64, (int64_t)to);
        return -1;
    }
    w->pos = to;
    return to;
}

/* Nothing to flush: the upload completes in commit. */
static int
azure_target_end(VipsTargetCustom *t, void *user)
{
    (void)t;
    (void)user;
    return 0;
}

int
azure_target_new(azure_state *st, const char *name, VipsTarget **target,
                 void **handle, kiln_error *err)
{
    azure_write *w = calloc(1, sizeof *w);
    unsigned char rnd[8];
    VipsTargetCustom *t;

    *target = NULL;
    *handle = NULL;
    if (w == NULL) {
        return azure_api->error_set(err, KILN_ENOMEM, "out of memory");
    }
    w->st = st;
    w->blob = strdup(name);
    if (w->blob == NULL) {
        azure_write_free(w);
        return azure_api->error_set(err, KILN_ENOMEM, "out of memory");
    }
    w->content_type = azure_content_type(name);
    if (getrandom(rnd, sizeof rnd, GRND_NONBLOCK) != (ssize_t)sizeof rnd) {
        /* Only uniqueness between uploads matters, not secrecy. */
        uint64_t x = (uint64_t)(azure_now() * 1e9) ^ (uint64_t)getpid() ^
                     (uint64_t)(uintptr_t)w;

        memcpy(rnd, &x, sizeof rnd);
    }
    for (size_t i = 0; i < sizeof rnd; i++) {
        snprintf(w->id_random + 2 * i, 3, "%02x", rnd[i]);
    }

    t = vips_target_custom_new();
    if (t == NULL) {
        azure_write_free(w);
        return azure_api->error_set_vips(err, "cannot make a target");
    }
    g_signal_connect(t, "write", G_CALLBACK(azure_target_write), w);
    g_signal_connect(t, "read", G_CALLBACK(azure_target_read), w);
    g_signal_connect(t, "seek", G_CALLBACK(azure_target_seek), w);
    g_signal_connect(t, "end", G_CALLBACK(azure_target_end), w);
    /* The handle outlives the target (the host unrefs the target before
     * commit), so the target does not own it. */
    w->target = VIPS_TARGET(t);
    g_object_add_weak_pointer(G_OBJECT(t), (gpointer *)&w->target);
    *target = VIPS_TARGET(t);
    *handle = w;
    return KILN_OK;
}

/* Put Block List of blocks 0..n-1, in order. */
static int
azure_put_block_list(azure_write *w, uint32_t n, kiln_error *err)
{
    static const char open[] = "<?xml version=\"1.0\" encoding=\"utf-8\"?>"
                               "<BlockList>";
    static const char close[] = "</BlockList>";
    size_t per = strlen("<Latest></Latest>") + AZURE_ID_B64 - 1;
    size_t cap = sizeof open + (size_t)n * per + sizeof close;
    char *xml = malloc(cap);
    azure_response resp;
    azure_request req = {
        .method = "PUT",
        .blob = w->blob,
        .comp = "blocklist",
        .blob_content_type = w->content_type,
    };
    size_t len;
    int rc;

    if (xml == NULL) {
        return azure_api->error_set(err, KILN_ENOMEM, "out of memory");
    }
    len = (size_t)snprintf(xml, cap, "%s", open);
    for (uint32_t i = 0; i < n; i++) {
        char id[AZURE_ID_B64];

        azure_block_id(w, i, id);
        len +=
            (size_t)snprintf(xml + len, cap - len, "<Latest>%s</Latest>", id);
    }
    len += (size_t)snprintf(xml + len, cap - len, "%s", close);
    req.body = (const unsigned char *)xml;
    req.body_len = len;
    rc = azure_run(w->st, &req, &resp, "cannot commit", err);
    if (rc == KILN_OK && resp.status != 201) {
        rc = azure_fail(w->st, &resp, w->blob, "cannot commit", err);
    }
    free(xml);
    return rc;
}

int
azure_commit(void *state, void *handle, kiln_error *err)
{
    azure_state *st = state;
    azure_write *w = handle;
    size_t bs = st->block_size;
    azure_response resp;
    int rc;

    if (w->failed) {
        *err = w->err;
        azure_write_free(w);
        return err->code;
    }
    if (!w->staging) {
        azure_request req = {
            .method = "PUT",
            .blob = w->blob,
            .content_type = w->content_type,
            .blob_type = "BlockBlob",
            .body = w->mem,
            .body_len = (size_t)w->size,
        };

        rc = azure_run(st, &req, &resp, "cannot write", err);
        if (rc == KILN_OK && resp.status != 201) {
            rc = azure_fail(st, &resp, w->blob, "cannot write", err);
        }
        azure_write_free(w);
        return rc;
    }

    /* The last block (unless the output ends on a block boundary, or the
     * writer never got past block 1's start), then block 0, then the
     * list: the blob appears whole in that last call or not at all. */
    rc = KILN_OK;
    if ((uint64_t)w->size > (uint64_t)w->cur * bs) {
        rc = azure_put_block(
            w, w->cur, w->cur_buf,
            (size_t)((uint64_t)w->size - (uint64_t)w->cur * bs), err);
        w->n_staged = w->cur;
    }
    if (rc == KILN_OK) {
        rc = azure_put_block(w, 0, w->head, bs, err);
    }
    if (rc == KILN_OK) {
        rc = azure_put_block_list(w, w->n_staged + 1, err);
    }
    azure_write_free(w);
    return rc;
}

void
azure_abort(void *state, void *handle)
{
    (void)state;
    /* Blocks already staged are never committed; the service discards
     * uncommitted blocks by itself (after a week, on Azure). */
    azure_write_free(handle);
}
