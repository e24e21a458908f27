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

import io
import os
import socket
import subprocess
from unittest import mock

import fixtures
import testtools

from ironic_coreos.agent import power


class PowerTest(testtools.TestCase):
    """A fake container root and a fake host root in a temp directory."""

    def setUp(self):
        super().setUp()
        tmp = self.useFixture(fixtures.TempDir()).path
        self.root = os.path.join(tmp, 'container')
        self.host = os.path.join(tmp, 'host')
        os.makedirs(os.path.join(self.root, 'run'))
        with open(os.path.join(self.root, 'run/.containerenv'), 'w'):
            pass
        os.makedirs(os.path.join(self.host, 'run/systemd/system'))
        os.makedirs(os.path.join(self.host, 'usr/bin'))
        self.systemctl = os.path.join(self.host, 'usr/bin/systemctl')
        with open(self.systemctl, 'w') as f:
            f.write('#!/bin/sh\n')
        os.chmod(self.systemctl, 0o755)
        self.trigger = os.path.join(tmp, 'sysrq-trigger')
        with open(self.trigger, 'wb'):
            pass
        self.stderr = self.useFixture(
            fixtures.MonkeyPatch('sys.stderr', io.StringIO())).new_value

    def _trigger(self):
        with open(self.trigger, 'rb') as f:
            return f.read()

    def _journal(self):
        """A stand-in for journald's native socket in the host root."""
        path = os.path.join(self.host, power.JOURNAL_SOCKET)
        os.makedirs(os.path.dirname(path))
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(sock.close)
        sock.bind(path)
        sock.setblocking(False)
        return sock

    @staticmethod
    def _entries(sock):
        entries = []
        while True:
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                return entries
            entries.append(dict(line.split('=', 1) for line in
                                data.decode().splitlines()))


class TestCheckEnvironment(PowerTest):

    def test_agent_container_on_live_system(self):
        self.assertEqual('/usr/bin/systemctl',
                         power.check_environment(self.host, self.root))

    def test_systemctl_in_bin(self):
        os.unlink(self.systemctl)
        os.makedirs(os.path.join(self.host, 'bin'))
        path = os.path.join(self.host, 'bin/systemctl')
        with open(path, 'w'):
            pass
        os.chmod(path, 0o755)
        self.assertEqual('/bin/systemctl',
                         power.check_environment(self.host, self.root))

    def test_not_in_container(self):
        os.unlink(os.path.join(self.root, 'run/.containerenv'))
        exc = self.assertRaises(power.Refused, power.check_environment,
                                self.host, self.root)
        self.assertIn('not in a podman container', str(exc))

    def test_no_host_root(self):
        missing = os.path.join(self.host, 'nowhere')
        exc = self.assertRaises(power.Refused, power.check_environment,
                                missing, self.root)
        self.assertIn('the host root %s is missing' % missing, str(exc))
        self.assertIn('/:/mnt/coreos:rbind', str(exc))

    def test_host_root_is_own_root(self):
        os.makedirs(os.path.join(self.root, 'run/systemd/system'))
        exc = self.assertRaises(power.Refused, power.check_environment,
                                self.root, self.root)
        self.assertIn('own root', str(exc))

    def test_host_without_systemd_or_run(self):
        os.rmdir(os.path.join(self.host, 'run/systemd/system'))
        exc = self.assertRaises(power.Refused, power.check_environment,
                                self.host, self.root)
        self.assertIn('no run/systemd/system', str(exc))
        self.assertIn('rbind', str(exc))

    def test_no_systemctl(self):
        os.chmod(self.systemctl, 0o644)
        exc = self.assertRaises(power.Refused, power.check_environment,
                                self.host, self.root)
        self.assertIn('no systemctl in the host root', str(exc))


class TestAskSystemd(PowerTest):

    @mock.patch.object(subprocess, 'run', autospec=True)
    def test_command(self, mock_run):
        mock_run.return_value = subprocess.CompletedProcess([], 0, b'')
        self.assertIsNone(power.ask_systemd('reboot', self.host,
                                            '/usr/bin/systemctl'))
        mock_run.assert_called_once_with(
            ['chroot', self.host, '/usr/bin/systemctl', '--no-block',
             'reboot'],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, timeout=power.SYSTEMCTL_TIMEOUT)

    @mock.patch.object(subprocess, 'run', autospec=True)
    def test_failure(self, mock_run):
        mock_run.return_value = subprocess.CompletedProcess(
            [], 1, b'Failed to connect to bus\n')
        why = power.ask_systemd('poweroff', self.host, '/usr/bin/systemctl')
        self.assertEqual('systemctl poweroff exited with 1: Failed to '
                         'connect to bus', why)

    @mock.patch.object(subprocess, 'run', autospec=True)
    def test_ignored_in_chroot(self, mock_run):
        mock_run.return_value = subprocess.CompletedProcess(
            [], 0, b'Running in chroot, ignoring request.\n')
        why = power.ask_systemd('poweroff', self.host, '/usr/bin/systemctl')
        self.assertIn('ignored the request', why)

    @mock.patch.object(subprocess, 'run', autospec=True)
    def test_timeout(self, mock_run):
        mock_run.side_effect = subprocess.TimeoutExpired(['chroot'], 30)
        why = power.ask_systemd('poweroff', self.host, '/usr/bin/systemctl')
        self.assertEqual('systemctl did not answer in 30 seconds', why)

    @mock.patch.object(subprocess, 'run', autospec=True)
    def test_cannot_run(self, mock_run):
        mock_run.side_effect = FileNotFoundError(2, 'No such file')
        why = power.ask_systemd('poweroff', self.host, '/usr/bin/systemctl')
        self.assertIn('cannot run chroot', why)


class TestRun(PowerTest):

    def _run(self, action, **kwargs):
        self.sleeps = []
        return power.run(action, host_root=self.host, root=self.root,
                         trigger=self.trigger, sleep=self.sleeps.append,
                         **kwargs)

    @mock.patch.object(power, 'ask_systemd', autospec=True)
    def test_systemd_shuts_down(self, mock_ask):
        mock_ask.return_value = None
        # The shutdown stops the container during the wait: the process
        # ends there (here: the fake sleep raises as the signal would).
        self.sleeps = []

        def killed(seconds):
            self.sleeps.append(seconds)
            raise SystemExit(143)

        self.assertRaises(SystemExit, power.run, 'poweroff',
                          host_root=self.host, root=self.root,
                          trigger=self.trigger, sleep=killed, wait=45)
        mock_ask.assert_called_once_with('poweroff', self.host,
                                         '/usr/bin/systemctl')
        self.assertEqual([45], self.sleeps)
        self.assertEqual(b'', self._trigger())
        self.assertIn('shutting down for poweroff', self.stderr.getvalue())

    @mock.patch.object(power, 'ask_systemd', autospec=True)
    def test_tells_the_host_journal(self, mock_ask):
        mock_ask.return_value = None
        journal = self._journal()
        self.useFixture(fixtures.MonkeyPatch(
            'sys.argv', ['/usr/local/sbin/poweroff']))
        self.assertEqual(0, self._run('poweroff', wait=5))
        entries = self._entries(journal)
        self.assertEqual(2, len(entries), entries)
        self.assertEqual({'poweroff'},
                         {e['SYSLOG_IDENTIFIER'] for e in entries})
        self.assertEqual("the live system's systemd is shutting down for "
                         "poweroff; waiting up to 5 seconds",
                         entries[0]['MESSAGE'])
        self.assertIn('still up after 5 seconds', entries[1]['MESSAGE'])

    @mock.patch.object(power, 'ask_systemd', autospec=True)
    def test_still_up_after_wait_uses_sysrq(self, mock_ask):
        mock_ask.return_value = None
        self.assertEqual(0, self._run('reboot', wait=5))
        self.assertEqual([5], self.sleeps)
        self.assertEqual(b'sb', self._trigger())
        self.assertIn('still up after 5 seconds', self.stderr.getvalue())

    @mock.patch.object(power, 'ask_systemd', autospec=True)
    def test_systemd_fails_uses_sysrq(self, mock_ask):
        mock_ask.return_value = 'systemctl did not answer in 30 seconds'
        self.assertEqual(0, self._run('poweroff'))
        self.assertEqual([], self.sleeps)
        self.assertEqual(b'so', self._trigger())
        self.assertIn('poweroff through systemd failed (systemctl did not '
                      'answer in 30 seconds)', self.stderr.getvalue())

    @mock.patch.object(power, 'ask_systemd', autospec=True)
    def test_sysrq_fails(self, mock_ask):
        mock_ask.return_value = 'systemctl poweroff exited with 1: x'
        os.unlink(self.trigger)
        os.mkdir(self.trigger)
        self.assertEqual(1, self._run('poweroff'))
        self.assertIn('poweroff failed: cannot write %s' % self.trigger,
                      self.stderr.getvalue())

    @mock.patch.object(power, 'ask_systemd', autospec=True)
    def test_refuses_outside_container(self, mock_ask):
        os.unlink(os.path.join(self.root, 'run/.containerenv'))
        self.assertEqual(1, self._run('poweroff'))
        mock_ask.assert_not_called()
        self.assertEqual([], self.sleeps)
        self.assertEqual(b'', self._trigger())
        self.assertIn('refusing to poweroff: not in a podman container',
                      self.stderr.getvalue())

    @mock.patch.object(power, 'ask_systemd', autospec=True)
    def test_refusal_leaves_the_host_journal_alone(self, mock_ask):
        journal = self._journal()
        os.unlink(os.path.join(self.root, 'run/.containerenv'))
        self.assertEqual(1, self._run('reboot'))
        mock_ask.assert_not_called()
        self.assertEqual([], self._entries(journal))
        self.assertIn('refusing to reboot', self.stderr.getvalue())


class TestMain(testtools.TestCase):

    @mock.patch.object(power, 'run', autospec=True)
    def test_called_as_poweroff(self, mock_run):
        mock_run.return_value = 0
        self.useFixture(fixtures.MonkeyPatch(
            'sys.argv', ['/usr/local/sbin/poweroff']))
        self.assertEqual(0, power.main())
        mock_run.assert_called_once_with('poweroff',
                                         host_root=power.HOST_ROOT,
                                         wait=power.SHUTDOWN_WAIT)

    @mock.patch.object(power, 'run', autospec=True)
    def test_called_as_reboot(self, mock_run):
        mock_run.return_value = 0
        self.useFixture(fixtures.MonkeyPatch(
            'sys.argv', ['/usr/local/sbin/reboot']))
        self.assertEqual(0, power.main())
        mock_run.assert_called_once_with('reboot', host_root=power.HOST_ROOT,
                                         wait=power.SHUTDOWN_WAIT)

    @mock.patch.object(power, 'run', autospec=True)
    def test_host_power_with_options(self, mock_run):
        mock_run.return_value = 1
        self.assertEqual(1, power.main(['reboot', '--host-root', '/h',
                                        '--wait', '3']))
        mock_run.assert_called_once_with('reboot', host_root='/h', wait=3)

    @mock.patch.object(power, 'run', autospec=True)
    def test_unknown_action_or_bad_wait(self, mock_run):
        stderr = self.useFixture(
            fixtures.MonkeyPatch('sys.stderr', io.StringIO())).new_value
        self.assertRaises(SystemExit, power.main, ['halt'])
        self.assertRaises(SystemExit, power.main, ['poweroff', '--wait',
                                                   '-1'])
        mock_run.assert_not_called()
        self.assertIn("'-1' is not a number of seconds", stderr.getvalue())
