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
# sets SERVE_OPENAPI=off, and says why. A test that starts servers itself
# (several hosts) puts a relay in front of each with serve_relay URL, then
# starts the server with --listen "$SERVE_LISTEN", and reports with
# serve_relay_stop.

SERVE_PID=   # the running server's pid; empty when none runs
SERVE_RC=    # the exit status serve_stop saw last
SERVE_LISTEN= # serve_relay's: the address its server is to listen on
declare -gA _serve_relays=() # by the port a relay listens on: "PID RECORD"
_serve_main= # the port of serve_start's relay
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
# (after stopping one already there) and sets _serve_port to that port and
# _serve_inner to the address the server is to listen on; returns 1,
# saying why once per test, when it cannot.
_serve_openapi_start() {
    local hostport=${1#http://} host port inner nm why= spec t out pid
    hostport=${hostport%%/*}
    host=${hostport%:*}
    port=${hostport##*:}
    host=${host#[}
    host=${host%]}
    _serve_inner= _serve_port=$port
    _serve_openapi_stop "$port"
    [ "${SERVE_OPENAPI:-on}" = off ] && return 1
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
        out=$(mktemp "${TMPDIR:-/tmp}/kiln-openapi.XXXXXX")
        NODE_PATH=$nm node "$_serve_root/tests/openapi/proxy.js" "$host" "$port" "$inner" \
            "$spec" "$out" >/dev/null 2>"$out.err" &
        pid=$!
        for t in $(seq 100); do
            [ -f "$out.ready" ] && break
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        if [ -f "$out.ready" ]; then
            _serve_relays[$port]="$pid $out"
        else
            why="the validating relay did not start: $(tail -1 "$out.err")"
            kill "$pid" 2>/dev/null
            wait "$pid" 2>/dev/null
            rm -f "$out" "$out.err" "$out.ready"
        fi
    fi
    if [ -n "$why" ]; then
        [ -n "$_serve_openapi_said" ] || echo "skip $_serve_test/openapi: answers not checked against docs/openapi.yaml: $why" >&2
        _serve_openapi_said=1
        return 1
    fi
    case $host in *:*) _serve_inner="[$host]:$inner" ;; *) _serve_inner="$host:$inner" ;; esac
}

# _serve_openapi_stop PORT: stops the relay on PORT, if one runs, and
# prints what it found (tests/openapi/report.js).
_serve_openapi_stop() {
    [ -n "${_serve_relays[$1]:-}" ] || return 0
    local pid=${_serve_relays[$1]%% *} out=${_serve_relays[$1]#* } rc
    unset "_serve_relays[$1]"
    kill -TERM "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    rc=$?
    node "$_serve_root/tests/openapi/report.js" "$out" "$_serve_test" >&2
    if [ "$rc" != 0 ] || [ -s "$out.err" ]; then
        echo "FAIL $_serve_test/openapi: the validating relay exited with status $rc: $(tail -3 "$out.err" | tr '\n' ' ')" >&2
    fi
    rm -f "$out" "$out.err" "$out.ready"
}

# serve_relay URL: puts a validating relay on URL's address for a server
# the test starts itself, and sets SERVE_LISTEN to the address that server
# must listen on (URL's own when no relay could start).
serve_relay() {
    local hostport=${1#http://}
    if _serve_openapi_start "$1"; then
        SERVE_LISTEN=$_serve_inner
    else
        SERVE_LISTEN=${hostport%%/*}
    fi
}

# serve_relay_stop [URL]: stops serve_relay's relay on URL's port, or all of
# them, and prints what each found; call it once their servers are gone.
serve_relay_stop() {
    local hostport=${1:-} p
    if [ $# -gt 0 ]; then
        hostport=${hostport#http://}
        hostport=${hostport%%/*}
        _serve_openapi_stop "${hostport##*:}"
        return 0
    fi
    for p in "${!_serve_relays[@]}"; do
        [ "$p" = "$_serve_main" ] || _serve_openapi_stop "$p"
    done
}

# serve_start CFG LOG URL: starts the server (output appended to LOG), sets SERVE_PID, waits up to 10 s for URL/health; if it never answers, stops it and returns 1.
serve_start() {
    local t=${EPOCHREALTIME//[!0-9]/}   # microseconds (bash 5)
    local end=$((t + 10000000))
    # A relay left by a server the test ended itself.
    [ -z "$_serve_main" ] || _serve_openapi_stop "$_serve_main"
    _serve_main=
    if _serve_openapi_start "$3"; then
        _serve_main=$_serve_port
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
    [ -z "$_serve_main" ] || _serve_openapi_stop "$_serve_main"
    _serve_main=
    return 0
}
