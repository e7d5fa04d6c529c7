#!/usr/bin/env bash
# Encoding (ops.md section 5): every destination extension, alpha handling,
# background, quality and metadata.
#  - one RGBA source (64x48, red at alpha 0.5) written as .jpg .jpeg .png
#    .webp .gif .tif .tiff .avif .heic: every job FINISHED, `format` and
#    `bytes` in the result match the file, the file really is that format
#    and 64x48; JPEG: 3 bands, flattened onto white (255,128,128) or the
#    job's background (#000000 -> 128,0,0); formats with alpha keep it;
#  - quality on a photo-like source: JPEG, WebP, AVIF and HEIC files grow
#    with quality; a numeric string equals the number; PNG ignores it;
#  - metadata: no EXIF, XMP, comment, or sRGB ICC profile in any output.
cd "$(dirname "$0")/../.." || exit 1
. tests/exec/lib.sh
exec_setup

convert -size 64x48 xc:'rgba(255,0,0,0.5)' PNG32:"$ROOT/in/rgba.png"
ICC=()
[ -n "$SRGB_ICC" ] && ICC=(-profile "$SRGB_ICC")
convert rose: -resize 97x61! "${ICC[@]}" -set comment kiln-secret-comment PNG24:"$ROOT/in/rose.png"
p=$(probe "$ROOT/in/rgba.png" 0,0 | tail -n 1)
near "$p" "255 0 0 128" 1 || fail "encode/fixture" "rgba.png pixel is $p"

EXTS="jpg jpeg png webp gif tif tiff avif heic"
declare -A FORMAT=([jpg]=jpeg [jpeg]=jpeg [png]=png [webp]=webp [gif]=gif [tif]=tiff [tiff]=tiff [avif]=avif [heic]=heic)
declare -A LOADER=([jpg]=jpegload [jpeg]=jpegload [png]=pngload [webp]=webpload [gif]=gifload [tif]=tiffload [tiff]=tiffload [avif]=heifload [heic]=heifload)
jobs=""
for e in $EXTS; do jobs="$jobs{\"destination\":\"/out/o.$e\",\"transformations\":[]},"; done
jobs="$jobs{\"destination\":\"/out/bg-black.jpg\",\"background\":\"#000000\",\"transformations\":[]},"
jobs="$jobs{\"destination\":\"/out/bg-green.jpg\",\"background\":\"#00ff00\",\"transformations\":[]},"
jobs="$jobs{\"destination\":\"/out/bg-black.png\",\"background\":\"#000000\",\"transformations\":[]}"
echo "{\"service_id\":1,\"source\":\"/in/rgba.png\",\"jobs\":[$jobs]}" >"$WORK/rgba.json"

QJOBS=(q10.jpg:10 q50.jpg:50 q90.jpg:90 q90s.jpg:'"90"' qdef.jpg: q0.jpg:0 q100.jpg:100
       q10.webp:10 q90.webp:90 q10.avif:10 q90.avif:90 q10.heic:10 q90.heic:90 q10.png:10 q90.png:90
       m.jpg: m.png: m.webp: m.tif: m.gif: m.avif: m.heic:)
jobs=""
for j in "${QJOBS[@]}"; do
    d=${j%%:*} q=${j#*:}
    jobs="$jobs{\"destination\":\"/out/$d\",${q:+\"quality\":$q,}\"transformations\":[]},"
done
echo "{\"service_id\":1,\"source\":\"/in/rose.png\",\"jobs\":[${jobs%,}]}" >"$WORK/rose.json"

run_kiln enc "$WORK/rgba.json" "$WORK/rose.json"
check "encode/exit-status" "kiln run exited $RUN_RC although every job is valid" [ "$RUN_RC" = 0 ]

all=()
for e in $EXTS; do all+=("$ROOT/out/o.$e"); done
all+=("$ROOT/out/bg-black.jpg" "$ROOT/out/bg-green.jpg" "$ROOT/out/bg-black.png")
for j in "${QJOBS[@]}"; do all+=("$ROOT/out/${j%%:*}"); done
vheader "${all[@]}" 2>/dev/null
declare -A FSIZE
while read -r f s; do FSIZE[$f]=$s; done < <(for f in "${all[@]}"; do [ -f "$f" ] && echo "$f"; done | xargs -r -d '\n' stat -c '%n %s')

# ------------------------------------------------ every format, RGBA source
for e in $EXTS; do
    d=/out/o.$e f=$ROOT/out/o.$e n=encode/$e
    if ! job_finished "$d"; then fail "$n/finished" "$REASON"; continue; fi
    ok "$n/finished"
    check "$n/result-format" "result says \"${JFMT[$d]}\", expected \"${FORMAT[$e]}\"" [ "${JFMT[$d]}" = "${FORMAT[$e]}" ]
    check "$n/result-bytes=file-size" "result says ${JB[$d]} bytes, the file has ${FSIZE[$f]:-?}" [ "${JB[$d]}" = "${FSIZE[$f]:-}" ]
    check "$n/result-size" "result says ${JW[$d]}x${JH[$d]}" [ "${JW[$d]}x${JH[$d]}" = 64x48 ]
    check "$n/readable-as-${LOADER[$e]}" "vipsheader: loader ${VLOADER[$f]:-unreadable}" [ "${VLOADER[$f]:-}" = "${LOADER[$e]}" ]
    check "$n/file-size-64x48" "file is ${VSIZE[$f]:-?}" [ "${VSIZE[$f]:-}" = 64x48 ]
    check "$n/8-bit" "format ${VFMT[$f]:-?}" [ "${VFMT[$f]:-}" = uchar ]
done
for e in avif heic; do
    f=$ROOT/out/o.$e
    [ -f "$f" ] || continue
    brand=$(head -c 16 "$f" | tr -d '\0' | grep -ao 'ftyp....' | cut -c5-)
    case $e in avif) re='^avi[fs]$' ;; heic) re='^(heic|heix|mif1|heim|heis)$' ;; esac
    check "encode/$e/ftyp-brand" "ftyp major brand is \"$brand\"" grep -qE "$re" <<<"$brand"
done

# pixels: centre of each output
declare -A PIX
for f in o.jpg o.jpeg o.png o.webp o.tif o.tiff bg-black.jpg bg-green.jpg bg-black.png; do
    [ -f "$ROOT/out/$f" ] && PIX[$f]=$(probe "$ROOT/out/$f" 32,24 | tail -n 1)
done
# ImageMagick 6 misreads AVIF/HEIC colours here: read those with libvips
for f in o.avif o.heic; do
    [ -f "$ROOT/out/$f" ] && PIX[$f]=$(pixel "$ROOT/out/$f" 32 24)
done
check "encode/jpg/3-bands" "${VBANDS[$ROOT/out/o.jpg]:-?} bands" [ "${VBANDS[$ROOT/out/o.jpg]:-}" = 3 ]
check "encode/jpg/flattened-on-white" "pixel ${PIX[o.jpg]:-none}, expected 255 128 128 (+-3)" near "${PIX[o.jpg]:-}" "255 128 128 255" 3
check "encode/jpeg/flattened-on-white" "pixel ${PIX[o.jpeg]:-none}, expected 255 128 128 (+-3)" near "${PIX[o.jpeg]:-}" "255 128 128 255" 3
check "encode/jpg/background-000000" "pixel ${PIX[bg-black.jpg]:-none}, expected 128 0 0 (+-3)" near "${PIX[bg-black.jpg]:-}" "128 0 0 255" 3
check "encode/jpg/background-00ff00" "pixel ${PIX[bg-green.jpg]:-none}, expected 128 128 0 (+-3)" near "${PIX[bg-green.jpg]:-}" "128 128 0 255" 3
check "encode/png/keeps-alpha" "${VBANDS[$ROOT/out/o.png]:-?} bands, pixel ${PIX[o.png]:-none}, expected 255 0 0 128 (+-1)" \
    near "${VBANDS[$ROOT/out/o.png]:-} ${PIX[o.png]:-}" "4 255 0 0 128" 1
check "encode/png/background-ignored-with-alpha" "pixel ${PIX[bg-black.png]:-none}, expected 255 0 0 128 (PNG keeps alpha)" \
    near "${PIX[bg-black.png]:-}" "255 0 0 128" 1
for e in tif tiff; do
    check "encode/$e/keeps-alpha" "${VBANDS[$ROOT/out/o.$e]:-?} bands, pixel ${PIX[o.$e]:-none}, expected 255 0 0 128 (+-1)" \
        near "${VBANDS[$ROOT/out/o.$e]:-} ${PIX[o.$e]:-}" "4 255 0 0 128" 1
done
for e in webp avif heic; do
    check "encode/$e/keeps-alpha" "${VBANDS[$ROOT/out/o.$e]:-?} bands, pixel ${PIX[o.$e]:-none}, expected ~255 0 0 128" \
        near "${VBANDS[$ROOT/out/o.$e]:-} ${PIX[o.$e]:-}" "4 255 0 0 128" 6
done

# ------------------------------------------------ quality
sz() { echo "${FSIZE[$ROOT/out/$1]:-0}"; }
for j in "${QJOBS[@]}"; do
    d=/out/${j%%:*}
    job_finished "$d" || fail "encode/quality/finished:${d#/out/}" "$REASON"
done
msg="sizes q10 $(sz q10.jpg) q50 $(sz q50.jpg) q70(default) $(sz qdef.jpg) q90 $(sz q90.jpg) q100 $(sz q100.jpg)"
if [ "$(sz q10.jpg)" -gt 0 ] && [ "$(sz q10.jpg)" -lt "$(sz q50.jpg)" ] && [ "$(sz q50.jpg)" -lt "$(sz qdef.jpg)" ] &&
   [ "$(sz qdef.jpg)" -lt "$(sz q90.jpg)" ] && [ "$(sz q90.jpg)" -lt "$(sz q100.jpg)" ]
then ok "encode/quality/jpg-grows"; else fail "encode/quality/jpg-grows" "$msg"; fi
# quality 0 is the lowest setting, not "unset"
if [ "$(sz q0.jpg)" -gt 0 ] && [ "$(sz q0.jpg)" -le "$(sz q10.jpg)" ]; then ok "encode/quality/jpg-0-is-lowest"
else fail "encode/quality/jpg-0-is-lowest" "quality 0 gave $(sz q0.jpg) bytes, more than quality 10 ($(sz q10.jpg)); IJG quality estimate of the file: $(identify -format %Q "$ROOT/out/q0.jpg" 2>/dev/null)"; fi
check "encode/quality/numeric-string" "quality \"90\" gave a different file from 90" cmp -s "$ROOT/out/q90.jpg" "$ROOT/out/q90s.jpg"
for e in webp avif heic; do
    if [ "$(sz q10.$e)" -gt 0 ] && [ "$(sz q10.$e)" -lt "$(sz q90.$e)" ]; then ok "encode/quality/$e-grows"
    else fail "encode/quality/$e-grows" "q10 $(sz q10.$e) bytes, q90 $(sz q90.$e) bytes"; fi
done
check "encode/quality/png-ignores-it" "q10 and q90 PNGs differ ($(sz q10.png) / $(sz q90.png) bytes)" cmp -s "$ROOT/out/q10.png" "$ROOT/out/q90.png"

# ------------------------------------------------ metadata
# the source has a comment and (when available) an sRGB ICC profile
meta=$(vipsheader -a "$ROOT/in/rose.png" 2>/dev/null | grep -ciE 'icc-profile-data')
[ -n "$SRGB_ICC" ] && [ "$meta" = 0 ] && fail "encode/fixture" "rose.png lacks its ICC profile"
for m in m.jpg m.png m.webp m.tif m.gif m.avif m.heic; do
    f=$ROOT/out/$m
    [ -f "$f" ] || { fail "encode/metadata/$m" "missing output"; continue; }
    found=$(vipsheader -a "$f" 2>/dev/null | grep -oiE '^(exif-data|xmp-data|iptc-data|icc-profile-data|png-comment[^:]*|jpeg-comment[^:]*|gif-comment[^:]*|comment)' | sort -u | tr '\n' ' ')
    grep -aq kiln-secret-comment "$f" && found="$found source-comment-text"
    check "encode/metadata/stripped:$m" "output carries: $found" [ -z "$found" ]
done
finish
