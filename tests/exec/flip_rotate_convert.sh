#!/usr/bin/env bash
# flip and rotate, differential against ImageMagick (pixel-identical on PNG):
#   flip x / horizontal = convert -flop;  flip y / vertical = convert -flip
#   rotate 0, 90, 180, 270, 360 (numbers and numeric strings) = convert -rotate N
#   also with an alpha channel, and chained after a flip.
# Other angles (30, 45.5): the canvas is the rotated bounding box (the size
# kiln compile prints, and w|cos|+h|sin| x w|sin|+h|cos| within 1 px), the
# uncovered corners are transparent in PNG, white in JPEG, or the job's
# background.
cd "$(dirname "$0")/../.." || exit 1
. tests/exec/lib.sh
exec_setup

convert rose: -resize 97x61! -strip PNG24:"$ROOT/in/src.png"
# RGBA with an alpha ramp (left transparent .. right opaque)
convert rose: -resize 97x61! -strip \( -size 61x97 gradient:black-white -rotate -90 \) \
    -alpha off -compose CopyOpacity -composite PNG32:"$ROOT/in/rgba.png"
fx=$(identify -format '%wx%h %[channels]|' "$ROOT/in/src.png" "$ROOT/in/rgba.png")
[ "$fx" = "97x61 srgb|97x61 srgba|" ] || fail "flip-rotate/fixtures" "unexpected fixtures: $fx"

PAIRS=$WORK/pairs.txt
: >"$PAIRS"
JOBS=() AJOBS=() IM=() AIM=()
# exact CASE-NAME SOURCE(src|rgba) TRANSFORMATIONS-JSON IM-OPTIONS...
exact() {
    local name=$1 src=$2 tr=$3
    shift 3
    local out=/out/$name.png ref=$WORK/ref-$name.png
    if [ "$src" = src ]; then
        JOBS+=("{\"destination\":\"$out\",\"transformations\":$tr}")
        IM+=("(" +clone "$@" +repage -write "$ref" +delete ")")
    else
        AJOBS+=("{\"destination\":\"$out\",\"transformations\":$tr}")
        AIM+=("(" +clone "$@" +repage -write "$ref" +delete ")")
    fi
    local opts="$*"
    echo "$name[convert_${opts// /_}] $ROOT$out $ref" >>"$PAIRS"
}
exact flip-x src '[{"type":"flip","direction":"x"}]' -flop
exact flip-horizontal src '[{"type":"flip","direction":"horizontal"}]' -flop
exact flip-y src '[{"type":"flip","direction":"y"}]' -flip
exact flip-vertical src '[{"type":"flip","direction":"vertical"}]' -flip
exact flip-x-then-y src '[{"type":"flip","direction":"x"},{"type":"flip","direction":"y"}]' -flop -flip
for deg in 0 90 180 270 360; do
    exact "rotate-$deg" src "[{\"type\":\"rotate\",\"degrees\":$deg}]" -rotate "$deg"
done
exact rotate-90-string src '[{"type":"rotate","degrees":"90"}]' -rotate 90
exact rotate-270.00 src '[{"type":"rotate","degrees":270.00}]' -rotate 270
exact flip-x-then-rotate-90 src '[{"type":"flip","direction":"x"},{"type":"rotate","degrees":90}]' -flop -rotate 90
exact rotate-90-then-flip-y src '[{"type":"rotate","degrees":90},{"type":"flip","direction":"y"}]' -rotate 90 -flip
exact rgba-flip-x rgba '[{"type":"flip","direction":"x"}]' -flop
exact rgba-flip-y rgba '[{"type":"flip","direction":"y"}]' -flip
exact rgba-rotate-90 rgba '[{"type":"rotate","degrees":90}]' -rotate 90
exact rgba-rotate-180 rgba '[{"type":"rotate","degrees":180}]' -rotate 180
exact rgba-rotate-270 rgba '[{"type":"rotate","degrees":270}]' -rotate 270

# Other angles.
ANGLES="30 45.5"
for a in $ANGLES; do
    JOBS+=("{\"destination\":\"/out/rot-$a.png\",\"transformations\":[{\"type\":\"rotate\",\"degrees\":$a}]}")
    JOBS+=("{\"destination\":\"/out/rot-$a.jpg\",\"quality\":95,\"transformations\":[{\"type\":\"rotate\",\"degrees\":$a}]}")
    JOBS+=("{\"destination\":\"/out/rot-$a-bg.jpg\",\"quality\":95,\"background\":\"#000080\",\"transformations\":[{\"type\":\"rotate\",\"degrees\":$a}]}")
    AJOBS+=("{\"destination\":\"/out/rgba-rot-$a.png\",\"transformations\":[{\"type\":\"rotate\",\"degrees\":$a}]}")
done

join() { local IFS=,; echo "$*"; }
echo "{\"service_id\":1,\"source\":\"/in/src.png\",\"jobs\":[$(join "${JOBS[@]}")]}" >"$WORK/src.json"
echo "{\"service_id\":1,\"source\":\"/in/rgba.png\",\"jobs\":[$(join "${AJOBS[@]}")]}" >"$WORK/rgba.json"

convert "$ROOT/in/src.png" "${IM[@]}" null: 2>"$WORK/im.err" || fail "flip-rotate/imagemagick" "$(head -c 300 "$WORK/im.err")"
convert "$ROOT/in/rgba.png" "${AIM[@]}" null: 2>>"$WORK/im.err" || fail "flip-rotate/imagemagick" "$(head -c 300 "$WORK/im.err")"

run_kiln fr "$WORK/src.json" "$WORK/rgba.json"
check "flip-rotate/exit-status" "kiln run exited $RUN_RC although every job is valid" [ "$RUN_RC" = 0 ]

same_images "$PAIRS"

# Bands of exact rotations/flips: 3 for RGB (no alpha added), 4 for RGBA.
compile_shapes "$WORK/src.json" "$ROOT/in/src.png" || fail "flip-rotate/compile" "$(head -c 300 "$WORK/compile.err")"
compile_shapes "$WORK/rgba.json" "$ROOT/in/rgba.png" || fail "flip-rotate/compile" "$(head -c 300 "$WORK/compile.err")"
bad=""
while read -r name k ref; do
    d=${k#"$ROOT"}
    case $d in /out/rgba-*) want=4 ;; *) want=3 ;; esac
    [ -f "$k" ] || continue
    s=${SZ[$k]:-?}
    [ "${CSHAPE[$d]:-}" = "${s}x$want" ] || bad="$bad $d: compile ${CSHAPE[$d]:-none}, output ${s}x$want;"
done <"$PAIRS"
if [ -z "$bad" ]; then ok "flip-rotate/exact-compile-shapes"; else fail "flip-rotate/exact-compile-shapes" "${bad:0:500}"; fi

# ------------------------------------------------------ arbitrary angles
for a in $ANGLES; do
    bb=$(awk -v a="$a" 'BEGIN { t = a * atan2(0, -1) / 180; c = cos(t); s = sin(t)
        if (c < 0) c = -c; if (s < 0) s = -s; printf "%.3f %.3f", 97 * c + 61 * s, 97 * s + 61 * c }')
    for v in "rot-$a.png:4" "rgba-rot-$a.png:4" "rot-$a.jpg:3" "rot-$a-bg.jpg:3"; do
        f=${v%:*} bands=${v##*:} d=/out/${v%:*} name=rotate-$a/${v%:*}
        if ! job_finished "$d"; then fail "$name/finished" "$REASON"; continue; fi
        # size, channels, the four corners (not covered by the image), the centre
        { read -r w h ch; read -r c1; read -r c2; read -r c3; read -r c4; read -r centre; } < <(
            probe "$ROOT$d" 0,0 w-1,0 0,h-1 w-1,h-1 "int(w/2),int(h/2)")
        case $ch in srgb) b=3 ;; srgba) b=4 ;; gray) b=1 ;; graya) b=2 ;; *) b="?($ch)" ;; esac
        check "$name/size=compile" "output ${w}x${h}x$b, kiln compile says ${CSHAPE[$d]:-none}" \
            [ "${w}x${h}x$b" = "${CSHAPE[$d]:-}" ]
        check "$name/size=result-json" "result says ${JW[$d]}x${JH[$d]}, file is ${w}x$h" \
            [ "${JW[$d]}x${JH[$d]}" = "${w}x$h" ]
        check "$name/bounding-box" "${w}x$h, rotated bounding box is ${bb/ /x} (+-1)" \
            awk -v w="$w" -v h="$h" -v bb="$bb" 'BEGIN { split(bb, e, " "); dw = w - e[1]; dh = h - e[2]
                exit !(dw <= 1 && dw >= -1 && dh <= 1 && dh >= -1) }'
        check "$name/bands" "$b bands, expected $bands" [ "$b" = "$bands" ]
        case $f in
            *-bg.jpg) want="0 0 128 255" tol=12 what=background-000080 ;;
            *.jpg) want="255 255 255 255" tol=12 what=white ;;
            *) want="" tol=0 what=transparent ;;
        esac
        badc=""
        for p in "$c1" "$c2" "$c3" "$c4"; do
            if [ -z "$want" ]; then [ "${p##* }" = 0 ] || badc="$badc ($p)"
            else near "$p" "$want" "$tol" || badc="$badc ($p)"; fi
        done
        check "$name/corners-$what" "corner pixels (RGBA) not $what:$badc" [ -z "$badc" ]
        case $f in
            rgba-*) check "$name/centre-alpha" "centre pixel $centre, alpha expected ~128 (the ramp's middle)" near "${centre##* }" 128 12 ;;
            *.png) check "$name/centre-opaque" "centre pixel $centre, expected alpha 255" [ "${centre##* }" = 255 ] ;;
        esac
    done
    # the rotated picture is the source turned clockwise: compare with
    # ImageMagick's rotation (different interpolation: PSNR, not identity)
    convert "$ROOT/in/src.png" -background none -rotate "$a" +repage PNG32:"$WORK/im-rot-$a.png"
    if [ "$(img_size "$WORK/im-rot-$a.png")" = "$(img_size "$ROOT/out/rot-$a.png")" ]; then
        convert "$ROOT/out/rot-$a.png" "$WORK/im-rot-$a.png" -background black -alpha remove "$WORK/flat-%d.png"
        if psnr_ge "$WORK/flat-0.png" "$WORK/flat-1.png" 20; then ok "rotate-$a/clockwise-like-convert"
        else fail "rotate-$a/clockwise-like-convert" "PSNR against convert -rotate $a is $PSNR_VALUE dB (< 20)"; fi
    else
        # sizes may legitimately differ by a pixel; compare the centre crop
        convert "$ROOT/out/rot-$a.png" -gravity center -crop 60x40+0+0 +repage -background black -alpha remove "$WORK/ck.png"
        convert "$WORK/im-rot-$a.png" -gravity center -crop 60x40+0+0 +repage -background black -alpha remove "$WORK/cm.png"
        if psnr_ge "$WORK/ck.png" "$WORK/cm.png" 18; then ok "rotate-$a/clockwise-like-convert"
        else fail "rotate-$a/clockwise-like-convert" "centre PSNR against convert -rotate $a is $PSNR_VALUE dB (< 18)"; fi
    fi
done
finish
