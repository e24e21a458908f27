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

"""The ``coreos`` deploy interface.

A :class:`~ironic.drivers.modules.agent.CustomAgentDeploy` whose ramdisk is
the CoreOS live system. It adds an out-of-band deploy step
``install_coreos`` (priority 80, enabled by default) that shadows the
agent's in-band step of the same name: the conductor assembles the complete
install arguments (the Ignition config merged with the node's network,
hostname and SSH keys, the image and its checksum, the pull secret, kernel
arguments and installer options) and hands them to the agent.

Everything that can be checked on the conductor is checked before the node
is touched:

* :meth:`CoreOSDeploy.validate` (``baremetal node validate`` and the start of
  every deployment request) checks ``instance_info`` and the arguments of
  the deploy templates matching the node's instance traits;
* :meth:`CoreOSDeploy.prepare` runs right after the conductor has stored the
  config drive of the request and before the first power action, and checks
  the config drive (Ignition config, network data) together with the rest;
* :meth:`CoreOSDeploy.deploy` checks the arguments given with
  ``--deploy-steps`` (Ironic stores them only after ``prepare``) before the
  ramdisk is booted.
"""

import datetime
import difflib
import hashlib
import json
import traceback
from urllib import parse as urlparse

from ironic.common import exception
from ironic.common.glance_service import service_utils as glance_utils
from ironic.common.i18n import _
from ironic.common import metrics_utils
from ironic.common import states
from ironic.conductor import configdrive_utils
from ironic.conductor import task_manager
from ironic.conf import CONF
from ironic.drivers import base
from ironic.drivers.modules import agent
from ironic.drivers.modules import agent_base
from ironic.drivers.modules import agent_client
from ironic.drivers.modules import deploy_utils
from ironic import objects
from oslo_log import log
from oslo_utils import timeutils

from ironic_coreos import conf as coreos_conf  # noqa: F401 (registers opts)
from ironic_coreos.engine import configdrive
from ironic_coreos.engine import exception as engine_exc
from ironic_coreos.engine import ignition
from ironic_coreos.engine import installer
from ironic_coreos.engine import jsondepth
from ironic_coreos.engine import nodedata
from ironic_coreos.engine import progress
from ironic_coreos.engine import redact

LOG = log.getLogger(__name__)

METRICS = metrics_utils.get_metrics_logger(__name__)

STEP_NAME = 'install_coreos'
"""Name of the deploy step, out-of-band here and in-band on the agent."""

STEP_PRIORITY = 80
"""Priority of the out-of-band step: after ``deploy`` (100), before
``prepare_instance_boot`` (60)."""

INSTANCE_INFO_PREFIX = 'coreos_'

INSTANCE_INFO_ARGS = ('append_kargs', 'delete_kargs', 'console', 'platform',
                      'copy_network', 'save_partlabel', 'save_partindex',
                      'fetch_retries', 'insecure', 'preserve_on_error')
"""Installer options that ``instance_info/coreos_<name>`` can set."""

# Ignition config used when the node has none: the merge raises the version
# only when an addition needs it.
_EMPTY_CONFIG_VERSION = '3.0.0'

# NOTE(coreos): prepare, deploy and install_coreos check the same merged
# config of a deployment; it is checked once (see ignition.Verdicts).
_VERDICTS = ignition.Verdicts()

#: driver_internal_info key: the fingerprint of the input that ``prepare``
#: found complete and usable (see :func:`_input_fingerprint`).
CHECKED_KEY = 'coreos_checked_input'

# Nesting beyond this is not fingerprinted (such input is not remembered).
_FINGERPRINT_DEPTH = 64


class _Failure(Exception):
    """A problem found while assembling the arguments (internal).

    :param field: where the bad input is (``instance_info/coreos_console``,
        ``config drive user_data``, ...).
    :param message: what is wrong and how to fix it; never config content.
    """

    def __init__(self, field, message):
        super().__init__(message)
        self.field = field
        self.message = message


def _problems_text(exc):
    """Describe an InvalidIgnition error: every problem with path and fix."""
    lines = []
    for problem in getattr(exc, 'problems', ()) or ():
        if getattr(problem, 'severity', 'error') != 'error':
            continue
        where = problem.path
        if getattr(problem, 'line', None) is not None:
            where = '%s (line %d, column %d)' % (where, problem.line,
                                                 problem.column or 1)
        text = '%s: %s' % (where, problem.message)
        if problem.fix:
            text += ' (fix: %s)' % problem.fix
        lines.append(text)
    if not lines:
        return str(exc)
    return '; '.join(lines)


def effective_automated_clean(node):
    """Whether automated cleaning runs after this node is undeployed.

    :param node: an Ironic node object.
    :returns: the node's ``automated_clean``, or
        ``[conductor]automated_clean`` when the node does not say.
    """
    if node.automated_clean is not None:
        return bool(node.automated_clean)
    return bool(CONF.conductor.automated_clean)


class CoreOSDeploy(agent.CustomAgentDeploy):
    """Deploy Fedora CoreOS / RHEL CoreOS with coreos-installer.

    The deploy ramdisk is the CoreOS live system running
    ironic-python-agent with the ironic-coreos hardware manager. No image
    is required: without ``instance_info/image_source`` the installer
    writes the image embedded in the live system.
    """

    def __init__(self):
        super().__init__()
        # NOTE(coreos): Ironic logs deploy steps with their arguments (the
        # Ignition config, a pull secret) and nodes with their
        # instance_info from many modules; hide them in every record of
        # the conductor process, for every deploy interface.
        redact.install()

    # ------------------------------------------------------------------
    # Assembling the arguments

    def _fail(self, task, failure, exc_class):
        """Turn an internal _Failure into an Ironic exception."""
        msg = (_('CoreOS deployment input is invalid: %(field)s: '
                 '%(problem)s')
               % {'field': failure.field, 'problem': failure.message})
        if exc_class is exception.InstanceDeployFailure:
            return exc_class(reason=msg)
        return exc_class(msg)

    def _checked_args(self, task, step, step_args, exc_class, **kwargs):
        """_build_args, with every failure as an Ironic exception.

        An unexpected error (a bug, not the user's input) becomes
        ``exc_class`` too, with a generic message naming the step; its
        details are logged for the operator, without the input's content
        (the exception's message may quote it).

        :raises: exc_class.
        """
        try:
            return self._build_args(task, step_args, **kwargs)
        except _Failure as f:
            raise self._fail(task, f, exc_class)
        except Exception as e:
            LOG.error('Node %(node)s: unexpected %(cls)s while checking the '
                      'CoreOS deployment input in %(step)s; traceback '
                      '(without the message, which may quote the input):\n'
                      '%(tb)s', {'node': task.node.uuid,
                                 'cls': e.__class__.__name__, 'step': step,
                                 'tb': ''.join(traceback.format_tb(
                                     e.__traceback__))})
            failure = _Failure(
                _('deployment input'),
                _('%(step)s could not check the Ignition config, config '
                  'drive, network data, step arguments and instance_info '
                  '(internal error %(cls)s, details in the conductor log); '
                  'check them with ironic-coreos-validate and deploy '
                  'again') % {'step': step, 'cls': e.__class__.__name__})
            raise self._fail(task, failure, exc_class) from None

    def _read_configdrive(self, task):
        value = task.node.instance_info.get('configdrive')
        try:
            return configdrive.read(
                value, timeout=CONF.coreos.configdrive_fetch_timeout)
        except engine_exc.ConfigDriveError as e:
            raise _Failure('instance_info/configdrive',
                           _('the config drive cannot be read: %s') % e)

    def _ignition_source(self, task, step_args, drive):
        """Pick the Ignition config: step arg, instance_info, user_data.

        :returns: a tuple (data or None, field name for messages).
        """
        if step_args.get('ignition') is not None:
            return (step_args['ignition'],
                    _('deploy step %s argument "ignition"') % STEP_NAME)
        from_info = task.node.instance_info.get('ignition')
        if from_info is not None:
            if drive is not None and drive.user_data:
                LOG.info('Node %(node)s: instance_info/ignition is used, '
                         'the config drive user_data is ignored',
                         {'node': task.node.uuid})
            return from_info, 'instance_info/ignition'
        if drive is not None and drive.user_data:
            return drive.user_data, _('config drive user_data')
        return None, None

    def _check_ignition(self, data, field):
        try:
            return _VERDICTS.check(
                data, max_version=CONF.coreos.max_ignition_version,
                fail_on_warnings=CONF.coreos.fail_on_ignition_warnings)
        except engine_exc.InvalidIgnition as e:
            raise _Failure(
                field,
                _('not a valid Ignition config for this deployment '
                  '([coreos]max_ignition_version is %(max)s): %(problems)s')
                % {'max': CONF.coreos.max_ignition_version,
                   'problems': _problems_text(e)})

    def _parse_ignition(self, data, field):
        """Parse the user's Ignition config (the check comes later).

        :raises: _Failure with every problem when it cannot be parsed.
        """
        try:
            return ignition.parse(data)
        except engine_exc.InvalidIgnition as e:
            self._check_ignition(data, field)
            raise _Failure(field, _('not a valid Ignition config: %s')
                           % _problems_text(e))

    def _merge(self, config, node, field):
        """Merge the node data into the config.

        :param node: a :class:`ironic_coreos.engine.nodedata.NodeData`.
        :raises: _Failure naming the field and the fix.
        """
        try:
            return nodedata.merge_into(
                config, node, max_version=CONF.coreos.max_ignition_version)
        except engine_exc.MergeConflict as e:
            raise _Failure(
                field or _('Ignition config'),
                _('the node data (hostname, SSH keys for user %(user)s, '
                  'network keyfiles) cannot be merged into it: %(err)s')
                % {'user': CONF.coreos.ssh_user, 'err': e})
        except engine_exc.InvalidArgument as e:
            raise _Failure(
                _('config drive meta_data or [coreos]ssh_user'),
                _('cannot be added to the Ignition config: %(err)s; fix the '
                  'config drive (or [coreos]ssh_user) and deploy again')
                % {'err': e})

    def _network_data(self, task, drive, generate):
        """network_data to convert: the config drive's or generated.

        :returns: a tuple (network_data or None, field name for messages).
        """
        if not CONF.coreos.convert_network_data:
            return None, None
        if drive is not None and nodedata.has_network(drive.network_data):
            return drive.network_data, _('config drive network_data')
        if not generate:
            return None, None
        # NOTE(coreos): with a config drive, Ironic already replaced missing
        # network data with data generated from the ports (when the network
        # interface supports it and [conductor]disable_configdrive_check is
        # false) before storing it. Do the same when there is no config
        # drive at all, e.g. when the Ignition config is in instance_info.
        if (CONF.conductor.disable_configdrive_check
                or 'metadata' not in task.driver.network.capabilities):
            return None, None
        has_vif = any(p.internal_info.get('tenant_vif_port_id')
                      for p in list(task.ports) + list(task.portgroups))
        if not has_vif:
            return None, None
        try:
            generated = configdrive_utils.generate_config_metadata(task)
        except Exception as e:
            LOG.warning('Node %(node)s: could not generate network data from '
                        'its ports, the installed system gets no static '
                        'network configuration: %(cls)s: %(err)s',
                        {'node': task.node.uuid,
                         'cls': e.__class__.__name__, 'err': e})
            return None, None
        return generated, _('network data generated from the ports')

    def _node_data(self, task, drive, generate_network):
        """What the config drive (or the ports) add to the Ignition config.

        :returns: a :class:`ironic_coreos.engine.nodedata.NodeData`.
        :raises: _Failure when network_data cannot be converted.
        """
        network_data, field = self._network_data(task, drive,
                                                 generate_network)
        try:
            return nodedata.from_config_drive(
                drive, set_hostname=CONF.coreos.set_hostname,
                convert_network_data=CONF.coreos.convert_network_data,
                ssh_user=CONF.coreos.ssh_user, network_data=network_data,
                network_source=field or _('config drive network_data'))
        except engine_exc.NetworkDataError as e:
            raise _Failure(
                field or _('config drive network_data'),
                _('cannot be converted to NetworkManager keyfiles: '
                  '%(err)s. Fix the network data, or set '
                  '[coreos]convert_network_data to false and configure '
                  'the network in the Ignition config') % {'err': e})

    def _installer_options(self, task, step_args):
        """Raw installer options and where each one came from.

        Order of precedence: deploy step arguments, then
        ``instance_info/coreos_*``, then ``[coreos]`` defaults.
        ``[coreos]default_append_kargs`` always comes first in
        ``append_kargs``.

        :returns: a tuple (options dict, {name: field}).
        """
        info = task.node.instance_info
        options = {'platform': CONF.coreos.default_platform}
        origin = {'platform': '[coreos]default_platform',
                  'preserve_on_error': _('node automated_clean'),
                  'image_pull_secret': 'instance_info/image_pull_secret'}

        # NOTE(coreos): image_url, its checksum and the pull secret default
        # to instance_info in installer.parse_args (given the unmasked
        # instance_info here); only the form of image_source is checked
        # here, since the installer needs an http(s) URL. A Glance image
        # (Nova always sets one) is not fetched: the live system's own
        # image is installed (install_coreos logs it).
        image_source = info.get('image_source')
        if (image_source and not installer.is_http_url(image_source)
                and not glance_utils.is_glance_image(image_source)):
            raise _Failure(
                'instance_info/image_source',
                _('"%(src)s" is neither an http(s) URL nor a Glance image; '
                  'coreos-installer needs the URL of a CoreOS metal image '
                  '(for example ...-metal.x86_64.raw.xz, with its .sig next '
                  'to it), or unset image_source to install the image of '
                  'the live system') % {'src': image_source})

        known = {INSTANCE_INFO_PREFIX + name for name in INSTANCE_INFO_ARGS}
        for key in sorted(info):
            if not key.startswith(INSTANCE_INFO_PREFIX):
                continue
            if key not in known:
                close = difflib.get_close_matches(key, sorted(known), n=1)
                hint = (_('did you mean "%s"? ') % close[0]) if close else ''
                raise _Failure(
                    'instance_info/%s' % key,
                    _('unknown CoreOS option; %(hint)sknown options: '
                      '%(known)s') % {'hint': hint,
                                      'known': ', '.join(sorted(known))})
            name = key[len(INSTANCE_INFO_PREFIX):]
            options[name] = info[key]
            origin[name] = 'instance_info/%s' % key

        for name in sorted(step_args):
            if name not in installer.ARGUMENTS:
                close = difflib.get_close_matches(
                    name, sorted(installer.ARGUMENTS), n=1)
                hint = (_('did you mean "%s"? ') % close[0]) if close else ''
                raise _Failure(
                    _('deploy step %(step)s argument "%(arg)s"')
                    % {'step': STEP_NAME, 'arg': name},
                    _('unknown argument; %(hint)sknown arguments: %(known)s')
                    % {'hint': hint,
                       'known': ', '.join(sorted(installer.ARGUMENTS))})
            if name == 'ignition' or step_args[name] is None:
                continue
            options[name] = step_args[name]
            origin[name] = (_('deploy step %(step)s argument "%(arg)s"')
                            % {'step': STEP_NAME, 'arg': name})

        defaults = list(CONF.coreos.default_append_kargs or [])
        if defaults:
            own = options.get('append_kargs')
            if own is None:
                options['append_kargs'] = defaults
                origin['append_kargs'] = '[coreos]default_append_kargs'
            elif isinstance(own, list):
                options['append_kargs'] = defaults + [
                    k for k in own if k not in defaults]
        return options, origin

    def _build_args(self, task, step_args, use_configdrive=True,
                    generate_network=True, notes=None,
                    require_ignition=True, found=None):
        """Assemble and check the complete arguments of the agent step.

        :param task: a TaskManager instance.
        :param step_args: the arguments of the deploy step (user-requested
            or from a deploy template); may be empty.
        :param use_configdrive: read instance_info/configdrive.
        :param generate_network: generate network_data from the ports when
            there is none in the config drive (may call Neutron).
        :param notes: an optional list; what the node data gives that is
            not used, and why, is appended to it (one line each) and the
            networks moved to a bond are logged, so the caller can log
            this once per deployment.
        :param require_ignition: fail when there is no Ignition config at
            all; False while arguments requested with ``--deploy-steps``
            are not known yet.
        :param found: an optional dict; its ``input`` key is set to
            whether an Ignition config or a config drive was given (what
            ``require_ignition`` requires).
        :returns: a tuple (args dict for the agent, ignition Report).
        :raises: _Failure naming the field and the fix.
        """
        step_args = dict(step_args or {})
        options, origin = self._installer_options(task, step_args)

        drive = self._read_configdrive(task) if use_configdrive else None
        data, field = self._ignition_source(task, step_args, drive)
        missing = data is None and use_configdrive and drive is None
        if found is not None:
            found['input'] = not missing
        if missing and require_ignition:
            raise _Failure(
                _('Ignition config'),
                _('none given: pass a config drive (its user_data is the '
                  'Ignition config, its meta_data gives host name and SSH '
                  'keys), set instance_info/ignition, or give the ignition '
                  'argument of the %s deploy step') % STEP_NAME)
        # NOTE(coreos): the check runs once per call, on the merged config:
        # merging only appends, so the merged config has every problem of
        # the user's one. The user's config is checked on its own (with
        # line and column in its text) only when something fails, so that
        # its own mistakes are reported first, as such; or when the merge
        # raised the spec version, which may hide problems.
        try:
            if data is None:
                config = {'ignition': {'version': _EMPTY_CONFIG_VERSION}}
            else:
                config = self._parse_ignition(data, field)
            node = self._node_data(task, drive, generate_network)
            merged = self._merge(config, node, field)
            report = self._check_ignition(
                merged, _('Ignition config merged with the node data'))
            if data is not None and (merged['ignition']['version']
                                     != config['ignition']['version']):
                self._check_ignition(data, field)
        except _Failure:
            if data is not None:
                self._check_ignition(data, field)
            raise
        if notes is not None:
            notes.extend(node.unused)
            for message in node.moved:
                LOG.warning('Node %(node)s: %(msg)s',
                            {'node': task.node.uuid, 'msg': message})

        options['ignition'] = merged
        node_dict = {'instance_info': task.node.instance_info,
                     'automated_clean': effective_automated_clean(task.node)}
        try:
            parsed = installer.parse_args(options, node=node_dict)
        except engine_exc.InvalidArgument as e:
            raise _Failure(origin.get(e.name, e.name), str(e))
        return parsed.as_step_args(), report

    def _template_step_args(self, task):
        """Arguments of install_coreos in matching deploy templates.

        :returns: the args dict, or None when a template disables the step.
        """
        traits = task.node.instance_info.get('traits') or []
        if not traits:
            return {}
        templates = objects.DeployTemplate.list_by_names(task.context,
                                                         traits)
        for template in templates:
            for step in template.steps:
                if (step.get('interface') == 'deploy'
                        and step.get('step') == STEP_NAME):
                    if not step.get('priority'):
                        return None
                    return dict(step.get('args') or {})
        return {}

    def _planned_step_args(self, task):
        """Arguments of install_coreos in the node's current deploy steps.

        :returns: the args dict, or None when the step will not run.
        """
        steps = task.node.driver_internal_info.get('deploy_steps') or []
        for step in steps:
            if (step.get('interface') == 'deploy'
                    and step.get('step') == STEP_NAME):
                return dict(step.get('args') or {})
        return None

    # ------------------------------------------------------------------
    # DeployInterface

    @METRICS.timer('CoreOSDeploy.validate')
    def validate(self, task):
        """Validate the node's CoreOS deployment input.

        Checks (besides what ``custom-agent`` checks: boot interface,
        capabilities, root device hints) the image source, the
        ``instance_info`` Ignition config and ``coreos_*`` options, and the
        arguments of deploy templates matching the instance traits. The
        config drive of a deployment request is checked in
        :meth:`prepare`.

        :param task: a TaskManager instance.
        :raises: InvalidParameterValue naming the field and the fix.
        :raises: MissingParameterValue if a required driver parameter is
            missing.
        """
        super().validate(task)
        step_args = self._template_step_args(task)
        if step_args is None:
            return
        self._checked_args(task, 'validate', step_args,
                           exception.InvalidParameterValue,
                           use_configdrive=False, generate_network=False)

    def supports_deploy(self, task):
        """Whether the node's instance_info asks for a CoreOS deployment.

        Used by the ``autodetect`` deploy interface (add ``coreos`` to
        ``[DEFAULT]autodetect_deploy_interfaces``). True when
        instance_info has ``ignition`` or a ``coreos_*`` option, when the
        image source is a CoreOS metal image URL (``...coreos...raw.xz``),
        or when a config drive in instance_info carries an Ignition
        config as user_data.

        :param task: a TaskManager instance.
        :returns: boolean.
        """
        info = task.node.instance_info
        if info.get('ignition') is not None:
            return True
        if any(key.startswith(INSTANCE_INFO_PREFIX) for key in info):
            return True
        image_source = info.get('image_source')
        if installer.is_http_url(image_source):
            name = urlparse.urlsplit(image_source).path.rsplit('/', 1)[-1]
            if 'coreos' in name.lower() and name.endswith('.raw.xz'):
                return True
        drive = info.get('configdrive')
        if isinstance(drive, dict):
            user_data = drive.get('user_data')
            if isinstance(user_data, dict):
                return 'ignition' in user_data
            if isinstance(user_data, str):
                if jsondepth.text_deeper_than(user_data,
                                              ignition.MAX_DEPTH):
                    return False
                try:
                    parsed = json.loads(user_data)
                except ValueError:
                    return False
                return isinstance(parsed, dict) and 'ignition' in parsed
        return False

    @METRICS.timer('CoreOSDeploy.prepare')
    @task_manager.require_exclusive_lock
    def prepare(self, task):
        """Check the deployment input, then prepare the deployment.

        During a deployment this runs right after the conductor stored the
        config drive of the request and before the first power action, so
        a bad Ignition config, config drive or argument fails the
        deployment without touching the node.

        :param task: a TaskManager instance.
        :raises: InstanceDeployFailure naming the field and the fix.
        :raises: whatever ``custom-agent``'s prepare raises.
        """
        if task.node.provision_state == states.DEPLOYING:
            _forget_progress(task.node)
            step_args = self._template_step_args(task)
            if step_args is not None:
                # NOTE(coreos): the Ignition config may come as an argument
                # given with --deploy-steps, which Ironic stores only after
                # prepare: deploy() requires it.
                found = {}
                self._checked_args(task, 'prepare', step_args,
                                   exception.InstanceDeployFailure,
                                   require_ignition=False, found=found)
                if found.get('input'):
                    _remember_checked(task.node, step_args)
        super().prepare(task)

    @METRICS.timer('CoreOSDeploy.deploy')
    @base.deploy_step(priority=100)
    @task_manager.require_exclusive_lock
    def deploy(self, task):
        """Check the requested install_coreos arguments, boot the ramdisk.

        Arguments given with ``--deploy-steps`` are only known once the
        conductor has computed the deploy steps (after :meth:`prepare`):
        they are checked here, before the ramdisk is booted.

        :param task: a TaskManager instance.
        :raises: InstanceDeployFailure naming the field and the fix.
        :returns: what ``custom-agent``'s deploy step returns.
        """
        step_args = self._planned_step_args(task)
        if step_args is not None:
            if _checked_before(task.node, step_args):
                # NOTE(coreos): prepare checked this very input a moment
                # ago (no arguments were added with --deploy-steps):
                # install_coreos assembles it again anyway.
                LOG.debug('Node %s: the CoreOS deployment input was checked '
                          'in prepare', task.node.uuid)
            else:
                self._checked_args(task, 'deploy', step_args,
                                   exception.InstanceDeployFailure)
        return super().deploy(task)

    @METRICS.timer('CoreOSDeploy.install_coreos')
    @base.deploy_step(priority=STEP_PRIORITY,
                      argsinfo=installer.ARGUMENTS)
    @task_manager.require_exclusive_lock
    def install_coreos(self, task, **kwargs):
        """Install CoreOS: assemble the arguments, run the agent's step.

        :param task: a TaskManager instance.
        :param kwargs: arguments of the step (see
            :data:`ironic_coreos.engine.installer.ARGUMENTS`); they win
            over ``instance_info`` and the ``[coreos]`` defaults.
        :raises: InstanceDeployFailure naming the field and the fix.
        :returns: states.DEPLOYWAIT; completion is detected by polling the
            agent.
        """
        node = task.node
        notes = []
        args, report = self._checked_args(task, STEP_NAME, kwargs,
                                          exception.InstanceDeployFailure,
                                          notes=notes)
        for note in notes:
            LOG.info('Node %(node)s: %(note)s',
                     {'node': node.uuid, 'note': note})
        if report is not None and report.warnings:
            LOG.warning('Node %(node)s: the Ignition config has warnings: '
                        '%(summary)s', {'node': node.uuid,
                                        'summary': report.summary()})
        image_source = node.instance_info.get('image_source')
        if (not args.get('image_url') and image_source
                and not installer.is_http_url(image_source)):
            LOG.warning('Node %(node)s: image_source %(src)s is a Glance '
                        'image, which coreos-installer cannot fetch; '
                        'installing the image of the live system instead '
                        '(give image_url to install another one)',
                        {'node': node.uuid, 'src': image_source})
        config_bytes = redact.config_bytes(args['ignition'])
        LOG.info('Node %(node)s: handing %(step)s to the agent: Ignition '
                 'config of %(size)d bytes (sha256 %(sha)s), image %(image)s'
                 '%(checksum)s%(secret)s, %(kargs)d kernel argument(s) to '
                 'append',
                 {'node': node.uuid, 'step': STEP_NAME,
                  'size': len(config_bytes),
                  'sha': redact.digest(config_bytes),
                  'image': (redact.url(args['image_url'])
                            if args.get('image_url')
                            else 'of the live system'),
                  'checksum': (' with checksum'
                               if args.get('image_checksum') else ''),
                  'secret': (' with a pull secret'
                             if args.get('image_pull_secret') else ''),
                  'kargs': len(args.get('append_kargs') or [])})
        # NOTE(coreos): the config goes to the agent as its JSON text, the
        # bytes logged above (the agent installs these bytes). Ironic masks
        # and logs the agent's command results, which repeat the step's
        # arguments, value by value: a string of a megabyte costs a sixth
        # of the dict it holds, which has thousands of values.
        new_step = {'interface': 'deploy', 'step': STEP_NAME,
                    'args': dict(args,
                                 ignition=config_bytes.decode('utf-8'))}
        client = agent_client.get_client(task)
        return agent_base.execute_step(task, new_step, 'deploy',
                                       client=client)

    # ------------------------------------------------------------------
    # Install progress

    def process_next_step(self, task, step_type, **kwargs):
        """Publish the install progress, then go on as the agent says.

        While the agent runs ``install_coreos``, the progress it publishes
        (see :mod:`ironic_coreos.agent.progress`) is stored in the node's
        ``driver_internal_info['coreos_install']`` with the time it last
        changed; the key is removed when the step ends. An install that
        made no progress for ``[coreos]install_stall_timeout`` seconds
        fails the deployment.

        :param task: a TaskManager instance with an exclusive lock.
        :param step_type: 'deploy', 'clean' or 'service'.
        """
        if step_type == 'deploy':
            state = self._agent_progress(task)
            if state is None:
                _forget_progress(task.node)
            elif self._record_progress(task, state):
                return
        return super().process_next_step(task, step_type, **kwargs)

    def _agent_progress(self, task):
        """The progress of the agent's running install_coreos, or None."""
        node = task.node
        if (node.deploy_step or {}).get('step') != STEP_NAME:
            return None
        try:
            commands = agent_client.get_client(task).get_commands_status(
                node, expect_errors=True)
        except exception.IronicException as exc:
            LOG.debug('Node %(node)s: no install progress from the agent: '
                      '%(err)s', {'node': node.uuid, 'err': exc})
            return None
        if not commands:
            return None
        last = commands[-1]
        if (last.get('command_name') != 'execute_deploy_step'
                or last.get('command_status') != 'RUNNING'):
            return None
        return progress.sanitize(
            (last.get('command_result') or {}).get(progress.KEY))

    def _record_progress(self, task, state):
        """Store the progress; fail the deployment if it stalled.

        :returns: True if the deployment was failed.
        """
        node = task.node
        previous = node.driver_internal_info.get(progress.KEY) or {}
        now = _utcnow()
        moved = any(previous.get(name) != state.get(name)
                    for name in ('phase', 'bytes_read', 'attempt'))
        updated = _parse_time(previous.get('updated_at'))
        if moved or updated is None:
            updated = now
        elif self._stalled(task, state, now - updated):
            return True
        state['updated_at'] = updated.isoformat()
        if state != previous:
            node.set_driver_internal_info(progress.KEY, state)
            node.save()
        return False

    def _stalled(self, task, state, age):
        """Fail the deployment when the install made no progress too long.

        :returns: True if the deployment was failed.
        """
        limit = CONF.coreos.install_stall_timeout
        if (not limit or age.total_seconds() <= limit
                or state['phase'] in (progress.DONE, progress.FAILED)):
            return False
        node = task.node
        msg = (_('The %(step)s step made no progress for %(age)d seconds '
                 '(the limit is [coreos]install_stall_timeout = %(limit)d); '
                 'it stopped while %(where)s. Check that the node reaches '
                 'the image server and that its disk works, then deploy '
                 'again.')
               % {'step': STEP_NAME, 'age': age.total_seconds(),
                  'limit': limit, 'where': progress.describe(state)})
        LOG.error('Node %(node)s: %(msg)s', {'node': node.uuid, 'msg': msg})
        _forget_progress(node)
        deploy_utils.set_failed_state(task, msg,
                                      collect_logs=self.collect_deploy_logs)
        return True

    def clean_up(self, task):
        """Clean up the deployment environment; forget the install progress.

        :param task: a TaskManager instance.
        """
        _forget_progress(task.node)
        return super().clean_up(task)


def _forget_progress(node):
    """Remove the install progress (and a checked input) from the node."""
    changed = False
    for key in (progress.KEY, CHECKED_KEY):
        if key in node.driver_internal_info:
            node.del_driver_internal_info(key)
            changed = True
    if changed:
        node.save()


def _input_fingerprint(node, step_args):
    """The sha256 of what install_coreos assembles its arguments from.

    The step arguments, the node's ``instance_info`` (the config drive,
    the Ignition config, the ``coreos_*`` options, the image) and the
    ``[coreos]`` options. Not a secret: a digest of input that holds one.

    :returns: the hex digest, or None for input that is not JSON or nests
        too deep to be remembered.
    """
    value = {'args': step_args, 'instance_info': node.instance_info,
             'coreos': {name: CONF.coreos[name] for name in CONF.coreos}}
    if jsondepth.value_deeper_than(value, _FINGERPRINT_DEPTH):
        return None
    try:
        text = json.dumps(value, sort_keys=True, separators=(',', ':'),
                          default=str)
    except (TypeError, ValueError, RecursionError):
        return None
    return hashlib.sha256(text.encode('utf-8', 'surrogatepass')).hexdigest()


def _remember_checked(node, step_args):
    """Record that prepare found this input complete and usable."""
    fingerprint = _input_fingerprint(node, step_args)
    if fingerprint is not None:
        node.set_driver_internal_info(CHECKED_KEY, fingerprint)
        node.save()


def _checked_before(node, step_args):
    """Whether prepare found this very input complete and usable."""
    known = node.driver_internal_info.get(CHECKED_KEY)
    return (known is not None
            and known == _input_fingerprint(node, step_args))


def _utcnow():
    return timeutils.utcnow(with_timezone=True)


def _parse_time(value):
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed
