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
"""What the VM scenarios, the demo and the benchmark share.

:class:`Deployment` prepares the lab once (live system, agent image in the
lab registry) and runs one deployment of one VM the way a user would,
recording the time of each phase:

* ``power_on``: deploy call -> Ironic powered the VM on (Redfish);
* ``lookup``: power on -> the agent in the live system looked itself up
  and heartbeated (Ironic's first ``Heartbeat from node`` log line: the
  node stays in ``wait call-back`` while the agent runs the deploy steps);
* ``install``: lookup -> the install step finished and Ironic started the
  tear-down (the VM powered off);
* ``teardown``: power off -> powered on from disk;
* ``active``: deploy call -> ``active``;
* ``ssh``: reboot (power on from disk) -> SSH as ``core`` answers.
"""

import datetime
import json
import os
import re
import subprocess
import sys
import threading
import time

from ironic_coreos.tests.functional.harness import fixtures
from ironic_coreos.tests.functional.harness import resources
from ironic_coreos.tests.functional.vmlab import lab as lab_mod

TOP_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__),
                                       '..', '..', '..', '..'))
AGENT_IMAGE_SCRIPT = os.path.join(TOP_DIR, 'tools', 'build-agent-image.sh')
WORK_DIR = '/run/ironic-coreos'
MOTD = 'hello from the VM lab'
KARG = 'vmlab.karg=1'


def live_system():
    """The live system (built or from the cache), or an error naming why.

    :raises: RuntimeError when the builder is missing or fails.
    """
    try:
        from ironic_coreos.tests.functional.vmlab import livesys
    except ImportError as e:
        raise RuntimeError('the live system builder (vmlab/livesys.py) is '
                           'missing: %s' % e)
    return livesys


def agent_image_archive():
    """Build (or find in the cache) the agent image; returns the archive.

    ``IRONIC_COREOS_VMLAB_AGENT_IMAGE`` names an archive built before
    (``tools/build-agent-image.sh`` prints it) to use instead.
    """
    given = os.environ.get('IRONIC_COREOS_VMLAB_AGENT_IMAGE')
    if given:
        if not os.path.isfile(given):
            raise RuntimeError('IRONIC_COREOS_VMLAB_AGENT_IMAGE=%s is not a '
                               'file' % given)
        return given
    if not os.path.exists(AGENT_IMAGE_SCRIPT):
        raise RuntimeError('%s is missing: the agent image cannot be built'
                           % AGENT_IMAGE_SCRIPT)
    proc = subprocess.run(['nice', '-n', '10', AGENT_IMAGE_SCRIPT],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=3600)
    lines = proc.stdout.decode('utf-8', 'replace').strip().splitlines()
    if proc.returncode or not lines or not os.path.exists(lines[-1]):
        raise RuntimeError('%s failed (status %d): %s'
                           % (AGENT_IMAGE_SCRIPT, proc.returncode,
                              proc.stderr.decode('utf-8', 'replace')[-2000:]))
    return lines[-1]


def ssh_keypair(directory, name='id_ed25519'):
    """A fresh ed25519 key pair; returns (private key path, public line)."""
    path = os.path.join(directory, name)
    resources.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C',
                   'user@vmlab', '-f', path])
    with open(path + '.pub') as f:
        return path, f.read().strip()


def user_config(key):
    """The user's Ignition config: a file, a directory, the SSH key."""
    return {
        'ignition': {'version': '3.3.0'},
        'passwd': {'users': [{'name': 'core', 'sshAuthorizedKeys': [key]}]},
        'storage': {
            # NOTE: the image has an /etc/motd (Debian's, in the
            # CoreOS-alike); Ignition refuses to replace an existing file
            # unless told to.
            'files': [{'path': '/etc/motd', 'mode': 420, 'overwrite': True,
                       'contents': {'source': 'data:,%s%%0A'
                                    % MOTD.replace(' ', '%20')}}],
            'directories': [{'path': '/var/lib/vmlab', 'mode': 493}],
        },
    }


def network_data(vm):
    """network_data.json with a static address for the VM's NIC."""
    return {
        'links': [{'id': 'port0', 'type': 'phy',
                   'ethernet_mac_address': vm.mac, 'mtu': 1500}],
        'networks': [{'id': 'net0', 'network_id': 'net0', 'type': 'ipv4',
                      'link': 'port0',
                      'ip_address': vm.static_ip,
                      'netmask': '255.255.255.0', 'routes': []}],
        'services': [],
    }


class Setup(object):
    """A started lab with the live system and agent image in place.

    :param vms: number of VMs (at most two run at once).
    :param log: file for progress lines (default stdout).
    :param no_dhcp: indexes of VMs that get no DHCP answer.
    :param rootfs: ``append``: the live root (``rootfs.img``) appended to
        the initramfs that iPXE loads (the kernel unpacks it); ``url``:
        fetched by the initramfs from ``coreos.live.rootfs_url=`` (curl
        and cpio in the guest, several times slower under emulation).
    """

    def __init__(self, vms=1, log=None, ironic_options=None,
                 rootfs='append', no_dhcp=()):
        self.out = log or sys.stdout
        self.livesys = live_system()
        t = time.monotonic()
        self.live = self.livesys.build()
        self.say('live system %s (%.0fs)'
                 % (self.live.directory, time.monotonic() - t))
        t = time.monotonic()
        self.archive = agent_image_archive()
        self.say('agent image %s (%.0fs)'
                 % (self.archive, time.monotonic() - t))
        self.lab = lab_mod.Lab(
            vms=vms, memory_mib=self.livesys.LIVE_MEMORY_MIB,
            ironic_options=ironic_options, no_dhcp=no_dhcp)
        t = time.monotonic()
        self.lab.start()
        try:
            self.say('lab %s up at %s (%.0fs)' % (
                self.lab.run_id, self.lab.ip, time.monotonic() - t))
            t = time.monotonic()
            self.image_ref = self.lab.push_image(self.archive,
                                                 'ironic-coreos/agent:lab')
            self.say('agent image pushed as %s (%.0fs)'
                     % (self.image_ref, time.monotonic() - t))
            self.kernel_url = self.lab.publish(self.live.kernel, 'vmlinuz')
            if rootfs == 'append':
                combined = self.lab.path('files', 'initramfs-live.img')
                # NOTE: the uncompressed archive first: Ironic's image
                # cache decompresses a deploy ramdisk that starts with a
                # zstd frame, and fails on what follows the frame. The
                # kernel takes the archives in any order.
                self.livesys.append_initrds(
                    combined, [self.live.rootfs, self.live.initramfs])
                self.ramdisk_url = self.lab.url('files',
                                                '/initramfs-live.img')
                self.rootfs_url = None
            else:
                self.ramdisk_url = self.lab.publish(self.live.initramfs,
                                                    'initramfs.img')
                self.rootfs_url = self.lab.publish(self.live.rootfs,
                                                   'rootfs.img')
            # The installed system, for coreos-installer --image-url (with
            # its signature next to it, as on CoreOS's own servers).
            self.image_url = self.lab.publish(self.live.metal_gz,
                                              'metal.raw.gz')
            self.lab.publish(self.live.metal_gz + '.sig', 'metal.raw.gz.sig')
            self.key, self.pubkey = ssh_keypair(self.lab.path())
            with open(self.lab.path('live.pub'), 'w') as f:
                f.write(self.pubkey + '\n')
        except BaseException:
            self.lab.stop()
            raise

    def say(self, text):
        self.out.write('[vmlab %s] %s\n' % (time.strftime('%H:%M:%S'), text))
        self.out.flush()

    def stop(self):
        self.lab.stop()

    def sizes(self):
        """Bytes each node downloads: kernel, initramfs, rootfs, image."""
        return {name: os.path.getsize(path) for name, path in (
            ('kernel', self.live.kernel), ('initramfs', self.live.initramfs),
            ('rootfs', self.live.rootfs), ('agent_image', self.archive),
            ('os_image_gz', self.live.metal_gz))}

    def enroll(self, vm, deploy_interface, automated_clean=None):
        """Live Ignition for ``vm``, then enroll it to ``available``."""
        ign = self.lab.path('live-%d.ign' % vm.index)
        tool = os.path.join(os.path.dirname(sys.executable),
                            'ironic-coreos-live-ignition')
        usage = resources.run([tool, '--help']).stdout
        if '--insecure-registry' in usage:
            registry = ['--insecure-registry', self.lab.registry_host]
        else:
            # Older builder: podman's --tls-verify=false also allows HTTP.
            registry = ['--no-tls-verify']
        argv = [tool, '--image', self.image_ref] + registry + [
                '--api-url', self.lab.ironic.url,
                '--ssh-key-file', self.lab.path('live.pub'),
                # NOTE: on a link-local network the agent cannot pick its
                # own address: give it the one of the VM's reservation.
                '--set', 'DEFAULT.advertise_host=%s' % vm.ip,
                '--set', 'DEFAULT.lookup_timeout=900',
                '-o', ign]
        resources.run(argv, timeout=120)
        with open(ign, 'rb') as f:
            url = self.lab.write_file('live-%d.ign' % vm.index, f.read())
        kargs = self.livesys.kernel_args(ignition_url=url,
                                         rootfs_url=self.rootfs_url)
        return self.lab.enroll(vm, deploy_interface=deploy_interface,
                               deploy_kernel=self.kernel_url,
                               deploy_ramdisk=self.ramdisk_url,
                               kernel_append_params=kargs,
                               automated_clean=automated_clean)

    def live_iso_url(self):
        """URL of the CoreOS-alike's stock live ISO (built on first use).

        The ``coreos-redfish-virtual-media`` boot interface writes its
        per-node copy; see :mod:`.liveiso`.
        """
        name = 'coreos-alike-live.iso'
        path = os.path.join(self.lab.files_dir, name)
        if not os.path.exists(path):
            from ironic_coreos.tests.functional.vmlab import liveiso
            t = time.monotonic()
            liveiso.build(self.live, path)
            self.say('live ISO %s: %.0f MB (%.0fs)' % (
                name, os.path.getsize(path) / 1e6, time.monotonic() - t))
        return self.lab.url('files', '/' + name)

    def enroll_vmedia(self, vm, deploy_interface, automated_clean=False):
        """Enroll ``vm`` for virtual media boots with a static address.

        The node's network_data gives the live system ``vm.static_ip``;
        the agent advertises that address (on a link-local network it
        cannot pick one itself).
        """
        options = {'DEFAULT.advertise_host': vm.static_ip,
                   'DEFAULT.lookup_timeout': 900}
        return self.lab.enroll(
            vm, deploy_interface=deploy_interface,
            boot_interface='coreos-redfish-virtual-media',
            driver_info={'redfish_deploy_iso': self.live_iso_url(),
                         'coreos_agent_image': self.image_ref,
                         'coreos_agent_options': json.dumps(options)},
            network_data=network_data(vm),
            automated_clean=automated_clean)


class LiveProbe(object):
    """Looks into the live system over SSH while the agent works.

    One SSH session samples every two seconds or so: whether the installer
    runs, whether the VM disk has partitions, and the files in the agent's
    work directory. (A new session per sample took 10-20 s under
    emulation and missed the few seconds between the installer's end and
    the power-off.) The session is opened again when it drops.
    """

    SAMPLE = (
        # NOTE: [c] keeps pgrep from finding this very command.
        'pgrep -f "[c]oreos-installer" >/dev/null && echo RUNNING; '
        # NOTE: read the partition table from the disk: the kernel's view
        # (/sys/block/vda/vda1) was seen without partitions while the
        # installer was writing them.
        '[ "$(blkid -p -o value -s PTTYPE /dev/vda)" = gpt ] '
        '&& echo PARTITIONED; '
        'find %s -mindepth 1 -printf "FILE %%p %%m\\n" 2>/dev/null; '
        'free -m | awk \'/^Mem:/ {print "MEMUSED", $3}\'; '
        'echo DONE' % WORK_DIR)
    COMMAND = ['sudo', 'sh', '-c', 'while :; do %s; sleep 2; done' % SAMPLE]

    #: Once the installer ran: the live boot's milestones from its
    #: journal, in seconds since the guest's kernel started.
    TIMELINE = ['sh', '-c',
                'echo "UPTIME $(cut -d" " -f1 /proc/uptime)"; '
                'sudo journalctl -b -o short-monotonic --no-pager '
                '| grep -E "Switching root|Startup finished|ignition-complete|'
                'Ignition finished|ironic-agent|ironic-python-agent|'
                'Ironic Python Agent|Heartbeat|install_coreos" | head -60']

    def __init__(self, setup, vm, ip=None):
        self.setup = setup
        self.vm = vm
        self.ip = ip or vm.ip
        self.samples = []
        self.timeline = None
        self._timeline_thread = None
        self._proc = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name='vmlab-probe')

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
        self._thread.join(timeout=60)
        if self._timeline_thread is not None:
            self._timeline_thread.join(timeout=60)

    def _run(self):
        while not self._stop.is_set():
            try:
                self._proc = self.setup.lab.ssh_stream(
                    self.ip, self.COMMAND, self.setup.key)
            except Exception:
                self._proc = None
            if self._proc is not None:
                if self._stop.is_set():
                    self._proc.terminate()
                self._read(self._proc)
            self._stop.wait(3)

    def _read(self, proc):
        lines = []
        try:
            for line in proc.stdout:
                if line.strip() != 'DONE':
                    lines.append(line)
                    continue
                text = ''.join(lines) + 'DONE\n'
                lines = []
                self.samples.append((time.monotonic(), text))
                if 'RUNNING' in text and self._timeline_thread is None:
                    self._timeline_thread = threading.Thread(
                        target=self._read_timeline, daemon=True,
                        name='vmlab-probe-timeline')
                    self._timeline_thread.start()
        finally:
            proc.stdout.close()
            if proc.poll() is None:
                proc.terminate()
            proc.wait()

    def _read_timeline(self):
        try:
            proc = self.setup.lab.ssh(self.vm, self.ip, self.TIMELINE,
                                      self.setup.key, timeout=60)
        except Exception:
            return
        if 'UPTIME' in proc.stdout:
            self.timeline = (time.monotonic(), proc.stdout)

    def milestones(self):
        """Host monotonic times of the live boot's milestones.

        From the journal lines read once the installer ran: ``boot`` (the
        guest kernel started), ``switch_root`` (the initramfs, Ignition
        included, handed over to the live root), ``pull`` (the agent unit
        began pulling), ``pulled``, ``agent`` (the container's first
        output).
        """
        if not self.timeline:
            return {}
        taken, text = self.timeline
        up = re.search(r'^UPTIME ([\d.]+)', text, re.M)
        if not up:
            return {}
        boot = taken - float(up.group(1))
        marks = {'boot': boot}
        patterns = (
            ('switch_root', r'Switching root'),
            ('pull', r'Starting .*(Ironic Python Agent|ironic-agent)'),
            ('pulled', r'ironic-agent: pulled'),
            ('agent', r'ironic-python-agent\b(?!.*pull)|ironic_python_agent'),
        )
        for line in text.splitlines():
            stamp = re.match(r'\[\s*([\d.]+)\]', line)
            if not stamp:
                continue
            for name, pattern in patterns:
                if name not in marks and re.search(pattern, line):
                    if name == 'agent' and 'pulled' not in marks:
                        continue
                    marks[name] = boot + float(stamp.group(1))
        return marks

    def after_install(self):
        """Samples taken after the install.

        The disk is partitioned and no installer runs.
        """
        return [s for s in self.samples
                if 'PARTITIONED' in s[1] and 'RUNNING' not in s[1]]


class Deployment(object):
    """One deployment of one VM, with phase times and SSH checks.

    :param setup: the Setup.
    :param vm: the lab VM (enrolled).
    """

    def __init__(self, setup, vm, live_ip=None):
        self.setup = setup
        self.lab = setup.lab
        self.vm = vm
        self.live_ip = live_ip
        self.times = {}
        self.started = None
        self.started_wall = None
        self.probe = None

    def deploy(self, config_drive=None, deploy_steps=None,
               instance_info=None, probe=True):
        args = ['node', 'deploy', self.vm.node]
        if instance_info:
            set_args = ['node', 'set', self.vm.node]
            for key, value in instance_info.items():
                if not isinstance(value, str):
                    value = json.dumps(value)
                set_args += ['--instance-info', '%s=%s' % (key, value)]
            self.lab.ironic.cli(*set_args)
        drive_file = None
        if config_drive is not None:
            drive_file = os.path.join(self.vm.dir, 'configdrive')
            fd = os.open(drive_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                         0o600)
            with os.fdopen(fd, 'w') as f:
                f.write(config_drive if isinstance(config_drive, str)
                        else json.dumps(config_drive))
            args += ['--config-drive', drive_file]
        if deploy_steps is not None:
            args += ['--deploy-steps', json.dumps(deploy_steps)]
        if probe:
            self.probe = LiveProbe(self.setup, self.vm,
                                   ip=self.live_ip).start()
        self.started = time.monotonic()
        self.started_wall = time.time()
        try:
            self.lab.ironic.cli(*args)
        finally:
            if drive_file:
                os.unlink(drive_file)
        return self.started

    def wait(self, states=('active', 'deploy failed'), timeout=1800):
        try:
            return self.lab.wait(self.vm, states, timeout=timeout)
        finally:
            if self.probe is not None:
                self.probe.stop()
            self.phases()

    def phases(self):
        """Seconds of each phase (None when not seen); see the module."""
        history = list(self.vm.history)
        t0 = self.started

        def first(pred, after):
            for entry in history:
                if after is not None and entry[0] >= after and pred(entry):
                    return entry[0]
            return None

        on = first(lambda e: e[3] == 'power on', t0)
        looked_up = self.first_heartbeat()
        # NOTE: Ironic's database never says "power off" during the
        # tear-down (the soft power-off is polled, not recorded): the
        # phases after the lookup come from its log.
        off = self.log_time("Executing {'step': 'tear_down_agent'")
        on_again = self.log_time("finished deploy step {'step': "
                                 "'tear_down_agent'")
        active = (first(lambda e: e[1] == 'active', t0)
                  or self.log_time('moved to provision state "active"'))
        marks = {'power_on': (t0, on), 'lookup': (on, looked_up),
                 'install': (looked_up, off), 'teardown': (off, on_again),
                 'active': (t0, active)}
        # Inside the lookup phase, from the live system's journal.
        live = self.probe.milestones() if self.probe else {}
        if live:
            marks.update({
                'lookup.firmware': (on, live.get('boot')),
                'lookup.initramfs': (live.get('boot'),
                                     live.get('switch_root')),
                'lookup.to_pull': (live.get('switch_root'), live.get('pull')),
                'lookup.agent_pull': (live.get('pull'), live.get('pulled')),
                'lookup.agent_start': (live.get('pulled'), looked_up),
            })
        for name, (a, b) in marks.items():
            self.times[name] = round(b - a, 1) if a and b else None
        self.times['_reboot_at'] = on_again
        return self.times

    def first_heartbeat(self):
        """Monotonic time of the agent's first heartbeat, or None."""
        return self.log_time('Heartbeat from node %s' % self.vm.node)

    def log_time(self, needle):
        """Monotonic time of Ironic's first node line holding ``needle``.

        The first since the deploy call; None if there is none.

        From Ironic's log (local time stamps, as oslo.log writes them).
        """
        if self.started_wall is None:
            return None
        try:
            with open(self.lab.ironic.log_file, errors='replace') as f:
                for line in f:
                    if needle not in line or self.vm.node not in line:
                        continue
                    wall = ironic_time(line)
                    if wall is not None and wall >= self.started_wall:
                        return self.started + (wall - self.started_wall)
        except OSError:
            return None
        return None

    def wait_ssh(self, ip, timeout=900):
        """Wait until SSH as core answers at ``ip``; records ``ssh``."""
        def check():
            proc = self.lab.ssh(self.vm, ip, ['true'], self.setup.key,
                                timeout=30)
            return proc.returncode == 0
        lab_mod.wait_for('SSH to %s at %s' % (self.vm.name, ip), check,
                         timeout, interval=5,
                         detail=lambda: lab_mod.tail(self.vm.console, 3000))
        start = self.times.get('_reboot_at')
        if start:
            self.times['ssh'] = round(time.monotonic() - start, 1)
        return True

    def run(self, ip, command):
        """Run a command as core on the installed system; returns stdout.

        :raises: AssertionError with stderr when it fails.
        """
        proc = self.lab.ssh(self.vm, ip, command, self.setup.key)
        if proc.returncode:
            raise AssertionError('%s on %s failed (%d): %s'
                                 % (command, ip, proc.returncode,
                                    proc.stderr))
        return proc.stdout

    def report(self):
        shown = {k: v for k, v in self.times.items()
                 if not k.startswith('_')}
        return ' '.join('%s=%ss' % (k, v) for k, v in shown.items())


def ironic_time(line):
    """Wall time (epoch seconds) of an Ironic log line, or None.

    oslo.log writes local time stamps, ``YYYY-MM-DD HH:MM:SS.mmm``.
    """
    try:
        return datetime.datetime.strptime(
            line[:23], '%Y-%m-%d %H:%M:%S.%f').timestamp()
    except ValueError:
        return None


def iso_drive(setup, vm, hostname, with_network=True):
    """A Nova-style config drive: the user's Ignition, host name, key."""
    return fixtures.iso_config_drive(
        user_data=user_config(setup.pubkey),
        meta_data={'hostname': hostname, 'uuid': vm.uuid},
        network_data=network_data(vm) if with_network else None)
