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

"""A local HTTP stream that verifies the image digest on the fly.

coreos-installer has no option to check an image digest, but it writes the
first MiB of the disk last, after the whole stream has been read. The
:class:`ImageStream` serves the image to the installer on 127.0.0.1: it
fetches the real URL in chunks, hashes what it forwards, and holds the last
chunk back until the digest of the whole stream is known. On a mismatch it
resets the connection instead of sending the end of the stream, so the
installer fails before the disk can boot. The image is never held in
memory. The same stream adds the image server's credential (a bearer
token) that the installer cannot send itself.
"""

import hashlib
import http.server
import posixpath
import socket
import struct
import threading
import urllib.parse

from oslo_log import log
import requests

from ironic_coreos.engine import redact

LOG = log.getLogger(__name__)

CHUNK_SIZE = 1024 * 1024

# Upstream answers passed on to the installer as they are.
_HOP_HEADERS = ('Content-Length', 'Content-Type', 'Last-Modified', 'ETag')


class ChecksumMismatch(Exception):
    """The image served did not have the expected digest."""


class StreamIncomplete(Exception):
    """The image was never served to its end."""


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, stream):
        self.stream = stream
        super().__init__(('127.0.0.1', 0), _Handler)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    server_version = 'ironic-coreos-image-stream'

    def log_message(self, format, *args):
        # NOTE: requests go to the oslo log at debug level, not stderr.
        LOG.debug('Image stream: %s', format % args)

    def do_GET(self):
        self._serve(with_body=True)

    def do_HEAD(self):
        self._serve(with_body=False)

    def _serve(self, with_body):
        stream = self.server.stream
        path = urllib.parse.urlsplit(self.path).path
        if path == '/' + stream.name:
            upstream, verify = stream.url, True
        elif path == '/' + stream.name + '.sig':
            upstream, verify = stream.url + '.sig', False
        else:
            self._reply_status(404)
            return
        try:
            response = stream.open_upstream(upstream, with_body)
        except requests.RequestException as exc:
            LOG.warning('Image stream: cannot fetch %(url)s: %(err)s',
                        {'url': redact.url(upstream),
                         'err': type(exc).__name__})
            self._reply_status(502)
            return
        with response:
            if response.status_code != 200:
                LOG.warning('Image stream: %(url)s answered HTTP %(code)s',
                            {'url': redact.url(upstream),
                             'code': response.status_code})
                self._reply_status(response.status_code)
                return
            self.send_response(200)
            length = response.headers.get('Content-Length')
            for name in _HOP_HEADERS:
                if name in response.headers:
                    self.send_header(name, response.headers[name])
            chunked = with_body and length is None
            if chunked:
                self.send_header('Transfer-Encoding', 'chunked')
            self.send_header('Connection', 'close')
            self.end_headers()
            self.close_connection = True
            if not with_body:
                return
            self._forward(stream, response, chunked, verify)

    def _forward(self, stream, response, chunked, verify):
        digest = (hashlib.new(stream.algorithm)
                  if verify and stream.algorithm else None)
        held = None
        try:
            for chunk in response.iter_content(CHUNK_SIZE):
                if not chunk:
                    continue
                if digest is not None:
                    digest.update(chunk)
                if held is not None:
                    self._write(held, chunked)
                held = chunk
        except (requests.RequestException, OSError) as exc:
            LOG.warning('Image stream: forwarding %(url)s failed: %(err)s',
                        {'url': redact.url(response.url or stream.url),
                         'err': type(exc).__name__})
            self._abort()
            return
        if digest is not None and digest.hexdigest() != stream.expected:
            stream.record_mismatch(digest.hexdigest())
            self._abort()
            return
        if verify:
            # NOTE: recorded before the end is sent: the installer may
            # finish as soon as it has the last bytes.
            stream.record_success()
        if held is not None:
            self._write(held, chunked)
        self._finish(chunked)

    def _write(self, data, chunked):
        if chunked:
            self.wfile.write(b'%x\r\n' % len(data) + data + b'\r\n')
        else:
            self.wfile.write(data)

    def _finish(self, chunked):
        if chunked:
            self.wfile.write(b'0\r\n\r\n')
        self.wfile.flush()

    def _abort(self):
        # NOTE: reset the connection (SO_LINGER 0) instead of closing it
        # cleanly: the client sees an error, never a complete stream.
        try:
            self.wfile.flush()
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack('ii', 1, 0))
        except OSError:
            pass
        self.close_connection = True

    def _reply_status(self, code):
        self.send_response(code)
        self.send_header('Content-Length', '0')
        self.send_header('Connection', 'close')
        self.end_headers()
        self.close_connection = True


class ImageStream:
    """Serve one image on 127.0.0.1, verified and with credentials.

    Use as a context manager::

        with ImageStream(url, checksum=('sha256', hexdigest)) as stream:
            run_installer(stream.local_url)
            stream.check()

    :param url: the real http(s) URL of the image (``URL.sig`` is its
        signature).
    :param checksum: ``(algorithm, hexdigest)`` or None.
    :param pull_secret: bearer token for the image server, or None. Never
        logged.
    :param verify: TLS verification for ``requests`` (bool or CA path).
    :param cert: TLS client certificate for ``requests``, or None.
    :param timeout: connect and read timeout in seconds.
    """

    def __init__(self, url, checksum=None, pull_secret=None, verify=True,
                 cert=None, timeout=60):
        self.url = url
        self.name = posixpath.basename(
            urllib.parse.urlsplit(url).path.rstrip('/')) or 'image'
        self.algorithm, self.expected = checksum or (None, None)
        self._pull_secret = pull_secret
        self._verify = verify
        self._cert = cert
        self._timeout = timeout
        self._lock = threading.Lock()
        self.mismatch = None
        # NOTE: True once the image was served to its end, its digest
        # matching when a checksum was given.
        self.verified = False
        self._server = None
        self._thread = None

    def __repr__(self):
        return 'ImageStream(%s)' % redact.url(self.url)

    @property
    def local_url(self):
        """The URL to give the installer."""
        host, port = self._server.server_address[:2]
        return 'http://%s:%d/%s' % (host, port,
                                    urllib.parse.quote(self.name))

    def start(self):
        """Start serving in a background thread.

        :returns: :attr:`local_url`.
        """
        self._server = _Server(self)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name='coreos-image-stream',
                                        daemon=True)
        self._thread.start()
        LOG.info('Serving %(url)s to the installer at %(local)s '
                 '(checksum: %(algo)s, credential: %(cred)s)',
                 {'url': redact.url(self.url), 'local': self.local_url,
                  'algo': self.algorithm or 'none',
                  'cred': 'yes' if self._pull_secret else 'no'})
        return self.local_url

    def stop(self):
        """Stop serving and release the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=10)
            self._server = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc_info):
        self.stop()
        return False

    def open_upstream(self, url, with_body=True):
        """Open the real URL (called by the request handler).

        :param url: the image URL or its ``.sig`` URL.
        :param with_body: False for a HEAD request.
        :returns: a streaming ``requests.Response``.
        :raises: requests.RequestException on network errors.
        """
        headers = {}
        if self._pull_secret:
            headers['Authorization'] = 'Bearer %s' % self._pull_secret
        method = 'GET' if with_body else 'HEAD'
        return requests.request(method, url, headers=headers, stream=True,
                                verify=self._verify, cert=self._cert,
                                timeout=self._timeout, allow_redirects=True)

    def record_mismatch(self, actual):
        """Remember a digest mismatch (called by the request handler)."""
        with self._lock:
            self.mismatch = (
                'The image %(url)s does not have the expected %(algo)s '
                'checksum: expected %(expected)s, got %(actual)s. The '
                'stream was cut before its end, so the disk is not '
                'bootable. Check image_checksum or the image server.'
                % {'url': redact.url(self.url), 'algo': self.algorithm,
                   'expected': self.expected, 'actual': actual})
        LOG.error('%s', self.mismatch)

    def record_success(self):
        """Remember a complete, verified stream."""
        with self._lock:
            self.verified = True
        if self.algorithm:
            LOG.info('Image %(url)s streamed and verified (%(algo)s)',
                     {'url': redact.url(self.url), 'algo': self.algorithm})

    def check(self, complete=True):
        """Confirm what the installer got.

        :param complete: also require that the image was served to its end
            (after the installer succeeded); False after it failed, when
            only a mismatch matters.
        :raises: ChecksumMismatch if the image did not have the expected
            digest.
        :raises: StreamIncomplete if ``complete`` and the image was not
            served to its end (or not verified).
        """
        with self._lock:
            mismatch, verified = self.mismatch, self.verified
        if mismatch:
            raise ChecksumMismatch(mismatch)
        if complete and not verified:
            raise StreamIncomplete(
                'The installer reported success, but the image %(url)s was '
                'not read to its end through the local stream%(check)s, so '
                'the installed image is not known to be the right one. '
                'Check the installer and the image server, then deploy '
                'again.' % {'url': redact.url(self.url),
                            'check': (' and verified (%s)' % self.algorithm
                                      if self.algorithm else '')})
