#!/usr/bin/env bash
# Installs the storage emulators and reference clients the tests start on
# 127.0.0.1 (s3rver, azurite, @azure/storage-blob) from the npm registry
# into build/npm, pinned by tests/servers/package-lock.json; does nothing
# when that lock file is already installed. Prints the node_modules path.
# Usage: tests/servers/install.sh [DIR]   (default build/npm)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
dir=${1:-$here/../../build/npm}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
stamp=$dir/.installed
want=$(sha256sum "$here/package-lock.json" | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || [ ! -d "$dir/node_modules" ]; then
    cp "$here/package.json" "$here/package-lock.json" "$dir/"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2)
    echo "$want" >"$stamp"
fi
echo "$dir/node_modules"
