#!/usr/bin/env bash
# make bench, queue section (issue 15): the job store alone, no pixel work
# (bench/queue.c): submit, claim, status write and complete of N
# processes, by 1, 2 and 3 "hosts" (a store handle each, as `kiln serve`
# holds, with 2 workers and 4 submitting threads, as the API's) on one
# PostgreSQL with fsync on,
# and by one host on SQLite. Targets: 3,000 processes/s, claim p99 under
# 20 ms. The PostgreSQL server runs on this machine and shares its cores
# with the hosts. Timing only: nothing passes or fails.
# QUEUE_N (processes per run, default 20000), QUEUE_RUNS (default 3: the
# median run is printed).
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
Q=$BUILD/bench/queue
N=${QUEUE_N:-20000}
RUNS=${QUEUE_RUNS:-3}
if [ ! -x "$Q" ]; then
    echo "skip bench/queue: $Q is not built (make bench builds it)"
    exit 0
fi
tmp=$(mktemp -d)
chmod 711 "$tmp"
trap 'bash tests/servers/postgres.sh stop "$tmp/pg" >/dev/null 2>&1; rm -rf "$tmp"' EXIT
if ! dsn=$(PG_FSYNC=on bash tests/servers/postgres.sh start "$tmp/pg" 2>"$tmp/err"); then
    echo "skip bench/queue (postgres): $(tail -1 "$tmp/err")"
    dsn=
fi
# median LINES: the line whose processes/s is the median
median() { sort -t$'\t' -k4 -n | awk '{ l[NR] = $0 } END { print l[int((NR + 1) / 2)] }'; }
echo "== bench/queue: $N processes per run, median of $RUNS"
echo "the queue alone: submit, claim, status write, complete; target >= 3000 processes/s, claim p99 < 20 ms"
for r in $(seq "$RUNS"); do
    rm -f "$tmp/q.db"*
    "$Q" sqlite "$tmp/q.db" 1 2 "$N"
done | median
[ -n "$dsn" ] || exit 0
for h in 1 2 3; do
    for r in $(seq "$RUNS"); do
        db=q_${h}_$r
        psql -q "$dsn" -c "CREATE DATABASE $db" >/dev/null
        "$Q" postgres "$dsn dbname=$db" "$h" 2 "$N"
        psql -q "$dsn" -c "DROP DATABASE $db" >/dev/null
    done | median
done
