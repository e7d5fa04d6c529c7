#!/usr/bin/env bash
# make install into a scratch DESTDIR with PREFIX=/usr/local: every file
# lands (binary, plugins, SDK headers and kiln-plugin.pc, man pages, the
# systemd unit, /etc/kiln/kiln.json), the unit is hardened and passes
# `systemd-analyze verify` (skipped when systemd-analyze is absent), a
# second install keeps an edited kiln.json, and the installed binary runs
# --help, finds the installed plugins, compiles and runs an example, and
# serves on the installed configuration with its data in
# $STATE_DIRECTORY.
. "$(dirname "$0")/lib.sh"        # ok, fail, skip, check, finish
. "$(dirname "$0")/lib_serve.sh"  # serve_free_port, serve_start, serve_stop
require_tools make curl
tmp=$(mktemp -d)
trap 'serve_stop; rm -rf "$tmp"' EXIT
build=$(realpath --relative-to=. "$(dirname "$KILN")")
D=$tmp/root

# The install, with nothing of an outer make's job server or flags.
minstall() {
    env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL \
        make --no-print-directory install BUILD="$build" DESTDIR="$D" PREFIX=/usr/local "$@"
}
if ! minstall >"$tmp/install.log" 2>&1; then
    fail install/make-install "$(tail -5 "$tmp/install.log")"
    finish
fi
ok install/make-install

missing=""
for f in usr/local/bin/kiln \
         usr/local/include/kiln/plugin.h usr/local/include/kiln/version.h \
         usr/local/lib/pkgconfig/kiln-plugin.pc \
         usr/local/share/man/man1/kiln.1 usr/local/share/man/man5/kiln.json.5 \
         usr/local/lib/systemd/system/kiln.service etc/kiln/kiln.json; do
    [ -f "$D/$f" ] || missing+=" /$f"
done
for so in "$build"/plugins/*.so; do
    [ -f "$D/usr/local/lib/kiln/plugins-2/$(basename "$so")" ] ||
        missing+=" /usr/local/lib/kiln/plugins-2/$(basename "$so")"
done
[ -z "$missing" ] && ok install/every-file || fail install/every-file "missing:$missing"
[ -x "$D/usr/local/bin/kiln" ] && ok install/binary-executable || fail install/binary-executable "not executable"
cmp -s docs/man/kiln.1 "$D/usr/local/share/man/man1/kiln.1" &&
    cmp -s examples/config/installed.json "$D/etc/kiln/kiln.json" && ok install/same-content ||
    fail install/same-content "a man page or kiln.json differs from the tree's"
if command -v man >/dev/null; then
    got=$(man -M "$D/usr/local/share/man" -w 5 kiln.json 2>&1)
    [ "$got" = "$D/usr/local/share/man/man5/kiln.json.5" ] && ok install/man-finds-kiln.json.5 ||
        fail install/man-finds-kiln.json.5 "$got"
fi
got=$(PKG_CONFIG_PATH=$D/usr/local/lib/pkgconfig pkg-config --cflags kiln-plugin 2>&1;
      PKG_CONFIG_PATH=$D/usr/local/lib/pkgconfig pkg-config --variable=plugindir kiln-plugin 2>&1)
case $got in
*-I/usr/local/include*/usr/local/lib/kiln/plugins-2) ok install/pkg-config ;;
*) fail install/pkg-config "$got" ;;
esac

# The unit: the installed paths, the hardening asked for, restarted after
# exit status 70.
unit=$D/usr/local/lib/systemd/system/kiln.service
missing=""
for line in 'ExecStart=/usr/local/bin/kiln serve --config /etc/kiln/kiln.json' \
            NoNewPrivileges=yes ProtectSystem=strict ProtectHome=yes PrivateTmp=yes \
            StateDirectory=kiln DynamicUser=yes Restart=on-failure; do
    grep -qxF "$line" "$unit" || missing+=" $line"
done
[ -z "$missing" ] && ok install/unit-hardened || fail install/unit-hardened "missing:$missing"
if grep -E '^RestartPreventExitStatus=' "$unit" | grep -qw 70; then
    fail install/unit-restarts-after-70 "$(grep '^RestartPreventExitStatus=' "$unit")"
else
    ok install/unit-restarts-after-70
fi
grep -q '^ReadWritePaths=' "$unit" && fail install/unit-writes-only-state "$(grep '^ReadWritePaths=' "$unit")" ||
    ok install/unit-writes-only-state
if command -v systemd-analyze >/dev/null; then
    # verify looks for ExecStart's binary and the Documentation= pages on
    # this machine: point both into DESTDIR, in a copy.
    mkdir -p "$tmp/unit"
    sed "s|^ExecStart=/usr/local/bin/kiln|ExecStart=$D/usr/local/bin/kiln|" "$unit" >"$tmp/unit/kiln.service"
    if MANPATH=$D/usr/local/share/man systemd-analyze verify "$tmp/unit/kiln.service" >"$tmp/verify" 2>&1; then
        ok install/systemd-analyze-verify
    else
        fail install/systemd-analyze-verify "$(head -5 "$tmp/verify")"
    fi
else
    skip install/systemd-analyze-verify "systemd-analyze is not installed"
fi

# The installed binary, on the installed plugins.
K=$D/usr/local/bin/kiln
"$K" --help >"$tmp/help" 2>&1 && grep -q '^Commands:' "$tmp/help" && ok install/runs-help ||
    fail install/runs-help "$(head -3 "$tmp/help")"
"$K" plugins >"$tmp/plugins" 2>&1
paths=$(grep -E '^ +/' "$tmp/plugins" | sed 's/^ *//' | xargs -r realpath -m)
if [ -n "$paths" ] && ! grep -qv "^$D/usr/local/lib/kiln/plugins-2/" <<<"$paths"; then
    ok install/uses-installed-plugins
else
    fail install/uses-installed-plugins "$(head -c 400 "$tmp/plugins")"
fi
"$K" compile examples/tour.json --source-size 1024x768 >"$tmp/compile" 2>&1 &&
    grep -q 'load /samples/photo.jpg' "$tmp/compile" && ok install/compiles-an-example ||
    fail install/compiles-an-example "$(head -3 "$tmp/compile")"
mkdir -p "$tmp/images/samples"
vips black "$tmp/b.v" 320 240 --bands 3 && vips copy "$tmp/b.v" "$tmp/images/samples/photo.jpg" ||
    fail install/fixture "cannot make the sample photo"
"$K" run --storage-root "$tmp/images" examples/requests/resize.json >"$tmp/run" 2>&1 &&
    jq -e '.status == "FINISHED"' "$tmp/run" >/dev/null && ok install/runs-an-example ||
    fail install/runs-an-example "$(head -c 400 "$tmp/run")"

# The installed configuration, as the unit runs it: data in
# $STATE_DIRECTORY, nothing in the current directory.
state=$tmp/state
mkdir -p "$state" "$tmp/cwd"
port=$(serve_free_port)
printf '#!/bin/sh\ncd "%s" && STATE_DIRECTORY="%s" KILN_TOKEN=t exec "%s" "$@" --listen 127.0.0.1:%s\n' \
    "$tmp/cwd" "$state" "$K" "$port" >"$tmp/kiln-unit"
chmod +x "$tmp/kiln-unit"
KILN_REAL=$KILN
KILN=$tmp/kiln-unit
# Without the validating relay of lib_serve.sh: the wrapper sets --listen
# itself (the installed file's port is not free for a test).
if SERVE_OPENAPI=off serve_start "$D/etc/kiln/kiln.json" "$tmp/serve.log" "http://127.0.0.1:$port"; then
    id=$(curl -s -H 'Authorization: Bearer t' -d '{"service_id": 1, "source": "/samples/photo.jpg", "jobs": [{"destination": "/out/a.png"}]}' \
        "http://127.0.0.1:$port/request" | jq -r .process_id 2>/dev/null)
    serve_stop
    [ -f "$state/kiln.db" ] && [ -z "$(ls -A "$tmp/cwd")" ] && [ -n "$id" ] && [ "$id" != null ] &&
        ok install/state-directory || fail install/state-directory "id $id; state: $(ls "$state"); cwd: $(ls -A "$tmp/cwd")"
else
    fail install/state-directory "kiln serve did not start: $(tail -3 "$tmp/serve.log")"
fi
KILN=$KILN_REAL

# A second install keeps an operator's kiln.json.
echo '{"edited": true}' >"$D/etc/kiln/kiln.json"
if minstall >"$tmp/install2.log" 2>&1 && [ "$(cat "$D/etc/kiln/kiln.json")" = '{"edited": true}' ] &&
    grep -q "kept $D/etc/kiln/kiln.json" "$tmp/install2.log"; then
    ok install/keeps-edited-config
else
    fail install/keeps-edited-config "$(cat "$D/etc/kiln/kiln.json"; tail -3 "$tmp/install2.log")"
fi

finish
