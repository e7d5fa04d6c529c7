#!/usr/bin/env bash
# Rate limits across hosts (docs/deploy.md): two `kiln serve` hosts on one
# PostgreSQL job store, calls spread over both.
#  - rate_limit.scope "cluster" (the default): a token gets `burst` calls
#    in all, whichever host answers, and a client address `failed_auth_burst`
#    failed authentications in all; the 429s carry Retry-After.
#  - scope "host": each host counts its own, so the pair allows twice as
#    many (the shape of the config is what decides, not chance).
#  - PostgreSQL stopped: the limit still holds, counted by each host, and
#    the hosts keep answering; the log says the store cannot count.
# The refill is slow (0.001 per second), so a count is exact whatever the
# machine's speed.
set -u
cd "$(dirname "$0")/../.." || exit 1
KILN=${KILN:-build/kiln}
case $KILN in /*) ;; *) KILN=$PWD/$KILN ;; esac
. tests/exec/lib_serve.sh
T=rate_cluster
tmp=$(mktemp -d)
chmod 711 "$tmp" # the postgres user runs the server in $tmp/pg
pg=$tmp/pg
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do
        kill -9 "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    serve_relay_stop
    bash tests/servers/postgres.sh stop "$pg" >/dev/null 2>&1
    rm -rf "$tmp"
}
trap cleanup EXIT
status=0
ok() { echo "ok $T/$1"; }
fail() {
    echo "FAIL $T/$1: $2"
    status=1
}
for t in curl psql; do
    if ! command -v "$t" >/dev/null; then
        echo "skip $T: $t is not installed (make deps)"
        exit 0
    fi
done
if ! dsn=$(bash tests/servers/postgres.sh start "$pg" 2>"$tmp/pg.err"); then
    echo "skip $T: cannot start a PostgreSQL server: $(tail -1 "$tmp/pg.err")"
    exit 0
fi
BURST=6
FAILED_BURST=4
# hosts SCOPE DB: starts two hosts on database DB; sets URLS and PIDS.
hosts() {
    psql -q "$dsn" -c "CREATE DATABASE $2" >/dev/null
    URLS=()
    for h in 0 1; do
        local port
        port=$(serve_free_port)
        cat >"$tmp/cfg$h.json" <<JSON
{"listen": "127.0.0.1:$port", "workers": 1,
 "plugins": {"dirs": ["$(serve_plugin_dir)"], "enable": ["ops-vips", "storage-local", "api-http"]},
 "jobstore": {"driver": "postgres", "dsn": "$dsn dbname=$2"},
 "rate_limit": {"per_second": 0.001, "burst": $BURST,
                "failed_auth_per_second": 0.001, "failed_auth_burst": $FAILED_BURST,
                "scope": "$1"},
 "services": [{"id": 1, "tokens": ["tok-a", "tok-b"],
               "storage": {"plugin": "local", "root": "$tmp"}}]}
JSON
        serve_relay "http://127.0.0.1:$port" # answers checked (lib_serve.sh)
        "$KILN" serve --config "$tmp/cfg$h.json" --listen "$SERVE_LISTEN" >>"$tmp/log$h" 2>&1 &
        PIDS+=($!)
        URLS+=("http://127.0.0.1:$port")
        local up=no
        for _ in $(seq 100); do
            curl -s -o /dev/null "http://127.0.0.1:$port/health" && { up=yes; break; }
            sleep 0.1
        done
        [ $up = yes ] || { fail "$1/start" "host $h did not start: $(tail -3 "$tmp/log$h")"; exit 1; }
    done
}
stop_hosts() {
    for p in "${PIDS[@]}"; do
        kill "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    PIDS=()
    serve_relay_stop
}
# calls N TOKEN: N GET /status calls alternating between the hosts; prints
# the status codes, one per line.
calls() {
    for i in $(seq "$1"); do
        curl -s -o /dev/null -w '%{http_code}\n' -H "Authorization: Bearer $2" \
            "${URLS[i % 2]}/status/AAAAAAAAAAAAAAAAAAAAA"
    done
}
count() { grep -c "^$1\$" || true; }

# --- cluster scope: one budget for the pair
hosts cluster rate1
codes=$(calls $((BURST + 6)) tok-a)
n404=$(count 404 <<<"$codes")
n429=$(count 429 <<<"$codes")
if [ "$n404" = "$BURST" ] && [ "$n429" = 6 ]; then
    ok cluster/token
else
    fail cluster/token "expected $BURST answers then 6 x 429 over two hosts, got $(echo $codes)"
fi
# Another token has a budget of its own.
codes=$(calls 2 tok-b)
[ "$(count 404 <<<"$codes")" = 2 ] && ok cluster/other-token ||
    fail cluster/other-token "tok-b was limited: $(echo $codes)"
ra=$(curl -s -D - -o /dev/null -H "Authorization: Bearer tok-a" "${URLS[0]}/status/AAAAAAAAAAAAAAAAAAAAA" |
    tr -d '\r' | awk -F': ' 'tolower($1) == "retry-after" { print $2 }')
if [ -n "$ra" ] && [ "$ra" -ge 1 ] && [ "$ra" -le 1000 ]; then
    ok cluster/retry-after
else
    fail cluster/retry-after "Retry-After was '$ra' (expected 1..1000)"
fi
codes=$(calls $((FAILED_BURST + 4)) wrong-token)
n401=$(count 401 <<<"$codes")
n429=$(count 429 <<<"$codes")
if [ "$n401" = "$FAILED_BURST" ] && [ "$n429" = 4 ]; then
    ok cluster/failed-auth
else
    fail cluster/failed-auth "expected $FAILED_BURST x 401 then 4 x 429 over two hosts, got $(echo $codes)"
fi
if grep -q "tok-a" <(psql -qAt "$dsn dbname=rate1" -c "SELECT key FROM kiln_rate"); then
    fail cluster/no-token-stored "a token is written in kiln_rate"
else
    ok cluster/no-token-stored
fi

# --- PostgreSQL down: each host counts its own, and keeps answering
bash tests/servers/postgres.sh stop "$pg" >/dev/null 2>&1
codes=$(calls $((2 * BURST + 4)) tok-b)
n404=$(count 404 <<<"$codes")
n503=$(count 503 <<<"$codes")
n429=$(count 429 <<<"$codes")
# With the store down a status read answers 503 instead of 404: what
# matters is how many were let through (not 429) before the limit.
through=$((n404 + n503))
if [ "$through" = $((2 * BURST)) ] && [ "$n429" = 4 ]; then
    ok store-down/per-host
else
    fail store-down/per-host "expected $((2 * BURST)) through, 4 x 429, got $(echo $codes)"
fi
if grep -q "rate limits: the job store cannot count them" "$tmp/log0" "$tmp/log1"; then
    ok store-down/logged
else
    fail store-down/logged "no log line says the store cannot count"
fi
stop_hosts
bash tests/servers/postgres.sh restart "$pg" >/dev/null 2>"$tmp/pg.err" ||
    { fail restart "PostgreSQL did not start again: $(tail -1 "$tmp/pg.err")"; exit 1; }

# --- host scope: each host its own budget
hosts host rate2
codes=$(calls $((2 * BURST + 4)) tok-a)
n404=$(count 404 <<<"$codes")
n429=$(count 429 <<<"$codes")
if [ "$n404" = $((2 * BURST)) ] && [ "$n429" = 4 ]; then
    ok host/token
else
    fail host/token "expected $((2 * BURST)) answers then 4 x 429, got $(echo $codes)"
fi
n=$(psql -qAt "$dsn dbname=rate2" -c "SELECT count(*) FROM kiln_rate")
[ "$n" = 0 ] && ok host/nothing-stored || fail host/nothing-stored "kiln_rate has $n rows"
stop_hosts
exit $status
