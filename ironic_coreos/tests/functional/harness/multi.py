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

"""Several Ironic conductors on one MariaDB database.

Usage::

    with MultiHarness(conductors=2) as h:
        node = h.add_node(deploy_interface='coreos')
        owner = h.owner(node)              # '169.254.N.2'
        h.deploy(node, config_drive={...})
        h.ironic.conductor(owner).crash()  # SIGSTOP, then SIGKILL, the tree
        h.wait(node)

The database is Debian's ``mariadbd`` with a data directory of its own in
the run's state directory, reached only over a unix socket
(``--skip-networking``: it listens on no address at all). ``ironic-api``
and every ``ironic-conductor`` are separate processes talking json-rpc on
the run's bridge address; each conductor has its own state directory,
lock path and agent certificate path, and, like a conductor on a machine of its
own, has an address of its own on the bridge, json-rpc's default port and
registers under that address. Everything is recorded in the run's
registry before it is created and removed with the run.
"""

import concurrent.futures
import os
import pwd
import secrets
import signal
import subprocess
import time

from oslo_log import log

from ironic_coreos.tests.functional.harness import core
from ironic_coreos.tests.functional.harness import ironic as ironic_mod
from ironic_coreos.tests.functional.harness import resources

LOG = log.getLogger(__name__)

#: Failure detection tuned for tests (Ironic's defaults: 10, 60, 15, 60).
#: A conductor is offline ``heartbeat_timeout`` seconds after its last
#: heartbeat; the rings drop it at their next refresh; the peer clears
#: the dead conductor's reservations on its next orphan check.
FAST_FAILOVER = {
    ('conductor', 'heartbeat_interval'): '2',
    ('conductor', 'heartbeat_timeout'): '10',
    ('DEFAULT', 'hash_ring_reset_interval'): '2',
    ('conductor', 'check_provision_state_interval'): '2',
}


def can_run():
    """Why this machine cannot run several conductors (None if it can)."""
    why = core.can_run()
    if why:
        return why
    for tool in ('/usr/sbin/mariadbd', '/usr/bin/mariadb-install-db',
                 '/usr/bin/mariadb'):
        if not os.access(tool, os.X_OK):
            return 'needs %s (the mariadb-server package)' % tool
    try:
        pwd.getpwnam('mysql')
    except KeyError:
        return 'needs the mysql user (the mariadb-server package)'
    try:
        import pymysql  # noqa: F401
    except ImportError:
        return 'needs PyMySQL'
    return None


def process_tree(pid):
    """``pid`` and every process descending from it, found by parentage.

    A conductor's worker renames itself, so names cannot be trusted; the
    parent links can.
    """
    children = {}
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % entry) as f:
                ppid = int(f.read().rsplit(')', 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    tree = [pid]
    for current in tree:
        tree.extend(children.get(current, ()))
    return tree


def peak_rss_kib(pid):
    """Peak resident memory (VmHWM, KiB) summed over a process tree."""
    total = 0
    for member in process_tree(pid):
        try:
            with open('/proc/%d/status' % member) as f:
                for line in f:
                    if line.startswith('VmHWM:'):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total


class MariaDB(object):
    """A private MariaDB server on a unix socket.

    :param registry: the run's resources.Registry.
    :param state_dir: directory for the data directory, socket and logs.
    :param marker: ``NAME=value`` put in the server's environment.
    """

    #: Durability is not needed for a test database; speed is.
    SERVER_OPTIONS = ['--innodb-buffer-pool-size=64M',
                      '--innodb-log-file-size=16M',
                      '--innodb-flush-log-at-trx-commit=0',
                      '--innodb-flush-method=nosync',
                      '--skip-innodb-doublewrite']

    def __init__(self, registry, state_dir, marker=None):
        self.registry = registry
        self.state_dir = state_dir
        self.data_dir = os.path.join(state_dir, 'data')
        self.socket = os.path.join(state_dir, 'mysqld.sock')
        self.pid_file = os.path.join(state_dir, 'mysqld.pid')
        self.log_file = os.path.join(state_dir, 'mariadb.log')
        self.user = 'ironic'
        # NOTE: a secret of the run: the tests check it never reaches a log.
        self.password = 'db-%s' % secrets.token_hex(12)
        self.env = dict(os.environ, LANG='C.UTF-8')
        if marker:
            name, value = marker.split('=', 1)
            self.env[name] = value
        self._proc = None
        self._record = None

    @property
    def url(self):
        """The SQLAlchemy URL Ironic uses (PyMySQL over the socket)."""
        return ('mysql+pymysql://%s:%s@localhost/ironic?unix_socket=%s'
                '&charset=utf8' % (self.user, self.password, self.socket))

    def _common(self):
        return ['--no-defaults', '--user=mysql',
                '--datadir=%s' % self.data_dir] + self.SERVER_OPTIONS

    def start(self, timeout=120):
        """Create the data directory, start the server, create the DB."""
        os.makedirs(self.state_dir)
        mysql = pwd.getpwnam('mysql')
        os.chown(self.state_dir, mysql.pw_uid, mysql.pw_gid)
        resources.run(['/usr/bin/mariadb-install-db', '--skip-test-db',
                       '--auth-root-authentication-method=socket']
                      + self._common(), timeout=timeout)
        rec = self.registry.record('process', name='mariadbd')
        out = open(os.path.join(self.state_dir, 'mariadbd.out'), 'ab')
        try:
            self._proc = subprocess.Popen(
                ['/usr/sbin/mariadbd'] + self._common()
                + ['--skip-networking', '--socket=%s' % self.socket,
                   '--pid-file=%s' % self.pid_file, '--skip-name-resolve',
                   '--skip-log-bin', '--max-connections=500',
                   '--log-error=%s' % self.log_file],
                stdout=out, stderr=subprocess.STDOUT, env=self.env,
                stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            out.close()
        self.registry.update(rec, pid=self._proc.pid,
                             start_time=resources._proc_start_time(
                                 self._proc.pid))
        self._record = rec
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError('mariadbd did not start: %s'
                                   % self.log_tail())
            time.sleep(0.2)
        # The password goes on stdin, never on a command line.
        self.sql("CREATE DATABASE ironic CHARACTER SET utf8mb3;\n"
                 "CREATE USER '%(u)s'@'localhost' IDENTIFIED BY '%(p)s';\n"
                 "GRANT ALL PRIVILEGES ON ironic.* TO '%(u)s'@'localhost';\n"
                 % {'u': self.user, 'p': self.password})

    def _answers(self):
        if not os.path.exists(self.socket):
            return False
        proc = subprocess.run(self._client() + ['-e', 'SELECT 1'],
                              capture_output=True, timeout=30,
                              stdin=subprocess.DEVNULL)
        return proc.returncode == 0

    def _client(self):
        # root through the socket, authenticated as the OS user root.
        return ['/usr/bin/mariadb', '--no-defaults', '--socket=%s'
                % self.socket, '--user=root', '--batch', '--skip-column-names']

    def sql(self, text):
        """Run SQL as the server's root; returns the output text."""
        proc = resources.run(self._client(), input=text.encode())
        return proc.stdout

    def stop(self):
        """Shut the server down (SIGTERM: a clean shutdown), then SIGKILL."""
        if self._proc is None:
            return
        resources.stop_recorded(self.registry, self._proc, self._record,
                                grace=60)
        self._proc = None

    def log_tail(self, size=2000):
        return resources.log_tail(self.log_file, size)


class Service(ironic_mod.Ironic):
    """One ``ironic-api`` or ``ironic-conductor`` process.

    Shares the REST and CLI helpers of :class:`ironic.Ironic`: ``url`` is
    always the API's (the conductor hands it to the agents).

    :param program: ``ironic-api`` or ``ironic-conductor``.
    :param host: [DEFAULT]host and json-rpc address (the API's by default).
    """

    def __init__(self, registry, state_dir, ip, api_port, interfaces,
                 program, db_url, host=None, callback_timeout=60,
                 extra=None, marker=None, failover=None):
        host = host or ip
        options = dict(FAST_FAILOVER if failover is None else failover)
        options.update({
            ('DEFAULT', 'rpc_transport'): 'json-rpc',
            ('DEFAULT', 'host'): host,
            ('database', 'connection'): db_url,
            ('json_rpc', 'auth_strategy'): 'noauth',
            ('json_rpc', 'auth_type'): 'none',
            ('json_rpc', 'host_ip'): host,
        })
        options.update(extra or {})
        super().__init__(registry, state_dir, ip, api_port, interfaces,
                         callback_timeout=callback_timeout, extra=options,
                         marker=marker)
        self.program = program
        self.base_extra = dict(self.extra)
        #: The name the conductor registers under and the address its
        #: json-rpc server listens on (the default port, 8089).
        self.hostname = host
        self.crashes = 0
        self._started_log_size = 0

    def start(self, timeout=120, extra=None):
        """Start the process; ``extra`` options replace the last ones."""
        if extra is not None:
            self.extra = dict(self.base_extra)
            self.extra.update(extra)
            self.write_config()
        try:
            self._started_log_size = os.path.getsize(self.log_file)
        except OSError:
            self._started_log_size = 0
        return super().start(timeout=timeout)

    def ready(self):
        if self.program == 'ironic-api':
            return super().ready()
        # The conductor says so once it has registered and started its
        # heartbeat; only this start's part of the log counts.
        try:
            with open(self.log_file, 'rb') as f:
                f.seek(self._started_log_size)
                text = f.read()
        except OSError:
            return False
        return (b'Successfully started conductor with hostname'
                in text)

    @property
    def pid(self):
        return self._proc.pid if self._proc is not None else None

    def crash(self):
        """Crash the process like a machine losing power.

        SIGSTOP every process of its tree (found by parentage; nothing can
        react any more), then SIGKILL them all: no graceful shutdown, no
        unregistering, reservations stay in the database.

        :returns: the monotonic time of the kill.
        """
        if self._proc is None:
            raise RuntimeError('%s is not running' % self.program)
        if resources._proc_start_time(self._proc.pid) != self._record.get(
                'start_time'):
            raise RuntimeError('pid %s is no longer %s'
                               % (self._proc.pid, self.program))
        stopped = []
        # Two passes: a process forked while the first pass ran is stopped
        # by the second.
        for _pass in range(2):
            for pid in process_tree(self._proc.pid):
                if pid not in stopped:
                    try:
                        os.kill(pid, signal.SIGSTOP)
                    except ProcessLookupError:
                        continue
                    stopped.append(pid)
        killed_at = time.monotonic()
        for pid in stopped:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._proc.wait(timeout=30)
        deadline = time.monotonic() + 30
        while (any(resources._pid_alive(p) and _not_zombie(p)
                   for p in stopped) and time.monotonic() < deadline):
            time.sleep(0.05)
        self.registry.forget(self._record)
        self._proc = None
        self.crashes += 1
        LOG.info('Crashed %(prog)s %(host)s (pids %(pids)s)',
                 {'prog': self.program, 'host': self.hostname,
                  'pids': stopped})
        return killed_at


def _not_zombie(pid):
    try:
        with open('/proc/%d/stat' % pid) as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except OSError:
        return False


class MultiIronic(ironic_mod.Ironic):
    """MariaDB, ``ironic-api`` and several ``ironic-conductor`` processes.

    Looks like :class:`ironic.Ironic` to the harness: REST and CLI go to
    the API; :meth:`start`, :meth:`stop` and :meth:`restart` act on every
    process.
    """

    def __init__(self, registry, state_dir, ip, port, deploy_interfaces,
                 conductor_ips, callback_timeout=60, extra=None,
                 conductor_extra=None, marker=None, failover=None):
        super().__init__(registry, state_dir, ip, port, deploy_interfaces,
                         callback_timeout=callback_timeout, extra=extra,
                         marker=marker)
        self.db = MariaDB(registry, os.path.join(state_dir, 'mariadb'),
                          marker=marker)
        common = dict(registry=registry, ip=ip, api_port=port,
                      interfaces=deploy_interfaces, db_url=self.db.url,
                      callback_timeout=callback_timeout, marker=marker,
                      failover=failover)
        self.api = Service(state_dir=os.path.join(state_dir, 'api'),
                           program='ironic-api', extra=extra, **common)
        self.conductors = []
        for index, host in enumerate(conductor_ips):
            options = dict(extra or {})
            options.update((conductor_extra or {}).get(index, {}))
            self.conductors.append(Service(
                state_dir=os.path.join(state_dir, 'conductor-%d' % index),
                program='ironic-conductor', host=host, extra=options,
                **common))
        self.services = self.conductors + [self.api]
        self.log_file = self.api.log_file

    def conductor(self, hostname):
        """The conductor Service registered as ``hostname``."""
        for service in self.conductors:
            if service.hostname == hostname:
                return service
        raise KeyError(hostname)

    def write_config(self):
        for service in self.services:
            os.makedirs(service.state_dir, exist_ok=True)
            service.write_config()

    def create_schema(self):
        """Start MariaDB and create Ironic's schema in it."""
        self.db.start()
        self.api.create_schema()

    def start(self, timeout=120):
        # The conductors start side by side; the API once they registered.
        with concurrent.futures.ThreadPoolExecutor(len(self.conductors)) as ex:
            for future in [ex.submit(service.start, timeout=timeout)
                           for service in self.conductors]:
                future.result()
        self.api.start(timeout=timeout)
        self.starts += 1

    def stop(self):
        for service in [self.api] + self.conductors:
            try:
                service.stop()
            except Exception as e:
                LOG.warning('Stopping %(prog)s failed: %(e)s',
                            {'prog': service.program, 'e': e})
        self.db.stop()

    def restart(self):
        """Restart the Ironic services (the database keeps running)."""
        for service in [self.api] + self.conductors:
            service.stop()
        self.start()

    @property
    def running(self):
        return all(service.running for service in self.services)

    def log_tail(self, size=2000):
        return '\n'.join('== %s ==\n%s' % (os.path.basename(
            service.state_dir), service.log_tail(size // 2))
            for service in self.services)

    def log_files(self):
        """{name: path} of every log of the Ironic side and the database."""
        files = {}
        for service in self.services:
            name = os.path.basename(service.state_dir)
            for log_name in ('ironic.log', 'ironic.out'):
                files['%s/%s' % (name, log_name)] = os.path.join(
                    service.state_dir, log_name)
        files['mariadb.log'] = self.db.log_file
        files['mariadbd.out'] = os.path.join(self.db.state_dir,
                                             'mariadbd.out')
        return files

    def online_conductors(self):
        """Host names of the conductors the API lists as alive."""
        return sorted(c['hostname'] for c in
                      self.get('/v1/conductors?fields=hostname,alive'
                               )['conductors'] if c['alive'])


class MultiHarness(core.Harness):
    """:class:`core.Harness` on several conductors and MariaDB.

    :param conductors: number of ``ironic-conductor`` processes.
    :param conductor_extra: {index: {(section, option): value}} for one
        conductor only.
    :param failover: failure detection options instead of
        :data:`FAST_FAILOVER` (``{}``: Ironic's defaults).
    """

    def __init__(self, conductors=2, conductor_extra=None, failover=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.conductor_count = conductors
        self.conductor_extra = conductor_extra or {}
        self.failover = failover

    def start(self):
        why = can_run()
        if why:
            raise RuntimeError('cannot run several conductors: %s' % why)
        return super().start()

    def make_ironic(self, interfaces):
        # One address of the run's bridge per conductor, as if each ran on
        # a machine of its own: every conductor keeps json-rpc's default
        # port and registers under its [DEFAULT]host unchanged.
        ips = [str(self.net[2 + index])
               for index in range(self.conductor_count)]
        for ip in ips:
            resources.run(['ip', 'addr', 'add', '%s/32' % ip, 'dev',
                           self.bridge])
        return MultiIronic(
            self.registry, os.path.join(self.state_dir, 'ironic'),
            self.host_ip, core._free_port(self.host_ip), interfaces,
            conductor_ips=ips,
            callback_timeout=self.callback_timeout,
            extra=self.ironic_options, conductor_extra=self.conductor_extra,
            marker=self.marker, failover=self.failover)

    def owner(self, node):
        """The conductor the API routes the node to (its host name)."""
        return self.ironic.node(node.uuid)['conductor']

    def wait_owner(self, node, hostname, timeout=120):
        """Wait until the API routes the node to ``hostname``.

        :returns: the monotonic time it was first seen.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.owner(node) == hostname:
                    return time.monotonic()
            except (OSError, ironic_mod.IronicError):
                pass
            time.sleep(0.2)
        raise AssertionError('node %s never moved to conductor %s (still '
                             '%s)' % (node.name, hostname, self.owner(node)))

    def all_logs(self):
        logs = {}
        for name, path in self.ironic.log_files().items():
            if os.path.exists(path):
                with open(path, 'rb') as f:
                    logs[name] = f.read().decode('utf-8', 'replace')
        for node in self.nodes:
            logs['agent-%d' % node.index] = node.logs()
        return logs
