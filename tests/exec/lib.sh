# Shared helpers for the tests/exec/*.sh end-to-end tests. Sourced, not run.
#
# Environment (all optional):
#   KILN    the kiln binary (default build/kiln, relative to the repo root)
#   SHARED  the shared folder with testdata/ (default ../shared)
#   TMPDIR  where scratch directories go
#   KILN_TEST_KEEP=1  keep the scratch directory and print its path
#
# Output convention: one line per check, `ok NAME`, `FAIL NAME: REASON` or
# `skip NAME: REASON`; `finish` exits 1 if any check failed, else 0.

set -u

KILN=${KILN:-build/kiln}
case $KILN in /*) ;; *) KILN=$PWD/$KILN ;; esac
SHARED=${SHARED:-../shared}
TESTDATA=$SHARED/testdata
T_NAME=${0##*/}
T_NAME=${T_NAME%.sh}
_fails=0

# Check names never hold ": " or spaces, so "NAME: REASON" splits cleanly.
ok()   { local n=${1//:/\/}; printf 'ok %s\n' "${n// /_}"; }
fail() { local n=${1//:/\/}; printf 'FAIL %s: %s\n' "${n// /_}" "$2"; _fails=$((_fails + 1)); }
skip() { local n=${1//:/\/}; printf 'skip %s: %s\n' "${n// /_}" "$2"; }
finish() { [ "$_fails" -eq 0 ] && exit 0; exit 1; }

# check NAME REASON-IF-FALSE COMMAND...: ok when COMMAND succeeds.
check() {
    local name=$1 why=$2
    shift 2
    if "$@"; then ok "$name"; else fail "$name" "$why"; fi
}

require_tools() {
    local t
    for t in "$@"; do
        if ! command -v "$t" >/dev/null 2>&1; then
            skip "$T_NAME" "tool $t is not installed"
            exit 0
        fi
    done
}

require_testdata() {   # require_testdata FILE... (names inside $TESTDATA)
    local f
    for f in "$@"; do
        if [ ! -r "$TESTDATA/$f" ]; then
            skip "$T_NAME" "$TESTDATA/$f is absent (set SHARED to the shared folder)"
            finish
        fi
    done
}

# Call ImageMagick 6 by its Debian binary name when there is one: a
# `convert` earlier on PATH may be a slow wrapper script.
for _t in convert compare identify; do
    for _c in $_t-im6.q16 $_t-im6 $_t; do
        if command -v "$_c" >/dev/null 2>&1; then eval "$_t() { command $_c \"\$@\"; }"; break; fi
    done
done
# An sRGB ICC profile, for colour-managed ImageMagick references (empty if none)
SRGB_ICC=""
for _f in /usr/share/color/icc/ghostscript/srgb.icc /usr/share/color/icc/sRGB.icc \
          /usr/share/color/icc/colord/sRGB.icc /usr/share/color/icc/sRGB.icm; do
    [ -r "$_f" ] && { SRGB_ICC=$_f; break; }
done

# exec_setup: call once after sourcing. Checks the tools and the kiln
# binary (skip / FAIL and exit otherwise), makes the scratch directory $WORK
# (removed on exit) and the storage root $ROOT with in/ and out/.
# Sourcing this file alone has no other side effect than `set -u`.
WORK="" ROOT=""
exec_setup() {
    require_tools convert compare identify vips vipsheader jq awk
    if [ ! -x "$KILN" ]; then
        fail "$T_NAME/setup" "kiln binary $KILN not found or not executable (run make)"
        finish
    fi
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/kiln-$T_NAME.XXXXXX") || exit 1
    trap _cleanup EXIT
    ROOT=$WORK/root          # the storage root given to kiln run
    mkdir -p "$ROOT/in" "$ROOT/out"
}
_cleanup() {
    [ -n "$WORK" ] || return 0
    if [ "${KILN_TEST_KEEP:-0}" = 1 ]; then echo "# kept $WORK" >&2
    else rm -rf "$WORK"; fi
}

# ---------------------------------------------------------------- kiln

# run_kiln TAG REQUEST.json...: runs kiln with --storage-root $ROOT, stores
# stdout in $WORK/TAG.out and stderr in $WORK/TAG.err, sets RUN_RC, and
# loads every job result (all requests) into the J* arrays keyed by
# destination: JST status, JW width, JH height, JB bytes, JFMT format,
# JERR error. RST[request-file] is each request's status.
declare -A JST JW JH JB JFMT JERR RST RERR
RUN_RC=0
run_kiln() {
    local tag=$1 line d st w h b fmt err
    shift
    RUN_RC=0
    "$KILN" run --storage-root "$ROOT" "$@" >"$WORK/$tag.out" 2>"$WORK/$tag.err" || RUN_RC=$?
    if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' "$WORK/$tag.err"; then
        fail "$T_NAME/$tag/sanitizer" "$(grep -m1 -E 'AddressSanitizer|LeakSanitizer|runtime error:' "$WORK/$tag.err")"
    fi
    if [ "$RUN_RC" -ge 128 ]; then
        fail "$T_NAME/$tag/crash" "kiln run exited with status $RUN_RC: $(tail -n 3 "$WORK/$tag.err" | tr '\n' ' ')"
    fi
    if ! jq -e . "$WORK/$tag.out" >/dev/null 2>&1; then
        fail "$T_NAME/$tag/json" "kiln run did not print valid JSON: $(head -c 300 "$WORK/$tag.out")"
        return
    fi
    # fields joined by US (0x1f): tab would collapse empty fields in `read`
    while IFS=$'\x1f' read -r d st w h b fmt err; do
        JST[$d]=$st; JW[$d]=$w; JH[$d]=$h; JB[$d]=$b; JFMT[$d]=$fmt; JERR[$d]=$err
    done < <(jq -r '.jobs[]? | [.destination, .status, (.width // "" | tostring),
                    (.height // "" | tostring), (.bytes // "" | tostring),
                    (.format // ""), (.error // "" | gsub("\n"; " "))] | join("\u001f")' "$WORK/$tag.out")
    while IFS=$'\x1f' read -r d st err; do
        RST[$d]=$st; RERR[$d]=$err
    done < <(jq -r '[.request, .status, (.error // "" | gsub("\n"; " "))] | join("\u001f")' "$WORK/$tag.out")
    run_kiln_o0 "$tag" "$@"
}

# run_kiln_o0 TAG ARGS...: issue 6 asks that every test job also run at
# -O0 (the graph as compiled) and agree with the default -O2: identical
# bytes when only exact passes applied, at least 38 dB PSNR when a pass
# changed resampling (issue 13's floor; the rule itself, against an exact
# reference and sharp, is measured by bench/quality.sh). Runs the same requests at -O0 on a hard-linked copy
# of $ROOT (kiln replaces outputs by name, so the copy's inputs are
# shared and its outputs separate) and compares every job that finished.
# Skipped when the arguments pick a level or a configuration themselves,
# and with KILN_CROSS_O0=0.
run_kiln_o0() {
    local tag=$1 d a b n=0 bad=""
    shift
    [ "${KILN_CROSS_O0:-1}" = 1 ] || return 0
    case " $* " in *" -O"*|*" --config"*) return 0 ;; esac
    local -a dests
    mapfile -t dests < <(jq -r '.jobs[]? | select(.status == "FINISHED") | .destination' "$WORK/$tag.out")
    [ "${#dests[@]}" -gt 0 ] || return 0
    local r0=$WORK/o0-root
    rm -rf "$r0"
    cp -al "$ROOT" "$r0" || return 0
    for d in "${dests[@]}"; do rm -f "$r0$d"; done
    "$KILN" run -O0 --storage-root "$r0" "$@" >"$WORK/$tag.o0.out" 2>"$WORK/$tag.o0.err"
    for d in "${dests[@]}"; do
        a=$ROOT$d b=$r0$d
        n=$((n + 1))
        if [ ! -f "$b" ]; then
            bad+="$d: no -O0 output ($(jq -r --arg d "$d" '.jobs[]? | select(.destination == $d) | .error' "$WORK/$tag.o0.out" | head -1)); "
        elif ! cmp -s "$a" "$b" && ! psnr_ge "$a" "$b" 38; then
            bad+="$d: ${PSNR_VALUE:-?} dB between -O2 and -O0; "
        fi
    done
    rm -rf "$r0"
    if [ -n "$bad" ]; then
        fail "$T_NAME/$tag/O0-agrees" "$bad"
    else
        ok "$T_NAME/$tag/O0-agrees:$n-jobs"
    fi
}

# compile_shapes REQUEST.json WxH|SOURCE-FILE: loads the shape of every
# job's output, as `kiln compile --source-size WxH` (or --source FILE, which
# also knows the bands) prints it, into CSHAPE[destination] ("WxHxB").
# Returns the compile status.
declare -A CSHAPE
compile_shapes() {
    local req=$1 size=$2 d w h b rc=0 opt=--source-size
    [ -f "$size" ] && opt=--source
    "$KILN" compile --format json $opt "$size" "$req" >"$WORK/compile.json" 2>"$WORK/compile.err" || rc=$?
    [ $rc -eq 0 ] || return $rc
    while IFS=$'\t' read -r d w h b; do
        CSHAPE[$d]=${w}x${h}x${b}
    done < <(jq -r '.nodes[] | select(.kind == "store") |
                    [.destination, .shape.width, .shape.height, .shape.bands] | @tsv' "$WORK/compile.json")
}

# job_finished DEST: the job FINISHED and its file exists; otherwise sets
# REASON (no subshell: call it directly, not in $(...)).
REASON=""
job_finished() {
    local d=$1
    if [ "${JST[$d]:-}" != FINISHED ]; then
        REASON="job $d is ${JST[$d]:-missing from the result}: ${JERR[$d]:-}"; return 1
    fi
    if [ ! -f "$ROOT$d" ]; then REASON="job $d FINISHED but $ROOT$d does not exist"; return 1; fi
    REASON=""
}

# ---------------------------------------------------------------- numbers

# round half away from zero of an awk expression
round() { awk "BEGIN { x = $1; r = x < 0 ? -int(-x + 0.5) : int(x + 0.5); print r }"; }
# resolve a length: "N%" of DIM, or pixels
px_of() { case $1 in *%) round "${1%\%} * $2 / 100" ;; *px) echo "${1%px}" ;; *) echo "$1" ;; esac; }
# JSON value for a length: integers as numbers, anything else as a string
jlen() { case $1 in ''|*[!0-9-]*) printf '"%s"' "$1" ;; *) printf '%s' "$1" ;; esac; }
# IM signed offset: 5 -> +5, -5 -> -5
sgn() { case $1 in -*) printf '%s' "$1" ;; *) printf '+%s' "$1" ;; esac; }

# ---------------------------------------------------------------- images

# probe FILE POINT...: one identify run. Prints "W H CHANNELS" (channels as
# ImageMagick names them: srgb, srgba, gray, ...), then one line "R G B A"
# (0..255; A is 255 without alpha) per POINT "x,y"; a point may use w and
# h, e.g. "w-1,h-1".
probe() {
    local f=$1 fmt='%w %h %[channels]\n' p c
    shift
    for p; do
        for c in r g b a; do fmt="$fmt%[fx:int(255*p{$p}.$c+0.5)] "; done
        fmt="$fmt\n"
    done
    identify -format "$fmt" "$f[0]" 2>/dev/null | sed 's/ $//'
}

img_size() { identify -format '%wx%h' "$1[0]" 2>/dev/null; }
img_bands() { vipsheader -f bands "$1" 2>/dev/null; }
# pixel FILE X Y -> "v0 v1 ..." (all bands, 0..255 for 8-bit images)
pixel() { vips getpoint "$1" "$2" "$3" 2>/dev/null | awk '{ for (i = 1; i <= NF; i++) printf "%s%d", (i > 1 ? " " : ""), $i + 0.5 }'; }
# near "A" "B" TOL: same count of values, each within TOL
near() {
    awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN {
        n = split(a, x, " "); m = split(b, y, " "); if (n != m || n == 0) exit 1
        for (i = 1; i <= n; i++) { d = x[i] - y[i]; if (d < 0) d = -d; if (d > t) exit 1 }
        exit 0 }'
}
# ae A B -> number of differing pixels (empty on error)
ae() { compare -metric AE "$1" "$2" null: 2>&1 | awk 'NR == 1 { print $1 }'; }
# psnr A B -> dB, or "inf" when identical
psnr() { compare -metric PSNR "$1" "$2" null: 2>&1 | awk 'NR == 1 { print $1 }'; }
# psnr_at_least A B MIN: prints the PSNR; fails when below MIN (or no value)
psnr_ge() {
    local p
    p=$(psnr "$1" "$2")
    PSNR_VALUE=$p
    awk -v p="$p" -v m="$3" 'BEGIN { if (p == "inf") exit 0; if (p !~ /^[0-9.]+$/) exit 1; exit !(p + 0 >= m) }'
}

# same_image NAME KILN_OUT REFERENCE: sizes equal and no pixel differs.
same_image() {
    local name=$1 a=$2 b=$3 sa sb n
    if [ ! -f "$a" ]; then fail "$name" "kiln output $a missing"; return; fi
    if [ ! -f "$b" ]; then fail "$name" "reference $b missing"; return; fi
    sa=$(img_size "$a"); sb=$(img_size "$b")
    if [ "$sa" != "$sb" ]; then fail "$name" "size $sa, expected $sb"; return; fi
    n=$(ae "$a" "$b")
    if [ "$n" = 0 ]; then ok "$name"; else fail "$name" "$n pixels differ (size $sa)"; fi
}

# vheader FILE...: one vipsheader run for all existing FILEs; loads
# VSIZE[file]="WxH", VFMT (uchar, ushort, ...), VBANDS, VINTERP (srgb, b-w,
# ...) and VLOADER (pngload, jpegload, heifload, ...).
declare -A VSIZE VFMT VBANDS VINTERP VLOADER
vheader() {
    local f rest
    local -a ex=()
    for f in "$@"; do [ -f "$f" ] && ex+=("$f"); done
    [ ${#ex[@]} -gt 0 ] || return 0
    # "PATH: 500x333 uchar, 3 bands, srgb, pngload"
    while IFS= read -r line; do
        f=${line%%: *}; rest=${line#*: }
        IFS=' ,' read -r sz fmt nb _b interp loader _x <<<"$rest"
        VSIZE[$f]=$sz; VFMT[$f]=$fmt; VBANDS[$f]=$nb; VINTERP[$f]=$interp; VLOADER[$f]=$loader
    done < <(vipsheader "${ex[@]}" 2>/dev/null)
}

# identify_all FILE...: loads SZ[file]="WxH" and SIG[file] (pixel
# signature) for every readable file, with one identify run.
declare -A SIG SZ
identify_all() {
    local f w h s
    while IFS='|' read -r f w h s; do SZ[$f]=${w}x$h; SIG[$f]=$s; done < <(
        for f in "$@"; do [ -f "$f" ] && printf '%s\n' "$f"; done |
        xargs -r -d '\n' identify -format '%i|%w|%h|%#\n' 2>/dev/null)
}

# same_images LISTFILE: LISTFILE has lines "NAME KILN_OUT REF" (no spaces
# inside fields); compares all pairs with one identify run (pixel
# signatures), falling back to `compare -metric AE` for any pair whose
# signatures differ. Leaves SZ/SIG loaded.
same_images() {
    local list=$1 name a b
    identify_all $(awk '{ print $2; print $3 }' "$list")
    while read -r name a b; do
        if [ ! -f "$a" ]; then fail "$name" "kiln output ${a#$ROOT} missing"; continue; fi
        if [ ! -f "$b" ]; then fail "$name" "reference $b missing (ImageMagick failed?)"; continue; fi
        if [ "${SZ[$a]:-?}" != "${SZ[$b]:-!}" ]; then
            fail "$name" "size ${SZ[$a]:-?}, ImageMagick gives ${SZ[$b]:-?}"; continue
        fi
        if [ "${SIG[$a]}" = "${SIG[$b]}" ]; then ok "$name"; continue; fi
        local n; n=$(ae "$a" "$b")
        if [ "$n" = 0 ]; then ok "$name"; else fail "$name" "$n of ${SZ[$a]} pixels differ from ImageMagick"; fi
    done <"$list"
}

# pass_case PASS APPLIED REFUSED NAME FILE EXPECT TRANSFORMATION...: for
# the optimizer pass tests. Writes a one-job request reading a copy of
# FILE through the transformations into /out/NAME.png; checks that
# `kiln compile --passes` reports pass PASS as APPLIED (a grep pattern)
# when EXPECT is "applied", as REFUSED otherwise; runs it at -O0 and -O2
# and leaves the outputs in $WORK/NAME-O0.png and $WORK/NAME-O2.png.
# Returns 0 when both ran and have the same size (failing otherwise).
pass_case() {
    local pass=$1 applied=$2 refused=$3 name=$4 file=$5 expect=$6
    local ext=${5##*.} chain="" t line lvl s0 s2
    shift 6
    for t in "$@"; do
        chain="$chain${chain:+, }$t"
    done
    cp "$file" "$ROOT/in/$name.$ext"
    cat >"$WORK/$name.json" <<JSON
{"service_id": 1, "source": "/in/$name.$ext", "jobs": [
 {"destination": "/out/$name.png", "transformations": [$chain]}]}
JSON
    line=$("$KILN" compile --passes --source "$file" "$WORK/$name.json" \
        2>&1 | grep "^=== pass $pass ")
    if [ "$expect" = applied ]; then
        check "$T_NAME/$name/applies" "kiln compile --passes says: $line" \
            grep -q "$applied" <<<"$line"
    else
        check "$T_NAME/$name/refused" "kiln compile --passes says: $line" \
            grep -q "$refused" <<<"$line"
    fi
    for lvl in 0 2; do
        run_kiln "$name-O$lvl" -O"$lvl" "$WORK/$name.json"
        if [ "${JST[/out/$name.png]:-}" != FINISHED ]; then
            fail "$T_NAME/$name/runs-O$lvl" "${JERR[/out/$name.png]:-no result}"
            return 1
        fi
        mv "$ROOT/out/$name.png" "$WORK/$name-O$lvl.png"
    done
    s0=$(img_size "$WORK/$name-O0.png")
    s2=$(img_size "$WORK/$name-O2.png")
    if [ "$s0" != "$s2" ]; then
        fail "$T_NAME/$name/size" "-O2 wrote $s2, -O0 $s0"
        return 1
    fi
    ok "$T_NAME/$name/size"
}

# pass_same_pixels NAME: after pass_case, -O2's output must have -O0's
# pixels.
pass_same_pixels() {
    local n
    n=$(ae "$WORK/$1-O0.png" "$WORK/$1-O2.png")
    check "$T_NAME/$1/same-pixels" "$n pixels differ from -O0" [ "$n" = 0 ]
}

# noise_png OUT W H: a W x H sRGB PNG of grey white noise (every frequency
# up to Nyquist: the worst case for resampling, where a misplaced grid or
# a missing neighbour shows at once). Fails the test when vips cannot.
noise_png() {
    vips gaussnoise "$WORK/noise.v" "$2" "$3" --mean 128 --sigma 30 &&
        vips colourspace "$WORK/noise.v" "$WORK/noise-g.v" srgb &&
        vips bandjoin "$WORK/noise-g.v $WORK/noise-g.v $WORK/noise-g.v" "$1" ||
        fail "$T_NAME/fixture" "cannot make the generated image $1"
}
