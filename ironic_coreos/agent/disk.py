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

"""Find and release what holds the install disk.

coreos-installer refuses a disk with mounted partitions, active swap or
device-mapper / software RAID holders ("found busy partitions"). Leftovers
of a previous system (an assembled RAID, an activated LVM volume group)
are common on reused hardware; :func:`release` stops them and says clearly
what is left when it cannot.
"""

import collections
import os
import re

from oslo_concurrency import processutils
from oslo_log import log

from ironic_python_agent import utils

LOG = log.getLogger(__name__)

User = collections.namedtuple('User', ['kind', 'device', 'detail'])
"""Something that holds the disk.

``kind`` is ``mount`` (in the agent's own mount namespace), ``host-mount``
(in the live system's), ``swap``, ``md`` or ``dm``; ``device`` the
``/dev`` path concerned; ``detail`` the mount point, the held device, etc.
"""

_MOUNTED_AT = 'mounted at '
_ON_HOST = ' on the live system'


class DiskBusy(Exception):
    """The install disk is in use and could not be freed."""


def _read(path):
    try:
        with open(path) as fp:
            return fp.read().strip()
    except OSError:
        return None


def _listdir(path):
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def _kname(device):
    return os.path.basename(os.path.realpath(device))


def partitions(kname, sysfs='/sys'):
    """List the partitions of a block device.

    :param kname: kernel name of the device, e.g. ``sda``.
    :param sysfs: where sysfs is mounted.
    :returns: kernel names of its partitions.
    """
    base = os.path.join(sysfs, 'class', 'block', kname)
    return [child for child in _listdir(base)
            if os.path.exists(os.path.join(base, child, 'partition'))]


def _holders(kname, sysfs):
    return _listdir(os.path.join(sysfs, 'class', 'block', kname, 'holders'))


def _dm_info(kname, sysfs):
    base = os.path.join(sysfs, 'class', 'block', kname, 'dm')
    return _read(os.path.join(base, 'name')), _read(os.path.join(base,
                                                                 'uuid'))


def _split_lvm_name(name):
    # NOTE: device-mapper names of LVM volumes are VG-LV with every "-"
    # inside the VG and LV names doubled.
    parts = re.split(r'(?<!-)-(?!-)', name, maxsplit=1)
    if len(parts) != 2:
        return None
    return parts[0].replace('--', '-'), parts[1].replace('--', '-')


def _host_mount_ns(host_root):
    """The live system's mount namespace, as the agent sees it."""
    return os.path.join(host_root, 'proc', '1', 'ns', 'mnt')


def _mount_tables(host_root, procfs):
    """Mounts of the agent's namespace and, in a container, the host's.

    :returns: a list of (source, mount point, on the host?).
    """
    tables = [(os.path.join(procfs, 'mounts'), False)]
    if os.path.normpath(host_root) != '/':
        # NOTE: the agent container sees its own mounts in /proc; the live
        # system's are visible through its proc when it is bind-mounted.
        tables.append((os.path.join(host_root, 'proc', '1', 'mounts'),
                       True))
    entries = []
    for table, on_host in tables:
        for line in (_read(table) or '').splitlines():
            fields = line.split()
            if len(fields) >= 2:
                entries.append((fields[0], fields[1].replace('\\040', ' '),
                                on_host))
    return entries


def find_users(device, host_root='/', sysfs='/sys', procfs='/proc'):
    """Find everything that holds ``device``.

    :param device: the install device, e.g. ``/dev/sda``.
    :param host_root: root of the live system (for its mount table).
    :param sysfs: where sysfs is mounted.
    :param procfs: where procfs is mounted.
    :returns: a list of :class:`User`, holders ordered top of the stack
        first (the order to release them in).
    """
    kname = _kname(device)
    members = [kname] + partitions(kname, sysfs)
    users = []
    holders = []
    seen = set()

    def visit(name, held):
        for holder in _holders(name, sysfs):
            if holder in seen:
                continue
            seen.add(holder)
            # The holder's own holders (e.g. LVM on RAID) go first.
            visit(holder, holder)
            holders.append((holder, held))
            for part in partitions(holder, sysfs):
                if part not in seen:
                    seen.add(part)
                    visit(part, part)

    for member in members:
        visit(member, member)

    names = {'/dev/%s' % name for name in members}
    for holder, held in holders:
        names.add('/dev/%s' % holder)
        if holder.startswith('dm-'):
            dm_name, dm_uuid = _dm_info(holder, sysfs)
            if dm_name:
                names.add('/dev/mapper/%s' % dm_name)
            kind = 'dm'
            what = ('LVM volume %s' % dm_name
                    if (dm_uuid or '').startswith('LVM-')
                    else 'device-mapper device %s' % dm_name)
            users.append(User(kind, '/dev/%s' % holder,
                              '%s on /dev/%s' % (what, held)))
        else:
            users.append(User('md' if holder.startswith('md') else 'other',
                              '/dev/%s' % holder,
                              'holder of /dev/%s' % held))

    def ours(source):
        return (source in names
                or (source.startswith('/dev/')
                    and '/dev/%s' % _kname(source) in names))

    mounts = []
    for entry in _mount_tables(host_root, procfs):
        if ours(entry[0]) and entry not in mounts:
            mounts.append(entry)
    # NOTE: unmount the deepest mount points first.
    mounts.sort(key=lambda item: -len(item[1]))
    swaps = []
    for line in (_read(os.path.join(procfs, 'swaps')) or '').splitlines()[1:]:
        fields = line.split()
        if fields and ours(fields[0]):
            swaps.append(User('swap', fields[0], 'active swap'))
    return ([User('host-mount', s, _MOUNTED_AT + m + _ON_HOST) if on_host
             else User('mount', s, _MOUNTED_AT + m)
             for s, m, on_host in mounts]
            + swaps + users)


def describe(users):
    """Describe holders for an error message.

    :param users: a list of :class:`User`.
    :returns: one human string.
    """
    return '; '.join('%s %s' % (u.device, u.detail) for u in users)


def _release_one(user, sysfs, host_root):
    if user.kind == 'mount':
        utils.execute('umount', user.detail[len(_MOUNTED_AT):])
    elif user.kind == 'host-mount':
        # NOTE(coreos): the agent container has a mount namespace of its
        # own: there, umount of a live system's mount point only drops the
        # container's copy (if any) and the live system keeps the disk
        # busy. Unmount it in the live system's namespace.
        mountpoint = user.detail[len(_MOUNTED_AT):-len(_ON_HOST)]
        utils.execute('nsenter', '--mount=%s' % _host_mount_ns(host_root),
                      '--', 'umount', mountpoint)
    elif user.kind == 'swap':
        utils.execute('swapoff', user.device)
    elif user.kind == 'md':
        utils.execute('mdadm', '--stop', user.device)
    elif user.kind == 'dm':
        dm_name, dm_uuid = _dm_info(os.path.basename(user.device), sysfs)
        split = _split_lvm_name(dm_name or '')
        if (dm_uuid or '').startswith('LVM-') and split:
            utils.execute('vgchange', '-an', split[0])
        else:
            utils.execute('dmsetup', 'remove', '--retry',
                          dm_name or user.device)


def release(device, host_root='/', sysfs='/sys', procfs='/proc'):
    """Make sure nothing holds ``device``.

    Unmounts its file systems (those of the live system in the live
    system's mount namespace, with ``nsenter``), turns its swap off, stops
    software RAID arrays and deactivates device-mapper / LVM devices built
    on it, then checks again.

    :param device: the install device.
    :param host_root: root of the live system.
    :param sysfs: where sysfs is mounted.
    :param procfs: where procfs is mounted.
    :raises: DiskBusy listing what still holds the disk.
    """
    users = find_users(device, host_root, sysfs, procfs)
    if not users:
        return
    LOG.warning('The install device %(dev)s is in use, freeing it: '
                '%(users)s', {'dev': device, 'users': describe(users)})
    for user in users:
        try:
            _release_one(user, sysfs, host_root)
        except (processutils.ProcessExecutionError, OSError) as exc:
            LOG.warning('Could not release %(dev)s (%(detail)s): %(err)s',
                        {'dev': user.device, 'detail': user.detail,
                         'err': exc})
    left = find_users(device, host_root, sysfs, procfs)
    if left:
        raise DiskBusy(
            'The install device %s is in use and could not be freed: %s. '
            'Stop or remove these (or clean the node) and deploy again.'
            % (device, describe(left)))
    LOG.info('The install device %s is free', device)
