#!/usr/bin/env bash
# Damaged sources (docs/ops.md section 6): a source whose data ends before
# the image it declares fails its job, naming the file and saying it is
# truncated or damaged, and nothing is written; decoded whole, in strips
# (one job of top-to-bottom ops) or reduced (shrink-on-load). The files
# are made here: each format cut short at the end of the file, and cut
# short inside while the file still ends properly (an end marker after
# too little data), which libvips 8.14 decoded as grey (JPEG) or
# transparent (GIF) rows without a word: a 23 KB JPEG declaring
# 10000x10000 finished. A JPEG with a harmless libjpeg warning (bytes
# before a marker, common in real photos) still finishes.
cd "$(dirname "$0")/../.." || exit 1
. tests/exec/lib.sh
exec_setup
require_tools python3

IN=$ROOT/in
vips gaussnoise "$WORK/n.v" 1200 900 &&
    vips bandjoin "$WORK/n.v $WORK/n.v $WORK/n.v" "$WORK/n3.v" &&
    vips cast "$WORK/n3.v" "$WORK/rgb.v" uchar &&
    vips copy "$WORK/rgb.v" "$WORK/full.jpg" &&
    vips copy "$WORK/rgb.v" "$WORK/prog.jpg[interlace]" &&
    vips copy "$WORK/rgb.v" "$WORK/full.png" &&
    vips copy "$WORK/rgb.v" "$WORK/full.webp[strip]" &&
    vips copy "$WORK/rgb.v" "$WORK/full.gif" &&
    vips crop "$WORK/rgb.v" "$WORK/small.v" 0 0 200 200 &&
    vips copy "$WORK/small.v" "$WORK/small.jpg" ||
    { fail "$T_NAME/setup" "cannot make the samples"; finish; }

# Each hostile file from the good ones; python3 only (no libraries).
python3 - "$WORK" "$IN" <<'PY' || { fail "$T_NAME/setup" "cannot make the damaged files"; finish; }
import struct, sys, zlib
work, out = sys.argv[1], sys.argv[2]
def rd(n): return open(f'{work}/{n}', 'rb').read()
def wr(n, b): open(f'{out}/{n}', 'wb').write(b)
EOI = b'\xff\xd9'

# JPEG: the 200x200 file's frame header made to declare 10000x10000 (23 KB
# of data for 100 megapixels), and a 1200x900 baseline and progressive
# file cut at 40% with an end marker after, and without one.
def jpeg_sof(b):
    p = 2
    while b[p] == 0xff and b[p + 1] not in (0xc0, 0xc1, 0xc2):
        p += 2 + int.from_bytes(b[p + 2:p + 4], 'big')
    return p
b = bytearray(rd('small.jpg'))
p = jpeg_sof(b)
b[p + 5:p + 9] = struct.pack('>HH', 10000, 10000)
wr('declares-big.jpg', bytes(b))
for name in ('full', 'prog'):
    b = rd(f'{name}.jpg')
    wr(f'{name}-cut-eoi.jpg', b[:len(b) * 4 // 10] + EOI)
    wr(f'{name}-cut.jpg', b[:len(b) * 4 // 10])
# A harmless warning: 3 extraneous bytes before the second marker.
b = rd('full.jpg')
p = 4 + int.from_bytes(b[4:6], 'big')
wr('harmless-extra-bytes.jpg', b[:p] + b'\0\0\0' + b[p:])

# PNG: the zlib stream holds 60 of 900 rows, then IEND; the zlib stream
# cut in half, then IEND; the file cut at 40%.
def chunk(t, d):
    return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d))
ihdr = chunk(b'IHDR', struct.pack('>IIBBBBB', 1200, 900, 8, 2, 0, 0, 0))
rows = b''.join(b'\0' + bytes((x * 7 + y) & 255 for x in range(3600)) for y in range(60))
z = zlib.compress(rows)
sig = b'\x89PNG\r\n\x1a\n'
wr('short-rows.png', sig + ihdr + chunk(b'IDAT', z) + chunk(b'IEND', b''))
wr('cut-zlib.png', sig + ihdr + chunk(b'IDAT', z[:len(z) // 2]) + chunk(b'IEND', b''))
b = rd('full.png'); wr('cut.png', b[:len(b) * 4 // 10])

# WebP: the VP8 data cut to 40% with the chunk and RIFF sizes made to
# agree; the file cut at 40%.
b = rd('full.webp')
p = 12
while b[p:p + 4] != b'VP8 ':
    p += 8 + ((struct.unpack('<I', b[p + 4:p + 8])[0] + 1) & ~1)
n = struct.unpack('<I', b[p + 4:p + 8])[0] * 4 // 10 & ~1
body = b'WEBP' + b'VP8 ' + struct.pack('<I', n) + b[p + 8:p + 8 + n]
wr('cut-sized.webp', b'RIFF' + struct.pack('<I', len(body)) + body)
wr('cut.webp', b[:len(b) * 4 // 10])

# GIF: the first frame's LZW sub-blocks stop at 40%, then the block
# terminator and the trailer; the file cut at 40%.
b = rd('full.gif')
p = 13 + (3 * (2 << (b[10] & 7)) if b[10] & 0x80 else 0)
while b[p] == 0x21:
    p += 2
    while b[p]: p += b[p] + 1
    p += 1
lf = b[p + 9]; p += 10
if lf & 0x80: p += 3 * (2 << (lf & 7))
p += 1
blocks = []
while b[p]:
    blocks.append(p); p += b[p] + 1
wr('cut-terminated.gif', b[:blocks[len(blocks) * 4 // 10]] + b'\x00\x3b')
wr('cut.gif', b[:len(b) * 4 // 10])

# TIFF, uncompressed RGB strips with the directory first, cut at 40% of
# the pixel data (the directory intact).
w, h, rps = 1200, 900, 16
ns = (h + rps - 1) // rps
tags = 10
data_off = 8 + 2 + 12 * tags + 4 + 6 + 8 * ns
counts = [min(rps, h - i * rps) * w * 3 for i in range(ns)]
offs = [data_off + sum(counts[:i]) for i in range(ns)]
bps, so, sc = 8 + 2 + 12 * tags + 4, 8 + 2 + 12 * tags + 4 + 6, 8 + 2 + 12 * tags + 4 + 6 + 4 * ns
ifd = [(256, 4, 1, w), (257, 4, 1, h), (258, 3, 3, bps), (259, 3, 1, 1), (262, 3, 1, 2),
       (273, 4, ns, so), (277, 3, 1, 3), (278, 4, 1, rps), (279, 4, ns, sc), (284, 3, 1, 1)]
t = b'II*\0' + struct.pack('<IH', 8, tags)
for tag, typ, cnt, val in ifd:
    t += struct.pack('<HHIHH' if typ == 3 and cnt == 1 else '<HHII', tag, typ, cnt, val, *((0,) if typ == 3 and cnt == 1 else ()))
t += struct.pack('<I', 0) + struct.pack('<HHH', 8, 8, 8)
t += b''.join(struct.pack('<I', o) for o in offs) + b''.join(struct.pack('<I', c) for c in counts)
wr('cut-strips.tif', t + bytes((i * 31) & 255 for i in range(sum(counts) * 4 // 10)))
PY

# HEIF (AVIF) when this libvips can write it: the file cut at 40%.
if vips copy "$WORK/rgb.v" "$WORK/full.avif" 2>/dev/null; then
    s=$(stat -c %s "$WORK/full.avif")
    head -c $((s * 4 / 10)) "$WORK/full.avif" >"$IN/cut.avif"
else
    skip "$T_NAME/avif" "this libvips cannot write AVIF to make the sample"
fi

# request FILE SHAPE: one request reading FILE, as
#   seq: one job of top-to-bottom ops (the source is read in strips),
#   rnd: two jobs (decoded whole, once, for both),
#   shr: a reduction to 150 px (shrink-on-load for JPEG and WebP).
request() {
    local f=$1 k=$2 r=$WORK/$1-$2.json
    case $k in
        seq) jobs='{"destination": "/out/'$f'-seq.png", "transformations": [{"type": "flip", "direction": "x"}]}' ;;
        rnd) jobs='{"destination": "/out/'$f'-a.png", "transformations": []},
                   {"destination": "/out/'$f'-b.png", "transformations": [{"type": "flip", "direction": "x"}]}' ;;
        shr) jobs='{"destination": "/out/'$f'-shr.png", "transformations": [{"type": "resize", "width": 150}]}' ;;
    esac
    cat >"$r" <<JSON
{"service_id": 1, "source": "/in/$f", "fail_on_conversion_error": false,
 "limits": {"max_process_time": 20}, "jobs": [$jobs]}
JSON
    echo "$r"
}

# damaged FILE: every shape fails naming FILE and saying it is truncated
# or damaged, in each job's error, and writes nothing.
damaged() {
    local f=$1 k r e d
    for k in seq rnd shr; do
        r=$(request "$f" "$k")
        run_kiln "$f-$k" "$r"
        e=${RST[$r]:-}/${RERR[$r]:-}
        if [[ $e == FAILED/*"\"/in/$f\""* ]] && grep -qiE 'truncated|damaged' <<<"$e"; then
            ok "$T_NAME/$f/$k"
        else
            fail "$T_NAME/$f/$k" "request: \"$e\" (want FAILED naming \"/in/$f\", truncated or damaged)"
        fi
        for d in $(jq -r '.jobs[].destination' "$WORK/$f-$k.out" 2>/dev/null); do
            [[ ${JST[$d]:-} == FAILED && ${JERR[$d]:-} == *"/in/$f"* ]] ||
                fail "$T_NAME/$f/$k/job${d#/out/}" "job is ${JST[$d]:-missing}: ${JERR[$d]:-}"
        done
    done
    local left
    left=$(find "$ROOT/out" -name "$f-*" -printf '%f ')
    check "$T_NAME/$f/nothing-written" "written: $left" [ -z "$left" ]
}

for f in declares-big.jpg full-cut-eoi.jpg prog-cut-eoi.jpg full-cut.jpg prog-cut.jpg \
         short-rows.png cut-zlib.png cut.png cut-sized.webp cut.webp \
         cut-terminated.gif cut.gif cut-strips.tif; do
    damaged "$f"
done
[ -f "$IN/cut.avif" ] && damaged cut.avif

# The words, for the case that finished as flat grey.
r=$WORK/declares-big.jpg-rnd.json
run_kiln big-words "$r"
want='source: cannot decode "/in/declares-big.jpg": it is truncated: its JPEG data ends'
check "$T_NAME/declares-big.jpg/says-truncated" "error: \"${RERR[$r]:-}\"" \
    grep -qF "$want" <<<"${RERR[$r]:-}"

# A harmless libjpeg warning is not damage: every shape finishes, with the
# pixels of the file without the stray bytes.
for k in seq rnd shr; do
    r=$(request harmless-extra-bytes.jpg "$k")
    run_kiln "harmless-$k" "$r"
    check "$T_NAME/harmless-extra-bytes.jpg/$k" "request ${RST[$r]:-}: ${RERR[$r]:-}" \
        [ "${RST[$r]:-}" = FINISHED ]
done
vips copy "$WORK/full.jpg" "$WORK/ref.png"
if psnr_ge "$ROOT/out/harmless-extra-bytes.jpg-a.png" "$WORK/ref.png" 99; then
    ok "$T_NAME/harmless-extra-bytes.jpg/same-pixels"
else
    fail "$T_NAME/harmless-extra-bytes.jpg/same-pixels" "PSNR ${PSNR_VALUE:-?} dB against the file without the stray bytes"
fi

# A damaged watermark fails its job the same way.
for f in declares-big.jpg cut-terminated.gif; do
    r=$WORK/wm-$f.json
    cat >"$r" <<JSON
{"service_id": 1, "source": "/in/harmless-extra-bytes.jpg", "jobs": [{"destination": "/out/wm-$f.png",
  "transformations": [{"type": "watermark", "source": "/in/$f", "gravity": "center", "width": 50}]}]}
JSON
    run_kiln "wm-$f" "$r"
    e=${JERR[/out/wm-$f.png]:-}
    if [[ ${JST[/out/wm-$f.png]:-} == FAILED && $e == *"\"/in/$f\""*truncated* ]]; then
        ok "$T_NAME/watermark/$f"
    else
        fail "$T_NAME/watermark/$f" "job ${JST[/out/wm-$f.png]:-missing}: \"$e\""
    fi
    check "$T_NAME/watermark/$f/nothing-written" "an output was written" [ ! -e "$ROOT/out/wm-$f.png" ]
done
finish
