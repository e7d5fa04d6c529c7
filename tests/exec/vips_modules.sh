#!/usr/bin/env bash
# kiln opens only the libvips modules it uses (core/vips_modules.c): a
# running server maps vips-heif (AVIF and HEIC sources) and none of
# vips-magick, vips-poppler, vips-openslide, vips-jxl or the libraries
# behind them, which libvips would otherwise open at start-up for formats
# kiln refuses. An AVIF source still decodes; with VIPSHOME set by the
# operator, libvips' own loading is left alone.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/exec/lib.sh
exec_setup
. tests/exec/lib_serve.sh
trap 'serve_stop KILL; _cleanup' EXIT
moddir=$(pkg-config --variable=libdir vips)/vips-modules-$(pkg-config --modversion vips | cut -d. -f1-2)
if [ ! -f "$moddir/vips-heif.so" ]; then
    skip "$T_NAME" "this libvips has no heif module in $moddir"
    finish
fi
port=$(serve_free_port)
cat >"$WORK/cfg.json" <<JSON
{"listen": "127.0.0.1:$port", "workers": 1,
 "plugins": {"dirs": ["$(serve_plugin_dir)"], "enable": ["ops-vips", "storage-local", "api-http"]},
 "jobstore": {"driver": "sqlite", "path": "$WORK/kiln.db"},
 "services": [{"id": 1, "tokens": ["tok"], "storage": {"plugin": "local", "root": "$ROOT"}}]}
JSON
if serve_start "$WORK/cfg.json" "$WORK/log" "http://127.0.0.1:$port"; then
    maps=$(cat "/proc/$SERVE_PID/maps")
    if grep -q 'vips-heif\.so' <<<"$maps"; then ok "$T_NAME/heif-loaded"; else
        fail "$T_NAME/heif-loaded" "vips-heif.so is not mapped"; fi
    others=$(grep -oE 'vips-(magick|poppler|openslide|jxl)\.so|libMagickCore[^ ]*|libpoppler[^ ]*' <<<"$maps" | sort -u | tr '\n' ' ')
    if [ -z "$others" ]; then ok "$T_NAME/others-not-loaded"; else
        fail "$T_NAME/others-not-loaded" "mapped: $others"; fi
    serve_stop
else
    fail "$T_NAME/serve" "the server did not start: $(tail -3 "$WORK/log")"
fi
vips black "$WORK/b.v" 48 32 --bands 3 && vips copy "$WORK/b.v" "$ROOT/in/a.avif" ||
    { fail "$T_NAME/setup" "cannot make an AVIF"; finish; }
cat >"$WORK/r.json" <<'JSON'
{"service_id": 1, "source": "/in/a.avif", "jobs": [{"destination": "/out/a.png"}]}
JSON
out=$("$KILN" run --storage-root "$ROOT" "$WORK/r.json" 2>"$WORK/err" | jq -r '.status')
[ "$out" = FINISHED ] && ok "$T_NAME/avif-decodes" || fail "$T_NAME/avif-decodes" "$out $(head -c 300 "$WORK/err")"
out=$(VIPSHOME=/usr "$KILN" run --storage-root "$ROOT" "$WORK/r.json" 2>"$WORK/err" | jq -r '.status')
[ "$out" = FINISHED ] && ok "$T_NAME/operator-vipshome" || fail "$T_NAME/operator-vipshome" "$out $(head -c 300 "$WORK/err")"
finish
