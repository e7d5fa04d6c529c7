/*
 * Internal interface of the "ftp" storage backend (FTP and FTPS through
 * libcurl). ftp.c holds the plugin, its settings and the mapping of paths
 * to URLs and of failures to kiln errors; conn.c the pool of connections
 * and the loop that drives one transfer; read.c the streamed VipsSource;
 * write.c the streamed VipsTarget with its commit (rename) and abort
 * (delete). Nothing here is exported from the .so.
 */
#ifndef KILN_STORAGE_PLUGINS_FTP_FTP_H
#define KILN_STORAGE_PLUGINS_FTP_FTP_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <curl/curl.h>

#include "kiln/plugin.h"

/* Room for a quoted path or server reply in a message. */
#define FTP_QUOTE_MAX 320
/* The first line of the server's last failing reply, as kept. */
#define FTP_REPLY_MAX 200

/* How TLS is used; the index of the tls_mode setting. */
typedef enum ftp_tls_mode {
    FTP_TLS_AUTO = 0, /* ftps:// on port 990: implicit, else explicit */
    FTP_TLS_EXPLICIT, /* AUTH TLS on a plain connection (RFC 4217) */
    FTP_TLS_IMPLICIT  /* TLS from the first byte */
} ftp_tls_mode;

/* The settings as the host parsed them (config.md, docs/storage-ftp.md). */
typedef struct ftp_settings {
    const char *url;
    const char *username;
    const char *password;
    int tls_mode;
    bool tls_verify;
    const char *ca_file;
    double timeout;
} ftp_settings;

/* One easy handle with its own multi handle. The multi's connection
 * cache keeps the control connection between transfers, so taking a slot
 * from the pool reuses a logged-in connection. A slot is used by one
 * thread at a time. */
typedef struct ftp_slot {
    struct ftp_slot *next;
    CURLM *multi;
    CURL *easy;
    bool is_added; /* the easy handle is in the multi */
    bool is_done;  /* the transfer finished; see result */
    CURLcode result;
    /* Filled while a transfer runs: curl's error text, the first lines
     * of the server's last two different replies with a 4xx/5xx code,
     * and whether a 350 (RNFR accepted) came. */
    char errbuf[CURL_ERROR_SIZE];
    char reply[FTP_REPLY_MAX];
    char prev_reply[FTP_REPLY_MAX]; /* the one before, if different */
    int reply_code;
    bool in_multiline;
    bool saw_350;
    bool has_reply;           /* any reply at all: the server greeted */
    struct curl_slist *quote; /* owned; freed when the slot is prepared */
    int64_t stall_us;         /* ftp_slot_run gives up after this without I/O */
} ftp_slot;

/* One configured service's storage. Reference counted: close() drops
 * the service's reference, and every open source or upload holds one,
 * because libvips may keep a source after the service is closed. */
typedef struct ftp_state {
    gint refs;
    char *base;    /* "ftp://host:port/base/" as curl gets it, ends in / */
    char *display; /* the url setting as written, for messages */
    char *username;
    char *password;
    char *ca_file;
    bool use_tls; /* explicit: AUTH TLS on an ftp:// connection */
    bool tls_verify;
    long timeout;         /* seconds */
    pthread_mutex_t lock; /* guards idle and n_idle */
    ftp_slot *idle;
    int n_idle;
} ftp_state;

/* A source or target whose signal handlers point into this plugin.
 * libvips' operation cache may keep a source long after the engine let
 * go of its image, until vips_shutdown(), which runs after the plugin is
 * unloaded; fini() therefore detaches every one still alive. */
typedef struct ftp_live {
    struct ftp_live *prev, *next;
    GObject *obj; /* not a reference: the object owns `owner` */
    void *owner;  /* the signal handlers' data */
    void (*free_owner)(void *owner);
} ftp_live;

/* What an operation was doing, for messages. */
typedef enum ftp_op { FTP_OP_READ = 0, FTP_OP_WRITE, FTP_OP_RENAME } ftp_op;

/* The host table, set once by init before any callback runs. */
extern const kiln_host_api *ftp_api;

/* ftp.c */

/* Drops a reference to the state; the last one frees it. */
void ftp_state_unref(ftp_state *st);

/* Writes `s` double-quoted into out, escaping quotes, backslashes and
 * control bytes and cutting a long one with "...". Returns out. */
const char *ftp_quote(char out[FTP_QUOTE_MAX], const char *s);

/* Splits a job's path into URL-escaped directory segments and its last
 * segment. Empty and "." segments are dropped; "..", control bytes and
 * backslashes are refused (KILN_EPERM / KILN_EINVAL) with the path
 * quoted. On success *dir_url is base + escaped directories + "/" and
 * *name the raw file name, both malloc'd for the caller. */
int ftp_path_split(const ftp_state *st, const char *path, char **dir_url,
                   char **name, kiln_error *err);

/* Makes room for `need` bytes in *p (capacity *cap), doubling from
 * 16 KiB but never past `limit` (0: no limit; need <= limit). False when
 * out of memory, *p unchanged. */
bool ftp_grow(unsigned char **p, size_t *cap, size_t need, size_t limit);

/* Where a seek of `offset` from SEEK_SET, SEEK_CUR (at pos) or SEEK_END
 * (of size bytes; unknown when negative) leads; -1 when nowhere. */
int64_t ftp_seek_to(int64_t pos, int64_t size, int64_t offset, int whence);

/* dir_url + the URL-escaped `name`, malloc'd; NULL when out of memory. */
char *ftp_url_join(const char *dir_url, const char *name);

/* Sets err for a transfer of slot `s` that ended with s->result: login
 * refusals are KILN_EPERM, missing files (550 on a read) KILN_ENOTFOUND,
 * permission refusals KILN_EPERM, everything else KILN_EIO. The message
 * names the path, the server and the server's reply, never the password.
 * Returns the code. */
int ftp_fail(const ftp_state *st, const ftp_slot *s, ftp_op op,
             const char *path, kiln_error *err);

/* conn.c */

/* Takes an idle slot from the pool or makes a new one. */
int ftp_slot_take(ftp_state *st, ftp_slot **out, kiln_error *err);

/* Detaches the slot's transfer if one is still running (which ends it
 * early) and returns the slot to the pool, or frees it when the pool
 * already holds enough idle slots. */
void ftp_slot_give(ftp_state *st, ftp_slot *s);

/* Frees a slot and its connection. */
void ftp_slot_free(ftp_slot *s);

/* Resets the slot's easy handle for a new transfer of `url` with the
 * options every request shares (credentials, TLS, timeouts, passive
 * binary mode, no proxy, protocols). The caller adds its own options. */
int ftp_slot_prepare(const ftp_state *st, ftp_slot *s, const char *url,
                     kiln_error *err);

/* Sets a list of commands sent after the transfer (CURLOPT_POSTQUOTE),
 * each run in the URL's directory. */
int ftp_slot_postquote(ftp_slot *s, const char *const *cmds, size_t n,
                       kiln_error *err);

/* Adds the prepared transfer to the slot's multi handle. */
int ftp_slot_start(ftp_slot *s, kiln_error *err);

/* Drives the transfer until it is done or ready(arg) returns true (NULL:
 * until done). Returns true when the transfer is done. */
bool ftp_slot_run(ftp_slot *s, bool (*ready)(void *), void *arg);

/* Starts the prepared transfer and runs it to the end; returns its
 * result (also in s->result). The transfer is detached afterwards. */
CURLcode ftp_slot_perform(ftp_slot *s);

/* Removes the transfer from the multi handle (ends it if running). */
void ftp_slot_stop(ftp_slot *s);

/* Makes `obj` own `owner`: free_owner(owner) runs when obj is finalized,
 * or at ftp_live_detach_all(), which first disconnects obj's handlers
 * that carry `owner` as data. `l` lives inside owner. */
void ftp_live_attach(ftp_live *l, GObject *obj, void *owner,
                     void (*free_owner)(void *owner));

/* Detaches every live object (plugin unload): afterwards none points
 * into this plugin's code. */
void ftp_live_detach_all(void);

/* read.c: the storage's open_read. */
int ftp_open_read(void *state, const char *path, VipsSource **out,
                  kiln_error *err);

/* write.c: the storage's open_write, commit and abort. */
int ftp_open_write(void *state, const char *path, VipsTarget **target,
                   void **handle, kiln_error *err);
int ftp_commit(void *state, void *handle, kiln_error *err);
void ftp_abort(void *state, void *handle);

#endif /* KILN_STORAGE_PLUGINS_FTP_FTP_H */
