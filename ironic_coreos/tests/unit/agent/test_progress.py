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

import collections
import threading
from unittest import mock

from ironic_python_agent.extensions import base as ext_base
from ironic_python_agent.tests.unit import base

from ironic_coreos.agent import progress

STATE = {'phase': 'writing', 'percent': 48, 'bytes_read': 10,
         'bytes_total': 20, 'bytes_per_second': 5, 'attempt': 1}


class FakeAgent(object):

    def __init__(self):
        self.command_results = collections.OrderedDict()
        self.force_heartbeat = mock.Mock()


class FakeClock(object):

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


@mock.patch.object(ext_base, 'get_extension', autospec=True)
class PublisherTestCase(base.IronicAgentTest):

    def setUp(self):
        super().setUp()
        self.agent = FakeAgent()
        self.clock = FakeClock()

    def run_command(self, mock_get_ext, body):
        """Run body(publisher) as the agent runs a deploy step."""
        mock_get_ext.return_value = mock.Mock(agent=self.agent)
        seen = {}

        def step():
            publisher = progress.Publisher(clock=self.clock)
            body(publisher)
            seen['running'] = command.serialize()
            return {'deploy_result': None, 'deploy_step': {'step': 'x'}}

        command = ext_base.AsyncCommandResult(
            'execute_deploy_step', {}, step, agent=self.agent)
        self.agent.command_results[command.id] = command
        command.start().join()
        return seen['running'], command.serialize()

    def test_published_while_running(self, mock_get_ext):
        running, done = self.run_command(
            mock_get_ext, lambda p: p.publish(STATE))
        self.assertEqual('RUNNING', running['command_status'])
        self.assertEqual({'coreos_install': STATE},
                         running['command_result'])
        # The step's own result replaces the progress when it returns.
        self.assertEqual('SUCCEEDED', done['command_status'])
        self.assertEqual({'deploy_result': None,
                          'deploy_step': {'step': 'x'}},
                         done['command_result'])

    def test_heartbeat_throttled(self, mock_get_ext):
        self.config(progress_report_interval=10, group='coreos')

        def body(publisher):
            publisher.publish(STATE)
            self.clock.now = 5
            publisher.publish(dict(STATE, percent=60))
            self.clock.now = 11
            publisher.publish(dict(STATE, percent=70))

        running, _done = self.run_command(mock_get_ext, body)
        self.assertEqual(70, running['command_result']['coreos_install'][
            'percent'])
        # Two forced by the publisher, one by the agent at the step's end.
        self.assertEqual(3, self.agent.force_heartbeat.call_count)

    def test_no_heartbeat_when_off(self, mock_get_ext):
        self.config(progress_report_interval=0, group='coreos')
        running, _done = self.run_command(
            mock_get_ext, lambda p: p.publish(STATE))
        self.assertEqual({'coreos_install': STATE},
                         running['command_result'])
        # Only the agent's own heartbeat at the end of the command.
        self.agent.force_heartbeat.assert_called_once_with()

    def test_other_thread_not_touched(self, mock_get_ext):
        mock_get_ext.return_value = mock.Mock(agent=self.agent)
        other = ext_base.AsyncCommandResult(
            'execute_deploy_step', {}, lambda: None, agent=self.agent)
        self.agent.command_results[other.id] = other
        # Built outside the command's thread: publishes nothing.
        publisher = progress.Publisher(clock=self.clock)
        publisher.publish(STATE)
        self.assertIsNone(other.serialize()['command_result'])
        self.agent.force_heartbeat.assert_not_called()

    def test_command_recorded_after_the_step_started(self, mock_get_ext):
        # The agent starts a command's thread before it records the
        # command: a publisher made that early still finds it.
        mock_get_ext.return_value = mock.Mock(agent=self.agent)
        started = threading.Event()
        recorded = threading.Event()
        seen = {}

        def step():
            publisher = progress.Publisher(clock=self.clock)
            started.set()
            recorded.wait(10)
            publisher.publish(STATE)
            seen['running'] = command.serialize()

        command = ext_base.AsyncCommandResult(
            'execute_deploy_step', {}, step, agent=self.agent)
        command.start()
        started.wait(10)
        self.agent.command_results[command.id] = command
        recorded.set()
        command.join()
        self.assertEqual({'coreos_install': STATE},
                         seen['running']['command_result'])

    def test_without_agent(self, mock_get_ext):
        mock_get_ext.side_effect = RuntimeError('no extension manager')
        publisher = progress.Publisher(clock=self.clock)
        publisher.publish(STATE)   # does nothing, raises nothing
        self.agent.force_heartbeat.assert_not_called()
