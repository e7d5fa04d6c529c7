#!/usr/bin/env bash
# The "s3" storage backend against real servers on 127.0.0.1:
#  - the SigV4 signer against the AWS test suite (every case that applies
#    to S3, which signs paths as sent) via build/tests/s3-sigv4-vectors;
#  - s3rver (npm, tests/servers/install.sh), with awscli uploading the
#    sources and downloading what kiln wrote; kiln reaches it through
#    storage_s3_proxy.py, which counts connections, logs requests and
#    injects faults (503/500 answers, a body cut mid-transfer);
#  - the same requests on local storage give the reference: every output
#    read back from S3 must be byte-identical to it;
#  - streaming reads (one GET per process; Range requests for a TIFF that
#    seeks; a broken body resumed), multipart upload of an output above
#    part_size, retries, connection reuse, whole-or-nothing commits
#    (nothing visible after a failed process, a failed PUT or a failed
#    CompleteMultipartUpload), 404 / 403 / unreachable errors naming bucket
#    and key, virtual-hosted addressing, config errors, secrets never
#    printed, and with `kiln serve` a missing source retried by
#    wait_retry_delay until it appears.
set -u
cd "$(dirname "$0")/../.." || exit 1
KILN=${KILN:-build/kiln}
case $KILN in /*) ;; *) KILN=$PWD/$KILN ;; esac
SHARED=${SHARED:-../shared}
. tests/exec/lib_serve.sh # serve_free_port, serve_plugin_dir, serve_start/stop
PY=/usr/bin/python3
AWS=/usr/bin/aws
BUCKET=kiln-test
status=0
ok() { echo "ok storage_s3/$1"; }
fail() {
    echo "FAIL storage_s3/$1: $2"
    status=1
}
skip() { echo "skip storage_s3/$1: $2"; }

# ------------------------------------------------------------ signer
vec=$(dirname "$KILN")/tests/s3-sigv4-vectors
if [ ! -x "$vec" ]; then
    fail sigv4 "$vec is not built (make test-build builds it)"
elif [ ! -d "$SHARED/testdata/aws-sigv4" ]; then
    skip sigv4 "$SHARED/testdata/aws-sigv4 is absent (set SHARED)"
else
    out=$("$vec" "$SHARED/testdata/aws-sigv4" 2>&1)
    rc=$?
    printf '%s\n' "$out" | sed -e 's#^ok sigv4/#ok storage_s3/sigv4/#' \
        -e 's#^FAIL sigv4/#FAIL storage_s3/sigv4/#'
    n=$(printf '%s\n' "$out" | grep -c '^ok ')
    [ "$rc" = 0 ] || status=1
    [ "$n" -ge 30 ] || fail sigv4-count "only $n vector cases passed (expected at least 30)"
fi

# ------------------------------------------------------------ servers
for t in node "$AWS" "$PY" vips vipsheader jq curl cmp; do
    if ! command -v "$t" >/dev/null 2>&1; then
        skip round-trip "$t is not installed (make deps)"
        exit $status
    fi
done
if [ ! -x "$KILN" ]; then
    fail setup "$KILN not found (run make)"
    exit 1
fi
nm=$(bash tests/servers/install.sh 2>/tmp/kiln-s3-npm.$$.log)
if [ -z "$nm" ] || [ ! -f "$nm/s3rver/bin/s3rver.js" ]; then
    skip round-trip "s3rver could not be installed: $(tail -2 /tmp/kiln-s3-npm.$$.log | tr '\n' ' ')"
    rm -f /tmp/kiln-s3-npm.$$.log
    exit $status
fi
rm -f /tmp/kiln-s3-npm.$$.log

tmp=$(mktemp -d "${TMPDIR:-/tmp}/kiln-storage_s3.XXXXXX")
s3pid= proxypid=
cleanup() {
    serve_stop
    for p in $proxypid $s3pid; do
        kill "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    if [ "${KILN_TEST_KEEP:-0}" = 1 ]; then echo "# kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

# The secret kiln signs with; the proxy checks the signatures with it.
export KILN_TEST_S3_SECRET="kiln-s3-secret-$RANDOM$RANDOM-do-not-print"
s3port=$(serve_free_port)
mkdir -p "$tmp/s3"
# --service-endpoint localhost: "kiln-test.s3.localhost" is the bucket's
# virtual host (libcurl resolves *.localhost to the loopback itself).
node "$nm/s3rver/bin/s3rver.js" -d "$tmp/s3" -a 127.0.0.1 -p "$s3port" \
    --service-endpoint localhost --configure-bucket "$BUCKET" --silent \
    >"$tmp/s3rver.log" 2>&1 &
s3pid=$!
"$PY" tests/exec/storage_s3_proxy.py "$tmp/proxy.port" "$s3port" \
    "$tmp/proxy.log" "$tmp/plan" >"$tmp/proxy.err" 2>&1 &
proxypid=$!
for _ in $(seq 100); do
    [ -s "$tmp/proxy.port" ] && curl -s -o /dev/null "http://127.0.0.1:$s3port/" && break
    sleep 0.1
done
if ! curl -s -o /dev/null "http://127.0.0.1:$s3port/" || [ ! -s "$tmp/proxy.port" ]; then
    fail setup "s3rver or the proxy did not start: $(tail -3 "$tmp/s3rver.log" "$tmp/proxy.err")"
    exit 1
fi
pport=$(cat "$tmp/proxy.port")
touch "$tmp/proxy.log"

# awscli as the third-party client; the credentials are s3rver's.
awsc() {
    AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_DEFAULT_REGION=us-east-1 \
        AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null \
        AWS_EC2_METADATA_DISABLED=true \
        "$AWS" --endpoint-url "http://127.0.0.1:$s3port" "$@"
}

# ------------------------------------------------------------ sources
# Noise, so that any changed byte shows: a 640x480 JPEG, a 1600x1200 JPEG
# (about 2 MB, for the broken-transfer test) and the same as an
# uncompressed TIFF (5.76 MB: above part_size 5 MiB once written back,
# and libtiff seeks, so it is read with Range requests).
mkdir -p "$tmp/up/in" "$tmp/up/out/r7" "$tmp/root"
if ! { vips gaussnoise "$tmp/n.v" 400 300 --mean 128 --sigma 60 &&
    vips cast "$tmp/n.v" "$tmp/c.v" uchar &&
    vips bandjoin "$tmp/c.v $tmp/c.v $tmp/c.v" "$tmp/t.v" &&
    vips replicate "$tmp/t.v" "$tmp/rgb.v" 4 4 &&
    vips crop "$tmp/rgb.v" "$tmp/up/in/src.jpg[Q=90]" 0 0 640 480 &&
    vips copy "$tmp/rgb.v" "$tmp/up/in/big.jpg[Q=95]" &&
    vips copy "$tmp/rgb.v" "$tmp/up/in/big.tif" &&
    vips black "$tmp/up/out/r7/keep.jpg[Q=90]" 32 32 --bands 3; } 2>"$tmp/vips.err"; then
    fail setup "cannot make the test images: $(head -3 "$tmp/vips.err")"
    exit 1
fi
cp -r "$tmp/up/in" "$tmp/root/in"
if ! awsc s3 cp --recursive --quiet "$tmp/up" "s3://$BUCKET/" >"$tmp/aws-up.log" 2>&1; then
    fail setup "aws s3 cp could not upload the sources: $(tail -3 "$tmp/aws-up.log")"
    exit 1
fi

# ------------------------------------------------------------ kiln
deadport=$(serve_free_port)
plugdir=$(serve_plugin_dir)
s3cfg() { # ID ENDPOINT PATH-STYLE KEY-ID [EXTRA]
    printf '{"id": %s, "tokens": ["tok-%s"], "storage": {"plugin": "s3", "bucket": "%s", "region": "us-east-1", "endpoint": "%s", "path_style": %s, "access_key_id": "%s", "secret_access_key": "${KILN_TEST_S3_SECRET}", "part_size": 5%s}}' \
        "$1" "$1" "$BUCKET" "$2" "$3" "$4" "${5:-}"
}
cat >"$tmp/cfg.json" <<JSON
{"listen": "127.0.0.1:$(serve_free_port)", "workers": 1,
 "plugins": {"dirs": ["$plugdir"], "enable": ["ops-vips", "storage-local", "storage-s3", "api-http"]},
 "jobstore": {"driver": "sqlite", "path": "$tmp/kiln.db"},
 "rate_limit": {"per_second": 1000, "burst": 1000},
 "services": [
   $(s3cfg 1 "http://127.0.0.1:$pport" true S3RVER ', "retries": 3'),
   {"id": 2, "tokens": ["tok-2"], "storage": {"plugin": "local", "root": "$tmp/root"}},
   $(s3cfg 3 "http://s3.localhost:$s3port" false S3RVER),
   $(s3cfg 4 "http://127.0.0.1:$pport" true NOSUCHKEY),
   $(s3cfg 5 "http://127.0.0.1:$deadport" true S3RVER ', "retries": 1, "connect_timeout": 2'),
   $(s3cfg 6 "http://127.0.0.1:$pport" true S3RVER | sed 's/\${KILN_TEST_S3_SECRET}/not-the-secret/')
 ]}
JSON

# req FILE SERVICE SOURCE EXTRA DEST=TRANSFORMATIONS...
req() {
    local file=$1 svc=$2 src=$3 extra=$4 jobs="" j
    shift 4
    for j; do jobs="$jobs{\"destination\":\"${j%%=*}\",\"transformations\":${j#*=}},"; done
    printf '{"service_id":%s,"source":"%s",%s"jobs":[%s]}\n' "$svc" "$src" "$extra" "${jobs%,}" >"$file"
}
# run TAG REQUEST...: kiln run --config; $tmp/TAG.out, $tmp/TAG.err, RC.
RC=0
run() {
    local tag=$1
    shift
    RC=0
    "$KILN" run --config "$tmp/cfg.json" --workers "${WORKERS:-1}" "$@" >"$tmp/$tag.out" 2>"$tmp/$tag.err" || RC=$?
    if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' "$tmp/$tag.err"; then
        fail "$tag/sanitizer" "$(grep -m1 -E 'AddressSanitizer|LeakSanitizer|runtime error:' "$tmp/$tag.err")"
    fi
    if [ "$RC" -ge 128 ]; then
        fail "$tag/crash" "kiln run exited with status $RC: $(tail -n 3 "$tmp/$tag.err" | tr '\n' ' ')"
    fi
}
pst() { jq -r --arg r "$2" 'select(.request == $r) | .status' "$tmp/$1.out" 2>/dev/null; }
perr() { jq -r --arg r "$2" 'select(.request == $r) | (.error // "")' "$tmp/$1.out" 2>/dev/null; }
jst() { jq -r --arg d "$2" '.jobs[]? | select(.destination == $d) | .status' "$tmp/$1.out" 2>/dev/null; }
jerr() { jq -r --arg d "$2" '.jobs[]? | select(.destination == $d) | (.error // "")' "$tmp/$1.out" 2>/dev/null; }
# all_finished TAG: every job of every request in TAG.out FINISHED.
all_finished() {
    jq -e -s 'length > 0 and all(.[]; .status == "FINISHED" and all(.jobs[]; .status == "FINISHED"))' \
        "$tmp/$1.out" >/dev/null 2>&1
}
# The proxy log since a mark.
mark() { wc -l <"$tmp/proxy.log"; }
since() { tail -n +"$(($1 + 1))" "$tmp/proxy.log"; }
plan() { printf '%s\n' "$@" >"$tmp/plan"; }
noplan() { rm -f "$tmp/plan"; }

RESIZE='[{"type":"resize","width":200}]'
SMALL='[{"type":"resize","width":300}]'
FLIP='[{"type":"flip","direction":"x"}]'
BAD='[{"type":"watermark","source":"/no/such-watermark.png","gravity":"center","width":10}]'

# The local references, all in one run.
req "$tmp/l1.json" 2 /in/src.jpg "" "/out/r1/a.jpg=$RESIZE" "/out/r1/b.png=[]" \
    "/out/r1/c.webp=$FLIP" "/out/r1/d.tif=[]" '/out/r1/e.gif=[{"type":"resize","width":64}]'
req "$tmp/l2.json" 2 /in/big.tif "" "/out/r2/whole.tif=[]" "/out/r2/small.jpg=$SMALL"
req "$tmp/l4.json" 2 /in/big.jpg "" "/out/r4/small.jpg=$SMALL"
# The single-job requests r3 and r9: alone, the source may be decoded
# reduced (shrink-on-load), so l1's a.jpg is not their reference.
req "$tmp/l3.json" 2 /in/src.jpg "" "/out/r3/a.jpg=$RESIZE"
run local "$tmp/l1.json" "$tmp/l2.json" "$tmp/l4.json" "$tmp/l3.json"
all_finished local || fail setup "the local reference run failed: $(head -c 600 "$tmp/local.out") $(tail -3 "$tmp/local.err")"

# --- Round trip: one GET for the source, five PUTs, one connection.
m=$(mark)
req "$tmp/r1.json" 1 /in/src.jpg "" "/out/r1/a.jpg=$RESIZE" "/out/r1/b.png=[]" \
    "/out/r1/c.webp=$FLIP" "/out/r1/d.tif=[]" '/out/r1/e.gif=[{"type":"resize","width":64}]'
run r1 "$tmp/r1.json"
if [ "$RC" = 0 ] && all_finished r1; then
    ok round-trip-finished
else
    fail round-trip-finished "exit $RC: $(head -c 800 "$tmp/r1.out") $(tail -3 "$tmp/r1.err")"
fi
gets=$(since "$m" | grep -c '^req [0-9]* GET /kiln-test/in/src.jpg ')
puts=$(since "$m" | grep -c '^req [0-9]* PUT /kiln-test/out/r1/')
conns=$(since "$m" | grep -c '^conn ')
[ "$gets" = 1 ] && ok source-read-once-per-process ||
    fail source-read-once-per-process "$gets GET requests for /in/src.jpg (expected 1 for 5 jobs)"
[ "$puts" = 5 ] && ok one-put-per-small-output || fail one-put-per-small-output "$puts PUTs for 5 outputs"
[ "$conns" -le 1 ] && ok connection-reused ||
    fail connection-reused "$((gets + puts)) requests over $conns connections (expected 1)"

# --- Multipart output (5.76 MB TIFF, part_size 5 MiB), source read with Range.
m=$(mark)
req "$tmp/r2.json" 1 /in/big.tif "" "/out/r2/whole.tif=[]" "/out/r2/small.jpg=$SMALL"
run r2 "$tmp/r2.json"
if [ "$RC" = 0 ] && all_finished r2; then
    ok multipart-finished
else
    fail multipart-finished "exit $RC: $(head -c 800 "$tmp/r2.out") $(tail -3 "$tmp/r2.err")"
fi
seg=$(since "$m")
grep -q ' POST /kiln-test/out/r2/whole.tif?uploads ' <<<"$seg" &&
    [ "$(grep -c '^req [0-9]* PUT /kiln-test/out/r2/whole.tif?partNumber=' <<<"$seg")" = 2 ] &&
    grep -q ' POST /kiln-test/out/r2/whole.tif?uploadId=' <<<"$seg" &&
    ok multipart-create-2-parts-complete ||
    fail multipart-create-2-parts-complete "requests: $(grep 'whole.tif' <<<"$seg" | cut -d' ' -f3-4 | tr '\n' ' ')"
grep -q ' PUT /kiln-test/out/r2/small.jpg range' <<<"$seg" &&
    ok small-output-single-put || fail small-output-single-put "$(grep small.jpg <<<"$seg")"
ranged=$(grep ' GET /kiln-test/in/big.tif ' <<<"$seg" | grep -c 'range=bytes=')
[ "$ranged" -ge 1 ] && ok seeking-source-read-with-range ||
    fail seeking-source-read-with-range "no Range request for big.tif: $(grep big.tif <<<"$seg" | tr '\n' ' ')"

# --- Retries: 503 SlowDown twice on the PUT, 500 once on the GET.
m=$(mark)
plan "fail PUT /out/r3/ 2 503" "fail GET /in/src.jpg 1 500"
req "$tmp/r3.json" 1 /in/src.jpg "" "/out/r3/a.jpg=$RESIZE"
run r3 "$tmp/r3.json"
noplan
seg=$(since "$m")
[ "$RC" = 0 ] && all_finished r3 &&
    [ "$(grep -c ' PUT /kiln-test/out/r3/a.jpg ' <<<"$seg")" = 3 ] &&
    [ "$(grep -c ' GET /kiln-test/in/src.jpg ' <<<"$seg")" = 2 ] &&
    ok retried-after-503-and-500 ||
    fail retried-after-503-and-500 "exit $RC, requests: $(cut -d' ' -f3-4 <<<"$seg" | tr '\n' ' ') $(head -c 400 "$tmp/r3.out")"
grep -qF 'warn plugin plugin=storage-s3 msg="PUT \"out/r3/a.jpg\" in bucket \"kiln-test\" failed (HTTP 503 SlowDown); retry 1 of 3"' "$tmp/r3.err" &&
    ok retry-logged || fail retry-logged "stderr: $(head -c 400 "$tmp/r3.err")"

# --- A body cut after 300000 bytes is resumed from there (If-Match, Range).
m=$(mark)
plan "cut GET /in/big.jpg 1 300000"
req "$tmp/r4.json" 1 /in/big.jpg "" "/out/r4/small.jpg=$SMALL"
run r4 "$tmp/r4.json"
noplan
seg=$(since "$m")
[ "$RC" = 0 ] && all_finished r4 && grep -q '^cut ' <<<"$seg" &&
    grep -q ' GET /kiln-test/in/big.jpg range=bytes=300000-$' <<<"$seg" &&
    ok broken-body-resumed ||
    fail broken-body-resumed "exit $RC, log: $(tr '\n' ' ' <<<"$seg") $(head -c 400 "$tmp/r4.out")"

# --- Failed commits leave nothing: a PUT answered 500 four times (retries
# 3), a CompleteMultipartUpload answered 500 four times (the upload is
# then aborted), with fail_on_conversion_error false so each fails alone.
m=$(mark)
plan "fail PUT /out/r8/a.jpg 9 500" "fail POST /out/r8/whole.tif?uploadId= 9 500"
req "$tmp/r8.json" 1 /in/big.tif '"fail_on_conversion_error":false,' \
    "/out/r8/a.jpg=$SMALL" "/out/r8/whole.tif=[]"
run r8 "$tmp/r8.json"
noplan
e=$(jerr r8 /out/r8/a.jpg)
[ "$(jst r8 /out/r8/a.jpg)" = FAILED ] &&
    [[ $e == *'service 1, storage "s3": cannot write "out/r8/a.jpg" in bucket "kiln-test": HTTP 500 InternalError: injected by the test proxy'*'4 attempts'* ]] &&
    ok failed-put-reported || fail failed-put-reported "$(jst r8 /out/r8/a.jpg): $e"
[ "$(jst r8 /out/r8/whole.tif)" = FAILED ] && grep -q 'DELETE /kiln-test/out/r8/whole.tif?uploadId=' <(since "$m") &&
    ok failed-complete-aborts-upload ||
    fail failed-complete-aborts-upload "$(jst r8 /out/r8/whole.tif): $(jerr r8 /out/r8/whole.tif)"

# --- Errors, whole-or-nothing, virtual host, unreachable: one run.
m=$(mark)
req "$tmp/r5.json" 1 /in/missing.jpg "" "/out/r5/a.jpg=[]"
req "$tmp/r6.json" 4 /in/src.jpg "" "/out/r6/a.jpg=[]"
req "$tmp/r7.json" 1 /in/src.jpg "" "/out/r7/keep.jpg=$FLIP" "/out/r7/new.png=[]" "/out/r7/bad.png=$BAD"
req "$tmp/r9.json" 3 /in/src.jpg "" "/out/r9/a.jpg=$RESIZE"
req "$tmp/r10.json" 5 /in/src.jpg "" "/out/r10/a.jpg=[]"
req "$tmp/r11.json" 1 /in/../../src.jpg "" "/out/r11/a.jpg=[]"
run mixed "$tmp/r5.json" "$tmp/r6.json" "$tmp/r7.json" "$tmp/r9.json" "$tmp/r10.json" "$tmp/r11.json"
[ "$RC" != 0 ] && ok failed-run-exit-status || fail failed-run-exit-status "kiln run exited 0"
e=$(perr mixed "$tmp/r5.json")
[ "$(pst mixed "$tmp/r5.json")" = FAILED ] &&
    [[ $e == *'source: service 1, storage "s3": cannot read "in/missing.jpg" in bucket "kiln-test": no such object (404 NoSuchKey)'* ]] &&
    ok not-found-names-bucket-and-key || fail not-found-names-bucket-and-key "$(pst mixed "$tmp/r5.json"): $e"
e=$(perr mixed "$tmp/r6.json")
[ "$(pst mixed "$tmp/r6.json")" = FAILED ] &&
    [[ $e == *'source: service 4, storage "s3": cannot read "in/src.jpg" in bucket "kiln-test": access denied (403 InvalidAccessKeyId'*'check access_key_id'* ]] &&
    ok access-denied-names-bucket-and-key || fail access-denied-names-bucket-and-key "$(pst mixed "$tmp/r6.json"): $e"
[ "$(pst mixed "$tmp/r7.json")" = FAILED ] && [ "$(jst mixed /out/r7/bad.png)" = FAILED ] &&
    ! grep -q ' PUT /kiln-test/out/r7/' <(since "$m") &&
    ok failed-process-uploads-nothing ||
    fail failed-process-uploads-nothing "$(pst mixed "$tmp/r7.json"); requests: $(grep r7 <(since "$m") | tr '\n' ' ')"
[ "$(pst mixed "$tmp/r9.json")" = FINISHED ] && ok virtual-hosted-style ||
    fail virtual-hosted-style "$(pst mixed "$tmp/r9.json"): $(perr mixed "$tmp/r9.json")"
e=$(perr mixed "$tmp/r10.json")
[[ $e == *"source: service 5, storage \"s3\": cannot read \"in/src.jpg\" in bucket \"kiln-test\": cannot connect to \"http://127.0.0.1:$deadport\""*'2 attempts'* ]] &&
    ok unreachable-endpoint || fail unreachable-endpoint "$e"
e=$(perr mixed "$tmp/r11.json")
[[ $e == *'storage "s3": path "/in/../../src.jpg" escapes the storage root'* ]] &&
    ok dotdot-refused || fail dotdot-refused "$e"

# --- A wrong region (301 naming the right one) and an object replaced while
# it is read (the resumed GET answered 412 for its If-Match).
m=$(mark)
plan "fail GET /in/src.jpg 1 301" "cut GET /in/big.jpg 1 300000" "fail GET /in/big.jpg 1 412"
req "$tmp/r12.json" 1 /in/src.jpg "" "/out/r12/a.jpg=[]"
req "$tmp/r13.json" 1 /in/big.jpg "" "/out/r13/a.jpg=$SMALL"
run faults "$tmp/r12.json" "$tmp/r13.json"
noplan
e=$(perr faults "$tmp/r12.json")
[[ $e == *'storage "s3": cannot read "in/src.jpg" in bucket "kiln-test": the bucket is in region "eu-west-1", not "us-east-1" (301 PermanentRedirect; expected region "eu-west-1" in the settings)'* ]] &&
    ok wrong-region-named || fail wrong-region-named "$e"
e=$(perr faults "$tmp/r13.json")
[[ $e == *'cannot read "in/big.jpg" in bucket "kiln-test": the object changed while it was being read (412 PreconditionFailed'* ]] &&
    grep -q '^ifmatch [0-9]* GET /kiln-test/in/big.jpg$' <(since "$m") &&
    ok object-replaced-mid-read || fail object-replaced-mid-read "$e"

# --- Four workers on one bucket at once: the pool and the share are shared.
pars=()
for i in 1 2 3 4 5 6; do
    req "$tmp/p$i.json" 1 /in/src.jpg "" "/out/p$i/a.jpg=$RESIZE" "/out/p$i/b.png=[]"
    pars+=("$tmp/p$i.json")
done
WORKERS=4 run parallel "${pars[@]}"
[ "$RC" = 0 ] && all_finished parallel && ok parallel-workers ||
    fail parallel-workers "exit $RC: $(head -c 600 "$tmp/parallel.out") $(tail -3 "$tmp/parallel.err")"

# --- Every request kiln signed with the key was checked by the proxy's own
# SigV4 implementation, and none failed; a wrong secret is caught.
nok=$(grep -c '^sig [0-9]* ok ' "$tmp/proxy.log")
nbad=$(grep -c '^sig [0-9]* bad ' "$tmp/proxy.log")
[ "$nok" -ge 40 ] && [ "$nbad" = 0 ] && ok signatures-verified ||
    fail signatures-verified "$nok requests verified, $nbad refused: $(grep -m3 '^sig [0-9]* bad' "$tmp/proxy.log" | tr '\n' ' ')"
req "$tmp/r14.json" 6 /in/src.jpg "" "/out/r14/a.jpg=[]"
run badsig "$tmp/r14.json"
e=$(perr badsig "$tmp/r14.json")
[[ $e == *'cannot read "in/src.jpg" in bucket "kiln-test": access denied (403 SignatureDoesNotMatch: checked by the test proxy; expected a matching signature: check secret_access_key and region)'* ]] &&
    ok wrong-secret-refused || fail wrong-secret-refused "$e"

# --- What a third-party client reads back.
rm -rf "$tmp/dl"
if awsc s3 sync --quiet "s3://$BUCKET/out" "$tmp/dl" >"$tmp/aws-dl.log" 2>&1; then
    for f in r1/a.jpg r1/b.png r1/c.webp r1/d.tif r1/e.gif r2/whole.tif r2/small.jpg r4/small.jpg; do
        if cmp -s "$tmp/dl/$f" "$tmp/root/out/$f"; then
            ok "read-back-identical/$f"
        else
            fail "read-back-identical/$f" "$(stat -c %s "$tmp/dl/$f" 2>&1) bytes from S3, $(stat -c %s "$tmp/root/out/$f" 2>&1) written locally"
        fi
    done
    [ "$(vipsheader -f width "$tmp/dl/r2/whole.tif" 2>/dev/null)" = 1600 ] &&
        ok multipart-output-decodes || fail multipart-output-decodes "$(vipsheader "$tmp/dl/r2/whole.tif" 2>&1)"
    same=0
    for i in 1 2 3 4 5 6; do
        cmp -s "$tmp/dl/p$i/a.jpg" "$tmp/root/out/r1/a.jpg" &&
            cmp -s "$tmp/dl/p$i/b.png" "$tmp/root/out/r1/b.png" && same=$((same + 1))
    done
    [ "$same" = 6 ] && ok parallel-outputs-identical ||
        fail parallel-outputs-identical "$same of 6 processes wrote outputs identical to the local ones"
    cmp -s "$tmp/dl/r3/a.jpg" "$tmp/root/out/r3/a.jpg" && ok retried-output-identical ||
        fail retried-output-identical "out/r3/a.jpg differs from the local output"
    cmp -s "$tmp/dl/r9/a.jpg" "$tmp/root/out/r3/a.jpg" && ok virtual-hosted-output-identical ||
        fail virtual-hosted-output-identical "out/r9/a.jpg differs from the local output"
    left=$(cd "$tmp/dl" && find r7 r8 -type f 2>/dev/null | sort | tr '\n' ' ')
    [ "$left" = "r7/keep.jpg " ] && ok nothing-visible-after-failures ||
        fail nothing-visible-after-failures "objects under out/r7 and out/r8: $left"
    cmp -s "$tmp/dl/r7/keep.jpg" "$tmp/up/out/r7/keep.jpg" && ok existing-object-untouched ||
        fail existing-object-untouched "out/r7/keep.jpg changed although its process failed"
else
    fail read-back "aws s3 sync failed: $(tail -3 "$tmp/aws-dl.log")"
fi
# (s3rver answers unsigned requests: curl stands in for a browser.)
ct=$(curl -s -o /dev/null -w '%{content_type}' "http://127.0.0.1:$s3port/$BUCKET/out/r1/a.jpg")
[ "$ct" = image/jpeg ] && ok content-type || fail content-type "Content-Type of out/r1/a.jpg: $ct"

# --- Configuration errors stop kiln before any request.
cfgerr() { # NAME WANT STORAGE-JSON
    local out rc=0
    printf '{"plugins": {"dirs": ["%s"], "enable": ["ops-vips", "storage-s3"]}, "services": [{"id": 1, "tokens": ["t"], "storage": %s}]}\n' \
        "$plugdir" "$3" >"$tmp/bad.json"
    out=$("$KILN" run --config "$tmp/bad.json" "$tmp/r1.json" 2>&1) || rc=$?
    if [ "$rc" != 0 ] && [ "$rc" -lt 128 ] && [[ $out == *"$2"* ]]; then ok "config/$1"; else fail "config/$1" "exit $rc: $out"; fi
}
cfgerr endpoint-scheme 'endpoint "ftp://127.0.0.1:21" is not an http(s) URL (expected http://host[:port] or https://host[:port])' \
    '{"plugin": "s3", "bucket": "b-1", "region": "us-east-1", "endpoint": "ftp://127.0.0.1:21", "access_key_id": "k", "secret_access_key": "${KILN_TEST_S3_SECRET}"}'
cfgerr endpoint-path 'endpoint "http://127.0.0.1:9000/kiln-test" has more than a scheme, host and port' \
    '{"plugin": "s3", "bucket": "b-1", "region": "us-east-1", "endpoint": "http://127.0.0.1:9000/kiln-test", "access_key_id": "k", "secret_access_key": "x"}'
cfgerr bucket-not-a-host 'bucket "Images_2024" is not a valid bucket name' \
    '{"plugin": "s3", "bucket": "Images_2024", "region": "us-east-1", "access_key_id": "k", "secret_access_key": "x"}'
cfgerr key-id-unsendable 'access_key_id holds a character that cannot be sent' \
    '{"plugin": "s3", "bucket": "b-1", "region": "us-east-1", "access_key_id": "AKIA/../x", "secret_access_key": "x"}'
cfgerr bucket-missing 'bucket' \
    '{"plugin": "s3", "region": "us-east-1", "access_key_id": "k", "secret_access_key": "x"}'

# --- The example configurations load and every s3 service in them opens
# (a request for a service they lack gets that far and no further).
printf '{"service_id": 999, "source": "/in/a.jpg", "jobs": [{"destination": "/out/a.jpg"}]}\n' >"$tmp/r999.json"
for ex in examples/config/s3.json examples/config/s3-gcs.json; do
    jq --arg d "$plugdir" '.plugins.dirs = [$d]' "$ex" >"$tmp/example.json" 2>&1
    out=$(KILN_TOKEN=t KILN_POSTBACK_SECRET=s KILN_PG_DSN=x KILN_MINIO_TOKEN=t AWS_ACCESS_KEY_ID=a \
        AWS_SECRET_ACCESS_KEY=b MINIO_ACCESS_KEY=a MINIO_SECRET_KEY=b GCS_HMAC_ACCESS_ID=a \
        GCS_HMAC_SECRET=b "$KILN" run --config "$tmp/example.json" "$tmp/r999.json" 2>&1)
    [[ $out == *'no service 999 in the configuration'* ]] && ok "example/$(basename "$ex")" ||
        fail "example/$(basename "$ex")" "$out"
done

# --- Secrets: neither the secret key nor a signature is ever printed.
if cat "$tmp"/*.out "$tmp"/*.err | grep -qF -e "$KILN_TEST_S3_SECRET" -e 'Signature='; then
    fail secrets-never-printed "the secret key or a signature appears in kiln's output"
else
    ok secrets-never-printed
fi

# --- kiln serve: a missing source is retried (wait_retry_delay) until it appears.
sport=$(jq -r '.listen' "$tmp/cfg.json" | cut -d: -f2)
url="http://127.0.0.1:$sport"
if serve_start "$tmp/cfg.json" "$tmp/serve.log" "$url"; then
    body='{"service_id": 1, "source": "/in/later.jpg", "wait_retry_delay": 1, "jobs": [{"destination": "/out/later/a.jpg", "transformations": [{"type": "resize", "width": 200}]}]}'
    pid=$(curl -s -H 'Authorization: Bearer tok-1' -H 'Content-Type: application/json' \
        --data-binary "$body" "$url/request" | jq -r '.process_id // empty')
    got=
    for _ in $(seq 100); do
        got=$(curl -s -H 'Authorization: Bearer tok-1' "$url/status/$pid" | jq -r '[.status, (.error // "")] | @tsv')
        case "$got" in QUEUED$'\t'*"no such object (404 NoSuchKey)"*) break ;; esac
        sleep 0.1
    done
    case "$got" in
    QUEUED$'\t'*"no such object (404 NoSuchKey)"*) ok serve/missing-source-queued-again ;;
    *) fail serve/missing-source-queued-again "process $pid: $got" ;;
    esac
    curl -s -o /dev/null -T "$tmp/up/in/src.jpg" "http://127.0.0.1:$s3port/$BUCKET/in/later.jpg"
    for _ in $(seq 150); do
        got=$(curl -s -H 'Authorization: Bearer tok-1' "$url/status/$pid" | jq -r '.status')
        case "$got" in FINISHED | FAILED) break ;; esac
        sleep 0.1
    done
    [ "$got" = FINISHED ] && ok serve/finished-once-source-appears ||
        fail serve/finished-once-source-appears "process $pid is $got: $(tail -3 "$tmp/serve.log")"
    serve_stop
    if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' "$tmp/serve.log"; then
        fail serve/sanitizer "$(grep -m1 -E 'AddressSanitizer|LeakSanitizer|runtime error:' "$tmp/serve.log")"
    fi
    [ "$SERVE_RC" = 0 ] && ok serve/clean-exit || fail serve/clean-exit "kiln serve exited $SERVE_RC"
else
    fail serve/start "kiln serve did not start: $(tail -3 "$tmp/serve.log")"
fi
exit $status
