/*
 * The stream: how a job's pipeline reads a source decoded in strips
 * (libvips sequential access), safe for every chain by construction.
 *
 * A sequential loader can only produce rows top to bottom; libvips keeps
 * a few recent rows in a line cache and fails with "out of order read"
 * when a request reaches above them. Whether a chain stays inside that
 * cache depends on libvips internals no op can promise (insert and the
 * sinks "minimise" their inputs, which empties the cache; threads run
 * ahead of each other by a factor of the request height). So the engine
 * never lets a pipeline drive the loader: it reads the loader here,
 * strictly in order, one strip after another, into a window of recent
 * rows, and serves every request from that window. A request above the
 * window (an op that reads its input twice, or bottom up) re-opens the
 * source and decodes it again from the top, this time keeping every row:
 * it costs one more decode and the memory a random-access decode takes,
 * never an error. The window grows with the requests it sees, so the
 * ops that declare KILN_OP_SEQUENTIAL never need that (the chain
 * property tests check it).
 */
#include "kiln.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The window holds at least STREAM_BUFFERS times libvips' sink buffer
 * height (vips_get_tile_size's n_lines, 128 rows up to 7 threads), and
 * STREAM_REQUEST_FACTOR times the tallest request it has seen. A sink
 * computes one buffer while it writes the one before, so its threads are
 * at most two buffers apart, plus the margins of the ops between (a
 * convolution, a resample's kernel); libvips sizes its own line caches
 * the same way. A reduction asks for tall requests, one per output
 * strip, which the second term covers. */
#define STREAM_BUFFERS 4
#define STREAM_REQUEST_FACTOR 4

/* Rows read from the loader in one go. */
#define STREAM_CHUNK 16

typedef struct stream {
    GMutex lock;
    VipsSource *src; /* for the second decode */
    graph_node load; /* its shrink or scale */
    VipsImage *loader;
    int y_pos;     /* the next row the loader produces */
    int top;       /* the first row the window holds */
    int cap;       /* rows the window holds (a ring) */
    VipsPel *rows; /* cap * row_bytes */
    size_t row_bytes;
    int width, height, bands;
    VipsBandFormat format;
    int *restarts; /* the engine's counter, bumped on a second decode */
    bool failed;
} stream;

static void
stream_free(VipsImage *out, stream *s)
{
    (void)out;
    g_mutex_clear(&s->lock);
    if (s->loader != NULL) {
        g_object_unref(s->loader);
    }
    if (s->src != NULL) {
        g_object_unref(s->src);
    }
    g_free(s->rows);
    g_free(s);
}

/* Makes the window hold `rows` rows (more than it does), keeping the ones
 * it has. Called with the lock held. */
static int
stream_grow(stream *s, int rows)
{
    if (rows > s->height) {
        rows = s->height;
    }
    if (rows <= s->cap) {
        return 0;
    }
    VipsPel *n = g_try_malloc((size_t)rows * s->row_bytes);
    if (n == NULL) {
        vips_error("kiln", "out of memory for %d rows of the source", rows);
        return -1;
    }
    for (int y = s->top; y < s->y_pos; y++) {
        memcpy(n + (size_t)(y % rows) * s->row_bytes,
               s->rows + (size_t)(y % s->cap) * s->row_bytes, s->row_bytes);
    }
    g_free(s->rows);
    s->rows = n;
    s->cap = rows;
    return 0;
}

/* Reads the loader on until row `bottom` (exclusive) is in the window,
 * dropping the oldest rows as the ring fills. */
static int
stream_fill(stream *s, int bottom)
{
    while (s->y_pos < bottom) {
        VipsRect area = {0, s->y_pos, s->width,
                         VIPS_MIN(STREAM_CHUNK, s->height - s->y_pos)};
        VipsRegion *reg = vips_region_new(s->loader);
        if (reg == NULL || vips_region_prepare(reg, &area) != 0) {
            if (reg != NULL) {
                g_object_unref(reg);
            }
            return -1;
        }
        for (int y = area.top; y < VIPS_RECT_BOTTOM(&area); y++) {
            memcpy(s->rows + (size_t)(y % s->cap) * s->row_bytes,
                   VIPS_REGION_ADDR(reg, 0, y), s->row_bytes);
        }
        g_object_unref(reg);
        s->y_pos = VIPS_RECT_BOTTOM(&area);
        if (s->y_pos - s->top > s->cap) {
            s->top = s->y_pos - s->cap;
        }
    }
    return 0;
}

/* A request above the window: decode the source again from the top,
 * keeping every row. */
static int
stream_restart(stream *s, int wanted)
{
    VipsImage *im = NULL;
    kiln_error err;
    err_clear(&err);
    if (getenv("KILN_DEBUG") != NULL) {
        fprintf(stderr,
                "kiln: stream restart: row %d was requested after the "
                "window moved to rows %d..%d; decoding the source again, "
                "whole\n",
                wanted, s->top, s->y_pos - 1);
    }
    if (s->restarts != NULL) {
        g_atomic_int_inc(s->restarts);
    }
    if (vips_source_rewind(s->src) != 0 ||
        exec_reopen(s->src, &s->load, true, &im, &err) != KILN_OK) {
        vips_error("kiln", "cannot decode the source a second time: %s",
                   err.message);
        return -1;
    }
    if (im->Xsize != s->width || im->Ysize != s->height ||
        im->Bands != s->bands || im->BandFmt != s->format) {
        g_object_unref(im);
        vips_error("kiln", "the source changed between two decodes");
        return -1;
    }
    g_object_unref(s->loader);
    s->loader = im;
    s->y_pos = 0;
    s->top = 0;
    return stream_grow(s, s->height);
}

static int
stream_generate(VipsRegion *out, void *seq, void *a, void *b, gboolean *stop)
{
    (void)seq;
    (void)b;
    (void)stop;
    stream *s = a;
    const VipsRect *r = &out->valid;
    int rc = 0;
    g_mutex_lock(&s->lock);
    if (s->failed) {
        vips_error("kiln", "the source could not be decoded");
        rc = -1;
        goto done;
    }
    /* Grow first, so that the rows above the request that are still held
     * stay held. */
    if (stream_grow(s, VIPS_MAX(s->cap, STREAM_REQUEST_FACTOR * r->height)) !=
        0) {
        rc = -1;
    } else if (r->top < s->top && stream_restart(s, r->top) != 0) {
        rc = -1;
    } else if (stream_fill(s, VIPS_RECT_BOTTOM(r)) != 0) {
        rc = -1;
    }
    if (rc != 0) {
        s->failed = true;
        goto done;
    }
    size_t ps = VIPS_IMAGE_SIZEOF_PEL(out->im);
    for (int y = r->top; y < VIPS_RECT_BOTTOM(r); y++) {
        memcpy(VIPS_REGION_ADDR(out, r->left, y),
               s->rows + (size_t)(y % s->cap) * s->row_bytes + r->left * ps,
               (size_t)r->width * ps);
    }
done:
    g_mutex_unlock(&s->lock);
    return rc;
}

int
stream_new(VipsSource *src, const graph_node *load, VipsImage *loader,
           int *restarts, VipsImage **out, kiln_error *err)
{
    stream *s = g_new0(stream, 1);
    g_mutex_init(&s->lock);
    g_object_ref(src);
    s->src = src;
    s->load = *load;
    g_object_ref(loader);
    s->loader = loader;
    s->width = loader->Xsize;
    s->height = loader->Ysize;
    s->bands = loader->Bands;
    s->format = loader->BandFmt;
    s->row_bytes = VIPS_IMAGE_SIZEOF_LINE(loader);
    s->restarts = restarts;
    VipsImage *im = vips_image_new();
    g_signal_connect(im, "postclose", G_CALLBACK(stream_free), s);
    /* The loader stays upstream of the stream (its header, metadata,
     * progress and kill signals carry through), but only this file reads
     * its pixels. */
    int tile_w, tile_h, n_lines;
    vips_get_tile_size(loader, &tile_w, &tile_h, &n_lines);
    if (stream_grow(s, VIPS_MIN(STREAM_BUFFERS * n_lines, s->height)) != 0 ||
        vips_image_pipelinev(im, VIPS_DEMAND_STYLE_THINSTRIP, loader, NULL) !=
            0 ||
        vips_image_generate(im, NULL, stream_generate, NULL, s, NULL) != 0) {
        g_object_unref(im);
        return err_set_vips(err, "reading the source in strips");
    }
    *out = im;
    return KILN_OK;
}
