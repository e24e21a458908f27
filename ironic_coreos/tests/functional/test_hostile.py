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

"""End to end: hostile requests through the real API, then a good one.

Each hostile request (a file mode of 5,000 digits, JSON nested 100,000
levels deep, a gzip bomb as the config drive, a list as user_data,
network_data with too many links, a step argument of 4,000 digits) ends
in ``deploy failed`` with an error that names the field and the limit or
the fix and has none of Python's internal text; the same node then
deploys with a good config. One Ironic for the class; the ``coreos``
interface refuses on the conductor (no agent), ``custom-agent`` on the
agent. Needs root; skipped otherwise.
"""

import base64
import json
import zlib

from ironic_coreos.tests.functional import test_deploy
from ironic_coreos.tests.functional.test_deploy import install_step
from ironic_coreos.tests.functional.test_deploy import user_config

# Python's own messages: never what a user reads.
INTERNAL = ('Traceback', 'Exceeds the limit', 'set_int_max_str_digits',
            'has no attribute', 'unhashable', 'NoneType', 'object is not',
            'maximum recursion', 'not subscriptable', 'internal error')


def gzip_bomb(mib=80):
    """base64 of gzip data that expands to ``mib`` MiB of zeros."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = b'\0' * (1024 * 1024)
    blob = b''.join(compressor.compress(chunk) for _ in range(mib))
    return base64.b64encode(blob + compressor.flush()).decode()


def huge_mode_config():
    config = json.dumps(user_config())
    return config.replace('"mode": 420', '"mode": %s' % ('7' * 5000), 1)


def deep_config(depth=100000):
    return ('{"ignition": {"version": "3.3.0"}, "x": ' + '[' * depth
            + ']' * depth + '}')


def many_links(count=257):
    return {'links': [{'id': 'eth%d' % i, 'type': 'phy',
                       'ethernet_mac_address': '52:54:00:00:%02x:%02x'
                       % (i // 256, i % 256)} for i in range(count)]}


class HostileInputTest(test_deploy.E2ETestCase):

    def assertClear(self, data, what, *words):
        self.assertEqual('deploy failed', data['provision_state'], what)
        for word in words:
            self.assertIn(word, data['last_error'], what)
        for marker in INTERNAL:
            self.assertNotIn(marker, data['last_error'], what)

    def test_coreos_interface(self):
        node = self.node('coreos')
        cases = [
            # (what, config drive, deploy steps, words in last_error)
            ('mode of 5,000 digits', {'user_data': huge_mode_config()},
             None, ['config drive user_data', '$.storage.files[0].mode',
                    'out of range']),
            ('100,000 levels of nesting', {'user_data': deep_config()},
             None, ['config drive user_data', 'nested too deeply']),
            ('gzip bomb', gzip_bomb(), None,
             ['instance_info/configdrive', 'expands to more than 64 MiB']),
            ('list as user_data', {'user_data': ['core', 'ssh-ed25519 A']},
             None, ['config drive user_data']),
            ('257 links', {'user_data': user_config(),
                           'network_data': many_links()},
             None, ['config drive network_data', '$.links: 257 entries',
                    'at most 256']),
            ('step argument of 4,000 digits', {'user_data': user_config()},
             install_step(fetch_retries=int('9' * 4000)),
             ['fetch_retries']),
        ]
        for what, drive, steps, words in cases:
            data = self.deploy_and_wait(node, config_drive=drive,
                                        deploy_steps=steps)
            self.assertClear(data, what, *words)
            self.assertEqual(0, node.agent_starts, what)
            self.assertTrue(node.disk_is_blank(), what)
        data = self.deploy_and_wait(node, config_drive={
            'user_data': user_config()})
        self.assertActive(data, node)
        self.assertIsNotNone(self.installed(node)['ignition'])

    def test_custom_agent(self):
        node = self.node()
        data = self.deploy_and_wait(node, config_drive=gzip_bomb(),
                                    deploy_steps=install_step())
        self.assertClear(data, 'gzip bomb', 'Cannot read the config drive',
                         'expands to more than 64 MiB')
        self.assertEqual([], node.installer_invocations())
        self.assertTrue(node.disk_is_blank())
        data = self.deploy_and_wait(node, config_drive={
            'user_data': user_config()}, deploy_steps=install_step())
        self.assertActive(data, node)
        self.assertIsNotNone(self.installed(node)['ignition'])
