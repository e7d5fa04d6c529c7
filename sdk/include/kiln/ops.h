/*
 * kiln plugin SDK, ABI 2: the parameters of the fifteen ops kiln ships
 * (docs/ops.md), for a plugin that implements them on another pixel
 * backend. ops-vips defines the ops (kiln_op: names, parameter tables,
 * shapes) and registers their libvips implementations; an implementation
 * for another backend (kiln_op_impl.execute_native) receives its params
 * as one of these structs, lengths bound (px filled). Members are only
 * ever appended.
 */
#ifndef KILN_OPS_H
#define KILN_OPS_H

#include "kiln/plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct annotation_params {
    const char *font;
    kiln_color color;
    const char *text;
    double size;
    kiln_gravity gravity;
    kiln_length xoffset;
    kiln_length yoffset;
} annotation_params;

typedef struct blur_params {
    double sigma;
    double radius;
} blur_params;

typedef struct brightness_params {
    double bright_level;
} brightness_params;

typedef struct colorize_params {
    double red;
    double green;
    double blue;
} colorize_params;

typedef struct contrast_params {
    double level;
} contrast_params;

typedef struct crop_params {
    kiln_gravity gravity;
    kiln_length width;
    kiln_length height;
    kiln_length xoffset;
    kiln_length yoffset;
    bool fit;
} crop_params;

/* filter_params.filter: the index of the filter's name. */
enum {
    FILTER_NEGATE,
    FILTER_GRAYSCALE,
    FILTER_BW,
    FILTER_SEPIA,
    FILTER_EDGEDETECT,
    FILTER_EMBOSS,
    FILTER_BLURGAUSSIAN,
    FILTER_MEANREMOVAL,
    FILTER_SMOOTH,
    FILTER_BLURSELECTIVE
};

typedef struct filter_params {
    int filter;
    double weight;
} filter_params;

/* fitmethod_params.fit_type. */
enum { FIT_BOX, FIT_STRETCH, FIT_CROPBOX, FIT_LETTERBOX, FIT_OUTSIDE };

typedef struct fitmethod_params {
    kiln_color color;
    int fit_type;
    kiln_gravity gravity;
    kiln_length width;
    kiln_length height;
    double opacity;
} fitmethod_params;

/* flip_params.direction: 0 "x", 1 "horizontal" (left-right), 2 "y",
 * 3 "vertical" (top-bottom). */
typedef struct flip_params {
    int direction;
} flip_params;

typedef struct resize_params {
    kiln_length width;
    kiln_length height;
} resize_params;

typedef struct rotate_params {
    double degrees;
} rotate_params;

/* enhance and ulb have no parameters. */

typedef struct watermark_params {
    const char *source;
    kiln_gravity gravity;
    kiln_length width;
    kiln_length height;
    kiln_length xoffset;
    kiln_length yoffset;
    double opacity;
} watermark_params;

typedef struct zoom_params {
    kiln_length width;
    kiln_length height;
    double level;
} zoom_params;

#ifdef __cplusplus
}
#endif

#endif /* KILN_OPS_H */
