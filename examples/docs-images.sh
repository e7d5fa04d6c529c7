#!/usr/bin/env bash
# make docs-images: one before|after picture per op for docs/ops.md, made
# from the first job of examples/requests/OP.json run on a synthetic scene
# (seeded plasma plus shapes: reproducible, and no photograph is copied
# into the repository). Writes docs/images/OP.jpg.
set -eu
cd "$(dirname "$0")/.."
KILN=${KILN:-build/kiln}
IM=$(command -v convert-im6.q16 || command -v convert)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/root/samples" docs/images
"$IM" -seed 7 -size 1024x768 plasma:fractal -blur 0x3 \
    -fill 'rgba(255,255,255,0.85)' -draw 'circle 330,380 330,560' \
    -fill none -stroke '#202020' -strokewidth 14 -draw 'rectangle 560,180 900,560' \
    -stroke none -fill '#1a3d7c' -font DejaVu-Sans-Bold -pointsize 110 \
    -annotate +600+420 'kiln' "$tmp/root/samples/photo.jpg"
"$IM" -size 256x128 xc:none -fill 'rgba(200,30,30,0.8)' \
    -draw 'roundrectangle 4,4 251,123 24,24' -fill white -font DejaVu-Sans-Bold \
    -pointsize 56 -gravity center -annotate +0+0 'LOGO' "$tmp/root/samples/logo.png"
"$IM" "$tmp/root/samples/photo.jpg" -resize 320x "$tmp/before.png"
for req in examples/requests/*.json; do
    op=$(basename "$req" .json)
    python3 - "$req" "$tmp/$op.json" "$op" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
job = r["jobs"][0]
job["destination"] = "/docs/%s.png" % sys.argv[3]
job["transformations"].append({"type": "resize", "width": 320})
r["jobs"] = [job]
json.dump(r, open(sys.argv[2], "w"))
PY
    if "$KILN" run --storage-root "$tmp/root" "$tmp/$op.json" >"$tmp/out" 2>&1; then
        "$IM" \( "$tmp/before.png" -background white -gravity east \
            -splice 12x0 \) "$tmp/root/docs/$op.png" -background white \
            -gravity center +append -quality 80 "docs/images/$op.jpg"
        echo "docs/images/$op.jpg"
    else
        echo "skip $op: $(head -c 200 "$tmp/out")"
    fi
done
