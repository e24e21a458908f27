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
"""The agent in its container powers off and reboots the live system.

``tox -e vmlab``. At the end of a deployment Ironic's ``tear_down_agent``
asks the agent for ``standby.power_off``; the agent runs the image's
``poweroff`` (``ironic_coreos.agent.power``), which asks the live system's
systemd. The first scenario deploys one VM and checks, from the live
system's own journal (streamed over SSH while it runs), libvirt's log of
the VM and Ironic's log, that the VM turned itself off through systemd
within Ironic's wait for a soft power-off (its default, 30 s):
no forced power-off. The second leaves the agent up after a
fast-track cleaning, sends it the in-band reboot of Ironic's ``agent``
power interface (``standby.run_image``: the image's ``reboot``) and checks
that the VM restarted through systemd without being powered off. Seconds are
printed, not asserted.
"""

import datetime
import json
import os
import re
import sqlite3
import ssl
import subprocess
import threading
import time
import urllib.parse
import urllib.request

import testtools

from ironic_coreos.tests.functional.vmlab import lab as lab_mod
from ironic_coreos.tests.functional.vmlab import netns
from ironic_coreos.tests.functional.vmlab import scenario
from ironic_coreos.tests.functional.vmlab import test_vm_deploy

HOSTNAME = 'vmlab-power-0'
REBOOTED = 'reboot: Restarting system'
#: libvirt's time stamps (UTC).
LIBVIRT_TIME = '%Y-%m-%d %H:%M:%S.%f'


def ironic_times(log, needle):
    """Wall times (epoch seconds) of Ironic's log lines holding needle."""
    times = (scenario.ironic_time(line) for line in log.splitlines()
             if needle in line)
    return [t for t in times if t is not None]


def guest_shutdowns(qemu_log):
    """Wall times the VM turned itself off (libvirt's qemu log).

    libvirt writes ``shutting down, reason=shutdown`` when the guest
    powered off by itself, ``reason=destroyed`` when the BMC forced it.
    """
    times = []
    for m in re.finditer(r'^(\S+ \S+)\+0000: shutting down, reason=(\w+)',
                         qemu_log, re.M):
        wall = datetime.datetime.strptime(
            m.group(1), LIBVIRT_TIME).replace(
                tzinfo=datetime.timezone.utc).timestamp()
        times.append((wall, m.group(2)))
    return times


class Journal(object):
    """The live system's journal, followed over SSH while it runs.

    The stream ends when the live system shuts down (SSH goes with it).
    """

    COMMAND = ['sudo', 'journalctl', '--follow', '--lines=all',
               '--output=short-unix', '--no-pager']

    def __init__(self, setup, vm, path):
        self.setup = setup
        self.vm = vm
        self.path = path
        self.proc = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name='vmlab-journal')

    def start(self):
        self._thread.start()
        return self

    def _run(self):
        lab = self.setup.lab
        # Wait for the live system's sshd (the key of live.pub).
        while not self._stop.is_set():
            try:
                proc = lab.ssh(self.vm, self.vm.ip, ['true'], self.setup.key,
                               timeout=20)
                if proc.returncode == 0:
                    break
            except Exception:
                pass
            self._stop.wait(3)
        if self._stop.is_set():
            return
        with open(self.path, 'wb') as out:
            self.proc = lab.ssh_stream(self.vm.ip, self.COMMAND,
                                       self.setup.key, stdout=out,
                                       stderr=subprocess.STDOUT)
            self.proc.wait()

    def stop(self):
        self._stop.set()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._thread.join(timeout=30)

    def text(self):
        try:
            with open(self.path, errors='replace') as f:
                return f.read()
        except OSError:
            return ''


class VMPowerTest(test_vm_deploy.VMTestCase):
    """One VM; the agent powers the live system off at the tear-down."""

    def qemu_log(self, vm):
        path = self.lab.path('libvirt', 'var_log_libvirt', 'qemu',
                             '%s.log' % vm.name)
        with open(path, errors='replace') as f:
            return f.read()

    def journal(self, vm):
        journal = Journal(self.setup, vm, os.path.join(vm.dir,
                                                       'live-journal.txt'))
        self.addDetail('live-journal', testtools.content.Content(
            testtools.content_type.UTF8_TEXT,
            lambda: [journal.text()[-60000:].encode()]))
        self.addDetail('console', test_vm_deploy.console_detail(vm))
        return journal

    def assertShutDownBySystemd(self, console, how):
        """The console shows systemd's shutdown, not the SysRq fallback."""
        self.assertRegex(console, r'systemd-shutdown\[1\]: %s' % how,
                         console[-3000:])
        self.assertNotRegex(console, r'sysrq: (Power Off|Resetting)',
                            console[-3000:])

    def agent_of(self, vm):
        """The agent's URL and token, as Ironic keeps them for the node."""
        db = sqlite3.connect(os.path.join(self.lab.ironic.state_dir,
                                          'ironic.sqlite'))
        try:
            row = db.execute('SELECT driver_internal_info FROM nodes '
                             'WHERE uuid = ?', (vm.node,)).fetchone()
        finally:
            db.close()
        info = json.loads(row[0] or '{}')
        self.assertIn('agent_url', info, 'the agent of %s is not known to '
                      'Ironic: %s' % (vm.name, sorted(info)))
        self.assertIn('agent_secret_token', info)
        return (info['agent_url'], info['agent_secret_token'],
                info.get('agent_verify_ca'))

    def agent_command(self, agent, name):
        """Send an agent command the way Ironic's AgentClient does.

        The agent's automatic TLS certificate is checked against the one it
        gave Ironic at the lookup (Ironic keeps it in a file).
        """
        url, token, ca_file = agent
        context = (ssl.create_default_context(cafile=ca_file)
                   if ca_file else None)
        query = urllib.parse.urlencode({'wait': 'false',
                                        'agent_token': token})
        req = urllib.request.Request(
            '%s/v1/commands/?%s' % (url.rstrip('/'), query),
            data=json.dumps({'name': name, 'params': {}}).encode(),
            method='POST', headers={'Content-Type': 'application/json'})
        with netns.inside(self.lab.netns):
            with urllib.request.urlopen(req, timeout=60,
                                        context=context) as resp:
                return resp.status, json.loads(resp.read() or b'{}')

    def test_reboot_through_the_agent(self):
        vm = self.lab.vms[0]
        cli = self.lab.ironic.cli
        self.setup.enroll(vm, 'coreos', automated_clean=False)
        self.addCleanup(self.forget, vm)
        # Cleaning boots the live system; with fast track the agent stays
        # up afterwards and the node rests in available.
        cli('node', 'manage', vm.node)
        self.lab.wait(vm, ('manageable',), timeout=120)
        cli('node', 'set', vm.node, '--driver-info', 'fast_track=True',
            '--automated-clean')
        journal = self.journal(vm)
        journal.start()
        self.addCleanup(journal.stop)
        cli('node', 'provide', vm.node)
        data = self.lab.wait(vm, ('available', 'clean failed'),
                             timeout=1500)
        self.assertEqual('available', data['provision_state'],
                         'last_error: %s' % data['last_error'])
        # NOTE: Ironic's agent power interface sends standby.run_image for
        # an in-band reboot, but Ironic 39.0.0's node_power_action wipes
        # the agent's URL and token before it calls the power interface
        # ("Agent driver requires agent_url in driver_internal_info"), so
        # the test sends that command itself, to the agent Ironic knows.
        agent = self.agent_of(vm)
        boots = vm.console_text().count(REBOOTED)
        asked = time.time()
        status, result = self.agent_command(agent, 'standby.run_image')
        self.assertEqual(200, status, result)
        self.assertEqual('run_image', result.get('command_name'), result)
        self.assertNotEqual('FAILED', result.get('command_status'), result)
        lab_mod.wait_for(
            'the live system of %s to restart' % vm.name,
            lambda: vm.console_text().count(REBOOTED) > boots, 600,
            interval=2, detail=lambda: lab_mod.tail(vm.console, 3000))
        seconds = time.time() - asked
        # systemd restarted it: a clean shutdown, then the kernel's reboot;
        # the VM itself never went off.
        console = vm.console_text()
        tail = console[console.rfind('Reached target'):]
        self.assertRegex(console, r'systemd-shutdown\[1\]: Rebooting')
        self.assertEqual([], [t for t, _why in guest_shutdowns(
            self.qemu_log(vm)) if t >= asked], tail[-2000:])
        self.assertShutDownBySystemd(console, 'Rebooting')
        rebooting = [line for line in journal.text().splitlines()
                     if 'Rebooting system' in line]
        self.assertEqual(1, len(rebooting), rebooting)
        self.setup.say('in-band reboot: standby.run_image -> the kernel\'s '
                       'restart %.1fs later, through systemd' % seconds)

    def forget(self, vm):
        """Power the VM off through Redfish and delete its node."""
        if vm.node is None:
            return
        self.lab.ironic.cli('node', 'maintenance', 'set', vm.node)
        self.lab.virsh('destroy', vm.name, check=False, quiet=True)
        self.lab.ironic.cli('node', 'delete', vm.node)
        vm.node = None
        vm.history.clear()

    def test_teardown_powers_off_through_the_agent(self):
        vm = self.lab.vms[0]
        self.setup.enroll(vm, 'coreos', automated_clean=False)
        journal = self.journal(vm)
        log_mark = len(self.lab.ironic.log_tail(50 << 20))
        console_mark = len(vm.console_text())
        dep = scenario.Deployment(self.setup, vm)
        journal.start()
        try:
            dep.deploy(config_drive=scenario.iso_drive(self.setup, vm,
                                                       HOSTNAME),
                       probe=False)
            data = dep.wait()
        finally:
            journal.stop()
        self.assertEqual('active', data['provision_state'],
                         'last_error: %s' % data['last_error'])
        log = self.lab.ironic.log_tail(50 << 20)[log_mark:]
        asked = ironic_times(log, 'Executing agent command standby.power_off '
                             'for node %s' % vm.node)
        self.assertEqual(1, len(asked), 'standby.power_off sent %d times'
                         % len(asked))
        # Ironic's soft power-off succeeded: no forced power-off.
        self.assertNotIn('Failed to soft power off', log)
        self.assertNotIn('Forcing hard power off', log)
        self.assertEqual([], ironic_times(
            log, 'Command failed: power_off'))
        # The VM turned itself off (not ForceOff) after the command.
        offs = [(t, why) for t, why in guest_shutdowns(self.qemu_log(vm))
                if t >= asked[0]]
        self.assertTrue(offs, 'the VM never shut down after %s'
                        % asked[0])
        self.assertEqual('shutdown', offs[0][1],
                         'the VM was forced off, not shut down by itself')
        seconds = offs[0][0] - asked[0]
        # The live system's systemd did it, asked by the image's poweroff
        # (its SSH session, and the journal stream with it, ends before
        # the image's own journal line arrives: the console has it all).
        self.assertShutDownBySystemd(vm.console_text()[console_mark:],
                                     'Powering off')
        text = journal.text()
        # Each agent line reaches the journal once (passthrough log
        # driver, not conmon's journald copy as well).
        powering = [line for line in text.splitlines()
                    if 'Powering off system' in line]
        self.assertEqual(1, len(powering), powering)
        self.setup.say('tear-down: standby.power_off -> the VM off by '
                       'itself in %.1fs (%s)' % (seconds, dep.report()))
