/*
 * Internal header of the "api-http" service plugin, the HTTP transport of
 * the API (docs/api.md). plugin.c registers the service; server.c owns the
 * libmicrohttpd daemon and its listen address; request.c turns one HTTP
 * request into a kiln_call and the engine's kiln_reply into a response;
 * guard.c caps connections and closes those that are too slow to send a
 * request; dashboard.c serves the operator dashboard's static files and
 * openapi.c GET /openapi.json; metrics.c the metrics listener.
 * Everything here is hidden in the .so.
 */
#ifndef KILN_PLUGINS_API_HTTP_HTTP_H
#define KILN_PLUGINS_API_HTTP_HTTP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "kiln/plugin.h"

/* The host table and our plugin handle, set once by init() before any
 * service callback can run. */
extern const kiln_host_api *http_api;
extern kiln_plugin *http_self;

/* Where a connection is in its current request, for its deadline. */
typedef enum http_phase {
    HTTP_PHASE_HEADER, /* until the header is whole: header_timeout */
    HTTP_PHASE_BODY,   /* until the body is whole: body_timeout */
    HTTP_PHASE_ANSWER, /* being answered: no deadline of ours */
    HTTP_PHASE_IDLE    /* between requests: idle_timeout */
} http_phase;

typedef struct http_guard http_guard;
typedef struct http_conn http_conn;

/* What the access handler needs; lives as long as the daemon. */
typedef struct http_server {
    struct MHD_Daemon *daemon;
    kiln_engine *engine;
    http_guard *guard;
    kiln_http_settings settings;
    bool has_peer_call; /* the host has api_call_from (every ABI 2 host) */
    bool has_query;     /* the host reads kiln_call.query (2.2 and later) */
    bool has_dashboard; /* plugins.settings.api-http.dashboard */
    size_t max_body;    /* bytes; a larger body is answered 413 */
    /* Requests being answered: from the engine call (or the 413) until
     * the response is sent; stop() waits a little for them. */
    atomic_uint n_answering;
    char listen[128]; /* the configured address, for messages */
    /* The metrics listener (metrics.c): GET /metrics without a token on
     * the deployment's metrics.listen; NULL when it has none. */
    struct MHD_Daemon *metrics;
} http_server;

/* "A.B.C.D:PORT" or "[IPV6]:PORT", numeric only: binding exactly the
 * configured address must not depend on name resolution. Returns 0 and
 * fills *sa (port included), or -1. */
int http_parse_listen(const char *text, struct sockaddr_storage *sa,
                      bool *is_ipv6, uint16_t *port);
/* Starts the metrics listener when the host has one configured (and can
 * answer it); KILN_OK when there is nothing to start. */
int http_metrics_start(http_server *s, kiln_error *err);
void http_metrics_stop(http_server *s);

/* The service's start() and stop() (kiln_service). start() fills *state
 * with a new http_server listening on the engine's configured address or
 * fails with KILN_EINVAL (bad address), KILN_EIO (cannot listen) or
 * KILN_ENOMEM. stop() stops accepting, closes every connection, waits for
 * the daemon's threads and frees the state. */
/* The service's settings (plugins.settings.api-http). */
typedef struct http_service_settings {
    double threads; /* 0: two per CPU, 8 to 64 */
    bool dashboard; /* serve the dashboard (default); false: 404 */
} http_service_settings;

int http_start(kiln_engine *engine, const void *settings, void **state,
               kiln_error *err);
void http_stop(void *state);

/* The libmicrohttpd access handler; cls is the http_server. Buffers the
 * body up to max_body, then calls the engine and sends its reply. */
enum MHD_Result http_access(void *cls, struct MHD_Connection *conn,
                            const char *url, const char *method,
                            const char *version, const char *upload_data,
                            size_t *upload_data_size, void **con_cls);

/* MHD_OPTION_NOTIFY_COMPLETED (cls is the http_server): frees the
 * request's state and counts it out of n_answering. */
void http_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                    enum MHD_RequestTerminationCode toe);

/* The connection guard (guard.c). http_guard_new() starts its sweeper
 * thread for these settings; KILN_ENOMEM or KILN_EIO (no thread).
 * http_guard_free() stops it and frees the guard, once the daemon has
 * stopped. http_guard_daemon_limit() is the MHD_OPTION_CONNECTION_LIMIT
 * that leaves the guard's caps and reserve room to work. */
int http_guard_new(const kiln_http_settings *set, http_guard **out,
                   kiln_error *err);
void http_guard_free(http_guard *g);
unsigned http_guard_daemon_limit(const kiln_http_settings *set);

/* MHD_OPTION_NOTIFY_CONNECTION (cls is the http_server): admits a new
 * connection to a counted or reserve place, or shuts it at once; forgets
 * a closed one. */
void http_guard_notify(void *cls, struct MHD_Connection *conn,
                       void **socket_context,
                       enum MHD_ConnectionNotificationCode toe);

/* MHD_OPTION_URI_LOG_CALLBACK: a request line has arrived, so on a
 * kept-alive connection a new request's header deadline starts. Returns
 * NULL (request.c makes the request's state). */
void *http_guard_uri(void *cls, const char *uri, struct MHD_Connection *conn);
/* A request's state for `uri` (its query string kept), or NULL when
 * memory is short (the access handler makes one then, without it). */
void *http_request_new(const char *uri);

/* One request's state (request.c). */
typedef struct http_request http_request;

/* Queues one response for request r: its status, Content-Type (NULL:
 * JSON), body (copied), Retry-After (seconds, 0: none) and, for a 405,
 * Allow (the methods, "GET, POST"; NULL: none), with the request's
 * X-Request-Id; a 401 gets WWW-Authenticate. Returns what
 * MHD_queue_response() returns. */
enum MHD_Result http_send(struct MHD_Connection *conn, const http_request *r,
                          int status, const char *content_type,
                          const char *body, size_t len, int retry_after,
                          const char *allow);

/* GET /openapi.json (openapi.c): whether a call asks for the OpenAPI
 * document, and its answer, sent without asking the host. */
bool http_is_openapi(const char *method, const char *url);
enum MHD_Result http_send_openapi(struct MHD_Connection *conn,
                                  const http_request *r);
/* The methods the document lists for the path url matches ("GET",
 * "GET, POST"), for the Allow header of a 405; NULL when it lists no
 * such path. */
const char *http_openapi_allow(const char *url);

/* Moves the connection's current request to `phase`: BODY once its
 * header is in, ANSWER once its body is in or it is answered early, IDLE
 * once it has been answered. */
void http_guard_phase(struct MHD_Connection *conn, http_phase phase);

/* True when the connection holds a reserve place: only GET /health and
 * GET /metrics are answered on it, and each answer closes it. */
bool http_guard_is_reserve(struct MHD_Connection *conn);

/* The operator dashboard (dashboard.c, docs/dashboard.md): static files
 * embedded at build time (plugin.mk, mk/embed.sh), served by the
 * transport itself without a token. */
typedef struct http_asset {
    const char *name; /* the file's base name: "index.html", "app.js" */
    const unsigned char *data;
    size_t len;
} http_asset;

extern const http_asset http_dashboard_assets[];
extern const size_t http_dashboard_assets_n;

/* True when url is the dashboard's: "/dashboard" or under "/dashboard/".
 * Such a request never reaches the host, whether the dashboard is on or
 * turned off (then every one is a 404). */
bool http_dashboard_owns(const char *url);

/* Answers a request http_dashboard_owns(): the file for GET and HEAD
 * (200), 404 for a name it does not have, 405 for any other method; with
 * the dashboard's security headers and X-Request-Id: request_id. Returns
 * what MHD_queue_response() returns. */
enum MHD_Result http_dashboard_answer(struct MHD_Connection *conn,
                                      const char *method, const char *url,
                                      const char *request_id);

#endif /* KILN_PLUGINS_API_HTTP_HTTP_H */
