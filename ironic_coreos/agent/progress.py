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

"""Publish the progress of a running install to the conductor.

The agent refuses every command while an asynchronous one (the deploy
step) runs, so the conductor cannot ask for the progress with a command of
its own. It does read the agent's command list on every heartbeat, and the
running command's entry has a ``command_result`` that stays empty until the
step returns. While ``install_coreos`` runs, its progress is published
there under :data:`ironic_coreos.engine.progress.KEY`; the step's real
result replaces it when the step ends. A heartbeat is asked for when the
progress changed, at most once per ``[coreos]progress_report_interval``
seconds, so the conductor sees it without waiting for the next regular
heartbeat.
"""

import threading
import time

from oslo_config import cfg
from oslo_log import log

from ironic_python_agent.extensions import base as ext_base

from ironic_coreos import conf  # noqa: F401  (registers [coreos])
from ironic_coreos.engine import progress

LOG = log.getLogger(__name__)
CONF = cfg.CONF

_RUNNING = ext_base.AgentCommandStatus.RUNNING


def _running_command():
    """The agent's command running the current thread, or None."""
    try:
        agent = ext_base.get_extension('deploy').agent
    except Exception:
        # NOTE: no extension manager (the step called outside a running
        # agent, e.g. by a tool): nothing to publish to.
        return None
    if agent is None:
        return None
    current = threading.current_thread()
    for command in reversed(list(agent.command_results.values())):
        if getattr(command, 'execution_thread', None) is current:
            return command
    return None


class Publisher(object):
    """Publishes progress dicts of the running deploy step.

    :param clock: a monotonic clock (seconds).
    """

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._command = None
        self._last_heartbeat = None

    def publish(self, state):
        """Publish a progress dict; ask for a heartbeat when it is time.

        :param state: a JSON-serialisable dict without secrets.
        """
        if self._command is None:
            # NOTE: the agent records a command only after its thread has
            # started, so it is looked up when there is something to say.
            self._command = _running_command()
            if self._command is None:
                LOG.debug('Not running as an agent command: the install '
                          'progress is not published')
                return
        command = self._command
        with command.command_state_lock:
            if command.command_status != _RUNNING:
                return
            command.command_result = {progress.KEY: dict(state)}
        interval = CONF.coreos.progress_report_interval
        if not interval:
            return
        now = self._clock()
        if (self._last_heartbeat is not None
                and now - self._last_heartbeat < interval):
            return
        self._last_heartbeat = now
        agent = getattr(command, 'agent', None)
        if agent is not None:
            agent.force_heartbeat()
