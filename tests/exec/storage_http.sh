#!/usr/bin/env bash
# The "http" storage backend (remote sources) over real HTTP: an origin
# server started here (storage_http_server.py, Python's http.server on
# 127.0.0.1) and a `kiln serve` with network.allow 127.0.0.1/32 and three
# services: 1 allows remote sources (engine defaults), 2 does not, 3 names
# "http" as its own storage with a 1 s timeout, a 2 MB max_size and an
# allow prefix. Checked with curl against the API: a URL source finishes
# with the same pixels as the same file read locally (vipsheader, vips),
# redirects are followed and re-checked, refused addresses answer 400 at
# submission or fail the process when a redirect leads there, 404 fails
# (and with wait_retry_delay is queued again), 403/500, size and time
# limits fail clearly, credentials in URLs stay out of errors, connections
# are reused, and the origin keeps serving. Then the same through
# `kiln run --config`.
set -u
KILN=${KILN:-build/kiln}
. "$(dirname "$0")/lib_serve.sh" # serve_free_port, serve_start, serve_stop
PY=/usr/bin/python3
status=0
ok() { echo "ok storage_http/$1"; }
fail() {
    echo "FAIL storage_http/$1: $2"
    status=1
}
for t in curl jq vips vipsheader "$PY"; do
    if ! command -v "$t" >/dev/null 2>&1; then
        echo "skip storage_http: $t is not installed"
        exit 0
    fi
done
tmp=$(mktemp -d)
origin_pid=
tls_pid=
cleanup() {
    serve_stop
    for p in $origin_pid $tls_pid; do
        kill "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    rm -rf "$tmp"
}
trap cleanup EXIT

# The image: noise, so that a pixel that differs shows.
mkdir -p "$tmp/storage/in"
vips gaussnoise "$tmp/n.v" 400 300 --mean 128 --sigma 50 &&
    vips cast "$tmp/n.v" "$tmp/c.v" uchar &&
    vips bandjoin "$tmp/c.v $tmp/c.v $tmp/c.v" "$tmp/img.png" &&
    cp "$tmp/img.png" "$tmp/storage/in/img.png" ||
    {
        fail setup "cannot make the source image"
        exit 1
    }

"$PY" "$(dirname "$0")/storage_http_server.py" "$tmp/origin.port" "$tmp/img.png" \
    >"$tmp/origin.log" 2>&1 &
origin_pid=$!
for _ in $(seq 50); do
    [ -s "$tmp/origin.port" ] && break
    sleep 0.1
done
[ -s "$tmp/origin.port" ] || {
    fail setup "the origin server did not start: $(tail -3 "$tmp/origin.log")"
    exit 1
}
hp=$(cat "$tmp/origin.port")
origin="http://127.0.0.1:$hp"

port=$(serve_free_port)
plugdir=$(serve_plugin_dir)
cat >"$tmp/cfg.json" <<JSON
{"listen": "127.0.0.1:$port", "workers": 2,
 "plugins": {"dirs": ["$plugdir"],
             "enable": ["ops-vips", "storage-local", "storage-http", "api-http"]},
 "jobstore": {"driver": "sqlite", "path": "$tmp/kiln.db"},
 "rate_limit": {"per_second": 1000, "burst": 1000},
 "network": {"allow": ["127.0.0.1/32"]},
 "services": [
   {"id": 1, "tokens": ["tok-one"], "remote_sources": true,
    "storage": {"plugin": "local", "root": "$tmp/storage"}},
   {"id": 2, "tokens": ["tok-two"],
    "storage": {"plugin": "local", "root": "$tmp/storage"}},
   {"id": 3, "tokens": ["tok-three"], "remote_sources": true,
    "storage": {"plugin": "http", "allow": "$origin/ok/", "timeout": 1,
                "max_size": 2000000}}]}
JSON
url="http://127.0.0.1:$port"
serve_start "$tmp/cfg.json" "$tmp/log" "$url" || {
    fail setup "kiln serve did not start: $(tail -3 "$tmp/log")"
    exit 1
}

# submit SERVICE SOURCE DEST [EXTRA-FIELDS]: prints "CODE BODY".
submit() {
    local body code
    body=$(printf '{"service_id": %s, "source": "%s", %s "jobs": [{"destination": "%s", "transformations": [{"type": "resize", "width": 100}]}]}' \
        "$1" "$2" "${4:-}" "$3")
    code=$(curl -s -o "$tmp/body" -w '%{http_code}' -H "Authorization: Bearer tok-$(tok "$1")" \
        -H 'Content-Type: application/json' --data-binary "$body" "$url/request")
    printf '%s %s' "$code" "$(cat "$tmp/body")"
}
tok() { case $1 in 1) echo one ;; 2) echo two ;; *) echo three ;; esac; }
# start NAME SERVICE SOURCE DEST [EXTRA]: submits, sets PID[NAME] and
# SVC[NAME].
declare -A PID SVC
start() {
    local got
    SVC[$1]=$2
    got=$(submit "$2" "$3" "$4" "${5:-}")
    PID[$1]=$(printf '%s' "${got#* }" | jq -r '.process_id // empty' 2>/dev/null)
    [ "${got%% *}" = 200 ] && [ -n "${PID[$1]}" ] || fail "$1" "submission answered $got"
}
# poll NAME: the process's status body into $tmp/NAME.json.
poll() {
    curl -s -H "Authorization: Bearer tok-$(tok "${SVC[$1]}")" \
        "$url/status/${PID[$1]}" >"$tmp/$1.json"
}
# final NAME [STATUS...]: waits (15 s at most) until the process is in
# one of the statuses (default FINISHED or FAILED); leaves the body in
# $tmp/NAME.json and prints its status.
final() {
    local name=$1 st=
    shift
    local want=" ${*:-FINISHED FAILED} "
    [ -n "${PID[$name]:-}" ] || return 1
    for _ in $(seq 150); do
        poll "$name"
        st=$(jq -r '.status' "$tmp/$name.json" 2>/dev/null)
        case "$want" in *" $st "*) break ;; esac
        sleep 0.1
    done
    printf '%s' "$st"
}
# expect_error NAME TEXT: the process FAILED and its error contains TEXT.
expect_error() {
    local st err
    st=$(final "$1")
    err=$(jq -r '.error // ""' "$tmp/$1.json" 2>/dev/null)
    if [ "$st" = FAILED ] && [[ "$err" == *"$2"* ]]; then
        ok "$1"
    else
        fail "$1" "status $st, error: $err (expected one containing: $2)"
    fi
}
# same_pixels A B: same size and bands, and no pixel differs.
same_pixels() {
    [ "$(vipsheader "$1" 2>/dev/null | cut -d: -f2-)" = "$(vipsheader "$2" 2>/dev/null | cut -d: -f2-)" ] &&
        vips subtract "$1" "$2" "$tmp/diff.v" 2>/dev/null &&
        vips abs "$tmp/diff.v" "$tmp/absdiff.v" 2>/dev/null &&
        vips max "$tmp/absdiff.v" 2>/dev/null | awk '{ exit !($1 == 0) }'
}
stats() { curl -s "$origin/stats" | jq -r "$1"; }

# --- A URL source finishes, with the pixels of the same file read locally.
start local 1 /in/img.png /out/local.png
final local >/dev/null
r0=$(stats .requests)
c0=$(stats .connections)
start url 1 "$origin/ok/img.png" /out/remote.png
st=$(final url)
if [ "$st" = FINISHED ] && [ "$(vipsheader -f width "$tmp/storage/out/remote.png" 2>/dev/null)" = 100 ] &&
    same_pixels "$tmp/storage/out/remote.png" "$tmp/storage/out/local.png"; then
    ok url-finishes-same-pixels
else
    fail url-finishes-same-pixels "status $st: $(jq -c . "$tmp/url.json")"
fi
# Two redirects (307 to /ok/redirect, 302 to the relative "img.png").
start redirect 1 "$origin/ok/redirect-twice" /out/redirected.png
st=$(final redirect)
if [ "$st" = FINISHED ] && same_pixels "$tmp/storage/out/redirected.png" "$tmp/storage/out/local.png"; then
    ok redirects-followed
else
    fail redirects-followed "status $st: $(jq -c . "$tmp/redirect.json")"
fi
# Connection reuse: 4 GETs (img.png; redirect-twice, redirect, img.png)
# and the two /stats calls of this script in between, over at most one
# new connection of kiln's besides the script's own.
r1=$(stats .requests)
c1=$(stats .connections)
dr=$((r1 - r0 - 2))
dc=$((c1 - c0 - 2))
if [ "$dr" = 4 ] && [ "$dc" -le 1 ]; then
    ok connections-reused
else
    fail connections-reused "$dr requests over $dc new connections"
fi

# --- Refused at submission: 400 with path "source".
expect400() { # NAME SERVICE SOURCE WANT-TEXT
    local got
    got=$(submit "$2" "$3" /out/x.png)
    if [ "${got%% *}" = 400 ] &&
        printf '%s' "${got#* }" | jq -e --arg w "$4" \
            '[.errors[] | select(.path == "source" and (.message | contains($w)))] | length == 1' >/dev/null; then
        ok "$1"
    else
        fail "$1" "$got"
    fi
}
expect400 service-without-remote-sources-400 2 "$origin/ok/img.png" "does not allow remote sources"
expect400 metadata-address-400 1 "http://169.254.169.254/latest/meta-data/" "link-local"
expect400 private-address-400 1 "http://10.1.2.3/img.png" "private"
expect400 loopback-outside-allow-400 1 "http://127.0.0.2:$hp/ok/img.png" "loopback"

# --- Failures while fetching, submitted together and checked in turn.
start redirect-metadata 1 "$origin/ok/redirect-metadata" /out/f1.png
start redirect-loopback 1 "$origin/ok/redirect-lo2" /out/f2.png
start not-found 1 "$origin/ok/missing" /out/f3.png
start forbidden 1 "$origin/ok/forbidden" /out/f4.png
start server-error 1 "$origin/ok/error" /out/f5.png
start redirect-loop 1 "$origin/ok/loop" /out/f6.png
start declared-too-big 1 "$origin/ok/huge-declared" /out/f7.png
start empty-body 1 "$origin/ok/empty" /out/f8.png
start no-credentials 1 "http://user:hunter2@127.0.0.1:$hp/ok/missing?token=s3cr3t" /out/f9.png
start not-found-retry 1 "$origin/ok/missing" /out/f10.png '"wait_retry_delay": 60,'
start streamed-too-big 3 "$origin/ok/huge-stream" /out/f11.png
t0=${EPOCHREALTIME/./}
start timeout-head 3 "$origin/ok/slow-head" /out/f12.png
start timeout-body 3 "$origin/ok/slow-body" /out/f13.png
start allow-prefix 3 "$origin/private/img.png" /out/f14.png
start allow-prefix-redirect 3 "$origin/ok/redirect-private" /out/f15.png
start read-only 3 "$origin/ok/img.png" /out/f16.png
start allow-prefix-dotdot 3 "$origin/ok/../private/img.png" /out/f17.png

expect_error redirect-metadata "\"$origin/ok/redirect-metadata\" redirects to \"http://169.254.169.254/latest/meta-data/\", which is refused: source host \"169.254.169.254\" resolves to 169.254.169.254, a link-local address"
expect_error redirect-loopback "redirects to \"http://127.0.0.2:$hp/ok/img.png\", which is refused: source host \"127.0.0.2\" resolves to 127.0.0.2, a loopback address"
expect_error not-found "\"$origin/ok/missing\" not found (HTTP 404)"
expect_error forbidden "\"$origin/ok/forbidden\" refused access (HTTP 403"
expect_error server-error "\"$origin/ok/error\" answered HTTP 500 (expected 200)"
expect_error redirect-loop "\"$origin/ok/loop\" redirects more than 5 times (setting max_redirects)"
expect_error declared-too-big "\"$origin/ok/huge-declared\" is 200000000 bytes, above max_size 104857600"
expect_error empty-body "\"$origin/ok/empty\" answered HTTP 200 with an empty body"
st=$(final no-credentials)
err=$(jq -r '.error // ""' "$tmp/no-credentials.json")
if [ "$st" = FAILED ] && [[ "$err" == *"\"$origin/ok/missing\" not found (HTTP 404)"* ]] &&
    [[ "$err" != *hunter2* ]] && [[ "$err" != *s3cr3t* ]] && [[ "$err" != *user:* ]]; then
    ok no-credentials-in-errors
else
    fail no-credentials-in-errors "status $st, error: $err"
fi
# wait_retry_delay: the missing source queues the process again, with the
# error, and the attempt count (POST /retry) stays 1.
got=
for _ in $(seq 100); do
    poll not-found-retry
    got=$(jq -r '[.status, .attempt, (.error // "")] | @tsv' "$tmp/not-found-retry.json")
    case "$got" in QUEUED$'\t'1$'\t'*"not found (HTTP 404)"*) break ;; esac
    sleep 0.1
done
case "$got" in
QUEUED$'\t'1$'\t'*"\"$origin/ok/missing\" not found (HTTP 404)"*) ok not-found-requeued ;;
*) fail not-found-requeued "$got" ;;
esac
expect_error streamed-too-big "\"$origin/ok/huge-stream\" sent more than max_size 2000000 bytes"
expect_error timeout-head "\"$origin/ok/slow-head\" timed out after 1 s (setting timeout)"
expect_error timeout-body "\"$origin/ok/slow-body\" timed out after 1 s (setting timeout)"
t1=${EPOCHREALTIME/./}
# Both slow fetches gave up after their 1 s, not the origin's 20 s (the
# bound is loose: the machine may be busy; it only tells 1 s from 20 s).
if [ $(((t1 - t0) / 1000)) -lt 15000 ]; then
    ok timeouts-prompt
else
    fail timeouts-prompt "the slow fetches took $(((t1 - t0) / 1000)) ms"
fi
expect_error allow-prefix "\"$origin/private/img.png\" is not under a prefix of the allow setting (\"$origin/ok/\")"
expect_error allow-prefix-redirect "\"$origin/ok/redirect-private\" redirects to \"$origin/private/img.png\", which is not under a prefix of the allow setting"
# The prefix is compared after libcurl removed the dot segments.
expect_error allow-prefix-dotdot "\"$origin/ok/../private/img.png\" is not under a prefix of the allow setting"
st=$(final read-only)
err=$(jq -r '.jobs[0].error // ""' "$tmp/read-only.json")
[ "$st" = FAILED ] && [[ "$err" == *'storage http is read-only: cannot write "/out/f16.png"'* ]] &&
    ok read-only || fail read-only "status $st, job error: $err"

# --- HTTPS: certificates are verified (a self-signed origin is refused).
if command -v openssl >/dev/null 2>&1 &&
    openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 \
        -keyout "$tmp/key.pem" -out "$tmp/cert.pem" >/dev/null 2>&1; then
    "$PY" "$(dirname "$0")/storage_http_server.py" "$tmp/tls.port" "$tmp/img.png" \
        "$tmp/cert.pem" "$tmp/key.pem" >"$tmp/tls.log" 2>&1 &
    tls_pid=$!
    for _ in $(seq 50); do
        [ -s "$tmp/tls.port" ] && break
        sleep 0.1
    done
    start self-signed-https 1 "https://127.0.0.1:$(cat "$tmp/tls.port" 2>/dev/null)/ok/img.png" /out/tls.png
    expect_error self-signed-https "\"https://127.0.0.1:$(cat "$tmp/tls.port" 2>/dev/null)/ok/img.png\": SSL certificate problem"
    kill "$tls_pid" 2>/dev/null
    wait "$tls_pid" 2>/dev/null
    tls_pid=
else
    echo "skip storage_http/self-signed-https: openssl cannot make a certificate"
fi

# --- Both servers still serve.
curl -s -o "$tmp/again.png" "$origin/ok/img.png" && cmp -s "$tmp/again.png" "$tmp/img.png" &&
    ok origin-still-serving || fail origin-still-serving "the origin no longer answers"
start after 1 "$origin/ok/redirect" /out/after.png
[ "$(final after)" = FINISHED ] && ok kiln-still-fetching ||
    fail kiln-still-fetching "$(jq -c . "$tmp/after.json")"

serve_stop
grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' "$tmp/log" &&
    fail serve-sanitizer "$(grep -m1 -E 'AddressSanitizer|LeakSanitizer|runtime error:' "$tmp/log")"
[ "$SERVE_RC" = 0 ] && ok serve-clean-exit || fail serve-clean-exit "exit $SERVE_RC: $(tail -3 "$tmp/log")"

# --- The shipped example loads with this plugin.
if out=$(KILN_TOKEN=t "$KILN" plugins --config "$(dirname "$0")/../../examples/config/http.json" 2>&1) &&
    [[ "$out" == *storage-http* ]]; then
    ok example-config-loads
else
    fail example-config-loads "$out"
fi

# --- kiln run --config: the same backend outside the server.
cat >"$tmp/run.json" <<JSON
{"plugins": {"dirs": ["$plugdir"], "enable": ["ops-vips", "storage-local", "storage-http"]},
 "network": {"allow": ["127.0.0.1/32"]},
 "services": [{"id": 1, "tokens": ["t"], "remote_sources": true,
               "storage": {"plugin": "local", "root": "$tmp/storage"}}]}
JSON
printf '{"service_id": 1, "source": "%s/ok/redirect-abs", "jobs": [{"destination": "/out/run.png", "transformations": [{"type": "resize", "width": 100}]}]}\n' \
    "$origin" >"$tmp/req.json"
"$KILN" run --config "$tmp/run.json" "$tmp/req.json" >"$tmp/run.out" 2>"$tmp/run.err"
rc=$?
if [ "$rc" = 0 ] && [ "$(jq -r .status "$tmp/run.out")" = FINISHED ] &&
    same_pixels "$tmp/storage/out/run.png" "$tmp/storage/out/local.png"; then
    ok kiln-run
else
    fail kiln-run "exit $rc: $(head -c 400 "$tmp/run.out") $(tail -3 "$tmp/run.err")"
fi
grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' "$tmp/run.err" &&
    fail run-sanitizer "$(grep -m1 -E 'AddressSanitizer|LeakSanitizer|runtime error:' "$tmp/run.err")"
# An unreachable (refused) URL through kiln run fails the same way.
printf '{"service_id": 1, "source": "http://10.0.0.1/a.png", "jobs": [{"destination": "/out/no.png"}]}\n' >"$tmp/req2.json"
got=$("$KILN" run --config "$tmp/run.json" "$tmp/req2.json" 2>/dev/null | jq -r .error)
[[ "$got" == *'private address'* ]] && ok kiln-run-refused || fail kiln-run-refused "$got"
# Per-service settings for URL sources: remote_sources as an object.
cat >"$tmp/run2.json" <<JSON
{"plugins": {"dirs": ["$plugdir"], "enable": ["ops-vips", "storage-local", "storage-http"]},
 "network": {"allow": ["127.0.0.1/32"]},
 "services": [{"id": 1, "tokens": ["t"], "remote_sources": {"max_size": 1000},
               "storage": {"plugin": "local", "root": "$tmp/storage"}}]}
JSON
got=$("$KILN" run --config "$tmp/run2.json" "$tmp/req.json" 2>/dev/null | jq -r .error)
[[ "$got" == *'max_size 1000'* ]] && ok remote-sources-settings || fail remote-sources-settings "$got"
exit $status
