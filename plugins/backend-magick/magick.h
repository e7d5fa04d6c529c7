/*
 * backend-magick internal header: the MagickCore pixel backend ("magick")
 * and its implementations of the fifteen shipped ops (docs/backends.md).
 *
 * A native image is a MagickCore Image * (ImageMagick 6, Q16) holding
 * 8-bit values: sRGB, every sample a multiple of 257 (ScaleCharToQuantum),
 * alpha in the opacity channel exactly when image->matte. The helpers
 * below keep that true: an op that computes in 8-bit reads the pixels
 * with mk_export() and makes its result with mk_import(); one that calls
 * a MagickCore operation ends with mk_settle() so that its samples are 8-bit
 * again. Ops make new images: they change their input only through
 * mk_writable(), which hands it over only when no one else can see it
 * (the host shares the source between jobs).
 */
#ifndef KILN_PLUGINS_BACKEND_MAGICK_MAGICK_H
#define KILN_PLUGINS_BACKEND_MAGICK_MAGICK_H

#include <stdbool.h>
#include <stdint.h>

#include <magick/MagickCore.h>

#include "kiln/ops.h"
#include "kiln/plugin.h"

/* 8-bit values and MagickCore's 16-bit quanta (Q16, no HDRI), as
 * MagickCore's private ScaleCharToQuantum and ScaleQuantumToChar do. */
static inline Quantum
mk_q16(unsigned v)
{
    return (Quantum)(v * 257u);
}
static inline unsigned
mk_q8(Quantum q)
{
    unsigned t = (unsigned)q + 128u;
    return (t - (t >> 8)) >> 8;
}

/* The host's function table, stored by init before anything runs. */
extern const kiln_host_api *mk_api;

/* The backend (backend.c) and each op's implementation (NAME_magick, in
 * the file named after the op). */
extern const kiln_backend mk_backend;
extern const kiln_op_impl annotation_magick, blur_magick, brightness_magick,
    colorize_magick, contrast_magick, crop_magick, enhance_magick,
    filter_magick, fitmethod_magick, flip_magick, resize_magick, rotate_magick,
    ulb_magick, watermark_magick, zoom_magick;

/* Starts MagickCore once (the first caller; thread-safe), with kiln's
 * security policy and resource limits. KILN_OK or an error. */
int mk_start(kiln_error *err);
/* At unload: MagickCore stays for the process (backend.c says why). */
void mk_stop(void);

/* Fills err with `what` failed, ImageMagick's words as detail (when ex
 * holds any), and returns code. Clears ex. */
int mk_error(kiln_error *err, int code, ExceptionInfo *ex, const char *what);

/* The pixels of `im` as interleaved 8-bit R, G, B (and A, when
 * im->matte: 255 opaque), row by row; *bands is 3 or 4. *buf is
 * malloc()ed. */
int mk_export(const Image *im, uint8_t **buf, int *bands, kiln_error *err);

/* A new image of w x h from interleaved 8-bit pixels (bands 3 or 4, 4
 * with alpha), sRGB, depth 8; the settings (progress monitor, the job's
 * deadline) come from `like` (may be NULL). */
int mk_import(const Image *like, int w, int h, int bands, const uint8_t *buf,
              Image **out, kiln_error *err);

/* Rounds every sample of `im` (in place: an image the op made) to 8
 * bits and marks it sRGB, depth 8: after a MagickCore operation that
 * computed in 16 bits. */
int mk_settle(Image *im, kiln_error *err);
/* The same for the pixels of `area` only (cut to the image), the only
 * ones an op computed. */
int mk_settle_area(Image *im, const RectangleInfo *area, kiln_error *err);

/* A new image: `in` with each colour channel mapped through its table
 * (lut[channel][value], R G B), alpha untouched: the lookup-table ops. */
int mk_lut(const Image *in, const uint8_t lut[3][256], Image **out,
           kiln_error *err);

/* A new image: `in` with fn run on each row's colour, n pixels of
 * interleaved 8-bit R, G, B changed in place (alpha untouched), rows on
 * several threads at once: the per-pixel colour ops. */
typedef void (*mk_row_fn)(uint8_t *rgb, size_t n, void *user);
int mk_rows(const Image *in, mk_row_fn fn, void *user, Image **out,
            kiln_error *err);

/* An image the op may write to make its output: `in` itself (one more
 * reference) when the host is its only holder, which lets it go when
 * the op returns, so no one sees it change; else a copy (mk_clone). It
 * saves copying a whole pixel cache for each op. */
int mk_writable(const Image *in, Image **out, kiln_error *err);

/* A new image that is a copy of `in` (copy-on-write: cheap until
 * written). */
int mk_clone(const Image *in, Image **out, kiln_error *err);

/* A new w x h image filled with an 8-bit colour and alpha (a = 255:
 * opaque); with_alpha gives it an alpha channel. Settings from `like`. */
int mk_canvas(const Image *like, int w, int h, const uint8_t rgba[4],
              bool with_alpha, Image **out, kiln_error *err);

/* The Lanczos3 resample of `in` to exactly w x h as the op contract
 * wants it (resize.c), alpha premultiplied by MagickCore itself. */
int mk_resample(const Image *in, int w, int h, Image **out, kiln_error *err);

#endif /* KILN_PLUGINS_BACKEND_MAGICK_MAGICK_H */
