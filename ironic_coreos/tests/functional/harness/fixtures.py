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

"""Inputs for end-to-end runs: config drives, SSH keys, an image server."""

import base64
import functools
import hashlib
import http.server
import os
import socket
import threading

from ironic_coreos.tests import configdrive as drives


def ssh_key(seed, comment='e2e@ironic-coreos'):
    """A well-formed ssh-ed25519 public key line, derived from ``seed``.

    :param seed: any text; the same seed gives the same key.
    :returns: ``ssh-ed25519 AAAA... comment``.
    """
    body = hashlib.sha256(seed.encode()).digest()
    blob = b''
    for part in (b'ssh-ed25519', body):
        blob += len(part).to_bytes(4, 'big') + part
    return 'ssh-ed25519 %s %s' % (base64.b64encode(blob).decode(), comment)


def iso_config_drive(user_data=None, meta_data=None, network_data=None,
                     vendor_data=None):
    """A config drive the way Nova sends it: gzip + base64 ISO 9660.

    Label ``config-2``, files under ``openstack/latest/`` with Rock Ridge
    and Joliet names.

    :param user_data: bytes or text (or a dict, serialised as JSON).
    :param meta_data: dict for meta_data.json.
    :param network_data: dict for network_data.json or None.
    :param vendor_data: dict for vendor_data.json or None.
    :returns: the base64 text.
    """
    return drives.build_iso(user_data=user_data, meta_data=meta_data or {},
                            network_data=network_data,
                            vendor_data=vendor_data)


class _Handler(http.server.SimpleHTTPRequestHandler):

    def __init__(self, *args, server_log=None, **kwargs):
        self._server_log = server_log
        super().__init__(*args, **kwargs)

    def log_message(self, fmt, *args):
        # Record who asked for what and which credential came along
        # (tests compare it with the pull secret they set).
        self._server_log.append({'path': self.path,
                                 'method': self.command,
                                 'authorization':
                                     self.headers.get('Authorization')})


class ImageServer(object):
    """Serve a directory over HTTP on the host side of the bridge.

    :param directory: what to serve.
    :param ip: address to bind (the harness's host_ip).
    """

    def __init__(self, directory, ip):
        self.directory = directory
        self.requests = []
        handler = functools.partial(_Handler, directory=directory,
                                    server_log=self.requests)
        self.httpd = http.server.ThreadingHTTPServer((ip, 0), handler)
        self.httpd.daemon_threads = True
        self.url = 'http://%s:%d' % (ip, self.httpd.server_address[1])
        self._thread = threading.Thread(target=self.httpd.serve_forever,
                                        daemon=True, name='e2e-httpd')

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        try:
            self.httpd.socket.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def url_of(self, name):
        return '%s/%s' % (self.url, os.path.basename(name))
