/*
 * Optimizer pass crop-first (exact: outputs keep their pixels). A crop
 * (an op whose kiln_op.region says its output is a rectangle of its input)
 * that reads a resample of the whole image (sample_scale, execute_reduced,
 * KILN_OP_WINDOWED: resize, fitmethod) goes; the resample makes only that
 * rectangle instead, through a window in its kiln_reduction, and resamples
 * only the part of its input the rectangle needs. Runs last, after the
 * passes that reduce resamples' inputs. docs/optimizer.md gives the rule.
 */
#include "dsl.h"

#include <math.h>
#include <string.h>

static int
crop_first_gcd(int a, int b)
{
    while (b != 0) {
        int t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* True when a resample of in_n pixels to out_n has an output pixel edge
 * strictly inside the image that falls on an input pixel edge (x in_n /
 * out_n an integer for some 0 < x < out_n): only there can the resample's
 * input be cut without moving libvips' pixel grid (resize.c). Sizes that
 * share no factor (1600 to 1067) cannot be cut on that axis. */
static bool
crop_first_axis_cuts(int in_n, int out_n)
{
    return out_n / crop_first_gcd(in_n, out_n) < out_n;
}

/* Why resample node r cannot take crop c's rectangle *rect, or NULL when
 * it can (rect filled). Quiet (*quiet true) when c or r is simply not a
 * crop after a resample, so that the report lists only real refusals. */
static const char *
crop_first_refusal(const graph *g, const graph_node *c, const graph_node *r,
                   kiln_rect *rect, bool *quiet)
{
    double sx, sy;

    *quiet = true;
    if (r->kind != GRAPH_OP || r->dead || r->input < 0) {
        return "";
    }
    const kiln_op *rop = &r->op->op;
    const kiln_shape *in = &g->nodes[r->input].shape;
    if (rop->sample_scale == NULL ||
        !c->op->op.region(c->params, &r->shape, rect)) {
        return "";
    }
    *quiet = false;
    if ((rop->flags & KILN_OP_WINDOWED) == 0) {
        return "resample does not take windows";
    }
    if (r->is_reduced) {
        return "resample already reads a reduced or other image";
    }
    if (graph_n_consumers(g, r->id) != 1) {
        return "resample read by other jobs";
    }
    if (!rop->sample_scale(r->params, in, &sx, &sy)) {
        return "resample gives no scale";
    }
    /* The output must lie inside the scaled image, same bands: a resize,
     * a fit that scales (box, stretch, outside) or cuts (cropbox), not one
     * that pads (letterbox) or adds alpha. */
    int sw = (int)floor(sx * in->width + 0.5);
    int sh = (int)floor(sy * in->height + 0.5);
    if (r->shape.width > sw || r->shape.height > sh ||
        r->shape.bands != in->bands || r->shape.has_alpha != in->has_alpha) {
        return "resample pads or adds bands";
    }
    if (rect->x < 0 || rect->y < 0 || rect->width < 1 || rect->height < 1 ||
        rect->x + rect->width > r->shape.width ||
        rect->y + rect->height > r->shape.height ||
        rect->width != c->shape.width || rect->height != c->shape.height) {
        return "crop region outside the resample's output";
    }
    if (!crop_first_axis_cuts(in->width, sw) &&
        !crop_first_axis_cuts(in->height, sh)) {
        return "no aligned cut: the sizes share no factor on either axis";
    }
    return NULL;
}

int
pass_crop_first(graph *g, opt_report *rep, kiln_error *err)
{
    (void)err;
    int n = 0, n_kept = 0;
    char what[256] = "", kept[256] = "";
    for (size_t i = 1; i < g->n_nodes; i++) {
        graph_node *c = &g->nodes[i];
        if (c->kind != GRAPH_OP || c->dead || c->is_reduced || c->input < 0 ||
            c->op->op.region == NULL) {
            continue;
        }
        graph_node *r = &g->nodes[c->input];
        kiln_rect rect;
        bool quiet;
        const char *why = crop_first_refusal(g, c, r, &rect, &quiet);
        if (why != NULL) {
            if (!quiet) {
                size_t l = strlen(kept);
                snprintf(kept + l, sizeof kept - l, "%s%%%d after %%%d (%s)",
                         l ? ", " : "", c->id, r->id, why);
                n_kept++;
            }
            continue;
        }
        /* r makes only the rectangle, from the input it was bound to. */
        r->is_reduced = true;
        r->reduction.bound = g->nodes[r->input].shape;
        r->reduction.xscale = 1;
        r->reduction.yscale = 1;
        r->reduction.has_window = true;
        r->reduction.window = rect;
        r->shape.width = rect.width;
        r->shape.height = rect.height;
        r->note = arena_printf(g->arena, "%s%scropped first: %%%d",
                               r->note != NULL ? r->note : "",
                               r->note != NULL ? "; " : "", c->id);
        graph_drop(g, c->id);
        n++;
        opt_list_add(what, sizeof what, c->id, "into", r->id);
    }
    rep->n_changes = n;
    if (n > 0) {
        snprintf(rep->note, sizeof rep->note,
                 "moved %d crop%s into the resample before: %s%s%s", n,
                 n == 1 ? "" : "s", what, n_kept ? "; kept " : "", kept);
    } else if (n_kept > 0) {
        snprintf(rep->note, sizeof rep->note, "not applied: %s", kept);
    }
    return KILN_OK;
}
