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

"""End to end: the package's hardware types against a real Redfish BMC.

The real Ironic drives ``coreos-redfish`` and ``coreos-idrac`` nodes with
its Redfish power and management interfaces through the real ``baremetal``
CLI, against sushy-emulator (fake systems) over HTTPS with a certificate of
a CA made for the run; ``[redfish]verify_ca`` names that CA, as an operator
with a private BMC CA would configure it. Boot is PXE (files only: no DHCP
server, the agent is started by the harness when Ironic waits for it).
``coreos-ipmi`` is validated against Ironic's IPMI expectations; no IPMI
BMC runs, so it is never managed. Needs root; skipped otherwise.
"""

import json
import os
import time

from ironic_coreos.tests.functional.harness import bmc
from ironic_coreos.tests.functional.harness import core
from ironic_coreos.tests.functional import test_deploy

SYSTEMS = 8
TYPES = ('fake-hardware', 'redfish', 'idrac', 'ipmi', 'coreos-redfish',
         'coreos-idrac', 'coreos-ipmi')


def ironic_options(ca_path):
    return {
        ('DEFAULT', 'enabled_hardware_types'): ','.join(TYPES),
        ('DEFAULT', 'enabled_boot_interfaces'): 'fake,pxe',
        ('DEFAULT', 'enabled_power_interfaces'):
            'fake,redfish,idrac-redfish,ipmitool',
        ('DEFAULT', 'enabled_management_interfaces'):
            'fake,noop,redfish,idrac-redfish,ipmitool',
        ('DEFAULT', 'enabled_vendor_interfaces'):
            'fake,no-vendor,redfish,idrac-redfish,ipmitool',
        ('redfish', 'verify_ca'): ca_path,
        # A refused certificate fails in seconds, not after 5 x 4 s.
        ('redfish', 'connection_attempts'): 2,
        ('redfish', 'connection_retry_interval'): 1,
    }


REDFISH = {'power': 'redfish', 'management': 'redfish', 'vendor': 'redfish',
           'boot': 'pxe', 'deploy': 'coreos'}
IDRAC = {'power': 'idrac-redfish', 'management': 'idrac-redfish',
         'vendor': 'idrac-redfish', 'boot': 'pxe', 'deploy': 'coreos'}
IPMI = {'power': 'ipmitool', 'management': 'ipmitool', 'vendor': 'ipmitool',
        'boot': 'pxe', 'deploy': 'coreos'}


class RedfishTest(test_deploy.E2ETestCase):
    """Enroll to active against sushy-emulator, TLS checked or not."""

    @classmethod
    def setUpClass(cls):
        super(test_deploy.E2ETestCase, cls).setUpClass()
        if core.can_run() is not None:
            return
        harness = core.Harness(callback_timeout=90)
        bmc_dir = os.path.join(harness.state_dir, 'bmc')
        ca_path = os.path.join(bmc_dir, 'e2e-bmc-ca.pem')
        # [redfish]verify_ca is read when used: the CA is made once the
        # run's directory exists.
        harness.ironic_options.update(ironic_options(ca_path))
        cls.harness = harness.start()
        try:
            cls.ca = bmc.CertificateAuthority(bmc_dir)
            cls.other_ca = bmc.CertificateAuthority(
                os.path.join(bmc_dir, 'other'), name='not-the-bmc-ca')
            cls.bmc = bmc.SushyEmulator(harness, SYSTEMS, cls.ca).start()
            cls.ramdisk = cls._deploy_ramdisk()
        except BaseException:
            harness.stop()
            cls.harness = None
            raise

    @classmethod
    def _deploy_ramdisk(cls):
        """Kernel and ramdisk files for PXE (written, never booted)."""
        # Under Ironic's [conductor]file_url_allowed_paths.
        directory = os.path.join(cls.harness.ironic.state_dir,
                                 'deploy-images')
        os.makedirs(directory)
        files = {}
        for name in ('kernel', 'ramdisk'):
            path = os.path.join(directory, 'coreos-live-%s' % name)
            with open(path, 'wb') as f:
                f.write(b'simulated %s\n' % name.encode())
            files['deploy_%s' % name] = 'file://%s' % path
        return files

    # -- helpers -----------------------------------------------------------

    def enroll(self, driver, interfaces, **driver_info):
        system = self.bmc.take_system()
        info = self.bmc.driver_info(system, deploy_forces_oob_reboot=True,
                                    **self.ramdisk)
        info.update(driver_info)
        node = bmc.enroll(self.h, driver, info, interfaces)
        self.addCleanup(node.stop_agent)
        node.system = system
        return node

    def validate(self, node):
        rows = self.h.ironic.cli('node', 'validate', node.uuid,
                                 json_out=True)
        return {r['Interface']: (r['Result'], r['Reason']) for r in rows}

    def assertValid(self, node, *interfaces):
        result = self.validate(node)
        for iface in interfaces:
            self.assertEqual(True, result[iface][0],
                             '%s: %s' % (iface, result[iface][1]))

    def wait_power(self, node, state, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            data = self.h.ironic.node(node.uuid)
            if data['power_state'] == state and not data[
                    'target_power_state']:
                return data
            time.sleep(0.25)
        self.fail('node %s not %s within %ss: %s (last_error %s)'
                  % (node.name, state, timeout, data['power_state'],
                     data['last_error']))

    def bmc_system(self, node):
        return self.bmc.system(node.system)

    def manage_and_provide(self, node):
        self.h.ironic.cli('node', 'manage', node.uuid)
        data = self.h.wait(node, ('manageable', 'enroll'), timeout=90)
        self.assertEqual('manageable', data['provision_state'],
                         data['last_error'])
        # Manage reads the power state from the BMC.
        self.assertEqual('power off', data['power_state'])
        self.h.ironic.cli('node', 'provide', node.uuid)
        data = self.h.wait(node, ('available', 'clean failed'), timeout=90)
        self.assertEqual('available', data['provision_state'],
                         data['last_error'])

    def power_and_boot_device(self, node):
        cli = self.h.ironic.cli
        cli('node', 'power', 'on', node.uuid)
        self.wait_power(node, 'power on')
        self.assertEqual('On', self.bmc_system(node)['PowerState'])
        cli('node', 'boot', 'device', 'set', node.uuid, 'pxe')
        boot = self.bmc_system(node)['Boot']
        self.assertEqual('Pxe', boot['BootSourceOverrideTarget'])
        self.assertEqual('pxe', cli('node', 'boot', 'device', 'show',
                                    node.uuid, json_out=True)['boot_device'])
        cli('node', 'power', 'off', node.uuid)
        self.wait_power(node, 'power off')
        self.assertEqual('Off', self.bmc_system(node)['PowerState'])

    def deploy_to_active(self, node):
        config = test_deploy.user_config()
        data = self.deploy_and_wait(
            node, timeout=300, config_drive={
                'user_data': config, 'meta_data': {'hostname': node.name}})
        self.assertActive(data, node)
        info = self.installed(node)
        self.assertEqual(config['storage']['files'][0]['path'],
                         json.loads(info['ignition'])['storage']['files'][0]
                         ['path'])
        # Ironic powered the machine through the BMC and left it booting
        # from its disk.
        self.assertEqual('power on', data['power_state'])
        system = self.bmc_system(node)
        self.assertEqual('On', system['PowerState'])
        self.assertEqual('Hdd', system['Boot']['BootSourceOverrideTarget'])
        self.assertEqual(1, node.agent_starts)

    # -- tests ---------------------------------------------------------------

    def test_default_driver_info_enroll_to_active(self):
        node = self.enroll('coreos-redfish', REDFISH)
        self.assertNotIn('redfish_verify_ca',
                         self.h.ironic.node(node.uuid)['driver_info'])
        self.assertValid(node, 'power', 'management', 'boot', 'deploy')
        self.manage_and_provide(node)
        self.power_and_boot_device(node)
        self.deploy_to_active(node)

    def test_verify_ca_false_enroll_to_active(self):
        node = self.enroll('coreos-redfish', REDFISH,
                           redfish_verify_ca='false')
        self.assertValid(node, 'power', 'management', 'boot', 'deploy')
        self.manage_and_provide(node)
        self.power_and_boot_device(node)
        self.deploy_to_active(node)

    def test_ca_path_is_verified(self):
        # A CA that did not sign the BMC's certificate: refused, and the
        # node stays where it was.
        node = self.enroll('coreos-redfish', REDFISH,
                           redfish_verify_ca=self.other_ca.path)
        self.assertValid(node, 'power', 'management')
        self.h.ironic.cli('node', 'manage', node.uuid)
        data = self.h.wait(node, ('enroll', 'manageable'), timeout=90)
        self.assertEqual('enroll', data['provision_state'])
        self.assertIn('CERTIFICATE_VERIFY_FAILED', data['last_error'])
        # The right CA, given explicitly: manageable.
        self.h.ironic.cli('node', 'set', node.uuid, '--driver-info',
                          'redfish_verify_ca=%s' % self.ca.path)
        self.h.ironic.cli('node', 'manage', node.uuid)
        data = self.h.wait(node, ('manageable', 'enroll'), timeout=90)
        self.assertEqual('manageable', data['provision_state'],
                         data['last_error'])
        self.assertEqual('power off', data['power_state'])

    def test_same_as_stock_redfish(self):
        ours = self.enroll('coreos-redfish', REDFISH)
        stock = self.enroll('redfish', dict(REDFISH, deploy='direct'))
        mine, theirs = self.validate(ours), self.validate(stock)
        for iface in ('power', 'management', 'boot', 'console', 'raid',
                      'bios', 'inspect', 'rescue', 'storage', 'network'):
            # Reasons of unsupported interfaces name the hardware type.
            result, reason = mine[iface]
            if reason:
                reason = reason.replace('coreos-redfish', 'redfish')
            self.assertEqual(theirs[iface], (result, reason), iface)
        cli = self.h.ironic.cli

        # Vendor passthru on the node and on the driver.
        def by_name(rows):
            return sorted(rows, key=lambda row: row['Name'])

        methods = [by_name(cli('node', 'passthru', 'list', n.uuid,
                               json_out=True)) for n in (ours, stock)]
        self.assertIn('eject_vmedia', [m['Name'] for m in methods[0]])
        self.assertEqual(methods[1], methods[0])
        self.assertEqual(
            by_name(cli('driver', 'passthru', 'list', 'redfish',
                        json_out=True)),
            by_name(cli('driver', 'passthru', 'list', 'coreos-redfish',
                        json_out=True)))
        # The hash ring maps the type to this conductor; the defaults are
        # those of redfish, only the deploy interfaces add coreos.
        drivers = {d['name']: d['hosts']
                   for d in cli('driver', 'list', json_out=True)}
        self.assertEqual('e2e-conductor', drivers['coreos-redfish'])
        shown = {name: cli('driver', 'show', name, json_out=True)
                 for name in ('redfish', 'coreos-redfish')}
        defaults = [key for key in shown['redfish']
                    if key.startswith('default_')]
        self.assertIn('default_power_interface', defaults)
        for key in defaults:
            self.assertEqual(shown['redfish'][key],
                             shown['coreos-redfish'][key], key)
        self.assertIn('coreos',
                      shown['coreos-redfish']['enabled_deploy_interfaces'])
        self.assertNotIn('coreos',
                         shown['redfish']['enabled_deploy_interfaces'])
        # A power state read through each.
        for node in (ours, stock):
            self.manage(node)

    def manage(self, node):
        self.h.ironic.cli('node', 'manage', node.uuid)
        data = self.h.wait(node, ('manageable', 'enroll'), timeout=90)
        self.assertEqual('manageable', data['provision_state'],
                         data['last_error'])

    def test_coreos_idrac(self):
        node = self.enroll('coreos-idrac', IDRAC)
        self.assertValid(node, 'power', 'management', 'boot', 'deploy')
        self.manage_and_provide(node)
        self.power_and_boot_device(node)
        node2 = self.enroll('coreos-idrac', IDRAC, redfish_verify_ca=False)
        self.assertValid(node2, 'power', 'management')
        self.manage(node2)

    def test_coreos_ipmi_validation(self):
        node = bmc.enroll(self.h, 'coreos-ipmi', dict(
            self.ramdisk, deploy_forces_oob_reboot=True), IPMI)
        result = self.validate(node)
        for iface in ('power', 'management'):
            self.assertEqual(False, result[iface][0])
            self.assertIn('ipmi_address', result[iface][1])
        stock = bmc.enroll(self.h, 'ipmi', dict(
            self.ramdisk, deploy_forces_oob_reboot=True),
            dict(IPMI, deploy='direct'))
        theirs = self.validate(stock)
        for iface in ('power', 'management'):
            self.assertEqual(theirs[iface], result[iface])
        # An address on the run's bridge where nothing answers: valid as
        # far as Ironic checks without talking to a BMC (it does not in
        # validate).
        self.h.ironic.cli(
            'node', 'set', node.uuid,
            '--driver-info', 'ipmi_address=%s' % self.h.net[250],
            '--driver-info', 'ipmi_username=admin',
            '--driver-info', 'ipmi_password=e2e')
        self.assertValid(node, 'power', 'management', 'boot', 'deploy')
        self.h.ironic.cli('node', 'set', node.uuid,
                          '--driver-info', 'ipmi_port=sixty')
        result = self.validate(node)
        self.assertEqual(False, result['power'][0])
        self.assertIn('ipmi_port', result['power'][1])
