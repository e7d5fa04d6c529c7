#!/usr/bin/env bash
# A full disk is named as one (docs/ops.md section 6, docs/config.md
# "jobstore"): an output, libvips' temporary file for a large decode, the
# results of `kiln run` on its standard output, and the job store of
# `kiln serve`, each on a small tmpfs filled up here, fail with "no space
# left on device" and the path, never "Unknown error -1" (libvips 8.14's
# disc sink turns its writer's -1 into that errno). Needs mount (root);
# skipped, visibly, otherwise.
cd "$(dirname "$0")/../.." || exit 1
. tests/exec/lib.sh
. tests/exec/lib_serve.sh
exec_setup
require_tools curl

MOUNTS=()
disk_full_cleanup() {
    serve_stop
    local m
    for m in "${MOUNTS[@]}"; do umount "$m" 2>/dev/null; done
    _cleanup
}
trap disk_full_cleanup EXIT

# small_disk DIR SIZE: a tmpfs of SIZE at DIR, or skip the whole script.
small_disk() {
    mkdir -p "$1"
    if ! mount -t tmpfs -o "size=$2" tmpfs "$1" 2>"$WORK/mount.err"; then
        skip "$T_NAME" "cannot mount a tmpfs here ($(head -c 200 "$WORK/mount.err")): run as root to test full disks"
        finish
    fi
    MOUNTS+=("$1")
}
# fill DIR: no free block left in DIR's file system.
fill() { dd if=/dev/zero of="$1/.fill" bs=4k 2>/dev/null; :; }

vips gaussnoise "$WORK/n.v" 600 400 && vips cast "$WORK/n.v" "$WORK/g.v" uchar &&
    vips bandjoin "$WORK/g.v $WORK/g.v $WORK/g.v" "$ROOT/in/noise.png" ||
    { fail "$T_NAME/setup" "cannot make the source"; finish; }

# --- outputs on a full disk, each format's encoder
small_disk "$ROOT/out" 64k
fill "$ROOT/out"
cat >"$WORK/out.json" <<'JSON'
{"service_id": 1, "source": "/in/noise.png", "fail_on_conversion_error": false, "jobs": [
 {"destination": "/out/a.png", "transformations": []},
 {"destination": "/out/a.jpg", "transformations": []},
 {"destination": "/out/a.webp", "transformations": []},
 {"destination": "/out/a.tif", "transformations": []},
 {"destination": "/out/a.gif", "transformations": []}]}
JSON
run_kiln out "$WORK/out.json"
for d in /out/a.png /out/a.jpg /out/a.webp /out/a.tif /out/a.gif; do
    e=${JERR[$d]:-}
    if [[ ${JST[$d]:-} == FAILED && $e == *"\"$d\": no space left on device"* && $e != *"Unknown error"* ]]; then
        ok "$T_NAME/output/${d##*/}"
    else
        fail "$T_NAME/output/${d##*/}" "job ${JST[$d]:-missing}: \"$e\""
    fi
done
left=$(find "$ROOT/out" -mindepth 1 ! -name .fill -printf '%f ')
check "$T_NAME/output/nothing-left" "files left: $left" [ -z "$left" ]

# --- the results of kiln run on a full standard output
small_disk "$WORK/stdout" 16k
fill "$WORK/stdout"
cat >"$WORK/ok.json" <<'JSON'
{"service_id": 1, "source": "/in/noise.png", "jobs": [{"destination": "/ok.png", "transformations": []}]}
JSON
rc=0
"$KILN" run --storage-root "$ROOT" "$WORK/ok.json" >"$WORK/stdout/res.json" 2>"$WORK/stdout.err" || rc=$?
e=$(cat "$WORK/stdout.err")
if [ "$rc" != 0 ] && [[ $e == *"\"$WORK/stdout/res.json\""*"no space left on device"* ]]; then
    ok "$T_NAME/run-stdout"
else
    fail "$T_NAME/run-stdout" "exit $rc, stderr \"$e\" (want non-zero naming $WORK/stdout/res.json, no space left on device)"
fi

# --- libvips' temporary file for a large random-access decode (two jobs:
# the source is decoded whole; VIPS_DISC_THRESHOLD makes this one large)
small_disk "$WORK/tmp" 64k
fill "$WORK/tmp"
umount "$ROOT/out" && mkdir -p "$ROOT/out"
cat >"$WORK/tmp.json" <<'JSON'
{"service_id": 1, "source": "/in/noise.png", "jobs": [
 {"destination": "/out/t1.png", "transformations": []},
 {"destination": "/out/t2.png", "transformations": [{"type": "flip", "direction": "x"}]}]}
JSON
TMPDIR=$WORK/tmp VIPS_DISC_THRESHOLD=100k "$KILN" run --storage-root "$ROOT" "$WORK/tmp.json" \
    >"$WORK/tmp.out" 2>"$WORK/tmp.err"
e=$(jq -r .error "$WORK/tmp.out" 2>/dev/null)
if [[ $e == *'"/in/noise.png": no space left on device'*"\"$WORK/tmp\""* && $e != *"damaged"* ]]; then
    ok "$T_NAME/temporary-file"
else
    fail "$T_NAME/temporary-file" "error \"$e\" (want no space left on device in $WORK/tmp, not damaged)"
fi

# --- the job store of kiln serve on a full disk
small_disk "$WORK/db" 256k
port=$(serve_free_port)
cat >"$WORK/cfg.json" <<JSON
{"listen": "127.0.0.1:$port", "workers": 1,
 "plugins": {"dirs": ["$(serve_plugin_dir)"], "enable": ["ops-vips", "storage-local", "api-http"]},
 "jobstore": {"driver": "sqlite", "path": "$WORK/db/kiln.db"},
 "services": [{"id": 1, "tokens": ["tok"], "storage": {"plugin": "local", "root": "$ROOT"}}]}
JSON
if serve_start "$WORK/cfg.json" "$WORK/serve.log" "http://127.0.0.1:$port"; then
    fill "$WORK/db"
    got=$(curl -s -w ' %{http_code}' -H 'Authorization: Bearer tok' \
        --data-binary "@$WORK/tmp.json" "http://127.0.0.1:$port/request")
    if [[ $got == *"job store \\\"$WORK/db/kiln.db\\\": "*"no space left on device"*" 503" && $got != *"job store: job store"* ]]; then
        ok "$T_NAME/job-store"
    else
        fail "$T_NAME/job-store" "answer: $got (want 503 naming $WORK/db/kiln.db, no space left on device)"
    fi
    serve_stop
else
    fail "$T_NAME/job-store" "kiln serve did not start: $(tail -n 3 "$WORK/serve.log")"
fi
finish
