#!/bin/bash
# Install everything the tests, the demo and the benchmarks need on a fresh
# Debian machine: the Debian packages used as test oracles and by the
# simulated nodes, and tox in a local virtual environment.
#
# Usage (as root): tools/install-deps.sh

set -o errexit
set -o nounset
set -o pipefail

TOP_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PACKAGES=(
    dosfstools
    e2fsprogs
    fdisk
    ignition
    ipmitool
    iproute2
    mtools
    network-manager
    parted
    util-linux
    xz-utils
)

if [[ $(id -u) -ne 0 ]]; then
    echo "tools/install-deps.sh must run as root (it installs packages)" >&2
    exit 1
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null \
            | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done
if [[ ${#missing[@]} -gt 0 ]]; then
    export DEBIAN_FRONTEND=noninteractive
    # Other runs may hold the dpkg lock: wait for it.
    apt-get update -qq -o DPkg::Lock::Timeout=600
    apt-get install -y -qq -o DPkg::Lock::Timeout=600 \
        --no-install-recommends "${missing[@]}"
fi

if [[ ! -x $TOP_DIR/.venv/bin/tox ]]; then
    python3 -m venv "$TOP_DIR/.venv"
    "$TOP_DIR/.venv/bin/pip" install -q \
        -c "$TOP_DIR/upper-constraints.txt" tox
fi
