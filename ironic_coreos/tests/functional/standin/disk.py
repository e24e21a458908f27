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

"""Disk tooling for the coreos-installer stand-in.

Builds a small raw GPT disk image laid out like a CoreOS metal image
(BIOS-BOOT, EFI-SYSTEM, ``boot`` and ``root`` partitions), signs it in the
format the stand-in verifies, and inspects a disk (image file or loop
device) after an install.

Everything works by byte offset: the kernels these tests run on have no
partition-table support and no vfat, so partitions are never mounted.
``sfdisk`` reads the table, ``blkid -p -O OFFSET`` probes filesystems and
``debugfs 'DEVICE?offset=N'`` reads and writes the ext4 ``boot``
filesystem.
"""

import gzip
import hashlib
import json
import lzma
import os
import re
import subprocess
import tempfile

SECTOR = 512
MIB = 1024 * 1024

#: GPT partition type GUIDs used by the image.
BIOS_BOOT_TYPE = '21686148-6449-6E6F-744E-656564454649'
EFI_SYSTEM_TYPE = 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B'
LINUX_FS_TYPE = '0FC63DAF-8483-4772-8E79-3D69D8477DE4'

#: Name of the boot loader entry in the image.
LOADER_ENTRY = 'ostree-1-fedora-coreos.conf'

#: Kernel arguments on the ``options`` line of the image's loader entry.
#: ``mitigations=auto,nosmt`` holds a comma on purpose: it is one argument.
DEFAULT_KARGS = (
    'mitigations=auto,nosmt',
    'ignition.platform.id=metal',
    '$ignition_firstboot',
    'ostree=/ostree/boot.1/fedora-coreos/0123456789abcdef/0',
    'root=LABEL=root',
    'rw',
    'rootflags=prjquota',
    'boot=LABEL=boot',
)

#: Content of ``ignition.firstboot`` in a freshly built image.
FIRSTBOOT_CONTENT = b'# Ignition runs on the boot after this file appears\n'

#: Format of the stand-in's signature files: one line, the sha256 of the
#: signed file (as stored, i.e. compressed when the image is compressed).
SIGNATURE_PREFIX = 'coreos-installer-standin-signature sha256='
SIGNATURE_RE = re.compile(r'^coreos-installer-standin-signature '
                          r'sha256=([0-9a-f]{64})\s*$')

OS_RELEASE = (
    'NAME="Fedora Linux"\n'
    'VERSION="40.20240101.3.0 (CoreOS)"\n'
    'ID=fedora\n'
    'VERSION_ID=40\n'
    'VARIANT="CoreOS"\n'
    'VARIANT_ID=coreos\n'
    'PRETTY_NAME="Fedora CoreOS 40.20240101.3.0 (stand-in image)"\n'
    'OSTREE_VERSION=\'40.20240101.3.0\'\n'
)

_DEBUGFS_BANNER = re.compile(r'^debugfs \d+\.\d+')
_ZERO_CHUNK = bytes(MIB)


class DiskError(Exception):
    """A disk tool failed or the disk does not look as expected."""


def _run(argv, stdin=None, check=True):
    """Run a command (argv list, never a shell) and capture its output.

    :param argv: the command line as a list.
    :param stdin: bytes to feed on standard input, or None.
    :param check: raise DiskError when the command exits non-zero.
    :returns: the CompletedProcess (stdout and stderr as bytes).
    :raises: DiskError if check is set and the command fails.
    """
    proc = subprocess.run(argv, input=stdin, capture_output=True,
                          check=False)
    if check and proc.returncode != 0:
        raise DiskError('%s failed with exit status %d: %s' % (
            argv[0], proc.returncode,
            proc.stderr.decode(errors='replace').strip()))
    return proc


def _fs_spec(device, offset):
    """Name of the filesystem at ``offset`` of ``device`` for e2fsprogs."""
    if '?' in device:
        raise DiskError('device path %r contains "?"; e2fsprogs cannot '
                        'address it by offset, use another path' % device)
    return '%s?offset=%d' % (device, offset)


def debugfs(device, offset, command, write=False):
    """Run debugfs command(s) on the ext4 filesystem at a byte offset.

    debugfs exits 0 even when its command fails, so anything on stderr but
    its version banner is treated as a failure.

    :param device: disk image file or block device.
    :param offset: byte offset of the filesystem on the device.
    :param command: the debugfs request, e.g. ``'stat /ignition'``, or a
        list of requests run in one debugfs session.
    :param write: open the filesystem read-write.
    :returns: debugfs's standard output (bytes).
    :raises: DiskError if debugfs reports an error.
    """
    argv = ['debugfs']
    if write:
        argv.append('-w')
    if isinstance(command, str):
        argv += ['-R', command, _fs_spec(device, offset)]
        stdin = None
    else:
        argv += ['-f', '-', _fs_spec(device, offset)]
        stdin = ''.join(c + '\n' for c in command).encode()
    proc = _run(argv, stdin=stdin, check=False)
    errors = [line for line in
              proc.stderr.decode(errors='replace').splitlines()
              if line.strip() and not _DEBUGFS_BANNER.match(line)]
    if proc.returncode != 0 or errors:
        raise DiskError('debugfs %r failed: %s' % (
            command, '; '.join(errors) or 'exit status %d' % proc.returncode))
    return proc.stdout


def fsck(device, offset):
    """Check the ext4 filesystem at ``offset`` read-only (``e2fsck -fn``).

    :raises: DiskError if the filesystem has errors.
    """
    proc = _run(['e2fsck', '-fn', _fs_spec(device, offset)], check=False)
    if proc.returncode != 0:
        raise DiskError('e2fsck found problems in the filesystem at offset '
                        '%d of %s: %s' % (offset, device,
                                          proc.stdout.decode(errors='replace')
                                          .strip()))


def stat_mode(device, offset, path):
    """Mode bits (including the file type) of ``path``, or None if absent.

    :raises: DiskError if debugfs fails for another reason.
    """
    try:
        out = debugfs(device, offset, 'stat "%s"' % path)
    except DiskError as exc:
        if 'File not found' in str(exc):
            return None
        raise
    match = re.search(r'Type:\s+(\S+)\s+Mode:\s+([0-7]+)',
                      out.decode(errors='replace'))
    if not match:
        raise DiskError('cannot read the mode of %s from debugfs' % path)
    kind = {'regular': 0o100000, 'directory': 0o040000,
            'symlink': 0o120000}.get(match.group(1), 0)
    return kind | int(match.group(2), 8)


def read_file(device, offset, path):
    """Contents of ``path`` in the ext4 filesystem at ``offset``.

    :returns: the bytes, or None if the file does not exist.
    :raises: DiskError if debugfs fails for another reason.
    """
    if stat_mode(device, offset, path) is None:
        return None
    return debugfs(device, offset, 'cat "%s"' % path)


def list_dir(device, offset, path):
    """Entries of a directory in the ext4 filesystem at ``offset``.

    :returns: dict name -> mode (with file type bits); None if absent.
    :raises: DiskError if debugfs fails for another reason.
    """
    if stat_mode(device, offset, path) is None:
        return None
    entries = {}
    out = debugfs(device, offset, 'ls -p "%s"' % path)
    for line in out.decode(errors='replace').splitlines():
        # /inode/mode/uid/gid/name/size/
        parts = line.strip().split('/')
        if len(parts) < 7 or parts[5] in ('.', '..', ''):
            continue
        name = '/'.join(parts[5:-2])
        entries[name] = int(parts[2], 8)
    return entries


def write_file(device, offset, path, contents, mode):
    """Create ``path`` (must not exist) with ``contents`` and ``mode``.

    :param mode: permission bits, e.g. 0o600.
    :raises: DiskError if the file exists or debugfs fails.
    """
    if stat_mode(device, offset, path) is not None:
        raise DiskError('%s already exists' % path)
    fd, src = tempfile.mkstemp(prefix='standin-')
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, 'wb') as f:
            f.write(contents)
        debugfs(device, offset, 'write "%s" "%s"' % (src, path), write=True)
    finally:
        os.unlink(src)
    set_mode(device, offset, path, 0o100000 | mode)


def replace_file(device, offset, path, contents, mode=None):
    """Replace the contents of an existing file, keeping its mode.

    :raises: DiskError if the file is missing or debugfs fails.
    """
    old = stat_mode(device, offset, path)
    if old is None:
        raise DiskError('%s does not exist' % path)
    debugfs(device, offset, 'rm "%s"' % path, write=True)
    write_file(device, offset, path, contents,
               (old & 0o7777) if mode is None else mode)


def make_dir(device, offset, path, mode):
    """Create directory ``path`` (must not exist) with ``mode``.

    :raises: DiskError if it exists or debugfs fails.
    """
    if stat_mode(device, offset, path) is not None:
        raise DiskError('%s already exists' % path)
    debugfs(device, offset, 'mkdir "%s"' % path, write=True)
    set_mode(device, offset, path, 0o040000 | mode)


def set_mode(device, offset, path, mode):
    """Set the full mode (type and permission bits) and root ownership."""
    debugfs(device, offset, [
        'set_inode_field "%s" mode 0%o' % (path, mode),
        'set_inode_field "%s" uid 0' % path,
        'set_inode_field "%s" gid 0' % path], write=True)


def partition_table(path):
    """The partition table of a disk as ``sfdisk --json`` reports it.

    :returns: the ``partitiontable`` dict, or None if there is none.
    :raises: DiskError if sfdisk fails for another reason.
    """
    proc = _run(['sfdisk', '--json', path], check=False)
    if proc.returncode != 0:
        err = proc.stderr.decode(errors='replace')
        if 'does not contain a recognized partition table' in err:
            return None
        raise DiskError('sfdisk --json %s failed: %s' % (path, err.strip()))
    return json.loads(proc.stdout)['partitiontable']


def probe(path, offset, size=None):
    """Probe the filesystem at ``offset`` with ``blkid -p``.

    :returns: dict of blkid's export values (TYPE, LABEL, UUID, ...); empty
        when nothing is recognised.
    """
    argv = ['blkid', '-p', '-o', 'export', '-O', str(offset)]
    if size:
        argv += ['-S', str(size)]
    proc = _run(argv + [path], check=False)
    if proc.returncode not in (0, 2):
        raise DiskError('blkid failed on %s at offset %d: %s' % (
            path, offset, proc.stderr.decode(errors='replace').strip()))
    values = {}
    for line in proc.stdout.decode(errors='replace').splitlines():
        key, sep, value = line.partition('=')
        if sep and key != 'DEVNAME':
            values[key] = value
    return values


def partitions(path):
    """The partitions of a disk with their filesystems.

    :returns: list of dicts with ``index`` (1-based), ``start`` and ``size``
        in bytes, ``name`` (GPT PARTLABEL), ``type``, ``uuid``, ``label``
        (filesystem label or None) and ``fstype`` (or None); empty list when
        the disk has no partition table.
    """
    table = partition_table(path)
    if table is None:
        return []
    sector = table.get('sectorsize', SECTOR)
    result = []
    for part in table.get('partitions', []):
        index = int(re.search(r'(\d+)$', part['node']).group(1))
        start = part['start'] * sector
        size = part['size'] * sector
        fs = probe(path, start, size)
        result.append({'index': index, 'start': start, 'size': size,
                       'name': part.get('name'), 'type': part.get('type'),
                       'uuid': part.get('uuid'),
                       'label': fs.get('LABEL'), 'fstype': fs.get('TYPE')})
    return result


def find_boot(path):
    """Byte offset of the one partition whose filesystem label is ``boot``.

    :raises: DiskError if there is no such partition or more than one.
    """
    boots = [p for p in partitions(path) if p['label'] == 'boot']
    if len(boots) != 1:
        raise DiskError('expected exactly one partition with filesystem '
                        'label "boot" on %s, found %d' % (path, len(boots)))
    return boots[0]['start']


def _mkfs_ext4(image, size, label, tree):
    """Make an ext4 filesystem file of ``size`` bytes populated from tree."""
    with open(image, 'wb') as f:
        f.truncate(size)
    _run(['mke2fs', '-q', '-F', '-t', 'ext4', '-b', '4096', '-L', label,
          '-E', 'root_owner=0:0', '-d', tree, image])


def _mkfs_vfat(image, size, label):
    """Make a FAT filesystem file; returns False if the tools are missing."""
    with open(image, 'wb') as f:
        f.truncate(size)
    try:
        _run(['mkfs.vfat', '-n', label, image])
    except (OSError, DiskError):
        return False
    try:
        _run(['mmd', '-i', image, '::/EFI', '::/EFI/fedora'])
    except (OSError, DiskError):
        pass
    return True


def _write_tree(root, files):
    """Write ``files`` (relative path -> bytes) under ``root``."""
    for rel, contents in files.items():
        full = os.path.join(root, rel)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, 'wb') as f:
            f.write(contents)
        os.chmod(full, 0o644)


def _copy_in(src, dest, offset):
    """Copy file ``src`` into ``dest`` at ``offset``, skipping zero MiBs.

    The destination is a fresh sparse file, so skipped runs stay zero.
    """
    with open(src, 'rb') as fin, open(dest, 'r+b') as fout:
        pos = offset
        while True:
            chunk = fin.read(MIB)
            if not chunk:
                break
            if chunk != _ZERO_CHUNK[:len(chunk)]:
                fout.seek(pos)
                fout.write(chunk)
            pos += len(chunk)


def loader_entry(kargs=DEFAULT_KARGS):
    """Text of the image's boot loader entry with the given kernel args."""
    return ('title Fedora CoreOS 40.20240101.3.0 (ostree:0)\n'
            'version 1\n'
            'options %s\n'
            'linux /ostree/fedora-coreos-0123456789abcdef/vmlinuz-6.8.5\n'
            'initrd /ostree/fedora-coreos-0123456789abcdef/'
            'initramfs-6.8.5.img\n' % ' '.join(kargs))


def make_image(path, size_mib=64, compress=None, boot_mib=16, efi_mib=4):
    """Build the raw GPT disk image the stand-in installs.

    Layout (like a CoreOS metal image, smaller): 1 BIOS-BOOT (1 MiB),
    2 EFI-SYSTEM (vfat, label EFI-SYSTEM), 3 boot (ext4, label ``boot``,
    with ``loader/entries/ostree-1-fedora-coreos.conf`` and
    ``ignition.firstboot``), 4 root (ext4, label ``root``, with
    ``etc/os-release``) up to the last MiB.

    :param path: where to write the image (sparse when uncompressed).
    :param size_mib: size of the raw image in MiB.
    :param compress: None, ``'xz'`` or ``'gzip'``: compress the image and
        write the compressed stream to ``path``.
    :param boot_mib: size of the boot partition in MiB.
    :param efi_mib: size of the EFI system partition in MiB.
    :returns: ``path``.
    :raises: DiskError if a tool fails; ValueError for bad arguments.
    """
    if compress not in (None, 'xz', 'gzip'):
        raise ValueError('compress must be None, "xz" or "gzip", not %r'
                         % (compress,))
    root_mib = size_mib - 2 - efi_mib - boot_mib - 1
    if root_mib < 8:
        raise ValueError('size_mib=%d is too small: need at least %d MiB'
                         % (size_mib, size_mib - root_mib + 8))
    with tempfile.TemporaryDirectory(prefix='standin-image-') as work:
        raw = path if compress is None else os.path.join(work, 'disk.raw')
        with open(raw, 'wb') as f:
            f.truncate(size_mib * MIB)
        mib = MIB // SECTOR
        layout = [
            (1, 1, BIOS_BOOT_TYPE, 'BIOS-BOOT'),
            (2, efi_mib, EFI_SYSTEM_TYPE, 'EFI-SYSTEM'),
            (2 + efi_mib, boot_mib, LINUX_FS_TYPE, 'boot'),
            (2 + efi_mib + boot_mib, root_mib, LINUX_FS_TYPE, 'root'),
        ]
        script = 'label: gpt\nunit: sectors\n\n' + ''.join(
            'start=%d, size=%d, type=%s, name="%s"\n' % (
                start * mib, size * mib, ptype, name)
            for start, size, ptype, name in layout)
        _run(['sfdisk', '-q', '--no-reread', '--no-tell-kernel',
              '--wipe', 'never', raw], stdin=script.encode())

        efi = os.path.join(work, 'efi.img')
        if _mkfs_vfat(efi, efi_mib * MIB, 'EFI-SYSTEM'):
            _copy_in(efi, raw, layout[1][0] * MIB)

        boot_tree = os.path.join(work, 'boot')
        _write_tree(boot_tree, {
            'loader/entries/' + LOADER_ENTRY: loader_entry().encode(),
            'ignition.firstboot': FIRSTBOOT_CONTENT,
            'ostree/fedora-coreos-0123456789abcdef/vmlinuz-6.8.5':
                b'stand-in kernel\n',
            'ostree/fedora-coreos-0123456789abcdef/initramfs-6.8.5.img':
                b'stand-in initramfs\n',
            'grub2/grub.cfg': b'# stand-in: boots loader/entries via BLS\n'
                              b'blscfg\n',
        })
        boot = os.path.join(work, 'boot.img')
        _mkfs_ext4(boot, boot_mib * MIB, 'boot', boot_tree)
        _copy_in(boot, raw, layout[2][0] * MIB)

        root_tree = os.path.join(work, 'root')
        _write_tree(root_tree, {
            'etc/os-release': OS_RELEASE.encode(),
            'etc/hostname': b'localhost\n',
            'usr/lib/os-release': OS_RELEASE.encode(),
            'usr/bin/README': b'stand-in root filesystem\n',
        })
        root = os.path.join(work, 'root.img')
        _mkfs_ext4(root, root_mib * MIB, 'root', root_tree)
        _copy_in(root, raw, layout[3][0] * MIB)

        if compress is not None:
            opener = (lzma.open(path, 'wb', preset=1) if compress == 'xz'
                      else gzip.open(path, 'wb', compresslevel=1))
            with open(raw, 'rb') as fin, opener as fout:
                while True:
                    chunk = fin.read(MIB)
                    if not chunk:
                        break
                    fout.write(chunk)
    return path


def file_sha256(path):
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        while True:
            chunk = f.read(MIB)
            if not chunk:
                break
            digest.update(chunk)
    return digest.hexdigest()


def make_signature(image_path, sig_path=None):
    """Write the signature the stand-in accepts for ``image_path``.

    The stand-in's "signature" is the sha256 of the file as stored (the
    compressed stream for a compressed image); a signature of any other
    content is unverifiable, like a GPG signature by the wrong key.

    :param image_path: the (possibly compressed) image.
    :param sig_path: where to write it; default ``image_path + '.sig'``.
    :returns: the path of the signature file.
    """
    sig_path = sig_path or image_path + '.sig'
    with open(sig_path, 'w') as f:
        f.write('%s%s\n' % (SIGNATURE_PREFIX, file_sha256(image_path)))
    return sig_path


def _parse_os_release(text):
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition('=')
        if sep and not key.startswith('#'):
            values[key.strip()] = value.strip().strip('"\'')
    return values


def inspect_disk(path):
    """Describe what is on a disk after an install.

    :param path: disk image file or block device.
    :returns: dict with

        - ``table``: the ``sfdisk --json`` partition table, or None if
          there is none (wiped);
        - ``partitions``: see :func:`partitions`;
        - ``labels``: filesystem labels in partition order;
        - ``boot_offset``: byte offset of the ``boot`` filesystem or None
          (no or several partitions labelled ``boot``);
        - ``ignition``: bytes of ``ignition/config.ign`` or None;
        - ``ignition_mode`` / ``ignition_dir_mode``: permission bits of
          the file and of the ``ignition`` directory, or None;
        - ``loader_entries``: entry file name -> ``options`` words;
        - ``kargs``: the ``options`` words of the first entry (or None);
        - ``firstboot``: text of ``ignition.firstboot`` or None;
        - ``firstboot_network``: file name -> {``contents``, ``mode``}
          from ``coreos-firstboot-network/`` (None when absent);
        - ``os_release``: dict from the root filesystem's
          ``etc/os-release`` or None.
    :raises: DiskError if a tool fails unexpectedly.
    """
    result = {'table': partition_table(path), 'partitions': [],
              'labels': [], 'boot_offset': None, 'ignition': None,
              'ignition_mode': None, 'ignition_dir_mode': None,
              'loader_entries': {}, 'kargs': None, 'firstboot': None,
              'firstboot_network': None, 'os_release': None}
    if result['table'] is None:
        return result
    parts = partitions(path)
    result['partitions'] = parts
    result['labels'] = [p['label'] for p in parts]
    roots = [p for p in parts
             if p['label'] == 'root' and p['fstype'] == 'ext4']
    if len(roots) == 1:
        root = roots[0]['start']
        name = '/etc/os-release'
        # os-release(5): /etc/os-release may be a symlink to
        # ../usr/lib/os-release (as on Debian); debugfs does not follow it.
        if (stat_mode(path, root, name) or 0) & 0o170000 == 0o120000:
            name = '/usr/lib/os-release'
        text = read_file(path, root, name)
        if text is not None:
            result['os_release'] = _parse_os_release(
                text.decode(errors='replace'))
    boots = [p for p in parts if p['label'] == 'boot']
    if len(boots) != 1:
        return result
    off = result['boot_offset'] = boots[0]['start']

    dir_mode = stat_mode(path, off, '/ignition')
    if dir_mode is not None:
        result['ignition_dir_mode'] = dir_mode & 0o7777
    file_mode = stat_mode(path, off, '/ignition/config.ign')
    if file_mode is not None:
        result['ignition_mode'] = file_mode & 0o7777
        result['ignition'] = debugfs(path, off,
                                     'cat "/ignition/config.ign"')

    entries = list_dir(path, off, '/loader/entries') or {}
    for name in sorted(entries):
        if not name.endswith('.conf'):
            continue
        text = read_file(path, off, '/loader/entries/' + name)
        options = None
        for line in text.decode(errors='replace').splitlines():
            if line.startswith('options'):
                options = line.split()[1:]
        result['loader_entries'][name] = options
    if result['loader_entries']:
        result['kargs'] = next(iter(result['loader_entries'].values()))

    firstboot = read_file(path, off, '/ignition.firstboot')
    if firstboot is not None:
        result['firstboot'] = firstboot.decode(errors='replace')

    net = list_dir(path, off, '/coreos-firstboot-network')
    if net is not None:
        result['firstboot_network'] = {
            name: {'contents': read_file(
                path, off, '/coreos-firstboot-network/' + name),
                'mode': mode & 0o7777}
            for name, mode in net.items()}
    return result


def _jsonable(value):
    if isinstance(value, bytes):
        return value.decode(errors='replace')
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def main(argv=None):
    """Command line: ``make-image`` and ``inspect``.

    ``python -m ironic_coreos.tests.functional.standin.disk make-image PATH
    [--size-mib N] [--compress xz|gzip] [--sign]`` builds an image;
    ``... inspect DEVICE`` prints :func:`inspect_disk` as JSON (file
    contents as text; modes in octal).

    :returns: exit status.
    """
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog='standin-disk')
    sub = parser.add_subparsers(dest='command', required=True)
    make = sub.add_parser('make-image')
    make.add_argument('path')
    make.add_argument('--size-mib', type=int, default=64)
    make.add_argument('--compress', choices=('xz', 'gzip'))
    make.add_argument('--sign', action='store_true')
    insp = sub.add_parser('inspect')
    insp.add_argument('device')
    args = parser.parse_args(argv)
    try:
        if args.command == 'make-image':
            make_image(args.path, args.size_mib, args.compress)
            if args.sign:
                make_signature(args.path)
            print(args.path)
        else:
            info = inspect_disk(args.device)
            for key in ('ignition_mode', 'ignition_dir_mode'):
                if info[key] is not None:
                    info[key] = '0%o' % info[key]
            for item in (info['firstboot_network'] or {}).values():
                item['mode'] = '0%o' % item['mode']
            print(json.dumps(_jsonable(info), indent=2, sort_keys=True))
    except (DiskError, ValueError) as exc:
        sys.stderr.write('Error: %s\n' % exc)
        return 1
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
