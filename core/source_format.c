/*
 * Source formats: which image formats kiln reads as sources and
 * watermarks (docs/ops.md section 6), decided from the file's content,
 * never its name, and what to call a file it refuses. Only libvips'
 * in-process loaders that a libvips cancel can stop and that the project
 * tests are admitted: JPEG, PNG, WebP, GIF, TIFF and HEIF (AVIF, HEIC).
 * SVG and PDF render inside librsvg and poppler, which never return to
 * libvips until done, so a hostile one cannot be stopped (issue 12); the
 * other loaders libvips has (ImageMagick's, FITS, matrix, CSV, PPM, ...)
 * are attack surface nobody chose.
 */
#include "kiln.h"

#include <string.h>

/* libvips' loader types for the formats above (vips -l foreign). */
static const char *const source_loaders[] = {
    "VipsForeignLoadJpegSource", "VipsForeignLoadPngSource",
    "VipsForeignLoadWebpSource", "VipsForeignLoadNsgifSource",
    "VipsForeignLoadTiffSource", "VipsForeignLoadHeifSource",
};

bool
source_format_allowed(const char *loader)
{
    for (size_t i = 0; loader != NULL && i < KILN_N_ELEMENTS(source_loaders);
         i++) {
        if (strcmp(loader, source_loaders[i]) == 0) {
            return true;
        }
    }
    return false;
}

/* Names by the file's first bytes, for what the loaders kiln admits do not
 * claim; the loaders libvips would have tried are among them. */
static const struct {
    const char *magic;
    size_t len;
    const char *name;
} source_magic[] = {
    {"%PDF", 4, "a PDF document"},
    {"8BPS", 4, "a Photoshop (PSD) file"},
    {"SIMPLE  =", 9, "a FITS file"},
    {"<svg", 4, "an SVG image"},
    {"<?xml", 5, "an XML file (SVG?)"},
    {"BM", 2, "a BMP image"},
    {"\0\0\1\0", 4, "a Windows icon (ICO)"},
    {"#?RADIANCE", 10, "a Radiance HDR image"},
    {"#?RGBE", 6, "a Radiance HDR image"},
    {"\xff\x0a", 2, "a JPEG XL image"},
    {"\0\0\0\x0cJXL ", 8, "a JPEG XL image"},
    {"\0\0\0\x0cjP  ", 8, "a JPEG 2000 image"},
    {"\xff\x4f\xff\x51", 4, "a JPEG 2000 codestream"},
    {"%!PS", 4, "a PostScript file"},
    {"\x89HDF", 4, "an HDF file"},
    {"qoif", 4, "a QOI image"},
    {"P1", 2, "a PBM image"},
    {"P2", 2, "a PGM image"},
    {"P3", 2, "a PPM image"},
    {"P4", 2, "a PBM image"},
    {"P5", 2, "a PGM image"},
    {"P6", 2, "a PPM image"},
    {"PF", 2, "a PFM image"},
    {"Pf", 2, "a PFM image"},
    {"\x0a\x05\x01", 3, "a PCX image"},
    {"\x0a\x03\x01", 3, "a PCX image"},
    {"\x0a\x02\x01", 3, "a PCX image"},
    {"\x0a\x00\x01", 3, "a PCX image"},
    {"SDPX", 4, "a DPX image"},
    {"XPDS", 4, "a DPX image"},
};

/* Names by the loader libvips found, for the ones it would have used. */
static const struct {
    const char *loader;
    const char *name;
} source_loader_names[] = {
    {"VipsForeignLoadSvgSource", "an SVG image"},
    {"VipsForeignLoadPdfSource", "a PDF document"},
    {"VipsForeignLoadMatrixSource", "a libvips matrix file"},
    {"VipsForeignLoadCsvSource", "a CSV file"},
    {"VipsForeignLoadVipsSource", "a libvips .v file"},
    {"VipsForeignLoadPpmSource", "a PPM/PGM/PBM/PFM image"},
    {"VipsForeignLoadRadSource", "a Radiance HDR image"},
    {"VipsForeignLoadJp2kSource", "a JPEG 2000 image"},
    {"VipsForeignLoadJxlSource", "a JPEG XL image"},
    {"VipsForeignLoadFitsSource", "a FITS file"},
    {"VipsForeignLoadOpenslideSource", "an OpenSlide slide"},
};

const char *
source_format_vector(VipsSource *src, const char *loader,
                     const config_vector *v)
{
    if (v == NULL || (!v->svg && !v->pdf)) {
        return NULL;
    }
    if (v->svg && loader != NULL &&
        strcmp(loader, "VipsForeignLoadSvgSource") == 0) {
        return "svg";
    }
    /* libvips' PDF loader is a module that kiln does not open in its own
     * process (vips_modules.c): a PDF is told by its first bytes. */
    if (v->pdf) {
        unsigned char *head = NULL;
        gint64 n = vips_source_sniff_at_most(src, &head, 5);
        if (n == 5 && memcmp(head, "%PDF-", 5) == 0) {
            return "pdf";
        }
        vips_error_clear();
    }
    return NULL;
}

void
source_format_describe(VipsSource *src, const char *loader, char *buf,
                       size_t size)
{
    for (size_t i = 0;
         loader != NULL && i < KILN_N_ELEMENTS(source_loader_names); i++) {
        if (strcmp(loader, source_loader_names[i].loader) == 0) {
            snprintf(buf, size, "%s", source_loader_names[i].name);
            return;
        }
    }
    unsigned char *head = NULL;
    gint64 n = vips_source_sniff_at_most(src, &head, 16);
    if (n > 0 && head != NULL) {
        for (size_t i = 0; i < KILN_N_ELEMENTS(source_magic); i++) {
            if ((size_t)n >= source_magic[i].len &&
                memcmp(head, source_magic[i].magic, source_magic[i].len) == 0) {
                snprintf(buf, size, "%s", source_magic[i].name);
                return;
            }
        }
    }
    vips_error_clear();
    if (loader != NULL) {
        snprintf(buf, size, "a file libvips reads with %s", loader);
    } else {
        buf[0] = '\0'; /* no format kiln knows */
    }
}
