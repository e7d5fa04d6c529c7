#!/usr/bin/env bash
# A service's settings (plugins.settings.NAME, SDK ABI 2): api-http's
# `threads` sets the server's thread pool (the process then has exactly
# that many more threads for a larger value), and the configuration is
# refused, with the setting's path, for a value out of range, an unknown
# setting, and a service name no loaded plugin provides.
set -u
cd "$(dirname "$0")/../.." || exit 1
KILN=${KILN:-build/kiln}
case $KILN in /*) ;; *) KILN=$PWD/$KILN ;; esac
. tests/exec/lib_serve.sh
tmp=$(mktemp -d)
trap 'serve_stop; rm -rf "$tmp"' EXIT
status=0
ok() { echo "ok service_settings/$1"; }
fail() { echo "FAIL service_settings/$1: $2"; status=1; }

# cfg FILE PORT SETTINGS-JSON
cfg() {
    cat >"$1" <<JSON
{"listen": "127.0.0.1:$2", "workers": 1,
 "plugins": {"dirs": ["$(serve_plugin_dir)"], "enable": ["ops-vips", "storage-local", "api-http"],
             "settings": $3},
 "jobstore": {"driver": "sqlite", "path": "$tmp/kiln-$2.db"},
 "services": [{"id": 1, "tokens": ["tok-one"], "storage": {"plugin": "local", "root": "$tmp"}}]}
JSON
}

# threads N: the server's thread count with api-http.threads = N
threads() {
    local port
    port=$(serve_free_port)
    cfg "$tmp/t$1.json" "$port" "{\"api-http\": {\"threads\": $1}}"
    if ! serve_start "$tmp/t$1.json" "$tmp/log$1" "http://127.0.0.1:$port"; then
        echo "server did not start: $(tail -2 "$tmp/log$1" | tr '\n' ' ')" >&2
        return 1
    fi
    ls "/proc/$SERVE_PID/task" | wc -l
    serve_stop
}
n3=$(threads 3) && n21=$(threads 21)
if [ -n "${n3:-}" ] && [ -n "${n21:-}" ] && [ $((n21 - n3)) = 18 ]; then
    ok "threads-sets-the-pool"
else
    fail "threads-sets-the-pool" "threads 3: ${n3:-?} threads in the process, 21: ${n21:-?} (expected 18 more)"
fi

# refused PROBLEM SETTINGS-JSON WANT: kiln serve exits non-zero saying WANT
refused() {
    local port got
    port=$(serve_free_port)
    cfg "$tmp/r-$1.json" "$port" "$2"
    got=$(timeout 20 "$KILN" serve --config "$tmp/r-$1.json" 2>&1)
    if [ $? -ne 0 ] && [[ $got == *"$3"* ]]; then
        ok "refuses-$1"
    else
        fail "refuses-$1" "expected an exit with \"$3\", got: $(printf '%s' "$got" | tail -2 | tr '\n' ' ')"
    fi
}
refused fraction '{"api-http": {"threads": 2.5}}' 'plugins.settings.api-http.threads'
refused range '{"api-http": {"threads": 2000}}' 'plugins.settings.api-http.threads'
refused unknown-setting '{"api-http": {"thraeds": 4}}' 'unknown parameter "thraeds"'
refused unknown-service '{"api-htp": {}}' 'no loaded service is named "api-htp" (did you mean "api-http"?)'
refused not-object '{"api-http": 4}' 'plugins.settings.api-http: expected an object of settings'
exit $status
