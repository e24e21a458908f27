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

"""install_coreos driven the way the conductor drives it.

IPA's real DeployExtension dispatches the step to the hardware managers,
and a stand-in ``coreos-installer`` (a script in a temporary directory,
run through ``chroot /``) records the argv it receives.
"""

import importlib.metadata
import json
import os
import stat
import sys
from unittest import mock

import fixtures
from ironic_python_agent.extensions import deploy
from ironic_python_agent import hardware
from ironic_python_agent.tests.unit import base
from stevedore import extension

from ironic_coreos.agent import hardware_manager

MARKER = 'SECRET-MARKER-0d4e1f'
IGNITION = {'ignition': {'version': '3.4.0'},
            'storage': {'files': [{'path': '/etc/marker', 'mode': 0o600,
                                   'contents': {'source': 'data:,' + MARKER}
                                   }]}}
IMAGE_URL = 'https://images.example.com/fcos/fcos-metal.x86_64.raw.xz'

_STANDIN = '''#!%(python)s
import json, os, stat, sys
argv = sys.argv[1:]
record = {'argv': argv}
if '--ignition-file' in argv:
    path = argv[argv.index('--ignition-file') + 1]
    record['ignition_mode'] = stat.S_IMODE(os.stat(path).st_mode)
    with open(path) as fp:
        record['ignition'] = json.load(fp)
with open(%(record)r, 'a') as fp:
    fp.write(json.dumps(record) + '\\n')
if os.path.exists(%(fail)r):
    print('Downloading image...', flush=True)
    print('Error: fetching image: HTTP status client error (403 Forbidden)')
    print('Error: install failed')
    sys.exit(1)
print('Read disk 1.0 MiB/1.0 MiB (100%%)', flush=True)
print('Install complete.')
'''


class _FakeDisks(hardware.HardwareManager):
    """Stands for the generic manager: the root device, no waiting."""

    def __init__(self, device):
        super().__init__()
        self.device = device

    def evaluate_hardware_support(self):
        return hardware.HardwareSupport.GENERIC

    def get_os_install_device(self, permit_refresh=False):
        return self.device

    def wait_for_disks(self):
        pass


def _extension(name, obj):
    entry_point = importlib.metadata.EntryPoint(
        name=name, value='%s:%s' % (type(obj).__module__,
                                    type(obj).__name__),
        group='ironic_python_agent.hardware_managers')
    return extension.Extension(name, entry_point, type(obj), obj)


@mock.patch.object(hardware_manager, '_is_uefi', autospec=True,
                   return_value=False)
class TestDeployExtension(base.IronicAgentTest):

    def setUp(self):
        super().setUp()
        if os.geteuid() != 0:
            self.skipTest('chroot needs root')
        self.log = self.useFixture(fixtures.FakeLogger(level='DEBUG'))
        tmp = self.useFixture(fixtures.TempDir()).path
        os.chmod(tmp, 0o755)
        self.record = os.path.join(tmp, 'argv.jsonl')
        self.fail_flag = os.path.join(tmp, 'fail')
        self.script = os.path.join(tmp, 'coreos-installer')
        with open(self.script, 'w') as fp:
            fp.write(_STANDIN % {'python': sys.executable,
                                 'record': self.record,
                                 'fail': self.fail_flag})
        os.chmod(self.script, 0o755)
        # A device no other code knows: nothing in sysfs or the mount
        # table refers to it, so nothing on this machine is touched.
        self.device = os.path.join(tmp, 'disk.img')
        self.work_dir = os.path.join(tmp, 'work')
        self.config(host_root='/', installer=self.script,
                    work_dir=self.work_dir, install_retry_delay=0,
                    group='coreos')

        managers = extension.ExtensionManager.make_test_instance([
            _extension('coreos', hardware_manager.CoreOSHardwareManager()),
            _extension('fake', _FakeDisks(self.device)),
        ])
        patcher = mock.patch.object(hardware, '_get_extensions',
                                    autospec=True, return_value=managers)
        patcher.start()
        self.addCleanup(patcher.stop)
        self.ext = deploy.DeployExtension()

    def _deploy(self, automated_clean=False, configdrive=None, **args):
        node = {'uuid': '0d4e1f00-1111-4a2b-8c3d-4e5f60718293',
                'automated_clean': automated_clean,
                'instance_info': ({'configdrive': configdrive}
                                  if configdrive else {})}
        step = {'interface': 'deploy', 'step': 'install_coreos',
                'priority': 80, 'args': args}
        return self.ext.execute_deploy_step(step=step, node=node,
                                            ports=[]).join()

    def _records(self):
        with open(self.record) as fp:
            return [json.loads(line) for line in fp]

    def test_step_offered(self, mock_uefi):
        node = {'uuid': '0d4e1f00-1111-4a2b-8c3d-4e5f60718293'}
        result = self.ext.get_deploy_steps(node=node, ports=[])
        steps = result.command_result['deploy_steps']
        self.assertEqual(
            ['install_coreos'],
            [s['step'] for s in steps['CoreOSHardwareManager']])
        self.assertIn('append_kargs',
                      steps['CoreOSHardwareManager'][0]['argsinfo'])
        self.assertEqual(
            '1.0',
            result.command_result['hardware_manager_version'][
                'CoreOSHardwareManager'])

    def test_offline_two_kargs(self, mock_uefi):
        result = self._deploy(ignition=IGNITION,
                              append_kargs=['console=ttyS0,115200n8',
                                            'quiet'])
        self.assertIsNone(result.command_error)
        self.assertEqual('SUCCEEDED', result.command_status)
        [record] = self._records()
        path = record['argv'][record['argv'].index('--ignition-file') + 1]
        self.assertEqual(
            ['install', '--offline', '--ignition-file', path,
             '--append-karg', 'console=ttyS0,115200n8',
             '--append-karg', 'quiet', self.device], record['argv'])
        self.assertTrue(path.startswith(self.work_dir + '/'))
        self.assertEqual(0o600, record['ignition_mode'])
        self.assertEqual(IGNITION, record['ignition'])
        self.assertEqual([], os.listdir(self.work_dir))
        self.assertEqual(0o700,
                         stat.S_IMODE(os.stat(self.work_dir).st_mode))
        self.assertIn('coreos-installer: Install complete.',
                      self.log.output)

    def test_image_url_no_insecure(self, mock_uefi):
        result = self._deploy(ignition=json.dumps(IGNITION),
                              image_url=IMAGE_URL, automated_clean=True)
        self.assertEqual('SUCCEEDED', result.command_status)
        [record] = self._records()
        path = record['argv'][record['argv'].index('--ignition-file') + 1]
        self.assertEqual(
            ['install', '--image-url', IMAGE_URL, '--ignition-file', path,
             '--preserve-on-error', self.device], record['argv'])

    def test_image_url_insecure_opt_in(self, mock_uefi):
        result = self._deploy(ignition=IGNITION, image_url=IMAGE_URL,
                              insecure=True, console=['ttyS0,115200n8'],
                              delete_kargs=['mitigations=auto,nosmt'])
        self.assertEqual('SUCCEEDED', result.command_status)
        [record] = self._records()
        path = record['argv'][record['argv'].index('--ignition-file') + 1]
        self.assertEqual(
            ['install', '--image-url', IMAGE_URL, '--insecure',
             '--ignition-file', path, '--console', 'ttyS0,115200n8',
             '--delete-karg', 'mitigations=auto,nosmt', self.device],
            record['argv'])

    def test_ignition_from_configdrive(self, mock_uefi):
        result = self._deploy(configdrive={'user_data': IGNITION,
                                           'meta_data': {}})
        self.assertEqual('SUCCEEDED', result.command_status)
        [record] = self._records()
        self.assertEqual(IGNITION, record['ignition'])

    def test_unexpected_check_error(self, mock_uefi):
        with mock.patch.object(hardware_manager.ignition, 'check',
                               autospec=True,
                               side_effect=ValueError(MARKER)):
            result = self._deploy(ignition=IGNITION)
        self.assertEqual('FAILED', result.command_status)
        message = str(result.command_error)
        self.assertIn('could not check the Ignition config', message)
        self.assertIn('internal error ValueError', message)
        self.assertNotIn(MARKER, message)
        self.assertNotIn(MARKER, self.log.output)
        # The installer never ran.
        self.assertFalse(os.path.exists(self.record))

    def test_installer_failure(self, mock_uefi):
        with open(self.fail_flag, 'w'):
            pass
        result = self._deploy(ignition=IGNITION, image_url=IMAGE_URL)
        self.assertEqual('FAILED', result.command_status)
        message = str(result.command_error)
        self.assertIn('HTTP status client error (403 Forbidden)', message)
        self.assertIn('not retried', message)
        self.assertEqual(1, len(self._records()))
        self.assertEqual([], os.listdir(self.work_dir))
        self.assertNotIn(MARKER, message)

    def test_wrong_argument(self, mock_uefi):
        result = self._deploy(ignition=IGNITION, append_kargs='a,b')
        self.assertEqual('FAILED', result.command_status)
        self.assertIn('"append_kargs"', str(result.command_error))
        self.assertFalse(os.path.exists(self.record))
        self.assertFalse(os.path.exists(self.work_dir))

    def test_no_marker_in_any_log(self, mock_uefi):
        drive = {'user_data': IGNITION, 'meta_data': {'x': MARKER}}
        self.ext.get_deploy_steps(
            node={'uuid': 'u', 'instance_info': {'configdrive': drive}},
            ports=[])
        self.assertEqual('SUCCEEDED',
                         self._deploy(ignition=IGNITION).command_status)
        self.assertEqual('SUCCEEDED',
                         self._deploy(configdrive=drive).command_status)
        with open(self.fail_flag, 'w'):
            pass
        result = self._deploy(ignition=IGNITION, image_url=IMAGE_URL,
                              image_pull_secret=MARKER)
        self.assertEqual('FAILED', result.command_status)
        self.assertNotIn(MARKER, str(result.command_error))
        # ironic-python-agent logs steps with their args and the node with
        # its config drive: the hardware manager hides them.
        self.assertIn('Executing deploy step', self.log.output)
        self.assertIn("'ignition': '<hidden>'", self.log.output)
        self.assertIn("'configdrive': '<hidden>'", self.log.output)
        self.assertNotIn(MARKER, self.log.output)
