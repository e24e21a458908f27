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


import json
import logging

import testtools

from ironic_coreos.engine import redact

MARKER = 'SECRET-MARKER-7f3a'


class TestUrl(testtools.TestCase):

    def test_strips_credentials_query_and_fragment(self):
        self.assertEqual(
            'https://host:8443/a/b.raw.xz?...',
            redact.url('https://user:%s@host:8443/a/b.raw.xz?token=%s#frag'
                       % (MARKER, MARKER)))

    def test_plain_url_unchanged(self):
        self.assertEqual('http://192.0.2.1/fcos.raw.xz',
                         redact.url('http://192.0.2.1/fcos.raw.xz'))


class TestRedact(testtools.TestCase):

    def test_nested_values_hidden_in_a_copy(self):
        node = {'instance_info': {'configdrive': {'user_data': MARKER},
                                  'image_source': 'http://x/y'},
                'steps': [{'args': {'ignition': {'k': MARKER},
                                    'image_pull_secret': MARKER,
                                    'console': ['ttyS0']}}]}
        copy = redact.redact(node)
        self.assertNotIn(MARKER, repr(copy))
        self.assertEqual('http://x/y', copy['instance_info']['image_source'])
        self.assertEqual(['ttyS0'], copy['steps'][0]['args']['console'])
        self.assertEqual({'k': MARKER},
                         node['steps'][0]['args']['ignition'])

    def test_none_stays_none(self):
        self.assertEqual({'ignition': None},
                         redact.redact({'ignition': None}))

    def test_redact_text_repr_and_json(self):
        text = repr({'args': {'ignition': {'a': "x}'y",
                                           'b': [1, {'c': '"'}]},
                              'console': ['ttyS0']}})
        self.assertEqual(
            "{'args': {'ignition': '<hidden>', 'console': ['ttyS0']}}",
            redact.redact_text(text))
        self.assertEqual(
            '{"ignition": \'<hidden>\', "k": 1}',
            redact.redact_text(json.dumps({'ignition': {'x': MARKER},
                                           'k': 1})))

    def test_filter_hides_args_of_a_record(self):
        record = logging.LogRecord(
            'x', logging.INFO, __file__, 1, 'step %s',
            ({'args': {'image_pull_secret': MARKER, 'platform': 'metal'}},),
            None)
        self.assertTrue(redact.SecretFilter().filter(record))
        self.assertNotIn(MARKER, record.getMessage())
        self.assertIn("'platform': 'metal'", record.getMessage())

    def test_install_once(self):
        name = 'ironic_coreos.tests.redact-install'
        redact.install([name])
        redact.install([name])
        self.assertEqual(
            1, logging.getLogger(name).filters.count(redact.FILTER))
