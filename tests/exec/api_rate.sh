#!/usr/bin/env bash
# Rate limits are exact per token: with more tokens than the 256 buckets
# the limiter once had, no token shares a bucket with another or resets
# one, so after each token spends its burst, every further call is a 429
# (issue 12: two colliding tokens alternating got 200 for every call).
set -u
cd "$(dirname "$0")/../.." || exit 1
KILN=${KILN:-build/kiln}
case $KILN in /*) ;; *) KILN=$PWD/$KILN ;; esac
. tests/exec/lib_serve.sh
tmp=$(mktemp -d)
trap 'serve_stop; rm -rf "$tmp"' EXIT
status=0
port=$(serve_free_port)
tokens=$(python3 -c 'import json; print(json.dumps(["tok-%03d" % i for i in range(300)]))')
cat >"$tmp/cfg.json" <<JSON
{"listen": "127.0.0.1:$port", "workers": 1,
 "plugins": {"dirs": ["$(serve_plugin_dir)"], "enable": ["ops-vips", "storage-local", "api-http"]},
 "jobstore": {"driver": "sqlite", "path": "$tmp/kiln.db"},
 "rate_limit": {"per_second": 0.001, "burst": 1},
 "services": [{"id": 1, "tokens": $tokens, "storage": {"plugin": "local", "root": "$tmp"}}]}
JSON
url="http://127.0.0.1:$port"
serve_start "$tmp/cfg.json" "$tmp/log" "$url" ||
    { echo "FAIL api_rate/setup: the server did not start: $(tail -3 "$tmp/log")"; exit 1; }
python3 - "$url" <<'PY' || status=1
import sys, urllib.request, urllib.error
url = sys.argv[1]
def call(tok):
    req = urllib.request.Request(url + "/status/nosuchprocess",
                                 headers={"Authorization": "Bearer " + tok})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
toks = ["tok-%03d" % i for i in range(300)]
first = [call(t) for t in toks]   # each spends its burst of 1: 404
second = [call(t) for t in toks]  # none has refilled: 429
bad1 = [t for t, c in zip(toks, first) if c != 404]
bad2 = [t for t, c in zip(toks, second) if c != 429]
ok = True
if bad1:
    print("FAIL api_rate/first-call-allowed: %d tokens refused, e.g. %s" % (len(bad1), bad1[:3]))
    ok = False
else:
    print("ok api_rate/first-call-allowed")
if bad2:
    print("FAIL api_rate/second-call-limited: %d of 300 tokens got past their burst, e.g. %s" % (len(bad2), bad2[:3]))
    ok = False
else:
    print("ok api_rate/second-call-limited")
sys.exit(0 if ok else 1)
PY
serve_stop
exit $status
