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

"""Per-node CoreOS live media: the embed areas of a live ISO.

A CoreOS live ISO reserves writable areas for per-node configuration, in
the formats ``coreos-installer iso ignition embed``, ``iso network embed``
and ``iso kargs modify`` use, so that media written here and there are
interchangeable:

* the **initrd embed area**: ``coreos/igninfo.json`` names a file (and
  optionally an ``offset`` and ``length`` inside it); ISOs without it use the
  whole ``images/ignition.img``, very old ones only say where it is in a
  ``coreiso+`` header in the ISO 9660 system area. The area is zero-filled,
  or holds an xz-compressed cpio archive (:mod:`initrd`) with the live
  system's Ignition config (``config.ign``) and NetworkManager keyfiles
  (``etc/coreos-firstboot-network/*.nmconnection``), then zeros;
* the **kernel argument areas**: ``coreos/kargs.json`` lists the areas
  (``size`` bytes at ``offset`` in each named file, padded with ``pad``,
  the last byte ``end``) and the default arguments; ISOs of 2021 describe
  them in a ``coreKarg`` header in the system area. Every area holds the
  same arguments.

Live media are handled as *regions*: :meth:`LiveISO.open` finds the areas
and reads only them; changes build new area contents and check that they
fit; :meth:`LiveISO.write` then writes only the modified areas, in place or
into a new file streamed from the original with the areas substituted. No
byte outside an area is ever written, and an ISO is never read into memory.
Every problem raises :class:`~ironic_coreos.engine.exception.LiveMediaError`
before anything is written.
"""

import collections
import errno
import json
import os
import struct

from ironic_coreos.engine import exception
from ironic_coreos.engine import initrd
from ironic_coreos.engine import jsondepth

SECTOR = 2048
_SYSTEM_AREA = 16 * SECTOR
_INITRD_HEADER_MAGIC = b'coreiso+'
_INITRD_HEADER_SIZE = 24
_KARGS_HEADER_MAGIC = b'coreKarg'
_KARGS_HEADER_SIZE = 72
_KARGS_HEADER_OFFSETS = 6
_MAX_DESCRIPTORS = 32
#: Largest kernel argument area coreos-installer accepts.
KARGS_MAX_SIZE = 2048
IGNINFO_PATH = 'COREOS/IGNINFO.JSO'
KARGS_INFO_PATH = 'COREOS/KARGS.JSO'
FEATURES_PATH = 'COREOS/FEATURES.JSO'
DEFAULT_INITRD_PATH = 'IMAGES/IGNITION.IMG'
#: Largest JSON description file read from an ISO.
_MAX_INFO = 64 * 1024
#: Largest initrd embed area read (real ISOs have 256 KiB).
MAX_INITRD_AREA = 64 * 1024 * 1024
#: Chunk size of the streamed copy.
CHUNK = 1024 * 1024
_ZERO_CHUNK = bytes(CHUNK)

Region = collections.namedtuple('Region', ['offset', 'length', 'pad', 'end'])
Region.__doc__ = """A kernel argument area: ``length`` bytes at ``offset``
in the ISO, padded with ``pad``, its last byte ``end``."""


def _error(message, *args):
    return exception.LiveMediaError(message % args if args else message)


def _pread(stream, offset, length, what, name):
    stream.seek(offset)
    data = stream.read(length)
    if len(data) != length:
        raise _error('%s: %s (%d bytes at offset %d) is beyond the end of '
                     'the file (%d bytes read); the ISO is truncated: '
                     'download it again', name, what, length, offset,
                     len(data))
    return data


class _IsoFs(object):
    """The ISO 9660 directory records needed to find the embed areas.

    Reads only the volume descriptors and the directories on the way to a
    file, like coreos-installer does.
    """

    # NOTE: not pycdlib (used for config drives): it parses the whole tree
    # and refuses the s390x live ISOs ("duplicate name"), which
    # coreos-installer reads.

    def __init__(self, stream, size, name):
        self.stream = stream
        self.name = name
        pvd = None
        for index in range(_MAX_DESCRIPTORS):
            offset = _SYSTEM_AREA + index * SECTOR
            descriptor = self._read(offset, SECTOR, 'a volume descriptor',
                                    not_iso=True)
            if descriptor[1:6] != b'CD001' or descriptor[0] == 255:
                break
            if descriptor[0] == 1:
                pvd = descriptor
                break
        if pvd is None:
            raise _error('%s: not an ISO 9660 image (no primary volume '
                         'descriptor from offset %d); give a CoreOS live ISO '
                         '(*-live.x86_64.iso or *-live-iso.*.iso)',
                         name, _SYSTEM_AREA)
        block_size = struct.unpack_from('<H', pvd, 128)[0]
        if block_size != SECTOR:
            raise _error('%s: ISO 9660 logical block size %d is not %d; '
                         'this is not a CoreOS live ISO', name, block_size,
                         SECTOR)
        blocks = struct.unpack_from('<I', pvd, 80)[0]
        if blocks * SECTOR > size:
            raise _error('%s: the ISO is truncated: its volume is %d bytes '
                         'but the file has %d; download it again', name,
                         blocks * SECTOR, size)
        self.size = size
        self.root = self._record(pvd[156:190], 0)[1:]

    def _read(self, offset, length, what, not_iso=False):
        self.stream.seek(offset)
        data = self.stream.read(length)
        if len(data) != length:
            if not_iso:
                raise _error('%s: not an ISO 9660 image (only %d bytes); '
                             'give a CoreOS live ISO', self.name,
                             offset + len(data))
            raise _error('%s: %s is beyond the end of the file; the ISO is '
                         'truncated: download it again', self.name, what)
        return data

    def _record(self, data, pos):
        """Parse the record at ``data[pos:]``: (name, is_dir, extent, size)."""
        length = data[pos]
        if length < 34 or pos + length > len(data):
            raise _error('%s: a corrupt ISO 9660 directory record; download '
                         'the ISO again', self.name)
        extent, size = struct.unpack_from('<I4xI', data, pos + 2)
        flags = data[pos + 25]
        name_len = data[pos + 32]
        raw = data[pos + 33:pos + 33 + name_len]
        name = raw.decode('ascii', 'replace').upper()
        if name.endswith(';1'):
            name = name[:-2]
        if name.endswith('.'):
            name = name[:-1]
        return name, bool(flags & 2), extent * SECTOR, size

    def _entries(self, offset, size, what):
        if size > 16 * 1024 * 1024:
            raise _error('%s: the directory %s is %d bytes; the ISO is '
                         'corrupt', self.name, what, size)
        data = self._read(offset, size, 'the directory %s' % what)
        pos = 0
        while pos < len(data):
            if data[pos] == 0:
                # Records do not cross sectors: the rest is padding.
                pos = (pos // SECTOR + 1) * SECTOR
                continue
            entry = self._record(data, pos)
            pos += data[pos]
            if entry[0] not in ('\x00', '\x01'):
                yield entry

    def lookup(self, path):
        """(offset, size) of the file at ``path``, or None if absent."""
        is_dir, offset, size = self.root
        parts = path.upper().split('/')
        for index, part in enumerate(parts):
            want_dir = index < len(parts) - 1
            for name, entry_dir, entry_offset, entry_size in self._entries(
                    offset, size, '/'.join(parts[:index]) or '/'):
                if name == part:
                    if entry_dir != want_dir:
                        return None
                    offset, size = entry_offset, entry_size
                    break
            else:
                return None
        return offset, size

    def read_json(self, path):
        """The JSON document in file ``path``, or None if absent."""
        found = self.lookup(path)
        if found is None:
            return None
        offset, size = found
        if size > _MAX_INFO:
            raise _error('%s: %s is %d bytes, larger than any CoreOS ISO has; '
                         'the ISO is corrupt', self.name, path, size)
        data = self._read(offset, size, path)
        if jsondepth.text_deeper_than(data, 32):
            raise _error('%s: %s nests more than 32 levels deep; the ISO is '
                         'corrupt', self.name, path)
        try:
            # kargs.json may be padded with spaces or zeros.
            return json.loads(data.rstrip(b'\0 ').decode('utf-8'))
        except (ValueError, UnicodeDecodeError) as exc:
            raise _error('%s: %s is not valid JSON (%s); the ISO is corrupt',
                         self.name, path, exc)


class KargsAreas(object):
    """The kernel argument areas of a live ISO.

    :ivar source: ``kargs.json`` or ``coreKarg header``.
    :ivar length: the size of every area in bytes.
    :ivar default: the default kernel arguments.
    :ivar regions: the areas, as :class:`Region`, in offset order.
    :ivar kargs: the current kernel arguments.
    """

    def __init__(self, source, length, default, regions, kargs):
        self.source = source
        self.length = length
        self.default = default
        self.regions = regions
        self.kargs = kargs

    @staticmethod
    def parse(data, pad, end):
        text = data.decode('utf-8', 'strict')
        return text.rstrip(pad).rstrip(end).strip()

    def contents(self, kargs, name):
        """The new contents of every area for ``kargs``: [(offset, bytes)].

        :raises: LiveMediaError if the arguments do not fit.
        """
        kargs = kargs.strip()
        if any(c in kargs for c in '\n\r\0'):
            raise _error('Kernel arguments must be one line without NUL '
                         'bytes; remove the line breaks')
        encoded = kargs.encode('utf-8')
        if len(encoded) >= self.length:
            raise _error('%s: the kernel arguments are %d bytes but the '
                         'kernel argument areas hold %d (including the '
                         'line end); remove arguments, or pass long ones '
                         'in the Ignition config instead', name,
                         len(encoded), self.length - 1)
        out = []
        for region in self.regions:
            body = encoded + region.end.encode('utf-8')
            fill = region.pad.encode('utf-8')
            out.append((region.offset,
                        body + fill * (self.length - len(body))))
        return out


class InitrdArea(object):
    """The initrd embed area of a live ISO.

    :ivar source: ``igninfo.json``, ``ignition.img`` or ``coreiso+ header``.
    :ivar file: the ISO 9660 path of the file holding the area.
    :ivar offset: the offset of the area in the ISO.
    :ivar length: the size of the area.
    :ivar members: the files in the embedded archive (path -> bytes).
    """

    def __init__(self, source, file, offset, length, members):
        self.source = source
        self.file = file
        self.offset = offset
        self.length = length
        self.members = members


def edit_kargs(kargs, append=(), replace=(), delete=()):
    """Edit a kernel command line like ``coreos-installer iso kargs modify``.

    Deletes first (every occurrence of the argument, or of the sequence of
    arguments, given), then appends, then replaces ``KEY=OLD=NEW`` (every
    ``KEY=OLD`` becomes ``KEY=NEW``).

    :returns: the new command line.
    :raises: LiveMediaError if a replacement is not ``KEY=OLD=NEW``.
    """
    words = kargs.split()
    for item in delete:
        gone = item.split()
        if not gone:
            continue
        kept = []
        i = 0
        while i < len(words):
            if words[i:i + len(gone)] == gone:
                i += len(gone)
            else:
                kept.append(words[i])
                i += 1
        words = kept
    for item in append:
        words.extend(item.split())
    for item in replace:
        parts = item.split('=')
        if len(parts) != 3 or not all(parts) or item != item.strip():
            raise _error('Invalid kernel argument replacement %r: expected '
                         'KEY=OLD=NEW, for example console=ttyS0=ttyS1',
                         item)
        old = '%s=%s' % (parts[0], parts[1])
        new = '%s=%s' % (parts[0], parts[2])
        words = [new if w == old else w for w in words]
    return ' '.join(words)


class LiveISO(object):
    """A CoreOS live ISO's embed areas, read from a file.

    Use :meth:`open`; change the areas with :meth:`set_ignition`,
    :meth:`set_keyfiles`, :meth:`set_kargs`; then :meth:`write`.

    :ivar path: the ISO's file name.
    :ivar size: the ISO's size in bytes.
    :ivar initrd: the :class:`InitrdArea`.
    :ivar kargs_areas: the :class:`KargsAreas`, or None for ISOs without.
    :ivar features: the ISO's ``coreos/features.json`` (empty if absent).
    :ivar headers: what the system-area headers say (for ``show``).
    """

    def __init__(self, path, size, initrd_area, kargs_areas, features,
                 headers):
        self.path = path
        self.size = size
        self.initrd = initrd_area
        self.kargs_areas = kargs_areas
        self.features = features
        self.headers = headers
        self._members = dict(initrd_area.members)
        self._kargs = kargs_areas.kargs if kargs_areas else None
        self._initrd_modified = False
        self._kargs_modified = False
        self._built = None

    # Reading

    @classmethod
    def open(cls, path):
        """Find and read the embed areas of the ISO at ``path``.

        :raises: LiveMediaError if the file is not a CoreOS live ISO with an
            initrd embed area, is truncated, or its areas are corrupt.
        """
        try:
            with open(path, 'rb') as stream:
                size = os.fstat(stream.fileno()).st_size
                return cls._read(stream, path, size)
        except OSError as exc:
            raise _error('%s: cannot read the ISO: %s', path,
                         exc.strerror or exc)

    @classmethod
    def _read(cls, stream, name, size):
        iso = _IsoFs(stream, size, name)
        system = _pread(stream, 0, _SYSTEM_AREA, 'the system area', name)
        headers = _system_headers(system)
        area = _initrd_area(iso, headers, name)
        kargs = _kargs_areas(iso, headers, stream, name)
        features = iso.read_json(FEATURES_PATH) or {}
        if not isinstance(features, dict):
            features = {}
        return cls(name, size, area, kargs, features, headers)

    @property
    def ignition(self):
        """The embedded Ignition config (bytes), or None."""
        return self._members.get(initrd.IGNITION_PATH)

    @property
    def keyfiles(self):
        """The embedded keyfiles for the live system: name -> bytes."""
        return initrd.network_files(self._members)

    @property
    def members(self):
        """Every file of the embedded archive: path -> bytes."""
        return dict(self._members)

    @property
    def kargs(self):
        """The current kernel arguments, or None without kargs areas."""
        return self._kargs

    @property
    def default_kargs(self):
        """The default kernel arguments, or None without kargs areas."""
        return self.kargs_areas.default if self.kargs_areas else None

    @property
    def supports_network(self):
        """Whether the live initramfs reads the embedded keyfiles."""
        return bool(self.features.get('live-initrd-network'))

    @property
    def modified(self):
        return self._initrd_modified or self._kargs_modified

    # Changing

    def set_ignition(self, config, replace=False):
        """Embed ``config`` (bytes) as the live system's Ignition config.

        :param replace: replace an embedded config; without it an ISO that
            already has one is refused.
        :raises: LiveMediaError if the ISO has a config and not ``replace``.
        """
        if self.ignition is not None and not replace:
            raise _error('%s already has an embedded Ignition config; give '
                         'replace (--replace) to overwrite it, or start '
                         'from the original ISO', self.path)
        self._members[initrd.IGNITION_PATH] = bytes(config)
        self._initrd_modified = True

    def remove_ignition(self):
        """Remove the embedded Ignition config, if any."""
        if self._members.pop(initrd.IGNITION_PATH, None) is not None:
            self._initrd_modified = True

    def set_keyfiles(self, keyfiles, replace=False):
        """Embed NetworkManager keyfiles for the live system.

        Embedded keyfiles are all replaced by ``keyfiles``, like
        ``coreos-installer iso network embed``.

        :param keyfiles: a mapping of file name (``NAME.nmconnection``) to
            contents (bytes).
        :param replace: replace embedded keyfiles; without it an ISO that
            already has some is refused.
        :raises: LiveMediaError if the ISO's live system does not read
            keyfiles, has keyfiles and not ``replace``, or a name is wrong.
        """
        if not self.supports_network:
            raise _error('%s: this CoreOS release does not read network '
                         'keyfiles embedded in the ISO (no live-initrd-'
                         'network in coreos/features.json); use a CoreOS '
                         'live ISO from 2021-12 or later, or configure the '
                         'network with kernel arguments (ip=...)', self.path)
        if self.keyfiles and not replace:
            raise _error('%s already has embedded network keyfiles (%s); '
                         'give replace (--replace) to overwrite them',
                         self.path, ', '.join(sorted(self.keyfiles)))
        paths = {name: initrd.network_path(name) for name in keyfiles}
        for path in [p for p in self._members
                     if p.startswith(initrd.NETWORK_DIR + '/')]:
            del self._members[path]
        for name, path in paths.items():
            self._members[path] = bytes(keyfiles[name])
        self._initrd_modified = True

    def clear_initrd(self):
        """Remove everything from the initrd embed area."""
        if self._members:
            self._members = {}
            self._initrd_modified = True

    def require_kargs(self):
        """Raise LiveMediaError, saying why, if the ISO has no kargs areas."""
        if self.kargs_areas is None:
            raise _error('%s has no kernel argument areas (CoreOS live ISOs '
                         'from before 2021-01, and s390x ISOs before '
                         '2023-07, have none); use a newer ISO, or set the '
                         'arguments on the boot loader or in the Ignition '
                         'config', self.path)

    def set_kargs(self, kargs):
        """Set the live system's kernel arguments.

        :raises: LiveMediaError if the ISO has no kargs areas or the
            arguments do not fit.
        """
        self.require_kargs()
        self.kargs_areas.contents(kargs, self.path)
        self._kargs = kargs.strip()
        self._kargs_modified = True

    def modify_kargs(self, append=(), replace=(), delete=()):
        """Edit the current kernel arguments (see :func:`edit_kargs`)."""
        self.require_kargs()
        self.set_kargs(edit_kargs(self._kargs, append=append,
                                  replace=replace, delete=delete))

    def reset_kargs(self):
        """Set the kernel arguments back to the ISO's defaults."""
        self.require_kargs()
        self.set_kargs(self.kargs_areas.default)

    # Writing

    def regions(self):
        """The modified areas' new contents: [(offset, bytes)], sorted.

        :raises: LiveMediaError if the new archive does not fit its area.
        """
        out = []
        if self._initrd_modified:
            area = self.initrd
            key = sorted(self._members.items())
            if self._built is None or self._built[0] != key:
                self._built = (key, initrd.build(self._members)
                               if self._members else b'')
            data = self._built[1]
            if len(data) > area.length:
                raise _error('%s: the compressed initrd archive (Ignition '
                             'config and keyfiles) is %d bytes but the '
                             'initrd embed area (%s) holds %d; make the '
                             'config smaller, e.g. fetch large files from '
                             'a URL (ignition.config.url= or "source" URLs) '
                             'instead of embedding them', self.path,
                             len(data), area.file, area.length)
            out.append((area.offset, data + bytes(area.length - len(data))))
        if self._kargs_modified:
            out.extend(self.kargs_areas.contents(self._kargs, self.path))
        out.sort()
        return out

    def write(self, output=None, in_place=False):
        """Write the modified areas.

        :param output: a new file to write (must not exist; created 0600,
            streamed from the original with the areas substituted), or a
            binary stream (e.g. standard output) to stream the ISO to.
        :param in_place: write the modified areas into the ISO itself.
        :returns: the number of bytes of areas written.
        :raises: LiveMediaError if the areas do not fit, the output exists,
            or the ISO changed or cannot be read; nothing is left behind.
        """
        if (output is None) == (not in_place):
            raise _error('Give exactly one of an output file and in-place')
        regions = self.regions()
        if in_place:
            return self._write_in_place(regions)
        if hasattr(output, 'write'):
            with self._open_source() as source:
                _stream(source, output, regions, self.size, self.path,
                        sparse=False)
            return sum(len(data) for _offset, data in regions)
        return self._write_new(output, regions)

    def _open_source(self):
        try:
            source = open(self.path, 'rb')
        except OSError as exc:
            raise _error('%s: cannot read the ISO: %s', self.path,
                         exc.strerror or exc)
        if os.fstat(source.fileno()).st_size != self.size:
            source.close()
            raise _error('%s changed size since it was read; run again',
                         self.path)
        return source

    def _write_in_place(self, regions):
        try:
            fd = os.open(self.path, os.O_RDWR)
        except OSError as exc:
            raise _error('%s: cannot open the ISO for writing: %s', self.path,
                         exc.strerror or exc)
        try:
            if os.fstat(fd).st_size != self.size:
                raise _error('%s changed size since it was read; run again',
                             self.path)
            for offset, data in regions:
                if os.pwrite(fd, data, offset) != len(data):
                    raise _error('%s: short write at offset %d', self.path,
                                 offset)
            os.fsync(fd)
        except OSError as exc:
            raise _error('%s: writing the areas failed: %s', self.path,
                         exc.strerror or exc)
        finally:
            os.close(fd)
        return sum(len(data) for _offset, data in regions)

    def _write_new(self, output, regions):
        output = os.fspath(output)
        if os.path.lexists(output):
            raise _error('%s already exists; remove it or choose another '
                         'output file', output)
        directory = os.path.dirname(os.path.abspath(output))
        temp = os.path.join(directory, '.%s.%d.tmp'
                            % (os.path.basename(output), os.getpid()))
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise _error('%s: cannot create the output: %s', output,
                         exc.strerror or exc)
        try:
            with os.fdopen(fd, 'wb') as sink, self._open_source() as source:
                _stream(source, sink, regions, self.size, self.path,
                        sparse=True)
                sink.flush()
                os.fsync(sink.fileno())
            try:
                # A hard link never replaces an existing file.
                os.link(temp, output)
            except OSError as exc:
                if exc.errno == errno.EEXIST:
                    raise _error('%s already exists; remove it or choose '
                                 'another output file', output)
                raise
        except OSError as exc:
            raise _error('%s: writing the output failed: %s', output,
                         exc.strerror or exc)
        finally:
            try:
                os.unlink(temp)
            except OSError:
                pass
        return sum(len(data) for _offset, data in regions)


def _next_data(fd, pos, end):
    """The next span of ``fd`` that holds data, from ``pos`` on.

    :returns: (start, stop), or None if only a hole is left before
        ``end``. Holes read as zeros.
    """
    try:
        start = os.lseek(fd, pos, os.SEEK_DATA)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            # Only a hole up to the end of the file.
            return None
        # No hole support: everything is data.
        return pos, end
    if start >= end:
        return None
    try:
        stop = os.lseek(fd, start, os.SEEK_HOLE)
    except OSError:
        stop = end
    return start, min(stop, end)


def _copy(source, sink, pos, end, name, sparse):
    """Copy bytes ``pos`` to ``end`` of ``source`` (an fd) to ``sink``.

    Holes of the source are not read; with ``sparse`` they (and chunks of
    zeros) become holes of the sink, else zeros are written.
    """
    def zeros(count):
        if sparse:
            sink.seek(count, os.SEEK_CUR)
            return
        while count > 0:
            sink.write(_ZERO_CHUNK[:min(CHUNK, count)])
            count -= CHUNK

    while pos < end:
        span = _next_data(source, pos, end)
        if span is None:
            zeros(end - pos)
            return
        start, stop = span
        zeros(start - pos)
        pos = start
        while pos < stop:
            chunk = os.pread(source, min(CHUNK, stop - pos), pos)
            if not chunk:
                raise _error('%s ended early while copying; the ISO changed '
                             'or is truncated', name)
            if sparse and chunk == _ZERO_CHUNK[:len(chunk)]:
                sink.seek(len(chunk), os.SEEK_CUR)
            else:
                sink.write(chunk)
            pos += len(chunk)


def _stream(source, sink, regions, size, name, sparse):
    """Copy ``source`` to ``sink`` with ``regions`` substituted."""
    fd = source.fileno()
    cursor = 0
    for offset, data in regions:
        _copy(fd, sink, cursor, offset, name, sparse)
        sink.write(data)
        cursor = offset + len(data)
    _copy(fd, sink, cursor, size, name, sparse)
    if sparse:
        sink.truncate(size)


def _system_headers(system):
    """What the coreiso+ and coreKarg headers of the system area say."""
    headers = {}
    start = _SYSTEM_AREA - _INITRD_HEADER_SIZE
    header = system[start:_SYSTEM_AREA]
    if header[:8] == _INITRD_HEADER_MAGIC:
        offset, length = struct.unpack_from('<QQ', header, 8)
        headers['coreiso+'] = {'offset': offset, 'length': length}
    start -= _KARGS_HEADER_SIZE
    header = system[start:start + _KARGS_HEADER_SIZE]
    if header[:8] == _KARGS_HEADER_MAGIC:
        values = struct.unpack_from('<%dQ' % (2 + _KARGS_HEADER_OFFSETS),
                                    header, 8)
        offsets = []
        for value in values[2:]:
            if value == 0:
                break
            offsets.append(value)
        headers['coreKarg'] = {'length': values[0], 'default': values[1],
                               'offsets': offsets}
    return headers


def _initrd_area(iso, headers, name):
    info = iso.read_json(IGNINFO_PATH)
    if info is not None:
        if (not isinstance(info, dict) or not isinstance(info.get('file'),
                                                         str)):
            raise _error('%s: %s has no "file"; the ISO is corrupt', name,
                         IGNINFO_PATH)
        file_path = info['file'].upper()
        found = iso.lookup(file_path)
        if found is None:
            raise _error('%s: %s names %s, which is not on the ISO; the ISO '
                         'is corrupt', name, IGNINFO_PATH, info['file'])
        file_offset, file_size = found
        inner = info.get('offset', 0)
        length = info.get('length', file_size - inner
                          if isinstance(inner, int) else None)
        if (not isinstance(inner, int) or not isinstance(length, int)
                or inner < 0 or length <= 0 or inner + length > file_size):
            raise _error('%s: %s gives an area outside %s; the ISO is '
                         'corrupt', name, IGNINFO_PATH, info['file'])
        source, offset = 'igninfo.json', file_offset + inner
    else:
        found = iso.lookup(DEFAULT_INITRD_PATH)
        header = headers.get('coreiso+')
        if found is not None:
            source, file_path = 'ignition.img', DEFAULT_INITRD_PATH
            offset, length = found
        elif header is not None:
            source, file_path = 'coreiso+ header', None
            offset, length = header['offset'], header['length']
        else:
            raise _error('%s: not a CoreOS live ISO: it has no initrd embed '
                         'area (neither coreos/igninfo.json nor '
                         'images/ignition.img); give a CoreOS live ISO '
                         '(Fedora CoreOS or RHCOS *-live*.iso)', name)
    if length > MAX_INITRD_AREA:
        raise _error('%s: the initrd embed area is %d bytes, more than a '
                     'CoreOS ISO has; the ISO is corrupt', name, length)
    if offset + length > iso.size:
        raise _error('%s: the initrd embed area (%d bytes at %d) is beyond '
                     'the end of the file; the ISO is truncated: download it '
                     'again', name, length, offset)
    data = _pread(iso.stream, offset, length, 'the initrd embed area', name)
    members = {}
    if data.strip(b'\0'):
        members = initrd.read(data, '%s: initrd embed area' % name)
    return InitrdArea(source, file_path, offset, length, members)


def _kargs_areas(iso, headers, stream, name):
    info = iso.read_json(KARGS_INFO_PATH)
    if info is not None:
        return _kargs_from_json(iso, info, stream, name)
    header = headers.get('coreKarg')
    if header is None:
        return None
    length = header['length']
    _check_kargs_size(length, name)
    default_data = _pread(stream, header['default'], length,
                          'the default kernel arguments', name)
    default = _parse_area(default_data, '#', '\n', name)
    regions = [Region(offset, length, '#', '\n')
               for offset in header['offsets']]
    return _build_kargs('coreKarg header', length, default, regions, stream,
                        name)


def _check_kargs_size(size, name):
    if not isinstance(size, int) or not 0 < size <= KARGS_MAX_SIZE:
        raise _error('%s: kernel argument area size %r is not between 1 and '
                     '%d; the ISO is corrupt', name, size, KARGS_MAX_SIZE)


def _parse_area(data, pad, end, name):
    try:
        return KargsAreas.parse(data, pad, end)
    except UnicodeDecodeError:
        raise _error('%s: a kernel argument area is not UTF-8 text; the ISO '
                     'is corrupt', name)


def _kargs_from_json(iso, info, stream, name):
    try:
        size = info['size']
        default = info['default']
        files = list(info['files'])
    except (KeyError, TypeError):
        raise _error('%s: %s lacks "size", "default" or "files"; the ISO is '
                     'corrupt', name, KARGS_INFO_PATH)
    _check_kargs_size(size, name)
    if not isinstance(default, str) or len(default.encode('utf-8')) > size:
        raise _error('%s: the default kernel arguments in %s do not fit '
                     'the %d-byte areas; the ISO is corrupt', name,
                     KARGS_INFO_PATH, size)
    regions = []
    for item in files:
        try:
            path, inner = item['path'], item['offset']
            pad, end = item.get('pad', '#'), item.get('end', '\n')
        except (KeyError, TypeError, AttributeError):
            raise _error('%s: an entry of "files" in %s lacks "path" or '
                         '"offset"; the ISO is corrupt', name,
                         KARGS_INFO_PATH)
        found = iso.lookup(str(path).upper())
        if found is None:
            raise _error('%s: %s names %s, which is not on the ISO; the ISO '
                         'is corrupt', name, KARGS_INFO_PATH, path)
        for char in (pad, end):
            if not isinstance(char, str) or len(char.encode('utf-8')) != 1:
                raise _error('%s: %s has a "pad" or "end" that is not one '
                             'character; the ISO is corrupt', name,
                             KARGS_INFO_PATH)
        if not isinstance(inner, int) or inner < 0 or \
                inner + size > found[1]:
            raise _error('%s: %s gives an area outside %s; the ISO is '
                         'corrupt', name, KARGS_INFO_PATH, path)
        regions.append(Region(found[0] + inner, size, pad, end))
    regions.sort()
    return _build_kargs('kargs.json', size, default, regions, stream, name)


def _build_kargs(source, length, default, regions, stream, name):
    if not regions:
        raise _error('%s: the kernel argument areas are listed without any '
                     'area; the ISO is corrupt', name)
    current = None
    for region in regions:
        data = _pread(stream, region.offset, length,
                      'a kernel argument area', name)
        kargs = _parse_area(data, region.pad, region.end, name)
        if current is None:
            current = kargs
        elif kargs != current:
            # The arguments are not shown: they may hold credentials.
            raise _error('%s: the kernel argument areas at offsets %d and '
                         '%d disagree; the ISO is corrupt: download it '
                         'again', name, regions[0].offset, region.offset)
    return KargsAreas(source, length, default, regions, current)


def wrap(ignition=None, keyfiles=None):
    """The initrd ``coreos-installer pxe ignition wrap`` writes.

    Append it to the live initramfs (``cat initramfs.img wrap.img``) or load
    it as a second initrd.

    :param ignition: the live system's Ignition config (bytes), or None.
    :param keyfiles: NetworkManager keyfiles for the live system, name ->
        bytes (like ``pxe network wrap``).
    :returns: the xz-compressed cpio archive (bytes).
    :raises: LiveMediaError if there is nothing to wrap or a name is wrong.
    """
    members = {}
    if ignition is not None:
        members[initrd.IGNITION_PATH] = bytes(ignition)
    for name, data in (keyfiles or {}).items():
        members[initrd.network_path(name)] = bytes(data)
    if not members:
        raise _error('Nothing to wrap: give an Ignition config, keyfiles '
                     'or both')
    return initrd.build(members)
