#!/usr/bin/env bash
# A kiln cluster as docs/deploy.md describes it, every part real and on
# 127.0.0.1: PostgreSQL (tests/servers/postgres.sh), three `kiln serve`
# hosts on it, S3 storage on s3rver, nginx in front as the load balancer,
# and a postback receiver. Through nginx, 200 processes with a callback;
# one host is killed with SIGKILL mid-batch, then PostgreSQL is restarted
# mid-batch. Then:
#  - every accepted process is FINISHED, attempt 1 (a run a dead host
#    left is taken back through its lease, not retried);
#  - every output is in the bucket, whole (it decodes, at its size);
#  - every process's postback arrived exactly once;
#  - GET /status/ID answers the same through each surviving host.
# A POST that nginx answers 502/503 (the host or the database was down)
# was not accepted: the client sends it again, as a client would.
set -u
cd "$(dirname "$0")/../.." || exit 1
KILN=${KILN:-build/kiln}
case $KILN in /*) ;; *) KILN=$PWD/$KILN ;; esac
. tests/exec/lib_serve.sh
T=cluster
status=0
ok() { echo "ok $T/$1"; }
fail() {
    echo "FAIL $T/$1: $2"
    status=1
}
for t in nginx node curl jq vips identify psql; do
    if ! command -v "$t" >/dev/null; then
        echo "skip $T: $t is not installed (make deps)"
        exit 0
    fi
done
nm=$(bash tests/servers/install.sh 2>/dev/null)
if [ -z "$nm" ] || [ ! -f "$nm/s3rver/bin/s3rver.js" ]; then
    echo "skip $T: s3rver could not be installed (tests/servers/install.sh)"
    exit 0
fi
tmp=$(mktemp -d)
chmod 711 "$tmp" # the postgres user runs its server in $tmp/pg
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do
        kill -9 "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    serve_relay_stop
    [ -f "$tmp/nginx.pid" ] && kill "$(cat "$tmp/nginx.pid")" 2>/dev/null
    bash tests/servers/postgres.sh stop "$tmp/pg" >/dev/null 2>&1
    rm -rf "$tmp"
}
trap cleanup EXIT
if ! dsn=$(bash tests/servers/postgres.sh start "$tmp/pg" 2>"$tmp/pg.err"); then
    echo "skip $T: cannot start a PostgreSQL server: $(tail -1 "$tmp/pg.err")"
    exit 0
fi

# --- S3 on s3rver, with the source
BUCKET=kiln-cluster
s3port=$(serve_free_port)
mkdir -p "$tmp/s3"
node "$nm/s3rver/bin/s3rver.js" -d "$tmp/s3" -a 127.0.0.1 -p "$s3port" \
    --configure-bucket "$BUCKET" --silent >"$tmp/s3rver.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$s3port/" && break; sleep 0.1; done
vips gaussnoise "$tmp/n.v" 600 600 && vips cast "$tmp/n.v" "$tmp/src.png" uchar ||
    { fail setup "cannot make the source"; exit 1; }
curl -s -f -X PUT --data-binary @"$tmp/src.png" "http://127.0.0.1:$s3port/$BUCKET/in/src.png" >/dev/null ||
    { fail setup "cannot put the source into s3rver: $(tail -2 "$tmp/s3rver.log")"; exit 1; }

# --- the postback receiver
python3 tests/exec/postback_receiver.py "$tmp/rport" "$tmp/received" &
PIDS+=($!)
for _ in $(seq 100); do [ -s "$tmp/rport" ] && break; sleep 0.05; done
cb="http://127.0.0.1:$(cat "$tmp/rport")/ok"

# --- three hosts
export KILN_TEST_S3_SECRET=S3RVER
ports=() hostpid=()
for h in 0 1 2; do
    ports[h]=$(serve_free_port)
    cat >"$tmp/cfg$h.json" <<JSON
{"listen": "127.0.0.1:${ports[h]}", "workers": 2,
 "plugins": {"dirs": ["$(serve_plugin_dir)"], "enable": ["ops-vips", "storage-s3", "api-http"]},
 "jobstore": {"driver": "postgres", "dsn": "$dsn"},
 "rate_limit": {"per_second": 100000, "burst": 100000},
 "network": {"allow": ["127.0.0.1/32"]},
 "services": [{"id": 1, "tokens": ["tok"], "secret": "pb",
   "storage": {"plugin": "s3", "bucket": "$BUCKET", "region": "us-east-1",
               "endpoint": "http://127.0.0.1:$s3port", "path_style": true,
               "access_key_id": "S3RVER", "secret_access_key": "\${KILN_TEST_S3_SECRET}"}}]}
JSON
    serve_relay "http://127.0.0.1:${ports[h]}" # answers checked (lib_serve.sh)
    "$KILN" serve --config "$tmp/cfg$h.json" --listen "$SERVE_LISTEN" >"$tmp/host$h.log" 2>&1 &
    hostpid[h]=$!
    PIDS+=($!)
done
for h in 0 1 2; do
    for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:${ports[h]}/health" && break; sleep 0.1; done
done

# --- nginx in front
lbport=$(serve_free_port)
mkdir -p "$tmp/nginx"
cat >"$tmp/nginx.conf" <<CONF
daemon on;
pid $tmp/nginx.pid;
error_log $tmp/nginx.err;
user root root;
worker_processes 1;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path $tmp/nginx;
    proxy_temp_path $tmp/nginx;
    fastcgi_temp_path $tmp/nginx;
    uwsgi_temp_path $tmp/nginx;
    scgi_temp_path $tmp/nginx;
    upstream kiln {
        server 127.0.0.1:${ports[0]} max_fails=1 fail_timeout=60s;
        server 127.0.0.1:${ports[1]} max_fails=1 fail_timeout=60s;
        server 127.0.0.1:${ports[2]} max_fails=1 fail_timeout=60s;
    }
    server {
        listen 127.0.0.1:$lbport;
        client_max_body_size 1m;
        location / { proxy_pass http://kiln; }
    }
}
CONF
nginx -c "$tmp/nginx.conf" -p "$tmp" 2>"$tmp/nginx.start" ||
    { fail setup "nginx did not start: $(cat "$tmp/nginx.start")"; exit 1; }
lb="http://127.0.0.1:$lbport"
for _ in $(seq 50); do curl -s -o /dev/null "$lb/health" && break; sleep 0.1; done

# call URL METHOD PATH [BODY]: prints "CODE BODY"
call() {
    local out
    out=$(curl -s -w '\n%{http_code}' -X "$2" -H 'Authorization: Bearer tok' \
        ${4:+--data-binary "$4"} "$1$3")
    echo "${out##*$'\n'} ${out%$'\n'*}"
}
req() { echo "{\"service_id\": 1, \"source\": \"/in/src.png\", \"callback\": \"$cb\", \"jobs\": [{\"destination\": \"/out/p$1.png\", \"transformations\": [{\"type\": \"blur\", \"sigma\": 6, \"radius\": 18}, {\"type\": \"resize\", \"width\": 300}]}]}"; }

# --- 200 processes through nginx; a host killed, PostgreSQL restarted
N=200
ids=()
resent=0
for i in $(seq $N); do
    if [ "$i" = 60 ]; then
        kill -9 "${hostpid[0]}"
        wait "${hostpid[0]}" 2>/dev/null
        t_kill=$SECONDS
        ok "host-0-killed-at-60"
    fi
    [ "$i" = 120 ] && { bash tests/servers/postgres.sh restart "$tmp/pg" >/dev/null && ok postgres-restarted-at-120; }
    id=
    for _ in $(seq 100); do
        got=$(call "$lb" POST /request "$(req "$i")")
        id=$(jq -r '.process_id // empty' <<<"${got#* }" 2>/dev/null)
        [ -n "$id" ] && break
        case ${got%% *} in
        000 | 502 | 503 | 504) ;; # not accepted: send it again
        *) break ;;               # refused: a bug of the test or of kiln
        esac
        resent=$((resent + 1))
        sleep 0.2
    done
    [ -n "$id" ] && ids+=("$id") || fail "submit-$i" "never accepted: ${got:0:200}"
done
echo "# $N processes submitted through nginx; $resent POSTs answered without an id were sent again"

# Everything finishes (a dead host's leases run out after 30 s).
n_ok=0 bad=""
for i in "${!ids[@]}"; do
    id=${ids[i]}
    for _ in $(seq 120); do
        got=$(call "$lb" GET "/status/$id")
        st=$(jq -r '[.status, .attempt] | join(" ")' <<<"${got#* }" 2>/dev/null)
        case $st in "FINISHED "* | "FAILED "*) break ;; esac
        sleep 1
    done
    if [ "$st" = "FINISHED 1" ]; then
        n_ok=$((n_ok + 1))
    else
        bad="$bad p$((i + 1)):${st:-?}"
    fi
done
[ "$n_ok" = "$N" ] && ok "all-$N-finished-attempt-1" || fail "all-finished" "$n_ok of $N:${bad:0:300}"
echo "# the last process finished $((SECONDS - t_kill)) s after host 0 was killed (its leases last 30 s)"

# Every output whole, from the bucket.
n_whole=0
for i in $(seq $N); do
    curl -s -f -o "$tmp/o.png" "http://127.0.0.1:$s3port/$BUCKET/out/p$i.png" &&
        [ "$(identify -format '%wx%h' "$tmp/o.png" 2>/dev/null)" = 300x300 ] &&
        n_whole=$((n_whole + 1))
done
[ "$n_whole" = "$N" ] && ok "all-$N-outputs-whole" || fail outputs-whole "$n_whole of $N"

# Postbacks: one per process, none twice.
for _ in $(seq 100); do
    [ "$(grep -c '"path": "/ok"' "$tmp/received" 2>/dev/null)" -ge "$N" ] && break
    sleep 0.2
done
sleep 1
pb=$(python3 - "$tmp/received" "${ids[@]}" <<'PY'
import collections, json, sys
seen = collections.Counter()
for line in open(sys.argv[1]):
    body = json.loads(json.loads(line)["body"])
    seen[(body.get("process_id"), body.get("status"))] += 1
want = sys.argv[2:]
missing = [i for i in want if seen[(i, "FINISHED")] == 0]
twice = [k for k, n in seen.items() if n > 1]
print("%d missing %d twice %s %s" % (len(missing), len(twice), missing[:3], twice[:3]))
PY
)
case $pb in
"0 missing 0 twice"*) ok postbacks-once-each ;;
*) fail postbacks-once-each "$pb" ;;
esac

# The same status from each surviving host.
diff=0
for id in "${ids[@]:0:40}"; do
    a=$(call "http://127.0.0.1:${ports[1]}" GET "/status/$id")
    b=$(call "http://127.0.0.1:${ports[2]}" GET "/status/$id")
    [ "$a" = "$b" ] || diff=$((diff + 1))
done
[ "$diff" = 0 ] && ok status-same-from-each-host || fail status-same-from-each-host "$diff of 40 differ"
exit $status
