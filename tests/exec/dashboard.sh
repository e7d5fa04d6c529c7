#!/usr/bin/env bash
# The operator dashboard (docs/dashboard.md) against a real `kiln serve`:
#  - with curl: GET /dashboard needs no token, each file has its content
#    type and the security headers (CSP with no inline script or style,
#    nosniff, no referrer, no-store), the served bytes are the files in
#    plugins/api-http/dashboard/, HEAD works, other methods are 405 and
#    other names under /dashboard 404; turned off
#    (plugins.settings.api-http.dashboard false), every request under
#    /dashboard is a 404 and the API is unchanged;
#  - in Debian's chromium, headless, driven by playwright-core
#    (tests/exec/dashboard_browser.js), on a desktop window and on a
#    390x844 phone: paste the token, watch a process appear and finish,
#    open it, retry it, read a failed one's error, filter, cancel, the
#    24- and 30-point charts, forget the token; nothing sticks out
#    sideways on the phone.
# Screenshots are kept in BUILD/test-artifacts/dashboard/ (BUILD is the
# folder of $KILN). Skipped, saying why, without node or chromium.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"       # ok, fail, skip, finish; makes $KILN absolute
. "$here/lib_serve.sh" # serve_free_port, serve_start, serve_stop
T=dashboard
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}

require_tools curl vips
if [ ! -x "$KILN" ]; then
    fail "$T/setup" "kiln binary $KILN not found (run make)"
    finish
fi
tmp=$(mktemp -d)
trap 'serve_stop; rm -rf "$tmp"' EXIT
mkdir -p "$tmp/storage/in"
vips black "$tmp/b.v" 64 48 --bands 3 && vips copy "$tmp/b.v" "$tmp/storage/in/a.png" ||
    { fail "$T/setup" "cannot make the source"; finish; }
port=$(serve_free_port)
# One token for two services: the dashboard must find each process's
# service for /retry and /cancel.
cat >"$tmp/cfg.json" <<JSON
{"listen": "127.0.0.1:$port", "workers": 2,
 "plugins": {"dirs": ["$(serve_plugin_dir)"], "enable": ["ops-vips", "storage-local", "api-http"]},
 "jobstore": {"driver": "sqlite", "path": "$tmp/kiln.db"},
 "rate_limit": {"per_second": 1000, "burst": 1000},
 "services": [
   {"id": 1, "tokens": ["tok-dash"], "storage": {"plugin": "local", "root": "$tmp/storage"}},
   {"id": 2, "tokens": ["tok-dash"], "storage": {"plugin": "local", "root": "$tmp/storage"}}]}
JSON
url="http://127.0.0.1:$port"

# -------------------------------------------------------------- turned off
# plugins.settings.api-http.dashboard false: every request under
# /dashboard is a 404, any method, token or not; the API is unchanged.
python3 - "$tmp/cfg.json" "$tmp/cfg-off.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["plugins"]["settings"] = {"api-http": {"dashboard": False}}
json.dump(c, open(sys.argv[2], "w"))
PY
if serve_start "$tmp/cfg-off.json" "$tmp/log-off" "$url"; then
    why=""
    for req in "GET /dashboard" "GET /dashboard/" "GET /dashboard/app.js" "HEAD /dashboard" \
        "POST /dashboard" "GET /dashboard/nope.js"; do
        set -- $req
        if [ "$1" = HEAD ]; then
            got=$(curl -s -I -o /dev/null -w '%{http_code}' "$url$2")
        else
            got=$(curl -s -o "$tmp/body" -w '%{http_code}' -X "$1" -H 'Authorization: Bearer tok-dash' "$url$2")
            [ "$(cat "$tmp/body")" = '{"message":"not found"}' ] || got="$got $(head -c 80 "$tmp/body")"
        fi
        [ "$got" = 404 ] || why="$why; $req: $got"
    done
    got=$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer tok-dash' "$url/processes")
    [ "$got" = 200 ] || why="$why; GET /processes: $got"
    grep -q 'dashboard off' "$tmp/log-off" || why="$why; the start-up line does not say 'dashboard off'"
    if [ -z "$why" ]; then ok "$T/off-404"; else fail "$T/off-404" "${why#; }"; fi
    serve_stop
else
    fail "$T/off-404" "the server did not start: $(tail -3 "$tmp/log-off")"
fi

serve_start "$tmp/cfg.json" "$tmp/log" "$url" ||
    { fail "$T/setup" "the server did not start: $(tail -3 "$tmp/log")"; finish; }

# ------------------------------------------------------------- with curl
csp="default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
# header NAME FILE: the value of header NAME in the headers curl wrote
header() { sed -n "s/^$1: *//Ip" "$2" | tr -d '\r' | head -1; }
src=$here/../../plugins/api-http/dashboard
for f in /dashboard:index.html:text/html /dashboard/app.js:app.js:text/javascript \
    /dashboard/app.css:app.css:text/css /dashboard/favicon.svg:favicon.svg:image/svg+xml; do
    IFS=: read -r path file type <<<"$f"
    code=$(curl -s -D "$tmp/h" -o "$tmp/body" -w '%{http_code}' "$url$path")
    why=""
    [ "$code" = 200 ] || why="status $code"
    case $(header Content-Type "$tmp/h") in "$type"*) ;; *) why="$why; Content-Type $(header Content-Type "$tmp/h")" ;; esac
    [ "$(header Content-Security-Policy "$tmp/h")" = "$csp" ] || why="$why; CSP $(header Content-Security-Policy "$tmp/h")"
    [ "$(header X-Content-Type-Options "$tmp/h")" = nosniff ] || why="$why; no nosniff"
    [ "$(header Referrer-Policy "$tmp/h")" = no-referrer ] || why="$why; Referrer-Policy $(header Referrer-Policy "$tmp/h")"
    [ "$(header Cache-Control "$tmp/h")" = no-store ] || why="$why; Cache-Control $(header Cache-Control "$tmp/h")"
    cmp -s "$tmp/body" "$src/$file" || why="$why; the body is not $file"
    if [ -z "$why" ]; then ok "$T/get-$file"; else fail "$T/get-$file" "${why#; }"; fi
done
# No inline script or style in the page: the CSP would block it.
if grep -Eq '<script>|<script [^>]*>[^<]|<style|[[:space:]](style|on[a-z]+)=' "$src/index.html"; then
    fail "$T/no-inline" "index.html has inline script, style or an event attribute"
else
    ok "$T/no-inline"
fi
# X-Request-Id like every answer of the server: the client's own, or one made up.
curl -s -D "$tmp/h" -o /dev/null -H 'X-Request-Id: dash-check.1' "$url/dashboard/app.css"
curl -s -D "$tmp/h2" -o /dev/null "$url/dashboard/nope"
if [ "$(header X-Request-Id "$tmp/h")" = dash-check.1 ] && [ -n "$(header X-Request-Id "$tmp/h2")" ]; then
    ok "$T/request-id"
else
    fail "$T/request-id" "X-Request-Id: '$(header X-Request-Id "$tmp/h")' and '$(header X-Request-Id "$tmp/h2")'"
fi
got=$(curl -s -I -o /dev/null -w '%{http_code} %{content_type}' "$url/dashboard")
[ "$got" = "200 text/html; charset=utf-8" ] && ok "$T/head" || fail "$T/head" "got $got"
got=$(curl -s -D "$tmp/h" -o "$tmp/body" -w '%{http_code}' -X POST -d '{}' "$url/dashboard")
if [ "$got" = 405 ] && [ "$(header Allow "$tmp/h")" = "GET, HEAD" ] &&
    [ "$(header Content-Security-Policy "$tmp/h")" = "$csp" ]; then
    ok "$T/post-405"
else
    fail "$T/post-405" "got $got, Allow: $(header Allow "$tmp/h")"
fi
for p in /dashboard/nope.js /dashboard/app /dashboard/dashboard_assets.c /dashboard/x/app.js; do
    got=$(curl -s -o /dev/null -w '%{http_code}' "$url$p")
    [ "$got" = 404 ] && ok "$T/404$p" || fail "$T/404$p" "got $got"
done
# Beside it the API still asks for a token.
got=$(curl -s -o /dev/null -w '%{http_code}' "$url/dashboardx")
[ "$got" = 401 ] && ok "$T/api-beside" || fail "$T/api-beside" "GET /dashboardx: $got"
# Kept-alive: the page's three files come over one connection.
n=$(curl -sv -o /dev/null -o /dev/null -o /dev/null "$url/dashboard" "$url/dashboard/app.css" \
    "$url/dashboard/app.js" 2>&1 | grep -c 'Re-using existing connection')
[ "$n" = 2 ] && ok "$T/keep-alive" || fail "$T/keep-alive" "$n of 2 requests reused the connection"

# ------------------------------------------------------------ in chromium
if ! command -v node >/dev/null 2>&1; then
    skip "$T/browser" "node is not installed (Debian package nodejs): the dashboard was not tried in a browser"
    finish
fi
if [ ! -x "$CHROMIUM" ]; then
    skip "$T/browser" "$CHROMIUM is not installed (Debian package chromium): the dashboard was not tried in a browser"
    finish
fi
NM=$(bash "$here/../browser/install.sh" 2>"$tmp/npm.err") || {
    skip "$T/browser" "cannot install playwright-core: $(tail -n 1 "$tmp/npm.err")"
    finish
}
art=$(dirname "$KILN")/test-artifacts/dashboard
rm -rf "$art"
mkdir -p "$art"
NODE_PATH=$NM CHROMIUM=$CHROMIUM timeout 600 node "$here/dashboard_browser.js" "$url" tok-dash "$art" \
    >"$tmp/browser.out" 2>&1
rc=$?
cat "$tmp/browser.out"
if [ "$rc" != 0 ] && ! grep -q '^FAIL' "$tmp/browser.out"; then
    fail "$T/browser" "the browser script exited with status $rc"
fi
grep '^FAIL' "$tmp/browser.out" >/dev/null && _fails=$((_fails + 1))
echo "screenshots: $art"
serve_stop
[ "$SERVE_RC" = 0 ] && ok "$T/shutdown" || fail "$T/shutdown" "kiln serve exited with status $SERVE_RC: $(tail -3 "$tmp/log")"
finish
