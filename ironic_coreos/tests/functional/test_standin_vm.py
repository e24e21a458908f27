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

"""Tests for the stand-in's VM mode and the CoreOS-alike metal disk.

The VM mode is driven by files (marker, firmware vendor, /proc/devices,
/sys/dev/block) that the tests point at a scratch directory; device nodes
are made there with numbers no disk of the machine has. The metal disk is
written to a sparse image file from a small fake payload.
"""

import json
import os
import shutil
import stat
import subprocess
import tempfile
from unittest import mock

import fixtures
import testtools

from ironic_coreos.tests.functional.standin import disk
from ironic_coreos.tests.functional.standin import installer
from ironic_coreos.tests.functional.standin import metal

#: A block major in the range reserved for local use; no disk has it here.
FAKE_VIRTIO_MAJOR = 240
IGNITION = {'ignition': {'version': '3.3.0'}}


class VMModeTestCase(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.dir = tempfile.mkdtemp(prefix='standin-vm-')
        self.addCleanup(shutil.rmtree, self.dir)
        self.marker = os.path.join(self.dir, 'standin-vm-mode')
        self.vendor = os.path.join(self.dir, 'sys_vendor')
        self.devices = os.path.join(self.dir, 'devices')
        self.sysblock = os.path.join(self.dir, 'sys-dev-block')
        os.makedirs(self.sysblock)
        with open(self.devices, 'w') as f:
            f.write('Character devices:\n  1 mem\n%d virtblk\n\n'
                    'Block devices:\n  7 loop\n  8 sd\n%d virtblk\n'
                    % (FAKE_VIRTIO_MAJOR + 1, FAKE_VIRTIO_MAJOR))
        for name, value in (('VM_MARKER', self.marker),
                            ('DMI_VENDOR_FILE', self.vendor),
                            ('PROC_DEVICES', self.devices),
                            ('SYS_DEV_BLOCK', self.sysblock)):
            self.useFixture_patch(name, value)
        self.useFixture(fixtures.EnvironmentVariable(
            installer.ALLOWED_DEVICES_ENV))

    def useFixture_patch(self, name, value):
        patcher = mock.patch.object(installer, name, value)  # noqa: H210
        patcher.start()
        self.addCleanup(patcher.stop)

    def _in_vm(self, vendor='QEMU'):
        with open(self.marker, 'w') as f:
            f.write('vm\n')
        with open(self.vendor, 'w') as f:
            f.write(vendor + '\n')

    def _node(self, name, major, minor, kind=stat.S_IFBLK, partition=False):
        if os.geteuid() != 0:
            self.skipTest('making device nodes needs root')
        path = os.path.join(self.dir, name)
        os.mknod(path, kind | 0o600, os.makedev(major, minor))
        if partition:
            part = os.path.join(self.sysblock, '%d:%d' % (major, minor))
            os.makedirs(part)
            with open(os.path.join(part, 'partition'), 'w') as f:
                f.write('%d\n' % minor)
        return path

    def test_not_in_vm_without_marker(self):
        with open(self.vendor, 'w') as f:
            f.write('QEMU\n')
        self.assertFalse(installer.vm_mode())

    def test_not_in_vm_on_other_firmware(self):
        self._in_vm(vendor='Dell Inc.')
        self.assertFalse(installer.vm_mode())

    def test_in_vm(self):
        self._in_vm()
        self.assertTrue(installer.vm_mode())

    def test_virtio_major_from_block_section(self):
        self.assertEqual(FAKE_VIRTIO_MAJOR, installer._virtio_major())

    def test_outside_vm_virtio_disk_refused(self):
        path = self._node('vda', FAKE_VIRTIO_MAJOR, 0)
        exc = self.assertRaises(installer.Refused,
                                installer.check_destination, path)
        self.assertIn('COREOS_STANDIN_ALLOWED_DEVICES is not set', str(exc))

    def test_vm_whole_virtio_disk_accepted(self):
        self._in_vm()
        path = self._node('vda', FAKE_VIRTIO_MAJOR, 0)
        st = installer.check_destination(path)
        self.assertEqual(FAKE_VIRTIO_MAJOR, os.major(st.st_rdev))

    def test_vm_virtio_partition_refused(self):
        self._in_vm()
        path = self._node('vda1', FAKE_VIRTIO_MAJOR, 1, partition=True)
        exc = self.assertRaises(installer.Refused,
                                installer.check_destination, path)
        self.assertIn('refusing to write to %s: a partition, not a whole '
                      'disk' % path, str(exc))

    def test_vm_other_block_device_refused(self):
        self._in_vm()
        path = self._node('sda', 8, 0)
        exc = self.assertRaises(installer.Refused,
                                installer.check_destination, path)
        self.assertIn('not a virtio disk (block major 8, virtio disks have '
                      '%d)' % FAKE_VIRTIO_MAJOR, str(exc))

    def test_vm_character_device_with_virtio_numbers_refused(self):
        self._in_vm()
        path = self._node('vdachar', FAKE_VIRTIO_MAJOR, 0,
                          kind=stat.S_IFCHR)
        exc = self.assertRaises(installer.Refused,
                                installer.check_destination, path)
        self.assertIn('not a block device', str(exc))

    def test_vm_regular_file_refused_unless_listed(self):
        self._in_vm()
        path = os.path.join(self.dir, 'disk.raw')
        with open(path, 'wb') as f:
            f.truncate(1024)
        exc = self.assertRaises(installer.Refused,
                                installer.check_destination, path)
        self.assertIn("only the VM's own virtio disks", str(exc))
        os.environ[installer.ALLOWED_DEVICES_ENV] = path
        self.assertTrue(stat.S_ISREG(
            installer.check_destination(path).st_mode))

    def test_vm_no_virtio_driver_refused(self):
        self._in_vm()
        with open(self.devices, 'w') as f:
            f.write('Block devices:\n  8 sd\n')
        path = self._node('vda', FAKE_VIRTIO_MAJOR, 0)
        exc = self.assertRaises(installer.Refused,
                                installer.check_destination, path)
        self.assertIn('not a virtio disk', str(exc))

    def test_vm_refusal_exits_1_and_leaves_the_device(self):
        self._in_vm()
        path = os.path.join(self.dir, 'other.raw')
        with open(path, 'wb') as f:
            f.write(b'\x5a' * 4096)
        with mock.patch.object(installer, '_say', autospec=True) as say:
            self.assertEqual(1, installer.main(
                ['install', '--offline', path]))
        lines = [c[0][0] for c in say.call_args_list]
        self.assertEqual('Error: install failed', lines[-1])
        self.assertIn('refusing to write to %s' % path, lines[-2])
        with open(path, 'rb') as f:
            self.assertEqual(b'\x5a' * 4096, f.read())


def make_payload(root, kargs=None):
    """A fake live payload: tiny kernel, initramfs and GRUB files."""
    files = {
        'usr/lib/modules/6.1.0-test/vmlinuz': b'kernel\n',
        'usr/lib/modules/6.1.0-test/initramfs.img': b'initramfs\n',
        'usr/lib/coreos-alike/grub/BOOTX64.EFI': b'MZ grub\n',
        'etc/os-release': b'ID=debian\n',
    }
    for rel, data in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'wb') as f:
            f.write(data)
    payload = {
        'title': 'CoreOS-alike test', 'kver': '6.1.0-test',
        'kernel': 'usr/lib/modules/6.1.0-test/vmlinuz',
        'initramfs': 'usr/lib/modules/6.1.0-test/initramfs.img',
        'grub_efi': 'usr/lib/coreos-alike/grub/BOOTX64.EFI',
        'kargs': kargs or ['mitigations=auto,nosmt',
                           'ignition.platform.id=metal',
                           '$ignition_firstboot', 'root=LABEL=root', 'rw'],
    }
    with open(os.path.join(root, metal.PAYLOAD_FILE), 'w') as f:
        json.dump(payload, f)
    return root


class MetalTestCase(testtools.TestCase):

    def setUp(self):
        super().setUp()
        for tool in ('mke2fs', 'mkfs.fat', 'mcopy', 'sfdisk', 'debugfs'):
            if not shutil.which(tool):
                self.skipTest('%s is missing' % tool)
        base = '/dev/shm' if os.access('/dev/shm', os.W_OK) else None
        self.dir = tempfile.mkdtemp(prefix='standin-metal-', dir=base)
        self.addCleanup(shutil.rmtree, self.dir)
        self.root = make_payload(os.path.join(self.dir, 'payload'))
        self.disk = os.path.join(self.dir, 'disk.raw')
        self.size = (2 + metal.ESP_MIB + metal.BOOT_MIB + metal.ROOT_MIN_MIB
                     + 64) * disk.MIB
        with open(self.disk, 'wb') as f:
            f.truncate(self.size)

    def _mdir(self, path):
        start = disk.partitions(self.disk)[1]['start']
        proc = subprocess.run(
            ['mdir', '-b', '-i', '%s@@%d' % (self.disk, start), path],
            capture_output=True, env=dict(os.environ, MTOOLS_SKIP_CHECK='1'),
            check=True)
        return proc.stdout.decode()

    def test_write_metal_layout(self):
        payload = metal.load_payload(self.root)
        end = metal.write_metal(self.disk, self.size, payload)
        parts = disk.partitions(self.disk)
        self.assertEqual(['BIOS-BOOT', 'EFI-SYSTEM', 'boot', 'root'],
                         [p['name'] for p in parts])
        self.assertEqual([None, 'EFI-SYSTEM', 'boot', 'root'],
                         [p['label'] for p in parts])
        self.assertEqual([None, 'vfat', 'ext4', 'ext4'],
                         [p['fstype'] for p in parts])
        self.assertEqual(parts[3]['start'] + parts[3]['size'], end)
        self.assertIn('::/EFI/BOOT/BOOTX64.EFI', self._mdir('::/EFI/BOOT'))
        fedora = self._mdir('::/EFI/fedora')
        self.assertIn('shimx64.efi', fedora)
        self.assertIn('BOOTX64.CSV', fedora)
        info = disk.inspect_disk(self.disk)
        self.assertEqual(disk.FIRSTBOOT_CONTENT.decode(), info['firstboot'])
        self.assertIn('$ignition_firstboot', info['kargs'])
        boot = parts[2]['start']
        self.assertEqual(b'kernel\n', disk.read_file(
            self.disk, boot,
            '/ostree/coreos-alike-6.1.0-test/vmlinuz-6.1.0-test'))
        cfg = disk.read_file(self.disk, boot, '/grub2/grub.cfg').decode()
        self.assertTrue(cfg.startswith(metal.GRUB_CFG_MARKER))
        self.assertIn('if [ -f "/ignition.firstboot" ]; then', cfg)
        self.assertIn("linux '/ostree/coreos-alike-6.1.0-test/"
                      "vmlinuz-6.1.0-test' 'mitigations=auto,nosmt' "
                      "'ignition.platform.id=metal' $ignition_firstboot "
                      "'root=LABEL=root' 'rw'", cfg)
        self.assertEqual(b'ID=debian\n', disk.read_file(
            self.disk, parts[3]['start'], '/etc/os-release'))

    def test_too_small(self):
        payload = metal.load_payload(self.root)
        exc = self.assertRaises(disk.DiskError, metal.write_metal,
                                self.disk, 1024 * disk.MIB, payload)
        self.assertIn('too small for the CoreOS-alike: 1024 MiB', str(exc))

    def test_incomplete_payload(self):
        os.unlink(os.path.join(self.root,
                               'usr/lib/coreos-alike/grub/BOOTX64.EFI'))
        exc = self.assertRaises(disk.DiskError, metal.load_payload,
                                self.root)
        self.assertIn('names no grub_efi file', str(exc))

    def test_install_offline_from_payload(self):
        config = os.path.join(self.dir, 'config.ign')
        with open(config, 'w') as f:
            json.dump(IGNITION, f)
        self.useFixture(fixtures.EnvironmentVariable(
            installer.ALLOWED_DEVICES_ENV, self.disk))
        payload_root = mock.patch.object(  # noqa: H210
            metal, 'LIVE_PAYLOAD_ROOT', self.root)
        with payload_root, \
                mock.patch.object(installer, '_say', autospec=True) as say:
            rc = installer.main([
                'install', '--offline', '-i', config,
                '--append-karg', 'a=b,c', '--delete-karg',
                'mitigations=auto,nosmt', self.disk])
        lines = [c[0][0] for c in say.call_args_list]
        self.assertEqual(0, rc, lines)
        self.assertEqual('Install complete.', lines[-1])
        info = disk.inspect_disk(self.disk)
        self.assertEqual(IGNITION, json.loads(info['ignition']))
        self.assertEqual(['ignition.platform.id=metal', '$ignition_firstboot',
                          'root=LABEL=root', 'rw', 'a=b,c'], info['kargs'])
        cfg = disk.read_file(self.disk, info['boot_offset'],
                             '/grub2/grub.cfg').decode()
        self.assertIn("'rw' 'a=b,c'\n", cfg)
        self.assertNotIn('mitigations', cfg)

    def test_refresh_leaves_foreign_grub_cfg(self):
        image = disk.make_image(os.path.join(self.dir, 'fcos.raw'),
                                size_mib=48)
        off = disk.find_boot(image)
        self.assertFalse(metal.refresh_grub_cfg(image, off))
        self.assertIn(b'blscfg', disk.read_file(image, off,
                                                '/grub2/grub.cfg'))


class GrubCfgTestCase(testtools.TestCase):

    def test_quoting(self):
        cfg = metal.grub_cfg([('a.conf', (
            "title It's\nlinux /vmlinuz\ninitrd /initrd.img\n"
            "options x='y' $ignition_firstboot ${other} a;b\n"))])
        self.assertIn("menuentry 'Its' {", cfg)
        self.assertIn("    linux '/vmlinuz' 'x='\\''y'\\''' "
                      "$ignition_firstboot ${other} 'a;b'\n", cfg)
        self.assertIn("    initrd '/initrd.img'\n", cfg)

    def test_entry_without_linux(self):
        exc = self.assertRaises(disk.DiskError, metal.grub_cfg,
                                [('x.conf', 'title x\n')])
        self.assertIn('x.conf has no linux line', str(exc))
