/*
 * The libvips backend's jobs: each job's op chain built as a libvips
 * pipeline from the decoded source (or from a node several jobs share,
 * rendered once), checked against the op contract after every op, then
 * flattened where the format has no alpha, encoded (encode.c) and written
 * through the service's storage to a pending object (core/exec.c), which
 * exec_finish commits or aborts once every job has run.
 */
#include "vips.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Replaces *im with `next`, dropping the old reference. */
static void
pipeline_swap(VipsImage **im, VipsImage *next)
{
    g_object_unref(*im);
    *im = next;
}

/* Flattens alpha for formats without it, onto the job's background or
 * white. *out is a new reference. */
static int
pipeline_prepare(VipsImage *in, const graph_node *enc, VipsImage **out,
                 kiln_error *err)
{
    double bg[3] = {255, 255, 255};
    if (enc->background.is_set) {
        bg[0] = enc->background.r;
        bg[1] = enc->background.g;
        bg[2] = enc->background.b;
    }
    return encode_prepare(in, enc->format, bg, out, err);
}

typedef struct pipeline_encode_args {
    VipsImage *im;
    const graph_node *enc;
} pipeline_encode_args;

/* Encodes `im` with libvips' savers into `target`: for exec_store. */
static int
pipeline_encode(void *user, VipsTarget *target, kiln_error *err)
{
    pipeline_encode_args *v = user;
    if (encode_save(v->im, v->enc->format, v->enc->quality, target) != 0) {
        err_set_vips(err, NULL);
        char detail[sizeof err->message];
        snprintf(detail, sizeof detail, "%s", err->message);
        return err_set_path(err, KILN_EVIPS, v->enc->path,
                            "cannot compute and encode the %dx%d result as "
                            "%s; libvips said: %s",
                            v->im->Xsize, v->im->Ysize,
                            graph_format_name(v->enc->format), detail);
    }
    return KILN_OK;
}

/* Encodes `im` into the destination; leaves a pending object in *p. */
static int
pipeline_write(const engine_storage *st, const graph_node *enc,
               const graph_node *store, VipsImage *im, exec_pending *p,
               job_result *jr, kiln_error *err)
{
    VipsImage *ready = NULL;
    int rc = pipeline_prepare(im, enc, &ready, err);
    if (rc != KILN_OK) {
        return rc;
    }
    pipeline_encode_args v = {ready, enc};
    rc = exec_store(st, enc, store, pipeline_encode, &v, p, jr, err);
    jr->width = ready->Xsize;
    jr->height = ready->Ysize;
    g_object_unref(ready);
    return rc;
}

/* True when `out` has at most a quarter of the input's pixels: an op that
 * reduced its input. A reduced result that more ops read is rendered into
 * memory (it is small): read through the pipeline, every region a later
 * resample or convolution asks for, with its margins, would recompute the
 * whole chain above it, and stacked reductions multiply that (a resize
 * after a resize after enhance on a 1942x1730 image ran for minutes; the
 * chain property tests found it). */
static bool
pipeline_reduces(double in_area, VipsImage *out)
{
    return (double)out->Xsize * out->Ysize * 4 <= in_area;
}

/* Runs one job's chain from the decoded source; fills jr. memo[id] holds
 * the rendered image of node id once computed, for the nodes the
 * optimizer made several jobs share (NULL until then): the chain starts
 * from the nearest one, and each shared node is rendered into memory once
 * so that its consumers do not compute it again. */
static int
pipeline_job(kiln_engine *e, const engine_storage *st, graph *g, int job,
             const char *backend, VipsImage *source, VipsImage **memo,
             exec_deadline *deadline, exec_pending *p, job_result *jr,
             kiln_error *err)
{
    (void)e;
    int store_id = g->job_store[job];
    const graph_node *store = &g->nodes[store_id];
    const graph_node *enc = &g->nodes[store->input];
    /* Walk back from the encode node to the load (or to a shared node
     * already rendered) to get the chain. */
    int chain[4096];
    size_t n = 0;
    int id = enc->input;
    for (; g->nodes[id].kind == GRAPH_OP && memo[id] == NULL;
         id = g->nodes[id].input) {
        if (n == sizeof chain / sizeof chain[0]) {
            return err_set(err, KILN_ELIMIT, "too many transformations");
        }
        chain[n++] = id;
    }
    kiln_exec ctx = {st, jr, NULL, NULL};
    VipsImage *cur = g->nodes[id].kind == GRAPH_OP ? memo[id] : source;
    g_object_ref(cur);
    /* The source (decoded, or read in strips) and a rendered node
     * cost nothing to read again; an op's output pipeline may. */
    bool cur_cheap = true;
    for (size_t k = n; k-- > 0;) {
        const graph_node *node = &g->nodes[chain[k]];
        const kiln_op *op = &node->op->op;
        /* The implementation for the service's backend (the compiler
         * refused a job whose backend has none; dsl_lut_op is the
         * executor's own). */
        const reg_impl *impl = node->op == &dsl_lut_op
                                   ? NULL
                                   : registry_op_impl(node->op, backend);
        if (impl == NULL && node->op != &dsl_lut_op) {
            g_object_unref(cur);
            return err_set_path(err, KILN_EINVAL, node->path,
                                "transformation \"%s\" has no implementation "
                                "for the \"%s\" backend",
                                op->name, backend);
        }
        if (exec_deadline_passed(deadline)) {
            g_object_unref(cur);
            return exec_deadline_error(deadline, err);
        }
        VipsImage *in[1] = {cur}, *out = NULL, *cached = NULL;
        /* libvips 8.14's vertical box shrink (every reduction by 2 or
         * more) asks its input for two or three rows at a time: read
         * through a convolution, each such request recomputed the
         * kernel's margin above and below (a blur then a resize to a
         * quarter: 35 s for 1600x1200, 0.8 s through this cache; the
         * chain property tests found it). A line cache keeps the rows
         * computed once, in bounded memory. */
        if (!cur_cheap && node->shape.height * 2 <= cur->Ysize) {
            if (vips_linecache(cur, &cached, "tile_height", 32, "access",
                               VIPS_ACCESS_SEQUENTIAL, "threaded", TRUE,
                               NULL) == 0) {
                in[0] = cached;
            } else {
                vips_error_clear(); /* slower without it, not wrong */
            }
        }
        kiln_error oe;
        err_clear(&oe);
        /* Shrink-on-load handed this op a reduced source: it plans from
         * the shape it was bound to (the pass checked it can). */
        int rc = impl == NULL ? lut_run(node->params, in[0], &out, &oe)
                 : node->is_reduced && impl->impl.execute_reduced != NULL
                     ? impl->impl.execute_reduced(
                           &ctx, node->params, &node->reduction, in, &out, &oe)
                     : impl->impl.execute(&ctx, node->params, in, &out, &oe);
        if (cached != NULL) {
            g_object_unref(cached); /* out holds what it reads */
        }
        if (rc != KILN_OK || out == NULL) {
            *err = oe;
            if (rc == KILN_OK) {
                err_set(err, KILN_EINTERNAL,
                        "%s returned no image and no error (a plugin bug)",
                        op->name);
            } else if (err->code == KILN_OK) {
                err_set(err, rc, "%s failed and gave no reason (a plugin bug)",
                        op->name);
            }
            exec_op_failed(node, cur, err);
            g_object_unref(cur);
            return err->code;
        }
        double in_area = (double)cur->Xsize * cur->Ysize;
        pipeline_swap(&cur, out);
        if (exec_check_contract(node, impl != NULL ? impl->owner : NULL, cur,
                                err) != KILN_OK) {
            g_object_unref(cur);
            return err->code;
        }
        bool shared = graph_n_consumers(g, node->id) > 1;
        cur_cheap = shared || (k > 0 && pipeline_reduces(in_area, cur));
        if (cur_cheap) {
            VipsImage *mem = vips_image_copy_memory(cur);
            if (mem == NULL) {
                g_object_unref(cur);
                err_set_vips(err, NULL);
                char detail[sizeof err->message];
                snprintf(detail, sizeof detail, "%s", err->message);
                return err_set_path(err, KILN_EVIPS, node->path,
                                    "cannot render the result of %s into "
                                    "memory; libvips said: %s",
                                    op->name, detail);
            }
            pipeline_swap(&cur, mem);
        }
        if (shared) {
            g_object_ref(cur);
            memo[node->id] = cur;
        }
    }
    int rc = pipeline_write(st, enc, store, cur, p, jr, err);
    g_object_unref(cur);
    return rc;
}

int
pipeline_run(kiln_engine *e, const engine_storage *st, graph *g,
             VipsImage *source, exec_result *res)
{
    return pipeline_run_from(e, st, g, -1, source, res);
}

int
pipeline_run_from(kiln_engine *e, const engine_storage *st, graph *g, int node,
                  VipsImage *made, exec_result *res)
{
    exec_pending *pend = calloc(g->n_jobs + 1, sizeof *pend);
    VipsImage **memo = calloc(g->n_nodes + 1, sizeof *memo);
    if (pend == NULL || memo == NULL) {
        free(pend);
        free(memo);
        snprintf(res->error, sizeof res->error, "out of memory");
        return KILN_ENOMEM;
    }
    /* The source, or node `node`'s output, from which the jobs run. */
    VipsImage *source = made;
    if (node >= 0) {
        g_object_ref(made);
        memo[node] = made;
    }
    size_t n_failed = 0;
    for (size_t j = 0; j < g->n_jobs; j++) {
        job_result *jr = &res->jobs[j];
        const graph_node *enc = &g->nodes[g->nodes[g->job_store[j]].input];
        jr->format = graph_format_name(enc->format);
        double t0 = clock_ms();
        kiln_error err;
        err_clear(&err);
        int rc = exec_deadline_passed(&res->deadline)
                     ? exec_deadline_error(&res->deadline, &err)
                     : pipeline_job(
                           e, st, g, (int)j,
                           res->backend != NULL ? res->backend : "vips", source,
                           memo, &res->deadline, &pend[j], jr, &err);
        if (rc != KILN_OK && exec_deadline_passed(&res->deadline)) {
            /* Whatever failed, the kill did it: say so. */
            exec_deadline_error(&res->deadline, &err);
        }
        if (rc == KILN_EIO && !res->timed_out) {
            res->storage_errors++;
        }
        jr->duration_ms = clock_ms() - t0;
        jr->ok = rc == KILN_OK;
        if (!jr->ok) {
            graph_job_path(g, (int)j, &err);
            err_format(&err, jr->error, sizeof jr->error);
            n_failed++;
        }
    }
    exec_finish(st, g, pend, n_failed, res);
    free(pend);
    for (size_t i = 0; i < g->n_nodes; i++) {
        if (memo[i] != NULL) {
            g_object_unref(memo[i]);
        }
    }
    free(memo);
    return res->ok ? KILN_OK : KILN_EINVAL;
}
