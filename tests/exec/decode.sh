#!/usr/bin/env bash
# Decoding (ops.md section 5), with the real files of $SHARED/testdata:
#  - cmyk.jpg -> 8-bit sRGB, 3 bands, close to ImageMagick's colour-managed
#    conversion (the file embeds a SWOP CMYK profile);
#  - 16-bit sample.png / sample.tif -> 8-bit outputs (PNG and TIFF), close
#    to ImageMagick's 8-bit conversion;
#  - indexed.png, cogs.gif, sample.webp, gray.jpg, rgba.png, sample.jpg:
#    pure conversion and a resize finish, with the right sizes; pure
#    conversions equal ImageMagick's decode; alpha is kept;
#  - truncated.jpg: every job FAILED with an error that names the source,
#    exit status non-zero, no output (nor temporary file) written;
#  - a source that does not exist: FAILED, "not found", nothing written.
cd "$(dirname "$0")/../.." || exit 1
. tests/exec/lib.sh
exec_setup
FILES="cmyk.jpg sample.png sample.tif indexed.png cogs.gif sample.webp gray.jpg rgba.png sample.jpg"
require_testdata $FILES truncated.jpg

REQS=() IMARGS=()
for f in $FILES; do
    cp "$TESTDATA/$f" "$ROOT/in/"
    cat >"$WORK/$f.json" <<EOF
{"service_id": 1, "source": "/in/$f", "jobs": [
 {"destination": "/out/$f.png", "transformations": []},
 {"destination": "/out/$f.tif", "transformations": []},
 {"destination": "/out/$f.r.png", "transformations": [{"type": "resize", "width": 50}]},
 {"destination": "/out/$f.r.jpg", "transformations": [{"type": "resize", "width": 50}]}]}
EOF
    REQS+=("$WORK/$f.json")
    case $f in
        cmyk.jpg) if [ -n "$SRGB_ICC" ]; then IMARGS+=("$ROOT/in/$f" -profile "$SRGB_ICC")
                  else IMARGS+=("$ROOT/in/$f" -colorspace sRGB); fi ;;
        *) IMARGS+=("$ROOT/in/$f[0]" -depth 8) ;;
    esac
    IMARGS+=(-write "$WORK/im-$f.png" +delete)
done
unset 'IMARGS[${#IMARGS[@]}-1]'
convert "${IMARGS[@]}" null: 2>"$WORK/im.err" || fail "decode/imagemagick" "$(head -c 300 "$WORK/im.err")"

run_kiln good "${REQS[@]}"
check "decode/exit-status" "kiln run exited $RUN_RC although every source is valid" [ "$RUN_RC" = 0 ]

# source sizes, the outputs' header fields: one vipsheader run per field
files=()
for f in $FILES; do files+=("$ROOT/out/$f.png" "$ROOT/out/$f.tif" "$ROOT/out/$f.r.png" "$ROOT/out/$f.r.jpg"); done
vheader "${files[@]}"
identify_all "${files[@]}"
declare -A SRC
while IFS='|' read -r x w h; do SRC[$x]="$w $h"; done < <(identify -format '%f|%w|%h\n' $(for f in $FILES; do echo "$ROOT/in/$f[0]"; done) 2>/dev/null)

for f in $FILES; do
    read -r sw sh <<<"${SRC[$f]:-0 0}"
    rh=$(( (50 * sh * 2 + sw) / (2 * sw) ))      # round(50 * h / w), halves up (all positive)
    for d in /out/$f.png /out/$f.tif /out/$f.r.png /out/$f.r.jpg; do
        x=$ROOT$d
        if ! job_finished "$d"; then fail "decode/$f/finished:${d#/out/}" "$REASON"; continue; fi
        case $d in *.r.*) want=50x$rh ;; *) want=${sw}x$sh ;; esac
        check "decode/$f/size:${d#/out/}" "${SZ[$x]:-?}, expected $want" [ "${SZ[$x]:-}" = "$want" ]
        check "decode/$f/8-bit:${d#/out/}" "format ${VFMT[$x]:-?}, expected uchar" [ "${VFMT[$x]:-}" = uchar ]
    done
    x=$ROOT/out/$f.png
    [ -f "$x" ] || continue
    case $f in
        cmyk.jpg)
            check "decode/$f/srgb-3-bands" "${VBANDS[$x]:-?} bands, ${VINTERP[$x]:-?}" \
                [ "${VBANDS[$x]:-}/${VINTERP[$x]:-}" = 3/srgb ]
            if [ -n "$SRGB_ICC" ]; then min=25; else min=18; fi
            if psnr_ge "$x" "$WORK/im-$f.png" $min; then ok "decode/$f/close-to-convert-sRGB"
            else fail "decode/$f/close-to-convert-sRGB" "PSNR $PSNR_VALUE dB against ImageMagick's sRGB conversion (< $min)"; fi ;;
        sample.png|sample.tif)
            if psnr_ge "$x" "$WORK/im-$f.png" 40; then ok "decode/$f/close-to-convert-depth-8"
            else fail "decode/$f/close-to-convert-depth-8" "PSNR $PSNR_VALUE dB against convert -depth 8 (< 40)"; fi ;;
        *)
            # JPEG decoders differ a little (IDCT, chroma upsampling)
            case $f in *.jpg) min=35 ;; *) min=40 ;; esac
            if psnr_ge "$x" "$WORK/im-$f.png" $min; then ok "decode/$f/same-as-convert-decode"
            else fail "decode/$f/same-as-convert-decode" "PSNR $PSNR_VALUE dB against ImageMagick's decode (< $min)"; fi ;;
    esac
    case $f in
        rgba.png|cogs.gif)
            check "decode/$f/keeps-alpha" "output has ${VBANDS[$x]:-?} bands, expected 4" [ "${VBANDS[$x]:-}" = 4 ]
            check "decode/$f/keeps-alpha-resized" "output has ${VBANDS[$ROOT/out/$f.r.png]:-?} bands, expected 4" \
                [ "${VBANDS[$ROOT/out/$f.r.png]:-}" = 4 ] ;;
    esac
    check "decode/$f/jpeg-3-bands" "JPEG output has ${VBANDS[$ROOT/out/$f.r.jpg]:-?} bands" \
        [ "${VBANDS[$ROOT/out/$f.r.jpg]:-}" = 3 ] || [ "${VBANDS[$ROOT/out/$f.r.jpg]:-}" = 1 ]
done

# ------------------------------------------------------------ damaged source
cp "$TESTDATA/truncated.jpg" "$ROOT/in/"
mkdir -p "$ROOT/out/bad"
cat >"$WORK/truncated.json" <<'EOF'
{"service_id": 1, "source": "/in/truncated.jpg", "jobs": [
 {"destination": "/out/bad/t.png", "transformations": []},
 {"destination": "/out/bad/t.r.jpg", "transformations": [{"type": "resize", "width": 50}]},
 {"destination": "/out/bad/t.f.png", "transformations": [{"type": "flip", "direction": "x"}]}]}
EOF
jq '.fail_on_conversion_error = false' "$WORK/truncated.json" >"$WORK/truncated-nofail.json"
run_kiln truncated "$WORK/truncated.json"
check "decode/truncated/exit-status" "kiln run exited 0 for a damaged source" [ "$RUN_RC" != 0 ]
check "decode/truncated/request-failed" "request status ${RST[$WORK/truncated.json]:-none}" [ "${RST[$WORK/truncated.json]:-}" = FAILED ]
left=$(find "$ROOT/out/bad" -mindepth 1 -printf '%f ')
check "decode/truncated/nothing-written" "files left in the destination directory: $left" [ -z "$left" ]
# fail_on_conversion_error false: each job reports its own error, and still
# no partial image is written
run_kiln truncated-nofail "$WORK/truncated-nofail.json"
check "decode/truncated-nofail/exit-status" "kiln run exited 0 for a damaged source" [ "$RUN_RC" != 0 ]
for d in /out/bad/t.png /out/bad/t.r.jpg /out/bad/t.f.png; do
    check "decode/truncated-nofail/job-failed:${d##*/}" "job is ${JST[$d]:-missing}" [ "${JST[$d]:-}" = FAILED ]
    e=${JERR[$d]:-}
    check "decode/truncated-nofail/error-names-source:${d##*/}" "error does not mention the source: \"$e\"" \
        grep -qiE 'source|truncated\.jpg' <<<"$e"
    check "decode/truncated-nofail/error-says-damaged:${d##*/}" "error does not say the data is damaged: \"$e\"" \
        grep -qiE 'premature|truncat|corrupt|damaged|invalid|end of' <<<"$e"
done
left=$(find "$ROOT/out/bad" -mindepth 1 -printf '%f ')
check "decode/truncated-nofail/nothing-written" "files left in the destination directory: $left" [ -z "$left" ]

# One job of top-to-bottom ops: the source is decoded sequentially, as the
# job pulls it, so the damage shows inside the job's encoder; the process
# must still fail as a damaged source (path "source"), whatever
# fail_on_conversion_error says, and write nothing.
cat >"$WORK/truncated-seq.json" <<'EOF'
{"service_id": 1, "source": "/in/truncated.jpg", "fail_on_conversion_error": false, "jobs": [
 {"destination": "/out/bad/s.jpg", "transformations": [{"type": "resize", "width": 50}, {"type": "brightness", "bright_level": 10}]}]}
EOF
run_kiln truncated-seq "$WORK/truncated-seq.json"
check "decode/truncated-sequential/request-failed" "request status ${RST[$WORK/truncated-seq.json]:-none}" [ "${RST[$WORK/truncated-seq.json]:-}" = FAILED ]
e=${JERR[/out/bad/s.jpg]:-}
check "decode/truncated-sequential/error-is-the-source" "job error: \"$e\"" \
    grep -qE '^source: cannot decode "/in/truncated.jpg"(: it is truncated| \(damaged or truncated\?\))' <<<"$e"
left=$(find "$ROOT/out/bad" -mindepth 1 -printf '%f ')
check "decode/truncated-sequential/nothing-written" "files left in the destination directory: $left" [ -z "$left" ]

# ------------------------------------------------------------ missing source
cat >"$WORK/missing.json" <<'EOF'
{"service_id": 1, "source": "/in/no-such-file.jpg", "jobs": [
 {"destination": "/out/miss/m.png", "transformations": []}]}
EOF
mkdir -p "$ROOT/out/miss"
run_kiln missing "$WORK/missing.json"
check "decode/missing/exit-status" "kiln run exited 0 for a missing source" [ "$RUN_RC" != 0 ]
check "decode/missing/request-failed" "request status ${RST[$WORK/missing.json]:-none}" [ "${RST[$WORK/missing.json]:-}" = FAILED ]
check "decode/missing/job-failed" "job is ${JST[/out/miss/m.png]:-missing}" [ "${JST[/out/miss/m.png]:-}" = FAILED ]
check "decode/missing/not-found" "error: \"${JERR[/out/miss/m.png]:-}\"" grep -qi 'not found' <<<"${JERR[/out/miss/m.png]:-}"
check "decode/missing/names-the-path" "error: \"${JERR[/out/miss/m.png]:-}\"" grep -q 'no-such-file.jpg' <<<"${JERR[/out/miss/m.png]:-}"
left=$(find "$ROOT/out/miss" -mindepth 1 -printf '%f ')
check "decode/missing/nothing-written" "files left: $left" [ -z "$left" ]
skip "decode/pixel-limit" "source over the pixel limit: covered by the lead's limits tests"
finish
