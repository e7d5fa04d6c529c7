/*
 * Pass fuse-jpeg (-O2): the thumbnail, one JPEG decoded at a reduced
 * scale, reduced by one resample and encoded as a JPEG, runs as one loop
 * of kiln's own (plugins/backend-vips/fused.c) instead of a libvips pipeline:
 * libjpeg decodes rows into a ring of them, the vertical Lanczos3 kernel
 * reduces them as they come, the horizontal one four rows at a time, into the
 * output in memory, which the usual encoder writes. Same pixels as the
 * pipeline (the same libjpeg settings, the same kernels, kernels/), a
 * third less CPU: the pipeline's threads, regions and libjpeg's 4 KiB
 * input buffer (the slow path of its Huffman decoder) cost about 5 ms of
 * a 19 ms photograph (docs/optimizer.md, "fuse-jpeg").
 *
 * It marks the graph (g->fused_op); the engine runs the loop and falls
 * back to the pipeline when the file turns out not to fit (a colour space
 * libjpeg does not turn into RGB, any libjpeg warning).
 */
#include "dsl.h"

#include <string.h>

#include "../kernels/kern.h"

/* True when one axis reduces by a factor the kernels take: in_n input
 * samples covering `ext` of the bound image's pixels, to out_n. */
static bool
fuse_axis_ok(double ext, int out_n)
{
    double shrink = ext / out_n;
    return shrink > 1.0 && shrink <= KERN_REDUCE_MAX;
}

int
pass_fuse_jpeg(graph *g, opt_report *rep, kiln_error *err)
{
    (void)err;
    g->fused_op = 0;
    const char *why = NULL;
    const graph_node *load = &g->nodes[0];
    const graph_node *op = NULL, *enc = NULL;
    if (g->n_jobs != 1) {
        why = "several jobs share the decode";
    } else if (load->kind != GRAPH_LOAD || g->source_format == NULL ||
               strcmp(g->source_format, "jpeg") != 0) {
        why = "the source is not a JPEG";
    } else if (load->load_shrink < 2) {
        why = "the source is not decoded at a reduced scale";
    } else if (!g->source_plain || g->source_oriented) {
        why = "the source is decoded through a colour transform or turned";
    } else {
        const graph_node *store = &g->nodes[g->job_store[0]];
        enc = &g->nodes[store->input];
        op = &g->nodes[enc->input];
        if (enc->format != FORMAT_JPEG) {
            why = "the output is not a JPEG";
        } else if (op->kind != GRAPH_OP || op->input != load->id) {
            why = "the job is not one op on the source";
        }
    }
    int w = 0, h = 0;
    if (why == NULL) {
        const kiln_op *k = &op->op->op;
        const kiln_reduction *r = &op->reduction;
        if (!op->is_reduced || r->has_window || k->resample_to == NULL ||
            op->shape.has_alpha ||
            !k->resample_to(op->params, &r->bound, &w, &h) ||
            w != op->shape.width || h != op->shape.height) {
            why = "the op is not a resample of the whole source";
        } else if (!fuse_axis_ok(r->bound.width * r->xscale, w) ||
                   !fuse_axis_ok(r->bound.height * r->yscale, h)) {
            why = "the resample does not reduce both axes by 1 to 20";
        }
    }
    if (why != NULL) {
        snprintf(rep->note, sizeof rep->note, "not applied: %s", why);
        return KILN_OK;
    }
    graph_node *fused = &g->nodes[op->id];
    g->fused_op = fused->id;
    fused->note = arena_printf(
        g->arena, "%s%sfused: decoded, reduced and encoded in one loop",
        fused->note != NULL ? fused->note : "",
        fused->note != NULL ? "; " : "");
    rep->n_changes = 1;
    snprintf(rep->note, sizeof rep->note,
             "%%%d: JPEG shrink=%d, Lanczos3 to %dx%d and JPEG q%d in one "
             "loop%s",
             fused->id, load->load_shrink, w, h, enc->quality,
             g->format_guessed ? "; format guessed from the extension" : "");
    return KILN_OK;
}
