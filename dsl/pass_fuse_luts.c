/*
 * Optimizer pass fuse-luts (exact). Ops that are, for their params, a
 * lookup table on the colour bands of an 8-bit image (kiln_op.lut:
 * brightness, contrast, colorize, filter negate) are fused, run by run,
 * into one node of the core's own "lut" op, whose table is the
 * composition of theirs: table[b][v] = second[b][first[b][v]]. Composing
 * 8-bit tables is exact, so one lookup (plugins/backend-vips/lut.c) gives the
 * pixels the run gave. A run whose tables compose to the identity (negate
 * twice) is dropped. Works on unbound graphs too: tables depend on params
 * alone.
 */
#include "dsl.h"

#include <string.h>

static bool
lut_table(const void *params, uint8_t table[3][256])
{
    memcpy(table, ((const dsl_lut_params *)params)->table,
           sizeof((const dsl_lut_params *)params)->table);
    return true;
}

static int
lut_infer(const void *params, const kiln_shape *in, kiln_shape *out,
          kiln_error *err)
{
    (void)params;
    (void)err;
    *out = *in;
    return KILN_OK;
}

/* Not in the registry: requests cannot name it; only this pass makes it.
 * Its definition only: the compiler runs no pixels. The executor applies
 * the table (plugins/backend-vips/lut.c). */
const reg_op dsl_lut_op = {
    .op =
        {
            .name = "lut",
            .summary = "fused per-channel lookup (optimizer)",
            .n_inputs = 1,
            .flags = KILN_OP_PURE | KILN_OP_SEQUENTIAL,
            .params_size = sizeof(dsl_lut_params),
            .infer = lut_infer,
            .lut = lut_table,
        },
    .owner = NULL,
};

static bool
lut_is_identity(uint8_t table[3][256])
{
    for (int b = 0; b < 3; b++) {
        for (int v = 0; v < 256; v++) {
            if (table[b][v] != v) {
                return false;
            }
        }
    }
    return true;
}

/* The op's table for its params, or false. */
static bool
lut_of(const graph_node *n, uint8_t table[3][256])
{
    if (n->kind != GRAPH_OP || n->dead || n->op->op.lut == NULL) {
        return false;
    }
    return n->op->op.lut(n->params, table);
}

int
pass_fuse_luts(graph *g, opt_report *rep, kiln_error *err)
{
    int n_fused = 0, n_runs = 0;
    for (size_t i = 0; i < g->n_nodes; i++) {
        graph_node *n = &g->nodes[i];
        uint8_t second[3][256], first[3][256];
        if (!lut_of(n, second)) {
            continue;
        }
        graph_node *prev = &g->nodes[n->input];
        if (graph_n_consumers(g, prev->id) != 1 || !lut_of(prev, first)) {
            continue;
        }
        dsl_lut_params *p = arena_alloc(g->arena, sizeof *p);
        if (p == NULL) {
            return err_set(err, KILN_ENOMEM, "out of memory");
        }
        for (int b = 0; b < 3; b++) {
            for (int v = 0; v < 256; v++) {
                p->table[b][v] = second[b][first[b][v]];
            }
        }
        /* The run so far, for dumps: "brightness + contrast". */
        const char *names = prev->op == &dsl_lut_op
                                ? prev->note + strlen("fused ")
                                : prev->op->op.name;
        if (prev->op != &dsl_lut_op) {
            n_runs++;
        }
        n->note =
            arena_printf(g->arena, "fused %s + %s", names, n->op->op.name);
        n->op = &dsl_lut_op;
        n->params = p;
        graph_drop(g, prev->id);
        n_fused++;
        if (lut_is_identity(p->table) &&
            (!g->bound ||
             graph_same_shape(&n->shape, &g->nodes[n->input].shape))) {
            graph_drop(g, n->id);
            n_fused++;
        }
    }
    rep->n_changes = n_fused;
    if (n_fused > 0) {
        snprintf(rep->note, sizeof rep->note,
                 "%d run%s of lookup ops fused (%d node%s removed)", n_runs,
                 n_runs == 1 ? "" : "s", n_fused, n_fused == 1 ? "" : "s");
    }
    return KILN_OK;
}
