/*
 * The host's base (base/), below the compiler (dsl/dsl.h) and the
 * executor (core/kiln.h): arena, clock, errors, suggestions, geometry and
 * the registry of what plugins registered, defined in this folder; and
 * the types of the loader and the configuration, which core/ defines
 * (they are above the compiler: the configuration parses JSON with it).
 * Nothing here calls up: a length default is checked through the
 * registry's check_length, which the engine sets to the compiler's
 * lexer. Plugins never see this file; they see sdk/include/kiln only.
 */
#ifndef KILN_BASE_HOST_H
#define KILN_BASE_HOST_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "kiln/plugin.h"

/* ------------------------------------------------------------- arena.c */

/* A per-job bump allocator (nginx pools): every compile-time object lives
 * in one and is freed with it. Allocations are zeroed. */
typedef struct arena arena;

arena *arena_new(void);
void arena_free(arena *a);
void *arena_alloc(arena *a, size_t n);
char *arena_strdup(arena *a, const char *s);
char *arena_strndup(arena *a, const char *s, size_t n);
char *arena_printf(arena *a, const char *fmt, ...) KILN_PRINTF(2, 3);

/* ------------------------------------------------------------- clock.c */

/* Milliseconds on the monotonic clock (durations and deadlines only). */
double clock_ms(void);

/* ------------------------------------------------------ vips_modules.c */

/* Before VIPS_INIT: keeps libvips from opening all its modules. */
void vips_modules_hold(void);
/* After VIPS_INIT: opens the named ones ("heif", "poppler"). */
void vips_modules_load(const char *const *names, size_t n);

/* ------------------------------------------------------------- error.c */

int err_set(kiln_error *err, int code, const char *fmt, ...) KILN_PRINTF(3, 4);
int err_vset(kiln_error *err, int code, const char *fmt, va_list ap);
int err_set_path(kiln_error *err, int code, const char *path, const char *fmt,
                 ...) KILN_PRINTF(4, 5);
int err_set_param(kiln_error *err, int code, const char *param, const char *fmt,
                  ...) KILN_PRINTF(4, 5);
int err_set_vips(kiln_error *err, const char *what);
/* strerror(e) in lower case, as messages are written ("no space left on
 * device"); returns buf. */
const char *err_errno_text(int e, char *buf, size_t size);
/* Writes `s` double-quoted into out for a message: '"' and '\\' escaped,
 * control bytes as \xNN, cut with "..." to fit `size` (at least 16).
 * NULL quotes as "". Returns out. The host API's quote(). */
const char *err_quote(char *out, size_t size, const char *s);
void err_clear(kiln_error *err);

/* ---------------------------------------------------------------- log.c */

/* One field of a log line: a string (NULL: none) or a number. */
typedef struct log_field {
    const char *key;
    const char *str;
    double num;
    bool is_num;
} log_field;
#define LOG_S(k, v) ((log_field){.key = (k), .str = (v)})
#define LOG_N(k, v)                                                            \
    ((log_field){.key = (k), .num = (double)(v), .is_num = true})

/* The process's log: JSON lines or text, at `level` and above (KILN_DEBUG
 * in the environment: debug). Until called: text, info. */
void log_setup(bool json, kiln_log_level level);
bool log_enabled(kiln_log_level level);
/* "error", "warn" ("warning"), "info", "debug" -> the level; -1 if none. */
int log_level_parse(const char *name);
/* One line: `event` ("request", "process", ...) and its fields. Never
 * pass a token, a secret or a URL's query. */
void log_event(kiln_log_level level, const char *event, const log_field *fields,
               size_t n);
/* One line whose field is a message ("msg"), after `first` (may be
 * NULL). */
void log_vmsg(kiln_log_level level, const char *event, const log_field *first,
              const char *fmt, va_list ap);
/* One line whose one field is a message ("msg"). */
void log_msg(kiln_log_level level, const char *event, const char *fmt, ...)
    KILN_PRINTF(3, 4);
/* Makes err->path "prefix.path" (or "prefix" when path is empty). */
void err_prefix_path(kiln_error *err, const char *prefix);

/* Collected errors: compile and bind report every problem, not the first.
 * `value` is the JSON text of the bad value (for the caret line) or NULL. */
typedef struct err_item {
    kiln_error e;
    char *value;
} err_item;

typedef struct errlist {
    err_item *items;
    size_t n, cap;
} errlist;

void errlist_add(errlist *l, const kiln_error *e, const char *value);
/* Adds an EINVAL error "path: message"; `value` (or NULL) is the JSON
 * text of the bad value and offset/length mark the bad part (-1, 0: no
 * caret). */
void errlist_vaddf(errlist *l, const char *path, const char *value, int offset,
                   int length, const char *fmt, va_list ap);
void errlist_free(errlist *l);
/* "path: message", then the value and a caret line under the bad part. */
void errlist_print(const errlist *l, FILE *f);
/* One error as "path: message" into buf. */
void err_format(const kiln_error *e, char *buf, size_t size);

/* ----------------------------------------------------------- suggest.c */

/* The candidate nearest to `word` by edit distance, if near enough to be
 * a likely typo; NULL otherwise. */
const char *suggest_nearest(const char *word, const char *const *cands,
                            size_t n);
/* Formats " (did you mean \"x\"?)" into buf, or "" when nothing is near. */
void suggest_hint(const char *word, const char *const *cands, size_t n,
                  char *buf, size_t size);

/* ---------------------------------------------------------- geometry.c */

long geom_round(double v); /* halves away from zero */
void geom_place(kiln_gravity gravity, int cw, int ch, int rw, int rh, int dx,
                int dy, int *x, int *y);
int geom_resolve_length(const kiln_length *len, kiln_axis axis, int ref_w,
                        int ref_h, int *px, kiln_error *err);
int geom_derive_size(const kiln_length *w, const kiln_length *h, int ref_w,
                     int ref_h, int *out_w, int *out_h, kiln_error *err);
extern const char *const geom_gravity_names[]; /* NULL-terminated */
const char *geom_gravity_name(kiln_gravity g);
const char *geom_unit_name(kiln_unit u);

#define KILN_MAX_SIZE 65535

/* ---------------------------------------------------------- registry.c */

/* Registered items are copied into full-size structs, zero-filled past
 * what an older plugin knew, so the core never reads past a descriptor. */
typedef struct reg_impl {
    kiln_op_impl impl;
    kiln_plugin *owner;
} reg_impl;

/* The most backends one op may have implementations for. */
#define REG_MAX_IMPLS 8

typedef struct reg_op {
    kiln_op op;
    kiln_plugin *owner;
    reg_impl impls[REG_MAX_IMPLS]; /* in the order they were registered */
    size_t n_impls;
} reg_op;

typedef struct reg_storage {
    kiln_storage st;
    kiln_plugin *owner;
} reg_storage;

typedef struct reg_service {
    kiln_service svc;
    kiln_plugin *owner;
} reg_service;

typedef struct reg_backend {
    kiln_backend be;
    kiln_plugin *owner;
    /* It runs the compiler's whole graphs itself (an executor the engine
     * holds: backend-vips), so every optimizer pass applies to it; a
     * backend run through the SDK gets only the passes any backend runs
     * (opt_pass.vips_only). */
    bool runs_graphs;
} reg_backend;

/* Checks a length default's text (the compiler's lexer, dsl_lex_length:
 * the registry is below the compiler and cannot call it). */
typedef int (*registry_length_fn)(const char *text, unsigned units,
                                  kiln_length *out, kiln_error *err);

typedef struct registry {
    /* Set by whoever fills the registry (the engine: dsl_lex_length);
     * NULL: length defaults are not checked. */
    registry_length_fn check_length;
    reg_op *ops;
    size_t n_ops, cap_ops;
    reg_storage *storages;
    size_t n_storages, cap_storages;
    reg_service *services;
    size_t n_services, cap_services;
    reg_backend *backends;
    size_t n_backends, cap_backends;
} registry;

int registry_add_op(registry *r, kiln_plugin *owner, const kiln_op *op,
                    kiln_error *err);
int registry_add_op_impl(registry *r, kiln_plugin *owner,
                         const kiln_op_impl *impl, kiln_error *err);
/* Copies a plugin's struct of `size` bytes into `full` (this host's
 * `known` bytes): at least `min`; a larger one only when what this host
 * does not know is zero. KILN_OK or KILN_EABI naming `what`. */
int registry_take_struct(const char *what, const char *name, const void *p,
                         size_t size, size_t min, size_t known, void *full,
                         kiln_error *err);
/* op's implementation for `backend`, or NULL. */
const reg_impl *registry_op_impl(const reg_op *op, const char *backend);
int registry_add_storage(registry *r, kiln_plugin *owner,
                         const kiln_storage *st, kiln_error *err);
int registry_add_service(registry *r, kiln_plugin *owner,
                         const kiln_service *svc, kiln_error *err);
int registry_add_backend(registry *r, kiln_plugin *owner, const kiln_backend *b,
                         kiln_error *err);
/* The pixel backend `name` a plugin registered ("vips": the built-in
 * backend-vips), or NULL. */
const reg_backend *registry_find_backend(const registry *r, const char *name);
/* Marks backend `name` as running whole graphs (reg_backend.runs_graphs);
 * false when no such backend is registered. */
bool registry_set_runs_graphs(registry *r, const char *name);
/* True when `name` is a registered pixel backend. */
bool registry_has_backend(const registry *r, const char *name);
/* The implementation an op runs with on a service whose backend is
 * `backend`: its own, else libvips' (the host converts at the boundary),
 * else NULL. */
const reg_impl *registry_impl_for(const registry *r, const reg_op *op,
                                  const char *backend);
/* Removes everything `owner` registered (a failed init is undone). */
void registry_remove_owner(registry *r, kiln_plugin *owner);
const reg_op *registry_find_op(const registry *r, const char *name);
const reg_storage *registry_find_storage(const registry *r, const char *name);
void registry_free(registry *r);
/* Checks a spec table against its struct size; used for ops and storage
 * settings at registration. */
int registry_check_specs(const registry *r, const char *what,
                         const kiln_param_spec *specs, size_t n,
                         size_t struct_size, kiln_error *err);

/* ------------------------------------------------------------ loader.c */

struct kiln_plugin {
    char *path;
    char *name;
    char *version;
    void *handle; /* dlopen; NULL for a built-in plugin */
    const kiln_plugin_descriptor *desc;
    bool builtin; /* compiled into kiln (kiln_builtin_plugins) */
    struct kiln_engine *engine;
    bool in_init;
    bool initialized;
};

/* Loads one plugin file into the engine's registry: dlopen, descriptor and
 * version checks, init. On any refusal nothing stays registered or open.*/
int loader_load_file(struct kiln_engine *e, const char *path, kiln_error *err);
/* Loads the built-in plugins, then each enabled plugin name from the
 * first directory that has it. */
int loader_load_config(struct kiln_engine *e, kiln_error *err);
/* The plugins compiled into kiln, NULL-terminated (generated from the
 * Makefile's BUILTIN_PLUGINS): always loaded, first. */
extern const kiln_plugin_descriptor *const kiln_builtin_plugins[];
void loader_unload_all(struct kiln_engine *e);
/* The host API table handed to every plugin. */
const kiln_host_api *loader_host_api(void);

/* ------------------------------------------------------------ config.c */

typedef struct kiln_limits {
    int64_t max_pixels;
    int64_t max_file_size;
    double max_process_time;
    int max_jobs;
    int64_t max_body;
} kiln_limits;

/* A service's "vector_sources": SVG and PDF, rendered in a child process
 * (render.c) because their renderers cannot be cancelled. */
typedef struct config_vector {
    bool svg, pdf;
    double max_cpu_time; /* s of CPU one render may use */
    int64_t max_memory;  /* bytes of address space of the child */
} config_vector;

typedef struct config_service {
    int id;
    char **tokens;
    size_t n_tokens;
    char *secret;
    char *backend;      /* the pixel backend: "vips" (default), "magick" */
    char *backend_path; /* its JSON path, for messages */
    bool remote_sources;
    cJSON *remote_settings; /* remote_sources as an object, or NULL */
    char *remote_path;      /* its JSON path, for messages */
    char *storage_plugin;
    cJSON *storage;     /* the settings object, parsed when plugins load */
    char *storage_path; /* its JSON path, for messages */
    bool has_limits;
    kiln_limits limits;
    config_vector vector; /* both formats off unless configured */
} config_service;

typedef struct kiln_config {
    char *listen;
    /* metrics.listen: GET /metrics without a token there (NULL: none). */
    char *metrics_listen;
    int workers;
    double shutdown_timeout; /* s running work may take to finish at stop */
    /* s a process that does not stop may run past max_process_time (or
     * past shutdown_timeout) before kiln ends it by force (runner.c) */
    double kill_after;
    int max_interruptions; /* interrupted this often: FAILED, not re-run */
    int opt_level;         /* "optimize": the passes' level, 0..3 */
    char **plugin_dirs;
    size_t n_plugin_dirs;
    char **enable;
    size_t n_enable;
    /* plugins.settings: an object per service name, parsed with the
     * service's own table once its plugin is loaded (or NULL). */
    cJSON *plugin_settings;
    char *jobstore_driver;
    char *jobstore_path;
    char *jobstore_dsn;
    /* jobstore.retention_days: finished and failed processes older than
     * this are pruned by kiln serve (0: kept for ever). */
    int jobstore_retention_days;
    kiln_limits limits;
    double rate_per_second;
    int rate_burst;
    /* Failed authentications allowed per client address (api.c). */
    double failed_auth_per_second;
    int failed_auth_burst;
    /* rate_limit.scope "host": each host counts for itself, even on a
     * shared job store; "cluster" (default): counted in the job store
     * when it is shared by hosts (PostgreSQL). */
    bool rate_per_host;
    /* log.format "json" (else text) and log.level (KILN_LOG_*). */
    bool log_json;
    int log_level;
    kiln_http_settings http; /* "http": the transport's connection limits */
    char **network_allow;
    size_t n_network_allow;
    config_service *services;
    size_t n_services;
    bool dev_token; /* the token was generated: print it at start-up */
} kiln_config;

/* Parses a configuration file; every error goes to errs with its path. */
int config_load_file(const char *path, kiln_config **out, errlist *errs);
int config_load_text(const char *text, size_t len, kiln_config **out,
                     errlist *errs);
/* The embedded defaults (config.md). */
int config_default(kiln_config **out, kiln_error *err);
/* Points every service at local storage under `root` (kiln run). */
int config_set_storage_root(kiln_config *c, const char *root, kiln_error *err);
/* Sets the address kiln serve listens on (kiln serve --listen), checked
 * as the "listen" key is: KILN_EINVAL and a message quoting the value
 * when it is not IPV4:PORT or [IPV6]:PORT. */
int config_set_listen(kiln_config *c, const char *listen, kiln_error *err);
/* Sets every service's pixel backend (kiln run --backend); checked when
 * the engine starts. */
void config_set_backend(kiln_config *c, const char *backend);
const config_service *config_find_service(const kiln_config *c, int id);
void config_free(kiln_config *c);

#endif /* KILN_BASE_HOST_H */
