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

"""Hostile input for the ``coreos`` deploy interface: only its own errors.

Property-based, with the strategies and the hypothesis profile of
:mod:`ironic_coreos.tests.unit.engine.test_hostile`, on Ironic's own test
base. The interface's checks of the deploy step arguments and of
``instance_info`` (``coreos_*`` options, ``ignition``, the image fields,
the config drive in every form) get generated input; :meth:`validate`
must pass or raise ``InvalidParameterValue``, the checks of
:meth:`deploy` must pass or raise ``InstanceDeployFailure``, each time
with a message that names the field, without Python's internal text,
without the generic "internal error" that stands for a bug, and without
the pull secret.
"""

import hypothesis
from hypothesis import strategies as st
from ironic.common import exception
from ironic.conductor import task_manager

from ironic_coreos.drivers.modules import coreos
from ironic_coreos.engine import installer
from ironic_coreos.tests.unit.agent import test_hostile as agent_hostile
from ironic_coreos.tests.unit.drivers.modules import test_coreos
from ironic_coreos.tests.unit.engine import test_hostile as hostile

SECRET = agent_hostile.SECRET
PREFIX = 'CoreOS deployment input is invalid: '

# Where a message may say the problem is (the start of its field).
FIELDS = ('instance_info/', 'deploy step install_coreos argument',
          'config drive', 'Ignition config', 'network data',
          'node automated_clean', '[coreos]')

_OPTIONS = sorted(coreos.INSTANCE_INFO_PREFIX + name
                  for name in coreos.INSTANCE_INFO_ARGS)

instance_infos = st.fixed_dictionaries(
    {}, optional={
        'configdrive': agent_hostile.config_drives(),
        'ignition': hostile.values,
        'image_source': hostile.values,
        'image_checksum': hostile.values,
        'image_os_hash_algo': hostile.values,
        'image_os_hash_value': hostile.values,
        'image_pull_secret': st.just(SECRET),
    }).flatmap(lambda info: st.dictionaries(
        st.sampled_from(_OPTIONS) | st.sampled_from(['coreos_', 'coreos_x',
                                                     'coreos_consle']),
        hostile.values, max_size=4).map(lambda opts: dict(info, **opts)))

step_args = st.dictionaries(
    st.sampled_from(sorted(installer.ARGUMENTS)) | st.text(max_size=5),
    hostile.values, max_size=6)


class CoreOSDeployHostileTestCase(test_coreos.CoreOSTestBase):

    def setUp(self):
        super().setUp()
        self.config(configdrive_fetch_timeout=1, group='coreos')
        # No network data generated from ports (no Neutron here).
        self.config(disable_configdrive_check=True, group='conductor')

    def assertClear(self, exc):
        message = str(exc)
        hostile.assertPublic(self, message)
        self.assertNotIn('internal error', message)
        self.assertNotIn(SECRET, message)
        # InstanceDeployFailure starts with "Failed to deploy instance: ".
        self.assertIn(PREFIX, message)
        field = message.split(PREFIX, 1)[1]
        self.assertTrue(field.startswith(FIELDS), message)

    def _check(self, step, info, args, exc_class, **kwargs):
        with task_manager.acquire(self.context, self.node.uuid) as task:
            task.node.instance_info = info
            try:
                self.deploy._checked_args(task, step, args, exc_class,
                                          **kwargs)
            except exc_class as exc:
                self.assertClear(exc)

    @hostile.PROFILE
    @hypothesis.given(instance_infos)
    def test_validate(self, info):
        with task_manager.acquire(self.context, self.node.uuid) as task:
            task.node.instance_info = info
            try:
                self.deploy.validate(task)
            except exception.InvalidParameterValue as exc:
                self.assertClear(exc)

    @hostile.PROFILE
    @hypothesis.given(instance_infos, step_args)
    def test_deploy_checks(self, info, args):
        self._check('deploy', info, args, exception.InstanceDeployFailure)
        self.assertNotIn(SECRET, self.logger.output)

    @hostile.PROFILE
    @hypothesis.given(instance_infos, step_args)
    def test_prepare_checks(self, info, args):
        self._check('prepare', info, args, exception.InstanceDeployFailure,
                    require_ignition=False)

    @hostile.PROFILE
    @hypothesis.given(agent_hostile.config_drives())
    def test_config_drive(self, drive):
        self._check('deploy', {'configdrive': drive}, {},
                    exception.InstanceDeployFailure)

    @hostile.PROFILE
    @hypothesis.given(hostile.values, instance_infos)
    def test_ignition_argument(self, config, info):
        self._check('deploy', info, {'ignition': config},
                    exception.InstanceDeployFailure)
