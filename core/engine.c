/*
 * The engine: what `kiln run`, `kiln compile` and (next) the API server
 * share. It owns the configuration, the loaded plugins and their
 * registry, and one open storage instance per configured service, and it
 * runs a request through parse, compile, bind and execute.
 */
#include "kiln.h"

#include "../dsl/value_lexer.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../dsl/value_lexer.h"
#include "netguard.h"

static int engine_open_remote(kiln_engine *e, kiln_error *err);
static const engine_storage *engine_remote_for(const kiln_engine *e,
                                               int service_id);

/* Every service's pixel backend must be loaded: "vips" is the built-in
 * backend-vips', any other a plugin's (backend-magick registers "magick"). A
 * service silently run on another engine than it asked for would be a lie. */
static int
engine_check_backends(const kiln_engine *e, kiln_error *err)
{
    const kiln_config *c = e->config;
    for (size_t i = 0; i < c->n_services; i++) {
        const config_service *s = &c->services[i];
        if (s->backend != NULL && strcmp(s->backend, "vips") != 0 &&
            (s->vector.svg || s->vector.pdf)) {
            /* The vector renderer hands libvips a PNG; a plugin's backend
             * reads only its own formats. */
            return err_set_path(err, KILN_EINVAL, s->backend_path,
                                "\"%s\" does not read SVG or PDF: "
                                "vector_sources needs the backend \"vips\"",
                                s->backend);
        }
        if (s->backend == NULL || registry_has_backend(&e->reg, s->backend)) {
            continue;
        }
        char have[256] = "";
        for (size_t k = 0; k < e->reg.n_backends; k++) {
            size_t l = strlen(have);
            snprintf(have + l, sizeof have - l, "%s\"%s\"", k ? ", " : "",
                     e->reg.backends[k].be.name);
        }
        return err_set_path(err, KILN_ENOTFOUND, s->backend_path,
                            "no pixel backend \"%s\" is loaded (loaded: %s; "
                            "enable its plugin, e.g. \"backend-%s\", in "
                            "plugins.enable)",
                            s->backend, have, s->backend);
    }
    return KILN_OK;
}

static int
engine_open_storages(kiln_engine *e, kiln_error *err)
{
    const kiln_config *c = e->config;
    e->storages = calloc(c->n_services + 1, sizeof *e->storages);
    if (e->storages == NULL) {
        return err_set(err, KILN_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < c->n_services; i++) {
        const config_service *s = &c->services[i];
        const reg_storage *b =
            registry_find_storage(&e->reg, s->storage_plugin);
        if (b == NULL) {
            const char *names[32];
            size_t n = 0;
            for (; n < e->reg.n_storages && n < 32; n++) {
                names[n] = e->reg.storages[n].st.name;
            }
            char hint[128];
            suggest_hint(s->storage_plugin, names, n, hint, sizeof hint);
            return err_set_path(err, KILN_ENOTFOUND, s->storage_path,
                                "no storage backend \"%s\" is loaded%s "
                                "(enable its plugin, e.g. \"storage-%s\")",
                                s->storage_plugin, hint, s->storage_plugin);
        }
        errlist errs = {0};
        void *settings = NULL;
        static const char *const skip[] = {"plugin", NULL};
        int rc = params_parse(e->arena, b->st.settings, b->st.n_settings,
                              b->st.settings_size, s->storage, s->storage_path,
                              skip, &settings, &errs);
        if (rc != KILN_OK) {
            if (errs.n > 0) {
                *err = errs.items[0].e;
            }
            errlist_free(&errs);
            return rc != KILN_OK ? rc : KILN_EINVAL;
        }
        errlist_free(&errs);
        engine_storage *es = &e->storages[e->n_storages];
        es->service_id = s->id;
        es->vector = &s->vector;
        es->backend = b;
        kiln_error oe;
        err_clear(&oe);
        rc = b->st.open(b->owner, settings, &es->state, &oe);
        if (rc != KILN_OK) {
            return err_set_path(err, rc, s->storage_path,
                                "cannot open storage \"%s\": %s", b->st.name,
                                oe.message);
        }
        e->n_storages++;
    }
    return engine_open_remote(e, err);
}

bool
engine_source_is_url(const char *source)
{
    return source != NULL && (strncmp(source, "http://", 7) == 0 ||
                              strncmp(source, "https://", 8) == 0);
}

int
engine_check_source(const kiln_engine *e, int service_id, const char *source,
                    kiln_error *err)
{
    if (!engine_source_is_url(source)) {
        return KILN_OK;
    }
    char shown[512];
    netguard_display_url(source, shown, sizeof shown);
    const config_service *s = config_find_service(e->config, service_id);
    if (s != NULL && !s->remote_sources) {
        return err_set_path(err, KILN_EPERM, "source",
                            "\"%s\" is a URL, but service %d does not allow "
                            "remote sources (expected a path in its storage, "
                            "or remote_sources: true in its configuration)",
                            shown, service_id);
    }
    if (engine_remote_for(e, service_id) == NULL) {
        return err_set_path(err, KILN_ENOTFOUND, "source",
                            "\"%s\" is a URL, but no storage backend reads "
                            "URLs here (enable the storage-http plugin)",
                            shown);
    }
    netguard_target t;
    int rc = netguard_check_url("source", source, e->net_allow, &t, err);
    if (rc != KILN_OK) {
        char why[sizeof err->message];
        snprintf(why, sizeof why, "%s", err->message);
        return err_set_path(err, rc, "source", "%s", why);
    }
    return KILN_OK;
}

/* Opens one instance of the "http" backend with `settings` (a JSON
 * object; path names it in messages) into *es. */
static int
engine_open_http(kiln_engine *e, const reg_storage *b, const cJSON *settings,
                 const char *path, int service_id, engine_storage *es,
                 kiln_error *err)
{
    errlist errs = {0};
    void *parsed = NULL;
    int rc =
        params_parse(e->arena, b->st.settings, b->st.n_settings,
                     b->st.settings_size, settings, path, NULL, &parsed, &errs);
    if (rc != KILN_OK) {
        if (errs.n > 0) {
            *err = errs.items[0].e;
        }
        errlist_free(&errs);
        return rc;
    }
    errlist_free(&errs);
    kiln_error oe;
    err_clear(&oe);
    rc = b->st.open(b->owner, parsed, &es->state, &oe);
    if (rc != KILN_OK) {
        return err_set_path(err, rc, path,
                            "cannot open storage \"http\" for remote "
                            "sources: %s",
                            oe.message);
    }
    es->service_id = service_id;
    const config_service *svc = config_find_service(e->config, service_id);
    es->vector = svc != NULL ? &svc->vector : NULL;
    es->backend = b;
    return KILN_OK;
}

/* Opens the "http" backend for the URL sources of the services that allow
 * them: one shared instance with the defaults, one per service that gives
 * its own settings. Without the plugin, URL sources are refused at
 * submission (engine_check_source). */
static int
engine_open_remote(kiln_engine *e, kiln_error *err)
{
    const reg_storage *b = registry_find_storage(&e->reg, "http");
    if (b == NULL) {
        return KILN_OK;
    }
    const kiln_config *c = e->config;
    e->remotes = calloc(c->n_services + 1, sizeof *e->remotes);
    if (e->remotes == NULL) {
        return err_set(err, KILN_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < c->n_services; i++) {
        const config_service *s = &c->services[i];
        int rc = KILN_OK;
        if (!s->remote_sources) {
            continue;
        }
        if (s->remote_settings != NULL) {
            rc = engine_open_http(e, b, s->remote_settings, s->remote_path,
                                  s->id, &e->remotes[e->n_remotes], err);
            e->n_remotes += rc == KILN_OK;
        } else if (e->remote.backend == NULL) {
            cJSON *none = cJSON_CreateObject();
            rc = engine_open_http(e, b, none, "remote_sources", -1, &e->remote,
                                  err);
            cJSON_Delete(none);
        }
        if (rc != KILN_OK) {
            return rc;
        }
    }
    return KILN_OK;
}

/* The instance that reads service_id's URL sources, or NULL. */
static const engine_storage *
engine_remote_for(const kiln_engine *e, int service_id)
{
    for (size_t i = 0; i < e->n_remotes; i++) {
        if (e->remotes[i].service_id == service_id) {
            return &e->remotes[i];
        }
    }
    return e->remote.backend != NULL ? &e->remote : NULL;
}

/* plugins.settings: every name a loaded service's, each parsed with that
 * service's table (its defaults when absent), before anything starts. */
static int
engine_parse_service_settings(kiln_engine *e, kiln_error *err)
{
    const cJSON *ps = e->config->plugin_settings;
    const cJSON *it;
    cJSON_ArrayForEach(it, ps)
    {
        bool found = false;
        for (size_t k = 0; k < e->reg.n_services && !found; k++) {
            found = strcmp(e->reg.services[k].svc.name, it->string) == 0;
        }
        if (!found) {
            const char *names[32];
            size_t n = 0;
            for (; n < e->reg.n_services && n < 32; n++) {
                names[n] = e->reg.services[n].svc.name;
            }
            char hint[128];
            suggest_hint(it->string, names, n, hint, sizeof hint);
            return err_set_path(err, KILN_ENOTFOUND, "plugins.settings",
                                "no loaded service is named \"%s\"%s (enable "
                                "the plugin that provides it)",
                                it->string, hint);
        }
    }
    e->service_settings =
        calloc(e->reg.n_services + 1, sizeof *e->service_settings);
    if (e->service_settings == NULL) {
        return err_set(err, KILN_ENOMEM, "out of memory");
    }
    cJSON *empty = cJSON_CreateObject();
    if (empty == NULL) {
        return err_set(err, KILN_ENOMEM, "out of memory");
    }
    int rc = KILN_OK;
    for (size_t k = 0; k < e->reg.n_services && rc == KILN_OK; k++) {
        const kiln_service *svc = &e->reg.services[k].svc;
        const cJSON *obj =
            ps != NULL ? cJSON_GetObjectItemCaseSensitive(ps, svc->name) : NULL;
        char *path = arena_printf(e->arena, "plugins.settings.%s", svc->name);
        errlist errs = {0};
        rc = params_parse(e->arena, svc->settings, svc->n_settings,
                          svc->settings_size, obj != NULL ? obj : empty, path,
                          NULL, &e->service_settings[k], &errs);
        if (rc != KILN_OK) {
            if (errs.n > 0) {
                *err = errs.items[0].e;
            } else {
                err_set(err, rc, "%s: cannot parse", path);
            }
        }
        errlist_free(&errs);
    }
    cJSON_Delete(empty);
    return rc;
}

int
engine_new_take(kiln_config *cfg, bool open_storage, kiln_engine **out,
                kiln_error *err)
{
    kiln_engine *e = calloc(1, sizeof *e);
    if (e == NULL) {
        config_free(cfg);
        return err_set(err, KILN_ENOMEM, "out of memory");
    }
    /* Defence in depth behind source_format_allowed(): libvips' loaders
     * marked untrusted (ImageMagick's, PDF, SVG, FITS, ...) refuse to
     * run in this process at all. */
    vips_block_untrusted_set(TRUE);
    e->config = cfg;
    e->opt_level = cfg->opt_level;
    e->arena = arena_new();
    e->net_allow = calloc(1, sizeof *e->net_allow);
    if (e->arena == NULL || e->net_allow == NULL) {
        engine_free(e);
        return err_set(err, KILN_ENOMEM, "out of memory");
    }
    int rc = netguard_allow_parse((const char *const *)cfg->network_allow,
                                  cfg->n_network_allow, e->net_allow, err);
    if (rc != KILN_OK) {
        engine_free(e);
        return rc;
    }
    /* Plugins' length defaults are checked with the compiler's lexer. */
    e->reg.check_length = dsl_lex_length;
    rc = loader_load_config(e, err);
    if (rc == KILN_OK) {
        rc = engine_parse_service_settings(e, err);
    }
    if (rc == KILN_OK) {
        rc = engine_check_backends(e, err);
    }
    if (rc == KILN_OK && open_storage) {
        rc = engine_open_storages(e, err);
    }
    if (rc != KILN_OK) {
        engine_free(e);
        return rc;
    }
    *out = e;
    return KILN_OK;
}

void
engine_free(kiln_engine *e)
{
    if (e == NULL) {
        return;
    }
    /* libvips' operation cache may still hold sources and targets whose
     * callbacks live in plugin code and use the storages' state: drop
     * them before the storages close and the code goes. A cache of no
     * size empties it; vips_cache_drop_all() would also destroy the
     * cache itself, which libvips never makes again, so the process could
     * not run libvips after this engine (another engine, the tests). */
    int cache_max = vips_cache_get_max();
    vips_cache_set_max(0);
    vips_cache_set_max(cache_max);
    for (size_t i = 0; i < e->n_storages; i++) {
        const kiln_storage *b = &e->storages[i].backend->st;
        if (b->close != NULL) {
            b->close(e->storages[i].state);
        }
    }
    free(e->storages);
    if (e->remote.backend != NULL && e->remote.backend->st.close != NULL) {
        e->remote.backend->st.close(e->remote.state);
    }
    for (size_t i = 0; i < e->n_remotes; i++) {
        if (e->remotes[i].backend->st.close != NULL) {
            e->remotes[i].backend->st.close(e->remotes[i].state);
        }
    }
    free(e->service_settings);
    free(e->remotes);
    if (e->net_allow != NULL) {
        netguard_allow_free(e->net_allow);
        free(e->net_allow);
    }
    loader_unload_all(e);
    registry_free(&e->reg);
    arena_free(e->arena);
    config_free(e->config);
    free(e);
}

const engine_storage *
engine_find_storage(const kiln_engine *e, int id)
{
    for (size_t i = 0; i < e->n_storages; i++) {
        if (e->storages[i].service_id == id) {
            return &e->storages[i];
        }
    }
    return NULL;
}

/* The limits in force for a service: its own, or the deployment's. */
static kiln_limits
engine_limits(const kiln_engine *e, int service_id)
{
    const config_service *s = config_find_service(e->config, service_id);
    return s != NULL ? s->limits : e->config->limits;
}

kiln_limits
engine_process_limits(const kiln_engine *e, const graph *g)
{
    kiln_limits lim = engine_limits(e, g->req.service_id);
    /* A request may lower its service's limits, never raise them: the
     * compiler checked it against the service's. */
    if (g->req.has_limits) {
        const kiln_limits *rl = &g->req.limits;
        if (rl->max_pixels > 0 &&
            (lim.max_pixels <= 0 || rl->max_pixels < lim.max_pixels)) {
            lim.max_pixels = rl->max_pixels;
        }
        if (rl->max_file_size > 0 &&
            (lim.max_file_size <= 0 || rl->max_file_size < lim.max_file_size)) {
            lim.max_file_size = rl->max_file_size;
        }
        if (rl->max_process_time > 0 &&
            (lim.max_process_time <= 0 ||
             rl->max_process_time < lim.max_process_time)) {
            lim.max_process_time = rl->max_process_time;
        }
    }
    return lim;
}

kiln_limits
engine_limits_for(void *e, int service_id)
{
    return engine_limits(e, service_id);
}

const char *
engine_backend_for(void *e, int service_id)
{
    const config_service *s =
        config_find_service(((kiln_engine *)e)->config, service_id);
    return s != NULL && s->backend != NULL ? s->backend : "vips";
}

int
engine_compile(kiln_engine *e, const char *text, size_t len, arena **arena_out,
               graph **out, errlist *errs)
{
    return engine_compile_admit(e, text, len, NULL, NULL, arena_out, out, errs);
}

int
engine_compile_admit(kiln_engine *e, const char *text, size_t len,
                     bool (*admit)(void *user, int service_id), void *user,
                     arena **arena_out, graph **out, errlist *errs)
{
    /* A request is compiled against the limits of the service it names
     * (a service's own may be lower than the deployment's); a service id
     * the compiler will refuse gets the deployment's. */
    dsl_stages st = {.reg = &e->reg,
                     .limits = &e->config->limits,
                     .limits_for = engine_limits_for,
                     .backend_for = engine_backend_for,
                     .text = text,
                     .len = len,
                     .level = -1,
                     .admit = admit,
                     .admit_user = user,
                     .user = e};
    *arena_out = NULL;
    *out = NULL;
    return dsl_run(&st, arena_out, out, errs);
}

void
exec_result_free(exec_result *r)
{
    for (size_t i = 0; i < r->n_jobs; i++) {
        for (size_t k = 0; k < r->jobs[i].n_warnings; k++) {
            free(r->jobs[i].warnings[k]);
        }
        free(r->jobs[i].warnings);
    }
    free(r->jobs);
    memset(r, 0, sizeof *r);
}

/* Fails every job of g with the compiler's errors, joined into
 * res->error too. */
static void
engine_fail_jobs(const graph *g, const errlist *errs, exec_result *res)
{
    char *buf = res->error;
    size_t size = sizeof res->error;
    buf[0] = '\0';
    for (size_t i = 0; i < errs->n; i++) {
        char one[1100];
        err_format(&errs->items[i].e, one, sizeof one);
        size_t l = strlen(buf);
        snprintf(buf + l, size - l, "%s%s", i ? "; " : "", one);
    }
    for (size_t j = 0; j < g->n_jobs; j++) {
        snprintf(res->jobs[j].error, sizeof res->jobs[j].error, "%s",
                 res->error);
    }
}

void
engine_source_failed(exec_result *res, int rc, kiln_error *err)
{
    res->source_failed = true;
    if (rc == KILN_EIO) {
        res->storage_errors++;
    }
    err_prefix_path(err, "source");
}

int
engine_bind(kiln_engine *e, graph **g, const kiln_shape *shape,
            const dsl_facts *facts, const kiln_limits *lim, const char *backend,
            exec_result *res)
{
    dsl_stages st = {.reg = &e->reg,
                     .shape = shape,
                     .bind_limits = lim,
                     .facts = facts,
                     .backend = backend,
                     .level = e->opt_level};
    errlist errs = {0};
    arena *a = (*g)->arena;
    int rc = dsl_run(&st, &a, g, &errs);
    if (rc != KILN_OK) {
        engine_fail_jobs(*g, &errs, res);
    }
    errlist_free(&errs);
    return rc;
}

engine_run_fn
engine_runner(const kiln_engine *e, const char *backend)
{
    for (size_t i = 0; i < e->n_runners; i++) {
        if (strcmp(e->runners[i].backend, backend) == 0) {
            return e->runners[i].run;
        }
    }
    return NULL;
}

int
engine_set_runner(kiln_engine *e, const char *backend, engine_run_fn run,
                  kiln_error *err)
{
    if (engine_runner(e, backend) != NULL) {
        return err_set(err, KILN_EEXIST,
                       "backend \"%s\" already has a graph executor", backend);
    }
    if (!registry_set_runs_graphs(&e->reg, backend)) {
        return err_set(err, KILN_ENOTFOUND,
                       "no backend \"%s\" is registered: register it first",
                       backend);
    }
    if (e->n_runners == sizeof e->runners / sizeof e->runners[0]) {
        return err_set(err, KILN_ELIMIT, "too many graph executors");
    }
    e->runners[e->n_runners].backend = backend;
    e->runners[e->n_runners].run = run;
    e->n_runners++;
    return KILN_OK;
}

int
engine_execute(kiln_engine *e, graph *g, exec_result *res)
{
    return engine_execute_stoppable(e, g, NULL, res);
}

int
engine_execute_stoppable(kiln_engine *e, graph *g, const volatile int *stop,
                         exec_result *res)
{
    double t0 = clock_ms();
    memset(res, 0, sizeof *res);
    res->jobs = calloc(g->n_jobs + 1, sizeof *res->jobs);
    if (res->jobs == NULL) {
        snprintf(res->error, sizeof res->error, "out of memory");
        return KILN_ENOMEM;
    }
    res->n_jobs = g->n_jobs;
    for (size_t j = 0; j < g->n_jobs; j++) {
        res->jobs[j].destination = g->nodes[g->job_store[j]].destination;
        const graph_node *enc = &g->nodes[g->nodes[g->job_store[j]].input];
        res->jobs[j].format = graph_format_name(enc->format);
    }
    int rc = KILN_OK;
    VipsSource *src = NULL;
    kiln_error err;
    err_clear(&err);
    const engine_storage *st = engine_find_storage(e, g->req.service_id);
    if (st == NULL) {
        rc = err_set_path(&err, KILN_ENOTFOUND, "service_id",
                          "no service %d in the configuration",
                          g->req.service_id);
        goto fail;
    }
    const config_service *svc =
        config_find_service(e->config, g->req.service_id);
    res->backend = svc != NULL && svc->backend != NULL ? svc->backend : "vips";
    kiln_limits lim = engine_process_limits(e, g);
    /* max_process_time: the pipeline is cancelled when it runs past this
     * (exec_deadline_watch); measured from the start of the run. */
    if (lim.max_process_time > 0) {
        res->deadline.at_ms = t0 + lim.max_process_time * 1e3;
        res->deadline.limit_s = lim.max_process_time;
    }
    res->deadline.cancel = &e->cancel;
    res->deadline.stop = stop;
    /* A URL source is read through the remote backend, after the same
     * checks as at submission (the deployment may have changed since). */
    const engine_storage *src_st = st;
    if (engine_source_is_url(g->req.source)) {
        rc = engine_check_source(e, g->req.service_id, g->req.source, &err);
        if (rc != KILN_OK) {
            goto fail;
        }
        if (strcmp(st->backend->st.name, "http") != 0) {
            src_st = engine_remote_for(e, g->req.service_id);
        }
    }
    const reg_backend *be = registry_find_backend(&e->reg, res->backend);
    if (be == NULL) {
        /* engine_check_backends refused such a service at start-up. */
        rc = err_set_path(&err, KILN_EINTERNAL, "service_id",
                          "no pixel backend \"%s\" is loaded", res->backend);
        goto fail;
    }
    engine_run_fn run = engine_runner(e, be->be.name);
    if (run != NULL) {
        /* The backend runs whole graphs itself (backend-vips). */
        rc = run(e, st, src_st, g, &lim, res, &err);
        if (err.code != KILN_OK) {
            goto fail;
        }
        goto done;
    }
    /* Any other backend through the SDK's kiln_backend (exec_native.c). */
    kiln_image_info info;
    rc = exec_native_open(src_st, g->req.source, lim.max_file_size, be, &src,
                          &info, &err);
    if (rc != KILN_OK) {
        engine_source_failed(res, rc, &err);
        goto fail;
    }
    kiln_shape nshape = {info.width, info.height, info.has_alpha ? 4 : 3,
                         info.has_alpha};
    dsl_facts nfacts = {.format = arena_strdup(g->arena, info.format)};
    rc = engine_bind(e, &g, &nshape, &nfacts, &lim, be->be.name, res);
    if (rc != KILN_OK) {
        goto done;
    }
    rc = exec_native_run(e, st, be, g, src, &info, &lim, res, &err);
    if (rc != KILN_OK) {
        goto fail;
    }
    rc = res->ok ? KILN_OK : KILN_EINVAL;
    goto done;
fail:
    res->timed_out = exec_deadline_passed(&res->deadline);
    res->cancelled = res->deadline.cancelled != 0;
    res->stopped = res->deadline.stopped != 0;
    err_format(&err, res->error, sizeof res->error);
    for (size_t j = 0; j < g->n_jobs; j++) {
        snprintf(res->jobs[j].error, sizeof res->jobs[j].error, "%s",
                 res->error);
    }
done:
    if (src != NULL) {
        g_object_unref(src);
    }
    res->duration_ms = clock_ms() - t0;
    res->ok = rc == KILN_OK;
    return rc;
}

cJSON *
exec_result_jobs_json(const exec_result *r)
{
    cJSON *jobs = cJSON_CreateArray();
    for (size_t i = 0; i < r->n_jobs; i++) {
        const job_result *j = &r->jobs[i];
        cJSON *jo = cJSON_CreateObject();
        cJSON_AddStringToObject(jo, "destination",
                                j->destination ? j->destination : "");
        cJSON_AddStringToObject(jo, "status", j->ok ? "FINISHED" : "FAILED");
        cJSON_AddStringToObject(jo, "format", j->format ? j->format : "");
        if (r->ran_jobs && r->backend != NULL) {
            cJSON_AddStringToObject(jo, "backend", r->backend);
        } else {
            cJSON_AddNullToObject(jo, "backend");
        }
        if (j->ok) {
            cJSON_AddNumberToObject(jo, "width", j->width);
            cJSON_AddNumberToObject(jo, "height", j->height);
            cJSON_AddNumberToObject(jo, "bytes", (double)j->bytes);
        } else {
            cJSON_AddNullToObject(jo, "width");
            cJSON_AddNullToObject(jo, "height");
            cJSON_AddNullToObject(jo, "bytes");
        }
        cJSON_AddNumberToObject(jo, "duration_ms",
                                (double)(long)(j->duration_ms + 0.5));
        if (j->ok) {
            cJSON_AddNullToObject(jo, "error");
        } else {
            cJSON_AddStringToObject(jo, "error", j->error);
        }
        cJSON *w = cJSON_AddArrayToObject(jo, "warnings");
        for (size_t k = 0; k < j->n_warnings; k++) {
            cJSON_AddItemToArray(w, cJSON_CreateString(j->warnings[k]));
        }
        cJSON_AddItemToArray(jobs, jo);
    }
    return jobs;
}
