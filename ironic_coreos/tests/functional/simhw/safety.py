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

"""Neutralise the parts of ironic-python-agent that act on the real host.

The agent is built to own its machine. In the tests it shares a
development machine, so, in the agent process only:

* the shutdown command never falls back to ``/proc/sysrq-trigger`` (the
  ``poweroff``/``reboot`` it runs are PATH shims that only log);
* the system is never locked down;
* multipath is never enabled (``/usr/sbin/mpathconf`` is called by absolute
  path, which PATH shims cannot catch);
* configuration is never copied from, and config drives never unmounted
  by, the virtual-media probe at start-up;
* the UEFI boot manager (NVRAM) is never touched;
* bootloader installation and rescue are refused.

Every neutralised call is appended to the JSON-lines file named by
``IRONIC_COREOS_SIMHW_CALLS`` so tests can see it happened.
"""

import json
import os
import time

from oslo_log import log

LOG = log.getLogger(__name__)

_APPLIED = []


def record(what, **details):
    """Append a neutralised call to the calls file (if configured)."""
    path = os.environ.get('IRONIC_COREOS_SIMHW_CALLS')
    LOG.info('Simulated hardware neutralised %s', what)
    if not path:
        return
    with open(path, 'a') as f:
        f.write(json.dumps({'call': what, 'time': time.time(),
                            'details': details}) + '\n')


class Refused(Exception):
    """A step that must not run on a shared machine was requested."""


def apply():
    """Patch the agent. Idempotent; call before the agent starts."""
    if _APPLIED:
        return
    from ironic_python_agent import agent
    from ironic_python_agent import efi_utils
    from ironic_python_agent import errors
    from ironic_python_agent.extensions import base
    from ironic_python_agent.extensions import image
    from ironic_python_agent.extensions import rescue
    from ironic_python_agent.extensions import standby
    from ironic_python_agent import hardware
    from ironic_python_agent import utils

    def shutdown(self, command):
        # NOTE: no sysrq fallback, no real command: only a record.
        record('shutdown', command=command)

    standby.StandbyExtension._run_shutdown_command = shutdown

    def lockdown(self):
        record('lockdown')

    agent.IronicPythonAgent._lockdown_system = lockdown

    def no_multipath():
        record('multipath')
        return False

    hardware._load_multipath_modules = lambda: record('multipath_modules')
    hardware._enable_multipath = no_multipath
    hardware.MULTIPATH_ENABLED = False

    utils.copy_config_from_vmedia = lambda: record('vmedia_config')
    utils._unmount_any_config_drives = lambda: record('unmount_config')

    def manage_uefi(device, efi_system_part_uuid=None):
        record('manage_uefi', device=device)
        return True

    efi_utils.manage_uefi = manage_uefi

    @base.async_command('install_bootloader')
    def install_bootloader(self, *args, **kwargs):
        record('install_bootloader_refused')
        raise errors.CommandExecutionError(
            'install_bootloader is refused by the simulated hardware: it '
            'would write a bootloader and NVRAM entries of the host')

    image.ImageExtension.install_bootloader = install_bootloader

    @base.sync_command('finalize_rescue')
    def finalize_rescue(self, *args, **kwargs):
        record('rescue_refused')
        raise errors.CommandExecutionError(
            'rescue is refused by the simulated hardware')

    rescue.RescueExtension.finalize_rescue = finalize_rescue
    _APPLIED.append(True)
