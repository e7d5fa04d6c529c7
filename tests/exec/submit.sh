#!/usr/bin/env bash
# `kiln submit` against a real server: `kiln serve` started here on
# 127.0.0.1 (random port, scratch directory), then the client posts
# requests and waits for them. Checks the printed id, the --wait body (the
# server's own status body, pretty printed), 400 errors as "path: message",
# 401, a FAILED process, stdin, KILN_TOKEN/KILN_URL, Idempotency-Key,
# --timeout, Retry-After on 429 (while waiting, and on the POST itself)
# and a refused connection.
. "$(dirname "$0")/lib.sh"   # ok, fail, finish; KILN made absolute
. "$(dirname "$0")/lib_serve.sh"   # serve_free_port, serve_start, serve_stop
tmp=$(mktemp -d)
trap 'serve_stop; rm -rf "$tmp"' EXIT
field() { python3 -c 'import json,sys; r=json.loads(sys.stdin.read()); print(eval(sys.argv[1]))' "$1"; }

# start_server CFG LOG PORT: starts kiln serve on PORT, waits for /health;
# sets url.
start_server() {
    url="http://127.0.0.1:$3"
    serve_start "$1" "$2" "$url" && return 0
    fail submit/setup "the server did not start: $(tail -3 "$2")"
    exit 1
}
stop_server() { # LOG: the server's log, checked for sanitizer reports
    serve_stop
    if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' "$1"; then
        fail submit/server-sanitizer "$(grep -m1 -E 'AddressSanitizer|LeakSanitizer|runtime error:' "$1")"
    fi
}

# sub NAME [ARGS...]: runs kiln submit with stdin from $tmp/in (when it
# exists), output in $tmp/NAME.out and .err, exit status in $rc; a
# sanitizer report fails NAME.
sub() {
    local name=$1
    shift
    rc=0
    "$KILN" submit "$@" <"${SUBMIT_IN:-/dev/null}" >"$tmp/$name.out" 2>"$tmp/$name.err" || rc=$?
    if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' "$tmp/$name.err"; then
        fail "submit/$name/sanitizer" "$(grep -m1 -E 'AddressSanitizer|LeakSanitizer|runtime error:' "$tmp/$name.err")"
    fi
}
is_id() { [ "$(wc -l <"$1")" = 1 ] && grep -qE '^[A-Za-z0-9_-]{21}$' "$1"; }

mkdir -p "$tmp/storage/in"
vips black "$tmp/b.v" 64 48 --bands 3 && vips copy "$tmp/b.v" "$tmp/storage/in/a.png" ||
    { fail submit/setup "cannot make the source"; exit 1; }
port=$(serve_free_port)
plugdir=$(serve_plugin_dir)
cat >"$tmp/cfg.json" <<JSON
{"listen": "127.0.0.1:$port", "workers": 2,
 "plugins": {"dirs": ["$plugdir"], "enable": ["ops-vips", "storage-local", "api-http"]},
 "jobstore": {"driver": "sqlite", "path": "$tmp/kiln.db"},
 "rate_limit": {"per_second": 1000, "burst": 1000},
 "services": [
   {"id": 1, "tokens": ["tok-one"], "storage": {"plugin": "local", "root": "$tmp/storage"}}]}
JSON
start_server "$tmp/cfg.json" "$tmp/log" "$port"
export KILN_URL=$url
unset KILN_TOKEN
cat >"$tmp/req.json" <<'JSON'
{"service_id": 1, "source": "/in/a.png",
 "jobs": [{"destination": "/out/a.png", "transformations": [{"type": "resize", "width": 32}]}]}
JSON

# The id, alone on stdout; nothing on stderr when it is not a terminal.
sub id --token tok-one "$tmp/req.json"
[ "$rc" = 0 ] && is_id "$tmp/id.out" && [ ! -s "$tmp/id.err" ] && ok submit/prints-id ||
    fail submit/prints-id "exit $rc: $(cat "$tmp/id.out" "$tmp/id.err")"
id=$(cat "$tmp/id.out")
st=$(curl -s -H 'Authorization: Bearer tok-one' "$url/status/$id" | field 'r["process_id"]')
[ "$st" = "$id" ] && ok submit/id-is-the-process || fail submit/id-is-the-process "status answers $st"

# --wait: the FINISHED body, which is the server's status body.
sub wait --token tok-one --wait "$tmp/req.json"
got=$(field '(r["status"], r["jobs"][0]["destination"], r["jobs"][0]["status"], r["jobs"][0]["width"])' <"$tmp/wait.out" 2>&1)
[ "$rc" = 0 ] && [ "$got" = "('FINISHED', '/out/a.png', 'FINISHED', 32)" ] && ok submit/wait-finished ||
    fail submit/wait-finished "exit $rc: $got $(cat "$tmp/wait.err")"
[ -f "$tmp/storage/out/a.png" ] && ok submit/wait-output-written || fail submit/wait-output-written "no file"
wid=$(field 'r["process_id"]' <"$tmp/wait.out" 2>/dev/null)
curl -s -H 'Authorization: Bearer tok-one' "$url/status/$wid" >"$tmp/server-body"
same=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])) == json.load(open(sys.argv[2])))' \
       "$tmp/wait.out" "$tmp/server-body" 2>&1)
[ "$same" = True ] && ok submit/wait-body-is-server-body || fail submit/wait-body-is-server-body "$same"
[ "$(wc -l <"$tmp/wait.out")" -gt 5 ] && ok submit/wait-pretty || fail submit/wait-pretty "not pretty printed"

# 400: every error as "path: message" on stderr, nothing on stdout.
printf '%s' '{"service_id": 1, "sorce": "/in/a.png", "jobs": []}' >"$tmp/bad.json"
sub bad --token tok-one "$tmp/bad.json"
want='sorce: unknown parameter "sorce" (did you mean "source"?)
source: missing required parameter "source"
jobs: expected at least one job'
[ "$rc" = 1 ] && [ "$(tail -n 3 "$tmp/bad.err")" = "$want" ] && [ ! -s "$tmp/bad.out" ] &&
    grep -q 'HTTP 400' "$tmp/bad.err" && ok submit/bad-request-400 ||
    fail submit/bad-request-400 "exit $rc: $(cat "$tmp/bad.err")"

# 401, and the token never printed.
sub wrong-token --token not-the-token "$tmp/req.json"
[ "$rc" = 1 ] && grep -q 'Invalid Secret' "$tmp/wrong-token.err" && [ ! -s "$tmp/wrong-token.out" ] &&
    ok submit/wrong-token-401 || fail submit/wrong-token-401 "exit $rc: $(cat "$tmp/wrong-token.err")"
grep -q 'not-the-token' "$tmp/wrong-token.err" && fail submit/token-not-printed "the token is in the message" ||
    ok submit/token-not-printed
sub no-token "$tmp/req.json"
[ "$rc" = 1 ] && grep -q 'Invalid Secret.*KILN_TOKEN' "$tmp/no-token.err" && ok submit/no-token-hint ||
    fail submit/no-token-hint "exit $rc: $(cat "$tmp/no-token.err")"

# A missing source without wait_retry_delay: FAILED, printed, exit 1.
printf '%s' '{"service_id": 1, "source": "/in/missing.png", "jobs": [{"destination": "/out/m.png"}]}' \
    >"$tmp/missing.json"
sub failed --token tok-one --wait "$tmp/missing.json"
got=$(field '(r["status"], r["jobs"][0]["status"])' <"$tmp/failed.out" 2>&1)
[ "$rc" = 1 ] && [ "$got" = "('FAILED', 'FAILED')" ] && ok submit/wait-failed ||
    fail submit/wait-failed "exit $rc: $got $(cat "$tmp/failed.err")"
[ ! -f "$tmp/storage/out/m.png" ] && ok submit/failed-no-output || fail submit/failed-no-output "m.png written"

# Standard input, and the token from KILN_TOKEN.
SUBMIT_IN=$tmp/req.json KILN_TOKEN=tok-one sub stdin -
[ "$rc" = 0 ] && is_id "$tmp/stdin.out" && ok submit/stdin || fail submit/stdin "exit $rc: $(cat "$tmp/stdin.err")"
KILN_TOKEN=tok-one sub env-token --wait "$tmp/req.json"
[ "$rc" = 0 ] && [ "$(field 'r["status"]' <"$tmp/env-token.out" 2>&1)" = FINISHED ] &&
    ok submit/env-token || fail submit/env-token "exit $rc: $(cat "$tmp/env-token.err")"
KILN_TOKEN=not-the-token sub flag-over-env --token tok-one "$tmp/req.json"
[ "$rc" = 0 ] && ok submit/token-flag-over-env || fail submit/token-flag-over-env "exit $rc: $(cat "$tmp/flag-over-env.err")"
KILN_TOKEN=tok-one KILN_URL=http://127.0.0.1:1 sub url-flag --url "$url/" "$tmp/req.json"
[ "$rc" = 0 ] && is_id "$tmp/url-flag.out" && ok submit/url-flag-over-env ||
    fail submit/url-flag-over-env "exit $rc: $(cat "$tmp/url-flag.err")"

# Idempotency-Key: the same key and body answer the first id.
sub idem1 --token tok-one --idempotency-key k1 "$tmp/req.json"
sub idem2 --token tok-one --idempotency-key k1 "$tmp/req.json"
[ -s "$tmp/idem1.out" ] && cmp -s "$tmp/idem1.out" "$tmp/idem2.out" && ok submit/idempotency-key ||
    fail submit/idempotency-key "$(cat "$tmp/idem1.out" "$tmp/idem2.out" "$tmp/idem2.err")"

# --timeout: an INCOMPLETE process never ends by itself.
printf '%s' '{"service_id": 1, "source": "/in/a.png", "process": false}' >"$tmp/incomplete.json"
sub timeout --token tok-one --wait --timeout 0.5 "$tmp/incomplete.json"
[ "$rc" = 3 ] && grep -q 'timed out.*INCOMPLETE' "$tmp/timeout.err" && [ ! -s "$tmp/timeout.out" ] &&
    ok submit/timeout-exit-3 || fail submit/timeout-exit-3 "exit $rc: $(cat "$tmp/timeout.err")"

# On a terminal, progress lines on stderr (`script` gives it one).
if command -v script >/dev/null; then
    KILN_TOKEN=tok-one script -qec "$KILN submit --wait $tmp/req.json >/dev/null" /dev/null \
        >"$tmp/tty.log" 2>&1 </dev/null
    grep -q 'kiln submit: process [A-Za-z0-9_-]* created' "$tmp/tty.log" && ok submit/progress-on-tty ||
        fail submit/progress-on-tty "$(head -c 300 "$tmp/tty.log")"
else
    skip submit/progress-on-tty "script is not installed"
fi

# Usage errors exit 2.
sub usage --token tok-one
[ "$rc" = 2 ] && ok submit/usage-no-file || fail submit/usage-no-file "exit $rc"
sub usage-timeout --timeout soon "$tmp/req.json"
[ "$rc" = 2 ] && grep -q -- '--timeout "soon"' "$tmp/usage-timeout.err" && ok submit/usage-bad-timeout ||
    fail submit/usage-bad-timeout "exit $rc: $(cat "$tmp/usage-timeout.err")"
sub no-file --token tok-one "$tmp/nonexistent.json"
[ "$rc" = 1 ] && grep -q 'cannot open' "$tmp/no-file.err" && ok submit/missing-file ||
    fail submit/missing-file "exit $rc: $(cat "$tmp/no-file.err")"

stop_server "$tmp/log"

# Nothing listens any more: a clear message, exit 1.
sub refused --token tok-one "$tmp/req.json"
[ "$rc" = 1 ] && grep -q "cannot reach $url.*is kiln serve running" "$tmp/refused.err" &&
    ok submit/connection-refused || fail submit/connection-refused "exit $rc: $(cat "$tmp/refused.err")"

# 429 while waiting: a server allowing a burst of 2 calls, then one call
# every 2 s. A call here and the POST use the burst; the first GET is told
# to come back after 2 s, and --wait does.
port2=$(serve_free_port)
sed -e "s/:$port/:$port2/" -e 's/"per_second": 1000, "burst": 1000/"per_second": 0.5, "burst": 2/' \
    -e "s|$tmp/kiln.db|$tmp/kiln2.db|" "$tmp/cfg.json" >"$tmp/cfg2.json"
start_server "$tmp/cfg2.json" "$tmp/log2" "$port2"
printf '%s' '{"service_id": 1, "source": "/in/a.png", "jobs": [{"destination": "/out/rate.png", "transformations": [{"type": "resize", "width": 16}]}]}' \
    >"$tmp/rate.json"
curl -s -o /dev/null -H 'Authorization: Bearer tok-one' "$url/status/x"
t0=$(date +%s.%N)
sub rate --url "$url" --token tok-one --wait "$tmp/rate.json"
t1=$(date +%s.%N)
waited=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print (b - a >= 1.5) ? "yes" : "no" }')
[ "$rc" = 0 ] && [ "$(field 'r["status"]' <"$tmp/rate.out" 2>&1)" = FINISHED ] && [ "$waited" = yes ] &&
    ok submit/rate-limited-wait || fail submit/rate-limited-wait "exit $rc, waited $waited: $(cat "$tmp/rate.err")"
stop_server "$tmp/log2"

# 429 on the POST itself: a burst of 1, then one call every 2 s. The
# second submission is told to come back after 2 s, says so on stderr,
# waits and is accepted; one whose --timeout is shorter than the wait
# gives up at once with exit status 3.
port3=$(serve_free_port)
sed -e "s/:$port/:$port3/" -e 's/"per_second": 1000, "burst": 1000/"per_second": 0.5, "burst": 1/' \
    -e "s|$tmp/kiln.db|$tmp/kiln3.db|" "$tmp/cfg.json" >"$tmp/cfg3.json"
start_server "$tmp/cfg3.json" "$tmp/log3" "$port3"
sub post-first --url "$url" --token tok-one "$tmp/req.json"
[ "$rc" = 0 ] && is_id "$tmp/post-first.out" || fail submit/post-first "exit $rc: $(cat "$tmp/post-first.err")"
t0=$(date +%s.%N)
sub post-retry --url "$url" --token tok-one "$tmp/req.json"
t1=$(date +%s.%N)
waited=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print (b - a >= 1.5) ? "yes" : "no" }')
[ "$rc" = 0 ] && is_id "$tmp/post-retry.out" && [ "$waited" = yes ] &&
    grep -q '^kiln submit: POST /request: HTTP 429 (too many requests for this token); trying again in 2 s$' \
        "$tmp/post-retry.err" && ok submit/post-429-retry-after ||
    fail submit/post-429-retry-after "exit $rc, waited $waited: $(cat "$tmp/post-retry.out" "$tmp/post-retry.err")"
[ "$(cut -c1-21 "$tmp/post-first.out")" != "$(cut -c1-21 "$tmp/post-retry.out")" ] &&
    ok submit/post-retry-new-process || fail submit/post-retry-new-process "the same id twice"
t0=$(date +%s.%N)
sub post-timeout --url "$url" --token tok-one --timeout 1 "$tmp/req.json"
t1=$(date +%s.%N)
quick=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print (b - a < 1) ? "yes" : "no" }')
[ "$rc" = 3 ] && [ ! -s "$tmp/post-timeout.out" ] && [ "$quick" = yes ] &&
    grep -q 'POST /request: HTTP 429.*the server asks to wait 2 s, which would pass --timeout (1 s)' \
        "$tmp/post-timeout.err" && ok submit/post-429-past-timeout ||
    fail submit/post-429-past-timeout "exit $rc, quick $quick: $(cat "$tmp/post-timeout.err")"
stop_server "$tmp/log3"
# What the server kept: two processes, the refused calls created none.
count=$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select count(*) from process").fetchone()[0])' \
        "$tmp/kiln3.db" 2>&1)
[ "$count" = 2 ] && ok submit/post-retry-created-two || fail submit/post-retry-created-two "$count processes"

finish
