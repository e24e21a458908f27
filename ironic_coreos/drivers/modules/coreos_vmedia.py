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

"""Virtual media boot with a per-node CoreOS live ISO.

Ironic's ``redfish-virtual-media`` inserts ``driver_info/deploy_iso`` as it
is: a stock CoreOS live ISO then boots without the agent, its configuration
or the node's static network. The interfaces here are Ironic's own
(``RedfishVirtualMediaBoot``, ``DracRedfishVirtualMediaBoot``) with one
change for ramdisk boots (deploy, clean, inspect, rescue, service): the
conductor fetches the stock ISO once per URL and checksum into a cache
shared by all nodes, writes a copy for the node with the live system's
Ignition config (the agent's unit and configuration, the API URL, the
agent options of ``[coreos]`` and ``driver_info``) and the node's
``network_data`` as NetworkManager keyfiles in the ISO's initrd embed area,
and Ironic's ramdisk parameters in its kernel argument areas, serves the
copy from ``[deploy]http_root`` under the name Ironic gives its own ISOs
(``redfish/boot-<node>.iso``) and hands its URL to the BMC. Ironic removes
that file whenever it tears the ramdisk down or prepares the instance; the
copy is never read into memory (streamed, then the areas substituted).

Everything a user can get wrong is checked in ``validate`` (options, agent
image, network_data) or, for the ISO itself, in ``prepare_ramdisk`` before
the node is powered. Instance boots are Ironic's.
"""

import grp
import hashlib
import json
import os
import re
import tempfile
import urllib.parse

from ironic.common import boot_devices
from ironic.common import exception
from ironic.common.i18n import _
from ironic.common import states
from ironic.common import utils as common_utils
from ironic.conductor import utils as manager_utils
from ironic.conf import CONF
from ironic.drivers.modules import boot_mode_utils
from ironic.drivers.modules import deploy_utils
from ironic.drivers.modules.drac import boot as drac_boot
from ironic.drivers.modules import image_cache
from ironic.drivers.modules import image_utils
from ironic.drivers.modules.redfish import boot as redfish_boot
from ironic.drivers.modules.redfish import utils as redfish_utils
from ironic.drivers import utils as driver_utils
from oslo_log import log
from oslo_utils import excutils
import sushy

from ironic_coreos.cmd import live_ignition
from ironic_coreos import conf as coreos_conf  # noqa: F401 (options)
from ironic_coreos.engine import exception as engine_exc
from ironic_coreos.engine import live_media
from ironic_coreos.engine import network

LOG = log.getLogger(__name__)

IMAGE_SUBDIR = redfish_boot.IMAGE_SUBDIR

# Kernel parameters Ironic passes to the ramdisk that must not be written
# into a file served over HTTP.
_SECRET_PARAMS = ('ipa-agent-token',)
_CHECKSUM_ALGOS = {32: 'md5', 64: 'sha256', 128: 'sha512'}
_HEX_RE = re.compile(r'^[0-9a-fA-F]+$')
_TRANSPORTS = ('HTTP', 'HTTPS')

PROPERTIES = {
    'coreos_agent_image': _(
        'Container image of ironic-python-agent with ironic-coreos[agent] '
        'that the live system runs. Optional; default '
        '[coreos]live_agent_image.'),
    'coreos_agent_options': _(
        'JSON object of agent options for this node, keys '
        '"[SECTION.]NAME", e.g. {"DEFAULT.lookup_timeout": "600"}; '
        'overrides [coreos]live_agent_options. Optional.'),
    'coreos_live_iso_checksum': _(
        'Checksum of deploy_iso ("sha256:HEX" or "sha512:HEX"). Optional; '
        'with [coreos]live_iso the default is [coreos]live_iso_checksum.'),
}


def _invalid(message, **values):
    return exception.InvalidParameterValue(message % values)


def parse_checksum(value, field):
    """Split a checksum into (algorithm, hex digest).

    :raises: InvalidParameterValue naming ``field`` if it is malformed.
    """
    algo, sep, digest = value.strip().partition(':')
    if not sep:
        algo, digest = _CHECKSUM_ALGOS.get(len(algo)), algo
    algo = (algo or '').lower()
    if (algo not in _CHECKSUM_ALGOS.values() or not _HEX_RE.match(digest)
            or _CHECKSUM_ALGOS.get(len(digest)) != algo):
        raise _invalid(_('%(field)s %(value)r is not a checksum: expected '
                         '"sha256:<64 hex digits>" or "sha512:<128 hex '
                         'digits>"'), field=field, value=value)
    return algo, digest.lower()


def _parse_options(items, field):
    """[(section, name, value)] from "[SECTION.]NAME=VALUE" strings."""
    out = []
    for item in items:
        key, sep, value = item.partition('=')
        section, dot, name = key.strip().rpartition('.')
        if not sep or not name.strip():
            # NOTE: the value is not repeated: it may be a secret.
            raise _invalid(_('%(field)s has an entry %(key)r that is not '
                             '[SECTION.]NAME=VALUE, e.g. '
                             'DEFAULT.lookup_timeout=600'),
                           field=field, key=key)
        out.append((section.strip() if dot else 'DEFAULT', name.strip(),
                    value))
    return out


def agent_options(node):
    """The agent options of ``[coreos]`` and ``driver_info``, merged.

    :returns: a list of (section, name, value).
    :raises: InvalidParameterValue if either is malformed.
    """
    merged = {}
    for section, name, value in _parse_options(
            CONF.coreos.live_agent_options, '[coreos]live_agent_options'):
        merged[(section, name)] = value
    extra = node.driver_info.get('coreos_agent_options')
    if isinstance(extra, str):
        try:
            extra = json.loads(extra)
        except ValueError:
            extra = None
            raise _invalid(_('driver_info/coreos_agent_options of node '
                             '%(node)s is not a JSON object; give e.g. '
                             '{"DEFAULT.lookup_timeout": "600"}'),
                           node=node.uuid)
    if extra is not None:
        if not isinstance(extra, dict):
            raise _invalid(_('driver_info/coreos_agent_options of node '
                             '%(node)s must be a JSON object of '
                             '"[SECTION.]NAME": value, e.g. '
                             '{"DEFAULT.lookup_timeout": "600"}'),
                           node=node.uuid)
        items = []
        for key, value in extra.items():
            if isinstance(value, (dict, list)) or value is None:
                raise _invalid(_('driver_info/coreos_agent_options of node '
                                 '%(node)s: the value of %(key)r must be a '
                                 'string, number or boolean'),
                               node=node.uuid, key=key)
            if isinstance(value, bool):
                value = str(value).lower()
            items.append('%s=%s' % (key, value))
        for section, name, value in _parse_options(
                items, 'driver_info/coreos_agent_options'):
            merged[(section, name)] = value
    return [(s, n, v) for (s, n), v in merged.items()]


def agent_image(node):
    """The agent image of the node.

    :raises: MissingParameterValue if neither driver_info nor [coreos] set
        one; InvalidParameterValue if it is malformed.
    """
    image = (node.driver_info.get('coreos_agent_image')
             or CONF.coreos.live_agent_image)
    if not image:
        raise exception.MissingParameterValue(
            _('Node %s: the live system needs the agent container image: '
              'set driver_info/coreos_agent_image or [coreos]'
              'live_agent_image (the image tools/build-agent-image.sh '
              'builds, pushed to a registry the node reaches)') % node.uuid)
    try:
        return live_ignition._image(image)
    except Exception:
        raise _invalid(_('Node %(node)s: the agent image %(image)r is not a '
                         'container image reference, e.g. '
                         '192.0.2.1:5000/ironic-coreos-agent:TAG'),
                       node=node.uuid, image=image)


def live_iso_source(node, mode='deploy'):
    """The stock live ISO of the node and its checksum.

    :returns: (reference, field, (algo, digest) or None); ``field`` names
        where the reference came from, for error messages.
    :raises: MissingParameterValue if there is none.
    """
    ref = driver_utils.get_agent_iso(node, mode=mode,
                                     deprecated_prefix='redfish')
    checksum = node.driver_info.get('coreos_live_iso_checksum')
    field = 'driver_info/%s_iso' % mode
    if not ref:
        ref = CONF.coreos.live_iso
        field = '[coreos]live_iso'
        checksum = checksum or CONF.coreos.live_iso_checksum
    if not ref:
        raise exception.MissingParameterValue(
            _('Node %(node)s: no CoreOS live ISO to boot: set driver_info/'
              '%(mode)s_iso (or redfish_%(mode)s_iso) or [coreos]live_iso to '
              'the URL of a CoreOS live ISO')
            % {'node': node.uuid, 'mode': mode})
    parsed = None
    if checksum:
        parsed = parse_checksum(checksum, 'driver_info/coreos_live_iso_'
                                'checksum' if node.driver_info.get(
                                    'coreos_live_iso_checksum')
                                else '[coreos]live_iso_checksum')
    return ref, field, parsed


def network_keyfiles(task):
    """The node's network_data as keyfiles for the live system.

    Skipped, like Ironic does for its own ISOs, when inspection runs with
    ``[inspector]force_dhcp``.

    :returns: a dict of file name -> bytes (empty without network_data).
    :raises: InvalidParameterValue if network_data cannot be converted.
    """
    node = task.node
    if (node.provision_state in (states.INSPECTING, states.INSPECTWAIT)
            and CONF.inspector.force_dhcp):
        return {}
    data = task.driver.network.get_node_network_data(task)
    if not data:
        return {}
    warnings = []
    try:
        keyfiles = network.keyfiles_from_network_data(data, warnings)
    except engine_exc.NetworkDataError as exc:
        raise _invalid(_('Node %(node)s: network_data cannot be converted '
                         'into NetworkManager keyfiles for the live '
                         'system: %(err)s'), node=node.uuid, err=exc)
    for warning in warnings:
        LOG.warning('Node %(node)s: network_data: %(warning)s',
                    {'node': node.uuid, 'warning': warning})
    return {'%s.nmconnection' % k.name: k.contents.encode()
            for k in keyfiles}


def _ca_bundle():
    path = CONF.agent.api_ca_file
    if not path:
        return None
    try:
        with open(path, 'rb') as f:
            return f.read()
    except OSError as exc:
        raise _invalid(_('[agent]api_ca_file %(path)s cannot be read: '
                         '%(err)s'), path=path, err=exc.strerror or exc)


def _ssh_keys():
    path = CONF.coreos.live_ssh_keys_file
    if not path:
        return []
    try:
        with open(path) as f:
            return live_ignition.ssh_key_lines(f)
    except (OSError, UnicodeDecodeError) as exc:
        raise _invalid(_('[coreos]live_ssh_keys_file %(path)s cannot be '
                         'read: %(err)s; give a file of SSH public keys, '
                         'one per line'), path=path,
                       err=getattr(exc, 'strerror', None) or exc)


def live_ignition_config(task, ramdisk_params, keyfiles=()):
    """The live system's Ignition config for the node (bytes).

    :param ramdisk_params: Ironic's ramdisk parameters (``ipa-api-url``).
    :param keyfiles: :class:`ironic_coreos.engine.network.Keyfile` to write
        with Ignition (for ISOs whose live initramfs reads no embedded
        keyfiles).
    :raises: InvalidParameterValue, MissingParameterValue.
    """
    node = task.node
    params = image_utils.override_api_url(dict(ramdisk_params or {}))
    api_url = params.get(deploy_utils.IPA_URL_PARAM_NAME)
    try:
        config = live_ignition.build(
            agent_image(node), api_url=api_url,
            options=agent_options(node), ca_bundle=_ca_bundle(),
            insecure=CONF.coreos.live_insecure_registries,
            ssh_keys=_ssh_keys(), keyfiles=keyfiles)
    except engine_exc.InvalidIgnition as exc:
        raise _invalid(_('Node %(node)s: the live system\'s Ignition config '
                         'is invalid: %(err)s'), node=node.uuid, err=exc)
    return json.dumps(config, sort_keys=True).encode()


def ramdisk_kargs(ramdisk_params):
    """Ironic's ramdisk parameters as kernel arguments (no secrets)."""
    params = image_utils.override_api_url(dict(ramdisk_params or {}))
    words = []
    for key, value in sorted(params.items()):
        if key in _SECRET_PARAMS:
            continue
        words.append(key if value is None or value == '' else
                     '%s=%s' % (key, value))
    return words


def published_name(node):
    """File name of the node's ISO, the one Ironic gives its own ISOs.

    Ironic's ``cleanup_iso_image`` removes it on every ramdisk tear-down
    and instance preparation of the virtual media interfaces.
    """
    return image_utils._get_name(node, prefix='boot', suffix='.iso')


def published_path(node):
    return os.path.join(CONF.deploy.http_root, IMAGE_SUBDIR,
                        published_name(node))


def remove_live_iso(node):
    """Remove the node's per-node ISO (idempotent)."""
    path = published_path(node)
    try:
        os.unlink(path)
    except FileNotFoundError:
        return
    LOG.info('Removed the live ISO of node %s', node.uuid)


def _file_group():
    name = CONF.coreos.live_iso_file_group
    if not name:
        return None
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise _invalid(_('[coreos]live_iso_file_group %(group)r is not a '
                         'group of this host; give the group of the HTTP '
                         'server serving [deploy]http_root'), group=name)


def _check_publishing(node):
    if CONF.redfish.use_swift:
        raise _invalid(_('Node %(node)s: the %(iface)s boot interface serves '
                         'per-node ISOs from [deploy]http_root only; set '
                         '[redfish]use_swift = false'),
                       node=node.uuid, iface=node.boot_interface)
    mode = CONF.coreos.live_iso_file_permission
    if mode & ~0o770 or not mode & 0o400:
        raise _invalid(_('[coreos]live_iso_file_permission %(mode)s: the '
                         'per-node ISO holds the agent configuration; give '
                         'a mode readable by the owner and without bits '
                         'for others, e.g. 0o640'), mode=oct(mode))
    _file_group()
    protocol = node.driver_info.get('vmedia_transport_protocol')
    if protocol and protocol.upper() not in _TRANSPORTS:
        raise _invalid(_('Node %(node)s: driver_info/vmedia_transport_'
                         'protocol %(proto)s: per-node CoreOS ISOs are '
                         'served over HTTP(S) only; remove it or set HTTP'),
                       node=node.uuid, proto=protocol)
    if node.driver_info.get('config_via_removable') or node.driver_info.get(
            'config_via_floppy'):
        raise _invalid(_('Node %(node)s: driver_info/config_via_removable: '
                         'the CoreOS live system reads no configuration '
                         'from a removable device; the %(iface)s boot '
                         'interface writes it into the ISO instead, remove '
                         'the option'),
                       node=node.uuid, iface=node.boot_interface)


@image_cache.cleanup(priority=70)
class LiveISOCache(image_cache.ImageCache):
    """Stock CoreOS live ISOs, one master copy per URL and checksum.

    The master directory holds one subdirectory per checksum (``any``
    without one); inside, Ironic's cache names the file after the URL and
    re-downloads it when the server says it changed.
    """

    def __init__(self, checksum=None):
        base = CONF.coreos.live_iso_master_path
        self.base_dir = base
        if checksum is not None:
            sub = hashlib.sha256(
                ('%s:%s' % checksum).encode()).hexdigest()[:32]
        else:
            sub = 'any'
        super().__init__(
            os.path.join(base, sub) if base else None,
            cache_size=CONF.deploy.iso_cache_size * 1024 * 1024,
            cache_ttl=CONF.deploy.iso_cache_ttl * 60,
            disable_validation=True, force_raw=False)

    def clean_up(self, amount=None):
        """Clean every checksum's subdirectory (Ironic's periodic task)."""
        if self.master_dir is None or not os.path.isdir(self.base_dir):
            return amount
        if os.path.dirname(self.master_dir) != self.base_dir:
            return super().clean_up(amount)
        for sub in sorted(os.listdir(self.base_dir)):
            if not os.path.isdir(os.path.join(self.base_dir, sub)):
                continue
            cache = LiveISOCache.__new__(LiveISOCache)
            image_cache.ImageCache.__init__(
                cache, os.path.join(self.base_dir, sub),
                cache_size=self._cache_size, cache_ttl=self._cache_ttl,
                disable_validation=True, force_raw=False)
            cache.base_dir = self.base_dir
            amount = image_cache.ImageCache.clean_up(cache, amount)
            if amount is not None and amount <= 0:
                break
        return amount


def fetch_live_iso(task, ref, checksum, dest, cache):
    """Fetch the stock ISO through the cache to ``dest`` (a hard link).

    :raises: ImageDownloadFailed, ImageChecksumError and the like.
    """
    cache.fetch_image(ref, dest, ctx=task.context, force_raw=False,
                      expected_checksum=checksum[1] if checksum else None,
                      expected_checksum_algo=checksum[0] if checksum
                      else None)


def write_node_iso(iso, output, config, keyfiles, kargs):
    """Write a copy of a stock live ISO with a node's configuration.

    :param iso: the stock ISO (:class:`~ironic_coreos.engine.live_media.
        LiveISO`); the file itself is not changed.
    :param output: the new file (must not exist; created 0600).
    :param config: the live system's Ignition config (bytes).
    :param keyfiles: name -> bytes, for ISOs whose live initramfs reads
        embedded keyfiles (the caller puts them into ``config`` else).
    :param kargs: kernel arguments to append, when the ISO has areas.
    :raises: LiveMediaError, before anything is written, if something does
        not fit.
    """
    iso.set_ignition(config, replace=True)
    if keyfiles and iso.supports_network:
        iso.set_keyfiles(keyfiles, replace=True)
    if iso.kargs_areas is not None and kargs:
        iso.modify_kargs(append=kargs)
    # Checks that everything fits before the copy starts.
    iso.regions()
    iso.write(output=output)


def build_live_iso(task, ramdisk_params, mode='deploy'):
    """Write and publish the node's live ISO; returns its URL.

    :raises: InvalidParameterValue if the ISO is not a CoreOS live ISO, its
        areas are too small, or the node's input is wrong;
        MissingParameterValue; Ironic's image download errors.
    """
    node = task.node
    ref, field, checksum = live_iso_source(node, mode)
    keyfiles = network_keyfiles(task)
    public_dir = os.path.join(CONF.deploy.http_root, IMAGE_SUBDIR)
    os.makedirs(public_dir, mode=0o755, exist_ok=True)
    output = published_path(node)
    remove_live_iso(node)
    cache = LiveISOCache(checksum)
    if cache.master_dir:
        os.makedirs(cache.master_dir, mode=0o700, exist_ok=True)
    # NOTE: next to the master copy, so that the cache hard-links it
    # instead of copying it.
    staging = os.path.join(cache.master_dir or CONF.tempdir
                           or tempfile.gettempdir(),
                           '.node-%s.iso' % node.uuid)
    common_utils.unlink_without_raise(staging)
    try:
        fetch_live_iso(task, ref, checksum, staging, cache)
        try:
            iso = live_media.LiveISO.open(staging)
            embedded = []
            if keyfiles and not iso.supports_network:
                embedded = [network.Keyfile(name=name[:-len('.nmconnection')],
                                            contents=body.decode())
                            for name, body in keyfiles.items()]
            config = live_ignition_config(task, ramdisk_params,
                                          keyfiles=embedded)
            write_node_iso(iso, output, config, keyfiles,
                           ramdisk_kargs(ramdisk_params))
        except engine_exc.LiveMediaError as exc:
            message = str(exc).replace(staging, ref)
            raise _invalid(_('Node %(node)s: %(field)s %(ref)s cannot be '
                             'used: %(err)s'), node=node.uuid, field=field,
                           ref=ref, err=message)
    finally:
        common_utils.unlink_without_raise(staging)
    try:
        gid = _file_group()
        if gid is not None:
            os.chown(output, -1, gid)
        os.chmod(output, CONF.coreos.live_iso_file_permission)
    except OSError:
        remove_live_iso(node)
        raise
    LOG.info('Wrote the live ISO of node %(node)s from %(ref)s: Ignition '
             'config of %(size)d bytes (sha256 %(digest)s), %(keyfiles)d '
             'network keyfile(s)',
             {'node': node.uuid, 'ref': ref, 'size': len(config),
              'digest': hashlib.sha256(config).hexdigest(),
              'keyfiles': len(keyfiles)})
    root = (node.driver_info.get('external_http_url')
            or CONF.deploy.external_http_url or CONF.deploy.http_url)
    return '%s/%s/%s' % (root.rstrip('/'), IMAGE_SUBDIR,
                         urllib.parse.quote(published_name(node)))


class CoreOSVirtualMediaMixin(object):
    """Per-node CoreOS live ISOs for a Redfish virtual media interface."""

    def get_properties(self):
        props = dict(super().get_properties())
        props.update(PROPERTIES)
        return props

    def _needs_live_iso(self, node):
        mode = deploy_utils.rescue_or_deploy_mode(node)
        return deploy_utils.needs_agent_ramdisk(node, mode=mode)

    def _validate_live(self, task, mode=None):
        node = task.node
        mode = mode or deploy_utils.rescue_or_deploy_mode(node)
        redfish_utils.parse_driver_info(node)
        live_iso_source(node, mode)
        agent_image(node)
        agent_options(node)
        _ssh_keys()
        _check_publishing(node)
        network_keyfiles(task)

    def _validate_driver_info(self, task):
        if not self._needs_live_iso(task.node):
            return super()._validate_driver_info(task)
        self._validate_live(task)

    def validate_inspection(self, task):
        self._validate_live(task, mode='deploy')

    def validate_rescue(self, task):
        self._validate_live(task, mode='rescue')

    def prepare_ramdisk(self, task, ramdisk_params):
        """Boot the node's own CoreOS live ISO over virtual media.

        The flow of Ironic's ``prepare_ramdisk`` with the ISO written for
        the node; the ISO is written, and every check done, before the
        node is powered off.
        """
        node = task.node
        if not driver_utils.need_prepare_ramdisk(node):
            return
        if not self._needs_live_iso(node):
            return super().prepare_ramdisk(task, ramdisk_params)
        mode = deploy_utils.rescue_or_deploy_mode(node)
        self._validate_live(task, mode)
        system = redfish_utils.get_system(node)
        managers = system.managers
        self._validate_vendor(task, managers)

        if manager_utils.is_fast_track(task):
            if redfish_boot._has_vmedia_device(
                    managers, sushy.VIRTUAL_MEDIA_CD, inserted=True,
                    system=system):
                LOG.debug('Fast track operation for node %s, not inserting '
                          'any devices', node.uuid)
                return
            LOG.warning('Fast track is possible for node %s, but no ISO is '
                        'currently inserted! Proceeding with normal '
                        'operation.', node.uuid)

        supported = redfish_boot._detect_supported_transport_protocols(
            task, managers, sushy.VIRTUAL_MEDIA_CD)
        protocol = redfish_boot._select_transport_protocol(task, supported)
        if protocol.upper() not in _TRANSPORTS:
            raise _invalid(_('Node %(node)s: the BMC would fetch the ISO '
                             'over %(proto)s; per-node CoreOS ISOs are '
                             'served over HTTP(S) only'),
                           node=node.uuid, proto=protocol)
        common_utils.set_node_nested_field(
            node, 'driver_internal_info', 'vmedia_transport_protocol',
            protocol)
        node.save()

        deploy_nic_mac = deploy_utils.get_single_nic_with_vif_port_id(task)
        if deploy_nic_mac is not None:
            ramdisk_params['BOOTIF'] = deploy_nic_mac
        if CONF.debug and 'ipa-debug' not in ramdisk_params:
            ramdisk_params['ipa-debug'] = '1'
        ramdisk_params['boot_method'] = 'vmedia'

        iso_url = build_live_iso(task, ramdisk_params, mode)
        try:
            manager_utils.node_power_action(task, states.POWER_OFF)
            insert_kwargs = {}
            if node.driver_info.get('vmedia_transport_protocol'):
                insert_kwargs['transfer_protocol'] = protocol
            redfish_boot._eject_vmedia(task, managers,
                                       sushy.VIRTUAL_MEDIA_CD)
            redfish_boot._insert_vmedia(task, managers, iso_url,
                                        sushy.VIRTUAL_MEDIA_CD,
                                        **insert_kwargs)
            boot_mode_utils.sync_boot_mode(task)
            self._set_boot_device(task, boot_devices.CDROM)
        except Exception:
            with excutils.save_and_reraise_exception():
                remove_live_iso(node)
        LOG.info('Node %(node)s boots its CoreOS live ISO over virtual '
                 'media (%(mode)s)', {'node': node.uuid, 'mode': mode})

    def clean_up_ramdisk(self, task):
        """Tear the ramdisk down and remove the node's ISO."""
        super().clean_up_ramdisk(task)
        if not manager_utils.is_fast_track(task):
            remove_live_iso(task.node)


class CoreOSRedfishVirtualMediaBoot(CoreOSVirtualMediaMixin,
                                    redfish_boot.RedfishVirtualMediaBoot):
    """``coreos-redfish-virtual-media``: per-node CoreOS live ISOs."""


class CoreOSIDRACVirtualMediaBoot(CoreOSVirtualMediaMixin,
                                  drac_boot.DracRedfishVirtualMediaBoot):
    """``coreos-idrac-redfish-virtual-media``: the iDRAC variant."""
