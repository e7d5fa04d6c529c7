#!/usr/bin/env bash
# Golden compile tests: for each cases/NAME.json, `kiln compile` with the
# flags in NAME.args (if any) must print exactly NAME.expected: stdout,
# then stderr, then the exit status. UPDATE=1 rewrites the golden files
# (review the diff before committing).
set -u
here=$(cd "$(dirname "$0")" && pwd)
KILN=${KILN:-build/kiln}
status=0
for req in "$here"/cases/*.json; do
    name=$(basename "$req" .json)
    args=()
    if [ -f "$here/cases/$name.args" ]; then
        read -r -a args < "$here/cases/$name.args"
    fi
    out=$(mktemp) err=$(mktemp)
    # Run from the cases folder so paths in messages are stable.
    (cd "$here/cases" && "$OLDPWD/$KILN" compile "${args[@]}" "$name.json" \
        >"$out" 2>"$err"; echo "exit $?" >>"$err")
    got=$(printf -- '--- stdout\n'; cat "$out"; printf -- '--- stderr\n'; cat "$err")
    rm -f "$out" "$err"
    golden="$here/cases/$name.expected"
    if [ "${UPDATE:-0}" = 1 ]; then
        printf '%s\n' "$got" >"$golden"
    fi
    if [ ! -f "$golden" ]; then
        echo "FAIL compile/$name: no golden file (run with UPDATE=1)"
        status=1
    elif [ "$got" = "$(cat "$golden")" ]; then
        echo "ok compile/$name"
    else
        echo "FAIL compile/$name: output differs from $name.expected:"
        diff <(printf '%s\n' "$got") "$golden" | head -20 | sed 's/^/    /'
        status=1
    fi
done
exit $status
