#!/usr/bin/env bash
# Operators' metrics (docs/api.md, "Metrics"): through a real `kiln serve`
# with metrics.listen set,
#  - GET /metrics on the metrics address answers without a token, and
#    only that (another path there is a 404, another method a 405); the
#    API's /metrics still needs one;
#  - kiln_http_requests_total counts the calls made, by route template
#    and status; the duration histogram's count equals them;
#  - kiln_processes_ended_total counts each process by service and
#    outcome; kiln_build_info carries the version; kiln_processes_running
#    is 0 when idle;
#  - promtool (when installed) accepts the whole text;
#  - GET /health gives version, uptime and the store's state.
set -u
cd "$(dirname "$0")/../.." || exit 1
KILN=${KILN:-build/kiln}
case $KILN in /*) ;; *) KILN=$PWD/$KILN ;; esac
. tests/exec/lib_serve.sh
T=metrics
for t in curl vips; do
    if ! command -v "$t" >/dev/null; then
        echo "skip $T: $t is not installed (make deps)"
        exit 0
    fi
done
tmp=$(mktemp -d)
trap 'serve_stop KILL; rm -rf "$tmp"' EXIT
status=0
ok() { echo "ok $T/$1"; }
fail() {
    echo "FAIL $T/$1: $2"
    status=1
}
mkdir -p "$tmp/storage/in"
vips black "$tmp/b.v" 32 24 --bands 3 && vips copy "$tmp/b.v" "$tmp/storage/in/a.png" || {
    fail setup "cannot make the source"
    exit 1
}
port=$(serve_free_port)
mport=$(serve_free_port)
while [ "$mport" = "$port" ]; do mport=$(serve_free_port); done
cat >"$tmp/cfg.json" <<JSON
{"listen": "127.0.0.1:$port", "workers": 1,
 "metrics": {"listen": "127.0.0.1:$mport"},
 "plugins": {"dirs": ["$(serve_plugin_dir)"], "enable": ["ops-vips", "storage-local", "api-http"]},
 "jobstore": {"driver": "sqlite", "path": "$tmp/kiln.db"},
 "services": [{"id": 7, "tokens": ["tok7"], "storage": {"plugin": "local", "root": "$tmp/storage"}}]}
JSON
url="http://127.0.0.1:$port"
murl="http://127.0.0.1:$mport"
if ! serve_start "$tmp/cfg.json" "$tmp/log" "$url"; then
    fail start "kiln serve did not start: $(tail -3 "$tmp/log")"
    exit 1
fi
A='Authorization: Bearer tok7'
ids=()
for src in a.png a.png missing.png; do
    ids+=("$(curl -s -H "$A" --data-binary \
        "{\"service_id\": 7, \"source\": \"/in/$src\", \"jobs\": [{\"destination\": \"/out/$RANDOM.png\", \"transformations\": [{\"type\": \"resize\", \"width\": 8}]}]}" \
        "$url/request" | sed -n 's/.*"process_id":"\([^"]*\)".*/\1/p')")
done
polls=0
for id in "${ids[@]}"; do
    for _ in $(seq 100); do
        polls=$((polls + 1))
        curl -s -H "$A" "$url/status/$id" | grep -qE '"status":"(FINISHED|FAILED)"' && break
        sleep 0.05
    done
done
curl -s -o /dev/null "$url/status/x"            # 401
curl -s -o /dev/null -H "$A" "$url/nowhere"     # 404
curl -s -o /dev/null -X DELETE "$url/retry"      # 405, counted by its route
code=$(curl -s -o /dev/null -w '%{http_code}' "$url/metrics")
[ "$code" = 401 ] && ok api-metrics-needs-a-token || fail api-metrics-needs-a-token "HTTP $code"
code=$(curl -s -o /dev/null -w '%{http_code}' "$murl/status/x")
[ "$code" = 404 ] && ok metrics-address-answers-only-metrics || fail metrics-address-answers-only-metrics "HTTP $code"
allow=$(curl -s -o /dev/null -X POST -D - "$murl/metrics" | tr -d '\r' | sed -n 's/^Allow: //Ip')
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$murl/metrics")
[ "$code" = 405 ] && [ "$allow" = GET ] && ok metrics-address-post-405 ||
    fail metrics-address-post-405 "HTTP $code, Allow '$allow'"
m=$(curl -s -w '\n%{http_code}' "$murl/metrics")
code=${m##*$'\n'}
m=${m%$'\n'*}
[ "$code" = 200 ] && ok metrics-without-a-token || fail metrics-without-a-token "HTTP $code"
val() { printf '%s\n' "$m" | awk -v k="$1" '$1 == k { print $2 }'; }
check() { # NAME METRIC WANT
    local got
    got=$(val "$2")
    [ "$got" = "$3" ] && ok "$1" || fail "$1" "$2 is '$got', expected $3"
}
check requests-created 'kiln_http_requests_total{route="/request",status="200"}' 3
check requests-polled 'kiln_http_requests_total{route="/status/{id}",status="200"}' "$polls"
check requests-401 'kiln_http_requests_total{route="/status/{id}",status="401"}' 1
check requests-404 'kiln_http_requests_total{route="(unknown)",status="404"}' 1
check requests-405 'kiln_http_requests_total{route="/retry",status="405"}' 1
check duration-count 'kiln_http_request_duration_seconds_count{route="/request"}' 3
check ended-finished 'kiln_processes_ended_total{service="7",outcome="finished"}' 2
check ended-failed 'kiln_processes_ended_total{service="7",outcome="failed"}' 1
check running-idle 'kiln_processes_running' 0
version=$("$KILN" version 2>/dev/null | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -1)
check build-info "kiln_build_info{version=\"$version\"}" 1
if command -v promtool >/dev/null; then
    out=$(printf '%s\n' "$m" | promtool check metrics 2>&1)
    [ $? = 0 ] && ok promtool || fail promtool "$out"
else
    echo "skip $T/promtool: promtool is not installed"
fi
h=$(curl -s "$url/health")
case $h in
*'"message":"ok"'*'"version":"'"$version"'"'*'"uptime_s":'*'"store":"ok"'*) ok health-body ;;
*) fail health-body "$h" ;;
esac
serve_stop
exit $status
