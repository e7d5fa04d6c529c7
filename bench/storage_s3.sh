#!/usr/bin/env bash
# Benchmark for the "s3" backend (issue 5's figure): the 40-image thumbnail
# batch (40 processes, each one 2725x2225 JPEG to a 720 px wide JPEG at
# quality 80, `kiln run --workers 2`) with sources and outputs in a bucket
# on s3rver (127.0.0.1), next to the same batch on local disk. Prints one
# line per storage: wall time, images per second, and for S3 the requests
# and connections kiln made (through tests/exec/storage_s3_proxy.py).
# Figures only: never fails on timing. Run by `make bench` (bench/run.sh),
# or alone: `bash bench/storage_s3.sh`.
set -u
cd "$(dirname "$0")/.." || exit 1
KILN=${KILN:-build/kiln}
case $KILN in /*) ;; *) KILN=$PWD/$KILN ;; esac
SHARED=${SHARED:-../shared}
. tests/exec/lib_serve.sh
PY=/usr/bin/python3
N=${KILN_BENCH_IMAGES:-40}
for t in node "$PY" vips jq curl; do
    command -v "$t" >/dev/null 2>&1 || {
        echo "skip bench/s3: $t is not installed"
        exit 0
    }
done
nm=$(bash tests/servers/install.sh 2>/dev/null)
[ -f "$nm/s3rver/bin/s3rver.js" ] || {
    echo "skip bench/s3: s3rver is not installed (tests/servers/install.sh)"
    exit 0
}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/kiln-s3-bench.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    rm -rf "$tmp"
}
trap cleanup EXIT

photo=$SHARED/testdata/photo-2725x2225.jpg
mkdir -p "$tmp/root/in" "$tmp/s3/kiln-bench"
if [ ! -f "$photo" ]; then
    vips gaussnoise "$tmp/n.v" 2725 2225 --mean 128 --sigma 40 &&
        vips colourspace "$tmp/n.v" "$tmp/photo.jpg[Q=90]" srgb || exit 1
    photo=$tmp/photo.jpg
fi
for i in $(seq -w 1 "$N"); do cp "$photo" "$tmp/root/in/p$i.jpg"; done

export KILN_TEST_S3_SECRET=bench-secret
s3port=$(serve_free_port)
node "$nm/s3rver/bin/s3rver.js" -d "$tmp/s3" -a 127.0.0.1 -p "$s3port" \
    --configure-bucket kiln-bench --silent >"$tmp/s3rver.log" 2>&1 &
pids+=($!)
"$PY" tests/exec/storage_s3_proxy.py "$tmp/proxy.port" "$s3port" "$tmp/proxy.log" \
    "$tmp/plan" >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 100); do
    [ -s "$tmp/proxy.port" ] && curl -s -o /dev/null "http://127.0.0.1:$s3port/" && break
    sleep 0.1
done
pport=$(cat "$tmp/proxy.port")
# Sources go in with plain unsigned PUTs (s3rver accepts them).
for f in "$tmp"/root/in/*.jpg; do
    curl -s -o /dev/null -T "$f" "http://127.0.0.1:$s3port/kiln-bench/in/${f##*/}" || exit 1
done

cat >"$tmp/cfg.json" <<JSON
{"plugins": {"dirs": ["$(serve_plugin_dir)"], "enable": ["ops-vips", "storage-local", "storage-s3"]},
 "services": [
   {"id": 1, "tokens": ["t"], "storage": {"plugin": "local", "root": "$tmp/root"}},
   {"id": 2, "tokens": ["t"], "storage": {"plugin": "s3", "bucket": "kiln-bench",
     "region": "us-east-1", "endpoint": "http://127.0.0.1:$pport", "path_style": true,
     "access_key_id": "S3RVER", "secret_access_key": "\${KILN_TEST_S3_SECRET}"}}]}
JSON
for svc in 1 2; do
    for i in $(seq -w 1 "$N"); do
        printf '{"service_id": %s, "source": "/in/p%s.jpg", "jobs": [{"destination": "/out/p%s.jpg", "quality": 80, "transformations": [{"type": "resize", "width": 720}]}]}\n' \
            "$svc" "$i" "$i" >"$tmp/s$svc-$i.json"
    done
done
runbatch() { # SERVICE LABEL
    local t0 t1 ms ok
    : >"$tmp/proxy.log"
    t0=${EPOCHREALTIME/./}
    "$KILN" run --config "$tmp/cfg.json" --workers 2 "$tmp"/s"$1"-*.json >"$tmp/out$1.json" 2>"$tmp/err$1"
    t1=${EPOCHREALTIME/./}
    ms=$(((t1 - t0) / 1000))
    ok=$(jq -s '[.[] | select(.status == "FINISHED")] | length' "$tmp/out$1.json")
    printf 'bench/s3: %-6s %d images, %d finished, %d ms, %s images/s' "$2" "$N" "$ok" "$ms" \
        "$(awk -v n="$N" -v ms="$ms" 'BEGIN { printf "%.1f", n * 1000 / ms }')"
    if [ "$1" = 2 ]; then
        printf ', %d requests over %d connections' "$(grep -c '^req ' "$tmp/proxy.log")" \
            "$(grep -c '^conn ' "$tmp/proxy.log")"
    fi
    echo
}
runbatch 1 local
runbatch 2 s3
