/*
 * Deployment configuration (docs/config.md): the embedded defaults, and a
 * JSON file parsed with every error collected under its JSON path, unknown
 * keys answered with "did you mean", and "${NAME}" strings replaced from
 * the environment so secrets need not sit in the file. Storage settings
 * are kept as JSON here and parsed by the backend's own spec table once
 * the plugins are loaded.
 */
#include "kiln.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "netguard.h"

#ifndef KILN_PLUGIN_DIR
#define KILN_PLUGIN_DIR "/usr/local/lib/kiln/plugins-2"
#endif
#ifndef KILN_SHIPPED_PLUGINS
#define KILN_SHIPPED_PLUGINS "ops-vips,storage-local"
#endif

typedef struct cfg_ctx {
    errlist *errs;
    kiln_config *c;
} cfg_ctx;

static void cfg_error(cfg_ctx *x, const char *path, const cJSON *v,
                      const char *fmt, ...) KILN_PRINTF(4, 5);

static void
cfg_error(cfg_ctx *x, const char *path, const cJSON *v, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    (void)v;
    errlist_vaddf(x->errs, path, NULL, -1, 0, fmt, ap);
    va_end(ap);
}

static void
cfg_join(char *buf, size_t size, const char *path, const char *key)
{
    if (path[0] == '\0') {
        snprintf(buf, size, "%s", key);
    } else {
        snprintf(buf, size, "%s.%s", path, key);
    }
}

/* Reports members of `obj` not in `known`, with a hint. */
static void
cfg_check_keys(cfg_ctx *x, const cJSON *obj, const char *path,
               const char *const *known, size_t n)
{
    const cJSON *m;
    cJSON_ArrayForEach(m, obj)
    {
        bool ok = false;
        for (size_t i = 0; i < n; i++) {
            if (strcmp(m->string, known[i]) == 0) {
                ok = true;
            }
        }
        if (!ok) {
            char p[300], hint[128];
            cfg_join(p, sizeof p, path, m->string);
            suggest_hint(m->string, known, n, hint, sizeof hint);
            cfg_error(x, p, m, "unknown key \"%s\"%s", m->string, hint);
        }
    }
}

/* Replaces ${NAME} with the environment's value; NULL (and an error) when a
 * variable is unset. The value is never printed: it may be a secret. */
static char *
cfg_expand(cfg_ctx *x, const char *path, const char *s)
{
    size_t cap = strlen(s) + 1, len = 0;
    char *out = malloc(cap);
    if (out == NULL) {
        return NULL;
    }
    for (const char *p = s; *p;) {
        const char *val = NULL;
        size_t skip = 1;
        char one[2] = {*p, 0};
        if (p[0] == '$' && p[1] == '{') {
            const char *end = strchr(p + 2, '}');
            if (end != NULL) {
                char name[256];
                snprintf(name, sizeof name, "%.*s", (int)(end - p - 2), p + 2);
                val = getenv(name);
                if (val == NULL) {
                    cfg_error(x, path, NULL,
                              "environment variable %s is not set", name);
                    free(out);
                    return NULL;
                }
                skip = (size_t)(end - p) + 1;
            }
        }
        if (val == NULL) {
            val = one;
        }
        size_t vl = strlen(val);
        if (len + vl + 1 > cap) {
            cap = (len + vl + 1) * 2;
            char *n = realloc(out, cap);
            if (n == NULL) {
                free(out);
                return NULL;
            }
            out = n;
        }
        memcpy(out + len, val, vl);
        len += vl;
        p += skip;
    }
    out[len] = '\0';
    return out;
}

static void
cfg_string(cfg_ctx *x, const cJSON *obj, const char *path, const char *key,
           char **out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    char p[300];
    cfg_join(p, sizeof p, path, key);
    if (v == NULL) {
        return;
    }
    if (!cJSON_IsString(v)) {
        cfg_error(x, p, v, "expected a string");
        return;
    }
    char *s = cfg_expand(x, p, v->valuestring);
    if (s != NULL) {
        free(*out);
        *out = s;
    }
}

static void
cfg_number(cfg_ctx *x, const cJSON *obj, const char *path, const char *key,
           double min, double max, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    char p[300];
    cfg_join(p, sizeof p, path, key);
    if (v == NULL) {
        return;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble < min || v->valuedouble > max) {
        char *t = cJSON_PrintUnformatted(v);
        cfg_error(x, p, v, "%s is not valid (expected a number %g..%g)",
                  t ? t : "value", min, max);
        free(t);
        return;
    }
    *out = v->valuedouble;
}

static void
cfg_int(cfg_ctx *x, const cJSON *obj, const char *path, const char *key,
        double min, double max, int64_t *out)
{
    double d = (double)*out;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    cfg_number(x, obj, path, key, min, max, &d);
    if (v != NULL && cJSON_IsNumber(v) && d != floor(d)) {
        char p[300];
        cfg_join(p, sizeof p, path, key);
        cfg_error(x, p, v, "%g is not valid (expected a whole number)", d);
        return;
    }
    *out = (int64_t)d;
}

static void
cfg_bool(cfg_ctx *x, const cJSON *obj, const char *path, const char *key,
         bool *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (v == NULL) {
        return;
    }
    if (!cJSON_IsBool(v)) {
        char p[300];
        cfg_join(p, sizeof p, path, key);
        cfg_error(x, p, v, "expected true or false");
        return;
    }
    *out = cJSON_IsTrue(v);
}

static void
cfg_free_strings(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i]);
    }
    free(v);
}

static void
cfg_strings(cfg_ctx *x, const cJSON *obj, const char *path, const char *key,
            char ***out, size_t *n_out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    char p[300];
    cfg_join(p, sizeof p, path, key);
    if (v == NULL) {
        return;
    }
    if (!cJSON_IsArray(v)) {
        cfg_error(x, p, v, "expected an array of strings");
        return;
    }
    size_t n = (size_t)cJSON_GetArraySize(v), k = 0;
    char **list = calloc(n + 1, sizeof *list);
    if (list == NULL) {
        return;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, v)
    {
        char ip[320];
        snprintf(ip, sizeof ip, "%s[%zu]", p, k);
        if (!cJSON_IsString(it)) {
            cfg_error(x, ip, it, "expected a string");
            continue;
        }
        char *s = cfg_expand(x, ip, it->valuestring);
        if (s != NULL) {
            list[k++] = s;
        }
    }
    cfg_free_strings(*out, *n_out);
    *out = list;
    *n_out = k;
}

static const cJSON *
cfg_object(cfg_ctx *x, const cJSON *obj, const char *path, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (v != NULL && !cJSON_IsObject(v)) {
        char p[300];
        cfg_join(p, sizeof p, path, key);
        cfg_error(x, p, v, "expected an object");
        return NULL;
    }
    return v;
}

/* "A.B.C.D:PORT" or "[IPV6]:PORT", numeric, the port 1..65535: what the
 * HTTP transport binds. No host names, so that the address bound never
 * depends on name resolution. */
static bool
cfg_listen_ok(const char *s)
{
    char host[INET6_ADDRSTRLEN + 1];
    unsigned char addr[sizeof(struct in6_addr)];
    const char *port;
    int family = AF_INET;
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (end == NULL || end[1] != ':' ||
            (size_t)(end - s - 1) >= sizeof host) {
            return false;
        }
        snprintf(host, sizeof host, "%.*s", (int)(end - s - 1), s + 1);
        port = end + 2;
        family = AF_INET6;
    } else {
        port = strrchr(s, ':');
        if (port == NULL || (size_t)(port - s) >= sizeof host) {
            return false;
        }
        snprintf(host, sizeof host, "%.*s", (int)(port - s), s);
        port++;
    }
    size_t n = strlen(port);
    long p = n >= 1 && n <= 5 && strspn(port, "0123456789") == n
                 ? strtol(port, NULL, 10)
                 : 0;
    return p >= 1 && p <= 65535 && inet_pton(family, host, addr) == 1;
}

#define CFG_LISTEN_EXPECTED                                                    \
    "expected IPV4:PORT or [IPV6]:PORT, e.g. 127.0.0.1:8080 or [::1]:8080"

int
config_set_listen(kiln_config *c, const char *listen, kiln_error *err)
{
    if (!cfg_listen_ok(listen)) {
        return err_set(err, KILN_EINVAL, "\"%.100s\" is not valid (%s)", listen,
                       CFG_LISTEN_EXPECTED);
    }
    char *copy = strdup(listen);
    if (copy == NULL) {
        return err_set(err, KILN_ENOMEM, "out of memory");
    }
    free(c->listen);
    c->listen = copy;
    return KILN_OK;
}

/* Where the embedded defaults keep `name` (the job store, local storage):
 * in the state directory systemd gives a unit with StateDirectory= (the
 * first, when it names several), else under var/ in the current
 * directory. */
static char *
cfg_state_path(const char *name)
{
    const char *dir = getenv("STATE_DIRECTORY");
    char path[4096];
    if (dir != NULL && dir[0] != '\0') {
        snprintf(path, sizeof path, "%.*s/%s", (int)strcspn(dir, ":"), dir,
                 name);
    } else {
        snprintf(path, sizeof path, "var/%s", name);
    }
    return strdup(path);
}

static const char *const cfg_limit_keys[] = {
    "max_pixels", "max_file_size", "max_process_time", "max_jobs", "max_body"};

static void
cfg_limits(cfg_ctx *x, const cJSON *obj, const char *path, kiln_limits *l)
{
    cfg_check_keys(x, obj, path, cfg_limit_keys, 5);
    int64_t jobs = l->max_jobs;
    cfg_int(x, obj, path, "max_pixels", 1, 1e12, &l->max_pixels);
    cfg_int(x, obj, path, "max_file_size", 1, 1e13, &l->max_file_size);
    cfg_number(x, obj, path, "max_process_time", 0.001, 86400 * 7,
               &l->max_process_time);
    cfg_int(x, obj, path, "max_jobs", 1, 100000, &jobs);
    cfg_int(x, obj, path, "max_body", 1, 1e10, &l->max_body);
    l->max_jobs = (int)jobs;
}

static void
cfg_limits_default(kiln_limits *l)
{
    l->max_pixels = 100000000;
    l->max_file_size = 104857600;
    l->max_process_time = 60;
    l->max_jobs = 50;
    l->max_body = 1048576;
}

static const char *const cfg_root_keys[] = {"listen",
                                            "workers",
                                            "shutdown_timeout",
                                            "kill_after",
                                            "max_interruptions",
                                            "optimize",
                                            "plugins",
                                            "jobstore",
                                            "limits",
                                            "rate_limit",
                                            "network",
                                            "services",
                                            "http",
                                            "log",
                                            "metrics"};

static const char *const cfg_http_keys[] = {
    "max_connections", "max_connections_per_address", "header_timeout",
    "body_timeout", "idle_timeout"};

/* The "http" object (the transport's connection limits). Each connection
 * holds a file descriptor, hence the caps' bound; idle_timeout is whole
 * seconds because libmicrohttpd takes it so. */
static void
cfg_http(cfg_ctx *x, const cJSON *obj, kiln_http_settings *h)
{
    int64_t max = h->max_connections, per = h->max_connections_per_address;
    int64_t idle = (int64_t)h->idle_timeout;

    cfg_check_keys(x, obj, "http", cfg_http_keys,
                   sizeof cfg_http_keys / sizeof cfg_http_keys[0]);
    cfg_int(x, obj, "http", "max_connections", 1, 100000, &max);
    cfg_int(x, obj, "http", "max_connections_per_address", 1, 100000, &per);
    cfg_number(x, obj, "http", "header_timeout", 0.1, 3600, &h->header_timeout);
    cfg_number(x, obj, "http", "body_timeout", 0.1, 86400, &h->body_timeout);
    cfg_int(x, obj, "http", "idle_timeout", 1, 86400, &idle);
    if (per > max) {
        cfg_error(x, "http.max_connections_per_address", NULL,
                  "%lld is above max_connections (%lld): one address could "
                  "never use them all",
                  (long long)per, (long long)max);
    }
    h->max_connections = (unsigned)max;
    h->max_connections_per_address = (unsigned)per;
    h->idle_timeout = (double)idle;
}

static const char *const cfg_service_keys[] = {
    "id",      "tokens",         "secret", "backend",
    "storage", "remote_sources", "limits", "vector_sources"};

/* "vector_sources": {"formats": ["svg", "pdf"], "max_cpu_time": s,
 * "max_memory": bytes}. */
static void
cfg_vector(cfg_ctx *x, const cJSON *obj, const char *path, config_vector *v)
{
    static const char *const keys[] = {"formats", "max_cpu_time", "max_memory"};
    cfg_check_keys(x, obj, path, keys, 3);
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(obj, "formats");
    char fp[100];
    snprintf(fp, sizeof fp, "%s.formats", path);
    if (!cJSON_IsArray(f)) {
        cfg_error(x, f != NULL ? fp : path, f, "%s",
                  f != NULL ? "expected an array of \"svg\" and \"pdf\""
                            : "missing required key \"formats\"");
    }
    const cJSON *it;
    int k = 0;
    cJSON_ArrayForEach(it, f)
    {
        char ip[120];
        snprintf(ip, sizeof ip, "%s[%d]", fp, k++);
        if (cJSON_IsString(it) && strcmp(it->valuestring, "svg") == 0) {
            v->svg = true;
        } else if (cJSON_IsString(it) && strcmp(it->valuestring, "pdf") == 0) {
            v->pdf = true;
        } else {
            cfg_error(x, ip, it, "expected \"svg\" or \"pdf\"");
        }
    }
    cfg_number(x, obj, path, "max_cpu_time", 0.1, 3600, &v->max_cpu_time);
    cfg_int(x, obj, path, "max_memory", 16 << 20, (int64_t)1 << 40,
            &v->max_memory);
}

static void
cfg_services(cfg_ctx *x, const cJSON *arr)
{
    kiln_config *c = x->c;
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) < 1) {
        cfg_error(x, "services", arr, "expected a non-empty array");
        return;
    }
    size_t n = (size_t)cJSON_GetArraySize(arr);
    c->services = calloc(n, sizeof *c->services);
    if (c->services == NULL) {
        return;
    }
    const cJSON *it;
    size_t i = 0;
    cJSON_ArrayForEach(it, arr)
    {
        char p[64];
        snprintf(p, sizeof p, "services[%zu]", i);
        config_service *s = &c->services[i++];
        c->n_services = i;
        s->backend = strdup("vips");
        if (!cJSON_IsObject(it)) {
            cfg_error(x, p, it, "expected an object");
            continue;
        }
        cfg_check_keys(x, it, p, cfg_service_keys, 8);
        int64_t id = -1;
        if (cJSON_GetObjectItemCaseSensitive(it, "id") == NULL) {
            cfg_error(x, p, it, "missing required key \"id\"");
        }
        cfg_int(x, it, p, "id", 0, INT_MAX, &id);
        s->id = (int)id;
        for (size_t k = 0; k + 1 < i; k++) {
            if (id >= 0 && c->services[k].id == s->id) {
                char ip[80];
                snprintf(ip, sizeof ip, "%s.id", p);
                cfg_error(x, ip, NULL, "service id %d is used twice", s->id);
            }
        }
        cfg_strings(x, it, p, "tokens", &s->tokens, &s->n_tokens);
        cfg_string(x, it, p, "secret", &s->secret);
        cfg_string(x, it, p, "backend", &s->backend);
        {
            /* Checked once the plugins are loaded (engine.c): a backend
             * is a plugin's. */
            char bp[160];
            snprintf(bp, sizeof bp, "%s.backend", p);
            s->backend_path = strdup(bp);
        }
        /* remote_sources: true (the http backend's defaults) or an object
         * of http settings for this service's URL sources. */
        const cJSON *rs =
            cJSON_GetObjectItemCaseSensitive(it, "remote_sources");
        if (cJSON_IsObject(rs)) {
            s->remote_sources = true;
            s->remote_settings = cJSON_Duplicate(rs, true);
            char rp[80];
            snprintf(rp, sizeof rp, "%s.remote_sources", p);
            s->remote_path = strdup(rp);
        } else if (rs != NULL && !cJSON_IsBool(rs)) {
            char rp[80];
            snprintf(rp, sizeof rp, "%s.remote_sources", p);
            cfg_error(x, rp, rs,
                      "expected true, false or an object of http settings "
                      "(allow, timeout, max_size, max_redirects)");
        } else {
            cfg_bool(x, it, p, "remote_sources", &s->remote_sources);
        }
        s->vector.max_cpu_time = 10;
        s->vector.max_memory = (int64_t)1 << 30;
        const cJSON *vec = cfg_object(x, it, p, "vector_sources");
        if (vec != NULL) {
            char vp[80];
            snprintf(vp, sizeof vp, "%s.vector_sources", p);
            cfg_vector(x, vec, vp, &s->vector);
        }
        const cJSON *lim = cfg_object(x, it, p, "limits");
        s->limits = c->limits;
        if (lim != NULL) {
            char lp[80];
            snprintf(lp, sizeof lp, "%s.limits", p);
            s->has_limits = true;
            cfg_limits(x, lim, lp, &s->limits);
        }
        const cJSON *st = cfg_object(x, it, p, "storage");
        char sp[80];
        snprintf(sp, sizeof sp, "%s.storage", p);
        s->storage_path = strdup(sp);
        if (st == NULL) {
            cfg_error(x, p, it, "missing required key \"storage\"");
            continue;
        }
        const cJSON *plugin = cJSON_GetObjectItemCaseSensitive(st, "plugin");
        if (!cJSON_IsString(plugin)) {
            char pp[100];
            snprintf(pp, sizeof pp, "%s.plugin", sp);
            cfg_error(x, pp, plugin,
                      "expected the name of a storage backend, e.g. "
                      "\"local\"");
            continue;
        }
        s->storage_plugin = strdup(plugin->valuestring);
        /* Expand ${ENV} in every string setting now, so the backend sees
         * final values and no secret needs expanding later. */
        s->storage = cJSON_Duplicate(st, true);
        cJSON *m;
        cJSON_ArrayForEach(m, s->storage)
        {
            if (cJSON_IsString(m)) {
                char mp[200];
                snprintf(mp, sizeof mp, "%s.%s", sp, m->string);
                char *v = cfg_expand(x, mp, m->valuestring);
                if (v != NULL) {
                    cJSON_SetValuestring(m, v);
                    free(v);
                }
            }
        }
    }
}

static kiln_config *
cfg_new_defaults(void)
{
    kiln_config *c = calloc(1, sizeof *c);
    if (c == NULL) {
        return NULL;
    }
    c->listen = strdup("127.0.0.1:8080");
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    c->workers = n > 0 ? (int)n : 1;
    c->shutdown_timeout = 30;
    c->kill_after = 10;
    c->max_interruptions = 3;
    c->opt_level = OPT_LEVEL_DEFAULT;
    /* Plugins: next to the binary in a build tree (build/kiln and
     * build/plugins), or beside an installed one (bin/kiln and
     * lib/kiln/plugins-2, so an install can move), else the directory
     * given at build time. */
    char exe[4096];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 40);
    c->plugin_dirs = calloc(3, sizeof *c->plugin_dirs);
    if (len > 0 && c->plugin_dirs != NULL) {
        exe[len] = '\0';
        char *slash = strrchr(exe, '/');
        static const char *const rel[] = {"/plugins", "/../lib/kiln/plugins-2"};
        for (size_t i = 0; slash != NULL && i < 2; i++) {
            strcpy(slash, rel[i]);
            if (access(exe, F_OK) == 0) {
                c->plugin_dirs[c->n_plugin_dirs++] = strdup(exe);
                break;
            }
        }
    }
    if (c->plugin_dirs != NULL) {
        c->plugin_dirs[c->n_plugin_dirs++] = strdup(KILN_PLUGIN_DIR);
    }
    const char *shipped = KILN_SHIPPED_PLUGINS;
    c->enable = calloc(16, sizeof *c->enable);
    for (const char *p = shipped; c->enable != NULL && *p;) {
        const char *comma = strchr(p, ',');
        size_t l = comma ? (size_t)(comma - p) : strlen(p);
        if (l > 0 && c->n_enable < 15) {
            c->enable[c->n_enable++] = strndup(p, l);
        }
        p += l + (comma ? 1 : 0);
    }
    c->jobstore_driver = strdup("sqlite");
    c->jobstore_path = cfg_state_path("kiln.db");
    c->jobstore_retention_days = 30;
    cfg_limits_default(&c->limits);
    c->rate_per_second = 50;
    c->rate_burst = 100;
    c->failed_auth_per_second = 1;
    c->failed_auth_burst = 20;
    c->log_level = KILN_LOG_INFO;
    c->http.max_connections = 1000;
    c->http.max_connections_per_address = 64;
    c->http.header_timeout = 10;
    c->http.body_timeout = 60;
    c->http.idle_timeout = 30;
    return c;
}

int
config_default(kiln_config **out, kiln_error *err)
{
    kiln_config *c = cfg_new_defaults();
    if (c == NULL) {
        return err_set(err, KILN_ENOMEM, "out of memory");
    }
    c->services = calloc(1, sizeof *c->services);
    if (c->services == NULL) {
        config_free(c);
        return err_set(err, KILN_ENOMEM, "out of memory");
    }
    c->n_services = 1;
    config_service *s = &c->services[0];
    s->id = 1;
    s->backend = strdup("vips");
    s->limits = c->limits;
    /* A development token: from KILN_TOKEN if set, else random, printed by
     * `kiln serve` at start-up (config.md). */
    char tok[48];
    const char *env = getenv("KILN_TOKEN");
    if (env != NULL && env[0] != '\0') {
        snprintf(tok, sizeof tok, "%s", env);
    } else {
        unsigned char raw[24];
        static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmn"
                                  "opqrstuvwxyz0123456789-_";
        if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) {
            config_free(c);
            return err_set(err, KILN_EIO, "getrandom: %s", strerror(errno));
        }
        for (size_t i = 0; i < 24; i++) {
            tok[i] = b64[raw[i] & 63];
        }
        tok[24] = '\0';
        c->dev_token = true;
    }
    s->tokens = calloc(2, sizeof *s->tokens);
    if (s->tokens != NULL) {
        s->tokens[0] = strdup(tok);
        s->n_tokens = 1;
    }
    s->storage_plugin = strdup("local");
    s->storage_path = strdup("services[0].storage");
    s->storage = cJSON_CreateObject();
    cJSON_AddStringToObject(s->storage, "plugin", "local");
    char *root = cfg_state_path("storage");
    cJSON_AddStringToObject(s->storage, "root", root != NULL ? root : "");
    free(root);
    *out = c;
    return KILN_OK;
}

int
config_load_text(const char *text, size_t len, kiln_config **out, errlist *errs)
{
    cJSON *root = NULL;
    kiln_error e;
    err_clear(&e);
    if (dsl_parse_json(text, len, &root, &e) != KILN_OK) {
        errlist_add(errs, &e, NULL);
        return KILN_EINVAL;
    }
    kiln_config *c = cfg_new_defaults();
    if (c == NULL) {
        cJSON_Delete(root);
        return KILN_ENOMEM;
    }
    cfg_ctx x = {errs, c};
    size_t before = errs->n;
    if (!cJSON_IsObject(root)) {
        cfg_error(&x, "", root, "expected a JSON object");
        goto done;
    }
    cfg_check_keys(&x, root, "", cfg_root_keys,
                   sizeof cfg_root_keys / sizeof cfg_root_keys[0]);
    cfg_string(&x, root, "", "listen", &c->listen);
    if (c->listen != NULL && !cfg_listen_ok(c->listen)) {
        cfg_error(&x, "listen", NULL, "\"%.100s\" is not valid (%s)", c->listen,
                  CFG_LISTEN_EXPECTED);
    }
    int64_t workers = c->workers;
    cfg_int(&x, root, "", "workers", 1, 1024, &workers);
    c->workers = (int)workers;
    cfg_number(&x, root, "", "shutdown_timeout", 0, 86400,
               &c->shutdown_timeout);
    cfg_number(&x, root, "", "kill_after", 0.1, 86400, &c->kill_after);
    int64_t interruptions = c->max_interruptions;
    cfg_int(&x, root, "", "max_interruptions", 1, 1000, &interruptions);
    c->max_interruptions = (int)interruptions;
    int64_t level = c->opt_level;
    cfg_int(&x, root, "", "optimize", 0, OPT_LEVEL_MAX, &level);
    c->opt_level = (int)level;
    const cJSON *pl = cfg_object(&x, root, "", "plugins");
    if (pl != NULL) {
        static const char *const keys[] = {"dirs", "enable", "settings"};
        cfg_check_keys(&x, pl, "plugins", keys, 3);
        const cJSON *ps = cJSON_GetObjectItemCaseSensitive(pl, "settings");
        if (ps != NULL && !cJSON_IsObject(ps)) {
            cfg_error(&x, "plugins.settings", ps,
                      "expected an object of service settings by name, "
                      "e.g. {\"api-http\": {\"threads\": 8}}");
        } else if (ps != NULL) {
            const cJSON *it;
            cJSON_ArrayForEach(it, ps)
            {
                if (!cJSON_IsObject(it)) {
                    char p[300];
                    snprintf(p, sizeof p, "plugins.settings.%s", it->string);
                    cfg_error(&x, p, it, "expected an object of settings");
                }
            }
            c->plugin_settings = cJSON_Duplicate(ps, true);
        }
        cfg_strings(&x, pl, "plugins", "dirs", &c->plugin_dirs,
                    &c->n_plugin_dirs);
        cfg_strings(&x, pl, "plugins", "enable", &c->enable, &c->n_enable);
    }
    const cJSON *js = cfg_object(&x, root, "", "jobstore");
    if (js != NULL) {
        static const char *const keys[] = {"driver", "path", "dsn",
                                           "retention_days"};
        cfg_check_keys(&x, js, "jobstore", keys, 4);
        cfg_string(&x, js, "jobstore", "driver", &c->jobstore_driver);
        cfg_string(&x, js, "jobstore", "path", &c->jobstore_path);
        cfg_string(&x, js, "jobstore", "dsn", &c->jobstore_dsn);
        int64_t days = c->jobstore_retention_days;
        cfg_int(&x, js, "jobstore", "retention_days", 0, 36500, &days);
        c->jobstore_retention_days = (int)days;
        if (c->jobstore_driver != NULL &&
            strcmp(c->jobstore_driver, "sqlite") != 0 &&
            strcmp(c->jobstore_driver, "postgres") != 0) {
            cfg_error(&x, "jobstore.driver", NULL,
                      "unknown driver \"%s\" (expected sqlite or postgres)",
                      c->jobstore_driver);
        }
    }
    const cJSON *lim = cfg_object(&x, root, "", "limits");
    if (lim != NULL) {
        cfg_limits(&x, lim, "limits", &c->limits);
    }
    const cJSON *rl = cfg_object(&x, root, "", "rate_limit");
    if (rl != NULL) {
        static const char *const keys[] = {"per_second", "burst",
                                           "failed_auth_per_second",
                                           "failed_auth_burst", "scope"};
        cfg_check_keys(&x, rl, "rate_limit", keys, 5);
        int64_t burst = c->rate_burst;
        int64_t failed_burst = c->failed_auth_burst;
        cfg_number(&x, rl, "rate_limit", "per_second", 0.001, 1e9,
                   &c->rate_per_second);
        cfg_int(&x, rl, "rate_limit", "burst", 1, 1e9, &burst);
        cfg_number(&x, rl, "rate_limit", "failed_auth_per_second", 0.001, 1e9,
                   &c->failed_auth_per_second);
        cfg_int(&x, rl, "rate_limit", "failed_auth_burst", 1, 1e9,
                &failed_burst);
        c->rate_burst = (int)burst;
        c->failed_auth_burst = (int)failed_burst;
        char *scope = NULL;
        cfg_string(&x, rl, "rate_limit", "scope", &scope);
        if (scope != NULL && strcmp(scope, "host") == 0) {
            c->rate_per_host = true;
        } else if (scope != NULL && strcmp(scope, "cluster") != 0) {
            cfg_error(&x, "rate_limit.scope", NULL,
                      "unknown scope \"%s\" (expected cluster or host)", scope);
        }
        free(scope);
    }
    const cJSON *mt = cfg_object(&x, root, "", "metrics");
    if (mt != NULL) {
        static const char *const keys[] = {"listen"};
        cfg_check_keys(&x, mt, "metrics", keys, 1);
        cfg_string(&x, mt, "metrics", "listen", &c->metrics_listen);
        if (c->metrics_listen != NULL && !cfg_listen_ok(c->metrics_listen)) {
            cfg_error(&x, "metrics.listen", NULL,
                      "\"%s\" is not an address to listen on (expected "
                      "IPV4:PORT or [IPV6]:PORT, e.g. 127.0.0.1:9100)",
                      c->metrics_listen);
        }
    }
    const cJSON *lg = cfg_object(&x, root, "", "log");
    if (lg != NULL) {
        static const char *const keys[] = {"format", "level"};
        cfg_check_keys(&x, lg, "log", keys, 2);
        char *format = NULL, *level = NULL;
        cfg_string(&x, lg, "log", "format", &format);
        cfg_string(&x, lg, "log", "level", &level);
        if (format != NULL && strcmp(format, "json") == 0) {
            c->log_json = true;
        } else if (format != NULL && strcmp(format, "text") != 0) {
            cfg_error(&x, "log.format", NULL,
                      "unknown format \"%s\" (expected text or json)", format);
        }
        if (level != NULL) {
            int l = log_level_parse(level);
            if (l < 0) {
                cfg_error(&x, "log.level", NULL,
                          "unknown level \"%s\" (expected error, warn, info "
                          "or debug)",
                          level);
            } else {
                c->log_level = l;
            }
        }
        free(format);
        free(level);
    }
    const cJSON *http = cfg_object(&x, root, "", "http");
    if (http != NULL) {
        cfg_http(&x, http, &c->http);
    }
    const cJSON *net = cfg_object(&x, root, "", "network");
    if (net != NULL) {
        static const char *const keys[] = {"allow"};
        cfg_check_keys(&x, net, "network", keys, 1);
        cfg_strings(&x, net, "network", "allow", &c->network_allow,
                    &c->n_network_allow);
        /* Parsed here only to report a bad range with its path at load;
         * the engine keeps its own parsed copy. */
        netguard_allow probe = {0};
        kiln_error ne;
        err_clear(&ne);
        if (netguard_allow_parse((const char *const *)c->network_allow,
                                 c->n_network_allow, &probe, &ne) != KILN_OK) {
            cfg_error(&x, ne.path, NULL, "%s", ne.message);
        }
        netguard_allow_free(&probe);
    }
    const cJSON *svcs = cJSON_GetObjectItemCaseSensitive(root, "services");
    if (svcs == NULL) {
        cfg_error(&x, "services", NULL, "missing required key \"services\"");
    } else {
        cfg_services(&x, svcs);
    }
done:
    cJSON_Delete(root);
    if (errs->n > before) {
        config_free(c);
        return KILN_EINVAL;
    }
    *out = c;
    return KILN_OK;
}

int
config_load_file(const char *path, kiln_config **out, errlist *errs)
{
    FILE *f = fopen(path, "rb");
    kiln_error e;
    err_clear(&e);
    if (f == NULL) {
        err_set(&e, KILN_EIO, "cannot open configuration %s: %s", path,
                strerror(errno));
        errlist_add(errs, &e, NULL);
        return KILN_EIO;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 > cap) {
            cap = (cap + 4096) * 2;
            char *n = realloc(buf, cap);
            if (n == NULL) {
                free(buf);
                fclose(f);
                return KILN_ENOMEM;
            }
            buf = n;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            break;
        }
    }
    fclose(f);
    int rc = config_load_text(buf, len, out, errs);
    free(buf);
    return rc;
}

int
config_set_storage_root(kiln_config *c, const char *root, kiln_error *err)
{
    for (size_t i = 0; i < c->n_services; i++) {
        config_service *s = &c->services[i];
        cJSON_Delete(s->storage);
        s->storage = cJSON_CreateObject();
        if (s->storage == NULL) {
            return err_set(err, KILN_ENOMEM, "out of memory");
        }
        cJSON_AddStringToObject(s->storage, "plugin", "local");
        cJSON_AddStringToObject(s->storage, "root", root);
        free(s->storage_plugin);
        s->storage_plugin = strdup("local");
    }
    return KILN_OK;
}

void
config_set_backend(kiln_config *c, const char *backend)
{
    /* The plugin of a backend other than the built-in "vips", enabled when the
     * configuration does not enable it (the defaults do not). */
    char name[96];
    snprintf(name, sizeof name, "backend-%s", backend);
    bool enabled = strcmp(backend, "vips") == 0;
    for (size_t i = 0; i < c->n_enable && !enabled; i++) {
        enabled = strcmp(c->enable[i], name) == 0;
    }
    char **more =
        enabled ? NULL : realloc(c->enable, (c->n_enable + 2) * sizeof *more);
    if (more != NULL) {
        c->enable = more;
        c->enable[c->n_enable++] = strdup(name);
        c->enable[c->n_enable] = NULL;
    }
    for (size_t i = 0; i < c->n_services; i++) {
        free(c->services[i].backend);
        c->services[i].backend = strdup(backend);
        free(c->services[i].backend_path);
        c->services[i].backend_path = strdup("--backend");
    }
}

const config_service *
config_find_service(const kiln_config *c, int id)
{
    for (size_t i = 0; i < c->n_services; i++) {
        if (c->services[i].id == id) {
            return &c->services[i];
        }
    }
    return NULL;
}

void
config_free(kiln_config *c)
{
    if (c == NULL) {
        return;
    }
    free(c->listen);
    free(c->metrics_listen);
    cfg_free_strings(c->plugin_dirs, c->n_plugin_dirs);
    cfg_free_strings(c->enable, c->n_enable);
    cJSON_Delete(c->plugin_settings);
    free(c->jobstore_driver);
    free(c->jobstore_path);
    free(c->jobstore_dsn);
    cfg_free_strings(c->network_allow, c->n_network_allow);
    for (size_t i = 0; i < c->n_services; i++) {
        config_service *s = &c->services[i];
        cfg_free_strings(s->tokens, s->n_tokens);
        free(s->secret);
        free(s->backend);
        free(s->backend_path);
        free(s->storage_plugin);
        free(s->storage_path);
        cJSON_Delete(s->storage);
        cJSON_Delete(s->remote_settings);
        free(s->remote_path);
    }
    free(c->services);
    free(c);
}
