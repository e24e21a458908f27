#!/bin/bash
# Build the CoreOS-alike live system and installed-system payload used by the
# VM lab (ironic_coreos/tests/functional/vmlab/README.rst), from Debian
# packages. Cached by a hash of every input under
# /var/cache/ironic-coreos/live-system/<key>/; the last line printed is that
# directory.
#
# Usage (as root): tools/build-live-system.sh [--base-only]
#
# Environment: LIVESYS_CACHE (default /var/cache/ironic-coreos/live-system),
# LIVESYS_SUITE (default bookworm), LIVESYS_MIRROR (default: mmdebstrap's).

set -o errexit
set -o nounset
set -o pipefail
# A failing step inside $(...) (the base build) stops the build too.
shopt -s inherit_errexit

TOP_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VMLAB_DIR=$TOP_DIR/ironic_coreos/tests/functional/vmlab
STANDIN_DIR=$TOP_DIR/ironic_coreos/tests/functional/standin
CACHE=${LIVESYS_CACHE:-/var/cache/ironic-coreos/live-system}
SUITE=${LIVESYS_SUITE:-bookworm}
MIRROR=${LIVESYS_MIRROR:-}
# Bump when the way the base tarball is made changes.
BASE_FORMAT=1
MMDEBSTRAP_OPTS=(
    --variant=apt
    --components=main
    --dpkgopt=path-exclude=/usr/share/doc/*
    --dpkgopt=path-include=/usr/share/doc/*/copyright
    --dpkgopt=path-exclude=/usr/share/man/*
    --dpkgopt=path-exclude=/usr/share/info/*
    --dpkgopt=path-exclude=/usr/share/locale/*
    --dpkgopt=path-include=/usr/share/locale/locale.alias
)

log() { echo "build-live-system: $*" >&2; }

if [[ $(id -u) -ne 0 ]]; then
    echo "tools/build-live-system.sh must run as root (chroot, mknod)" >&2
    exit 1
fi
for tool in mmdebstrap mksquashfs grub-mkstandalone cpio zstd sha256sum; do
    if ! command -v "$tool" >/dev/null; then
        echo "build-live-system: $tool is missing; run tools/install-deps.sh" >&2
        exit 1
    fi
done

packages() {
    grep -v -e '^#' -e '^[[:space:]]*$' "$VMLAB_DIR/packages.txt" | sort -u
}

base_key() {
    {
        echo "format=$BASE_FORMAT suite=$SUITE mirror=$MIRROR"
        printf '%s\n' "${MMDEBSTRAP_OPTS[@]}"
        packages
    } | sha256sum | cut -c1-16
}

# The Debian root file system, as mmdebstrap makes it (the slow part, about
# 4 minutes): cached as a directory of its own.
build_base() {
    local key tarball
    key=$(base_key)
    tarball=$CACHE/base-$key
    if [[ ! -f $tarball/etc/os-release ]]; then
        rm -rf "$tarball.tmp"
        log "building the base root file system ($SUITE) -> $tarball"
        mkdir -p "$CACHE"
        local include
        include=$(packages | paste -sd, -)
        local args=("${MMDEBSTRAP_OPTS[@]}" "--include=$include" "$SUITE"
                    "$tarball.tmp")
        # NOTE: the kernel package's initramfs (removed later) is built
        # uncompressed: gzip -9 of it takes minutes on a loaded machine.
        # Build speed only, not content: not part of the key.
        args=(--format=directory
              "--setup-hook=mkdir -p \"\$1/etc/dracut.conf.d\" && echo 'compress=\"cat\"' > \"\$1/etc/dracut.conf.d/00-build-only.conf\""
              "${args[@]}")
        if [[ -n $MIRROR ]]; then
            args+=("$MIRROR")
        fi
        nice -n 10 mmdebstrap "${args[@]}" >&2
        mv "$tarball.tmp" "$tarball"
    fi
    echo "$tarball"
}

BASE_DIR=$(build_base)
if [[ ${1:-} == --base-only ]]; then
    echo "$BASE_DIR"
    exit 0
fi

# Everything the live system is made of; a change to any of it is a new
# cache key.
INPUTS=(
    "$TOP_DIR/tools/build-live-system.sh"
    "$VMLAB_DIR/packages.txt"
    "$STANDIN_DIR/installer.py"
    "$STANDIN_DIR/disk.py"
    "$STANDIN_DIR/metal.py"
)
while IFS= read -r -d '' f; do
    INPUTS+=("$f")
done < <(find "$VMLAB_DIR/dracut" "$VMLAB_DIR/rootfs" -type f -print0 | sort -z)

build_key() {
    {
        echo "base=$BASE_DIR"
        local f
        for f in "${INPUTS[@]}"; do
            echo "== ${f#$TOP_DIR/} $(stat -c %a "$f")"
            cat "$f"
        done
    } | sha256sum | cut -c1-16
}

KEY=$(build_key)
OUT=$CACHE/$KEY
if [[ -f $OUT/build.json ]]; then
    log "cached: $OUT"
    echo "$OUT"
    exit 0
fi

WORK=$CACHE/$KEY.work
rm -rf "$WORK"
mkdir -p "$WORK/out"
trap 'rm -rf "$WORK"' EXIT
ROOT=$WORK/root
start=$SECONDS
log "copying the base root file system"
cp -a "$BASE_DIR" "$ROOT"

log "configuring the root file system"
rm -f "$ROOT/etc/dracut.conf.d/00-build-only.conf"
# Files of the CoreOS-alike (presets, sshd, containers, sudo, marker).
cp -a "$VMLAB_DIR/rootfs/." "$ROOT/"
chown -R root:root "$ROOT/etc/containers" "$ROOT/etc/ssh/sshd_config.d" \
    "$ROOT/etc/systemd" "$ROOT/etc/sudoers.d" "$ROOT/usr/lib/coreos-alike" \
    "$ROOT/etc/selinux"
# Unset machine id: presets apply on the first boot (Ignition's too).
echo uninitialized > "$ROOT/etc/machine-id"
rm -f "$ROOT/var/lib/dbus/machine-id"
ln -sf /dev/null "$ROOT/etc/systemd/system/systemd-firstboot.service"
# Nothing of the build machine: host name, resolver, SSH host keys.
rm -f "$ROOT/etc/hostname" "$ROOT/etc/resolv.conf" "$ROOT"/etc/ssh/ssh_host_*
printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' \
    > "$ROOT/etc/hosts"
# The user CoreOS ships: core, in wheel (sudo without password).
chroot "$ROOT" groupadd -f -r wheel
chroot "$ROOT" useradd -m -u 1000 -U -G wheel,adm,systemd-journal \
    -s /bin/bash -c "CoreOS Admin" core
chroot "$ROOT" passwd -q -l core
# Undo the units the packages enabled; the presets decide on first boot.
chroot "$ROOT" systemctl preset-all >/dev/null 2>&1 || true

# The installer stand-in, a regular file at /usr/bin/coreos-installer (the
# agent's host-root lookup does not follow absolute symlinks).
PYDIR=$ROOT/usr/lib/coreos-alike/python
mkdir -p "$PYDIR/ironic_coreos/tests/functional/standin"
for d in ironic_coreos ironic_coreos/tests ironic_coreos/tests/functional; do
    : > "$PYDIR/$d/__init__.py"
done
cp "$STANDIN_DIR/__init__.py" "$STANDIN_DIR/installer.py" \
    "$STANDIN_DIR/disk.py" "$STANDIN_DIR/metal.py" \
    "$PYDIR/ironic_coreos/tests/functional/standin/"
cat > "$ROOT/usr/bin/coreos-installer" <<'PY'
#!/usr/bin/python3
# coreos-installer stand-in of the VM lab's CoreOS-alike (not the real
# coreos-installer): ironic_coreos/tests/functional/standin/README.
import sys
sys.path.insert(0, '/usr/lib/coreos-alike/python')
from ironic_coreos.tests.functional.standin import installer  # noqa: E402
sys.exit(installer.main())
PY
chmod 0755 "$ROOT/usr/bin/coreos-installer"

# The initramfs: Debian's Ignition module and ours, built in the root.
KVER=$(ls "$ROOT/lib/modules" | sort -V | tail -1)
rm -rf "$ROOT/usr/lib/dracut/modules.d/90coreos-alike"
cp -a "$VMLAB_DIR/dracut/90coreos-alike" "$ROOT/usr/lib/dracut/modules.d/"
# Only what a lab VM (q35: virtio, AHCI for virtual media) needs before the
# real root; the full module tree is in the root file system.
INITRD_DRIVERS="virtio_blk virtio_net virtio_pci virtio_scsi virtio_console \
ahci sd_mod sr_mod cdrom isofs squashfs overlay loop ext4 vfat nls_cp437 \
nls_iso8859-1 nls_utf8 e1000 e1000e"
log "building the initramfs for $KVER"
unshare -m --propagation private /bin/sh -e -c '
    ROOT=$1; KVER=$2; DRIVERS=$3
    mount -t proc proc "$ROOT/proc"
    mount --bind /sys "$ROOT/sys"
    mount --bind /dev "$ROOT/dev"
    chroot "$ROOT" nice -n 10 dracut --quiet --force --no-hostonly \
        --no-hostonly-cmdline --compress "zstd -q -T0 -6" --kver "$KVER" \
        --add "coreos-alike ignition network-manager" \
        --omit "plymouth resume btrfs mdraid lvm dm crypt multipath iscsi nfs nbd fcoe" \
        --drivers "$DRIVERS" \
        /boot/coreos-alike-initramfs.img
' sh "$ROOT" "$KVER" "$INITRD_DRIVERS" >&2
mv "$ROOT/boot/coreos-alike-initramfs.img" "$WORK/out/initramfs.img"
chmod 0644 "$WORK/out/initramfs.img"
cp "$ROOT/boot/vmlinuz-$KVER" "$WORK/out/vmlinuz"
# The installed system's payload, where CoreOS keeps it.
cp "$WORK/out/vmlinuz" "$ROOT/usr/lib/modules/$KVER/vmlinuz"
cp "$WORK/out/initramfs.img" "$ROOT/usr/lib/modules/$KVER/initramfs.img"
rm -rf "$ROOT"/boot/*

log "building the GRUB EFI binary"
cat > "$WORK/grub-embedded.cfg" <<'CFG'
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
search --no-floppy --label boot --set root
set prefix=($root)/grub2
configfile ($root)/grub2/grub.cfg
CFG
grub-mkstandalone -O x86_64-efi -o "$WORK/out/BOOTX64.EFI" \
    --modules="part_gpt part_msdos ext2 fat search search_label normal \
configfile test echo linux serial terminal efi_gop all_video" \
    --locales= --fonts= --themes= \
    "boot/grub/grub.cfg=$WORK/grub-embedded.cfg" >&2
mkdir -p "$ROOT/usr/lib/coreos-alike/grub"
cp "$WORK/out/BOOTX64.EFI" "$ROOT/usr/lib/coreos-alike/grub/BOOTX64.EFI"
cat > "$ROOT/usr/lib/coreos-alike/payload.json" <<JSON
{
  "title": "CoreOS-alike (Debian $SUITE, $KVER)",
  "kver": "$KVER",
  "kernel": "usr/lib/modules/$KVER/vmlinuz",
  "initramfs": "usr/lib/modules/$KVER/initramfs.img",
  "grub_efi": "usr/lib/coreos-alike/grub/BOOTX64.EFI",
  "kargs": ["mitigations=auto,nosmt", "ignition.platform.id=metal",
            "\$ignition_firstboot", "root=LABEL=root", "rw",
            "console=tty0", "console=ttyS0,115200n8"]
}
JSON

log "building the root squashfs"
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/* \
    "$ROOT"/var/log/*.log "$ROOT"/tmp/* "$ROOT"/var/tmp/*
nice -n 10 mksquashfs "$ROOT" "$WORK/root.squashfs" -comp zstd \
    -Xcompression-level 12 -noappend -quiet -no-progress >&2
mkdir -p "$WORK/cpio"
mv "$WORK/root.squashfs" "$WORK/cpio/root.squashfs"
# Like CoreOS's live rootfs image: a cpio archive holding /root.squashfs,
# appended to the initramfs or fetched with coreos.live.rootfs_url=.
(cd "$WORK/cpio" && echo root.squashfs | cpio -o -H newc --quiet) \
    > "$WORK/out/rootfs.img"
rm -rf "$WORK/cpio"

log "building the metal image"
PYTHONPATH=$TOP_DIR nice -n 10 python3 -m \
    ironic_coreos.tests.functional.standin.metal make-image \
    "$WORK/out/metal.raw" "$ROOT" >&2
# The same image for --image-url (how the VM scenarios install): gzip is
# what the stand-in decompresses fastest under emulation. -n: the same
# bytes for the same image.
log "compressing and signing the metal image"
nice -n 10 gzip -1 -n -c "$WORK/out/metal.raw" > "$WORK/out/metal.raw.gz"
PYTHONPATH=$TOP_DIR python3 -m \
    ironic_coreos.tests.functional.standin.metal sign \
    "$WORK/out/metal.raw.gz" >&2

cat > "$WORK/out/build.json" <<JSON
{
  "key": "$KEY",
  "base": "$(basename "$BASE_DIR")",
  "suite": "$SUITE",
  "kver": "$KVER",
  "seconds": $((SECONDS - start)),
  "files": ["vmlinuz", "initramfs.img", "rootfs.img", "BOOTX64.EFI", "metal.raw",
            "metal.raw.gz", "metal.raw.gz.sig"]
}
JSON
rm -rf "$OUT"
mv "$WORK/out" "$OUT"
log "built $OUT in $((SECONDS - start)) s"
echo "$OUT"
