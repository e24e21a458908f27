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
with the host root bind-mounted at /mnt/coreos. This tool writes the
systemd unit that starts the container and the agent's configuration file
into an Ignition config for ``coreos-installer iso ignition embed`` or
``coreos-installer pxe ignition wrap``.
"""

import argparse
import configparser
import io
import json
import os
import shlex
import sys
import urllib.parse

from ironic_coreos.engine import exception
from ironic_coreos.engine import ignition
from ironic_coreos.engine import merge

SPEC_VERSION = '3.2.0'
UNIT_NAME = 'ironic-agent.service'
CONF_DIR = '/etc/ironic-python-agent'
CONF_FILE = CONF_DIR + '/ironic-python-agent.conf'
AUTH_FILE = '/etc/ironic-agent/auth.json'
CA_FILE = CONF_DIR + '/ironic-ca.crt'
HOST_ROOT = '/mnt/coreos'
DEFAULT_IMAGE = 'quay.io/metal3-io/ironic-agent:latest'


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


def podman_command(image, authfile=False, tls_verify=True):
    """The argv of the container that runs the agent.

    :returns: a list of strings.
    """
    argv = ['/usr/bin/podman', 'run', '--rm', '--name', 'ironic-agent',
            '--privileged', '--network', 'host', '--pid', 'host',
            '--ipc', 'host',
            '--volume', '/dev:/dev',
            '--volume', '/sys:/sys',
            '--volume', '/run/udev:/run/udev',
            '--volume', '/:%s' % HOST_ROOT,
            '--volume', '%s:%s:ro' % (CONF_DIR, CONF_DIR)]
    if authfile:
        argv += ['--authfile', AUTH_FILE]
    if not tls_verify:
        argv += ['--tls-verify=false']
    argv += [image, 'ironic-python-agent', '--config-file', CONF_FILE]
    return argv


def systemd_unit(image, authfile=False, tls_verify=True):
    """Render the systemd unit that runs the agent container."""
    command = ' '.join(shlex.quote(a) for a in podman_command(
        image, authfile=authfile, tls_verify=tls_verify))
    return '\n'.join([
        '[Unit]',
        'Description=Ironic Python Agent in a container',
        'Wants=network-online.target',
        'After=network-online.target',
        '',
        '[Service]',
        'Type=simple',
        'TimeoutStartSec=900',
        'ExecStartPre=-/usr/bin/podman rm --force --ignore ironic-agent',
        'ExecStart=%s' % command,
        'Restart=on-failure',
        'RestartSec=10',
        '',
        '[Install]',
        'WantedBy=multi-user.target',
        '',
    ])


def build(api_url=None, image=DEFAULT_IMAGE, ssh_keys=(), pull_secret=None,
          ca_bundle=None, tls_verify=True, options=()):
    """Build the live system's Ignition config.

    :param api_url: URL of the Ironic API the agent calls back.
    :param image: container image of ironic-python-agent with
        ironic-coreos[agent] installed.
    :param ssh_keys: SSH public keys for the ``core`` user of the live
        system (debugging access).
    :param pull_secret: bytes of a container registry auth file, or None.
    :param ca_bundle: bytes of a CA bundle for the Ironic API, or None.
    :param tls_verify: whether podman verifies the registry's TLS.
    :param options: ``(section, name, value)`` agent options.
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
    config = {
        'ignition': {'version': SPEC_VERSION},
        'storage': {'files': files},
        'systemd': {'units': [{
            'name': UNIT_NAME,
            'enabled': True,
            'contents': systemd_unit(image, authfile=bool(pull_secret),
                                     tls_verify=tls_verify),
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


def _parse_args(args):
    parser = argparse.ArgumentParser(
        prog='ironic-coreos-live-ignition',
        description='Build the Ignition config of the CoreOS live system '
                    'that runs ironic-python-agent as deploy ramdisk.')
    parser.add_argument('--api-url', type=_url,
                        help='URL of the Ironic API the agent calls back; '
                             'without it the agent uses mDNS or the '
                             'ipa-api-url kernel parameter.')
    parser.add_argument('--image', default=DEFAULT_IMAGE,
                        help='agent container image (default: %(default)s)')
    parser.add_argument('--ssh-key-file', action='append', default=[],
                        type=argparse.FileType('r'),
                        help='SSH public key file for the core user of the '
                             'live system (repeatable)')
    parser.add_argument('--pull-secret-file', type=argparse.FileType('rb'),
                        help='registry auth file for a private agent image')
    parser.add_argument('--ca-file', type=argparse.FileType('rb'),
                        help='CA bundle the agent uses to verify the '
                             'Ironic API')
    parser.add_argument('--no-tls-verify', action='store_true',
                        help='do not verify the registry TLS certificate')
    parser.add_argument('--set', dest='options', action='append',
                        default=[], type=_option, metavar='SECTION.NAME=V',
                        help='agent option, e.g. DEFAULT.lookup_timeout=600 '
                             '(repeatable)')
    parser.add_argument('-o', '--output', default='-',
                        help='output file (default: standard output); '
                             'written with mode 0600')
    return parser.parse_args(args)


def main(args=None):
    """Entry point of ``ironic-coreos-live-ignition``.

    :returns: the exit status.
    """
    opts = _parse_args(args)
    keys = []
    for key_file in opts.ssh_key_file:
        with key_file:
            keys.extend(line.strip() for line in key_file
                        if line.strip() and not line.startswith('#'))
    pull_secret = ca_bundle = None
    if opts.pull_secret_file:
        with opts.pull_secret_file:
            pull_secret = opts.pull_secret_file.read()
    if opts.ca_file:
        with opts.ca_file:
            ca_bundle = opts.ca_file.read()
    try:
        config = build(api_url=opts.api_url, image=opts.image,
                       ssh_keys=keys, pull_secret=pull_secret,
                       ca_bundle=ca_bundle,
                       tls_verify=not opts.no_tls_verify,
                       options=opts.options)
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
