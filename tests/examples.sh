#!/usr/bin/env bash
# Every example compiles, and every example request runs: the requests in
# examples/requests and examples/public-api run against a storage root
# holding /samples/photo.jpg (1024x768) and /samples/logo.png (256x128
# RGBA), made here with libvips; every job must finish.
# The third-party plugin in examples/plugin builds with pkg-config alone
# and runs.
set -u
KILN=${KILN:-build/kiln}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0
ok() { echo "ok $1"; }
fail() { echo "FAIL $1: $2"; status=1; }

mkdir -p "$tmp/root/samples"
vips gaussnoise "$tmp/n.v" 1024 768 --mean 128 --sigma 40 &&
    vips colourspace "$tmp/n.v" "$tmp/g.v" srgb &&
    vips bandjoin "$tmp/g.v $tmp/g.v $tmp/g.v" "$tmp/root/samples/photo.jpg" ||
    { fail examples "cannot make the sample photo"; exit 1; }
vips black "$tmp/b.v" 256 128 --bands 4 &&
    vips linear "$tmp/b.v" "$tmp/root/samples/logo.png" "1 1 1 1" "200 30 30 160" --uchar ||
    { fail examples "cannot make the sample logo"; exit 1; }

for req in examples/requests/*.json examples/public-api/*.json; do
    name=${req#examples/}
    if ! err=$("$KILN" compile "$req" 2>&1 >/dev/null); then
        fail "example/$name compiles" "$err"
        continue
    fi
    ok "example/$name compiles"
    out=$("$KILN" run --storage-root "$tmp/root" "$req" 2>"$tmp/err")
    if [ -s "$tmp/err" ]; then
        fail "example/$name runs" "stderr: $(head -c 300 "$tmp/err")"
        continue
    fi
    bad=$(printf '%s' "$out" | python3 -c '
import json, sys
r = json.loads(sys.stdin.read())
for j in r["jobs"]:
    if j["status"] == "FINISHED":
        continue
    print(j["destination"], j["error"])
')
    if [ -n "$bad" ]; then
        fail "example/$name runs" "$bad"
    else
        ok "example/$name runs"
    fi
done

# The example configurations load cleanly.
# Every ${NAME} they use gets a dummy value.
for v in $(grep -ho '\${[A-Z_0-9]*}' examples/config/*.json | tr -d '${}' | sort -u); do
    export "$v=example-$v"
done
for cfg in examples/config/*.json; do
    if out=$("$KILN" plugins --config "$cfg" 2>&1); then
        ok "example/$(basename "$cfg") loads"
    else
        fail "example/$(basename "$cfg") loads" "$out"
    fi
done

# The third-party plugin: builds with pkg-config alone, loads, runs.
if [ -d examples/plugin ]; then
    cp -r examples/plugin "$tmp/plugin"
    if make -s -C "$tmp/plugin" >"$tmp/build.log" 2>&1; then
        ok "example/plugin builds with pkg-config"
        plugdir=$(cd "$(dirname "$KILN")/plugins" && pwd)
        cat >"$tmp/config.json" <<JSON
{"plugins": {"dirs": ["$plugdir", "$tmp/plugin"],
             "enable": ["ops-vips", "storage-local", "vignette"]},
 "services": [{"id": 1, "tokens": ["t"],
               "storage": {"plugin": "local", "root": "$tmp/root"}}]}
JSON
        if out=$("$KILN" run --config "$tmp/config.json" \
                examples/plugin/request.json 2>&1); then
            ok "example/plugin runs"
        else
            fail "example/plugin runs" "$out"
        fi
    else
        fail "example/plugin builds with pkg-config" "$(tail -5 "$tmp/build.log")"
    fi
fi
exit $status
