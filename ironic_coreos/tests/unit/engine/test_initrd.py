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

import gzip
import lzma
import os
import subprocess
import tempfile
import unittest

from hypothesis import assume
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from ironic_coreos.engine import exception
from ironic_coreos.engine import initrd


def _entries(archive):
    """Parse newc headers independently: [(name, fields dict)]."""
    names = ('ino', 'mode', 'uid', 'gid', 'nlink', 'mtime', 'filesize',
             'devmajor', 'devminor', 'rdevmajor', 'rdevminor', 'namesize',
             'check')
    out = []
    pos = 0
    while True:
        assert archive[pos:pos + 6] == b'070701', pos
        values = [int(archive[pos + 6 + 8 * i:pos + 14 + 8 * i], 16)
                  for i in range(13)]
        fields = dict(zip(names, values))
        name_end = pos + 110 + fields['namesize']
        name = archive[pos + 110:name_end - 1].decode()
        assert archive[name_end - 1] == 0
        data = name_end + (-name_end % 4)
        out.append((name, fields))
        pos = data + fields['filesize']
        pos += -pos % 4
        if name == 'TRAILER!!!':
            assert pos == len(archive)
            return out


class TestBuild(unittest.TestCase):

    def test_layout(self):
        members = {'d': b'', 'c/g': b'1', 'c/a/b/f': b'22', 'c/f': b'333',
                   'config.ign': b'{}'}
        archive = initrd.cpio(members)
        entries = _entries(archive)
        self.assertEqual(
            [('c', 0o40755), ('c/a', 0o40755), ('c/a/b', 0o40755),
             ('c/a/b/f', 0o100600), ('c/f', 0o100600), ('c/g', 0o100600),
             ('config.ign', 0o100600), ('d', 0o100600),
             ('TRAILER!!!', 0)],
            [(name, fields['mode']) for name, fields in entries])
        self.assertEqual(list(range(8)) + [0],
                         [fields['ino'] for _name, fields in entries])
        for name, fields in entries:
            self.assertEqual((0, 0, 0, 1, 0),
                             (fields['uid'], fields['gid'], fields['mtime'],
                              fields['nlink'], fields['check']), name)
        self.assertEqual(members, initrd.read(archive))

    def test_xz_with_crc32(self):
        data = initrd.build({'config.ign': b'{"ignition": {}}'})
        self.assertTrue(data.startswith(b'\xfd7zXZ\x00'))
        # Stream flags: check type 1 is CRC32 (the kernel needs it).
        self.assertEqual(b'\x00\x01', data[6:8])
        self.assertEqual(initrd.cpio({'config.ign': b'{"ignition": {}}'}),
                         lzma.decompress(data))

    def test_gnu_cpio_reads_it(self):
        members = {'config.ign': b'{"a": 1}\n',
                   'etc/coreos-firstboot-network/eth0.nmconnection': b'x\n'}
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, 'wrap.img')
            with open(path, 'wb') as stream:
                stream.write(initrd.build(members))
            unpacked = subprocess.run(['xz', '-dc', path], check=True,
                                      capture_output=True).stdout
            subprocess.run(['cpio', '-i', '-d', '--quiet'], input=unpacked,
                           cwd=tmp, check=True)
            for name, data in members.items():
                with open(os.path.join(tmp, name), 'rb') as stream:
                    self.assertEqual(data, stream.read())

    def test_bad_paths(self):
        for path in ('/etc/x', 'a/../b', 'a//b', '', 'a/'):
            self.assertRaisesRegex(exception.LiveMediaError, 'Invalid path',
                                   initrd.cpio, {path: b''})


_COMPONENT = st.text(alphabet='abcXYZ019._-', min_size=1, max_size=8).filter(
    lambda name: name not in ('.', '..'))
_PATHS = st.lists(_COMPONENT, min_size=1, max_size=4).map('/'.join)


class TestRoundTrip(unittest.TestCase):

    @settings(max_examples=200, deadline=None)
    @given(st.dictionaries(_PATHS, st.binary(max_size=64), max_size=6))
    def test_cpio_read_back(self, members):
        # A path that is also a directory of another path is both a file and
        # a directory: the kernel keeps what comes last, not a test case.
        assume(not any(other.startswith(path + '/') for path in members
                       for other in members))
        archive = initrd.cpio(members)
        self.assertEqual(members, initrd.read(archive))
        self.assertEqual(0, len(archive) % 4)
        self.assertEqual(members, initrd.read(archive + bytes(7) + archive))


class TestRead(unittest.TestCase):

    def test_concatenated_and_padded(self):
        first = initrd.cpio({'a/hello': b'HELLO\n', 'data/file': b'first\n'})
        second = gzip.compress(initrd.cpio({'data/file': b'second\n'}))
        third = initrd.build({'data/file': b'third\n', 'xz/x': b'X'})
        data = first + bytes(512) + second + bytes(3) + third + bytes(4096)
        self.assertEqual({'a/hello': b'HELLO\n', 'data/file': b'third\n',
                          'xz/x': b'X'}, initrd.read(data))

    def test_directories_are_not_members(self):
        self.assertEqual({'a/b/c': b'c'},
                         initrd.read(initrd.cpio({'a/b/c': b'c'})))

    def test_padded_names(self):
        # dracut pads names with further NUL bytes.
        name = b'dir/hello\0\0\0\0'
        header = (b'070701' + b'%08x' % 1 + b'%08x' % 0o100644
                  + b'%08x' % 0 * 4 + b'%08x' % 5 + b'%08x' % 0 * 4
                  + b'%08x' % len(name) + b'%08x' % 0)
        entry = header + name
        entry += bytes(-len(entry) % 4) + b'hello' + bytes(3)
        trailer = initrd.cpio({})
        self.assertEqual({'dir/hello': b'hello'},
                         initrd.read(entry + trailer))

    def test_errors(self):
        good = initrd.build({'config.ign': b'{}'})
        for data, message in (
                (b'garbage', 'unknown data at offset 0'),
                (good[:len(good) // 2], 'truncated|corrupt'),
                (good[:20] + b'X' + good[21:], 'corrupt'),
                (initrd.cpio({'a': b'12345678'})[:-130], 'runs past'),
                (b'\x28\xb5\x2f\xfd' + bytes(10), 'zstd'),
                (lzma.compress(initrd.cpio({'a': b''}) + b'junk',
                               check=lzma.CHECK_CRC32),
                 'after the end of the cpio archive')):
            self.assertRaisesRegex(exception.LiveMediaError, message,
                                   initrd.read, data)

    def test_network_files(self):
        members = {'config.ign': b'{}',
                   'etc/coreos-firstboot-network/eth0.nmconnection': b'e',
                   'etc/coreos-firstboot-network/sub/x': b'x'}
        self.assertEqual({'eth0.nmconnection': b'e'},
                         initrd.network_files(members))
        self.assertEqual('etc/coreos-firstboot-network/br0.nmconnection',
                         initrd.network_path('br0.nmconnection'))
