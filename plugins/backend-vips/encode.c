/*
 * Encoding: a job's result into its format's bytes, through libvips'
 * savers, with what kiln adds to them. Outputs carry no metadata, and
 * each saver's known faults are put right here, each next to the saver
 * it concerns: WebP's EXIF chunk, TIFF on targets that cannot seek, GIF
 * transparency in an opaque image, HEIC files without their image.
 */
#include "vips.h"

#include <jpeglib.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Writes a whole encoded buffer to the target, frees it, and ends the
 * target. */
static int
encode_write(VipsTarget *target, void *buf, size_t len)
{
    int rc = vips_target_write(target, buf, len);
    g_free(buf);
    if (rc == 0) {
        rc = vips_target_end(target);
    }
    return rc;
}

static uint32_t
encode_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static void
encode_put_le32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

/* Drops the EXIF and XMP chunks of a WebP file in place and clears their
 * flags in VP8X; returns the new length. libvips 8.14 writes an EXIF chunk
 * even with strip set, and outputs must carry no metadata. */
static size_t
encode_webp_strip(unsigned char *buf, size_t len)
{
    if (len < 12 || memcmp(buf, "RIFF", 4) != 0 ||
        memcmp(buf + 8, "WEBP", 4) != 0) {
        return len;
    }
    size_t in = 12, out = 12;
    while (in + 8 <= len) {
        uint32_t size = encode_le32(buf + in + 4);
        size_t whole = 8 + (size_t)size + (size & 1);
        if (whole > len - in) {
            return len; /* malformed: leave it alone */
        }
        bool drop = memcmp(buf + in, "EXIF", 4) == 0 ||
                    memcmp(buf + in, "XMP ", 4) == 0;
        if (!drop) {
            if (memcmp(buf + in, "VP8X", 4) == 0 && size >= 1) {
                buf[in + 8] &= (unsigned char)~(0x08 | 0x04);
            }
            memmove(buf + out, buf + in, whole);
            out += whole;
        }
        in += whole;
    }
    encode_put_le32(buf + 4, (uint32_t)(out - 8));
    return out;
}

static int
encode_webp(VipsImage *im, int quality, VipsTarget *target)
{
    void *buf = NULL;
    size_t len = 0;
    if (vips_webpsave_buffer(im, &buf, &len, "Q", quality, "strip", TRUE,
                             NULL) != 0) {
        return -1;
    }
    len = encode_webp_strip(buf, len);
    return encode_write(target, buf, len);
}

/* TIFF is encoded in memory, then written in one go: libtiff seeks back
 * to patch its header, and libvips 8.14 saving TIFF to a target that
 * cannot seek (a remote upload) writes a broken file and reports success.
 * Through memory every backend gets a whole file, in order. */
static int
encode_tiff(VipsImage *im, VipsTarget *target)
{
    void *buf = NULL;
    size_t len = 0;
    if (vips_tiffsave_buffer(im, &buf, &len, "strip", TRUE, NULL) != 0) {
        return -1;
    }
    return encode_write(target, buf, len);
}

/* Whether any frame of a GIF declares a transparent colour (a Graphic
 * Control Extension with its transparency flag); with `clear`, removes the
 * flag from each. Walks the blocks the file is made of; a file it cannot
 * walk (libvips wrote it, so that would be a libvips fault) answers false
 * and is left as it is. */
static bool
encode_gif_transparency(unsigned char *buf, size_t len, bool clear)
{
    if (len < 13 || memcmp(buf, "GIF8", 4) != 0) {
        return false;
    }
    size_t at = 13;
    if (buf[10] & 0x80) {
        at += 3u << ((buf[10] & 7) + 1); /* the global colour table */
    }
    bool found = false;
    while (at < len) {
        unsigned char kind = buf[at];
        if (kind == 0x3B) { /* trailer */
            return found;
        }
        if (kind == 0x21) { /* extension: label, then sub-blocks */
            if (at + 1 >= len) {
                return false;
            }
            if (buf[at + 1] == 0xF9 && at + 6 < len && buf[at + 2] == 4 &&
                (buf[at + 3] & 1)) {
                found = true;
                if (clear) {
                    buf[at + 3] &= (unsigned char)~1;
                }
            }
            at += 2;
        } else if (kind == 0x2C) { /* image: descriptor, table, LZW size */
            if (at + 10 >= len) {
                return false;
            }
            unsigned char packed = buf[at + 9];
            at += 10;
            if (packed & 0x80) {
                at += 3u << ((packed & 7) + 1);
            }
            at += 1;
        } else {
            return false;
        }
        /* Sub-blocks: a length byte, that many bytes, up to a 0. */
        while (at < len && buf[at] != 0) {
            at += 1 + (size_t)buf[at];
        }
        at += 1;
    }
    return false;
}

/* libvips quantises with libimagequant, whose palette for an opaque
 * image may still hold a transparent entry (2.17 made one for a dark RGB
 * image); dithering can then send a pixel to it, and an opaque image
 * comes back with a hole (found by the chain property tests:
 * tests/chains/regressions/gif-opaque-dark.json). For an image without
 * alpha whose GIF declares transparency, the GIF is made again without
 * dithering, where every pixel takes its nearest entry and so never the
 * transparent one, and the declaration is removed. */
static int
encode_gif(VipsImage *im, VipsTarget *target)
{
    /* The saver holds the whole frame anyway (4 bytes a pixel, twice); a
     * copy in memory lets it run a second time without computing the
     * chain, or reading a streamed source, again. */
    VipsImage *mem = vips_image_copy_memory(im);
    if (mem == NULL) {
        return -1;
    }
    void *buf = NULL;
    size_t len = 0;
    int rc = vips_gifsave_buffer(mem, &buf, &len, "strip", TRUE, NULL);
    if (rc == 0 && !vips_image_hasalpha(mem) &&
        encode_gif_transparency(buf, len, false)) {
        g_free(buf);
        buf = NULL;
        rc = vips_gifsave_buffer(mem, &buf, &len, "strip", TRUE, "dither", 0.0,
                                 NULL);
        if (rc == 0) {
            (void)encode_gif_transparency(buf, len, true);
        }
    }
    g_object_unref(mem);
    return rc == 0 ? encode_write(target, buf, len) : -1;
}

typedef struct encode_jpeg_error {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
} encode_jpeg_error;

static void
encode_jpeg_error_exit(j_common_ptr c)
{
    encode_jpeg_error *e = (encode_jpeg_error *)c->err;
    char msg[JMSG_LENGTH_MAX];
    c->err->format_message(c, msg);
    vips_error("jpegsave", "%s", msg);
    longjmp(e->jump, 1);
}

static void
encode_jpeg_output_message(j_common_ptr c)
{
    (void)c;
}

bool
encode_jpeg_direct_ok(VipsImage *im)
{
    return (im->dtype == VIPS_IMAGE_SETBUF ||
            im->dtype == VIPS_IMAGE_SETBUF_FOREIGN) &&
           im->data != NULL && im->Coding == VIPS_CODING_NONE &&
           im->BandFmt == VIPS_FORMAT_UCHAR && im->Bands == 3 &&
           im->Type == VIPS_INTERPRETATION_sRGB;
}

/* A JPEG of an 8-bit RGB image in memory, by libjpeg directly, as
 * vips_jpegsave() with strip makes it, byte for byte: libjpeg's defaults
 * and quality scaling with baseline tables, no JFIF or other marker,
 * 4:2:0 chroma below quality 90 and 4:4:4 from 90 (libvips' "auto").
 * libvips' saver runs a thread pool and a write-behind thread even for an
 * image in memory; waking them cost a thumbnail batch a fifth of its
 * wall time on two busy cores. tests/unit/test_encode.c checks the bytes
 * against vips_jpegsave over random images and every quality. */
int
encode_jpeg_direct(VipsImage *im, int q, VipsTarget *target)
{
    /* On the heap: libjpeg's output buffer and its length change between
     * setjmp and a longjmp, and are read after it. */
    struct encode_jpeg_run {
        struct jpeg_compress_struct c;
        encode_jpeg_error e;
        unsigned char *out;
        unsigned long len;
    } *run = calloc(1, sizeof *run);
    if (run == NULL) {
        vips_error("jpegsave", "out of memory");
        return -1;
    }
    struct jpeg_compress_struct *c = &run->c;
    c->err = jpeg_std_error(&run->e.pub);
    run->e.pub.error_exit = encode_jpeg_error_exit;
    run->e.pub.output_message = encode_jpeg_output_message;
    if (setjmp(run->e.jump) != 0) {
        jpeg_destroy_compress(c);
        free(run->out);
        free(run);
        return -1;
    }
    jpeg_create_compress(c);
    jpeg_mem_dest(c, &run->out, &run->len);
    c->image_width = (JDIMENSION)im->Xsize;
    c->image_height = (JDIMENSION)im->Ysize;
    c->input_components = 3;
    c->in_color_space = JCS_RGB;
    jpeg_set_defaults(c);
    jpeg_set_quality(c, q, TRUE);
    c->write_JFIF_header = FALSE;
    c->write_Adobe_marker = FALSE;
    if (q >= 90) {
        c->comp_info[0].h_samp_factor = 1;
        c->comp_info[0].v_samp_factor = 1;
    }
    jpeg_start_compress(c, TRUE);
    size_t row = (size_t)im->Xsize * 3;
    while (c->next_scanline < c->image_height) {
        JSAMPROW r = (JSAMPROW)(im->data + (size_t)c->next_scanline * row);
        jpeg_write_scanlines(c, &r, 1);
    }
    jpeg_finish_compress(c);
    jpeg_destroy_compress(c);
    int rc = vips_target_write(target, run->out, run->len);
    free(run->out);
    free(run);
    if (rc == 0) {
        rc = vips_target_end(target);
    }
    return rc;
}

/* HEIC through libheif and x265: when x265 refuses a shape, libheif
 * 1.15 still writes a container, without the image, and says nothing
 * (bind refuses the shapes measured so: graph_format_narrow_max). So the
 * file is made in memory and its header read back before it is written:
 * a file that does not open fails the job instead of being stored. */
static int
encode_heic(VipsImage *im, int q, VipsTarget *target)
{
    void *buf = NULL;
    size_t len = 0;
    if (vips_heifsave_buffer(im, &buf, &len, "Q", q, "compression",
                             VIPS_FOREIGN_HEIF_COMPRESSION_HEVC, "strip", TRUE,
                             NULL) != 0) {
        return -1;
    }
    VipsImage *back = vips_image_new_from_buffer(buf, len, "", "access",
                                                 VIPS_ACCESS_SEQUENTIAL, NULL);
    bool whole =
        back != NULL && back->Xsize == im->Xsize && back->Ysize == im->Ysize;
    if (back != NULL) {
        g_object_unref(back);
    }
    if (!whole) {
        g_free(buf);
        vips_error_clear();
        vips_error("heicsave",
                   "the HEVC encoder did not encode this %dx%d image (a "
                   "shape it refuses); AVIF, WebP and PNG hold it",
                   im->Xsize, im->Ysize);
        return -1;
    }
    return encode_write(target, buf, len);
}

int
encode_save(VipsImage *im, graph_format f, int quality, VipsTarget *target)
{
    /* The contract's quality 0 is the encoders' lowest, 1. */
    int q = quality < 1 ? 1 : quality;
    switch (f) {
    case FORMAT_JPEG:
        if (encode_jpeg_direct_ok(im)) {
            return encode_jpeg_direct(im, q, target);
        }
        return vips_jpegsave_target(im, target, "Q", q, "strip", TRUE, NULL);
    case FORMAT_PNG:
        return vips_pngsave_target(im, target, "strip", TRUE, NULL);
    case FORMAT_WEBP:
        return encode_webp(im, quality, target);
    case FORMAT_GIF:
        return encode_gif(im, target);
    case FORMAT_TIFF:
        return encode_tiff(im, target);
    case FORMAT_AVIF:
        return vips_heifsave_target(im, target, "Q", q, "compression",
                                    VIPS_FOREIGN_HEIF_COMPRESSION_AV1, "strip",
                                    TRUE, NULL);
    case FORMAT_HEIC:
        return encode_heic(im, q, target);
    }
    return -1;
}

int
encode_prepare(VipsImage *in, graph_format f, const double background[3],
               VipsImage **out, kiln_error *err)
{
    if (graph_format_has_alpha(f) || !vips_image_hasalpha(in)) {
        g_object_ref(in);
        *out = in;
        return KILN_OK;
    }
    VipsArrayDouble *a = vips_array_double_new(background, 3);
    int r = vips_flatten(in, out, "background", a, NULL);
    vips_area_unref(VIPS_AREA(a));
    if (r != 0) {
        return err_set_vips(err, "flatten");
    }
    return KILN_OK;
}
