/*
 * Optimizer passes drop-noops and merge-pairs (exact). drop-noops removes
 * every op its plugin calls a no-op for its params and input (is_noop:
 * rotate 0 or 360, brightness 0, a crop or resize to the input's size) and
 * every pair of consecutive runs of one op that undo each other (compose
 * says identity: two flips of one axis). merge-pairs turns such a pair
 * into one run when compose can (rotate 90 then 90: rotate 180). Both
 * work from params alone on an unbound graph, and with shapes once bound.
 */
#include "dsl.h"

#include <string.h>

/* Appends ", what" (or "what") to a report's note, marking overflow. */
static void
pass_note_add(opt_report *rep, const char *what)
{
    size_t l = strlen(rep->note);
    size_t room = sizeof rep->note - l;
    if (room <= 5) {
        return;
    }
    int n = snprintf(rep->note + l, room, "%s%s", l ? ", " : "", what);
    if (n < 0 || (size_t)n >= room) {
        snprintf(rep->note + sizeof rep->note - 5, 5, "...");
    }
}

/* The live op node that `n` reads, when it runs the same op as `n` and
 * nothing else reads it; NULL otherwise. */
static graph_node *
pass_pair_first(graph *g, const graph_node *n)
{
    graph_node *in = &g->nodes[n->input];
    if (in->kind != GRAPH_OP || in->dead || in->op != n->op ||
        graph_n_consumers(g, in->id) != 1) {
        return NULL;
    }
    return in;
}

/* Drops a pair that undoes itself. In a bound graph the second node's
 * shape must be the first one's input shape (it is, for a true identity;
 * a plugin that says otherwise is not trusted). */
static bool
pass_drop_pair(graph *g, graph_node *first, graph_node *second, opt_report *rep)
{
    if (g->bound &&
        !graph_same_shape(&second->shape, &g->nodes[first->input].shape)) {
        return false;
    }
    char what[600];
    snprintf(what, sizeof what, "%%%d+%%%d %s pair", first->id, second->id,
             second->op->op.name);
    graph_drop(g, first->id);
    graph_drop(g, second->id);
    pass_note_add(rep, what);
    rep->n_changes += 2;
    return true;
}

int
pass_drop_noops(graph *g, opt_report *rep, kiln_error *err)
{
    (void)err;
    for (size_t i = 0; i < g->n_nodes; i++) {
        graph_node *n = &g->nodes[i];
        if (n->kind != GRAPH_OP || n->dead) {
            continue;
        }
        const kiln_op *op = &n->op->op;
        const kiln_shape *in = g->bound ? &g->nodes[n->input].shape : NULL;
        if (op->is_noop != NULL && op->is_noop(n->params, in) &&
            (in == NULL || graph_same_shape(in, &n->shape))) {
            char what[300];
            snprintf(what, sizeof what, "%%%d %s", n->id, op->name);
            graph_drop(g, n->id);
            pass_note_add(rep, what);
            rep->n_changes++;
            continue;
        }
        graph_node *first = pass_pair_first(g, n);
        if (first == NULL || op->compose == NULL) {
            continue;
        }
        void *scratch = arena_alloc(g->arena, op->params_size + 1);
        if (scratch == NULL) {
            return err_set(err, KILN_ENOMEM, "out of memory");
        }
        if (op->compose(first->params, n->params, scratch) ==
            KILN_COMPOSE_IDENTITY) {
            pass_drop_pair(g, first, n, rep);
        }
    }
    if (rep->n_changes > 0) {
        char note[sizeof rep->note];
        snprintf(note, sizeof note, "dropped %s", rep->note);
        snprintf(rep->note, sizeof rep->note, "%s", note);
    }
    return KILN_OK;
}

int
pass_merge_pairs(graph *g, opt_report *rep, kiln_error *err)
{
    for (size_t i = 0; i < g->n_nodes; i++) {
        graph_node *n = &g->nodes[i];
        if (n->kind != GRAPH_OP || n->dead || n->op->op.compose == NULL) {
            continue;
        }
        graph_node *first = pass_pair_first(g, n);
        if (first == NULL) {
            continue;
        }
        const kiln_op *op = &n->op->op;
        void *merged = arena_alloc(g->arena, op->params_size + 1);
        if (merged == NULL) {
            return err_set(err, KILN_ENOMEM, "out of memory");
        }
        int r = op->compose(first->params, n->params, merged);
        if (r == KILN_COMPOSE_IDENTITY) {
            pass_drop_pair(g, first, n, rep);
        } else if (r == KILN_COMPOSE_MERGED) {
            char what[600];
            snprintf(what, sizeof what, "%%%d into %%%d (%s)", first->id, n->id,
                     op->name);
            n->note = arena_printf(g->arena, "merged with %s", first->path);
            n->params = merged;
            graph_drop(g, first->id);
            pass_note_add(rep, what);
            rep->n_changes++;
        }
    }
    if (rep->n_changes > 0) {
        char note[sizeof rep->note];
        snprintf(note, sizeof note, "merged %s", rep->note);
        snprintf(rep->note, sizeof rep->note, "%s", note);
    }
    return KILN_OK;
}
