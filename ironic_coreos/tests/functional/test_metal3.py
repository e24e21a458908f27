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

"""End to end: the deployment Metal3's baremetal-operator asks for.

A BareMetalHost with ``customDeploy: {method: install_coreos}`` makes
baremetal-operator set the node's deploy interface to ``custom-agent`` and
deploy it with the step ``install_coreos`` (priority 80, no arguments) and
a config drive given as a JSON object: ``user_data`` is the userData
secret as text, ``meta_data`` the operator's keys plus the metaData secret,
``network_data`` the networkData secret. The real Ironic and the real agent
run it; the real Ignition applies what was installed, as the first boot
would.
"""

import json
import os

from ironic_coreos.tests.functional import test_deploy

KEYFILE_DIR = test_deploy.KEYFILE_DIR
KEY = test_deploy.KEY
META_KEY = test_deploy.META_KEY
HOST = 'worker-0'
BMH_UID = '3f0e6a55-5c55-4a52-9d3b-6f1c52a0a1d7'

# Exactly what baremetal-operator asks for with customDeploy.
METAL3_STEPS = [{'interface': 'deploy', 'step': 'install_coreos',
                 'args': {}, 'priority': 80}]


def metal3_config_drive(node, config, public_keys=True):
    """The config drive baremetal-operator sends for a BareMetalHost.

    :param node: the SimNode (its NIC is the one network_data describes).
    :param config: the Ignition config of the userData secret.
    :param public_keys: whether the metaData secret adds an SSH key.
    """
    meta_data = {'uuid': BMH_UID, 'metal3-namespace': 'metal3',
                 'metal3-name': HOST, 'local-hostname': HOST,
                 'local_hostname': HOST, 'name': HOST}
    if public_keys:
        meta_data['public_keys'] = {'0': META_KEY}
    network_data = {
        'links': [{'id': 'enp1s0', 'type': 'phy', 'mtu': 1500,
                   'ethernet_mac_address': node.mac}],
        'networks': [{'id': 'provisioning', 'type': 'ipv4',
                      'link': 'enp1s0', 'ip_address': '192.0.2.20',
                      'netmask': '255.255.255.0',
                      'routes': [{'network': '0.0.0.0',
                                  'netmask': '0.0.0.0',
                                  'gateway': '192.0.2.1'}]}],
        'services': [{'type': 'dns', 'address': '192.0.2.53'}],
    }
    return {'user_data': json.dumps(config), 'meta_data': meta_data,
            'network_data': network_data}


class Metal3Base(test_deploy.E2ETestCase):

    def deploy_bmh(self, config, **kwargs):
        node = self.node('custom-agent')
        data = self.deploy_and_wait(
            node, config_drive=metal3_config_drive(node, config, **kwargs),
            deploy_steps=METAL3_STEPS)
        self.assertActive(data, node)
        info = self.installed(node)
        return node, json.loads(info['ignition']), self.first_boot(
            info['ignition'])

    def assertUserConfigApplied(self, result):
        self.assertEqual(b'hello from e2e\n', result.read('/etc/motd'))
        self.assertEqual(0o644, result.mode('/etc/motd'))
        self.assertTrue(os.path.isdir(result.path('/var/lib/e2e')))
        self.assertIn(KEY, result.authorized_keys('core'))

    def keyfiles(self, result):
        directory = result.path(KEYFILE_DIR)
        if not os.path.isdir(directory):
            return []
        return sorted(os.listdir(directory))


class Metal3Test(Metal3Base):
    """Defaults: everything the BareMetalHost gave reaches the system."""

    def test_baremetalhost_deploy(self):
        config = test_deploy.user_config()
        node, installed, result = self.deploy_bmh(config)
        self.assertUserConfigApplied(result)
        self.assertEqual(('%s\n' % HOST).encode(),
                         result.read('/etc/hostname'))
        self.assertEqual([KEY, META_KEY], result.authorized_keys('core'))
        self.assertEqual(['enp1s0.nmconnection'], self.keyfiles(result))
        keyfile = KEYFILE_DIR + 'enp1s0.nmconnection'
        self.assertEqual(0o600, result.mode(keyfile))
        text = result.read(keyfile).decode()
        self.assertIn('mac-address=%s' % node.mac.upper(), text)
        self.assertIn('mtu=1500', text)
        self.assertIn('method=manual', text)
        self.assertIn('address1=192.0.2.20/24', text)
        self.assertIn('gateway=192.0.2.1', text)
        self.assertIn('dns=192.0.2.53;', text)
        # The user's entries come first, unchanged.
        self.assertEqual(config['storage']['files'][0],
                         installed['storage']['files'][0])
        self.assertEqual(config['storage']['directories'],
                         installed['storage']['directories'])
        # What has no use on CoreOS is named once, never with its value.
        log = node.logs()
        self.assertEqual(1, log.count('"metal3-namespace", "uuid" not used'),
                         log[-3000:])
        self.assertNotIn(BMH_UID, log)
        self.assertIn('host name %s (meta_data "local-hostname")' % HOST,
                      log)
        for name, text in self.h.all_logs().items():
            self.assertNotIn('hello%20from%20e2e', text, name)

    def test_user_hostname_wins(self):
        config = test_deploy.user_config()
        config['storage']['files'].append(
            {'path': '/etc/hostname', 'mode': 420,
             'contents': {'source': 'data:,db-7.example.com%0A'}})
        node, installed, result = self.deploy_bmh(config)
        self.assertUserConfigApplied(result)
        self.assertEqual(b'db-7.example.com\n', result.read('/etc/hostname'))
        hostnames = [f for f in installed['storage']['files']
                     if f['path'] == '/etc/hostname']
        self.assertEqual(1, len(hostnames))
        # The rest of the node data is still merged.
        self.assertEqual(['enp1s0.nmconnection'], self.keyfiles(result))
        self.assertIn(META_KEY, result.authorized_keys('core'))
        self.assertIn('$.storage.files[1]: the Ignition config writes '
                      '/etc/hostname itself', node.logs())


class Metal3OptionsOffTest(Metal3Base):
    """Agent options off: nothing merged, and the agent says why."""

    harness_args = {'agent_coreos_options': {
        'set_hostname': 'false', 'convert_network_data': 'false'}}

    def test_nothing_merged_reason_logged(self):
        config = test_deploy.user_config()
        node, installed, result = self.deploy_bmh(config, public_keys=False)
        self.assertEqual(config, installed)
        self.assertUserConfigApplied(result)
        self.assertFalse(os.path.exists(result.path('/etc/hostname')))
        self.assertEqual([], self.keyfiles(result))
        log = node.logs()
        self.assertEqual(1, log.count(
            'meta_data "local-hostname" (the host name) is not written to '
            '/etc/hostname: [coreos]set_hostname is false'), log[-3000:])
        self.assertEqual(1, log.count(
            'the config drive network_data (1 link(s), 1 network(s)) is not '
            'converted into NetworkManager keyfiles: '
            '[coreos]convert_network_data is false'))
        self.assertNotIn('192.0.2.20', log)
