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

"""ironic-coreos-live-media: per-node CoreOS live ISOs and PXE initrds.

Puts the live system's Ignition config, NetworkManager keyfiles and kernel
arguments into a CoreOS live ISO's embed areas, and builds the initrd that
``coreos-installer pxe ignition wrap`` builds, in coreos-installer's formats
and without it. The source ISO is changed only with ``--in-place``; new
files are created mode 0600 (they hold the config). Embedded configs and
keyfiles are printed only with ``--show-ignition`` / ``--show-keyfiles``.

Exit status 0 on success, 1 when the media or the input is refused (nothing
is written then), 2 for wrong usage.
"""

import argparse
import hashlib
import json
import os
import stat
import sys

from ironic_coreos.engine import exception
from ironic_coreos.engine import ignition
from ironic_coreos.engine import live_media
from ironic_coreos.engine import spec

PROG = 'ironic-coreos-live-media'


def _add_output(parser, what):
    group = parser.add_mutually_exclusive_group()
    group.add_argument('-o', '--output', metavar='FILE',
                       help='Write the customised %s to FILE (must not '
                            'exist; created mode 0600); "-" streams it to '
                            'standard output.' % what)
    group.add_argument('--in-place', action='store_true',
                       help='Write the areas into the ISO itself.')


def _add_kargs_edits(parser, prefix=''):
    parser.add_argument('--%sappend' % prefix, dest='karg_append',
                        action='append', default=[], metavar='ARG',
                        help='Kernel argument to append (repeatable).')
    parser.add_argument('--%sdelete' % prefix, dest='karg_delete',
                        action='append', default=[], metavar='ARG',
                        help='Kernel argument to delete, every occurrence '
                             '(repeatable).')
    parser.add_argument('--%sreplace' % prefix, dest='karg_replace',
                        action='append', default=[], metavar='KEY=OLD=NEW',
                        help='Replace KEY=OLD by KEY=NEW (repeatable).')
    parser.add_argument('--%sreset' % prefix, dest='karg_reset',
                        action='store_true',
                        help='Start from the ISO\'s default kernel '
                             'arguments instead of the current ones.')


def _add_config_inputs(parser):
    parser.add_argument('-i', '--ignition', metavar='FILE',
                        help='Ignition config for the live system; "-" '
                             'reads standard input.')
    parser.add_argument('-k', '--keyfile', action='append', default=[],
                        metavar='FILE',
                        help='NetworkManager keyfile (NAME.nmconnection) '
                             'for the live system\'s own network '
                             '(repeatable).')
    parser.add_argument('--no-validate', action='store_true',
                        help='Embed the Ignition config without validating '
                             'it first.')
    parser.add_argument('--max-version', default=spec.NEWEST_VERSION,
                        choices=spec.STABLE_VERSIONS,
                        help='Newest Ignition spec version the live system '
                             'accepts. Default: %(default)s.')


def _parser():
    parser = argparse.ArgumentParser(
        prog=PROG,
        description='Customise CoreOS live ISOs and PXE initrds per node, '
                    'in the formats of coreos-installer.')
    top = parser.add_subparsers(dest='group', metavar='{iso,pxe}')
    top.required = True
    iso = top.add_parser('iso', help='CoreOS live ISO embed areas.')
    iso_cmds = iso.add_subparsers(dest='command',
                                  metavar='{show,embed,kargs,reset}')
    iso_cmds.required = True

    show = iso_cmds.add_parser(
        'show', help='Show the embed areas and what they hold.')
    show.add_argument('iso', metavar='ISO')
    show.add_argument('--json', action='store_true',
                      help='Print one JSON document.')
    show.add_argument('--show-ignition', action='store_true',
                      help='Print only the embedded Ignition config '
                           '(it may hold secrets).')
    show.add_argument('--show-keyfiles', action='store_true',
                      help='Print the embedded keyfiles (they may hold '
                           'secrets).')

    embed = iso_cmds.add_parser(
        'embed', help='Embed an Ignition config, keyfiles and kernel '
                      'arguments.')
    embed.add_argument('iso', metavar='ISO')
    _add_config_inputs(embed)
    embed.add_argument('--replace', action='store_true',
                       help='Replace an embedded Ignition config or '
                            'keyfiles (refused otherwise).')
    _add_kargs_edits(embed, prefix='karg-')
    _add_output(embed, 'ISO')

    kargs = iso_cmds.add_parser(
        'kargs', help='Show or change the live system\'s kernel arguments.')
    kargs.add_argument('iso', metavar='ISO')
    kargs.add_argument('--default', action='store_true',
                       help='Show the default kernel arguments.')
    _add_kargs_edits(kargs)
    _add_output(kargs, 'ISO')

    reset = iso_cmds.add_parser(
        'reset', help='Remove the embedded config and keyfiles and reset '
                      'the kernel arguments.')
    reset.add_argument('iso', metavar='ISO')
    _add_output(reset, 'ISO')

    pxe = top.add_parser('pxe', help='PXE initrds.')
    pxe_cmds = pxe.add_subparsers(dest='command', metavar='{wrap}')
    pxe_cmds.required = True
    wrap = pxe_cmds.add_parser(
        'wrap', help='Build the initrd "coreos-installer pxe ignition '
                     'wrap" builds, to append to the live initramfs.')
    _add_config_inputs(wrap)
    wrap.add_argument('-o', '--output', metavar='FILE', required=True,
                      help='Initrd to write (must not exist; created mode '
                           '0600); "-" writes to standard output.')
    return parser


class _Refused(Exception):
    """The input is refused; the message says why."""


def _read(name, what):
    if name == '-':
        return sys.stdin.buffer.read()
    try:
        with open(name, 'rb') as stream:
            return stream.read()
    except OSError as exc:
        raise _Refused('%s %s: cannot read it: %s'
                       % (what, name, exc.strerror or exc))


def _ignition(options):
    if options.ignition is None:
        return None
    data = _read(options.ignition, 'Ignition config')
    if options.no_validate:
        return data
    report = ignition.validate(data, max_version=options.max_version)
    for problem in report.warnings:
        sys.stderr.write('warning: %s: %s\n' % (options.ignition, problem))
    if report.errors:
        for problem in report.errors:
            sys.stderr.write('error: %s: %s\n' % (options.ignition, problem))
        raise _Refused('Ignition config %s is invalid (%d error(s)); fix it '
                       '(ironic-coreos-validate explains each), or give '
                       '--no-validate' % (options.ignition,
                                          len(report.errors)))
    return data


def _keyfiles(options):
    keyfiles = {}
    for path in options.keyfile:
        name = os.path.basename(path)
        if name in keyfiles:
            raise _Refused('Two keyfiles are named %s; each keyfile needs '
                           'its own name' % name)
        keyfiles[name] = _read(path, 'Keyfile')
    return keyfiles


def _stdout_binary():
    if sys.stdout.isatty():
        raise _Refused('Refusing to write binary data to a terminal; give '
                       '-o FILE or redirect standard output')
    sys.stdout.flush()
    return sys.stdout.buffer


def _write_iso(iso, options):
    if not options.output and not options.in_place:
        raise _Refused('Give -o FILE for a new ISO, or --in-place to change '
                       '%s itself' % iso.path)
    if options.in_place:
        written = iso.write(in_place=True)
        mode = stat.S_IMODE(os.stat(iso.path).st_mode)
        if iso.ignition is not None and mode & 0o077:
            sys.stderr.write('warning: %s is readable by others (mode %04o) '
                             'and holds an Ignition config; chmod 600 it\n'
                             % (iso.path, mode))
        target = iso.path
    elif options.output == '-':
        written = iso.write(output=_stdout_binary())
        target = 'standard output'
    else:
        written = iso.write(output=options.output)
        target = options.output
    sys.stderr.write('Wrote %d bytes of embed areas to %s\n'
                     % (written, target))


def _apply_kargs(iso, options):
    edits = (options.karg_append or options.karg_delete
             or options.karg_replace or options.karg_reset)
    if not edits:
        return False
    if options.karg_reset:
        iso.reset_kargs()
    iso.modify_kargs(append=options.karg_append,
                     replace=options.karg_replace,
                     delete=options.karg_delete)
    return True


def _iso_embed(options):
    config = _ignition(options)
    keyfiles = _keyfiles(options)
    iso = live_media.LiveISO.open(options.iso)
    if config is not None:
        iso.set_ignition(config, replace=options.replace)
    if keyfiles:
        iso.set_keyfiles(keyfiles, replace=options.replace)
    changed = _apply_kargs(iso, options)
    if config is None and not keyfiles and not changed:
        raise _Refused('Nothing to embed: give -i CONFIG, -k KEYFILE or a '
                       '--karg-* option')
    _write_iso(iso, options)


def _iso_kargs(options):
    iso = live_media.LiveISO.open(options.iso)
    if not _apply_kargs(iso, options):
        if options.output or options.in_place:
            raise _Refused('Nothing to change: give --append, --delete, '
                           '--replace or --reset')
        iso.require_kargs()
        value = iso.default_kargs if options.default else iso.kargs
        sys.stdout.write(value + '\n')
        return
    _write_iso(iso, options)


def _iso_reset(options):
    iso = live_media.LiveISO.open(options.iso)
    iso.clear_initrd()
    if iso.kargs_areas is not None:
        iso.reset_kargs()
    _write_iso(iso, options)


def _describe(iso):
    area = iso.initrd
    config = iso.ignition
    data = {
        'iso': iso.path,
        'size': iso.size,
        'initrd_area': {'source': area.source, 'file': area.file,
                        'offset': area.offset, 'length': area.length},
        'ignition': None if config is None else {
            'size': len(config),
            'sha256': hashlib.sha256(config).hexdigest()},
        'keyfiles': {name: len(body)
                     for name, body in sorted(iso.keyfiles.items())},
        'other_files': sorted(
            p for p in iso.members
            if p != 'config.ign' and not p.startswith(
                'etc/coreos-firstboot-network/')),
        'live_initrd_network': iso.supports_network,
        'kargs_areas': None,
        'headers': iso.headers,
    }
    if iso.kargs_areas is not None:
        kargs = iso.kargs_areas
        data['kargs_areas'] = {
            'source': kargs.source, 'length': kargs.length,
            'offsets': [r.offset for r in kargs.regions],
            'default': kargs.default, 'current': kargs.kargs}
    return data


def _print_show(data, out):
    area = data['initrd_area']
    out.write('%s: CoreOS live ISO, %d bytes\n' % (data['iso'], data['size']))
    out.write('  initrd embed area: %d bytes at offset %d (%s%s)\n'
              % (area['length'], area['offset'], area['source'],
                 ', %s' % area['file'].lower() if area['file'] else ''))
    config = data['ignition']
    if config:
        out.write('  Ignition config: %d bytes, sha256 %s\n'
                  % (config['size'], config['sha256']))
    else:
        out.write('  Ignition config: none\n')
    keyfiles = data['keyfiles']
    out.write('  network keyfiles: %s%s\n' % (
        ', '.join('%s (%d bytes)' % item for item in keyfiles.items())
        or 'none',
        '' if data['live_initrd_network']
        else ' (this release does not read embedded keyfiles)'))
    if data['other_files']:
        out.write('  other files: %s\n' % ', '.join(data['other_files']))
    kargs = data['kargs_areas']
    if kargs:
        out.write('  kernel argument areas: %d x %d bytes (%s)\n'
                  % (len(kargs['offsets']), kargs['length'], kargs['source']))
        out.write('  default kargs: %s\n' % kargs['default'])
        out.write('  current kargs: %s%s\n' % (
            kargs['current'],
            ' (the default)' if kargs['current'] == kargs['default'].strip()
            else ''))
    else:
        out.write('  kernel argument areas: none\n')


def _iso_show(options):
    iso = live_media.LiveISO.open(options.iso)
    if options.show_ignition:
        if iso.ignition is None:
            raise _Refused('%s has no embedded Ignition config' % iso.path)
        out = sys.stdout.buffer
        sys.stdout.flush()
        out.write(iso.ignition)
        out.flush()
        return
    if options.show_keyfiles:
        if not iso.keyfiles:
            raise _Refused('%s has no embedded network keyfiles' % iso.path)
        for name, body in sorted(iso.keyfiles.items()):
            sys.stdout.write('########## %s ##########\n' % name)
            sys.stdout.flush()
            sys.stdout.buffer.write(body)
            sys.stdout.buffer.flush()
        return
    data = _describe(iso)
    if options.json:
        json.dump(data, sys.stdout, indent=2)
        sys.stdout.write('\n')
    else:
        _print_show(data, sys.stdout)


def _pxe_wrap(options):
    config = _ignition(options)
    keyfiles = _keyfiles(options)
    image = live_media.wrap(ignition=config, keyfiles=keyfiles)
    if options.output == '-':
        out = _stdout_binary()
        out.write(image)
        out.flush()
        return
    if os.path.lexists(options.output):
        raise _Refused('%s already exists; remove it or choose another '
                       'output file' % options.output)
    try:
        fd = os.open(options.output, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                     0o600)
    except OSError as exc:
        raise _Refused('%s: cannot create it: %s'
                       % (options.output, exc.strerror or exc))
    try:
        with os.fdopen(fd, 'wb') as out:
            out.write(image)
    except OSError as exc:
        os.unlink(options.output)
        raise _Refused('%s: writing failed: %s'
                       % (options.output, exc.strerror or exc))
    sys.stderr.write('Wrote %d bytes to %s; append it to the live initramfs '
                     'or load it as a second initrd, with the kernel '
                     'arguments ignition.firstboot ignition.platform.id=metal'
                     '\n' % (len(image), options.output))


_COMMANDS = {
    ('iso', 'show'): _iso_show,
    ('iso', 'embed'): _iso_embed,
    ('iso', 'kargs'): _iso_kargs,
    ('iso', 'reset'): _iso_reset,
    ('pxe', 'wrap'): _pxe_wrap,
}


def main(args=None):
    """Run one ``iso`` or ``pxe`` command.

    :param args: the arguments (default: sys.argv[1:]).
    :returns: 0 on success, 1 when the input or the media is refused.
    """
    options = _parser().parse_args(args)
    try:
        _COMMANDS[(options.group, options.command)](options)
    except (_Refused, exception.LiveMediaError) as exc:
        sys.stderr.write('%s: error: %s\n' % (PROG, exc))
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
