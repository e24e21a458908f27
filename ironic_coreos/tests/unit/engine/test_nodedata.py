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

import testtools

from ironic_coreos.engine import configdrive
from ironic_coreos.engine import exception
from ironic_coreos.engine import merge
from ironic_coreos.engine import nodedata

KEY = ('ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAMDAwMDAwMDAwMDAwMDAwMDAwMDAwM'
       'DAwMDAwMDAwMD m@x')
MAC = '52:54:00:aa:bb:01'
KEYFILE = '/etc/NetworkManager/system-connections/port0.nmconnection'
NETWORK_DATA = {
    'links': [{'id': 'port0', 'type': 'phy', 'ethernet_mac_address': MAC}],
    'networks': [{'id': 'n', 'type': 'ipv4_dhcp', 'link': 'port0'}],
}
METAL3_META = {'uuid': 'u-1', 'metal3-namespace': 'ns', 'metal3-name': 'h0',
               'local-hostname': 'h0', 'local_hostname': 'h0', 'name': 'h0'}


def _drive(meta=None, network_data=None, vendor_data=None):
    return configdrive.ConfigDrive(user_data=b'{}', meta_data=meta or {},
                                   network_data=network_data,
                                   vendor_data=vendor_data)


def _keyfile_entry(path, text, mode=0o600):
    return {'path': path, 'mode': mode,
            'contents': {'source': merge.data_url(text.encode())}}


class TestFromConfigDrive(testtools.TestCase):

    def test_metal3_meta_data(self):
        node = nodedata.from_config_drive(
            _drive(dict(METAL3_META, public_keys=[KEY]), NETWORK_DATA))
        self.assertEqual('h0', node.additions.hostname)
        self.assertEqual('local-hostname', node.hostname_key)
        self.assertEqual([KEY], node.additions.ssh_keys)
        self.assertEqual([KEYFILE], [f.path for f in node.additions.files])
        self.assertEqual(0o600, node.additions.files[0].mode)
        self.assertEqual(1, len(node.unused))
        self.assertIn('"metal3-name", "metal3-namespace", "uuid" not used',
                      node.unused[0])
        self.assertNotIn('u-1', node.unused[0])

    def test_hostname_precedence(self):
        for meta, key in (({'hostname': 'a', 'local-hostname': 'a'},
                           'hostname'),
                          ({'local_hostname': 'b', 'name': 'b'},
                           'local_hostname'),
                          ({'name': 'c'}, 'name')):
            node = nodedata.from_config_drive(_drive(meta))
            self.assertEqual(key, node.hostname_key)
            self.assertEqual(meta[key], node.additions.hostname)
            self.assertEqual([], node.unused)

    def test_differing_hostname_keys_reported(self):
        node = nodedata.from_config_drive(_drive(
            dict(METAL3_META, **{'local-hostname': 'w0.example.com'})))
        self.assertEqual('w0.example.com', node.additions.hostname)
        self.assertIn('"local_hostname", "name" differ(s) from '
                      '"local-hostname"', node.unused[0])

    def test_set_hostname_off(self):
        node = nodedata.from_config_drive(_drive({'name': 'h'}),
                                          set_hostname=False)
        self.assertIsNone(node.additions.hostname)
        self.assertIsNone(node.hostname_key)
        self.assertEqual(['meta_data "name" (the host name) is not written '
                          'to /etc/hostname: [coreos]set_hostname is false'],
                         node.unused)

    def test_convert_off(self):
        node = nodedata.from_config_drive(_drive(network_data=NETWORK_DATA),
                                          convert_network_data=False)
        self.assertEqual([], node.additions.files)
        self.assertEqual(['network_data (1 link(s), 1 network(s)) is not '
                          'converted into NetworkManager keyfiles: '
                          '[coreos]convert_network_data is false'],
                         node.unused)

    def test_services_only(self):
        node = nodedata.from_config_drive(_drive(network_data={
            'services': [{'type': 'dns', 'address': '192.0.2.53'}]}))
        self.assertEqual([], node.additions.files)
        self.assertIn('no links or networks', node.unused[0])
        self.assertNotIn('192.0.2.53', node.unused[0])

    def test_not_network_data_reported(self):
        node = nodedata.from_config_drive(_drive(network_data={
            'interfaces': [{'name': 'eth0', 'ipv4': {'address': [
                {'ip': '192.0.2.9', 'prefix-length': 24}]}}]}))
        self.assertEqual([], node.additions.files)
        self.assertIn('the key(s) "interfaces": it is not OpenStack '
                      'network_data', node.unused[0])
        self.assertNotIn('192.0.2.9', node.unused[0])

    def test_vendor_data_reported(self):
        node = nodedata.from_config_drive(_drive(vendor_data={'x': 1}))
        self.assertEqual(['vendor_data not used: CoreOS reads only the '
                          'Ignition config (user_data)'], node.unused)

    def test_explicit_network_data_wins(self):
        other = {'links': [{'id': 'gen0', 'type': 'vif',
                            'ethernet_mac_address': MAC}]}
        node = nodedata.from_config_drive(_drive(network_data=NETWORK_DATA),
                                          network_data=other)
        self.assertEqual(['/etc/NetworkManager/system-connections/'
                          'gen0.nmconnection'],
                         [f.path for f in node.additions.files])

    def test_bad_network_data(self):
        self.assertRaises(exception.NetworkDataError,
                          nodedata.from_config_drive,
                          _drive(network_data={'links': [{'id': 'x',
                                                          'type': 'nope'}]}))

    def test_no_drive(self):
        node = nodedata.from_config_drive(None)
        self.assertEqual(merge.Additions(), node.additions)
        self.assertEqual([], node.unused)


class TestMergeInto(testtools.TestCase):

    def _config(self, *files):
        return {'ignition': {'version': '3.3.0'},
                'storage': {'files': list(files)}}

    def test_user_hostname_wins_and_is_reported(self):
        own = {'path': '/etc/hostname', 'mode': 420,
               'contents': {'source': 'data:,mine%0A'}}
        node = nodedata.from_config_drive(_drive({'name': 'h0'}))
        merged = nodedata.merge_into(self._config(own), node, '3.3.0')
        self.assertEqual(self._config(own), merged)
        self.assertEqual(1, len(node.unused))
        self.assertIn('$.storage.files[0]', node.unused[0])
        self.assertNotIn('mine', node.unused[0])

    def test_user_profile_for_the_same_nic_conflicts(self):
        own = _keyfile_entry(
            '/etc/NetworkManager/system-connections/eth0.nmconnection',
            '[connection]\nid=eth0\ntype=ethernet\ninterface-name=eth0\n'
            '\n[ethernet]\nmac-address=%s\n' % MAC.upper())
        node = nodedata.from_config_drive(_drive(network_data=NETWORK_DATA))
        exc = self.assertRaises(exception.MergeConflict,
                                nodedata.merge_into, self._config(own), node,
                                '3.3.0')
        self.assertIn('$.storage.files[0]', str(exc))
        self.assertIn('eth0.nmconnection', str(exc))
        self.assertIn(KEYFILE, str(exc))
        self.assertIn('mac %s' % MAC, str(exc))

    def test_user_profile_for_another_nic_kept(self):
        own = _keyfile_entry(
            '/etc/NetworkManager/system-connections/eth1.nmconnection',
            '[connection]\nid=eth1\ntype=ethernet\ninterface-name=eth1\n')
        node = nodedata.from_config_drive(_drive(network_data=NETWORK_DATA))
        merged = nodedata.merge_into(self._config(own), node, '3.3.0')
        self.assertEqual(
            [own['path'], KEYFILE],
            [f['path'] for f in merged['storage']['files']])

    def test_remote_user_profile_not_inspected(self):
        own = {'path': '/etc/NetworkManager/system-connections/r.'
                       'nmconnection', 'mode': 0o600,
               'contents': {'source': 'https://example.com/r'}}
        node = nodedata.from_config_drive(_drive(network_data=NETWORK_DATA))
        merged = nodedata.merge_into(self._config(own), node, '3.3.0')
        self.assertEqual(2, len(merged['storage']['files']))


class TestProfileInterfaces(testtools.TestCase):

    def test_mac_and_name(self):
        self.assertEqual(
            {'mac 52:54:00:aa:bb:01', 'name eth0'},
            nodedata.profile_interfaces(
                b'[connection]\nid=x\ninterface-name=eth0\n\n'
                b'[802-3-ethernet]\nmac-address=52:54:00:AA:BB:01\n'))

    def test_unreadable(self):
        self.assertEqual(set(), nodedata.profile_interfaces('no section'))
        self.assertEqual(set(), nodedata.profile_interfaces(''))


class TestCheckCopyNetwork(testtools.TestCase):

    LIVE = {'live.nmconnection': ('[connection]\nid=live\n\n[ethernet]\n'
                                  'mac-address=%s\n' % MAC).encode()}

    def _config(self, kargs=None):
        config = {'ignition': {'version': '3.3.0'}, 'storage': {'files': [
            _keyfile_entry(KEYFILE, '[connection]\nid=port0\n\n[ethernet]\n'
                           'mac-address=%s\n' % MAC)]}}
        if kargs:
            config['kernelArguments'] = {'shouldExist': kargs}
        return config

    def test_no_live_keyfiles(self):
        self.assertIsNone(nodedata.check_copy_network(self._config(), {}))

    def test_ignition_keyfiles_win(self):
        message = nodedata.check_copy_network(self._config(), self.LIVE)
        self.assertIn("first boot's initramfs only", message)
        self.assertIn('port0.nmconnection', message)

    def test_live_kept_without_ignition_keyfiles(self):
        message = nodedata.check_copy_network(
            {'ignition': {'version': '3.3.0'}}, self.LIVE)
        self.assertIn('kept by the installed system', message)

    def test_force_persist_same_nic_refused(self):
        for config, kargs in (
                (self._config(), ['coreos.force_persist_ip']),
                (self._config(['coreos.force_persist_ip=1']), [])):
            exc = self.assertRaises(exception.MergeConflict,
                                    nodedata.check_copy_network, config,
                                    self.LIVE, kargs)
            self.assertIn('live.nmconnection', str(exc))
            self.assertIn(KEYFILE, str(exc))

    def test_force_persist_other_nic(self):
        live = {'other.nmconnection': b'[connection]\ninterface-name=eth9\n'}
        message = nodedata.check_copy_network(
            self._config(), live, ['coreos.force_persist_ip'])
        self.assertIn('no interface is named by both', message)
