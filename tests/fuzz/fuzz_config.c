/*
 * Fuzzes the configuration loader: config_load_text (core/config.c) on
 * hostile JSON, with ${NAME} expansion from an environment the harness
 * sets, then what `kiln run` does with a loaded configuration
 * (config_set_storage_root, config_find_service) and config_free. Every
 * input must load or end in errors; an error-free failure or a loaded
 * configuration that breaks its own invariants aborts.
 *
 * Input: the configuration text, not NUL-terminated (the loader takes a
 * length).
 */
#include "fuzz_common.h"

#include <stdlib.h>
#include <string.h>

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* Names the examples use (examples/config), so ${...} expands. */
    static const char *const env[] = {
        "KILN_TOKEN",        "tok-fuzz", "KILN_SECRET",           "secret",
        "AWS_ACCESS_KEY_ID", "AKIDFUZZ", "AWS_SECRET_ACCESS_KEY", "fuzz/secret",
        "AZURE_STORAGE_KEY", "ZnV6eg==", "FTP_PASSWORD",          "pw",
        "KILN_FUZZ_EMPTY",   ""};
    for (size_t i = 0; i < sizeof env / sizeof env[0]; i += 2) {
        setenv(env[i], env[i + 1], 0);
    }
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kiln_config *c = NULL;
    errlist errs = {0};
    int rc = config_load_text((const char *)data, size, &c, &errs);
    if (rc != KILN_OK) {
        /* Every refusal says why (ENOMEM aside). */
        if (errs.n == 0 && rc != KILN_ENOMEM) {
            fuzz_fail("config_load_text failed with %d and no error", rc);
        }
        if (c != NULL) {
            fuzz_fail("config_load_text failed but set *out");
        }
        errlist_print(&errs, fuzz_devnull());
        errlist_free(&errs);
        return 0;
    }
    if (errs.n != 0) {
        fuzz_fail("config_load_text succeeded with %zu errors", errs.n);
    }
    if (c == NULL || c->n_services < 1 || c->services == NULL) {
        fuzz_fail("a loaded configuration has no service");
    }
    for (size_t i = 0; i < c->n_services; i++) {
        const config_service *s = &c->services[i];
        if (s->storage_plugin == NULL || s->storage == NULL) {
            fuzz_fail("service %zu loaded without storage", i);
        }
        if (config_find_service(c, s->id) == NULL) {
            fuzz_fail("service %d is not found by its id", s->id);
        }
        for (size_t k = 0; k < s->n_tokens; k++) {
            if (s->tokens[k] == NULL) {
                fuzz_fail("service %d has a NULL token", s->id);
            }
        }
    }
    if (c->opt_level < 0 || c->opt_level > OPT_LEVEL_MAX || c->workers < 1) {
        fuzz_fail("optimize %d or workers %d out of range", c->opt_level,
                  c->workers);
    }
    kiln_error err;
    err_clear(&err);
    if (config_set_storage_root(c, "/nonexistent/root", &err) != KILN_OK) {
        fuzz_fail("config_set_storage_root: %s", err.message);
    }
    config_free(c);
    errlist_free(&errs);
    return 0;
}
