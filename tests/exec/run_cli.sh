#!/usr/bin/env bash
# kiln run as an operator meets it: limits checked from the header before
# decoding, paths confined to the storage root, results in request order
# with several workers, exit status, configuration errors.
set -u
. "$(dirname "$0")/lib.sh" 2>/dev/null || true
KILN=${KILN:-build/kiln}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0
ok() { echo "ok $1"; }
fail() { echo "FAIL $1: $2"; status=1; }
field() { python3 -c 'import json,sys; r=json.loads(sys.stdin.readline()); print(eval(sys.argv[1]))' "$1"; }

root="$tmp/root"
mkdir -p "$root/in" "$tmp/outside"
vips black "$tmp/b.v" 300 200 --bands 3 && vips copy "$tmp/b.v" "$root/in/a.png" ||
    { fail setup "cannot make the test image"; exit 1; }

req() { # FILE SOURCE DEST [EXTRA-JSON-FIELDS]
    printf '{"service_id": 1, "source": "%s", %s "jobs": [{"destination": "%s"}]}\n' \
        "$2" "${4:-}" "$3" >"$1"
}

# Pixel limit from the request, checked before decoding.
req "$tmp/r1.json" /in/a.png /out/a.jpg '"limits": {"max_pixels": 59999},'
out=$("$KILN" run --storage-root "$root" "$tmp/r1.json")
rc=$?
want='source: "/in/a.png" is 300x200, 60000 pixels, above the limit of 59999'
got=$(printf '%s' "$out" | field 'r["error"]')
[ "$rc" = 1 ] && [ "$got" = "$want" ] && [ ! -e "$root/out/a.jpg" ] &&
    ok "pixel limit from the request" ||
    fail "pixel limit from the request" "rc=$rc error=$got"

# The same from a deployment configuration.
cat >"$tmp/cfg.json" <<JSON
{"limits": {"max_pixels": 1000, "max_file_size": 100000000},
 "services": [{"id": 1, "tokens": ["t"],
               "storage": {"plugin": "local", "root": "$root"}}]}
JSON
req "$tmp/r2.json" /in/a.png /out/b.jpg
got=$("$KILN" run --config "$tmp/cfg.json" "$tmp/r2.json" | field 'r["error"]')
[ "$got" = 'source: "/in/a.png" is 300x200, 60000 pixels, above the limit of 1000' ] &&
    ok "pixel limit from the configuration" ||
    fail "pixel limit from the configuration" "$got"

# Each job names the backend that ran it; none ran a job refused from its
# header.
got=$("$KILN" run --config "$tmp/cfg.json" "$tmp/r2.json" | field 'r["jobs"][0]["backend"]')
[ "$got" = None ] && ok "no backend before the jobs run" ||
    fail "no backend before the jobs run" "$got"
req "$tmp/r2b.json" /in/a.png /out/b2.jpg
got=$("$KILN" run --storage-root "$root" "$tmp/r2b.json" | field 'r["jobs"][0]["status"] + " " + r["jobs"][0]["backend"]')
[ "$got" = "FINISHED vips" ] && ok "the backend that ran the job" ||
    fail "the backend that ran the job" "$got"

# File size limit, from the request.
size=$(stat -c %s "$root/in/a.png")
req "$tmp/r3.json" /in/a.png /out/c.jpg "\"limits\": {\"max_file_size\": $((size - 1))},"
got=$("$KILN" run --storage-root "$root" "$tmp/r3.json" | field 'r["error"]')
[ "$got" = "source: \"/in/a.png\" is $size bytes, above the limit of $((size - 1))" ] &&
    ok "file size limit" || fail "file size limit" "$got"

# The 280 MP giant is refused from its header (default limit 100 MP).
if [ -f "$SHARED/testdata/giant-20000x14000-gray.jpg" ]; then
    ln -s "$(cd "$SHARED/testdata" && pwd)/giant-20000x14000-gray.jpg" "$tmp/giant.jpg"
    cp "$SHARED/testdata/giant-20000x14000-gray.jpg" "$root/in/giant.jpg"
    req "$tmp/r4.json" /in/giant.jpg /out/giant.jpg
    got=$("$KILN" run --storage-root "$root" "$tmp/r4.json" | field 'r["error"]')
    [ "$got" = 'source: "/in/giant.jpg" is 20000x14000, 280000000 pixels, above the limit of 100000000' ] &&
        ok "giant source refused before decoding" ||
        fail "giant source refused before decoding" "$got"
else
    echo "skip giant source: $SHARED/testdata is absent"
fi

# Paths are confined to the storage root.
ln -s "$tmp/outside" "$root/escape"
for src in "/../outside.png" "/escape/x.png"; do
    req "$tmp/r5.json" "$src" /out/d.jpg
    got=$("$KILN" run --storage-root "$root" "$tmp/r5.json" | field 'r["error"]')
    case "$got" in
    *"escapes the storage root"*) ok "source $src refused" ;;
    *) fail "source $src refused" "$got" ;;
    esac
done
for dst in "/../outside/e.jpg" "/escape/e.jpg"; do
    req "$tmp/r6.json" /in/a.png "$dst"
    got=$("$KILN" run --storage-root "$root" "$tmp/r6.json" | field 'r["jobs"][0]["error"]')
    case "$got" in
    *"escapes the storage root"*) ok "destination $dst refused" ;;
    *) fail "destination $dst refused" "$got" ;;
    esac
done
[ -z "$(ls -A "$tmp/outside")" ] && ok "nothing written outside the root" ||
    fail "nothing written outside the root" "$(ls -A "$tmp/outside")"

# Missing source: FAILED, named.
req "$tmp/r7.json" /in/missing.png /out/f.jpg
got=$("$KILN" run --storage-root "$root" "$tmp/r7.json" | field 'r["error"]')
[ "$got" = 'source: service 1, storage "local": "/in/missing.png" not found in storage' ] &&
    ok "missing source" || fail "missing source" "$got"

# Many requests on two workers: one line each, in request order; exit 1
# because one failed.
for i in 1 2 3 4 5 6; do
    req "$tmp/m$i.json" /in/a.png "/out/m$i.png"
done
out=$("$KILN" run --workers 2 --storage-root "$root" "$tmp"/m{1,2,3}.json \
      "$tmp/r7.json" "$tmp"/m{4,5,6}.json)
rc=$?
order=$(printf '%s\n' "$out" | python3 -c '
import json, sys
print(" ".join(json.loads(l)["request"].rsplit("/", 1)[1] + ":" + json.loads(l)["status"] for l in sys.stdin))')
want="m1.json:FINISHED m2.json:FINISHED m3.json:FINISHED r7.json:FAILED m4.json:FINISHED m5.json:FINISHED m6.json:FINISHED"
[ "$rc" = 1 ] && [ "$order" = "$want" ] && ok "results in request order, exit 1" ||
    fail "results in request order, exit 1" "rc=$rc $order"
out=$("$KILN" run --workers 2 --storage-root "$root" "$tmp"/m{1,2}.json)
[ $? = 0 ] && ok "exit 0 when every request finished" ||
    fail "exit 0 when every request finished" "$out"

# More workers than a fixed array once held (256): the configuration
# allows up to 1024, and `kiln run` starts one per request up to that.
vips black "$tmp/t.v" 8 8 --bands 3 && vips copy "$tmp/t.v" "$root/in/t.png"
cat >"$tmp/cfgw.json" <<JSON
{"workers": 300,
 "services": [{"id": 1, "tokens": ["t"],
               "storage": {"plugin": "local", "root": "$root"}}]}
JSON
for i in $(seq 1 300); do req "$tmp/w$i.json" /in/t.png "/out/w$i.png"; done
out=$("$KILN" run --config "$tmp/cfgw.json" $(for i in $(seq 1 300); do echo "$tmp/w$i.json"; done) 2>"$tmp/w.err")
rc=$?
n=$(printf '%s\n' "$out" | grep -c '"status":"FINISHED"')
[ "$rc" = 0 ] && [ "$n" = 300 ] && [ -e "$root/out/w300.png" ] &&
    ! grep -qE 'AddressSanitizer|runtime error:' "$tmp/w.err" &&
    ok "300 workers for 300 requests" ||
    fail "300 workers for 300 requests" "rc=$rc finished=$n $(grep -m1 -E 'Sanitizer|runtime error' "$tmp/w.err")"

# An invalid request is reported with every error, not run.
printf '{"service_id": 1, "source": "/in/a.png", "jobs": [{"destination": "/o.bmp"}]}' >"$tmp/bad.json"
got=$("$KILN" run --storage-root "$root" "$tmp/bad.json" | field 'r["errors"][0]["path"] + " | " + r["errors"][0]["message"]')
[ "$got" = 'jobs[0].destination | unknown format ".bmp" in "/o.bmp" (expected .jpg, .jpeg, .png, .webp, .gif, .tif, .tiff, .avif or .heic)' ] &&
    ok "invalid request reported" || fail "invalid request reported" "$got"

# Configuration errors stop start-up and name the path.
printf '{"services": [{"id": 1, "storage": {"plugin": "lokal", "root": "x"}}]}' >"$tmp/c1.json"
got=$("$KILN" run --config "$tmp/c1.json" "$tmp/m1.json" 2>&1)
[ "$got" = 'kiln: services[0].storage: no storage backend "lokal" is loaded (did you mean "local"?) (enable its plugin, e.g. "storage-lokal")' ] &&
    ok "unknown storage backend" || fail "unknown storage backend" "$got"
printf '{"services": [{"id": 1, "storage": {"plugin": "local", "rot": "x"}}]}' >"$tmp/c2.json"
got=$("$KILN" run --config "$tmp/c2.json" "$tmp/m1.json" 2>&1)
[ "$got" = 'kiln: services[0].storage.rot: unknown parameter "rot" (did you mean "root"?)' ] &&
    ok "unknown storage setting" || fail "unknown storage setting" "$got"
printf '{"plugins": {"enable": ["ops-vips", "storage-nope"]}, "services": [{"id": 1, "storage": {"plugin": "local", "root": "x"}}]}' >"$tmp/c3.json"
got=$("$KILN" plugins --config "$tmp/c3.json" 2>&1)
case "$got" in
'kiln: plugins.enable: plugin "storage-nope" not found (looked for storage-nope.so in '*) ok "missing enabled plugin" ;;
*) fail "missing enabled plugin" "$got" ;;
esac

# kiln ops: every op with its parameters, read from the registry.
names=$("$KILN" ops | grep -oE '^[a-z]+ ' | tr -d ' ' | tr '\n' ' ')
[ "$names" = "annotation blur brightness colorize contrast crop enhance filter fitmethod flip resize rotate ulb watermark zoom " ] &&
    ok "ops lists the fifteen ops" || fail "ops lists the fifteen ops" "$names"
got=$("$KILN" ops rotate | grep -A1 '^  degrees')
want='  degrees        number 0..360, at most 2 decimals; required
                 clockwise angle in degrees'
[ "$got" = "$want" ] && ok "ops NAME prints parameters" ||
    fail "ops NAME prints parameters" "$got"
got=$("$KILN" ops resise 2>&1)
[ "$got" = 'kiln ops: unknown op "resise" (did you mean "resize"?)' ] &&
    ok "ops unknown name" || fail "ops unknown name" "$got"
got=$("$KILN" plugins | grep -oE '^[a-z0-9-]+ +[0-9.]+ +ABI [0-9]+\.[0-9]+ +[0-9]+ ops, [0-9]+ storage, [0-9]+ services' | tr -s ' ')
missing=
while IFS= read -r line; do
    printf '%s\n' "$got" | grep -qxF "$line" || missing="$missing [$line]"
done <<'WANT'
ops-vips 0.1.0 ABI 2.2 15 ops, 0 storage, 0 services
storage-local 0.1.0 ABI 2.2 0 ops, 1 storage, 0 services
api-http 0.1.0 ABI 2.2 0 ops, 0 storage, 1 services
WANT
[ -z "$missing" ] && ok "plugins lists the shipped plugins" ||
    fail "plugins lists the shipped plugins" "missing:$missing in: $got"

# Usage errors exit 2.
"$KILN" compile --format svg "$tmp/m1.json" 2>/dev/null
[ $? = 2 ] && ok "usage error exits 2" || fail "usage error exits 2" "rc=$?"
exit $status
