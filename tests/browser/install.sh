#!/usr/bin/env bash
# Installs playwright-core (pinned by tests/browser/package-lock.json) from
# the npm registry into build/npm-browser, for tests/exec/dashboard.sh; does
# nothing when that lock file is already installed. Prints the
# node_modules path. playwright-core downloads no browser: the test drives
# Debian's /usr/bin/chromium (mk/deps.mk).
# Usage: tests/browser/install.sh [DIR]   (default build/npm-browser)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
exec bash "$here/../servers/install.sh" "${1:-$here/../../build/npm-browser}" "$here"
