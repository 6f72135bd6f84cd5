#!/bin/bash
# Makes a Debian 12 machine ready to build burry, run its tests, the demo and
# the benchmarks (Ceph radosgw and azurite for the S3 and Azure tests).
# Idempotent: when every package is present it only says so; otherwise it
# runs apt-get update once and installs just the missing ones.
set -u

# libzookeeper-st-dev, not -mt-dev: the two conflict and the build links
# the single-threaded client.
PACKAGES=(
    gcc make pkg-config
    libarchive-dev libjansson-dev libssl-dev libzstd-dev libzookeeper-st-dev zlib1g-dev
    libcurl4-openssl-dev libinih-dev libyajl-dev
    zookeeper default-jre-headless etcd-server etcd-client
    python3 python3-kazoo
    radosgw ceph-mon ceph-osd ceph-common awscli python3-boto3
    zstd tar coreutils time procps curl age
    openssh-server openssh-client
    man-db groff-base bsdextrautils systemd
)

is_installed() {
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]
}

# azurite comes from npm; Debian's npm package only when no npm is present
# (a nodesource nodejs ships its own npm and conflicts with Debian's).
command -v npm >/dev/null 2>&1 || PACKAGES+=(npm)

missing=()
for p in "${PACKAGES[@]}"; do
    is_installed "$p" || missing+=("$p")
done

# Consul is not in Debian 12: its Debian 11 package goes into .cache/;
# azurite goes into .cache/npm.
get_extras() {
    local dir rc=0
    dir=$(dirname "${BASH_SOURCE[0]}")
    "$dir/get-consul.sh" || rc=1
    "$dir/get-azurite.sh" || rc=1
    return $rc
}

if [ ${#missing[@]} -eq 0 ]; then
    echo "setup: all ${#PACKAGES[@]} required packages are installed"
    get_extras
    exit $?
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "setup: installing packages needs root; missing: ${missing[*]}" >&2
    echo "setup: run 'sudo scripts/setup.sh' or install them with apt-get" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
echo "setup: installing ${missing[*]}"
if ! apt-get update -q; then
    echo "setup: 'apt-get update' failed; check the network and /etc/apt/sources.list*" >&2
    exit 1
fi
if ! apt-get install -y -q --no-install-recommends "${missing[@]}"; then
    echo "setup: 'apt-get install' failed for: ${missing[*]}" >&2
    exit 1
fi

still=()
for p in "${missing[@]}"; do
    is_installed "$p" || still+=("$p")
done
if [ ${#still[@]} -ne 0 ]; then
    echo "setup: still missing after apt-get install: ${still[*]}" >&2
    exit 1
fi
echo "setup: installed ${missing[*]}"
get_extras
