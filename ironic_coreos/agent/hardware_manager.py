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

"""ironic-python-agent hardware manager with the ``install_coreos`` step.

The agent runs on the CoreOS live system (usually in a container that sees
the live system's root at ``[coreos]host_root``). ``install_coreos`` writes
the user's Ignition config under the host root and runs
``chroot <host root> coreos-installer install ... <root device>``. When it
reads the config drive itself (``custom-agent``, Metal3), it first merges
the config drive's host name, SSH keys and network_data into the config,
like the ``coreos`` deploy interface does on the conductor.
"""

import collections
import copy
import io
import os
import re
import subprocess
import tempfile
import threading
import time
import traceback
import uuid

from oslo_config import cfg
from oslo_log import log
from oslo_utils import uuidutils

from ironic_python_agent import efi_utils
from ironic_python_agent import errors
from ironic_python_agent import hardware
from ironic_python_agent import utils

from ironic_coreos.agent import disk
from ironic_coreos.agent import image_stream
from ironic_coreos.agent import progress as progress_report
from ironic_coreos import conf  # noqa: F401  (registers [coreos])
from ironic_coreos.engine import configdrive
from ironic_coreos.engine import exception
from ironic_coreos.engine import ignition
from ironic_coreos.engine import installer
from ironic_coreos.engine import nodedata
from ironic_coreos.engine import progress
from ironic_coreos.engine import redact

LOG = log.getLogger(__name__)
CONF = cfg.CONF

STEP_NAME = 'install_coreos'

_SEARCH_PATH = ('/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin',
                '/sbin', '/bin')
_EFI_RETRY_DELAY = 5
_OUTPUT_LINES_KEPT = 2000
_LINE_SPLIT = re.compile(rb'[\r\n]')
# What coreos-installer --copy-network copies (its default --network-dir).
_LIVE_KEYFILE_DIR = '/etc/NetworkManager/system-connections'


def _is_uefi():
    """Whether the machine booted in UEFI mode."""
    return os.path.isdir('/sys/firmware/efi')


def _host_path(path):
    """Path on the agent's side of ``path`` inside the host root."""
    return os.path.join(CONF.coreos.host_root, path.lstrip('/'))


def _unexpected(exc, what):
    """A DeploymentError for a bug met while checking the step's input.

    The details are logged for the operator without the exception's
    message, which may quote the input.

    :param exc: the unexpected exception.
    :param what: the input that was being checked, for the message.
    :returns: a DeploymentError naming the step and the input.
    """
    LOG.error('install_coreos: unexpected %(cls)s while checking %(what)s; '
              'traceback without the message:\n%(tb)s',
              {'cls': exc.__class__.__name__, 'what': what,
               'tb': ''.join(traceback.format_tb(exc.__traceback__))})
    return errors.DeploymentError(
        'install_coreos could not check %s (internal error %s, details in '
        'the agent log); check them with ironic-coreos-validate and deploy '
        'again' % (what, exc.__class__.__name__))


def find_installer():
    """Find the installer in the host root.

    :returns: its path as the agent sees it, or None.
    """
    name = CONF.coreos.installer
    if '/' in name:
        candidates = [_host_path(name)]
    else:
        candidates = [_host_path(os.path.join(d, name))
                      for d in _SEARCH_PATH]
    for candidate in candidates:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def canonical_uuid(value):
    """A node UUID in its canonical form, or None when it is not one.

    The UUID names the Ignition file and appears in log lines: anything
    that is not a UUID (a path, text that cannot be written) is not used.
    """
    if isinstance(value, str) and uuidutils.is_uuid_like(value):
        return str(uuid.UUID(value))
    return None


def write_ignition(data, node_uuid=None):
    """Write an Ignition config where the installer can read it.

    The file goes into a new private directory (mode 0700) below
    ``[coreos]work_dir`` inside the host root, and is created exclusively
    with mode 0600.

    :param data: the config as bytes.
    :param node_uuid: used in the file name when it is a UUID.
    :returns: a tuple (path inside the host root, path for the agent).
    :raises: OSError if it cannot be written.
    """
    work_dir = '/' + CONF.coreos.work_dir.strip('/')
    host_work_dir = _host_path(work_dir)
    os.makedirs(host_work_dir, mode=0o700, exist_ok=True)
    # NOTE: a private directory per install: the work directory may be
    # shared (e.g. /tmp), so its mode is not changed.
    host_dir = tempfile.mkdtemp(prefix='install-', dir=host_work_dir)
    os.chmod(host_dir, 0o700)
    name = '%s.ign' % (canonical_uuid(node_uuid) or 'config')
    host_file = os.path.join(host_dir, name)
    try:
        fd = os.open(host_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, 'wb') as fp:
            fp.write(data)
    except BaseException:
        remove_ignition(host_file)
        raise
    LOG.info('Wrote the Ignition config (%(size)d bytes, sha256 %(sha)s) '
             'to %(path)s', {'size': len(data), 'sha': redact.digest(data),
                             'path': host_file})
    inside = os.path.join(work_dir, os.path.basename(host_dir), name)
    return inside, host_file


def remove_ignition(host_file):
    """Remove a file written by :func:`write_ignition` and its directory.

    :param host_file: the path for the agent.
    """
    for path, remove in ((host_file, os.unlink),
                         (os.path.dirname(host_file), os.rmdir)):
        try:
            remove(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            LOG.error('Could not remove %(path)s: %(err)s',
                      {'path': path, 'err': exc})
        else:
            LOG.debug('Removed %s', path)


class CoreOSHardwareManager(hardware.HardwareManager):
    """Install Fedora/RHEL CoreOS with coreos-installer."""

    HARDWARE_MANAGER_NAME = 'CoreOSHardwareManager'
    HARDWARE_MANAGER_VERSION = '1.0'

    def __init__(self):
        super().__init__()
        self._installer_output = collections.deque(maxlen=_OUTPUT_LINES_KEPT)
        # NOTE(coreos): the agent logs whole nodes (the config drive) and
        # steps with their arguments from many modules.
        redact.install()

    def evaluate_hardware_support(self):
        """Offer the step only where the installer exists.

        :returns: HardwareSupport.SERVICE_PROVIDER when coreos-installer is
            found in the host root, else HardwareSupport.NONE.
        """
        path = find_installer()
        if path is None:
            LOG.info('%(inst)s not found in the host root %(root)s (set '
                     '[coreos]host_root and [coreos]installer): the '
                     'install_coreos deploy step is not offered',
                     {'inst': CONF.coreos.installer,
                      'root': CONF.coreos.host_root})
            return hardware.HardwareSupport.NONE
        LOG.info('Found %s: the install_coreos deploy step is offered', path)
        return hardware.HardwareSupport.SERVICE_PROVIDER

    def get_deploy_steps(self, node, ports):
        """Return the deploy steps of this manager.

        :param node: the node as a dict.
        :param ports: the node's ports.
        :returns: a list with the ``install_coreos`` step, priority 0 (runs
            only when requested or called by a conductor interface).
        """
        return [{
            'step': STEP_NAME,
            'priority': 0,
            'interface': 'deploy',
            'reboot_requested': False,
            'argsinfo': copy.deepcopy(installer.ARGUMENTS),
        }]

    def install_coreos(self, node, ports, /, **kwargs):
        """Install CoreOS on the root device.

        Every argument is checked before anything is written. ``node`` and
        ``ports`` are positional only (as ironic-python-agent passes
        them): a step argument of one of these names is reported as an
        unknown argument.

        :param node: the node as a dict.
        :param ports: the node's ports (unused).
        :param kwargs: step arguments, see
            :data:`ironic_coreos.engine.installer.ARGUMENTS`.
        :raises: DeploymentError naming what is wrong and what to do.
        """
        node = node or {}
        node_uuid = canonical_uuid(node.get('uuid'))
        try:
            args = installer.parse_args(kwargs, node)
        except exception.InvalidArgument as exc:
            raise errors.DeploymentError(
                'install_coreos: %s' % exc) from None
        except Exception as exc:
            raise _unexpected(exc, 'the step arguments') from None
        LOG.info('install_coreos on node %(node)s: %(args)r',
                 {'node': node_uuid, 'args': args})

        device = hardware.dispatch_to_managers('get_os_install_device',
                                               permit_refresh=True)
        try:
            config = self._ignition(args, node, device)
        except errors.DeploymentError:
            raise
        except Exception as exc:
            raise _unexpected(
                exc, 'the Ignition config, the config drive and its '
                'network_data') from None
        # NOTE(coreos): the bytes whose digest the conductor logged.
        data = redact.config_bytes(config)

        try:
            inside, host_file = write_ignition(data, node_uuid)
        except OSError as exc:
            raise errors.DeploymentError(
                'Could not write the Ignition config under %s: %s. Check '
                '[coreos]host_root and [coreos]work_dir.'
                % (_host_path(CONF.coreos.work_dir), exc))
        stream = None
        try:
            local_url = None
            if args.uses_stream:
                verify, cert = utils.get_ssl_client_options(CONF)
                stream = image_stream.ImageStream(
                    args.image_url, checksum=args.image_checksum,
                    pull_secret=args.image_pull_secret, verify=verify,
                    cert=cert)
                local_url = stream.start()
            self._install(args, device, inside, local_url, stream)
            if stream is not None:
                # NOTE(coreos): the installer's exit status alone does not
                # prove that it wrote the whole, verified image.
                try:
                    stream.check()
                except (image_stream.ChecksumMismatch,
                        image_stream.StreamIncomplete) as exc:
                    raise errors.DeploymentError(str(exc)) from None
        finally:
            if stream is not None:
                stream.stop()
            remove_ignition(host_file)

        self._set_boot_entry(device)
        LOG.info('CoreOS installed on %(dev)s of node %(node)s',
                 {'dev': device, 'node': node_uuid})

    def _ignition(self, args, node, device):
        """Find and check the Ignition config; merge the node data.

        With the ``ignition`` argument (the ``coreos`` deploy interface
        passes the config it already merged on the conductor) the config is
        installed as given. Otherwise it is the config drive's user_data,
        merged with the config drive's host name, SSH keys and network_data
        exactly as the ``coreos`` interface does it.

        :returns: the parsed config (a dict).
        :raises: DeploymentError when there is none, it is invalid or the
            node data cannot be merged into it.
        """
        drive = None
        if args.ignition is not None:
            data, source = args.ignition, 'the ignition argument'
            LOG.info('install_coreos: installing the Ignition config of the '
                     'ignition argument as given; the config drive is not '
                     'read (with the coreos deploy interface the conductor '
                     'already merged it into that config)')
        else:
            source = 'the config drive user_data'
            value = (node.get('instance_info') or {}).get('configdrive')
            try:
                drive = configdrive.read(
                    value, timeout=CONF.coreos.configdrive_fetch_timeout)
            except exception.ConfigDriveError as exc:
                raise errors.DeploymentError(
                    'Cannot read the config drive: %s' % exc) from None
            data = drive.user_data if drive is not None else None
            if not data:
                raise errors.DeploymentError(
                    'No Ignition config: pass the "ignition" argument of '
                    'install_coreos or a config drive whose user_data is an '
                    'Ignition config')
        config = self._check(data, source, device, report_warnings=True)
        if drive is not None:
            config = self._merge_node_data(config, drive, device)
        if args.copy_network:
            self._check_copy_network(config, args)
        return config

    def _check(self, data, source, device, report_warnings=False):
        """Validate an Ignition config.

        :returns: the parsed config (a dict).
        :raises: DeploymentError naming every problem.
        """
        try:
            report = ignition.check(
                data, max_version=CONF.coreos.max_ignition_version,
                fail_on_warnings=CONF.coreos.fail_on_ignition_warnings,
                install_device=device)
        except exception.InvalidIgnition as exc:
            raise errors.DeploymentError(
                'The Ignition config from %s is not valid: %s'
                % (source, exc)) from None
        except Exception as exc:
            # A bug, not the input: say so without the message, which may
            # quote the config.
            LOG.error('Unexpected %(cls)s while checking the Ignition '
                      'config from %(src)s; traceback without the '
                      'message:\n%(tb)s',
                      {'cls': exc.__class__.__name__, 'src': source,
                       'tb': ''.join(traceback.format_tb(
                           exc.__traceback__))})
            raise errors.DeploymentError(
                'install_coreos could not check the Ignition config from %s '
                '(internal error %s, details in the agent log); check it '
                'with ironic-coreos-validate and deploy again'
                % (source, exc.__class__.__name__)) from None
        if report_warnings and report.warnings:
            LOG.warning('The Ignition config from %(src)s has warnings: '
                        '%(summary)s', {'src': source,
                                        'summary': report.summary()})
        if report_warnings and report.needs_network:
            LOG.info('The Ignition config from %s fetches resources at '
                     'first boot: the node needs network then', source)
        if report.config is not None:
            return report.config
        return ignition.parse(data)

    def _merge_node_data(self, config, drive, device):
        """Merge host name, SSH keys and network_data of the config drive.

        Same engine and same rules as the ``coreos`` deploy interface: the
        user's own values win, a real conflict fails the step. What the
        config drive gives that is not used is logged once, with the
        reason (never a value).

        :returns: the merged config (a dict).
        :raises: DeploymentError naming the conflict and the fix.
        """
        try:
            node = nodedata.from_config_drive(
                drive, set_hostname=CONF.coreos.set_hostname,
                convert_network_data=CONF.coreos.convert_network_data,
                ssh_user=CONF.coreos.ssh_user,
                network_source='the config drive network_data')
        except exception.NetworkDataError as exc:
            raise errors.DeploymentError(
                'The config drive network_data cannot be converted to '
                'NetworkManager keyfiles: %s. Fix the network data (with '
                'Metal3: the networkData secret), or set [coreos]'
                'convert_network_data = false in the agent configuration '
                'and configure the network in the Ignition config' % exc
            ) from None
        for message in node.moved:
            LOG.warning('install_coreos: %s', message)
        before = len(node.unused)
        try:
            merged = nodedata.merge_into(
                config, node, max_version=CONF.coreos.max_ignition_version)
        except exception.MergeConflict as exc:
            raise errors.DeploymentError(
                'The node data of the config drive (host name, SSH keys for '
                'user %s, network keyfiles) cannot be merged into the '
                'Ignition config from the config drive user_data: %s'
                % (CONF.coreos.ssh_user, exc)) from None
        except exception.InvalidArgument as exc:
            raise errors.DeploymentError(
                'The config drive meta_data cannot be added to the Ignition '
                'config: %s; fix the config drive meta_data (with Metal3: '
                'the metaData secret or the BareMetalHost name) or '
                '[coreos]ssh_user of the agent, and deploy again' % exc
            ) from None
        for note in node.unused:
            LOG.info('install_coreos: %s', note)
        additions = node.additions
        hostname_kept = additions.hostname and len(node.unused) == before
        keyfiles = [f.path for f in additions.files]
        LOG.info('install_coreos: merged the config drive node data into '
                 'the Ignition config: host name %(host)s, %(keys)d SSH '
                 'key(s) for user %(user)s, %(nkf)d NetworkManager '
                 'keyfile(s)%(paths)s',
                 {'host': ('%s (meta_data "%s")'
                           % (additions.hostname, node.hostname_key)
                           if hostname_kept else 'none'),
                  'keys': len(additions.ssh_keys),
                  'user': additions.ssh_user, 'nkf': len(keyfiles),
                  'paths': (' (%s)' % ', '.join(keyfiles)
                            if keyfiles else '')})
        return self._check(merged, 'the merged Ignition config', device)

    def _check_copy_network(self, config, args):
        """Never two profiles for one interface with copy_network.

        See :func:`ironic_coreos.engine.nodedata.check_copy_network`.

        :raises: DeploymentError naming the keyfiles and the interface.
        """
        net_dir = _host_path(_LIVE_KEYFILE_DIR)
        live = {}
        try:
            names = sorted(os.listdir(net_dir))
        except OSError:
            names = []
        for name in names:
            path = os.path.join(net_dir, name)
            if not os.path.isfile(path):
                continue
            try:
                with open(path, 'rb') as fp:
                    live[name] = fp.read()
            except OSError as exc:
                LOG.warning('Cannot read the live keyfile %(path)s: '
                            '%(err)s', {'path': path, 'err': exc})
                live[name] = None
        try:
            message = nodedata.check_copy_network(
                config, live, append_kargs=args.append_kargs)
        except exception.MergeConflict as exc:
            raise errors.DeploymentError(str(exc)) from None
        if message:
            LOG.info('install_coreos: %s', message)

    def _install(self, args, device, ignition_file, local_url, stream):
        """Run the installer, retrying transient failures.

        :raises: DeploymentError with the installer's own error line.
        """
        attempts = CONF.coreos.install_attempts
        host_root = CONF.coreos.host_root
        publisher = progress_report.Publisher()
        for attempt in range(1, attempts + 1):
            try:
                disk.release(device, host_root=host_root)
            except disk.DiskBusy as exc:
                raise errors.DeploymentError(str(exc)) from None
            argv = (['chroot', host_root, CONF.coreos.installer]
                    + installer.build_argv(args, device, ignition_file,
                                           image_url=local_url))
            shown = [redact.url(a) if a == args.image_url else a
                     for a in argv]
            LOG.info('Running %(argv)s (attempt %(n)d of %(total)d)',
                     {'argv': ' '.join(shown), 'n': attempt,
                      'total': attempts})
            state = progress.InstallProgress()

            def report(line, attempt=attempt, state=state):
                if state.feed(line):
                    publisher.publish(dict(state.as_dict(), attempt=attempt))

            code, lines = self._run(argv, on_line=report)
            last_phase = state.phase
            if state.finish(code):
                publisher.publish(dict(state.as_dict(), attempt=attempt))
            if code == 0:
                return
            if stream is not None:
                try:
                    stream.check(complete=False)
                except image_stream.ChecksumMismatch as exc:
                    raise errors.DeploymentError(str(exc)) from None
            reason = installer.last_error_line(lines) or 'no output'
            if installer.is_transient(lines) and attempt < attempts:
                LOG.warning('coreos-installer failed (attempt %(n)d of '
                            '%(total)d) for a reason that can be transient: '
                            '%(reason)s. Retrying in %(delay)d seconds',
                            {'n': attempt, 'total': attempts,
                             'reason': reason,
                             'delay': CONF.coreos.install_retry_delay})
                time.sleep(CONF.coreos.install_retry_delay)
                continue
            if installer.is_transient(lines):
                hint = ('gave up after %d attempts; check that the image '
                        'server is reachable from the node' % attempts)
            else:
                hint = 'not retried'
            raise errors.DeploymentError(
                'coreos-installer failed to install on %s (exit status %s, '
                '%s, stopped while %s): %s'
                % (device, code, hint, progress.describe(
                    dict(state.as_dict(), phase=last_phase)), reason))

    def _run(self, argv, on_line=None):
        """Run a command, streaming its output into the log.

        :param on_line: called with each non-empty output line.
        :returns: (exit status, list of the last output lines).
        :raises: DeploymentError when it cannot be started.
        """
        lines = collections.deque(maxlen=_OUTPUT_LINES_KEPT)
        env = os.environ.copy()
        for name in ('no_proxy', 'NO_PROXY'):
            # NOTE: the local image stream must never go through a proxy.
            hosts = [h for h in env.get(name, '').split(',') if h]
            env[name] = ','.join(hosts + ['127.0.0.1'])
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, env=env)
        except OSError as exc:
            raise errors.DeploymentError(
                'Could not run %s: %s' % (argv[0], exc)) from None

        def emit(raw):
            text = raw.decode('utf-8', 'replace').rstrip()
            if text.strip():
                LOG.info('coreos-installer: %s', text)
                lines.append(text)
                self._installer_output.append(text)
                if on_line is not None:
                    on_line(text)

        timeout = CONF.coreos.install_timeout
        timed_out = threading.Event()

        def stop():
            timed_out.set()
            LOG.error('coreos-installer did not finish within %d seconds, '
                      'stopping it', timeout)
            proc.kill()

        watchdog = threading.Timer(timeout, stop) if timeout else None
        pending = b''
        with proc:
            if watchdog is not None:
                watchdog.daemon = True
                watchdog.start()
            try:
                # NOTE: progress lines end with "\r" on a terminal; split
                # on both so every line reaches the log while it runs.
                while True:
                    chunk = proc.stdout.read1(65536)
                    if not chunk:
                        break
                    parts = _LINE_SPLIT.split(pending + chunk)
                    pending = parts.pop()
                    for part in parts:
                        emit(part)
                emit(pending)
                code = proc.wait()
            finally:
                if watchdog is not None:
                    watchdog.cancel()
        LOG.info('coreos-installer exited with status %s', code)
        if timed_out.is_set():
            lines.append('Error: coreos-installer stopped after %d seconds '
                         'without finishing (the limit is the option '
                         '[coreos]install_timeout)' % timeout)
        return code, list(lines)

    def _set_boot_entry(self, device):
        """Make the installed system the UEFI boot entry.

        :raises: DeploymentError if it still fails after
            ``[coreos]efi_attempts`` attempts.
        """
        if not _is_uefi():
            LOG.info('Not a UEFI machine: no boot entry to set')
            return
        attempts = CONF.coreos.efi_attempts
        error = None
        for attempt in range(1, attempts + 1):
            try:
                if efi_utils.manage_uefi(device):
                    LOG.info('UEFI boot entry set for %s', device)
                    return
                error = 'no EFI boot loader found on its EFI partition'
            except Exception as exc:
                error = str(exc)
            LOG.warning('Setting the UEFI boot entry for %(dev)s failed '
                        '(attempt %(n)d of %(total)d): %(err)s',
                        {'dev': device, 'n': attempt, 'total': attempts,
                         'err': error})
            if attempt < attempts:
                time.sleep(_EFI_RETRY_DELAY)
        raise errors.DeploymentError(
            'CoreOS was installed on %s but it could not be made the UEFI '
            'boot entry after %d attempts: %s' % (device, attempts, error))

    def collect_system_logs(self, io_dict, file_list):
        """Add the live system's journal and the installer output.

        :param io_dict: dict of file name -> binary IO, updated.
        :param file_list: list of files to include (unused).
        """
        try:
            host_root = CONF.coreos.host_root
            if os.path.normpath(host_root) != '/':
                # NOTE: with host_root = / the agent's own log collection
                # already has this journal.
                utils.try_collect_command_output(
                    io_dict, 'coreos-host-journal',
                    ['chroot', host_root, 'journalctl', '--no-pager',
                     '--all', '--boot'])
            if self._installer_output:
                io_dict['coreos-installer.log'] = io.BytesIO(
                    '\n'.join(self._installer_output).encode('utf-8'))
        except Exception as exc:
            LOG.warning('Could not collect the CoreOS logs: %s', exc)
