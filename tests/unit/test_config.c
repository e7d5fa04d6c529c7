/*
 * Configuration tests: defaults, ${ENV} expansion, and the error texts
 * for unknown keys, bad types, unset variables and values that disagree.
 */
#include <CUnit/CUnit.h>
#include <stdlib.h>
#include <string.h>

#include "../../core/kiln.h"

int test_config_register(void);

static int
load(const char *text, kiln_config **c, errlist *errs)
{
    return config_load_text(text, strlen(text), c, errs);
}

/* Checks that errs holds exactly the n messages of want, in order, each
 * as "path: message"; prints a mismatch in full. */
static void
expect_errors(const errlist *errs, const char *const *want, size_t n)
{
    CU_ASSERT_EQUAL(errs->n, n);
    for (size_t i = 0; i < errs->n && i < n; i++) {
        char got[1200];
        err_format(&errs->items[i].e, got, sizeof got);
        if (strcmp(got, want[i]) != 0) {
            fprintf(stderr, "\n  got:  %s\n  want: %s\n", got, want[i]);
        }
        CU_ASSERT_STRING_EQUAL(got, want[i]);
    }
}

static void
test_defaults(void)
{
    kiln_config *c = NULL;
    kiln_error e;
    CU_ASSERT_EQUAL_FATAL(config_default(&c, &e), KILN_OK);
    CU_ASSERT_STRING_EQUAL(c->listen, "127.0.0.1:8080");
    CU_ASSERT_EQUAL(c->limits.max_pixels, 100000000);
    CU_ASSERT_EQUAL(c->limits.max_jobs, 50);
    CU_ASSERT_EQUAL(c->n_services, 1);
    CU_ASSERT_EQUAL(c->services[0].id, 1);
    CU_ASSERT_STRING_EQUAL(c->services[0].storage_plugin, "local");
    /* Every shipped plugin is enabled, these three among them. */
    int found = 0;
    for (size_t i = 0; i < c->n_enable; i++) {
        found += strcmp(c->enable[i], "ops-vips") == 0 ||
                 strcmp(c->enable[i], "storage-local") == 0 ||
                 strcmp(c->enable[i], "api-http") == 0;
    }
    CU_ASSERT_EQUAL(found, 3);
    config_free(c);
}

static void
test_env_and_values(void)
{
    setenv("KILN_TEST_TOKEN", "s3cr3t", 1);
    kiln_config *c = NULL;
    errlist errs = {0};
    int rc = load("{\"workers\": 3, \"limits\": {\"max_pixels\": 1000},"
                  "\"services\": [{\"id\": 7, \"tokens\": "
                  "[\"${KILN_TEST_TOKEN}\"], \"storage\": {\"plugin\": "
                  "\"local\", \"root\": \"/srv/${KILN_TEST_TOKEN}/x\"}}]}",
                  &c, &errs);
    CU_ASSERT_EQUAL_FATAL(rc, KILN_OK);
    CU_ASSERT_EQUAL(c->workers, 3);
    CU_ASSERT_EQUAL(c->limits.max_pixels, 1000);
    CU_ASSERT_EQUAL(c->services[0].limits.max_pixels, 1000);
    CU_ASSERT_STRING_EQUAL(c->services[0].tokens[0], "s3cr3t");
    CU_ASSERT_STRING_EQUAL(
        cJSON_GetObjectItem(c->services[0].storage, "root")->valuestring,
        "/srv/s3cr3t/x");
    CU_ASSERT_PTR_NOT_NULL(config_find_service(c, 7));
    CU_ASSERT_PTR_NULL(config_find_service(c, 1));
    config_free(c);
    errlist_free(&errs);
}

static void
test_errors(void)
{
    unsetenv("KILN_TEST_UNSET");
    kiln_config *c = NULL;
    errlist errs = {0};
    int rc = load("{\"listn\": \"x\", \"workers\": 0, \"services\": [{\"id\": "
                  "1, \"tokens\": [\"${KILN_TEST_UNSET}\"], \"backend\": "
                  "\"nope\", \"storage\": {\"plugin\": 5}}], \"jobstore\": "
                  "{\"retention_days\": 1.5}}",
                  &c, &errs);
    CU_ASSERT_EQUAL(rc, KILN_EINVAL);
    CU_ASSERT_PTR_NULL(c);
    const char *want[] = {
        "listn: unknown key \"listn\" (did you mean \"listen\"?)",
        "workers: 0 is not valid (expected a number 1..1024)",
        "jobstore.retention_days: 1.5 is not valid (expected a whole number)",
        "services[0].tokens[0]: environment variable KILN_TEST_UNSET is not "
        "set",
        "services[0].storage.plugin: expected the name of a storage "
        "backend, e.g. \"local\"",
    };
    /* "backend" names a plugin's backend: checked once plugins load
     * (tests/exec/magick_backend.sh). */
    expect_errors(&errs, want, 5);
    errlist_free(&errs);
    errs = (errlist){0};
    CU_ASSERT_EQUAL(load("{\"services\": [1,", &c, &errs), KILN_EINVAL);
    CU_ASSERT_EQUAL_FATAL(errs.n, 1);
    CU_ASSERT_STRING_EQUAL(
        errs.items[0].e.message,
        "invalid JSON at line 1, column 16: unexpected \",\"");
    errlist_free(&errs);
}

/* network.allow and shutdown_timeout: a bad range is refused at load,
 * named by its path. */
static void
test_network_and_shutdown(void)
{
    kiln_config *c = NULL;
    errlist errs = {0};
    int rc =
        load("{\"shutdown_timeout\": 5, \"network\": {\"allow\": "
             "[\"127.0.0.0/8\", \"10.0.0.1/8\"]}, \"services\": [{\"id\": "
             "1, \"storage\": {\"plugin\": \"local\", \"root\": \"/x\"}}]}",
             &c, &errs);
    CU_ASSERT_EQUAL(rc, KILN_EINVAL);
    CU_ASSERT_EQUAL_FATAL(errs.n, 1);
    CU_ASSERT_STRING_EQUAL(errs.items[0].e.path, "network.allow[1]");
    CU_ASSERT_PTR_NOT_NULL(strstr(errs.items[0].e.message, "10.0.0.1/8"));
    errlist_free(&errs);
    errs = (errlist){0};
    rc = load("{\"shutdown_timeout\": 5, \"network\": {\"allow\": "
              "[\"127.0.0.0/8\", \"fd00::/8\"]}, \"services\": [{\"id\": 1, "
              "\"storage\": {\"plugin\": \"local\", \"root\": \"/x\"}}]}",
              &c, &errs);
    CU_ASSERT_EQUAL_FATAL(rc, KILN_OK);
    CU_ASSERT_EQUAL(c->shutdown_timeout, 5);
    CU_ASSERT_EQUAL(c->opt_level, OPT_LEVEL_DEFAULT);
    CU_ASSERT_EQUAL(c->n_network_allow, 2);
    config_free(c);
    errlist_free(&errs);
    c = NULL;
    kiln_error e;
    CU_ASSERT_EQUAL_FATAL(config_default(&c, &e), KILN_OK);
    CU_ASSERT_EQUAL(c->shutdown_timeout, 30);
    config_free(c);
}

/* optimize: the passes' level, 0..3, named by its path when out of range
 * or not an integer. */
static void
test_optimize_level(void)
{
    static const char svc[] = ", \"services\": [{\"id\": 1, \"storage\": "
                              "{\"plugin\": \"local\", \"root\": \"/x\"}}]}";
    char text[256];
    kiln_config *c = NULL;
    errlist errs = {0};
    snprintf(text, sizeof text, "{\"optimize\": 3%s", svc);
    CU_ASSERT_EQUAL_FATAL(load(text, &c, &errs), KILN_OK);
    CU_ASSERT_EQUAL(c->opt_level, 3);
    config_free(c);
    c = NULL;
    snprintf(text, sizeof text, "{\"optimize\": 0%s", svc);
    CU_ASSERT_EQUAL_FATAL(load(text, &c, &errs), KILN_OK);
    CU_ASSERT_EQUAL(c->opt_level, 0);
    config_free(c);
    c = NULL;
    static const char *const bad[] = {"4", "-1", "1.5", "\"2\""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(text, sizeof text, "{\"optimize\": %s%s", bad[i], svc);
        errs = (errlist){0};
        CU_ASSERT_EQUAL(load(text, &c, &errs), KILN_EINVAL);
        CU_ASSERT_EQUAL_FATAL(errs.n, 1);
        CU_ASSERT_STRING_EQUAL(errs.items[0].e.path, "optimize");
        errlist_free(&errs);
    }
}

/* http and rate_limit's failed_auth keys: defaults, values, and the
 * errors for a per-address cap above the total, a fractional
 * idle_timeout and a misspelt key. */
static void
test_http_and_failed_auth(void)
{
    static const char svc[] = ", \"services\": [{\"id\": 1, \"storage\": "
                              "{\"plugin\": \"local\", \"root\": \"/x\"}}]}";
    char text[512];
    kiln_config *c = NULL;
    errlist errs = {0};
    snprintf(text, sizeof text, "{\"listen\": \"127.0.0.1:1\"%s", svc);
    CU_ASSERT_EQUAL_FATAL(load(text, &c, &errs), KILN_OK);
    CU_ASSERT_EQUAL(c->http.max_connections, 1000);
    CU_ASSERT_EQUAL(c->http.max_connections_per_address, 64);
    CU_ASSERT_EQUAL(c->http.header_timeout, 10);
    CU_ASSERT_EQUAL(c->http.body_timeout, 60);
    CU_ASSERT_EQUAL(c->http.idle_timeout, 30);
    CU_ASSERT_EQUAL(c->failed_auth_per_second, 1);
    CU_ASSERT_EQUAL(c->failed_auth_burst, 20);
    config_free(c);
    c = NULL;
    snprintf(text, sizeof text,
             "{\"http\": {\"max_connections\": 24, "
             "\"max_connections_per_address\": 6, \"header_timeout\": 2.5, "
             "\"body_timeout\": 3, \"idle_timeout\": 4}, \"rate_limit\": "
             "{\"failed_auth_per_second\": 0.5, \"failed_auth_burst\": 5}%s",
             svc);
    CU_ASSERT_EQUAL_FATAL(load(text, &c, &errs), KILN_OK);
    CU_ASSERT_EQUAL(c->http.max_connections, 24);
    CU_ASSERT_EQUAL(c->http.max_connections_per_address, 6);
    CU_ASSERT_EQUAL(c->http.header_timeout, 2.5);
    CU_ASSERT_EQUAL(c->http.body_timeout, 3);
    CU_ASSERT_EQUAL(c->http.idle_timeout, 4);
    CU_ASSERT_EQUAL(c->failed_auth_per_second, 0.5);
    CU_ASSERT_EQUAL(c->failed_auth_burst, 5);
    CU_ASSERT_EQUAL(c->rate_burst, 100);
    config_free(c);
    c = NULL;
    snprintf(text, sizeof text,
             "{\"http\": {\"max_connections\": 10, "
             "\"max_connections_per_address\": 20, \"idle_timeout\": 1.5, "
             "\"header_timeout\": 0, \"body_timeot\": 3}, \"rate_limit\": "
             "{\"failed_auth_burst\": 0}%s",
             svc);
    CU_ASSERT_EQUAL(load(text, &c, &errs), KILN_EINVAL);
    const char *want[] = {
        "rate_limit.failed_auth_burst: 0 is not valid (expected a number "
        "1..1e+09)",
        "http.body_timeot: unknown key \"body_timeot\" (did you mean "
        "\"body_timeout\"?)",
        "http.header_timeout: 0 is not valid (expected a number 0.1..3600)",
        "http.idle_timeout: 1.5 is not valid (expected a whole number)",
        "http.max_connections_per_address: 20 is above max_connections (10): "
        "one address could never use them all",
    };
    expect_errors(&errs, want, 5);
    errlist_free(&errs);
}

/* Loads a configuration of one service that listens on `listen`. */
static int
load_listen(const char *listen, kiln_config **c, errlist *errs)
{
    char text[256];
    snprintf(text, sizeof text,
             "{\"listen\": \"%s\", \"services\": [{\"id\": 1, "
             "\"storage\": {\"plugin\": \"local\"}}]}",
             listen);
    return load(text, c, errs);
}

/* "listen" is checked at load (IPV4:PORT or [IPV6]:PORT, what the HTTP
 * transport binds), and config_set_listen (kiln serve --listen) checks the
 * same way. */
static void
test_listen(void)
{
    static const char *const good[] = {"127.0.0.1:8080", "0.0.0.0:1",
                                       "[::1]:65535", "[::]:8080"};
    static const char *const bad[] = {
        "localhost:8080",  "127.0.0.1",     "127.0.0.1:0",
        "127.0.0.1:65536", "::1:8080",      "[::1]8080",
        "1.2.3:80",        "127.0.0.1:80x", "",
        "127.0.0.1:+80"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        kiln_config *c = NULL;
        errlist errs = {0};
        CU_ASSERT_EQUAL(load_listen(good[i], &c, &errs), KILN_OK);
        CU_ASSERT_EQUAL(errs.n, 0);
        kiln_error e;
        err_clear(&e);
        CU_ASSERT_EQUAL(config_set_listen(c, good[i], &e), KILN_OK);
        if (c != NULL) {
            CU_ASSERT_STRING_EQUAL(c->listen, good[i]);
        }
        config_free(c);
        errlist_free(&errs);
    }
    kiln_config *d = NULL;
    kiln_error e;
    CU_ASSERT_EQUAL_FATAL(config_default(&d, &e), KILN_OK);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        kiln_config *c = NULL;
        errlist errs = {0};
        CU_ASSERT_EQUAL(load_listen(bad[i], &c, &errs), KILN_EINVAL);
        char want[300];
        snprintf(want, sizeof want,
                 "listen: \"%s\" is not valid (expected IPV4:PORT or "
                 "[IPV6]:PORT, e.g. 127.0.0.1:8080 or [::1]:8080)",
                 bad[i]);
        const char *w[] = {want};
        expect_errors(&errs, w, 1);
        errlist_free(&errs);
        err_clear(&e);
        CU_ASSERT_EQUAL(config_set_listen(d, bad[i], &e), KILN_EINVAL);
        CU_ASSERT_STRING_EQUAL(strchr(want, '"'), e.message);
        CU_ASSERT_STRING_EQUAL(d->listen, "127.0.0.1:8080");
    }
    config_free(d);
}

/* The embedded defaults keep the job store and local storage in the state
 * directory systemd names (StateDirectory=), else under var/. */
static void
test_state_directory(void)
{
    kiln_config *c = NULL;
    kiln_error e;
    setenv("STATE_DIRECTORY", "/var/lib/kiln:/var/lib/other", 1);
    CU_ASSERT_EQUAL_FATAL(config_default(&c, &e), KILN_OK);
    CU_ASSERT_STRING_EQUAL(c->jobstore_path, "/var/lib/kiln/kiln.db");
    CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(cJSON_GetObjectItem(
                               c->services[0].storage, "root")),
                           "/var/lib/kiln/storage");
    config_free(c);
    unsetenv("STATE_DIRECTORY");
    CU_ASSERT_EQUAL_FATAL(config_default(&c, &e), KILN_OK);
    CU_ASSERT_STRING_EQUAL(c->jobstore_path, "var/kiln.db");
    CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(cJSON_GetObjectItem(
                               c->services[0].storage, "root")),
                           "var/storage");
    config_free(c);
}

int
test_config_register(void)
{
    CU_pSuite s = CU_add_suite("config", NULL, NULL);
    if (s == NULL) {
        return 1;
    }
    CU_add_test(s, "embedded defaults", test_defaults);
    CU_add_test(s, "environment and values", test_env_and_values);
    CU_add_test(s, "error texts", test_errors);
    CU_add_test(s, "optimize", test_optimize_level);
    CU_add_test(s, "network.allow and shutdown_timeout",
                test_network_and_shutdown);
    CU_add_test(s, "http and failed authentication", test_http_and_failed_auth);
    CU_add_test(s, "listen", test_listen);
    CU_add_test(s, "state directory", test_state_directory);
    return CU_get_error() == CUE_SUCCESS ? 0 : 1;
}
