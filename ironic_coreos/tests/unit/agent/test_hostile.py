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

"""Hostile input for the agent's install_coreos step: only DeploymentError.

Property-based, with the strategies and the hypothesis profile of
:mod:`ironic_coreos.tests.unit.engine.test_hostile`. The step gets
generated arguments and a node whose instance_info holds generated image
fields and config drives; everything it checks before it writes the
Ignition config must either pass or end in ``DeploymentError`` with a
message for users (never Python's internal text, never the generic
"internal error" of a bug, never the pull secret).
"""

import json
import os
from unittest import mock

import fixtures
import hypothesis
from hypothesis import strategies as st
from ironic_python_agent import errors
from ironic_python_agent import hardware
from ironic_python_agent.tests.unit import base

from ironic_coreos.agent import hardware_manager
from ironic_coreos.engine import installer
from ironic_coreos.tests import configdrive as drives
from ironic_coreos.tests.unit.engine import test_hostile as hostile

SECRET = 'PULL-SECRET-MARKER-9d1c'
DEVICE = '/dev/sda'

_INFO_KEYS = ['configdrive', 'image_source', 'image_checksum',
              'image_os_hash_algo', 'image_os_hash_value',
              'image_pull_secret']


def _no_url(value):
    """Leave out what would be fetched (config drive URLs)."""
    return not (isinstance(value, str) and '://' in value[:16])


@st.composite
def config_drives(draw):
    """Config drives in every form, with hostile contents."""
    kind = draw(st.sampled_from(['value', 'dict', 'json', 'iso']))
    if kind == 'value':
        return draw(hostile.values.filter(_no_url))
    drive = draw(st.fixed_dictionaries(
        {}, optional={'user_data': hostile.json_values,
                      'meta_data': hostile.json_values,
                      'network_data': hostile.json_values}))
    if kind == 'dict':
        return drive
    if kind == 'json':
        return json.dumps(drive)
    # The files of an ISO hold JSON text (user_data: text as is).
    files = {key: value if isinstance(value, str) else json.dumps(value)
             for key, value in drive.items()}
    files.setdefault('meta_data', '{"uuid": "x"}')
    return drives.build_iso(
        user_data=files.get('user_data'), meta_data=files['meta_data'],
        network_data=files.get('network_data'))


step_args = st.dictionaries(
    st.sampled_from(sorted(installer.ARGUMENTS)) | st.text(max_size=5),
    hostile.values, max_size=6)

instance_infos = st.fixed_dictionaries(
    {}, optional={'configdrive': config_drives(),
                  'image_source': hostile.values,
                  'image_checksum': hostile.values,
                  'image_os_hash_algo': hostile.values,
                  'image_os_hash_value': hostile.values,
                  'image_pull_secret': st.just(SECRET)})


class _Checked(Exception):
    """Raised where the step writes the Ignition config: input accepted."""


class TestInstallCoreOSHostile(base.IronicAgentTest):

    def setUp(self):
        super().setUp()
        self.log = self.useFixture(fixtures.FakeLogger(level='DEBUG'))
        self.root = self.useFixture(fixtures.TempDir()).path
        os.chmod(self.root, 0o755)
        self.config(host_root=self.root, configdrive_fetch_timeout=1,
                    group='coreos')
        self.hwm = hardware_manager.CoreOSHardwareManager()
        self.useFixture(fixtures.MockPatchObject(
            hardware, 'dispatch_to_managers', autospec=True,
            return_value=DEVICE))
        self.useFixture(fixtures.MockPatchObject(
            hardware_manager, 'write_ignition', autospec=True,
            side_effect=_Checked))

    def _install(self, args, info):
        node = {'uuid': 'c0ffee00-0000-4000-8000-000000000001',
                'automated_clean': True, 'instance_info': info}
        try:
            self.hwm.install_coreos(node, [], **args)
        except _Checked:
            return None
        except errors.DeploymentError as exc:
            message = str(exc)
            hostile.assertPublic(self, message)
            self.assertNotIn('internal error', message)
            self.assertNotIn(SECRET, message)
            return message
        self.fail('install_coreos went past writing the Ignition config')

    @hostile.PROFILE
    @hypothesis.given(step_args, instance_infos)
    def test_arguments_and_instance_info(self, args, info):
        self._install(args, info)
        self.assertNotIn(SECRET, self.log.output)

    @hostile.PROFILE
    @hypothesis.given(hostile.values, instance_infos)
    def test_ignition_argument(self, config, info):
        self._install({'ignition': config}, info)

    @hostile.PROFILE
    @hypothesis.given(config_drives())
    def test_config_drive(self, drive):
        self._install({}, {'configdrive': drive})

    @hostile.PROFILE
    @hypothesis.given(st.fixed_dictionaries({}, optional={
        'uuid': hostile.values, 'automated_clean': hostile.values,
        'instance_info': st.dictionaries(
            st.sampled_from(_INFO_KEYS) | st.text(max_size=8),
            hostile.values.filter(_no_url), max_size=4)}))
    def test_node(self, node):
        # The node as Ironic sends it: a dict with a dict instance_info.
        try:
            self.hwm.install_coreos(node, [], ignition={
                'ignition': {'version': '3.3.0'}})
        except _Checked:
            pass
        except errors.DeploymentError as exc:
            hostile.assertPublic(self, str(exc))
            self.assertNotIn('internal error', str(exc))

    def test_lone_surrogate_is_not_logged(self):
        # Found by tools/fuzz.py: the log line could not be written.
        self.assertRaises(_Checked, self.hwm.install_coreos,
                          {'uuid': '\ud800'}, [],
                          ignition={'ignition': {'version': '3.3.0'}})
        self.assertIn('install_coreos on node None', self.log.output)

    def test_step_argument_named_node(self):
        # Found by tools/fuzz.py: a step argument "node" or "ports" was a
        # TypeError of the call.
        for name in ('node', 'ports'):
            exc = self.assertRaises(
                errors.DeploymentError, self.hwm.install_coreos, {}, [],
                ignition={'ignition': {'version': '3.3.0'}},
                **{name: {}})
            self.assertIn(name, str(exc))


class TestUnexpected(base.IronicAgentTest):
    """A bug met while checking the input is a DeploymentError."""

    def setUp(self):
        super().setUp()
        self.log = self.useFixture(fixtures.FakeLogger(level='DEBUG'))
        self.hwm = hardware_manager.CoreOSHardwareManager()
        self.useFixture(fixtures.MockPatchObject(
            hardware, 'dispatch_to_managers', autospec=True,
            return_value=DEVICE))

    def test_in_the_arguments(self):
        with mock.patch.object(installer, 'parse_args', autospec=True,
                               side_effect=TypeError(SECRET)):
            exc = self.assertRaises(errors.DeploymentError,
                                    self.hwm.install_coreos, {}, [])
        self.assertIn('install_coreos could not check the step arguments '
                      '(internal error TypeError, details in the agent '
                      'log)', str(exc))
        self.assertIn('unexpected TypeError while checking the step '
                      'arguments', self.log.output)
        self.assertIn('in install_coreos', self.log.output)
        self.assertNotIn(SECRET, str(exc) + self.log.output)

    def test_in_the_config_drive(self):
        with mock.patch.object(hardware_manager.configdrive, 'read',
                               autospec=True,
                               side_effect=KeyError(SECRET)):
            exc = self.assertRaises(
                errors.DeploymentError, self.hwm.install_coreos,
                {'instance_info': {'configdrive': {}}}, [])
        self.assertIn('install_coreos could not check the Ignition config, '
                      'the config drive and its network_data (internal '
                      'error KeyError', str(exc))
        self.assertIn('in _ignition', self.log.output)
        self.assertNotIn(SECRET, str(exc) + self.log.output)
