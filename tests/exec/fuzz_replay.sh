#!/usr/bin/env bash
# Replays the committed fuzz corpora (tests/fuzz/corpus/NAME) through the
# harnesses of this build: $BUILD/tests/fuzz/replay-NAME, each harness
# linked by gcc with tests/fuzz/replay.c (no libFuzzer), so under ASan and
# UBSan on build-asan. One ok line per harness with the inputs replayed,
# run with the guards fuzzing runs with (tests/fuzz/README.md, "Guards").
# Each reproducer of a defect fuzzing found (crash-*, fixed since:
# tests/fuzz/README.md) runs alone and without the guards: FAIL, named, if
# the defect is back (also checked with the clang libFuzzer build when
# build-fuzz/ has one).
set -u
cd "$(dirname "$0")/../.."
. tests/exec/lib.sh
BUILD=${BUILD:-$(dirname "${KILN#$PWD/}")}
FUZZ_BUILD=${FUZZ_BUILD:-build-fuzz}
export KILN_PLUGIN_DIR=${KILN_PLUGIN_DIR:-$BUILD/plugins}
export KILN_NO_DLCLOSE=1
base_lsan=${LSAN_OPTIONS:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The guards' leak suppressions, added to the suite's for the corpus runs.
sup=$PWD/tests/lsan.supp
case $base_lsan in *suppressions=*) sup=${base_lsan#*suppressions=}; sup=${sup%%:*} ;; esac
cat "$sup" tests/fuzz/guards-lsan.supp >"$tmp/lsan.supp" 2>/dev/null

# first_report LOG STATUS: the first line that says what went wrong
first_report() {
    grep -m1 -E 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|kiln-fuzz:|SUMMARY' "$1" && return
    if [ "${2:-0}" -gt 128 ]; then
        echo "killed by signal $(($2 - 128)) ($(kill -l $(($2 - 128)) 2>/dev/null))"
    else
        echo "no sanitizer report"
    fi
}

for name in compile lexer config api probe; do
    bin=$BUILD/tests/fuzz/replay-$name
    corpus=tests/fuzz/corpus/$name
    if [ ! -x "$bin" ]; then
        fail "fuzz_replay/$name" "$bin is not built (make test-build)"
        continue
    fi
    mapfile -t inputs < <(find "$corpus" -maxdepth 1 -type f ! -name 'crash-*' ! -name '.*' | sort)
    if [ ${#inputs[@]} -eq 0 ]; then
        fail "fuzz_replay/$name" "no corpus in $corpus"
        continue
    fi
    log=$tmp/$name.log
    KILN_FUZZ_GUARDS=1 LSAN_OPTIONS=suppressions=$tmp/lsan.supp:print_suppressions=0 \
        timeout 300 "$bin" -v "${inputs[@]}" >"$tmp/$name.out" 2>"$log"
    rc=$?
    n=$(sed -n 's/^replayed \([0-9]*\) inputs$/\1/p' "$tmp/$name.out")
    if [ "$rc" = 0 ] && [ -n "$n" ] && ! grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$log"; then
        ok "fuzz_replay/$name:$n-inputs"
    else
        at=$(grep '^replaying ' "$log" | tail -n 1)
        fail "fuzz_replay/$name" "status $rc at ${at#replaying }: $(first_report "$log" "$rc")"
    fi
    for f in "$corpus"/crash-*; do
        [ -f "$f" ] || continue
        one=$tmp/one.log
        # In a subshell whose stderr is dropped: should the defect be back,
        # bash would print its own line about the signal.
        (timeout 120 "$bin" "$f" >/dev/null 2>"$one"; exit $?) 2>/dev/null
        rc=$?
        if [ "$rc" != 0 ] || grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$one"; then
            fail "fuzz_replay/$name/${f##*/}" "the defect reproduces (status $rc): $(first_report "$one" "$rc")"
            continue
        fi
        fz=$FUZZ_BUILD/fuzz_$name
        if [ -x "$fz" ]; then
            (KILN_PLUGIN_DIR=$FUZZ_BUILD/plugins UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
                timeout 120 "$fz" -artifact_prefix="$tmp/" "$f" >"$one" 2>&1; exit $?) 2>/dev/null
            rc=$?
            if [ "$rc" != 0 ]; then
                fail "fuzz_replay/$name/${f##*/}" "the defect reproduces in $fz (status $rc): $(first_report "$one" "$rc")"
                continue
            fi
        fi
        ok "fuzz_replay/$name/${f##*/}"
    done
done
finish
