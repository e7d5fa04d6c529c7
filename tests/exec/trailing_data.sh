#!/usr/bin/env bash
# Data after the image (docs/ops.md section 6): a 100x100 source followed
# by 8 MB of zeros (after PNG's IEND, in PNG chunks after the image data,
# after JPEG's end marker, GIF's trailer, WebP's RIFF) decodes like the
# same file without them, and the work stays bounded by the declared
# image: with strace, the bytes kiln reads from the source are counted
# (not timed) and must stay far below the file's size (the GIF and WebP
# loaders map the file and read only its header: their count is small
# either way). A guard: a report
# of 7.9 s of CPU for such a PNG did not reproduce with libvips 8.14.1.
cd "$(dirname "$0")/../.." || exit 1
. tests/exec/lib.sh
exec_setup
require_tools python3

IN=$ROOT/in
vips gaussnoise "$WORK/n.v" 100 100 && vips cast "$WORK/n.v" "$WORK/g.v" uchar &&
    vips bandjoin "$WORK/g.v $WORK/g.v $WORK/g.v" "$WORK/rgb.v" &&
    vips copy "$WORK/rgb.v" "$WORK/clean.jpg" && vips copy "$WORK/rgb.v" "$WORK/clean.gif" &&
    vips copy "$WORK/rgb.v" "$WORK/clean.webp[strip]" ||
    { fail "$T_NAME/setup" "cannot make the samples"; finish; }
python3 - "$WORK" "$IN" <<'PY' || { fail "$T_NAME/setup" "cannot make the files"; finish; }
import struct, sys, zlib
work, out = sys.argv[1], sys.argv[2]
def chunk(t, d):
    return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d))
Z = b'\0' * (8 << 20)
sig = b'\x89PNG\r\n\x1a\n'
ihdr = chunk(b'IHDR', struct.pack('>IIBBBBB', 100, 100, 8, 2, 0, 0, 0))
rows = b''.join(b'\0' + bytes((x * 7 + y) & 255 for x in range(300)) for y in range(100))
idat = chunk(b'IDAT', zlib.compress(rows))
iend = chunk(b'IEND', b'')
open(f'{out}/clean.png', 'wb').write(sig + ihdr + idat + iend)
open(f'{out}/after-iend.png', 'wb').write(sig + ihdr + idat + iend + Z)
open(f'{out}/idat-chunks.png', 'wb').write(
    sig + ihdr + idat + b''.join(chunk(b'IDAT', b'\0' * 65536) for _ in range(128)) + iend)
open(f'{out}/before-iend.png', 'wb').write(sig + ihdr + idat + Z + iend)
for ext in ('jpg', 'gif', 'webp'):
    b = open(f'{work}/clean.{ext}', 'rb').read()
    open(f'{out}/clean.{ext}', 'wb').write(b)
    open(f'{out}/after-end.{ext}', 'wb').write(b + Z)
PY

HAS_STRACE=1
command -v strace >/dev/null 2>&1 || { HAS_STRACE=0; skip "$T_NAME/bytes-read" "strace is not installed: bytes read are not counted"; }

# outcome FILE CLEAN: FILE finishes, one job streamed and two decoded
# whole, with CLEAN's pixels; with strace, reads under 1 MB of FILE.
outcome() {
    local f=$1 clean=$2 r=$WORK/$1.json
    cat >"$r" <<JSON
{"service_id": 1, "source": "/in/$f", "limits": {"max_process_time": 20}, "jobs": [
 {"destination": "/out/$f-a.png", "transformations": []},
 {"destination": "/out/$f-b.png", "transformations": [{"type": "flip", "direction": "x"}]}]}
JSON
    cat >"$WORK/$f.seq.json" <<JSON
{"service_id": 1, "source": "/in/$f", "limits": {"max_process_time": 20}, "jobs": [
 {"destination": "/out/$f-s.png", "transformations": [{"type": "flip", "direction": "x"}]}]}
JSON
    run_kiln "$f" "$r" "$WORK/$f.seq.json"
    if [ "${RST[$r]:-}" = FINISHED ] && [ "${RST[$WORK/$f.seq.json]:-}" = FINISHED ]; then
        ok "$T_NAME/$f/finished"
    else
        fail "$T_NAME/$f/finished" "${RST[$r]:-?}: ${RERR[$r]:-}; streamed ${RST[$WORK/$f.seq.json]:-?}: ${RERR[$WORK/$f.seq.json]:-}"
        return
    fi
    vips copy "$IN/$clean" "$WORK/ref-$f.png" 2>/dev/null
    if psnr_ge "$ROOT/out/$f-a.png" "$WORK/ref-$f.png" 99; then ok "$T_NAME/$f/pixels"
    else fail "$T_NAME/$f/pixels" "PSNR ${PSNR_VALUE:-?} dB against $clean"; fi
    [ "$HAS_STRACE" = 1 ] || return
    strace -f -y -e trace=read,pread64 -o "$WORK/$f.strace" \
        "$KILN" run --storage-root "$ROOT" "$r" "$WORK/$f.seq.json" >/dev/null 2>&1
    local n
    n=$(grep -F "$f>" "$WORK/$f.strace" | awk '{ v = $NF; if (v ~ /^[0-9]+$/) s += v } END { print s + 0 }')
    # read(2) calls only: a source mapped whole (the GIF check maps it)
    # is read without them, so 0 is possible; what must not happen is
    # reading the trailing megabytes.
    check "$T_NAME/$f/bytes-read:$n" "read $n bytes of a $(stat -c %s "$IN/$f")-byte file (want under 1 MB)" \
        [ "$n" -lt 1048576 ]
}
outcome after-iend.png clean.png
outcome idat-chunks.png clean.png
outcome before-iend.png clean.png
outcome after-end.jpg clean.jpg
outcome after-end.gif clean.gif
outcome after-end.webp clean.webp
finish
