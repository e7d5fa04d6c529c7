/*
 * The kiln command line: compile a request and show its graph, run
 * requests locally through the engine the server uses, list plugins and
 * ops. Each subcommand parses its own flags; exit status 0 means every
 * request compiled (compile) or finished (run), 2 a usage error.
 */
#include "kiln.h"

#include <curl/curl.h>
#include <errno.h>
#include <signal.h>
#include <getopt.h>
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
#include "submit.h"

static void
usage(FILE *f)
{
    fprintf(f,
            "usage: kiln COMMAND [OPTIONS]\n"
            "\n"
            "  compile [--config FILE] [--source FILE | --source-size WxH]\n"
            "          [--format text|json|dot] [-O0..-O3] [--passes | --quiet]"
            "\n          REQUEST.json\n"
            "      validate a request and print its op graph, optimized at "
            "-O2 unless\n"
            "      told otherwise; --passes prints it after each pass, "
            "--quiet only\n"
            "      the errors (the exit status says whether it compiles)\n"
            "  run [--config FILE] [--storage-root DIR] [--workers N] "
            "[-O0..-O3]\n"
            "      [--backend vips|magick] REQUEST.json...\n"
            "      run requests locally; one result JSON per request "
            "(--backend: every\n"
            "      service's pixel backend)\n"
            "  serve [--config FILE]     serve the HTTP API (embedded defaults "
            "without --config)\n"
            "  submit [--url URL] [--token T] [--wait] [--timeout SECONDS]\n"
            "         [--idempotency-key K] REQUEST.json\n"
            "      post a request to a server ($KILN_URL, $KILN_TOKEN); "
            "print its id,\n"
            "      or with --wait its final status\n"
            "  plugins [--config FILE]   list loaded plugins\n"
            "  ops [--config FILE] [--format text|json] [NAME]\n"
            "      list ops and their parameters\n"
            "  version                   print the version\n"
            "\n"
            "REQUEST.json may be - for standard input.\n");
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

enum {
    OPT_CONFIG = 256,
    OPT_SOURCE,
    OPT_SOURCE_SIZE,
    OPT_FORMAT,
    OPT_STORAGE_ROOT,
    OPT_WORKERS,
    OPT_PASSES,
    OPT_QUIET,
    OPT_BACKEND
};

static const struct option long_opts[] = {
    {"config", required_argument, NULL, OPT_CONFIG},
    {"source", required_argument, NULL, OPT_SOURCE},
    {"source-size", required_argument, NULL, OPT_SOURCE_SIZE},
    {"format", required_argument, NULL, OPT_FORMAT},
    {"storage-root", required_argument, NULL, OPT_STORAGE_ROOT},
    {"workers", required_argument, NULL, OPT_WORKERS},
    {"passes", no_argument, NULL, OPT_PASSES},
    {"quiet", no_argument, NULL, OPT_QUIET},
    {"backend", required_argument, NULL, OPT_BACKEND},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0}};

typedef struct cli_opts {
    const char *config;
    const char *source;
    const char *source_size;
    const char *format;
    const char *storage_root;
    int workers;
    int opt_level; /* -O: 0..3, or -1 when not given */
    bool passes;
    bool quiet;          /* compile: print nothing but errors */
    const char *backend; /* run, compile: every service's pixel backend */
} cli_opts;

/* Parses the flags common to the subcommands; returns optind or -1. */
static int
parse_opts(int argc, char **argv, cli_opts *o, const char *allowed)
{
    optind = 1;
    opterr = 0;
    o->opt_level = -1;
    int c;
    while ((c = getopt_long(argc, argv, "+hO:", long_opts, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            exit(0);
        }
        if (c == '?' || c == ':') {
            fprintf(stderr, "kiln %s: unknown or incomplete option \"%s\"\n",
                    argv[0], argv[optind - 1]);
            return -1;
        }
        if (c == 'O') {
            if (strchr(allowed, 'O') == NULL) {
                fprintf(stderr, "kiln %s: option \"-O\" does not apply here\n",
                        argv[0]);
                return -1;
            }
            if (!opt_parse_level(optarg, &o->opt_level)) {
                fprintf(stderr,
                        "kiln %s: -O%s is not a level (expected -O0 to "
                        "-O3)\n",
                        argv[0], optarg);
                return -1;
            }
            continue;
        }
        char key[4] = {(char)('a' + (c - OPT_CONFIG)), 0};
        if (strchr(allowed, key[0]) == NULL) {
            fprintf(stderr, "kiln %s: option \"%s\" does not apply here\n",
                    argv[0], argv[optind - 1]);
            return -1;
        }
        switch (c) {
        case OPT_CONFIG:
            o->config = optarg;
            break;
        case OPT_SOURCE:
            o->source = optarg;
            break;
        case OPT_SOURCE_SIZE:
            o->source_size = optarg;
            break;
        case OPT_FORMAT:
            o->format = optarg;
            break;
        case OPT_STORAGE_ROOT:
            o->storage_root = optarg;
            break;
        case OPT_PASSES:
            o->passes = true;
            break;
        case OPT_QUIET:
            o->quiet = true;
            break;
        case OPT_BACKEND:
            o->backend = optarg;
            break;
        case OPT_WORKERS: {
            char *end;
            long n = strtol(optarg, &end, 10);
            if (*end != '\0' || n < 1 || n > 256) {
                fprintf(stderr,
                        "kiln %s: --workers \"%s\" is not valid (expected "
                        "1..256)\n",
                        argv[0], optarg);
                return -1;
            }
            o->workers = (int)n;
            break;
        }
        }
    }
    return optind;
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

/* What `kiln compile` knows of its source, for the stages' hooks. */
typedef struct compile_ctx {
    const cli_opts *o;
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
    cli_opts o = {0};
    /* a=config b=source c=source-size d=format g=passes h=quiet O=level */
    int i = parse_opts(argc, argv, &o, "abcdghO");
    if (i < 0) {
        return 2;
    }
    if (argc - i != 1) {
        fprintf(stderr, "kiln compile: expected one REQUEST.json\n");
        return 2;
    }
    if (o.source != NULL && o.source_size != NULL) {
        fprintf(stderr,
                "kiln compile: give --source or --source-size, not both\n");
        return 2;
    }
    if (o.passes && o.quiet) {
        fprintf(stderr, "kiln compile: --passes and --quiet exclude each "
                        "other\n");
        return 2;
    }
    if (o.passes && o.format != NULL && strcmp(o.format, "text") != 0) {
        fprintf(stderr, "kiln compile: --passes prints text only\n");
        return 2;
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
            fprintf(stderr,
                    "kiln compile: unknown format \"%s\" (expected text, "
                    "json or dot)\n",
                    o.format);
            return 2;
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
            fprintf(stderr,
                    "kiln compile: --source-size \"%s\" is not valid "
                    "(expected WxH, e.g. 4000x3000)\n",
                    o.source_size);
            return 2;
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
    size_t len = 0;
    char *text = read_all(argv[i], &len);
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
        fprintf(stderr, "kiln compile: %s: %zu error%s\n", argv[i], errs.n,
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
    cli_opts o = {0};
    /* a=config e=storage-root f=workers i=backend O=level */
    int i = parse_opts(argc, argv, &o, "aefiO");
    if (i < 0) {
        return 2;
    }
    if (argc - i < 1) {
        fprintf(stderr, "kiln run: expected at least one REQUEST.json\n");
        return 2;
    }
    kiln_config *c = load_config(o.config);
    if (c == NULL) {
        return 1;
    }
    if (o.storage_root != NULL) {
        kiln_error err;
        if (config_set_storage_root(c, o.storage_root, &err) != KILN_OK) {
            fprintf(stderr, "kiln run: %s\n", err.message);
            config_free(c);
            return 1;
        }
    }
    if (o.backend != NULL) {
        config_set_backend(c, o.backend);
    }
    int workers = o.workers > 0 ? o.workers : c->workers;
    kiln_engine *e = start_engine(c, true);
    if (e == NULL) {
        return 1;
    }
    if (o.opt_level >= 0) {
        e->opt_level = o.opt_level;
    }
    run_state s = {0};
    s.e = e;
    s.n = (size_t)(argc - i);
    s.items = calloc(s.n, sizeof *s.items);
    s.tty = isatty(STDERR_FILENO);
    pthread_mutex_init(&s.mu, NULL);
    if (s.items == NULL) {
        engine_free(e);
        return 1;
    }
    for (size_t k = 0; k < s.n; k++) {
        s.items[k].path = argv[i + (int)k];
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
    cli_opts o = {0};
    int i = parse_opts(argc, argv, &o, "a");
    if (i < 0 || i != argc) {
        if (i >= 0) {
            fprintf(stderr, "kiln serve: takes no arguments\n");
        }
        return 2;
    }
    /* Block the stop signals before any thread starts, so they all
     * inherit the mask and sigwait() below is the one to receive them. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    kiln_config *c = load_config(o.config);
    if (c == NULL) {
        return 1;
    }
    log_setup(c->log_json, (kiln_log_level)c->log_level);
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
    cli_opts o = {0};
    int i = parse_opts(argc, argv, &o, "a");
    if (i < 0 || i != argc) {
        if (i >= 0) {
            fprintf(stderr, "kiln plugins: takes no arguments\n");
        }
        return 2;
    }
    kiln_engine *e = start_engine(load_config(o.config), false);
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
    printf("pixel backends:\n  %-8s kiln's own (libvips)\n", "vips");
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

/* Prints text word-wrapped to 78 columns, each line indented. */
static void
print_wrapped(const char *text, int indent)
{
    int col = 0;
    const char *p = text;
    while (*p) {
        while (*p == ' ') {
            p++;
        }
        size_t n = strcspn(p, " ");
        if (n == 0) {
            break;
        }
        if (col > 0 && col + 1 + (int)n > 78) {
            printf("\n");
            col = 0;
        }
        if (col == 0) {
            col = printf("%*s%.*s", indent, "", (int)n, p);
        } else {
            col += printf(" %.*s", (int)n, p);
        }
        p += n;
    }
    if (col > 0) {
        printf("\n");
    }
}

static void
print_op(const reg_op *rop)
{
    const kiln_op *op = &rop->op;
    printf("%-12s %s\n", op->name, op->summary ? op->summary : "");
    if (op->doc != NULL) {
        printf("\n");
        print_wrapped(op->doc, 2);
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
            print_wrapped(s->doc, 17);
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
    cli_opts o = {0};
    int i = parse_opts(argc, argv, &o, "ad");
    if (i < 0 || argc - i > 1) {
        if (i >= 0) {
            fprintf(stderr, "kiln ops: expected at most one NAME\n");
        }
        return 2;
    }
    bool json = false;
    if (o.format != NULL) {
        if (strcmp(o.format, "json") != 0 && strcmp(o.format, "text") != 0) {
            fprintf(stderr,
                    "kiln ops: --format \"%s\" is not known (expected text "
                    "or json)\n",
                    o.format);
            return 2;
        }
        json = strcmp(o.format, "json") == 0;
    }
    kiln_engine *e = start_engine(load_config(o.config), false);
    if (e == NULL) {
        return 1;
    }
    int rc = 0;
    cJSON *arr = json ? cJSON_CreateArray() : NULL;
    if (argc - i == 1) {
        const reg_op *op = registry_find_op(&e->reg, argv[i]);
        if (op == NULL) {
            const char **names = calloc(e->reg.n_ops + 1, sizeof *names);
            size_t n = 0;
            for (; names != NULL && n < e->reg.n_ops; n++) {
                names[n] = e->reg.ops[n].op.name;
            }
            char hint[128];
            suggest_hint(argv[i], names, n, hint, sizeof hint);
            free(names);
            fprintf(stderr, "kiln ops: unknown op \"%s\"%s\n", argv[i], hint);
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

int
main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 ||
        strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("kiln %s (plugin ABI %d.%d, libvips %s)\n", KILN_VERSION_STRING,
               KILN_ABI_MAJOR, KILN_ABI_MINOR, vips_version_string());
        return 0;
    }
    if (strcmp(cmd, "submit") == 0) {
        return cmd_submit(argc - 1, argv + 1); /* an HTTP client: no libvips */
    }
    if (strcmp(cmd, "render-source") == 0) {
        /* The child that renders an SVG or PDF (render.c): it limits
         * itself before libvips starts. */
        return render_source_main(argc - 1, argv + 1);
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
    int rc;
    if (strcmp(cmd, "compile") == 0) {
        rc = cmd_compile(argc - 1, argv + 1);
    } else if (strcmp(cmd, "run") == 0) {
        rc = cmd_run(argc - 1, argv + 1);
    } else if (strcmp(cmd, "serve") == 0) {
        rc = cmd_serve(argc - 1, argv + 1);
    } else if (strcmp(cmd, "plugins") == 0) {
        rc = cmd_plugins(argc - 1, argv + 1);
    } else if (strcmp(cmd, "ops") == 0) {
        rc = cmd_ops(argc - 1, argv + 1);
    } else {
        static const char *const cmds[] = {"compile", "run",     "serve",
                                           "submit",  "plugins", "ops",
                                           "version", "help"};
        char hint[128];
        suggest_hint(cmd, cmds, 8, hint, sizeof hint);
        fprintf(stderr, "kiln: unknown command \"%s\"%s\n", cmd, hint);
        usage(stderr);
        rc = 2;
    }
    vips_shutdown();
    return rc;
}
