/*
 * The libvips backend's run of a whole graph: what the engine calls for
 * a service whose backend is "vips" (registered by plugin.c). The source
 * is opened once, header only; the compiler's last stages bind the graph
 * to its size and run the optimizer's passes with what the header says;
 * the source is then opened again the way the optimized graph reads it
 * (reduced by shrink-on-load, in strips through the stream, or whole),
 * decoded once for every job, and the jobs run (pipeline.c), or the fused
 * JPEG thumbnail (fused.c) when the pass planned one. A source that turns
 * out damaged while it streams is told apart from a job's own failure
 * here, and a JPEG whose strict decode failed on a harmless warning runs
 * again on a lenient one.
 */
#include "vips.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "../../core/netguard.h"

static void
run_reopen(graph *g, VipsSource *src, VipsImage **raw, bool *sequential,
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
run_facts(VipsImage *raw)
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
run_optimize(graph *g, int level, VipsSource *src, VipsImage **raw,
             bool *sequential, int *redecodes, kiln_error *err)
{
    *sequential = false;
    dsl_facts facts = run_facts(*raw);
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
    run_reopen(g, src, raw, sequential, redecodes);
    return KILN_OK;
}

/* The error of a source whose pixels do not decode, `why` saying what
 * libvips or the backend said; returns its code. */
static int
run_decode_failed(const char *shown, const char *why, kiln_error *err)
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
run_jobs_failed_in_pixels(const exec_result *res)
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
run_decode_lenient(graph *g, VipsSource *src, const char *shown,
                   const char *why, kiln_error *err)
{
    graph_node *load = &g->nodes[0];
    if (g->n_nodes == 0 || load->kind != GRAPH_LOAD || load->load_lenient ||
        !exec_is_jpeg(src)) {
        run_decode_failed(shown, why, err);
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
        run_decode_failed(shown, why, err);
    }
    return false;
}

/* Replaces *raw (the loader, or the stream over it) with a random-access
 * decode of `src` for the lenient load node, its pixels computed. */
static int
run_reopen_lenient(graph *g, VipsSource *src, const char *shown,
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
        return run_decode_failed(shown, why, err);
    }
    stream_finish(*raw);
    g_object_unref(*raw);
    *raw = im;
    return KILN_OK;
}

/* Forgets what a run of the jobs left in res, for a second run. */
static void
run_reset_jobs(exec_result *res)
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
 * again on a lenient decode (RUN_SOURCE_LENIENT). */
enum { RUN_SOURCE_FINE, RUN_SOURCE_DAMAGED, RUN_SOURCE_LENIENT };

static int
run_source_damaged(graph *g, VipsSource *src, const char *shown,
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
        return RUN_SOURCE_FINE;
    }
    if (im != NULL) {
        g_object_unref(im);
    }
    vips_error_clear();
    const char *said = strstr(seen, "libvips said: ");
    if (said != NULL) {
        seen = said + strlen("libvips said: ");
    }
    return run_decode_lenient(g, src, shown, seen, err) ? RUN_SOURCE_LENIENT
                                                        : RUN_SOURCE_DAMAGED;
}

int
run_graph(kiln_engine *e, const engine_storage *st,
          const engine_storage *src_st, graph *g, const kiln_limits *limits,
          exec_result *res, kiln_error *out_err)
{
    kiln_limits lim = *limits;
    int rc = KILN_OK;
    VipsImage *raw = NULL, *decoded = NULL;
    VipsSource *src = NULL;
    kiln_error err;
    err_clear(&err);
    rc = exec_open_source(src_st, g->req.source, lim.max_file_size,
                          lim.max_pixels, &res->deadline, true, &src, &raw,
                          &err);
    if (rc != KILN_OK) {
        engine_source_failed(res, rc, &err);
        goto fail;
    }
    kiln_shape shape;
    exec_oriented_shape(raw, &shape);
    /* The compiler's remaining stages: bind (the header only: the pixel
     * limit is checked before a single pixel is decoded), then the
     * passes, with what the header says. */
    dsl_facts facts = run_facts(raw);
    rc = engine_bind(e, &g, &shape, &facts, &lim, "vips", res);
    if (rc != KILN_OK) {
        goto done;
    }
    bool sequential = false;
    run_reopen(g, src, &raw, &sequential, &res->redecodes);
    if (g->fused_op > 0) {
        /* Pass fuse-jpeg: the thumbnail in one loop, or (the file is not
         * what the pass assumed) nothing done and the pipeline below. */
        VipsImage *made = NULL;
        bool taken = false;
        rc = fused_thumbnail(g, src, raw, &res->deadline, &made, &taken, &err);
        if (rc != KILN_OK) {
            goto fail;
        }
        if (taken) {
            res->ran_jobs = true;
            rc = pipeline_run_from(e, st, g, g->fused_op, made, res);
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
        if (!run_decode_lenient(g, src, shown, why, &err)) {
            rc = err.code;
            goto fail;
        }
        rc = run_reopen_lenient(g, src, shown, &res->deadline, &raw, &err);
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
        rc = pipeline_run(e, st, g, decoded, res);
        if (rc == KILN_OK || !sequential || res->timed_out ||
            !run_jobs_failed_in_pixels(res)) {
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
        int verdict = run_source_damaged(g, src, shown, saw, &err);
        if (verdict == RUN_SOURCE_DAMAGED) {
            /* As with an up-front decode failure: the process fails
             * whatever fail_on_conversion_error says. */
            res->ran_jobs = false;
            rc = err.code;
            goto fail;
        }
        if (verdict == RUN_SOURCE_FINE) {
            break;
        }
        /* Harmless JPEG warnings: nothing was written; run the jobs
         * again on a lenient, random-access decode. */
        g_object_unref(decoded);
        decoded = NULL;
        run_reset_jobs(res);
        rc = run_reopen_lenient(g, src, shown, &res->deadline, &raw, &err);
        if (rc != KILN_OK) {
            goto fail;
        }
        sequential = false;
    }
    goto done;
fail:
    if (err.code == KILN_OK) {
        err_set(&err, rc != KILN_OK ? rc : KILN_EINTERNAL,
                "the run failed and gave no reason (a bug)");
    }
    *out_err = err;
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
    return rc;
}
