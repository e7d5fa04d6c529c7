#!/usr/bin/env bash
# The API's OpenAPI document, docs/openapi.yaml:
#  - lint: Redocly CLI (npm, pinned in tests/openapi/) with
#    tests/openapi/redocly.yaml finds no problem; and does find one in a
#    copy missing a required response header (the rules have teeth);
#  - served: GET /openapi.json, without a token, answers the YAML
#    converted to JSON (the bytes the build made, and the same document as
#    the YAML in the tree), as application/json with X-Request-Id;
#  - no drift: every route of server/api.c's table (GET /openapi.json,
#    answered by the transport, among them) is in the document with its
#    method, and the document has no route the code does not answer (a
#    405's Allow comes from the document: both must agree);
#  - the validator (tests/openapi/validate.js, which checks every answer
#    the API tests receive) passes a real answer and flags doctored ones:
#    a body missing a field, a field of the wrong type, a status the route
#    does not give, a missing X-Request-Id, a 429 without Retry-After, the
#    wrong Content-Type, a 401 without WWW-Authenticate, a 405 without
#    Allow or with other methods, a 404 for a listed path; and the relay in front of a server reports a
#    violation as a FAIL line (a document that wants what /health does not
#    send).
set -u
cd "$(dirname "$0")/../.." || exit 1
KILN=${KILN:-build/kiln}
case $KILN in /*) ;; *) KILN=$PWD/$KILN ;; esac
. tests/exec/lib_serve.sh
T=openapi
status=0
ok() { echo "ok $T/$1"; }
fail() {
    echo "FAIL $T/$1: $2"
    status=1
}
for t in node curl python3; do
    if ! command -v "$t" >/dev/null; then
        echo "skip $T: $t is not installed (make deps)"
        exit 0
    fi
done
if ! nm=$(bash tests/openapi/install.sh 2>/tmp/kiln-openapi-npm.$$); then
    echo "skip $T: the npm packages are missing (tests/openapi/install.sh): $(tail -1 /tmp/kiln-openapi-npm.$$)"
    rm -f /tmp/kiln-openapi-npm.$$
    exit 0
fi
rm -f /tmp/kiln-openapi-npm.$$
export NODE_PATH=$nm
spec=$(dirname "$KILN")/openapi.json
if [ ! -f "$spec" ]; then
    fail setup "$spec is absent (make)"
    exit 1
fi
tmp=$(mktemp -d)
trap 'serve_stop; rm -rf "$tmp"' EXIT

# --- lint
lint() { # FILE: Redocly's recommended-strict and ours; no telemetry
    REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true NO_COLOR=1 \
        "$nm/.bin/redocly" lint --config tests/openapi/redocly.yaml "$1" >"$tmp/lint" 2>&1
}
if lint docs/openapi.yaml; then
    ok lint
else
    fail lint "redocly lint found problems:"
    grep -E '^\[[0-9]+\]|Error was|Warning was|^[A-Z].*\.$' "$tmp/lint" | sed 's/^/    /' | head -40
fi
# A copy whose GET /health 200 lacks X-Request-Id: response-contains-header.
python3 - docs/openapi.yaml "$tmp/bad.yaml" <<'PY'
import sys
s = open(sys.argv[1]).read()
anchor = "      operationId: getHealth"
i = s.index(anchor)
j = s.index("          headers:\n            X-Request-Id:\n              $ref: '#/components/headers/X-Request-Id'\n", i)
s = s[:j] + s[j:].replace("          headers:\n            X-Request-Id:\n              $ref: '#/components/headers/X-Request-Id'\n", "", 1)
open(sys.argv[2], "w").write(s)
PY
cp tests/openapi/redocly.yaml "$tmp/redocly.yaml"
if REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true NO_COLOR=1 \
    "$nm/.bin/redocly" lint --config "$tmp/redocly.yaml" "$tmp/bad.yaml" >"$tmp/lint-bad" 2>&1; then
    fail lint-flags-missing-header "a response without X-Request-Id passed the lint"
elif grep -q 'response-contains-header' "$tmp/lint-bad"; then
    ok lint-flags-missing-header
else
    fail lint-flags-missing-header "failed, but not for the header: $(grep -m3 'Error was' "$tmp/lint-bad")"
fi

# --- the routes the code answers are the document's, and no others
python3 - server/api.c plugins/api-http/openapi.c "$spec" >"$tmp/routes" 2>&1 <<'PY'
import json, re, sys
api, transport, doc_file = sys.argv[1:]
src = open(api).read()
start = src.index("api_routes[] = {")
table = src[start:src.index("};", start)]
code = set(re.findall(r'\{"([A-Z]+)", "([^"]+)", API_[A-Z_]+\}', table))
# GET /openapi.json is in the table (for the 405 of its other methods) and
# the transport answers it.
tsrc = open(transport).read()
if not re.search(r'strcmp\(method, MHD_HTTP_METHOD_GET\) == 0 &&\s*strcmp\(url, "/openapi.json"\) == 0', tsrc):
    print("the transport does not answer GET /openapi.json (openapi.c)")
    sys.exit(1)
if len(code) < 10:
    print("read only %d routes from the code: %s" % (len(code), sorted(code)))
    sys.exit(1)
doc = json.load(open(doc_file))
methods = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
spec = {(m.upper(), p) for p, item in doc["paths"].items() for m in item if m in methods}
missing = sorted(code - spec)
extra = sorted(spec - code)
for m, p in missing:
    print("not in the document: %s %s" % (m, p))
for m, p in extra:
    print("in the document, not answered by the code: %s %s" % (m, p))
print("%d routes" % len(code))
sys.exit(1 if missing or extra else 0)
PY
if [ $? = 0 ]; then
    ok "routes ($(tail -1 "$tmp/routes"): every one the code answers, and no other)"
else
    fail routes "$(tr '\n' ';' <"$tmp/routes")"
fi

# --- served by a real server
# Debian's python3 reads the YAML (python3-yaml), as the build does.
py=python3
[ -x /usr/bin/python3 ] && py=/usr/bin/python3
port=$(serve_free_port)
cat >"$tmp/cfg.json" <<JSON
{"listen": "127.0.0.1:$port", "workers": 1,
 "plugins": {"dirs": ["$(serve_plugin_dir)"], "enable": ["ops-vips", "storage-local", "api-http"]},
 "jobstore": {"driver": "sqlite", "path": "$tmp/kiln.db"},
 "rate_limit": {"per_second": 1000, "burst": 1000},
 "services": [{"id": 1, "tokens": ["tok-one"], "storage": {"plugin": "local", "root": "$tmp"}}]}
JSON
url="http://127.0.0.1:$port"
if ! serve_start "$tmp/cfg.json" "$tmp/log" "$url"; then
    fail start "kiln serve did not start: $(tail -3 "$tmp/log")"
    exit 1
fi
code=$(curl -s -D "$tmp/doc.h" -o "$tmp/doc.json" -w '%{http_code}' "$url/openapi.json")
ctype=$(tr -d '\r' <"$tmp/doc.h" | sed -n 's/^Content-Type: //Ip')
rid=$(tr -d '\r' <"$tmp/doc.h" | sed -n 's/^X-Request-Id: //Ip')
if [ "$code" = 200 ] && [ "$ctype" = application/json ] && [ -n "$rid" ]; then
    ok served-without-token
else
    fail served-without-token "HTTP $code, Content-Type '$ctype', X-Request-Id '$rid'"
fi
cmp -s "$tmp/doc.json" "$spec" && ok served-is-the-build-json ||
    fail served-is-the-build-json "GET /openapi.json differs from $spec"
if "$py" - docs/openapi.yaml "$tmp/doc.json" <<'PY'; then
import json, sys, yaml
want = yaml.safe_load(open(sys.argv[1], encoding="utf-8"))
got = json.load(open(sys.argv[2], encoding="utf-8"))
sys.exit(0 if got == want else 1)
PY
    ok served-is-the-yaml
else
    fail served-is-the-yaml "GET /openapi.json is not docs/openapi.yaml converted (run make)"
fi

# --- the validator flags what does not conform
# answer NAME METHOD PATH [CURL ARGS...]: records a real answer as
# $tmp/NAME.json ({method, path, status, headers, body}).
answer() {
    local name=$1 method=$2 path=$3
    shift 3
    curl -s -X "$method" -D "$tmp/$name.h" -o "$tmp/$name.b" "$@" "$url$path" >/dev/null
    python3 - "$method" "$path" "$tmp/$name.h" "$tmp/$name.b" >"$tmp/$name.json" <<'PY'
import json, sys
method, path, hfile, bfile = sys.argv[1:]
lines = open(hfile, encoding="latin-1").read().splitlines()
status = int(lines[0].split()[1])
headers = {}
for line in lines[1:]:
    if ":" in line:
        k, v = line.split(":", 1)
        headers[k.strip()] = v.strip()
print(json.dumps({"method": method, "path": path, "status": status,
                  "headers": headers, "body": open(bfile, encoding="utf-8").read()}))
PY
}
# doctor NAME NEW PYTHON-EXPR: NEW.json is NAME.json changed by EXPR on `a`
# (the answer) and `b` (its body, parsed).
doctor() {
    python3 - "$tmp/$1.json" "$3" >"$tmp/$2.json" <<'PY'
import json, sys
a = json.load(open(sys.argv[1]))
try:
    b = json.loads(a["body"])
except ValueError:
    b = None
exec(sys.argv[2])
if b is not None:
    a["body"] = json.dumps(b)
print(json.dumps(a))
PY
}
# flags NAME WANT: the validator rejects NAME.json with a line matching WANT.
flags() {
    local out
    if out=$(node tests/openapi/validate.js "$spec" "$tmp/$1.json" 2>&1); then
        fail "validator-flags-$1" "passed: $(head -c 300 "$tmp/$1.json")"
    elif grep -qE "$2" <<<"$out"; then
        ok "validator-flags-$1"
    else
        fail "validator-flags-$1" "rejected, but not for /$2/: $out"
    fi
}
created=$(curl -s -H 'Authorization: Bearer tok-one' \
    --data-binary '{"service_id": 1, "source": "/in/a.png", "process": false}' "$url/request")
id=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["process_id"])' "$created" 2>/dev/null)
answer status GET "/status/$id" -H 'Authorization: Bearer tok-one'
answer unauthorized GET "/status/$id"
if node tests/openapi/validate.js "$spec" "$tmp/status.json" >"$tmp/v.out" 2>&1; then
    ok validator-passes-a-real-answer
else
    fail validator-passes-a-real-answer "$(head -c 400 "$tmp/v.out")"
fi
doctor status no-attempt 'del b["attempt"]'
flags no-attempt "must have required property 'attempt'"
doctor status attempt-string 'b["attempt"] = str(b["attempt"])'
flags attempt-string '/attempt must be integer'
doctor status extra-field 'b["secret"] = "x"'
flags extra-field 'must NOT have additional properties \(secret\)'
doctor status bad-status 'b["status"] = "DONE"'
flags bad-status '/status must be equal to one of the allowed values'
doctor status status-418 'a["status"] = 418'
flags status-418 'status 418 is not one of its responses'
doctor status no-request-id 'a["headers"] = {k: v for k, v in a["headers"].items() if k.lower() != "x-request-id"}'
flags no-request-id 'no X-Request-Id header'
doctor status html 'a["headers"]["Content-Type"] = "text/html"'
flags html 'Content-Type "text/html"'
doctor unauthorized no-retry-after 'a["status"] = 429'
flags no-retry-after 'no Retry-After header'
doctor unauthorized errors-in-401 'b["errors"] = [{"path": "", "message": "x"}]'
flags errors-in-401 'additional properties \(errors\)'
doctor unauthorized no-challenge 'a["headers"] = {k: v for k, v in a["headers"].items() if k.lower() != "www-authenticate"}'
flags no-challenge 'no WWW-Authenticate header'
# A listed path asked with a method it does not list: 405 and Allow.
answer not-allowed DELETE /retry
if node tests/openapi/validate.js "$spec" "$tmp/not-allowed.json" >"$tmp/v.out" 2>&1; then
    ok validator-passes-a-real-405
else
    fail validator-passes-a-real-405 "$(head -c 400 "$tmp/v.out")"
fi
doctor not-allowed no-allow 'a["headers"] = {k: v for k, v in a["headers"].items() if k.lower() != "allow"}'
flags no-allow 'no Allow header'
doctor not-allowed wrong-allow 'a["headers"]["Allow"] = "GET, POST"'
flags wrong-allow 'header Allow: "GET, POST", expected the methods of /retry: POST'
doctor not-allowed listed-path-404 'a["status"] = 404'
flags listed-path-404 'status 404, expected one of 405'

# The relay in front of a server, with a document whose GET /health 200
# also wants "uptime": serve_stop's report must be a FAIL line naming it.
python3 - "$spec" "$tmp/doctored.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
d["paths"]["/health"]["get"]["responses"]["200"]["content"]["application/json"]["schema"] = {
    "type": "object", "required": ["message", "uptime"],
    "properties": {"message": {"type": "string"}, "uptime": {"type": "number"}}}
json.dump(d, open(sys.argv[2], "w"))
PY
p2=$(serve_free_port)
node tests/openapi/proxy.js 127.0.0.1 "$p2" "$port" "$tmp/doctored.json" "$tmp/rec" 2>"$tmp/rec.err" &
rpid=$!
for _ in $(seq 100); do [ -f "$tmp/rec.ready" ] && break; sleep 0.05; done
curl -s -o /dev/null "http://127.0.0.1:$p2/health"
kill -TERM "$rpid"
wait "$rpid"
node tests/openapi/report.js "$tmp/rec" doctored >"$tmp/report" && rc=0 || rc=$?
if [ "$rc" = 1 ] && grep -q "^FAIL doctored/openapi: GET /health -> 200: .*must have required property 'uptime'" "$tmp/report"; then
    ok relay-reports-a-violation
else
    fail relay-reports-a-violation "exit $rc: $(tr '\n' ';' <"$tmp/report" | sed 's/FAIL/fail/g')"
fi

serve_stop
[ "$SERVE_RC" = 0 ] || fail exit "the server exited with $SERVE_RC: $(tail -3 "$tmp/log")"
exit $status
