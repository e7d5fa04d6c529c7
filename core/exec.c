/*
 * What every executor shares (backend-vips' pipeline and exec_native.c):
 * the run's deadline; opening a stored image and decoding it the way
 * every source is decoded into the SDK's common currency, VipsImage (EXIF
 * auto-orientation, ICC or colourspace conversion to sRGB, 8-bit), for
 * sources, watermarks and mixed chains; the op contract's check; and the
 * outputs: each job writes through the service's storage to a pending
 * object, and only when the process's outcome is known are the objects
 * committed (or all aborted), so a destination is whole or absent.
 */
#include "kiln.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "netguard.h"

/* A watermark has no pixel limit of its own; a vector one is rendered at
 * most this large. */
#define EXEC_VECTOR_MAX_PIXELS ((int64_t)100000000)

bool
exec_deadline_passed(exec_deadline *d)
{
    if (d->expired) {
        return true;
    }
    if (d->cancel != NULL && *d->cancel) {
        d->cancelled = 1;
        d->expired = 1;
    } else if (d->stop != NULL && *d->stop) {
        d->stopped = 1;
        d->expired = 1;
    } else if (d->at_ms > 0 && clock_ms() > d->at_ms) {
        d->expired = 1;
    }
    return d->expired != 0;
}

int
exec_deadline_error(const exec_deadline *d, kiln_error *err)
{
    if (d->cancelled) {
        return err_set(err, KILN_ELIMIT,
                       "interrupted: the server is shutting down (the "
                       "process is queued again)");
    }
    if (d->stopped) {
        return err_set(err, KILN_ELIMIT,
                       "cancelled (POST /cancel): the run was stopped and "
                       "wrote nothing");
    }
    return err_set(err, KILN_ELIMIT,
                   "cancelled: the process ran longer than its "
                   "max_process_time of %g s",
                   d->limit_s);
}

/* libvips emits "eval" on the image with progress reporting while any
 * pipeline that reads it is computed, from its worker threads; killing
 * the image makes every region computed from it fail, which ends the
 * running sink (the encoder) with an error. */
static void
exec_deadline_eval(VipsImage *im, VipsProgress *progress, void *user)
{
    (void)progress;
    exec_deadline *d = user;
    if (exec_deadline_passed(d)) {
        vips_image_set_kill(im, TRUE);
    }
}

void
exec_deadline_watch(exec_deadline *d, VipsImage *im)
{
    if (d->at_ms <= 0 && d->cancel == NULL) {
        return;
    }
    vips_image_set_progress(im, TRUE);
    g_signal_connect(im, "eval", G_CALLBACK(exec_deadline_eval), d);
}

void
exec_warn(kiln_exec *ctx, const char *fmt, ...)
{
    if (ctx == NULL || ctx->job == NULL) {
        return;
    }
    job_result *j = ctx->job;
    char **w = realloc(j->warnings, (j->n_warnings + 1) * sizeof *w);
    if (w == NULL) {
        return;
    }
    j->warnings = w;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    w[j->n_warnings] = strdup(buf);
    if (w[j->n_warnings] != NULL) {
        j->n_warnings++;
    }
}

/* Names the service and backend in a storage error, so an operator with
 * several services on several backends knows where to look; the backend's
 * message already names the path. Returns err->code. */
int
exec_storage_error(const engine_storage *st, kiln_error *err)
{
    char msg[sizeof err->message];
    snprintf(msg, sizeof msg, "%s", err->message);
    if (st->service_id >= 0) {
        snprintf(err->message, sizeof err->message,
                 "service %d, storage \"%s\": %s", st->service_id,
                 st->backend->st.name, msg);
    } else {
        snprintf(err->message, sizeof err->message,
                 "remote source, storage \"%s\": %s", st->backend->st.name,
                 msg);
    }
    return err->code;
}

int
exec_open_stored(const engine_storage *st, const char *path, int64_t max_bytes,
                 VipsImage **out, kiln_error *err)
{
    return exec_open_source(st, path, max_bytes, EXEC_VECTOR_MAX_PIXELS, NULL,
                            false, NULL, out, err);
}

/* Frees a rendered PNG when its blob goes. */
static int
exec_free_blob(void *data, void *unused)
{
    (void)unused;
    free(data);
    return 0;
}

/* An SVG or PDF the service enables: rendered in a child (render.c);
 * *src is replaced with a source of the PNG it made. */
static int
exec_render_vector(const char *format, const char *shown, int64_t max_pixels,
                   const config_vector *v, const exec_deadline *dl,
                   VipsSource **src, kiln_error *err)
{
    size_t len = 0;
    const void *bytes = vips_source_map(*src, &len);
    if (bytes == NULL) {
        err_set_vips(err, NULL);
        char msg[sizeof err->message];
        snprintf(msg, sizeof msg, "%s", err->message);
        return err_set(err, KILN_EIO, "cannot read \"%s\": %s", shown, msg);
    }
    void *png = NULL;
    size_t png_len = 0;
    int rc = render_source(format, bytes, len, max_pixels, v, dl, &png,
                           &png_len, err);
    if (rc != KILN_OK) {
        char msg[sizeof err->message];
        snprintf(msg, sizeof msg, "%s", err->message);
        return err_set(err, rc, "\"%s\": %s", shown, msg);
    }
    VipsBlob *blob =
        vips_blob_new((VipsCallbackFn)exec_free_blob, png, png_len);
    VipsSource *rendered = vips_source_new_from_blob(blob);
    vips_area_unref(VIPS_AREA(blob));
    if (rendered == NULL) {
        return err_set_vips(err, "reading the rendered image");
    }
    g_object_unref(*src);
    *src = rendered;
    return KILN_OK;
}

bool
exec_is_jpeg(VipsSource *src)
{
    const char *loader = vips_foreign_find_load_source(src);
    vips_error_clear();
    return loader != NULL && strcmp(loader, "VipsForeignLoadJpegSource") == 0;
}

/* How strictly a loader decodes. libvips 8.14 fails a JPEG whose file
 * stops early (fail_on truncated or more), but one whose data stops at a
 * marker before the image is complete is only a libjpeg warning: decoded
 * with fail_on error, its missing rows come out grey. Failing on every
 * warning also fails harmless ones (extraneous bytes before a marker),
 * so a strict JPEG decode that fails is asked about (source_check_jpeg)
 * and decoded leniently when the warning was harmless. The other formats
 * fail on errors, truncation included: their warnings are mostly
 * harmless (libpng's benign errors: a known incorrect sRGB profile). */
static VipsFailOn
exec_fail_on(VipsSource *src, bool lenient)
{
    return !lenient && exec_is_jpeg(src) ? VIPS_FAIL_ON_WARNING
                                         : VIPS_FAIL_ON_ERROR;
}

int
exec_open_source(const engine_storage *st, const char *path, int64_t max_bytes,
                 int64_t max_pixels, const exec_deadline *dl, bool strict,
                 VipsSource **src_out, VipsImage **out, kiln_error *err)
{
    VipsSource *src = NULL;
    int rc = st->backend->st.open_read(st->state, path, &src, err);
    if (rc != KILN_OK) {
        return exec_storage_error(st, err);
    }
    /* The length is checked before decoding. For a stream (a remote
     * backend), libvips 8.14 finds it by reading the stream into memory:
     * that also surfaces a backend's read error (its size limit, a cut
     * connection) here with its own message, rather than inside a
     * loader's sniffing, which silences errors. The backends bound the
     * bytes they deliver (max_size, max_file_size). */
    char shown[512];
    netguard_display_url(path, shown, sizeof shown);
    gint64 len = vips_source_length(src);
    if (len < 0) {
        g_object_unref(src);
        err_set_vips(err, NULL);
        char msg[sizeof err->message];
        snprintf(msg, sizeof msg, "%s", err->message);
        return err_set(err, KILN_EINVAL, "cannot read image \"%s\": %s", shown,
                       msg);
    }
    if (max_bytes > 0 && len > max_bytes) {
        g_object_unref(src);
        return err_set(err, KILN_ELIMIT,
                       "\"%s\" is %lld bytes, above the limit of %lld", shown,
                       (long long)len, (long long)max_bytes);
    }
    /* Only the formats kiln reads, sniffed from the content whatever the
     * name says (source_format.c). */
    const char *loader = vips_foreign_find_load_source(src);
    const char *vector = source_format_vector(src, loader, st->vector);
    if (vector != NULL) {
        rc = exec_render_vector(vector, shown, max_pixels, st->vector, dl, &src,
                                err);
        if (rc != KILN_OK) {
            g_object_unref(src);
            return rc;
        }
        loader = vips_foreign_find_load_source(src);
    }
    if (!source_format_allowed(loader)) {
        char what[128];
        source_format_describe(src, loader, what, sizeof what);
        vips_error_clear();
        g_object_unref(src);
        if (what[0] == '\0') {
            return err_set(err, KILN_EINVAL,
                           "\"%s\" is in no image format kiln knows "
                           "(sources are JPEG, PNG, WebP, GIF, TIFF, AVIF "
                           "or HEIC)",
                           shown);
        }
        /* The formats the MagickCore backend reads (backend-magick):
         * say where they are read. */
        static const char *const magick[] = {"PSD", "BMP", "PPM",
                                             "PCX", "DPX", "XWD"};
        bool by_magick = false;
        for (size_t i = 0; i < sizeof magick / sizeof magick[0]; i++) {
            by_magick = by_magick || strstr(what, magick[i]) != NULL;
        }
        return err_set(err, KILN_EINVAL,
                       "\"%s\" is %s, which kiln does not read (sources "
                       "are JPEG, PNG, WebP, GIF, TIFF, AVIF or HEIC%s)",
                       shown, what,
                       by_magick ? "; a service with \"backend\": \"magick\" "
                                   "reads it"
                                 : "");
    }
    /* Damage libvips would decode without a word (source_check.c). */
    bool is_gif = strcmp(loader, "VipsForeignLoadNsgifSource") == 0;
    bool is_jpeg = strcmp(loader, "VipsForeignLoadJpegSource") == 0;
    if (is_gif || (is_jpeg && !strict)) {
        kiln_error why;
        err_clear(&why);
        rc =
            is_gif ? source_check_gif(src, &why) : source_check_jpeg(src, &why);
        if (rc != KILN_OK) {
            g_object_unref(src);
            return err_set(err, rc, "cannot decode \"%s\": %s", shown,
                           why.message);
        }
    }
    /* A truncated or corrupt file fails the job instead of yielding a
     * partly grey image (exec_fail_on). */
    VipsImage *im = vips_image_new_from_source(
        src, "", "fail_on", exec_fail_on(src, !strict), NULL);
    if (im == NULL) {
        g_object_unref(src);
        err_set_vips(err, NULL);
        char msg[sizeof err->message];
        snprintf(msg, sizeof msg, "%s", err->message);
        /* The bytes were all read (above): the loader refused them. */
        return err_set(err, KILN_EINVAL,
                       "cannot read image \"%s\" (damaged or truncated?): %s",
                       shown, msg);
    }
    if (src_out != NULL) {
        *src_out = src;
    } else {
        g_object_unref(src);
    }
    *out = im;
    return KILN_OK;
}

int
exec_reopen(VipsSource *src, const graph_node *load, bool sequential,
            VipsImage **out, kiln_error *err)
{
    VipsAccess access =
        sequential ? VIPS_ACCESS_SEQUENTIAL : VIPS_ACCESS_RANDOM;
    VipsFailOn fail_on = exec_fail_on(src, load->load_lenient);
    VipsImage *im;
    if (load->load_shrink > 1) {
        im = vips_image_new_from_source(src, "", "fail_on", fail_on, "access",
                                        access, "shrink", load->load_shrink,
                                        NULL);
    } else if (load->load_scale > 0) {
        im =
            vips_image_new_from_source(src, "", "fail_on", fail_on, "access",
                                       access, "scale", load->load_scale, NULL);
    } else {
        im = vips_image_new_from_source(src, "", "fail_on", fail_on, "access",
                                        access, NULL);
    }
    if (im == NULL) {
        return err_set_vips(err, "reopening the source");
    }
    *out = im;
    return KILN_OK;
}

void
exec_oriented_shape(VipsImage *im, kiln_shape *out)
{
    bool swap = vips_image_get_orientation_swap(im);
    out->width = swap ? im->Ysize : im->Xsize;
    out->height = swap ? im->Xsize : im->Ysize;
    out->has_alpha = vips_image_hasalpha(im);
    out->bands = out->has_alpha ? 4 : 3;
}

/* Replaces *im with `next`, dropping the old reference. */
static void
exec_swap(VipsImage **im, VipsImage *next)
{
    g_object_unref(*im);
    *im = next;
}

/* True when an embedded profile names itself sRGB (in its ASCII "desc"
 * or UTF-16 "mluc" text). Such profiles map to sRGB as an identity, and
 * running lcms on every pixel for nothing was half the time of a job. */
static bool
exec_profile_is_srgb(VipsImage *im)
{
    const void *data = NULL;
    size_t len = 0;
    if (vips_image_get_blob(im, VIPS_META_ICC_NAME, &data, &len) != 0) {
        vips_error_clear();
        return false;
    }
    /* Only RGB profiles: bytes 16..19 hold the colour space. */
    if (len < 132 || memcmp((const char *)data + 16, "RGB ", 4) != 0) {
        return false;
    }
    static const char utf16[] = {0, 's', 0, 'R', 0, 'G', 0, 'B'};
    return memmem(data, len, "sRGB", 4) != NULL ||
           memmem(data, len, utf16, sizeof utf16) != NULL;
}

bool
exec_decode_is_plain(VipsImage *im)
{
    VipsInterpretation t = vips_image_guess_interpretation(im);
    if (im->BandFmt != VIPS_FORMAT_UCHAR || vips_image_hasalpha(im) ||
        (im->Bands != 1 && im->Bands != 3) ||
        (t != VIPS_INTERPRETATION_sRGB && t != VIPS_INTERPRETATION_B_W)) {
        return false;
    }
    return vips_image_get_typeof(im, VIPS_META_ICC_NAME) == 0 ||
           exec_profile_is_srgb(im);
}

int
exec_decode(VipsImage *in, VipsImage **out, kiln_error *err)
{
    VipsImage *im = NULL, *t = NULL;
    if (vips_autorot(in, &im, NULL) != 0) {
        return err_set_vips(err, "auto-orient");
    }
    bool has_alpha = vips_image_hasalpha(im);
    if (vips_image_get_typeof(im, VIPS_META_ICC_NAME) != 0 &&
        !exec_profile_is_srgb(im)) {
        /* An embedded profile is the truth about the pixels (CMYK, Adobe
         * RGB, ...): convert through it to sRGB, 8 bits. */
        if (vips_icc_transform(im, &t, "srgb", "embedded", TRUE, "depth", 8,
                               NULL) != 0) {
            g_object_unref(im);
            return err_set_vips(err, "colour conversion to sRGB");
        }
        exec_swap(&im, t);
    }
    if (im->Type != VIPS_INTERPRETATION_sRGB ||
        im->BandFmt != VIPS_FORMAT_UCHAR) {
        /* colourspace() knows 16-bit, grey, CMYK and Lab: it scales 16-bit
         * to 8-bit rather than clipping. */
        VipsInterpretation from = vips_image_guess_interpretation(im);
        if (vips_colourspace(im, &t, VIPS_INTERPRETATION_sRGB, "source_space",
                             from, NULL) != 0) {
            g_object_unref(im);
            return err_set_vips(err, "colour conversion to sRGB");
        }
        exec_swap(&im, t);
    }
    if (im->BandFmt != VIPS_FORMAT_UCHAR) {
        if (vips_cast_uchar(im, &t, NULL) != 0) {
            g_object_unref(im);
            return err_set_vips(err, "conversion to 8-bit");
        }
        exec_swap(&im, t);
    }
    int want = has_alpha ? 4 : 3;
    if (im->Bands > want) {
        if (vips_extract_band(im, &t, 0, "n", want, NULL) != 0) {
            g_object_unref(im);
            return err_set_vips(err, "band selection");
        }
        exec_swap(&im, t);
    }
    /* The pixels are sRGB now; drop the profile so no encoder re-embeds
     * a stale one. */
    if (vips_copy(im, &t, NULL) != 0) {
        g_object_unref(im);
        return err_set_vips(err, "copy");
    }
    exec_swap(&im, t);
    vips_image_remove(im, VIPS_META_ICC_NAME);
    *out = im;
    return KILN_OK;
}

int
exec_load_image(kiln_exec *ctx, const char *path, VipsImage **out,
                kiln_error *err)
{
    VipsImage *raw = NULL;
    int rc = exec_open_stored(ctx->st, path, 0, &raw, err);
    if (rc != KILN_OK) {
        return rc;
    }
    rc = exec_decode(raw, out, err);
    g_object_unref(raw);
    return rc;
}

/* ---------------------------------------------------------- writing */

/* A custom target in front of the storage's target: forwards everything
 * and counts the bytes of the finished object. */
typedef struct exec_sink {
    VipsTarget *inner;
    gint64 pos, size;
    bool storage_failed; /* the storage's target refused a write or end */
    int storage_errno;   /* errno just after it did (0: none set) */
} exec_sink;

static gint64
exec_sink_write(VipsTargetCustom *t, const void *data, gint64 len, void *u)
{
    (void)t;
    exec_sink *s = u;
    errno = 0;
    if (vips_target_write(s->inner, data, (size_t)len) != 0) {
        s->storage_failed = true;
        s->storage_errno = errno;
        return -1;
    }
    s->pos += len;
    if (s->pos > s->size) {
        s->size = s->pos;
    }
    return len;
}

static gint64
exec_sink_read(VipsTargetCustom *t, void *buf, gint64 len, void *u)
{
    (void)t;
    exec_sink *s = u;
    gint64 n = vips_target_read(s->inner, buf, (size_t)len);
    if (n > 0) {
        s->pos += n;
    }
    return n;
}

static gint64
exec_sink_seek(VipsTargetCustom *t, gint64 off, int whence, void *u)
{
    (void)t;
    exec_sink *s = u;
    gint64 r = vips_target_seek(s->inner, off, whence);
    if (r >= 0) {
        s->pos = r;
    }
    return r;
}

static int
exec_sink_end(VipsTargetCustom *t, void *u)
{
    (void)t;
    exec_sink *s = u;
    errno = 0;
    if (vips_target_end(s->inner) != 0) {
        s->storage_failed = true;
        s->storage_errno = errno;
        return -1;
    }
    return 0;
}

int
exec_store(const engine_storage *st, const graph_node *enc,
           const graph_node *store, exec_encode_fn encode, void *user,
           exec_pending *p, job_result *jr, kiln_error *err)
{
    const kiln_storage *b = &st->backend->st;
    if (b->open_write == NULL) {
        return err_set(err, KILN_EPERM,
                       "storage \"%s\" is read-only: cannot write \"%s\"",
                       b->name, store->destination);
    }
    VipsTarget *inner = NULL;
    int rc =
        b->open_write(st->state, store->destination, &inner, &p->handle, err);
    if (rc != KILN_OK) {
        exec_storage_error(st, err);
        return rc;
    }
    p->open = true;
    exec_sink sink = {inner, 0, 0, false, 0};
    VipsTargetCustom *t = vips_target_custom_new();
    g_signal_connect(t, "write", G_CALLBACK(exec_sink_write), &sink);
    g_signal_connect(t, "read", G_CALLBACK(exec_sink_read), &sink);
    g_signal_connect(t, "seek", G_CALLBACK(exec_sink_seek), &sink);
    g_signal_connect(t, "end", G_CALLBACK(exec_sink_end), &sink);
    kiln_error ee;
    err_clear(&ee);
    rc = encode(user, VIPS_TARGET(t), &ee);
    if (rc == KILN_OK && sink.storage_failed) {
        rc = KILN_EIO; /* an encoder that did not notice */
    }
    if (rc != KILN_OK) {
        /* Mostly a pixel of the chain failing as the encoder pulls it (a
         * source decoded in strips fails here when it is damaged). */
        if (sink.storage_failed && sink.storage_errno != 0) {
            /* A file system's refusal (a full disk) in its own words:
             * the encoder's layers only repeat it. */
            char why[128];
            err_errno_text(sink.storage_errno, why, sizeof why);
            err_set_path(err, KILN_EIO, enc->path,
                         "cannot write the result to \"%s\": %s",
                         store->destination, why);
            exec_storage_error(st, err);
        } else if (sink.storage_failed) {
            char detail[sizeof err->message];
            snprintf(detail, sizeof detail, "%s", ee.message);
            err_set_path(err, KILN_EIO, enc->path,
                         "cannot write the result to \"%s\": %s",
                         store->destination, detail);
            exec_storage_error(st, err);
        } else {
            *err = ee;
            if (err->code == KILN_OK) {
                err_set_path(err, rc, enc->path,
                             "cannot encode the result as %s",
                             graph_format_name(enc->format));
            }
        }
    }
    g_object_unref(t);
    g_object_unref(inner);
    if (rc != KILN_OK) {
        return err->code;
    }
    jr->bytes = sink.size;
    return KILN_OK;
}

/* "600x400, 4 bands, uchar, multiband": what an image is, for messages
 * about images that are not what they should be. */
static void
exec_describe(VipsImage *im, char *buf, size_t size)
{
    snprintf(buf, size, "%dx%d, %d band%s, %s, %s%s", im->Xsize, im->Ysize,
             im->Bands, im->Bands == 1 ? "" : "s",
             vips_enum_nick(VIPS_TYPE_BAND_FORMAT, im->BandFmt),
             vips_enum_nick(VIPS_TYPE_INTERPRETATION, im->Type),
             im->Coding != VIPS_CODING_NONE ? ", coded" : "");
}

/* What the op contract (plugin.h, kiln_op.execute) says an image of
 * `shape` is. */
static void
exec_expected(const kiln_shape *shape, char *buf, size_t size)
{
    snprintf(buf, size, "%dx%d, 8-bit sRGB, %d bands (%s)", shape->width,
             shape->height, shape->bands,
             shape->has_alpha ? "RGB and alpha" : "RGB");
}

/* Checks an op's output against the contract: the size its infer gave,
 * uncoded 8-bit sRGB with the bands and alpha infer gave. A mismatch is
 * the implementation's bug, reported at its path naming the plugin that
 * registered it (`owner`; NULL: the core), before a later
 * op or the encoder fails on it with libvips' words. */
int
exec_check_contract(const graph_node *node, const kiln_plugin *owner,
                    VipsImage *im, kiln_error *err)
{
    const kiln_shape *want = &node->shape;
    if (im->Xsize == want->width && im->Ysize == want->height &&
        im->Coding == VIPS_CODING_NONE && im->BandFmt == VIPS_FORMAT_UCHAR &&
        im->Type == VIPS_INTERPRETATION_sRGB && im->Bands == want->bands &&
        (bool)vips_image_hasalpha(im) == want->has_alpha) {
        return KILN_OK;
    }
    char got[160], exp[160];
    exec_describe(im, got, sizeof got);
    exec_expected(want, exp, sizeof exp);
    return err_set_path(err, KILN_EINTERNAL, node->path,
                        "%s broke the op contract: it returned an image of "
                        "%s where %s was expected (a bug in %s%s%s)",
                        node->op->op.name, got, exp,
                        owner != NULL ? "plugin \"" : "kiln's core",
                        owner != NULL ? owner->name : "",
                        owner != NULL ? "\"" : "");
}

/* An op's execute failed: keep its own message when it wrote one in our
 * words (a parameter it refused, a limit); put a libvips failure in ours,
 * naming the op and what it was given, the library's text as detail. */
int
exec_op_failed(const graph_node *node, VipsImage *in, kiln_error *err)
{
    if (err->code == KILN_EVIPS) {
        const char *name = node->op->op.name;
        const char *detail = err->message;
        size_t l = strlen(name);
        if (strncmp(detail, name, l) == 0 &&
            strncmp(detail + l, ": ", 2) == 0) {
            detail += l + 2; /* the op's own "name: " prefix */
        }
        char d[sizeof err->message], got[160];
        snprintf(d, sizeof d, "%s", detail);
        exec_describe(in, got, sizeof got);
        err_set(err, KILN_EVIPS,
                "%s failed on its input (%s); libvips said: %s", name, got, d);
        err->path[0] = '\0';
    }
    err_prefix_path(err, node->path);
    return err->code;
}

int
exec_finish(const engine_storage *st, const graph *g, exec_pending *pend,
            size_t n_failed, exec_result *res)
{
    /* fail_on_conversion_error: one failure and nothing is written. A
     * process cancelled by max_process_time writes nothing either way. */
    res->timed_out = exec_deadline_passed(&res->deadline);
    res->cancelled = res->deadline.cancelled != 0;
    res->stopped = res->deadline.stopped != 0;
    bool commit_ok =
        !res->timed_out && (n_failed == 0 || !g->req.fail_on_conversion_error);
    const kiln_storage *b = &st->backend->st;
    /* The job that failed on its own, named in the others' errors (found
     * before any of them is marked not written). */
    size_t first_failed = 0;
    while (first_failed < g->n_jobs && res->jobs[first_failed].ok) {
        first_failed++;
    }
    for (size_t j = 0; j < g->n_jobs; j++) {
        job_result *jr = &res->jobs[j];
        if (!pend[j].open) {
            continue;
        }
        if (commit_ok && jr->ok) {
            kiln_error err;
            err_clear(&err);
            if (b->commit(st->state, pend[j].handle, &err) != KILN_OK) {
                exec_storage_error(st, &err);
                res->storage_errors++;
                jr->ok = false;
                err_format(&err, jr->error, sizeof jr->error);
                n_failed++;
            }
        } else {
            b->abort(st->state, pend[j].handle);
            if (jr->ok) {
                jr->ok = false;
                kiln_error why;
                exec_deadline_error(&res->deadline, &why);
                if (res->timed_out) {
                    snprintf(jr->error, sizeof jr->error, "not written: %s",
                             why.message);
                } else {
                    snprintf(jr->error, sizeof jr->error,
                             "not written: jobs[%zu] failed and "
                             "fail_on_conversion_error is true",
                             first_failed);
                }
            }
        }
    }
    res->ok = n_failed == 0;
    if (res->timed_out) {
        res->ok = false;
        kiln_error err;
        exec_deadline_error(&res->deadline, &err);
        snprintf(res->error, sizeof res->error, "%s", err.message);
    } else if (!res->ok) {
        snprintf(res->error, sizeof res->error, "%zu of %zu jobs failed",
                 n_failed, g->n_jobs);
    }
    return res->ok ? KILN_OK : KILN_EINVAL;
}
