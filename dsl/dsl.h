/*
 * The compiler (the dsl layer): a request's JSON through its stages in
 * order (stages.c runs them): parse -> compile into the IR graph -> bind
 * to the source's size -> the optimizer's passes. It calls the host's base
 * (base/host.h: arena, errors, registry, configuration types) and nothing of
 * the executor. Plugins never see this file.
 */
#ifndef KILN_DSL_DSL_H
#define KILN_DSL_DSL_H

#include "../base/host.h"

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

/* ------------------------------------------------------------- parse.c */

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
    /* A dead GRAPH_OP that share-chains merged: 1 + the id of the live
     * node that runs in its place for its job (0: none), so that an
     * error there is told at this job's own path (graph_job_path). */
    int runs_as;
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
     * (plugins/backend-vips/fused.c), or 0 (node 0 is the load) when there is
     * none. */
    int fused_op;
    /* The service's pixel backend runs through the SDK, not whole graphs
     * (reg_backend.runs_graphs): the passes whose results only the
     * libvips executor runs are left out. */
    bool native;
} graph;

graph *graph_new(arena *a);
graph_node *graph_add(graph *g, graph_kind kind, int input, int job,
                      const char *path);
const char *graph_format_name(graph_format f);
/* Format from a destination's extension; false when unknown. */
bool graph_format_from_path(const char *path, graph_format *out);
bool graph_format_has_alpha(graph_format f);
/* The largest width or height the format's encoder writes. */
/* HEIC's encoder (x265 through libheif) writes a file without its image
 * when a side is under GRAPH_HEIC_NARROW px and the other over the
 * returned length: the most that side may be then (0: no such limit). */
#define GRAPH_HEIC_NARROW 32
int graph_format_narrow_max(graph_format f);
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
/* An error of job `job` at a node share-chains made it share with
 * another job carries that job's path ("jobs[0].transformations[1]");
 * puts this job's own path for the same op in its place. */
void graph_job_path(const graph *g, int job, kiln_error *err);
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
    bool vips_only;    /* what it makes only the libvips executor runs
                        * (reduced or windowed inputs, the fused loops) */
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
/* The op fuse-luts makes (its definition: the executor applies it), and
 * its params: the table on the colour bands, alpha mapped to itself. */
typedef struct dsl_lut_params {
    uint8_t table[3][256];
} dsl_lut_params;
extern const reg_op dsl_lut_op;
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

/* ----------------------------------------------------------- compile.c */

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

/* ------------------------------------------------------------ stages.c */

/* What the source's header says about it, for the passes: its format (and
 * whether that was guessed from the extension), whether it decodes to
 * sRGB without a colour transform, whether it asks for a turn. */
typedef struct dsl_facts {
    const char *format;
    bool format_guessed;
    bool plain;
    bool oriented;
} dsl_facts;

/* One run of the stages (dsl_run): what each needs; a stage whose input is
 * missing is not run. */
typedef struct dsl_stages {
    const registry *reg;
    const kiln_limits *limits; /* compile, and bind unless bind_limits */
    /* The limits of the service a request names (-1: none valid), for
     * compile; NULL: `limits`. */
    kiln_limits (*limits_for)(void *user, int service_id);
    /* The pixel backend of the service a request names (-1: none valid),
     * for compile: every op must have an implementation for it. NULL: not
     * checked. */
    const char *(*backend_for)(void *user, int service_id);
    /* The pixel backend the passes are for (NULL: backend_for's answer;
     * neither, or no reg: every pass): on one that does not run whole
     * graphs (reg_backend.runs_graphs), only the passes every backend
     * runs (opt_pass.vips_only). */
    const char *backend;
    /* Asked right after the parse with the service id the request names
     * (-1: none valid): false stops the run with KILN_EPERM and no error
     * (the server's check that a token may use that service comes before
     * any validation answer). NULL: every service. */
    bool (*admit)(void *admit_user, int service_id);
    void *admit_user;
    const char *text; /* parse and compile, when *g is NULL */
    size_t len;
    const kiln_shape *shape; /* bind to it; NULL: sizes unknown */
    const kiln_limits *bind_limits;
    const dsl_facts *facts; /* set on the graph before the passes */
    int level;              /* the passes of this -O level; -1: none */
    /* Called once bound, before the first pass (may be NULL). */
    void (*before_passes)(graph *g, int level, void *user);
    opt_observe_fn observe; /* after each pass (may be NULL) */
    void *user;
} dsl_stages;

/* Runs parse -> compile (when *g is NULL; *a is then a new arena the
 * caller frees, even on failure) -> bind -> optimize, each when its input
 * is there. Every problem goes to errs. Returns KILN_OK or the first
 * failing stage's code. */
int dsl_run(const dsl_stages *st, arena **a, graph **g, errlist *errs);
/* A service id as the compiler and every endpoint take it (a request's
 * service_id, POST /retry and /cancel, ?service_id=; docs/api.md): a whole
 * number from 0 to INT_MAX, written as a JSON number (1, 1.0) or as a string of
 * decimal digits
 * ("1", "01"); no sign, point, exponent or space in a string. Returns the
 * id, or -1 for anything else (NULL included). DSL_SERVICE_ID_EXPECTED
 * says so in an error message's "(expected ...)". */
#define DSL_SERVICE_ID_EXPECTED                                                \
    "a service id: a whole number from 0 to 2147483647, or a string of its "   \
    "digits"
int dsl_service_id_json(const cJSON *v);
/* The same rule for text (a query parameter, a string's value). */
int dsl_service_id_text(const char *text);
/* The message of a 400 at "service_id" for v (NULL: missing), into msg:
 * `got "1.0" (expected a service id: ...)`. */
void dsl_service_id_problem(const cJSON *v, char *msg, size_t size);
/* The service id a parsed request names (dsl_service_id_json), or -1. */
int dsl_request_service(const dsl_node *root);

#endif /* KILN_DSL_DSL_H */
