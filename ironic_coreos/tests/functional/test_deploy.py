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

"""End to end: the real Ironic and real agents deploy simulated nodes.

One Ironic (API + conductor) per test class; per test, fresh simulated
nodes (namespace, veth, loop-device disk, an agent started when the node
waits for it). The stand-in coreos-installer writes the disk; the real
Ignition binary applies the installed config.ign as a first boot would.
Needs root; skipped otherwise.
"""

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import time

import testtools

from ironic_coreos.tests import firstboot
from ironic_coreos.tests.functional.harness import core
from ironic_coreos.tests.functional.harness import fixtures
from ironic_coreos.tests.functional.harness import launch
from ironic_coreos.tests.functional.standin import disk as standin_disk

KEY = fixtures.ssh_key('user key', 'user@e2e')
META_KEY = fixtures.ssh_key('meta_data key', 'meta@e2e')
KARGS = ['console=ttyS0,115200n8', 'nosmt']
KEYFILE_DIR = '/etc/NetworkManager/system-connections/'


def user_config(marker='hello from e2e'):
    """The user's Ignition config: a file, a directory and an SSH key."""
    return {
        'ignition': {'version': '3.3.0'},
        'passwd': {'users': [{'name': 'core',
                              'sshAuthorizedKeys': [KEY]}]},
        'storage': {
            'files': [{'path': '/etc/motd', 'mode': 420,
                       'contents': {'source': 'data:,%s%%0A'
                                    % marker.replace(' ', '%20')}}],
            'directories': [{'path': '/var/lib/e2e', 'mode': 493}],
        },
    }


def install_step(**args):
    return [{'interface': 'deploy', 'step': 'install_coreos',
             'priority': 80, 'args': args}]


NETWORK_DATA = {
    'links': [{'id': 'port0', 'type': 'phy',
               'ethernet_mac_address': '52:54:00:12:34:56', 'mtu': 1500}],
    'networks': [{'id': 'net0', 'type': 'ipv4', 'link': 'port0',
                  'ip_address': '192.0.2.10', 'netmask': '255.255.255.0',
                  'routes': [{'network': '0.0.0.0', 'netmask': '0.0.0.0',
                              'gateway': '192.0.2.1'}]}],
    'services': [{'type': 'dns', 'address': '192.0.2.53'}],
}


class E2ETestCase(testtools.TestCase):
    """One harness (Ironic + bridge) per class, torn down at class end."""

    harness_args = {}
    harness = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if core.can_run() is None:
            cls.harness = core.Harness(**cls.harness_args).start()

    @classmethod
    def tearDownClass(cls):
        if cls.harness is not None:
            run_id = cls.harness.run_id
            cls.harness.stop()
            cls.harness = None
            left = core.leftovers(run_id)
            if any(left.values()):
                raise AssertionError('the run left things behind: %s' % left)
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        why = core.can_run()
        if why:
            self.skipTest(why)
        self.h = self.harness

    # -- helpers -----------------------------------------------------------

    def node(self, deploy_interface='custom-agent', **kwargs):
        if (deploy_interface == 'coreos'
                and 'coreos' not in self.h.deploy_interfaces):
            self.skipTest('the coreos deploy interface does not load')
        node = self.h.add_node(deploy_interface=deploy_interface, **kwargs)
        self.addCleanup(node.stop_agent)
        return node

    def deploy_and_wait(self, node, timeout=180, **kwargs):
        self.h.deploy(node, **kwargs)
        return self.h.wait(node, timeout=timeout)

    def assertActive(self, data, node):
        self.assertEqual('active', data['provision_state'],
                         'last_error: %s; agent log tail: %s'
                         % (data['last_error'], node.logs()[-3000:]))

    def assertFailed(self, data, *words):
        self.assertEqual('deploy failed', data['provision_state'])
        for word in words:
            self.assertIn(word, data['last_error'])

    def installed(self, node):
        info = standin_disk.inspect_disk(node.disk)
        self.assertIsNotNone(info['ignition'], 'no config.ign installed')
        self.assertEqual(0o600, info['ignition_mode'])
        self.assertEqual(0o700, info['ignition_dir_mode'])
        return info

    def first_boot(self, config_bytes):
        result = firstboot.apply(config_bytes, base_dir=self.h.state_dir)
        self.addCleanup(result.cleanup)
        return result


class CustomAgentTest(E2ETestCase):
    """Ironic's stock custom-agent interface with deploy-step JSON."""

    def _check_deployed(self, node, config, hostname, meta_keys=()):
        info = self.installed(node)
        # The custom-agent path installs the user's config plus the host
        # name and SSH keys of the config drive, merged by the agent.
        installed = json.loads(info['ignition'])
        files = installed['storage'].pop('files')
        self.assertEqual(config['storage']['files'], files[:-1])
        self.assertEqual('/etc/hostname', files[-1]['path'])
        users = installed['passwd']['users']
        self.assertEqual([KEY] + list(meta_keys),
                         users[0].pop('sshAuthorizedKeys'))
        expected = json.loads(json.dumps(config))
        del expected['storage']['files']
        del expected['passwd']['users'][0]['sshAuthorizedKeys']
        self.assertEqual(expected, installed)
        for karg in KARGS:
            self.assertIn(karg, info['kargs'])
        self.assertNotIn('console=ttyS0', info['kargs'])
        self.assertEqual(['install', '--offline'],
                         node.installer_invocations()[-1]['argv'][:2])
        argv = node.installer_invocations()[-1]['argv']
        self.assertEqual(2, argv.count('--append-karg'))
        result = self.first_boot(info['ignition'])
        self.assertEqual(b'hello from e2e\n', result.read('/etc/motd'))
        self.assertEqual(0o644, result.mode('/etc/motd'))
        self.assertTrue(os.path.isdir(result.path('/var/lib/e2e')))
        self.assertIn(KEY, result.authorized_keys('core'))
        self.assertEqual(('%s\n' % hostname).encode(),
                         result.read('/etc/hostname'))
        for key in meta_keys:
            self.assertIn(key, result.authorized_keys('core'))

    def test_json_config_drive(self):
        node = self.node()
        config = user_config()
        data = self.deploy_and_wait(
            node, config_drive={'user_data': json.dumps(config),
                                'meta_data': {'hostname': 'node-a'}},
            deploy_steps=install_step(append_kargs=KARGS))
        self.assertActive(data, node)
        self._check_deployed(node, config, 'node-a')
        # The agent asked for nothing dangerous; the shims saw no power
        # action because Ironic powered off out of band.
        calls = [c['call'] for c in node.calls()]
        self.assertNotIn('shutdown', calls)
        self.assertNotIn('step_refused', calls)

    def test_iso_config_drive(self):
        node = self.node()
        config = user_config()
        drive = fixtures.iso_config_drive(
            user_data=config, meta_data={'hostname': 'node-b',
                                         'public_keys': {'k': META_KEY}})
        data = self.deploy_and_wait(
            node, config_drive=drive,
            deploy_steps=install_step(append_kargs=KARGS))
        self.assertActive(data, node)
        self._check_deployed(node, config, 'node-b', [META_KEY])


class CoreOSInterfaceTest(E2ETestCase):
    """The package's coreos interface: no deploy-step JSON needed."""

    META = {'hostname': 'node-c', 'public_keys': {'k': META_KEY}}

    def _check_merged(self, node, config):
        info = self.installed(node)
        installed = json.loads(info['ignition'])
        files = {f['path']: f for f in installed['storage']['files']}
        keyfiles = [p for p in files if p.startswith(KEYFILE_DIR)]
        self.assertEqual(1, len(keyfiles), sorted(files))
        # The user's config plus only the documented additions: host name,
        # keyfile, meta_data SSH key (after the user's own).
        self.assertEqual({'/etc/motd', '/etc/hostname', keyfiles[0]},
                         set(files))
        self.assertEqual(config['storage']['files'][0], files['/etc/motd'])
        self.assertEqual(config['storage']['directories'],
                         installed['storage']['directories'])
        users = installed['passwd']['users']
        self.assertEqual(['core'], [u['name'] for u in users])
        self.assertEqual([KEY, META_KEY], users[0]['sshAuthorizedKeys'])
        result = self.first_boot(info['ignition'])
        self.assertEqual(b'hello from e2e\n', result.read('/etc/motd'))
        self.assertEqual(b'node-c\n', result.read('/etc/hostname'))
        keys = result.authorized_keys('core')
        self.assertIn(KEY, keys)
        self.assertIn(META_KEY, keys)
        self.assertEqual(0o600, result.mode(keyfiles[0]))
        text = result.read(keyfiles[0]).decode()
        self.assertIn('method=manual', text)
        self.assertIn('address1=192.0.2.10/24', text)
        self.assertIn('gateway=192.0.2.1', text)
        self.assertIn('192.0.2.53', text)
        self.assertIn('52:54:00:12:34:56', text.lower())

    def test_network_data(self):
        node = self.node('coreos')
        config = user_config()
        data = self.deploy_and_wait(
            node, config_drive={'user_data': config, 'meta_data': self.META,
                                'network_data': NETWORK_DATA})
        self.assertActive(data, node)
        self._check_merged(node, config)

    def test_nova_iso_config_drive(self):
        node = self.node('coreos')
        config = user_config()
        drive = fixtures.iso_config_drive(user_data=config,
                                          meta_data=self.META,
                                          network_data=NETWORK_DATA)
        data = self.deploy_and_wait(node, config_drive=drive)
        self.assertActive(data, node)
        self._check_merged(node, config)


class BadInputTest(E2ETestCase):
    """Wrong input: deploy failed naming the problem, the disk untouched.

    A corrected request then deploys the same node.
    """

    BAD_CONFIG = {'ignition': {'version': '3.3.0'},
                  'storage': {'filez': []}}

    def _fix_and_redeploy(self, node, **kwargs):
        data = self.deploy_and_wait(node, **kwargs)
        self.assertActive(data, node)
        self.assertIsNotNone(self.installed(node)['ignition'])

    def _custom(self, node, bad_drive, bad_step, good_drive):
        data = self.deploy_and_wait(node, config_drive=bad_drive,
                                    deploy_steps=bad_step)
        self.assertEqual('deploy failed', data['provision_state'])
        self.assertTrue(node.disk_is_blank(), 'the disk was written')
        self.assertEqual([], node.installer_invocations())
        self._fix_and_redeploy(node, config_drive=good_drive,
                               deploy_steps=install_step())
        return data['last_error']

    def test_custom_agent_invalid_ignition(self):
        node = self.node()
        error = self._custom(node, {'user_data': self.BAD_CONFIG},
                             install_step(),
                             {'user_data': user_config()})
        self.assertIn('filez', error)
        self.assertIn('$.storage', error)

    def test_custom_agent_bad_step_argument(self):
        node = self.node()
        error = self._custom(node, {'user_data': user_config()},
                             install_step(fetch_retries='sometimes'),
                             {'user_data': user_config()})
        self.assertIn('fetch_retries', error)
        self.assertIn('sometimes', error)

    def test_custom_agent_garbage_config_drive(self):
        node = self.node()
        garbage = base64.b64encode(b'this is not an ISO image' * 20).decode()
        error = self._custom(node, garbage, install_step(),
                             {'user_data': user_config()})
        self.assertIn('onfig drive', error)

    def _coreos(self, node, **bad):
        data = self.deploy_and_wait(node, **bad)
        self.assertEqual('deploy failed', data['provision_state'])
        # Refused on the conductor: no agent, nothing written. (How fast:
        # tools/benchmark.py measures it.)
        self.assertEqual(0, node.agent_starts)
        self.assertTrue(node.disk_is_blank())
        self._fix_and_redeploy(node, config_drive={
            'user_data': user_config()})
        return data['last_error']

    def test_coreos_invalid_ignition(self):
        node = self.node('coreos')
        error = self._coreos(node, config_drive={
            'user_data': self.BAD_CONFIG})
        self.assertIn('filez', error)
        self.assertIn('$.storage', error)

    def test_coreos_bad_step_argument(self):
        node = self.node('coreos')
        error = self._coreos(
            node, config_drive={'user_data': user_config()},
            deploy_steps=install_step(append_kargs='nosmt'))
        self.assertIn('append_kargs', error)

    def test_coreos_garbage_config_drive(self):
        node = self.node('coreos')
        garbage = base64.b64encode(b'this is not an ISO image' * 20).decode()
        error = self._coreos(node, config_drive=garbage)
        self.assertIn('onfig drive', error)

    def test_coreos_cloud_config(self):
        node = self.node('coreos')
        error = self._coreos(node, config_drive={
            'user_data': '#cloud-config\nusers: [core]\n'})
        self.assertIn('cloud-config', error)


class FaultTest(E2ETestCase):
    """Installer failures, a dying agent and a restarting Ironic."""

    harness_args = {'callback_timeout': 45}

    def test_transient_failure_is_retried(self):
        node = self.node()
        node.set_faults({'transient': 1})
        data = self.deploy_and_wait(node, config_drive={
            'user_data': user_config()}, deploy_steps=install_step())
        self.assertActive(data, node)
        self.assertEqual(2, len(node.installer_invocations()))
        self.assertIsNotNone(self.installed(node)['ignition'])

    def test_permanent_failure_then_redeploy(self):
        node = self.node()
        node.set_faults({'permanent': 'writing to disk: Input/output error'})
        failed = self.deploy_and_wait(node, config_drive={
            'user_data': user_config()}, deploy_steps=install_step())
        self.assertFailed(failed, 'coreos-installer')
        # Not retried: a write error is not a network failure.
        self.assertEqual(1, len(node.installer_invocations()))
        node.set_faults(None)
        data = self.deploy_and_wait(node, config_drive={
            'user_data': user_config()}, deploy_steps=install_step())
        self.assertActive(data, node)
        # The installer's own error line reaches last_error.
        self.assertFailed(failed, 'writing to disk: Input/output error')

    def _wait_for_install(self, node, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if node.installer_invocations():
                return
            time.sleep(0.2)
        self.fail('the installer never ran: %s' % node.logs()[-2000:])

    def test_agent_dies_mid_install(self):
        node = self.node()
        node.set_faults({'hang': 600})
        self.h.deploy(node, config_drive={'user_data': user_config()},
                      deploy_steps=install_step())
        self._wait_for_install(node)
        node.auto_agent = False
        node.kill_agent()
        data = self.h.wait(node, timeout=self.h.callback_timeout + 60)
        self.assertFailed(data, 'Timeout reached while waiting for callback')
        node.set_faults(None)
        node.auto_agent = True
        data = self.deploy_and_wait(node, config_drive={
            'user_data': user_config()}, deploy_steps=install_step())
        self.assertActive(data, node)
        self.assertIsNotNone(self.installed(node)['ignition'])

    def test_ironic_restart_while_waiting(self):
        iface = ('coreos' if 'coreos' in self.h.deploy_interfaces
                 else 'custom-agent')
        node = self.node(iface, auto_agent=False)
        steps = install_step() if iface == 'custom-agent' else None
        self.h.deploy(node, config_drive={'user_data': user_config()},
                      deploy_steps=steps)
        self.h.wait_state(node, 'wait call-back', timeout=60)
        self.assertEqual(0, node.agent_starts)
        starts = self.h.ironic.starts
        self.h.ironic.restart()
        self.assertEqual(starts + 1, self.h.ironic.starts)
        node.auto_agent = True
        data = self.h.wait(node, timeout=180)
        self.assertActive(data, node)
        self.assertIsNotNone(self.installed(node)['ignition'])


class SecretTest(E2ETestCase):
    """Ignition contents and pull secrets never reach a log.

    Ironic runs at DEBUG with the ``coreos`` interface enabled, so the
    package's redaction is in the conductor process (installed when the
    interface loads) for every deploy interface, ``custom-agent``
    included; the agent has it through its hardware manager.
    """

    MARKER = 'E2E-SECRET-IGNITION-4f1d2c'
    PULL = 'E2E-SECRET-PULL-9a7b3e'

    def _assert_absent(self, secret):
        forms = {secret, base64.b64encode(secret.encode()).decode().rstrip(
            '='), secret.replace('-', '%2D')}
        for name, text in self.h.all_logs().items():
            for form in forms:
                self.assertNotIn(form, text, 'secret in %s' % name)

    def _image_server(self, name):
        image_dir = os.path.join(self.h.state_dir, 'images-%s' % name)
        os.makedirs(image_dir)
        standin_disk.make_image(os.path.join(image_dir, 'fcos.raw'))
        standin_disk.make_signature(os.path.join(image_dir, 'fcos.raw'))
        return self.h.serve(image_dir)

    def _assert_steps_logged_hidden(self):
        # Ironic did log the steps with their arguments, hidden.
        text = self.h.all_logs()['ironic.log']
        self.assertIn('remaining steps', text)
        self.assertIn('List of the deploy steps', text)
        self.assertIn("'ignition': '<hidden>'", text)
        self.assertIn("'image_pull_secret': '<hidden>'", text)

    def _assert_installed_with_pull_secret(self, node, server):
        info = self.installed(node)
        self.assertIn(self.MARKER.encode(), info['ignition'])
        # The pull secret was really used, towards the image server only.
        self.assertIn('Bearer %s' % self.PULL,
                      [r['authorization'] for r in server.requests])
        return info

    def test_no_secret_in_logs(self):
        node = self.node('coreos')
        server = self._image_server('instance-info')
        config = user_config(marker=self.MARKER)
        data = self.deploy_and_wait(
            node, config_drive={'user_data': config},
            instance_info={'image_source': server.url_of('fcos.raw'),
                           'image_pull_secret': self.PULL})
        self.assertActive(data, node)
        self._assert_installed_with_pull_secret(node, server)
        self._assert_absent(self.MARKER)
        self._assert_absent(self.PULL)
        # And in custom-agent mode, where the agent logs the step itself.
        node2 = self.node()
        data = self.deploy_and_wait(
            node2, config_drive={'user_data': config},
            deploy_steps=install_step())
        self.assertActive(data, node2)
        self._assert_absent(self.MARKER)

    def _deploy_with_step_arguments(self, interface, name):
        node = self.node(interface)
        server = self._image_server(name)
        data = self.deploy_and_wait(node, deploy_steps=install_step(
            ignition=user_config(marker=self.MARKER),
            image_url=server.url_of('fcos.raw'),
            image_pull_secret=self.PULL))
        self.assertActive(data, node)
        self._assert_installed_with_pull_secret(node, server)
        self._assert_absent(self.MARKER)
        self._assert_absent(self.PULL)
        self._assert_steps_logged_hidden()
        return node

    def test_step_arguments_coreos(self):
        node = self._deploy_with_step_arguments('coreos', 'step-coreos')
        # One config, one digest: the conductor's and the agent's match.
        conductor = re.findall(
            r'Node %s: handing install_coreos to the agent: Ignition config '
            r'of (\d+) bytes \(sha256 ([0-9a-f]{64})\)' % node.uuid,
            self.h.all_logs()['ironic.log'])
        agent = re.findall(
            r'Wrote the Ignition config \((\d+) bytes, sha256 '
            r'([0-9a-f]{64})\)', node.logs())
        self.assertEqual(1, len(conductor), 'conductor digest not logged')
        self.assertEqual(conductor, agent)
        self.assertEqual(
            conductor[0][1],
            hashlib.sha256(self.installed(node)['ignition']).hexdigest())

    def test_step_arguments_custom_agent(self):
        # Covered because this conductor loaded the coreos interface (the
        # redaction is process-wide), not because of custom-agent.
        self._deploy_with_step_arguments('custom-agent', 'step-custom')

    def test_deploy_template_arguments(self):
        node = self.node('coreos')
        server = self._image_server('template')
        trait = 'CUSTOM_E2E_COREOS_SECRET'
        self.h.ironic.request('POST', '/v1/deploy_templates', {
            'name': trait,
            'steps': install_step(ignition=user_config(marker=self.MARKER),
                                  image_url=server.url_of('fcos.raw'),
                                  image_pull_secret=self.PULL)})
        self.h.ironic.request('PUT', '/v1/nodes/%s/traits/%s'
                              % (node.uuid, trait))
        data = self.deploy_and_wait(node, instance_info={'traits': [trait]})
        self.assertActive(data, node)
        self._assert_installed_with_pull_secret(node, server)
        self._assert_absent(self.MARKER)
        self._assert_absent(self.PULL)
        self._assert_steps_logged_hidden()


class SecretWithoutPackageTest(E2ETestCase):
    """custom-agent on a conductor that does not load the coreos interface.

    Nothing of this package runs in such a conductor, and Ironic logs the
    step arguments as they are: what the documentation says, shown here.
    The agent still hides them.
    """

    harness_args = {'deploy_interfaces': ('custom-agent', 'fake')}
    MARKER = 'E2E-UNPROTECTED-IGNITION-77c1'

    def test_step_arguments_reach_ironic_log(self):
        node = self.node()
        data = self.deploy_and_wait(node, deploy_steps=install_step(
            ignition=user_config(marker=self.MARKER)))
        self.assertActive(data, node)
        logs = self.h.all_logs()
        self.assertIn(self.MARKER, logs['ironic.log'])
        self.assertNotIn(self.MARKER, node.logs())
        # The safe way on such a conductor: the config drive.
        node2 = self.node()
        marker = 'E2E-CONFIGDRIVE-IGNITION-5d0e'
        data = self.deploy_and_wait(
            node2, config_drive={'user_data': user_config(marker=marker)},
            deploy_steps=install_step())
        self.assertActive(data, node2)
        for name, text in self.h.all_logs().items():
            self.assertNotIn(marker, text, 'secret in %s' % name)


class SafetyTest(E2ETestCase):
    """The layers that keep the agent off the host's disks and power."""

    def test_launcher_refuses_outside_namespace(self):
        node = self.node()
        problems = launch.check_layers(node.agent_env())
        self.assertIn('running in the host network namespace', problems)

    def test_launcher_refuses_without_shims_first(self):
        node = self.node()
        env = node.agent_env()
        env['PATH'] = '/usr/sbin:/usr/bin:/sbin:/bin:' + node.shim_dir
        proc = subprocess.run(
            ['ip', 'netns', 'exec', node.netns, sys.executable, '-m',
             'ironic_coreos.tests.functional.harness.launch',
             '--config-file', node.agent_conf],
            env=env, capture_output=True, timeout=60)
        self.assertEqual(launch.REFUSED, proc.returncode)
        self.assertIn(b'the shims are not first on PATH', proc.stderr)
        self.assertFalse(os.path.exists(node.calls_file))

    def test_erase_step_refused(self):
        node = self.node()
        data = self.deploy_and_wait(node, deploy_steps=[
            {'interface': 'deploy', 'step': 'erase_devices_metadata',
             'priority': 90, 'args': {}}])
        self.assertFailed(data, 'refused by the simulated hardware')
        self.assertTrue(node.disk_is_blank())
        self.assertIn('step_refused', [c['call'] for c in node.calls()])
