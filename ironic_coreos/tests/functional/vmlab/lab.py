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
"""The VM lab: real firmware, network boot, Redfish and Ironic in a netns.

One network namespace ``icos-vm<run>`` holds everything a run needs:

* a bridge with ``169.254.N.1/24`` (N chosen under a lock), no route out;
* dnsmasq (DHCP with one reservation per VM MAC, iPXE detection, the
  boot file is Ironic's ``boot.ipxe`` over HTTP, DNS off) and radvd
  (a link-local-only advertisement so that iPXE does not wait for IPv6);
* an HTTP server for Ironic's ``http_root`` and one for the lab's files
  (live system, live Ignition, OS images);
* Debian's ``docker-registry`` (the agent image is pushed there);
* ``virtlogd`` and ``libvirtd`` started by hand, each in a private mount
  namespace with the lab's own libvirt directories;
* ``sushy-emulator`` (sushy-tools, libvirt driver) as the VMs' BMC;
* Ironic (API + conductor) with hardware type ``coreos-redfish``,
  redfish power and management, ``ipxe`` boot.

VMs (software emulation: ``<domain type='qemu'>``, q35, OVMF, a sparse
virtio disk, a NIC on the bridge, a SATA controller, a serial console to
a file) are defined in that libvirt; Ironic powers them on and sets their
boot device through Redfish. Every process, the namespace and every path
are recorded before they are created (:mod:`..harness.resources`) and
removed at the end, on failure, SIGTERM and Ctrl-C.

Usage::

    with Lab(vms=1) as lab:
        vm = lab.vms[0]
        lab.enroll(vm, deploy_interface='coreos', ...)
"""

import fcntl
import hashlib
import ipaddress
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

from oslo_log import log

from ironic_coreos.tests.functional.harness import core
from ironic_coreos.tests.functional.harness import ironic as ironic_mod
from ironic_coreos.tests.functional.harness import resources
from ironic_coreos.tests.functional.vmlab import netns

LOG = log.getLogger(__name__)

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = '/var/cache/ironic-coreos'
SUSHY_CONSTRAINTS = os.path.join(HERE, 'sushy-constraints.txt')
OVMF_CODE = '/usr/share/OVMF/OVMF_CODE_4M.fd'
OVMF_VARS = '/usr/share/OVMF/OVMF_VARS_4M.fd'
QEMU = '/usr/bin/qemu-system-x86_64'
LIBVIRTD = '/usr/sbin/libvirtd'
VIRTLOGD = '/usr/sbin/virtlogd'
DNSMASQ = '/usr/sbin/dnsmasq'
RADVD = '/usr/sbin/radvd'
REGISTRY = '/usr/bin/docker-registry'
SYSTEM_PYTHON = '/usr/bin/python3'

#: The commands and files the lab needs, with the Debian package of each.
NEEDED = {
    QEMU: 'qemu-system-x86', OVMF_CODE: 'ovmf', OVMF_VARS: 'ovmf',
    '/usr/lib/ipxe/qemu/efi-virtio.rom': 'ipxe-qemu',
    LIBVIRTD: 'libvirt-daemon-system', VIRTLOGD: 'libvirt-daemon-system',
    '/usr/bin/virsh': 'libvirt-clients', DNSMASQ: 'dnsmasq-base',
    RADVD: 'radvd', REGISTRY: 'docker-registry', '/usr/bin/skopeo': 'skopeo',
    '/usr/bin/ssh': 'openssh-client', '/usr/bin/unshare': 'util-linux',
    '/usr/bin/ssh-keygen': 'openssh-client',
}
#: Fixed ports inside the lab's namespace (nothing else listens there).
PORTS = {'ironic': 6385, 'httpboot': 8080, 'files': 8081,
         'registry': 5000, 'sushy': 8000}
LIBVIRT_DIRS = ('/etc/libvirt', '/run/libvirt', '/var/lib/libvirt',
                '/var/log/libvirt', '/var/cache/libvirt')


def can_run():
    """What is missing on this machine for the lab (empty list: nothing).

    :returns: list of human-readable problems naming the fix.
    """
    problems = []
    if os.geteuid() != 0:
        problems.append('needs root (network and mount namespaces, '
                        'libvirtd)')
    for path, pkg in sorted(NEEDED.items()):
        if not os.path.exists(path):
            problems.append('%s is missing (Debian package %s; run '
                            'tools/install-deps.sh)' % (path, pkg))
    if os.path.exists(SYSTEM_PYTHON):
        proc = subprocess.run([SYSTEM_PYTHON, '-c', 'import libvirt'],
                              capture_output=True)
        if proc.returncode:
            problems.append('the system Python has no libvirt bindings '
                            '(Debian package python3-libvirt)')
    else:
        problems.append('%s is missing' % SYSTEM_PYTHON)
    return problems


def _used_subnets():
    """Third octets of 169.254.N.0/24 in use here or in other labs."""
    texts = [resources.run(['ip', '-4', '-o', 'addr', 'show'],
                           check=False).stdout]
    names = resources.run(['ip', 'netns', 'list'], check=False).stdout
    for line in names.splitlines():
        name = line.split()[0] if line.split() else ''
        if name.startswith('icos-'):
            texts.append(resources.run(
                ['ip', '-n', name, '-4', '-o', 'addr', 'show'],
                check=False).stdout)
    used = set()
    for text in texts:
        used.update(int(n) for n in re.findall(r' 169\.254\.(\d+)\.', text))
    return used


def wait_for(what, check, timeout, interval=0.2, detail=None):
    """Poll ``check()`` until it returns a true value.

    :param what: what is awaited (for the error message).
    :param check: callable; exceptions count as "not yet".
    :param timeout: seconds.
    :param detail: callable giving text for the error message.
    :returns: check's value.
    :raises: AssertionError naming ``what`` on timeout.
    """
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            value = check()
        except Exception as e:
            last = e
        else:
            if value:
                return value
        time.sleep(interval)
    extra = detail() if detail else ''
    raise AssertionError('%s did not happen within %ss (last error: %s)%s'
                         % (what, timeout, last,
                            ('\n' + extra) if extra else ''))


def tail(path, size=3000):
    """The end of a text file ('' when missing)."""
    try:
        with open(path, 'rb') as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - size))
            return f.read().decode('utf-8', 'replace')
    except OSError:
        return ''


def sushy_venv():
    """The sushy-tools virtualenv, built once per constraints file.

    Made with the system Python and ``--system-site-packages`` so that
    Debian's libvirt bindings are importable.

    :returns: path of the ``sushy-emulator`` executable.
    """
    with open(SUSHY_CONSTRAINTS, 'rb') as f:
        key = hashlib.sha256(f.read()).hexdigest()[:16]
    root = os.path.join(CACHE, 'sushy-tools', key)
    exe = os.path.join(root, 'bin', 'sushy-emulator')
    stamp = os.path.join(root, '.complete')
    os.makedirs(os.path.dirname(root), exist_ok=True)
    with open(root + '.lock', 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(stamp):
            return exe
        shutil.rmtree(root, ignore_errors=True)
        resources.run([SYSTEM_PYTHON, '-m', 'venv', '--system-site-packages',
                       root], timeout=300)
        resources.run([os.path.join(root, 'bin', 'pip'), 'install', '-q',
                       '-c', SUSHY_CONSTRAINTS, 'sushy-tools'], timeout=900)
        with open(stamp, 'w') as f:
            f.write('ok\n')
    return exe


class LabIronic(ironic_mod.Ironic):
    """The harness's Ironic, started and reached inside the lab netns."""

    def __init__(self, lab, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lab = lab

    def start(self, timeout=120):
        with netns.inside(self.lab.netns):
            return super().start(timeout=timeout)

    def request(self, *args, **kwargs):
        with netns.inside(self.lab.netns):
            return super().request(*args, **kwargs)

    def cli(self, *args, **kwargs):
        with netns.inside(self.lab.netns):
            return super().cli(*args, **kwargs)


class VM(object):
    """One virtual machine of the lab (defined, not started).

    :param lab: the Lab.
    :param index: 0-based index; gives the name, MAC and address.
    :param memory_mib: guest memory.
    :param vcpus: virtual CPUs. One: two labs' VMs side by side on a
        2-core machine then have a core each; with two each, the
        emulated CPUs starved (soft lockups of a minute and more in the
        guests, the install slowed down by half).
    :param disk_gib: size of the sparse virtio disk.
    """

    def __init__(self, lab, index, memory_mib=3072, vcpus=1, disk_gib=8):
        self.lab = lab
        self.index = index
        self.name = 'icvm-%s-%d' % (lab.run_id, index)
        self.uuid = str(uuid.uuid4())
        self.mac = '52:54:00:%s:%s:%02x' % (
            lab.run_id[:2], lab.run_id[2:4], 0x10 + index)
        self.ip = str(lab.net[10 + index])
        self.static_ip = str(lab.net[50 + index])
        self.memory_mib = memory_mib
        self.vcpus = vcpus
        self.disk_gib = disk_gib
        self.dir = os.path.join(lab.state_dir, 'vm%d' % index)
        self.disk = os.path.join(self.dir, 'disk.img')
        self.nvram = os.path.join(self.dir, 'OVMF_VARS.fd')
        self.console = os.path.join(self.dir, 'console.log')
        self.node = None
        self.history = []

    @property
    def system_path(self):
        return '/redfish/v1/Systems/%s' % self.uuid

    def domain_xml(self):
        run = self.lab.run_id
        template = """<domain type='qemu'
    xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>%(name)s</name>
  <uuid>%(uuid)s</uuid>
  <memory unit='MiB'>%(mem)d</memory>
  <vcpu>%(vcpus)d</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <loader readonly='yes' type='pflash'>%(code)s</loader>
    <nvram template='%(vars)s'>%(nvram)s</nvram>
  </os>
  <features><acpi/><apic/></features>
  <cpu mode='maximum'/>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>%(qemu)s</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw' cache='unsafe'/>
      <source file='%(disk)s'/>
      <target dev='vda' bus='virtio'/>
      <boot order='2'/>
    </disk>
    <controller type='sata' index='0'/>
    <interface type='bridge'>
      <mac address='%(mac)s'/>
      <source bridge='%(bridge)s'/>
      <model type='virtio'/>
      <boot order='1'/>
    </interface>
    <serial type='file'>
      <source path='%(console)s' append='on'/>
      <target port='0'/>
    </serial>
    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
    <memballoon model='none'/>
  </devices>
  <qemu:commandline>
    <qemu:env name='IRONIC_COREOS_E2E_RUN' value='%(run)s'/>
  </qemu:commandline>
</domain>
"""
        return template % {
            'name': self.name, 'uuid': self.uuid, 'mem': self.memory_mib,
            'vcpus': self.vcpus, 'code': OVMF_CODE, 'vars': OVMF_VARS,
            'nvram': self.nvram, 'qemu': QEMU, 'disk': self.disk,
            'mac': self.mac, 'bridge': self.lab.bridge,
            'console': self.console, 'run': run}

    def create(self):
        os.makedirs(self.dir)
        with open(self.disk, 'wb') as f:
            f.truncate(self.disk_gib << 30)
        shutil.copyfile(OVMF_VARS, self.nvram)
        xml = os.path.join(self.dir, 'domain.xml')
        with open(xml, 'w') as f:
            f.write(self.domain_xml())
        self.lab.registry.record('domain', name=self.name, uuid=self.uuid)
        self.lab.virsh('define', xml)

    def console_text(self):
        return tail(self.console, 1 << 20)

    def domain_state(self):
        return self.lab.virsh('domstate', self.name).strip()

    def destroy(self):
        """Pull the plug and remove the definition (tear-down only)."""
        self.lab.virsh('destroy', self.name, check=False)
        self.lab.virsh('undefine', '--nvram', self.name, check=False)


class Lab(object):
    """The whole VM lab; see the module documentation.

    :param vms: how many VMs to define (at most two run at once).
    :param deploy_interfaces: Ironic's enabled deploy interfaces.
    :param ironic_options: {(section, option): value} for ironic.conf.
    :param memory_mib: guest memory of each VM.
    :param keep: keep the state directory (logs, consoles).
    :param no_dhcp: indexes of the VMs that get no DHCP answer (dnsmasq
        ignores their MAC): on their segment, only static addresses work.
    """

    def __init__(self, vms=1, deploy_interfaces=('custom-agent', 'direct',
                                                 'coreos'),
                 ironic_options=None, memory_mib=3072, keep=None,
                 no_dhcp=()):
        self.run_id = uuid.uuid4().hex[:4]
        self.marker = 'IRONIC_COREOS_E2E_RUN=%s' % self.run_id
        self.state_dir = os.path.join(resources.RUNS_ROOT, 'vm' + self.run_id)
        self.netns = 'icos-vm%s' % self.run_id
        self.bridge = 'icbr0'
        self.vm_count = vms
        self.no_dhcp = frozenset(no_dhcp)
        self.memory_mib = memory_mib
        self.deploy_interfaces = list(deploy_interfaces)
        self.ironic_options = dict(ironic_options or {})
        if keep is None:
            keep = os.environ.get('IRONIC_COREOS_E2E_KEEP') == '1'
        self.keep = keep
        self.registry = None
        self.ironic = None
        self.vms = []
        self.procs = {}
        self.net = None
        self.ip = None
        self._stop = threading.Event()
        self._watcher = None
        self.watch_errors = 0

    # -- set-up --------------------------------------------------------------

    def start(self):
        problems = can_run()
        if problems:
            raise RuntimeError('the VM lab cannot run on this machine: %s'
                               % '; '.join(problems))
        os.makedirs(resources.RUNS_ROOT, exist_ok=True)
        resources.sweep_stale()
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

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def path(self, *parts):
        return os.path.join(self.state_dir, *parts)

    def _start(self):
        self.sushy_exe = sushy_venv()
        self._network()
        self.files_dir = self.path('files')
        self.httpboot = self.path('ironic', 'httpboot')
        os.makedirs(self.files_dir)
        os.makedirs(self.httpboot)
        for i in range(self.vm_count):
            self.vms.append(VM(self, i, memory_mib=self.memory_mib))
        self._dnsmasq()
        self._radvd()
        self._http('httpboot', self.httpboot)
        self._http('files', self.files_dir)
        self._registry()
        self._libvirt()
        for vm in self.vms:
            vm.create()
        self._sushy()
        self._ironic()
        self._watcher = threading.Thread(target=self._watch, daemon=True,
                                         name='vmlab-watcher')
        self._watcher.start()

    def url(self, service, path=''):
        return 'http://%s:%d%s' % (self.ip, PORTS[service], path)

    @property
    def registry_host(self):
        return '%s:%d' % (self.ip, PORTS['registry'])

    def _network(self):
        self.registry.record('netns', name=self.netns,
                             marker=self.marker)
        resources.run(['ip', 'netns', 'add', self.netns])
        ns = ['ip', '-n', self.netns]
        resources.run(ns + ['link', 'set', 'lo', 'up'])
        resources.run(ns + ['link', 'add', self.bridge, 'type', 'bridge',
                            'forward_delay', '0', 'stp_state', '0'])
        with open(os.path.join(resources.RUNS_ROOT, '.subnet.lock'),
                  'w') as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            used = _used_subnets()
            free = [n for n in range(120, 250) if n not in used]
            if not free:
                raise RuntimeError('no free 169.254.N.0/24 subnet')
            self.net = ipaddress.ip_network('169.254.%d.0/24' % free[0])
            self.ip = str(self.net[1])
            resources.run(ns + ['addr', 'add', '%s/24' % self.ip, 'dev',
                                self.bridge])
        resources.run(ns + ['link', 'set', self.bridge, 'up'])
        routes = resources.run(ns + ['route', 'show', 'default']).stdout
        if routes.strip():
            raise RuntimeError('the lab namespace has a default route: %s'
                               % routes)

    def spawn(self, name, argv, env=None, in_netns=True, ready=None,
              timeout=60):
        """Start a recorded process of the lab (in the namespace).

        :param name: short name; the log is ``logs/<name>.log``.
        :param argv: the command (argv list).
        :param env: extra environment.
        :param ready: callable that is true once the service serves.
        :returns: the Popen.
        """
        os.makedirs(self.path('logs'), exist_ok=True)
        log_path = self.path('logs', '%s.log' % name)
        full_env = dict(os.environ, TMPDIR=self.path('tmp'))
        os.makedirs(self.path('tmp'), exist_ok=True)
        full_env.update(env or {})
        key, value = self.marker.split('=', 1)
        full_env[key] = value
        if in_netns:
            argv = ['ip', 'netns', 'exec', self.netns] + list(argv)
        rec = self.registry.record('process', name=name)
        with open(log_path, 'ab') as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=full_env,
                                    start_new_session=True)
        self.registry.update(rec, pid=proc.pid,
                             start_time=resources._proc_start_time(proc.pid))
        self.procs[name] = proc

        def alive_and_ready():
            if proc.poll() is not None:
                raise RuntimeError('%s exited with status %s: %s'
                                   % (name, proc.returncode,
                                      tail(log_path)))
            return ready() if ready else True

        if ready:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    if alive_and_ready():
                        break
                except RuntimeError:
                    raise
                except Exception:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError('%s did not become ready within %ss: '
                                       '%s' % (name, timeout,
                                               tail(log_path)))
                time.sleep(0.2)
        return proc

    def _port_open(self, port):
        import socket
        with netns.inside(self.netns):
            with socket.socket() as s:
                s.settimeout(1)
                return s.connect_ex((self.ip, port)) == 0

    def _dnsmasq(self):
        conf = self.path('dnsmasq.conf')
        lines = [
            'port=0', 'bind-interfaces', 'interface=%s' % self.bridge,
            'except-interface=lo', 'no-resolv', 'no-hosts',
            'log-dhcp', 'leasefile-ro',
            'dhcp-range=%s,static,255.255.255.0,10m' % self.net[10],
            'dhcp-option=3', 'dhcp-option=6',
            'dhcp-userclass=set:ipxe,iPXE', 'dhcp-match=set:ipxe,175',
            'dhcp-boot=tag:ipxe,%s' % self.url('httpboot', '/boot.ipxe'),
        ]
        for vm in self.vms:
            if vm.index in self.no_dhcp:
                lines.append('dhcp-host=%s,ignore' % vm.mac)
            else:
                lines.append('dhcp-host=%s,%s,%s' % (vm.mac, vm.ip, vm.name))
        with open(conf, 'w') as f:
            f.write('\n'.join(lines) + '\n')
        self.spawn('dnsmasq', [DNSMASQ, '--keep-in-foreground',
                               '--conf-file=%s' % conf,
                               '--pid-file=%s' % self.path('dnsmasq.pid'),
                               '--log-facility=-'])

    def _radvd(self):
        conf = self.path('radvd.conf')
        with open(conf, 'w') as f:
            f.write('interface %s {\n  AdvSendAdvert on;\n'
                    '  AdvDefaultLifetime 0;\n  MinRtrAdvInterval 3;\n'
                    '  MaxRtrAdvInterval 10;\n};\n' % self.bridge)
        os.chmod(conf, 0o644)
        self.spawn('radvd', [RADVD, '--nodaemon', '--config', conf,
                             '--pidfile', self.path('radvd.pid'),
                             '--logmethod', 'stderr'])

    def _http(self, name, directory):
        port = PORTS[name]
        self.spawn('http-%s' % name,
                   [sys.executable, '-m', 'http.server', '--bind', self.ip,
                    '--directory', directory, str(port)],
                   ready=lambda: self._port_open(port))

    def _registry(self):
        conf = self.path('registry.yml')
        with open(conf, 'w') as f:
            f.write('version: 0.1\nlog:\n  level: info\nstorage:\n'
                    '  filesystem:\n    rootdirectory: %s\n'
                    '  delete:\n    enabled: true\nhttp:\n  addr: %s\n'
                    % (self.path('registry'), self.registry_host))
        self.spawn('registry', [REGISTRY, 'serve', conf],
                   ready=lambda: self._port_open(PORTS['registry']))

    def _libvirt(self):
        root = self.path('libvirt')
        binds = []
        for d in LIBVIRT_DIRS:
            private = os.path.join(root, d.strip('/').replace('/', '_'))
            os.makedirs(private)
            binds += ['--bind', private, d]
        etc = os.path.join(root, 'etc_libvirt')
        with open(os.path.join(etc, 'libvirtd.conf'), 'w') as f:
            f.write('unix_sock_group = "root"\nunix_sock_rw_perms = "0700"\n'
                    'auth_unix_rw = "none"\nauth_unix_ro = "none"\n'
                    'log_outputs = "3:stderr"\n')
        with open(os.path.join(etc, 'virtlogd.conf'), 'w') as f:
            f.write('log_outputs = "3:stderr"\n')
        with open(os.path.join(etc, 'qemu.conf'), 'w') as f:
            f.write('user = "root"\ngroup = "root"\ndynamic_ownership = 0\n'
                    'remember_owner = 0\nsecurity_driver = "none"\n'
                    'cgroup_controllers = [ ]\nnamespaces = [ ]\n'
                    'stdio_handler = "file"\n')
        self.libvirt_sock = os.path.join(root, 'run_libvirt', 'libvirt-sock')
        self.libvirt_uri = 'qemu:///system?socket=%s' % self.libvirt_sock
        wrapper = ['unshare', '-m', '--propagation', 'private',
                   sys.executable, '-m',
                   'ironic_coreos.tests.functional.vmlab.mountns'] + binds
        env = {'PYTHONPATH': os.path.dirname(os.path.dirname(os.path.dirname(
            os.path.dirname(HERE)))),
               'IRONIC_COREOS_VMLAB_HOST_MNTNS': str(
                   os.stat('/proc/self/ns/mnt').st_ino)}
        run_dir = os.path.join(root, 'run_libvirt')
        # Own pid files: the defaults (/run/virtlogd.pid, /run/libvirtd.pid)
        # would clash with another lab or the host's daemons.
        self.spawn('virtlogd', wrapper + [
            '--', VIRTLOGD, '--pid-file',
            os.path.join(run_dir, 'virtlogd.pid')], env=env,
                   ready=lambda: os.path.exists(os.path.join(
                       root, 'run_libvirt', 'virtlogd-sock')))
        self.spawn('libvirtd', wrapper + [
            '--', LIBVIRTD, '--pid-file',
            os.path.join(run_dir, 'libvirtd.pid')], env=env,
                   ready=lambda: os.path.exists(self.libvirt_sock)
                   and self.virsh('version', check=False, quiet=True)
                   is not None)
        # Where the BMC keeps virtual media images: sushy-tools' libvirt
        # driver uses the pool named "default".
        pool = os.path.join(root, 'pool')
        os.makedirs(pool)
        self.virsh('pool-define-as', 'default', 'dir', '--target', pool)
        self.virsh('pool-start', 'default')

    def virsh(self, *args, check=True, quiet=False):
        """Run virsh against the lab's libvirtd.

        :returns: stdout, or None when it failed and check is false.
        """
        proc = resources.run(['virsh', '-q', '-c', self.libvirt_uri]
                             + list(args), check=False, timeout=120)
        if proc.returncode:
            if check:
                raise RuntimeError('virsh %s failed: %s'
                                   % (' '.join(args), proc.stderr.strip()))
            return None
        return proc.stdout

    def _sushy(self):
        conf = self.path('sushy.conf')
        boot_map = {'UEFI': {'x86_64': OVMF_CODE},
                    'Legacy': {'x86_64': None}}
        with open(conf, 'w') as f:
            f.write('SUSHY_EMULATOR_LISTEN_IP = %r\n' % self.ip)
            f.write('SUSHY_EMULATOR_LISTEN_PORT = %d\n' % PORTS['sushy'])
            f.write('SUSHY_EMULATOR_LIBVIRT_URI = %r\n' % self.libvirt_uri)
            f.write('SUSHY_EMULATOR_IGNORE_BOOT_DEVICE = False\n')
            f.write('SUSHY_EMULATOR_BOOT_LOADER_MAP = %r\n' % boot_map)
            f.write('SUSHY_EMULATOR_SECURE_BOOT_DISABLED_NVRAM = %r\n'
                    % OVMF_VARS)
            f.write('SUSHY_EMULATOR_STATE_DIR = %r\n' % self.path('sushy'))
            # Only the lab's own VMs are exposed as systems.
            f.write('SUSHY_EMULATOR_ALLOWED_INSTANCES = %r\n'
                    % [vm.uuid for vm in self.vms])
        self.spawn('sushy', [self.sushy_exe, '--config', conf],
                   ready=lambda: self.redfish('GET', '/redfish/v1/Systems'),
                   timeout=120)

    def redfish(self, method, path, body=None):
        """Call the lab's BMC (fault scenarios and checks only)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.url('sushy', path), data=data, method=method,
            headers={'Content-Type': 'application/json'})
        with netns.inside(self.netns):
            with urllib.request.urlopen(req, timeout=60) as resp:
                raw = resp.read()
        return json.loads(raw) if raw else {}

    def _ironic(self):
        sd = self.path('ironic')
        http_url = self.url('httpboot')
        opts = {
            ('DEFAULT', 'enabled_hardware_types'): 'coreos-redfish',
            ('DEFAULT', 'enabled_boot_interfaces'):
                'ipxe,coreos-redfish-virtual-media',
            ('DEFAULT', 'enabled_power_interfaces'): 'redfish',
            ('DEFAULT', 'enabled_management_interfaces'): 'redfish',
            ('DEFAULT', 'enabled_inspect_interfaces'): 'no-inspect',
            ('DEFAULT', 'enabled_bios_interfaces'): 'no-bios',
            ('DEFAULT', 'enabled_raid_interfaces'): 'no-raid',
            ('DEFAULT', 'enabled_firmware_interfaces'): 'no-firmware',
            ('DEFAULT', 'enabled_vendor_interfaces'): 'no-vendor',
            ('DEFAULT', 'enabled_console_interfaces'): 'no-console',
            ('DEFAULT', 'enabled_rescue_interfaces'): 'no-rescue',
            ('DEFAULT', 'host'): 'vmlab-conductor',
            ('deploy', 'http_url'): http_url,
            ('deploy', 'http_root'): self.httpboot,
            ('deploy', 'default_boot_mode'): 'uefi',
            ('deploy', 'erase_devices_metadata_priority'): '10',
            ('api', 'ramdisk_heartbeat_timeout'): '60',
            ('conductor', 'deploy_callback_timeout'): '1500',
            ('conductor', 'clean_callback_timeout'): '1500',
            ('conductor', 'check_provision_state_interval'): '10',
            ('agent', 'command_timeout'): '120',
            ('pxe', 'ipxe_timeout'): '120',
            ('pxe', 'ipxe_use_swift'): 'false',
            ('redfish', 'use_swift'): 'false',
            # The per-node live ISOs of coreos-redfish-virtual-media: the
            # lab registry has no TLS; the live system lets the lab's key
            # in (live.pub, written by scenario.Setup).
            ('coreos', 'live_insecure_registries'): self.registry_host,
            ('coreos', 'live_ssh_keys_file'): self.path('live.pub'),
            ('coreos', 'live_iso_master_path'): self.path('ironic',
                                                          'master_isos'),
        }
        opts.update(self.ironic_options)
        self.ironic = LabIronic(
            self, self.registry, sd, self.ip, PORTS['ironic'],
            self.deploy_interfaces, callback_timeout=1500, extra=opts,
            marker=self.marker)
        self.ironic.write_config()
        self.ironic.create_schema()
        self.ironic.start()

    # -- nodes -----------------------------------------------------------

    def publish(self, src, name=None):
        """Make a file downloadable from the lab's file server.

        :returns: its URL.
        """
        name = name or os.path.basename(src)
        dst = os.path.join(self.files_dir, name)
        if os.path.lexists(dst):
            os.unlink(dst)
        try:
            os.link(src, dst)
        except OSError:
            os.symlink(os.path.abspath(src), dst)
        return self.url('files', '/' + name)

    def write_file(self, name, data, mode=0o644):
        """Write a file to the lab's file server; returns its URL."""
        dst = os.path.join(self.files_dir, name)
        fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, 'wb') as f:
            f.write(data if isinstance(data, bytes) else data.encode())
        return self.url('files', '/' + name)

    def enroll(self, vm, deploy_interface='coreos', deploy_kernel=None,
               deploy_ramdisk=None, kernel_append_params=None,
               driver_info=None, automated_clean=None, boot_interface='ipxe',
               network_data=None):
        """Enroll ``vm`` as an operator would and take it to ``available``.

        :param network_data: the node's network_data (a dict), for the
            live system of virtual media boots.
        :returns: the node's uuid (also ``vm.node``).
        """
        args = ['node', 'create', '--driver', 'coreos-redfish',
                '--name', vm.name, '--uuid', vm.uuid,
                '--deploy-interface', deploy_interface,
                '--boot-interface', boot_interface,
                '--power-interface', 'redfish',
                '--management-interface', 'redfish',
                '--network-interface', 'noop',
                '--driver-info', 'redfish_address=%s' % self.url('sushy'),
                '--driver-info', 'redfish_system_id=%s' % vm.system_path,
                # NOTE: until the coreos-redfish hardware type reads its
                # default CA setting, the node must say it explicitly.
                '--driver-info', 'redfish_verify_ca=False',
                '--property', 'capabilities=boot_mode:uefi',
                '--property', 'cpu_arch=x86_64',
                '--property', 'memory_mb=%d' % vm.memory_mib,
                '--property', 'local_gb=%d' % vm.disk_gib]
        if deploy_kernel:
            args += ['--driver-info', 'deploy_kernel=%s' % deploy_kernel]
        if deploy_ramdisk:
            args += ['--driver-info', 'deploy_ramdisk=%s' % deploy_ramdisk]
        if kernel_append_params:
            args += ['--driver-info',
                     'kernel_append_params=%s' % kernel_append_params]
        for key, value in (driver_info or {}).items():
            args += ['--driver-info', '%s=%s' % (key, value)]
        if automated_clean is not None:
            args += ['--automated-clean' if automated_clean
                     else '--no-automated-clean']
        if network_data is not None:
            path = os.path.join(vm.dir, 'network_data.json')
            with open(path, 'w') as f:
                json.dump(network_data, f)
            args += ['--network-data', path]
        created = self.ironic.cli(*args, json_out=True)
        vm.node = created['uuid']
        self.ironic.cli('port', 'create', vm.mac, '--node', vm.node)
        self.ironic.cli('node', 'manage', vm.node)
        self.wait(vm, ('manageable',), timeout=120)
        self.ironic.cli('node', 'provide', vm.node)
        self.wait(vm, ('available',), timeout=1200)
        return vm.node

    def node(self, vm):
        return self.ironic.node(vm.node)

    def wait(self, vm, states=('active', 'deploy failed'), timeout=1200):
        """Wait until the VM's node rests in one of ``states``."""
        data = {}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data = self.ironic.node(vm.node)
            except (OSError, ironic_mod.IronicError):
                time.sleep(1)
                continue
            if data['provision_state'] in states and core.settled(
                    data['provision_state'],
                    data['target_provision_state'],
                    data.get('reservation')):
                return data
            time.sleep(1)
        raise AssertionError(
            'node %s did not reach %s within %ss: state %s, last_error %s;'
            '\nconsole tail:\n%s\nironic log tail:\n%s'
            % (vm.name, states, timeout, data.get('provision_state'),
               data.get('last_error'), tail(vm.console, 3000),
               self.ironic.log_tail(3000)))

    def _watch(self):
        """Record every node's provision and power states with times."""
        while not self._stop.is_set():
            try:
                nodes = self.ironic.get(
                    '/v1/nodes?fields=uuid,provision_state,'
                    'target_provision_state,power_state')['nodes']
            except Exception:
                self.watch_errors += 1
                self._stop.wait(1)
                continue
            by_uuid = {n['uuid']: n for n in nodes}
            for vm in self.vms:
                n = by_uuid.get(vm.node)
                if not n:
                    continue
                seen = (n['provision_state'], n['target_provision_state'],
                        n['power_state'])
                if not vm.history or vm.history[-1][1:] != seen:
                    vm.history.append((time.monotonic(),) + seen)
            self._stop.wait(0.5)

    def first_time(self, vm, state, after=0.0):
        """Monotonic time the node was first seen in ``state``."""
        for entry in list(vm.history):
            if entry[0] >= after and state in entry[1:]:
                return entry[0]
        return None

    def ssh(self, vm, ip, command, key, user='core', timeout=60):
        """Run ``command`` (argv list) over SSH on a VM from the netns.

        SSH hands the remote side one string that the login shell splits
        again, so every word is quoted: ``['sh', '-c', 'a; b']`` runs
        ``a; b`` under ``sh``, not ``sh -c a`` and then ``b`` as the user.
        """
        with netns.inside(self.netns):
            return subprocess.run(_ssh_argv(ip, command, key, user),
                                  capture_output=True, text=True,
                                  timeout=timeout, stdin=subprocess.DEVNULL)

    def ssh_stream(self, ip, command, key, user='core',
                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL):
        """Start ``command`` over SSH; its output is read as it comes.

        :param stdout: where the output goes (default: a text pipe).
        :param stderr: where SSH's errors go (default: discarded).
        :returns: the subprocess.Popen; the caller stops it.
        """
        with netns.inside(self.netns):
            return subprocess.Popen(
                _ssh_argv(ip, command, key, user,
                          ('-o', 'ServerAliveInterval=5',
                           '-o', 'ServerAliveCountMax=3')),
                stdout=stdout, stderr=stderr,
                stdin=subprocess.DEVNULL, text=True, bufsize=1)

    def push_image(self, archive, name, uncompressed=True):
        """Push an OCI archive to the lab registry; returns its reference.

        :param uncompressed: push the layers as plain tar (OCI media type
            ``...layer.v1.tar``): the guest's podman then has no gzip to
            undo, which under software emulation costs more than moving the
            larger blobs over the bridge.
        """
        ref = '%s/%s' % (self.registry_host, name)
        if not uncompressed:
            with netns.inside(self.netns):
                resources.run(['skopeo', 'copy', '--dest-tls-verify=false',
                               'oci-archive:%s' % archive,
                               'docker://%s' % ref], timeout=900)
            return ref
        # NOTE: skopeo recompresses whatever it sends to a registry; only
        # its dir transport keeps layers uncompressed. The blobs go up with
        # the registry API's monolithic upload.
        layout = self.path('image-%s' % hashlib.sha256(
            name.encode()).hexdigest()[:8])
        resources.run(['skopeo', 'copy', '--quiet', '--dest-decompress',
                       'oci-archive:%s' % archive, 'dir:%s' % layout],
                      timeout=900)
        with open(os.path.join(layout, 'manifest.json'), 'rb') as f:
            raw = f.read()
        manifest = json.loads(raw)
        repo, tag = name.rsplit(':', 1)
        for blob in [manifest['config']] + manifest['layers']:
            self._upload_blob(repo, layout, blob)
        self._registry_request(
            'PUT', '/v2/%s/manifests/%s' % (repo, tag), raw,
            {'Content-Type': manifest['mediaType']})
        shutil.rmtree(layout)
        return ref

    def _registry_request(self, method, path, data=None, headers=None):
        url = path if '://' in path else 'http://%s%s' % (
            self.registry_host, path)
        req = urllib.request.Request(url, data=data, method=method,
                                     headers=dict(headers or {}))
        with netns.inside(self.netns):
            with urllib.request.urlopen(req, timeout=300) as resp:
                resp.read()
                return resp

    def _upload_blob(self, repo, layout, blob):
        digest = blob['digest']
        path = os.path.join(layout, digest.split(':', 1)[1])
        try:
            self._registry_request('HEAD', '/v2/%s/blobs/%s' % (repo, digest))
            return
        except urllib.error.HTTPError as e:
            if e.code != 404:
                raise
        resp = self._registry_request('POST', '/v2/%s/blobs/uploads/' % repo)
        location = resp.headers['Location']
        if '://' not in location:
            location = 'http://%s%s' % (self.registry_host, location)
        location += ('&' if '?' in location else '?') + \
            urllib.parse.urlencode({'digest': digest})
        with open(path, 'rb') as f:
            self._registry_request(
                'PUT', location, f,
                {'Content-Type': 'application/octet-stream',
                 'Content-Length': str(os.path.getsize(path))})

    # -- tear-down ---------------------------------------------------------

    def stop(self):
        """Stop everything and remove everything recorded. Idempotent."""
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=10)
        if self.ironic is not None:
            try:
                self.ironic.stop()
            except Exception as e:
                LOG.warning('Stopping ironic failed: %s', e)
        if self.registry is None:
            return
        libvirtd = self.procs.get('libvirtd')
        if libvirtd is not None and libvirtd.poll() is None:
            for vm in self.vms:
                try:
                    vm.destroy()
                except Exception as e:
                    LOG.warning('Removing VM %(vm)s failed: %(e)s',
                                {'vm': vm.name, 'e': e})
        self._kill_emulators()
        self.registry.cleanup()
        resources.unguard(self.registry)

    def _kill_emulators(self):
        """Kill any qemu of this lab still running (after libvirtd died)."""
        for pid in _lab_pids(self.run_id, self.state_dir):
            if _cmdline(pid).startswith(QEMU):
                resources.kill_process(pid, grace=3.0)


def _ssh_argv(ip, command, key, user, extra=()):
    """SSH argv for ``command`` (an argv list) on ``user@ip``.

    SSH hands the remote side one string that the login shell splits
    again, so every word is quoted.
    """
    return (['ssh', '-i', key, '-o', 'BatchMode=yes',
             '-o', 'StrictHostKeyChecking=no',
             '-o', 'UserKnownHostsFile=/dev/null',
             '-o', 'ConnectTimeout=10', '-o', 'LogLevel=ERROR']
            + list(extra) + ['%s@%s' % (user, ip), '--',
                             shlex.join(command)])


def _cmdline(pid):
    try:
        with open('/proc/%d/cmdline' % pid, 'rb') as f:
            return f.read().replace(b'\0', b' ').decode('utf-8', 'replace')
    except OSError:
        return ''


def _lab_pids(run_id, state_dir):
    """Processes carrying this lab's marker or naming its state dir."""
    marker = ('IRONIC_COREOS_E2E_RUN=%s' % run_id).encode()
    found = []
    for pid in os.listdir('/proc'):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open('/proc/%s/environ' % pid, 'rb') as f:
                env = f.read().split(b'\0')
        except OSError:
            continue
        if marker in env or state_dir in _cmdline(int(pid)):
            found.append(int(pid))
    return found


def leftovers(run_id=''):
    """What VM labs left behind: namespaces, processes, files.

    :param run_id: only what the lab of this run id left (other labs may
        be running); by default every VM lab's.
    """
    prefix = 'vm' + run_id
    ns = resources.run(['ip', 'netns', 'list'], check=False).stdout
    spaces = [line.split()[0] for line in ns.splitlines()
              if line.startswith('icos-' + prefix)]
    procs = []
    for pid in os.listdir('/proc'):
        if pid.isdigit() and int(pid) != os.getpid() and (
                os.path.join(resources.RUNS_ROOT, prefix) in _cmdline(
                    int(pid))):
            procs.append(int(pid))
    dirs = []
    if os.path.isdir(resources.RUNS_ROOT):
        for d in os.listdir(resources.RUNS_ROOT):
            journal = os.path.join(resources.RUNS_ROOT, d, resources.JOURNAL)
            try:
                with open(journal) as f:
                    kept = json.load(f).get('keep')
            except (OSError, ValueError):
                # A kept run's journal is gone once its resources are.
                kept = not os.path.exists(journal)
            if d.startswith(prefix) and not kept:
                dirs.append(d)
    return {'netns': spaces, 'processes': procs, 'dirs': dirs}


if __name__ == '__main__':
    left = leftovers()
    print(json.dumps(left, indent=2))
    sys.exit(1 if any(left.values()) else 0)
