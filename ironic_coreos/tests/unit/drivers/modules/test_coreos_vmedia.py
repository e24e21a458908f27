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

"""Tests of the per-node CoreOS live ISO virtual media boot interfaces."""

import configparser
import functools
import grp
import hashlib
import http.server
import io
import json
import logging
import os
import stat
import threading
from unittest import mock

import fixtures
from ironic.common import boot_devices
from ironic.common import exception
from ironic.common import states
from ironic.conductor import task_manager
from ironic.conductor import utils as manager_utils
from ironic.drivers.modules import boot_mode_utils
from ironic.drivers.modules import image_cache
from ironic.drivers.modules.redfish import boot as redfish_boot
from ironic.drivers.modules.redfish import utils as redfish_utils
from ironic.tests.unit.db import base as db_base
from ironic.tests.unit.objects import utils as obj_utils
from oslo_utils import uuidutils
import pycdlib
import sushy

from ironic_coreos.cmd import live_ignition
from ironic_coreos.drivers.modules import coreos_vmedia
from ironic_coreos.engine import live_media
from ironic_coreos.engine import merge
from ironic_coreos.tests import live_iso

SECRET = 'agent-option-s3cr3t-value'
IMAGE = '192.0.2.1:5000/ironic-coreos-agent:test'
NETWORK_DATA = {
    'links': [{'id': 'port0', 'type': 'phy',
               'ethernet_mac_address': '52:54:00:12:34:56'}],
    'networks': [{'id': 'net0', 'link': 'port0', 'type': 'ipv4',
                  'ip_address': '192.0.2.50', 'netmask': '255.255.255.0',
                  'routes': [{'network': '0.0.0.0', 'netmask': '0.0.0.0',
                              'gateway': '192.0.2.1'}]}],
    'services': [{'type': 'dns', 'address': '192.0.2.53'}],
}
RAMDISK_PARAMS = {'ipa-api-url': 'http://192.0.2.10:6385',
                  'ipa-global-request-id': 'req-1'}

OPERATOR_KEY = ('ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAABAgMEBQYHCAkKCwwN'
                'Dg8QERITFBUWFxgZGhscHR4f op@example')


class VmediaTestBase(db_base.DbTestCase):

    generation = '2023-07.x86_64'

    def setUp(self):
        super().setUp()
        self.config(enabled_hardware_types=['coreos-redfish', 'coreos-idrac',
                                            'redfish', 'fake-hardware'])
        self.config(enabled_boot_interfaces=[
            'coreos-redfish-virtual-media',
            'coreos-idrac-redfish-virtual-media', 'redfish-virtual-media',
            'fake'])
        self.config(enabled_deploy_interfaces=['direct', 'coreos', 'fake'])
        self.config(enabled_power_interfaces=['redfish', 'idrac-redfish',
                                              'fake'])
        self.config(enabled_management_interfaces=['redfish', 'idrac-redfish',
                                                   'fake'])
        self.config(enabled_vendor_interfaces=['redfish', 'idrac-redfish',
                                               'no-vendor'])
        self.config(enabled_network_interfaces=['noop'])
        self.tmp = self.useFixture(fixtures.TempDir()).path
        self.http_root = os.path.join(self.tmp, 'httpboot')
        os.makedirs(self.http_root)
        self.config(http_root=self.http_root,
                    http_url='http://192.0.2.10:8080', group='deploy')
        self.config(tempdir=os.path.join(self.tmp, 'tmp'))
        os.makedirs(os.path.join(self.tmp, 'tmp'))
        self.config(file_url_allowed_paths=[self.tmp], group='conductor')
        self.config(live_iso_master_path=os.path.join(self.tmp, 'master'),
                    live_agent_image=IMAGE, group='coreos')
        self.stock = live_iso.unpack(self.generation, self.tmp,
                                     name='stock-live.iso')
        self.node = self.make_node()
        self.logger = self.useFixture(fixtures.FakeLogger(level=logging.DEBUG))
        for logger in list(logging.root.manager.loggerDict.values()):
            if isinstance(logger, logging.Logger):
                logger.disabled = False

    def make_node(self, driver='coreos-redfish', **driver_info):
        info = {'redfish_address': 'https://bmc.example.com',
                'redfish_system_id': '/redfish/v1/Systems/1',
                'redfish_username': 'admin', 'redfish_password': 'pw',
                'deploy_iso': 'file://%s' % self.stock}
        info.update(driver_info)
        if driver == 'coreos-redfish':
            boot, bmc = 'coreos-redfish-virtual-media', 'redfish'
        else:
            boot, bmc = 'coreos-idrac-redfish-virtual-media', 'idrac-redfish'
        return obj_utils.create_test_node(
            self.context, uuid=uuidutils.generate_uuid(),
            driver=driver, boot_interface=boot, deploy_interface='direct',
            power_interface=bmc, management_interface=bmc,
            vendor_interface=bmc, network_interface='noop',
            driver_info=info, network_data=NETWORK_DATA,
            provision_state=states.DEPLOYING, instance_info={})

    def build(self, node=None, params=None):
        node = node or self.node
        with task_manager.acquire(self.context, node.uuid) as task:
            return coreos_vmedia.build_live_iso(
                task, dict(params or RAMDISK_PARAMS))

    def validate(self, node=None):
        node = node or self.node
        with task_manager.acquire(self.context, node.uuid) as task:
            task.driver.boot.validate(task)

    def published(self, node=None):
        return coreos_vmedia.published_path(node or self.node)

    def assertNothingPublished(self):
        self.assertEqual([], os.listdir(os.path.join(self.http_root,
                                                     'redfish'))
                         if os.path.isdir(os.path.join(self.http_root,
                                                       'redfish')) else [])


class LoadingTestCase(VmediaTestBase):

    def test_interfaces_load_on_coreos_types(self):
        with task_manager.acquire(self.context, self.node.uuid) as task:
            self.assertIsInstance(task.driver.boot,
                                  coreos_vmedia.CoreOSRedfishVirtualMediaBoot)
        node = self.make_node(driver='coreos-idrac')
        with task_manager.acquire(self.context, node.uuid) as task:
            self.assertIsInstance(task.driver.boot,
                                  coreos_vmedia.CoreOSIDRACVirtualMediaBoot)

    def test_instance_boot_is_ironics(self):
        for ours, stock in (
                (coreos_vmedia.CoreOSRedfishVirtualMediaBoot,
                 redfish_boot.RedfishVirtualMediaBoot),):
            for name in ('prepare_instance', 'clean_up_instance',
                         'image_publisher_settings', '_eject_all'):
                self.assertIs(getattr(stock, name), getattr(ours, name))

    def test_properties_document_the_fields(self):
        props = coreos_vmedia.CoreOSRedfishVirtualMediaBoot().get_properties()
        for key in ('deploy_iso', 'coreos_agent_image',
                    'coreos_agent_options', 'coreos_live_iso_checksum'):
            self.assertIn(key, props)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):

    def log_message(self, fmt, *args):
        pass


class LiveISOTestCase(VmediaTestBase):

    def serve(self):
        """Serve the test's directory over HTTP; returns the stock's URL.

        (Ironic caches only images from a server: file:// images are
        linked, never cached.)
        """
        handler = functools.partial(_QuietHandler, directory=self.tmp)
        httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
        httpd.daemon_threads = True
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        self.addCleanup(httpd.server_close)
        self.addCleanup(httpd.shutdown)
        return 'http://127.0.0.1:%d/%s' % (
            httpd.server_address[1], os.path.basename(self.stock))

    def test_node_iso_holds_config_and_network(self):
        url = self.build()
        name = 'boot-%s.iso' % self.node.uuid
        self.assertEqual('http://192.0.2.10:8080/redfish/%s' % name, url)
        path = self.published()
        self.assertEqual(os.path.join(self.http_root, 'redfish', name), path)
        self.assertEqual(0o640, stat.S_IMODE(os.stat(path).st_mode))
        iso = live_media.LiveISO.open(path)
        config = json.loads(iso.ignition)
        files = {f['path']: f for f in config['storage']['files']}
        agent_conf = configparser.ConfigParser()
        agent_conf.read_string(merge.file_contents(
            files[live_ignition.CONF_FILE]).decode())
        self.assertEqual('http://192.0.2.10:6385',
                         agent_conf['DEFAULT']['api_url'])
        self.assertEqual(0o600, files[live_ignition.CONF_FILE]['mode'])
        unit = config['systemd']['units'][0]
        self.assertIn(IMAGE, unit['contents'])
        keyfile = iso.keyfiles['port0.nmconnection'].decode()
        self.assertIn('address1=192.0.2.50/24', keyfile)
        self.assertIn('mac-address=52:54:00:12:34:56', keyfile)
        kargs = iso.kargs.split()
        self.assertIn('ipa-api-url=http://192.0.2.10:6385', kargs)
        self.assertIn('ignition.firstboot', kargs)
        # Every byte outside the embed areas is the stock ISO's.
        with open(self.stock, 'rb') as f:
            stock = f.read()
        with open(path, 'rb') as f:
            mine = f.read()
        spans = live_iso.areas(iso)
        self.assertEqual(len(stock), len(mine))
        self.assertEqual(live_iso.outside(stock, spans),
                         live_iso.outside(mine, spans))
        # The stock ISO is unchanged.
        self.assertIsNone(live_media.LiveISO.open(self.stock).ignition)

    def test_stock_iso_fetched_once_for_two_nodes(self):
        url = self.serve()
        self.node = self.make_node(deploy_iso=url)
        other = self.make_node(deploy_iso=url)
        real = image_cache._fetch
        with mock.patch.object(image_cache, '_fetch', autospec=True,
                               side_effect=real) as mock_fetch:
            self.build()
            self.build(other)
        self.assertEqual(1, mock_fetch.call_count)
        first = live_media.LiveISO.open(self.published())
        second = live_media.LiveISO.open(self.published(other))
        self.assertNotEqual(self.published(), self.published(other))
        self.assertEqual(first.keyfiles, second.keyfiles)
        # Only the master copy is left in the cache.
        master = os.path.join(self.tmp, 'master')
        files = [os.path.join(d, f) for d, _s, fs in os.walk(master)
                 for f in fs]
        self.assertEqual(1, len(files), files)
        self.assertEqual(1, os.stat(files[0]).st_nlink)

    def test_checksum_is_part_of_the_cache_key(self):
        with open(self.stock, 'rb') as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        url = self.serve()
        self.build(self.make_node(deploy_iso=url))
        node = self.make_node(deploy_iso=url,
                              coreos_live_iso_checksum='sha256:%s' % digest)
        real = image_cache._fetch
        with mock.patch.object(image_cache, '_fetch', autospec=True,
                               side_effect=real) as mock_fetch:
            self.build(node)
            self.build(node)
        self.assertEqual(1, mock_fetch.call_count)

    def test_wrong_checksum_refused(self):
        node = self.make_node(coreos_live_iso_checksum='sha256:' + '0' * 64)
        self.assertRaises(exception.ImageChecksumError, self.build, node)
        self.assertNothingPublished()

    def test_default_iso_from_config(self):
        node = self.make_node()
        info = dict(node.driver_info)
        del info['deploy_iso']
        node.driver_info = info
        node.save()
        self.config(live_iso='file://%s' % self.stock, group='coreos')
        self.validate(node)
        self.build(node)
        self.assertIsNotNone(
            live_media.LiveISO.open(self.published(node)).ignition)

    def test_group_and_mode(self):
        group = grp.getgrgid(os.getgid()).gr_name
        self.config(live_iso_file_group=group, live_iso_file_permission=0o600,
                    group='coreos')
        self.build()
        st = os.stat(self.published())
        self.assertEqual(0o600, stat.S_IMODE(st.st_mode))
        self.assertEqual(os.getgid(), st.st_gid)

    def test_agent_options_merged_and_not_logged(self):
        self.config(live_agent_options=['lookup_timeout=300',
                                        'coreos.install_attempts=5'],
                    group='coreos')
        node = self.make_node(coreos_agent_options=json.dumps(
            {'DEFAULT.lookup_timeout': 600, 'DEFAULT.secret_thing': SECRET}))
        self.build(node)
        config = json.loads(live_media.LiveISO.open(
            self.published(node)).ignition)
        files = {f['path']: f for f in config['storage']['files']}
        agent_conf = configparser.ConfigParser()
        agent_conf.read_string(merge.file_contents(
            files[live_ignition.CONF_FILE]).decode())
        self.assertEqual('600', agent_conf['DEFAULT']['lookup_timeout'])
        self.assertEqual('5', agent_conf['coreos']['install_attempts'])
        self.assertEqual(SECRET, agent_conf['DEFAULT']['secret_thing'])
        self.assertNotIn(SECRET, self.logger.output)
        self.assertIn('Wrote the live ISO of node %s' % node.uuid,
                      self.logger.output)

    def test_insecure_registry_and_ssh_keys(self):
        keys = os.path.join(self.tmp, 'keys.pub')
        with open(keys, 'w') as f:
            f.write('# the operator\n%s\n\n' % OPERATOR_KEY)
        self.config(live_insecure_registries=['192.0.2.10:5000'],
                    live_ssh_keys_file=keys, group='coreos')
        self.build()
        config = json.loads(live_media.LiveISO.open(
            self.published()).ignition)
        self.assertEqual([OPERATOR_KEY],
                         config['passwd']['users'][0]['sshAuthorizedKeys'])
        files = {f['path']: f for f in config['storage']['files']}
        registries = merge.file_contents(
            files[live_ignition.REGISTRIES_FILE]).decode()
        self.assertIn('location = "192.0.2.10:5000"', registries)
        self.assertIn('insecure = true', registries)

    def test_unreadable_ssh_keys_file_refused_by_validate(self):
        missing = os.path.join(self.tmp, 'nope.pub')
        self.config(live_ssh_keys_file=missing, group='coreos')
        exc = self.assertRaises(exception.InvalidParameterValue,
                                self.validate, self.node)
        self.assertIn('[coreos]live_ssh_keys_file %s' % missing, str(exc))
        self.assertIn('one per line', str(exc))
        self.assertNothingPublished()

    def test_old_iso_gets_keyfiles_through_ignition(self):
        # 2021-09: no live-initrd-network; the keyfile goes into Ignition.
        self.stock = live_iso.unpack('2021-09', self.tmp, name='old.iso')
        node = self.make_node(deploy_iso='file://%s' % self.stock)
        self.build(node)
        iso = live_media.LiveISO.open(self.published(node))
        self.assertEqual({}, iso.keyfiles)
        paths = [f['path'] for f in json.loads(iso.ignition)['storage'][
            'files']]
        self.assertIn('/etc/NetworkManager/system-connections/'
                      'port0.nmconnection', paths)

    def test_iso_without_kargs_areas(self):
        self.stock = live_iso.unpack('2020-09', self.tmp, name='oldest.iso')
        node = self.make_node(deploy_iso='file://%s' % self.stock)
        self.build(node)
        iso = live_media.LiveISO.open(self.published(node))
        self.assertIsNone(iso.kargs)
        self.assertIsNotNone(iso.ignition)

    def test_rebuild_replaces_previous_iso(self):
        self.build()
        self.build(params=dict(RAMDISK_PARAMS, **{
            'ipa-api-url': 'http://192.0.2.11:6385'}))
        iso = live_media.LiveISO.open(self.published())
        self.assertIn('ipa-api-url=http://192.0.2.11:6385', iso.kargs)

    def test_token_never_written(self):
        self.build(params=dict(RAMDISK_PARAMS, **{
            'ipa-agent-token': SECRET}))
        with open(self.published(), 'rb') as f:
            self.assertNotIn(SECRET.encode(), f.read())


class BadInputTestCase(VmediaTestBase):

    def assertRefused(self, exc_class, node, *words):
        exc = self.assertRaises(exc_class, self.build, node)
        for word in words:
            self.assertIn(word, str(exc))
        self.assertNothingPublished()
        return exc

    def test_not_an_iso(self):
        path = os.path.join(self.tmp, 'not-an-iso.iso')
        with open(path, 'wb') as f:
            f.write(os.urandom(64 * 1024))
        node = self.make_node(deploy_iso='file://%s' % path)
        exc = self.assertRefused(exception.InvalidParameterValue, node,
                                 'driver_info/deploy_iso',
                                 'file://%s' % path, 'not an ISO 9660')
        self.assertNotIn('.node-', str(exc))

    def test_iso_but_not_coreos(self):
        path = os.path.join(self.tmp, 'plain.iso')
        iso = pycdlib.PyCdlib()
        iso.new()
        iso.add_fp(io.BytesIO(b'hello'), 5, '/HELLO.TXT;1')
        iso.write(path)
        iso.close()
        node = self.make_node(deploy_iso='file://%s' % path)
        self.assertRefused(exception.InvalidParameterValue, node,
                           'not a CoreOS live ISO')

    def test_area_too_small(self):
        # Incompressible option values larger than the 256 KiB area.
        big = os.urandom(400 * 1024).hex()
        node = self.make_node(coreos_agent_options=json.dumps(
            {'DEFAULT.padding': big}))
        exc = self.assertRefused(exception.InvalidParameterValue, node,
                                 'initrd embed area')
        self.assertNotIn(big[:64], str(exc))
        self.assertNotIn(big[:64], self.logger.output)

    def test_missing_iso_file(self):
        node = self.make_node(deploy_iso='file://%s/nope.iso' % self.tmp)
        self.assertRaises(exception.IronicException, self.build, node)
        self.assertNothingPublished()

    def test_missing_iso_everywhere(self):
        node = self.make_node()
        info = dict(node.driver_info)
        del info['deploy_iso']
        node.driver_info = info
        node.save()
        exc = self.assertRaises(exception.MissingParameterValue,
                                self.validate, node)
        self.assertIn('[coreos]live_iso', str(exc))
        self.assertIn('deploy_iso', str(exc))

    def test_network_data_not_convertible(self):
        node = self.make_node()
        node.network_data = {'links': [{'id': 'port0', 'type': 'phy',
                                        'ethernet_mac_address': 'zz'}],
                             'networks': []}
        node.save()
        exc = self.assertRaises(exception.InvalidParameterValue,
                                self.validate, node)
        self.assertIn('network_data', str(exc))
        self.assertRaises(exception.InvalidParameterValue, self.build, node)
        self.assertNothingPublished()

    def test_no_agent_image(self):
        self.config(live_agent_image=None, group='coreos')
        exc = self.assertRaises(exception.MissingParameterValue,
                                self.validate)
        self.assertIn('coreos_agent_image', str(exc))
        self.node.driver_info = dict(self.node.driver_info,
                                     coreos_agent_image='bad image!')
        self.node.save()
        exc = self.assertRaises(exception.InvalidParameterValue,
                                self.validate)
        self.assertIn('bad image!', str(exc))

    def test_bad_agent_options(self):
        for value, words in (
                ('not json', ('not a JSON object',)),
                ('[1, 2]', ('must be a JSON object',)),
                (json.dumps({'x.': SECRET}), ('[SECTION.]NAME=VALUE',)),
                (json.dumps({'DEFAULT.a': {'b': SECRET}}),
                 ('must be a string',))):
            node = self.make_node(coreos_agent_options=value)
            exc = self.assertRaises(exception.InvalidParameterValue,
                                    self.validate, node)
            for word in words:
                self.assertIn(word, str(exc))
            self.assertNotIn(SECRET, str(exc))
        self.config(live_agent_options=['novalue'], group='coreos')
        exc = self.assertRaises(exception.InvalidParameterValue,
                                self.validate)
        self.assertIn('[coreos]live_agent_options', str(exc))

    def test_bad_checksum(self):
        for value in ('abc', 'sha1:' + 'a' * 40, 'sha256:' + 'g' * 64,
                      'sha512:' + 'a' * 64):
            node = self.make_node(coreos_live_iso_checksum=value)
            exc = self.assertRaises(exception.InvalidParameterValue,
                                    self.validate, node)
            self.assertIn('driver_info/coreos_live_iso_checksum', str(exc))

    def test_publishing_settings(self):
        self.config(use_swift=True, group='redfish')
        exc = self.assertRaises(exception.InvalidParameterValue,
                                self.validate)
        self.assertIn('use_swift', str(exc))
        self.config(use_swift=False, group='redfish')
        self.config(live_iso_file_permission=0o644, group='coreos')
        exc = self.assertRaises(exception.InvalidParameterValue,
                                self.validate)
        self.assertIn('live_iso_file_permission', str(exc))
        self.config(live_iso_file_permission=0o640,
                    live_iso_file_group='no-such-group-here', group='coreos')
        exc = self.assertRaises(exception.InvalidParameterValue,
                                self.validate)
        self.assertIn('no-such-group-here', str(exc))

    def test_transport_and_removable(self):
        node = self.make_node(vmedia_transport_protocol='NFS')
        exc = self.assertRaises(exception.InvalidParameterValue,
                                self.validate, node)
        self.assertIn('vmedia_transport_protocol', str(exc))
        node = self.make_node(config_via_removable=True)
        exc = self.assertRaises(exception.InvalidParameterValue,
                                self.validate, node)
        self.assertIn('config_via_removable', str(exc))

    def test_valid(self):
        self.validate()


@mock.patch.object(boot_mode_utils, 'sync_boot_mode', autospec=True)
@mock.patch.object(manager_utils, 'node_set_boot_device', autospec=True)
@mock.patch.object(manager_utils, 'node_power_action', autospec=True)
@mock.patch.object(redfish_boot, '_insert_vmedia', autospec=True)
@mock.patch.object(redfish_boot, '_eject_vmedia', autospec=True)
@mock.patch.object(redfish_boot, '_detect_supported_transport_protocols',
                   autospec=True, return_value=['HTTP', 'HTTPS'])
@mock.patch.object(redfish_utils, 'get_system', autospec=True)
class PrepareRamdiskTestCase(VmediaTestBase):

    def prepare(self, params=None):
        with task_manager.acquire(self.context, self.node.uuid) as task:
            task.driver.boot.prepare_ramdisk(task,
                                             dict(params or RAMDISK_PARAMS))

    def test_prepare_inserts_node_iso(self, mock_system, mock_protocols,
                                      mock_eject, mock_insert, mock_power,
                                      mock_boot_dev, mock_sync):
        self.prepare()
        url = ('http://192.0.2.10:8080/redfish/boot-%s.iso'
               % self.node.uuid)
        mock_insert.assert_called_once_with(
            mock.ANY, mock.ANY, url, sushy.VIRTUAL_MEDIA_CD)
        mock_power.assert_called_once_with(mock.ANY, states.POWER_OFF)
        mock_boot_dev.assert_called_once_with(mock.ANY, boot_devices.CDROM,
                                              False)
        iso = live_media.LiveISO.open(self.published())
        self.assertIn('boot_method=vmedia', iso.kargs.split())
        self.node.refresh()
        self.assertEqual('HTTP', self.node.driver_internal_info[
            'vmedia_transport_protocol'])

    def test_bad_iso_fails_before_power(self, mock_system, mock_protocols,
                                        mock_eject, mock_insert, mock_power,
                                        mock_boot_dev, mock_sync):
        path = os.path.join(self.tmp, 'junk.iso')
        with open(path, 'wb') as f:
            f.write(b'\0' * 40000)
        self.node.driver_info = dict(self.node.driver_info,
                                     deploy_iso='file://%s' % path)
        self.node.save()
        self.assertRaises(exception.InvalidParameterValue, self.prepare)
        mock_power.assert_not_called()
        mock_insert.assert_not_called()
        self.assertNothingPublished()

    def test_insert_failure_removes_iso(self, mock_system, mock_protocols,
                                        mock_eject, mock_insert, mock_power,
                                        mock_boot_dev, mock_sync):
        mock_insert.side_effect = exception.InvalidParameterValue('no CD')
        self.assertRaises(exception.InvalidParameterValue, self.prepare)
        self.assertNothingPublished()

    @mock.patch.object(redfish_boot, '_select_transport_protocol',
                       autospec=True, return_value='NFS')
    def test_nfs_refused(self, mock_select, mock_system, mock_protocols,
                         mock_eject, mock_insert, mock_power, mock_boot_dev,
                         mock_sync):
        exc = self.assertRaises(exception.InvalidParameterValue,
                                self.prepare)
        self.assertIn('HTTP(S) only', str(exc))
        mock_power.assert_not_called()

    def test_clean_up_ramdisk_removes_iso(self, mock_system, mock_protocols,
                                          mock_eject, mock_insert,
                                          mock_power, mock_boot_dev,
                                          mock_sync):
        self.prepare()
        self.assertTrue(os.path.exists(self.published()))
        with task_manager.acquire(self.context, self.node.uuid) as task:
            task.driver.boot.clean_up_ramdisk(task)
        self.assertFalse(os.path.exists(self.published()))
        mock_eject.assert_any_call(mock.ANY, mock.ANY, sushy.VIRTUAL_MEDIA_CD)

    def test_not_preparing(self, mock_system, mock_protocols, mock_eject,
                           mock_insert, mock_power, mock_boot_dev, mock_sync):
        self.node.provision_state = states.ACTIVE
        self.node.save()
        self.prepare()
        mock_insert.assert_not_called()
        self.assertNothingPublished()
