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

"""End to end: per-node CoreOS live ISOs over Redfish virtual media.

The real Ironic drives ``coreos-redfish`` nodes with the
``coreos-redfish-virtual-media`` boot interface against sushy-emulator
(fake systems, HTTPS, its virtual media driver, which downloads what it is
asked to insert, as a BMC does). The stock ISO is a CoreOS live ISO layout
(coreos-installer's fixture, a stub kernel: never booted) on an HTTP server
of the run; Ironic's ``[deploy]http_root`` is served by another. When
Ironic waits for the agent the test reads the ISO the BMC was given, then
starts the node's agent (as the live system would) and lets the deploy
finish. Needs root; skipped otherwise.
"""

import configparser
import copy
import json
import os
import stat
import time

from ironic_coreos.engine import live_media
from ironic_coreos.engine import merge
from ironic_coreos.tests.functional.harness import bmc
from ironic_coreos.tests.functional.harness import core
from ironic_coreos.tests.functional import test_deploy
from ironic_coreos.tests.functional import test_redfish
from ironic_coreos.tests import live_iso

import requests

AGENT_IMAGE = '192.0.2.1:5000/ironic-coreos-agent:e2e'
INTERFACES = {'power': 'redfish', 'management': 'redfish',
              'vendor': 'redfish', 'boot': 'coreos-redfish-virtual-media',
              'deploy': 'coreos'}


def network_data(node):
    """A static address for the node's port (no DHCP anywhere)."""
    data = copy.deepcopy(test_deploy.NETWORK_DATA)
    data['links'][0]['ethernet_mac_address'] = node.mac
    data['networks'][0]['ip_address'] = '192.0.2.%d' % (100 + node.index)
    # Ironic's network_data schema requires it.
    data['networks'][0]['network_id'] = 'provisioning'
    return data


class VirtualMediaTest(test_deploy.E2ETestCase):
    """Deploy through per-node live ISOs inserted by a Redfish BMC."""

    @classmethod
    def setUpClass(cls):
        super(test_deploy.E2ETestCase, cls).setUpClass()
        if core.can_run() is not None:
            return
        harness = core.Harness(callback_timeout=600)
        bmc_dir = os.path.join(harness.state_dir, 'bmc')
        options = test_redfish.ironic_options(
            os.path.join(bmc_dir, 'e2e-bmc-ca.pem'))
        options.update({
            ('DEFAULT', 'enabled_boot_interfaces'):
                'fake,pxe,redfish-virtual-media,coreos-redfish-virtual-media',
            ('coreos', 'live_agent_image'): AGENT_IMAGE,
            ('coreos', 'live_agent_options'): 'DEFAULT.lookup_timeout=600',
            ('coreos', 'live_iso_master_path'):
                os.path.join(harness.state_dir, 'ironic', 'master_live'),
        })
        harness.ironic_options.update(options)
        cls.harness = harness.start()
        try:
            ironic = harness.ironic
            cls.http_root = os.path.join(ironic.state_dir, 'httpboot')
            cls.http = harness.serve(cls.http_root)
            # [deploy]http_url is read at start: restart on the server's.
            ironic.extra[('deploy', 'http_url')] = cls.http.url
            ironic.write_config()
            ironic.restart()
            images = os.path.join(harness.state_dir, 'images-served')
            os.makedirs(images)
            cls.stock = live_iso.unpack('2023-07.x86_64', images,
                                        name='fedora-coreos-live.iso')
            cls.images = harness.serve(images)
            cls.stock_url = cls.images.url_of(cls.stock)
            cls.ca = bmc.CertificateAuthority(bmc_dir)
            cls.bmc = bmc.SushyEmulator(harness, 4, cls.ca).start()
        except BaseException:
            harness.stop()
            cls.harness = None
            raise

    def enroll(self):
        system = self.bmc.take_system()
        info = self.bmc.driver_info(system, deploy_forces_oob_reboot=True,
                                    deploy_iso=self.stock_url)
        node = bmc.enroll(self.h, 'coreos-redfish', info, INTERFACES)
        self.addCleanup(node.stop_agent)
        node.system = system
        node.auto_agent = False
        self.h.ironic.cli('node', 'set', node.uuid, '--network-data',
                          json.dumps(network_data(node)))
        self.h.ironic.cli('node', 'manage', node.uuid)
        data = self.h.wait(node, ('manageable', 'enroll'), timeout=90)
        self.assertEqual('manageable', data['provision_state'],
                         data['last_error'])
        self.h.ironic.cli('node', 'provide', node.uuid)
        data = self.h.wait(node, ('available', 'clean failed'), timeout=90)
        self.assertEqual('available', data['provision_state'],
                         data['last_error'])
        return node

    def wait_for_agent(self, node, timeout=300):
        """Wait until Ironic waits for the node's agent (or failed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            data = self.h.ironic.node(node.uuid)
            if (data['provision_state'] in ('wait call-back', 'deploy failed')
                    and not data.get('reservation')):
                return data
            time.sleep(0.5)
        self.fail('node %s not waiting for its agent within %ss: %s'
                  % (node.name, timeout, data['provision_state']))

    def virtual_cd(self, node):
        # sushy-emulator has the virtual media of a system under it.
        return self.bmc.get('/redfish/v1/Systems/%s/VirtualMedia/Cd'
                            % node.system)

    def published(self, node):
        return os.path.join(self.http_root, 'redfish',
                            'boot-%s.iso' % node.uuid)

    def read_inserted(self, node):
        """The ISO the BMC holds for the node, fetched as the BMC did."""
        cd = self.virtual_cd(node)
        self.assertTrue(cd['Inserted'], cd)
        self.assertEqual('%s/redfish/boot-%s.iso' % (self.http.url,
                                                     node.uuid), cd['Image'])
        path = os.path.join(node.dir, 'inserted.iso')
        with requests.get(cd['Image'], stream=True, timeout=30) as resp:
            resp.raise_for_status()
            with open(path, 'wb') as f:
                for chunk in resp.iter_content(1024 * 1024):
                    f.write(chunk)
        return live_media.LiveISO.open(path)

    def assertNodeISO(self, node, iso):
        keyfile = iso.keyfiles['port0.nmconnection'].decode()
        self.assertIn('address1=192.0.2.%d/24' % (100 + node.index), keyfile)
        self.assertIn(node.mac.upper(), keyfile.upper())
        config = json.loads(iso.ignition)
        files = {f['path']: f for f in config['storage']['files']}
        agent_conf = configparser.ConfigParser()
        agent_conf.read_string(merge.file_contents(
            files['/etc/ironic-python-agent/ironic-python-agent.conf'])
            .decode())
        self.assertEqual(self.h.ironic.url, agent_conf['DEFAULT']['api_url'])
        self.assertEqual('600', agent_conf['DEFAULT']['lookup_timeout'])
        self.assertIn(AGENT_IMAGE, config['systemd']['units'][0]['contents'])
        kargs = iso.kargs.split()
        self.assertIn('boot_method=vmedia', kargs)
        self.assertIn('ipa-api-url=%s' % self.h.ironic.url, kargs)

    def test_two_nodes_deploy_through_their_own_iso(self):
        nodes = [self.enroll(), self.enroll()]
        config = test_deploy.user_config()
        for node in nodes:
            self.h.deploy(node, config_drive={
                'user_data': config, 'meta_data': {'hostname': node.name}})
        for node in nodes:
            data = self.wait_for_agent(node)
            self.assertEqual('wait call-back', data['provision_state'],
                             data['last_error'])
            path = self.published(node)
            self.assertEqual(0o640, stat.S_IMODE(os.stat(path).st_mode))
            self.assertNodeISO(node, self.read_inserted(node))
            self.assertEqual('Cd', self.bmc.system(node.system)['Boot'][
                'BootSourceOverrideTarget'])
        # One download of the stock ISO for both nodes.
        gets = [r for r in self.images.requests
                if r['method'] == 'GET'
                and r['path'].endswith('/fedora-coreos-live.iso')]
        self.assertEqual(1, len(gets), self.images.requests)
        # The live systems come up: their agents call back.
        for node in nodes:
            node.auto_agent = True
            node.start_agent()
        for node in nodes:
            data = self.h.wait(node, timeout=300)
            self.assertActive(data, node)
            self.installed(node)
            # Ironic tore the ramdisk down: the ISO is ejected and gone.
            self.assertFalse(os.path.exists(self.published(node)))
            self.assertFalse(self.virtual_cd(node)['Inserted'])
            self.assertEqual('Hdd', self.bmc.system(node.system)['Boot'][
                'BootSourceOverrideTarget'])

    def test_not_a_live_iso_fails_before_power(self):
        node = self.enroll()
        junk = os.path.join(os.path.dirname(self.stock), 'junk.iso')
        with open(junk, 'wb') as f:
            f.write(os.urandom(70000))
        self.h.ironic.cli('node', 'set', node.uuid, '--driver-info',
                          'deploy_iso=%s' % self.images.url_of(junk))
        self.h.deploy(node, config_drive={
            'user_data': test_deploy.user_config()})
        data = self.h.wait(node, ('deploy failed',), timeout=300)
        self.assertIn('not an ISO 9660', data['last_error'])
        self.assertIn('junk.iso', data['last_error'])
        self.assertEqual('Off', self.bmc.system(node.system)['PowerState'])
        self.assertFalse(self.virtual_cd(node)['Inserted'])
        self.assertFalse(os.path.exists(self.published(node)))
