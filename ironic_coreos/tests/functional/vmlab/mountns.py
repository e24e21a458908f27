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
"""Run a daemon in a private mount namespace with private directories.

Run as ``unshare -m --propagation private python -m ...mountns
--bind SRC DST [--bind ...] -- COMMAND...``: bind-mounts each private
``SRC`` over ``DST`` (libvirt's configuration, run, state, log and cache
directories), then replaces itself with ``COMMAND``. The mounts exist only
in the new mount namespace and vanish with its last process.
"""

import argparse
import os
import subprocess
import sys


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument('--bind', nargs=2, action='append', default=[],
                        metavar=('SRC', 'DST'))
    parser.add_argument('command', nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command
    if command and command[0] == '--':
        command = command[1:]
    if not command:
        parser.error('no command')
    # Refuse to touch the host's mount namespace (the lab passes the
    # inode of its own).
    host = os.environ.get('IRONIC_COREOS_VMLAB_HOST_MNTNS')
    if not host or os.stat('/proc/self/ns/mnt').st_ino == int(host):
        sys.stderr.write('refusing: not in a private mount namespace\n')
        return 3
    for src, dst in args.bind:
        os.makedirs(dst, exist_ok=True)
        subprocess.run(['mount', '--bind', src, dst], check=True)
    os.execvp(command[0], command)


if __name__ == '__main__':
    sys.exit(main())
