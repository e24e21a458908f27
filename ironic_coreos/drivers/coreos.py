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

Ironic keys a few things on the hardware type's *name* rather than on its
interfaces; see :data:`REDFISH_TYPES` for the one that needs help here.
"""

from oslo_config import cfg

from ironic.drivers import drac
from ironic.drivers import generic
from ironic.drivers import ipmi
from ironic.drivers import redfish

from ironic_coreos.drivers.modules import coreos
from ironic_coreos.drivers.modules import coreos_vmedia

CONF = cfg.CONF

#: Names (entry points) of the types here whose power and management
#: interfaces are Redfish ones.
REDFISH_TYPES = ('coreos-redfish', 'coreos-idrac')

# NOTE: Ironic reads the default of driver_info/redfish_verify_ca from the
# configuration group named after the node's hardware type
# (ironic.drivers.utils.get_verify_ca looks up CONF.get(node.driver), with
# only ``idrac`` mapped to [redfish]). A type whose name is not an option
# group fails every Redfish call there with "no such option", unless the
# node's redfish_verify_ca happens to be something other than true. So each
# Redfish type here registers a group of its own name whose only option
# follows [redfish]verify_ca through oslo.config's value substitution: the
# lookup then finds what it finds for the stock ``redfish`` and ``idrac``
# types, including overrides set at run time, and an unset [redfish] option
# reads as empty, which Ironic treats like the unset stock option.
VERIFY_CA_DEFAULT = '${redfish.verify_ca}'


def _verify_ca_opt():
    return cfg.StrOpt(
        'verify_ca', default=VERIFY_CA_DEFAULT,
        help='The [redfish]verify_ca of nodes of this hardware type. Only '
             'exists because Ironic looks the option up in a group named '
             'after the hardware type; by default it is [redfish]verify_ca, '
             'as for the stock redfish and idrac types. Leave it unset.')


def register_opts(conf):
    """Register the option groups Ironic looks up by hardware type name.

    :param conf: the oslo.config ConfigOpts to register with.
    """
    for name in REDFISH_TYPES:
        conf.register_opt(_verify_ca_opt(), group=name)


register_opts(CONF)


class CoreOSDeployMixin(object):
    """Adds the ``coreos`` deploy interface to a hardware type."""

    @property
    def supported_deploy_interfaces(self):
        """List of supported deploy interfaces: ``coreos`` and the stock."""
        stock = super().supported_deploy_interfaces
        return [coreos.CoreOSDeploy] + [iface for iface in stock
                                        if iface is not coreos.CoreOSDeploy]


class _LiveISOBootMixin(object):
    """Adds a per-node CoreOS live ISO virtual media boot interface."""

    #: The interface added, last like Ironic's own virtual media ones.
    live_iso_boot = None

    @property
    def supported_boot_interfaces(self):
        """List of supported boot interfaces: the stock ones and ours."""
        stock = super().supported_boot_interfaces
        return [iface for iface in stock
                if iface is not self.live_iso_boot] + [self.live_iso_boot]


class CoreOSIPMIHardware(CoreOSDeployMixin, ipmi.IPMIHardware):
    """``coreos-ipmi``: the ``ipmi`` hardware type with ``coreos``."""


class CoreOSRedfishHardware(CoreOSDeployMixin, _LiveISOBootMixin,
                            redfish.RedfishHardware):
    """``coreos-redfish``: the ``redfish`` hardware type with ``coreos``.

    Also boots per-node CoreOS live ISOs over virtual media
    (``coreos-redfish-virtual-media``).
    """

    live_iso_boot = coreos_vmedia.CoreOSRedfishVirtualMediaBoot


class CoreOSIDRACHardware(CoreOSDeployMixin, _LiveISOBootMixin,
                          drac.IDRACHardware):
    """``coreos-idrac``: the ``idrac`` hardware type with ``coreos``.

    Also boots per-node CoreOS live ISOs over virtual media
    (``coreos-idrac-redfish-virtual-media``).
    """

    live_iso_boot = coreos_vmedia.CoreOSIDRACVirtualMediaBoot


class CoreOSManualManagementHardware(CoreOSDeployMixin,
                                     generic.ManualManagementHardware):
    """``coreos-manual-management``: ``manual-management`` with ``coreos``.

    For machines without a usable BMC: power and boot devices are handled
    by hand (or by the agent), the deployment itself by ``coreos``.
    """
