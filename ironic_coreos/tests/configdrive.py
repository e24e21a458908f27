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

"""Nova-style ISO 9660 config drives for tests.

Shared by the engine, agent, conductor and end-to-end tests, so it imports
neither ironic nor ironic_python_agent.

Usage::

    value = configdrive.build_iso(user_data=config, meta_data=META)
    # base64 text of a gzipped ISO labelled config-2, files under
    # openstack/latest/, the way Nova and Ironic store it.

For odd images (other labels, no Rock Ridge or Joliet names, files in
other places) build the file map with :func:`drive_files`, change it, and
call :func:`make_iso` and :func:`encode`.
"""

import base64
import gzip
import io
import json

import pycdlib

LABEL = 'config-2'
LATEST = 'openstack/latest'


def _as_bytes(value):
    """File contents: dicts and lists as JSON, text as UTF-8, bytes as is."""
    if isinstance(value, (dict, list)):
        value = json.dumps(value)
    if isinstance(value, str):
        value = value.encode()
    return value


def drive_files(user_data=None, meta_data=None, network_data=None,
                vendor_data=None, base=LATEST):
    """The files of a config drive, for :func:`make_iso`.

    Each argument left as None leaves its file out.

    :param user_data: bytes, text or a dict (serialised as JSON).
    :param meta_data: dict for meta_data.json (or its raw bytes/text).
    :param network_data: dict for network_data.json (or raw bytes/text).
    :param vendor_data: dict for vendor_data.json (or raw bytes/text).
    :param base: the version directory, e.g. ``openstack/2018-08-27``.
    :returns: dict of relative path -> bytes.
    """
    files = {}
    for name, value in (('meta_data.json', meta_data),
                        ('network_data.json', network_data),
                        ('vendor_data.json', vendor_data),
                        ('user_data', user_data)):
        if value is not None:
            files[base + '/' + name] = _as_bytes(value)
    return files


def make_iso(files, label=LABEL, rock_ridge=True, joliet=True,
             interchange_level=4):
    """Build an ISO 9660 image in memory, the way genisoimage would.

    :param files: dict of relative path -> bytes.
    :param label: the volume label.
    :param rock_ridge: add Rock Ridge names (genisoimage -r).
    :param joliet: add Joliet names (genisoimage -J).
    :param interchange_level: the ISO 9660 interchange level (4 allows the
        long upper-case names below).
    :returns: the image bytes.
    """
    iso = pycdlib.PyCdlib()
    kwargs = {}
    if rock_ridge:
        kwargs['rock_ridge'] = '1.09'
    if joliet:
        kwargs['joliet'] = 3
    iso.new(interchange_level=interchange_level, vol_ident=label, **kwargs)
    made = set()
    for path in sorted(files):
        parts = path.split('/')
        for depth in range(1, len(parts)):
            directory = '/'.join(parts[:depth])
            if directory in made:
                continue
            made.add(directory)
            names = {'iso_path': '/' + directory.upper()}
            if rock_ridge:
                names['rr_name'] = parts[depth - 1]
            if joliet:
                names['joliet_path'] = '/' + directory
            iso.add_directory(**names)
        # Like genisoimage: upper-case ISO 9660 names, a dot before the
        # version when there is no extension.
        iso_name = path.upper() + ('' if '.' in parts[-1] else '.') + ';1'
        names = {'iso_path': '/' + iso_name}
        if rock_ridge:
            names['rr_name'] = parts[-1]
        if joliet:
            names['joliet_path'] = '/' + path
        iso.add_fp(io.BytesIO(files[path]), len(files[path]), **names)
    out = io.BytesIO()
    iso.write_fp(out)
    iso.close()
    return out.getvalue()


def encode(image, gzip_it=True, base64_it=True):
    """Wrap an image the way Nova and Ironic store it.

    :param image: the ISO image bytes.
    :param gzip_it: gzip-compress the image.
    :param base64_it: base64-encode the (compressed) image.
    :returns: base64 text when ``base64_it``, bytes otherwise.
    """
    if gzip_it:
        image = gzip.compress(image)
    if base64_it:
        return base64.b64encode(image).decode()
    return image


def build_iso(user_data=None, meta_data=None, network_data=None,
              vendor_data=None, gzip_it=True, base64_it=True,
              extra_files=None, label=LABEL):
    """A config drive as Nova sends it.

    An ISO 9660 image labelled ``config-2`` with Rock Ridge and Joliet names
    and the files under ``openstack/latest/``.

    :param user_data: bytes, text or a dict (serialised as JSON); None
        leaves user_data out.
    :param meta_data: dict for meta_data.json; None leaves the file out.
    :param network_data: dict for network_data.json or None.
    :param vendor_data: dict for vendor_data.json or None.
    :param gzip_it: gzip-compress the image.
    :param base64_it: base64-encode the (compressed) image.
    :param extra_files: dict of relative path -> bytes to add or replace.
    :param label: the volume label.
    :returns: base64 text when ``base64_it``, bytes otherwise.
    """
    files = drive_files(user_data=user_data, meta_data=meta_data,
                        network_data=network_data, vendor_data=vendor_data)
    files.update(extra_files or {})
    return encode(make_iso(files, label=label), gzip_it=gzip_it,
                  base64_it=base64_it)
