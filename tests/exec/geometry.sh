#!/usr/bin/env bash
# Output geometry of resize, fitmethod and zoom (ops.md sections 2 and 4):
# each output's size equals what `kiln compile` prints, what the result JSON
# reports, and what the spec's formulas give (computed here: lengths and
# derived sides round half away from zero; box/outside derive the free side
# as round(in_other * target / in_this), like section 2).
# Also: letterbox pads with the colour at alpha opacity/10, placed by
# gravity; cropbox cuts at gravity; zoom = centred 1/z region + cropbox;
# "middle" = "center"; resize content close to ImageMagick's Lanczos.
cd "$(dirname "$0")/../.." || exit 1
. tests/exec/lib.sh
exec_setup

convert \( rose: -resize 97x61! -strip -write PNG24:"$ROOT/in/src.png" +delete \) \
    \( rose: -resize 100x75! -strip -write PNG24:"$ROOT/in/s100.png" +delete \) \
    \( rose: -resize 100x60! -strip -write PNG24:"$ROOT/in/z.png" +delete \) \
    \( -size 97x61 xc:'#00ff00' -write PNG24:"$ROOT/in/green.png" +delete \) \
    \( -size 100x100 xc:red -size 100x100 xc:blue +append -write PNG24:"$ROOT/in/lr.png" +delete \) \
    -size 100x100 xc:red -size 100x100 xc:blue -append PNG24:"$ROOT/in/tb.png" \
    2>"$WORK/im.err" || fail "geometry/fixtures" "$(head -c 300 "$WORK/im.err")"

# rnd A B: round(A / B), halves away from zero, for A >= 0, B > 0
rnd() { echo $(( (2 * $1 + $2) / (2 * $2) )); }
# pct P DIM: round(P% of DIM) for an integer P
pct() { rnd $(( $1 * $2 )) 100; }

declare -A JOBS EXPECT
SOURCES="src s100 z green lr tb"
# add SOURCE NAME EXPECTED-WxH TRANSFORMATIONS-JSON [EXTENSION] [JOB-EXTRA-JSON]
add() {
    local d=/out/$2.${5:-png}
    [ -z "${EXPECT[$d]+x}" ] || { fail "geometry/test-bug" "destination $d used twice"; return; }
    JOBS[$1]="${JOBS[$1]:-}{\"destination\":\"$d\",${6:+$6,}\"transformations\":$4}"$'\n'
    EXPECT[$d]=$3
}
fm() {  # fm TYPE W H [GRAVITY [COLOR [OPACITY]]] -> fitmethod JSON
    local j="{\"type\":\"fitmethod\",\"fit_type\":\"$1\""
    [ "$2" != - ] && j="$j,\"width\":$(jlen "$2")"
    [ "$3" != - ] && j="$j,\"height\":$(jlen "$3")"
    j="$j,\"gravity\":\"${4:-center}\",\"color\":\"${5:-#336699}\""
    [ -n "${6:-}" ] && j="$j,\"opacity\":$6"
    echo "[$j}]"
}

# ---------------------------------------------------------------- resize
W=97 H=61
add src resize-50x50 50x50 '[{"type":"resize","width":50,"height":50}]'
add src resize-w50 50x$(rnd $((50 * H)) $W) '[{"type":"resize","width":50}]'            # 31.44 -> 31
add src resize-h50 $(rnd $((50 * W)) $H)x50 '[{"type":"resize","height":50}]'           # 79.51 -> 80
w=$(pct 50 $W)                                                                          # 48.5 -> 49
add src resize-w50pct ${w}x$(rnd $((w * H)) $W) '[{"type":"resize","width":"50%"}]'
h=$(pct 50 $W)                                                                          # 50w = 48.5 -> 49
add src resize-h50w $(rnd $((h * W)) $H)x$h '[{"type":"resize","height":"50w"}]'
w=$(rnd $((25 * H)) 100)                                                                # 25h = 15.25 -> 15
add src resize-w25h ${w}x$(rnd $((w * H)) $W) '[{"type":"resize","width":"25h"}]'
add src resize-w200-up 200x$(rnd $((200 * H)) $W) '[{"type":"resize","width":200}]'     # 125.77 -> 126
add src resize-150pct-x-50pct $(pct 150 $W)x$(pct 50 $H) '[{"type":"resize","width":"150%","height":"50%"}]'  # 145.5 -> 146, 30.5 -> 31
add src resize-px-strings 33x17 '[{"type":"resize","width":"33px","height":"17"}]'
add src resize-then-crop-pct 25x16 '[{"type":"resize","width":50},{"type":"crop","gravity":"center","width":"50%","height":"50%"}]'  # 50x31 -> 25x15.5 -> 16
W=100 H=75
add s100 s100-resize-w10-half 10x$(rnd $((10 * H)) $W) '[{"type":"resize","width":10}]'    # 7.5 -> 8
add s100 s100-resize-h10 $(rnd $((10 * W)) $H)x10 '[{"type":"resize","height":10}]'         # 13.33 -> 13
add s100 s100-resize-w50 50x$(rnd $((50 * H)) $W) '[{"type":"resize","width":50}]'         # 37.5 -> 38
h=$(pct 10 $H)                                                                          # 7.5 -> 8
add s100 s100-resize-h10pct $(rnd $((h * W)) $H)x$h '[{"type":"resize","height":"10%"}]'   # 10.67 -> 11

# ---------------------------------------------------------------- fitmethod
W=97 H=61
# box / outside: the limiting side takes the target, the other is derived
box() {   # box TW TH -> WxH
    if [ $(( $1 * H )) -le $(( $2 * W )) ]; then echo "$1x$(rnd $(( H * $1 )) $W)"
    else echo "$(rnd $(( W * $2 )) $H)x$2"; fi
}
outside() {
    if [ $(( $1 * H )) -ge $(( $2 * W )) ]; then echo "$1x$(rnd $(( H * $1 )) $W)"
    else echo "$(rnd $(( W * $2 )) $H)x$2"; fi
}
for t in 50x50 60x60 200x100 97x61 10x200 300x30; do
    tw=${t%x*} th=${t#*x}
    add src box-$t "$(box $tw $th)" "$(fm box $tw $th)"
    add src outside-$t "$(outside $tw $th)" "$(fm outside $tw $th)"
    add src stretch-$t $t "$(fm stretch $tw $th)"
    add src cropbox-$t $t "$(fm cropbox $tw $th)"
    add src letterbox-$t $t "$(fm letterbox $tw $th)"
done
add src cropbox-50pct-x-50h $(pct 50 $W)x$(pct 50 $H) "$(fm cropbox 50% 50h)"             # 49x31
add src stretch-w-only 40x$(rnd $((40 * H)) $W) "$(fm stretch 40 -)"                     # 40x25
add src cropbox-north-60x20 60x20 "$(fm cropbox 60 20 north)"
add src cropbox-middle-60x20 60x20 "$(fm cropbox 60 20 middle)"
add src cropbox-center-60x20 60x20 "$(fm cropbox 60 20 center)"
add src letterbox-middle-100x40 100x40 "$(fm letterbox 100 40 middle)"
add src letterbox-center-100x40 100x40 "$(fm letterbox 100 40 center)"
# one side only: size must agree with kiln compile (no spec value asserted)
add src box-w50-only "$(box 50 $(rnd $((50 * H)) $W))" "$(fm box 50 -)"   # 50x31 target -> 49x31

# letterbox placement and pad colour, on a solid green source
# 60x60: image 60x38, 11 px bands above and below at center
add green lb-center-60 60x60 "$(fm letterbox 60 60 center '#336699')"
add green lb-north-60 60x60 "$(fm letterbox 60 60 north '#336699')"
add green lb-south-60 60x60 "$(fm letterbox 60 60 south '#336699')"
# 100x40: image 64x40 (63.6 -> 64), 36 px of padding left/right
add green lb-west-100 100x40 "$(fm letterbox 100 40 west '#336699')"
add green lb-east-100 100x40 "$(fm letterbox 100 40 east '#336699')"
add green lb-center-100 100x40 "$(fm letterbox 100 40 center '#336699')"
add green lb-op5-png 60x60 "$(fm letterbox 60 60 center '#336699' 5)"
add green lb-op0-png 60x60 "$(fm letterbox 60 60 center '#336699' 0)"
add green lb-op5-jpg 60x60 "$(fm letterbox 60 60 center '#336699' 5)" jpg '"quality":95'
add green lb-op10-jpg 60x60 "$(fm letterbox 60 60 center '#336699')" jpg '"quality":95'

# cropbox gravity on split sources (left red | right blue; top red / bottom blue)
for g in west east center; do add lr cb-lr-$g 50x50 "$(fm cropbox 50 50 $g)"; done
for g in north south center; do add tb cb-tb-$g 50x50 "$(fm cropbox 50 50 $g)"; done

# ---------------------------------------------------------------- zoom
zoom() { echo "[{\"type\":\"zoom\",${1:+\"width\":$(jlen "$1"),}${2:+\"height\":$(jlen "$2"),}\"level\":$3}]"; }
add src zoom-50x50-l0 50x50 "$(zoom 50 50 0)"
add src zoom-40x30-l1 40x30 "$(zoom 40 30 1)"
add src zoom-30x60-l3 30x60 "$(zoom 30 60 3)"
add src zoom-97x61-l10 97x61 "$(zoom 97 61 10)"
add src zoom-200x100-l2 200x100 "$(zoom 200 100 2)"
add src zoom-w50-l2 50x$(rnd $((50 * 61)) 97) "$(zoom 50 '' 2)"                           # 50x31
add src zoom-h20pct-l1 $(rnd $((12 * 97)) 61)x12 "$(zoom '' 20% 1)"                       # 12.2 -> 12; 19.08 -> 19
# zoom = centred 1/z region, then cropbox center (100x60: exact regions)
add z zoom-l3 40x40 "$(zoom 40 40 3)"
add z chain-l3 40x40 '[{"type":"crop","gravity":"center","width":25,"height":15},{"type":"fitmethod","fit_type":"cropbox","width":40,"height":40,"gravity":"center","color":"#000000"}]'
add z zoom-l1 40x30 "$(zoom 40 30 1)"
add z chain-l1 40x30 '[{"type":"crop","gravity":"center","width":50,"height":30},{"type":"fitmethod","fit_type":"cropbox","width":40,"height":30,"gravity":"center","color":"#000000"}]'
add z zoom-l0 50x50 "$(zoom 50 50 0)"
add z cropbox-l0 50x50 "$(fm cropbox 50 50 center)"

# ---------------------------------------------------------------- run
# requests of at most 40 jobs (the default limit is 50 per request)
REQS=() REQSRC=()
for s in $SOURCES; do
    printf '%s' "${JOBS[$s]}" >"$WORK/jobs.$s"
    split -l 40 -d "$WORK/jobs.$s" "$WORK/chunk.$s."
    for c in "$WORK/chunk.$s."??; do
        { printf '{"service_id":1,"source":"/in/%s.png","jobs":[' "$s"; paste -sd, "$c"; printf ']}\n'; } >"$c.json"
        REQS+=("$c.json") REQSRC+=("$s")
    done
done
run_kiln geo "${REQS[@]}"
check "geometry/exit-status" "kiln run exited $RUN_RC although every job is valid" [ "$RUN_RC" = 0 ]
for i in "${!REQS[@]}"; do
    compile_shapes "${REQS[$i]}" "$ROOT/in/${REQSRC[$i]}.png" || fail "geometry/compile-${REQS[$i]##*/}" "$(head -c 300 "$WORK/compile.err")"
done
outs=()
for d in "${!EXPECT[@]}"; do outs+=("$ROOT$d"); done
identify_all "${outs[@]}"

for d in $(printf '%s\n' "${!EXPECT[@]}" | sort); do
    n=geometry/${d#/out/}
    if ! job_finished "$d"; then fail "$n" "$REASON"; continue; fi
    s=${SZ[$ROOT$d]:-?}
    c=${CSHAPE[$d]:-none}
    bad=""
    [ "${c%x*}" = "$s" ] || bad="$bad kiln compile says ${c%x*};"
    [ "${JW[$d]}x${JH[$d]}" = "$s" ] || bad="$bad result JSON says ${JW[$d]}x${JH[$d]};"
    [ -z "${EXPECT[$d]}" ] || [ "${EXPECT[$d]}" = "$s" ] || bad="$bad ops.md gives ${EXPECT[$d]};"
    if [ -z "$bad" ]; then ok "$n=$s"; else fail "$n" "output is $s:$bad"; fi
done

# ---------------------------------------------------------------- pixels
o=$ROOT/out
# letterbox on green: pad pixels = #336699 (51 102 153), image = green
lb_check() {  # NAME FILE EXPECTED-PAD-RGBA POINT=KIND...   (KIND pad|img)
    local name=$1 f=$2 pad=$3 pts=() kinds=() p k line bad="" i=0
    shift 3
    for p; do pts+=("${p%=*}"); kinds+=("${p#*=}"); done
    [ -f "$f" ] || { fail "$name" "missing output"; return; }
    while read -r line; do
        k=${kinds[$i]}
        if [ "$k" = pad ] && [ "${pad##* }" = 0 ]; then    # transparent: only alpha matters
            [ "${line##* }" = 0 ] || bad="$bad pad(${pts[$i]})=$line"
        elif [ "$k" = pad ]; then near "$line" "$pad" 1 || bad="$bad pad(${pts[$i]})=$line"
        else near "$line" "0 255 0 255" 3 || bad="$bad image(${pts[$i]})=$line"; fi
        i=$((i + 1))
    done < <(probe "$f" "${pts[@]}" | tail -n +2)
    if [ -z "$bad" ]; then ok "$name"; else fail "$name" "expected pad $pad and green image:$bad"; fi
}
PAD="51 102 153 255"
lb_check geometry/letterbox-center-pad-and-image "$o/lb-center-60.png" "$PAD" 0,0=pad 30,10=pad 30,11=img 30,48=img 30,49=pad 59,59=pad
lb_check geometry/letterbox-north-pad-and-image "$o/lb-north-60.png" "$PAD" 0,0=img 30,37=img 30,38=pad 59,59=pad
lb_check geometry/letterbox-south-pad-and-image "$o/lb-south-60.png" "$PAD" 0,0=pad 30,21=pad 30,22=img 59,59=img
lb_check geometry/letterbox-west-pad-and-image "$o/lb-west-100.png" "$PAD" 0,0=img 63,20=img 64,20=pad 99,39=pad
lb_check geometry/letterbox-east-pad-and-image "$o/lb-east-100.png" "$PAD" 0,0=pad 35,20=pad 36,20=img 99,39=img
lb_check geometry/letterbox-center-h-pad-and-image "$o/lb-center-100.png" "$PAD" 0,0=pad 17,20=pad 18,20=img 81,20=img 82,20=pad 99,39=pad
lb_check geometry/letterbox-opacity-0-transparent-pad "$o/lb-op0-png.png" "51 102 153 0" 0,0=pad 59,59=pad 30,30=img
# opacity 5: alpha 127.5 -> 127 or 128
{ read -r _w _h ch; read -r p1; read -r p2; read -r p3; } < <(probe "$o/lb-op5-png.png" 0,0 30,30 59,59)
if [ "${ch:-}" = srgba ] && near "${p1:-}" "51 102 153 128" 1 && near "${p2:-}" "0 255 0 255" 3 && near "${p3:-}" "51 102 153 128" 1
then ok geometry/letterbox-opacity-5-png-alpha
else fail geometry/letterbox-opacity-5-png-alpha "channels ${ch:-?}, pad ${p1:-?} / ${p3:-?}, image ${p2:-?}; expected srgba, pad 51 102 153 ~128, image opaque green"; fi
# JPEG: opacity 5 pad flattened onto white: (153, 178.5, 204)
line=$(probe "$o/lb-op5-jpg.jpg" 2,2 57,57 | tail -n +2 | tr '\n' ' ')
check geometry/letterbox-opacity-5-jpg-flattened-on-white "pad pixels $line, expected ~153 178 204" \
    near "$line" "153 178 204 255 153 178 204 255" 4
line=$(probe "$o/lb-op10-jpg.jpg" 2,2 57,57 | tail -n +2 | tr '\n' ' ')
check geometry/letterbox-opacity-10-jpg-pad-colour "pad pixels $line, expected ~51 102 153" \
    near "$line" "51 102 153 255 51 102 153 255" 4

# cropbox gravity: 200x100 red|blue -> 100x50, cut 50x50
RED="255 0 0 255" BLUE="0 0 255 255"
cb_check() {  # NAME FILE POINT=COLOUR...
    local name=$1 f=$2 pts=() want=() p line bad="" i=0
    shift 2
    for p; do pts+=("${p%=*}"); want+=("${p#*=}"); done
    [ -f "$f" ] || { fail "$name" "missing output"; return; }
    while read -r line; do
        if [ "${want[$i]}" = red ]; then near "$line" "$RED" 4 || bad="$bad (${pts[$i]})=$line not red"
        else near "$line" "$BLUE" 4 || bad="$bad (${pts[$i]})=$line not blue"; fi
        i=$((i + 1))
    done < <(probe "$f" "${pts[@]}" | tail -n +2)
    if [ -z "$bad" ]; then ok "$name"; else fail "$name" "${bad# }"; fi
}
cb_check geometry/cropbox-west-cuts-left "$o/cb-lr-west.png" 2,25=red 25,25=red 47,25=red
cb_check geometry/cropbox-east-cuts-right "$o/cb-lr-east.png" 2,25=blue 25,25=blue 47,25=blue
cb_check geometry/cropbox-center-cuts-middle "$o/cb-lr-center.png" 5,25=red 18,25=red 31,25=blue 45,25=blue
cb_check geometry/cropbox-north-cuts-top "$o/cb-tb-north.png" 25,2=red 25,25=red 25,47=red
cb_check geometry/cropbox-south-cuts-bottom "$o/cb-tb-south.png" 25,2=blue 25,25=blue 25,47=blue
cb_check geometry/cropbox-center-cuts-middle-vertical "$o/cb-tb-center.png" 25,5=red 25,18=red 25,31=blue 25,45=blue

# middle = center, exactly
for p in cropbox-%s-60x20 letterbox-%s-100x40; do
    a=$(printf "$p" middle) b=$(printf "$p" center)
    [ -f "$o/$a.png" ] && [ -f "$o/$b.png" ] && same_image "geometry/middle=center:${p//%s/G}" "$o/$a.png" "$o/$b.png"
done

# zoom = crop of the centred 1/z region + cropbox center; level 0 = cropbox
for pair in zoom-l3:chain-l3 zoom-l1:chain-l1 zoom-l0:cropbox-l0; do
    a=$o/${pair%:*}.png b=$o/${pair#*:}.png
    if [ -f "$a" ] && [ -f "$b" ] && [ "${SZ[$a]:-}" = "${SZ[$b]:-}" ] && psnr_ge "$a" "$b" 30; then ok "geometry/${pair%:*}=${pair#*:}"
    else fail "geometry/${pair%:*}=${pair#*:}" "sizes ${SZ[$a]:-?}/${SZ[$b]:-?}, PSNR ${PSNR_VALUE:-?} dB (< 30)"; fi
done

# resize content: close to ImageMagick's Lanczos
convert "$ROOT/in/src.png" \( +clone -filter Lanczos -resize 50x31! -write "$WORK/im-50x31.png" +delete \) \
    -filter Lanczos -resize 200x126! "$WORK/im-200x126.png"
PSNR_VALUE=""
if psnr_ge "$o/resize-w50.png" "$WORK/im-50x31.png" 28; then ok geometry/resize-down-close-to-convert-lanczos
else fail geometry/resize-down-close-to-convert-lanczos "PSNR $PSNR_VALUE dB against convert -filter Lanczos -resize 50x31! (< 28)"; fi
PSNR_VALUE=""
if psnr_ge "$o/resize-w200-up.png" "$WORK/im-200x126.png" 28; then ok geometry/resize-up-close-to-convert-lanczos
else fail geometry/resize-up-close-to-convert-lanczos "PSNR $PSNR_VALUE dB against convert -filter Lanczos -resize 200x126! (< 28)"; fi
finish
