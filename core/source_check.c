/*
 * Source checks: damage libvips 8.14 decodes without a word, found from
 * the file's bytes (docs/ops.md section 6, damaged sources). A JPEG or GIF
 * whose data ends early but properly (an end marker after too little
 * data) decodes as grey or transparent rows: libvips reports the JPEG's
 * only as a libjpeg warning, among harmless ones, and the GIF's not at
 * all. exec.c (opening a source) and backend-vips (a strict JPEG decode
 * that failed) call these; a damaged file fails its job.
 */
#include "kiln.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>

/* ------------------------------------------------------------ JPEG */

typedef struct check_jpeg_err {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    bool is_short;        /* a warning that says the data ran out */
    JDIMENSION short_row; /* the output row being read then */
    char text[JMSG_LENGTH_MAX];
} check_jpeg_err;

static void
check_jpeg_exit(j_common_ptr cinfo)
{
    check_jpeg_err *e = (check_jpeg_err *)cinfo->err;
    cinfo->err->format_message(cinfo, e->text);
    longjmp(e->jump, 1);
}

/* Only the two warnings that mean the data ended before the image: the
 * entropy-coded data stopped at a marker, or the file itself stopped.
 * Others (extraneous bytes before a marker, a bad Huffman code) are left
 * to libvips, which lets them pass. */
static void
check_jpeg_message(j_common_ptr cinfo, int level)
{
    check_jpeg_err *e = (check_jpeg_err *)cinfo->err;
    int code = cinfo->err->msg_code;
    if (level >= 0 || (code != JWRN_HIT_MARKER && code != JWRN_JPEG_EOF)) {
        return;
    }
    e->is_short = true;
    e->short_row = ((j_decompress_ptr)cinfo)->output_scanline;
    cinfo->err->format_message(cinfo, e->text);
    longjmp(e->jump, 1);
}

int
source_check_jpeg(VipsSource *src, kiln_error *err)
{
    size_t len = 0;
    const void *bytes = vips_source_map(src, &len);
    if (bytes == NULL) {
        err_set_vips(err, "reading the source");
        return err_set(err, KILN_EIO, "%s", err->message);
    }
    struct jpeg_decompress_struct cinfo;
    check_jpeg_err e;
    memset(&e, 0, sizeof e);
    cinfo.err = jpeg_std_error(&e.pub);
    e.pub.error_exit = check_jpeg_exit;
    e.pub.emit_message = check_jpeg_message;
    /* volatile: read after a longjmp. */
    JSAMPROW volatile row = NULL;
    jpeg_create_decompress(&cinfo);
    int rc = KILN_OK;
    if (setjmp(e.jump) != 0) {
        int scale = cinfo.scale_denom > 0 ? (int)cinfo.scale_denom : 1;
        if (e.is_short) {
            rc = err_set(err, KILN_EINVAL,
                         "it is truncated: its JPEG data ends near row %u "
                         "of the %ux%u it declares (libjpeg said: %s)",
                         (unsigned)(e.short_row * scale), cinfo.image_width,
                         cinfo.image_height, e.text);
        } else {
            rc = err_set(err, KILN_EINVAL, "it is damaged (libjpeg said: %s)",
                         e.text);
        }
        goto done;
    }
    jpeg_mem_src(&cinfo, bytes, len);
    jpeg_read_header(&cinfo, TRUE);
    /* An eighth of the size: every coefficient is still entropy-decoded,
     * which is what finds the end of the data, for about half the work
     * of a full decode. */
    cinfo.scale_num = 1;
    cinfo.scale_denom = 8;
    cinfo.dct_method = JDCT_IFAST;
    cinfo.do_fancy_upsampling = FALSE;
    jpeg_start_decompress(&cinfo);
    row = malloc((size_t)cinfo.output_width * cinfo.output_components);
    if (row == NULL) {
        rc = err_set(err, KILN_ENOMEM, "out of memory");
        goto done;
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW rows[1] = {row};
        jpeg_read_scanlines(&cinfo, rows, 1);
    }
done:
    free(row);
    jpeg_destroy_decompress(&cinfo);
    return rc;
}

/* ------------------------------------------------------------- GIF */

/* Reads the LZW codes of the first frame's data sub-blocks. */
typedef struct gif_bits {
    const unsigned char *p, *end;
    size_t block_left; /* bytes left in the current sub-block */
    bool ended;        /* a zero-length sub-block or the end of the file */
    uint32_t acc;
    int n_acc;
} gif_bits;

static int
gif_read_code(gif_bits *b, int size)
{
    while (b->n_acc < size) {
        if (b->block_left == 0) {
            if (b->ended || b->p >= b->end || *b->p == 0) {
                b->ended = true;
                return -1;
            }
            b->block_left = *b->p++;
        }
        if (b->p >= b->end) {
            b->ended = true;
            return -1;
        }
        b->acc |= (uint32_t)*b->p++ << b->n_acc;
        b->n_acc += 8;
        b->block_left--;
    }
    int code = (int)(b->acc & ((1u << size) - 1));
    b->acc >>= size;
    b->n_acc -= size;
    return code;
}

/* Skips the sub-blocks at offset i; 0 when the file ends first. */
static size_t
gif_skip_blocks(const unsigned char *p, size_t size, size_t i)
{
    while (i < size && p[i] != 0) {
        i += (size_t)p[i] + 1;
    }
    return i < size ? i + 1 : 0;
}

/* The pixels the first frame's LZW data makes, counted without making
 * them: each code adds the length of the string it names. Stops at the
 * end code, at the end of the data, or at a code the decoder would
 * refuse (libvips reports that itself). */
static uint64_t
gif_count_pixels(gif_bits *b, int min_size, uint64_t want)
{
    uint16_t l[4096];
    int clear = 1 << min_size, eoi = clear + 1;
    int size = min_size + 1, next = eoi + 1, prev = -1;
    uint64_t n = 0;
    for (int i = 0; i < clear; i++) {
        l[i] = 1;
    }
    while (n < want) {
        int code = gif_read_code(b, size);
        if (code < 0 || code == eoi) {
            break;
        }
        if (code == clear) {
            size = min_size + 1;
            next = eoi + 1;
            prev = -1;
            continue;
        }
        int add;
        if (prev < 0) {
            if (code > clear) {
                break;
            }
            add = 1;
        } else if (code < next) {
            add = l[code];
        } else if (code == next) {
            add = l[prev] + 1;
        } else {
            break;
        }
        n += (uint64_t)add;
        if (prev >= 0 && next < 4096) {
            l[next] = (uint16_t)(l[prev] + 1);
            next++;
            if (next == (1 << size) && size < 12) {
                size++;
            }
        }
        prev = code;
    }
    return n;
}

int
source_check_gif(VipsSource *src, kiln_error *err)
{
    size_t size = 0;
    const unsigned char *p = vips_source_map(src, &size);
    if (p == NULL) {
        return err_set_vips(err, "reading the source");
    }
    /* Anything malformed before the first frame's data is the loader's
     * to report: return quietly. */
    size_t i = 13;
    if (size < i) {
        return KILN_OK;
    }
    if (p[10] & 0x80) {
        i += 3 * ((size_t)2 << (p[10] & 7));
    }
    while (i + 2 < size && p[i] == 0x21) {
        i = gif_skip_blocks(p, size, i + 2);
        if (i == 0) {
            return KILN_OK;
        }
    }
    if (i + 11 > size || p[i] != 0x2c) {
        return KILN_OK;
    }
    unsigned w = p[i + 5] | (unsigned)p[i + 6] << 8;
    unsigned h = p[i + 7] | (unsigned)p[i + 8] << 8;
    unsigned char flags = p[i + 9];
    i += 10;
    if (flags & 0x80) {
        i += 3 * ((size_t)2 << (flags & 7));
    }
    if (i + 1 >= size || p[i] < 2 || p[i] > 11) {
        return KILN_OK;
    }
    const unsigned char *q = p + i;
    const unsigned char *end = p + size;
    gif_bits b = {q + 1, end, 0, false, 0, 0};
    uint64_t want = (uint64_t)w * h;
    uint64_t got = gif_count_pixels(&b, *q, want);
    if (got < want) {
        return err_set(err, KILN_EINVAL,
                       "it is truncated: its GIF image data ends after %llu "
                       "of the %ux%u pixels it declares",
                       (unsigned long long)got, w, h);
    }
    return KILN_OK;
}
