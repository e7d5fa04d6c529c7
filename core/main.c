/*
 * The kiln command line: compile a request and show its graph, run
 * requests locally through the engine the server uses, serve the HTTP
 * API, list plugins and ops. Each command declares its arguments and
 * options in a table (cli.h) that drives parsing, `kiln COMMAND --help`
 * and the man page's test; exit status 0 means every request compiled
 * (compile) or finished (run), 2 a usage error.
 */
#include "kiln.h"

#include <curl/curl.h>
#include <errno.h>
#include <signal.h>
#include <malloc.h>
#include <math.h>
#include <stdint.h>
#include <sys/mman.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../server/server.h"
#include "cli.h"
#include "submit.h"

static int cmd_compile(int argc, char **argv);
static int cmd_run(int argc, char **argv);
static int cmd_serve(int argc, char **argv);
static int cmd_plugins(int argc, char **argv);
static int cmd_ops(int argc, char **argv);
static int cmd_version(int argc, char **argv);
static int cmd_help(int argc, char **argv);

/* What several commands' options say. */
#define CONFIG_HELP "read this deployment configuration (kiln.json(5))"
#define CONFIG_DEFAULT "the embedded defaults"
#define OPTIMIZE_HELP                                                          \
    "the optimizer's level, 0 to 3: 0 no passes, 1 the exact ones, 2 also "    \
    "those that change resampling within the quality rule, 3 also "            \
    "shrink-on-load to the needed size"
#define OPTIMIZE_DEFAULT "the configuration's optimize, 2"

static const cli_option compile_options[] = {
    {"config", 0, "FILE", CONFIG_HELP, CONFIG_DEFAULT},
    {"source", 0, "FILE",
     "bind the graph to this image's size and format, reading only its "
     "header",
     NULL},
    {"source-size", 0, "WxH",
     "bind the graph to a source of this size, e.g. 4000x3000", NULL},
    {"format", 0, "FORMAT",
     "print the graph as text, as json for tools or as dot for Graphviz",
     "text"},
    {"optimize", 'O', "LEVEL", OPTIMIZE_HELP, OPTIMIZE_DEFAULT},
    {"passes", 0, NULL,
     "print the graph as compiled, then after each optimizer pass that "
     "changed it",
     NULL},
    {"quiet", 0, NULL,
     "print nothing but errors: the exit status says whether the request "
     "compiles",
     NULL},
    {NULL, 0, NULL, NULL, NULL}};
static const cli_operand request_operand[] = {
    {"REQUEST.json", "the request (a POST /request body); - reads standard "
                     "input"},
    {NULL, NULL}};
static const cli_command compile_command = {
    .name = "compile",
    .summary = "validate a request and print its op graph",
    .doc =
        "Compiles REQUEST.json as the server would and prints its op graph, "
        "optimized at -O2 unless told otherwise. Without --source or "
        "--source-size, lengths stay symbolic; with either, every length and "
        "shape is resolved. A request that does not compile gets every error "
        "at once, each with its JSON path.",
    .operands = request_operand,
    .min_operands = 1,
    .max_operands = 1,
    .expected = "one REQUEST.json",
    .options = compile_options,
    .exit_status =
        "Exit status: 0 the request compiles, 1 it does not (or a file cannot "
        "be read), 2 usage error.",
};

static const cli_option run_options[] = {
    {"config", 0, "FILE", CONFIG_HELP, CONFIG_DEFAULT},
    {"storage-root", 0, "DIR",
     "give every service local storage rooted at DIR, whatever the "
     "configuration says",
     "each service's storage; the embedded defaults: var/storage under the "
     "current directory, or $STATE_DIRECTORY/storage"},
    {"workers", 0, "N", "run N requests at once, 1 to 256",
     "the configuration's workers, the number of CPUs"},
    {"backend", 0, "NAME",
     "run every service on this pixel backend, vips or magick (enabling "
     "backend-magick)",
     "each service's backend, vips"},
    {"optimize", 'O', "LEVEL", OPTIMIZE_HELP, OPTIMIZE_DEFAULT},
    {NULL, 0, NULL, NULL, NULL}};
static const cli_operand run_operands[] = {
    {"REQUEST.json...", "one or more requests; - reads standard input"},
    {NULL, NULL}};
static const cli_command run_command = {
    .name = "run",
    .summary = "run requests locally and print one result per request",
    .doc = "Runs each request through the engine kiln serve uses: sources are "
           "read "
           "from and destinations written to each service's storage, each "
           "destination whole or not at all. Prints one JSON line per request, "
           "shaped like the API's status body, in the order given.",
    .operands = run_operands,
    .min_operands = 1,
    .max_operands = -1,
    .expected = "at least one REQUEST.json",
    .options = run_options,
    .exit_status =
        "Exit status: 0 every request finished, 1 any did not (or the results "
        "could not be written), 2 usage error.",
};

static const cli_option serve_options[] = {
    {"config", 0, "FILE", CONFIG_HELP, CONFIG_DEFAULT},
    {"listen", 0, "HOST:PORT",
     "accept HTTP requests on this address, IPV4:PORT or [IPV6]:PORT",
     "the configuration's listen, 127.0.0.1:8080"},
    {NULL, 0, NULL, NULL, NULL}};
static const cli_command serve_command = {
    .name = "serve",
    .summary = "serve the HTTP API",
    .doc =
        "Starts the job store, the workers and the HTTP API, and serves until "
        "SIGTERM or SIGINT; then it takes no new requests, lets running "
        "processes finish for shutdown_timeout and leaves the rest queued. "
        "Without --config it serves the embedded defaults, whose one service "
        "takes its token from KILN_TOKEN (else a random one, printed).",
    .options = serve_options,
    .exit_status =
        "Exit status: 0 stopped by SIGTERM or SIGINT, 1 could not start (the "
        "configuration, the job store, the address), 2 usage error, 70 it "
        "ended work that would not stop (kill_after) and must be restarted.",
};

static const cli_option config_only_options[] = {
    {"config", 0, "FILE", CONFIG_HELP, CONFIG_DEFAULT},
    {NULL, 0, NULL, NULL, NULL}};
static const cli_command plugins_command = {
    .name = "plugins",
    .summary = "list the loaded plugins and pixel backends",
    .doc = "Loads the plugins the configuration enables and prints each one's "
           "name, version, ABI, what it registers and its file, then the pixel "
           "backends a service may name.",
    .options = config_only_options,
};

static const cli_option ops_options[] = {
    {"config", 0, "FILE", CONFIG_HELP, CONFIG_DEFAULT},
    {"format", 0, "FORMAT", "print text, or json for tools that build requests",
     "text"},
    {NULL, 0, NULL, NULL, NULL}};
static const cli_operand ops_operands[] = {{"[NAME]", "one op only"},
                                           {NULL, NULL}};
static const cli_command ops_command = {
    .name = "ops",
    .summary = "list the ops and their parameters",
    .doc = "Prints every op the loaded plugins define, sorted by name: its "
           "parameters with their types, ranges and defaults, and the pixel "
           "backends that implement it. With NAME, that op alone.",
    .operands = ops_operands,
    .max_operands = 1,
    .expected = "at most one NAME",
    .options = ops_options,
    .exit_status =
        "Exit status: 0 success, 1 no op has that NAME (or the plugins do not "
        "load), 2 usage error.",
};

static const cli_command version_command = {
    .name = "version",
    .summary = "print the version",
    .doc = "Prints kiln's version, the plugin ABI it loads and the libvips "
           "version "
           "(also kiln --version).",
};

static const cli_operand help_operands[] = {{"[COMMAND]", "a command"},
                                            {NULL, NULL}};
static const cli_command help_command = {
    .name = "help",
    .summary = "print help on a command",
    .doc = "Prints the list of commands or, with COMMAND, that command's help "
           "(as kiln COMMAND --help).",
    .operands = help_operands,
    .max_operands = 1,
    .expected = "at most one COMMAND",
};

/* Every command, in the order `kiln --help` lists them. needs_vips: run
 * after libvips starts (submit is an HTTP client and does without). */
static const struct {
    const cli_command *cmd;
    int (*run)(int argc, char **argv);
    bool needs_vips;
} commands[] = {
    {&compile_command, cmd_compile, true}, {&run_command, cmd_run, true},
    {&serve_command, cmd_serve, true},     {&submit_command, cmd_submit, false},
    {&plugins_command, cmd_plugins, true}, {&ops_command, cmd_ops, true},
    {&version_command, cmd_version, true}, {&help_command, cmd_help, false}};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

/* `kiln --help`: the commands, one line each. */
static void
usage(FILE *f)
{
    fprintf(f, "usage: kiln COMMAND [OPTIONS] [ARGUMENTS]\n\n"
               "kiln compiles image-processing requests into op graphs and "
               "runs them, locally\nor behind its HTTP API.\n\n"
               "Commands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++) {
        fprintf(f, "  %-10s%s\n", commands[i].cmd->name,
                commands[i].cmd->summary);
    }
    fprintf(f, "\nOptions may stand before or after a command's arguments; "
               "-- ends them.\n"
               "\"kiln COMMAND --help\" (or \"kiln help COMMAND\") lists a "
               "command's arguments\nand options; kiln(1) describes them all, "
               "with the environment and exit\nstatuses, and kiln.json(5) the "
               "configuration.\n");
}

/* Reads a whole file (or stdin for "-"); NULL and a message on failure. */
static char *
read_all(const char *path, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "kiln: cannot open %s: %s\n", path, strerror(errno));
        return NULL;
    }
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    while (buf != NULL) {
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) {
            break;
        }
        if (n + 1 == cap) {
            char *nb = realloc(buf, cap * 2);
            if (nb == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    if (ferror(f)) {
        fprintf(stderr, "kiln: cannot read %s: %s\n", path, strerror(errno));
        free(buf);
        buf = NULL;
    }
    if (f != stdin) {
        fclose(f);
    }
    if (buf != NULL) {
        buf[n] = '\0';
        *len = n;
    }
    return buf;
}

/* Loads --config or the embedded defaults; prints errors. */
static kiln_config *
load_config(const char *path)
{
    kiln_config *c = NULL;
    if (path == NULL) {
        kiln_error err;
        err_clear(&err);
        if (config_default(&c, &err) != KILN_OK) {
            fprintf(stderr, "kiln: %s\n", err.message);
            return NULL;
        }
        return c;
    }
    errlist errs = {0};
    if (config_load_file(path, &c, &errs) != KILN_OK) {
        fprintf(stderr, "kiln: configuration %s is not valid:\n", path);
        errlist_print(&errs, stderr);
        errlist_free(&errs);
        return NULL;
    }
    errlist_free(&errs);
    return c;
}

static kiln_engine *
start_engine(kiln_config *c, bool open_storage)
{
    if (c == NULL) {
        return NULL;
    }
    kiln_engine *e = NULL;
    kiln_error err;
    err_clear(&err);
    if (engine_new_take(c, open_storage, &e, &err) != KILN_OK) {
        char line[1100];
        err_format(&err, line, sizeof line);
        fprintf(stderr, "kiln: %s\n", line);
        return NULL;
    }
    return e;
}

/* -O / --optimize: "0".."3"; false after a message. */
static bool
cli_level(const cli_command *cmd, const char *v, int *level)
{
    if (!opt_parse_level(v, level)) {
        cli_usage_error(cmd, "-O%s is not a level (expected -O0 to -O3)", v);
        return false;
    }
    return true;
}

/* ------------------------------------------------------------ compile */

/* --passes: one header line per pass, and the graph after each pass that
 * changed it. */
static void
compile_observe(const opt_pass *p, const opt_report *rep, bool skipped,
                const graph *g, void *user)
{
    (void)user;
    printf("=== pass %s (%s, -O%d): ", p->name,
           p->exact ? "exact" : "not exact", p->level);
    if (skipped) {
        printf("skipped: it needs sizes (give --source or --source-size)\n");
    } else if (rep->n_changes == 0) {
        printf("no change%s%s\n", rep->note[0] ? "; " : "", rep->note);
    } else {
        printf("%s\n", rep->note[0] ? rep->note : "changed");
        dump_graph(g, DUMP_TEXT, stdout);
    }
}

/* The source's format for shrink-on-load: the loader of --source FILE
 * (`format`, NULL when it has none; `plain` from its header), else
 * guessed from the request's source path (and assumed plain). */
static void
compile_source_format(graph *g, bool from_file, const char *format, bool plain)
{
    g->source_plain = plain;
    if (from_file) {
        g->source_format = format;
        return;
    }
    g->source_format = graph_format_of_path(g->req.source);
    g->format_guessed = g->source_format != NULL;
}

/* kiln compile's options. */
typedef struct compile_opts {
    const char *config;
    const char *source;
    const char *source_size;
    const char *format;
    int opt_level; /* -O: 0..3, or -1 when not given */
    bool passes;
    bool quiet; /* print nothing but errors */
} compile_opts;

/* What `kiln compile` knows of its source, for the stages' hooks. */
typedef struct compile_ctx {
    const compile_opts *o;
    const kiln_shape *shape;
    const char *source_format;
    bool source_plain, source_oriented;
    kiln_engine *e;
} compile_ctx;

static kiln_limits
compile_limits_for(void *user, int service_id)
{
    return engine_limits_for(((compile_ctx *)user)->e, service_id);
}

static const char *
compile_backend_for(void *user, int service_id)
{
    return engine_backend_for(((compile_ctx *)user)->e, service_id);
}

/* Once bound: what the source is (from --source, or guessed from the
 * request's path), and with --passes the graph before the first pass. */
static void
compile_before_passes(graph *g, int level, void *user)
{
    compile_ctx *cc = user;
    compile_source_format(g, cc->o->source != NULL, cc->source_format,
                          cc->source_plain);
    g->source_oriented = cc->source_oriented;
    if (cc->o->passes) {
        if (g->bound) {
            printf("=== compiled and bound to %dx%d (-O%d)\n", cc->shape->width,
                   cc->shape->height, level);
        } else {
            printf("=== compiled, sizes unknown (-O%d)\n", level);
        }
        dump_graph(g, DUMP_TEXT, stdout);
    }
}

static int
cmd_compile(int argc, char **argv)
{
    const cli_command *cmd = &compile_command;
    cli_args args;
    int prc = cli_parse(cmd, argc, argv, &args);
    if (prc != CLI_GO_ON) {
        return prc;
    }
    compile_opts o = {.config = cli_get(&args, "config"),
                      .source = cli_get(&args, "source"),
                      .source_size = cli_get(&args, "source-size"),
                      .format = cli_get(&args, "format"),
                      .opt_level = -1,
                      .passes = cli_get(&args, "passes") != NULL,
                      .quiet = cli_get(&args, "quiet") != NULL};
    const char *level = cli_get(&args, "optimize");
    if (level != NULL && !cli_level(cmd, level, &o.opt_level)) {
        return 2;
    }
    if (o.source != NULL && o.source_size != NULL) {
        return cli_usage_error(cmd, "give --source or --source-size, not both");
    }
    if (o.passes && o.quiet) {
        return cli_usage_error(cmd, "--passes and --quiet exclude each other");
    }
    if (o.passes && o.format != NULL && strcmp(o.format, "text") != 0) {
        return cli_usage_error(cmd, "--passes prints text only");
    }
    dump_format fmt = DUMP_TEXT;
    if (o.format != NULL) {
        if (strcmp(o.format, "text") == 0) {
            fmt = DUMP_TEXT;
        } else if (strcmp(o.format, "json") == 0) {
            fmt = DUMP_JSON;
        } else if (strcmp(o.format, "dot") == 0) {
            fmt = DUMP_DOT;
        } else {
            return cli_usage_error(cmd,
                                   "unknown format \"%s\" (expected text, "
                                   "json or dot)",
                                   o.format);
        }
    }
    kiln_shape shape = {0, 0, 3, false};
    bool bind = false;
    const char *source_format = NULL; /* static strings: graph.c */
    bool source_plain = true, source_oriented = false;
    if (o.source_size != NULL) {
        char tail;
        if (sscanf(o.source_size, "%dx%d%c", &shape.width, &shape.height,
                   &tail) != 2 ||
            shape.width < 1 || shape.height < 1 ||
            shape.width > KILN_MAX_SIZE || shape.height > KILN_MAX_SIZE) {
            return cli_usage_error(cmd,
                                   "--source-size \"%s\" is not valid "
                                   "(expected WxH, e.g. 4000x3000)",
                                   o.source_size);
        }
        bind = true;
    }
    if (o.source != NULL) {
        VipsImage *im = vips_image_new_from_file(o.source, NULL);
        if (im == NULL) {
            kiln_error err;
            err_set_vips(&err, o.source);
            fprintf(stderr, "kiln compile: %s\n", err.message);
            return 1;
        }
        exec_oriented_shape(im, &shape);
        const char *loader = NULL;
        if (vips_image_get_typeof(im, VIPS_META_LOADER) != 0 &&
            vips_image_get_string(im, VIPS_META_LOADER, &loader) == 0) {
            source_format = graph_format_of_loader(loader);
        }
        source_plain = exec_decode_is_plain(im);
        source_oriented = vips_image_get_orientation(im) > 1;
        g_object_unref(im);
        bind = true;
    }
    const char *path = args.operands[0];
    size_t len = 0;
    char *text = read_all(path, &len);
    if (text == NULL) {
        return 1;
    }
    kiln_engine *e = start_engine(load_config(o.config), false);
    if (e == NULL) {
        free(text);
        return 1;
    }
    arena *a = NULL;
    graph *g = NULL;
    errlist errs = {0};
    compile_ctx cc = {&o,           &shape,          source_format,
                      source_plain, source_oriented, e};
    dsl_stages st = {.reg = &e->reg,
                     .limits = &e->config->limits,
                     .limits_for = compile_limits_for,
                     .backend_for = compile_backend_for,
                     .text = text,
                     .len = len,
                     .shape = bind ? &shape : NULL,
                     .level = o.opt_level >= 0 ? o.opt_level : e->opt_level,
                     .before_passes = compile_before_passes,
                     .observe = o.passes ? compile_observe : NULL,
                     .user = &cc};
    int rc = dsl_run(&st, &a, &g, &errs);
    if (rc == KILN_OK && !o.passes && !o.quiet) {
        dump_graph(g, fmt, stdout);
    }
    if (rc != KILN_OK) {
        errlist_print(&errs, stderr);
        fprintf(stderr, "kiln compile: %s: %zu error%s\n", path, errs.n,
                errs.n == 1 ? "" : "s");
    }
    errlist_free(&errs);
    arena_free(a);
    engine_free(e);
    free(text);
    return rc == KILN_OK ? 0 : 1;
}

/* ---------------------------------------------------------------- run */

typedef struct run_item {
    const char *path;
    char *output; /* the result JSON, one line */
    bool ok;
    bool done;
} run_item;

typedef struct run_state {
    kiln_engine *e;
    run_item *items;
    size_t n, next, n_done, n_printed;
    bool tty;
    int out_errno; /* the first failed write of a result to stdout */
    pthread_mutex_t mu;
} run_state;

/* `kiln run`'s line for a request that ran: the status body a server
 * would give (server_status_json builds both), its duration added. */
static cJSON *
run_status_json(const exec_result *res)
{
    jobstore_process p;
    memset(&p, 0, sizeof p);
    p.status = res->ok ? JOBSTORE_FINISHED : JOBSTORE_FAILED;
    p.created_at = p.updated_at = (int64_t)time(NULL);
    p.attempt = 1;
    cJSON *jobs = exec_result_jobs_json(res);
    p.result = jobs != NULL ? cJSON_PrintUnformatted(jobs) : NULL;
    cJSON_Delete(jobs);
    p.error = res->ok ? NULL : (char *)res->error;
    cJSON *o = server_status_json(&p);
    cJSON_free(p.result);
    cJSON_DeleteItemFromObject(o, "process_id");
    cJSON_AddNumberToObject(o, "duration_ms",
                            floor(res->duration_ms * 10 + 0.5) / 10);
    return o;
}

static void
run_one(kiln_engine *e, run_item *it)
{
    size_t len = 0;
    char *text = read_all(it->path, &len);
    cJSON *out = NULL;
    if (text == NULL) {
        out = cJSON_CreateObject();
        cJSON_AddStringToObject(out, "status", "FAILED");
        cJSON_AddStringToObject(out, "request", it->path);
        cJSON_AddStringToObject(out, "error", "cannot read the request");
    } else {
        arena *a = NULL;
        graph *g = NULL;
        errlist errs = {0};
        int rc = engine_compile(e, text, len, &a, &g, &errs);
        if (rc != KILN_OK) {
            out = cJSON_CreateObject();
            cJSON_AddStringToObject(out, "status", "FAILED");
            cJSON_AddStringToObject(out, "request", it->path);
            cJSON_AddStringToObject(out, "error", "the request is not valid");
            cJSON *arr = cJSON_AddArrayToObject(out, "errors");
            for (size_t k = 0; k < errs.n; k++) {
                cJSON *eo = cJSON_CreateObject();
                cJSON_AddStringToObject(eo, "path", errs.items[k].e.path);
                cJSON_AddStringToObject(eo, "message", errs.items[k].e.message);
                cJSON_AddItemToArray(arr, eo);
            }
        } else {
            exec_result res;
            engine_execute(e, g, &res);
            out = run_status_json(&res);
            cJSON_AddStringToObject(out, "request", it->path);
            it->ok = res.ok;
            exec_result_free(&res);
        }
        errlist_free(&errs);
        arena_free(a);
    }
    it->output = cJSON_PrintUnformatted(out);
    cJSON_Delete(out);
    free(text);
}

static void
run_progress(run_state *s)
{
    if (!s->tty || s->n < 2) {
        return;
    }
    int width = 30;
    int filled = (int)(width * s->n_done / s->n);
    fprintf(stderr, "\r[%.*s%*s] %zu/%zu", filled,
            "##############################", width - filled, "", s->n_done,
            s->n);
    if (s->n_done == s->n) {
        fputc('\n', stderr);
    }
    fflush(stderr);
}

static void *
run_worker(void *arg)
{
    run_state *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        size_t i = s->next++;
        pthread_mutex_unlock(&s->mu);
        if (i >= s->n) {
            return NULL;
        }
        run_one(s->e, &s->items[i]);
        pthread_mutex_lock(&s->mu);
        s->items[i].done = true;
        s->n_done++;
        /* Results print in request order, each as soon as it and all
         * before it are done, so output is deterministic for scripts. */
        while (s->n_printed < s->n && s->items[s->n_printed].done) {
            run_item *it = &s->items[s->n_printed++];
            if (s->tty && s->n > 1) {
                fprintf(stderr, "\r\033[K");
            }
            errno = 0;
            if ((printf("%s\n", it->output ? it->output : "{}") < 0 ||
                 fflush(stdout) != 0) &&
                s->out_errno == 0) {
                s->out_errno = errno != 0 ? errno : EIO;
            }
        }
        run_progress(s);
        pthread_mutex_unlock(&s->mu);
    }
}

/* libvips runs each pipeline on a pool of its own threads, one per core
 * by default; with several kiln workers busy at once that is workers x
 * cores threads contending for the cores. Measured on 2 cores (the
 * 40-photo batch, `kiln run --workers 2`): 0.59 s with 1 thread per
 * pipeline against 0.62 s with 2; a single request of five widths wants
 * both cores (0.13 s against 0.18 s), hence cores / workers busy, at
 * least 1. An operator's VIPS_CONCURRENCY wins. */
static void
cli_share_cores(int busy_workers)
{
    if (getenv("VIPS_CONCURRENCY") != NULL || busy_workers < 1) {
        return;
    }
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int per = cores > busy_workers ? (int)(cores / busy_workers) : 1;
    vips_concurrency_set(per);
}

static int
cmd_run(int argc, char **argv)
{
    const cli_command *cmd = &run_command;
    cli_args a;
    int prc = cli_parse(cmd, argc, argv, &a);
    if (prc != CLI_GO_ON) {
        return prc;
    }
    int opt_level = -1, workers = 0;
    const char *level = cli_get(&a, "optimize");
    if (level != NULL && !cli_level(cmd, level, &opt_level)) {
        return 2;
    }
    const char *nw = cli_get(&a, "workers");
    if (nw != NULL) {
        char *end;
        long n = strtol(nw, &end, 10);
        if (end == nw || *end != '\0' || n < 1 || n > 256) {
            return cli_usage_error(cmd,
                                   "--workers \"%s\" is not valid (expected "
                                   "1..256)",
                                   nw);
        }
        workers = (int)n;
    }
    kiln_config *c = load_config(cli_get(&a, "config"));
    if (c == NULL) {
        return 1;
    }
    const char *root = cli_get(&a, "storage-root");
    if (root != NULL) {
        kiln_error err;
        if (config_set_storage_root(c, root, &err) != KILN_OK) {
            fprintf(stderr, "kiln run: %s\n", err.message);
            config_free(c);
            return 1;
        }
    }
    if (cli_get(&a, "backend") != NULL) {
        config_set_backend(c, cli_get(&a, "backend"));
    }
    if (workers == 0) {
        workers = c->workers;
    }
    kiln_engine *e = start_engine(c, true);
    if (e == NULL) {
        return 1;
    }
    if (opt_level >= 0) {
        e->opt_level = opt_level;
    }
    run_state s = {0};
    s.e = e;
    s.n = (size_t)a.n_operands;
    s.items = calloc(s.n, sizeof *s.items);
    s.tty = isatty(STDERR_FILENO);
    pthread_mutex_init(&s.mu, NULL);
    if (s.items == NULL) {
        engine_free(e);
        return 1;
    }
    for (size_t k = 0; k < s.n; k++) {
        s.items[k].path = a.operands[k];
    }
    if ((size_t)workers > s.n) {
        workers = (int)s.n;
    }
    cli_share_cores(workers);
    /* As many as the configuration allows (up to 1024), not a fixed
     * array's worth. */
    pthread_t *th = calloc((size_t)workers, sizeof *th);
    int started = 0;
    for (int k = 0; th != NULL && k < workers; k++) {
        if (pthread_create(&th[k], NULL, run_worker, &s) != 0) {
            break;
        }
        started++;
    }
    if (started == 0) {
        run_worker(&s);
    }
    for (int k = 0; k < started; k++) {
        pthread_join(th[k], NULL);
    }
    free(th);
    bool all_ok = true;
    for (size_t k = 0; k < s.n; k++) {
        all_ok = all_ok && s.items[k].ok;
        cJSON_free(s.items[k].output);
    }
    free(s.items);
    pthread_mutex_destroy(&s.mu);
    engine_free(e);
    /* Results that did not reach standard output (a full disk under a
     * redirection) are lost: say so, and fail. */
    errno = 0;
    if (fflush(stdout) != 0 || ferror(stdout) || s.out_errno != 0) {
        int saved = s.out_errno != 0 ? s.out_errno : errno != 0 ? errno : EIO;
        char where[4096], why[128];
        ssize_t n = readlink("/proc/self/fd/1", where, sizeof where - 1);
        where[n > 0 ? n : 0] = '\0';
        fprintf(stderr,
                "kiln run: cannot write the results to standard output%s%s%s: "
                "%s\n",
                n > 0 ? " (\"" : "", where, n > 0 ? "\")" : "",
                err_errno_text(saved, why, sizeof why));
        return 1;
    }
    return all_ok ? 0 : 1;
}

/* -------------------------------------------------------------- serve */

/* Starts the job store, the workers and every service a plugin registered
 * (the HTTP API), then waits for SIGTERM or SIGINT. Shutdown stops the
 * services first (no new work is accepted), then lets running processes
 * finish; whatever is still queued stays queued in the store. */
static int
cmd_serve(int argc, char **argv)
{
    const cli_command *cmd = &serve_command;
    cli_args a;
    int prc = cli_parse(cmd, argc, argv, &a);
    if (prc != CLI_GO_ON) {
        return prc;
    }
    /* Block the stop signals before any thread starts, so they all
     * inherit the mask and sigwait() below is the one to receive them. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    kiln_config *c = load_config(cli_get(&a, "config"));
    if (c == NULL) {
        return 1;
    }
    log_setup(c->log_json, (kiln_log_level)c->log_level);
    const char *listen = cli_get(&a, "listen");
    if (listen != NULL) {
        kiln_error err;
        if (config_set_listen(c, listen, &err) != KILN_OK) {
            config_free(c);
            return cli_usage_error(cmd, "--listen %s", err.message);
        }
    }
    curl_global_init(CURL_GLOBAL_DEFAULT); /* postbacks */
    bool dev = c->dev_token;
    kiln_engine *e = start_engine(c, true);
    if (e == NULL) {
        return 1;
    }
    kiln_error err;
    err_clear(&err);
    int rc = 1;
    kiln_server *srv = NULL;
    void *states[16] = {0};
    size_t n_started = 0;
    bool pg = e->config->jobstore_driver != NULL &&
              strcmp(e->config->jobstore_driver, "postgres") == 0;
    if (server_new(e, NULL, &srv, &err) != KILN_OK) {
        fprintf(stderr, "kiln serve: jobstore: %s\n", err.message);
        goto done;
    }
    cli_share_cores(e->config->workers);
    if (server_start(srv, e->config->workers, 0, 2, &err) != KILN_OK) {
        fprintf(stderr, "kiln serve: %s\n", err.message);
        goto stop;
    }
    for (size_t k = 0; k < e->reg.n_services && n_started < 16; k++) {
        const kiln_service *svc = &e->reg.services[k].svc;
        if (svc->start(e, e->service_settings[k], &states[n_started], &err) !=
            KILN_OK) {
            fprintf(stderr, "kiln serve: %s: %s\n", svc->name, err.message);
            goto stop;
        }
        n_started++;
    }
    if (n_started == 0) {
        fprintf(stderr, "kiln serve: no service is enabled (enable the "
                        "api-http plugin)\n");
        goto stop;
    }
    /* A DSN may hold a password: PostgreSQL is named, never shown. */
    log_msg(KILN_LOG_INFO, "start", "serving on %s (%d workers, job store %s)",
            e->config->listen, e->config->workers,
            pg ? "postgres" : e->config->jobstore_path);
    if (dev) {
        /* Printed once for the developer; never logged elsewhere. */
        log_msg(KILN_LOG_WARN, "start", "development token for service 1: %s",
                e->config->services[0].tokens[0]);
    }
    int sig = 0;
    sigwait(&stop, &sig);
    log_msg(KILN_LOG_INFO, "stop", "%s received, shutting down",
            sig == SIGTERM ? "SIGTERM" : "SIGINT");
    rc = 0;
stop:
    for (size_t k = n_started; k-- > 0;) {
        const kiln_service *svc = &e->reg.services[k].svc;
        if (svc->stop != NULL) {
            svc->stop(states[k]);
        }
    }
    if (!server_stop(srv)) {
        /* Its threads still use the engine and the store: nothing may be
         * freed. What they ran stays in the store for the next start. */
        fflush(stderr);
        _exit(1);
    }
done:
    server_free(srv);
    engine_free(e);
    curl_global_cleanup();
    return rc;
}

/* ------------------------------------------------------- plugins, ops */

static int
cmd_plugins(int argc, char **argv)
{
    const cli_command *cmd = &plugins_command;
    cli_args a;
    int prc = cli_parse(cmd, argc, argv, &a);
    if (prc != CLI_GO_ON) {
        return prc;
    }
    kiln_engine *e = start_engine(load_config(cli_get(&a, "config")), false);
    if (e == NULL) {
        return 1;
    }
    for (size_t k = 0; k < e->n_plugins; k++) {
        const kiln_plugin *p = e->plugins[k];
        size_t n_ops = 0, n_st = 0, n_svc = 0;
        for (size_t j = 0; j < e->reg.n_ops; j++) {
            n_ops += e->reg.ops[j].owner == p;
        }
        for (size_t j = 0; j < e->reg.n_storages; j++) {
            n_st += e->reg.storages[j].owner == p;
        }
        for (size_t j = 0; j < e->reg.n_services; j++) {
            n_svc += e->reg.services[j].owner == p;
        }
        printf("%-16s %-8s ABI %u.%u  %zu ops, %zu storage, %zu services\n"
               "                 %s\n                 %s\n",
               p->name, p->version, p->desc->abi_major, p->desc->abi_minor,
               n_ops, n_st, n_svc, p->desc->summary ? p->desc->summary : "",
               p->path);
    }
    /* The pixel backends a service's "backend" may name. */
    printf("pixel backends:\n");
    for (size_t j = 0; j < e->reg.n_backends; j++) {
        const kiln_backend *b = &e->reg.backends[j].be;
        printf("  %-8s from %s: reads", b->name,
               e->reg.backends[j].owner->name);
        for (const char *const *f = b->read_formats; *f != NULL; f++) {
            printf(" %s", *f);
        }
        printf("; writes");
        for (const char *const *f = b->write_formats; *f != NULL; f++) {
            printf(" %s", *f);
        }
        printf("\n");
    }
    engine_free(e);
    return 0;
}

static void
print_op(const reg_op *rop)
{
    const kiln_op *op = &rop->op;
    printf("%-12s %s\n", op->name, op->summary ? op->summary : "");
    if (op->doc != NULL) {
        printf("\n");
        cli_wrap(stdout, op->doc, 2, 0);
    }
    printf("\n");
    if (op->n_params == 0) {
        printf("  (no parameters)\n");
    }
    for (size_t i = 0; i < op->n_params; i++) {
        const kiln_param_spec *s = &op->params[i];
        char type[512], def[128];
        params_describe(s, type, sizeof type);
        params_describe_default(s, def, sizeof def);
        printf("  %-14s %s; %s\n", s->name, type, def);
        if (s->alias != NULL) {
            printf("  %-14s also spelt \"%s\"\n", "", s->alias);
        }
        if (s->doc != NULL) {
            cli_wrap(stdout, s->doc, 17, 0);
        }
    }
    if (rop->n_impls == 0) {
        printf("\n  note: validated by the compiler; no loaded plugin "
               "implements it for any pixel backend\n");
    } else {
        printf("\n  backends:");
        for (size_t k = 0; k < rop->n_impls; k++) {
            const reg_impl *im = &rop->impls[k];
            printf("%s %s (plugin %s)", k ? "," : "", im->impl.backend,
                   im->owner != NULL ? im->owner->name : "core");
        }
        printf("\n");
    }
}

/* One op as JSON (kiln ops --format json): what `kiln ops` prints, in a
 * form tools can read to build valid requests. */
static cJSON *
op_json(const reg_op *rop)
{
    const kiln_op *op = &rop->op;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", op->name);
    cJSON_AddStringToObject(o, "summary", op->summary ? op->summary : "");
    if (op->doc != NULL) {
        cJSON_AddStringToObject(o, "doc", op->doc);
    }
    cJSON_AddNumberToObject(o, "inputs", op->n_inputs);
    cJSON *f = cJSON_AddArrayToObject(o, "flags");
    static const struct {
        unsigned bit;
        const char *name;
    } flags[] = {{KILN_OP_PURE, "pure"},
                 {KILN_OP_SEQUENTIAL, "sequential"},
                 {KILN_OP_NEEDS_STORAGE, "needs_storage"},
                 {KILN_OP_WINDOWED, "windowed"}};
    for (size_t k = 0; k < sizeof flags / sizeof flags[0]; k++) {
        if (op->flags & flags[k].bit) {
            cJSON_AddItemToArray(f, cJSON_CreateString(flags[k].name));
        }
    }
    /* executes: this build's default backend runs it. */
    cJSON_AddBoolToObject(o, "executes", registry_op_impl(rop, "vips") != NULL);
    cJSON *bk = cJSON_AddArrayToObject(o, "backends");
    for (size_t k = 0; k < rop->n_impls; k++) {
        cJSON_AddItemToArray(bk,
                             cJSON_CreateString(rop->impls[k].impl.backend));
    }
    cJSON *ps = cJSON_AddArrayToObject(o, "params");
    for (size_t k = 0; k < op->n_params; k++) {
        cJSON_AddItemToArray(ps, params_spec_json(&op->params[k]));
    }
    return o;
}

static int
cmd_ops(int argc, char **argv)
{
    const cli_command *cmd = &ops_command;
    cli_args a;
    int prc = cli_parse(cmd, argc, argv, &a);
    if (prc != CLI_GO_ON) {
        return prc;
    }
    bool json = false;
    const char *format = cli_get(&a, "format");
    if (format != NULL) {
        if (strcmp(format, "json") != 0 && strcmp(format, "text") != 0) {
            return cli_usage_error(cmd,
                                   "--format \"%s\" is not known (expected "
                                   "text or json)",
                                   format);
        }
        json = strcmp(format, "json") == 0;
    }
    kiln_engine *e = start_engine(load_config(cli_get(&a, "config")), false);
    if (e == NULL) {
        return 1;
    }
    int rc = 0;
    cJSON *arr = json ? cJSON_CreateArray() : NULL;
    if (a.n_operands == 1) {
        const char *name = a.operands[0];
        const reg_op *op = registry_find_op(&e->reg, name);
        if (op == NULL) {
            const char **names = calloc(e->reg.n_ops + 1, sizeof *names);
            size_t n = 0;
            for (; names != NULL && n < e->reg.n_ops; n++) {
                names[n] = e->reg.ops[n].op.name;
            }
            char hint[128];
            suggest_hint(name, names, n, hint, sizeof hint);
            free(names);
            fprintf(stderr, "kiln ops: unknown op \"%s\"%s\n", name, hint);
            rc = 1;
        } else if (json) {
            cJSON_AddItemToArray(arr, op_json(op));
        } else {
            print_op(op);
        }
    } else {
        /* Sorted by name, whatever order the plugins registered in. */
        size_t n = e->reg.n_ops;
        const reg_op **ops = calloc(n + 1, sizeof *ops);
        for (size_t k = 0; ops != NULL && k < n; k++) {
            ops[k] = &e->reg.ops[k];
        }
        for (size_t a = 0; ops != NULL && a < n; a++) {
            for (size_t b = a + 1; b < n; b++) {
                if (strcmp(ops[b]->op.name, ops[a]->op.name) < 0) {
                    const reg_op *t = ops[a];
                    ops[a] = ops[b];
                    ops[b] = t;
                }
            }
        }
        for (size_t k = 0; ops != NULL && k < n; k++) {
            if (json) {
                cJSON_AddItemToArray(arr, op_json(ops[k]));
                continue;
            }
            if (k > 0) {
                printf("\n");
            }
            print_op(ops[k]);
        }
        free(ops);
    }
    if (arr != NULL) {
        if (rc == 0) {
            char *text = cJSON_Print(arr);
            if (text != NULL) {
                printf("%s\n", text);
                free(text);
            }
        }
        cJSON_Delete(arr);
    }
    engine_free(e);
    return rc;
}

/* libvips logs warnings (a damaged tile, a profile it could not load) on
 * stderr; the ones that matter come back as errors in the job's result, so
 * the rest print only when KILN_DEBUG is set. */
static void
cli_vips_log(const char *domain, GLogLevelFlags level, const char *msg, void *u)
{
    (void)level;
    (void)u;
    if (getenv("KILN_DEBUG") != NULL) {
        fprintf(stderr, "kiln: %s: %s\n", domain ? domain : "libvips", msg);
    }
}

/* Allocator settings for image work, measured (docs/optimizer.md, "How
 * the engine runs a graph"): libvips allocates and frees megabytes of pixel
 * buffers per image from many threads. glibc's defaults give each thread its
 * own arena, hand big blocks straight back to the kernel and fault them in
 * again for the next image: a third of a thumbnail batch's time went to
 * page faults and memset. Two arenas, blocks up to 32 MB kept on the
 * heap and up to 128 MB of free heap kept before trimming cut the batch
 * of bench/peers.sh by about a quarter and its peak memory too. An
 * operator's own MALLOC_* or GLIBC_TUNABLES settings win. */
static void
cli_tune_malloc(void)
{
    const char *tun = getenv("GLIBC_TUNABLES");
    if (getenv("MALLOC_ARENA_MAX") != NULL ||
        getenv("MALLOC_MMAP_THRESHOLD_") != NULL ||
        getenv("MALLOC_TRIM_THRESHOLD_") != NULL ||
        (tun != NULL && strstr(tun, "glibc.malloc.") != NULL)) {
        return;
    }
    mallopt(M_ARENA_MAX, 2);
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 128 << 20);
    /* The main thread's heap (where a compile's JSON tree and graph live)
     * grows in steps of 64 MB of address space, backed by transparent
     * huge pages where the kernel offers them on request: a 10,000-op
     * compile spent a third of its time faulting in 4 KB pages. Only
     * address space is reserved; pages are used as they are touched. */
    mallopt(M_TOP_PAD, 64 << 20);
    void *first = malloc(1 << 20); /* extends the heap by that much */
    if (first != NULL) {
        uintptr_t huge = 2u << 20;
        uintptr_t lo = ((uintptr_t)first + huge - 1) & ~(huge - 1);
        uintptr_t hi = (uintptr_t)sbrk(0) & ~(huge - 1);
        if (hi > lo) {
            madvise((void *)lo, hi - lo, MADV_HUGEPAGE);
        }
        free(first);
    }
}

/* kiln version */
static int
cmd_version(int argc, char **argv)
{
    cli_args a;
    int prc = cli_parse(&version_command, argc, argv, &a);
    if (prc != CLI_GO_ON) {
        return prc;
    }
    printf("kiln %s (plugin ABI %d.%d, libvips %s)\n", KILN_VERSION_STRING,
           KILN_ABI_MAJOR, KILN_ABI_MINOR, vips_version_string());
    return 0;
}

/* The index in commands[] of the command named `name`, or -1 after a
 * message with a hint on stderr. */
static int
find_command(const char *name)
{
    const char *names[N_COMMANDS];
    for (size_t i = 0; i < N_COMMANDS; i++) {
        if (strcmp(name, commands[i].cmd->name) == 0) {
            return (int)i;
        }
        names[i] = commands[i].cmd->name;
    }
    char hint[128];
    suggest_hint(name, names, N_COMMANDS, hint, sizeof hint);
    if (name[0] == '-') {
        fprintf(stderr, "kiln: unknown option \"%s\"%s; see \"kiln --help\"\n",
                name, hint);
    } else {
        fprintf(stderr, "kiln: unknown command \"%s\"%s; see \"kiln --help\"\n",
                name, hint);
    }
    return -1;
}

/* kiln help [COMMAND] */
static int
cmd_help(int argc, char **argv)
{
    cli_args a;
    int prc = cli_parse(&help_command, argc, argv, &a);
    if (prc != CLI_GO_ON) {
        return prc;
    }
    if (a.n_operands == 0) {
        usage(stdout);
        return 0;
    }
    int k = find_command(a.operands[0]);
    if (k < 0) {
        return 2;
    }
    cli_print_help(commands[k].cmd, stdout);
    return 0;
}

int
main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "render-source") == 0) {
        /* The child that renders an SVG or PDF (render.c): it limits
         * itself before libvips starts. Not listed: kiln starts it. */
        return render_source_main(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "--version") == 0) {
        cmd = "version";
    }
    int k = find_command(cmd);
    if (k < 0) {
        return 2;
    }
    if (!commands[k].needs_vips) {
        return commands[k].run(argc - 1, argv + 1);
    }
    cli_tune_malloc();
    vips_modules_hold();
    if (VIPS_INIT(argv[0]) != 0) {
        fprintf(stderr, "kiln: cannot initialise libvips\n");
        return 1;
    }
    static const char *const modules[] = {"heif"}; /* AVIF, HEIC */
    vips_modules_load(modules, 1);
    g_log_set_handler("VIPS", G_LOG_LEVEL_WARNING | G_LOG_LEVEL_MESSAGE,
                      cli_vips_log, NULL);
    int rc = commands[k].run(argc - 1, argv + 1);
    vips_shutdown();
    return rc;
}
