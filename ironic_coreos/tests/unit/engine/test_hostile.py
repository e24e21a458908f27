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

"""Hostile input for every engine parser: only documented errors.

Property-based: each parser gets generated hostile input (random JSON
shapes and values, huge numbers, deep nesting, bad unicode, duplicated
keys, truncated and corrupted gzip, base64 and ISO 9660) and must either
succeed or raise its own documented error, with a message that is not
Python's internal text.

The number of examples comes from the hypothesis profile named by
``IRONIC_COREOS_HYPOTHESIS_PROFILE``: ``ci`` (default, a bounded run in
the unit tests) or ``fuzz`` (``tox -e fuzz``, a long run).
"""

import base64
import gzip
import json
import os
import subprocess
import sys
import unittest

import hypothesis
from hypothesis import strategies as st

from ironic_coreos.engine import configdrive
from ironic_coreos.engine import exception
from ironic_coreos.engine import ignition
from ironic_coreos.engine import installer
from ironic_coreos.engine import merge
from ironic_coreos.engine import network
from ironic_coreos.engine import spec
from ironic_coreos.tests import configdrive as drives
from ironic_coreos.tests import large_ignition

hypothesis.settings.register_profile(
    'ci', max_examples=40, deadline=None,
    suppress_health_check=list(hypothesis.HealthCheck))
hypothesis.settings.register_profile(
    'fuzz', max_examples=20000, deadline=None,
    suppress_health_check=list(hypothesis.HealthCheck))
# Only the failing examples saved in hypothesis' database (tools/fuzz.py
# replays them for a test that its time-up stopped).
hypothesis.settings.register_profile(
    'replay', deadline=None,
    phases=[hypothesis.Phase.explicit, hypothesis.Phase.reuse],
    suppress_health_check=list(hypothesis.HealthCheck))
PROFILE = hypothesis.settings.get_profile(
    os.environ.get('IRONIC_COREOS_HYPOTHESIS_PROFILE', 'ci'))

# Text that betrays an internal error rather than a message for users.
INTERNAL = ('Traceback', 'Exceeds the limit', 'set_int_max_str_digits',
            'has no attribute', 'unhashable', 'NoneType', 'object is not',
            'maximum recursion', 'not subscriptable', 'unsupported operand')

KNOWN_KEYS = ['ignition', 'version', 'storage', 'files', 'path', 'mode',
              'contents', 'source', 'compression', 'verification', 'hash',
              'links', 'target', 'directories', 'systemd', 'units', 'name',
              'dropins', 'passwd', 'users', 'sshAuthorizedKeys', 'disks',
              'device', 'partitions', 'filesystems', 'format', 'luks',
              'clevis', 'tang', 'url', 'kernelArguments', 'shouldExist',
              'httpHeaders', 'value', 'user', 'id', 'links', 'networks',
              'services', 'type', 'ethernet_mac_address', 'bond_links',
              'vlan_link', 'vlan_id', 'link', 'ip_address', 'netmask',
              'routes', 'gateway', 'address', 'mtu', 'bond_mode',
              'user_data', 'meta_data', 'network_data', 'public_keys',
              'hostname', 'append_kargs', 'image_url', 'fetch_retries']

# More digits than Python converts to text (only in the regression tests:
# hypothesis could not print such an example).
HUGE = 10 ** 5000 + 7
BIG = 10 ** 300 + 7

scalars = (st.none() | st.booleans()
           | st.integers() | st.sampled_from([BIG, -BIG, 2 ** 63,
                                              -2 ** 63, 2 ** 64, 0o7777])
           | st.floats(allow_nan=True, allow_infinity=True)
           | st.text(max_size=20)
           | st.sampled_from(['/etc/x', 'data:,x', 'data:;base64,@@',
                              'https://e/x', '3.3.0', '3.6.0', 'a.service',
                              'gzip', 'ssh-ed25519 AAAA', '\ud800', '',
                              '../..', 'x' * 3000, '52:54:00:00:00:01',
                              '10.0.0.1', 'ffff::', 'phy', 'bond', 'vlan',
                              'ipv4', 'ipv6', 'dns', '0.0.0.0']))

values = st.recursive(
    scalars,
    lambda children: (st.lists(children, max_size=4)
                      | st.dictionaries(st.sampled_from(KNOWN_KEYS)
                                        | st.text(max_size=5),
                                        children, max_size=5)),
    max_leaves=30)

# Values JSON can carry (what arrives through the API as JSON text).
json_scalars = (st.none() | st.booleans() | st.integers()
                | st.sampled_from([BIG, -BIG, 2 ** 63, 2 ** 64])
                | st.floats(allow_nan=False, allow_infinity=False)
                | st.text(max_size=20))
json_values = st.recursive(
    json_scalars,
    lambda children: (st.lists(children, max_size=4)
                      | st.dictionaries(st.sampled_from(KNOWN_KEYS)
                                        | st.text(max_size=5),
                                        children, max_size=5)),
    max_leaves=30)


def _deep(depth, kind):
    return ('[' * depth + ']' * depth if kind == 'list'
            else '{"a":' * depth + '1' + '}' * depth)


VALID = large_ignition.text(large_ignition.build(8 * 1024))


@st.composite
def mangled_text(draw):
    """A valid config text truncated, spliced or with garbage inserted."""
    text = VALID
    for _ in range(draw(st.integers(1, 3))):
        pos = draw(st.integers(0, len(text)))
        action = draw(st.sampled_from(['cut', 'insert', 'delete', 'dup']))
        if action == 'cut':
            text = text[:pos]
        elif action == 'insert':
            text = text[:pos] + draw(st.sampled_from(
                ['"', ',', ']', '}', '{', '[', '\\', '\ud800', '9' * 5000,
                 'NaN', '-Infinity', '1e99999', '"mode": 1,', '\x00',
                 '"path": "/x",', _deep(3000, 'list'), '\ufeff',
                 '\u2028'])
            ) + text[pos:]
        elif action == 'delete':
            end = draw(st.integers(pos, min(len(text), pos + 50)))
            text = text[:pos] + text[end:]
        else:
            end = draw(st.integers(pos, min(len(text), pos + 200)))
            text = text[:end] + text[pos:end] + text[end:]
    return text


def assertPublic(test, message):
    for marker in INTERNAL:
        test.assertNotIn(marker, message)


class TestIgnitionHostile(unittest.TestCase):

    def _validate(self, data):
        report = ignition.validate(data)
        assertPublic(self, report.summary())
        for problem in report.errors + report.warnings:
            self.assertTrue(problem.path.startswith('$'), problem)
            self.assertLess(len(str(problem)), 4000, problem.path)
        try:
            ignition.check(data)
        except exception.InvalidIgnition as exc:
            assertPublic(self, str(exc))
        try:
            ignition.parse(data)
        except exception.InvalidIgnition as exc:
            assertPublic(self, str(exc))
        return report

    @PROFILE
    @hypothesis.given(values, st.sampled_from(spec.STABLE_VERSIONS))
    def test_values_as_dict(self, body, version):
        config = body if isinstance(body, dict) else {'storage': body}
        config['ignition'] = {'version': version}
        self._validate(config)

    @PROFILE
    @hypothesis.given(json_values, st.sampled_from(spec.STABLE_VERSIONS))
    def test_values_as_text(self, body, version):
        config = body if isinstance(body, dict) else {'storage': body}
        config['ignition'] = {'version': version}
        text = json.dumps(config, indent=1)
        as_text = self._validate(text)
        as_dict = self._validate(config)
        self.assertEqual(as_dict.valid, as_text.valid)

    @PROFILE
    @hypothesis.given(values)
    def test_anything(self, value):
        self._validate(value)

    @PROFILE
    @hypothesis.given(st.text() | st.binary())
    def test_any_text_or_bytes(self, data):
        self._validate(data)

    @PROFILE
    @hypothesis.given(mangled_text())
    def test_mangled_text(self, text):
        report = self._validate(text)
        for problem in report.errors:
            if problem.message.startswith('invalid JSON'):
                self.assertIsNotNone(problem.line)

    @PROFILE
    @hypothesis.given(values, values)
    def test_merge(self, body, extra):
        config = body if isinstance(body, dict) else {'storage': body}
        config.setdefault('ignition', {'version': '3.3.0'})
        additions = merge.Additions(
            hostname='node-1', ssh_keys=[large_ignition.ssh_key(1)],
            files=[merge.File('/etc/NetworkManager/system-connections/'
                              'a.nmconnection', b'[connection]\n', 0o600)],
            kernel_args=['console=ttyS0'])
        try:
            merged = merge.merge(config, additions)
        except (exception.MergeConflict, exception.InvalidArgument) as exc:
            assertPublic(self, str(exc))
        else:
            self._validate(merged)
        try:
            merge.merge(config, merge.Additions(hostname=extra,
                                                ssh_keys=extra,
                                                ssh_user=extra,
                                                kernel_args=extra))
        except (exception.MergeConflict, exception.InvalidArgument) as exc:
            assertPublic(self, str(exc))


class TestConfigDriveHostile(unittest.TestCase):

    def _read(self, value):
        try:
            configdrive.read(value)
        except exception.ConfigDriveError as exc:
            assertPublic(self, str(exc))

    @PROFILE
    @hypothesis.given(values)
    def test_values(self, value):
        if isinstance(value, str) and '://' in value[:16]:
            return  # a URL would be fetched
        self._read(value)

    @PROFILE
    @hypothesis.given(st.dictionaries(
        st.sampled_from(['user_data', 'meta_data', 'network_data',
                         'vendor_data']), values, max_size=4))
    def test_dict(self, value):
        self._read(value)
        self._read(json.dumps(value, default=repr))

    @PROFILE
    @hypothesis.given(st.binary(max_size=4096), st.booleans())
    def test_base64_and_gzip(self, blob, compress):
        if compress:
            blob = gzip.compress(blob)
        self._read(base64.b64encode(blob).decode())
        self._read(blob)

    @PROFILE
    @hypothesis.given(st.data())
    def test_corrupted_iso(self, data):
        blob = bytearray(gzip.decompress(base64.b64decode(
            drives.build_iso(user_data={'ignition': {'version': '3.3.0'}},
                             meta_data={'uuid': 'x', 'hostname': 'h'}))))
        for _ in range(data.draw(st.integers(1, 20))):
            pos = data.draw(st.integers(0, len(blob) - 1))
            blob[pos] = data.draw(st.integers(0, 255))
        if data.draw(st.booleans()):
            blob = blob[:data.draw(st.integers(0, len(blob)))]
        blob = bytes(blob)
        self._read(blob)
        self._read(base64.b64encode(gzip.compress(blob)).decode())


class TestNetworkDataHostile(unittest.TestCase):

    @PROFILE
    @hypothesis.given(values)
    def test_values(self, value):
        try:
            network.keyfiles_from_network_data(value)
        except exception.NetworkDataError as exc:
            assertPublic(self, str(exc))

    @PROFILE
    @hypothesis.given(st.lists(st.dictionaries(
        st.sampled_from(KNOWN_KEYS), values, max_size=6), max_size=3),
        st.lists(st.dictionaries(st.sampled_from(KNOWN_KEYS), values,
                                 max_size=6), max_size=3))
    def test_links_and_networks(self, links, networks):
        try:
            network.keyfiles_from_network_data(
                {'links': links, 'networks': networks,
                 'services': [{'type': 'dns', 'address': '10.0.0.1'}]})
        except exception.NetworkDataError as exc:
            assertPublic(self, str(exc))


class TestInstallArgsHostile(unittest.TestCase):

    @PROFILE
    @hypothesis.given(st.dictionaries(
        st.sampled_from(sorted(installer.ARGUMENTS)), values, max_size=6),
        values)
    def test_values(self, args, info):
        node = {'instance_info': info if isinstance(info, dict) else {},
                'automated_clean': True}
        try:
            installer.parse_args(args, node=node)
        except exception.InvalidArgument as exc:
            assertPublic(self, str(exc))


class TestRegressions(unittest.TestCase):
    """Inputs that once broke a parser."""

    def test_mode_of_5000_digits_text(self):
        text = ('{"ignition": {"version": "3.3.0"}, "storage": {"files": '
                '[{"path": "/etc/x", "mode": %s}]}}' % ('7' * 5000))
        report = ignition.validate(text)
        self.assertEqual(['$.storage.files[0].mode'],
                         [p.path for p in report.errors])
        self.assertIn('out of range', report.errors[0].message)
        self.assertEqual(1, report.errors[0].line)

    def test_mode_of_5000_digits_dict(self):
        report = ignition.validate(
            {'ignition': {'version': '3.3.0'},
             'storage': {'files': [{'path': '/etc/x', 'mode': HUGE}]}})
        self.assertEqual(['$.storage.files[0].mode'],
                         [p.path for p in report.errors])
        self.assertIn('out of range', report.errors[0].message)

    def test_long_unknown_key_is_shortened_in_the_message(self):
        key = '[' * 6000
        text = ('{\n  "ignition": {\n    "version": "3.3.0"\n  },\n'
                '  "passwd": {\n    "%s": 1\n  }\n}' % key)
        report = ignition.validate(text)
        self.assertEqual(1, len(report.errors))
        problem = report.errors[0]
        self.assertEqual('$.passwd[%s]' % json.dumps(key), problem.path)
        shown = str(problem)
        self.assertLess(len(shown), 1000)
        self.assertIn('at $.passwd["[[[', shown)
        self.assertIn('[[["', shown)
        self.assertIn('(line 6, column 5)', shown)

    def test_config_drive_user_data_with_a_lone_surrogate(self):
        # Found by the fuzz hour: a UnicodeEncodeError escaped.
        with self.assertRaises(exception.ConfigDriveError) as caught:
            configdrive.read({'user_data': 'ab\ud800'})
        self.assertIn('user_data holds U+D800 at character 2',
                      str(caught.exception))
        self.assertIn('valid UTF-8 text', str(caught.exception))

    def test_data_url_with_a_lone_surrogate(self):
        text = ('{"ignition": {"version": "3.3.0"}, "storage": {"files": '
                '[{"path": "/etc/x", "contents": {"source": '
                '"data:,a\\ud800b"}}]}}')
        report = ignition.validate(text)
        self.assertEqual([], report.errors)
        self.assertEqual(b'a\xef\xbf\xbdb',
                         ignition.decode_data_url('data:,a\ud800b'))
        report = ignition.validate(
            '{"ignition": {"version": "3.3.0"}, "storage": {"files": '
            '[{"path": "/etc/x", "contents": {"source": '
            '"data:;base64,\\ud800"}}]}}')
        self.assertEqual(['$.storage.files[0].contents.source'],
                         [p.path for p in report.errors])

    def test_deep_dict(self):
        config = {'ignition': {'version': '3.3.0'}}
        inner = config
        for _ in range(100000):
            inner['x'] = {}
            inner = inner['x']
        report = ignition.validate(config)
        self.assertIn('nested too deeply', report.errors[0].message)

    def test_nan_text(self):
        report = ignition.validate('{"ignition": {"version": "3.3.0"}, '
                                   '"storage": {"files": [{"mode": NaN}]}}')
        self.assertIn('NaN is not a JSON value', report.errors[0].message)
        self.assertEqual(1, report.errors[0].line)

    def test_long_version_is_shortened_in_the_message(self):
        # Found by tools/fuzz.py: a version of the form X.Y.Z with
        # thousands of digits was quoted whole.
        version = '3.3' + '9' * 5000 + '.0'
        report = ignition.validate({'ignition': {'version': version}})
        self.assertEqual(['$.ignition.version'],
                         [p.path for p in report.errors])
        self.assertLess(len(str(report.errors[0])), 1000)
        self.assertIn('unknown spec version 3.3999',
                      report.errors[0].message)

    def test_too_big(self):
        report = ignition.validate(' ' * (ignition.MAX_CONFIG_SIZE + 1))
        self.assertIn('the limit is', report.errors[0].message)

    def test_huge_numbers_elsewhere(self):
        self.assertRaisesRegex(
            exception.NetworkDataError, 'more than 4300 digits',
            network.keyfiles_from_network_data,
            {'links': [{'id': 'a', 'type': 'phy', 'mtu': HUGE,
                        'ethernet_mac_address': '52:54:00:00:00:01'}]})
        self.assertRaisesRegex(
            exception.InvalidArgument, 'more than 4300 digits',
            installer.parse_args, {'fetch_retries': HUGE})
        self.assertRaisesRegex(
            exception.InvalidArgument, 'hostname',
            merge.merge, {'ignition': {'version': '3.3.0'}},
            merge.Additions(hostname=HUGE))

    def test_iso_directory_record_damaged(self):
        # Found by the unit tests' bounded run: pycdlib raised KeyError.
        blob = bytearray(gzip.decompress(base64.b64decode(
            drives.build_iso(user_data={'ignition': {'version': '3.3.0'}},
                             meta_data={'uuid': 'x', 'hostname': 'h'}))))
        blob[63853] = 2
        with self.assertRaises(exception.ConfigDriveError) as ctx:
            configdrive.read(bytes(blob))
        self.assertIn('binary ISO 9660 config drive: the ISO 9660 image '
                      'cannot be read (', str(ctx.exception))
        self.assertIn('build it with genisoimage', str(ctx.exception))
        assertPublic(self, str(ctx.exception))

    def test_iso_file_holding_null(self):
        # Found by tools/fuzz.py (agent step): Python's "NoneType".
        for text, kind in (('null', 'null'), ('true', 'a boolean'),
                           ('1.5', 'a number'), ('"x"', 'a string')):
            drive = drives.build_iso(user_data='{}', meta_data=text)
            with self.assertRaises(exception.ConfigDriveError) as ctx:
                configdrive.read(drive)
            self.assertIn('openstack/latest/meta_data.json holds %s; '
                          'expected a JSON object' % kind, str(ctx.exception))
            assertPublic(self, str(ctx.exception))

    def test_ssh_key_data_not_ascii(self):
        for data in ('\ud800', '\u00e9AAAA', 'AAAA\u2028'):
            report = ignition.validate(
                {'ignition': {'version': '3.3.0'},
                 'passwd': {'users': [{'name': 'core', 'sshAuthorizedKeys':
                                       ['ssh-ed25519 %s' % data]}]}})
            self.assertEqual(
                ['$.passwd.users[0].sshAuthorizedKeys[0]'],
                [p.path for p in report.errors])
            self.assertIn('not a base64 OpenSSH public key',
                          report.errors[0].message)


# Parses deep JSON in a thread with the stack size Ironic gives its threads
# (ironic.command sets threading.stack_size(131072)); prints each error.
SMALL_STACK = r"""
import threading
threading.stack_size(131072)
from ironic_coreos.engine import configdrive, exception, ignition, installer
from ironic_coreos.tests import configdrive as drives
deep = '[' * 100000 + ']' * 100000
deep_dict = {}
inner = deep_dict
for _ in range(100000):
    inner['x'] = {}
    inner = inner['x']
out = []
def run():
    text = '{"ignition": {"version": "3.3.0"}, "x": %s}' % deep
    out.append(ignition.validate(text).errors[0].message)
    out.append(ignition.validate({'ignition': {'version': '3.3.0'},
                                  'x': deep_dict}).errors[0].message)
    for value in ('{"meta_data": %s}' % deep,
                  {'user_data': deep_dict, 'meta_data': {}},
                  drives.build_iso(user_data='{}', meta_data={'uuid': 'x'},
                                   network_data=deep)):
        try:
            configdrive.read(value)
        except exception.ConfigDriveError as exc:
            out.append(str(exc))
    try:
        installer.parse_args({'ignition': deep})
    except exception.InvalidArgument as exc:
        out.append(str(exc))
thread = threading.Thread(target=run)
thread.start()
thread.join()
print('\n'.join(out))
"""


class TestSmallStacks(unittest.TestCase):
    """Deep JSON on the 128 KiB thread stacks of an Ironic conductor.

    json.loads and json.dumps recurse in C: 100,000 levels once killed the
    conductor process (SIGSEGV) instead of failing the deployment.
    """

    def test_deep_json_in_a_small_thread(self):
        top = os.path.dirname(os.path.dirname(os.path.dirname(
            os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
        env = dict(os.environ, PYTHONPATH=top)
        result = subprocess.run([sys.executable, '-c', SMALL_STACK],
                                cwd=top, env=env, capture_output=True,
                                text=True, timeout=300, check=False)
        self.assertEqual(0, result.returncode, result.stderr[-2000:])
        lines = result.stdout.splitlines()
        self.assertEqual(6, len(lines), result.stdout)
        self.assertIn('nested too deeply', lines[0])
        self.assertIn('nested too deeply', lines[1])
        self.assertIn('JSON text config drive: the JSON nests arrays and '
                      'objects more than 40 levels deep', lines[2])
        self.assertIn('JSON object config drive: user_data nests', lines[3])
        self.assertIn('openstack/latest/network_data.json nests', lines[4])
        self.assertIn('the JSON nests more than 32 levels deep', lines[5])
