/*
 * Internal header of the "api-http" service plugin, the HTTP transport of
 * the API (spec/api.md). plugin.c registers the service; server.c owns the
 * libmicrohttpd daemon and its listen address; request.c turns one HTTP
 * request into a kiln_call and the engine's kiln_reply into a response.
 * Everything here is hidden in the .so.
 */
#ifndef KILN_PLUGINS_API_HTTP_HTTP_H
#define KILN_PLUGINS_API_HTTP_HTTP_H

#include <stdatomic.h>
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

/* What the access handler needs; lives as long as the daemon. */
typedef struct http_server {
    struct MHD_Daemon *daemon;
    kiln_engine *engine;
    size_t max_body; /* bytes; a larger body is answered 413 */
    /* Requests being answered: from the engine call (or the 413) until
     * the response is sent; stop() waits a little for them. */
    atomic_uint n_answering;
    char listen[128]; /* the configured address, for messages */
} http_server;

/* The service's start() and stop() (kiln_service). start() fills *state
 * with a new http_server listening on the engine's configured address or
 * fails with KILN_EINVAL (bad address), KILN_EIO (cannot listen) or
 * KILN_ENOMEM. stop() stops accepting, closes every connection, waits for
 * the daemon's threads and frees the state. */
int http_start(kiln_engine *engine, void **state, kiln_error *err);
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

#endif /* KILN_PLUGINS_API_HTTP_HTTP_H */
