#!/bin/bash
# Fetches Consul 1.8 for the tests and benchmarks into .cache/consul/ under
# the repository. Consul is not in Debian 12, so this downloads the Debian 11
# ("bullseye") package with apt through a private configuration (its own
# sources list, lists, cache and status), using the mirror the system's own
# apt sources name, and unpacks it with dpkg-deb. The system's apt sources
# are never changed and nothing is installed system-wide. Idempotent: does
# nothing when .cache/consul/usr/bin/consul exists and runs.
set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEST=$ROOT/.cache/consul
BIN=$DEST/usr/bin/consul

if [ -x "$BIN" ] && "$BIN" version >/dev/null 2>&1; then
    echo "get-consul: $("$BIN" version | head -1) is present in $DEST"
    exit 0
fi

# The mirror: the first URI of the system's Debian sources (deb822 or
# one-line format), never a host name written here.
mirror=""
keyring=""
if [ -r /etc/apt/sources.list.d/debian.sources ]; then
    mirror=$(awk 'tolower($1) == "uris:" && $2 !~ /security/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources)
    keyring=$(awk 'tolower($1) == "signed-by:" { print $2; exit }' /etc/apt/sources.list.d/debian.sources)
fi
if [ -z "$mirror" ] && [ -r /etc/apt/sources.list ]; then
    mirror=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z+]+:\/\//) { if ($i !~ /security/) { print $i; exit } } }' /etc/apt/sources.list)
fi
if [ -z "$mirror" ]; then
    echo "get-consul: cannot find a Debian mirror in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list" >&2
    exit 1
fi
[ -n "$keyring" ] && [ -r "$keyring" ] || keyring=/usr/share/keyrings/debian-archive-keyring.gpg

work=$(mktemp -d "${TMPDIR:-/tmp}/get-consul.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/deb"
: >"$work/status"
echo "deb [signed-by=$keyring] $mirror bullseye main" >"$work/sources.list"

APT_OPTS=(
    -o "Dir::Etc::SourceList=$work/sources.list"
    -o "Dir::Etc::SourceParts=/dev/null"
    -o "Dir::State::Lists=$work/lists"
    -o "Dir::Cache=$work/cache"
    -o "Dir::State::status=$work/status"
    -o "Debug::NoLocking=1"
    -o "APT::Sandbox::User=root"
)

echo "get-consul: reading the bullseye package list from $mirror (private apt configuration in $work)"
if ! apt-get "${APT_OPTS[@]}" update -q >"$work/update.log" 2>&1; then
    echo "get-consul: 'apt-get update' for bullseye failed:" >&2
    tail -5 "$work/update.log" >&2
    exit 1
fi
echo "get-consul: downloading the 'consul' package"
if ! (cd "$work/deb" && apt-get "${APT_OPTS[@]}" download consul >"$work/download.log" 2>&1); then
    echo "get-consul: 'apt-get download consul' failed:" >&2
    tail -5 "$work/download.log" >&2
    exit 1
fi
deb=$(ls "$work"/deb/consul_*.deb 2>/dev/null | head -1)
if [ -z "$deb" ]; then
    echo "get-consul: no consul package was downloaded" >&2
    exit 1
fi
echo "get-consul: unpacking $(basename "$deb") into $DEST"
rm -rf "$DEST.tmp"
mkdir -p "$DEST.tmp" || exit 1
if ! dpkg-deb -x "$deb" "$DEST.tmp"; then
    echo "get-consul: 'dpkg-deb -x' failed on $(basename "$deb")" >&2
    rm -rf "$DEST.tmp"
    exit 1
fi
rm -rf "$DEST"
mv "$DEST.tmp" "$DEST" || exit 1
if ! "$BIN" version >/dev/null 2>&1; then
    echo "get-consul: $BIN does not run" >&2
    exit 1
fi
echo "get-consul: installed $("$BIN" version | head -1) in $DEST"
