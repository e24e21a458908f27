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

"""Tests of the ``coreos`` deploy interface on Ironic's own test base."""

import base64
import copy
import datetime
import json
import logging
from unittest import mock

import fixtures
from ironic.common import exception
from ironic.common import states
from ironic.conductor import configdrive_utils
from ironic.conductor import deployments
from ironic.conductor import steps as conductor_steps
from ironic.conductor import task_manager
from ironic.conductor import utils as manager_utils
from ironic.drivers.modules import agent
from ironic.drivers.modules import agent_base
from ironic.drivers.modules import agent_client
from ironic.drivers.modules import deploy_utils
from ironic.drivers.modules import fake
from ironic import objects
from ironic.tests.unit.conductor import mgr_utils
from ironic.tests.unit.db import base as db_base
from ironic.tests.unit.objects import utils as obj_utils
import oslo_messaging as messaging
from oslo_utils import uuidutils
import requests

from ironic_coreos.drivers.modules import coreos
from ironic_coreos.engine import configdrive
from ironic_coreos.engine import ignition
from ironic_coreos.engine import installer
from ironic_coreos.engine import merge
from ironic_coreos.engine import redact
from ironic_coreos.tests import configdrive as drives

SECRET = 'S3CRET-PULL-TOKEN-4242'
AGENT_URL = 'http://127.0.0.1:9999'
MARKER = 'IGNITION-SECRET-MARKER-7a7a'

SSH_KEY = ('ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5'
           'C9okWi0dh2l9GKJl user@example')
SHA256 = 'a' * 64
SHA512 = 'b' * 128

USER_CONFIG = {
    'ignition': {'version': '3.4.0'},
    'storage': {'files': [{
        'path': '/etc/motd',
        'mode': 420,
        'contents': {'source': 'data:,' + MARKER},
    }]},
}

NETWORK_DATA = {
    'links': [{'id': 'tap1', 'type': 'phy',
               'ethernet_mac_address': '52:54:00:12:34:56', 'mtu': 1500}],
    'networks': [{'id': 'network0', 'type': 'ipv4', 'link': 'tap1',
                  'ip_address': '192.0.2.10', 'netmask': '255.255.255.0',
                  'routes': [{'network': '0.0.0.0', 'netmask': '0.0.0.0',
                              'gateway': '192.0.2.1'}]}],
    'services': [{'type': 'dns', 'address': '192.0.2.53'}],
}

META_DATA = {'uuid': '1be26c0b-03f2-4d2e-ae87-c02d7f33c123',
             'hostname': 'node-1.example.com',
             'public_keys': {'mykey': SSH_KEY}}

KEYFILE_DIR = '/etc/NetworkManager/system-connections/'


def json_configdrive(user_data=USER_CONFIG, meta_data=META_DATA,
                     network_data=NETWORK_DATA):
    """A config drive in the JSON form of the Ironic API."""
    drive = {'meta_data': copy.deepcopy(meta_data)}
    if user_data is not None:
        drive['user_data'] = copy.deepcopy(user_data)
    if network_data is not None:
        drive['network_data'] = copy.deepcopy(network_data)
    return drive


def iso_configdrive(user_data=USER_CONFIG, meta_data=META_DATA,
                    network_data=NETWORK_DATA, compress=True):
    """A config drive as Nova sends it: base64 of a gzipped ISO 9660."""
    return drives.build_iso(user_data=user_data, meta_data=meta_data,
                            network_data=network_data, gzip_it=compress)


def agent_answer(status='RUNNING'):
    """What the agent answers to a command it started (HTTP 200)."""
    response = mock.Mock(spec=requests.Response, status_code=200)
    response.json.return_value = {
        'id': 'c0ffee', 'command_name': 'execute_deploy_step',
        'command_status': status, 'command_error': None,
        'command_result': None}
    return response


def decode_file(config, path):
    """Contents and mode of a file of an Ignition config (data URL)."""
    for entry in config.get('storage', {}).get('files', []):
        if entry['path'] == path:
            source = entry['contents']['source']
            header, _sep, payload = source.partition(',')
            if header.endswith(';base64'):
                data = base64.b64decode(payload)
            else:
                data = payload.encode()
            return data, entry.get('mode')
    return None, None


class CoreOSTestBase(db_base.DbTestCase):

    def setUp(self):
        super().setUp()
        self.config(enabled_deploy_interfaces=['direct', 'custom-agent',
                                               'coreos', 'fake'])
        self.deploy = coreos.CoreOSDeploy()
        # Every test starts with no remembered verdicts.
        self.useFixture(fixtures.MockPatchObject(
            coreos, '_VERDICTS', ignition.Verdicts()))
        self.node = obj_utils.create_test_node(
            self.context, driver='fake-hardware',
            deploy_interface='coreos', boot_interface='fake',
            network_interface='noop', instance_info={},
            driver_internal_info={'agent_url': AGENT_URL})
        self.logger = self.useFixture(fixtures.FakeLogger(level=logging.DEBUG))
        # NOTE: the database setup of Ironic's test base configures logging
        # with disable_existing_loggers; bring every logger back (Ironic's
        # own included: they log steps and nodes) so that the secret
        # assertions see all a conductor would log, at every level.
        for logger in list(logging.root.manager.loggerDict.values()):
            if isinstance(logger, logging.Logger):
                logger.disabled = False

    def set_instance_info(self, **info):
        self.node.instance_info = info
        self.node.save()

    def assertNoSecrets(self, *texts):
        joined = '\n'.join([self.logger.output] + [str(t) for t in texts])
        self.assertNotIn(SECRET, joined)
        self.assertNotIn(MARKER, joined)


class StepsTestCase(CoreOSTestBase):

    def test_deployment_steps(self):
        with task_manager.acquire(self.context, self.node.uuid) as task:
            steps = conductor_steps._get_deployment_steps(task, enabled=True)
        self.assertEqual(
            [('deploy', 'deploy', 100),
             ('deploy', 'install_coreos', 80),
             ('deploy', 'prepare_instance_boot', 60),
             ('deploy', 'tear_down_agent', 40),
             ('deploy', 'switch_to_tenant_network', 30),
             ('deploy', 'boot_instance', 20)],
            [(s['interface'], s['step'], s['priority']) for s in steps])

    def test_install_coreos_argsinfo(self):
        with task_manager.acquire(self.context, self.node.uuid) as task:
            steps = self.deploy.get_deploy_steps(task)
        step = [s for s in steps if s['step'] == 'install_coreos']
        self.assertEqual(1, len(step))
        self.assertEqual(installer.ARGUMENTS, step[0]['argsinfo'])

    def test_in_band_step_is_shadowed(self):
        self.node.driver_internal_info = {
            'agent_url': 'http://127.0.0.1:9999',
            'agent_cached_deploy_steps': {'deploy': [
                {'interface': 'deploy', 'step': 'install_coreos',
                 'priority': 0, 'argsinfo': installer.ARGUMENTS,
                 'reboot_requested': False}]}}
        self.node.save()
        with task_manager.acquire(self.context, self.node.uuid) as task:
            steps = self.deploy.get_deploy_steps(task)
        install = [s for s in steps if s['step'] == 'install_coreos']
        self.assertEqual(1, len(install))
        self.assertEqual(80, install[0]['priority'])


@mock.patch.object(requests.Session, 'post', autospec=True)
class InstallCoreOSTestCase(CoreOSTestBase):
    """The out-of-band step, through Ironic's real agent client.

    Only the HTTP request to the agent is replaced: Ironic's own
    ``execute_step`` and agent client build the command (and log it)
    as they do in a conductor.
    """

    def setUp(self):
        super().setUp()
        self.set_instance_info()

    def set_instance_info(self, **info):
        # NOTE: an Ignition config is needed unless the test brings a
        # config drive.
        if 'configdrive' not in info:
            info.setdefault('ignition', USER_CONFIG)
        super().set_instance_info(**info)

    def run_step(self, mock_post, **step_args):
        mock_post.return_value = agent_answer()
        with task_manager.acquire(self.context, self.node.uuid) as task:
            result = self.deploy.install_coreos(task, **step_args)
        # Ironic's execute_step turned the agent's RUNNING into:
        self.assertEqual(states.DEPLOYWAIT, result)
        mock_post.assert_called_once_with(
            mock.ANY, AGENT_URL + '/v1/commands/', params={'wait': 'false'},
            data=mock.ANY, verify=mock.ANY, timeout=mock.ANY)
        body = json.loads(mock_post.call_args.kwargs['data'])
        self.assertEqual('deploy.execute_deploy_step', body['name'])
        step = body['params']['step']
        self.assertEqual('deploy', step['interface'])
        self.assertEqual('install_coreos', step['step'])
        # The agent must accept exactly these arguments.
        parsed = installer.parse_args(step['args'])
        # The config goes as its JSON text, the bytes the agent installs.
        args = dict(step['args'])
        self.assertEqual(redact.config_bytes(parsed.ignition).decode(),
                         args['ignition'])
        args['ignition'] = parsed.ignition
        return args

    def assertMerged(self, config, hostname=True, keys=True, network=True):
        data, mode = decode_file(config, '/etc/hostname')
        if hostname:
            self.assertEqual(b'node-1.example.com\n', data)
        else:
            self.assertIsNone(data)
        users = config.get('passwd', {}).get('users', [])
        if keys:
            self.assertEqual([{'name': 'core',
                               'sshAuthorizedKeys': [SSH_KEY]}], users)
        else:
            self.assertEqual([], users)
        keyfiles = [f for f in config.get('storage', {}).get('files', [])
                    if f['path'].startswith(KEYFILE_DIR)]
        if network:
            self.assertEqual(1, len(keyfiles))
            self.assertEqual(0o600, keyfiles[0]['mode'])
            data, _mode = decode_file(config, keyfiles[0]['path'])
            self.assertIn(b'192.0.2.10', data)
        else:
            self.assertEqual([], keyfiles)

    def test_json_configdrive(self, mock_post):
        self.set_instance_info(configdrive=json_configdrive())
        args = self.run_step(mock_post)
        self.assertEqual(
            {'insecure': False, 'append_kargs': [], 'delete_kargs': [],
             'console': [], 'platform': 'metal', 'copy_network': False,
             'save_partlabel': [], 'save_partindex': [],
             'preserve_on_error': True},
            {k: v for k, v in args.items() if k != 'ignition'})
        config = args['ignition']
        self.assertEqual('3.4.0', config['ignition']['version'])
        self.assertEqual((b'' + MARKER.encode(), 420),
                         decode_file(config, '/etc/motd'))
        self.assertMerged(config)
        self.assertNoSecrets()

    def test_metal3_meta_data(self, mock_post):
        meta = {'uuid': 'bmh-uid-1', 'metal3-namespace': 'ns',
                'metal3-name': 'node-1', 'local-hostname':
                'node-1.example.com', 'local_hostname': 'node-1',
                'name': 'node-1', 'public_keys': {'k': SSH_KEY}}
        self.set_instance_info(configdrive=json_configdrive(
            user_data=json.dumps(USER_CONFIG), meta_data=meta))
        args = self.run_step(mock_post)
        self.assertMerged(args['ignition'])
        # Unused parts are logged once (install_coreos only), by key name.
        self.assertEqual(1, self.logger.output.count(
            '"metal3-name", "metal3-namespace", "uuid" not used'))
        self.assertEqual(1, self.logger.output.count(
            '"local_hostname", "name" differ(s) from "local-hostname"'))
        self.assertNotIn('bmh-uid-1', self.logger.output)

    def test_user_hostname_wins(self, mock_post):
        config = copy.deepcopy(USER_CONFIG)
        config['storage']['files'].append(
            {'path': '/etc/hostname', 'mode': 420,
             'contents': {'source': 'data:,mine'}})
        self.set_instance_info(configdrive=json_configdrive(
            user_data=config))
        args = self.run_step(mock_post)
        self.assertEqual((b'mine', 420),
                         decode_file(args['ignition'], '/etc/hostname'))
        self.assertIn('the Ignition config writes /etc/hostname itself',
                      self.logger.output)

    def test_network_on_bond_member_is_moved_and_logged(self, mock_post):
        network_data = {
            'links': [
                {'id': 'eth0', 'type': 'phy',
                 'ethernet_mac_address': '52:54:00:12:34:56'},
                {'id': 'eth1', 'type': 'phy',
                 'ethernet_mac_address': '52:54:00:12:34:57'},
                {'id': 'bond0', 'type': 'bond', 'bond_mode': '802.3ad',
                 'bond_links': ['eth0', 'eth1']}],
            'networks': [{'id': 'network0', 'type': 'ipv4', 'link': 'eth0',
                          'ip_address': '192.0.2.10',
                          'netmask': '255.255.255.0'}],
        }
        self.set_instance_info(
            configdrive=json_configdrive(network_data=network_data))
        config = self.run_step(mock_post)['ignition']
        data, mode = decode_file(config, KEYFILE_DIR + 'bond0.nmconnection')
        self.assertIn(b'address1=192.0.2.10/24', data)
        self.assertEqual(0o600, mode)
        self.assertIn('"eth0" is a member of bond "bond0"',
                      self.logger.output)

    def test_json_configdrive_user_data_string(self, mock_post):
        self.set_instance_info(configdrive=json_configdrive(
            user_data=json.dumps(USER_CONFIG)))
        args = self.run_step(mock_post)
        self.assertEqual((MARKER.encode(), 420),
                         decode_file(args['ignition'], '/etc/motd'))
        self.assertMerged(args['ignition'])

    def test_iso_configdrive(self, mock_post):
        self.set_instance_info(configdrive=iso_configdrive())
        args = self.run_step(mock_post)
        self.assertEqual((MARKER.encode(), 420),
                         decode_file(args['ignition'], '/etc/motd'))
        self.assertMerged(args['ignition'])
        self.assertNoSecrets()

    def test_plain_base64_iso_configdrive(self, mock_post):
        self.set_instance_info(configdrive=iso_configdrive(compress=False))
        args = self.run_step(mock_post)
        self.assertMerged(args['ignition'])

    @mock.patch.object(configdrive.requests, 'get', autospec=True)
    def test_url_configdrive(self, mock_get, mock_post):
        body = iso_configdrive().encode()
        response = mock.MagicMock(status_code=200)
        response.__enter__.return_value = response
        response.iter_content.return_value = [body]
        mock_get.return_value = response
        self.set_instance_info(
            configdrive='https://swift.example.com/v1/cd?temp_url_sig=x')
        args = self.run_step(mock_post)
        mock_get.assert_called_once_with(
            'https://swift.example.com/v1/cd?temp_url_sig=x',
            timeout=60, stream=True)
        self.assertMerged(args['ignition'])

    @mock.patch.object(configdrive.requests, 'get', autospec=True)
    def test_url_configdrive_unreachable(self, mock_get, mock_post):
        mock_get.side_effect = requests.ConnectionError()
        self.set_instance_info(configdrive='https://swift.example.com/v1/cd')
        with task_manager.acquire(self.context, self.node.uuid) as task:
            exc = self.assertRaises(exception.InstanceDeployFailure,
                                    self.deploy.install_coreos, task)
        self.assertIn('instance_info/configdrive', str(exc))
        self.assertFalse(mock_post.called)

    def test_instance_info_ignition_wins(self, mock_post):
        own = {'ignition': {'version': '3.2.0'}}
        self.set_instance_info(
            ignition=own,
            configdrive=json_configdrive(user_data='#cloud-config\n'))
        args = self.run_step(mock_post)
        self.assertEqual('3.2.0', args['ignition']['ignition']['version'])
        self.assertIsNone(decode_file(args['ignition'], '/etc/motd')[0])
        self.assertMerged(args['ignition'])

    def test_instance_info_ignition_json_string(self, mock_post):
        self.set_instance_info(ignition=json.dumps(USER_CONFIG))
        args = self.run_step(mock_post)
        self.assertEqual((MARKER.encode(), 420),
                         decode_file(args['ignition'], '/etc/motd'))
        self.assertMerged(args['ignition'], hostname=False, keys=False,
                          network=False)

    def test_step_arg_ignition_wins(self, mock_post):
        self.set_instance_info(ignition=USER_CONFIG,
                               configdrive=json_configdrive())
        args = self.run_step(mock_post,
                             ignition={'ignition': {'version': '3.1.0'}})
        self.assertEqual('3.1.0', args['ignition']['ignition']['version'])
        self.assertMerged(args['ignition'])

    def test_no_ignition_at_all(self, mock_post):
        self.node.instance_info = {}
        self.node.save()
        with task_manager.acquire(self.context, self.node.uuid) as task:
            exc = self.assertRaises(exception.InstanceDeployFailure,
                                    self.deploy.install_coreos, task)
        self.assertIn('Ignition config: none given', str(exc))
        self.assertFalse(mock_post.called)

    def test_keys_without_user_data(self, mock_post):
        self.set_instance_info(configdrive=json_configdrive(
            user_data=None, network_data=None))
        args = self.run_step(mock_post)
        self.assertEqual(
            {'ignition': {'version': '3.0.0'},
             'storage': {'files': [{
                 'path': '/etc/hostname', 'mode': 0o644,
                 'contents': {'source': 'data:;base64,' + base64.b64encode(
                     b'node-1.example.com\n').decode()}}]},
             'passwd': {'users': [{'name': 'core',
                                   'sshAuthorizedKeys': [SSH_KEY]}]}},
            args['ignition'])
        self.assertNotIn('image_url', args)

    def test_configdrive_without_user_data(self, mock_post):
        self.set_instance_info(configdrive=json_configdrive(user_data=None))
        args = self.run_step(mock_post)
        self.assertEqual('3.0.0', args['ignition']['ignition']['version'])
        self.assertMerged(args['ignition'])

    def test_options_disabled(self, mock_post):
        self.config(convert_network_data=False, set_hostname=False,
                    group='coreos')
        self.set_instance_info(configdrive=json_configdrive())
        args = self.run_step(mock_post)
        self.assertMerged(args['ignition'], hostname=False, network=False)

    def test_ssh_user(self, mock_post):
        self.config(ssh_user='admin', group='coreos')
        self.set_instance_info(configdrive=json_configdrive())
        args = self.run_step(mock_post)
        self.assertEqual([{'name': 'admin', 'sshAuthorizedKeys': [SSH_KEY]}],
                         args['ignition']['passwd']['users'])

    def test_image_from_instance_info(self, mock_post):
        self.set_instance_info(
            ignition=USER_CONFIG,
            image_source='https://images.example.com/fcos-metal.raw.xz',
            image_os_hash_algo='sha256', image_os_hash_value=SHA256,
            image_pull_secret=SECRET)
        args = self.run_step(mock_post)
        self.assertEqual('https://images.example.com/fcos-metal.raw.xz',
                         args['image_url'])
        self.assertEqual('sha256:' + SHA256, args['image_checksum'])
        # NOTE: unmasked in the step args, and only there: Ironic masks it
        # in the node it sends along.
        self.assertEqual(SECRET, args['image_pull_secret'])
        body = json.loads(mock_post.call_args.kwargs['data'])
        self.assertNotIn(SECRET, json.dumps(body['params']['node']))
        self.assertNoSecrets()
        self.assertIn('with a pull secret', self.logger.output)

    def test_glance_image_installs_live_image(self, mock_post):
        self.set_instance_info(
            image_source='7d5a8b0e-6c1f-4a0f-9a52-4ae1b3c2d1e0',
            image_os_hash_algo='sha512', image_os_hash_value=SHA512)
        args = self.run_step(mock_post)
        self.assertNotIn('image_url', args)
        self.assertNotIn('image_checksum', args)
        self.assertIn('is a Glance image', self.logger.output)

    def test_image_checksum_bare_sha512(self, mock_post):
        self.set_instance_info(
            image_source='http://images.example.com/fcos.raw.xz',
            image_checksum=SHA512)
        args = self.run_step(mock_post)
        self.assertEqual('sha512:' + SHA512, args['image_checksum'])

    def test_instance_info_options(self, mock_post):
        self.set_instance_info(
            coreos_append_kargs=['console=ttyS0,115200n8', 'nosmt'],
            coreos_delete_kargs=['quiet'], coreos_console=['ttyS0,115200n8'],
            coreos_platform='openstack', coreos_copy_network=True,
            coreos_save_partlabel=['data*'], coreos_save_partindex=['5-'],
            coreos_fetch_retries=3, coreos_insecure='true',
            coreos_preserve_on_error=False)
        args = self.run_step(mock_post)
        args.pop('ignition')
        self.assertEqual(
            {'append_kargs': ['console=ttyS0,115200n8', 'nosmt'],
             'delete_kargs': ['quiet'], 'console': ['ttyS0,115200n8'],
             'platform': 'openstack', 'copy_network': True,
             'save_partlabel': ['data*'], 'save_partindex': ['5-'],
             'fetch_retries': 3, 'insecure': True,
             'preserve_on_error': False}, args)

    def test_step_args_win(self, mock_post):
        self.config(default_append_kargs=['ip=dhcp'], default_platform='qemu',
                    group='coreos')
        self.set_instance_info(
            image_source='https://images.example.com/a.raw.xz',
            coreos_append_kargs=['nosmt'], coreos_platform='openstack',
            coreos_fetch_retries=3)
        args = self.run_step(
            mock_post, append_kargs=['mitigations=off'], platform='metal',
            image_url='https://mirror.example.com/b.raw.xz',
            image_checksum='sha512:' + SHA512, preserve_on_error=False)
        self.assertEqual(['ip=dhcp', 'mitigations=off'], args['append_kargs'])
        self.assertEqual('metal', args['platform'])
        self.assertEqual(3, args['fetch_retries'])
        self.assertEqual('https://mirror.example.com/b.raw.xz',
                         args['image_url'])
        self.assertEqual('sha512:' + SHA512, args['image_checksum'])
        self.assertFalse(args['preserve_on_error'])

    def test_step_arg_pull_secret(self, mock_post):
        args = self.run_step(
            mock_post, image_url='https://mirror.example.com/b.raw.xz',
            image_pull_secret=SECRET)
        self.assertEqual(SECRET, args['image_pull_secret'])
        self.assertNoSecrets()

    def test_default_kargs_and_platform(self, mock_post):
        self.config(default_append_kargs=['ip=dhcp', 'nosmt'],
                    default_platform='qemu', group='coreos')
        self.set_instance_info(coreos_append_kargs=['nosmt', 'quiet'])
        args = self.run_step(mock_post)
        self.assertEqual(['ip=dhcp', 'nosmt', 'quiet'], args['append_kargs'])
        self.assertEqual('qemu', args['platform'])

    def test_preserve_on_error_follows_automated_clean(
            self, mock_post):
        self.node.automated_clean = False
        self.node.save()
        args = self.run_step(mock_post)
        self.assertFalse(args['preserve_on_error'])

    def test_preserve_on_error_follows_conductor_option(
            self, mock_post):
        self.config(automated_clean=False, group='conductor')
        args = self.run_step(mock_post)
        self.assertFalse(args['preserve_on_error'])

    @mock.patch.object(configdrive_utils, 'generate_config_metadata',
                       autospec=True)
    def test_network_data_generated_from_ports(self, mock_generate,
                                               mock_post):
        mock_generate.return_value = copy.deepcopy(NETWORK_DATA)
        self.node.network_interface = 'flat'
        self.node.save()
        obj_utils.create_test_port(
            self.context, node_id=self.node.id,
            internal_info={'tenant_vif_port_id': 'vif-1'})
        self.set_instance_info(ignition=USER_CONFIG)
        args = self.run_step(mock_post)
        self.assertMerged(args['ignition'], hostname=False, keys=False)
        mock_generate.assert_called_once_with(mock.ANY)

    @mock.patch.object(configdrive_utils, 'generate_config_metadata',
                       autospec=True)
    def test_network_data_not_generated_without_vifs(
            self, mock_generate, mock_post):
        self.node.network_interface = 'flat'
        self.node.save()
        self.set_instance_info(ignition=USER_CONFIG)
        args = self.run_step(mock_post)
        self.assertMerged(args['ignition'], hostname=False, keys=False,
                          network=False)
        self.assertFalse(mock_generate.called)

    @mock.patch.object(configdrive_utils, 'generate_config_metadata',
                       autospec=True)
    def test_network_data_generation_failure(self, mock_generate,
                                             mock_post):
        mock_generate.side_effect = exception.ConfigDriveRegenerationFailure()
        self.node.network_interface = 'flat'
        self.node.save()
        obj_utils.create_test_port(
            self.context, node_id=self.node.id,
            internal_info={'tenant_vif_port_id': 'vif-1'})
        args = self.run_step(mock_post)
        self.assertMerged(args['ignition'], hostname=False, keys=False,
                          network=False)
        self.assertIn('could not generate network data', self.logger.output)

    def test_invalid_step_arg(self, mock_post):
        with task_manager.acquire(self.context, self.node.uuid) as task:
            exc = self.assertRaises(
                exception.InstanceDeployFailure, self.deploy.install_coreos,
                task, append_kargs='console=ttyS0')
        self.assertIn('deploy step install_coreos argument "append_kargs"',
                      str(exc))
        self.assertIn('a list of strings', str(exc))
        self.assertFalse(mock_post.called)

    def test_unknown_step_arg(self, mock_post):
        with task_manager.acquire(self.context, self.node.uuid) as task:
            exc = self.assertRaises(
                exception.InstanceDeployFailure, self.deploy.install_coreos,
                task, consoles=['ttyS0'])
        self.assertIn('argument "consoles": unknown argument; did you mean '
                      '"console"?', str(exc))
        self.assertFalse(mock_post.called)

    def test_invalid_pull_secret_hidden(self, mock_post):
        with task_manager.acquire(self.context, self.node.uuid) as task:
            exc = self.assertRaises(
                exception.InstanceDeployFailure, self.deploy.install_coreos,
                task, image_pull_secret=SECRET)
        self.assertIn('image_pull_secret', str(exc))
        self.assertIn('only together with an image_url', str(exc))
        self.assertNoSecrets(exc)


@mock.patch.object(requests.Session, 'post', autospec=True)
class ConductorStepSecretsTestCase(CoreOSTestBase):
    """Ironic's own deploy stepping with secrets, real logging at DEBUG.

    Ironic logs the remaining deploy steps with their arguments at INFO
    and saves the current step; only the HTTP request to the agent is
    replaced.
    """

    def setUp(self):
        super().setUp()
        self.node.provision_state = states.DEPLOYING
        self.node.target_provision_state = states.ACTIVE
        self.node.save()

    def run_steps(self, mock_post, args, **info):
        mock_post.return_value = agent_answer()
        self.set_instance_info(**info)
        self.node.driver_internal_info = {
            'agent_url': AGENT_URL,
            'deploy_steps': [{'interface': 'deploy', 'step': 'install_coreos',
                              'priority': 80, 'args': args},
                             {'interface': 'deploy', 'step': 'boot_instance',
                              'priority': 20, 'args': {}}]}
        self.node.save()
        with task_manager.acquire(self.context, self.node.uuid) as task:
            deployments.do_next_deploy_step(task, 0)
        self.node.refresh()
        self.assertEqual(states.DEPLOYWAIT, self.node.provision_state,
                         self.node.last_error)
        body = json.loads(mock_post.call_args.kwargs['data'])
        return body['params']['step']['args']

    def test_step_arguments_never_logged(self, mock_post):
        sent = self.run_steps(
            mock_post, {'ignition': USER_CONFIG,
                        'image_url': 'https://mirror.example.com/b.raw.xz',
                        'image_pull_secret': SECRET})
        # They reached the agent, and Ironic logged the step it ran...
        self.assertEqual(SECRET, sent['image_pull_secret'])
        self.assertIn(MARKER, json.dumps(sent['ignition']))
        self.assertIn('remaining steps', self.logger.output)
        # ... without them.
        self.assertNoSecrets()
        self.assertIn("'image_pull_secret': '<hidden>'", self.logger.output)

    def test_assembled_arguments_not_stored(self, mock_post):
        sent = self.run_steps(
            mock_post, {}, ignition=USER_CONFIG,
            image_source='https://images.example.com/fcos-metal.raw.xz',
            image_pull_secret=SECRET)
        self.assertEqual(SECRET, sent['image_pull_secret'])
        self.assertEqual(
            {'interface': 'deploy', 'step': 'install_coreos',
             'priority': 80, 'args': {}}, self.node.deploy_step)
        self.assertNotIn(SECRET, json.dumps(self.node.driver_internal_info))
        self.assertNotIn(MARKER, json.dumps(self.node.driver_internal_info))
        self.assertNoSecrets()


class ValidateTestCase(CoreOSTestBase):

    def assertInvalid(self, *expected, **info):
        self.set_instance_info(**info)
        with task_manager.acquire(self.context, self.node.uuid) as task:
            exc = self.assertRaises(exception.InvalidParameterValue,
                                    self.deploy.validate, task)
        for text in expected:
            self.assertIn(text, str(exc))
        self.assertNoSecrets(exc)
        return exc

    def test_validate_ok(self):
        self.set_instance_info(
            ignition=USER_CONFIG,
            image_source='https://images.example.com/fcos.raw.xz',
            image_pull_secret=SECRET, coreos_append_kargs=['nosmt'])
        with task_manager.acquire(self.context, self.node.uuid) as task:
            self.deploy.validate(task)
        self.assertNoSecrets()

    def test_validate_empty(self):
        with task_manager.acquire(self.context, self.node.uuid) as task:
            self.assertIsNone(self.deploy.validate(task))

    def test_image_source_not_http(self):
        self.assertInvalid(
            'instance_info/image_source',
            'neither an http(s) URL nor a Glance image',
            'unset image_source',
            image_source='oci://quay.io/fedora/fedora-coreos:stable')

    def test_glance_image_source_accepted(self):
        self.set_instance_info(
            image_source='7d5a8b0e-6c1f-4a0f-9a52-4ae1b3c2d1e0')
        with task_manager.acquire(self.context, self.node.uuid) as task:
            self.assertIsNone(self.deploy.validate(task))

    def test_bad_checksum(self):
        self.assertInvalid(
            'instance_info/image_checksum', 'sha256:<64 hex digits>',
            image_source='https://images.example.com/fcos.raw.xz',
            image_checksum='0123abcd' * 4)

    def test_bad_instance_info_option(self):
        self.assertInvalid(
            'instance_info/coreos_append_kargs', 'a list of strings',
            coreos_append_kargs='console=ttyS0')

    def test_bad_fetch_retries(self):
        self.assertInvalid(
            'instance_info/coreos_fetch_retries', '"infinite"',
            coreos_fetch_retries=-1)

    def test_unknown_instance_info_option(self):
        self.assertInvalid(
            'instance_info/coreos_apend_kargs',
            'did you mean "coreos_append_kargs"',
            coreos_apend_kargs=['nosmt'])

    def test_cloud_config_in_instance_info(self):
        self.assertInvalid('instance_info/ignition', 'cloud-config',
                           ignition='#cloud-config\nusers: []\n')

    def test_ignition_too_new(self):
        self.config(max_ignition_version='3.3.0', group='coreos')
        self.assertInvalid('instance_info/ignition', '$.ignition.version',
                           '[coreos]max_ignition_version is 3.3.0',
                           ignition=USER_CONFIG)

    def test_ignition_warnings_fail_when_asked(self):
        config = copy.deepcopy(USER_CONFIG)
        config['storage']['files'][0]['mode'] = 644
        self.set_instance_info(ignition=config)
        with task_manager.acquire(self.context, self.node.uuid) as task:
            self.deploy.validate(task)
        self.config(fail_on_ignition_warnings=True, group='coreos')
        self.assertInvalid('instance_info/ignition',
                           '$.storage.files[0].mode', ignition=config)

    def test_bad_root_device_hints(self):
        self.assertInvalid('root device hints',
                           root_device={'size': 'big'})

    def test_deploy_template_args(self):
        template = objects.DeployTemplate(
            self.context, uuid=uuidutils.generate_uuid(),
            name='CUSTOM_COREOS_BAD',
            steps=[{'interface': 'deploy', 'step': 'install_coreos',
                    'args': {'console': 'ttyS0'}, 'priority': 80}])
        template.create()
        self.assertInvalid('deploy step install_coreos argument "console"',
                           traits=['CUSTOM_COREOS_BAD'])

    def test_deploy_template_disabling_step(self):
        template = objects.DeployTemplate(
            self.context, uuid=uuidutils.generate_uuid(),
            name='CUSTOM_NO_INSTALL',
            steps=[{'interface': 'deploy', 'step': 'install_coreos',
                    'args': {}, 'priority': 0}])
        template.create()
        self.set_instance_info(traits=['CUSTOM_NO_INSTALL'],
                               coreos_console='bad')
        with task_manager.acquire(self.context, self.node.uuid) as task:
            self.assertIsNone(self.deploy.validate(task))

    def test_supports_deploy(self):
        cases = [
            ({}, False),
            ({'image_source': 'https://example.com/disk.qcow2'}, False),
            ({'image_source': 'https://example.com/fedora-coreos-41.'
                              '20250101.3.0-metal.x86_64.raw.xz'}, True),
            ({'ignition': USER_CONFIG}, True),
            ({'coreos_append_kargs': ['nosmt']}, True),
            ({'configdrive': json_configdrive()}, True),
            ({'configdrive': json_configdrive(
                user_data=json.dumps(USER_CONFIG))}, True),
            ({'configdrive': json_configdrive(
                user_data='#cloud-config\n')}, False),
        ]
        for info, expected in cases:
            self.set_instance_info(**info)
            with task_manager.acquire(self.context, self.node.uuid) as task:
                self.assertIs(expected, self.deploy.supports_deploy(task),
                              info)


@mock.patch.object(deploy_utils, 'prepare_agent_boot', autospec=True)
@mock.patch.object(manager_utils, 'node_power_action', autospec=True)
class PrepareTestCase(CoreOSTestBase):

    def setUp(self):
        super().setUp()
        self.node.provision_state = states.DEPLOYING
        self.node.target_provision_state = states.ACTIVE
        self.node.save()

    def assertPrepareFails(self, mock_power, mock_boot, *expected):
        with task_manager.acquire(self.context, self.node.uuid) as task:
            exc = self.assertRaises(exception.InstanceDeployFailure,
                                    self.deploy.prepare, task)
        for text in expected:
            self.assertIn(text, str(exc))
        self.assertFalse(mock_power.called)
        self.assertFalse(mock_boot.called)
        self.assertNoSecrets(exc)
        return exc

    def test_prepare_ok(self, mock_power, mock_boot):
        self.set_instance_info(configdrive=iso_configdrive(),
                               image_pull_secret=SECRET,
                               image_source='https://example.com/a.raw.xz')
        with task_manager.acquire(self.context, self.node.uuid) as task:
            self.deploy.prepare(task)
        mock_power.assert_called_once_with(mock.ANY, states.POWER_OFF)
        mock_boot.assert_called_once_with(mock.ANY)
        self.assertNoSecrets()
        self.node.refresh()
        self.assertEqual(
            coreos._input_fingerprint(self.node, {}),
            self.node.driver_internal_info[coreos.CHECKED_KEY])

    def test_prepare_without_input_checks_again_later(self, mock_power,
                                                      mock_boot):
        # The Ignition config may still come with --deploy-steps.
        with task_manager.acquire(self.context, self.node.uuid) as task:
            self.deploy.prepare(task)
        self.node.refresh()
        self.assertNotIn(coreos.CHECKED_KEY, self.node.driver_internal_info)

    def test_clean_up_forgets_checked_input(self, mock_power, mock_boot):
        self.set_instance_info(ignition=USER_CONFIG)
        with task_manager.acquire(self.context, self.node.uuid) as task:
            self.deploy.prepare(task)
            self.assertIn(coreos.CHECKED_KEY,
                          task.node.driver_internal_info)
            with mock.patch.object(agent.CustomAgentDeploy, 'clean_up',
                                   autospec=True):
                self.deploy.clean_up(task)
        self.node.refresh()
        self.assertNotIn(coreos.CHECKED_KEY, self.node.driver_internal_info)

    def test_invalid_ignition_in_configdrive(self, mock_power, mock_boot):
        config = copy.deepcopy(USER_CONFIG)
        config['ignition']['version'] = '2.2.0'
        self.set_instance_info(configdrive=iso_configdrive(user_data=config))
        self.assertPrepareFails(mock_power, mock_boot,
                                'config drive user_data',
                                '$.ignition.version')

    def test_cloud_config_in_configdrive(self, mock_power, mock_boot):
        self.set_instance_info(configdrive=json_configdrive(
            user_data='#cloud-config\npackages: [vim]\n'))
        self.assertPrepareFails(mock_power, mock_boot,
                                'config drive user_data', 'cloud-config')

    def test_unreadable_configdrive(self, mock_power, mock_boot):
        self.set_instance_info(configdrive='bm90IGFuIGlzbw==')
        self.assertPrepareFails(mock_power, mock_boot,
                                'instance_info/configdrive')

    def test_bad_network_data(self, mock_power, mock_boot):
        network_data = copy.deepcopy(NETWORK_DATA)
        network_data['networks'][0]['link'] = 'missing'
        self.set_instance_info(configdrive=json_configdrive(
            network_data=network_data))
        self.assertPrepareFails(mock_power, mock_boot,
                                'config drive network_data',
                                'convert_network_data')

    def test_merge_conflict(self, mock_power, mock_boot):
        config = {'ignition': {'version': '3.4.0'},
                  'storage': {'directories': [{'path': '/etc/hostname'}]}}
        self.set_instance_info(configdrive=json_configdrive(user_data=config))
        self.assertPrepareFails(mock_power, mock_boot,
                                'config drive user_data',
                                '$.storage.directories[0]', '/etc/hostname')

    def test_bad_ssh_key(self, mock_power, mock_boot):
        meta = dict(META_DATA, public_keys=['not a key'])
        self.set_instance_info(configdrive=json_configdrive(meta_data=meta))
        self.assertPrepareFails(mock_power, mock_boot, 'meta_data',
                                'ssh_keys[0]')

    def test_one_check_per_call(self, mock_power, mock_boot):
        self.set_instance_info(configdrive=json_configdrive(
            user_data=json.dumps(USER_CONFIG, indent=1)))
        with mock.patch.object(ignition, 'validate', autospec=True,
                               side_effect=ignition.validate) as mock_check:
            with task_manager.acquire(self.context,
                                      self.node.uuid) as task:
                self.deploy.prepare(task)
        # Only the merged config (a dict) is checked.
        self.assertEqual(1, mock_check.call_count)
        self.assertIsInstance(mock_check.call_args[0][0], dict)
        self.assertEqual(
            ['/etc/hostname'],
            [f['path'] for f in mock_check.call_args[0][0]['storage'][
                'files'] if f['path'] == '/etc/hostname'])

    def test_same_config_checked_once_per_deployment(self, mock_power,
                                                     mock_boot):
        self.set_instance_info(configdrive=json_configdrive(
            user_data=json.dumps(USER_CONFIG, indent=1)))
        with mock.patch.object(ignition, 'validate', autospec=True,
                               side_effect=ignition.validate) as mock_check:
            with task_manager.acquire(self.context,
                                      self.node.uuid) as task:
                self.deploy.prepare(task)
                args, report = self.deploy._build_args(task, {})
        # The second assembly (deploy, install_coreos) of the same input
        # reuses the verdict and gives the same arguments.
        self.assertEqual(1, mock_check.call_count)
        self.assertEqual([], report.errors)
        self.assertIn('/etc/hostname',
                      [f['path'] for f in args['ignition']['storage'][
                          'files']])

    def test_bad_config_checked_every_time(self, mock_power, mock_boot):
        config = copy.deepcopy(USER_CONFIG)
        config['storage']['files'][0]['mode'] = 'rw'
        self.set_instance_info(configdrive=json_configdrive(
            user_data=json.dumps(config, indent=1)))
        with mock.patch.object(ignition, 'validate', autospec=True,
                               side_effect=ignition.validate) as mock_check:
            for _attempt in range(2):
                self.assertPrepareFails(mock_power, mock_boot,
                                        'config drive user_data',
                                        '$.storage.files[0].mode')
        # The merged config and the user's text, each time.
        self.assertEqual(4, mock_check.call_count)

    def test_user_config_problems_first_with_line(self, mock_power,
                                                  mock_boot):
        config = copy.deepcopy(USER_CONFIG)
        config['storag'] = {}
        network_data = copy.deepcopy(NETWORK_DATA)
        network_data['networks'][0]['link'] = 'missing'
        self.set_instance_info(configdrive=json_configdrive(
            user_data=json.dumps(config, indent=1),
            network_data=network_data))
        exc = self.assertPrepareFails(mock_power, mock_boot,
                                      'config drive user_data', '$.storag')
        self.assertNotIn('network_data', str(exc))

    def test_syntax_error_with_line(self, mock_power, mock_boot):
        self.set_instance_info(configdrive=json_configdrive(
            user_data='{"ignition": {"version": "3.2.0"},\n}'))
        self.assertPrepareFails(mock_power, mock_boot,
                                'config drive user_data',
                                'trailing comma', 'line 2, column 1')

    def test_unexpected_error_is_a_deploy_failure(self, mock_power,
                                                  mock_boot):
        self.set_instance_info(configdrive=json_configdrive())
        with mock.patch.object(merge, 'merge', autospec=True,
                               side_effect=ValueError(SECRET)):
            with mock.patch.object(coreos.LOG, 'error',
                                   autospec=True) as mock_log:
                exc = self.assertPrepareFails(
                    mock_power, mock_boot, 'prepare could not check',
                    'internal error ValueError', 'deploy again')
        self.assertNotIn(SECRET, str(exc))
        self.assertNotIn(SECRET, str(mock_log.call_args))
        self.assertIn('coreos.py', mock_log.call_args[0][1]['tb'])

    def test_not_deploying(self, mock_power, mock_boot):
        self.node.provision_state = states.ACTIVE
        self.node.save()
        self.set_instance_info(configdrive='garbage')
        with task_manager.acquire(self.context, self.node.uuid) as task:
            self.deploy.prepare(task)
        self.assertFalse(mock_power.called)


@mock.patch.object(manager_utils, 'node_power_action', autospec=True)
class DeployStepTestCase(CoreOSTestBase):

    def setUp(self):
        super().setUp()
        self.node.provision_state = states.DEPLOYING
        self.node.target_provision_state = states.ACTIVE
        self.node.save()

    def set_steps(self, args):
        self.set_instance_info(ignition=USER_CONFIG)
        info = self.node.driver_internal_info
        info['deploy_steps'] = [
            {'interface': 'deploy', 'step': 'deploy', 'priority': 100,
             'args': {}},
            {'interface': 'deploy', 'step': 'install_coreos',
             'priority': 80, 'args': args}]
        self.node.driver_internal_info = info
        self.node.save()

    def test_deploy_checks_requested_args(self, mock_power):
        self.set_steps({'fetch_retries': 'often'})
        with task_manager.acquire(self.context, self.node.uuid) as task:
            exc = self.assertRaises(exception.InstanceDeployFailure,
                                    self.deploy.deploy, task)
        self.assertIn('deploy step install_coreos argument "fetch_retries"',
                      str(exc))
        self.assertFalse(mock_power.called)

    def test_deploy_boots_ramdisk(self, mock_power):
        self.set_steps({'fetch_retries': 2})
        with task_manager.acquire(self.context, self.node.uuid) as task:
            self.assertEqual(states.DEPLOYWAIT, self.deploy.deploy(task))
        mock_power.assert_called_once_with(mock.ANY, states.REBOOT)

    @mock.patch.object(coreos.CoreOSDeploy, '_build_args', autospec=True)
    def test_deploy_skips_input_prepare_checked(self, mock_build,
                                                mock_power):
        self.set_steps({'fetch_retries': 2})
        with task_manager.acquire(self.context, self.node.uuid) as task:
            coreos._remember_checked(task.node, {'fetch_retries': 2})
            self.assertEqual(states.DEPLOYWAIT, self.deploy.deploy(task))
        self.assertFalse(mock_build.called)

    def test_deploy_checks_input_changed_since_prepare(self, mock_power):
        self.set_steps({'fetch_retries': 'often'})
        with task_manager.acquire(self.context, self.node.uuid) as task:
            # prepare saw no arguments: --deploy-steps added the bad one.
            coreos._remember_checked(task.node, {})
            exc = self.assertRaises(exception.InstanceDeployFailure,
                                    self.deploy.deploy, task)
        self.assertIn('argument "fetch_retries"', str(exc))
        self.assertFalse(mock_power.called)

    def test_deploy_checks_when_instance_info_changed(self, mock_power):
        self.set_steps({})
        with task_manager.acquire(self.context, self.node.uuid) as task:
            coreos._remember_checked(task.node, {})
            task.node.set_instance_info('coreos_fetch_retries', 'often')
            exc = self.assertRaises(exception.InstanceDeployFailure,
                                    self.deploy.deploy, task)
        self.assertIn('coreos_fetch_retries', str(exc))

    def test_fingerprint_not_kept_for_deep_input(self, mock_power):
        deep = {}
        for _i in range(100):
            deep = {'x': deep}
        self.assertIsNone(coreos._input_fingerprint(self.node,
                                                    {'extra': deep}))
        self.assertIsNotNone(coreos._input_fingerprint(self.node, {}))


def _commands(status='RUNNING', result=None):
    return [{'command_name': 'get_deploy_steps', 'command_status': 'SUCCEEDED',
             'command_result': {}, 'command_error': None},
            {'command_name': 'execute_deploy_step', 'command_status': status,
             'command_result': result, 'command_error': None}]


PROGRESS = {'phase': 'writing', 'percent': 48, 'bytes_read': 1200,
            'bytes_total': 2500, 'bytes_per_second': 100, 'attempt': 1}
T0 = datetime.datetime(2026, 12, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)


@mock.patch.object(coreos, '_utcnow', autospec=True)
@mock.patch.object(deploy_utils, 'set_failed_state', autospec=True)
@mock.patch.object(agent_base.AgentBaseMixin, 'process_next_step',
                   autospec=True)
@mock.patch.object(agent_client.AgentClient, 'get_commands_status',
                   autospec=True)
class InstallProgressTestCase(CoreOSTestBase):

    def setUp(self):
        super().setUp()
        self.node.provision_state = states.DEPLOYWAIT
        self.node.target_provision_state = states.ACTIVE
        self.node.deploy_step = {'interface': 'deploy',
                                 'step': 'install_coreos', 'priority': 80,
                                 'args': {}}
        self.node.save()

    def step(self, mock_now, now):
        mock_now.return_value = now
        with task_manager.acquire(self.context, self.node.uuid) as task:
            self.deploy.process_next_step(task, 'deploy')
        self.node.refresh()
        return self.node.driver_internal_info.get('coreos_install')

    def test_progress_stored(self, mock_status, mock_next, mock_failed,
                             mock_now):
        mock_status.return_value = _commands(
            result={'coreos_install': PROGRESS})
        stored = self.step(mock_now, T0)
        self.assertEqual(dict(PROGRESS, updated_at=T0.isoformat()), stored)
        self.assertEqual(1, mock_next.call_count)
        mock_failed.assert_not_called()

    def test_updated_at_moves_with_progress_only(
            self, mock_status, mock_next, mock_failed, mock_now):
        mock_status.return_value = _commands(
            result={'coreos_install': PROGRESS})
        self.step(mock_now, T0)
        later = T0 + datetime.timedelta(seconds=30)
        stored = self.step(mock_now, later)
        self.assertEqual(T0.isoformat(), stored['updated_at'])
        mock_status.return_value = _commands(result={'coreos_install': dict(
            PROGRESS, bytes_read=1300, percent=52)})
        stored = self.step(mock_now, later)
        self.assertEqual(later.isoformat(), stored['updated_at'])
        self.assertEqual(52, stored['percent'])

    def test_removed_when_the_step_ends(self, mock_status, mock_next,
                                        mock_failed, mock_now):
        mock_status.return_value = _commands(
            result={'coreos_install': PROGRESS})
        self.step(mock_now, T0)
        for status in ('SUCCEEDED', 'FAILED'):
            mock_status.return_value = _commands(
                status=status, result={'deploy_result': None})
            self.assertIsNone(self.step(mock_now, T0))
        self.assertEqual(3, mock_next.call_count)

    def test_agent_without_progress(self, mock_status, mock_next,
                                    mock_failed, mock_now):
        for result in (None, {}, {'coreos_install': 'nonsense'},
                       {'coreos_install': {'phase': 'hacking'}}):
            mock_status.return_value = _commands(result=result)
            self.assertIsNone(self.step(mock_now, T0))
        self.assertEqual(4, mock_next.call_count)

    def test_unknown_fields_not_stored(self, mock_status, mock_next,
                                       mock_failed, mock_now):
        mock_status.return_value = _commands(result={'coreos_install': dict(
            PROGRESS, url='https://user:%s@example.com' % SECRET)})
        stored = self.step(mock_now, T0)
        self.assertNotIn('url', stored)
        self.assertNotIn(SECRET, json.dumps(stored))

    def test_other_step_not_asked(self, mock_status, mock_next, mock_failed,
                                  mock_now):
        self.node.deploy_step = {'interface': 'deploy', 'step': 'deploy',
                                 'priority': 100, 'args': {}}
        self.node.set_driver_internal_info('coreos_install', PROGRESS)
        self.node.save()
        self.assertIsNone(self.step(mock_now, T0))
        mock_status.assert_not_called()
        self.assertEqual(1, mock_next.call_count)

    def test_agent_unreachable(self, mock_status, mock_next, mock_failed,
                               mock_now):
        mock_status.side_effect = exception.AgentConnectionFailed(
            reason='connection refused')
        self.assertIsNone(self.step(mock_now, T0))
        self.assertEqual(1, mock_next.call_count)

    def test_stall_fails_the_deployment(self, mock_status, mock_next,
                                        mock_failed, mock_now):
        self.config(install_stall_timeout=300, group='coreos')
        mock_status.return_value = _commands(
            result={'coreos_install': PROGRESS})
        self.step(mock_now, T0)
        self.step(mock_now, T0 + datetime.timedelta(seconds=300))
        mock_failed.assert_not_called()
        self.assertIsNone(
            self.step(mock_now, T0 + datetime.timedelta(seconds=301)))
        mock_failed.assert_called_once_with(mock.ANY, mock.ANY,
                                            collect_logs=True)
        message = mock_failed.call_args.args[1]
        self.assertIn('no progress for 301 seconds', message)
        self.assertIn('[coreos]install_stall_timeout = 300', message)
        self.assertIn('stopped while writing, 48%', message)
        # The agent's state is not processed once the deployment failed.
        self.assertEqual(2, mock_next.call_count)

    def test_no_stall_check_by_default(self, mock_status, mock_next,
                                       mock_failed, mock_now):
        mock_status.return_value = _commands(
            result={'coreos_install': PROGRESS})
        self.step(mock_now, T0)
        self.step(mock_now, T0 + datetime.timedelta(days=1))
        mock_failed.assert_not_called()

    def test_done_phase_never_stalls(self, mock_status, mock_next,
                                     mock_failed, mock_now):
        self.config(install_stall_timeout=10, group='coreos')
        mock_status.return_value = _commands(result={'coreos_install': dict(
            PROGRESS, phase='done', percent=100)})
        self.step(mock_now, T0)
        self.step(mock_now, T0 + datetime.timedelta(seconds=60))
        mock_failed.assert_not_called()

    def test_clean_up_forgets(self, mock_status, mock_next, mock_failed,
                              mock_now):
        self.node.set_driver_internal_info('coreos_install', PROGRESS)
        self.node.save()
        with mock.patch.object(coreos.agent.CustomAgentDeploy, 'clean_up',
                               autospec=True) as mock_clean_up:
            with task_manager.acquire(self.context, self.node.uuid) as task:
                self.deploy.clean_up(task)
            mock_clean_up.assert_called_once_with(self.deploy, mock.ANY)
        self.node.refresh()
        self.assertNotIn('coreos_install', self.node.driver_internal_info)


@mgr_utils.mock_record_keepalive
@mock.patch.object(deploy_utils, 'prepare_agent_boot', autospec=True)
@mock.patch.object(manager_utils, 'node_power_action', autospec=True)
class DeployFlowTestCase(mgr_utils.ServiceSetUpMixin, CoreOSTestBase):
    """The conductor's own deploy flow, from the RPC to deploy wait."""

    def setUp(self):
        super().setUp()
        self.node.provision_state = states.AVAILABLE
        self.node.target_provision_state = None
        self.node.save()
        self._start_service()
        self.addCleanup(self._stop_service)

    def deploy_node(self, configdrive=None, deploy_steps=None):
        self.service.do_node_deploy(self.context, self.node.uuid,
                                    configdrive=configdrive,
                                    deploy_steps=deploy_steps)
        self.node.refresh()

    def test_bad_ignition_fails_then_deploy_again(self, mock_power,
                                                  mock_boot):
        config = copy.deepcopy(USER_CONFIG)
        config['ignition']['version'] = '3.9.0'
        self.deploy_node(configdrive=iso_configdrive(user_data=config))
        self.assertEqual(states.DEPLOYFAIL, self.node.provision_state)
        self.assertIn('config drive user_data', self.node.last_error)
        self.assertIn('$.ignition.version', self.node.last_error)
        self.assertFalse(mock_power.called)
        self.assertFalse(mock_boot.called)

        self.deploy_node(configdrive=iso_configdrive())
        self.assertEqual(states.DEPLOYWAIT, self.node.provision_state)
        self.assertIsNone(self.node.last_error)
        self.assertEqual([mock.call(mock.ANY, states.POWER_OFF),
                          mock.call(mock.ANY, states.REBOOT)],
                         mock_power.call_args_list)
        self.assertNoSecrets()

    def test_bad_step_arg_fails_then_deploy_again(self, mock_power,
                                                  mock_boot):
        bad = [{'interface': 'deploy', 'step': 'install_coreos',
                'priority': 80, 'args': {'console': 'ttyS0'}}]
        self.deploy_node(configdrive=json_configdrive(), deploy_steps=bad)
        self.assertEqual(states.DEPLOYFAIL, self.node.provision_state)
        self.assertIn('deploy step install_coreos argument "console"',
                      self.node.last_error)
        self.assertNotIn(mock.call(mock.ANY, states.REBOOT),
                         mock_power.call_args_list)

        good = [{'interface': 'deploy', 'step': 'install_coreos',
                 'priority': 80, 'args': {'console': ['ttyS0']}}]
        self.deploy_node(configdrive=json_configdrive(), deploy_steps=good)
        self.assertEqual(states.DEPLOYWAIT, self.node.provision_state)
        self.assertIn(mock.call(mock.ANY, states.REBOOT),
                      mock_power.call_args_list)

    def test_requested_step_secrets_never_logged(self, mock_power,
                                                 mock_boot):
        steps = [{'interface': 'deploy', 'step': 'install_coreos',
                  'priority': 80,
                  'args': {'ignition': USER_CONFIG,
                           'image_url': 'https://mirror.example.com/a.raw.xz',
                           'image_pull_secret': SECRET}}]
        self.deploy_node(configdrive=json_configdrive(), deploy_steps=steps)
        self.assertEqual(states.DEPLOYWAIT, self.node.provision_state,
                         self.node.last_error)
        # Ironic listed the steps (DEBUG) and started them (INFO).
        self.assertIn('List of the deploy steps', self.logger.output)
        self.assertIn('remaining steps', self.logger.output)
        self.assertNoSecrets()
        self.assertIn("'ignition': '<hidden>'", self.logger.output)

    def test_ignition_only_as_step_argument(self, mock_power, mock_boot):
        steps = [{'interface': 'deploy', 'step': 'install_coreos',
                  'priority': 80, 'args': {'ignition': USER_CONFIG}}]
        self.deploy_node(deploy_steps=steps)
        self.assertEqual(states.DEPLOYWAIT, self.node.provision_state,
                         self.node.last_error)
        self.assertIn(mock.call(mock.ANY, states.REBOOT),
                      mock_power.call_args_list)

    def test_no_ignition_anywhere_fails_before_boot(self, mock_power,
                                                    mock_boot):
        steps = [{'interface': 'deploy', 'step': 'install_coreos',
                  'priority': 80, 'args': {'platform': 'metal'}}]
        self.deploy_node(deploy_steps=steps)
        self.assertEqual(states.DEPLOYFAIL, self.node.provision_state)
        self.assertIn('Ignition config: none given', self.node.last_error)
        # The ramdisk was never booted.
        self.assertNotIn(mock.call(mock.ANY, states.REBOOT),
                         mock_power.call_args_list)

    def test_deploy_template_secrets_never_logged(self, mock_power,
                                                  mock_boot):
        objects.DeployTemplate(
            self.context, uuid=uuidutils.generate_uuid(),
            name='CUSTOM_COREOS_SECRET',
            steps=[{'interface': 'deploy', 'step': 'install_coreos',
                    'priority': 80,
                    'args': {'ignition': USER_CONFIG,
                             'image_url': 'https://mirror.example.com/a.xz',
                             'image_pull_secret': SECRET}}]).create()
        objects.TraitList.create(self.context, self.node.id,
                                 ['CUSTOM_COREOS_SECRET'])
        self.set_instance_info(traits=['CUSTOM_COREOS_SECRET'])
        self.deploy_node(configdrive=json_configdrive())
        self.assertEqual(states.DEPLOYWAIT, self.node.provision_state,
                         self.node.last_error)
        self.assertIn('remaining steps', self.logger.output)
        self.assertNoSecrets()
        self.assertIn("'image_pull_secret': '<hidden>'", self.logger.output)

    def test_unknown_step_arg_rejected(self, mock_power, mock_boot):
        bad = [{'interface': 'deploy', 'step': 'install_coreos',
                'priority': 80, 'args': {'consoles': ['ttyS0']}}]
        exc = self.assertRaises(messaging.rpc.ExpectedException,
                                self.service.do_node_deploy, self.context,
                                self.node.uuid, deploy_steps=bad)
        self.assertIs(exception.InstanceDeployFailure, exc.exc_info[0])
        self.assertIn('unexpected arguments: consoles', str(exc.exc_info[1]))
        self.node.refresh()
        self.assertEqual(states.AVAILABLE, self.node.provision_state)
        self.assertFalse(mock_power.called)

    def test_bad_instance_info_rejected(self, mock_power, mock_boot):
        self.set_instance_info(coreos_console='ttyS0')
        exc = self.assertRaises(messaging.rpc.ExpectedException,
                                self.service.do_node_deploy, self.context,
                                self.node.uuid)
        self.assertIs(exception.InstanceDeployFailure, exc.exc_info[0])
        self.assertIn('instance_info/coreos_console: Invalid value',
                      str(exc.exc_info[1]))
        self.node.refresh()
        self.assertEqual(states.AVAILABLE, self.node.provision_state)
        self.assertFalse(mock_power.called)


class FakeDeployUntouchedTestCase(CoreOSTestBase):

    def test_fake_interface_still_works(self):
        self.node.deploy_interface = 'fake'
        self.node.save()
        with task_manager.acquire(self.context, self.node.uuid) as task:
            self.assertIsInstance(task.driver.deploy, fake.FakeDeploy)


class SecretLogFilterTestCase(CoreOSTestBase):
    """Ironic's own agent logs do not show what install_coreos was given."""

    def step(self):
        return {'interface': 'deploy', 'step': 'install_coreos',
                'args': {'ignition': copy.deepcopy(USER_CONFIG),
                         'image_pull_secret': SECRET,
                         'platform': 'metal'}}

    def test_command_status_log(self):
        client = agent_client.AgentClient()
        response = mock.Mock(spec=requests.Response)
        response.json.return_value = {'commands': [{
            'command_name': 'execute_deploy_step',
            'command_status': 'SUCCEEDED', 'command_error': None,
            'command_result': {'deploy_result': None,
                               'deploy_step': self.step()}}]}
        client.session = mock.Mock(spec=requests.Session)
        client.session.get.return_value = response
        result = client.get_commands_status(self.node)
        # The caller still gets everything; only the log is redacted.
        self.assertEqual(
            USER_CONFIG,
            result[0]['command_result']['deploy_step']['args']['ignition'])
        self.assertIn('Status of agent commands', self.logger.output)
        self.assertIn("'platform': 'metal'", self.logger.output)
        self.assertIn("'ignition': '<hidden>'", self.logger.output)
        self.assertNoSecrets()

    def test_agent_base_step_log(self):
        logging.getLogger('ironic.drivers.modules.agent_base').debug(
            'Deploy step still running for node %(node)s: %(step)s',
            {'node': self.node.uuid, 'step': self.step()})
        self.assertIn('still running', self.logger.output)
        self.assertIn("'platform': 'metal'", self.logger.output)
        self.assertNoSecrets()

    def test_redact_text(self):
        text = repr({'args': {'ignition': {'a': "x}'y", 'b': [1, {'c': '"'}]},
                              'console': ['ttyS0']}})
        self.assertEqual(
            "{'args': {'ignition': '<hidden>', 'console': ['ttyS0']}}",
            redact.redact_text(text))
        self.assertEqual('{"ignition": \'<hidden>\', "k": 1}',
                         redact.redact_text(json.dumps(
                             {'ignition': {'x': MARKER}, 'k': 1})))
