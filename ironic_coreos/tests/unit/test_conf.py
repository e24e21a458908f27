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


import os

import fixtures
from oslo_config import cfg
from oslo_config import generator
import testtools

from ironic_coreos import conf

SAMPLE = os.path.join(os.path.dirname(__file__), '..', '..', '..', 'etc',
                      'ironic-coreos.conf.sample')


class TestOptions(testtools.TestCase):

    def test_every_option_in_coreos_group(self):
        (group, opts), = conf.list_opts()
        self.assertEqual('coreos', group)
        names = [o.name for o in opts]
        self.assertEqual(len(names), len(set(names)))
        for name in names:
            self.assertIn(name, conf.CONF.coreos)

    def test_sample_is_up_to_date(self):
        out = os.path.join(self.useFixture(fixtures.TempDir()).path,
                           'sample.conf')
        gen_conf = cfg.ConfigOpts()
        generator.register_cli_opts(gen_conf)
        gen_conf(['--namespace', 'ironic-coreos', '--output-file', out])
        generator.generate(gen_conf)
        with open(out) as f:
            expected = f.read()
        with open(SAMPLE) as f:
            self.assertEqual(expected, f.read(),
                             'etc/ironic-coreos.conf.sample is out of date: '
                             'run tox -e genconfig')
