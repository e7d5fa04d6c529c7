/*
 * The geometry of the shipped ops, pure arithmetic: no libvips call, no
 * state. ops-vips computes its infer() shapes and execute() regions with
 * it, and every other pixel backend that implements these ops
 * (backend-magick) includes it too, so that the sizes, regions and
 * positions cannot drift between backends: the host checks every output
 * against the shape ops-vips' infer() gave. Host functions (place(),
 * derive_size(), error_set_param()) come in as the caller's table.
 */
#ifndef KILN_PLUGINS_OPS_VIPS_GEOM_H
#define KILN_PLUGINS_OPS_VIPS_GEOM_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include "kiln/ops.h"
#include "kiln/plugin.h"

/* The largest size kiln accepts on either axis (ops.md section 2). */
#define OPS_MAX_SIZE 65535

/* pi as libvips spells it (VIPS_PI), so that rotate sizes are the same
 * doubles whichever plugin computes them; strict C11 has no M_PI. */
#define OPS_PI 3.14159265358979323846

/* What ops_fit_plan_make() does: resample to scaled_w x scaled_h, then
 * (cropbox) crop out_w x out_h at (x, y) or (letterbox) pad to out_w x
 * out_h with the image at (x, y). */
typedef struct ops_fit_plan {
    int scaled_w, scaled_h;
    int x, y;
    int out_w, out_h;
    int pad_alpha;  /* letterbox: 0..255 */
    bool has_alpha; /* the output's */
} ops_fit_plan;

/* zoom: the centred region of the input, the size it is scaled to, and
 * the final crop (x, y, out_w, out_h) inside the scaled image. */
typedef struct ops_zoom_plan {
    kiln_rect region;
    int scaled_w, scaled_h;
    int x, y;
    int out_w, out_h;
} ops_zoom_plan;

/* The pixels of an offset, 0 when the request did not give it. */
static inline int
ops_px(const kiln_length *len)
{
    return len->is_set ? len->px : 0;
}

/* num / den rounded half away from zero, for num >= 0 and den > 0. Integer
 * arithmetic so that aspect-ratio sizes never depend on float rounding. */
static inline int64_t
ops_round_div(int64_t num, int64_t den)
{
    return (2 * num + den) / (2 * den);
}

/*
 * The size of an iw x ih image scaled uniformly to fit inside bw x bh
 * (cover false: the largest size inside) or to cover it (cover true: the
 * smallest size that covers). The constraining axis gets the box's size
 * exactly, the other round(other * scale), at least 1. The 64-bit results
 * may exceed OPS_MAX_SIZE when covering; callers check.
 */
static inline void
ops_scale_to_box(int iw, int ih, int bw, int bh, bool cover, int64_t *w,
                 int64_t *h)
{
    /* bw / iw <= bh / ih, cross-multiplied: width constrains "inside". */
    bool width_limits = (int64_t)bw * ih <= (int64_t)bh * iw;

    if (width_limits != cover) {
        *w = bw;
        *h = ops_round_div((int64_t)ih * bw, iw);
    } else {
        *h = bh;
        *w = ops_round_div((int64_t)iw * bh, ih);
    }
    if (*w < 1) {
        *w = 1;
    }
    if (*h < 1) {
        *h = 1;
    }
}

/*
 * crop (ops.md section 5): the rectangle of an iw x ih input the crop
 * keeps. fit true: a region larger than the input is shrunk keeping its
 * aspect ratio, placed by gravity and offsets, then shifted as little as
 * needed to lie inside. fit false: the placed region intersected with the
 * input (`convert -gravity G -crop WxH+X+Y +repage`); an empty
 * intersection is an error at "width" (or "height" when only it is set).
 */
static inline int
ops_crop_region(const kiln_host_api *api, const crop_params *p, int iw, int ih,
                kiln_rect *r, kiln_error *err)
{
    int w, h, x, y;
    int rc;

    rc = api->derive_size(&p->width, &p->height, iw, ih, &w, &h, err);
    if (rc != KILN_OK) {
        return rc;
    }
    if (p->fit) {
        if (w > iw || h > ih) {
            int64_t sw, sh;

            ops_scale_to_box(w, h, iw, ih, false, &sw, &sh);
            w = (int)sw;
            h = (int)sh;
        }
        api->place(p->gravity, iw, ih, w, h, ops_px(&p->xoffset),
                   ops_px(&p->yoffset), &x, &y);
        /* Shift inside; w <= iw and h <= ih, so both clamps are valid. */
        x = x < 0 ? 0 : (x > iw - w ? iw - w : x);
        y = y < 0 ? 0 : (y > ih - h ? ih - h : y);
        *r = (kiln_rect){x, y, w, h};
        return KILN_OK;
    }

    api->place(p->gravity, iw, ih, w, h, ops_px(&p->xoffset),
               ops_px(&p->yoffset), &x, &y);
    /* The intersection, in 64 bits: offsets may be any integer. */
    int64_t left = x > 0 ? x : 0;
    int64_t top = y > 0 ? y : 0;
    int64_t right = (int64_t)x + w < iw ? (int64_t)x + w : iw;
    int64_t bottom = (int64_t)y + h < ih ? (int64_t)y + h : ih;

    if (right <= left || bottom <= top) {
        return api->error_set_param(
            err, KILN_EINVAL, p->width.is_set ? "width" : "height",
            "crop region %dx%d at %+d%+d lies outside the %dx%d input "
            "(with fit false it must overlap the input)",
            w, h, x, y, iw, ih);
    }
    *r = (kiln_rect){(int)left, (int)top, (int)(right - left),
                     (int)(bottom - top)};
    return KILN_OK;
}

/* fitmethod's fit_type as a request writes it (ops_fit_plan_make's
 * messages; fitmethod.c's enum table lists the same names). */
static inline const char *
ops_fit_type_name(int fit_type)
{
    switch (fit_type) {
    case FIT_BOX:
        return "box";
    case FIT_STRETCH:
        return "stretch";
    case FIT_CROPBOX:
        return "cropbox";
    case FIT_LETTERBOX:
        return "letterbox";
    case FIT_OUTSIDE:
        return "outside";
    default:
        return "?";
    }
}

/*
 * fitmethod (ops.md section 5): every size and position for an iw x ih
 * input (in_alpha: it has an alpha band). box and letterbox scale to fit
 * inside the box, cropbox and outside to cover it (at most OPS_MAX_SIZE a
 * side, else an error at "fit_type"), stretch to it exactly; cropbox then
 * cuts the box placed by gravity, letterbox pads to the box with the
 * image placed by gravity, the pad's alpha color.a x opacity / 10
 * (halves up), adding alpha when that is not opaque.
 */
static inline int
ops_fit_plan_make(const kiln_host_api *api, const fitmethod_params *p, int iw,
                  int ih, bool in_alpha, ops_fit_plan *plan, kiln_error *err)
{
    int bw, bh;
    int64_t sw, sh;
    int rc;

    rc = api->derive_size(&p->width, &p->height, iw, ih, &bw, &bh, err);
    if (rc != KILN_OK) {
        return rc;
    }
    *plan = (ops_fit_plan){.has_alpha = in_alpha};
    switch (p->fit_type) {
    case FIT_STRETCH:
        sw = bw;
        sh = bh;
        break;
    case FIT_BOX:
    case FIT_LETTERBOX:
        ops_scale_to_box(iw, ih, bw, bh, false, &sw, &sh);
        break;
    default: /* FIT_CROPBOX, FIT_OUTSIDE */
        ops_scale_to_box(iw, ih, bw, bh, true, &sw, &sh);
        if (sw > OPS_MAX_SIZE || sh > OPS_MAX_SIZE) {
            return api->error_set_param(
                err, KILN_EINVAL, "fit_type",
                "%s of the %dx%d input over %dx%d scales it to "
                "%lldx%lld (expected at most %d px per side)",
                ops_fit_type_name(p->fit_type), iw, ih, bw, bh, (long long)sw,
                (long long)sh, OPS_MAX_SIZE);
        }
        break;
    }
    plan->scaled_w = (int)sw;
    plan->scaled_h = (int)sh;
    plan->out_w = plan->scaled_w;
    plan->out_h = plan->scaled_h;

    if (p->fit_type == FIT_CROPBOX) {
        api->place(p->gravity, plan->scaled_w, plan->scaled_h, bw, bh, 0, 0,
                   &plan->x, &plan->y);
        plan->out_w = bw;
        plan->out_h = bh;
    } else if (p->fit_type == FIT_LETTERBOX) {
        api->place(p->gravity, bw, bh, plan->scaled_w, plan->scaled_h, 0, 0,
                   &plan->x, &plan->y);
        plan->out_w = bw;
        plan->out_h = bh;
        plan->pad_alpha = (int)floor(p->color.a * p->opacity / 10 + 0.5);
        plan->has_alpha = in_alpha || plan->pad_alpha < 255;
    }
    return KILN_OK;
}

/*
 * zoom (ops.md section 5): with z = 1 + level, the centred region of
 * round(iw / z) x round(ih / z) input pixels (halves up, at least 1),
 * scaled to cover the output size keeping aspect (at most OPS_MAX_SIZE a
 * side, else an error at "level"), and the output cut from its centre.
 */
static inline int
ops_zoom_plan_make(const kiln_host_api *api, const zoom_params *p, int iw,
                   int ih, ops_zoom_plan *plan, kiln_error *err)
{
    double z = 1 + p->level;
    int64_t sw, sh;
    int rc;

    rc = api->derive_size(&p->width, &p->height, iw, ih, &plan->out_w,
                          &plan->out_h, err);
    if (rc != KILN_OK) {
        return rc;
    }
    plan->region.width = (int)floor(iw / z + 0.5);
    plan->region.height = (int)floor(ih / z + 0.5);
    if (plan->region.width < 1) {
        plan->region.width = 1;
    }
    if (plan->region.height < 1) {
        plan->region.height = 1;
    }
    api->place(KILN_GRAVITY_CENTER, iw, ih, plan->region.width,
               plan->region.height, 0, 0, &plan->region.x, &plan->region.y);

    ops_scale_to_box(plan->region.width, plan->region.height, plan->out_w,
                     plan->out_h, true, &sw, &sh);
    if (sw > OPS_MAX_SIZE || sh > OPS_MAX_SIZE) {
        return api->error_set_param(
            err, KILN_EINVAL, "level",
            "zooming the %dx%d region to cover %dx%d scales it to "
            "%lldx%lld (expected at most %d px per side)",
            plan->region.width, plan->region.height, plan->out_w, plan->out_h,
            (long long)sw, (long long)sh, OPS_MAX_SIZE);
    }
    plan->scaled_w = (int)sw;
    plan->scaled_h = (int)sh;
    api->place(KILN_GRAVITY_CENTER, plan->scaled_w, plan->scaled_h, plan->out_w,
               plan->out_h, 0, 0, &plan->x, &plan->y);
    return KILN_OK;
}

/* rotate: quarter turns (0..3) when degrees is a multiple of 90, else -1
 * (any other angle resamples). */
static inline int
ops_rotate_quarters(double degrees)
{
    double q = degrees / 90;

    return q == floor(q) ? (int)q % 4 : -1;
}

/*
 * rotate (ops.md section 5): the output size for a w x h input. Quarter
 * turns swap or keep the sides; any other angle gives the rotated
 * bounding box, round(w |cos| + h |sin|) x round(w |sin| + h |cos|)
 * (halves up, at least 1; the size vips_rotate() picks), at most
 * OPS_MAX_SIZE a side, else an error at "degrees".
 */
static inline int
ops_rotate_size(const kiln_host_api *api, const rotate_params *p, int w, int h,
                int *ow, int *oh, kiln_error *err)
{
    int q = ops_rotate_quarters(p->degrees);

    if (q >= 0) {
        *ow = q % 2 ? h : w;
        *oh = q % 2 ? w : h;
        return KILN_OK;
    }

    double rad = p->degrees * (OPS_PI / 180);
    double c = fabs(cos(rad));
    double s = fabs(sin(rad));
    double bw = floor(w * c + h * s + 0.5);
    double bh = floor(w * s + h * c + 0.5);

    if (bw > OPS_MAX_SIZE || bh > OPS_MAX_SIZE) {
        return api->error_set_param(
            err, KILN_EINVAL, "degrees",
            "rotating the %dx%d input by %g degrees gives %.0fx%.0f "
            "(expected at most %d px per side)",
            w, h, p->degrees, bw, bh, OPS_MAX_SIZE);
    }
    *ow = bw < 1 ? 1 : (int)bw;
    *oh = bh < 1 ? 1 : (int)bh;
    return KILN_OK;
}

#endif /* KILN_PLUGINS_OPS_VIPS_GEOM_H */
