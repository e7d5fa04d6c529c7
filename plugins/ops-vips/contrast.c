/*
 * contrast: with f = ((100 + level) / 100)^2, each colour channel becomes
 * clamp(((c / 255 - 0.5) * f + 0.5) * 255), truncated (ops.md section 4).
 * level 0 is the identity, positive raises contrast, -100 gives flat grey;
 * GD's IMG_FILTER_CONTRAST with -level. The output keeps the input's size
 * and bands. execute comes with the next issue.
 */
#include "ops.h"

typedef struct contrast_params {
    double level;
} contrast_params;

static const kiln_param_spec contrast_specs[] = {
    KILN_P_NUMBER(contrast_params, level, -100, 100, 0,
                  "-100 (flat grey) to 100; positive raises contrast",
                  .flags = KILN_PARAM_REQUIRED),
};

static int
contrast_infer(const void *params, const kiln_shape *in, kiln_shape *out,
               kiln_error *err)
{
    (void)params;
    (void)err;
    return ops_infer_same(in, out);
}

const kiln_op contrast_op = {
    .name = "contrast",
    .summary = "raise or lower contrast",
    .doc = "Scales each colour channel's distance from mid-grey by "
           "((100 + level) / 100) squared, clamped and truncated; level 0 "
           "changes nothing, positive levels raise contrast and -100 gives "
           "flat grey. Same as GD's IMG_FILTER_CONTRAST with the sign "
           "inverted.",
    .n_inputs = 1,
    .flags = KILN_OP_PURE | KILN_OP_SEQUENTIAL,
    .params_size = sizeof(contrast_params),
    .params = contrast_specs,
    .n_params = KILN_N_ELEMENTS(contrast_specs),
    .infer = contrast_infer,
    .execute = NULL,
};
