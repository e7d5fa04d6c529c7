/*
 * Optimizer pass fuse-luts (exact). Ops that are, for their params, a
 * lookup table on the colour bands of an 8-bit image (kiln_op.lut:
 * brightness, contrast, colorize, filter negate) are fused, run by run,
 * into one node of the core's own "lut" op, whose table is the
 * composition of theirs: table[b][v] = second[b][first[b][v]]. Composing
 * 8-bit tables is exact, so one vips_maplut gives the pixels the run
 * gave. A run whose tables compose to the identity (negate twice) is
 * dropped. Works on unbound graphs too: tables depend on params alone.
 */
#include "dsl.h"

#include <string.h>

typedef struct lut_params {
    uint8_t table[3][256];
} lut_params;

static bool
lut_table(const void *params, uint8_t table[3][256])
{
    memcpy(table, ((const lut_params *)params)->table,
           sizeof((const lut_params *)params)->table);
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

/* The table on the colour bands, alpha mapped to itself; the same checks
 * and libvips call as the ops-vips lookup ops (gd_map). */
static int
lut_execute(kiln_exec *ctx, const void *params, VipsImage *const *in,
            VipsImage **out, kiln_error *err)
{
    const lut_params *p = params;
    VipsPel table[256 * 4];
    int bands = vips_image_get_bands(in[0]);
    (void)ctx;
    if (vips_image_get_format(in[0]) != VIPS_FORMAT_UCHAR ||
        (bands != 3 && bands != 4)) {
        return err_set(err, KILN_EINVAL,
                       "lut: input has %d bands of format %d (expected "
                       "8-bit sRGB, 3 bands or 4 with alpha)",
                       bands, (int)vips_image_get_format(in[0]));
    }
    for (int v = 0; v < 256; v++) {
        for (int b = 0; b < bands; b++) {
            table[v * bands + b] = b < 3 ? p->table[b][v] : (VipsPel)v;
        }
    }
    VipsImage *t = vips_image_new_from_memory_copy(
        table, (size_t)256 * bands, 256, 1, bands, VIPS_FORMAT_UCHAR);
    if (t != NULL) {
        /* maplut labels its output like a many-band table: keep sRGB. */
        t->Type = vips_image_get_interpretation(in[0]);
    }
    int rc = KILN_OK;
    if (t == NULL || vips_maplut(in[0], out, t, NULL) != 0) {
        rc = err_set_vips(err, "lut");
    }
    if (t != NULL) {
        g_object_unref(t);
    }
    return rc;
}

/* Not in the registry: requests cannot name it; only this pass makes it. */
static const reg_op pass_lut_op = {
    .op =
        {
            .name = "lut",
            .summary = "fused per-channel lookup (optimizer)",
            .n_inputs = 1,
            .flags = KILN_OP_PURE | KILN_OP_SEQUENTIAL,
            .params_size = sizeof(lut_params),
            .infer = lut_infer,
            .execute = lut_execute,
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
        lut_params *p = arena_alloc(g->arena, sizeof *p);
        if (p == NULL) {
            return err_set(err, KILN_ENOMEM, "out of memory");
        }
        for (int b = 0; b < 3; b++) {
            for (int v = 0; v < 256; v++) {
                p->table[b][v] = second[b][first[b][v]];
            }
        }
        /* The run so far, for dumps: "brightness + contrast". */
        const char *names = prev->op == &pass_lut_op
                                ? prev->note + strlen("fused ")
                                : prev->op->op.name;
        if (prev->op != &pass_lut_op) {
            n_runs++;
        }
        n->note =
            arena_printf(g->arena, "fused %s + %s", names, n->op->op.name);
        n->op = &pass_lut_op;
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
