# Starting and stopping a real `kiln serve` for the scripts that drive its
# HTTP API (tests/exec/api_http.sh, postback.sh, durability.sh, submit.sh
# and bench/api.sh). Sourced, not run; tests/run.sh skips it. Needs $KILN
# (the kiln binary) and curl.
#
# Typical use:
#   port=$(serve_free_port)
#   cat >"$tmp/cfg.json" <<JSON   ... "listen": "127.0.0.1:$port" ...
#     ... "plugins": {"dirs": ["$(serve_plugin_dir)"], ...} ...
#   trap 'serve_stop; rm -rf "$tmp"' EXIT
#   serve_start "$tmp/cfg.json" "$tmp/log" "http://127.0.0.1:$port" || ...
#   ...
#   serve_stop; [ "$SERVE_RC" = 0 ] ...
#
# Every answer is checked against the API's OpenAPI document: serve_start
# puts a validating relay (tests/openapi/proxy.js, node) on URL's port and
# the server on another one (--listen), and serve_stop prints a line
# `FAIL TEST/openapi: ...` for each answer that does not conform to
# docs/openapi.yaml (or `ok TEST/openapi`), on standard error: a test may
# read serve_start's or serve_stop's output. The relay passes bytes on as
# they come, one server connection per client connection, from the
# client's own loopback address, so the server sees what it would see
# without it; SERVE_PID is still the server's. Without node or the npm
# packages (tests/openapi/install.sh) the server is started alone, with a
# line `skip TEST/openapi: ...`. A test that must reach the server itself
# sets SERVE_OPENAPI=off, and says why.

SERVE_PID=   # the running server's pid; empty when none runs
SERVE_RC=    # the exit status serve_stop saw last
SERVE_PROXY_PID=   # the validating relay's pid; empty when none runs
SERVE_OPENAPI_OUT= # what the relay records (violations, then a summary)
_serve_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
_serve_test=${0##*/}
_serve_test=${_serve_test%.sh}
_serve_openapi_said=   # the skip line was printed

# serve_plugin_dir: prints the absolute plugins directory beside $KILN.
serve_plugin_dir() { (cd "$(dirname "$KILN")/plugins" && pwd); }

# serve_free_port: prints a random port in 20000..32767 that nothing on 127.0.0.1 listens on.
# Below Linux's ephemeral range (32768..60999): a client connection of a
# test running beside this one cannot hold it when the server restarts.
serve_free_port() {
    local p _
    for _ in $(seq 100); do
        p=$((20000 + RANDOM % 12768))
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || break
    done
    echo "$p"
}

# _serve_openapi_start URL: starts the validating relay on URL's address
# and sets _serve_inner to the address the server is to listen on; returns
# 1, saying why once per test, when it cannot.
_serve_openapi_start() {
    _serve_inner=
    [ "${SERVE_OPENAPI:-on}" = off ] && return 1
    local hostport=${1#http://} host port inner nm why= spec t
    hostport=${hostport%%/*}
    host=${hostport%:*}
    port=${hostport##*:}
    host=${host#[}
    host=${host%]}
    spec=$(dirname "$KILN")/openapi.json
    if ! command -v node >/dev/null 2>&1; then
        why="node is not installed (make deps)"
    elif [ ! -f "$spec" ]; then
        why="$spec is absent (make)"
    elif ! nm=$(bash "$_serve_root/tests/openapi/install.sh" 2>"${TMPDIR:-/tmp}/kiln-openapi-npm.$$"); then
        why="the npm packages are missing: $(tail -1 "${TMPDIR:-/tmp}/kiln-openapi-npm.$$")"
    fi
    rm -f "${TMPDIR:-/tmp}/kiln-openapi-npm.$$"
    if [ -z "$why" ]; then
        inner=$(serve_free_port)
        while [ "$inner" = "$port" ]; do inner=$(serve_free_port); done
        SERVE_OPENAPI_OUT=$(mktemp "${TMPDIR:-/tmp}/kiln-openapi.XXXXXX")
        NODE_PATH=$nm node "$_serve_root/tests/openapi/proxy.js" "$host" "$port" "$inner" \
            "$spec" "$SERVE_OPENAPI_OUT" >/dev/null 2>"$SERVE_OPENAPI_OUT.err" &
        SERVE_PROXY_PID=$!
        for t in $(seq 100); do
            [ -f "$SERVE_OPENAPI_OUT.ready" ] && break
            kill -0 "$SERVE_PROXY_PID" 2>/dev/null || break
            sleep 0.05
        done
        if [ ! -f "$SERVE_OPENAPI_OUT.ready" ]; then
            why="the validating relay did not start: $(tail -1 "$SERVE_OPENAPI_OUT.err")"
            kill "$SERVE_PROXY_PID" 2>/dev/null
            wait "$SERVE_PROXY_PID" 2>/dev/null
            rm -f "$SERVE_OPENAPI_OUT" "$SERVE_OPENAPI_OUT.err" "$SERVE_OPENAPI_OUT.ready"
            SERVE_PROXY_PID= SERVE_OPENAPI_OUT=
        fi
    fi
    if [ -n "$why" ]; then
        [ -n "$_serve_openapi_said" ] || echo "skip $_serve_test/openapi: answers not checked against docs/openapi.yaml: $why" >&2
        _serve_openapi_said=1
        return 1
    fi
    case $host in *:*) _serve_inner="[$host]:$inner" ;; *) _serve_inner="$host:$inner" ;; esac
}

# _serve_openapi_stop: stops the relay, if one runs, and prints what it
# found (tests/openapi/report.js).
_serve_openapi_stop() {
    [ -n "$SERVE_PROXY_PID" ] || return 0
    local rc
    kill -TERM "$SERVE_PROXY_PID" 2>/dev/null
    wait "$SERVE_PROXY_PID" 2>/dev/null
    rc=$?
    SERVE_PROXY_PID=
    node "$_serve_root/tests/openapi/report.js" "$SERVE_OPENAPI_OUT" "$_serve_test" >&2
    if [ "$rc" != 0 ] || [ -s "$SERVE_OPENAPI_OUT.err" ]; then
        echo "FAIL $_serve_test/openapi: the validating relay exited with status $rc: $(tail -3 "$SERVE_OPENAPI_OUT.err" | tr '\n' ' ')" >&2
    fi
    rm -f "$SERVE_OPENAPI_OUT" "$SERVE_OPENAPI_OUT.err" "$SERVE_OPENAPI_OUT.ready"
    SERVE_OPENAPI_OUT=
}

# serve_start CFG LOG URL: starts the server (output appended to LOG), sets SERVE_PID, waits up to 10 s for URL/health; if it never answers, stops it and returns 1.
serve_start() {
    local t=${EPOCHREALTIME//[!0-9]/}   # microseconds (bash 5)
    local end=$((t + 10000000))
    _serve_openapi_stop   # a relay left by a server the test ended itself
    if _serve_openapi_start "$3"; then
        "$KILN" serve --config "$1" --listen "$_serve_inner" >>"$2" 2>&1 &
    else
        "$KILN" serve --config "$1" >>"$2" 2>&1 &
    fi
    SERVE_PID=$!
    while :; do
        curl -s -o /dev/null "$3/health" && return 0
        kill -0 "$SERVE_PID" 2>/dev/null || break   # it exited: no use waiting
        t=${EPOCHREALTIME//[!0-9]/}
        [ "$t" -lt "$end" ] || break
        sleep 0.1
    done
    serve_stop KILL
    return 1
}

# serve_stop [SIGNAL]: sends SIGNAL (default TERM) to the server, waits for it, sets SERVE_RC to its exit status, clears SERVE_PID; then stops the relay and prints what it found.
serve_stop() {
    if [ -n "$SERVE_PID" ]; then
        kill -"${1:-TERM}" "$SERVE_PID" 2>/dev/null
        wait "$SERVE_PID" 2>/dev/null
        # shellcheck disable=SC2034  # read by the scripts that source this file
        SERVE_RC=$?
        SERVE_PID=
    fi
    _serve_openapi_stop
    return 0
}
