#!/usr/bin/env bash
# The MagickCore pixel backend (issue 14, docs/backends.md), its decoding,
# encoding and safety, against ImageMagick's own `convert`:
# - formats only ImageMagick reads here (PSD, PCX, XWD, DPX, BMP, PNM) run
#   on a magick service with convert's pixels, and are refused on a vips
#   service with a message that says where they are read;
# - hostile files (an MVG or MSL payload renamed .jpg, an SVG with an
#   external reference, a PNG declaring 60000x60000 pixels) are refused
#   before any coder runs: nothing is fetched, memory stays bounded;
# - EXIF orientation, a 16-bit PNG, a CMYK JPEG, alpha kept or flattened,
#   JPEG quality, and the result naming the backend;
# - a configuration naming a backend that is not loaded fails at start-up
#   at its path;
# - an op only libvips implements (the test plugin's invert) runs in a
#   magick service, converted once at each boundary of its run.
cd "$(dirname "$0")/../.." || exit 1
. tests/exec/lib.sh
exec_setup
require_tools python3
BUILD=$(dirname "$KILN")
IN=$ROOT/in

convert rose: -resize 90x60! -strip PNG24:"$IN/rose.png"
convert rose: -resize 90x60! -strip \( +clone -alpha extract -fx 'i/w' \) \
    -alpha off -compose CopyOpacity -composite PNG32:"$IN/rgba.png"
for f in psd pcx xwd dpx bmp ppm; do
    convert "$IN/rose.png" "$f:$IN/rose-$f.$f"
done

# req NAME SOURCE DEST [TRANSFORMATIONS] [QUALITY]
req() {
    local tr=${4:-[]} q=${5:-}
    [ -n "$q" ] && q=", \"quality\": $q"
    printf '{"service_id": 1, "source": "%s", "jobs": [{"destination": "%s"%s, "transformations": %s}]}\n' \
        "$2" "$3" "$q" "$tr" >"$WORK/$1.json"
}
# magick TAG REQ...: kiln run on the magick backend; results in $WORK/TAG.out
magick() {
    local tag=$1
    shift
    KILN_DEBUG=1 "$KILN" run -O2 --storage-root "$ROOT" --backend magick "$@" \
        >"$WORK/$tag.out" 2>"$WORK/$tag.err"
    if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' "$WORK/$tag.err"; then
        fail "$T_NAME/$tag/sanitizer" "$(grep -m1 -E 'AddressSanitizer|LeakSanitizer|runtime error:' "$WORK/$tag.err")"
    fi
}
field() { jq -r "$2" "$WORK/$1.out" 2>/dev/null | head -1; }

# --- formats only ImageMagick reads here: convert's pixels on magick,
# refused on vips
for f in psd pcx xwd dpx bmp ppm; do
    req "fmt-$f" "/in/rose-$f.$f" "/out/fmt-$f.png"
    magick "fmt-$f" "$WORK/fmt-$f.json"
    st=$(field "fmt-$f" '[.status, .jobs[0].backend] | join(" ")')
    if [ "$st" != "FINISHED magick" ]; then
        fail "$T_NAME/read/$f" "got \"$st\": $(field "fmt-$f" .error)"
        continue
    fi
    convert "$IN/rose-$f.$f[0]" -strip PNG24:"$WORK/ref-$f.png"
    if [ "$f" = dpx ]; then
        # DPX holds linear light: back to sRGB in 16 bits, then rounded
        # to 8 once here and once in convert's PNG writer (1 level).
        pae=$(compare -metric PAE "$ROOT/out/fmt-$f.png" "$WORK/ref-$f.png" null: 2>&1 | awk '{print $1}')
        [ -n "$pae" ] && [ "${pae%%.*}" -le 257 ] && ok "$T_NAME/read/$f/as-convert:within-1-level" ||
            fail "$T_NAME/read/$f/as-convert" "peak difference ${pae:-?} (of 65535)"
    else
        same_image "$T_NAME/read/$f/as-convert" "$ROOT/out/fmt-$f.png" "$WORK/ref-$f.png"
    fi
    "$KILN" run --storage-root "$ROOT" "$WORK/fmt-$f.json" >"$WORK/v.out" 2>&1
    msg=$(jq -r .error "$WORK/v.out" 2>/dev/null)
    case $f in xwd) want="is in no image format kiln knows" ;;
    *) want="a service with \"backend\": \"magick\" reads it" ;; esac
    case $msg in
    *"source: \"/in/rose-$f.$f\""*"$want"*) ok "$T_NAME/vips-refuses/$f" ;;
    *) fail "$T_NAME/vips-refuses/$f" "got \"$msg\"" ;;
    esac
done

# --- hostile files
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m http.server "$PORT" --bind 127.0.0.1 --directory "$WORK" \
    >"$WORK/http.log" 2>&1 &
HTTP_PID=$!
trap 'kill $HTTP_PID 2>/dev/null; _cleanup' EXIT
printf 'push graphic-context\nviewbox 0 0 64 64\nimage over 0,0 0,0 "http://127.0.0.1:%s/mvg.png"\npop graphic-context\n' \
    "$PORT" >"$IN/mvg.jpg"
printf '<?xml version="1.0" encoding="UTF-8"?>\n<image>\n<read filename="http://127.0.0.1:%s/msl.png"/>\n<write filename="/tmp/kiln-msl-pwned.png"/>\n</image>\n' \
    "$PORT" >"$IN/msl.jpg"
printf '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="64" height="64"><image xlink:href="http://127.0.0.1:%s/svg.png" width="64" height="64"/></svg>\n' \
    "$PORT" >"$IN/svg.jpg"
cp "$IN/svg.jpg" "$IN/svg.svg"
# Valid PNG headers declaring 16000 x 16000 pixels (256 megapixels, above
# the default max_pixels) and 60000 x 60000 (above the 16384 a side of
# Debian's policy.xml, which MagickCore refuses to ping), with one tiny
# compressed row behind them.
for side in 16000 60000; do
python3 - "$IN/huge-$side.png" "$side" <<'PY'
import struct, sys, zlib
def chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
n = int(sys.argv[2])
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", n, n, 8, 2, 0, 0, 0))
png += chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
open(sys.argv[1], "wb").write(png)
PY
done
hostile() {
    local name=$1 file=$2 want=$3
    req "h-$name" "/in/$file" "/out/h-$name.png"
    local t0=$SECONDS
    /usr/bin/time -f %M -o "$WORK/h-$name.mem" \
        "$KILN" run -O2 --storage-root "$ROOT" --backend magick "$WORK/h-$name.json" \
        >"$WORK/h-$name.out" 2>"$WORK/h-$name.err"
    local st msg kb
    st=$(field "h-$name" .status)
    msg=$(field "h-$name" .error)
    kb=$(tail -n 1 "$WORK/h-$name.mem")
    case "$st|$msg" in
    "FAILED|source: \"/in/$file\""*"$want"*) ok "$T_NAME/hostile/$name" ;;
    *) fail "$T_NAME/hostile/$name" "got \"$st\", \"$msg\" (want ... $want)" ;;
    esac
    [ -e "$ROOT/out/h-$name.png" ] && fail "$T_NAME/hostile/$name/written" "an output was written"
    # Bounded: well under what decoding the declared size would take.
    if [ -n "$kb" ] && [ "$kb" -lt 400000 ]; then
        ok "$T_NAME/hostile/$name/memory:${kb}KB"
    else
        fail "$T_NAME/hostile/$name/memory" "peak ${kb:-?} KB"
    fi
    [ $((SECONDS - t0)) -lt 20 ] || fail "$T_NAME/hostile/$name/time" "took $((SECONDS - t0)) s"
}
hostile mvg mvg.jpg "is an MVG drawing, which the magick backend does not read"
hostile msl msl.jpg "is an MSL script, which the magick backend does not read"
hostile svg svg.jpg "is an SVG document, which the magick backend does not read"
hostile svg-named-svg svg.svg "is an SVG document, which the magick backend does not read"
hostile huge huge-16000.png "is 16000x16000, 256000000 pixels, above the limit of 100000000"
hostile huger huge-60000.png "cannot read the png header"
sleep 0.2
if grep -q "GET" "$WORK/http.log"; then
    fail "$T_NAME/hostile/nothing-fetched" "$(grep -m1 GET "$WORK/http.log")"
else
    ok "$T_NAME/hostile/nothing-fetched"
fi
[ -e /tmp/kiln-msl-pwned.png ] && fail "$T_NAME/hostile/msl-wrote" "/tmp/kiln-msl-pwned.png exists"

# --- decoding: orientation, 16-bit, CMYK, alpha; encoding: flatten,
# quality
if [ -r "$TESTDATA/exif-landscape-6.jpg" ]; then
    cp "$TESTDATA/exif-landscape-6.jpg" "$IN/orient6.jpg"
else
    skip "$T_NAME/decode/orientation" "no $TESTDATA/exif-landscape-6.jpg"
    cp "$IN/rose.png" "$IN/orient6.jpg"
fi
convert "$IN/rose.png" -depth 16 PNG48:"$IN/deep.png"
convert "$IN/rose.png" -colorspace CMYK "$IN/cmyk.jpg"
req dec-orient /in/orient6.jpg /out/orient.png
req dec-deep /in/deep.png /out/deep.png
req dec-cmyk /in/cmyk.jpg /out/cmyk.png
req dec-alpha /in/rgba.png /out/alpha.png
req enc-flat /in/rgba.png /out/flat.jpg '[]' 90
req enc-q40 /in/rose.png /out/q40.jpg '[]' 40
magick dec "$WORK"/dec-*.json "$WORK"/enc-*.json
bad=$(jq -r 'select(.status != "FINISHED" or .jobs[0].backend != "magick") | .request + ": " + (.error // "backend " + .jobs[0].backend)' "$WORK/dec.out")
[ -z "$bad" ] && ok "$T_NAME/decode/finished" || fail "$T_NAME/decode/finished" "$bad"
if [ -r "$TESTDATA/exif-landscape-6.jpg" ]; then
    # Stored 450x600 with orientation 6 (and an ICC profile): upright
    # 600x450, as convert's colour-managed -auto-orient makes it.
    [ "$(img_size "$ROOT/out/orient.png")" = 600x450 ] && ok "$T_NAME/decode/orientation-size" ||
        fail "$T_NAME/decode/orientation-size" "$(img_size "$ROOT/out/orient.png"), want 600x450"
    if [ -n "$SRGB_ICC" ]; then
        convert "$IN/orient6.jpg" -profile "$SRGB_ICC" -auto-orient -strip PNG24:"$WORK/ref-orient.png"
        if psnr_ge "$ROOT/out/orient.png" "$WORK/ref-orient.png" 40; then
            ok "$T_NAME/decode/orientation-as-convert:${PSNR_VALUE}dB"
        else
            fail "$T_NAME/decode/orientation-as-convert" "${PSNR_VALUE:-?} dB"
        fi
    else
        skip "$T_NAME/decode/orientation-as-convert" "no sRGB ICC profile found for a colour-managed convert"
    fi
    # And as the libvips backend decodes it (both colour-manage through
    # the embedded profile).
    req dec-orient-v /in/orient6.jpg /out/orient-v.png
    "$KILN" run --storage-root "$ROOT" "$WORK/dec-orient-v.json" >/dev/null 2>&1
    if psnr_ge "$ROOT/out/orient.png" "$ROOT/out/orient-v.png" 35; then
        ok "$T_NAME/decode/orientation-as-libvips:${PSNR_VALUE}dB"
    else
        fail "$T_NAME/decode/orientation-as-libvips" "${PSNR_VALUE:-?} dB"
    fi
fi
same_image "$T_NAME/decode/16-bit" "$ROOT/out/deep.png" "$IN/rose.png"
same_image "$T_NAME/decode/alpha-kept" "$ROOT/out/alpha.png" "$IN/rgba.png"
[ "$(img_bands "$ROOT/out/alpha.png")" = 4 ] && ok "$T_NAME/decode/alpha-bands" ||
    fail "$T_NAME/decode/alpha-bands" "$(img_bands "$ROOT/out/alpha.png") bands"
# CMYK without a profile: ImageMagick's own conversion, as convert does it
# (within 1 level: convert converts on the way out, kiln on the way in).
convert "$IN/cmyk.jpg" -colorspace sRGB -strip PNG24:"$WORK/ref-cmyk.png"
pae=$(compare -metric PAE "$ROOT/out/cmyk.png" "$WORK/ref-cmyk.png" null: 2>&1 | awk '{print $1}')
[ -n "$pae" ] && [ "${pae%%.*}" -le 257 ] && ok "$T_NAME/decode/cmyk-as-convert:within-1-level" ||
    fail "$T_NAME/decode/cmyk-as-convert" "peak difference ${pae:-?} (of 65535)"
convert "$IN/rgba.png" -background white -alpha remove -alpha off -quality 90 -strip "$WORK/ref-flat.jpg"
same_image "$T_NAME/encode/flatten-as-convert" "$ROOT/out/flat.jpg" "$WORK/ref-flat.jpg"
convert "$IN/rose.png" -quality 40 -strip "$WORK/ref-q40.jpg"
same_image "$T_NAME/encode/quality-as-convert" "$ROOT/out/q40.jpg" "$WORK/ref-q40.jpg"
for f in "$ROOT/out/flat.jpg" "$ROOT/out/q40.jpg"; do
    q=$(identify -format %Q "$f")
    want=${f##*/q}; want=${want%.jpg}; [ "$want" = "$f" ] || [[ $f = *flat* ]] && want=90
    [ "$q" = "$want" ] && ok "$T_NAME/encode/quality-${f##*/}:$q" ||
        fail "$T_NAME/encode/quality-${f##*/}" "quality $q, want $want"
done

# --- configuration: a backend that is not loaded
cat >"$WORK/nope.json" <<JSON
{"plugins": {"dirs": ["$BUILD/plugins"], "enable": ["ops-vips", "storage-local"]},
 "services": [{"id": 1, "backend": "magick", "storage": {"plugin": "local", "root": "$ROOT"}}]}
JSON
"$KILN" run --config "$WORK/nope.json" "$WORK/fmt-psd.json" >"$WORK/nope.out" 2>&1
case $(cat "$WORK/nope.out") in
*'services[0].backend: no pixel backend "magick" is loaded (loaded: "vips"; enable its plugin, e.g. "backend-magick", in plugins.enable)'*)
    ok "$T_NAME/config/not-loaded" ;;
*) fail "$T_NAME/config/not-loaded" "$(head -c 300 "$WORK/nope.out")" ;;
esac

# vector_sources are rendered for libvips only
sed 's/"backend": "magick", /"backend": "magick", "vector_sources": {"formats": ["svg"]}, /' \
    "$WORK/nope.json" | sed 's/"ops-vips", "storage-local"/"ops-vips", "backend-magick", "storage-local"/' >"$WORK/vec.json"
"$KILN" run --config "$WORK/vec.json" "$WORK/fmt-psd.json" >"$WORK/vec.out" 2>&1
case $(cat "$WORK/vec.out") in
*'services[0].backend: "magick" does not read SVG or PDF: vector_sources needs the backend "vips"'*)
    ok "$T_NAME/config/vector-sources" ;;
*) fail "$T_NAME/config/vector-sources" "$(head -c 300 "$WORK/vec.out")" ;;
esac

# --- an output format the backend does not write: refused when compiled
printf '{"service_id": 1, "source": "/in/rose.png", "jobs": [{"destination": "/out/x.heic", "transformations": []}]}\n' >"$WORK/heic.json"
magick heic "$WORK/heic.json"
got=$(jq -r '.errors[0] | .path + ": " + .message' "$WORK/heic.out" 2>/dev/null)
want='jobs[0]: "/out/x.heic" is heic, which this service'"'"'s pixel backend "magick" does not write (it writes jpeg, png, gif, webp, tiff)'
[ "$got" = "$want" ] && ok "$T_NAME/compile/unwritten-format" ||
    fail "$T_NAME/compile/unwritten-format" "got \"$got\""

# --- the passes: on a magick service only those every backend runs (no
# fused lookup table, no reduced decode); the same request on a vips
# service fuses.
cat >"$WORK/cfg-two.json" <<JSON
{"plugins": {"dirs": ["$BUILD/plugins"], "enable": ["ops-vips", "backend-magick", "storage-local"]},
 "services": [{"id": 1, "backend": "magick", "storage": {"plugin": "local", "root": "$ROOT"}},
              {"id": 2, "storage": {"plugin": "local", "root": "$ROOT"}}]}
JSON
TR='[{"type":"brightness","bright_level":10},{"type":"contrast","level":10},{"type":"resize","width":30}]'
req pass-m /in/rose.png /out/pass-m.jpg "$TR"
sed 's/"service_id": 1/"service_id": 2/' "$WORK/pass-m.json" >"$WORK/pass-v.json"
gm=$("$KILN" compile --config "$WORK/cfg-two.json" --source-size 900x600 "$WORK/pass-m.json" 2>&1)
gv=$("$KILN" compile --config "$WORK/cfg-two.json" --source-size 900x600 "$WORK/pass-v.json" 2>&1)
if [[ $gm == *"brightness bright_level=10"*"contrast level=10"* && $gm != *"lut [fused"* &&
      $gv == *"lut [fused brightness + contrast]"* ]]; then
    ok "$T_NAME/passes/vips-only-left-out"
else
    fail "$T_NAME/passes/vips-only-left-out" "magick: $(echo "$gm" | tr '\n' ' '); vips: $(echo "$gv" | tr '\n' ' ')"
fi

# --- an op only libvips implements, in a magick service: flip (magick),
# three inverts (libvips only), flip (magick): two conversions, not six,
# and the pixels of the same chain on libvips.
if [ -e "$BUILD/tests/plugins/test-good.so" ]; then
    cat >"$WORK/cfg-mixed.json" <<JSON
{"plugins": {"dirs": ["$BUILD/plugins", "$BUILD/tests/plugins"],
             "enable": ["ops-vips", "backend-magick", "test-good", "storage-local"]},
 "services": [{"id": 1, "backend": "magick", "storage": {"plugin": "local", "root": "$ROOT"}}]}
JSON
    sed 's/"backend": "magick", //' "$WORK/cfg-mixed.json" >"$WORK/cfg-vips.json"
    TR='[{"type":"flip","direction":"x"},{"type":"test-good-invert"},{"type":"test-good-invert"},{"type":"test-good-invert"},{"type":"flip","direction":"y"}]'
    req mixed /in/rgba.png /out/mixed.png "$TR"
    req mixed-v /in/rgba.png /out/mixed-v.png "$TR"
    KILN_DEBUG=1 "$KILN" run -O0 --config "$WORK/cfg-mixed.json" "$WORK/mixed.json" \
        >"$WORK/mixed.out" 2>"$WORK/mixed.err"
    "$KILN" run -O0 --config "$WORK/cfg-vips.json" "$WORK/mixed-v.json" >/dev/null 2>&1
    st=$(field mixed '[.status, .jobs[0].backend] | join(" ")')
    [ "$st" = "FINISHED magick" ] && ok "$T_NAME/mixed/finished" ||
        fail "$T_NAME/mixed/finished" "got \"$st\": $(field mixed .error)"
    if grep -q '/out/mixed.png: 2 conversions between "magick" and libvips' "$WORK/mixed.err"; then
        ok "$T_NAME/mixed/converted-once-each-way"
    else
        fail "$T_NAME/mixed/converted-once-each-way" "$(grep -m1 conversion "$WORK/mixed.err")"
    fi
    same_image "$T_NAME/mixed/as-libvips" "$ROOT/out/mixed.png" "$ROOT/out/mixed-v.png"
else
    skip "$T_NAME/mixed" "the test plugins are not built ($BUILD/tests/plugins)"
fi
finish
