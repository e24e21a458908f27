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
import copy
import gzip
import json
import posixpath
import shutil
import struct
import subprocess
import tempfile

import hypothesis
from hypothesis import strategies as st
import testtools

from ironic_coreos.engine import exception
from ironic_coreos.engine import ignition
from ironic_coreos.engine import merge
from ironic_coreos.engine import spec


def make_key(kind='ssh-ed25519', seed=b'a', comment='user@example'):
    """A syntactically valid OpenSSH public key line."""
    name = kind.encode()
    blob = struct.pack('>I', len(name)) + name + struct.pack('>I', 32) + (
        seed * 32)[:32]
    line = '%s %s' % (kind, base64.b64encode(blob).decode())
    return line + (' ' + comment if comment else '')


KEY_A = make_key(seed=b'a', comment='alice@laptop')
KEY_B = make_key(seed=b'b', comment='bob@desk')
KEY_C = make_key('ssh-rsa', seed=b'c', comment='')
# key data of an RSA key labelled ed25519
_MISLABELLED = make_key('ssh-rsa').replace('ssh-rsa', 'ssh-ed25519', 1)
KEYFILE = '/etc/NetworkManager/system-connections/eth0.nmconnection'
KEYFILE_BODY = b'[connection]\nid=eth0\ntype=ethernet\n'


def files_of(config):
    return {entry['path']: entry
            for entry in config.get('storage', {}).get('files', [])}


def decode(entry):
    source = entry['contents']['source']
    prefix = 'data:;base64,'
    assert source.startswith(prefix), source
    return base64.b64decode(source[len(prefix):])


class TestAdditions(testtools.TestCase):

    def test_defaults(self):
        additions = merge.Additions()
        self.assertIsNone(additions.hostname)
        self.assertEqual([], additions.ssh_keys)
        self.assertEqual('core', additions.ssh_user)
        self.assertEqual([], additions.files)
        self.assertEqual([], additions.kernel_args)

    def test_lists_not_shared(self):
        first = merge.Additions()
        first.ssh_keys.append(KEY_A)
        self.assertEqual([], merge.Additions().ssh_keys)

    def test_file_default_mode(self):
        self.assertEqual(0o644, merge.File('/etc/x', b'').mode)


class TestMergeFiles(testtools.TestCase):

    def test_hostname(self):
        result = merge.merge({'ignition': {'version': '3.0.0'}},
                             merge.Additions(hostname='node-1.example.com'))
        entry = files_of(result)['/etc/hostname']
        self.assertEqual(b'node-1.example.com\n', decode(entry))
        self.assertEqual(0o644, entry['mode'])
        self.assertIsInstance(entry['mode'], int)
        self.assertEqual('3.0.0', result['ignition']['version'])

    def test_keyfile_appended_after_user_files(self):
        config = {'ignition': {'version': '3.2.0'},
                  'storage': {'files': [{'path': '/etc/motd', 'mode': 420,
                                         'contents': {'source': 'data:,hi'}}],
                              'directories': [{'path': '/etc/foo'}]}}
        result = merge.merge(config, merge.Additions(
            files=[merge.File(KEYFILE, KEYFILE_BODY, 0o600)]))
        self.assertEqual(config['storage']['files'][0],
                         result['storage']['files'][0])
        self.assertEqual(KEYFILE, result['storage']['files'][1]['path'])
        self.assertEqual(0o600, result['storage']['files'][1]['mode'])
        self.assertEqual(KEYFILE_BODY, decode(result['storage']['files'][1]))
        self.assertEqual(config['storage']['directories'],
                         result['storage']['directories'])

    def test_input_not_mutated(self):
        config = {'ignition': {'version': '3.0.0'},
                  'storage': {'files': []},
                  'passwd': {'users': [{'name': 'core',
                                        'sshAuthorizedKeys': [KEY_A]}]}}
        before = copy.deepcopy(config)
        result = merge.merge(config, merge.Additions(
            hostname='n', ssh_keys=[KEY_B], kernel_args=['quiet']))
        self.assertEqual(before, config)
        self.assertIsNot(result, config)
        self.assertEqual([KEY_A, KEY_B],
                         result['passwd']['users'][0]['sshAuthorizedKeys'])

    def test_nothing_to_add_returns_equal_copy(self):
        config = {'ignition': {'version': '3.1.0'}, 'storage': {}}
        result = merge.merge(config, merge.Additions())
        self.assertEqual(config, result)
        self.assertIsNot(config, result)

    def test_identical_user_file_is_noop(self):
        for source in ('data:;base64,' + base64.b64encode(b'n1\n').decode(),
                       'data:,n1%0A',
                       'data:text/plain;charset=utf-8,n1%0A'):
            config = {'ignition': {'version': '3.0.0'},
                      'storage': {'files': [{'path': '/etc/hostname',
                                             'mode': 0o644,
                                             'contents': {'source': source}}]}}
            result = merge.merge(config, merge.Additions(hostname='n1'))
            self.assertEqual(config, result, source)

    def test_identical_gzip_user_file_is_noop(self):
        data = base64.b64encode(gzip.compress(b'n1\n')).decode()
        config = {'ignition': {'version': '3.1.0'},
                  'storage': {'files': [{
                      'path': '/etc/hostname', 'mode': 420,
                      'contents': {'source': 'data:;base64,' + data,
                                   'compression': 'gzip'}}]}}
        self.assertEqual(config,
                         merge.merge(config, merge.Additions(hostname='n1')))

    def test_user_file_without_mode_matches_0644(self):
        config = {'ignition': {'version': '3.0.0'},
                  'storage': {'files': [{'path': '/etc/hostname',
                                         'contents': {
                                             'source': 'data:,n1%0A'}}]}}
        self.assertEqual(config,
                         merge.merge(config, merge.Additions(hostname='n1')))

    def _conflict(self, config, additions, path):
        exc = self.assertRaises(exception.MergeConflict, merge.merge,
                                config, additions)
        self.assertIn(path, str(exc))
        self.assertIn('remove', str(exc))
        return exc

    def test_different_contents_conflict(self):
        config = {'ignition': {'version': '3.0.0'},
                  'storage': {'files': [
                      {'path': '/etc/motd'},
                      {'path': KEYFILE, 'mode': 0o600,
                       'contents': {'source': 'data:,SECRET-MARKER'}}]}}
        exc = self._conflict(config, merge.Additions(
            files=[merge.File(KEYFILE, KEYFILE_BODY, 0o600)]),
            '$.storage.files[1]')
        self.assertIn(KEYFILE, str(exc))
        self.assertNotIn('SECRET-MARKER', str(exc))

    def test_different_mode_conflict(self):
        config = {'ignition': {'version': '3.0.0'},
                  'storage': {'files': [
                      {'path': KEYFILE, 'mode': 0o644,
                       'contents': {'source': merge.data_url(KEYFILE_BODY)}}
                  ]}}
        self._conflict(config, merge.Additions(
            files=[merge.File(KEYFILE, KEYFILE_BODY, 0o600)]),
            '$.storage.files[0]')

    def _keyfile_conflict(self, entry):
        config = {'ignition': {'version': '3.0.0'},
                  'storage': {'files': [dict(entry, path=KEYFILE)]}}
        self._conflict(config, merge.Additions(
            files=[merge.File(KEYFILE, KEYFILE_BODY, 0o600)]),
            '$.storage.files[0]')

    def test_remote_source_conflict(self):
        self._keyfile_conflict({'mode': 0o600, 'contents': {
            'source': 'https://example.com/k'}})

    def test_append_conflict(self):
        self._keyfile_conflict({'mode': 0o600, 'contents': {
            'source': merge.data_url(KEYFILE_BODY)},
            'append': [{'source': 'data:,x'}]})

    def test_other_owner_conflict(self):
        self._keyfile_conflict({'mode': 0o600, 'user': {'name': 'core'},
                                'contents': {
                                    'source': merge.data_url(KEYFILE_BODY)}})

    def _user_hostname(self, entry, kind='files'):
        config = {'ignition': {'version': '3.0.0'},
                  'storage': {kind: [{'path': '/var/x'},
                                     dict(entry, path='/etc/hostname')]}}
        skipped = []
        result = merge.merge(config, merge.Additions(
            hostname='n1', files=[merge.File(KEYFILE, KEYFILE_BODY, 0o600)]),
            skipped=skipped)
        # The user's host name wins; the other additions are merged.
        self.assertEqual(config['storage'][kind],
                         result['storage'][kind][:2])
        self.assertIn(KEYFILE, files_of(result))
        self.assertEqual(1 if kind == 'files' else 0, [
            f['path'] for f in result['storage']['files']].count(
                '/etc/hostname'))
        self.assertEqual(1, len(skipped))
        self.assertIn('$.storage.%s[1]' % kind, skipped[0])
        self.assertIn('/etc/hostname', skipped[0])
        return skipped[0]

    def test_user_hostname_wins(self):
        message = self._user_hostname(
            {'mode': 420, 'contents': {'source': 'data:,SECRET-MARKER'}})
        self.assertNotIn('SECRET-MARKER', message)

    def test_user_remote_hostname_wins(self):
        self._user_hostname({'contents': {'source': 'https://e.com/h'}})

    def test_user_hostname_other_owner_wins(self):
        self._user_hostname({'mode': 420, 'user': {'name': 'core'},
                             'contents': {'source': 'data:,n1%0A'}})

    def test_user_hostname_link_wins(self):
        self._user_hostname({'target': '/run/hostname'}, kind='links')

    def test_user_hostname_without_skipped_list(self):
        config = {'ignition': {'version': '3.0.0'},
                  'storage': {'files': [{'path': '/etc/hostname',
                                         'contents': {'source': 'data:,x'}}]}}
        self.assertEqual(config, merge.merge(config,
                                             merge.Additions(hostname='n1')))

    def test_identical_hostname_not_reported(self):
        config = {'ignition': {'version': '3.0.0'},
                  'storage': {'files': [{'path': '/etc/hostname',
                                         'contents': {
                                             'source': 'data:,n1%0A'}}]}}
        skipped = []
        self.assertEqual(config, merge.merge(
            config, merge.Additions(hostname='n1'), skipped=skipped))
        self.assertEqual([], skipped)

    def test_root_owner_is_same(self):
        config = {'ignition': {'version': '3.0.0'},
                  'storage': {'files': [{
                      'path': '/etc/hostname', 'mode': 420,
                      'user': {'id': 0}, 'group': {'name': 'root'},
                      'contents': {'source': 'data:,n1%0A'}}]}}
        self.assertEqual(config,
                         merge.merge(config, merge.Additions(hostname='n1')))

    def test_directory_conflict(self):
        config = {'ignition': {'version': '3.0.0'},
                  'storage': {'directories': [{'path': '/etc/hostname'}]}}
        exc = self._conflict(config, merge.Additions(hostname='n1'),
                             '$.storage.directories[0]')
        self.assertIn('a directory', str(exc))

    def test_link_conflict(self):
        config = {'ignition': {'version': '3.0.0'},
                  'storage': {'links': [{'path': KEYFILE,
                                         'target': '/run/k'}]}}
        exc = self._conflict(config, merge.Additions(
            files=[merge.File(KEYFILE, KEYFILE_BODY, 0o600)]),
            '$.storage.links[0]')
        self.assertIn('a link', str(exc))

    def test_link_at_parent_conflict(self):
        config = {'ignition': {'version': '3.0.0'},
                  'storage': {'links': [{
                      'path': '/etc/NetworkManager/system-connections',
                      'target': '/var/nm'}]}}
        self._conflict(config, merge.Additions(
            files=[merge.File(KEYFILE, KEYFILE_BODY, 0o600)]),
            '$.storage.links[0]')

    def test_file_at_parent_conflict(self):
        config = {'ignition': {'version': '3.0.0'},
                  'storage': {'files': [{'path': '/etc/NetworkManager'}]}}
        self._conflict(config, merge.Additions(
            files=[merge.File(KEYFILE, KEYFILE_BODY, 0o600)]),
            '$.storage.files[0]')

    def test_directory_at_parent_is_fine(self):
        config = {'ignition': {'version': '3.0.0'},
                  'storage': {'directories': [{
                      'path': '/etc/NetworkManager/system-connections',
                      'mode': 0o700}]}}
        result = merge.merge(config, merge.Additions(
            files=[merge.File(KEYFILE, KEYFILE_BODY, 0o600)]))
        self.assertIn(KEYFILE, files_of(result))
        self.assertEqual(config['storage']['directories'],
                         result['storage']['directories'])

    def test_user_entry_below_addition_conflict(self):
        config = {'ignition': {'version': '3.0.0'},
                  'storage': {'files': [{'path': '/etc/hostname/x'}]}}
        self._conflict(config, merge.Additions(hostname='n1'),
                       '$.storage.files[0]')

    def test_duplicate_additions(self):
        item = merge.File(KEYFILE, KEYFILE_BODY, 0o600)
        result = merge.merge({'ignition': {'version': '3.0.0'}},
                             merge.Additions(files=[item, item]))
        self.assertEqual(1, len(result['storage']['files']))
        exc = self.assertRaises(
            exception.MergeConflict, merge.merge,
            {'ignition': {'version': '3.0.0'}},
            merge.Additions(files=[item,
                                   merge.File(KEYFILE, b'other', 0o600)]))
        self.assertIn(KEYFILE, str(exc))

    def test_hostname_and_hostname_file(self):
        exc = self.assertRaises(
            exception.MergeConflict, merge.merge,
            {'ignition': {'version': '3.0.0'}},
            merge.Additions(hostname='a', files=[
                merge.File('/etc/hostname', b'b\n')]))
        self.assertIn('/etc/hostname', str(exc))

    def test_bad_storage_type(self):
        exc = self.assertRaises(
            exception.MergeConflict, merge.merge,
            {'ignition': {'version': '3.0.0'}, 'storage': {'files': {}}},
            merge.Additions(hostname='a'))
        self.assertIn('$.storage.files', str(exc))

    def test_invalid_files(self):
        cases = [
            ('relative/path', b'', 0o644, 'files[0].path'),
            ('/etc/../x', b'', 0o644, 'files[0].path'),
            ('/etc/x/', b'', 0o644, 'files[0].path'),
            ('/', b'', 0o644, 'files[0].path'),
            ('/etc/x', 'text', 0o644, 'files[0].contents'),
            ('/etc/x', b'', 0o10000, 'files[0].mode'),
            ('/etc/x', b'', -1, 'files[0].mode'),
            ('/etc/x', b'', True, 'files[0].mode'),
            ('/etc/x', b'', '0644', 'files[0].mode'),
        ]
        for path, contents, mode, name in cases:
            exc = self.assertRaises(
                exception.InvalidArgument, merge.merge,
                {'ignition': {'version': '3.0.0'}},
                merge.Additions(files=[merge.File(path, contents, mode)]))
            self.assertEqual(name, exc.name)

    def test_not_a_file_object(self):
        exc = self.assertRaises(
            exception.InvalidArgument, merge.merge,
            {'ignition': {'version': '3.0.0'}},
            merge.Additions(files=[{'path': '/etc/x'}]))
        self.assertEqual('files[0]', exc.name)

    def test_invalid_hostnames(self):
        for name in ('', '-a', 'a' * 65, 'a b', 'a..b', 'a/b', 'a.', 5,
                     'n\u00e9'):
            exc = self.assertRaises(
                exception.InvalidArgument, merge.merge,
                {'ignition': {'version': '3.0.0'}},
                merge.Additions(hostname=name))
            self.assertEqual('hostname', exc.name)
            self.assertIn('host name', str(exc))

    def test_valid_hostnames(self):
        for name in ('a', 'node-1', 'node_1.example.com', 'a' * 63):
            result = merge.merge({'ignition': {'version': '3.0.0'}},
                                 merge.Additions(hostname=name))
            self.assertEqual((name + '\n').encode(),
                             decode(files_of(result)['/etc/hostname']))


class TestMergeKeys(testtools.TestCase):

    def test_creates_user(self):
        result = merge.merge({'ignition': {'version': '3.0.0'}},
                             merge.Additions(ssh_keys=[KEY_A, KEY_B]))
        self.assertEqual([{'name': 'core',
                           'sshAuthorizedKeys': [KEY_A, KEY_B]}],
                         result['passwd']['users'])

    def test_other_user(self):
        config = {'ignition': {'version': '3.0.0'},
                  'passwd': {'users': [{'name': 'core', 'groups': ['wheel']}]}}
        result = merge.merge(config, merge.Additions(
            ssh_keys=[KEY_A], ssh_user='admin'))
        self.assertEqual(config['passwd']['users'][0],
                         result['passwd']['users'][0])
        self.assertEqual({'name': 'admin', 'sshAuthorizedKeys': [KEY_A]},
                         result['passwd']['users'][1])

    def test_keeps_user_keys_and_order(self):
        config = {'ignition': {'version': '3.0.0'},
                  'passwd': {'users': [
                      {'name': 'alice', 'sshAuthorizedKeys': [KEY_C]},
                      {'name': 'core', 'groups': ['docker'],
                       'sshAuthorizedKeys': [KEY_B, KEY_C]}]}}
        result = merge.merge(config, merge.Additions(ssh_keys=[KEY_A, KEY_B]))
        users = result['passwd']['users']
        self.assertEqual(config['passwd']['users'][0], users[0])
        self.assertEqual([KEY_B, KEY_C, KEY_A], users[1]['sshAuthorizedKeys'])
        self.assertEqual(['docker'], users[1]['groups'])
        self.assertEqual(2, len(users))

    def test_same_key_other_comment_not_added(self):
        config = {'ignition': {'version': '3.0.0'},
                  'passwd': {'users': [{'name': 'core',
                                        'sshAuthorizedKeys': [KEY_A]}]}}
        same = make_key(seed=b'a', comment='alice@elsewhere')
        self.assertEqual(config, merge.merge(
            config, merge.Additions(ssh_keys=[same, ' %s ' % KEY_A])))

    def test_key_with_options(self):
        keyed = 'from="10.0.0.0/8" ' + KEY_A
        result = merge.merge({'ignition': {'version': '3.0.0'}},
                             merge.Additions(ssh_keys=[keyed]))
        self.assertEqual([keyed],
                         result['passwd']['users'][0]['sshAuthorizedKeys'])

    def test_user_without_keys(self):
        config = {'ignition': {'version': '3.0.0'},
                  'passwd': {'users': [{'name': 'core',
                                        'passwordHash': '$6$x'}]}}
        result = merge.merge(config, merge.Additions(ssh_keys=[KEY_A]))
        self.assertEqual({'name': 'core', 'passwordHash': '$6$x',
                          'sshAuthorizedKeys': [KEY_A]},
                         result['passwd']['users'][0])

    def test_no_keys_no_user(self):
        result = merge.merge({'ignition': {'version': '3.0.0'}},
                             merge.Additions(ssh_user='someone'))
        self.assertNotIn('passwd', result)

    def test_should_not_exist_conflict(self):
        config = {'ignition': {'version': '3.2.0'},
                  'passwd': {'users': [{'name': 'core',
                                        'shouldExist': False}]}}
        exc = self.assertRaises(exception.MergeConflict, merge.merge,
                                config, merge.Additions(ssh_keys=[KEY_A]))
        self.assertIn('$.passwd.users[0].shouldExist', str(exc))
        self.assertIn('ssh_user', str(exc))

    def test_keys_not_a_list_conflict(self):
        config = {'ignition': {'version': '3.0.0'},
                  'passwd': {'users': [{'name': 'core',
                                        'sshAuthorizedKeys': KEY_A}]}}
        exc = self.assertRaises(exception.MergeConflict, merge.merge,
                                config, merge.Additions(ssh_keys=[KEY_B]))
        self.assertIn('$.passwd.users[0].sshAuthorizedKeys', str(exc))
        self.assertNotIn(KEY_A, str(exc))

    def test_invalid_keys(self):
        for keys, name in (([''], 'ssh_keys[0]'),
                           ([KEY_A, 'hello world'], 'ssh_keys[1]'),
                           (['ssh-rsa !!!notbase64'], 'ssh_keys[0]'),
                           ([KEY_A + '\n' + KEY_B], 'ssh_keys[0]'),
                           ([_MISLABELLED], 'ssh_keys[0]'),
                           ([42], 'ssh_keys[0]'),
                           (KEY_A, 'ssh_keys')):
            exc = self.assertRaises(exception.InvalidArgument, merge.merge,
                                    {'ignition': {'version': '3.0.0'}},
                                    merge.Additions(ssh_keys=keys))
            self.assertEqual(name, exc.name)

    def test_invalid_user(self):
        for user in ('', 'Core', 'a b', 'x' * 40, None):
            exc = self.assertRaises(
                exception.InvalidArgument, merge.merge,
                {'ignition': {'version': '3.0.0'}},
                merge.Additions(ssh_keys=[KEY_A], ssh_user=user))
            self.assertEqual('ssh_user', exc.name)


class TestMergeKernelArgs(testtools.TestCase):

    def test_raises_version_to_3_3_0(self):
        for version in ('3.0.0', '3.1.0', '3.2.0'):
            result = merge.merge(
                {'ignition': {'version': version}},
                merge.Additions(kernel_args=['console=ttyS0,115200',
                                             'quiet']))
            self.assertEqual('3.3.0', result['ignition']['version'])
            self.assertEqual(['console=ttyS0,115200', 'quiet'],
                             result['kernelArguments']['shouldExist'])

    def test_keeps_newer_version(self):
        for version in ('3.3.0', '3.4.0', '3.6.0'):
            result = merge.merge({'ignition': {'version': version}},
                                 merge.Additions(kernel_args=['quiet']))
            self.assertEqual(version, result['ignition']['version'])

    def test_version_not_raised_without_kargs(self):
        result = merge.merge({'ignition': {'version': '3.0.0'}},
                             merge.Additions(hostname='a', ssh_keys=[KEY_A]))
        self.assertEqual('3.0.0', result['ignition']['version'])

    def test_max_version_too_old(self):
        exc = self.assertRaises(
            exception.MergeConflict, merge.merge,
            {'ignition': {'version': '3.1.0'}},
            merge.Additions(kernel_args=['quiet']), max_version='3.2.0')
        self.assertIn('3.3.0', str(exc))
        self.assertIn('3.2.0', str(exc))
        self.assertIn('append_kargs', str(exc))
        self.assertIn('$.ignition.version', str(exc))

    def test_existing_kargs_kept(self):
        config = {'ignition': {'version': '3.3.0'},
                  'kernelArguments': {'shouldExist': ['b', 'a'],
                                      'shouldNotExist': ['mitigations=off']}}
        result = merge.merge(config, merge.Additions(kernel_args=['a', 'c']))
        self.assertEqual(['b', 'a', 'c'],
                         result['kernelArguments']['shouldExist'])
        self.assertEqual(['mitigations=off'],
                         result['kernelArguments']['shouldNotExist'])

    def test_present_karg_is_noop(self):
        config = {'ignition': {'version': '3.3.0'},
                  'kernelArguments': {'shouldExist': ['a']}}
        self.assertEqual(config, merge.merge(
            config, merge.Additions(kernel_args=['a', 'a'])))

    def test_should_not_exist_conflict(self):
        config = {'ignition': {'version': '3.3.0'},
                  'kernelArguments': {'shouldNotExist': ['x', 'quiet']}}
        exc = self.assertRaises(exception.MergeConflict, merge.merge, config,
                                merge.Additions(kernel_args=['quiet']))
        self.assertIn('$.kernelArguments.shouldNotExist[1]', str(exc))
        self.assertIn('quiet', str(exc))

    def test_invalid_kargs(self):
        for kargs, name in ((['ok', ''], 'kernel_args[1]'),
                            ([' quiet'], 'kernel_args[0]'),
                            (['a\nb'], 'kernel_args[0]'),
                            ([1], 'kernel_args[0]'),
                            ('quiet', 'kernel_args')):
            exc = self.assertRaises(exception.InvalidArgument, merge.merge,
                                    {'ignition': {'version': '3.3.0'}},
                                    merge.Additions(kernel_args=kargs))
            self.assertEqual(name, exc.name)

    def test_comma_karg_stays_one(self):
        result = merge.merge({'ignition': {'version': '3.3.0'}},
                             merge.Additions(kernel_args=['a=1,2']))
        self.assertEqual(['a=1,2'], result['kernelArguments']['shouldExist'])


class TestMergeConfigChecks(testtools.TestCase):

    def test_not_a_dict(self):
        for config in ('{}', [], None):
            exc = self.assertRaises(exception.MergeConflict, merge.merge,
                                    config, merge.Additions())
            self.assertIn('$', str(exc))

    def test_missing_version(self):
        for config in ({}, {'ignition': {}}, {'ignition': 'x'}):
            exc = self.assertRaises(exception.MergeConflict, merge.merge,
                                    config, merge.Additions(hostname='a'))
            self.assertIn('$.ignition.version', str(exc))

    def test_unsupported_version(self):
        for version in ('2.2.0', '3.4.0-experimental', '4.0.0', 3):
            exc = self.assertRaises(
                exception.MergeConflict, merge.merge,
                {'ignition': {'version': version}},
                merge.Additions(hostname='a'))
            self.assertIn('$.ignition.version', str(exc))

    def test_version_above_max(self):
        exc = self.assertRaises(
            exception.MergeConflict, merge.merge,
            {'ignition': {'version': '3.4.0'}},
            merge.Additions(hostname='a'), max_version='3.3.0')
        self.assertIn('3.4.0', str(exc))
        self.assertIn('3.3.0', str(exc))


class TestMergeOutputValidates(testtools.TestCase):

    def test_everything_validates(self):
        config = {'ignition': {'version': '3.0.0'},
                  'passwd': {'users': [{'name': 'core',
                                        'sshAuthorizedKeys': [KEY_C]}]},
                  'storage': {'files': [{'path': '/etc/motd', 'mode': 420,
                                         'contents': {'source': 'data:,hi'}}]}}
        result = merge.merge(config, merge.Additions(
            hostname='node-1', ssh_keys=[KEY_A, KEY_B],
            files=[merge.File(KEYFILE, KEYFILE_BODY, 0o600)],
            kernel_args=['console=ttyS0,115200n8']))
        report = ignition.validate(result)
        self.assertTrue(report.valid, report.summary())
        self.assertEqual([], report.warnings, report.summary())

    def test_idempotent(self):
        additions = merge.Additions(
            hostname='node-1', ssh_keys=[KEY_A],
            files=[merge.File(KEYFILE, KEYFILE_BODY, 0o600)],
            kernel_args=['quiet'])
        once = merge.merge({'ignition': {'version': '3.0.0'}}, additions)
        self.assertEqual(once, merge.merge(once, additions))

    @testtools.skipUnless(shutil.which('ignition-validate'),
                          'ignition-validate is not installed')
    def test_ignition_validate_accepts_output(self):
        result = merge.merge({'ignition': {'version': '3.0.0'}},
                             merge.Additions(
                                 hostname='node-1', ssh_keys=[KEY_A],
                                 files=[merge.File(KEYFILE, KEYFILE_BODY,
                                                   0o600)],
                                 kernel_args=['quiet']))
        with tempfile.NamedTemporaryFile('w', suffix='.ign') as stream:
            json.dump(result, stream)
            stream.flush()
            proc = subprocess.run(['ignition-validate', stream.name],
                                  capture_output=True, text=True,
                                  check=False)
        self.assertEqual(0, proc.returncode, proc.stdout + proc.stderr)


# Property tests.

_DIRS = ('/etc', '/etc/NetworkManager', '/etc/NetworkManager/'
         'system-connections', '/var/lib', '/opt/app')
_NAMES = ('hostname', 'motd', 'eth0.nmconnection', 'app.conf', 'data')
_KEYS = [make_key(kind, seed, comment)
         for kind, seed, comment in (('ssh-ed25519', b'1', 'a@b'),
                                     ('ssh-ed25519', b'2', ''),
                                     ('ssh-rsa', b'3', 'c@d'),
                                     ('ecdsa-sha2-nistp256', b'4', 'e'))]
_KARGS = ('quiet', 'console=ttyS0,115200', 'nosmt', 'mitigations=auto',
          'rd.neednet=1')
_MODES = (0o600, 0o644, 0o755, 0o400)
_USERS = ('core', 'alice', 'bob')

paths = st.builds(posixpath.join, st.sampled_from(_DIRS),
                  st.sampled_from(_NAMES))
contents = st.binary(max_size=24)


def mode_for(draw, path):
    # NetworkManager (and the validator) want keyfiles 0600.
    if path.startswith('/etc/NetworkManager/system-connections/'):
        return 0o600
    return draw(st.sampled_from(_MODES))


@st.composite
def user_configs(draw):
    version = draw(st.sampled_from(spec.STABLE_VERSIONS))
    config = {'ignition': {'version': version}}
    used = set()

    def free_path():
        path = draw(paths)
        hypothesis.assume(not any(
            path == other or path.startswith(other + '/')
            or other.startswith(path + '/') for other in used))
        used.add(path)
        return path

    files = []
    for _ in range(draw(st.integers(0, 3))):
        path = free_path()
        entry = {'path': path, 'mode': mode_for(draw, path),
                 'contents': {'source': merge.data_url(draw(contents))}}
        files.append(entry)
    directories = [{'path': free_path(), 'mode': 0o755}
                   for _ in range(draw(st.integers(0, 1)))]
    links = [{'path': free_path(), 'target': '/usr/share/zoneinfo/UTC'}
             for _ in range(draw(st.integers(0, 1)))]
    storage = {}
    for key, value in (('files', files), ('directories', directories),
                       ('links', links)):
        if value or draw(st.booleans()):
            storage[key] = value
    if storage or draw(st.booleans()):
        config['storage'] = storage

    names = draw(st.lists(st.sampled_from(_USERS), unique=True, max_size=3))
    users = []
    for name in names:
        user = {'name': name}
        keys = draw(st.lists(st.sampled_from(_KEYS), unique=True,
                             max_size=3))
        if keys or draw(st.booleans()):
            user['sshAuthorizedKeys'] = keys
        if draw(st.booleans()):
            user['groups'] = ['wheel']
        users.append(user)
    if users or draw(st.booleans()):
        config['passwd'] = {'users': users}

    if spec.at_least(version, '3.3.0') and draw(st.booleans()):
        present = draw(st.lists(st.sampled_from(_KARGS), unique=True,
                                max_size=3))
        absent = draw(st.lists(st.sampled_from(
            [k for k in _KARGS if k not in present]), unique=True,
            max_size=2))
        section = {}
        if present:
            section['shouldExist'] = present
        if absent:
            section['shouldNotExist'] = absent
        config['kernelArguments'] = section
    return config


@st.composite
def additions(draw, config=None):
    hostname = draw(st.one_of(st.none(), st.sampled_from(
        ('node-1', 'n2.example.com', 'a'))))
    files = []
    seen = set() if hostname is None else {'/etc/hostname'}
    for _ in range(draw(st.integers(0, 3))):
        path = draw(paths)
        if path in seen:
            continue
        seen.add(path)
        files.append(merge.File(path, draw(contents), mode_for(draw, path)))
    return merge.Additions(
        hostname=hostname,
        ssh_keys=draw(st.lists(st.sampled_from(_KEYS), max_size=3)),
        ssh_user=draw(st.sampled_from(_USERS)),
        files=files,
        kernel_args=draw(st.lists(st.sampled_from(_KARGS), max_size=3)))


def _is_prefix(prefix, items):
    return items[:len(prefix)] == prefix


class TestMergeProperties(testtools.TestCase):

    def _check_preserved(self, config, result):
        """No user entry dropped or changed (keys and kargs only grow)."""
        for key, value in config.items():
            if key in ('ignition', 'storage', 'passwd', 'kernelArguments'):
                continue
            self.assertEqual(value, result[key])
        self.assertTrue(spec.at_least(result['ignition']['version'],
                                      config['ignition']['version']))
        storage = config.get('storage', {})
        for kind, entries in storage.items():
            self.assertTrue(_is_prefix(entries, result['storage'][kind]),
                            kind)
        users = config.get('passwd', {}).get('users', [])
        for index, user in enumerate(users):
            merged = result['passwd']['users'][index]
            for key, value in user.items():
                if key == 'sshAuthorizedKeys':
                    self.assertTrue(_is_prefix(value, merged[key]))
                else:
                    self.assertEqual(value, merged[key])
            self.assertEqual(set(user) | ({'sshAuthorizedKeys'}
                                          & set(merged)), set(merged))
        for kind, entries in config.get('kernelArguments', {}).items():
            self.assertTrue(_is_prefix(entries,
                                       result['kernelArguments'][kind]))

    def _check_added(self, result, adds, skipped=()):
        written = files_of(result)
        expected = list(adds.files)
        if skipped:
            # The user's own /etc/hostname won.
            self.assertEqual(1, len(skipped))
            self.assertIn('/etc/hostname', skipped[0])
        elif adds.hostname:
            expected.append(merge.File('/etc/hostname',
                                       (adds.hostname + '\n').encode()))
        for item in expected:
            self.assertIn(item.path, written)
            self.assertEqual(item.mode, written[item.path].get('mode', 0o644))
        if adds.ssh_keys:
            users = [u for u in result['passwd']['users']
                     if u['name'] == adds.ssh_user]
            for key in adds.ssh_keys:
                self.assertIn(key, users[0]['sshAuthorizedKeys'])
        if adds.kernel_args:
            for karg in adds.kernel_args:
                self.assertIn(karg, result['kernelArguments']['shouldExist'])

    @hypothesis.settings(max_examples=150, deadline=None,
                         database=None)
    @hypothesis.given(user_configs(), additions(),
                      st.sampled_from(spec.STABLE_VERSIONS))
    def test_merge_properties(self, config, adds, max_version):
        hypothesis.assume(spec.at_least(max_version,
                                        config['ignition']['version']))
        report = ignition.validate(config, max_version=max_version)
        hypothesis.assume(report.valid)
        before = copy.deepcopy(config)
        skipped = []
        try:
            result = merge.merge(config, adds, max_version=max_version,
                                 skipped=skipped)
        except exception.MergeConflict as exc:
            # A conflict always names the JSON path of what is in the way.
            self.assertIn('$.', str(exc))
            self.assertEqual(before, config)
            return
        self.assertEqual(before, config)
        self._check_preserved(config, result)
        self._check_added(result, adds, skipped)
        merged_report = ignition.validate(result, max_version=max_version)
        self.assertTrue(merged_report.valid, merged_report.summary())
        self.assertEqual(result, merge.merge(result, adds,
                                             max_version=max_version))
        if not adds.kernel_args:
            self.assertEqual(config['ignition']['version'],
                             result['ignition']['version'])

    @hypothesis.settings(max_examples=100, deadline=None,
                         database=None)
    @hypothesis.given(user_configs(), additions())
    def test_no_overlap_never_conflicts(self, config, adds):
        user_paths = [entry['path']
                      for kind in ('files', 'directories', 'links')
                      for entry in config.get('storage', {}).get(kind, [])]
        add_paths = [f.path for f in adds.files] + (
            ['/etc/hostname'] if adds.hostname else [])
        hypothesis.assume(not any(
            a == u or a.startswith(u + '/') or u.startswith(a + '/')
            for a in add_paths for u in user_paths))
        absent = config.get('kernelArguments', {}).get('shouldNotExist', [])
        hypothesis.assume(not set(absent) & set(adds.kernel_args))
        hypothesis.assume(ignition.validate(config).valid)
        result = merge.merge(config, adds)
        self._check_preserved(config, result)
        self._check_added(result, adds)
        report = ignition.validate(result)
        self.assertTrue(report.valid, report.summary())

    @hypothesis.settings(max_examples=60, deadline=None,
                         database=None)
    @hypothesis.given(user_configs())
    def test_merging_own_files_is_noop(self, config):
        # Additions equal to the user's own files are no-ops.
        own = [merge.File(entry['path'], decode(entry), entry['mode'])
               for entry in config.get('storage', {}).get('files', [])]
        self.assertEqual(config,
                         merge.merge(config, merge.Additions(files=own)))
