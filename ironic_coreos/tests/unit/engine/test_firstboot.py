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

"""Merged configs applied by the real Ignition into a scratch root."""

import http.server
import json
import os
import stat
import threading
from unittest import mock

import fixtures
import hypothesis
import testtools

from ironic_coreos.engine import configdrive
from ironic_coreos.engine import exception
from ironic_coreos.engine import ignition
from ironic_coreos.engine import merge
from ironic_coreos.engine import network
from ironic_coreos.tests import firstboot
from ironic_coreos.tests.unit.engine import test_merge

KEY_USER = test_merge.make_key(seed=b'u', comment='user@laptop')
KEY_OPS = test_merge.make_key('ssh-rsa', seed=b'o', comment='ops@bastion')
KEY_NOVA = test_merge.make_key('ecdsa-sha2-nistp256', seed=b'n',
                               comment='nova-key')
NETWORK_DATA = {
    'links': [{'id': 'eth0', 'type': 'phy', 'mtu': 1500,
               'ethernet_mac_address': '52:54:00:12:34:56'}],
    'networks': [{'id': 'net0', 'type': 'ipv4', 'link': 'eth0',
                  'ip_address': '192.0.2.10', 'netmask': '255.255.255.0',
                  'routes': [{'network': '0.0.0.0', 'netmask': '0.0.0.0',
                              'gateway': '192.0.2.1'}]}],
    'services': [{'type': 'dns', 'address': '192.0.2.53'}],
}
USER_CONFIG = {
    'ignition': {'version': '3.0.0'},
    'passwd': {'users': [
        {'name': 'core', 'sshAuthorizedKeys': [KEY_USER]},
        {'name': 'alice', 'groups': ['wheel'],
         'sshAuthorizedKeys': [KEY_OPS]}]},
    'storage': {'files': [{'path': '/etc/motd', 'mode': 0o644,
                           'contents': {'source': 'data:,Welcome%0A'}}],
                'directories': [{'path': '/var/lib/app', 'mode': 0o750}]},
    'systemd': {'units': [{
        'name': 'hello.service', 'enabled': True,
        'contents': '[Unit]\nDescription=Hello\n[Service]\n'
                    'ExecStart=/usr/bin/true\n[Install]\n'
                    'WantedBy=multi-user.target\n'}]},
}


def additions_for(drive):
    files = [merge.File(k.path, k.contents.encode(), k.mode)
             for k in network.keyfiles_from_network_data(drive.network_data)]
    return merge.Additions(hostname=drive.hostname,
                           ssh_keys=drive.public_keys, files=files,
                           kernel_args=['console=ttyS0,115200n8'])


@testtools.skipIf(firstboot.unavailable_reason(),
                  firstboot.unavailable_reason())
class TestFirstBoot(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.base = self.useFixture(fixtures.TempDir()).path

    def apply(self, config, **kwargs):
        result = firstboot.apply(config, base_dir=self.base, **kwargs)
        self.addCleanup(result.cleanup)
        return result

    def test_merged_config_first_boot(self):
        drive = configdrive.read({
            'meta_data': {'hostname': 'node-1.example.com',
                          'public_keys': {'nova': KEY_NOVA}},
            'network_data': NETWORK_DATA,
            'user_data': USER_CONFIG})
        config = merge.merge(json.loads(drive.user_data),
                             additions_for(drive))
        report = ignition.validate(config)
        self.assertTrue(report.valid, report.summary())

        result = self.apply(config)
        root, needs_network = result
        self.assertFalse(needs_network)
        self.assertEqual('3.3.0', result.version)
        self.assertTrue(root.startswith(self.base))

        self.assertEqual(b'node-1.example.com\n',
                         result.read('/etc/hostname'))
        self.assertEqual(0o644, result.mode('/etc/hostname'))
        # The user's key first, then the added one.
        self.assertEqual([KEY_USER, KEY_NOVA], result.authorized_keys())
        self.assertEqual((1000, 1000),
                         result.owner('/home/core/.ssh'))

        keyfiles = network.keyfiles_from_network_data(NETWORK_DATA)
        self.assertEqual(1, len(keyfiles))
        path = keyfiles[0].path
        self.assertTrue(path.startswith(
            '/etc/NetworkManager/system-connections/'))
        self.assertEqual(0o600, result.mode(path))
        self.assertEqual((0, 0), result.owner(path))
        body = result.read(path).decode()
        self.assertEqual(keyfiles[0].contents, body)
        self.assertIn('192.0.2.10/24', body)

        # The user's own entries are untouched.
        self.assertEqual(b'Welcome\n', result.read('/etc/motd'))
        self.assertEqual(0o750, result.mode('/var/lib/app'))
        self.assertEqual([KEY_OPS], result.authorized_keys('alice'))
        self.assertIn(b'alice:', result.read('/etc/passwd'))
        self.assertTrue(os.path.islink(result.path(
            '/etc/systemd/system/multi-user.target.wants/hello.service')))

    def test_core_created_when_config_has_no_users(self):
        config = merge.merge({'ignition': {'version': '3.2.0'}},
                             merge.Additions(ssh_keys=[KEY_NOVA],
                                             hostname='n1'))
        result = self.apply(config)
        self.assertEqual([KEY_NOVA], result.authorized_keys('core'))
        self.assertEqual('/home/core', result.home('core'))
        self.assertEqual(b'n1\n', result.read('/etc/hostname'))
        self.assertEqual('3.2.0', result.version)

    def test_keys_for_other_user(self):
        config = merge.merge({'ignition': {'version': '3.0.0'}},
                             merge.Additions(ssh_keys=[KEY_NOVA],
                                             ssh_user='ops'))
        result = self.apply(config)
        self.assertEqual([KEY_NOVA], result.authorized_keys('ops'))
        self.assertEqual([], result.authorized_keys('core'))
        line = [entry for entry in result.read('/etc/passwd').split(b'\n')
                if entry.startswith(b'ops:')]
        self.assertEqual(b'1001', line[0].split(b':')[2])

    def test_merge_twice_same_first_boot(self):
        adds = merge.Additions(hostname='n1', ssh_keys=[KEY_NOVA])
        once = merge.merge(USER_CONFIG, adds)
        result = self.apply(merge.merge(once, adds))
        self.assertEqual([KEY_USER, KEY_NOVA], result.authorized_keys())

    def test_newer_spec_applied_as_experimental(self):
        config = merge.merge({'ignition': {'version': '3.5.0'}},
                             merge.Additions(hostname='n1'))
        result = self.apply(config)
        self.assertEqual('3.4.0-experimental', result.version)
        self.assertEqual(b'n1\n', result.read('/etc/hostname'))
        exc = self.assertRaises(firstboot.FirstBootError, firstboot.apply,
                                config, base_dir=self.base, downgrade=False)
        self.assertIn('fetch-offline', str(exc))
        self.assertIn('unsupported config version', exc.log)

    def test_needs_network(self):
        server = http.server.ThreadingHTTPServer(
            ('127.0.0.1', 0), _Handler)
        thread = threading.Thread(target=server.serve_forever,
                                  kwargs={'poll_interval': 0.05},
                                  daemon=True)
        thread.start()
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        url = 'http://127.0.0.1:%d/motd' % server.server_address[1]
        config = {'ignition': {'version': '3.0.0'},
                  'storage': {'files': [{'path': '/etc/motd', 'mode': 420,
                                         'contents': {'source': url}}]}}
        result = self.apply(merge.merge(config,
                                        merge.Additions(hostname='n1')))
        self.assertTrue(result.needs_network)
        self.assertEqual(_Handler.body, result.read('/etc/motd'))

    def test_failure_carries_log_and_cleans_up(self):
        config = {'ignition': {'version': '3.0.0'},
                  'storage': {'files': [{'path': '/etc/x',
                                         'contents': {
                                             'source': 'data:,a',
                                             'verification': {
                                                 'hash': 'sha512-' + '0' * 128
                                             }}}]}}
        exc = self.assertRaises(firstboot.FirstBootError, firstboot.apply,
                                config, base_dir=self.base)
        self.assertIn('Ignition stage', str(exc))
        self.assertIn('Ignition log', str(exc))
        self.assertIn('files', exc.log)
        self.assertEqual([], os.listdir(self.base))

    def test_not_json_fails(self):
        exc = self.assertRaises(firstboot.FirstBootError, firstboot.apply,
                                b'#cloud-config\n', base_dir=self.base)
        self.assertIn('fetch-offline', str(exc))

    def test_apply_file_and_fixture(self):
        path = os.path.join(self.base, 'config.ign')
        with open(path, 'w') as stream:
            json.dump(merge.merge({'ignition': {'version': '3.0.0'}},
                                  merge.Additions(hostname='n2')), stream)
        result = firstboot.apply_file(path, base_dir=self.base)
        self.addCleanup(result.cleanup)
        self.assertEqual(b'n2\n', result.read('/etc/hostname'))

        fixture = firstboot.FirstBootFixture(
            {'ignition': {'version': '3.0.0'}}, base_dir=self.base)
        with fixture:
            root = fixture.result.root
            self.assertTrue(os.path.isdir(root))
        self.assertFalse(os.path.exists(root))

    def test_needs_root(self):
        with mock.patch.object(firstboot.os, 'geteuid', autospec=True,
                               return_value=1000) as mock_geteuid:
            exc = self.assertRaises(firstboot.FirstBootError,
                                    firstboot.apply,
                                    {'ignition': {'version': '3.0.0'}},
                                    base_dir=self.base)
        mock_geteuid.assert_called_once_with()
        self.assertIn('needs root', str(exc))
        self.assertEqual([], os.listdir(self.base))

    def test_scratch_dirs_world_executable(self):
        os.chmod(self.base, 0o700)
        result = self.apply({'ignition': {'version': '3.0.0'}})
        self.assertTrue(os.stat(self.base).st_mode & stat.S_IXOTH)
        self.assertTrue(os.stat(result.work_dir).st_mode & stat.S_IXOTH)
        self.assertTrue(os.path.isfile(result.path('/etc/.ignition-result.'
                                                   'json')))


@testtools.skipIf(firstboot.unavailable_reason(),
                  firstboot.unavailable_reason())
class TestFirstBootProperties(testtools.TestCase):

    @hypothesis.settings(max_examples=12, deadline=None, database=None)
    @hypothesis.given(test_merge.user_configs(), test_merge.additions())
    def test_generated_merges_apply(self, config, adds):
        hypothesis.assume(ignition.validate(config).valid)
        skipped = []
        try:
            merged = merge.merge(config, adds, skipped=skipped)
        except exception.MergeConflict:
            hypothesis.assume(False)
        result = firstboot.apply(merged)
        try:
            for item in adds.files:
                self.assertEqual(item.contents, result.read(item.path))
                self.assertEqual(item.mode, result.mode(item.path))
            # When the config writes /etc/hostname itself, its own wins
            # (checked with the user's files below).
            if adds.hostname and not skipped:
                self.assertEqual((adds.hostname + '\n').encode(),
                                 result.read('/etc/hostname'))
            installed = result.authorized_keys(adds.ssh_user)
            for key in adds.ssh_keys:
                self.assertIn(key, installed)
            for entry in config.get('storage', {}).get('files', []):
                self.assertEqual(test_merge.decode(entry),
                                 result.read(entry['path']))
                self.assertEqual(entry['mode'], result.mode(entry['path']))
        finally:
            result.cleanup()


class _Handler(http.server.BaseHTTPRequestHandler):

    body = b'served over http\n'

    def do_GET(self):
        self.send_response(200)
        self.send_header('Content-Length', str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass
