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

"""One end-to-end run: a bridge, an Ironic, simulated nodes, a watcher.

Usage::

    with Harness() as h:
        node = h.add_node(deploy_interface='custom-agent')
        h.deploy(node, config_drive={...}, deploy_steps=[...])
        state = h.wait(node)

Everything lives under ``/tmp/ironic-coreos-e2e/<run id>`` and is torn
down on exit, on SIGTERM/SIGHUP and at interpreter exit.
"""

import fcntl
import ipaddress
import json
import os
import socket
import sys
import threading
import time
import uuid

from oslo_log import log

from ironic_coreos.tests.functional.harness import fixtures
from ironic_coreos.tests.functional.harness import ironic as ironic_mod
from ironic_coreos.tests.functional.harness import node as node_mod
from ironic_coreos.tests.functional.harness import resources

LOG = log.getLogger(__name__)

STABLE = ('active', 'deploy failed', 'available', 'manageable', 'error',
          'clean failed')
SIMHW_ENTRY_POINT = ('simulated = ironic_coreos.tests.functional.simhw.'
                     'manager:SimulatedHardwareManager')


def settled(state, target, reservation=None):
    """Whether a node rests in ``state``.

    Failure states keep the target of the failed action (``deploy failed``
    keeps ``active``), the other stable states have none. A node a
    conductor still holds does not rest: on a callback timeout Ironic
    shows ``deploy failed`` first and sets ``last_error`` from the worker
    that then cleans up under the node's lock.
    """
    if reservation:
        return False
    return not target or state.endswith('failed') or state == 'error'


def can_run():
    """Why this machine cannot run the end-to-end tests (None if it can)."""
    if os.geteuid() != 0:
        return 'needs root (network namespaces, loop devices)'
    for tool in ('ip', 'losetup', 'sfdisk', 'debugfs'):
        if not any(os.access(os.path.join(d, tool), os.X_OK)
                   for d in ('/usr/sbin', '/sbin', '/usr/bin', '/bin')):
            return 'needs the %s command' % tool
    return None


def _free_subnet():
    """A link-local /24 not used on this host: 169.254.N.0/24."""
    used = resources.run(['ip', '-4', '-o', 'addr', 'show']).stdout
    for n in range(77, 250):
        if ' 169.254.%d.' % n not in used:
            return n
    raise RuntimeError('no free 169.254.N.0/24 subnet')


def _free_port(ip):
    with socket.socket() as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


def installer_wrapper(bin_dir):
    """The stand-in coreos-installer, if the stand-in package exists."""
    try:
        from ironic_coreos.tests.functional.standin import installer
    except ImportError:
        return None
    return installer.write_wrapper(bin_dir)


def coreos_image(path):
    """Build the stand-in's CoreOS image, if the stand-in exists."""
    try:
        from ironic_coreos.tests.functional.standin import disk
    except ImportError:
        return None
    disk.make_image(path)
    return path


#: Seconds the agents' power-on schedule may fall behind and catch up.
POWER_ON_CATCH_UP = 2.0


class Harness(object):
    """An end-to-end run on this machine.

    :param deploy_interfaces: deploy interfaces to enable; ``coreos`` is
        dropped (with a log message) when the package's interface does not
        load.
    :param callback_timeout: [conductor] deploy_callback_timeout in seconds.
    :param agent_coreos_options: extra ``[coreos]`` options for the agents.
    :param ironic_options: {(section, option): value} for ironic.conf.
    :param keep: keep the state directory (logs) after the run.
    :param agent_options: extra ``[DEFAULT]`` options for the agents (what
        an operator passes as ``ipa-*`` kernel parameters).
    :param power_on_interval: seconds at least between two agent starts, like a
        rack of servers that boot at different times; ``0``: each agent
        starts as soon as its node waits for it.
    """

    def __init__(self, deploy_interfaces=('custom-agent', 'direct', 'fake',
                                          'coreos'),
                 callback_timeout=60, agent_coreos_options=None,
                 ironic_options=None, keep=None, agent_options=None,
                 power_on_interval=0):
        self.run_id = uuid.uuid4().hex[:4]
        self.marker = 'IRONIC_COREOS_E2E_RUN=%s' % self.run_id
        self.state_dir = os.path.join(resources.RUNS_ROOT, self.run_id)
        self.wanted_interfaces = list(deploy_interfaces)
        self.callback_timeout = callback_timeout
        self.agent_coreos_options = dict(agent_coreos_options or {})
        self.ironic_options = dict(ironic_options or {})
        self.agent_options = dict(agent_options or {})
        self.power_on_interval = power_on_interval
        self._next_power_on = 0.0
        if keep is None:
            keep = os.environ.get('IRONIC_COREOS_E2E_KEEP') == '1'
        self.keep = keep
        self.nodes = []
        self.registry = None
        self.ironic = None
        self.installer = None
        self.offline_image = None
        self.site_dir = None
        self.bridge = 'icbr%s' % self.run_id
        self._watcher = None
        self._stop = threading.Event()
        self._node_lock = threading.Lock()
        self.watch_errors = 0
        self.servers = []

    # -- set-up ------------------------------------------------------------

    def start(self):
        """Create the bridge, start Ironic, prepare the agents' files."""
        why = can_run()
        if why:
            raise RuntimeError('cannot run end-to-end: %s' % why)
        resources.sweep_stale()
        os.makedirs(resources.RUNS_ROOT, exist_ok=True)
        os.makedirs(self.state_dir)
        self.registry = resources.Registry(self.state_dir, keep=self.keep)
        resources.guard(self.registry)
        if not self.keep:
            self.registry.record('path', path=self.state_dir)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self):
        self.registry.record('link', name=self.bridge)
        resources.run(['ip', 'link', 'add', self.bridge, 'type', 'bridge'])
        resources.run(['sysctl', '-q', '-w',
                       'net.ipv6.conf.%s.disable_ipv6=1' % self.bridge])
        # Runs may start together: pick and take the subnet under a lock.
        with open(os.path.join(resources.RUNS_ROOT, '.subnet.lock'),
                  'w') as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            subnet = _free_subnet()
            self.net = ipaddress.ip_network('169.254.%d.0/24' % subnet)
            self.host_ip = str(self.net[1])
            resources.run(['ip', 'addr', 'add', '%s/24' % self.host_ip,
                           'dev', self.bridge])
        resources.run(['ip', 'link', 'set', self.bridge, 'up'])
        bin_dir = os.path.join(self.state_dir, 'bin')
        os.makedirs(bin_dir)
        self.installer = installer_wrapper(bin_dir)
        self.offline_image = coreos_image(
            os.path.join(self.state_dir, 'coreos.img'))
        self._write_site_dir()
        interfaces = list(self.wanted_interfaces)
        if 'coreos' in interfaces and not self.coreos_available:
            LOG.warning('The coreos deploy interface does not load; '
                        'running without it')
            interfaces.remove('coreos')
        self.deploy_interfaces = interfaces
        self.ironic = self.make_ironic(interfaces)
        os.makedirs(self.ironic.state_dir)
        self.ironic.write_config()
        self.ironic.create_schema()
        self.ironic.start()
        self._watcher = threading.Thread(target=self._watch, daemon=True,
                                         name='e2e-watcher')
        self._watcher.start()

    def make_ironic(self, interfaces):
        """The run's Ironic service (not started yet)."""
        return ironic_mod.Ironic(
            self.registry, os.path.join(self.state_dir, 'ironic'),
            self.host_ip, _free_port(self.host_ip), interfaces,
            callback_timeout=self.callback_timeout,
            extra=self.ironic_options, marker=self.marker)

    @property
    def coreos_available(self):
        return ironic_mod.coreos_interface_loadable()

    def _write_site_dir(self):
        """A site dir whose dist-info gives the agent the simulated HWM."""
        self.site_dir = os.path.join(self.state_dir, 'site')
        info = os.path.join(self.site_dir,
                            'ironic_coreos_simhw-1.0.dist-info')
        os.makedirs(info)
        with open(os.path.join(info, 'METADATA'), 'w') as f:
            f.write('Metadata-Version: 2.1\nName: ironic-coreos-simhw\n'
                    'Version: 1.0\n')
        with open(os.path.join(info, 'entry_points.txt'), 'w') as f:
            f.write('[ironic_python_agent.hardware_managers]\n%s\n'
                    % SIMHW_ENTRY_POINT)

    def serve(self, directory):
        """Serve ``directory`` over HTTP on the bridge (host side).

        :returns: a started fixtures.ImageServer (stopped by :meth:`stop`).
        """
        server = fixtures.ImageServer(directory, self.host_ip).start()
        self.servers.append(server)
        return server

    def node_ip(self, index):
        return str(self.net[10 + index])

    # -- tear-down -----------------------------------------------------------

    def stop(self):
        """Stop everything and remove everything recorded. Idempotent."""
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=10)
        for server in self.servers:
            server.stop()
        self.servers = []
        for node in self.nodes:
            try:
                node.stop_agent()
            except Exception as e:
                LOG.warning('Stopping agent failed: %s', e)
        if self.ironic is not None:
            try:
                self.ironic.stop()
            except Exception as e:
                LOG.warning('Stopping ironic failed: %s', e)
        if self.registry is not None:
            self.registry.cleanup()
            resources.unguard(self.registry)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- nodes ---------------------------------------------------------------

    def add_node(self, deploy_interface='custom-agent', disk_mib=128,
                 properties=None, driver_info=None, auto_agent=True,
                 management_interface='fake'):
        """Create a simulated node and enroll it to ``available``.

        :param deploy_interface: the node's deploy interface.
        :param disk_mib: virtual disk size.
        :param properties: extra node properties.
        :param driver_info: extra driver_info.
        :param auto_agent: start the agent when the node waits for it.
        :param management_interface: fake, or noop for ``direct``.
        :returns: the SimNode (``uuid`` set).
        """
        with self._node_lock:
            node = node_mod.SimNode(self, len(self.nodes), disk_mib=disk_mib)
            self.nodes.append(node)
        node.auto_agent = auto_agent
        node.create()
        args = ['node', 'create', '--driver', 'fake-hardware',
                '--name', node.name,
                '--deploy-interface', deploy_interface,
                '--boot-interface', 'fake', '--power-interface', 'fake',
                '--management-interface', management_interface,
                '--network-interface', 'noop',
                '--driver-info', 'deploy_forces_oob_reboot=true']
        for key, value in (driver_info or {}).items():
            args += ['--driver-info', '%s=%s' % (key, value)]
        props = {'capabilities': 'boot_mode:bios', 'cpus': '2',
                 'memory_mb': '2048', 'local_gb': str(max(1, disk_mib
                                                          // 1024))}
        props.update(properties or {})
        for key, value in props.items():
            args += ['--property', '%s=%s' % (key, value)]
        created = self.ironic.cli(*args, json_out=True)
        node.uuid = created['uuid']
        self.ironic.cli('port', 'create', node.mac, '--node', node.uuid)
        # The CLI's --wait polls slowly: poll the REST API instead.
        self.ironic.cli('node', 'manage', node.uuid)
        self.wait(node, ('manageable',), timeout=60)
        self.ironic.cli('node', 'provide', node.uuid)
        self.wait(node, ('available',), timeout=60)
        return node

    def deploy(self, node, config_drive=None, deploy_steps=None,
               instance_info=None):
        """``baremetal node deploy`` as a user types it.

        :param node: the SimNode.
        :param config_drive: dict (sent as JSON) or string.
        :param deploy_steps: list of step dicts (sent as JSON).
        :param instance_info: dict set with ``baremetal node set`` first.
        :returns: the monotonic time of the deploy call.
        """
        if instance_info:
            args = ['node', 'set', node.uuid]
            for key, value in instance_info.items():
                if not isinstance(value, str):
                    value = json.dumps(value)
                args += ['--instance-info', '%s=%s' % (key, value)]
            self.ironic.cli(*args)
        args = ['node', 'deploy', node.uuid]
        drive_file = None
        if config_drive is not None:
            if not isinstance(config_drive, str):
                config_drive = json.dumps(config_drive)
            if (len(config_drive) > 65536 or not config_drive.startswith(
                    ('http://', 'https://', '{'))):
                # A pre-rendered (base64) drive, or one too long for a
                # command line argument, is given as a file: the CLI takes
                # any argument with a slash for a path (and reads JSON).
                drive_file = os.path.join(node.dir, 'configdrive.b64')
                fd = os.open(drive_file, os.O_WRONLY | os.O_CREAT
                             | os.O_TRUNC, 0o600)
                with os.fdopen(fd, 'w') as f:
                    f.write(config_drive)
                config_drive = drive_file
            args += ['--config-drive', config_drive]
        if deploy_steps is not None:
            args += ['--deploy-steps', json.dumps(deploy_steps)]
        started = time.monotonic()
        node.deploy_started = started
        try:
            self.ironic.cli(*args)
        finally:
            if drive_file:
                os.unlink(drive_file)
        return started

    def undeploy(self, node, timeout=120):
        """``baremetal node undeploy`` and wait for ``available``."""
        self.ironic.cli('node', 'undeploy', node.uuid)
        return self.wait(node, ('available',), timeout=timeout)

    def wait(self, node, states=('active', 'deploy failed'), timeout=180):
        """Wait until the node rests in one of ``states``.

        :returns: the node as returned by the REST API.
        :raises: AssertionError with the node's last error and the agent
            log tail on timeout.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data = self.ironic.node(node.uuid)
            except (OSError, ironic_mod.IronicError):
                time.sleep(0.5)
                continue
            if data['provision_state'] in states and settled(
                    data['provision_state'],
                    data['target_provision_state'],
                    data.get('reservation')):
                return data
            time.sleep(0.25)
        raise AssertionError(
            'node %s did not reach %s within %ss: state %s, last_error %s; '
            'agent log tail: %s' % (node.name, states, timeout,
                                    data.get('provision_state'),
                                    data.get('last_error'),
                                    node.logs()[-3000:]))

    def wait_state(self, node, state, timeout=120):
        """Wait until the node shows ``state`` (targets allowed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for _t, seen, _target in list(node.history):
                if seen == state:
                    return
            time.sleep(0.1)
        raise AssertionError('node %s never reached %s'
                             % (node.name, state))

    # -- the watcher ------------------------------------------------------

    def _watch(self):
        """Follow every node; start/stop agents as real hardware would."""
        while not self._stop.is_set():
            try:
                states = self.ironic.states()
            except Exception:
                self.watch_errors += 1
                self._stop.wait(0.5)
                continue
            for node in list(self.nodes):
                if node.uuid not in states:
                    continue
                state, target, _err = states[node.uuid]
                if not node.history or node.history[-1][1:] != (state,
                                                                target):
                    node.history.append((time.time(), state, target))
                try:
                    self._drive(node, state, target)
                except Exception as e:
                    LOG.error('Watcher failed on node %(node)s: %(e)s',
                              {'node': node.name, 'e': e})
            self._stop.wait(0.2)

    def _drive(self, node, state, target):
        if state == 'wait call-back' and node.auto_agent:
            if node.agent_refused:
                # Never retry a refused start: a layer is missing.
                return
            if not node.agent_running and self._may_power_on():
                node.start_agent()
        elif state in STABLE and settled(state, target):
            if node.agent_running and not node.stopping:
                # Stopping can take seconds: never hold up other nodes.
                node.stopping = True

                def stop():
                    try:
                        node.stop_agent()
                    finally:
                        node.stopping = False

                threading.Thread(target=stop, daemon=True,
                                 name='e2e-stop-%d' % node.index).start()

    def _may_power_on(self):
        """True when the next agent may start (``power_on_interval``).

        Starts keep to a schedule of one every ``power_on_interval``
        seconds, so a slow pass of the watcher does not lower the rate (up
        to :data:`POWER_ON_CATCH_UP` seconds behind); after a quiet spell
        the schedule starts again from now.
        """
        if not self.power_on_interval:
            return True
        now = time.monotonic()
        if now < self._next_power_on:
            return False
        if self._next_power_on < now - POWER_ON_CATCH_UP:
            self._next_power_on = now
        self._next_power_on += self.power_on_interval
        return True

    # -- inspection helpers -----------------------------------------------

    def all_logs(self):
        """{name: text} of every Ironic and agent log of the run."""
        logs = {}
        for name in ('ironic.log', 'ironic.out'):
            path = os.path.join(self.ironic.state_dir, name)
            if os.path.exists(path):
                with open(path, 'rb') as f:
                    logs[name] = f.read().decode('utf-8', 'replace')
        for node in self.nodes:
            logs['agent-%d' % node.index] = node.logs()
        return logs


def leftovers(run_id=None):
    """What e2e runs (or one run) left on the host.

    :param run_id: only look for what this run created.
    :returns: dict of lists of namespaces, links, loop devices, mounts and
        processes (all empty when the host is clean).
    """
    tag = run_id or ''
    ns = resources.run(['ip', 'netns', 'list'], check=False).stdout
    links = resources.run(['ip', '-o', 'link', 'show'], check=False).stdout
    loops = resources.run(['losetup', '-a'], check=False).stdout
    with open('/proc/mounts') as f:
        mounts = f.read()
    marker = ('IRONIC_COREOS_E2E_RUN=%s' % tag).encode()
    root = os.path.join(resources.RUNS_ROOT, tag)
    procs = []
    for pid in os.listdir('/proc'):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open('/proc/%s/environ' % pid, 'rb') as f:
                env = f.read().split(b'\0')
            with open('/proc/%s/cmdline' % pid, 'rb') as f:
                cmdline = f.read()
        except OSError:
            continue
        # NOTE: Ironic rewrites its process title over its environment;
        # its command line still names the run's config file.
        if any(v.startswith(marker) for v in env) or (
                root.encode() in cmdline):
            procs.append(int(pid))
    link_names = [line.split(':')[1].strip().split('@')[0]
                  for line in links.splitlines()]
    return {
        'netns': [line.split()[0] for line in ns.splitlines()
                  if line.startswith('icos-%s' % tag)],
        'links': [name for name in link_names
                  if name.startswith(('icbr' + tag, 'icv' + tag))],
        'loops': [line for line in loops.splitlines() if root in line],
        'mounts': [line for line in mounts.splitlines() if root in line],
        'processes': procs,
    }


def main_check_clean():
    """Print leftovers and exit 1 if any (``python -m ...core``)."""
    left = leftovers()
    print(json.dumps(left, indent=2))
    return 1 if any(left.values()) else 0


if __name__ == '__main__':
    sys.exit(main_check_clean())
