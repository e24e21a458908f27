#!/bin/bash
# The CoreOS-alike's own initramfs module: what CoreOS's initramfs units do
# around Ignition (see ../../README.rst). Installed by
# tools/build-live-system.sh as /usr/lib/dracut/modules.d/90coreos-alike.

check() {
    return 255
}

depends() {
    echo ignition systemd network url-lib
}

install() {
    inst_multiple curl cpio losetup mount umount blkid udevadm rm cp sleep \
        mkdir chmod modprobe cat grep sync install basename
    inst_script "$moddir/is-live-image" /usr/bin/is-live-image
    inst_script "$moddir/coreos-alike-live-root" \
        /usr/libexec/coreos-alike-live-root
    inst_script "$moddir/coreos-alike-setup-user" \
        /usr/libexec/coreos-alike-setup-user
    inst_script "$moddir/coreos-alike-firstboot-complete" \
        /usr/libexec/coreos-alike-firstboot-complete
    inst_script "$moddir/coreos-alike-copy-firstboot-network" \
        /usr/libexec/coreos-alike-copy-firstboot-network
    # Debian's Ignition is built with SELinux relabelling: it wants a
    # policy configuration and setfiles; there is no SELinux here.
    inst_script "$moddir/setfiles" /usr/sbin/setfiles
    inst_simple "$moddir/selinux-config" /etc/selinux/config
    inst_hook cmdline 90 "$moddir/parse-coreos-alike.sh"

    local unit
    for unit in coreos-alike-live-root.service \
            coreos-alike-setup-user.service \
            coreos-alike-firstboot-complete.service \
            coreos-alike-copy-firstboot-network.service; do
        inst_simple "$moddir/$unit" "$systemdsystemunitdir/$unit"
    done
    mkdir -p "$initdir/$systemdsystemunitdir/initrd-root-fs.target.requires"
    ln_r "$systemdsystemunitdir/coreos-alike-live-root.service" \
        "$systemdsystemunitdir/initrd-root-fs.target.requires/coreos-alike-live-root.service"
    mkdir -p "$initdir/$systemdsystemunitdir/ignition-complete.target.requires"
    ln_r "$systemdsystemunitdir/coreos-alike-setup-user.service" \
        "$systemdsystemunitdir/ignition-complete.target.requires/coreos-alike-setup-user.service"
    ln_r "$systemdsystemunitdir/coreos-alike-firstboot-complete.service" \
        "$systemdsystemunitdir/ignition-complete.target.requires/coreos-alike-firstboot-complete.service"
    mkdir -p "$initdir/$systemdsystemunitdir/initrd.target.wants"
    ln_r "$systemdsystemunitdir/coreos-alike-copy-firstboot-network.service" \
        "$systemdsystemunitdir/initrd.target.wants/coreos-alike-copy-firstboot-network.service"
    instmods squashfs overlay loop ext4 vfat virtio_blk virtio_net \
        virtio_pci virtio_scsi
}
