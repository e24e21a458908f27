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
    buildah
    ca-certificates
    cpio
    dosfstools
    e2fsprogs
    fdisk
    fuse-overlayfs
    ignition
    ipmitool
    iproute2
    mmdebstrap
    mtools
    network-manager
    parted
    podman
    runc
    skopeo
    slirp4netns
    systemd
    uidmap
    util-linux
    xz-utils
    # Several conductors on one database (test_multiconductor.py, the
    # multi-conductor benchmark): the suite runs its own mariadbd; iptables
    # makes a simulated node's agent unreachable.
    iptables
    mariadb-server
    # The VM lab's CoreOS-alike (tools/build-live-system.sh) and its qemu
    # self test.
    gdisk
    grub-common
    grub-efi-amd64-bin
    openssh-client
    ovmf
    qemu-system-x86
    squashfs-tools
    zstd
)
# The VM lab (tox -e vmlab): emulator, UEFI firmware with iPXE, libvirt
# started by hand, DHCP and router advertisements, a container registry.
PACKAGES+=(
    dnsmasq-base
    docker-registry
    ipxe-qemu
    libvirt-clients
    libvirt-daemon-driver-qemu
    libvirt-daemon-system
    openssh-client
    ovmf
    python3-libvirt
    python3-venv
    qemu-system-x86
    qemu-utils
    radvd
    skopeo
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
    # Packages such as mariadb-server, libvirt-daemon-system, dnsmasq and
    # docker-registry start their system services when installed; the
    # tests start their own, inside their namespaces. Keep the host's
    # service manager from starting any while installing.
    policy=/usr/sbin/policy-rc.d
    if [[ ! -e $policy ]]; then
        trap 'rm -f "$policy"' EXIT
        printf '#!/bin/sh\nexit 101\n' > "$policy"
        chmod 0755 "$policy"
    fi
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
