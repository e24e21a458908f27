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

import base64
import gzip
import hashlib
import http.server
import json
import logging
import os
import stat
import sys
import threading
from unittest import mock

import fixtures
from ironic_python_agent import efi_utils
from ironic_python_agent import errors
from ironic_python_agent import hardware
from ironic_python_agent.tests.unit import base
from ironic_python_agent import utils
import requests

from ironic_coreos.agent import disk
from ironic_coreos.agent import hardware_manager
from ironic_coreos.agent import progress as progress_report
from ironic_coreos.engine import configdrive
from ironic_coreos.engine import ignition
from ironic_coreos.engine import installer
from ironic_coreos.engine import merge
from ironic_coreos.engine import nodedata
from ironic_coreos.engine import redact
from ironic_coreos.engine import spec
from ironic_coreos.tests import configdrive as drives

MARKER = 'SECRET-MARKER-5e3b9c'
PULL_SECRET = 'PULL-' + MARKER
NODE_UUID = '1be26c0b-03f2-4d2e-ae87-c02d7f33c123'
DEVICE = '/dev/sda'
IMAGE_URL = 'https://images.example.com/fcos/fcos-metal.x86_64.raw.xz'
SHA256 = 'ab' * 32


def _ignition(marker=MARKER):
    return {
        'ignition': {'version': '3.4.0'},
        'storage': {'files': [{
            'path': '/etc/secret',
            'mode': 0o600,
            'contents': {'source': 'data:,%s' % marker},
        }]},
    }


def _node(configdrive=None, automated_clean=None, **instance_info):
    if configdrive is not None:
        instance_info['configdrive'] = configdrive
    return {'uuid': NODE_UUID, 'automated_clean': automated_clean,
            'instance_info': instance_info}


def _iso_configdrive(user_data, meta_data=None):
    return drives.build_iso(user_data=user_data,
                            meta_data=meta_data or {'uuid': NODE_UUID})


class _Server(http.server.ThreadingHTTPServer):
    """A local web server answering every GET with fixed files."""

    daemon_threads = True

    def __init__(self, files):
        self.files = files
        self.requests = []
        super().__init__(('127.0.0.1', 0), _Handler)
        thread = threading.Thread(target=self.serve_forever, daemon=True)
        thread.start()

    def url(self, path):
        return 'http://127.0.0.1:%d%s' % (self.server_port, path)

    def stop(self):
        self.shutdown()
        self.server_close()


class _Handler(http.server.BaseHTTPRequestHandler):

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.requests.append((self.path,
                                     self.headers.get('Authorization')))
        body = self.server.files.get(self.path)
        if body is None:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Base(base.IronicAgentTest):

    def setUp(self):
        super().setUp()
        self.log = self.useFixture(fixtures.FakeLogger(level='DEBUG'))
        self.useFixture(fixtures.EnvironmentVariable('http_proxy'))
        self.useFixture(fixtures.EnvironmentVariable('HTTP_PROXY'))
        self.root = self.useFixture(fixtures.TempDir()).path
        os.chmod(self.root, 0o755)
        self.config(host_root=self.root, install_retry_delay=7,
                    group='coreos')
        self.work_dir = os.path.join(self.root, 'run', 'ironic-coreos')
        self.hwm = hardware_manager.CoreOSHardwareManager()

    def _fake_run(self, results):
        """Make _run record what the installer would see."""
        self.seen = []
        results = list(results)

        def run(_self, argv, on_line=None):
            path = argv[argv.index('--ignition-file') + 1]
            host_file = os.path.join(self.root, path.lstrip('/'))
            st = os.stat(host_file)
            with open(host_file, 'rb') as fp:
                content = json.load(fp)
            self.seen.append({
                'argv': argv, 'path': path,
                'mode': stat.S_IMODE(st.st_mode),
                'dir_mode': stat.S_IMODE(
                    os.stat(os.path.dirname(host_file)).st_mode),
                'content': content})
            result = results.pop(0)
            if isinstance(result, Exception):
                raise result
            if on_line is not None:
                for line in result[1]:
                    on_line(line)
            return result
        return run


class TestSupportAndSteps(Base):

    def test_installer_found(self):
        path = os.path.join(self.root, 'usr', 'bin', 'coreos-installer')
        os.makedirs(os.path.dirname(path))
        with open(path, 'w') as fp:
            fp.write('#!/bin/sh\n')
        os.chmod(path, 0o755)
        self.assertEqual(hardware.HardwareSupport.SERVICE_PROVIDER,
                         self.hwm.evaluate_hardware_support())

    def test_installer_absolute_path(self):
        path = os.path.join(self.root, 'opt', 'inst')
        os.makedirs(os.path.dirname(path))
        with open(path, 'w') as fp:
            fp.write('#!/bin/sh\n')
        os.chmod(path, 0o755)
        self.config(installer='/opt/inst', group='coreos')
        self.assertEqual(hardware.HardwareSupport.SERVICE_PROVIDER,
                         self.hwm.evaluate_hardware_support())

    def test_installer_missing(self):
        self.assertEqual(hardware.HardwareSupport.NONE,
                         self.hwm.evaluate_hardware_support())
        self.assertIn('coreos-installer not found in the host root %s'
                      % self.root, self.log.output)

    def test_installer_not_executable(self):
        path = os.path.join(self.root, 'usr', 'bin', 'coreos-installer')
        os.makedirs(os.path.dirname(path))
        with open(path, 'w') as fp:
            fp.write('#!/bin/sh\n')
        os.chmod(path, 0o644)
        self.assertEqual(hardware.HardwareSupport.NONE,
                         self.hwm.evaluate_hardware_support())

    def test_get_deploy_steps(self):
        steps = self.hwm.get_deploy_steps(_node(), [])
        self.assertEqual(1, len(steps))
        step = steps[0]
        self.assertEqual('install_coreos', step['step'])
        self.assertEqual(0, step['priority'])
        self.assertEqual('deploy', step['interface'])
        self.assertFalse(step['reboot_requested'])
        self.assertEqual(installer.ARGUMENTS, step['argsinfo'])
        self.assertIsNot(installer.ARGUMENTS, step['argsinfo'])

    def test_version(self):
        self.assertEqual({'name': 'CoreOSHardwareManager', 'version': '1.0'},
                         self.hwm.get_version())


@mock.patch.object(hardware_manager, '_is_uefi', autospec=True,
                   return_value=False)
@mock.patch.object(disk, 'release', autospec=True)
@mock.patch.object(hardware_manager.time, 'sleep', autospec=True)
@mock.patch.object(hardware, 'dispatch_to_managers', autospec=True,
                   return_value=DEVICE)
@mock.patch.object(hardware_manager.CoreOSHardwareManager, '_run',
                   autospec=True)
class TestInstall(Base):

    def _assert_cleaned(self):
        self.assertEqual([], os.listdir(self.work_dir))

    def test_ignition_argument(self, mock_run, mock_dispatch, mock_sleep,
                               mock_release, mock_uefi):
        mock_run.side_effect = self._fake_run(
            [(0, ['Install complete.'])])
        self.hwm.install_coreos(_node(automated_clean=False), [],
                                ignition=_ignition(),
                                append_kargs=['a=1,2', 'b'])
        seen = self.seen[0]
        self.assertEqual(
            ['chroot', self.root, 'coreos-installer', 'install', '--offline',
             '--ignition-file', seen['path'], '--append-karg', 'a=1,2',
             '--append-karg', 'b', DEVICE], seen['argv'])
        self.assertTrue(seen['path'].startswith('/run/ironic-coreos/'))
        self.assertEqual(0o600, seen['mode'])
        self.assertEqual(0o700, seen['dir_mode'])
        self.assertEqual(_ignition(), seen['content'])
        self._assert_cleaned()
        mock_dispatch.assert_called_once_with('get_os_install_device',
                                              permit_refresh=True)
        mock_release.assert_called_once_with(DEVICE, host_root=self.root)
        mock_sleep.assert_not_called()
        self.assertNotIn(MARKER, self.log.output)
        # The digest of the canonical form (sorted keys), the one the
        # conductor logs for the same config.
        self.assertIn('sha256 %s' % hashlib.sha256(
            json.dumps(_ignition(), sort_keys=True,
                       separators=(',', ':')).encode()
        ).hexdigest(), self.log.output)

    def test_ignition_json_string(self, mock_run, mock_dispatch, mock_sleep,
                                  mock_release, mock_uefi):
        mock_run.side_effect = self._fake_run([(0, [])])
        self.hwm.install_coreos(_node(), [],
                                ignition=json.dumps(_ignition()))
        self.assertEqual(_ignition(), self.seen[0]['content'])
        # automated_clean None: the failed install is kept for debugging
        self.assertIn('--preserve-on-error', self.seen[0]['argv'])

    def test_host_root_slash(self, mock_run, mock_dispatch, mock_sleep,
                             mock_release, mock_uefi):
        self.config(host_root='/', work_dir=self.work_dir, group='coreos')
        self.root = '/'
        mock_run.side_effect = self._fake_run([(0, [])])
        self.hwm.install_coreos(_node(), [], ignition=_ignition())
        seen = self.seen[0]
        self.assertEqual(['chroot', '/', 'coreos-installer'],
                         seen['argv'][:3])
        self.assertTrue(seen['path'].startswith(self.work_dir + '/'))
        self._assert_cleaned()

    def test_configdrive_dict(self, mock_run, mock_dispatch, mock_sleep,
                              mock_release, mock_uefi):
        mock_run.side_effect = self._fake_run([(0, [])])
        drive = {'user_data': json.dumps(_ignition()),
                 'meta_data': {'uuid': NODE_UUID}}
        self.hwm.install_coreos(_node(configdrive=drive), [])
        self.assertEqual(_ignition(), self.seen[0]['content'])
        self.assertNotIn(MARKER, self.log.output)

    def test_configdrive_dict_user_data_object(self, mock_run, mock_dispatch,
                                               mock_sleep, mock_release,
                                               mock_uefi):
        mock_run.side_effect = self._fake_run([(0, [])])
        drive = {'user_data': _ignition(), 'meta_data': {}}
        self.hwm.install_coreos(_node(configdrive=drive), [])
        self.assertEqual(_ignition(), self.seen[0]['content'])

    def test_configdrive_iso(self, mock_run, mock_dispatch, mock_sleep,
                             mock_release, mock_uefi):
        mock_run.side_effect = self._fake_run([(0, [])])
        drive = _iso_configdrive(json.dumps(_ignition()).encode())
        self.hwm.install_coreos(_node(configdrive=drive), [])
        self.assertEqual(_ignition(), self.seen[0]['content'])
        self.assertNotIn(MARKER, self.log.output)

    def test_configdrive_plain_base64_iso(self, mock_run, mock_dispatch,
                                          mock_sleep, mock_release,
                                          mock_uefi):
        mock_run.side_effect = self._fake_run([(0, [])])
        drive = _iso_configdrive(json.dumps(_ignition()).encode())
        plain = base64.b64encode(gzip.decompress(base64.b64decode(drive)))
        self.hwm.install_coreos(_node(configdrive=plain.decode()), [])
        self.assertEqual(_ignition(), self.seen[0]['content'])

    def test_configdrive_url(self, mock_run, mock_dispatch, mock_sleep,
                             mock_release, mock_uefi):
        mock_run.side_effect = self._fake_run([(0, [])])
        drive = _iso_configdrive(json.dumps(_ignition()).encode())
        server = _Server({'/cd': drive.encode()})
        self.addCleanup(server.stop)
        self.hwm.install_coreos(_node(configdrive=server.url('/cd')), [])
        self.assertEqual(_ignition(), self.seen[0]['content'])
        self.assertEqual([('/cd', None)], server.requests)

    def test_ignition_argument_wins_over_configdrive(
            self, mock_run, mock_dispatch, mock_sleep, mock_release,
            mock_uefi):
        mock_run.side_effect = self._fake_run([(0, [])])
        drive = {'user_data': '#cloud-config\n'}
        self.hwm.install_coreos(_node(configdrive=drive), [],
                                ignition=_ignition('other'))
        self.assertEqual(_ignition('other'), self.seen[0]['content'])

    def _assert_fails_early(self, mock_run, node, **kwargs):
        exc = self.assertRaises(errors.DeploymentError,
                                self.hwm.install_coreos, node, [], **kwargs)
        mock_run.assert_not_called()
        self.assertFalse(os.path.exists(self.work_dir))
        self.assertNotIn(MARKER, str(exc))
        self.assertNotIn(MARKER, self.log.output)
        return str(exc)

    def test_cloud_config_user_data(self, mock_run, mock_dispatch,
                                    mock_sleep, mock_release, mock_uefi):
        drive = {'user_data': '#cloud-config\npassword: %s\n' % MARKER}
        message = self._assert_fails_early(mock_run, _node(configdrive=drive))
        self.assertIn('cloud-config, not an Ignition config', message)
        self.assertIn('config drive user_data', message)

    def test_shell_script_user_data(self, mock_run, mock_dispatch,
                                    mock_sleep, mock_release, mock_uefi):
        drive = _iso_configdrive(b'#!/bin/sh\necho ' + MARKER.encode())
        message = self._assert_fails_early(mock_run, _node(configdrive=drive))
        self.assertIn('script, not an Ignition config', message)

    def test_no_ignition_at_all(self, mock_run, mock_dispatch, mock_sleep,
                                mock_release, mock_uefi):
        for node in (_node(), _node(configdrive={'meta_data': {}}),
                     {'uuid': NODE_UUID}):
            message = self._assert_fails_early(mock_run, node)
            self.assertIn('No Ignition config', message)
            self.assertIn('"ignition" argument', message)

    def test_broken_configdrive(self, mock_run, mock_dispatch, mock_sleep,
                                mock_release, mock_uefi):
        message = self._assert_fails_early(
            mock_run, _node(configdrive='not base64 %s !!' % MARKER))
        self.assertIn('Cannot read the config drive', message)

    def test_invalid_ignition(self, mock_run, mock_dispatch, mock_sleep,
                              mock_release, mock_uefi):
        config = _ignition()
        config['ignition']['version'] = '9.9.9'
        message = self._assert_fails_early(mock_run, _node(),
                                           ignition=config)
        self.assertIn('The Ignition config from the ignition argument is '
                      'not valid', message)
        self.assertIn('$.ignition.version', message)

    def test_ignition_newer_than_max_version(self, mock_run, mock_dispatch,
                                             mock_sleep, mock_release,
                                             mock_uefi):
        self.config(max_ignition_version='3.3.0', group='coreos')
        message = self._assert_fails_early(mock_run, _node(),
                                           ignition=_ignition())
        self.assertIn('3.4.0', message)

    @mock.patch.object(ignition, 'check', autospec=True)
    def test_ignition_checked_with_options(self, mock_check, mock_run,
                                           mock_dispatch, mock_sleep,
                                           mock_release, mock_uefi):
        self.config(max_ignition_version='3.2.0',
                    fail_on_ignition_warnings=True, group='coreos')
        mock_check.return_value = ignition.Report(
            version='3.2.0', errors=[], warnings=[], needs_network=False,
            config={'ignition': {'version': '3.2.0'}})
        mock_run.side_effect = self._fake_run([(0, [])])
        self.hwm.install_coreos(_node(), [], ignition='{"x": 1}')
        mock_check.assert_called_once_with(
            {'x': 1}, max_version='3.2.0', fail_on_warnings=True,
            install_device=DEVICE)
        self.assertEqual({'ignition': {'version': '3.2.0'}},
                         self.seen[0]['content'])

    def test_ignition_warnings_logged(self, mock_run, mock_dispatch,
                                      mock_sleep, mock_release, mock_uefi):
        config = _ignition()
        config['storage']['files'][0]['mode'] = 644
        config['storage']['files'][0]['contents']['source'] = (
            'https://example.com/' + MARKER)
        mock_run.side_effect = self._fake_run([(0, [])])
        self.hwm.install_coreos(_node(), [], ignition=config)
        self.assertIn('The Ignition config from the ignition argument has '
                      'warnings', self.log.output)
        self.assertIn('$.storage.files[0].mode', self.log.output)
        self.assertIn('the node needs network', self.log.output)
        self.assertNotIn(MARKER, self.log.output)

    def test_work_dir_unwritable(self, mock_run, mock_dispatch, mock_sleep,
                                 mock_release, mock_uefi):
        with open(os.path.join(self.root, 'run'), 'w'):
            pass
        exc = self.assertRaises(errors.DeploymentError,
                                self.hwm.install_coreos, _node(), [],
                                ignition=_ignition())
        self.assertIn('Could not write the Ignition config under', str(exc))
        self.assertIn('[coreos]work_dir', str(exc))
        mock_run.assert_not_called()

    def test_invalid_arguments_fail_before_anything(
            self, mock_run, mock_dispatch, mock_sleep, mock_release,
            mock_uefi):
        cases = [
            ({'append_kargs': 'a,b'}, 'append_kargs'),
            ({'insecure': 'yes'}, 'insecure'),
            ({'fetch_retries': -1}, 'fetch_retries'),
            ({'image_url': 'ftp://x/y'}, 'image_url'),
            ({'image_url': IMAGE_URL, 'image_checksum': 'md5:abc'},
             'image_checksum'),
            ({'platform': 'Metal!'}, 'platform'),
            ({'save_partindex': ['x']}, 'save_partindex'),
            ({'copy_network': 1}, 'copy_network'),
            ({'preserve_on_error': 'maybe'}, 'preserve_on_error'),
            ({'console': [1]}, 'console'),
            ({'delete_kargs': [None]}, 'delete_kargs'),
            ({'save_partlabel': 'x'}, 'save_partlabel'),
            ({'ignition': '#cloud-config\n%s' % MARKER}, 'ignition'),
            ({'image_url': IMAGE_URL, 'image_pull_secret': ''},
             'image_pull_secret'),
            ({'ignitoin': _ignition()}, 'ignitoin'),
        ]
        for kwargs, name in cases:
            message = self._assert_fails_early(mock_run, _node(), **kwargs)
            self.assertIn('"%s"' % name, message)
            self.assertIn('expected', message)
        mock_dispatch.assert_not_called()
        mock_release.assert_not_called()

    def test_unknown_argument_lists_accepted(self, mock_run, mock_dispatch,
                                             mock_sleep, mock_release,
                                             mock_uefi):
        message = self._assert_fails_early(mock_run, _node(), kargs=['x'])
        self.assertIn('unknown argument', message)
        self.assertIn('append_kargs', message)

    def test_image_from_instance_info(self, mock_run, mock_dispatch,
                                      mock_sleep, mock_release, mock_uefi):
        mock_run.side_effect = self._fake_run([(0, [])])
        self.hwm.install_coreos(
            _node(image_source=IMAGE_URL, automated_clean=False), [],
            ignition=_ignition())
        argv = self.seen[0]['argv']
        self.assertEqual(['--image-url', IMAGE_URL],
                         argv[argv.index('--image-url'):][:2])
        self.assertNotIn('--insecure', argv)
        self.assertNotIn('--offline', argv)

    def test_insecure_opt_in(self, mock_run, mock_dispatch, mock_sleep,
                             mock_release, mock_uefi):
        mock_run.side_effect = self._fake_run([(0, [])])
        self.hwm.install_coreos(_node(), [], ignition=_ignition(),
                                image_url=IMAGE_URL, insecure='true')
        self.assertIn('--insecure', self.seen[0]['argv'])

    def test_retry_transient_then_success(self, mock_run, mock_dispatch,
                                          mock_sleep, mock_release,
                                          mock_uefi):
        failure = (1, ['Error: fetching image: error sending request: '
                       'connection reset', 'Error: install failed'])
        mock_run.side_effect = self._fake_run([failure, (0, [])])
        self.hwm.install_coreos(_node(), [], ignition=_ignition(),
                                image_url=IMAGE_URL)
        self.assertEqual(2, mock_run.call_count)
        mock_sleep.assert_called_once_with(7)
        self.assertEqual(2, mock_release.call_count)
        self.assertEqual(self.seen[0]['argv'], self.seen[1]['argv'])
        self._assert_cleaned()

    def test_retry_gives_up(self, mock_run, mock_dispatch, mock_sleep,
                            mock_release, mock_uefi):
        failure = (1, ['Error: fetching image: HTTP status server error '
                       '(503 Service Unavailable)', 'Error: install failed'])
        mock_run.side_effect = self._fake_run([failure] * 3)
        exc = self.assertRaises(errors.DeploymentError,
                                self.hwm.install_coreos, _node(), [],
                                ignition=_ignition(), image_url=IMAGE_URL)
        self.assertEqual(3, mock_run.call_count)
        self.assertEqual(2, mock_sleep.call_count)
        self.assertIn('HTTP status server error (503 Service Unavailable)',
                      str(exc))
        self.assertIn('gave up after 3 attempts', str(exc))
        self._assert_cleaned()

    def test_retry_attempts_option(self, mock_run, mock_dispatch,
                                   mock_sleep, mock_release, mock_uefi):
        self.config(install_attempts=1, group='coreos')
        failure = (1, ['Error: operation timed out', 'Error: install failed'])
        mock_run.side_effect = self._fake_run([failure])
        self.assertRaises(errors.DeploymentError, self.hwm.install_coreos,
                          _node(), [], ignition=_ignition(),
                          image_url=IMAGE_URL)
        self.assertEqual(1, mock_run.call_count)
        mock_sleep.assert_not_called()

    def test_permanent_failure_not_retried(self, mock_run, mock_dispatch,
                                           mock_sleep, mock_release,
                                           mock_uefi):
        failure = (1, ['Downloading image...',
                       'Error: found busy partitions: /dev/sda1',
                       'Error: install failed'])
        mock_run.side_effect = self._fake_run([failure])
        exc = self.assertRaises(errors.DeploymentError,
                                self.hwm.install_coreos, _node(), [],
                                ignition=_ignition())
        self.assertEqual(1, mock_run.call_count)
        mock_sleep.assert_not_called()
        self.assertIn('Error: found busy partitions: /dev/sda1', str(exc))
        self.assertIn('not retried', str(exc))
        self.assertIn(DEVICE, str(exc))
        self._assert_cleaned()

    def test_failure_names_the_phase(self, mock_run, mock_dispatch,
                                     mock_sleep, mock_release, mock_uefi):
        failure = (1, ['Read disk 1.2 GiB/2.5 GiB (48%)',
                       'Error: writing to disk: Input/output error',
                       'Error: install failed'])
        mock_run.side_effect = self._fake_run([failure])
        exc = self.assertRaises(errors.DeploymentError,
                                self.hwm.install_coreos, _node(), [],
                                ignition=_ignition())
        self.assertIn('stopped while writing, 48% (1.2 GiB of 2.5 GiB '
                      'read)', str(exc))
        self.assertTrue(str(exc).endswith(
            'Error: writing to disk: Input/output error'), str(exc))

    @mock.patch.object(progress_report, 'Publisher', autospec=True)
    def test_progress_published(self, mock_publisher, mock_run,
                                mock_dispatch, mock_sleep, mock_release,
                                mock_uefi):
        failure = (1, ['Read disk 1.0 MiB/4.0 MiB (25%)',
                       'Error: downloading image: error sending request: '
                       'connection reset by peer (os error 104)',
                       'Error: install failed'])
        success = (0, ['Read disk 2.0 MiB/4.0 MiB (50%)',
                       'Read disk 4.0 MiB/4.0 MiB (100%)',
                       'Writing Ignition config', 'Install complete.'])
        mock_run.side_effect = self._fake_run([failure, success])
        self.hwm.install_coreos(_node(), [], ignition=_ignition())
        published = [c.args[0] for c in
                     mock_publisher.return_value.publish.call_args_list]
        self.assertEqual(
            [('writing', 25, 1), ('failed', 25, 1),
             ('writing', 50, 2), ('writing', 100, 2),
             ('configuring', 100, 2), ('done', 100, 2)],
            [(s['phase'], s['percent'], s['attempt']) for s in published])
        self.assertEqual(4 << 20, published[-1]['bytes_total'])
        self.assertNotIn(MARKER, repr(published))

    def test_cleanup_on_unexpected_error(self, mock_run, mock_dispatch,
                                         mock_sleep, mock_release,
                                         mock_uefi):
        mock_run.side_effect = self._fake_run([RuntimeError('boom')])
        self.assertRaises(RuntimeError, self.hwm.install_coreos, _node(), [],
                          ignition=_ignition())
        self.assertEqual(1, len(self.seen))
        self._assert_cleaned()

    def test_disk_busy(self, mock_run, mock_dispatch, mock_sleep,
                       mock_release, mock_uefi):
        mock_release.side_effect = disk.DiskBusy(
            'The install device /dev/sda is in use and could not be freed: '
            '/dev/md127 holder of /dev/sda1.')
        exc = self.assertRaises(errors.DeploymentError,
                                self.hwm.install_coreos, _node(), [],
                                ignition=_ignition())
        self.assertIn('/dev/md127 holder of /dev/sda1', str(exc))
        mock_run.assert_not_called()
        self._assert_cleaned()

    @mock.patch.object(efi_utils, 'manage_uefi', autospec=True)
    def test_uefi_boot_entry_retried(self, mock_manage, mock_run,
                                     mock_dispatch, mock_sleep,
                                     mock_release, mock_uefi):
        mock_uefi.return_value = True
        mock_manage.side_effect = [errors.CommandExecutionError('nvram'),
                                   True]
        mock_run.side_effect = self._fake_run([(0, [])])
        self.hwm.install_coreos(_node(), [], ignition=_ignition())
        self.assertEqual([mock.call(DEVICE)] * 2, mock_manage.call_args_list)
        mock_sleep.assert_called_once_with(hardware_manager._EFI_RETRY_DELAY)

    @mock.patch.object(efi_utils, 'manage_uefi', autospec=True)
    def test_uefi_boot_entry_fails(self, mock_manage, mock_run,
                                   mock_dispatch, mock_sleep, mock_release,
                                   mock_uefi):
        self.config(efi_attempts=2, group='coreos')
        mock_uefi.return_value = True
        mock_manage.return_value = False
        mock_run.side_effect = self._fake_run([(0, [])])
        exc = self.assertRaises(errors.DeploymentError,
                                self.hwm.install_coreos, _node(), [],
                                ignition=_ignition())
        self.assertEqual(2, mock_manage.call_count)
        self.assertIn('UEFI boot entry after 2 attempts', str(exc))
        self.assertIn('no EFI boot loader', str(exc))

    @mock.patch.object(efi_utils, 'manage_uefi', autospec=True)
    def test_bios_no_boot_entry(self, mock_manage, mock_run, mock_dispatch,
                                mock_sleep, mock_release, mock_uefi):
        mock_run.side_effect = self._fake_run([(0, [])])
        self.hwm.install_coreos(_node(), [], ignition=_ignition())
        mock_manage.assert_not_called()


@mock.patch.object(hardware_manager, '_is_uefi', autospec=True,
                   return_value=False)
@mock.patch.object(disk, 'release', autospec=True)
@mock.patch.object(hardware_manager.time, 'sleep', autospec=True)
@mock.patch.object(hardware, 'dispatch_to_managers', autospec=True,
                   return_value=DEVICE)
@mock.patch.object(hardware_manager.CoreOSHardwareManager, '_run',
                   autospec=True)
class TestImageStreamInstall(Base):
    """The installer reads the image through the verifying stream."""

    def setUp(self):
        super().setUp()
        self.image = os.urandom(2 * 1024 * 1024 + 17)
        self.server = _Server({'/img/fcos.raw.xz': self.image,
                               '/img/fcos.raw.xz.sig': b'sig'})
        self.addCleanup(self.server.stop)
        self.url = self.server.url('/img/fcos.raw.xz')

    def _installer(self, _self, argv, on_line=None):
        """Read the image like coreos-installer: all of it, or fail."""
        url = argv[argv.index('--image-url') + 1]
        self.local_urls.append(url)
        session = requests.Session()
        session.trust_env = False
        try:
            sig = session.get(url + '.sig', timeout=30)
            sig.raise_for_status()
            with session.get(url, stream=True, timeout=30) as response:
                response.raise_for_status()
                data = b''.join(response.iter_content(65536))
        except requests.RequestException:
            return 1, ['Error: reading image: unexpected EOF',
                       'Error: install failed']
        self.assertEqual(self.image, data)
        return 0, ['Install complete.']

    def test_good_checksum(self, mock_run, mock_dispatch, mock_sleep,
                           mock_release, mock_uefi):
        self.local_urls = []
        mock_run.side_effect = self._installer
        digest = hashlib.sha256(self.image).hexdigest()
        self.hwm.install_coreos(_node(), [], ignition=_ignition(),
                                image_url=self.url,
                                image_checksum='sha256:' + digest,
                                image_pull_secret=PULL_SECRET)
        self.assertEqual(1, len(self.local_urls))
        self.assertTrue(self.local_urls[0].startswith('http://127.0.0.1:'))
        self.assertTrue(self.local_urls[0].endswith('/fcos.raw.xz'))
        self.assertEqual(
            [('/img/fcos.raw.xz.sig', 'Bearer ' + PULL_SECRET),
             ('/img/fcos.raw.xz', 'Bearer ' + PULL_SECRET)],
            self.server.requests)
        self.assertNotIn(MARKER, self.log.output)
        self.assertIn('verified', self.log.output)

    def test_bad_checksum_not_retried(self, mock_run, mock_dispatch,
                                      mock_sleep, mock_release, mock_uefi):
        self.local_urls = []
        mock_run.side_effect = self._installer
        exc = self.assertRaises(errors.DeploymentError,
                                self.hwm.install_coreos, _node(), [],
                                ignition=_ignition(), image_url=self.url,
                                image_checksum='sha256:' + SHA256,
                                image_pull_secret=PULL_SECRET)
        self.assertEqual(1, mock_run.call_count)
        mock_sleep.assert_not_called()
        self.assertIn('expected %s' % SHA256, str(exc))
        self.assertIn('got %s' % hashlib.sha256(self.image).hexdigest(),
                      str(exc))
        self.assertNotIn(MARKER, str(exc))
        self.assertNotIn(MARKER, self.log.output)
        self.assertEqual([], os.listdir(self.work_dir))

    def test_success_without_reading_the_image_fails(
            self, mock_run, mock_dispatch, mock_sleep, mock_release,
            mock_uefi):
        # An installer that exits 0 without fetching the image (or only
        # part of it) must not pass for a verified install.
        mock_run.return_value = (0, ['Install complete.'])
        digest = hashlib.sha256(self.image).hexdigest()
        exc = self.assertRaises(errors.DeploymentError,
                                self.hwm.install_coreos, _node(), [],
                                ignition=_ignition(), image_url=self.url,
                                image_checksum='sha256:' + digest)
        self.assertIn('not read to its end', str(exc))
        self.assertIn('verified (sha256)', str(exc))
        self.assertEqual([], self.server.requests)
        self.assertEqual([], os.listdir(self.work_dir))

    def test_success_after_mismatch_fails(self, mock_run, mock_dispatch,
                                          mock_sleep, mock_release,
                                          mock_uefi):
        self.local_urls = []

        def lenient(_self, argv, on_line=None):
            # Reads the image, ignores the cut stream, claims success.
            self._installer(_self, argv)
            return 0, ['Install complete.']
        mock_run.side_effect = lenient
        exc = self.assertRaises(errors.DeploymentError,
                                self.hwm.install_coreos, _node(), [],
                                ignition=_ignition(), image_url=self.url,
                                image_checksum='sha256:' + SHA256)
        self.assertIn('expected %s' % SHA256, str(exc))

    def test_checksum_from_instance_info(self, mock_run, mock_dispatch,
                                         mock_sleep, mock_release,
                                         mock_uefi):
        self.local_urls = []
        mock_run.side_effect = self._installer
        node = _node(image_source=self.url, image_os_hash_algo='sha512',
                     image_os_hash_value=hashlib.sha512(
                         self.image).hexdigest())
        self.hwm.install_coreos(node, [], ignition=_ignition())
        self.assertNotEqual(self.url, self.local_urls[0])
        self.assertIn('verified (sha512)', self.log.output)


class TestSecrets(Base):
    """No secret reaches a log or an error, whatever happens."""

    @mock.patch.object(hardware_manager, '_is_uefi', autospec=True,
                       return_value=False)
    @mock.patch.object(disk, 'release', autospec=True)
    @mock.patch.object(hardware, 'dispatch_to_managers', autospec=True,
                       return_value=DEVICE)
    @mock.patch.object(hardware_manager.CoreOSHardwareManager, '_run',
                       autospec=True)
    def test_markers_never_logged(self, mock_run, mock_dispatch,
                                  mock_release, mock_uefi):
        self.config(install_attempts=1, group='coreos')
        drive = _iso_configdrive(json.dumps(_ignition()).encode(),
                                 meta_data={'uuid': NODE_UUID,
                                            'admin_pass': MARKER})
        runs = (('argument', {'ignition': _ignition()}),
                ('config drive', {}),
                ('stream', {'image_url': IMAGE_URL,
                            'image_pull_secret': PULL_SECRET}))
        outcomes = []
        for result in ((0, ['Install complete.']),
                       (1, ['Error: bad thing', 'Error: install failed'])):
            mock_run.return_value = result
            for name, kwargs in runs:
                try:
                    self.hwm.install_coreos(_node(configdrive=drive), [],
                                            **kwargs)
                except errors.DeploymentError as exc:
                    self.assertNotIn(MARKER, str(exc))
                    outcomes.append((result[0], name, 'failed'))
                else:
                    outcomes.append((result[0], name, 'installed'))
        # The mocked installer never reads the image: the stream run fails
        # even when the installer exits 0.
        self.assertEqual([(0, 'argument', 'installed'),
                          (0, 'config drive', 'installed'),
                          (0, 'stream', 'failed'),
                          (1, 'argument', 'failed'),
                          (1, 'config drive', 'failed'),
                          (1, 'stream', 'failed')], outcomes)
        self.assertEqual(6, mock_run.call_count)
        self.assertIn('Wrote the Ignition config', self.log.output)
        self.assertNotIn(MARKER, self.log.output)
        self.assertNotIn(MARKER, ' '.join(
            ' '.join(c.args[1]) for c in mock_run.call_args_list))


class TestRun(Base):
    """_run with a real process (not coreos-installer)."""

    def test_streams_output_line_by_line(self):
        script = ("import sys, time\n"
                  "print('Downloading', flush=True)\n"
                  "sys.stdout.write('Read disk 1 MiB/2 MiB (50%)\\r')\n"
                  "sys.stdout.write('Read disk 2 MiB/2 MiB (100%)\\r')\n"
                  "sys.stdout.flush()\n"
                  "sys.stderr.write('Error: it broke\\n')\n"
                  "print('Error: install failed')\n"
                  "sys.exit(1)\n")
        code, lines = self.hwm._run([sys.executable, '-c', script])
        self.assertEqual(1, code)
        self.assertEqual(['Downloading', 'Read disk 1 MiB/2 MiB (50%)',
                          'Read disk 2 MiB/2 MiB (100%)', 'Error: it broke',
                          'Error: install failed'], lines)
        self.assertIn('coreos-installer: Read disk 1 MiB/2 MiB (50%)',
                      self.log.output)
        self.assertEqual('Error: it broke', installer.last_error_line(lines))

    def test_localhost_not_proxied(self):
        self.useFixture(fixtures.EnvironmentVariable(
            'http_proxy', 'http://proxy.invalid:3128'))
        script = ("import os\n"
                  "print(os.environ.get('no_proxy'))\n"
                  "print(os.environ.get('NO_PROXY'))\n")
        code, lines = self.hwm._run([sys.executable, '-c', script])
        self.assertEqual(0, code)
        for line in lines:
            self.assertIn('127.0.0.1', line.split(','))

    def test_timeout_stops_the_installer(self):
        self.config(install_timeout=1, group='coreos')
        # NOTE: on a loaded machine the child may not even have printed
        # within the second: only the outcome is asserted, not the timing.
        code, lines = self.hwm._run(
            [sys.executable, '-c',
             'import time; print("Downloading", flush=True); '
             'time.sleep(60)'])
        self.assertNotEqual(0, code)
        self.assertIn(lines[:-1], ([], ['Downloading']))
        self.assertIn('stopped after 1 seconds', lines[-1])
        self.assertIn('stopped after 1 seconds',
                      installer.last_error_line(lines))
        self.assertFalse(installer.is_transient(lines))

    def test_cannot_start(self):
        exc = self.assertRaises(errors.DeploymentError, self.hwm._run,
                                [os.path.join(self.root, 'missing')])
        self.assertIn('Could not run', str(exc))


class TestCollectLogs(Base):

    @mock.patch.object(utils, 'try_collect_command_output', autospec=True)
    def test_host_journal_and_installer_output(self, mock_collect):
        self.hwm._installer_output.extend(['Downloading', 'Install done'])
        io_dict = {}
        self.hwm.collect_system_logs(io_dict, [])
        mock_collect.assert_called_once_with(
            io_dict, 'coreos-host-journal',
            ['chroot', self.root, 'journalctl', '--no-pager', '--all',
             '--boot'])
        self.assertEqual(b'Downloading\nInstall done',
                         io_dict['coreos-installer.log'].read())

    @mock.patch.object(utils, 'try_collect_command_output', autospec=True)
    def test_host_root_slash(self, mock_collect):
        self.config(host_root='/', group='coreos')
        io_dict = {}
        self.hwm.collect_system_logs(io_dict, [])
        mock_collect.assert_not_called()
        self.assertEqual({}, io_dict)

    @mock.patch.object(utils, 'try_collect_command_output', autospec=True)
    def test_never_fails(self, mock_collect):
        mock_collect.side_effect = RuntimeError('boom')
        io_dict = {}
        self.hwm.collect_system_logs(io_dict, [])
        self.assertIn('Could not collect the CoreOS logs', self.log.output)


class TestWriteIgnition(Base):

    def test_exclusive_0600(self):
        inside, host_file = hardware_manager.write_ignition(
            b'{}', '1be26c0b-03f2-4d2e-ae87-c02d7f33c123')
        self.assertEqual(0o600, stat.S_IMODE(os.stat(host_file).st_mode))
        self.assertEqual(0o700, stat.S_IMODE(
            os.stat(os.path.dirname(host_file)).st_mode))
        self.assertEqual(os.path.join(self.root, inside.lstrip('/')),
                         host_file)
        self.assertEqual('1be26c0b-03f2-4d2e-ae87-c02d7f33c123.ign',
                         os.path.basename(inside))
        self.assertTrue(inside.startswith('/run/ironic-coreos/install-'))
        hardware_manager.remove_ignition(host_file)
        self.assertEqual([], os.listdir(self.work_dir))

    def test_path_as_uuid_names_no_file(self):
        # Found by tools/fuzz.py: the node's UUID named the file unchecked.
        for value in ('../../escape', '/etc/passwd', '\ud800', 7, None):
            inside, host_file = hardware_manager.write_ignition(b'{}', value)
            self.addCleanup(hardware_manager.remove_ignition, host_file)
            self.assertEqual('config.ign', os.path.basename(host_file))
            self.assertTrue(host_file.startswith(self.root + '/'))
            self.assertTrue(inside.endswith('/config.ign'))

    def test_uuid_names_the_file(self):
        uuid = 'C0FFEE00-0000-4000-8000-000000000001'
        inside, host_file = hardware_manager.write_ignition(b'{}', uuid)
        self.addCleanup(hardware_manager.remove_ignition, host_file)
        self.assertEqual(uuid.lower() + '.ign', os.path.basename(host_file))

    def test_two_installs_never_share_a_file(self):
        first = hardware_manager.write_ignition(b'{}', 'n1')
        second = hardware_manager.write_ignition(b'{}', 'n1')
        self.assertNotEqual(first, second)

    def test_shared_work_dir_mode_kept(self):
        os.makedirs(self.work_dir, mode=0o1777)
        os.chmod(self.work_dir, 0o1777)
        inside, host_file = hardware_manager.write_ignition(b'{}')
        self.assertEqual(0o1777, stat.S_IMODE(os.stat(self.work_dir).st_mode))
        self.assertEqual(0o700, stat.S_IMODE(
            os.stat(os.path.dirname(host_file)).st_mode))

    def test_unwritable(self):
        with open(os.path.join(self.root, 'run'), 'w'):
            pass
        self.assertRaises(OSError, hardware_manager.write_ignition, b'{}')


class TestSecretFilter(Base):

    def test_redacts_copy(self):
        step = {'step': 'install_coreos',
                'args': {'ignition': _ignition(), 'append_kargs': ['x'],
                         'image_pull_secret': PULL_SECRET}}
        node = {'instance_info': {'configdrive': {'user_data': MARKER}}}
        record = logging.LogRecord(
            'ironic_python_agent.extensions.deploy', 20, __file__, 1,
            'step %s node %s', (step, [node]), None)
        self.assertTrue(redact.SecretFilter().filter(record))
        text = record.getMessage()
        self.assertNotIn(MARKER, text)
        self.assertIn("'append_kargs': ['x']", text)
        self.assertIn("'ignition': '<hidden>'", text)
        # the objects the agent works with are untouched
        self.assertEqual(_ignition(), step['args']['ignition'])
        self.assertEqual(PULL_SECRET, step['args']['image_pull_secret'])

    def test_dict_args(self):
        record = logging.LogRecord(
            'x', 20, __file__, 1, '%(step)s',
            ({'step': {'args': {'ignition': MARKER}}},), None)
        redact.SecretFilter().filter(record)
        self.assertNotIn(MARKER, record.getMessage())

    def test_every_agent_logger_redacted(self):
        # The manager (created in setUp) redacts the records of every
        # logger of the agent process, IPA's own included.
        self.assertTrue(redact.installed())
        step = {'step': 'install_coreos',
                'args': {'ignition': _ignition(),
                         'image_pull_secret': PULL_SECRET}}
        for name in ('ironic_python_agent.extensions.deploy',
                     'ironic_python_agent.agent',
                     'ironic_python_agent.hardware', 'some.library'):
            logging.getLogger(name).debug('Executing %s', step)
        self.assertIn("'image_pull_secret': '<hidden>'", self.log.output)
        self.assertEqual(4, self.log.output.count('Executing'))
        self.assertNotIn(MARKER, self.log.output)


KEY = ('ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAEBAQEBAQEBAQEBAQEBAQEBAQEBAQE'
       'BAQEBAQEBAQEB user@x')
META_KEY = ('ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAICAgICAgICAgICAgICAgICAg'
            'ICAgICAgICAgICAgIC meta@x')
MAC = '52:54:00:aa:bb:01'
KEYFILE = '/etc/NetworkManager/system-connections/port0.nmconnection'
NETWORK_DATA = {
    'links': [{'id': 'port0', 'type': 'phy',
               'ethernet_mac_address': MAC}],
    'networks': [{'id': 'net0', 'type': 'ipv4', 'link': 'port0',
                  'ip_address': '192.0.2.10', 'netmask': '255.255.255.0',
                  'routes': [{'network': '0.0.0.0', 'netmask': '0.0.0.0',
                              'gateway': '192.0.2.1'}]}],
    'services': [{'type': 'dns', 'address': '192.0.2.53'}],
}


def _user_config(**storage):
    config = {'ignition': {'version': '3.3.0'},
              'passwd': {'users': [{'name': 'core',
                                    'sshAuthorizedKeys': [KEY]}]},
              'storage': {'files': [{'path': '/etc/motd', 'mode': 420,
                                     'contents': {'source': 'data:,hi'}}]}}
    for kind, entries in storage.items():
        config['storage'].setdefault(kind, []).extend(entries)
    return config


def _metal3_drive(config=None, **meta):
    """A config drive as Metal3's baremetal-operator sends it."""
    meta_data = {'uuid': '6a4c8c0b-4ed9-4a63-8a41-6b1d3c5c0a77',
                 'metal3-namespace': 'metal3', 'metal3-name': 'worker-0',
                 'local-hostname': 'worker-0', 'local_hostname': 'worker-0',
                 'name': 'worker-0', 'public_keys': {'k': META_KEY}}
    meta_data.update(meta)
    return {'user_data': json.dumps(config or _user_config()),
            'meta_data': meta_data, 'network_data': NETWORK_DATA}


def _files(config):
    return {f['path']: f for f in config.get('storage', {}).get('files', [])}


def _contents(entry):
    return ignition.decode_data_url(entry['contents']['source'])


@mock.patch.object(hardware_manager, '_is_uefi', autospec=True,
                   return_value=False)
@mock.patch.object(disk, 'release', autospec=True)
@mock.patch.object(hardware_manager.time, 'sleep', autospec=True)
@mock.patch.object(hardware, 'dispatch_to_managers', autospec=True,
                   return_value=DEVICE)
@mock.patch.object(hardware_manager.CoreOSHardwareManager, '_run',
                   autospec=True)
class TestNodeData(Base):
    """The agent merges the config drive's node data (the Metal3 path)."""

    def _install(self, mock_run, drive, **kwargs):
        mock_run.side_effect = self._fake_run([(0, [])])
        self.hwm.install_coreos(_node(configdrive=drive), [], **kwargs)
        return self.seen[0]['content']

    def _fails(self, mock_run, drive, **kwargs):
        exc = self.assertRaises(errors.DeploymentError,
                                self.hwm.install_coreos,
                                _node(configdrive=drive), [], **kwargs)
        mock_run.assert_not_called()
        return str(exc)

    def test_metal3_drive_merged(self, mock_run, *mocks):
        installed = self._install(mock_run, _metal3_drive())
        files = _files(installed)
        self.assertEqual({'/etc/motd', '/etc/hostname', KEYFILE}, set(files))
        self.assertEqual(b'worker-0\n', _contents(files['/etc/hostname']))
        self.assertEqual(0o600, files[KEYFILE]['mode'])
        text = _contents(files[KEYFILE]).decode()
        self.assertIn('mac-address=%s' % MAC.upper(), text)
        self.assertIn('address1=192.0.2.10/24', text)
        self.assertIn('gateway=192.0.2.1', text)
        self.assertIn('dns=192.0.2.53;', text)
        self.assertEqual([KEY, META_KEY],
                         installed['passwd']['users'][0]['sshAuthorizedKeys'])
        # The user's own entries are kept as written.
        self.assertEqual(_user_config()['storage']['files'][0],
                         files['/etc/motd'])
        self.assertIn('host name worker-0 (meta_data "local-hostname")',
                      self.log.output)
        # meta_data keys of no use here are named once, never their values.
        self.assertEqual(1, self.log.output.count('"metal3-namespace"'))
        self.assertIn('"uuid"', self.log.output)
        self.assertNotIn('6a4c8c0b-4ed9-4a63-8a41-6b1d3c5c0a77',
                         self.log.output)

    def test_same_result_as_the_conductor_engine(self, mock_run, *mocks):
        drive = _metal3_drive()
        installed = self._install(mock_run, drive)
        node = nodedata.from_config_drive(configdrive.read(drive))
        self.assertEqual(
            nodedata.merge_into(_user_config(), node, spec.NEWEST_VERSION),
            installed)

    def test_user_hostname_wins(self, mock_run, *mocks):
        own = {'path': '/etc/hostname', 'mode': 420,
               'contents': {'source': 'data:,mine%0A'}}
        installed = self._install(
            mock_run, _metal3_drive(_user_config(files=[own])))
        files = _files(installed)
        self.assertEqual(own, files['/etc/hostname'])
        self.assertIn(KEYFILE, files)
        self.assertIn('$.storage.files[1]: the Ignition config writes '
                      '/etc/hostname itself', self.log.output)
        self.assertNotIn('mine', self.log.output)

    def test_metadata_secret_overrides_hostname(self, mock_run, *mocks):
        installed = self._install(
            mock_run, _metal3_drive(**{'local-hostname': 'w0.example.com'}))
        self.assertEqual(b'w0.example.com\n',
                         _contents(_files(installed)['/etc/hostname']))
        self.assertIn('"local_hostname", "name" differ(s) from '
                      '"local-hostname"', self.log.output)

    def test_options_off(self, mock_run, *mocks):
        self.config(set_hostname=False, convert_network_data=False,
                    group='coreos')
        drive = _metal3_drive()
        del drive['meta_data']['public_keys']
        installed = self._install(mock_run, drive)
        self.assertEqual(_user_config(), installed)
        self.assertIn('meta_data "local-hostname" (the host name) is not '
                      'written to /etc/hostname: [coreos]set_hostname is '
                      'false', self.log.output)
        self.assertIn('the config drive network_data (1 link(s), 1 '
                      'network(s)) is not converted into NetworkManager '
                      'keyfiles: [coreos]convert_network_data is false',
                      self.log.output)
        self.assertNotIn('192.0.2.10', self.log.output)

    def test_ssh_user_option(self, mock_run, *mocks):
        self.config(ssh_user='admin', group='coreos')
        installed = self._install(mock_run, _metal3_drive())
        users = {u['name']: u for u in installed['passwd']['users']}
        self.assertEqual([KEY], users['core']['sshAuthorizedKeys'])
        self.assertEqual([META_KEY], users['admin']['sshAuthorizedKeys'])

    def test_ignition_argument_not_merged_again(self, mock_run, *mocks):
        installed = self._install(mock_run, _metal3_drive(),
                                  ignition=_user_config())
        self.assertEqual(_user_config(), installed)
        self.assertIn('the config drive is not read', self.log.output)

    def test_conflict_names_the_path(self, mock_run, *mocks):
        other = {'path': KEYFILE, 'mode': 0o600,
                 'contents': {'source': 'data:,%5Bconnection%5D%0A'}}
        message = self._fails(mock_run,
                              _metal3_drive(_user_config(files=[other])))
        self.assertIn('$.storage.files[1]', message)
        self.assertIn(KEYFILE, message)
        self.assertIn('cannot be merged', message)

    def test_user_profile_for_the_same_nic(self, mock_run, *mocks):
        own = {'path': '/etc/NetworkManager/system-connections/mine.'
                       'nmconnection', 'mode': 0o600,
               'contents': {'source': merge.data_url(
                   ('[connection]\nid=mine\ntype=ethernet\n\n[ethernet]\n'
                    'mac-address=%s\n' % MAC.upper()).encode())}}
        message = self._fails(mock_run,
                              _metal3_drive(_user_config(files=[own])))
        self.assertIn('mine.nmconnection', message)
        self.assertIn('mac %s' % MAC, message)
        self.assertIn('two profiles for one interface', message)

    def test_bad_network_data(self, mock_run, *mocks):
        drive = _metal3_drive()
        drive['network_data'] = {'links': [{'id': 'p', 'type': 'phy',
                                            'ethernet_mac_address': 'zz'}]}
        message = self._fails(mock_run, drive)
        self.assertIn('network_data cannot be converted', message)
        self.assertIn('ethernet_mac_address', message)
        self.assertIn('convert_network_data', message)

    def test_bad_hostname(self, mock_run, *mocks):
        message = self._fails(mock_run, _metal3_drive(
            **{'local-hostname': 'not a host name'}))
        self.assertIn('hostname', message)
        self.assertIn('not a host name', message)
        self.assertIn('metaData secret', message)

    def _live_keyfile(self, name, mac):
        net_dir = os.path.join(self.root, 'etc', 'NetworkManager',
                               'system-connections')
        os.makedirs(net_dir, exist_ok=True)
        with open(os.path.join(net_dir, name), 'w') as fp:
            fp.write('[connection]\nid=live\ntype=ethernet\n\n[ethernet]\n'
                     'mac-address=%s\n\n[ipv4]\nmethod=auto\n' % mac)

    def test_copy_network_live_profiles_first_boot_only(self, mock_run,
                                                        *mocks):
        self._live_keyfile('live.nmconnection', MAC)
        installed = self._install(mock_run, _metal3_drive(),
                                  copy_network=True)
        self.assertIn(KEYFILE, _files(installed))
        self.assertIn('--copy-network', mock_run.call_args[0][1])
        self.assertIn("copy_network: the live system's keyfiles "
                      "(live.nmconnection) configure the first boot's "
                      "initramfs only; the installed system gets the 1 "
                      "keyfile(s) of the Ignition config (port0."
                      "nmconnection)", self.log.output)

    def test_copy_network_force_persist_same_nic(self, mock_run, *mocks):
        self._live_keyfile('live.nmconnection', MAC)
        message = self._fails(mock_run, _metal3_drive(), copy_network=True,
                              append_kargs=['coreos.force_persist_ip'])
        self.assertIn('live.nmconnection', message)
        self.assertIn(KEYFILE, message)
        self.assertIn('mac %s' % MAC, message)

    def test_copy_network_force_persist_other_nic(self, mock_run, *mocks):
        self._live_keyfile('live.nmconnection', '52:54:00:aa:bb:99')
        installed = self._install(mock_run, _metal3_drive(),
                                  copy_network=True,
                                  append_kargs=['coreos.force_persist_ip'])
        self.assertIn(KEYFILE, _files(installed))
        self.assertIn('no interface is named by both', self.log.output)

    def test_copy_network_without_network_data(self, mock_run, *mocks):
        self._live_keyfile('live.nmconnection', MAC)
        drive = _metal3_drive()
        del drive['network_data']
        installed = self._install(mock_run, drive, copy_network=True)
        self.assertNotIn(KEYFILE, _files(installed))
        self.assertIn('are kept by the installed system', self.log.output)
