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

"""End to end on two conductors sharing one MariaDB database.

``ironic-api`` and two ``ironic-conductor`` processes (json-rpc) on a
private MariaDB (:mod:`.harness.multi`), the simulated nodes of the other
end-to-end tests. Every scenario deploys one node through the ``coreos``
interface and one through ``custom-agent`` with deploy-step JSON, side by
side. A crash is SIGSTOP, then SIGKILL, of every process of the
conductor's tree: nothing unregisters, reservations stay in the database.
Failure detection is tuned down (``multi.FAST_FAILOVER``: conductor
heartbeat every 2 s, offline after 10 s, rings and orphan checks every
2 s). The seconds from each crash to the peer owning the node are printed
(and attached to the test's details).

Needs root, ``mariadb-server`` and PyMySQL; skipped otherwise.
"""

import concurrent.futures
import json
import sys
import time

from testtools import content

from ironic_coreos.tests.functional.harness import core
from ironic_coreos.tests.functional.harness import multi
from ironic_coreos.tests.functional.harness import resources
from ironic_coreos.tests.functional.standin import disk as standin_disk
from ironic_coreos.tests.functional import test_deploy

SECRET = 'E2E-SECRET-MULTI-7c21e9'
INTERFACES = ('coreos', 'custom-agent')
#: Seconds a deployment may take from a crash to its final state: a
#: conductor is offline after heartbeat_timeout (10), rings refresh and
#: orphan checks run every 2 s, the agent heartbeats every 9-18 s
#: (ramdisk_heartbeat_timeout = 30) and its retries back off; generous
#: for a loaded CI machine.
SETTLE_AFTER_CRASH = 180
#: [fake]boot_delay on the conductor that crashes in the lock scenario:
#: its out-of-band deploy steps after the agent's step (clean_up_ramdisk,
#: prepare_instance) hold the node's lock for twice this long.
BOOT_DELAY = 8
AGENT_PORT = 9999


class MultiConductorTest(test_deploy.E2ETestCase):
    """Two conductors, one database; conductors crash mid-deploy."""

    harness = None
    spare = None

    @classmethod
    def setUpClass(cls):
        # NOTE: not E2ETestCase.setUpClass: another harness.
        super(test_deploy.E2ETestCase, cls).setUpClass()
        cls.spare = []
        if multi.can_run() is None:
            cls.harness = multi.MultiHarness(callback_timeout=300).start()

    def setUp(self):
        super().setUp()
        why = multi.can_run()
        if why:
            self.skipTest(why)
        if 'coreos' not in self.h.deploy_interfaces:
            self.skipTest('the coreos deploy interface does not load')
        self.a, self.b = self.h.ironic.conductors
        self._report = []
        self.addCleanup(self._attach_report)
        # Every scenario starts with both conductors serving, in their
        # normal configuration.
        for service in (self.a, self.b):
            self._restore(service)
        self.wait_for(lambda: self.h.ironic.online_conductors() == sorted(
            [self.a.hostname, self.b.hostname]), 'both conductors online')
        self.wait_ring()

    def wait_ring(self):
        """Let the API's hash ring catch up with the conductor list."""
        time.sleep(int(multi.FAST_FAILOVER[
            ('DEFAULT', 'hash_ring_reset_interval')]) + 1)

    # -- helpers -----------------------------------------------------------

    def report(self, text, *args):
        line = text % args
        self._report.append(line)
        print('multi-conductor: %s' % line, file=sys.stderr, flush=True)

    def _attach_report(self):
        self.addDetail('multi-conductor', content.text_content(
            '\n'.join(self._report)))

    def _enroll(self, count):
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            nodes = list(pool.map(lambda _i: self.h.add_node(), range(count)))
        self.spare.extend(nodes)

    def take(self, owner, iface, auto_agent=True):
        """An unused available node the ring gives to ``owner``."""
        for _attempt in range(6):
            for node in self.spare:
                if self.h.owner(node) == owner.hostname:
                    self.spare.remove(node)
                    self.h.ironic.cli('node', 'set', node.uuid,
                                      '--deploy-interface', iface)
                    node.auto_agent = auto_agent
                    node.interface = iface
                    self.addCleanup(node.stop_agent)
                    return node
            self._enroll(4)
        self.fail('the hash ring never gave a node to %s' % owner.hostname)

    def pair(self, owner, auto_agent=True):
        """A coreos node and a custom-agent node, both on ``owner``."""
        return [self.take(owner, iface, auto_agent) for iface in INTERFACES]

    def deploy(self, node):
        config = test_deploy.user_config(marker=SECRET)
        if node.interface == 'coreos':
            return self.h.deploy(node, config_drive={'user_data': config})
        return self.h.deploy(
            node, config_drive={'user_data': json.dumps(config)},
            deploy_steps=test_deploy.install_step())

    def assertDeployed(self, node, data):
        self.assertActive(data, node)
        self.assertIsNone(data['last_error'])
        info = standin_disk.inspect_disk(node.disk)
        self.assertIsNotNone(info['ignition'], 'no config.ign on %s'
                             % node.name)
        self.assertIn(SECRET.encode(), info['ignition'])

    def crash(self, service, nodes):
        """Crash ``service``; report when the peer owns each node."""
        peer = self.b if service is self.a else self.a
        killed = service.crash()
        self.report('crashed conductor %s', service.hostname)
        for node in nodes:
            # A node whose agent has not started yet boots now.
            node.auto_agent = True
        times = {}
        for node in nodes:
            seen = self.h.wait_owner(node, peer.hostname,
                                     timeout=SETTLE_AFTER_CRASH)
            times[node.name] = seen - killed
            self.report('%s (%s): the peer %s owns it %.1f s after the '
                        'crash', node.name, node.interface, peer.hostname,
                        seen - killed)
        return killed, times

    def restart(self, service, nodes, extra=None):
        """Scenario 5: the crashed conductor comes back, gets nodes back."""
        started = time.monotonic()
        service.start(extra=extra)
        deadline = time.monotonic() + 120
        while service.hostname not in self.h.ironic.online_conductors():
            self.assertLess(time.monotonic(), deadline,
                            '%s never came back online' % service.hostname)
            time.sleep(0.2)
        for node in nodes:
            seen = self.h.wait_owner(node, service.hostname, timeout=120)
            self.report('%s: back on the restarted %s %.1f s after its '
                        'start', node.name, service.hostname,
                        seen - started)

    def wait_final(self, nodes, started):
        results = [self.h.wait(node, timeout=SETTLE_AFTER_CRASH)
                   for node in nodes]
        for node, data in zip(nodes, results):
            self.report('%s (%s): %s %.1f s after the crash', node.name,
                        node.interface, data['provision_state'],
                        time.monotonic() - started)
        return results

    def wait_for(self, predicate, what, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.1)
        self.fail('timed out waiting for %s' % what)

    def assertNothingLost(self):
        """Scenario 6: every node known, at rest; no secret in any log."""
        states = self.h.ironic.states()
        for node in self.h.nodes:
            self.assertIn(node.uuid, states, 'node %s lost' % node.name)
            data = self.h.ironic.node(node.uuid)
            self.assertTrue(core.settled(data['provision_state'],
                                         data['target_provision_state'],
                                         data['reservation']),
                            '%s not at rest: %s' % (node.name, data))
            self.assertIn(data['provision_state'],
                          ('available', 'active', 'deploy failed'))
        secrets = {SECRET: 'the Ignition config',
                   self.h.ironic.db.password: 'the database password'}
        logs = self.h.all_logs()
        # Every process wrote its log: two conductors, the API, MariaDB,
        # the agents.
        for name in ('conductor-0/ironic.log', 'conductor-1/ironic.log',
                     'api/ironic.log', 'mariadb.log'):
            self.assertTrue(logs.get(name), 'no %s' % name)
        for name, text in logs.items():
            for secret, what in secrets.items():
                self.assertNotIn(secret, text, '%s in %s' % (what, name))

    def in_namespace(self, node, *argv):
        resources.run(['ip', 'netns', 'exec', node.netns] + list(argv))

    # -- scenarios ---------------------------------------------------------

    def test_1_spread_over_both_conductors(self):
        nodes = [self.take(owner, iface) for owner in (self.a, self.b)
                 for iface in INTERFACES]
        for node in nodes:
            self.deploy(node)
        for node in nodes:
            data = self.h.wait(node, timeout=300)
            self.assertDeployed(node, data)
        owners = {self.h.owner(node) for node in nodes}
        self.assertEqual({self.a.hostname, self.b.hostname}, owners)
        self.assertNothingLost()

    def test_2_owner_crash_in_wait_callback(self):
        nodes = self.pair(self.a, auto_agent=False)
        for node in nodes:
            self.deploy(node)
        for node in nodes:
            self.h.wait_state(node, 'wait call-back', timeout=120)
        # The nodes boot while their conductor is gone.
        killed, _times = self.crash(self.a, nodes)
        for node, data in zip(nodes, self.wait_final(nodes, killed)):
            self.assertDeployed(node, data)
            self.assertEqual(self.b.hostname, data['conductor'])
        self.restart(self.a, nodes)
        self.assertNothingLost()

    def test_3_owner_crash_while_agent_installs(self):
        nodes = self.pair(self.b)
        for node in nodes:
            # The install step runs for 8 s more once the crash is due.
            node.set_faults({'hang': 8})
            self.deploy(node)
        for node in nodes:
            self.wait_for(node.installer_invocations,
                          'the installer on %s' % node.name)
        killed, _times = self.crash(self.b, nodes)
        for node, data in zip(nodes, self.wait_final(nodes, killed)):
            self.assertDeployed(node, data)
            self.assertEqual(self.a.hostname, data['conductor'])
            # The step ran once: the peer took its result, not a re-run.
            self.assertEqual(1, len(node.installer_invocations()))
        self.restart(self.b, nodes)
        self.assertNothingLost()

    def test_4a_owner_crash_holding_lock_in_wait_callback(self):
        """The owner dies inside heartbeat processing, lock held.

        While it processes a heartbeat the conductor asks the agent for
        its command status, holding the node's exclusive lock; the agent
        does not answer (its port drops packets). The owner crashes with
        the reservation in the database and the node in ``wait
        call-back``. The peer's orphan check clears the dead conductor's
        reservation, the next heartbeat goes to the peer and the
        deployment finishes.
        """
        nodes = self.pair(self.a)
        for node in nodes:
            node.set_faults({'hang': 6})
            self.deploy(node)
        for node in nodes:
            self.wait_for(node.installer_invocations,
                          'the installer on %s' % node.name)
            self.in_namespace(node, 'iptables', '-I', 'INPUT', '-p', 'tcp',
                              '--dport', str(AGENT_PORT), '-j', 'DROP')
        for node in nodes:
            self.wait_for(lambda n=node: self.h.ironic.node(n.uuid)[
                'reservation'] == self.a.hostname,
                'the heartbeat of %s holding the lock' % node.name,
                timeout=90)
        states = [self.h.ironic.node(n.uuid)['provision_state']
                  for n in nodes]
        killed, _times = self.crash(self.a, nodes)
        for node in nodes:
            self.in_namespace(node, 'iptables', '-D', 'INPUT', '-p', 'tcp',
                              '--dport', str(AGENT_PORT), '-j', 'DROP')
        self.report('the nodes were %s with the lock held', states)
        for node in nodes:
            released = self.wait_for(
                lambda n=node: self.h.ironic.node(n.uuid)[
                    'reservation'] != self.a.hostname or None,
                'the reservation of %s released' % node.name,
                timeout=SETTLE_AFTER_CRASH)
            self.assertTrue(released)
            self.report('%s: the dead conductor\'s lock released %.1f s '
                        'after the crash', node.name,
                        time.monotonic() - killed)
        for node, data in zip(nodes, self.wait_final(nodes, killed)):
            self.assertDeployed(node, data)
            self.assertEqual(self.b.hostname, data['conductor'])
        self.restart(self.a, nodes)
        self.assertNothingLost()

    def test_4b_owner_crash_holding_lock_while_deploying(self):
        """The owner dies holding the lock in ``deploying``.

        The heartbeat that carries the agent's step result makes the owner
        run the remaining out-of-band steps under the node's lock (slowed
        down here with ``[fake]boot_delay`` on that conductor only). It
        crashes there. The peer's orphan check clears the reservation and
        fails the deployment (``Operation was aborted due to conductor
        take over``): ``deploy failed``, never stuck. The operator's
        recovery is to deploy again, which the peer does.
        """
        self.a.stop()
        self.a.start(extra={('fake', 'boot_delay'): str(BOOT_DELAY)})
        self.addCleanup(self._restore, self.a)
        self.wait_for(lambda: self.a.hostname in
                      self.h.ironic.online_conductors(),
                      '%s online' % self.a.hostname)
        self.wait_ring()
        nodes = self.pair(self.a)
        for node in nodes:
            self.deploy(node)

        def in_window():
            for node in nodes:
                data = self.h.ironic.node(node.uuid)
                waited = any(s == 'wait call-back' for _t, s, _g in
                             node.history)
                if not (waited and data['provision_state'] == 'deploying'
                        and data['reservation'] == self.a.hostname):
                    return False
            return True

        self.wait_for(in_window, 'both nodes deploying on %s after their '
                      'step' % self.a.hostname, timeout=240)
        killed, _times = self.crash(self.a, nodes)
        for node, data in zip(nodes, self.wait_final(nodes, killed)):
            self.assertFailed(data, 'aborted due to conductor take over')
            self.assertIsNone(data['reservation'])
        # The operator's recovery: deploy again, as first requested.
        for node in nodes:
            self.deploy(node)
        for node in nodes:
            data = self.h.wait(node, timeout=300)
            self.assertDeployed(node, data)
            self.assertEqual(self.b.hostname, data['conductor'])
        self.report('recovered by deploying again on %s', self.b.hostname)
        self.restart(self.a, nodes, extra={})
        self.assertNothingLost()

    def _restore(self, service):
        """Bring a conductor back to its normal configuration."""
        if service.extra != service.base_extra or not service.running:
            service.stop()
            service.start(extra={})
