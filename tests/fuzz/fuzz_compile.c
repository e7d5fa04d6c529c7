/*
 * Fuzzes the compiler: request JSON -> engine_compile (dsl_parse +
 * dsl_compile against the ops of the ops-vips plugin) -> bind_graph
 * against a source shape -> opt_run at a level, then the dumps and the
 * error list as `kiln compile` prints them. Every path must end in a
 * graph or in errors, never in a crash.
 *
 * Input: a 10-byte header, then the request text (not NUL-terminated:
 * the compiler takes a length).
 *   bytes 0-3  source width, little-endian, taken as 1 + v % VIPS_MAX_COORD
 *   bytes 4-7  source height, the same (libvips opens images up to
 *              VIPS_MAX_COORD per side, so bind sees such shapes)
 *   byte 8     bit 0 the source has alpha; bits 1-2 the -O level (0..3);
 *              bit 3 leave the graph unbound (kiln compile without a
 *              size); bits 4-5 the dump (text, json, dot, none); bit 6
 *              dump after every pass too (kiln compile --passes)
 *   byte 9     the source's format as its header would give it: 0 guess
 *              from the source path (--source-size), 1..8 a loader
 *              (jpeg, webp, svg, pdf, png, gif, tiff, heif), 9+ unknown;
 *              bit 7 the source decodes without a colour transform
 */
#include "fuzz_common.h"

#include <string.h>

#define HEADER 10

static kiln_engine *compile_engine;

static const char *const compile_loaders[] = {"jpegload", "webpload", "svgload",
                                              "pdfload",  "pngload",  "gifload",
                                              "tiffload", "heifload"};

/* Observes each pass as `kiln compile --passes` does: a dump after it. */
static void
compile_observe(const opt_pass *p, const opt_report *rep, bool skipped,
                const graph *g, void *user)
{
    (void)user;
    fprintf(fuzz_devnull(), "=== pass %s: %s %d %s\n", p->name,
            skipped ? "skipped" : "ran", rep->n_changes, rep->note);
    dump_graph(g, DUMP_TEXT, fuzz_devnull());
}

static uint32_t
compile_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_vips_init();
    char config[5000];
    snprintf(config, sizeof config,
             "{\"plugins\": {\"dirs\": [\"%s\"], \"enable\": [\"ops-vips\"]},"
             " \"services\": [{\"id\": 1, \"tokens\": [\"t\"],"
             " \"storage\": {\"plugin\": \"local\", \"root\": \"/nonexistent\"}"
             "}]}",
             fuzz_plugin_dir());
    compile_engine = fuzz_engine_new(config, false);
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < HEADER) {
        return 0;
    }
    kiln_shape shape;
    memset(&shape, 0, sizeof shape);
    shape.width = 1 + (int)(compile_u32(data) % VIPS_MAX_COORD);
    shape.height = 1 + (int)(compile_u32(data + 4) % VIPS_MAX_COORD);
    shape.has_alpha = data[8] & 1;
    shape.bands = shape.has_alpha ? 4 : 3;
    int level = (data[8] >> 1) & 3;
    bool bind = !(data[8] & 8);
    int dump = (data[8] >> 4) & 3;
    bool passes = data[8] & 64;
    int fmt = data[9] & 127;
    bool plain = data[9] & 128;

    kiln_engine *e = compile_engine;
    arena *a = NULL;
    graph *g = NULL;
    errlist errs = {0};
    int rc = engine_compile(e, (const char *)data + HEADER, size - HEADER, &a,
                            &g, &errs);
    if (rc == KILN_OK && bind) {
        rc = bind_graph(g, &shape, &e->config->limits, &errs);
    }
    if (rc == KILN_OK) {
        /* As kiln compile sets them: from the path for --source-size,
         * from the header for --source. */
        if (fmt == 0) {
            g->source_format = graph_format_of_path(g->req.source);
            g->format_guessed = g->source_format != NULL;
            g->source_plain = true;
        } else {
            g->source_format =
                fmt <= 8 ? graph_format_of_loader(compile_loaders[fmt - 1])
                         : NULL;
            g->source_plain = plain;
        }
        kiln_error oerr;
        err_clear(&oerr);
        rc = opt_run(g, level, passes ? compile_observe : NULL, NULL, &oerr);
        if (rc != KILN_OK) {
            errlist_add(&errs, &oerr, NULL);
        } else if (dump < 3) {
            dump_graph(g, (dump_format)dump, fuzz_devnull());
        }
        if (rc == KILN_OK && g->bound) {
            (void)graph_streams(g);
        }
    }
    if (rc != KILN_OK) {
        errlist_print(&errs, fuzz_devnull());
    }
    errlist_free(&errs);
    arena_free(a);
    return 0;
}
