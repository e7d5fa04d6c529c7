/*
 * filter: PHP GD's imagefilter() family (ops.md section 4.1): negate,
 * grayscale, bw, sepia, the 3x3 GD convolutions (edgedetect, emboss,
 * blurgaussian, meanremoval, smooth with its `weight`) and GD's in-place
 * selective blur. Colour channels only, alpha unchanged; on opaque 8-bit
 * input the result must match php-gd within 1 level. The output keeps the
 * input's size and bands. execute comes with the next issue.
 */
#include "ops.h"

/* Indexes into filter_names. */
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

static const char *const filter_names[] = {
    "negate", "grayscale",    "bw",          "sepia",  "edgedetect",
    "emboss", "blurgaussian", "meanremoval", "smooth", "blurselective",
    NULL};

static const kiln_param_spec filter_specs[] = {
    KILN_P_ENUM(filter_params, filter, filter_names, FILTER_NEGATE,
                "which GD filter to apply", .flags = KILN_PARAM_REQUIRED),
    KILN_P_NUMBER(filter_params, weight, -1e6, 1e6, 1,
                  "smooth only: weight of the centre pixel; the kernel is "
                  "divided by weight + 8"),
};

static int
filter_infer(const void *params, const kiln_shape *in, kiln_shape *out,
             kiln_error *err)
{
    const filter_params *p = params;

    /* GD would divide by zero: reject it rather than copy undefined
     * behaviour. */
    if (p->filter == FILTER_SMOOTH && p->weight == -8) {
        return ops_api->error_set_param(
            err, KILN_EINVAL, "weight",
            "weight \"-8\" makes the smooth divisor weight + 8 zero "
            "(expected any other number)");
    }
    return ops_infer_same(in, out);
}

const kiln_op filter_op = {
    .name = "filter",
    .summary = "apply a PHP GD imagefilter() effect",
    .doc = "Applies one of GD's filters, matching PHP's imagefilter(): "
           "negate, grayscale, bw, sepia, edgedetect, emboss, blurgaussian, "
           "meanremoval, smooth (with weight, default 1) or blurselective. "
           "Colour channels only; alpha is unchanged, and so is the size.",
    .n_inputs = 1,
    .flags = KILN_OP_PURE | KILN_OP_SEQUENTIAL,
    .params_size = sizeof(filter_params),
    .params = filter_specs,
    .n_params = KILN_N_ELEMENTS(filter_specs),
    .infer = filter_infer,
    .execute = NULL,
};
