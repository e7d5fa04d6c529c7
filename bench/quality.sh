#!/usr/bin/env bash
# make bench, quality section (issue 13): the quality rule of every
# optimizer pass that changes resampling (docs/optimizer.md). For each
# photograph and size, kiln's output at -O0, -O2 and -O3 and sharp's
# default output (resize, fit inside, its own shrink-on-load) are compared
# with an exact reference: the full decode, in float, reduced with Lanczos3
# at the exact scale (libvips' reduce with gap 0, so no box shrink, on a
# float image, so no 8-bit rounding in between). Outputs are PNG, so JPEG
# encoding does not enter the figures. The rule: -O2 scores at least
# sharp's PSNR minus 0.25 dB, and never below 38 dB.
#
# Photographs: photo-2725x2225.jpg and photo-3840x2160.jpg from
# $SHARED/testdata, and Debian's plasma-workspace-wallpapers photographs
# (make bench-deps installs the package); QUALITY_PHOTOS overrides the
# list. Sizes: QUALITY_SIZES, "WxH" boxes (default the issue's 720x588 and
# a 320x320 thumbnail). Prints one row per photo and size and a verdict.
set -u
cd "$(dirname "$0")/.."
root=$(pwd)
KILN=${KILN:-build/kiln}
case $KILN in /*) ;; *) KILN=$root/$KILN ;; esac
SHARED=${SHARED:-../shared}
data=$SHARED/testdata
SIZES=${QUALITY_SIZES:-720x588 320x320}

echo
echo "== bench/quality: PSNR against an exact float Lanczos3 reference (the rule of docs/optimizer.md)"
if [ ! -x "$KILN" ]; then
    echo "skip bench/quality: $KILN is not built"
    exit 0
fi
sharp_ok=
if [ -f bench/node_modules/.kiln-lock-sha256 ] &&
    node -e "require('./bench/node_modules/sharp')" 2>/dev/null; then
    sharp_ok=1
else
    echo "skip bench/quality's sharp column: sharp is not installed (bench/peers.sh installs it)"
fi
photos=${QUALITY_PHOTOS:-}
if [ -z "$photos" ]; then
    for f in "$data/photo-2725x2225.jpg" "$data/photo-3840x2160.jpg"; do
        [ -f "$f" ] && photos+="$f "
    done
    for w in Autumn BytheWater ColorfulCups FallenLeaf Path OneStandsOut EveningGlow Kite ColdRipple; do
        f=/usr/share/wallpapers/$w/contents/images/2560x1600.jpg
        [ -f "$f" ] && photos+="$f "
    done
fi
if [ -z "$photos" ]; then
    echo "skip bench/quality: no photographs ($data and /usr/share/wallpapers are absent)"
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/in" "$tmp/out"

# psnr A REF: PSNR in dB of 8-bit image A against the float image REF.
psnr() {
    vips subtract "$1" "$2" "$tmp/d.v" 2>/dev/null &&
        vips multiply "$tmp/d.v" "$tmp/d.v" "$tmp/sq.v" 2>/dev/null &&
        vips avg "$tmp/sq.v" 2>/dev/null | awk '{ if ($1 <= 0) print "inf"; else printf "%.2f", 10 * log(255 * 255 / $1) / log(10) }'
}

cat >"$tmp/sharp.js" <<'JS'
const sharp = require(process.argv[2]);
const [file, out, w, h] = process.argv.slice(3);
sharp(file).resize({ width: Number(w), height: Number(h), fit: 'inside' })
    .png().toFile(out).catch((e) => { console.error(e.message); process.exit(1); });
JS

printf '%-34s %-9s %-9s %8s %8s %8s %8s  %s\n' photo size out O0 O2 O3 sharp "rule (-O2 >= sharp - 0.25, >= 38)"
met=0 total=0 worst=
for f in $photos; do
    # A wallpaper by its folder (.../Path/contents/images/2560x1600.jpg),
    # any other file by its name.
    case $f in
    */contents/images/*) name=$(basename "$(dirname "$(dirname "$(dirname "$f")")")") ;;
    *) name=$(basename "$f") ;;
    esac
    cp "$f" "$tmp/in/src.jpg"
    W=$(vipsheader -f width "$f" 2>/dev/null) H=$(vipsheader -f height "$f" 2>/dev/null)
    vips cast "$f" "$tmp/full.v" float 2>/dev/null
    for size in $SIZES; do
        bw=${size%x*} bh=${size#*x}
        for lvl in 0 2 3; do
            printf '{"service_id":1,"source":"/in/src.jpg","jobs":[{"destination":"/out/k%s.png","transformations":[{"type":"fitmethod","fit_type":"box","width":%s,"height":%s,"color":"#000","gravity":"center"}]}]}\n' \
                "$lvl" "$bw" "$bh" >"$tmp/r$lvl.json"
            "$KILN" run -O"$lvl" --storage-root "$tmp" "$tmp/r$lvl.json" >/dev/null 2>&1
        done
        ow=$(vipsheader -f width "$tmp/out/k0.png" 2>/dev/null) oh=$(vipsheader -f height "$tmp/out/k0.png" 2>/dev/null)
        vips resize "$tmp/full.v" "$tmp/ref.v" "$(awk -v a="$ow" -v b="$W" 'BEGIN { printf "%.10f", a / b }')" \
            --vscale "$(awk -v a="$oh" -v b="$H" 'BEGIN { printf "%.10f", a / b }')" --kernel lanczos3 --gap 0 2>/dev/null
        p0=$(psnr "$tmp/out/k0.png" "$tmp/ref.v")
        p2=$(psnr "$tmp/out/k2.png" "$tmp/ref.v")
        p3=$(psnr "$tmp/out/k3.png" "$tmp/ref.v")
        ps=-
        if [ -n "$sharp_ok" ]; then
            node "$tmp/sharp.js" "$root/bench/node_modules/sharp" "$tmp/in/src.jpg" "$tmp/out/s.png" "$bw" "$bh" &&
                [ "$(vipsheader -f width "$tmp/out/s.png")x$(vipsheader -f height "$tmp/out/s.png")" = "${ow}x$oh" ] &&
                ps=$(psnr "$tmp/out/s.png" "$tmp/ref.v")
        fi
        verdict=$(awk -v k="$p2" -v s="$ps" 'BEGIN {
            ok = (k >= 38) && (s == "-" || k >= s - 0.25)
            printf "%s (%+.2f dB)", ok ? "met" : "NOT MET", s == "-" ? 0 : k - s }')
        total=$((total + 1))
        [[ $verdict == met* ]] && met=$((met + 1))
        printf '%-34s %-9s %-9s %8s %8s %8s %8s  %s\n' "$name ${W}x$H" "$size" "${ow}x$oh" "$p0" "$p2" "$p3" "$ps" "$verdict"
    done
done
echo "rule met on $met of $total (photo, size) pairs; PSNR in dB against the full decode reduced in float with Lanczos3 at the exact scale (vips resize --kernel lanczos3 --gap 0 on a float cast); outputs PNG"
echo "command: KILN=$KILN SHARED=$SHARED bash bench/quality.sh"
