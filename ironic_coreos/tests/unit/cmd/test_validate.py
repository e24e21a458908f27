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

import contextlib
import io
import json
import os
import sys
import tempfile
import unittest
from unittest import mock

from ironic_coreos.cmd import validate

SECRET = 'hunter2-very-secret'

GOOD = {'ignition': {'version': '3.2.0'}}
BAD = {'ignition': {'version': '3.2.0'}, 'storag': {},
       'storage': {'files': [{'path': '/etc/x', 'mode': 644, 'contents': {
           'source': 'data:,' + SECRET}}]}}
WARN = {'ignition': {'version': '3.2.0'},
        'storage': {'files': [{'path': '/etc/x', 'mode': 755}]}}
REMOTE = {'ignition': {'version': '3.2.0', 'config': {
    'merge': [{'source': 'https://example.com/x.ign'}]}}}
NEW = {'ignition': {'version': '3.4.0'}}


class TestValidateCommand(unittest.TestCase):

    def setUp(self):
        super().setUp()
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.tmp = tmp.name

    def _write(self, name, config):
        path = os.path.join(self.tmp, name)
        with open(path, 'w') as stream:
            if isinstance(config, str):
                stream.write(config)
            else:
                json.dump(config, stream, indent=2)
        return path

    def _run(self, *args):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = validate.main(list(args))
        return code, out.getvalue()

    def test_valid(self):
        code, out = self._run(self._write('good.ign', GOOD))
        self.assertEqual(0, code)
        self.assertIn('good.ign (spec 3.2.0): valid', out)

    def test_errors_with_path_line_and_fix(self):
        path = self._write('bad.ign', BAD)
        code, out = self._run(path)
        self.assertEqual(1, code)
        self.assertIn('INVALID: 1 error(s), 1 warning(s)', out)
        self.assertIn('error: %s:5:3 $.storag: unknown key "storag"'
                      % path, out)
        self.assertIn('fix: did you mean "storage"?', out)
        self.assertIn('$.storage.files[0].mode', out)
        self.assertIn('fix: write 420 (0o644)', out)
        self.assertNotIn(SECRET, out)

    def test_warnings_only(self):
        code, out = self._run(self._write('warn.ign', WARN))
        self.assertEqual(0, code)
        self.assertIn('valid with 1 warning(s)', out)

    def test_fail_on_warnings(self):
        code, _out = self._run('--fail-on-warnings',
                               self._write('warn.ign', WARN))
        self.assertEqual(1, code)

    def test_several_files(self):
        code, out = self._run(self._write('a.ign', GOOD),
                              self._write('b.ign', BAD))
        self.assertEqual(1, code)
        self.assertIn('a.ign (spec 3.2.0): valid', out)
        self.assertIn('b.ign (spec 3.2.0): INVALID', out)

    def test_max_version(self):
        path = self._write('new.ign', NEW)
        self.assertEqual(0, self._run(path)[0])
        code, out = self._run('--max-version', '3.3.0', path)
        self.assertEqual(1, code)
        self.assertIn('[coreos]max_ignition_version', out)

    def test_unknown_max_version(self):
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            with self.assertRaises(SystemExit) as ctx:
                validate.main(['--max-version', '4.0.0', 'x.ign'])
        self.assertEqual(2, ctx.exception.code)
        self.assertIn('invalid choice', err.getvalue())

    def test_install_device(self):
        path = self._write('wipe.ign', {
            'ignition': {'version': '3.2.0'},
            'storage': {'disks': [{'device': '/dev/sda',
                                   'wipeTable': True}]}})
        self.assertEqual(0, self._run(path)[0])
        code, out = self._run('--install-device', '/dev/sda', path)
        self.assertEqual(1, code)
        self.assertIn('$.storage.disks[0].wipeTable', out)

    def test_json_output(self):
        code, out = self._run('--json', self._write('bad.ign', BAD),
                              self._write('remote.ign', REMOTE))
        self.assertEqual(1, code)
        results = json.loads(out)
        self.assertEqual([False, True], [r['valid'] for r in results])
        self.assertEqual(['$.storag'],
                         [p['path'] for p in results[0]['errors']])
        self.assertEqual('did you mean "storage"?',
                         results[0]['errors'][0]['fix'])
        self.assertEqual(5, results[0]['errors'][0]['line'])
        self.assertEqual('warning', results[0]['warnings'][0]['severity'])
        self.assertTrue(results[1]['needs_network'])
        self.assertEqual('3.2.0', results[1]['version'])
        self.assertNotIn(SECRET, out)

    def test_needs_network_note(self):
        code, out = self._run(self._write('remote.ign', REMOTE))
        self.assertEqual(0, code)
        self.assertIn('needs network access at first boot', out)

    def test_missing_file(self):
        code, out = self._run(os.path.join(self.tmp, 'nope.ign'))
        self.assertEqual(1, code)
        self.assertIn('cannot read the file', out)

    def test_not_json(self):
        code, out = self._run(self._write('cc.ign', '#cloud-config\n'))
        self.assertEqual(1, code)
        self.assertIn('cloud-config', out)

    def test_stdin(self):
        stdin = mock.Mock(spec=['buffer'])
        stdin.buffer = io.BytesIO(json.dumps(GOOD).encode())
        with mock.patch.object(sys, 'stdin', stdin):
            code, out = self._run('-')
        self.assertEqual(0, code)
        self.assertIn('-: valid', out.replace(' (spec 3.2.0)', ''))
