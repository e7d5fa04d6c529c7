/*
 * blur: Gaussian blur (ops.md section 4) with standard deviation `sigma`
 * (> 0) and a kernel reaching at most `radius` px from the centre (0:
 * automatic, 3 sigma); edges extend by copy. Large sigmas may be
 * approximated within a mean absolute error of 1 level. The output keeps
 * the input's size and bands. execute comes with the next issue.
 */
#include "ops.h"

typedef struct blur_params {
    double sigma;
    double radius;
} blur_params;

static const kiln_param_spec blur_specs[] = {
    KILN_P_NUMBER(blur_params, sigma, 0, 1000, 0,
                  "standard deviation in pixels, greater than 0",
                  .flags = KILN_PARAM_REQUIRED | KILN_PARAM_MIN_EXCLUSIVE),
    KILN_P_NUMBER(blur_params, radius, 0, 2000, 0,
                  "kernel radius in pixels; 0 means 3 sigma",
                  .flags = KILN_PARAM_REQUIRED | KILN_PARAM_INTEGER),
};

static int
blur_infer(const void *params, const kiln_shape *in, kiln_shape *out,
           kiln_error *err)
{
    /* sigma > 0 is the host's check (KILN_PARAM_MIN_EXCLUSIVE). */
    (void)params;
    (void)err;
    return ops_infer_same(in, out);
}

const kiln_op blur_op = {
    .name = "blur",
    .summary = "Gaussian blur",
    .doc = "Blurs with a Gaussian of standard deviation sigma (pixels, "
           "above 0) whose kernel reaches at most radius pixels from the "
           "centre; radius 0 means 3 sigma. Edge pixels are extended. The "
           "size is unchanged.",
    .n_inputs = 1,
    .flags = KILN_OP_PURE | KILN_OP_SEQUENTIAL,
    .params_size = sizeof(blur_params),
    .params = blur_specs,
    .n_params = KILN_N_ELEMENTS(blur_specs),
    .infer = blur_infer,
    .execute = NULL,
};
