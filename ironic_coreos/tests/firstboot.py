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

"""First-boot oracle: apply an Ignition config with the real Ignition.

Runs the Ignition binary from Debian's ``ignition`` package (the one dracut
would run on a CoreOS first boot) against a fresh scratch directory instead
of the installed system's root, so tests can look at what the first boot of
a deployed node would produce: files, modes, owners, SSH keys, enabled
units.

Usage::

    result = firstboot.apply(config)          # dict, JSON text or bytes
    self.addCleanup(result.cleanup)
    root, needs_network = result
    self.assertEqual(b'node-1\\n', result.read('/etc/hostname'))
    self.assertIn(key, result.authorized_keys('core'))

or ``self.useFixture(firstboot.FirstBootFixture(config)).result``.

The scratch root looks enough like Fedora CoreOS for Ignition's ``files``
stage: ``/etc/{passwd,group,shadow,gshadow}`` with root, the groups CoreOS
has (wheel, adm, sudo, systemd-journal) and the user ``core`` (uid and gid
1000, home ``/home/core``), ``login.defs`` with ``USERGROUPS_ENAB yes`` so
new users get their own group from 1001 on, and ``/etc/selinux/config``. A
no-op ``setfiles`` on PATH stands in for the SELinux relabel. The scratch
directory and its parents are world-executable because Ignition writes SSH
keys as the user.

Needs root. Debian's Ignition (2.14) applies spec 3.0.0 to 3.3.0 and
3.4.0-experimental; a config declaring 3.4.0 or newer is applied as
3.4.0-experimental unless ``downgrade=False`` (fields newer than that are
ignored by Ignition with a warning; :attr:`Result.version` says what was
applied).
"""

import json
import os
import shutil
import stat
import subprocess
import tempfile

import fixtures

IGNITION = '/usr/lib/dracut/modules.d/30ignition/ignition'
SYSTEMCTL = shutil.which('systemctl') or '/usr/bin/systemctl'
# Newest spec version the Debian build applies as stable, and the
# experimental version it knows.
NEWEST_STABLE = '3.3.0'
EXPERIMENTAL = '3.4.0-experimental'
_NEWER = ('3.4.0', '3.5.0', '3.6.0')

CORE_UID = 1000
_PASSWD = ('root:x:0:0:root:/root:/bin/bash\n'
           'core:x:1000:1000:CoreOS Admin:/home/core:/bin/bash\n')
_GROUPS = (('root', 0, ''), ('adm', 4, 'core'), ('wheel', 10, 'core'),
           ('sudo', 16, 'core'), ('systemd-journal', 190, 'core'),
           ('core', 1000, ''))
_LOGIN_DEFS = ('UID_MIN 1000\nUID_MAX 60000\nGID_MIN 1000\nGID_MAX 60000\n'
               'USERGROUPS_ENAB yes\nCREATE_HOME yes\nUMASK 022\n'
               'ENCRYPT_METHOD SHA512\n')


class FirstBootError(Exception):
    """Ignition failed; ``log`` holds its output."""

    def __init__(self, message, log=''):
        super().__init__('%s\n--- Ignition log ---\n%s' % (message, log)
                         if log else message)
        self.log = log


def unavailable_reason():
    """Why the oracle cannot run here, or None when it can.

    :returns: a string or None.
    """
    if not os.access(IGNITION, os.X_OK):
        return ('the Ignition binary %s is missing (apt-get install '
                'ignition)' % IGNITION)
    return None


class Result:
    """What a first boot produced.

    Iterating gives ``(root, needs_network)``.

    :ivar root: the scratch root directory Ignition wrote into.
    :ivar needs_network: whether Ignition's fetch-offline stage found that
        the config needs network at first boot.
    :ivar log: Ignition's output of every stage.
    :ivar version: the spec version that was applied.
    :ivar work_dir: the directory holding ``root`` and Ignition's state;
        :meth:`cleanup` removes it.
    """

    def __init__(self, work_dir, root, needs_network, log, version):
        self.work_dir = work_dir
        self.root = root
        self.needs_network = needs_network
        self.log = log
        self.version = version

    def __iter__(self):
        return iter((self.root, self.needs_network))

    def path(self, path):
        """The host path of ``path`` on the first-booted system.

        :param path: an absolute path such as ``/etc/hostname``.
        :returns: the path below :attr:`root`.
        """
        return os.path.join(self.root, path.lstrip('/'))

    def read(self, path):
        """Bytes of a file on the first-booted system.

        :param path: an absolute path such as ``/etc/hostname``.
        :returns: bytes.
        :raises: OSError if there is no such file.
        """
        with open(self.path(path), 'rb') as stream:
            return stream.read()

    def mode(self, path):
        """Permission bits of a file, e.g. ``0o600``.

        :param path: an absolute path.
        :returns: an integer.
        """
        return stat.S_IMODE(os.lstat(self.path(path)).st_mode)

    def owner(self, path):
        """(uid, gid) of a file.

        :param path: an absolute path.
        :returns: a tuple of two integers.
        """
        info = os.lstat(self.path(path))
        return (info.st_uid, info.st_gid)

    def home(self, user):
        """Home directory of ``user`` per the root's /etc/passwd.

        :param user: a user name.
        :returns: an absolute path on the first-booted system, or None.
        """
        for line in self.read('/etc/passwd').decode().splitlines():
            fields = line.split(':')
            if len(fields) >= 6 and fields[0] == user:
                return fields[5]
        return None

    def authorized_keys(self, user='core'):
        """SSH keys Ignition installed for ``user``.

        Reads ``~/.ssh/authorized_keys`` and every file in
        ``~/.ssh/authorized_keys.d/`` (where Ignition 2.14 writes).

        :param user: a user name.
        :returns: a list of key lines.
        """
        home = self.home(user)
        if home is None:
            return []
        ssh = self.path(os.path.join(home, '.ssh'))
        paths = [os.path.join(ssh, 'authorized_keys')]
        fragments = os.path.join(ssh, 'authorized_keys.d')
        if os.path.isdir(fragments):
            paths.extend(os.path.join(fragments, name)
                         for name in sorted(os.listdir(fragments)))
        keys = []
        for path in paths:
            if os.path.isfile(path):
                with open(path) as stream:
                    keys.extend(line.strip() for line in stream
                                if line.strip()
                                and not line.startswith('#'))
        return keys

    def cleanup(self):
        """Remove the scratch directory."""
        shutil.rmtree(self.work_dir, ignore_errors=True)


def apply_file(path, **kwargs):
    """Apply the Ignition config stored in a file.

    :param path: path of the config (e.g. the installer's config.ign).
    :param kwargs: as for :func:`apply`.
    :returns: a :class:`Result`.
    :raises: FirstBootError if Ignition fails.
    """
    with open(path, 'rb') as stream:
        return apply(stream.read(), **kwargs)


def apply(config, base_dir=None, timeout=60, downgrade=True, preset=True):
    """Run Ignition's first-boot stages for ``config`` in a scratch root.

    Runs ``fetch-offline``, ``fetch`` when the config needs network (its
    remote sources must then be reachable), and ``files``; then
    ``systemctl --root ROOT preset-all`` when Ignition wrote a preset file.

    :param config: the config as a dict, JSON text or bytes.
    :param base_dir: where to create the scratch directory (default: the
        system temporary directory). Every directory from it up must be
        world-executable; missing o+x is added below the system temporary
        directory, anything else raises.
    :param timeout: seconds allowed for each Ignition run.
    :param downgrade: apply configs declaring 3.4.0 or newer as
        3.4.0-experimental (what this Ignition build knows).
    :param preset: run ``systemctl preset-all`` on the root afterwards.
    :returns: a :class:`Result`; call its ``cleanup()`` when done.
    :raises: FirstBootError if the oracle cannot run or Ignition fails
        (with Ignition's log); the scratch directory is removed then.
    """
    reason = unavailable_reason()
    if not reason and os.geteuid() != 0:
        reason = ('it needs root (Ignition creates users and writes files '
                  'owned by them)')
    if reason:
        raise FirstBootError('Cannot run the first-boot oracle: %s' % reason)
    data, version = _prepare_config(config, downgrade)

    base_dir = os.path.abspath(base_dir or tempfile.gettempdir())
    _world_executable(base_dir)
    work_dir = tempfile.mkdtemp(prefix='firstboot-', dir=base_dir)
    try:
        os.chmod(work_dir, 0o755)
        root = _make_root(work_dir)
        config_file = os.path.join(work_dir, 'config.ign')
        fd = os.open(config_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                     0o600)
        with os.fdopen(fd, 'wb') as stream:
            stream.write(data)
        neednet = os.path.join(work_dir, 'neednet')
        logs = []
        _run_stage(work_dir, root, config_file, 'fetch-offline', timeout,
                   logs)
        needs_network = os.path.exists(neednet)
        if needs_network:
            _run_stage(work_dir, root, config_file, 'fetch', timeout, logs)
        _run_stage(work_dir, root, config_file, 'files', timeout, logs)
        if preset and os.path.isdir(
                os.path.join(root, 'etc/systemd/system-preset')):
            _run_preset(root, timeout, logs)
    except BaseException:
        shutil.rmtree(work_dir, ignore_errors=True)
        raise
    return Result(work_dir, root, needs_network, ''.join(logs), version)


class FirstBootFixture(fixtures.Fixture):
    """Apply a config in ``setUp``; remove the scratch root on cleanup.

    The :class:`Result` is available as ``fixture.result``.
    """

    def __init__(self, config, **kwargs):
        super().__init__()
        self.config = config
        self.kwargs = kwargs
        self.result = None

    def _setUp(self):
        self.result = apply(self.config, **self.kwargs)
        self.addCleanup(self.result.cleanup)


def _prepare_config(config, downgrade):
    if isinstance(config, dict):
        parsed = config
    else:
        text = config.decode('utf-8', 'replace') if isinstance(
            config, bytes) else config
        try:
            parsed = json.loads(text)
        except ValueError:
            # Let Ignition itself report what is wrong.
            data = config if isinstance(config, bytes) else config.encode()
            return data, None
    if not isinstance(parsed, dict):
        return json.dumps(parsed).encode(), None
    ign = parsed.get('ignition')
    version = ign.get('version') if isinstance(ign, dict) else None
    if downgrade and version in _NEWER:
        parsed = dict(parsed)
        parsed['ignition'] = dict(ign, version=EXPERIMENTAL)
        version = EXPERIMENTAL
    return json.dumps(parsed).encode(), version


def _world_executable(path):
    tmp_root = os.path.realpath(tempfile.gettempdir())
    current = os.path.realpath(path)
    while True:
        mode = stat.S_IMODE(os.stat(current).st_mode)
        if not mode & stat.S_IXOTH:
            if current == tmp_root or current.startswith(tmp_root + '/'):
                os.chmod(current, mode | stat.S_IXOTH)
            else:
                raise FirstBootError(
                    '%s is not world-executable; Ignition writes SSH keys '
                    'as the user and cannot reach a scratch root below it. '
                    'Pass a base_dir below %s' % (current, tmp_root))
        parent = os.path.dirname(current)
        if parent == current:
            return
        current = parent


def _write(path, text, mode=0o644):
    with open(path, 'w') as stream:
        stream.write(text)
    os.chmod(path, mode)


def _make_root(work_dir):
    bin_dir = os.path.join(work_dir, 'bin')
    os.mkdir(bin_dir, 0o755)
    # NOTE(firstboot): Ignition relabels what it wrote with setfiles; the
    # scratch root has no SELinux policy, so relabelling is a no-op.
    _write(os.path.join(bin_dir, 'setfiles'), '#!/bin/sh\nexit 0\n', 0o755)
    os.mkdir(os.path.join(work_dir, 'system'), 0o755)

    root = os.path.join(work_dir, 'root')
    for sub in ('', 'etc', 'etc/selinux', 'home', 'root'):
        os.mkdir(os.path.join(root, sub), 0o755)
    os.chmod(os.path.join(root, 'root'), 0o700)
    etc = os.path.join(root, 'etc')
    _write(os.path.join(etc, 'selinux/config'),
           'SELINUX=enforcing\nSELINUXTYPE=targeted\n')
    _write(os.path.join(etc, 'passwd'), _PASSWD)
    _write(os.path.join(etc, 'shadow'),
           'root:*:19000:0:99999:7:::\ncore:*:19000:0:99999:7:::\n', 0o600)
    _write(os.path.join(etc, 'group'), ''.join(
        '%s:x:%d:%s\n' % group for group in _GROUPS))
    _write(os.path.join(etc, 'gshadow'), ''.join(
        '%s:!::%s\n' % (name, members) for name, _gid, members in _GROUPS),
        0o600)
    _write(os.path.join(etc, 'login.defs'), _LOGIN_DEFS)
    home = os.path.join(root, 'home/core')
    os.mkdir(home, 0o700)
    os.chown(home, CORE_UID, CORE_UID)
    return root


def _environment(work_dir, config_file):
    env = dict(os.environ)
    env.update({
        'IGNITION_CONFIG_FILE': config_file,
        'SYSTEM_CONFIG_DIR': os.path.join(work_dir, 'system'),
        'TMPDIR': work_dir,
        'PATH': '%s:%s' % (os.path.join(work_dir, 'bin'),
                           env.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')),
    })
    return env


def _run_stage(work_dir, root, config_file, stage, timeout, logs):
    argv = [IGNITION, '-platform', 'file', '-root', root,
            '-config-cache', os.path.join(work_dir, 'cache.json'),
            '-state-file', os.path.join(work_dir, 'state'),
            '-neednet', os.path.join(work_dir, 'neednet'),
            '-log-to-stdout', '-stage', stage]
    try:
        proc = subprocess.run(argv, env=_environment(work_dir, config_file),
                              stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, timeout=timeout,
                              cwd=work_dir, check=False)
    except subprocess.TimeoutExpired as exc:
        output = (exc.output or b'').decode('utf-8', 'replace')
        logs.append(output)
        raise FirstBootError('Ignition stage %s did not finish within %s '
                             'seconds' % (stage, timeout), ''.join(logs))
    output = proc.stdout.decode('utf-8', 'replace')
    # The scratch run has no journal; drop the noise about it.
    logs.append(''.join(line for line in output.splitlines(True)
                        if 'failed to log systemd journal entry' not in line))
    if proc.returncode != 0:
        raise FirstBootError('Ignition stage %s failed with exit status %d'
                             % (stage, proc.returncode), ''.join(logs))


def _run_preset(root, timeout, logs):
    argv = [SYSTEMCTL, '--root=%s' % root, 'preset-all']
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, timeout=timeout,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise FirstBootError('systemctl preset-all failed: %s' % exc,
                             ''.join(logs))
    logs.append(proc.stdout.decode('utf-8', 'replace'))
    if proc.returncode != 0:
        raise FirstBootError('systemctl preset-all failed with exit status '
                             '%d' % proc.returncode, ''.join(logs))
