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

"""Large, ordinary, valid Ignition configs for benchmarks and tests.

At 1 MiB a config has about 2,400 files with ``data:`` contents (plain,
base64 and gzip), 300 directories, 300 links and 300 systemd units with
drop-ins, and one user with SSH keys; smaller and larger sizes scale the
counts. Spec 3.3.0 by default, so Debian's ``ignition-validate`` reads it.

Imports neither ironic nor ironic_python_agent.
"""

import base64
import gzip
import json
import struct
import urllib.parse

MIB = 1024 * 1024
FILES_PER_MIB = 2400

_UNIT = ('[Unit]\nDescription=Example service %(n)d\n'
         'After=network-online.target\n\n[Service]\nType=oneshot\n'
         'ExecStart=/usr/local/bin/task-%(n)d --run\n'
         'RemainAfterExit=yes\n\n[Install]\nWantedBy=multi-user.target\n')
_DROPIN = '[Service]\nEnvironment=TASK=%(n)d\nTimeoutStartSec=%(t)d\n'


def ssh_key(seed):
    """A well-formed (not usable) ed25519 public key."""
    blob = (struct.pack('>I', 11) + b'ssh-ed25519' + struct.pack('>I', 32)
            + bytes((seed + i) % 256 for i in range(32)))
    return 'ssh-ed25519 %s user%d@example' % (
        base64.b64encode(blob).decode('ascii'), seed)


def _contents(index, size):
    text = ('line %d of generated file %d\n' % (0, index))
    body = (text * (size // len(text) + 1))[:size].encode('ascii')
    kind = index % 3
    if kind == 0:
        return {'source': 'data:,' + urllib.parse.quote(body)}
    if kind == 1:
        return {'source': 'data:;base64,'
                + base64.b64encode(body).decode('ascii')}
    return {'source': 'data:;base64,' + base64.b64encode(
        gzip.compress(body, mtime=0)).decode('ascii'),
        'compression': 'gzip'}


def _config(scale, content_size, version):
    files = max(1, round(FILES_PER_MIB * scale))
    others = max(1, files // 8)
    storage = {
        'directories': [{'path': '/var/lib/app%d' % i, 'mode': 493}
                        for i in range(others)],
        'files': [{'path': '/var/lib/app%d/file%d.conf' % (i % others, i),
                   'mode': 420, 'overwrite': True,
                   'contents': _contents(i, content_size)}
                  for i in range(files)],
        'links': [{'path': '/usr/local/bin/task-%d' % i,
                   'target': '/var/lib/app%d/file%d.conf' % (i, i),
                   'hard': False} for i in range(others)],
    }
    units = []
    for i in range(others):
        unit = {'name': 'task-%d.service' % i, 'enabled': True,
                'contents': _UNIT % {'n': i},
                'dropins': [{'name': '10-env.conf',
                             'contents': _DROPIN % {'n': i, 't': 30 + i}}]}
        if i % 2:
            unit['dropins'].append({'name': '20-limits.conf',
                                    'contents': '[Service]\nLimitNOFILE='
                                                '%d\n' % (1024 + i)})
        units.append(unit)
    return {
        'ignition': {'version': version},
        'passwd': {'users': [{'name': 'core', 'sshAuthorizedKeys': [
            ssh_key(i) for i in range(4)]}]},
        'storage': storage,
        'systemd': {'units': units},
    }


def text(config):
    """The config as indented JSON text, the way people write it."""
    return json.dumps(config, indent=2)


def build(size, version='3.3.0'):
    """A valid config whose indented JSON text is about ``size`` bytes.

    :param size: the wanted size of :func:`text` of the result, in bytes.
    :param version: the spec version to declare.
    :returns: the config as a dict.
    """
    scale = size / MIB
    content = 64
    config = _config(scale, content, version)
    for _attempt in range(4):
        length = len(text(config))
        if abs(length - size) < size // 100:
            break
        files = len(config['storage']['files'])
        # Each content byte costs about 1.3 bytes of text on average.
        content = max(1, content + int((size - length) / files / 1.3))
        config = _config(scale, content, version)
    return config
