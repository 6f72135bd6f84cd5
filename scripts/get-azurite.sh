#!/bin/bash
# Installs Microsoft's Azure Storage emulator (npm package azurite 3.x) for
# the tests into .cache/npm/ under the repository (npm --prefix, never
# globally). Idempotent: does nothing when
# .cache/npm/node_modules/.bin/azurite-blob exists and runs.
set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEST=$ROOT/.cache/npm
BIN=$DEST/node_modules/.bin/azurite-blob

version() { "$BIN" --version 2>/dev/null | head -1; }

if [ -x "$BIN" ] && [ -n "$(version)" ]; then
    echo "get-azurite: azurite-blob $(version) is present in $DEST"
    exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
    echo "get-azurite: npm is not installed (Debian package 'npm', or nodejs from nodesource)" >&2
    exit 1
fi
mkdir -p "$DEST" || exit 1
log=$(mktemp "${TMPDIR:-/tmp}/get-azurite.XXXXXX") || exit 1
trap 'rm -f "$log"' EXIT
echo "get-azurite: installing npm package azurite@3 into $DEST"
if ! npm install --prefix "$DEST" --no-audit --no-fund azurite@3 >"$log" 2>&1; then
    echo "get-azurite: 'npm install azurite@3' failed:" >&2
    tail -15 "$log" >&2
    exit 1
fi
if [ ! -x "$BIN" ] || [ -z "$(version)" ]; then
    echo "get-azurite: $BIN is missing or does not run after npm install" >&2
    exit 1
fi
echo "get-azurite: installed azurite-blob $(version) in $DEST"
