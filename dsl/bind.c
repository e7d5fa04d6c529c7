/*
 * Stage 3: binding. With the source's shape known (from its header, or
 * --source-size), resolve every length of every op against that op's
 * input, run each op's pure infer to get its output shape, and check the
 * pixel limit on every intermediate. Nothing here touches pixels.
 */
#include "dsl.h"

#include <stdio.h>
#include <string.h>

int
bind_graph(graph *g, const kiln_shape *source, const kiln_limits *lim,
           errlist *errs)
{
    size_t before = errs->n;
    bool *failed = arena_alloc(g->arena, g->n_nodes + 1);
    if (failed == NULL) {
        return KILN_ENOMEM;
    }
    for (size_t i = 0; i < g->n_nodes; i++) {
        graph_node *n = &g->nodes[i];
        if (n->kind == GRAPH_LOAD) {
            n->shape = *source;
            /* The source itself, from its header: nothing is decoded yet,
             * so a decompression bomb costs nothing. */
            int64_t px = (int64_t)source->width * source->height;
            if (lim != NULL && lim->max_pixels > 0 && px > lim->max_pixels) {
                kiln_error e;
                err_set_path(&e, KILN_ELIMIT, "source",
                             "\"%s\" is %dx%d, %lld pixels, above the limit "
                             "of %lld",
                             n->source ? n->source : "?", source->width,
                             source->height, (long long)px,
                             (long long)lim->max_pixels);
                errlist_add(errs, &e, NULL);
                g->bound = false;
                return KILN_ELIMIT;
            }
            continue;
        }
        /* A job whose earlier op failed reports that one only: later
         * shapes would be guesses. */
        if (failed[n->input]) {
            failed[i] = true;
            continue;
        }
        const kiln_shape *in = &g->nodes[n->input].shape;
        if (n->kind == GRAPH_ENCODE) {
            n->shape = *in;
            if (!graph_format_has_alpha(n->format) && in->has_alpha) {
                n->shape.has_alpha = false;
                n->shape.bands = in->bands - 1;
            }
            /* An encoder's own size limit, refused here rather than when
             * the pixels are made (the chain property tests found WebP's
             * and JPEG's failing in the encoder). */
            int max = graph_format_max_side(n->format);
            if (in->width > max || in->height > max) {
                kiln_error e;
                char path[300];
                snprintf(path, sizeof path, "%s.destination", n->path);
                err_set_path(&e, KILN_EINVAL, path,
                             "the result is %dx%d, larger than the %s "
                             "format allows (expected at most %d px on a "
                             "side)",
                             in->width, in->height,
                             graph_format_name(n->format), max);
                errlist_add(errs, &e, NULL);
                failed[i] = true;
                continue;
            }
            int narrow = graph_format_narrow_max(n->format);
            int lo = in->width < in->height ? in->width : in->height;
            int hi = in->width < in->height ? in->height : in->width;
            if (narrow > 0 && lo < GRAPH_HEIC_NARROW && hi > narrow) {
                kiln_error e;
                char path[300];
                snprintf(path, sizeof path, "%s.destination", n->path);
                err_set_path(&e, KILN_EINVAL, path,
                             "the result is %dx%d, a shape the %s encoder "
                             "does not write (expected at most %d px on a "
                             "side when the other is under %d; AVIF, WebP "
                             "and PNG hold it)",
                             in->width, in->height,
                             graph_format_name(n->format), narrow,
                             GRAPH_HEIC_NARROW);
                errlist_add(errs, &e, NULL);
                failed[i] = true;
            }
            continue;
        }
        if (n->kind == GRAPH_STORE) {
            n->shape = *in;
            continue;
        }
        const kiln_op *op = &n->op->op;
        if (params_bind(op->params, op->n_params, n->params, in, n->path,
                        errs) != KILN_OK) {
            failed[i] = true;
            continue;
        }
        kiln_error e;
        err_clear(&e);
        kiln_shape out = *in;
        if (op->infer(n->params, in, &out, &e) != KILN_OK) {
            err_prefix_path(&e, n->path);
            errlist_add(errs, &e, NULL);
            failed[i] = true;
            continue;
        }
        if (out.width < 1 || out.height < 1 || out.width > KILN_MAX_SIZE ||
            out.height > KILN_MAX_SIZE) {
            err_set_path(&e, KILN_EINVAL, n->path,
                         "%s would make a %dx%d image (expected 1..%d px "
                         "per side)",
                         op->name, out.width, out.height, KILN_MAX_SIZE);
            errlist_add(errs, &e, NULL);
            failed[i] = true;
            continue;
        }
        if (lim != NULL && lim->max_pixels > 0 &&
            (int64_t)out.width * out.height > lim->max_pixels) {
            err_set_path(&e, KILN_ELIMIT, n->path,
                         "%s would make a %dx%d image, %lld pixels, above "
                         "the limit of %lld",
                         op->name, out.width, out.height,
                         (long long)out.width * out.height,
                         (long long)lim->max_pixels);
            errlist_add(errs, &e, NULL);
            failed[i] = true;
            continue;
        }
        n->shape = out;
    }
    g->bound = errs->n == before;
    return g->bound ? KILN_OK : KILN_EINVAL;
}
