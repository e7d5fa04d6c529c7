/*
 * GET /openapi.json: the API's OpenAPI 3.1 document (docs/openapi.yaml),
 * converted to JSON when the plugin is built (openapi_json.py) and served
 * as is, without a token, like GET /health. The document describes this
 * transport's HTTP API, so the transport answers it; the host's
 * dispatcher never sees the call. request.c asks http_is_openapi() before
 * handing a call to the host. The same build step gives the methods of
 * each of the document's paths, for the Allow header of a 405.
 */
#include "http.h"

#include <string.h>

#include "openapi_json.h" /* generated: http_openapi_json */

bool
http_is_openapi(const char *method, const char *url)
{
    return strcmp(method, MHD_HTTP_METHOD_GET) == 0 &&
           strcmp(url, "/openapi.json") == 0;
}

enum MHD_Result
http_send_openapi(struct MHD_Connection *conn, const http_request *r)
{
    return http_send(conn, r, MHD_HTTP_OK, "application/json",
                     http_openapi_json, HTTP_OPENAPI_JSON_LEN, 0, NULL);
}

/* True when url matches the document's path template tmpl, each
 * "{name}" in it standing for one non-empty segment. */
static bool
http_openapi_match(const char *tmpl, const char *url)
{
    while (*tmpl != '\0' && *url != '\0') {
        if (*tmpl == '{') {
            const char *close = strchr(tmpl, '}');
            size_t n = strcspn(url, "/");

            if (close == NULL || n == 0) {
                return false;
            }
            tmpl = close + 1;
            url += n;
        } else if (*tmpl++ != *url++) {
            return false;
        }
    }
    return *tmpl == '\0' && *url == '\0';
}

const char *
http_openapi_allow(const char *url)
{
    for (size_t i = 0; i < KILN_N_ELEMENTS(http_openapi_paths); i++) {
        if (http_openapi_match(http_openapi_paths[i].path, url)) {
            return http_openapi_paths[i].allow;
        }
    }
    return NULL;
}
