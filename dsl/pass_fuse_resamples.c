/*
 * Optimizer pass fuse-resamples (not exact: it changes resampling). An op
 * that resamples (kiln_op.sample_scale, execute_reduced) and reads a pure
 * whole-image resample (a resize, a fitmethod box: nothing cut, padded or
 * added) reads that resample's input instead and resamples once, from the
 * larger image, to the size it was bound to; the first resample goes.
 * Chains fuse whole. Runs before shrink-on-load, which then sees the
 * fused op as the source's consumer. docs/optimizer.md gives the rule and
 * the PSNR measured against -O0.
 */
#include "dsl.h"

#include <math.h>
#include <string.h>

#define FUSE_NOTE "fused with"

/* True when op node `a` resamples the whole of its bound input to its
 * output, nothing cut, padded or added (its shape is its bound input
 * scaled by its own factors, as the op rounds them, same bands). Fills
 * *ext_w, *ext_h with the extent of its actual input that covers its
 * bound input (the input's size, unless `a` itself runs reduced). */
static bool
fuse_is_whole_resample(const graph *g, const graph_node *a, double *ext_w,
                       double *ext_h)
{
    if (a->kind != GRAPH_OP || a->dead || a->input < 0) {
        return false;
    }
    const kiln_op *op = &a->op->op;
    const kiln_shape *in = &g->nodes[a->input].shape;
    const kiln_shape *bound = a->is_reduced ? &a->reduction.bound : in;
    double sx, sy;
    if (op->sample_scale == NULL ||
        !op->sample_scale(a->params, bound, &sx, &sy)) {
        return false;
    }
    if (a->shape.width != (int)floor(sx * bound->width + 0.5) ||
        a->shape.height != (int)floor(sy * bound->height + 0.5) ||
        a->shape.bands != bound->bands ||
        a->shape.has_alpha != bound->has_alpha) {
        return false;
    }
    if (a->is_reduced) {
        *ext_w = a->reduction.bound.width * a->reduction.xscale;
        *ext_h = a->reduction.bound.height * a->reduction.yscale;
    } else {
        *ext_w = in->width;
        *ext_h = in->height;
    }
    return true;
}

/* The quality rule, measured (docs/optimizer.md), on each axis:
 * - both resamples reduce, the second to FUSE_MAX_SECOND or less. A
 *   reduction then an enlargement measured 25 to 35 dB from -O0: the
 *   first reduction removed detail that one resample from the larger
 *   image keeps. An enlargement first measured 33.9 to 46.4 dB on the
 *   PNG samples (libvips enlarges with another filter than it reduces).
 *   A mild second reduction (0.9) cascades two filters of nearly the same
 *   cutoff, which one filter does not reproduce: 32 dB on white noise.
 * - the fused scale is not in (1/5, 1/4]: there libvips' resize starts
 *   with a box shrink of 2 and leaves Lanczos3 a reduction of only 2 to
 *   2.5, where -O0's two steps used Lanczos3 alone; white noise measured
 *   38.7 to 39.9 dB. Below 1/5 the box is followed by enough Lanczos3.
 * Within the rule the photographs measure 45 to 58 dB, white noise 42 to
 * 52 dB. */
#define FUSE_MAX_SECOND 0.75
/* Nor is a resample fused whose output is under FUSE_MIN_SIDE pixels on
 * a side. There a pixel holds a large part of the image, and the two
 * routes (-O0's box shrink and Lanczos3 twice, one Lanczos3 here) give
 * different averages of it: the issue-11 long run found a 320x240 source
 * boxed to 21x16 then resized to 2x2 at 31 dB, and a grid of such chains
 * found 26.7 to 37.7 dB for outputs up to 13x10. The second resample of a
 * small output costs next to nothing, so the bound is kept generously. */
#define FUSE_MIN_SIDE 32
static bool
fuse_keeps_quality(double a_scale, double b_scale)
{
    double fused = a_scale * b_scale;
    return a_scale <= 1 && b_scale <= FUSE_MAX_SECOND &&
           !(fused > 0.2 && fused <= 0.25 + 1e-9);
}

int
pass_fuse_resamples(graph *g, opt_report *rep, kiln_error *err)
{
    (void)err;
    int n = 0, n_kept = 0;
    char what[256] = "", kept[128] = "";
    /* Ascending ids: after b reads a's input, b's own reader sees b as a
     * whole resample in turn, so chains fuse into their last op. */
    for (size_t i = 1; i < g->n_nodes; i++) {
        graph_node *b = &g->nodes[i];
        if (b->kind != GRAPH_OP || b->dead || b->is_reduced || b->input < 0) {
            continue;
        }
        graph_node *a = &g->nodes[b->input];
        const kiln_op *bop = &b->op->op;
        double ext_w, ext_h, bx, by;
        if (bop->sample_scale == NULL || graph_n_consumers(g, a->id) != 1 ||
            !fuse_is_whole_resample(g, a, &ext_w, &ext_h) ||
            !bop->sample_scale(b->params, &a->shape, &bx, &by)) {
            continue;
        }
        if (!fuse_keeps_quality(a->shape.width / ext_w, bx) ||
            !fuse_keeps_quality(a->shape.height / ext_h, by) ||
            b->shape.width < FUSE_MIN_SIDE || b->shape.height < FUSE_MIN_SIDE) {
            opt_list_add(kept, sizeof kept, b->id, "after", a->id);
            n_kept++;
            continue;
        }
        /* b plans from what it was bound to (a's output) and resamples
         * from a's input, whose extent ext covers that whole image: more
         * input pixels than bound ones when a reduced (scales above 1). */
        int from = a->input;
        b->is_reduced = true;
        b->reduction.bound = a->shape;
        b->reduction.xscale = ext_w / a->shape.width;
        b->reduction.yscale = ext_h / a->shape.height;
        graph_set_input(g, b->id, from);
        /* A chain's last op lists every resample it took over. */
        bool a_fused = a->note != NULL &&
                       strncmp(a->note, FUSE_NOTE, strlen(FUSE_NOTE)) == 0;
        b->note = arena_printf(
            g->arena, "%s%s%s%s %%%d", b->note != NULL ? b->note : "",
            b->note != NULL ? "; " : "", a_fused ? a->note : FUSE_NOTE,
            a_fused ? "," : "", a->id);
        /* a has no reader left: it goes (its input loses a reader). */
        graph_drop(g, a->id);
        n++;
        opt_list_add(what, sizeof what, a->id, "into", b->id);
    }
    rep->n_changes = n;
    if (n > 0) {
        snprintf(rep->note, sizeof rep->note,
                 "fused %d resample%s into the next: %s%s%s%s", n,
                 n == 1 ? "" : "s", what, n_kept ? "; kept " : "", kept,
                 n_kept ? " (outside the quality rule)" : "");
    } else if (n_kept > 0) {
        snprintf(rep->note, sizeof rep->note,
                 "not applied: %s: outside the rule that keeps 40 dB (an "
                 "enlargement, a second reduction under 4/3, or a fused "
                 "scale in (1/5, 1/4])",
                 kept);
    }
    return KILN_OK;
}
