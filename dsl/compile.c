/*
 * Stage 2 of the compiler: syntax tree to IR graph. Validates the request
 * (its own fields through the same spec-table parser the ops use), looks
 * up every transformation in the registry, has the host parse its
 * parameters from the op's spec table, and emits one load node, then per
 * job its op chain, an encode node and a store node. Every problem is
 * collected with its JSON path; compilation never stops at the first.
 */
#include "dsl.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Request-level fields, parsed like op parameters. */
typedef struct req_fields {
    double service_id;
    const char *source;
    const char *callback;
    bool notify_status;
    bool retry_postback;
    double wait_retry_delay;
    bool fail_on_conversion_error;
    bool process;
} req_fields;

static const kiln_param_spec req_specs[] = {
    KILN_P_NUMBER(req_fields, service_id, 0, INT_MAX, 0,
                  "the service whose storage and limits apply",
                  .flags = KILN_PARAM_REQUIRED | KILN_PARAM_INTEGER),
    KILN_P_STRING(req_fields, source, NULL,
                  "path of the source image in the service's storage",
                  .flags = KILN_PARAM_REQUIRED, .min_len = 1, .max_len = 4096),
    KILN_P_STRING(req_fields, callback, NULL, "URL that receives postbacks",
                  .min_len = 1, .max_len = 4096),
    KILN_P_BOOL(req_fields, notify_status, false,
                "postback on every status change"),
    KILN_P_BOOL(req_fields, retry_postback, true, "retry failed postbacks"),
    KILN_P_NUMBER(req_fields, wait_retry_delay, 0, 86400, -1,
                  "seconds before re-queueing when the source is missing"),
    KILN_P_BOOL(req_fields, fail_on_conversion_error, true,
                "write no output when any job fails"),
    KILN_P_BOOL(req_fields, process, true,
                "false: create the process INCOMPLETE"),
};

static const char *const req_skip[] = {"jobs", "limits", NULL};

typedef struct job_fields {
    const char *destination;
    double quality;
    kiln_color background;
} job_fields;

static const kiln_param_spec job_specs[] = {
    KILN_P_STRING(job_fields, destination, NULL,
                  "path of the output; its extension picks the format",
                  .flags = KILN_PARAM_REQUIRED, .min_len = 1, .max_len = 4096),
    KILN_P_NUMBER(job_fields, quality, 0, 100, 70,
                  "encoder quality for JPEG, WebP, AVIF and HEIC",
                  .flags = KILN_PARAM_INTEGER),
    KILN_P_COLOR(job_fields, background, NULL,
                 "colour that alpha is flattened onto for formats "
                 "without alpha (default white)"),
};

static const char *const job_skip[] = {"transformations", NULL};

typedef struct limit_fields {
    double max_process_time;
    double max_file_size;
    double max_pixels;
} limit_fields;

static const kiln_param_spec limit_specs[] = {
    KILN_P_NUMBER(limit_fields, max_process_time, 0.001, 604800, 0,
                  "seconds a process may run"),
    KILN_P_NUMBER(limit_fields, max_file_size, 1, 1e13, 0,
                  "bytes of the source", .flags = KILN_PARAM_INTEGER),
    KILN_P_NUMBER(limit_fields, max_pixels, 1, 1e12, 0, "source pixels",
                  .flags = KILN_PARAM_INTEGER),
};

typedef struct cctx {
    const registry *reg;
    arena *a;
    errlist *errs;
    graph *g;
} cctx;

static void compile_fail(cctx *x, const char *path, const cJSON *v, int offset,
                         int length, const char *fmt, ...) KILN_PRINTF(6, 7);

static void
compile_fail(cctx *x, const char *path, const cJSON *v, int offset, int length,
             const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    errlist_vaddf(x->errs, path, v != NULL ? dsl_value_text(x->a, v) : NULL,
                  offset, length, fmt, ap);
    va_end(ap);
}

static const char *
compile_type_name(const cJSON *v)
{
    if (cJSON_IsObject(v)) {
        return "an object";
    }
    if (cJSON_IsArray(v)) {
        return "an array";
    }
    if (cJSON_IsString(v)) {
        return "a string";
    }
    if (cJSON_IsNumber(v)) {
        return "a number";
    }
    if (cJSON_IsBool(v)) {
        return "a boolean";
    }
    return "null";
}

/* One transformation: {"type": "crop", ...params}. Returns the new node id
 * or -1. */
static int
compile_step(cctx *x, const dsl_node *step, int input, int job)
{
    if (!cJSON_IsObject(step->json)) {
        compile_fail(x, step->path, NULL, -1, 0,
                     "expected a transformation object like {\"type\": "
                     "\"resize\", ...}, got %s",
                     compile_type_name(step->json));
        return -1;
    }
    const dsl_node *type = dsl_child(step, "type");
    if (type == NULL) {
        compile_fail(x, step->path, NULL, -1, 0,
                     "missing required field \"type\"");
        return -1;
    }
    if (!cJSON_IsString(type->json)) {
        compile_fail(x, type->path, type->json, -1, 0,
                     "expected the name of a transformation, got %s",
                     compile_type_name(type->json));
        return -1;
    }
    const char *name = type->json->valuestring;
    const reg_op *op = registry_find_op(x->reg, name);
    if (op == NULL) {
        const char **names =
            arena_alloc(x->a, (x->reg->n_ops + 1) * sizeof *names);
        for (size_t i = 0; names != NULL && i < x->reg->n_ops; i++) {
            names[i] = x->reg->ops[i].op.name;
        }
        char hint[128] = "";
        if (names != NULL) {
            suggest_hint(name, names, x->reg->n_ops, hint, sizeof hint);
        }
        compile_fail(x, type->path, type->json, 0, (int)strlen(name),
                     "unknown transformation \"%s\"%s", name,
                     hint[0] ? hint : " (kiln ops lists them)");
        return -1;
    }
    void *params = NULL;
    static const char *const skip[] = {"type", NULL};
    int rc =
        params_parse(x->a, op->op.params, op->op.n_params, op->op.params_size,
                     step->json, step->path, skip, &params, x->errs);
    if (rc != KILN_OK) {
        return -1;
    }
    graph_node *n = graph_add(x->g, GRAPH_OP, input, job, step->path);
    if (n == NULL) {
        return -1;
    }
    n->op = op;
    n->params = params;
    return n->id;
}

static void
compile_job(cctx *x, const dsl_node *job, int index)
{
    if (!cJSON_IsObject(job->json)) {
        compile_fail(x, job->path, NULL, -1, 0,
                     "expected a job object with a destination, got %s",
                     compile_type_name(job->json));
        return;
    }
    job_fields *f = NULL;
    int rc = params_parse(x->a, job_specs, KILN_N_ELEMENTS(job_specs),
                          sizeof(job_fields), job->json, job->path, job_skip,
                          (void **)&f, x->errs);
    graph_format format = FORMAT_JPEG;
    if (f != NULL && f->destination != NULL &&
        !graph_format_from_path(f->destination, &format)) {
        const dsl_node *d = dsl_child(job, "destination");
        const char *dot = strrchr(f->destination, '.');
        const char *slash = strrchr(f->destination, '/');
        bool has_ext = dot != NULL && (slash == NULL || dot > slash);
        int off = has_ext ? (int)(dot - f->destination) : 0;
        int len = has_ext ? (int)strlen(dot) : (int)strlen(f->destination);
        if (has_ext) {
            compile_fail(x, d->path, d->json, off, len,
                         "unknown format \"%s\" in \"%s\" (expected .jpg, "
                         ".jpeg, .png, .webp, .gif, .tif, .tiff, .avif or "
                         ".heic)",
                         dot, f->destination);
        } else {
            compile_fail(x, d->path, d->json, off, len,
                         "destination \"%s\" has no extension to pick the "
                         "format (expected .jpg, .jpeg, .png, .webp, .gif, "
                         ".tif, .tiff, .avif or .heic)",
                         f->destination);
        }
        rc = KILN_EINVAL;
    }
    int input = 0; /* the load node */
    const dsl_node *tr = dsl_child(job, "transformations");
    if (tr != NULL && !cJSON_IsArray(tr->json)) {
        compile_fail(x, tr->path, NULL, -1, 0,
                     "expected an array of transformations, got %s",
                     compile_type_name(tr->json));
        rc = KILN_EINVAL;
    } else if (tr != NULL) {
        for (size_t i = 0; i < tr->n_children; i++) {
            int id = compile_step(x, tr->children[i], input, index);
            if (id < 0) {
                rc = KILN_EINVAL;
            } else {
                input = id;
            }
        }
    }
    if (rc != KILN_OK || f == NULL) {
        return;
    }
    graph_node *enc = graph_add(x->g, GRAPH_ENCODE, input, index, job->path);
    if (enc == NULL) {
        return;
    }
    enc->format = format;
    enc->quality = (int)f->quality;
    enc->background = f->background;
    int enc_id = enc->id;
    graph_node *st = graph_add(x->g, GRAPH_STORE, enc_id, index, job->path);
    if (st == NULL) {
        return;
    }
    st->destination = f->destination;
    x->g->job_store[index] = st->id;
}

static void
compile_limits(cctx *x, const dsl_node *lim, const kiln_limits *deploy,
               graph_request *req)
{
    if (!cJSON_IsObject(lim->json)) {
        compile_fail(x, lim->path, NULL, -1, 0, "expected an object, got %s",
                     compile_type_name(lim->json));
        return;
    }
    limit_fields *f = NULL;
    params_parse(x->a, limit_specs, KILN_N_ELEMENTS(limit_specs),
                 sizeof(limit_fields), lim->json, lim->path, NULL, (void **)&f,
                 x->errs);
    if (f == NULL) {
        return;
    }
    req->has_limits = true;
    /* A request may lower its service's limits (`deploy`: the service's
     * when the request names one the configuration has), never raise
     * them. */
    struct {
        const char *name;
        double asked, allowed;
    } checks[] = {
        {"max_process_time", f->max_process_time, deploy->max_process_time},
        {"max_file_size", f->max_file_size, (double)deploy->max_file_size},
        {"max_pixels", f->max_pixels, (double)deploy->max_pixels},
    };
    for (size_t i = 0; i < 3; i++) {
        if (checks[i].asked > checks[i].allowed) {
            const dsl_node *v = dsl_child(lim, checks[i].name);
            compile_fail(x, v->path, v->json, -1, 0,
                         "%.15g is above its service's limit of %.15g (a "
                         "request may lower limits, not raise them)",
                         checks[i].asked, checks[i].allowed);
        }
    }
    req->limits.max_process_time = f->max_process_time;
    req->limits.max_file_size = (int64_t)f->max_file_size;
    req->limits.max_pixels = (int64_t)f->max_pixels;
}

/* Two jobs writing one destination would race and one would be lost. */
static void
compile_unique_destinations(cctx *x, const dsl_node *jobs)
{
    for (size_t i = 0; i < jobs->n_children; i++) {
        const dsl_node *a = dsl_child(jobs->children[i], "destination");
        if (a == NULL || !cJSON_IsString(a->json)) {
            continue;
        }
        for (size_t k = 0; k < i; k++) {
            const dsl_node *b = dsl_child(jobs->children[k], "destination");
            if (b != NULL && cJSON_IsString(b->json) &&
                strcmp(a->json->valuestring, b->json->valuestring) == 0) {
                compile_fail(x, a->path, NULL, -1, 0,
                             "\"%s\" is also the destination of jobs[%zu]",
                             a->json->valuestring, k);
                break;
            }
        }
    }
}

int
dsl_compile(const registry *reg, const kiln_limits *limits, arena *a,
            const dsl_node *root, graph **out, errlist *errs)
{
    size_t before = errs->n;
    graph *g = graph_new(a);
    if (g == NULL) {
        return KILN_ENOMEM;
    }
    *out = g;
    cctx x = {reg, a, errs, g};
    if (!cJSON_IsObject(root->json)) {
        compile_fail(&x, "", NULL, -1, 0,
                     "expected a request object with service_id, source "
                     "and jobs, got %s",
                     compile_type_name(root->json));
        return KILN_EINVAL;
    }
    req_fields *rf = NULL;
    params_parse(a, req_specs, KILN_N_ELEMENTS(req_specs), sizeof(req_fields),
                 root->json, "", req_skip, (void **)&rf, errs);
    /* The parameter table reads numbers leniently ("1.0", "-0" as text);
     * a service id has one form everywhere (dsl_service_id_json), so that
     * the token a server checks is for the service the request runs in. */
    const cJSON *sid =
        cJSON_GetObjectItemCaseSensitive(root->json, "service_id");
    bool sid_reported = false;
    for (size_t i = before; i < errs->n; i++) {
        sid_reported =
            sid_reported || strcmp(errs->items[i].e.path, "service_id") == 0;
    }
    if (sid != NULL && !sid_reported && dsl_service_id_json(sid) < 0) {
        char msg[256];
        dsl_service_id_problem(sid, msg, sizeof msg);
        compile_fail(&x, "service_id", NULL, -1, 0, "%s", msg);
        rf = NULL;
    }
    graph_request *req = &g->req;
    if (rf != NULL) {
        req->service_id = (int)rf->service_id;
        req->source = rf->source;
        req->callback = rf->callback;
        req->notify_status = rf->notify_status;
        req->retry_postback = rf->retry_postback;
        req->wait_retry_delay = rf->wait_retry_delay;
        req->fail_on_conversion_error = rf->fail_on_conversion_error;
        req->process = rf->process;
    }
    if (rf != NULL && rf->callback != NULL &&
        strncmp(rf->callback, "http://", 7) != 0 &&
        strncmp(rf->callback, "https://", 8) != 0) {
        const dsl_node *cb = dsl_child(root, "callback");
        compile_fail(&x, cb->path, cb->json, -1, 0,
                     "callback \"%s\" is not an http:// or https:// URL",
                     rf->callback);
    }
    const dsl_node *lim = dsl_child(root, "limits");
    if (lim != NULL) {
        compile_limits(&x, lim, limits, req);
    }
    graph_node *load = graph_add(g, GRAPH_LOAD, -1, -1, "source");
    if (load == NULL) {
        return KILN_ENOMEM;
    }
    load->source = req->source;
    const dsl_node *jobs = dsl_child(root, "jobs");
    bool may_be_empty = rf != NULL && !rf->process;
    if (jobs == NULL) {
        if (!may_be_empty) {
            compile_fail(&x, "jobs", NULL, -1, 0,
                         "missing required field \"jobs\"");
        }
    } else if (!cJSON_IsArray(jobs->json)) {
        compile_fail(&x, jobs->path, NULL, -1, 0,
                     "expected an array of jobs, got %s",
                     compile_type_name(jobs->json));
    } else if (jobs->n_children == 0 && !may_be_empty) {
        compile_fail(&x, jobs->path, NULL, -1, 0, "expected at least one job");
    } else if ((int)jobs->n_children > limits->max_jobs) {
        compile_fail(&x, jobs->path, NULL, -1, 0,
                     "%zu jobs is above the limit of %d", jobs->n_children,
                     limits->max_jobs);
    } else {
        g->n_jobs = jobs->n_children;
        g->job_store = arena_alloc(a, (g->n_jobs + 1) * sizeof(int));
        if (g->job_store == NULL) {
            return KILN_ENOMEM;
        }
        /* Room for every node at once: growing the array by doubling
         * copied and zeroed it a dozen times for 10,000 ops. */
        size_t n_nodes = 1;
        for (size_t i = 0; i < jobs->n_children; i++) {
            const dsl_node *tr =
                dsl_child(jobs->children[i], "transformations");
            n_nodes += 2 + (tr != NULL ? tr->n_children : 0);
        }
        if (graph_reserve(g, n_nodes) != KILN_OK) {
            return KILN_ENOMEM;
        }
        for (size_t i = 0; i < jobs->n_children; i++) {
            compile_job(&x, jobs->children[i], (int)i);
        }
        compile_unique_destinations(&x, jobs);
    }
    return errs->n > before ? KILN_EINVAL : KILN_OK;
}

int
dsl_service_id_text(const char *text)
{
    long long v = 0;
    size_t n = strspn(text, "0123456789");
    if (n == 0 || text[n] != '\0') {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        v = v * 10 + (text[i] - '0');
        if (v > INT_MAX) {
            return -1;
        }
    }
    return (int)v;
}

int
dsl_service_id_json(const cJSON *v)
{
    if (cJSON_IsString(v)) {
        return dsl_service_id_text(v->valuestring);
    }
    /* The range is checked before the cast: (int)1e300 is undefined, and
     * a wider type would read "4294967297" as service 1 (the fuzzer found
     * both). */
    if (cJSON_IsNumber(v) && isfinite(v->valuedouble) &&
        v->valuedouble == floor(v->valuedouble) && v->valuedouble >= 0 &&
        v->valuedouble <= INT_MAX) {
        return (int)v->valuedouble;
    }
    return -1;
}

void
dsl_service_id_problem(const cJSON *v, char *msg, size_t size)
{
    char *shown = v != NULL ? cJSON_PrintUnformatted(v) : NULL;
    snprintf(msg, size, "%s%.60s%s (expected " DSL_SERVICE_ID_EXPECTED ")",
             shown != NULL ? "got " : "missing", shown != NULL ? shown : "",
             shown != NULL && strlen(shown) > 60 ? "..." : "");
    cJSON_free(shown);
}
