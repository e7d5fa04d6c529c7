/*
 * The plugin loader: finds enabled plugins in the configured directories,
 * checks each file and its descriptor before running any of its code, and
 * runs init with the host API table. A refusal names the numbers that
 * disagree; a failing init is undone (its registrations removed) and the
 * object closed. Plugins are unloaded only when the engine is freed, so
 * none goes away while a job runs.
 */
#include "kiln.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "netguard.h"

static int
loader_register_op(kiln_plugin *self, const kiln_op *op, kiln_error *err)
{
    if (self == NULL || !self->in_init) {
        return err_set(err, KILN_EINVAL,
                       "register_op is only valid during init");
    }
    return registry_add_op(&self->engine->reg, self, op, err);
}

static int
loader_register_op_impl(kiln_plugin *self, const kiln_op_impl *impl,
                        kiln_error *err)
{
    if (self == NULL || !self->in_init) {
        return err_set(err, KILN_EINVAL,
                       "register_op_impl is only valid during init");
    }
    return registry_add_op_impl(&self->engine->reg, self, impl, err);
}

static int
loader_register_storage(kiln_plugin *self, const kiln_storage *st,
                        kiln_error *err)
{
    if (self == NULL || !self->in_init) {
        return err_set(err, KILN_EINVAL,
                       "register_storage is only valid during init");
    }
    return registry_add_storage(&self->engine->reg, self, st, err);
}

static int
loader_register_service(kiln_plugin *self, const kiln_service *svc,
                        kiln_error *err)
{
    if (self == NULL || !self->in_init) {
        return err_set(err, KILN_EINVAL,
                       "register_service is only valid during init");
    }
    return registry_add_service(&self->engine->reg, self, svc, err);
}

static int
loader_register_backend(kiln_plugin *self, const kiln_backend *b,
                        kiln_error *err)
{
    if (self == NULL || !self->in_init) {
        return err_set(err, KILN_EINVAL,
                       "register_backend is only valid during init");
    }
    return registry_add_backend(&self->engine->reg, self, b, err);
}

static void
loader_log(kiln_plugin *self, kiln_log_level level, const char *fmt, ...)
{
    /* The server's log (base/log.c): a plugin's line is an event of its
     * own, in the configured format. */
    log_field who = LOG_S("plugin", self != NULL ? self->name : "?");
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(level, "plugin", &who, fmt, ap);
    va_end(ap);
}

static const char *
loader_config_listen(kiln_engine *e)
{
    return e->config->listen;
}

static size_t
loader_config_max_body(kiln_engine *e)
{
    return (size_t)e->config->limits.max_body;
}

/* Copies no more than the plugin's struct holds: one built against 1.3
 * passes a smaller struct than a later host knows. */
static void
loader_config_http(kiln_engine *e, kiln_http_settings *out, size_t size)
{
    memcpy(out, &e->config->http,
           size < sizeof e->config->http ? size : sizeof e->config->http);
}

/* The list of the engine that loaded `self` (NULL: public addresses only). */
static const netguard_allow *
loader_allow(const kiln_plugin *self)
{
    return self != NULL && self->engine != NULL ? self->engine->net_allow
                                                : NULL;
}

static int
loader_net_check_url(kiln_plugin *self, const char *what, const char *url,
                     kiln_net_target *out, kiln_error *err)
{
    netguard_target t;
    /* Only what the plugin's struct holds (its size). */
    if (out == NULL || out->size < sizeof *out) {
        return err_set(err, KILN_EABI,
                       "net_check_url: kiln_net_target of %zu bytes (host "
                       "knows %zu; set .size = sizeof(kiln_net_target))",
                       out != NULL ? out->size : 0, sizeof *out);
    }
    size_t size = out->size;
    memset(out, 0, sizeof *out);
    out->size = size;
    int rc = netguard_check_url(what, url, loader_allow(self), &t, err);
    if (rc == KILN_OK) {
        out->is_https = t.is_https;
        out->port = t.port;
        snprintf(out->resolve, sizeof out->resolve, "%s", t.resolve);
    }
    return rc;
}

static bool
loader_net_allowed(kiln_plugin *self, const struct sockaddr *addr)
{
    return netguard_is_allowed(loader_allow(self), addr);
}

/* Replies are cJSON_malloc'd, whoever answers (server/api.c too). */
static void
loader_reply_free(kiln_reply *r)
{
    if (r != NULL) {
        cJSON_free(r->body);
        r->body = NULL;
        r->body_len = 0;
    }
}

static void
loader_reply_text(kiln_reply *r, int status, const char *json)
{
    size_t len = strlen(json);
    memset(r, 0, sizeof *r);
    r->status = status;
    r->content_type = "application/json";
    r->body = cJSON_malloc(len + 1);
    if (r->body != NULL) {
        memcpy(r->body, json, len + 1);
        r->body_len = len;
    }
}

/* api_call_from() for a transport: its call and reply structs carry
 * their sizes (registry_take_struct's rule for the call; the reply is
 * filled in this host's struct and copied back as far as the plugin's
 * reaches). A struct too small for ABI 2.0 gets no answer but a 500. */
static void
loader_api_call_from(kiln_engine *e, const kiln_call *c,
                     const struct sockaddr *peer, kiln_reply *out)
{
    size_t out_size = out != NULL ? out->size : 0;
    if (out == NULL || out_size < sizeof(kiln_reply)) {
        return; /* nowhere safe to write */
    }
    kiln_call call;
    kiln_reply reply;
    kiln_error err;
    err_clear(&err);
    if (registry_take_struct("API call", NULL, c, c != NULL ? c->size : 0,
                             sizeof call, sizeof call, &call,
                             &err) != KILN_OK) {
        loader_reply_text(&reply, 500,
                          "{\"message\": \"the transport's API call is not "
                          "one this host reads (kiln_call.size)\"}");
    } else if (e->serve == NULL) {
        loader_reply_text(&reply, 503,
                          "{\"message\": \"the engine is not serving\"}");
    } else {
        memset(&reply, 0, sizeof reply);
        e->serve(e->serve_user, &call, peer, &reply);
    }
    reply.size = out_size;
    memcpy(out, &reply, sizeof reply);
}

static const char *
loader_config_metrics_listen(kiln_engine *e)
{
    return e->config->metrics_listen;
}

/* GET /metrics without a token, for the metrics listener: the reply is
 * filled as far as the transport's struct reaches (as api_call_from). */
static void
loader_api_metrics(kiln_engine *e, kiln_reply *out)
{
    size_t out_size = out != NULL ? out->size : 0;
    if (out == NULL || out_size < sizeof(kiln_reply)) {
        return;
    }
    kiln_reply reply;
    memset(&reply, 0, sizeof reply);
    if (e->serve_metrics == NULL) {
        loader_reply_text(&reply, 503,
                          "{\"message\": \"the engine is not serving\"}");
    } else {
        e->serve_metrics(e->serve_user, &reply);
    }
    reply.size = out_size;
    memcpy(out, &reply, sizeof reply);
}

static void
loader_api_call(kiln_engine *e, const kiln_call *c, kiln_reply *out)
{
    loader_api_call_from(e, c, NULL, out);
}

static const kiln_host_api loader_api = {
    .size = sizeof(kiln_host_api),
    .abi_major = KILN_ABI_MAJOR,
    .abi_minor = KILN_ABI_MINOR,
    .register_op = loader_register_op,
    .register_op_impl = loader_register_op_impl,
    .register_storage = loader_register_storage,
    .register_service = loader_register_service,
    .log = loader_log,
    .error_set = err_set,
    .error_set_param = err_set_param,
    .error_set_vips = err_set_vips,
    .place = geom_place,
    .derive_size = geom_derive_size,
    .resolve_length = geom_resolve_length,
    .exec_warn = exec_warn,
    .exec_load_image = exec_load_image,
    .api_call = loader_api_call,
    .reply_free = loader_reply_free,
    .config_listen = loader_config_listen,
    .config_max_body = loader_config_max_body,
    .net_check_url = loader_net_check_url,
    .net_allowed = loader_net_allowed,
    .quote = err_quote,
    .config_http = loader_config_http,
    .api_call_from = loader_api_call_from,
    .register_backend = loader_register_backend,
    .exec_load_native = exec_load_native,
    .config_metrics_listen = loader_config_metrics_listen,
    .api_metrics = loader_api_metrics,
};

const kiln_host_api *
loader_host_api(void)
{
    return &loader_api;
}

static void
loader_plugin_free(kiln_plugin *p)
{
    if (p == NULL) {
        return;
    }
    free(p->path);
    free(p->name);
    free(p->version);
    free(p);
}

/* Checks the numbers of a descriptor against this host. */
static int
loader_check_descriptor(const char *path, const kiln_plugin_descriptor *d,
                        kiln_error *err)
{
    if (d->abi_major != KILN_ABI_MAJOR) {
        return err_set(err, KILN_EABI,
                       "plugin %s needs ABI %u.%u, host provides %u.%u "
                       "(a different major version)",
                       path, d->abi_major, d->abi_minor, KILN_ABI_MAJOR,
                       KILN_ABI_MINOR);
    }
    /* The descriptor itself: at least ABI 2.0's members, and nothing set
     * past what this host knows. */
    kiln_plugin_descriptor full;
    kiln_error why;
    err_clear(&why);
    if (registry_take_struct("descriptor", NULL, d, d->size, sizeof full,
                             sizeof full, &full, &why) != KILN_OK) {
        return err_set(err, KILN_EABI, "plugin %s: %s", path, why.message);
    }
    /* A newer minor or a larger host table is no reason to refuse: the
     * plugin needs the features it uses, which registration checks
     * (registry_take_struct) and which it checks itself before calling a
     * newer host function (KILN_HOST_HAS). */
    if (d->vips_major != (unsigned)vips_version(0)) {
        return err_set(err, KILN_EABI,
                       "plugin %s was built against libvips %u.%u, host "
                       "runs libvips %d.%d (a different major version)",
                       path, d->vips_major, d->vips_minor, vips_version(0),
                       vips_version(1));
    }
    if (d->name == NULL || d->name[0] == '\0' || d->init == NULL) {
        return err_set(err, KILN_EABI,
                       "plugin %s has a descriptor without a name or init",
                       path);
    }
    return KILN_OK;
}

/* Anyone who can change a plugin's file, or its folder, can run code as
 * kiln: refuse a file that others (its group, or anyone) may write, as a
 * shell refuses a world-writable rc file; a folder others may write
 * unless it is sticky (/tmp: others cannot replace what is ours there);
 * and a file or folder owned by anyone but root or the user running kiln.
 * The folder is the file's own, after symbolic links (docs/plugins.md). */
static int
loader_check_owner(const char *path, const struct stat *st, kiln_error *err)
{
    uid_t me = geteuid();
    if (st->st_mode & (S_IWOTH | S_IWGRP)) {
        return err_set(err, KILN_EPERM,
                       "plugin %s is writable by others (mode %04o); "
                       "refusing to load it",
                       path, (unsigned)(st->st_mode & 07777));
    }
    if (st->st_uid != 0 && st->st_uid != me) {
        return err_set(err, KILN_EPERM,
                       "plugin %s is owned by uid %u, neither root nor the "
                       "user running kiln (uid %u); refusing to load it",
                       path, (unsigned)st->st_uid, (unsigned)me);
    }
    char *real = realpath(path, NULL);
    if (real == NULL) {
        return err_set(err, KILN_ENOTFOUND, "plugin %s: %s", path,
                       strerror(errno));
    }
    char *slash = strrchr(real, '/');
    if (slash == real) {
        slash[1] = '\0'; /* a file in / */
    } else if (slash != NULL) {
        *slash = '\0';
    }
    struct stat ds;
    int rc = KILN_OK;
    if (stat(real, &ds) != 0) {
        rc = err_set(err, KILN_ENOTFOUND, "plugin %s: its folder %s: %s", path,
                     real, strerror(errno));
    } else if ((ds.st_mode & (S_IWOTH | S_IWGRP)) && !(ds.st_mode & S_ISVTX)) {
        rc = err_set(err, KILN_EPERM,
                     "plugin %s is in %s, a folder others may write (mode "
                     "%04o); refusing to load it",
                     path, real, (unsigned)(ds.st_mode & 07777));
    } else if (ds.st_uid != 0 && ds.st_uid != me) {
        rc = err_set(err, KILN_EPERM,
                     "plugin %s is in %s, a folder owned by uid %u, neither "
                     "root nor the user running kiln (uid %u); refusing to "
                     "load it",
                     path, real, (unsigned)ds.st_uid, (unsigned)me);
    }
    free(real);
    return rc;
}

/* A plugin is enabled by its file's name (NAME.so): a file that declares
 * another name would pass for a plugin it is not. */
static int
loader_check_name(const char *path, const kiln_plugin_descriptor *d,
                  kiln_error *err)
{
    const char *base = strrchr(path, '/');
    base = base != NULL ? base + 1 : path;
    size_t n = strlen(base);
    size_t want = strlen(d->name);
    if (n == want + 3 && strncmp(base, d->name, want) == 0 &&
        strcmp(base + want, ".so") == 0) {
        return KILN_OK;
    }
    return err_set(err, KILN_EINVAL,
                   "plugin %s declares the name \"%s\": its file must be "
                   "named %s.so; refusing to load it",
                   path, d->name, d->name);
}

/* Registers a checked descriptor's plugin: refuses a second plugin of
 * the same name, runs init, and on failure removes what it registered.
 * `h` is its dlopen handle (NULL for a built-in plugin); the caller
 * closes it on failure. */
static int
loader_start(kiln_engine *e, const char *path, void *h,
             const kiln_plugin_descriptor *d, kiln_error *err)
{
    for (size_t i = 0; i < e->n_plugins; i++) {
        if (strcmp(e->plugins[i]->name, d->name) == 0) {
            return err_set(err, KILN_EEXIST,
                           "plugin %s: a plugin named \"%s\" is already "
                           "loaded from %s",
                           path, d->name, e->plugins[i]->path);
        }
    }
    kiln_plugin *p = calloc(1, sizeof *p);
    kiln_plugin **list =
        realloc(e->plugins, (e->n_plugins + 1) * sizeof *e->plugins);
    if (list != NULL) {
        e->plugins = list;
    }
    if (p == NULL || list == NULL) {
        free(p);
        return err_set(err, KILN_ENOMEM, "out of memory");
    }
    p->path = strdup(path);
    p->name = strdup(d->name);
    p->version = strdup(d->version ? d->version : "");
    p->handle = h;
    p->builtin = h == NULL;
    p->desc = d;
    p->engine = e;
    kiln_error ierr;
    err_clear(&ierr);
    p->in_init = true;
    int rc = d->init(p, &loader_api, &ierr);
    p->in_init = false;
    if (rc != KILN_OK) {
        registry_remove_owner(&e->reg, p);
        err_set(err, rc == KILN_OK ? KILN_EINVAL : rc,
                "plugin %s (\"%s\") failed to initialise: %s", path, p->name,
                ierr.message[0] ? ierr.message : "no reason given");
        loader_plugin_free(p);
        return err->code;
    }
    p->initialized = true;
    e->plugins[e->n_plugins++] = p;
    return KILN_OK;
}

int
loader_load_file(kiln_engine *e, const char *path, kiln_error *err)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        return err_set(err, KILN_ENOTFOUND, "plugin %s: %s", path,
                       strerror(errno));
    }
    if (!S_ISREG(st.st_mode)) {
        return err_set(err, KILN_EINVAL, "plugin %s is not a regular file",
                       path);
    }
    int rc = loader_check_owner(path, &st, err);
    if (rc != KILN_OK) {
        return rc;
    }
    /* RTLD_NOW: a missing symbol fails here, not in the middle of a job.
     * RTLD_LOCAL: plugins cannot see each other's symbols. */
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        const char *why = dlerror();
        return err_set(err, KILN_EABI, "plugin %s cannot be loaded: %s", path,
                       why ? why : "unknown error");
    }
    const kiln_plugin_descriptor *d = dlsym(h, KILN_DESCRIPTOR_SYMBOL);
    if (d == NULL) {
        bool v1 = dlsym(h, KILN_DESCRIPTOR_SYMBOL_V1) != NULL;
        dlclose(h);
        if (v1) {
            return err_set(err, KILN_EABI,
                           "plugin %s was built for kiln's plugin ABI 1; "
                           "this host loads ABI %d plugins: rebuild it "
                           "against this SDK (docs/plugins.md, \"Moving "
                           "from ABI 1\")",
                           path, KILN_ABI_MAJOR);
        }
        return err_set(err, KILN_EABI,
                       "plugin %s has no %s symbol (not a kiln plugin, or "
                       "built for another ABI major)",
                       path, KILN_DESCRIPTOR_SYMBOL);
    }
    rc = loader_check_descriptor(path, d, err);
    if (rc == KILN_OK) {
        rc = loader_check_name(path, d, err);
    }
    if (rc != KILN_OK) {
        dlclose(h);
        return rc;
    }
    rc = loader_start(e, path, h, d, err);
    if (rc != KILN_OK) {
        dlclose(h);
    }
    return rc;
}

int
loader_load_config(kiln_engine *e, kiln_error *err)
{
    const kiln_config *c = e->config;
    /* The built-in plugins first: backend-vips registers the "vips"
     * backend, whose op implementations the enabled plugins register. */
    for (size_t i = 0; kiln_builtin_plugins[i] != NULL; i++) {
        int rc =
            loader_start(e, "(built in)", NULL, kiln_builtin_plugins[i], err);
        if (rc != KILN_OK) {
            return rc;
        }
    }
    for (size_t i = 0; i < c->n_enable; i++) {
        const char *name = c->enable[i];
        bool builtin = false;
        for (size_t k = 0; kiln_builtin_plugins[k] != NULL; k++) {
            builtin =
                builtin || strcmp(kiln_builtin_plugins[k]->name, name) == 0;
        }
        if (builtin) {
            continue; /* loaded above: naming it is harmless */
        }
        char path[4096];
        bool found = false;
        for (size_t d = 0; d < c->n_plugin_dirs && !found; d++) {
            snprintf(path, sizeof path, "%s/%s.so", c->plugin_dirs[d], name);
            found = access(path, F_OK) == 0;
        }
        if (!found) {
            char dirs[2048] = "";
            for (size_t d = 0; d < c->n_plugin_dirs; d++) {
                size_t len = strlen(dirs);
                snprintf(dirs + len, sizeof dirs - len, "%s%s", d ? ", " : "",
                         c->plugin_dirs[d]);
            }
            return err_set_path(err, KILN_ENOTFOUND, "plugins.enable",
                                "plugin \"%s\" not found (looked for %s.so "
                                "in %s)",
                                name, name, dirs);
        }
        int rc = loader_load_file(e, path, err);
        if (rc != KILN_OK) {
            return rc;
        }
    }
    return KILN_OK;
}

void
loader_unload_all(kiln_engine *e)
{
    /* Reverse order: a later plugin may have been loaded on the strength
     * of an earlier one. */
    for (size_t i = e->n_plugins; i-- > 0;) {
        kiln_plugin *p = e->plugins[i];
        if (p->initialized && p->desc->fini != NULL) {
            p->desc->fini(p);
        }
        registry_remove_owner(&e->reg, p);
        /* Skip dlclose under AddressSanitizer's leak check: it could not
         * symbolize leaks in closed objects. Closing matters only for
         * reloading, which the engine never does. */
        if (p->handle != NULL && getenv("KILN_NO_DLCLOSE") == NULL) {
            dlclose(p->handle);
        }
        loader_plugin_free(p);
    }
    free(e->plugins);
    e->plugins = NULL;
    e->n_plugins = 0;
}
