#!/usr/bin/env bash
# `kiln serve` on the PostgreSQL job store (server/jobstore_pg.c), against a
# real PostgreSQL server the test starts (tests/servers/postgres.sh):
#  - processes submitted through the API finish, with their outputs, and
#    an Idempotency-Key answers the same process again;
#  - PostgreSQL stopped: /health answers 503 naming the store in our
#    words (never the DSN's password), a submission gets 503, the server
#    keeps serving; PostgreSQL back: both answer again, every process
#    accepted before is still there, new ones finish;
#  - retention: a process that ended a year ago is pruned when the next
#    host starts (jobstore.retention_days, 30 by default), others stay;
#  - two hosts on one database, submissions spread over both: every
#    process runs exactly once (attempt 1, one output each), GET
#    /status/ID answers the same from either host, and each process's
#    postback reaches the receiver once;
#  - one of them killed with SIGKILL while both run slow processes: the
#    other takes its work back when the leases run out, every process
#    finishes and its output is whole.
set -u
cd "$(dirname "$0")/../.." || exit 1
KILN=${KILN:-build/kiln}
case $KILN in /*) ;; *) KILN=$PWD/$KILN ;; esac
. tests/exec/lib_serve.sh
T=jobstore_postgres
tmp=$(mktemp -d)
chmod 711 "$tmp" # the postgres user runs the server in $tmp/pg
pg=$tmp/pg
PID2=
cleanup() {
    serve_stop KILL
    kill "$RPID" 2>/dev/null
    if [ -n "$PID2" ]; then
        kill -9 "$PID2" 2>/dev/null
        wait "$PID2" 2>/dev/null
    fi
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
if ! dsn=$(bash tests/servers/postgres.sh start "$pg" 2>"$tmp/pg.err"); then
    echo "skip $T: cannot start a PostgreSQL server: $(tail -1 "$tmp/pg.err")"
    exit 0
fi
mkdir -p "$tmp/storage/in"
vips black "$tmp/b.v" 32 24 --bands 3 && vips copy "$tmp/b.v" "$tmp/storage/in/a.png" || {
    fail setup "cannot make the source"
    exit 1
}
# The DSN as an operator writes it, with a password the server ignores
# (trust authentication): it must never show.
secret="pw-$RANDOM$RANDOM"
config() { # PORT FILE
    cat >"$2" <<JSON
{"listen": "127.0.0.1:$1", "workers": 2,
 "plugins": {"dirs": ["$(serve_plugin_dir)"], "enable": ["ops-vips", "storage-local", "api-http"]},
 "jobstore": {"driver": "postgres", "dsn": "$dsn password=$secret"},
 "rate_limit": {"per_second": 10000, "burst": 10000},
 "network": {"allow": ["127.0.0.1/32"]},
 "services": [{"id": 1, "tokens": ["tok"], "secret": "pb-secret", "storage": {"plugin": "local", "root": "$tmp/storage"}}]}
JSON
}
# A postback receiver (tests/exec/postback_receiver.py): /ok answers 200.
python3 tests/exec/postback_receiver.py "$tmp/rport" "$tmp/received" &
RPID=$!
for _ in $(seq 100); do [ -s "$tmp/rport" ] && break; sleep 0.05; done
cb="http://127.0.0.1:$(cat "$tmp/rport")/ok"
port=$(serve_free_port)
config "$port" "$tmp/cfg.json"
url="http://127.0.0.1:$port"
serve_start "$tmp/cfg.json" "$tmp/log" "$url" || {
    fail start "the server did not start: $(tail -3 "$tmp/log")"
    exit 1
}
# call URL METHOD PATH [BODY] [HEADER]: prints "CODE BODY".
call() {
    local out code
    out=$(curl -s -w '\n%{http_code}' -X "$2" -H 'Authorization: Bearer tok' \
        ${5:+-H "$5"} ${4:+--data-binary "$4"} "$1$3")
    code=${out##*$'\n'}
    echo "$code ${out%$'\n'*}"
}
# req NAME [CALLBACK]: a one-job request body
req() { echo "{\"service_id\": 1, \"source\": \"/in/a.png\"${2:+, \"callback\": \"$2\"}, \"jobs\": [{\"destination\": \"/out/$1.png\", \"transformations\": [{\"type\": \"resize\", \"width\": 16}]}]}"; }
# wait_done URL ID: waits up to 30 s for FINISHED or FAILED; prints the body.
wait_done() {
    local got
    for _ in $(seq 300); do
        got=$(call "$1" GET "/status/$2")
        case $got in *'"FINISHED"'* | *'"FAILED"'*) break ;; esac
        sleep 0.1
    done
    echo "${got#* }"
}
id_of() { jq -r '.process_id // empty' <<<"${1#* }" 2>/dev/null; }

got=$(call "$url" GET /health)
[ "${got%% *}" = 200 ] && ok healthy || fail healthy "$got"

# --- processes finish; idempotency
ids=()
for i in $(seq 10); do
    got=$(call "$url" POST /request "$(req "a$i")")
    id=$(id_of "$got")
    [ -n "$id" ] && ids+=("$id") || fail "submit-a$i" "$got"
done
n_ok=0
for id in "${ids[@]}"; do
    body=$(wait_done "$url" "$id")
    case $body in *'"FINISHED"'*) n_ok=$((n_ok + 1)) ;; *) fail "finish-$id" "$body" ;; esac
done
[ "$n_ok" = 10 ] && [ "$(ls "$tmp/storage/out" | wc -l)" = 10 ] &&
    ok "ten-processes-finished" || fail ten-processes-finished "$n_ok finished, outputs: $(ls "$tmp/storage/out" | tr '\n' ' ')"
a=$(call "$url" POST /request "$(req idem)" "Idempotency-Key: k-1")
b=$(call "$url" POST /request "$(req idem)" "Idempotency-Key: k-1")
[ -n "$(id_of "$a")" ] && [ "$(id_of "$a")" = "$(id_of "$b")" ] &&
    ok idempotency-key-same-process || fail idempotency-key-same-process "$a / $b"

# --- PostgreSQL stops and comes back
bash tests/servers/postgres.sh stop "$pg" >/dev/null
got=$(call "$url" GET /health)
case $got in
503" "*'job store'*) ok store-down-503 ;;
*) fail store-down-503 "$got" ;;
esac
echo "# /health while PostgreSQL is down: $got"
case $got in *"$secret"*) fail no-password-shown "$got" ;; *) ok no-password-shown ;; esac
got=$(call "$url" POST /request "$(req down)")
[ "${got%% *}" = 503 ] && ok store-down-submit-503 || fail store-down-submit-503 "$got"
kill -0 "$SERVE_PID" 2>/dev/null && ok still-serving || fail still-serving "the server exited"
grep -q "$secret" "$tmp/log" && fail no-password-in-log "$(grep -m1 "$secret" "$tmp/log")" ||
    ok no-password-in-log
bash tests/servers/postgres.sh restart "$pg" >/dev/null || fail restart "PostgreSQL did not restart"
for _ in $(seq 50); do
    got=$(call "$url" GET /health)
    [ "${got%% *}" = 200 ] && break
    sleep 0.2
done
[ "${got%% *}" = 200 ] && ok store-back-200 || fail store-back-200 "$got"
body=$(wait_done "$url" "${ids[0]}")
case $body in *'"FINISHED"'*) ok accepted-before-still-there ;; *) fail accepted-before-still-there "$body" ;; esac
got=$(call "$url" POST /request "$(req after)")
id=$(id_of "$got")
body=$(wait_done "$url" "$id")
case $body in *'"FINISHED"'*) ok finishes-after-restart ;; *) fail finishes-after-restart "$got / $body" ;; esac

# --- retention: a process that ended long ago (its updated_at set back
# a year) is pruned by the next host's keeper at start; the rest stay.
old_id=${ids[1]}
psql -q "$dsn" -c "UPDATE kiln_process SET updated_at = updated_at - 31536000 WHERE id = '$old_id'" ||
    fail retention-setup "psql could not age a process"

# --- a second host on the same database
port2=$(serve_free_port)
config "$port2" "$tmp/cfg2.json"
url2="http://127.0.0.1:$port2"
"$KILN" serve --config "$tmp/cfg2.json" >>"$tmp/log2" 2>&1 &
PID2=$!
for _ in $(seq 100); do curl -s -o /dev/null "$url2/health" && break; sleep 0.1; done
for _ in $(seq 50); do grep -q "pruned" "$tmp/log2" && break; sleep 0.1; done
got=$(call "$url2" GET "/status/$old_id")
kept=$(call "$url2" GET "/status/${ids[2]}")
if [ "${got%% *}" = 404 ] && [ "${kept%% *}" = 200 ] &&
    grep -q "pruned 1 process that ended over 30 days ago" "$tmp/log2"; then
    ok retention-prunes-old-process
else
    fail retention-prunes-old-process "old: ${got:0:100}; recent: ${kept:0:60}; log: $(grep -m1 pruned "$tmp/log2")"
fi
ids=()
for i in $(seq 40); do
    u=$url
    [ $((i % 2)) = 0 ] && u=$url2
    got=$(call "$u" POST /request "$(req "c$i" "$cb")")
    id=$(id_of "$got")
    [ -n "$id" ] && ids+=("$id") || fail "submit-c$i" "$got"
done
n_ok=0 bad=""
for id in "${ids[@]}"; do
    b1=$(wait_done "$url2" "$id")
    b2=$(call "$url" GET "/status/$id")
    b2=${b2#* }
    if [ "$(jq -r '[.status, .attempt] | join(" ")' <<<"$b1" 2>/dev/null)" = "FINISHED 1" ]; then
        n_ok=$((n_ok + 1))
    else
        bad="$bad $id:${b1:0:200}"
    fi
    [ "$(jq -S 'del(.updated_at)' <<<"$b1")" = "$(jq -S 'del(.updated_at)' <<<"$b2")" ] ||
        bad="$bad $id:hosts-differ"
done
[ "$n_ok" = 40 ] && [ -z "$bad" ] && ok "two-hosts-40-processes-once-each" ||
    fail two-hosts-40-processes-once-each "$n_ok of 40:$bad"
n_out=$(ls "$tmp/storage/out" | grep -c '^c')
[ "$n_out" = 40 ] && ok two-hosts-40-outputs || fail two-hosts-40-outputs "$n_out outputs"
# Each of the 40 owed one postback (FINISHED); whichever host sends it,
# it arrives once.
for _ in $(seq 100); do
    [ "$(grep -c '"path": "/ok"' "$tmp/received" 2>/dev/null)" -ge 40 ] && break
    sleep 0.1
done
sleep 1 # a duplicate would come now
pb=$(python3 - "$tmp/received" "${ids[@]}" <<'PY'
import collections, json, sys
seen = collections.Counter()
for line in open(sys.argv[1]):
    rec = json.loads(line)
    body = json.loads(rec["body"])
    seen[(body.get("process_id"), body.get("status"))] += 1
want = sys.argv[2:]
missing = [i for i in want if seen[(i, "FINISHED")] == 0]
twice = [k for k, n in seen.items() if n > 1]
print("%d missing %d twice %s %s" % (len(missing), len(twice), missing[:3], twice[:3]))
PY
)
case $pb in
"0 missing 0 twice"*) ok two-hosts-postbacks-once-each ;;
*) fail two-hosts-postbacks-once-each "$pb" ;;
esac
grep -q "$secret" "$tmp/log" "$tmp/log2" && fail no-password-in-logs "a log shows the DSN's password" ||
    ok no-password-in-logs

# --- a host killed (-9) while both run slow processes: the other one
# takes back the dead host's work once its 30-second lease runs out, and
# every process finishes, its output whole.
# A few seconds of work each: two enhances and two rotations of 4 MP.
vips gaussnoise "$tmp/n.v" 2000 2000 && vips cast "$tmp/n.v" "$tmp/storage/in/n.png" uchar ||
    fail setup-slow "cannot make the slow source"
slow() { echo "{\"service_id\": 1, \"source\": \"/in/n.png\", \"jobs\": [{\"destination\": \"/out/$1.png\", \"transformations\": [{\"type\": \"enhance\"}, {\"type\": \"rotate\", \"degrees\": 13}, {\"type\": \"enhance\"}, {\"type\": \"rotate\", \"degrees\": 347}]}]}"; }
ids=()
for i in $(seq 8); do
    u=$url
    [ $((i % 2)) = 0 ] && u=$url2
    got=$(call "$u" POST /request "$(slow "k$i")")
    id=$(id_of "$got")
    [ -n "$id" ] && ids+=("$id") || fail "submit-k$i" "$got"
done
sleep 1
serve_stop KILL
t_kill=$SECONDS
n_ok=0 bad=""
for id in "${ids[@]}"; do
    for _ in $(seq 90); do
        b=$(call "$url2" GET "/status/$id")
        case $b in *'"FINISHED"'* | *'"FAILED"'*) break ;; esac
        sleep 1
    done
    [ "$(jq -r .status <<<"${b#* }" 2>/dev/null)" = FINISHED ] && n_ok=$((n_ok + 1)) ||
        bad="$bad $id:${b:0:160}"
done
n_whole=0
for i in $(seq 8); do
    identify "$tmp/storage/out/k$i.png" >/dev/null 2>&1 && n_whole=$((n_whole + 1))
done
[ "$n_ok" = 8 ] && [ "$n_whole" = 8 ] && ok host-killed-work-taken-back ||
    fail host-killed-work-taken-back "$n_ok of 8 finished, $n_whole outputs whole:$bad"
# The dead host held work: the last process finished only after a lease
# of 30 s ran out (the living host's own share takes far less).
waited=$((SECONDS - t_kill))
[ "$waited" -ge 25 ] && ok "host-killed-held-work (last finished ${waited} s after the kill)" ||
    fail host-killed-held-work "all finished within ${waited} s: the killed host held nothing, so nothing was taken back"
exit $status
