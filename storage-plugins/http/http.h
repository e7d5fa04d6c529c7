/*
 * Internal header of the "http" storage backend: read-only remote sources
 * fetched over HTTP(S). http.c registers the backend and follows
 * redirects; fetch.c runs one GET and streams its body into a VipsSource;
 * url.c holds the URL helpers (allow prefixes, redirect targets, URLs
 * shown in messages without their credentials).
 */
#ifndef KILN_STORAGE_HTTP_HTTP_H
#define KILN_STORAGE_HTTP_HTTP_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include <curl/curl.h>

#include "kiln/plugin.h"

/* Idle connection holders kept for reuse (see fetch.c). */
#define HTTP_POOL_MAX 8
/* Longest URL accepted, redirects included. */
#define HTTP_URL_MAX 8192
/* Room for a URL as messages show it (quoted, maybe cut). */
#define HTTP_SHOWN_MAX 300
/* Room for what a message names: a URL, or the URL a redirect reached
 * "(redirected from" the one requested ")". */
#define HTTP_SUBJECT_MAX (2 * HTTP_SHOWN_MAX + 32)

/* One entry of the "allow" setting, as libcurl's URL parser reads it. */
typedef struct http_prefix {
    char *scheme; /* "http" or "https" */
    char *host;   /* compared without regard to case */
    long port;    /* explicit or the scheme's default */
    char *path;   /* "/" at least */
} http_prefix;

/* A libcurl multi handle with its one easy handle. The connections a
 * transfer opened stay in the multi handle's cache, so a holder taken from
 * the pool reuses them. */
typedef struct http_conn {
    CURLM *multi;
    CURL *easy;
    bool is_added; /* easy is in multi */
} http_conn;

/* One instance of the backend (the engine's instance for URL sources, or
 * a service that names "http" as its storage). Shared by every worker
 * thread; sources still being read hold a reference, so close() only
 * drops the instance's own. */
typedef struct http_state {
    kiln_plugin *self; /* for the host's network guard (net_check_url) */
    http_prefix *prefixes;
    size_t n_prefixes;
    char *allow_text; /* the setting as written, for messages */
    long timeout_ms;  /* whole fetch, redirects included */
    double timeout_s; /* the setting, for messages */
    long long max_size;
    int max_redirects;
    atomic_int refs;
    pthread_mutex_t lock; /* guards idle[] */
    http_conn *idle[HTTP_POOL_MAX];
    size_t n_idle;
} http_state;

/* The host's table, set by init(). */
extern const kiln_host_api *http_api;

/* ------------------------------------------------------------- url.c */

/* Writes `url` quoted for a message, without userinfo, query or fragment
 * (they may hold credentials), cut to fit; returns out. */
const char *http_shown(char out[HTTP_SHOWN_MAX], const char *url);

/* Parses the "allow" setting: prefixes separated by spaces or commas.
 * Fills st->prefixes; KILN_EINVAL names the bad entry. */
int http_prefixes_parse(http_state *st, const char *text, kiln_error *err);

/* Frees what http_prefixes_parse made. */
void http_prefixes_free(http_state *st);

/* True when no prefix is configured or `url` lies under one of them:
 * same scheme, host and port, and a path that starts with the prefix's
 * path at a segment boundary. Compared after libcurl normalised both, so
 * "https://cdn.example.com@evil.test/" or "/img/../secret" do not slip
 * through a textual prefix. */
bool http_prefix_allows(const http_state *st, const char *url);

/* Resolves a Location header against the URL that answered it, with
 * libcurl's URL API. *out is malloc'd and drops the fragment. Returns
 * KILN_OK, KILN_EINVAL (not a URL) or KILN_ENOMEM. */
int http_resolve_location(const char *base, const char *location, char **out);

/* ----------------------------------------------------------- fetch.c */

typedef struct http_fetch http_fetch;

/* Starts a fetch of `url` (already allowed and checked by the network
 * guard into *t): takes a holder from the pool, sends the GET and waits
 * for the status line and headers of a 2xx answer, or for the whole of
 * any other (its body, at most 64 KiB, is dropped). The deadline is absolute,
 * in ms of CLOCK_MONOTONIC. On KILN_OK *out is the fetch; the caller reads
 * http_fetch_status(), then either streams the body
 * (http_fetch_source_take) or drops it (http_fetch_free). Transport
 * failures are reported naming `subject` (the shown URL, see
 * HTTP_SUBJECT_MAX). */
int http_fetch_start(http_state *st, const char *url, const kiln_net_target *t,
                     long long deadline_ms, const char *subject,
                     http_fetch **out, kiln_error *err);

/* The HTTP status of the answer, and its Content-Length (-1 if none). */
long http_fetch_status(const http_fetch *f);
long long http_fetch_length(const http_fetch *f);

/* The Location header of the answer, or NULL; valid until the fetch is
 * freed. */
const char *http_fetch_location(http_fetch *f);

/* Frees a fetch; an unfinished transfer is cut and its connection closed. */
void http_fetch_free(http_fetch *f);

/* Turns a 2xx fetch into a VipsSource that streams the body (no copy on
 * disk), and takes ownership of the fetch in every case. Waits for the
 * first bytes, so that an empty body, a timeout or a size overrun before
 * them is reported here, with its code, rather than as an undecodable
 * image. On KILN_OK *out is one new reference. */
int http_fetch_source_take(http_fetch *f, VipsSource **out, kiln_error *err);

/* Called by fini(): detaches this plugin from every source still alive
 * (libvips' operation cache may hold some past the unloading) and frees
 * their fetches. */
void http_fetch_detach_all(void);

/* Frees the pooled holders (at the instance's last reference). */
void http_pool_free(http_state *st);

/* Monotonic clock in ms. */
long long http_now_ms(void);

/* Drops one reference to the instance, freeing it at the last. */
void http_state_unref(http_state *st);

#endif /* KILN_STORAGE_HTTP_HTTP_H */
