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

"""The Ironic service of an end-to-end run: one ``ironic`` process.

API and conductor in one process (``rpc_transport = none``, required with
SQLite), no authentication, every path under the run's state directory,
only fake / noop / no-* interfaces so that no real BMC driver loads.
"""

import configparser
import functools
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

from oslo_log import log

from ironic_coreos.tests.functional.harness import resources

LOG = log.getLogger(__name__)

API_VERSION = 'latest'
BIN = os.path.dirname(sys.executable)


@functools.lru_cache(maxsize=None)
def coreos_interface_loadable():
    """Whether the package's ``coreos`` deploy interface imports cleanly.

    Checked in a separate interpreter so that this process never imports
    ironic (and so that a half-written module cannot break the caller).

    :returns: True when ``CoreOSDeploy`` can be imported.
    """
    code = ('import ironic.conf\n'
            'from ironic_coreos.drivers.modules import coreos\n'
            'coreos.CoreOSDeploy\n')
    try:
        proc = subprocess.run([sys.executable, '-c', code],
                              capture_output=True, timeout=120)
    except subprocess.TimeoutExpired:
        return False
    if proc.returncode != 0:
        LOG.warning('The coreos deploy interface does not load: %s',
                    proc.stderr.decode('utf-8', 'replace')[-500:])
    return proc.returncode == 0


class IronicError(RuntimeError):
    """The Ironic service did something the harness did not expect."""


class Ironic(object):
    """One Ironic API + conductor process with its own database.

    :param registry: the run's resources.Registry.
    :param state_dir: directory for everything Ironic writes.
    :param ip: address on the bridge the agents reach.
    :param port: free TCP port for the API.
    :param deploy_interfaces: enabled deploy interfaces.
    :param callback_timeout: [conductor] deploy_callback_timeout.
    :param extra: {(section, option): value} overrides.
    :param marker: ``NAME=value`` put in the process environment so that
        the run's processes can be found.
    """

    #: The program started by :meth:`start`.
    program = 'ironic'

    def __init__(self, registry, state_dir, ip, port, deploy_interfaces,
                 callback_timeout=60, extra=None, marker=None):
        self.registry = registry
        self.state_dir = state_dir
        self.ip = ip
        self.port = port
        self.url = 'http://%s:%d' % (ip, port)
        self.deploy_interfaces = list(deploy_interfaces)
        self.callback_timeout = callback_timeout
        self.extra = extra or {}
        self.config_file = os.path.join(state_dir, 'ironic.conf')
        self.log_file = os.path.join(state_dir, 'ironic.log')
        self.env = dict(os.environ,
                        XDG_CACHE_HOME=os.path.join(state_dir, 'cache'),
                        HOME=state_dir, TMPDIR=os.path.join(state_dir, 'tmp'))
        if marker:
            name, value = marker.split('=', 1)
            self.env[name] = value
        self._proc = None
        self._record = None
        self.starts = 0

    # -- configuration ----------------------------------------------------

    def write_config(self):
        """Write ironic.conf for this run."""
        sd = self.state_dir
        for sub in ('cache', 'tmp', 'locks', 'certs', 'tftpboot', 'httpboot',
                    'images', 'master_images', 'deploy_logs'):
            os.makedirs(os.path.join(sd, sub), exist_ok=True)
        no = {'bios': 'fake,no-bios', 'console': 'fake,no-console',
              'inspect': 'fake,no-inspect', 'raid': 'fake,no-raid',
              'rescue': 'fake,no-rescue', 'vendor': 'fake,no-vendor',
              'firmware': 'fake,no-firmware'}
        conf = {
            'DEFAULT': {
                'auth_strategy': 'noauth',
                'rpc_transport': 'none',
                'host': 'e2e-conductor',
                'my_ip': self.ip,
                'state_path': sd,
                'tempdir': os.path.join(sd, 'tmp'),
                'debug': 'true',
                'log_file': self.log_file,
                'use_stderr': 'false',
                'enabled_hardware_types': 'fake-hardware',
                'enabled_boot_interfaces': 'fake',
                'enabled_power_interfaces': 'fake',
                'enabled_management_interfaces': 'fake,noop',
                'enabled_network_interfaces': 'noop',
                'enabled_storage_interfaces': 'noop',
                'enabled_deploy_interfaces': ','.join(self.deploy_interfaces),
                'default_deploy_interface': self.deploy_interfaces[0],
            },
            'api': {'host_ip': self.ip, 'port': str(self.port),
                    'api_workers': '1',
                    'ramdisk_heartbeat_timeout': '30'},
            'database': {'connection': 'sqlite:///%s'
                         % os.path.join(sd, 'ironic.sqlite')},
            'conductor': {
                'automated_clean': 'false',
                'deploy_callback_timeout': str(self.callback_timeout),
                'check_provision_state_interval': '5',
                'sync_power_state_interval': '-1',
                'graceful_shutdown_timeout': '5',
                'heartbeat_interval': '5',
                'file_url_allowed_paths': sd,
            },
            'deploy': {'erase_devices_priority': '0',
                       'erase_devices_metadata_priority': '0',
                       'http_root': os.path.join(sd, 'httpboot'),
                       'http_url': 'http://%s:1' % self.ip,
                       'fast_track': 'false'},
            'agent': {'deploy_logs_collect': 'never',
                      'deploy_logs_storage_backend': 'local',
                      'deploy_logs_local_path':
                          os.path.join(sd, 'deploy_logs'),
                      'certificates_path': os.path.join(sd, 'certs'),
                      'command_timeout': '30'},
            'pxe': {'tftp_root': os.path.join(sd, 'tftpboot'),
                    'images_path': os.path.join(sd, 'images'),
                    'instance_master_path':
                        os.path.join(sd, 'master_images')},
            'oslo_concurrency': {'lock_path': os.path.join(sd, 'locks')},
            'service_catalog': {'endpoint_override': self.url},
            'dhcp': {'dhcp_provider': 'none'},
            'coreos': {},
        }
        for iface, value in no.items():
            conf['DEFAULT']['enabled_%s_interfaces' % iface] = value
        for (section, option), value in self.extra.items():
            conf.setdefault(section, {})[option] = str(value)
        parser = configparser.ConfigParser(interpolation=None)
        parser.read_dict(conf)
        with open(self.config_file, 'w') as f:
            parser.write(f)

    def create_schema(self):
        """Create the SQLite database (ironic-dbsync create_schema)."""
        resources.run([os.path.join(BIN, 'ironic-dbsync'), '--config-file',
                       self.config_file, 'create_schema'], timeout=120)

    # -- process ------------------------------------------------------------

    def start(self, timeout=60):
        """Start the ironic process and wait until the API answers.

        :raises: IronicError if it exits or does not serve in time (its
            log tail is in the message).
        """
        rec = self.registry.record('process', name=self.program)
        out = open(os.path.join(self.state_dir, 'ironic.out'), 'ab')
        try:
            self._proc = subprocess.Popen(
                [os.path.join(BIN, self.program), '--config-file',
                 self.config_file],
                stdout=out, stderr=subprocess.STDOUT, env=self.env,
                start_new_session=True, stdin=subprocess.DEVNULL)
        finally:
            out.close()
        self.registry.update(rec, pid=self._proc.pid,
                             start_time=resources._proc_start_time(
                                 self._proc.pid))
        self._record = rec
        self.starts += 1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise IronicError('%s exited with status %s: %s'
                                  % (self.program, self._proc.returncode,
                                     self.log_tail()))
            if self.ready():
                return
            # NOTE: the process keeps running, without serving, when the
            # conductor cannot register its hardware types.
            text = self.log_tail(20000)
            if ('Failed to register hardware types' in text
                    or 'Failed to start keepalive' in text):
                raise IronicError('ironic failed to start: %s' % text[-2000:])
            time.sleep(0.2)
        raise IronicError('%s did not serve within %ss: %s'
                          % (self.program, timeout, self.log_tail()))

    def ready(self):
        """Whether the started process serves (the API lists drivers)."""
        try:
            return bool(self.get('/v1/drivers')['drivers'])
        except (OSError, IronicError):
            return False

    def stop(self):
        """Stop the ironic process (SIGTERM, then SIGKILL)."""
        if self._proc is None:
            return
        resources.stop_recorded(self.registry, self._proc, self._record,
                                grace=15)
        self._proc = None

    def restart(self):
        """Stop and start again on the same database and port."""
        self.stop()
        self.start()

    @property
    def running(self):
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, size=2000):
        """The end of Ironic's log (for error messages)."""
        return resources.log_tail(self.log_file, size)

    # -- REST ---------------------------------------------------------------

    def request(self, method, path, body=None, timeout=30):
        """Call the Ironic REST API.

        :param method: HTTP method.
        :param path: path under the endpoint, e.g. ``/v1/nodes``.
        :param body: JSON-serialisable body or None.
        :returns: the decoded JSON answer (or None when empty).
        :raises: IronicError with the API's error message on HTTP errors.
        """
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.url + path, data=data, method=method,
            headers={'X-OpenStack-Ironic-API-Version': API_VERSION,
                     'Content-Type': 'application/json'})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as e:
            raise IronicError('%s %s: HTTP %s %s'
                              % (method, path, e.code,
                                 e.read().decode('utf-8', 'replace')))
        return json.loads(raw) if raw else None

    def get(self, path):
        return self.request('GET', path)

    def node(self, ident):
        return self.get('/v1/nodes/%s' % ident)

    def states(self):
        """{uuid: (provision_state, target, last_error)} of every node."""
        nodes = self.get('/v1/nodes?fields=uuid,provision_state,'
                         'target_provision_state,last_error')['nodes']
        return {n['uuid']: (n['provision_state'],
                            n['target_provision_state'], n['last_error'])
                for n in nodes}

    # -- CLI ---------------------------------------------------------------

    def cli(self, *args, json_out=False, timeout=120):
        """Run the real ``baremetal`` CLI against this Ironic.

        :param args: the CLI arguments after the global options.
        :param json_out: add ``-f json`` and decode the output.
        :returns: decoded JSON or the stdout text.
        :raises: IronicError with the CLI's stderr when it fails.
        """
        argv = [os.path.join(BIN, 'baremetal'), '--os-endpoint', self.url,
                '--os-auth-type', 'none',
                '--os-baremetal-api-version', 'latest'] + list(args)
        if json_out:
            argv += ['-f', 'json']
        proc = subprocess.run(argv, capture_output=True, timeout=timeout,
                              env=self.env, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise IronicError('baremetal %s failed: %s'
                              % (args[:2], proc.stderr.decode(
                                  'utf-8', 'replace').strip()))
        out = proc.stdout.decode('utf-8', 'replace')
        return json.loads(out) if json_out else out
