#!/usr/bin/env bash
# Shrink-on-load on the magick backend (docs/backends.md, "Shrink-on-load"):
# at -O2 a JPEG that every job reduces with resize or fitmethod is decoded
# at a reduced scale through ImageMagick's jpeg:size hint. A seeded
# generator ($SEED; KILN_TEST_SEED overrides) makes requests of 1-3 jobs
# over generated JPEGs (one with EXIF orientation 6, which turns the hint's
# axes) and, when $SHARED/testdata is there, the test photographs: widths,
# heights and percentages, every fit_type, sometimes a job whose first op
# does not resample (then nothing may be reduced). Properties, per request:
#  - every job finishes at -O0 and -O2 with the same size;
#  - a reduced decode happens exactly when the rule says (-O2, a JPEG,
#    every job's first op resize or fitmethod, each making at most a sixth
#    of a side: x3 left after an IDCT scale of at most a half), never at
#    -O0 or -O1 or on a PNG; when it does, the size decoded is at least
#    what kiln asked and at most half of the source;
#  - -O2 is at least 38 dB from -O0 (the bound of docs/optimizer.md);
#  - a one-job resize gives exactly the pixels of `convert -define
#    jpeg:size=WxH SRC -auto-orient -filter Lanczos -resize WxH!` with the
#    hint kiln logged (ImageMagick's own shrink-on-load).
cd "$(dirname "$0")/../.." || exit 1
. tests/exec/lib.sh
exec_setup
SEED=${KILN_TEST_SEED:-1407}
RANDOM=$SEED
IN=$ROOT/in
CASES=${MAGICK_SHRINK_CASES:-36}

convert -size 1600x1200 plasma:tomato-steelblue -blur 0x1 +noise Gaussian \
    -quality 92 "$IN/gen.jpg"
convert -size 1200x900 gradient:navy-gold -swirl 200 -quality 90 \
    "$IN/gen-o6.jpg"
# EXIF orientation 6 (an APP1 segment with one IFD entry, after SOI):
# ImageMagick's -orient writes none into a file without EXIF.
python3 - "$IN/gen-o6.jpg" <<'PY'
import struct, sys
p = sys.argv[1]
b = open(p, "rb").read()
tiff = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 1) + \
    struct.pack("<HHIHH", 0x0112, 3, 1, 6, 0) + struct.pack("<I", 0)
app1 = b"Exif\x00\x00" + tiff
open(p, "wb").write(b[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + b[2:])
PY
convert "$IN/gen.jpg" -resize 800x600! PNG24:"$IN/gen.png"
SOURCES=(gen.jpg gen-o6.jpg gen.png)
declare -A SW SH
SW[gen.jpg]=1600 SH[gen.jpg]=1200
SW[gen-o6.jpg]=900 SH[gen-o6.jpg]=1200 # upright: orientation 6 turns it
SW[gen.png]=800 SH[gen.png]=600
if [ -d "${TESTDATA:-}" ] && [ -f "$TESTDATA/photo-2725x2225.jpg" ]; then
    cp "$TESTDATA/photo-2725x2225.jpg" "$TESTDATA/exif-landscape-6.jpg" "$IN/"
    SOURCES+=(photo-2725x2225.jpg exif-landscape-6.jpg)
    SW[photo-2725x2225.jpg]=2725 SH[photo-2725x2225.jpg]=2225
    read -r w h < <(identify -format '%w %h' "$IN/exif-landscape-6.jpg")
    SW[exif-landscape-6.jpg]=$h SH[exif-landscape-6.jpg]=$w
else
    skip "$T_NAME/photographs" "no \$SHARED/testdata: generated sources only"
fi

# run TAG LEVEL REQ: kiln run on magick; TAG.out, TAG.err
run() {
    KILN_DEBUG=1 "$KILN" run -O"$2" --storage-root "$ROOT" --backend magick \
        "$3" >"$WORK/$1.out" 2>"$WORK/$1.err"
    if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' "$WORK/$1.err"; then
        fail "$T_NAME/$1/sanitizer" "$(grep -m1 -E 'AddressSanitizer|LeakSanitizer|runtime error:' "$WORK/$1.err")"
    fi
}
# decoded TAG -> "GOTWxGOTH ASKWxASKH" from the debug line, or nothing
decoded() {
    sed -n 's/.*decoded the [0-9]*x[0-9]* source at \([0-9]*x[0-9]*\) (asked at least \([0-9]*x[0-9]*\)).*/\1 \2/p' \
        "$WORK/$1.err" | head -1
}

# as_convert NAME SRC "GOT ASK" OUT: OUT equals convert's resize with the
# hint kiln asked for; jpeg:size is in the file's axes, so an orientation
# of 6 swaps it. A source with an ICC profile is converted to sRGB through
# it, as kiln does, when the machine has an sRGB profile for convert.
as_convert() {
    local got ask hint icc=()
    read -r got ask <<<"$3"
    hint=$ask
    case $2 in *o6* | exif-landscape-6*) hint=${ask#*x}x${ask%x*} ;; esac
    if identify -format '%[profiles]' "$IN/$2" 2>/dev/null | grep -q icc; then
        if [ -z "$SRGB_ICC" ]; then
            skip "$1" "$2 has an ICC profile and no sRGB profile is installed for convert"
            return
        fi
        icc=(-profile "$SRGB_ICC")
    fi
    convert -define jpeg:size="$hint" "$IN/$2" -auto-orient "${icc[@]}" \
        -filter Lanczos -resize "$(img_size "$4")!" PNG32:"$WORK/ref.png"
    same_image "$1" "$4" "$WORK/ref.png"
}

FITS=(cropbox letterbox box stretch outside)
for ((c = 0; c < CASES; c++)); do
    src=${SOURCES[RANDOM % ${#SOURCES[@]}]}
    sw=${SW[$src]} sh=${SH[$src]}
    njobs=$((1 + RANDOM % 3))
    jobs="" block=0 unknown=0 resizes=() plain_resize=""
    for ((j = 0; j < njobs; j++)); do
        kind=$((RANDOM % 8))
        if [ "$kind" -le 3 ]; then
            # resize by width, height or percentage
            case $((RANDOM % 3)) in
            0) tr="{\"type\": \"resize\", \"width\": $((8 + RANDOM % (sw / 5)))}" ;;
            1) tr="{\"type\": \"resize\", \"height\": $((8 + RANDOM % (sh / 5)))}" ;;
            *) p=$((3 + RANDOM % 25)); tr="{\"type\": \"resize\", \"width\": \"$p%\", \"height\": \"$p%\"}" ;;
            esac
            resizes+=("$j")
            [ "$njobs" = 1 ] && plain_resize=1
        elif [ "$kind" -le 6 ]; then
            fw=$((8 + RANDOM % (sw / 4))) fh=$((8 + RANDOM % (sh / 4)))
            ft=${FITS[RANDOM % ${#FITS[@]}]}
            tr="{\"type\": \"fitmethod\", \"width\": $fw, \"height\": $fh, \"fit_type\": \"$ft\", \"color\": \"#20304080\", \"gravity\": \"center\"}"
            unknown=1 # planned from the fit's own scale: not predicted here
        else
            tr="{\"type\": \"brightness\", \"bright_level\": 10}, {\"type\": \"resize\", \"width\": 64}"
            block=1
        fi
        [ -n "$jobs" ] && jobs+=", "
        jobs+="{\"destination\": \"/out/c$c-$j.png\", \"transformations\": [$tr]}"
    done
    case $src in *.png) block=1 ;; esac
    printf '{"service_id": 1, "source": "/in/%s", "jobs": [%s]}\n' "$src" "$jobs" >"$WORK/c$c.json"
    name="$T_NAME/case$c($src,$njobs-jobs)"
    for lvl in 0 1 2; do
        run "c$c-O$lvl" "$lvl" "$WORK/c$c.json"
        st=$(jq -r .status "$WORK/c$c-O$lvl.out" 2>/dev/null)
        if [ "$st" != FINISHED ]; then
            fail "$name/O$lvl/finished" "status ${st:-none}: $(jq -c '[.error, .errors]' "$WORK/c$c-O$lvl.out" 2>/dev/null) $(head -c 300 "$WORK/c$c-O$lvl.err")"
            continue 2
        fi
        for ((j = 0; j < njobs; j++)); do
            mv "$ROOT/out/c$c-$j.png" "$WORK/c$c-$j-O$lvl.png"
        done
    done
    # the rule, from the sizes -O0 wrote: x3 left after at most half a side
    expect=1
    for j in "${resizes[@]}"; do
        read -r ow oh < <(identify -format '%w %h' "$WORK/c$c-$j-O0.png")
        [ $((ow * 6)) -le "$sw" ] && [ $((oh * 6)) -le "$sh" ] || expect=0
    done
    [ "$unknown" = 1 ] && [ "$expect" = 1 ] && expect=2
    [ "$block" = 1 ] && expect=0
    d=$(decoded "c$c-O2")
    [ -z "$(decoded "c$c-O0")$(decoded "c$c-O1")" ] && ok "$name/exact-levels-decode-whole" ||
        fail "$name/exact-levels-decode-whole" "a reduced decode at -O0 or -O1"
    if [ "$expect" = 1 ] && [ -z "$d" ]; then
        fail "$name/reduced" "no reduced decode where the rule allows one"
    elif [ "$expect" = 0 ] && [ -n "$d" ]; then
        fail "$name/not-reduced" "decoded at $d where the rule allows none"
    else
        ok "$name/rule"
    fi
    if [ -n "$d" ]; then
        read -r got ask <<<"$d"
        gw=${got%x*} gh=${got#*x} aw=${ask%x*} ah=${ask#*x}
        if [ "$gw" -ge "$aw" ] && [ "$gh" -ge "$ah" ] && [ $((gw * 2)) -le $((sw + 1)) ] &&
            [ $((gh * 2)) -le $((sh + 1)) ]; then
            ok "$name/decoded-size"
        else
            fail "$name/decoded-size" "decoded $got, asked $ask, source ${sw}x$sh"
        fi
    fi
    for ((j = 0; j < njobs; j++)); do
        a=$WORK/c$c-$j-O0.png b=$WORK/c$c-$j-O2.png PSNR_VALUE=inf
        if [ "$(img_size "$a")" != "$(img_size "$b")" ]; then
            fail "$name/job$j/size" "-O2 $(img_size "$b"), -O0 $(img_size "$a")"
        elif cmp -s "$a" "$b" || psnr_ge "$a" "$b" 38 >/dev/null; then
            ok "$name/job$j/psnr:${PSNR_VALUE:-inf}"
        else
            fail "$name/job$j/psnr" "${PSNR_VALUE:-?} dB between -O2 and -O0 (under 38)"
        fi
    done
    if [ -n "$d" ] && [ -n "$plain_resize" ]; then
        as_convert "$name/as-convert-jpeg-size" "$src" "$d" "$WORK/c$c-0-O2.png"
    fi
done

# One resize job per JPEG source, to an eighth, a twelfth and 64 px wide:
# reduced, and exactly ImageMagick's own shrink-on-load.
for src in "${SOURCES[@]}"; do
    case $src in *.png) continue ;; esac
    for w in $((SW[$src] / 8)) $((SW[$src] / 12)) 64; do
        printf '{"service_id": 1, "source": "/in/%s", "jobs": [{"destination": "/out/r.png", "transformations": [{"type": "resize", "width": %d}]}]}\n' \
            "$src" "$w" >"$WORK/r.json"
        run r 2 "$WORK/r.json"
        d=$(decoded r)
        if [ -z "$d" ]; then
            fail "$T_NAME/resize-$src-$w/reduced" "no reduced decode: $(jq -c .error "$WORK/r.out")"
            continue
        fi
        as_convert "$T_NAME/resize-$src-$w/as-convert-jpeg-size" "$src" "$d" "$ROOT/out/r.png"
    done
done
finish
