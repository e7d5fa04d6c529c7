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
#include "kiln.h"

#include <math.h>
#include <string.h>

/* How much of the reduction the decoder may take over. libvips' own
 * resize (ops_resample) already shrinks by an integer box factor
 * floor(1 / (2 x scale)) before its Lanczos3 step ("leave it the final
 * 200 - 300%"); at -O2 the decoder takes over at most that factor, so the
 * reduced pipeline has the same shape as the full one, with libjpeg's DCT
 * scaling in place of the box filter. At -O3 the decoded image need only
 * cover what the consumers need (sharp's fastShrinkOnLoad), which leaves
 * less for Lanczos3 and moves further from -O0 (docs/optimizer.md). */
#define SHRINK_GAP 2.0

/* At -O2 the factor must also divide both sides of the source. Decoded at
 * shrink s, a w x h source gives floor(w / s) x floor(h / s) pixels
 * (libvips drops the last partial block) for an extent of w / s x h / s,
 * and vips_reduce centres its output on the image it is given, not on
 * that extent: the resample then samples (w mod s) / 2 source pixels left
 * of (and (h mod s) / 2 above) where -O0's does. Within the x2 rule that
 * shift measured down to 30.5 dB on sharp photographs (2551x1599 at
 * shrink 4 to 195 px; 1363x1113 at shrink 4 to 167x136: 38.6 dB;
 * 2551x1599 at shrink 2 with a Lanczos3 ratio of 4: 39.5 dB); with
 * factors that divide the source, 43.3 dB and up (docs/optimizer.md).
 * -O3 keeps the shifted grid (not held to the bound). */

/* Outputs this small move furthest from -O0 even when the factor
 * divides the source: a greyscale photograph to 108 px measured 40.7 dB,
 * to under 64 px 38.4 to 39.7 (docs/optimizer.md), so -O2 leaves them
 * alone. */
#define SHRINK_MIN_NEED 128
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
    if (op->sample_scale == NULL || op->execute_reduced == NULL ||
        !op->sample_scale(c->params, in, sx, sy)) {
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
    double max_sx = 0, max_sy = 0;
    for (size_t i = (size_t)load->id + 1; i < g->n_nodes; i++) {
        const graph_node *c = &g->nodes[i];
        if (c->dead || c->input != load->id) {
            continue;
        }
        double sx, sy;
        if (!shrink_consumer_scale(g, c, &sx, &sy, rep)) {
            return KILN_OK;
        }
        /* A hair under the product, so that 0.5 of 1024 needs 512. */
        int nw = (int)ceil(sx * w - 1e-6), nh = (int)ceil(sy * h - 1e-6);
        need_w = nw > need_w ? nw : need_w;
        need_h = nh > need_h ? nh : need_h;
        max_sx = fmax(max_sx, sx);
        max_sy = fmax(max_sy, sy);
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
    int min_need = 0;
    for (size_t i = (size_t)load->id + 1; i < g->n_nodes; i++) {
        const graph_node *c = &g->nodes[i];
        if (!c->dead && c->input == load->id) {
            int m = c->shape.width < c->shape.height ? c->shape.width
                                                     : c->shape.height;
            min_need = min_need == 0 || m < min_need ? m : min_need;
        }
    }
    if (!fast && min_need < SHRINK_MIN_NEED) {
        snprintf(rep->note, sizeof rep->note,
                 "not applied: an output of %d px on a side is below the "
                 "%d px that -O2 reduces for",
                 min_need, SHRINK_MIN_NEED);
        return KILN_OK;
    }
    if (is_jpeg) {
        int s = pass_jpeg_shrink(w, h, need_w, need_h);
        /* -O2: no more than the box factor libvips' resize would use,
         * and only a factor that divides both sides (above). */
        int box = (int)fmin(floor(1 / (SHRINK_GAP * max_sx) + 1e-9),
                            floor(1 / (SHRINK_GAP * max_sy) + 1e-9));
        bool uneven = false;
        while (!fast && s > 1 && (s > box || w % s != 0 || h % s != 0)) {
            uneven = uneven || s <= box;
            s /= 2;
        }
        if (s == 1 && uneven) {
            snprintf(rep->note, sizeof rep->note,
                     "not applied: %dx%d is not a multiple of the JPEG "
                     "shrink the consumers allow (a reduced decode would "
                     "shift the resample)",
                     w, h);
            return KILN_OK;
        }
        if (s == 1) {
            snprintf(rep->note, sizeof rep->note,
                     "not applied: the consumers need %dx%d of %dx%d, too "
                     "much for a JPEG shrink%s",
                     need_w, need_h, w, h,
                     fast ? "" : " that keeps a x2 Lanczos3 step");
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
