/*
 * ulb: "upper/lower bound" auto-levels, the project's interpretation
 * (ops.md section 4): find the 0.5th and 99.5th percentiles of luminance
 * and stretch linearly so they map to 0 and 255, applying the same gain
 * and offset to R, G and B so hues keep. No parameters; the output keeps
 * the input's size and bands. execute comes with the next issue.
 */
#include "ops.h"

static int
ulb_infer(const void *params, const kiln_shape *in, kiln_shape *out,
          kiln_error *err)
{
    (void)params;
    (void)err;
    return ops_infer_same(in, out);
}

const kiln_op ulb_op = {
    .name = "ulb",
    .summary = "auto-levels between the 0.5% and 99.5% luminance bounds",
    .doc = "Stretches the image so that the 0.5th percentile of luminance "
           "becomes black and the 99.5th white, with the same gain and "
           "offset on red, green and blue so hues keep. No parameters; the "
           "size is unchanged.",
    .n_inputs = 1,
    .flags = KILN_OP_PURE, /* needs the whole histogram before any row */
    .params_size = 0,
    .params = NULL,
    .n_params = 0,
    .infer = ulb_infer,
    .execute = NULL,
};
