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

"""The CoreOS live ISO fixtures, one per layout generation (tests only).

The fixtures are coreos-installer's (see ``iso_fixtures/NOTICE``); what each
carries is in ``iso_fixtures/INDEX``, and in :data:`LAYOUTS` as the tests
expect it.
"""

import collections
import lzma
import os

FIXTURE_DIR = os.path.join(os.path.dirname(__file__), 'unit', 'engine',
                           'iso_fixtures')

Layout = collections.namedtuple(
    'Layout', ['initrd_source', 'initrd_file', 'kargs_source', 'network',
               'headers'])

#: fixture name -> what it has (from INDEX).
LAYOUTS = {
    '2020-09': Layout('ignition.img', 'IMAGES/IGNITION.IMG', None, False,
                      {'coreiso+'}),
    '2021-01': Layout('ignition.img', 'IMAGES/IGNITION.IMG',
                      'coreKarg header', False, {'coreiso+', 'coreKarg'}),
    '2021-09': Layout('ignition.img', 'IMAGES/IGNITION.IMG', 'kargs.json',
                      False, {'coreiso+', 'coreKarg'}),
    '2021-12': Layout('ignition.img', 'IMAGES/IGNITION.IMG', 'kargs.json',
                      True, {'coreiso+', 'coreKarg'}),
    '2022-02': Layout('ignition.img', 'IMAGES/IGNITION.IMG', 'kargs.json',
                      True, set()),
    '2022-09': Layout('ignition.img', 'IMAGES/IGNITION.IMG', 'kargs.json',
                      True, set()),
    '2023-03.s390x': Layout('igninfo.json', 'IMAGES/CDBOOT.IMG', None, True,
                            set()),
    '2023-03.x86_64': Layout('igninfo.json', 'IMAGES/IGNITION.IMG',
                             'kargs.json', True, set()),
    '2023-07.s390x': Layout('igninfo.json', 'IMAGES/CDBOOT.IMG',
                            'kargs.json', True, set()),
    '2023-07.x86_64': Layout('igninfo.json', 'IMAGES/IGNITION.IMG',
                             'kargs.json', True, set()),
}


def fixture_path(generation):
    return os.path.join(FIXTURE_DIR, 'embed-areas-%s.iso.xz' % generation)


def unpack(generation, directory, name=None):
    """Decompress one fixture into ``directory``; returns its path."""
    path = os.path.join(directory, name or 'embed-areas-%s.iso' % generation)
    with lzma.open(fixture_path(generation)) as source, \
            open(path, 'wb') as sink:
        sink.write(source.read())
    return path


def areas(iso):
    """[(offset, length)] of every embed area of a LiveISO."""
    found = [(iso.initrd.offset, iso.initrd.length)]
    if iso.kargs_areas is not None:
        found.extend((r.offset, r.length) for r in iso.kargs_areas.regions)
    return sorted(found)


def outside(data, spans):
    """``data`` with the bytes in ``spans`` blanked out."""
    data = bytearray(data)
    for offset, length in spans:
        data[offset:offset + length] = bytes(length)
    return bytes(data)
