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
import json
import os
import stat

import fixtures
import testtools

from ironic_coreos.cmd import live_ignition
from ironic_coreos.engine import exception
from ironic_coreos.engine import ignition
from ironic_coreos.tests import firstboot

KEY = ('ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGr2zqvbYzvF0rZ4C2c9lQ3aE2WJ'
       '9hVdT3CyPEtq7yTB operator@example')
SECRET = b'{"auths": {"registry.example": {"auth": "SECRET-MARKER"}}}'


def _files(config):
    return {f['path']: f for f in config['storage']['files']}


def _decode(entry):
    header, _, data = entry['contents']['source'].partition(',')
    assert header.endswith(';base64'), header
    return base64.b64decode(data)


class TestBuild(testtools.TestCase):

    def test_minimal_config_validates(self):
        config = live_ignition.build(api_url='http://192.0.2.1:6385')
        report = ignition.validate(config)
        self.assertEqual([], report.errors)
        self.assertFalse(report.needs_network)
        self.assertEqual('3.2.0', config['ignition']['version'])

    def test_agent_config_file(self):
        config = live_ignition.build(
            api_url='http://192.0.2.1:6385',
            options=[('DEFAULT', 'lookup_timeout', '600'),
                     ('coreos', 'install_attempts', '5')])
        entry = _files(config)[live_ignition.CONF_FILE]
        self.assertEqual(0o600, entry['mode'])
        text = _decode(entry).decode()
        self.assertIn('api_url = http://192.0.2.1:6385', text)
        self.assertIn('lookup_timeout = 600', text)
        self.assertIn('[coreos]\nhost_root = /mnt/coreos\n'
                      'install_attempts = 5', text)

    def test_unit_runs_privileged_container_with_host_root(self):
        config = live_ignition.build(image='registry.example/agent:1')
        unit = config['systemd']['units'][0]
        self.assertEqual('ironic-agent.service', unit['name'])
        self.assertTrue(unit['enabled'])
        exec_start = [line for line in unit['contents'].splitlines()
                      if line.startswith('ExecStart=')][0]
        argv = exec_start[len('ExecStart='):].split()
        for flag in ('--privileged', '/dev:/dev', '/sys:/sys',
                     '/run/udev:/run/udev', '/:/mnt/coreos',
                     'registry.example/agent:1'):
            self.assertIn(flag, argv)
        self.assertEqual(['--network', 'host'],
                         argv[argv.index('--network'):][:2])
        self.assertNotIn('--authfile', argv)
        self.assertIn('[Install]', unit['contents'])

    def test_pull_secret_is_private_and_used(self):
        config = live_ignition.build(pull_secret=SECRET)
        entry = _files(config)[live_ignition.AUTH_FILE]
        self.assertEqual(0o600, entry['mode'])
        self.assertEqual(SECRET, _decode(entry))
        self.assertIn('--authfile ' + live_ignition.AUTH_FILE,
                      config['systemd']['units'][0]['contents'])

    def test_ca_bundle(self):
        config = live_ignition.build(ca_bundle=b'-----BEGIN CERT...')
        files = _files(config)
        self.assertIn(live_ignition.CA_FILE, files)
        self.assertIn('cafile = %s' % live_ignition.CA_FILE,
                      _decode(files[live_ignition.CONF_FILE]).decode())

    def test_ssh_keys_for_core(self):
        config = live_ignition.build(ssh_keys=[KEY])
        self.assertEqual([{'name': 'core', 'sshAuthorizedKeys': [KEY]}],
                         config['passwd']['users'])

    def test_no_tls_verify(self):
        config = live_ignition.build(tls_verify=False)
        self.assertIn('--tls-verify=false',
                      config['systemd']['units'][0]['contents'])

    def test_invalid_result_raises(self):
        self.assertRaises(exception.InvalidIgnition, live_ignition.build,
                          ssh_keys=['not a key'])


class TestMain(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.tmp = self.useFixture(fixtures.TempDir()).path

    def test_output_file_is_private(self):
        out = os.path.join(self.tmp, 'live.ign')
        secret = os.path.join(self.tmp, 'auth.json')
        with open(secret, 'wb') as f:
            f.write(SECRET)
        self.assertEqual(0, live_ignition.main(
            ['--api-url', 'http://192.0.2.1:6385', '--pull-secret-file',
             secret, '--set', 'lookup_timeout=600', '-o', out]))
        self.assertEqual(0o600, stat.S_IMODE(os.stat(out).st_mode))
        with open(out) as f:
            config = json.load(f)
        self.assertEqual([], ignition.validate(config).errors)

    def test_bad_option_is_rejected(self):
        stderr = self.useFixture(fixtures.StringStream('stderr')).stream
        self.useFixture(fixtures.MonkeyPatch('sys.stderr', stderr))
        exc = self.assertRaises(SystemExit, live_ignition.main,
                                ['--set', 'no-equals-sign'])
        self.assertEqual(2, exc.code)
        stderr.seek(0)
        self.assertIn('[SECTION.]NAME=VALUE', stderr.read())

    def test_bad_api_url_is_rejected(self):
        stderr = self.useFixture(fixtures.StringStream('stderr')).stream
        self.useFixture(fixtures.MonkeyPatch('sys.stderr', stderr))
        self.assertRaises(SystemExit, live_ignition.main,
                          ['--api-url', 'ftp://192.0.2.1'])
        stderr.seek(0)
        self.assertIn('not an http(s) URL', stderr.read())


class TestFirstBoot(testtools.TestCase):
    """The live system's config applied by the real Ignition."""

    def setUp(self):
        super().setUp()
        reason = firstboot.unavailable_reason()
        if reason:
            self.skipTest(reason)

    def test_live_system_gets_unit_and_config(self):
        config = live_ignition.build(api_url='http://192.0.2.1:6385',
                                     ssh_keys=[KEY], pull_secret=SECRET)
        result = self.useFixture(firstboot.FirstBootFixture(config)).result
        unit = '/etc/systemd/system/ironic-agent.service'
        self.assertIn(b'ExecStart=/usr/bin/podman run', result.read(unit))
        wants = ('/etc/systemd/system/multi-user.target.wants/'
                 'ironic-agent.service')
        self.assertTrue(os.path.lexists(result.path(wants)))
        self.assertEqual(0o600, result.mode(live_ignition.CONF_FILE))
        self.assertEqual(0o600, result.mode(live_ignition.AUTH_FILE))
        self.assertIn(KEY, result.authorized_keys('core'))
