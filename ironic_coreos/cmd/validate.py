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

"""ironic-coreos-validate: check Ignition configs before deploying them.

Runs the same validator as the ``coreos`` deploy interface and prints every
problem with its JSON path, line, what is wrong and what to write instead.
Exit status 0 when every config is valid (warnings allowed unless
``--fail-on-warnings``), 1 when any config has errors.
"""

import argparse
import json
import sys

from ironic_coreos.engine import ignition
from ironic_coreos.engine import spec


def _parser():
    parser = argparse.ArgumentParser(
        prog='ironic-coreos-validate',
        description='Validate Ignition configs (spec 3.0.0 to %s) the way '
                    'ironic-coreos does before it installs CoreOS.'
                    % spec.NEWEST_VERSION)
    parser.add_argument('files', nargs='+', metavar='FILE',
                        help='Ignition config to check; "-" reads standard '
                             'input.')
    parser.add_argument('--max-version', default=spec.NEWEST_VERSION,
                        choices=spec.STABLE_VERSIONS,
                        help='Newest spec version the CoreOS release to '
                             'install accepts (like [coreos]'
                             'max_ignition_version). Default: %(default)s.')
    parser.add_argument('--install-device', metavar='DEVICE',
                        help='Disk CoreOS will be installed on; configs '
                             'wiping it are errors.')
    parser.add_argument('--fail-on-warnings', action='store_true',
                        help='Count warnings as errors.')
    parser.add_argument('--json', action='store_true',
                        help='Print one JSON document describing every '
                             'file instead of text.')
    return parser


def _read(name):
    if name == '-':
        return sys.stdin.buffer.read()
    with open(name, 'rb') as stream:
        return stream.read()


def _result(name, options):
    """Validate one file; returns a JSON-ready dict."""
    try:
        data = _read(name)
    except OSError as exc:
        problem = ignition.Problem(
            '$', 'cannot read the file: %s' % (exc.strerror or exc),
            'check the file name and its permissions')
        report = ignition.Report(None, [problem], [], False, None)
    else:
        report = ignition.validate(data, max_version=options.max_version,
                                   install_device=options.install_device)
    failed = bool(report.errors) or (options.fail_on_warnings
                                     and bool(report.warnings))
    return {'file': name,
            'valid': not failed,
            'version': report.version,
            'needs_network': report.needs_network,
            'errors': [p.as_dict() for p in report.errors],
            'warnings': [p.as_dict() for p in report.warnings]}


def _print_text(result, out):
    errors = result['errors']
    warnings = result['warnings']
    version = (' (spec %s)' % result['version']
               if isinstance(result['version'], str) else '')
    if result['valid'] and not warnings:
        verdict = 'valid'
    elif result['valid']:
        verdict = 'valid with %d warning(s)' % len(warnings)
    else:
        verdict = 'INVALID: %d error(s), %d warning(s)' % (
            len(errors), len(warnings))
    out.write('%s%s: %s\n' % (result['file'], version, verdict))
    for item in errors + warnings:
        problem = ignition.Problem(**item)
        where = problem.path
        if problem.line is not None:
            where = '%s:%d:%d %s' % (result['file'], problem.line,
                                     problem.column or 1, problem.path)
        out.write('  %s: %s: %s\n' % (problem.severity, where,
                                      problem.message))
        if problem.fix:
            out.write('    fix: %s\n' % problem.fix)
    if result['needs_network']:
        out.write('  note: the node needs network access at first boot to '
                  'fetch remote resources\n')


def main(args=None):
    """Validate the Ignition configs named on the command line.

    :param args: the arguments (default: sys.argv[1:]).
    :returns: 0 when every config is valid, 1 otherwise.
    """
    options = _parser().parse_args(args)
    results = [_result(name, options) for name in options.files]
    if options.json:
        json.dump(results, sys.stdout, indent=2)
        sys.stdout.write('\n')
    else:
        for result in results:
            _print_text(result, sys.stdout)
    return 0 if all(r['valid'] for r in results) else 1


if __name__ == '__main__':
    sys.exit(main())
