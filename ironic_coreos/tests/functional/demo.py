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

"""Deploy one simulated CoreOS node through Ironic and show the result.

``python -m ironic_coreos.tests.functional.demo`` (as root) starts a real
Ironic (API + conductor) and a simulated node (network namespace, loop
device disk, a real ironic-python-agent), deploys it with the ``coreos``
deploy interface (or Ironic's ``custom-agent`` with deploy-step JSON when
the package's interface does not load), prints the provision states as
they change, then what was installed on the disk and what the first boot
(the real Ignition binary) produced. Everything is removed at the end.
Exit status 0 when the node became ``active`` and the first boot
produced the expected files.
"""

import argparse
import hashlib
import json
import os
import sys
import time

from ironic_coreos.engine import progress
from ironic_coreos.tests import firstboot
from ironic_coreos.tests.functional.harness import core
from ironic_coreos.tests.functional.harness import fixtures
from ironic_coreos.tests.functional.standin import disk as standin_disk

SSH_KEY = fixtures.ssh_key('demo', 'demo@ironic-coreos')

IGNITION = {
    'ignition': {'version': '3.3.0'},
    'storage': {
        'files': [{'path': '/etc/motd', 'mode': 420,
                   'contents': {'source': 'data:,Deployed%20by%20Ironic%20'
                                          'with%20ironic-coreos%0A'}}],
    },
    'systemd': {'units': [{'name': 'hello.service', 'enabled': True,
                           'contents': '[Unit]\nDescription=Hello\n\n'
                                       '[Service]\nType=oneshot\n'
                                       'ExecStart=/usr/bin/echo hello\n\n'
                                       '[Install]\n'
                                       'WantedBy=multi-user.target\n'}]},
}

NETWORK_DATA = {
    'links': [{'id': 'nic0', 'type': 'phy',
               'ethernet_mac_address': '52:54:00:aa:bb:01', 'mtu': 1500}],
    'networks': [{'id': 'public', 'type': 'ipv4', 'link': 'nic0',
                  'ip_address': '192.0.2.20', 'netmask': '255.255.255.0',
                  'routes': [{'network': '0.0.0.0', 'netmask': '0.0.0.0',
                              'gateway': '192.0.2.1'}]}],
    'services': [{'type': 'dns', 'address': '192.0.2.53'}],
}


def _say(text=''):
    print(text, flush=True)


def _stamp(t0, when=None):
    return '+%6.1fs' % ((when or time.time()) - t0)


def _bar(state, width=30):
    """A text progress bar from driver_internal_info['coreos_install']."""
    percent = state.get('percent') or 0
    filled = width * percent // 100
    text = '[%s%s] %3d%%  %-11s' % (
        '#' * filled, '.' * (width - filled), percent, state.get('phase'))
    if state.get('bytes_read'):
        text += '  %s' % progress.human_size(state['bytes_read'])
        if state.get('bytes_total'):
            text += ' of %s' % progress.human_size(state['bytes_total'])
    if state.get('bytes_per_second'):
        text += '  %s/s' % progress.human_size(state['bytes_per_second'])
    return text


def _follow(h, node, t0, timeout):
    """Print provision states and install progress until the node settles.

    :returns: the final state and the number of progress reports seen.
    """
    shown = len([1 for when, _s, _t in list(node.history) if when < t0])
    deadline = time.monotonic() + timeout
    last_progress = None
    reports = 0
    next_poll = 0
    while time.monotonic() < deadline:
        if time.monotonic() >= next_poll:
            next_poll = time.monotonic() + 0.5
            try:
                info = h.ironic.get('/v1/nodes/%s?fields=driver_internal_info'
                                    % node.uuid)['driver_internal_info']
            except Exception:
                info = {}
            state = (info or {}).get(progress.KEY)
            if state and state != last_progress:
                reports += 1
                _say('  %s  %s' % (_stamp(t0), _bar(state)))
            last_progress = state
        history = list(node.history)
        for when, state, target in history[shown:]:
            _say('  %s  %-16s%s' % (_stamp(t0, when), state,
                                    ' (target: %s)' % target
                                    if target else ''))
        shown = len(history)
        if history and history[-1][1] in ('active', 'deploy failed') \
                and core.settled(history[-1][1], history[-1][2]):
            return history[-1][1], reports
        time.sleep(0.1)
    return None, reports


def _show_disk(info):
    _say('Installed on the virtual disk:')
    for part in info['partitions']:
        _say('  partition %d  %-10s  %-4s  label %-10s %6.1f MiB'
             % (part['index'], part['name'] or '-', part['fstype'] or '-',
                part['label'] or '-', part['size'] / 1048576.0))
    for name, words in sorted(info['loader_entries'].items()):
        _say('  loader entry %s options:' % name)
        for word in words or []:
            _say('    %s' % word)
    data = info['ignition'] or b''
    _say('  ignition/config.ign: %d bytes, mode %s (directory %s), '
         'sha256 %s' % (len(data), oct(info['ignition_mode'] or 0),
                        oct(info['ignition_dir_mode'] or 0),
                        hashlib.sha256(data).hexdigest()[:16]))


def _show_first_boot(result):
    _say('First boot (the real Ignition applied config.ign):')
    for top, dirs, files in os.walk(result.root):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(top, name)
            rel = '/' + os.path.relpath(path, result.root)
            if rel.startswith(('/etc/passwd', '/etc/group', '/etc/shadow',
                               '/etc/gshadow', '/etc/login.defs',
                               '/etc/selinux', '/usr/')) or \
                    rel.endswith('-'):
                continue
            if os.path.islink(path):
                _say('  link   %s -> %s' % (rel, os.readlink(path)))
                continue
            _say('  %s  %s  %d bytes' % (oct(result.mode(rel)), rel,
                                         os.lstat(path).st_size))
    keyfiles = [os.path.join(top, n) for top, _d, files in
                os.walk(result.path('/etc/NetworkManager/'
                                    'system-connections'))
                for n in files]
    for path in keyfiles:
        _say('  keyfile %s:' % os.path.basename(path))
        with open(path) as f:
            for line in f.read().splitlines():
                _say('    %s' % line)
    _say('  SSH keys of core: %s' % result.authorized_keys('core'))


def run(args):
    t0 = time.time()
    _say('Starting Ironic (API + conductor, SQLite, noauth)...')
    # NOTE: agents ask for a heartbeat at most every 2 s while installing,
    # so that the progress reaches Ironic often enough to watch.
    with core.Harness(
            agent_coreos_options={'progress_report_interval': '2'}) as h:
        _say('  Ironic %s at %s, deploy interfaces: %s'
             % (h.ironic.url, _stamp(t0), ', '.join(h.deploy_interfaces)))
        iface = args.interface
        if iface == 'auto':
            iface = ('coreos' if 'coreos' in h.deploy_interfaces
                     else 'custom-agent')
        if iface not in h.deploy_interfaces:
            _say('The %s deploy interface is not available' % iface)
            return 2
        node = h.add_node(deploy_interface=iface)
        _say('Simulated node %s (%s): namespace %s, disk %s, MAC %s'
             % (node.name, node.uuid, node.netns, node.disk, node.mac))
        config = IGNITION
        if args.ignition:
            with open(args.ignition) as f:
                config = json.load(f)
        drive = {'user_data': config,
                 'meta_data': {'hostname': 'coreos-demo',
                               'public_keys': {'demo': SSH_KEY}},
                 'network_data': NETWORK_DATA}
        steps = None
        if iface == 'custom-agent':
            # Without the coreos interface the agent installs the config as
            # given: add the SSH key to it and request the step explicitly.
            config = json.loads(json.dumps(config))
            config.setdefault('passwd', {}).setdefault('users', []).append(
                {'name': 'core', 'sshAuthorizedKeys': [SSH_KEY]})
            drive['user_data'] = config
            steps = [{'interface': 'deploy', 'step': 'install_coreos',
                      'priority': 80,
                      'args': {'append_kargs': ['console=ttyS0,115200n8']}}]
        else:
            h.ironic.cli('node', 'set', node.uuid, '--instance-info',
                         'coreos_append_kargs=["console=ttyS0,115200n8"]')
        if args.install_rate:
            # NOTE: the demo's image is small; reading it at this rate shows
            # the install progress as a real, larger image would.
            node.set_faults({'throttle': args.install_rate * 1048576,
                             'sync_delay': 6})
            _say('The stand-in installer reads the image at %.1f MiB/s'
                 % args.install_rate)
        _say('Deploying with the %s interface (baremetal node deploy)...'
             % iface)
        t0 = time.time()
        h.deploy(node, config_drive=drive, deploy_steps=steps)
        state, reports = _follow(h, node, t0, args.timeout)
        data = h.ironic.node(node.uuid)
        if state != 'active':
            _say('Deployment failed: %s' % (data.get('last_error')
                                            or 'timed out'))
            return 1
        _say('Node is active after %.1f s (%d install progress reports '
             'seen through the API)' % (time.time() - t0, reports))
        info = standin_disk.inspect_disk(node.disk)
        _show_disk(info)
        if not info['ignition']:
            _say('No Ignition config was installed')
            return 1
        result = firstboot.apply(info['ignition'], base_dir=h.state_dir)
        try:
            _show_first_boot(result)
            ok = (result.read('/etc/motd').startswith(b'Deployed by')
                  and SSH_KEY in result.authorized_keys('core'))
        finally:
            result.cleanup()
        _say('Cleaning up (namespace, links, loop device, processes)...')
    left = core.leftovers(h.run_id)
    if any(left.values()):
        _say('Left behind: %s' % left)
        return 1
    _say('Done: %s' % ('success' if ok else 'the first boot is incomplete'))
    return 0 if ok else 1


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='python -m ironic_coreos.tests.functional.demo',
        description=__doc__.split('\n\n')[0])
    parser.add_argument('--interface', default='auto',
                        choices=('auto', 'coreos', 'custom-agent'),
                        help='deploy interface (auto: coreos when it loads)')
    parser.add_argument('--ignition', metavar='FILE',
                        help='Ignition config to deploy instead of the '
                             'embedded one')
    parser.add_argument('--install-rate', type=float, default=4.0,
                        metavar='MIB_PER_S',
                        help='how fast the stand-in installer reads the '
                             'image, so that its progress shows (0: full '
                             'speed)')
    parser.add_argument('--timeout', type=int, default=300,
                        help='seconds to wait for the deployment')
    args = parser.parse_args(argv)
    why = core.can_run()
    if why:
        _say('Cannot run the demo: %s' % why)
        return 2
    try:
        return run(args)
    except KeyboardInterrupt:
        _say('Interrupted; everything was cleaned up')
        return 130
    except Exception as e:
        _say('Demo failed: %s' % e)
        return 1


if __name__ == '__main__':
    sys.exit(main())
