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

"""Hardware types that accept the ``coreos`` deploy interface.

Ironic only accepts an interface on a node when the node's hardware type
lists it (``fake-hardware`` excepted), and every in-tree hardware type
inherits a fixed list of deploy interfaces. Each type here is the stock type
of the same name with :class:`~ironic_coreos.drivers.modules.coreos.
CoreOSDeploy` added first, so a node keeps all of its other interfaces when
it is switched, for example, from ``redfish`` to ``coreos-redfish``.

Because ``coreos`` comes first, it is also the default deploy interface of
these types whenever it is enabled and ``[DEFAULT]default_deploy_interface``
is not set.
"""

from ironic.drivers import drac
from ironic.drivers import generic
from ironic.drivers import ipmi
from ironic.drivers import redfish

from ironic_coreos.drivers.modules import coreos


class CoreOSDeployMixin(object):
    """Adds the ``coreos`` deploy interface to a hardware type."""

    @property
    def supported_deploy_interfaces(self):
        """List of supported deploy interfaces: ``coreos`` and the stock."""
        stock = super().supported_deploy_interfaces
        return [coreos.CoreOSDeploy] + [iface for iface in stock
                                        if iface is not coreos.CoreOSDeploy]


class CoreOSIPMIHardware(CoreOSDeployMixin, ipmi.IPMIHardware):
    """``coreos-ipmi``: the ``ipmi`` hardware type with ``coreos``."""


class CoreOSRedfishHardware(CoreOSDeployMixin, redfish.RedfishHardware):
    """``coreos-redfish``: the ``redfish`` hardware type with ``coreos``."""


class CoreOSIDRACHardware(CoreOSDeployMixin, drac.IDRACHardware):
    """``coreos-idrac``: the ``idrac`` hardware type with ``coreos``."""


class CoreOSManualManagementHardware(CoreOSDeployMixin,
                                     generic.ManualManagementHardware):
    """``coreos-manual-management``: ``manual-management`` with ``coreos``.

    For machines without a usable BMC: power and boot devices are handled
    by hand (or by the agent), the deployment itself by ``coreos``.
    """
