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

import base64
import contextlib
import io
import json
import os
import stat
import tempfile
import unittest
from unittest import mock

from ironic_coreos.cmd import live_media as cmd
from ironic_coreos.engine import initrd
from ironic_coreos.engine import live_media
from ironic_coreos.tests import live_iso

SECRET = 'hunter2-live-secret'
CONFIG = json.dumps({
    'ignition': {'version': '3.3.0'},
    'storage': {'files': [{'path': '/etc/agent.conf', 'mode': 384,
                           'contents': {'source': 'data:,' + SECRET}}]},
}).encode()
KEYFILE = ('[connection]\nid=eth0\ntype=ethernet\n[wifi-security]\npsk=%s\n'
           % SECRET).encode()


class _Terminal(io.TextIOWrapper):

    def isatty(self):
        return True


class _Output(object):
    """Standard output with a binary buffer, like a pipe or a terminal."""

    def __init__(self, tty=False):
        self.raw = io.BytesIO()
        self.text = (_Terminal if tty else io.TextIOWrapper)(
            self.raw, encoding='utf-8', write_through=True)

    def value(self):
        self.text.flush()
        return self.raw.getvalue()


class TestLiveMediaCommand(unittest.TestCase):

    def setUp(self):
        super().setUp()
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.tmp = tmp.name
        self.iso = live_iso.unpack('2023-07.x86_64', self.tmp, 'live.iso')
        with open(self.iso, 'rb') as stream:
            self.original = stream.read()
        self.config = self._file('live.ign', CONFIG)
        self.keyfile = self._file('eth0.nmconnection', KEYFILE)
        self.out = os.path.join(self.tmp, 'node.iso')

    def _file(self, name, data):
        path = os.path.join(self.tmp, name)
        with open(path, 'wb') as stream:
            stream.write(data)
        return path

    def _run(self, *args, stdin=b'', tty=False):
        out = _Output(tty=tty)
        err = io.StringIO()
        fake_stdin = io.TextIOWrapper(io.BytesIO(stdin))
        with contextlib.redirect_stdout(out.text), \
                contextlib.redirect_stderr(err), \
                mock.patch.object(cmd.sys, 'stdin', fake_stdin):
            code = cmd.main(list(args))
        return code, out.value(), err.getvalue()

    def _embed(self, *extra):
        return self._run('iso', 'embed', self.iso, '-i', self.config,
                         '-k', self.keyfile, '-o', self.out, *extra)

    def test_embed(self):
        code, out, err = self._embed('--karg-append', 'console=ttyS0')
        self.assertEqual(0, code, err)
        self.assertEqual(0o600, stat.S_IMODE(os.stat(self.out).st_mode))
        iso = live_media.LiveISO.open(self.out)
        self.assertEqual(CONFIG, iso.ignition)
        self.assertEqual({'eth0.nmconnection': KEYFILE}, iso.keyfiles)
        self.assertTrue(iso.kargs.endswith(' console=ttyS0'))
        self.assertNotIn(SECRET, out.decode() + err)
        with open(self.iso, 'rb') as stream:
            self.assertEqual(self.original, stream.read())

    def test_embed_from_stdin_to_stdout(self):
        code, out, err = self._run('iso', 'embed', self.iso, '-i', '-',
                                   '-o', '-', stdin=CONFIG)
        self.assertEqual(0, code, err)
        self.assertEqual(len(self.original), len(out))
        streamed = self._file('streamed.iso', out)
        self.assertEqual(CONFIG, live_media.LiveISO.open(streamed).ignition)

    def test_refuses_terminal(self):
        code, out, err = self._run('pxe', 'wrap', '-i', self.config,
                                   '-o', '-', tty=True)
        self.assertEqual((1, b''), (code, out))
        self.assertIn('terminal', err)

    def test_existing_config_needs_replace(self):
        self.assertEqual(0, self._embed()[0])
        other = self._file('other.ign', b'{"ignition": {"version": "3.4.0"}}')
        second = os.path.join(self.tmp, 'second.iso')
        code, _out, err = self._run('iso', 'embed', self.out, '-i', other,
                                    '-o', second)
        self.assertEqual(1, code)
        self.assertIn('already has an embedded Ignition config', err)
        self.assertIn('--replace', err)
        self.assertFalse(os.path.exists(second))
        code, _out, err = self._run('iso', 'embed', self.out, '-i', other,
                                    '--replace', '--in-place')
        self.assertEqual(0, code, err)
        iso = live_media.LiveISO.open(self.out)
        self.assertEqual(b'{"ignition": {"version": "3.4.0"}}', iso.ignition)
        self.assertEqual({'eth0.nmconnection': KEYFILE}, iso.keyfiles)

    def test_invalid_config_refused(self):
        bad = self._file('bad.ign', b'{"ignition": {"version": "3.3.0"}, '
                                    b'"storag": {}}')
        code, _out, err = self._run('iso', 'embed', self.iso, '-i', bad,
                                    '-o', self.out)
        self.assertEqual(1, code)
        self.assertIn('is invalid', err)
        self.assertFalse(os.path.exists(self.out))
        code, _out, err = self._run('iso', 'embed', self.iso, '-i', bad,
                                    '--no-validate', '-o', self.out)
        self.assertEqual(0, code, err)

    def test_too_large_leaves_nothing(self):
        big = self._file('big.ign', json.dumps({
            'ignition': {'version': '3.3.0'},
            'storage': {'files': [{'path': '/x', 'contents': {
                'source': 'data:;base64,' + base64.b64encode(
                    os.urandom(264 * 1024)).decode()}}]}}).encode())
        code, _out, err = self._run('iso', 'embed', self.iso, '-i', big,
                                    '-o', self.out)
        self.assertEqual(1, code)
        self.assertIn('holds 262144', err)
        self.assertEqual(sorted(['live.iso', 'live.ign', 'big.ign',
                                 'eth0.nmconnection']),
                         sorted(os.listdir(self.tmp)))

    def test_not_an_iso(self):
        code, _out, err = self._run('iso', 'show', self.config)
        self.assertEqual(1, code)
        self.assertIn('not an ISO 9660 image', err)

    def test_output_exists(self):
        self._file('node.iso', b'keep')
        code, _out, err = self._embed()
        self.assertEqual(1, code)
        self.assertIn('already exists', err)
        with open(self.out, 'rb') as stream:
            self.assertEqual(b'keep', stream.read())

    def test_needs_output_or_in_place(self):
        code, _out, err = self._run('iso', 'embed', self.iso, '-i',
                                    self.config)
        self.assertEqual(1, code)
        self.assertIn('--in-place', err)

    def test_show_hides_secrets(self):
        self.assertEqual(0, self._embed()[0])
        code, out, err = self._run('iso', 'show', self.out)
        self.assertEqual(0, code, err)
        text = out.decode()
        self.assertNotIn(SECRET, text)
        self.assertIn('Ignition config: %d bytes' % len(CONFIG), text)
        self.assertIn('eth0.nmconnection (%d bytes)' % len(KEYFILE), text)
        self.assertIn('current kargs: mitigations=auto,nosmt', text)
        code, out, _err = self._run('iso', 'show', '--json', self.out)
        data = json.loads(out)
        self.assertEqual(len(CONFIG), data['ignition']['size'])
        self.assertEqual('igninfo.json', data['initrd_area']['source'])
        self.assertNotIn(SECRET, out.decode())

    def test_show_ignition_and_keyfiles(self):
        self.assertEqual(0, self._embed()[0])
        code, out, _err = self._run('iso', 'show', '--show-ignition',
                                    self.out)
        self.assertEqual((0, CONFIG), (code, out))
        code, out, _err = self._run('iso', 'show', '--show-keyfiles',
                                    self.out)
        self.assertEqual(0, code)
        self.assertEqual(b'########## eth0.nmconnection ##########\n'
                         + KEYFILE, out)
        code, _out, err = self._run('iso', 'show', '--show-ignition',
                                    self.iso)
        self.assertEqual(1, code)
        self.assertIn('no embedded Ignition config', err)

    def test_kargs(self):
        code, out, _err = self._run('iso', 'kargs', self.iso)
        default = out.decode().strip()
        self.assertEqual(0, code)
        self.assertIn('ignition.platform.id=metal', default)
        code, _out, err = self._run(
            'iso', 'kargs', self.iso, '--delete', 'mitigations=auto,nosmt',
            '--append', 'nomodeset', '--replace',
            'ignition.platform.id=metal=qemu', '-o', self.out)
        self.assertEqual(0, code, err)
        code, out, _err = self._run('iso', 'kargs', self.out)
        self.assertEqual(default.replace('mitigations=auto,nosmt ', '')
                         .replace('id=metal', 'id=qemu') + ' nomodeset',
                         out.decode().strip())
        code, out, _err = self._run('iso', 'kargs', '--default', self.out)
        self.assertEqual(default, out.decode().strip())
        code, _out, err = self._run('iso', 'kargs', self.out, '--append',
                                    'x' * 2000, '--in-place')
        self.assertEqual(1, code)
        self.assertIn('kernel argument areas hold', err)
        code, _out, _err = self._run('iso', 'kargs', self.out, '--reset',
                                     '--in-place')
        self.assertEqual(0, code)
        self.assertEqual(live_media.LiveISO.open(self.out).kargs, default)

    def test_kargs_without_areas(self):
        old = live_iso.unpack('2020-09', self.tmp, 'old.iso')
        code, _out, err = self._run('iso', 'kargs', old)
        self.assertEqual(1, code)
        self.assertIn('no kernel argument areas', err)

    def test_reset(self):
        self.assertEqual(0, self._embed('--karg-append', 'quiet')[0])
        code, _out, err = self._run('iso', 'reset', self.out, '--in-place')
        self.assertEqual(0, code, err)
        with open(self.out, 'rb') as stream:
            self.assertEqual(self.original, stream.read())

    def test_pxe_wrap(self):
        image = os.path.join(self.tmp, 'live-ignition.img')
        code, out, err = self._run('pxe', 'wrap', '-i', self.config,
                                   '-k', self.keyfile, '-o', image)
        self.assertEqual(0, code, err)
        self.assertEqual(0o600, stat.S_IMODE(os.stat(image).st_mode))
        with open(image, 'rb') as stream:
            members = initrd.read(stream.read())
        self.assertEqual(
            {'config.ign': CONFIG,
             'etc/coreos-firstboot-network/eth0.nmconnection': KEYFILE},
            members)
        self.assertNotIn(SECRET, out.decode() + err)
        code, _out, err = self._run('pxe', 'wrap', '-i', self.config,
                                    '-o', image)
        self.assertEqual(1, code)
        self.assertIn('already exists', err)

    def test_pxe_wrap_to_stdout(self):
        code, out, _err = self._run('pxe', 'wrap', '-i', self.config,
                                    '-o', '-')
        self.assertEqual(0, code)
        self.assertEqual({'config.ign': CONFIG}, initrd.read(out))

    def test_duplicate_keyfile_names(self):
        os.mkdir(os.path.join(self.tmp, 'b'))
        other = self._file('b/eth0.nmconnection', KEYFILE)
        code, _out, err = self._run('pxe', 'wrap', '-k', self.keyfile,
                                    '-k', other, '-o', '-')
        self.assertEqual(1, code)
        self.assertIn('Two keyfiles are named eth0.nmconnection', err)
