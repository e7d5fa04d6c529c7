#!/usr/bin/env bash
# make bench, ops section: each op on a 6 MP photo through kiln, on
# libvips and on MagickCore (one `kiln run` of BATCH requests, each read,
# decode, op, encode, write) next to ImageMagick's nearest equivalent
# (BATCH `convert in.jpg OP out.jpg` in a row: the same work), median of
# RUNS interleaved rounds, on this machine, in one table.
# Timing only: nothing here passes or fails. Needs ../shared/testdata.
set -u
KILN=${KILN:-build/kiln}
SHARED=${SHARED:-../shared}
RUNS=${RUNS:-3}
BATCH=${BATCH:-4}
photo="$SHARED/testdata/photo-2725x2225.jpg"
if [ ! -f "$photo" ]; then
    echo "skip bench/ops: $photo is absent"
    exit 0
fi
IM=$(command -v convert-im6.q16 || command -v convert)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/root/in" "$tmp/root/wm"
cp "$photo" "$tmp/root/in/photo.jpg"
for b in $(seq "${BATCH:-4}"); do cp "$photo" "$tmp/root/in/photo$b.jpg"; done
"$IM" -size 400x200 xc:none -fill 'rgba(255,0,0,0.6)' -draw 'circle 200,100 200,190' \
    "$tmp/root/wm/logo.png"

# median of the wall times (seconds) of RUNS runs of a command
median() {
    local times=() t
    for _ in $(seq "$RUNS"); do
        /usr/bin/time -f '%e' -o "$tmp/t" "$@" >/dev/null 2>&1
        if [ "$(head -1 "$tmp/t")" = "Command exited with non-zero status 124" ]; then
            echo ">120"  # ImageMagick's run hit the timeout: no median
            return
        fi
        times+=("$(tail -1 "$tmp/t")")
    done
    printf '%s\n' "${times[@]}" | sort -n | sed -n "$(((RUNS + 1) / 2))p"
}

# NAME | kiln transformation JSON | ImageMagick arguments ("-" for none)
cases=$(cat <<'CASES'
convert (no op)|[]|-quality 80
resize 50%|[{"type":"resize","width":"50%"}]|-filter Lanczos -resize 50%
crop 1000x800 center|[{"type":"crop","gravity":"center","width":1000,"height":800}]|-gravity center -crop 1000x800+0+0 +repage
fitmethod cropbox 720x588|[{"type":"fitmethod","fit_type":"cropbox","gravity":"center","color":"#000","width":720,"height":588}]|-resize 720x588^ -gravity center -extent 720x588
flip x|[{"type":"flip","direction":"x"}]|-flop
rotate 90|[{"type":"rotate","degrees":90}]|-rotate 90
rotate 30|[{"type":"rotate","degrees":30}]|-background none -rotate 30
zoom 2|[{"type":"zoom","width":720,"height":588,"level":2}]|-gravity center -crop 33.33%x33.33%+0+0 +repage -resize 720x588^ -extent 720x588
brightness 40|[{"type":"brightness","bright_level":40}]|-evaluate add 15.7%
colorize 10,0,30|[{"type":"colorize","red":10,"green":0,"blue":30}]|-channel R -evaluate add 3.9% -channel B -evaluate add 11.8% +channel
contrast 30|[{"type":"contrast","level":30}]|-brightness-contrast 0x30
filter negate|[{"type":"filter","filter":"negate"}]|-negate
filter grayscale|[{"type":"filter","filter":"grayscale"}]|-colorspace Gray
filter bw|[{"type":"filter","filter":"bw"}]|-colorspace Gray -threshold 50%
filter sepia|[{"type":"filter","filter":"sepia"}]|-sepia-tone 80%
filter edgedetect|[{"type":"filter","filter":"edgedetect"}]|-morphology Convolve 3x3:-1,0,-1,0,4,0,-1,0,-1
filter emboss|[{"type":"filter","filter":"emboss"}]|-morphology Convolve 3x3:1.5,0,0,0,0,0,0,0,-1.5
filter blurgaussian|[{"type":"filter","filter":"blurgaussian"}]|-morphology Convolve 3x3:0.0625,0.125,0.0625,0.125,0.25,0.125,0.0625,0.125,0.0625
filter meanremoval|[{"type":"filter","filter":"meanremoval"}]|-morphology Convolve 3x3:-1,-1,-1,-1,9,-1,-1,-1,-1
filter smooth|[{"type":"filter","filter":"smooth","weight":4}]|-morphology Convolve 3x3:0.0833,0.0833,0.0833,0.0833,0.333,0.0833,0.0833,0.0833,0.0833
filter blurselective|[{"type":"filter","filter":"blurselective"}]|-selective-blur 0x1+10%
enhance|[{"type":"enhance"}]|-enhance
ulb|[{"type":"ulb"}]|-contrast-stretch 0.5%x0.5%
blur sigma 2.5|[{"type":"blur","sigma":2.5,"radius":0}]|-gaussian-blur 0x2.5
blur sigma 218 radius 465|[{"type":"blur","sigma":218,"radius":465}]|-gaussian-blur 465x218
annotation|[{"type":"annotation","font":"DejaVu Sans","color":"white","text":"kiln bench","size":96,"gravity":"southeast","xoffset":40,"yoffset":40}]|-gravity southeast -font DejaVu-Sans -pointsize 96 -fill white -annotate +40+40 kiln_bench
watermark 400 px wide|[{"type":"watermark","source":"/wm/logo.png","gravity":"southeast","width":400,"xoffset":40,"yoffset":40}]|WATERMARK
CASES
)

# rounds KEY:CMD...: RUNS rounds, each running every command once in turn
# (kiln, kiln on MagickCore, ImageMagick, kiln, ...) so that the machine's
# noise falls on all of them; T[KEY] median wall seconds (">120" when a
# run hit the timeout), M[KEY] the largest peak RSS in MB.
declare -A T M
rounds() {
    local r kv key cmd
    declare -A all=()
    for r in $(seq "$RUNS"); do
        for kv in "$@"; do
            key=${kv%%:*} cmd=${kv#*:}
            [ "${all[$key]:-}" = dead ] && continue
            /usr/bin/time -f '%e %M' -o "$tmp/t" bash -c "$cmd" >/dev/null 2>&1
            if grep -q "status 124" "$tmp/t"; then all[$key]=dead; continue; fi
            read -r w kb < <(tail -1 "$tmp/t")
            all[$key]="${all[$key]:-} $w"
            [ "$((kb / 1024))" -gt "${M[$key]:-0}" ] && M[$key]=$((kb / 1024))
        done
    done
    for kv in "$@"; do
        key=${kv%%:*}
        if [ "${all[$key]:-}" = dead ]; then T[$key]=">120"; continue; fi
        T[$key]=$(printf '%s\n' ${all[$key]} | sort -n | sed -n "$(((RUNS + 1) / 2))p")
    done
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a ~ />/) print "-"; else if (b + 0 > 0 && b !~ />/) printf "%.2f", a / b; else printf "<%.3f", a / 120 }'; }

fmt='%-28s %8s %12s %12s %10s %8s %8s\n'
printf "\n$fmt" "op on photo-2725x2225.jpg" "kiln s" "magick s,MB" "convert s,MB" "kiln/IM" "mgk/IM" "mgk/kiln"
printf "$fmt" "----------------------------" "------" "-----------" "------------" "-------" "------" "--------"
n=0
while IFS='|' read -r name tr im; do
    n=$((n + 1))
    # BENCH_ONLY=REGEX runs the matching rows only.
    if [ -n "${BENCH_ONLY:-}" ] && ! [[ $name =~ $BENCH_ONLY ]]; then
        continue
    fi
    # BATCH requests of the same op, one per copy of the photo: kiln runs
    # them in one process (as a server does), ImageMagick as BATCH
    # convert commands in a row: the same work, each paying its own
    # start-up once per process.
    reqs=""
    for b in $(seq "$BATCH"); do
        printf '{"service_id":1,"source":"/in/photo%d.jpg","jobs":[{"destination":"/out/%d-%d.jpg","quality":80,"transformations":%s}]}\n' \
            "$b" "$n" "$b" "$tr" >"$tmp/r$n-$b.json"
        reqs+=" $tmp/r$n-$b.json"
    done
    if ! "$KILN" run --storage-root "$tmp/root" "$tmp/r$n-1.json" >"$tmp/res" 2>&1; then
        printf "$fmt" "$name" "failed" "" "" "" "" ""
        continue
    fi
    kcmd="$KILN run --workers 1 --storage-root $tmp/root$reqs"
    # The MagickCore backend: the same requests on a service whose backend
    # is "magick" (docs/backends.md).
    mcmd="$KILN run --workers 1 --backend magick --storage-root $tmp/root$reqs"
    if [ "$im" = WATERMARK ]; then
        one="$IM $photo $tmp/root/wm/logo.png -gravity southeast -geometry +40+40 -composite -quality 80 $tmp/im.jpg"
    else
        one="timeout 120 $IM $photo ${im//kiln_bench/\'kiln bench\'} -quality 80 $tmp/im.jpg"
    fi
    icmd="for b in \$(seq $BATCH); do $one || exit 124; done"
    unset T M
    declare -A T M
    rounds "k:$kcmd" "m:$mcmd" "i:$icmd"
    printf "$fmt" "$name" "${T[k]}" "${T[m]},${M[m]:-?}" "${T[i]},${M[i]:-?}" \
        "$(ratio "${T[k]}" "${T[i]}")" "$(ratio "${T[m]}" "${T[i]}")" "$(ratio "${T[m]}" "${T[k]}")"
done <<<"$cases"
echo
echo "kiln/IM, mgk/IM = kiln's (libvips, MagickCore backend) / ImageMagick's wall time (below 1: kiln faster);"
echo "each cell: $BATCH photos, one kiln process (--workers 1) or $BATCH convert processes in a row;"
echo "median of $RUNS interleaved rounds; MB: peak RSS; ImageMagick $("$IM" -version | head -1 | cut -d' ' -f3),"
echo "$(nproc) cores; commands in bench/ops.sh (kiln run --workers 1 [--backend magick] --storage-root T/root rN-1.json ...)"
