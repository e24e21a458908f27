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

import unittest

from ironic_coreos.engine import progress

GIB = 1 << 30
MIB = 1 << 20

# What coreos-installer prints for an install from a URL, stderr not a
# terminal.
OUTPUT = [
    'Downloading image from https://example.com/fcos.raw.xz',
    'Downloading signature from https://example.com/fcos.raw.xz.sig',
    'Read disk 128.0 MiB/2.5 GiB (5%)',
    'Read disk 1.2 GiB/2.5 GiB (48%)',
    'Read disk 2.5 GiB/2.5 GiB (100%)',
    'gpg: Signature made Mon 20 Jan 2025 using RSA key',
    'gpg: Good signature from "Fedora <fedora-41-primary@fedoraproject.org>"',
    'Writing Ignition config',
    'Modifying kernel arguments',
    'Install complete.',
]


class FakeClock(object):

    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


class InstallProgressTestCase(unittest.TestCase):

    def setUp(self):
        self.clock = FakeClock()
        self.state = progress.InstallProgress(clock=self.clock)

    def feed(self, lines, step=1.0):
        phases = []
        for line in lines:
            self.clock.now += step
            self.state.feed(line)
            phases.append(self.state.phase)
        return phases

    def test_phases_of_an_install(self):
        phases = self.feed(OUTPUT)
        self.assertEqual(
            ['fetching', 'fetching', 'writing', 'writing', 'writing',
             'writing', 'writing', 'configuring', 'configuring', 'done'],
            phases)
        self.assertEqual(100, self.state.percent)
        self.assertEqual(int(2.5 * GIB), self.state.bytes_total)
        self.assertEqual(int(2.5 * GIB), self.state.bytes_read)

    def test_read_line_values(self):
        self.assertTrue(self.state.feed('Read disk 1.2 GiB/2.5 GiB (48%)'))
        self.assertEqual({'phase': 'writing', 'percent': 48,
                          'bytes_read': int(1.2 * GIB),
                          'bytes_total': int(2.5 * GIB),
                          'bytes_per_second': None},
                         self.state.as_dict())

    def test_terminal_form(self):
        self.assertTrue(self.state.feed('> Read disk 10.0 MiB/20.0 MiB '
                                        '(50%)   '))
        self.assertEqual(50, self.state.percent)

    def test_without_length(self):
        self.state.feed('Read disk 700 B')
        self.assertEqual('writing', self.state.phase)
        self.assertEqual(700, self.state.bytes_read)
        self.assertIsNone(self.state.bytes_total)
        self.assertIsNone(self.state.percent)

    def test_rate(self):
        self.feed(['Read disk 10.0 MiB/100.0 MiB (10%)',
                   'Read disk 30.0 MiB/100.0 MiB (30%)',
                   'Read disk 50.0 MiB/100.0 MiB (50%)'], step=2.0)
        self.assertEqual(10 * MIB, self.state.bytes_per_second)

    def test_rate_window(self):
        # A slow start does not weigh on the rate after RATE_WINDOW.
        self.feed(['Read disk 1.0 MiB/1.0 GiB (0%)'])
        self.clock.now += 100
        self.feed(['Read disk 2.0 MiB/1.0 GiB (0%)'] + [
            'Read disk %d.0 MiB/1.0 GiB (1%%)' % (2 + 50 * i)
            for i in range(1, 6)])
        self.assertEqual(50 * MIB, self.state.bytes_per_second)

    def test_unchanged_line(self):
        self.assertTrue(self.state.feed('Read disk 1.0 MiB/2.0 MiB (50%)'))
        self.assertFalse(self.state.feed('Read disk 1.0 MiB/2.0 MiB (50%)'))
        self.assertFalse(self.state.feed('some other output'))

    def test_percent_capped(self):
        self.state.feed('Read disk 3.0 MiB/2.0 MiB (150%)')
        self.assertEqual(100, self.state.percent)

    def test_not_a_progress_line(self):
        for line in ('Read disk', 'Read disk lots', 'Read disk 1 XB',
                     'Read disk 1.0 MiB/2.0 MiB (12345%)',
                     'xRead disk 1.0 MiB'):
            self.assertFalse(self.state.feed(line), line)
        self.assertEqual('fetching', self.state.phase)

    def test_finish(self):
        self.feed(OUTPUT[:4])
        self.assertTrue(self.state.finish(1))
        self.assertEqual('failed', self.state.phase)
        other = progress.InstallProgress()
        self.assertTrue(other.finish(0))
        self.assertEqual('done', other.phase)

    def test_no_url_in_state(self):
        self.feed(OUTPUT)
        self.assertNotIn('example.com', repr(self.state.as_dict()))


class SanitizeTestCase(unittest.TestCase):

    def test_known_fields_kept(self):
        state = {'phase': 'writing', 'percent': 48, 'bytes_read': 10,
                 'bytes_total': 20, 'bytes_per_second': 5, 'attempt': 2}
        self.assertEqual(state, progress.sanitize(dict(state)))

    def test_other_fields_dropped_bad_types_nulled(self):
        self.assertEqual(
            {'phase': 'writing', 'percent': None, 'bytes_read': None,
             'bytes_total': None, 'bytes_per_second': None},
            progress.sanitize({'phase': 'writing', 'percent': '48',
                               'bytes_read': True, 'attempt': 'x',
                               'url': 'https://user:pw@example.com'}))

    def test_not_a_progress(self):
        for value in (None, [], 'writing', {}, {'phase': 'hacking'},
                      {'phase': ['writing']}):
            self.assertIsNone(progress.sanitize(value), value)


class DescribeTestCase(unittest.TestCase):

    def test_describe(self):
        self.assertEqual(
            'writing, 48% (1.2 GiB of 2.5 GiB read)',
            progress.describe({'phase': 'writing', 'percent': 48,
                               'bytes_read': int(1.2 * GIB),
                               'bytes_total': int(2.5 * GIB)}))
        self.assertEqual('fetching', progress.describe(
            {'phase': 'fetching', 'percent': None, 'bytes_read': 0}))
        self.assertEqual('writing (700 B read)', progress.describe(
            {'phase': 'writing', 'bytes_read': 700}))

    def test_human_size(self):
        self.assertEqual('0 B', progress.human_size(0))
        self.assertEqual('1023 B', progress.human_size(1023))
        self.assertEqual('1.0 KiB', progress.human_size(1024))
        self.assertEqual('2.5 GiB', progress.human_size(int(2.5 * GIB)))
        self.assertEqual('2048.0 TiB', progress.human_size(2 << 50))
