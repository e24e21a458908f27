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

"""The agent image of tools/build-agent-image.sh, for tests and benchmarks.

:func:`build` runs the build script (which answers from its cache when the
inputs did not change) and returns the image; :func:`podman` runs podman
with the project's ``tools/containers.conf``.
"""

import dataclasses
import os
import shutil
import subprocess

TOP_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__),
                                       '..', '..', '..', '..'))
BUILD_SCRIPT = os.path.join(TOP_DIR, 'tools', 'build-agent-image.sh')
CONTAINERS_CONF = os.path.join(TOP_DIR, 'tools', 'containers.conf')
NAME = 'localhost/ironic-coreos-agent'


@dataclasses.dataclass(frozen=True)
class Image:
    """A built agent image.

    :ivar key: the cache key (``<base>-<hash>``).
    :ivar tag: the image in podman's storage.
    :ivar archive: the OCI archive of the image.
    """

    key: str
    tag: str
    archive: str


def unavailable_reason():
    """Why the image cannot be built or run here (None if it can)."""
    if os.geteuid() != 0:
        return 'needs root (podman storage, mmdebstrap)'
    for tool in ('podman', 'mmdebstrap', 'runc'):
        if not shutil.which(tool):
            return 'needs %s (tools/install-deps.sh)' % tool
    return None


def environment():
    """The environment for podman with the project's containers.conf."""
    env = dict(os.environ)
    env.setdefault('CONTAINERS_CONF', CONTAINERS_CONF)
    return env


def podman(*args, check=True, timeout=300, **kwargs):
    """Run podman; returns the CompletedProcess (text output)."""
    return subprocess.run(['podman'] + list(args), env=environment(),
                          check=check, timeout=timeout, text=True,
                          capture_output=True, **kwargs)


def build(base='debian', timeout=3600):
    """Build (or take from the cache) the agent image.

    :returns: an :class:`Image`.
    :raises: subprocess.CalledProcessError with the script's output.
    """
    proc = subprocess.run([BUILD_SCRIPT, '--base', base], env=environment(),
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, proc.args,
                                            proc.stdout, proc.stderr)
    archive = proc.stdout.strip().splitlines()[-1]
    key = os.path.basename(os.path.dirname(archive))
    return Image(key=key, tag='%s:%s' % (NAME, key), archive=archive)
