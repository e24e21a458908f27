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

"""Parse and validate Ignition 3.x configs before anything is installed.

Ignition itself only finds most mistakes at the first boot of the installed
system, and it merely warns about (and ignores) unknown keys and fields of
a newer spec. This validator reports every problem of a config at once,
each with its JSON path, the line in the document when there is one, what
is wrong and what to write instead. It never repeats file contents, key
material or URLs (which may carry credentials) in its messages.

Nothing here imports Ironic or ironic-python-agent.
"""

import base64
import binascii
import collections
import dataclasses
import difflib
import functools
import hashlib
import json
import math
import posixpath
import re
import struct
import threading
import urllib.parse
import zlib

from ironic_coreos.engine import _schema as schema
from ironic_coreos.engine import exception
from ironic_coreos.engine import jsondepth
from ironic_coreos.engine import spec

ERROR = 'error'
WARNING = 'warning'

MAX_VERSION_OPTION = '[coreos]max_ignition_version'
FAIL_ON_WARNINGS_OPTION = '[coreos]fail_on_ignition_warnings'

KEYFILE_DIR = '/etc/NetworkManager/system-connections/'
SYSTEMD_DIR = '/etc/systemd/system/'

# Decimal numbers that read like the octal modes people mean.
OCTAL_LOOKALIKES = (644, 755, 600, 700, 640, 750, 400, 444, 664, 775, 777)

# Labels of the partitions of an installed CoreOS disk.
COREOS_LABELS = ('boot', 'root', 'EFI-SYSTEM')

SSH_KEY_TYPES = (
    'ssh-ed25519', 'ssh-rsa', 'ssh-dss', 'ecdsa-sha2-nistp256',
    'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521',
    'sk-ssh-ed25519@openssh.com', 'sk-ecdsa-sha2-nistp256@openssh.com',
    'ssh-ed25519-cert-v01@openssh.com', 'ssh-rsa-cert-v01@openssh.com',
    'ecdsa-sha2-nistp256-cert-v01@openssh.com',
    'ecdsa-sha2-nistp384-cert-v01@openssh.com',
    'ecdsa-sha2-nistp521-cert-v01@openssh.com',
    'sk-ssh-ed25519-cert-v01@openssh.com',
    'sk-ecdsa-sha2-nistp256-cert-v01@openssh.com',
)

_GUID = re.compile(r'^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-'
                   r'[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$')
_VERSION = re.compile(r'^(\d+)\.(\d+)\.(\d+)(-experimental)?$')
_IDENTIFIER = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*$')
_PATH_STEP = re.compile(r'\.[A-Za-z_][A-Za-z0-9_]*|\[[0-9]+\]'
                        r'|\["(?:[^"\\]|\\.)*"\]')
_YAML_LINE = re.compile(r'^[A-Za-z_][\w.-]*\s*:(\s|$)')
_MAX_INT = 2 ** 63

MAX_CONFIG_SIZE = 8 * 1024 * 1024
"""Largest Ignition config accepted, in bytes of JSON text (characters of
a str). Checked before the config is parsed."""

MAX_DEPTH = 32
"""Deepest nesting of objects and lists accepted (a valid config nests at
most 8 levels)."""
# Longest unit file line systemd (and Ignition's unit parser) accepts.
_UNIT_LINE_MAX = 2047


@dataclasses.dataclass(frozen=True)
class Problem:
    """One thing wrong with a config.

    :ivar path: JSON path of the offending value, e.g.
        ``$.storage.files[2].mode``.
    :ivar message: what is wrong.
    :ivar fix: what to write instead, or None.
    :ivar severity: ``'error'`` or ``'warning'``.
    :ivar line: 1-based line of the value in the document, if known.
    :ivar column: 1-based column of the value in the document, if known.
    """

    path: str
    message: str
    fix: str | None = None
    severity: str = ERROR
    line: int | None = None
    column: int | None = None

    #: Longest path shown in a message; longer ones (a config's own long
    #: keys) keep their start and their end.
    SHOWN_PATH = 200

    def __str__(self):
        where = self.path
        if len(where) > self.SHOWN_PATH:
            half = self.SHOWN_PATH // 2 - 2
            where = '%s...%s' % (where[:half], where[-half:])
        if self.line is not None:
            where = '%s (line %d, column %d)' % (where, self.line,
                                                 self.column or 1)
        text = '%s at %s: %s' % (self.severity, where, self.message)
        if self.fix:
            text = '%s Fix: %s' % (text, self.fix)
        return text

    def as_dict(self):
        """Return the problem as a JSON-serialisable dict."""
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Report:
    """The outcome of validating one config.

    :ivar version: the declared spec version if it is a string, else None.
    :ivar errors: problems that make the config unusable.
    :ivar warnings: problems that probably do not do what the user meant.
    :ivar needs_network: whether Ignition needs the network at first boot
        (a source other than a ``data:`` URL, a Tang server, ...).
    :ivar config: the parsed config, or None if it could not be parsed.
    """

    version: str | None
    errors: list
    warnings: list
    needs_network: bool
    config: dict | None

    @property
    def valid(self):
        """True when there are no errors (warnings are allowed)."""
        return not self.errors

    def summary(self):
        """Describe every problem in one human-readable string.

        :returns: a string, one line per problem; never config contents.
        """
        version = self.version if isinstance(self.version, str) else None
        spec_text = ' (spec %s)' % version if version else ''
        if not self.errors and not self.warnings:
            return 'The Ignition config%s is valid.' % spec_text
        head = ('The Ignition config%s has %d error(s) and %d warning(s):'
                % (spec_text, len(self.errors), len(self.warnings)))
        lines = [head] + ['- %s' % p for p in self.errors + self.warnings]
        return '\n'.join(lines)


def parse(data):
    """Parse an Ignition config.

    :param data: the config as JSON text (str or UTF-8 bytes) or as a dict.
    :returns: the config as a new dict.
    :raises: InvalidIgnition if the data is not a JSON object (with the
        line and column of a syntax error), has duplicate keys, or is
        something else entirely, such as a cloud-config, a shell script or
        a Butane (YAML) config.
    """
    config, text, problems = _load(data)
    problems = _locate(problems, text)
    if problems:
        raise exception.InvalidIgnition(
            '; '.join(str(p) for p in problems), problems)
    return config


def validate(data, max_version=spec.NEWEST_VERSION, install_device=None):
    """Validate an Ignition config.

    :param data: the config as JSON text (str or bytes) or as a dict.
    :param max_version: the newest spec version accepted (the setting
        [coreos]max_ignition_version).
    :param install_device: the disk CoreOS is installed on, if known; a
        config that wipes it is an error.
    :returns: a :class:`Report`; bad input never raises.
    :raises: ValueError if max_version is not a known stable version.
    """
    if max_version not in spec.STABLE_VERSIONS:
        raise ValueError('max_version %r is not one of %s'
                         % (max_version, ', '.join(spec.STABLE_VERSIONS)))
    config, text, problems = _load(data)
    version = None
    needs_network = False
    if config is not None:
        validator = _Validator(config, max_version, install_device)
        validator.run()
        problems.extend(validator.problems)
        version = validator.declared
        needs_network = validator.needs_network
    problems = _locate(problems, text)
    return Report(version=version,
                  errors=[p for p in problems if p.severity == ERROR],
                  warnings=[p for p in problems if p.severity == WARNING],
                  needs_network=needs_network,
                  config=config)


def check(data, max_version=spec.NEWEST_VERSION, fail_on_warnings=False,
          install_device=None):
    """Validate a config and raise if it has errors.

    :param data: the config as JSON text (str or bytes) or as a dict.
    :param max_version: the newest spec version accepted.
    :param fail_on_warnings: treat warnings as errors (the setting
        [coreos]fail_on_ignition_warnings).
    :param install_device: the disk CoreOS is installed on, if known.
    :returns: the :class:`Report` of a usable config.
    :raises: InvalidIgnition carrying every problem when there are errors
        (or warnings, with fail_on_warnings).
    """
    report = validate(data, max_version=max_version,
                      install_device=install_device)
    if report.errors or (fail_on_warnings and report.warnings):
        message = report.summary()
        if not report.errors:
            message = ('%s\nWarnings are treated as errors because %s is '
                       'set.' % (message, FAIL_ON_WARNINGS_OPTION))
        raise exception.InvalidIgnition(message,
                                        report.errors + report.warnings)
    return report


class Verdicts:
    """Remembers which configs :func:`check` found usable.

    A conductor checks the same merged config of one deployment several
    times (in ``prepare``, in the ``deploy`` step and in
    ``install_coreos``); at 1 MiB each check costs a few tenths of a
    second of CPU. :meth:`check` gives the same verdict as :func:`check`
    and runs it only for a config it has not seen usable with the same
    settings: a config is known by the sha256 of its JSON text (of its
    compact, key-order-preserving serialisation for a dict, which is
    what Ignition reads), so a dict and a text, or two texts that differ
    in white space, are checked on their own. Configs with errors are
    never remembered, so every failure is worked out and reported anew.
    Thread-safe; keeps the last ``size`` verdicts, without the config.
    """

    def __init__(self, size=128):
        self.size = size
        self._seen = collections.OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _key(data, max_version, fail_on_warnings, install_device):
        if isinstance(data, dict):
            try:
                text = json.dumps(data, separators=(',', ':'),
                                  allow_nan=False).encode('utf-8')
            except (TypeError, ValueError, RecursionError):
                # Not JSON (a bug of the caller's): check it every time.
                return None
            kind = 'dict'
        elif isinstance(data, str):
            text, kind = data.encode('utf-8', 'surrogatepass'), 'str'
        elif isinstance(data, bytes):
            text, kind = data, 'bytes'
        else:
            return None
        return (kind, hashlib.sha256(text).hexdigest(), max_version,
                bool(fail_on_warnings), install_device)

    def check(self, data, max_version=spec.NEWEST_VERSION,
              fail_on_warnings=False, install_device=None):
        """:func:`check`, remembered for usable configs.

        :returns: the :class:`Report` of a usable config; its ``config``
            is None when the verdict was remembered.
        :raises: InvalidIgnition as :func:`check` does.
        """
        key = self._key(data, max_version, fail_on_warnings, install_device)
        if key is not None:
            with self._lock:
                known = self._seen.get(key)
                if known is not None:
                    self._seen.move_to_end(key)
                    return known
        report = check(data, max_version=max_version,
                       fail_on_warnings=fail_on_warnings,
                       install_device=install_device)
        if key is not None:
            with self._lock:
                self._seen[key] = dataclasses.replace(report, config=None)
                while len(self._seen) > self.size:
                    self._seen.popitem(last=False)
        return report


# Reading the document
#
# NOTE: the standard library's json module parses the document (in C, in
# time linear in its size) and shows duplicate keys to object_pairs_hook.
# What it cannot give is kept here: where a value is (for line and column
# in messages) and the path of a duplicate key, which _scan finds in one
# pass over the text, only when there is a problem to place; and syntax
# errors worded for the people who write configs (a trailing comma, a
# comment, a truncated document) rather than for programmers, which
# _syntax_problem derives from json's error position.

_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[{}\[\],:]')
_WS = re.compile(r'[ \t\n\r]*')
_CONSTANT = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|(-?Infinity|NaN)')


class _NotJSON(Exception):
    """NaN or Infinity, which Python's json reads but JSON does not have."""


def _reject_constant(name):
    raise _NotJSON(name)


def _parse_int(digits):
    """Read a JSON integer.

    Integers of more than 19 digits are out of the range of every Ignition
    field (64-bit) whatever their value; they are read as +-2**63, which
    the shape check reports as out of range at their path. Python refuses
    to convert integers of more than 4,300 digits at all.
    """
    if len(digits) <= 20:
        return int(digits)
    return -_MAX_INT if digits.startswith('-') else _MAX_INT


def _child(path, key):
    """JSON path of member ``key`` of the object at ``path``."""
    if len(key) <= 64:
        return path + _step(key)
    if _IDENTIFIER.match(key):
        return '%s.%s' % (path, key)
    return '%s[%s]' % (path, json.dumps(key))


@functools.lru_cache(maxsize=1024)
def _step(key):
    """The JSON path step to member ``key`` (a short key)."""
    if _IDENTIFIER.match(key):
        return '.' + key
    return '[%s]' % json.dumps(key)


def _shorten(text, limit=40):
    """A key or name cut to ``limit`` characters for a message."""
    text = str(text)
    if len(text) > limit:
        text = text[:limit - 3] + '...'
    return text


def _show(text, limit=40):
    """A short quoted rendering of a key or name (never of contents)."""
    return json.dumps(_shorten(text, limit))


def _scan(text, wanted=None):
    """Find where values start in well-formed JSON text, in one pass.

    :param text: JSON text that json.loads accepted.
    :param wanted: the JSON paths to find, with all their ancestors (the
        scan skips everything else); None for every path and duplicate
        keys.
    :returns: a tuple ({path: offset}, [(path, offset) of each repeated
        key]). Members are found at their key, the start of the line a
        reader looks for; array items at their first character. A path
        present twice (a repeated key) is found at its first occurrence.
    """
    found = {}
    duplicates = []
    # One frame per open container: [path, is object, item index, keys]
    stack = []
    expect_key = False
    skip = 0
    pending = '$'
    found['$'] = _WS.match(text).end()
    for match in _TOKEN.finditer(text):
        char = text[match.start()]
        if skip:
            if char in '{[':
                skip += 1
            elif char in '}]':
                skip -= 1
            continue
        if char == '"':
            if not expect_key:
                continue
            token = match.group()
            key = json.loads(token) if '\\' in token else token[1:-1]
            frame = stack[-1]
            pending = _child(frame[0], key)
            if wanted is None:
                if key in frame[3]:
                    duplicates.append((pending, match.start()))
                frame[3].add(key)
            if pending not in found and (wanted is None
                                         or pending in wanted):
                found[pending] = match.start()
            expect_key = False
        elif char in '{[':
            if wanted is not None and pending not in wanted:
                skip = 1
                continue
            if char == '{':
                stack.append([pending, True, 0, set()])
                expect_key = True
                continue
            stack.append([pending, False, 0, None])
            start = _WS.match(text, match.end()).end()
            if text[start] != ']':
                pending = '%s[0]' % stack[-1][0]
                if pending not in found:
                    found[pending] = start
        elif char == ',':
            frame = stack[-1]
            if frame[1]:
                expect_key = True
                continue
            frame[2] += 1
            pending = '%s[%d]' % (frame[0], frame[2])
            if pending not in found and (wanted is None
                                         or pending in wanted):
                found[pending] = _WS.match(text, match.end()).end()
        elif char in '}]':
            stack.pop()
            expect_key = False
    return found, duplicates


def _lines_and_columns(text, offsets):
    """1-based (line, column) of each offset, in one pass over the text.

    :returns: {offset: (line, column)}.
    """
    result = {}
    line = 1
    line_start = 0
    previous = 0
    for offset in sorted(set(offsets)):
        newlines = text.count('\n', previous, offset)
        if newlines:
            line += newlines
            line_start = text.rfind('\n', previous, offset) + 1
        result[offset] = (line, offset - line_start + 1)
        previous = offset
    return result


def _innermost(text, pos):
    """The bracket that closes the innermost container open at ``pos``."""
    closers = []
    for match in _TOKEN.finditer(text, 0, pos):
        char = text[match.start()]
        if char in '{[':
            closers.append('}' if char == '{' else ']')
        elif char in '}]' and closers:
            closers.pop()
    return closers[-1] if closers else '}'


def _previous_char(text, pos):
    stripped = text[:pos].rstrip(' \t\n\r')
    return stripped[-1:] if stripped else ''


def _syntax_problem(text, msg, pos):
    """A Problem for a JSON syntax error json reported at ``pos``."""
    truncated = ('the document ends early (truncated JSON)',
                 'complete the JSON document')
    char = text[pos] if pos < len(text) else ''
    if msg.startswith(('Unterminated string', 'Invalid control',
                       'Invalid \\')):
        message, fix = ('invalid string: %s' % msg,
                        'close the string with a double quote and escape '
                        'control characters')
    elif msg == 'Extra data':
        message, fix = ('unexpected data after the end of the JSON '
                        'document', 'remove everything after the closing '
                        '"}"')
    elif not char:
        message, fix = truncated
    elif char in '/#':
        message, fix = 'comments are not allowed in JSON', 'remove the comment'
    elif msg.startswith('Expecting property name'):
        if char == '}' and _previous_char(text, pos) == ',':
            message, fix = ('trailing comma before "}"',
                            'remove the last comma')
        else:
            message, fix = ('expected a key in double quotes',
                            'quote every key: "key": value')
    elif msg.startswith("Expecting ':'"):
        message, fix = 'expected ":" after the key', 'write "key": value'
    elif msg.startswith("Expecting ','"):
        message, fix = ('expected "," or "%s"' % _innermost(text, pos),
                        'separate items with commas and close every '
                        'bracket')
    elif char == ']' and _previous_char(text, pos) == ',':
        message, fix = 'trailing comma before "]"', 'remove the last comma'
    else:
        message, fix = ('unexpected character %s' % json.dumps(char),
                        'write a JSON value here')
    line, column = _lines_and_columns(text, [pos])[pos]
    return Problem('$', 'invalid JSON: %s' % message, fix, ERROR, line,
                   column)


def _decode(data):
    """Turn bytes into text, or return a Problem."""
    if data[:2] == b'\x1f\x8b':
        return None, Problem(
            '$', 'the config is gzip-compressed, not JSON text',
            'decompress it (gunzip) before passing it')
    try:
        return data.decode('utf-8-sig'), None
    except UnicodeDecodeError as exc:
        return None, Problem(
            '$', 'the config is not UTF-8 text (invalid byte at offset %d)'
            % exc.start, 'pass the Ignition config as UTF-8 JSON text')


def _first_line(text):
    return re.match(r'[^\r\n]*', text).group()


def _sniff(text):
    """Recognise well-known things that are not Ignition configs."""
    stripped = text.lstrip()
    if not stripped:
        return Problem('$', 'the config is empty',
                       'pass an Ignition config such as {"ignition": '
                       '{"version": "%s"}}' % spec.NEWEST_VERSION)
    first = _first_line(stripped).strip().lower()
    if first.startswith('#cloud-config'):
        return Problem('$', 'this is a cloud-config, not an Ignition config; '
                       'CoreOS does not run cloud-init',
                       'write the configuration as a Butane config and '
                       'translate it to Ignition JSON with butane')
    if first.startswith('#!'):
        return Problem('$', 'this is a script, not an Ignition config',
                       'ship the script as a file (storage.files) and run '
                       'it from a systemd unit')
    if first.startswith('content-type:') or first.startswith('mime-version'):
        return Problem('$', 'this is MIME multi-part user data for '
                       'cloud-init, not an Ignition config',
                       'pass a single Ignition JSON config')
    return None


def _sniff_yaml(text):
    lines = [ln for ln in text.splitlines()
             if ln.strip() and not ln.lstrip().startswith('#')]
    if not lines or not _YAML_LINE.match(lines[0]):
        return None
    if any(re.match(r'^variant\s*:', ln) for ln in lines):
        return Problem('$', 'this is a Butane config (YAML), not an '
                       'Ignition config (JSON)',
                       'translate it with: butane --strict < config.bu > '
                       'config.ign')
    return Problem('$', 'this is YAML, not an Ignition config (JSON)',
                   'write the config as Butane YAML and translate it with '
                   'butane, or write Ignition JSON')


def _too_big(size):
    return Problem('$', 'the config is %d bytes long; the limit is %d bytes '
                   '(%d MiB)' % (size, MAX_CONFIG_SIZE,
                                 MAX_CONFIG_SIZE // (1024 * 1024)),
                   'fetch large contents from a URL at first boot '
                   '(contents.source with a verification hash) instead of '
                   'embedding them')


def _too_deep(path):
    return Problem(path, 'the JSON is nested too deeply: objects and lists '
                   'more than %d levels deep' % MAX_DEPTH,
                   'Ignition configs nest at most 8 levels; remove the '
                   'extra nesting')


def _nesting_problem(config):
    """A Problem when ``config`` nests deeper than MAX_DEPTH, else None."""
    level = [config]
    for _depth in range(MAX_DEPTH):
        level = [item for value in level
                 for item in (value.values() if isinstance(value, dict)
                              else value)
                 if isinstance(item, (dict, list))]
        if not level:
            return None
    # Too deep: name the first place (in document order) that is.
    stack = [(config, '$', 1)]
    while stack:
        value, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            return _too_deep(path)
        if isinstance(value, dict):
            items = [(_child(path, k), v) for k, v in value.items()]
        else:
            items = [('%s[%d]' % (path, i), v) for i, v in enumerate(value)]
        stack.extend((item, item_path, depth + 1)
                     for item_path, item in reversed(items)
                     if isinstance(item, (dict, list)))
    return None


def _plain(data):
    """Copy a dict that json.dumps refused, or say what is not JSON.

    :returns: (copy or None, Problem or None).
    """
    root = {}
    # (source, copy, path, depth)
    stack = [(data, root, '$', 1)]
    while stack:
        source, target, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            return None, _too_deep(path)
        if isinstance(source, dict):
            items = []
            for key, item in source.items():
                if not isinstance(key, str):
                    try:
                        key = json.dumps(key, allow_nan=False)
                    except (TypeError, ValueError):
                        return None, Problem(
                            path, 'a key of this object is a %s, which '
                            'JSON cannot hold' % type(key).__name__,
                            'use text keys')
                items.append((key, _child(path, key), item))
        else:
            items = [(index, '%s[%d]' % (path, index), item)
                     for index, item in enumerate(source)]
        for key, item_path, item in items:
            if isinstance(item, dict):
                target[key] = {}
            elif isinstance(item, (list, tuple)):
                target[key] = [None] * len(item)
            elif item is None or isinstance(item, (str, bool)):
                target[key] = item
                continue
            elif isinstance(item, int):
                target[key] = (item if -_MAX_INT < item < _MAX_INT
                               else _MAX_INT if item > 0 else -_MAX_INT)
                continue
            elif isinstance(item, float) and math.isfinite(item):
                target[key] = item
                continue
            else:
                return None, Problem(
                    item_path, 'the value is a %s, which is not JSON'
                    % ('non-finite number' if isinstance(item, float)
                       else type(item).__name__),
                    'pass only JSON types: dict, list, str, int, float, '
                    'bool and None')
            stack.append((item, target[key], item_path, depth + 1))
    return root, None


def _load_dict(data):
    # NOTE(coreos): json.dumps recurses in C: measure the depth first.
    if jsondepth.value_deeper_than(data, MAX_DEPTH):
        return None, None, [_nesting_problem(data)]
    try:
        text = json.dumps(data, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        config, problem = _plain(data)
        if problem:
            return None, None, [problem]
    else:
        if len(text) > MAX_CONFIG_SIZE:
            return None, None, [_too_big(len(text))]
        # A round trip copies the dict and proves it is plain JSON.
        config = json.loads(text, parse_int=_parse_int)
    problem = _nesting_problem(config)
    if problem:
        return None, None, [problem]
    return config, None, []


def _load(data):
    """Read a config.

    :returns: (config dict or None, its JSON text when given as text,
        list of problems)
    """
    if isinstance(data, dict):
        return _load_dict(data)
    if isinstance(data, (bytes, bytearray)):
        if len(data) > MAX_CONFIG_SIZE:
            return None, None, [_too_big(len(data))]
        text, problem = _decode(bytes(data))
        if problem:
            return None, None, [problem]
    elif isinstance(data, str):
        # A character is at least one byte of UTF-8.
        if len(data) > MAX_CONFIG_SIZE:
            return None, None, [_too_big(len(data))]
        text = data.lstrip('\ufeff')
    else:
        return None, None, [Problem(
            '$', 'the config is %s, not JSON text or an object'
            % _value_name(data), 'pass the config as JSON text')]
    problem = _sniff(text)
    if problem:
        return None, None, [problem]
    # NOTE(coreos): json.loads recurses in C and overflows the small stacks
    # of Ironic's threads long before Python's recursion limit.
    if jsondepth.text_deeper_than(text, MAX_DEPTH):
        return None, None, [_too_deep('$')]
    repeated = []

    def pairs(items):
        result = dict(items)
        if len(result) != len(items):
            repeated.append(True)
        return result

    try:
        value = json.loads(text, object_pairs_hook=pairs,
                           parse_int=_parse_int,
                           parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        problem = _sniff_yaml(text)
        return None, None, [problem or _syntax_problem(text, exc.msg,
                                                       exc.pos)]
    except _NotJSON as exc:
        match = next(m for m in _CONSTANT.finditer(text) if m.group(1))
        line, column = _lines_and_columns(text, [match.start()])[
            match.start()]
        return None, None, [Problem(
            '$', 'invalid JSON: %s is not a JSON value' % exc.args[0],
            'write a number', ERROR, line, column)]
    except RecursionError:
        return None, None, [_too_deep('$')]
    if not isinstance(value, dict):
        kind = {list: 'an array', str: 'a string', type(None): 'null',
                bool: 'a boolean'}.get(type(value), 'a number')
        return None, None, [Problem(
            '$', 'the config is %s, not a JSON object' % kind,
            'write an object: {"ignition": {"version": "%s"}, ...}'
            % spec.NEWEST_VERSION, ERROR, 1, 1)]
    problem = _nesting_problem(value)
    if problem:
        return None, text, [problem]
    problems = []
    if repeated:
        _found, duplicates = _scan(text)
        places = _lines_and_columns(text, [pos for _p, pos in duplicates])
        for path, pos in duplicates:
            line, column = places[pos]
            problems.append(Problem(
                path, 'duplicate key: it is already set earlier in the '
                'same object', 'keep a single %s key and merge the values'
                % path.rsplit('.', 1)[-1], ERROR, line, column))
    return value, text, problems


def _ancestors(path):
    """``path`` and the paths of the values containing it, innermost first."""
    ends = []
    pos = 1
    while pos < len(path):
        match = _PATH_STEP.match(path, pos)
        if not match:
            break
        pos = match.end()
        ends.append(pos)
    result = [path[:end] for end in reversed(ends)]
    if not result or result[0] != path:
        result.insert(0, path)
    if result[-1] != '$':
        result.append('$')
    return result


def _locate(problems, text):
    """Add line and column to problems, then order them as in the text.

    Positions are searched for only when there are problems to place.
    """
    unplaced = [p for p in problems if p.line is None]
    if text is not None and unplaced:
        wanted = set()
        for problem in unplaced:
            wanted.update(_ancestors(problem.path))
        found, _duplicates = _scan(text, wanted)
        places = _lines_and_columns(text, found.values())
        located = []
        for problem in problems:
            if problem.line is None:
                for path in _ancestors(problem.path):
                    if path in found:
                        line, column = places[found[path]]
                        problem = dataclasses.replace(
                            problem, line=line, column=column)
                        break
            located.append(problem)
        problems = located
    return sorted(problems, key=lambda p: (p.line is None, p.line or 0,
                                           p.column or 0))


# Small helpers for values whose type may be wrong (the shape check has
# already reported those; semantic checks just skip them).


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _get(obj, key, kind):
    if not isinstance(obj, dict):
        return None
    value = obj.get(key)
    if kind is int:
        return value if _is_int(value) else None
    return value if isinstance(value, kind) else None


def _items(obj, key, path):
    """(json path, item) of the dicts in list ``obj[key]``."""
    value = _get(obj, key, list) or []
    base = _child(path, key)
    return [('%s[%d]' % (base, i), item) for i, item in enumerate(value)
            if isinstance(item, dict)]


def _clean_path(path):
    cleaned = posixpath.normpath('/' + path)
    return '/' + cleaned.lstrip('/')


def _gunzips(data):
    decompressor = zlib.decompressobj(zlib.MAX_WBITS | 16)
    try:
        pending = data
        while pending and not decompressor.eof:
            decompressor.decompress(pending, 1 << 20)
            pending = decompressor.unconsumed_tail
    except zlib.error:
        return False
    return decompressor.eof


def _parse_unit(contents):
    """Check systemd unit syntax.

    :returns: (set of section names, list of (line number, message)).
    """
    sections = set()
    problems = []
    current = None
    continued = False
    for number, raw in enumerate(contents.split('\n'), 1):
        line = raw.strip()
        if len(raw.encode('utf-8', 'replace')) > _UNIT_LINE_MAX:
            problems.append((number, 'the line is longer than %d bytes'
                             % _UNIT_LINE_MAX))
        if continued:
            continued = line.endswith('\\')
            continue
        if not line or line[0] in '#;':
            continue
        if line.startswith('['):
            end = line.find(']')
            if end < 0:
                problems.append((number, 'a section header has no '
                                 'closing "]"'))
            elif end != len(line) - 1:
                problems.append((number, 'text after the "]" of a '
                                 'section header'))
                current = line[1:end]
            elif end == 1:
                problems.append((number, 'empty section name'))
            else:
                current = line[1:end]
                sections.add(current)
            continue
        key = line.split('=', 1)[0].strip()
        if '=' not in line:
            problems.append((number, 'not a [Section] header, a comment '
                             'or a Key=Value setting'))
        elif not key:
            problems.append((number, 'a setting without a key'))
        elif current is None:
            problems.append((number, 'a setting before the first '
                             '[Section] header'))
        continued = line.endswith('\\')
    return sections, problems


def _parse_ssh_key(key):
    """Parse an authorized_keys entry.

    Options before the key type (``from="..." ssh-ed25519 AAAA...``) are
    allowed; the key data must be base64 and name the same key type.

    :returns: ``(problem, None)`` saying what is wrong (never the key's
        text), or ``(None, (key type, base64 key data))``.
    """
    if not key.strip():
        return 'is empty', None
    if '\n' in key.strip() or '\r' in key:
        return 'contains a line break (one list item per key)', None
    if 'PRIVATE KEY' in key:
        return ('is a PRIVATE key; only the public key (the .pub file) '
                'belongs here, and this private key should be replaced',
                None)
    tokens = key.split()
    for index, token in enumerate(tokens):
        if token in SSH_KEY_TYPES:
            break
    else:
        return ('does not name an OpenSSH key type such as ssh-ed25519, '
                'ssh-rsa or ecdsa-sha2-nistp256', None)
    if index + 1 >= len(tokens):
        return 'has no key data after the key type', None
    data = tokens[index + 1]
    try:
        blob = base64.b64decode(data, validate=True)
        length = struct.unpack('>I', blob[:4])[0]
        embedded = blob[4:4 + length].decode('ascii')
    except (ValueError, struct.error):
        # binascii.Error, UnicodeDecodeError and non-ASCII text are
        # ValueErrors.
        return 'has key data that is not a base64 OpenSSH public key', None
    if embedded != token:
        return 'has key data that does not match its key type', None
    return None, (token, data)


_DATA_URL_NO_COMMA = 'the data: URL has no "," before its data'
_DATA_URL_BAD_BASE64 = ('the data: URL is marked ;base64 but its data is '
                        'not valid (padded) base64')
_DATA_URL_FIXES = {
    _DATA_URL_NO_COMMA: ('write data:,<percent-encoded text> or '
                         'data:;base64,<base64>'),
    _DATA_URL_BAD_BASE64: ('encode the contents with base64 (e.g. '
                           'base64 -w0)'),
}


def decode_data_url(url):
    """The bytes of a ``data:`` URL, decoded the way Ignition does.

    :param url: a URL starting with ``data:``.
    :returns: the decoded bytes.
    :raises: ValueError saying what is wrong (never the data).
    """
    header, comma, payload = url[len('data:'):].partition(',')
    if not comma:
        raise ValueError(_DATA_URL_NO_COMMA)
    try:
        data = urllib.parse.unquote_to_bytes(payload)
    except UnicodeEncodeError:
        # A lone surrogate (JSON's "\ud800"): Ignition's JSON decoder
        # reads it as U+FFFD, the replacement character.
        data = urllib.parse.unquote_to_bytes(''.join(
            '\ufffd' if 0xd800 <= ord(c) <= 0xdfff else c for c in payload))
    if not header.lower().endswith(';base64'):
        return data
    try:
        return base64.b64decode(data.replace(b'\r', b'').replace(b'\n', b''),
                                validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(_DATA_URL_BAD_BASE64) from None


def ssh_key_problem(key):
    """Say what is wrong with an authorized_keys entry, never its text.

    :param key: one entry of ``sshAuthorizedKeys``.
    :returns: a phrase describing the problem, or None for a good key.
    """
    return _parse_ssh_key(key)[0]


def ssh_key_parts(key):
    """The key type and base64 key data of a good authorized_keys entry.

    Two entries with the same parts are the same key, whatever their
    options and comments.

    :param key: one entry of ``sshAuthorizedKeys``.
    :returns: ``(key type, base64 key data)``, or None for a bad entry.
    """
    return _parse_ssh_key(key)[1]


# The validator


class _Validator:
    """Checks one parsed config; collects problems in ``self.problems``."""

    def __init__(self, config, max_version, install_device):
        self.config = config
        self.max_version = max_version
        self.install_device = install_device
        self.problems = []
        self.needs_network = False
        self.declared = None
        self.version = None
        # {spec version: whether the declared version has it}
        self._since = {}

    def error(self, path, message, fix=None):
        self.problems.append(Problem(path, message, fix, ERROR))

    def warn(self, path, message, fix=None):
        self.problems.append(Problem(path, message, fix, WARNING))

    def since(self, version):
        known = self._since.get(version)
        if known is None:
            known = self._since[version] = spec.at_least(self.version,
                                                         version)
        return known

    def run(self):
        self.version = self._check_version()
        if self.version is None:
            return
        self._check_shape(self.config, schema.CONFIG, '$')
        self._check_ignition()
        storage = _get(self.config, 'storage', dict) or {}
        self._check_disks(storage)
        self._check_raid(storage)
        self._check_filesystems(storage)
        if self.since(schema.V32):
            self._check_luks(storage)
        nodes = self._check_nodes(storage)
        units = self._check_units()
        self._check_node_conflicts(nodes, units)
        self._check_passwd()
        if self.since(schema.V33):
            self._check_kernel_arguments()

    # Version

    def _check_version(self):
        """Return the usable declared version or None."""
        example = '"ignition": {"version": "%s"}' % self.max_version
        if 'ignition' not in self.config:
            self.error('$', 'the required "ignition" section is missing',
                       'add %s' % example)
            return None
        section = self.config['ignition']
        if not isinstance(section, dict):
            self.error('$.ignition', '"ignition" must be an object',
                       'write %s' % example)
            return None
        if section.get('version') is None:
            self.error('$.ignition.version', 'the required spec version is '
                       'missing', 'add "version": "%s"' % self.max_version)
            return None
        version = section['version']
        if not isinstance(version, str):
            self.error('$.ignition.version', 'the version must be a string '
                       'of the form "X.Y.Z", not a %s' % (
                           'number' if _is_int(version) or isinstance(
                               version, float) else type(version).__name__),
                       'write "version": "%s" (in quotes)'
                       % _version_guess(version, self.max_version))
            return None
        self.declared = version
        return self._check_version_string(version)

    def _check_version_string(self, version):
        path = '$.ignition.version'
        match = _VERSION.match(version)
        newest = self.max_version
        if not match:
            self.error(path, 'version %s is not of the form X.Y.Z'
                       % _show(version),
                       'write "%s"' % _version_guess(version, newest))
            return None
        # A matching version may still be long (digits without end).
        shown = _shorten(version)
        if match.group(1) in ('1', '2'):
            self.error(path, 'spec %s is the Ignition %s.x format, which '
                       'CoreOS (Ignition spec 3) no longer reads'
                       % (shown, match.group(1)),
                       'write the config with Butane (variant fcos or '
                       'rhcos) and translate it to spec 3, or convert it '
                       'with ign-converter')
            return None
        if match.group(4):
            self.error(path, 'experimental spec %s is not accepted: each '
                       'Ignition release reads only its own experimental '
                       'version, which changes without notice' % shown,
                       'use a stable version up to %s' % newest)
            return None
        if version not in spec.STABLE_VERSIONS:
            self.error(path, 'unknown spec version %s; known stable '
                       'versions are %s' % (shown,
                                            ', '.join(spec.STABLE_VERSIONS)),
                       'declare a stable version up to %s' % newest)
            return None
        if not spec.at_least(newest, version):
            self.error(path, 'spec %s is newer than %s, the newest this '
                       'deployment accepts (%s)'
                       % (shown, newest, MAX_VERSION_OPTION),
                       'produce a %s or older config (e.g. an older Butane '
                       'variant version), or raise %s if the CoreOS release '
                       'being installed reads spec %s'
                       % (newest, MAX_VERSION_OPTION, shown))
        return version

    # Shape: types, unknown keys, keys of newer specs

    def _check_shape(self, value, kind, path):
        """Check types, unknown keys and keys of newer specs.

        Scalars are checked in the loop of their object or list, and JSON
        paths are built only for containers and for problems: this runs
        for every value of the config.
        """
        if value is None:
            return
        if isinstance(kind, dict):
            if not isinstance(value, dict):
                self._wrong_type(path, value, kind)
                return
            for key, item in value.items():
                entry = kind.get(key)
                if entry is None:
                    self._unknown_key(_child(path, key), key, kind)
                    continue
                item_kind, since = entry
                if not self.since(since):
                    self._too_new(_child(path, key), key, since)
                elif item is None:
                    continue
                elif isinstance(item_kind, str):
                    if not _has_scalar_type(item, item_kind):
                        self._wrong_type(_child(path, key), item, item_kind)
                else:
                    self._check_shape(item, item_kind, _child(path, key))
        elif isinstance(kind, list):
            if not isinstance(value, list):
                self._wrong_type(path, value, kind)
                return
            item_kind = kind[0]
            scalar = isinstance(item_kind, str)
            for index, item in enumerate(value):
                if item is None:
                    self.error('%s[%d]' % (path, index), 'a list item '
                               'cannot be null', 'remove the null item')
                elif not scalar:
                    self._check_shape(item, item_kind,
                                      '%s[%d]' % (path, index))
                elif not _has_scalar_type(item, item_kind):
                    self._wrong_type('%s[%d]' % (path, index), item,
                                     item_kind)
        elif not _has_scalar_type(value, kind):
            self._wrong_type(path, value, kind)

    def _wrong_type(self, path, value, kind):
        if kind == schema.INTEGER and _is_int(value):
            self.error(path, 'the number is out of range',
                       'write a smaller integer')
            return
        expected = _type_name(kind)
        fix = 'write %s' % expected
        if kind == schema.INTEGER and path.endswith('.mode'):
            fix = ('write the mode as a decimal integer without quotes, '
                   'e.g. 420 for 0o644 or 493 for 0o755')
        elif kind == schema.INTEGER:
            fix = 'write %s without quotes' % expected
        elif isinstance(kind, list) and _has_type(value, kind[0]):
            fix = 'wrap the value in a list: [ ... ]'
        elif kind == schema.BOOLEAN:
            fix = 'write true or false without quotes'
        self.error(path, 'expected %s, got %s' % (expected,
                                                  _value_name(value)), fix)

    def _unknown_key(self, path, key, table):
        known = sorted(k for k, (_kind, since) in table.items()
                       if self.since(since))
        lowered = {k.lower(): k for k in known}
        guess = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        if key.lower() in lowered:
            guess = [lowered[key.lower()]]
        if guess:
            fix = 'did you mean "%s"?' % guess[0]
        else:
            fix = 'remove it; the keys known here are %s' % ', '.join(
                known)
        self.error(path, 'unknown key %s (Ignition would ignore it)'
                   % _show(key), fix)

    def _too_new(self, path, key, since):
        if spec.at_least(self.max_version, since):
            fix = ('declare "version": "%s" or newer, or remove %s'
                   % (since, _show(key)))
        else:
            fix = ('remove %s: the newest accepted spec (%s) lacks it'
                   % (_show(key), self.max_version))
        self.error(path, '%s was introduced in spec %s, but the config '
                   'declares %s, so Ignition would ignore it'
                   % (_show(key), since, self.version), fix)

    # Sources

    def _check_resource(self, path, resource, source_required):
        """Check a resource (contents, merge, CA, key file...)."""
        if not isinstance(resource, dict):
            if source_required:
                self.error(_child(path, 'source'), 'a source is required',
                           'add "source": "<URL>"')
            return
        source = _get(resource, 'source', str)
        scheme = data = None
        if source:
            scheme, data = self._check_url(_child(path, 'source'), source)
        elif source_required:
            self.error(_child(path, 'source'), 'a source is required',
                       'add "source": "<URL>"')
        compression = _get(resource, 'compression', str)
        if compression not in (None, '', 'gzip'):
            self.error(_child(path, 'compression'),
                       'unknown compression %s; Ignition only knows gzip'
                       % _show(compression),
                       'write "compression": "gzip" for gzip-compressed '
                       'data, or remove it')
        elif compression == 'gzip' and data is not None and not _gunzips(
                data):
            self.error(_child(path, 'compression'),
                       'compression is gzip but the data: URL does not '
                       'hold gzip data', 'gzip the data before encoding it '
                       'or remove "compression"')
        self._check_verification(path, resource, source)
        self._check_headers(path, resource, scheme)

    def _check_url(self, path, url):
        """Check a source URL.

        :returns: (scheme or None, decoded bytes of a data: URL or None)
        """
        if url[:5].lower() == 'data:' and url[5:7] != '//':
            # What urlsplit would say, without its cost for every file.
            scheme = 'data'
        else:
            try:
                parsed = urllib.parse.urlsplit(url)
            except ValueError:
                self.error(path, 'the URL cannot be parsed',
                           'write a valid absolute URL')
                return None, None
            scheme = parsed.scheme.lower()
        if not scheme:
            self.error(path, 'the URL is relative (it has no scheme)',
                       'write an absolute URL such as https://host/file or '
                       'data:,<percent-encoded text>')
            return None, None
        if scheme not in schema.URL_SCHEMES:
            self.error(path, 'URL scheme %s is not supported' % _show(scheme),
                       'use one of: %s' % self._schemes())
            return None, None
        since = schema.URL_SCHEMES[scheme]
        if not self.since(since):
            self.error(path, '%s URLs need spec %s or newer (declared %s)'
                       % (scheme, since, self.version),
                       'declare "version": "%s" or newer, or use one of: %s'
                       % (since, self._schemes()))
            return scheme, None
        if scheme == 'data':
            return scheme, self._decode_data_url(path, url)
        self.needs_network = True
        if scheme == 'arn':
            if not re.match(r'^arn:[^:]+:s3:', url):
                self.error(path, 'an arn: source must be the ARN of an S3 '
                           'object', 'write arn:aws:s3:::bucket/key')
        elif not parsed.netloc:
            self.error(path, 'the %s URL has no host' % scheme,
                       'write %s://host/path' % scheme)
        return scheme, None

    def _schemes(self):
        return ', '.join(s for s, since in schema.URL_SCHEMES.items()
                         if self.since(since))

    def _decode_data_url(self, path, url):
        try:
            return decode_data_url(url)
        except ValueError as exc:
            self.error(path, str(exc), _DATA_URL_FIXES[str(exc)])
            return None

    def _check_verification(self, path, resource, source):
        verification = _get(resource, 'verification', dict)
        value = _get(verification, 'hash', str)
        if value is None:
            return
        hash_path = '%s.verification.hash' % path
        if not source:
            self.error(hash_path, 'a verification hash without a source',
                       'add the "source" the hash is for, or remove '
                       '"verification"')
        functions = ', '.join('%s-<%d hex digits>' % (name, size)
                              for name, (size, since)
                              in schema.HASH_FUNCTIONS.items()
                              if self.since(since))
        function, _dash, digest = value.partition('-')
        known = schema.HASH_FUNCTIONS.get(function)
        if known is None or not self.since(known[1]):
            self.error(hash_path, 'hash function %s is not supported in spec '
                       '%s' % (_show(function), self.version),
                       'write %s' % functions)
        elif (len(digest) != known[0]
              or not re.match(r'^[0-9a-fA-F]*$', digest)):
            self.error(hash_path, 'a %s hash has %d hex digits, got %d '
                       'characters' % (function, known[0], len(digest)),
                       'write %s-<%d hex digits>' % (function, known[0]))

    def _check_headers(self, path, resource, scheme):
        names = set()
        for header_path, header in _items(resource, 'httpHeaders', path):
            name = _get(header, 'name', str)
            if not name:
                self.error(_child(header_path, 'name'),
                           'an HTTP header needs a name',
                           'add "name": "<Header-Name>"')
            elif name in names:
                self.error(header_path, 'HTTP header %s is set twice'
                           % _show(name), 'keep one entry per header')
            names.add(name)
        if _get(resource, 'httpHeaders', list) and scheme not in (
                'http', 'https'):
            self.error(_child(path, 'httpHeaders'), 'HTTP headers are only '
                       'used with http and https sources, not %s'
                       % (scheme or 'a missing or invalid source'),
                       'remove "httpHeaders" or use an http(s) source')

    # ignition section

    def _check_ignition(self):
        section = self.config['ignition']
        path = '$.ignition'
        config = _get(section, 'config', dict)
        for item_path, item in _items(config, 'merge', '$.ignition.config'):
            self._check_resource(item_path, item, True)
        self._no_duplicates(config, 'merge', '$.ignition.config', 'source',
                            'merged config source')
        replace = _get(config, 'replace', dict)
        if replace:
            # An empty replace object means "no replacement".
            self._check_resource('$.ignition.config.replace', replace,
                                 any(v is not None
                                     for v in replace.values()))
        tls = _get(_get(section, 'security', dict), 'tls', dict)
        for item_path, item in _items(tls, 'certificateAuthorities',
                                      '$.ignition.security.tls'):
            self._check_resource(item_path, item, True)
        self._no_duplicates(tls, 'certificateAuthorities',
                            '$.ignition.security.tls', 'source',
                            'certificate authority source')
        proxy = _get(section, 'proxy', dict)
        self._no_duplicates(proxy, 'noProxy', '$.ignition.proxy', None,
                            'noProxy entry')
        for key in ('httpProxy', 'httpsProxy'):
            value = _get(proxy, key, str)
            if value is not None and _scheme(value) not in (
                    'http', 'https'):
                self.error('%s.proxy.%s' % (path, key), 'a proxy must be an '
                           'http:// or https:// URL',
                           'write http://proxy.example.com:3128')

    # storage

    def _check_disks(self, storage):
        devices = {}
        for path, disk in _items(storage, 'disks', '$.storage'):
            device = _get(disk, 'device', str)
            if not device:
                self.error(_child(path, 'device'), 'a disk needs a device',
                           'add "device": "/dev/disk/by-id/..."')
            else:
                self._check_abs_path(_child(path, 'device'), device,
                                     '/dev/')
                if device in devices:
                    self.error(path, 'disk %s is already configured at %s'
                               % (_show(device), devices[device]),
                               'merge both entries into one')
                devices.setdefault(device, path)
            if disk.get('wipeTable') is True and device:
                target = self._protected(device, None)
                if target:
                    self.error(_child(path, 'wipeTable'), 'wipeTable would '
                               'erase the partition table of %s at first '
                               'boot, destroying the installed system'
                               % target, 'remove "wipeTable" or target '
                               'another disk')
            self._check_partitions(path, disk)

    def _check_partitions(self, disk_path, disk):
        numbers = {}
        labels = {}
        unnumbered = deleted = False
        for path, part in _items(disk, 'partitions', disk_path):
            number = _get(part, 'number', int)
            label = _get(part, 'label', str)
            unnumbered = unnumbered or not number
            deleted = deleted or part.get('shouldExist') is False
            if (number is None or number < 1) and not label:
                self.error(path, 'a partition needs a number (1 or more) '
                           'or a label', 'add "number": N or "label": '
                           '"<name>"')
            if number and number in numbers:
                self.error(path, 'partition number %d is already used at %s'
                           % (number, numbers[number]),
                           'give each partition its own number')
            elif number:
                numbers[number] = path
            if label is not None:
                self._check_partition_label(path, label, labels)
            for key in ('guid', 'typeGuid'):
                value = _get(part, key, str)
                if value and not _GUID.match(value):
                    self.error(_child(path, key), '%s is not a GUID' % key,
                               'write the form '
                               '01234567-89AB-CDEF-EDCB-A98765432101')
            others = sorted(k for k, v in part.items() if v is not None
                            and k not in ('number', 'shouldExist',
                                          'wipePartitionEntry'))
            if part.get('shouldExist') is False and others:
                self.error(path, 'shouldExist is false (delete the '
                           'partition) but %s are set too'
                           % ', '.join(others), 'remove %s, or remove '
                           '"shouldExist": false' % ', '.join(others))
        if unnumbered and deleted:
            self.error(_child(disk_path, 'partitions'), 'partitions without '
                       'a number cannot be mixed with partitions whose '
                       'shouldExist is false', 'give every partition of '
                       'this disk a number')

    def _check_partition_label(self, path, label, labels):
        if len(label) > 36:
            self.error(_child(path, 'label'), 'a partition label has at '
                       'most 36 characters, this one has %d' % len(label),
                       'shorten the label')
        if ':' in label:
            self.error(_child(path, 'label'), 'a partition label cannot '
                       'contain ":"', 'remove the colon from the label')
        if label in labels:
            self.error(path, 'partition label %s is already used at %s'
                       % (_show(label), labels[label]),
                       'give each partition its own label')
        labels[label] = path

    def _protected(self, device, label):
        """Describe what a wipe of ``device``/``label`` would destroy."""
        install = self.install_device
        if install:
            install = posixpath.normpath(install)
            normalised = posixpath.normpath(device)
            if normalised == install or re.match(
                    '^%sp?[0-9]+$' % re.escape(install), normalised):
                return 'the install disk %s' % install
        match = re.match(r'^/dev/disk/by-(part)?label/(.+)$', device)
        if match and match.group(2) in COREOS_LABELS:
            return 'the CoreOS %s partition' % match.group(2)
        if label in COREOS_LABELS:
            return 'a filesystem labelled %s like the CoreOS one' % label
        return None

    def _check_raid(self, storage):
        names = {}
        for path, raid in _items(storage, 'raid', '$.storage'):
            name = _get(raid, 'name', str)
            self._unique_name(path, name, names, 'RAID array')
            level = _get(raid, 'level', str)
            if not level or level not in schema.RAID_LEVELS:
                self.error(_child(path, 'level'), 'unknown or missing RAID '
                           'level', 'write one of %s'
                           % ', '.join(schema.RAID_LEVELS))
            self._no_duplicates(raid, 'devices', path, None, 'device')
            for index, device in enumerate(_get(raid, 'devices', list) or []):
                if isinstance(device, str):
                    self._check_abs_path('%s.devices[%d]' % (path, index),
                                         device, '/dev/')
            if not _get(raid, 'devices', list):
                self.error(_child(path, 'devices'), 'a RAID array needs '
                           'devices', 'list the member devices')
            if raid.get('spares') and level in ('linear', 'raid0'):
                self.error(_child(path, 'spares'), 'level %s has no '
                           'spares' % level, 'remove "spares"')

    def _unique_name(self, path, name, seen, what):
        if not name:
            self.error(_child(path, 'name'), 'a %s needs a name' % what,
                       'add "name": "<name>"')
        elif name in seen:
            self.error(path, '%s name %s is already used at %s'
                       % (what, _show(name), seen[name]),
                       'keep one entry per name')
        else:
            seen[name] = path

    def _no_duplicates(self, obj, key, path, field, what):
        """Report repeated items of list ``obj[key]``.

        :param field: compare this member of each item, or the items
            themselves when None.
        """
        seen = {}
        base = _child(path, key)
        for index, item in enumerate(_get(obj, key, list) or []):
            value = _get(item, field, str) if field else item
            if not isinstance(value, str):
                continue
            item_path = '%s[%d]' % (base, index)
            if value in seen:
                self.error(item_path, 'this %s repeats %s'
                           % (what, seen[value]), 'list it only once')
            else:
                seen[value] = item_path

    def _check_filesystems(self, storage):
        devices = {}
        for path, fs in _items(storage, 'filesystems', '$.storage'):
            device = _get(fs, 'device', str)
            if not device:
                self.error(_child(path, 'device'), 'a filesystem needs a '
                           'device', 'add "device": "/dev/disk/by-..."')
            else:
                self._check_abs_path(_child(path, 'device'), device,
                                     '/dev/')
                if device in devices:
                    self.error(path, 'device %s already has a filesystem '
                               'at %s' % (_show(device), devices[device]),
                               'keep one filesystem per device')
                devices.setdefault(device, path)
            mount = _get(fs, 'path', str)
            if mount:
                self._check_abs_path(_child(path, 'path'), mount)
            self._check_format(path, fs)
            label = _get(fs, 'label', str)
            if fs.get('wipeFilesystem') is True and device:
                target = self._protected(device, label)
                if target and label == 'root':
                    # NOTE: re-creating the filesystem labelled root is how
                    # CoreOS reconfigures its root filesystem (e.g. on LUKS
                    # or RAID): the initramfs saves the OS and restores it
                    # onto the new filesystem. Only other data is lost.
                    self.warn(_child(path, 'wipeFilesystem'),
                              'wipeFilesystem re-creates the root '
                              'filesystem at first boot; CoreOS restores '
                              'the operating system onto it, anything '
                              'else on it is lost',
                              'remove "wipeFilesystem" unless the root '
                              'filesystem is meant to be reconfigured')
                elif target:
                    self.error(_child(path, 'wipeFilesystem'),
                               'wipeFilesystem would erase %s at first boot'
                               % target, 'remove "wipeFilesystem" or target '
                               'another device')

    def _check_format(self, path, fs):
        fmt = _get(fs, 'format', str)
        formats = [f for f, since in schema.FILESYSTEM_FORMATS.items()
                   if self.since(since)]
        if fmt:
            if fmt not in formats:
                self.error(_child(path, 'format'), 'unknown filesystem '
                           'format %s in spec %s' % (_show(fmt),
                                                     self.version),
                           'write one of %s' % ', '.join(formats))
            label = _get(fs, 'label', str)
            limit = schema.LABEL_LIMITS.get(fmt)
            if label and limit and len(label) > limit:
                self.error(_child(path, 'label'), '%s labels have at most '
                           '%d characters, this one has %d'
                           % (fmt, limit, len(label)), 'shorten the label')
            return
        others = sorted(k for k in ('path', 'label', 'uuid',
                                    'wipeFilesystem', 'options',
                                    'mountOptions') if fs.get(k))
        if others:
            self.error(_child(path, 'format'), 'a format is required when '
                       '%s is set' % ', '.join(others),
                       'add "format": one of %s' % ', '.join(formats))

    def _check_luks(self, storage):
        names = {}
        for path, luks in _items(storage, 'luks', '$.storage'):
            self._unique_name(path, _get(luks, 'name', str), names,
                              'LUKS volume')
            device = _get(luks, 'device', str)
            if not device:
                self.error(_child(path, 'device'), 'a LUKS volume needs a '
                           'device', 'add "device": "/dev/disk/by-..."')
            else:
                self._check_abs_path(_child(path, 'device'), device,
                                     '/dev/')
            if isinstance(luks.get('keyFile'), dict):
                self._check_resource(_child(path, 'keyFile'),
                                     luks['keyFile'], False)
            clevis = _get(luks, 'clevis', dict)
            if clevis:
                self._check_clevis(_child(path, 'clevis'), clevis)

    def _check_clevis(self, path, clevis):
        self._no_duplicates(clevis, 'tang', path, 'url', 'Tang server')
        for tang_path, tang in _items(clevis, 'tang', path):
            self.needs_network = True
            url = _get(tang, 'url', str)
            if not url or _scheme(url) not in (
                    'http', 'https'):
                self.error(_child(tang_path, 'url'), 'a Tang server needs '
                           'an http:// or https:// URL',
                           'write "url": "http://tang.example.com"')
            if not _get(tang, 'thumbprint', str):
                self.error(_child(tang_path, 'thumbprint'), 'a Tang server '
                           'needs the thumbprint of its key',
                           'add "thumbprint" (tang-show-keys prints it)')
        custom = _get(clevis, 'custom', dict)
        if custom is None:
            return
        custom_path = _child(path, 'custom')
        if custom.get('needsNetwork') is True:
            self.needs_network = True
        if any(clevis.get(k) for k in ('tang', 'tpm2', 'threshold')):
            self.error(path, 'a custom clevis config cannot be combined '
                       'with tang, tpm2 or threshold',
                       'use either "custom" or the other settings')
        if not (custom.get('pin') or custom.get('config')):
            return
        if _get(custom, 'pin', str) not in schema.CLEVIS_PINS:
            self.error(_child(custom_path, 'pin'), 'unknown or missing '
                       'clevis pin', 'write one of %s'
                       % ', '.join(schema.CLEVIS_PINS))
        if not _get(custom, 'config', str):
            self.error(_child(custom_path, 'config'), 'a custom clevis pin '
                       'needs its config', 'add "config": "<JSON>"')

    # files, directories, links

    def _check_nodes(self, storage):
        """Check files, directories and links.

        :returns: list of (clean path, json path, kind) of every node.
        """
        nodes = []
        for kind in ('files', 'directories', 'links'):
            for path, node in _items(storage, kind, '$.storage'):
                node_path = self._check_node_path(path, node)
                getattr(self, '_check_%s' % kind)(path, node, node_path)
                if node_path:
                    nodes.append((_clean_path(node_path), path, kind))
        return nodes

    def _check_node_path(self, path, node):
        value = _get(node, 'path', str)
        if not value:
            self.error(_child(path, 'path'), 'a path is required',
                       'add "path": "/absolute/path"')
            return None
        self._check_abs_path(_child(path, 'path'), value)
        return value

    def _check_abs_path(self, path, value, root='/'):
        clean = _clean_path(value)
        if not value.startswith('/'):
            self.error(path, 'path %s is not absolute' % _show(value),
                       'write "%s"' % _clean_path(root + value))
        elif clean != value:
            self.error(path, 'path %s is not clean (".", "..", "//" or a '
                       'trailing "/")' % _show(value), 'write "%s"' % clean)

    def _check_files(self, path, node, node_path):
        contents = _get(node, 'contents', dict)
        self._check_resource(_child(path, 'contents'), contents, False)
        for item_path, item in _items(node, 'append', path):
            self._check_resource(item_path, item, True)
        source = _get(contents, 'source', str)
        if node.get('overwrite') is True and not source:
            self.error(_child(path, 'overwrite'), 'overwrite is true but '
                       'the file has no contents.source',
                       'add "contents": {"source": ...} or remove '
                       '"overwrite"')
        keyfile = bool(node_path) and _clean_path(node_path).startswith(
            KEYFILE_DIR)
        mode = node.get('mode')
        # Remotely fetched files are usually data whose default mode is
        # meant; inline contents without a mode are a common oversight.
        if mode is None and not keyfile and not _remote(source):
            self.warn(_child(path, 'mode'), 'mode is not set, so Ignition '
                      'creates the file with 0644 (420)',
                      'set "mode" explicitly, e.g. 420 for 0o644 or 384 '
                      'for 0o600')
        self._check_mode(_child(path, 'mode'), mode)
        if keyfile:
            self._check_keyfile(path, node, mode)

    def _check_keyfile(self, path, node, mode):
        effective = mode if _is_int(mode) else 0o644
        if effective & 0o077:
            self.error(_child(path, 'mode'), 'NetworkManager ignores '
                       'keyfiles that group or others may access; this one '
                       'would be 0o%o' % effective,
                       'set "mode": 384 (0o600)')
        owner = _get(node, 'user', dict) or {}
        if owner.get('id') not in (None, 0) or owner.get('name') not in (
                None, '', 'root'):
            self.error(_child(path, 'user'), 'NetworkManager ignores '
                       'keyfiles not owned by root',
                       'remove "user" (root is the default)')

    def _check_directories(self, path, node, node_path):
        self._check_mode(_child(path, 'mode'), node.get('mode'))

    def _check_links(self, path, node, node_path):
        if not _get(node, 'target', str):
            self.error(_child(path, 'target'), 'a link needs a target',
                       'add "target": "/path/the/link/points/to"')

    def _check_mode(self, path, mode):
        if not _has_scalar_type(mode, schema.INTEGER):
            return
        as_octal = _octal_lookalike(mode)
        if mode < 0 or mode > 0o7777:
            fix = ('write %d (0o%d)' % (as_octal, mode) if as_octal
                   is not None else 'write the permission bits as a decimal '
                   'integer, e.g. 420 for 0o644')
            self.error(path, 'mode %d is outside 0..4095 (0o0..0o7777)'
                       % mode, fix)
        elif mode in OCTAL_LOOKALIKES:
            self.warn(path, 'mode %d is decimal, i.e. 0o%o, not 0o%d: '
                      'Ignition modes are decimal integers' % (
                          mode, mode, mode),
                      'write %d (0o%d)' % (as_octal, mode))
        elif mode & 0o7000 and not self.since('3.6.0'):
            self.warn(path, 'setuid, setgid and sticky bits (mode 0o%o) '
                      'are ignored before spec 3.6.0' % mode,
                      'declare spec 3.6.0, or write %d (0o%o) without '
                      'them' % (mode & 0o777, mode & 0o777))

    def _check_node_conflicts(self, nodes, units):
        seen = {}
        links = {clean: path for clean, path, kind in nodes
                 if kind == 'links'}
        for clean, path, kind in nodes:
            if clean in seen:
                self.error(_child(path, 'path'), 'path %s is already used '
                           'by %s' % (_show(clean), seen[clean]),
                           'keep one file, directory or link per path')
            else:
                seen[clean] = path
            parent = posixpath.dirname(clean)
            while parent != '/':
                if parent in links:
                    self.error(_child(path, 'path'), 'path %s is below %s, '
                               'which this config makes a link (%s)'
                               % (_show(clean), _show(parent),
                                  links[parent]),
                               'write it at the real path the link points '
                               'to')
                    break
                parent = posixpath.dirname(parent)
            if clean in units:
                self.error(_child(path, 'path'), 'path %s is also written '
                           'by %s' % (_show(clean), units[clean]),
                           'keep only one of them: remove this entry or the '
                           'unit\'s contents')

    # systemd

    def _check_units(self):
        """Check systemd units.

        :returns: {file path: json path} of what the units write.
        """
        written = {}
        names = {}
        systemd = _get(self.config, 'systemd', dict)
        for path, unit in _items(systemd, 'units', '$.systemd'):
            name = _get(unit, 'name', str)
            self._unique_name(path, name, names, 'unit')
            if name:
                self._check_unit_name(_child(path, 'name'), name)
            contents = _get(unit, 'contents', str)
            sections = self._check_unit_contents(path, contents)
            if name and (contents is not None or unit.get('mask') is True):
                written[SYSTEMD_DIR + name] = path
            dropin_sections = self._check_dropins(path, unit, name, written)
            if (unit.get('enabled') is True and contents is not None
                    and 'Install' not in sections | dropin_sections):
                self.warn(_child(path, 'enabled'), 'the unit is enabled '
                          'but has no [Install] section, so enabling it '
                          'does nothing',
                          'add an [Install] section (e.g. '
                          'WantedBy=multi-user.target) or remove "enabled"')
        return written

    def _check_unit_name(self, path, name):
        stem, ext = posixpath.splitext(name)
        if '/' in name:
            self.error(path, 'unit name %s contains "/"' % _show(name),
                       'use the bare unit name, e.g. "example.service"')
        elif ext not in schema.UNIT_EXTENSIONS or not stem:
            guess = difflib.get_close_matches(ext, schema.UNIT_EXTENSIONS,
                                              n=1, cutoff=0.6)
            fix = ('did you mean "%s%s"?' % (stem, guess[0]) if guess
                   and stem else 'end the name in one of %s'
                   % ', '.join(schema.UNIT_EXTENSIONS))
            self.error(path, 'unit name %s does not end in a systemd unit '
                       'type' % _show(name), fix)

    def _check_unit_contents(self, path, contents):
        if contents is None:
            return set()
        sections, problems = _parse_unit(contents)
        for number, message in problems:
            self.error(_child(path, 'contents'), 'line %d of the unit '
                       'file: %s' % (number, message),
                       'write [Section] headers and Key=Value settings, '
                       'splitting lines over %d bytes with a trailing '
                       'backslash' % _UNIT_LINE_MAX)
        return sections

    def _check_dropins(self, unit_path, unit, unit_name, written):
        names = {}
        found = set()
        for path, dropin in _items(unit, 'dropins', unit_path):
            name = _get(dropin, 'name', str)
            self._unique_name(path, name, names, 'drop-in')
            if name and ('/' in name or not name.endswith('.conf')
                         or name == '.conf'):
                self.error(_child(path, 'name'), 'drop-in name %s must end '
                           'in .conf and contain no "/"' % _show(name),
                           'write "%s.conf"' % (posixpath.splitext(
                               posixpath.basename(name))[0] or '10-x'))
            contents = _get(dropin, 'contents', str)
            found |= self._check_unit_contents(path, contents)
            if unit_name and name and contents is not None:
                written['%s%s.d/%s' % (SYSTEMD_DIR, unit_name,
                                       name)] = path
        return found

    # passwd and kernel arguments

    def _check_passwd(self):
        passwd = _get(self.config, 'passwd', dict)
        names = {}
        for path, user in _items(passwd, 'users', '$.passwd'):
            self._unique_name(path, _get(user, 'name', str), names, 'user')
            self._no_duplicates(user, 'groups', path, None, 'group')
            self._no_duplicates(user, 'sshAuthorizedKeys', path, None,
                                'SSH key')
            keys = _get(user, 'sshAuthorizedKeys', list) or []
            for index, key in enumerate(keys):
                problem = ssh_key_problem(key) if isinstance(
                    key, str) else None
                if problem:
                    self.error('%s.sshAuthorizedKeys[%d]' % (path, index),
                               'SSH key %d %s' % (index, problem),
                               'paste one OpenSSH public key per item: '
                               '"ssh-ed25519 AAAA... comment"')
        names = {}
        for path, group in _items(passwd, 'groups', '$.passwd'):
            self._unique_name(path, _get(group, 'name', str), names, 'group')

    def _check_kernel_arguments(self):
        section = _get(self.config, 'kernelArguments', dict)
        seen = {}
        for key in ('shouldExist', 'shouldNotExist'):
            values = _get(section, key, list) or []
            for index, value in enumerate(values):
                path = '$.kernelArguments.%s[%d]' % (key, index)
                if not isinstance(value, str):
                    continue
                if value in seen:
                    self.error(path, 'kernel argument %s is already listed '
                               'at %s' % (_show(value), seen[value]),
                               'list each kernel argument once')
                else:
                    seen[value] = path


def _has_scalar_type(value, kind):
    """Whether ``value`` is a ``kind`` (a scalar kind) Ignition takes."""
    if kind == schema.STRING:
        return isinstance(value, str)
    if kind == schema.INTEGER:
        return _is_int(value) and -_MAX_INT < value < _MAX_INT
    return isinstance(value, bool)


def _has_type(value, kind):
    if kind == schema.STRING:
        return isinstance(value, str)
    if kind == schema.INTEGER:
        return _is_int(value)
    if kind == schema.BOOLEAN:
        return isinstance(value, bool)
    if isinstance(kind, list):
        return isinstance(value, list)
    return isinstance(value, dict)


def _type_name(kind):
    if isinstance(kind, list):
        return 'a list of %ss' % _type_name(kind[0]).split(' ', 1)[1]
    if isinstance(kind, dict):
        return 'an object'
    return {schema.STRING: 'a string', schema.INTEGER: 'an integer',
            schema.BOOLEAN: 'a boolean'}[kind]


def _value_name(value):
    if value is None:
        return 'null'
    if isinstance(value, bool):
        return 'a boolean'
    if _is_int(value):
        return 'an integer'
    if isinstance(value, float):
        return 'a number with a fraction'
    if isinstance(value, str):
        return 'a string'
    if isinstance(value, list):
        return 'a list'
    if isinstance(value, dict):
        return 'an object'
    return 'a %s' % type(value).__name__


def _scheme(url):
    try:
        return urllib.parse.urlsplit(url).scheme.lower()
    except ValueError:
        return ''


def _remote(source):
    return bool(source) and not source.lower().startswith('data:')


def _octal_lookalike(mode):
    """The mode that decimal ``mode`` looks like when read as octal."""
    digits = str(mode)
    if mode >= 0 and all(c in '01234567' for c in digits):
        value = int(digits, 8)
        if value <= 0o7777:
            return value
    return None


def _version_guess(version, newest):
    """A well-formed version close to what the user wrote."""
    text = str(version)
    match = re.match(r'^(\d+)(?:\.(\d+))?', text)
    if match and match.group(1) == '3':
        guess = '3.%s.0' % (match.group(2) or '0')
        if guess in spec.STABLE_VERSIONS:
            return guess
    return newest
