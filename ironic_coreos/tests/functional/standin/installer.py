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

"""A stand-in for ``coreos-installer install`` in tests.

The real coreos-installer cannot be installed on the test machines. This
program keeps its command line contract (option set, short and long forms,
conflicts, one kernel argument per ``--append-karg``), its output contract
(``Read disk X/Y (N%)`` progress, ``Install complete.``, on failure the
error and a last line ``Error: install failed`` with exit status 1) and its
on-disk effects (the image streamed to the device with the first MiB
written last, ``ignition/config.ign`` 0600 in a 0700 directory on the
``boot`` filesystem, kernel argument edits in the loader entries, copied
network keyfiles, saved partitions, the partition table wiped on failure
unless ``--preserve-on-error``).

It refuses every destination not listed in ``COREOS_STANDIN_ALLOWED_DEVICES``
and anything but regular files and loop devices. Inside the VM lab's live
system (:data:`VM_MARKER` exists and the firmware says QEMU) it also writes
the VM's own virtio disks, whole disks only, and ``--offline`` writes the
CoreOS-alike metal disk from the live system's payload (``metal.py``). See
``README`` next to this file for the environment variables, including fault
injection.

Run as ``python -m ironic_coreos.tests.functional.standin.installer`` or
through the wrapper :func:`write_wrapper` writes.
"""

import argparse
import fcntl
import fnmatch
import hashlib
import json
import lzma
import os
import re
import stat
import sys
import time
import zlib

from ironic_coreos.tests.functional.standin import disk
from ironic_coreos.tests.functional.standin import metal

VERSION = '0.22.0'

ALLOWED_DEVICES_ENV = 'COREOS_STANDIN_ALLOWED_DEVICES'
OFFLINE_IMAGE_ENV = 'COREOS_STANDIN_OFFLINE_IMAGE'
STATE_ENV = 'COREOS_STANDIN_STATE'
NETWORK_DIR_ENV = 'COREOS_STANDIN_NETWORK_DIR'

DEFAULT_NETWORK_DIR = '/etc/NetworkManager/system-connections/'
LOOP_MAJOR = 7
#: Present only in the VM lab's live root: the stand-in runs in a VM.
VM_MARKER = '/usr/lib/coreos-alike/standin-vm-mode'
#: What the firmware of a lab VM reports as its vendor.
VM_VENDOR = 'QEMU'
DMI_VENDOR_FILE = '/sys/class/dmi/id/sys_vendor'
PROC_DEVICES = '/proc/devices'
SYS_DEV_BLOCK = '/sys/dev/block'
BLKRRPART = 0x125F
MIB = disk.MIB
CHUNK = MIB
#: Largest piece of decompressed image held at once.
OUT_CHUNK = 4 * MIB
FETCH_TIMEOUT = 30

XZ_MAGIC = b'\xfd7zXZ\x00'
GZIP_MAGIC = b'\x1f\x8b'
ZSTD_MAGIC = b'\x28\xb5\x2f\xfd'


class InstallError(Exception):
    """An install failure; the message is printed after ``Error: ``."""


class Refused(InstallError):
    """The destination is not one the stand-in may write."""


# --------------------------------------------------------------------------
# command line


def _retries(value):
    if value == 'infinite':
        return -1
    try:
        number = int(value)
    except ValueError:
        number = -2
    if number < 0:
        raise argparse.ArgumentTypeError(
            'invalid value %r: expected a number of retries or "infinite"'
            % value)
    return number


def build_parser():
    """The argument parser: ``coreos-installer [--version] install ...``.

    :returns: an argparse.ArgumentParser.
    """
    parser = argparse.ArgumentParser(
        prog='coreos-installer', allow_abbrev=False,
        description='Installer for Fedora CoreOS and RHEL CoreOS '
                    '(test stand-in: only "install" is implemented)')
    parser.add_argument('-V', '--version', action='version',
                        version='coreos-installer %s' % VERSION)
    sub = parser.add_subparsers(dest='command', metavar='COMMAND')
    sub.required = True
    inst = sub.add_parser('install', allow_abbrev=False,
                          help='Install Fedora CoreOS or RHEL CoreOS')
    inst.add_argument('-c', '--config-file', action='append', default=[],
                      metavar='PATH',
                      help='YAML config file with install options')
    source = inst.add_mutually_exclusive_group()
    source.add_argument('-s', '--stream', metavar='NAME',
                        help='Fedora CoreOS stream')
    source.add_argument('-u', '--image-url', metavar='URL',
                        help='Manually specify the image URL')
    source.add_argument('-f', '--image-file', metavar='PATH',
                        help='Manually specify a local image file')
    source.add_argument('--offline', action='store_true',
                        help='Force offline installation')
    ign = inst.add_mutually_exclusive_group()
    ign.add_argument('-i', '--ignition-file', metavar='PATH',
                     help='Embed an Ignition config from a file')
    ign.add_argument('-I', '--ignition-url', metavar='URL',
                     help='Embed an Ignition config from a URL')
    inst.add_argument('--ignition-hash', metavar='digest',
                      help='Digest (type-value) of the Ignition config')
    inst.add_argument('-a', '--architecture', metavar='name',
                      default=os.uname().machine,
                      help='Target CPU architecture')
    inst.add_argument('-p', '--platform', metavar='name',
                      help='Override the Ignition platform ID')
    inst.add_argument('--console', action='append', default=[],
                      metavar='spec', help='Kernel and bootloader console')
    inst.add_argument('--append-karg', action='append', default=[],
                      metavar='arg', help='Append default kernel arg')
    inst.add_argument('--delete-karg', action='append', default=[],
                      metavar='arg', help='Delete default kernel arg')
    inst.add_argument('-n', '--copy-network', action='store_true',
                      help='Copy network config from install environment')
    inst.add_argument('--network-dir', metavar='path',
                      help='Source directory for --copy-network')
    inst.add_argument('--save-partlabel', action='append', default=[],
                      metavar='lx', help='Save partitions with this label '
                                         'glob')
    inst.add_argument('--save-partindex', action='append', default=[],
                      metavar='id', help='Save partitions with this number '
                                         'or range')
    inst.add_argument('--insecure', action='store_true',
                      help='Allow unsigned image')
    inst.add_argument('--insecure-ignition', action='store_true',
                      help='Allow Ignition URL without HTTPS or hash')
    inst.add_argument('--stream-base-url', metavar='URL',
                      help='Base URL for CoreOS stream metadata')
    inst.add_argument('--preserve-on-error', action='store_true',
                      help="Don't clear partition table on error")
    inst.add_argument('--fetch-retries', type=_retries, default=0,
                      metavar='N', help='Fetch retries, or "infinite"')
    inst.add_argument('--secure-ipl', action='store_true',
                      help='Enable IBM Secure IPL (s390x only)')
    inst.add_argument('--firstboot-args', metavar='args',
                      help=argparse.SUPPRESS)
    inst.add_argument('dest_device', nargs='?', metavar='DEST_DEVICE',
                      help='Destination device')
    return parser


def _config_file_argv(paths):
    """Translate ``--config-file`` YAML files into command line flags.

    Keys are long option names; lists repeat the flag; ``true`` booleans
    become bare flags; ``dest-device`` is the destination.

    :returns: (flags, dest_device or None)
    :raises: InstallError if a file cannot be read or is malformed.
    """
    import yaml

    flags, dest = [], None
    for path in paths:
        try:
            with open(path) as f:
                data = yaml.safe_load(f) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise InstallError('reading config file %s: %s' % (path, exc))
        if not isinstance(data, dict):
            raise InstallError('config file %s: expected a mapping of '
                               'option names to values' % path)
        for key, value in data.items():
            if key == 'dest-device':
                dest = str(value)
            elif isinstance(value, bool):
                if value:
                    flags.append('--' + key)
            elif isinstance(value, list):
                for item in value:
                    flags += ['--' + key, str(item)]
            else:
                flags += ['--' + key, str(value)]
    return flags, dest


def parse_args(argv):
    """Parse a full command line (without the program name).

    :returns: the argparse namespace.
    :raises: SystemExit(2) on usage errors, as argparse does.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.config_file:
        try:
            flags, dest = _config_file_argv(args.config_file)
        except InstallError as exc:
            parser.error(str(exc))
        rest = list(argv[1:])
        if args.dest_device is None and dest is not None:
            rest.append(dest)
        args = parser.parse_args(['install'] + flags + rest)
    if args.dest_device is None:
        parser.error('the following arguments are required: DEST_DEVICE')
    if args.stream_base_url and (args.image_url or args.image_file):
        parser.error('argument --stream-base-url: not allowed with '
                     'argument --image-url or --image-file')
    return args


# --------------------------------------------------------------------------
# state dir: invocation log and fault injection


def _record_invocation(argv):
    """Log this invocation and return the faults to inject (or {})."""
    state = os.environ.get(STATE_ENV)
    if not state:
        return {}
    os.makedirs(state, exist_ok=True)
    with open(os.path.join(state, 'lock'), 'a') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        count_file = os.path.join(state, 'count')
        try:
            with open(count_file) as f:
                count = int(f.read().strip() or 0)
        except (OSError, ValueError):
            count = 0
        # NOTE: only installs count towards faults, so that probes such as
        # ``coreos-installer --version`` do not use up transient failures.
        is_install = bool(argv) and argv[0] == 'install'
        if is_install:
            count += 1
            with open(count_file, 'w') as f:
                f.write('%d\n' % count)
        record = {'argv': list(argv), 'pid': os.getpid(),
                  'time': time.time(),
                  'invocation': count if is_install else None,
                  'env': {k: v for k, v in os.environ.items()
                          if k.startswith('COREOS_STANDIN_') or k == 'PATH'}}
        with open(os.path.join(state, 'invocations.jsonl'), 'a') as f:
            f.write(json.dumps(record, sort_keys=True) + '\n')
    try:
        with open(os.path.join(state, 'faults.json')) as f:
            faults = json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise InstallError('reading %s/faults.json: %s' % (state, exc))
    faults = dict(faults)
    faults['invocation'] = count
    return faults


def _inject_faults(faults):
    """Apply injected faults at the point where the image is fetched."""
    if not faults:
        return
    if faults.get('hang'):
        _say('Stand-in: hanging for %s seconds' % faults['hang'])
        time.sleep(float(faults['hang']))
    if faults.get('permanent'):
        raise InstallError(str(faults['permanent']))
    if faults['invocation'] <= int(faults.get('transient', 0)):
        raise InstallError('downloading image: error sending request: '
                           'connection reset by peer (os error 104)')


# --------------------------------------------------------------------------
# output


def _say(message):
    sys.stderr.write(message + '\n')
    sys.stderr.flush()


def _human(size):
    for unit in ('B', 'KiB', 'MiB', 'GiB'):
        if size < 1024 or unit == 'GiB':
            return ('%d %s' % (size, unit) if unit == 'B'
                    else '%.1f %s' % (size, unit))
        size /= 1024.0


class _Progress(object):
    """``Read disk X/Y (N%)`` lines about once a second."""

    def __init__(self, total):
        self.total = total
        self.done = 0
        self.last = 0.0
        self.printed = None

    def update(self, count, final=False):
        self.done += count
        now = time.monotonic()
        if not final and now - self.last < 1.0:
            return
        if final and self.printed == self.done:
            return
        self.last = now
        self.printed = self.done
        if self.total:
            _say('Read disk %s/%s (%d%%)' % (
                _human(self.done), _human(self.total),
                min(100, self.done * 100 // self.total)))
        else:
            _say('Read disk %s' % _human(self.done))


# --------------------------------------------------------------------------
# destination checks


def _allowed_devices():
    value = os.environ.get(ALLOWED_DEVICES_ENV, '')
    return [os.path.normpath(p) for p in value.split(':')
            if p and os.path.isabs(p)]


def vm_mode():
    """Whether the stand-in runs in a lab VM's live system."""
    return (os.path.exists(VM_MARKER)
            and _read(DMI_VENDOR_FILE) == VM_VENDOR)


def _virtio_major():
    """Block major number of virtio-blk disks, or None."""
    in_block = False
    for line in _read(PROC_DEVICES).splitlines():
        if line.strip() == 'Block devices:':
            in_block = True
            continue
        fields = line.split()
        if in_block and len(fields) == 2 and fields[1] == 'virtblk':
            return int(fields[0])
    return None


def _check_vm_disk(dest, path):
    """In a lab VM: accept a whole virtio disk, refuse anything else."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise InstallError('opening %s: %s' % (dest, exc.strerror))
    major = _virtio_major()
    why = None
    if not stat.S_ISBLK(st.st_mode):
        why = 'not a block device'
    elif major is None or os.major(st.st_rdev) != major:
        why = 'not a virtio disk (block major %d, virtio disks have %s)' % (
            os.major(st.st_rdev), major)
    elif os.path.exists('%s/%d:%d/partition' % (
            SYS_DEV_BLOCK, os.major(st.st_rdev), os.minor(st.st_rdev))):
        why = 'a partition, not a whole disk'
    if why:
        raise Refused("refusing to write to %s: %s; in the lab VM the "
                      "stand-in writes only the VM's own virtio disks "
                      "(/dev/vdX)" % (dest, why))
    return st


def check_destination(dest):
    """Refuse any destination but an allowed regular file or loop device.

    In a lab VM (:func:`vm_mode`) a destination not listed in
    ``COREOS_STANDIN_ALLOWED_DEVICES`` must be a whole virtio disk.

    :param dest: DEST_DEVICE as given.
    :returns: os.stat_result of the resolved destination.
    :raises: Refused if it is not allowed; InstallError if it is missing.
    """
    allowed = _allowed_devices()
    path = os.path.normpath(os.path.abspath(dest))
    if path not in allowed and vm_mode():
        return _check_vm_disk(dest, path)
    if not allowed:
        raise Refused('refusing to write to %s: %s is not set; list the '
                      "test's own virtual disks there (colon-separated "
                      'absolute paths)' % (dest, ALLOWED_DEVICES_ENV))
    if path not in allowed:
        raise Refused('refusing to write to %s: not listed in %s'
                      % (dest, ALLOWED_DEVICES_ENV))
    try:
        st = os.stat(path)
    except OSError as exc:
        raise InstallError('opening %s: %s' % (dest, exc.strerror))
    if stat.S_ISBLK(st.st_mode):
        if os.major(st.st_rdev) != LOOP_MAJOR:
            raise Refused('refusing to write to %s: the stand-in writes only '
                          'loop devices and regular files' % dest)
    elif not stat.S_ISREG(st.st_mode):
        raise Refused('refusing to write to %s: not a block device or a '
                      'regular file' % dest)
    return st


def _loop_name(st):
    """Kernel name of a block device (``loop3``, ``vda``)."""
    link = '/sys/dev/block/%d:%d' % (os.major(st.st_rdev),
                                     os.minor(st.st_rdev))
    if os.path.exists(link):
        return os.path.basename(os.path.realpath(link))
    return 'loop%d' % os.minor(st.st_rdev)


def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ''


def _loop_devices():
    """Attached loop devices: list of (name, backing file)."""
    result = []
    try:
        names = os.listdir('/sys/block')
    except OSError:
        return result
    for name in names:
        if name.startswith('loop'):
            backing = _read('/sys/block/%s/loop/backing_file' % name)
            if backing:
                result.append((name, backing.replace(' (deleted)', '')))
    return result


def _busy(name):
    """Why /dev/<name> (a whole block device) is busy, or None."""
    holders = os.listdir('/sys/block/%s/holders' % name) \
        if os.path.isdir('/sys/block/%s/holders' % name) else []
    try:
        children = os.listdir('/sys/block/%s' % name)
    except OSError:
        children = []
    for part in children:
        if part.startswith(name) and os.path.isdir(
                '/sys/block/%s/%s/holders' % (name, part)):
            holders += os.listdir('/sys/block/%s/%s/holders' % (name, part))
    if holders:
        return '/dev/%s is held by %s' % (name, ', '.join(sorted(holders)))
    devnode = '/dev/' + name
    for table, what in (('/proc/mounts', 'mounted on'),
                        ('/proc/swaps', 'used as swap')):
        for line in _read(table).splitlines():
            fields = line.split()
            if not fields:
                continue
            src = fields[0]
            if src == devnode or re.match(re.escape(devnode) + r'p?\d+$',
                                          src):
                where = fields[1] if what == 'mounted on' else ''
                return ('%s %s %s' % (src, what, where)).strip()
    return None


def check_not_busy(dest, st):
    """Fail when the destination or a view of its backing file is in use.

    A loop device is busy when mounted, used as swap or held (device
    mapper, MD); a file is busy when a loop device over it is. Loop devices
    at an offset of the same file stand for mounted partitions.

    :raises: InstallError("found busy partitions") if so.
    """
    reasons = []
    if stat.S_ISBLK(st.st_mode):
        name = _loop_name(st)
        reason = _busy(name)
        if reason:
            reasons.append(reason)
        # Views of the same data: loops over its backing file or over it.
        backings = {'/dev/' + name}
        backing = _read('/sys/block/%s/loop/backing_file' % name)
        if backing:
            backings.add(backing)
    else:
        backings = {os.path.realpath(dest)}
        for line in _read('/proc/mounts').splitlines():
            fields = line.split()
            if fields and fields[0] in backings:
                reasons.append('%s mounted on %s' % (fields[0], fields[1]))
    for name, other in _loop_devices():
        if other not in backings or (stat.S_ISBLK(st.st_mode)
                                     and name == _loop_name(st)):
            continue
        reason = _busy(name)
        if reason:
            reasons.append('%s (a view of %s)' % (reason, other))
    if reasons:
        raise InstallError('checking for exclusive access to %s: found busy '
                           'partitions: %s' % (dest, '; '.join(reasons)))


def _device_sector_size(st):
    if stat.S_ISBLK(st.st_mode):
        value = _read('/sys/block/%s/queue/logical_block_size'
                      % _loop_name(st))
        if value.isdigit():
            return int(value)
    return 512


# --------------------------------------------------------------------------
# fetching


def _http_get(url, retries, stream=True, missing_ok=False):
    """GET a URL with retries on connection errors.

    :returns: a streaming requests.Response, or None for a 404 when
        missing_ok is set.
    :raises: InstallError on failure.
    """
    import requests

    attempt = 0
    while True:
        try:
            resp = requests.get(url, stream=stream, timeout=FETCH_TIMEOUT)
            if missing_ok and resp.status_code == 404:
                resp.close()
                return None
            resp.raise_for_status()
            return resp
        except requests.HTTPError as exc:
            raise InstallError('fetching %s: %s' % (url, exc))
        except requests.RequestException as exc:
            attempt += 1
            if retries >= 0 and attempt > retries:
                raise InstallError('fetching %s: %s' % (url, exc))
            _say('Error fetching %s: %s; retrying' % (url, exc.__class__
                                                      .__name__))
            time.sleep(min(2 ** attempt, 10) / 10.0)


class _Source(object):
    """An image source: chunks of the stored (maybe compressed) bytes."""

    def __init__(self, description, chunks, total, signature,
                 verify=True):
        self.description = description
        self.chunks = chunks
        self.total = total
        self.signature = signature
        self.verify = verify


def _file_chunks(path):
    with open(path, 'rb') as f:
        while True:
            chunk = f.read(CHUNK)
            if not chunk:
                return
            yield chunk


def _url_source(url, args):
    _say('Downloading image from %s' % url)
    sig = _http_get(url + '.sig', args.fetch_retries, stream=False,
                    missing_ok=True)
    resp = _http_get(url, args.fetch_retries)
    total = resp.headers.get('Content-Length')

    def chunks():
        import requests

        try:
            for chunk in resp.iter_content(CHUNK):
                yield chunk
        except requests.RequestException as exc:
            raise InstallError('downloading image: %s' % exc)
        finally:
            resp.close()
    return _Source(url, chunks(), int(total) if total else None,
                   sig.content if sig is not None else None)


def _stream_source(args):
    stream = args.stream or 'stable'
    if not args.stream_base_url:
        raise InstallError(
            'fetching stream metadata for "%s": the stand-in has no network '
            'access to the stream metadata service; use --stream-base-url, '
            '--image-url, --image-file or --offline' % stream)
    url = '%s/streams/%s.json' % (args.stream_base_url.rstrip('/'), stream)
    resp = _http_get(url, args.fetch_retries, stream=False)
    try:
        formats = resp.json()['architectures'][args.architecture][
            'artifacts']['metal']['formats']
        location = (formats.get('raw.xz') or formats['raw.gz'])['disk'][
            'location']
    except (ValueError, KeyError, TypeError) as exc:
        raise InstallError('parsing stream metadata %s: no metal image for '
                           '%s (%s)' % (url, args.architecture, exc))
    return _url_source(location, args)


def open_source(args):
    """Open the image source selected by the arguments.

    :returns: a _Source.
    :raises: InstallError if it cannot be opened.
    """
    if args.image_file:
        path = args.image_file
        try:
            total = os.stat(path).st_size
            chunks = _file_chunks(path)
            next_chunk = next(chunks, b'')
        except OSError as exc:
            raise InstallError('opening image file %s: %s'
                               % (path, exc.strerror))

        def all_chunks():
            if next_chunk:
                yield next_chunk
            yield from chunks
        try:
            with open(path + '.sig', 'rb') as f:
                sig = f.read()
        except FileNotFoundError:
            sig = None
        _say('Installing image from %s' % path)
        return _Source(path, all_chunks(), total, sig)
    if args.image_url:
        return _url_source(args.image_url, args)
    offline = os.environ.get(OFFLINE_IMAGE_ENV)
    if args.offline or (not args.stream and offline):
        if not offline or not os.path.isfile(offline):
            raise InstallError('cannot perform offline install; metadata '
                               'missing')
        _say('Installing image from the live system (offline)')
        return _Source(offline, _file_chunks(offline),
                       os.stat(offline).st_size, None, verify=False)
    return _stream_source(args)


class _PayloadSource(object):
    """The live system's own payload (the lab VM's ``--offline``)."""

    verify = False
    signature = None

    def __init__(self, root):
        self.description = root
        self.payload = metal.load_payload(root)


def open_offline_payload(args):
    """The live payload when ``--offline`` (or no source) should use it.

    :returns: a _PayloadSource, or None to use :func:`open_source`.
    :raises: InstallError if the payload is unreadable.
    """
    if args.image_file or args.image_url or args.stream:
        return None
    if os.environ.get(OFFLINE_IMAGE_ENV):
        return None
    root = metal.find_payload()
    if root is None:
        return None
    try:
        source = _PayloadSource(root)
    except disk.DiskError as exc:
        raise InstallError('cannot perform offline install: %s' % exc)
    _say('Installing the live system from %s (offline)' % root)
    return source


def _reread_partitions(fd, dest):
    """Tell the kernel about the new partitions (BLKRRPART), with retries."""
    for attempt in range(10):
        try:
            fcntl.ioctl(fd, BLKRRPART)
            return
        except OSError as exc:
            error = exc
            time.sleep(1)
    raise InstallError('rereading the partition table of %s: %s'
                       % (dest, error.strerror or error))


def _decompressed(chunks):
    """Decompress a chunk stream by magic (xz, gzip, or raw)."""
    first = b''
    chunks = iter(chunks)
    for chunk in chunks:
        first += chunk
        if len(first) >= 8:
            break
    if first.startswith(ZSTD_MAGIC):
        raise InstallError('decompressing image: zstd images are not '
                           'supported by the stand-in; use xz or gzip')
    if first.startswith(XZ_MAGIC):
        make = lzma.LZMADecompressor
    elif first.startswith(GZIP_MAGIC):
        def make():
            return zlib.decompressobj(zlib.MAX_WBITS | 16)
    else:
        if first:
            yield first
        yield from chunks
        return
    dec = make()

    def feed(data):
        # NOTE: at most OUT_CHUNK out of each call: a MiB of a gzip'd run
        # of zeros is a GiB decompressed.
        nonlocal dec
        while True:
            if dec.eof:
                if not data:
                    return
                # Concatenated streams (multi-member gzip, xz padding).
                dec = make()
            try:
                out = dec.decompress(data, OUT_CHUNK)
            except (lzma.LZMAError, zlib.error, EOFError) as exc:
                raise InstallError('decompressing image: %s' % exc)
            if out:
                yield out
            if dec.eof:
                data = dec.unused_data
            elif hasattr(dec, 'unconsumed_tail'):
                data = dec.unconsumed_tail
                if not data and len(out) < OUT_CHUNK:
                    return
            else:
                data = b''
                if dec.needs_input:
                    return

    yield from feed(first)
    for chunk in chunks:
        yield from feed(chunk)
    if not dec.eof:
        raise InstallError('decompressing image: truncated stream')


def _check_signature_present(source, insecure):
    """Before writing: a missing signature is fatal unless --insecure."""
    if not source.verify or source.signature is not None:
        return
    if not insecure:
        raise InstallError('fetching signature for %s: not found; use '
                           '--insecure to install without verifying the '
                           'image' % source.description)
    _say('Signature not found; skipping verification as requested')


def _verify_signature(source, digest):
    """Check the stand-in signature against the stored bytes' sha256.

    An unverifiable signature fails even with --insecure.
    """
    if not source.verify or source.signature is None:
        return
    match = disk.SIGNATURE_RE.match(
        source.signature.decode('ascii', errors='replace'))
    if not match or match.group(1) != digest:
        raise InstallError('verifying signature of %s: bad signature (the '
                           'signature does not match the image)'
                           % source.description)
    _say('Signature verified')


# --------------------------------------------------------------------------
# writing


def _image_sector_size(first_mib):
    if first_mib[4096:4104] == b'EFI PART':
        return 4096
    return 512


def write_image(fd, dev_size, source, sector_size, rate=None, stall=None):
    """Stream the image to fd: everything but the first MiB, then it.

    :param fd: the destination, open for writing.
    :param dev_size: size of the destination in bytes.
    :param source: the _Source to read.
    :param sector_size: logical sector size of the destination.
    :param rate: read the source at most this fast (bytes per second).
    :param stall: (bytes, seconds): stop reading for that long once that
        many bytes were read (a stuck download).

    :returns: the number of image bytes written.
    :raises: InstallError on any failure.
    """
    digest = hashlib.sha256()
    progress = _Progress(source.total)

    start = time.monotonic()

    def counted(stall=stall):
        for chunk in source.chunks:
            digest.update(chunk)
            progress.update(len(chunk))
            if rate:
                ahead = progress.done / rate - (time.monotonic() - start)
                if ahead > 0:
                    time.sleep(ahead)
            if stall and progress.done >= stall[0]:
                _say('Stand-in: no more data for %s seconds' % stall[1])
                time.sleep(stall[1])
                stall = None
            yield chunk

    head = bytearray()
    pos = 0
    for data in _decompressed(counted()):
        if not data:
            continue
        if pos < MIB:
            take = min(MIB - pos, len(data))
            head += data[:take]
            data = data[take:]
            pos += take
            if pos == MIB:
                image_sector = _image_sector_size(head)
                if image_sector != sector_size:
                    raise InstallError(
                        'image sector size (%d) does not match disk sector '
                        'size (%d)' % (image_sector, sector_size))
            if not data:
                continue
        if pos + len(data) > dev_size:
            raise InstallError('writing to disk: image (at least %d bytes) '
                               'is larger than the device (%d bytes): No '
                               'space left on device'
                               % (pos + len(data), dev_size))
        os.pwrite(fd, data, pos)
        pos += len(data)
    progress.update(0, final=True)
    if pos == 0:
        raise InstallError('writing to disk: the image is empty')
    _verify_signature(source, digest.hexdigest())
    if len(head) > dev_size:
        raise InstallError('writing to disk: image is larger than the device')
    os.pwrite(fd, bytes(head), 0)
    os.fsync(fd)
    return pos


def wipe_table(fd, dev_size, image_end=None):
    """Zero the first MiB, the last MiB and the image's backup GPT."""
    zeros = bytes(MIB)
    regions = [(0, MIB), (max(0, dev_size - MIB), MIB)]
    if image_end:
        regions.append((max(0, image_end - MIB), MIB))
    for start, length in regions:
        length = min(length, dev_size - start)
        if length > 0:
            os.pwrite(fd, zeros[:length], start)
    os.fsync(fd)


# --------------------------------------------------------------------------
# saved partitions


def _index_ranges(values):
    ranges = []
    for value in values:
        for item in value.split(','):
            match = re.match(r'^(\d*)(-?)(\d*)$', item.strip())
            if not match or not (match.group(1) or match.group(3)):
                raise InstallError('invalid --save-partindex value %r: '
                                   'expected N, N-M, N- or -M' % item)
            low = int(match.group(1) or 1)
            high = (int(match.group(3)) if match.group(3)
                    else (low if not match.group(2) else 1 << 30))
            ranges.append((low, high))
    return ranges


def saved_partitions(dest, args):
    """Partitions of the current table that --save-part* select.

    :returns: list of sfdisk partition dicts with an ``index`` key.
    """
    if not (args.save_partlabel or args.save_partindex):
        return []
    try:
        table = disk.partition_table(dest)
    except disk.DiskError as exc:
        raise InstallError('reading partition table of %s: %s'
                           % (dest, exc))
    if table is None or table.get('label') != 'gpt':
        return []
    globs = [g for value in args.save_partlabel for g in value.split(',')]
    ranges = _index_ranges(args.save_partindex)
    result = []
    for part in table['partitions']:
        index = int(re.search(r'(\d+)$', part['node']).group(1))
        name = part.get('name') or ''
        if (any(fnmatch.fnmatchcase(name, g) for g in globs)
                or any(lo <= index <= hi for lo, hi in ranges)):
            result.append(dict(part, index=index))
    if result:
        _say('Saving partitions: %s' % ', '.join(
            '%d (%s)' % (p['index'], p.get('name') or '') for p in result))
    return result


def _sfdisk_line(part, index):
    line = 'p%d : start=%d, size=%d, type=%s, uuid=%s' % (
        index, part['start'], part['size'], part['type'], part['uuid'])
    if part.get('name'):
        line += ', name="%s"' % part['name'].replace('"', '')
    if part.get('attrs'):
        line += ', attrs="%s"' % part['attrs']
    return line + '\n'


def _write_table(dest, table, parts):
    script = 'label: gpt\nunit: sectors\n'
    if table and table.get('id'):
        script += 'label-id: %s\n' % table['id']
    script += '\n' + ''.join(_sfdisk_line(p, i) for i, p in parts)
    try:
        disk._run(['sfdisk', '-q', '--no-reread', '--no-tell-kernel',
                   '--wipe', 'never', '--wipe-partitions', 'never', dest],
                  stdin=script.encode())
    except disk.DiskError as exc:
        raise InstallError('writing partition table: %s' % exc)


def merge_saved(dest, saved, image_end):
    """Add the saved partitions to the image's partition table."""
    table = disk.partition_table(dest)
    image_parts = [(int(re.search(r'(\d+)$', p['node']).group(1)), p)
                   for p in table['partitions']]
    sector = table.get('sectorsize', 512)
    last = max([(p['start'] + p['size']) * sector for _, p in image_parts]
               + [image_end])
    used = {i for i, _ in image_parts}
    merged = list(image_parts)
    for part in saved:
        if part['start'] * sector < last:
            raise InstallError(
                'saved partition %d (%s) overlaps the image; only '
                'partitions after the end of the image can be saved'
                % (part['index'], part.get('name') or ''))
        index = part['index']
        while index in used:
            index += 1
        used.add(index)
        merged.append((index, part))
    _write_table(dest, table, sorted(merged, key=lambda x: x[0]))


def restore_saved(dest, saved):
    """After a failure: a table holding only the saved partitions."""
    _write_table(dest, None, [(p['index'], p) for p in saved])


# --------------------------------------------------------------------------
# boot filesystem edits


def _ignition_config(args):
    """Read (and JSON-parse) the Ignition config before touching the disk.

    :returns: bytes or None.
    """
    if args.ignition_file:
        try:
            with open(args.ignition_file, 'rb') as f:
                data = f.read()
        except OSError as exc:
            raise InstallError('opening Ignition config %s: %s'
                               % (args.ignition_file, exc.strerror))
    elif args.ignition_url:
        url = args.ignition_url
        if (url.startswith('http://') and not args.ignition_hash
                and not args.insecure_ignition):
            raise InstallError('fetching Ignition config from %s: http '
                               'URLs need --ignition-hash or '
                               '--insecure-ignition' % url)
        if not url.startswith(('http://', 'https://')):
            raise InstallError('unsupported Ignition URL scheme in %s' % url)
        data = _http_get(url, args.fetch_retries, stream=False).content
    else:
        return None
    try:
        json.loads(data)
    except ValueError as exc:
        raise InstallError('parsing Ignition config: %s' % exc)
    if args.ignition_hash:
        match = re.match(r'^(sha256|sha512)-([0-9a-fA-F]+)$',
                         args.ignition_hash)
        if not match:
            raise InstallError('invalid --ignition-hash: expected '
                               'sha256-HEX or sha512-HEX')
    return data


def _check_ignition_hash(data, spec):
    algo, _, expected = spec.partition('-')
    actual = hashlib.new(algo, data).hexdigest()
    if actual != expected.lower():
        raise InstallError('Ignition config hash mismatch: expected %s, got '
                           '%s-%s' % (spec, algo, actual))


def _edit_kargs(words, args):
    words = [w for w in words if w not in set(args.delete_karg)]
    words += list(args.append_karg)
    words += ['console=%s' % c for c in args.console]
    if args.platform:
        words = ['ignition.platform.id=%s' % args.platform
                 if w == 'ignition.platform.id=metal' else w for w in words]
    return words


def edit_boot(dest, args, ignition):
    """Write config.ign, kernel arguments, network files onto ``boot``."""
    try:
        off = disk.find_boot(dest)
    except disk.DiskError as exc:
        raise InstallError('finding boot partition: %s' % exc)
    try:
        if ignition is not None:
            _say('Writing Ignition config')
            if disk.stat_mode(dest, off, '/ignition') is None:
                disk.make_dir(dest, off, '/ignition', 0o700)
            if disk.stat_mode(dest, off, '/ignition/config.ign') is not None:
                raise InstallError('creating ignition/config.ign: File '
                                   'exists (os error 17)')
            disk.write_file(dest, off, '/ignition/config.ign', ignition,
                            0o600)
        if (args.delete_karg or args.append_karg or args.console
                or args.platform):
            _say('Modifying kernel arguments')
            entries = disk.list_dir(dest, off, '/loader/entries') or {}
            confs = sorted(n for n in entries if n.endswith('.conf'))
            if not confs:
                raise InstallError('no boot loader entries in '
                                   'loader/entries on the boot partition')
            for name in confs:
                path = '/loader/entries/' + name
                lines = disk.read_file(dest, off, path).decode().split('\n')
                lines = [('options ' + ' '.join(_edit_kargs(
                    line.split()[1:], args)))
                    if line.split()[:1] == ['options'] else line
                    for line in lines]
                disk.replace_file(dest, off, path,
                                  '\n'.join(lines).encode())
        if args.firstboot_args:
            old = disk.read_file(dest, off, '/ignition.firstboot')
            if old is None:
                raise InstallError('ignition.firstboot is missing on the '
                                   'boot partition')
            line = 'set ignition_network_kcmdline="%s"\n' % (
                args.firstboot_args)
            disk.replace_file(dest, off, '/ignition.firstboot',
                              old + line.encode())
        if args.copy_network:
            _copy_network(dest, off, args)
        metal.refresh_grub_cfg(dest, off)
        disk.fsck(dest, off)
    except disk.DiskError as exc:
        raise InstallError('writing to the boot partition: %s' % exc)


def _copy_network(dest, off, args):
    src = (args.network_dir or os.environ.get(NETWORK_DIR_ENV)
           or DEFAULT_NETWORK_DIR)
    try:
        names = sorted(os.listdir(src))
    except OSError as exc:
        raise InstallError('reading network config directory %s: %s'
                           % (src, exc.strerror))
    target = '/coreos-firstboot-network'
    if disk.stat_mode(dest, off, target) is None:
        disk.make_dir(dest, off, target, 0o755)
    for name in names:
        path = os.path.join(src, name)
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            continue
        _say('Copying networking configuration from %s' % path)
        with open(path, 'rb') as f:
            disk.write_file(dest, off, '%s/%s' % (target, name), f.read(),
                            st.st_mode & 0o7777)


# --------------------------------------------------------------------------
# install


def install(args, faults):
    """Run ``install``; raises InstallError on failure."""
    if args.secure_ipl and args.architecture != 's390x':
        raise InstallError('--secure-ipl is only supported on s390x')
    st = check_destination(args.dest_device)
    dest = os.path.normpath(os.path.abspath(args.dest_device))
    ignition = _ignition_config(args)
    check_not_busy(dest, st)
    saved = saved_partitions(dest, args)

    flags = os.O_WRONLY | os.O_CLOEXEC
    if stat.S_ISBLK(st.st_mode):
        flags |= os.O_EXCL
    try:
        fd = os.open(dest, flags)
    except OSError as exc:
        raise InstallError('opening %s: %s' % (dest, exc.strerror))
    image_end = None
    try:
        try:
            dev_size = os.lseek(fd, 0, os.SEEK_END)
            _inject_faults(faults)
            payload = open_offline_payload(args)
            if payload is not None:
                # The filesystem tools open the disk themselves.
                os.close(fd)
                fd = os.open(dest, os.O_WRONLY | os.O_CLOEXEC)
                root_end = (min(p['start'] * 512 for p in saved)
                            if saved else None)
                image_end = metal.write_metal(dest, dev_size,
                                              payload.payload, root_end,
                                              say=_say)
            else:
                source = open_source(args)
                _check_signature_present(source, args.insecure)
                image_end = write_image(
                    fd, dev_size, source, _device_sector_size(st),
                    rate=float(faults.get('throttle') or 0),
                    stall=((int(faults['stall_after']),
                            float(faults.get('stall', 3600)))
                           if 'stall_after' in faults else None))
            if faults.get('sync_delay'):
                # NOTE: a real install spends a while in the final sync.
                time.sleep(float(faults['sync_delay']))
            if faults.get('permanent_after_write'):
                raise InstallError(str(faults['permanent_after_write']))
            if saved:
                merge_saved(dest, saved, image_end)
            edit_boot(dest, args, ignition)
            if ignition is not None and args.ignition_hash:
                _check_ignition_hash(ignition, args.ignition_hash)
            os.fsync(fd)
            if stat.S_ISBLK(st.st_mode) and vm_mode():
                _reread_partitions(fd, dest)
        except Exception as exc:
            # NOTE: whatever went wrong once the device is open, the
            # failure contract holds: report, then wipe unless asked not to.
            if isinstance(exc, OSError):
                exc = 'writing to disk: %s' % (exc.strerror or exc)
            elif not isinstance(exc, (InstallError, disk.DiskError)):
                exc = 'internal error in the stand-in: %r' % exc
            _say('Error: %s' % exc)
            if args.preserve_on_error:
                _say('Preserving partition table as requested')
            else:
                _say('Resetting partition table')
                wipe_table(fd, dev_size, image_end)
                if saved:
                    _say('Restoring saved partitions')
                    restore_saved(dest, saved)
            raise InstallError('install failed')
    finally:
        os.close(fd)
    _say('Install complete.')


def main(argv=None):
    """Entry point: ``coreos-installer install ...``.

    :param argv: arguments without the program name (default sys.argv).
    :returns: exit status (0 success, 1 failure, 2 usage error).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        faults = _record_invocation(argv)
    except InstallError as exc:
        _say('Error: %s' % exc)
        return 1
    args = parse_args(argv)
    try:
        install(args, faults)
    except Exception as exc:
        if not isinstance(exc, InstallError):
            _say('Error: internal error in the stand-in: %r' % exc)
        elif str(exc) != 'install failed':
            _say('Error: %s' % exc)
        _say('Error: install failed')
        return 1
    return 0


def write_wrapper(bin_dir, python=sys.executable):
    """Write an executable ``coreos-installer`` that runs this stand-in.

    :param bin_dir: directory to put it in (created if needed).
    :param python: interpreter that can import ironic_coreos.
    :returns: path of the wrapper.
    :raises: ValueError if the interpreter path cannot be a shebang.
    """
    if re.search(r'\s', python) or len(python) > 120:
        raise ValueError('interpreter path %r cannot be used in a #! line'
                         % python)
    top = os.path.dirname(os.path.dirname(os.path.abspath(
        sys.modules['ironic_coreos'].__file__)))
    os.makedirs(bin_dir, exist_ok=True)
    path = os.path.join(bin_dir, 'coreos-installer')
    with open(path, 'w') as f:
        f.write('#!%s\n'
                '# coreos-installer stand-in for ironic-coreos tests '
                '(generated by write_wrapper)\n'
                'import sys\n'
                'sys.path.insert(0, %r)\n'
                'from ironic_coreos.tests.functional.standin import '
                'installer\n'
                'sys.exit(installer.main())\n' % (python, top))
    os.chmod(path, 0o755)
    return path


if __name__ == '__main__':
    sys.exit(main())
