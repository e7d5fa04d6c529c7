#!/usr/bin/env bash
# The HTTP API against a real server: `kiln serve` started here on
# 127.0.0.1 with two services, driven with curl. Authentication rules,
# validation answers, body limit, a process from POST to FINISHED with its
# output written, retry, idempotency, dynamic processes, metrics, and a
# clean shutdown on SIGTERM.
set -u
KILN=${KILN:-build/kiln}
. "$(dirname "$0")/lib_serve.sh"   # serve_free_port, serve_start, serve_stop
tmp=$(mktemp -d)
trap 'serve_stop; rm -rf "$tmp"' EXIT
status=0
ok() { echo "ok api/$1"; }
fail() { echo "FAIL api/$1: $2"; status=1; }
field() { python3 -c 'import json,sys; r=json.loads(sys.stdin.read()); print(eval(sys.argv[1]))' "$1"; }

mkdir -p "$tmp/storage/in"
vips black "$tmp/b.v" 64 48 --bands 3 && vips copy "$tmp/b.v" "$tmp/storage/in/a.png" ||
    { fail setup "cannot make the source"; exit 1; }
port=$(serve_free_port)
plugdir=$(serve_plugin_dir)
cat >"$tmp/cfg.json" <<JSON
{"listen": "127.0.0.1:$port", "workers": 2,
 "plugins": {"dirs": ["$plugdir"], "enable": ["ops-vips", "storage-local", "api-http"]},
 "jobstore": {"driver": "sqlite", "path": "$tmp/kiln.db"},
 "limits": {"max_body": 4096},
 "rate_limit": {"per_second": 1000, "burst": 1000},
 "services": [
   {"id": 1, "tokens": ["tok-one"], "storage": {"plugin": "local", "root": "$tmp/storage"}},
   {"id": 2, "tokens": ["tok-two"], "limits": {"max_process_time": 20},
    "storage": {"plugin": "local", "root": "$tmp/storage"}}]}
JSON
url="http://127.0.0.1:$port"
serve_start "$tmp/cfg.json" "$tmp/log" "$url" ||
    { fail setup "the server did not start: $(tail -3 "$tmp/log")"; exit 1; }
# call METHOD PATH TOKEN [BODY]: prints "CODE BODY"
call() {
    local args=(-s -o "$tmp/body" -w '%{http_code}' -X "$1" "$url$2")
    [ -n "$3" ] && args+=(-H "Authorization: Bearer $3")
    [ $# -ge 4 ] && args+=(-H 'Content-Type: application/json' --data-binary "$4")
    local code
    code=$(curl "${args[@]}")
    printf '%s %s' "$code" "$(cat "$tmp/body")"
}
expect() { # NAME WANT GOT
    if [ "$2" = "$3" ]; then ok "$1"; else fail "$1" "got: $3"; fi
}

got=$(call GET /health '')
[[ $got =~ ^200\ \{\"message\":\"ok\",\"version\":\"[0-9.]+\",\"uptime_s\":[0-9]+,\"store\":\"ok\"\}$ ]] &&
    ok health || fail health "got: $got"
expect no-token '401 {"message":"Invalid Secret"}' "$(call GET /status/x '')"
expect wrong-token '401 {"message":"Invalid Secret"}' "$(call GET /status/x nope)"
# header METHOD PATH TOKEN NAME: prints "CODE NAME's-VALUE BODY"
header() {
    local args=(-s -D "$tmp/head" -o "$tmp/body" -X "$1" "$url$2")
    [ "$1" = HEAD ] && args=(-s -I -D "$tmp/head" -o /dev/null "$url$2")
    : >"$tmp/body"
    [ -n "$3" ] && args+=(-H "Authorization: Bearer $3")
    curl "${args[@]}" >/dev/null
    printf '%s %s %s' "$(head -1 "$tmp/head" | cut -d' ' -f2)" \
        "$(tr -d '\r' <"$tmp/head" | sed -n "s/^$4: //Ip")" "$(cat "$tmp/body")"
}
# Every 401 says how to authenticate: the bearer token api.md describes.
expect no-token-challenge '401 Bearer realm="kiln" {"message":"Invalid Secret"}' \
    "$(header GET /status/x '' WWW-Authenticate)"
expect wrong-token-challenge '401 Bearer realm="kiln" {"message":"Invalid Secret"}' \
    "$(header POST /request nope WWW-Authenticate)"
expect unknown-path-no-token-challenge '401 Bearer realm="kiln" {"message":"Invalid Secret"}' \
    "$(header GET /nowhere '' WWW-Authenticate)"
# A known path asked with a method it does not serve: 405 naming the ones
# it does, before the token checks (with a token or without); an unknown
# path stays a 404 (after them).
expect delete-request-405 '405 POST {"message":"method \"DELETE\" is not allowed on /request (expected POST)"}' \
    "$(header DELETE /request tok-one Allow)"
expect get-retry-405-no-token '405 POST {"message":"method \"GET\" is not allowed on /retry (expected POST)"}' \
    "$(header GET /retry '' Allow)"
expect put-status-405 '405 GET {"message":"method \"PUT\" is not allowed on /status/{id} (expected GET)"}' \
    "$(header PUT /status/x tok-one Allow)"
expect post-postbacks-405 '405 GET {"message":"method \"POST\" is not allowed on /status/{id}/postbacks (expected GET)"}' \
    "$(header POST /status/x/postbacks tok-one Allow)"
expect get-request-id-405 '405 PATCH {"message":"method \"GET\" is not allowed on /request/{id} (expected PATCH)"}' \
    "$(header GET /request/x tok-one Allow)"
expect post-health-405 '405 GET {"message":"method \"POST\" is not allowed on /health (expected GET)"}' \
    "$(header POST /health '' Allow)"
expect post-openapi-405 '405 GET {"message":"method \"POST\" is not allowed on /openapi.json (expected GET)"}' \
    "$(header POST /openapi.json '' Allow)"
expect delete-metrics-405 '405 GET {"message":"method \"DELETE\" is not allowed on /metrics (expected GET)"}' \
    "$(header DELETE /metrics tok-one Allow)"
got=$(header HEAD /processes tok-one Allow)
expect head-processes-405 '405 GET ' "$got"
expect unknown-path-404 '404  {"message":"no endpoint GET /nowhere"}' "$(header GET /nowhere tok-one Allow)"
req='{"service_id": 1, "source": "/in/a.png", "jobs": [{"destination": "/out/a.png", "transformations": [{"type": "resize", "width": 32}]}]}'
expect other-service '403 {"message":"this token may not use service 1"}' \
    "$(call POST /request tok-two "$req")"
got=$(call POST /request tok-one '{"service_id": 1, "sorce": "/in/a.png", "jobs": []}')
expect invalid-400 '400 {"message":"the request is not valid","errors":[{"path":"sorce","message":"unknown parameter \"sorce\" (did you mean \"source\"?)"},{"path":"source","message":"missing required parameter \"source\""},{"path":"jobs","message":"expected at least one job"}]}' "$got"
big=$(printf '{"service_id": 1, "pad": "%05000d"}' 0)
expect body-413 '413 {"message":"request body is over the limit of 4096 bytes"}' \
    "$(call POST /request tok-one "$big")"
# A client that writes its whole body before reading the answer (Python's
# urllib) gets the 413 too, not a broken pipe or a reset: the server reads
# and drops a body up to 16 MiB before answering. 1 MiB, more than the
# server and the kernel take in before the answer; five times, since a
# reset depends on timing.
got=$(python3 - "$url" <<'PY'
import sys, urllib.request, urllib.error
out = []
for _ in range(5):
    req = urllib.request.Request(sys.argv[1] + "/request", data=b"x" * (1 << 20),
                                 headers={"Authorization": "Bearer tok-one",
                                          "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            out.append("%d %s" % (r.status, r.read().decode()))
    except urllib.error.HTTPError as e:
        out.append("%d %s" % (e.code, e.read().decode()))
    except Exception as e:
        out.append("error %r" % e)
print("\n".join(sorted(set(out))))
PY
)
expect body-413-written-whole '413 {"message":"request body is over the limit of 4096 bytes"}' "$got"
# A Content-Length beyond what is worth reading is still answered at once,
# from the header, and the connection closed.
got=$(python3 - "$port" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
t0 = time.monotonic()
s.sendall(b"POST /request HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok-one\r\n"
          b"Content-Length: 100000000000\r\n\r\n" + b"x" * 1000)
data = b""
try:
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
except OSError:
    pass
took = time.monotonic() - t0
head = data.split(b"\r\n", 1)[0].decode(errors="replace")
print("%s%s" % (head, " (slow: %.1f s)" % took if took > 2 else ""))
PY
)
expect body-413-huge-at-once 'HTTP/1.1 413 Content Too Large' "$got"

got=$(call POST /request tok-one "$req")
id=$(printf '%s' "${got#* }" | field 'r["process_id"]' 2>/dev/null)
[ "${got%% *}" = 200 ] && [ ${#id} = 21 ] && ok create || fail create "$got"
state=
for _ in $(seq 100); do
    state=$(call GET "/status/$id" tok-one)
    case "$state" in *'"status":"FINISHED"'*) break ;; esac
    sleep 0.1
done
st=$(printf '%s' "${state#* }" | field 'r["status"], r["jobs"][0]["width"], r["jobs"][0]["height"], r["attempt"]')
expect finished "('FINISHED', 32, 24, 1)" "$st"
[ -f "$tmp/storage/out/a.png" ] && ok output-written || fail output-written "no file"
expect status-other-service-404 '404 {"message":"Process not found"}' \
    "$(call GET "/status/$id" tok-two)"

got=$(call POST /retry tok-one "{\"service_id\": 1, \"process_ids\": [\"$id\", \"nosuchprocess\"]}")
expect retry "200 [{\"status\":200,\"process_id\":\"$id\",\"description\":\"Reprocessing process, attempt: 2\"},{\"status\":404,\"process_id\":\"nosuchprocess\",\"description\":\"Process not found\"}]" "$got"

# Idempotency-Key: the same body answers the same id.
a=$(curl -s -H 'Authorization: Bearer tok-one' -H 'Idempotency-Key: k1' --data-binary "$req" "$url/request" | field 'r["process_id"]')
b=$(curl -s -H 'Authorization: Bearer tok-one' -H 'Idempotency-Key: k1' --data-binary "$req" "$url/request" | field 'r["process_id"]')
[ -n "$a" ] && [ "$a" = "$b" ] && ok idempotency || fail idempotency "$a vs $b"
got=$(curl -s -w ' %{http_code}' -H 'Authorization: Bearer tok-one' -H 'Idempotency-Key: k1' \
      --data-binary "${req/32/16}" "$url/request")
expect idempotency-other-body '{"message":"Idempotency-Key was used with a different body"} 409' "$got"
# A key is bounded and printable (issue 12: it had no cap).
long=$(printf 'k%.0s' $(seq 1 256))
got=$(curl -s -w ' %{http_code}' -H 'Authorization: Bearer tok-one' -H "Idempotency-Key: $long" \
      --data-binary "$req" "$url/request")
expect idempotency-too-long '{"message":"the Idempotency-Key header is 256 bytes long (expected 1 to 255 visible ASCII characters)"} 400' "$got"
got=$(curl -s -w ' %{http_code}' -H 'Authorization: Bearer tok-one' -H $'Idempotency-Key: ab\x01c' \
      --data-binary "$req" "$url/request")
expect idempotency-control-byte '{"message":"the Idempotency-Key header has the byte 0x01 at offset 2 (expected visible ASCII characters)"} 400' "$got"
long=$(printf 'k%.0s' $(seq 1 255))
got=$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer tok-one' -H "Idempotency-Key: $long" \
      --data-binary "$req" "$url/request")
expect idempotency-255 '200' "$got"

# A dynamic process: created INCOMPLETE, jobs appended, then queued.
got=$(call POST /request tok-one '{"service_id": 1, "source": "/in/a.png", "process": false}')
did=$(printf '%s' "${got#* }" | field 'r["process_id"]')
expect dynamic-incomplete INCOMPLETE "$(call GET "/status/$did" tok-one | cut -d' ' -f2- | field 'r["status"]')"
expect patch-no-jobs-400 '400 {"message":"the request is not valid","errors":[{"path":"jobs","message":"the process has no jobs yet (add them with POST /request/{id}/jobs, then queue it)"}]}' \
    "$(call PATCH "/request/$did" tok-one '{"process": true}')"
got=$(call POST "/request/$did/jobs" tok-one '{"jobs": [{"destination": "/out/dyn.png"}]}')
expect dynamic-append "200 {\"status\":\"SUCCESS\",\"process_id\":\"$did\",\"jobs\":1}" "$got"
got=$(call POST "/request/$did/jobs" tok-one '{"jobs": [{"destination": "/out/x.bmp"}]}')
case "$got" in '400 '*'"path":"jobs[1].destination"'*) ok dynamic-append-invalid ;; *) fail dynamic-append-invalid "$got" ;; esac
# /retry takes the types api.md gives, and says which part is wrong.
# service_id follows one rule everywhere: a number or a string of its
# digits ("1", as POST /request has always taken it).
got=$(call POST /retry tok-one '{"service_id": "1", "process_ids": ["x"]}')
expect retry-service-id-string '200 [{"status":404,"process_id":"x","description":"Process not found"}]' "$got"
got=$(call POST /cancel tok-one '{"service_id": "1", "process_ids": ["x"]}')
expect cancel-service-id-string '200 [{"status":404,"process_id":"x","description":"Process not found"}]' "$got"
got=$(call POST /cancel tok-two '{"service_id": "1", "process_ids": ["x"]}')
expect cancel-service-id-string-403 '403 {"message":"this token may not use service 1"}' "$got"
for case in 'point:"1.0"' 'minus-zero:"-0"' 'space:" 1"' 'fraction:1.5' 'bool:true'; do
    form=${case#*:}
    got=$(call POST /retry tok-one "{\"service_id\": $form, \"process_ids\": [\"x\"]}")
    shown=$(printf '%s' "$form" | sed 's/"/\\"/g')
    expect "retry-service-id-${case%%:*}" "400 {\"message\":\"the request is not valid\",\"errors\":[{\"path\":\"service_id\",\"message\":\"got $shown (expected a service id: a whole number from 0 to 2147483647, or a string of its digits)\"}]}" "$got"
done
# POST /request refuses the same forms. "1.0" and "-0" were compiled as
# services 1 and 0 without the token being checked against them: a token
# of service 2 created a process of service 1.
for case in 'point:"1.0"' 'minus-zero:"-0"'; do
    form=${case#*:}
    got=$(call POST /request tok-two "{\"service_id\": $form, \"source\": \"/in/a.png\", \"jobs\": [{\"destination\": \"/out/f.png\"}]}")
    case "$got" in
    '400 '*'"path":"service_id"'*'or a string of its digits'*) ok "request-service-id-${case%%:*}" ;;
    *) fail "request-service-id-${case%%:*}" "$got" ;;
    esac
done
got=$(call POST /request tok-two '{"service_id": "0000000001", "source": "/in/a.png", "jobs": [{"destination": "/out/f.png"}]}')
expect request-service-id-ten-digits-403 '403 {"message":"this token may not use service 1"}' "$got"
got=$(call GET '/processes?service_id=%2B1&limit=1' tok-one)
expect processes-service-id-sign '400 {"message":"query parameter \"service_id\": got \"+1\" (expected a service id: a whole number from 0 to 2147483647)"}' "$got"
got=$(call GET '/processes?service_id=01&limit=1' tok-one | cut -d' ' -f1)
expect processes-service-id-digits 200 "$got"
got=$(call POST /retry tok-one '{"service_id": 1, "process_ids": ["x", 7]}')
expect retry-id-not-string '400 {"message":"the request is not valid","errors":[{"path":"process_ids[1]","message":"got 7 (expected a process id, a string)"}]}' "$got"
got=$(call POST /retry tok-one '{"service_id": 1}')
expect retry-no-ids '400 {"message":"the request is not valid","errors":[{"path":"process_ids","message":"missing (expected an array of process ids)"}]}' "$got"
# /retry of a process that has not ended says why: INCOMPLETE here;
# queued (a source not there yet is waited for, the process queued again
# for 600 s); running is still running (tests/unit, test_runner.c).
got=$(call POST /retry tok-one "{\"service_id\": 1, \"process_ids\": [\"$did\"]}")
expect retry-incomplete-409 "200 [{\"status\":409,\"process_id\":\"$did\",\"description\":\"Process is INCOMPLETE: it has not been queued yet\"}]" "$got"
got=$(call POST /request tok-one '{"service_id": 1, "source": "/in/later.png", "wait_retry_delay": 600, "jobs": [{"destination": "/out/later.png"}]}')
qid=$(printf '%s' "${got#* }" | field 'r["process_id"]')
for _ in $(seq 100); do # queued again, its error said: not to be claimed now
    case "$(call GET "/status/$qid" tok-one)" in *'"status":"QUEUED"'*'"error":"'*) break ;; esac
    sleep 0.1
done
got=$(call POST /retry tok-one "{\"service_id\": 1, \"process_ids\": [\"$qid\"]}")
expect retry-queued-409 "200 [{\"status\":409,\"process_id\":\"$qid\",\"description\":\"Process is queued: it has not run yet\"}]" "$got"
code=$(call PATCH "/request/$did" tok-one '{"process": true}' | cut -d' ' -f1)
expect dynamic-patch 200 "$code"
expect patch-again-409 '409 {"message":"Process is not INCOMPLETE"}' \
    "$(call PATCH "/request/$did" tok-one '{"process": true}')"
expect patch-unknown-404 '404 {"message":"Process not found"}' \
    "$(call PATCH /request/nosuchprocess tok-one '{"process": true}')"
for _ in $(seq 100); do
    [ -f "$tmp/storage/out/dyn.png" ] && break
    sleep 0.1
done
[ -f "$tmp/storage/out/dyn.png" ] && ok dynamic-runs || fail dynamic-runs "no output"

# Found by fuzzing the API call handler (tests/fuzz): a NUL byte in a
# body compiled (cJSON skips it) and was stored cut short, which crashed
# the server when jobs were added; a huge or wrapping service_id was an
# undefined cast (1e300) or read as service 1 ("4294967297"); appending
# jobs to a process leaked.
printf '{"service_id": 1, "source": "/in/a.png",\0"jobs": [{"destination": "/out/n.png"}]}' >"$tmp/nul.json"
got=$(curl -s -w ' %{http_code}' -H 'Authorization: Bearer tok-one' \
      --data-binary @"$tmp/nul.json" "$url/request")
expect nul-in-body-400 '{"message":"the request is not valid","errors":[{"path":"","message":"invalid JSON at line 1, column 41: a NUL byte (JSON text cannot hold one)"}]} 400' "$got"
# A request may lower its service's limits, never raise them: above the
# service's own (lower than the deployment's 60 s) is a 400 at submission
# (issue 12: it was accepted, then run under the service's limit).
got=$(call POST /request tok-two '{"service_id": 2, "source": "/in/a.png", "limits": {"max_process_time": 30}, "jobs": [{"destination": "/out/l.png"}]}')
expect limit-above-service '400 {"message":"the request is not valid","errors":[{"path":"limits.max_process_time","message":"30 is above its service'"'"'s limit of 20 (a request may lower limits, not raise them)"}]}' "$got"
got=$(call POST /request tok-one '{"service_id": 1, "source": "/in/a.png", "limits": {"max_process_time": 30}, "jobs": [{"destination": "/out/l.png"}]}')
case "$got" in "200 "*) ok limit-below-deployment ;; *) fail limit-below-deployment "$got" ;; esac
got=$(call POST /request tok-two '{"service_id": 1e300, "source": "/in/a.png", "jobs": [{"destination": "/out/h.png"}]}')
case "$got" in '400 '*'"path":"service_id"'*) ok service-id-huge-400 ;; *) fail service-id-huge-400 "$got" ;; esac
got=$(call POST /request tok-two '{"service_id": "4294967297", "source": "/in/a.png", "jobs": [{"destination": "/out/h.png"}]}')
case "$got" in '400 '*'"path":"service_id"'*) ok service-id-wrapping-400 ;; *) fail service-id-wrapping-400 "$got" ;; esac
got=$(call POST /request tok-one '{"service_id": 1, "source": "/in/a.png", "process": false, "jobs": [{"destination": "/out/d1.png"}]}')
did2=$(printf '%s' "${got#* }" | field 'r["process_id"]')
for k in 2 3; do
    got=$(call POST "/request/$did2/jobs" tok-one "{\"jobs\": [{\"destination\": \"/out/d$k.png\"}]}")
    expect "append-$k" "200 {\"status\":\"SUCCESS\",\"process_id\":\"$did2\",\"jobs\":$k}" "$got"
done
got=$(call GET /health '')
case $got in '200 {"message":"ok",'*) ok service-still-serving ;; *) fail service-still-serving "got: $got" ;; esac

got=$(call GET /metrics tok-one)
case "$got" in *'kiln_processes{status="FINISHED"}'*) ok metrics ;; *) fail metrics "$got" ;; esac
expect unknown-endpoint '404 {"message":"no endpoint DELETE /requests"}' "$(call DELETE /requests tok-one)"

serve_stop
rc=$SERVE_RC
[ "$rc" = 0 ] && grep -q 'SIGTERM received, shutting down' "$tmp/log" && ok sigterm-clean ||
    fail sigterm-clean "exit $rc: $(tail -3 "$tmp/log")"
grep -q 'tok-one' "$tmp/log" && fail token-not-logged "a token appears in the log" || ok token-not-logged

# Rate limit: a second server whose tokens may make 2 calls in a burst.
port2=$(serve_free_port)
sed -e "s/:$port/:$port2/" -e 's/"per_second": 1000, "burst": 1000/"per_second": 0.5, "burst": 2/' \
    -e "s|$tmp/kiln.db|$tmp/kiln2.db|" "$tmp/cfg.json" >"$tmp/cfg2.json"
url="http://127.0.0.1:$port2"
serve_start "$tmp/cfg2.json" "$tmp/log2" "$url" ||
    { fail setup "the second server did not start: $(tail -3 "$tmp/log2")"; exit 1; }
call GET /status/x tok-one >/dev/null
call GET /status/x tok-one >/dev/null
got=$(curl -s -D "$tmp/hdr" -H 'Authorization: Bearer tok-one' "$url/status/x")
retry=$(tr -d '\r' <"$tmp/hdr" | sed -n 's/^Retry-After: //Ip')
[ "$got" = '{"message":"too many requests for this token"}' ] && [ "$retry" = 2 ] &&
    ok rate-limit-429 || fail rate-limit-429 "$got (Retry-After: $retry)"
serve_stop
exit $status
