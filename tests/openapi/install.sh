#!/usr/bin/env bash
# Installs the OpenAPI linter (@redocly/cli) and the response validator's
# JSON Schema library (ajv, ajv-formats) from the npm registry into
# build/npm-openapi, pinned by tests/openapi/package-lock.json; does
# nothing when that lock file is already installed. Prints the
# node_modules path; exits 1 saying why when node or npm is missing or
# the install fails. Concurrent runs wait for each other (flock).
# Usage: tests/openapi/install.sh [DIR]   (default build/npm-openapi)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
dir=${1:-$here/../../build/npm-openapi}
for t in node npm; do
    command -v "$t" >/dev/null 2>&1 || { echo "$t is not installed (make deps)" >&2; exit 1; }
done
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
stamp=$dir/.installed
want=$(sha256sum "$here/package-lock.json" | cut -d' ' -f1)
exec 9>"$dir/.lock"
flock 9
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || [ ! -d "$dir/node_modules" ]; then
    cp "$here/package.json" "$here/package-lock.json" "$dir/"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2)
    echo "$want" >"$stamp"
fi
echo "$dir/node_modules"
