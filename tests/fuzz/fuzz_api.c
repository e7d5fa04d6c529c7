/*
 * Fuzzes the HTTP API without sockets: server_call (server/api.c) with the
 * routing, bearer tokens, validation (the compiler), Idempotency-Key,
 * retry, dynamic processes (jobs appended, PATCH), status and metrics,
 * against a real SQLite job store and local storage in a scratch
 * directory. Every call must end in a reply with an HTTP status.
 *
 * Input: up to API_MAX_CALLS calls, separated by a line "---". A call is
 *   line 1  the method                       (GET, POST, PATCH, ...)
 *   line 2  the path, with a query after '?'  (/request, /processes?limit=2)
 *   line 3  the Authorization header          (empty line: none)
 *   line 4  the Idempotency-Key header        (empty line: none)
 *   rest    the body                          (none when absent)
 * "{id}" in a path or body stands for the process id an earlier call of
 * the same input was answered with, so status, retry, jobs and PATCH can
 * reach a real process. The tokens are in api_config below (and in the
 * seed corpus): "Bearer fuzz-token-one" uses service 1.
 *
 * The engine is built once: the plugins ops-vips and storage-local, the
 * job store in the scratch directory (renewed every API_STORE_CALLS calls
 * so it stays small) under a server with a rate limiter that never
 * refuses and no workers (server_new without server_start): running
 * processes is not what this harness is for. Host
 * names resolve without the network (getaddrinfo below). With
 * KILN_FUZZ_VERBOSE set, every call and its answer is printed.
 */
#include "fuzz_common.h"

#include <dlfcn.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../server/server.h"

#define API_MAX_CALLS 4
#define API_STORE_CALLS 4096

static kiln_engine *api_engine;
static kiln_server *api_server;
static char api_store_path[700];
static unsigned long api_n_calls;
static bool api_verbose; /* KILN_FUZZ_VERBOSE: print every call's answer */

/* Host names resolve without the network, the same way every time:
 * numeric addresses as themselves, "localhost" and names under
 * "internal" to private addresses, every other name to a public
 * documentation address. Defined here, it takes the place of the C
 * library's for the whole harness (the network guard's and libcurl's
 * look-ups). */
int
getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
            struct addrinfo **res)
{
    typedef int (*gai_fn)(const char *, const char *, const struct addrinfo *,
                          struct addrinfo **);
    static gai_fn real;
    if (real == NULL) {
        real = (gai_fn)dlsym(RTLD_NEXT, "getaddrinfo");
        if (real == NULL) {
            return EAI_FAIL;
        }
    }
    struct addrinfo h;
    memset(&h, 0, sizeof h);
    if (hints != NULL) {
        h = *hints;
    }
    h.ai_flags |= AI_NUMERICHOST;
    if (node == NULL) {
        return real(node, service, &h, res);
    }
    if (real(node, service, &h, res) == 0) {
        return 0;
    }
    size_t n = strlen(node);
    const char *as = "93.184.216.34";
    if (strcasecmp(node, "localhost") == 0) {
        as = "127.0.0.1";
    } else if (n >= 8 && strcasecmp(node + n - 8, "internal") == 0) {
        as = "10.1.2.3";
    } else if (strchr(node, '.') == NULL) {
        return EAI_NONAME;
    }
    return real(as, service, &h, res);
}

static void
api_open_store(void)
{
    kiln_error err;
    err_clear(&err);
    jobstore *js = NULL;
    if (jobstore_open("sqlite", api_store_path, &js, &err) != KILN_OK) {
        fuzz_fail("cannot open the job store %s: %s", api_store_path,
                  err.message);
    }
    if (server_new(api_engine, js, &api_server, &err) != KILN_OK) {
        fuzz_fail("cannot start the server: %s", err.message);
    }
}

/* A fresh store: the old one's processes are gone with it. */
static void
api_renew_store(void)
{
    jobstore *js = api_server->store;
    server_free(api_server);
    api_server = NULL;
    jobstore_close(js);
    static const char *const ext[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < 4; i++) {
        char p[800];
        snprintf(p, sizeof p, "%s%s", api_store_path, ext[i]);
        unlink(p);
    }
    api_open_store();
}

static void
api_stop(void)
{
    jobstore *js = api_server->store;
    server_free(api_server);
    api_server = NULL;
    jobstore_close(js);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_vips_init();
    api_verbose = getenv("KILN_FUZZ_VERBOSE") != NULL;
    const char *dir = fuzz_scratch_dir();
    char root[600];
    snprintf(root, sizeof root, "%s/storage", dir);
    char in[700];
    snprintf(in, sizeof in, "%s/in", root);
    if (mkdir(root, 0755) != 0 || mkdir(in, 0755) != 0) {
        fuzz_fail("cannot make %s", in);
    }
    char config[8000];
    snprintf(
        config, sizeof config,
        "{\"plugins\": {\"dirs\": [\"%s\"],"
        " \"enable\": [\"ops-vips\", \"storage-local\"]},"
        " \"jobstore\": {\"driver\": \"sqlite\", \"path\": \"%s/kiln.db\"},"
        " \"limits\": {\"max_jobs\": 8, \"max_pixels\": 50000000},"
        " \"rate_limit\": {\"per_second\": 1000000000,"
        " \"burst\": 1000000000},"
        " \"network\": {\"allow\": [\"10.0.0.0/8\"]},"
        " \"services\": ["
        "{\"id\": 1, \"tokens\": [\"fuzz-token-one\", \"fuzz-shared\"],"
        " \"storage\": {\"plugin\": \"local\", \"root\": \"%s\"}},"
        "{\"id\": 2, \"tokens\": [\"fuzz-token-two\", \"fuzz-shared\"],"
        " \"remote_sources\": true, \"limits\": {\"max_jobs\": 2},"
        " \"storage\": {\"plugin\": \"local\", \"root\": \"%s\"}}]}",
        fuzz_plugin_dir(), dir, root, root);
    api_engine = fuzz_engine_new(config, true);
    snprintf(api_store_path, sizeof api_store_path, "%s/kiln.db", dir);
    api_open_store();
    atexit(api_stop); /* runs before the scratch directory goes */
    return 0;
}

/* A copy of [s, s + n) with every "{id}" replaced by id, NUL-terminated;
 * its length in *len_out. */
static char *
api_subst(const char *s, size_t n, const char *id, size_t *len_out)
{
    size_t idl = strlen(id), cap = n + 1, len = 0;
    for (size_t i = 0; i + 4 <= n; i++) {
        if (memcmp(s + i, "{id}", 4) == 0) {
            cap += idl;
        }
    }
    char *out = malloc(cap);
    if (out == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < n;) {
        if (i + 4 <= n && memcmp(s + i, "{id}", 4) == 0) {
            memcpy(out + len, id, idl);
            len += idl;
            i += 4;
        } else {
            out[len++] = s[i++];
        }
    }
    out[len] = '\0';
    *len_out = len;
    return out;
}

/* The next line of [*p, end): a NUL-terminated copy, or NULL when the
 * line is empty or absent (a header not sent). */
static char *
api_line(const char **p, const char *end, const char *id)
{
    if (*p >= end) {
        return NULL;
    }
    const char *nl = memchr(*p, '\n', (size_t)(end - *p));
    const char *stop = nl != NULL ? nl : end;
    size_t len = 0;
    char *line =
        stop > *p ? api_subst(*p, (size_t)(stop - *p), id, &len) : NULL;
    *p = nl != NULL ? nl + 1 : end;
    return line;
}

/* Runs one call from [s, end); a process id in its answer goes to id. */
static void
api_one(const char *s, const char *end, char id[JOBSTORE_ID_LEN + 1])
{
    const char *p = s;
    char *method = api_line(&p, end, id);
    char *path = api_line(&p, end, id);
    char *auth = api_line(&p, end, id);
    char *idem = api_line(&p, end, id);
    size_t body_len = 0;
    /* Like the api-http transport: a NUL after the body's bytes. */
    char *body =
        p < end ? api_subst(p, (size_t)(end - p), id, &body_len) : NULL;
    kiln_call call = {sizeof(kiln_call), method, path, auth, idem, body,
                      body_len, NULL, NULL};
    /* The transport splits the query off the path (api-http). */
    char *question = path != NULL ? strchr(path, '?') : NULL;
    if (question != NULL) {
        *question = '\0';
        call.query = question + 1;
    }
    kiln_reply reply;
    memset(&reply, 0xa5, sizeof reply);
    server_call(api_server, &call, NULL, &reply);
    if (reply.status < 100 || reply.status > 599 ||
        reply.content_type == NULL ||
        (reply.body == NULL && reply.body_len != 0)) {
        fuzz_fail("server_call left a reply without a status, a type or a "
                  "body (status %d)",
                  reply.status);
    }
    if (api_verbose) {
        fprintf(stderr, "%s %s -> %d %.*s\n", method ? method : "(none)",
                path ? path : "(none)", reply.status, (int)reply.body_len,
                reply.body != NULL ? reply.body : "");
    }
    if (reply.status == 200 && reply.body != NULL) {
        cJSON *o = cJSON_ParseWithLength(reply.body, reply.body_len);
        const cJSON *pid = cJSON_GetObjectItemCaseSensitive(o, "process_id");
        if (cJSON_IsString(pid) &&
            strlen(pid->valuestring) <= JOBSTORE_ID_LEN) {
            strcpy(id, pid->valuestring);
        }
        cJSON_Delete(o);
    }
    cJSON_free(reply.body);
    free(method);
    free(path);
    free(auth);
    free(idem);
    free(body);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data, *end = s + size;
    char id[JOBSTORE_ID_LEN + 1] = "none";
    for (int n = 0; n < API_MAX_CALLS && s <= end; n++) {
        const char *sep = memmem(s, (size_t)(end - s), "\n---\n", 5);
        const char *stop = sep != NULL ? sep : end;
        api_one(s, stop, id);
        if (++api_n_calls % API_STORE_CALLS == 0) {
            api_renew_store();
        }
        if (sep == NULL) {
            break;
        }
        s = sep + 5;
    }
    return 0;
}
