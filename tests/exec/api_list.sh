#!/usr/bin/env bash
# Listing, cancelling and statistics through a real `kiln serve`
# (docs/api.md: GET /processes, POST /cancel, GET /stats,
# GET /status/{id}/postbacks):
#  - cancel: a queued process ends CANCELLED at once (200), a running one
#    is stopped (202), writes nothing and ends CANCELLED; ended ones 409,
#    unknown 404, another service's 403, a bad body 400 at its path; a
#    CANCELLED process owes its postback, and retry runs it again;
#  - listing: random queries (status, service, since/until, limit) walked
#    page by page through next_cursor equal a model built from GET /status
#    of every process, newest first, for three tokens (each sees its own
#    services only); bad parameters are 400 naming the parameter;
#  - stats: 24 and 30 points, whose counts add up to the ended processes
#    the token can see, p50 <= p95.
# The seed is printed; API_LIST_SEED reruns one.
set -u
cd "$(dirname "$0")/../.." || exit 1
KILN=${KILN:-build/kiln}
case $KILN in /*) ;; *) KILN=$PWD/$KILN ;; esac
. tests/exec/lib_serve.sh
T=api_list
for t in curl vips python3; do
    if ! command -v "$t" >/dev/null; then
        echo "skip $T: $t is not installed (make deps)"
        exit 0
    fi
done
TPLUGDIR=${KILN_TEST_PLUGIN_DIR:-$(dirname "$KILN")/tests/plugins}
if [ ! -e "$TPLUGDIR/test-stall.so" ]; then
    echo "skip $T: the test plugins are not built ($TPLUGDIR)"
    exit 0
fi
TPLUGDIR=$(cd "$TPLUGDIR" && pwd)
tmp=$(mktemp -d)
RPID=
trap 'serve_stop KILL; [ -n "$RPID" ] && kill "$RPID" 2>/dev/null; rm -rf "$tmp"' EXIT
mkdir -p "$tmp/storage/in"
vips black "$tmp/b.v" 64 48 --bands 3 && vips copy "$tmp/b.v" "$tmp/storage/in/a.png" || {
    echo "FAIL $T/setup: cannot make the source"
    exit 1
}
python3 tests/exec/postback_receiver.py "$tmp/rport" "$tmp/received" &
RPID=$!
for _ in $(seq 100); do [ -s "$tmp/rport" ] && break; sleep 0.05; done
port=$(serve_free_port)
cat >"$tmp/cfg.json" <<JSON
{"listen": "127.0.0.1:$port", "workers": 2,
 "plugins": {"dirs": ["$(serve_plugin_dir)", "$TPLUGDIR"],
             "enable": ["ops-vips", "storage-local", "api-http", "test-stall"]},
 "jobstore": {"driver": "sqlite", "path": "$tmp/kiln.db"},
 "rate_limit": {"per_second": 100000, "burst": 100000},
 "network": {"allow": ["127.0.0.1/32"]},
 "services": [
   {"id": 1, "tokens": ["tok1", "tok-both"], "storage": {"plugin": "local", "root": "$tmp/storage"}},
   {"id": 2, "tokens": ["tok2", "tok-both"], "storage": {"plugin": "local", "root": "$tmp/storage"}}]}
JSON
url="http://127.0.0.1:$port"
if ! serve_start "$tmp/cfg.json" "$tmp/log" "$url"; then
    echo "FAIL $T/start: kiln serve did not start: $(tail -3 "$tmp/log")"
    exit 1
fi
python3 - "$url" "$tmp" "$(cat "$tmp/rport")" "${API_LIST_SEED:-$RANDOM$RANDOM}" <<'PY'
import http.client, json, os, random, sys, time, urllib.parse

url, tmp, rport, seed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
T = "api_list"
rng = random.Random(seed)
print("api_list: seed %d" % seed)
u = urllib.parse.urlparse(url)
status = 0

def ok(name):
    print("ok %s/%s" % (T, name))

def fail(name, why):
    global status
    print("FAIL %s/%s: %s (seed %d)" % (T, name, why, seed))
    status = 1

def call(method, path, token="tok-both", body=None):
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    h = {"Authorization": "Bearer " + token}
    if body is not None:
        body = json.dumps(body) if not isinstance(body, str) else body
        h["Content-Type"] = "application/json"
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    c.close()
    try:
        return r.status, json.loads(data or b"null")
    except ValueError:
        return r.status, data.decode(errors="replace")

def submit(service, source="/in/a.png", ops=None, dest=None, callback=None):
    req = {"service_id": service, "source": source,
           "jobs": [{"destination": dest or "/out/%d-%d.png" % (service, rng.randrange(10**9)),
                     "transformations": ops or [{"type": "resize", "width": 16}]}]}
    if callback:
        req["callback"] = callback
    st, o = call("POST", "/request", body=req)
    if st != 200:
        raise SystemExit("POST /request answered %d: %s" % (st, o))
    return o["process_id"]

def wait(pid, want, secs=30):
    end = time.time() + secs
    o = None
    while time.time() < end:
        st, o = call("GET", "/status/" + pid)
        if st == 200 and o["status"] in want:
            return o
        time.sleep(0.05)
    return o

sleep_ops = [{"type": "test-sleep"}]
cb = "http://127.0.0.1:%s/ok" % rport
# --- cancel: both workers busy with 3 s runs, then queued ones behind them
running = [submit(1, ops=sleep_ops, dest="/out/sleep%d.png" % i) for i in range(2)]
for pid in running:
    wait(pid, ("PROCESSING",), 10)
queued = [submit(1, callback=cb if i == 0 else None) for i in range(3)]
st, o = call("POST", "/cancel", body={"service_id": 1, "process_ids": [queued[0], running[0], "AAAAAAAAAAAAAAAAAAAAA"]})
codes = [e["status"] for e in o] if st == 200 else o
if codes == [200, 202, 404]:
    ok("cancel/answers")
else:
    fail("cancel/answers", "expected [200, 202, 404], got %s %s" % (st, o))
o = wait(queued[0], ("CANCELLED",), 2)
if o and o["status"] == "CANCELLED":
    ok("cancel/queued-at-once")
else:
    fail("cancel/queued-at-once", "status %s" % (o and o["status"]))
o = wait(running[0], ("CANCELLED", "FINISHED", "FAILED"), 20)
if o and o["status"] == "CANCELLED" and not os.path.exists(os.path.join(tmp, "storage/out/sleep0.png")):
    ok("cancel/running-stopped-nothing-written")
else:
    fail("cancel/running-stopped-nothing-written", "status %s, output exists: %s" % (
        o and o["status"], os.path.exists(os.path.join(tmp, "storage/out/sleep0.png"))))
o = wait(running[1], ("FINISHED",), 20)
if o and o["status"] == "FINISHED" and os.path.exists(os.path.join(tmp, "storage/out/sleep1.png")):
    ok("cancel/other-run-untouched")
else:
    fail("cancel/other-run-untouched", "status %s" % (o and o["status"]))
st, o = call("POST", "/cancel", body={"service_id": 1, "process_ids": [running[1], queued[0]]})
if st == 200 and [e["status"] for e in o] == [409, 409] and "FINISHED" in o[0]["description"]:
    ok("cancel/ended-409")
else:
    fail("cancel/ended-409", "%s %s" % (st, o))
st, o = call("POST", "/cancel", token="tok2", body={"service_id": 1, "process_ids": [queued[1]]})
(ok if st == 403 else lambda n: fail(n, "%s %s" % (st, o)))("cancel/other-service-403")
st, o = call("POST", "/cancel", body={"service_id": 1, "process_ids": [7]})
if st == 400 and o["errors"][0]["path"] == "process_ids[0]":
    ok("cancel/bad-body-400")
else:
    fail("cancel/bad-body-400", "%s %s" % (st, o))
# The cancelled process with a callback owes its postback.
end = time.time() + 15
got = []
while time.time() < end:
    try:
        got = [json.loads(l) for l in open(os.path.join(tmp, "received"))]
    except OSError:
        got = []
    if any(json.loads(g["body"]).get("process_id") == queued[0] for g in got):
        break
    time.sleep(0.1)
bodies = [json.loads(g["body"]) for g in got if json.loads(g["body"]).get("process_id") == queued[0]]
if len(bodies) == 1 and bodies[0]["status"] == "CANCELLED":
    ok("cancel/postback")
else:
    fail("cancel/postback", "postbacks for it: %s" % bodies)
st, o = call("GET", "/status/%s/postbacks" % queued[0])
if st == 200 and len(o["postbacks"]) == 1 and o["postbacks"][0]["state"] in ("DELIVERED", "PENDING") \
        and "url" not in o["postbacks"][0]:
    ok("postbacks/listed")
else:
    fail("postbacks/listed", "%s %s" % (st, o))
st, o = call("POST", "/retry", body={"service_id": 1, "process_ids": [queued[0]]})
o2 = wait(queued[0], ("FINISHED",), 20)
if st == 200 and o[0]["status"] == 200 and o2 and o2["status"] == "FINISHED" and o2["attempt"] == 2:
    ok("cancel/retry-runs-again")
else:
    fail("cancel/retry-runs-again", "%s %s -> %s" % (st, o, o2))

# --- a population: random services, some failing (a missing source)
ids = {1: running + queued, 2: []}
for i in range(30):
    svc = rng.choice((1, 2))
    src = "/in/a.png" if rng.random() < 0.6 else "/in/missing-%d.png" % i
    ids[svc].append(submit(svc, source=src))
model = {}
for svc, pids in ids.items():
    for pid in pids:
        o = wait(pid, ("FINISHED", "FAILED", "CANCELLED"), 30)
        model[pid] = dict(o, service_id=svc)
all_created = sorted({m["created_at"] for m in model.values()})

def expect(token_services, q):
    rows = [m for m in model.values() if m["service_id"] in token_services]
    if "service_id" in q:
        rows = [m for m in rows if m["service_id"] == q["service_id"]]
    if "status" in q:
        rows = [m for m in rows if m["status"] == q["status"]]
    if "since" in q:
        rows = [m for m in rows if m["created_at"] >= q["since"]]
    if "until" in q:
        rows = [m for m in rows if m["created_at"] < q["until"]]
    rows.sort(key=lambda m: (m["created_at"], m["process_id"]), reverse=True)
    return [m["process_id"] for m in rows]

tokens = {"tok1": {1}, "tok2": {2}, "tok-both": {1, 2}}
bad = None
for k in range(60):
    token = rng.choice(sorted(tokens))
    q = {}
    if rng.random() < 0.4:
        q["status"] = rng.choice(["FINISHED", "FAILED", "CANCELLED", "QUEUED"])
    if rng.random() < 0.3:
        q["service_id"] = rng.choice(sorted(tokens[token]))
    if rng.random() < 0.3:
        q["since"] = rng.choice(all_created)
    if rng.random() < 0.3:
        q["until"] = rng.choice(all_created)
    limit = rng.randint(1, 7)
    want = expect(tokens[token], q)
    got, cursor, pages = [], None, 0
    while True:
        params = dict(q, limit=limit)
        if cursor:
            params["cursor"] = cursor
        st, o = call("GET", "/processes?" + urllib.parse.urlencode(params), token=token)
        if st != 200:
            got = "HTTP %d %s" % (st, o)
            break
        if len(o["processes"]) > limit:
            got = "a page of %d over limit %d" % (len(o["processes"]), limit)
            break
        for p in o["processes"]:
            m = model.get(p["process_id"])
            if m is None or p["status"] != m["status"] or p["attempt"] != m["attempt"] \
                    or p["created_at"] != m["created_at"] or p["jobs"] != 1 \
                    or p["service_id"] != m["service_id"]:
                got = "row %s differs from GET /status %s" % (p, m)
                break
        if isinstance(got, str):
            break
        got += [p["process_id"] for p in o["processes"]]
        cursor = o["next_cursor"]
        pages += 1
        if not cursor or pages > 100:
            break
    if got != want:
        bad = (token, q, limit, got, want)
        break
if bad is None:
    ok("list/60-random-queries-match-the-model")
else:
    fail("list/random-query", "token %s query %s limit %d: got %s, want %s" % bad)
for q, name in (("limit=0", "limit"), ("limit=abc", "limit"), ("status=DONE", "status"),
                ("since=yesterday", "since"), ("cursor=zzz", "cursor"),
                ("service_id=x", "service_id")):
    st, o = call("GET", "/processes?" + q)
    if st == 400 and ('"%s"' % name) in o.get("message", ""):
        ok("list/bad-%s" % q.split("=")[0] + ("-" + q.split("=")[1] if q == "limit=abc" else ""))
    else:
        fail("list/bad-" + q, "%s %s" % (st, o))
st, o = call("GET", "/processes?service_id=2", token="tok1")
(ok if st == 403 else lambda n: fail(n, "%s %s" % (st, o)))("list/other-service-403")
st, o = call("GET", "/stats?window=7d")
(ok if st == 400 and '"window"' in o.get("message", "") else lambda n: fail(n, "%s %s" % (st, o)))("stats/bad-window")
for token, svcs in tokens.items():
    ended = [m for m in model.values() if m["service_id"] in svcs]
    for window, n in (("24h", 24), ("30d", 30)):
        st, o = call("GET", "/stats?window=" + window, token=token)
        if st != 200 or len(o["points"]) != n:
            fail("stats/%s-%s" % (token, window), "%s %s" % (st, o))
            continue
        sums = {k: sum(p[k] for p in o["points"]) for k in ("finished", "failed", "cancelled")}
        # The retried process counts once, as FINISHED: the model holds
        # each process as it stands.
        want = {k: sum(1 for m in ended if m["status"] == k.upper()) for k in sums}
        order = all(p["p50_ms"] is None or p["p50_ms"] <= p["p95_ms"] for p in o["points"])
        if sums == want and order:
            ok("stats/%s-%s" % (token, window))
        else:
            fail("stats/%s-%s" % (token, window), "sums %s, want %s, p50<=p95 %s" % (sums, want, order))
sys.exit(status)
PY
rc=$?
# X-Request-Id: echoed when plausible, made up otherwise, on every answer.
rid() { curl -s -D - -o /dev/null "$@" | tr -d '\r' | awk -F': ' 'tolower($1) == "x-request-id" { print $2 }'; }
a=$(rid -H 'X-Request-Id: abc.DEF_12-3' "$url/health")
b=$(rid -H 'X-Request-Id: has space; and=more' "$url/status/x")
c=$(rid "$url/processes")
if [ "$a" = abc.DEF_12-3 ] && [[ $b =~ ^[0-9a-f]{16}$ ]] && [[ $c =~ ^[0-9a-f]{16}$ ]] && [ "$b" != "$c" ]; then
    echo "ok $T/x-request-id"
else
    echo "FAIL $T/x-request-id: echoed '$a', for a bad one '$b', none '$c'"
    rc=1
fi
serve_stop
exit $rc
