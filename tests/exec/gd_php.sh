#!/usr/bin/env bash
# The GD ops against PHP GD itself (ops.md sections 4 and 4.1): brightness,
# colorize, contrast and every filter value run through kiln and through
# PHP's imagefilter() (tests/exec/gd_compare.php) on the same decoded
# pixels, and must agree within 1 level per colour channel; one more check
# requires them to agree exactly (kiln repeats GD's arithmetic), except
# contrast 0, which ops.md makes the identity. sepia, which GD lacks, must
# equal the exact matrix product truncated, and `convert -color-matrix`
# within 1. smooth weights that make GD divide by zero are rejected.
# Inputs: synthesized noise, gradients and hard edges at odd sizes (1x1,
# 1x7 and 7x1 among them), a photograph and a crop of a 6 MP one when
# $SHARED/testdata exists. Alpha: colour filtered as GD filters it, and as
# kiln filters the same image without alpha, alpha kept bit for bit.
# Formats: 16-bit, palette, greyscale, GIF and WebP sources finish with the
# right shape, and negate matches `convert -negate`.
cd "$(dirname "$0")/../.." || exit 1
. tests/exec/lib.sh
exec_setup
require_tools php
if ! php -r 'exit(function_exists("imagefilter") && function_exists("imagebmp") ? 0 : 1);' 2>/dev/null; then
    skip "$T_NAME" "PHP has no GD extension (php-gd)"
    finish
fi
COMPARE_PHP=$PWD/tests/exec/gd_compare.php
IN=$ROOT/in OUT=$ROOT/out
SEPIA='0.3588 0.7044 0.1368 0.2990 0.5870 0.1140 0.2392 0.4696 0.0912'

# ---------------------------------------------------------------- fixtures
# Synthesized: a gradient blended with full-range noise (on a non-grey
# colour, so that the channels differ), with hard-edged white, black and
# saturated shapes (clamping at both ends), at odd sizes.
syn() {  # syn W H SEED OUT.png
    convert -size "$1x$2" gradient:'#ff2000-#0030ff' \( -size "$1x$2" xc:'#807f81' -seed "$3" +noise Random \) \
        -compose blend -define compose:args=55 -composite \
        -fill white -draw "rectangle 3,3 $(($1 / 3)),$(($2 / 3))" \
        -fill black -draw "rectangle $(($1 / 2)),$(($2 / 2)) $(($1 - 4)),$(($2 - 3))" \
        -fill '#00ff00' -draw "circle $(($1 * 3 / 4)),$(($2 / 5)) $(($1 * 3 / 4 + 4)),$(($2 / 5 + 3))" \
        -strip PNG24:"$4"
}
{
    syn 97 61 3 "$IN/syn.png" &&
    convert -size 53x37 xc:'#807f81' -seed 5 +noise Random -strip PNG24:"$IN/noise.png" &&
    convert -size 1x7 xc:'#807f81' -seed 6 +noise Random -strip PNG24:"$IN/col1x7.png" &&
    convert -size 7x1 xc:'#807f81' -seed 8 +noise Random -strip PNG24:"$IN/row7x1.png" &&
    convert -size 1x1 xc:'#c81e5a' -strip PNG24:"$IN/dot1x1.png" &&
    # alpha 3..255 (never fully transparent: GD's copy turns alpha-0 pixels
    # black before convolving, a GD quirk outside the contract)
    syn 61 43 9 "$WORK/c1.png" &&
    convert "$WORK/c1.png" \( -size 43x61 gradient:white-black -rotate 90 +level 1%,100% \) \
        -alpha off -compose copy_opacity -composite -strip PNG32:"$IN/rgba-soft.png" &&
    # alpha with fully transparent areas and every other level
    syn 59 41 11 "$WORK/c2.png" &&
    convert "$WORK/c2.png" \( -size 59x41 xc:'#807f81' -seed 12 +noise Random \
        -fill black -draw 'rectangle 0,0 20,15' -fill white -draw 'rectangle 30,20 58,40' \) \
        -alpha off -compose copy_opacity -composite -strip PNG32:"$IN/rgba-hard.png"
} 2>"$WORK/im.err" || { fail "$T_NAME/fixtures" "$(head -c 300 "$WORK/im.err")"; finish; }

# Every source goes through kiln once with no transformation: kiln's decode
# (ICC to sRGB, 8 bits) gives the pixels that both kiln's ops and PHP start
# from. $SHARED photographs are cropped on the way.
declare -A DECODE=(
    [syn]='/in/syn.png []' [noise]='/in/noise.png []' [col1x7]='/in/col1x7.png []'
    [row7x1]='/in/row7x1.png []' [dot1x1]='/in/dot1x1.png []'
    [rgba-soft]='/in/rgba-soft.png []' [rgba-hard]='/in/rgba-hard.png []'
)
if [ -r "$TESTDATA/sample.jpg" ] && [ -r "$TESTDATA/photo-2725x2225.jpg" ] && [ -r "$TESTDATA/bird-alpha.png" ]; then
    cp "$TESTDATA/sample.jpg" "$TESTDATA/photo-2725x2225.jpg" "$TESTDATA/bird-alpha.png" "$IN/"
    DECODE[sample]='/in/sample.jpg []'
    DECODE[photo]='/in/photo-2725x2225.jpg [{"type":"crop","gravity":"center","width":400,"height":300}]'
    DECODE[bird]='/in/bird-alpha.png [{"type":"crop","gravity":"center","width":240,"height":160}]'
    HAVE_SHARED=1
else
    skip "$T_NAME/photographs" "$TESTDATA is absent (set SHARED to the shared folder): synthesized images only"
    HAVE_SHARED=0
fi
reqs=()
for s in "${!DECODE[@]}"; do
    set -- ${DECODE[$s]}
    printf '{"service_id":1,"source":"%s","jobs":[{"destination":"/in/d-%s.png","transformations":%s}]}\n' \
        "$1" "$s" "$2" >"$WORK/decode-$s.json"
    reqs+=("$WORK/decode-$s.json")
done
run_kiln decode "${reqs[@]}"
for s in "${!DECODE[@]}"; do
    job_finished "/in/d-$s.png" || { fail "$T_NAME/decode-$s" "$REASON"; finish; }
done
# The same colours without alpha, for the alpha equivalence checks.
ALPHA_EQ="rgba-hard"
[ "$HAVE_SHARED" = 1 ] && ALPHA_EQ="$ALPHA_EQ bird"
for s in $ALPHA_EQ; do
    vips extract_band "$IN/d-$s.png" "$IN/d-$s-rgb.png" 0 --n 3 ||
        { fail "$T_NAME/fixtures" "vips extract_band of d-$s.png failed"; finish; }
done

# ---------------------------------------------------------------- cases
# CASES: "NAME|TRANSFORMATION-JSON|GD-OP ARGS" (GD-OP as gd_compare.php
# takes it; sepia is compared with its definition and with convert).
CASES=()
for l in -255 -40 0 37 255; do
    CASES+=("brightness$l|{\"type\":\"brightness\",\"bright_level\":$l}|brightness $l")
done
for c in 0,0,0 10,200,30 255,255,255; do
    IFS=, read -r r g b <<<"$c"
    CASES+=("colorize-$r-$g-$b|{\"type\":\"colorize\",\"red\":$r,\"green\":$g,\"blue\":$b}|colorize $r $g $b")
done
for l in -100 -50 -15 0 15 50 100; do    # GD's sign is the opposite of ours
    CASES+=("contrast$l|{\"type\":\"contrast\",\"level\":$l}|contrast $((-l))")
done
for f in negate grayscale bw sepia edgedetect emboss blurgaussian meanremoval smooth blurselective; do
    gd=$f; [ "$f" = smooth ] && gd="smooth 1"    # GD needs the default weight
    CASES+=("filter-$f|{\"type\":\"filter\",\"filter\":\"$f\"}|$gd")
done
for w in 1 4 -2 0.5 0.3; do
    CASES+=("smooth-weight$w|{\"type\":\"filter\",\"filter\":\"smooth\",\"weight\":$w}|smooth $w")
done

# One request per source (at most 50 jobs each); all requests in one run.
GD_SOURCES="syn noise col1x7 row7x1 dot1x1 rgba-soft"
[ "$HAVE_SHARED" = 1 ] && GD_SOURCES="$GD_SOURCES sample photo"
reqs=()
for s in $GD_SOURCES $ALPHA_EQ $(for a in $ALPHA_EQ; do echo "$a-rgb"; done); do
    jobs=""
    for c in "${CASES[@]}"; do
        IFS='|' read -r name tr _ <<<"$c"
        jobs="$jobs${jobs:+,}{\"destination\":\"/out/$s/$name.png\",\"transformations\":[$tr]}"
    done
    printf '{"service_id":1,"source":"/in/d-%s.png","jobs":[%s]}\n' "$s" "$jobs" >"$WORK/req-$s.json"
    reqs+=("$WORK/req-$s.json")
done

# Other decoders: the original files, straight into a few ops.
FORMATS=""
if [ "$HAVE_SHARED" = 1 ]; then
    for f in sample.png indexed.png gray.jpg cogs.gif sample.webp; do
        [ -r "$TESTDATA/$f" ] || { skip "$T_NAME/format-$f" "$TESTDATA/$f is absent"; continue; }
        cp "$TESTDATA/$f" "$IN/"
        FORMATS="$FORMATS $f"
        jobs=""
        for x in negate edgedetect blurselective grayscale; do
            jobs="$jobs${jobs:+,}{\"destination\":\"/out/fmt/$f-$x.png\",\"transformations\":[{\"type\":\"filter\",\"filter\":\"$x\"}]}"
        done
        printf '{"service_id":1,"source":"/in/%s","jobs":[%s]}\n' "$f" "$jobs" >"$WORK/req-fmt-$f.json"
        reqs+=("$WORK/req-fmt-$f.json")
    done
fi
run_kiln ops "${reqs[@]}"
check "$T_NAME/exit-status" "kiln run exited $RUN_RC although every job is valid" [ "$RUN_RC" = 0 ]

# smooth weight -8 (or a weight that is -8 in float, as GD computes the
# divisor) would divide by zero: rejected.
for w in -8 -8.0000001; do
    printf '{"service_id":1,"source":"/in/d-noise.png","jobs":[{"destination":"/out/w%s.png","transformations":[{"type":"filter","filter":"smooth","weight":%s}]}]}\n' "$w" "$w" >"$WORK/req-w$w.json"
done
run_kiln zero-divisor "$WORK/req-w-8.json" "$WORK/req-w-8.0000001.json"
for w in -8 -8.0000001; do
    d=/out/w$w.png
    check "$T_NAME/smooth-weight$w-rejected" "job is ${JST[$d]:-missing} (${JERR[$d]:-no error}), expected FAILED naming the zero divisor" \
        eval '[ "${JST[$d]:-}" = FAILED ] && [[ "${JERR[$d]:-}" == *weight*divisor* ]] && [ ! -e "$ROOT$d" ]'
done

# ---------------------------------------------------------------- references
# Manifest for gd_compare.php: "NAME INPUT KILN_OUTPUT OP ARGS..."; op
# "same" compares colour as is, "visible" skips fully transparent pixels.
: >"$WORK/manifest"
sepia_refs=()
declare -A KIND    # check name -> gd | sepia | alpha-eq | format
for s in $GD_SOURCES; do
    for c in "${CASES[@]}"; do
        IFS='|' read -r name _ gd <<<"$c"
        n=$T_NAME/$s/$name o=$OUT/$s/$name.png
        if ! job_finished "/out/$s/$name.png"; then fail "$n" "$REASON"; continue; fi
        if [ "$gd" = sepia ]; then
            sepia_refs+=("$s")
            echo "$n/vs-convert $WORK/sepia-$s.png $o same" >>"$WORK/manifest"
            KIND[$n/vs-convert]=sepia
            echo "$n/exact $IN/d-$s.png $o sepia" >>"$WORK/manifest"
            KIND[$n/exact]=sepia-exact
        else
            echo "$n $IN/d-$s.png $o $gd" >>"$WORK/manifest"
            KIND[$n]=gd
        fi
    done
done
for s in "${sepia_refs[@]}"; do
    convert "$IN/d-$s.png" -color-matrix "$SEPIA" -depth 8 "$WORK/sepia-$s.png" 2>>"$WORK/im.err"
done
# Alpha: colour as kiln makes it from the same pixels without alpha.
for s in $ALPHA_EQ; do
    for c in "${CASES[@]}"; do
        IFS='|' read -r name _ _ <<<"$c"
        n=$T_NAME/$s/alpha-colour/$name
        job_finished "/out/$s/$name.png" || { fail "$n" "$REASON"; continue; }
        job_finished "/out/$s-rgb/$name.png" || { fail "$n" "$REASON"; continue; }
        echo "$n $OUT/$s-rgb/$name.png $OUT/$s/$name.png same" >>"$WORK/manifest"
        KIND[$n]=alpha-eq
    done
done
# Formats: negate against ImageMagick's own decoding of the file.
for f in $FORMATS; do
    n=$T_NAME/format-$f/negate-vs-convert
    if job_finished "/out/fmt/$f-negate.png"; then
        convert "$IN/$f[0]" -negate -depth 8 "$WORK/neg-$f.png" 2>>"$WORK/im.err"
        echo "$n $WORK/neg-$f.png $OUT/fmt/$f-negate.png visible" >>"$WORK/manifest"
        KIND[$n]=format
    else
        fail "$n" "$REASON"
    fi
done

# ---------------------------------------------------------------- compare
# Beyond the 1-level contract, kiln repeats GD's arithmetic exactly: any
# difference from GD (other than contrast 0, the identity by ops.md) is
# collected into one extra check, so a change in rounding cannot hide.
declare -A SEEN
not_exact=""
while read -r n max ndiff size; do
    SEEN[$n]=1
    if [ "${KIND[$n]}" = gd ] && [ "$max" != 0 ] && [ "$max" != ERROR ] && [[ $n != */contrast0 ]]; then
        not_exact="$not_exact ${n#$T_NAME/}($max)"
    fi
    if [ "$max" = ERROR ]; then fail "$n" "$ndiff $size"; continue; fi
    case ${KIND[$n]} in
    alpha-eq)   # both are kiln: exactly equal
        if [ "$max" = 0 ]; then ok "$n"
        else fail "$n" "$ndiff of $size pixels differ (up to $max levels) from the same image without alpha"; fi ;;
    sepia-exact)   # ops.md's matrix in exact decimal arithmetic, truncated
        if [ "$max" = 0 ]; then ok "$n"
        else fail "$n" "$ndiff of $size pixels differ from the exact matrix product truncated, up to $max levels"; fi ;;
    sepia)
        if [ "$max" -le 1 ]; then ok "$n/max-diff=$max"
        else fail "$n" "$ndiff of $size pixels differ from convert -color-matrix, up to $max levels (> 1)"; fi ;;
    format)
        if [ "$max" -le 1 ]; then ok "$n/max-diff=$max"
        else fail "$n" "$ndiff of $size visible pixels differ from convert -negate, up to $max levels (> 1)"; fi ;;
    *)
        if [ "$max" -le 1 ]; then ok "$n/max-diff=$max"
        else fail "$n" "$ndiff of $size pixels differ from PHP GD, up to $max levels (> 1)"; fi ;;
    esac
done < <(php "$COMPARE_PHP" "$WORK/manifest" 2>"$WORK/php.err")
while read -r n _; do
    [ -n "${SEEN[$n]:-}" ] || fail "$n" "gd_compare.php gave no result: $(head -c 200 "$WORK/php.err")"
done <"$WORK/manifest"
if [ -z "$not_exact" ]; then ok "$T_NAME/bit-exact-with-gd"
else fail "$T_NAME/bit-exact-with-gd" "within tolerance but not GD's exact arithmetic:$not_exact"; fi

# contrast 0 is the identity (ops.md), although GD's arithmetic is not
for s in $GD_SOURCES; do
    a=$OUT/$s/contrast0.png
    [ -f "$a" ] && same_image "$T_NAME/$s/contrast0-is-identity" "$a" "$IN/d-$s.png"
done

# One vipsheader run for every input and output (it starts slowly).
hdr_files=()
for s in $GD_SOURCES $ALPHA_EQ; do
    hdr_files+=("$IN/d-$s.png")
    for c in "${CASES[@]}"; do IFS='|' read -r name _ <<<"$c"; hdr_files+=("$OUT/$s/$name.png"); done
done
for f in $FORMATS; do
    hdr_files+=("$IN/$f")
    for x in negate edgedetect blurselective grayscale; do hdr_files+=("$OUT/fmt/$f-$x.png"); done
done
vheader "${hdr_files[@]}"

# Alpha bit for bit: one convert run prints the signature of each file's
# alpha channel, in order.
declare -A ASIG
alpha_files=()
for s in rgba-soft $ALPHA_EQ; do
    alpha_files+=("$IN/d-$s.png")
    for c in "${CASES[@]}"; do
        IFS='|' read -r name _ <<<"$c"
        [ -f "$OUT/$s/$name.png" ] && alpha_files+=("$OUT/$s/$name.png")
    done
done
i=0
while read -r sig; do ASIG[${alpha_files[$i]}]=$sig; i=$((i + 1)); done < <(
    convert "${alpha_files[@]}" -alpha extract -format '%#\n' info: 2>/dev/null)
for s in rgba-soft $ALPHA_EQ; do
    bad=""
    want=${ASIG[$IN/d-$s.png]:-none}
    for c in "${CASES[@]}"; do
        IFS='|' read -r name _ <<<"$c"
        f=$OUT/$s/$name.png
        [ -f "$f" ] || continue
        [ "${VBANDS[$f]:-}" = 4 ] || { bad="$bad $name(bands ${VBANDS[$f]:-?})"; continue; }
        [ "${ASIG[$f]:-}" = "$want" ] || bad="$bad $name"
    done
    if [ -z "$bad" ]; then ok "$T_NAME/$s/alpha-unchanged"
    else fail "$T_NAME/$s/alpha-unchanged" "alpha changed or lost by:$bad"; fi
done

# Shapes: every output has its input's size, 3 bands (4 with alpha).
for s in $GD_SOURCES $ALPHA_EQ; do
    bad=""
    i=$IN/d-$s.png
    for c in "${CASES[@]}"; do
        IFS='|' read -r name _ <<<"$c"
        f=$OUT/$s/$name.png
        [ -f "$f" ] || continue
        [ "${VSIZE[$f]:-} ${VFMT[$f]:-} ${VBANDS[$f]:-}" = "${VSIZE[$i]} uchar ${VBANDS[$i]}" ] ||
            bad="$bad $name=${VSIZE[$f]:-?},${VFMT[$f]:-?},${VBANDS[$f]:-?}"
    done
    if [ -z "$bad" ]; then ok "$T_NAME/$s/shapes"
    else fail "$T_NAME/$s/shapes" "expected ${VSIZE[$i]} uchar ${VBANDS[$i]} bands:$bad"; fi
done
for f in $FORMATS; do
    want_b=3
    [ "$f" = cogs.gif ] && want_b=4
    for x in negate edgedetect blurselective grayscale; do
        o=$OUT/fmt/$f-$x.png n=$T_NAME/format-$f/$x
        job_finished "/out/fmt/$f-$x.png" || { fail "$n" "$REASON"; continue; }
        check "$n" "output ${VSIZE[$o]:-?} ${VFMT[$o]:-?} ${VBANDS[$o]:-?} bands, expected ${VSIZE[$IN/$f]} uchar $want_b bands" \
            [ "${VSIZE[$o]:-} ${VFMT[$o]:-} ${VBANDS[$o]:-}" = "${VSIZE[$IN/$f]} uchar $want_b" ]
    done
done
finish
