/*
 * kiln plugin SDK, ABI 2: the only header a plugin includes.
 *
 * A plugin is a shared object that exports exactly one data symbol,
 * kiln_plugin_descriptor_v2 (use KILN_PLUGIN_DEFINE). The host reads the
 * descriptor before running any plugin code, checks its numbers, then calls
 * init() with an append-only table of host functions. Through that table the
 * plugin registers ops, storage backends and services. Plugins link against
 * nothing of the core; they may link libvips (and glib) themselves.
 *
 * Ownership: arguments are borrowed unless a name says _take. Every
 * VipsImage ** an op's execute() fills is one new reference (libvips rule).
 */
#ifndef KILN_PLUGIN_H
#define KILN_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <vips/vips.h>

#include "kiln/version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ABI version. A plugin built against major M, minor m loads into a host
 * with the same major and a minor >= m. */
#define KILN_ABI_MAJOR 2
#define KILN_ABI_MINOR 2

#if defined(__GNUC__)
#define KILN_EXPORT __attribute__((visibility("default")))
#define KILN_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define KILN_EXPORT
#define KILN_PRINTF(f, a)
#endif

/* ---------------------------------------------------------------- errors */

/* Status codes. Every fallible function returns one; KILN_OK is 0. */
typedef enum kiln_status {
    KILN_OK = 0,
    KILN_EINVAL,    /* bad input: a request, a parameter, a config value */
    KILN_ENOMEM,    /* allocation failed */
    KILN_EIO,       /* storage or file error */
    KILN_ENOTFOUND, /* a name, a path, an object that does not exist */
    KILN_ELIMIT,    /* a configured limit was exceeded */
    KILN_EABI,      /* a plugin does not fit this host */
    KILN_EVIPS,     /* libvips reported an error */
    KILN_EPERM,     /* refused by policy (path escape, permissions) */
    KILN_EEXIST,    /* a name registered twice */
    KILN_EINTERNAL  /* a bug: please report it */
} kiln_status;

/* A caller-owned error. The function that detects a failure writes the
 * message; callers may add a path prefix but never overwrite a message.
 * `path` is the JSON path of the bad value (an op callback writes only the
 * parameter name, the host prefixes the node's path); `offset`/`length`
 * mark the bad part inside the value's text (-1 when not known). */
typedef struct kiln_error {
    int code;
    int offset;
    int length;
    char path[256];
    char message[768];
} kiln_error;

/* ------------------------------------------------------------- geometry */

/* The shape of an image as the compiler sees it, before any pixel exists. */
typedef struct kiln_shape {
    int width;
    int height;
    int bands; /* including alpha */
    bool has_alpha;
} kiln_shape;

/* A rectangle of pixels: top-left corner and size. */
typedef struct kiln_rect {
    int x;
    int y;
    int width;
    int height;
} kiln_rect;

/* Gravity, ImageMagick's convention (ops.md section 3). The zero value is
 * the default of ops whose gravity is optional. "middle" parses as center. */
typedef enum kiln_gravity {
    KILN_GRAVITY_NORTHWEST = 0,
    KILN_GRAVITY_NORTH,
    KILN_GRAVITY_NORTHEAST,
    KILN_GRAVITY_WEST,
    KILN_GRAVITY_CENTER,
    KILN_GRAVITY_EAST,
    KILN_GRAVITY_SOUTHWEST,
    KILN_GRAVITY_SOUTH,
    KILN_GRAVITY_SOUTHEAST
} kiln_gravity;

/* Units a length may carry; a param spec allows a mask of them. */
typedef enum kiln_unit {
    KILN_UNIT_PX = 1 << 0,      /* plain number or "px" */
    KILN_UNIT_PERCENT = 1 << 1, /* "%" of the axis of the input */
    KILN_UNIT_W = 1 << 2,       /* "w": percent of the input width */
    KILN_UNIT_H = 1 << 3        /* "h": percent of the input height */
} kiln_unit;

#define KILN_UNITS_SIZE                                                        \
    (KILN_UNIT_PX | KILN_UNIT_PERCENT | KILN_UNIT_W | KILN_UNIT_H)
#define KILN_UNITS_OFFSET (KILN_UNIT_PX | KILN_UNIT_PERCENT)

/* Which dimension of the input a length is measured against, and which
 * checks apply: sizes must resolve to 1..65535 px, offsets may be any
 * integer. */
typedef enum kiln_axis {
    KILN_AXIS_WIDTH = 0,
    KILN_AXIS_HEIGHT,
    KILN_AXIS_X,
    KILN_AXIS_Y
} kiln_axis;

/* A length as written, plus its value in pixels once the host has bound
 * it against the input shape. Ops read `px`; `is_set` says whether the
 * request gave the parameter at all. */
typedef struct kiln_length {
    bool is_set;
    kiln_unit unit;
    double value;     /* the number as written, in `unit` */
    int px;           /* resolved by the host at bind time */
    const char *text; /* the text as written, for messages and dumps */
} kiln_length;

/* An sRGB colour with alpha, 0..255 per component. */
typedef struct kiln_color {
    bool is_set;
    uint8_t r, g, b, a;
} kiln_color;

/* ------------------------------------------------------------ param specs */

typedef enum kiln_param_kind {
    KILN_PARAM_BOOL = 1, /* field: bool */
    KILN_PARAM_NUMBER,   /* field: double; range, decimals */
    KILN_PARAM_LENGTH,   /* field: kiln_length; units, axis */
    KILN_PARAM_COLOR,    /* field: kiln_color */
    KILN_PARAM_ENUM,     /* field: int, index into `values` */
    KILN_PARAM_STRING,   /* field: const char * (owned by the host) */
    KILN_PARAM_GRAVITY   /* field: kiln_gravity */
} kiln_param_kind;

/* Param spec flags. */
#define KILN_PARAM_REQUIRED (1u << 0) /* must be given */
#define KILN_PARAM_ONE_OF (1u << 1)   /* at least one flagged param needed */
#define KILN_PARAM_INTEGER (1u << 2)  /* number: no fraction allowed */
#define KILN_PARAM_SECRET (1u << 3)   /* string: never printed or logged */
#define KILN_PARAM_MIN_EXCLUSIVE (1u << 4) /* number: must be above min */

/* One parameter of an op (or one setting of a storage backend). The host
 * parses and range-checks the JSON value, then stores it at `offset` in the
 * params struct. Build entries with the KILN_P_* macros below: they check
 * at compile time that the field's C type matches the kind, and set
 * `size`, by which the host steps through the table (every entry of one
 * table has the same size). */
typedef struct kiln_param_spec {
    size_t size; /* sizeof(kiln_param_spec) as built: the KILN_P_* macros */
    const char *name;
    kiln_param_kind kind;
    size_t offset;
    unsigned flags;
    const char *doc;
    const char *alias; /* a second accepted spelling, or NULL */
    /* number */
    double min, max;  /* inclusive range */
    int max_decimals; /* 0: any number of decimals */
    double def_number;
    /* bool */
    bool def_bool;
    /* length */
    unsigned units; /* mask of kiln_unit */
    kiln_axis axis;
    /* A length's default as a request would write it ("100%", "0",
     * "50w"), or NULL: none (the field stays unset). Not with
     * KILN_PARAM_REQUIRED or KILN_PARAM_ONE_OF. */
    const char *def_length;
    /* enum: NULL-terminated list; the field holds the index */
    const char *const *values;
    int def_enum;
    /* string: length bounds in bytes (0 max: no bound); colour default */
    size_t min_len, max_len;
    const char *def_string;
    /* gravity */
    kiln_gravity def_gravity;
} kiln_param_spec;

/* Compile-time check that field F of struct T has type TY: a mismatch is
 * a constraint violation inside _Generic (no association matches). */
#define KILN__FIELD(T, F, TY)                                                  \
    (offsetof(T, F) + 0 * sizeof(char[_Generic(((T *)0)->F, TY : 1)]))

/* Spec constructors. Extra designated initializers may follow, e.g.
 * KILN_P_NUMBER(rotate_params, degrees, 0, 360, 0, "...",
 *               .flags = KILN_PARAM_REQUIRED, .max_decimals = 2). */
#define KILN_P_BOOL(T, F, DEF, DOC, ...)                                       \
    {                                                                          \
        .size = sizeof(kiln_param_spec), .name = #F, .kind = KILN_PARAM_BOOL,  \
        .offset = KILN__FIELD(T, F, bool), .def_bool = (DEF), .doc = (DOC),    \
        __VA_ARGS__                                                            \
    }
#define KILN_P_NUMBER(T, F, MIN, MAX, DEF, DOC, ...)                           \
    {                                                                          \
        .size = sizeof(kiln_param_spec), .name = #F,                           \
        .kind = KILN_PARAM_NUMBER, .offset = KILN__FIELD(T, F, double),        \
        .min = (MIN), .max = (MAX), .def_number = (DEF), .doc = (DOC),         \
        __VA_ARGS__                                                            \
    }
#define KILN_P_LENGTH(T, F, AXIS, UNITS, DOC, ...)                             \
    {                                                                          \
        .size = sizeof(kiln_param_spec), .name = #F,                           \
        .kind = KILN_PARAM_LENGTH, .offset = KILN__FIELD(T, F, kiln_length),   \
        .axis = (AXIS), .units = (UNITS), .doc = (DOC), __VA_ARGS__            \
    }
#define KILN_P_COLOR(T, F, DEF, DOC, ...)                                      \
    {                                                                          \
        .size = sizeof(kiln_param_spec), .name = #F, .kind = KILN_PARAM_COLOR, \
        .offset = KILN__FIELD(T, F, kiln_color), .def_string = (DEF),          \
        .doc = (DOC), __VA_ARGS__                                              \
    }
#define KILN_P_ENUM(T, F, VALUES, DEF, DOC, ...)                               \
    {                                                                          \
        .size = sizeof(kiln_param_spec), .name = #F, .kind = KILN_PARAM_ENUM,  \
        .offset = KILN__FIELD(T, F, int), .values = (VALUES),                  \
        .def_enum = (DEF), .doc = (DOC), __VA_ARGS__                           \
    }
#define KILN_P_STRING(T, F, DEF, DOC, ...)                                     \
    {                                                                          \
        .size = sizeof(kiln_param_spec), .name = #F,                           \
        .kind = KILN_PARAM_STRING, .offset = KILN__FIELD(T, F, const char *),  \
        .def_string = (DEF), .doc = (DOC), __VA_ARGS__                         \
    }
#define KILN_P_GRAVITY(T, F, DEF, DOC, ...)                                    \
    {                                                                          \
        .size = sizeof(kiln_param_spec), .name = #F,                           \
        .kind = KILN_PARAM_GRAVITY, .offset = KILN__FIELD(T, F, kiln_gravity), \
        .def_gravity = (DEF), .doc = (DOC), __VA_ARGS__                        \
    }

#define KILN_N_ELEMENTS(a) (sizeof(a) / sizeof((a)[0]))

/* --------------------------------------------------------------- ops */

typedef struct kiln_plugin kiln_plugin; /* the host's handle of a plugin */
typedef struct kiln_exec kiln_exec;     /* one job being executed */

#define KILN_OP_PURE (1u << 0) /* output depends only on params+input */
/* execute() reads its input at most once, top to bottom, a bounded number
 * of rows around the rows it produces (point ops, resamplers, crops,
 * convolutions, composites; or an op that copies its input into memory
 * first). When every op a source flows through says so, the host decodes
 * the source in strips as the pipeline pulls them instead of whole into
 * memory first. A wrong flag cannot break a job: a read that leaves the
 * loader's cache makes the host decode the source a second time, whole,
 * and serve the rest from that (docs/optimizer.md, "Sequential
 * decoding"). It only costs that second decode. */
#define KILN_OP_SEQUENTIAL (1u << 1)
#define KILN_OP_NEEDS_STORAGE (1u << 2) /* reads extra files (watermark) */
/* execute_reduced() honours a window in its kiln_reduction
 * (has_window, window): it then produces only that rectangle of the
 * output it would produce for r->bound, the same pixels. The host sets a
 * window only for ops with this flag (an older op does not know the
 * members exist). */
#define KILN_OP_WINDOWED (1u << 3)

/* Results of kiln_op.compose(). */
#define KILN_COMPOSE_NONE 0
#define KILN_COMPOSE_IDENTITY 1
#define KILN_COMPOSE_MERGED 2

/* How an op's input was reduced before it ran (kiln_op.execute_reduced):
 * pixel x of the input corresponds to x / xscale of the bound input, in
 * pixel-edge coordinates (0.5: a JPEG decoded at half size). Since the
 * optimizer pass fuse-resamples, the input may also be larger than the
 * bound one (an image an earlier resample reduced, read instead of that
 * resample's output): scales above 1. The input always covers the whole
 * bound image, bound.width x xscale by bound.height x yscale pixels.
 *
 * 1.3, only for ops flagged KILN_OP_WINDOWED: with has_window, the op
 * produces only `window` (inside the output it would produce for bound)
 * of that output, pixel for pixel, window.width x window.height (the
 * optimizer pass crop-first: a crop that followed the op). */
typedef struct kiln_reduction {
    kiln_shape bound;      /* the input shape the op was bound against */
    double xscale, yscale; /* input pixels per bound pixel, > 0 */
    bool has_window;
    kiln_rect window; /* in the output's pixel coordinates */
} kiln_reduction;

/* An op's definition (ABI 2), the same whatever runs it: its name,
 * parameters, shape rule and the optimizer's hooks, registered once with
 * register_op(). The compiler needs nothing else. Its pixels come from
 * implementations (kiln_op_impl), one per pixel backend, registered by
 * this plugin or by another loaded after it. `size` is sizeof(kiln_op) as
 * the plugin was built (sizeof(kiln_op)); members are only ever appended,
 * and the host reads no member past `size`. */
typedef struct kiln_op {
    size_t size;
    const char *name;    /* the "type" in a job's transformations */
    const char *summary; /* one line for `kiln ops` */
    const char *doc;     /* longer text for `kiln ops NAME`, or NULL */
    unsigned n_inputs;   /* image inputs; 1 for every shipped op */
    unsigned flags;      /* KILN_OP_* */
    size_t params_size;  /* sizeof the op's params struct */
    const kiln_param_spec *params;
    size_t n_params;
    /* Pure: the output shape for bound params (every kiln_length has its
     * px filled) and input shapes. Reports errors with err->path set to
     * the parameter name (or empty); the host prefixes the node's path. */
    int (*infer)(const void *params, const kiln_shape *in, kiln_shape *out,
                 kiln_error *err);

    /* For the optimizer (docs/optimizer.md). Each is optional: NULL means
     * the optimizer leaves the op alone. All are pure and see only params
     * the host parsed; lengths are bound whenever `in` is not NULL. */

    /* True when, for these params and this input, the output equals the
     * input pixel for pixel and shape for shape (rotate 0, brightness 0, a
     * crop of the whole input): the optimizer drops the op. `in` is NULL
     * when the input's shape is not known (kiln compile without a source
     * size; lengths are unbound then): answer from the params that need no
     * size, false when they do not decide it. */
    bool (*is_noop)(const void *params, const kiln_shape *in);

    /* Two consecutive runs of this op, `first` then `second`, as one.
     * Returns KILN_COMPOSE_IDENTITY when together they change nothing on
     * any input (two flips of one axis), KILN_COMPOSE_MERGED after filling
     * `merged` (a zeroed params struct of params_size bytes) with params
     * whose one run equals both runs pixel for pixel on any input, and
     * KILN_COMPOSE_NONE otherwise. Only params without lengths may be
     * merged: the host does not bind `merged` again. */
    int (*compose)(const void *first, const void *second, void *merged);

    /* Shrink-on-load. An op that reduces its whole input with one
     * resample gives the factors of that resample for these bound params
     * and input: *sx = resampled width / in->width, *sy likewise (0.25: a
     * quarter). Returns false when it cannot run on a reduced input. The
     * host may then decode the source at a reduced scale, never below
     * sx x width by sy x height, and calls the implementation's
     * execute_reduced() instead of execute() with that smaller image: it
     * plans from r->bound (the shape the op was bound against) and
     * resamples from in[0], whose pixel grid is the bound one scaled by
     * r->xscale, r->yscale. Its output must have the size infer() gave
     * for r->bound. Every implementation of an op with sample_scale must
     * have execute_reduced. */
    bool (*sample_scale)(const void *params, const kiln_shape *in, double *sx,
                         double *sy);

    /* True, with `table` filled, when the op is exactly a lookup table on
     * the colour bands (R, G, B: table[band][value]) of an 8-bit image,
     * alpha and shape untouched, for these params. Runs of such ops are
     * fused into one lookup (composing 8-bit tables is exact). */
    bool (*lut)(const void *params, uint8_t table[3][256]);

    /* True, with *r filled, when for these bound params and this
     * input the output is exactly the rectangle *r of the input, pixels
     * untouched (a crop). The optimizer may then have the op before it
     * (a KILN_OP_WINDOWED resample) produce only that rectangle. */
    bool (*region)(const void *params, const kiln_shape *in, kiln_rect *r);

    /* True, with *w and *h set, when for these bound params and this
     * input the op's whole output, as execute_reduced() makes it from a
     * reduced input without alpha, is that input reduced to w x h by
     * kiln's Lanczos3 reduction (docs/optimizer.md, "fuse-jpeg"): each
     * axis by (w or h) / (the bound size x its scale), then cut or its
     * last row and column repeated to exactly w x h, and nothing else (no
     * crop, pad or alpha band). The host may then compute that itself,
     * with decoding and encoding, without calling the op. The reduction
     * is kernels/kern.h's; ops-vips' resize and fitmethod use the same. */
    bool (*resample_to)(const void *params, const kiln_shape *in, int *w,
                        int *h);
} kiln_op;

/* An op's implementation for one pixel backend (ABI 2), registered with
 * register_op_impl() after the op's definition. `size` as for kiln_op
 * (sizeof(kiln_op_impl)). */
typedef struct kiln_op_impl {
    size_t size;
    const char *op;      /* the name of the op it implements */
    const char *backend; /* the pixel backend: "vips" */
    /* Backend "vips": builds libvips calls for in[0..n_inputs-1] into *out
     * (one new reference).
     *
     * The op contract. Every input is uncoded 8-bit (VIPS_FORMAT_UCHAR)
     * sRGB (interpretation VIPS_INTERPRETATION_sRGB), 3 bands, or 4 with
     * straight alpha last, of the shape the op was bound against (or of
     * a reduced or larger one, for execute_reduced). Whatever the source
     * was (grey, 16-bit, CMYK, palette, a profile, an EXIF orientation),
     * the host has made it so. *out must be the same kind of image: 8-bit,
     * interpretation sRGB, exactly the width, height and bands infer()
     * gave, with alpha exactly when infer() said has_alpha. The host
     * checks every output against this and fails the job at the op's
     * path, naming the plugin, when it does not hold (libvips operations
     * such as maplut or bandjoin change the interpretation: copy it back).
     * An op must handle every input the contract allows, one pixel to
     * 65535 on a side, with and without alpha. */
    int (*execute)(kiln_exec *ctx, const void *params, VipsImage *const *in,
                   VipsImage **out, kiln_error *err);

    /* Runs on an input reduced before the op (kiln_op.sample_scale), or
     * only a window of the output (KILN_OP_WINDOWED): see
     * kiln_reduction. May be NULL when the op has no sample_scale. */
    int (*execute_reduced)(kiln_exec *ctx, const void *params,
                           const kiln_reduction *r, VipsImage *const *in,
                           VipsImage **out, kiln_error *err);

    /* Any other backend (kiln_backend): the op on that backend's native
     * images (for "magick", MagickCore's Image *), the same contract as
     * execute(): sRGB, 8 bits of precision per sample, 3 colour channels
     * with alpha exactly when infer() says, the shape infer() gave. *out
     * is a new image the host releases with the backend's unref();
     * in[] stays the host's. Such an op runs on its input as bound
     * (the optimizer passes that window an input, or fuse or reuse
     * resamples, apply to libvips only). Set either execute (backend
     * "vips") or execute_native (any other). */
    int (*execute_native)(kiln_exec *ctx, const void *params, void *const *in,
                          void **out, kiln_error *err);

    /* 2.1, any other backend, optional: execute_native() on a source the
     * backend decoded at a reduced scale (kiln_decode_opts.min_width,
     * a JPEG's DCT scaling), as execute_reduced() is for libvips: plan
     * from r->bound, resample from in[0] (r->xscale, r->yscale <= 1, no
     * window), give the size infer() gave for r->bound. The host asks a
     * backend for a reduced decode only when every op reading the source
     * has kiln_op.sample_scale and this member (docs/backends.md). */
    int (*execute_native_reduced)(kiln_exec *ctx, const void *params,
                                  const kiln_reduction *r, void *const *in,
                                  void **out, kiln_error *err);
} kiln_op_impl;

/* ---------------------------------------------------- pixel backends */

/* What a backend's probe() reads from a file's header, before a single
 * pixel is decoded (the host checks the pixel limit with it). */
typedef struct kiln_image_info {
    size_t size;       /* sizeof(kiln_image_info) as built: set by the
                        * host before the call */
    char format[16];   /* one of the backend's read_formats: "jpeg" */
    int width, height; /* upright: after the EXIF orientation */
    bool has_alpha;
} kiln_image_info;

/* How the host asks for a decode. */
typedef struct kiln_decode_opts {
    size_t size;        /* sizeof(kiln_decode_opts) as built by the host */
    int64_t max_pixels; /* width x height above this: refuse (0: none) */
    int64_t max_bytes;  /* memory the decoder may use (0: its default) */
    double max_seconds; /* time the decode may take (0: no limit) */
    bool has_alpha;     /* what probe() said: the decoded image has alpha
                         * exactly then (the job was bound so) */
    /* 2.1: when not 0, the backend may decode the source smaller than it
     * is, upright at least min_width x min_height (a hint, as
     * ImageMagick's jpeg:size: a JPEG's DCT scaling), or whole; the host
     * reads the size it got with shape(). Only ops with
     * execute_native_reduced then read it. Check opts->size before
     * reading these. */
    int min_width, min_height;
} kiln_decode_opts;

/* How the host asks for an encode. */
typedef struct kiln_encode_opts {
    size_t size;        /* sizeof(kiln_encode_opts) as built by the host */
    const char *format; /* one of the backend's write_formats: "jpeg" */
    int quality;        /* 1..100 */
    /* For a format without alpha: what transparent pixels are flattened
     * onto (white unless the job gave a background). */
    uint8_t background[3];
} kiln_encode_opts;

/* A pixel backend (ABI 2): what a service's "backend" names. It decodes
 * sources into its own image type, runs op implementations registered
 * for it (kiln_op_impl.execute_native) and encodes. An op with no
 * implementation for it runs on libvips in its place: the host converts
 * with to_vips() and from_vips() once at each boundary of such a run,
 * never per op, so both must be lossless for 8-bit sRGB with or without
 * alpha. The name "vips" is kiln's built-in libvips backend's
 * (backend-vips, which runs kiln_op_impl.execute); no other plugin may
 * register it. Every function may run on several threads at once, on
 * different images. */
typedef struct kiln_backend {
    size_t size;      /* sizeof(kiln_backend) as built */
    const char *name; /* "magick" */
    const char *summary;
    /* NULL-terminated lists of format names, lower case ("jpeg", "psd"):
     * what decode() reads and encode() writes. */
    const char *const *read_formats;
    const char *const *write_formats;
    /* The header of the storage's source `src` (its length already
     * checked against the job's max_file_size): its format (one of
     * read_formats, told from the content, never from a name) and upright
     * size. Refuses (KILN_EINVAL, with a message saying what the file is
     * when it can) what it will not decode. Decodes no pixels. */
    int (*probe)(VipsSource *src, kiln_image_info *info, kiln_error *err);
    /* Decodes `src` upright (EXIF orientation applied), in sRGB (an
     * embedded profile honoured), 8 bits, alpha kept, under the limits in
     * opts; *image is new. The host calls probe() first. */
    int (*decode)(kiln_exec *ctx, VipsSource *src, const kiln_decode_opts *opts,
                  void **image, kiln_error *err);
    /* Encodes `image` into `target` (which the host ends). */
    int (*encode)(kiln_exec *ctx, void *image, const kiln_encode_opts *opts,
                  VipsTarget *target, kiln_error *err);
    /* The image's shape, for the host's check of the op contract. */
    void (*shape)(void *image, kiln_shape *out);
    /* Lossless conversions for 8-bit sRGB, 3 or 4 bands: *out is one new
     * reference / a new image. */
    int (*to_vips)(void *image, VipsImage **out, kiln_error *err);
    int (*from_vips)(VipsImage *in, void **image, kiln_error *err);
    /* Images are reference-counted: ref() returns `image` with one more
     * reference, unref() drops one. The host holds one reference of
     * each image it hands an op and drops it when the op returns; it
     * gives the last job the source's last reference. So an op seeing
     * an input with one reference may reuse it for its output: no one
     * else can see it change. */
    void *(*ref)(void *image);
    void (*unref)(void *image);
} kiln_backend;

/* ----------------------------------------------------------- storage */

/* A storage backend ("local", "s3", ...). A service's configuration names
 * the backend and gives its settings, which the host parses with the
 * backend's own spec table into a struct of settings_size bytes. */
typedef struct kiln_storage {
    size_t size; /* sizeof(kiln_storage) as built */
    const char *name;
    const char *summary;
    size_t settings_size;
    const kiln_param_spec *settings;
    size_t n_settings;
    /* One instance per configured service. *state is the plugin's. */
    int (*open)(kiln_plugin *self, const void *settings, void **state,
                kiln_error *err);
    void (*close)(void *state);
    /* A source to read `path` (a path in the service's storage). */
    int (*open_read)(void *state, const char *path, VipsSource **out,
                     kiln_error *err);
    /* A target to write `path`. The object must not become visible until
     * commit(); abort() discards it. Exactly one of them is called for
     * every successful open_write, after the target has been ended. */
    int (*open_write)(void *state, const char *path, VipsTarget **target,
                      void **handle, kiln_error *err);
    int (*commit)(void *state, void *handle, kiln_error *err);
    void (*abort)(void *state, void *handle);
} kiln_storage;

/* ----------------------------------------------------------- services */

typedef struct kiln_engine kiln_engine; /* the running engine */

/* One call of the HTTP API (docs/api.md), transport-free: a service that
 * speaks HTTP fills it from a request and sends back the kiln_reply as
 * is. The engine does the routing, authentication, validation, limits and
 * JSON; the transport owns sockets, threads and the body-size limit. */
typedef struct kiln_call {
    size_t size;                 /* sizeof(kiln_call) as built */
    const char *method;          /* "GET", "POST", "PATCH", ... */
    const char *path;            /* "/status/ID", without the query */
    const char *authorization;   /* the Authorization header, or NULL */
    const char *idempotency_key; /* the Idempotency-Key header, or NULL */
    const char *body;            /* may be NULL when body_len is 0 */
    size_t body_len;
    /* 2.2: the request's query string as received, after the '?' and
     * still percent-encoded ("status=FAILED&limit=20"), or NULL for none.
     * GET /processes and GET /stats read it. Set it only on a host of
     * minor 2 or later (api->abi_minor >= 2): an older host refuses a
     * call with members it does not know. */
    const char *query;
    /* 2.2: the request's id (X-Request-Id, which the transport echoes),
     * for the host's log lines; NULL: none. */
    const char *request_id;
} kiln_call;

typedef struct kiln_reply {
    size_t size;              /* sizeof(kiln_reply) as built: set it before
                               * the call; the host fills what it knows */
    int status;               /* HTTP status code */
    const char *content_type; /* a static string */
    char *body;               /* owned by the reply: free with reply_free */
    size_t body_len;
    int retry_after; /* seconds, for a Retry-After header; or 0 */
} kiln_reply;

/* A long-running part of a plugin, started by `kiln serve` (the HTTP API
 * server is one). It reaches the engine only through the host API. */
typedef struct kiln_service {
    size_t size; /* sizeof(kiln_service) as built */
    const char *name;
    const char *summary;
    /* Its settings, as a storage backend's: the host parses the
     * configuration's plugins.settings.NAME object with this table into a
     * struct of settings_size bytes (defaults when the object is absent)
     * and hands it to start(). */
    size_t settings_size;
    const kiln_param_spec *settings;
    size_t n_settings;
    int (*start)(kiln_engine *engine, const void *settings, void **state,
                 kiln_error *err);
    void (*stop)(void *state);
} kiln_service;

/* ------------------------------------------------------ network guard */

/* A URL the host's network guard approved. The guard resolved
 * the host and checked every address against the deployment's
 * network.allow (loopback, private, link-local, CGNAT, unique-local and
 * their IPv4-mapped forms are refused unless allowed). Connect with
 * libcurl using CURLOPT_RESOLVE set to a list holding `resolve` (when not
 * empty: an IPv6 literal needs none) so the checked addresses are the
 * ones used, and CURLOPT_OPENSOCKETFUNCTION refusing what net_allowed()
 * refuses. Follow no redirect without checking its URL again. */
typedef struct kiln_net_target {
    size_t size; /* sizeof(kiln_net_target) as built: set it before the
                  * call; the host fills what it knows */
    bool is_https;
    int port;
    char resolve[1400]; /* "host:port:addr1,[v6addr],..." */
} kiln_net_target;

/* ------------------------------------------------------ HTTP settings */

/* The deployment's "http" settings for a transport (see
 * docs/config.md). Times are in seconds. A request's header must have
 * arrived header_timeout after the request started and its body
 * body_timeout after it started, however steadily the bytes trickle in;
 * a request starts when its connection opens, or, on a kept-alive
 * connection, when its request line has arrived. idle_timeout bounds the
 * wait between two requests and any pause with no bytes either way. */
typedef struct kiln_http_settings {
    unsigned max_connections;             /* from all clients together */
    unsigned max_connections_per_address; /* an IPv6 client is its /64 */
    double header_timeout;
    double body_timeout;
    double idle_timeout;
} kiln_http_settings;

/* ----------------------------------------------------------- host API */

typedef enum kiln_log_level {
    KILN_LOG_ERROR = 0,
    KILN_LOG_WARN,
    KILN_LOG_INFO,
    KILN_LOG_DEBUG
} kiln_log_level;

/* The table of host functions handed to init(). Append-only: a plugin
 * checks a member added after 1.0 with KILN_HOST_HAS before calling it. */
typedef struct kiln_host_api {
    size_t size; /* sizeof the table the host filled */
    unsigned abi_major;
    unsigned abi_minor;

    /* Registration, valid only during init(). Each struct's `size` is
     * its sizeof as the plugin was built. One larger than this host knows
     * (a newer 2.x SDK) is accepted when every member this host does not
     * know is zero: a plugin needs the minor of the features it uses, not
     * of the SDK it was built with. The structs must outlive the plugin
     * (make them static const). */
    int (*register_op)(kiln_plugin *self, const kiln_op *op, kiln_error *err);
    int (*register_op_impl)(kiln_plugin *self, const kiln_op_impl *impl,
                            kiln_error *err);
    int (*register_storage)(kiln_plugin *self, const kiln_storage *st,
                            kiln_error *err);
    int (*register_service)(kiln_plugin *self, const kiln_service *svc,
                            kiln_error *err);

    /* Logging; never pass a secret. */
    void (*log)(kiln_plugin *self, kiln_log_level level, const char *fmt, ...)
        KILN_PRINTF(3, 4);

    /* Errors: set a message (returns code), copy and clear the libvips
     * error buffer into one (returns KILN_EVIPS). */
    int (*error_set)(kiln_error *err, int code, const char *fmt, ...)
        KILN_PRINTF(3, 4);
    int (*error_set_param)(kiln_error *err, int code, const char *param,
                           const char *fmt, ...) KILN_PRINTF(4, 5);
    int (*error_set_vips)(kiln_error *err, const char *what);

    /* Geometry as ops.md defines it. place(): top-left corner of a rw x rh
     * region on a cw x ch canvas for a gravity and inward offsets.
     * derive_size(): both lengths set gives their px; one set derives the
     * other from ref_w:ref_h, rounding halves away from zero; fills
     * *w, *h or fails (neither set, result below 1 or above 65535). */
    void (*place)(kiln_gravity gravity, int cw, int ch, int rw, int rh, int dx,
                  int dy, int *x, int *y);
    int (*derive_size)(const kiln_length *w, const kiln_length *h, int ref_w,
                       int ref_h, int *out_w, int *out_h, kiln_error *err);
    /* Resolves a length against a reference size (for ops whose lengths
     * refer to something other than their input). */
    int (*resolve_length)(const kiln_length *len, kiln_axis axis, int ref_w,
                          int ref_h, int *px, kiln_error *err);

    /* Execution context. exec_warn() adds a warning to the job's result;
     * exec_load_image() reads an image from the job's service storage and
     * decodes it like a source (auto-orient, sRGB, 8-bit); *out is one new
     * reference. */
    void (*exec_warn)(kiln_exec *ctx, const char *fmt, ...) KILN_PRINTF(2, 3);
    int (*exec_load_image)(kiln_exec *ctx, const char *path, VipsImage **out,
                           kiln_error *err);

    /* For services. api_call() answers one API call into *out (always
     * filled, also on failure; free it with reply_free). listen() is the
     * deployment's "host:port"; max_body() its body limit in bytes, over
     * which the transport answers 413 without calling api_call(). */
    void (*api_call)(kiln_engine *e, const kiln_call *call, kiln_reply *out);
    void (*reply_free)(kiln_reply *r);
    const char *(*config_listen)(kiln_engine *e);
    size_t (*config_max_body)(kiln_engine *e);

    /* The network guard, for plugins that fetch URLs on a request's
     * behalf, against the `network.allow` of the deployment that loaded
     * `self` (no process-wide state: each engine has its own).
     * net_check_url() checks an http(s) URL ("what" starts the message:
     * "source" -> "source host \"x\" resolves to ...") and fills *out;
     * KILN_EINVAL for a bad URL, KILN_EPERM for a refused address,
     * KILN_ENOTFOUND when the host does not resolve. net_allowed() checks
     * one address where the socket is made. */
    int (*net_check_url)(kiln_plugin *self, const char *what, const char *url,
                         kiln_net_target *out, kiln_error *err);
    bool (*net_allowed)(kiln_plugin *self, const struct sockaddr *addr);

    /* Quotes a path or value for a message: `s` double-quoted into
     * out, '"' and '\\' escaped, control bytes as \xNN, cut with "..."
     * to fit `size` (at least 16); NULL quotes as "". Returns out. */
    const char *(*quote)(char *out, size_t size, const char *s);

    /* The "http" settings into *out; `size` is sizeof(*out) as the
     * plugin was built, so a later host fills only the members the
     * plugin knows. */
    void (*config_http)(kiln_engine *e, kiln_http_settings *out, size_t size);
    /* api_call() for a call from `peer`, the client's address as
     * accept() gave it (NULL: unknown, as api_call()). Calls from one
     * address that fail authentication spend its budget
     * (rate_limit.failed_auth_per_second and failed_auth_burst); once it
     * is spent, every call from there that needs a token is answered 429
     * with retry_after, without looking at its token, until the budget
     * refills. api_call() counts no failures: a transport that knows the
     * peer should call this. */
    void (*api_call_from)(kiln_engine *e, const kiln_call *call,
                          const struct sockaddr *peer, kiln_reply *out);

    /* Pixel backends (kiln_backend), registered during init() as ops
     * are. */
    int (*register_backend)(kiln_plugin *self, const kiln_backend *b,
                            kiln_error *err);
    /* exec_load_image() for an op running on a backend other than vips:
     * reads `path` from the job's service storage and decodes it with
     * that backend (upright, sRGB, 8-bit) under the job's limits; *out is
     * a new native image. */
    int (*exec_load_native)(kiln_exec *ctx, const char *path, void **out,
                            kiln_error *err);

    /* 2.2: the deployment's metrics.listen ("host:port"), or NULL when it
     * has none: where a transport may serve GET /metrics without a token,
     * on an address the operator keeps for scrapers. */
    const char *(*config_metrics_listen)(kiln_engine *e);
    /* 2.2: the answer of GET /metrics (Prometheus text), with no token
     * asked: for that listener only. Free *out with reply_free. */
    void (*api_metrics)(kiln_engine *e, kiln_reply *out);
} kiln_host_api;

/* True when the host's table has member M (added in some later minor). */
#define KILN_HOST_HAS(api, M)                                                  \
    (offsetof(kiln_host_api, M) + sizeof(((kiln_host_api *)0)->M) <=           \
     (api)->size)

/* ----------------------------------------------------------- descriptor */

typedef struct kiln_plugin_descriptor {
    unsigned abi_major;
    unsigned abi_minor;   /* of the SDK it was built with (informational: the
                           * host checks the features it uses) */
    size_t size;          /* sizeof(kiln_plugin_descriptor) as built */
    size_t host_api_size; /* sizeof(kiln_host_api) the plugin was built with:
                           * call members past the host's table size only
                           * after KILN_HOST_HAS */
    unsigned vips_major;
    unsigned vips_minor;
    const char *name; /* "ops-vips", "storage-local" */
    const char *version;
    const char *summary;
    /* Registers what the plugin provides. On failure the host removes
     * every registration this plugin made and closes it; fini is not
     * called. */
    int (*init)(kiln_plugin *self, const kiln_host_api *api, kiln_error *err);
    /* Called once at unload after a successful init; may be NULL. */
    void (*fini)(kiln_plugin *self);
} kiln_plugin_descriptor;

#define KILN_DESCRIPTOR_SYMBOL "kiln_plugin_descriptor_v2"
/* What an ABI 1 plugin exports: the host refuses it, saying to rebuild. */
#define KILN_DESCRIPTOR_SYMBOL_V1 "kiln_plugin_descriptor_v1"

/* Defines the one exported symbol of a plugin. */
#define KILN_PLUGIN_DEFINE(NAME, VERSION, SUMMARY, INIT, FINI)                 \
    KILN_EXPORT const kiln_plugin_descriptor kiln_plugin_descriptor_v2 = {     \
        .abi_major = KILN_ABI_MAJOR,                                           \
        .abi_minor = KILN_ABI_MINOR,                                           \
        .size = sizeof(kiln_plugin_descriptor),                                \
        .host_api_size = sizeof(kiln_host_api),                                \
        .vips_major = VIPS_MAJOR_VERSION,                                      \
        .vips_minor = VIPS_MINOR_VERSION,                                      \
        .name = (NAME),                                                        \
        .version = (VERSION),                                                  \
        .summary = (SUMMARY),                                                  \
        .init = (INIT),                                                        \
        .fini = (FINI)}

#ifdef __cplusplus
}
#endif

#endif /* KILN_PLUGIN_H */
