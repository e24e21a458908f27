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

"""The shape of Ignition 3.x configs, as a compact table.

An object is a dict mapping each key to ``(type, since)``: ``type`` is one
of :data:`STRING`, :data:`INTEGER`, :data:`BOOLEAN`, another object dict or
a one-item list ``[item type]``; ``since`` is the first spec version that
knows the key. Keys never disappeared between 3.0.0 and 3.6.0 (3.6.0 has
the schema of 3.5.0), so one table serves every version.
"""

STRING = 'string'
INTEGER = 'integer'
BOOLEAN = 'boolean'

V30 = '3.0.0'
V31 = '3.1.0'
V32 = '3.2.0'
V33 = '3.3.0'
V34 = '3.4.0'
V35 = '3.5.0'


def _all(since, **fields):
    """Build an object table whose keys all appeared in ``since``."""
    return {name: (kind, since) for name, kind in fields.items()}


HTTP_HEADER = _all(V31, name=STRING, value=STRING)

VERIFICATION = _all(V30, hash=STRING)


def _resource(compression_since):
    table = _all(V30, source=STRING, verification=VERIFICATION)
    table['compression'] = (STRING, compression_since)
    table['httpHeaders'] = ([HTTP_HEADER], V31)
    return table


# Config references and CA bundles gained compression in 3.1.0; file
# contents had it from the start.
REFERENCE = _resource(V31)
CONTENTS = _resource(V30)

NODE_USER = _all(V30, id=INTEGER, name=STRING)

FILE = _all(V30, path=STRING, overwrite=BOOLEAN, user=NODE_USER,
            group=NODE_USER, mode=INTEGER, contents=CONTENTS,
            append=[CONTENTS])

DIRECTORY = _all(V30, path=STRING, overwrite=BOOLEAN, user=NODE_USER,
                 group=NODE_USER, mode=INTEGER)

LINK = _all(V30, path=STRING, overwrite=BOOLEAN, user=NODE_USER,
            group=NODE_USER, target=STRING, hard=BOOLEAN)

PARTITION = _all(V30, label=STRING, number=INTEGER, sizeMiB=INTEGER,
                 startMiB=INTEGER, typeGuid=STRING, guid=STRING,
                 wipePartitionEntry=BOOLEAN, shouldExist=BOOLEAN)
PARTITION['resize'] = (BOOLEAN, V32)

DISK = _all(V30, device=STRING, wipeTable=BOOLEAN, partitions=[PARTITION])

RAID = _all(V30, name=STRING, level=STRING, devices=[STRING],
            spares=INTEGER, options=[STRING])

FILESYSTEM = _all(V30, device=STRING, format=STRING, wipeFilesystem=BOOLEAN,
                  label=STRING, uuid=STRING, options=[STRING], path=STRING)
FILESYSTEM['mountOptions'] = ([STRING], V31)

TANG = _all(V32, url=STRING, thumbprint=STRING)
TANG['advertisement'] = (STRING, V34)

CLEVIS_CUSTOM = _all(V32, pin=STRING, config=STRING, needsNetwork=BOOLEAN)

CLEVIS = _all(V32, tang=[TANG], tpm2=BOOLEAN, threshold=INTEGER,
              custom=CLEVIS_CUSTOM)

CEX = _all(V35, enabled=BOOLEAN)

LUKS = _all(V32, name=STRING, device=STRING, keyFile=REFERENCE,
            label=STRING, uuid=STRING, options=[STRING], wipeVolume=BOOLEAN,
            clevis=CLEVIS)
LUKS.update(_all(V34, discard=BOOLEAN, openOptions=[STRING]))
LUKS['cex'] = (CEX, V35)

STORAGE = _all(V30, disks=[DISK], raid=[RAID], filesystems=[FILESYSTEM],
               files=[FILE], directories=[DIRECTORY], links=[LINK])
STORAGE['luks'] = ([LUKS], V32)

DROPIN = _all(V30, name=STRING, contents=STRING)

UNIT = _all(V30, name=STRING, enabled=BOOLEAN, mask=BOOLEAN,
            contents=STRING, dropins=[DROPIN])

SYSTEMD = _all(V30, units=[UNIT])

USER = _all(V30, name=STRING, passwordHash=STRING,
            sshAuthorizedKeys=[STRING], uid=INTEGER, gecos=STRING,
            homeDir=STRING, noCreateHome=BOOLEAN, primaryGroup=STRING,
            groups=[STRING], noUserGroup=BOOLEAN, noLogInit=BOOLEAN,
            shell=STRING, system=BOOLEAN)
USER['shouldExist'] = (BOOLEAN, V32)

GROUP = _all(V30, name=STRING, gid=INTEGER, passwordHash=STRING,
             system=BOOLEAN)
GROUP['shouldExist'] = (BOOLEAN, V32)

PASSWD = _all(V30, users=[USER], groups=[GROUP])

KERNEL_ARGUMENTS = _all(V33, shouldExist=[STRING], shouldNotExist=[STRING])

CONFIG_REFERENCES = _all(V30, merge=[REFERENCE], replace=REFERENCE)

TIMEOUTS = _all(V30, httpResponseHeaders=INTEGER, httpTotal=INTEGER)

TLS = _all(V30, certificateAuthorities=[REFERENCE])

SECURITY = _all(V30, tls=TLS)

PROXY = _all(V31, httpProxy=STRING, httpsProxy=STRING, noProxy=[STRING])

IGNITION = _all(V30, version=STRING, config=CONFIG_REFERENCES,
                timeouts=TIMEOUTS, security=SECURITY)
IGNITION['proxy'] = (PROXY, V31)

CONFIG = _all(V30, ignition=IGNITION, storage=STORAGE, systemd=SYSTEMD,
              passwd=PASSWD)
CONFIG['kernelArguments'] = (KERNEL_ARGUMENTS, V33)

# Values Ignition accepts for enumerated strings, with the version that
# introduced each value.
FILESYSTEM_FORMATS = {'ext4': V30, 'btrfs': V30, 'xfs': V30, 'vfat': V30,
                      'swap': V30, 'none': V33}
RAID_LEVELS = ('linear', 'raid0', 'raid1', 'raid4', 'raid5', 'raid6',
               'raid10')
URL_SCHEMES = {'http': V30, 'https': V30, 'tftp': V30, 's3': V30,
               'data': V30, 'gs': V32, 'arn': V34}
HASH_FUNCTIONS = {'sha512': (128, V30), 'sha256': (64, V31)}
CLEVIS_PINS = ('tpm2', 'tang', 'sss')
UNIT_EXTENSIONS = ('.service', '.socket', '.device', '.mount', '.automount',
                   '.swap', '.target', '.path', '.timer', '.slice', '.scope')
# Longest label each filesystem accepts.
LABEL_LIMITS = {'ext4': 16, 'xfs': 12, 'vfat': 11, 'btrfs': 256}
