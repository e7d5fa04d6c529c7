/*
 * enhance: ImageMagick's -enhance noise reduction, a 5x5 weighted mean
 * over the neighbours within a colour-distance threshold; must agree with
 * Debian's `convert -enhance` within 2 levels (ops.md section 4). No
 * parameters; the output keeps the input's size and bands. execute comes
 * with the next issue.
 */
#include "ops.h"

static int
enhance_infer(const void *params, const kiln_shape *in, kiln_shape *out,
              kiln_error *err)
{
    (void)params;
    (void)err;
    return ops_infer_same(in, out);
}

const kiln_op enhance_op = {
    .name = "enhance",
    .summary = "reduce noise like ImageMagick's -enhance",
    .doc = "Reduces noise the way ImageMagick's -enhance does: each pixel "
           "becomes a weighted mean of the pixels in its 5x5 neighbourhood "
           "whose colour is close to its own. No parameters; the size is "
           "unchanged.",
    .n_inputs = 1,
    .flags = KILN_OP_PURE | KILN_OP_SEQUENTIAL,
    .params_size = 0,
    .params = NULL,
    .n_params = 0,
    .infer = enhance_infer,
    .execute = NULL,
};
