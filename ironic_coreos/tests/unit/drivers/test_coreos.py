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

"""Tests of the coreos-* hardware types."""

import importlib.metadata
import subprocess
import sys

from ironic.common import driver_factory
from ironic.common import exception
from ironic.conductor import task_manager
from ironic.drivers import drac
from ironic.drivers import generic
from ironic.drivers import ipmi
from ironic.drivers.modules import agent
from ironic.drivers.modules import ipmitool
from ironic.drivers.modules import pxe
from ironic.drivers.modules.redfish import management as redfish_mgmt
from ironic.drivers.modules.redfish import power as redfish_power
from ironic.drivers import redfish
from ironic.tests.unit.db import base as db_base
from ironic.tests.unit.objects import utils as obj_utils
import testtools

from ironic_coreos.drivers import coreos
from ironic_coreos.drivers.modules import coreos as coreos_deploy

PAIRS = [
    (coreos.CoreOSIPMIHardware, ipmi.IPMIHardware),
    (coreos.CoreOSRedfishHardware, redfish.RedfishHardware),
    (coreos.CoreOSIDRACHardware, drac.IDRACHardware),
    (coreos.CoreOSManualManagementHardware,
     generic.ManualManagementHardware),
]

INTERFACE_TYPES = ('bios', 'boot', 'console', 'firmware', 'inspect',
                   'management', 'network', 'power', 'raid', 'rescue',
                   'storage', 'vendor')


class HardwareTypeClassTestCase(db_base.DbTestCase):

    def test_deploy_interfaces(self):
        for ours, stock in PAIRS:
            theirs = stock().supported_deploy_interfaces
            mine = ours().supported_deploy_interfaces
            self.assertIs(coreos_deploy.CoreOSDeploy, mine[0], ours)
            self.assertEqual(theirs, mine[1:], ours)

    def test_other_interfaces_unchanged(self):
        for ours, stock in PAIRS:
            for iface in INTERFACE_TYPES:
                attr = 'supported_%s_interfaces' % iface
                self.assertEqual(getattr(stock(), attr),
                                 getattr(ours(), attr), (ours, attr))

    def test_entry_points(self):
        names = {ep.name: ep.value for ep in importlib.metadata.entry_points(
            group='ironic.hardware.types')}
        self.assertEqual('ironic_coreos.drivers.coreos:CoreOSIPMIHardware',
                         names['coreos-ipmi'])
        self.assertEqual(
            'ironic_coreos.drivers.coreos:CoreOSRedfishHardware',
            names['coreos-redfish'])


class HardwareTypeLoadingTestCase(db_base.DbTestCase):
    """Loading by name through stevedore with the installed entry points."""

    def setUp(self):
        super().setUp()
        self.config(enabled_hardware_types=['ipmi', 'redfish', 'coreos-ipmi',
                                            'coreos-redfish',
                                            'fake-hardware'])
        self.config(enabled_deploy_interfaces=['direct', 'custom-agent',
                                               'coreos', 'fake'])
        self.config(enabled_boot_interfaces=['pxe', 'fake'])
        self.config(enabled_power_interfaces=['ipmitool', 'redfish', 'fake'])
        self.config(enabled_management_interfaces=['ipmitool', 'redfish',
                                                   'fake'])
        self.config(enabled_vendor_interfaces=['ipmitool', 'redfish',
                                               'no-vendor', 'fake'])
        self.config(enabled_console_interfaces=['no-console', 'fake'])

    def test_hardware_types_load(self):
        types = driver_factory.hardware_types()
        self.assertIsInstance(types['coreos-ipmi'],
                              coreos.CoreOSIPMIHardware)
        self.assertIsInstance(types['coreos-redfish'],
                              coreos.CoreOSRedfishHardware)

    def test_deploy_interface_loads_by_name(self):
        hw_type = driver_factory.get_hardware_type('coreos-redfish')
        iface = driver_factory.get_interface(hw_type, 'deploy', 'coreos')
        self.assertIsInstance(iface, coreos_deploy.CoreOSDeploy)
        self.assertIsInstance(iface, agent.CustomAgentDeploy)

    def _task_driver(self, driver, **interfaces):
        node = obj_utils.create_test_node(self.context, driver=driver,
                                          **interfaces)
        with task_manager.acquire(self.context, node.uuid) as task:
            return task.driver

    def test_coreos_ipmi_node(self):
        task_driver = self._task_driver('coreos-ipmi',
                                        deploy_interface='coreos')
        self.assertIsInstance(task_driver.deploy, coreos_deploy.CoreOSDeploy)
        self.assertIsInstance(task_driver.power, ipmitool.IPMIPower)
        self.assertIsInstance(task_driver.management,
                              ipmitool.IPMIManagement)
        self.assertIsInstance(task_driver.boot, pxe.PXEBoot)

    def test_coreos_redfish_node(self):
        task_driver = self._task_driver('coreos-redfish',
                                        deploy_interface='coreos')
        self.assertIsInstance(task_driver.deploy, coreos_deploy.CoreOSDeploy)
        self.assertIsInstance(task_driver.power, redfish_power.RedfishPower)
        self.assertIsInstance(task_driver.management,
                              redfish_mgmt.RedfishManagement)

    def test_switching_driver_keeps_interfaces(self):
        node = obj_utils.create_test_node(
            self.context, driver='redfish', deploy_interface='direct',
            boot_interface='pxe', power_interface='redfish',
            management_interface='redfish', vendor_interface='redfish')
        node.driver = 'coreos-redfish'
        node.deploy_interface = 'coreos'
        driver_factory.check_and_update_node_interfaces(node)
        self.assertEqual(
            ('coreos', 'pxe', 'redfish', 'redfish', 'redfish'),
            (node.deploy_interface, node.boot_interface,
             node.power_interface, node.management_interface,
             node.vendor_interface))

    def test_stock_deploy_interfaces_still_accepted(self):
        task_driver = self._task_driver('coreos-ipmi',
                                        deploy_interface='direct')
        self.assertIsInstance(task_driver.deploy, agent.AgentDeploy)

    def test_coreos_is_the_default(self):
        node = obj_utils.create_test_node(self.context, driver='coreos-ipmi',
                                          deploy_interface=None)
        driver_factory.check_and_update_node_interfaces(node)
        self.assertEqual('coreos', node.deploy_interface)

    def test_ipmi_rejects_coreos(self):
        node = obj_utils.create_test_node(self.context, driver='ipmi',
                                          deploy_interface='direct')
        node.deploy_interface = 'coreos'
        exc = self.assertRaises(
            exception.IncompatibleInterface,
            driver_factory.check_and_update_node_interfaces, node)
        self.assertIn('coreos', str(exc))

    def test_fake_hardware_accepts_coreos(self):
        task_driver = self._task_driver('fake-hardware',
                                        deploy_interface='coreos')
        self.assertIsInstance(task_driver.deploy, coreos_deploy.CoreOSDeploy)


class ProcessSeparationTestCase(testtools.TestCase):

    def test_conductor_side_never_imports_the_agent(self):
        # NOTE: Ironic refuses to start when ironic-python-agent registers
        # its command line options in the conductor process.
        code = ('import sys\n'
                'import ironic_coreos.drivers.coreos\n'
                'import ironic_coreos.drivers.modules.coreos\n'
                'print(sorted(m for m in sys.modules\n'
                '             if m.startswith("ironic_python_agent")))\n')
        result = subprocess.run([sys.executable, '-c', code],
                                capture_output=True, text=True, timeout=120,
                                check=True)
        self.assertEqual('[]', result.stdout.strip())
