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
"""Deploy one virtual machine with the coreos interface and log in.

Run as root: ``tools/demo.sh --vm`` (or ``python -m
ironic_coreos.tests.functional.vmlab.demo``). Scenario 1 of the VM lab,
printed as it goes: the node's states, each phase's seconds, and an SSH
session on the installed system at the static address of its
network_data. Everything is removed at the end (also on Ctrl-C).
"""

import argparse
import json
import sys
import threading
import time

from ironic_coreos.tests.functional.vmlab import lab as lab_mod
from ironic_coreos.tests.functional.vmlab import scenario

SESSION = [
    ['hostname'],
    ['ip', '-4', '-o', 'addr', 'show'],
    ['cat', '/proc/cmdline'],
    ['cat', '/etc/motd'],
    ['sudo', 'efibootmgr'],
    ['lsblk', '-o', 'NAME,SIZE,PARTLABEL,LABEL,MOUNTPOINT'],
]


def _states(setup, vm, stop):
    shown = 0
    while not stop.is_set():
        history = list(vm.history)
        for t, state, target, power in history[shown:]:
            setup.say('node %s: %s%s, %s' % (
                vm.name, state, (' -> %s' % target) if target else '',
                power))
        shown = len(history)
        stop.wait(0.5)


def run(args):
    setup = scenario.Setup(vms=1)
    try:
        vm = setup.lab.vms[0]
        setup.enroll(vm, 'coreos')
        setup.say('enrolled %s (coreos-redfish, ipxe, coreos); deploying '
                  'with a config drive only' % vm.node)
        stop = threading.Event()
        printer = threading.Thread(target=_states, args=(setup, vm, stop),
                                   daemon=True)
        printer.start()
        dep = scenario.Deployment(setup, vm)
        dep.deploy(config_drive=scenario.iso_drive(setup, vm, 'vmlab-demo'),
                   instance_info={'image_source': setup.image_url,
                                  'coreos_append_kargs': json.dumps(
                                      [scenario.KARG])})
        data = dep.wait(timeout=args.timeout)
        time.sleep(1)
        stop.set()
        printer.join()
        setup.say('deployment ended in %s (%s)'
                  % (data['provision_state'], dep.report()))
        if data['provision_state'] != 'active':
            setup.say('last_error: %s' % data['last_error'])
            setup.say('console tail:\n%s' % lab_mod.tail(vm.console))
            return 1
        dep.wait_ssh(vm.static_ip)
        setup.say('SSH as core at %s after %ss' % (vm.static_ip,
                                                   dep.times.get('ssh')))
        for command in SESSION:
            proc = setup.lab.ssh(vm, vm.static_ip, command, setup.key)
            print('$ %s' % ' '.join(command))
            print((proc.stdout + proc.stderr).rstrip())
        setup.say('phases: %s' % dep.report())
        return 0
    finally:
        setup.stop()
        left = lab_mod.leftovers()
        if any(left.values()):
            print('Left behind: %s' % left)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='tools/demo.sh --vm', description=__doc__.split('\n\n')[0])
    parser.add_argument('--timeout', type=int, default=1800,
                        help='seconds to wait for the deployment')
    args = parser.parse_args(argv)
    problems = lab_mod.can_run()
    if problems:
        print('Cannot run the VM demo: %s' % '; '.join(problems))
        return 2
    try:
        return run(args)
    except KeyboardInterrupt:
        print('Interrupted; everything was cleaned up')
        return 130


if __name__ == '__main__':
    sys.exit(main())
