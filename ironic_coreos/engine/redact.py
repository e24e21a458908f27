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


"""Keep secrets out of logs.

Ignition configs, config drives and pull secrets travel inside deploy steps
and nodes that Ironic and ironic-python-agent log as a whole, from many
modules and at every level. :func:`install` makes every log record of the
process go through :func:`redact_record`, which replaces the values of the
secret keys by ``<hidden>`` in the record, never in the objects the code
works with. The ``coreos`` deploy interface installs it in the conductor
when it loads, the agent's hardware manager in the agent.
"""

import hashlib
import json
import logging
import re
import urllib.parse

HIDDEN = '<hidden>'

# Keys whose values are secrets wherever they appear.
SECRET_KEYS = frozenset(['ignition', 'image_pull_secret', 'configdrive',
                         'user_data'])

_MAX_DEPTH = 30


# A quoted string (backslash escapes), or a lone quote that is never
# closed, or one bracket: the scan of a value jumps from one of these to
# the next in C instead of looking at every character in Python, since a
# logged step or node may print a config of megabytes.
_STRINGS = {
    "'": re.compile(r"'[^'\\]*(?:\\.[^'\\]*)*'", re.S),
    '"': re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S),
}
_TOKEN = re.compile(r"""[{}\[\]]"""
                    r"""|'[^'\\]*(?:\\.[^'\\]*)*'"""
                    r'''|"[^"\\]*(?:\\.[^"\\]*)*"'''
                    r"""|['"]""", re.S)
_SCALAR = re.compile(r'[^,}\]]*')


def _end_of_value(text, start):
    """Index just after the Python/JSON literal starting at ``start``.

    A string or a bracket that is not closed runs to the end of the text.
    """
    opening = text[start] if start < len(text) else ''
    if opening in ('\'', '"'):
        match = _STRINGS[opening].match(text, start)
        return match.end() if match else len(text)
    if opening in ('{', '['):
        depth = 0
        for match in _TOKEN.finditer(text, start):
            token = match.group()
            if token in ('{', '['):
                depth += 1
            elif token in ('}', ']'):
                depth -= 1
                if depth == 0:
                    return match.end()
            elif len(token) == 1:
                # A quote that is never closed.
                return len(text)
        return len(text)
    return _SCALAR.match(text, start).end()


def redact_text(text):
    """Hide the values of secret keys in a repr() or JSON text.

    :param text: a string that may contain ``'ignition': {...}``.
    :returns: the string with such values replaced by ``<hidden>``.
    """
    for key in sorted(SECRET_KEYS):
        for quote in ('\'', '"'):
            needle = '%s%s%s: ' % (quote, key, quote)
            position = text.find(needle)
            while position != -1:
                start = position + len(needle)
                end = _end_of_value(text, start)
                text = "%s'%s'%s" % (text[:start], HIDDEN, text[end:])
                position = text.find(needle, start)
    return text


def url(value):
    """Reduce a URL to what a log may show.

    Credentials hide in the user info and in the query (signed URLs);
    neither is needed to recognise a URL in a log or an error message.

    :param value: a URL.
    :returns: scheme, host, port and path; ``?...`` marks a dropped query.
    """
    parsed = urllib.parse.urlsplit(value)
    netloc = parsed.hostname or ''
    if parsed.port:
        netloc = '%s:%d' % (netloc, parsed.port)
    query = '...' if parsed.query else ''
    return urllib.parse.urlunsplit((parsed.scheme, netloc, parsed.path,
                                    query, ''))


def redact(value, depth=0):
    """Copy ``value`` with the values of secret keys hidden.

    :param value: a dict, list, tuple or string (other values are returned
        as they are).
    :returns: the redacted copy.
    """
    if depth > _MAX_DEPTH:
        return value
    if isinstance(value, dict):
        return {k: (HIDDEN if k in SECRET_KEYS and v is not None
                    else redact(v, depth + 1))
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact(v, depth + 1) for v in value)
    if isinstance(value, str):
        return redact_text(value)
    return value


def _mentions_secret(text):
    return any(key in text for key in SECRET_KEYS)


def redact_record(record):
    """Hide secrets in a log record, in place.

    The record keeps the formatted message and no arguments. When the
    message names a secret key, it is formatted with redacted copies of
    its arguments, and the text is redacted again (objects such as a node
    print their fields, secrets included, in their ``str()``). Records that
    name no secret key cost one formatting, which a handler would do
    anyway.

    :param record: a :class:`logging.LogRecord`.
    """
    try:
        text = record.getMessage()
    except Exception:
        # NOTE: a broken format string is the handler's to report; give
        # it redacted arguments.
        text = None
    if text is not None and not _mentions_secret(text):
        record.msg, record.args = text, ()
        return
    args = record.args
    if args:
        if isinstance(args, dict):
            args = redact(args)
        elif isinstance(args, tuple):
            args = tuple(redact(a) for a in args)
        else:
            args = redact(args)
        record.args = args
    try:
        text = record.getMessage()
    except Exception:
        return
    record.msg = redact_text(text)
    record.args = ()


class SecretFilter(logging.Filter):
    """A logging filter that hides secrets (see :func:`redact_record`)."""

    def filter(self, record):
        redact_record(record)
        return True


class _RecordFactory:
    """Wraps the process's log record factory; redacts every record."""

    def __init__(self, previous):
        self.previous = previous

    def __call__(self, *args, **kwargs):
        record = self.previous(*args, **kwargs)
        try:
            redact_record(record)
        except Exception:
            # NOTE: logging must never fail because of the redaction.
            pass
        return record


def install():
    """Redact every log record of this process, whatever its logger.

    Ironic and ironic-python-agent log deploy steps with their arguments
    and nodes with their ``instance_info`` from many modules, at every
    level (for example ``ironic.conductor.deployments`` at INFO,
    ``ironic.conductor.steps`` at DEBUG). A filter on a logger only sees
    the records of that very logger, so the redaction goes into the
    record factory instead (:func:`logging.setLogRecordFactory`), which
    every logger of the process uses. Records are made only for the
    levels that are enabled. Idempotent; the previous factory is kept
    and called first.
    """
    factory = logging.getLogRecordFactory()
    if not isinstance(factory, _RecordFactory):
        logging.setLogRecordFactory(_RecordFactory(factory))


def installed():
    """Whether :func:`install` is in effect in this process."""
    return isinstance(logging.getLogRecordFactory(), _RecordFactory)


def config_bytes(config):
    """The one serialisation of an Ignition config that is logged.

    Sorted keys, no white space, ASCII: the conductor and the agent
    compute the logged digest of the same config from the same bytes,
    and the agent writes exactly these bytes for the installer.

    :param config: the parsed config (a dict).
    :returns: bytes.
    """
    return json.dumps(config, sort_keys=True,
                      separators=(',', ':')).encode('utf-8')


def digest(data):
    """The sha256 hex digest that logs show in place of a secret.

    :param data: bytes.
    :returns: a string of 64 hex digits.
    """
    return hashlib.sha256(data).hexdigest()
