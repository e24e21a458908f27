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
import functools
import gzip
import http.server
import json
import logging
import threading
import time
from unittest import mock
import zlib

import fixtures
import requests
import testtools

from ironic_coreos.engine import configdrive
from ironic_coreos.engine import exception
from ironic_coreos.tests import configdrive as drives

SECRET = 'SECRET-MARKER-7f3a'
IGNITION = {'ignition': {'version': '3.4.0'},
            'passwd': {'users': [{'name': 'core',
                                  'passwordHash': SECRET}]}}
META = {'uuid': '1be26c0b-03f2-4d2e-ae87-c02d7f33c123',
        'hostname': 'node-1.example.com', 'name': 'node-1',
        'public_keys': {'mykey': 'ssh-ed25519 AAAAC3Nza user@host'}}
NETWORK = {'links': [{'id': 'eth0', 'type': 'phy',
                      'ethernet_mac_address': '52:54:00:12:34:56'}],
           'networks': [{'id': 'n0', 'type': 'ipv4_dhcp', 'link': 'eth0'}],
           'services': []}
VENDOR = {'cloud': 'test'}


# The engine tests' drive: every file, with the values above.
drive_files = functools.partial(drives.drive_files, meta_data=META,
                                network_data=NETWORK, vendor_data=VENDOR)


class TestConfigDriveObject(testtools.TestCase):

    def _drive(self, meta):
        return configdrive.ConfigDrive(user_data=None, meta_data=meta,
                                       network_data=None, vendor_data=None)

    def test_public_keys_dict(self):
        drive = self._drive({'public_keys': {'a': 'ssh-rsa AAAA a ',
                                             'b': 'ssh-ed25519 BBBB b'}})
        self.assertEqual(['ssh-rsa AAAA a', 'ssh-ed25519 BBBB b'],
                         drive.public_keys)

    def test_public_keys_list(self):
        drive = self._drive({'public_keys': [
            'ssh-rsa AAAA a', {'name': 'k', 'data': 'ssh-ed25519 BBBB b\n'},
            'ssh-rsa AAAA a', '', None]})
        self.assertEqual(['ssh-rsa AAAA a', 'ssh-ed25519 BBBB b'],
                         drive.public_keys)

    def test_public_keys_missing_or_odd(self):
        for meta in ({}, {'public_keys': None}, {'public_keys': 'x'}):
            self.assertEqual([], self._drive(meta).public_keys)

    def test_hostname(self):
        self.assertEqual('h', self._drive({'hostname': 'h',
                                           'name': 'n'}).hostname)
        self.assertEqual('n', self._drive({'name': 'n'}).hostname)
        self.assertEqual('n', self._drive({'hostname': ' ',
                                           'name': 'n'}).hostname)
        self.assertIsNone(self._drive({}).hostname)
        self.assertIsNone(self._drive({'hostname': 5}).hostname)


class TestReadEmpty(testtools.TestCase):

    def test_none_and_empty(self):
        for value in (None, '', '  \n', b''):
            self.assertIsNone(configdrive.read(value))

    def test_wrong_type(self):
        exc = self.assertRaises(exception.ConfigDriveError,
                                configdrive.read, 42)
        self.assertIn('The config drive is a number; expected', str(exc))


class TestReadDict(testtools.TestCase):

    def test_full_dict(self):
        drive = configdrive.read({'meta_data': META,
                                  'network_data': NETWORK,
                                  'user_data': json.dumps(IGNITION),
                                  'vendor_data': VENDOR})
        self.assertEqual(IGNITION, json.loads(drive.user_data))
        self.assertIsInstance(drive.user_data, bytes)
        self.assertEqual(META, drive.meta_data)
        self.assertEqual(NETWORK, drive.network_data)
        self.assertEqual(VENDOR, drive.vendor_data)
        self.assertEqual('node-1.example.com', drive.hostname)
        self.assertEqual(['ssh-ed25519 AAAAC3Nza user@host'],
                         drive.public_keys)

    def test_user_data_object_serialised(self):
        drive = configdrive.read({'user_data': IGNITION})
        self.assertEqual(IGNITION, json.loads(drive.user_data.decode()))
        self.assertEqual({}, drive.meta_data)
        self.assertIsNone(drive.network_data)
        self.assertIsNone(drive.vendor_data)

    def test_user_data_list_serialised(self):
        drive = configdrive.read({'user_data': [1, 'a']})
        self.assertEqual(b'[1, "a"]', drive.user_data)

    def test_user_data_unicode(self):
        drive = configdrive.read({'user_data': '#cloud-config\nx: \u00e9'})
        self.assertEqual('#cloud-config\nx: \u00e9'.encode(),
                         drive.user_data)

    def test_nulls(self):
        drive = configdrive.read({'meta_data': None, 'user_data': None,
                                  'network_data': None})
        self.assertEqual(configdrive.ConfigDrive(None, {}, None, None),
                         drive)

    def test_unknown_key(self):
        exc = self.assertRaises(exception.ConfigDriveError, configdrive.read,
                                {'userdata': SECRET, 'meta_data': {}})
        self.assertIn('JSON object config drive', str(exc))
        self.assertIn('"userdata" (did you mean "user_data"?)', str(exc))
        self.assertNotIn(SECRET, str(exc))

    def test_wrong_types(self):
        for key in ('meta_data', 'network_data', 'vendor_data'):
            exc = self.assertRaises(exception.ConfigDriveError,
                                    configdrive.read, {key: [SECRET]})
            self.assertIn('%s is an array; expected a JSON object' % key,
                          str(exc))
            self.assertNotIn(SECRET, str(exc))
        exc = self.assertRaises(exception.ConfigDriveError,
                                configdrive.read, {'user_data': 5})
        self.assertIn('user_data is a number', str(exc))

    def test_json_text(self):
        value = json.dumps({'meta_data': META, 'user_data': IGNITION})
        drive = configdrive.read('\n ' + value)
        self.assertEqual(META, drive.meta_data)
        self.assertEqual(IGNITION, json.loads(drive.user_data))
        self.assertEqual(drive, configdrive.read(value.encode()))

    def test_bad_json_text(self):
        exc = self.assertRaises(exception.ConfigDriveError, configdrive.read,
                                '{"user_data": "%s",}' % SECRET)
        self.assertIn('JSON text config drive: not valid JSON', str(exc))
        self.assertIn('line 1 column', str(exc))
        self.assertNotIn(SECRET, str(exc))

    def test_json_text_unknown_key(self):
        exc = self.assertRaises(exception.ConfigDriveError, configdrive.read,
                                '{"meta-data": {}}')
        self.assertIn('JSON text config drive', str(exc))
        self.assertIn('meta_data', str(exc))

    def test_secret_not_logged(self):
        logger = self.useFixture(fixtures.FakeLogger(level=logging.DEBUG))
        configdrive.read({'user_data': IGNITION, 'meta_data': META})
        self.assertIn('sha256', logger.output)
        self.assertNotIn(SECRET, logger.output)


class TestReadISO(testtools.TestCase):

    def _user_data(self):
        return json.dumps(IGNITION).encode()

    def test_gzip_base64_rock_ridge_joliet(self):
        image = drives.make_iso(drive_files(user_data=self._user_data()))
        drive = configdrive.read(drives.encode(image))
        self.assertEqual(self._user_data(), drive.user_data)
        self.assertEqual(META, drive.meta_data)
        self.assertEqual(NETWORK, drive.network_data)
        self.assertEqual(VENDOR, drive.vendor_data)
        self.assertEqual('node-1.example.com', drive.hostname)
        self.assertEqual(['ssh-ed25519 AAAAC3Nza user@host'],
                         drive.public_keys)

    def test_wrapped_base64(self):
        image = drives.make_iso(drive_files(user_data=b'{}'))
        value = base64.encodebytes(gzip.compress(image)).decode()
        self.assertIn('\n', value.strip())
        self.assertEqual(b'{}', configdrive.read(value).user_data)

    def test_plain_base64_without_gzip(self):
        image = drives.make_iso(drive_files(user_data=b'{}'))
        drive = configdrive.read(base64.b64encode(image).decode())
        self.assertEqual(b'{}', drive.user_data)
        self.assertEqual(META, drive.meta_data)

    def test_binary_bytes(self):
        image = drives.make_iso(drive_files(user_data=b'x'))
        for value in (image, gzip.compress(image)):
            self.assertEqual(b'x', configdrive.read(value).user_data)

    def test_joliet_only(self):
        image = drives.make_iso(drive_files(user_data=b'x'), rock_ridge=False)
        drive = configdrive.read(drives.encode(image))
        self.assertEqual(b'x', drive.user_data)

    def test_rock_ridge_only(self):
        image = drives.make_iso(drive_files(user_data=b'x'), joliet=False)
        drive = configdrive.read(drives.encode(image))
        self.assertEqual(b'x', drive.user_data)

    def test_plain_iso9660_names(self):
        image = drives.make_iso(drive_files(user_data=b'x'),
                                rock_ridge=False, joliet=False)
        drive = configdrive.read(drives.encode(image))
        self.assertEqual(b'x', drive.user_data)
        self.assertEqual(NETWORK, drive.network_data)

    def test_only_meta_data(self):
        image = drives.make_iso(drive_files(network_data=None,
                                            vendor_data=None))
        drive = configdrive.read(drives.encode(image))
        self.assertIsNone(drive.user_data)
        self.assertIsNone(drive.network_data)
        self.assertIsNone(drive.vendor_data)
        self.assertEqual(META, drive.meta_data)

    def test_dated_version_directory(self):
        files = drive_files(base='openstack/2012-08-10', user_data=b'old')
        files.update(drive_files(base='openstack/2018-08-27',
                                 user_data=b'new'))
        files['ec2/latest/meta-data.json'] = b'{}'
        drive = configdrive.read(drives.encode(drives.make_iso(files)))
        self.assertEqual(b'new', drive.user_data)

    def test_latest_preferred(self):
        files = drive_files(base='openstack/2018-08-27', user_data=b'dated')
        files.update(drive_files(user_data=b'latest'))
        drive = configdrive.read(drives.encode(drives.make_iso(files)))
        self.assertEqual(b'latest', drive.user_data)

    def test_other_label_read_with_warning(self):
        logger = self.useFixture(fixtures.FakeLogger(level=logging.WARNING))
        image = drives.make_iso(drive_files(user_data=b'x'), label='cidata')
        drive = configdrive.read(drives.encode(image))
        self.assertEqual(b'x', drive.user_data)
        self.assertIn("labelled 'cidata'", logger.output)

    def test_garbage_base64(self):
        exc = self.assertRaises(exception.ConfigDriveError, configdrive.read,
                                'this is not base64! %s' % SECRET)
        self.assertIn('base64 ISO 9660 config drive', str(exc))
        self.assertIn('valid base64', str(exc))
        self.assertNotIn(SECRET, str(exc))

    def test_json_array_is_not_accepted(self):
        exc = self.assertRaises(exception.ConfigDriveError, configdrive.read,
                                '["a"]')
        self.assertIn('JSON object', str(exc))

    def test_not_gzip_not_iso(self):
        value = base64.b64encode(b'plain text ' + SECRET.encode()).decode()
        exc = self.assertRaises(exception.ConfigDriveError, configdrive.read,
                                value)
        self.assertIn('neither gzip-compressed nor an ISO 9660 image',
                      str(exc))
        self.assertNotIn(SECRET, str(exc))

    def test_corrupt_gzip(self):
        data = bytearray(gzip.compress(drives.make_iso(drive_files())))
        data[20:40] = b'\xff' * 20
        exc = self.assertRaises(exception.ConfigDriveError, configdrive.read,
                                base64.b64encode(bytes(data)).decode())
        self.assertIn('gzip+base64 ISO 9660 config drive', str(exc))
        self.assertIn('gzip data is corrupt', str(exc))

    def test_truncated_gzip(self):
        data = gzip.compress(drives.make_iso(drive_files()))
        exc = self.assertRaises(exception.ConfigDriveError, configdrive.read,
                                base64.b64encode(data[:200]).decode())
        self.assertIn('truncated', str(exc))

    def test_gzip_of_non_iso(self):
        value = base64.b64encode(gzip.compress(b'x' * 40000)).decode()
        exc = self.assertRaises(exception.ConfigDriveError, configdrive.read,
                                value)
        self.assertIn('gzip+base64 ISO 9660 config drive', str(exc))
        self.assertIn('neither gzip-compressed nor an ISO 9660', str(exc))

    def test_too_big(self):
        self.useFixture(fixtures.MockPatchObject(configdrive,
                                                 'MAX_IMAGE_SIZE', 1024))
        exc = self.assertRaises(exception.ConfigDriveError, configdrive.read,
                                drives.encode(drives.make_iso(drive_files())))
        self.assertIn('expands to more than', str(exc))

    def test_damaged_iso(self):
        image = bytearray(drives.make_iso(drive_files(user_data=b'x')))
        # Keep the CD001 signature, break the volume descriptor.
        image[0x8000 + 80:0x8000 + 200] = b'\xff' * 120
        exc = self.assertRaises(exception.ConfigDriveError, configdrive.read,
                                drives.encode(bytes(image)))
        self.assertIn('ISO 9660 image cannot be read', str(exc))

    def test_iso_without_config_drive_files(self):
        image = drives.make_iso({'README.txt': b'hello', 'docs/a.txt': b'a'})
        exc = self.assertRaises(exception.ConfigDriveError, configdrive.read,
                                drives.encode(image))
        self.assertIn('gzip+base64 ISO 9660 config drive', str(exc))
        self.assertIn('no openstack/latest/', str(exc))

    def test_iso_without_meta_data(self):
        image = drives.make_iso(drive_files(meta_data=None,
                                            user_data=SECRET.encode()))
        exc = self.assertRaises(exception.ConfigDriveError, configdrive.read,
                                drives.encode(image))
        self.assertIn('no openstack/latest/meta_data.json', str(exc))
        self.assertNotIn(SECRET, str(exc))

    def test_bad_json_file(self):
        files = drive_files(user_data=b'{}')
        files['openstack/latest/network_data.json'] = (
            b'{"links": [' + SECRET.encode())
        exc = self.assertRaises(exception.ConfigDriveError, configdrive.read,
                                drives.encode(drives.make_iso(files)))
        self.assertIn('openstack/latest/network_data.json is not valid JSON',
                      str(exc))
        self.assertIn('line 1', str(exc))
        self.assertNotIn(SECRET, str(exc))

    def test_json_file_not_object(self):
        files = drive_files()
        files['openstack/latest/meta_data.json'] = b'["x"]'
        exc = self.assertRaises(exception.ConfigDriveError, configdrive.read,
                                drives.encode(drives.make_iso(files)))
        self.assertIn('meta_data.json holds an array', str(exc))

    def test_secret_not_logged(self):
        logger = self.useFixture(fixtures.FakeLogger(level=logging.DEBUG))
        image = drives.make_iso(drive_files(user_data=self._user_data()))
        configdrive.read(drives.encode(image))
        self.assertIn('sha256', logger.output)
        self.assertNotIn(SECRET, logger.output)


class TestLimits(testtools.TestCase):
    """Every limit holds before the expensive work it guards."""

    def test_limits(self):
        self.assertEqual(64 * 1024 * 1024, configdrive.MAX_SIZE)
        self.assertEqual(64 * 1024 * 1024, configdrive.MAX_IMAGE_SIZE)
        self.assertEqual(1000, configdrive.MAX_FILES)

    def test_text_too_long_is_not_decoded(self):
        value = 'A' * (configdrive.MAX_SIZE + 4)
        with mock.patch.object(configdrive.base64, 'b64decode',
                               autospec=True) as decode:
            exc = self.assertRaises(exception.ConfigDriveError,
                                    configdrive.read, value)
        decode.assert_not_called()
        self.assertIn('%d bytes long; at most 64 MiB' % len(value),
                      str(exc))

    def test_json_too_long_is_not_parsed(self):
        value = '{"user_data": "%s"}' % ('x' * configdrive.MAX_SIZE)
        with mock.patch.object(configdrive.json, 'loads',
                               autospec=True) as loads:
            exc = self.assertRaises(exception.ConfigDriveError,
                                    configdrive.read, value)
        loads.assert_not_called()
        self.assertIn('at most 64 MiB', str(exc))

    def test_bytes_too_long(self):
        value = b'\x1f\x8b' + b'\0' * configdrive.MAX_SIZE
        exc = self.assertRaises(exception.ConfigDriveError,
                                configdrive.read, value)
        self.assertIn('at most 64 MiB', str(exc))

    def test_gzip_bomb(self):
        # 80 MiB of zeros in less than 1 MiB of gzip; decompression stops
        # at the limit.
        compressor = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        chunk = b'\0' * (16 * 1024 * 1024)
        blob = b''.join(compressor.compress(chunk) for _ in range(5))
        blob += compressor.flush()
        self.assertLess(len(blob), 1024 * 1024)
        with mock.patch.object(configdrive.pycdlib, 'PyCdlib',
                               autospec=True) as iso:
            exc = self.assertRaises(exception.ConfigDriveError,
                                    configdrive.read,
                                    base64.b64encode(blob).decode())
        iso.assert_not_called()
        self.assertIn('gzip+base64 ISO 9660 config drive: the gzip data '
                      'expands to more than 64 MiB', str(exc))

    def test_plain_image_too_big(self):
        self.useFixture(fixtures.MockPatchObject(configdrive,
                                                 'MAX_IMAGE_SIZE', 1024))
        image = drives.make_iso(drive_files())
        exc = self.assertRaises(exception.ConfigDriveError, configdrive.read,
                                drives.encode(image, gzip_it=False))
        self.assertIn('base64 ISO 9660 config drive: the ISO 9660 image is '
                      '%d bytes; at most 0 MiB' % len(image), str(exc))

    def test_too_many_files(self):
        files = drive_files(user_data=b'{}')
        for i in range(configdrive.MAX_FILES):
            files['extra/f%d' % i] = b''
        with mock.patch.object(configdrive.pycdlib.PyCdlib,
                               'get_file_from_iso_fp',
                               autospec=True) as get:
            exc = self.assertRaises(exception.ConfigDriveError,
                                    configdrive.read,
                                    drives.encode(drives.make_iso(files)))
        get.assert_not_called()
        self.assertIn('holds more than 1000 files and directories',
                      str(exc))
        self.assertIn('leave out the rest', str(exc))

    def test_files_at_the_limit(self):
        files = drive_files(user_data=b'{}')
        # drive_files: openstack/, latest/ and four files.
        for i in range(configdrive.MAX_FILES - 7):
            files['extra/f%d' % i] = b''
        drive = configdrive.read(drives.encode(drives.make_iso(files)))
        self.assertEqual(b'{}', drive.user_data)


class _Handler(http.server.BaseHTTPRequestHandler):

    routes = {}

    def do_GET(self):
        status, body, delay = self.routes.get(
            self.path.split('?')[0], (404, b'not found', 0))
        if delay:
            time.sleep(delay)
        self.send_response(status)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args):
        pass


class TestReadURL(testtools.TestCase):

    def setUp(self):
        super().setUp()
        routes = {}
        handler = type('Handler', (_Handler,), {'routes': routes})
        self.server = http.server.ThreadingHTTPServer(('127.0.0.1', 0),
                                                      handler)
        self.server.daemon_threads = True
        thread = threading.Thread(target=self.server.serve_forever,
                                  kwargs={'poll_interval': 0.05},
                                  daemon=True)
        thread.start()
        self.addCleanup(thread.join, 5)
        self.addCleanup(self.server.server_close)
        self.addCleanup(self.server.shutdown)
        self.routes = routes
        self.base = 'http://127.0.0.1:%d' % self.server.server_address[1]
        self.image = drives.make_iso(
            drive_files(user_data=b'{"ignition": {}}'))

    def serve(self, path, body, status=200, delay=0):
        self.routes[path] = (status, body, delay)
        return self.base + path

    def test_gzip_base64_text(self):
        url = self.serve('/cd', drives.encode(self.image).encode())
        drive = configdrive.read(url)
        self.assertEqual(b'{"ignition": {}}', drive.user_data)
        self.assertEqual(META, drive.meta_data)

    def test_plain_base64_text(self):
        url = self.serve('/cd', base64.b64encode(self.image))
        self.assertEqual(META, configdrive.read(url).meta_data)

    def test_binary_gzip_and_iso(self):
        for body in (gzip.compress(self.image), self.image):
            url = self.serve('/cd', body)
            self.assertEqual(b'{"ignition": {}}',
                             configdrive.read(url).user_data)

    def test_json(self):
        url = self.serve('/cd.json', json.dumps(
            {'meta_data': META, 'user_data': IGNITION}).encode())
        drive = configdrive.read(url)
        self.assertEqual(IGNITION, json.loads(drive.user_data))

    def test_timeout_passed(self):
        url = self.serve('/cd', drives.encode(self.image).encode())
        with mock.patch.object(configdrive.requests, 'get', autospec=True,
                               side_effect=requests.get) as mock_get:
            configdrive.read(url, timeout=7)
        mock_get.assert_called_once_with(url, timeout=7, stream=True)

    def test_slow_server_times_out(self):
        url = self.serve('/slow', b'{}', delay=2)
        exc = self.assertRaises(exception.ConfigDriveError, configdrive.read,
                                url, timeout=0.3)
        self.assertIn('config drive URL', str(exc))
        self.assertIn('Timeout', str(exc))

    def test_http_error_hides_query(self):
        url = self.base + '/missing?temp_url_sig=%s' % SECRET
        exc = self.assertRaises(exception.ConfigDriveError, configdrive.read,
                                url)
        self.assertIn('HTTP 404', str(exc))
        self.assertIn(self.base + '/missing', str(exc))
        self.assertNotIn(SECRET, str(exc))

    def test_connection_refused(self):
        self.server.shutdown()
        self.server.server_close()
        exc = self.assertRaises(exception.ConfigDriveError, configdrive.read,
                                self.base + '/cd', timeout=2)
        self.assertIn('downloading', str(exc))
        self.assertIn('ConnectionError', str(exc))

    def test_empty_body(self):
        exc = self.assertRaises(exception.ConfigDriveError, configdrive.read,
                                self.serve('/empty', b''))
        self.assertIn('empty body', str(exc))

    def test_garbage_body(self):
        exc = self.assertRaises(exception.ConfigDriveError, configdrive.read,
                                self.serve('/g', b'%%% not base64 %%%'))
        self.assertIn('config drive URL', str(exc))
        self.assertIn('valid base64', str(exc))

    def test_binary_garbage_body(self):
        exc = self.assertRaises(exception.ConfigDriveError, configdrive.read,
                                self.serve('/b', b'\xff\xfe\x00\x01' * 10))
        self.assertIn('neither text', str(exc))

    def test_bad_json_body(self):
        exc = self.assertRaises(exception.ConfigDriveError, configdrive.read,
                                self.serve('/j', b'{"user_data": '))
        self.assertIn('config drive URL', str(exc))
        self.assertIn('not valid JSON', str(exc))

    def test_too_big(self):
        self.useFixture(fixtures.MockPatchObject(configdrive, 'MAX_SIZE',
                                                 100))
        exc = self.assertRaises(exception.ConfigDriveError, configdrive.read,
                                self.serve('/big', b'A' * 4096))
        self.assertIn('more than', str(exc))

    def test_other_schemes(self):
        for url in ('ftp://example.com/cd', 'file:///etc/passwd',
                    'swift://container/obj'):
            exc = self.assertRaises(exception.ConfigDriveError,
                                    configdrive.read, url)
            self.assertIn('only http and https', str(exc))
