#!/usr/bin/env bash
# Postbacks, the network guard and max_process_time against a real server:
# `kiln serve` on 127.0.0.1 and a postback receiver (postback_receiver.py)
# that fails on purpose. Checks the retry times (1 s, then 3 s), the HMAC
# signature, the delivery id (the same on every attempt), notify_status,
# retry_postback false, refused callbacks (400 at submission), a
# cancelled process, and /metrics with promtool.
set -u
KILN=${KILN:-build/kiln}
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib_serve.sh"   # serve_free_port, serve_start, serve_stop
tmp=$(mktemp -d)
rpid=
trap 'serve_stop; [ -n "$rpid" ] && kill "$rpid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
status=0
ok() { echo "ok postback/$1"; }
fail() { echo "FAIL postback/$1: $2"; status=1; }

mkdir -p "$tmp/storage/in"
vips black "$tmp/b.v" 64 48 --bands 3 && vips copy "$tmp/b.v" "$tmp/storage/in/a.png" &&
    vips gaussnoise "$tmp/n.v" 2400 2400 && vips copy "$tmp/n.v" "$tmp/storage/in/big.png" ||
    { fail setup "cannot make the sources"; exit 1; }
python3 "$here/postback_receiver.py" "$tmp/rport" "$tmp/received" &
rpid=$!
for _ in $(seq 100); do [ -f "$tmp/rport" ] && break; sleep 0.05; done
rport=$(cat "$tmp/rport")
port=$(serve_free_port)
plugdir=$(serve_plugin_dir)
cat >"$tmp/cfg.json" <<JSON
{"listen": "127.0.0.1:$port", "workers": 2,
 "plugins": {"dirs": ["$plugdir"], "enable": ["ops-vips", "storage-local", "api-http"]},
 "jobstore": {"driver": "sqlite", "path": "$tmp/kiln.db"},
 "rate_limit": {"per_second": 1000, "burst": 1000},
 "network": {"allow": ["127.0.0.1/32"]},
 "services": [
   {"id": 1, "tokens": ["tok-one"], "secret": "pb-secret",
    "storage": {"plugin": "local", "root": "$tmp/storage"}},
   {"id": 2, "tokens": ["tok-two"], "storage": {"plugin": "local", "root": "$tmp/storage"}}]}
JSON
url="http://127.0.0.1:$port"
serve_start "$tmp/cfg.json" "$tmp/log" "$url" ||
    { fail setup "the server did not start: $(tail -3 "$tmp/log")"; exit 1; }
post() { # TOKEN BODY: prints "CODE BODY"
    local code
    code=$(curl -s -o "$tmp/body" -w '%{http_code}' -H "Authorization: Bearer $1" \
        --data-binary "$2" "$url/request")
    printf '%s %s' "$code" "$(cat "$tmp/body")"
}
pid_of() { python3 -c 'import json,sys; print(json.loads(sys.argv[1].split(" ",1)[1])["process_id"])' "$1"; }
req() { # CALLBACK [EXTRA]: a one-job request body
    printf '{"service_id": %s, "source": "/in/a.png", "callback": "%s"%s, "jobs": [{"destination": "/out/%s.png", "transformations": [{"type": "resize", "width": 16}]}]}' \
        "${3:-1}" "$1" "${2:-}" "$RANDOM"
}
# wait_posts PATH N SECONDS: until the receiver logged N posts to PATH
wait_posts() {
    for _ in $(seq $(($3 * 10))); do
        [ "$(grep -c "\"path\": \"$1\"" "$tmp/received" 2>/dev/null)" -ge "$2" ] && return 0
        sleep 0.1
    done
    return 1
}

# Refused at submission: addresses network.allow does not cover.
for cb in "http://127.0.0.2:$rport/ok" "http://169.254.169.254/latest" "http://10.1.2.3/x" \
    "http://[::ffff:127.0.0.2]/x" "http://100.64.0.1/x" "http://[fd00::1]/x"; do
    got=$(post tok-one "$(req "$cb")")
    case "$got" in
    '400 '*'"path":"callback"'*'network.allow'*) ok "refused ${cb#http://}" ;;
    *) fail "refused ${cb#http://}" "$got" ;;
    esac
done
got=$(post tok-one "$(req "ftp://127.0.0.1/x")")
case "$got" in '400 '*'"path":"callback"'*) ok refused-scheme ;; *) fail refused-scheme "$got" ;; esac

# Retries: the receiver fails twice, the third attempt is delivered.
got=$(post tok-one "$(req "http://127.0.0.1:$rport/fail2")")
id=$(pid_of "$got")
if wait_posts /fail2 3 12; then
    python3 - "$tmp/received" "$id" <<'PY' && ok retry-schedule || fail retry-schedule "see above"
import json, sys
posts = [json.loads(l) for l in open(sys.argv[1]) if '"/fail2"' in l]
t = [p["t"] for p in posts]
d1, d2 = t[1] - t[0], t[2] - t[1]
print("  retry delays: %.2f s, %.2f s (schedule: 1 s, 3 s)" % (d1, d2))
bodies = [json.loads(p["body"]) for p in posts]
assert all(b["process_id"] == sys.argv[2] and b["status"] == "FINISHED" for b in bodies), bodies
assert 0.95 <= d1 <= 2.6 and 2.95 <= d2 <= 4.8, (d1, d2)
PY
else
    fail retry-schedule "fewer than 3 posts in 12 s"
fi
# The body is the GET /status body, signed with the service's secret.
status_body=$(curl -s -H 'Authorization: Bearer tok-one' "$url/status/$id")
python3 - "$tmp/received" "$status_body" <<'PY' && ok signature-and-body || fail signature-and-body "see above"
import hashlib, hmac, json, sys
post = [json.loads(l) for l in open(sys.argv[1]) if '"/fail2"' in l][-1]
want = "sha256=" + hmac.new(b"pb-secret", post["body"].encode(), hashlib.sha256).hexdigest()
assert post["sig"] == want, (post["sig"], want)
assert post["type"] == "application/json", post["type"]
assert json.loads(post["body"]) == json.loads(sys.argv[2]), (post["body"], sys.argv[2])
PY
sleep 1
n=$(grep -c '"path": "/fail2"' "$tmp/received")
[ "$n" = 3 ] && ok no-resend-after-delivery || fail no-resend-after-delivery "$n posts"
# Kiln-Delivery-Id: the same on the three attempts of that one postback,
# the process's id and the postback's own (GET /status/{id}/postbacks).
pbs=$(curl -s -H 'Authorization: Bearer tok-one' "$url/status/$id/postbacks")
python3 - "$tmp/received" "$id" "$pbs" <<'PY' && ok delivery-id-same-on-retries || fail delivery-id-same-on-retries "see above"
import json, sys
posts = [json.loads(l) for l in open(sys.argv[1]) if '"/fail2"' in l]
ids = {p["delivery"] for p in posts}
pbs = json.loads(sys.argv[3])["postbacks"]
assert len(pbs) == 1, pbs
want = "%s.%d" % (sys.argv[2], pbs[0]["id"])
assert ids == {want}, (ids, want)
PY

# notify_status: every status change, in order; no signature without a
# service secret.
got=$(post tok-two "$(req "http://127.0.0.1:$rport/ok" ', "notify_status": true' 2)")
id=$(pid_of "$got")
wait_posts /ok 2 10
python3 - "$tmp/received" "$id" <<'PY' && ok notify-status || fail notify-status "see above"
import json, sys
posts = [json.loads(l) for l in open(sys.argv[1]) if '"/ok"' in l]
mine = [p for p in posts if json.loads(p["body"])["process_id"] == sys.argv[2]]
st = [json.loads(p["body"])["status"] for p in mine]
assert st == ["PROCESSING", "FINISHED"], st
assert all(p["sig"] is None for p in posts), [p["sig"] for p in posts]
# Two postbacks: two delivery ids, each of this process.
ids = [p["delivery"] for p in mine]
assert len(set(ids)) == 2 and all(i.startswith(sys.argv[2] + ".") for i in ids), ids
PY

# retry_postback false: one attempt, then given up.
got=$(post tok-one "$(req "http://127.0.0.1:$rport/never" ', "retry_postback": false')")
wait_posts /never 1 10
sleep 2.5
n=$(grep -c '"path": "/never"' "$tmp/received")
[ "$n" = 1 ] && ok no-retry || fail no-retry "$n posts"
metrics=$(curl -s -H 'Authorization: Bearer tok-one' "$url/metrics")
case "$metrics" in
*'kiln_postbacks{state="GIVEN_UP"} 1'*'kiln_postback_attempts_total{outcome="delivered"} 3'*'kiln_postback_attempts_total{outcome="failed"} 2'*'kiln_postback_attempts_total{outcome="given_up"} 1'*)
    ok postback-metrics ;;
*) fail postback-metrics "$(printf '%s\n' "$metrics" | grep -i postback)" ;;
esac

# max_process_time: a slow chain on a big image is cancelled, nothing is
# written, and the process says why.
slow='{"service_id": 1, "source": "/in/big.png", "limits": {"max_process_time": 0.2}, "jobs": [
 {"destination": "/out/slow1.jpg", "transformations": [{"type": "rotate", "degrees": 13}, {"type": "blur", "radius": 5, "sigma": 5}, {"type": "rotate", "degrees": 17}]},
 {"destination": "/out/slow2.jpg"}]}'
got=$(post tok-one "$slow")
id=$(pid_of "$got")
for _ in $(seq 100); do
    st=$(curl -s -H 'Authorization: Bearer tok-one' "$url/status/$id")
    case "$st" in *'"status":"FAILED"'* | *'"status":"FINISHED"'*) break ;; esac
    sleep 0.1
done
case "$st" in
*'"status":"FAILED"'*'max_process_time of 0.2 s'*) ok max-process-time ;;
*) fail max-process-time "$st" ;;
esac
[ ! -e "$tmp/storage/out/slow1.jpg" ] && [ ! -e "$tmp/storage/out/slow2.jpg" ] &&
    ok max-process-time-nothing-written || fail max-process-time-nothing-written "$(ls "$tmp/storage/out")"
got=$(post tok-one '{"service_id": 1, "source": "/in/a.png", "limits": {"max_process_time": 1e9}, "jobs": [{"destination": "/out/x.png"}]}')
case "$got" in '400 '*'"path":"limits.max_process_time"'*) ok limits-not-raised ;; *) fail limits-not-raised "$got" ;; esac

metrics=$(curl -s -H 'Authorization: Bearer tok-one' "$url/metrics")
case "$metrics" in
*'kiln_process_duration_seconds_count{outcome="timeout"} 1'*'kiln_storage_errors_total 0'*) ok timeout-metrics ;;
*) fail timeout-metrics "$(printf '%s\n' "$metrics" | grep -E 'process_duration_seconds_count|storage')" ;;
esac
if command -v promtool >/dev/null; then
    out=$(printf '%s\n' "$metrics" | promtool check metrics 2>&1)
    [ $? = 0 ] && ok promtool || fail promtool "$out"
else
    echo "skip postback/promtool: promtool is not installed (Debian package prometheus)"
fi
# The example receiver (examples/postback) verifies real postbacks.
eport=$(serve_free_port)
KILN_POSTBACK_SECRET=pb-secret python3 "$here/../../examples/postback/receiver.py" "$eport" >"$tmp/example.out" 2>&1 &
epid=$!
sleep 0.5
ebody=$(python3 - "$here/../../examples/postback/request.json" "$eport" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
r["source"] = "/in/a.png"
r["callback"] = r["callback"].replace(":8000", ":" + sys.argv[2])
print(json.dumps(r))
PY
)
post tok-one "$ebody" >/dev/null
for _ in $(seq 50); do grep -q FINISHED "$tmp/example.out" && break; sleep 0.1; done
kill "$epid" 2>/dev/null
grep -q 'PROCESSING signature=ok' "$tmp/example.out" && grep -q 'FINISHED signature=ok' "$tmp/example.out" &&
    ok example-receiver || fail example-receiver "$(cat "$tmp/example.out")"

grep -q 'pb-secret' "$tmp/log" && fail secret-not-logged "the secret appears in the log" || ok secret-not-logged

serve_stop
rc=$SERVE_RC
[ "$rc" = 0 ] && ok sigterm-clean || fail sigterm-clean "exit $rc: $(tail -3 "$tmp/log")"
exit $status
