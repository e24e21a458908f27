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

"""Self test of the CoreOS-alike live and installed system, with qemu only.

Run as root (after ``tools/install-deps.sh``)::

    python3 -m ironic_coreos.tests.functional.vmlab.selftest [--keep DIR]

1. Builds (or takes from the cache) the live system.
2. Boots it in qemu (software emulation, q35, OVMF; direct kernel boot of
   the live kernel with the root squashfs and a test Ignition config
   appended to the initramfs; a user-mode NIC with ``restrict=on``: no
   host or outside network) with a virtio disk and a SATA disk. Its
   Ignition config runs a container from an OCI archive with podman, then
   ``coreos-installer install --offline -i installed.ign`` onto the
   virtio disk, checks that the stand-in refuses the SATA disk, a
   partition and a character device, and powers off.
3. Boots the virtio disk through OVMF and the installed GRUB (no kernel
   given to qemu, no UEFI boot entry: the removable-media path
   ``EFI/BOOT/BOOTX64.EFI``). Its first boot runs Ignition with the
   installed config; a unit of that config reports host name, users, a
   file, the kernel command line and the network profile on the console
   and powers off.
4. Checks the serial logs and the disk (stamp and Ignition config gone
   from ``boot``, host name and SSH key on ``root``) and prints per-phase
   seconds.

Exit status 0 when every check passed; the last line is
``N passed, N failed``.
"""

import argparse
import base64
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time

from ironic_coreos.tests.functional.standin import disk as standin_disk
from ironic_coreos.tests.functional.vmlab import livesys

OVMF_CODE = '/usr/share/OVMF/OVMF_CODE_4M.fd'
OVMF_VARS = '/usr/share/OVMF/OVMF_VARS_4M.fd'
DISK_MIB = 6144
HOSTNAME = 'selftest-installed'
HELLO = 'hello from the installed Ignition config'
KARG = 'selftest.karg=a,b'
LIVE_TIMEOUT = 1800
INSTALLED_TIMEOUT = 900


def _data_url(data, compress=False):
    if compress:
        data = gzip.compress(data, 6)
    return 'data:;base64,' + base64.b64encode(data).decode()


def _file(path, data, mode, compress=False):
    entry = {'path': path, 'mode': mode,
             'contents': {'source': _data_url(data, compress)}}
    if compress:
        entry['contents']['compression'] = 'gzip'
    return entry


def oci_archive():
    """A tiny OCI image archive: dash and the C library of this machine.

    :returns: bytes of an ``oci-archive`` podman can run ``/bin/sh`` from.
    """
    files = {'bin/sh': '/usr/bin/dash'}
    ldd = subprocess.run(['ldd', '/usr/bin/dash'], capture_output=True,
                         check=True).stdout.decode()
    for path in re.findall(r'(/\S+\.so[.\d]*)', ldd):
        files[path.lstrip('/')] = os.path.realpath(path)
    layer_io = io.BytesIO()
    with tarfile.open(fileobj=layer_io, mode='w') as tar:
        dirs = set()
        for rel in files:
            parts = rel.split('/')[:-1]
            for i in range(1, len(parts) + 1):
                dirs.add('/'.join(parts[:i]))
        for d in sorted(dirs):
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(info)
        for rel, src in sorted(files.items()):
            with open(src, 'rb') as f:
                data = f.read()
            info = tarfile.TarInfo(rel)
            info.size = len(data)
            info.mode = 0o755
            tar.addfile(info, io.BytesIO(data))
    layer = layer_io.getvalue()
    layer_digest = hashlib.sha256(layer).hexdigest()
    config = json.dumps({
        'architecture': 'amd64', 'os': 'linux',
        'config': {'Cmd': ['/bin/sh']},
        'rootfs': {'type': 'layers', 'diff_ids': ['sha256:' + layer_digest]},
    }).encode()
    config_digest = hashlib.sha256(config).hexdigest()
    manifest = json.dumps({
        'schemaVersion': 2,
        'mediaType': 'application/vnd.oci.image.manifest.v1+json',
        'config': {'mediaType': 'application/vnd.oci.image.config.v1+json',
                   'digest': 'sha256:' + config_digest,
                   'size': len(config)},
        'layers': [{'mediaType': 'application/vnd.oci.image.layer.v1.tar',
                    'digest': 'sha256:' + layer_digest,
                    'size': len(layer)}],
    }).encode()
    manifest_digest = hashlib.sha256(manifest).hexdigest()
    index = json.dumps({
        'schemaVersion': 2,
        'manifests': [{
            'mediaType': 'application/vnd.oci.image.manifest.v1+json',
            'digest': 'sha256:' + manifest_digest, 'size': len(manifest),
            'annotations': {'org.opencontainers.image.ref.name':
                            'selftest:latest'}}],
    }).encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode='w') as tar:
        for name, data in (
                ('oci-layout', b'{"imageLayoutVersion": "1.0.0"}'),
                ('index.json', index),
                ('blobs/sha256/' + layer_digest, layer),
                ('blobs/sha256/' + config_digest, config),
                ('blobs/sha256/' + manifest_digest, manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


INSTALL_SCRIPT = '''#!/bin/bash
# Run by the live system's Ignition config (selftest).
say() { echo "$*" > /dev/ttyS0; }
say "SELFTEST-LIVE-HOST installer=$(stat -c %F /usr/bin/coreos-installer)"
start=$(date +%s)
coreos-installer install --offline -i /var/lib/selftest/installed.ign \\
    --append-karg KARG /dev/vda > /var/lib/selftest/install.log 2>&1
rc=$?
tail -n 12 /var/lib/selftest/install.log > /dev/ttyS0
say "SELFTEST-INSTALL rc=$rc seconds=$(( $(date +%s) - start ))"
udevadm settle || true
for dev in /dev/sda /dev/vda1 /dev/null; do
    coreos-installer install --offline "$dev" > /tmp/refuse.log 2>&1
    rc=$?
    why=$(grep -o 'refusing.*' /tmp/refuse.log | head -1)
    say "SELFTEST-REFUSE dev=$dev rc=$rc $why"
done
say "SELFTEST-LIVE-DONE"
systemctl poweroff
'''

REPORT_SCRIPT = '''#!/bin/bash
# Run on the installed system's first boot (selftest).
say() { echo "$*" > /dev/ttyS0; }
for _ in $(seq 1 120); do
    [ "$(systemctl is-active ssh.service)" = active ] && break
    sleep 1
done
say "SELFTEST-REPORT hostname=$(hostname)"
say "SELFTEST-REPORT ssh=$(systemctl is-active ssh.service)"
say "SELFTEST-REPORT core=$(id -nG core | tr ' ' ,)"
say "SELFTEST-REPORT alice=$(id -nG alice | tr ' ' ,)"
say "SELFTEST-REPORT hello=$(cat /etc/selftest/hello)"
keys=/home/core/.ssh/authorized_keys.d/ignition
say "SELFTEST-REPORT keys=$(wc -l < $keys) $(stat -c %U:%a $keys)"
say "SELFTEST-REPORT cmdline=$(cat /proc/cmdline)"
say "SELFTEST-REPORT nm=$(nmcli -g NAME connection show | tr '\\n' ,)"
say "SELFTEST-REPORT root=$(findmnt -n -o SOURCE,FSTYPE /)"
say "SELFTEST-REPORT-DONE"
systemctl poweroff
'''


def installed_config(ssh_key):
    """The Ignition config the stand-in installs (spec 3.3.0)."""
    keyfile = ('[connection]\nid=selftest-nic\ntype=ethernet\n'
               'autoconnect=true\n[ipv4]\nmethod=auto\n[ipv6]\n'
               'method=disabled\n')
    unit = ('[Unit]\nDescription=selftest report\n'
            'After=ssh.service NetworkManager.service\n'
            '[Service]\nType=oneshot\n'
            'ExecStart=/usr/local/bin/selftest-report\n'
            '[Install]\nWantedBy=multi-user.target\n')
    return {
        'ignition': {'version': '3.3.0'},
        'passwd': {'users': [
            {'name': 'core', 'sshAuthorizedKeys': [ssh_key]},
            {'name': 'alice', 'groups': ['wheel']},
        ]},
        'storage': {'files': [
            _file('/etc/hostname', (HOSTNAME + '\n').encode(), 0o644),
            _file('/etc/selftest/hello', (HELLO + '\n').encode(), 0o644),
            _file('/etc/NetworkManager/system-connections/'
                  'selftest-nic.nmconnection', keyfile.encode(), 0o600),
            _file('/usr/local/bin/selftest-report', REPORT_SCRIPT.encode(),
                  0o755),
        ]},
        'systemd': {'units': [
            {'name': 'selftest-report.service', 'enabled': True,
             'contents': unit}]},
    }


def live_config(installed):
    """The live system's Ignition config (spec 3.3.0)."""
    podman_unit = (
        '[Unit]\nDescription=selftest podman\nAfter=network.target\n'
        '[Service]\nType=oneshot\nStandardOutput=tty\nTTYPath=/dev/ttyS0\n'
        'ExecStart=/usr/bin/podman run --rm --network=none '
        'oci-archive:/var/lib/selftest/image.tar /bin/sh -c '
        '"echo SELFTEST-PODMAN-$$((6*7))"\n'
        '[Install]\nWantedBy=multi-user.target\n')
    install_unit = (
        '[Unit]\nDescription=selftest install\n'
        'After=selftest-podman.service\n'
        '[Service]\nType=oneshot\nExecStart=/usr/local/bin/selftest-install\n'
        '[Install]\nWantedBy=multi-user.target\n')
    return {
        'ignition': {'version': '3.3.0'},
        'storage': {'files': [
            _file('/var/lib/selftest/image.tar', oci_archive(), 0o600,
                  compress=True),
            _file('/var/lib/selftest/installed.ign',
                  json.dumps(installed).encode(), 0o600),
            _file('/usr/local/bin/selftest-install',
                  INSTALL_SCRIPT.replace('KARG', KARG).encode(), 0o755),
        ]},
        'systemd': {'units': [
            {'name': 'selftest-podman.service', 'enabled': True,
             'contents': podman_unit},
            {'name': 'selftest-install.service', 'enabled': True,
             'contents': install_unit}]},
    }


def qemu_argv(work, serial, kernel=None, initrd=None, append=None):
    argv = ['qemu-system-x86_64', '-machine', 'q35',
            '-accel', 'tcg,thread=multi', '-cpu', 'max', '-smp', '2',
            '-m', str(livesys.LIVE_MEMORY_MIB),
            '-nodefaults', '-display', 'none', '-no-reboot',
            '-drive', 'if=pflash,format=raw,unit=0,readonly=on,file=%s'
            % OVMF_CODE,
            '-drive', 'if=pflash,format=raw,unit=1,file=%s'
            % os.path.join(work, 'OVMF_VARS.fd'),
            '-drive', 'if=none,id=vda,format=raw,cache=unsafe,file=%s'
            % os.path.join(work, 'disk.raw'),
            '-device', 'virtio-blk-pci,drive=vda,bootindex=1',
            '-drive', 'if=none,id=sata,format=raw,cache=unsafe,file=%s'
            % os.path.join(work, 'sata.raw'),
            '-device', 'ide-hd,drive=sata,bus=ide.0',
            # User-mode network isolated from the host and the outside.
            '-netdev', 'user,id=n0,restrict=on',
            '-device', 'virtio-net-pci,netdev=n0,romfile=',
            '-serial', 'file:%s' % serial]
    if kernel:
        argv += ['-kernel', kernel, '-initrd', initrd, '-append', append]
    return argv


def run_vm(argv, serial, marks, timeout):
    """Run qemu until it exits; note when each mark appears in the log.

    :returns: (dict mark -> seconds, exit status, seconds in all).
    """
    start = time.monotonic()
    seen = {}
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
    try:
        while True:
            try:
                rc = proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                rc = None
            try:
                with open(serial, 'rb') as f:
                    text = f.read().decode(errors='replace')
            except OSError:
                text = ''
            now = round(time.monotonic() - start, 1)
            for name, pattern in marks.items():
                if name not in seen and pattern in text:
                    seen[name] = now
                    print('  %6.1f s  %s' % (now, name), flush=True)
            if rc is not None:
                return seen, rc, now
            if now > timeout:
                print('  timeout after %d s: stopping qemu' % timeout)
                proc.terminate()
                proc.wait(30)
                return seen, None, now
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


class Checks(object):
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, ok, what):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        print('%s: %s' % ('PASS' if ok else 'FAIL', what), flush=True)
        return ok


def _report(text, key):
    match = re.search(r'SELFTEST-REPORT %s=(.*)' % re.escape(key), text)
    return match.group(1).strip() if match else None


def main(argv=None):
    parser = argparse.ArgumentParser(prog='vmlab-selftest')
    parser.add_argument('--keep', metavar='DIR',
                        help='work in DIR and keep it (disks, serial logs)')
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print('selftest: must run as root')
        return 2
    for tool in ('qemu-system-x86_64', 'ssh-keygen', OVMF_CODE, OVMF_VARS):
        if not (shutil.which(tool) or os.path.exists(tool)):
            print('selftest: %s is missing; run tools/install-deps.sh'
                  % tool)
            return 2
    checks = Checks()
    timings = {}
    work = args.keep or tempfile.mkdtemp(prefix='vmlab-selftest-')
    os.makedirs(work, exist_ok=True)
    try:
        t0 = time.monotonic()
        live = livesys.build()
        timings['build (cached or not)'] = round(time.monotonic() - t0, 1)
        print('live system: %s' % live.directory)
        for name in ('kernel', 'initramfs', 'rootfs', 'metal'):
            path = getattr(live, name)
            st = os.stat(path)
            print('  %-9s %7.1f MiB (%7.1f MiB allocated)' % (
                name, st.st_size / 2.0 ** 20, st.st_blocks * 512 / 2.0 ** 20))

        key_path = os.path.join(work, 'id_ed25519')
        if not os.path.exists(key_path):
            subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '',
                            '-C', 'selftest', '-f', key_path], check=True)
        with open(key_path + '.pub') as f:
            ssh_key = f.read().strip()
        installed = installed_config(ssh_key)
        config = json.dumps(live_config(installed)).encode()
        print('live Ignition config: %d bytes' % len(config))
        initrd = os.path.join(work, 'live-initrd.img')
        livesys.append_initrds(initrd, [live.initramfs, live.rootfs,
                                        livesys.config_cpio(config)])
        for name, mib in (('disk.raw', DISK_MIB), ('sata.raw', 64)):
            with open(os.path.join(work, name), 'wb') as f:
                f.truncate(mib * 2 ** 20)
        shutil.copyfile(OVMF_VARS, os.path.join(work, 'OVMF_VARS.fd'))

        print('boot 1: live system (direct kernel boot)')
        serial1 = os.path.join(work, 'serial-live.log')
        append = livesys.kernel_args()
        print('  kernel args: %s' % append)
        marks1 = {'kernel started': 'Linux version',
                  'Ignition done (live)': livesys.IGNITION_DONE,
                  'switched root': 'Switch Root',
                  'podman container ran': 'SELFTEST-PODMAN-42',
                  'install done': 'SELFTEST-INSTALL',
                  'live done': 'SELFTEST-LIVE-DONE'}
        seen1, rc1, total1 = run_vm(
            qemu_argv(work, serial1, live.kernel, initrd, append),
            serial1, marks1, LIVE_TIMEOUT)
        timings.update({'live: ' + k: v for k, v in seen1.items()})
        timings['live: powered off'] = total1
        with open(serial1, 'rb') as f:
            text1 = f.read().decode(errors='replace')
        checks.check(rc1 == 0, 'live VM powered off by itself (rc %s)' % rc1)
        for name in marks1:
            checks.check(name in seen1, 'live: %s' % name)
        match = re.search(r'SELFTEST-INSTALL rc=(\d+) seconds=(\d+)', text1)
        checks.check(match and match.group(1) == '0',
                     'coreos-installer install --offline exited 0')
        if match:
            timings['live: install (seconds inside the VM)'] = int(
                match.group(2))
        checks.check('installer=regular file' in text1,
                     '/usr/bin/coreos-installer is a regular file')
        for dev in ('/dev/sda', '/dev/vda1', '/dev/null'):
            line = re.search(r'SELFTEST-REFUSE dev=%s rc=(\d+) (.*)'
                             % re.escape(dev), text1)
            checks.check(line and line.group(1) == '1'
                         and 'refusing to write to %s' % dev in line.group(2),
                         'stand-in refuses %s: %s' % (
                             dev, line.group(2).strip() if line else None))

        info = standin_disk.inspect_disk(os.path.join(work, 'disk.raw'))
        names = [p['name'] for p in info['partitions'] or []]
        checks.check(names == ['BIOS-BOOT', 'EFI-SYSTEM', 'boot', 'root'],
                     'GPT like Fedora CoreOS: %s' % names)
        checks.check(info['firstboot'] is not None,
                     'ignition.firstboot stamp written')
        checks.check(info['ignition'] is not None
                     and json.loads(info['ignition']) == installed,
                     'ignition/config.ign is the config given with -i')
        checks.check(KARG in (info['kargs'] or []),
                     '--append-karg %s in the BLS options' % KARG)

        print('boot 2: installed system (OVMF, GRUB from the disk)')
        serial2 = os.path.join(work, 'serial-installed.log')
        marks2 = {'GRUB or kernel started': 'Linux version',
                  'Ignition done (first boot)':
                      livesys.IGNITION_DONE,
                  'switched root': 'Switch Root',
                  'report': 'SELFTEST-REPORT hostname',
                  'report done': 'SELFTEST-REPORT-DONE'}
        seen2, rc2, total2 = run_vm(qemu_argv(work, serial2), serial2,
                                    marks2, INSTALLED_TIMEOUT)
        timings.update({'installed: ' + k: v for k, v in seen2.items()})
        timings['installed: powered off'] = total2
        with open(serial2, 'rb') as f:
            text2 = f.read().decode(errors='replace')
        checks.check(rc2 == 0, 'installed VM powered off by itself')
        for name in marks2:
            checks.check(name in seen2, 'installed: %s' % name)
        checks.check(_report(text2, 'hostname') == HOSTNAME,
                     'host name from Ignition: %s' % _report(text2,
                                                             'hostname'))
        checks.check(_report(text2, 'ssh') == 'active', 'sshd active')
        checks.check('wheel' in (_report(text2, 'core') or ''),
                     'user core in wheel: %s' % _report(text2, 'core'))
        checks.check('wheel' in (_report(text2, 'alice') or ''),
                     'user alice made by Ignition, in wheel: %s'
                     % _report(text2, 'alice'))
        checks.check(_report(text2, 'hello') == HELLO, 'file from Ignition')
        checks.check(_report(text2, 'keys') == '1 core:600',
                     'SSH key in authorized_keys.d/ignition')
        cmdline = (_report(text2, 'cmdline') or '').split()
        checks.check('ignition.firstboot' in cmdline and KARG in cmdline
                     and 'ignition.platform.id=metal' in cmdline,
                     'first boot kernel args from grub.cfg: %s'
                     % ' '.join(cmdline))
        checks.check('selftest-nic' in (_report(text2, 'nm') or ''),
                     'NetworkManager keyfile from Ignition: %s'
                     % _report(text2, 'nm'))
        info2 = standin_disk.inspect_disk(os.path.join(work, 'disk.raw'))
        checks.check(info2['firstboot'] is None,
                     'ignition.firstboot stamp removed after first boot')
        checks.check(info2['ignition'] is None,
                     'ignition/config.ign removed after first boot')
    finally:
        print('timings (seconds from qemu start; host load %s):'
              % ' '.join('%.1f' % x for x in os.getloadavg()))
        for name, value in timings.items():
            print('  %-45s %s' % (name, value))
        print('work directory: %s%s' % (work, '' if args.keep
                                        else ' (removed)'))
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print('%d passed, %d failed' % (checks.passed, checks.failed))
    return 0 if checks.failed == 0 else 1


if __name__ == '__main__':
    sys.exit(main())
