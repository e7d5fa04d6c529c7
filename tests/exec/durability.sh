#!/usr/bin/env bash
# Durability (api.md): a server killed with SIGKILL while it holds dozens
# of accepted processes, some running, loses none of them. Submits 40
# processes (two jobs each), kills the server once a few have finished,
# restarts it on the same job store, and requires every process that got
# a 200 to finish, each destination whole (byte-identical to the same job
# of another process) and no temporary file left anywhere. Then SIGTERM
# while a slow process runs: the server waits shutdown_timeout, interrupts
# it, exits cleanly, and the process is queued again, nothing written.
set -u
KILN=${KILN:-build/kiln}
. "$(dirname "$0")/lib_serve.sh"   # serve_free_port, serve_start, serve_stop
tmp=$(mktemp -d)
trap 'serve_stop KILL; rm -rf "$tmp"' EXIT
status=0
ok() { echo "ok durability/$1"; }
fail() { echo "FAIL durability/$1: $2"; status=1; }
N=40

mkdir -p "$tmp/storage/in"
vips gaussnoise "$tmp/n.v" 1000 750 && vips copy "$tmp/n.v" "$tmp/storage/in/src.jpg" &&
    vips gaussnoise "$tmp/big.v" 2400 2400 && vips copy "$tmp/big.v" "$tmp/storage/in/big.png" ||
    { fail setup "cannot make the source"; exit 1; }
port=$(serve_free_port)
plugdir=$(serve_plugin_dir)
cat >"$tmp/cfg.json" <<JSON
{"listen": "127.0.0.1:$port", "workers": 2, "shutdown_timeout": 0.5,
 "plugins": {"dirs": ["$plugdir"], "enable": ["ops-vips", "storage-local", "api-http"]},
 "jobstore": {"driver": "sqlite", "path": "$tmp/kiln.db"},
 "rate_limit": {"per_second": 10000, "burst": 10000},
 "services": [{"id": 1, "tokens": ["tok"], "storage": {"plugin": "local", "root": "$tmp/storage"}}]}
JSON
url="http://127.0.0.1:$port"
start() { serve_start "$tmp/cfg.json" "$tmp/log" "$url"; }
# client.py submit N | count: a persistent HTTP connection, so the
# submissions outrun the workers and polling is cheap.
cat >"$tmp/client.py" <<'PY'
import http.client, json, sys
port, what = int(sys.argv[1]), sys.argv[2]
c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
auth = {"Authorization": "Bearer tok"}
if what == "submit":
    for i in range(1, int(sys.argv[3]) + 1):
        body = {"service_id": 1, "source": "/in/src.jpg", "jobs": [
            {"destination": "/out/%d/a.jpg" % i, "quality": 80, "transformations": [
                {"type": "resize", "width": 400}, {"type": "blur", "radius": 2, "sigma": 1.5}]},
            {"destination": "/out/%d/b.png" % i, "transformations": [
                {"type": "rotate", "degrees": 90}, {"type": "resize", "width": 300}]}]}
        c.request("POST", "/request", json.dumps(body), auth)
        r = c.getresponse()
        answer = json.loads(r.read())
        if r.status == 200:
            print(answer["process_id"], flush=True)
        else:
            print("submit %d: %d %s" % (i, r.status, answer), file=sys.stderr)
else:
    n = 0
    for pid in open(sys.argv[3]).read().split():
        c.request("GET", "/status/" + pid, headers=auth)
        r = c.getresponse()
        n += json.loads(r.read()).get("status") == "FINISHED"
    print(n)
PY
finished() { python3 "$tmp/client.py" "$port" count "$tmp/ids"; }

start || { fail start "the server did not come up: $(tail -3 "$tmp/log")"; exit 1; }
python3 "$tmp/client.py" "$port" submit "$N" >"$tmp/ids"
n_ids=$(wc -l <"$tmp/ids")
# Kill while work is under way: the submissions outrun two workers.
before=$(finished)
serve_stop KILL
echo "  killed with $before of $n_ids finished"
[ "$n_ids" = "$N" ] && ok all-accepted || fail all-accepted "$n_ids of $N got a process id"
[ "$before" -lt "$n_ids" ] && ok killed-mid-work || fail killed-mid-work "all $before had finished before the kill"

start || { fail restart "the server did not come back: $(tail -3 "$tmp/log")"; exit 1; }
for _ in $(seq 600); do
    [ "$(finished)" = "$n_ids" ] && break
    sleep 0.2
done
after=$(finished)
[ "$after" = "$n_ids" ] && ok every-process-finished || fail every-process-finished "$after of $n_ids"
grep -q 're-queued [0-9]* interrupted process' "$tmp/log" && ok interrupted-requeued ||
    echo "  (no process was running at the kill)"

# Every destination whole: the same job gives the same bytes.
bad=0
for i in $(seq "$N"); do
    for f in a.jpg b.png; do
        cmp -s "$tmp/storage/out/1/$f" "$tmp/storage/out/$i/$f" || bad=$((bad + 1))
    done
done
vipsheader "$tmp/storage/out/1/a.jpg" | grep -q '400x300' &&
    vipsheader "$tmp/storage/out/1/b.png" | grep -q '300x400' || bad=$((bad + 1))
[ "$bad" = 0 ] && ok outputs-whole || fail outputs-whole "$bad destinations differ or are missing"
left=$(find "$tmp/storage" -name '.*' -type f | head -5)
[ -z "$left" ] && ok no-temporary-files || fail no-temporary-files "$left"

# Graceful shutdown with a slow process running.
slow='{"service_id": 1, "source": "/in/big.png", "jobs": [{"destination": "/out/slow.jpg", "transformations": [
  {"type": "rotate", "degrees": 13}, {"type": "blur", "radius": 5, "sigma": 5}, {"type": "rotate", "degrees": 17}]}]}'
sid=$(curl -s -H 'Authorization: Bearer tok' --data-binary "$slow" "$url/request" |
    sed -n 's/.*"process_id":"\([A-Za-z0-9_-]*\)".*/\1/p')
for _ in $(seq 100); do
    curl -s -H 'Authorization: Bearer tok' "$url/status/$sid" | grep -q '"status":"PROCESSING"' && break
    sleep 0.05
done
t0=$(date +%s.%N)
serve_stop
rc=$SERVE_RC
took=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
echo "  SIGTERM to exit: ${took} s (shutdown_timeout 0.5 s)"
[ "$rc" = 0 ] && grep -q 'interrupting the running processes' "$tmp/log" &&
    ok sigterm-interrupts-running || fail sigterm-interrupts-running "exit $rc: $(tail -3 "$tmp/log")"
[ ! -e "$tmp/storage/out/slow.jpg" ] && ok interrupted-nothing-written || fail interrupted-nothing-written "slow.jpg exists"
start || { fail restart-2 "the server did not come back"; exit 1; }
st=$(curl -s -H 'Authorization: Bearer tok' "$url/status/$sid")
case "$st" in
*'"status":"QUEUED"'*'"error":"interrupted: the server is shutting down (the process is queued again)"'* | \
    *'"status":"PROCESSING"'*'"error":"interrupted: the server is shutting down (the process is queued again)"'*)
    ok interrupted-queued-again ;;
*) fail interrupted-queued-again "$st" ;;
esac
serve_stop
rc=$SERVE_RC
[ "$rc" = 0 ] && ok sigterm-clean || fail sigterm-clean "exit $rc: $(tail -3 "$tmp/log")"
exit $status
