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

"""Read a config drive in every form Ironic stores it.

``instance_info['configdrive']`` holds one of:

1. a dict ``{meta_data, network_data, user_data, vendor_data}`` (also as
   the JSON text of such a dict) - what ``baremetal node deploy
   --config-drive '{...}'`` and Metal3 send;
2. a gzip-compressed, base64-encoded ISO 9660 image labelled ``config-2``
   with ``openstack/latest/{meta_data.json, network_data.json, user_data,
   vendor_data.json}`` - what Nova sends (base64 without gzip is accepted
   too);
3. an http(s) URL to either of the above.

Errors say which form was detected and what is wrong with it, never the
content (user_data usually holds secrets).
"""

import base64
import binascii
import dataclasses
import difflib
import hashlib
import io
import json
import urllib.parse
import zlib

from oslo_log import log
import pycdlib
from pycdlib import pycdlibexception
import requests

from ironic_coreos.engine import exception
from ironic_coreos.engine import jsondepth
from ironic_coreos.engine import redact

LOG = log.getLogger(__name__)

#: The most bytes a config drive may have as given: the JSON or base64
#: text, the bytes, the body a URL serves. Checked before it is parsed.
MAX_SIZE = 64 * 1024 * 1024
#: The most bytes the ISO 9660 image may have after base64 decoding and
#: gunzip (the size of Ironic's config drive partition). Decompression
#: stops there, so a gzip bomb costs no more than this.
MAX_IMAGE_SIZE = 64 * 1024 * 1024
#: The deepest nesting of arrays and objects in the config drive's JSON
#: (the drive, its user_data object and the Ignition config's own 32
#: levels fit). Checked before the JSON is parsed.
MAX_DEPTH = 40
#: The most files and directories the ISO 9660 image may hold (a config
#: drive has about ten). Checked before any file is read from the image.
MAX_FILES = 1000
LABEL = 'config-2'
KEYS = ('meta_data', 'network_data', 'user_data', 'vendor_data')
#: meta_data keys a host name is read from, in this order.
HOSTNAME_KEYS = ('hostname', 'local-hostname', 'local_hostname', 'name')

_DICT = 'JSON object config drive'
_JSON = 'JSON text config drive'
_ISO = 'base64 ISO 9660 config drive'
_URL = 'config drive URL'
_ISO_MAGIC_OFFSET = 0x8001
MiB = 1024 * 1024


@dataclasses.dataclass
class ConfigDrive:
    """The contents of a config drive.

    :ivar user_data: the user data as bytes (an Ignition config for CoreOS)
        or None.
    :ivar meta_data: the meta data dict (``{}`` when there is none).
    :ivar network_data: OpenStack network_data dict or None.
    :ivar vendor_data: vendor data dict or None.
    """

    user_data: bytes | None
    meta_data: dict
    network_data: dict | None
    vendor_data: dict | None

    @property
    def public_keys(self):
        """SSH public keys from ``meta_data['public_keys']``.

        Nova writes a dict (key name -> key), other tools a list.

        :returns: a list of key strings, without duplicates, in the order
            given.
        """
        keys = self.meta_data.get('public_keys')
        if isinstance(keys, dict):
            keys = list(keys.values())
        elif not isinstance(keys, list):
            return []
        result = []
        for key in keys:
            if isinstance(key, dict):
                key = key.get('data')
            if isinstance(key, str) and key.strip():
                key = key.strip()
                if key not in result:
                    result.append(key)
        return result

    @property
    def hostname_key(self):
        """The meta_data key the host name comes from, or None.

        The first of :data:`HOSTNAME_KEYS` holding a non-blank string:
        ``hostname`` (OpenStack, Nova), ``local-hostname`` and
        ``local_hostname`` (cloud-init; Metal3's baremetal-operator sets
        both to the BareMetalHost name and a metaData secret may override
        them), ``name`` (the instance or host name).

        :returns: a key of :data:`HOSTNAME_KEYS` or None.
        """
        for field in HOSTNAME_KEYS:
            value = self.meta_data.get(field)
            if isinstance(value, str) and value.strip():
                return field
        return None

    @property
    def hostname(self):
        """The host name from meta_data (see :attr:`hostname_key`).

        :returns: a string or None.
        """
        key = self.hostname_key
        return self.meta_data[key].strip() if key else None


def read(value, timeout=60):
    """Read a config drive as Ironic stores it.

    :param value: ``instance_info['configdrive']``: a dict, the JSON text
        of a dict, gzip+base64 (or plain base64) ISO 9660 data, or an
        http(s) URL to one of these. Bytes of a gzip-compressed or plain
        ISO 9660 image are accepted too.
    :param timeout: seconds to wait for the server when ``value`` is a URL.
    :returns: a :class:`ConfigDrive`, or None when ``value`` is None or
        empty.
    :raises: ConfigDriveError naming the detected form and the problem.
    """
    if value is None:
        return None
    if isinstance(value, dict):
        return _from_dict(value, _DICT)
    if isinstance(value, (str, bytes)) and len(value) > MAX_SIZE:
        raise exception.ConfigDriveError(
            'The config drive is %d bytes long; at most %d MiB are '
            'supported, send a smaller one (user_data up to the Ignition '
            'limit, no extra files)' % (len(value), MAX_SIZE // MiB))
    if isinstance(value, bytes):
        if _is_binary_image(value):
            return _from_blob(value, 'binary ISO 9660 config drive')
        try:
            value = value.decode('utf-8')
        except UnicodeDecodeError:
            raise exception.ConfigDriveError(
                'The config drive is bytes that are not UTF-8 text; pass a '
                'JSON object, base64 text of a gzip-compressed ISO 9660 '
                'image, or an http(s) URL')
    if not isinstance(value, str):
        raise exception.ConfigDriveError(
            'The config drive is %s; expected a JSON object, base64 text '
            'of a gzip-compressed ISO 9660 image, or an http(s) URL'
            % _kind(value))
    text = value.strip()
    if not text:
        return None
    if text.startswith('{'):
        return _from_json_text(text, _JSON)
    scheme = urllib.parse.urlsplit(text).scheme.lower() if (
        '://' in text[:16]) else ''
    if scheme in ('http', 'https'):
        return _from_url(text, timeout)
    if scheme:
        raise exception.ConfigDriveError(
            'The config drive is a %s:// URL; only http and https URLs are '
            'supported' % scheme)
    return _from_blob(_b64decode(text, _ISO), _ISO)


def _too_deep(form, what):
    return exception.ConfigDriveError(
        '%s: %s nests arrays and objects more than %d levels deep; a '
        'config drive and its Ignition config nest far less, remove the '
        'extra nesting' % (form, what, MAX_DEPTH))


def _from_json_text(text, form):
    if jsondepth.text_deeper_than(text, MAX_DEPTH):
        raise _too_deep(form, 'the JSON')
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise exception.ConfigDriveError(
            '%s: not valid JSON (%s); send a JSON object with the keys %s'
            % (form, _json_position(exc), ', '.join(KEYS)))
    if not isinstance(data, dict):
        raise exception.ConfigDriveError(
            '%s: the JSON is %s, not an object; send a JSON object with '
            'the keys %s' % (form, _kind(data), ', '.join(KEYS)))
    return _from_dict(data, form)


_KINDS = {dict: 'an object', list: 'an array', str: 'a string',
          bytes: 'bytes', bool: 'a boolean', int: 'a number',
          float: 'a number', type(None): 'null'}


def _kind(value):
    """The JSON name of a value's type (Python's names are internal)."""
    return _KINDS.get(type(value), 'a %s' % type(value).__name__)


def _json_position(exc):
    if isinstance(exc, json.JSONDecodeError):
        return '%s at line %d column %d' % (exc.msg, exc.lineno, exc.colno)
    return 'undecodable text'


def _from_dict(data, form):
    unknown = sorted(str(k) for k in data if k not in KEYS)
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, KEYS, n=1)
            hints.append('"%s"%s' % (key, ' (did you mean "%s"?)' % close[0]
                                     if close else ''))
        raise exception.ConfigDriveError(
            '%s: unknown key(s) %s; the accepted keys are %s'
            % (form, ', '.join(hints), ', '.join(KEYS)))
    meta_data = _object(data.get('meta_data'), 'meta_data', form) or {}
    network_data = _object(data.get('network_data'), 'network_data', form)
    vendor_data = _object(data.get('vendor_data'), 'vendor_data', form)
    user_data = data.get('user_data')
    if isinstance(user_data, (dict, list)):
        if jsondepth.value_deeper_than(user_data, MAX_DEPTH):
            raise _too_deep(form, 'user_data')
        user_data = json.dumps(user_data).encode('utf-8')
    elif isinstance(user_data, str):
        try:
            user_data = user_data.encode('utf-8')
        except UnicodeEncodeError as exc:
            # NOTE: a lone surrogate ("\ud800" in the request's JSON).
            raise exception.ConfigDriveError(
                '%s: user_data holds U+%04X at character %d, a lone '
                'surrogate, which is not text; send the Ignition config '
                'as valid UTF-8 text or as a JSON object'
                % (form, ord(exc.object[exc.start]), exc.start)) from None
    elif user_data is not None and not isinstance(user_data, bytes):
        raise exception.ConfigDriveError(
            '%s: user_data is %s; expected a string or a JSON object'
            % (form, _kind(user_data)))
    drive = ConfigDrive(user_data=user_data, meta_data=meta_data,
                        network_data=network_data, vendor_data=vendor_data)
    LOG.debug('Read a %(form)s: user_data %(size)s bytes, sha256 '
              '%(digest)s, network_data %(net)s',
              {'form': form, 'size': len(user_data or b''),
               'digest': hashlib.sha256(user_data or b'').hexdigest(),
               'net': 'present' if network_data is not None else 'absent'})
    return drive


def _object(value, key, form):
    if value is None or isinstance(value, dict):
        return value
    raise exception.ConfigDriveError(
        '%s: %s is %s; expected a JSON object'
        % (form, key, _kind(value)))


def _b64decode(text, form):
    compact = ''.join(text.split())
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise exception.ConfigDriveError(
            '%s: the value is neither a JSON object, an http(s) URL nor '
            'valid base64 (%d characters); send the config drive as a '
            'JSON object or as base64 of a gzip-compressed ISO 9660 image '
            'labelled %s' % (form, len(compact), LABEL))


def _gunzip(blob, form):
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        data = decompressor.decompress(blob, MAX_IMAGE_SIZE)
    except zlib.error as exc:
        raise exception.ConfigDriveError(
            '%s: the gzip data is corrupt (%s); compress the ISO image with '
            'gzip before base64 encoding it' % (form, exc))
    if decompressor.unconsumed_tail:
        raise exception.ConfigDriveError(
            '%s: the gzip data expands to more than %d MiB (a config drive '
            'image is at most that big); send a smaller image'
            % (form, MAX_IMAGE_SIZE // MiB))
    if not decompressor.eof:
        raise exception.ConfigDriveError(
            '%s: the gzip data is truncated; send the complete image'
            % form)
    return data


def _is_binary_image(blob):
    """Whether bytes are gzip data or an ISO 9660 image."""
    return blob[:2] == b'\x1f\x8b' or (
        blob[_ISO_MAGIC_OFFSET:_ISO_MAGIC_OFFSET + 5] == b'CD001')


def _from_blob(blob, form):
    """Read gzip-compressed or plain ISO 9660 bytes."""
    if blob[:2] == b'\x1f\x8b':
        form = form.replace('base64', 'gzip+base64', 1)
        blob = _gunzip(blob, form)
    if len(blob) > MAX_IMAGE_SIZE:
        raise exception.ConfigDriveError(
            '%s: the ISO 9660 image is %d bytes; at most %d MiB are '
            'supported, send a smaller image' % (form, len(blob),
                                                 MAX_IMAGE_SIZE // MiB))
    if blob[_ISO_MAGIC_OFFSET:_ISO_MAGIC_OFFSET + 5] != b'CD001':
        raise exception.ConfigDriveError(
            '%s: the decoded data (%d bytes) is neither gzip-compressed nor '
            'an ISO 9660 image; send base64 of a gzip-compressed ISO 9660 '
            'image labelled %s' % (form, len(blob), LABEL))
    return _read_iso(blob, form)


def _unreadable(form, exc):
    """The error for an image pycdlib cannot read.

    pycdlib reads damaged images with whatever exception its code meets
    (KeyError, IndexError, struct.error, ...): every one means the image is
    damaged. Only pycdlib's own messages are quoted.
    """
    if isinstance(exc, pycdlibexception.PyCdlibException):
        reason = str(exc)
    else:
        reason = 'damaged ISO 9660 structures, %s' % type(exc).__name__
    return exception.ConfigDriveError(
        '%s: the ISO 9660 image cannot be read (%s); build it with '
        'genisoimage/mkisofs -J -r -V %s' % (form, reason, LABEL))


def _read_iso(blob, form):
    iso = pycdlib.PyCdlib()
    try:
        iso.open_fp(io.BytesIO(blob))
    except Exception as exc:
        raise _unreadable(form, exc)
    try:
        label = _label(iso)
        if label != LABEL:
            LOG.warning('The ISO 9660 config drive is labelled %(label)r, '
                        'not %(expected)r; reading it anyway',
                        {'label': label, 'expected': LABEL})
        files = _list_files(iso, form)
        base = _version_dir(files, form)
        contents = {}
        for name in ('meta_data.json', 'network_data.json', 'user_data',
                     'vendor_data.json'):
            where = files.get('%s/%s' % (base, name))
            if where is None:
                continue
            out = io.BytesIO()
            iso.get_file_from_iso_fp(out, **{where[0]: where[1]})
            contents[name] = out.getvalue()
    except exception.ConfigDriveError:
        raise
    except Exception as exc:
        raise _unreadable(form, exc)
    finally:
        try:
            iso.close()
        except Exception:  # nosec: a damaged image, already reported
            pass
    if 'meta_data.json' not in contents:
        raise exception.ConfigDriveError(
            '%s: the ISO 9660 image has no %s/meta_data.json; a config '
            'drive holds openstack/latest/meta_data.json (and optionally '
            'user_data, network_data.json, vendor_data.json)' % (form, base))
    data = {}
    for name, key in (('meta_data.json', 'meta_data'),
                      ('network_data.json', 'network_data'),
                      ('vendor_data.json', 'vendor_data')):
        if name not in contents:
            continue
        if jsondepth.text_deeper_than(contents[name], MAX_DEPTH):
            raise _too_deep(form, '%s/%s' % (base, name))
        try:
            data[key] = json.loads(contents[name].decode('utf-8'))
        except (ValueError, UnicodeDecodeError) as exc:
            raise exception.ConfigDriveError(
                '%s: %s/%s is not valid JSON (%s); fix the file in the '
                'image' % (form, base, name, _json_position(exc)))
        if not isinstance(data[key], dict):
            raise exception.ConfigDriveError(
                '%s: %s/%s holds %s; expected a JSON object'
                % (form, base, name, _kind(data[key])))
    if 'user_data' in contents:
        data['user_data'] = contents['user_data']
    return _from_dict(data, form)


def _label(iso):
    pvd = getattr(iso, 'pvd', None)
    ident = getattr(pvd, 'volume_identifier', b'') or b''
    return ident.decode('ascii', 'replace').strip()


def _list_files(iso, form):
    """Map lower-case paths to (pycdlib path keyword, path on the ISO).

    :raises: ConfigDriveError when the image holds more than
        :data:`MAX_FILES` files and directories.
    """
    if iso.has_rock_ridge():
        key = 'rr_path'
    elif iso.has_joliet():
        key = 'joliet_path'
    else:
        key = 'iso_path'
    files = {}
    entries = 0
    for dirpath, dirs, names in iso.walk(**{key: '/'}):
        entries += len(dirs) + len(names)
        if entries > MAX_FILES:
            raise exception.ConfigDriveError(
                '%s: the ISO 9660 image holds more than %d files and '
                'directories; a config drive holds openstack/latest/ '
                'meta_data.json, user_data, network_data.json and '
                'vendor_data.json, leave out the rest' % (form, MAX_FILES))
        for name in names:
            shown = name
            if key == 'iso_path':
                shown = name.split(';', 1)[0]
                # NOTE: plain ISO 9660 has no "." in directory names
                # and ends extension-less files with a dot.
                shown = shown[:-1] if shown.endswith('.') else shown
            parent = dirpath.rstrip('/')
            path = (parent + '/' + shown).lower().lstrip('/')
            files.setdefault(path, (key, parent + '/' + name))
    return files


def _version_dir(files, form):
    versions = set()
    for path in files:
        parts = path.split('/')
        if len(parts) == 3 and parts[0] == 'openstack':
            versions.add(parts[1])
    if 'latest' in versions:
        return 'openstack/latest'
    dated = sorted(v for v in versions if v[:4].isdigit())
    if dated:
        return 'openstack/' + dated[-1]
    raise exception.ConfigDriveError(
        '%s: the ISO 9660 image has no openstack/latest/ directory with '
        'config drive files (meta_data.json, user_data, '
        'network_data.json); is it a config drive?' % form)


def _from_url(url, timeout):
    shown = redact.url(url)
    try:
        with requests.get(url, timeout=timeout, stream=True) as resp:
            if resp.status_code != 200:
                raise exception.ConfigDriveError(
                    '%s: %s answered HTTP %d; check that the URL is '
                    'reachable from here and not expired'
                    % (_URL, shown, resp.status_code))
            chunks = []
            size = 0
            for chunk in resp.iter_content(chunk_size=1024 * 1024):
                size += len(chunk)
                if size > MAX_SIZE:
                    raise exception.ConfigDriveError(
                        '%s: %s serves more than %d MiB; a config drive '
                        'must be smaller' % (_URL, shown, MAX_SIZE // MiB))
                chunks.append(chunk)
    except requests.RequestException as exc:
        raise exception.ConfigDriveError(
            '%s: downloading %s failed (%s); check that the URL is '
            'reachable from here' % (_URL, shown, type(exc).__name__))
    blob = b''.join(chunks)
    LOG.debug('Downloaded the config drive from %(url)s: %(size)s bytes, '
              'sha256 %(digest)s',
              {'url': shown, 'size': len(blob),
               'digest': hashlib.sha256(blob).hexdigest()})
    form = '%s (%s)' % (_URL, shown)
    if not blob.strip():
        raise exception.ConfigDriveError(
            '%s: the server sent an empty body; serve the config drive '
            'there' % form)
    if _is_binary_image(blob):
        return _from_blob(blob, form + ', binary ISO 9660')
    try:
        text = blob.decode('utf-8').strip()
    except UnicodeDecodeError:
        raise exception.ConfigDriveError(
            '%s: the downloaded data is neither text (JSON or base64) nor a '
            'gzip-compressed or plain ISO 9660 image' % form)
    if text.startswith('{'):
        return _from_json_text(text, form + ', JSON')
    return _from_blob(_b64decode(text, form + ', base64 ISO 9660'),
                      form + ', base64 ISO 9660')
