/*
 * Internals of the "s3" storage backend, shared by its files: s3.c (the
 * plugin, settings, keys and error messages), http.c (pooled libcurl
 * transfers, signing, retries), read.c (a VipsSource streaming an object)
 * and write.c (a VipsTarget that uploads at commit, multipart when large).
 * Nothing here leaves the .so.
 */
#ifndef KILN_STORAGE_PLUGINS_S3_S3_H
#define KILN_STORAGE_PLUGINS_S3_S3_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <curl/curl.h>

#include "kiln/plugin.h"
#include "sigv4.h"

/* S3 limits: keys up to 1024 bytes; parts of 5 MiB (but the last) to
 * 5 GiB, at most 10000 of them. */
#define S3_KEY_MAX 1024
#define S3_MIB (1024 * 1024)
#define S3_PART_MIN_MIB 5
#define S3_PART_MAX_MIB 5120
#define S3_PARTS_MAX 10000

/* Room for the texts an outcome keeps from a response. */
#define S3_CODE_MAX 64
#define S3_TEXT_MAX 256
#define S3_ETAG_MAX 128
#define S3_REGION_MAX 64
/* The largest response body kept (error documents, upload results). */
#define S3_BODY_MAX (64 * 1024)

/* The settings as the host parses them (the spec table is in s3.c). */
typedef struct s3_settings {
    const char *bucket;
    const char *region;
    const char *endpoint;
    bool path_style;
    const char *access_key_id;
    const char *secret_access_key;
    const char *session_token;
    const char *prefix;
    double part_size;
    double retries;
    double connect_timeout;
    double stall_timeout;
    const char *proxy;
    const char *ca_file;
} s3_settings;

/* One pooled transfer slot. Every transfer runs through the slot's own
 * multi handle, which owns the connection cache: a slot taken again for
 * the next request finds its keep-alive connection there. */
typedef struct s3_conn {
    CURL *easy;
    CURLM *multi;
    struct s3_conn *next;
    /* The body of the request in flight, read by libcurl from memory. */
    const unsigned char *up;
    size_t up_len;
    size_t up_off;
} s3_conn;

/* One configured service's bucket. Immutable after open() but for the
 * pool and the share locks; reference-counted because a VipsSource may
 * outlive close() in libvips' caches. */
typedef struct s3_state {
    int refs; /* atomic */
    char *bucket;
    char *region;
    char *access_key_id;
    char *secret_access_key;
    char *session_token; /* NULL: none */
    char *prefix;        /* "" or ending in "/" */
    char *proxy;         /* "" disables proxies from the environment */
    char *ca_file;       /* NULL: the system's */
    char *endpoint;      /* "scheme://host[:port]", for messages */
    char *base_url;      /* scheme://host[:port] the bucket is reached at */
    char *host;          /* the Host header, signed */
    char *path_base;     /* "/bucket" for path style, "" otherwise */
    size_t part_size;    /* bytes */
    int retries;
    long connect_timeout_ms;
    long stall_timeout_s;

    pthread_mutex_t pool_lock;
    s3_conn *idle;
    int n_idle;

    /* DNS and TLS sessions are shared between slots (connections are not:
     * libcurl does not support sharing them across threads). */
    CURLSH *share;
    pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
} s3_state;

/* What one request is. `key` is the object key, unencoded; `query` is
 * already encoded ("uploadId=...&partNumber=2"). */
typedef struct s3_req {
    const char *method;
    const char *key;
    const char *query;
    const unsigned char *body;
    size_t body_len;
    const char *content_type;
    const char *range;    /* "bytes=N-", or NULL */
    const char *if_match; /* an ETag, or NULL */
} s3_req;

/* What became of a request, for the caller and for messages. */
typedef struct s3_outcome {
    CURLcode curl;
    char curl_text[CURL_ERROR_SIZE];
    long status;
    char code[S3_CODE_MAX];
    char message[S3_TEXT_MAX];
    char region[S3_REGION_MAX]; /* x-amz-bucket-region, if sent */
    char etag[S3_ETAG_MAX];
    int attempts;
    long retry_after_s;
    curl_off_t content_length;
    curl_off_t range_start; /* from Content-Range, or -1 */
    curl_off_t range_total; /* from Content-Range, or -1 */
    s3_buf body;            /* at most S3_BODY_MAX bytes */
} s3_outcome;

/* The host table and our plugin handle, set once in init(). */
extern const kiln_host_api *s3_api;
extern kiln_plugin *s3_self;

/* ------------------------------------------------------------ s3.c */

/* Takes and drops a reference; the last drop frees the pool, the share
 * and the secrets (wiped). */
void s3_state_ref(s3_state *st);
void s3_state_unref(s3_state *st);

/* Maps a job's path to an object key (prefix + path without leading
 * slashes, "." and empty components dropped, ".." resolved lexically).
 * Returns a malloc'd key, or NULL with err set: KILN_EINVAL for an empty
 * path, one ending in "/", control bytes or a key above 1024 bytes;
 * KILN_EPERM for ".." climbing above the prefix. */
char *s3_key_for(const s3_state *st, const char *path, kiln_error *err);

/* Writes `s` quoted, with control bytes escaped and a long text cut, into
 * out (size bytes). Returns out. */
const char *s3_quote(char *out, size_t size, const char *s);

/* Turns a failed outcome into err: KILN_ENOTFOUND (no such key),
 * KILN_EPERM (403), KILN_EINVAL (no such bucket, wrong region),
 * KILN_EIO (transport, 5xx, anything else). `verb` is "read" or "write";
 * the message names the backend, bucket, key and endpoint. Returns the
 * code. */
int s3_fail(const s3_state *st, kiln_error *err, const char *verb,
            const char *key, const s3_outcome *o);

/* Sets err to an out-of-memory error naming the key. Returns KILN_ENOMEM. */
int s3_fail_nomem(kiln_error *err, const char *key);

/* The position a seek leads to from `pos` in an object of `size` bytes
 * (lseek's rules), or -1 for a bad whence or a negative result. */
gint64 s3_seek_position(gint64 pos, gint64 size, gint64 offset, int whence);

/* The text inside the first <tag>...</tag> of an XML document, entities
 * decoded, into out. Returns false when there is none. */
bool s3_xml_text(const char *xml, size_t len, const char *tag, char *out,
                 size_t size);

/* ---------------------------------------------------------- http.c */

/* Takes an idle slot or makes one; NULL when out of memory. */
s3_conn *s3_conn_get(s3_state *st);
/* Gives a slot back once its transfer is finished or removed (NULL is
 * ignored); a full pool frees it instead. */
void s3_conn_put(s3_state *st, s3_conn *c);
/* Frees a slot and closes its connections. */
void s3_conn_free(s3_conn *c);

/* Prepares c->easy for `req`: URL, signed headers, timeouts, protocol
 * and proxy limits, and the outcome's header/body capture (for a GET,
 * `sink` receives the body instead). *headers must be freed with
 * curl_slist_free_all once the transfer is over. Returns 0 or -1 when out
 * of memory. */
typedef size_t (*s3_sink_fn)(char *data, size_t size, size_t n, void *user);
int s3_conn_prepare(s3_state *st, s3_conn *c, const s3_req *req, s3_outcome *o,
                    s3_sink_fn sink, void *sink_user,
                    struct curl_slist **headers);

/* Runs `req` to completion on a pooled slot, retrying transport failures,
 * 5xx, 429 and throttling answers with backoff; fills *o (free it with
 * s3_outcome_free). Returns true when the answer was a 2xx without an
 * error document. */
bool s3_request(s3_state *st, const s3_req *req, s3_outcome *o);

/* Frees an outcome's body buffer. An outcome starts zeroed. */
void s3_outcome_free(s3_outcome *o);

/* After a transfer ended: records the CURLcode and status, parses an
 * error document. */
void s3_outcome_finish(s3_outcome *o, CURL *easy, CURLcode rc);

/* Whether another attempt may succeed where this one failed. */
bool s3_outcome_retryable(const s3_outcome *o);

/* Logs (at WARN, no secrets) that a request is being retried; `from` is
 * the first byte asked for, 0 for a whole object. */
void s3_log_retry(const s3_state *st, const char *method, const char *key,
                  long long from, const s3_outcome *o, int attempt);

/* Sleeps before attempt `attempt` (1 = first retry): exponential with
 * jitter, or the server's Retry-After when it sent one (capped). */
void s3_backoff(int attempt, const s3_outcome *o);

/* ---------------------------------------------------------- read.c */

/* The storage callbacks (kiln_storage in plugin.h). open_read() answers
 * for the object with its first GET (KILN_ENOTFOUND, KILN_EPERM, ...) and
 * hands out a seekable source streaming it; *out is one new reference. */
int s3_open_read(void *state, const char *path, VipsSource **out,
                 kiln_error *err);

/* --------------------------------------------------------- write.c */

/* open_write() makes a target that keeps the output in memory (uploading
 * full parts of a large one as it goes); commit() publishes it with one PUT
 * or CompleteMultipartUpload and always consumes the handle; abort()
 * discards it and aborts a started multipart upload. */
int s3_open_write(void *state, const char *path, VipsTarget **target,
                  void **handle, kiln_error *err);
int s3_commit(void *state, void *handle, kiln_error *err);
void s3_abort(void *state, void *handle);

#endif /* KILN_STORAGE_PLUGINS_S3_S3_H */
