#!/usr/bin/env bash
# make bench, cluster section (issue 15): the 40-photo batch (40 copies of
# photo-2725x2225.jpg, fitmethod box into 720x588, JPEG q80; bench/peers.sh
# row 1) submitted through the HTTP API and waited for, on:
#   sqlite   one `kiln serve` host, 2 workers, the SQLite job store;
#   cluster  two hosts of 1 worker each on one PostgreSQL (fsync on),
#            nginx in front (round robin), the same local storage.
# Both use the machine's 2 cores for pixel work; the cluster also runs
# PostgreSQL and nginx on them. Runs are interleaved (sqlite, cluster,
# sqlite, ...) so machine noise falls on both; the medians and their ratio
# are printed. Target: the cluster within 10% of one host on SQLite.
# Timing only: nothing passes or fails. CLUSTER_RUNS (default 5).
set -u
cd "$(dirname "$0")/.."
KILN=${KILN:-build/kiln}
case $KILN in /*) ;; *) KILN=$PWD/$KILN ;; esac
SHARED=${SHARED:-../shared}
RUNS=${CLUSTER_RUNS:-5}
photo=$SHARED/testdata/photo-2725x2225.jpg
if [ ! -f "$photo" ]; then
    echo "skip bench/cluster: $photo is absent (set SHARED)"
    exit 0
fi
for t in nginx psql curl python3; do
    if ! command -v "$t" >/dev/null; then
        echo "skip bench/cluster: $t is not installed (make deps)"
        exit 0
    fi
done
. tests/exec/lib_serve.sh
tmp=$(mktemp -d)
chmod 711 "$tmp"
PIDS=()
stop_all() {
    for p in "${PIDS[@]}"; do
        kill "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    PIDS=()
    if [ -f "$tmp/nginx.pid" ]; then
        kill "$(cat "$tmp/nginx.pid")" 2>/dev/null
        rm -f "$tmp/nginx.pid"
    fi
}
trap 'stop_all; bash tests/servers/postgres.sh stop "$tmp/pg" >/dev/null 2>&1; rm -rf "$tmp"' EXIT
if ! dsn=$(PG_FSYNC=on bash tests/servers/postgres.sh start "$tmp/pg" 2>"$tmp/pg.err"); then
    echo "skip bench/cluster: cannot start PostgreSQL: $(tail -1 "$tmp/pg.err")"
    exit 0
fi
mkdir -p "$tmp/storage/in40"
for i in $(seq -w 1 40); do cp "$photo" "$tmp/storage/in40/p$i.jpg"; done
plugdir=$(serve_plugin_dir)
token=bench-token

# host_config FILE PORT WORKERS STORE: a host's configuration.
host_config() {
    cat >"$1" <<JSON
{"listen": "127.0.0.1:$2", "workers": $3,
 "plugins": {"dirs": ["$plugdir"], "enable": ["ops-vips", "storage-local", "api-http"]},
 "jobstore": $4,
 "rate_limit": {"per_second": 1000000000, "burst": 1000000000},
 "services": [
   {"id": 1, "tokens": ["$token"], "storage": {"plugin": "local", "root": "$tmp/storage"}}]}
JSON
}

# start_host CFG LOG URL
start_host() {
    "$KILN" serve --config "$1" >>"$2" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 100); do
        curl -s -o /dev/null "$3/health" && return 0
        sleep 0.1
    done
    echo "skip bench/cluster: a host did not start: $(tail -3 "$2")"
    exit 0
}

# batch URL OUTDIR: submits the 40 requests and polls until all finished;
# prints the seconds from the first POST to the last FINISHED.
batch() {
    python3 - "$1" "$token" "$2" <<'PY'
import http.client, json, sys, time, urllib.parse
url, token, out = sys.argv[1:4]
u = urllib.parse.urlparse(url)
c = http.client.HTTPConnection(u.hostname, u.port)
h = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}
def call(method, path, body=None):
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    return r.status, json.loads(r.read() or b"{}")
t0 = time.monotonic()
ids = []
for i in range(1, 41):
    body = json.dumps({"service_id": 1, "source": "/in40/p%02d.jpg" % i,
        "jobs": [{"destination": "/%s/p%02d.jpg" % (out, i), "quality": 80,
                  "transformations": [{"type": "fitmethod", "fit_type": "box",
                      "width": 720, "height": 588, "color": "#000",
                      "gravity": "center"}]}]})
    st, o = call("POST", "/request", body)
    if st != 200:
        sys.exit("POST answered %d: %s" % (st, o))
    ids.append(o["process_id"])
left = set(ids)
while left:
    for i in list(left):
        st, o = call("GET", "/status/" + i)
        if o.get("status") in ("FINISHED", "FAILED"):
            if o["status"] != "FINISHED":
                sys.exit("process %s failed: %s" % (i, o.get("error")))
            left.discard(i)
    if left:
        time.sleep(0.005)
print("%.3f" % (time.monotonic() - t0))
PY
}

run_sqlite() { # N
    local port url
    port=$(serve_free_port)
    url=http://127.0.0.1:$port
    rm -f "$tmp/kiln.db"*
    host_config "$tmp/s.json" "$port" 2 "{\"driver\": \"sqlite\", \"path\": \"$tmp/kiln.db\"}"
    start_host "$tmp/s.json" "$tmp/s.log" "$url"
    batch "$url" "s$1"
    stop_all
}

run_cluster() { # N
    local db=bench_$1 p0 p1 lb
    psql -q "$dsn" -c "CREATE DATABASE $db" >/dev/null
    p0=$(serve_free_port)
    p1=$(serve_free_port)
    lb=$(serve_free_port)
    local store="{\"driver\": \"postgres\", \"dsn\": \"$dsn dbname=$db\"}"
    host_config "$tmp/c0.json" "$p0" 1 "$store"
    host_config "$tmp/c1.json" "$p1" 1 "$store"
    start_host "$tmp/c0.json" "$tmp/c0.log" "http://127.0.0.1:$p0"
    start_host "$tmp/c1.json" "$tmp/c1.log" "http://127.0.0.1:$p1"
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
        server 127.0.0.1:$p0;
        server 127.0.0.1:$p1;
        keepalive 8;
    }
    server {
        listen 127.0.0.1:$lb;
        location / {
            proxy_pass http://kiln;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
CONF
    if ! nginx -c "$tmp/nginx.conf" -p "$tmp" 2>"$tmp/nginx.start"; then
        echo "skip bench/cluster: nginx did not start: $(tail -1 "$tmp/nginx.start")"
        exit 0
    fi
    for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$lb/health" && break; sleep 0.1; done
    batch "http://127.0.0.1:$lb" "c$1"
    stop_all
    psql -q "$dsn" -c "DROP DATABASE $db" >/dev/null
}

echo "== bench/cluster: the 40-photo batch (2725x2225 JPEG -> fit 720x588, q80) through the API, median of $RUNS"
echo "target: two hosts (1 worker each) on PostgreSQL within 10% of one host (2 workers) on SQLite"
s=() c=()
for r in $(seq "$RUNS"); do
    a=$(run_sqlite "$r")
    case $a in [0-9]*) s+=("$a") ;; *) echo "$a"; exit 0 ;; esac
    b=$(run_cluster "$r")
    case $b in [0-9]*) c+=("$b") ;; *) echo "$b"; exit 0 ;; esac
done
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
ms=$(median "${s[@]}")
mc=$(median "${c[@]}")
printf 'one host, SQLite        %s s   (runs: %s)\n' "$ms" "${s[*]}"
printf 'two hosts, PostgreSQL   %s s   (runs: %s)\n' "$mc" "${c[*]}"
awk -v a="$mc" -v b="$ms" 'BEGIN { printf "cluster / one host      %.3f (target <= 1.10)\n", a / b }'
