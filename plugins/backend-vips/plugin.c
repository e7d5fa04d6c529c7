/*
 * backend-vips: the "vips" pixel backend, libvips, the default of every
 * service. A built-in plugin: compiled into kiln and loaded before the
 * enabled ones (core/loader.c), it registers like any backend, through
 * the host API, a kiln_backend (probe, decode, encode and the rest, for
 * whatever runs a backend through the SDK: a watermark's decode, a
 * service the operator runs on the SDK path) and, through the engine,
 * its executor of whole graphs (run.c), which the engine calls for every
 * "vips" service. docs/backends.md says why it is built in.
 */
#include "vips.h"

#include <stdio.h>
#include <string.h>

static const char *const bv_read_formats[] = {"jpeg", "png",  "webp", "gif",
                                              "tiff", "heif", NULL};
static const char *const bv_write_formats[] = {"jpeg", "png",  "webp", "gif",
                                               "tiff", "avif", "heic", NULL};

/* The header of `src`: a format kiln reads (core/source_format.c), told
 * from the content, and its upright size. */
static int
bv_probe(VipsSource *src, kiln_image_info *info, kiln_error *err)
{
    const char *loader = vips_foreign_find_load_source(src);
    if (!source_format_allowed(loader)) {
        char what[128];
        source_format_describe(src, loader, what, sizeof what);
        vips_error_clear();
        return err_set(err, KILN_EINVAL,
                       "%s%s, which the vips backend does not read (JPEG, "
                       "PNG, WebP, GIF, TIFF, AVIF or HEIC)",
                       what[0] ? "it is "
                               : "it is in no image format kiln "
                                 "knows",
                       what);
    }
    VipsImage *im = vips_image_new_from_source(src, "", NULL);
    if (im == NULL) {
        return err_set_vips(err, "cannot read the header");
    }
    kiln_shape shape;
    exec_oriented_shape(im, &shape);
    const char *nick = NULL, *format = NULL;
    if (vips_image_get_typeof(im, VIPS_META_LOADER) != 0 &&
        vips_image_get_string(im, VIPS_META_LOADER, &nick) == 0) {
        format = graph_format_of_loader(nick);
    }
    g_object_unref(im);
    info->width = shape.width;
    info->height = shape.height;
    info->has_alpha = shape.has_alpha;
    snprintf(info->format, sizeof info->format, "%s",
             format != NULL ? format : "");
    return KILN_OK;
}

/* Decoded as every source is (exec_decode): upright, sRGB, 8 bits. A
 * JPEG's or GIF's missing data fails it (core/source_check.c). */
static int
bv_decode(kiln_exec *ctx, VipsSource *src, const kiln_decode_opts *opts,
          void **image, kiln_error *err)
{
    (void)ctx;
    const char *loader = vips_foreign_find_load_source(src);
    vips_error_clear();
    if (loader != NULL && strcmp(loader, "VipsForeignLoadNsgifSource") == 0) {
        int rc = source_check_gif(src, err);
        if (rc != KILN_OK) {
            return rc;
        }
    } else if (loader != NULL &&
               strcmp(loader, "VipsForeignLoadJpegSource") == 0) {
        int rc = source_check_jpeg(src, err);
        if (rc != KILN_OK) {
            return rc;
        }
    }
    VipsImage *raw = vips_image_new_from_source(src, "", "fail_on",
                                                VIPS_FAIL_ON_ERROR, NULL);
    if (raw == NULL) {
        return err_set_vips(err, "cannot read the image");
    }
    if (opts->max_pixels > 0 &&
        (int64_t)raw->Xsize * raw->Ysize > opts->max_pixels) {
        int w = raw->Xsize, h = raw->Ysize;
        g_object_unref(raw);
        return err_set(err, KILN_ELIMIT,
                       "it is %dx%d, above the limit of %lld pixels", w, h,
                       (long long)opts->max_pixels);
    }
    VipsImage *out = NULL;
    int rc = exec_decode(raw, &out, err);
    g_object_unref(raw);
    if (rc == KILN_OK) {
        *image = out;
    }
    return rc;
}

static int
bv_encode(kiln_exec *ctx, void *image, const kiln_encode_opts *opts,
          VipsTarget *target, kiln_error *err)
{
    (void)ctx;
    graph_format f = FORMAT_JPEG;
    bool known = false;
    for (int i = FORMAT_JPEG; i <= FORMAT_HEIC && !known; i++) {
        if (strcmp(graph_format_name((graph_format)i), opts->format) == 0) {
            f = (graph_format)i;
            known = true;
        }
    }
    if (!known) {
        return err_set(err, KILN_EINVAL,
                       "the vips backend does not write \"%s\"", opts->format);
    }
    double bg[3] = {opts->background[0], opts->background[1],
                    opts->background[2]};
    VipsImage *ready = NULL;
    int rc = encode_prepare(image, f, bg, &ready, err);
    if (rc != KILN_OK) {
        return rc;
    }
    if (encode_save(ready, f, opts->quality, target) != 0) {
        rc = err_set_vips(err, "cannot encode the result");
    }
    g_object_unref(ready);
    return rc;
}

static void
bv_shape(void *image, kiln_shape *out)
{
    VipsImage *im = image;
    out->width = im->Xsize;
    out->height = im->Ysize;
    out->bands = im->Bands;
    out->has_alpha = vips_image_hasalpha(im);
}

/* The backend's images are libvips' own: the conversions are a new
 * reference. */
static int
bv_to_vips(void *image, VipsImage **out, kiln_error *err)
{
    (void)err;
    g_object_ref(image);
    *out = image;
    return KILN_OK;
}

static int
bv_from_vips(VipsImage *in, void **image, kiln_error *err)
{
    (void)err;
    g_object_ref(in);
    *image = in;
    return KILN_OK;
}

static void *
bv_ref(void *image)
{
    g_object_ref(image);
    return image;
}

static void
bv_unref(void *image)
{
    g_object_unref(image);
}

static const kiln_backend bv_backend = {
    .size = sizeof(kiln_backend),
    .name = "vips",
    .summary = "libvips 8, decoded in strips as the ops pull them; the "
               "optimizer's every pass",
    .read_formats = bv_read_formats,
    .write_formats = bv_write_formats,
    .probe = bv_probe,
    .decode = bv_decode,
    .encode = bv_encode,
    .shape = bv_shape,
    .to_vips = bv_to_vips,
    .from_vips = bv_from_vips,
    .ref = bv_ref,
    .unref = bv_unref,
};

static int
bv_init(kiln_plugin *self, const kiln_host_api *api, kiln_error *err)
{
    int rc = api->register_backend(self, &bv_backend, err);
    if (rc == KILN_OK) {
        rc = engine_set_runner(self->engine, bv_backend.name, run_graph, err);
    }
    return rc;
}

const kiln_plugin_descriptor kiln_builtin_backend_vips = {
    .abi_major = KILN_ABI_MAJOR,
    .abi_minor = KILN_ABI_MINOR,
    .size = sizeof(kiln_plugin_descriptor),
    .host_api_size = sizeof(kiln_host_api),
    .vips_major = VIPS_MAJOR_VERSION,
    .vips_minor = VIPS_MINOR_VERSION,
    .name = "backend-vips",
    .version = KILN_VERSION_STRING,
    .summary = "libvips pixel backend \"vips\" (built in): the default",
    .init = bv_init,
    .fini = NULL,
};
