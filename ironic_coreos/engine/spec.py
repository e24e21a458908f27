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

"""Ignition spec versions known to ironic-coreos."""

import functools

# Stable spec versions, oldest first. 3.6.0 has the schema of 3.5.0 (file
# modes honour setuid/setgid/sticky).
STABLE_VERSIONS = ('3.0.0', '3.1.0', '3.2.0', '3.3.0', '3.4.0', '3.5.0',
                   '3.6.0')
NEWEST_VERSION = STABLE_VERSIONS[-1]


@functools.lru_cache(maxsize=128)
def version_tuple(version):
    """Turn ``'3.2.0'`` into ``(3, 2, 0)``.

    :param version: a stable spec version string.
    :returns: a tuple of three integers.
    :raises: ValueError if the string is not of the form X.Y.Z.
    """
    parts = version.split('.')
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise ValueError('%r is not a spec version of the form X.Y.Z'
                         % version)
    return tuple(int(p) for p in parts)


def at_least(version, minimum):
    """Whether spec ``version`` is ``minimum`` or newer.

    Each version string is parsed once (the result is cached): checks
    compare versions for every field of a config.
    """
    return version_tuple(version) >= version_tuple(minimum)
