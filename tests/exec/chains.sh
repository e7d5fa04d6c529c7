#!/usr/bin/env bash
# The chain property tests (tests/chains/chains.py) at fixed seeds, and
# every regression case a failure left behind (tests/chains/regressions/).
# Random valid requests over sources of every kind run at -O0 to -O3 and
# again; sizes, alpha, level agreement and error paths are checked. The
# ASan build runs fewer requests: it is several times slower.
# `make check-chains SEED=... N=...` runs as many as asked.
cd "$(dirname "$0")/../.." || exit 1
. tests/exec/lib.sh
require_tools python3
BUILD=$(dirname "$KILN")
case $BUILD in *asan*) n=${KILN_CHAINS_N:-25} ;; *) n=${KILN_CHAINS_N:-90} ;; esac
out=$(mktemp)
python3 tests/chains/chains.py run --build "$BUILD" --seed 1101 \
    --requests "$n" --max-failures 3 --shrink-budget 40 >"$out" 2>&1
rc=$?
cat "$out"
if [ "$rc" != 0 ] && ! grep -q '^FAIL' "$out"; then
    fail chains "chains.py exited with status $rc"
fi
rm -f "$out"
python3 tests/chains/chains.py replay --build "$BUILD" \
    tests/chains/regressions/*.json || _fails=$((_fails + 1))
finish
