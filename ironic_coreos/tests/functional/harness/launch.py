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

"""Start ironic-python-agent for a simulated node, or refuse to.

Run by the harness as ``ip netns exec NS python -m ...launch ARGS``. From
inside the agent's own process it checks every safety layer: a network
namespace other than the host's, with only the node's veth and no default
route; the logging shims first on PATH; the installer stand-in allowed to
write exactly one device, the node's loop device backed by a file of this
run. Then it neutralises the agent's host-level actions and runs the agent.
Any missing layer: exit status 3 and nothing started.
"""

import json
import os
import shutil
import stat
import sys

from ironic_coreos.tests.functional.harness import node as node_mod

REFUSED = 3


def check_layers(env=os.environ):
    """Every reason not to start the agent (empty list: all in place).

    :param env: the environment to check.
    :returns: list of problem strings.
    """
    problems = []
    # The harness passes the inode of its own (the host's) namespace.
    own = os.stat('/proc/self/ns/net').st_ino
    host = env.get('IRONIC_COREOS_E2E_HOST_NETNS')
    if not host or own == int(host):
        problems.append('running in the host network namespace')
    netns = env.get('IRONIC_COREOS_E2E_NETNS')
    if not netns or not os.path.exists('/run/netns/%s' % netns) or (
            os.stat('/run/netns/%s' % netns).st_ino != own):
        problems.append('not inside the recorded namespace %s' % netns)
    links = sorted(os.listdir('/sys/class/net'))
    if links != ['eth0', 'lo']:
        problems.append('unexpected network links %s' % links)
    with open('/proc/net/route') as f:
        for line in f.readlines()[1:]:
            if line.split()[1] == '00000000':
                problems.append('a default route exists')
    shims = env.get('IRONIC_COREOS_E2E_SHIMS')
    path = env.get('PATH', '').split(':')
    if not shims or path[0] != shims:
        problems.append('the shims are not first on PATH')
    else:
        for name in node_mod.SHIMMED:
            found = shutil.which(name, path=env['PATH'])
            if found != os.path.join(shims, name):
                problems.append('%s resolves to %s, not a shim'
                                % (name, found))
    state = env.get('IRONIC_COREOS_E2E_STATE')
    allowed = env.get('COREOS_STANDIN_ALLOWED_DEVICES', '')
    devices = [d for d in allowed.split(':') if d]
    simhw = env.get('IRONIC_COREOS_SIMHW')
    disk = None
    if simhw and os.path.exists(simhw):
        with open(simhw) as f:
            disk = json.load(f).get('disk')
    if len(devices) != 1 or devices[0] != disk:
        problems.append('the installer must be allowed exactly the node '
                        'disk %s, not %s' % (disk, devices))
    elif not (disk.startswith('/dev/loop')
              and stat.S_ISBLK(os.stat(disk).st_mode)):
        problems.append('%s is not a loop device' % disk)
    else:
        with open('/sys/block/%s/loop/backing_file'
                  % os.path.basename(disk)) as f:
            backing = f.read().strip()
        if not state or not backing.startswith(state.rstrip('/') + '/'):
            problems.append('%s is backed by %s, outside the run %s'
                            % (disk, backing, state))
    return problems


def main(argv=None):
    """Check the layers, neutralise the host actions, run the agent."""
    argv = sys.argv[1:] if argv is None else argv
    problems = check_layers()
    if problems:
        sys.stderr.write('refusing to start the agent: %s\n'
                         % '; '.join(problems))
        return REFUSED
    from ironic_coreos.tests.functional.simhw import safety
    safety.apply()
    from ironic_python_agent.cmd import agent
    sys.argv = ['ironic-python-agent'] + list(argv)
    return agent.run()


if __name__ == '__main__':
    sys.exit(main())
