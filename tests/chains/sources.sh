#!/usr/bin/env bash
# Test fixtures for the op-chain property tests (tests/chains/chains.py):
# synthesises, deterministically and in a few seconds, small source images
# of every kind a libvips-based decoder accepts (JPEG baseline/progressive/
# ICC/CMYK/grey/EXIF orientations 2..8, PNG 8/16-bit, grey, alpha, palette,
# tRNS and degenerate sizes, GIF still/animated/transparent, WebP lossy/
# lossless/animated, TIFF 8/16-bit/alpha/CMYK/LZW, tall, wide and photo-size
# images) plus watermark images, and a manifest read back from the files.
#
#   usage: tests/chains/sources.sh OUTDIR
#
# Writes OUTDIR/samples/* (storage paths /samples/NAME), OUTDIR/marks/*
# (/marks/NAME) and OUTDIR/sources.json: one object per file with path,
# role (source|mark), kind, format, width and height after EXIF
# auto-orientation, bands (as libvips decodes the file, before rotation),
# has_alpha, bits (8|16), pages and orientation (1..8); every value but
# path, role and kind comes from `vipsheader -a` on the written file.
# Same bytes on every run on one machine: all noise has fixed seeds.
# Needs only the vips CLI (libvips-tools, 8.14) and python3; no ImageMagick.
set -euo pipefail
set -E # the ERR trap also fires in functions and in the parallel lanes
trap 'echo "sources.sh: line $LINENO failed: $BASH_COMMAND" >&2' ERR

if [ $# -ne 1 ] || [ -z "$1" ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
OUT=$1
export LC_ALL=C
S=$OUT/samples
K=$OUT/marks
mkdir -p "$OUT"
rm -rf -- "$S" "$K" "$OUT/sources.json"
mkdir -p "$S" "$K"
T=$(mktemp -d "${TMPDIR:-/tmp}/kiln-sources.XXXXXX")
trap 'rm -rf -- "$T"' EXIT
# Every vips run would load the optional loader modules (magick, poppler,
# openslide, heif, jxl) from $VIPSHOME/lib/vips-modules-8.14, half its
# start-up time; the formats made here are built in, so point VIPSHOME at
# a directory that does not exist. The output is the same either way.
export VIPSHOME=$T/no-vips-home

# ------------------------------------------------------------ python helper
# Small jobs vips' CLI cannot do: an RGB ICC profile, alpha masks with
# anti-aliased shapes, metadata (page-height, delay) set in a .v file's XML
# extension, the Exif orientation of a JPEG, and the manifest.
cat >"$T/fx.py" <<'PY'
import json, math, os, re, struct, subprocess, sys, tempfile

def s15(v):
    return struct.pack(">i", int(round(v * 65536)))

def mat_mul(a, b):
    return [[sum(a[i][k] * b[k][j] for k in range(3)) for j in range(3)]
            for i in range(3)]

def mat_vec(a, v):
    return [sum(a[i][k] * v[k] for k in range(3)) for i in range(3)]

def mat_inv(m):
    (a, b, c), (d, e, f), (g, h, i) = m
    det = a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g)
    return [[(e * i - f * h) / det, (c * h - b * i) / det, (b * f - c * e) / det],
            [(f * g - d * i) / det, (a * i - c * g) / det, (c * d - a * f) / det],
            [(d * h - e * g) / det, (b * g - a * h) / det, (a * e - b * d) / det]]

def xyz(x, y):
    return [x / y, 1.0, (1 - x - y) / y]

def icc_rgb(path, desc, prims, white, gamma):
    """A matrix/TRC ICC v2.1 display profile: primaries and white as xy,
    colorants Bradford-adapted to the D50 PCS, a pure-gamma curve."""
    w = xyz(*white)
    p = [xyz(*c) for c in prims]
    P = [[p[j][i] for j in range(3)] for i in range(3)]
    sc = mat_vec(mat_inv(P), w)
    M = [[P[i][j] * sc[j] for j in range(3)] for i in range(3)]
    d50 = [0.9642, 1.0, 0.8249]
    B = [[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367],
         [0.0389, -0.0685, 1.0296]]
    cs, cd = mat_vec(B, w), mat_vec(B, d50)
    D = [[cd[i] / cs[i] if i == j else 0.0 for j in range(3)] for i in range(3)]
    A = mat_mul(mat_inv(B), mat_mul(D, B))
    Md = mat_mul(A, M)
    def xyz_tag(v):
        return b"XYZ " + bytes(4) + b"".join(s15(c) for c in v)
    d = desc.encode("ascii") + b"\0"
    desc_tag = (b"desc" + bytes(4) + struct.pack(">I", len(d)) + d +
                bytes(4) + bytes(4) + bytes(2) + bytes(1) + bytes(67))
    cprt = b"text" + bytes(4) + b"No copyright, synthetic test profile\0"
    trc = b"curv" + bytes(4) + struct.pack(">IH", 1, int(round(gamma * 256)))
    tags = [(b"desc", desc_tag), (b"cprt", cprt),
            (b"wtpt", xyz_tag(d50)),
            (b"rXYZ", xyz_tag([Md[i][0] for i in range(3)])),
            (b"gXYZ", xyz_tag([Md[i][1] for i in range(3)])),
            (b"bXYZ", xyz_tag([Md[i][2] for i in range(3)])),
            (b"rTRC", trc), (b"gTRC", trc), (b"bTRC", trc)]
    off = 128 + 4 + 12 * len(tags)
    table, data, seen = b"", b"", {}
    for sig, body in tags:
        if body not in seen:
            while (off + len(data)) % 4:
                data += b"\0"
            seen[body] = off + len(data)
            data += body
        table += sig + struct.pack(">II", seen[body], len(body))
    body = struct.pack(">I", len(tags)) + table + data
    while len(body) % 4:
        body += b"\0"
    size = 128 + len(body)
    hdr = (struct.pack(">I", size) + b"none" + bytes([2, 0x10, 0, 0]) +
           b"mntrRGB XYZ " + struct.pack(">6H", 2000, 1, 1, 0, 0, 0) +
           b"acsp" + bytes(4) + bytes(4) + bytes(4) + bytes(4) + bytes(8) +
           struct.pack(">I", 0) + b"".join(s15(c) for c in d50) + bytes(4))
    hdr += bytes(128 - len(hdr))
    with open(path, "wb") as f:
        f.write(hdr + body)

def cov(d):
    """Anti-aliased coverage of a signed distance (negative inside)."""
    return min(1.0, max(0.0, 0.5 - d))

def rrect(x, y, x0, y0, x1, y1, r):
    cx = min(max(x, x0 + r), x1 - r)
    cy = min(max(y, y0 + r), y1 - r)
    if x0 + r <= x <= x1 - r or y0 + r <= y <= y1 - r:
        return max(x0 - x, x - x1, y0 - y, y - y1)
    return math.hypot(x - cx, y - cy) - r

def mask(kind, w, h, maxval):
    """Alpha masks (PGM, 8 or 16 bit). 'sample': transparent left quarter,
    horizontal ramp, opaque right quarter, a hard-edged 50% disc and an
    anti-aliased transparent rounded hole. 'logo': a rounded badge at 85%
    with an opaque ring and a transparent dot. 'binary': hard 0/255 shapes."""
    px = []
    for j in range(h):
        y = j + 0.5
        for i in range(w):
            x = i + 0.5
            u = x / w
            if kind == "sample":
                a = 0.0 if u < 0.25 else 1.0 if u > 0.75 else (u - 0.25) / 0.5
                if math.hypot(x - 0.5 * w, y - 0.5 * h) < 0.22 * h:
                    a = 0.5
                hole = rrect(x, y, 0.80 * w, 0.15 * h, 0.95 * w, 0.45 * h, 0.05 * h)
                a *= 1.0 - cov(hole)
            elif kind == "logo":
                s = h / 60.0
                a = 0.85 * cov(rrect(x, y, 3 * s, 3 * s, w - 3 * s, h - 3 * s, 12 * s))
                ring = abs(math.hypot(x - 0.22 * w, y - 0.5 * h) - 15 * s) - 3 * s
                a = max(a, cov(ring))
                a *= 1.0 - cov(math.hypot(x - 0.22 * w, y - 0.5 * h) - 6 * s)
            elif kind == "binary":
                a = 1.0 if (u > 0.3 and (math.hypot(x - 0.6 * w, y - 0.5 * h) < 0.45 * h
                                         or (j // 10) % 2 == 0)) else 0.0
            else:
                raise SystemExit("unknown mask " + kind)
            px.append(int(round(a * maxval)))
    if maxval > 255:
        raw = struct.pack(">%dH" % len(px), *px)
    else:
        raw = bytes(px)
    return b"P5\n%d %d\n%d\n" % (w, h, maxval) + raw

def setmeta(vfile, pairs):
    """Sets gint or VipsArrayInt fields in a .v file's XML extension."""
    xml = subprocess.run(["vipsheader", "-f", "getext", vfile], check=True,
                         capture_output=True, text=True).stdout
    if "<meta>" not in xml:
        xml = xml.replace("</root>", "  <meta>\n  </meta>\n</root>")
    for name, typ, value in pairs:
        xml = re.sub(r'\s*<field type="[^"]*" name="%s">[^<]*</field>' % re.escape(name), "", xml)
        field = '    <field type="%s" name="%s">%s</field>\n' % (typ, name, value)
        xml = xml.replace("  </meta>", field + "  </meta>")
    # vipsedit reads the new block by its size: stdin must be a file, not a pipe.
    with tempfile.TemporaryFile("w+") as t:
        t.write(xml)
        t.flush()
        t.seek(0)
        subprocess.run(["vipsedit", "--setext", vfile], stdin=t, check=True)
    got = subprocess.run(["vipsheader", "-f", "getext", vfile], check=True,
                         capture_output=True, text=True).stdout
    if got.strip() != xml.strip():
        raise SystemExit("vipsedit did not set the metadata of " + vfile)

def set_orientation(path, value):
    """Rewrites the Orientation tag (0x0112) of IFD0 in a JPEG's Exif block
    in place; vips' jpegsave always writes one, as 1."""
    with open(path, "rb") as f:
        d = bytearray(f.read())
    i = 2
    while i + 4 <= len(d) and d[i] == 0xFF and d[i + 1] != 0xDA:
        n = struct.unpack(">H", d[i + 2:i + 4])[0]
        if d[i + 1] == 0xE1 and d[i + 4:i + 10] == b"Exif\0\0":
            t = i + 10
            e = "<" if d[t:t + 2] == b"II" else ">"
            ifd = t + struct.unpack(e + "I", d[t + 4:t + 8])[0]
            for k in range(struct.unpack(e + "H", d[ifd:ifd + 2])[0]):
                at = ifd + 2 + 12 * k
                tag, typ, cnt = struct.unpack(e + "HHI", d[at:at + 8])
                if tag == 0x0112 and typ == 3 and cnt == 1:
                    d[at + 8:at + 10] = struct.pack(e + "H", value)
                    with open(path, "wb") as f:
                        f.write(d)
                    return
        i += 2 + n
    raise SystemExit("no Exif Orientation tag in " + path)

def headers(outdir, paths):
    """`vipsheader -a` of many files in one run: {path: {field: value}}."""
    rel = [p.lstrip("/") for p in paths]
    out = subprocess.run(["vipsheader", "-a"] + rel, cwd=outdir, check=True,
                         capture_output=True, text=True).stdout
    hs = {r: {} for r in rel}
    for line in out.splitlines():
        name, sep, rest = line.partition(": ")
        k, sep2, v = rest.partition(": ")
        if sep and sep2 and name in hs and k not in hs[name]:
            hs[name][k] = v
    return [hs[r] for r in rel]

FORMATS = {"jpegload": "jpeg", "pngload": "png", "gifload": "gif",
           "webpload": "webp", "tiffload": "tiff"}

def manifest(outdir, kinds_file):
    rows = []
    with open(kinds_file) as f:
        for line in f:
            rows.append(line.rstrip("\n").split("\t"))
    listed = set(p for p, _ in rows)
    if len(listed) != len(rows):
        raise SystemExit("a path is listed twice")
    entries = []
    for (path, kind), h in zip(rows, headers(outdir, [p for p, _ in rows])):
        w, ht, bands = int(h["width"]), int(h["height"]), int(h["bands"])
        interp, fmt = h["interpretation"], h["format"]
        orient = int(h.get("orientation", "1"))
        if orient >= 5:
            w, ht = ht, w
        if interp == "cmyk":
            alpha = bands > 4
        else:
            alpha = bands == 2 or bands >= 4
        entries.append({
            "path": path,
            "role": "source" if path.startswith("/samples/") else "mark",
            "kind": kind,
            "format": FORMATS[h["vips-loader"]],
            "width": w, "height": ht, "bands": bands,
            "has_alpha": alpha,
            "bits": {"uchar": 8, "ushort": 16}[fmt],
            "pages": int(h.get("n-pages", "1")),
            "orientation": orient,
        })
    on_disk = set()
    for sub in ("samples", "marks"):
        for n in os.listdir(os.path.join(outdir, sub)):
            on_disk.add("/%s/%s" % (sub, n))
    if on_disk != listed:
        raise SystemExit("manifest and files differ: %s" %
                         sorted(on_disk ^ listed))
    with open(os.path.join(outdir, "sources.json"), "w") as f:
        json.dump(entries, f, indent=1)
        f.write("\n")

def main():
    cmd, a = sys.argv[1], sys.argv[2:]
    if cmd == "prep":
        # DIR: the ICC profile and the alpha masks the images need.
        d = a[0]
        # Adobe RGB (1998) encoding: its published primaries, D65 white,
        # gamma 563/256.
        icc_rgb(os.path.join(d, "adobergb.icc"),
                "Adobe RGB (1998) compatible (kiln fixture)",
                [(0.64, 0.33), (0.21, 0.71), (0.15, 0.06)], (0.3127, 0.3290),
                563 / 256)
        for name, kind, w, h, maxval in [
                ("a320", "sample", 320, 240, 255),
                ("a240x16", "sample", 240, 180, 65535),
                ("a200", "sample", 200, 150, 255),
                ("abin", "binary", 160, 120, 255),
                ("logo", "logo", 120, 60, 255),
                ("logo16", "logo", 96, 48, 65535),
                ("mark64", "logo", 64, 64, 255),
                ("markpal", "binary", 96, 48, 255)]:
            with open(os.path.join(d, name + ".pgm"), "wb") as f:
                f.write(mask(kind, w, h, maxval))
    elif cmd == "setmeta":
        # FILE NAME=TYPE=VALUE... [-- FILE NAME=TYPE=VALUE...]...
        groups, cur = [], []
        for x in a + ["--"]:
            if x == "--":
                if cur:
                    groups.append(cur)
                cur = []
            else:
                cur.append(x)
        for g in groups:
            setmeta(g[0], [tuple(x.split("=", 2)) for x in g[1:]])
    elif cmd == "orient":
        # FILE N [FILE N]...
        for path, n in zip(a[0::2], a[1::2]):
            set_orientation(path, int(n))
    elif cmd == "manifest":
        manifest(a[0], a[1])
    else:
        raise SystemExit("unknown command " + cmd)

main()
PY
fx() { python3 "$T/fx.py" "$@"; }
f() { awk "BEGIN { printf \"%.6f\", $1 }"; } # float arithmetic for vips args

# kind LANE PATH KIND: one manifest row. Each lane of work that runs in
# parallel keeps its own list; they are joined in a fixed order at the end.
kind() { printf '%s\t%s\n' "$2" "$3" >>"$T/kinds.$1"; }

# run2 FUNC1 FUNC2: runs two functions in parallel; fails if either does.
run2() {
    "$1" & local p1=$!
    "$2" & local p2=$!
    local rc=0
    wait "$p1" || rc=$?
    wait "$p2" || rc=$?
    return "$rc"
}

# ---------------------------------------------------------------- masters
# synth W H SEED NAME: $T/NAME.f.v, a float RGB image (about 0..255) that
# mixes smooth x/y gradients, large and small Perlin texture and seeded
# Gaussian noise, with hard edges drawn on (a filled and an outlined
# rectangle, a disc, white text); $T/NAME.v is it as 8-bit sRGB.
synth() {
    local w=$1 h=$2 seed=$3 n=$4 d=$T/$4
    local big=$(( (w > h ? w : h) / 4 )) s=$(( w < h ? w : h ))
    local dpi=$(( s * 72 / 100 > 40 ? s * 72 / 100 : 40 ))
    mkdir -p "$d"
    vips xyz "$d/xy.v" "$w" "$h"
    vips perlin "$d/p.v" "$w" "$h" --cell-size "$big" --seed "$seed"
    vips perlin "$d/p2.v" "$w" "$h" --cell-size 9 --seed "$((seed + 1))"
    vips gaussnoise "$d/n.v" "$w" "$h" --sigma 6 --mean 0 --seed "$((seed + 2))"
    vips bandjoin "$d/xy.v $d/p.v $d/p2.v $d/n.v" "$d/all.v"
    # Rows: R, G, B; columns: x, y, big texture, small texture, noise.
    {
        echo "5 3 1 0"
        echo "$(f "190/$w") 0 -30 28 1"
        echo "0 $(f "170/$h") 20 28 1"
        echo "0 0 95 28 1"
    } >"$d/mix.mat"
    vips recomb "$d/all.v" "$d/m0.v" "$d/mix.mat"
    vips linear "$d/m0.v" "$d/m.v" 1 "35 55 120"
    vips draw_rect "$d/m.v" "20 28 92" $((w * 6 / 100)) $((h * 58 / 100)) \
        $((w * 26 / 100)) $((h * 30 / 100)) --fill
    vips draw_rect "$d/m.v" "250 250 240" $((w * 4 / 100)) $((h * 55 / 100)) \
        $((w * 30 / 100)) $((h * 36 / 100))
    vips draw_circle "$d/m.v" "240 120 30" $((w * 70 / 100)) $((h * 66 / 100)) \
        $((s * 18 / 100)) --fill
    vips text "$d/txt.v" "kiln $n" --font "DejaVu Sans Bold" --dpi "$dpi"
    vips draw_mask "$d/m.v" "255 255 250" "$d/txt.v" $((w * 8 / 100)) $((h * 8 / 100))
    mv "$d/m.v" "$T/$n.f.v"
    vips cast "$T/$n.f.v" "$T/$n.v" uchar
    vipsedit --interpretation srgb "$T/$n.v"
    rm -rf -- "$d"
}
masters_a() {
    synth 640 480 11 small
    # 16-bit from the float master, so it has more than 256 levels.
    vips linear "$T/small.f.v" "$T/small.l16.v" 257 0
    vips cast "$T/small.l16.v" "$T/small.16.v" ushort
    vipsedit --interpretation rgb16 "$T/small.16.v"
    synth 160 4200 31 tall
}
masters_b() {
    fx prep "$T" # ICC profile and alpha masks
    synth 1600 1200 23 photo
    synth 4200 160 37 wide
}
run2 masters_a masters_b

# Shared derived images. R (320x240) is the reference for the colour-managed
# JPEGs: each looks like R once converted to sRGB (but the CMYK one without
# a profile, which a decoder can only guess at).
vips resize "$T/small.v" "$T/R.v" 0.5
vips resize "$T/small.16.v" "$T/R16.v" 0.5
vips extract_area "$T/small.v" "$T/c240.v" 20 20 240 180
vips resize "$T/a320.pgm" "$T/a240.v" 0.75
vips bandjoin "$T/c240.v $T/a240.v" "$T/c240a.v"
vips extract_area "$T/small.16.v" "$T/c16.v" 100 100 240 180

# ------------------------------------------------------------------- JPEG
jpeg() {
    local L=jpeg
    vips jpegsave "$T/R.v" "$S/jpeg-baseline.jpg" --Q 90
    kind $L /samples/jpeg-baseline.jpg "jpeg baseline srgb no profile"
    vips jpegsave "$T/R.v" "$S/jpeg-progressive.jpg" --Q 85 --interlace
    kind $L /samples/jpeg-progressive.jpg "jpeg progressive"
    vips icc_transform "$T/R.v" "$S/jpeg-adobergb.jpg[Q=90]" "$T/adobergb.icc" \
        --input-profile srgb
    kind $L /samples/jpeg-adobergb.jpg "jpeg adobe rgb 1998 icc"
    vips icc_transform "$T/R.v" "$S/jpeg-p3.jpg[Q=90]" p3 --input-profile srgb
    kind $L /samples/jpeg-p3.jpg "jpeg display p3 icc"
    vips icc_transform "$T/R.v" "$S/jpeg-srgb-icc.jpg[Q=90]" srgb --input-profile srgb
    kind $L /samples/jpeg-srgb-icc.jpg "jpeg srgb icc embedded"
    vips icc_transform "$T/R.v" "$T/cmyk.v" cmyk --input-profile srgb
    vips jpegsave "$T/cmyk.v" "$S/jpeg-cmyk-icc.jpg" --Q 90
    kind $L /samples/jpeg-cmyk-icc.jpg "jpeg cmyk icc"
    vips jpegsave "$T/cmyk.v" "$S/jpeg-cmyk-noprofile.jpg" --Q 90 --strip
    kind $L /samples/jpeg-cmyk-noprofile.jpg "jpeg cmyk no profile"
    vips extract_area "$T/small.v" "$T/grey-src.v" 170 40 300 400
    vips colourspace "$T/grey-src.v" "$S/jpeg-grey.jpg[Q=88]" b-w
    kind $L /samples/jpeg-grey.jpg "jpeg greyscale 300x400"

    # EXIF orientations 2..8, all 120x80 as stored. The pixels are the
    # inverse of the display transform applied to an upright picture with a
    # red block in its top-left corner, so each file autorotates to its
    # upright picture: U1 (120x80) for 2..4, U2 (80x120) for 5..8. vips
    # writes Orientation 1 in the Exif block; fx orient sets the value.
    vips extract_area "$T/small.v" "$T/U1.v" 380 20 240 160
    vips resize "$T/U1.v" "$T/U1s.v" 0.5
    vips extract_area "$T/small.v" "$T/U2.v" 40 60 160 240
    vips resize "$T/U2.v" "$T/U2s.v" 0.5
    vips draw_rect "$T/U1s.v" "230 20 20" 0 0 30 16 --fill
    vips draw_rect "$T/U2s.v" "230 20 20" 0 0 20 24 --fill
    local o=$S/jpeg-orient- q="[Q=90]"
    vips flip "$T/U1s.v" "${o}2.jpg$q" horizontal
    vips rot "$T/U1s.v" "${o}3.jpg$q" d180
    vips flip "$T/U1s.v" "${o}4.jpg$q" vertical
    vips rot "$T/U2s.v" "$T/o5.v" d90
    vips flip "$T/o5.v" "${o}5.jpg$q" horizontal
    vips rot "$T/U2s.v" "${o}6.jpg$q" d270
    vips rot "$T/U2s.v" "$T/o7.v" d270
    vips flip "$T/o7.v" "${o}7.jpg$q" horizontal
    vips rot "$T/U2s.v" "${o}8.jpg$q" d90
    local n args=()
    for n in 2 3 4 5 6 7 8; do
        args+=("${o}$n.jpg" "$n")
        kind $L "/samples/jpeg-orient-$n.jpg" "jpeg exif orientation $n"
    done
    fx orient "${args[@]}"
}

# -------------------------------------------------------------------- PNG
png() {
    local L=png
    vips extract_area "$T/small.v" "$S/png-rgb8.png" 300 200 240 180
    kind $L /samples/png-rgb8.png "png rgb 8-bit"
    vips bandjoin "$T/R.v $T/a320.pgm" "$S/png-rgba8.png"
    kind $L /samples/png-rgba8.png "png rgba 8-bit varied alpha"
    vips pngsave "$T/R16.v" "$S/png-rgb16.png" --bitdepth 16
    kind $L /samples/png-rgb16.png "png rgb 16-bit"
    vips bandjoin "$T/c16.v $T/a240x16.pgm" "$T/rgba16.v"
    vips pngsave "$T/rgba16.v" "$S/png-rgba16.png" --bitdepth 16
    kind $L /samples/png-rgba16.png "png rgba 16-bit varied alpha"
    vips extract_area "$T/small.v" "$T/c200.v" 420 300 200 150
    vips colourspace "$T/c200.v" "$T/g200.v" b-w
    vips pngsave "$T/g200.v" "$S/png-grey8.png"
    kind $L /samples/png-grey8.png "png greyscale 8-bit"
    vips bandjoin "$T/g200.v $T/a200.pgm" "$S/png-greyalpha8.png"
    kind $L /samples/png-greyalpha8.png "png greyscale+alpha 8-bit"
    vips pngsave "$T/c240.v" "$S/png-palette.png" --palette --effort 1
    kind $L /samples/png-palette.png "png palette"
    vips pngsave "$T/c240a.v" "$S/png-palette-trns.png" --palette --effort 1
    kind $L /samples/png-palette-trns.png "png palette with trns alpha"
    vips extract_area "$T/small.v" "$S/png-1x1.png" 330 250 1 1
    kind $L /samples/png-1x1.png "png 1x1"
    vips extract_area "$T/small.v" "$S/png-1x57.png" 200 100 1 57
    kind $L /samples/png-1x57.png "png 1 pixel wide"
    vips extract_area "$T/small.v" "$S/png-63x1.png" 100 300 63 1
    kind $L /samples/png-63x1.png "png 1 pixel tall"
}

# ------------------------------------------------------------ GIF and WebP
anim() {
    local L=anim i
    # Frames: a 160x120 window panning over the small master, with a white
    # block that moves; 4 frames, 100 ms each, looping forever.
    for i in 0 1 2 3; do
        vips extract_area "$T/small.v" "$T/fr$i.v" $((60 + i * 90)) $((40 + i * 50)) 160 120
        vips draw_rect "$T/fr$i.v" "255 255 255" $((10 + i * 35)) 80 24 24 --fill
    done
    # (8.14.1's arrayjoin --across crashes on .v inputs: join in pairs.)
    vips join "$T/fr0.v" "$T/fr1.v" "$T/fr01.v" vertical
    vips join "$T/fr2.v" "$T/fr3.v" "$T/fr23.v" vertical
    vips join "$T/fr01.v" "$T/fr23.v" "$T/anim.v" vertical
    fx setmeta "$T/anim.v" "page-height=gint=120" "n-pages=gint=4" "loop=gint=0" \
        "delay=VipsArrayInt=100 100 100 100 "
    vips resize "$T/small.v" "$T/g150.v" 0.3125
    vips gifsave "$T/g150.v" "$S/gif-static.gif"
    kind $L /samples/gif-static.gif "gif static"
    vips gifsave "$T/anim.v" "$S/gif-animated.gif"
    kind $L /samples/gif-animated.gif "gif animated 4 frames"
    vips bandjoin "$T/fr2.v $T/abin.pgm" "$T/gt.v"
    vips gifsave "$T/gt.v" "$S/gif-transparent.gif"
    kind $L /samples/gif-transparent.gif "gif transparent"

    vips webpsave "$T/R.v" "$S/webp-lossy.webp" --Q 75
    kind $L /samples/webp-lossy.webp "webp lossy rgb"
    vips webpsave "$T/c240a.v" "$S/webp-lossless-alpha.webp" --lossless
    kind $L /samples/webp-lossless-alpha.webp "webp lossless rgba"
    vips webpsave "$T/anim.v" "$S/webp-animated.webp" --Q 75
    kind $L /samples/webp-animated.webp "webp animated 4 frames"
}

# ------------------------------------------------------------------- TIFF
tiff() {
    local L=tiff
    vips tiffsave "$T/c240.v" "$S/tiff-rgb8.tif"
    kind $L /samples/tiff-rgb8.tif "tiff rgb 8-bit uncompressed"
    vips tiffsave "$T/c16.v" "$S/tiff-rgb16.tif" --compression deflate --predictor horizontal
    kind $L /samples/tiff-rgb16.tif "tiff rgb 16-bit deflate"
    vips tiffsave "$T/c240a.v" "$S/tiff-rgba.tif" --compression deflate --predictor horizontal
    kind $L /samples/tiff-rgba.tif "tiff rgba 8-bit deflate"
    vips icc_transform "$T/c240.v" "$T/cmyk240.v" cmyk --input-profile srgb
    vips tiffsave "$T/cmyk240.v" "$S/tiff-cmyk.tif" --compression deflate
    kind $L /samples/tiff-cmyk.tif "tiff cmyk icc deflate"
    vips tiffsave "$T/R.v" "$S/tiff-lzw.tif" --compression lzw --predictor horizontal
    kind $L /samples/tiff-lzw.tif "tiff rgb 8-bit lzw"
}

# ------------------------------------------------------- tall, wide, photo
big() {
    local L=big
    vips jpegsave "$T/tall.v" "$S/jpeg-tall.jpg" --Q 85
    kind $L /samples/jpeg-tall.jpg "jpeg tall 160x4200"
    vips pngsave "$T/tall.v" "$S/png-tall.png"
    kind $L /samples/png-tall.png "png tall 160x4200"
    vips jpegsave "$T/wide.v" "$S/jpeg-wide.jpg" --Q 85
    kind $L /samples/jpeg-wide.jpg "jpeg wide 4200x160"
    vips pngsave "$T/wide.v" "$S/png-wide.png"
    kind $L /samples/png-wide.png "png wide 4200x160"
    vips jpegsave "$T/photo.v" "$S/jpeg-photo.jpg" --Q 88
    kind $L /samples/jpeg-photo.jpg "jpeg photo-like 1600x1200"
}

# ------------------------------------------------------------- watermarks
marks() {
    local L=marks
    # Logo: an orange-to-violet gradient on an anti-aliased rounded badge
    # at 85% alpha, with an opaque ring, a transparent dot and opaque white
    # text, on a fully transparent background.
    vips xyz "$T/lxy.v" 120 60
    vips linear -- "$T/lxy.v" "$T/lg.v" "-1.6 1.2" "240 40"
    vips extract_band "$T/lxy.v" "$T/lx.v" 0
    vips linear "$T/lx.v" "$T/lb.v" 1.5 40
    vips bandjoin "$T/lg.v $T/lb.v" "$T/lc.v"
    vips cast "$T/lc.v" "$T/lcu.v" uchar
    vips copy "$T/logo.pgm" "$T/la.v"
    vips text "$T/ltxt.v" "kiln" --font "DejaVu Sans Bold" --dpi 110
    vips draw_mask "$T/lcu.v" "255 255 255" "$T/ltxt.v" 56 16
    vips draw_mask "$T/la.v" 255 "$T/ltxt.v" 56 16
    vips bandjoin "$T/lcu.v $T/la.v" "$T/logo.v"
    vips copy "$T/logo.v" "$K/mark-logo-rgba.png" --interpretation srgb
    kind $L /marks/mark-logo-rgba.png "png rgba logo with transparency"
    vips extract_area "$T/small.v" "$T/m80.v" 480 300 80 80
    vips draw_rect "$T/m80.v" "255 255 255" 4 4 72 72
    vips jpegsave "$T/m80.v" "$K/mark-opaque.jpg" --Q 90
    kind $L /marks/mark-opaque.jpg "jpeg opaque 80x80"
    vips extract_area "$T/small.v" "$T/m64.v" 250 180 64 64
    vips colourspace "$T/m64.v" "$T/g64.v" b-w
    vips draw_circle "$T/g64.v" 255 32 32 20
    vips pngsave "$T/g64.v" "$K/mark-grey.png"
    kind $L /marks/mark-grey.png "png greyscale 64x64"
    vips bandjoin "$T/g64.v $T/mark64.pgm" "$K/mark-greyalpha.png"
    kind $L /marks/mark-greyalpha.png "png grey+alpha 64x64"
    vips resize "$T/lcu.v" "$T/l96.v" 0.8
    vips linear "$T/l96.v" "$T/l96l.v" 257 0
    vips cast "$T/l96l.v" "$T/l96u.v" ushort
    vips bandjoin "$T/l96u.v $T/logo16.pgm" "$T/logo16.v"
    vips copy "$T/logo16.v" "$T/logo16i.v" --interpretation rgb16
    vips pngsave "$T/logo16i.v" "$K/mark-16bit.png" --bitdepth 16
    kind $L /marks/mark-16bit.png "png rgba 16-bit 96x48"
    vips bandjoin "$T/l96.v $T/markpal.pgm" "$T/lpal.v"
    vips copy "$T/lpal.v" "$T/lpali.v" --interpretation srgb
    vips pngsave "$T/lpali.v" "$K/mark-palette-trns.png" --palette --effort 1
    kind $L /marks/mark-palette-trns.png "png palette with trns"
}

lane_a() { jpeg; tiff; big; }
lane_b() { png; anim; marks; }
run2 lane_a lane_b

# --------------------------------------------------------------- manifest
cat "$T/kinds.jpeg" "$T/kinds.png" "$T/kinds.anim" "$T/kinds.tiff" \
    "$T/kinds.big" "$T/kinds.marks" >"$T/kinds.tsv"
fx manifest "$OUT" "$T/kinds.tsv"
echo "sources: $(wc -l <"$T/kinds.tsv") files in $OUT"
