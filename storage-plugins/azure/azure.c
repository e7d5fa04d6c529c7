/*
 * The "azure" storage backend: a service's files are block blobs in one
 * container of an Azure storage account (or of Azurite, its emulator).
 * This file is the plugin: its settings, open/close of a service's
 * storage, path checks and the storage callbacks, which hand reads to
 * read.c (a streamed Get Blob) and writes to write.c (a block blob that
 * only becomes visible at commit).
 */
#define _GNU_SOURCE

#include "azure.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

/* Account names: 3 to 24 lower-case letters and digits. Container names:
 * 3 to 63 lower-case letters, digits and single inner hyphens, or one of
 * the service's "$" containers. */
#define AZURE_ACCOUNT_MIN 3
#define AZURE_ACCOUNT_MAX 24
#define AZURE_CONTAINER_MIN 3
#define AZURE_CONTAINER_MAX 63
#define AZURE_DEFAULT_HOST ".blob.core.windows.net"
#define AZURE_MIB (1024.0 * 1024.0)

static int azure_init(kiln_plugin *self, const kiln_host_api *api,
                      kiln_error *err);
static void azure_fini(kiln_plugin *self);
static int azure_open(kiln_plugin *self, const void *settings, void **state,
                      kiln_error *err);
static void azure_close(void *state);
static int azure_open_read(void *state, const char *path, VipsSource **out,
                           kiln_error *err);
static int azure_open_write(void *state, const char *path, VipsTarget **target,
                            void **handle, kiln_error *err);

const kiln_host_api *azure_api;
kiln_plugin *azure_self;

static const kiln_param_spec azure_settings_spec[] = {
    KILN_P_STRING(azure_settings, account, NULL,
                  "storage account name (3 to 24 lower-case letters and "
                  "digits)",
                  .flags = KILN_PARAM_REQUIRED, .min_len = 1),
    KILN_P_STRING(azure_settings, key, NULL,
                  "the account key, base64 as the portal shows it; give it "
                  "as ${ENV}",
                  .flags = KILN_PARAM_REQUIRED | KILN_PARAM_SECRET,
                  .min_len = 1),
    KILN_P_STRING(azure_settings, container, NULL,
                  "the blob container that holds the service's files",
                  .flags = KILN_PARAM_REQUIRED, .min_len = 1),
    KILN_P_STRING(azure_settings, endpoint, NULL,
                  "blob service URL; default https://ACCOUNT.blob.core."
                  "windows.net; Azurite: http://127.0.0.1:10000/ACCOUNT"),
    KILN_P_NUMBER(azure_settings, block_size, 16384, 100 * AZURE_MIB,
                  4 * AZURE_MIB,
                  "bytes per staged block of a large output (Put Block); "
                  "each upload holds two blocks in memory",
                  .flags = KILN_PARAM_INTEGER),
    KILN_P_NUMBER(azure_settings, single_put_max, 0, 256 * AZURE_MIB,
                  8 * AZURE_MIB,
                  "outputs up to this many bytes (and never less than one "
                  "block) are sent in one Put Blob at commit",
                  .flags = KILN_PARAM_INTEGER),
    KILN_P_NUMBER(azure_settings, retries, 0, 10, 3,
                  "attempts after the first when the service is busy (5xx) "
                  "or the connection fails",
                  .flags = KILN_PARAM_INTEGER),
    KILN_P_NUMBER(azure_settings, connect_timeout, 0.1, 300, 10,
                  "seconds to wait for a TCP (and TLS) connection"),
    KILN_P_NUMBER(azure_settings, stall_timeout, 1, 3600, 30,
                  "seconds a transfer may move no byte before it fails (and "
                  "is retried)",
                  .flags = KILN_PARAM_INTEGER),
    KILN_P_STRING(azure_settings, proxy, NULL,
                  "an HTTP(S) proxy URL; proxy variables of the environment "
                  "are never used"),
    KILN_P_STRING(azure_settings, ca_file, NULL,
                  "a PEM file of certificate authorities to trust instead "
                  "of the system's"),
};

static const kiln_storage azure_storage = {
    .size = sizeof(kiln_storage),
    .name = "azure",
    .summary = "block blobs in an Azure storage container (Shared Key)",
    .settings_size = sizeof(azure_settings),
    .settings = azure_settings_spec,
    .n_settings = KILN_N_ELEMENTS(azure_settings_spec),
    .open = azure_open,
    .close = azure_close,
    .open_read = azure_open_read,
    .open_write = azure_open_write,
    .commit = azure_commit,
    .abort = azure_abort,
};

KILN_PLUGIN_DEFINE("storage-azure", KILN_VERSION_STRING,
                   "Azure Blob storage: streamed reads, block blob writes",
                   azure_init, azure_fini);

static int
azure_init(kiln_plugin *self, const kiln_host_api *api, kiln_error *err)
{
    int rc;

    azure_api = api;
    azure_self = self;
    /* Reference-counted: the host may have initialised libcurl too. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        return api->error_set(err, KILN_EIO,
                              "azure: cannot initialise libcurl");
    }
    rc = api->register_storage(self, &azure_storage, err);
    if (rc != KILN_OK) {
        curl_global_cleanup();
    }
    return rc;
}

static void
azure_fini(kiln_plugin *self)
{
    (void)self;
    curl_global_cleanup();
}

const char *
azure_quote(char out[AZURE_QUOTE_MAX], const char *s)
{
    return azure_api->quote(out, AZURE_QUOTE_MAX, s);
}

int
azure_blob_name(const char *path, char **name, kiln_error *err)
{
    char q[AZURE_QUOTE_MAX];
    size_t len;
    char *out;
    size_t n = 0;

    *name = NULL;
    if (path == NULL || path[0] == '\0') {
        return azure_api->error_set(err, KILN_EINVAL,
                                    "empty path (expected a blob path such "
                                    "as \"/in/a.jpg\")");
    }
    len = strlen(path);
    if (path[len - 1] == '/') {
        return azure_api->error_set(err, KILN_EINVAL,
                                    "path %s ends with \"/\" (expected a blob "
                                    "name after the last \"/\")",
                                    azure_quote(q, path));
    }
    for (const char *s = path; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;

        if (c < 0x20 || c == 0x7f) {
            return azure_api->error_set(err, KILN_EINVAL,
                                        "path %s holds a control character "
                                        "(expected printable text)",
                                        azure_quote(q, path));
        }
    }

    /* Resolve segment by segment into `out`, which never grows longer
     * than the path. */
    out = malloc(len + 1);
    if (out == NULL) {
        return azure_api->error_set(err, KILN_ENOMEM, "out of memory");
    }
    for (const char *s = path; *s != '\0';) {
        size_t k = strcspn(s, "/");

        if (k == 2 && s[0] == '.' && s[1] == '.') {
            if (n == 0) {
                free(out);
                return azure_api->error_set(err, KILN_EPERM,
                                            "path %s escapes the storage "
                                            "root (\"..\" above the top of "
                                            "the container)",
                                            azure_quote(q, path));
            }
            while (n > 0 && out[n - 1] != '/') {
                n--;
            }
            if (n > 0) {
                n--; /* the "/" before the dropped segment */
            }
        } else if (k > 0 && !(k == 1 && s[0] == '.')) {
            if (n > 0) {
                out[n++] = '/';
            }
            memcpy(out + n, s, k);
            n += k;
        }
        s += k;
        while (*s == '/') {
            s++;
        }
    }
    out[n] = '\0';
    if (n == 0) {
        free(out);
        return azure_api->error_set(err, KILN_EINVAL,
                                    "path %s names no blob (expected a blob "
                                    "path such as \"/in/a.jpg\")",
                                    azure_quote(q, path));
    }
    if (n > AZURE_MAX_NAME) {
        free(out);
        return azure_api->error_set(err, KILN_EINVAL,
                                    "path %s makes a blob name of %zu bytes "
                                    "(expected at most %d)",
                                    azure_quote(q, path), n, AZURE_MAX_NAME);
    }
    *name = out;
    return KILN_OK;
}

/* Checks the account name; the endpoint and the signature carry it. */
static int
azure_check_account(const char *a, kiln_error *err)
{
    char q[AZURE_QUOTE_MAX];
    size_t n = strlen(a);
    bool ok = n >= AZURE_ACCOUNT_MIN && n <= AZURE_ACCOUNT_MAX;

    for (size_t i = 0; ok && i < n; i++) {
        ok = (a[i] >= 'a' && a[i] <= 'z') || (a[i] >= '0' && a[i] <= '9');
    }
    if (!ok) {
        return azure_api->error_set(err, KILN_EINVAL,
                                    "setting \"account\": %s is not a storage "
                                    "account name (expected 3 to 24 "
                                    "lower-case letters and digits)",
                                    azure_quote(q, a));
    }
    return KILN_OK;
}

static int
azure_check_container(const char *c, kiln_error *err)
{
    char q[AZURE_QUOTE_MAX];
    size_t n = strlen(c);
    bool ok = n >= AZURE_CONTAINER_MIN && n <= AZURE_CONTAINER_MAX;

    if (strcmp(c, "$root") == 0 || strcmp(c, "$web") == 0) {
        return KILN_OK;
    }
    for (size_t i = 0; ok && i < n; i++) {
        bool alnum =
            (c[i] >= 'a' && c[i] <= 'z') || (c[i] >= '0' && c[i] <= '9');

        if (c[i] == '-') {
            ok = i > 0 && i + 1 < n && c[i - 1] != '-';
        } else {
            ok = alnum;
        }
    }
    if (!ok) {
        return azure_api->error_set(err, KILN_EINVAL,
                                    "setting \"container\": %s is not a "
                                    "container name (expected 3 to 63 "
                                    "lower-case letters, digits and single "
                                    "hyphens between them)",
                                    azure_quote(q, c));
    }
    return KILN_OK;
}

/* Sets st->endpoint, path_prefix and protocols from the setting (or the
 * account's public endpoint). */
static int
azure_set_endpoint(azure_state *st, const char *endpoint, kiln_error *err)
{
    char q[AZURE_QUOTE_MAX];
    CURLU *u = NULL;
    char *scheme = NULL;
    const char *rest;
    const char *slash;
    size_t len;
    int rc = KILN_OK;

    if (endpoint == NULL || endpoint[0] == '\0') {
        if (asprintf(&st->endpoint, "https://%s" AZURE_DEFAULT_HOST,
                     st->account) < 0) {
            st->endpoint = NULL;
            return azure_api->error_set(err, KILN_ENOMEM, "out of memory");
        }
        st->path_prefix = strdup("");
        st->protocols = "https";
        if (st->path_prefix == NULL) {
            return azure_api->error_set(err, KILN_ENOMEM, "out of memory");
        }
        return KILN_OK;
    }

    u = curl_url();
    if (u == NULL) {
        return azure_api->error_set(err, KILN_ENOMEM, "out of memory");
    }
    if (curl_url_set(u, CURLUPART_URL, endpoint, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) ||
        strchr(endpoint, '?') != NULL || strchr(endpoint, '#') != NULL ||
        strchr(endpoint, '@') != NULL) {
        rc = azure_api->error_set(err, KILN_EINVAL,
                                  "setting \"endpoint\": %s is not a blob "
                                  "service URL (expected http(s)://HOST[:PORT]"
                                  "[/PATH] without query, such as "
                                  "\"https://ACCOUNT.blob.core.windows.net\" "
                                  "or \"http://127.0.0.1:10000/ACCOUNT\")",
                                  azure_quote(q, endpoint));
        goto done;
    }
    st->protocols = strcmp(scheme, "https") == 0 ? "https" : "http";

    /* Keep the text as given (less final slashes): the signature covers
     * the path exactly as it is sent. */
    len = strlen(endpoint);
    while (len > 0 && endpoint[len - 1] == '/') {
        len--;
    }
    st->endpoint = strndup(endpoint, len);
    if (st->endpoint == NULL) {
        rc = azure_api->error_set(err, KILN_ENOMEM, "out of memory");
        goto done;
    }
    rest = strstr(st->endpoint, "://") + 3;
    slash = strchr(rest, '/');
    st->path_prefix = strdup(slash != NULL ? slash : "");
    if (st->path_prefix == NULL) {
        rc = azure_api->error_set(err, KILN_ENOMEM, "out of memory");
    }
done:
    curl_free(scheme);
    curl_url_cleanup(u);
    return rc;
}

static int
azure_open(kiln_plugin *self, const void *settings, void **state,
           kiln_error *err)
{
    (void)self; /* a backend that makes no host call outside init */
    const azure_settings *s = settings;
    azure_state *st;
    int rc;

    *state = NULL;
    rc = azure_check_account(s->account, err);
    if (rc == KILN_OK) {
        rc = azure_check_container(s->container, err);
    }
    if (rc != KILN_OK) {
        return rc;
    }

    st = calloc(1, sizeof *st);
    if (st == NULL) {
        return azure_api->error_set(err, KILN_ENOMEM, "out of memory");
    }
    if (pthread_mutex_init(&st->pool_lock, NULL) != 0) {
        free(st);
        return azure_api->error_set(err, KILN_ENOMEM, "cannot create a mutex");
    }
    if (pthread_mutex_init(&st->readers_lock, NULL) != 0) {
        pthread_mutex_destroy(&st->pool_lock);
        free(st);
        return azure_api->error_set(err, KILN_ENOMEM, "cannot create a mutex");
    }
    st->account = strdup(s->account);
    st->container = strdup(s->container);
    if (st->account == NULL || st->container == NULL) {
        rc = azure_api->error_set(err, KILN_ENOMEM, "out of memory");
        goto fail;
    }
    /* The message must not quote the key, not even a part of it. */
    if (azure_sk_decode_key(s->key, st->key, &st->key_len) != 0) {
        rc = azure_api->error_set(err, KILN_EINVAL,
                                  "setting \"key\": the account key is not "
                                  "valid base64 (expected the key of account "
                                  "\"%s\" as the portal or `az storage "
                                  "account keys list` shows it)",
                                  st->account);
        goto fail;
    }
    rc = azure_set_endpoint(st, s->endpoint, err);
    if (rc != KILN_OK) {
        goto fail;
    }
    if (s->ca_file != NULL && access(s->ca_file, R_OK) != 0) {
        char q[AZURE_QUOTE_MAX];

        rc = azure_api->error_set(err, KILN_EINVAL,
                                  "setting \"ca_file\": %s cannot be read "
                                  "(expected a readable PEM file)",
                                  azure_quote(q, s->ca_file));
        goto fail;
    }
    st->proxy = strdup(s->proxy != NULL ? s->proxy : "");
    st->ca_file = s->ca_file != NULL ? strdup(s->ca_file) : NULL;
    if (st->proxy == NULL || (s->ca_file != NULL && st->ca_file == NULL)) {
        rc = azure_api->error_set(err, KILN_ENOMEM, "out of memory");
        goto fail;
    }
    st->attempts = (int)s->retries + 1;
    st->connect_timeout_ms = (long)(s->connect_timeout * 1000.0);
    st->stall_timeout = s->stall_timeout;
    st->block_size = (size_t)s->block_size;
    st->single_put_max = (size_t)s->single_put_max;
    /* Below one block a Put Blob costs no more memory than staging. */
    if (st->single_put_max < st->block_size) {
        st->single_put_max = st->block_size;
    }
    *state = st;
    return KILN_OK;

fail:
    azure_close(st);
    return rc;
}

static void
azure_close(void *state)
{
    azure_state *st = state;

    if (st == NULL) {
        return;
    }
    azure_readers_close(st);
    azure_pool_clear(st);
    pthread_mutex_destroy(&st->readers_lock);
    pthread_mutex_destroy(&st->pool_lock);
    OPENSSL_cleanse(st->key, sizeof st->key);
    free(st->account);
    free(st->container);
    free(st->endpoint);
    free(st->path_prefix);
    free(st->proxy);
    free(st->ca_file);
    free(st);
}

static int
azure_open_read(void *state, const char *path, VipsSource **out,
                kiln_error *err)
{
    char *name;
    int rc;

    *out = NULL;
    rc = azure_blob_name(path, &name, err);
    if (rc != KILN_OK) {
        return rc;
    }
    rc = azure_source_new(state, name, out, err);
    free(name);
    return rc;
}

static int
azure_open_write(void *state, const char *path, VipsTarget **target,
                 void **handle, kiln_error *err)
{
    char *name;
    int rc;

    *target = NULL;
    *handle = NULL;
    rc = azure_blob_name(path, &name, err);
    if (rc != KILN_OK) {
        return rc;
    }
    rc = azure_target_new(state, name, target, handle, err);
    free(name);
    return rc;
}
