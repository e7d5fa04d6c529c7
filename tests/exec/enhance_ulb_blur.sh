#!/usr/bin/env bash
# enhance, ulb and blur (ops.md section 4), executed.
#  - enhance: within 2 levels per channel of Debian's `convert -enhance`
#    (ImageMagick 6) on opaque 8-bit inputs: synthesized noise and edges,
#    odd and tiny sizes (1xN, Nx1, 3x3: ImageMagick leaves images under 5
#    px on a side unchanged), a photo crop when ../shared is present;
#  - blur: PSNR >= 40 dB against `convert -gaussian-blur RxS` for small
#    sigmas (radius 0 and explicit); mean absolute error <= 1.0 level
#    against the exact Gaussian of ops.md computed here (exact_kernel +
#    `vips convsep --precision float`) for the coarse-grid path: the public
#    example's shape (sigma 218, radius 465), sigma 40, truncated kernels;
#    the public example on a 6 MP photo finishes (its time is printed);
#  - ulb: the output's 0.5 / 99.5 percentiles of luma are ~0 / ~255, one
#    gain and offset for R, G and B, outliers clipped, a flat image is
#    unchanged;
#  - with alpha, colour changes and alpha is bit-identical to the input's;
#    16-bit, palette, greyscale, GIF and WebP sources give the right shape.
cd "$(dirname "$0")/../.." || exit 1
. tests/exec/lib.sh
exec_setup
IN=$ROOT/in OUT=$ROOT/out
HAVE_PHOTO=0
[ -r "$TESTDATA/photo-2725x2225.jpg" ] && HAVE_PHOTO=1

# ---------------------------------------------------------------- fixtures
# 8-bit sRGB PNGs without profiles, so that kiln and ImageMagick read the
# same numbers. Seeds keep them the same from run to run.
noise() { convert -size "$1" xc:gray50 -seed "$2" +noise Random -strip PNG24:"$IN/$3.png"; }
{
    convert -seed 7 -size 203x157 xc: +noise Random -blur 0x1 \
        \( -size 203x157 plasma:fractal \) -compose blend \
        -define compose:args=50 -composite -strip PNG24:"$IN/noise.png"
    convert -size 97x61 xc:gray40 -fill white -draw "rectangle 10,10 40,50" \
        -fill '#c03020' -draw "circle 70,30 70,12" -fill '#2050d0' \
        -draw "polygon 50,5 95,55 45,58" -seed 3 -attenuate 0.4 \
        +noise Gaussian -strip PNG24:"$IN/edges.png"
    noise 1x9 11 t1x9; noise 9x1 12 t9x1; noise 3x3 13 t3x3
    noise 5x5 14 t5x5; noise 4x8 15 t4x8; noise 6x5 16 t6x5
    # colour noise under an alpha ramp (fully transparent at the bottom)
    convert -seed 5 -size 120x90 xc: +noise Random \
        \( -size 120x90 gradient:white-black \) -alpha off \
        -compose copy_opacity -composite -strip PNG32:"$IN/alpha.png"
    # ulb: a near-grey ramp with luma in about 68..172 (near grey, so
    # that clamping single channels hardly moves the output's luma), a
    # coloured 20x20 patch of mid luma for the hue check, and 40 black and
    # 40 white pixels (0.13% each of 30000: below the 0.5% cut)
    convert -size 150x200 gradient:'rgb(174,172,168)-rgb(66,68,72)' -rotate 90 \
        -fill 'rgb(150,110,80)' -draw "rectangle 90,65 109,84" \
        -fill black -draw "rectangle 0,0 7,4" -fill white \
        -draw "rectangle 192,145 199,149" -strip PNG24:"$IN/low.png"
    # blur with alpha: an opaque red square on transparent green; the
    # green must not bleed into the blurred colour
    convert -size 60x40 xc:'rgba(0,255,0,0)' -fill red -draw "rectangle 20,10 39,29" \
        -strip PNG32:"$IN/bleed.png"
    convert -size 64x48 xc:'rgb(100,120,140)' -strip PNG24:"$IN/flat.png"
    # blocks with sharp edges, the hard case for a coarse-grid blur
    convert -seed 9 -size 360x240 xc: +noise Random -sample 6% -scale 360x240! \
        -strip PNG24:"$IN/blocks.png"
    if [ "$HAVE_PHOTO" = 1 ]; then
        convert "$TESTDATA/photo-2725x2225.jpg" -crop 320x240+1200+900 +repage \
            -strip PNG24:"$IN/photo.png"
        convert "$TESTDATA/photo-2725x2225.jpg" -crop 600x450+900+700 +repage \
            -strip PNG24:"$IN/mid.png"
    else
        convert -seed 4 -size 600x450 plasma:fractal -blur 0x2 -strip PNG24:"$IN/mid.png"
    fi
} 2>"$WORK/fixtures.err" || fail "$T_NAME/fixtures" "$(head -c 300 "$WORK/fixtures.err")"

# ---------------------------------------------------------------- jobs
# add SOURCE-FILE NAME TRANSFORMATIONS-JSON: one job writing /out/NAME.png
declare -A JOBS
SRCS=()
add() {
    [ -n "${JOBS[$1]+x}" ] || SRCS+=("$1")
    JOBS[$1]="${JOBS[$1]:-}{\"destination\":\"/out/$2.png\",\"transformations\":$3}"$'\n'
}
blur() { echo "[{\"type\":\"blur\",\"sigma\":$1,\"radius\":$2}]"; }
ENH='[{"type":"enhance"}]' ULB='[{"type":"ulb"}]'

ENH_SRCS="noise edges t1x9 t9x1 t3x3 t5x5 t4x8 t6x5"
[ "$HAVE_PHOTO" = 1 ] && ENH_SRCS="$ENH_SRCS photo"
for s in $ENH_SRCS; do add "$s.png" "enh-$s" "$ENH"; done
# small sigmas, radius 0 (automatic) and explicit: "SIGMA RADIUS"
SMALL="0.5,0 0.5,1 1,0 1,2 2.5,0 2.5,4 5,0 5,10"
BLUR_SRCS="noise edges t1x9 t9x1 t3x3"
[ "$HAVE_PHOTO" = 1 ] && BLUR_SRCS="$BLUR_SRCS photo"
# tiny images: edge handling only, fewer cases
small_for() { case $1 in t*) echo "1,0 2.5,4 5,0" ;; *) echo "$SMALL" ;; esac; }
for s in $BLUR_SRCS; do
    for sr in $(small_for "$s"); do add "$s.png" "blur-$s-${sr/,/r}" "$(blur "${sr%,*}" "${sr#*,}")"; done
done
# coarse-grid path against the exact Gaussian: "SOURCE SIGMA RADIUS"
LARGE="blocks,218,465 mid,40,0 noise,6,0 blocks,300,100 t3x3,218,465"
for c in $LARGE; do
    IFS=, read -r s sg r <<<"$c"
    add "$s.png" "big-$s-${sg}r$r" "$(blur "$sg" "$r")"
done
# ulb
add low.png ulb-low "$ULB"
add flat.png ulb-flat "$ULB"
add noise.png ulb-noise "$ULB"
add bleed.png bleed-small "$(blur 5 0)"
add bleed.png bleed-large "$(blur 218 465)"
add t1x9.png ulb-t1x9 "$ULB"
# alpha: colour processed, alpha kept
ALPHA_SRCS=alpha
[ -r "$TESTDATA/rgba.png" ] && { cp "$TESTDATA/rgba.png" "$IN/rgba.png"; ALPHA_SRCS="alpha rgba"; }
for s in $ALPHA_SRCS; do
    add "$s.png" "a-enh-$s" "$ENH"
    add "$s.png" "a-ulb-$s" "$ULB"
    add "$s.png" "a-blur-$s" "$(blur 2 0)"
    add "$s.png" "a-bigblur-$s" "$(blur 218 465)"
done
# other source formats: shape only
FORMATS=""
for f in sample.png indexed.png gray.jpg cogs.gif sample.webp; do
    if [ -r "$TESTDATA/$f" ]; then
        cp "$TESTDATA/$f" "$IN/fmt-$f"
        FORMATS="$FORMATS $f"
        add "fmt-$f" "fmt-enh-$f" "$ENH"
        add "fmt-$f" "fmt-ulb-$f" "$ULB"
        add "fmt-$f" "fmt-blur-$f" "$(blur 3 0)"
    else
        skip "$T_NAME/format/$f" "$TESTDATA/$f is absent (set SHARED to the shared folder)"
    fi
done

# One request per source, at most 40 jobs each (the limit is 50).
REQS=() REQSRC=()
i=0
for s in "${SRCS[@]}"; do
    printf '%s' "${JOBS[$s]}" >"$WORK/jobs.$i"
    split -l 40 -d "$WORK/jobs.$i" "$WORK/chunk.$i."
    for c in "$WORK/chunk.$i."??; do
        { printf '{"service_id":1,"source":"/in/%s","jobs":[' "$s"; paste -sd, "$c"; printf ']}\n'; } >"$c.json"
        REQS+=("$c.json") REQSRC+=("$s")
    done
    i=$((i + 1))
done
run_kiln ops "${REQS[@]}"
check "$T_NAME/exit-status" "kiln run exited $RUN_RC although every job is valid" [ "$RUN_RC" = 0 ]

# ---------------------------------------------------------------- helpers
# finished NAME DEST: job finished; else FAIL NAME and return 1
finished() { if job_finished "$2"; then return 0; fi; fail "$1" "$REASON"; return 1; }
# vstats FILE: loads ST_MIN, ST_MAX, ST_MEAN (arrays: index 0 = all
# bands, i = band i - 1) with one `vips stats` run
declare -a ST_MIN ST_MAX ST_MEAN
vstats() {
    ST_MIN=() ST_MAX=() ST_MEAN=()
    vips stats "$1" "$WORK/st.csv" || return 1
    local mn mx mean _r
    while IFS=$'\t' read -r mn mx _r _r mean _r; do
        ST_MIN+=("$mn") ST_MAX+=("$mx") ST_MEAN+=("$mean")
    done <"$WORK/st.csv"
}
# vdiff A B: "MEAN MAX" of |A - B| over all bands, any formats libvips
# reads (three vips runs)
vdiff() {
    vips subtract "$1" "$2" "$WORK/d.v" && vips abs "$WORK/d.v" "$WORK/ad.v" && vstats "$WORK/ad.v" || return 1
    awk -v a="${ST_MEAN[0]}" -v b="${ST_MAX[0]}" 'BEGIN { printf "%.4f %.4f\n", a, b }'
}
# pae A B: largest difference in 8-bit levels of one channel, ImageMagick
pae() { compare -metric PAE "$1" "$2" null: 2>&1 | awk 'NR == 1 && $1 ~ /^[0-9.]+$/ { printf "%.2f", $1 / 257 }'; }
# exact_kernel SIGMA RADIUS: the exact 1-D kernel of ops.md as a libvips
# matrix file: 2R + 1 taps of exp(-i^2 / (2 sigma^2)) summing to 1
exact_kernel() {
    awk -v s="$1" -v r="$2" 'BEGIN {
        for (i = -r; i <= r; i++) { w[i] = exp(-i * i / (2 * s * s)); t += w[i] }
        printf "%d 1 1 0\n", 2 * r + 1
        for (i = -r; i <= r; i++) printf "%.17g%s", w[i] / t, (i < r ? " " : "\n") }'
}
# luma_bounds FILE: "LO HI" as ulb.c defines them (Rec. 601 luma rounded
# half up; smallest level with >= 0.5% at or below, largest with >= 0.5% at
# or above), computed independently with libvips + awk
luma_bounds() {
    printf '3 1 1 0\n0.299 0.587 0.114\n' >"$WORK/luma.mat"
    vips recomb "$1" "$WORK/y.v" "$WORK/luma.mat" &&
        vips linear "$WORK/y.v" "$WORK/y8.v" 1 0.5 --uchar &&
        vips hist_find "$WORK/y8.v" "$WORK/h.csv" || return 1
    awk -F'\t' '{ n = 0; for (i = 1; i <= NF; i++) { c[i - 1] = $i; n += $i }
        cut = 0.005 * n; s = 0; for (v = 0; v < 256; v++) { s += c[v]; if (s >= cut) { lo = v; break } }
        s = 0; for (v = 255; v >= 0; v--) { s += c[v]; if (s >= cut) { hi = v; break } }
        print lo, hi }' "$WORK/h.csv"
}

# ---------------------------------------------------------------- enhance
# IM's -enhance writes trunc(q16 / 257); kiln matches that exactly, the
# contract is 2 levels.
for s in $ENH_SRCS; do
    n=$T_NAME/enhance-vs-convert/$s d=/out/enh-$s.png
    finished "$n" "$d" || continue
    convert "$IN/$s.png" -enhance PNG24:"$WORK/im-enh-$s.png" 2>>"$WORK/im.err"
    max=$(pae "$ROOT$d" "$WORK/im-enh-$s.png")
    if [ -n "$max" ] && awk -v m="$max" 'BEGIN { exit !(m <= 2) }'; then ok "$n=max-diff-$max"
    else fail "$n" "max difference ${max:-?} levels from convert -enhance, expected <= 2"; fi
done

# ---------------------------------------------------------------- blur
for s in $BLUR_SRCS; do
    args=()
    for sr in $(small_for "$s"); do
        args+=(\( +clone -gaussian-blur "${sr#*,}x${sr%,*}" -write PNG24:"$WORK/im-blur-$s-${sr/,/r}.png" +delete \))
    done
    convert "$IN/$s.png" "${args[@]}" null: 2>>"$WORK/im.err"
    for sr in $(small_for "$s"); do
        sg=${sr%,*} r=${sr#*,}
        n=$T_NAME/blur-vs-convert/$s/${sg}r$r d=/out/blur-$s-${sg}r$r.png
        finished "$n" "$d" || continue
        PSNR_VALUE=""
        if psnr_ge "$ROOT$d" "$WORK/im-blur-$s-${sg}r$r.png" 40; then ok "$n=${PSNR_VALUE}dB"
        else fail "$n" "PSNR $PSNR_VALUE dB against convert -gaussian-blur ${r}x$sg (< 40)"; fi
    done
done
# exact reference: the truncated Gaussian of ops.md in float. libvips
# convolutions extend edges by copy, as ops.md's blur does (were they to
# pad with black, the 3x3 case under a 465 px kernel would fail loudly).
for c in $LARGE; do
    IFS=, read -r s sg r <<<"$c"
    n=$T_NAME/blur-vs-exact/$s/${sg}r$r d=/out/big-$s-${sg}r$r.png
    finished "$n" "$d" || continue
    rr=$r
    [ "$r" = 0 ] && rr=$(awk -v s="$sg" 'BEGIN { r = 3 * s; if (r > int(r)) r = int(r) + 1; print r }')
    exact_kernel "$sg" "$rr" >"$WORK/k.mat" &&
        vips convsep "$IN/$s.png" "$WORK/exact.v" "$WORK/k.mat" --precision float ||
        { fail "$n" "cannot compute the exact reference"; continue; }
    r2=$(vdiff "$ROOT$d" "$WORK/exact.v") || { fail "$n" "cannot compare"; continue; }
    read -r mean max <<<"$r2"
    if awk -v m="$mean" 'BEGIN { exit !(m <= 1.0) }'; then ok "$n=mae-$mean,max-$max"
    else fail "$n" "mean absolute error $mean levels (max $max) against the exact Gaussian, expected <= 1.0"; fi
done
# ---------------------------------------------------------------- ulb
# ulb_expected IN OUT.v: the definition applied with bounds computed here;
# sets LO HI GAIN
ulb_expected() {
    read -r LO HI <<<"$(luma_bounds "$1")"
    [ -n "${LO:-}" ] && [ -n "${HI:-}" ] && [ "$HI" -gt "$LO" ] || return 1
    GAIN=$(awk -v l="$LO" -v h="$HI" 'BEGIN { printf "%.10f", 255 / (h - l) }')
    local o
    o=$(awk -v l="$LO" -v h="$HI" 'BEGIN { printf "%.10f", -l * 255 / (h - l) + 0.5 }')
    # a leading space keeps a negative offset from parsing as an option
    vips linear "$1" "$2" "$GAIN" " $o" --uchar
}
for s in low noise; do
    d=/out/ulb-$s.png n=$T_NAME/ulb/$s
    finished "$n" "$d" || continue
    if ! ulb_expected "$IN/$s.png" "$WORK/ulb-exp.v"; then fail "$n/definition" "cannot compute the expected output"; continue; fi
    read -r mean max <<<"$(vdiff "$ROOT$d" "$WORK/ulb-exp.v")"
    if awk -v m="${max:-99}" 'BEGIN { exit !(m <= 1) }'; then ok "$n/same-gain-offset-rgb=bounds-$LO..$HI"
    else fail "$n/same-gain-offset-rgb" "output differs by ${max:-?} levels from 255 * (c - $LO) / ($HI - $LO) on R, G and B"; fi
    [ $s = low ] || continue
    # the near-grey ramp: input luma inside 60..180, output percentiles at the ends
    read -r olo ohi <<<"$(luma_bounds "$ROOT$d")"
    if [ "$LO" -ge 60 ] && [ "$HI" -le 180 ] && [ "${olo:-9}" -le 2 ] && [ "${ohi:-0}" -ge 253 ]; then
        ok "$n/percentiles=$LO..$HI-to-$olo..$ohi"
    else fail "$n/percentiles" "input luma bounds $LO..$HI (expected inside 60..180) became ${olo:-?}..${ohi:-?} (expected <= 2 and >= 253)"; fi
    # hue: the coloured patch keeps its channel differences times the gain
    read -r r0 g0 b0 <<<"$(pixel "$IN/low.png" 100 75)"
    read -r r1 g1 b1 <<<"$(pixel "$ROOT$d" 100 75)"
    if awk -v g="$GAIN" -v a="$((r0 - g0))" -v b="$((g0 - b0))" -v c="$((r1 - g1))" -v e="$((g1 - b1))" \
        'BEGIN { d1 = c - g * a; d2 = e - g * b; exit !(d1 < 1.5 && d1 > -1.5 && d2 < 1.5 && d2 > -1.5) }'; then
        ok "$n/hue-kept=$r0,$g0,$b0-to-$r1,$g1,$b1"
    else fail "$n/hue-kept" "patch $r0,$g0,$b0 -> $r1,$g1,$b1: channel differences not scaled by the gain $GAIN"; fi
    check "$n/outliers-clipped" "black and white outliers became $(pixel "$ROOT$d" 2 2) / $(pixel "$ROOT$d" 197 147)" \
        near "$(pixel "$ROOT$d" 2 2) $(pixel "$ROOT$d" 197 147)" "0 0 0 255 255 255" 0
done
d=/out/ulb-flat.png n=$T_NAME/ulb/flat-unchanged
finished "$n" "$d" && same_image "$n" "$ROOT$d" "$IN/flat.png"
d=/out/ulb-t1x9.png n=$T_NAME/ulb/t1x9-finishes
finished "$n" "$d" && check "$n" "size $(img_size "$ROOT$d")" [ "$(img_size "$ROOT$d")" = 1x9 ]

# ---------------------------------------------------------------- alpha
# out - in: alpha (band 4) all zero, colour somewhere non-zero
for s in $ALPHA_SRCS; do
    for op in enh ulb blur bigblur; do
        d=/out/a-$op-$s.png n=$T_NAME/alpha/$op/$s
        finished "$n" "$d" || continue
        if ! vips subtract "$ROOT$d" "$IN/$s.png" "$WORK/d.v" 2>"$WORK/sub.err" || ! vstats "$WORK/d.v"; then
            fail "$n" "cannot compare (bands?): $(head -c 200 "$WORK/sub.err")"; continue
        fi
        if [ "${#ST_MIN[@]}" != 5 ]; then fail "$n" "output has $((${#ST_MIN[@]} - 1)) bands, expected 4"
        elif [ "${ST_MIN[4]}" != 0 ] || [ "${ST_MAX[4]}" != 0 ]; then fail "$n" "alpha changed by ${ST_MIN[4]}..${ST_MAX[4]}"
        elif [ "${ST_MIN[1]}${ST_MAX[1]}${ST_MIN[2]}${ST_MAX[2]}${ST_MIN[3]}${ST_MAX[3]}" = 000000 ]; then fail "$n" "colour unchanged"
        else ok "$n=alpha-identical"; fi
    done
done
# blur weights colour by alpha: the transparent green around the red
# square must not tint it (with alpha kept, every pixel whose blurred alpha
# is above 0 is pure red; the others come out black)
for c in small large; do
    d=/out/bleed-$c.png n=$T_NAME/alpha/blur-$c-no-colour-bleed
    finished "$n" "$d" || continue
    vstats "$ROOT$d"
    if [ "${ST_MAX[2]:-x}" = 0 ] && [ "${ST_MAX[3]:-x}" = 0 ] && [ "${ST_MAX[1]:-0}" = 255 ]; then ok "$n"
    else fail "$n" "green/blue reach ${ST_MAX[2]:-?}/${ST_MAX[3]:-?}, red ${ST_MAX[1]:-?}: colour under alpha 0 bled in"; fi
done

# ---------------------------------------------------------------- formats
outs=()
for f in $FORMATS; do for op in enh ulb blur; do outs+=("$ROOT/out/fmt-$op-$f.png"); done; outs+=("$IN/fmt-$f"); done
vheader "${outs[@]}"
for f in $FORMATS; do
    req=""
    for i in "${!REQS[@]}"; do [ "${REQSRC[$i]}" = "fmt-$f" ] && req=${REQS[$i]}; done
    compile_shapes "$req" "$IN/fmt-$f" ||
        { fail "$T_NAME/format/$f/compile" "$(head -c 300 "$WORK/compile.err")"; continue; }
    want=${VSIZE[$IN/fmt-$f]:-?}
    for op in enh ulb blur; do
        d=/out/fmt-$op-$f.png n=$T_NAME/format/$f/$op
        finished "$n" "$d" || continue
        got=${VSIZE[$ROOT$d]:-?}x${VBANDS[$ROOT$d]:-?}
        if [ "$got" = "${CSHAPE[$d]:-none}" ] && [ "${got%x*}" = "$want" ]; then ok "$n=$got"
        else fail "$n" "output $got, source $want, kiln compile says ${CSHAPE[$d]:-none}"; fi
    done
done

# ---------------------------------------------------------------- 6 MP
# The public example must finish on a 6 MP photo; its wall time, and that
# of a plain conversion of the same photo, are printed as information.
if [ "$HAVE_PHOTO" = 1 ]; then
    cp "$TESTDATA/photo-2725x2225.jpg" "$IN/big.jpg"
    info=""
    for j in plain:'[]' public:"$(blur 218 465)"; do
        t=${j%%:*}
        printf '{"service_id":1,"source":"/in/big.jpg","jobs":[{"destination":"/out/6mp-%s.jpg","transformations":%s}]}\n' \
            "$t" "${j#*:}" >"$WORK/6mp-$t.json"
        s0=$EPOCHREALTIME
        run_kiln "6mp-$t" "$WORK/6mp-$t.json"
        info="$info $t=$(awk -v a="$s0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2fs", b - a }')"
    done
    n=$T_NAME/public-example-6mp d=/out/6mp-public.jpg
    if finished "$n" "$d"; then
        check "$n" "output ${JW[$d]}x${JH[$d]}, expected 2725x2225" [ "${JW[$d]}x${JH[$d]}" = 2725x2225 ]
    fi
    echo "# info: kiln run wall time, photo-2725x2225.jpg to JPEG:$info"
else
    skip "$T_NAME/public-example-6mp" "$TESTDATA/photo-2725x2225.jpg is absent (set SHARED to the shared folder)"
fi
finish
