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

"""The node data of a config drive, as additions to the Ignition config.

CoreOS reads neither ``meta_data`` nor ``network_data``: only the Ignition
config. The host name, the SSH keys and the network of a config drive reach
the installed system only as entries merged into that config.
:func:`from_config_drive` says what to add (a
:class:`~ironic_coreos.engine.merge.Additions`) and what the config drive
gives that is not used, and why. The conductor's ``coreos`` deploy
interface and the agent's ``install_coreos`` step (when it reads the
config drive itself, as with ``custom-agent`` and Metal3) both call it, so
both produce the same installed system from the same request.

:func:`check_profiles` refuses a config that would end up with two
NetworkManager profiles for one interface: the user's own keyfile and one
converted from network_data.

This module imports neither Ironic nor ironic-python-agent.
"""

import configparser
import dataclasses
import posixpath

from ironic_coreos.engine import configdrive
from ironic_coreos.engine import exception
from ironic_coreos.engine import merge
from ironic_coreos.engine import network

#: meta_data keys that reach the installed system.
USED_META_KEYS = configdrive.HOSTNAME_KEYS + ('public_keys',)


@dataclasses.dataclass
class NodeData:
    """What a config drive adds to the Ignition config.

    :ivar additions: the :class:`~ironic_coreos.engine.merge.Additions`.
    :ivar unused: one line per part of the config drive that is not used,
        with the reason; key names and counts only, never values.
    :ivar moved: one line per network moved from a bond member to its bond
        (see :func:`ironic_coreos.engine.network.keyfiles_from_network_data`).
    :ivar hostname_key: the meta_data key the host name comes from, or
        None.
    """

    additions: merge.Additions
    unused: list = dataclasses.field(default_factory=list)
    moved: list = dataclasses.field(default_factory=list)
    hostname_key: str | None = None


def has_network(network_data):
    """Whether network_data describes at least one link or network."""
    return (isinstance(network_data, dict)
            and bool(network_data.get('links')
                     or network_data.get('networks')))


def from_config_drive(drive, set_hostname=True, convert_network_data=True,
                      ssh_user='core', network_data=None,
                      network_source='network_data'):
    """The additions a config drive asks for, and what it gives unused.

    :param drive: a :class:`~ironic_coreos.engine.configdrive.ConfigDrive`
        or None.
    :param set_hostname: add the meta_data host name as /etc/hostname.
    :param convert_network_data: convert network_data into keyfiles.
    :param ssh_user: the user receiving the meta_data ``public_keys``.
    :param network_data: network_data to convert instead of the drive's
        (the conductor passes the one Ironic generates from the ports);
        None: the drive's.
    :param network_source: how to name ``network_data`` in messages.
    :returns: a :class:`NodeData`.
    :raises: NetworkDataError naming the JSON path, the value and the fix
        when network_data cannot be expressed as keyfiles.
    """
    unused = []
    meta = drive.meta_data if drive is not None else {}
    if network_data is None and drive is not None:
        network_data = drive.network_data

    hostname = None
    key = drive.hostname_key if drive is not None else None
    if key is not None:
        others = sorted(k for k in configdrive.HOSTNAME_KEYS
                        if k != key and isinstance(meta.get(k), str)
                        and meta[k].strip()
                        and meta[k].strip() != drive.hostname)
        if not set_hostname:
            unused.append('meta_data "%s" (the host name) is not written to '
                          '/etc/hostname: [coreos]set_hostname is false'
                          % key)
        else:
            hostname = drive.hostname
            if others:
                unused.append('meta_data %s differ(s) from "%s", which gives '
                              'the host name (order of precedence: %s); not '
                              'used' % (', '.join('"%s"' % k for k in others),
                                        key,
                                        ', '.join(configdrive.HOSTNAME_KEYS)))

    ignored = sorted(str(k) for k in meta if k not in USED_META_KEYS)
    if ignored:
        unused.append('meta_data key(s) %s not used: CoreOS has no agent '
                      'reading meta_data; only %s reach the installed '
                      'system (merged into the Ignition config)'
                      % (', '.join('"%s"' % k for k in ignored),
                         ', '.join(USED_META_KEYS)))
    if drive is not None and drive.vendor_data:
        unused.append('vendor_data not used: CoreOS reads only the Ignition '
                      'config (user_data)')

    files = []
    moved = []
    if has_network(network_data):
        if not convert_network_data:
            unused.append(
                '%s (%d link(s), %d network(s)) is not converted into '
                'NetworkManager keyfiles: [coreos]convert_network_data is '
                'false' % (network_source,
                           len(network_data.get('links') or []),
                           len(network_data.get('networks') or [])))
        else:
            keyfiles = network.keyfiles_from_network_data(network_data,
                                                          warnings=moved)
            files = [merge.File(path=k.path,
                                contents=k.contents.encode('utf-8'),
                                mode=k.mode)
                     for k in keyfiles]
    elif isinstance(network_data, dict):
        others = sorted(str(k) for k in network_data
                        if k not in ('links', 'networks', 'services'))
        if others:
            unused.append('%s has no links or networks but the key(s) %s: '
                          'it is not OpenStack network_data (nmstate, for '
                          'example, is not converted); not used'
                          % (network_source,
                             ', '.join('"%s"' % k for k in others)))
        elif network_data.get('services'):
            unused.append('%s has services but no links or networks: there '
                          'is no interface to put its DNS servers on; not '
                          'used' % network_source)

    additions = merge.Additions(
        hostname=hostname,
        ssh_keys=list(drive.public_keys) if drive is not None else [],
        ssh_user=ssh_user, files=files, kernel_args=[])
    return NodeData(additions=additions, unused=unused, moved=moved,
                    hostname_key=key if hostname is not None else None)


def profile_interfaces(text):
    """The interfaces a NetworkManager keyfile names.

    :param text: the keyfile (str or bytes).
    :returns: a set of ``'mac <address>'`` (lower case) and
        ``'name <interface>'`` strings; empty when the keyfile names no
        interface or cannot be read.
    """
    if isinstance(text, bytes):
        text = text.decode('utf-8', 'replace')
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text)
    except configparser.Error:
        return set()
    result = set()
    if parser.has_option('connection', 'interface-name'):
        name = parser.get('connection', 'interface-name').strip()
        if name:
            result.add('name %s' % name)
    for section in ('ethernet', '802-3-ethernet'):
        if parser.has_option(section, 'mac-address'):
            mac = parser.get(section, 'mac-address').strip().rstrip(';')
            if mac:
                result.add('mac %s' % mac.lower())
    return result


def config_keyfiles(config):
    """The keyfiles an Ignition config writes for NetworkManager.

    :param config: the Ignition config (a dict).
    :returns: a list of (JSON path, file path, contents or None when not
        known here) for ``storage.files`` entries in
        ``/etc/NetworkManager/system-connections/``.
    """
    storage = config.get('storage') if isinstance(config, dict) else None
    entries = storage.get('files') if isinstance(storage, dict) else None
    result = []
    for index, entry in enumerate(entries or ()):
        if not isinstance(entry, dict) or not isinstance(entry.get('path'),
                                                         str):
            continue
        path = posixpath.normpath(entry['path'])
        if posixpath.dirname(path) != network.KEYFILE_DIR:
            continue
        result.append(('$.storage.files[%d]' % index, path,
                       merge.file_contents(entry)))
    return result


def check_profiles(config, additions):
    """Refuse two profiles for one interface: the user's and a converted one.

    :param config: the user's Ignition config (before the merge).
    :param additions: the :class:`~ironic_coreos.engine.merge.Additions`
        about to be merged.
    :raises: MergeConflict naming the user's keyfile, the converted one and
        the interface.
    """
    ours = [(f.path, profile_interfaces(f.contents))
            for f in additions.files
            if posixpath.dirname(f.path) == network.KEYFILE_DIR]
    if not ours:
        return
    for where, path, contents in config_keyfiles(config):
        if contents is None or any(path == p for p, _names in ours):
            # Same path: merge.merge decides (identical or a conflict).
            continue
        theirs = profile_interfaces(contents)
        for our_path, names in ours:
            both = sorted(theirs & names)
            if both:
                raise exception.MergeConflict(
                    '%s: the config writes the NetworkManager profile %s for '
                    'the interface with %s, which network_data configures '
                    'too (%s); NetworkManager would have two profiles for '
                    'one interface. Remove that interface from network_data '
                    'or the profile from the Ignition config, or stop the '
                    'conversion ([coreos]convert_network_data = false)'
                    % (where, path, both[0], our_path))


def merge_into(config, node, max_version):
    """Merge the node data into the user's Ignition config.

    :param config: the user's Ignition config (a dict, checked).
    :param node: a :class:`NodeData` from :func:`from_config_drive`; every
        addition left out because the config has its own value is added
        to ``node.unused``.
    :param max_version: the newest spec version the result may declare.
    :returns: the merged config (a new dict).
    :raises: MergeConflict naming the JSON path and the fix.
    :raises: InvalidArgument if the node data itself is malformed (a bad
        host name, SSH key or user name).
    """
    check_profiles(config, node.additions)
    return merge.merge(config, node.additions, max_version=max_version,
                       skipped=node.unused)


#: Kernel argument that makes CoreOS keep the first boot's initramfs
#: network settings even when the installed system has its own.
FORCE_PERSIST_KARG = 'coreos.force_persist_ip'


def check_copy_network(config, live_keyfiles, append_kargs=()):
    """Which keyfiles the installed system gets with ``copy_network``.

    With ``copy_network`` the installer copies the live system's keyfiles
    to the boot partition; the first boot's initramfs brings its network
    up with them (to fetch the Ignition config's remote resources) and
    CoreOS carries them over to the installed system only when the
    Ignition config writes no keyfile of its own (or with the kernel
    argument ``coreos.force_persist_ip``). So when the Ignition config
    (the user's own keyfiles or the converted network_data) writes
    keyfiles, the installed system gets those and not the live ones:
    never two profiles for one interface.

    :param config: the final Ignition config (a dict).
    :param live_keyfiles: {file name: contents or None} of the keyfiles
        the installer copies.
    :param append_kargs: kernel arguments given to the installer.
    :returns: a line saying which keyfiles the installed system gets, or
        None when there is nothing to say (no live keyfiles).
    :raises: MergeConflict when ``coreos.force_persist_ip`` would make an
        interface have a live profile and one of the Ignition config.
    """
    if not live_keyfiles:
        return None
    names = ', '.join(sorted(live_keyfiles))
    written = config_keyfiles(config)
    if not written:
        return ('copy_network: the live system\'s keyfiles (%s) configure '
                'the first boot and are kept by the installed system: the '
                'Ignition config writes no keyfile of its own' % names)
    kargs = list(append_kargs or ())
    section = config.get('kernelArguments')
    if isinstance(section, dict) and isinstance(
            section.get('shouldExist'), list):
        kargs += section['shouldExist']
    forced = any(isinstance(k, str) and (
        k == FORCE_PERSIST_KARG or k.startswith(FORCE_PERSIST_KARG + '='))
        for k in kargs)
    if forced:
        for name in sorted(live_keyfiles):
            theirs = profile_interfaces(live_keyfiles[name] or b'')
            for where, path, contents in written:
                both = sorted(theirs & profile_interfaces(contents or b''))
                if both:
                    raise exception.MergeConflict(
                        'copy_network with %s: the live system\'s keyfile '
                        '%s and %s (%s) both configure the interface with '
                        '%s, which would have two profiles on the installed '
                        'system; drop %s, drop copy_network, or leave that '
                        'interface out of network_data and the Ignition '
                        'config' % (FORCE_PERSIST_KARG, name, path, where,
                                    both[0], FORCE_PERSIST_KARG))
        return ('copy_network with %s: the installed system keeps the live '
                'system\'s keyfiles (%s) next to the %d keyfile(s) of the '
                'Ignition config; no interface is named by both'
                % (FORCE_PERSIST_KARG, names, len(written)))
    return ('copy_network: the live system\'s keyfiles (%s) configure the '
            'first boot\'s initramfs only; the installed system gets the %d '
            'keyfile(s) of the Ignition config (%s), since CoreOS does not '
            'carry the initramfs network over to a system that has its own'
            % (names, len(written),
               ', '.join(posixpath.basename(p) for _w, p, _c in written)))
