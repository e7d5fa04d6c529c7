#!/usr/bin/env bash
# fail_on_conversion_error:
#  - true (the default): when one job fails at run time (here: a watermark
#    whose file is missing from storage) no destination at all is
#    written, an existing destination file is left untouched, and no
#    temporary ".NAME.kiln-XXXXXX" file is left behind; exit status != 0;
#  - false: the good jobs are written and FINISHED, the failing one is
#    FAILED with its own error and not written; exit status != 0;
#  - a control request with only good jobs writes everything, exit 0.
cd "$(dirname "$0")/../.." || exit 1
. tests/exec/lib.sh
exec_setup

convert rose: -resize 97x61! -strip PNG24:"$ROOT/in/src.png"
mkdir -p "$ROOT/out/ctl" "$ROOT/out/t1a" "$ROOT/out/t1b" "$ROOT/out/t2" "$ROOT/out/t3" "$ROOT/out/t4" "$ROOT/out/f1a" "$ROOT/out/f1b"
GOOD='[{"type":"flip","direction":"x"}]'
BAD='[{"type":"watermark","source":"/no/such-watermark.png","gravity":"center","width":10}]'
req() {  # req FILE FAIL(true|false|-) DEST=TRANSFORMATIONS...
    local file=$1 f=$2 jobs="" extra="" j
    shift 2
    [ "$f" != - ] && extra="\"fail_on_conversion_error\":$f,"
    for j; do jobs="$jobs{\"destination\":\"${j%%=*}\",\"transformations\":${j#*=}},"; done
    echo "{\"service_id\":1,\"source\":\"/in/src.png\",$extra\"jobs\":[${jobs%,}]}" >"$file"
    jq -e . "$file" >/dev/null || fail "atomic/test-bug" "bad request JSON in $file"
}
# temp_left DIR...: names of leftover temporary files
temp_left() { find "$@" -name '.*.kiln-*' -printf '%p ' 2>/dev/null; }

# ---------------------------------------------------------------- control
req "$WORK/ctl.json" - "/out/ctl/a.png=$GOOD" "/out/ctl/b.jpg=$GOOD"
run_kiln ctl "$WORK/ctl.json"
check "atomic/control/exit-0" "kiln run exited $RUN_RC for a request whose jobs are all valid" [ "$RUN_RC" = 0 ]
check "atomic/control/written-a.png" "outputs: $(ls "$ROOT/out/ctl" | tr '\n' ' ')" [ -f "$ROOT/out/ctl/a.png" ]
check "atomic/control/written-b.jpg" "outputs: $(ls "$ROOT/out/ctl" | tr '\n' ' ')" [ -f "$ROOT/out/ctl/b.jpg" ]

# ---------------------------------------------------------------- true (default)
req "$WORK/t1.json" - "/out/t1a/good.png=$GOOD" "/out/t1b/bad.png=$BAD"
run_kiln t1 "$WORK/t1.json"
check "atomic/true-default/exit-status" "kiln run exited 0 although a job failed" [ "$RUN_RC" != 0 ]
check "atomic/true-default/request-failed" "request status ${RST[$WORK/t1.json]:-none}" [ "${RST[$WORK/t1.json]:-}" = FAILED ]
check "atomic/true-default/bad-job-failed" "job status ${JST[/out/t1b/bad.png]:-none}" [ "${JST[/out/t1b/bad.png]:-}" = FAILED ]
check "atomic/true-default/bad-job-error-names-path" "error: ${JERR[/out/t1b/bad.png]:-}" grep -q 'such-watermark.png' <<<"${JERR[/out/t1b/bad.png]:-}"
check "atomic/true-default/good-job-not-finished" "job status ${JST[/out/t1a/good.png]:-none}" [ "${JST[/out/t1a/good.png]:-}" = FAILED ]
check "atomic/true-default/good-job-names-the-failed-job" "error: ${JERR[/out/t1a/good.png]:-}" \
    [ "${JERR[/out/t1a/good.png]:-}" = "not written: jobs[1] failed and fail_on_conversion_error is true" ]
check "atomic/true-default/good-not-written" "/out/t1a/good.png exists" [ ! -e "$ROOT/out/t1a/good.png" ]
check "atomic/true-default/bad-not-written" "/out/t1b/bad.png exists" [ ! -e "$ROOT/out/t1b/bad.png" ]
left=$(temp_left "$ROOT/out/t1a" "$ROOT/out/t1b")
check "atomic/true-default/no-temporary-files" "left: $left" [ -z "$left" ]

# ---------------------------------------------------------------- true, more cases in one run
# t2: explicit true, the failing job first, several good jobs after it (same directory)
req "$WORK/t2.json" true "/out/t2/bad.png=$BAD" "/out/t2/g1.png=$GOOD" "/out/t2/g2.jpg=$GOOD" \
    "/out/t2/g3.webp=$GOOD" "/out/t2/g4.png=[]"
# t3: a destination that already exists must be left untouched
convert rose: -resize 20x20! PNG24:"$ROOT/out/t3/existing.png"
cp "$ROOT/out/t3/existing.png" "$WORK/existing.before"
req "$WORK/t3.json" true "/out/t3/existing.png=$GOOD" "/out/t3/bad.png=$BAD"
# t4: an error found when the request is bound to the source (crop entirely outside)
req "$WORK/t4.json" - "/out/t4/good.png=$GOOD" \
    '/out/t4/outside.png=[{"type":"crop","gravity":"northwest","width":10,"height":10,"xoffset":200,"fit":false}]'
run_kiln t234 "$WORK/t2.json" "$WORK/t3.json" "$WORK/t4.json"
check "atomic/true-more/exit-status" "kiln run exited 0 although jobs failed" [ "$RUN_RC" != 0 ]
for r in t2 t3 t4; do
    check "atomic/$r/request-failed" "request status ${RST[$WORK/$r.json]:-none}" [ "${RST[$WORK/$r.json]:-}" = FAILED ]
done
for d in g1.png g2.jpg g3.webp g4.png bad.png; do
    check "atomic/t2-bad-first/not-written:$d" "/out/t2/$d exists (status ${JST[/out/t2/$d]:-none})" [ ! -e "$ROOT/out/t2/$d" ]
done
check "atomic/t3/existing-destination-untouched" "/out/t3/existing.png changed although the request failed" \
    cmp -s "$ROOT/out/t3/existing.png" "$WORK/existing.before"
check "atomic/t3/bad-not-written" "/out/t3/bad.png exists" [ ! -e "$ROOT/out/t3/bad.png" ]
check "atomic/t4-bind-error/good-not-written" "/out/t4/good.png exists" [ ! -e "$ROOT/out/t4/good.png" ]
check "atomic/t4-bind-error/error-names-job" "error: ${JERR[/out/t4/outside.png]:-}" grep -q 'jobs\[1\]' <<<"${JERR[/out/t4/outside.png]:-}"
left=$(temp_left "$ROOT/out/t2" "$ROOT/out/t3" "$ROOT/out/t4")
check "atomic/true-more/no-temporary-files" "left: $left" [ -z "$left" ]

# ---------------------------------------------------------------- false
req "$WORK/f1.json" false "/out/f1a/good.png=$GOOD" "/out/f1b/bad.png=$BAD" "/out/f1a/good2.jpg=$GOOD"
run_kiln f1 "$WORK/f1.json"
check "atomic/false/exit-status" "kiln run exited 0 although a job failed" [ "$RUN_RC" != 0 ]
for d in /out/f1a/good.png /out/f1a/good2.jpg; do
    if job_finished "$d"; then ok "atomic/false/good-finished-and-written:${d##*/}"
    else fail "atomic/false/good-finished-and-written:${d##*/}" "$REASON"; fi
done
s=$(img_size "$ROOT/out/f1a/good.png")
check "atomic/false/good-is-a-complete-image" "good.png is '$s', expected 97x61" [ "$s" = 97x61 ]
convert "$ROOT/in/src.png" -flop "$WORK/flop.png"
same_image "atomic/false/good-is-the-flipped-source" "$ROOT/out/f1a/good.png" "$WORK/flop.png"
check "atomic/false/bad-job-failed" "job status ${JST[/out/f1b/bad.png]:-none}" [ "${JST[/out/f1b/bad.png]:-}" = FAILED ]
check "atomic/false/bad-job-own-error" "error: ${JERR[/out/f1b/bad.png]:-}" grep -q 'such-watermark.png' <<<"${JERR[/out/f1b/bad.png]:-}"
check "atomic/false/bad-not-written" "/out/f1b/bad.png exists" [ ! -e "$ROOT/out/f1b/bad.png" ]
left=$(temp_left "$ROOT/out/f1a" "$ROOT/out/f1b")
check "atomic/false/no-temporary-files" "left: $left" [ -z "$left" ]
finish
