#!/usr/bin/env bash
# Optimizer pass fuse-resamples (docs/optimizer.md): a resample that reads
# a whole-image resize or fit resamples once from the earlier image. For
# chains of reductions, on a generated image and on the shared photographs
# (JPEG, PNG, PNG with alpha), `kiln compile --passes` must show the
# fusion, and the -O2 output must have -O0's size and be within 40 dB
# PSNR of it (PNG outputs: the encoder adds nothing). Pairs outside the
# pass's rule (an enlargement, a mild second reduction, a fused scale of
# 1/4) must stay two resamples: -O2 writes -O0's pixels.
cd "$(dirname "$0")/../.." || exit 1
. tests/exec/lib.sh
exec_setup

PSNR_MIN=40

rz() { echo "{\"type\": \"resize\", \"width\": $1}"; }
box() {
    echo "{\"type\": \"fitmethod\", \"fit_type\": \"box\", \"width\": $1," \
        "\"height\": $1, \"color\": \"#000\", \"gravity\": \"center\"}"
}

# fuse_case NAME FILE EXPECT TRANSFORMATION...: one job reading FILE
# through the transformations. EXPECT is "fused" (the pass applies, the
# output is within PSNR_MIN of -O0) or "kept" (the pass refuses, the
# output has -O0's pixels).
fuse_case() {
    local expect=applied
    [ "$3" = fused ] || expect=refused
    pass_case fuse-resamples ': fused [0-9]* resample' \
        'no change; not applied: .*outside the rule' "$1" "$2" "$expect" \
        "${@:4}" || return
    if [ "$expect" = applied ]; then
        if psnr_ge "$WORK/$1-O0.png" "$WORK/$1-O2.png" "$PSNR_MIN"; then
            ok "$T_NAME/$1/psnr ($PSNR_VALUE dB)"
        else
            fail "$T_NAME/$1/psnr" "$PSNR_VALUE dB from -O0, below $PSNR_MIN"
        fi
    else
        pass_same_pixels "$1"
    fi
}

# Always: a generated 1600x1200 image of white noise.
noise_png "$WORK/gen.png" 1600 1200
fuse_case gen-1280-640 "$WORK/gen.png" fused "$(rz 1280)" "$(rz 640)"
fuse_case gen-chain "$WORK/gen.png" fused "$(rz 1200)" "$(box 700)" \
    "$(rz 300)"
# Outside the rule: down then up, up then down, a mild second reduction,
# a fused scale of exactly 1/4.
fuse_case gen-down-up "$WORK/gen.png" kept "$(rz 200)" "$(rz 800)"
fuse_case gen-up-down "$WORK/gen.png" kept "$(rz 2400)" "$(rz 800)"
fuse_case gen-mild "$WORK/gen.png" kept "$(rz 800)" "$(rz 720)"
fuse_case gen-quarter "$WORK/gen.png" kept "$(rz 800)" "$(rz 400)"
# An output under 32 px a side stays two resamples (the long run of issue
# 11: 26.7 to 37.7 dB fused, one pixel being much of the image).
fuse_case gen-tiny "$WORK/gen.png" kept "$(rz 200)" "$(rz 24)"
# A fused reduction past libvips' largest one-step Lanczos3 (x333; the long
# run: "reduce factor too large"): 40000x1000 to 4000x500 to 96x100 is x417
# across, which now starts with a box shrink.
rwh() { echo "{\"type\": \"resize\", \"width\": $1, \"height\": $2}"; }
vips gaussnoise "$WORK/wide.v" 40000 1000 && vips cast "$WORK/wide.v" "$WORK/wide.png" uchar ||
    fail "$T_NAME/setup-wide" "cannot make the 40000x1000 image"
fuse_case gen-x417 "$WORK/wide.png" fused "$(rwh 4000 500)" "$(rwh 96 100)"

T=$TESTDATA
if [ ! -d "$T" ]; then
    skip "$T_NAME/photos" "$T is absent (set SHARED to the shared folder)"
    finish
fi
require_testdata photo-2725x2225.jpg photo-3840x2160.jpg \
    alpha-2048x1536.png sample.png
# The lowest figures of docs/optimizer.md's table, and a chain of four.
fuse_case p27-681-341 "$T/photo-2725x2225.jpg" fused "$(rz 681)" "$(rz 341)"
fuse_case p27-681-170 "$T/photo-2725x2225.jpg" fused "$(rz 681)" "$(rz 170)"
fuse_case p27-1008-545 "$T/photo-2725x2225.jpg" fused "$(rz 1008)" \
    "$(rz 545)"
fuse_case p27-chain "$T/photo-2725x2225.jpg" fused "$(rz 1500)" \
    "$(box 800)" "$(rz 500)" "$(rz 200)"
fuse_case p38-960-240 "$T/photo-3840x2160.jpg" fused "$(rz 960)" "$(rz 240)"
fuse_case p38-2304-1152 "$T/photo-3840x2160.jpg" fused "$(rz 2304)" \
    "$(rz 1152)"
fuse_case alpha-614-205 "$T/alpha-2048x1536.png" fused "$(rz 614)" \
    "$(rz 205)"
fuse_case alpha-1843-1229 "$T/alpha-2048x1536.png" fused "$(rz 1843)" \
    "$(rz 1229)"
fuse_case sample-72-36 "$T/sample.png" fused "$(rz 72)" "$(rz 36)"
fuse_case sample-174-87 "$T/sample.png" fused "$(rz 174)" "$(rz 87)"
fuse_case alpha-down-up "$T/alpha-2048x1536.png" kept "$(rz 512)" \
    "$(rz 1024)"
finish
