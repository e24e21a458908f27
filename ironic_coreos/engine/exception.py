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

"""Errors raised by the engine.

Messages never contain the content of an Ignition config, a config drive or
a credential: they name fields, paths and the expected form only.
"""


class CoreOSError(Exception):
    """Base class of every engine error."""


class InvalidIgnition(CoreOSError):
    """An Ignition config has errors.

    :ivar problems: the list of
        :class:`ironic_coreos.engine.ignition.Problem` found, errors first.
    """

    def __init__(self, message, problems=()):
        super().__init__(message)
        self.problems = list(problems)


class ConfigDriveError(CoreOSError):
    """A config drive cannot be read."""


class MergeConflict(CoreOSError):
    """An addition conflicts with what the user's Ignition config says."""


class NetworkDataError(CoreOSError):
    """network_data cannot be expressed as NetworkManager keyfiles."""


class InvalidArgument(CoreOSError):
    """An install argument has a wrong type or value.

    :ivar name: the argument's name.
    :ivar value: the value as given (never printed for secret arguments).
    :ivar accepted: what is accepted, in words.
    """

    def __init__(self, name, value, accepted, secret=False):
        self.name = name
        self.value = value
        self.accepted = accepted
        shown = '<hidden>' if secret else _short_repr(value)
        super().__init__('Invalid value %s for argument "%s": expected %s'
                         % (shown, name, accepted))


def _short_repr(value, limit=80):
    try:
        text = repr(value)
    except ValueError:
        # Python does not print integers of more than 4,300 digits.
        text = 'an integer of more than 4300 digits'
    if len(text) > limit:
        text = text[:limit - 3] + '...'
    return text


class LiveMediaError(CoreOSError):
    """A CoreOS live ISO or initrd cannot be read or customised as asked.

    Raised by :mod:`ironic_coreos.engine.live_media` and
    :mod:`ironic_coreos.engine.initrd` before anything is written: the
    message names the file or area, what was found and what to do.
    """
