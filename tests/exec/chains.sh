#!/usr/bin/env bash
# The chain property tests (tests/chains/chains.py) at fixed seeds, and
# every regression case a failure left behind (tests/chains/regressions/,
# and regressions-magick/ replayed on the MagickCore backend).
# Random valid requests over sources of every kind run at -O0 to -O3 and
# again; sizes, alpha, level agreement and error paths are checked.
# `make check-chains SEED=... N=...` runs as many as asked.
cd "$(dirname "$0")/../.." || exit 1
. tests/exec/lib.sh
require_tools python3
BUILD=$(dirname "$KILN")
# Under the sanitizers every process is several times slower, and what
# they look for (memory errors in ops) needs pixels more than levels: fewer
# requests, -O0 and -O2 only, and the regression cases at -O0.
case $BUILD in
*asan*) n=${KILN_CHAINS_N:-12} lv=(--levels 0,2 --no-repeat)
        rlv=(--levels 0 --no-repeat) ;;
*) n=${KILN_CHAINS_N:-90} lv=() rlv=() ;;
esac
out=$(mktemp)
python3 tests/chains/chains.py run --build "$BUILD" --seed 1101 \
    --requests "$n" "${lv[@]}" --max-failures 3 --shrink-budget 40 \
    >"$out" 2>&1
rc=$?
cat "$out"
if [ "$rc" != 0 ] && ! grep -q '^FAIL' "$out"; then
    fail chains "chains.py exited with status $rc"
fi
rm -f "$out"
# The same properties on the MagickCore backend (issue 14): fewer requests
# (MagickCore's Lanczos and blur are slower than libvips'), another seed.
mn=$(( n / 3 > 4 ? n / 3 : 4 ))
python3 tests/chains/chains.py run --build "$BUILD" --seed 1402 \
    --backend magick --requests "$mn" "${lv[@]}" --max-failures 3 \
    --shrink-budget 40 >"$out" 2>&1
rc=$?
sed 's#chains/#chains-magick/#' "$out"
if [ "$rc" != 0 ] && ! grep -q '^FAIL' "$out"; then
    fail chains-magick "chains.py --backend magick exited with status $rc"
fi
rm -f "$out"
python3 tests/chains/chains.py replay --build "$BUILD" "${rlv[@]}" \
    tests/chains/regressions/*.json || _fails=$((_fails + 1))
python3 tests/chains/chains.py replay --build "$BUILD" "${rlv[@]}" \
    --backend magick tests/chains/regressions-magick/*.json |
    sed 's#chains/#chains-magick/#'
[ "${PIPESTATUS[0]}" = 0 ] || _fails=$((_fails + 1))
finish
