#!/usr/bin/env bash
# GET /health answers 503 while the job store cannot take a new process,
# not only when it cannot be read (issue 12: it said 200 on a full disk),
# and says why in our words: "no space left on device" with the store's
# path. A submission meanwhile gets 503 too, the server keeps serving, and
# once space is back both answer again. The store lives on a 2 MiB tmpfs
# that the test fills; skipped where mounting is not allowed.
set -u
cd "$(dirname "$0")/../.." || exit 1
KILN=${KILN:-build/kiln}
case $KILN in /*) ;; *) KILN=$PWD/$KILN ;; esac
. tests/exec/lib_serve.sh
tmp=$(mktemp -d)
mnt=$tmp/store
mkdir -p "$mnt" "$tmp/storage/in"
cleanup() {
    serve_stop KILL
    umount "$mnt" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
status=0
ok() { echo "ok health_store/$1"; }
fail() {
    echo "FAIL health_store/$1: $2"
    status=1
}
if ! mount -t tmpfs -o size=2m tmpfs "$mnt" 2>/dev/null; then
    echo "skip health_store: cannot mount a tmpfs here (needs root)"
    exit 0
fi
vips black "$tmp/b.v" 32 24 --bands 3 && vips copy "$tmp/b.v" "$tmp/storage/in/a.png" ||
    {
        fail setup "cannot make the source"
        exit 1
    }
port=$(serve_free_port)
cat >"$tmp/cfg.json" <<JSON
{"listen": "127.0.0.1:$port", "workers": 1,
 "plugins": {"dirs": ["$(serve_plugin_dir)"], "enable": ["ops-vips", "storage-local", "api-http"]},
 "jobstore": {"driver": "sqlite", "path": "$mnt/kiln.db"},
 "rate_limit": {"per_second": 10000, "burst": 10000},
 "services": [{"id": 1, "tokens": ["tok"], "storage": {"plugin": "local", "root": "$tmp/storage"}}]}
JSON
url="http://127.0.0.1:$port"
serve_start "$tmp/cfg.json" "$tmp/log" "$url" || {
    fail start "the server did not start: $(tail -3 "$tmp/log")"
    exit 1
}
# code_body METHOD PATH [BODY]: prints "CODE BODY".
call() {
    local out code
    out=$(curl -s -w '\n%{http_code}' -X "$1" -H 'Authorization: Bearer tok' \
        ${3:+--data-binary "$3"} "$url$2")
    code=${out##*$'\n'}
    echo "$code ${out%$'\n'*}"
}
req='{"service_id": 1, "source": "/in/a.png", "jobs": [{"destination": "/out/a.png"}]}'
got=$(call GET /health)
[ "${got%% *}" = 200 ] && ok healthy || fail healthy "$got"

# Fill the disk. A few health checks: the first ones may still fit in
# space SQLite already holds.
dd if=/dev/zero of="$mnt/fill" bs=64k 2>/dev/null
for _ in $(seq 20); do
    got=$(call GET /health)
    [ "${got%% *}" = 503 ] && break
done
case "$got" in
"503 "*"$mnt/kiln.db"*'no space left on device'*) ok full-disk-503 ;;
*) fail full-disk-503 "$got" ;;
esac
got=$(call POST /request "$req")
case "$got" in
5[0-9][0-9]" "*'no space left on device'*) ok full-disk-submit-refused ;;
*) fail full-disk-submit-refused "$got" ;;
esac
kill -0 "$SERVE_PID" 2>/dev/null && ok still-serving || fail still-serving "the server exited"

rm -f "$mnt/fill"
got=$(call GET /health)
[ "${got%% *}" = 200 ] && ok healthy-again || fail healthy-again "$got"
got=$(call POST /request "$req")
[ "${got%% *}" = 200 ] && ok submit-again || fail submit-again "$got"
serve_stop
exit $status
