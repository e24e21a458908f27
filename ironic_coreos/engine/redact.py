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
and nodes that Ironic and ironic-python-agent log as a whole. The filter
here replaces the values of the secret keys by ``<hidden>`` in the log
record, never in the objects the code works with.
"""

import logging
import urllib.parse

HIDDEN = '<hidden>'

# Keys whose values are secrets wherever they appear.
SECRET_KEYS = frozenset(['ignition', 'image_pull_secret', 'configdrive',
                         'user_data'])

_MAX_DEPTH = 30


def _end_of_value(text, start):
    """Index just after the Python/JSON literal starting at ``start``."""
    opening = text[start] if start < len(text) else ''
    if opening in '\'"':
        index = start + 1
        while index < len(text):
            if text[index] == '\\':
                index += 2
                continue
            if text[index] == opening:
                return index + 1
            index += 1
        return len(text)
    if opening in '{[':
        depth = 0
        index = start
        while index < len(text):
            char = text[index]
            if char in '\'"':
                index = _end_of_value(text, index)
                continue
            if char in '{[':
                depth += 1
            elif char in '}]':
                depth -= 1
                if depth == 0:
                    return index + 1
            index += 1
        return len(text)
    index = start
    while index < len(text) and text[index] not in ',}]':
        index += 1
    return index


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


class SecretFilter(logging.Filter):
    """A logging filter that hides secret values in the record's args."""

    def filter(self, record):
        if record.args:
            if isinstance(record.args, dict):
                record.args = redact(record.args)
            else:
                record.args = tuple(redact(a) for a in record.args)
        return True


FILTER = SecretFilter()


def install(logger_names):
    """Attach the secret filter to the named loggers (once each).

    :param logger_names: names of the loggers that log steps or nodes.
    """
    for name in logger_names:
        logger = logging.getLogger(name)
        if FILTER not in logger.filters:
            logger.addFilter(FILTER)
