#!/bin/bash
# Makes a Debian 12 machine ready to build burry, run its tests, the demo and
# the benchmarks. Idempotent: when every package is present it only says so;
# otherwise it runs apt-get update once and installs just the missing ones.
set -u

# libzookeeper-st-dev, not -mt-dev: the two conflict and the build links
# the single-threaded client.
PACKAGES=(
    gcc make pkg-config
    libarchive-dev libjansson-dev libssl-dev libzstd-dev libzookeeper-st-dev
    libcurl4-openssl-dev libinih-dev
    zookeeper default-jre-headless etcd-server etcd-client
    python3 python3-kazoo
    zstd tar coreutils time procps curl age
    openssh-server openssh-client
)

is_installed() {
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]
}

missing=()
for p in "${PACKAGES[@]}"; do
    is_installed "$p" || missing+=("$p")
done

# Consul is not in Debian 12: its Debian 11 package goes into .cache/
get_consul() {
    "$(dirname "${BASH_SOURCE[0]}")/get-consul.sh"
}

if [ ${#missing[@]} -eq 0 ]; then
    echo "setup: all ${#PACKAGES[@]} required packages are installed"
    get_consul
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
get_consul
