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

"""The state of a running ``coreos-installer install``, from its output.

The installer prints where the image comes from, then ``Read disk X/Y
(N%)`` about once a second while it writes the image, then a line per
change of the installed system (Ignition config, kernel arguments,
platform, network), and finally ``Install complete.``. The state kept here
holds no URL or path: it can be shown to anyone who may see the node.
"""

import collections
import re
import time

FETCHING = 'fetching'
WRITING = 'writing'
CONFIGURING = 'configuring'
DONE = 'done'
FAILED = 'failed'

#: The phases, in the order an install goes through them.
PHASES = (FETCHING, WRITING, CONFIGURING, DONE, FAILED)

#: Key of the progress: in the agent's running command result, and in the
#: node's ``driver_internal_info``.
KEY = 'coreos_install'

#: The fields of a published progress, with their types.
FIELDS = {'phase': str, 'percent': int, 'bytes_read': int,
          'bytes_total': int, 'bytes_per_second': int, 'attempt': int}

_UNITS = {'B': 1, 'KiB': 1 << 10, 'MiB': 1 << 20, 'GiB': 1 << 30,
          'TiB': 1 << 40}
_SIZE = r'(\d+(?:\.\d+)?) (B|KiB|MiB|GiB|TiB)'
_READ = re.compile(r'^(?:> )?Read disk %s(?:/%s \((\d{1,3})%%\))?\s*$'
                   % (_SIZE, _SIZE))
_CONFIGURING = ('Writing Ignition config', 'Modifying kernel arguments',
                'Setting platform to', 'Copying networking configuration',
                'Writing first-boot kernel arguments',
                'Writing installer config')
_COMPLETE = 'Install complete.'

#: Seconds of progress reports the rate is averaged over.
RATE_WINDOW = 10.0


def _size(number, unit):
    return int(float(number) * _UNITS[unit])


class InstallProgress(object):
    """Progress of one installer run, fed with its output lines.

    :param clock: a monotonic clock (seconds), for the rate.
    """

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self.phase = FETCHING
        self.bytes_read = 0
        self.bytes_total = None
        self.percent = None
        self._samples = collections.deque()

    def feed(self, line):
        """Take one line of the installer's output.

        :param line: the line as text, without its end of line.
        :returns: True if the state changed.
        """
        line = line.strip()
        match = _READ.match(line)
        if match:
            return self._read(match)
        if line == _COMPLETE:
            return self._set(phase=DONE, percent=100 if self.bytes_total
                             else self.percent)
        if line.startswith(_CONFIGURING) and self.phase != DONE:
            return self._set(phase=CONFIGURING)
        return False

    def finish(self, code):
        """Record the installer's exit status.

        :param code: the exit status; non-zero marks the run failed.
        :returns: True if the state changed.
        """
        if code == 0:
            return self._set(phase=DONE)
        return self._set(phase=FAILED)

    def _read(self, match):
        done = _size(match.group(1), match.group(2))
        total = (_size(match.group(3), match.group(4))
                 if match.group(3) else None)
        percent = int(match.group(5)) if match.group(5) else None
        now = self._clock()
        self._samples.append((now, done))
        while len(self._samples) > 2 and now - self._samples[0][0] > \
                RATE_WINDOW:
            self._samples.popleft()
        return self._set(phase=WRITING, bytes_read=done, bytes_total=total,
                         percent=None if percent is None
                         else min(percent, 100))

    def _set(self, **values):
        changed = False
        for name, value in values.items():
            if getattr(self, name) != value:
                setattr(self, name, value)
                changed = True
        return changed

    @property
    def bytes_per_second(self):
        """Mean rate over the last reports, or None before two reports."""
        if len(self._samples) < 2:
            return None
        (t0, b0), (t1, b1) = self._samples[0], self._samples[-1]
        if t1 <= t0:
            return None
        return max(0, int((b1 - b0) / (t1 - t0)))

    def as_dict(self):
        """The state as published: phase, percent, bytes and rate."""
        return {'phase': self.phase,
                'percent': self.percent,
                'bytes_read': self.bytes_read,
                'bytes_total': self.bytes_total,
                'bytes_per_second': self.bytes_per_second}


def sanitize(state):
    """Keep the known fields of a progress received from elsewhere.

    :param state: what the agent published (any JSON value).
    :returns: a dict with only the fields of :data:`FIELDS` whose values
        have the right type (a phase must be one of :data:`PHASES`), or
        None when ``state`` is not a progress at all.
    """
    if not isinstance(state, dict) or state.get('phase') not in PHASES:
        return None
    clean = {}
    for name, kind in FIELDS.items():
        value = state.get(name)
        if isinstance(value, kind) and not isinstance(value, bool):
            clean[name] = value
        elif name != 'attempt':
            clean[name] = None
    return clean


def describe(state):
    """One line for people: ``writing, 48% (1.2 GiB of 2.5 GiB)``.

    :param state: a dict as :meth:`InstallProgress.as_dict` returns.
    :returns: a string.
    """
    text = str(state.get('phase') or 'unknown')
    if state.get('percent') is not None:
        text += ', %d%%' % state['percent']
    read = state.get('bytes_read')
    if read:
        total = state.get('bytes_total')
        text += ' (%s%s read)' % (human_size(read),
                                  ' of %s' % human_size(total) if total
                                  else '')
    return text


def human_size(size):
    """Bytes in binary units with one decimal, as the installer prints."""
    units = ('B', 'KiB', 'MiB', 'GiB', 'TiB')
    index = 0
    while size >= 1024 and index < len(units) - 1:
        size /= 1024.0
        index += 1
    if index == 0:
        return '%d B' % size
    return '%.1f %s' % (size, units[index])
