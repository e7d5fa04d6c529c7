/*
 * backend-vips' own declarations: the libvips executor, a built-in plugin
 * (plugin.c). It is compiled into kiln rather than loaded from a file
 * because it runs the host's compiled graph itself (the optimizer's
 * libvips passes reach into its decoding: docs/backends.md), so it uses
 * the host's internal headers, which a plugin built apart from kiln must
 * never see.
 */
#ifndef KILN_BACKEND_VIPS_H
#define KILN_BACKEND_VIPS_H

#include "../../core/kiln.h"

/* ------------------------------------------------------------ plugin.c */

/* The plugin, for the loader's list of built-in plugins. */
extern const kiln_plugin_descriptor kiln_builtin_backend_vips;

/* --------------------------------------------------------------- run.c */

/* engine_run_fn for the "vips" backend: opens the source, binds and
 * optimizes g with what its header says, opens it again the way the
 * optimized graph reads it, decodes it once and runs every job. */
int run_graph(kiln_engine *e, const engine_storage *st,
              const engine_storage *src_st, graph *g, const kiln_limits *lim,
              exec_result *res, kiln_error *err);
/* Runs the optimizer's passes at `level` on a bound graph whose source
 * header is *raw (the source's format and plainness come from it), then
 * opens `src` again the way the optimized graph reads it; *raw (its
 * random-access header image) is replaced when that differs:
 *  - with the reduced decode shrink-on-load planned, if any; when that
 *    image is not the size the plan promised (a loader rounding another
 *    way), the plan is undone and the full-size decode kept;
 *  - in strips, through the stream (stream.c), when the graph streams
 *    (graph_streams; *sequential is set): the pixels are then decoded as
 *    the one consumer's pipeline pulls them, never held whole. Otherwise
 *    (several jobs that start differently, an op that reads its input
 *    twice, an EXIF orientation) the source stays in random-access mode,
 *    where libvips decodes it once into memory for all of them.
 * *redecodes counts the stream's second decodes (may be NULL). No pixel
 * is read here. */
int run_optimize(graph *g, int level, VipsSource *src, VipsImage **raw,
                 bool *sequential, int *redecodes, kiln_error *err);

/* ---------------------------------------------------------- pipeline.c */

/* Runs every job of a bound graph from the decoded source. */
int pipeline_run(kiln_engine *e, const engine_storage *st, graph *g,
                 VipsImage *source, exec_result *res);
/* The same with op node `node`'s output already made (`made`, which it
 * does not take): the jobs start from it (node -1: made is the source). */
int pipeline_run_from(kiln_engine *e, const engine_storage *st, graph *g,
                      int node, VipsImage *made, exec_result *res);

/* --------------------------------------------------------------- lut.c */

/* Runs dsl_lut_op (the optimizer's fused lookup) on `in`. */
int lut_run(const void *params, VipsImage *in, VipsImage **out,
            kiln_error *err);

/* ------------------------------------------------------------- fused.c */

/* Makes g->fused_op's output from the JPEG bytes of `src` in one loop:
 * libjpeg's DCT-scaled decode, the Lanczos3 kernels (kernels/), into a
 * w x h sRGB image in memory (*out, a new reference) carrying `header`'s
 * resolution. *taken is false, and nothing made, when the file is not
 * what the pass assumed or libjpeg has anything to say about it (a
 * warning, an error): the general path then runs, whose strict and
 * lenient decodes deal with it. KILN_OK, or the deadline's error. */
int fused_thumbnail(const graph *g, VipsSource *src, VipsImage *header,
                    exec_deadline *dl, VipsImage **out, bool *taken,
                    kiln_error *err);

/* ------------------------------------------------------------ stream.c */

/* Wraps `loader`, a sequential decode of `src` (opened with exec_reopen
 * for `load`), into *out: an image with its header and metadata, not
 * linked to it, whose pixels are read from the loader without a copy. A
 * read that fails (a chain that went above the loader's cache) decodes
 * `src` again, whole, from an independent copy of its bytes, serves that
 * request and every later one from it, and bumps *restarts (may be
 * NULL). *out is a new reference; it holds references to src and
 * loader. */
int stream_new(VipsSource *src, const graph_node *load, VipsImage *loader,
               int *restarts, VipsImage **out, kiln_error *err);
/* After the last job that reads `im` (a stream_new image; anything else
 * is ignored): releases the memory its loader holds. */
void stream_finish(VipsImage *im);

/* ------------------------------------------------------------ encode.c */

/* Encodes `im` (8-bit sRGB, flattened where the format has no alpha) as
 * format f into target and ends it; -1 with the libvips error set on
 * failure. quality is the contract's 0..100. */
int encode_save(VipsImage *im, graph_format f, int quality, VipsTarget *target);
/* True when encode_save() writes `im` as a JPEG with libjpeg directly:
 * 8-bit sRGB, 3 bands, in memory. */
bool encode_jpeg_direct_ok(VipsImage *im);
/* That JPEG, the bytes vips_jpegsave(Q = q, strip) makes; 0 or -1 with
 * the libvips error buffer set. */
int encode_jpeg_direct(VipsImage *im, int q, VipsTarget *target);
/* Flattens alpha for a format without it, onto `background` (r, g, b);
 * otherwise *out is `in` with one more reference. */
int encode_prepare(VipsImage *in, graph_format f, const double background[3],
                   VipsImage **out, kiln_error *err);

#endif /* KILN_BACKEND_VIPS_H */
