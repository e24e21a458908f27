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

"""The hardware manager of a simulated node.

Ranked above ``SERVICE_PROVIDER`` so it answers first. It supplies what a
network namespace and a loop device cannot: the block device list (only the
node's virtual disk), the install device, the network interfaces (a veth has
no ``/sys/class/net/X/device``, so the generic manager would list none) and
the rest of the inventory (no ``lshw`` here). It refuses every step that
erases, burns in, configures RAID, touches NVRAM or injects files, and
generates the agent's TLS certificate under the run's state directory.

The node is described by the JSON file named in ``IRONIC_COREOS_SIMHW``::

    {"disk": "/dev/loop7", "disk_size": 268435456, "interface": "eth0",
     "mac": "52:54:00:..", "ip": "169.254.77.10", "cert_dir": "/tmp/..."}
"""

import json
import os

from ironic_python_agent import errors
from ironic_python_agent import hardware
from ironic_python_agent import tls_utils
from oslo_log import log

from ironic_coreos.tests.functional.simhw import safety

LOG = log.getLogger(__name__)

safety.apply()

#: Steps the simulated hardware never runs, by interface.
REFUSED_STEPS = {
    'erase_devices': 'deploy',
    'erase_devices_metadata': 'deploy',
    'erase_devices_express': 'deploy',
    'erase_pstore': 'deploy',
    'clean_uefi_nvram': 'deploy',
    'create_configuration': 'raid',
    'delete_configuration': 'raid',
    'apply_configuration': 'raid',
    'burnin_cpu': 'deploy',
    'burnin_gpu': 'deploy',
    'burnin_disk': 'deploy',
    'burnin_memory': 'deploy',
    'burnin_network': 'deploy',
    'inject_files': 'deploy',
    'execute_bootc_install': 'deploy',
}


def load_config():
    """The simulated node's description, or None outside a test agent."""
    path = os.environ.get('IRONIC_COREOS_SIMHW')
    if not path:
        return None
    with open(path) as f:
        return json.load(f)


def _refusal(name):
    def refuse(self, *args, **kwargs):
        safety.record('step_refused', step=name)
        raise errors.DeploymentError(
            'step %s is refused by the simulated hardware: it must never '
            'run on a shared development machine' % name)
    refuse.__name__ = name
    return refuse


class SimulatedHardwareManager(hardware.HardwareManager):
    """Answers for the one virtual disk and veth of a simulated node."""

    HARDWARE_MANAGER_NAME = 'simulated_hardware_manager'
    HARDWARE_MANAGER_VERSION = '1.0'

    def __init__(self):
        self.config = load_config()

    def evaluate_hardware_support(self):
        """Rank above every other manager inside a test agent only."""
        if not self.config:
            LOG.info('No simulated node configured (IRONIC_COREOS_SIMHW)')
            return hardware.HardwareSupport.NONE
        return hardware.HardwareSupport.SERVICE_PROVIDER + 1

    # -- inventory ---------------------------------------------------------

    def list_block_devices(self, include_partitions=False,
                           all_serial_and_wwn=False):
        return [hardware.BlockDevice(
            name=self.config['disk'], model='simulated disk',
            size=self.config['disk_size'], rotational=False,
            serial='sim-%s' % os.path.basename(self.config['disk']),
            vendor='ironic-coreos', logical_sectors=512,
            physical_sectors=512, tran='virtual')]

    def list_block_devices_check_skip_list(self, node,
                                           include_partitions=False,
                                           all_serial_and_wwn=False):
        return self.list_block_devices()

    def get_os_install_device(self, permit_refresh=False):
        return self.config['disk']

    def wait_for_disks(self):
        return None

    def get_skip_list_from_node_for_disks(self, node, block_devices=None):
        return None

    def list_network_interfaces(self):
        return [self.get_interface_info(self.config['interface'])]

    def get_interface_info(self, interface_name):
        if interface_name != self.config['interface']:
            raise errors.IncompatibleHardwareMethodError()
        return hardware.NetworkInterface(
            interface_name, self.config['mac'],
            ipv4_address=self.config['ip'], has_carrier=True,
            vendor='0x1af4', product='0x0001', driver='veth')

    def collect_lldp_data(self, interface_names=None):
        return {}

    def get_cpus(self):
        return hardware.CPU(model_name='Simulated CPU', frequency='2000',
                            count=2, architecture='x86_64', flags=[],
                            socket_count=1)

    def get_memory(self):
        return hardware.Memory(total=2 * 1024 ** 3, physical_mb=2048)

    def get_bmc_address(self):
        return '0.0.0.0'

    def get_bmc_v6address(self):
        return '::/0'

    def get_bmc_mac(self):
        raise errors.IncompatibleHardwareMethodError()

    def get_system_vendor_info(self):
        return hardware.SystemVendorInfo(
            product_name='Simulated node', serial_number=self.config['mac'],
            manufacturer='ironic-coreos',
            firmware=hardware.SystemFirmware(vendor='ironic-coreos',
                                             version='1.0',
                                             build_date='2026-01-01'))

    def get_boot_info(self):
        return hardware.BootInfo(current_boot_mode='bios',
                                 pxe_interface=self.config['mac'])

    def get_usb_devices(self):
        return []

    def generate_tls_certificate(self, ip_address):
        """Self-signed agent certificate under the run's state dir."""
        root = self.config['cert_dir']
        os.makedirs(root, mode=0o700, exist_ok=True)
        cert = os.path.join(root, 'agent.crt')
        key = os.path.join(root, 'agent.key')
        content = tls_utils._generate_tls_certificate(
            cert, key, 'simulated-node', ip_address)
        os.chmod(key, 0o600)
        return tls_utils.TlsCertificate(content, cert, key)

    # -- steps -------------------------------------------------------------

    def _refused_steps(self):
        return [{'step': name, 'interface': iface, 'priority': 0,
                 'reboot_requested': False, 'abortable': True}
                for name, iface in sorted(REFUSED_STEPS.items())]

    def get_clean_steps(self, node, ports):
        return self._refused_steps()

    def get_deploy_steps(self, node, ports):
        return self._refused_steps() + [
            {'step': 'simulated_noop', 'interface': 'deploy',
             'priority': 0, 'reboot_requested': False,
             'argsinfo': {'marker': {'description': 'text recorded in the '
                                     'calls file', 'required': False}}}]

    def get_service_steps(self, node, ports):
        return self._refused_steps()

    def simulated_noop(self, node, ports, marker=None):
        """A harmless in-band deploy step that only records its call."""
        safety.record('simulated_noop', marker=marker, node=node['uuid'])
        return 'simulated step done'


for _name in REFUSED_STEPS:
    setattr(SimulatedHardwareManager, _name, _refusal(_name))
