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


"""Build the Ignition config of the CoreOS live system used as deploy ramdisk.

The live system runs ironic-python-agent as a privileged podman container
with the host root bind-mounted (recursively) at /mnt/coreos. This tool
writes everything the live system needs for it into one Ignition config
for ``coreos-installer iso ignition embed`` or ``coreos-installer pxe
ignition wrap``: the systemd unit that pulls the agent image (retrying
until the network is up) and starts the container, the agent's
configuration file, the registry settings (insecure registries, mirrors,
CAs, a pull secret, a proxy for the pull) and, optionally, a static
network for the live system.
"""

import argparse
import configparser
import io
import json
import os
import re
import shlex
import sys
import urllib.parse

from ironic_coreos.engine import exception
from ironic_coreos.engine import ignition
from ironic_coreos.engine import merge
from ironic_coreos.engine import network

SPEC_VERSION = '3.2.0'
UNIT_NAME = 'ironic-agent.service'
CONTAINER_NAME = 'ironic-agent'
CONF_DIR = '/etc/ironic-python-agent'
CONF_FILE = CONF_DIR + '/ironic-python-agent.conf'
AUTH_FILE = '/etc/ironic-agent/auth.json'
PROXY_FILE = '/etc/ironic-agent/pull-proxy.env'
PULL_SCRIPT = '/usr/local/bin/ironic-agent-pull'
REGISTRIES_FILE = ('/etc/containers/registries.conf.d/'
                   '50-ironic-coreos-agent.conf')
CERTS_DIR = '/etc/containers/certs.d'
CA_FILE = CONF_DIR + '/ironic-ca.crt'
HOST_ROOT = '/mnt/coreos'
PULL_ATTEMPTS = 30
PULL_RETRY_DELAY = 10
PULL_TIMEOUT = 900
# Seconds systemd gives the agent container to stop (at power-off too).
STOP_TIMEOUT = 15
# The image tools/build-agent-image.sh builds (localhost/NAME:KEY); no
# image is assumed: a ramdisk whose agent lacks install_coreos cannot
# deploy CoreOS, so --image is required.
PROJECT_IMAGE_NAME = 'ironic-coreos-agent'

_HOST_RE = re.compile(
    r'^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?'
    r'(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*'
    r'|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$')
_IMAGE_RE = re.compile(
    r'^[a-z0-9A-Z][A-Za-z0-9._:/@\[\]-]*$')
_KEYFILE_NAME_RE = re.compile(r'^[A-Za-z0-9_][A-Za-z0-9_.+-]*\.nmconnection$')

# Pulls the agent image for ironic-agent.service, retrying while the
# network comes up; a failure leaves a line in the journal and on the
# console.
_PULL_SCRIPT = r'''#!/bin/bash
# Pull the ironic-python-agent image for ironic-agent.service, retrying
# while the network comes up. Written by ironic-coreos-live-ignition.
#
# Usage: ironic-agent-pull ATTEMPTS DELAY TIMEOUT IMAGE [PODMAN PULL OPTIONS]
set -o nounset
console_dev=${IRONIC_AGENT_CONSOLE:-/dev/console}
attempts=$1
delay=$2
limit=$3
image=$4
shift 4

console() {
    echo "$1" >&2
    echo "$1" >"$console_dev" 2>/dev/null || true
}

for ((i = 1; i <= attempts; i++)); do
    if timeout "$limit" podman pull --quiet "$@" "$image"; then
        echo "ironic-agent: pulled $image"
        exit 0
    fi
    echo "ironic-agent: pulling $image failed (attempt $i of $attempts)" >&2
    if ((i == 1)); then
        console "ironic-agent: cannot pull the agent image $image yet; \
retrying every ${delay} s, $attempts attempts (journalctl -u ironic-agent)"
    fi
    if ((i < attempts)); then
        sleep "$delay"
    fi
done
console "ironic-agent: FAILED to pull the agent image $image after \
$attempts attempts: the agent cannot start. Check the network, the \
registry, its CA and the pull secret (journalctl -u ironic-agent)."
exit 1
'''


def _file(path, contents, mode):
    return {'path': path, 'mode': mode, 'overwrite': True,
            'contents': {'source': merge.data_url(contents)}}


def agent_config(api_url, options=()):
    """Render the agent's configuration file.

    :param api_url: URL of the Ironic API, or None to let the agent look
        it up (mDNS or kernel parameters).
    :param options: iterable of ``(section, name, value)`` tuples.
    :returns: the file contents as bytes.
    """
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str
    parser['DEFAULT'] = {}
    if api_url:
        parser['DEFAULT']['api_url'] = api_url
    parser['coreos'] = {'host_root': HOST_ROOT}
    for section, name, value in options:
        if section != 'DEFAULT' and not parser.has_section(section):
            parser.add_section(section)
        parser[section][name] = value
    out = io.StringIO()
    parser.write(out)
    return out.getvalue().encode()


def image_registry(image):
    """The registry host of an image reference, or None (a short name)."""
    first, slash, _rest = image.partition('/')
    if slash and ('.' in first or ':' in first or first == 'localhost'
                  or first.startswith('[')):
        return first
    return None


def podman_command(image):
    """The argv of the container that runs the agent.

    The image is pulled before (``ironic-agent-pull``), so the container
    starts from local storage and without the pull's proxy settings.
    ``--pid host`` and the recursive bind of ``/`` (which brings the
    host's ``/run`` along) let the image's ``poweroff`` and ``reboot`` ask
    the live system's systemd (``chroot /mnt/coreos systemctl``).
    ``--log-driver passthrough`` hands the agent's output straight to the
    unit's journal stream (with podman's default journald driver every
    line was written twice: by conmon and by the attached ``podman
    run``).

    :returns: a list of strings.
    """
    return ['/usr/bin/podman', 'run', '--rm', '--name', CONTAINER_NAME,
            '--pull', 'never', '--http-proxy=false',
            '--log-driver', 'passthrough',
            '--privileged', '--network', 'host', '--pid', 'host',
            '--ipc', 'host',
            '--volume', '/dev:/dev',
            '--volume', '/sys:/sys',
            '--volume', '/run/udev:/run/udev',
            '--volume', '/:%s:rbind' % HOST_ROOT,
            '--volume', '%s:%s:ro' % (CONF_DIR, CONF_DIR),
            image, 'ironic-python-agent', '--config-file', CONF_FILE]


def pull_command(image, authfile=False, tls_verify=True,
                 attempts=PULL_ATTEMPTS, delay=PULL_RETRY_DELAY):
    """The argv that pulls the agent image before the container starts.

    :returns: a list of strings.
    """
    argv = [PULL_SCRIPT, str(attempts), str(delay), str(PULL_TIMEOUT), image]
    if authfile:
        argv += ['--authfile', AUTH_FILE]
    if not tls_verify:
        argv += ['--tls-verify=false']
    return argv


def _quote(argv):
    return ' '.join(shlex.quote(a) for a in argv)


def systemd_unit(image, authfile=False, tls_verify=True, proxy=False,
                 attempts=PULL_ATTEMPTS, delay=PULL_RETRY_DELAY):
    """Render the systemd unit that pulls the image and runs the agent."""
    lines = [
        '[Unit]',
        'Description=Ironic Python Agent in a container',
        'Wants=network-online.target',
        'After=network-online.target',
        '',
        '[Service]',
        'Type=simple',
        # NOTE: the pull retries by itself (bounded); a failed pull fails
        # the start and Restart= tries again later.
        'TimeoutStartSec=infinity',
    ]
    if proxy:
        lines.append('EnvironmentFile=%s' % PROXY_FILE)
    lines += [
        'ExecStartPre=-/usr/bin/podman rm --force --ignore %s'
        % CONTAINER_NAME,
        'ExecStartPre=%s' % _quote(pull_command(
            image, authfile=authfile, tls_verify=tls_verify,
            attempts=attempts, delay=delay)),
        'ExecStart=%s' % _quote(podman_command(image)),
        'Restart=on-failure',
        'RestartSec=10',
        # NOTE: the agent dies on SIGTERM; a bounded stop keeps a hung
        # container from holding up the live system's power-off.
        'TimeoutStopSec=%d' % STOP_TIMEOUT,
        'StandardOutput=journal',
        'StandardError=journal',
        '',
        '[Install]',
        'WantedBy=multi-user.target',
        '',
    ]
    return '\n'.join(lines)


def _toml_string(text):
    # A TOML basic string; the values are host names and prefixes checked
    # beforehand, json.dumps only adds the quotes.
    return json.dumps(text)


def registries_conf(insecure=(), mirrors=()):
    """Render the registries.conf.d drop-in.

    :param insecure: registries (``HOST[:PORT]``) reached without TLS
        verification (or over plain HTTP).
    :param mirrors: ``(source, mirror)`` pairs: pulls from ``source`` (a
        registry or a repository prefix) try ``mirror`` first.
    :returns: the file contents as bytes, or None if nothing is set.
    """
    insecure = list(dict.fromkeys(insecure))
    if not insecure and not mirrors:
        return None
    by_source = {}
    for source, mirror in mirrors:
        by_source.setdefault(source, []).append(mirror)
    out = ['# Written by ironic-coreos-live-ignition for the agent image '
           'pull.', '']
    for source, targets in by_source.items():
        out += ['[[registry]]', 'prefix = %s' % _toml_string(source),
                'location = %s' % _toml_string(source)]
        if source in insecure:
            out.append('insecure = true')
        for target in targets:
            out += ['', '[[registry.mirror]]',
                    'location = %s' % _toml_string(target)]
            if _host_of(target) in insecure:
                out.append('insecure = true')
        out.append('')
    for host in insecure:
        if host in by_source:
            continue
        out += ['[[registry]]', 'location = %s' % _toml_string(host),
                'insecure = true', '']
    return '\n'.join(out).encode()


def _host_of(reference):
    return reference.partition('/')[0]


def proxy_env(http_proxy=None, https_proxy=None, no_proxy=None):
    """Render the environment file of the pull's proxy settings."""
    lines = []
    for names, value in ((('HTTP_PROXY', 'http_proxy'), http_proxy),
                         (('HTTPS_PROXY', 'https_proxy'), https_proxy),
                         (('NO_PROXY', 'no_proxy'), no_proxy)):
        if value:
            for name in names:
                # systemd's EnvironmentFile= quoting: double quotes,
                # backslash escapes.
                escaped = value.replace('\\', '\\\\').replace('"', '\\"')
                lines.append('%s="%s"' % (name, escaped))
    if not lines:
        return None
    return ('\n'.join(lines) + '\n').encode()


def build(image, api_url=None, ssh_keys=(), pull_secret=None,
          ca_bundle=None, tls_verify=True, options=(), insecure=(),
          mirrors=(), registry_cas=(), http_proxy=None, https_proxy=None,
          no_proxy=None, keyfiles=(), pull_attempts=PULL_ATTEMPTS,
          pull_retry_delay=PULL_RETRY_DELAY):
    """Build the live system's Ignition config.

    :param image: container image of ironic-python-agent with
        ironic-coreos[agent] installed (``tools/build-agent-image.sh``).
    :param api_url: URL of the Ironic API the agent calls back.
    :param ssh_keys: SSH public keys for the ``core`` user of the live
        system (debugging access).
    :param pull_secret: bytes of a container registry auth file, or None.
    :param ca_bundle: bytes of a CA bundle for the Ironic API, or None.
    :param tls_verify: whether podman verifies the registry's TLS.
    :param options: ``(section, name, value)`` agent options.
    :param insecure: registries (``HOST[:PORT]``) without TLS verification.
    :param mirrors: ``(source, mirror)`` registry mirrors.
    :param registry_cas: ``(HOST[:PORT], bytes)`` CAs of registries.
    :param http_proxy: proxy URL for the pull over HTTP.
    :param https_proxy: proxy URL for the pull over HTTPS.
    :param no_proxy: hosts reached without the proxy.
    :param keyfiles: :class:`ironic_coreos.engine.network.Keyfile` of the
        live system's network (e.g. from ``keyfiles_from_network_data``).
    :param pull_attempts: pull attempts before the unit fails (and is
        restarted).
    :param pull_retry_delay: seconds between pull attempts.
    :returns: the Ignition config as a dict.
    :raises: InvalidIgnition if the result does not validate.
    """
    options = list(options)
    files = []
    if ca_bundle:
        files.append(_file(CA_FILE, ca_bundle, 0o644))
        options.insert(0, ('DEFAULT', 'cafile', CA_FILE))
    files.append(_file(CONF_FILE, agent_config(api_url, options), 0o600))
    if pull_secret:
        files.append(_file(AUTH_FILE, pull_secret, 0o600))
    files.append(_file(PULL_SCRIPT, _PULL_SCRIPT.encode(), 0o755))
    registries = registries_conf(insecure, mirrors)
    if registries:
        files.append(_file(REGISTRIES_FILE, registries, 0o644))
    for host, ca in registry_cas:
        files.append(_file('%s/%s/ca.crt' % (CERTS_DIR, host), ca, 0o644))
    proxy = proxy_env(http_proxy, https_proxy, no_proxy)
    if proxy:
        # NOTE: 0600: a proxy URL may carry credentials.
        files.append(_file(PROXY_FILE, proxy, 0o600))
    for keyfile in keyfiles:
        files.append(_file(keyfile.path, keyfile.contents.encode(),
                           keyfile.mode))
    config = {
        'ignition': {'version': SPEC_VERSION},
        'storage': {'files': files},
        'systemd': {'units': [{
            'name': UNIT_NAME,
            'enabled': True,
            'contents': systemd_unit(image, authfile=bool(pull_secret),
                                     tls_verify=tls_verify,
                                     proxy=bool(proxy),
                                     attempts=pull_attempts,
                                     delay=pull_retry_delay),
        }]},
    }
    if ssh_keys:
        config['passwd'] = {'users': [{'name': 'core',
                                       'sshAuthorizedKeys': list(ssh_keys)}]}
    ignition.check(config)
    return config


def _option(text):
    key, sep, value = text.partition('=')
    section, dot, name = key.rpartition('.')
    if not sep or not name:
        raise argparse.ArgumentTypeError(
            '%r is not of the form [SECTION.]NAME=VALUE, e.g. '
            'DEFAULT.lookup_timeout=600' % text)
    return (section if dot else 'DEFAULT', name, value)


def _url(text):
    parsed = urllib.parse.urlparse(text)
    if parsed.scheme not in ('http', 'https') or not parsed.netloc:
        raise argparse.ArgumentTypeError(
            '%r is not an http(s) URL, e.g. http://192.0.2.1:6385' % text)
    return text


def _proxy_url(text):
    parsed = urllib.parse.urlparse(text)
    if (parsed.scheme not in ('http', 'https', 'socks5', 'socks5h')
            or not parsed.netloc or any(c.isspace() for c in text)):
        # NOTE: the value may hold credentials: it is not repeated.
        raise argparse.ArgumentTypeError(
            'the proxy is not an http://, https:// or socks5:// URL, e.g. '
            'http://proxy.example.com:3128')
    return text


def _no_proxy(text):
    if not text or any(c.isspace() or c in '"\\' for c in text):
        raise argparse.ArgumentTypeError(
            '%r is not a comma-separated list of hosts, domains or '
            'networks, e.g. 192.0.2.1,.example.com' % text)
    return text


def _host(text):
    if not _HOST_RE.match(text):
        raise argparse.ArgumentTypeError(
            '%r is not a registry HOST[:PORT], e.g. 192.0.2.1:5000 or '
            'registry.example.com' % text)
    return text


def _image(text):
    if not _IMAGE_RE.match(text) or text.endswith(('/', ':', '@')):
        raise argparse.ArgumentTypeError(
            '%r is not a container image reference, e.g. '
            '192.0.2.1:5000/%s:TAG' % (text, PROJECT_IMAGE_NAME))
    return text


def _reference(text):
    host, _slash, path = text.partition('/')
    if not _HOST_RE.match(host) or (path and not _IMAGE_RE.match(path)):
        raise argparse.ArgumentTypeError(
            '%r is not a registry HOST[:PORT] or repository prefix '
            'HOST[:PORT]/PATH, e.g. quay.io or 192.0.2.1:5000/mirror' % text)
    return text


def _mirror(text):
    source, sep, mirror = text.partition('=')
    if not sep:
        raise argparse.ArgumentTypeError(
            '%r is not of the form SOURCE=MIRROR, e.g. '
            'quay.io=192.0.2.1:5000' % text)
    return (_reference(source), _reference(mirror))


def _registry_ca(text):
    host, sep, path = text.partition('=')
    if sep and _HOST_RE.match(host):
        return (host, path)
    return (None, text)


def _positive(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError('%r is not a whole number of 1 or '
                                         'more' % text)
    return value


def _parse_args(args):
    parser = argparse.ArgumentParser(
        prog='ironic-coreos-live-ignition',
        description='Build the Ignition config of the CoreOS live system '
                    'that runs ironic-python-agent as deploy ramdisk.')
    parser.add_argument('--image', required=True, type=_image,
                        help='agent container image with ironic-coreos'
                             '[agent] (the one tools/build-agent-image.sh '
                             'builds, %s, pushed to a registry the nodes '
                             'reach), e.g. 192.0.2.1:5000/%s:TAG'
                             % (PROJECT_IMAGE_NAME, PROJECT_IMAGE_NAME))
    parser.add_argument('--api-url', type=_url,
                        help='URL of the Ironic API the agent calls back; '
                             'without it the agent uses mDNS or the '
                             'ipa-api-url kernel parameter.')
    parser.add_argument('--ssh-key-file', action='append', default=[],
                        type=argparse.FileType('r'),
                        help='SSH public key file for the core user of the '
                             'live system (repeatable)')
    parser.add_argument('--set', dest='options', action='append',
                        default=[], type=_option, metavar='SECTION.NAME=V',
                        help='agent option, e.g. DEFAULT.lookup_timeout=600 '
                             '(repeatable)')
    parser.add_argument('--ca-file', type=argparse.FileType('rb'),
                        help='CA bundle the agent uses to verify the '
                             'Ironic API')
    pull = parser.add_argument_group('pulling the agent image')
    pull.add_argument('--pull-secret-file', type=argparse.FileType('rb'),
                      help='registry auth file (auth.json) for a private '
                           'agent image; written with mode 0600')
    pull.add_argument('--insecure-registry', action='append', default=[],
                      type=_host, metavar='HOST[:PORT]',
                      help='registry reached over plain HTTP or without '
                           'TLS verification (repeatable)')
    pull.add_argument('--registry-mirror', action='append', default=[],
                      type=_mirror, metavar='SOURCE=MIRROR',
                      help='pull images of SOURCE (a registry or '
                           'HOST/PATH prefix) from MIRROR first '
                           '(repeatable)')
    pull.add_argument('--registry-ca-file', action='append', default=[],
                      type=_registry_ca, metavar='[HOST[:PORT]=]FILE',
                      help='CA of a registry (default HOST: the --image '
                           'registry), installed as /etc/containers/'
                           'certs.d/HOST/ca.crt (repeatable)')
    pull.add_argument('--no-tls-verify', action='store_true',
                      help='do not verify the TLS certificate of any '
                           'registry for the pull (prefer '
                           '--insecure-registry or --registry-ca-file)')
    pull.add_argument('--http-proxy', type=_proxy_url, metavar='URL',
                      help='proxy for the pull over HTTP')
    pull.add_argument('--https-proxy', type=_proxy_url, metavar='URL',
                      help='proxy for the pull over HTTPS')
    pull.add_argument('--no-proxy', type=_no_proxy, metavar='HOSTS',
                      help='hosts, domains and networks the pull reaches '
                           'without the proxy')
    pull.add_argument('--pull-attempts', type=_positive,
                      default=PULL_ATTEMPTS,
                      help='pull attempts before the unit fails and is '
                           'restarted (default: %(default)s)')
    pull.add_argument('--pull-retry-delay', type=_positive,
                      default=PULL_RETRY_DELAY, metavar='SECONDS',
                      help='seconds between pull attempts '
                           '(default: %(default)s)')
    net = parser.add_argument_group(
        'static network of the live system (default: DHCP)')
    net.add_argument('--network-data', type=argparse.FileType('rb'),
                     metavar='FILE',
                     help='OpenStack network_data.json, converted to '
                          'NetworkManager keyfiles')
    net.add_argument('--keyfile', action='append', default=[],
                     type=argparse.FileType('rb'), metavar='FILE',
                     help='NetworkManager keyfile NAME.nmconnection '
                          '(repeatable)')
    parser.add_argument('-o', '--output', default='-',
                        help='output file (default: standard output); '
                             'written with mode 0600')
    return parser, parser.parse_args(args)


def _read(file_obj):
    with file_obj:
        return file_obj.read()


def _keyfile(file_obj):
    """A user's keyfile, checked; raises ValueError naming the problem."""
    name = os.path.basename(file_obj.name)
    data = _read(file_obj)
    if not _KEYFILE_NAME_RE.match(name):
        raise ValueError('--keyfile %s: the file name must be NAME.'
                         'nmconnection (letters, digits, _.+-), as '
                         'NetworkManager reads it' % file_obj.name)
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(data.decode())
    except (UnicodeDecodeError, configparser.Error) as exc:
        raise ValueError('--keyfile %s is not a NetworkManager keyfile: %s'
                         % (file_obj.name, str(exc).splitlines()[0]))
    if not parser.has_option('connection', 'type'):
        raise ValueError('--keyfile %s is not a NetworkManager keyfile: it '
                         'has no [connection] type=' % file_obj.name)
    return network.Keyfile(name=name[:-len('.nmconnection')],
                           contents=data.decode())


def _keyfiles(opts):
    keyfiles = []
    if opts.network_data:
        source = opts.network_data.name
        try:
            data = json.loads(_read(opts.network_data))
        except ValueError as exc:
            raise ValueError('--network-data %s is not JSON: %s'
                             % (source, exc))
        if not isinstance(data, dict):
            raise ValueError('--network-data %s: expected a JSON object '
                             'with links, networks and services' % source)
        warnings = []
        try:
            keyfiles = network.keyfiles_from_network_data(data, warnings)
        except exception.NetworkDataError as exc:
            raise ValueError('--network-data %s: %s' % (source, exc))
        for warning in warnings:
            print('warning: --network-data %s: %s' % (source, warning),
                  file=sys.stderr)
    for file_obj in opts.keyfile:
        keyfiles.append(_keyfile(file_obj))
    seen = {}
    for keyfile in keyfiles:
        if keyfile.path in seen:
            raise ValueError('two profiles are written to %s (%s): give each '
                             'keyfile its own name' % (keyfile.path,
                                                       keyfile.name))
        seen[keyfile.path] = keyfile
    return keyfiles


def _registry_cas(opts):
    cas = []
    for host, path in opts.registry_ca_file:
        if host is None:
            host = image_registry(opts.image)
            if host is None:
                raise ValueError('--registry-ca-file %s: the image %s names '
                                 'no registry; give it as HOST[:PORT]=FILE'
                                 % (path, opts.image))
        try:
            with open(path, 'rb') as f:
                data = f.read()
        except OSError as exc:
            raise ValueError('--registry-ca-file %s: %s' % (path, exc))
        if b'-----BEGIN CERTIFICATE-----' not in data:
            raise ValueError('--registry-ca-file %s is not a PEM '
                             'certificate (no BEGIN CERTIFICATE line)' % path)
        cas.append((host, data))
    return cas


def ssh_key_lines(lines):
    """The SSH public keys of a key file's lines (no blanks, no # lines)."""
    return [line.strip() for line in lines
            if line.strip() and not line.startswith('#')]


def main(args=None):
    """Entry point of ``ironic-coreos-live-ignition``.

    :returns: the exit status.
    """
    parser, opts = _parse_args(args)
    keys = []
    for key_file in opts.ssh_key_file:
        with key_file:
            keys.extend(ssh_key_lines(key_file))
    pull_secret = ca_bundle = None
    if opts.pull_secret_file:
        pull_secret = _read(opts.pull_secret_file)
    if opts.ca_file:
        ca_bundle = _read(opts.ca_file)
    try:
        keyfiles = _keyfiles(opts)
        registry_cas = _registry_cas(opts)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        config = build(opts.image, api_url=opts.api_url,
                       ssh_keys=keys, pull_secret=pull_secret,
                       ca_bundle=ca_bundle,
                       tls_verify=not opts.no_tls_verify,
                       options=opts.options,
                       insecure=opts.insecure_registry,
                       mirrors=opts.registry_mirror,
                       registry_cas=registry_cas,
                       http_proxy=opts.http_proxy,
                       https_proxy=opts.https_proxy,
                       no_proxy=opts.no_proxy, keyfiles=keyfiles,
                       pull_attempts=opts.pull_attempts,
                       pull_retry_delay=opts.pull_retry_delay)
    except exception.InvalidIgnition as exc:
        print('error: %s' % exc, file=sys.stderr)
        return 1
    text = json.dumps(config, indent=2, sort_keys=True) + '\n'
    if opts.output == '-':
        sys.stdout.write(text)
    else:
        _write_private(opts.output, text.encode())
    return 0


def _write_private(path, contents):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'wb') as out:
        os.fchmod(out.fileno(), 0o600)
        out.write(contents)


if __name__ == '__main__':
    sys.exit(main())
