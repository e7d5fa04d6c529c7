#!/usr/bin/env bash
# crop, differential against ImageMagick: every gravity x offsets x sizes with
# fit false must be pixel-identical to
#   convert in.png -gravity G -crop WxH+X+Y +repage out.png
# (including regions that partly leave the image: both intersect), and fit
# true must give the region ops.md defines (shrunk, then shifted inside),
# pixel-identical to the ImageMagick crop of that region.
cd "$(dirname "$0")/../.." || exit 1
. tests/exec/lib.sh

# Odd sizes on purpose; non-symmetric content; 8-bit sRGB without alpha.
convert rose: -resize 97x61! -strip PNG24:"$ROOT/in/src.png"
CW=97 CH=61
# An even canvas: ops.md's (cw - rw) / 2 and ImageMagick's cw/2 - rw/2 differ
# there for odd regions, so this one is checked against the ops.md formula.
convert rose: -resize 96x60! -strip PNG24:"$ROOT/in/even.png"
[ "$(identify -format '%wx%h %[channels]' "$ROOT/in/src.png")" = "97x61 srgb" ] ||
    fail "$T_NAME/fixture" "src.png is not a 97x61 RGB PNG: $(identify "$ROOT/in/src.png")"

GRAVITIES="northwest north northeast west center east southwest south southeast middle"
im_gravity() { [ "$1" = middle ] && echo center || echo "$1"; }

# spec_region CW CH RW RH GRAVITY DX DY FIT -> "W H X Y" per ops.md sections
# 3 and 4 (crop); "EMPTY" when fit false leaves nothing.
spec_region() {
    awk -v cw="$1" -v ch="$2" -v rw="$3" -v rh="$4" -v g="$5" -v dx="$6" -v dy="$7" -v fit="$8" '
    function r(x) { return x < 0 ? -int(-x + 0.5) : int(x + 0.5) }
    BEGIN {
        if (fit == "true" && (rw > cw || rh > ch)) {
            s = cw / rw; if (ch / rh < s) s = ch / rh
            nw = r(rw * s); nh = r(rh * s)
            if (nw > cw) nw = cw; if (nh > ch) nh = ch
            rw = nw; rh = nh
        }
        if (g ~ /west$/) x = dx; else if (g ~ /east$/) x = cw - rw - dx; else x = int((cw - rw) / 2) + dx
        if (g ~ /^north/) y = dy; else if (g ~ /^south/) y = ch - rh - dy; else y = int((ch - rh) / 2) + dy
        if (fit == "true") {
            if (x + rw > cw) x = cw - rw; if (x < 0) x = 0
            if (y + rh > ch) y = ch - rh; if (y < 0) y = 0
            print rw, rh, x, y; exit
        }
        x0 = x < 0 ? 0 : x; y0 = y < 0 ? 0 : y
        x1 = x + rw > cw ? cw : x + rw; y1 = y + rh > ch ? ch : y + rh
        if (x1 <= x0 || y1 <= y0) { print "EMPTY"; exit }
        print x1 - x0, y1 - y0, x0, y0
    }'
}

JOBS=() EJOBS=()
IMARGS=() EIMARGS=()    # ImageMagick arguments for src.png / even.png
LIST=$WORK/pairs.txt
: >"$LIST"
n=0

# add_case NAME SOURCE-FILE WIDTH HEIGHT GRAVITY XOFF YOFF FIT MODE
#   MODE im:   reference is ImageMagick's own gravity crop (fit false only)
#   MODE spec: reference is ImageMagick's crop of the region spec_region gives
add_case() {
    local name=$1 src=$2 w=$3 h=$4 g=$5 xo=$6 yo=$7 fit=$8 mode=$9
    local cw ch wp hp xp yp job ref geo reg
    n=$((n + 1))
    if [ "$src" = src ]; then cw=$CW ch=$CH; else cw=96 ch=60; fi
    wp=$(px_of "$w" "$cw"); hp=$(px_of "$h" "$ch")
    job="{\"destination\":\"/out/k$n.png\",\"transformations\":[{\"type\":\"crop\",\"gravity\":\"$g\",\"width\":$(jlen "$w"),\"height\":$(jlen "$h")"
    [ -n "$xo" ] && job="$job,\"xoffset\":$(jlen "$xo")"
    [ -n "$yo" ] && job="$job,\"yoffset\":$(jlen "$yo")"
    job="$job,\"fit\":$fit}]}"
    if [ "$src" = src ]; then JOBS+=("$job"); else EJOBS+=("$job"); fi
    xp=$(px_of "${xo:-0}" "$cw"); yp=$(px_of "${yo:-0}" "$ch")
    ref=$WORK/m$n.png
    local -a im
    if [ "$mode" = im ]; then
        geo="${wp}x${hp}$(sgn "$xp")$(sgn "$yp")"
        im=("(" +clone -gravity "$(im_gravity "$g")" -crop "$geo" +repage -write "$ref" +delete ")")
        name="$name [convert -gravity $(im_gravity "$g") -crop $geo]"
    else
        reg=$(spec_region "$cw" "$ch" "$wp" "$hp" "$g" "$xp" "$yp" "$fit")
        set -- $reg
        im=("(" +clone -gravity northwest -crop "${1}x${2}+${3}+${4}" +repage -write "$ref" +delete ")")
        name="$name [region ${1}x${2}+${3}+${4}]"
    fi
    if [ "$src" = src ]; then IMARGS+=("${im[@]}"); else EIMARGS+=("${im[@]}"); fi
    name=${name// /_}
    echo "$name $ROOT/out/k$n.png $ref" >>"$LIST"
}

# 1. fit false, every gravity x offsets x sizes, against ImageMagick gravity.
#    80x50 regions with offsets partly leave the 97x61 input.
for g in $GRAVITIES; do
    for size in 40x30 41x31 80x50; do
        for off in "" "7 5" "-6 -4" "10% 20%" "-10% 50%"; do
            set -- $off
            add_case "crop/fit-false/$g/${size}/${1:-0},${2:-0}" src "${size%x*}" "${size#*x}" "$g" "${1:-}" "${2:-}" false im
        done
    done
    add_case "crop/fit-false/$g/80x50/30,20" src 80 50 "$g" 30 20 false im
    # percentage size: 50% of 97 is 48.5 -> 49, 50% of 61 is 30.5 -> 31
    add_case "crop/fit-false/$g/50%x50%/3,2" src "50%" "50%" "$g" 3 2 false im
    # units w/h: 40w of 97 = 38.8 -> 39; 30h of 61 = 18.3 -> 18
    add_case "crop/fit-false/$g/40wx30h/-2,0" src "40w" "30h" "$g" -2 0 false im
done

# 2. fit true: regions larger than the input are shrunk (exact ratios chosen
#    so the shrunk size does not depend on a rounding mode), then shifted
#    inside; regions that fit but are pushed out by offsets are shifted.
for g in $GRAVITIES; do
    add_case "crop/fit-true/$g/194x80/7,5" src 194 80 "$g" 7 5 true spec    # -> 97x40
    add_case "crop/fit-true/$g/150x122/0,0" src 150 122 "$g" "" "" true spec # -> 75x61
    add_case "crop/fit-true/$g/300x100/0,3" src 300 100 "$g" 0 3 true spec   # -> 97x32
    add_case "crop/fit-true/$g/100x300/4,0" src 100 300 "$g" 4 0 true spec   # -> 20x61
    add_case "crop/fit-true/$g/40x30/-6,-4" src 40 30 "$g" -6 -4 true spec
    add_case "crop/fit-true/$g/40x30/70,45" src 40 30 "$g" 70 45 true spec
    add_case "crop/fit-true/$g/97x61/9,9" src 97 61 "$g" 9 9 true spec
    add_case "crop/fit-true/$g/41x31/0,0" src 41 31 "$g" "" "" true spec
done
# fit defaults to true
n=$((n + 1))
JOBS+=("{\"destination\":\"/out/k$n.png\",\"transformations\":[{\"type\":\"crop\",\"gravity\":\"southeast\",\"width\":194,\"height\":80}]}")
IMARGS+=("(" +clone -gravity northwest -crop "97x40+0+21" +repage -write "$WORK/m$n.png" +delete ")")
echo "crop/fit-default-true/southeast/194x80 $ROOT/out/k$n.png $WORK/m$n.png" >>"$LIST"

# 3. even canvas 96x60, against the ops.md placement formula.
for g in north center south west east middle; do
    for size in 41x31 40x30; do
        for off in "" "3 2"; do
            set -- $off
            add_case "crop/even-canvas/$g/$size/${1:-0},${2:-0}" even "${size%x*}" "${size#*x}" "$g" "${1:-}" "${2:-}" false spec
        done
    done
done

join() { local IFS=,; echo "$*"; }
echo "{\"service_id\":1,\"source\":\"/in/src.png\",\"jobs\":[$(join "${JOBS[@]}")]}" >"$WORK/odd.json"
echo "{\"service_id\":1,\"source\":\"/in/even.png\",\"jobs\":[$(join "${EJOBS[@]}")]}" >"$WORK/even.json"

# ImageMagick references: one convert per source image.
convert "$ROOT/in/src.png" "${IMARGS[@]}" null: 2>"$WORK/im.err" ||
    fail "$T_NAME/imagemagick" "convert failed: $(head -c 300 "$WORK/im.err")"
convert "$ROOT/in/even.png" "${EIMARGS[@]}" null: 2>>"$WORK/im.err" ||
    fail "$T_NAME/imagemagick" "convert failed: $(head -c 300 "$WORK/im.err")"

run_kiln crop "$WORK/odd.json" "$WORK/even.json"
check "crop/exit-status" "kiln run exited $RUN_RC with all jobs valid" [ "$RUN_RC" = 0 ]

# Reported sizes: result JSON = file on disk = kiln compile's shape.
compile_shapes "$WORK/odd.json" ${CW}x$CH || fail "crop/compile" "kiln compile failed: $(head -c 300 "$WORK/compile.err")"
compile_shapes "$WORK/even.json" 96x60 || fail "crop/compile" "kiln compile failed: $(head -c 300 "$WORK/compile.err")"
bad=""
while read -r name k ref; do
    d=${k#$ROOT}
    msg=$(job_finished "$d") || { bad="$bad $msg;"; continue; }
    s=$(img_size "$k")
    [ "${JW[$d]}x${JH[$d]}" = "$s" ] || bad="$bad $d reports ${JW[$d]}x${JH[$d]}, file is $s;"
    [ "${CSHAPE[$d]:-}" = "${s}x3" ] || bad="$bad $d compile shape ${CSHAPE[$d]:-none}, output ${s}x3;"
done <"$LIST"
if [ -z "$bad" ]; then ok "crop/reported-sizes-match-files-and-compile"; else fail "crop/reported-sizes-match-files-and-compile" "${bad:0:600}"; fi

same_images "$LIST"
finish
