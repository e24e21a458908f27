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

"""A time-bounded run of the hostile-input property tests.

``python tools/fuzz.py [--minutes 60] [MODULE ...]`` runs the property
tests of the given test modules (default: every ``test_hostile`` module)
with the ``fuzz`` hypothesis profile, each test for an equal share of the
time (a test that runs all its examples early leaves the rest of its share
to the others), round after round with fresh random seeds, until the time
is up. A test that saw a failing example where its time-up stopped it is
then run again on hypothesis' saved failing examples alone, and judged.
It prints, per property, the number of examples hypothesis ran and how
many failed, and exits non-zero if any test failed (the failing example
is in the test output and in hypothesis' example database,
``.hypothesis/``, which replays it on the next run).

Run it from the top of the source tree with the unit-test environment's
Python, e.g. ``nice -n 19 .tox/py3/bin/python tools/fuzz.py``.
"""

import argparse
import collections
import os
import signal
import subprocess
import sys
import time
import unittest

DEFAULT_MODULES = [
    'ironic_coreos.tests.unit.engine.test_hostile',
    'ironic_coreos.tests.unit.drivers.modules.test_hostile',
    'ironic_coreos.tests.unit.agent.test_hostile',
]


class TimeUp(BaseException):
    """The time given to the run is up (stops the running test)."""


#: Whether the time-up timer fired during the running test.
_FIRED = [False]


def _time_up(signum, frame):
    # Again in a second, should this one be swallowed (e.g. by a gc
    # callback); the caller stops the timer.
    _FIRED[0] = True
    signal.setitimer(signal.ITIMER_REAL, 1)
    raise TimeUp()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--minutes', type=float, default=60.0)
    parser.add_argument('modules', nargs='*', default=DEFAULT_MODULES)
    args = parser.parse_args()

    os.environ['IRONIC_COREOS_HYPOTHESIS_PROFILE'] = 'fuzz'
    # Count test cases through hypothesis' observability callbacks, without
    # its line coverage (which slows pure-Python code down many times).
    os.environ['HYPOTHESIS_EXPERIMENTAL_OBSERVABILITY_NOCOVER'] = '1'
    sys.path.insert(0, os.getcwd())
    from hypothesis.internal import observability

    counts = collections.defaultdict(collections.Counter)
    current = ['']

    def observe(observation):
        if observation.type == 'test_case':
            counts[current[0]][observation.status] += 1

    observability.add_observability_callback(observe)

    loader = unittest.TestLoader()
    suites = []
    for name in args.modules:
        try:
            suites.append(loader.loadTestsFromName(name))
        except (ImportError, AttributeError) as exc:
            print('skipping %s: %s' % (name, exc))
    suite = unittest.TestSuite(suites)

    tests = list(_tests(suite))
    end = time.monotonic() + args.minutes * 60
    signal.signal(signal.SIGALRM, _time_up)
    failures = 0
    failed_tests = set()
    rounds = 0
    start = time.monotonic()
    while tests and time.monotonic() < end - 1:
        rounds += 1
        if rounds > 1:
            # Fresh test instances: a testtools case runs only once.
            tests = list(_tests(unittest.TestSuite(
                loader.loadTestsFromName(test.id()) for test in tests)))
        for index, test in enumerate(tests):
            # Every test gets an equal share of the time that is left
            # (a test done with its examples early leaves its rest to the
            # others).
            left = end - time.monotonic()
            if left <= 1:
                break
            signal.setitimer(signal.ITIMER_REAL, left / (len(tests) - index))
            current[0] = test.id()
            _FIRED[0] = False
            result = unittest.TestResult()
            try:
                test.run(result)
            except TimeUp:
                pass
            finally:
                try:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                except TimeUp:
                    # The timer fired while being stopped.
                    signal.setitimer(signal.ITIMER_REAL, 0)
            for case, trace in result.errors + result.failures:
                # A test stopped by the time-up is not judged: the signal
                # may surface as another exception (GeneratorExit when it
                # lands in a generator's clean-up). A failing example it
                # found is in hypothesis' database, replayed below.
                if 'TimeUp' in trace or _FIRED[0]:
                    continue
                failures += 1
                failed_tests.add(case.id())
                print('FAILED %s\n%s' % (case.id(), trace), flush=True)
            print('%s %s' % (test.id(), dict(counts[test.id()])),
                  flush=True)
        print('round %d done after %.0f s' % (rounds, time.monotonic()
                                              - start), flush=True)

    # NOTE: a test stopped by the time-up is not judged, but a failure it
    # found before (maybe while shrinking it) is in hypothesis' database:
    # a test that saw a failing example runs again on the saved examples
    # alone, without a time limit, and that run is judged.
    for prop in sorted(counts):
        if not counts[prop]['failed'] or prop in failed_tests:
            continue
        env = dict(os.environ, IRONIC_COREOS_HYPOTHESIS_PROFILE='replay')
        replay = subprocess.run(
            [sys.executable, '-m', 'unittest', prop], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            errors='replace')
        if replay.returncode:
            failures += 1
            print('FAILED %s (replayed from the example database)\n%s'
                  % (prop, replay.stdout[-20000:]), flush=True)
        else:
            print('%s: its failing examples do not fail when replayed '
                  '(they were the time-up)' % prop, flush=True)

    total = collections.Counter()
    for prop in sorted(counts):
        print('%s %s' % (prop, dict(counts[prop])))
        total.update(counts[prop])
    print('%d rounds in %.0f s; examples: %s; failed tests: %d'
          % (rounds, time.monotonic() - start, dict(total), failures))
    return 1 if failures else 0


def _tests(suite):
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            yield from _tests(item)
        else:
            yield item


if __name__ == '__main__':
    sys.exit(main())
