#!/usr/bin/env bash
# Runs the whole suite against one build directory (build or build-asan):
# CUnit unit tests, golden compile tests, executed tests (tests/exec/*.sh)
# and the examples. Prints "ok"/"FAIL"/"skip" lines and a closing
# "NAME: N passed, M failed, K skipped" line; exits 1 when anything failed.
set -u
BUILD=${1:-build}
cd "$(dirname "$0")/.."
export KILN="$BUILD/kiln"
export KILN_PLUGIN_DIR="$BUILD/plugins"
export KILN_TEST_PLUGIN_DIR="$BUILD/tests/plugins"
export SHARED=${SHARED:-../shared}
export PKG_CONFIG_PATH="$PWD/$BUILD/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
# Sanitizer builds: stop at the first report, and fail the test that made
# it (the scripts check exit codes and stderr).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:exitcode=99}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/lsan.supp:print_suppressions=0}
if [ ! -d "$SHARED/testdata" ]; then
    echo "skip shared: $SHARED/testdata is absent; tests that need photographs are skipped"
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
run() { # NAME COMMAND...: runs a part, keeps its lines for counting
    local name=$1
    shift
    echo "== $name ($BUILD)"
    "$@" 2>&1 | tee -a "$log"
    local rc=${PIPESTATUS[0]}
    if [ "$rc" != 0 ] && ! grep -q '^FAIL' <(tail -n 200 "$log"); then
        echo "FAIL $name: exited with status $rc" | tee -a "$log"
    fi
}

# A PostgreSQL server for the job store's second driver (the unit suite
# "jobstore-postgres"; tests/servers/postgres.sh), stopped at exit.
pg_dir=$(mktemp -d)
if KILN_TEST_PG_DSN=$(bash tests/servers/postgres.sh start "$pg_dir" 2>"$pg_dir.err"); then
    export KILN_TEST_PG_DSN KILN_TEST_PG_DIR=$pg_dir
else
    echo "skip postgres: cannot start a PostgreSQL server ($(tail -1 "$pg_dir.err")): the job store's PostgreSQL suite is not run" | tee -a "$log"
    unset KILN_TEST_PG_DSN
fi
rm -f "$pg_dir.err"
pg_stop() { bash tests/servers/postgres.sh stop "$pg_dir"; rm -rf "$pg_dir"; }
trap 'rm -f "$log"; pg_stop' EXIT

unit_out=$(mktemp)
echo "== unit ($BUILD)"
"$BUILD/tests/unit" >"$unit_out" 2>&1
unit_rc=$?
grep -E "^Suite|^  *[0-9]+\. |Run Summary|tests |asserts " "$unit_out"
up=$(sed -n 's/^unit: \([0-9]*\) passed, \([0-9]*\) failed$/\1/p' "$unit_out")
uf=$(sed -n 's/^unit: \([0-9]*\) passed, \([0-9]*\) failed$/\2/p' "$unit_out")
if [ -z "$up" ]; then
    cat "$unit_out"
    up=0 uf=1
elif [ "$unit_rc" != 0 ] && [ "$uf" = 0 ]; then
    tail -20 "$unit_out"
    uf=1
fi
rm -f "$unit_out"

run compile bash tests/compile/run.sh

# The executed tests mostly wait (servers starting, retry schedules,
# emulators), so several run at once: KILN_TEST_JOBS (default 3). Each
# one's output is printed whole, in order, once all have ended. The npm
# emulators they share are installed once, first.
jobs_max=${KILN_TEST_JOBS:-3}
outdir=$(mktemp -d)
trap 'rm -f "$log"; rm -rf "$outdir"; pg_stop' EXIT
bash tests/servers/install.sh >/dev/null 2>&1 || true
bash tests/openapi/install.sh >/dev/null 2>&1 || true # the API tests' validator (lib_serve.sh)
names=()
for t in tests/exec/*.sh; do
    case "$t" in */lib*.sh) continue ;; esac # lib.sh, lib_serve.sh: sourced helpers
    name=$(basename "$t" .sh)
    names+=("$name")
    (
        bash "$t" >"$outdir/$name.out" 2>&1
        echo $? >"$outdir/$name.rc"
    ) &
    while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do
        wait -n
    done
done
wait
for name in "${names[@]}"; do
    echo "== exec/$name ($BUILD)"
    tee -a "$log" <"$outdir/$name.out"
    rc=$(cat "$outdir/$name.rc" 2>/dev/null || echo 1)
    if [ "$rc" != 0 ] && ! grep -q '^FAIL' "$outdir/$name.out"; then
        echo "FAIL exec/$name: exited with status $rc" | tee -a "$log"
    fi
done
run examples bash tests/examples.sh

p=$(grep -c '^ok ' "$log")
f=$(grep -c '^FAIL' "$log")
s=$(grep -c '^skip ' "$log")
p=$((p + up))
f=$((f + uf))
echo
grep '^FAIL' "$log" | sed 's/^/  /'
echo "$BUILD: $p passed, $f failed, $s skipped"
if [ -n "${KILN_SUMMARY:-}" ]; then
    echo "$p $f $s" >>"$KILN_SUMMARY"
    # The failures again, for the closing summary: a CI log that keeps only
    # its tail still names what failed.
    grep '^FAIL' "$log" | sed "s/^/  $BUILD: /" >>"$KILN_SUMMARY.failed"
    if [ "$uf" != 0 ]; then
        echo "  $BUILD: FAIL unit: $uf CUnit test(s) failed" >>"$KILN_SUMMARY.failed"
    fi
fi
[ "$f" = 0 ]
