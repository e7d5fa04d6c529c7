#!/usr/bin/env bash
# Source formats (docs/ops.md section 6): kiln reads JPEG, PNG, WebP, GIF,
# TIFF, AVIF and HEIC, decided from the content whatever the name says.
# Every other format libvips could read (PDF, SVG, ImageMagick's PSD and
# BMP, FITS, matrix, PPM, ...) fails the job, as source or as watermark,
# with a message naming the format found; a real image under another
# format's name is read. Issue 12: before, all of these finished.
cd "$(dirname "$0")/../.." || exit 1
. tests/exec/lib.sh
exec_setup

IN=$ROOT/in
vips black "$WORK/b.v" 24 16 --bands 3 &&
    vips linear "$WORK/b.v" "$WORK/c.v" "1 1 1" "200 40 90" --uchar &&
    vips copy "$WORK/c.v" "$IN/real.png" && vips copy "$WORK/c.v" "$IN/real.jpg" ||
    { fail "$T_NAME/setup" "cannot make the samples"; finish; }
cp "$IN/real.png" "$IN/png-named.jpg"
cp "$IN/real.jpg" "$IN/jpeg-named.png"
# Formats kiln refuses, each under a name kiln would accept.
convert "$IN/real.png" "psd:$IN/psd.jpg"
convert "$IN/real.png" "bmp:$IN/bmp.png"
convert "$IN/real.png" "ppm:$IN/ppm.jpg"
convert "$IN/real.png" "pcx:$IN/pcx.jpg"
convert "$IN/real.png" "dpx:$IN/dpx.png"
printf '2 2\n1 2\n3 4\n' >"$IN/matrix.jpg"
printf '%%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 20 20]>>endobj\ntrailer<</Root 1 0 R>>\n%%%%EOF\n' >"$IN/pdf.jpg"
printf '<svg xmlns="http://www.w3.org/2000/svg" width="20" height="20"><rect width="20" height="20"/></svg>' >"$IN/svg.png"
printf '<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="20" height="20"/>' >"$IN/svgxml.webp"
printf 'not an image at all\n' >"$IN/text.gif"

ALLOWED="sources are JPEG, PNG, WebP, GIF, TIFF, AVIF or HEIC"
# name FILE WHAT: a request with FILE as source, and one with FILE as a
# watermark on a real source; both fail, naming WHAT.
refused() {
    local f=$1 what=$2 out err
    cat >"$WORK/s-$f.json" <<JSON
{"service_id": 1, "source": "/in/$f", "jobs": [{"destination": "/out/s-$f.png",
  "transformations": [{"type": "flip", "direction": "x"}]}]}
JSON
    cat >"$WORK/w-$f.json" <<JSON
{"service_id": 1, "source": "/in/real.png", "jobs": [{"destination": "/out/w-$f.png",
  "transformations": [{"type": "watermark", "source": "/in/$f", "gravity": "center", "width": 8}]}]}
JSON
    "$KILN" run --storage-root "$ROOT" "$WORK/s-$f.json" >"$WORK/s.out" 2>"$WORK/s.err"
    out=$(jq -r '[.status, .error] | join("|")' "$WORK/s.out" 2>/dev/null)
    local is="is $what, which kiln does not read" allowed=$ALLOWED
    [ "$what" = "" ] && is="is in no image format kiln knows"
    # What the MagickCore backend reads is named as such (issue 14).
    case $what in *PSD*|*BMP*|*PPM*|*PCX*|*DPX*)
        allowed="$ALLOWED; a service with \"backend\": \"magick\" reads it" ;; esac
    want="FAILED|source: \"/in/$f\" $is ($allowed)"
    if [ "$out" = "$want" ]; then ok "$T_NAME/source/$f"; else
        fail "$T_NAME/source/$f" "got \"$out\", want \"$want\""; fi
    [ -e "$ROOT/out/s-$f.png" ] && fail "$T_NAME/source/$f/written" "an output was written"
    "$KILN" run --storage-root "$ROOT" "$WORK/w-$f.json" >"$WORK/w.out" 2>"$WORK/w.err"
    out=$(jq -r '[.jobs[0].status, .jobs[0].error] | join("|")' "$WORK/w.out" 2>/dev/null)
    want="FAILED|jobs[0].transformations[0].source: \"/in/$f\" $is ($allowed)"
    if [ "$out" = "$want" ]; then ok "$T_NAME/watermark/$f"; else
        fail "$T_NAME/watermark/$f" "got \"$out\", want \"$want\""; fi
    if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' "$WORK/s.err" "$WORK/w.err"; then
        fail "$T_NAME/$f/sanitizer" "$(grep -h -m1 -E 'AddressSanitizer|LeakSanitizer|runtime error:' "$WORK/s.err" "$WORK/w.err")"
    fi
}
refused psd.jpg "a Photoshop (PSD) file"
refused bmp.png "a BMP image"
refused ppm.jpg "a PPM/PGM/PBM/PFM image"
refused matrix.jpg "a libvips matrix file"
refused pdf.jpg "a PDF document"
refused svg.png "an SVG image"
refused svgxml.webp "an SVG image"
refused pcx.jpg "a PCX image"
refused dpx.png "a DPX image"
refused text.gif ""

# A real image is read by its content, whatever its name.
for f in png-named.jpg jpeg-named.png; do
    cat >"$WORK/r-$f.json" <<JSON
{"service_id": 1, "source": "/in/$f", "jobs": [{"destination": "/out/r-$f.png",
  "transformations": [{"type": "flip", "direction": "x"}]}]}
JSON
    "$KILN" run --storage-root "$ROOT" "$WORK/r-$f.json" >"$WORK/r.out" 2>&1
    st=$(jq -r .status "$WORK/r.out" 2>/dev/null)
    check "$T_NAME/content-not-name/$f" "status $st: $(jq -r .error "$WORK/r.out" 2>/dev/null)" \
        [ "$st" = FINISHED ]
done
finish
