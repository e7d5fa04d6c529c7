/*
 * Lengths and placement exactly as ops.md sections 2 and 3 define them:
 * units resolved against the input, rounding halves away from zero, the
 * derived dimension of a one-sided size, and ImageMagick's gravity
 * convention. Ops reach these through the host API.
 */
#include "host.h"

#include <math.h>
#include <string.h>

const char *const geom_gravity_names[] = {
    "northwest", "north",     "northeast", "west",      "center",
    "east",      "southwest", "south",     "southeast", NULL};

const char *
geom_gravity_name(kiln_gravity g)
{
    if ((int)g < 0 || g > KILN_GRAVITY_SOUTHEAST) {
        return "?";
    }
    return geom_gravity_names[g];
}

const char *
geom_unit_name(kiln_unit u)
{
    switch (u) {
    case KILN_UNIT_PX:
        return "px";
    case KILN_UNIT_PERCENT:
        return "%";
    case KILN_UNIT_W:
        return "w";
    case KILN_UNIT_H:
        return "h";
    }
    return "?";
}

long
geom_round(double v)
{
    return lround(v); /* C rounds halfway cases away from zero */
}

/* Column: 0 west, 1 middle, 2 east; row: 0 north, 1 middle, 2 south. */
static void
geom_cell(kiln_gravity g, int *col, int *row)
{
    *col = (int)g % 3;
    *row = (int)g / 3;
}

void
geom_place(kiln_gravity gravity, int cw, int ch, int rw, int rh, int dx, int dy,
           int *x, int *y)
{
    int col, row;
    geom_cell(gravity, &col, &row);
    /* The middle is cw/2 - rw/2, each halved alone (ImageMagick's
     * GravityAdjustGeometry), not (cw - rw)/2 as ops.md writes it: the two
     * differ by one when cw is even and rw odd, and results must be
     * pixel-identical to `convert -gravity`. docs/ops.md states this. */
    *x = col == 0 ? dx : col == 1 ? cw / 2 - rw / 2 + dx : cw - rw - dx;
    *y = row == 0 ? dy : row == 1 ? ch / 2 - rh / 2 + dy : ch - rh - dy;
}

int
geom_resolve_length(const kiln_length *len, kiln_axis axis, int ref_w,
                    int ref_h, int *px, kiln_error *err)
{
    double v = len->value;
    bool horizontal = axis == KILN_AXIS_WIDTH || axis == KILN_AXIS_X;
    switch (len->unit) {
    case KILN_UNIT_PX:
        break;
    case KILN_UNIT_PERCENT:
        v = v * (horizontal ? ref_w : ref_h) / 100.0;
        break;
    case KILN_UNIT_W:
        v = v * ref_w / 100.0;
        break;
    case KILN_UNIT_H:
        v = v * ref_h / 100.0;
        break;
    }
    if (!isfinite(v) || fabs(v) > 1e9) {
        return err_set(err, KILN_EINVAL, "\"%s\" is out of range",
                       len->text ? len->text : "?");
    }
    long r = geom_round(v);
    if (axis == KILN_AXIS_WIDTH || axis == KILN_AXIS_HEIGHT) {
        const char *ref = horizontal ? "width" : "height";
        if (len->unit == KILN_UNIT_W) {
            ref = "width";
        } else if (len->unit == KILN_UNIT_H) {
            ref = "height";
        }
        if (r < 1) {
            if (len->unit == KILN_UNIT_PX) {
                return err_set(err, KILN_EINVAL,
                               "size \"%s\" is below 1 px (expected "
                               "1..%d)",
                               len->text, KILN_MAX_SIZE);
            }
            return err_set(err, KILN_EINVAL,
                           "\"%s\" of an input %s of %d px is %ld px, below "
                           "1 px",
                           len->text, ref,
                           strcmp(ref, "width") == 0 ? ref_w : ref_h, r);
        }
        if (r > KILN_MAX_SIZE) {
            return err_set(err, KILN_ELIMIT,
                           "\"%s\" resolves to %ld px, above the maximum "
                           "of %d px",
                           len->text, r, KILN_MAX_SIZE);
        }
    }
    *px = (int)r;
    return KILN_OK;
}

int
geom_derive_size(const kiln_length *w, const kiln_length *h, int ref_w,
                 int ref_h, int *out_w, int *out_h, kiln_error *err)
{
    bool has_w = w != NULL && w->is_set;
    bool has_h = h != NULL && h->is_set;
    if (has_w && has_h) {
        *out_w = w->px;
        *out_h = h->px;
        return KILN_OK;
    }
    if (!has_w && !has_h) {
        return err_set(err, KILN_EINVAL, "one of width or height is required");
    }
    if (ref_w < 1 || ref_h < 1) {
        return err_set(err, KILN_EINVAL, "reference size %dx%d is empty", ref_w,
                       ref_h);
    }
    long other;
    if (has_w) {
        other = geom_round((double)w->px * ref_h / ref_w);
        *out_w = w->px;
    } else {
        other = geom_round((double)h->px * ref_w / ref_h);
        *out_h = h->px;
    }
    if (other < 1 || other > KILN_MAX_SIZE) {
        return err_set_param(err, KILN_EINVAL, has_w ? "width" : "height",
                             "the derived %s of %ld px is outside 1..%d "
                             "(aspect %dx%d)",
                             has_w ? "height" : "width", other, KILN_MAX_SIZE,
                             ref_w, ref_h);
    }
    if (has_w) {
        *out_h = (int)other;
    } else {
        *out_w = (int)other;
    }
    return KILN_OK;
}
