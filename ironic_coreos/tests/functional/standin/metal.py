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

"""The CoreOS-alike metal disk, written from a live system's payload.

The VM lab's live system (``ironic_coreos/tests/functional/vmlab``) carries
what its installed system is made of: its own root file system (the live
root squashfs, mounted at :data:`LIVE_PAYLOAD_ROOT`), the kernel and
initramfs under ``usr/lib/modules/KVER/`` as CoreOS keeps them, and a GRUB
EFI binary. :func:`write_metal` lays these out on a disk (a block device or
an image file) the way a Fedora CoreOS metal image is laid out: GPT with
BIOS-BOOT, EFI-SYSTEM (vfat, GRUB at ``EFI/BOOT/BOOTX64.EFI`` and
``EFI/fedora/shimx64.efi`` with ``BOOTX64.CSV``), ``boot`` (ext4: kernel,
initramfs, a BLS entry in ``loader/entries``, ``grub2/grub.cfg`` and the
``ignition.firstboot`` stamp) and ``root`` (ext4).

Debian's GRUB has no ``blscfg``: ``grub2/grub.cfg`` is generated from the
BLS entries (:func:`grub_cfg`) and tests the stamp like CoreOS's grub.cfg
does. :func:`refresh_grub_cfg` regenerates it after the entries changed.

Filesystems are made at byte offsets of the whole disk (``mke2fs -E
offset``, ``mkfs.fat --offset``, mtools ``@@offset``), so nothing is
mounted and no partition device is needed. The first MiB is cleared first
and the partition table is written last, so a half-written disk never
boots.
"""

import json
import os
import re
import shutil
import tempfile

from ironic_coreos.tests.functional.standin import disk

MIB = disk.MIB
SECTOR = disk.SECTOR

#: Where the live system keeps its payload (the mounted root squashfs).
LIVE_PAYLOAD_ROOT = '/run/coreos-alike/lower'

#: The payload description inside a payload root.
PAYLOAD_FILE = 'usr/lib/coreos-alike/payload.json'

#: Name of the BLS entry written on ``boot``.
LOADER_ENTRY = 'ostree-1-coreos-alike.conf'

#: First line of a ``grub2/grub.cfg`` that :func:`refresh_grub_cfg` owns.
GRUB_CFG_MARKER = ('# coreos-alike: generated from loader/entries/*.conf '
                   '(this GRUB has no blscfg)')

ESP_MIB = 127
BOOT_MIB = 384
#: Smallest root partition accepted.
ROOT_MIN_MIB = 1536
#: Size of the root partition of an image file (a disk gets all the rest):
#: the live root's content (about 1 GiB) and room to spare. Every MiB of
#: it is written on each ``--image-url`` install.
IMAGE_ROOT_MIB = 2048

BOOT_CSV = ('shimx64.efi,CoreOS-alike,,This is the boot entry for '
            'CoreOS-alike\n')

_EXT4_OPTS = 'root_owner=0:0,lazy_itable_init=1,lazy_journal_init=1,nodiscard'


def find_payload(root=None):
    """The payload root of the running live system, or None.

    :param root: payload root to use instead of :data:`LIVE_PAYLOAD_ROOT`.
    """
    root = root or LIVE_PAYLOAD_ROOT
    if os.path.isfile(os.path.join(root, PAYLOAD_FILE)):
        return root
    return None


def load_payload(root):
    """Read and check the payload description.

    :returns: dict with ``root`` and absolute ``kernel``, ``initramfs``,
        ``grub_efi`` paths, ``kver``, ``title`` and ``kargs`` (list).
    :raises: disk.DiskError if it is missing or incomplete.
    """
    path = os.path.join(root, PAYLOAD_FILE)
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as exc:
        raise disk.DiskError('reading the live payload %s: %s' % (path, exc))
    result = {'root': root}
    for key in ('kernel', 'initramfs', 'grub_efi'):
        rel = data.get(key)
        full = os.path.join(root, str(rel or '').lstrip('/'))
        if not rel or not os.path.isfile(full):
            raise disk.DiskError('the live payload %s names no %s file '
                                 '(%r)' % (path, key, rel))
        result[key] = full
    for key in ('kver', 'title'):
        if not isinstance(data.get(key), str) or not data[key]:
            raise disk.DiskError('the live payload %s has no %s'
                                 % (path, key))
        result[key] = data[key]
    kargs = data.get('kargs')
    if not isinstance(kargs, list) or not all(isinstance(k, str)
                                              for k in kargs):
        raise disk.DiskError('the live payload %s has no kargs list' % path)
    result['kargs'] = kargs
    return result


def loader_entry(payload):
    """Text of the BLS entry for the payload's kernel."""
    kver = payload['kver']
    return ('title %s\n'
            'version 1\n'
            'options %s\n'
            'linux /ostree/coreos-alike-%s/vmlinuz-%s\n'
            'initrd /ostree/coreos-alike-%s/initramfs-%s.img\n'
            % (payload['title'], ' '.join(payload['kargs']), kver, kver,
               kver, kver))


def parse_entry(text):
    """The keys of a BLS entry (``title``, ``linux``, ``options``, ...)."""
    entry = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith('#'):
            continue
        key, _, value = line.partition(' ')
        entry[key] = value.strip()
    return entry


def _grub_word(word):
    """A kernel argument as a GRUB script word.

    GRUB variables (``$ignition_firstboot``) stay unquoted so they expand
    and split like in CoreOS's grub.cfg; everything else is single-quoted.
    """
    if re.match(r'^\$\{?[A-Za-z_][A-Za-z0-9_]*\}?$', word):
        return word
    return "'%s'" % word.replace("'", "'\\''")


def grub_cfg(entries):
    """grub.cfg booting the given BLS entries, first one by default.

    :param entries: list of (file name, entry text), in boot order.
    :returns: the text.
    """
    lines = [GRUB_CFG_MARKER,
             'serial --unit=0 --speed=115200',
             'terminal_input serial console',
             'terminal_output serial console',
             'set timeout=1',
             'set default=0',
             '# As CoreOS: the stamp on this partition means first boot.',
             'set ignition_firstboot=""',
             'if [ -f "/ignition.firstboot" ]; then',
             '    set ignition_network_kcmdline=""',
             '    source "/ignition.firstboot"',
             '    set ignition_firstboot="ignition.firstboot '
             '${ignition_network_kcmdline}"',
             'fi']
    for name, text in entries:
        entry = parse_entry(text)
        if not entry.get('linux'):
            raise disk.DiskError('boot loader entry %s has no linux line'
                                 % name)
        title = entry.get('title') or name
        lines.append("menuentry '%s' {" % title.replace("'", ''))
        lines.append('    linux %s %s' % (
            _grub_word(entry['linux']),
            ' '.join(_grub_word(w) for w in entry.get('options', '').split())))
        for initrd in entry.get('initrd', '').split():
            lines.append('    initrd %s' % _grub_word(initrd))
        lines.append('}')
    return '\n'.join(lines) + '\n'


def refresh_grub_cfg(dest, off):
    """Regenerate ``grub2/grub.cfg`` on ``boot`` from its BLS entries.

    Only a grub.cfg this module wrote (its first line is
    :data:`GRUB_CFG_MARKER`) is touched.

    :param dest: the disk.
    :param off: byte offset of the ``boot`` filesystem.
    :returns: True if it was regenerated.
    """
    old = disk.read_file(dest, off, '/grub2/grub.cfg')
    if old is None or not old.startswith(GRUB_CFG_MARKER.encode()):
        return False
    names = sorted(n for n in (disk.list_dir(dest, off, '/loader/entries')
                               or {}) if n.endswith('.conf'))
    entries = [(n, disk.read_file(dest, off, '/loader/entries/' + n)
                .decode()) for n in names]
    disk.replace_file(dest, off, '/grub2/grub.cfg',
                      grub_cfg(entries).encode())
    return True


def layout(dev_size, root_end=None, image=False):
    """Partitions of the metal disk: list of (start MiB, size MiB, type, name).

    :param dev_size: size of the destination in bytes.
    :param root_end: byte offset the root partition must end before (saved
        partitions), or None.
    :param image: an image file: the root partition gets
        :data:`IMAGE_ROOT_MIB`, not the rest of the disk.
    :raises: disk.DiskError if the destination is too small.
    """
    root_start = 2 + ESP_MIB + BOOT_MIB
    end_mib = dev_size // MIB - 1   # room for the backup GPT
    if root_end is not None:
        end_mib = min(end_mib, root_end // MIB)
    if image:
        end_mib = min(end_mib, root_start + IMAGE_ROOT_MIB)
    root_mib = end_mib - root_start
    if root_mib < ROOT_MIN_MIB:
        raise disk.DiskError(
            'the disk is too small for the CoreOS-alike: %d MiB, need at '
            'least %d MiB' % (dev_size // MIB, root_start + ROOT_MIN_MIB + 1))
    return [(1, 1, disk.BIOS_BOOT_TYPE, 'BIOS-BOOT'),
            (2, ESP_MIB, disk.EFI_SYSTEM_TYPE, 'EFI-SYSTEM'),
            (2 + ESP_MIB, BOOT_MIB, disk.LINUX_FS_TYPE, 'boot'),
            (root_start, root_mib, disk.LINUX_FS_TYPE, 'root')]


def _mke2fs(dest, start_mib, size_mib, label, tree, extra=()):
    disk._run(['mke2fs', '-q', '-F', '-t', 'ext4', '-b', '4096', '-L', label,
               '-E', '%s,offset=%d' % (_EXT4_OPTS, start_mib * MIB)]
              + list(extra) + ['-d', tree, dest,
                               str(size_mib * MIB // 4096)])


def _write_esp(dest, start_mib, size_mib, grub_efi):
    disk._run(['mkfs.fat', '-I', '-F', '16', '-n', 'EFI-SYSTEM',
               '--offset=%d' % (start_mib * MIB // SECTOR), dest,
               str(size_mib * 1024)])
    image = '%s@@%d' % (dest, start_mib * MIB)
    env = dict(os.environ, MTOOLS_SKIP_CHECK='1')

    def mtool(argv):
        proc = disk.subprocess.run(argv, capture_output=True, env=env,
                                   check=False)
        if proc.returncode != 0:
            raise disk.DiskError('%s failed with exit status %d: %s' % (
                argv[0], proc.returncode,
                proc.stderr.decode(errors='replace').strip()))
    mtool(['mmd', '-i', image, '::/EFI', '::/EFI/BOOT', '::/EFI/fedora'])
    with tempfile.TemporaryDirectory(prefix='standin-esp-') as work:
        csv = os.path.join(work, 'BOOTX64.CSV')
        with open(csv, 'wb') as f:
            f.write(b'\xff\xfe' + BOOT_CSV.encode('utf-16-le'))
        mtool(['mcopy', '-i', image, grub_efi, '::/EFI/BOOT/BOOTX64.EFI'])
        mtool(['mcopy', '-i', image, grub_efi, '::/EFI/fedora/shimx64.efi'])
        mtool(['mcopy', '-i', image, grub_efi, '::/EFI/fedora/grubx64.efi'])
        mtool(['mcopy', '-i', image, csv, '::/EFI/fedora/BOOTX64.CSV'])


def _boot_tree(tree, payload):
    kver = payload['kver']
    kdir = os.path.join(tree, 'ostree', 'coreos-alike-%s' % kver)
    os.makedirs(kdir)
    shutil.copyfile(payload['kernel'],
                    os.path.join(kdir, 'vmlinuz-%s' % kver))
    shutil.copyfile(payload['initramfs'],
                    os.path.join(kdir, 'initramfs-%s.img' % kver))
    entries = os.path.join(tree, 'loader', 'entries')
    os.makedirs(entries)
    entry = loader_entry(payload)
    with open(os.path.join(entries, LOADER_ENTRY), 'w') as f:
        f.write(entry)
    os.makedirs(os.path.join(tree, 'grub2'))
    with open(os.path.join(tree, 'grub2', 'grub.cfg'), 'w') as f:
        f.write(grub_cfg([(LOADER_ENTRY, entry)]))
    with open(os.path.join(tree, 'ignition.firstboot'), 'wb') as f:
        f.write(disk.FIRSTBOOT_CONTENT)
    for dirpath, dirnames, filenames in os.walk(tree):
        for name in dirnames:
            os.chmod(os.path.join(dirpath, name), 0o755)
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), 0o644)


def write_metal(dest, dev_size, payload, root_end=None, say=None):
    """Write the CoreOS-alike metal disk from a live payload onto ``dest``.

    :param dest: block device or image file (already of its final size).
    :param dev_size: its size in bytes.
    :param payload: :func:`load_payload`'s result.
    :param root_end: see :func:`layout`.
    :param say: callable for progress lines, or None.
    :returns: the byte offset where the last partition ends.
    :raises: disk.DiskError if a tool fails or the disk is too small.
    """
    say = say or (lambda message: None)
    is_image = os.path.isfile(dest)
    parts = layout(dev_size, root_end, image=is_image)
    with open(dest, 'r+b') as f:
        f.write(bytes(MIB))
        f.flush()
        os.fsync(f.fileno())
    say('Writing EFI-SYSTEM')
    _write_esp(dest, parts[1][0], parts[1][1], payload['grub_efi'])
    with tempfile.TemporaryDirectory(prefix='standin-boot-') as work:
        say('Writing boot')
        tree = os.path.join(work, 'boot')
        _boot_tree(tree, payload)
        # GRUB 2.06 reads ext4 without these newer features.
        _mke2fs(dest, parts[2][0], parts[2][1], 'boot', tree,
                extra=['-O', '^metadata_csum_seed,^orphan_file'])
    say('Writing root from %s' % payload['root'])
    _mke2fs(dest, parts[3][0], parts[3][1], 'root', payload['root'])
    mib = MIB // SECTOR
    script = 'label: gpt\nunit: sectors\n\n' + ''.join(
        'start=%d, size=%d, type=%s, name="%s"\n' % (
            start * mib, size * mib, ptype, name)
        for start, size, ptype, name in parts)
    disk._run(['sfdisk', '-q', '--no-reread', '--no-tell-kernel',
               '--wipe', 'never', '--wipe-partitions', 'never', dest],
              stdin=script.encode())
    with open(dest, 'r+b') as f:
        os.fsync(f.fileno())
    start, size = parts[3][0], parts[3][1]
    return (start + size) * MIB


def make_image(path, payload_root, size_mib=None):
    """Write the metal disk of a payload root to a new sparse image file.

    :returns: ``path``.
    """
    payload = load_payload(payload_root)
    size_mib = size_mib or (2 + ESP_MIB + BOOT_MIB + IMAGE_ROOT_MIB + 1)
    with open(path, 'wb') as f:
        f.truncate(size_mib * MIB)
    write_metal(path, size_mib * MIB, payload)
    return path


def main(argv=None):
    """``python -m ...standin.metal make-image PATH PAYLOAD_ROOT``.

    ``sign PATH`` writes ``PATH.sig``, the signature the stand-in checks
    for ``--image-url PATH``'s URL.
    """
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog='standin-metal')
    sub = parser.add_subparsers(dest='command', required=True)
    make = sub.add_parser('make-image')
    make.add_argument('path')
    make.add_argument('payload_root')
    make.add_argument('--size-mib', type=int)
    sign = sub.add_parser('sign')
    sign.add_argument('path')
    args = parser.parse_args(argv)
    if args.command == 'sign':
        print(disk.make_signature(args.path))
        return 0
    try:
        make_image(args.path, args.payload_root, args.size_mib)
    except disk.DiskError as exc:
        sys.stderr.write('Error: %s\n' % exc)
        return 1
    print(args.path)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
