/*
 * Fuzzes source probing on hostile files: the bytes are the source image,
 * opened through exec_open_source (core/exec.c) as the engine opens every
 * source (a storage backend's VipsSource, the length check, the header
 * read with fail_on error), then what engine_execute does before any
 * pixel is decoded: exec_oriented_shape, bind_graph of a small fixed
 * request (the pixel limit first), run_optimize (the passes at -O3
 * with the loader and plainness the header gives, then the re-open that
 * shrink-on-load's plan or the stream asks for, header only) and
 * exec_decode, which only builds the lazy colour pipeline. No pixel is
 * computed, so a file that claims a huge image costs its header only.
 *
 * Input: the file's bytes. The operation cache is off and libvips runs one
 * thread, so one input cannot leave state for the next.
 */
#include "fuzz_common.h"

#include "../../plugins/backend-vips/vips.h"

#include <string.h>

/* One job with a resize (shrink-on-load plans for it) and one with a
 * crop and a rotation, into formats with and without alpha. */
static const char probe_request[] =
    "{\"service_id\": 1, \"source\": \"/in/fuzz\", \"jobs\": ["
    "{\"destination\": \"/out/a.jpg\", \"transformations\": ["
    "{\"type\": \"resize\", \"width\": 48}]},"
    "{\"destination\": \"/out/b.png\", \"transformations\": ["
    "{\"type\": \"crop\", \"width\": \"50%\", \"height\": \"50%\","
    " \"gravity\": \"center\"}, {\"type\": \"rotate\", \"degrees\": 90}]}]}";

typedef struct probe_input {
    const uint8_t *data;
    size_t size;
} probe_input;

static kiln_engine *probe_engine;
static probe_input probe_current;

/* The storage backend's open_read: a source over a copy of the input
 * (the copy lives as long as the source, whatever holds it). */
static int
probe_open_read(void *state, const char *path, VipsSource **out,
                kiln_error *err)
{
    const probe_input *in = state;
    VipsBlob *blob = vips_blob_copy(in->data, in->size);
    if (blob == NULL) {
        return err_set(err, KILN_ENOMEM, "out of memory for %s", path);
    }
    *out = vips_source_new_from_blob(blob);
    vips_area_unref(VIPS_AREA(blob));
    if (*out == NULL) {
        return err_set_vips(err, path);
    }
    return KILN_OK;
}

static reg_storage probe_backend = {
    .st = {.name = "fuzz", .open_read = probe_open_read},
};

static engine_storage probe_storage = {
    .service_id = 1,
    .backend = &probe_backend,
    .state = &probe_current,
};

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_vips_init();
    vips_cache_set_max(0);
    vips_concurrency_set(1);
    char config[5000];
    snprintf(config, sizeof config,
             "{\"plugins\": {\"dirs\": [\"%s\"], \"enable\": [\"ops-vips\"]},"
             " \"limits\": {\"max_pixels\": 100000000,"
             " \"max_file_size\": 10000000},"
             " \"services\": [{\"id\": 1, \"tokens\": [\"t\"],"
             " \"storage\": {\"plugin\": \"local\", \"root\": \"/nonexistent\"}"
             "}]}",
             fuzz_plugin_dir());
    probe_engine = fuzz_engine_new(config, false);
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kiln_engine *e = probe_engine;
    const kiln_limits *lim = &e->config->limits;
    probe_current.data = data;
    probe_current.size = size;
    arena *a = NULL;
    graph *g = NULL;
    errlist errs = {0};
    if (engine_compile(e, probe_request, sizeof probe_request - 1, &a, &g,
                       &errs) != KILN_OK) {
        errlist_print(&errs, stderr);
        fuzz_fail("the fixed request does not compile");
    }
    VipsSource *src = NULL;
    VipsImage *raw = NULL, *decoded = NULL;
    kiln_error err;
    err_clear(&err);
    if (exec_open_source(&probe_storage, g->req.source, lim->max_file_size,
                         lim->max_pixels, NULL, true, &src, &raw,
                         &err) != KILN_OK) {
        goto done;
    }
    /* What the engine asks when a strict JPEG decode fails (a GIF was
     * checked by the open itself). */
    if (exec_is_jpeg(src)) {
        (void)source_check_jpeg(src, &err);
        err_clear(&err);
    }
    kiln_shape shape;
    exec_oriented_shape(raw, &shape);
    /* bind_graph refuses a source above max_pixels before anything
     * else, as engine_execute relies on. */
    if (bind_graph(g, &shape, lim, &errs) != KILN_OK) {
        errlist_print(&errs, fuzz_devnull());
        goto done;
    }
    /* The passes at -O3 and the engine's re-open (run_optimize), which
     * may replace raw; header only, no pixel is read. A failed pass
     * leaves raw as it was, which is decoded all the same. */
    bool sequential = false;
    (void)run_optimize(g, OPT_LEVEL_MAX, src, &raw, &sequential, NULL, &err);
    err_clear(&err);
    if (exec_decode(raw, &decoded, &err) == KILN_OK) {
        g_object_unref(decoded);
    }
done:
    if (raw != NULL) {
        g_object_unref(raw);
    }
    if (src != NULL) {
        g_object_unref(src);
    }
    vips_error_clear();
    errlist_free(&errs);
    arena_free(a);
    probe_current.data = NULL;
    return 0;
}
