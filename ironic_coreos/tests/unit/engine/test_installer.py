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

import json

import testtools

from ironic_coreos.engine import exception
from ironic_coreos.engine import installer

SHA256 = 'ab' * 32
SHA512 = 'cd' * 64
URL = 'https://images.example.com/fcos/fcos-metal.x86_64.raw.xz'
SECRET = 'S3CRET-MARKER-7f1c'
IGNITION = {'ignition': {'version': '3.4.0'},
            'passwd': {'users': [{'name': 'core',
                                  'passwordHash': SECRET}]}}


class TestModule(testtools.TestCase):

    def test_no_ironic_or_agent_import(self):
        with open(installer.__file__) as fp:
            source = fp.read()
        self.assertNotIn('import ironic_python_agent', source)
        self.assertNotIn('from ironic ', source)
        self.assertNotIn('from ironic_python_agent', source)

    def test_arguments_documented(self):
        expected = {'ignition', 'image_url', 'image_checksum',
                    'image_pull_secret', 'insecure', 'append_kargs',
                    'delete_kargs', 'console', 'platform', 'copy_network',
                    'save_partlabel', 'save_partindex', 'fetch_retries',
                    'preserve_on_error'}
        self.assertEqual(expected, set(installer.ARGUMENTS))
        for name, info in installer.ARGUMENTS.items():
            self.assertEqual({'description', 'required'}, set(info), name)
            self.assertIs(False, info['required'])
            self.assertGreater(len(info['description']), 20)


class TestParseArgsDefaults(testtools.TestCase):

    def test_empty(self):
        args = installer.parse_args({})
        self.assertIsNone(args.ignition)
        self.assertIsNone(args.image_url)
        self.assertIsNone(args.image_checksum)
        self.assertIsNone(args.image_pull_secret)
        self.assertFalse(args.insecure)
        self.assertEqual((), args.append_kargs)
        self.assertEqual('metal', args.platform)
        self.assertIsNone(args.fetch_retries)
        # no node: automated_clean unknown (None) -> preserve
        self.assertTrue(args.preserve_on_error)
        self.assertFalse(args.uses_stream)

    def test_none_values_are_not_given(self):
        args = installer.parse_args({'image_url': None, 'insecure': None})
        self.assertIsNone(args.image_url)
        self.assertFalse(args.insecure)

    def test_preserve_on_error_follows_automated_clean(self):
        for value, expected in ((True, True), (None, True), (False, False)):
            args = installer.parse_args({}, {'automated_clean': value})
            self.assertIs(expected, args.preserve_on_error, value)

    def test_preserve_on_error_explicit_wins(self):
        args = installer.parse_args({'preserve_on_error': False},
                                    {'automated_clean': True})
        self.assertFalse(args.preserve_on_error)

    def test_image_from_instance_info(self):
        node = {'instance_info': {'image_source': URL,
                                  'image_os_hash_algo': 'sha512',
                                  'image_os_hash_value': SHA512}}
        args = installer.parse_args({}, node)
        self.assertEqual(URL, args.image_url)
        self.assertEqual(('sha512', SHA512), args.image_checksum)
        self.assertTrue(args.uses_stream)

    def test_image_checksum_from_instance_info_prefixed(self):
        node = {'instance_info': {'image_source': URL,
                                  'image_checksum': 'sha256:' + SHA256}}
        args = installer.parse_args({}, node)
        self.assertEqual(('sha256', SHA256), args.image_checksum)

    def test_image_checksum_from_instance_info_bare(self):
        node = {'instance_info': {'image_source': URL,
                                  'image_checksum': SHA256.upper()}}
        args = installer.parse_args({}, node)
        self.assertEqual(('sha256', SHA256), args.image_checksum)

    def test_image_checksum_from_instance_info_md5_refused(self):
        node = {'instance_info': {'image_source': URL,
                                  'image_checksum': 'a' * 32}}
        exc = self.assertRaises(exception.InvalidArgument,
                                installer.parse_args, {}, node)
        self.assertEqual('instance_info/image_checksum', exc.name)
        self.assertIn('sha256', str(exc))

    def test_non_http_image_source_means_offline(self):
        node = {'instance_info': {
            'image_source': '3c4e2a9e-2a9f-4bd5-8d8c-7c7f2d0e5a11',
            'image_os_hash_algo': 'sha512',
            'image_os_hash_value': SHA512}}
        args = installer.parse_args({}, node)
        self.assertIsNone(args.image_url)
        self.assertIsNone(args.image_checksum)
        self.assertIn('--offline', installer.build_argv(args, '/dev/sda',
                                                        None))

    def test_explicit_image_url_ignores_instance_info_checksum(self):
        node = {'instance_info': {'image_source': URL,
                                  'image_os_hash_algo': 'sha512',
                                  'image_os_hash_value': SHA512}}
        other = 'http://mirror.example.com/other.raw.xz'
        args = installer.parse_args({'image_url': other}, node)
        self.assertEqual(other, args.image_url)
        self.assertIsNone(args.image_checksum)

    def test_pull_secret_from_instance_info(self):
        node = {'instance_info': {'image_source': URL,
                                  'image_pull_secret': SECRET}}
        args = installer.parse_args({}, node)
        self.assertEqual(SECRET, args.image_pull_secret)
        self.assertTrue(args.uses_stream)

    def test_masked_pull_secret_ignored(self):
        node = {'instance_info': {'image_source': URL,
                                  'image_pull_secret': '***'}}
        args = installer.parse_args({}, node)
        self.assertIsNone(args.image_pull_secret)
        self.assertFalse(args.uses_stream)


class TestParseArgsValid(testtools.TestCase):

    def test_all_arguments(self):
        args = installer.parse_args({
            'ignition': IGNITION,
            'image_url': URL,
            'image_checksum': 'SHA256:' + SHA256.upper(),
            'image_pull_secret': SECRET,
            'insecure': True,
            'append_kargs': ['console=ttyS0,115200n8', 'quiet'],
            'delete_kargs': ['mitigations=auto,nosmt'],
            'console': ['ttyS0,115200n8', 'tty0'],
            'platform': 'openstack',
            'copy_network': 'true',
            'save_partlabel': ['data*'],
            'save_partindex': ['5', '6-7', '9-'],
            'fetch_retries': 3,
            'preserve_on_error': 'False',
        })
        self.assertEqual(IGNITION, args.ignition)
        self.assertEqual(('sha256', SHA256), args.image_checksum)
        self.assertEqual(('console=ttyS0,115200n8', 'quiet'),
                         args.append_kargs)
        self.assertEqual(('mitigations=auto,nosmt',), args.delete_kargs)
        self.assertTrue(args.copy_network)
        self.assertFalse(args.preserve_on_error)
        self.assertEqual(('5', '6-7', '9-'), args.save_partindex)
        self.assertEqual(3, args.fetch_retries)

    def test_ignition_json_text(self):
        args = installer.parse_args({'ignition': json.dumps(IGNITION)})
        self.assertEqual(IGNITION, args.ignition)

    def test_ignition_bytes(self):
        args = installer.parse_args(
            {'ignition': json.dumps(IGNITION).encode()})
        self.assertEqual(IGNITION, args.ignition)

    def test_fetch_retries_forms(self):
        for value, expected in ((0, 0), ('4', 4), ('infinite', 'infinite')):
            args = installer.parse_args({'fetch_retries': value})
            self.assertEqual(expected, args.fetch_retries)

    def test_sha512(self):
        args = installer.parse_args({'image_url': URL,
                                     'image_checksum': 'sha512:' + SHA512})
        self.assertEqual(('sha512', SHA512), args.image_checksum)

    def test_bool_strings(self):
        for value, expected in (('true', True), ('FALSE', False),
                                (True, True), (False, False)):
            args = installer.parse_args({'insecure': value})
            self.assertIs(expected, args.insecure)


class TestParseArgsInvalid(testtools.TestCase):

    def assertInvalid(self, name, args, node=None, shown=True):
        exc = self.assertRaises(exception.InvalidArgument,
                                installer.parse_args, args, node)
        self.assertEqual(name, exc.name)
        self.assertIn('"%s"' % name, str(exc))
        self.assertIn('expected', str(exc))
        if shown:
            self.assertIn(repr(args[name])[:20], str(exc))
        return exc

    def test_unknown_argument(self):
        exc = self.assertInvalid('ignitoin', {'ignitoin': SECRET},
                                 shown=False)
        self.assertNotIn(SECRET, str(exc))
        self.assertIn('unknown argument', str(exc))
        self.assertIn('ignition', str(exc))

    def test_bools(self):
        for name in ('insecure', 'copy_network', 'preserve_on_error'):
            for value in ('yes', 1, 0, 'on', [], {}):
                exc = self.assertInvalid(name, {name: value})
                self.assertIn('true or false', str(exc))

    def test_lists(self):
        for name in ('append_kargs', 'delete_kargs', 'console',
                     'save_partlabel', 'save_partindex'):
            for value in ('quiet', 'a,b', ['ok', 3], [''], ['a\nb'],
                          ['--evil'], {'a': 'b'}, [['x']]):
                exc = self.assertInvalid(name, {name: value})
                self.assertIn('list of strings', str(exc))

    def test_save_partindex_values(self):
        for value in (['a'], ['1-2-3'], ['-7'], ['5,x']):
            self.assertInvalid('save_partindex', {'save_partindex': value})

    def test_image_url(self):
        for value in ('ftp://h/x', 'https://', 'https://host/', '/path',
                      'https://h/a b', 42, ['https://h/x']):
            exc = self.assertInvalid('image_url', {'image_url': value})
            self.assertIn('http', str(exc))

    def test_image_checksum(self):
        for value in ('md5:' + 'a' * 32, 'sha256:xyz', 'sha256:' + 'a' * 63,
                      'sha512:' + SHA256, 'https://h/SHA256SUMS', 5,
                      'a' * 32):
            exc = self.assertInvalid('image_checksum',
                                     {'image_url': URL,
                                      'image_checksum': value})
            self.assertIn('sha256:', str(exc))

    def test_image_checksum_without_image(self):
        exc = self.assertInvalid('image_checksum',
                                 {'image_checksum': 'sha256:' + SHA256})
        self.assertIn('image_url', str(exc))

    def test_image_pull_secret(self):
        for value in ('', 5, 'a\nb'):
            exc = self.assertInvalid('image_pull_secret',
                                     {'image_url': URL,
                                      'image_pull_secret': value},
                                     shown=False)
            self.assertIn('<hidden>', str(exc))

    def test_image_pull_secret_without_image(self):
        exc = self.assertInvalid('image_pull_secret',
                                 {'image_pull_secret': SECRET}, shown=False)
        self.assertNotIn(SECRET, str(exc))

    def test_platform(self):
        for value in ('', 'Metal', 'metal;rm', 5, 'a' * 80):
            self.assertInvalid('platform', {'platform': value})

    def test_fetch_retries(self):
        for value in (-1, '-1', 'forever', 1.5, True, [3]):
            exc = self.assertInvalid('fetch_retries',
                                     {'fetch_retries': value})
            self.assertIn('infinite', str(exc))

    def test_ignition_not_json(self):
        exc = self.assertInvalid('ignition', {'ignition': '{"a": ' + SECRET},
                                 shown=False)
        self.assertNotIn(SECRET, str(exc))
        self.assertIn('not valid JSON', str(exc))

    def test_ignition_cloud_config(self):
        value = '#cloud-config\npassword: %s\n' % SECRET
        exc = self.assertInvalid('ignition', {'ignition': value},
                                 shown=False)
        self.assertIn('cloud-config, not an Ignition config', str(exc))
        self.assertNotIn(SECRET, str(exc))

    def test_ignition_shell_script(self):
        value = '#!/bin/sh\necho %s\n' % SECRET
        exc = self.assertInvalid('ignition', {'ignition': value},
                                 shown=False)
        self.assertIn('shell script', str(exc))
        self.assertNotIn(SECRET, str(exc))

    def test_ignition_not_object(self):
        for value in ('[1, 2]', 42, ['a'], b'\xff\xfe'):
            exc = self.assertInvalid('ignition', {'ignition': value},
                                     shown=False)
            self.assertIn('<hidden>', str(exc))


class TestInstallArgs(testtools.TestCase):

    def test_repr_hides_secrets(self):
        args = installer.parse_args({'ignition': IGNITION, 'image_url': URL,
                                     'image_pull_secret': SECRET})
        self.assertNotIn(SECRET, repr(args))
        self.assertNotIn(SECRET, str(args))
        self.assertIn('<hidden>', repr(args))
        self.assertIn(URL, repr(args))

    def test_repr_hides_url_credentials(self):
        args = installer.parse_args({
            'image_url': 'https://u:%s@h.example.com/i.raw.xz?sig=%s'
                         % (SECRET, SECRET)})
        self.assertNotIn(SECRET, repr(args))
        self.assertIn("'https://h.example.com/i.raw.xz?...'", repr(args))
        self.assertIn(SECRET, args.image_url)

    def test_as_step_args_round_trip(self):
        given = {'ignition': IGNITION, 'image_url': URL,
                 'image_checksum': 'sha256:' + SHA256,
                 'image_pull_secret': SECRET, 'insecure': True,
                 'append_kargs': ['a', 'b'], 'delete_kargs': ['c'],
                 'console': ['tty0'], 'platform': 'qemu',
                 'copy_network': True, 'save_partlabel': ['x'],
                 'save_partindex': ['5'], 'fetch_retries': 'infinite',
                 'preserve_on_error': False}
        args = installer.parse_args(given)
        step_args = args.as_step_args()
        self.assertEqual(given, step_args)
        json.dumps(step_args)
        self.assertEqual(args, installer.parse_args(step_args))

    def test_as_step_args_complete(self):
        args = installer.parse_args({}, {'automated_clean': False})
        step_args = args.as_step_args()
        self.assertEqual(
            {'insecure': False, 'append_kargs': [], 'delete_kargs': [],
             'console': [], 'platform': 'metal', 'copy_network': False,
             'save_partlabel': [], 'save_partindex': [],
             'preserve_on_error': False}, step_args)
        self.assertEqual(args, installer.parse_args(step_args))


class TestBuildArgv(testtools.TestCase):

    def test_offline_minimal(self):
        args = installer.parse_args({}, {'automated_clean': False})
        self.assertEqual(['install', '--offline', '/dev/sda'],
                         installer.build_argv(args, '/dev/sda', None))

    def test_full(self):
        args = installer.parse_args({
            'image_url': URL, 'insecure': True,
            'append_kargs': ['console=ttyS0,115200n8', 'quiet'],
            'delete_kargs': ['a=b,c'], 'console': ['ttyS0,115200n8'],
            'platform': 'openstack', 'copy_network': True,
            'save_partlabel': ['data*'], 'save_partindex': ['5-'],
            'fetch_retries': 2, 'preserve_on_error': True})
        self.assertEqual(
            ['install', '--image-url', URL, '--insecure',
             '--ignition-file', '/run/x.ign', '--platform', 'openstack',
             '--console', 'ttyS0,115200n8', '--delete-karg', 'a=b,c',
             '--append-karg', 'console=ttyS0,115200n8',
             '--append-karg', 'quiet', '--copy-network',
             '--save-partlabel', 'data*', '--save-partindex', '5-',
             '--fetch-retries', '2', '--preserve-on-error', '/dev/vda'],
            installer.build_argv(args, '/dev/vda', '/run/x.ign'))

    def test_one_flag_per_karg_never_split(self):
        args = installer.parse_args({'append_kargs': ['a,b', 'c d="e f"'],
                                     'preserve_on_error': False})
        argv = installer.build_argv(args, '/dev/sda', None)
        self.assertEqual(2, argv.count('--append-karg'))
        self.assertIn('a,b', argv)
        self.assertIn('c d="e f"', argv)

    def test_image_url_override(self):
        args = installer.parse_args({'image_url': URL,
                                     'image_checksum': 'sha256:' + SHA256})
        argv = installer.build_argv(args, '/dev/sda', None,
                                    image_url='http://127.0.0.1:8/x.raw.xz')
        self.assertIn('http://127.0.0.1:8/x.raw.xz', argv)
        self.assertNotIn(URL, argv)
        self.assertNotIn('--insecure', argv)
        self.assertNotIn('--offline', argv)

    def test_no_insecure_without_opt_in(self):
        args = installer.parse_args({'image_url': URL})
        self.assertNotIn('--insecure', installer.build_argv(args, '/dev/sda',
                                                            None))


class TestOutput(testtools.TestCase):

    def test_last_error_line_before_install_failed(self):
        lines = ['Downloading image', 'Read disk 10 MiB/1 GiB (1%)',
                 'Error: fetching image: HTTP status server error (503)',
                 '', 'Error: install failed']
        self.assertEqual(
            'Error: fetching image: HTTP status server error (503)',
            installer.last_error_line(lines))

    def test_last_error_line_skips_partition_table_lines(self):
        for table in ('Resetting partition table',
                      'Preserving partition table as requested'):
            lines = ['Error: fetching image: HTTP status client error (404 '
                     'Not Found)', table, 'Error: install failed']
            self.assertEqual(
                'Error: fetching image: HTTP status client error (404 Not '
                'Found)', installer.last_error_line(lines))

    def test_last_error_line_without_error_prefix(self):
        lines = ['writing image: No space left on device (os error 28)',
                 'Resetting partition table', 'Error: install failed']
        self.assertEqual(
            'writing image: No space left on device (os error 28)',
            installer.last_error_line(lines))

    def test_last_error_line_last_error(self):
        lines = ['Error: first', 'something', 'Error: second', 'trailing']
        self.assertEqual('Error: second', installer.last_error_line(lines))

    def test_last_error_line_argument_error(self):
        lines = ["error: unexpected argument '--frobnicate' found", '',
                 'Usage: coreos-installer install [OPTIONS] <DEST_DEVICE>',
                 '', "For more information, try '--help'."]
        self.assertEqual("error: unexpected argument '--frobnicate' found",
                         installer.last_error_line(lines))
        self.assertFalse(installer.is_transient(lines))

    def test_last_error_line_fallbacks(self):
        self.assertEqual('segfault',
                         installer.last_error_line(['a', 'segfault', '']))
        self.assertIsNone(installer.last_error_line([]))
        self.assertIsNone(installer.last_error_line(['', '  ']))

    def test_transient(self):
        for line in (
                'Error: fetching image: HTTP status server error (503 '
                'Service Unavailable) for url (https://h/x)',
                'Error: error sending request for url (https://h/x): '
                'error trying to connect: tcp connect error: Connection '
                'refused (os error 111)',
                'Error: operation timed out',
                'Error: dns error: failed to lookup address information',
                'Error: fetching signature: connection reset by peer',
                'Error: reading image: unexpected EOF'):
            self.assertTrue(installer.is_transient([line,
                                                    'Error: install failed']),
                            line)

    def test_permanent(self):
        for line in (
                'Error: HTTP status client error (404 Not Found) for url',
                'Error: fetching signature: HTTP status client error (404 '
                'Not Found): connection closed',
                'Error: bad signature',
                'Error: gpg: BAD signature',
                'Error: found busy partitions',
                'Error: image sector size 4096 does not match disk 512',
                'Error: cannot perform offline install; metadata missing',
                'Error: no such file or directory',
                'Error: install failed',
                ''):
            self.assertFalse(installer.is_transient(
                [line, 'Error: install failed']), line)
