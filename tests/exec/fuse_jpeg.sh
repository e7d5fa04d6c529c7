#!/usr/bin/env bash
# Optimizer pass fuse-jpeg (docs/optimizer.md): a one-job JPEG thumbnail
# runs as one loop of libjpeg and kiln's kernels instead of a libvips
# pipeline, and must write the pipeline's bytes. Random requests (resize by
# width, height or both, every fit type, random boxes and qualities) over
# generated JPEGs of random sizes and every kind the pass meets or must
# refuse (4:2:0, 4:2:2, 4:4:4, progressive, restart markers, grey, CMYK,
# an EXIF orientation, a truncated file), and the shared photographs: each
# request runs with the pass and with KILN_DISABLE_PASSES=fuse-jpeg, and
# the two runs must agree byte for byte on every output and on every
# job's status and error. The pass must apply to at least a third of the
# requests (`kiln compile --passes --source` says so), or the test proves
# nothing. KILN_FUSE_CASES (default 90) requests, seed KILN_FUSE_SEED.
cd "$(dirname "$0")/../.." || exit 1
. tests/exec/lib.sh
exec_setup

N=${KILN_FUSE_CASES:-90}
RANDOM=${KILN_FUSE_SEED:-1301}
# rnd LO HI: sets R. Not $(...): bash reseeds RANDOM in every subshell,
# which made the draw, and the share of requests the pass takes, differ
# from run to run whatever the seed.
rnd() { R=$((RANDOM % ($2 - $1 + 1) + $1)); }

# --- sources -----------------------------------------------------------
# Colour noise (seeded: the same files for the same seed), softened, over
# a gradient: edges for the kernels, flat runs for rounding.
gen_base() { # gen_base OUT.png W H
    local b
    for b in 0 1 2; do
        vips gaussnoise "$WORK/n$b.v" "$2" "$3" --mean 128 --sigma 40 \
            --seed $((RANDOM + b)) || fail "$T_NAME/fixture" "gaussnoise"
    done
    vips bandjoin "$WORK/n0.v $WORK/n1.v $WORK/n2.v" "$WORK/n.v" &&
        vips cast "$WORK/n.v" "$WORK/noise.png" uchar &&
        convert "$WORK/noise.png" -blur 0x1.5 \( -size "${2}x${3}" gradient:'#204060-#f0c080' \) \
            -compose blend -define compose:args=60 -composite "$1" ||
        fail "$T_NAME/fixture" "cannot make the generated image $1"
}
srcs=()
add_src() { srcs+=("$1"); }
i=0
for kind in 420 444 422 prog restart grey cmyk oriented 420b prog2; do
    i=$((i + 1))
    rnd 64 2400; w=$R
    rnd 64 2400; h=$R
    rnd 40 89; q420=$R
    base=$WORK/base$i.png
    gen_base "$base" "$w" "$h"
    out=$ROOT/in/$kind-${w}x$h.jpg
    case $kind in
    420 | 420b) vips copy "$base" "$out[Q=$q420]" ;;
    444) vips copy "$base" "$out[Q=85,subsample-mode=off]" ;;
    422) convert "$base" -quality 85 -sampling-factor 2x1 "$out" ;;
    prog | prog2) vips copy "$base" "$out[Q=80,interlace]" ;;
    restart) vips copy "$base" "$out[Q=80,restart-interval=2]" ;;
    grey) vips colourspace "$base" "$out[Q=80]" b-w ;;
    cmyk) convert "$base" -colorspace CMYK -quality 85 "$out" ;;
    oriented) # an EXIF block of one tag, Orientation 6, after the SOI
        vips copy "$base" "$WORK/o.jpg[Q=85]" && {
            head -c 2 "$WORK/o.jpg"
            printf '\xff\xe1\x00\x22Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08\x00\x01'
            printf '\x01\x12\x00\x03\x00\x00\x00\x01\x00\x06\x00\x00\x00\x00\x00\x00'
            tail -c +3 "$WORK/o.jpg"
        } >"$out" ;;
    esac
    add_src "$out"
done
# A file that stops early: the pass must leave it to the pipeline's
# strict and lenient decodes.
good=${srcs[0]}
head -c $(($(stat -c %s "$good") * 2 / 3)) "$good" >"$ROOT/in/truncated.jpg"
add_src "$ROOT/in/truncated.jpg"
if [ -d "$TESTDATA" ]; then
    for f in photo-2725x2225.jpg photo-3840x2160.jpg sample.jpg truncated.jpg \
        exif-landscape-6.jpg exif-landscape-1.jpg; do
        [ -f "$TESTDATA/$f" ] && cp "$TESTDATA/$f" "$ROOT/in/shared-$f" &&
            add_src "$ROOT/in/shared-$f"
    done
else
    skip "$T_NAME/shared" "$TESTDATA is absent: generated sources only"
fi

# --- requests ----------------------------------------------------------
fits=(box stretch cropbox letterbox outside)
mkdir -p "$WORK/req"
reqs=()
for n in $(seq 1 "$N"); do
    src=${srcs[$((RANDOM % ${#srcs[@]}))]}
    read -r sw sh < <(vipsheader -f width "$src" 2>/dev/null | tr '\n' ' '; vipsheader -f height "$src" 2>/dev/null)
    sw=${sw:-600} sh=${sh:-600}
    # Mostly reductions of 2 to 30, sometimes mild or an enlargement.
    rnd 12 300; f=$R
    [ $((RANDOM % 8)) = 0 ] && { rnd 7 14; f=$R; }
    tw=$((sw * 10 / f)) th=$((sh * 10 / f))
    [ "$tw" -ge 1 ] || tw=1
    [ "$th" -ge 1 ] || th=1
    rnd 80 120; h2=$(((th * R) / 100 + 1))
    rnd 70 130; h3=$(((th * R) / 100 + 1))
    case $((RANDOM % 4)) in
    0) tr="{\"type\":\"resize\",\"width\":$tw}" ;;
    1) tr="{\"type\":\"resize\",\"height\":$th}" ;;
    2) tr="{\"type\":\"resize\",\"width\":$tw,\"height\":$h2}" ;;
    3) tr="{\"type\":\"fitmethod\",\"fit_type\":\"${fits[$((RANDOM % 5))]}\",\"width\":$tw,\"height\":$h3,\"color\":\"#102030\",\"gravity\":\"center\"}" ;;
    esac
    rnd 50 100; q=$R # lower: JPEG noise swamps the -O0 agreement
    [ $((RANDOM % 3)) = 0 ] && q=80
    printf '{"service_id":1,"source":"/in/%s","jobs":[{"destination":"/out/c%d.jpg","quality":%d,"transformations":[%s]}]}\n' \
        "${src##*/}" "$n" "$q" "$tr" >"$WORK/req/c$n.json"
    reqs+=("$WORK/req/c$n.json")
done

# Every kind the pass must refuse or give up on, whatever the draw.
n_rand=$N
for kind in cmyk oriented truncated grey prog; do
    s=$(ls "$ROOT"/in/$kind*.jpg 2>/dev/null | head -1)
    [ -n "$s" ] || continue
    N=$((N + 1))
    # An eighth of each side, at least 16 px (shrink-on-load leaves
    # smaller results to a whole decode at -O2).
    kw=$(($(vipsheader -f width "$s" 2>/dev/null || echo 640) / 8))
    kh=$(($(vipsheader -f height "$s" 2>/dev/null || echo 640) / 8))
    [ "$kw" -ge 16 ] || kw=16
    [ "$kh" -ge 16 ] || kh=16
    printf '{"service_id":1,"source":"/in/%s","jobs":[{"destination":"/out/c%d.jpg","transformations":[{"type":"resize","width":%d,"height":%d}]}]}\n' \
        "${s##*/}" "$N" "$kw" "$kh" >"$WORK/req/c$N.json"
    reqs+=("$WORK/req/c$N.json")
    line=$("$KILN" compile --passes --source "$s" "$WORK/req/c$N.json" 2>&1 | grep '^=== pass fuse-jpeg')
    case $kind in
    cmyk | oriented)
        if [[ $line == *"not applied"* ]]; then ok "$T_NAME/refuses-$kind"
        else fail "$T_NAME/refuses-$kind" "pass line: $line"; fi ;;
    *)  # planned from the header: the loop takes it, or (truncated)
        # gives up at run time; compared with the rest below
        if [[ $line == *"in one loop"* ]]; then ok "$T_NAME/plans-$kind"
        else fail "$T_NAME/plans-$kind" "pass line: $line"; fi ;;
    esac
done

# --- with and without the pass -------------------------------------------
applied=0
for r in "${reqs[@]}"; do
    src=$ROOT$(jq -r .source "$r")
    if "$KILN" compile --passes --source "$src" "$r" 2>/dev/null |
        grep -q '^=== pass fuse-jpeg.*in one loop'; then
        applied=$((applied + 1))
    fi
done
# Not also against -O0 (run_kiln's cross-check): this compares the pass
# with its absence, exactly. Softened noise is harder for a reduced decode
# than a photograph and falls below the photographs' 38 dB floor; the
# shared photographs meet it in the other tests and bench/quality.sh.
KILN_CROSS_O0=0 run_kiln fused "${reqs[@]}"
r2=$WORK/unfused-root
cp -al "$ROOT" "$r2"
rm -rf "$r2/out" && mkdir -p "$r2/out"
KILN_DISABLE_PASSES=fuse-jpeg "$KILN" run --storage-root "$r2" "${reqs[@]}" \
    >"$WORK/unfused.out" 2>"$WORK/unfused.err"

bad=0
for n in $(seq 1 "$N"); do
    d=/out/c$n.jpg
    a=$(jq -c --arg d "$d" '.jobs[]? | select(.destination == $d) | [.status, .width, .height, .bytes, .error]' "$WORK/fused.out")
    b=$(jq -c --arg d "$d" '.jobs[]? | select(.destination == $d) | [.status, .width, .height, .bytes, .error]' "$WORK/unfused.out")
    why=
    ea=no eb=no
    [ -f "$ROOT$d" ] && ea=yes
    [ -f "$r2$d" ] && eb=yes
    if [ -z "$a" ] || [ "$a" != "$b" ]; then
        why="results differ: with the pass $a, without $b"
    elif [ "$ea" != "$eb" ]; then
        why="written with the pass: $ea, without: $eb"
    elif [ "$ea" = yes ] && ! cmp -s "$ROOT$d" "$r2$d"; then
        why="bytes differ ($(cmp "$ROOT$d" "$r2$d" 2>&1 | head -1))"
    fi
    if [ -n "$why" ]; then
        bad=$((bad + 1))
        fail "$T_NAME/c$n" "$why; request: $(cat "$WORK/req/c$n.json") (KILN_FUSE_SEED=${KILN_FUSE_SEED:-1301})"
    fi
done
[ "$bad" = 0 ] && ok "$T_NAME/same-bytes:$N-requests"
if [ $((applied * 3)) -ge "$n_rand" ]; then
    ok "$T_NAME/applied:$applied-of-$N"
else
    fail "$T_NAME/applied" "the pass applied to $applied of $N requests (expected a third of the $n_rand random ones or more)"
fi
finish
