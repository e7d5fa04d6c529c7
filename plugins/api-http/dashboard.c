/*
 * The operator dashboard (docs/dashboard.md): GET /dashboard answers
 * index.html, GET /dashboard/NAME the other files of
 * plugins/api-http/dashboard/, all embedded into the plugin at build time
 * (plugin.mk). request.c hands every request under /dashboard here before
 * the host sees it: the page is static and needs no token; the calls its
 * script makes to the API each carry the token the operator pasted.
 *
 * Every answer here, errors too, carries headers that keep the page to
 * itself: a Content-Security-Policy that allows only this origin's script
 * and style files (no inline script or style, no framing, no form
 * posts), nosniff, no referrer, and no caching (the page shows whatever
 * the token may see).
 */
#include "http.h"

#include <stdbool.h>
#include <string.h>

#define HTTP_DASHBOARD "/dashboard"

#define HTTP_DASHBOARD_CSP                                                     \
    "default-src 'self'; script-src 'self'; style-src 'self'; "                \
    "img-src 'self'; connect-src 'self'; object-src 'none'; "                  \
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

/* Content types by file name ending; a file of another kind is not
 * served (a 404), so a stray file in the folder cannot be sniffed. */
static const struct {
    const char *ending;
    const char *type;
} http_dashboard_types[] = {
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".svg", "image/svg+xml"},
};

bool
http_dashboard_owns(const char *url)
{
    size_t n = sizeof(HTTP_DASHBOARD) - 1;

    return strncmp(url, HTTP_DASHBOARD, n) == 0 &&
           (url[n] == '\0' || url[n] == '/');
}

static const char *
http_dashboard_type(const char *name)
{
    size_t len = strlen(name);

    for (size_t i = 0; i < KILN_N_ELEMENTS(http_dashboard_types); i++) {
        const char *e = http_dashboard_types[i].ending;
        size_t n = strlen(e);

        if (len > n && strcmp(name + len - n, e) == 0) {
            return http_dashboard_types[i].type;
        }
    }
    return NULL;
}

/* The asset url names, or NULL: "/dashboard" and "/dashboard/" are
 * index.html, "/dashboard/NAME" the file NAME (a base name: no folders). */
static const http_asset *
http_dashboard_find(const char *url)
{
    const char *name = url + sizeof(HTTP_DASHBOARD) - 1;

    if (*name == '/') {
        name++;
    }
    if (*name == '\0') {
        name = "index.html";
    }
    for (size_t i = 0; i < http_dashboard_assets_n; i++) {
        if (strcmp(http_dashboard_assets[i].name, name) == 0) {
            return &http_dashboard_assets[i];
        }
    }
    return NULL;
}

enum MHD_Result
http_dashboard_answer(struct MHD_Connection *conn, const char *method,
                      const char *url, const char *request_id)
{
    static const char not_found[] = "{\"message\":\"not found\"}";
    static const char not_allowed[] =
        "{\"message\":\"the dashboard answers GET and HEAD only\"}";
    static const struct {
        const char *name;
        const char *value;
    } headers[] = {
        {"Content-Security-Policy", HTTP_DASHBOARD_CSP},
        {"X-Content-Type-Options", "nosniff"},
        {"Referrer-Policy", "no-referrer"},
        {"X-Frame-Options", "DENY"},
        {"Cache-Control", "no-store"},
    };
    const http_asset *asset = NULL;
    const char *type = "application/json";
    const void *body = not_found;
    size_t len = sizeof(not_found) - 1;
    unsigned status = MHD_HTTP_NOT_FOUND;
    bool is_get = strcmp(method, MHD_HTTP_METHOD_GET) == 0 ||
                  strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
    struct MHD_Response *resp;
    enum MHD_Result ret = MHD_NO;

    if (!is_get) {
        status = MHD_HTTP_METHOD_NOT_ALLOWED;
        body = not_allowed;
        len = sizeof(not_allowed) - 1;
    } else if ((asset = http_dashboard_find(url)) != NULL &&
               http_dashboard_type(asset->name) != NULL) {
        status = MHD_HTTP_OK;
        type = http_dashboard_type(asset->name);
        body = asset->data;
        len = asset->len;
    }
    /* The assets live as long as the plugin; the messages are static. */
    resp = MHD_create_response_from_buffer(len, (void *)body,
                                           MHD_RESPMEM_PERSISTENT);
    if (resp == NULL) {
        return MHD_NO;
    }
    if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type) !=
        MHD_YES) {
        goto done;
    }
    for (size_t i = 0; i < KILN_N_ELEMENTS(headers); i++) {
        if (MHD_add_response_header(resp, headers[i].name, headers[i].value) !=
            MHD_YES) {
            goto done;
        }
    }
    if (MHD_add_response_header(resp, "X-Request-Id", request_id) != MHD_YES) {
        goto done;
    }
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED &&
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD") !=
            MHD_YES) {
        goto done;
    }
    http_guard_phase(conn, HTTP_PHASE_ANSWER);
    ret = MHD_queue_response(conn, status, resp);
done:
    MHD_destroy_response(resp);
    return ret;
}
