/*
 * vignette: an example third-party op plugin for kiln (SDK ABI 2).
 *
 * Darkens an image towards its corners by mixing each pixel with a colour.
 * The mix grows with the square of the distance from the centre, reaching
 * `strength` in the corners. Built with pkg-config alone (see Makefile);
 * docs/plugins.md walks through this file.
 */
#include <kiln/plugin.h>

/* The parameters, as the host fills them after parsing a transformation.
 * Each field is described by one entry of vignette_specs below. */
typedef struct vignette_params {
    double strength;  /* 0..1: how far the corners move to `color` */
    kiln_color color; /* the colour the corners fade to */
} vignette_params;

/* Intermediate images of one execute() call; all released on every exit. */
enum {
    VIGNETTE_XY,     /* pixel coordinates, 2 bands */
    VIGNETTE_UV,     /* coordinates mapped to -1..1 about the centre */
    VIGNETTE_UV2,    /* their squares */
    VIGNETTE_R2,     /* mean of the squares: 0 at the centre, 1 in corners */
    VIGNETTE_MASK,   /* share of `color` per pixel */
    VIGNETTE_KEEP,   /* share of the image per pixel (1 - mask) */
    VIGNETTE_RGB,    /* the colour bands of the input */
    VIGNETTE_ALPHA,  /* the alpha band of the input, if any */
    VIGNETTE_KEPT,   /* rgb * keep */
    VIGNETTE_TINT,   /* color * mask, 3 bands */
    VIGNETTE_SUM,    /* kept + tint, float */
    VIGNETTE_UCHAR,  /* back to 8 bits */
    VIGNETTE_JOINED, /* with alpha put back */
    VIGNETTE_N
};

static int vignette_init(kiln_plugin *self, const kiln_host_api *api,
                         kiln_error *err);
static int vignette_infer(const void *params, const kiln_shape *in,
                          kiln_shape *out, kiln_error *err);
static int vignette_execute(kiln_exec *ctx, const void *params,
                            VipsImage *const *in, VipsImage **out,
                            kiln_error *err);

/* The host's function table, kept by init(). It is written once, before
 * any job runs, and only read afterwards. */
static const kiln_host_api *vignette_api;

/* The host parses and range-checks these; the plugin never sees JSON.
 * KILN_P_* checks at compile time that each field has the C type its kind
 * needs (a `float strength` would not compile). `.flags = 0` fills the
 * macros' optional part, which ISO C does not allow to be empty. */
static const kiln_param_spec vignette_specs[] = {
    KILN_P_NUMBER(vignette_params, strength, 0.0, 1.0, 0.5,
                  "how far the corners move towards color: 0 leaves the "
                  "image as it is, 1 reaches color in the corners",
                  .flags = 0),
    KILN_P_COLOR(vignette_params, color, "#000000",
                 "the colour the corners fade to; its alpha scales the "
                 "effect",
                 .flags = 0),
};

/* The op's definition: what the compiler needs, whatever runs it. */
static const kiln_op vignette_op = {
    .size = sizeof(kiln_op),
    .name = "vignette",
    .summary = "darken the corners of the image towards a colour",
    .doc = "Mixes each pixel with `color`. The share of `color` is "
           "strength * r^2, where r is the distance from the centre "
           "measured so that the corners are at 1. Alpha is kept as it is. "
           "The output has the input's size and bands.",
    .n_inputs = 1,
    .flags = KILN_OP_PURE | KILN_OP_SEQUENTIAL,
    .params_size = sizeof(vignette_params),
    .params = vignette_specs,
    .n_params = KILN_N_ELEMENTS(vignette_specs),
    .infer = vignette_infer,
};

/* Its implementation for the libvips backend. */
static const kiln_op_impl vignette_vips = {
    .size = sizeof(kiln_op_impl),
    .op = "vignette",
    .backend = "vips",
    .execute = vignette_execute,
};

KILN_PLUGIN_DEFINE("vignette", "1.0.0", "example op plugin: darkened corners",
                   vignette_init, NULL);

/* Registers the op, then its implementation. On failure the host undoes
 * this plugin's registrations and unloads it; there is nothing of ours to
 * free. */
static int
vignette_init(kiln_plugin *self, const kiln_host_api *api, kiln_error *err)
{
    vignette_api = api;
    int rc = api->register_op(self, &vignette_op, err);
    return rc == KILN_OK ? api->register_op_impl(self, &vignette_vips, err)
                         : rc;
}

/* The output has exactly the input's shape. Pure: no pixels, no I/O. */
static int
vignette_infer(const void *params, const kiln_shape *in, kiln_shape *out,
               kiln_error *err)
{
    (void)params;
    (void)err;
    *out = in[0];
    return KILN_OK;
}

/* Builds the vignette as a libvips pipeline over in[0] (8-bit sRGB, 3 or 4
 * bands) and stores one new reference in *out. Every intermediate is
 * released before returning, on success and on failure. */
static int
vignette_execute(kiln_exec *ctx, const void *params, VipsImage *const *in,
                 VipsImage **out, kiln_error *err)
{
    const vignette_params *p = params;
    VipsImage *src = in[0];
    VipsImage *t[VIGNETTE_N] = {NULL};
    VipsImage *result;
    int width = src->Xsize;
    int height = src->Ysize;
    bool has_alpha = src->Bands == 4;
    double amount = p->strength * p->color.a / 255.0;
    double uv_a[2], uv_b[2], tint_a[3], tint_b[3];
    int status = KILN_OK;
    int i;

    (void)ctx;

    /* Map pixel centres to -1..1: u = (x + 0.5) * 2 / width - 1. */
    uv_a[0] = 2.0 / width;
    uv_b[0] = 1.0 / width - 1.0;
    uv_a[1] = 2.0 / height;
    uv_b[1] = 1.0 / height - 1.0;

    /* The tint adds 0.5 so that the final cast to 8 bits rounds. */
    tint_a[0] = p->color.r;
    tint_a[1] = p->color.g;
    tint_a[2] = p->color.b;
    tint_b[0] = tint_b[1] = tint_b[2] = 0.5;

    if (vips_xyz(&t[VIGNETTE_XY], width, height, NULL) ||
        vips_linear(t[VIGNETTE_XY], &t[VIGNETTE_UV], uv_a, uv_b, 2, NULL) ||
        vips_multiply(t[VIGNETTE_UV], t[VIGNETTE_UV], &t[VIGNETTE_UV2], NULL) ||
        vips_bandmean(t[VIGNETTE_UV2], &t[VIGNETTE_R2], NULL) ||
        vips_linear1(t[VIGNETTE_R2], &t[VIGNETTE_MASK], amount, 0.0, NULL) ||
        vips_linear1(t[VIGNETTE_MASK], &t[VIGNETTE_KEEP], -1.0, 1.0, NULL) ||
        vips_extract_band(src, &t[VIGNETTE_RGB], 0, "n", 3, NULL) ||
        vips_multiply(t[VIGNETTE_RGB], t[VIGNETTE_KEEP], &t[VIGNETTE_KEPT],
                      NULL) ||
        vips_linear(t[VIGNETTE_MASK], &t[VIGNETTE_TINT], tint_a, tint_b, 3,
                    NULL) ||
        vips_add(t[VIGNETTE_KEPT], t[VIGNETTE_TINT], &t[VIGNETTE_SUM], NULL) ||
        vips_cast_uchar(t[VIGNETTE_SUM], &t[VIGNETTE_UCHAR], NULL)) {
        status = vignette_api->error_set_vips(err, "vignette");
        goto done;
    }

    result = t[VIGNETTE_UCHAR];
    if (has_alpha) {
        if (vips_extract_band(src, &t[VIGNETTE_ALPHA], 3, NULL) ||
            vips_bandjoin2(t[VIGNETTE_UCHAR], t[VIGNETTE_ALPHA],
                           &t[VIGNETTE_JOINED], NULL)) {
            status = vignette_api->error_set_vips(err, "vignette");
            goto done;
        }
        result = t[VIGNETTE_JOINED];
    }

    /* The arithmetic leaves a generic interpretation behind; say sRGB
     * again so that the next op and the encoder see what they expect.
     * vips_copy() makes the one new reference the caller owns. */
    if (vips_copy(result, out, "interpretation", VIPS_INTERPRETATION_sRGB,
                  NULL)) {
        status = vignette_api->error_set_vips(err, "vignette");
        goto done;
    }

done:
    for (i = 0; i < VIGNETTE_N; i++) {
        if (t[i] != NULL) {
            g_object_unref(t[i]);
        }
    }
    return status;
}
