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
import os
import subprocess
import sys
from unittest import mock

import fixtures
from ironic.common import driver_factory
from ironic.common import exception
from ironic.common import hash_ring
from ironic.conductor import task_manager
from ironic.drivers import drac
from ironic.drivers import generic
from ironic.drivers import ipmi
from ironic.drivers.modules import agent
from ironic.drivers.modules import image_utils
from ironic.drivers.modules import ipmitool
from ironic.drivers.modules import pxe
from ironic.drivers.modules.redfish import boot as redfish_boot
from ironic.drivers.modules.redfish import management as redfish_mgmt
from ironic.drivers.modules.redfish import power as redfish_power
from ironic.drivers.modules.redfish import utils as redfish_utils
from ironic.drivers import redfish
from ironic.drivers import utils as driver_utils
from ironic.tests.unit.db import base as db_base
from ironic.tests.unit.db import utils as db_utils
from ironic.tests.unit.objects import utils as obj_utils
from oslo_config import cfg
from oslo_utils import uuidutils
import testtools

from ironic_coreos.drivers import coreos
from ironic_coreos.drivers.modules import coreos as coreos_deploy
from ironic_coreos.drivers.modules import coreos_vmedia

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

    def test_boot_interfaces_add_live_iso_last(self):
        pairs = {coreos.CoreOSRedfishHardware:
                 coreos_vmedia.CoreOSRedfishVirtualMediaBoot,
                 coreos.CoreOSIDRACHardware:
                 coreos_vmedia.CoreOSIDRACVirtualMediaBoot}
        for ours, stock in PAIRS:
            theirs = stock().supported_boot_interfaces
            mine = ours().supported_boot_interfaces
            if ours in pairs:
                self.assertIs(pairs[ours], mine[-1], ours)
                mine = mine[:-1]
            self.assertEqual(theirs, mine, ours)

    def test_other_interfaces_unchanged(self):
        for ours, stock in PAIRS:
            for iface in INTERFACE_TYPES:
                if iface == 'boot':
                    continue
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


# The package's Redfish-based types and the stock type each one extends.
REDFISH_PAIRS = [('coreos-redfish', 'redfish'), ('coreos-idrac', 'idrac')]
REDFISH_INTERFACES = {
    'redfish': {'power_interface': 'redfish',
                'management_interface': 'redfish',
                'vendor_interface': 'redfish'},
    'idrac': {'power_interface': 'idrac-redfish',
              'management_interface': 'idrac-redfish',
              'vendor_interface': 'idrac-redfish'},
}
REDFISH_INTERFACES['coreos-redfish'] = REDFISH_INTERFACES['redfish']
REDFISH_INTERFACES['coreos-idrac'] = REDFISH_INTERFACES['idrac']


class _ValidationBase(db_base.DbTestCase):
    """Nodes of stock and coreos-* types with real BMC interfaces."""

    def setUp(self):
        super().setUp()
        self.config(enabled_hardware_types=[
            'ipmi', 'redfish', 'idrac', 'manual-management', 'coreos-ipmi',
            'coreos-redfish', 'coreos-idrac', 'coreos-manual-management',
            'fake-hardware'])
        self.config(enabled_deploy_interfaces=['direct', 'coreos', 'fake'])
        self.config(enabled_boot_interfaces=[
            'pxe', 'redfish-virtual-media', 'idrac-redfish-virtual-media',
            'fake'])
        self.config(enabled_power_interfaces=[
            'ipmitool', 'redfish', 'idrac-redfish', 'agent', 'fake'])
        self.config(enabled_management_interfaces=[
            'ipmitool', 'redfish', 'idrac-redfish', 'noop', 'fake'])
        self.config(enabled_vendor_interfaces=[
            'ipmitool', 'redfish', 'idrac-redfish', 'no-vendor', 'fake'])
        for iface in ('bios', 'console', 'firmware', 'inspect', 'raid',
                      'rescue'):
            self.config(**{'enabled_%s_interfaces' % iface:
                           ['no-%s' % iface, 'fake']})
        ca_dir = self.useFixture(fixtures.TempDir()).path
        self.ca_file = os.path.join(ca_dir, 'bmc-ca.pem')
        with open(self.ca_file, 'w') as f:
            f.write('not read by these tests\n')

    def _node(self, driver, driver_info, **interfaces):
        interfaces = dict(REDFISH_INTERFACES.get(driver, {}), **interfaces)
        return obj_utils.create_test_node(
            self.context, uuid=uuidutils.generate_uuid(), driver=driver,
            driver_info=driver_info, deploy_interface='direct',
            boot_interface='pxe', **interfaces)

    def _validate(self, node, iface):
        with task_manager.acquire(self.context, node.uuid,
                                  shared=True) as task:
            getattr(task.driver, iface).validate(task)


class RedfishValidationTestCase(_ValidationBase):
    """coreos-redfish and coreos-idrac validate as redfish and idrac do."""

    def _verify_ca(self, driver, verify_ca=None):
        info = db_utils.get_test_redfish_info()
        if verify_ca is not None:
            info['redfish_verify_ca'] = verify_ca
        node = self._node(driver, info)
        for iface in ('power', 'management'):
            self._validate(node, iface)
        return redfish_utils.parse_driver_info(node)['verify_ca']

    def _check(self, expected, verify_ca=None):
        for ours, stock in REDFISH_PAIRS:
            self.assertEqual(expected, self._verify_ca(stock, verify_ca),
                             stock)
            self.assertEqual(expected, self._verify_ca(ours, verify_ca),
                             ours)

    def test_default_driver_info(self):
        # Crashed before ("no such option coreos-redfish in group
        # [DEFAULT]"): the lookup is keyed on the hardware type's name.
        self._check(True)

    def test_default_follows_redfish_verify_ca_path(self):
        self.config(verify_ca=self.ca_file, group='redfish')
        self._check(self.ca_file)
        self._check(self.ca_file, verify_ca=True)

    def test_default_follows_redfish_verify_ca_false(self):
        self.config(verify_ca='False', group='redfish')
        self._check(False)

    def test_explicit_false(self):
        self.config(verify_ca=self.ca_file, group='redfish')
        self._check(False, verify_ca=False)
        # As the CLI sends it: a string.
        self._check(False, verify_ca='false')

    def test_explicit_ca_path(self):
        self._check(self.ca_file, verify_ca=self.ca_file)

    def test_invalid_verify_ca_names_the_field(self):
        for ours, stock in REDFISH_PAIRS:
            errors = []
            for driver in (stock, ours):
                info = dict(db_utils.get_test_redfish_info(),
                            redfish_verify_ca='/no/such/ca.pem')
                node = self._node(driver, info)
                exc = self.assertRaises(exception.InvalidParameterValue,
                                        self._validate, node, 'power')
                self.assertIn('redfish_verify_ca', str(exc))
                self.assertIn('/no/such/ca.pem', str(exc))
                errors.append(str(exc).replace(node.uuid, 'NODE'))
            self.assertEqual(errors[0], errors[1])

    def test_missing_address_names_the_field(self):
        for ours, stock in REDFISH_PAIRS:
            for driver in (stock, ours):
                info = db_utils.get_test_redfish_info()
                del info['redfish_address']
                node = self._node(driver, info)
                for iface in ('power', 'management'):
                    exc = self.assertRaises(exception.MissingParameterValue,
                                            self._validate, node, iface)
                    self.assertIn('redfish_address', str(exc))

    def test_option_groups_follow_redfish_group(self):
        for name in coreos.REDFISH_TYPES:
            self.assertFalse(cfg.CONF[name].verify_ca)
            self.config(verify_ca=self.ca_file, group='redfish')
            self.assertEqual(self.ca_file, cfg.CONF[name].verify_ca)
            self.config(verify_ca=None, group='redfish')
            self.assertFalse(cfg.CONF[name].verify_ca)

    def test_option_groups_from_config_file(self):
        conf = cfg.ConfigOpts()
        conf.register_opt(cfg.StrOpt('verify_ca'), group='redfish')
        coreos.register_opts(conf)
        path = os.path.join(self.useFixture(fixtures.TempDir()).path,
                            'ironic.conf')
        with open(path, 'w') as f:
            f.write('[redfish]\nverify_ca = %s\n' % self.ca_file)
        conf(['--config-file', path])
        node = self._node('coreos-redfish', {})
        with mock.patch.object(driver_utils, 'CONF', conf):
            self.assertEqual(self.ca_file,
                             driver_utils.get_verify_ca(node, True))
            self.assertFalse(driver_utils.get_verify_ca(node, False))

    def test_every_redfish_type_registers_its_group(self):
        names = {ep.name: ep.load() for ep in importlib.metadata.entry_points(
            group='ironic.hardware.types') if ep.name.startswith('coreos-')}
        redfish_based = sorted(name for name, cls in names.items()
                               if issubclass(cls, redfish.RedfishHardware))
        self.assertEqual(sorted(coreos.REDFISH_TYPES), redfish_based)

    def test_vendor_passthru_methods(self):
        for ours, stock in REDFISH_PAIRS:
            routes = []
            for driver in (stock, ours):
                node = self._node(driver, db_utils.get_test_redfish_info())
                with task_manager.acquire(self.context, node.uuid,
                                          shared=True) as task:
                    routes.append(sorted(task.driver.vendor.vendor_routes))
            self.assertIn('eject_vmedia', routes[1])
            self.assertEqual(routes[0], routes[1])
            hw_types = [driver_factory.get_hardware_type(d)
                        for d in (stock, ours)]
            self.assertEqual(
                *[driver_factory.default_interface(t, 'vendor')
                  for t in hw_types])

    def test_virtual_media_publisher_settings(self):
        self.config(use_swift=False, group='redfish')
        for ours, stock in REDFISH_PAIRS:
            boot = driver_factory.get_interface(
                driver_factory.get_hardware_type(ours), 'boot',
                'redfish-virtual-media' if ours == 'coreos-redfish'
                else 'idrac-redfish-virtual-media')
            self.assertIsInstance(boot, redfish_boot.RedfishVirtualMediaBoot)
            handler = image_utils.ImageHandler(ours, boot)
            self.assertEqual(image_utils.ImageHandler(stock, boot)
                             ._publisher.__dict__,
                             handler._publisher.__dict__)

    def test_hash_ring(self):
        conductor = self.dbapi.register_conductor({
            'hostname': 'conductor-a', 'drivers': []})
        self.dbapi.register_conductor_hardware_interfaces(
            conductor.id,
            [{'hardware_type': name, 'interface_type': 'power',
              'interface_name': 'redfish', 'default': True}
             for name in coreos.REDFISH_TYPES])
        hash_ring.HashRingManager.reset()
        self.addCleanup(hash_ring.HashRingManager.reset)
        ring = hash_ring.HashRingManager()
        for name in coreos.REDFISH_TYPES:
            self.assertEqual(
                ['conductor-a'],
                list(ring.get_ring(name, '').get_nodes(b'some node')))


class IPMIValidationTestCase(_ValidationBase):
    """coreos-ipmi validates as ipmi does; no BMC is contacted."""

    def _errors(self, driver_info, error):
        messages = []
        for driver in ('ipmi', 'coreos-ipmi'):
            node = self._node(driver, driver_info,
                              power_interface='ipmitool',
                              management_interface='ipmitool',
                              vendor_interface='ipmitool')
            for iface in ('power', 'management'):
                exc = self.assertRaises(error, self._validate, node, iface)
                messages.append(str(exc).replace(node.uuid, 'NODE'))
        self.assertEqual(messages[0], messages[2])
        return messages[2]

    def test_missing_address_names_the_field(self):
        msg = self._errors({}, exception.MissingParameterValue)
        self.assertIn('ipmi_address', msg)

    def test_invalid_port_names_the_field(self):
        info = dict(db_utils.get_test_ipmi_info(), ipmi_port='sixty')
        msg = self._errors(info, exception.InvalidParameterValue)
        self.assertIn('ipmi_port', msg)

    def test_valid_driver_info(self):
        node = self._node('coreos-ipmi', db_utils.get_test_ipmi_info(),
                          power_interface='ipmitool',
                          management_interface='ipmitool',
                          vendor_interface='ipmitool')
        for iface in ('power', 'management'):
            self._validate(node, iface)
        with task_manager.acquire(self.context, node.uuid,
                                  shared=True) as task:
            self.assertIsInstance(task.driver.power, ipmitool.IPMIPower)
            self.assertIn('send_raw', task.driver.vendor.vendor_routes)

    def test_no_redfish_interface(self):
        # Only Redfish interfaces look an option group up by the type's
        # name, and coreos-ipmi (like ipmi) has none.
        self.assertNotIn('coreos-ipmi', coreos.REDFISH_TYPES)
        hw_type = coreos.CoreOSIPMIHardware()
        for iface in INTERFACE_TYPES + ('deploy',):
            for cls in getattr(hw_type, 'supported_%s_interfaces' % iface):
                self.assertNotIn('.redfish.', cls.__module__, cls)


class ManualManagementValidationTestCase(_ValidationBase):
    """coreos-manual-management validates as manual-management does."""

    def _node_of(self, driver):
        return self._node(driver, {}, power_interface='agent',
                          management_interface='noop',
                          vendor_interface='no-vendor')

    def test_agent_power_needs_fast_track(self):
        messages = []
        for driver in ('manual-management', 'coreos-manual-management'):
            node = self._node_of(driver)
            exc = self.assertRaises(exception.InvalidParameterValue,
                                    self._validate, node, 'power')
            messages.append(str(exc))
            # No BMC, nothing to validate out of band.
            self._validate(node, 'management')
        self.assertIn('Fast track', messages[1])
        self.assertEqual(messages[0], messages[1])
