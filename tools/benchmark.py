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

"""Benchmarks of ironic-coreos on this machine: numbers, not tests.

``python tools/benchmark.py engine`` (no root needed) times the engine on
large, ordinary Ignition configs of about 128 KiB, 1 MiB and 4 MiB (at
1 MiB: 2,400 files with ``data:`` contents, 300 directories, 300 links,
300 systemd units with drop-ins; spec 3.3.0): the check of the config
text, the merge of typical additions (host name, two SSH keys, four
NetworkManager keyfiles) and the check of the merged config, next to
Debian's ``ignition-validate`` on the same file (process start included),
with the ratios and the growth from the smallest size to the larger ones.

``python tools/benchmark.py [deploy] [--samples 3] [--json FILE]`` (root)
times deployments of simulated nodes through the real Ironic and agent.
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
* total seconds for 1, 4 and 16 concurrent ``coreos`` deployments;
* CPU seconds the Ironic process (API and conductor) spends per
  deployment, ``coreos`` next to ``custom-agent``, with a small Ignition
  config and with one of 1 MiB (from the process's own counters,
  ``/proc/<pid>/stat``), less what polling the node alone costs over the
  same wall time; ``--samples`` pairs per config, medians (the method is
  printed with the numbers, see :data:`CPU_METHOD`).

``python tools/benchmark.py multiconductor`` (root) deploys 64 simulated
nodes at once over two conductors on MariaDB, ``custom-agent`` and
``coreos`` (see ``ironic_coreos/tests/functional/multibench.py``).

``python tools/benchmark.py media [--media-size MIB] [--dense]`` (no root
needed) measures per-node live media instead: seconds and peak memory
(``ru_maxrss`` of the child process) of ``ironic-coreos-live-media`` reading
the areas of, and embedding an Ignition config, a keyfile and kernel
arguments into, a CoreOS live ISO padded out to about 1 GiB (sparse, or with
``--dense`` filled with data): into a new file, streamed to a pipe, and in
place; and of ``pxe wrap``.

``python tools/benchmark.py vmedia [--media-size MIB] [--nodes 16]
[--sparse]`` (no root needed) measures what the conductor does for the
``coreos-redfish-virtual-media`` boot interface: the stock live ISO (about
1 GiB, filled with data unless ``--sparse``) downloaded once from an HTTP
server through the interface's cache, then per-node ISOs (the cached copy
hard-linked, the areas read, the live Ignition config, a keyfile and kernel
arguments embedded, the copy written) for one node and for ``--nodes`` at
once on as many threads, as the conductor runs them. Each batch runs in a
child process: wall seconds, seconds per node and the child's peak memory
(``ru_maxrss``) next to its memory before the batch.

``python tools/benchmark.py image [--rebuild]`` measures the agent image
instead (see :func:`run_image`).

Not a test: it asserts nothing but that deployments end where expected.
"""

import argparse
import collections
import concurrent.futures
import gzip
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time

from ironic_coreos.engine import ignition
from ironic_coreos.engine import merge
from ironic_coreos.engine import network
from ironic_coreos.tests.functional.harness import agent_image
from ironic_coreos.tests.functional.harness import core
from ironic_coreos.tests.functional.harness import fixtures
from ironic_coreos.tests.functional.standin import disk as standin_disk
from ironic_coreos.tests import large_ignition
from ironic_coreos.tests import live_iso

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


_TICK = os.sysconf('SC_CLK_TCK')


def process_cpu(pid):
    """CPU seconds (user + system) of process ``pid`` and its children.

    From the processes' own counters in ``/proc/<pid>/stat``; threads are
    counted in their process.
    """
    parents = {}
    times = {}
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % entry) as f:
                fields = f.read().rsplit(')', 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        times[int(entry)] = (int(fields[11]) + int(fields[12])) / _TICK
    total = 0.0
    for candidate, cpu in times.items():
        current = candidate
        while current > 1 and current != pid:
            current = parents.get(current, 0)
        if current == pid:
            total += cpu
    return total


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

    def cpu_per_deploy(self, node, mode, config, steps=None):
        """Ironic CPU seconds and wall seconds of one deployment.

        The deployment is waited for with :meth:`light_wait`.
        """
        pid = self.h.ironic._proc.pid
        before = process_cpu(pid)
        start = time.monotonic()
        self.request(node, mode, config=config, steps=steps)
        data = self.light_wait(node, ('active', 'deploy failed'), 300)
        elapsed = time.monotonic() - start
        cpu = process_cpu(pid) - before
        if data['provision_state'] != 'active':
            raise RuntimeError('%s deploy of %s ended in %s: %s'
                               % (mode, node.name, data['provision_state'],
                                  data['last_error']))
        return cpu, elapsed

    def light_wait(self, node, states, timeout, rest=None):
        """Wait until the node rests in one of ``states``, asking lightly.

        Asks for the node's state fields only, once a second: a node's
        full record carries its instance_info (the config drive with the
        Ignition config), which the API copies and masks for every
        request; with a 1 MiB config, asking four times a second costs
        the Ironic process more than the deployment itself. With
        ``rest`` (seconds), keeps polling that long after the node rests,
        the same way.

        :returns: the node's state fields as the API returns them.
        """
        path = ('/v1/nodes/%s?fields=provision_state,target_provision_state,'
                'reservation,last_error' % node.uuid)
        deadline = time.monotonic() + timeout
        while True:
            data = self.h.ironic.get(path)
            if data['provision_state'] in states and core.settled(
                    data['provision_state'],
                    data['target_provision_state'],
                    data.get('reservation')):
                break
            if time.monotonic() > deadline:
                raise RuntimeError('%s did not reach %s within %ss: %s'
                                   % (node.name, states, timeout, data))
            time.sleep(1)
        if rest:
            end = time.monotonic() + rest
            while time.monotonic() < end:
                self.h.ironic.get(path)
                time.sleep(1)
        return data

    def idle_cpu_rate(self, node, seconds=15):
        """Ironic CPU seconds per second while the node is only polled.

        The node rests in ``active`` with the deployment's instance_info
        and is polled as :meth:`cpu_per_deploy` polls; the harness's
        watcher lists the nodes meanwhile, as during a deployment.
        """
        pid = self.h.ironic._proc.pid
        before = process_cpu(pid)
        start = time.monotonic()
        self.light_wait(node, ('active',), 60, rest=seconds)
        return (process_cpu(pid) - before) / (time.monotonic() - start)

    def slow_watcher(self, interval=1.0):
        """Let the harness's watcher list the nodes once per ``interval``.

        It lists them five times a second, which costs the Ironic process
        several times what the deployment of a small config does; once a
        second it starts and stops the agents as well, a little later.

        :returns: a function that restores the watcher's pace.
        """
        ironic = self.h.ironic
        original = ironic.states
        last = [0.0]
        lock = threading.Lock()

        def states():
            with lock:
                wait = last[0] + interval - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                last[0] = time.monotonic()
            return original()

        ironic.states = states
        return lambda: vars(ironic).pop('states', None)

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
        parts = args.parts.split(',')
        count = max(16 if 'concurrent' in parts else 1,
                    args.samples if {'times', 'failures'} & set(parts)
                    else 1)
        _log('Creating %d simulated nodes...' % count)
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            nodes = list(pool.map(
                lambda _i: h.add_node(deploy_interface='coreos',
                                      management_interface='noop'),
                range(count)))
        sample_nodes = nodes[:args.samples]
        if 'times' in parts:
            _times(bench, sample_nodes, row)
        if 'failures' in parts:
            _failures(bench, sample_nodes, row)
        if 'concurrent' in parts:
            bench.set_interface(nodes, 'coreos')
            for k in (1, 4, 16):
                elapsed = bench.concurrent(nodes[:k])
                row('%d concurrent coreos deploys, total' % k, elapsed)
                bench.reset(nodes[:k])
        if 'cpu' in parts:
            _cpu(bench, sample_nodes, row, args.samples)
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


def _times(bench, sample_nodes, row):
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


def _failures(bench, sample_nodes, row):
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


CPU_METHOD = (
    'Method: CPU seconds (user + system) of the Ironic process (API and '
    'conductor in one process) and its children, from /proc/<pid>/stat, '
    'from the deploy call until the node rests in active. One node '
    'deploys at a time; coreos and custom-agent alternate (which goes '
    'first alternates too), and the node is undeployed after each '
    'deployment, so no other node holds a config. The deployment is '
    'polled for its state fields only, once a second, and the '
    'harness lists the nodes once a second. Right after '
    'each deployment the same node, resting in active with the same '
    'instance_info, is polled the same way for %d s: that rate times '
    'the deployment\'s wall time is subtracted ("net"). Medians of the '
    'samples.')


def _cpu(bench, sample_nodes, row, samples, idle_seconds=15):
    """Ironic CPU seconds per deployment, coreos next to custom-agent."""
    large = large_ignition.build(1024 * 1024)
    size = len(json.dumps(large))
    node = sample_nodes[0]
    modes = ('custom-agent', 'coreos')
    _log(CPU_METHOD % idle_seconds)
    load_before = os.getloadavg()
    summary = []
    restore = bench.slow_watcher()
    try:
        _cpu_cases(bench, node, large, size, modes, samples, idle_seconds,
                   row, summary)
    finally:
        restore()
    load_after = os.getloadavg()
    small, big = summary
    _log('Load average (1, 5, 15 min): %.1f %.1f %.1f before, '
         '%.1f %.1f %.1f after' % (load_before + load_after))
    _log('Target, small config, coreos <= 1.10 x custom-agent: %.2f, %s'
         % (small[2], 'met' if small[2] <= 1.10 else 'NOT met'))
    diff = big[1]['coreos'] - big[1]['custom-agent']
    _log('Target, 1 MiB config, coreos <= custom-agent + 0.5 s: %+.2f s, %s'
         % (diff, 'met' if diff <= 0.5 else 'NOT met'))


def _cpu_cases(bench, node, large, size, modes, samples, idle_seconds, row,
               summary):
    for label, config in (('small config', CONFIG),
                          ('1 MiB config (%d bytes)' % size, large)):
        taken = {mode: [] for mode in modes}
        for index in range(samples):
            order = modes if index % 2 == 0 else modes[::-1]
            for mode in order:
                bench.set_interface([node], mode)
                cpu, wall = bench.cpu_per_deploy(node, mode, config)
                idle = bench.idle_cpu_rate(node, idle_seconds)
                bench.reset([node])
                taken[mode].append((cpu, wall, idle, cpu - idle * wall))
                _log('    %s, %s: %.2f CPU s in %.1f s, polling alone '
                     '%.3f CPU s/s, net %.2f'
                     % (mode, label, cpu, wall, idle, cpu - idle * wall))
        net = {}
        for mode in modes:
            values = taken[mode]
            net[mode] = statistics.median(v[3] for v in values)
            row('Ironic CPU per deployment, %s, %s, net' % (mode, label),
                net[mode],
                '(net %s; raw median %.2f; %.1f s each; polling alone '
                '%.3f CPU s/s)'
                % (', '.join('%.2f' % v[3] for v in values),
                   statistics.median(v[0] for v in values),
                   statistics.median(v[1] for v in values),
                   statistics.median(v[2] for v in values)))
        # The difference of each pair deployed one after the other.
        pairs = [c[3] - a[3]
                 for a, c in zip(taken['custom-agent'], taken['coreos'])]
        ratio = (net['coreos'] / net['custom-agent']
                 if net['custom-agent'] > 0 else float('nan'))
        row('Ironic CPU per deployment, coreos minus custom-agent, %s'
            % label, net['coreos'] - net['custom-agent'],
            '(coreos / custom-agent: %.2f; pairwise %s, median %.2f)'
            % (ratio, ', '.join('%+.2f' % p for p in pairs),
               statistics.median(pairs)))
        summary.append((label, net, ratio))


# -- engine -----------------------------------------------------------------

ENGINE_SIZES = (('128 KiB', 128 * 1024), ('1 MiB', 1024 * 1024),
                ('4 MiB', 4 * 1024 * 1024))
ORACLE = shutil.which('ignition-validate') or '/usr/bin/ignition-validate'


def typical_additions():
    """What the conductor adds to a user's config for a typical node."""
    links = [{'id': 'eth%d' % i, 'type': 'phy', 'mtu': 1500,
              'ethernet_mac_address': '52:54:00:00:00:%02x' % i}
             for i in range(4)]
    networks = [{'id': 'net%d' % i, 'type': 'ipv4', 'link': 'eth%d' % i,
                 'ip_address': '10.0.%d.10' % i, 'netmask': '255.255.255.0',
                 'routes': [{'network': '0.0.0.0', 'netmask': '0.0.0.0',
                             'gateway': '10.0.%d.1' % i}] if i == 0 else []}
                for i in range(4)]
    keyfiles = network.keyfiles_from_network_data({
        'links': links, 'networks': networks,
        'services': [{'type': 'dns', 'address': '10.0.0.2'}]})
    return merge.Additions(
        hostname='node-0001.example.com',
        ssh_keys=[large_ignition.ssh_key(100), large_ignition.ssh_key(101)],
        files=[merge.File(path=k.path, contents=k.contents.encode(),
                          mode=k.mode) for k in keyfiles])


def _timed(func, repeat):
    """Median wall and CPU seconds of ``func()``."""
    walls = []
    cpus = []
    for _ in range(repeat):
        wall = time.perf_counter()
        cpu = time.process_time()
        func()
        cpus.append(time.process_time() - cpu)
        walls.append(time.perf_counter() - wall)
    return statistics.median(walls), statistics.median(cpus)


def _oracle(path, repeat):
    """Median wall and CPU seconds of ``ignition-validate path``."""
    walls = []
    cpus = []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall = time.perf_counter()
        result = subprocess.run([ORACLE, path], capture_output=True,
                                check=False, timeout=600)
        walls.append(time.perf_counter() - wall)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime + after.ru_stime
                    - before.ru_utime - before.ru_stime)
        if result.returncode != 0:
            raise RuntimeError('ignition-validate rejects %s: %s'
                               % (path, result.stdout[-500:]))
    return statistics.median(walls), statistics.median(cpus)


def run_engine(args):
    oracle = os.access(ORACLE, os.X_OK)
    if not oracle:
        _log('ignition-validate is not installed (apt-get install '
             'ignition): its column stays empty')
    additions = typical_additions()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, size in ENGINE_SIZES:
            config = large_ignition.build(size)
            text = large_ignition.text(config)
            path = os.path.join(tmp, 'config.ign')
            with open(path, 'w') as f:
                f.write(text)
            report = ignition.check(text)
            merged = merge.merge(report.config, additions)
            ignition.check(merged)
            row = {'size': label, 'bytes': len(text),
                   'files': len(config['storage']['files']),
                   'units': len(config['systemd']['units'])}
            row['check'], row['check_cpu'] = _timed(
                lambda: ignition.check(text), args.repeat)
            row['merge'], row['merge_cpu'] = _timed(
                lambda: merge.merge(report.config, additions), args.repeat)
            row['check_merged'], row['check_merged_cpu'] = _timed(
                lambda: ignition.check(merged), args.repeat)
            if oracle:
                row['oracle'], row['oracle_cpu'] = _oracle(path,
                                                           args.repeat)
            rows.append(row)
            _log('  %-8s %9d bytes: check %.3f s, merge %.3f s, check '
                 'merged %.3f s, ignition-validate %s'
                 % (label, len(text), row['check'], row['merge'],
                    row['check_merged'], '%.3f s' % row['oracle']
                    if oracle else '-'))

    def cell(row, key):
        if key not in row:
            return '-'
        return '%.3f (%.3f)' % (row[key], row[key + '_cpu'])

    print('Seconds, median of %d runs: wall (CPU in parentheses).'
          % args.repeat)
    print('')
    print('| config | bytes | files / units | check text | merge | '
          'check merged | ignition-validate | check / ignition-validate |')
    print('|---|---:|---:|---:|---:|---:|---:|---:|')
    for row in rows:
        ratio = ('%.2f' % (row['check'] / row['oracle'])
                 if 'oracle' in row else '-')
        print('| %s | %d | %d / %d | %s | %s | %s | %s | %s |'
              % (row['size'], row['bytes'], row['files'], row['units'],
                 cell(row, 'check'), cell(row, 'merge'),
                 cell(row, 'check_merged'), cell(row, 'oracle'), ratio))
    print('')
    print('| growth | size | check text | merge | check merged | '
          'ignition-validate |')
    print('|---|---:|---:|---:|---:|---:|')
    first = rows[0]
    for row in rows[1:]:
        growth = ['x%.1f' % (row['bytes'] / first['bytes'])]
        for key in ('check', 'merge', 'check_merged', 'oracle'):
            growth.append('x%.1f (x%.1f)' % (
                row[key] / first[key],
                row[key + '_cpu'] / max(first[key + '_cpu'], 1e-6))
                if key in row else '-')
        print('| %s -> %s | %s |' % (first['size'], row['size'],
                                     ' | '.join(growth)))
    print('')
    mid = rows[1]
    if 'oracle' in mid:
        print('Target at 1 MiB, check <= 1/2 of ignition-validate (wall): '
              '%.2f, %s' % (mid['check'] / mid['oracle'],
                            'met' if mid['check'] <= mid['oracle'] / 2
                            else 'NOT met'))
    size_growth = mid['bytes'] / first['bytes']
    for kind, key in (('wall', 'check'), ('CPU', 'check_cpu')):
        time_growth = mid[key] / first[key]
        print('Target x8 size -> at most x10 time (check, 128 KiB -> 1 MiB, '
              '%s): x%.1f size, x%.1f time, %s'
              % (kind, size_growth, time_growth,
                 'met' if time_growth <= 10 * size_growth / 8
                 else 'NOT met'))
    print('(Wall time depends on what else the machine runs; CPU time is '
          'this process\'s own.)')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump({'repeat': args.repeat, 'rows': rows}, f, indent=2)
    return 0


MEDIA_CONFIG = {
    'ignition': {'version': '3.3.0'},
    'passwd': {'users': [{'name': 'core', 'sshAuthorizedKeys': [KEY]}]},
    'storage': {'files': [{
        'path': '/etc/ironic-python-agent/ironic-python-agent.conf',
        'mode': 384,
        'contents': {'source': 'data:,' + '%5BDEFAULT%5D%0A' * 256}}]},
}
MEDIA_KEYFILE = (b'[connection]\nid=eth0\ntype=ethernet\n'
                 b'interface-name=eth0\n[ipv4]\nmethod=manual\n'
                 b'address1=192.0.2.10/24,192.0.2.1\ndns=192.0.2.1\n')


def _child(argv, stdout=subprocess.DEVNULL):
    """Run the media tool in a child; returns (seconds, peak RSS in MiB)."""
    command = [sys.executable, '-m', 'ironic_coreos.cmd.live_media'] + argv
    start = time.monotonic()
    with subprocess.Popen(command, stdout=stdout,
                          stderr=subprocess.PIPE) as child:
        _pid, status, usage = os.wait4(child.pid, 0)
        elapsed = time.monotonic() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        err = child.stderr.read().decode()
    if child.returncode != 0:
        raise RuntimeError('%s failed: %s' % (' '.join(argv), err))
    # ru_maxrss is in KiB on Linux.
    return elapsed, usage.ru_maxrss / 1024.0


def _padded_iso(path, size, dense):
    """A CoreOS fixture ISO padded to ``size`` bytes."""
    directory, name = os.path.split(path)
    live_iso.unpack('2023-07.x86_64', directory, name)
    with open(path, 'r+b') as stream:
        start = os.fstat(stream.fileno()).st_size
        if not dense:
            stream.truncate(size)
            return
        block = os.urandom(1024 * 1024)
        stream.seek(start)
        while stream.tell() < size:
            stream.write(block[:size - stream.tell()])


def run_media(args):
    size = args.media_size * 1024 * 1024
    rows = []

    def row(label, seconds, rss):
        rows.append({'measure': label, 'seconds': seconds, 'rss_mib': rss})
        _log('  %-52s %7.2f s %7.1f MiB' % (label, seconds, rss))

    with tempfile.TemporaryDirectory(dir=args.media_dir) as tmp:
        iso = os.path.join(tmp, 'live.iso')
        _padded_iso(iso, size, args.dense)
        config = os.path.join(tmp, 'live.ign')
        with open(config, 'w') as stream:
            json.dump(MEDIA_CONFIG, stream)
        keyfile = os.path.join(tmp, 'eth0.nmconnection')
        with open(keyfile, 'wb') as stream:
            stream.write(MEDIA_KEYFILE)
        kind = 'dense' if args.dense else 'sparse'
        _log('Live ISO: %d MiB (%s), config %d bytes'
             % (args.media_size, kind, os.path.getsize(config)))
        embed = ['iso', 'embed', iso, '-i', config, '-k', keyfile,
                 '--karg-append', 'console=ttyS0,115200n8']
        row('python + imports only (baseline)',
            *_child(['iso', 'show', '--help']))
        row('iso show (read the areas)', *_child(['iso', 'show', iso]))
        out = os.path.join(tmp, 'node.iso')
        row('iso embed -o new file (%s copy)' % kind,
            *_child(embed + ['-o', out]))
        with open(os.devnull, 'wb') as null:
            row('iso embed -o - (streamed to a pipe)',
                *_child(embed + ['-o', '-'], stdout=null))
        row('iso embed --in-place --replace',
            *_child(['iso', 'embed', out, '-i', config, '--replace',
                     '--in-place']))
        row('iso kargs --in-place', *_child(['iso', 'kargs', out, '--append',
                                             'quiet', '--in-place']))
        row('pxe wrap', *_child(['pxe', 'wrap', '-i', config, '-k', keyfile,
                                 '-o', os.path.join(tmp, 'wrap.img')]))
        used = os.stat(out).st_blocks * 512
    self_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    _log('')
    print('Live ISO of %d MiB (%s); the new file used %.1f MiB of disk'
          % (args.media_size, kind, used / 1024.0 / 1024.0))
    print('| measure | seconds | peak RSS (MiB) |')
    print('|---|---:|---:|')
    for r in rows:
        print('| %s | %.2f | %.1f |' % (r['measure'], r['seconds'],
                                        r['rss_mib']))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump({'iso_mib': args.media_size, 'dense': args.dense,
                       'rows': rows, 'benchmark_rss_mib': self_rss}, f,
                      indent=2)


def _vmedia_child(args):
    """One batch of per-node ISOs, in this process; prints JSON."""
    import functools
    import http.server
    import threading

    from ironic.common import context as ir_context
    from oslo_config import cfg

    from ironic_coreos.drivers.modules import coreos_vmedia
    from ironic_coreos.engine import live_media as media

    conf = cfg.CONF
    conf([], project='ironic')
    work = args.media_dir
    conf.set_override('live_iso_master_path', os.path.join(work, 'master'),
                      group='coreos')
    conf.set_override('tempdir', os.path.join(work, 'tmp'))
    os.makedirs(os.path.join(work, 'tmp'), exist_ok=True)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, fmt, *args):
            pass

    handler = functools.partial(Quiet, directory=os.path.join(work, 'served'))
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = 'http://127.0.0.1:%d/live.iso' % httpd.server_address[1]
    ctx = ir_context.get_admin_context()

    class Task(object):
        context = ctx

    cache = coreos_vmedia.LiveISOCache()
    os.makedirs(cache.master_dir, exist_ok=True)
    config = json.dumps(MEDIA_CONFIG).encode()
    out_dir = os.path.join(work, 'out')
    os.makedirs(out_dir, exist_ok=True)

    def one(index):
        staging = os.path.join(cache.master_dir, '.node-%d.iso' % index)
        output = os.path.join(out_dir, 'boot-%d.iso' % index)
        start = time.monotonic()
        coreos_vmedia.fetch_live_iso(Task, url, None, staging, cache)
        try:
            iso = media.LiveISO.open(staging)
            coreos_vmedia.write_node_iso(
                iso, output, config, {'eth0.nmconnection': MEDIA_KEYFILE},
                ['ipa-api-url=http://192.0.2.1:6385', 'boot_method=vmedia'])
        finally:
            os.unlink(staging)
        return time.monotonic() - start

    result = {}
    start = time.monotonic()
    if args.nodes == 0:
        one(0)
        result['seconds'] = time.monotonic() - start
    else:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        with concurrent.futures.ThreadPoolExecutor(args.nodes) as pool:
            per_node = list(pool.map(one, range(args.nodes)))
        result['seconds'] = time.monotonic() - start
        result['per_node'] = per_node
        result['rss_before_mib'] = before
    result['rss_mib'] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                         / 1024.0)
    httpd.shutdown()
    print(json.dumps(result))
    return 0


def run_vmedia(args):
    size = args.media_size * 1024 * 1024
    rows = []
    with tempfile.TemporaryDirectory(dir=args.media_dir) as tmp:
        served = os.path.join(tmp, 'served')
        os.makedirs(served)
        _padded_iso(os.path.join(served, 'live.iso'), size, not args.sparse)
        kind = 'sparse' if args.sparse else 'dense'
        _log('Stock live ISO: %d MiB (%s), on a local HTTP server'
             % (args.media_size, kind))

        def child(nodes):
            out = subprocess.run(
                [sys.executable, os.path.abspath(__file__), '_vmedia-child',
                 '--nodes', str(nodes), '--media-dir', tmp],
                check=True, stdout=subprocess.PIPE).stdout
            shutil.rmtree(os.path.join(tmp, 'out'), ignore_errors=True)
            return json.loads(out.decode().strip().splitlines()[-1])

        first = child(0)
        rows.append(('download once into the cache + 1 node ISO', 1,
                     first['seconds'], first['seconds'], None,
                     first['rss_mib']))
        for nodes in sorted({1, args.nodes}):
            got = child(nodes)
            rows.append(('node ISOs from the cache, %d at once' % nodes,
                         nodes, got['seconds'],
                         statistics.mean(got['per_node']),
                         got['rss_before_mib'], got['rss_mib']))
            _log('  %d node(s): %.2f s' % (nodes, got['seconds']))
    print('Stock live ISO of %d MiB (%s)' % (args.media_size, kind))
    print('| batch | nodes | wall seconds | seconds per node (mean) | '
          'RSS before (MiB) | peak RSS (MiB) |')
    print('|---|---:|---:|---:|---:|---:|')
    for label, nodes, wall, per_node, before, peak in rows:
        print('| %s | %d | %.2f | %.2f | %s | %.1f |'
              % (label, nodes, wall, per_node,
                 '-' if before is None else '%.1f' % before, peak))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump({'iso_mib': args.media_size, 'dense': not args.sparse,
                       'rows': rows}, f, indent=2)


MIB = 1024 * 1024
SITE_PACKAGES = 'opt/ironic-agent/lib/python3.11/site-packages/'


def _layers(image):
    """The image's layers as uncompressed tar files in a temp directory."""
    tmp = tempfile.mkdtemp(prefix='ic-bench-image-')
    agent_image.podman('save', '--quiet', '--format', 'oci-dir',
                       '--uncompressed', '--output',
                       os.path.join(tmp, 'oci'), image.tag, timeout=900)
    with open(os.path.join(tmp, 'oci', 'index.json')) as f:
        index = json.load(f)

    def blob(digest):
        return os.path.join(tmp, 'oci', 'blobs', *digest.split(':'))

    with open(blob(index['manifests'][0]['digest'])) as f:
        manifest = json.load(f)
    return tmp, [blob(layer['digest']) for layer in manifest['layers']]


def _gzip_size(path):
    class Counter:
        size = 0

        def write(self, data):
            self.size += len(data)

        def flush(self):
            pass

    counter = Counter()
    with open(path, 'rb') as src, gzip.GzipFile(fileobj=counter, mode='wb',
                                                compresslevel=6) as out:
        shutil.copyfileobj(src, out, 1024 * 1024)
    return counter.size


def _zstd_size(path):
    if not shutil.which('zstd'):
        return None
    proc = subprocess.run(['zstd', '-3', '-q', '-c', path],
                          stdout=subprocess.PIPE, check=True)
    return len(proc.stdout)


def _parts(layer_paths):
    """Bytes by part of the tree: top directories and Python packages."""
    dirs = collections.Counter()
    packages = collections.Counter()
    for path in layer_paths:
        with tarfile.open(path) as tar:
            for member in tar:
                if not member.isfile():
                    continue
                name = member.name.lstrip('./')
                if name.startswith(SITE_PACKAGES):
                    top = name[len(SITE_PACKAGES):].split('/')[0]
                    top = top.split('-')[0] if top.endswith(
                        ('.dist-info', '.pth')) else top
                    packages[top] += member.size
                    dirs['/' + SITE_PACKAGES.rstrip('/')] += member.size
                    continue
                depth = 3 if name.startswith(('usr/lib/', 'usr/share/')) \
                    else 2
                dirs['/' + '/'.join(name.split('/')[:depth])] += member.size
    return dirs, packages


def run_image(args):
    """Sizes and build times of the agent image.

    Builds (or takes from the cache) the image with
    tools/build-agent-image.sh, timing the call (``--rebuild`` builds the
    image again on the cached base), and prints the uncompressed size (the
    layer tars, as ``podman save --uncompressed`` writes them), the gzip
    (level 6, what a registry stores) and zstd -3 sizes, the layers and
    the largest parts of the tree and of the agent's venv.
    """
    why = agent_image.unavailable_reason()
    if why:
        _log('Cannot run: %s' % why)
        return 2
    results = {'rows': []}

    def row(label, value, unit):
        results['rows'].append({'measure': label, 'value': value,
                                'unit': unit})
        _log('  %-50s %9.1f %s' % (label, value, unit))

    if args.rebuild:
        start = time.monotonic()
        subprocess.run([agent_image.BUILD_SCRIPT, '--rebuild'],
                       env=agent_image.environment(), check=True,
                       stdout=subprocess.DEVNULL)
        row('image build on the cached base (--rebuild)',
            time.monotonic() - start, 's')
    start = time.monotonic()
    image = agent_image.build()
    row('build script, image cached', time.monotonic() - start, 's')
    _log('Image %s' % image.tag)
    tmp, layers = _layers(image)
    try:
        total = gz = zst = 0
        for number, path in enumerate(layers, 1):
            size = os.path.getsize(path)
            gsize = _gzip_size(path)
            zsize = _zstd_size(path)
            total += size
            gz += gsize
            zst = None if zsize is None or zst is None else zst + zsize
            if size >= MIB:
                row('layer %d uncompressed' % number, size / MIB, 'MiB')
                row('layer %d gzip -6' % number, gsize / MIB, 'MiB')
        row('image uncompressed', total / MIB, 'MiB')
        row('image gzip -6', gz / MIB, 'MiB')
        if zst is not None:
            row('image zstd -3', zst / MIB, 'MiB')
        row('OCI archive (%s)' % image.archive,
            os.path.getsize(image.archive) / MIB, 'MiB')
        dirs, packages = _parts(layers)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _log('')
    print('| measure | value |')
    print('|---|---:|')
    for r in results['rows']:
        print('| %s | %.1f %s |' % (r['measure'], r['value'], r['unit']))
    print('')
    print('| largest parts of the tree | MiB |')
    print('|---|---:|')
    for name, size in dirs.most_common(args.top):
        print('| %s | %.1f |' % (name, size / MIB))
    print('')
    print('| largest packages of the agent venv | MiB |')
    print('|---|---:|')
    for name, size in packages.most_common(args.top):
        print('| %s | %.1f |' % (name, size / MIB))
    results['parts'] = dict(dirs.most_common(args.top))
    results['packages'] = dict(packages.most_common(args.top))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=2)
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ['multiconductor']:
        # Two conductors on MariaDB, 64 nodes at once.
        from ironic_coreos.tests.functional import multibench
        return multibench.main(argv[1:])
    if argv[:1] == ['vm']:
        # Virtual machines through Redfish (the VM lab, tox env vmlab).
        from ironic_coreos.tests.functional.vmlab import bench
        return bench.main(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('what', nargs='?', default='deploy',
                        choices=('deploy', 'engine', 'media', 'vmedia',
                                 'image', '_vmedia-child'),
                        help='deploy: deployments through Ironic (default, '
                             'needs root); engine: the engine alone; media: '
                             'per-node live media; vmedia: per-node ISOs '
                             'of the virtual media boot interface; image: '
                             'the agent image\'s sizes and build times')
    parser.add_argument('--samples', type=int, default=3,
                        help='deployments per median (default 3)')
    parser.add_argument('--repeat', type=int, default=5,
                        help='engine: runs per median (default 5)')
    parser.add_argument('--json', metavar='FILE',
                        help='also write the results as JSON')
    parser.add_argument('--parts', default='times,failures,concurrent,cpu',
                        help='deploy: comma-separated parts to run '
                             '(default times,failures,concurrent,cpu)')
    parser.add_argument('--rebuild', action='store_true',
                        help='image: time a build of the image on the '
                             'cached base')
    parser.add_argument('--top', type=int, default=15,
                        help='image: how many of the largest parts to list')
    parser.add_argument('--media-size', type=int, default=1024,
                        metavar='MIB',
                        help='media: size of the live ISO (default 1024)')
    parser.add_argument('--dense', action='store_true',
                        help='media: fill the ISO with data instead of '
                             'leaving holes')
    parser.add_argument('--nodes', type=int, default=16,
                        help='vmedia: nodes prepared at once (default 16)')
    parser.add_argument('--sparse', action='store_true',
                        help='vmedia: leave the ISO\'s padding as holes')
    parser.add_argument('--media-dir', metavar='DIR',
                        help='media: where to put the ISOs (default: the '
                             'temporary directory)')
    args = parser.parse_args(argv)
    if args.what == 'engine':
        return run_engine(args)
    if args.what == 'media':
        return run_media(args)
    if args.what == 'vmedia':
        return run_vmedia(args)
    if args.what == '_vmedia-child':
        return _vmedia_child(args)
    if args.what == 'image':
        return run_image(args)
    why = core.can_run()
    if why:
        _log('Cannot run: %s' % why)
        return 2
    return run(args)


if __name__ == '__main__':
    sys.exit(main())
