/*
 * The "http" storage backend: read-only sources fetched over HTTP(S).
 * The engine opens one instance with default settings for the URL
 * sources of services that set remote_sources; a service may also name
 * "http" as its storage with settings of its own. open_read() checks the
 * URL against the "allow" prefixes and the host's network guard, sends
 * the GET (fetch.c) and follows redirects itself, checking every target
 * the same way, then streams the body into a VipsSource. Writes are
 * refused. Messages name the URL (without credentials) and what
 * happened; the host puts the service and the backend's name before them.
 */
#define _GNU_SOURCE /* strdup */

#include "http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct http_settings {
    const char *allow;
    double timeout;
    double max_size;
    double max_redirects;
} http_settings;

static int http_init(kiln_plugin *self, const kiln_host_api *api,
                     kiln_error *err);
static void http_fini(kiln_plugin *self);
static int http_open(kiln_plugin *self, const void *settings, void **state,
                     kiln_error *err);
static void http_close(void *state);
static int http_open_read(void *state, const char *path, VipsSource **out,
                          kiln_error *err);
static int http_open_write(void *state, const char *path, VipsTarget **target,
                           void **handle, kiln_error *err);
static int http_commit(void *state, void *handle, kiln_error *err);
static void http_abort(void *state, void *handle);

const kiln_host_api *http_api;

static const kiln_param_spec http_settings_spec[] = {
    KILN_P_STRING(http_settings, allow, "",
                  "URL prefixes that sources must start with, separated by "
                  "spaces or commas, e.g. \"https://cdn.example.com/img/\"; "
                  "empty: any URL the network guard allows"),
    KILN_P_NUMBER(http_settings, timeout, 0, 3600, 30,
                  "seconds a fetch may take, redirects and body included",
                  .flags = KILN_PARAM_MIN_EXCLUSIVE, .max_decimals = 3),
    KILN_P_NUMBER(http_settings, max_size, 1, 1099511627776.0, 104857600,
                  "largest body in bytes (Content-Length and bytes read)",
                  .flags = KILN_PARAM_INTEGER),
    KILN_P_NUMBER(http_settings, max_redirects, 0, 20, 5,
                  "redirects followed, each target checked again",
                  .flags = KILN_PARAM_INTEGER),
};

static const kiln_storage http_storage = {
    .size = sizeof(kiln_storage),
    .name = "http",
    .summary = "read-only sources fetched over HTTP(S)",
    .settings_size = sizeof(http_settings),
    .settings = http_settings_spec,
    .n_settings = KILN_N_ELEMENTS(http_settings_spec),
    .open = http_open,
    .close = http_close,
    .open_read = http_open_read,
    .open_write = http_open_write,
    .commit = http_commit,
    .abort = http_abort,
};

KILN_PLUGIN_DEFINE("storage-http", KILN_VERSION_STRING,
                   "read-only remote sources over HTTP(S), checked by the "
                   "network guard",
                   http_init, http_fini);

static int
http_init(kiln_plugin *self, const kiln_host_api *api, kiln_error *err)
{
    int rc;

    http_api = api;
    if (!KILN_HOST_HAS(api, net_allowed)) {
        return api->error_set(err, KILN_EABI,
                              "storage http needs the host's network guard "
                              "(net_allowed)");
    }
    /* Reference-counted and thread-safe in the libcurl this needs. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        return api->error_set(err, KILN_EIO,
                              "storage http: cannot initialise libcurl");
    }
    rc = api->register_storage(self, &http_storage, err);
    if (rc != KILN_OK) {
        curl_global_cleanup();
    }
    return rc;
}

static void
http_fini(kiln_plugin *self)
{
    (void)self;
    http_fetch_detach_all();
    curl_global_cleanup();
}

void
http_state_unref(http_state *st)
{
    if (st == NULL || atomic_fetch_sub(&st->refs, 1) != 1) {
        return;
    }
    http_pool_free(st);
    http_prefixes_free(st);
    free(st->allow_text);
    pthread_mutex_destroy(&st->lock);
    free(st);
}

static int
http_open(kiln_plugin *self, const void *settings, void **state,
          kiln_error *err)
{
    const http_settings *s = settings;
    const char *allow = s->allow != NULL ? s->allow : "";
    http_state *st;
    int rc;

    *state = NULL;
    st = calloc(1, sizeof *st);
    if (st == NULL) {
        return http_api->error_set(err, KILN_ENOMEM, "out of memory");
    }
    st->self = self;
    atomic_init(&st->refs, 1);
    pthread_mutex_init(&st->lock, NULL);
    st->timeout_s = s->timeout;
    st->timeout_ms = (long)(s->timeout * 1000 + 0.5);
    if (st->timeout_ms < 1) {
        st->timeout_ms = 1;
    }
    st->max_size = (long long)s->max_size;
    st->max_redirects = (int)s->max_redirects;
    st->allow_text = strdup(allow);
    if (st->allow_text == NULL) {
        http_state_unref(st);
        return http_api->error_set(err, KILN_ENOMEM, "out of memory");
    }
    rc = http_prefixes_parse(st, allow, err);
    if (rc != KILN_OK) {
        http_state_unref(st);
        return rc;
    }
    *state = st;
    return KILN_OK;
}

static void
http_close(void *state)
{
    /* Sources still being read keep the instance until they are done. */
    http_state_unref(state);
}

static bool
http_is_url(const char *s)
{
    return strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0;
}

static bool
http_is_redirect(long status)
{
    return status == 301 || status == 302 || status == 303 || status == 307 ||
           status == 308;
}

/* The error for a final answer that is neither 2xx nor a redirect. */
static int
http_status_error(long status, const char *subject, kiln_error *err)
{
    if (status == 404 || status == 410) {
        /* KILN_ENOTFOUND: with wait_retry_delay the process waits for it. */
        return http_api->error_set(err, KILN_ENOTFOUND,
                                   "%s not found (HTTP %ld)", subject, status);
    }
    if (status == 401 || status == 403) {
        return http_api->error_set(err, KILN_EPERM,
                                   "%s refused access (HTTP "
                                   "%ld; kiln sends no credentials beyond "
                                   "those in the URL)",
                                   subject, status);
    }
    return http_api->error_set(err, KILN_EIO,
                               "%s answered HTTP %ld (expected "
                               "200)",
                               subject, status);
}

/* Why the URL of hop `hop` may not be fetched (KILN_OK if it may): the
 * allow prefixes, then the network guard, which fills *t. `from` is the
 * URL that redirected there (hop > 0). */
static int
http_check_hop(http_state *st, const char *url, int hop, const char *from,
               kiln_net_target *t, kiln_error *err)
{
    char shown[HTTP_SHOWN_MAX];
    char why[sizeof err->message];
    int rc;

    http_shown(shown, url);
    /* Checked here rather than left to the guard, whose message would
     * quote the whole URL, credentials included. */
    if (!http_is_url(url)) {
        return http_api->error_set(err, KILN_EPERM,
                                   "%s redirects to %s "
                                   "(expected an http:// or https:// URL)",
                                   from, shown);
    }
    if (!http_prefix_allows(st, url)) {
        if (hop == 0) {
            return http_api->error_set(err, KILN_EPERM,
                                       "%s is not under a "
                                       "prefix of the allow setting (\"%s\")",
                                       shown, st->allow_text);
        }
        return http_api->error_set(err, KILN_EPERM,
                                   "%s redirects to %s, which "
                                   "is not under a prefix of the allow "
                                   "setting (\"%s\")",
                                   from, shown, st->allow_text);
    }
    rc = http_api->net_check_url(st->self, "source", url, t, err);
    if (rc == KILN_OK) {
        return KILN_OK;
    }
    snprintf(why, sizeof why, "%s", err->message);
    if (hop == 0) {
        return http_api->error_set(err, rc, "%s: %s", shown, why);
    }
    return http_api->error_set(err, rc,
                               "%s redirects to %s, which is "
                               "refused: %s",
                               from, shown, why);
}

static int
http_open_read(void *state, const char *path, VipsSource **out, kiln_error *err)
{
    http_state *st = state;
    long long deadline = http_now_ms() + st->timeout_ms;
    char first[HTTP_SHOWN_MAX];
    char prev[HTTP_SHOWN_MAX];
    char shown[HTTP_SHOWN_MAX];
    char subject[HTTP_SUBJECT_MAX];
    char *url;
    int rc = KILN_OK;

    *out = NULL;
    http_shown(first, path);
    if (!http_is_url(path)) {
        return http_api->error_set(err, KILN_EINVAL,
                                   "%s is not a URL (expected an http:// or "
                                   "https:// URL: storage http reads only "
                                   "those)",
                                   first);
    }
    if (strlen(path) >= HTTP_URL_MAX) {
        return http_api->error_set(err, KILN_EINVAL,
                                   "the URL %s is too long "
                                   "(expected at most %d bytes)",
                                   first, HTTP_URL_MAX - 1);
    }
    url = strdup(path);
    if (url == NULL) {
        return http_api->error_set(err, KILN_ENOMEM, "out of memory");
    }
    snprintf(prev, sizeof prev, "%s", first);

    for (int hop = 0;; hop++) {
        kiln_net_target t = {.size = sizeof t};
        http_fetch *f = NULL;
        const char *location;
        char *next = NULL;
        long status;

        rc = http_check_hop(st, url, hop, prev, &t, err);
        if (rc != KILN_OK) {
            break;
        }
        http_shown(shown, url);
        if (hop == 0) {
            snprintf(subject, sizeof subject, "%s", shown);
        } else {
            snprintf(subject, sizeof subject, "%s (redirected from %s)", shown,
                     first);
        }
        rc = http_fetch_start(st, url, &t, deadline, subject, &f, err);
        if (rc != KILN_OK) {
            break;
        }
        status = http_fetch_status(f);
        if (status >= 200 && status <= 299) {
            long long len = http_fetch_length(f);

            /* Refused before a byte of the body is read. */
            if (len > st->max_size) {
                http_fetch_free(f);
                rc = http_api->error_set(err, KILN_ELIMIT,
                                         "%s is %lld bytes, "
                                         "above max_size %lld",
                                         subject, len, st->max_size);
                break;
            }
            rc = http_fetch_source_take(f, out, err);
            break;
        }
        if (!http_is_redirect(status)) {
            http_fetch_free(f);
            rc = http_status_error(status, subject, err);
            break;
        }

        location = http_fetch_location(f);
        if (location == NULL) {
            http_fetch_free(f);
            rc = http_api->error_set(err, KILN_EIO,
                                     "%s answered HTTP %ld "
                                     "without a Location header",
                                     subject, status);
            break;
        }
        if (hop >= st->max_redirects) {
            http_fetch_free(f);
            rc = http_api->error_set(err, KILN_EIO,
                                     "%s redirects more than "
                                     "%d times (setting max_redirects)",
                                     first, st->max_redirects);
            break;
        }
        rc = http_resolve_location(url, location, &next);
        if (rc == KILN_OK && strlen(next) >= HTTP_URL_MAX) {
            free(next);
            next = NULL;
            rc = KILN_EINVAL;
        }
        if (rc != KILN_OK) {
            char q[HTTP_SHOWN_MAX];

            http_shown(q, location);
            http_fetch_free(f);
            rc = rc == KILN_ENOMEM
                     ? http_api->error_set(err, rc, "out of memory")
                     : http_api->error_set(err, KILN_EIO,
                                           "%s redirects to "
                                           "%s, which is not a valid URL",
                                           subject, q);
            break;
        }
        http_fetch_free(f);
        free(url);
        url = next;
        snprintf(prev, sizeof prev, "%s", shown);
    }
    free(url);
    return rc;
}

static int
http_open_write(void *state, const char *path, VipsTarget **target,
                void **handle, kiln_error *err)
{
    char q[HTTP_SHOWN_MAX];

    (void)state;
    *target = NULL;
    *handle = NULL;
    return http_api->error_set(err, KILN_EPERM,
                               "storage http is read-only: cannot write %s "
                               "(expected destinations in a service whose "
                               "storage can be written, e.g. local or s3)",
                               http_shown(q, path));
}

/* Never called: open_write() never succeeds. The host wants both
 * whenever open_write is set. */
static int
http_commit(void *state, void *handle, kiln_error *err)
{
    (void)state;
    (void)handle;
    return http_api->error_set(err, KILN_EPERM, "storage http is read-only");
}

static void
http_abort(void *state, void *handle)
{
    (void)state;
    (void)handle;
}
