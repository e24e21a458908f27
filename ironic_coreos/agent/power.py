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

"""``poweroff`` and ``reboot`` of the agent's container on the live system.

ironic-python-agent ends a deployment with ``poweroff`` (``reboot`` for
in-band reboots of cleaning and service steps). A container has no init of
its own, so in the agent image (``container/Containerfile``) these two
commands are this module: it asks the live system's systemd, through the
host root that the live unit mounts at ``/mnt/coreos`` (recursively, so
the host's ``/run`` with systemd's socket is there), with
``chroot /mnt/coreos systemctl --no-block poweroff|reboot``. systemd then
stops the live system's units, the agent's container among them. If that
fails, or the live system is still up after a bounded wait, the kernel's
SysRq trigger syncs the disks and powers off or reboots.

It acts only in a podman container (``/run/.containerenv``) whose host root
is another file system root with systemd running and a ``systemctl``;
anywhere else it refuses and does nothing.
"""

import argparse
import os
import socket
import subprocess
import sys
import time

HOST_ROOT = '/mnt/coreos'
SYSRQ_TRIGGER = '/proc/sysrq-trigger'
# systemd-journald's native socket, inside the host root.
JOURNAL_SOCKET = 'run/systemd/journal/socket'
SYSTEMCTL_PATHS = ('usr/bin/systemctl', 'bin/systemctl')
# Seconds for systemctl to queue the job.
SYSTEMCTL_TIMEOUT = 30
# Seconds for the live system to stop this container before SysRq.
SHUTDOWN_WAIT = 60

ACTIONS = {'poweroff': b'o', 'reboot': b'b'}


class Refused(Exception):
    """This is not the agent's container on a live system."""


def _say(text, host_root=HOST_ROOT):
    """Tell standard error and, when it can be reached, the host's journal.

    ironic-python-agent keeps a command's output only when it fails; the
    live system's journal (its native socket under the host root) keeps
    the way it went either way.
    """
    name = os.path.basename(sys.argv[0]) or 'host-power'
    print('%s: %s' % (name, text), file=sys.stderr, flush=True)
    if host_root is None:
        return
    socket_path = os.path.join(host_root, JOURNAL_SOCKET)
    if not os.path.exists(socket_path):
        return
    fields = 'MESSAGE=%s\nSYSLOG_IDENTIFIER=%s\nPRIORITY=5\n' % (
        text.replace('\n', ' '), name)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.settimeout(5)
            sock.sendto(fields.encode(), socket_path)
    except OSError:
        pass


def find_systemctl(host_root):
    """The host's systemctl, as a path inside the host root, or None."""
    for path in SYSTEMCTL_PATHS:
        full = os.path.join(host_root, path)
        if os.path.isfile(full) and os.access(full, os.X_OK):
            return '/' + path
    return None


def check_environment(host_root=HOST_ROOT, root='/'):
    """Check that this is the agent's container on a live system.

    :param host_root: where the host's root is mounted.
    :param root: this container's root (a test points it elsewhere).
    :returns: the host's systemctl as a path inside the host root.
    :raises: Refused, saying why, anywhere else.
    """
    if not os.path.exists(os.path.join(root, 'run/.containerenv')):
        raise Refused('not in a podman container (no /run/.containerenv); '
                      'run the system\'s own poweroff or reboot instead')
    if not os.path.isdir(host_root):
        raise Refused('the host root %s is missing; the agent container '
                      'needs the host\'s / mounted there (--volume '
                      '/:%s:rbind)' % (host_root, HOST_ROOT))
    ours = os.stat(root)
    theirs = os.stat(host_root)
    if (ours.st_dev, ours.st_ino) == (theirs.st_dev, theirs.st_ino):
        raise Refused('the host root %s is this container\'s own root'
                      % host_root)
    if not os.path.isdir(os.path.join(host_root, 'run/systemd/system')):
        raise Refused('systemd does not run the host at %s (no '
                      'run/systemd/system there): mount the host\'s / '
                      'recursively (rbind) so that its /run is visible'
                      % host_root)
    systemctl = find_systemctl(host_root)
    if not systemctl:
        raise Refused('no systemctl in the host root %s (looked for %s)'
                      % (host_root, ', '.join(SYSTEMCTL_PATHS)))
    return systemctl


def ask_systemd(action, host_root, systemctl, timeout=SYSTEMCTL_TIMEOUT):
    """Ask the host's systemd to power off or reboot.

    :returns: None when systemd took the job, else why not.
    """
    argv = ['chroot', host_root, systemctl, '--no-block', action]
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=timeout)
    except subprocess.TimeoutExpired:
        return 'systemctl did not answer in %d seconds' % timeout
    except OSError as exc:
        return 'cannot run %s: %s' % (' '.join(argv), exc)
    output = proc.stdout.decode(errors='replace').strip()
    if proc.returncode != 0:
        return 'systemctl %s exited with %d: %s' % (
            action, proc.returncode, output or '(no output)')
    if 'ignoring request' in output:
        # systemctl thinks it runs in a chroot and did nothing.
        return 'systemctl ignored the request: %s' % output
    return None


def sysrq(action, trigger=SYSRQ_TRIGGER):
    """Sync the disks and power off or reboot through the SysRq trigger.

    :returns: None (when it returns at all), or why it failed.
    """
    try:
        with open(trigger, 'wb', buffering=0) as f:
            f.write(b's')
            f.write(ACTIONS[action])
    except OSError as exc:
        return 'cannot write %s: %s' % (trigger, exc)
    return None


def run(action, host_root=HOST_ROOT, root='/', wait=SHUTDOWN_WAIT,
        trigger=SYSRQ_TRIGGER, sleep=time.sleep):
    """Power off or reboot the live system from the agent's container.

    :param action: ``poweroff`` or ``reboot``.
    :param wait: seconds to wait for the live system to stop this
        container once systemd took the job, before the SysRq fallback.
    :returns: the exit status.
    """
    try:
        systemctl = check_environment(host_root, root)
    except Refused as exc:
        # Not the agent's container: touch nothing of the host's.
        _say('refusing to %s: %s' % (action, exc), None)
        return 1
    why = ask_systemd(action, host_root, systemctl)
    if why is None:
        _say('the live system\'s systemd is shutting down for %s; waiting '
             'up to %d seconds' % (action, wait), host_root)
        sleep(wait)
        _say('the live system is still up after %d seconds; %s through '
             'SysRq' % (wait, action), host_root)
    else:
        _say('%s through systemd failed (%s); %s through SysRq'
             % (action, why, action), host_root)
    why = sysrq(action, trigger)
    if why:
        _say('%s failed: %s' % (action, why), host_root)
        return 1
    return 0


def _seconds(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError('%r is not a number of seconds '
                                         '(0 or more)' % text)
    return value


def main(argv=None):
    """Entry point of the image's ``poweroff`` and ``reboot``.

    :param argv: the action (``poweroff`` or ``reboot``) and its options;
        by default the name this program was called by (``poweroff`` and
        ``reboot`` are links to it) and its arguments.
    :returns: the exit status.
    """
    if argv is None:
        name = os.path.basename(sys.argv[0])
        argv = ([name] if name in ACTIONS else []) + sys.argv[1:]
    parser = argparse.ArgumentParser(
        prog='host-power',
        description='Power off or reboot the live system from the agent '
                    'container through the host\'s systemd.')
    parser.add_argument('action', choices=sorted(ACTIONS))
    parser.add_argument('--host-root', default=HOST_ROOT,
                        help='where the host\'s / is mounted '
                             '(default: %(default)s)')
    parser.add_argument('--wait', type=_seconds, default=SHUTDOWN_WAIT,
                        help='seconds to wait for the shutdown before the '
                             'SysRq fallback (default: %(default)s)')
    opts = parser.parse_args(argv)
    return run(opts.action, host_root=opts.host_root, wait=opts.wait)


if __name__ == '__main__':
    sys.exit(main())
