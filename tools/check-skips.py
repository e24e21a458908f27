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

"""Fail when the last stestr run skipped tests.

Tests skip themselves when the machine lacks root or a tool (nmcli,
ignition, losetup, ...). In CI, where ``tools/install-deps.sh`` installed
everything and the job runs as root, a skip means a test that must run did
not: with ``IRONIC_COREOS_REQUIRE_ALL=1`` (set by ``.ci/run``) this script
lists the skipped tests with their reasons and exits 1. Without it, it only
prints how many were skipped.

Usage (after ``stestr run``, from the top directory):
``python tools/check-skips.py``
"""

import io
import os
import subprocess
import sys

import subunit
import testtools

ENV = 'IRONIC_COREOS_REQUIRE_ALL'


def skipped_tests(stream):
    """The skipped tests of a subunit v2 stream.

    :param stream: the bytes of the stream.
    :returns: a tuple (number of tests, list of (test id, reason)).
    """
    tests = []
    skipped = []

    def on_test(test):
        if test['id'] is None or test['status'] in (None, 'exists'):
            return
        tests.append(test['id'])
        if test['status'] == 'skip':
            reason = test['details'].get('reason')
            text = reason.as_text().strip() if reason is not None else ''
            skipped.append((test['id'], text))

    case = subunit.ByteStreamToStreamResult(io.BytesIO(stream),
                                            non_subunit_name='stdout')
    result = testtools.StreamToDict(on_test)
    result.startTestRun()
    try:
        case.run(result)
    finally:
        result.stopTestRun()
    return len(tests), skipped


def main(argv=None):
    stestr = os.path.join(os.path.dirname(sys.executable), 'stestr')
    proc = subprocess.run([stestr, 'last', '--subunit'],
                          capture_output=True, check=False)
    if proc.returncode != 0:
        sys.stderr.write('check-skips: stestr last failed: %s\n'
                         % proc.stderr.decode('utf-8', 'replace'))
        return 1
    count, skipped = skipped_tests(proc.stdout)
    required = os.environ.get(ENV) == '1'
    if count == 0:
        sys.stderr.write('check-skips: the last run has no tests\n')
        return 1 if required else 0
    if not skipped:
        print('check-skips: %d tests, none skipped' % count)
        return 0
    print('check-skips: %d of %d tests were skipped:' % (len(skipped), count))
    for test_id, reason in skipped:
        print('  %s: %s' % (test_id, reason or 'no reason given'))
    if required:
        print('check-skips: %s=1: every test must run here; install what '
              'is missing (tools/install-deps.sh) and run as root' % ENV)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
