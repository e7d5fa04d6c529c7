/*
 * The one internal header of the core and dsl layers: arena, errors,
 * geometry, registry, loader, configuration, parameter parsing, the IR
 * graph and the stages that build and run it (parse -> compile -> bind ->
 * execute). Plugins never see this file; they see sdk/include/kiln only.
 */
#ifndef KILN_CORE_KILN_H
#define KILN_CORE_KILN_H

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
typedef struct reg_op {
    kiln_op op;
    kiln_plugin *owner;
} reg_op;

typedef struct reg_storage {
    kiln_storage st;
    kiln_plugin *owner;
} reg_storage;

typedef struct reg_service {
    kiln_service svc;
    kiln_plugin *owner;
} reg_service;

typedef struct registry {
    reg_op *ops;
    size_t n_ops, cap_ops;
    reg_storage *storages;
    size_t n_storages, cap_storages;
    reg_service *services;
    size_t n_services, cap_services;
} registry;

int registry_add_op(registry *r, kiln_plugin *owner, const kiln_op *op,
                    size_t size, kiln_error *err);
int registry_add_storage(registry *r, kiln_plugin *owner,
                         const kiln_storage *st, size_t size, kiln_error *err);
int registry_add_service(registry *r, kiln_plugin *owner,
                         const kiln_service *svc, size_t size, kiln_error *err);
/* Removes everything `owner` registered (a failed init is undone). */
void registry_remove_owner(registry *r, kiln_plugin *owner);
const reg_op *registry_find_op(const registry *r, const char *name);
const reg_storage *registry_find_storage(const registry *r, const char *name);
void registry_free(registry *r);
/* Checks a spec table against its struct size; used for ops and storage
 * settings at registration. */
int registry_check_specs(const char *what, const kiln_param_spec *specs,
                         size_t n, size_t struct_size, kiln_error *err);

/* ------------------------------------------------------------ loader.c */

struct kiln_plugin {
    char *path;
    char *name;
    char *version;
    void *handle; /* dlopen */
    const kiln_plugin_descriptor *desc;
    struct kiln_engine *engine;
    bool in_init;
    bool initialized;
};

/* Loads one plugin file into the engine's registry: dlopen, descriptor and
 * version checks, init. On any refusal nothing stays registered or open.*/
int loader_load_file(struct kiln_engine *e, const char *path, kiln_error *err);
/* Loads each enabled plugin name from the first directory that has it. */
int loader_load_config(struct kiln_engine *e, kiln_error *err);
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
    char *backend;
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
    char *jobstore_driver;
    char *jobstore_path;
    char *jobstore_dsn;
    kiln_limits limits;
    double rate_per_second;
    int rate_burst;
    /* Failed authentications allowed per client address (api.c). */
    double failed_auth_per_second;
    int failed_auth_burst;
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
const config_service *config_find_service(const kiln_config *c, int id);
void config_free(kiln_config *c);

/* ------------------------------------------------------------ params.c */

/* Parses `obj`'s members into a new params struct of `size` bytes per the
 * spec table; unknown members (other than those in the NULL-terminated
 * `skip` list, which the caller handles) are errors with a hint.
 * Every problem goes to errs with path "path.member". Returns KILN_OK or
 * KILN_EINVAL; *out is allocated in `a` either way. */
int params_parse(arena *a, const kiln_param_spec *specs, size_t n, size_t size,
                 const cJSON *obj, const char *path, const char *const *skip,
                 void **out, errlist *errs);
/* Resolves every set length of `params` against the input shape. */
int params_bind(const kiln_param_spec *specs, size_t n, void *params,
                const kiln_shape *in, const char *path, errlist *errs);
/* Text of one parameter value for dumps: symbolic ("50% of in.w") when
 * unbound, "320" (with the written text) when bound. */
void params_format_value(const kiln_param_spec *spec, const void *params,
                         bool bound, char *buf, size_t size);
bool params_is_set(const kiln_param_spec *spec, const void *params);
/* Describes a spec's type and range for `kiln ops` ("number -255..255"). */
void params_describe(const kiln_param_spec *spec, char *buf, size_t size);
void params_describe_default(const kiln_param_spec *spec, char *buf,
                             size_t size);
/* The spec as a JSON object for `kiln ops --format json`: name, kind,
 * required, range, units, values, defaults, doc; tools (and the chain
 * property tests) generate valid values from it. A new reference. */
cJSON *params_spec_json(const kiln_param_spec *spec);

/* ------------------------------------------------------ dsl/parse.c */

/* The syntax tree: every node knows its JSON path. */
typedef struct dsl_node {
    const cJSON *json;
    const char *path; /* "jobs[0].transformations[1].width" */
    const char *key;  /* member name, or NULL in arrays / at the root */
    struct dsl_node **children;
    size_t n_children;
} dsl_node;

/* Parses JSON text into a cJSON document (the caller deletes it); a
 * syntax error reports line and column. */
int dsl_parse_json(const char *text, size_t len, cJSON **out, kiln_error *err);
/* Parses JSON text; a syntax error reports line and column. The tree and
 * the cJSON document live as long as the arena. */
int dsl_parse(arena *a, const char *text, size_t len, dsl_node **out,
              kiln_error *err);
/* Deletes the cJSON document behind a tree (not in the arena). */
void dsl_release(dsl_node *root);
const dsl_node *dsl_child(const dsl_node *n, const char *key);
/* The compact JSON text of a value, for caret lines (in the arena). */
const char *dsl_value_text(arena *a, const cJSON *v);

/* ------------------------------------------------------------ graph.c */

typedef enum graph_kind {
    GRAPH_LOAD = 0,
    GRAPH_OP,
    GRAPH_ENCODE,
    GRAPH_STORE
} graph_kind;

typedef enum graph_format {
    FORMAT_JPEG = 0,
    FORMAT_PNG,
    FORMAT_WEBP,
    FORMAT_GIF,
    FORMAT_TIFF,
    FORMAT_AVIF,
    FORMAT_HEIC
} graph_format;

typedef struct graph_node {
    int id;
    graph_kind kind;
    int input; /* node id of the input, -1 for the load */
    int job;   /* job index, -1 for the load */
    const char *path;
    /* GRAPH_LOAD */
    const char *source;
    /* GRAPH_OP */
    const reg_op *op;
    void *params;
    /* GRAPH_ENCODE */
    graph_format format;
    int quality;
    kiln_color background;
    /* GRAPH_STORE */
    const char *destination;
    /* after bind */
    kiln_shape shape;
    /* Set by optimizer passes (optimize.c). A dead node was dropped: its
     * consumers read its input instead, dumps and the executor skip it. */
    bool dead;
    /* Live nodes that read this one. graph_add, graph_set_input,
     * graph_drop and graph_merge keep it: passes change inputs and kill
     * nodes only through them. */
    int n_users;
    const char *note; /* a pass's remark for dumps, or NULL */
    /* GRAPH_LOAD decoded at a reduced scale (shrink-on-load): the JPEG
     * shrink factor (1: none) or the WebP/SVG/PDF scale (0: none); `shape`
     * is then the reduced image and `full` the header's. */
    int load_shrink;
    double load_scale;
    kiln_shape full;
    /* GRAPH_LOAD of a JPEG whose libjpeg warnings source_check_jpeg found
     * harmless: decoded with fail_on error, not warning (exec_fail_on). */
    bool load_lenient;
    /* GRAPH_OP whose input was reduced, or that makes only a window of
     * its output (crop-first): it runs execute_reduced(). */
    bool is_reduced;
    kiln_reduction reduction;
} graph_node;

/* Request-level fields the compiler validated; the server uses them. */
typedef struct graph_request {
    int service_id;
    const char *source;
    const char *callback;
    bool notify_status;
    bool retry_postback;
    double wait_retry_delay; /* < 0: not given */
    bool fail_on_conversion_error;
    bool process;
    bool has_limits;
    kiln_limits limits; /* 0 members: not given */
} graph_request;

typedef struct graph {
    arena *arena;
    graph_node *nodes;
    size_t n_nodes, cap_nodes;
    size_t n_jobs;
    int *job_store; /* per job: id of its store node */
    graph_request req;
    bool bound;
    /* The source's loader ("jpeg", "webp", "svg", "pdf", "png", ...) when
     * known from its header, else guessed from its extension (guessed
     * true), or NULL: shrink-on-load plans for it. */
    const char *source_format;
    bool format_guessed;
    /* The source decodes to sRGB without a colour transform (sRGB or grey,
     * 8-bit, no alpha, no profile other than sRGB): averaging pixels
     * before or after decoding then gives the same colours. Guessed true
     * when only the extension is known. */
    bool source_plain;
    /* The source's header asks for a turn or mirror (EXIF orientation 2 to
     * 8); false when unknown. */
    bool source_oriented;
    int opt_level; /* the level opt_run ran at (passes may depend on it) */
    /* Pass fuse-jpeg: the op node the fused JPEG thumbnail loop makes
     * (exec_fused.c), or 0 (node 0 is the load) when there is none. */
    int fused_op;
} graph;

graph *graph_new(arena *a);
graph_node *graph_add(graph *g, graph_kind kind, int input, int job,
                      const char *path);
const char *graph_format_name(graph_format f);
/* Format from a destination's extension; false when unknown. */
bool graph_format_from_path(const char *path, graph_format *out);
bool graph_format_has_alpha(graph_format f);
/* The largest width or height the format's encoder writes. */
int graph_format_max_side(graph_format f);
extern const char *const graph_format_exts[]; /* NULL-terminated */

/* ------------------------------------------------------------- dump.c */

typedef enum dump_format { DUMP_TEXT = 0, DUMP_JSON, DUMP_DOT } dump_format;
void dump_graph(const graph *g, dump_format f, FILE *out);

/* How many live nodes read node `id`'s output (its consumers). */
size_t graph_n_consumers(const graph *g, int id);
/* Makes room for `cap` nodes in all (graph_add grows the array as well). */
int graph_reserve(graph *g, size_t cap);
/* Makes node `id` read `input` instead of its current input. */
void graph_set_input(graph *g, int id, int input);
/* Kills node `from`, whose readers read `to` instead (an identical node:
 * pass share-chains). */
void graph_merge(graph *g, int from, int to);
/* True when the source (node 0, a load) can be decoded sequentially: it
 * has one consumer, and every op its pixels flow through before they
 * reach an encoder or a node several jobs share (which the executor
 * renders into memory) reads its input once, in order
 * (KILN_OP_SEQUENTIAL). false when out of memory. */
bool graph_streams(const graph *g);
/* True when two shapes have the same size, bands and alpha. */
bool graph_same_shape(const kiln_shape *a, const kiln_shape *b);
/* Drops live op node `id`: its consumers read its input instead. */
void graph_drop(graph *g, int id);
/* The source format a loader nickname ("jpegload_source") or a path's
 * extension names ("jpeg", "webp", ...), or NULL when unknown. */
const char *graph_format_of_loader(const char *loader);
const char *graph_format_of_path(const char *path);

/* ---------------------------------------------------------- optimize.c */

/* What one pass did, for `kiln compile --passes`. */
typedef struct opt_report {
    int n_changes;  /* nodes dropped, merged, rewritten */
    char note[512]; /* one line saying what and why, or "" */
} opt_report;

/* Appends "%x WORD %y" to a pass's comma-separated list in buf (cut when
 * full), for its report line. */
void opt_list_add(char *buf, size_t size, int x, const char *word, int y);

/* A named optimizer pass (docs/optimizer.md). fn rewrites g in place and
 * fills rep; it fails only on allocation (or a plugin callback's error). */
typedef struct opt_pass {
    const char *name;
    const char *summary;
    int level;         /* the lowest -O level that runs it: 1 or 2 */
    bool exact;        /* outputs stay identical; else within the PSNR
                        * bound docs/optimizer.md states for it */
    bool needs_shapes; /* runs only on a bound graph */
    int (*fn)(graph *g, opt_report *rep, kiln_error *err);
} opt_pass;

#define OPT_LEVEL_MAX 3
#define OPT_LEVEL_DEFAULT 2

/* The passes, in the order they run. */
extern const opt_pass opt_passes[];
extern const size_t opt_n_passes;

/* Called after each pass the level selects: `skipped` when it needs
 * shapes and the graph is not bound; `g` as the pass left it. */
typedef void (*opt_observe_fn)(const opt_pass *p, const opt_report *rep,
                               bool skipped, const graph *g, void *user);

/* Runs every pass of `level` (0: none, 1: the exact ones, 2: all, 3: all
 * with shrink-on-load down to the needed size, see docs/optimizer.md) on g,
 * bound or not (passes that need shapes are skipped on an unbound graph).
 * observe may be NULL. Returns KILN_OK or the first pass's failure. */
int opt_run(graph *g, int level, opt_observe_fn observe, void *user,
            kiln_error *err);
/* Parses "0" to "3" (the digit of -O0..-O3); false otherwise. */
bool opt_parse_level(const char *s, int *level);

/* The passes (pass_*.c). */
int pass_drop_noops(graph *g, opt_report *rep, kiln_error *err);
int pass_merge_pairs(graph *g, opt_report *rep, kiln_error *err);
int pass_fuse_luts(graph *g, opt_report *rep, kiln_error *err);
int pass_fuse_resamples(graph *g, opt_report *rep, kiln_error *err);
int pass_shrink_on_load(graph *g, opt_report *rep, kiln_error *err);
int pass_share_chains(graph *g, opt_report *rep, kiln_error *err);
int pass_reuse_reductions(graph *g, opt_report *rep, kiln_error *err);
int pass_fuse_jpeg(graph *g, opt_report *rep, kiln_error *err);
int pass_crop_first(graph *g, opt_report *rep, kiln_error *err);

/* Shrink-on-load's plan for a source of w x h (oriented) whose consumers
 * need at least need_w x need_h: the JPEG shrink factor (1, 2, 4 or 8)
 * whose decoded size floor(w / s) x floor(h / s) still covers the need. */
int pass_jpeg_shrink(int w, int h, int need_w, int need_h);
/* Undoes a shrink-on-load plan (the reduced decode did not give the size
 * it promised): the load and its consumers get their bound shapes back. */
void pass_shrink_undo(graph *g);

/* ---------------------------------------------------- dsl/compile.c */

/* Compiles a parsed request into an IR graph in the tree's arena: one load
 * node, per job its op chain, an encode and a store node. Every problem
 * goes to errs. Returns KILN_OK or KILN_EINVAL. */
int dsl_compile(const registry *reg, const kiln_limits *limits, arena *a,
                const dsl_node *root, graph **out, errlist *errs);

/* ------------------------------------------------------------- bind.c */

/* Binds a graph to a source shape (oriented as the ops will see it):
 * resolves every length, runs every op's infer, checks limits. */
int bind_graph(graph *g, const kiln_shape *source, const kiln_limits *lim,
               errlist *errs);

/* ------------------------------------------------------------- exec.c */

typedef struct job_result {
    const char *destination;
    bool ok;
    const char *format;
    int width, height;
    int64_t bytes;
    double duration_ms;
    char error[1024];
    char **warnings;
    size_t n_warnings;
} job_result;

/* The max_process_time of one run: a pipeline that runs past `at_ms`
 * (CLOCK_MONOTONIC milliseconds; 0: no limit) is killed. */
typedef struct exec_deadline {
    double at_ms;
    double limit_s;
    const volatile int *cancel; /* non-zero: stop now (server shutdown) */
    volatile int expired;       /* set from libvips worker threads */
    volatile int cancelled;     /* expired because of *cancel */
} exec_deadline;

typedef struct exec_result {
    bool ok;            /* every job finished */
    bool timed_out;     /* cancelled by max_process_time */
    bool cancelled;     /* stopped by a server shutdown: run it again */
    int storage_errors; /* reads, writes and commits the storage failed */
    exec_deadline deadline;
    bool source_failed; /* the source could not be read (retryable) */
    bool ran_jobs;      /* the jobs ran (the source was read and bound) */
    int redecodes;      /* times a streamed source was decoded again */
    char error[1024];
    job_result *jobs;
    size_t n_jobs;
    double duration_ms;
} exec_result;

/* ----------------------------------------------------------- engine.c */

typedef struct engine_storage {
    int service_id;
    const config_vector *vector; /* the service's; NULL: none */
    const reg_storage *backend;
    void *state;
} engine_storage;

struct jobstore;
struct runner;
struct api_limiter;
struct postbacker;
struct kiln_metrics;
struct netguard_allow;

struct kiln_engine {
    kiln_config *config;
    /* Set by `kiln serve` for the API (api.c); NULL otherwise. */
    struct jobstore *store;
    struct runner *runner;
    struct api_limiter *limiter;
    struct postbacker *postbacker;
    /* Set when a shutdown's grace period is over: running pipelines are
     * killed and their processes go back to the queue. */
    volatile int cancel;
    /* Always present: */
    struct kiln_metrics *metrics;
    struct netguard_allow *net_allow; /* network.allow, parsed */
    /* The optimizer level engine_execute runs (0..2; default 2). */
    int opt_level;
    arena *arena; /* storage settings live as long as the engine */
    registry reg;
    kiln_plugin **plugins;
    size_t n_plugins;
    engine_storage *storages;
    size_t n_storages;
    /* Where URL sources are read: the "http" storage backend with its
     * default settings for services with remote_sources: true (backend
     * NULL when no such plugin is loaded or no service wants it), and
     * one instance per service whose remote_sources is an object of
     * settings. */
    engine_storage remote;
    engine_storage *remotes;
    size_t n_remotes;
};

/* Creates an engine for a configuration it takes ownership of: loads the
 * enabled plugins and opens each service's storage. */
int engine_new_take(kiln_config *cfg, bool open_storage, kiln_engine **out,
                    kiln_error *err);
void engine_free(kiln_engine *e);
/* Parses and compiles request text; errors (syntax or every validation
 * problem) go to errs. *out lives in *arena_out, which the caller frees. */
int engine_compile(kiln_engine *e, const char *text, size_t len,
                   arena **arena_out, graph **out, errlist *errs);
/* Runs a compiled graph: reads the source from the service's storage,
 * binds, executes every job, writes outputs whole or not at all. */
int engine_execute(kiln_engine *e, graph *g, exec_result *res);
/* The limits a compiled request runs under: its service's, lowered by the
 * request's own `limits`. */
kiln_limits engine_process_limits(const kiln_engine *e, const graph *g);
/* Runs the optimizer's passes at `level` on a bound graph whose source
 * header is *raw (the source's format and plainness come from it), then
 * opens `src` again the way the optimized graph reads it; *raw (its
 * random-access header image) is replaced when that differs:
 *  - with the reduced decode shrink-on-load planned, if any; when that
 *    image is not the size the plan promised (a loader rounding another
 *    way), the plan is undone and the full-size decode kept;
 *  - in strips, through the stream (stream.c), when the graph streams
 *    (graph_streams; *sequential is set): the pixels are then decoded as
 *    the one consumer's pipeline pulls them, never held whole. Otherwise
 *    (several jobs that start differently, an op that reads its input
 *    twice, an EXIF orientation) the source stays in random-access mode,
 *    where libvips decodes it once into memory for all of them.
 * *redecodes counts the stream's second decodes (may be NULL). No pixel
 * is read here. */
int engine_optimize(graph *g, int level, VipsSource *src, VipsImage **raw,
                    bool *sequential, int *redecodes, kiln_error *err);
void exec_result_free(exec_result *r);
/* The status-body JSON for a result (api.md). */
cJSON *exec_result_json(const graph *g, const exec_result *r,
                        const char *process_id);
const engine_storage *engine_find_storage(const kiln_engine *e, int id);
/* True when `source` is a URL (http:// or https://), not a storage path. */
bool engine_source_is_url(const char *source);
/* Checks that service `service_id` may read `source`: a URL needs
 * remote_sources, a loaded "http" backend and an address the network
 * guard allows. Errors carry path "source". */
int engine_check_source(const kiln_engine *e, int service_id,
                        const char *source, kiln_error *err);

/* The HTTP API's semantics, transport-free (api.c): the host API's
 * api_call and reply_free. */
void api_call(kiln_engine *e, const kiln_call *call, kiln_reply *out);
void api_call_from(kiln_engine *e, const kiln_call *call,
                   const struct sockaddr *peer, kiln_reply *out);
void api_reply_free(kiln_reply *r);
struct api_limiter *api_limiter_new(void);
void api_limiter_free(struct api_limiter *l);

/* Encodes `im` (8-bit sRGB, flattened where the format has no alpha) as
 * format f into target and ends it (encode.c); -1 with the libvips error
 * set on failure. quality is the contract's 0..100. */
int encode_save(VipsImage *im, graph_format f, int quality, VipsTarget *target);
/* True when encode_save() writes `im` as a JPEG with libjpeg directly:
 * 8-bit sRGB, 3 bands, in memory. */
bool encode_jpeg_direct_ok(VipsImage *im);
/* That JPEG, the bytes vips_jpegsave(Q = q, strip) makes; 0 or -1 with
 * the libvips error buffer set. */
int encode_jpeg_direct(VipsImage *im, int q, VipsTarget *target);

/* Whether a loader (the type name vips_foreign_find_load_source gives)
 * reads a format kiln admits as a source (source_format.c). */
bool source_format_allowed(const char *loader);
/* "svg" or "pdf" when `src` is an SVG (by libvips' `loader`) or a PDF (by
 * its first bytes) and v (may be NULL) enables that format; else NULL. */
const char *source_format_vector(VipsSource *src, const char *loader,
                                 const config_vector *v);
/* What a refused source is, for its error: "a PDF document", ... */
void source_format_describe(VipsSource *src, const char *loader, char *buf,
                            size_t size);

/* Checks a JPEG's data for an end before the image's (source_check.c):
 * KILN_OK, or KILN_EINVAL with a message in our words ("it is truncated:
 * ...", the library's text as detail). Entropy-decodes the file at an
 * eighth of its size: about half the work of a decode. */
int source_check_jpeg(VipsSource *src, kiln_error *err);
/* The same for the first frame of a GIF, from its LZW codes alone (no
 * pixel is made): libvips shows missing GIF data as transparent rows. */
int source_check_gif(VipsSource *src, kiln_error *err);

/* Executes a bound graph with an open source image (exec.c). */
int exec_graph(kiln_engine *e, const engine_storage *st, graph *g,
               VipsImage *source, exec_result *res);
/* The same with op node `node`'s output already made (`made`, which it
 * does not take): the jobs start from it (node -1: made is the source). */
int exec_graph_from(kiln_engine *e, const engine_storage *st, graph *g,
                    int node, VipsImage *made, exec_result *res);

/* ------------------------------------------------------- exec_fused.c */

/* Makes g->fused_op's output from the JPEG bytes of `src` in one loop:
 * libjpeg's DCT-scaled decode, the Lanczos3 kernels (kernels/), into a
 * w x h sRGB image in memory (*out, a new reference) carrying `header`'s
 * resolution. *taken is false, and nothing made, when the file is not
 * what the pass assumed or libjpeg has anything to say about it (a
 * warning, an error): the general path then runs, whose strict and
 * lenient decodes deal with it. KILN_OK, or the deadline's error. */
int exec_fused_run(const graph *g, VipsSource *src, VipsImage *header,
                   exec_deadline *dl, VipsImage **out, bool *taken,
                   kiln_error *err);
/* Decodes an image the way every source is decoded: auto-orient, sRGB,
 * 8-bit. *out is a new reference. */
int exec_decode(VipsImage *in, VipsImage **out, kiln_error *err);
/* Opens an image from storage: header only, nothing decoded. A JPEG or
 * GIF is checked for missing data first (source_check.c) and decoded
 * leniently: an error fails, a harmless warning does not. */
int exec_open_stored(const engine_storage *st, const char *path,
                     int64_t max_bytes, VipsImage **out, kiln_error *err);
/* The same, and also hands back the source it read (one new reference in
 * *src_out, when not NULL) so that it can be opened again. An SVG or PDF
 * that the service enables is rendered in a child process (render.c)
 * under max_pixels and `dl` (may be NULL), and *src_out is then the PNG
 * it rendered. With `strict`, a JPEG is not checked and its decode fails
 * on any libjpeg warning: the caller asks source_check_jpeg what a failure
 * meant, and opens it again leniently when the warning was harmless
 * (engine.c). A GIF is always checked here. */
int exec_open_source(const engine_storage *st, const char *path,
                     int64_t max_bytes, int64_t max_pixels,
                     const exec_deadline *dl, bool strict, VipsSource **src_out,
                     VipsImage **out, kiln_error *err);
/* True when libvips reads `src` with its JPEG loader. */
bool exec_is_jpeg(VipsSource *src);

/* ------------------------------------------------------------ render.c */

/* Renders an SVG or PDF (`format` "svg" or "pdf") in a child process under
 * v's CPU and memory limits, killed at dl's deadline or cancel (dl may be
 * NULL). *out (malloc'd, *out_len bytes) is an uncompressed PNG of at
 * most max_pixels pixels. KILN_ELIMIT when a limit stopped it,
 * KILN_EINVAL when the file does not render (the renderer's words). */
int render_source(const char *format, const void *bytes, size_t len,
                  int64_t max_pixels, const config_vector *v,
                  const exec_deadline *dl, void **out, size_t *out_len,
                  kiln_error *err);
/* The child: `kiln render-source FORMAT MAX_PIXELS MAX_CPU_S MAX_MEMORY`
 * reads the file on stdin, writes the PNG on stdout, says why on stderr.
 * Returns the exit status. */
int render_source_main(int argc, char **argv);
/* Opens `src` again for the run, header only: with the reduced decode a
 * shrink-on-load plan put on the load node (JPEG shrink, or scale), if
 * any, and sequential access when `sequential` (the pixels are then read
 * once, top to bottom, as they are consumed). A JPEG fails on warnings
 * unless the load node is lenient. *out is a new reference. */
int exec_reopen(VipsSource *src, const graph_node *load, bool sequential,
                VipsImage **out, kiln_error *err);
/* Host API entries for ops (exec.c). */
void exec_warn(kiln_exec *ctx, const char *fmt, ...) KILN_PRINTF(2, 3);
int exec_load_image(kiln_exec *ctx, const char *path, VipsImage **out,
                    kiln_error *err);
/* Cancels the pipelines that read `im` once the deadline passes: libvips
 * signals evaluation progress on it and the handler kills it. */
void exec_deadline_watch(exec_deadline *d, VipsImage *im);
bool exec_deadline_passed(exec_deadline *d);
/* Fills err with why the run was cancelled (its max_process_time, or
 * the server's shutdown). */
int exec_deadline_error(const exec_deadline *d, kiln_error *err);
/* Width and height after EXIF auto-orientation. */
void exec_oriented_shape(VipsImage *im, kiln_shape *out);
/* True when exec_decode() turns `im` into sRGB with no colour transform
 * (it is 8-bit sRGB or grey without alpha, and any profile is sRGB). */
bool exec_decode_is_plain(VipsImage *im);

/* ----------------------------------------------------------- stream.c */

/* Wraps `loader`, a sequential decode of `src` (opened with exec_reopen
 * for `load`), into *out: an image with its header and metadata, not
 * linked to it, whose pixels are read from the loader without a copy. A
 * read that fails (a chain that went above the loader's cache) decodes
 * `src` again, whole, from an independent copy of its bytes, serves that
 * request and every later one from it, and bumps *restarts (may be
 * NULL). *out is a new reference; it holds references to src and
 * loader. */
int stream_new(VipsSource *src, const graph_node *load, VipsImage *loader,
               int *restarts, VipsImage **out, kiln_error *err);
/* After the last job that reads `im` (a stream_new image; anything else
 * is ignored): releases the memory its loader holds. */
void stream_finish(VipsImage *im);

#endif /* KILN_CORE_KILN_H */
