#    Licensed under the Apache License, Version 2.0 (the "License"); you may
#    not use this file except in compliance with the License. You may obtain
#    a copy of the License at
#
#         http://www.apache.org/licenses/LICENSE-2.0
#
#    Unless required by applicable law or agreed to in writing, software
#    distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
#    WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
#    License for the specific language governing permissions and limitations
#    under the License.
"""A live ISO of the CoreOS-alike, with CoreOS's embed areas.

The VM lab's virtual media scenario boots the live system from an ISO
that the ``coreos-*-virtual-media`` boot interfaces customise per node,
so it has what a Fedora CoreOS live ISO has for that (see
``../shared/reference/live-media.md``):

* ``coreos/igninfo.json`` naming ``images/ignition.img``, a zero-filled
  initrd embed area of :data:`EMBED_AREA` bytes that GRUB loads as the
  last initrd (the kernel unpacks the archive written there over the
  initramfs: ``config.ign`` and
  ``etc/coreos-firstboot-network/*.nmconnection``);
* ``coreos/kargs.json`` with one kernel argument area in
  ``EFI/fedora/grub.cfg`` (``#`` padding, a line end last), holding the
  live system's kernel arguments without ``ip=dhcp``: the network comes
  from the embedded keyfiles or not at all;
* ``coreos/features.json`` with ``live-initrd-network`` (the initramfs's
  ``coreos-alike-copy-firstboot-network`` reads the keyfiles);
* an El Torito UEFI boot image (``images/efiboot.img``): a GRUB that finds
  the ISO by ``coreos/igninfo.json`` and reads ``EFI/fedora/grub.cfg``.

Unlike Fedora CoreOS, GRUB loads the root squashfs archive
(``images/pxeboot/rootfs.img``) as an initrd too, instead of the
initramfs mounting it from the ISO; there is no BIOS boot.
"""

import json
import os
import shutil
import subprocess

import pycdlib

from ironic_coreos.tests.functional.vmlab import livesys

VOLUME_ID = 'COREOS_ALIKE'
#: Size of images/ignition.img (Fedora CoreOS: 256 KiB).
EMBED_AREA = 256 * 1024
#: Size of the kernel argument area.
KARGS_AREA = 1024
#: The live kernel arguments of a virtual media boot.
ISO_KARGS = tuple(a for a in livesys.LIVE_KARGS
                  if a not in ('ip=dhcp', 'rd.neednet=1'))

_EMBEDDED_CFG = """\
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
search --no-floppy --file /coreos/igninfo.json --set root
set prefix=($root)/EFI/fedora
configfile ($root)/EFI/fedora/grub.cfg
"""

_GRUB_MODULES = ('iso9660 part_gpt part_msdos fat search search_fs_file '
                 'normal configfile test echo linux serial terminal '
                 'efi_gop all_video')

_GRUB_CFG_HEAD = """\
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
set timeout=1
menuentry 'CoreOS-alike live' --id=live {
    linux /images/pxeboot/vmlinuz """

_GRUB_CFG_TAIL = """
    initrd /images/pxeboot/rootfs.img /images/pxeboot/initrd.img \
/images/ignition.img
}
"""


def grub_cfg(kargs=ISO_KARGS):
    """The ISO's grub.cfg and the offset of its kernel argument area."""
    text = ' '.join(kargs)
    if len(text) + 1 > KARGS_AREA:
        raise ValueError('kernel arguments longer than the area')
    area = text + '\n' + '#' * (KARGS_AREA - len(text) - 1)
    head = _GRUB_CFG_HEAD.encode()
    return head + area.encode() + _GRUB_CFG_TAIL.encode(), len(head)


def _run(argv):
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError('%s failed (%d): %s' % (argv[0], proc.returncode,
                                                   proc.stderr[-2000:]))


def _efiboot(work):
    """The El Torito UEFI image: a FAT file system with GRUB."""
    cfg = os.path.join(work, 'embedded.cfg')
    with open(cfg, 'w') as f:
        f.write(_EMBEDDED_CFG)
    grub = os.path.join(work, 'BOOTX64.EFI')
    _run(['grub-mkstandalone', '-O', 'x86_64-efi', '-o', grub,
          '--modules=%s' % _GRUB_MODULES, '--locales=', '--fonts=',
          '--themes=', 'boot/grub/grub.cfg=%s' % cfg])
    image = os.path.join(work, 'efiboot.img')
    size_kib = (os.path.getsize(grub) // 1024) + 1024
    _run(['mkfs.fat', '-C', '-n', 'EFIBOOT', image, str(size_kib)])
    _run(['mmd', '-i', image, '::/EFI', '::/EFI/BOOT'])
    _run(['mcopy', '-i', image, grub, '::/EFI/BOOT/BOOTX64.EFI'])
    return image


def build(live, dest):
    """Write the live ISO of ``live`` (a :class:`livesys.LiveSystem`).

    :param dest: the ISO's path; a work directory ``dest + '.work'`` is
        used and removed.
    :returns: ``dest``.
    """
    work = dest + '.work'
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    try:
        efiboot = _efiboot(work)
        cfg, offset = grub_cfg()
        meta = {
            '/COREOS/IGNINFO.JSO;1': ('igninfo.json', json.dumps(
                {'file': 'images/ignition.img'}).encode()),
            '/COREOS/KARGS.JSO;1': ('kargs.json', json.dumps({
                'default': ' '.join(ISO_KARGS),
                'files': [{'path': 'EFI/fedora/grub.cfg', 'offset': offset,
                           'pad': '#', 'end': '\n'}],
                'size': KARGS_AREA}).encode()),
            '/COREOS/FEATURES.JSO;1': ('features.json', json.dumps(
                {'installer-config': True,
                 'live-initrd-network': True}).encode()),
            '/EFI/FEDORA/GRUB.CFG;1': ('grub.cfg', cfg),
            '/IMAGES/IGNITION.IMG;1': ('ignition.img', bytes(EMBED_AREA)),
        }
        iso = pycdlib.PyCdlib()
        iso.new(interchange_level=3, rock_ridge='1.09', joliet=3,
                vol_ident=VOLUME_ID)
        # ISO 9660 directory -> its long (Joliet) name.
        joliet = {'/': ''}

        def long_name(path, rr):
            parent = os.path.dirname(path.split(';')[0])
            return '%s/%s' % (joliet[parent], rr)

        for path, rr in (('/COREOS', 'coreos'), ('/EFI', 'EFI'),
                         ('/EFI/FEDORA', 'fedora'), ('/IMAGES', 'images'),
                         ('/IMAGES/PXEBOOT', 'pxeboot')):
            joliet[path] = long_name(path, rr)
            iso.add_directory(path, rr_name=rr, joliet_path=joliet[path])
        for path, (rr, data) in meta.items():
            name = os.path.join(work, rr)
            with open(name, 'wb') as f:
                f.write(data)
            iso.add_file(name, path, rr_name=rr,
                         joliet_path=long_name(path, rr))
        for path, rr, src in (
                ('/IMAGES/EFIBOOT.IMG;1', 'efiboot.img', efiboot),
                ('/IMAGES/PXEBOOT/VMLINUZ;1', 'vmlinuz', live.kernel),
                ('/IMAGES/PXEBOOT/INITRD.IMG;1', 'initrd.img',
                 live.initramfs),
                ('/IMAGES/PXEBOOT/ROOTFS.IMG;1', 'rootfs.img', live.rootfs)):
            iso.add_file(src, path, rr_name=rr,
                         joliet_path=long_name(path, rr))
        iso.add_eltorito('/IMAGES/EFIBOOT.IMG;1', bootcatfile='/BOOT.CAT;1',
                         rr_bootcatname='boot.cat',
                         joliet_bootcatfile='/boot.cat',
                         platform_id=0xef, media_name='noemul')
        iso.write(dest)
        iso.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return dest
