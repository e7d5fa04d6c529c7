/*
 * The fused JPEG thumbnail (pass fuse-jpeg, pass_fuse_jpeg.c): one op
 * that reduces a JPEG decoded at a reduced scale, made in one loop
 * instead of a libvips pipeline.
 *
 * libjpeg decodes from the whole file in memory (its Huffman decoder's
 * fast path wants a few KiB ahead; libvips feeds it 4 KiB at a time) into
 * a ring of rows; each output row of the vertical Lanczos3 pass is made
 * as soon as its taps are decoded, and the horizontal pass takes them
 * four at a time (kernels/). The op's own execute_reduced() would do the
 * same passes in the same order on the same decode, so the pixels are the
 * same: libjpeg with libvips' settings (DCT scaling by 1/shrink, fancy
 * upsampling, islow IDCT, RGB out, a grey file's band repeated; the
 * rounded-up last row and column libvips drops are dropped), the factors
 * computed by the same expressions as ops-vips' resize, the result cut or
 * its edge repeated to exactly the op's size. tests/exec/fuse_jpeg.sh
 * compares the outputs byte for byte with the pipeline's.
 *
 * Anything libjpeg says (a warning, an error) ends the loop with nothing
 * made: the pipeline then runs, and its strict decode and
 * source_check_jpeg decide what a damaged file means, as without the
 * pass.
 */
#include "vips.h"

#include <jpeglib.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../kernels/kern.h"

/* Rows libjpeg is asked for at a time; the ring holds that many past the
 * taps of one output row. */
#define FUSED_READ_ROWS 16
/* Output rows between deadline checks. */
#define FUSED_CHECK_ROWS 32

typedef struct fused_error {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
} fused_error;

/* Everything the loop allocates, on the heap so that it is intact after
 * a longjmp from libjpeg. */
typedef struct fused_run {
    struct jpeg_decompress_struct c;
    fused_error e;
    bool created;
    kern_lanczos3 v;
    kern_reduceh h;
    uint8_t *ring, *vrows, *out;
    int32_t *acc;
} fused_run;

static void
fused_error_exit(j_common_ptr c)
{
    longjmp(((fused_error *)c->err)->jump, 1);
}

/* A warning (level -1) ends the run too; trace messages are ignored. */
static void
fused_emit_message(j_common_ptr c, int level)
{
    if (level < 0) {
        longjmp(((fused_error *)c->err)->jump, 1);
    }
}

static void
fused_output_message(j_common_ptr c)
{
    (void)c;
}

static void
fused_free(fused_run *fr)
{
    if (fr->created) {
        jpeg_destroy_decompress(&fr->c);
    }
    kern_lanczos3_free(&fr->v);
    kern_reduceh_free(&fr->h);
    free(fr->ring);
    free(fr->vrows);
    free(fr->out);
    free(fr->acc);
    free(fr);
}

/* Cuts or extends (repeating the last column and row) the ow-wide buffer
 * of hn x vn pixels to w x h, rows then w * 3 bytes apart. */
static void
fused_fit(uint8_t *buf, int ow, int hn, int vn, int w, int h)
{
    size_t in_row = (size_t)ow * 3, out_row = (size_t)w * 3;
    int rows = vn < h ? vn : h;
    for (int y = 0; y < rows; y++) {
        uint8_t *src = buf + (size_t)y * in_row;
        uint8_t *dst = buf + (size_t)y * out_row;
        /* dst <= src: each row moves down to its packed place. */
        memmove(dst, src, (size_t)(hn < w ? hn : w) * 3);
        for (int x = hn; x < w; x++) {
            memcpy(dst + (size_t)x * 3, dst + (size_t)(hn - 1) * 3, 3);
        }
    }
    for (int y = vn; y < h; y++) {
        memcpy(buf + (size_t)y * out_row, buf + (size_t)(vn - 1) * out_row,
               out_row);
    }
}

int
fused_thumbnail(const graph *g, VipsSource *src, VipsImage *header,
                exec_deadline *dl, VipsImage **out, bool *taken,
                kiln_error *err)
{
    *taken = false;
    *out = NULL;
    const graph_node *load = &g->nodes[0];
    const graph_node *op = &g->nodes[g->fused_op];
    const kiln_reduction *r = &op->reduction;
    int in_w = load->shape.width, in_h = load->shape.height;
    int w = op->shape.width, h = op->shape.height;
    /* The factors exactly as ops_resample_from() computes them. */
    double ext_w = r->bound.width * r->xscale;
    double ext_h = r->bound.height * r->yscale;
    double hscale = w / ext_w, vscale = h / ext_h;
    size_t len = 0;
    const void *bytes = vips_source_map(src, &len);
    if (bytes == NULL) {
        vips_error_clear(); /* the pipeline reads it its own way */
        return KILN_OK;
    }
    fused_run *fr = calloc(1, sizeof *fr);
    if (fr == NULL) {
        return err_set(err, KILN_ENOMEM, "out of memory");
    }
    fr->c.err = jpeg_std_error(&fr->e.pub);
    fr->e.pub.error_exit = fused_error_exit;
    fr->e.pub.emit_message = fused_emit_message;
    fr->e.pub.output_message = fused_output_message;
    /* volatile: read after a longjmp. */
    volatile int rc = KILN_OK;
    if (setjmp(fr->e.jump) != 0) {
        goto done; /* libjpeg spoke: not taken */
    }
    jpeg_create_decompress(&fr->c);
    fr->created = true;
    jpeg_mem_src(&fr->c, bytes, (unsigned long)len);
    jpeg_read_header(&fr->c, TRUE);
    J_COLOR_SPACE cs = fr->c.jpeg_color_space;
    int nc = fr->c.num_components;
    if (!(nc == 3 && (cs == JCS_YCbCr || cs == JCS_RGB)) &&
        !(nc == 1 && cs == JCS_GRAYSCALE)) {
        goto done; /* CMYK, YCCK, ...: the pipeline's colour path */
    }
    fr->c.scale_num = 1;
    fr->c.scale_denom = (unsigned)load->load_shrink;
    fr->c.out_color_space = JCS_RGB;
    jpeg_start_decompress(&fr->c);
    int rows_out = (int)fr->c.output_height;
    if ((int)fr->c.output_width < in_w || rows_out < in_h ||
        fr->c.output_components != 3) {
        goto done;
    }
    if (kern_lanczos3_plan(in_h, 1 / vscale, &fr->v) != 0 ||
        kern_reduceh_init(&fr->h, in_w, 3, 1 / hscale) != 0) {
        rc = err_set(err, KILN_ENOMEM, "out of memory");
        goto done;
    }
    int n_taps = fr->v.n_taps, vn = fr->v.out_n, hn = fr->h.l.out_n;
    if (n_taps > KERN_MAX_TAPS) {
        goto done;
    }
    int ring_n = n_taps + FUSED_READ_ROWS;
    size_t stride = (size_t)fr->c.output_width * 3, ne = (size_t)in_w * 3;
    int ow = hn > w ? hn : w, oh = vn > h ? vn : h;
    fr->ring = malloc((size_t)ring_n * stride);
    fr->vrows = malloc(4 * ne);
    fr->acc = malloc(ne * sizeof *fr->acc);
    fr->out = malloc((size_t)ow * 3 * (size_t)oh);
    if (fr->ring == NULL || fr->vrows == NULL || fr->acc == NULL ||
        fr->out == NULL) {
        rc = err_set(err, KILN_ENOMEM, "out of memory");
        goto done;
    }
    kern_reducev_fn vrow = kern_reducev_pick();
    const uint8_t *taps[KERN_MAX_TAPS];
    const uint8_t *vr[4] = {fr->vrows, fr->vrows + ne, fr->vrows + 2 * ne,
                            fr->vrows + 3 * ne};
    uint8_t *orow[4];
    JSAMPROW ptrs[FUSED_READ_ROWS];
    int next = 0, nv = 0;
    for (int y = 0; y < vn; y++) {
        if (y % FUSED_CHECK_ROWS == 0 && exec_deadline_passed(dl)) {
            rc = exec_deadline_error(dl, err);
            goto done;
        }
        int first = fr->v.first[y];
        int last =
            first + n_taps - 1 < in_h - 1 ? first + n_taps - 1 : in_h - 1;
        /* Decode up to the last tap: at most FUSED_READ_ROWS past it, so
         * the slots reused hold rows above `first`, needed no more. */
        while (next <= last) {
            int k = 0;
            for (; k < FUSED_READ_ROWS && next + k < rows_out; k++) {
                ptrs[k] = fr->ring + (size_t)((next + k) % ring_n) * stride;
            }
            int got = (int)jpeg_read_scanlines(&fr->c, ptrs, (JDIMENSION)k);
            if (got <= 0) {
                goto done;
            }
            next += got;
        }
        for (int t = 0; t < n_taps; t++) {
            int row = first + t < 0          ? 0
                      : first + t > in_h - 1 ? in_h - 1
                                             : first + t;
            taps[t] = fr->ring + (size_t)(row % ring_n) * stride;
        }
        vrow(taps, &fr->v.weights[(size_t)y * n_taps], n_taps, ne, fr->acc,
             (uint8_t *)vr[nv]);
        orow[nv] = fr->out + (size_t)y * (size_t)ow * 3;
        nv++;
        if (nv == 4 || y == vn - 1) {
            kern_reduceh_rows(&fr->h, vr, orow, nv, 0, in_w - 1, 0, hn);
            nv = 0;
        }
    }
    /* The rest of the file, for what libjpeg may say about its end. */
    while (next < rows_out) {
        int k = 0;
        for (; k < FUSED_READ_ROWS && next + k < rows_out; k++) {
            ptrs[k] = fr->ring + (size_t)k * stride;
        }
        int got = (int)jpeg_read_scanlines(&fr->c, ptrs, (JDIMENSION)k);
        if (got <= 0) {
            goto done;
        }
        next += got;
    }
    jpeg_finish_decompress(&fr->c);
    fused_fit(fr->out, ow, hn, vn, w, h);
    /* In memory, so that the encoder takes the pixels as they are
     * (encode_jpeg_direct). */
    VipsImage *img = vips_image_new_from_memory_copy(
        fr->out, (size_t)w * 3 * (size_t)h, w, h, 3, VIPS_FORMAT_UCHAR);
    if (img == NULL) {
        rc = err_set_vips(err, "the fused thumbnail");
        goto done;
    }
    img->Type = VIPS_INTERPRETATION_sRGB;
    img->Xres = header->Xres;
    img->Yres = header->Yres;
    /* The encoder writes the resolution in the unit the source gave. */
    const char *unit = NULL;
    if (vips_image_get_typeof(header, VIPS_META_RESOLUTION_UNIT) != 0 &&
        vips_image_get_string(header, VIPS_META_RESOLUTION_UNIT, &unit) == 0) {
        vips_image_set_string(img, VIPS_META_RESOLUTION_UNIT, unit);
    }
    *out = img;
    *taken = true;
done:
    fused_free(fr);
    return rc;
}
