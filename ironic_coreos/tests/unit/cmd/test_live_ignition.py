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


import base64
import json
import os
import shlex
import shutil
import stat
import subprocess
import tomllib

import fixtures
import testtools

from ironic_coreos.cmd import live_ignition
from ironic_coreos.engine import exception
from ironic_coreos.engine import ignition
from ironic_coreos.engine import network
from ironic_coreos.tests import firstboot

KEY = ('ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGr2zqvbYzvF0rZ4C2c9lQ3aE2WJ'
       '9hVdT3CyPEtq7yTB operator@example')
IMAGE = '192.0.2.1:5000/ironic-coreos-agent:test'
SECRET = b'{"auths": {"registry.example": {"auth": "SECRET-MARKER"}}}'


def _files(config):
    return {f['path']: f for f in config['storage']['files']}


def _decode(entry):
    header, _, data = entry['contents']['source'].partition(',')
    assert header.endswith(';base64'), header
    return base64.b64decode(data)


class TestBuild(testtools.TestCase):

    def test_minimal_config_validates(self):
        config = live_ignition.build(IMAGE, api_url='http://192.0.2.1:6385')
        report = ignition.validate(config)
        self.assertEqual([], report.errors)
        self.assertFalse(report.needs_network)
        self.assertEqual('3.2.0', config['ignition']['version'])

    def test_agent_config_file(self):
        config = live_ignition.build(
            IMAGE, api_url='http://192.0.2.1:6385',
            options=[('DEFAULT', 'lookup_timeout', '600'),
                     ('coreos', 'install_attempts', '5')])
        entry = _files(config)[live_ignition.CONF_FILE]
        self.assertEqual(0o600, entry['mode'])
        text = _decode(entry).decode()
        self.assertIn('api_url = http://192.0.2.1:6385', text)
        self.assertIn('lookup_timeout = 600', text)
        self.assertIn('[coreos]\nhost_root = /mnt/coreos\n'
                      'install_attempts = 5', text)

    def _unit_line(self, config, key):
        unit = config['systemd']['units'][0]['contents']
        lines = [line[len(key) + 1:] for line in unit.splitlines()
                 if line.startswith(key + '=')]
        return lines

    def test_unit_runs_privileged_container_with_host_root(self):
        config = live_ignition.build('registry.example/agent:1')
        unit = config['systemd']['units'][0]
        self.assertEqual('ironic-agent.service', unit['name'])
        self.assertTrue(unit['enabled'])
        argv = shlex.split(self._unit_line(config, 'ExecStart')[0])
        self.assertEqual(live_ignition.podman_command(
            'registry.example/agent:1'), argv)
        for flag in ('--privileged', '/dev:/dev', '/sys:/sys',
                     '/run/udev:/run/udev', '/:/mnt/coreos:rbind',
                     '--http-proxy=false', 'registry.example/agent:1'):
            self.assertIn(flag, argv)
        for option, value in (('--network', 'host'), ('--pid', 'host'),
                              ('--pull', 'never')):
            self.assertEqual([option, value],
                             argv[argv.index(option):][:2])
        self.assertNotIn('--authfile', argv)
        self.assertIn('[Install]', unit['contents'])

    def test_unit_lets_the_agent_power_off_the_live_system(self):
        config = live_ignition.build(IMAGE)
        argv = shlex.split(self._unit_line(config, 'ExecStart')[0])
        # The image's poweroff and reboot reach the host's systemd: its
        # PID 1 and /run (through the recursive bind of /).
        self.assertEqual(['--pid', 'host'],
                         argv[argv.index('--pid'):][:2])
        self.assertIn('/:%s:rbind' % live_ignition.HOST_ROOT, argv)
        # A bounded stop: a hung container cannot hold up the power-off.
        self.assertEqual([str(live_ignition.STOP_TIMEOUT)],
                         self._unit_line(config, 'TimeoutStopSec'))
        self.assertLessEqual(live_ignition.STOP_TIMEOUT, 30)

    def test_agent_output_reaches_the_journal_once(self):
        config = live_ignition.build(IMAGE)
        argv = shlex.split(self._unit_line(config, 'ExecStart')[0])
        # passthrough: the unit's own stream; no conmon journald copy.
        self.assertEqual(['--log-driver', 'passthrough'],
                         argv[argv.index('--log-driver'):][:2])
        self.assertEqual(['journal'], self._unit_line(config,
                                                      'StandardOutput'))
        self.assertNotIn('-t', argv)
        self.assertNotIn('--tty', argv)

    def test_unit_pulls_with_retries_after_network(self):
        config = live_ignition.build(IMAGE, pull_attempts=7,
                                     pull_retry_delay=3)
        self.assertEqual(['network-online.target'],
                         self._unit_line(config, 'Wants'))
        self.assertEqual(['network-online.target'],
                         self._unit_line(config, 'After'))
        pre = [shlex.split(line)
               for line in self._unit_line(config, 'ExecStartPre')]
        self.assertEqual(['-/usr/bin/podman', 'rm', '--force', '--ignore',
                          'ironic-agent'], pre[0])
        self.assertEqual([live_ignition.PULL_SCRIPT, '7', '3', '900',
                          IMAGE], pre[1])
        self.assertEqual(['on-failure'], self._unit_line(config, 'Restart'))
        script = _files(config)[live_ignition.PULL_SCRIPT]
        self.assertEqual(0o755, script['mode'])
        self.assertTrue(_decode(script).startswith(b'#!/bin/bash\n'))

    def test_pull_secret_is_private_and_used(self):
        config = live_ignition.build(IMAGE, pull_secret=SECRET)
        entry = _files(config)[live_ignition.AUTH_FILE]
        self.assertEqual(0o600, entry['mode'])
        self.assertEqual(SECRET, _decode(entry))
        pull = shlex.split(self._unit_line(config, 'ExecStartPre')[1])
        self.assertEqual(['--authfile', live_ignition.AUTH_FILE], pull[-2:])
        run = shlex.split(self._unit_line(config, 'ExecStart')[0])
        self.assertNotIn('--authfile', run)

    def test_ca_bundle(self):
        config = live_ignition.build(IMAGE, ca_bundle=b'-----BEGIN CERT...')
        files = _files(config)
        self.assertIn(live_ignition.CA_FILE, files)
        self.assertIn('cafile = %s' % live_ignition.CA_FILE,
                      _decode(files[live_ignition.CONF_FILE]).decode())

    def test_ssh_keys_for_core(self):
        config = live_ignition.build(IMAGE, ssh_keys=[KEY])
        self.assertEqual([{'name': 'core', 'sshAuthorizedKeys': [KEY]}],
                         config['passwd']['users'])

    def test_no_tls_verify(self):
        config = live_ignition.build(IMAGE, tls_verify=False)
        pull = shlex.split(self._unit_line(config, 'ExecStartPre')[1])
        self.assertEqual('--tls-verify=false', pull[-1])

    def test_invalid_result_raises(self):
        self.assertRaises(exception.InvalidIgnition, live_ignition.build,
                          IMAGE, ssh_keys=['not a key'])


class TestRegistry(testtools.TestCase):

    def test_insecure_registries_and_mirrors_drop_in(self):
        config = live_ignition.build(
            IMAGE, insecure=['192.0.2.1:5000', 'registry.example'],
            mirrors=[('quay.io', '192.0.2.1:5000'),
                     ('quay.io', 'mirror.example/quay'),
                     ('docker.io/library', 'registry.example')])
        entry = _files(config)[live_ignition.REGISTRIES_FILE]
        self.assertEqual(0o644, entry['mode'])
        conf = tomllib.loads(_decode(entry).decode())
        registries = {r['location']: r for r in conf['registry']}
        self.assertEqual({'quay.io', 'docker.io/library', '192.0.2.1:5000',
                          'registry.example'}, set(registries))
        quay = registries['quay.io']
        self.assertEqual('quay.io', quay['prefix'])
        self.assertNotIn('insecure', quay)
        self.assertEqual([{'location': '192.0.2.1:5000', 'insecure': True},
                          {'location': 'mirror.example/quay'}],
                         quay['mirror'])
        self.assertEqual([{'location': 'registry.example',
                           'insecure': True}],
                         registries['docker.io/library']['mirror'])
        self.assertTrue(registries['192.0.2.1:5000']['insecure'])
        self.assertTrue(registries['registry.example']['insecure'])

    def test_no_drop_in_by_default(self):
        config = live_ignition.build(IMAGE)
        self.assertNotIn(live_ignition.REGISTRIES_FILE, _files(config))

    def test_registry_ca(self):
        config = live_ignition.build(
            IMAGE, registry_cas=[('192.0.2.1:5000', b'CA-PEM')])
        entry = _files(config)['/etc/containers/certs.d/192.0.2.1:5000/'
                               'ca.crt']
        self.assertEqual(0o644, entry['mode'])
        self.assertEqual(b'CA-PEM', _decode(entry))

    def test_proxy_for_the_pull_only(self):
        proxy = 'http://user:p%40ss@proxy.example:3128'
        config = live_ignition.build(IMAGE, https_proxy=proxy,
                                     no_proxy='192.0.2.1,.example')
        entry = _files(config)[live_ignition.PROXY_FILE]
        self.assertEqual(0o600, entry['mode'])
        self.assertEqual(
            ('HTTPS_PROXY="%s"\nhttps_proxy="%s"\n'
             'NO_PROXY="192.0.2.1,.example"\nno_proxy="192.0.2.1,.example"'
             '\n' % (proxy, proxy)).encode(), _decode(entry))
        unit = config['systemd']['units'][0]['contents']
        self.assertIn('EnvironmentFile=%s\n' % live_ignition.PROXY_FILE,
                      unit)
        self.assertNotIn('proxy.example', unit)
        self.assertIn('--http-proxy=false', unit)

    def test_no_proxy_file_by_default(self):
        config = live_ignition.build(IMAGE)
        self.assertNotIn(live_ignition.PROXY_FILE, _files(config))
        self.assertNotIn('EnvironmentFile',
                         config['systemd']['units'][0]['contents'])

    def test_image_registry(self):
        for image, registry in (
                ('192.0.2.1:5000/agent:1', '192.0.2.1:5000'),
                ('registry.example/ns/agent', 'registry.example'),
                ('localhost/ironic-coreos-agent:k', 'localhost'),
                ('[2001:db8::1]:5000/agent', '[2001:db8::1]:5000'),
                ('ns/agent:1', None), ('agent', None)):
            self.assertEqual(registry, live_ignition.image_registry(image),
                             image)


class TestLiveNetwork(testtools.TestCase):

    def test_keyfiles_written_private(self):
        keyfiles = network.keyfiles_from_network_data({
            'links': [{'id': 'eth0', 'type': 'phy',
                       'ethernet_mac_address': '52:54:00:12:34:56'}],
            'networks': [{'id': 'n0', 'link': 'eth0', 'type': 'ipv4',
                          'ip_address': '192.0.2.20',
                          'netmask': '255.255.255.0'}]})
        config = live_ignition.build(IMAGE, keyfiles=keyfiles)
        entry = _files(config)['/etc/NetworkManager/system-connections/'
                               'eth0.nmconnection']
        self.assertEqual(0o600, entry['mode'])
        text = _decode(entry).decode()
        self.assertIn('mac-address=52:54:00:12:34:56', text)
        self.assertIn('address1=192.0.2.20/24', text)


class TestPullScript(testtools.TestCase):
    """The pull script of the unit, run with a stand-in podman."""

    def setUp(self):
        super().setUp()
        self.tmp = self.useFixture(fixtures.TempDir()).path
        config = live_ignition.build(IMAGE)
        self.script = os.path.join(self.tmp, 'ironic-agent-pull')
        with open(self.script, 'wb') as f:
            f.write(_decode(_files(config)[live_ignition.PULL_SCRIPT]))
        os.chmod(self.script, 0o755)
        self.bin = os.path.join(self.tmp, 'bin')
        os.mkdir(self.bin)
        self.calls = os.path.join(self.tmp, 'calls')
        self.console = os.path.join(self.tmp, 'console')

    def _podman(self, failures):
        # Fails the first FAILURES pulls, then succeeds.
        path = os.path.join(self.bin, 'podman')
        with open(path, 'w') as f:
            f.write('#!/bin/sh\n'
                    'echo "$@" >> %s\n'
                    'n=$(wc -l < %s)\n'
                    'if [ "$n" -le %d ]; then\n'
                    '  echo "Error: connection refused" >&2; exit 125\n'
                    'fi\n' % (self.calls, self.calls, failures))
        os.chmod(path, 0o755)

    def _run(self, attempts, *options):
        env = dict(os.environ, PATH='%s:/usr/bin:/bin' % self.bin,
                   IRONIC_AGENT_CONSOLE=self.console)
        return subprocess.run([self.script, str(attempts), '0', '60', IMAGE]
                              + list(options), env=env,
                              capture_output=True, text=True, timeout=60)

    def _read(self, path):
        if not os.path.exists(path):
            return ''
        with open(path) as f:
            return f.read()

    def test_retries_until_the_pull_works(self):
        self._podman(failures=2)
        proc = self._run(5, '--authfile', '/etc/ironic-agent/auth.json')
        self.assertEqual(0, proc.returncode, proc.stderr)
        self.assertEqual(['pull --quiet --authfile /etc/ironic-agent/'
                          'auth.json %s' % IMAGE] * 3,
                         self._read(self.calls).splitlines())
        self.assertIn('failed (attempt 2 of 5)', proc.stderr)
        self.assertIn('pulled %s' % IMAGE, proc.stdout)
        self.assertIn('cannot pull the agent image %s yet' % IMAGE,
                      self._read(self.console))
        self.assertNotIn('FAILED', self._read(self.console))

    def test_gives_up_with_a_line_on_the_console(self):
        self._podman(failures=10)
        proc = self._run(3)
        self.assertEqual(1, proc.returncode)
        self.assertEqual(3, len(self._read(self.calls).splitlines()))
        console = self._read(self.console)
        self.assertIn('ironic-agent: FAILED to pull the agent image %s '
                      'after 3 attempts' % IMAGE, console)
        self.assertIn('FAILED to pull', proc.stderr)
        self.assertIn('Error: connection refused', proc.stderr)


@testtools.skipUnless(shutil.which('systemd-analyze'),
                      'systemd-analyze is not installed (apt-get install '
                      'systemd)')
class TestUnitVerify(testtools.TestCase):
    """The unit as the live system gets it, checked by systemd-analyze."""

    def setUp(self):
        super().setUp()
        self.root = self.useFixture(fixtures.TempDir()).path
        units = os.path.join(self.root, 'usr/lib/systemd/system')
        # systemd's own units (the targets the unit depends on).
        shutil.copytree('/usr/lib/systemd/system', units, symlinks=True)
        for path in ('usr/bin/podman', live_ignition.PULL_SCRIPT[1:]):
            full = os.path.join(self.root, path)
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, 'w') as f:
                f.write('#!/bin/sh\n')
            os.chmod(full, 0o755)

    def _verify(self, config):
        unit = config['systemd']['units'][0]
        path = os.path.join(self.root, 'etc/systemd/system', unit['name'])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'w') as f:
            f.write(unit['contents'])
        for entry in config['storage']['files']:
            if entry['path'] == live_ignition.PROXY_FILE:
                full = os.path.join(self.root, entry['path'][1:])
                os.makedirs(os.path.dirname(full), exist_ok=True)
                with open(full, 'wb') as f:
                    f.write(_decode(entry))
        return subprocess.run(
            ['systemd-analyze', 'verify', '--root', self.root,
             '/etc/systemd/system/' + unit['name']],
            capture_output=True, text=True, timeout=120)

    def test_unit_verifies(self):
        config = live_ignition.build(
            IMAGE, pull_secret=SECRET, tls_verify=False,
            https_proxy='http://proxy.example:3128')
        proc = self._verify(config)
        self.assertEqual((0, ''), (proc.returncode, proc.stderr.strip()))

    def test_verify_sees_a_broken_unit(self):
        # The check is real: a missing command is reported.
        os.unlink(os.path.join(self.root, 'usr/bin/podman'))
        proc = self._verify(live_ignition.build(IMAGE))
        self.assertIn('/usr/bin/podman is not executable', proc.stderr)


@testtools.skipUnless(shutil.which('ignition-validate'),
                      'ignition-validate is not installed (apt-get install '
                      'ignition)')
class TestIgnitionValidate(testtools.TestCase):

    def test_full_config_passes_both_validators(self):
        tmp = self.useFixture(fixtures.TempDir()).path
        keyfiles = network.keyfiles_from_network_data({
            'links': [{'id': 'eth0', 'type': 'phy',
                       'ethernet_mac_address': '52:54:00:12:34:56'}],
            'networks': [{'id': 'n0', 'link': 'eth0', 'type': 'ipv4_dhcp'}]})
        config = live_ignition.build(
            IMAGE, api_url='http://192.0.2.1:6385', ssh_keys=[KEY],
            pull_secret=SECRET, ca_bundle=b'-----BEGIN CERT...',
            options=[('DEFAULT', 'lookup_timeout', '600')],
            insecure=['192.0.2.1:5000'],
            mirrors=[('quay.io', '192.0.2.1:5000')],
            registry_cas=[('registry.example', b'CA')],
            http_proxy='http://proxy.example:3128',
            https_proxy='http://proxy.example:3128', no_proxy='192.0.2.1',
            keyfiles=keyfiles)
        self.assertEqual([], ignition.validate(config).errors)
        path = os.path.join(tmp, 'live.ign')
        with open(path, 'w') as f:
            json.dump(config, f)
        proc = subprocess.run(['ignition-validate', path],
                              capture_output=True, text=True, timeout=60)
        self.assertEqual((0, ''), (proc.returncode, proc.stdout.strip()),
                         proc.stderr)


class TestMain(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.tmp = self.useFixture(fixtures.TempDir()).path

    def test_output_file_is_private(self):
        out = os.path.join(self.tmp, 'live.ign')
        secret = os.path.join(self.tmp, 'auth.json')
        with open(secret, 'wb') as f:
            f.write(SECRET)
        self.assertEqual(0, live_ignition.main(
            ['--image', IMAGE, '--api-url', 'http://192.0.2.1:6385',
             '--pull-secret-file',
             secret, '--set', 'lookup_timeout=600', '-o', out]))
        self.assertEqual(0o600, stat.S_IMODE(os.stat(out).st_mode))
        with open(out) as f:
            config = json.load(f)
        self.assertEqual([], ignition.validate(config).errors)

    def test_bad_option_is_rejected(self):
        stderr = self.useFixture(fixtures.StringStream('stderr')).stream
        self.useFixture(fixtures.MonkeyPatch('sys.stderr', stderr))
        exc = self.assertRaises(SystemExit, live_ignition.main,
                                ['--image', IMAGE, '--set',
                                 'no-equals-sign'])
        self.assertEqual(2, exc.code)
        stderr.seek(0)
        self.assertIn('[SECTION.]NAME=VALUE', stderr.read())

    def test_bad_api_url_is_rejected(self):
        stderr = self.useFixture(fixtures.StringStream('stderr')).stream
        self.useFixture(fixtures.MonkeyPatch('sys.stderr', stderr))
        self.assertRaises(SystemExit, live_ignition.main,
                          ['--image', IMAGE, '--api-url', 'ftp://192.0.2.1'])
        stderr.seek(0)
        self.assertIn('not an http(s) URL', stderr.read())

    def _fails(self, argv):
        stderr = self.useFixture(fixtures.StringStream('stderr')).stream
        self.useFixture(fixtures.MonkeyPatch('sys.stderr', stderr))
        exc = self.assertRaises(SystemExit, live_ignition.main, argv)
        self.assertEqual(2, exc.code)
        stderr.seek(0)
        return stderr.read()

    def _write(self, name, data):
        path = os.path.join(self.tmp, name)
        with open(path, 'wb') as f:
            f.write(data)
        return path

    def _main(self, argv):
        out = os.path.join(self.tmp, 'live.ign')
        self.assertEqual(0, live_ignition.main(argv + ['-o', out]))
        with open(out) as f:
            return json.load(f)

    def test_image_is_required(self):
        err = self._fails(['--api-url', 'http://192.0.2.1:6385'])
        self.assertIn('--image', err)

    def test_bad_image_is_rejected(self):
        err = self._fails(['--image', 'agent image'])
        self.assertIn("'agent image' is not a container image reference",
                      err)

    def test_bad_registry_options_are_rejected(self):
        self.assertIn("'http://192.0.2.1' is not a registry HOST[:PORT]",
                      self._fails(['--image', IMAGE, '--insecure-registry',
                                   'http://192.0.2.1']))
        self.assertIn('is not of the form SOURCE=MIRROR',
                      self._fails(['--image', IMAGE, '--registry-mirror',
                                   'quay.io']))

    def test_bad_proxy_is_rejected_without_echo(self):
        err = self._fails(['--image', IMAGE, '--https-proxy',
                           'user:SECRET-MARKER@proxy.example'])
        self.assertIn('the proxy is not an http://', err)
        self.assertNotIn('SECRET-MARKER', err)

    def test_registry_options(self):
        ca = self._write('ca.crt', b'-----BEGIN CERTIFICATE-----\nX\n')
        config = self._main([
            '--image', IMAGE, '--insecure-registry', '192.0.2.1:5000',
            '--registry-mirror', 'quay.io=192.0.2.1:5000',
            '--registry-ca-file', ca,
            '--registry-ca-file', 'registry.example=' + ca,
            '--https-proxy', 'http://proxy.example:3128',
            '--no-proxy', '192.0.2.1', '--pull-attempts', '4',
            '--pull-retry-delay', '2'])
        files = _files(config)
        self.assertIn('/etc/containers/certs.d/192.0.2.1:5000/ca.crt', files)
        self.assertIn('/etc/containers/certs.d/registry.example/ca.crt',
                      files)
        conf = tomllib.loads(_decode(
            files[live_ignition.REGISTRIES_FILE]).decode())
        self.assertEqual(['quay.io', '192.0.2.1:5000'],
                         [r['location'] for r in conf['registry']])
        self.assertIn(b'HTTPS_PROXY="http://proxy.example:3128"',
                      _decode(files[live_ignition.PROXY_FILE]))
        self.assertIn('ExecStartPre=%s 4 2 ' % live_ignition.PULL_SCRIPT,
                      config['systemd']['units'][0]['contents'])

    def test_registry_ca_needs_a_host(self):
        ca = self._write('ca.crt', b'-----BEGIN CERTIFICATE-----\nX\n')
        err = self._fails(['--image', 'ns/agent:1', '--registry-ca-file',
                           ca])
        self.assertIn('the image ns/agent:1 names no registry; give it as '
                      'HOST[:PORT]=FILE', err)
        err = self._fails(['--image', IMAGE, '--registry-ca-file',
                           self._write('x.crt', b'not a cert')])
        self.assertIn('is not a PEM certificate', err)

    def test_network_data(self):
        path = self._write('network_data.json', json.dumps({
            'links': [{'id': 'eth0', 'type': 'phy',
                       'ethernet_mac_address': '52:54:00:12:34:56'}],
            'networks': [{'id': 'n0', 'link': 'eth0', 'type': 'ipv4',
                          'ip_address': '192.0.2.20',
                          'netmask': '255.255.255.0',
                          'routes': [{'network': '0.0.0.0',
                                      'netmask': '0.0.0.0',
                                      'gateway': '192.0.2.1'}]}],
            'services': [{'type': 'dns', 'address': '192.0.2.53'}],
        }).encode())
        config = self._main(['--image', IMAGE, '--network-data', path])
        entry = _files(config)['/etc/NetworkManager/system-connections/'
                               'eth0.nmconnection']
        text = _decode(entry).decode()
        self.assertIn('gateway=192.0.2.1', text)
        self.assertIn('dns=192.0.2.53;', text)

    def test_bad_network_data_names_file_and_field(self):
        path = self._write('nd.json', json.dumps({
            'links': [{'id': 'eth0', 'type': 'phy',
                       'ethernet_mac_address': 'nope'}]}).encode())
        err = self._fails(['--image', IMAGE, '--network-data', path])
        self.assertIn('--network-data %s: ' % path, err)
        self.assertIn('links[0].ethernet_mac_address', err)
        path = self._write('nd2.json', b'[1, 2]')
        self.assertIn('expected a JSON object', self._fails(
            ['--image', IMAGE, '--network-data', path]))

    def test_keyfile(self):
        path = self._write('static.nmconnection',
                           b'[connection]\nid=static\ntype=ethernet\n\n'
                           b'[ipv4]\nmethod=manual\n'
                           b'address1=192.0.2.5/24\n')
        config = self._main(['--image', IMAGE, '--keyfile', path])
        entry = _files(config)['/etc/NetworkManager/system-connections/'
                               'static.nmconnection']
        self.assertEqual(0o600, entry['mode'])
        self.assertIn(b'address1=192.0.2.5/24', _decode(entry))

    def test_bad_keyfiles_are_rejected(self):
        bad_name = self._write('static.conf', b'[connection]\ntype=ethernet\n')
        self.assertIn('the file name must be NAME.nmconnection', self._fails(
            ['--image', IMAGE, '--keyfile', bad_name]))
        not_ini = self._write('x.nmconnection', b'just text\n')
        self.assertIn('is not a NetworkManager keyfile', self._fails(
            ['--image', IMAGE, '--keyfile', not_ini]))
        no_type = self._write('y.nmconnection', b'[connection]\nid=y\n')
        self.assertIn('has no [connection] type=', self._fails(
            ['--image', IMAGE, '--keyfile', no_type]))

    def test_two_profiles_with_one_name_are_rejected(self):
        first = self._write('eth0.nmconnection',
                            b'[connection]\ntype=ethernet\n')
        nd = self._write('nd.json', json.dumps({
            'links': [{'id': 'eth0', 'type': 'phy',
                       'ethernet_mac_address': '52:54:00:12:34:56'}]
        }).encode())
        err = self._fails(['--image', IMAGE, '--network-data', nd,
                           '--keyfile', first])
        self.assertIn('two profiles are written to /etc/NetworkManager/'
                      'system-connections/eth0.nmconnection', err)


class TestFirstBoot(testtools.TestCase):
    """The live system's config applied by the real Ignition."""

    def setUp(self):
        super().setUp()
        reason = firstboot.unavailable_reason()
        if reason:
            self.skipTest(reason)

    def test_live_system_gets_unit_and_config(self):
        config = live_ignition.build(IMAGE, api_url='http://192.0.2.1:6385',
                                     ssh_keys=[KEY], pull_secret=SECRET)
        result = self.useFixture(firstboot.FirstBootFixture(config)).result
        unit = '/etc/systemd/system/ironic-agent.service'
        self.assertIn(b'ExecStart=/usr/bin/podman run', result.read(unit))
        wants = ('/etc/systemd/system/multi-user.target.wants/'
                 'ironic-agent.service')
        self.assertTrue(os.path.lexists(result.path(wants)))
        self.assertEqual(0o600, result.mode(live_ignition.CONF_FILE))
        self.assertEqual(0o600, result.mode(live_ignition.AUTH_FILE))
        self.assertEqual(0o755, result.mode(live_ignition.PULL_SCRIPT))
        self.assertIn(b'podman pull', result.read(live_ignition.PULL_SCRIPT))
        self.assertIn(KEY, result.authorized_keys('core'))

    def test_registry_proxy_and_network_files(self):
        keyfiles = network.keyfiles_from_network_data({
            'links': [{'id': 'eth0', 'type': 'phy',
                       'ethernet_mac_address': '52:54:00:12:34:56'}],
            'networks': [{'id': 'n0', 'link': 'eth0', 'type': 'ipv4',
                          'ip_address': '192.0.2.20',
                          'netmask': '255.255.255.0'}]})
        config = live_ignition.build(
            IMAGE, insecure=['192.0.2.1:5000'],
            registry_cas=[('192.0.2.1:5000', b'CA')],
            https_proxy='http://proxy.example:3128', keyfiles=keyfiles)
        result = self.useFixture(firstboot.FirstBootFixture(config)).result
        self.assertIn(b'insecure = true',
                      result.read(live_ignition.REGISTRIES_FILE))
        self.assertEqual(b'CA', result.read(
            '/etc/containers/certs.d/192.0.2.1:5000/ca.crt'))
        self.assertEqual(0o600, result.mode(live_ignition.PROXY_FILE))
        self.assertEqual(0o600, result.mode(
            '/etc/NetworkManager/system-connections/eth0.nmconnection'))
