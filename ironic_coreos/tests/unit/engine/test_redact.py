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


import hashlib
import json
import logging

import fixtures
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

    def test_record_of_an_object_with_secrets_in_its_str(self):
        class Node:
            def __str__(self):
                return 'Node(instance_info=%r)' % {
                    'image_pull_secret': MARKER, 'image_source': 'x'}
        record = logging.LogRecord('x', logging.INFO, __file__, 1,
                                   'node %s', (Node(),), None)
        redact.redact_record(record)
        self.assertEqual(
            "node Node(instance_info={'image_pull_secret': '<hidden>', "
            "'image_source': 'x'})", record.getMessage())

    def test_record_with_a_broken_format_keeps_redacted_args(self):
        record = logging.LogRecord('x', logging.INFO, __file__, 1,
                                   'two %s %s', ({'ignition': MARKER},),
                                   None)
        redact.redact_record(record)
        self.assertEqual({'ignition': '<hidden>'}, record.args)

    def test_install_redacts_every_logger_once(self):
        self.addCleanup(logging.setLogRecordFactory,
                        logging.getLogRecordFactory())
        seen = []

        def previous(*args, **kwargs):
            record = logging.LogRecord(*args, **kwargs)
            seen.append(record.name)
            return record
        logging.setLogRecordFactory(previous)
        self.assertFalse(redact.installed())
        redact.install()
        redact.install()
        self.assertTrue(redact.installed())
        logger = self.useFixture(fixtures.FakeLogger(level=logging.DEBUG))
        step = {'args': {'ignition': {'x': MARKER}, 'platform': 'metal'}}
        for name in ('ironic.conductor.deployments',
                     'ironic.conductor.steps', 'anything.else'):
            logging.getLogger(name).info('steps: %(steps)s',
                                         {'steps': [step]})
        # The previous factory is still called, once per record.
        self.assertEqual(['ironic.conductor.deployments',
                          'ironic.conductor.steps', 'anything.else'], seen)
        self.assertEqual(3, logger.output.count("'platform': 'metal'"))
        self.assertNotIn(MARKER, logger.output)

    def test_one_digest_for_one_config(self):
        one = {'ignition': {'version': '3.4.0'}, 'storage': {'files': []}}
        two = {'storage': {'files': []}, 'ignition': {'version': '3.4.0'}}
        self.assertEqual(redact.config_bytes(one), redact.config_bytes(two))
        self.assertEqual(
            b'{"ignition":{"version":"3.4.0"},"storage":{"files":[]}}',
            redact.config_bytes(two))
        self.assertEqual(hashlib.sha256(redact.config_bytes(one)).hexdigest(),
                         redact.digest(redact.config_bytes(two)))
