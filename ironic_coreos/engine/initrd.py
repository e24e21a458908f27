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

"""The initrd archives CoreOS live media carry their configuration in.

An archive is an xz-compressed "newc" cpio archive, the format
``coreos-installer pxe ignition wrap`` writes and the CoreOS live ISO's
initrd embed area holds:

* every file is a regular file of mode 0600, owned by root, modification
  time 0; the parent directories of every file come first, mode 0755; the
  entries are in path order, numbered (inode) from 0; the archive ends with
  the ``TRAILER!!!`` entry;
* xz with a CRC32 integrity check (the kernel's xz decoder supports no
  other check), compression preset 9.

The kernel unpacks such an archive, appended to the live initramfs or loaded
as a further initrd, over the initramfs.

:func:`read` reads what the kernel reads: a sequence of uncompressed,
xz- or gzip-compressed cpio archives with zero padding between them; a file
given twice counts as its last copy.
"""

import lzma
import zlib

from ironic_coreos.engine import exception

#: Path of the live system's Ignition config inside the archive.
IGNITION_PATH = 'config.ign'
#: Directory the live system's initramfs takes NetworkManager keyfiles from.
NETWORK_DIR = 'etc/coreos-firstboot-network'

_MAGIC = b'070701'
_HEADER_LEN = 110
_TRAILER = 'TRAILER!!!'
_S_IFMT = 0o170000
_S_IFDIR = 0o040000
_S_IFREG = 0o100000
_DIR_MODE = _S_IFDIR | 0o755
_FILE_MODE = _S_IFREG | 0o600
_XZ_MAGIC = b'\xfd7zXZ\x00'
_GZIP_MAGIC = b'\x1f\x8b'
_ZSTD_MAGIC = b'\x28\xb5\x2f\xfd'
#: Decompressed data accepted from one archive (a guard against a
#: decompression bomb in an area that is at most a few MiB).
MAX_UNPACKED = 256 * 1024 * 1024


def _pad4(length):
    return b'\0' * (-length % 4)


def _header(name, ino, mode, nlink, size):
    encoded = name.encode('utf-8')
    fields = (ino, mode, 0, 0, nlink, 0, size, 0, 0, 0, 0,
              len(encoded) + 1, 0)
    header = _MAGIC + b''.join(b'%08x' % value for value in fields)
    header += encoded + b'\0'
    return header + _pad4(len(header))


def _check_path(path):
    parts = path.split('/')
    if (not path or path.startswith('/')
            or any(p in ('', '.', '..') for p in parts)):
        raise exception.LiveMediaError(
            'Invalid path %r for a file in the initrd archive: expected a '
            'relative path without empty, "." or ".." components, like '
            '"%s" or "%s/eth0.nmconnection"'
            % (path, IGNITION_PATH, NETWORK_DIR))
    return parts


def cpio(members):
    """Build the uncompressed newc cpio archive of ``members``.

    :param members: a mapping of relative path to file contents (bytes).
    :returns: the archive as bytes.
    :raises: LiveMediaError if a path is not a plain relative path.
    """
    chunks = []
    cwd = []
    ino = 0
    for path in sorted(members):
        parent = _check_path(path)[:-1]
        common = 0
        while (common < len(cwd) and common < len(parent)
               and cwd[common] == parent[common]):
            common += 1
        cwd = cwd[:common]
        for component in parent[common:]:
            cwd.append(component)
            chunks.append(_header('/'.join(cwd), ino, _DIR_MODE, 1, 0))
            ino += 1
        data = bytes(members[path])
        chunks.append(_header(path, ino, _FILE_MODE, 1, len(data)))
        chunks.append(data)
        chunks.append(_pad4(len(data)))
        ino += 1
    chunks.append(_header(_TRAILER, 0, 0, 1, 0))
    return b''.join(chunks)


def build(members):
    """Build the xz-compressed archive of ``members``.

    :param members: a mapping of relative path to file contents (bytes).
    :returns: the compressed archive as bytes.
    :raises: LiveMediaError if a path is not a plain relative path.
    """
    return lzma.compress(cpio(members), format=lzma.FORMAT_XZ,
                         check=lzma.CHECK_CRC32, preset=9)


def _parse_cpio(data, pos, members, what):
    """Read one cpio archive from ``data[pos:]``; returns the end offset."""
    while True:
        header = data[pos:pos + _HEADER_LEN]
        if len(header) < _HEADER_LEN or header[:6] != _MAGIC:
            raise exception.LiveMediaError(
                '%s: no newc cpio header at offset %d of the archive; '
                'expected an archive written by coreos-installer or '
                'ironic-coreos-live-media' % (what, pos))
        try:
            fields = [int(header[6 + 8 * i:14 + 8 * i], 16)
                      for i in range(13)]
        except ValueError:
            raise exception.LiveMediaError(
                '%s: a cpio header at offset %d has a field that is not '
                'hexadecimal; the archive is corrupt' % (what, pos))
        mode, size, namesize = fields[1], fields[6], fields[11]
        name_start = pos + _HEADER_LEN
        name_end = name_start + namesize
        data_start = name_end + (-(_HEADER_LEN + namesize) % 4)
        data_end = data_start + size
        if namesize == 0 or data_end > len(data):
            raise exception.LiveMediaError(
                '%s: the cpio entry at offset %d runs past the end of the '
                'archive; the archive is truncated or corrupt' % (what, pos))
        raw = data[name_start:name_end]
        try:
            # dracut pads names with further NUL bytes.
            name = raw.rstrip(b'\0').decode('utf-8')
        except UnicodeDecodeError:
            raise exception.LiveMediaError(
                '%s: the cpio entry at offset %d has a name that is not '
                'UTF-8; the archive is corrupt' % (what, pos))
        pos = data_end + (-size % 4)
        if name == _TRAILER:
            return pos
        if mode & _S_IFMT == _S_IFREG:
            members.pop(name, None)
            members[name] = data[data_start:data_end]


def _decompress(data, pos, what):
    """Decompress the xz or gzip stream(s) at ``data[pos:]``.

    :returns: (decompressed bytes, offset after the compressed streams).
    """
    if data.startswith(_XZ_MAGIC, pos):
        decompressor = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
    elif data.startswith(_GZIP_MAGIC, pos):
        decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    elif data.startswith(_ZSTD_MAGIC, pos):
        raise exception.LiveMediaError(
            '%s: the archive at offset %d is zstd-compressed, which this '
            'tool does not read; use an xz-compressed archive' % (what, pos))
    else:
        raise exception.LiveMediaError(
            '%s: unknown data at offset %d; expected a newc cpio archive, '
            'optionally xz- or gzip-compressed' % (what, pos))
    try:
        out = decompressor.decompress(data[pos:], MAX_UNPACKED + 1)
    except (lzma.LZMAError, zlib.error) as exc:
        raise exception.LiveMediaError(
            '%s: the compressed archive at offset %d is corrupt (%s)'
            % (what, pos, exc))
    if len(out) > MAX_UNPACKED:
        raise exception.LiveMediaError(
            '%s: the archive at offset %d unpacks to more than %d bytes; '
            'this is not a configuration archive' % (what, pos, MAX_UNPACKED))
    if not decompressor.eof:
        raise exception.LiveMediaError(
            '%s: the compressed archive at offset %d is truncated'
            % (what, pos))
    end = len(data) - len(decompressor.unused_data)
    return out, end


def read(data, what='initrd'):
    """Read the regular files of an initrd.

    :param data: the initrd: cpio archives, each optionally xz- or
        gzip-compressed, with zero padding between and after them.
    :param what: names the data in error messages.
    :returns: a dict of path to contents, in archive order; a path given
        twice has its last contents.
    :raises: LiveMediaError if the data is not such an initrd.
    """
    data = bytes(data)
    members = {}
    pos = 0
    while True:
        while pos < len(data) and data[pos] == 0:
            pos += 1
        if pos >= len(data):
            return members
        if data.startswith(_MAGIC, pos):
            pos = _parse_cpio(data, pos, members, what)
            continue
        unpacked, pos = _decompress(data, pos, what)
        end = _parse_cpio(unpacked, 0, members, what)
        # Padding after the trailer inside the compressed stream is fine,
        # more data is not.
        if unpacked[end:].strip(b'\0'):
            raise exception.LiveMediaError(
                '%s: data after the end of the cpio archive inside a '
                'compressed stream; the archive is corrupt' % what)


def network_path(name):
    """Path in the archive of the live system's keyfile ``name``.

    :raises: LiveMediaError if ``name`` is not a plain file name ending in
        ``.nmconnection``.
    """
    if (not name or '/' in name or name in ('.', '..')
            or not name.endswith('.nmconnection')
            or name == '.nmconnection'):
        raise exception.LiveMediaError(
            'Invalid keyfile name %r: expected a file name like '
            '"eth0.nmconnection" (NetworkManager reads only *.nmconnection '
            'files); rename the file' % (name,))
    return '%s/%s' % (NETWORK_DIR, name)


def network_files(members):
    """The keyfiles for the live system in ``members``: name -> contents."""
    prefix = NETWORK_DIR + '/'
    return {path[len(prefix):]: data for path, data in members.items()
            if path.startswith(prefix) and '/' not in path[len(prefix):]}
