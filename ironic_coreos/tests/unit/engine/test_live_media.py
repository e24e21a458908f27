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

import hashlib
import io
import lzma
import os
import shutil
import stat
import subprocess
import tempfile
import unittest

import pycdlib

from ironic_coreos.engine import exception
from ironic_coreos.engine import initrd
from ironic_coreos.engine import live_media
from ironic_coreos.tests import live_iso

CONFIG = (b'{"ignition": {"version": "3.3.0"}, "passwd": {"users": '
          b'[{"name": "core", "passwordHash": "$6$live-secret"}]}}')
OTHER_CONFIG = b'{"ignition": {"version": "3.4.0"}}'
KEYFILE = (b'[connection]\nid=eth0\ntype=ethernet\ninterface-name=eth0\n'
           b'[ipv4]\nmethod=manual\naddress1=192.0.2.10/24,192.0.2.1\n')


def _read(path):
    with open(path, 'rb') as stream:
        return stream.read()


def _sha256(path):
    return hashlib.sha256(_read(path)).hexdigest()


class _Temp(unittest.TestCase):

    def setUp(self):
        super().setUp()
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.tmp = tmp.name


class LayoutTests(_Temp):
    """Run for every fixture; GENERATION and LAYOUT set per subclass."""

    GENERATION = None
    LAYOUT = None

    def setUp(self):
        super().setUp()
        self.iso_path = live_iso.unpack(self.GENERATION, self.tmp)
        self.original = _read(self.iso_path)
        self.iso = live_media.LiveISO.open(self.iso_path)
        self.spans = live_iso.areas(self.iso)

    def _embed(self, iso, **kwargs):
        iso.set_ignition(CONFIG, **kwargs)
        if self.LAYOUT.network:
            iso.set_keyfiles({'eth0.nmconnection': KEYFILE}, **kwargs)
        if self.LAYOUT.kargs_source:
            iso.modify_kargs(append=['console=ttyS0,115200n8'],
                             delete=['mitigations=auto,nosmt'])

    def _check_embedded(self, path):
        written = _read(path)
        self.assertEqual(len(self.original), len(written))
        self.assertEqual(live_iso.outside(self.original, self.spans),
                         live_iso.outside(written, self.spans))
        self.assertNotEqual(self.original, written)
        back = live_media.LiveISO.open(path)
        self.assertEqual(CONFIG, back.ignition)
        self.assertEqual(self.spans, live_iso.areas(back))
        if self.LAYOUT.network:
            self.assertEqual({'eth0.nmconnection': KEYFILE}, back.keyfiles)
        if self.LAYOUT.kargs_source:
            expected = self.iso.default_kargs.replace(
                'mitigations=auto,nosmt ', '') + ' console=ttyS0,115200n8'
            self.assertEqual(expected, back.kargs)
            self.assertEqual(self.iso.default_kargs, back.default_kargs)
        return back

    def test_areas_found(self):
        area = self.iso.initrd
        self.assertEqual(self.LAYOUT.initrd_source, area.source)
        self.assertEqual(self.LAYOUT.initrd_file, area.file)
        self.assertEqual(262144, area.length)
        self.assertEqual({}, self.iso.members)
        self.assertIsNone(self.iso.ignition)
        self.assertEqual(self.LAYOUT.network, self.iso.supports_network)
        self.assertEqual(self.LAYOUT.headers, set(self.iso.headers))
        # The empty area is zero-filled.
        self.assertEqual(bytes(area.length),
                         self.original[area.offset:area.offset + area.length])
        if 'coreiso+' in self.iso.headers:
            self.assertEqual({'offset': area.offset, 'length': area.length},
                             self.iso.headers['coreiso+'])
        if self.LAYOUT.kargs_source is None:
            self.assertIsNone(self.iso.kargs_areas)
            self.assertIsNone(self.iso.kargs)
            return
        kargs = self.iso.kargs_areas
        self.assertEqual(self.LAYOUT.kargs_source, kargs.source)
        self.assertEqual(kargs.default, self.iso.kargs)
        self.assertIn('ignition.firstboot ignition.platform.id=metal',
                      kargs.default)
        for region in kargs.regions:
            data = self.original[region.offset:region.offset + kargs.length]
            # The arguments, the end character, then padding.
            body = kargs.default.encode() + region.end.encode()
            self.assertEqual(body + region.pad.encode()
                             * (kargs.length - len(body)), data)
        if 'coreKarg' in self.iso.headers:
            header = self.iso.headers['coreKarg']
            self.assertEqual(kargs.length, header['length'])
            self.assertEqual([r.offset for r in kargs.regions],
                             header['offsets'])

    def test_embed_to_new_file(self):
        self._embed(self.iso)
        out = os.path.join(self.tmp, 'node.iso')
        written = self.iso.write(output=out)
        self.assertEqual(0o600, stat.S_IMODE(os.stat(out).st_mode))
        self.assertEqual(self.original, _read(self.iso_path))
        self.assertEqual(sum(length for _offset, length in self.spans)
                         if self.LAYOUT.kargs_source
                         else self.iso.initrd.length, written)
        self._check_embedded(out)
        self.assertEqual([], [n for n in os.listdir(self.tmp)
                              if n.endswith('.tmp')])

    def test_embed_streamed(self):
        self._embed(self.iso)
        out = io.BytesIO()
        self.iso.write(output=out)
        path = os.path.join(self.tmp, 'streamed.iso')
        with open(path, 'wb') as stream:
            stream.write(out.getvalue())
        self._check_embedded(path)

    def test_embed_in_place(self):
        self._embed(self.iso)
        self.iso.write(in_place=True)
        self._check_embedded(self.iso_path)

    def test_archive_readable_by_xz_and_cpio(self):
        self._embed(self.iso)
        self.iso.write(in_place=True)
        area = self.iso.initrd
        data = _read(self.iso_path)[area.offset:area.offset + area.length]
        archive = os.path.join(self.tmp, 'area.xz')
        with open(archive, 'wb') as stream:
            stream.write(data.rstrip(b'\0'))
        info = subprocess.run(['xz', '--robot', '--list', archive],
                              check=True, capture_output=True, text=True)
        self.assertIn('\tCRC32\t', info.stdout)
        unpacked = subprocess.run(['xz', '-dc', archive], check=True,
                                  capture_output=True).stdout
        listing = subprocess.run(['cpio', '-t', '-v', '--quiet'],
                                 input=unpacked, check=True,
                                 capture_output=True).stdout.decode()
        entries = [(line.split()[0], line.split()[-1])
                   for line in listing.splitlines()]
        expected = [('-rw-------', 'config.ign')]
        if self.LAYOUT.network:
            expected += [
                ('drwxr-xr-x', 'etc'),
                ('drwxr-xr-x', 'etc/coreos-firstboot-network'),
                ('-rw-------', 'etc/coreos-firstboot-network/'
                               'eth0.nmconnection')]
        self.assertEqual(expected, entries)
        extract = os.path.join(self.tmp, 'extract')
        os.mkdir(extract)
        subprocess.run(['cpio', '-i', '-d', '--quiet'], input=unpacked,
                       cwd=extract, check=True)
        self.assertEqual(CONFIG, _read(os.path.join(extract, 'config.ign')))

    def test_existing_config_refused_without_replace(self):
        self._embed(self.iso)
        out = os.path.join(self.tmp, 'node.iso')
        self.iso.write(output=out)
        before = _sha256(out)
        again = live_media.LiveISO.open(out)
        self.assertRaisesRegex(exception.LiveMediaError,
                               'already has an embedded Ignition config.*'
                               'replace', again.set_ignition, OTHER_CONFIG)
        self.assertFalse(again.modified)
        self.assertEqual(before, _sha256(out))
        if self.LAYOUT.network:
            self.assertRaisesRegex(
                exception.LiveMediaError,
                'already has embedded network keyfiles.*eth0.nmconnection',
                again.set_keyfiles, {'eth1.nmconnection': KEYFILE})

    def test_existing_config_replaced(self):
        self._embed(self.iso)
        out = os.path.join(self.tmp, 'node.iso')
        self.iso.write(output=out)
        again = live_media.LiveISO.open(out)
        again.set_ignition(OTHER_CONFIG, replace=True)
        again.write(in_place=True)
        back = live_media.LiveISO.open(out)
        self.assertEqual(OTHER_CONFIG, back.ignition)
        # What was not replaced stays.
        self.assertEqual(self.LAYOUT.network, bool(back.keyfiles))
        self.assertEqual(live_iso.outside(self.original, self.spans),
                         live_iso.outside(_read(out), self.spans))

    def test_config_too_large(self):
        # Random bytes do not compress.
        self.iso.set_ignition(os.urandom(258 * 1024))
        out = os.path.join(self.tmp, 'node.iso')
        self.assertRaisesRegex(
            exception.LiveMediaError,
            r'compressed initrd archive .* is \d+ bytes but the initrd embed '
            r'area \(%s\) holds 262144' % self.LAYOUT.initrd_file,
            self.iso.write, output=out)
        self.assertFalse(os.path.exists(out))
        self.assertRaises(exception.LiveMediaError, self.iso.write,
                          in_place=True)
        self.assertEqual(self.original, _read(self.iso_path))
        self.assertEqual(['embed-areas-%s.iso' % self.GENERATION],
                         os.listdir(self.tmp))

    def test_truncated(self):
        out = os.path.join(self.tmp, 'node.iso')
        cut = self.iso.initrd.offset + 4096
        with open(self.iso_path, 'r+b') as stream:
            stream.truncate(cut)
        self.assertRaisesRegex(exception.LiveMediaError, 'truncated',
                               live_media.LiveISO.open, self.iso_path)
        self.assertFalse(os.path.exists(out))

    def test_truncated_while_writing(self):
        self.iso.set_ignition(CONFIG)
        with open(self.iso_path, 'r+b') as stream:
            stream.truncate(len(self.original) - 1)
        out = os.path.join(self.tmp, 'node.iso')
        self.assertRaisesRegex(exception.LiveMediaError, 'changed size',
                               self.iso.write, output=out)
        self.assertEqual([os.path.basename(self.iso_path)],
                         os.listdir(self.tmp))

    def test_output_exists(self):
        self.iso.set_ignition(CONFIG)
        out = os.path.join(self.tmp, 'node.iso')
        with open(out, 'wb') as stream:
            stream.write(b'keep me')
        self.assertRaisesRegex(exception.LiveMediaError, 'already exists',
                               self.iso.write, output=out)
        self.assertEqual(b'keep me', _read(out))

    def test_kargs(self):
        if self.LAYOUT.kargs_source is None:
            self.assertRaisesRegex(exception.LiveMediaError,
                                   'no kernel argument areas',
                                   self.iso.modify_kargs, append=['quiet'])
            self.assertRaises(exception.LiveMediaError, self.iso.reset_kargs)
            self.assertFalse(self.iso.modified)
            return
        kargs = self.iso.kargs_areas
        limit = kargs.length - 1
        self.assertRaisesRegex(exception.LiveMediaError,
                               'are %d bytes but the kernel argument areas '
                               'hold %d' % (limit + 1, limit),
                               self.iso.set_kargs, 'x' * (limit + 1))
        self.assertFalse(self.iso.modified)
        self.iso.set_kargs('y' * limit)
        self.iso.write(in_place=True)
        data = _read(self.iso_path)
        for region in kargs.regions:
            self.assertEqual(b'y' * limit + region.end.encode(),
                             data[region.offset:region.offset + kargs.length])
        self.assertEqual('y' * limit,
                         live_media.LiveISO.open(self.iso_path).kargs)
        # Reset writes the default back, padded as the ISO was built.
        again = live_media.LiveISO.open(self.iso_path)
        again.reset_kargs()
        again.write(in_place=True)
        restored = _read(self.iso_path)
        for region in kargs.regions:
            original = self.original[region.offset:
                                     region.offset + kargs.length]
            self.assertEqual(original,
                             restored[region.offset:
                                      region.offset + kargs.length])

    def test_reset_restores_the_original(self):
        self._embed(self.iso)
        self.iso.write(in_place=True)
        again = live_media.LiveISO.open(self.iso_path)
        again.clear_initrd()
        if self.LAYOUT.kargs_source:
            again.reset_kargs()
        again.write(in_place=True)
        self.assertEqual(self.original, _read(self.iso_path))


for _generation, _layout in sorted(live_iso.LAYOUTS.items()):
    _name = 'TestLayout_%s' % _generation.replace('-', '_').replace('.', '_')
    globals()[_name] = type(_name, (LayoutTests,),
                            {'GENERATION': _generation, 'LAYOUT': _layout})
del LayoutTests


class TestKnownLayout(_Temp):
    """The areas coreos-installer's own tests find in the 2021-09 ISO."""

    def test_2021_09(self):
        iso = live_media.LiveISO.open(live_iso.unpack('2021-09', self.tmp))
        self.assertEqual((102400, 262144),
                         (iso.initrd.offset, iso.initrd.length))
        self.assertEqual(1139, iso.kargs_areas.length)
        self.assertEqual([98126, 371658],
                         [r.offset for r in iso.kargs_areas.regions])
        self.assertEqual('mitigations=auto,nosmt coreos.liveiso=fedora-'
                         'coreos-34.20210921.dev.0 ignition.firstboot '
                         'ignition.platform.id=metal', iso.default_kargs)

    def test_kargs_from_header_only(self):
        # Without kargs.json the coreKarg header describes the same areas.
        path = live_iso.unpack('2021-09', self.tmp)
        expected = live_media.LiveISO.open(path).kargs_areas
        with open(path, 'r+b') as stream:
            data = bytearray(stream.read())
            where = data.find(b'KARGS.JSO;1')
            data[where:where + 5] = b'XARGS'
            stream.seek(0)
            stream.write(data)
        iso = live_media.LiveISO.open(path)
        self.assertEqual('coreKarg header', iso.kargs_areas.source)
        self.assertEqual(expected.regions, iso.kargs_areas.regions)
        self.assertEqual(expected.default, iso.kargs_areas.default)

    def test_kargs_areas_disagree(self):
        path = live_iso.unpack('2023-07.x86_64', self.tmp)
        second = live_media.LiveISO.open(path).kargs_areas.regions[1]
        with open(path, 'r+b') as stream:
            stream.seek(second.offset)
            stream.write(b'other')
        self.assertRaisesRegex(exception.LiveMediaError, 'disagree',
                               live_media.LiveISO.open, path)

    def test_old_iso_refuses_keyfiles(self):
        iso = live_media.LiveISO.open(live_iso.unpack('2021-09', self.tmp))
        self.assertRaisesRegex(exception.LiveMediaError,
                               'does not read network keyfiles',
                               iso.set_keyfiles,
                               {'eth0.nmconnection': KEYFILE})

    def test_keyfile_names(self):
        iso = live_media.LiveISO.open(live_iso.unpack('2022-09', self.tmp))
        for name in ('eth0', '../eth0.nmconnection', 'a/b.nmconnection',
                     '.nmconnection'):
            self.assertRaisesRegex(exception.LiveMediaError,
                                   'Invalid keyfile name', iso.set_keyfiles,
                                   {name: KEYFILE})
        self.assertFalse(iso.modified)

    def test_keyfiles_replaced_as_a_set(self):
        path = live_iso.unpack('2022-09', self.tmp)
        iso = live_media.LiveISO.open(path)
        iso.set_keyfiles({'eth0.nmconnection': KEYFILE,
                          'eth1.nmconnection': KEYFILE})
        iso.write(in_place=True)
        iso = live_media.LiveISO.open(path)
        iso.set_keyfiles({'bond0.nmconnection': b'[connection]\n'},
                         replace=True)
        iso.write(in_place=True)
        self.assertEqual({'bond0.nmconnection': b'[connection]\n'},
                         live_media.LiveISO.open(path).keyfiles)

    def test_reads_archive_written_elsewhere(self):
        # An area holding concatenated archives (uncompressed and xz) is
        # read like the kernel reads it.
        path = live_iso.unpack('2023-07.x86_64', self.tmp)
        iso = live_media.LiveISO.open(path)
        data = (initrd.cpio({'config.ign': b'first'})
                + initrd.build({'config.ign': CONFIG,
                                'etc/other': b'x'}))
        with open(path, 'r+b') as stream:
            stream.seek(iso.initrd.offset)
            stream.write(data)
        back = live_media.LiveISO.open(path)
        self.assertEqual(CONFIG, back.ignition)
        self.assertEqual({'config.ign': CONFIG, 'etc/other': b'x'},
                         back.members)

    def test_corrupt_area(self):
        path = live_iso.unpack('2023-07.x86_64', self.tmp)
        iso = live_media.LiveISO.open(path)
        with open(path, 'r+b') as stream:
            stream.seek(iso.initrd.offset)
            stream.write(b'garbage')
        self.assertRaisesRegex(exception.LiveMediaError,
                               'initrd embed area: unknown data',
                               live_media.LiveISO.open, path)


class TestNotALiveISO(_Temp):

    def _file(self, data):
        path = os.path.join(self.tmp, 'input.iso')
        with open(path, 'wb') as stream:
            stream.write(data)
        return path

    def test_not_an_iso(self):
        for data in (b'', b'hello', os.urandom(256 * 1024)):
            self.assertRaisesRegex(exception.LiveMediaError,
                                   'not an ISO 9660 image',
                                   live_media.LiveISO.open, self._file(data))

    def test_missing_file(self):
        self.assertRaisesRegex(exception.LiveMediaError,
                               'cannot read the ISO',
                               live_media.LiveISO.open,
                               os.path.join(self.tmp, 'missing.iso'))

    def test_iso_without_areas(self):
        iso = pycdlib.PyCdlib()
        iso.new(interchange_level=3, joliet=3, vol_ident='NOTCOREOS')
        payload = b'not coreos\n'
        iso.add_fp(io.BytesIO(payload), len(payload), '/README.TXT;1',
                   joliet_path='/README.TXT')
        path = os.path.join(self.tmp, 'plain.iso')
        iso.write(path)
        iso.close()
        before = _read(path)
        self.assertRaisesRegex(exception.LiveMediaError,
                               'not a CoreOS live ISO: it has no initrd '
                               'embed area', live_media.LiveISO.open, path)
        self.assertEqual(before, _read(path))

    def test_area_removed(self):
        # coreos-installer's test: a renamed ignition.img is no area.
        path = live_iso.unpack('2022-02', self.tmp)
        with open(path, 'r+b') as stream:
            data = bytearray(stream.read())
            where = data.find(b'IGNITION.IMG;1')
            data[where] = ord('Z')
            stream.seek(0)
            stream.write(data)
        self.assertRaisesRegex(exception.LiveMediaError,
                               'not a CoreOS live ISO',
                               live_media.LiveISO.open, path)

    def test_area_from_coreiso_header(self):
        # ISOs of 2020-2021 also say where the area is in the system area.
        path = live_iso.unpack('2021-09', self.tmp)
        expected = live_media.LiveISO.open(path).initrd
        with open(path, 'r+b') as stream:
            data = bytearray(stream.read())
            where = data.find(b'IGNITION.IMG;1')
            data[where] = ord('Z')
            stream.seek(0)
            stream.write(data)
        area = live_media.LiveISO.open(path).initrd
        self.assertEqual('coreiso+ header', area.source)
        self.assertEqual((expected.offset, expected.length),
                         (area.offset, area.length))


class TestEditKargs(unittest.TestCase):

    def test_delete(self):
        for delete, expected in ((['foo'], 'bar foobar'),
                                 (['bar'], 'foo foobar'),
                                 (['foobar'], 'foo bar'),
                                 (['foo bar'], 'foobar'),
                                 (['bar', 'foo'], 'foobar'),
                                 (['  foo  '], 'bar foobar'),
                                 (['missing'], 'foo bar foobar')):
            self.assertEqual(expected, live_media.edit_kargs(
                'foo bar foobar', delete=delete))

    def test_order_delete_append_replace(self):
        self.assertEqual(
            'foo mitigations=auto console=tty0 bar baz '
            'console=ttyS1,115200n8',
            live_media.edit_kargs(
                'foo mitigations=auto,nosmt console=tty0 bar '
                'console=ttyS0,115200n8 baz',
                append=['console=ttyS1,115200n8'],
                replace=['mitigations=auto,nosmt=auto'],
                delete=['console=ttyS0,115200n8']))

    def test_replace_needs_key_old_new(self):
        for bad in ('a=b', 'a', 'a=b=c=d', '=b=c'):
            self.assertRaisesRegex(exception.LiveMediaError, 'KEY=OLD=NEW',
                                   live_media.edit_kargs, 'a=b',
                                   replace=[bad])

    def test_line_breaks_refused(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = live_iso.unpack('2022-09', tmp)
            iso = live_media.LiveISO.open(path)
            self.assertRaisesRegex(exception.LiveMediaError, 'one line',
                                   iso.set_kargs, 'quiet\nrescue')
            self.assertFalse(iso.modified)


class TestWrap(_Temp):

    def test_wrap_is_the_pxe_initrd(self):
        image = live_media.wrap(ignition=CONFIG,
                                keyfiles={'eth0.nmconnection': KEYFILE})
        self.assertEqual({'config.ign': CONFIG,
                          'etc/coreos-firstboot-network/eth0.nmconnection':
                          KEYFILE}, initrd.read(image))
        # Appended to an initramfs (here: a small uncompressed one), the
        # config is the last word.
        base = initrd.cpio({'etc/coreos-live-initramfs': b'',
                            'config.ign': b'old'})
        self.assertEqual(CONFIG, initrd.read(base + image)['config.ign'])
        self.assertEqual(lzma.CHECK_CRC32, _xz_check(image))

    def test_wrap_needs_content(self):
        self.assertRaisesRegex(exception.LiveMediaError, 'Nothing to wrap',
                               live_media.wrap)


def _xz_check(data):
    # The stream flags' second byte (offset 7) names the check type.
    return data[7] & 0x0f


class TestSparseCopy(_Temp):

    def test_padded_iso_streams_with_holes(self):
        path = live_iso.unpack('2023-07.x86_64', self.tmp)
        size = 16 * 1024 * 1024
        with open(path, 'r+b') as stream:
            stream.truncate(size)
        iso = live_media.LiveISO.open(path)
        iso.set_ignition(CONFIG)
        out = os.path.join(self.tmp, 'node.iso')
        iso.write(output=out)
        self.assertEqual(size, os.path.getsize(out))
        # The zeros of the padding are holes in the output.
        self.assertLess(os.stat(out).st_blocks * 512, 4 * 1024 * 1024)
        self.assertEqual(CONFIG, live_media.LiveISO.open(out).ignition)
        spans = live_iso.areas(iso)
        self.assertEqual(live_iso.outside(_read(path), spans),
                         live_iso.outside(_read(out), spans))

    def test_copy_keeps_the_source(self):
        path = live_iso.unpack('2022-02', self.tmp)
        copy = os.path.join(self.tmp, 'copy.iso')
        shutil.copy(path, copy)
        iso = live_media.LiveISO.open(path)
        iso.set_ignition(CONFIG)
        iso.write(output=os.path.join(self.tmp, 'node.iso'))
        self.assertEqual(_read(copy), _read(path))
