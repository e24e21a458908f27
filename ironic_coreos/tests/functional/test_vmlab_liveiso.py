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
"""The VM lab's CoreOS-alike live ISO, read and customised by the engine.

Built from a small fake live system (the real one is the VM lab's), with
the real GRUB, mkfs.fat and mtools; no VM.
"""

import io
import json
import os
import shutil
import tempfile

import pycdlib
import testtools

from ironic_coreos.engine import live_media
from ironic_coreos.tests.functional.vmlab import liveiso


class FakeLive(object):

    def __init__(self, directory):
        self.directory = directory
        for name in ('vmlinuz', 'initramfs.img', 'rootfs.img'):
            with open(os.path.join(directory, name), 'wb') as f:
                f.write(name.encode() * 1000)
        self.kernel = os.path.join(directory, 'vmlinuz')
        self.initramfs = os.path.join(directory, 'initramfs.img')
        self.rootfs = os.path.join(directory, 'rootfs.img')


class LiveISOTestCase(testtools.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.dir = tempfile.mkdtemp(prefix='vmlab-iso-')
        cls.iso = liveiso.build(FakeLive(cls.dir),
                                os.path.join(cls.dir, 'live.iso'))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir)
        super().tearDownClass()

    def read(self, iso_path, rr_path):
        iso = pycdlib.PyCdlib()
        iso.open(iso_path)
        try:
            out = io.BytesIO()
            iso.get_file_from_iso_fp(out, rr_path=rr_path)
            return out.getvalue()
        finally:
            iso.close()

    def test_engine_finds_the_areas(self):
        iso = live_media.LiveISO.open(self.iso)
        self.assertEqual('igninfo.json', iso.initrd.source)
        self.assertEqual(liveiso.EMBED_AREA, iso.initrd.length)
        self.assertEqual(' '.join(liveiso.ISO_KARGS), iso.kargs)
        self.assertNotIn('ip=dhcp', iso.kargs)
        self.assertTrue(iso.supports_network)
        self.assertIsNone(iso.ignition)
        self.assertFalse(os.path.exists(self.iso + '.work'))

    def test_customised_copy_boots_with_the_arguments(self):
        iso = live_media.LiveISO.open(self.iso)
        iso.set_ignition(b'{"ignition": {"version": "3.3.0"}}')
        iso.set_keyfiles({'port0.nmconnection': b'[connection]\nid=p\n'})
        iso.modify_kargs(append=['ipa-api-url=http://192.0.2.1:6385'])
        out = os.path.join(self.dir, 'node.iso')
        iso.write(output=out)
        self.addCleanup(os.unlink, out)
        again = live_media.LiveISO.open(out)
        self.assertEqual({'port0.nmconnection': b'[connection]\nid=p\n'},
                         again.keyfiles)
        # GRUB sees the arguments on the linux line; the padding is a
        # comment line of its own.
        cfg = self.read(out, '/EFI/fedora/grub.cfg').decode()
        linux = [line for line in cfg.splitlines()
                 if line.strip().startswith('linux ')]
        self.assertEqual(1, len(linux))
        self.assertTrue(linux[0].endswith(
            'ipa-api-url=http://192.0.2.1:6385'), linux[0])
        self.assertIn('\n#####', cfg)
        self.assertIn('initrd /images/pxeboot/rootfs.img '
                      '/images/pxeboot/initrd.img /images/ignition.img', cfg)

    def test_uefi_boot_image(self):
        iso = pycdlib.PyCdlib()
        iso.open(self.iso)
        try:
            catalog = iso.eltorito_boot_catalog
            self.assertIsNotNone(catalog)
            # 0xef: UEFI, the only boot image.
            self.assertEqual(0xef, catalog.validation_entry.platform_id)
            self.assertTrue(catalog.initial_entry.boot_indicator)
        finally:
            iso.close()
        features = json.loads(self.read(self.iso, '/coreos/features.json'))
        self.assertTrue(features['live-initrd-network'])
