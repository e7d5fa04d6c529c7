#!/usr/bin/env bash
# The command line as a person meets it: options anywhere (before, between
# and after the arguments; "--" ends them), `kiln --help` and `kiln CMD
# --help` (every option with its default, on stdout, exit 0), `kiln help
# CMD`, one-line errors for an unknown option or command (exit 2), and
# `kiln serve --listen` overriding the configuration (checked like its
# "listen" key).
. "$(dirname "$0")/lib.sh"        # ok, fail, check, finish; KILN made absolute
. "$(dirname "$0")/lib_serve.sh"  # serve_free_port, serve_start, serve_stop
tmp=$(mktemp -d)
trap 'serve_stop; rm -rf "$tmp"' EXIT
req=examples/tour.json

# kiln ARGS...: runs kiln, stdout in $tmp/out, stderr in $tmp/err, status
# in $rc; a sanitizer report fails the test.
k() {
    rc=0
    "$KILN" "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
    if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' "$tmp/err"; then
        fail cli/sanitizer "kiln $*: $(grep -m1 -E 'AddressSanitizer|LeakSanitizer|runtime error:' "$tmp/err")"
    fi
}

# Options after the request give what options before it give.
"$KILN" compile --format json --source-size 800x600 -O1 "$req" >"$tmp/before" 2>&1
k compile "$req" --format json --source-size 800x600 -O1
[ "$rc" = 0 ] && cmp -s "$tmp/before" "$tmp/out" && ok cli/options-after-the-argument ||
    fail cli/options-after-the-argument "exit $rc: $(head -c 300 "$tmp/err")"
k compile --format json "$req" --source-size=800x600 --optimize 1
[ "$rc" = 0 ] && cmp -s "$tmp/before" "$tmp/out" && ok cli/options-around-the-argument ||
    fail cli/options-around-the-argument "exit $rc: $(head -c 300 "$tmp/err")"
# "--" ends the options: a file named like an option is an argument.
cp "$req" "$tmp/--format"
k compile --format json -- "$tmp/--format"
[ "$rc" = 0 ] && grep -q '"jobs"' "$tmp/out" && ok cli/double-dash-ends-options ||
    fail cli/double-dash-ends-options "exit $rc: $(cat "$tmp/err")"
# "-" is an argument (standard input) wherever it stands.
k compile - --quiet <"$req"
[ "$rc" = 0 ] && [ ! -s "$tmp/out" ] && ok cli/dash-is-stdin || fail cli/dash-is-stdin "exit $rc: $(cat "$tmp/err")"

# kiln --help: every command, one line each, on stdout.
for h in --help -h help; do
    k $h
    [ "$rc" = 0 ] && [ ! -s "$tmp/err" ] && grep -q '^Commands:' "$tmp/out" ||
        fail "cli/top-help$h" "exit $rc: $(head -c 300 "$tmp/out" "$tmp/err")"
done
ok cli/top-help
cp "$tmp/out" "$tmp/top"
mapfile -t cmds < <(sed -n '/^Commands:/,/^$/p' "$tmp/top" | awk 'NF > 1 { print $1 }')
[ "${#cmds[@]}" -ge 8 ] && ok "cli/commands-listed:${#cmds[@]}" ||
    fail cli/commands-listed "only ${cmds[*]}"
for c in "${cmds[@]}"; do
    k "$c" --help
    if [ "$rc" != 0 ] || [ -s "$tmp/err" ] || ! head -1 "$tmp/out" | grep -q "^usage: kiln $c"; then
        fail "cli/$c/help" "exit $rc: $(head -c 300 "$tmp/out" "$tmp/err")"
        continue
    fi
    cp "$tmp/out" "$tmp/help-$c"
    k help "$c"
    cmp -s "$tmp/out" "$tmp/help-$c" || fail "cli/$c/help-alias" "kiln help $c differs from kiln $c --help"
    k "$c" -h
    cmp -s "$tmp/out" "$tmp/help-$c" || fail "cli/$c/-h" "kiln $c -h differs from kiln $c --help"
    ok "cli/$c/help"
done
# Each option says its default where it has one.
for want in 'compile:--format FORMAT.*(default: text)' 'run:--workers N' \
            'serve:--listen HOST:PORT' 'submit:--url URL.*(default: $KILN_URL' \
            'ops:--format FORMAT'; do
    c=${want%%:*} pat=${want#*:}
    tr '\n' ' ' <"$tmp/help-$c" | sed 's/  */ /g' | grep -q -- "$pat" ||
        fail "cli/$c/help-lists" "no \"$pat\" in kiln $c --help"
done
grep -q 'default: the configuration.s listen, 127.0.0.1:8080' <(tr '\n' ' ' <"$tmp/help-serve" | sed 's/  */ /g') &&
    ok cli/help-defaults || fail cli/help-defaults "$(cat "$tmp/help-serve")"

# Unknown options and commands: one line naming it, a hint, exit 2.
one_line() { # NAME WANT-PATTERN
    if [ "$rc" = 2 ] && [ "$(wc -l <"$tmp/err")" = 1 ] && [ ! -s "$tmp/out" ] &&
        grep -q -- "$2" "$tmp/err" && grep -q -- '--help' "$tmp/err"; then
        ok "cli/$1"
    else
        fail "cli/$1" "exit $rc: $(cat "$tmp/err")"
    fi
}
k compile "$req" --frmat json
one_line unknown-option 'unknown option "--frmat" (did you mean "--format"?)'
k compile -x "$req"
one_line unknown-short-option 'unknown option "-x"'
k run --format json "$req"
one_line option-of-another-command 'kiln run: unknown option "--format"'
k compile "$req" --format
one_line missing-value 'option "--format" needs a value'
k compile --s 10x10 "$req"
one_line ambiguous-option 'option "--s" is ambiguous (--source, --source-size)'
k submit --wait=yes "$req"
one_line switch-with-value 'option "--wait" takes no value'
k compil "$req"
one_line unknown-command 'kiln: unknown command "compil" (did you mean "compile"?)'
k --frobnicate
one_line unknown-top-option 'kiln: unknown option "--frobnicate"'
k help nosuch
one_line help-unknown-command 'unknown command "nosuch"'
k compile -O7 "$req"
one_line bad-level '-O7 is not a level (expected -O0 to -O3)'
k run
one_line run-needs-a-request 'expected at least one REQUEST.json'
k
[ "$rc" = 2 ] && grep -q '^Commands:' "$tmp/err" && ok cli/no-command ||
    fail cli/no-command "exit $rc"
k --version
[ "$rc" = 0 ] && grep -q '^kiln [0-9]' "$tmp/out" && ok cli/version || fail cli/version "exit $rc"

# kiln serve --listen: checked as the configuration's "listen" is.
for bad in localhost:8080 127.0.0.1 127.0.0.1:0 '::1:80'; do
    k serve --listen "$bad"
    one_line "serve-listen-refused/$bad" "kiln serve: --listen \"$bad\" is not valid (expected IPV4:PORT or \[IPV6\]:PORT"
done
printf '{"listen": "here", "services": [{"id": 1, "storage": {"plugin": "local", "root": "%s"}}]}' \
    "$tmp" >"$tmp/bad.json"
k plugins --config "$tmp/bad.json"
[ "$rc" = 1 ] && grep -q '^listen: "here" is not valid (expected IPV4:PORT' "$tmp/err" &&
    ok cli/config-listen-refused || fail cli/config-listen-refused "exit $rc: $(cat "$tmp/err")"

# --listen wins over the file: the server answers there, not on the
# file's port.
p1=$(serve_free_port)
p2=$(serve_free_port)
while [ "$p2" = "$p1" ]; do p2=$(serve_free_port); done
cat >"$tmp/cfg.json" <<JSON
{"listen": "127.0.0.1:$p1", "workers": 1,
 "plugins": {"dirs": ["$(serve_plugin_dir)"], "enable": ["ops-vips", "storage-local", "api-http"]},
 "jobstore": {"driver": "sqlite", "path": "$tmp/kiln.db"},
 "services": [{"id": 1, "tokens": ["t"], "storage": {"plugin": "local", "root": "$tmp/storage"}}]}
JSON
# serve_start passes --config; the listen flag comes after it.
KILN_REAL=$KILN
printf '#!/bin/sh\nexec "%s" "$@" --listen 127.0.0.1:%s\n' "$KILN_REAL" "$p2" >"$tmp/kiln-listen"
chmod +x "$tmp/kiln-listen"
KILN=$tmp/kiln-listen
# Without the validating relay of lib_serve.sh: it would pass its own
# --listen, and the port is what this checks.
if SERVE_OPENAPI=off serve_start "$tmp/cfg.json" "$tmp/serve.log" "http://127.0.0.1:$p2"; then
    ok cli/serve-listen-flag
    curl -s -o /dev/null "http://127.0.0.1:$p1/health" &&
        fail cli/serve-listen-overrides "the file's port $p1 answers too" ||
        ok cli/serve-listen-overrides
    grep -q "serving on 127.0.0.1:$p2" "$tmp/serve.log" && ok cli/serve-says-where ||
        fail cli/serve-says-where "$(cat "$tmp/serve.log")"
    serve_stop
    [ "$SERVE_RC" = 0 ] && ok cli/serve-stops || fail cli/serve-stops "exit $SERVE_RC"
else
    fail cli/serve-listen-flag "$(tail -3 "$tmp/serve.log")"
fi
KILN=$KILN_REAL
if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' "$tmp/serve.log"; then
    fail cli/serve-sanitizer "$(grep -m1 -E 'AddressSanitizer|LeakSanitizer|runtime error:' "$tmp/serve.log")"
fi

finish
