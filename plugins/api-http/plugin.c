/*
 * The "api-http" plugin: its descriptor and init(), which registers one
 * service of the same name. `kiln serve` starts it after the job store and
 * workers are up; server.c and request.c do the rest.
 */
#include "http.h"

static int http_init(kiln_plugin *self, const kiln_host_api *api,
                     kiln_error *err);

const kiln_host_api *http_api;
kiln_plugin *http_self;

static const kiln_param_spec http_service_specs[] = {
    KILN_P_NUMBER(http_service_settings, threads, 0, 1024, 0,
                  "threads answering requests; 0: two per CPU, at least 8 "
                  "and at most 64",
                  .flags = KILN_PARAM_INTEGER),
    KILN_P_BOOL(http_service_settings, dashboard, true,
                "serve the operator dashboard at /dashboard; false: every "
                "request under /dashboard answers 404"),
};

static const kiln_service http_service = {
    .size = sizeof(kiln_service),
    .name = "api-http",
    .summary = "the HTTP API (docs/api.md) over libmicrohttpd",
    .settings_size = sizeof(http_service_settings),
    .settings = http_service_specs,
    .n_settings = KILN_N_ELEMENTS(http_service_specs),
    .start = http_start,
    .stop = http_stop,
};

KILN_PLUGIN_DEFINE("api-http", KILN_VERSION_STRING,
                   "HTTP transport of the kiln API (libmicrohttpd)", http_init,
                   NULL);

static int
http_init(kiln_plugin *self, const kiln_host_api *api, kiln_error *err)
{
    http_api = api;
    http_self = self;
    return api->register_service(self, &http_service, err);
}
