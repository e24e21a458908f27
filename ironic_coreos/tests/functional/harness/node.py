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

"""A simulated bare-metal node: namespace, veth, virtual disk, agent.

The node's "machine" is a network namespace joined to the run's bridge by a
veth pair (no default route, IPv6 off), a sparse file on a loop device as
its only disk, and an ironic-python-agent process started inside the
namespace through :mod:`.launch`, which refuses to start it unless every
safety layer is in place.
"""

import configparser
import json
import os
import stat
import subprocess
import sys
import threading
import time

from oslo_log import log

from ironic_coreos.tests.functional.harness import resources

LOG = log.getLogger(__name__)

#: Commands the agent must never really run on a shared machine; the
#: shims only append their argv to shims.log and succeed.
SHIMMED = ('poweroff', 'reboot', 'shutdown', 'halt', 'systemctl',
           'efibootmgr', 'kexec', 'init', 'modprobe', 'mdadm', 'iscsistart',
           'multipath', 'multipathd', 'mpathconf', 'udevadm', 'ipmitool',
           'hwclock', 'chronyc', 'ntpdate', 'hdparm', 'smartctl', 'nvme')

AGENT_PORT = 9999


def write_shims(shim_dir, log_path):
    """Write the logging shims.

    :param shim_dir: directory that goes first on the agent's PATH.
    :param log_path: file receiving one line per shim call.
    """
    os.makedirs(shim_dir, exist_ok=True)
    for name in SHIMMED:
        path = os.path.join(shim_dir, name)
        with open(path, 'w') as f:
            f.write('#!/bin/sh\n'
                    '# ironic-coreos e2e shim: logs instead of acting\n'
                    'printf "%%s\\n" "%s $*" >> "%s"\n'
                    'exit 0\n' % (name, log_path))
        os.chmod(path, 0o755)


class SimNode(object):
    """One simulated node of a run.

    :param harness: the owning Harness.
    :param index: 0-based node number in the run (gives names and IP).
    :param disk_mib: size of the sparse virtual disk.
    """

    def __init__(self, harness, index, disk_mib=128):
        self.harness = harness
        self.registry = harness.registry
        self.index = index
        self.name = 'sim-%s-%d' % (harness.run_id, index)
        self.netns = 'icos-%s-%d' % (harness.run_id, index)
        self.host_veth = 'icv%s%d' % (harness.run_id, index)
        self.ip = harness.node_ip(index)
        self.mac = '52:54:%02x:%02x:%02x:%02x' % (
            int(harness.run_id[:2], 16), int(harness.run_id[2:4], 16),
            (index >> 8) & 0xff, index & 0xff)
        self.dir = os.path.join(harness.state_dir, 'nodes', str(index))
        self.disk_file = os.path.join(self.dir, 'disk.img')
        self.disk_mib = disk_mib
        self.disk = None
        self.uuid = None
        self.auto_agent = True
        self.history = []
        self.agent_starts = 0
        #: time.monotonic() of the last agent start.
        self.agent_started = None
        self.stopping = False
        self._agent = None
        self._agent_rec = None
        self._lock = threading.RLock()
        self.shim_dir = os.path.join(self.dir, 'shims')
        self.agent_log = os.path.join(self.dir, 'agent.log')
        self.agent_conf = os.path.join(self.dir, 'agent.conf')
        self.simhw_conf = os.path.join(self.dir, 'simhw.json')
        self.calls_file = os.path.join(self.dir, 'simhw-calls.jsonl')
        self.shims_log = os.path.join(self.dir, 'shims.log')
        self.standin_state = os.path.join(self.dir, 'standin')

    # -- host side -----------------------------------------------------------

    def create(self):
        """Create namespace, veth, disk, shims and agent configuration."""
        os.makedirs(self.dir)
        os.makedirs(self.standin_state)
        for sub in ('tmp', 'home', 'cache', 'certs', 'work'):
            os.makedirs(os.path.join(self.dir, sub))
        r = resources.run
        self.registry.record('netns', name=self.netns,
                             marker=self.harness.marker)
        r(['ip', 'netns', 'add', self.netns])
        self.registry.record('link', name=self.host_veth)
        r(['ip', 'link', 'add', self.host_veth, 'type', 'veth', 'peer',
           'name', 'eth0', 'netns', self.netns])
        r(['sysctl', '-q', '-w',
           'net.ipv6.conf.%s.disable_ipv6=1' % self.host_veth])
        r(['ip', 'link', 'set', self.host_veth, 'master',
           self.harness.bridge, 'up'])
        ns = ['ip', 'netns', 'exec', self.netns]
        r(ns + ['sysctl', '-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1'])
        r(ns + ['sysctl', '-q', '-w',
                'net.ipv6.conf.default.disable_ipv6=1'])
        r(['ip', '-n', self.netns, 'link', 'set', 'eth0', 'address',
           self.mac])
        r(['ip', '-n', self.netns, 'addr', 'add', '%s/24' % self.ip,
           'dev', 'eth0'])
        r(['ip', '-n', self.netns, 'link', 'set', 'lo', 'up'])
        r(['ip', '-n', self.netns, 'link', 'set', 'eth0', 'up'])
        write_shims(self.shim_dir, self.shims_log)
        self.new_disk()

    def new_disk(self):
        """(Re)create the sparse virtual disk and attach a loop device."""
        if self.disk:
            resources.run(['losetup', '-d', self.disk], check=False)
        with open(self.disk_file, 'wb') as f:
            f.truncate(self.disk_mib * 1024 * 1024)
        rec = self.registry.record('loop', backing_file=self.disk_file)
        out = resources.run(['losetup', '-f', '--show', self.disk_file])
        self.disk = out.stdout.strip()
        self.registry.update(rec, device=self.disk)
        self._write_agent_config()

    def disk_bytes(self, size=1024 * 1024):
        """The first bytes of the virtual disk (to check it is untouched)."""
        with open(self.disk_file, 'rb') as f:
            return f.read(size)

    def disk_is_blank(self):
        """True when nothing was ever written to the virtual disk."""
        with open(self.disk_file, 'rb') as f:
            while True:
                chunk = f.read(4 * 1024 * 1024)
                if not chunk:
                    return True
                if chunk.count(0) != len(chunk):
                    return False

    def _write_agent_config(self):
        h = self.harness
        with open(self.simhw_conf, 'w') as f:
            json.dump({'disk': self.disk,
                       'disk_size': self.disk_mib * 1024 * 1024,
                       'interface': 'eth0', 'mac': self.mac, 'ip': self.ip,
                       'cert_dir': os.path.join(self.dir, 'certs')}, f)
        conf = configparser.ConfigParser(interpolation=None)
        conf.read_dict({
            'DEFAULT': dict({
                'api_url': h.ironic.url,
                'listen_host': self.ip, 'listen_port': str(AGENT_PORT),
                'advertise_host': self.ip,
                'advertise_port': str(AGENT_PORT),
                'lookup_timeout': '300', 'lookup_interval': '1',
                'inspection_collectors': '',
                'disk_wait_attempts': '1', 'disk_wait_delay': '0',
                'hardware_initialization_delay': '0',
                'collect_lldp': 'false',
                'fail_if_clock_not_set': 'false',
                'debug': 'true',
                'use_stderr': 'true',
            }, **h.agent_options),
            'mdns': {'use_mdns': 'false'},
            'coreos': dict({
                'host_root': '/',
                'installer': h.installer or 'coreos-installer',
                'work_dir': os.path.join(self.dir, 'work'),
                'install_retry_delay': '1',
            }, **h.agent_coreos_options),
        })
        with open(self.agent_conf, 'w') as f:
            conf.write(f)

    # -- the agent -----------------------------------------------------------

    def agent_env(self):
        h = self.harness
        path = ':'.join([self.shim_dir, os.path.dirname(sys.executable),
                         '/usr/sbin', '/usr/bin', '/sbin', '/bin'])
        env = {
            'PATH': path,
            'HOME': os.path.join(self.dir, 'home'),
            'TMPDIR': os.path.join(self.dir, 'tmp'),
            'XDG_CACHE_HOME': os.path.join(self.dir, 'cache'),
            'PYTHONPATH': h.site_dir,
            'LANG': 'C.UTF-8',
            'IRONIC_COREOS_SIMHW': self.simhw_conf,
            'IRONIC_COREOS_SIMHW_CALLS': self.calls_file,
            'IRONIC_COREOS_E2E_SHIMS': self.shim_dir,
            'IRONIC_COREOS_E2E_STATE': h.state_dir,
            'IRONIC_COREOS_E2E_NETNS': self.netns,
            'IRONIC_COREOS_E2E_HOST_NETNS': str(
                os.stat('/proc/self/ns/net').st_ino),
            'COREOS_STANDIN_ALLOWED_DEVICES': self.disk,
            'COREOS_STANDIN_STATE': self.standin_state,
        }
        if h.offline_image:
            env['COREOS_STANDIN_OFFLINE_IMAGE'] = h.offline_image
        env[h.marker.split('=', 1)[0]] = h.marker.split('=', 1)[1]
        return env

    def start_agent(self):
        """Start ironic-python-agent inside the namespace.

        :raises: RuntimeError when a safety layer is missing (the launcher
            checks again from inside the namespace and refuses as well).
        """
        with self._lock:
            if self.agent_running:
                return
            self._check_layers()
            rec = self.registry.record('process', name='agent-%d'
                                       % self.index)
            out = open(self.agent_log, 'ab')
            try:
                self._agent = subprocess.Popen(
                    ['ip', 'netns', 'exec', self.netns, sys.executable,
                     '-m', 'ironic_coreos.tests.functional.harness.launch',
                     '--config-file', self.agent_conf],
                    stdout=out, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, env=self.agent_env(),
                    start_new_session=True, cwd=self.dir)
            finally:
                out.close()
            self.registry.update(rec, pid=self._agent.pid,
                                 start_time=resources._proc_start_time(
                                     self._agent.pid))
            self._agent_rec = rec
            self.agent_starts += 1
            self.agent_started = time.monotonic()
            LOG.info('Started agent of node %(node)s (pid %(pid)s)',
                     {'node': self.name, 'pid': self._agent.pid})

    def _check_layers(self):
        problems = []
        if not os.path.exists('/run/netns/%s' % self.netns):
            problems.append('namespace %s missing' % self.netns)
        if not self.disk or not stat.S_ISBLK(os.stat(self.disk).st_mode):
            problems.append('virtual disk %s is not a block device'
                            % self.disk)
        else:
            backing = '/sys/block/%s/loop/backing_file' % os.path.basename(
                self.disk)
            with open(backing) as f:
                if f.read().strip() != self.disk_file:
                    problems.append('%s is not backed by %s'
                                    % (self.disk, self.disk_file))
        for name in SHIMMED:
            if not os.access(os.path.join(self.shim_dir, name), os.X_OK):
                problems.append('shim %s missing' % name)
        if problems:
            raise RuntimeError('refusing to start the agent of %s: %s'
                               % (self.name, '; '.join(problems)))

    @property
    def agent_refused(self):
        """The launcher's refusal message if it refused to start."""
        if self._agent is None or self._agent.poll() != launch_refused():
            return None
        with open(self.agent_log, 'rb') as f:
            lines = f.read().decode('utf-8', 'replace').splitlines()
        return [line for line in lines if 'refusing' in line][-1:]

    @property
    def agent_running(self):
        return self._agent is not None and self._agent.poll() is None

    @property
    def agent_pid(self):
        return self._agent.pid if self._agent is not None else None

    def stop_agent(self, kill=False):
        """Stop the agent (SIGTERM then SIGKILL, or SIGKILL at once)."""
        with self._lock:
            if self._agent is None:
                return
            resources.kill_process(self._agent.pid,
                                   self._agent_rec.get('start_time'),
                                   hard=kill)
            self._agent.poll()
            self.registry.forget(self._agent_rec)
            self._agent = None

    def kill_agent(self):
        """SIGKILL the agent and what it started, like a power loss.

        Also kills whatever of this run still runs in the namespace (the
        installer, should it have left the agent's process group).
        """
        self.stop_agent(kill=True)
        out = resources.run(['ip', 'netns', 'pids', self.netns], check=False)
        for pid in out.stdout.split():
            if resources._env_has(int(pid), self.harness.marker):
                resources.kill_process(int(pid), hard=True)

    # -- what happened ----------------------------------------------------

    def calls(self):
        """Calls neutralised or refused by the simulated hardware."""
        return _read_jsonl(self.calls_file)

    def installer_invocations(self):
        """What the stand-in installer recorded (one dict per run)."""
        return _read_jsonl(os.path.join(self.standin_state,
                                        'invocations.jsonl'))

    def set_faults(self, faults):
        """Configure the stand-in installer's fault injection."""
        path = os.path.join(self.standin_state, 'faults.json')
        if faults is None:
            if os.path.exists(path):
                os.unlink(path)
            return
        with open(path, 'w') as f:
            json.dump(faults, f)

    def logs(self):
        """Text of every log this node's agent wrote."""
        parts = []
        for name in ('agent.log', 'shims.log', 'simhw-calls.jsonl'):
            try:
                with open(os.path.join(self.dir, name), 'rb') as f:
                    parts.append(f.read().decode('utf-8', 'replace'))
            except OSError:
                pass
        return '\n'.join(parts)


def launch_refused():
    from ironic_coreos.tests.functional.harness import launch
    return launch.REFUSED


def _read_jsonl(path):
    try:
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]
    except OSError:
        return []
