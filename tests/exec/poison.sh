#!/usr/bin/env bash
# Poison pills (issue 12): a process that nothing in-process can stop (the
# test plugin's "test-stall" op never returns and never sees a cancel
# flag, as librsvg rendering a huge blur did) must not stall the server
# or come back on every restart.
# 1. Backstop: kill_after seconds past its max_process_time the process is
#    FAILED ("ended by force") and the server exits 70 for its supervisor;
#    a process running beside it is queued again and finishes after the
#    restart.
# 2. SIGTERM: shutdown_timeout, then kill_after, then the server exits
#    even though the process did not stop.
# 3. Interrupted max_interruptions times (a SIGTERM as above, then a
#    SIGKILL), the process is FAILED when next claimed and does not run.
set -u
cd "$(dirname "$0")/../.." || exit 1
KILN=${KILN:-build/kiln}
case $KILN in /*) ;; *) KILN=$PWD/$KILN ;; esac
. tests/exec/lib_serve.sh
tmp=$(mktemp -d)
trap 'serve_stop KILL; rm -rf "$tmp"' EXIT
status=0
ok() { echo "ok poison/$1"; }
fail() {
    echo "FAIL poison/$1: $2"
    status=1
}
TPLUGDIR=${KILN_TEST_PLUGIN_DIR:-$(dirname "$KILN")/tests/plugins}
TPLUGDIR=$(cd "$TPLUGDIR" && pwd)
mkdir -p "$tmp/storage/in"
vips black "$tmp/b.v" 64 48 --bands 3 && vips copy "$tmp/b.v" "$tmp/storage/in/a.png" ||
    {
        fail setup "cannot make the source"
        exit 1
    }
port=$(serve_free_port)
cat >"$tmp/cfg.json" <<JSON
{"listen": "127.0.0.1:$port", "workers": 2, "shutdown_timeout": 0.2,
 "kill_after": 1, "max_interruptions": 2,
 "plugins": {"dirs": ["$(serve_plugin_dir)", "$TPLUGDIR"],
             "enable": ["ops-vips", "storage-local", "api-http", "test-stall"]},
 "jobstore": {"driver": "sqlite", "path": "$tmp/kiln.db"},
 "rate_limit": {"per_second": 10000, "burst": 10000},
 "services": [{"id": 1, "tokens": ["tok"], "storage": {"plugin": "local", "root": "$tmp/storage"}}]}
JSON
url="http://127.0.0.1:$port"
start() { serve_start "$tmp/cfg.json" "$tmp/log" "$url"; }
# submit BODY: prints the new process id.
submit() {
    curl -s -H 'Authorization: Bearer tok' --data-binary "$1" "$url/request" |
        sed -n 's/.*"process_id":"\([A-Za-z0-9_-]*\)".*/\1/p'
}
state() { curl -s -H 'Authorization: Bearer tok' "$url/status/$1"; }
# wait_exit SECONDS: waits for the server to exit by itself; sets SERVE_RC
# (empty if it did not exit in time, after killing it).
wait_exit() {
    local i
    for i in $(seq $(($1 * 10))); do
        kill -0 "$SERVE_PID" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$SERVE_PID" 2>/dev/null; then
        serve_stop KILL
        SERVE_RC=
    else
        wait "$SERVE_PID" 2>/dev/null
        SERVE_RC=$?
        SERVE_PID=
    fi
}
# wait_status ID STATUS: waits up to 20 s for the process to reach STATUS.
wait_status() {
    local i
    for i in $(seq 200); do
        state "$1" | grep -q "\"status\":\"$2\"" && return 0
        sleep 0.1
    done
    return 1
}
stall() {
    cat <<JSON
{"service_id": 1, "source": "/in/a.png", "limits": {"max_process_time": $1},
 "jobs": [{"destination": "/out/$2.png", "transformations": [{"type": "test-stall"}]}]}
JSON
}

# 1. The backstop.
start || {
    fail start "the server did not start: $(tail -3 "$tmp/log")"
    exit 1
}
pill=$(submit "$(stall 1 pill)")
[ -n "$pill" ] || fail submit "no process id"
wait_exit 15
[ "$SERVE_RC" = 70 ] && ok backstop-ends-server ||
    fail backstop-ends-server "exit status '${SERVE_RC}' (want 70 within 15 s): $(tail -3 "$tmp/log")"
grep -q "process $pill ran .* past its max_process_time of 1 s and does not stop" "$tmp/log" &&
    ok backstop-logged || fail backstop-logged "$(tail -3 "$tmp/log")"
start || {
    fail restart "the server did not come back: $(tail -3 "$tmp/log")"
    exit 1
}
st=$(state "$pill")
case "$st" in
*'"status":"FAILED"'*'ended by force'*) ok backstop-failed ;;
*) fail backstop-failed "$st" ;;
esac
# Not re-queued: it stays FAILED after the restart (nothing runs it).
sleep 1
state "$pill" | grep -q '"status":"FAILED"' && ok backstop-not-rerun ||
    fail backstop-not-rerun "$(state "$pill")"
[ ! -e "$tmp/storage/out/pill.png" ] && ok backstop-nothing-written ||
    fail backstop-nothing-written "pill.png exists"
# The server serves on: a normal process finishes.
good=$(submit '{"service_id": 1, "source": "/in/a.png", "jobs": [{"destination": "/out/good.png"}]}')
wait_status "$good" FINISHED && ok serves-after-restart || fail serves-after-restart "$(state "$good")"

# 2 and 3. A stall with a long max_process_time (the backstop is far off):
# SIGTERM cannot stop it, yet the server exits within shutdown_timeout +
# kill_after; SIGKILL next; then it has been interrupted twice.
pill2=$(submit "$(stall 50 pill2)")
wait_status "$pill2" PROCESSING || fail pill2-runs "$(state "$pill2")"
kill -TERM "$SERVE_PID"
wait_exit 10
[ -n "$SERVE_RC" ] && [ "$SERVE_RC" != 0 ] && ok sigterm-exits-anyway ||
    fail sigterm-exits-anyway "exit status '${SERVE_RC}' (want non-zero within 10 s)"
grep -q 'did not stop within kill_after' "$tmp/log" && ok sigterm-logged ||
    fail sigterm-logged "$(tail -3 "$tmp/log")"
start || {
    fail restart-2 "the server did not come back: $(tail -3 "$tmp/log")"
    exit 1
}
wait_status "$pill2" PROCESSING || fail pill2-rerun "$(state "$pill2")"
serve_stop KILL
start || {
    fail restart-3 "the server did not come back: $(tail -3 "$tmp/log")"
    exit 1
}
if wait_status "$pill2" FAILED; then
    st=$(state "$pill2")
    case "$st" in
    *'interrupted 2 times'*'not run again'*) ok interrupted-failed ;;
    *) fail interrupted-failed "$st" ;;
    esac
else
    fail interrupted-failed "$(state "$pill2")"
fi
# The server is not stuck: SIGTERM ends it cleanly.
serve_stop
[ "$SERVE_RC" = 0 ] && ok clean-exit || fail clean-exit "exit $SERVE_RC: $(tail -3 "$tmp/log")"
exit $status
