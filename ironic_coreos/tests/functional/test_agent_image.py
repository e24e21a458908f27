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

"""The agent image (tools/build-agent-image.sh), built and run here.

The agent runs as the live system's unit starts it, with what could touch
this host taken out: no ``--privileged``, no host ``/dev``, ``/sys`` or
network, a temporary directory as the host root, a network namespace of
the test's own with a dummy interface (no route anywhere). The image's
``poweroff`` runs in a user namespace, against a fake host root with a
stand-in ``systemctl``: it cannot reach this host's systemd or its SysRq
trigger (read-only in a container, and owned by a user the container's
root is not).
"""

import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid

import testtools

from ironic_coreos.cmd import live_ignition
from ironic_coreos.tests.functional.harness import agent_image

podman = agent_image.podman

# Options of the live unit's podman run that would reach this host.
_UNSAFE_FLAGS = {'--privileged'}
_UNSAFE_OPTIONS = {'--network', '--pid', '--ipc'}
_UNSAFE_VOLUMES = {'/dev:/dev', '/sys:/sys', '/run/udev:/run/udev'}

INSTALLER_STANDIN = ('#!/bin/sh\n'
                     'echo "coreos-installer stand-in: not an installer" >&2\n'
                     'exit 1\n')
# The agent's API inside the test's network namespace.
API = 'http://127.0.0.1:9999'
# The agent takes commands with its token only (Ironic hands it one at
# lookup; here the configuration does).
TOKEN = uuid.uuid4().hex


def contained(argv, name, netns, host_root, conf_dir):
    """The live unit's podman run argv, made safe for this host.

    Keeps the unit's image, command and options but for what reaches the
    host: no --privileged, no host network, PID or IPC namespace, no host
    /dev, /sys or /run/udev; the host root and the configuration are the
    test's directories; the container runs detached in ``netns``. The
    unit's log driver (``passthrough``: the agent's output goes to the
    unit, so to the live system's journal) has nobody to hand the output
    to in a detached container, and would keep podman's own output open:
    here podman keeps it in its log file, for ``podman logs``.
    """
    assert argv[:2] == ['/usr/bin/podman', 'run'], argv
    out = ['run', '--detach', '--network', 'ns:' + netns,
           '--log-driver', 'k8s-file']
    args = iter(argv[2:])
    for arg in args:
        if arg == '--log-driver':
            next(args)
            continue
        if arg.startswith('--log-driver='):
            continue
        if arg in _UNSAFE_FLAGS:
            continue
        if arg in _UNSAFE_OPTIONS:
            next(args)
            continue
        if arg == '--name':
            out += ['--name', name]
            next(args)
            continue
        if arg == '--volume':
            volume = next(args)
            if volume in _UNSAFE_VOLUMES:
                continue
            if volume.startswith('/:'):
                volume = host_root + volume[1:]
            elif volume.startswith(live_ignition.CONF_DIR + ':'):
                volume = conf_dir + volume[len(live_ignition.CONF_DIR):]
            else:
                raise AssertionError('unexpected volume %s' % volume)
            out += ['--volume', volume]
            continue
        out.append(arg)
    return out


class AgentImageTest(testtools.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.why = agent_image.unavailable_reason()
        if not cls.why:
            cls.image = agent_image.build()

    def setUp(self):
        super().setUp()
        if self.why:
            self.skipTest(self.why)
        self.tmp = tempfile.mkdtemp(prefix='ic-agent-image-')
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)


class TestImage(AgentImageTest):

    def test_agent_version(self):
        proc = podman('run', '--rm', '--network', 'none', self.image.tag,
                      'ironic-python-agent', '--version')
        self.assertRegex(proc.stdout.strip(),
                         r'^ironic-python-agent 13\.0\.0 '
                         r'\(ironic-coreos [0-9][^)]*\)$')

    def test_has_the_tools_the_agent_runs(self):
        # What ironic-python-agent's deploy and clean steps execute (fuser
        # was missing once: erase_devices_metadata failed in a VM).
        tools = ('fuser', 'lsblk', 'blkid', 'wipefs', 'sgdisk', 'parted',
                 'partprobe', 'mdadm', 'efibootmgr', 'qemu-img', 'udevadm',
                 'dd', 'sync')
        script = ('import shutil, sys\n'
                  'print(" ".join(t for t in sys.argv[1:] '
                  'if not shutil.which(t)))\n')
        proc = podman('run', '--rm', '--network', 'none', self.image.tag,
                      'python3', '-c', script, *tools)
        self.assertEqual('', proc.stdout.strip())

    def test_no_build_tools_or_docs(self):
        # Run time only: no pip, compilers, package caches, docs, locales.
        script = ('import glob, shutil\n'
                  'found = [p for p in ("pip", "pip3", "gcc", "cc", "apt",'
                  ' "perl", "make") if shutil.which(p)]\n'
                  'found += glob.glob("/opt/ironic-agent/lib/python3*/'
                  'site-packages/pip")\n'
                  'found += glob.glob("/opt/ironic-agent/lib/python3*/'
                  'site-packages/*/tests")\n'
                  'found += glob.glob("/usr/share/doc/*/[!c]*")\n'
                  'found += glob.glob("/usr/share/man/*")\n'
                  'found += glob.glob("/usr/share/locale/*")\n'
                  'found += glob.glob("/var/lib/apt/lists/*")\n'
                  'print("\\n".join(found))\n')
        proc = podman('run', '--rm', '--network', 'none', self.image.tag,
                      'python3', '-c', script)
        self.assertEqual('', proc.stdout.strip())

    def test_archive_holds_the_image(self):
        proc = subprocess.run(['tar', '-tf', self.image.archive],
                              capture_output=True, text=True, check=True)
        names = proc.stdout.split()
        self.assertIn('index.json', names)
        self.assertIn('oci-layout', names)
        inspect = json.loads(podman('image', 'inspect',
                                    self.image.tag).stdout)[0]
        self.assertEqual(
            self.image.key,
            inspect['Labels']['io.openstack.ironic-coreos.image-key'])


class TestAgentInContainer(AgentImageTest):
    """ironic-python-agent started as the live unit starts it."""

    def setUp(self):
        super().setUp()
        self.host_root = os.path.join(self.tmp, 'host')
        os.makedirs(os.path.join(self.host_root, 'usr/bin'))
        self.conf_dir = os.path.join(self.tmp, 'conf')
        os.makedirs(self.conf_dir)
        options = [('DEFAULT', 'agent_token', TOKEN),
                   ('DEFAULT', 'disk_wait_attempts', '1'),
                   ('DEFAULT', 'disk_wait_delay', '0'),
                   ('DEFAULT', 'debug', 'true')]
        with open(os.path.join(self.conf_dir,
                               'ironic-python-agent.conf'), 'wb') as f:
            # No API URL: the agent looks nothing up and serves its API.
            f.write(live_ignition.agent_config(None, options))
        self.netns = 'ic-agent-%s' % uuid.uuid4().hex[:8]
        subprocess.run(['ip', 'netns', 'add', self.netns], check=True)
        self.addCleanup(subprocess.run, ['ip', 'netns', 'delete',
                                         self.netns])
        # A NIC with a MAC address, so the agent does not wait for one:
        # both ends of a veth pair in the namespace, no address, no route.
        for cmd in (['link', 'add', 'eth0', 'type', 'veth', 'peer', 'name',
                     'eth1'],
                    ['link', 'set', 'eth0', 'up'],
                    ['link', 'set', 'eth1', 'up'],
                    ['link', 'set', 'lo', 'up']):
            subprocess.run(['ip', '-n', self.netns] + cmd, check=True)
        self.name = 'ic-agent-test-%s' % uuid.uuid4().hex[:8]

    def _start(self):
        argv = contained(live_ignition.podman_command(self.image.tag),
                         self.name, '/run/netns/' + self.netns,
                         self.host_root, self.conf_dir)
        for unsafe in ('--privileged', '/dev:/dev', '/sys:/sys', 'host'):
            self.assertNotIn(unsafe, argv)
        # Removed also when podman run fails or times out after creating it.
        self.addCleanup(podman, 'rm', '--force', '--time', '0', self.name,
                        check=False)
        podman(*argv)

    def _call(self, name, params, timeout=180):
        """Call an agent command through its API, inside the container."""
        script = (
            'import json, sys, time, urllib.error, urllib.request\n'
            'body = json.dumps({"name": sys.argv[1],'
            ' "params": json.loads(sys.argv[2])}).encode()\n'
            'deadline = time.monotonic() + %d\n'
            'while True:\n'
            '    try:\n'
            '        req = urllib.request.Request("%s/v1/commands/?wait=true'
            '&agent_token=%s", body, {"Content-Type": "application/json"})\n'
            '        print(urllib.request.urlopen(req, timeout=60).read()'
            '.decode())\n'
            '        break\n'
            '    except urllib.error.HTTPError:\n'
            '        raise\n'
            '    except OSError:\n'
            '        if time.monotonic() > deadline:\n'
            '            raise\n'
            '        time.sleep(1)\n' % (timeout, API, TOKEN))
        proc = podman('exec', self.name, 'python3', '-c', script, name,
                      json.dumps(params), timeout=timeout + 60, check=False)
        if proc.returncode != 0:
            self.fail('agent call %s failed: %s\nagent log:\n%s'
                      % (name, proc.stderr, self._logs()))
        return json.loads(proc.stdout)

    def _logs(self):
        proc = podman('logs', self.name, check=False)
        return proc.stdout + proc.stderr

    def _deploy_steps(self):
        node = {'uuid': str(uuid.uuid4()), 'properties': {},
                'instance_info': {}, 'driver_internal_info': {}}
        result = self._call('deploy.get_deploy_steps',
                            {'node': node, 'ports': []})
        self.assertEqual('SUCCEEDED', result['command_status'],
                         result.get('command_error'))
        return result['command_result']['deploy_steps']

    def test_offers_install_coreos_with_the_installer(self):
        installer = os.path.join(self.host_root, 'usr/bin/coreos-installer')
        with open(installer, 'w') as f:
            f.write(INSTALLER_STANDIN)
        os.chmod(installer, 0o755)
        self._start()
        steps = self._deploy_steps()
        self.assertIn('CoreOSHardwareManager', steps)
        self.assertEqual(['install_coreos'],
                         [s['step'] for s in steps['CoreOSHardwareManager']])
        self.assertIn('Found /mnt/coreos/usr/bin/coreos-installer: the '
                      'install_coreos deploy step is offered', self._logs())

    def test_says_why_without_the_installer(self):
        self._start()
        steps = self._deploy_steps()
        self.assertNotIn('CoreOSHardwareManager', steps)
        self.assertIn('GenericHardwareManager', steps)
        self.assertIn('coreos-installer not found in the host root '
                      '/mnt/coreos (set [coreos]host_root and '
                      '[coreos]installer): the install_coreos deploy step '
                      'is not offered', self._logs())


class TestPowerOff(AgentImageTest):
    """The image's poweroff and reboot against a fake live system."""

    def setUp(self):
        super().setUp()
        self.host_root = os.path.join(self.tmp, 'host')
        os.makedirs(os.path.join(self.host_root, 'run/systemd/system'))
        # A shell in the fake root for the stand-in systemctl.
        for path in ('/usr/bin/dash', '/lib/x86_64-linux-gnu/libc.so.6',
                     '/lib64/ld-linux-x86-64.so.2'):
            target = os.path.join(self.host_root, path.lstrip('/'))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copy(os.path.realpath(path), target)
        os.makedirs(os.path.join(self.host_root, 'bin'))
        os.symlink('/usr/bin/dash', os.path.join(self.host_root, 'bin/sh'))
        self.calls = os.path.join(self.host_root, 'calls')
        os.makedirs(self.calls)
        os.chmod(self.calls, 0o777)
        for path in (self.tmp, self.host_root):
            os.chmod(path, 0o755)

    def _systemctl(self, body):
        path = os.path.join(self.host_root, 'usr/bin/systemctl')
        with open(path, 'w') as f:
            f.write('#!/bin/sh\necho "$@" >> /calls/systemctl\n' + body)
        os.chmod(path, 0o755)

    def _run(self, command):
        # A user namespace: the container's root is an unprivileged user
        # of this host, and podman hides /proc/sysrq-trigger from it.
        # The command runs below a shell, as below the agent (PID 1 would
        # ignore the SIGTERM of the shutdown).
        return podman('run', '--rm', '--network', 'none',
                      '--uidmap', '0:200000:65536',
                      '--gidmap', '0:200000:65536',
                      '--cap-drop', 'all', '--cap-add', 'sys_chroot',
                      '--volume', '%s:/mnt/coreos:rbind' % self.host_root,
                      self.image.tag, 'sh', '-c', '%s; exit $?' % command,
                      check=False, timeout=600)

    def _recorded(self):
        path = os.path.join(self.calls, 'systemctl')
        if not os.path.exists(path):
            return []
        with open(path) as f:
            return f.read().splitlines()

    def test_poweroff_asks_the_hosts_systemd(self):
        # As systemd does when it stops the live system's units: the
        # container's processes get SIGTERM.
        self._systemctl('kill -TERM $PPID\n')
        proc = self._run('poweroff')
        self.assertEqual(['--no-block poweroff'], self._recorded())
        self.assertNotIn('SysRq', proc.stderr)
        self.assertNotIn('refusing', proc.stderr)
        self.assertEqual(143, proc.returncode, proc.stderr)

    def test_reboot_asks_the_hosts_systemd(self):
        self._systemctl('kill -TERM $PPID\n')
        proc = self._run('reboot')
        self.assertEqual(['--no-block reboot'], self._recorded())
        self.assertEqual(143, proc.returncode, proc.stderr)

    def test_failed_systemctl_falls_back_to_sysrq(self):
        self._systemctl('echo "Failed to connect to bus" >&2\nexit 1\n')
        start = time.monotonic()
        proc = self._run('poweroff')
        self.assertLess(time.monotonic() - start, 120)
        self.assertEqual(['--no-block poweroff'], self._recorded())
        self.assertIn('poweroff through systemd failed (systemctl poweroff '
                      'exited with 1: Failed to connect to bus); poweroff '
                      'through SysRq', proc.stderr)
        # SysRq is out of the container's reach here.
        self.assertIn('poweroff failed: cannot write /proc/sysrq-trigger',
                      proc.stderr)
        self.assertNotIn('waiting', proc.stderr)
        self.assertEqual(1, proc.returncode)

    def test_refuses_without_a_live_system(self):
        self._systemctl('exit 0\n')
        shutil.rmtree(os.path.join(self.host_root, 'run'))
        proc = self._run('poweroff')
        self.assertEqual(1, proc.returncode)
        self.assertIn('refusing to poweroff: systemd does not run the host '
                      'at /mnt/coreos', proc.stderr)
        self.assertEqual([], self._recorded())
