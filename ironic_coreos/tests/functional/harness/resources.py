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

"""Book-keeping of everything an end-to-end run creates on the host.

Every process, network namespace, link, loop device, mount and temporary
path is recorded *before* it is created, in memory and in a journal file
(``resources.json`` in the run's state directory), and torn down in reverse
order by :meth:`Registry.cleanup`. Only recorded things are ever removed or
killed. :func:`sweep_stale` cleans up after a run that was killed before
its own cleanup could run (its journal survives it).
"""

import atexit
import json
import os
import shutil
import signal
import subprocess
import threading
import time

from oslo_log import log

LOG = log.getLogger(__name__)

#: Parent directory of the per-run state directories.
RUNS_ROOT = '/tmp/ironic-coreos-e2e'
JOURNAL = 'resources.json'


def run(argv, check=True, timeout=60, input=None):
    """Run a host command (argv list, never a shell).

    :param argv: the command as a list of strings.
    :param check: raise when the command fails.
    :param timeout: seconds before the command is killed.
    :param input: bytes for stdin.
    :returns: the CompletedProcess (stdout/stderr as text).
    :raises: RuntimeError naming the command and its stderr if it fails and
        check is true.
    """
    proc = subprocess.run(argv, capture_output=True, timeout=timeout,
                          input=input)
    proc.stdout = proc.stdout.decode('utf-8', 'replace')
    proc.stderr = proc.stderr.decode('utf-8', 'replace')
    if check and proc.returncode != 0:
        raise RuntimeError('command %s failed with status %d: %s'
                           % (argv, proc.returncode, proc.stderr.strip()))
    return proc


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _proc_start_time(pid):
    """Start time of a process in clock ticks (to tell a reused pid)."""
    try:
        with open('/proc/%d/stat' % pid) as f:
            data = f.read()
    except OSError:
        return None
    return int(data.rsplit(')', 1)[1].split()[19])


def kill_process(pid, start_time=None, grace=5.0, hard=False):
    """Terminate a recorded process and its process group.

    The process was started with ``start_new_session=True`` so its process
    group id is its pid; the group holds only what it spawned.

    :param pid: the recorded pid.
    :param start_time: the recorded start time; when it no longer matches
        the pid was reused by someone else and nothing is killed.
    :param grace: seconds between SIGTERM and SIGKILL.
    :param hard: SIGKILL at once (a machine losing power).
    """
    if not _pid_alive(pid):
        return
    if start_time is not None and _proc_start_time(pid) != start_time:
        LOG.warning('Not killing pid %s: it is no longer the recorded '
                    'process', pid)
        return
    try:
        leader = os.getpgid(pid) == pid
    except ProcessLookupError:
        return
    steps = [(signal.SIGKILL, 5.0)]
    if not hard:
        steps.insert(0, (signal.SIGTERM, grace))
    for sig, wait in steps:
        try:
            if leader:
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                done, _status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid if not _pid_alive(pid) else 0
            if done == pid or not _pid_alive(pid):
                return
            time.sleep(0.05)


def stop_recorded(registry, proc, record, grace=5.0):
    """Stop a process started and recorded by ``registry``; forget it.

    SIGTERM to its process group, SIGKILL after ``grace`` seconds (see
    :func:`kill_process`), then the record goes.
    """
    kill_process(proc.pid, record.get('start_time'), grace=grace)
    proc.poll()
    registry.forget(record)


def log_tail(path, size=2000):
    """The last ``size`` bytes of a log file as text ('' if unreadable)."""
    try:
        with open(path, 'rb') as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - size))
            return f.read().decode('utf-8', 'replace')
    except OSError:
        return ''


def _teardown(kind, data):
    """Remove one recorded resource; every branch tolerates absence."""
    if kind == 'process':
        if data.get('pid'):
            kill_process(data['pid'], data.get('start_time'))
    elif kind == 'mount':
        with open('/proc/mounts') as f:
            mounted = [line.split()[1] for line in f]
        if data['path'] in mounted:
            run(['umount', '-l', data['path']], check=False)
    elif kind == 'loop':
        # Detach whatever is attached to our backing file, which also
        # covers a device attached after the record but not yet noted.
        out = run(['losetup', '-j', data['backing_file']], check=False)
        for line in out.stdout.splitlines():
            dev = line.split(':', 1)[0]
            if dev.startswith('/dev/loop'):
                run(['losetup', '-d', dev], check=False)
    elif kind == 'netns':
        if os.path.exists('/run/netns/%s' % data['name']):
            # Kill what is left in the namespace, but only processes of
            # this run (they carry the run id in their environment).
            out = run(['ip', 'netns', 'pids', data['name']], check=False)
            for pid in out.stdout.split():
                if _env_has(int(pid), data.get('marker')):
                    kill_process(int(pid), grace=2.0)
            run(['ip', 'netns', 'delete', data['name']], check=False)
    elif kind == 'link':
        if os.path.exists('/sys/class/net/%s' % data['name']):
            run(['ip', 'link', 'delete', data['name']], check=False)
    elif kind == 'path':
        path = data['path']
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        elif os.path.lexists(path):
            os.unlink(path)


def _env_has(pid, marker):
    if not marker:
        return False
    try:
        with open('/proc/%d/environ' % pid, 'rb') as f:
            return marker.encode() in f.read().split(b'\0')
    except OSError:
        return False


class Registry(object):
    """Records host resources before they exist and removes them all."""

    def __init__(self, journal_dir, keep=False):
        self._lock = threading.RLock()
        self._items = []
        self.keep = keep
        self._journal = os.path.join(journal_dir, JOURNAL)
        self._closed = False
        self._write()

    def record(self, kind, **data):
        """Record a resource about to be created.

        :param kind: process, netns, link, loop, mount or path.
        :param data: what teardown needs (name, path, pid ...).
        :returns: the record (a dict); update it with :meth:`update`.
        """
        with self._lock:
            if self._closed:
                raise RuntimeError('the run is being torn down')
            item = dict(data, kind=kind)
            self._items.append(item)
            self._write()
            return item

    def update(self, item, **data):
        """Add facts learnt after creation (a pid, a device name)."""
        with self._lock:
            item.update(data)
            self._write()

    def forget(self, item):
        """Drop a record after the resource was removed normally."""
        with self._lock:
            if item in self._items:
                self._items.remove(item)
                self._write()

    def items(self, kind=None):
        with self._lock:
            return [dict(i) for i in self._items
                    if kind is None or i['kind'] == kind]

    def _write(self):
        tmp = self._journal + '.tmp'
        with open(tmp, 'w') as f:
            json.dump({'owner': os.getpid(), 'keep': self.keep,
                       'owner_start': _proc_start_time(os.getpid()),
                       'items': self._items}, f)
        os.replace(tmp, self._journal)

    def cleanup(self):
        """Tear everything down, newest first. Safe to call twice."""
        with self._lock:
            self._closed = True
            items = list(reversed(self._items))
        for item in items:
            try:
                _teardown(item['kind'], item)
            except Exception as e:
                LOG.warning('Teardown of %(kind)s %(item)s failed: %(e)s',
                            {'kind': item['kind'], 'item': item, 'e': e})
            else:
                with self._lock:
                    if item in self._items:
                        self._items.remove(item)
        with self._lock:
            if os.path.exists(os.path.dirname(self._journal)):
                self._write()


def sweep_stale():
    """Tear down what runs killed before their cleanup left behind.

    Only journals whose owner process is gone are processed.

    :returns: the number of stale runs cleaned.
    """
    cleaned = 0
    if not os.path.isdir(RUNS_ROOT):
        return 0
    for name in sorted(os.listdir(RUNS_ROOT)):
        journal = os.path.join(RUNS_ROOT, name, JOURNAL)
        try:
            with open(journal) as f:
                data = json.load(f)
        except (OSError, ValueError):
            continue
        owner = data.get('owner')
        if owner and _pid_alive(owner) and (
                _proc_start_time(owner) == data.get('owner_start')):
            continue
        for item in reversed(data.get('items', [])):
            try:
                _teardown(item['kind'], item)
            except Exception as e:
                LOG.warning('Stale teardown of %(item)s failed: %(e)s',
                            {'item': item, 'e': e})
        if data.get('keep'):
            # Logs kept on purpose (IRONIC_COREOS_E2E_KEEP=1): only forget
            # the resources, which are gone now.
            os.unlink(journal)
        else:
            shutil.rmtree(os.path.join(RUNS_ROOT, name), ignore_errors=True)
        cleaned += 1
    return cleaned


_ACTIVE = []
_HANDLERS_INSTALLED = []


def _cleanup_all(*_args):
    while _ACTIVE:
        reg = _ACTIVE.pop()
        reg.cleanup()


def _on_signal(signum, frame):
    _cleanup_all()
    # Re-raise the default behaviour (exit with the signal's status).
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def guard(registry):
    """Make sure the registry is cleaned at exit and on SIGTERM/SIGINT/HUP.

    :param registry: a Registry.
    """
    _ACTIVE.append(registry)
    if not _HANDLERS_INSTALLED:
        atexit.register(_cleanup_all)
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGHUP):
                signal.signal(sig, _on_signal)
            # SIGINT stays KeyboardInterrupt: the callers' finally blocks
            # and atexit clean up.
        _HANDLERS_INSTALLED.append(True)


def unguard(registry):
    if registry in _ACTIVE:
        _ACTIVE.remove(registry)
