/*
 * Optimizer pass shrink-on-load (not exact: it changes resampling). When
 * every consumer of the source reduces it with one resample (resize,
 * fitmethod: kiln_op.sample_scale), the source is decoded at a reduced
 * scale that still covers what every consumer needs: JPEG with libjpeg's
 * DCT scaling (shrink 2, 4 or 8), WebP, SVG and PDF with their loader's
 * scale. The consumers then run execute_reduced() on the smaller image
 * and resample from it to the sizes they were bound to, so every output
 * keeps its size; docs/optimizer.md gives the PSNR measured against -O0.
 * The plan needs the bound graph (sizes) and the source's format; the
 * engine decodes as planned and undoes the plan if the loader disagrees.
 */
#include "dsl.h"

#include <math.h>
#include <string.h>

/* How much of the reduction the decoder may take over: the quality rule
 * (docs/optimizer.md). Measured against an exact reduction (the full
 * decode, Lanczos3 in float at the exact scale), kiln at -O2 must score at
 * least sharp's default output, within 0.25 dB, and never below 38 dB.
 * A JPEG decoded at shrink 2 and then reduced by Lanczos3 alone (no box
 * shrink: ops-vips' resample of a reduced input) beats sharp by up to
 * 6.7 dB on thumbnails. But DCT scaling is a poor low-pass on its own:
 * with little Lanczos3 left after shrink 2 (x1.07, 2560 to 1200 px) it
 * lost 4 to 20 dB; with x1.42 and more it met the rule (sharp shrinks
 * there too, and scored lower). Shrink 4 with x2 left lost up to 3.3 dB
 * to shrink 2 with x4 left. So -O2 takes the largest shrink that leaves a
 * Lanczos3 step of shrink_left_o2(): x1.4 after shrink 2, x3 after 4 or
 * 8, on either parity of the sides (an odd side shifts the grid by a
 * quarter source pixel; measured within the rule). -O3 goes down to what the
 * consumers need, as sharp's fastShrinkOnLoad does (faster, and below
 * the rule: 34.9 to 49 dB).
 * WebP, SVG and PDF scale by their loader: -O2 keeps a x2 Lanczos3 step
 * after them (SHRINK_GAP). */
/* Nor, at -O2, for a consumer whose result is under SHRINK_MIN_SIDE px on
 * a side: there a pixel averages a large part of the source, and a
 * reduced decode (DCT scaling, a loader's scale) averages it differently
 * from -O0's box shrink and Lanczos3: the chain property tests measured
 * 33.1 to 37.4 dB for results of 1 to 8 px on a side (a 1-row strip, an
 * 8 px wide one of a 4200 px wide JPEG). Such a result now costs a whole
 * decode of its source; -O3 still shrinks. */
#define SHRINK_MIN_SIDE 16

static double
shrink_left_o2(int s)
{
    return s == 2 ? 1.4 : 3.0;
}
#define SHRINK_GAP 2.0

int
pass_jpeg_shrink(int w, int h, int need_w, int need_h)
{
    for (int s = 8; s > 1; s /= 2) {
        if (w / s >= need_w && h / s >= need_h) {
            return s;
        }
    }
    return 1;
}

/* Fills *sx, *sy with what consumer `c` of a w x h source needs, or says
 * in rep->note why it cannot run on a reduced input. A consumer that
 * fuse-resamples made read the source runs reduced already: it was bound
 * to the output of a resample it replaced, which the source covers with
 * c->reduction's scales. It is planned for as that first resample was
 * (its scale, 1 / c->reduction.xscale): the decode then covers what -O0's
 * first step made, and the box limit below is the one that step had. A
 * plan for the fused scale alone (a shrink of 8 for 2725 to 681 to 170
 * px) added its loss to fusion's and measured 39.9 dB. */
static bool
shrink_consumer_scale(const graph *g, const graph_node *c, double *sx,
                      double *sy, opt_report *rep)
{
    if (c->kind != GRAPH_OP) {
        snprintf(rep->note, sizeof rep->note,
                 "not applied: %%%d (%s) uses the source at full size", c->id,
                 c->kind == GRAPH_ENCODE ? "an encode" : "a store");
        return false;
    }
    const kiln_op *op = &c->op->op;
    const kiln_shape *in =
        c->is_reduced ? &c->reduction.bound : &g->nodes[c->input].shape;
    if (op->sample_scale == NULL || !op->sample_scale(c->params, in, sx, sy)) {
        snprintf(rep->note, sizeof rep->note,
                 "not applied: %%%d %s cannot run on a reduced source", c->id,
                 op->name);
        return false;
    }
    if (c->is_reduced) {
        *sx = fmax(*sx, 1) / c->reduction.xscale;
        *sy = fmax(*sy, 1) / c->reduction.yscale;
    }
    return true;
}

int
pass_shrink_on_load(graph *g, opt_report *rep, kiln_error *err)
{
    (void)err;
    graph_node *load = NULL;
    for (size_t i = 0; i < g->n_nodes && load == NULL; i++) {
        if (g->nodes[i].kind == GRAPH_LOAD) {
            load = &g->nodes[i];
        }
    }
    if (load == NULL || load->load_shrink > 1 || load->load_scale > 0) {
        return KILN_OK;
    }
    const char *fmt = g->source_format;
    bool is_jpeg = fmt != NULL && strcmp(fmt, "jpeg") == 0;
    bool is_scaled =
        fmt != NULL && (strcmp(fmt, "webp") == 0 || strcmp(fmt, "svg") == 0 ||
                        strcmp(fmt, "pdf") == 0);
    if (!is_jpeg && !is_scaled) {
        if (fmt == NULL) {
            snprintf(rep->note, sizeof rep->note,
                     "not applied: the source format is unknown");
        } else {
            snprintf(rep->note, sizeof rep->note,
                     "not applied: %s sources have no reduced decode", fmt);
        }
        return KILN_OK;
    }
    if (!g->source_plain) {
        snprintf(rep->note, sizeof rep->note,
                 "not applied: the source is decoded through a colour "
                 "transform (CMYK, a profile, alpha or 16 bits), which "
                 "does not commute with a reduced decode");
        return KILN_OK;
    }
    int w = load->shape.width, h = load->shape.height;
    int need_w = 0, need_h = 0, n_consumers = 0;
    for (size_t i = (size_t)load->id + 1; i < g->n_nodes; i++) {
        const graph_node *c = &g->nodes[i];
        if (c->dead || c->input != load->id) {
            continue;
        }
        double sx, sy;
        if (!shrink_consumer_scale(g, c, &sx, &sy, rep)) {
            return KILN_OK;
        }
        if (g->opt_level < 3 && (c->shape.width < SHRINK_MIN_SIDE ||
                                 c->shape.height < SHRINK_MIN_SIDE)) {
            snprintf(rep->note, sizeof rep->note,
                     "not applied: %%%d makes a %dx%d result, under %d px "
                     "on a side (-O3 shrinks it)",
                     c->id, c->shape.width, c->shape.height, SHRINK_MIN_SIDE);
            return KILN_OK;
        }
        /* A hair under the product, so that 0.5 of 1024 needs 512. */
        int nw = (int)ceil(sx * w - 1e-6), nh = (int)ceil(sy * h - 1e-6);
        need_w = nw > need_w ? nw : need_w;
        need_h = nh > need_h ? nh : need_h;
        n_consumers++;
    }
    if (n_consumers == 0) {
        return KILN_OK;
    }
    need_w = need_w < 1 ? 1 : need_w;
    need_h = need_h < 1 ? 1 : need_h;
    kiln_shape reduced = load->shape;
    double xscale, yscale;
    char how[64];
    bool fast = g->opt_level >= 3;
    if (is_jpeg) {
        int s = pass_jpeg_shrink(w, h, need_w, need_h);
        /* -O2: the largest shrink that leaves its Lanczos3 step. */
        while (!fast && s > 1 &&
               (w / s < shrink_left_o2(s) * need_w ||
                h / s < shrink_left_o2(s) * need_h)) {
            s /= 2;
        }
        if (!fast && s == 1) {
            snprintf(rep->note, sizeof rep->note,
                     "not applied: the consumers need %dx%d of %dx%d, which "
                     "leaves less than a x%g Lanczos3 step after a JPEG "
                     "shrink of 2",
                     need_w, need_h, w, h, shrink_left_o2(2));
            return KILN_OK;
        }
        if (s == 1) {
            snprintf(rep->note, sizeof rep->note,
                     "not applied: the consumers need %dx%d of %dx%d, too "
                     "much for a JPEG shrink",
                     need_w, need_h, w, h);
            return KILN_OK;
        }
        reduced.width = w / s;
        reduced.height = h / s;
        xscale = yscale = 1.0 / s;
        load->load_shrink = s;
        snprintf(how, sizeof how, "shrink=%d", s);
    } else {
        double gap = fast ? 1.0 : SHRINK_GAP;
        double scale = fmax(gap * need_w / w, gap * need_h / h);
        if (scale > 0.5) {
            snprintf(rep->note, sizeof rep->note,
                     "not applied: the consumers need %dx%d of %dx%d, more "
                     "than %g%%",
                     need_w, need_h, w, h, 50 / gap);
            return KILN_OK;
        }
        reduced.width = (int)floor(w * scale + 0.5);
        reduced.height = (int)floor(h * scale + 0.5);
        /* WebP's rescaler maps the whole image onto the decoded size; SVG
         * and PDF render at exactly `scale`. */
        bool webp = strcmp(fmt, "webp") == 0;
        xscale = webp ? (double)reduced.width / w : scale;
        yscale = webp ? (double)reduced.height / h : scale;
        load->load_scale = scale;
        snprintf(how, sizeof how, "scale=%.6g", scale);
    }
    load->full = load->shape;
    load->shape = reduced;
    for (size_t i = (size_t)load->id + 1; i < g->n_nodes; i++) {
        graph_node *c = &g->nodes[i];
        if (c->dead || c->input != load->id) {
            continue;
        }
        if (c->is_reduced) {
            /* Fused: still planned from its own bound shape; the source's
             * pixels per bound pixel shrink by the decode's factor. */
            c->reduction.xscale *= xscale;
            c->reduction.yscale *= yscale;
            continue;
        }
        c->is_reduced = true;
        c->reduction.bound = load->full;
        c->reduction.xscale = xscale;
        c->reduction.yscale = yscale;
    }
    rep->n_changes = 1 + n_consumers;
    snprintf(rep->note, sizeof rep->note,
             "%s%s %s: decode %dx%d instead of %dx%d (%d consumer%s "
             "%dx%d)%s",
             fast ? "-O3, down to the need: " : "", fmt, how, reduced.width,
             reduced.height, w, h, n_consumers,
             n_consumers == 1 ? " needs" : "s need", need_w, need_h,
             g->format_guessed ? "; format guessed from the extension" : "");
    return KILN_OK;
}

/* Only the load's own consumers were reduced by the plan. A consumer
 * bound to the source's shape reads it whole again; one bound to a
 * smaller image (fuse-resamples) keeps running reduced, at the scales of
 * the full source. Nodes reading another node (reuse-reductions) were
 * planned against the full source and stay as they are. */
void
pass_shrink_undo(graph *g)
{
    for (size_t i = 0; i < g->n_nodes; i++) {
        graph_node *load = &g->nodes[i];
        if (load->kind != GRAPH_LOAD ||
            (load->load_shrink <= 1 && load->load_scale <= 0)) {
            continue;
        }
        load->shape = load->full;
        load->load_shrink = 0;
        load->load_scale = 0;
        for (size_t k = i + 1; k < g->n_nodes; k++) {
            graph_node *c = &g->nodes[k];
            if (c->dead || c->input != load->id || !c->is_reduced) {
                continue;
            }
            c->is_reduced = !graph_same_shape(&c->reduction.bound, &load->full);
            c->reduction.xscale =
                (double)load->full.width / c->reduction.bound.width;
            c->reduction.yscale =
                (double)load->full.height / c->reduction.bound.height;
        }
    }
}
