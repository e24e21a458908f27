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

"""Install arguments of ``coreos-installer install``: typed and validated.

The ``install_coreos`` deploy step takes the arguments documented in
:data:`ARGUMENTS`. :func:`parse_args` checks them (and fills defaults from
the node's ``instance_info``) into an :class:`InstallArgs`;
:func:`build_argv` turns that into the installer's command line.
:func:`last_error_line` and :func:`is_transient` read the installer's
output after a failure.

This module imports neither Ironic nor ironic-python-agent: the conductor
interface and the agent step both use it.
"""

import dataclasses
import json
import re
import urllib.parse

from ironic_coreos.engine import exception
from ironic_coreos.engine import jsondepth
from ironic_coreos.engine import redact

DEFAULT_PLATFORM = 'metal'

CHECKSUM_ALGORITHMS = {'sha256': 64, 'sha512': 128}

ARGUMENTS = {
    'ignition': {
        'description': 'Ignition config of the installed system, as a JSON '
                       'object or its JSON text. Default: the user_data of '
                       'the node\'s config drive.',
        'required': False,
    },
    'image_url': {
        'description': 'http(s) URL of the CoreOS metal image to install '
                       '(its signature is fetched from URL.sig). Default: '
                       'instance_info/image_source when it is an http(s) '
                       'URL, else an offline install of the image the live '
                       'system carries.',
        'required': False,
    },
    'image_checksum': {
        'description': 'Expected digest of the image, "sha256:HEX" or '
                       '"sha512:HEX". The image is streamed through a local '
                       'verifier and the install fails before the disk '
                       'can boot when it does not match. Default: '
                       'instance_info image_os_hash_algo/image_os_hash_value '
                       'or image_checksum when the image comes from '
                       'instance_info.',
        'required': False,
    },
    'image_pull_secret': {
        'description': 'Credential for the image server, sent as an HTTP '
                       'bearer token. Never logged.',
        'required': False,
    },
    'insecure': {
        'description': 'true to install an image whose signature (URL.sig) '
                       'is missing. A bad signature still fails. Default: '
                       'false.',
        'required': False,
    },
    'append_kargs': {
        'description': 'List of kernel arguments to add to the installed '
                       'system, one argument per item (an item is never '
                       'split on commas or spaces).',
        'required': False,
    },
    'delete_kargs': {
        'description': 'List of kernel arguments to remove from the '
                       'installed system, one argument per item.',
        'required': False,
    },
    'console': {
        'description': 'List of kernel and GRUB console specs, for example '
                       '["ttyS0,115200n8"].',
        'required': False,
    },
    'platform': {
        'description': 'Ignition platform id of the installed system. '
                       'Default: metal.',
        'required': False,
    },
    'copy_network': {
        'description': 'true to copy the NetworkManager keyfiles of the '
                       'live system to the installed system. Default: '
                       'false.',
        'required': False,
    },
    'save_partlabel': {
        'description': 'List of partition labels (globs allowed) to keep '
                       'on the install disk.',
        'required': False,
    },
    'save_partindex': {
        'description': 'List of partition numbers or ranges ("5", "5-7", '
                       '"5-") to keep on the install disk.',
        'required': False,
    },
    'fetch_retries': {
        'description': 'How many times the installer retries a failed '
                       'network fetch: an integer >= 0 or "infinite". '
                       'Default: the installer\'s own.',
        'required': False,
    },
    'preserve_on_error': {
        'description': 'true to keep the partition table of a failed '
                       'install for debugging. Default: true when automated '
                       'cleaning is enabled for the node (cleaning wipes the '
                       'disk), else false.',
        'required': False,
    },
}

_LIST_ARGUMENTS = ('append_kargs', 'delete_kargs', 'console',
                   'save_partlabel', 'save_partindex')
_BOOL_ARGUMENTS = ('insecure', 'copy_network', 'preserve_on_error')
_SECRET_ARGUMENTS = ('ignition', 'image_pull_secret')
# The nesting limit of the Ignition check (engine.ignition.MAX_DEPTH).
_MAX_IGNITION_DEPTH = 32

_PLATFORM_RE = re.compile(r'^[a-z][a-z0-9_-]{0,63}$')
_PARTINDEX_RE = re.compile(r'^(\d+|\d+-\d*)$')
_HEX_RE = re.compile(r'^[0-9a-fA-F]+$')


@dataclasses.dataclass(frozen=True)
class InstallArgs:
    """Validated arguments of one install.

    Build it with :func:`parse_args`; the constructor does not validate.
    """

    ignition: dict | None = None
    image_url: str | None = None
    image_checksum: tuple[str, str] | None = None
    image_pull_secret: str | None = dataclasses.field(default=None,
                                                      repr=False)
    insecure: bool = False
    append_kargs: tuple[str, ...] = ()
    delete_kargs: tuple[str, ...] = ()
    console: tuple[str, ...] = ()
    platform: str = DEFAULT_PLATFORM
    copy_network: bool = False
    save_partlabel: tuple[str, ...] = ()
    save_partindex: tuple[str, ...] = ()
    fetch_retries: int | str | None = None
    preserve_on_error: bool = False

    def __repr__(self):
        # NOTE: the Ignition config and the pull secret must never reach a
        # log through a repr.
        shown = []
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name in _SECRET_ARGUMENTS and value is not None:
                value = '<hidden>'
            elif field.name == 'image_url' and value:
                value = redact.url(value)
            shown.append('%s=%r' % (field.name, value))
        return 'InstallArgs(%s)' % ', '.join(shown)

    @property
    def uses_stream(self):
        """Whether the image must go through the local verifying stream."""
        return bool(self.image_url and (self.image_checksum
                                        or self.image_pull_secret))

    def as_step_args(self):
        """Turn the arguments back into complete ``install_coreos`` args.

        Every argument with a value is given explicitly, defaults included,
        so the step needs nothing else from the node; arguments without a
        value (None) are left out. The result is JSON-serializable and
        passes :func:`parse_args` unchanged.

        :returns: a dict of step arguments.
        """
        result = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is None:
                continue
            if field.name == 'image_checksum':
                value = '%s:%s' % tuple(value)
            elif isinstance(value, tuple):
                value = list(value)
            result[field.name] = value
        return result


def _bool(name, value):
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ('true', 'false'):
        return value.strip().lower() == 'true'
    raise exception.InvalidArgument(name, value,
                                    'a boolean: true or false')


def _string_list(name, value, pattern=None, what='a non-empty string'):
    accepted = ('a list of strings, one item per %s, each %s without '
                'line breaks and not starting with "-"'
                % ('kernel argument' if 'karg' in name else 'value', what))
    if not isinstance(value, (list, tuple)):
        raise exception.InvalidArgument(name, value, accepted)
    items = []
    for item in value:
        if (not isinstance(item, str) or not item.strip()
                or item.startswith('-')
                or any(c in item for c in '\n\r\0')
                or (pattern is not None
                    and not all(pattern.match(p) for p in item.split(',')))):
            raise exception.InvalidArgument(name, value, accepted)
        items.append(item)
    return tuple(items)


def _http_url(name, value):
    accepted = 'an http:// or https:// URL with a host and a path'
    if not isinstance(value, str):
        raise exception.InvalidArgument(name, value, accepted)
    parsed = urllib.parse.urlsplit(value)
    if (parsed.scheme not in ('http', 'https') or not parsed.hostname
            or not parsed.path.strip('/')
            or any(c in value for c in ' \n\r\t\0')):
        raise exception.InvalidArgument(name, value, accepted)
    return value


def is_http_url(value):
    """Whether ``value`` is an http(s) URL."""
    return (isinstance(value, str)
            and urllib.parse.urlsplit(value).scheme in ('http', 'https'))


def _checksum(name, value, algo=None):
    accepted = ('"sha256:<64 hex digits>" or "sha512:<128 hex digits>" '
                '(MD5 and checksum file URLs are not accepted)')
    if not isinstance(value, str):
        raise exception.InvalidArgument(name, value, accepted)
    text = value.strip()
    if algo is None:
        if ':' in text:
            algo, _sep, text = text.partition(':')
        else:
            # NOTE: instance_info/image_checksum may be a bare digest;
            # its length tells the algorithm.
            algo = next((a for a, n in CHECKSUM_ALGORITHMS.items()
                         if n == len(text)), None)
    algo = (algo or '').strip().lower()
    if (algo not in CHECKSUM_ALGORITHMS
            or len(text) != CHECKSUM_ALGORITHMS[algo]
            or not _HEX_RE.match(text)):
        raise exception.InvalidArgument(name, value, accepted)
    return algo, text.lower()


MAX_FETCH_RETRIES = 1000000
"""Largest number of fetch retries accepted (use "infinite" for more)."""


def _fetch_retries(value):
    accepted = ('an integer from 0 to %d or "infinite"'
                % MAX_FETCH_RETRIES)
    if isinstance(value, bool):
        raise exception.InvalidArgument('fetch_retries', value, accepted)
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.strip() == 'infinite':
        return 'infinite'
    elif (isinstance(value, str) and value.strip().isascii()
          and value.strip().isdigit() and len(value.strip()) <= 10):
        number = int(value.strip())
    else:
        raise exception.InvalidArgument('fetch_retries', value, accepted)
    if not 0 <= number <= MAX_FETCH_RETRIES:
        raise exception.InvalidArgument('fetch_retries', value, accepted)
    return number


def _ignition(value):
    accepted = 'an Ignition config: a JSON object, or its JSON text'
    if isinstance(value, dict):
        return value
    if isinstance(value, bytes):
        try:
            value = value.decode('utf-8')
        except UnicodeDecodeError:
            raise exception.InvalidArgument('ignition', value, accepted,
                                            secret=True) from None
    if not isinstance(value, str):
        raise exception.InvalidArgument('ignition', value, accepted,
                                        secret=True)
    text = value.lstrip()
    if text.startswith('#cloud-config'):
        accepted += ' (this is a cloud-config, not an Ignition config)'
    elif text.startswith('#!'):
        accepted += ' (this is a shell script, not an Ignition config)'
    elif jsondepth.text_deeper_than(text, _MAX_IGNITION_DEPTH):
        accepted += (' (the JSON nests more than %d levels deep)'
                     % _MAX_IGNITION_DEPTH)
    else:
        try:
            config = json.loads(text)
        except ValueError as exc:
            accepted += ' (not valid JSON: line %d column %d: %s)' % (
                exc.lineno, exc.colno, exc.msg)
        else:
            if isinstance(config, dict):
                return config
            accepted += ' (the JSON text is not an object)'
    # NOTE: the value never appears in the message (secret=True).
    raise exception.InvalidArgument('ignition', value, accepted, secret=True)


def _is_masked(value):
    # Ironic masks password-like fields ("***") in the node it sends to the
    # agent: such a value is no credential.
    return isinstance(value, str) and set(value) <= {'*'}


def parse_args(args, node=None):
    """Validate ``install_coreos`` step arguments.

    :param args: dict of step arguments, names from :data:`ARGUMENTS`.
    :param node: the node as a dict (optional). Its ``instance_info``
        provides the image defaults and its ``automated_clean`` the default
        of ``preserve_on_error``.
    :returns: an :class:`InstallArgs`.
    :raises: InvalidArgument naming the argument, its value (unless secret)
        and what is accepted, for an unknown argument or a wrong type or
        value.
    """
    args = dict(args or {})
    node = node or {}
    instance_info = node.get('instance_info') or {}

    for name in sorted(args):
        if name not in ARGUMENTS:
            # NOTE: the value of a misspelt argument may be a secret
            # (e.g. "ignitoin"): never show it.
            raise exception.InvalidArgument(
                name, args[name],
                'one of the arguments %s (unknown argument)'
                % ', '.join(sorted(ARGUMENTS)), secret=True)

    # NOTE: None means "not given" for every argument.
    args = {k: v for k, v in args.items() if v is not None}
    values = {}

    if 'ignition' in args:
        values['ignition'] = _ignition(args['ignition'])

    image_source = instance_info.get('image_source')
    if 'image_url' in args:
        values['image_url'] = _http_url('image_url', args['image_url'])
        from_instance_info = args['image_url'] == image_source
    elif is_http_url(image_source):
        values['image_url'] = _http_url('instance_info/image_source',
                                        image_source)
        from_instance_info = True
    else:
        from_instance_info = False

    if 'image_checksum' in args:
        if 'image_url' not in values:
            raise exception.InvalidArgument(
                'image_checksum', args['image_checksum'],
                'only together with an image_url (an offline install '
                'uses the image of the live system)')
        values['image_checksum'] = _checksum('image_checksum',
                                             args['image_checksum'])
    elif from_instance_info:
        algo = instance_info.get('image_os_hash_algo')
        digest = instance_info.get('image_os_hash_value')
        if algo and digest:
            values['image_checksum'] = _checksum(
                'instance_info/image_os_hash_value', digest, algo=algo)
        elif instance_info.get('image_checksum'):
            values['image_checksum'] = _checksum(
                'instance_info/image_checksum',
                instance_info['image_checksum'])

    secret = args.get('image_pull_secret')
    if secret is None and from_instance_info:
        secret = instance_info.get('image_pull_secret')
        if _is_masked(secret) or secret == '':
            secret = None
    if secret is not None:
        if (not isinstance(secret, str) or not secret.strip()
                or any(c in secret for c in '\n\r\0')):
            raise exception.InvalidArgument(
                'image_pull_secret', secret,
                'a non-empty string on one line', secret=True)
        if 'image_url' not in values:
            raise exception.InvalidArgument(
                'image_pull_secret', secret,
                'only together with an image_url', secret=True)
        values['image_pull_secret'] = secret

    for name in _BOOL_ARGUMENTS:
        if name in args:
            values[name] = _bool(name, args[name])
    if 'preserve_on_error' not in values:
        # NOTE: with automated cleaning the disk is wiped afterwards, so
        # keeping a failed install costs nothing and helps debugging.
        values['preserve_on_error'] = node.get('automated_clean') in (
            True, None)

    for name in _LIST_ARGUMENTS:
        if name in args:
            if name == 'save_partindex':
                values[name] = _string_list(
                    name, args[name], pattern=_PARTINDEX_RE,
                    what='a partition number or range like 5, 5-7 or 5-')
            else:
                values[name] = _string_list(name, args[name])

    if 'platform' in args:
        platform = args['platform']
        if not isinstance(platform, str) or not _PLATFORM_RE.match(platform):
            raise exception.InvalidArgument(
                'platform', platform,
                'an Ignition platform id such as metal, openstack or qemu '
                '(lower case letters, digits, "-" and "_")')
        values['platform'] = platform

    if 'fetch_retries' in args:
        values['fetch_retries'] = _fetch_retries(args['fetch_retries'])

    return InstallArgs(**values)


def build_argv(args, device, ignition_file, image_url=None):
    """Build the ``coreos-installer`` command line.

    :param args: an :class:`InstallArgs`.
    :param device: the install device, e.g. ``/dev/sda``.
    :param ignition_file: path of the Ignition config as the installer sees
        it, or None to install without one.
    :param image_url: URL to give the installer instead of
        ``args.image_url`` (the local verifying stream).
    :returns: the argv after ``coreos-installer``:
        ``['install', ...flags..., device]``.
    """
    url = image_url or args.image_url
    argv = ['install']
    if url:
        argv += ['--image-url', url]
    else:
        argv.append('--offline')
    if args.insecure:
        argv.append('--insecure')
    if ignition_file:
        argv += ['--ignition-file', ignition_file]
    if args.platform != DEFAULT_PLATFORM:
        argv += ['--platform', args.platform]
    for spec in args.console:
        argv += ['--console', spec]
    for karg in args.delete_kargs:
        argv += ['--delete-karg', karg]
    for karg in args.append_kargs:
        argv += ['--append-karg', karg]
    if args.copy_network:
        argv.append('--copy-network')
    for label in args.save_partlabel:
        argv += ['--save-partlabel', label]
    for index in args.save_partindex:
        argv += ['--save-partindex', index]
    if args.fetch_retries is not None:
        argv += ['--fetch-retries', str(args.fetch_retries)]
    if args.preserve_on_error:
        argv.append('--preserve-on-error')
    argv.append(device)
    return argv


_FAILED_LINE = 'Error: install failed'


def last_error_line(lines):
    """Find the installer's own explanation of a failure.

    The installer prints its error, then what it does about the disk
    (``Resetting partition table`` or ``Preserving partition table as
    requested``), then ``Error: install failed``.

    :param lines: the installer's output lines.
    :returns: the last line starting with ``Error:`` (any case) other than
        ``Error: install failed``; else the last line before that one which
        is not about the partition table; else the last non-empty line; or
        None when there is no output.
    """
    lines = [line.strip() for line in lines if line and line.strip()]
    for line in reversed(lines):
        # NOTE: argument errors (from the command line parser) start with
        # a lower case "error:".
        if (line.lower().startswith('error:')
                and not line.startswith(_FAILED_LINE)):
            return line
    for index in range(len(lines) - 1, -1, -1):
        if lines[index].startswith(_FAILED_LINE):
            for line in reversed(lines[:index]):
                if not _TABLE_LINE.match(line):
                    return line
            break
    return lines[-1] if lines else None


_TABLE_LINE = re.compile(r'^(Resetting|Preserving) partition table')


# Failures that a later attempt cannot fix, even if they happened while
# fetching.
_PERMANENT_PATTERNS = (
    re.compile(r'client error \(4\d\d', re.I),
    re.compile(r'\b40[0-9] (not found|forbidden|unauthorized)', re.I),
    re.compile(r'bad signature|signature verification|verifying signature'
               r'|invalid signature|gpg', re.I),
    re.compile(r'checksum|digest mismatch', re.I),
    re.compile(r'sector size', re.I),
    re.compile(r'busy', re.I),
    re.compile(r'metadata missing', re.I),
    re.compile(r'invalid (value|argument)', re.I),
    re.compile(r'no such (file|device)', re.I),
    re.compile(r'stopped after \d+ seconds', re.I),
    re.compile(r'not a block device', re.I),
)

# Network trouble while fetching the image or its signature.
_TRANSIENT_PATTERNS = (
    re.compile(r'server error \(5\d\d', re.I),
    re.compile(r'error sending request', re.I),
    re.compile(r'error trying to connect', re.I),
    re.compile(r'connection (refused|reset|closed|aborted)', re.I),
    re.compile(r'timed out|timeout', re.I),
    re.compile(r'dns error|failed to lookup address|name resolution', re.I),
    re.compile(r'unexpected eof|end of file|incomplete|broken pipe', re.I),
    re.compile(r'error decoding response body', re.I),
    re.compile(r'network is unreachable|no route to host', re.I),
)


def is_transient(lines):
    """Whether an install failure can go away on its own.

    Only network failures while fetching the image or its signature are
    transient; anything that names a permanent cause (a client error, a
    signature problem, a busy or unsuitable disk) is not.

    :param lines: the installer's output lines.
    :returns: True when another attempt may succeed.
    """
    text = '\n'.join(line for line in lines if line)
    if any(p.search(text) for p in _PERMANENT_PATTERNS):
        return False
    return any(p.search(text) for p in _TRANSIENT_PATTERNS)
