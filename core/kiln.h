/*
 * The engine and what every executor shares (the core layer above the
 * compiler): the engine ties storage and the pixel backends to compiled
 * graphs (engine.c); the host decodes images into the SDK's common
 * currency, VipsImage (exec.c, render.c, source_check.c), writes outputs
 * whole or not at all (exec.c) and runs any SDK backend's ops
 * (exec_native.c). The libvips executor is a backend of its own
 * (plugins/backend-vips/), built in; it registers with
 * engine_set_runner. The API server (job store, runner, postbacks) is a
 * layer above, in server/; the engine knows it only as a hook. Includes the
 * compiler (dsl/dsl.h) and the host's base (base/host.h). Plugins never see
 * this file; they see sdk/include/kiln only.
 */
#ifndef KILN_CORE_KILN_H
#define KILN_CORE_KILN_H

#include "../dsl/dsl.h"

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
    const volatile int *stop;   /* non-zero: stop this run (POST /cancel) */
    volatile int expired;       /* set from libvips worker threads */
    volatile int cancelled;     /* expired because of *cancel */
    volatile int stopped;       /* expired because of *stop */
} exec_deadline;

typedef struct exec_result {
    bool ok;            /* every job finished */
    bool timed_out;     /* cancelled by max_process_time */
    bool cancelled;     /* stopped by a server shutdown: run it again */
    bool stopped;       /* stopped by its own *stop (POST /cancel) */
    int storage_errors; /* reads, writes and commits the storage failed */
    exec_deadline deadline;
    bool source_failed; /* the source could not be read (retryable) */
    bool ran_jobs;      /* the jobs ran (the source was read and bound) */
    int redecodes;      /* times a streamed source was decoded again */
    char error[1024];
    job_result *jobs;
    size_t n_jobs;
    double duration_ms;
    /* The pixel backend that ran the jobs (the service's), or NULL when
     * none ran them. */
    const char *backend;
} exec_result;

/* ----------------------------------------------------------- engine.c */

typedef struct engine_storage engine_storage;

/* A backend's executor for whole graphs (engine_set_runner): runs the
 * compiled g for the service whose storage is st, reading the source
 * through src_st (st, or the remote backend for a URL), under lim, and
 * fills res's jobs. The engine has set res's jobs, backend and deadline.
 * Returns the run's code; fills err only when the process failed as a
 * whole (a source that does not read or decode, a deadline), which the
 * engine then writes into every job. */
typedef int (*engine_run_fn)(kiln_engine *e, const engine_storage *st,
                             const engine_storage *src_st, graph *g,
                             const kiln_limits *lim, exec_result *res,
                             kiln_error *err);

struct engine_storage {
    int service_id;
    const config_vector *vector; /* the service's; NULL: none */
    const reg_storage *backend;
    void *state;
};

struct netguard_allow;

/* Answers one API call (the host API's api_call, loader.c): installed by
 * the layer that serves (server/, started by `kiln serve`), which the
 * engine knows only through this hook. */
typedef void (*engine_serve_fn)(void *user, const kiln_call *call,
                                const struct sockaddr *peer, kiln_reply *out);

struct kiln_engine {
    kiln_config *config;
    /* NULL unless a server is attached: API calls are then answered 503. */
    engine_serve_fn serve;
    void *serve_user;
    /* GET /metrics for the metrics listener (no token), the same layer's. */
    void (*serve_metrics)(void *user, kiln_reply *out);
    /* Set when a shutdown's grace period is over: running pipelines are
     * killed and their processes go back to the queue. */
    volatile int cancel;
    struct netguard_allow *net_allow; /* network.allow, parsed */
    /* The optimizer level engine_execute runs (0..2; default 2). */
    int opt_level;
    arena *arena; /* storage settings live as long as the engine */
    registry reg;
    /* Each registered service's parsed settings (plugins.settings.NAME),
     * indexed as reg.services. */
    void **service_settings;
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
    /* Backends that run whole graphs themselves ("vips"); the others run
     * through exec_native.c. */
    struct {
        const char *backend;
        engine_run_fn run;
    } runners[4];
    size_t n_runners;
};

/* Creates an engine for a configuration it takes ownership of: loads the
 * enabled plugins and opens each service's storage. */
int engine_new_take(kiln_config *cfg, bool open_storage, kiln_engine **out,
                    kiln_error *err);
void engine_free(kiln_engine *e);
/* Parses and compiles request text; errors (syntax or every validation
 * problem) go to errs. *out lives in *arena_out, which the caller frees. */
/* The limits a request naming service_id is compiled against (its
 * service's, or the deployment's), for dsl_stages.limits_for (e is the
 * kiln_engine). */
kiln_limits engine_limits_for(void *e, int service_id);
/* The pixel backend of the service a request names (the default "vips"
 * for none), for dsl_stages.backend_for. */
const char *engine_backend_for(void *e, int service_id);
int engine_compile(kiln_engine *e, const char *text, size_t len,
                   arena **arena_out, graph **out, errlist *errs);
/* The same, asking admit(user, service id) right after the parse
 * (dsl_stages.admit): KILN_EPERM, nothing compiled, when it says no. */
int engine_compile_admit(kiln_engine *e, const char *text, size_t len,
                         bool (*admit)(void *user, int service_id), void *user,
                         arena **arena_out, graph **out, errlist *errs);
/* Runs a compiled graph: reads the source from the service's storage,
 * binds, executes every job, writes outputs whole or not at all. */
int engine_execute(kiln_engine *e, graph *g, exec_result *res);
/* The same, stopped (nothing written, res->stopped) as soon as *stop
 * becomes non-zero, from any thread. */
int engine_execute_stoppable(kiln_engine *e, graph *g, const volatile int *stop,
                             exec_result *res);
/* The limits a compiled request runs under: its service's, lowered by the
 * request's own `limits`. */
kiln_limits engine_process_limits(const kiln_engine *e, const graph *g);
/* Registers `run` as backend `backend`'s executor for whole graphs (a
 * built-in plugin's init: backend-vips). */
int engine_set_runner(kiln_engine *e, const char *backend, engine_run_fn run,
                      kiln_error *err);
/* The executor `backend` registered, or NULL (run through the SDK). */
engine_run_fn engine_runner(const kiln_engine *e, const char *backend);
/* The source of a run could not be opened or probed (rc): res says so
 * (a storage failure is counted), and err's path becomes "source". */
void engine_source_failed(exec_result *res, int rc, kiln_error *err);
/* The compiler's last stages for a run on `backend`: binds *g to the
 * source's upright shape (the pixel limit checked from the header, before
 * a pixel is decoded), then runs the passes at the engine's level with
 * what the header says (facts). When they refuse the source, every job
 * of res fails with their errors and their code is returned. */
int engine_bind(kiln_engine *e, graph **g, const kiln_shape *shape,
                const dsl_facts *facts, const kiln_limits *lim,
                const char *backend, exec_result *res);
void exec_result_free(exec_result *r);
/* The "jobs" array of a status body (api.md) for a result: each job's
 * destination, outcome, format, backend, size, duration, error and
 * warnings. The server stores it with the process; the status body
 * around it is built in one place (server/status.c). */
cJSON *exec_result_jobs_json(const exec_result *r);
const engine_storage *engine_find_storage(const kiln_engine *e, int id);
/* True when `source` is a URL (http:// or https://), not a storage path. */
bool engine_source_is_url(const char *source);
/* Checks that service `service_id` may read `source`: a URL needs
 * remote_sources, a loaded "http" backend and an address the network
 * guard allows. Errors carry path "source". */
int engine_check_source(const kiln_engine *e, int service_id,
                        const char *source, kiln_error *err);

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
/* The host API's exec_load_native(): `path` decoded by the job's native
 * backend (exec_native.c). */
int exec_load_native(kiln_exec *ctx, const char *path, void **out,
                     kiln_error *err);

/* One job as the op implementations see it (kiln_exec in plugin.h). */
struct kiln_exec {
    const engine_storage *st;
    job_result *job;
    /* Set for a job on a plugin's pixel backend (exec_native.c): */
    const struct reg_backend *be;
    const kiln_decode_opts *decode;
};

/* Names the service's storage backend in a storage error; returns its
 * code. */
int exec_storage_error(const engine_storage *st, kiln_error *err);

/* An output object opened and written, waiting for the commit (or the
 * abort) once every job has run. */
typedef struct exec_pending {
    void *handle;
    bool open;
} exec_pending;

/* Encodes into `target`; KILN_OK or a filled err (path set). */
typedef int (*exec_encode_fn)(void *user, VipsTarget *target, kiln_error *err);
/* Opens the job's destination, runs `encode` into it and counts the bytes
 * (jr->bytes); leaves a pending object in *p. A storage failure is named
 * as such, whatever the encoder said. */
int exec_store(const engine_storage *st, const graph_node *enc,
               const graph_node *store, exec_encode_fn encode, void *user,
               exec_pending *p, job_result *jr, kiln_error *err);
/* Fails a job whose op returned an image that is not what infer() said
 * (the op contract), naming the plugin. */
int exec_check_contract(const graph_node *node, const kiln_plugin *owner,
                        VipsImage *im, kiln_error *err);
/* An op's failure in our words, at its path. */
int exec_op_failed(const graph_node *node, VipsImage *in, kiln_error *err);
/* Writes what every job's pending object became: commits them all when
 * the run may be committed, else aborts them; sets res->ok and the
 * errors. n_failed: jobs failed so far. */
int exec_finish(const engine_storage *st, const graph *g, exec_pending *pend,
                size_t n_failed, exec_result *res);

/* ------------------------------------------------------ exec_native.c */

/* Reads `path` from src_st for backend `be`: the length against
 * max_bytes, then the backend's probe of its header (*info). *out is the
 * source, for exec_native_run. */
int exec_native_open(const engine_storage *src_st, const char *path,
                     int64_t max_bytes, const struct reg_backend *be,
                     VipsSource **out, kiln_image_info *info, kiln_error *err);
/* Runs a bound and optimized g on `be` (the service's backend): decodes
 * src once, runs every job (ops without an implementation for `be` on
 * libvips, converted once at each boundary of such a run), writes to st
 * and commits as backend-vips does. Fails (err, path "source") only when
 * the source does not decode; job failures are in res. */
int exec_native_run(kiln_engine *e, const engine_storage *st,
                    const struct reg_backend *be, graph *g, VipsSource *src,
                    const kiln_image_info *info, const kiln_limits *lim,
                    exec_result *res, kiln_error *err);
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

#endif /* KILN_CORE_KILN_H */
