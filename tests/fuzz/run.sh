#!/usr/bin/env bash
# `make fuzz`: runs each libFuzzer harness (FUZZ_BUILD/fuzz_NAME) for
# FUZZ_SECONDS (FUZZ_SECONDS_NAME overrides one) over a scratch copy of its
# committed corpus, one process at a time, then merges the inputs that
# reached new coverage back into tests/fuzz/corpus/NAME (libFuzzer's
# -set_cover_merge=1 over edges, capped by cover.py).
# A crash does not end the run: it is kept in FUZZ_BUILD/run/NAME/
# artifacts/ and fuzzing restarts for the time left. Prints per harness the
# executions, exec/s, coverage, corpus size before and after, and every
# artifact with the sanitizer's first line.
#
# usage: tests/fuzz/run.sh FUZZ_BUILD NAME...
set -u
cd "$(dirname "$0")/../.."
FB=${1:?usage: run.sh FUZZ_BUILD NAME...}
shift
SECS=${FUZZ_SECONDS:-60}
export KILN_PLUGIN_DIR=$PWD/$FB/plugins
export ASAN_OPTIONS=${FUZZ_ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
# The guards around known defects (README.md, "Guards") stay on while
# fuzzing; their leak suppressions join the suite's.
mkdir -p "$FB"
cat tests/lsan.supp tests/fuzz/guards-lsan.supp >"$FB/lsan.supp"
export LSAN_OPTIONS=suppressions=$PWD/$FB/lsan.supp:print_suppressions=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:suppressions=$PWD/tests/fuzz/guards-ubsan.supp
export KILN_FUZZ_GUARDS=1
export KILN_NO_DLCLOSE=1

# Per-harness libFuzzer options: the longest input and the time one may
# take before it counts as a hang.
opts_for() {
    case $1 in
    probe) echo "-max_len=16384 -timeout=10" ;;
    lexer) echo "-max_len=1024 -timeout=5" ;;
    api) echo "-max_len=8192 -timeout=10" ;;
    *) echo "-max_len=8192 -timeout=10" ;;
    esac
}

# The most inputs a committed corpus keeps (FUZZ_CORPUS_MAX_NAME
# overrides): a few hundred files in all, the probe's named images aside.
cap_for() {
    case $1 in
    compile) echo 120 ;;
    api | lexer) echo 80 ;;
    probe) echo 60 ;;
    *) echo 40 ;;
    esac
}

# noncrash DIR: the corpus files that are not defect reproducers
noncrash() { find "$1" -maxdepth 1 -type f ! -name 'crash-*' ! -name '.*' 2>/dev/null; }

summary=()
for name in "$@"; do
    bin=$FB/fuzz_$name
    corpus=tests/fuzz/corpus/$name
    work=$FB/run/$name
    if [ ! -x "$bin" ]; then
        echo "fuzz $name: $bin is not built (make fuzz-build)"
        exit 1
    fi
    mkdir -p "$corpus"
    rm -rf "$work"
    mkdir -p "$work/corpus" "$work/artifacts"
    noncrash "$corpus" | xargs -r cp -t "$work/corpus"
    before=$(noncrash "$corpus" | wc -l)
    var=FUZZ_SECONDS_$name
    total=${!var:-$SECS}
    # Dictionaries: NAME.dict; the API's bodies are requests, so it gets
    # the compiler's words too.
    dict=()
    dicts=$(ls "tests/fuzz/$name.dict" 2>/dev/null)
    [ "$name" = api ] && dicts="$dicts tests/fuzz/compile.dict"
    if [ -n "$dicts" ]; then
        cat $dicts >"$work/dict"
        dict=("-dict=$work/dict")
    fi
    echo "== fuzz $name: ${total}s over $before inputs ($work/log.*)"
    left=$total execs=0 runs=0 cov="" ft="" t0=$SECONDS
    while [ "$left" -gt 0 ] && [ "$runs" -lt 50 ]; do
        runs=$((runs + 1))
        log=$work/log.$runs
        start=$SECONDS
        # shellcheck disable=SC2046
        "$bin" $(opts_for "$name") "${dict[@]}" -max_total_time="$left" \
            -rss_limit_mb=3072 -print_final_stats=1 -print_pcs=0 \
            -artifact_prefix="$work/artifacts/" "$work/corpus" >"$log" 2>&1
        rc=$?
        n=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
        if [ -z "$n" ]; then  # died: the last status line has the count
            n=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#')
        fi
        execs=$((execs + ${n:-0}))
        line=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -1)
        if [ -n "$line" ]; then
            cov=$(sed -n 's/.*cov: \([0-9]*\).*/\1/p' <<<"$line")
            ft=$(sed -n 's/.*ft: \([0-9]*\).*/\1/p' <<<"$line")
        fi
        left=$((left - (SECONDS - start)))
        if [ "$rc" = 0 ]; then
            break
        fi
        why=$(grep -m1 -E 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|kiln-fuzz:|SUMMARY' "$log")
        echo "   run $runs ended with status $rc: ${why:-see $log}"
    done
    secs=$((SECONDS - t0))
    # Merge: the committed corpus and what this run found, measured by
    # libFuzzer (-set_cover_merge, edges only), then cut down by
    # cover.py to at most FUZZ_CORPUS_MAX inputs covering the most.
    mkdir -p "$work/committed" "$work/empty"
    noncrash "$corpus" | xargs -r cp -t "$work/committed"
    "$bin" $(opts_for "$name") -set_cover_merge=1 -use_counters=0 \
        -rss_limit_mb=3072 -merge_control_file="$work/merge.ctl" \
        "$work/empty" "$work/committed" "$work/corpus" >"$work/merge.log" 2>&1 ||
        echo "   merge failed: $(tail -n 1 "$work/merge.log")"
    keep=()
    [ "$name" = probe ] && keep=(--keep-named)
    var=FUZZ_CORPUS_MAX_$name
    merged=$(python3 tests/fuzz/cover.py "$work/merge.ctl" "$corpus" \
        "${!var:-$(cap_for "$name")}" "${keep[@]}") ||
        echo "   cover.py failed"
    after=$(noncrash "$corpus" | wc -l)
    rate=$((secs > 0 ? execs / secs : execs))
    s="fuzz $name: $execs executions in ${secs}s ($rate exec/s), cov $cov ft $ft, corpus $before -> $after ($merged), $runs run(s)"
    echo "$s"
    summary+=("$s")
    for a in "$work"/artifacts/*; do
        [ -f "$a" ] || continue
        echo "   artifact $a ($(wc -c <"$a") bytes)"
        summary+=("   artifact $a")
    done
done
echo
echo "== fuzz summary"
printf '%s\n' "${summary[@]}"
