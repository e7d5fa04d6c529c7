#!/usr/bin/env bash
# The man pages (docs/man): kiln(1) and kiln.json(5) render without a
# warning (groff -ww), and cannot drift from the code: every command
# `kiln --help` lists has its section in kiln(1) with every option its
# `kiln CMD --help` lists, every KILN_* variable the C code reads is in
# its ENVIRONMENT, and every key core/config.c accepts and every setting
# of the shipped plugins (their KILN_P_* tables) is described, in bold, in
# kiln.json(5).
. "$(dirname "$0")/lib.sh"   # ok, fail, skip, finish; KILN made absolute
require_tools groff
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
man1=docs/man/kiln.1
man5=docs/man/kiln.json.5

for page in "$man1" "$man5"; do
    name=$(basename "$page")
    if [ ! -f "$page" ]; then
        fail "man/$name/exists" "$page is missing"
        continue
    fi
    if groff -man -Tutf8 -ww -z "$page" 2>"$tmp/warn" && [ ! -s "$tmp/warn" ]; then
        ok "man/$name/renders-without-warnings"
    else
        fail "man/$name/renders-without-warnings" "$(head -5 "$tmp/warn")"
    fi
    # man-db's own check, as a reader's `man -l` runs it, where it exists.
    if command -v man >/dev/null; then
        MANWIDTH=80 man --warnings -l "$page" >/dev/null 2>"$tmp/warn"
        if [ -s "$tmp/warn" ]; then
            fail "man/$name/man-l" "$(head -5 "$tmp/warn")"
        else
            ok "man/$name/man-l"
        fi
    else
        skip "man/$name/man-l" "man is not installed"
    fi
done

# The roff source with escapes and fonts taken out: "\-\-format" reads
# "--format", "\fBlisten\fR" reads "listen".
plain() { sed -e 's/\\-/-/g' -e 's/\\f[BIRP]//g' -e 's/\\(dq/"/g' "$1"; }
plain "$man1" >"$tmp/kiln.1"

# Every command, and in its own section every option of its --help.
"$KILN" --help >"$tmp/top" 2>&1 || fail man/kiln-help "kiln --help failed: $(head -3 "$tmp/top")"
mapfile -t cmds < <(sed -n '/^Commands:/,/^$/p' "$tmp/top" | awk 'NF > 1 { print $1 }')
[ "${#cmds[@]}" -gt 0 ] || fail man/commands "kiln --help lists no command"
for c in "${cmds[@]}"; do
    # The section: from its .SS line to the next .SS or .SH.
    awk -v c="$c" '/^\.S[SH] / { on = ($0 ~ "^\\.SS \"?kiln " c "( |\"|$)") } on' \
        "$tmp/kiln.1" >"$tmp/sec"
    if [ ! -s "$tmp/sec" ]; then
        fail "man/kiln.1/command/$c" "kiln(1) has no section \".SS kiln $c\""
        continue
    fi
    "$KILN" "$c" --help >"$tmp/help" 2>&1
    missing=""
    n=0
    # Option lines of --help: "  --name ARG", "  -O, --optimize LEVEL".
    for o in $(grep -E '^  -' "$tmp/help" | grep -oE -- '--[a-z][a-z-]*' | sort -u); do
        [ "$o" = --help ] && continue
        n=$((n + 1))
        grep -q -- "$o\\b" "$tmp/sec" || missing+=" $o"
    done
    for o in $(grep -E '^  -[A-Za-z],' "$tmp/help" | grep -oE -- '^  -[A-Za-z]' | tr -d ' '); do
        [ "$o" = -h ] && continue
        grep -q -- "$o" "$tmp/sec" || missing+=" $o"
    done
    if [ -n "$missing" ]; then
        fail "man/kiln.1/command/$c" "kiln(1) does not describe$missing"
    else
        ok "man/kiln.1/command/$c:$n-options"
    fi
done

# Every KILN_* variable the shipped C code reads, in ENVIRONMENT.
awk '/^\.SH ENVIRONMENT/ { on = 1; next } /^\.SH / { on = 0 } on' "$tmp/kiln.1" >"$tmp/env"
mapfile -t vars < <(grep -rhoE 'getenv\("[A-Z_]+"\)' base dsl core kernels server plugins storage-plugins |
    grep -oE 'KILN_[A-Z_]+|STATE_DIRECTORY' | sort -u)
missing=""
for v in "${vars[@]}"; do
    grep -qE "^\.B(R)? $v( |$)|^\.BR .*\b$v\b" "$tmp/env" || missing+=" $v"
done
if [ -n "$missing" ]; then
    fail man/kiln.1/environment "ENVIRONMENT does not describe$missing"
else
    ok "man/kiln.1/environment:${#vars[@]}-variables"
fi

# Every key in core/config.c's key tables (arrays named *keys[]), and
# every setting of the shipped plugins, in bold in kiln.json(5).
mapfile -t keys < <(awk '/keys\[\] = \{/ { on = 1 } on { print } on && /\};/ { on = 0 }' core/config.c |
    grep -oE '"[a-z_]+"' | tr -d '"' | sort -u)
mapfile -t settings < <(cat storage-plugins/*/*.c plugins/*/*.c |
    grep -oE 'KILN_P_[A-Z]+\([a-z_]+_settings, *[a-z_]+' | sed 's/.*, *//' | sort -u)
[ "${#keys[@]}" -gt 40 ] || fail man/config-keys "found only ${#keys[@]} keys in core/config.c"
missing=""
for k in "${keys[@]}" "${settings[@]}"; do
    grep -qE "^\.BR? $k( |$)|\\\\fB$k\\\\f" "$man5" || missing+=" $k"
done
if [ -n "$missing" ]; then
    fail man/kiln.json.5/keys "kiln.json(5) does not describe$missing"
else
    ok "man/kiln.json.5/keys:${#keys[@]}-keys-${#settings[@]}-settings"
fi

finish
