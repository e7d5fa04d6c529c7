/*
 * flip on the magick backend: "x" and "horizontal" mirror left-right
 * (MagickCore's FlopImage, convert -flop), "y" and "vertical" top-bottom
 * (FlipImage, convert -flip). Both copy samples without arithmetic, so
 * the result is already 8-bit (no mk_settle) and equals the libvips
 * backend's vips_flip pixel for pixel.
 */
#include "magick.h"

static int
flip_execute(kiln_exec *ctx, const void *params, void *const *in, void **out,
             kiln_error *err)
{
    const flip_params *p = params;
    const Image *src = in[0];
    bool is_x = p->direction < 2;
    ExceptionInfo *ex = AcquireExceptionInfo();

    (void)ctx;
    Image *res = is_x ? FlopImage(src, ex) : FlipImage(src, ex);
    if (res == NULL) {
        mk_error(err, KILN_EINTERNAL, ex,
                 is_x ? "flip: cannot mirror the image left to right"
                      : "flip: cannot mirror the image top to bottom");
        DestroyExceptionInfo(ex);
        return err->code;
    }
    DestroyExceptionInfo(ex);
    *out = res;
    return KILN_OK;
}

const kiln_op_impl flip_magick = {
    .size = sizeof(kiln_op_impl),
    .op = "flip",
    .backend = "magick",
    .execute_native = flip_execute,
};
