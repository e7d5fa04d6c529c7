#!/usr/bin/env bash
# The "azure" storage backend against Azurite (Microsoft's emulator, which
# checks Shared Key signatures) on 127.0.0.1, with Microsoft's
# @azure/storage-blob client (tests/exec/storage_azure_client.js) putting
# the sources in and reading kiln's outputs back:
#  - the signer: hand-written strings to sign ($BUILD/tests/azure-sharedkey)
#    and the same Authorization header as the SDK's own policy;
#  - requests through `kiln run --config`: outputs byte-identical to the
#    same requests on local storage, small ones in one Put Blob, larger
#    ones (a TIFF among them) in staged blocks committed by Put Block List;
#    a TIFF source, read with seeks (ranged Get Blob); paths resolved as
#    on local storage; the shipped example configuration;
#  - through a fault-injecting proxy (storage_azure_proxy.py): 503
#    ServerBusy retried, a cut body resumed with a range, connections
#    reused, retries exhausted;
#  - a missing source: not found, naming container and blob; a wrong key:
#    a clear refusal, nothing written; fail_on_conversion_error with a
#    failing job: nothing visible, not even the staged blocks; a leased
#    blob refusing Put Blob and Put Block: the old blob is left whole;
#  - configuration errors, and the key never in kiln's output.
cd "$(dirname "$0")/../.." || exit 1
. tests/exec/lib.sh
. tests/exec/lib_serve.sh   # serve_free_port, serve_plugin_dir
exec_setup
require_tools node

# Azurite's well-known development account and key, documented by
# Microsoft for the emulator (not a secret).
ACCOUNT=devstoreaccount1
KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
# Another valid key of the same length: what a mistyped key looks like.
WRONG_KEY=$(printf 'not the key of this account, 64 bytes long......................' | base64 -w0)
BS=65536   # block_size and single_put_max for the test: outputs above go in blocks
T=storage_azure
SK=$(dirname "$KILN")/tests/azure-sharedkey
PLUGDIR=$(serve_plugin_dir)
AZ_PID="" PROXY_PID=""
# Azurite takes minutes to close on SIGTERM: give it a moment, then kill.
stop_pid() {
    [ -n "$1" ] || return 0
    kill "$1" 2>/dev/null
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$1" 2>/dev/null
    wait "$1" 2>/dev/null
}
trap 'stop_pid "$PROXY_PID"; stop_pid "$AZ_PID"; _cleanup' EXIT
wait_port() {  # PORT: up to 10 s
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# ------------------------------------------------------------- the signer
if [ -x "$SK" ]; then
    "$SK" >"$WORK/sk.out" 2>&1
    while IFS= read -r line; do
        case $line in
        ok\ *) ok "$T/${line#ok }" ;;
        FAIL\ *) l=${line#FAIL }; fail "$T/${l%%: *}" "${l#*: }" ;;
        esac
    done <"$WORK/sk.out"
    grep -q '^ok ' "$WORK/sk.out" || fail "$T/sharedkey" "$SK printed no check: $(head -c 200 "$WORK/sk.out")"
else
    fail "$T/sharedkey" "$SK is missing (make test-build builds it)"
fi

NM=$(bash tests/servers/install.sh 2>"$WORK/npm.err") || {
    skip "$T" "cannot install azurite and @azure/storage-blob: $(tail -n 1 "$WORK/npm.err")"
    finish
}
export NODE_PATH=$NM
client() { node tests/exec/storage_azure_client.js; }

# The same requests as kiln makes them, signed by the SDK's policy with
# its date (one Node run for all), then by kiln's signer with that date.
URL=http://127.0.0.1:10000/$ACCOUNT
SIGN_CASES=(
    "get-range GET /$ACCOUNT/photos/in/a%20b.jpg x-ms-version:2021-08-06 x-ms-range:bytes=4096- If-Match:\"0x8DC0FFEE\""
    "put-blob PUT /$ACCOUNT/photos/out/a.jpg Content-Length:14134 Content-Type:image/jpeg x-ms-blob-type:BlockBlob x-ms-version:2021-08-06"
    "put-block PUT /$ACCOUNT/photos/out/b.png?comp=block&blockid=a2lsbi0%2B%2Fx%3D Content-Length:65536 x-ms-version:2021-08-06"
    "put-block-list PUT /$ACCOUNT/photos/out/b.png?comp=blocklist Content-Length:200 x-ms-blob-content-type:image/png x-ms-version:2021-08-06"
)
if [ -x "$SK" ]; then
    for c in "${SIGN_CASES[@]}"; do
        read -r _ method path headers <<<"$c"
        echo "sign $ACCOUNT $KEY $method $URL/${path#/$ACCOUNT/} $headers"
    done | client >"$WORK/sign.out" 2>&1
    i=0
    for c in "${SIGN_CASES[@]}"; do
        read -r name method path headers <<<"$c"
        i=$((i + 1))
        sdk=$(grep '^sign ' "$WORK/sign.out" | sed -n "${i}p")
        date=${sdk#sign }; date=${date%%$'\t'*}; want=${sdk##*$'\t'}
        # shellcheck disable=SC2086 # the headers are words
        got=$("$SK" sign "$ACCOUNT" "$KEY" "$method" "$path" "x-ms-date:$date" $headers 2>&1)
        if [ -n "$want" ] && [ "$got" = "$want" ]; then ok "$T/sdk-signature/$name"
        else fail "$T/sdk-signature/$name" "kiln signs \"$got\", the SDK \"$want\" ($(head -c 200 "$WORK/sign.out"))"; fi
    done
fi

# ------------------------------------------------------------- Azurite
PORT=$(serve_free_port)
# --skipApiVersionCheck: the SDK client asks for a newer API version
# than this Azurite lists; kiln itself asks for 2021-08-06.
"$NM/.bin/azurite-blob" --blobHost 127.0.0.1 --blobPort "$PORT" \
    --location "$WORK/azurite" --silent --skipApiVersionCheck \
    >"$WORK/azurite.log" 2>&1 &
AZ_PID=$!
if ! wait_port "$PORT"; then
    fail "$T/azurite" "azurite did not listen on port $PORT: $(tail -n 3 "$WORK/azurite.log")"
    finish
fi
ENDPOINT=http://127.0.0.1:$PORT/$ACCOUNT
export AZ_CONN="DefaultEndpointsProtocol=http;AccountName=$ACCOUNT;AccountKey=$KEY;BlobEndpoint=$ENDPOINT;"

# Sources: a photo-like JPEG larger than kiln's read buffer, and a TIFF,
# which libvips reads with seeks.
convert -seed 7 -size 1400x1000 plasma:fractal -quality 95 "$ROOT/in/src.jpg"
convert "$ROOT/in/src.jpg" -resize 500x350! -compress none "$ROOT/in/src.tif"
convert rose: -resize 120x80! "$ROOT/in/old.jpg"
cat >"$WORK/setup.cmds" <<EOF
mkcontainer photos
upload photos in/src.jpg $ROOT/in/src.jpg
upload photos in/src.tif $ROOT/in/src.tif
upload photos out/leased.jpg $ROOT/in/old.jpg
lease photos out/leased.jpg
upload photos out/leased.png $ROOT/in/old.jpg
lease photos out/leased.png
mkcontainer thumbnails
upload thumbnails in/src.jpg $ROOT/in/src.jpg
EOF
client <"$WORK/setup.cmds" >"$WORK/setup.out" 2>&1
check "$T/setup" "the SDK could not fill the container: $(grep -m1 error "$WORK/setup.out")" \
    [ "$(grep -c '^lease out/leased.... ok' "$WORK/setup.out")" = 2 ]

# config FILE KEY [ENDPOINT [EXTRA-SETTINGS]]
config() {
    cat >"$1" <<EOF
{"plugins": {"dirs": ["$PLUGDIR"], "enable": ["ops-vips", "storage-azure", "storage-local"]},
 "services": [{"id": 1, "tokens": ["t"],
   "storage": {"plugin": "azure", "account": "$ACCOUNT", "key": "$2", "container": "photos",
               "endpoint": "${3:-$ENDPOINT}", "block_size": $BS, "single_put_max": $BS${4:+, $4}}}]}
EOF
}
config "$WORK/az.json" "$KEY"
config "$WORK/wrong.json" "$WRONG_KEY"

# az_run TAG CONFIG [--storage-root DIR] REQUEST...: one kiln run; keeps
# $WORK/TAG.out/.err and each request's result in $WORK/NAME.out (NAME:
# the request file's name less .json); sets RUN_RC. A sanitizer report or
# a crash fails.
az_run() {
    local tag=$1 cfg=$2 r
    shift 2
    RUN_RC=0
    "$KILN" run --config "$cfg" "$@" >"$WORK/$tag.out" 2>"$WORK/$tag.err" || RUN_RC=$?
    if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' "$WORK/$tag.err"; then
        fail "$T/$tag/sanitizer" "$(grep -m1 -E 'AddressSanitizer|LeakSanitizer|runtime error:' "$WORK/$tag.err")"
    fi
    if [ "$RUN_RC" -ge 128 ]; then
        fail "$T/$tag/crash" "kiln run exited with status $RUN_RC: $(tail -n 3 "$WORK/$tag.err" | tr '\n' ' ')"
    fi
    for r; do
        case $r in
        "$WORK/$tag.json") ;;  # its result is TAG.out already
        *.json) jq -c --arg r "$r" 'select(.request == $r)' "$WORK/$tag.out" \
                    >"$WORK/$(basename "$r" .json).out" 2>/dev/null ;;
        esac
    done
}
# all_true CMD... -- CMD...: every command succeeds
all_true() {
    local -a c=()
    while [ $# -gt 0 ]; do
        if [ "$1" = -- ]; then "${c[@]}" || return 1; c=(); else c+=("$1"); fi
        shift
    done
    "${c[@]}"
}
jfield() { jq -r "$2" "$WORK/$1.out" 2>/dev/null; }
errors() { jfield "$1" '[.error, .jobs[]?.error] | map(select(. != null)) | join("; ")'; }
job() {  # REQUEST DESTINATION JQ-FILTER
    jq -r --arg d "$2" ".jobs[] | select(.destination == \$d) | $3" "$WORK/$1.out" 2>/dev/null
}
req() {  # FILE SOURCE EXTRA DEST=TRANSFORMATIONS...
    local file=$1 src=$2 extra=$3 jobs="" j
    shift 3
    for j; do jobs="$jobs{\"destination\":\"${j%%=*}\",\"transformations\":${j#*=}},"; done
    echo "{\"service_id\":1,\"source\":\"$src\",$extra\"jobs\":[${jobs%,}]}" >"$file"
}
R600='[{"type":"resize","width":600,"height":420}]'
R400='[{"type":"resize","width":400,"height":280}]'
BAD='[{"type":"watermark","source":"/no/such-watermark.png","gravity":"center","width":10}]'

# ------------------------------------------------------------- round trip
req "$WORK/main.json" /in/src.jpg "" "/out/a.jpg=[]" "/out/b.png=$R600" "/out/c.tif=$R400" \
    "/out/d.webp=$R400"
req "$WORK/tif.json" /in/src.tif "" "/out/from-tif.png=[]"
# Paths resolve as on local storage; ".." above the container is refused.
req "$WORK/paths.json" /in/./sub/../src.jpg "" "/out//paths/./a.jpg=$R400"
req "$WORK/escape.json" /in/src.jpg "" "/out/../../x.jpg=[]"
cp "$WORK/main.json" "$WORK/local-main.json"
cp "$WORK/tif.json" "$WORK/local-tif.json"
t0=${EPOCHREALTIME/./}
# Two workers: requests share the storage's connection pool at once.
az_run round "$WORK/az.json" --workers 2 "$WORK/main.json" "$WORK/tif.json" "$WORK/paths.json" \
    "$WORK/escape.json"
t1=${EPOCHREALTIME/./}
az_run local "$WORK/az.json" --storage-root "$ROOT" "$WORK/local-main.json" "$WORK/local-tif.json"
echo "# azure: 4 requests, 7 outputs in one kiln run: $(( (t1 - t0) / 1000 )) ms"
check "$T/run/finished" "status $(jfield main .status): $(errors main)" [ "$(jfield main .status)" = FINISHED ]
check "$T/tif-source/finished" "status $(jfield tif .status): $(errors tif)" [ "$(jfield tif .status)" = FINISHED ]
check "$T/paths/resolved" "status $(jfield paths .status): $(errors paths)" [ "$(jfield paths .status)" = FINISHED ]
check "$T/paths/escape-refused" "$(errors escape)" \
    grep -q 'path "/out/../../x.jpg" escapes the storage root' <<<"$(errors escape)"

# The shipped example configuration, its Azurite service pointed here.
jq --arg dir "$PLUGDIR" --arg ep "$ENDPOINT" --arg db "$WORK/kiln.db" \
    '.plugins.dirs = [$dir] | .jobstore.path = $db | .services[1].storage.endpoint = $ep' \
    examples/config/azure.json >"$WORK/example.json"
req "$WORK/example-req.json" /in/src.jpg "" "/example.jpg=$R400"
sed -i 's/"service_id":1/"service_id":2/' "$WORK/example-req.json"
KILN_TOKEN=t KILN_POSTBACK_SECRET=s KILN_DEV_TOKEN=d AZURE_STORAGE_KEY=$KEY AZURITE_KEY=$KEY \
    az_run example "$WORK/example.json" "$WORK/example-req.json"
check "$T/example-config" "$(jfield example-req .status) $(errors example-req) $(head -c 300 "$WORK/example.err")" \
    [ "$(jfield example-req .status)" = FINISHED ]

# ------------------------------------------------------------- retries
# Through a proxy that answers every third request with 503 ServerBusy
# and cuts the source's body short once: kiln retries, resumes the read
# with a range of the same blob version, and the outputs are the same.
PPORT=$(serve_free_port)
if [ -x /usr/bin/python3 ]; then
    /usr/bin/python3 tests/exec/storage_azure_proxy.py "$PPORT" "$PORT" "$WORK/proxy.log" \
        --busy 3 --cut 200000 2>"$WORK/proxy.err" &
    PROXY_PID=$!
fi
if [ -z "$PROXY_PID" ]; then
    skip "$T/retry" "/usr/bin/python3 is not installed (make deps)"
elif wait_port "$PPORT"; then
    config "$WORK/proxy.json" "$KEY" "http://127.0.0.1:$PPORT/$ACCOUNT"
    req "$WORK/retry.json" /in/src.jpg "" "/out/retry/a.jpg=[]" "/out/retry/b.png=$R600"
    az_run retry "$WORK/proxy.json" "$WORK/retry.json"
    check "$T/retry/finished" "status $(jfield retry .status): $(errors retry)" \
        [ "$(jfield retry .status)" = FINISHED ]
    check "$T/retry/server-busy-retried" "the proxy answered no 503" grep -q '^busy' "$WORK/proxy.log"
    check "$T/retry/cut-read-resumed-with-range" "$(grep -E '^(cut|req GET)' "$WORK/proxy.log" | tr '\n' ' ')" \
        grep -q "^req GET /$ACCOUNT/photos/in/src.jpg bytes=[1-9][0-9]*- 206" "$WORK/proxy.log"
    n_conn=$(grep -c '^conn' "$WORK/proxy.log")
    n_req=$(grep -cE '^(req|busy)' "$WORK/proxy.log")
    echo "# through the proxy: $n_req requests on $n_conn connections"
    check "$T/retry/connections-reused" "$n_req requests on $n_conn connections" \
        [ "$((n_conn * 2))" -le "$n_req" ]
    # retries 0: the first 503 is the answer (one request in three gets
    # one, and this process makes five).
    config "$WORK/proxy0.json" "$KEY" "http://127.0.0.1:$PPORT/$ACCOUNT" '"retries": 0'
    req "$WORK/busy.json" /in/src.jpg "" "/out/retry/busy.jpg=[]"
    az_run busy "$WORK/proxy0.json" "$WORK/busy.json"
    check "$T/retry/gives-up" "status $(jfield busy .status): $(errors busy)" \
        grep -q 'the service answered 503 ServerBusy.*(1 attempt)' <<<"$(errors busy)"
else
    fail "$T/retry/proxy" "the proxy did not start: $(tail -n 3 "$WORK/proxy.err")"
fi
stop_pid "$PROXY_PID"
PROXY_PID=""

# ------------------------------------------------------------- reading back
mkdir -p "$WORK/dl"
outs="a.jpg b.png c.tif d.webp from-tif.png"
{
    for f in $outs retry/a.jpg retry/b.png; do
        echo "download photos out/$f $WORK/dl/${f//\//-}"
        echo "info photos out/$f"
    done
    echo "info photos out/paths/a.jpg"
    echo "list photos"
} | client >"$WORK/dl.out" 2>&1
declare -A CTYPE NBLOCK
while read -r _ b _ type committed _; do
    CTYPE[${b#out/}]=$type NBLOCK[${b#out/}]=$committed
done < <(grep '^info ' "$WORK/dl.out")
vheader $(for f in $outs; do echo "$WORK/dl/$f"; done)
for f in $outs; do
    if [ ! -f "$WORK/dl/$f" ]; then
        fail "$T/read-back/$f" "the SDK could not download out/$f: $(grep -m1 "out/$f\|error" "$WORK/dl.out")"
        continue
    fi
    check "$T/read-back/$f/same-as-local" "differs from the same request on local storage" \
        cmp -s "$WORK/dl/$f" "$ROOT/out/$f"
    r=main; [ "$f" = from-tif.png ] && r=tif
    want=$(job $r "/out/$f" '"\(.width)x\(.height)"')
    check "$T/read-back/$f/header" "vipsheader says ${VSIZE[$WORK/dl/$f]:-nothing}, kiln reported $want" \
        [ "${VSIZE[$WORK/dl/$f]:-}" = "$want" ]
    size=$(stat -c %s "$WORK/dl/$f")
    if [ "$size" -gt "$BS" ]; then
        blocks=$(( (size + BS - 1) / BS ))
        check "$T/read-back/$f/staged-in-$blocks-blocks" "$size bytes: ${NBLOCK[$f]:-?} committed blocks, expected $blocks (Put Block + Put Block List)" \
            [ "${NBLOCK[$f]:-}" = "$blocks" ]
    else
        check "$T/read-back/$f/one-put-blob" "$size bytes: ${NBLOCK[$f]:-?} committed blocks, expected none (one Put Blob)" \
            [ "${NBLOCK[$f]:-}" = 0 ]
    fi
done
check "$T/read-back/content-type" "out/b.png is ${CTYPE[b.png]:-?}, out/a.jpg ${CTYPE[a.jpg]:-?}" \
    [ "${CTYPE[b.png]:-}/${CTYPE[a.jpg]:-}/${CTYPE[c.tif]:-}" = "image/png/image/jpeg/image/tiff" ]
check "$T/paths/blob-name" "$(grep 'out/paths' "$WORK/dl.out")" grep -q '^info out/paths/a.jpg [0-9]' "$WORK/dl.out"
if [ -s "$WORK/retry.out" ]; then
    check "$T/retry/same-outputs" "out/retry/* differ from the outputs without faults" \
        all_true cmp -s "$WORK/dl/retry-a.jpg" "$ROOT/out/a.jpg" -- cmp -s "$WORK/dl/retry-b.png" "$ROOT/out/b.png"
fi
before=$(grep '^list ' "$WORK/dl.out" | sort)

# ------------------------------------------------------------- errors
req "$WORK/missing.json" /in/nope.jpg "" "/out/missing.jpg=[]"
# fail_on_conversion_error: the good job is big enough to stage blocks
# before the bad one (a watermark file that is not there) fails.
req "$WORK/atomic.json" /in/src.jpg '"fail_on_conversion_error":true,' \
    "/out/atomic/good.png=$R600" "/out/atomic/bad.png=$BAD"
# A leased blob refuses writes without the lease: the commit (small
# output, Put Blob) and the staging (large output, Put Block) fail, and
# the blob keeps its old content.
req "$WORK/lease.json" /in/src.jpg '"fail_on_conversion_error":false,' \
    "/out/leased.jpg=$R400" "/out/leased.png=$R600"
az_run errors "$WORK/az.json" "$WORK/missing.json" "$WORK/atomic.json" "$WORK/lease.json"
req "$WORK/wrong-req.json" /in/src.jpg "" "/out/wrong.jpg=[]"
az_run wrong "$WORK/wrong.json" "$WORK/wrong-req.json"
wrong_rc=$RUN_RC
{
    echo "info photos out/atomic/good.png"
    echo "info photos out/atomic/bad.png"
    echo "download photos out/leased.jpg $WORK/dl/leased.jpg"
    echo "download photos out/leased.png $WORK/dl/leased.png"
    echo "list photos"
} | client >"$WORK/after.out" 2>&1

e=$(errors missing)
check "$T/missing-source/not-found" "error: $e" grep -q 'not found' <<<"$e"
check "$T/missing-source/names-blob-and-container" "error: $e" \
    grep -q '"in/nope.jpg".*container "photos"' <<<"$e"

e=$(errors wrong-req)
check "$T/wrong-key/failed" "status $(jfield wrong-req .status), exit $wrong_rc" \
    [ "$(jfield wrong-req .status)/$wrong_rc" = FAILED/1 ]
check "$T/wrong-key/says-key-refused" "error: $e" grep -q 'refused the account key.*403' <<<"$e"
check "$T/wrong-key/names-account-and-container" "error: $e" \
    grep -q "container \"photos\": account \"$ACCOUNT\"" <<<"$e"

check "$T/fail-on-conversion-error/failed" "status $(jfield atomic .status)" \
    [ "$(jfield atomic .status)" = FAILED ]
check "$T/fail-on-conversion-error/nothing-visible" "$(grep atomic "$WORK/after.out" | tr '\n' ' ')" \
    [ "$(grep -c '^info out/atomic/.* absent$' "$WORK/after.out")" = 2 ]

for f in leased.jpg leased.png; do
    e=$(job lease "/out/$f" .error)
    s=$(job lease "/out/$f" .status)
    check "$T/commit-refused/$f/job-failed" "job $s: $e" [ "$s" = FAILED ]
    check "$T/commit-refused/$f/says-why" "error: $e" grep -q "blob \"out/$f\".*412 LeaseIdMissing" <<<"$e"
    check "$T/commit-refused/$f/old-blob-whole" "out/$f changed" cmp -s "$WORK/dl/$f" "$ROOT/in/old.jpg"
done

after=$(grep '^list ' "$WORK/after.out" | sort)
check "$T/errors/nothing-written" "new blobs: $(comm -13 <(echo "$before") <(echo "$after") | tr '\n' ' ')" \
    [ -n "$before" ] && [ "$before" = "$after" ]

# ------------------------------------------------------------- settings
config "$WORK/badkey.json" "${KEY%??}!="
az_run badkey "$WORK/badkey.json" "$WORK/missing.json"
e=$(cat "$WORK/badkey.out" "$WORK/badkey.err")
check "$T/config/bad-key" "exit $RUN_RC: $e" grep -q 'not valid base64' <<<"$e"
sed 's/"account": "[^"]*"/"account": "Bad_Account"/' "$WORK/az.json" >"$WORK/badacct.json"
az_run badacct "$WORK/badacct.json" "$WORK/missing.json"
check "$T/config/bad-account" "$(cat "$WORK/badacct.err")" grep -q '"Bad_Account" is not a storage account name' "$WORK/badacct.err"

# ------------------------------------------------------------- secrets
leaks=$(grep -lF -e "$KEY" -e "$WRONG_KEY" -e "${KEY%??}" "$WORK"/*.out "$WORK"/*.err 2>/dev/null |
        grep -v -e /setup.out -e /dl.out -e /after.out -e /sign.out)
check "$T/key-never-printed" "the key appears in $leaks" [ -z "$leaks" ]

finish
