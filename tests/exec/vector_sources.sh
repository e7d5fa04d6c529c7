#!/usr/bin/env bash
# SVG and PDF sources (docs/config.md, vector_sources; issue 12): off by
# default (source_formats.sh); a service that enables them has each one
# rendered in a child process that a time or CPU limit always stops.
# - a small SVG and PDF render at their own size, as source and watermark,
#   with the pixels librsvg / poppler give (checked against `vips copy`
#   of the same file, a renderer run nobody here wrote);
# - the poison pill of issue 12 (a 9000x9000 SVG with a blur of
#   stdDeviation 500) fails within max_cpu_time with a message saying so,
#   and kiln goes on: the next request finishes;
# - an SVG whose size is above max_pixels fails before rendering;
# - a file that is not a valid SVG fails with the renderer's words;
# - a service without vector_sources still refuses SVG.
cd "$(dirname "$0")/../.." || exit 1
. tests/exec/lib.sh
exec_setup
IN=$ROOT/in
if ! vips -l 2>/dev/null | grep -q svgload_source; then
    skip "$T_NAME" "this libvips has no SVG loader"
    finish
fi
PLUGDIR=$(cd "$(dirname "$KILN")/plugins" && pwd)
config() { # MAX_CPU_TIME MAX_MEMORY
    cat >"$WORK/config.json" <<JSON
{"plugins": {"dirs": ["$PLUGDIR"], "enable": ["ops-vips", "storage-local"]},
 "services": [{"id": 1, "tokens": ["t"], "storage": {"plugin": "local", "root": "$ROOT"},
               "vector_sources": {"formats": ["svg", "pdf"], "max_cpu_time": $1, "max_memory": $2}},
              {"id": 2, "tokens": ["u"], "storage": {"plugin": "local", "root": "$ROOT"}}]}
JSON
}
config 2 8589934592 # 8 GiB: the poison pill meets the CPU limit first
printf '<svg xmlns="http://www.w3.org/2000/svg" width="40" height="30"><rect width="40" height="30" fill="#c83250"/><circle cx="20" cy="15" r="9" fill="#1e90ff"/></svg>' >"$IN/logo.svg"
printf '%%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 36 24]>>endobj\ntrailer<</Root 1 0 R>>\n%%%%EOF\n' >"$IN/page.pdf"
printf '<svg xmlns="http://www.w3.org/2000/svg" width="9000" height="9000"><filter id="b"><feGaussianBlur stdDeviation="500"/></filter><rect width="9000" height="9000" fill="red" filter="url(#b)"/></svg>' >"$IN/pill.svg"
printf '<svg xmlns="http://www.w3.org/2000/svg" width="20000" height="20000"><rect width="5" height="5"/></svg>' >"$IN/huge.svg"
printf '<svg xmlns="http://www.w3.org/2000/svg" width="20" height="20"><rect' >"$IN/broken.svg"
vips black "$WORK/b.v" 64 48 --bands 3 && vips copy "$WORK/b.v" "$IN/real.png" ||
    {
        fail "$T_NAME/setup" "cannot make the samples"
        finish
    }

# run NAME SERVICE SOURCE [TRANSFORMATIONS]: runs one job to /out/NAME.png;
# sets OUT to "status|error" and ERRFILE to its stderr.
run() {
    cat >"$WORK/$1.json" <<JSON
{"service_id": $2, "source": "/in/$3", "jobs": [{"destination": "/out/$1.png",
  "transformations": ${4:-[]}}]}
JSON
    ERRFILE=$WORK/$1.err
    "$KILN" run --config "$WORK/config.json" "$WORK/$1.json" >"$WORK/$1.out" 2>"$ERRFILE"
    OUT=$(jq -r '[.status, (.error // .jobs[0].error // "")] | join("|")' "$WORK/$1.out" 2>/dev/null)
}
# same_pixels A B: the two images have the same size and pixels.
same_pixels() {
    [ "$(vipsheader -f width "$1")x$(vipsheader -f height "$1")" = \
        "$(vipsheader -f width "$2")x$(vipsheader -f height "$2")" ] || return 1
    local d
    d=$(vips subtract "$1" "$2" "$WORK/d.v" && vips abs "$WORK/d.v" "$WORK/a.v" && vips max "$WORK/a.v")
    [ "${d%.*}" -le 1 ]
}

# renders NAME FILE: FILE as a source gives the pixels `vips copy` of it
# gives (libvips' own renderer run, in its own process).
renders() {
    run "$1" 1 "$2"
    vips copy "$IN/$2" "$WORK/$1-ref.png"
    if [ "$OUT" = "FINISHED|" ] && same_pixels "$ROOT/out/$1.png" "$WORK/$1-ref.png"; then
        ok "$T_NAME/$1-renders"
    else
        fail "$T_NAME/$1-renders" "$OUT $(head -c 300 "$ERRFILE")"
    fi
}
renders svg logo.svg
renders pdf page.pdf
run wm 1 real.png '[{"type": "watermark", "source": "/in/logo.svg", "gravity": "center", "width": 20}]'
[ "$OUT" = "FINISHED|" ] && ok "$T_NAME/svg-watermark" || fail "$T_NAME/svg-watermark" "$OUT"

t0=$(date +%s)
run pill 1 pill.svg
took=$(($(date +%s) - t0))
echo "  poison-pill SVG ended in ${took} s (max_cpu_time 2 s)"
case "$OUT" in
'FAILED|source: "/in/pill.svg": rendering the SVG '*'max_cpu_time'*) ok "$T_NAME/poison-pill-stopped" ;;
'FAILED|source: "/in/pill.svg": rendering the SVG was stopped: '*) ok "$T_NAME/poison-pill-stopped" ;;
*) fail "$T_NAME/poison-pill-stopped" "$OUT" ;;
esac
[ ! -e "$ROOT/out/pill.png" ] && ok "$T_NAME/poison-pill-nothing-written" ||
    fail "$T_NAME/poison-pill-nothing-written" "pill.png exists"
# max_process_time stops a render that its CPU allowance would not.
config 60 8589934592
cat >"$WORK/deadline.json" <<JSON
{"service_id": 1, "source": "/in/pill.svg", "limits": {"max_process_time": 1},
 "jobs": [{"destination": "/out/deadline.png"}]}
JSON
"$KILN" run --config "$WORK/config.json" "$WORK/deadline.json" >"$WORK/deadline.out" 2>"$WORK/deadline.err"
OUT=$(jq -r '[.status, .error] | join("|")' "$WORK/deadline.out" 2>/dev/null)
case "$OUT" in
'FAILED|source: "/in/pill.svg": rendering the SVG was stopped: the process ran past its max_process_time') ok "$T_NAME/deadline-stops-render" ;;
*) fail "$T_NAME/deadline-stops-render" "$OUT" ;;
esac
config 2 8589934592
run after 1 logo.svg
[ "$OUT" = "FINISHED|" ] && ok "$T_NAME/goes-on" || fail "$T_NAME/goes-on" "$OUT"

# The memory limit (the sanitizer build runs the child without one).
if ! nm "$KILN" 2>/dev/null | grep -q __asan_init; then
    config 2 67108864 # 64 MiB
    run pill-mem 1 pill.svg
    case "$OUT" in
    'FAILED|source: "/in/pill.svg": cannot render the SVG: it needs more memory than vector_sources.max_memory allows (67108864 bytes)' | \
        'FAILED|source: "/in/pill.svg": rendering the SVG failed: the renderer crashed or ran out of its 67108864 bytes of memory'*)
        ok "$T_NAME/memory-limit" ;;
    *) fail "$T_NAME/memory-limit" "$OUT" ;;
    esac
    config 2 8589934592
else
    skip "$T_NAME/memory-limit" "the sanitizer build renders without RLIMIT_AS"
fi

run huge 1 huge.svg
case "$OUT" in
'FAILED|source: "/in/huge.svg": cannot render the SVG: it renders at 20000x20000, 400000000 pixels, above the limit of 100000000') ok "$T_NAME/pixel-limit" ;;
*) fail "$T_NAME/pixel-limit" "$OUT" ;;
esac
run broken 1 broken.svg
case "$OUT" in
'FAILED|source: "/in/broken.svg": cannot render the SVG: '?*) ok "$T_NAME/broken" ;;
'FAILED|source: "/in/broken.svg" is '*) ok "$T_NAME/broken" ;; # not even sniffed as SVG
*) fail "$T_NAME/broken" "$OUT" ;;
esac
run off 2 logo.svg
case "$OUT" in
'FAILED|source: "/in/logo.svg" is an SVG image, which kiln does not read'*) ok "$T_NAME/off-by-default" ;;
*) fail "$T_NAME/off-by-default" "$OUT" ;;
esac
for f in "$WORK"/*.err; do
    if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' "$f"; then
        fail "$T_NAME/sanitizer" "$(grep -m1 -E 'AddressSanitizer|LeakSanitizer|runtime error:' "$f")"
    fi
done
finish
