#!/usr/bin/env bash
# annotation and watermark (ops.md sections 3 and 4), end to end.
# annotation: the text's layout box is placed by gravity/offsets (checked
# against ImageMagick's -annotate, loosely: rasterisers differ), only that
# region changes, the colour (with alpha) is honoured, size is pixels and
# scales the ink linearly, text outside is clipped, 4-band inputs keep
# alpha, an installed family gives no warning and a missing one a warning
# naming fontconfig's match. watermark: placement for every gravity (and
# "middle") equals `convert base wm -gravity G -geometry +X+Y -composite`
# within 1 level, opacity scales alpha (IM's dissolve), one given side
# follows the watermark's aspect, percentages refer to the base, parts
# outside are clipped, a missing watermark fails naming the path and
# jobs[i].transformations[k].source, "Source" is an alias.
cd "$(dirname "$0")/../.." || exit 1
. tests/exec/lib.sh
exec_setup
N=annotation_watermark

FONT_SANS=$(fc-match -f '%{file}' 'DejaVu Sans' 2>/dev/null)
FONT_SERIF=$(fc-match -f '%{file}' 'DejaVu Serif' 2>/dev/null)
case "$FONT_SANS$FONT_SERIF" in
*DejaVuSans.ttf*DejaVuSerif.ttf) ;;
*) skip "$N" "fonts DejaVu Sans and DejaVu Serif are not installed (fonts-dejavu-core)"; finish ;;
esac
# fontconfig's own answer for a family that does not exist
FALLBACK=$(fc-match -f '%{family[0]}' 'Nonexistent Sans' 2>/dev/null)

I=$ROOT/in
convert \( -size 300x200 xc:black -write PNG24:"$I/black.png" +delete \) \
    \( -size 300x200 xc:'#808080' -write PNG24:"$I/grey.png" +delete \) \
    \( -size 300x200 xc:'rgba(0,0,255,0)' -write PNG32:"$I/clear.png" +delete \) \
    \( -size 300x200 xc:'rgba(0,0,255,0.5)' -write PNG32:"$I/halfblue.png" +delete \) \
    \( -size 300x200 gradient:'#2060a0-#e0c040' \( -size 300x200 gradient:'#000000-#ffffff' -rotate 90 \) \
       -compose screen -composite -write PNG24:"$I/base.png" +delete \) \
    \( -size 64x32 xc:'rgba(255,0,0,0.5)' -fill 'rgba(0,255,0,0.9)' -draw 'rectangle 8,4 40,20' \
       -write PNG32:"$ROOT/wm.png" +delete \) \
    \( -size 40x20 xc:blue -write PNG24:"$ROOT/blue.png" +delete \) \
    -size 40x20 xc:'rgba(255,0,0,0.5)' PNG32:"$ROOT/halfred.png" \
    2>"$WORK/im.err" || fail "$N/fixtures" "$(head -c 300 "$WORK/im.err")"

# ---------------------------------------------------------------- jobs
declare -A JOBS   # source -> job lines
DESTS=()
# add SOURCE NAME TRANSFORMATIONS-JSON
add() {
    JOBS[$1]="${JOBS[$1]:-}{\"destination\":\"/out/$2.png\",\"transformations\":$3}"$'\n'
    DESTS+=("/out/$2.png")
}
# ann GRAVITY X Y SIZE TEXT [COLOR [FONT]] -> annotation JSON (X/Y "-": unset)
ann() {
    local j="{\"type\":\"annotation\",\"font\":\"${7:-DejaVu Sans}\",\"color\":\"${6:-#ffffff}\""
    j="$j,\"text\":$(jq -Rn --arg t "$5" '$t'),\"size\":$4"
    [ "$1" != - ] && j="$j,\"gravity\":\"$1\""
    [ "$2" != - ] && j="$j,\"xoffset\":$(jlen "$2")"
    [ "$3" != - ] && j="$j,\"yoffset\":$(jlen "$3")"
    echo "[$j}]"
}
# wmk GRAVITY X Y [EXTRA-JSON] [SOURCE] -> watermark JSON
wmk() {
    echo "[{\"type\":\"watermark\",\"source\":\"${5:-/wm.png}\",\"gravity\":\"$1\",\"xoffset\":$(jlen "$2"),\"yoffset\":$(jlen "$3")${4:+,$4}}]"
}

# annotation placement, compared with ImageMagick (layout box convention)
APLACE="northwest:0:0 northwest:12:9 north:0:6 northeast:10:4 west:5:0 center:0:0
        middle:7:-5 east:8:3 southwest:6:7 south:0:0 southeast:10:5 southeast:-4:-3"
for p in $APLACE; do
    IFS=: read -r g x y <<<"$p"
    add black "a-$g$x$y" "$(ann "$g" "$x" "$y" 24 'Hxg Place')"
done
add black a-default "$(ann - - - 24 'Hxg Place')"      # gravity defaults to northwest
add black a-se-big "$(ann southeast 20 10 60 'Kiln')"
add black a-pct "$(ann southeast 10% 10% 20 'pct')"     # 30 px, 20 px
# colour and size
add black a-green "$(ann northwest 20 20 100 'H' '#00ff00')"
add black a-h20 "$(ann northwest 10 10 20 'H')"
add black a-h40 "$(ann northwest 10 10 40 'H')"
add black a-h80 "$(ann northwest 10 10 80 'H')"
# clipping: partly outside, larger than the image, wholly outside
add black a-clip "$(ann northwest -30 -20 60 'Clipped text')"
add black a-huge "$(ann center 0 0 400 'WM')"
add black a-outside "$(ann northwest 1000 0 30 'gone')"
# alpha colour over grey; 4-band inputs
add grey a-alpha "$(ann northwest 20 20 100 'H' 'rgba(255,0,0,0.5)')"
add grey a-mask "$(ann northwest 20 20 100 'H')"
add clear a-clear "$(ann northwest 20 20 100 'H')"
add halfblue a-halfblue "$(ann northwest 20 20 100 'H' 'rgba(255,0,0,0.5)')"
# fonts
add black f-serif "$(ann northwest 10 10 40 'Font' '#fff' 'DejaVu Serif')"
add black f-serif-case "$(ann northwest 10 10 40 'Font' '#fff' 'dejavu serif')"
add black f-sans "$(ann northwest 10 10 40 'Font' '#fff' 'DejaVu Sans')"
add black f-generic "$(ann northwest 10 10 40 'Font' '#fff' 'sans-serif')"
add black f-missing "$(ann northwest 10 10 40 'Font' '#fff' 'Nonexistent Sans')"
# text that looks like markup is drawn as is; lines align by gravity
add black a-markup "$(ann center 0 0 14 '<b>a & b</b> <i>c</i> <span')"
add black a-lines "$(ann southeast 10 10 24 $'WWWWWWW\nWW')"

# watermark placement against ImageMagick, unscaled (width = its own 64)
WPLACE="northwest:0:0 northwest:7:5 north:0:5 northeast:7:5 west:7:0 center:0:0
        middle:6:-4 east:7:5 southwest:7:5 south:3:0 southeast:7:5 southeast:-20:-10
        northwest:-30:-12"
for p in $WPLACE; do
    IFS=: read -r g x y <<<"$p"
    add base "w-$g$x$y" "$(wmk "$g" "$x" "$y" '"width":64')"
    add base "w5-$g$x$y" "$(wmk "$g" "$x" "$y" '"width":64,"opacity":5')"
done
add base w-alias '[{"type":"watermark","Source":"/wm.png","gravity":"center","height":32}]'
add base w-op0 "$(wmk center 0 0 '"width":64,"opacity":0')"
# scaling footprints of a solid blue 40x20 on black
add black w-w80 "$(wmk northwest 10 20 '"width":80' /blue.png)"          # 80x40
add black w-h10 "$(wmk southeast 5 5 '"height":10' /blue.png)"           # 20x10
add black w-w50pct "$(wmk center 0 0 '"width":"50%"' /blue.png)"         # 150x75
add black w-h25pct "$(wmk north 0 0 '"height":"25%"' /blue.png)"         # 100x50
add black w-30x30 "$(wmk northeast 0 0 '"width":30,"height":30' /blue.png)"
add black w-bigger "$(wmk center 0 0 '"width":500' /blue.png)"           # 500x250 covers all
add black w-edge "$(wmk northwest 280 190 '"width":40' /blue.png)"       # 20x10 visible
add black w-outside "$(wmk northwest 400 0 '"width":40' /blue.png)"
add clear w-clear "$(wmk northwest 0 0 '"width":40' /halfred.png)"

BIRD=$TESTDATA/bird-alpha.png
if [ -r "$BIRD" ]; then
    cp "$BIRD" "$ROOT/bird.png"
    BW=$(identify -format '%w' "$BIRD")
    convert -size 700x500 gradient:'#204060-#e0e0a0' PNG24:"$I/big.png"
    add big w-bird "$(wmk southeast 15 10 "\"width\":$BW" /bird.png)"
    add big w-bird-half "$(wmk center 0 0 '"width":"50%"' /bird.png)"
fi

# requests of at most 40 jobs; the failing ones go alone (one failed job
# would stop the others being written)
REQS=()
for s in "${!JOBS[@]}"; do
    printf '%s' "${JOBS[$s]}" >"$WORK/jobs.$s"
    split -l 40 -d "$WORK/jobs.$s" "$WORK/chunk.$s."
    for c in "$WORK/chunk.$s."??; do
        { printf '{"service_id":1,"source":"/in/%s.png","jobs":[' "$s"; paste -sd, "$c"; printf ']}\n'; } >"$c.json"
        REQS+=("$c.json")
    done
done
cat >"$WORK/missing.json" <<'EOF'
{"service_id":1,"source":"/in/black.png","jobs":[{"destination":"/out/missing.png",
 "transformations":[{"type":"watermark","source":"/no/such-wm.png","gravity":"center","width":10}]}]}
EOF
cat >"$WORK/neither.json" <<'EOF'
{"service_id":1,"source":"/in/black.png","jobs":[{"destination":"/out/neither.png",
 "transformations":[{"type":"watermark","source":"/wm.png","gravity":"center"}]}]}
EOF
LONG=$(printf 'W%.0s' $(seq 1000))
cat >"$WORK/toolarge.json" <<EOF
{"service_id":1,"source":"/in/black.png","jobs":[{"destination":"/out/toolarge.png",
 "transformations":[{"type":"annotation","font":"DejaVu Sans","color":"#fff","text":"$LONG","size":1000}]}]}
EOF
cat >"$WORK/long.json" <<EOF
{"service_id":1,"source":"/in/black.png","jobs":[{"destination":"/out/long.png",
 "transformations":[{"type":"annotation","font":"DejaVu Sans","color":"#fff","text":"$LONG","size":30,"gravity":"east"}]}]}
EOF
run_kiln aw "${REQS[@]}" "$WORK/missing.json" "$WORK/neither.json" "$WORK/toolarge.json" "$WORK/long.json"

# every valid job: FINISHED, output size = input size, bands kept
O=$ROOT/out
vheader $(for d in "${DESTS[@]}"; do echo "$ROOT$d"; done)
bad=""
for d in "${DESTS[@]}"; do
    case $d in /out/w-bird*) want=700x500 ;; *) want=300x200 ;; esac
    case $d in /out/a-clear.png|/out/a-halfblue.png|/out/w-clear.png) wb=4 ;; *) wb=3 ;; esac
    if ! job_finished "$d"; then bad="$bad $REASON;"; continue; fi
    [ "${VSIZE[$ROOT$d]:-?}" = $want ] || bad="$bad $d is ${VSIZE[$ROOT$d]:-?} (expected $want);"
    [ "${JW[$d]}x${JH[$d]}" = $want ] || bad="$bad $d: result says ${JW[$d]}x${JH[$d]};"
    [ "${VBANDS[$ROOT$d]:-?}" = $wb ] || bad="$bad $d has ${VBANDS[$ROOT$d]:-?} bands (expected $wb);"
done
if [ -z "$bad" ]; then ok "$N/all-finished-size-and-bands-kept(${#DESTS[@]}_jobs)"
else fail "$N/all-finished-size-and-bands-kept" "${bad# }"; fi

# inkbox FILE BG -> "W H X Y" of the pixels differing from colour BG, or
# "none"
inkbox() {
    local b
    b=$(convert "$1" -bordercolor "$2" -border 1 -format '%@' info: 2>/dev/null)
    case $b in ''|0x0*) echo none; return ;; esac
    awk -v b="$b" 'BEGIN { split(b, a, /[x+]/); print a[1], a[2], a[3] - 1, a[4] - 1 }'
}
# inkboxes FILE...: INK[file] = inkbox FILE black, one ImageMagick run
declare -A INK
inkboxes() {
    local f b ex=() i=0
    for f; do if [ -f "$f" ]; then ex+=("$f"); else INK[$f]=missing; fi; done
    [ ${#ex[@]} -gt 0 ] || return 0
    while read -r b; do
        f=${ex[$i]} i=$((i + 1))
        case $b in ''|0x0*) INK[$f]=none ;;
        *) INK[$f]=$(awk -v b="$b" 'BEGIN { split(b, a, /[x+]/); print a[1], a[2], a[3] - 1, a[4] - 1 }') ;;
        esac
    done < <(convert "${ex[@]}" -bordercolor black -border 1 -format '%@\n' info: 2>/dev/null)
}
# within A B TOL: two "W H X Y" boxes agree within TOL on every number
within() { near "$1" "$2" "$3"; }

# ------------------------------------------------------ annotation: place
# Reference: ImageMagick with the same font file; -pointsize N is N px at
# its default 72 dpi. All references in one run: imref OUT GRAVITY X Y SIZE
# TEXT adds one.
IMARGS=()
imref() {
    IMARGS+=(\( "$I/black.png" -fill white -font "$FONT_SANS" -pointsize "$5" -gravity "$2"
             -annotate "$(sgn "$3")$(sgn "$4")" "$6" -write "$1" +delete \))
}
for p in $APLACE; do
    IFS=: read -r g x y <<<"$p"
    img=$g; [ "$g" = middle ] && img=center
    imref "$WORK/im-a-$g$x$y.png" "$img" "$x" "$y" 24 'Hxg Place'
done
imref "$WORK/im-se-big.png" southeast 20 10 60 'Kiln'
imref "$WORK/im-pct.png" southeast 30 20 20 'pct'
imref "$WORK/im-m.png" center 0 0 14 '<b>a & b</b> <i>c</i> <span'
convert "${IMARGS[@]}" -size 1x1 xc:none null: 2>>"$WORK/im.err"
inkboxes "$WORK"/im-*.png "$O"/a-*.png

for p in $APLACE; do
    IFS=: read -r g x y <<<"$p"
    k=${INK[$O/a-$g$x$y.png]:-missing} m=${INK[$WORK/im-a-$g$x$y.png]:-missing}
    check "$N/annotation-place-$g$(sgn $x)$(sgn $y)-vs-convert" \
        "ink box (W H X Y) $k, ImageMagick's $m (tolerance 2 px)" within "$k" "$m" 2
done
k=${INK[$O/a-default.png]:-missing} m=${INK[$O/a-northwest00.png]:-missing}
check "$N/annotation-gravity-defaults-to-northwest" "ink box $k, northwest gives $m" [ "$k" = "$m" ]
k=${INK[$O/a-se-big.png]:-missing} m=${INK[$WORK/im-se-big.png]:-missing}
check "$N/annotation-place-southeast-size60-vs-convert" "ink box $k, ImageMagick's $m" within "$k" "$m" 2
k=${INK[$O/a-pct.png]:-missing} m=${INK[$WORK/im-pct.png]:-missing}
check "$N/annotation-percent-offsets-refer-to-input" "ink box $k, ImageMagick +30+20 gives $m" within "$k" "$m" 2

# only the expected region changes: southeast ink near the bottom-right
# corner (inside the offsets), northwest ink near the top-left
read -r w h x y <<<"${INK[$O/a-southeast105.png]:-missing}"
check "$N/annotation-southeast-ink-in-corner" "ink box ${w}x$h+$x+$y, expected right edge 284..290, bottom 186..195" \
    awk -v r=$((x + w)) -v b=$((y + h)) 'BEGIN { exit !(r >= 284 && r <= 290 && b >= 186 && b <= 195) }'
read -r w h x y <<<"${INK[$O/a-northwest129.png]:-missing}"
check "$N/annotation-northwest-ink-in-corner" "ink box ${w}x$h+$x+$y, expected left 12..16, top 9..18 and inside 150x100" \
    awk -v x=$x -v y=$y -v r=$((x + w)) -v b=$((y + h)) 'BEGIN { exit !(x >= 12 && x <= 16 && y >= 9 && y <= 18 && r < 150 && b < 100) }'

# ---------------------------------------------- annotation: colour, size
read -r w h x y <<<"${INK[$O/a-green.png]:-missing}"
stem="$((x + 4)),$((y + h / 2))"
line=$(probe "$O/a-green.png" "$stem" | tail -n 1)
check "$N/annotation-colour-honoured" "stem pixel ($stem) is $line, expected 0 255 0" near "$line" "0 255 0 255" 1
H20=$(cut -d' ' -f2 <<<"${INK[$O/a-h20.png]:-missing}")
H40=$(cut -d' ' -f2 <<<"${INK[$O/a-h40.png]:-missing}")
H80=$(cut -d' ' -f2 <<<"${INK[$O/a-h80.png]:-missing}")
# DejaVu Sans capital height is 0.729 em: size is pixels
check "$N/annotation-size-is-pixels" "cap heights $H20/$H40/$H80 px at sizes 20/40/80, expected ~15/29/58" \
    near "$H20 $H40 $H80" "15 29 58" 2
check "$N/annotation-size-scales-linearly" "ink heights $H20 -> $H40 -> $H80, expected ratios ~2" \
    awk -v a="$H20" -v b="$H40" -v c="$H80" 'BEGIN { exit !(b / a > 1.8 && b / a < 2.2 && c / b > 1.85 && c / b < 2.15) }'

# ----------------------------------------------------- annotation: clip
read -r w h x y <<<"${INK[$O/a-clip.png]:-missing}"
check "$N/annotation-partly-outside-clipped" "ink box ${w}x$h+$x+$y, expected to start at 0,0" [ "$x.$y" = 0.0 ]
k=${INK[$O/a-huge.png]:-missing}
check "$N/annotation-larger-than-image-clipped" "ink box $k, expected ink across most of the 300x200 image" \
    awk -v k="$k" 'BEGIN { split(k, a, " "); exit !(a[1] >= 250 && a[2] >= 150) }'
check "$N/annotation-wholly-outside-unchanged" "ink box ${INK[$O/a-outside.png]:-missing}, expected none" \
    [ "${INK[$O/a-outside.png]:-missing}" = none ]

# ------------------------------------------------ annotation: alpha, RGBA
read -r w h x y <<<"$(inkbox "$O/a-mask.png" '#808080')"
stem="$((x + 4)),$((y + h / 2))"
line=$(probe "$O/a-mask.png" "$stem" | tail -n 1)
check "$N/annotation-stem-fully-covered" "white text stem ($stem) is $line" near "$line" "255 255 255 255" 0
# red at alpha 128/255 over grey 128: 128 + 127 * .502, 128 * .498
line=$(probe "$O/a-alpha.png" "$stem" | tail -n 1)
check "$N/annotation-alpha-colour-blends-half" "stem ($stem) is $line, expected ~192 64 64" near "$line" "192 64 64 255" 2
line=$(probe "$O/a-alpha.png" 290,190 | tail -n 1)
check "$N/annotation-alpha-elsewhere-unchanged" "pixel 290,190 is $line" near "$line" "128 128 128 255" 0
line=$(probe "$O/a-clear.png" "$stem" 290,190 | tail -n 2 | tr '\n' ' ')
check "$N/annotation-rgba-transparent-input" "stem / background are $line, expected opaque white / alpha 0" \
    near "$(echo $line | cut -d' ' -f1-4,8)" "255 255 255 255 0" 1
# OVER: alpha .502 + .502 * .498 = .752 (192); red .502 / .752 = 170, blue .25 / .752 = 85
line=$(probe "$O/a-halfblue.png" "$stem" 290,190 | tail -n 2 | tr '\n' ' ')
check "$N/annotation-rgba-over-half-transparent" "stem / background are $line, expected ~170 0 85 192 / 0 0 255 128" \
    near "$line" "170 0 85 192 0 0 255 128" 2

# ------------------------------------------------------ annotation: fonts
warn() { jq -r --arg d "$1" '.jobs[]? | select(.destination == $d) | .warnings | join("|")' "$WORK/aw.out" | head -n 1; }
for d in f-serif f-serif-case f-sans f-generic; do
    wv=$(warn "/out/$d.png")
    check "$N/annotation-font-$d-no-warning" "warnings: $wv" [ -z "$wv" ]
done
wv=$(warn /out/f-missing.png)
check "$N/annotation-missing-font-warns" "warnings: \"$wv\", expected font \"Nonexistent Sans\" is not installed; used \"$FALLBACK\"" \
    [ "$wv" = "font \"Nonexistent Sans\" is not installed; used \"$FALLBACK\"" ]
check "$N/annotation-font-family-honoured" "DejaVu Serif and DejaVu Sans outputs are identical" \
    [ "$(ae "$O/f-serif.png" "$O/f-sans.png")" != 0 ]
check "$N/annotation-font-family-case-insensitive" "\"dejavu serif\" differs from \"DejaVu Serif\"" \
    [ "$(ae "$O/f-serif.png" "$O/f-serif-case.png")" = 0 ]
if [ "$FALLBACK" = "DejaVu Sans" ]; then
    check "$N/annotation-missing-font-renders-fallback" "\"Nonexistent Sans\" differs from \"$FALLBACK\"" \
        [ "$(ae "$O/f-missing.png" "$O/f-sans.png")" = 0 ]
else
    skip "$N/annotation-missing-font-renders-fallback" "fontconfig's fallback here is $FALLBACK, not DejaVu Sans"
fi

# ------------------------------------------------------ annotation: text
k=${INK[$O/a-markup.png]:-missing} m=${INK[$WORK/im-m.png]:-missing}
check "$N/annotation-markup-drawn-literally" "ink box $k, ImageMagick's $m" within "$k" "$m" 3
# two lines at southeast: the short line ends where the long one does
read -r w h x y <<<"${INK[$O/a-lines.png]:-missing}"
convert "$O/a-lines.png" -crop "300x$((h / 3))+0+$((y + h - h / 3))" +repage "$WORK/lastline.png"
read -r w2 _ x2 _ <<<"$(inkbox "$WORK/lastline.png" black)"
check "$N/annotation-lines-aligned-by-gravity" "block ${w}+$x, last line ${w2:-?}+${x2:-?}: expected right-aligned, shorter" \
    awk -v r=$((x + w)) -v r2=$((${x2:-0} + ${w2:-0})) -v w=$w -v w2=${w2:-0} 'BEGIN { d = r - r2; exit !(d >= -2 && d <= 2 && w2 < w / 2) }'
check "$N/annotation-1000-characters-clipped" "job /out/long.png: ${JST[/out/long.png]:-missing} ${JERR[/out/long.png]:-}" \
    job_finished /out/long.png
e=${JERR[/out/toolarge.png]:-}
check "$N/annotation-oversized-text-refused" "job /out/toolarge.png: ${JST[/out/toolarge.png]:-missing}: $e" \
    eval '[ "${JST[/out/toolarge.png]:-}" = FAILED ] && [[ $e == *transformations\[0\].text:*megapixels* ]]'

# ------------------------------------------------------ watermark: place
# ImageMagick: -gravity G -geometry +X+Y -composite (same convention);
# opacity 5: -compose dissolve 50 multiplies the watermark's alpha by .5
# maxdiffs "KILN REF"...: MD[kiln] = the largest difference of any channel
# between the pair, in levels (0..255); one ImageMagick run
declare -A MD
maxdiffs() {
    local pr args=() names=() v i=0
    for pr; do
        set -- $pr
        if [ -f "$1" ] && [ -f "$2" ]; then
            args+=(\( "$1" "$2" -compose difference -composite \)); names+=("$1")
        else MD[$1]=missing; fi
    done
    [ ${#names[@]} -gt 0 ] || return 0
    while read -r v; do MD[${names[$i]}]=$v; i=$((i + 1)); done < <(
        convert "${args[@]}" -format '%[fx:int(255 * max(maxima.r, max(maxima.g, maxima.b)) + 0.5)]\n' info: 2>/dev/null)
}
IMARGS=() PAIRS=()
for p in $WPLACE; do
    IFS=: read -r g x y <<<"$p"
    img=$g; [ "$g" = middle ] && img=center
    geo=$(sgn $x)$(sgn $y)
    IMARGS+=(\( "$I/base.png" "$ROOT/wm.png" -gravity "$img" -geometry "$geo" -composite
             -write PNG24:"$WORK/im-w-$g$x$y.png" +delete \)
             \( "$I/base.png" "$ROOT/wm.png" -gravity "$img" -geometry "$geo" -compose dissolve
             -define compose:args=50 -composite -write PNG24:"$WORK/im-w5-$g$x$y.png" +delete \)
             -compose over)
    PAIRS+=("$O/w-$g$x$y.png $WORK/im-w-$g$x$y.png" "$O/w5-$g$x$y.png $WORK/im-w5-$g$x$y.png")
done
IMARGS+=(\( "$I/base.png" "$ROOT/wm.png" -gravity center -composite -write PNG24:"$WORK/im-w.png" +delete \))
PAIRS+=("$O/w-alias.png $WORK/im-w.png")
if [ -r "$BIRD" ]; then
    IMARGS+=(\( "$I/big.png" "$ROOT/bird.png" -gravity southeast -geometry +15+10 -composite
             -write PNG24:"$WORK/im-b.png" +delete \))
    PAIRS+=("$O/w-bird.png $WORK/im-b.png")
fi
convert "${IMARGS[@]}" -size 1x1 xc:none null: 2>>"$WORK/im.err"
maxdiffs "${PAIRS[@]}"
for p in $WPLACE; do
    IFS=: read -r g x y <<<"$p"
    for v in w w5; do
        md=${MD[$O/$v-$g$x$y.png]:-missing}
        what=place; [ $v = w5 ] && what=opacity5
        check "$N/watermark-$what-$g$(sgn $x)$(sgn $y)-vs-convert" "max difference $md levels (> 1)" \
            awk -v d="$md" 'BEGIN { exit !(d ~ /^[0-9]+$/ && d <= 1) }'
    done
done
md=${MD[$O/w-alias.png]:-missing}
check "$N/watermark-Source-alias-and-height-only" "max difference $md levels against convert (> 1)" \
    awk -v d="$md" 'BEGIN { exit !(d ~ /^[0-9]+$/ && d <= 1) }'
check "$N/watermark-opacity-0-unchanged" "differs from the input" [ "$(ae "$O/w-op0.png" "$I/base.png")" = 0 ]

# ---------------------------------------------------- watermark: scaling
# foot NAME FILE "W H X Y" [BG]: the footprint of a solid watermark
foot() {
    local k; k=$(inkbox "$2" "${4:-black}")
    check "$N/watermark-$1" "footprint $k, expected $3" [ "$k" = "$3" ]
}
foot width-only-height-follows-aspect "$O/w-w80.png" "80 40 10 20"
foot height-only-width-follows-aspect "$O/w-h10.png" "20 10 275 185"
# centre: 300/2 - 150/2, 200/2 - 75/2 (each halved alone, as ImageMagick)
foot percent-width-refers-to-base "$O/w-w50pct.png" "150 75 75 63"
foot percent-height-refers-to-base "$O/w-h25pct.png" "100 50 100 0"
foot both-sides-stretch "$O/w-30x30.png" "30 30 270 0"
foot larger-than-base-clipped "$O/w-bigger.png" "300 200 0 0"
foot pushed-past-edge-clipped "$O/w-edge.png" "20 10 280 190"
check "$N/watermark-wholly-outside-unchanged" "differs from the input" [ "$(ae "$O/w-outside.png" "$I/black.png")" = 0 ]
line=$(probe "$O/w-w80.png" 50,40 | tail -n 1)
check "$N/watermark-scaled-solid-colour-kept" "pixel 50,40 is $line" near "$line" "0 0 255 255" 1
# halfred.png holds alpha 127 (ImageMagick rounds 127.5 down)
line=$(probe "$O/w-clear.png" 10,10 100,100 | tail -n 2 | tr '\n' ' ')
check "$N/watermark-rgba-base-keeps-alpha" "pixels $line, expected 255 0 0 127, then alpha 0" \
    near "$(echo $line | cut -d' ' -f1-4,8)" "255 0 0 127 0" 0

if [ -r "$BIRD" ]; then
    md=${MD[$O/w-bird.png]:-missing}
    check "$N/watermark-bird-alpha-vs-convert" "max difference $md levels (> 1)" awk -v d="$md" 'BEGIN { exit !(d ~ /^[0-9]+$/ && d <= 1) }'
    convert "$ROOT/bird.png" -filter Lanczos -resize 350x "$WORK/bird-350.png"
    convert "$I/big.png" "$WORK/bird-350.png" -gravity center -composite PNG24:"$WORK/im-b2.png"
    PSNR_VALUE=""
    if psnr_ge "$O/w-bird-half.png" "$WORK/im-b2.png" 30; then ok "$N/watermark-bird-alpha-scaled-vs-convert"
    else fail "$N/watermark-bird-alpha-scaled-vs-convert" "PSNR ${PSNR_VALUE:-?} dB against convert -resize 350x + composite (< 30)"; fi
else
    skip "$N/watermark-bird-alpha" "$BIRD is absent (set SHARED to the shared folder)"
fi

# ----------------------------------------------------- watermark: errors
e=${JERR[/out/missing.png]:-}
check "$N/watermark-missing-fails-naming-path" "job /out/missing.png: ${JST[/out/missing.png]:-missing}: $e" \
    eval '[ "${JST[/out/missing.png]:-}" = FAILED ] && [[ $e == "jobs[0].transformations[0].source: "*/no/such-wm.png* ]]'
check "$N/watermark-missing-nothing-written" "$O/missing.png exists" [ ! -e "$O/missing.png" ]
e=$(jq -r 'select(.request | endswith("neither.json")) | [.status, (.errors[]?.message)] | join(" ")' "$WORK/aw.out")
check "$N/watermark-needs-width-or-height" "request neither.json: $e" \
    eval '[[ $e == FAILED*"one of width or height is required"* ]]'
finish
