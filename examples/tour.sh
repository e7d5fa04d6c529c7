#!/usr/bin/env bash
# `make run`: the five-minute tour on the embedded defaults (the job store
# in ./var/kiln.db, local storage under ./var/storage). Puts the two files
# every example request reads in storage (/samples/photo.jpg and
# /samples/logo.png, 256x128 with alpha), compiles a request (text, then
# DOT rendered to var/tour.svg), runs it, lists what it wrote, and serves
# the API. Usage: examples/tour.sh [BUILD_DIR]
set -eu
BUILD=${1:-build}
KILN="$BUILD/kiln"
cd "$(dirname "$0")/.."
mkdir -p var/storage/samples
if [ ! -f var/storage/samples/photo.jpg ]; then
    if [ -f ../shared/testdata/photo-2725x2225.jpg ]; then
        cp ../shared/testdata/photo-2725x2225.jpg var/storage/samples/photo.jpg
    else
        # No photographs beside the checkout: a synthetic one will do.
        vips xyz var/xyz.v 1024 768
        vips colourspace var/xyz.v var/storage/samples/photo.jpg srgb
        rm -f var/xyz.v
    fi
fi
if [ ! -f var/storage/samples/logo.png ]; then
    # The watermark examples' logo: a translucent red box.
    vips black var/logo.v 256 128 --bands 4
    vips linear var/logo.v var/storage/samples/logo.png "1 1 1 1" "200 30 30 160" --uchar
    rm -f var/logo.v
fi
set -x
"$KILN" plugins
"$KILN" compile examples/tour.json
"$KILN" compile --source var/storage/samples/photo.jpg examples/tour.json
"$KILN" compile --format dot examples/tour.json > var/tour.dot
{ set +x; } 2>/dev/null
if command -v dot >/dev/null; then
    dot -Tsvg var/tour.dot -o var/tour.svg && echo "graph drawn in var/tour.svg"
fi
set -x
"$KILN" run examples/tour.json
{ set +x; } 2>/dev/null
ls -l var/storage/tour/
echo
echo "Now serving the API on the embedded defaults (Ctrl-C stops it):"
exec "$KILN" serve
