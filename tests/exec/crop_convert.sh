#!/usr/bin/env bash
# crop, differential against ImageMagick.
#  - fit false, every gravity (nine + middle) x offsets (none, positive,
#    negative, percentages) x sizes (even, odd, partly outside the input):
#    pixel-identical to `convert in.png -gravity G -crop WxH+X+Y +repage`
#    (both intersect a region that leaves the image);
#  - fit true: the region ops.md defines (shrunk keeping proportions, then
#    shifted inside), pixel-identical to ImageMagick's crop of that region;
#  - an even-sized canvas with odd regions, where ImageMagick centres with
#    cw/2 - rw/2 (kiln follows it; docs/ops.md says why).
# Also: status/size in the result JSON = the file = `kiln compile`'s shape.
cd "$(dirname "$0")/../.." || exit 1
. tests/exec/lib.sh
exec_setup

# Odd sizes on purpose; non-symmetric content; 8-bit sRGB PNG, no alpha.
convert rose: -resize 97x61! -strip PNG24:"$ROOT/in/src.png"
# Even canvas: there ops.md's written (cw - rw) / 2 and ImageMagick's
# cw/2 - rw/2 differ for odd regions; kiln follows ImageMagick, so these
# cases compare with convert directly.
convert rose: -resize 96x60! -strip PNG24:"$ROOT/in/even.png"
fx=$(identify -format '%wx%h %[channels] %z|' "$ROOT/in/src.png" "$ROOT/in/even.png")
[ "$fx" = "97x61 srgb 8|96x60 srgb 8|" ] || fail "crop/fixtures" "unexpected fixtures: $fx"

GRAVITIES="northwest north northeast west center east southwest south southeast middle"

# ------------------------------------------------------------ the cases
# One line per case: NAME SOURCE WIDTH HEIGHT GRAVITY XOFF YOFF FIT MODE
#   MODE im:   reference = ImageMagick's own -gravity crop (fit false)
#   MODE spec: reference = ImageMagick's crop of the region computed here
#              from ops.md (section 3 placement, section 4 crop)
# "-" = parameter not given.
CASES=$WORK/cases.txt
{
    # 1. fit false against ImageMagick; 80x50 with offsets leaves the input.
    for g in $GRAVITIES; do
        for size in 40x30 41x31 80x50; do
            for off in "- -" "7 5" "-6 -4" "10% 20%" "-10% 50%"; do
                set -- $off
                echo "fit-false/$g/$size/$1,$2 src ${size%x*} ${size#*x} $g $1 $2 false im"
            done
        done
        echo "fit-false/$g/80x50/30,20 src 80 50 $g 30 20 false im"
        # sizes in %: 48.5 -> 49, 30.5 -> 31 (halves away from zero)
        echo "fit-false/$g/50%x50%/3,2 src 50% 50% $g 3 2 false im"
        # units w and h: 40w = 38.8 -> 39, 30h = 18.3 -> 18
        echo "fit-false/$g/40wx30h/-2,- src 40w 30h $g -2 - false im"
    done
    # 2. fit true. Shrink ratios chosen so the shrunk size does not depend
    #    on a rounding mode: 194x80 -> 97x40, 150x122 -> 75x61,
    #    300x100 -> 97x32 (32.3), 100x300 -> 20x61 (20.3).
    for g in $GRAVITIES; do
        echo "fit-true/$g/194x80/7,5 src 194 80 $g 7 5 true spec"
        echo "fit-true/$g/150x122/-,- src 150 122 $g - - true spec"
        echo "fit-true/$g/300x100/0,3 src 300 100 $g 0 3 true spec"
        echo "fit-true/$g/100x300/4,0 src 100 300 $g 4 0 true spec"
        echo "fit-true/$g/40x30/-6,-4 src 40 30 $g -6 -4 true spec"
        echo "fit-true/$g/40x30/70,45 src 40 30 $g 70 45 true spec"
        echo "fit-true/$g/97x61/9,9 src 97 61 $g 9 9 true spec"
        echo "fit-true/$g/41x31/-,- src 41 31 $g - - true spec"
    done
    # fit defaults to true
    echo "fit-default/southeast/194x80/-,- src 194 80 southeast - - - spec"
    # 3. even canvas, against ImageMagick
    for g in north center south west east middle southeast; do
        for size in 41x31 40x30; do
            for off in "- -" "3 2"; do
                set -- $off
                echo "even-canvas/$g/$size/$1,$2 even ${size%x*} ${size#*x} $g $1 $2 false im"
            done
        done
    done
} >"$CASES"

# One awk pass turns the cases into: request jobs (jobs.SOURCE.txt, one JSON
# job per line), ImageMagick arguments (im.SOURCE.txt, one per line) and
# the pairs to compare (pairs.txt: NAME KILN-OUTPUT REFERENCE).
awk -v root="$ROOT" -v work="$WORK" '
function r(x) { return x < 0 ? -int(-x + 0.5) : int(x + 0.5) }
function px(v, dim, cw, ch) {              # ops.md section 2
    if (v == "-") return 0
    if (v ~ /%$/) return r(substr(v, 1, length(v) - 1) * dim / 100)
    if (v ~ /w$/) return r(substr(v, 1, length(v) - 1) * cw / 100)
    if (v ~ /h$/) return r(substr(v, 1, length(v) - 1) * ch / 100)
    return v + 0
}
function jlen(v) { return v ~ /^-?[0-9]+$/ ? v : "\"" v "\"" }
function sg(v) { return v < 0 ? v : "+" v }
function im(src, a) { print a > (work "/im." src ".txt") }
{
    name = $1; src = $2; w = $3; h = $4; g = $5; xo = $6; yo = $7; fit = $8; mode = $9
    n++
    if (src == "src") { cw = 97; ch = 61 } else { cw = 96; ch = 60 }
    job = "{\"destination\":\"/out/k" n ".png\",\"transformations\":[{\"type\":\"crop\",\"gravity\":\"" g "\",\"width\":" jlen(w) ",\"height\":" jlen(h)
    if (xo != "-") job = job ",\"xoffset\":" jlen(xo)
    if (yo != "-") job = job ",\"yoffset\":" jlen(yo)
    if (fit != "-") job = job ",\"fit\":" fit
    print job "}]}" > (work "/jobs." src ".txt")
    rw = px(w, cw, cw, ch); rh = px(h, ch, cw, ch); dx = px(xo, cw); dy = px(yo, ch)
    ref = work "/m" n ".png"
    if (mode == "im") {
        gg = g == "middle" ? "center" : g
        geo = rw "x" rh sg(dx) sg(dy)
        what = "convert -gravity " gg " -crop " geo
    } else {
        if (fit != "false" && (rw > cw || rh > ch)) {
            s = cw / rw; if (ch / rh < s) s = ch / rh
            nw = r(rw * s); nh = r(rh * s)
            rw = nw > cw ? cw : nw; rh = nh > ch ? ch : nh
        }
        if (g ~ /west$/) x = dx; else if (g ~ /east$/) x = cw - rw - dx; else x = int(cw / 2) - int(rw / 2) + dx
        if (g ~ /^north/) y = dy; else if (g ~ /^south/) y = ch - rh - dy; else y = int(ch / 2) - int(rh / 2) + dy
        if (fit != "false") {
            if (x + rw > cw) x = cw - rw; if (x < 0) x = 0
            if (y + rh > ch) y = ch - rh; if (y < 0) y = 0
        } else {
            x0 = x < 0 ? 0 : x; y0 = y < 0 ? 0 : y
            x1 = x + rw > cw ? cw : x + rw; y1 = y + rh > ch ? ch : y + rh
            rw = x1 - x0; rh = y1 - y0; x = x0; y = y0
        }
        gg = "northwest"; geo = rw "x" rh "+" x "+" y
        what = "region " geo
    }
    im(src, "("); im(src, "+clone"); im(src, "-gravity"); im(src, gg); im(src, "-crop"); im(src, geo)
    im(src, "+repage"); im(src, "-write"); im(src, ref); im(src, "+delete"); im(src, ")")
    gsub(/ /, "_", what)
    print "crop/" name "[" what "]", root "/out/k" n ".png", ref > (work "/pairs.txt")
}' "$CASES"

# Requests of at most 50 jobs (the default per-request limit).
REQS=()
for src in src even; do
    split -l 50 -d "$WORK/jobs.$src.txt" "$WORK/chunk.$src."
    for c in "$WORK/chunk.$src."*; do
        { printf '{"service_id":1,"source":"/in/%s.png","jobs":[' "$src"; paste -sd, "$c"; printf ']}\n'; } >"$c.json"
        REQS+=("$c.json")
    done
done

# ImageMagick references: one convert per source image.
for src in src even; do
    mapfile -t args <"$WORK/im.$src.txt"
    convert "$ROOT/in/$src.png" "${args[@]}" null: 2>>"$WORK/im.err" ||
        fail "crop/imagemagick-$src" "convert failed: $(head -c 300 "$WORK/im.err")"
done

run_kiln crop "${REQS[@]}"
check "crop/exit-status" "kiln run exited $RUN_RC although every job is valid" [ "$RUN_RC" = 0 ]

same_images "$WORK/pairs.txt"

# Reported sizes: result JSON = file on disk = kiln compile's output shape.
for c in "${REQS[@]}"; do
    case $c in *chunk.src.*) size=97x61 ;; *) size=96x60 ;; esac
    compile_shapes "$c" "$size" || fail "crop/compile" "kiln compile $c failed: $(head -c 300 "$WORK/compile.err")"
done
bad="" nb=0
while read -r name k ref; do
    d=${k#"$ROOT"}
    job_finished "$d" || { bad="$bad $REASON;"; nb=$((nb + 1)); continue; }
    s=${SZ[$k]:-?}
    if [ "${JW[$d]}x${JH[$d]}" != "$s" ]; then bad="$bad $d reports ${JW[$d]}x${JH[$d]}, file is $s;"; nb=$((nb + 1)); fi
    if [ "${CSHAPE[$d]:-}" != "${s}x3" ]; then bad="$bad $d compile shape ${CSHAPE[$d]:-none}, output ${s}x3;"; nb=$((nb + 1)); fi
done <"$WORK/pairs.txt"
if [ -z "$bad" ]; then ok "crop/result-sizes=files=compile-shapes"
else fail "crop/result-sizes=files=compile-shapes" "$nb problems:${bad:0:500}"; fi
finish
