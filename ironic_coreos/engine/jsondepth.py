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

"""How deep JSON nests, found without recursion.

Python's json module parses and serialises nested arrays and objects
recursively in C. Ironic runs its conductor threads with 128 KiB stacks
(``IRONIC_THREAD_STACK_SIZE``): a few hundred levels of nesting, well
below Python's recursion limit, overflow such a stack and kill the
process. Every JSON text or object from a user is measured here before
the json module sees it.
"""

import itertools
import re

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"?', re.S)
_NOT_BRACKET = re.compile(r'[^\[\]{}]+')
_DELTA = {'[': 1, '{': 1, ']': -1, '}': -1}


def text_deeper_than(text, limit):
    """Whether JSON text nests arrays and objects more than ``limit`` deep.

    Brackets inside strings do not count. Malformed text is measured as
    far as it goes (the parser reports its syntax error afterwards).

    :param text: str or bytes (bytes are read as UTF-8, undecodable bytes
        cannot be brackets).
    :param limit: the deepest nesting allowed.
    :returns: boolean.
    """
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode('utf-8', 'replace')
    if text.count('[') + text.count('{') <= limit:
        return False
    brackets = _NOT_BRACKET.sub('', _STRING.sub('', text))
    return any(depth > limit for depth in itertools.accumulate(
        map(_DELTA.__getitem__, brackets)))


def value_deeper_than(value, limit):
    """Whether a dict/list nests dicts and lists more than ``limit`` deep.

    :param value: any object (only dicts and lists count as levels).
    :param limit: the deepest nesting allowed.
    :returns: boolean.
    """
    level = [value] if isinstance(value, (dict, list)) else []
    for _depth in range(limit):
        level = [item for container in level
                 for item in (container.values()
                              if isinstance(container, dict) else container)
                 if isinstance(item, (dict, list))]
        if not level:
            return False
    return bool(level)
