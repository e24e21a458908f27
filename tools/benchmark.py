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

"""Time deployments of simulated nodes through the real Ironic and agent.

Run as root: ``python tools/benchmark.py [--samples 3] [--json FILE]``;
``python tools/benchmark.py vm`` times virtual machines instead (the VM
lab, see ``ironic_coreos/tests/functional/vmlab``).
One Ironic, sixteen simulated nodes (network namespace, loop device disk,
real ironic-python-agent), the coreos-installer stand-in. Prints, for this
machine:

* median seconds from the deploy call to ``active`` for ``custom-agent``
  (deploy-step JSON), ``coreos`` (no step JSON; offline image, and the same
  image from HTTP) and Ironic's stock ``direct`` interface writing the
  equivalent raw image served over HTTP;
* seconds from the deploy call to ``deploy failed`` for an invalid Ignition
  config and for an invalid step argument (``append_kargs`` given as a
  string), through ``coreos`` and through ``custom-agent``;
* total seconds for 1, 4 and 16 concurrent ``coreos`` deployments.

Not a test: it asserts nothing but that deployments end where expected.
"""

import argparse
import concurrent.futures
import hashlib
import json
import os
import shutil
import statistics
import sys
import time

from ironic_coreos.tests.functional.harness import core
from ironic_coreos.tests.functional.harness import fixtures
from ironic_coreos.tests.functional.standin import disk as standin_disk

KEY = fixtures.ssh_key('benchmark', 'bench@ironic-coreos')
CONFIG = {
    'ignition': {'version': '3.3.0'},
    'passwd': {'users': [{'name': 'core', 'sshAuthorizedKeys': [KEY]}]},
    'storage': {'files': [{'path': '/etc/motd', 'mode': 420,
                           'contents': {'source': 'data:,benchmark%0A'}}]},
}
INVALID = {'ignition': {'version': '3.3.0'}, 'storage': {'filez': []}}
STEP = [{'interface': 'deploy', 'step': 'install_coreos', 'priority': 80,
         'args': {}}]
# A kernel argument given as a string instead of a list of arguments.
BAD_ARG_STEP = [{'interface': 'deploy', 'step': 'install_coreos',
                 'priority': 80, 'args': {'append_kargs': 'nosmt'}}]


def _log(text):
    print(text, file=sys.stderr, flush=True)


class Bench(object):

    def __init__(self, h, image_url, image_sha256):
        self.h = h
        self.image_url = image_url
        self.image_sha256 = image_sha256

    def set_interface(self, nodes, iface):
        for node in nodes:
            self.h.ironic.cli('node', 'set', node.uuid,
                              '--deploy-interface', iface)

    def request(self, node, mode, config=CONFIG, steps=None):
        """Deploy call for one mode; returns the wall time of the call."""
        h = self.h
        if mode == 'custom-agent':
            return h.deploy(node, config_drive={'user_data': config},
                            deploy_steps=steps or STEP), time.time()
        if mode == 'coreos':
            return h.deploy(node, config_drive={'user_data': config},
                            deploy_steps=steps), time.time()
        if mode == 'coreos-http':
            return h.deploy(node, config_drive={'user_data': config},
                            instance_info={'image_source': self.image_url,
                                           'image_checksum': 'sha256:%s'
                                           % self.image_sha256}), time.time()
        if mode == 'direct':
            return h.deploy(node, instance_info={
                'image_source': self.image_url,
                'image_os_hash_algo': 'sha256',
                'image_os_hash_value': self.image_sha256,
                'image_disk_format': 'raw'}), time.time()
        raise ValueError(mode)

    def timed(self, node, mode, expect='active', config=CONFIG,
              steps=None):
        """Seconds from the deploy call to ``expect``."""
        start = time.monotonic()
        self.request(node, mode, config=config, steps=steps)
        data = self.h.wait(node, timeout=300)
        elapsed = time.monotonic() - start
        if data['provision_state'] != expect:
            raise RuntimeError('%s deploy of %s ended in %s: %s'
                               % (mode, node.name, data['provision_state'],
                                  data['last_error']))
        return elapsed

    def reset(self, nodes):
        """Undeploy (also from deploy failed) back to available."""
        for node in nodes:
            self.h.ironic.cli('node', 'undeploy', node.uuid)
        for node in nodes:
            self.h.wait(node, ('available',), timeout=180)

    def concurrent(self, nodes):
        """Total seconds for deploying ``nodes`` at once (coreos)."""
        start = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(len(nodes)) as pool:
            list(pool.map(lambda n: self.request(n, 'coreos'), nodes))
        for node in nodes:
            data = self.h.wait(node, timeout=600)
            if data['provision_state'] != 'active':
                raise RuntimeError('concurrent deploy of %s ended in %s: %s'
                                   % (node.name, data['provision_state'],
                                      data['last_error']))
        return time.monotonic() - start


def run(args):
    results = {'samples': args.samples, 'rows': []}

    def row(label, value, note=''):
        results['rows'].append({'measure': label, 'seconds': value,
                                'note': note})
        _log('  %-58s %7.2f s %s' % (label, value, note))

    with core.Harness(callback_timeout=120) as h:
        if 'coreos' not in h.deploy_interfaces:
            _log('The coreos deploy interface does not load')
            return 2
        image_dir = os.path.join(h.state_dir, 'images')
        os.makedirs(image_dir)
        image = os.path.join(image_dir, 'fcos.raw')
        standin_disk.make_image(image)
        standin_disk.make_signature(image)
        with open(image, 'rb') as f:
            sha = hashlib.sha256(f.read()).hexdigest()
        server = h.serve(image_dir)
        bench = Bench(h, server.url_of(image), sha)
        count = max(16, args.samples)
        _log('Creating %d simulated nodes...' % count)
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            nodes = list(pool.map(
                lambda _i: h.add_node(deploy_interface='coreos',
                                      management_interface='noop'),
                range(count)))
        sample_nodes = nodes[:args.samples]
        modes = [('custom-agent', 'custom-agent',
                  'custom-agent + step JSON, deploy -> active (median)'),
                 ('coreos', 'coreos',
                  'coreos, offline image, deploy -> active (median)'),
                 ('coreos-http', 'coreos',
                  'coreos, image over HTTP, deploy -> active (median)')]
        if shutil.which('parted'):
            modes.append(('direct', 'direct', 'direct, raw image over '
                          'HTTP, deploy -> active (median)'))
        else:
            # The agent checks the written partition table with parted.
            _log('  direct: skipped, the agent needs parted (apt-get '
                 'install parted)')
        for mode, iface, label in modes:
            bench.set_interface(sample_nodes, iface)
            times = [bench.timed(node, mode) for node in sample_nodes]
            row(label, statistics.median(times),
                '(%s)' % ', '.join('%.2f' % t for t in times))
            bench.reset(sample_nodes)
        failures = [('invalid Ignition', {'config': INVALID}),
                    ('invalid step argument', {'steps': BAD_ARG_STEP})]
        for what, kwargs in failures:
            for iface in ('coreos', 'custom-agent'):
                bench.set_interface(sample_nodes[:1], iface)
                elapsed = bench.timed(sample_nodes[0], iface,
                                      expect='deploy failed', **kwargs)
                row('%s, %s, deploy -> deploy failed' % (iface, what),
                    elapsed)
                bench.reset(sample_nodes[:1])
        bench.set_interface(nodes, 'coreos')
        for k in (1, 4, 16):
            elapsed = bench.concurrent(nodes[:k])
            row('%d concurrent coreos deploys, total' % k, elapsed)
            bench.reset(nodes[:k])
    _log('')
    print('| measure | seconds | samples |')
    print('|---|---:|---|')
    for r in results['rows']:
        print('| %s | %.2f | %s |' % (r['measure'], r['seconds'],
                                      r['note'].strip('()') or '-'))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=2)
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ['vm']:
        # Virtual machines through Redfish (the VM lab, tox env vmlab).
        from ironic_coreos.tests.functional.vmlab import bench
        return bench.main(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--samples', type=int, default=3,
                        help='deployments per median (default 3)')
    parser.add_argument('--json', metavar='FILE',
                        help='also write the results as JSON')
    args = parser.parse_args(argv)
    why = core.can_run()
    if why:
        _log('Cannot run: %s' % why)
        return 2
    return run(args)


if __name__ == '__main__':
    sys.exit(main())
