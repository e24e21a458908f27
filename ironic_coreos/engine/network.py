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

"""OpenStack ``network_data.json`` to NetworkManager keyfiles.

The installed CoreOS system configures its network with NetworkManager. This
module turns the ``network_data`` of a config drive (or the one Ironic
generates from its ports) into one keyfile per link, ready to be written to
``/etc/NetworkManager/system-connections/`` by Ignition.

Mapping:

* ``links[]`` of an L2 type (``phy``, ``ethernet``, ``vif``, ``ovs``,
  ``bridge``, ``tap``, ``hw_veb``, ``dvs``, ``vhostuser``, ...) are NICs,
  matched by ``ethernet_mac_address`` because kernel names are not known in
  advance; ``mtu`` is kept.
* ``bond`` links become ``type=bond`` profiles whose ``interface-name`` is
  the link id (or ``bondN`` when the id is not a valid interface name of at
  most 15 characters); ``bond_mode``
  (Linux names, numbers 0-6 and common aliases such as ``lacp``) and the
  other ``bond_*`` options become ``[bond]`` options. Without ``bond_mode``
  the bond is ``active-backup``, Ironic's default port group mode (Ironic
  does not put the mode in the network_data it generates), which works
  without any switch configuration. Members become port profiles
  (``master=``, ``slave-type=bond``) without IP configuration.
* ``vlan`` links on a NIC or a bond become ``type=vlan`` profiles whose
  ``parent`` is the UUID of the parent's profile (UUIDs are derived with
  uuid5, so the output is reproducible) and whose ``interface-name`` is
  ``<parent>.<vlan id>`` when that fits in 15 characters (else
  ``vlan<id>``).
* ``networks[]``: ``ipv4``/``ipv6`` become static addresses (several
  networks on one link give several addresses), the default route becomes
  ``gateway=``, other routes ``routeN=``; ``ipv4_dhcp`` and every dynamic
  IPv6 type (``ipv6_dhcp``, ``ipv6_slaac``, ``ipv6_dhcpv6-stateful``,
  ``ipv6_dhcpv6-stateless``) become ``method=auto``. For IPv6, ``auto``
  follows the router advertisement: it does SLAAC, and stateful or
  stateless DHCPv6 when the router's M/O flags ask for it, and it keeps the
  default route of the advertisement (``method=dhcp`` would lose it). An
  ``ip_address`` on a dynamic network is the lease the server will hand
  out (Nova writes it that way); it is not pinned.
* DNS servers: per-network ``services`` and ``dns_nameservers`` go to that
  link, global ``services`` to every profile that configures the server's
  address family (NetworkManager refuses DNS servers on a disabled family),
  per-network ones first, each server once.
* Profiles are named after the link id, made safe as a file name
  (``[A-Za-z0-9_.+-]``, no leading dot, ``-N`` added on a clash).
* A profile without any IP configuration (a NIC without networks, a bond or
  NIC that only carries VLANs) gets ``method=disabled`` on both families so
  NetworkManager does not start DHCP on it; a family without networks on a
  configured profile is disabled too.

Decisions:

* A network declared on a bond member (``networks[].link`` naming a NIC in
  ``bond_links``) is carried by the bond: NetworkManager cannot configure
  IP on a bond port, and the bond is the L3 device that owns the member's
  traffic, so the network (addresses, routes, its DNS servers) is moved to
  the bond's profile, never dropped. Ironic's own sample
  (``ironic/tests/json_samples/network_data.json``) is written that way.
  Each move is reported: when the caller passes a ``warnings`` list, one
  line per moved network names its JSON path, the member and the bond.
  A move that would merge contradictory declarations is refused with
  :class:`NetworkDataError` instead:

  - the same ``ip_address`` with two prefix lengths declared on the bond
    and a member, or on two members: it is not clear which one is meant,
    and the kernel keeps an IPv6 address once, so one declaration would
    silently lose (several networks declared on one link are taken as
    written);
  - the same network ``id`` of one address family declared differently
    on two of bond, member, member: two versions of one network that the
    move would put on one profile.

  Identical repeats are merged (as several equal networks on one link
  are). Members (or bond and member) with different addresses, routes or
  default gateways of one family are not a conflict: the bond gets all
  addresses, the first default route becomes ``gateway=`` and the others
  stay routes, exactly as for several networks declared on one link;
  NetworkManager accepts that profile. VLANs on a bond member stay an
  error (a VLAN link is a device of its own; put it on the bond).
* Everything else that cannot be expressed (unknown link or network type,
  a reference to a missing link, a bad address, netmask, MAC or VLAN id, a
  bond without members, a DNS server of a family that no profile
  configures, ...) raises :class:`NetworkDataError` naming the JSON path,
  the value (addresses are not secrets) and the fix. Nothing is silently
  dropped. Keys that carry no configuration (``vif_id``, ``network_id``,
  network ``id``) are not written; the network ``id`` only serves to find
  contradictory declarations on a bond and its members (above).
"""

import dataclasses
import ipaddress
import json
import re
import uuid

from ironic_coreos.engine.exception import NetworkDataError

#: Where NetworkManager reads keyfiles from on the installed system.
KEYFILE_DIR = '/etc/NetworkManager/system-connections'

#: NetworkManager ignores keyfiles that others can read.
KEYFILE_MODE = 0o600

#: Namespace of the profile UUIDs (uuid5 of a fixed name, never changes).
UUID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_DNS,
                            'network.ironic-coreos.openstack.org')

#: Link types that all mean "a NIC", matched by its MAC address.
#: Besides ``phy`` and ``ethernet`` these are the VIF types Nova and Ironic
#: write for a port (``vif`` is Ironic's default).
ETHERNET_LINK_TYPES = frozenset([
    'phy', 'ethernet', 'vif', 'ovs', 'bridge', 'tap', 'hw_veb', 'dvs',
    'vhostuser', 'ivs', '802.qbg', '802.qbh', 'hyperv', 'hostdev_physical',
    'macvtap', 'iovisor', 'midonet', 'vrouter', 'agilio_ovs',
])

_STATIC_NETWORK_TYPES = {'ipv4': 4, 'ipv6': 6}
_DYNAMIC_NETWORK_TYPES = {
    'ipv4_dhcp': 4,
    'ipv6_dhcp': 6,
    'ipv6_slaac': 6,
    'ipv6_dhcpv6-stateful': 6,
    'ipv6_dhcpv6-stateless': 6,
}

_BOND_MODES = ('balance-rr', 'active-backup', 'balance-xor', 'broadcast',
               '802.3ad', 'balance-tlb', 'balance-alb')
_BOND_MODE_ALIASES = {
    'lacp': '802.3ad',
    '8023ad': '802.3ad',
    '802_3ad': '802.3ad',
    'roundrobin': 'balance-rr',
    'round-robin': 'balance-rr',
    'activebackup': 'active-backup',
    'failover': 'active-backup',
    'xor': 'balance-xor',
    'tlb': 'balance-tlb',
    'alb': 'balance-alb',
}
_XMIT_HASH_POLICIES = ('layer2', 'layer2+3', 'layer3+4', 'encap2+3',
                       'encap3+4', 'vlan+srcmac')
_LACP_RATES = {'slow': 'slow', 'fast': 'fast', '0': 'slow', '1': 'fast'}
_AD_SELECT = {'stable': 'stable', 'bandwidth': 'bandwidth',
              'count': 'count', '0': 'stable', '1': 'bandwidth',
              '2': 'count'}
_ARP_VALIDATE = ('none', 'active', 'backup', 'all', 'filter',
                 'filter_active', 'filter_backup')
_FAIL_OVER_MAC = ('none', 'active', 'follow')
_PRIMARY_RESELECT = ('always', 'better', 'failure')
_ARP_ALL_TARGETS = ('any', 'all')

# bond_<name> keys holding integers -> (minimum, maximum).
_BOND_INT_OPTIONS = {
    'miimon': (0, 2 ** 31 - 1),
    'updelay': (0, 2 ** 31 - 1),
    'downdelay': (0, 2 ** 31 - 1),
    'peer_notif_delay': (0, 2 ** 31 - 1),
    'arp_interval': (0, 2 ** 31 - 1),
    'min_links': (0, 2 ** 31 - 1),
    'resend_igmp': (0, 255),
    'num_grat_arp': (0, 255),
    'num_unsol_na': (0, 255),
    'lp_interval': (1, 2 ** 31 - 1),
    'packets_per_slave': (0, 65535),
    'ad_actor_sys_prio': (1, 65535),
    'ad_user_port_key': (0, 1023),
    'use_carrier': (0, 1),
    'all_slaves_active': (0, 1),
    'tlb_dynamic_lb': (0, 1),
}
# bond_<name> keys with a fixed set of values -> accepted values.
_BOND_ENUM_OPTIONS = {
    'xmit_hash_policy': {v: v for v in _XMIT_HASH_POLICIES},
    'lacp_rate': _LACP_RATES,
    'ad_select': _AD_SELECT,
    'arp_validate': {v: v for v in _ARP_VALIDATE},
    'fail_over_mac': {v: v for v in _FAIL_OVER_MAC},
    'primary_reselect': {v: v for v in _PRIMARY_RESELECT},
    'arp_all_targets': {v: v for v in _ARP_ALL_TARGETS},
}

_DIGITS_RE = re.compile(r'^[0-9]+$')
_MAC_RE = re.compile(r'^[0-9a-fA-F]{2}([:-][0-9a-fA-F]{2}){5}$')
_IFNAME_MAX = 15
_IFNAME_RE = re.compile(r'^[A-Za-z0-9_][A-Za-z0-9_.+-]*$')
_NAME_UNSAFE_RE = re.compile(r'[^A-Za-z0-9_.+-]+')
_NAME_MAX = 64


@dataclasses.dataclass(frozen=True)
class Keyfile:
    """One NetworkManager connection profile in keyfile format.

    :ivar name: the profile's name, safe as a file name (no ``/``, no
        leading dot); also the profile's ``connection.id``.
    :ivar contents: the keyfile text.
    """

    name: str
    contents: str

    @property
    def path(self):
        """Absolute path of the keyfile on the installed system."""
        return '%s/%s.nmconnection' % (KEYFILE_DIR, self.name)

    @property
    def mode(self):
        """File mode NetworkManager requires (0600)."""
        return KEYFILE_MODE


@dataclasses.dataclass
class _Family:
    """IP configuration of one address family of one profile."""

    version: int
    dynamic: bool = False
    addresses: list = dataclasses.field(default_factory=list)
    gateway: str = None
    routes: list = dataclasses.field(default_factory=list)
    dns: list = dataclasses.field(default_factory=list)
    # IP address (str) -> list of ('IP/PREFIX', JSON path of the network,
    # the link the network was declared on).
    origins: dict = dataclasses.field(default_factory=dict)

    @property
    def configured(self):
        return self.dynamic or bool(self.addresses)

    @property
    def method(self):
        if self.dynamic:
            return 'auto'
        if self.addresses:
            return 'manual'
        return 'disabled'


@dataclasses.dataclass
class _Link:
    """A link of network_data on its way to becoming a keyfile."""

    index: int
    id: str
    kind: str                  # 'ethernet', 'bond' or 'vlan'
    mac: str = None            # matched MAC (ethernet)
    cloned_mac: str = None     # MAC to set (bond, vlan)
    mtu: int = None
    name: str = None           # keyfile / connection.id
    uuid: str = None
    ifname: str = None         # interface-name (bond, vlan)
    bond_options: dict = dataclasses.field(default_factory=dict)
    members: list = dataclasses.field(default_factory=list)
    master: object = None      # the bond _Link of a member
    parent: object = None      # the parent _Link of a VLAN
    vlan_id: int = None
    ipv4: _Family = None
    ipv6: _Family = None

    def family(self, version):
        return self.ipv4 if version == 4 else self.ipv6


_JSON_TYPES = {list: 'an array', str: 'a string', int: 'a number',
               float: 'a number', bool: 'a boolean', type(None): 'null'}


def _fail(path, value, expected):
    """Raise NetworkDataError for ``value`` at JSON ``path``.

    :raises: NetworkDataError always.
    """
    try:
        shown = repr(value)
    except ValueError:
        # Python does not print integers of more than 4,300 digits.
        shown = 'an integer of more than 4300 digits'
    if len(shown) > 120:
        shown = shown[:117] + '...'
    raise NetworkDataError('network_data %s: invalid value %s; expected %s'
                           % (path, shown, expected))


#: The most entries network_data may have in each list, checked before any
#: entry is converted (the keys are the lists' names wherever they occur).
MAX_ENTRIES = {'links': 256, 'networks': 1024, 'services': 64,
               'routes': 256, 'dns_nameservers': 16}


def _get_list(container, key, path):
    value = container.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        _fail('%s.%s' % (path, key), value, 'a list')
    limit = MAX_ENTRIES.get(key)
    if limit is not None and len(value) > limit:
        raise NetworkDataError(
            'network_data %s.%s: %d entries; at most %d are supported, '
            'remove the ones the node does not need'
            % (path, key, len(value), limit))
    return value


def _get_str(container, key, path, required=True):
    value = container.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        _fail('%s.%s' % (path, key), value, 'a non-empty string')
    return value.strip()


def _get_int(container, key, path, minimum, maximum, required=False):
    value = container.get(key)
    if value is None and not required:
        return None
    if isinstance(value, str) and _DIGITS_RE.match(value.strip()):
        value = int(value.strip())
    if (isinstance(value, bool) or not isinstance(value, int)
            or not minimum <= value <= maximum):
        _fail('%s.%s' % (path, key), value,
              'an integer from %d to %d' % (minimum, maximum))
    return value


def _mac(container, key, path, required=True):
    value = container.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not _MAC_RE.match(value.strip()):
        _fail('%s.%s' % (path, key), value,
              'an Ethernet MAC address like "52:54:00:12:34:56"')
    return value.strip().replace('-', ':').upper()


def _ip(value, path, version, allow_unspecified=False):
    """Parse an IP address of the given version.

    :returns: an ipaddress.IPv4Address or IPv6Address.
    :raises: NetworkDataError if it is not one, or an unusable one.
    """
    what = 'an IPv%d address' % version
    if not isinstance(value, str):
        _fail(path, value, what)
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        _fail(path, value, what)
    if address.version != version:
        _fail(path, value, '%s (this is an IPv%d address)'
              % (what, address.version))
    if getattr(address, 'scope_id', None):
        _fail(path, value, '%s without a %%zone (NICs are matched by MAC, '
              'their names are not known)' % what)
    if address.is_unspecified and not allow_unspecified:
        _fail(path, value, '%s other than the unspecified address' % what)
    if address.is_multicast:
        _fail(path, value, '%s, not a multicast address' % what)
    return address


def _prefix_from_mask(value, path, version):
    """Turn a netmask or a prefix length into a prefix length.

    Accepts an integer, a string of digits (optionally after a ``/``) or a
    dotted IPv4 / colon-separated IPv6 netmask such as
    ``ffff:ffff:ffff:ff00::`` (which Python's ipaddress does not take as a
    mask, so it is converted here).

    :returns: the prefix length as an int.
    :raises: NetworkDataError if the value is not a valid netmask.
    """
    bits = 32 if version == 4 else 128
    expected = ('a prefix length from 0 to %d or a contiguous IPv%d netmask'
                % (bits, version))
    text = value
    if isinstance(text, str):
        text = text.strip().lstrip('/')
        if _DIGITS_RE.match(text):
            text = int(text)
    if isinstance(text, int) and not isinstance(text, bool):
        if not 0 <= text <= bits:
            _fail(path, value, expected)
        return text
    if not isinstance(text, str):
        _fail(path, value, expected)
    try:
        mask = ipaddress.ip_address(text)
    except ValueError:
        _fail(path, value, expected)
    if mask.version != version:
        _fail(path, value, expected)
    number = int(mask)
    prefix = bin(number).count('1')
    full = (1 << bits) - 1
    if number != full ^ ((1 << (bits - prefix)) - 1):
        _fail(path, value, expected + ' (the one bits must come first)')
    return prefix


def _shown(value):
    """``value`` quoted for a message, control characters escaped."""
    text = json.dumps(value, ensure_ascii=True)
    if len(text) > 66:
        text = text[:63] + '...'
    return text


def _ifname_ok(name):
    return (bool(name) and len(name) <= _IFNAME_MAX
            and _IFNAME_RE.match(name) is not None)


def _safe_name(link_id, index):
    name = _NAME_UNSAFE_RE.sub('_', link_id).lstrip('.')[:_NAME_MAX]
    return name or 'link%d' % index


def _is_default(network, prefix):
    return prefix == 0 and int(network) == 0


class _Converter(object):
    """Converts one network_data document; one use per instance."""

    def __init__(self, network_data):
        if not isinstance(network_data, dict):
            raise NetworkDataError(
                'network_data $: it is %s; expected a JSON object with '
                '"links", "networks" and "services"'
                % _JSON_TYPES.get(type(network_data), 'not JSON'))
        self.data = network_data
        self.links = []
        self.by_id = {}
        # (links, server, JSON path) of DNS servers, placed once every
        # network is read so that their order does not matter.
        self.dns = []
        # Networks moved from a bond member to its bond, as messages.
        self.warnings = []
        # (profile link id, network id, IP version) -> list of
        # (declaring link, declaration without "link", JSON path).
        self.network_ids = {}

    def convert(self):
        # The sizes of every top-level list first, before any work.
        for key in ('links', 'networks', 'services'):
            _get_list(self.data, key, '$')
        raw_links = _get_list(self.data, 'links', '$')
        for index, raw in enumerate(raw_links):
            self._read_link(index, raw)
        for link in self.links:
            if link.kind == 'bond':
                self._resolve_bond(link, raw_links[link.index])
        for link in self.links:
            if link.kind == 'vlan':
                self._resolve_vlan(link, raw_links[link.index])
        self._check_macs()
        self._assign_names()
        networks = _get_list(self.data, 'networks', '$')
        for index, raw in enumerate(networks):
            self._read_network(index, raw)
        self._read_global_services()
        for links, server, path in self.dns:
            self._add_dns(links, server, path)
        self._place_default_routes()
        return [self._render(link) for link in self.links]

    # Links

    def _read_link(self, index, raw):
        path = '$.links[%d]' % index
        if not isinstance(raw, dict):
            _fail(path, raw, 'a JSON object')
        link_id = _get_str(raw, 'id', path)
        if link_id in self.by_id:
            _fail(path + '.id', link_id,
                  'a link id used once (links[%d] has it already)'
                  % self.by_id[link_id].index)
        link_type = _get_str(raw, 'type', path)
        if link_type in ETHERNET_LINK_TYPES:
            kind = 'ethernet'
        elif link_type in ('bond', 'vlan'):
            kind = link_type
        else:
            _fail(path + '.type', link_type,
                  'one of bond, vlan or an Ethernet type (%s)'
                  % ', '.join(sorted(ETHERNET_LINK_TYPES)))
        link = _Link(index=index, id=link_id, kind=kind,
                     ipv4=_Family(4), ipv6=_Family(6))
        link.mtu = _get_int(raw, 'mtu', path, 68, 65535)
        if kind == 'ethernet':
            link.mac = _mac(raw, 'ethernet_mac_address', path)
            for key in raw:
                if key.startswith('bond_') or key.startswith('vlan_'):
                    _fail('%s.%s' % (path, key), raw[key],
                          'no %s on a link of type "%s"; set the type to '
                          '"%s"' % (key, link_type, key.split('_')[0]))
        elif kind == 'bond':
            link.cloned_mac = _mac(raw, 'ethernet_mac_address', path,
                                   required=False)
            link.bond_options = self._bond_options(raw, path)
            for key in raw:
                if key.startswith('vlan_'):
                    _fail('%s.%s' % (path, key), raw[key],
                          'no VLAN options on a bond; add a link of type '
                          '"vlan" with vlan_link "%s"' % link_id)
        else:
            self._read_vlan(link, raw, path)
        self.links.append(link)
        self.by_id[link_id] = link

    def _read_vlan(self, link, raw, path):
        link.vlan_id = _get_int(raw, 'vlan_id', path, 1, 4094,
                                required=True)
        vlan_mac = _mac(raw, 'vlan_mac_address', path, required=False)
        eth_mac = _mac(raw, 'ethernet_mac_address', path, required=False)
        if vlan_mac and eth_mac and vlan_mac != eth_mac:
            _fail(path + '.ethernet_mac_address', raw['ethernet_mac_address'],
                  'the same MAC as vlan_mac_address (%s) or no '
                  'ethernet_mac_address on a VLAN' % vlan_mac)
        link.cloned_mac = vlan_mac or eth_mac
        for key in raw:
            if key.startswith('bond_'):
                _fail('%s.%s' % (path, key), raw[key],
                      'no bond options on a VLAN link')

    def _bond_options(self, raw, path):
        options = {'mode': self._bond_mode(raw.get('bond_mode'), path)}
        for key in sorted(raw):
            if not key.startswith('bond_') or key in ('bond_mode',
                                                      'bond_links'):
                continue
            name = key[len('bond_'):]
            if name in _BOND_INT_OPTIONS:
                low, high = _BOND_INT_OPTIONS[name]
                options[name] = str(_get_int(raw, key, path, low, high,
                                             required=True))
            elif name in _BOND_ENUM_OPTIONS:
                accepted = _BOND_ENUM_OPTIONS[name]
                value = raw[key]
                text = str(value).strip().lower()
                if isinstance(value, bool) or text not in accepted:
                    _fail('%s.%s' % (path, key), value,
                          'one of %s' % ', '.join(sorted(accepted)))
                options[name] = accepted[text]
            elif name == 'arp_ip_target':
                options[name] = self._arp_targets(raw[key], path + '.' + key)
            else:
                _fail('%s.%s' % (path, key), raw[key],
                      'a known bond option (bond_mode, bond_links, %s); '
                      'interface names such as bond_primary cannot be '
                      'used because NICs are matched by MAC'
                      % ', '.join('bond_' + n for n in sorted(
                          list(_BOND_INT_OPTIONS) + list(_BOND_ENUM_OPTIONS)
                          + ['arp_ip_target'])))
        return options

    @staticmethod
    def _bond_mode(value, path):
        if value is None:
            return 'active-backup'
        expected = ('a bond mode: %s, a number 0-6 or an alias (lacp, ...)'
                    % ', '.join(_BOND_MODES))
        if isinstance(value, bool):
            _fail(path + '.bond_mode', value, expected)
        text = str(value).strip().lower()
        if _DIGITS_RE.match(text) and int(text) < len(_BOND_MODES):
            return _BOND_MODES[int(text)]
        if text in _BOND_MODES:
            return text
        text = text.replace('_', '-')
        if text in _BOND_MODES:
            return text
        if text in _BOND_MODE_ALIASES:
            return _BOND_MODE_ALIASES[text]
        if text.replace('-', '') in _BOND_MODE_ALIASES:
            return _BOND_MODE_ALIASES[text.replace('-', '')]
        _fail(path + '.bond_mode', value, expected)

    @staticmethod
    def _arp_targets(value, path):
        items = value
        if isinstance(value, str):
            items = [v for v in value.split(',') if v.strip()]
        if not isinstance(items, list) or not items:
            _fail(path, value, 'a list of IPv4 addresses')
        return ','.join(str(_ip(item, '%s[%d]' % (path, i), 4))
                        for i, item in enumerate(items))

    def _resolve_bond(self, bond, raw):
        path = '$.links[%d].bond_links' % bond.index
        members = raw.get('bond_links')
        if not isinstance(members, list) or not members:
            _fail(path, members, 'a non-empty list of the ids of the NIC '
                  'links in the bond')
        for i, member_id in enumerate(members):
            member = self.by_id.get(member_id) if isinstance(
                member_id, str) else None
            if member is None:
                _fail('%s[%d]' % (path, i), member_id,
                      'the id of a link in $.links')
            if member.kind != 'ethernet':
                _fail('%s[%d]' % (path, i), member_id,
                      'the id of a NIC link (this one is a %s)'
                      % member.kind)
            if member in bond.members:
                _fail('%s[%d]' % (path, i), member_id,
                      'each member listed once')
            if member.master is not None:
                _fail('%s[%d]' % (path, i), member_id,
                      'a NIC that is in no other bond (it is in bond "%s")'
                      % member.master.id)
            member.master = bond
            bond.members.append(member)

    def _resolve_vlan(self, vlan, raw):
        path = '$.links[%d].vlan_link' % vlan.index
        parent_id = raw.get('vlan_link')
        parent = self.by_id.get(parent_id) if isinstance(
            parent_id, str) else None
        if parent is None:
            _fail(path, parent_id, 'the id of a NIC or bond link in $.links')
        if parent.kind == 'vlan':
            _fail(path, parent_id, 'a NIC or bond link; VLANs on VLANs are '
                  'not supported')
        if parent.master is not None:
            _fail(path, parent_id, 'a NIC that is not a bond member (it is '
                  'in bond "%s"); put the VLAN on the bond'
                  % parent.master.id)
        for other in self.links:
            if (other is not vlan and other.kind == 'vlan'
                    and other.parent is parent
                    and other.vlan_id == vlan.vlan_id):
                _fail('$.links[%d].vlan_id' % vlan.index, vlan.vlan_id,
                      'a VLAN id used once per parent (links[%d] has it)'
                      % other.index)
        vlan.parent = parent

    def _check_macs(self):
        seen = {}
        for link in self.links:
            if link.kind != 'ethernet':
                continue
            if link.mac in seen:
                _fail('$.links[%d].ethernet_mac_address' % link.index,
                      link.mac, 'a MAC address used by one NIC link only '
                      '(links[%d] has it)' % seen[link.mac])
            seen[link.mac] = link.index

    def _assign_names(self):
        names = set()
        ifnames = set()
        for link in self.links:
            name = base = _safe_name(link.id, link.index)
            counter = 1
            while name.lower() in names:
                name = '%s-%d' % (base, counter)
                counter += 1
            names.add(name.lower())
            link.name = name
            key = '%s:%s:%s' % (link.kind, link.id, link.mac or '')
            link.uuid = str(uuid.uuid5(UUID_NAMESPACE, key))
        bonds = [link for link in self.links if link.kind == 'bond']
        for link in bonds:
            if _ifname_ok(link.id) and link.id not in ifnames:
                link.ifname = link.id
                ifnames.add(link.ifname)
        counter = 0
        for link in bonds:
            while link.ifname is None:
                candidate = 'bond%d' % counter
                counter += 1
                if candidate not in ifnames:
                    link.ifname = candidate
                    ifnames.add(candidate)
        for link in self.links:
            if link.kind == 'vlan':
                link.ifname = self._vlan_ifname(link, ifnames)
                ifnames.add(link.ifname)

    @staticmethod
    def _vlan_ifname(link, taken):
        parent = link.parent
        base = parent.ifname if parent.kind == 'bond' else parent.id
        candidates = ['%s.%d' % (base, link.vlan_id),
                      'vlan%d' % link.vlan_id]
        candidates += ['vlan%d-%d' % (link.vlan_id, n) for n in range(1, 99)]
        for candidate in candidates:
            if _ifname_ok(candidate) and candidate not in taken:
                return candidate
        _fail('$.links[%d].vlan_id' % link.index, link.vlan_id,
              'fewer VLANs with the same id')  # pragma: no cover

    # Networks

    def _read_network(self, index, raw):
        path = '$.networks[%d]' % index
        if not isinstance(raw, dict):
            _fail(path, raw, 'a JSON object')
        net_type = _get_str(raw, 'type', path)
        if net_type in _STATIC_NETWORK_TYPES:
            version = _STATIC_NETWORK_TYPES[net_type]
        elif net_type in _DYNAMIC_NETWORK_TYPES:
            version = _DYNAMIC_NETWORK_TYPES[net_type]
        else:
            _fail(path + '.type', net_type, 'one of %s' % ', '.join(
                sorted(list(_STATIC_NETWORK_TYPES)
                       + list(_DYNAMIC_NETWORK_TYPES))))
        link_id = raw.get('link')
        link = self.by_id.get(link_id) if isinstance(link_id, str) else None
        if link is None:
            _fail(path + '.link', link_id, 'the id of a link in $.links')
        declared_on = link
        if link.master is not None:
            # NetworkManager cannot configure IP on a bond port: the bond
            # carries the member's networks.
            link = link.master
            self.warnings.append(
                'network_data %s: link %s is a member of bond %s; the '
                'network was moved to the bond'
                % (path, _shown(declared_on.id), _shown(link.id)))
        self._check_network_id(raw, path, version, link, declared_on)
        family = link.family(version)
        if net_type in _STATIC_NETWORK_TYPES:
            address = self._static_address(raw, path, version)
            self._check_prefix(family, address, path, link, declared_on)
            if address not in family.addresses:
                family.addresses.append(address)
        else:
            family.dynamic = True
        for i, route in enumerate(_get_list(raw, 'routes', path)):
            entry = self._route(route, '%s.routes[%d]' % (path, i), version)
            if entry not in family.routes:
                family.routes.append(entry)
        dns_path = path + '.dns_nameservers'
        for i, server in enumerate(_get_list(raw, 'dns_nameservers', path)):
            self.dns.append(([link], server, '%s[%d]' % (dns_path, i)))
        for i, service in enumerate(_get_list(raw, 'services', path)):
            server, spath = self._dns_service(
                service, '%s.services[%d]' % (path, i))
            self.dns.append(([link], server, spath))

    def _check_network_id(self, raw, path, version, link, declared_on):
        """Refuse one network id declared differently on bond and members.

        :raises: NetworkDataError if a network with the same ``id`` and IP
            version, declared on another link that ends up on the same
            profile (the bond or another of its members), says something
            else.
        """
        net_id = raw.get('id')
        if not isinstance(net_id, str) or not net_id.strip():
            return
        declaration = {k: v for k, v in raw.items() if k != 'link'}
        key = (link.id, net_id.strip(), version)
        seen = self.network_ids.setdefault(key, [])
        for other_link, other_declaration, other_path in seen:
            if other_link is declared_on or other_declaration == declaration:
                continue
            _fail(path + '.id', net_id,
                  'one declaration of an IPv%d network per id on bond %s '
                  'and its members: %s declares %s differently on link %s, '
                  'and networks on bond members are moved to the bond; '
                  'declare the network once, on the bond'
                  % (version, _shown(link.id), other_path, _shown(net_id),
                     _shown(other_link.id)))
        seen.append((declared_on, declaration, path))

    @staticmethod
    def _check_prefix(family, address, path, link, declared_on):
        """Refuse one address with two prefixes merged by a move.

        :param address: the new address as ``IP/PREFIX``.
        :param link: the link whose profile gets the address.
        :param declared_on: the link the network is declared on (a member
            of ``link`` when the network was moved).
        :raises: NetworkDataError if a network declared on another link
            (the bond or another of its members) already puts the same IP
            address with another prefix length on the profile.
        """
        origins = family.origins.setdefault(address.partition('/')[0], [])
        for other, other_path, other_link in origins:
            if other_link is declared_on or other == address:
                continue
            _fail(path + '.ip_address', address,
                  'one prefix length per address on bond %s and its '
                  'members: %s already puts %s on it (from link %s), and '
                  'networks on bond members are moved to the bond; use the '
                  'same prefix length or declare the address once, on the '
                  'bond' % (_shown(link.id), other_path, other,
                            _shown(other_link.id)))
        origins.append((address, path, declared_on))

    @staticmethod
    def _static_address(raw, path, version):
        value = raw.get('ip_address')
        if not isinstance(value, str):
            _fail(path + '.ip_address', value,
                  'an IPv%d address (required for a static network)'
                  % version)
        address, _, cidr_prefix = value.strip().partition('/')
        ip = _ip(address, path + '.ip_address', version)
        prefix = None
        if cidr_prefix:
            prefix = _prefix_from_mask(cidr_prefix, path + '.ip_address',
                                       version)
        netmask = raw.get('netmask')
        if netmask is not None:
            mask_prefix = _prefix_from_mask(netmask, path + '.netmask',
                                            version)
            if prefix is not None and prefix != mask_prefix:
                _fail(path + '.netmask', netmask,
                      'the prefix length /%d of ip_address, or no netmask'
                      % prefix)
            prefix = mask_prefix
        if prefix is None:
            _fail(path + '.netmask', netmask,
                  'a netmask or prefix length (or ip_address as IP/PREFIX)')
        return '%s/%d' % (ip, prefix)

    @staticmethod
    def _route(raw, path, version):
        """Read one route.

        :returns: a tuple (network, prefix, gateway or None).
        """
        if not isinstance(raw, dict):
            _fail(path, raw, 'a JSON object with network, netmask and '
                  'gateway')
        network = _ip(raw.get('network'), path + '.network', version,
                      allow_unspecified=True)
        netmask = raw.get('netmask')
        if netmask is None:
            _fail(path + '.netmask', netmask, 'a netmask or prefix length')
        prefix = _prefix_from_mask(netmask, path + '.netmask', version)
        net = ipaddress.ip_network('%s/%d' % (network, prefix), strict=False)
        if net.network_address != network:
            _fail(path + '.network', raw.get('network'),
                  'a network address without host bits for /%d (%s)'
                  % (prefix, net.network_address))
        gateway = raw.get('gateway')
        if gateway is not None:
            gateway = _ip(gateway, path + '.gateway', version,
                          allow_unspecified=True)
            gateway = None if gateway.is_unspecified else str(gateway)
        return (str(network), prefix, gateway)

    @staticmethod
    def _dns_service(raw, path):
        if not isinstance(raw, dict):
            _fail(path, raw, 'a JSON object with type and address')
        service_type = raw.get('type')
        if service_type != 'dns':
            _fail(path + '.type', service_type, '"dns", the only service '
                  'type that can be configured')
        return raw.get('address'), path + '.address'

    def _add_dns(self, links, server, path):
        expected = 'an IPv4 or IPv6 address of a DNS server'
        try:
            address = ipaddress.ip_address(server.strip())
        except (ValueError, AttributeError):
            _fail(path, server, expected)
        if (address.is_unspecified or address.is_multicast
                or getattr(address, 'scope_id', None)):
            _fail(path, server, expected)
        targets = [link.family(address.version) for link in links
                   if link.family(address.version).configured]
        if not targets:
            _fail(path, server, 'a DNS server of an address family that '
                  'is configured (there is no IPv%d network%s); add an '
                  'IPv%d network or remove the server'
                  % (address.version,
                     ' on this link' if len(links) == 1 else '',
                     address.version))
        for family in targets:
            if str(address) not in family.dns:
                family.dns.append(str(address))

    def _read_global_services(self):
        l3_links = [link for link in self.links if link.master is None]
        for i, service in enumerate(_get_list(self.data, 'services', '$')):
            server, path = self._dns_service(service, '$.services[%d]' % i)
            self.dns.append((l3_links, server, path))

    def _place_default_routes(self):
        """Turn the first default route of a family into gateway=.

        NetworkManager only accepts ``gateway`` together with addresses;
        default routes of dynamic-only families, and further default routes
        through another gateway, stay routes.
        """
        for link in self.links:
            for family in (link.ipv4, link.ipv6):
                if not family.addresses:
                    continue
                for entry in list(family.routes):
                    network, prefix, gateway = entry
                    if gateway and _is_default(
                            ipaddress.ip_address(network), prefix):
                        family.gateway = gateway
                        family.routes.remove(entry)
                        break

    # Output

    def _render(self, link):
        sections = [('connection', self._connection_section(link))]
        ethernet = []
        if link.mac:
            ethernet.append(('mac-address', link.mac))
        if link.cloned_mac:
            ethernet.append(('cloned-mac-address', link.cloned_mac))
        if link.mtu is not None:
            ethernet.append(('mtu', str(link.mtu)))
        if ethernet:
            sections.append(('ethernet', ethernet))
        if link.kind == 'bond':
            sections.append(('bond', sorted(link.bond_options.items())))
        elif link.kind == 'vlan':
            sections.append(('vlan', [('id', str(link.vlan_id)),
                                      ('parent', link.parent.uuid)]))
        if link.master is None:
            sections.append(('ipv4', self._ip_section(link.ipv4)))
            sections.append(('ipv6', self._ip_section(link.ipv6)))
        lines = []
        for title, items in sections:
            if lines:
                lines.append('')
            lines.append('[%s]' % title)
            lines.extend('%s=%s' % item for item in items)
        return Keyfile(name=link.name, contents='\n'.join(lines) + '\n')

    @staticmethod
    def _connection_section(link):
        items = [('id', link.name), ('uuid', link.uuid),
                 ('type', link.kind)]
        if link.ifname:
            items.append(('interface-name', link.ifname))
        if link.master is not None:
            items.append(('master', link.master.uuid))
            items.append(('slave-type', 'bond'))
        return items

    @staticmethod
    def _ip_section(family):
        items = [('method', family.method)]
        for number, address in enumerate(family.addresses, 1):
            items.append(('address%d' % number, address))
        if family.gateway:
            items.append(('gateway', family.gateway))
        for number, (network, prefix, gateway) in enumerate(
                family.routes, 1):
            value = '%s/%d' % (network, prefix)
            if gateway:
                value += ',' + gateway
            items.append(('route%d' % number, value))
        if family.dns:
            items.append(('dns', ''.join(s + ';' for s in family.dns)))
        return items


def keyfiles_from_network_data(network_data, warnings=None):
    """Convert OpenStack network_data into NetworkManager keyfiles.

    :param network_data: the network_data.json document as a dict (keys
        ``links``, ``networks``, ``services``; missing ones are empty).
    :param warnings: an optional list; for every network declared on a bond
        member (and so moved to the bond) one human-readable string naming
        the network's JSON path, the member and the bond is appended to it,
        in the order of ``networks``. Nothing is appended when the
        conversion raises.
    :returns: a list of :class:`Keyfile`, one per link, in the order of
        ``links``. The output depends only on the input: profile UUIDs are
        derived from the link ids, lines are in a fixed order.
    :raises: NetworkDataError naming the JSON path, the value and the fix
        when anything in network_data cannot be expressed as keyfiles.
    """
    converter = _Converter(network_data)
    keyfiles = converter.convert()
    if warnings is not None:
        for message in converter.warnings:
            warnings.append(message)
    return keyfiles
