#!/usr/bin/env bash
# EXIF orientation (ops.md section 5): exif-landscape-1..8.jpg hold the same
# scene stored in the 8 orientations. A pure conversion must give 600x450
# upright outputs that match orientation 1 and `convert X.jpg -profile
# sRGB.icc -auto-orient` (colour-managed: files 2..8 embed an ICC profile);
# transformations see the upright image (a northwest crop is the same
# region whatever the stored orientation); the output carries no EXIF
# orientation any more.
cd "$(dirname "$0")/../.." || exit 1
. tests/exec/lib.sh
exec_setup
require_testdata exif-landscape-{1..8}.jpg

# Files 2..8 carry a "Generic RGB" ICC profile that file 1 lacks, and were
# encoded separately: correctly oriented, colour-managed outputs of 2..8
# are ~24-25 dB from file 1's, a wrongly mirrored/rotated one ~9-12 dB.
# Against ImageMagick's colour-managed -auto-orient of the same file
# (-profile sRGB) they are > 50 dB.
MIN_PSNR_SAME_FILE=30 MIN_PSNR_ACROSS=20
ICC=()
if [ -n "$SRGB_ICC" ]; then ICC=(-profile "$SRGB_ICC")
else skip "exif/colour-managed-reference" "no sRGB ICC profile found: comparing with an unmanaged convert at $MIN_PSNR_ACROSS dB"
     MIN_PSNR_SAME_FILE=$MIN_PSNR_ACROSS; fi
REQS=() IMARGS=()
for i in 1 2 3 4 5 6 7 8; do
    cp "$TESTDATA/exif-landscape-$i.jpg" "$ROOT/in/"
    cat >"$WORK/r$i.json" <<EOF
{"service_id": 1, "source": "/in/exif-landscape-$i.jpg", "jobs": [
 {"destination": "/out/o$i.png", "transformations": []},
 {"destination": "/out/c$i.png", "transformations": [{"type": "crop", "gravity": "northwest", "width": 200, "height": 100, "fit": false}]},
 {"destination": "/out/j$i.jpg", "quality": 90, "transformations": []}]}
EOF
    REQS+=("$WORK/r$i.json")
    IMARGS+=("$ROOT/in/exif-landscape-$i.jpg" "${ICC[@]}" -auto-orient -write "$WORK/im$i.png" +delete)
done
unset 'IMARGS[${#IMARGS[@]}-1]'     # the last +delete: null: needs an image
convert "${IMARGS[@]}" null: 2>"$WORK/im.err" || fail "exif/imagemagick" "$(head -c 300 "$WORK/im.err")"

run_kiln exif "${REQS[@]}"
check "exif/exit-status" "kiln run exited $RUN_RC although every job is valid" [ "$RUN_RC" = 0 ]

files=()
for i in 1 2 3 4 5 6 7 8; do files+=("$ROOT/out/o$i.png" "$ROOT/out/c$i.png" "$ROOT/out/j$i.jpg"); done
identify_all "${files[@]}"
declare -A ORIENT
while IFS='=' read -r f o; do ORIENT[$f]=$o; done < <(
    for i in 1 2 3 4 5 6 7 8; do [ -f "$ROOT/out/j$i.jpg" ] && echo "$ROOT/out/j$i.jpg"; done |
    xargs -r -d '\n' identify -format '%f=%[EXIF:Orientation]\n' 2>/dev/null)

for i in 1 2 3 4 5 6 7 8; do
    o=${ORIENT[j$i.jpg]:-}
    for d in /out/o$i.png /out/c$i.png /out/j$i.jpg; do
        job_finished "$d" || fail "exif/$i/finished:$d" "$REASON"
    done
    check "exif/$i/upright-600x450" "output is ${SZ[$ROOT/out/o$i.png]:-missing}, expected 600x450" \
        [ "${SZ[$ROOT/out/o$i.png]:-}" = 600x450 ]
    check "exif/$i/result-json-size" "result says ${JW[/out/o$i.png]:-}x${JH[/out/o$i.png]:-}, expected 600x450" \
        [ "${JW[/out/o$i.png]:-}x${JH[/out/o$i.png]:-}" = 600x450 ]
    check "exif/$i/jpeg-upright-600x450" "output is ${SZ[$ROOT/out/j$i.jpg]:-missing}" [ "${SZ[$ROOT/out/j$i.jpg]:-}" = 600x450 ]
    check "exif/$i/jpeg-no-orientation-tag" "the JPEG output still says EXIF Orientation=$o" [ -z "$o" ] || [ "$o" = 1 ]
    [ -f "$ROOT/out/o$i.png" ] || continue
    if psnr_ge "$ROOT/out/o$i.png" "$WORK/im$i.png" $MIN_PSNR_SAME_FILE; then ok "exif/$i/matches-convert-auto-orient"
    else fail "exif/$i/matches-convert-auto-orient" "PSNR against convert ${ICC[*]} -auto-orient is $PSNR_VALUE dB (< $MIN_PSNR_SAME_FILE)"; fi
    [ "$i" = 1 ] && continue
    if psnr_ge "$ROOT/out/o$i.png" "$ROOT/out/o1.png" $MIN_PSNR_ACROSS; then ok "exif/$i/matches-orientation-1"
    else fail "exif/$i/matches-orientation-1" "PSNR against orientation 1's output is $PSNR_VALUE dB (< $MIN_PSNR_ACROSS)"; fi
    PSNR_VALUE=""
    if [ "${SZ[$ROOT/out/c$i.png]:-}" = 200x100 ] && psnr_ge "$ROOT/out/c$i.png" "$ROOT/out/c1.png" $MIN_PSNR_ACROSS; then
        ok "exif/$i/crop-northwest-sees-upright-image"
    else
        fail "exif/$i/crop-northwest-sees-upright-image" "crop is ${SZ[$ROOT/out/c$i.png]:-missing}, PSNR against orientation 1's crop ${PSNR_VALUE:-?} dB"
    fi
done
finish
