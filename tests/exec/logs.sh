#!/usr/bin/env bash
# What `kiln serve` logs (docs/api.md, "Logs"): with log.format "json",
# every line on stderr is one JSON object; one "request" line per API call
# (request id as X-Request-Id echoed it, method, route with ids as {id},
# status, bytes, ms, service), one "process" line per outcome (id,
# service, outcome, attempt, ms, error), a "rate_limited" line per 429,
# a "postback" line per failed delivery; never a token, a secret or a
# URL's query. With "text", the same events as key=value lines.
set -u
cd "$(dirname "$0")/../.." || exit 1
KILN=${KILN:-build/kiln}
case $KILN in /*) ;; *) KILN=$PWD/$KILN ;; esac
. tests/exec/lib_serve.sh
T=logs
for t in curl vips python3; do
    if ! command -v "$t" >/dev/null; then
        echo "skip $T: $t is not installed (make deps)"
        exit 0
    fi
done
tmp=$(mktemp -d)
RPID=
trap 'serve_stop KILL; [ -n "$RPID" ] && kill "$RPID" 2>/dev/null; rm -rf "$tmp"' EXIT
status=0
ok() { echo "ok $T/$1"; }
fail() {
    echo "FAIL $T/$1: $2"
    status=1
}
mkdir -p "$tmp/storage/in"
vips black "$tmp/b.v" 32 24 --bands 3 && vips copy "$tmp/b.v" "$tmp/storage/in/a.png" || {
    fail setup "cannot make the source"
    exit 1
}
python3 tests/exec/postback_receiver.py "$tmp/rport" "$tmp/received" &
RPID=$!
for _ in $(seq 100); do [ -s "$tmp/rport" ] && break; sleep 0.05; done
port=$(serve_free_port)
url="http://127.0.0.1:$port"
config() { # FORMAT
    cat >"$tmp/cfg.json" <<JSON
{"listen": "127.0.0.1:$port", "workers": 1,
 "plugins": {"dirs": ["$(serve_plugin_dir)"], "enable": ["ops-vips", "storage-local", "api-http"]},
 "jobstore": {"driver": "sqlite", "path": "$tmp/kiln-$1.db"},
 "log": {"format": "$1", "level": "info"},
 "rate_limit": {"per_second": 0.001, "burst": 100},
 "network": {"allow": ["127.0.0.1/32"]},
 "services": [{"id": 1, "tokens": ["tok-secret-1"], "secret": "sign-secret-1",
               "storage": {"plugin": "local", "root": "$tmp/storage"}}]}
JSON
}
A='Authorization: Bearer tok-secret-1'
cb="http://127.0.0.1:$(cat "$tmp/rport")/never?cbtoken=query-secret"
calls() {
    good=$(curl -s -H "$A" -H 'X-Request-Id: req-good-1' --data-binary \
        '{"service_id": 1, "source": "/in/a.png", "jobs": [{"destination": "/out/a.png", "transformations": [{"type": "resize", "width": 8}]}]}' \
        "$url/request" | sed -n 's/.*"process_id":"\([^"]*\)".*/\1/p')
    bad=$(curl -s -H "$A" --data-binary \
        "{\"service_id\": 1, \"source\": \"/in/missing.png\", \"callback\": \"$cb\", \"jobs\": [{\"destination\": \"/out/b.png\"}]}" \
        "$url/request" | sed -n 's/.*"process_id":"\([^"]*\)".*/\1/p')
    for _ in $(seq 100); do
        s1=$(curl -s -H "$A" "$url/status/$good")
        s2=$(curl -s -H "$A" "$url/status/$bad")
        case "$s1$s2" in *FINISHED*FAILED*) break ;; esac
        sleep 0.1
    done
    curl -s -o /dev/null -H "$A" "$url/processes?status=FAILED&secretparam=query-secret-2"
    curl -s -o /dev/null -H 'Authorization: Bearer wrong-token' "$url/status/$good"
    # Spend the token's burst (100, with the polls above): 429s follow.
    # shellcheck disable=SC2046  # one curl, many URLs on one connection
    curl -s -H "$A" $(for _ in $(seq 110); do printf '%s ' "$url/stats"; done) >/dev/null
    # A failed postback is retried after 1 s: wait for its line.
    for _ in $(seq 40); do grep -q '"postback"\|postback ' "$tmp/log" && break; sleep 0.1; done
}

# --- JSON
config json
if ! serve_start "$tmp/cfg.json" "$tmp/log" "$url"; then
    fail json/start "kiln serve did not start: $(tail -3 "$tmp/log")"
    exit 1
fi
calls
serve_stop
python3 - "$tmp/log" "$good" "$bad" <<'PY' || status=1
import json, sys
log, good, bad = sys.argv[1:4]
T = "logs/json"
status = 0
def ok(n): print("ok %s/%s" % (T, n))
def fail(n, why):
    global status
    print("FAIL %s/%s: %s" % (T, n, why)); status = 1
lines = open(log).read().splitlines()
objs = []
for l in lines:
    try:
        objs.append(json.loads(l))
    except ValueError:
        fail("every-line-is-json", repr(l)); break
else:
    ok("every-line-is-json")
req = [o for o in objs if o.get("event") == "request"]
need = {"time", "level", "request_id", "method", "route", "status", "bytes", "ms", "service"}
if req and all(need <= set(o) for o in req):
    ok("request-lines-have-fields")
else:
    fail("request-lines-have-fields", [o for o in req if not need <= set(o)][:1] or "no request line")
g = [o for o in req if o["request_id"] == "req-good-1"]
if len(g) == 1 and g[0]["route"] == "/request" and g[0]["status"] == 200 and g[0]["service"] == 1:
    ok("x-request-id-in-the-line")
else:
    fail("x-request-id-in-the-line", g)
routes = {o["route"] for o in req}
if "/status/{id}" in routes and "/processes" in routes and not any(good in r for r in routes):
    ok("routes-templated")
else:
    fail("routes-templated", routes)
if any(o["status"] == 401 for o in req) and any(o["status"] == 429 for o in req):
    ok("401-and-429-logged")
else:
    fail("401-and-429-logged", sorted({o["status"] for o in req}))
rl = [o for o in objs if o.get("event") == "rate_limited"]
(ok if rl else lambda n: fail(n, "none"))("rate-limited-line")
procs = {o.get("process_id"): o for o in objs if o.get("event") == "process"}
pg, pb = procs.get(good), procs.get(bad)
if pg and pg["outcome"] == "finished" and pg["error"] is None and pg["ms"] >= 0 and pg["attempt"] == 1:
    ok("process-finished-line")
else:
    fail("process-finished-line", pg)
if pb and pb["outcome"] == "failed" and "missing.png" in (pb["error"] or ""):
    ok("process-failed-line")
else:
    fail("process-failed-line", pb)
pbl = [o for o in objs if o.get("event") == "postback"]
if pbl and pbl[0]["process_id"] == bad and pbl[0]["http_status"] == 503:
    ok("failed-postback-line")
else:
    fail("failed-postback-line", pbl[:1])
text = open(log).read()
leaks = [w for w in ("tok-secret-1", "sign-secret-1", "query-secret", "secretparam", "cbtoken", "wrong-token") if w in text]
(ok if not leaks else lambda n: fail(n, leaks))("no-token-secret-or-query")
sys.exit(status)
PY

# --- text
: >"$tmp/log"
config text
if ! serve_start "$tmp/cfg.json" "$tmp/log" "$url"; then
    fail text/start "kiln serve did not start: $(tail -3 "$tmp/log")"
    exit 1
fi
calls
serve_stop
if grep -qE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z info request request_id=req-good-1 method=POST route=/request status=200 bytes=[0-9]+ ms=[0-9.]+ service=1$' "$tmp/log"; then
    ok text/request-line
else
    fail text/request-line "$(grep -m2 ' request ' "$tmp/log")"
fi
if grep -qE " (info|warn) process process_id=$bad service=1 outcome=failed attempt=1 ms=[0-9.]+ error=\".*missing.png" "$tmp/log"; then
    ok text/process-line
else
    fail text/process-line "$(grep -m2 ' process ' "$tmp/log")"
fi
if grep -qE 'tok-secret-1|sign-secret-1|query-secret|secretparam|cbtoken' "$tmp/log"; then
    fail text/no-secrets "$(grep -m1 -E 'tok-secret-1|sign-secret-1|query-secret|secretparam|cbtoken' "$tmp/log")"
else
    ok text/no-secrets
fi
exit $status
