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
"""Numbers of the VM lab: ``python tools/benchmark.py vm``.

Deploys one VM with the ``coreos`` interface (config drive only) and one
with ``custom-agent`` (the deploy-step JSON Metal3 sends), one after the
other in the same lab, and prints per-phase seconds (see
:mod:`.scenario`), the live system's guest memory (configured, and used
as seen inside the live system while the agent runs) and the size of what
each node downloads. Not a test: it asserts nothing but that the
deployments end where expected.
"""

import argparse
import json
import sys

from ironic_coreos.tests.functional.vmlab import lab as lab_mod
from ironic_coreos.tests.functional.vmlab import scenario

PHASES = ('power_on', 'lookup', 'install', 'teardown', 'active', 'ssh')


def metal3_steps(image_url):
    return [{'interface': 'deploy', 'step': 'install_coreos',
             'priority': 80, 'args': {'image_url': image_url,
                                      'append_kargs': [scenario.KARG]}}]


def _memory(probe_samples):
    used = [int(line.split()[1]) for _t, text in probe_samples
            for line in text.splitlines() if line.startswith('MEMUSED ')]
    return max(used) if used else None


def run(args):
    setup = scenario.Setup(vms=2)
    results = {'sizes_bytes': setup.sizes(),
               'guest_memory_mib': setup.livesys.LIVE_MEMORY_MIB,
               'deployments': {}}
    try:
        cases = [('coreos', 0, {'instance_info': {
            'image_source': setup.image_url,
            'coreos_append_kargs': json.dumps([scenario.KARG])}}),
            ('custom-agent', 1, {'deploy_steps': metal3_steps(
                setup.image_url)})]
        for interface, index, extra in cases:
            vm = setup.lab.vms[index]
            setup.enroll(vm, interface)
            dep = scenario.Deployment(setup, vm)
            dep.deploy(config_drive=scenario.iso_drive(
                setup, vm, 'bench-%d' % index), **extra)
            data = dep.wait(timeout=args.timeout)
            if data['provision_state'] != 'active':
                raise RuntimeError('%s deployment ended in %s: %s'
                                   % (interface, data['provision_state'],
                                      data['last_error']))
            dep.wait_ssh(vm.static_ip)
            times = {k: dep.times.get(k) for k in PHASES}
            times['live_memory_used_mib'] = _memory(dep.probe.samples)
            results['deployments'][interface] = times
            setup.say('%s: %s' % (interface, dep.report()))
            setup.lab.ironic.cli('node', 'power', 'off', vm.node)
    finally:
        setup.stop()
    print()
    print('%-14s' % 'seconds' + ''.join('%10s' % p for p in PHASES))
    for interface, times in results['deployments'].items():
        print('%-14s' % interface + ''.join(
            '%10s' % (times[p] if times[p] is not None else '-')
            for p in PHASES))
    print()
    print('live system guest memory: %d MiB configured, %s MiB used at most '
          'while the agent ran' % (results['guest_memory_mib'], ', '.join(
              str(t['live_memory_used_mib'])
              for t in results['deployments'].values())))
    for name, size in results['sizes_bytes'].items():
        print('download %-20s %8.1f MB' % (name, size / 1e6))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=2)
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog='tools/benchmark.py vm',
                                     description=__doc__.split('\n\n')[0])
    parser.add_argument('--timeout', type=int, default=1800)
    parser.add_argument('--json', metavar='FILE')
    args = parser.parse_args(argv)
    problems = lab_mod.can_run()
    if problems:
        print('Cannot run the VM benchmark: %s' % '; '.join(problems))
        return 2
    return run(args)


if __name__ == '__main__':
    sys.exit(main())
