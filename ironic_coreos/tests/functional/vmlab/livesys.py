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

"""The CoreOS-alike live system of the VM lab: build it, boot it.

:func:`build` runs ``tools/build-live-system.sh`` (cached by a hash of its
inputs) and returns the paths of what it made; :func:`kernel_args` gives
the kernel command line the live system needs, for Ironic's
``kernel_append_params`` or a direct kernel boot. See ``README.rst`` next
to this file for what is made and how it differs from Fedora CoreOS.
"""

import json
import os
import subprocess

TOP_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__),
                                       '..', '..', '..', '..'))
BUILD_SCRIPT = os.path.join(TOP_DIR, 'tools', 'build-live-system.sh')

#: Kernel arguments of every live boot (before the Ignition and rootfs
#: arguments). ``ip=dhcp rd.neednet=1``: the initramfs brings the network
#: up to fetch the Ignition config and the root squashfs.
LIVE_KARGS = (
    'rw',
    'ip=dhcp',
    'rd.neednet=1',
    'ignition.firstboot',
    'ignition.platform.id=metal',
    'console=ttyS0,115200n8',
)

#: Guest memory a live system running the agent container wants (MiB).
LIVE_MEMORY_MIB = 3072

#: In the initramfs's kernel log on the console when Ignition is done.
IGNITION_DONE = 'Reached target ignition-complete.target'


class LiveSystem(object):
    """Paths of a built live system (all in one cache directory).

    ``kernel``, ``initramfs`` (without the root), ``rootfs`` (a cpio
    archive holding ``root.squashfs``, to append to the initramfs or to
    serve for ``coreos.live.rootfs_url=``), ``grub_efi``, ``metal`` (the
    installed system as a sparse raw GPT disk image), ``metal_gz`` (the
    same, gzip-compressed, with its stand-in signature at
    ``metal_gz + '.sig'``: for ``--image-url``) and ``info`` (the build's
    ``build.json``).
    """

    def __init__(self, directory):
        self.directory = directory
        self.kernel = os.path.join(directory, 'vmlinuz')
        self.initramfs = os.path.join(directory, 'initramfs.img')
        self.rootfs = os.path.join(directory, 'rootfs.img')
        self.grub_efi = os.path.join(directory, 'BOOTX64.EFI')
        self.metal = os.path.join(directory, 'metal.raw')
        self.metal_gz = os.path.join(directory, 'metal.raw.gz')
        with open(os.path.join(directory, 'build.json')) as f:
            self.info = json.load(f)

    def __repr__(self):
        return 'LiveSystem(%r)' % self.directory


def build(log=None):
    """Build (or find in the cache) the live system.

    Needs root and the packages of ``tools/install-deps.sh``. The first
    build takes several minutes (the Debian root file system alone about
    four); a cached one returns at once.

    :param log: a file object for the build's output, or None (inherit).
    :returns: a LiveSystem.
    :raises: RuntimeError with the build's last output if it fails.
    """
    proc = subprocess.run([BUILD_SCRIPT], stdout=subprocess.PIPE,
                          stderr=log if log is not None else None,
                          check=False)
    out = proc.stdout.decode(errors='replace').strip().splitlines()
    if proc.returncode != 0 or not out:
        raise RuntimeError('%s failed with exit status %d' % (
            BUILD_SCRIPT, proc.returncode))
    return LiveSystem(out[-1])


def kernel_args(ignition_url=None, rootfs_url=None, extra=()):
    """Kernel command line of a live boot, as a string.

    :param ignition_url: the live system's Ignition config URL
        (``ignition.config.url=``), or None when the config is appended to
        the initramfs as ``/config.ign`` (:func:`config_cpio`).
    :param rootfs_url: URL of ``rootfs.img`` (``coreos.live.rootfs_url=``),
        or None when it is appended to the initramfs.
    :param extra: more arguments, appended.
    """
    args = list(LIVE_KARGS)
    if rootfs_url:
        args.append('coreos.live.rootfs_url=%s' % rootfs_url)
    if ignition_url:
        args.append('ignition.config.url=%s' % ignition_url)
    args.extend(extra)
    return ' '.join(args)


def _cpio_entry(name, data, mode):
    name_bytes = name.encode() + b'\0'
    header = b'070701' + b''.join(b'%08X' % v for v in (
        0, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name_bytes), 0))
    out = header + name_bytes
    out += b'\0' * (-len(out) % 4)
    out += data
    out += b'\0' * (-len(out) % 4)
    return out


def config_cpio(config):
    """An uncompressed newc cpio archive holding ``/config.ign``.

    Like ``coreos-installer pxe ignition wrap``: append it to the
    initramfs (on a 4-byte boundary, :func:`append_initrds` pads).

    :param config: the Ignition config, bytes.
    :returns: the archive, bytes.
    """
    return (_cpio_entry('config.ign', config, 0o100600)
            + _cpio_entry('TRAILER!!!', b'', 0))


def append_initrds(dest, parts):
    """Concatenate initramfs parts into ``dest``, each on 4-byte bounds.

    :param parts: file paths or bytes, in order.
    """
    with open(dest, 'wb') as out:
        for part in parts:
            if isinstance(part, bytes):
                out.write(part)
            else:
                with open(part, 'rb') as f:
                    while True:
                        chunk = f.read(1 << 20)
                        if not chunk:
                            break
                        out.write(chunk)
            out.write(b'\0' * (-out.tell() % 4))


__all__ = ['LiveSystem', 'build', 'kernel_args', 'config_cpio',
           'append_initrds', 'LIVE_KARGS', 'LIVE_MEMORY_MIB']
