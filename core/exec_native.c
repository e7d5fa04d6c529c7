/*
 * The executor for a plugin's pixel backend (kiln_backend in plugin.h;
 * backend-magick's "magick"): a service whose `backend` names one runs
 * here instead of backend-vips' libvips pipeline (its run.c).
 *
 * The source is read whole from storage, its header probed by the backend
 * (the pixel limit is checked from it in bind, before a pixel is
 * decoded), decoded once by the backend and shared by every job. Each
 * op runs with the backend's implementation; an op that has none runs
 * with its libvips one, the image converted once at each boundary of
 * such a run (to_vips, from_vips), never per op. The backend encodes.
 * The passes that make reduced or windowed inputs, or fused loops, are
 * libvips-only and left out (dsl_stages.backend), so every op runs on
 * the input it was bound against, with one exception planned here:
 * shrink-on-load at -O2 and up (native_plan_shrink).
 */
#include "kiln.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "netguard.h"

/* A watermark's pixel limit, as exec.c's (EXEC_VECTOR_MAX_PIXELS). */
#define NATIVE_LOAD_MAX_PIXELS ((int64_t)100000000)

/* The image a chain holds: the backend's, or libvips' during a run of
 * ops that only libvips implements. Exactly one is set. */
typedef struct native_cur {
    void *nat;
    VipsImage *vim;
    int conversions; /* made so far, for the debug log */
} native_cur;

static void
native_cur_drop(const kiln_backend *b, native_cur *c)
{
    if (c->nat != NULL) {
        b->unref(c->nat);
    }
    if (c->vim != NULL) {
        g_object_unref(c->vim);
    }
    c->nat = NULL;
    c->vim = NULL;
}

/* Makes *c the backend's image (to_native) or libvips' (!to_native). */
static int
native_cur_as(const kiln_backend *b, native_cur *c, bool to_native,
              kiln_error *err)
{
    if (to_native && c->vim != NULL) {
        void *nat = NULL;
        int rc = b->from_vips(c->vim, &nat, err);
        if (rc != KILN_OK) {
            return rc;
        }
        g_object_unref(c->vim);
        c->vim = NULL;
        c->nat = nat;
        c->conversions++;
    } else if (!to_native && c->nat != NULL) {
        VipsImage *vim = NULL;
        int rc = b->to_vips(c->nat, &vim, err);
        if (rc != KILN_OK) {
            return rc;
        }
        b->unref(c->nat);
        c->nat = NULL;
        c->vim = vim;
        c->conversions++;
    }
    return KILN_OK;
}

int
exec_native_open(const engine_storage *src_st, const char *path,
                 int64_t max_bytes, const reg_backend *be, VipsSource **out,
                 kiln_image_info *info, kiln_error *err)
{
    VipsSource *src = NULL;
    int rc = src_st->backend->st.open_read(src_st->state, path, &src, err);
    if (rc != KILN_OK) {
        return exec_storage_error(src_st, err);
    }
    char shown[512];
    netguard_display_url(path, shown, sizeof shown);
    gint64 len = vips_source_length(src);
    if (len < 0) {
        g_object_unref(src);
        err_set_vips(err, NULL);
        char msg[sizeof err->message];
        snprintf(msg, sizeof msg, "%s", err->message);
        return err_set(err, KILN_EINVAL, "cannot read image \"%s\": %s", shown,
                       msg);
    }
    if (max_bytes > 0 && len > max_bytes) {
        g_object_unref(src);
        return err_set(err, KILN_ELIMIT,
                       "\"%s\" is %lld bytes, above the limit of %lld", shown,
                       (long long)len, (long long)max_bytes);
    }
    memset(info, 0, sizeof *info);
    info->size = sizeof *info;
    kiln_error why;
    err_clear(&why);
    rc = be->be.probe(src, info, &why);
    if (rc == KILN_OK &&
        (info->width < 1 || info->height < 1 || info->format[0] == '\0')) {
        rc = err_set(&why, KILN_EINTERNAL,
                     "the backend's probe gave no size or format (a bug in "
                     "plugin \"%s\")",
                     be->owner != NULL ? be->owner->name : "?");
    }
    if (rc != KILN_OK) {
        g_object_unref(src);
        return err_set(err, rc, "\"%s\": %s", shown, why.message);
    }
    info->format[sizeof info->format - 1] = '\0';
    *out = src;
    return KILN_OK;
}

int
exec_load_native(kiln_exec *ctx, const char *path, void **out, kiln_error *err)
{
    if (ctx == NULL || ctx->be == NULL) {
        return err_set(err, KILN_EINVAL,
                       "exec_load_native: this job runs on libvips (use "
                       "exec_load_image)");
    }
    const kiln_backend *b = &ctx->be->be;
    VipsSource *src = NULL;
    kiln_image_info info;
    int rc = exec_native_open(ctx->st, path, 0, ctx->be, &src, &info, err);
    if (rc != KILN_OK) {
        return rc;
    }
    if ((int64_t)info.width * info.height > NATIVE_LOAD_MAX_PIXELS) {
        g_object_unref(src);
        return err_set(
            err, KILN_ELIMIT, "\"%s\" is %dx%d, above the limit of %lld pixels",
            path, info.width, info.height, (long long)NATIVE_LOAD_MAX_PIXELS);
    }
    kiln_decode_opts o = *ctx->decode;
    o.max_pixels = NATIVE_LOAD_MAX_PIXELS;
    o.min_width = o.min_height = 0; /* whole: no plan covers this file */
    o.has_alpha = info.has_alpha;
    rc = b->decode(ctx, src, &o, out, err);
    g_object_unref(src);
    if (rc == KILN_OK && *out == NULL) {
        rc = err_set(err, KILN_EINTERNAL, "the backend decoded no image");
    }
    return rc;
}

/* The op contract for a native image: the shape infer() gave. */
static int
native_check_contract(const kiln_backend *b, const graph_node *node,
                      const kiln_plugin *owner, void *im, kiln_error *err)
{
    kiln_shape got;
    memset(&got, 0, sizeof got);
    b->shape(im, &got);
    const kiln_shape *want = &node->shape;
    if (got.width == want->width && got.height == want->height &&
        got.has_alpha == want->has_alpha) {
        return KILN_OK;
    }
    return err_set_path(err, KILN_EINTERNAL, node->path,
                        "%s broke the op contract: it returned a %dx%d "
                        "image%s where %dx%d%s was expected (a bug in plugin "
                        "\"%s\")",
                        node->op->op.name, got.width, got.height,
                        got.has_alpha ? " with alpha" : "", want->width,
                        want->height, want->has_alpha ? " with alpha" : "",
                        owner != NULL ? owner->name : "?");
}

/* A native op's failure in our words, as exec_op_failed() puts a
 * libvips one: its own message when it wrote one without a parameter
 * path ("name: ..." or any text), said to be the op's on an input of
 * this size; a message at one of its parameters stays as it is. */
static void
native_op_failed(const kiln_backend *b, const graph_node *node, void *in,
                 kiln_error *err)
{
    if (err->path[0] == '\0') {
        const char *name = node->op->op.name;
        const char *detail = err->message;
        size_t l = strlen(name);
        if (strncmp(detail, name, l) == 0 &&
            strncmp(detail + l, ": ", 2) == 0) {
            detail += l + 2;
        }
        kiln_shape sh;
        memset(&sh, 0, sizeof sh);
        b->shape(in, &sh);
        char d[sizeof err->message];
        snprintf(d, sizeof d, "%s", detail);
        err_set(err, err->code,
                "%s failed on its input (%dx%d%s, backend \"%s\"): %s", name,
                sh.width, sh.height, sh.has_alpha ? " with alpha" : "", b->name,
                d);
    }
    err_prefix_path(err, node->path);
}

/* Runs one op on *cur with `impl` (native or libvips); `red`, when not
 * NULL, says how the source it reads was reduced (native_plan_shrink
 * made sure the op can run on it natively). */
static int
native_run_op(kiln_exec *ctx, const graph_node *node, const reg_impl *impl,
              const kiln_reduction *red, native_cur *cur, kiln_error *err)
{
    const kiln_backend *b = &ctx->be->be;
    /* The backend's own implementation, on its own images; a libvips one
     * (execute) on a VipsImage, which for backend-vips' "vips" on the
     * SDK path is its own image again (to_vips is a new reference). */
    bool native = strcmp(impl->impl.backend, b->name) == 0 &&
                  impl->impl.execute_native != NULL;
    int rc = native_cur_as(b, cur, native, err);
    if (rc != KILN_OK) {
        return err_prefix_path(err, node->path), err->code;
    }
    kiln_error oe;
    err_clear(&oe);
    if (native) {
        void *in[1] = {cur->nat}, *out = NULL;
        rc = red != NULL
                 ? impl->impl.execute_native_reduced(ctx, node->params, red, in,
                                                     &out, &oe)
                 : impl->impl.execute_native(ctx, node->params, in, &out, &oe);
        if (rc == KILN_OK && out == NULL) {
            rc = err_set(&oe, KILN_EINTERNAL,
                         "%s returned no image and no error (a plugin bug)",
                         node->op->op.name);
        }
        if (rc != KILN_OK) {
            *err = oe;
            if (err->code == KILN_OK) {
                err_set(err, rc, "%s failed and gave no reason (a plugin bug)",
                        node->op->op.name);
            }
            native_op_failed(b, node, cur->nat, err);
            return err->code;
        }
        b->unref(cur->nat);
        cur->nat = out;
        return native_check_contract(b, node, impl->owner, out, err);
    }
    VipsImage *in[1] = {cur->vim}, *out = NULL;
    rc = impl->impl.execute(ctx, node->params, in, &out, &oe);
    if (rc != KILN_OK || out == NULL) {
        *err = oe;
        if (err->code == KILN_OK) {
            err_set(err, KILN_EINTERNAL,
                    "%s failed and gave no reason (a plugin bug)",
                    node->op->op.name);
        }
        if (out != NULL) {
            g_object_unref(out);
        }
        return exec_op_failed(node, cur->vim, err);
    }
    g_object_unref(cur->vim);
    cur->vim = out;
    return exec_check_contract(node, impl->owner, out, err);
}

typedef struct native_encode {
    kiln_exec *ctx;
    void *im;
    const graph_node *enc;
} native_encode;

static int
native_encode_run(void *user, VipsTarget *target, kiln_error *err)
{
    native_encode *n = user;
    const kiln_backend *b = &n->ctx->be->be;
    const graph_node *enc = n->enc;
    kiln_encode_opts o = {.size = sizeof o,
                          .format = graph_format_name(enc->format),
                          .quality = enc->quality,
                          .background = {255, 255, 255}};
    if (enc->background.is_set) {
        o.background[0] = (uint8_t)enc->background.r;
        o.background[1] = (uint8_t)enc->background.g;
        o.background[2] = (uint8_t)enc->background.b;
    }
    int rc = b->encode(n->ctx, n->im, &o, target, err);
    if (rc == KILN_OK && vips_target_end(target) != 0) {
        rc = err_set_vips(err, NULL);
    }
    if (rc != KILN_OK) {
        char detail[sizeof err->message];
        snprintf(detail, sizeof detail, "%s", err->message);
        return err_set_path(err, rc, enc->path,
                            "cannot encode the result as %s: %s", o.format,
                            detail);
    }
    return KILN_OK;
}

/* True when the backend writes `format`. */
static bool
native_writes(const kiln_backend *b, const char *format)
{
    for (const char *const *f = b->write_formats; *f != NULL; f++) {
        if (strcmp(*f, format) == 0) {
            return true;
        }
    }
    return false;
}

/* Runs one job from `source`, one reference of which it takes; `red`
 * says how the source was reduced (NULL: decoded whole). */
static int
native_job(kiln_engine *e, kiln_exec *ctx, graph *g, int job, void *source,
           const kiln_reduction *red, exec_deadline *deadline, exec_pending *p,
           kiln_error *err)
{
    const kiln_backend *b = &ctx->be->be;
    const graph_node *store = &g->nodes[g->job_store[job]];
    const graph_node *enc = &g->nodes[store->input];
    const char *format = graph_format_name(enc->format);
    if (!native_writes(b, format)) {
        b->unref(source);
        return err_set_path(err, KILN_EINVAL, enc->path,
                            "the \"%s\" backend does not write %s", b->name,
                            format);
    }
    int chain[4096];
    size_t n = 0;
    for (int id = enc->input; g->nodes[id].kind == GRAPH_OP;
         id = g->nodes[id].input) {
        if (n == sizeof chain / sizeof chain[0]) {
            b->unref(source);
            return err_set(err, KILN_ELIMIT, "too many transformations");
        }
        chain[n++] = id;
    }
    /* The ops make new images: the shared source stays as decoded. */
    native_cur cur = {source, NULL, 0};
    int rc = KILN_OK;
    for (size_t k = n; k-- > 0 && rc == KILN_OK;) {
        const graph_node *node = &g->nodes[chain[k]];
        const reg_impl *impl = registry_impl_for(&e->reg, node->op, b->name);
        if (impl == NULL) {
            rc = err_set_path(err, KILN_EINVAL, node->path,
                              "transformation \"%s\" has no implementation "
                              "for the \"%s\" backend or libvips",
                              node->op->op.name, b->name);
        } else if (exec_deadline_passed(deadline)) {
            rc = exec_deadline_error(deadline, err);
        } else {
            rc = native_run_op(ctx, node, impl, node->input == 0 ? red : NULL,
                               &cur, err);
        }
    }
    if (rc == KILN_OK) {
        rc = native_cur_as(b, &cur, true, err);
    }
    if (rc == KILN_OK) {
        native_encode ne = {ctx, cur.nat, enc};
        rc = exec_store(ctx->st, enc, store, native_encode_run, &ne, p,
                        ctx->job, err);
        kiln_shape sh;
        b->shape(cur.nat, &sh);
        ctx->job->width = sh.width;
        ctx->job->height = sh.height;
    }
    if (getenv("KILN_DEBUG") != NULL) {
        fprintf(stderr,
                "kiln: debug: %s: %d conversion%s between \"%s\" and "
                "libvips\n",
                store->destination, cur.conversions,
                cur.conversions == 1 ? "" : "s", b->name);
    }
    native_cur_drop(b, &cur);
    return rc;
}

/* Shrink-on-load on a plugin's backend (not exact: -O2 and up). When
 * the source is a JPEG and every op reading it reduces it with one
 * resample (kiln_op.sample_scale) that this backend runs natively on a
 * reduced input (execute_native_reduced), the backend may decode it at
 * a reduced scale (for MagickCore, `-define jpeg:size`: libjpeg's DCT
 * scaling by eighths). The rule is measured, as docs/backends.md says:
 * ImageMagick's Lanczos3 after its scaled IDCT kept -O2's bound (38 dB
 * against -O0) only with a step of x3 left after the IDCT and no IDCT
 * scale below a quarter (42 to 70 dB on the test photographs; x2 left
 * gave 36 dB, an eighth 39). A plan that would not at least halve a side
 * is not made. Fills o->min_width, min_height or leaves them 0. */
#define NATIVE_SHRINK_GAP 3.0
#define NATIVE_SHRINK_MAX 4.0
static void
native_plan_shrink(kiln_engine *e, const reg_backend *be, const graph *g,
                   const char *format, kiln_decode_opts *o)
{
    o->min_width = o->min_height = 0;
    if (g->opt_level < 2 || strcmp(format, "jpeg") != 0) {
        return;
    }
    const kiln_shape *src = &g->nodes[0].shape;
    double need_w = 0, need_h = 0;
    size_t consumers = 0;
    for (size_t i = 1; i < g->n_nodes; i++) {
        const graph_node *c = &g->nodes[i];
        if (c->dead || c->input != 0) {
            continue;
        }
        consumers++;
        if (c->kind != GRAPH_OP || c->op->op.sample_scale == NULL) {
            return;
        }
        const reg_impl *impl = registry_impl_for(&e->reg, c->op, be->be.name);
        double sx, sy;
        if (impl == NULL || strcmp(impl->impl.backend, be->be.name) != 0 ||
            impl->impl.execute_native_reduced == NULL ||
            !c->op->op.sample_scale(c->params, src, &sx, &sy) || sx <= 0 ||
            sy <= 0) {
            return;
        }
        need_w = fmax(need_w, ceil(src->width * sx * NATIVE_SHRINK_GAP - 1e-9));
        need_h =
            fmax(need_h, ceil(src->height * sy * NATIVE_SHRINK_GAP - 1e-9));
    }
    if (consumers == 0 || need_w * 2 > src->width || need_h * 2 > src->height) {
        return;
    }
    o->min_width = (int)fmax(need_w, ceil(src->width / NATIVE_SHRINK_MAX));
    o->min_height = (int)fmax(need_h, ceil(src->height / NATIVE_SHRINK_MAX));
}

/* The reduction a reduced decode made, checked against the plan: NULL
 * when the backend decoded whole. */
static int
native_reduction(const kiln_backend *b, const graph *g,
                 const kiln_decode_opts *o, void *source, kiln_reduction *r,
                 bool *reduced, kiln_error *err)
{
    *reduced = false;
    if (o->min_width == 0) {
        return KILN_OK;
    }
    kiln_shape got;
    memset(&got, 0, sizeof got);
    b->shape(source, &got);
    const kiln_shape *bound = &g->nodes[0].shape;
    if (got.width == bound->width && got.height == bound->height) {
        return KILN_OK;
    }
    if (got.width < o->min_width || got.height < o->min_height ||
        got.width > bound->width || got.height > bound->height ||
        got.has_alpha != bound->has_alpha) {
        return err_set(err, KILN_EINTERNAL,
                       "the \"%s\" backend decoded the %dx%d source to "
                       "%dx%d%s where at least %dx%d%s was asked (a bug in "
                       "its decode)",
                       b->name, bound->width, bound->height, got.width,
                       got.height, got.has_alpha ? " with alpha" : "",
                       o->min_width, o->min_height,
                       bound->has_alpha ? " with alpha" : "");
    }
    memset(r, 0, sizeof *r);
    r->bound = *bound;
    r->xscale = (double)got.width / bound->width;
    r->yscale = (double)got.height / bound->height;
    *reduced = true;
    if (getenv("KILN_DEBUG") != NULL) {
        fprintf(stderr,
                "kiln: debug: the \"%s\" backend decoded the %dx%d source "
                "at %dx%d (asked at least %dx%d)\n",
                b->name, bound->width, bound->height, got.width, got.height,
                o->min_width, o->min_height);
    }
    return KILN_OK;
}

int
exec_native_run(kiln_engine *e, const engine_storage *st, const reg_backend *be,
                graph *g, VipsSource *src, const kiln_image_info *info,
                const kiln_limits *lim, exec_result *res, kiln_error *err)
{
    const kiln_backend *b = &be->be;
    kiln_decode_opts dopt = {.size = sizeof dopt,
                             .max_pixels = lim->max_pixels,
                             .max_seconds = lim->max_process_time,
                             .has_alpha = g->nodes[0].shape.has_alpha};
    native_plan_shrink(e, be, g, info->format, &dopt);
    kiln_exec ctx0 = {st, NULL, be, &dopt};
    void *source = NULL;
    kiln_error de;
    err_clear(&de);
    int rc = b->decode(&ctx0, src, &dopt, &source, &de);
    if (rc == KILN_OK && source == NULL) {
        rc = err_set(&de, KILN_EINTERNAL, "the backend decoded no image");
    }
    kiln_reduction red;
    bool reduced = false;
    if (rc == KILN_OK) {
        rc = native_reduction(b, g, &dopt, source, &red, &reduced, &de);
        if (rc != KILN_OK) {
            b->unref(source);
            return err_set_path(err, rc, "source", "%s", de.message);
        }
    }
    if (rc != KILN_OK) {
        if (exec_deadline_passed(&res->deadline)) {
            return exec_deadline_error(&res->deadline, err);
        }
        char shown[512];
        netguard_display_url(g->req.source, shown, sizeof shown);
        return err_set_path(err, rc == KILN_ELIMIT ? rc : KILN_EINVAL, "source",
                            "cannot decode \"%s\": %s", shown, de.message);
    }
    exec_pending *pend = calloc(g->n_jobs + 1, sizeof *pend);
    if (pend == NULL) {
        b->unref(source);
        return err_set(err, KILN_ENOMEM, "out of memory");
    }
    res->ran_jobs = true;
    size_t n_failed = 0;
    for (size_t j = 0; j < g->n_jobs; j++) {
        job_result *jr = &res->jobs[j];
        double t0 = clock_ms();
        kiln_error je;
        err_clear(&je);
        kiln_exec ctx = {st, jr, be, &dopt};
        /* The last job gets the host's own reference of the source: an
         * image only one holder sees can be worked on in place (the
         * backend knows by its reference count). */
        void *mine = j + 1 == g->n_jobs ? source : b->ref(source);
        if (j + 1 == g->n_jobs) {
            source = NULL;
        }
        int jrc =
            exec_deadline_passed(&res->deadline)
                ? (b->unref(mine), exec_deadline_error(&res->deadline, &je))
                : native_job(e, &ctx, g, (int)j, mine, reduced ? &red : NULL,
                             &res->deadline, &pend[j], &je);
        if (jrc != KILN_OK && exec_deadline_passed(&res->deadline)) {
            exec_deadline_error(&res->deadline, &je);
        }
        if (jrc == KILN_EIO && !res->timed_out) {
            res->storage_errors++;
        }
        jr->duration_ms = clock_ms() - t0;
        jr->ok = jrc == KILN_OK;
        if (!jr->ok) {
            graph_job_path(g, (int)j, &je);
            err_format(&je, jr->error, sizeof jr->error);
            n_failed++;
        }
    }
    if (source != NULL) {
        b->unref(source); /* no job ran */
    }
    exec_finish(st, g, pend, n_failed, res);
    free(pend);
    return KILN_OK;
}
