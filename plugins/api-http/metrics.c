/*
 * The metrics listener: GET /metrics without a token on the deployment's
 * metrics.listen, an address the operator keeps for a Prometheus scraper
 * (a private interface, a port the firewall closes to the world), so a
 * scraper needs no tenant's bearer token. Nothing else is answered there
 * (404; another method on /metrics is a 405 with Allow), and it has a
 * daemon of its own, one thread: a scrape every few seconds needs no
 * more, and it stays apart from the API's connection caps.
 */
#include "http.h"

#include <stdio.h>
#include <string.h>

#define HTTP_METRICS_CONNECTIONS 16
#define HTTP_METRICS_TIMEOUT_S 10

static enum MHD_Result
http_metrics_send(struct MHD_Connection *conn, unsigned status,
                  const char *type, const char *body, size_t len)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        len, (void *)body, MHD_RESPMEM_MUST_COPY);
    enum MHD_Result ret;

    if (resp == NULL) {
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET");
    }
    ret = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result
http_metrics_access(void *cls, struct MHD_Connection *conn, const char *url,
                    const char *method, const char *version,
                    const char *upload_data, size_t *upload_data_size,
                    void **con_cls)
{
    http_server *s = cls;
    static int first;
    kiln_reply reply;
    enum MHD_Result ret;

    (void)version;
    (void)upload_data;
    if (*con_cls == NULL) {
        *con_cls = &first; /* headers only: answer on the next call */
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        *upload_data_size = 0; /* a body is not wanted: dropped */
        return MHD_YES;
    }
    if (strcmp(url, "/metrics") != 0 ||
        strcmp(method, MHD_HTTP_METHOD_GET) != 0) {
        static const char msg[] = "{\"message\": \"only GET /metrics is "
                                  "answered on the metrics address\"}";
        /* Another method on /metrics is a 405, as on the API. */
        unsigned status = strcmp(url, "/metrics") == 0
                              ? MHD_HTTP_METHOD_NOT_ALLOWED
                              : MHD_HTTP_NOT_FOUND;

        return http_metrics_send(conn, status, "application/json", msg,
                                 sizeof(msg) - 1);
    }
    memset(&reply, 0, sizeof(reply));
    reply.size = sizeof(reply);
    http_api->api_metrics(s->engine, &reply);
    ret = http_metrics_send(
        conn,
        reply.status >= 100 && reply.status <= 599 ? (unsigned)reply.status
                                                   : 500,
        reply.content_type != NULL ? reply.content_type : "text/plain",
        reply.body != NULL ? reply.body : "", reply.body_len);
    http_api->reply_free(&reply);
    return ret;
}

int
http_metrics_start(http_server *s, kiln_error *err)
{
    const char *listen;
    struct sockaddr_storage sa;
    bool is_ipv6 = false;
    uint16_t port = 0;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;

    s->metrics = NULL;
    if (!KILN_HOST_HAS(http_api, api_metrics) ||
        !KILN_HOST_HAS(http_api, config_metrics_listen)) {
        return KILN_OK;
    }
    listen = http_api->config_metrics_listen(s->engine);
    if (listen == NULL) {
        return KILN_OK;
    }
    if (http_parse_listen(listen, &sa, &is_ipv6, &port) != 0) {
        return http_api->error_set(
            err, KILN_EINVAL,
            "invalid metrics.listen address \"%.100s\" (expected IPV4:PORT "
            "or [IPV6]:PORT, e.g. 127.0.0.1:9100)",
            listen);
    }
    if (is_ipv6) {
        flags |= MHD_USE_IPv6;
    }
    s->metrics = MHD_start_daemon(
        flags, port, NULL, NULL, http_metrics_access, s, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&sa, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)HTTP_METRICS_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)HTTP_METRICS_TIMEOUT_S, MHD_OPTION_END);
    if (s->metrics == NULL) {
        return http_api->error_set(err, KILN_EIO,
                                   "cannot listen on metrics.listen %s (in "
                                   "use, or not an address of this host)",
                                   listen);
    }
    http_api->log(http_self, KILN_LOG_INFO,
                  "metrics without a token on %s (GET /metrics only)", listen);
    return KILN_OK;
}

void
http_metrics_stop(http_server *s)
{
    if (s->metrics != NULL) {
        MHD_stop_daemon(s->metrics);
        s->metrics = NULL;
    }
}
