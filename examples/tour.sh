#!/usr/bin/env bash
# `make run`: the five-minute tour on the embedded defaults (local storage
# under ./var/storage). Puts a sample photo in storage, compiles a request
# (text, then DOT rendered to var/tour.svg), runs it, and lists what it
# wrote. Usage: examples/tour.sh [BUILD_DIR]
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
