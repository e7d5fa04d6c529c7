/*
 * GET /openapi.json: the API's OpenAPI 3.1 document (docs/openapi.yaml),
 * converted to JSON when the plugin is built (plugin.mk) and served as
 * is, without a token, like GET /health. The document describes this
 * transport's HTTP API, so the transport answers it; the host's
 * dispatcher never sees the call. request.c asks http_is_openapi() before
 * handing a call to the host.
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
                     http_openapi_json, HTTP_OPENAPI_JSON_LEN, 0);
}
