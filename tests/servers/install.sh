#!/usr/bin/env bash
# Installs the storage emulators and reference clients the tests start on
# 127.0.0.1 (s3rver, azurite, @azure/storage-blob) from the npm registry
# into build/npm, pinned by tests/servers/package-lock.json; does nothing
# when that lock file is already installed. Prints the node_modules path.
# Usage: tests/servers/install.sh [DIR [PACKAGE_DIR]]   (default build/npm)
# PACKAGE_DIR: another folder's package.json and package-lock.json
# (tests/browser/install.sh installs playwright-core this way).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
pkg=$(cd "${2:-$here}" && pwd)
dir=${1:-$here/../../build/npm}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
stamp=$dir/.installed
want=$(sha256sum "$pkg/package-lock.json" | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || [ ! -d "$dir/node_modules" ]; then
    cp "$pkg/package.json" "$pkg/package-lock.json" "$dir/"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2)
    echo "$want" >"$stamp"
fi
echo "$dir/node_modules"
