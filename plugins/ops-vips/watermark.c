/*
 * watermark: composite another image over the input (ops.md section 4).
 * `source` is read from the job's service storage, scaled to width x
 * height (percent units refer to the base image, so the host binds them
 * against our input as usual; one missing dimension follows the
 * watermark's own aspect, known only at execute), its alpha multiplied by
 * opacity / 10, and composited placed by gravity and inward offsets. The
 * output keeps the input's size and bands. execute comes with the next
 * issue.
 */
#include "ops.h"

typedef struct watermark_params {
    const char *source;
    kiln_gravity gravity;
    kiln_length width;
    kiln_length height;
    kiln_length xoffset;
    kiln_length yoffset;
    double opacity;
} watermark_params;

static const kiln_param_spec watermark_specs[] = {
    KILN_P_STRING(watermark_params, source, NULL,
                  "path of the watermark image in the job's storage",
                  .flags = KILN_PARAM_REQUIRED, .alias = "Source",
                  .min_len = 1),
    KILN_P_GRAVITY(watermark_params, gravity, KILN_GRAVITY_NORTHWEST,
                   "where the watermark sits on the image",
                   .flags = KILN_PARAM_REQUIRED),
    KILN_P_LENGTH(watermark_params, width, KILN_AXIS_WIDTH, KILN_UNITS_SIZE,
                  "watermark width (percent of the image); alone, the "
                  "height follows the watermark's aspect ratio",
                  .flags = KILN_PARAM_ONE_OF),
    KILN_P_LENGTH(watermark_params, height, KILN_AXIS_HEIGHT, KILN_UNITS_SIZE,
                  "watermark height (percent of the image); alone, the "
                  "width follows the watermark's aspect ratio",
                  .flags = KILN_PARAM_ONE_OF),
    KILN_P_LENGTH(watermark_params, xoffset, KILN_AXIS_X, KILN_UNITS_OFFSET,
                  "horizontal offset, inward from the gravity's edge"),
    KILN_P_LENGTH(watermark_params, yoffset, KILN_AXIS_Y, KILN_UNITS_OFFSET,
                  "vertical offset, inward from the gravity's edge"),
    KILN_P_NUMBER(watermark_params, opacity, 0, 10, 10,
                  "watermark opacity, 0 invisible to 10 as drawn"),
};

static int
watermark_infer(const void *params, const kiln_shape *in, kiln_shape *out,
                kiln_error *err)
{
    (void)params;
    (void)err;
    return ops_infer_same(in, out);
}

const kiln_op watermark_op = {
    .name = "watermark",
    .summary = "composite an image from storage over the input",
    .doc = "Reads source from the job's storage, scales it to width x "
           "height (percentages refer to the image being watermarked; with "
           "one given, the other follows the watermark's aspect ratio), "
           "fades it to opacity (0 to 10) and composites it placed by "
           "gravity and offsets. The size is unchanged.",
    .n_inputs = 1,
    .flags = KILN_OP_NEEDS_STORAGE | KILN_OP_SEQUENTIAL,
    .params_size = sizeof(watermark_params),
    .params = watermark_specs,
    .n_params = KILN_N_ELEMENTS(watermark_specs),
    .infer = watermark_infer,
    .execute = NULL,
};
