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

"""A Redfish BMC for simulated nodes: sushy-emulator with its fake driver.

The emulator (PyPI ``sushy-tools``) serves the real Redfish API over HTTPS
on the run's bridge address, with HTTP basic authentication, a certificate
of a CA made for the run, and one fake system per simulated node (power
state, boot device and boot mode kept in a SQLite file of the run). Its
process is recorded before it starts and killed by PID at the end of the
run or when the run's cleanup runs.

Powering a fake system on does not boot anything: the harness's watcher
starts the node's agent when Ironic waits for it, as for fake power.
"""

import datetime
import ipaddress
import json
import os
import socket
import subprocess
import sys
import time
import uuid

import bcrypt
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography import x509
from cryptography.x509.oid import NameOID
import requests

from ironic_coreos.tests.functional.harness import node as node_mod
from ironic_coreos.tests.functional.harness import resources

BIN = os.path.dirname(sys.executable)
USERNAME = 'e2e-admin'


def _write_private(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'wb') as f:
        f.write(data)


class CertificateAuthority(object):
    """A CA of the run that signs the emulator's server certificate.

    :param directory: where ``<name>.pem`` (the CA certificate) is written.
    :param name: the CA's common name and file name.
    """

    def __init__(self, directory, name='e2e-bmc-ca'):
        os.makedirs(directory, exist_ok=True)
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (
            x509.CertificateBuilder().subject_name(subject)
            .issuer_name(subject).public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0),
                           critical=True)
            .sign(self.key, hashes.SHA256()))
        self.path = os.path.join(directory, '%s.pem' % name)
        with open(self.path, 'wb') as f:
            f.write(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, ip, name='bmc'):
        """A server certificate for ``ip``.

        :returns: (certificate path, key path); the key file is 0600.
        """
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(
                NameOID.COMMON_NAME, ip)]))
            .issuer_name(self.cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(ip))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                           critical=True)
            .sign(self.key, hashes.SHA256()))
        cert_path = os.path.join(self.directory, '%s.crt' % name)
        key_path = os.path.join(self.directory, '%s.key' % name)
        with open(cert_path, 'wb') as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        _write_private(key_path, key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        return cert_path, key_path


class SushyEmulator(object):
    """sushy-emulator with fake systems on the harness's bridge address.

    :param harness: the started core.Harness.
    :param count: number of fake systems (one per node to enroll).
    :param ca: the CertificateAuthority signing the server certificate.
    """

    def __init__(self, harness, count, ca):
        self.harness = harness
        self.registry = harness.registry
        self.ip = harness.host_ip
        self.dir = os.path.join(harness.state_dir, 'bmc')
        os.makedirs(self.dir, exist_ok=True)
        self.ca = ca
        self.password = uuid.uuid4().hex
        self.systems = [str(uuid.uuid4()) for _ in range(count)]
        self._free = list(self.systems)
        self.port = None
        self.url = None
        self.log_file = os.path.join(self.dir, 'sushy-emulator.log')
        self._proc = None
        self._record = None

    def _write_config(self):
        auth_file = os.path.join(self.dir, 'htpasswd')
        digest = bcrypt.hashpw(self.password.encode(),
                               bcrypt.gensalt(rounds=4))
        _write_private(auth_file, b'%s:%s\n' % (USERNAME.encode(), digest))
        cert, key = self.ca.issue(self.ip)
        systems = [{'uuid': ident, 'name': 'e2e-system-%d' % i,
                    'power_state': 'Off', 'external_notifier': False,
                    'nics': [{'mac': '52:54:00:00:ff:%02x' % i,
                              'ip': str(self.harness.net[200 + i])}]}
                   for i, ident in enumerate(self.systems)]
        settings = {
            'SUSHY_EMULATOR_LISTEN_IP': self.ip,
            'SUSHY_EMULATOR_LISTEN_PORT': self.port,
            'SUSHY_EMULATOR_SSL_CERT': cert,
            'SUSHY_EMULATOR_SSL_KEY': key,
            'SUSHY_EMULATOR_AUTH_FILE': auth_file,
            'SUSHY_EMULATOR_FAKE_DRIVER': True,
            'SUSHY_EMULATOR_FAKE_SYSTEMS': systems,
            'SUSHY_EMULATOR_STATE_DIR': os.path.join(self.dir, 'state'),
            'SUSHY_EMULATOR_IGNORE_BOOT_DEVICE': False,
        }
        path = os.path.join(self.dir, 'emulator.conf')
        # The configuration is a Python file; every value is a literal.
        body = ''.join('%s = %r\n' % item for item in settings.items())
        _write_private(path, body.encode())
        return path

    def start(self, timeout=60):
        """Start the emulator and wait until it answers over HTTPS."""
        with socket.socket() as s:
            s.bind((self.ip, 0))
            self.port = s.getsockname()[1]
        self.url = 'https://%s:%d' % (self.ip, self.port)
        config = self._write_config()
        env = dict(os.environ, HOME=self.dir,
                   TMPDIR=os.path.join(self.harness.state_dir, 'tmp'))
        os.makedirs(env['TMPDIR'], exist_ok=True)
        name, value = self.harness.marker.split('=', 1)
        env[name] = value
        self._record = self.registry.record('process', name='sushy-emulator')
        out = open(self.log_file, 'ab')
        try:
            self._proc = subprocess.Popen(
                [os.path.join(BIN, 'sushy-emulator'), '--config', config],
                stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env=env, cwd=self.dir,
                start_new_session=True)
        finally:
            out.close()
        self.registry.update(self._record, pid=self._proc.pid,
                             start_time=resources._proc_start_time(
                                 self._proc.pid))
        self.harness.servers.append(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError('sushy-emulator exited with status %s: %s'
                                   % (self._proc.returncode, self.log_tail()))
            try:
                self.get('/redfish/v1/Systems')
                return self
            except (requests.RequestException, RuntimeError):
                time.sleep(0.2)
        raise RuntimeError('sushy-emulator did not answer within %ss: %s'
                           % (timeout, self.log_tail()))

    def stop(self):
        """Kill the emulator (its recorded PID). Idempotent."""
        if self._proc is None:
            return
        resources.stop_recorded(self.registry, self._proc, self._record)
        self._proc = None

    def log_tail(self, size=2000):
        return resources.log_tail(self.log_file, size)

    # -- Redfish, as a client ------------------------------------------

    def get(self, path):
        """GET a Redfish resource, verifying the certificate."""
        resp = requests.get(self.url + path, verify=self.ca.path,
                            auth=(USERNAME, self.password), timeout=10)
        if resp.status_code != 200:
            raise RuntimeError('GET %s: HTTP %s %s'
                               % (path, resp.status_code, resp.text[:500]))
        return resp.json()

    def system(self, ident):
        """The Redfish ComputerSystem resource of a fake system."""
        return self.get('/redfish/v1/Systems/%s' % ident)

    def take_system(self):
        """A fake system no node was enrolled with yet."""
        return self._free.pop(0)

    def driver_info(self, system_id, **extra):
        """driver_info of a node managed through this emulator."""
        info = {'redfish_address': self.url,
                'redfish_system_id': '/redfish/v1/Systems/%s' % system_id,
                'redfish_username': USERNAME,
                'redfish_password': self.password}
        info.update(extra)
        return info


def enroll(harness, driver, driver_info, interfaces, disk_mib=128,
           properties=None):
    """Create a simulated node and enroll it (left in ``enroll``).

    :param harness: the started core.Harness.
    :param driver: the hardware type.
    :param driver_info: dict of driver_info (values JSON-encoded when not
        strings).
    :param interfaces: {'deploy': 'coreos', 'power': 'redfish', ...}.
    :param disk_mib: size of the node's virtual disk.
    :param properties: extra node properties.
    :returns: the SimNode (``uuid`` set).
    """
    with harness._node_lock:
        node = node_mod.SimNode(harness, len(harness.nodes),
                                disk_mib=disk_mib)
        harness.nodes.append(node)
    node.create()
    args = ['node', 'create', '--driver', driver, '--name', node.name]
    for iface, name in sorted(interfaces.items()):
        args += ['--%s-interface' % iface, name]
    for key, value in sorted(driver_info.items()):
        if not isinstance(value, str):
            value = json.dumps(value)
        args += ['--driver-info', '%s=%s' % (key, value)]
    props = {'capabilities': 'boot_mode:bios', 'cpus': '2',
             'memory_mb': '2048', 'local_gb': '1'}
    props.update(properties or {})
    for key, value in sorted(props.items()):
        args += ['--property', '%s=%s' % (key, value)]
    node.uuid = harness.ironic.cli(*args, json_out=True)['uuid']
    harness.ironic.cli('port', 'create', node.mac, '--node', node.uuid)
    return node
