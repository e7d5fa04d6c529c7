#!/usr/bin/env bash
# The geometry ops on the magick backend (plugins/backend-magick: resize,
# crop, fitmethod, zoom, rotate, watermark, annotation), differential
# against the libvips backend (the default) and against ImageMagick's
# `convert`. A seeded generator ($SEED; KILN_TEST_SEED overrides) makes the
# cases: sizes in px, %, w and h, one side or both, every gravity (and
# "middle"), offsets in px and %, fit true/false/default, every fit_type,
# letterbox colours with alpha and opacities, zoom levels, angles that are
# multiples of 90 and fractional ones, watermarks scaled and not, faded and
# not, texts in two fonts; on inputs with and without alpha, plus a real
# photo when $SHARED/testdata is there. Every case runs on both backends.
#  - Shapes: every output of both backends has the size and bands
#    `kiln compile --source FILE` gives (the shape infer() promises), as
#    written: an alpha channel that is opaque everywhere stays (one fixed
#    case, a small letterbox, where ImageMagick's PNG writer would drop it).
#  - crop, rotate by multiples of 90: identical (AE 0) to the libvips
#    backend and to `convert -crop WxH+X+Y +repage` / `convert -rotate D`
#    (the region or size computed here from ops.md, independently).
#  - resize, fitmethod, zoom: identical to the equivalent `convert -filter
#    Lanczos -resize WxH!` (then -crop / -extent), and at least
#    $PSNR_REDUCE dB from the libvips backend when every axis is reduced
#    ($PSNR_TINY to under 8 px, where libvips' box pre-shrink weighs), and
#    $PSNR_ENLARGE dB when one is enlarged: libvips 8.14 enlarges with
#    bicubic half an output pixel up-left of the pixel-centre grid that
#    ImageMagick and kiln's reductions use (centred, the two agree to 51 dB).
#  - rotate by other angles: identical to `convert -alpha set -background
#    none -virtual-pixel background -define distort:viewport=WxH+0+0
#    -distort SRT "cx,cy 1 D ncx,ncy"` (RotateImage's distortion, centre to
#    centre on the infer() canvas), at least $PSNR_ROTATE dB from libvips.
#  - watermark: identical to `convert base ( wm [-filter Lanczos -resize
#    WxH!] -alpha set -channel A -evaluate multiply K +channel ) -geometry
#    +X+Y -composite` (the resize written to 8 bits first, as the backend
#    rounds it); within 1 level of the libvips backend when the watermark
#    is not scaled, at least the resampling floors when it is.
#  - annotation: identical to `convert -font FILE -pointsize N -fill C
#    -gravity G -annotate +X+Y TEXT`; against the libvips backend (Pango,
#    another rasteriser and line height) the ink's edges within $ANN_BOX px,
#    its amount within $ANN_INK, and the ink difference at most $ANN_REL
#    of the ink at the best shift of up to 1 px (see ink() below). Texts
#    with "%", "@", backslashes, markup and CR LF are drawn literally (the
#    same ink as libvips); a missing family warns as on libvips, a generic
#    one does not; a text over 64 MP is refused at .text on both.
# Between the backends the op runs as bound: libvips at -O0. ImageMagick
# 6.9's PNG24 writer truncates 16-bit samples to 8 bits while its PNG32
# writer and the backend (mk_settle) round, so every reference is PNG32.
cd "$(dirname "$0")/../.." || exit 1
. tests/exec/lib.sh
exec_setup
N=magick_geometry_ops
SEED=${KILN_TEST_SEED:-4242}
RANDOM=$SEED
PSNR_REDUCE=40  # measured 42.5 to 55 dB (17 seeds)
PSNR_TINY=30    # reductions to under 8 px a side: measured 35 to 52 dB
PSNR_ENLARGE=18 # measured 20.8 (the photo's sharp detail, shifted half a
                # pixel) to 53 dB
PSNR_ROTATE=40  # measured 50.2 to 54 dB
ANN_BOX=2       # px: ImageMagick's east column is 1 px left of libvips'
ANN_INK=0.15    # relative difference of the amount of ink: measured 0.065
ANN_REL=0.75    # ink difference relative to the ink, best 1-px shift: a
                # line that lands a pixel lower on one backend (line
                # heights round differently) gives about 0.5, glyphs
                # unrelated to each other about 2
echo "# info: seed $SEED (KILN_TEST_SEED=$SEED reproduces these cases)"

FONT_SANS=$(fc-match -f '%{file}' 'DejaVu Sans' 2>/dev/null)
FONT_SERIF=$(fc-match -f '%{file}' 'DejaVu Serif' 2>/dev/null)
HAS_FONTS=1
case "$FONT_SANS$FONT_SERIF" in
*DejaVuSans.ttf*DejaVuSerif.ttf) ;;
*) HAS_FONTS=0; skip "$N/annotation" "fonts DejaVu Sans and DejaVu Serif are not installed (fonts-dejavu-core)" ;;
esac

# ------------------------------------------------------------ fixtures
I=$ROOT/in
{
    convert rose: -resize 97x61! -strip PNG24:"$I/rose.png" &&
        convert "$I/rose.png" \( -size 61x97 gradient:white-black -rotate 90 \) \
            -alpha off -compose CopyOpacity -composite -strip PNG32:"$I/rosea.png" &&
        convert rose: -resize 96x60! -strip PNG24:"$I/even.png" &&
        convert -size 200x120 gradient:'#2060a0-#e0c040' -strip PNG24:"$I/base.png" &&
        convert -size 200x120 xc:'rgba(40,80,160,0.5)' -strip PNG32:"$I/basea.png" &&
        convert -size 64x32 xc:'rgba(255,0,0,0.5)' -fill 'rgba(0,255,0,0.9)' \
            -draw 'rectangle 8,4 40,20' -strip PNG32:"$ROOT/wm.png" &&
        convert -size 40x20 gradient:'#0000ff-#ffff00' -strip PNG24:"$ROOT/wmo.png"
} 2>"$WORK/im.err" || fail "$N/fixtures" "$(head -c 300 "$WORK/im.err")"
declare -A SW SH SA
SW[rose]=97 SH[rose]=61 SA[rose]=0
SW[rosea]=97 SH[rosea]=61 SA[rosea]=1
SW[even]=96 SH[even]=60 SA[even]=0
SW[base]=200 SH[base]=120 SA[base]=0
SW[basea]=200 SH[basea]=120 SA[basea]=1
IMGS="rose rosea even"
if [ -r "$TESTDATA/sample.jpg" ]; then
    # One real photo, as PNG so that both backends read the same pixels.
    convert "$TESTDATA/sample.jpg" -strip PNG24:"$I/photo.png" 2>/dev/null
    SW[photo]=290 SH[photo]=442 SA[photo]=0
    IMGS="$IMGS photo"
else
    skip "$N/photo" "$TESTDATA/sample.jpg is absent (set SHARED to the shared folder): synthetic images only"
fi
declare -A WMW WMH
WMW[/wm.png]=64 WMH[/wm.png]=32 WMW[/wmo.png]=40 WMH[/wmo.png]=20

# -------------------------------------------------------- geometry (ops.md)
# Results in globals (no subshells: thousands of calls).
R=0
# rdiv N D: R = N / D rounded half away from zero (D > 0)
rdiv() { if [ "$1" -ge 0 ]; then R=$(((2 * $1 + $2) / (2 * $2))); else R=$((-((2 * -$1 + $2) / (2 * $2)))); fi; }
# lpx LEN AXIS(w|h|x|y) IW IH: R = the length in px (section 2)
lpx() {
    case $1 in
    *%) case $2 in w | x) rdiv $((${1%\%} * $3)) 100 ;; *) rdiv $((${1%\%} * $4)) 100 ;; esac ;;
    *w) rdiv $((${1%w} * $3)) 100 ;;
    *h) rdiv $((${1%h} * $4)) 100 ;;
    -) R=0 ;;
    *) R=$1 ;;
    esac
}
# derive WLEN HLEN IW IH RW RH: DW DH, lengths against IW x IH, a missing
# side from the aspect RW:RH
DW=0 DH=0
derive() {
    if [ "$1" != - ]; then lpx "$1" w "$3" "$4"; DW=$R; fi
    if [ "$2" != - ]; then lpx "$2" h "$3" "$4"; DH=$R; fi
    if [ "$1" = - ]; then rdiv $((DH * $5)) "$6"; DW=$R; fi
    if [ "$2" = - ]; then rdiv $((DW * $6)) "$5"; DH=$R; fi
}
# place G CW CH RW RH DX DY: PX PY (section 3, ImageMagick's convention)
PX=0 PY=0
place() {
    case $1 in
    *west) PX=$6 ;;
    *east) PX=$(($2 - $4 - $6)) ;;
    *) PX=$(($2 / 2 - $4 / 2 + $6)) ;;
    esac
    case $1 in
    north*) PY=$7 ;;
    south*) PY=$(($3 - $5 - $7)) ;;
    *) PY=$(($3 / 2 - $5 / 2 + $7)) ;;
    esac
}
# box IW IH BW BH COVER(0|1): BXW BXH, scaled keeping aspect to fit inside
# (0) or to cover (1)
BXW=0 BXH=0
box() {
    local wl=0
    [ $(($3 * $2)) -le $(($4 * $1)) ] && wl=1
    if [ $wl != "$5" ]; then BXW=$3; rdiv $(($2 * $3)) "$1"; BXH=$R
    else BXH=$4; rdiv $(($1 * $4)) "$2"; BXW=$R; fi
    [ $BXW -ge 1 ] || BXW=1
    [ $BXH -ge 1 ] || BXH=1
}
sg() { if [ "$1" -lt 0 ]; then printf '%s' "$1"; else printf '+%s' "$1"; fi; }
P=
# pick WORD...: P = one of them (no subshells anywhere near RANDOM: bash
# reseeds it in each one, and the cases would not follow the seed)
pick() { local a=("$@"); P=${a[RANDOM % ${#a[@]}]}; }
G9="northwest north northeast west center east southwest south southeast middle"
# rsize N: P = a random size length for an axis of N px: px, %, w or h
rsize() {
    case $((RANDOM % 5)) in
    0) P="$((RANDOM % 90 + 5))%" ;;
    1) P="$((RANDOM % 90 + 10))w" ;;
    2) P="$((RANDOM % 90 + 10))h" ;;
    *) P=$((RANDOM % ($1 + $1 / 2) + 1)) ;;
    esac
}

# ------------------------------------------------------------- the cases
# Each case: a job (/out/cN.png) on source CS[N], its transformation
# CJ[N], its kind CK[N], its reference command (file ref/N.args, the
# arguments of `convert` NUL-separated, writing $WORK/ref/N.png) and
# CE[N]=1 when a resample enlarges an axis.
declare -A CS CJ CK CE CT
mkdir -p "$WORK/ref" "$WORK/m" "$WORK/v" "$WORK/wms"
NC=0
addcase() { # SRC KIND JSON ARGS...
    NC=$((NC + 1))
    CS[$NC]=$1 CK[$NC]=$2 CJ[$NC]=$3 CE[$NC]=0 CT[$NC]=0
    shift 3
    printf '%s\0' "$@" "PNG32:$WORK/ref/$NC.png" >"$WORK/ref/$NC.args"
}
enl() { # SW SH IW IH: the case's resample makes SW x SH of IW x IH
    if [ "$1" -gt "$3" ] || [ "$2" -gt "$4" ]; then CE[$NC]=1; fi
    if [ "$1" -lt 8 ] || [ "$2" -lt 8 ]; then CT[$NC]=1; fi
}

# crop: the region of ops_crop_region (geom.h), recomputed here
for _ in $(seq 44); do
    pick $IMGS; s=$P; iw=${SW[$s]} ih=${SH[$s]}
    rsize "$iw"; w=$P; rsize "$ih"; h=$P
    case $((RANDOM % 4)) in 0) w=- ;; 1) h=- ;; esac
    pick $G9; g=$P; pick true false -; fit=$P
    derive "$w" "$h" "$iw" "$ih" "$iw" "$ih"; rw=$DW rh=$DH
    # offsets in [-rw/2, iw/2]: a fit false region always overlaps
    pick - $((RANDOM % (rw / 2 + iw / 2 + 1) - rw / 2)) "$((RANDOM % 30 - 5))%"; xo=$P
    pick - $((RANDOM % (rh / 2 + ih / 2 + 1) - rh / 2)) "$((RANDOM % 30 - 5))%"; yo=$P
    lpx "$xo" x "$iw" "$ih"; dx=$R; lpx "$yo" y "$iw" "$ih"; dy=$R
    if [ "$fit" = false ] && { [ $dx -lt $((-rw / 2)) ] || [ $dy -lt $((-rh / 2)) ]; }; then
        xo=- yo=- dx=0 dy=0
    fi
    if [ "$fit" != false ]; then
        if [ $rw -gt $iw ] || [ $rh -gt $ih ]; then box $rw $rh $iw $ih 0; rw=$BXW rh=$BXH; fi
        place "$g" $iw $ih $rw $rh $dx $dy
        x=$((PX < 0 ? 0 : (PX > iw - rw ? iw - rw : PX)))
        y=$((PY < 0 ? 0 : (PY > ih - rh ? ih - rh : PY)))
    else
        place "$g" $iw $ih $rw $rh $dx $dy
        x0=$((PX < 0 ? 0 : PX)) y0=$((PY < 0 ? 0 : PY))
        x1=$((PX + rw > iw ? iw : PX + rw)) y1=$((PY + rh > ih ? ih : PY + rh))
        x=$x0 y=$y0 rw=$((x1 - x0)) rh=$((y1 - y0))
    fi
    j="{\"type\":\"crop\",\"gravity\":\"$g\""
    [ "$w" != - ] && j="$j,\"width\":$(jlen "$w")"
    [ "$h" != - ] && j="$j,\"height\":$(jlen "$h")"
    [ "$xo" != - ] && j="$j,\"xoffset\":$(jlen "$xo")"
    [ "$yo" != - ] && j="$j,\"yoffset\":$(jlen "$yo")"
    [ "$fit" != - ] && j="$j,\"fit\":$fit"
    addcase "$s" exact "$j}" "$I/$s.png" -crop "${rw}x${rh}+$x+$y" +repage
done

# rotate: quarter turns (exact) and fractional angles (the distortion)
for _ in $(seq 22); do
    pick $IMGS; s=$P; iw=${SW[$s]} ih=${SH[$s]}
    case $((RANDOM % 3)) in
    0) pick 90 180 270 360 0; d=$P ;;
    *) pick 30.5 45 1 359.99 123.45 0.01 89.99 200.5 $((RANDOM % 359 + 1)).$((RANDOM % 100)); d=$P ;;
    esac
    if [ $(awk -v d="$d" 'BEGIN { print (d / 90 == int(d / 90)) }') = 1 ]; then
        addcase "$s" exact "{\"type\":\"rotate\",\"degrees\":$d}" "$I/$s.png" -rotate "$d"
    else
        read -r ow oh < <(awk -v d="$d" -v w="$iw" -v h="$ih" 'BEGIN {
            r = d * atan2(0, -1) / 180; c = cos(r); s = sin(r); c = c < 0 ? -c : c; s = s < 0 ? -s : s
            a = int(w * c + h * s + 0.5); b = int(w * s + h * c + 0.5)
            print (a < 1 ? 1 : a), (b < 1 ? 1 : b) }')
        addcase "$s" rotate "{\"type\":\"rotate\",\"degrees\":$d}" "$I/$s.png" -alpha set \
            -background none -virtual-pixel background -define "distort:viewport=${ow}x${oh}+0+0" \
            -distort SRT "$(awk -v a="$iw" -v b="$ih" -v c="$ow" -v e="$oh" -v d="$d" \
                'BEGIN { print a / 2 "," b / 2, 1, d, c / 2 "," e / 2 }')" +repage
    fi
done

# resize
for _ in $(seq 22); do
    pick $IMGS; s=$P; iw=${SW[$s]} ih=${SH[$s]}
    rsize "$iw"; w=$P; rsize "$ih"; h=$P
    case $((RANDOM % 3)) in 0) w=- ;; 1) h=- ;; esac
    derive "$w" "$h" "$iw" "$ih" "$iw" "$ih"
    if [ $((DW * DH)) -gt 250000 ]; then w=$((iw / 3)) h=- DW=$((iw / 3)); rdiv $((DW * ih)) $iw; DH=$R; fi
    j="{\"type\":\"resize\""
    [ "$w" != - ] && j="$j,\"width\":$(jlen "$w")"
    [ "$h" != - ] && j="$j,\"height\":$(jlen "$h")"
    addcase "$s" resample "$j}" "$I/$s.png" -filter Lanczos -resize "${DW}x${DH}!"
    enl $DW $DH $iw $ih
done

# fitmethod: every fit_type, letterbox colours with alpha and opacities
FITS="box stretch cropbox letterbox outside"
for _ in $(seq 30); do
    pick $IMGS; s=$P; iw=${SW[$s]} ih=${SH[$s]}
    pick $FITS; ft=$P; pick $G9; g=$P
    rsize "$iw"; w=$P; rsize "$ih"; h=$P
    case $((RANDOM % 3)) in 0) w=- ;; 1) h=- ;; esac
    derive "$w" "$h" "$iw" "$ih" "$iw" "$ih"; bw=$DW bh=$DH
    pick '#336699' '#ff000080' '#00ff00' '#ffffff00' '#102030c0'; col=$P
    pick - 10 7 5 2.5 0; op=$P
    case $ft in
    stretch) sw=$bw sh=$bh ;;
    box | letterbox) box $iw $ih $bw $bh 0; sw=$BXW sh=$BXH ;;
    *) box $iw $ih $bw $bh 1; sw=$BXW sh=$BXH ;;
    esac
    if [ $((sw * sh)) -gt 250000 ] || [ $((bw * bh)) -gt 250000 ]; then continue; fi
    j="{\"type\":\"fitmethod\",\"fit_type\":\"$ft\",\"color\":\"$col\",\"gravity\":\"$g\""
    [ "$w" != - ] && j="$j,\"width\":$(jlen "$w")"
    [ "$h" != - ] && j="$j,\"height\":$(jlen "$h")"
    [ "$op" != - ] && j="$j,\"opacity\":$op"
    args=("$I/$s.png" -filter Lanczos -resize "${sw}x${sh}!")
    case $ft in
    cropbox)
        place "$g" $sw $sh $bw $bh 0 0
        args+=(-crop "${bw}x${bh}+$PX+$PY" +repage) ;;
    letterbox)
        place "$g" $bw $bh $sw $sh 0 0
        a=255; [ ${#col} = 9 ] && a=$((16#${col:7:2}))
        pa=$(awk -v a=$a -v o="${op/-/10}" 'BEGIN { print int(a * o / 10 + 0.5) }')
        args+=(-alpha set -background "$(printf '%s%02x' "${col:0:7}" "$pa")" -compose Copy
            -extent "${bw}x${bh}$(sg $((-PX)))$(sg $((-PY)))") ;;
    esac
    addcase "$s" resample "$j}" "${args[@]}"
    enl $sw $sh $iw $ih
done

# A letterbox that pads nothing, with see-through padding: alpha that is
# opaque everywhere, which must still be written (a small image, where
# ImageMagick's PNG writer looks for a palette and would drop it).
addcase rose resample '{"type":"fitmethod","fit_type":"letterbox","width":10,"height":6,"color":"#ffffff00","gravity":"center"}' \
    "$I/rose.png" -filter Lanczos -resize '10x6!' -alpha set
enl 10 6 97 61
# zoom: levels in halves, so that round(n / (1 + level)) is exact here
for _ in $(seq 18); do
    pick $IMGS; s=$P; iw=${SW[$s]} ih=${SH[$s]}
    pick 0 0.5 1 1.5 2.5 4 10; lv=$P
    rsize "$iw"; w=$P; rsize "$ih"; h=$P
    case $((RANDOM % 3)) in 0) w=- ;; 1) h=- ;; esac
    derive "$w" "$h" "$iw" "$ih" "$iw" "$ih"; ow=$DW oh=$DH
    z2=$(awk -v l="$lv" 'BEGIN { print 2 + 2 * l }')
    rw=$(((4 * iw + z2) / (2 * z2))) rh=$(((4 * ih + z2) / (2 * z2)))
    [ $rw -ge 1 ] || rw=1
    [ $rh -ge 1 ] || rh=1
    place center $iw $ih $rw $rh 0 0; rx=$PX ry=$PY
    box $rw $rh $ow $oh 1; sw=$BXW sh=$BXH
    if [ $((sw * sh)) -gt 250000 ]; then continue; fi
    place center $sw $sh $ow $oh 0 0
    j="{\"type\":\"zoom\",\"level\":$lv"
    [ "$w" != - ] && j="$j,\"width\":$(jlen "$w")"
    [ "$h" != - ] && j="$j,\"height\":$(jlen "$h")"
    addcase "$s" resample "$j}" "$I/$s.png" -crop "${rw}x${rh}+$rx+$ry" +repage \
        -filter Lanczos -resize "${sw}x${sh}!" -crop "${ow}x${oh}+$PX+$PY" +repage
    enl $sw $sh $rw $rh
done

# watermark: scaled or not, faded or not, on opaque and translucent bases
for _ in $(seq 18); do
    pick base basea rose rosea; s=$P; iw=${SW[$s]} ih=${SH[$s]}
    pick /wm.png /wmo.png; wm=$P; mw=${WMW[$wm]} mh=${WMH[$wm]}
    pick $G9; g=$P; pick - 10 7 2.5 0; op=$P
    case $((RANDOM % 3)) in
    0) w=$mw h=- ;;
    1) rsize "$iw"; w=$P h=- ;;
    *) rsize "$iw"; w=$P; rsize "$ih"; h=$P ;;
    esac
    [ $((RANDOM % 4)) = 0 ] && [ "$h" = - ] && { h=$w; w=-; case $h in *%) ;; *w | *h) ;; *) h=$mh ;; esac; }
    derive "$w" "$h" "$iw" "$ih" "$mw" "$mh"; ww=$DW wh=$DH
    if [ $((ww * wh)) -gt 250000 ] || [ $ww -lt 1 ] || [ $wh -lt 1 ]; then continue; fi
    pick - $((RANDOM % 40 - 10)) "$((RANDOM % 20))%"; xo=$P
    pick - $((RANDOM % 40 - 10)) "$((RANDOM % 20))%"; yo=$P
    lpx "$xo" x "$iw" "$ih"; dx=$R; lpx "$yo" y "$iw" "$ih"; dy=$R
    place "$g" $iw $ih $ww $wh $dx $dy
    j="{\"type\":\"watermark\",\"source\":\"$wm\",\"gravity\":\"$g\""
    [ "$w" != - ] && j="$j,\"width\":$(jlen "$w")"
    [ "$h" != - ] && j="$j,\"height\":$(jlen "$h")"
    [ "$xo" != - ] && j="$j,\"xoffset\":$(jlen "$xo")"
    [ "$yo" != - ] && j="$j,\"yoffset\":$(jlen "$yo")"
    [ "$op" != - ] && j="$j,\"opacity\":$op"
    k=$(awk -v o="${op/-/10}" 'BEGIN { print o / 10 }')
    wsrc=$ROOT$wm
    if [ $ww != $mw ] || [ $wh != $mh ]; then
        wsrc=$WORK/wms/$((NC + 1)).png
        convert "$ROOT$wm" -filter Lanczos -resize "${ww}x${wh}!" PNG32:"$wsrc"
        kind=wmscaled
    else
        kind=wm
    fi
    addcase "$s" "$kind" "$j}" "$I/$s.png" \( "$wsrc" -alpha set -channel A -evaluate multiply "$k" +channel \) \
        -geometry "$(sg $PX)$(sg $PY)" -compose over -composite
    enl $ww $wh $mw $mh
done

# annotation: texts ImageMagick's -annotate takes literally (no "%", no
# leading "@", no backslash), in characters both fonts have (Pango draws
# a missing one from another font, ImageMagick leaves a space)
if [ $HAS_FONTS = 1 ]; then
    TEXTS=("Hello" "Kiln 42" $'Two\nlines' "Ag yx" $'WWWW\nW\nwide' "a & b <i>" "Grüße – ½")
    for _ in $(seq 24); do
        pick base basea rose; s=$P; iw=${SW[$s]} ih=${SH[$s]}
        t=${TEXTS[RANDOM % ${#TEXTS[@]}]}
        pick "DejaVu Sans" "DejaVu Serif"; fam=$P; file=$FONT_SANS
        [ "$fam" = "DejaVu Serif" ] && file=$FONT_SERIF
        pick 9 14 20 31.5; size=$P; pick '#ffffff' '#ff000080' '#102030' '#00ff00c0'; col=$P
        pick $G9 -; g=$P
        pick - $((RANDOM % 30 - 8)) "$((RANDOM % 10))%"; xo=$P
        pick - $((RANDOM % 30 - 8)) "$((RANDOM % 10))%"; yo=$P
        lpx "$xo" x "$iw" "$ih"; dx=$R; lpx "$yo" y "$iw" "$ih"; dy=$R
        gg=${g/-/northwest}; gg=${gg/middle/center}
        j="{\"type\":\"annotation\",\"font\":\"$fam\",\"color\":\"$col\",\"text\":$(jq -Rn --arg t "$t" '$t'),\"size\":$size"
        [ "$g" != - ] && j="$j,\"gravity\":\"$g\""
        [ "$xo" != - ] && j="$j,\"xoffset\":$(jlen "$xo")"
        [ "$yo" != - ] && j="$j,\"yoffset\":$(jlen "$yo")"
        addcase "$s" ann "$j}" "$I/$s.png" -font "$file" -pointsize "$size" -fill "$col" \
            -gravity "$gg" -annotate "$(sg $dx)$(sg $dy)" "$t"
    done
    # literal texts: against libvips only (-annotate would expand them)
    for t in '100% of %w x %h' '@/etc/passwd' 'back\slash \n' $'CR\r\nLF\rx' '<b>bold</b> &amp;'; do
        NC=$((NC + 1))
        CS[$NC]=base CK[$NC]=literal CE[$NC]=0 CT[$NC]=0
        CJ[$NC]="{\"type\":\"annotation\",\"font\":\"DejaVu Sans\",\"color\":\"#ffffff\",\"text\":$(jq -Rn --arg t "$t" '$t'),\"size\":16,\"gravity\":\"center\"}"
    done
fi

# ---------------------------------------------------------- the requests
REQS=()
for s in $IMGS base basea; do
    : >"$WORK/jobs.$s"
    for n in $(seq $NC); do
        [ "${CS[$n]}" = "$s" ] || continue
        printf '{"destination":"/out/c%d.png","transformations":[%s]}\n' "$n" "${CJ[$n]}" >>"$WORK/jobs.$s"
    done
    [ -s "$WORK/jobs.$s" ] || continue
    split -l 45 -d "$WORK/jobs.$s" "$WORK/chunk.$s."
    for c in "$WORK/chunk.$s."??; do
        { printf '{"service_id":1,"source":"/in/%s.png","jobs":[' "$s"; paste -sd, "$c"; printf ']}\n'; } >"$c.json"
        REQS+=("$c.json")
    done
done

# References, several convert runs at once.
for n in $(seq $NC); do
    [ -f "$WORK/ref/$n.args" ] && printf '%s\0' "$n"
done | xargs -0 -P 4 -n 8 sh -c 'for n; do
    xargs -0 convert <"$0/ref/$n.args" 2>>"$0/ref/$n.err" || echo "$n" >>"$0/ref-failed"
done' "$WORK"
[ -s "$WORK/ref-failed" ] && fail "$N/references" "convert failed for cases $(paste -sd' ' "$WORK/ref-failed"): $(cat "$WORK/ref/"*.err | head -c 300)"

# Both backends, each op as bound: the magick backend never rewrites the
# graph, and libvips runs at -O0 so that the optimizer's passes (which
# may reuse one job's reduction for another's resample, within 38 dB)
# do not blur the comparison; -O2 against -O0 is other tests' business.
declare -A MST VST MERR VERR
run_kiln magick -O2 --backend magick "${REQS[@]}"
if grep -q 'plugin "backend-magick" not found' "$WORK/magick.err" 2>/dev/null; then
    skip "$N" "the magick backend is not built (libmagickcore-6.q16-dev): $(head -c 200 "$WORK/magick.err")"
    finish
fi
for n in $(seq $NC); do
    d=/out/c$n.png; MST[$n]=${JST[$d]:-missing}; MERR[$n]=${JERR[$d]:-}
    [ -f "$ROOT$d" ] && mv "$ROOT$d" "$WORK/m/$n.png"
done
run_kiln vips -O0 "${REQS[@]}"
for n in $(seq $NC); do
    d=/out/c$n.png; VST[$n]=${JST[$d]:-missing}; VERR[$n]=${JERR[$d]:-}
    [ -f "$ROOT$d" ] && mv "$ROOT$d" "$WORK/v/$n.png"
done
for c in "${REQS[@]}"; do
    s=${c##*/chunk.}; s=${s%%.*}
    compile_shapes "$c" "$I/$s.png" ||
        fail "$N/compile" "kiln compile --source $s.png failed: $(head -c 300 "$WORK/compile.err")"
done

# --------------------------------------------------------------- checks
files=()
for n in $(seq $NC); do files+=("$WORK/m/$n.png" "$WORK/v/$n.png" "$WORK/ref/$n.png"); done
identify_all "${files[@]}"
vheader "${files[@]}"
# the kinds of each op, for the summary lines
opname() { jq -r .type <<<"${CJ[$1]}"; }
declare -A BAD NOK PMIN
note() { BAD[$1]="${BAD[$1]:-}$2; "; } # CHECK REASON
count() { NOK[$1]=$((${NOK[$1]:-0} + 1)); }
pmin() { # KEY VALUE: keep the smallest PSNR seen
    local v=$2; [ "$v" = inf ] && v=999
    if [ -z "${PMIN[$1]:-}" ] || awk -v a="$v" -v b="${PMIN[$1]}" 'BEGIN { exit !(a < b) }'; then PMIN[$1]=$v; fi
}
same() { # A B: identical pixels (signatures, then AE)
    [ "${SZ[$1]:-?}" = "${SZ[$2]:-!}" ] || return 1
    [ "${SIG[$1]}" = "${SIG[$2]}" ] && return 0
    [ "$(ae "$1" "$2")" = 0 ]
}
# ink M V BASE: the text's ink on both backends, as the difference from
# BASE (all flattened onto black, for inputs with alpha). Sets EDGES
# ("left top right bottom|..." of the pixels inked at least a fifth of
# the most inked one, magick then vips; "none" when nothing was drawn),
# MASS ("M V": the mean
# ink of each, 0..1) and REL: the mean absolute difference of the two
# inks relative to the larger mass, at the best of the nine shifts of at
# most 1 px (the backends' placement conventions may differ by a pixel,
# see ANN_BOX): 0 for the same ink, about 1 for unrelated ones.
ink() {
    local sx sy mae best=
    convert \( "$3" -background black -flatten \) -write mpr:base +delete \
        \( "$1" -background black -flatten mpr:base -compose difference -composite -write "$WORK/dm.png" \) \
        \( "$2" -background black -flatten mpr:base -compose difference -composite -write "$WORK/dv.png" \) \
        -delete 0--1 null: 2>/dev/null
    EDGES=$(for f in dm dv; do
        convert "$WORK/$f.png" -channel RGB -separate +channel -evaluate-sequence max -auto-level \
            -threshold 20% -bordercolor black -border 1 -format '%@\n' info: 2>/dev/null
    done |
        awk '/^0x0/ { print "none"; next } { split($0, a, /[x+]/); printf "%d %d %d %d\n", a[3] - 1, a[4] - 1, a[3] - 1 + a[1], a[4] - 1 + a[2] }' | paste -sd'|')
    MASS=$(convert "$WORK/dm.png" "$WORK/dv.png" -format '%[fx:mean] ' info: 2>/dev/null)
    for sx in -1 +0 +1; do
        for sy in -1 +0 +1; do
            mae=$(convert "$WORK/dv.png" -background black -extent "${VSIZE[$1]}$sx$sy" png:- 2>/dev/null |
                compare -metric MAE "$WORK/dm.png" png:- null: 2>&1 | sed -n 's/.*(\(.*\)).*/\1/p')
            best=$(awk -v a="$best" -v b="$mae" 'BEGIN { print (a == "" || b + 0 < a + 0 ? b : a) }')
        done
    done
    REL=$(awk -v m="$MASS" -v b="$best" 'BEGIN { split(m, x, " "); t = x[1] > x[2] ? x[1] : x[2]; print (t > 0 ? b / t : 1) }')
}
ANN_WORST=0 ANN_BOXW=0 ANN_MASS=0
for n in $(seq $NC); do
    m=$WORK/m/$n.png v=$WORK/v/$n.png r=$WORK/ref/$n.png op=$(opname "$n") k=${CK[$n]}
    tag="$op#$n(${CS[$n]}:${CJ[$n]})"
    if [ "${MST[$n]}" != FINISHED ] || [ "${VST[$n]}" != FINISHED ]; then
        note "$op/runs" "$tag magick ${MST[$n]} ${MERR[$n]}, vips ${VST[$n]} ${VERR[$n]}"; continue
    fi
    count "$op/runs"
    want=${CSHAPE[/out/c$n.png]:-none}
    if [ "${VSIZE[$m]:-?}" != "${want%x*}" ] || [ "${VSIZE[$v]:-?}" != "${want%x*}" ]; then
        note "$op/size=compile" "$tag magick ${VSIZE[$m]:-?}, vips ${VSIZE[$v]:-?}, compile $want"
        continue
    fi
    count "$op/size=compile"
    # Bands as written: an alpha channel stays one when it happens to be
    # opaque everywhere (chains.sh asks the same).
    if [ "${VBANDS[$m]:-?}" = "${want##*x}" ] && [ "${VBANDS[$v]:-?}" = "${want##*x}" ]; then
        count "$op/bands=compile"
    else
        note "$op/bands=compile" "$tag magick ${VBANDS[$m]:-?} bands, vips ${VBANDS[$v]:-?}, compile $want"
    fi
    case $k in
    exact)
        if same "$m" "$v"; then count "$op/same-as-vips"; else note "$op/same-as-vips" "$tag $(ae "$m" "$v") px differ"; fi ;;
    esac
    case $k in
    exact | resample | rotate | wm | wmscaled | ann)
        if same "$m" "$r"; then count "$op/same-as-convert"
        else note "$op/same-as-convert" "$tag $(ae "$m" "$r") px differ from $(tr '\0\n' '  ' <"$WORK/ref/$n.args" | sed "s#$WORK/##g; s#$ROOT/##g")"; fi ;;
    esac
    case $k in
    resample | rotate | wmscaled)
        p=$(psnr "$m" "$v")
        if [ $k = rotate ]; then floor=$PSNR_ROTATE key=rotate
        elif [ "${CE[$n]}" = 1 ]; then floor=$PSNR_ENLARGE key=enlarge
        elif [ "${CT[$n]}" = 1 ]; then floor=$PSNR_TINY key=tiny
        else floor=$PSNR_REDUCE key=reduce; fi
        pmin "$key" "$p"
        if awk -v p="$p" -v f="$floor" 'BEGIN { exit !(p == "inf" || (p ~ /^[0-9.]+$/ && p + 0 >= f)) }'; then
            count "$op/psnr-vs-vips"
        else note "$op/psnr-vs-vips" "$tag $p dB < $floor"; fi ;;
    wm)
        pae=$(compare -metric PAE "$m" "$v" null: 2>&1 | awk '{ print $1 }')
        if awk -v p="$pae" 'BEGIN { exit !(p ~ /^[0-9.]+$/ && p <= 257) }'; then count "$op/within-1-level-of-vips"
        else note "$op/within-1-level-of-vips" "$tag max difference $pae/65535"; fi ;;
    ann | literal)
        ink "$m" "$v" "$I/${CS[$n]}.png"
        ANN_WORST=$(awk -v a="$ANN_WORST" -v f="$REL" 'BEGIN { print (f > a ? f : a) }')
        ANN_MASS=$(awk -v a="$ANN_MASS" -v m="$MASS" 'BEGIN { split(m, x, " "); r = x[2] > 0 ? x[1] / x[2] : 9
            d = r > 1 ? r - 1 : 1 - r; print (d > a ? d : a) }')
        ANN_BOXW=$(awk -v a="$ANN_BOXW" -v e="$EDGES" 'BEGIN { split(e, h, "|"); n = split(h[1], p, " "); split(h[2], q, " ")
            for (i = 1; i <= n; i++) { d = p[i] - q[i]; d = d < 0 ? -d : d; if (d > a) a = d }; print a }')
        if { [ "$EDGES" = "none|none" ] || near "${EDGES%|*}" "${EDGES#*|}" "$ANN_BOX"; } &&
            awk -v f="$REL" -v m="$MASS" -v t="$ANN_REL" -v u="$ANN_INK" 'BEGIN { split(m, x, " ")
                r = x[2] > 0 ? x[1] / x[2] : 9; exit !(f <= t && r >= 1 - u && r <= 1 + u) }'; then
            count "$op/near-vips"
        else note "$op/near-vips" "$tag ink edges $EDGES, ink mass $MASS, difference $REL of the ink"; fi ;;
    esac
done
for key in $(printf '%s\n' "${!NOK[@]}" "${!BAD[@]}" | sort -u); do
    if [ -n "${BAD[$key]:-}" ]; then fail "$N/$key" "${BAD[$key]:0:1500}"
    else ok "$N/$key:${NOK[$key]}-cases"; fi
done
echo "# info: smallest PSNR against the libvips backend: reductions ${PMIN[reduce]:-none} dB (to under 8 px: ${PMIN[tiny]:-none} dB), enlargements ${PMIN[enlarge]:-none} dB, rotations ${PMIN[rotate]:-none} dB (999: identical)"
[ $HAS_FONTS = 1 ] && echo "# info: annotation against libvips: ink edges within $ANN_BOXW px, ink mass within $ANN_MASS, ink difference at most $ANN_WORST of the ink (best shift of up to 1 px)"

# ------------------------------------------- annotation: warnings, limits
if [ $HAS_FONTS = 1 ]; then
    FALLBACK=$(fc-match -f '%{family[0]}' 'Nonexistent Sans' 2>/dev/null)
    LONG=$(printf 'W%.0s' $(seq 1000))
    cat >"$WORK/special.json" <<EOF
{"service_id":1,"source":"/in/base.png","jobs":[
 {"destination":"/out/missing-font.png","transformations":[{"type":"annotation","font":"Nonexistent Sans","color":"#fff","text":"x","size":20}]},
 {"destination":"/out/generic-font.png","transformations":[{"type":"annotation","font":"sans-serif","color":"#fff","text":"x","size":20}]}]}
EOF
    cat >"$WORK/toolarge.json" <<EOF
{"service_id":1,"source":"/in/base.png","jobs":[{"destination":"/out/toolarge.png",
 "transformations":[{"type":"annotation","font":"DejaVu Sans","color":"#fff","text":"$LONG","size":1000}]}]}
EOF
    for b in magick vips; do
        if [ $b = magick ]; then run_kiln "s-$b" -O2 --backend magick "$WORK/special.json" "$WORK/toolarge.json"
        else run_kiln "s-$b" -O2 "$WORK/special.json" "$WORK/toolarge.json"; fi
        w=$(jq -r '.jobs[]? | select(.destination == "/out/missing-font.png") | .warnings | join("|")' "$WORK/s-$b.out" | head -n 1)
        check "$N/annotation-$b-missing-font-warns" "warnings: \"$w\"" \
            [ "$w" = "font \"Nonexistent Sans\" is not installed; used \"$FALLBACK\"" ]
        w=$(jq -r '.jobs[]? | select(.destination == "/out/generic-font.png") | .warnings | join("|")' "$WORK/s-$b.out" | head -n 1)
        check "$N/annotation-$b-generic-font-no-warning" "warnings: \"$w\"" [ -z "$w" ]
        e=${JERR[/out/toolarge.png]:-}
        check "$N/annotation-$b-oversized-text-refused" "${JST[/out/toolarge.png]:-missing}: $e" \
            eval '[ "${JST[/out/toolarge.png]:-}" = FAILED ] && [[ $e == *transformations\[0\].text:*megapixels* ]]'
    done
fi
finish
