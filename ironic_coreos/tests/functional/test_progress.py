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

"""End to end: install progress through the real Ironic API."""

import os
import time

from ironic_coreos.tests.functional.harness import core
from ironic_coreos.tests.functional import test_deploy

KEY = 'coreos_install'


class ProgressTest(test_deploy.E2ETestCase):
    """The coreos interface publishes the agent's install progress."""

    harness_args = {'agent_coreos_options': {'progress_report_interval': '1'},
                    'ironic_options': {}}

    def _follow(self, node, timeout=240):
        """Poll the node until it settles; collect the progress seen."""
        seen = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            data = self.h.ironic.get(
                '/v1/nodes/%s?fields=provision_state,target_provision_state,'
                'driver_internal_info,last_error,reservation' % node.uuid)
            state = data['driver_internal_info'].get(KEY)
            if state and (not seen or seen[-1] != state):
                seen.append(state)
            if (data['provision_state'] in ('active', 'deploy failed')
                    and core.settled(data['provision_state'],
                                     data['target_provision_state'],
                                     data['reservation'])):
                return data, seen
            time.sleep(0.3)
        self.fail('node %s did not settle; progress seen: %s'
                  % (node.name, seen))

    def _throttle(self, node, seconds, **faults):
        size = os.path.getsize(self.h.offline_image)
        node.set_faults(dict(faults, throttle=size / float(seconds)))

    def test_progress_rises_to_100(self):
        node = self.node('coreos')
        self._throttle(node, 25, sync_delay=8)
        self.h.deploy(node, config_drive={
            'user_data': test_deploy.user_config()})
        data, seen = self._follow(node)
        self.assertActive(data, node)
        percents = [s['percent'] for s in seen
                    if s['phase'] == 'writing' and s['percent'] is not None]
        self.assertGreaterEqual(len(set(percents)), 3, seen)
        self.assertEqual(sorted(percents), percents, seen)
        self.assertEqual(100, percents[-1], seen)
        for state in seen:
            self.assertEqual(
                {'phase', 'percent', 'bytes_read', 'bytes_total',
                 'bytes_per_second', 'attempt', 'updated_at'}, set(state))
            self.assertTrue(state['updated_at'].endswith('+00:00'), state)
        self.assertEqual(os.path.getsize(self.h.offline_image),
                         seen[-1]['bytes_total'])
        self.assertTrue(any(s['bytes_per_second'] for s in seen), seen)
        # The key is gone once the step ended.
        self.assertNotIn(KEY, data['driver_internal_info'])

    def test_failure_names_the_phase(self):
        node = self.node('coreos')
        self._throttle(node, 10, sync_delay=4,
                       permanent_after_write='writing to disk: '
                                             'Input/output error')
        self.h.deploy(node, config_drive={
            'user_data': test_deploy.user_config()})
        data, seen = self._follow(node)
        self.assertFailed(data, 'stopped while writing, 100%',
                          'Input/output error')
        self.assertNotIn(KEY, data['driver_internal_info'])
        node.set_faults(None)
        data = self.deploy_and_wait(node, config_drive={
            'user_data': test_deploy.user_config()})
        self.assertActive(data, node)


class StallTest(test_deploy.E2ETestCase):
    """[coreos]install_stall_timeout fails a stuck install early."""

    harness_args = {'agent_coreos_options': {'progress_report_interval': '1'},
                    'ironic_options': {('coreos', 'install_stall_timeout'):
                                       '15',
                                       ('api', 'ramdisk_heartbeat_timeout'):
                                       '20'},
                    'callback_timeout': 600}

    def test_stalled_install_fails(self):
        node = self.node('coreos')
        size = os.path.getsize(self.h.offline_image)
        # Reads a quarter of the image at once, then nothing for an hour.
        node.set_faults({'throttle': size / 4.0, 'stall_after': size // 4,
                         'stall': 3600})
        self.h.deploy(node, config_drive={
            'user_data': test_deploy.user_config()})
        data, seen = self._follow(node)
        self.assertFailed(data, 'made no progress for',
                          'install_stall_timeout = 15', 'stopped while '
                          'writing')
        self.assertTrue(any(s['phase'] == 'writing' for s in seen), seen)
        self.assertNotIn(KEY, data['driver_internal_info'])
        node.set_faults(None)
        data = self.deploy_and_wait(node, config_drive={
            'user_data': test_deploy.user_config()})
        self.assertActive(data, node)

    _follow = ProgressTest._follow
