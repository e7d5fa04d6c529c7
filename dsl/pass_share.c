/*
 * Optimizer passes that let jobs share work. share-chains (exact): two
 * jobs whose chains start with the same ops on the same params run them
 * once; the executor renders a node that several jobs read into memory
 * once (plugins/backend-vips/pipeline.c). reuse-reductions (not exact): a job
 * that reduces the source resamples instead from another job's larger reduction
 * of the whole source, when that one is at least twice its size (so Lanczos3
 * keeps its x2 step, as in shrink-on-load): five widths of one photograph
 * then cost one full-size resample and four small ones. Both keep the
 * graph's order (a node reads only nodes with smaller ids).
 */
#include "dsl.h"

#include <math.h>
#include <string.h>

/* True when two params structs of one op hold the same values. Fields
 * are compared by the op's spec table (never the padding between them);
 * an op without a table (the core's lut) is compared byte for byte. */
static bool
share_same_params(const kiln_op *op, const void *a, const void *b)
{
    if (op->n_params == 0) {
        return op->params_size == 0 || memcmp(a, b, op->params_size) == 0;
    }
    for (size_t i = 0; i < op->n_params; i++) {
        const kiln_param_spec *s = &op->params[i];
        const char *fa = (const char *)a + s->offset;
        const char *fb = (const char *)b + s->offset;
        switch (s->kind) {
        case KILN_PARAM_BOOL:
            if (*(const bool *)fa != *(const bool *)fb) {
                return false;
            }
            break;
        case KILN_PARAM_NUMBER:
            if (*(const double *)fa != *(const double *)fb) {
                return false;
            }
            break;
        case KILN_PARAM_LENGTH: {
            const kiln_length *la = (const void *)fa, *lb = (const void *)fb;
            if (la->is_set != lb->is_set ||
                (la->is_set && (la->unit != lb->unit ||
                                la->value != lb->value || la->px != lb->px))) {
                return false;
            }
            break;
        }
        case KILN_PARAM_COLOR: {
            const kiln_color *ca = (const void *)fa, *cb = (const void *)fb;
            if (ca->is_set != cb->is_set || ca->r != cb->r || ca->g != cb->g ||
                ca->b != cb->b || ca->a != cb->a) {
                return false;
            }
            break;
        }
        case KILN_PARAM_ENUM:
            if (*(const int *)fa != *(const int *)fb) {
                return false;
            }
            break;
        case KILN_PARAM_GRAVITY:
            if (*(const kiln_gravity *)fa != *(const kiln_gravity *)fb) {
                return false;
            }
            break;
        case KILN_PARAM_STRING: {
            const char *sa = *(const char *const *)fa;
            const char *sb = *(const char *const *)fb;
            if ((sa == NULL) != (sb == NULL) ||
                (sa != NULL && strcmp(sa, sb) != 0)) {
                return false;
            }
            break;
        }
        }
    }
    return true;
}

/* Two live op nodes that do the same thing to the same image. */
static bool
share_same_node(const graph_node *a, const graph_node *b)
{
    if (a->input != b->input || a->op != b->op ||
        !(a->op->op.flags & KILN_OP_PURE) || a->is_reduced != b->is_reduced) {
        return false;
    }
    if (a->is_reduced && (a->reduction.xscale != b->reduction.xscale ||
                          a->reduction.yscale != b->reduction.yscale)) {
        return false;
    }
    return share_same_params(&a->op->op, a->params, b->params);
}

int
pass_share_chains(graph *g, opt_report *rep, kiln_error *err)
{
    (void)err;
    int n = 0;
    /* Ascending ids: once two first ops are one, their successors read
     * the same node and may be shared in turn. */
    for (size_t i = 0; i < g->n_nodes; i++) {
        graph_node *b = &g->nodes[i];
        if (b->kind != GRAPH_OP || b->dead) {
            continue;
        }
        for (size_t k = (size_t)b->input + 1; k < i; k++) {
            graph_node *a = &g->nodes[k];
            if (a->kind != GRAPH_OP || a->dead || !share_same_node(a, b)) {
                continue;
            }
            /* b's readers read a instead; b goes. */
            graph_merge(g, b->id, a->id);
            b->runs_as = a->id + 1;
            a->note = arena_printf(g->arena, "shared by %zu jobs",
                                   graph_n_consumers(g, a->id));
            n++;
            break;
        }
    }
    rep->n_changes = n;
    if (n > 0) {
        snprintf(rep->note, sizeof rep->note,
                 "%d op%s run once for several jobs", n, n == 1 ? "" : "s");
    }
    return KILN_OK;
}

/* The size to which op node `n`, a reader of the source, resamples the
 * whole source (before any crop or pad), or false. It plans from the
 * shape it was bound to: the full source's, or (fuse-resamples) a smaller
 * image that the source covers whole. */
static bool
share_scaled(const graph_node *n, const kiln_shape *full, double *w, double *h)
{
    if (n->kind != GRAPH_OP || n->dead) {
        return false;
    }
    const kiln_op *op = &n->op->op;
    const kiln_shape *bound = n->is_reduced ? &n->reduction.bound : full;
    double sx, sy;
    if (op->sample_scale == NULL ||
        !op->sample_scale(n->params, bound, &sx, &sy)) {
        return false;
    }
    *w = sx * bound->width;
    *h = sy * bound->height;
    return true;
}

int
pass_reuse_reductions(graph *g, opt_report *rep, kiln_error *err)
{
    (void)err;
    const graph_node *load = &g->nodes[0];
    if (load->kind != GRAPH_LOAD) {
        return KILN_OK;
    }
    /* What the consumers were bound against: the header's shape. */
    const kiln_shape *full = load->load_shrink > 1 || load->load_scale > 0
                                 ? &load->full
                                 : &load->shape;
    int n = 0;
    char what[256] = "";
    for (size_t i = 1; i < g->n_nodes; i++) {
        graph_node *c = &g->nodes[i];
        double cw, ch;
        if (c->input != 0 || !share_scaled(c, full, &cw, &ch)) {
            continue;
        }
        int need_w = (int)ceil(cw - 1e-6);
        int need_h = (int)ceil(ch - 1e-6);
        /* The smallest earlier node that resamples the whole source itself
         * (not from another reduction: one extra resample at most per
         * output) to exactly its scaled size, nothing cut or padded, and
         * to at least twice what c needs. */
        graph_node *best = NULL;
        for (size_t k = 1; k < i; k++) {
            graph_node *m = &g->nodes[k];
            double mw, mh;
            if (m->input != 0 || !share_scaled(m, full, &mw, &mh) ||
                m->shape.width != (int)floor(mw + 0.5) ||
                m->shape.height != (int)floor(mh + 0.5) ||
                m->shape.bands != load->shape.bands ||
                m->shape.width < 2 * need_w || m->shape.height < 2 * need_h ||
                m->shape.width >= load->shape.width) {
                continue;
            }
            if (best == NULL ||
                (int64_t)m->shape.width * m->shape.height <
                    (int64_t)best->shape.width * best->shape.height) {
                best = m;
            }
        }
        if (best == NULL) {
            continue;
        }
        /* c keeps the shape it plans from; best covers the whole source,
         * so all of that shape. */
        kiln_shape bound = c->is_reduced ? c->reduction.bound : *full;
        graph_set_input(g, c->id, best->id);
        c->is_reduced = true;
        c->reduction.bound = bound;
        c->reduction.xscale = (double)best->shape.width / bound.width;
        c->reduction.yscale = (double)best->shape.height / bound.height;
        n++;
        size_t l = strlen(what);
        snprintf(what + l, sizeof what - l, "%s%%%d from %%%d", l ? ", " : "",
                 c->id, best->id);
    }
    rep->n_changes = n;
    if (n > 0) {
        snprintf(rep->note, sizeof rep->note,
                 "resample from a larger reduction: %s", what);
    }
    return KILN_OK;
}
