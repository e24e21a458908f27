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

import os
import shutil
from unittest import mock

import fixtures
from ironic_python_agent.tests.unit import base
from ironic_python_agent import utils
from oslo_concurrency import processutils

from ironic_coreos.agent import disk


class Base(base.IronicAgentTest):
    """A fake sysfs/procfs: sda with 3 partitions.

    sda1 is a member of md127, which holds the LVM volume vg--a-root
    (dm-0); dm-0 is mounted at /var, sda2 at /boot and /boot/efi (bind),
    sda3 is swap.
    """

    def setUp(self):
        super().setUp()
        self.log = self.useFixture(fixtures.FakeLogger(level='DEBUG'))
        self.tmp = self.useFixture(fixtures.TempDir()).path
        self.sysfs = os.path.join(self.tmp, 'sys')
        self.procfs = os.path.join(self.tmp, 'proc')
        self.host_root = os.path.join(self.tmp, 'host')
        os.makedirs(self.procfs)
        os.makedirs(os.path.join(self.host_root, 'proc', '1'))
        for part in ('sda1', 'sda2', 'sda3'):
            self._write('class/block/sda/%s/partition' % part, '1')
            os.makedirs(self._sys('class/block/%s/holders' % part))
        os.makedirs(self._sys('class/block/sda/holders'))
        os.makedirs(self._sys('class/block/md127/holders'))
        os.makedirs(self._sys('class/block/dm-0/holders'))
        os.makedirs(self._sys('class/block/sdb/holders'))
        self._holder('sda1', 'md127')
        self._holder('md127', 'dm-0')
        self._write('class/block/dm-0/dm/name', 'vg--a-root\n')
        self._write('class/block/dm-0/dm/uuid', 'LVM-abcdef\n')
        self._proc('mounts', [
            '/dev/mapper/vg--a-root /var xfs rw 0 0',
            '/dev/sdb1 /srv ext4 rw 0 0',
            'proc /proc proc rw 0 0'])
        with open(os.path.join(self.host_root, 'proc', '1', 'mounts'),
                  'w') as fp:
            fp.write('/dev/sda2 /boot ext4 rw 0 0\n'
                     '/dev/sda2 /boot/efi ext4 rw 0 0\n')
        self._proc('swaps', [
            'Filename Type Size Used Priority',
            '/dev/sda3 partition 1000 0 -2'])

    def _sys(self, path):
        return os.path.join(self.sysfs, path)

    def _write(self, path, text):
        path = self._sys(path)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'w') as fp:
            fp.write(text)

    def _holder(self, held, holder):
        os.makedirs(self._sys('class/block/%s/holders/%s' % (held, holder)))

    def _proc(self, name, lines):
        with open(os.path.join(self.procfs, name), 'w') as fp:
            fp.write('\n'.join(lines) + '\n')

    def _free_everything(self):
        self._proc('mounts', ['/dev/sdb1 /srv ext4 rw 0 0'])
        self._proc('swaps', ['Filename Type Size Used Priority'])
        with open(os.path.join(self.host_root, 'proc', '1', 'mounts'),
                  'w'):
            pass
        shutil.rmtree(self._sys('class/block/sda1/holders/md127'))

    def _kwargs(self):
        return {'host_root': self.host_root, 'sysfs': self.sysfs,
                'procfs': self.procfs}


class TestFindUsers(Base):

    def test_partitions(self):
        self.assertEqual(['sda1', 'sda2', 'sda3'],
                         disk.partitions('sda', sysfs=self.sysfs))
        self.assertEqual([], disk.partitions('sdb', sysfs=self.sysfs))

    def test_everything_found_in_release_order(self):
        users = disk.find_users('/dev/sda', **self._kwargs())
        self.assertEqual([
            disk.User('host-mount', '/dev/sda2',
                      'mounted at /boot/efi on the live system'),
            disk.User('host-mount', '/dev/sda2',
                      'mounted at /boot on the live system'),
            disk.User('mount', '/dev/mapper/vg--a-root', 'mounted at /var'),
            disk.User('swap', '/dev/sda3', 'active swap'),
            disk.User('dm', '/dev/dm-0',
                      'LVM volume vg--a-root on /dev/md127'),
            disk.User('md', '/dev/md127', 'holder of /dev/sda1'),
        ], users)

    def test_other_disk_free(self):
        self.assertEqual([], disk.find_users('/dev/sdb', **self._kwargs()))

    def test_host_root_slash_reads_own_mounts_only(self):
        kwargs = self._kwargs()
        kwargs['host_root'] = '/'
        users = disk.find_users('/dev/sda', **kwargs)
        self.assertEqual(['mounted at /var'],
                         [u.detail for u in users if 'mount' in u.kind])

    def test_describe(self):
        self.assertEqual(
            '/dev/sda3 active swap; /dev/md127 holder of /dev/sda1',
            disk.describe([disk.User('swap', '/dev/sda3', 'active swap'),
                           disk.User('md', '/dev/md127',
                                     'holder of /dev/sda1')]))

    def test_split_lvm_name(self):
        self.assertEqual(('vg-a', 'root'), disk._split_lvm_name('vg--a-root'))
        self.assertEqual(('vg', 'my-lv'), disk._split_lvm_name('vg-my--lv'))
        self.assertIsNone(disk._split_lvm_name('plain'))


@mock.patch.object(utils, 'execute', autospec=True)
class TestRelease(Base):

    def test_nothing_to_do(self, mock_execute):
        disk.release('/dev/sdb', **self._kwargs())
        mock_execute.assert_not_called()

    def test_release_everything(self, mock_execute):
        def execute(*argv):
            if argv[0] == 'mdadm':
                self._free_everything()
            return '', ''
        mock_execute.side_effect = execute
        disk.release('/dev/sda', **self._kwargs())
        # NOTE: the live system's mounts are released in its own mount
        # namespace: an umount in the agent container's namespace only
        # drops the container's copy of a mount (shown with unshare(1):
        # the original namespace keeps it). The VM lab shows it with the
        # real agent container.
        host_ns = '--mount=%s/proc/1/ns/mnt' % self.host_root
        self.assertEqual([
            mock.call('nsenter', host_ns, '--', 'umount', '/boot/efi'),
            mock.call('nsenter', host_ns, '--', 'umount', '/boot'),
            mock.call('umount', '/var'),
            mock.call('swapoff', '/dev/sda3'),
            mock.call('vgchange', '-an', 'vg-a'),
            mock.call('mdadm', '--stop', '/dev/md127'),
        ], mock_execute.call_args_list)
        self.assertIn('is in use, freeing it', self.log.output)

    def test_container_copy_and_host_mount_both_released(self,
                                                         mock_execute):
        # The container's copy of the live system's /boot (under the host
        # root) and the live system's own /boot both hold the disk.
        copy = os.path.join(self.host_root, 'boot')
        self._proc('mounts', ['/dev/sda2 %s ext4 rw 0 0' % copy])
        self._proc('swaps', ['Filename Type Size Used Priority'])
        shutil.rmtree(self._sys('class/block/sda1/holders/md127'))
        with open(os.path.join(self.host_root, 'proc', '1', 'mounts'),
                  'w') as fp:
            fp.write('/dev/sda2 /boot ext4 rw 0 0\n')

        def execute(*argv):
            if argv[0] == 'nsenter':
                open(os.path.join(self.host_root, 'proc', '1', 'mounts'),
                     'w').close()
            elif argv[0] == 'umount':
                self._proc('mounts', [])
            return '', ''
        mock_execute.side_effect = execute
        disk.release('/dev/sda', **self._kwargs())
        self.assertEqual(
            [mock.call('umount', copy),
             mock.call('nsenter', '--mount=%s/proc/1/ns/mnt' % self.host_root,
                       '--', 'umount', '/boot')],
            mock_execute.call_args_list)

    def test_plain_device_mapper(self, mock_execute):
        self._write('class/block/dm-0/dm/uuid', 'CRYPT-LUKS2-xyz\n')
        self._write('class/block/dm-0/dm/name', 'luks-root\n')
        mock_execute.return_value = ('', '')
        self.assertRaises(disk.DiskBusy, disk.release, '/dev/sda',
                          **self._kwargs())
        self.assertIn(mock.call('dmsetup', 'remove', '--retry', 'luks-root'),
                      mock_execute.call_args_list)

    def test_cannot_free(self, mock_execute):
        mock_execute.side_effect = processutils.ProcessExecutionError(
            stderr='device busy')
        exc = self.assertRaises(disk.DiskBusy, disk.release, '/dev/sda',
                                **self._kwargs())
        message = str(exc)
        self.assertIn('The install device /dev/sda is in use and could not '
                      'be freed', message)
        self.assertIn('/dev/sda2 mounted at /boot', message)
        self.assertIn('/dev/sda3 active swap', message)
        self.assertIn('/dev/md127 holder of /dev/sda1', message)
        self.assertIn('LVM volume vg--a-root', message)
        self.assertEqual(6, mock_execute.call_count)
        self.assertIn('Could not release', self.log.output)
