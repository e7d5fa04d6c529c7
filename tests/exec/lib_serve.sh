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

SERVE_PID=   # the running server's pid; empty when none runs
SERVE_RC=    # the exit status serve_stop saw last

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

# serve_start CFG LOG URL: starts the server (output appended to LOG), sets SERVE_PID, waits up to 10 s for URL/health; if it never answers, stops it and returns 1.
serve_start() {
    local t=${EPOCHREALTIME//[!0-9]/}   # microseconds (bash 5)
    local end=$((t + 10000000))
    "$KILN" serve --config "$1" >>"$2" 2>&1 &
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

# serve_stop [SIGNAL]: sends SIGNAL (default TERM) to the server, waits for it, sets SERVE_RC to its exit status, clears SERVE_PID.
serve_stop() {
    [ -n "$SERVE_PID" ] || return 0
    kill -"${1:-TERM}" "$SERVE_PID" 2>/dev/null
    wait "$SERVE_PID" 2>/dev/null
    # shellcheck disable=SC2034  # read by the scripts that source this file
    SERVE_RC=$?
    SERVE_PID=
}
