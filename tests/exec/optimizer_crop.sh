#!/usr/bin/env bash
# Optimizer pass crop-first (docs/optimizer.md): a crop after a resize or
# fit becomes a window of that resample, which resamples only the part of
# its input the window needs. The pass is exact: for resize and fit
# followed by crops of every gravity, offsets and fit false, at factors 2,
# 4, 2/3 and 3/2, on a generated image and on the shared photographs
# (JPEG, PNG with alpha, 16-bit PNG), `kiln compile --passes` must show
# the pass and -O2 must write -O0's pixels (PNG outputs) and size. Cases
# the pass refuses (sizes that share no factor, a letterbox that pads)
# must say so and write -O0's pixels too.
cd "$(dirname "$0")/../.." || exit 1
. tests/exec/lib.sh
exec_setup

rz() { echo "{\"type\": \"resize\", \"width\": $1}"; }
fit() {
    echo "{\"type\": \"fitmethod\", \"fit_type\": \"$1\", \"width\": $2," \
        "\"height\": $3, \"color\": \"#808080\", \"gravity\": \"center\"}"
}
# crop GRAVITY W H [X Y [FIT]]
crop() {
    echo "{\"type\": \"crop\", \"gravity\": \"$1\", \"width\": $2," \
        "\"height\": $3, \"xoffset\": ${4:-0}, \"yoffset\": ${5:-0}," \
        "\"fit\": ${6:-true}}"
}

# crop_case NAME FILE EXPECT TRANSFORMATION...: one job reading FILE
# through the transformations. EXPECT is "moved" (the pass applies) or
# "kept" (it refuses, saying why); either way -O2 must write -O0's size
# and pixels.
crop_case() {
    local expect=applied
    [ "$3" = moved ] || expect=refused
    pass_case crop-first ': moved 1 crop into the resample before' \
        'no change; not applied: ' "$1" "$2" "$expect" "${@:4}" &&
        pass_same_pixels "$1"
}

# Always: a generated 1800x1200 image of white noise.
noise_png "$WORK/gen.png" 1800 1200
G=$WORK/gen.png
crop_case gen-2-center "$G" moved "$(rz 900)" "$(crop center 300 300)"
crop_case gen-4-northwest "$G" moved "$(rz 450)" \
    "$(crop northwest 100 80 7 5)"
crop_case gen-2of3-southeast "$G" moved "$(rz 1200)" \
    "$(crop southeast 301 199 13 21)"
crop_case gen-3of2-east "$G" moved "$(rz 2700)" "$(crop east 250 333 3)"
crop_case gen-edge-north "$G" moved "$(rz 900)" "$(crop north 900 50)"
crop_case gen-fit-false "$G" moved "$(rz 600)" \
    "$(crop northwest 200 200 -50 -30 false)"
crop_case gen-stretch "$G" moved "$(fit stretch 700 500)" \
    "$(crop southwest 120 90 11 9)"
crop_case gen-cropbox "$G" moved "$(fit cropbox 600 600)" \
    "$(crop south 200 100 0 40)"
# Refused: 1800 to 1799 and 1200 to 1199 share no factor; a letterbox pads.
crop_case gen-no-factor "$G" kept "$(rz 1799)" "$(crop center 100 100)"
crop_case gen-letterbox "$G" kept "$(fit letterbox 600 600)" \
    "$(crop center 500 500)"

T=$TESTDATA
if [ ! -d "$T" ]; then
    skip "$T_NAME/photos" "$T is absent (set SHARED to the shared folder)"
    finish
fi
require_testdata photo-2725x2225.jpg photo-3840x2160.jpg \
    alpha-2048x1536.png sample.png
# Issue 6's example, and JPEG factors shrink-on-load leaves alone.
crop_case p38-1920-center "$T/photo-3840x2160.jpg" moved "$(rz 1920)" \
    "$(crop center 300 300)"
crop_case p38-2560-southeast "$T/photo-3840x2160.jpg" moved "$(rz 2560)" \
    "$(crop southeast 500 400 10 20)"
crop_case p38-box-northeast "$T/photo-3840x2160.jpg" moved \
    "$(fit box 1920 1920)" "$(crop northeast 640 360 5 5)"
crop_case alpha-4-northeast "$T/alpha-2048x1536.png" moved "$(rz 512)" \
    "$(crop northeast 200 150 3 4)"
crop_case sample-2-center "$T/sample.png" moved "$(rz 145)" \
    "$(crop center 50 60)"
# 2725 to 1362 and 2225 to 1112 share no factor.
crop_case p27-no-factor "$T/photo-2725x2225.jpg" kept "$(rz 1362)" \
    "$(crop center 300 300)"
finish
