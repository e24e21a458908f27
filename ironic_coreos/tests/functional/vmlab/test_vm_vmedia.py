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
"""A VM without DHCP deployed through Redfish virtual media.

The lab's dnsmasq ignores the VM's MAC: only a static address works. The
node is enrolled with the ``coreos-redfish-virtual-media`` boot interface,
the CoreOS-alike's stock live ISO (:mod:`.liveiso`) as
``redfish_deploy_iso`` and ``network_data`` with the VM's static address.
Ironic's conductor writes the node's copy of the ISO (the live Ignition
config and the keyfile in the initrd embed area, Ironic's parameters in
the kernel argument area), the BMC inserts it, the live system comes up on
the static address and the agent calls back from there.
"""

import os
import re

from ironic_coreos.tests.functional.vmlab import scenario
from ironic_coreos.tests.functional.vmlab import test_vm_deploy

HOSTNAME = 'vmlab-vmedia-0'
STOCK_ISO = '/coreos-alike-live.iso'


class VirtualMediaNoDHCPTest(test_vm_deploy.VMTestCase):
    """Issue "Virtual media without DHCP", in the VM lab."""

    setup_kwargs = {'no_dhcp': (0,)}

    def stock_downloads(self):
        """How often the conductor fetched the stock ISO from the lab."""
        with open(self.lab.path('logs', 'http-files.log'),
                  errors='replace') as f:
            return sum(1 for line in f
                       if re.search(r'"GET %s HTTP' % re.escape(STOCK_ISO),
                                    line))

    def deploy_vmedia(self, vm):
        dep, data = self.deploy(
            vm, live_ip=vm.static_ip,
            config_drive=scenario.iso_drive(self.setup, vm, HOSTNAME),
            instance_info={'image_source': self.setup.image_url})
        self.assertActive(data, vm)
        return dep

    def test_static_address_virtual_media(self):
        vm = self.lab.vms[0]
        self.setup.enroll_vmedia(vm, 'coreos')
        self.addDetail('console-%s' % vm.name,
                       test_vm_deploy.console_detail(vm))
        log_mark = len(self.lab.ironic.log_tail(50 << 20))
        dep = self.deploy_vmedia(vm)
        self.check_installed(dep, vm.static_ip, HOSTNAME)
        self.check_no_secret_in_logs()
        log = self.lab.ironic.log_tail(50 << 20)[log_mark:]
        self.assertIn('Wrote the live ISO of node %s' % vm.node, log)
        # No DHCP for the VM's MAC; it got no lease, from anyone: the live
        # system ran on the static address.
        with open(self.lab.path('dnsmasq.conf')) as f:
            self.assertIn('dhcp-host=%s,ignore' % vm.mac, f.read().split())
        with open(self.lab.path('logs', 'dnsmasq.log'),
                  errors='replace') as f:
            dhcp = f.read()
        self.assertNotRegex(dhcp, r'(?i)DHCP(OFFER|ACK)\S*\s+\S+\s+%s'
                            % re.escape(vm.mac))
        # The node's ISO (it holds the agent configuration) is gone once
        # the ramdisk was torn down.
        published = os.path.join(self.lab.httpboot, 'redfish')
        self.assertEqual([], [n for n in os.listdir(published)
                              if vm.node in n]
                         if os.path.isdir(published) else [])
        self.assertEqual(1, self.stock_downloads())

        # Deployed again: the stock ISO comes from the conductor's cache.
        self.lab.ironic.cli('node', 'undeploy', vm.node)
        self.lab.wait(vm, ('available',), timeout=900)
        dep = self.deploy_vmedia(vm)
        self.check_installed(dep, vm.static_ip, HOSTNAME)
        self.assertEqual(1, self.stock_downloads())
