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

import hashlib
import http.server
import os
import threading

import fixtures
from ironic_python_agent.tests.unit import base
import requests

from ironic_coreos.agent import image_stream

SECRET = 'PULL-SECRET-MARKER-91ad'
IMAGE = os.urandom(3 * 1024 * 1024 + 4321)
SIGNATURE = b'-----BEGIN PGP SIGNATURE-----\nfake\n'


class _Upstream(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, content_length=True):
        self.content_length = content_length
        self.requests = []
        super().__init__(('127.0.0.1', 0), _UpstreamHandler)
        self.thread = threading.Thread(target=self.serve_forever,
                                       daemon=True)
        self.thread.start()

    @property
    def url(self):
        return 'http://127.0.0.1:%d/builds/fcos.raw.xz' % self.server_port

    def stop(self):
        self.shutdown()
        self.server_close()


class _UpstreamHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.0'

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.requests.append((self.path,
                                     self.headers.get('Authorization')))
        if self.path == '/builds/fcos.raw.xz':
            body = IMAGE
        elif self.path == '/builds/fcos.raw.xz.sig':
            body = SIGNATURE
        else:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        if self.server.content_length:
            self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        for start in range(0, len(body), 65536):
            self.wfile.write(body[start:start + 65536])


def _fetch(url):
    """Read a URL like the installer does; return (status, bytes, error)."""
    session = requests.Session()
    session.trust_env = False
    received = bytearray()
    try:
        with session.get(url, stream=True, timeout=30) as response:
            if response.status_code != 200:
                return response.status_code, bytes(received), None
            for chunk in response.iter_content(65536):
                received.extend(chunk)
        return response.status_code, bytes(received), None
    except (requests.RequestException, OSError) as exc:
        return None, bytes(received), exc


class TestImageStream(base.IronicAgentTest):

    def setUp(self):
        super().setUp()
        self.log = self.useFixture(fixtures.FakeLogger(level='DEBUG'))
        self.upstream = _Upstream()
        self.addCleanup(self.upstream.stop)
        self.useFixture(fixtures.EnvironmentVariable('http_proxy'))
        self.useFixture(fixtures.EnvironmentVariable('HTTP_PROXY'))

    def _stream(self, **kwargs):
        stream = image_stream.ImageStream(self.upstream.url, **kwargs)
        stream.start()
        self.addCleanup(stream.stop)
        return stream

    def test_good_digest_passes_through(self):
        stream = self._stream(
            checksum=('sha256', hashlib.sha256(IMAGE).hexdigest()))
        self.assertTrue(stream.local_url.startswith('http://127.0.0.1:'))
        self.assertTrue(stream.local_url.endswith('/fcos.raw.xz'))
        status, body, error = _fetch(stream.local_url)
        self.assertIsNone(error)
        self.assertEqual(200, status)
        self.assertEqual(IMAGE, body)
        self.assertTrue(stream.verified)
        self.assertIsNone(stream.mismatch)

    def test_good_digest_chunked_upstream(self):
        self.upstream.content_length = False
        stream = self._stream(
            checksum=('sha512', hashlib.sha512(IMAGE).hexdigest()))
        status, body, error = _fetch(stream.local_url)
        self.assertIsNone(error)
        self.assertEqual(IMAGE, body)
        self.assertTrue(stream.verified)

    def _assert_aborted(self, stream):
        status, body, error = _fetch(stream.local_url)
        self.assertIsNotNone(error)
        self.assertLess(len(body), len(IMAGE))
        # Everything but the held-back end went through, never the end.
        self.assertNotEqual(IMAGE[-1024:], body[-1024:])
        self.assertEqual(IMAGE[:len(body)], body)
        self.assertFalse(stream.verified)
        self.assertIn('expected %s' % ('0' * 64), stream.mismatch)
        self.assertIn('got %s' % hashlib.sha256(IMAGE).hexdigest(),
                      stream.mismatch)

    def test_bad_digest_aborts_before_the_end(self):
        stream = self._stream(checksum=('sha256', '0' * 64))
        self._assert_aborted(stream)
        exc = self.assertRaises(image_stream.ChecksumMismatch, stream.check)
        self.assertIn('expected %s' % ('0' * 64), str(exc))
        self.assertRaises(image_stream.ChecksumMismatch, stream.check,
                          complete=False)

    def test_check_after_complete_stream(self):
        stream = self._stream(
            checksum=('sha256', hashlib.sha256(IMAGE).hexdigest()))
        self.assertRaises(image_stream.StreamIncomplete, stream.check)
        _fetch(stream.local_url)
        self.assertIsNone(stream.check())

    def test_check_unread_stream(self):
        stream = self._stream(
            checksum=('sha256', hashlib.sha256(IMAGE).hexdigest()))
        # The signature alone is not the image.
        status, _body, _error = _fetch(stream.local_url + '.sig')
        self.assertEqual(200, status)
        exc = self.assertRaises(image_stream.StreamIncomplete, stream.check)
        self.assertIn('not read to its end', str(exc))
        self.assertIn('verified (sha256)', str(exc))
        # After a failed install only a mismatch is an error of its own.
        self.assertIsNone(stream.check(complete=False))

    def test_bad_digest_aborts_chunked(self):
        self.upstream.content_length = False
        stream = self._stream(checksum=('sha256', '0' * 64))
        self._assert_aborted(stream)

    def test_signature_forwarded_with_credential(self):
        stream = self._stream(pull_secret=SECRET)
        status, body, error = _fetch(stream.local_url + '.sig')
        self.assertEqual(200, status)
        self.assertEqual(SIGNATURE, body)
        status, body, error = _fetch(stream.local_url)
        self.assertEqual(IMAGE, body)
        self.assertEqual(
            [('/builds/fcos.raw.xz.sig', 'Bearer ' + SECRET),
             ('/builds/fcos.raw.xz', 'Bearer ' + SECRET)],
            self.upstream.requests)
        self.assertNotIn(SECRET, self.log.output)
        self.assertNotIn(SECRET, repr(stream))

    def test_upstream_error_passed_on(self):
        stream = image_stream.ImageStream(
            self.upstream.url.replace('fcos.raw.xz', 'missing.raw.xz'),
            checksum=('sha256', '0' * 64))
        stream.start()
        self.addCleanup(stream.stop)
        status, body, error = _fetch(stream.local_url)
        self.assertEqual(404, status)
        self.assertIsNone(stream.mismatch)

    def test_unknown_path_404(self):
        stream = self._stream()
        status, body, error = _fetch(stream.local_url + '.other')
        self.assertEqual(404, status)
        self.assertEqual([], self.upstream.requests)

    def test_upstream_unreachable_is_502(self):
        self.upstream.stop()
        stream = self._stream(checksum=('sha256', '0' * 64))
        status, body, error = _fetch(stream.local_url)
        self.assertEqual(502, status)

    def test_stop_releases_port(self):
        stream = self._stream()
        url = stream.local_url
        stream.stop()
        status, body, error = _fetch(url)
        self.assertIsNotNone(error)
