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

"""Merge additions (host name, SSH keys, files, kernel arguments) into a
user's Ignition config without clobbering anything the user wrote.

The rules:

* The input dict is never modified; a new dict is returned.
* A user entry is never changed or dropped. New entries are appended after
  the user's ones; SSH keys are appended after the user's keys.
* An addition identical to what the config already has is a no-op, so
  ``merge(merge(c, a), a) == merge(c, a)``.
* The host name is the user's when the config writes ``/etc/hostname``
  itself (a file or a link, whatever its contents): the addition is left
  out and the caller is told (``skipped``).
* Any other addition that contradicts the config (another file, a
  directory or a link at the same path, a directory at ``/etc/hostname``,
  a kernel argument the config wants removed, ...) raises
  :class:`MergeConflict` naming the JSON path and the fix.
* ``ignition.version`` is raised only when an addition needs a newer spec,
  to the oldest spec that has the feature, and never above ``max_version``.
"""

import base64
import copy
import dataclasses
import gzip
import marshal
import posixpath
import re

from ironic_coreos.engine import exception
from ironic_coreos.engine import ignition
from ironic_coreos.engine import spec

# Oldest spec version that has top-level kernelArguments.
KARGS_VERSION = '3.3.0'
HOSTNAME_PATH = '/etc/hostname'
HOSTNAME_MODE = 0o644
# Ignition's mode for a file without "mode".
_DEFAULT_FILE_MODE = 0o644

_HOSTNAME_RE = re.compile(r'^[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})'
                          r'(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62}))*$')
_USER_RE = re.compile(r'^[a-z_][a-z0-9_.-]{0,31}$')


@dataclasses.dataclass(frozen=True)
class File:
    """A file to write at first boot.

    :ivar path: absolute, clean path on the installed system.
    :ivar contents: the file's bytes (embedded as a base64 ``data:`` URL).
    :ivar mode: permission bits as an integer, e.g. ``0o600``.
    """

    path: str
    contents: bytes
    mode: int = 0o644


@dataclasses.dataclass
class Additions:
    """What ironic-coreos adds to a user's Ignition config.

    :ivar hostname: written to ``/etc/hostname`` (mode 0644) when set.
    :ivar ssh_keys: OpenSSH public keys for ``ssh_user``.
    :ivar ssh_user: the user receiving ``ssh_keys`` (created when the config
        has no entry for it).
    :ivar files: further :class:`File` objects (e.g. NetworkManager
        keyfiles).
    :ivar kernel_args: kernel arguments that must be present
        (``kernelArguments.shouldExist``, spec 3.3.0 and newer).
    """

    hostname: str | None = None
    ssh_keys: list = dataclasses.field(default_factory=list)
    ssh_user: str = 'core'
    files: list = dataclasses.field(default_factory=list)
    kernel_args: list = dataclasses.field(default_factory=list)


def data_url(contents):
    """Encode bytes as a base64 ``data:`` URL Ignition accepts.

    :param contents: the bytes.
    :returns: ``'data:;base64,...'``.
    """
    return 'data:;base64,' + base64.b64encode(contents).decode('ascii')


def merge(config, additions, max_version=spec.NEWEST_VERSION, skipped=None):
    """Merge ``additions`` into an Ignition ``config``.

    :param config: the user's Ignition config as a dict (spec 3.x).
    :param additions: an :class:`Additions`.
    :param max_version: the newest spec version the result may declare.
    :param skipped: an optional list; for every addition left out because
        the config has its own value (the host name), one human-readable
        line naming the JSON path is appended (never the config's value).
    :returns: a new dict; ``config`` is not modified.
    :raises: MergeConflict if the config cannot take the additions (a
        conflicting entry, a malformed section, a spec version that would
        have to exceed ``max_version``).
    :raises: InvalidArgument if an addition itself is malformed (bad host
        name, SSH key, user name, file path or mode, kernel argument).
    """
    if not isinstance(config, dict):
        raise exception.MergeConflict(
            '$: the Ignition config is a %s, not a JSON object; pass the '
            'parsed config (a dict)' % type(config).__name__)
    files = _checked_files(additions)
    keys = _checked_keys(additions.ssh_keys)
    user = _checked_user(additions.ssh_user) if keys else None
    kargs = _checked_kargs(additions.kernel_args)

    result = _copy(config)
    version = _declared_version(result, max_version)

    if additions.hostname is not None:
        where = _own_hostname(result, files)
        if where is not None:
            files = [f for f in files if f.path != HOSTNAME_PATH]
            if skipped is not None:
                skipped.append(
                    '%s: the Ignition config writes %s itself, so the host '
                    'name of the node data is not added (the config\'s '
                    'own wins)' % (where, HOSTNAME_PATH))
    if files:
        _merge_files(result, files)
    if keys:
        _merge_keys(result, user, keys)
    if kargs:
        _merge_kargs(result, kargs, version, max_version)
    return result


def _copy(config):
    """A deep copy of ``config``.

    NOTE: a marshal round trip copies the builtin containers and scalars
    of a parsed config in C, many times faster than copy.deepcopy, which
    matters for configs of megabytes; anything else falls back to
    copy.deepcopy.
    """
    try:
        return marshal.loads(marshal.dumps(config))
    except ValueError:
        return copy.deepcopy(config)


# Checking the additions.


def _checked_files(additions):
    wanted = []
    if additions.hostname is not None:
        name = additions.hostname
        if (not isinstance(name, str) or len(name) > 64
                or not _HOSTNAME_RE.match(name)):
            raise exception.InvalidArgument(
                'hostname', name,
                'a host name of at most 64 letters, digits, hyphens, '
                'underscores and dots (labels of 1 to 63 characters, '
                'not starting with a hyphen)')
        wanted.append(File(HOSTNAME_PATH, (name + '\n').encode('ascii'),
                           HOSTNAME_MODE))
    for index, item in enumerate(additions.files or ()):
        what = 'files[%d]' % index
        if not isinstance(item, File):
            raise exception.InvalidArgument(
                what, item, 'an ironic_coreos.engine.merge.File')
        path = item.path
        if (not isinstance(path, str) or not path.startswith('/')
                or path == '/' or posixpath.normpath(path) != path):
            raise exception.InvalidArgument(
                what + '.path', path,
                'an absolute, clean path such as /etc/example.conf (no '
                '"." or ".." parts, no "//", no trailing "/")')
        if not isinstance(item.contents, bytes):
            raise exception.InvalidArgument(
                what + '.contents', type(item.contents).__name__, 'bytes')
        if (isinstance(item.mode, bool) or not isinstance(item.mode, int)
                or not 0 <= item.mode <= 0o7777):
            raise exception.InvalidArgument(
                what + '.mode', item.mode,
                'an integer from 0 to 0o7777, e.g. 0o644 (420)')
        wanted.append(item)

    unique = []
    for item in wanted:
        same = [u for u in unique if u.path == item.path]
        if not same:
            unique.append(item)
        elif same[0] != item:
            raise exception.MergeConflict(
                'Two additions write %s with different contents or modes; '
                'add each path once' % item.path)
    return unique


def _checked_keys(ssh_keys):
    if ssh_keys is None:
        return []
    if isinstance(ssh_keys, str) or not isinstance(ssh_keys, (list, tuple)):
        raise exception.InvalidArgument(
            'ssh_keys', type(ssh_keys).__name__,
            'a list of OpenSSH public keys')
    keys = []
    for index, key in enumerate(ssh_keys):
        if (not isinstance(key, str)
                or ignition.ssh_key_problem(key.strip()) is not None):
            raise exception.InvalidArgument(
                'ssh_keys[%d]' % index, key,
                'an OpenSSH public key on one line, e.g. '
                '"ssh-ed25519 AAAA... comment"')
        key = key.strip()
        if not any(_same_key(key, k) for k in keys):
            keys.append(key)
    return keys


def _same_key(first, second):
    return (ignition.ssh_key_parts(first) or first.strip()) == (
        ignition.ssh_key_parts(second) or second.strip())


def _checked_user(user):
    if not isinstance(user, str) or not _USER_RE.match(user):
        raise exception.InvalidArgument(
            'ssh_user', user,
            'a user name of lower-case letters, digits, "_", "-" and "." '
            '(at most 32 characters), e.g. core')
    return user


def _checked_kargs(kernel_args):
    if kernel_args is None:
        return []
    if (isinstance(kernel_args, str)
            or not isinstance(kernel_args, (list, tuple))):
        raise exception.InvalidArgument(
            'kernel_args', kernel_args,
            'a list of kernel arguments, one per item')
    kargs = []
    for index, karg in enumerate(kernel_args):
        if (not isinstance(karg, str) or not karg.strip()
                or karg != karg.strip() or '\n' in karg):
            raise exception.InvalidArgument(
                'kernel_args[%d]' % index, karg,
                'one non-empty kernel argument without surrounding '
                'spaces or newlines, e.g. "console=ttyS0,115200"')
        if karg not in kargs:
            kargs.append(karg)
    return kargs


# Reading the user's config.


def _declared_version(config, max_version):
    ign = config.get('ignition')
    if not isinstance(ign, dict) or 'version' not in ign:
        raise exception.MergeConflict(
            '$.ignition.version is missing; start the config with '
            '{"ignition": {"version": "%s"}}' % max_version)
    version = ign['version']
    if not isinstance(version, str) or version not in spec.STABLE_VERSIONS:
        raise exception.MergeConflict(
            '$.ignition.version %r is not a supported stable spec version; '
            'use one of %s' % (version, ', '.join(
                v for v in spec.STABLE_VERSIONS
                if spec.at_least(max_version, v))))
    if not spec.at_least(max_version, version):
        raise exception.MergeConflict(
            '$.ignition.version %s is newer than the newest allowed spec '
            'version %s; write the config for spec %s or allow a newer '
            'version' % (version, max_version, max_version))
    return version


def _get(parent, key, path, kind):
    """The value at ``parent[key]`` (empty when absent), type-checked."""
    value = parent.get(key)
    if value is None:
        return {} if kind is dict else []
    if not isinstance(value, kind):
        raise exception.MergeConflict(
            '%s is a %s, expected a JSON %s; fix the config' % (
                path, type(value).__name__,
                'object' if kind is dict else 'array'))
    return value


def _ensure(parent, key, kind):
    """``parent[key]``, created empty when absent or null."""
    if parent.get(key) is None:
        parent[key] = kind()
    return parent[key]


def _decode_data_url(source):
    """Bytes of a data: URL or None if it is not one or does not decode."""
    if not isinstance(source, str) or not source.startswith('data:'):
        return None
    try:
        return ignition.decode_data_url(source)
    except ValueError:
        return None


def file_contents(entry):
    """What an Ignition ``storage.files`` entry writes, when known.

    :param entry: the file entry (a dict).
    :returns: the bytes (after decompression), ``b''`` for an entry
        without contents, or None when they are not known here (a remote
        source, an undecodable ``data:`` URL, an unknown compression).
    """
    return _user_file_bytes(entry)


def _own_hostname(config, wanted):
    """JSON path of the config's own /etc/hostname, if it differs.

    :returns: ``$.storage.files[N]`` or ``$.storage.links[N]`` of a file
        or link the config writes at /etc/hostname and that is not the
        very file of the addition; None otherwise (also when the storage
        section is malformed: the merge itself reports that).
    """
    item = next((f for f in wanted if f.path == HOSTNAME_PATH), None)
    storage = config.get('storage')
    if item is None or not isinstance(storage, dict):
        return None
    for kind in ('files', 'links'):
        entries = storage.get(kind)
        if not isinstance(entries, list):
            continue
        for index, entry in enumerate(entries):
            if not isinstance(entry, dict):
                continue
            path = entry.get('path')
            if not isinstance(path, str) or not path:
                continue
            if posixpath.normpath(path) != HOSTNAME_PATH:
                continue
            if kind == 'files' and _same_file(entry, item):
                return None
            return '$.storage.%s[%d]' % (kind, index)
    return None


def _user_file_bytes(entry):
    """What a user's file entry writes, or None when unknown."""
    contents = entry.get('contents')
    if contents is None:
        return b''
    if not isinstance(contents, dict):
        return None
    if contents.get('source') is None:
        return b''
    data = _decode_data_url(contents.get('source'))
    if data is None:
        return None
    compression = contents.get('compression')
    if compression in (None, ''):
        return data
    if compression != 'gzip':
        return None
    try:
        return gzip.decompress(data)
    except (OSError, EOFError):
        return None


def _owned_by_root(entry):
    for field in ('user', 'group'):
        owner = entry.get(field)
        if owner in (None, {}):
            continue
        if not isinstance(owner, dict):
            return False
        if owner.get('id') not in (None, 0) or owner.get('name') not in (
                None, 'root'):
            return False
    return True


def _same_file(entry, item):
    if entry.get('append'):
        return False
    mode = entry.get('mode')
    if mode is None:
        mode = _DEFAULT_FILE_MODE
    if mode != item.mode or not _owned_by_root(entry):
        return False
    return _user_file_bytes(entry) == item.contents


# Merging.


def _merge_files(config, wanted):
    storage = _get(config, 'storage', '$.storage', dict)
    sections = {}
    for kind in ('files', 'directories', 'links'):
        sections[kind] = _get(storage, kind, '$.storage.' + kind, list)
    present = _check_files(sections, wanted)
    new = [item for index, item in enumerate(wanted)
           if index not in present]
    if not new:
        return
    files = _ensure(_ensure(config, 'storage', dict), 'files', list)
    for item in new:
        files.append({
            'path': item.path,
            'mode': item.mode,
            'contents': {'source': data_url(item.contents)},
        })


def _slash_prefixes(path):
    """Every ``path[:i]`` where ``path[i]`` is a slash."""
    prefixes = []
    index = path.find('/')
    while index >= 0:
        prefixes.append(path[:index])
        index = path.find('/', index + 1)
    return prefixes


def _check_files(sections, wanted):
    """Which additions the config already has; raise on a conflict.

    One pass over the config's entries for all additions together (a
    config may have thousands of entries). The conflict reported is the
    one of the first addition that has any, at its first conflicting
    entry.

    :returns: the set of indexes in ``wanted`` of additions present.
    """
    by_path = {item.path: index for index, item in enumerate(wanted)}
    # {directory-like prefix of an addition's path: [addition indexes]}
    above = {}
    for index, item in enumerate(wanted):
        for prefix in set(_slash_prefixes(item.path)):
            above.setdefault(prefix, []).append(index)
    present = set()
    first = {}
    for kind, entries in sections.items():
        for number, entry in enumerate(entries):
            where = '$.storage.%s[%d]' % (kind, number)
            if not isinstance(entry, dict):
                for index in range(len(wanted)):
                    first.setdefault(index, (
                        '%s is not a JSON object; fix the config' % where))
                continue
            path = entry.get('path')
            if not isinstance(path, str):
                continue
            path = posixpath.normpath(path) if path else path
            index = by_path.get(path)
            if index is not None:
                item = wanted[index]
                if kind == 'files' and _same_file(entry, item):
                    present.add(index)
                else:
                    what = {'files': 'a file with other contents, mode, '
                                     'owner or a remote source',
                            'directories': 'a directory',
                            'links': 'a link'}[kind]
                    first.setdefault(index, (
                        '%s: the config writes %s at %s, where '
                        'ironic-coreos needs to write a file (mode %s); '
                        'remove that entry from the Ignition config, or '
                        'stop ironic-coreos from adding %s'
                        % (where, what, item.path, oct(item.mode),
                           item.path)))
            for prefix in _slash_prefixes(path):
                index = by_path.get(prefix)
                if index is not None:
                    item = wanted[index]
                    first.setdefault(index, (
                        '%s: the config puts %s below %s, where '
                        'ironic-coreos needs to write a file; remove that '
                        'entry or stop ironic-coreos from adding %s'
                        % (where, path, item.path, item.path)))
            if kind in ('files', 'links'):
                for index in above.get(path.rstrip('/'), ()):
                    item = wanted[index]
                    first.setdefault(index, (
                        '%s: the config has a %s at %s, so no file can be '
                        'written at %s below it; remove that entry or stop '
                        'ironic-coreos from adding %s'
                        % (where, 'link' if kind == 'links' else 'file',
                           path, item.path, item.path)))
    for index in range(len(wanted)):
        if index in first:
            raise exception.MergeConflict(first[index])
    return present


def _merge_keys(config, user, keys):
    passwd = _get(config, 'passwd', '$.passwd', dict)
    users = _get(passwd, 'users', '$.passwd.users', list)
    for index, entry in enumerate(users):
        where = '$.passwd.users[%d]' % index
        if not isinstance(entry, dict):
            raise exception.MergeConflict(
                '%s is not a JSON object; fix the config' % where)
        if entry.get('name') != user:
            continue
        if entry.get('shouldExist') is False:
            raise exception.MergeConflict(
                '%s.shouldExist is false for user "%s", so its SSH keys '
                'cannot be added; remove shouldExist or have the keys '
                'added to another user ([coreos]ssh_user)' % (where, user))
        existing = _get(entry, 'sshAuthorizedKeys',
                        where + '.sshAuthorizedKeys', list)
        new = [key for key in keys
               if not any(isinstance(old, str) and _same_key(key, old)
                          for old in existing)]
        if new:
            entry['sshAuthorizedKeys'] = list(existing) + new
        return
    users = _ensure(_ensure(config, 'passwd', dict), 'users', list)
    users.append({'name': user, 'sshAuthorizedKeys': list(keys)})


def _merge_kargs(config, kargs, version, max_version):
    section = _get(config, 'kernelArguments', '$.kernelArguments', dict)
    present = _get(section, 'shouldExist', '$.kernelArguments.shouldExist',
                   list)
    absent = _get(section, 'shouldNotExist',
                  '$.kernelArguments.shouldNotExist', list)
    for index, karg in enumerate(absent):
        if karg in kargs:
            raise exception.MergeConflict(
                '$.kernelArguments.shouldNotExist[%d]: the config removes '
                'the kernel argument %r that ironic-coreos is asked to add; '
                'remove it from shouldNotExist or stop adding it'
                % (index, karg))
    new = [karg for karg in kargs if karg not in present]
    if not new:
        return
    if not spec.at_least(version, KARGS_VERSION):
        if not spec.at_least(max_version, KARGS_VERSION):
            raise exception.MergeConflict(
                '$.ignition.version: kernel arguments (kernelArguments) '
                'need Ignition spec %s or newer, but the newest allowed '
                'spec version is %s; pass them to the installer instead '
                '(append_kargs) or allow spec %s'
                % (KARGS_VERSION, max_version, KARGS_VERSION))
        config['ignition']['version'] = KARGS_VERSION
    section = _ensure(config, 'kernelArguments', dict)
    _ensure(section, 'shouldExist', list).extend(new)
