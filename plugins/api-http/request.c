/*
 * One HTTP request of the "api-http" service: the libmicrohttpd access
 * handler buffers the body (up to the configured limit, else 413), fills a
 * kiln_call, asks the engine with api_call_from() and sends its kiln_reply
 * back as is, with the headers its status calls for (WWW-Authenticate,
 * Allow). Routing, authentication and every other answer are the core's,
 * but for a connection on the guard's reserve (guard.c), which may only
 * ask for /health and /metrics, and for the dashboard's static files
 * under /dashboard (dashboard.c).
 */
#include "http.h"

#include <stdatomic.h>
#include <sys/random.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A body over the limit is read and dropped so that the 413 can be sent
 * and read: a client that writes its whole body before reading (Python's
 * urllib) gets a connection reset instead when we close with its bytes
 * unread. Reading costs bandwidth and time (body_timeout still applies),
 * so only this many bytes are dropped: a Content-Length over it is
 * answered at once and the connection closed, and a chunked body loses
 * its connection once it has sent this much more. */
#define HTTP_DROP_MAX ((size_t)16 << 20)

#define HTTP_JSON "application/json"

/* WWW-Authenticate of every 401: the API takes "Authorization: Bearer
 * TOKEN" (RFC 6750) and nothing else. */
#define HTTP_CHALLENGE "Bearer realm=\"kiln\""

/* One request's state, in *con_cls from the first call of the access
 * handler to MHD_OPTION_NOTIFY_COMPLETED. */
struct http_request {
    bool is_begun;       /* the access handler has seen its headers */
    char request_id[65]; /* X-Request-Id: set with the headers */
    char *query;         /* the raw query string (after '?'), or NULL */
    char *body;          /* NULL until a byte arrives */
    size_t len;
    size_t cap;
    bool is_over;      /* the body went over max_body: answer 413 */
    bool is_answering; /* counted in the server's n_answering */
    bool is_close;     /* on a reserve place: close after the answer */
    size_t n_dropped;  /* bytes read and dropped since then */
};

/* True when a Content-Length header announces more than max bytes. A
 * value MHD would reject itself (not a number) does not count here. */
static bool
http_length_is_over(const char *text, size_t max)
{
    size_t v = 0;

    for (; *text >= '0' && *text <= '9'; text++) {
        size_t d = (size_t)(*text - '0');

        if (v > (SIZE_MAX - d) / 10) {
            return true;
        }
        v = v * 10 + d;
        if (v > max) {
            return true;
        }
    }
    return false;
}

/* Queues one response. Returns what MHD_queue_response() returns, MHD_NO
 * (which closes the connection) when the response cannot be built. */
/* The request's id for X-Request-Id: the client's own when it sent a
 * plausible one (1 to 64 of [A-Za-z0-9._-], so a log line cannot be
 * forged through it), else 16 random hex digits. */
static void
http_request_id(struct MHD_Connection *conn, char out[65])
{
    const char *given =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id");
    size_t n = given != NULL ? strlen(given) : 0;

    if (n >= 1 && n <= 64 &&
        strspn(given, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                      "0123456789._-") == n) {
        memcpy(out, given, n + 1);
        return;
    }
    unsigned char b[8] = {0};
    static const char hex[] = "0123456789abcdef";

    if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b)) {
        /* No entropy: a counter still tells requests apart. */
        static atomic_ulong seq;
        unsigned long v = atomic_fetch_add(&seq, 1) + 1;

        memcpy(b, &v, sizeof(v) < sizeof(b) ? sizeof(v) : sizeof(b));
    }
    for (size_t i = 0; i < sizeof(b); i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 15];
    }
    out[16] = '\0';
}

enum MHD_Result
http_send(struct MHD_Connection *conn, const http_request *r, int status,
          const char *content_type, const char *body, size_t len,
          int retry_after, const char *allow)
{
    struct MHD_Response *resp;
    enum MHD_Result ret = MHD_NO;

    if (status < 100 || status > 599) {
        status = MHD_HTTP_INTERNAL_SERVER_ERROR;
    }
    if (body == NULL) {
        body = "";
        len = 0;
    }
    resp = MHD_create_response_from_buffer(len, (void *)body,
                                           MHD_RESPMEM_MUST_COPY);
    if (resp == NULL) {
        return MHD_NO;
    }
    if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                content_type != NULL ? content_type
                                                     : HTTP_JSON) != MHD_YES) {
        goto done;
    }
    if (retry_after > 0) {
        char text[16];

        snprintf(text, sizeof(text), "%d", retry_after);
        if (MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, text) !=
            MHD_YES) {
            goto done;
        }
    }
    if (r->is_close && MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION,
                                               "close") != MHD_YES) {
        goto done;
    }
    /* RFC 9110: a 401 says how to authenticate, a 405 what is allowed. */
    if (status == MHD_HTTP_UNAUTHORIZED &&
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                HTTP_CHALLENGE) != MHD_YES) {
        goto done;
    }
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED && allow != NULL &&
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow) !=
            MHD_YES) {
        goto done;
    }
    char id[65];

    if (r->request_id[0] != '\0') {
        memcpy(id, r->request_id, sizeof(id));
    } else {
        http_request_id(conn, id);
    }
    if (MHD_add_response_header(resp, "X-Request-Id", id) != MHD_YES) {
        goto done;
    }
    http_guard_phase(conn, HTTP_PHASE_ANSWER);
    ret = MHD_queue_response(conn, (unsigned)status, resp);
done:
    MHD_destroy_response(resp);
    return ret;
}

/* Marks the request as being answered (see http_stop). */
static void
http_answering(http_server *s, http_request *r)
{
    if (!r->is_answering) {
        r->is_answering = true;
        atomic_fetch_add(&s->n_answering, 1);
    }
}

static enum MHD_Result
http_send_over(http_server *s, struct MHD_Connection *conn, http_request *r)
{
    char body[96];
    int n;

    http_answering(s, r);
    n = snprintf(body, sizeof(body),
                 "{\"message\":\"request body is over the limit of %zu "
                 "bytes\"}",
                 s->max_body);

    return http_send(conn, r, MHD_HTTP_CONTENT_TOO_LARGE, HTTP_JSON, body,
                     (size_t)n, 0, NULL);
}

/* A request on a reserve place that is not for /health or /metrics. */
static enum MHD_Result
http_send_busy(http_server *s, struct MHD_Connection *conn, http_request *r)
{
    static const char body[] =
        "{\"message\":\"too many connections: this one may only ask for "
        "GET /health or GET /metrics; try again later\"}";

    http_answering(s, r);
    return http_send(conn, r, MHD_HTTP_SERVICE_UNAVAILABLE, HTTP_JSON, body,
                     sizeof(body) - 1, 1, NULL);
}

/* True when a client asked for "100 Continue" before sending its body. */
static bool
http_expects_continue(struct MHD_Connection *conn)
{
    const char *expect = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_EXPECT);

    return expect != NULL && strcasecmp(expect, "100-continue") == 0;
}

/* Appends n bytes, growing the buffer by doubling but never past max
 * (plus a NUL kept after the body, for any reader that wants a string).
 * The caller has checked that len + n <= max. Returns 0 or -1 (no
 * memory). */
static int
http_append(http_request *r, const char *data, size_t n, size_t max)
{
    if (r->len + n > r->cap) {
        size_t cap = r->cap != 0 ? r->cap : 4096;
        char *p;

        while (cap < r->len + n) {
            cap = cap > max / 2 ? max : cap * 2;
        }
        if (cap > max) {
            cap = max;
        }
        p = realloc(r->body, cap + 1);
        if (p == NULL) {
            return -1;
        }
        r->body = p;
        r->cap = cap;
    }
    memcpy(r->body + r->len, data, n);
    r->len += n;
    r->body[r->len] = '\0';
    return 0;
}

/* The longest query string passed on: GET /processes needs a few
 * hundred bytes at most. */
#define HTTP_QUERY_MAX 4096

void *
http_request_new(const char *uri)
{
    http_request *r = calloc(1, sizeof(*r));
    const char *q = uri != NULL ? strchr(uri, '?') : NULL;

    if (r != NULL && q != NULL && q[1] != '\0') {
        size_t len = 0;

        while (len < HTTP_QUERY_MAX && q[1 + len] != '\0') {
            len++;
        }
        /* A longer one is cut: the host then refuses what it reads. */
        r->query = malloc(len + 1);
        if (r->query != NULL) {
            memcpy(r->query, q + 1, len);
            r->query[len] = '\0';
        }
    }
    return r;
}

static enum MHD_Result
http_send_call(http_server *s, struct MHD_Connection *conn, const char *url,
               const char *method, http_request *r)
{
    kiln_call call;
    kiln_reply reply;
    enum MHD_Result ret;

    /* MHD hands us the path alone: the query is already split off. */
    memset(&call, 0, sizeof(call));
    memset(&reply, 0, sizeof(reply));
    call.size = sizeof(call);
    reply.size = sizeof(reply);
    call.method = method;
    call.path = url;
    call.authorization = MHD_lookup_connection_value(
        conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    call.idempotency_key =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Idempotency-Key");
    call.body = r->body;
    call.body_len = r->len;
    if (s->has_query) {
        call.query = r->query;
        call.request_id = r->request_id;
    }

    http_answering(s, r);
    if (s->has_peer_call) {
        const union MHD_ConnectionInfo *info =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

        http_api->api_call_from(
            s->engine, &call, info != NULL ? info->client_addr : NULL, &reply);
    } else {
        http_api->api_call(s->engine, &call, &reply);
    }
    /* The host answers 405 for a path it knows asked with a method it does
     * not serve, but a kiln_reply carries no headers: the methods for
     * Allow are the ones docs/openapi.yaml lists for the path, which the
     * host's routes follow (tests/exec/openapi.sh checks that they do). */
    ret = http_send(conn, r, reply.status, reply.content_type, reply.body,
                    reply.body_len, reply.retry_after,
                    reply.status == MHD_HTTP_METHOD_NOT_ALLOWED
                        ? http_openapi_allow(url)
                        : NULL);
    http_api->reply_free(&reply);
    return ret;
}

enum MHD_Result
http_access(void *cls, struct MHD_Connection *conn, const char *url,
            const char *method, const char *version, const char *upload_data,
            size_t *upload_data_size, void **con_cls)
{
    http_server *s = cls;
    http_request *r = *con_cls;
    size_t n = *upload_data_size;

    (void)version;
    if (r == NULL || !r->is_begun) {
        /* Headers only. The state was made with the URI (its query),
         * unless memory was short then. */
        const char *length = MHD_lookup_connection_value(
            conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);

        http_guard_phase(conn, HTTP_PHASE_BODY);
        if (r == NULL) {
            r = calloc(1, sizeof(*r));
        }
        if (r == NULL) {
            return MHD_NO;
        }
        r->is_begun = true;
        http_request_id(conn, r->request_id);
        *con_cls = r;
        if (http_guard_is_reserve(conn)) {
            r->is_close = true;
            if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 ||
                (strcmp(url, "/health") != 0 && strcmp(url, "/metrics") != 0)) {
                return http_send_busy(s, conn, r);
            }
        }
        if (length != NULL && http_length_is_over(length, s->max_body)) {
            /* Over the limit: dropped (HTTP_DROP_MAX) unless the client
             * waits for "100 Continue" (it then sends nothing more) or
             * announces more than is worth reading. Answering now makes
             * MHD close the connection without reading the body. */
            r->is_over = true;
            if (http_expects_continue(conn) ||
                http_length_is_over(length, HTTP_DROP_MAX)) {
                return http_send_over(s, conn, r);
            }
        }
        return MHD_YES;
    }
    if (n != 0) {
        *upload_data_size = 0;
        if (r->is_over) {
            r->n_dropped += n;
            return r->n_dropped > HTTP_DROP_MAX ? MHD_NO : MHD_YES;
        }
        if (n > s->max_body - r->len) {
            /* A chunked body (no Content-Length) went over: drop it. */
            r->is_over = true;
            free(r->body);
            r->body = NULL;
            r->len = r->cap = 0;
            return MHD_YES;
        }
        return http_append(r, upload_data, n, s->max_body) == 0 ? MHD_YES
                                                                : MHD_NO;
    }
    if (r->is_over) {
        return http_send_over(s, conn, r);
    }
    if (http_dashboard_owns(url) && !s->has_dashboard) {
        /* Turned off: as if it did not exist, for every method (a 405
         * would tell that something is there), token or not. */
        static const char body[] = "{\"message\":\"not found\"}";

        http_answering(s, r);
        return http_send(conn, r, MHD_HTTP_NOT_FOUND, HTTP_JSON, body,
                         sizeof(body) - 1, 0, NULL);
    }
    if (http_dashboard_owns(url)) { /* static files: dashboard.c */
        http_answering(s, r);
        return http_dashboard_answer(conn, method, url, r->request_id);
    }
    if (http_is_openapi(method, url)) {
        return http_send_openapi(conn, r);
    }
    return http_send_call(s, conn, url, method, r);
}

void
http_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
               enum MHD_RequestTerminationCode toe)
{
    http_server *s = cls;
    http_request *r = *con_cls;

    (void)toe;
    http_guard_phase(conn, HTTP_PHASE_IDLE);
    if (r != NULL) {
        if (r->is_answering) {
            atomic_fetch_sub(&s->n_answering, 1);
        }
        free(r->body);
        free(r->query);
        free(r);
        *con_cls = NULL;
    }
}
