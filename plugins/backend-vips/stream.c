/*
 * The stream: how a job's pipeline reads a source decoded in strips
 * (libvips sequential access), safe for every chain by construction.
 *
 * A sequential loader produces rows only top to bottom, through a line
 * cache of recent rows; a request above that cache fails ("out of order
 * read"). Whether a chain stays inside it depends on libvips internals no
 * op can promise: insert (annotation, watermark) and every sink (a copy to
 * memory, a histogram) tell the pipeline above them to minimise, which
 * empties the cache, and threads can run ahead of each other. So:
 *
 *  - The stream's image is not linked to the loader: it copies the
 *    loader's header and metadata and serves its pixels itself, so no
 *    minimise reaches the loader's cache.
 *  - Each request is read from the loader and handed on without a copy
 *    (the libvips region points at the loader's pixels).
 *  - A read that fails makes the stream decode the source again, whole,
 *    from an independent copy of its bytes, and serve that request and
 *    every later one from it. If the whole decode fails too, the file is
 *    damaged and the job fails as a whole decode would have.
 *
 * A job therefore never fails because its source was streamed; a chain
 * that leaves the cache only costs a second decode (counted; with
 * KILN_DEBUG set, logged). The shipped ops, which declare
 * KILN_OP_SEQUENTIAL, never need one: the chain property tests check it.
 */
#include "vips.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct stream {
    GMutex lock;
    VipsSource *src;  /* the source, for a second decode's bytes */
    graph_node load;  /* its shrink or scale */
    VipsImage *image; /* the loader; after a failed read, the whole decode */
    int generation;   /* 0 for the loader, 1 after the switch */
    int *restarts;    /* the engine's counter of second decodes */
    bool failed;      /* the whole decode failed too */
} stream;

/* One sequence (a libvips region being computed): its region on the
 * image of the generation it was made for. */
typedef struct stream_seq {
    VipsRegion *reg;
    int generation;
} stream_seq;

/* The header fields vips_image_init_fields() sets; the others are
 * metadata, copied one by one. */
static const char *const stream_builtin[] = {
    "width",   "height",  "bands", "format", "coding",   "interpretation",
    "xoffset", "yoffset", "xres",  "yres",   "filename", NULL};

static void
stream_free(VipsImage *out, stream *s)
{
    (void)out;
    g_mutex_clear(&s->lock);
    if (s->image != NULL) {
        g_object_unref(s->image);
    }
    if (s->src != NULL) {
        g_object_unref(s->src);
    }
    g_free(s);
}

static void *
stream_start(VipsImage *out, void *a, void *b)
{
    (void)out;
    (void)a;
    (void)b;
    stream_seq *seq = g_new0(stream_seq, 1);
    seq->generation = -1;
    return seq;
}

static int
stream_stop(void *vseq, void *a, void *b)
{
    (void)a;
    (void)b;
    stream_seq *seq = vseq;
    if (seq->reg != NULL) {
        g_object_unref(seq->reg);
    }
    g_free(seq);
    return 0;
}

/* The image of the current generation, one new reference. */
static VipsImage *
stream_current(stream *s, int *generation)
{
    g_mutex_lock(&s->lock);
    VipsImage *im = s->image;
    g_object_ref(im);
    *generation = s->generation;
    g_mutex_unlock(&s->lock);
    return im;
}

/* A read of generation `failed_gen` failed: unless another thread has
 * already done it, decode the source whole from an independent copy of
 * its bytes (the loader may still be reading the original). */
static int
stream_switch(stream *s, int failed_gen)
{
    int rc = 0;
    g_mutex_lock(&s->lock);
    if (s->generation != failed_gen) {
        goto done; /* switched already */
    }
    if (s->generation > 0 || s->failed) {
        s->failed = true;
        rc = -1; /* the whole decode fails too: a damaged file */
        goto done;
    }
    size_t len = 0;
    const void *bytes = vips_source_map(s->src, &len);
    VipsSource *copy =
        bytes != NULL ? vips_source_new_from_memory(bytes, len) : NULL;
    VipsImage *im = NULL;
    kiln_error err;
    err_clear(&err);
    VipsRegion *probe = NULL;
    VipsRect first = {0, 0, 1, 1};
    /* Random access decodes the whole image on its first read: make it
     * now, so that a damaged file fails here. */
    if (copy == NULL ||
        exec_reopen(copy, &s->load, false, &im, &err) != KILN_OK ||
        (probe = vips_region_new(im)) == NULL ||
        vips_region_prepare(probe, &first) != 0) {
        if (im != NULL) {
            g_object_unref(im);
        }
        s->failed = true;
        rc = -1;
    } else if (im->Xsize != s->image->Xsize || im->Ysize != s->image->Ysize ||
               im->Bands != s->image->Bands ||
               im->BandFmt != s->image->BandFmt) {
        vips_error("kiln", "the source decoded differently the second time");
        g_object_unref(im);
        s->failed = true;
        rc = -1;
    } else {
        /* Counted only now: a damaged file fails both ways, and is not
         * a chain that left the cache. */
        if (getenv("KILN_DEBUG") != NULL) {
            fprintf(stderr, "kiln: stream restart: a read of the source in "
                            "strips failed; decoded it again, whole\n");
        }
        if (s->restarts != NULL) {
            g_atomic_int_inc(s->restarts);
        }
        g_object_unref(s->image);
        s->image = im;
        s->generation++;
    }
    if (probe != NULL) {
        g_object_unref(probe);
    }
    if (copy != NULL) {
        g_object_unref(copy);
    }
done:
    g_mutex_unlock(&s->lock);
    return rc;
}

/* Points `out` at the pixels of r in the current image, through the
 * sequence's region (made again when the generation changed). On
 * failure *generation says which image failed. */
static int
stream_read(stream *s, stream_seq *seq, VipsRegion *out, const VipsRect *r,
            int *generation)
{
    VipsImage *im = stream_current(s, generation);
    if (seq->generation != *generation) {
        if (seq->reg != NULL) {
            g_object_unref(seq->reg);
        }
        seq->reg = vips_region_new(im);
        seq->generation = *generation;
    }
    g_object_unref(im); /* the region holds it */
    if (seq->reg == NULL || vips_region_prepare(seq->reg, r) != 0) {
        return -1;
    }
    return vips_region_region(out, seq->reg, (VipsRect *)r, r->left, r->top);
}

static int
stream_generate(VipsRegion *out, void *vseq, void *a, void *b, gboolean *stop)
{
    (void)b;
    (void)stop;
    stream *s = a;
    stream_seq *seq = vseq;
    const VipsRect *r = &out->valid;
    int generation;
    if (stream_read(s, seq, out, r, &generation) == 0) {
        return 0;
    }
    if (stream_switch(s, generation) != 0) {
        return -1;
    }
    return stream_read(s, seq, out, r, &generation);
}

/* Copies the header and metadata of `from` to `to`, without linking the
 * two (a link would carry minimise up to the loader). */
static void
stream_copy_header(VipsImage *from, VipsImage *to)
{
    vips_image_init_fields(to, from->Xsize, from->Ysize, from->Bands,
                           from->BandFmt, from->Coding, from->Type, from->Xres,
                           from->Yres);
    gchar **fields = vips_image_get_fields(from);
    for (gchar **f = fields; f != NULL && *f != NULL; f++) {
        bool builtin = false;
        for (size_t i = 0; stream_builtin[i] != NULL && !builtin; i++) {
            builtin = strcmp(*f, stream_builtin[i]) == 0;
        }
        GValue v = G_VALUE_INIT;
        if (!builtin && vips_image_get(from, *f, &v) == 0) {
            vips_image_set(to, *f, &v);
            g_value_unset(&v);
        }
    }
    g_strfreev(fields);
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
    s->image = loader;
    s->restarts = restarts;
    VipsImage *im = vips_image_new();
    g_signal_connect(im, "postclose", G_CALLBACK(stream_free), s);
    g_object_set_data(G_OBJECT(im), "kiln-stream", s);
    stream_copy_header(loader, im);
    if (vips_image_pipelinev(im, VIPS_DEMAND_STYLE_THINSTRIP, NULL) != 0 ||
        vips_image_generate(im, stream_start, stream_generate, stream_stop, s,
                            NULL) != 0) {
        g_object_unref(im);
        return err_set_vips(err, "reading the source in strips");
    }
    *out = im;
    return KILN_OK;
}

void
stream_finish(VipsImage *im)
{
    stream *s = g_object_get_data(G_OBJECT(im), "kiln-stream");
    if (s == NULL) {
        return;
    }
    /* libvips' operation cache may keep the pipelines that read the
     * stream, and with them the loader and its line cache, after the job:
     * release what the loader holds, as a sink minimises its input when
     * it ends (that minimise no longer reaches the loader). */
    g_mutex_lock(&s->lock);
    vips_image_minimise_all(s->image);
    g_mutex_unlock(&s->lock);
}
