#!/usr/bin/env bash
# The ftp storage backend against real servers: pyftpdlib (Debian
# python3-pyftpdlib, tests/exec/storage_ftp_server.py) on 127.0.0.1, plain
# FTP, explicit FTPS (AUTH TLS) and implicit FTPS with a certificate made
# here by the openssl CLI. Sources are put in place and kiln's outputs read
# back with Python's ftplib (tests/exec/storage_ftp_client.py), and the
# outputs compared byte for byte with the same requests on local storage.
# Covered: round trip in six formats (a TIFF output held whole, a large
# PNG streamed) into directories that do not exist yet; PNG and tiled TIFF
# sources (seekable streamed reads); max_file_size from SIZE; a missing
# source and a missing directory (not found, host and path named); a wrong
# password (nothing written); a read-only directory; a server that never
# answers (timeout); fail_on_conversion_error (no file, no temporary);
# ".." refused; one login for many requests; FTPS explicit and implicit;
# an untrusted certificate; replacing a file on a server whose RNTO will
# not overwrite; examples/config/ftp.json; the passwords never printed.
cd "$(dirname "$0")/../.." || exit 1
. tests/exec/lib.sh

PY=/usr/bin/python3
if [ ! -x "$PY" ] || ! "$PY" -c 'import pyftpdlib' 2>/dev/null; then
    skip "$T_NAME" "$PY with pyftpdlib is not installed (Debian python3-pyftpdlib; make deps)"
    exit 0
fi
if ! "$PY" -c 'import OpenSSL' 2>/dev/null; then
    skip "$T_NAME" "$PY lacks pyOpenSSL, which pyftpdlib's TLS needs (python3-openssl)"
    exit 0
fi
require_tools openssl cmp
exec_setup
PLUGINS=$(cd "${KILN_PLUGIN_DIR:-$(dirname "$KILN")/plugins}" 2>/dev/null && pwd)
if [ ! -f "$PLUGINS/storage-ftp.so" ]; then
    fail "$T_NAME/setup" "$PLUGINS/storage-ftp.so not built"
    finish
fi

USER_NAME=kiln
PASS='pw-Zq7!x9#secret'
TLS_PASS='tls-Pw5%only'
BAD_PASS='wrong-Pw3$guess'

# ---------------------------------------------------------------- servers
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1 -keyout "$WORK/key.pem" \
    -out "$WORK/ca.pem" 2>/dev/null || { fail "$T_NAME/setup" "openssl cannot make a certificate"; finish; }
cat "$WORK/ca.pem" "$WORK/key.pem" >"$WORK/server.pem"

PIDS=()
stop_servers() {
    local p
    [ -n "${SERVE_PID:-}" ] && serve_stop KILL
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
    _cleanup
}
trap stop_servers EXIT

# start_server NAME PASSWORD [server options]: home $WORK/NAME, port in
# PORT_<NAME>, log $WORK/NAME.log
start_server() {
    local name=$1 pw=$2
    shift 2
    mkdir -p "$WORK/$name"
    "$PY" tests/exec/storage_ftp_server.py --home "$WORK/$name" --user "$USER_NAME" \
        --password "$pw" --port-file "$WORK/$name.port" --log "$WORK/$name.log" "$@" \
        2>"$WORK/$name.stderr" &
    PIDS+=($!)
}
start_server plain "$PASS" --read-only kiln/ro
start_server explicit "$TLS_PASS" --cert "$WORK/server.pem"
start_server implicit "$TLS_PASS" --cert "$WORK/server.pem" --implicit --refuse-replace
start_server silent x --silent
for name in plain explicit implicit silent; do
    for _ in $(seq 100); do [ -s "$WORK/$name.port" ] && break; sleep 0.05; done
    if [ ! -s "$WORK/$name.port" ]; then
        fail "$T_NAME/setup" "$name server did not start: $(tail -n 3 "$WORK/$name.stderr")"
        finish
    fi
    printf -v "PORT_$name" '%s' "$(cat "$WORK/$name.port")"
done
ok "$T_NAME/servers-started"

client() { "$PY" tests/exec/storage_ftp_client.py "$@"; }
plain() { client 127.0.0.1 "$PORT_plain" "$USER_NAME" "$PASS" "$@"; }
explicit() { client --tls --cafile "$WORK/ca.pem" 127.0.0.1 "$PORT_explicit" "$USER_NAME" "$TLS_PASS" "$@"; }
implicit() { client --implicit --cafile "$WORK/ca.pem" 127.0.0.1 "$PORT_implicit" "$USER_NAME" "$TLS_PASS" "$@"; }

# ---------------------------------------------------------------- config
# Service 1: plain FTP; 2: local storage (the reference); 3: explicit
# FTPS trusting the test CA; 4: a wrong password; 5: implicit FTPS without
# verification; 6: explicit FTPS that does not trust the test CA; 7: a
# server that never answers, with a 1 s timeout.
cat >"$WORK/cfg.json" <<JSON
{"plugins": {"dirs": ["$PLUGINS"], "enable": ["ops-vips", "storage-local", "storage-ftp"]},
 "services": [
  {"id": 1, "tokens": ["t1"], "storage": {"plugin": "ftp",
     "url": "ftp://127.0.0.1:$PORT_plain/kiln/", "username": "$USER_NAME", "password": "\${FTP_PASS}", "timeout": 10}},
  {"id": 2, "tokens": ["t2"], "storage": {"plugin": "local", "root": "$ROOT"}},
  {"id": 3, "tokens": ["t3"], "storage": {"plugin": "ftp",
     "url": "ftps://127.0.0.1:$PORT_explicit/", "username": "$USER_NAME", "password": "\${FTP_TLS_PASS}",
     "ca_file": "$WORK/ca.pem"}},
  {"id": 4, "tokens": ["t4"], "storage": {"plugin": "ftp",
     "url": "ftp://127.0.0.1:$PORT_plain/kiln/", "username": "$USER_NAME", "password": "\${FTP_BAD_PASS}"}},
  {"id": 5, "tokens": ["t5"], "storage": {"plugin": "ftp",
     "url": "ftps://127.0.0.1:$PORT_implicit/", "tls_mode": "implicit", "tls_verify": false,
     "username": "$USER_NAME", "password": "\${FTP_TLS_PASS}"}},
  {"id": 6, "tokens": ["t6"], "storage": {"plugin": "ftp",
     "url": "ftps://127.0.0.1:$PORT_explicit/", "username": "$USER_NAME", "password": "\${FTP_TLS_PASS}"}},
  {"id": 7, "tokens": ["t7"], "storage": {"plugin": "ftp",
     "url": "ftp://127.0.0.1:$PORT_silent/", "username": "$USER_NAME", "password": "\${FTP_PASS}", "timeout": 1}}
 ]}
JSON
export FTP_PASS=$PASS FTP_TLS_PASS=$TLS_PASS FTP_BAD_PASS=$BAD_PASS

# kiln_ftp TAG [kiln run options] REQUEST...: like run_kiln, with the
# configuration above (run_kiln's --storage-root would replace it).
kiln_ftp() {
    local tag=$1 t0
    shift
    RUN_RC=0
    t0=$(date +%s%N)
    "$KILN" run --config "$WORK/cfg.json" "$@" >"$WORK/$tag.out" 2>"$WORK/$tag.err" || RUN_RC=$?
    echo "# kiln run $tag: $((($(date +%s%N) - t0) / 1000000)) ms" >&2
    if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' "$WORK/$tag.err"; then
        fail "$T_NAME/$tag/sanitizer" "$(grep -m1 -E 'AddressSanitizer|LeakSanitizer|runtime error:' "$WORK/$tag.err")"
    fi
    if [ "$RUN_RC" -ge 128 ]; then
        fail "$T_NAME/$tag/crash" "kiln run exited with status $RUN_RC: $(tail -n 3 "$WORK/$tag.err" | tr '\n' ' ')"
    fi
}
# field TAG N JQ: a field of the N-th result line (0-based) of run TAG
field() { jq -rs ".[$2] | $3" "$WORK/$1.out" 2>/dev/null; }
req() { # FILE SERVICE SOURCE EXTRA-FIELDS DEST=TRANSFORMATIONS...
    local file=$1 svc=$2 src=$3 extra=$4 jobs="" j
    shift 4
    for j; do jobs="$jobs{\"destination\":\"${j%%=*}\",\"transformations\":${j#*=}},"; done
    echo "{\"service_id\":$svc,\"source\":\"$src\",$extra\"jobs\":[${jobs%,}]}" >"$file"
}
# temps DIR: temporary upload names left under a server's home
temps() { find "$1" -name '.*.kiln-*' -printf '%P ' 2>/dev/null; }

# ---------------------------------------------------------------- sources
convert -size 900x600 -seed 7 plasma:fractal -quality 92 "$WORK/src.jpg"
convert -size 700x500 -seed 3 plasma:fractal "PNG24:$WORK/src.png"   # above the 256 KiB kept head
vips copy "$WORK/src.png" "$WORK/src.tif[tile,tile-width=128,tile-height=128]"
mkdir -p "$ROOT/in"
for f in src.jpg src.png src.tif; do
    cp "$WORK/$f" "$ROOT/in/$f"
    plain put "$WORK/$f" "/kiln/in/$f" || fail "$T_NAME/setup" "ftplib cannot upload $f"
done
explicit put "$WORK/src.jpg" /in/src.jpg || fail "$T_NAME/setup" "ftplib cannot upload over explicit FTPS"
implicit put "$WORK/src.jpg" /in/src.jpg || fail "$T_NAME/setup" "ftplib cannot upload over implicit FTPS"

# ---------------------------------------------------------------- round trip
# The same jobs on FTP (service 1) and on local storage (service 2).
JOBS=(
    '/out/new/deep/dir/a.jpg=[{"type":"resize","width":400}]'
    '/out/new/b.png=[{"type":"flip","direction":"x"}]'
    '/out/c.webp=[]'
    '/out/d.tif=[]'                                 # 1.6 MB: held whole
    '/out/e.gif=[{"type":"resize","width":120}]'
    '/out/with space é.jpg=[]'
)
req "$WORK/rt-ftp.json" 1 /in/src.jpg "" "${JOBS[@]}"
req "$WORK/rt-local.json" 2 /in/src.jpg "" "${JOBS[@]}"
req "$WORK/png-ftp.json" 1 /in/src.png "" '/out/png/p.jpg=[{"type":"resize","width":350}]'
req "$WORK/png-local.json" 2 /in/src.png "" '/out/png/p.jpg=[{"type":"resize","width":350}]'
req "$WORK/tif-ftp.json" 1 /in/src.tif "" '/out/tif/t.png=[{"type":"flip","direction":"y"}]'
req "$WORK/tif-local.json" 2 /in/src.tif "" '/out/tif/t.png=[{"type":"flip","direction":"y"}]'
t0=$(date +%s.%N)
kiln_ftp rt --workers 2 "$WORK/rt-ftp.json" "$WORK/rt-local.json" "$WORK/png-ftp.json" \
    "$WORK/png-local.json" "$WORK/tif-ftp.json" "$WORK/tif-local.json"
t1=$(date +%s.%N)
echo "# round trip: 6 requests, 16 outputs in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') s" >&2
check "$T_NAME/round-trip/exit-0" "exit $RUN_RC: $(head -c 400 "$WORK/rt.out") $(head -c 300 "$WORK/rt.err")" [ "$RUN_RC" = 0 ]
mkdir -p "$WORK/got"
n=0
for j in "${JOBS[@]}" '/out/png/p.jpg=' '/out/tif/t.png='; do
    d=${j%%=*}
    n=$((n + 1))
    got="$WORK/got/$n.${d##*.}"
    if ! plain get "/kiln$d" "$got" 2>"$WORK/get.err"; then
        fail "$T_NAME/round-trip$d" "ftplib cannot read it back: $(cat "$WORK/get.err")"
        continue
    fi
    if ! vipsheader "$got" >/dev/null 2>&1; then
        fail "$T_NAME/round-trip$d" "vipsheader cannot read what came back"
    elif cmp -s "$got" "$ROOT$d"; then
        ok "$T_NAME/round-trip$d"
    else
        fail "$T_NAME/round-trip$d" "differs from local storage: $(vipsheader "$got") vs $(vipsheader "$ROOT$d")"
    fi
done
same_image "$T_NAME/round-trip/pixels-vs-local" "$WORK/got/1.jpg" "$ROOT/out/new/deep/dir/a.jpg"
left=$(temps "$WORK/plain")
check "$T_NAME/round-trip/no-temporary-files" "left: $left" [ -z "$left" ]
retrs=$(grep -c 'RETR .*/kiln/in/src.png' "$WORK/plain.log")
echo "# png source (over the kept head) read with $retrs RETR" >&2

# ---------------------------------------------------------------- reuse
# Four requests one after another: one login should serve them all.
before=$(grep -c 'FTP session opened' "$WORK/plain.log")
for i in 1 2 3 4; do
    req "$WORK/reuse$i.json" 1 /in/src.jpg "" "/out/reuse/$i.jpg=[{\"type\":\"resize\",\"width\":64}]" \
        "/out/reuse/$i.png=[{\"type\":\"resize\",\"width\":32}]"
done
kiln_ftp reuse --workers 1 "$WORK"/reuse{1,2,3,4}.json
after=$(grep -c 'FTP session opened' "$WORK/plain.log")
files=$(plain find /kiln/out/reuse | wc -l)
check "$T_NAME/reuse/written" "exit $RUN_RC, $files files: $(head -c 300 "$WORK/reuse.out")" [ "$RUN_RC/$files" = 0/8 ]
check "$T_NAME/reuse/one-login-for-4-requests" "$((after - before)) sessions for 4 reads, 8 uploads, 8 renames" \
    [ $((after - before)) -le 2 ]

# ---------------------------------------------------------------- limits
req "$WORK/limit.json" 1 /in/src.png '"limits": {"max_file_size": 1000},' '/out/limit.jpg=[]'
kiln_ftp limit "$WORK/limit.json"
err=$(field limit 0 .error)
size=$(stat -c %s "$WORK/src.png")
check "$T_NAME/max-file-size-from-SIZE" "error: $err" \
    [ "$err" = "source: \"/in/src.png\" is $size bytes, above the limit of 1000" ]

# ---------------------------------------------------------------- missing source
req "$WORK/missing.json" 1 /in/nope.jpg "" '/out/missing.jpg=[]'
req "$WORK/missing-dir.json" 1 /no/such/dir/x.jpg "" '/out/missing2.jpg=[]'
kiln_ftp missing "$WORK/missing.json" "$WORK/missing-dir.json"
err=$(field missing 0 .error)
case $err in
*'"/in/nope.jpg"'*"127.0.0.1:$PORT_plain"*'not found'*) ok "$T_NAME/missing-source/named" ;;
*) fail "$T_NAME/missing-source/named" "error: $err" ;;
esac
err=$(field missing 1 .error)
case $err in
*'"/no/such/dir/x.jpg"'*"127.0.0.1:$PORT_plain"*'not found'*) ok "$T_NAME/missing-source-directory/named" ;;
*) fail "$T_NAME/missing-source-directory/named" "error: $err" ;;
esac
echo "# missing source: $(field missing 0 .error)" >&2

# ---------------------------------------------------------------- wrong password
req "$WORK/badpw.json" 4 /in/src.jpg "" '/out/badpw/a.jpg=[]'
req "$WORK/badpw-local.json" 2 /in/src.jpg "" '/out/badpw/a.jpg=[]'
kiln_ftp badpw "$WORK/badpw.json"
err=$(field badpw 0 .error)
case $err in
*"127.0.0.1:$PORT_plain"*'login as "kiln" refused'*530*) ok "$T_NAME/wrong-password/clear-error" ;;
*) fail "$T_NAME/wrong-password/clear-error" "error: $err" ;;
esac
check "$T_NAME/wrong-password/nothing-written" "found: $(find "$WORK/plain/kiln/out/badpw" 2>/dev/null)" \
    [ ! -e "$WORK/plain/kiln/out/badpw" ]
echo "# wrong password: $err" >&2

# ---------------------------------------------------------------- permissions
# A directory where the account may only read: the upload and the
# directory creation are refused, named, and nothing is left behind.
req "$WORK/ro.json" 1 /in/src.jpg '"fail_on_conversion_error": false,' '/ro/x.jpg=[]' '/ro/sub/y.jpg=[]'
kiln_ftp ro "$WORK/ro.json"
err=$(field ro 0 '.jobs[0].error')
case $err in
*'cannot write "/ro/x.jpg"'*"127.0.0.1:$PORT_plain"*'refused'*550*) ok "$T_NAME/read-only-directory/upload-refused" ;;
*) fail "$T_NAME/read-only-directory/upload-refused" "error: $err" ;;
esac
err=$(field ro 0 '.jobs[1].error')
case $err in
*'cannot write "/ro/sub/y.jpg"'*'cannot enter or create its directory'*550*) ok "$T_NAME/read-only-directory/mkdir-refused" ;;
*) fail "$T_NAME/read-only-directory/mkdir-refused" "error: $err" ;;
esac
found=$(find "$WORK/plain/kiln/ro" -mindepth 1)
check "$T_NAME/read-only-directory/nothing-written" "found: $found" [ -z "$found" ]
echo "# read-only directory: $(field ro 0 '.jobs[0].error')" >&2
echo "# read-only directory: $(field ro 0 '.jobs[1].error')" >&2

# ---------------------------------------------------------------- timeout
req "$WORK/silent.json" 7 /in/src.jpg "" '/out/silent.jpg=[]'
kiln_ftp silent "$WORK/silent.json"
err=$(field silent 0 .error)
case $err in
*"127.0.0.1:$PORT_silent"*'timed out'*'1 s'*'never greeted'*) ok "$T_NAME/silent-server/timed-out" ;;
*) fail "$T_NAME/silent-server/timed-out" "error: $err" ;;
esac

# ---------------------------------------------------------------- atomicity
BAD='[{"type":"watermark","source":"/no/such-watermark.png","gravity":"center","width":10}]'
req "$WORK/atomic.json" 1 /in/src.jpg '"fail_on_conversion_error": true,' \
    '/out/atomic/good.jpg=[{"type":"resize","width":50}]' "/out/atomic/bad.png=$BAD" \
    '/out/atomic/after.webp=[]'
kiln_ftp atomic "$WORK/atomic.json"
check "$T_NAME/fail-on-conversion-error/failed" "status $(field atomic 0 .status)" [ "$(field atomic 0 .status)" = FAILED ]
found=$(plain find /kiln/out/atomic)
check "$T_NAME/fail-on-conversion-error/nothing-written" "found: $found" [ -z "$found" ]
left=$(temps "$WORK/plain")
check "$T_NAME/fail-on-conversion-error/no-temporary-files" "left: $left" [ -z "$left" ]
err=$(field atomic 0 '.jobs[1].error')
case $err in
*such-watermark.png*'not found'*) ok "$T_NAME/fail-on-conversion-error/watermark-not-found" ;;
*) fail "$T_NAME/fail-on-conversion-error/watermark-not-found" "error: $err" ;;
esac

# ---------------------------------------------------------------- confinement
req "$WORK/escape.json" 1 /in/src.jpg '"fail_on_conversion_error": false,' \
    '/../outside.jpg=[]' '/out/../../outside2.jpg=[]' '/in/../../x/y.jpg=[]'
req "$WORK/escape-src.json" 1 /../kiln/in/src.jpg "" '/out/escape-src.jpg=[]'
kiln_ftp escape "$WORK/escape.json" "$WORK/escape-src.json"
for k in 0 1 2; do
    err=$(field escape 0 ".jobs[$k].error")
    case $err in
    *'escapes the storage root'*) ok "$T_NAME/dotdot-destination-$k/refused" ;;
    *) fail "$T_NAME/dotdot-destination-$k/refused" "error: $err" ;;
    esac
done
err=$(field escape 1 .error)
case $err in
*'escapes the storage root'*) ok "$T_NAME/dotdot-source/refused" ;;
*) fail "$T_NAME/dotdot-source/refused" "error: $err" ;;
esac
outside=$(find "$WORK/plain" -maxdepth 1 -type f; find "$WORK/plain/x" 2>/dev/null)
check "$T_NAME/dotdot/nothing-outside-the-base" "found: $outside" [ -z "$outside" ]

# ---------------------------------------------------------------- FTPS
req "$WORK/explicit.json" 3 /in/src.jpg "" '/out/tls/a.jpg=[{"type":"resize","width":400}]' '/out/tls/b.png=[]'
req "$WORK/explicit-local.json" 2 /in/src.jpg "" '/out/tls/a.jpg=[{"type":"resize","width":400}]' '/out/tls/b.png=[]'
req "$WORK/untrusted.json" 6 /in/src.jpg "" '/out/untrusted.jpg=[]'
kiln_ftp explicit "$WORK/explicit.json" "$WORK/untrusted.json" "$WORK/explicit-local.json"
check "$T_NAME/ftps-explicit/finished" "status $(field explicit 0 .status): $(field explicit 0 .error) $(field explicit 0 '.jobs[0].error')" \
    [ "$(field explicit 0 .status)" = FINISHED ]
if explicit get /out/tls/a.jpg "$WORK/tls-a.jpg" 2>"$WORK/get.err" &&
   explicit get /out/tls/b.png "$WORK/tls-b.png" 2>>"$WORK/get.err"; then
    check "$T_NAME/ftps-explicit/jpeg-same-as-local" "differs" cmp -s "$WORK/tls-a.jpg" "$ROOT/out/tls/a.jpg"
    check "$T_NAME/ftps-explicit/png-same-as-local" "differs" cmp -s "$WORK/tls-b.png" "$ROOT/out/tls/b.png"
else
    fail "$T_NAME/ftps-explicit/read-back" "$(cat "$WORK/get.err")"
fi
err=$(field explicit 1 .error)
case $err in
*'not trusted'*ca_file*) ok "$T_NAME/ftps-untrusted-certificate/refused" ;;
*) fail "$T_NAME/ftps-untrusted-certificate/refused" "error: $err" ;;
esac

# Implicit FTPS on a server whose RNTO refuses to replace: writing the
# same destination twice goes through DELE + rename.
req "$WORK/implicit1.json" 5 /in/src.jpg "" '/out/imp/x.jpg=[{"type":"resize","width":100}]'
req "$WORK/implicit2.json" 5 /in/src.jpg "" '/out/imp/x.jpg=[{"type":"resize","width":200}]'
kiln_ftp implicit --workers 1 "$WORK/implicit1.json" "$WORK/implicit2.json"
check "$T_NAME/ftps-implicit/finished" "$(field implicit 0 .status) $(field implicit 1 .status): $(field implicit 1 '.jobs[0].error')" \
    [ "$(field implicit 0 .status)/$(field implicit 1 .status)" = FINISHED/FINISHED ]
if implicit get /out/imp/x.jpg "$WORK/imp.jpg" 2>"$WORK/get.err"; then
    check "$T_NAME/ftps-implicit/replaced-on-refusing-server" "read back $(vipsheader "$WORK/imp.jpg")" \
        [ "$(vipsheader -f width "$WORK/imp.jpg")" = 200 ]
else
    fail "$T_NAME/ftps-implicit/read-back" "$(cat "$WORK/get.err")"
fi
left=$(temps "$WORK/implicit")
check "$T_NAME/ftps-implicit/no-temporary-files" "left: $left" [ -z "$left" ]

# ---------------------------------------------------------------- retry
# Through kiln serve: a source that is not there yet is "not found", so
# with wait_retry_delay the process is queued again; once a real client
# has put the file in place, the next attempt finishes.
if [ -f "$PLUGINS/api-http.so" ] && command -v curl >/dev/null; then
    . tests/exec/lib_serve.sh
    sport=$(serve_free_port)
    cat >"$WORK/serve.json" <<JSON
{"listen": "127.0.0.1:$sport", "workers": 1,
 "plugins": {"dirs": ["$PLUGINS"], "enable": ["ops-vips", "storage-ftp", "api-http"]},
 "jobstore": {"driver": "sqlite", "path": "$WORK/kiln.db"},
 "services": [{"id": 1, "tokens": ["tok"], "storage": {"plugin": "ftp",
   "url": "ftp://127.0.0.1:$PORT_plain/kiln/", "username": "$USER_NAME", "password": "\${FTP_PASS}"}}]}
JSON
    if serve_start "$WORK/serve.json" "$WORK/serve.log" "http://127.0.0.1:$sport"; then
        body='{"service_id": 1, "source": "/in/later.jpg", "wait_retry_delay": 1, "jobs": [{"destination": "/out/later.jpg", "transformations": [{"type": "resize", "width": 80}]}]}'
        pid=$(curl -s -H 'Authorization: Bearer tok' -H 'Content-Type: application/json' \
            --data-binary "$body" "http://127.0.0.1:$sport/request" | jq -r '.process_id // empty')
        status() { curl -s -H 'Authorization: Bearer tok' "http://127.0.0.1:$sport/status/$pid" >"$WORK/status.json"; jq -r .status "$WORK/status.json"; }
        st= requeued=no
        for _ in $(seq 100); do
            st=$(status)
            if [ "$st" = QUEUED ] && jq -e '.error // "" | test("/in/later.jpg.*not found")' "$WORK/status.json" >/dev/null; then
                requeued=yes
                break
            fi
            sleep 0.05
        done
        check "$T_NAME/wait-retry-delay/queued-again-when-missing" "status $st: $(head -c 300 "$WORK/status.json")" \
            [ "$requeued" = yes ]
        plain put "$WORK/src.jpg" /kiln/in/later.jpg
        for _ in $(seq 100); do
            st=$(status)
            [ "$st" = FINISHED ] || [ "$st" = FAILED ] && break
            sleep 0.1
        done
        n=$(plain find /kiln/out | grep -c '^/kiln/out/later.jpg$')
        check "$T_NAME/wait-retry-delay/finished-once-there" "status $st, $n outputs: $(head -c 300 "$WORK/status.json")" \
            [ "$st/$n" = FINISHED/1 ]
        # The server goes away and comes back on the same port: the
        # pooled connection is dead, and the next transfer must notice
        # and log in again rather than fail.
        kill "${PIDS[0]}"
        wait "${PIDS[0]}" 2>/dev/null
        rm -f "$WORK/plain.port"
        start_server plain "$PASS" --read-only kiln/ro --port "$PORT_plain"
        for _ in $(seq 100); do [ -s "$WORK/plain.port" ] && break; sleep 0.05; done
        body='{"service_id": 1, "source": "/in/later.jpg", "jobs": [{"destination": "/out/after-restart.jpg"}]}'
        pid=$(curl -s -H 'Authorization: Bearer tok' -H 'Content-Type: application/json' \
            --data-binary "$body" "http://127.0.0.1:$sport/request" | jq -r '.process_id // empty')
        for _ in $(seq 100); do
            st=$(status)
            [ "$st" = FINISHED ] || [ "$st" = FAILED ] && break
            sleep 0.1
        done
        check "$T_NAME/dead-pooled-connection/replaced" "status $st: $(head -c 300 "$WORK/status.json")" \
            [ "$st" = FINISHED ]
        serve_stop
        san=$(grep -m1 -E 'AddressSanitizer|LeakSanitizer|runtime error:' "$WORK/serve.log")
        check "$T_NAME/wait-retry-delay/serve-clean-exit" "exit $SERVE_RC: $san" [ "$SERVE_RC/$san" = 0/ ]
        cp "$WORK/serve.log" "$WORK/serve.err"   # searched for passwords below
    else
        fail "$T_NAME/wait-retry-delay/serve" "kiln serve did not start: $(tail -n 3 "$WORK/serve.log")"
    fi
else
    skip "$T_NAME/wait-retry-delay" "api-http plugin or curl missing"
fi

# ---------------------------------------------------------------- example
# examples/config/ftp.json is accepted as it stands: pointed at the test
# servers, both its services get as far as checking the certificate.
sed -e "s#ftp.example.com#127.0.0.1:$PORT_explicit#" -e "s#legacy.example.com:990#127.0.0.1:$PORT_implicit#" \
    -e "s#\"build/plugins\", \"/usr/local/lib/kiln/plugins-2\"#\"$PLUGINS\"#" \
    examples/config/ftp.json >"$WORK/example.json"
req "$WORK/ex1.json" 1 /in/src.jpg "" '/out/ex1.jpg=[]'
req "$WORK/ex2.json" 2 /in/src.jpg "" '/out/ex2.jpg=[]'
KILN_TOKEN=a KILN_TOKEN_2=b KILN_FTP_PASSWORD=$TLS_PASS KILN_FTP_PASSWORD_2=$TLS_PASS \
    "$KILN" run --config "$WORK/example.json" "$WORK/ex1.json" "$WORK/ex2.json" >"$WORK/example.out" 2>"$WORK/example.err"
for k in 0 1; do
    err=$(field example $k .error)
    case $err in
    *"service $((k + 1)), storage \"ftp\""*'not trusted'*) ok "$T_NAME/example-config/service-$((k + 1))" ;;
    *) fail "$T_NAME/example-config/service-$((k + 1))" "error: $err $(head -c 300 "$WORK/example.err")" ;;
    esac
done

# ---------------------------------------------------------------- secrets
leaks=""
for f in "$WORK"/*.out "$WORK"/*.err; do
    for pw in "$PASS" "$TLS_PASS" "$BAD_PASS"; do
        grep -qF -- "$pw" "$f" && leaks="$leaks ${f##*/}"
    done
done
check "$T_NAME/password-never-printed" "found in:$leaks" [ -z "$leaks" ]

finish
