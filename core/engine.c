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

/* Every service's pixel backend must be loaded: "vips" is the host's,
 * any other a plugin's (backend-magick registers "magick"). A service
 * silently run on another engine than it asked for would be a lie. */
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
        char have[256] = "\"vips\"";
        for (size_t k = 0; k < e->reg.n_backends; k++) {
            size_t l = strlen(have);
            snprintf(have + l, sizeof have - l, ", \"%s\"",
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
     * them before the storages close and the code goes. */
    vips_cache_drop_all();
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

/* Joins every error into one line for the process's error field. */
static void
engine_join_errors(const errlist *errs, char *buf, size_t size)
{
    buf[0] = '\0';
    for (size_t i = 0; i < errs->n; i++) {
        char one[1100];
        err_format(&errs->items[i].e, one, sizeof one);
        size_t l = strlen(buf);
        snprintf(buf + l, size - l, "%s%s", i ? "; " : "", one);
    }
}

static void
engine_reopen(graph *g, VipsSource *src, VipsImage **raw, bool *sequential,
              int *redecodes)
{
    *sequential = false;
    graph_node *load = &g->nodes[0];
    if (g->n_nodes == 0 || load->kind != GRAPH_LOAD) {
        return;
    }
    bool reduced = load->load_shrink > 1 || load->load_scale > 0;
    /* Auto-orientation turns or mirrors the whole image: not a top to
     * bottom read either. */
    bool seq = graph_streams(g) && vips_image_get_orientation(*raw) <= 1;
    if (!reduced && !seq) {
        return;
    }
    VipsImage *im = NULL;
    kiln_error why;
    if (reduced) {
        kiln_shape got;
        if (exec_reopen(src, load, seq, &im, &why) == KILN_OK) {
            exec_oriented_shape(im, &got);
            if (got.width != load->shape.width ||
                got.height != load->shape.height) {
                g_object_unref(im);
                im = NULL;
            }
        }
        if (im == NULL) {
            /* The full decode reports whatever is wrong with the file. */
            pass_shrink_undo(g);
        }
    }
    if (im == NULL && seq) {
        (void)exec_reopen(src, load, true, &im, &why); /* NULL on failure */
    }
    if (im != NULL && seq) {
        /* Only the stream reads a sequential loader (stream.c). */
        VipsImage *st = NULL;
        if (stream_new(src, load, im, redecodes, &st, &why) != KILN_OK) {
            st = NULL;
        }
        g_object_unref(im);
        im = st;
    }
    if (im == NULL) {
        vips_error_clear(); /* keep the random-access, full-size header */
        return;
    }
    g_object_unref(*raw);
    *raw = im;
    *sequential = seq;
}

/* What the source's header says, for the passes. */
static dsl_facts
engine_facts(VipsImage *raw)
{
    dsl_facts f = {NULL, false, exec_decode_is_plain(raw),
                   vips_image_get_orientation(raw) > 1};
    const char *loader = NULL;
    if (vips_image_get_typeof(raw, VIPS_META_LOADER) != 0 &&
        vips_image_get_string(raw, VIPS_META_LOADER, &loader) == 0) {
        f.format = graph_format_of_loader(loader);
    }
    return f;
}

int
engine_optimize(graph *g, int level, VipsSource *src, VipsImage **raw,
                bool *sequential, int *redecodes, kiln_error *err)
{
    *sequential = false;
    dsl_facts facts = engine_facts(*raw);
    dsl_stages st = {.facts = &facts, .level = level};
    errlist errs = {0};
    arena *a = g->arena;
    int rc = dsl_run(&st, &a, &g, &errs);
    if (rc != KILN_OK) {
        if (errs.n > 0) {
            *err = errs.items[0].e;
        }
        errlist_free(&errs);
        return rc;
    }
    errlist_free(&errs);
    engine_reopen(g, src, raw, sequential, redecodes);
    return KILN_OK;
}

/* The error of a source whose pixels do not decode, `why` saying what
 * libvips or the backend said; returns its code. */
static int
engine_decode_failed(const char *shown, const char *why, kiln_error *err)
{
    /* libvips holds a large random-access decode in a temporary file in
     * TMPDIR: a full disk there is not the source's fault. */
    if (strstr(why, g_strerror(ENOSPC)) != NULL) {
        return err_set_path(err, KILN_EIO, "source",
                            "cannot decode \"%s\": no space left on device "
                            "for libvips' temporary file in \"%s\" (TMPDIR)",
                            shown, g_get_tmp_dir());
    }
    return err_set_path(err, KILN_EINVAL, "source",
                        "cannot decode \"%s\" (damaged or truncated?): %s",
                        shown, why);
}

/* True when a job failed and no storage operation did: the failure was
 * in computing pixels (or encoding them). */
static bool
engine_jobs_failed_in_pixels(const exec_result *res)
{
    if (res->storage_errors > 0) {
        return false;
    }
    for (size_t j = 0; j < res->n_jobs; j++) {
        if (!res->jobs[j].ok) {
            return true;
        }
    }
    return false;
}

/* A strict decode of the source failed, libvips saying `why`. For a JPEG
 * that may be a harmless libjpeg warning (exec_fail_on): ask the file.
 * Returns true when it is harmless (the load node is made lenient: open
 * the source again and decode it so); otherwise fills err with the
 * damaged source's error. */
static bool
engine_decode_lenient(graph *g, VipsSource *src, const char *shown,
                      const char *why, kiln_error *err)
{
    graph_node *load = &g->nodes[0];
    if (g->n_nodes == 0 || load->kind != GRAPH_LOAD || load->load_lenient ||
        !exec_is_jpeg(src)) {
        engine_decode_failed(shown, why, err);
        return false;
    }
    kiln_error cerr;
    err_clear(&cerr);
    int rc = source_check_jpeg(src, &cerr);
    if (rc == KILN_OK) {
        load->load_lenient = true;
        return true;
    }
    if (rc == KILN_EINVAL) {
        err_set_path(err, KILN_EINVAL, "source", "cannot decode \"%s\": %s",
                     shown, cerr.message);
    } else {
        /* The bytes could not be read again (a broken stream): libvips'
         * words say more. */
        engine_decode_failed(shown, why, err);
    }
    return false;
}

/* Replaces *raw (the loader, or the stream over it) with a random-access
 * decode of `src` for the lenient load node, its pixels computed. */
static int
engine_reopen_lenient(graph *g, VipsSource *src, const char *shown,
                      exec_deadline *deadline, VipsImage **raw, kiln_error *err)
{
    VipsImage *im = NULL;
    double avg;
    if (exec_reopen(src, &g->nodes[0], false, &im, err) == KILN_OK) {
        exec_deadline_watch(deadline, im);
    }
    if (im == NULL || vips_avg(im, &avg, NULL) != 0) {
        if (exec_deadline_passed(deadline)) {
            if (im != NULL) {
                g_object_unref(im);
            }
            return exec_deadline_error(deadline, err);
        }
        char why[sizeof err->message];
        if (im != NULL) {
            g_object_unref(im);
            err_set_vips(err, NULL);
        }
        snprintf(why, sizeof why, "%s", err->message);
        return engine_decode_failed(shown, why, err);
    }
    stream_finish(*raw);
    g_object_unref(*raw);
    *raw = im;
    return KILN_OK;
}

/* Forgets what a run of the jobs left in res, for a second run. */
static void
engine_reset_jobs(exec_result *res)
{
    for (size_t j = 0; j < res->n_jobs; j++) {
        job_result *jr = &res->jobs[j];
        for (size_t k = 0; k < jr->n_warnings; k++) {
            free(jr->warnings[k]);
        }
        free(jr->warnings);
        jr->warnings = NULL;
        jr->n_warnings = 0;
        jr->ok = false;
        jr->error[0] = '\0';
        jr->width = jr->height = 0;
        jr->bytes = 0;
    }
    res->storage_errors = 0;
    res->ran_jobs = false;
}

/* A job failed while the source was read sequentially: was it the
 * source? Its pixels were decoded as the job pulled them, so a damaged
 * file (or a storage read that failed midway) fails inside the job's
 * encoder with the loader's or the backend's words. Decoding it again,
 * whole, tells; when that fails too, the process fails as a random-access
 * decode fails up front (path "source"), with the words the job saw
 * (`seen`): a second read of a broken stream says less. A JPEG whose
 * strict decode failed on a harmless warning is neither: the jobs run
 * again on a lenient decode (ENGINE_SOURCE_LENIENT). */
enum { ENGINE_SOURCE_FINE, ENGINE_SOURCE_DAMAGED, ENGINE_SOURCE_LENIENT };

static int
engine_source_damaged(graph *g, VipsSource *src, const char *shown,
                      const char *seen, kiln_error *err)
{
    graph_node plain;
    memset(&plain, 0, sizeof plain);
    plain.load_lenient = g->nodes[0].load_lenient;
    VipsImage *im = NULL;
    double avg;
    if (exec_reopen(src, &plain, false, &im, err) == KILN_OK &&
        vips_avg(im, &avg, NULL) == 0) {
        g_object_unref(im);
        return ENGINE_SOURCE_FINE;
    }
    if (im != NULL) {
        g_object_unref(im);
    }
    vips_error_clear();
    const char *said = strstr(seen, "libvips said: ");
    if (said != NULL) {
        seen = said + strlen("libvips said: ");
    }
    return engine_decode_lenient(g, src, shown, seen, err)
               ? ENGINE_SOURCE_LENIENT
               : ENGINE_SOURCE_DAMAGED;
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
    VipsImage *raw = NULL, *decoded = NULL;
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
    if (be != NULL) {
        /* A plugin's pixel backend (exec_native.c). */
        kiln_image_info info;
        rc = exec_native_open(src_st, g->req.source, lim.max_file_size, be,
                              &src, &info, &err);
        if (rc != KILN_OK) {
            res->source_failed = true;
            if (rc == KILN_EIO) {
                res->storage_errors++;
            }
            err_prefix_path(&err, "source");
            goto fail;
        }
        kiln_shape nshape = {info.width, info.height, info.has_alpha ? 4 : 3,
                             info.has_alpha};
        dsl_facts nfacts = {.format = arena_strdup(g->arena, info.format)};
        dsl_stages nst = {.shape = &nshape,
                          .bind_limits = &lim,
                          .facts = &nfacts,
                          .backend = be->be.name,
                          .level = e->opt_level};
        errlist nerrs = {0};
        arena *na = g->arena;
        rc = dsl_run(&nst, &na, &g, &nerrs);
        if (rc != KILN_OK) {
            engine_join_errors(&nerrs, res->error, sizeof res->error);
            for (size_t j = 0; j < g->n_jobs; j++) {
                snprintf(res->jobs[j].error, sizeof res->jobs[j].error, "%s",
                         res->error);
            }
            errlist_free(&nerrs);
            goto done;
        }
        errlist_free(&nerrs);
        rc = exec_native_run(e, st, be, g, src, &info, &lim, res, &err);
        if (rc != KILN_OK) {
            goto fail;
        }
        rc = res->ok ? KILN_OK : KILN_EINVAL;
        goto done;
    }
    rc = exec_open_source(src_st, g->req.source, lim.max_file_size,
                          lim.max_pixels, &res->deadline, true, &src, &raw,
                          &err);
    if (rc != KILN_OK) {
        res->source_failed = true;
        if (rc == KILN_EIO) {
            res->storage_errors++;
        }
        err_prefix_path(&err, "source");
        goto fail;
    }
    kiln_shape shape;
    exec_oriented_shape(raw, &shape);
    errlist errs = {0};
    /* The compiler's remaining stages: bind (the header only: the pixel
     * limit is checked before a single pixel is decoded), then the
     * passes, with what the header says. */
    dsl_facts facts = engine_facts(raw);
    dsl_stages stages = {.shape = &shape,
                         .bind_limits = &lim,
                         .facts = &facts,
                         .level = e->opt_level};
    arena *ga = g->arena;
    rc = dsl_run(&stages, &ga, &g, &errs);
    if (rc != KILN_OK) {
        engine_join_errors(&errs, res->error, sizeof res->error);
        for (size_t j = 0; j < g->n_jobs; j++) {
            snprintf(res->jobs[j].error, sizeof res->jobs[j].error, "%s",
                     res->error);
        }
        errlist_free(&errs);
        goto done;
    }
    errlist_free(&errs);
    bool sequential = false;
    engine_reopen(g, src, &raw, &sequential, &res->redecodes);
    if (g->fused_op > 0) {
        /* Pass fuse-jpeg: the thumbnail in one loop, or (the file is not
         * what the pass assumed) nothing done and the pipeline below. */
        VipsImage *made = NULL;
        bool taken = false;
        rc = exec_fused_run(g, src, raw, &res->deadline, &made, &taken, &err);
        if (rc != KILN_OK) {
            goto fail;
        }
        if (taken) {
            res->ran_jobs = true;
            rc = exec_graph_from(e, st, g, g->fused_op, made, res);
            g_object_unref(made);
            goto done;
        }
    }
    char shown[512];
    netguard_display_url(g->req.source, shown, sizeof shown);
    /* With random access, decode the pixels once, now: the loader keeps
     * them for every job (one decode for many outputs), and a truncated or
     * corrupt file fails here, named, rather than inside a job's encoder.
     * A sequential source is decoded as its one consumer pulls it. */
    exec_deadline_watch(&res->deadline, raw);
    double avg;
    if (!sequential && vips_avg(raw, &avg, NULL) != 0) {
        if (exec_deadline_passed(&res->deadline)) {
            rc = exec_deadline_error(&res->deadline, &err);
            goto fail;
        }
        char why[sizeof err.message];
        err_set_vips(&err, NULL);
        snprintf(why, sizeof why, "%s", err.message);
        if (!engine_decode_lenient(g, src, shown, why, &err)) {
            rc = err.code;
            goto fail;
        }
        rc = engine_reopen_lenient(g, src, shown, &res->deadline, &raw, &err);
        if (rc != KILN_OK) {
            goto fail;
        }
    }
    for (;;) {
        rc = exec_decode(raw, &decoded, &err);
        if (rc != KILN_OK) {
            err_prefix_path(&err, "source");
            goto fail;
        }
        exec_deadline_watch(&res->deadline, decoded);
        res->ran_jobs = true;
        rc = exec_graph(e, st, g, decoded, res);
        if (rc == KILN_OK || !sequential || res->timed_out ||
            !engine_jobs_failed_in_pixels(res)) {
            break;
        }
        const char *seen = "";
        for (size_t j = 0; j < res->n_jobs && seen[0] == '\0'; j++) {
            if (!res->jobs[j].ok) {
                seen = res->jobs[j].error;
            }
        }
        char saw[sizeof res->jobs[0].error];
        snprintf(saw, sizeof saw, "%s", seen);
        int verdict = engine_source_damaged(g, src, shown, saw, &err);
        if (verdict == ENGINE_SOURCE_DAMAGED) {
            /* As with an up-front decode failure: the process fails
             * whatever fail_on_conversion_error says. */
            res->ran_jobs = false;
            rc = err.code;
            goto fail;
        }
        if (verdict == ENGINE_SOURCE_FINE) {
            break;
        }
        /* Harmless JPEG warnings: nothing was written; run the jobs
         * again on a lenient, random-access decode. */
        g_object_unref(decoded);
        decoded = NULL;
        engine_reset_jobs(res);
        rc = engine_reopen_lenient(g, src, shown, &res->deadline, &raw, &err);
        if (rc != KILN_OK) {
            goto fail;
        }
        sequential = false;
    }
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
    if (decoded != NULL) {
        g_object_unref(decoded);
    }
    if (raw != NULL) {
        stream_finish(raw);
        g_object_unref(raw);
    }
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
