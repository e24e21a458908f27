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
"""Enter a network namespace from one thread of this process.

``setns(2)`` on a network namespace changes only the calling thread:
sockets it opens and processes it starts live in that namespace. Used by
the lab to reach the services in its namespace (Ironic's API, SSH to the
VMs) without anything listening on the host's interfaces.
"""

import contextlib
import ctypes
import os
import threading

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
_lock = threading.local()


def _setns(fd):
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, 'setns: %s' % os.strerror(err))


@contextlib.contextmanager
def inside(name):
    """Run the block with this thread in network namespace ``name``.

    :param name: a namespace under /run/netns.
    """
    depth = getattr(_lock, 'depth', 0)
    if depth:
        # Already inside (nested call from the same thread).
        _lock.depth = depth + 1
        try:
            yield
        finally:
            _lock.depth -= 1
        return
    own = os.open('/proc/thread-self/ns/net', os.O_RDONLY)
    try:
        target = os.open('/run/netns/%s' % name, os.O_RDONLY)
        try:
            _setns(target)
        finally:
            os.close(target)
        _lock.depth = 1
        try:
            yield
        finally:
            _lock.depth = 0
            _setns(own)
    finally:
        os.close(own)
