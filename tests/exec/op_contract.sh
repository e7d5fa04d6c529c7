#!/usr/bin/env bash
# The op contract (plugin.h, kiln_op.execute) as the executor enforces it:
# an op whose output has the wrong bands, interpretation, format or size
# fails its job at the op's path, naming the op and its plugin, in kiln's
# words; a libvips failure inside an op is worded by the host with the
# library's text as detail; an op that claims KILN_OP_SEQUENTIAL but
# reads bottom up makes the stream decode the source again, and the job
# is still right. The ops are in tests/plugins/test-contract.c.
cd "$(dirname "$0")/../.." || exit 1
. tests/exec/lib.sh
exec_setup
PLUGDIR=$(cd "$(dirname "$KILN")/plugins" && pwd)
TPLUGDIR=${KILN_TEST_PLUGIN_DIR:-$(dirname "$KILN")/tests/plugins}
TPLUGDIR=$(cd "$TPLUGDIR" && pwd)
cat >"$WORK/config.json" <<JSON
{"plugins": {"dirs": ["$PLUGDIR", "$TPLUGDIR"],
             "enable": ["ops-vips", "storage-local", "test-contract"]},
 "services": [{"id": 1, "tokens": ["t"],
               "storage": {"plugin": "local", "root": "$ROOT"}}]}
JSON
vips black "$WORK/b.v" 64 48 --bands 4 &&
    vips linear "$WORK/b.v" "$ROOT/in/rgba.png" "1 1 1 1" "20 120 220 200" --uchar ||
    { fail "$T_NAME/setup" "cannot make the sample"; finish; }
# A tall source, so the stream's window (512 rows) cannot hold it whole.
vips gaussnoise "$WORK/n.v" 40 3000 --mean 128 --sigma 50 &&
    vips bandjoin "$WORK/n.v $WORK/n.v $WORK/n.v" "$WORK/t.v" &&
    vips cast "$WORK/t.v" "$ROOT/in/tall.png" uchar ||
    { fail "$T_NAME/setup" "cannot make the tall sample"; finish; }

# one OP SOURCE DEST: a request with one job of one op.
one() {
    cat <<JSON
{"service_id": 1, "source": "/in/$2", "jobs": [{"destination": "/out/$3",
  "transformations": [{"type": "brightness", "bright_level": 0},
                      {"type": "$1"}]}]}
JSON
}
# expect_error OP MESSAGE: the job fails with exactly MESSAGE.
expect_error() {
    local op=$1 want=$2 got
    one "$op" rgba.png "$op.png" >"$WORK/$op.json"
    got=$("$KILN" run -O0 --config "$WORK/config.json" --storage-root "$ROOT" \
        "$WORK/$op.json" 2>"$WORK/$op.err" | jq -r '.jobs[0].error')
    if [ "$got" = "$want" ]; then
        ok "$T_NAME/$op"
    else
        fail "$T_NAME/$op" "expected \"$want\", got \"$got\""
    fi
}
# An op no backend implements is refused when the request is compiled,
# at its path, before anything is read.
one test-contract-no-impl rgba.png no-impl.png >"$WORK/no-impl.json"
got=$("$KILN" run --config "$WORK/config.json" --storage-root "$ROOT" \
    "$WORK/no-impl.json" 2>/dev/null | jq -r '.errors[0] | "\(.path): \(.message)"')
want='jobs[0].transformations[1]: op "test-contract-no-impl" has no implementation for this service'"'"'s pixel backend "vips" (no loaded plugin implements it)'
if [ "$got" = "$want" ]; then ok "$T_NAME/no-implementation"; else
    fail "$T_NAME/no-implementation" "expected \"$want\", got \"$got\""; fi
got=$("$KILN" ops --config "$WORK/config.json" test-contract-wider 2>&1 | grep 'backends:')
[ "$got" = '  backends: vips (plugin test-contract)' ] && ok "$T_NAME/ops-lists-backends" ||
    fail "$T_NAME/ops-lists-backends" "got \"$got\""

expect_error test-contract-multiband \
    'jobs[0].transformations[1]: test-contract-multiband broke the op contract: it returned an image of 64x48, 4 bands, uchar, multiband where 64x48, 8-bit sRGB, 4 bands (RGB and alpha) was expected (a bug in plugin "test-contract")'
expect_error test-contract-one-band \
    'jobs[0].transformations[1]: test-contract-one-band broke the op contract: it returned an image of 64x48, 1 band, uchar, srgb where 64x48, 8-bit sRGB, 4 bands (RGB and alpha) was expected (a bug in plugin "test-contract")'
expect_error test-contract-float \
    'jobs[0].transformations[1]: test-contract-float broke the op contract: it returned an image of 64x48, 4 bands, float, srgb where 64x48, 8-bit sRGB, 4 bands (RGB and alpha) was expected (a bug in plugin "test-contract")'
expect_error test-contract-wider \
    'jobs[0].transformations[1]: test-contract-wider broke the op contract: it returned an image of 66x48, 4 bands, uchar, srgb where 64x48, 8-bit sRGB, 4 bands (RGB and alpha) was expected (a bug in plugin "test-contract")'
expect_error test-contract-libvips \
    'jobs[0].transformations[1]: test-contract-libvips failed on its input (64x48, 4 bands, uchar, srgb); libvips said: extract_band: bad extract band'

# The liar: the same bytes as the shipped flip (random access), one
# second decode reported, and the metric's counter is not for kiln run.
cat >"$WORK/liar.json" <<JSON
{"service_id": 1, "source": "/in/tall.png", "jobs": [
 {"destination": "/out/liar.png", "transformations": [{"type": "test-contract-liar"}]}]}
JSON
cat >"$WORK/flip.json" <<JSON
{"service_id": 1, "source": "/in/tall.png", "jobs": [
 {"destination": "/out/flip.png", "transformations": [{"type": "flip", "direction": "y"}]}]}
JSON
st=$(KILN_DEBUG=1 "$KILN" run --config "$WORK/config.json" --storage-root "$ROOT" \
    "$WORK/liar.json" 2>"$WORK/liar.err" | jq -r '.status')
"$KILN" run --config "$WORK/config.json" --storage-root "$ROOT" "$WORK/flip.json" >/dev/null 2>&1
check "$T_NAME/liar-finishes" "status $st: $(head -c 300 "$WORK/liar.err")" [ "$st" = FINISHED ]
check "$T_NAME/liar-decodes-again" "no stream restart reported: $(head -c 300 "$WORK/liar.err")" \
    grep -q 'stream restart' "$WORK/liar.err"
check "$T_NAME/liar-same-pixels-as-flip" "liar.png and flip.png differ" \
    cmp -s "$ROOT/out/liar.png" "$ROOT/out/flip.png"
finish
