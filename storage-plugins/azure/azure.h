/*
 * The "azure" storage backend's internal interface. azure.c holds the
 * plugin, the settings and the storage callbacks; request.c the pool of
 * libcurl handles, signed requests, retries and error messages; read.c the
 * VipsSource that streams a blob (Get Blob); write.c the VipsTarget that
 * uploads a block blob (Put Blob, or Put Block and Put Block List).
 */
#ifndef KILN_STORAGE_PLUGINS_AZURE_AZURE_H
#define KILN_STORAGE_PLUGINS_AZURE_AZURE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#include "kiln/plugin.h"
#include "sharedkey.h"

/* The REST API version every request asks for. */
#define AZURE_API_VERSION "2021-08-06"
/* The waits between attempts double from AZURE_BACKOFF_MS up to
 * AZURE_BACKOFF_MAX_MS, plus up to half the first wait of jitter. */
#define AZURE_BACKOFF_MS 200
#define AZURE_BACKOFF_MAX_MS 5000
/* The service's limits: blocks per blob and bytes of a blob name. */
#define AZURE_MAX_BLOCKS 50000
#define AZURE_MAX_NAME 1024
/* Idle handle pairs kept for reuse; more are closed when given back. */
#define AZURE_POOL_MAX 16
/* Room for a quoted value in a message. */
#define AZURE_QUOTE_MAX 160

/* The settings as the host parses them (azure.c's spec table). */
typedef struct azure_settings {
    const char *account;
    const char *key;
    const char *container;
    const char *endpoint;
    double block_size;
    double single_put_max;
    double retries;
    double connect_timeout;
    double stall_timeout;
    const char *proxy;
    const char *ca_file;
} azure_settings;

typedef struct azure_conn azure_conn;
typedef struct azure_reader azure_reader;

/* One configured service's storage. Read-only after open() except the
 * pool, which its mutex guards, so worker threads share it freely. */
typedef struct azure_state {
    char *account;
    char *container;
    char *endpoint;        /* scheme://host[:port][/prefix], no final "/" */
    char *path_prefix;     /* the endpoint's path ("/devstoreaccount1") or "" */
    const char *protocols; /* "http" or "https": the endpoint's scheme */
    unsigned char key[AZURE_SK_KEY_MAX];
    size_t key_len;
    size_t block_size;
    size_t single_put_max; /* at least block_size */
    int attempts;          /* retries + 1 */
    long connect_timeout_ms;
    double stall_timeout; /* seconds without a byte moving */
    char *proxy;          /* "" for none */
    char *ca_file;        /* NULL for the system's */
    pthread_mutex_t pool_lock;
    azure_conn *idle;
    size_t n_idle;
    pthread_mutex_t readers_lock;
    azure_reader *readers; /* live sources (read.c) */
} azure_state;

/* One call of the REST API. `blob` is the blob's name as stored
 * (unencoded); optional fields are NULL when not sent. */
typedef struct azure_request {
    const char *method;
    const char *blob;
    const char *comp;     /* "block" or "blocklist" */
    const char *block_id; /* base64, with comp "block" */
    const char *content_type;
    const char *blob_type;         /* x-ms-blob-type */
    const char *blob_content_type; /* x-ms-blob-content-type */
    const char *range;             /* x-ms-range */
    const char *if_match;
    const unsigned char *body;
    size_t body_len;
} azure_request;

/* What came back. `code` is x-ms-error-code (or the body's <Code>),
 * `message` the first line of the body's <Message>. */
typedef struct azure_response {
    long status;
    char code[96];
    char message[256];
    char etag[128];
    int64_t content_length; /* -1 when not sent */
    int64_t total_length;   /* from Content-Range; -1 when not sent */
    CURLcode curl_rc;
    char curl_error[CURL_ERROR_SIZE];
    int attempts;
} azure_response;

/* The per-transfer data the libcurl callbacks write into. */
typedef struct azure_xfer {
    azure_response *resp;
    const unsigned char *body; /* upload */
    size_t body_len, body_pos;
    char errbody[4096]; /* the body of an error answer, cut */
    size_t errbody_len;
    bool headers_done;    /* the final status line and its headers are in */
    double last_progress; /* seconds, monotonic */
} azure_xfer;

extern const kiln_host_api *azure_api;
extern kiln_plugin *azure_self;

/* azure.c */

/* Quotes `s` for a message: in double quotes, control characters
 * escaped, cut with "..." when long. Returns `out`. */
const char *azure_quote(char out[AZURE_QUOTE_MAX], const char *s);

/* The blob name of a request path, resolved as the local backend
 * resolves paths ("a//b" and "a/./b" are "a/b", ".." steps back), in a
 * new string *name (the caller frees it). KILN_EPERM for ".." above the
 * top of the container; KILN_EINVAL for an empty name, a final "/",
 * control characters or a name longer than the service allows. */
int azure_blob_name(const char *path, char **name, kiln_error *err);

/* request.c */

/* Takes an idle handle pair from the pool or makes one; NULL (with err
 * set, KILN_ENOMEM) when libcurl cannot. Give it back with
 * azure_conn_give, which keeps its connections for the next caller. */
azure_conn *azure_conn_take(azure_state *st, kiln_error *err);
void azure_conn_give(azure_state *st, azure_conn *c);
CURL *azure_conn_easy(azure_conn *c);

/* Closes every idle handle pair (at close, when no call is running). */
void azure_pool_clear(azure_state *st);

/* Sets up one attempt of `req` on the handle: URL, signed headers (into
 * *headers, which the caller frees with curl_slist_free_all after the
 * transfer), timeouts, upload body and callbacks into `x` (whose resp
 * must be set); resets x's per-attempt fields. Does not start it. */
int azure_prepare(azure_state *st, azure_conn *c, const azure_request *req,
                  azure_xfer *x, struct curl_slist **headers, kiln_error *err);

/* Starts the prepared transfer; then azure_step drives it, waiting up to
 * timeout_ms for the network, and sets *done and *rc when it has ended.
 * azure_stop detaches it (ended or not) so the handle can be used again. */
int azure_start(azure_conn *c, kiln_error *err);
void azure_step(azure_conn *c, int timeout_ms, bool *done, CURLcode *rc);
void azure_stop(azure_conn *c);

/* Fills the response's code and message from an error body. */
void azure_parse_error(azure_xfer *x);

/* Whether an attempt that ended so is worth repeating: a transport
 * failure or a 5xx answer (503 ServerBusy among them). */
bool azure_retryable(CURLcode rc, long status);

/* Before attempt `attempt` (1-based) of `method` on `blob`: nothing for
 * the first; else logs why the last one failed and sleeps the backoff. */
void azure_retry_wait(azure_state *st, int attempt, const char *method,
                      const char *blob, const azure_response *last);

/* Seconds on the monotonic clock. */
double azure_now(void);

/* Runs `req` to its end with up to st->attempts attempts and fills
 * `resp`. KILN_OK when an answer came (whatever its status; see
 * azure_fail), KILN_EIO when the service could not be reached, with a
 * message saying `what` failed ("cannot read", "cannot write"). */
int azure_run(azure_state *st, const azure_request *req, azure_response *resp,
              const char *what, kiln_error *err);

/* Turns an unexpected answer into an error naming the account, container
 * and blob: 404 KILN_ENOTFOUND, 403 KILN_EPERM (a refused account key
 * said so), anything else KILN_EIO. `what` starts the message as above. */
int azure_fail(azure_state *st, const azure_response *resp, const char *blob,
               const char *what, kiln_error *err);

/* Same for a transport failure (KILN_EIO). */
int azure_fail_transport(azure_state *st, const azure_response *resp,
                         const char *blob, const char *what, kiln_error *err);

/* read.c */

/* A VipsSource streaming blob `name`: the first Get Blob is made here, so
 * a missing blob or a refused key is reported now; later reads continue
 * the same answer, and a seek elsewhere asks for a range. */
int azure_source_new(azure_state *st, const char *name, VipsSource **out,
                     kiln_error *err);

/* Detaches and frees the readers of sources still alive (at close). */
void azure_readers_close(azure_state *st);

/* write.c */

/* A VipsTarget uploading blob `name` and its handle for azure_commit or
 * azure_abort. Nothing is visible in the container before the commit. */
int azure_target_new(azure_state *st, const char *name, VipsTarget **target,
                     void **handle, kiln_error *err);
int azure_commit(void *state, void *handle, kiln_error *err);
void azure_abort(void *state, void *handle);

#endif /* KILN_STORAGE_PLUGINS_AZURE_AZURE_H */
