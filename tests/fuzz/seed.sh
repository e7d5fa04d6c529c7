#!/usr/bin/env bash
# (Re)creates the seed corpora of the fuzz harnesses in tests/fuzz/corpus/:
#   compile  every request of examples/ and tests/compile/cases, behind
#            the 10-byte header fuzz_compile.c reads (the size from the
#            case's .args, else 4000x3000; -O from .args, else 2)
#   lexer    the lengths, numbers and colours the examples write, and the
#            forms value_lexer.h lists
#   config   examples/config and a few configurations that exercise the
#            error paths
#   api      call sequences for every endpoint, with the harness's tokens
#   probe    tiny images made here with vips and ImageMagick (every format
#            the engine reads from a source, some truncated)
# Raw seeds go to FUZZ_BUILD/seeds/NAME; when FUZZ_BUILD/fuzz_NAME is
# built, the fewest that cover all their edges go into the corpus under
# their own names (-set_cover_merge=1 and cover.py), else all are copied.
# Probe seeds are kept whole and named: libFuzzer sees only kiln's code,
# so it would merge the formats away. Reproducers (crash-*) stay.
#
# usage: tests/fuzz/seed.sh [FUZZ_BUILD] [NAME...]
set -eu
cd "$(dirname "$0")/../.."
FB=${1:-build-fuzz}
shift || true
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(compile lexer config api probe)
export KILN_PLUGIN_DIR=$PWD/$FB/plugins
export ASAN_OPTIONS=detect_leaks=0
export KILN_FUZZ_GUARDS=1
export KILN_NO_DLCLOSE=1

seed_compile() {
    python3 - "$1" <<'PY'
import glob, json, os, re, struct, sys
out = sys.argv[1]
files = sorted(glob.glob("examples/requests/*.json") +
               glob.glob("examples/public-api/*.json") +
               glob.glob("tests/compile/cases/*.json") +
               ["examples/tour.json", "examples/plugin/request.json",
                "examples/postback/request.json"])
def header(w, h, alpha=0, level=2, unbound=0, dump=0, passes=0, fmt=0,
           plain=1):
    flags = alpha | level << 1 | unbound << 3 | dump << 4 | passes << 6
    return struct.pack("<IIBB", w - 1, h - 1, flags, fmt | plain << 7)
n = 0
for f in files:
    if not os.path.exists(f):
        continue
    text = open(f, "rb").read()
    args = f[:-5] + ".args"
    w, h, level, unbound, passes = 4000, 3000, 2, 0, 0
    if os.path.exists(args):
        a = open(args).read()
        m = re.search(r"--source-size (\d+)x(\d+)", a)
        if m:
            w, h = int(m.group(1)), int(m.group(2))
        m = re.search(r"-O(\d)", a)
        if m:
            level = int(m.group(1))
        passes = int("--passes" in a)
    elif f.startswith("tests/compile/"):
        unbound = 1
    base = os.path.basename(f)[:-5]
    d = os.path.basename(os.path.dirname(f))
    def put(tag, hdr):
        global n
        open(os.path.join(out, "%s-%s%s" % (d, base, tag)), "wb").write(hdr + text)
        n += 1
    put("", header(w, h, level=level, unbound=unbound, passes=passes))
    # Small and odd shapes, alpha, every level, JPEG and WebP headers
    # (shrink-on-load), the other dumps.
    put("-small", header(7, 3, alpha=1, level=3, dump=1, fmt=1, plain=0))
    put("-wide", header(100000, 2, level=3, dump=2, fmt=2))
print(n)
PY
}

seed_lexer() {
    python3 - "$1" <<'PY'
import glob, json, os, sys
out = sys.argv[1]
texts = set()
def walk(v):
    if isinstance(v, dict):
        for x in v.values(): walk(x)
    elif isinstance(v, list):
        for x in v: walk(x)
    elif isinstance(v, str) and len(v) < 40 and not v.startswith("/"):
        texts.add(v)
for f in glob.glob("examples/*/*.json") + glob.glob("tests/compile/cases/*.json"):
    try:
        walk(json.load(open(f)))
    except Exception:
        pass
texts |= {"120", "120px", "50%", "50w", "50h", "-1.5", "0.25", "750",
          "00.5", "-0", "1.", ".5", "1e5", "12pxx", "12 px", "12PX", "",
          "1" * 30, "0." + "0" * 30 + "1", "9" * 400, "#ff8800", "#FFF",
          "#ffff", "#11223344", "#12345", "#gg0000", "rgb(0, 0, 0)",
          "rgba(255,255,255,0.5)", "RGB( 1 ,\t2, 3 )", "rgb(256, 0, 0)",
          "rgb(1.5, 0, 0)", "rgba(0, 0, 0, 1.5)", "rgb(0, 0)", "white",
          "Transparent", "orange", "whit", "grey", "fuchsia", "\xe9t\xe9",
          "a\"b\\c\x01"}
n = 0
for t in sorted(texts):
    data = t.encode("utf-8", "surrogateescape")
    # length (all units), length (px only), number, colour
    for mode in (0, 0 | 1 << 2, 1, 2):
        open(os.path.join(out, "lex-%03d-%d" % (n, mode)), "wb").write(bytes([mode]) + data)
    n += 1
open(os.path.join(out, "lex-bad-utf8"), "wb").write(b"\x02#\xff\xfe\xc3(\xe2\x82")
PY
}

seed_config() {
    local out=$1 f
    for f in examples/config/*.json; do cp "$f" "$out/example-$(basename "$f")"; done
    cat >"$out/errors.json" <<'JSON'
{"listen": 8080, "workers": 0, "optimize": 9, "plugins": {"dirs": "x", "enable": [1]},
 "jobstore": {"driver": "mysql", "pth": "x"}, "limits": {"max_pixels": -1, "max_jobs": 1.5},
 "rate_limit": {"per_second": 0, "burst": "x"}, "network": {"allow": ["10.0.0.0/33", "::1/129", "nonsense"]},
 "servces": [], "services": [{"id": 1, "tokens": "t", "storage": {"plugin": 3}},
 {"id": 1, "remote_sources": "yes", "limits": [], "storage": {"plugin": "local", "root": "${KILN_FUZZ_UNSET}"}}, 7]}
JSON
    cat >"$out/full.json" <<'JSON'
{"listen": "[::1]:8080", "workers": 4, "shutdown_timeout": 2.5, "optimize": 3,
 "plugins": {"dirs": ["/a", "/b"], "enable": ["ops-vips", "storage-local"]},
 "jobstore": {"driver": "postgres", "dsn": "postgres://u:${KILN_TOKEN}@db/kiln"},
 "limits": {"max_pixels": 1000000, "max_file_size": 1000, "max_process_time": 0.5, "max_jobs": 3, "max_body": 10},
 "rate_limit": {"per_second": 0.5, "burst": 2},
 "network": {"allow": ["10.0.0.0/8", "192.168.1.1", "fd00::/8", "::ffff:127.0.0.1/128"]},
 "services": [{"id": 1, "tokens": ["${KILN_TOKEN}", "b"], "secret": "${KILN_SECRET}", "backend": "vips",
   "remote_sources": {"allow": ["10.1.2.3"], "timeout": 3}, "limits": {"max_jobs": 1},
   "storage": {"plugin": "s3", "bucket": "b", "key": "${AWS_ACCESS_KEY_ID}x${KILN_FUZZ_EMPTY}"}},
  {"id": 2, "remote_sources": true, "storage": {"plugin": "local", "root": "/srv/${KILN_TOKEN"}}]}
JSON
    printf '{"services": [{"id": 0, "storage": {"plugin": "local"}}]}' >"$out/minimal.json"
    printf '[1, 2]' >"$out/not-object.json"
    printf '{"services": [' >"$out/truncated.json"
}

seed_api() {
    python3 - "$1" <<'PY'
import os, sys
out = sys.argv[1]
T1, T2, TS = "Bearer fuzz-token-one", "Bearer fuzz-token-two", "Bearer fuzz-shared"
req = ('{"service_id": 1, "source": "/in/a.png", "jobs": [{"destination": '
       '"/out/a.png", "transformations": [{"type": "resize", "width": 32}]}]}')
inc = ('{"service_id": 1, "source": "/in/a.png", "process": false, "jobs": []}')
def call(m, p, auth="", idem="", body=None):
    s = "%s\n%s\n%s\n%s" % (m, p, auth, idem)
    if body is not None:
        s += "\n" + body
    return s
seeds = {
 "health": [call("GET", "/health")],
 "no-token": [call("GET", "/status/x")],
 "wrong-token": [call("GET", "/status/x", "Bearer nope")],
 "create-status": [call("POST", "/request", T1, "", req), call("GET", "/status/{id}", T1)],
 "create-other-service": [call("POST", "/request", T2, "", req)],
 "create-invalid": [call("POST", "/request", T1, "", '{"service_id": 1, "sorce": "/in/a.png", "jobs": []}')],
 "create-retry": [call("POST", "/request", T1, "", req),
                  call("POST", "/retry", T1, "", '{"service_id": 1, "process_ids": ["{id}", "nosuch"]}')],
 "idempotent": [call("POST", "/request", T1, "k1", req), call("POST", "/request", T1, "k1", req),
                call("POST", "/request", T1, "k1", req.replace("32", "33"))],
 "dynamic": [call("POST", "/request", T1, "", inc),
             call("POST", "/request/{id}/jobs", T1, "", '{"jobs": [{"destination": "/out/b.jpg", "transformations": [{"type": "crop", "width": "50%", "height": 10, "gravity": "center"}]}]}'),
             call("PATCH", "/request/{id}", T1, "", '{"process": true, "callback": "http://10.1.2.3/hook"}'),
             call("GET", "/status/{id}", TS)],
 "patch-bad-callback": [call("POST", "/request", T1, "", inc),
             call("PATCH", "/request/{id}", T1, "", '{"process": true, "callback": "http://localhost:1/x"}')],
 "callback": [call("POST", "/request", T1, "", req[:-1] + ', "callback": "https://example.com/cb", "notify_status": true, "retry_postback": false}')],
 "callback-private": [call("POST", "/request", T1, "", req[:-1] + ', "callback": "http://192.168.1.1/cb"}')],
 "url-source": [call("POST", "/request", T2, "", req.replace('"service_id": 1', '"service_id": 2').replace("/in/a.png", "https://example.com/a.png"))],
 "url-source-denied": [call("POST", "/request", T1, "", req.replace("/in/a.png", "http://example.com/a.png"))],
 "metrics": [call("GET", "/metrics", T2)],
 "limits": [call("POST", "/request", TS, "", '{"service_id": "2", "source": "/in/a.png", "limits": {"max_pixels": 10}, "wait_retry_delay": 2, "fail_on_conversion_error": true, "jobs": [{"destination": "/o/1.webp", "quality": 50}, {"destination": "/o/2.gif"}, {"destination": "/o/3.tif"}]}')],
 "unknown-endpoint": [call("DELETE", "/request/{id}", T1)],
}
for f in ("examples/public-api/chain.json", "examples/requests/fitmethod.json",
          "examples/requests/annotation.json", "examples/requests/watermark.json"):
    body = open(f).read()
    seeds["example-" + os.path.basename(f)[:-5]] = [call("POST", "/request", T1, "", body)]
for name, calls in seeds.items():
    open(os.path.join(out, name), "w").write("\n---\n".join(calls))
PY
}

seed_probe() {
    local out=$1 t
    t=$(mktemp -d)
    # shellcheck disable=SC2064
    trap "rm -rf '$t'" RETURN
    convert -size 8x6 gradient:red-blue "$t/g.png"
    convert -size 8x6 gradient:red-blue -alpha set -channel A -evaluate set 50% "$t/ga.png"
    vips copy "$t/g.png" "$out/tiny.jpg[Q=50,strip]"
    vips copy "$t/g.png" "$out/progressive.jpg[Q=40,interlace,strip]"
    convert "$t/g.png" -colorspace CMYK -strip -quality 40 "$out/cmyk.jpg"
    convert "$t/g.png" -strip -quality 40 "$out/orient6.jpg"
    python3 - "$out/orient6.jpg" <<'PY'
import struct, sys
p = sys.argv[1]
d = open(p, "rb").read()
# APP1 Exif with one IFD0 entry: Orientation (0x0112) = 6.
tiff = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 1) + \
       struct.pack("<HHII", 0x0112, 3, 1, 6) + struct.pack("<I", 0)
app1 = b"Exif\x00\x00" + tiff
open(p, "wb").write(d[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + d[2:])
PY
    vips copy "$t/g.png" "$out/rgb.png[strip]"
    vips copy "$t/ga.png" "$out/rgba.png[strip]"
    convert "$t/g.png" -colorspace Gray -depth 16 -strip "$out/gray16.png"
    convert "$t/g.png" -colors 4 -strip "PNG8:$out/palette.png"
    convert "$t/g.png" -interlace PNG -strip "$out/interlaced.png"
    convert "$t/g.png" "$out/tiny.gif"
    convert -delay 10 "$t/g.png" "$t/ga.png" -loop 0 "$out/anim.gif"
    vips copy "$t/g.png" "$out/lossy.webp[Q=30,strip]"
    vips copy "$t/ga.png" "$out/lossless-alpha.webp[lossless,strip]"
    vips copy "$t/g.png" "$out/lzw.tif[compression=lzw,strip]"
    convert "$t/g.png" -depth 16 -compress none -strip "$out/rgb16.tif"
    vips copy "$t/g.png" "$out/tiny.ppm[strip]"
    vips copy "$t/g.png" "$out/tiny.avif[Q=20,compression=av1,strip]" 2>/dev/null || true
    vips copy "$t/g.png" "$out/tiny.jp2[Q=20,strip]" 2>/dev/null || true
    vips copy "$t/g.png" "$out/tiny.jxl[Q=20,strip]" 2>/dev/null || true
    printf '<svg xmlns="http://www.w3.org/2000/svg" width="400" height="300"><rect width="50%%" height="50%%" fill="red"/></svg>' >"$out/tiny.svg"
    printf '<svg xmlns="http://www.w3.org/2000/svg" width="40000" height="30000" viewBox="0 0 4 3"/>' >"$out/huge.svg"
    printf 'P6\n60000 60000\n255\n' >"$out/huge-header.ppm"
    printf '#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 4 +X 4\n' >"$out/tiny.hdr"
    printf '2 2 1 0\n1 2\n3 4\n' >"$out/tiny.mat"
    head -c 120 "$out/tiny.jpg" >"$out/truncated.jpg"
    head -c 60 "$out/rgb.png" >"$out/truncated.png"
    head -c 40 "$out/lossy.webp" >"$out/truncated.webp"
    head -c 100 "$out/lzw.tif" >"$out/truncated.tif"
}

for name in "${names[@]}"; do
    raw=$FB/seeds/$name
    corpus=tests/fuzz/corpus/$name
    rm -rf "$raw"
    mkdir -p "$raw" "$corpus"
    "seed_$name" "$raw" >/dev/null
    # The old seeds go; defect reproducers stay.
    find "$corpus" -maxdepth 1 -type f ! -name 'crash-*' -delete
    if [ "$name" = probe ] || [ ! -x "$FB/fuzz_$name" ]; then
        cp "$raw"/* "$corpus/"
    else
        rm -rf "$FB/seeds/$name.empty" "$FB/seeds/$name.ctl"
        mkdir -p "$FB/seeds/$name.empty"
        "$FB/fuzz_$name" -set_cover_merge=1 -use_counters=0 -max_len=65536 \
            -merge_control_file="$FB/seeds/$name.ctl" "$FB/seeds/$name.empty" \
            "$raw" >"$FB/seeds/$name.merge.log" 2>&1 ||
            { echo "seed $name: merge failed ($FB/seeds/$name.merge.log)"; exit 1; }
        python3 tests/fuzz/cover.py "$FB/seeds/$name.ctl" "$corpus" 1000 >/dev/null
    fi
    echo "seed $name: $(ls "$raw" | wc -l) raw -> $(find "$corpus" -type f | wc -l) in $corpus ($(du -sk "$corpus" | cut -f1) KB)"
done
