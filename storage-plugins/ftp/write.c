/*
 * Writes for the "ftp" storage backend. open_write() starts a STOR of a
 * temporary name in the destination's directory (".NAME.kiln-RANDOM",
 * directories created as needed) and hands libvips a custom VipsTarget.
 * The STOR starts at once, so a refused login or directory fails the job
 * before it encodes, and waits paused. The first 256 KiB of an output
 * stay in memory until the target ends (a small output goes in one
 * piece); past that each write drives the upload until curl has taken
 * the bytes, then the upload pauses again. A TIFF output is kept whole,
 * as libtiff seeks back to finish its header. Nothing touches the disk.
 * commit() renames the temporary file over the destination (RNFR/RNTO);
 * abort() deletes it (DELE). Readers of the destination see the old file
 * or the new one, never a part.
 */
#define _GNU_SOURCE

#include "ftp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* Temporary names are ".<name>.kiln-<random>", within FTP_NAME_MAX. */
#define FTP_TEMP_PREFIX "."
#define FTP_TEMP_SUFFIX ".kiln-"
#define FTP_TEMP_RANDOM 12
#define FTP_NAME_MAX 255
/* The first bytes of an output are kept in memory until the target
 * ends, in chunks; past FTP_HOLD_MAX an output streams, except a TIFF
 * one, which is kept whole (see ftp_upload_write). */
#define FTP_HOLD_MAX (256 * 1024)
#define FTP_CHUNK (64 * 1024)

/* One write between open_write() and commit()/abort(). Two references:
 * the handle's and the VipsTarget's, so either may go first. */
typedef struct ftp_upload {
    gint refs;
    ftp_live live;
    ftp_state *st;  /* a reference */
    ftp_slot *slot; /* while the STOR runs */
    char *path;     /* the job's path, for messages */
    char *dir_url;  /* the destination directory, ends in "/" */
    char *name;     /* final name in dir_url */
    char temp[FTP_NAME_MAX + 1];
    /* The output while it is held (chunk i holds bytes from i *
     * FTP_CHUNK), how much may be held, then the write position, the
     * output's length and how much of it curl has taken. */
    unsigned char **chunks;
    size_t n_chunks;
    gint64 hold_max;
    gint64 pos, size, sent;
    bool is_streaming;
    /* The bytes being handed to curl, taken by the read callback. */
    const unsigned char *data;
    size_t len;
    bool is_eof;
    bool is_paused;
    bool is_started; /* the server accepted the STOR */
    bool is_stored;  /* the STOR finished well */
    char failure[sizeof(((kiln_error *)0)->message)];
} ftp_upload;

static void
ftp_upload_unref(void *p)
{
    ftp_upload *u = p;

    if (!g_atomic_int_dec_and_test(&u->refs)) {
        return;
    }
    if (u->slot != NULL) {
        ftp_slot_give(u->st, u->slot);
    }
    ftp_state_unref(u->st);
    for (size_t i = 0; i < u->n_chunks; i++) {
        free(u->chunks[i]);
    }
    free(u->chunks);
    free(u->path);
    free(u->dir_url);
    free(u->name);
    free(u);
}

/* Fills u->temp with ".<name>.kiln-<random>", cutting <name> so that the
 * whole fits FTP_NAME_MAX. */
static void
ftp_temp_name(ftp_upload *u)
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz"
                                   "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    unsigned char rnd[FTP_TEMP_RANDOM];
    size_t room = FTP_NAME_MAX - strlen(FTP_TEMP_PREFIX) -
                  strlen(FTP_TEMP_SUFFIX) - FTP_TEMP_RANDOM;
    size_t n = strlen(u->name);
    size_t i;

    if (getrandom(rnd, sizeof rnd, GRND_NONBLOCK) != (ssize_t)sizeof rnd) {
        /* Only uniqueness matters, not secrecy. */
        struct timespec ts;
        unsigned long x;

        clock_gettime(CLOCK_REALTIME, &ts);
        x = (unsigned long)ts.tv_nsec ^ ((unsigned long)ts.tv_sec << 20) ^
            ((unsigned long)getpid() << 8) ^ (unsigned long)(uintptr_t)u;
        for (i = 0; i < sizeof rnd; i++) {
            x = x * 6364136223846793005UL + 1442695040888963407UL;
            rnd[i] = (unsigned char)(x >> 33);
        }
    }
    if (n > room) {
        n = room;
    }
    snprintf(u->temp, sizeof u->temp, "%s%.*s%s", FTP_TEMP_PREFIX, (int)n,
             u->name, FTP_TEMP_SUFFIX);
    n = strlen(u->temp);
    for (i = 0; i < sizeof rnd; i++) {
        u->temp[n + i] = alphabet[rnd[i] % (sizeof alphabet - 1)];
    }
    u->temp[n + sizeof rnd] = '\0';
}

/* Read callback of the STOR: hands curl the current write's bytes;
 * pauses when there are none yet, ends the file after end. */
/* True for a name the engine writes as TIFF (it picks the format from
 * the extension). */
static bool
ftp_is_tiff(const char *name)
{
    const char *dot = strrchr(name, '.');

    return dot != NULL &&
           (strcasecmp(dot, ".tif") == 0 || strcasecmp(dot, ".tiff") == 0);
}

static size_t
ftp_upload_on_read(char *out, size_t size, size_t n, void *data)
{
    ftp_upload *u = data;
    size_t room = size * n;

    u->is_started = true;
    if (u->len == 0) {
        if (u->is_eof) {
            return 0;
        }
        u->is_paused = true;
        return CURL_READFUNC_PAUSE;
    }
    if (room > u->len) {
        room = u->len;
    }
    memcpy(out, u->data, room);
    u->data += room;
    u->len -= room;
    return room;
}

static bool
ftp_upload_is_started(void *data)
{
    return ((ftp_upload *)data)->is_started;
}

static bool
ftp_upload_is_taken(void *data)
{
    return ((ftp_upload *)data)->len == 0;
}

/* Records a failure of the STOR for later writes and for libvips. */
static void
ftp_upload_failed(ftp_upload *u, const kiln_error *err)
{
    if (u->failure[0] == '\0') {
        snprintf(u->failure, sizeof u->failure, "%s", err->message);
    }
    vips_error("ftp", "%s", u->failure);
}

/* The STOR ended (u->slot->is_done): keeps the outcome, gives the slot
 * back. Returns 0 when the file was stored. */
static int
ftp_upload_finish(ftp_upload *u)
{
    char q[FTP_QUOTE_MAX];
    kiln_error err;

    if (u->slot->result == CURLE_OK && u->is_eof && u->len == 0) {
        u->is_stored = true;
    } else {
        if (u->slot->result == CURLE_OK) {
            ftp_api->error_set(&err, KILN_EIO,
                               "cannot write %s to %s: the upload ended "
                               "early",
                               ftp_quote(q, u->path), u->st->display);
        } else {
            ftp_fail(u->st, u->slot, FTP_OP_WRITE, u->path, &err);
        }
        ftp_upload_failed(u, &err);
    }
    ftp_slot_give(u->st, u->slot);
    u->slot = NULL;
    return u->is_stored ? 0 : -1;
}

/* Hands n bytes to the STOR and drives it until curl has taken them
 * (curl sends them on before it asks for more). Returns 0, or -1 when
 * the STOR failed. */
static int
ftp_upload_feed(ftp_upload *u, const unsigned char *data, size_t n)
{
    if (u->slot == NULL) {
        vips_error("ftp", "%s",
                   u->failure[0] != '\0' ? u->failure : "write after end");
        return -1;
    }
    if (n == 0) {
        return 0;
    }
    u->data = data;
    u->len = n;
    if (u->is_paused) {
        u->is_paused = false;
        curl_easy_pause(u->slot->easy, CURLPAUSE_CONT);
    }
    if (ftp_slot_run(u->slot, ftp_upload_is_taken, u)) {
        /* The STOR ended before it took everything: a failure. */
        u->data = NULL;
        ftp_upload_finish(u);
        return -1;
    }
    u->data = NULL;
    return 0;
}

/* Refuses to go back to bytes already sent. */
static int
ftp_upload_sent_already(ftp_upload *u)
{
    char q[FTP_QUOTE_MAX];
    kiln_error err;

    ftp_api->error_set(&err, KILN_EIO,
                       "cannot write %s to %s: the encoder went back to "
                       "byte %lld, which was uploaded already (FTP uploads "
                       "cannot seek; only TIFF outputs are kept in memory "
                       "whole)",
                       ftp_quote(q, u->path), u->st->display,
                       (long long)u->pos);
    ftp_upload_failed(u, &err);
    return -1;
}

/* Copies len bytes into the held output at `at`; chunks are zeroed when
 * made, so a gap left by a seek past the end reads as zeros. */
static bool
ftp_hold_put(ftp_upload *u, gint64 at, const unsigned char *data, size_t len)
{
    size_t need = (size_t)((at + (gint64)len + FTP_CHUNK - 1) / FTP_CHUNK);

    if (need > u->n_chunks) {
        unsigned char **c = realloc(u->chunks, need * sizeof *c);

        if (c == NULL) {
            return false;
        }
        u->chunks = c;
        while (u->n_chunks < need) {
            c[u->n_chunks] = calloc(1, FTP_CHUNK);
            if (c[u->n_chunks] == NULL) {
                return false;
            }
            u->n_chunks++;
        }
    }
    while (len > 0) {
        size_t i = (size_t)(at / FTP_CHUNK);
        size_t off = (size_t)(at % FTP_CHUNK);
        size_t n = FTP_CHUNK - off < len ? FTP_CHUNK - off : len;

        memcpy(u->chunks[i] + off, data, n);
        data += n;
        at += (gint64)n;
        len -= n;
    }
    return true;
}

/* Sends the held bytes, freeing each chunk once curl has it; from now on
 * writes stream. */
static int
ftp_upload_release_hold(ftp_upload *u)
{
    int rc = 0;

    for (size_t i = 0; i < u->n_chunks; i++) {
        gint64 from = (gint64)i * FTP_CHUNK;
        gint64 n = u->size - from < FTP_CHUNK ? u->size - from : FTP_CHUNK;

        if (rc == 0 && n > 0) {
            rc = ftp_upload_feed(u, u->chunks[i], (size_t)n);
        }
        free(u->chunks[i]);
    }
    free(u->chunks);
    u->chunks = NULL;
    u->n_chunks = 0;
    u->sent = u->size;
    u->is_streaming = true;
    return rc;
}

/* The first FTP_HOLD_MAX bytes stay in memory until the target ends, so
 * a small output goes in one piece and an encoder may seek back into
 * them; past that the output streams. libtiff writes the offset of its
 * first directory into the header last, and an FTP upload cannot seek:
 * a TIFF output is therefore held whole (hold_max). */
static gint64
ftp_upload_write(VipsTargetCustom *t, const void *data, gint64 len, void *p)
{
    ftp_upload *u = p;
    gint64 end = u->pos + len;

    (void)t;
    if (u->failure[0] != '\0') {
        vips_error("ftp", "%s", u->failure);
        return -1;
    }
    if (!u->is_streaming && end <= u->hold_max) {
        if (!ftp_hold_put(u, u->pos, data, (size_t)len)) {
            vips_error("ftp", "out of memory");
            return -1;
        }
        u->pos = end;
        if (end > u->size) {
            u->size = end;
        }
        return len;
    }
    if (!u->is_streaming) {
        if (u->pos != u->size) {
            return ftp_upload_sent_already(u);
        }
        if (ftp_upload_release_hold(u) != 0) {
            return -1;
        }
    }
    if (u->pos != u->sent) {
        return ftp_upload_sent_already(u);
    }
    if (ftp_upload_feed(u, data, (size_t)len) != 0) {
        return -1;
    }
    u->pos = u->sent = u->size = end;
    return len;
}

/* Reads back held bytes (libtiff may). */
static gint64
ftp_upload_read(VipsTargetCustom *t, void *out, gint64 len, void *p)
{
    ftp_upload *u = p;
    gint64 done = 0;

    (void)t;
    if (u->is_streaming) {
        return u->pos >= u->sent ? 0 : ftp_upload_sent_already(u);
    }
    while (done < len && u->pos < u->size) {
        size_t i = (size_t)(u->pos / FTP_CHUNK);
        size_t off = (size_t)(u->pos % FTP_CHUNK);
        gint64 n = FTP_CHUNK - (gint64)off;

        if (n > len - done) {
            n = len - done;
        }
        if (n > u->size - u->pos) {
            n = u->size - u->pos;
        }
        memcpy((unsigned char *)out + done, u->chunks[i] + off, (size_t)n);
        u->pos += n;
        done += n;
    }
    return done;
}

/* Moves the position; going back to sent bytes fails at the next
 * write or read, not here (libtiff asks where the end is). */
static gint64
ftp_upload_seek(VipsTargetCustom *t, gint64 offset, int whence, void *p)
{
    ftp_upload *u = p;
    gint64 to;

    (void)t;
    to = ftp_seek_to(u->pos, u->size, offset, whence);
    if (to < 0) {
        vips_error("ftp", "bad seek");
        return -1;
    }
    u->pos = to;
    return to;
}

/* Sends what is held, ends the file and waits for the server's 226. */
static int
ftp_upload_end(VipsTargetCustom *t, void *p)
{
    ftp_upload *u = p;

    (void)t;
    if (u->slot == NULL) {
        if (u->is_stored) {
            return 0;
        }
        vips_error("ftp", "%s", u->failure);
        return -1;
    }
    if (u->failure[0] != '\0' ||
        (!u->is_streaming && ftp_upload_release_hold(u) != 0)) {
        vips_error("ftp", "%s", u->failure);
        return -1;
    }
    u->is_eof = true;
    if (u->is_paused) {
        u->is_paused = false;
        curl_easy_pause(u->slot->easy, CURLPAUSE_CONT);
    }
    ftp_slot_run(u->slot, NULL, NULL);
    return ftp_upload_finish(u);
}

int
ftp_open_write(void *state, const char *path, VipsTarget **target,
               void **handle, kiln_error *err)
{
    ftp_state *st = state;
    VipsTargetCustom *t;
    ftp_upload *u;
    char *url = NULL;
    int rc;

    *target = NULL;
    *handle = NULL;
    u = calloc(1, sizeof *u);
    if (u == NULL) {
        return ftp_api->error_set(err, KILN_ENOMEM, "out of memory");
    }
    u->refs = 1;
    g_atomic_int_inc(&st->refs);
    u->st = st;
    rc = ftp_path_split(st, path, &u->dir_url, &u->name, err);
    if (rc != KILN_OK) {
        goto fail;
    }
    u->path = strdup(path);
    if (u->path == NULL) {
        rc = ftp_api->error_set(err, KILN_ENOMEM, "out of memory");
        goto fail;
    }
    ftp_temp_name(u);
    u->hold_max = ftp_is_tiff(u->name) ? G_MAXINT64 : FTP_HOLD_MAX;
    url = ftp_url_join(u->dir_url, u->temp);
    if (url == NULL) {
        rc = ftp_api->error_set(err, KILN_ENOMEM, "out of memory");
        goto fail;
    }

    rc = ftp_slot_take(st, &u->slot, err);
    if (rc != KILN_OK) {
        goto fail;
    }
    rc = ftp_slot_prepare(st, u->slot, url, err);
    if (rc != KILN_OK) {
        goto fail;
    }
    /* CREATE_DIR_RETRY: when MKD fails because another worker made the
     * directory first, CWD is tried again. */
    if (curl_easy_setopt(u->slot->easy, CURLOPT_UPLOAD, 1L) != CURLE_OK ||
        curl_easy_setopt(u->slot->easy, CURLOPT_READFUNCTION,
                         ftp_upload_on_read) != CURLE_OK ||
        curl_easy_setopt(u->slot->easy, CURLOPT_READDATA, u) != CURLE_OK ||
        curl_easy_setopt(u->slot->easy, CURLOPT_FTP_CREATE_MISSING_DIRS,
                         (long)CURLFTP_CREATE_DIR_RETRY) != CURLE_OK ||
        curl_easy_setopt(u->slot->easy, CURLOPT_FTP_FILEMETHOD,
                         (long)CURLFTPMETHOD_MULTICWD) != CURLE_OK) {
        rc = ftp_api->error_set(err, KILN_EINTERNAL,
                                "libcurl refused an upload option");
        goto fail;
    }
    rc = ftp_slot_start(u->slot, err);
    if (rc != KILN_OK) {
        goto fail;
    }
    /* Until the server accepted the STOR: a refused login, a directory
     * that cannot be made or a refused upload fail here, named. */
    if (ftp_slot_run(u->slot, ftp_upload_is_started, u)) {
        rc = ftp_fail(st, u->slot, FTP_OP_WRITE, path, err);
        if (rc == KILN_OK) {
            char q[FTP_QUOTE_MAX];

            rc = ftp_api->error_set(err, KILN_EIO,
                                    "cannot write %s to %s: the upload "
                                    "ended before it started",
                                    ftp_quote(q, path), st->display);
        }
        goto fail;
    }

    t = vips_target_custom_new();
    if (t == NULL) {
        rc = ftp_api->error_set_vips(err, "cannot make a target");
        goto fail;
    }
    g_signal_connect(t, "write", G_CALLBACK(ftp_upload_write), u);
    g_signal_connect(t, "read", G_CALLBACK(ftp_upload_read), u);
    g_signal_connect(t, "seek", G_CALLBACK(ftp_upload_seek), u);
    g_signal_connect(t, "end", G_CALLBACK(ftp_upload_end), u);
    g_atomic_int_inc(&u->refs);
    ftp_live_attach(&u->live, G_OBJECT(t), u, ftp_upload_unref);
    free(url);
    *target = VIPS_TARGET(t);
    *handle = u;
    return KILN_OK;

fail:
    free(url);
    ftp_upload_unref(u);
    return rc;
}

/* Runs `cmds` in the destination's directory on a pooled connection;
 * returns the slot (the caller gives it back) with the outcome. */
static int
ftp_upload_quote(ftp_upload *u, const char *url, const char *const *cmds,
                 size_t n, ftp_slot **out, kiln_error *err)
{
    ftp_slot *s;
    int rc;

    *out = NULL;
    rc = ftp_slot_take(u->st, &s, err);
    if (rc != KILN_OK) {
        return rc;
    }
    rc = ftp_slot_prepare(u->st, s, url, err);
    if (rc == KILN_OK) {
        rc = ftp_slot_postquote(s, cmds, n, err);
    }
    /* No transfer: log in, CWD into the directory (or SIZE the file),
     * then the commands. */
    if (rc == KILN_OK &&
        curl_easy_setopt(s->easy, CURLOPT_NOBODY, 1L) != CURLE_OK) {
        rc = ftp_api->error_set(err, KILN_EINTERNAL,
                                "libcurl refused CURLOPT_NOBODY");
    }
    if (rc != KILN_OK) {
        ftp_slot_give(u->st, s);
        return rc;
    }
    ftp_slot_perform(s);
    *out = s;
    return KILN_OK;
}

/* Deletes the temporary file; failures are only logged in the slot. */
static void
ftp_upload_delete_temp(ftp_upload *u)
{
    char cmd[FTP_NAME_MAX + 8];
    const char *cmds[1] = {cmd};
    kiln_error err;
    ftp_slot *s = NULL;

    snprintf(cmd, sizeof cmd, "DELE %s", u->temp);
    if (ftp_upload_quote(u, u->dir_url, cmds, 1, &s, &err) == KILN_OK) {
        ftp_slot_give(u->st, s);
    }
}

/* Always consumes the handle. On failure the temporary file is deleted
 * and the destination is as it was, except in the fallback below. */
int
ftp_commit(void *state, void *handle, kiln_error *err)
{
    ftp_upload *u = handle;
    char rnfr[FTP_NAME_MAX + 8];
    char *rnto = NULL;
    char *dele = NULL;
    char *file_url = NULL;
    ftp_slot *s = NULL;
    int rc;

    (void)state;
    if (!u->is_stored) {
        rc = ftp_api->error_set(err, KILN_EIO, "%s",
                                u->failure[0] != '\0'
                                    ? u->failure
                                    : "commit before the upload ended");
        goto fail;
    }
    snprintf(rnfr, sizeof rnfr, "RNFR %s", u->temp);
    if (asprintf(&rnto, "RNTO %s", u->name) < 0) {
        rnto = NULL;
        rc = ftp_api->error_set(err, KILN_ENOMEM, "out of memory");
        goto fail;
    }
    {
        const char *cmds[2] = {rnfr, rnto};

        rc = ftp_upload_quote(u, u->dir_url, cmds, 2, &s, err);
    }
    if (rc != KILN_OK) {
        goto fail;
    }
    if (s->result == CURLE_QUOTE_ERROR && s->saw_350) {
        /* RNFR was accepted, RNTO refused. Most servers (pyftpdlib,
         * vsftpd, ProFTPD) replace an existing file on RNTO; some (IIS,
         * a few embedded ones) refuse. Only when the destination exists:
         * delete it, then rename. Between DELE and RNTO the destination
         * is briefly absent; a reader then sees no file, never a part. */
        ftp_slot *probe = NULL;
        bool exists;

        file_url = ftp_url_join(u->dir_url, u->name);
        if (file_url == NULL) {
            rc = ftp_api->error_set(err, KILN_ENOMEM, "out of memory");
            goto fail;
        }
        rc = ftp_upload_quote(u, file_url, NULL, 0, &probe, err);
        if (rc != KILN_OK) {
            goto fail;
        }
        exists = probe->result == CURLE_OK;
        ftp_slot_give(u->st, probe);
        if (exists) {
            const char *cmds[3] = {NULL, rnfr, rnto};

            if (asprintf(&dele, "DELE %s", u->name) < 0) {
                dele = NULL;
                rc = ftp_api->error_set(err, KILN_ENOMEM, "out of memory");
                goto fail;
            }
            cmds[0] = dele;
            ftp_slot_give(u->st, s);
            s = NULL;
            rc = ftp_upload_quote(u, u->dir_url, cmds, 3, &s, err);
            if (rc != KILN_OK) {
                goto fail;
            }
        }
    }
    if (s->result != CURLE_OK) {
        rc = ftp_fail(u->st, s, FTP_OP_RENAME, u->path, err);
        goto fail;
    }
    ftp_slot_give(u->st, s);
    free(file_url);
    free(dele);
    free(rnto);
    ftp_upload_unref(u);
    return KILN_OK;

fail:
    if (s != NULL) {
        ftp_slot_give(u->st, s);
    }
    free(file_url);
    free(dele);
    free(rnto);
    ftp_upload_delete_temp(u);
    ftp_upload_unref(u);
    return rc;
}

void
ftp_abort(void *state, void *handle)
{
    ftp_upload *u = handle;

    (void)state;
    if (u == NULL) {
        return;
    }
    /* A STOR still running is ended first (curl closes its connection),
     * so the server has let go of the file before it is deleted. */
    if (u->slot != NULL) {
        ftp_slot_give(u->st, u->slot);
        u->slot = NULL;
    }
    ftp_upload_delete_temp(u);
    ftp_upload_unref(u);
}
