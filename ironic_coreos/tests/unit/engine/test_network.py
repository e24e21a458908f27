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

"""Tests of network_data -> NetworkManager keyfiles.

Golden files live in ``network_data/<case>/``: ``network_data.json`` is the
input, ``<name>.nmconnection`` the expected keyfiles and ``ORDER`` their
expected order. Set ``IRONIC_COREOS_REGENERATE_GOLDEN=1`` to rewrite the
expected files from the current output (then review the diff).

Every golden keyfile is also fed to the real NetworkManager keyfile reader
(``nmcli --offline connection modify``), which must accept it and keep the
values that matter; NetworkManager silently normalises bad values (a /33
prefix becomes /24, a VLAN id 5000 is dropped), so exit status 0 alone
proves little.
"""

import configparser
import copy
import importlib.util
import ipaddress
import json
import os
import shutil
import subprocess
import tempfile
from unittest import mock

from hypothesis import assume
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import testtools

from ironic_coreos.engine import exception
from ironic_coreos.engine import network

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN_DIR = os.path.join(HERE, 'network_data')
REGENERATE = os.environ.get('IRONIC_COREOS_REGENERATE_GOLDEN') == '1'
NMCLI = shutil.which('nmcli')

# Keys whose values must survive NetworkManager's reader unchanged.
_CONNECTION_KEYS = ('id', 'uuid', 'type', 'interface-name', 'master',
                    'slave-type')
_ETHERNET_KEYS = ('mac-address', 'cloned-mac-address', 'mtu')
_VLAN_KEYS = ('id', 'parent')


def _parse_keyfile(text):
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str
    parser.read_string(text)
    return parser


def _ip_semantics(section):
    """Addresses, gateway, routes, DNS and method of an [ipvX] section.

    NetworkManager 1.42 writes the gateway into ``address1=IP/P,GW``; both
    spellings give the same result here.
    """
    result = {'method': section.get('method'), 'addresses': [],
              'gateway': section.get('gateway'), 'routes': [], 'dns': []}
    number = 1
    while 'address%d' % number in section:
        address, _, gateway = section['address%d' % number].partition(',')
        result['addresses'].append(address.lower())
        if gateway:
            result['gateway'] = gateway
        number += 1
    number = 1
    while 'route%d' % number in section:
        result['routes'].append(section['route%d' % number])
        number += 1
    if section.get('dns'):
        result['dns'] = [s for s in section['dns'].split(';') if s]
    return result


def semantics(text):
    """The values of a keyfile that NetworkManager must not change."""
    parser = _parse_keyfile(text)
    result = {}
    for title, keys in (('connection', _CONNECTION_KEYS),
                        ('ethernet', _ETHERNET_KEYS),
                        ('vlan', _VLAN_KEYS)):
        if parser.has_section(title):
            values = {k: parser[title][k] for k in keys
                      if k in parser[title]}
            for key in ('mac-address', 'cloned-mac-address'):
                if key in values:
                    values[key] = values[key].upper()
            if values:
                result[title] = values
    if parser.has_section('bond'):
        result['bond'] = dict(parser['bond'])
    for title in ('ipv4', 'ipv6'):
        if parser.has_section(title):
            result[title] = _ip_semantics(parser[title])
    return result


def nm_roundtrip(contents):
    """Read a keyfile with NetworkManager's own reader and write it back.

    :returns: (exit status, stdout, stderr) of nmcli.
    """
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, 'test.nmconnection')
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, 'w') as stream:
            stream.write(contents)
        with open(path) as stdin:
            proc = subprocess.run(
                [NMCLI, '--offline', 'connection', 'modify',
                 'connection.zone', ''],
                stdin=stdin, capture_output=True, text=True, timeout=60,
                check=False)
    return proc.returncode, proc.stdout, proc.stderr


def load_case(case):
    """The input of a golden case.

    :returns: the network_data dict, or None if it is not available.
    """
    if case == 'ironic_sample':
        # As shipped: its networks are on bond member interface0.
        return ironic_sample()
    with open(os.path.join(GOLDEN_DIR, case, 'network_data.json')) as f:
        return json.load(f)


def ironic_sample():
    """Ironic's own network_data sample, read from the installed package.

    :returns: the sample as a dict, or None if ironic is not installed.
    """
    spec = importlib.util.find_spec('ironic')
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], 'tests',
                        'json_samples', 'network_data.json')
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


class GoldenTestCase(testtools.TestCase):
    """The converter's output for each case equals the golden files."""

    maxDiff = None

    def _check(self, case, expected_warnings=()):
        network_data = load_case(case)
        if network_data is None:
            self.skipTest('the input of %s is not available' % case)
        warnings = []
        keyfiles = network.keyfiles_from_network_data(network_data,
                                                      warnings=warnings)
        self.assertEqual(list(expected_warnings), warnings)
        case_dir = os.path.join(GOLDEN_DIR, case)
        if REGENERATE:
            for name in os.listdir(case_dir):
                if name.endswith('.nmconnection'):
                    os.unlink(os.path.join(case_dir, name))
            for keyfile in keyfiles:
                with open(os.path.join(case_dir, keyfile.name
                                       + '.nmconnection'), 'w') as f:
                    f.write(keyfile.contents)
            with open(os.path.join(case_dir, 'ORDER'), 'w') as f:
                f.write(''.join(k.name + '\n' for k in keyfiles))
        with open(os.path.join(case_dir, 'ORDER')) as f:
            order = f.read().split()
        self.assertEqual(order, [k.name for k in keyfiles])
        for keyfile in keyfiles:
            with open(os.path.join(case_dir,
                                   keyfile.name + '.nmconnection')) as f:
                self.assertEqual(f.read(), keyfile.contents, keyfile.name)
            self.assertEqual(
                '/etc/NetworkManager/system-connections/%s.nmconnection'
                % keyfile.name, keyfile.path)
            self.assertEqual(0o600, keyfile.mode)
        # Reproducible: a second run gives exactly the same keyfiles.
        self.assertEqual(keyfiles, network.keyfiles_from_network_data(
            copy.deepcopy(network_data)))
        return {k.name: _parse_keyfile(k.contents) for k in keyfiles}

    def test_static_ipv4(self):
        parsed = self._check('static_ipv4')
        ipv4 = parsed['tap1a2b3c4d-5e']['ipv4']
        self.assertEqual('192.0.2.10/24', ipv4['address1'])
        self.assertEqual('192.0.2.1', ipv4['gateway'])
        self.assertEqual('198.51.100.0/23,192.0.2.254', ipv4['route1'])
        self.assertEqual('192.0.2.53;198.51.100.53;', ipv4['dns'])
        self.assertEqual('disabled',
                         parsed['tap1a2b3c4d-5e']['ipv6']['method'])

    def test_static_ipv6_non_64(self):
        parsed = self._check('static_ipv6')
        ipv6 = parsed['eno1']['ipv6']
        self.assertEqual('manual', ipv6['method'])
        self.assertEqual('2001:db8:0:a100::10/56', ipv6['address1'])
        self.assertEqual('2001:db8:0:a100::1', ipv6['gateway'])
        self.assertEqual('2001:db8:ff00::/40,2001:db8:0:a100::fe',
                         ipv6['route1'])
        self.assertEqual('disabled', parsed['eno1']['ipv4']['method'])

    def test_dual_stack(self):
        parsed = self._check('dual_stack')['tapdeadbeef-01']
        self.assertEqual('10.20.30.40/22', parsed['ipv4']['address1'])
        self.assertEqual('fd12:3456:789a:1::40/64',
                         parsed['ipv6']['address1'])
        self.assertEqual('fe80::1', parsed['ipv6']['gateway'])
        # Per-network servers first, then the global ones, no repeats,
        # each in its own family.
        self.assertEqual('10.20.28.2;9.9.9.9;', parsed['ipv4']['dns'])
        self.assertEqual('fd12:3456:789a:1::2;', parsed['ipv6']['dns'])
        self.assertEqual('1450', parsed['ethernet']['mtu'])

    def test_dhcp(self):
        parsed = self._check('dhcp')['interface0']
        self.assertEqual('auto', parsed['ipv4']['method'])
        self.assertEqual('auto', parsed['ipv6']['method'])
        # Nova sends "mtu": null; nothing is written then.
        self.assertNotIn('mtu', parsed['ethernet'])

    def test_slaac_and_dhcpv6(self):
        parsed = self._check('slaac')
        slaac = parsed['nic-slaac']['ipv6']
        self.assertEqual('auto', slaac['method'])
        self.assertNotIn('address1', slaac)
        self.assertEqual('2001:db8:60::/48,fe80::1', slaac['route1'])
        self.assertEqual('2001:db8:6::53;', slaac['dns'])
        self.assertEqual('disabled', parsed['nic-slaac']['ipv4']['method'])
        self.assertEqual('auto', parsed['nic-stateless']['ipv6']['method'])
        stateful = parsed['nic-stateful']
        self.assertEqual('auto', stateful['ipv6']['method'])
        # No address, so the default route cannot be gateway=.
        self.assertNotIn('gateway', stateful['ipv6'])
        self.assertEqual('::/0,fe80::1', stateful['ipv6']['route1'])
        self.assertEqual('auto', stateful['ipv4']['method'])

    def test_bond_of_two_nics(self):
        parsed = self._check('bond')
        bond = parsed['bond0']
        self.assertEqual('bond', bond['connection']['type'])
        self.assertEqual('bond0', bond['connection']['interface-name'])
        self.assertEqual({'mode': '802.3ad', 'miimon': '100',
                          'lacp_rate': 'fast', 'updelay': '200',
                          'xmit_hash_policy': 'layer3+4'},
                         dict(bond['bond']))
        self.assertEqual('B8:59:9F:10:00:01',
                         bond['ethernet']['cloned-mac-address'])
        self.assertEqual('172.16.10.21/24', bond['ipv4']['address1'])
        for name, mac in (('port-a', 'B8:59:9F:10:00:01'),
                          ('port-b', 'B8:59:9F:10:00:02')):
            member = parsed[name]
            self.assertEqual(bond['connection']['uuid'],
                             member['connection']['master'])
            self.assertEqual('bond', member['connection']['slave-type'])
            self.assertEqual(mac, member['ethernet']['mac-address'])
            self.assertFalse(member.has_section('ipv4'))
            self.assertFalse(member.has_section('ipv6'))

    def test_vlan_on_bond(self):
        parsed = self._check('vlan_on_bond')
        bond = parsed['bond0']
        self.assertEqual('active-backup', bond['bond']['mode'])
        # The bond only carries VLANs: no DHCP on it.
        self.assertEqual('disabled', bond['ipv4']['method'])
        self.assertEqual('disabled', bond['ipv6']['method'])
        public = parsed['public']
        self.assertEqual('100', public['vlan']['id'])
        self.assertEqual(bond['connection']['uuid'],
                         public['vlan']['parent'])
        self.assertEqual('bond0.100', public['connection']['interface-name'])
        self.assertEqual('02:00:00:00:01:00',
                         public['ethernet']['cloned-mac-address'])
        self.assertEqual('auto', public['ipv6']['method'])
        self.assertEqual('203.0.113.53;', public['ipv4']['dns'])
        storage = parsed['storage']
        self.assertEqual('bond0.300',
                         storage['connection']['interface-name'])
        self.assertEqual('10.30.0.21/16', storage['ipv4']['address1'])
        self.assertEqual('203.0.113.53;', storage['ipv4']['dns'])

    def test_vlan_on_nic(self):
        parsed = self._check('vlan_on_nic')
        trunk = parsed['trunk']
        self.assertEqual('52:54:00:7A:00:01', trunk['ethernet']['mac-address'])
        self.assertEqual('disabled', trunk['ipv4']['method'])
        tagged = parsed['tagged']
        self.assertEqual(trunk['connection']['uuid'],
                         tagged['vlan']['parent'])
        self.assertEqual('42', tagged['vlan']['id'])
        self.assertEqual('trunk.42', tagged['connection']['interface-name'])
        self.assertEqual('52:54:00:7A:00:42',
                         tagged['ethernet']['cloned-mac-address'])
        self.assertEqual('192.168.42.5/24', tagged['ipv4']['address1'])

    def test_several_networks_on_one_link(self):
        parsed = self._check('multi_address')['enp1s0']
        ipv4 = parsed['ipv4']
        self.assertEqual('192.0.2.5/24', ipv4['address1'])
        self.assertEqual('198.51.100.5/25', ipv4['address2'])
        self.assertEqual('192.0.2.1', ipv4['gateway'])
        # The second default route goes through another gateway: kept.
        self.assertEqual('0.0.0.0/0,198.51.100.1', ipv4['route1'])
        self.assertEqual('203.0.113.0/24,198.51.100.126', ipv4['route2'])
        self.assertEqual('203.0.113.128/25', ipv4['route3'])
        self.assertEqual('192.0.2.53;', ipv4['dns'])
        self.assertEqual('2001:db8:5::5/64', parsed['ipv6']['address1'])
        self.assertEqual('2001:db8:6::5/48', parsed['ipv6']['address2'])
        self.assertEqual('2001:db8:5::53;', parsed['ipv6']['dns'])

    def test_ironic_generated(self):
        # The shape Ironic's configdrive_utils.generate_instance_network_data
        # builds from a port and a port group (via get_neutron_port_data):
        # ifaceN ids, a bond without bond_mode, "::0" default routes, one
        # DNS service per subnet with repeats.
        parsed = self._check('ironic_generated')
        bond = parsed['iface1']
        self.assertEqual('iface1', bond['connection']['interface-name'])
        self.assertEqual('active-backup', bond['bond']['mode'])
        self.assertEqual('52:54:00:CF:2D:40',
                         bond['ethernet']['cloned-mac-address'])
        self.assertEqual('10.0.0.1', bond['ipv4']['gateway'])
        self.assertEqual('172.20.0.0/16,10.0.0.254', bond['ipv4']['route1'])
        self.assertEqual('10.0.0.2;10.0.0.3;', bond['ipv4']['dns'])
        self.assertEqual('2001:db8:1::15/64', bond['ipv6']['address1'])
        self.assertEqual('2001:db8:1::1', bond['ipv6']['gateway'])
        self.assertNotIn('dns', bond['ipv6'])
        for name in ('iface2', 'iface3'):
            self.assertEqual(bond['connection']['uuid'],
                             parsed[name]['connection']['master'])
        plain = parsed['iface0']
        self.assertEqual('192.168.100.20/24', plain['ipv4']['address1'])
        self.assertNotIn('gateway', plain['ipv4'])
        self.assertEqual('10.0.0.2;10.0.0.3;', plain['ipv4']['dns'])

    def test_ironic_sample(self):
        # Ironic's tests/json_samples/network_data.json as shipped: its
        # networks are on bond member interface0; the bond carries them.
        parsed = self._check('ironic_sample', [
            'network_data $.networks[0]: link "interface0" is a member of '
            'bond "bond0"; the network was moved to the bond',
            'network_data $.networks[1]: link "interface0" is a member of '
            'bond "bond0"; the network was moved to the bond'])
        bond = parsed['bond0']
        self.assertEqual('802.3ad', bond['bond']['mode'])
        self.assertEqual('10.184.0.244/20', bond['ipv4']['address1'])
        self.assertEqual('23.253.157.1', bond['ipv4']['gateway'])
        self.assertEqual('10.0.0.0/8,11.0.0.1', bond['ipv4']['route1'])
        # ip_address "2001:cdba::3257:9652/24" carries its own prefix.
        self.assertEqual('2001:cdba::3257:9652/24', bond['ipv6']['address1'])
        self.assertEqual('fd00::1', bond['ipv6']['gateway'])
        self.assertEqual('::/48,fd00::1:1', bond['ipv6']['route1'])
        member = parsed['interface0']
        self.assertEqual(bond['connection']['uuid'],
                         member['connection']['master'])
        self.assertFalse(member.has_section('ipv4'))
        self.assertFalse(member.has_section('ipv6'))
        vlan = parsed['vlan0']
        self.assertEqual(bond['connection']['uuid'], vlan['vlan']['parent'])
        self.assertEqual('69.20.0.164;69.20.0.196;8.8.8.8;8.8.4.4;',
                         vlan['ipv4']['dns'])
        self.assertEqual('disabled', parsed['interface2']['ipv4']['method'])


CASES = ('static_ipv4', 'static_ipv6', 'dual_stack', 'dhcp', 'slaac', 'bond',
         'vlan_on_bond', 'vlan_on_nic', 'multi_address', 'ironic_generated',
         'ironic_sample')


@testtools.skipIf(NMCLI is None, 'nmcli (network-manager) is not installed')
class NetworkManagerTestCase(testtools.TestCase):
    """NetworkManager's own keyfile reader accepts every golden keyfile.

    ``nmcli --offline connection modify`` reads a keyfile on stdin through
    NetworkManager's verification and prints it back normalised; it must
    exit 0 and keep addresses, prefixes, gateways, routes, DNS, MACs, bond
    options, VLAN ids and parents as they were.
    """

    def test_golden_cases(self):
        checked = 0
        for case in CASES:
            network_data = load_case(case)
            if network_data is None:
                continue
            for keyfile in network.keyfiles_from_network_data(network_data):
                status, out, err = nm_roundtrip(keyfile.contents)
                what = '%s/%s' % (case, keyfile.name)
                self.assertEqual(0, status, '%s: %s' % (what, err))
                self.assertEqual(semantics(keyfile.contents), semantics(out),
                                 what)
                checked += 1
        self.assertGreaterEqual(checked, 25)

    def test_ironic_sample_as_shipped(self):
        # The unmodified sample: NetworkManager's reader accepts every
        # keyfile, and the addresses declared on bond member interface0
        # come back from the reader on bond0.
        sample = ironic_sample()
        if sample is None:
            self.skipTest('ironic is not installed')
        warnings = []
        keyfiles = network.keyfiles_from_network_data(sample,
                                                      warnings=warnings)
        self.assertEqual(2, len(warnings))
        for index, message in enumerate(warnings):
            self.assertIn('$.networks[%d]' % index, message)
            self.assertIn('"interface0"', message)
            self.assertIn('"bond0"', message)
        read_back = {}
        for keyfile in keyfiles:
            status, out, err = nm_roundtrip(keyfile.contents)
            self.assertEqual(0, status, '%s: %s' % (keyfile.name, err))
            self.assertEqual(semantics(keyfile.contents), semantics(out),
                             keyfile.name)
            read_back[keyfile.name] = semantics(out)
        self.assertEqual(['10.184.0.244/20'],
                         read_back['bond0']['ipv4']['addresses'])
        self.assertEqual(['2001:cdba::3257:9652/24'],
                         read_back['bond0']['ipv6']['addresses'])
        self.assertNotIn('ipv4', read_back['interface0'])
        self.assertNotIn('ipv6', read_back['interface0'])
        self.assertEqual('bond',
                         read_back['interface0']['connection']['slave-type'])

    def test_networks_of_two_members(self):
        # Two members with different static addresses and default gateways
        # of one family: the bond gets both, one gateway= and a route.
        warnings = []
        keyfiles = network.keyfiles_from_network_data(
            {'links': _bond_links(),
             'networks': [
                 _v4(link='nic0', routes=[_DEFAULT_V4]),
                 _v4(link='nic1', ip='198.51.100.7', netmask=25,
                     routes=[{'network': '0.0.0.0', 'netmask': 0,
                              'gateway': '198.51.100.1'}])]},
            warnings=warnings)
        self.assertEqual(2, len(warnings))
        read_back = {}
        for keyfile in keyfiles:
            status, out, err = nm_roundtrip(keyfile.contents)
            self.assertEqual(0, status, '%s: %s' % (keyfile.name, err))
            self.assertEqual(semantics(keyfile.contents), semantics(out),
                             keyfile.name)
            read_back[keyfile.name] = semantics(out)
        ipv4 = read_back['bond0']['ipv4']
        self.assertEqual(['192.0.2.10/24', '198.51.100.7/25'],
                         ipv4['addresses'])
        self.assertEqual('192.0.2.1', ipv4['gateway'])
        self.assertEqual(['0.0.0.0/0,198.51.100.1'], ipv4['routes'])

    def test_oracle_notices_normalisation(self):
        # A /33 prefix is silently turned into /24 by NetworkManager: the
        # exit status is 0, the comparison of values is what catches it.
        contents = ('[connection]\nid=x\n'
                    'uuid=2b0c6f4e-7f4c-4a57-9a35-1b6d2d1e0c01\n'
                    'type=ethernet\n\n[ethernet]\n'
                    'mac-address=52:54:00:00:00:01\n\n'
                    '[ipv4]\nmethod=manual\naddress1=192.0.2.10/33\n')
        status, out, err = nm_roundtrip(contents)
        self.assertEqual(0, status, err)
        self.assertNotEqual(semantics(contents)['ipv4']['addresses'],
                            semantics(out)['ipv4']['addresses'])

    def test_oracle_rejects_hard_errors(self):
        contents = ('[connection]\nid=x\n'
                    'uuid=2b0c6f4e-7f4c-4a57-9a35-1b6d2d1e0c01\n'
                    'type=ethernet\n\n[ipv4]\nmethod=manual\n'
                    'gateway=192.0.2.1\n')
        status, out, err = nm_roundtrip(contents)
        self.assertNotEqual(0, status)


def _nic(link_id='nic0', mac='52:54:00:00:00:01', **extra):
    link = {'id': link_id, 'type': 'phy', 'ethernet_mac_address': mac}
    link.update(extra)
    return link


def _v4(link='nic0', ip='192.0.2.10', netmask='255.255.255.0', **extra):
    net = {'type': 'ipv4', 'link': link, 'ip_address': ip,
           'netmask': netmask}
    net.update(extra)
    return net


def _bond_links():
    """Two NICs nic0 and nic1 in bond bond0."""
    return [_nic(), _nic('nic1', '52:54:00:00:00:02'),
            {'id': 'bond0', 'type': 'bond', 'bond_links': ['nic0', 'nic1']}]


_DEFAULT_V4 = {'network': '0.0.0.0', 'netmask': '0.0.0.0',
               'gateway': '192.0.2.1'}


def _convert(links=(), networks=(), services=(), warnings=None):
    return network.keyfiles_from_network_data(
        {'links': list(links), 'networks': list(networks),
         'services': list(services)}, warnings=warnings)


def _by_name(keyfiles):
    return {k.name: _parse_keyfile(k.contents) for k in keyfiles}


class ConversionTestCase(testtools.TestCase):
    """Details of the mapping that golden files do not pin down."""

    def test_no_ironic_or_agent_import(self):
        with open(network.__file__) as f:
            source = f.read()
        self.assertNotRegex(source, r'(?m)^\s*(from|import) ironic\b')
        self.assertNotIn('ironic_python_agent', source)

    def test_empty(self):
        self.assertEqual([], network.keyfiles_from_network_data({}))
        self.assertEqual([], _convert())

    def test_keyfile_path_and_mode(self):
        keyfile = network.Keyfile(name='eth0', contents='')
        self.assertEqual(
            '/etc/NetworkManager/system-connections/eth0.nmconnection',
            keyfile.path)
        self.assertEqual(0o600, keyfile.mode)

    def test_order_follows_links(self):
        names = [k.name for k in _convert(
            [_nic('b', '52:54:00:00:00:02'), _nic('a'),
             _nic('c', '52:54:00:00:00:03')])]
        self.assertEqual(['b', 'a', 'c'], names)

    def test_uuids_are_deterministic_and_distinct(self):
        links = [_nic('a'), _nic('b', '52:54:00:00:00:02')]
        first = _by_name(_convert(links))
        second = _by_name(_convert(copy.deepcopy(links)))
        self.assertEqual(first['a']['connection']['uuid'],
                         second['a']['connection']['uuid'])
        self.assertNotEqual(first['a']['connection']['uuid'],
                            first['b']['connection']['uuid'])

    def test_unsafe_link_ids_give_safe_names(self):
        keyfiles = _convert([
            _nic('../etc/passwd'),
            _nic('a b', '52:54:00:00:00:02'),
            _nic('a/b', '52:54:00:00:00:03'),
            _nic('...', '52:54:00:00:00:04')])
        names = [k.name for k in keyfiles]
        self.assertEqual(['_etc_passwd', 'a_b', 'a_b-1', 'link3'], names)
        for keyfile in keyfiles:
            self.assertEqual('/etc/NetworkManager/system-connections',
                             os.path.dirname(keyfile.path))

    def test_long_bond_id_gets_a_short_interface_name(self):
        bond_id = 'f52c664d-ca02-4c27-94f9-327dcb67d208'
        parsed = _by_name(_convert([
            _nic('m1'), _nic('m2', '52:54:00:00:00:02'),
            {'id': bond_id, 'type': 'bond', 'bond_links': ['m1', 'm2']},
            {'id': 'v', 'type': 'vlan', 'vlan_link': bond_id,
             'vlan_id': 7}]))
        self.assertEqual('bond0',
                         parsed[bond_id]['connection']['interface-name'])
        self.assertEqual('bond0.7',
                         parsed['v']['connection']['interface-name'])

    def test_long_nic_id_gives_short_vlan_interface_name(self):
        parsed = _by_name(_convert([
            _nic('86ffb399-6dd4-4e6c-8eb0-069d608bc5ca'),
            {'id': 'v', 'type': 'vlan', 'vlan_id': 3000,
             'vlan_link': '86ffb399-6dd4-4e6c-8eb0-069d608bc5ca'}]))
        self.assertEqual('vlan3000',
                         parsed['v']['connection']['interface-name'])

    def test_bond_modes_are_normalised(self):
        cases = ((0, 'balance-rr'), ('1', 'active-backup'),
                 ('balance_xor', 'balance-xor'), (3, 'broadcast'),
                 ('LACP', '802.3ad'), ('802.3ad', '802.3ad'),
                 (5, 'balance-tlb'), ('6', 'balance-alb'),
                 (None, 'active-backup'), ('active-backup', 'active-backup'))
        for mode_value, expected in cases:
            bond = {'id': 'bond0', 'type': 'bond', 'bond_links': ['nic0']}
            if mode_value is not None:
                bond['bond_mode'] = mode_value
            parsed = _by_name(_convert([_nic(), bond]))
            self.assertEqual(expected, parsed['bond0']['bond']['mode'],
                             mode_value)

    def test_bond_options(self):
        parsed = _by_name(_convert([_nic(), {
            'id': 'bond0', 'type': 'bond', 'bond_links': ['nic0'],
            'bond_mode': 'active-backup', 'bond_lacp_rate': 1,
            'bond_arp_interval': 1000,
            'bond_arp_ip_target': ['192.0.2.1', '192.0.2.2'],
            'bond_ad_select': 'bandwidth', 'bond_min_links': '1'}]))
        self.assertEqual({'mode': 'active-backup', 'lacp_rate': 'fast',
                          'arp_interval': '1000',
                          'arp_ip_target': '192.0.2.1,192.0.2.2',
                          'ad_select': 'bandwidth', 'min_links': '1'},
                         dict(parsed['bond0']['bond']))

    def test_ip_address_with_prefix_and_matching_netmask(self):
        parsed = _by_name(_convert(
            [_nic()], [_v4(ip='192.0.2.10/24', netmask='255.255.255.0')]))
        self.assertEqual('192.0.2.10/24', parsed['nic0']['ipv4']['address1'])

    def test_netmask_as_prefix_forms(self):
        for netmask in (24, '24', '/24', '255.255.255.0'):
            parsed = _by_name(_convert([_nic()], [_v4(netmask=netmask)]))
            self.assertEqual('192.0.2.10/24',
                             parsed['nic0']['ipv4']['address1'], netmask)

    def test_every_ipv6_netmask_converts(self):
        for prefix in range(129):
            mask = ipaddress.IPv6Network('::/%d' % prefix).netmask
            net = {'type': 'ipv6', 'link': 'nic0',
                   'ip_address': '2001:db8::10', 'netmask': str(mask)}
            parsed = _by_name(_convert([_nic()], [net]))
            self.assertEqual('2001:db8::10/%d' % prefix,
                             parsed['nic0']['ipv6']['address1'])

    def test_every_ipv4_netmask_converts(self):
        for prefix in range(33):
            mask = ipaddress.IPv4Network('0.0.0.0/%d' % prefix).netmask
            parsed = _by_name(_convert([_nic()],
                                       [_v4(netmask=str(mask))]))
            self.assertEqual('192.0.2.10/%d' % prefix,
                             parsed['nic0']['ipv4']['address1'])

    def test_static_and_dhcp_on_one_family(self):
        parsed = _by_name(_convert([_nic()], [
            _v4(routes=[{'network': '0.0.0.0', 'netmask': '0.0.0.0',
                         'gateway': '192.0.2.1'}]),
            {'type': 'ipv4_dhcp', 'link': 'nic0'}]))
        ipv4 = parsed['nic0']['ipv4']
        self.assertEqual('auto', ipv4['method'])
        self.assertEqual('192.0.2.10/24', ipv4['address1'])
        self.assertEqual('192.0.2.1', ipv4['gateway'])

    def test_default_route_without_gateway_is_on_link(self):
        parsed = _by_name(_convert([_nic()], [_v4(routes=[
            {'network': '0.0.0.0', 'netmask': '0.0.0.0',
             'gateway': '0.0.0.0'}])]))
        ipv4 = parsed['nic0']['ipv4']
        self.assertNotIn('gateway', ipv4)
        self.assertEqual('0.0.0.0/0', ipv4['route1'])

    def test_repeated_networks_are_merged(self):
        parsed = _by_name(_convert([_nic()], [_v4(), _v4()]))
        self.assertNotIn('address2', parsed['nic0']['ipv4'])

    def test_dns_of_a_family_goes_to_configured_profiles_only(self):
        parsed = _by_name(_convert(
            [_nic(), _nic('nic1', '52:54:00:00:00:02')],
            [_v4(), {'type': 'ipv6_slaac', 'link': 'nic1'}],
            [{'type': 'dns', 'address': '192.0.2.53'},
             {'type': 'dns', 'address': '2001:db8::53'}]))
        self.assertEqual('192.0.2.53;', parsed['nic0']['ipv4']['dns'])
        self.assertNotIn('dns', parsed['nic0']['ipv6'])
        self.assertNotIn('dns', parsed['nic1']['ipv4'])
        self.assertEqual('2001:db8::53;', parsed['nic1']['ipv6']['dns'])

    def test_vlan_ethernet_mac_address_is_its_mac(self):
        parsed = _by_name(_convert([_nic(), {
            'id': 'v', 'type': 'vlan', 'vlan_link': 'nic0', 'vlan_id': 9,
            'ethernet_mac_address': '52:54:00:00:00:09'}]))
        self.assertEqual('52:54:00:00:00:09',
                         parsed['v']['ethernet']['cloned-mac-address'])

    def test_mac_with_dashes_and_lower_case(self):
        parsed = _by_name(_convert([_nic(mac='52-54-00-ab-cd-ef')]))
        self.assertEqual('52:54:00:AB:CD:EF',
                         parsed['nic0']['ethernet']['mac-address'])

    def test_network_on_member_moves_to_bond(self):
        warnings = []
        keyfiles = _convert(
            _bond_links(),
            [_v4(link='nic1', routes=[_DEFAULT_V4],
                 dns_nameservers=['192.0.2.53']),
             {'type': 'ipv6_slaac', 'link': 'nic0'}],
            [{'type': 'dns', 'address': '2001:db8::53'}],
            warnings=warnings)
        parsed = _by_name(keyfiles)
        bond = parsed['bond0']
        self.assertEqual('192.0.2.10/24', bond['ipv4']['address1'])
        self.assertEqual('192.0.2.1', bond['ipv4']['gateway'])
        self.assertEqual('192.0.2.53;', bond['ipv4']['dns'])
        self.assertEqual('auto', bond['ipv6']['method'])
        self.assertEqual('2001:db8::53;', bond['ipv6']['dns'])
        for name in ('nic0', 'nic1'):
            self.assertEqual(bond['connection']['uuid'],
                             parsed[name]['connection']['master'])
            self.assertFalse(parsed[name].has_section('ipv4'))
            self.assertFalse(parsed[name].has_section('ipv6'))
        # One message per moved network, in the order of networks, with
        # the path, the member and the bond and no addresses.
        self.assertEqual(
            ['network_data $.networks[0]: link "nic1" is a member of bond '
             '"bond0"; the network was moved to the bond',
             'network_data $.networks[1]: link "nic0" is a member of bond '
             '"bond0"; the network was moved to the bond'], warnings)

    def test_move_without_warnings_list(self):
        # warnings is optional: the output is the same without it.
        networks = [_v4(link='nic0')]
        self.assertEqual(_convert(_bond_links(), networks, warnings=[]),
                         _convert(_bond_links(), networks))

    def test_warnings_are_appended(self):
        warnings = ['earlier']
        _convert(_bond_links(), [_v4(link='nic0')], warnings=warnings)
        self.assertEqual(2, len(warnings))
        self.assertEqual('earlier', warnings[0])

    def test_no_warning_without_move(self):
        warnings = []
        _convert(_bond_links(), [_v4(link='bond0')], warnings=warnings)
        self.assertEqual([], warnings)

    def test_warning_escapes_link_ids(self):
        links = _bond_links()
        links[0]['id'] = 'nic\n0'
        links[2]['bond_links'][0] = 'nic\n0'
        links[2]['id'] = 'b\u00e9'
        warnings = []
        _convert(links, [_v4(link='nic\n0')], warnings=warnings)
        self.assertEqual(['network_data $.networks[0]: link "nic\\n0" is a '
                          'member of bond "b\\u00e9"; the network was moved '
                          'to the bond'], warnings)

    def test_same_network_on_bond_and_member_is_merged(self):
        # An identical declaration on the bond and a member (same id, same
        # address and prefix) is one network: merged, the move reported.
        warnings = []
        parsed = _by_name(_convert(
            _bond_links(),
            [_v4(link='bond0', id='net0', routes=[_DEFAULT_V4]),
             _v4(link='nic0', id='net0', routes=[_DEFAULT_V4]),
             _v4(link='nic1', netmask=24)],
            warnings=warnings))
        ipv4 = parsed['bond0']['ipv4']
        self.assertEqual('192.0.2.10/24', ipv4['address1'])
        self.assertNotIn('address2', ipv4)
        self.assertNotIn('route1', ipv4)
        self.assertEqual(2, len(warnings))

    def test_same_id_in_two_families_on_bond_and_member(self):
        # Ironic's sample uses one id for an IPv4 and an IPv6 network; on
        # bond and member that is no conflict either.
        parsed = _by_name(_convert(
            _bond_links(),
            [_v4(link='bond0', id='net0'),
             {'id': 'net0', 'type': 'ipv6', 'link': 'nic0',
              'ip_address': '2001:db8::10', 'netmask': 64}]))
        self.assertEqual('192.0.2.10/24', parsed['bond0']['ipv4']['address1'])
        self.assertEqual('2001:db8::10/64',
                         parsed['bond0']['ipv6']['address1'])

    def test_other_l2_types_are_nics(self):
        for link_type in ('ethernet', 'ovs', 'bridge', 'tap', 'vif',
                          'hw_veb', 'dvs', 'vhostuser', 'phy'):
            link = _nic()
            link['type'] = link_type
            parsed = _by_name(_convert([link]))
            self.assertEqual('ethernet',
                             parsed['nic0']['connection']['type'])
            self.assertEqual('52:54:00:00:00:01',
                             parsed['nic0']['ethernet']['mac-address'])


class ErrorTestCase(testtools.TestCase):
    """Whatever cannot be expressed is refused with path, value and fix."""

    def _error(self, network_data, *fragments):
        error = self.assertRaises(exception.NetworkDataError,
                                  network.keyfiles_from_network_data,
                                  network_data)
        for fragment in fragments:
            self.assertIn(fragment, str(error))
        return error

    def _fails(self, links=(), networks=(), services=(), *fragments):
        return self._error({'links': list(links),
                            'networks': list(networks),
                            'services': list(services)}, *fragments)

    def test_not_a_dict(self):
        self._error(['links'], '$', 'a JSON object')

    def test_links_not_a_list(self):
        self._error({'links': {}}, '$.links', 'a list')

    def test_link_not_a_dict(self):
        self._fails(['nic0'], (), (), '$.links[0]', "'nic0'")

    def test_link_without_id(self):
        self._fails([{'type': 'phy'}], (), (), '$.links[0].id')

    def test_duplicate_link_id(self):
        self._fails([_nic(), _nic(mac='52:54:00:00:00:02')], (), (),
                    '$.links[1].id', "'nic0'", 'links[0]')

    def test_unknown_link_type(self):
        link = _nic()
        link['type'] = 'infiniband'
        self._fails([link], (), (), '$.links[0].type', "'infiniband'",
                    'bond, vlan')

    def test_missing_mac(self):
        self._fails([{'id': 'nic0', 'type': 'phy'}], (), (),
                    '$.links[0].ethernet_mac_address', 'None')

    def test_bad_mac(self):
        self._fails([_nic(mac='52:54:00:00:00')], (), (),
                    '$.links[0].ethernet_mac_address', "'52:54:00:00:00'")

    def test_duplicate_mac(self):
        self._fails([_nic(), _nic('nic1')], (), (),
                    '$.links[1].ethernet_mac_address', 'links[0]')

    def test_bad_mtu(self):
        for mtu in (0, 65536, '\u00b2', '1500 bytes', 1500.0):
            self._fails([_nic(mtu=mtu)], (), (), '$.links[0].mtu',
                        repr(mtu), 'from 68 to 65535')

    def test_bond_options_on_a_nic(self):
        self._fails([_nic(bond_links=['x'])], (), (),
                    '$.links[0].bond_links', 'set the type to "bond"')

    def test_bond_without_members(self):
        self._fails([{'id': 'bond0', 'type': 'bond', 'bond_links': []}],
                    (), (), '$.links[0].bond_links', 'non-empty list')

    def test_bond_member_missing(self):
        self._fails([{'id': 'bond0', 'type': 'bond',
                      'bond_links': ['eth9']}], (), (),
                    '$.links[0].bond_links[0]', "'eth9'")

    def test_bond_member_not_a_nic(self):
        self._fails([_nic(), {'id': 'v', 'type': 'vlan', 'vlan_link': 'nic0',
                              'vlan_id': 5},
                     {'id': 'bond0', 'type': 'bond', 'bond_links': ['v']}],
                    (), (), '$.links[2].bond_links[0]', 'vlan')

    def test_nic_in_two_bonds(self):
        self._fails([_nic(),
                     {'id': 'b1', 'type': 'bond', 'bond_links': ['nic0']},
                     {'id': 'b2', 'type': 'bond', 'bond_links': ['nic0']}],
                    (), (), '$.links[2].bond_links[0]', 'bond "b1"')

    def test_member_listed_twice(self):
        self._fails([_nic(),
                     {'id': 'b1', 'type': 'bond',
                      'bond_links': ['nic0', 'nic0']}],
                    (), (), '$.links[1].bond_links[1]', 'listed once')

    def test_bad_bond_mode(self):
        self._fails([_nic(), {'id': 'b', 'type': 'bond', 'bond_links':
                              ['nic0'], 'bond_mode': 'fastest'}], (), (),
                    '$.links[1].bond_mode', "'fastest'", '802.3ad')

    def test_numeric_bond_mode_out_of_range(self):
        self._fails([_nic(), {'id': 'b', 'type': 'bond', 'bond_links':
                              ['nic0'], 'bond_mode': 7}], (), (),
                    '$.links[1].bond_mode', '7')

    def test_bad_xmit_hash_policy(self):
        self._fails([_nic(), {'id': 'b', 'type': 'bond', 'bond_links':
                              ['nic0'], 'bond_xmit_hash_policy': 'l34'}],
                    (), (), '$.links[1].bond_xmit_hash_policy', "'l34'",
                    'layer3+4')

    def test_bad_miimon(self):
        self._fails([_nic(), {'id': 'b', 'type': 'bond', 'bond_links':
                              ['nic0'], 'bond_miimon': -1}], (), (),
                    '$.links[1].bond_miimon', '-1')

    def test_unknown_bond_option(self):
        self._fails([_nic(), {'id': 'b', 'type': 'bond', 'bond_links':
                              ['nic0'], 'bond_primary': 'nic0'}], (), (),
                    '$.links[1].bond_primary', 'matched by MAC')

    def test_vlan_id_out_of_range(self):
        for vlan_id in (0, 4095, 5000, 'ten', True):
            self._fails([_nic(), {'id': 'v', 'type': 'vlan',
                                  'vlan_link': 'nic0', 'vlan_id': vlan_id}],
                        (), (), '$.links[1].vlan_id', repr(vlan_id),
                        'from 1 to 4094')

    def test_vlan_link_missing(self):
        self._fails([{'id': 'v', 'type': 'vlan', 'vlan_link': 'eth9',
                      'vlan_id': 5}], (), (), '$.links[0].vlan_link',
                    "'eth9'")

    def test_vlan_on_vlan(self):
        self._fails([_nic(),
                     {'id': 'v', 'type': 'vlan', 'vlan_link': 'nic0',
                      'vlan_id': 5},
                     {'id': 'w', 'type': 'vlan', 'vlan_link': 'v',
                      'vlan_id': 6}], (), (), '$.links[2].vlan_link',
                    'VLANs on VLANs')

    def test_vlan_on_bond_member(self):
        self._fails([_nic(),
                     {'id': 'b', 'type': 'bond', 'bond_links': ['nic0']},
                     {'id': 'v', 'type': 'vlan', 'vlan_link': 'nic0',
                      'vlan_id': 5}], (), (), '$.links[2].vlan_link',
                    'put the VLAN on the bond')

    def test_same_vlan_twice_on_a_parent(self):
        self._fails([_nic(),
                     {'id': 'v', 'type': 'vlan', 'vlan_link': 'nic0',
                      'vlan_id': 5},
                     {'id': 'w', 'type': 'vlan', 'vlan_link': 'nic0',
                      'vlan_id': 5}], (), (), '$.links[2].vlan_id',
                    'links[1]')

    def test_conflicting_vlan_macs(self):
        self._fails([_nic(), {'id': 'v', 'type': 'vlan', 'vlan_link': 'nic0',
                              'vlan_id': 5,
                              'vlan_mac_address': '52:54:00:00:00:05',
                              'ethernet_mac_address': '52:54:00:00:00:06'}],
                    (), (), '$.links[1].ethernet_mac_address',
                    '52:54:00:00:00:05')

    def test_unknown_network_type(self):
        self._fails([_nic()], [{'type': 'ipv5', 'link': 'nic0'}], (),
                    '$.networks[0].type', "'ipv5'", 'ipv4_dhcp')

    def test_network_link_missing(self):
        self._fails([_nic()], [_v4(link='eth9')], (),
                    '$.networks[0].link', "'eth9'")

    def _no_warnings_on_error(self, links, networks, *fragments):
        warnings = []
        error = self.assertRaises(
            exception.NetworkDataError, network.keyfiles_from_network_data,
            {'links': links, 'networks': networks}, warnings=warnings)
        for fragment in fragments:
            self.assertIn(fragment, str(error))
        self.assertEqual([], warnings)
        return error

    def test_address_on_bond_and_member_with_two_prefixes(self):
        self._no_warnings_on_error(
            _bond_links(), [_v4(link='bond0'), _v4(link='nic0', netmask=25)],
            '$.networks[1].ip_address', "'192.0.2.10/25'",
            'bond "bond0"', '$.networks[0] already puts 192.0.2.10/24',
            'from link "bond0"', 'moved', 'same prefix length')

    def test_address_on_two_members_with_two_prefixes(self):
        self._no_warnings_on_error(
            _bond_links(),
            [{'type': 'ipv6', 'link': 'nic0', 'ip_address': '2001:db8::10',
              'netmask': 64},
             {'type': 'ipv6', 'link': 'nic1',
              'ip_address': '2001:db8::10/56'}],
            '$.networks[1].ip_address', "'2001:db8::10/56'",
            '$.networks[0] already puts 2001:db8::10/64',
            'from link "nic0"')

    def test_network_id_on_bond_and_member_differently(self):
        error = self._no_warnings_on_error(
            _bond_links(),
            [_v4(link='bond0', id='private'),
             _v4(link='nic0', id='private', ip='192.0.2.11')],
            '$.networks[1].id', "'private'", '$.networks[0]',
            'link "bond0"', 'declare the network once, on the bond')
        self.assertNotIn('192.0.2.1', str(error))

    def test_network_id_on_two_members_differently(self):
        self._no_warnings_on_error(
            _bond_links(),
            [{'id': 'n', 'type': 'ipv4_dhcp', 'link': 'nic1'},
             _v4(link='nic0', id='n')],
            '$.networks[1].id', "'n'", '$.networks[0]', 'link "nic1"',
            'IPv4 network', 'bond "bond0"')

    def test_bad_ip(self):
        self._fails([_nic()], [_v4(ip='192.0.2.300')], (),
                    '$.networks[0].ip_address', "'192.0.2.300'")

    def test_ip_of_wrong_family(self):
        self._fails([_nic()], [_v4(ip='2001:db8::1')], (),
                    '$.networks[0].ip_address', "'2001:db8::1'",
                    'an IPv4 address')

    def test_missing_ip(self):
        self._fails([_nic()], [{'type': 'ipv6', 'link': 'nic0',
                                'netmask': 64}], (),
                    '$.networks[0].ip_address', 'required')

    def test_scoped_addresses(self):
        self._fails([_nic()], [{'type': 'ipv6', 'link': 'nic0',
                                'ip_address': '2001:db8::1', 'netmask': 64,
                                'routes': [{'network': '::', 'netmask': 0,
                                            'gateway': 'fe80::1%eth0'}]}],
                    (), '$.networks[0].routes[0].gateway', '%zone')
        self._fails([_nic()], [{'type': 'ipv6_slaac', 'link': 'nic0'}],
                    [{'type': 'dns', 'address': 'fe80::53%eth0'}],
                    '$.services[0].address', "'fe80::53%eth0'")

    def test_unusable_ip(self):
        for ip in ('0.0.0.0', '224.0.0.1'):
            self._fails([_nic()], [_v4(ip=ip)], (),
                        '$.networks[0].ip_address', repr(ip))

    def test_bad_netmask(self):
        for netmask in ('255.0.255.0', '255.255.255.256', 33, 'abc',
                        'ffff::'):
            self._fails([_nic()], [_v4(netmask=netmask)], (),
                        '$.networks[0].netmask', repr(netmask))

    def test_non_contiguous_ipv6_netmask(self):
        self._fails([_nic()], [{'type': 'ipv6', 'link': 'nic0',
                                'ip_address': '2001:db8::1',
                                'netmask': 'ffff:0:ffff::'}], (),
                    '$.networks[0].netmask', "'ffff:0:ffff::'",
                    'contiguous')

    def test_missing_netmask(self):
        self._fails([_nic()], [_v4(netmask=None)], (),
                    '$.networks[0].netmask', 'prefix length')

    def test_netmask_contradicts_prefix(self):
        self._fails([_nic()], [_v4(ip='192.0.2.10/24',
                                   netmask='255.255.0.0')], (),
                    '$.networks[0].netmask', '/24')

    def test_route_with_host_bits(self):
        self._fails([_nic()], [_v4(routes=[{
            'network': '10.1.2.3', 'netmask': '255.255.0.0',
            'gateway': '192.0.2.1'}])], (),
            '$.networks[0].routes[0].network', "'10.1.2.3'", '10.1.0.0')

    def test_route_gateway_of_wrong_family(self):
        self._fails([_nic()], [_v4(routes=[{
            'network': '10.0.0.0', 'netmask': 8,
            'gateway': 'fe80::1'}])], (),
            '$.networks[0].routes[0].gateway', "'fe80::1'")

    def test_route_without_netmask(self):
        self._fails([_nic()], [_v4(routes=[{
            'network': '10.0.0.0', 'gateway': '192.0.2.1'}])], (),
            '$.networks[0].routes[0].netmask')

    def test_unknown_service_type(self):
        self._fails([_nic()], [_v4()], [{'type': 'ntp',
                                         'address': '192.0.2.123'}],
                    '$.services[0].type', "'ntp'")

    def test_bad_dns_address(self):
        self._fails([_nic()], [_v4()], [{'type': 'dns',
                                         'address': 'dns.example.com'}],
                    '$.services[0].address', "'dns.example.com'")

    def test_dns_family_without_network(self):
        self._fails([_nic()], [_v4()], [{'type': 'dns',
                                         'address': '2001:db8::53'}],
                    '$.services[0].address', "'2001:db8::53'",
                    'add an IPv6 network')

    def test_per_network_dns_family_without_network(self):
        self._fails([_nic()], [_v4(dns_nameservers=['2001:db8::53'])], (),
                    '$.networks[0].dns_nameservers[0]', 'on this link')

    def test_values_are_shown_but_shortened(self):
        error = self._fails([_nic(mac='x' * 500)], (), (),
                            '$.links[0].ethernet_mac_address')
        self.assertLess(len(str(error)), 400)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 70000)
    | st.sampled_from(['', 'nic0', 'bond0', 'v', '0.0.0.0', '::',
                       '192.0.2.1', '2001:db8::1', '255.255.255.0',
                       'ffff:ffff::', '24', '52:54:00:00:00:01', 'dns',
                       'ipv4', 'ipv6_slaac', 'phy', 'bond', 'vlan', '\u00b2',
                       '\u0663', 'fe80::1%eth0', '1.2.3.4/40'])
    | st.text(max_size=8) | st.just('a\nmode=x'),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6)


def _paths(value, prefix=()):
    """Every (container path, key) inside a JSON value."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return
    for key, child in items:
        yield prefix + (key,)
        yield from _paths(child, prefix + (key,))


class LimitsTestCase(testtools.TestCase):
    """Lists longer than the limits are refused before any conversion."""

    def _refused(self, network_data, path, count, limit):
        with mock.patch.object(network._Converter, '_read_link',
                               autospec=True) as read_link:
            error = self.assertRaises(exception.NetworkDataError,
                                      network.keyfiles_from_network_data,
                                      network_data)
        self.assertEqual('network_data %s: %d entries; at most %d are '
                         'supported, remove the ones the node does not need'
                         % (path, count, limit), str(error))
        return read_link

    def _link(self, i):
        return {'id': 'eth%d' % i, 'type': 'phy',
                'ethernet_mac_address': '52:54:00:00:%02x:%02x'
                % (i // 256, i % 256)}

    def test_limits(self):
        self.assertEqual({'links': 256, 'networks': 1024, 'services': 64,
                          'routes': 256, 'dns_nameservers': 16},
                         network.MAX_ENTRIES)

    def test_links(self):
        links = [self._link(i) for i in range(257)]
        self._refused({'links': links}, '$.links', 257, 256)
        self.assertEqual(256, len(network.keyfiles_from_network_data(
            {'links': links[:256]})))

    def test_networks_before_links_are_read(self):
        read_link = self._refused(
            {'links': [self._link(0)],
             'networks': [{'id': 'n', 'type': 'ipv4_dhcp', 'link': 'eth0'}]
             * 1025}, '$.networks', 1025, 1024)
        read_link.assert_not_called()

    def test_services_before_links_are_read(self):
        read_link = self._refused(
            {'links': [self._link(0)],
             'services': [{'type': 'dns', 'address': '10.0.0.1'}] * 65},
            '$.services', 65, 64)
        read_link.assert_not_called()

    def test_routes(self):
        network_data = {
            'links': [self._link(0)],
            'networks': [{'id': 'n', 'type': 'ipv4', 'link': 'eth0',
                          'ip_address': '10.0.0.2', 'netmask': '255.0.0.0',
                          'routes': [{'network': '10.1.0.0',
                                      'netmask': '255.255.0.0',
                                      'gateway': '10.0.0.1'}] * 257}]}
        self.assertRaisesRegex(
            exception.NetworkDataError,
            r'^network_data \$.networks\[0\].routes: 257 entries; at most '
            r'256 are supported',
            network.keyfiles_from_network_data, network_data)

    def test_dns_nameservers(self):
        network_data = {
            'links': [self._link(0)],
            'networks': [{'id': 'n', 'type': 'ipv4_dhcp', 'link': 'eth0',
                          'dns_nameservers': ['10.0.0.1'] * 17}]}
        self.assertRaisesRegex(
            exception.NetworkDataError,
            r'^network_data \$.networks\[0\].dns_nameservers: 17 entries; '
            r'at most 16 are supported',
            network.keyfiles_from_network_data, network_data)


class RobustnessTestCase(testtools.TestCase):
    """Malformed input gives NetworkDataError, never another exception."""

    @settings(max_examples=200, deadline=None)
    @given(case=st.sampled_from(CASES[:-1]), data=st.data(), value=_JSON)
    def test_any_field_replaced(self, case, data, value):
        network_data = load_case(case)
        paths = list(_paths(network_data))
        path = data.draw(st.sampled_from(paths))
        target = network_data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        try:
            keyfiles = network.keyfiles_from_network_data(network_data)
        except exception.NetworkDataError as error:
            self.assertIn('network_data $', str(error))
        else:
            for keyfile in keyfiles:
                self.assertNotIn('/', keyfile.name)
                self.assertFalse(keyfile.name.startswith('.'))
                # No value can inject lines: every line is a section, a
                # key=value pair of printable characters or empty.
                for line in keyfile.contents.splitlines():
                    self.assertRegex(line, r'^(|\[[a-z0-9-]+\]|'
                                           r'[a-z0-9_-]+=[ -~]*)$')
                _parse_keyfile(keyfile.contents)


_ALL_NETWORK_TYPES = ('ipv4', 'ipv6', 'ipv4_dhcp', 'ipv6_dhcp', 'ipv6_slaac',
                      'ipv6_dhcpv6-stateful', 'ipv6_dhcpv6-stateless')


@st.composite
def _address(draw, version):
    if version == 4:
        number = draw(st.integers(0x0A000001, 0x0AFFFFFE))
        return ipaddress.IPv4Address(number)
    base = int(ipaddress.IPv6Address('2001:db8::'))
    return ipaddress.IPv6Address(base + draw(st.integers(1, 2 ** 96 - 1)))


@st.composite
def _route(draw, version):
    bits = 32 if version == 4 else 128
    gateway = str(draw(_address(version)))
    prefix = draw(st.integers(0, bits))
    network = ipaddress.ip_network('%s/%d' % (draw(_address(version)),
                                              prefix), strict=False)
    return {'network': str(network.network_address),
            'netmask': draw(st.sampled_from([prefix,
                                             str(network.netmask)])),
            'gateway': gateway}


@st.composite
def _network(draw, link):
    net_type = draw(st.sampled_from(_ALL_NETWORK_TYPES))
    version = 4 if net_type.startswith('ipv4') else 6
    net = {'type': net_type, 'link': link,
           'routes': draw(st.lists(_route(version), max_size=2))}
    if net_type in ('ipv4', 'ipv6'):
        prefix = draw(st.integers(8 if version == 4 else 16,
                                  32 if version == 4 else 128))
        mask = ipaddress.ip_network('%s/%d' % ('0.0.0.0' if version == 4
                                               else '::', prefix)).netmask
        net['ip_address'] = str(draw(_address(version)))
        net['netmask'] = draw(st.sampled_from([prefix, str(mask)]))
    return net


@st.composite
def _network_data(draw):
    links = []
    for i in range(draw(st.integers(1, 3))):
        links.append({'id': 'nic%d' % i,
                      'type': draw(st.sampled_from(['phy', 'vif', 'ovs'])),
                      'ethernet_mac_address': '52:54:00:00:00:%02x' % i,
                      'mtu': draw(st.none() | st.integers(1280, 9000))})
    l3 = [link['id'] for link in links]
    # Networks may also be declared on bond members (moved to the bond).
    carriers = list(l3)
    if len(links) > 1 and draw(st.booleans()):
        links.append({'id': 'bond0', 'type': 'bond',
                      'bond_links': ['nic0', 'nic1'],
                      'bond_mode': draw(st.sampled_from(
                          [0, 1, '4', 'lacp', 'balance-alb'])),
                      'bond_miimon': draw(st.integers(0, 1000))})
        l3 = ['bond0'] + l3[2:]
        carriers.append('bond0')
    if draw(st.booleans()):
        links.append({'id': 'vlan0', 'type': 'vlan',
                      'vlan_link': draw(st.sampled_from(l3)),
                      'vlan_id': draw(st.integers(1, 4094))})
        l3.append('vlan0')
        carriers.append('vlan0')
    networks = draw(st.lists(st.sampled_from(carriers).flatmap(_network),
                             max_size=4))
    # One address on two links of a bond with two prefixes is refused.
    static = [(n['link'], n['ip_address']) for n in networks
              if 'ip_address' in n]
    assume(len({ip for _, ip in static}) == len(set(static)))
    versions = {4 if n['type'].startswith('ipv4') else 6 for n in networks}
    services = [{'type': 'dns', 'address': str(draw(_address(v)))}
                for v in sorted(versions)]
    return {'links': links, 'networks': networks, 'services': services}


@testtools.skipIf(NMCLI is None, 'nmcli (network-manager) is not installed')
class NetworkManagerPropertyTestCase(testtools.TestCase):
    """Generated valid network_data: NetworkManager keeps every value."""

    @settings(max_examples=40, deadline=None)
    @given(network_data=_network_data())
    def test_roundtrip(self, network_data):
        warnings = []
        keyfiles = network.keyfiles_from_network_data(network_data,
                                                      warnings=warnings)
        moved = [n for n in network_data['networks']
                 if n['link'] in ('nic0', 'nic1')
                 and any(link['type'] == 'bond'
                         for link in network_data['links'])]
        self.assertEqual(len(moved), len(warnings))
        for keyfile in keyfiles:
            status, out, err = nm_roundtrip(keyfile.contents)
            self.assertEqual(0, status, '%s: %s\n%s'
                             % (keyfile.name, err, keyfile.contents))
            self.assertEqual(semantics(keyfile.contents), semantics(out),
                             keyfile.contents)
