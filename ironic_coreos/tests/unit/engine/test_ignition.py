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

import base64
import gzip
import json
import os
import shutil
import struct
import subprocess
import tempfile
import unittest
from unittest import mock
import urllib.parse

import hypothesis
from hypothesis import strategies as st

from ironic_coreos.engine import exception
from ironic_coreos.engine import ignition
from ironic_coreos.engine import spec
from ironic_coreos.tests import large_ignition

# The corpus of configs with their expected verdicts (EXPECT.tsv);
# IRONIC_COREOS_IGNITION_CORPUS points the tests at another copy.
CORPUS = os.environ.get('IRONIC_COREOS_IGNITION_CORPUS') or os.path.join(
    os.path.dirname(__file__), 'ignition_corpus')
ORACLE = shutil.which('ignition-validate') or '/usr/bin/ignition-validate'

ED25519 = ('ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMq1eOAbkzDZN6qy0oi+fXTm6VQ'
           'TQ3DdGmF9Q1xGFiWy test@example')
SECRET = 'hunter2-very-secret'


def _key(kind, blob_kind=None):
    blob_kind = (blob_kind or kind).encode()
    blob = struct.pack('>I', len(blob_kind)) + blob_kind + b'\x00' * 40
    return '%s %s user@host' % (kind, base64.b64encode(blob).decode())


def _cfg(version='3.2.0', **sections):
    config = {'ignition': {'version': version}}
    config.update(sections)
    return config


def _file(path='/etc/x', mode=420, source='data:,x', **extra):
    entry = {'path': path}
    if mode is not None:
        entry['mode'] = mode
    if source is not None:
        entry['contents'] = {'source': source}
    entry.update(extra)
    return entry


def _files(*entries, version='3.2.0', **storage):
    storage['files'] = list(entries)
    return _cfg(version, storage=storage)


def _unit(name='a.service', version='3.2.0', **fields):
    fields['name'] = name
    return _cfg(version, systemd={'units': [fields]})


def _data(raw):
    return 'data:;base64,' + base64.b64encode(raw).decode()


UNIT = '[Unit]\nDescription=x\n[Service]\nExecStart=/bin/true\n'
UNIT_INSTALL = UNIT + '[Install]\nWantedBy=multi-user.target\n'
SHA512 = 'sha512-' + '0' * 128
SHA256 = 'sha256-' + 'a' * 64

# (name, config, JSON path of the expected problem, severity, text the
# fix must contain). The oracle test also runs the ones of spec <= 3.3.0
# through the real ignition-validate.
RULE_CASES = [
    # keys and types
    ('unknown-key-suggestion', _cfg(systemdd={}), '$.systemdd', 'error',
     'did you mean "systemd"?'),
    ('unknown-key-case', _files(_file(Mode=420)), '$.storage.files[0].Mode',
     'error', 'did you mean "mode"?'),
    ('unknown-key-no-guess', _cfg(storage={'zzzz': 1}), '$.storage.zzzz',
     'error', 'known here are'),
    ('kargs-too-old', _cfg('3.2.0', kernelArguments={'shouldExist': ['a']}),
     '$.kernelArguments', 'error', '"3.3.0" or newer'),
    ('luks-too-old', _cfg('3.1.0', storage={'luks': [
        {'name': 'a', 'device': '/dev/sda'}]}),
     '$.storage.luks', 'error', '"3.2.0" or newer'),
    ('proxy-too-old', _cfg('3.0.0', ignition={
        'version': '3.0.0', 'proxy': {'httpProxy': 'http://p'}}),
     '$.ignition.proxy', 'error', '"3.1.0" or newer'),
    ('headers-too-old', _files(_file(contents={
        'source': 'https://e.com/x', 'httpHeaders': []}), version='3.0.0'),
     '$.storage.files[0].contents.httpHeaders', 'error', '3.1.0'),
    ('merge-compression-too-old', _cfg('3.0.0', ignition={
        'version': '3.0.0', 'config': {'merge': [
            {'source': 'data:,x', 'compression': 'gzip'}]}}),
     '$.ignition.config.merge[0].compression', 'error', '3.1.0'),
    ('resize-too-old', _cfg('3.1.0', storage={'disks': [
        {'device': '/dev/sdb', 'partitions': [{'number': 1,
                                               'resize': True}]}]}),
     '$.storage.disks[0].partitions[0].resize', 'error', '3.2.0'),
    ('should-exist-user-too-old', _cfg('3.1.0', passwd={'users': [
        {'name': 'a', 'shouldExist': False}]}),
     '$.passwd.users[0].shouldExist', 'error', '3.2.0'),
    ('discard-too-old', _cfg('3.3.0', storage={'luks': [
        {'name': 'a', 'device': '/dev/sdb', 'discard': True}]}),
     '$.storage.luks[0].discard', 'error', '3.4.0'),
    ('cex-too-old', _cfg('3.4.0', storage={'luks': [
        {'name': 'a', 'device': '/dev/sdb', 'cex': {'enabled': True}}]}),
     '$.storage.luks[0].cex', 'error', '3.5.0'),
    ('mode-string', _files(_file(mode='0644')), '$.storage.files[0].mode',
     'error', '420 for 0o644'),
    ('mode-float', _files(_file(mode=420.0)), '$.storage.files[0].mode',
     'error', 'integer'),
    ('bool-string', _files(_file(overwrite='true')),
     '$.storage.files[0].overwrite', 'error', 'true or false'),
    ('keys-not-list', _cfg(passwd={'users': [
        {'name': 'core', 'sshAuthorizedKeys': ED25519}]}),
     '$.passwd.users[0].sshAuthorizedKeys', 'error', 'wrap the value'),
    ('storage-not-object', _cfg(storage=[]), '$.storage', 'error',
     'an object'),
    ('null-item', _cfg(storage={'files': [None]}), '$.storage.files[0]',
     'error', 'remove'),
    # paths
    ('path-relative', _files(_file(path='etc/x')), '$.storage.files[0].path',
     'error', 'write "/etc/x"'),
    ('path-dotdot', _files(_file(path='/etc/a/../x')),
     '$.storage.files[0].path', 'error', 'write "/etc/x"'),
    ('path-double-slash', _files(_file(path='//etc/x')),
     '$.storage.files[0].path', 'error', 'write "/etc/x"'),
    ('path-dot', _files(_file(path='/etc/./x')), '$.storage.files[0].path',
     'error', 'write "/etc/x"'),
    ('path-trailing-slash', _cfg(storage={'directories': [
        {'path': '/var/x/'}]}), '$.storage.directories[0].path', 'error',
     'write "/var/x"'),
    ('path-missing', _files({'mode': 420}), '$.storage.files[0].path',
     'error', 'add "path"'),
    ('path-dup-dir-link', _cfg(storage={
        'directories': [{'path': '/var/a'}],
        'links': [{'path': '/var/a', 'target': '/b'}]}),
     '$.storage.links[0].path', 'error', 'one file, directory or link'),
    ('below-link', _cfg(storage={
        'links': [{'path': '/etc/a', 'target': '/b'}],
        'files': [_file(path='/etc/a/b/c')]}),
     '$.storage.files[0].path', 'error', 'real path'),
    ('unit-file-conflict', _cfg(
        storage={'files': [_file(path='/etc/systemd/system/a.service')]},
        systemd={'units': [{'name': 'a.service', 'contents': UNIT}]}),
     '$.storage.files[0].path', 'error', 'only one of them'),
    ('dropin-file-conflict', _cfg(
        storage={'files': [
            _file(path='/etc/systemd/system/a.service.d/10-x.conf')]},
        systemd={'units': [{'name': 'a.service', 'dropins': [
            {'name': '10-x.conf', 'contents': '[Service]\nX=1\n'}]}]}),
     '$.storage.files[0].path', 'error', 'only one of them'),
    ('masked-unit-conflict', _cfg(
        storage={'links': [{'path': '/etc/systemd/system/a.service',
                            'target': '/dev/null'}]},
        systemd={'units': [{'name': 'a.service', 'mask': True}]}),
     '$.storage.links[0].path', 'error', 'only one of them'),
    # modes
    ('mode-too-big', _files(_file(mode=4755)), '$.storage.files[0].mode',
     'error', 'write 2541 (0o4755)'),
    ('mode-negative', _files(_file(mode=-1)), '$.storage.files[0].mode',
     'error', 'decimal integer'),
    ('mode-decimal-755', _files(_file(mode=755)), '$.storage.files[0].mode',
     'warning', 'write 493 (0o755)'),
    ('mode-decimal-600', _files(_file(mode=600)), '$.storage.files[0].mode',
     'warning', 'write 384 (0o600)'),
    ('mode-decimal-dir', _cfg(storage={'directories': [
        {'path': '/var/d', 'mode': 750}]}),
     '$.storage.directories[0].mode', 'warning', 'write 488 (0o750)'),
    ('mode-unset', _files(_file(mode=None)), '$.storage.files[0].mode',
     'warning', 'e.g. 420'),
    ('mode-special-old-spec', _files(_file(mode=0o4755)),
     '$.storage.files[0].mode', 'warning', 'declare spec 3.6.0'),
    ('keyfile-0644', _files(_file(
        path='/etc/NetworkManager/system-connections/a.nmconnection')),
     '$.storage.files[0].mode', 'error', '384 (0o600)'),
    ('keyfile-mode-unset', _files(_file(
        path='/etc/NetworkManager/system-connections/a.nmconnection',
        mode=None)), '$.storage.files[0].mode', 'error', '384 (0o600)'),
    ('keyfile-owner', _files(_file(
        path='/etc/NetworkManager/system-connections/a.nmconnection',
        mode=0o600, user={'name': 'core'})), '$.storage.files[0].user',
     'error', 'remove "user"'),
    # sources
    ('scheme-ftp', _files(_file(source='ftp://e.com/x')),
     '$.storage.files[0].contents.source', 'error', 'use one of'),
    ('scheme-gs-3.1', _files(_file(source='gs://b/x'), version='3.1.0'),
     '$.storage.files[0].contents.source', 'error', '"3.2.0" or newer'),
    ('scheme-arn-3.3', _files(_file(source='arn:aws:s3:::b/x'),
                              version='3.3.0'),
     '$.storage.files[0].contents.source', 'error', '"3.4.0" or newer'),
    ('arn-not-s3', _files(_file(source='arn:aws:iam::1:role/x'),
                          version='3.4.0'),
     '$.storage.files[0].contents.source', 'error', 'arn:aws:s3:::'),
    ('url-relative', _files(_file(source='x/y')),
     '$.storage.files[0].contents.source', 'error', 'absolute URL'),
    ('url-no-host', _files(_file(source='https:///x')),
     '$.storage.files[0].contents.source', 'error', 'https://host/path'),
    ('data-no-comma', _files(_file(source='data:text/plain')),
     '$.storage.files[0].contents.source', 'error', 'data:,'),
    ('data-bad-base64', _files(_file(source='data:;base64,@@@')),
     '$.storage.files[0].contents.source', 'error', 'base64'),
    ('data-not-gzip', _files(_file(contents={
        'source': 'data:,plain', 'compression': 'gzip'})),
     '$.storage.files[0].contents.compression', 'error', 'gzip the data'),
    ('compression-xz', _files(_file(contents={
        'source': 'data:,x', 'compression': 'xz'})),
     '$.storage.files[0].contents.compression', 'error', '"gzip"'),
    ('hash-md5', _files(_file(contents={
        'source': 'https://e.com/x',
        'verification': {'hash': 'md5-' + '0' * 32}})),
     '$.storage.files[0].contents.verification.hash', 'error',
     'sha512-<128 hex digits>'),
    ('hash-short', _files(_file(contents={
        'source': 'https://e.com/x', 'verification': {'hash': 'sha512-ab'}})),
     '$.storage.files[0].contents.verification.hash', 'error',
     'sha512-<128 hex digits>'),
    ('hash-not-hex', _files(_file(contents={
        'source': 'https://e.com/x',
        'verification': {'hash': 'sha256-' + 'z' * 64}}), version='3.1.0'),
     '$.storage.files[0].contents.verification.hash', 'error',
     'sha256-<64 hex digits>'),
    ('sha256-in-3.0', _files(_file(contents={
        'source': 'https://e.com/x', 'verification': {'hash': SHA256}}),
        version='3.0.0'),
     '$.storage.files[0].contents.verification.hash', 'error',
     'sha512-<128 hex digits>'),
    ('hash-without-source', _files(_file(contents={
        'verification': {'hash': SHA512}})),
     '$.storage.files[0].contents.verification.hash', 'error',
     'add the "source"'),
    ('overwrite-without-source', _files(_file(source=None, overwrite=True)),
     '$.storage.files[0].overwrite', 'error', 'remove "overwrite"'),
    ('headers-on-data', _files(_file(contents={
        'source': 'data:,x', 'httpHeaders': [{'name': 'A', 'value': 'b'}]})),
     '$.storage.files[0].contents.httpHeaders', 'error', 'http(s) source'),
    ('header-duplicate', _files(_file(contents={
        'source': 'https://e.com/x', 'httpHeaders': [
            {'name': 'A', 'value': 'b'}, {'name': 'A', 'value': 'c'}]})),
     '$.storage.files[0].contents.httpHeaders[1]', 'error', 'one entry'),
    ('header-no-name', _files(_file(contents={
        'source': 'https://e.com/x', 'httpHeaders': [{'value': 'b'}]})),
     '$.storage.files[0].contents.httpHeaders[0].name', 'error',
     'add "name"'),
    ('merge-no-source', _cfg(ignition={'version': '3.2.0', 'config': {
        'merge': [{}]}}), '$.ignition.config.merge[0].source', 'error',
     'add "source"'),
    ('merge-duplicate', _cfg(ignition={'version': '3.2.0', 'config': {
        'merge': [{'source': 'https://e.com/a'},
                  {'source': 'https://e.com/a'}]}}),
     '$.ignition.config.merge[1]', 'error', 'only once'),
    ('ca-no-source', _cfg(ignition={'version': '3.2.0', 'security': {
        'tls': {'certificateAuthorities': [{}]}}}),
     '$.ignition.security.tls.certificateAuthorities[0].source', 'error',
     'add "source"'),
    ('proxy-scheme', _cfg(ignition={'version': '3.2.0', 'proxy': {
        'httpsProxy': 'socks5://p:1080'}}), '$.ignition.proxy.httpsProxy',
     'error', 'http://proxy'),
    ('append-no-source', _files(_file(append=[{}])),
     '$.storage.files[0].append[0].source', 'error', 'add "source"'),
    # links
    ('link-no-target', _cfg(storage={'links': [{'path': '/etc/l'}]}),
     '$.storage.links[0].target', 'error', 'add "target"'),
    # systemd
    ('unit-no-ext', _unit('hello', contents=UNIT),
     '$.systemd.units[0].name', 'error', 'end the name in one of'),
    ('unit-typo-ext', _unit('hello.servce', contents=UNIT),
     '$.systemd.units[0].name', 'error', 'did you mean "hello.service"?'),
    ('unit-slash', _unit('../x.service', contents=UNIT),
     '$.systemd.units[0].name', 'error', 'bare unit name'),
    ('unit-no-name', _cfg(systemd={'units': [{'contents': UNIT}]}),
     '$.systemd.units[0].name', 'error', 'add "name"'),
    ('unit-bad-section', _unit(contents='[Unit\nDescription=x\n'),
     '$.systemd.units[0].contents', 'error', '[Section]'),
    ('unit-garbage-line', _unit(contents='[Unit]\njust words\n'),
     '$.systemd.units[0].contents', 'error', 'Key=Value'),
    ('unit-setting-outside', _unit(contents='A=b\n[Unit]\n'),
     '$.systemd.units[0].contents', 'error', '[Section]'),
    ('unit-long-line', _unit(contents='[Service]\nExecStart=/bin/echo %s\n'
                             % ('x' * 2040)),
     '$.systemd.units[0].contents', 'error', 'trailing backslash'),
    ('unit-enabled-no-install', _unit(enabled=True, contents=UNIT),
     '$.systemd.units[0].enabled', 'warning', '[Install]'),
    ('dropin-ext', _unit(dropins=[{'name': '10-x', 'contents': UNIT}]),
     '$.systemd.units[0].dropins[0].name', 'error', 'write "10-x.conf"'),
    ('dropin-dup', _unit(dropins=[{'name': 'a.conf'}, {'name': 'a.conf'}]),
     '$.systemd.units[0].dropins[1]', 'error', 'one entry per name'),
    ('dropin-bad-contents', _unit(dropins=[
        {'name': 'a.conf', 'contents': '[Service\n'}]),
     '$.systemd.units[0].dropins[0].contents', 'error', '[Section]'),
    # passwd
    ('user-dup', _cfg(passwd={'users': [{'name': 'a'}, {'name': 'a'}]}),
     '$.passwd.users[1]', 'error', 'one entry per name'),
    ('group-dup', _cfg(passwd={'groups': [{'name': 'g'}, {'name': 'g'}]}),
     '$.passwd.groups[1]', 'error', 'one entry per name'),
    ('user-no-name', _cfg(passwd={'users': [{'uid': 1000}]}),
     '$.passwd.users[0].name', 'error', 'add "name"'),
    ('ssh-key-garbage', _cfg(passwd={'users': [
        {'name': 'core', 'sshAuthorizedKeys': ['not a key']}]}),
     '$.passwd.users[0].sshAuthorizedKeys[0]', 'error', 'OpenSSH public'),
    ('ssh-key-private', _cfg(passwd={'users': [
        {'name': 'core', 'sshAuthorizedKeys': [
            '-----BEGIN OPENSSH PRIVATE KEY-----']}]}),
     '$.passwd.users[0].sshAuthorizedKeys[0]', 'error', 'OpenSSH public'),
    ('ssh-key-mismatch', _cfg(passwd={'users': [
        {'name': 'core', 'sshAuthorizedKeys': [
            _key('ssh-rsa', 'ssh-ed25519')]}]}),
     '$.passwd.users[0].sshAuthorizedKeys[0]', 'error', 'OpenSSH public'),
    ('ssh-key-bad-base64', _cfg(passwd={'users': [
        {'name': 'core', 'sshAuthorizedKeys': ['ssh-ed25519 %%%% x']}]}),
     '$.passwd.users[0].sshAuthorizedKeys[0]', 'error', 'OpenSSH public'),
    ('ssh-key-two-lines', _cfg(passwd={'users': [
        {'name': 'core', 'sshAuthorizedKeys': [ED25519 + '\n' + ED25519]}]}),
     '$.passwd.users[0].sshAuthorizedKeys[0]', 'error', 'one OpenSSH'),
    ('ssh-key-dup', _cfg(passwd={'users': [
        {'name': 'core', 'sshAuthorizedKeys': [ED25519, ED25519]}]}),
     '$.passwd.users[0].sshAuthorizedKeys[1]', 'error', 'only once'),
    # disks and filesystems
    ('wipe-label-root-reconfigure', _cfg(storage={'filesystems': [
        {'device': '/dev/disk/by-partlabel/root', 'format': 'xfs',
         'wipeFilesystem': True, 'label': 'root'}]}),
     '$.storage.filesystems[0].wipeFilesystem', 'warning',
     'root filesystem is meant to be reconfigured'),
    ('wipe-root-relabelled', _cfg(storage={'filesystems': [
        {'device': '/dev/disk/by-partlabel/root', 'format': 'xfs',
         'wipeFilesystem': True, 'label': 'data'}]}),
     '$.storage.filesystems[0].wipeFilesystem', 'error',
     'remove "wipeFilesystem"'),
    ('wipe-boot-partlabel', _cfg(storage={'filesystems': [
        {'device': '/dev/disk/by-partlabel/boot', 'format': 'ext4',
         'wipeFilesystem': True}]}),
     '$.storage.filesystems[0].wipeFilesystem', 'error',
     'remove "wipeFilesystem"'),
    ('wipe-efi-label', _cfg(storage={'filesystems': [
        {'device': '/dev/sdb1', 'format': 'vfat', 'wipeFilesystem': True,
         'label': 'EFI-SYSTEM'}]}),
     '$.storage.filesystems[0].wipeFilesystem', 'error',
     'remove "wipeFilesystem"'),
    ('disk-no-device', _cfg(storage={'disks': [{'wipeTable': False}]}),
     '$.storage.disks[0].device', 'error', 'add "device"'),
    ('disk-dup', _cfg(storage={'disks': [{'device': '/dev/sdb'},
                                         {'device': '/dev/sdb'}]}),
     '$.storage.disks[1]', 'error', 'merge both'),
    ('partition-label-long', _cfg(storage={'disks': [{
        'device': '/dev/sdb', 'partitions': [{'label': 'x' * 37}]}]}),
     '$.storage.disks[0].partitions[0].label', 'error', 'shorten'),
    ('partition-label-colon', _cfg(storage={'disks': [{
        'device': '/dev/sdb', 'partitions': [{'label': 'a:b'}]}]}),
     '$.storage.disks[0].partitions[0].label', 'error', 'colon'),
    ('partition-number-dup', _cfg(storage={'disks': [{
        'device': '/dev/sdb', 'partitions': [{'number': 1}, {'number': 1}]}]}),
     '$.storage.disks[0].partitions[1]', 'error', 'own number'),
    ('partition-guid', _cfg(storage={'disks': [{
        'device': '/dev/sdb', 'partitions': [{'typeGuid': 'linux'}]}]}),
     '$.storage.disks[0].partitions[0].typeGuid', 'error',
     '01234567-89AB'),
    ('partition-delete-with-size', _cfg(storage={'disks': [{
        'device': '/dev/sdb', 'partitions': [
            {'number': 5, 'shouldExist': False, 'sizeMiB': 10}]}]}),
     '$.storage.disks[0].partitions[0]', 'error', 'remove sizeMiB'),
    ('partition-no-number-or-label', _cfg(storage={'disks': [{
        'device': '/dev/sdb', 'partitions': [{'sizeMiB': 10}]}]}),
     '$.storage.disks[0].partitions[0]', 'error', 'add "number"'),
    ('partition-unnumbered-with-delete', _cfg(storage={'disks': [{
        'device': '/dev/sdb', 'partitions': [
            {'label': 'data'}, {'number': 3, 'shouldExist': False}]}]}),
     '$.storage.disks[0].partitions', 'error', 'give every partition'),
    ('disk-device-relative', _cfg(storage={'disks': [{'device': 'sdb'}]}),
     '$.storage.disks[0].device', 'error', 'write "/dev/sdb"'),
    ('luks-device-dirty', _cfg(storage={'luks': [
        {'name': 'a', 'device': '/dev/disk//by-id/x'}]}),
     '$.storage.luks[0].device', 'error', 'write "/dev/disk/by-id/x"'),
    ('raid-device-relative', _cfg(storage={'raid': [
        {'name': 'md', 'level': 'raid1', 'devices': ['vda', '/dev/vdb']}]}),
     '$.storage.raid[0].devices[0]', 'error', 'write "/dev/vda"'),
    ('fs-device-dirty', _cfg(storage={'filesystems': [
        {'device': '/dev/sdb/', 'format': 'xfs'}]}),
     '$.storage.filesystems[0].device', 'error', 'write "/dev/sdb"'),
    ('fs-no-device', _cfg(storage={'filesystems': [{'format': 'xfs'}]}),
     '$.storage.filesystems[0].device', 'error', 'add "device"'),
    ('fs-format-unknown', _cfg(storage={'filesystems': [
        {'device': '/dev/sdb', 'format': 'ntfs'}]}),
     '$.storage.filesystems[0].format', 'error', 'one of ext4'),
    ('fs-format-none-3.2', _cfg(storage={'filesystems': [
        {'device': '/dev/sdb', 'format': 'none'}]}),
     '$.storage.filesystems[0].format', 'error', 'one of ext4'),
    ('fs-format-missing', _cfg(storage={'filesystems': [
        {'device': '/dev/sdb', 'label': 'data'}]}),
     '$.storage.filesystems[0].format', 'error', 'add "format"'),
    ('fs-label-long', _cfg(storage={'filesystems': [
        {'device': '/dev/sdb', 'format': 'xfs', 'label': 'x' * 13}]}),
     '$.storage.filesystems[0].label', 'error', 'shorten'),
    ('fs-path-relative', _cfg(storage={'filesystems': [
        {'device': '/dev/sdb', 'format': 'xfs', 'path': 'var'}]}),
     '$.storage.filesystems[0].path', 'error', 'write "/var"'),
    ('raid-level', _cfg(storage={'raid': [
        {'name': 'md', 'level': 'raid7', 'devices': ['/dev/a']}]}),
     '$.storage.raid[0].level', 'error', 'raid1'),
    ('raid-no-devices', _cfg(storage={'raid': [
        {'name': 'md', 'level': 'raid1', 'devices': []}]}),
     '$.storage.raid[0].devices', 'error', 'member devices'),
    ('raid-spares-raid0', _cfg(storage={'raid': [
        {'name': 'md', 'level': 'raid0', 'devices': ['/dev/a'],
         'spares': 1}]}),
     '$.storage.raid[0].spares', 'error', 'remove "spares"'),
    ('luks-no-device', _cfg(storage={'luks': [{'name': 'a'}]}),
     '$.storage.luks[0].device', 'error', 'add "device"'),
    ('luks-dup', _cfg(storage={'luks': [{'name': 'a', 'device': '/dev/a'},
                                        {'name': 'a', 'device': '/dev/b'}]}),
     '$.storage.luks[1]', 'error', 'one entry per name'),
    ('tang-no-thumbprint', _cfg(storage={'luks': [
        {'name': 'a', 'device': '/dev/a',
         'clevis': {'tang': [{'url': 'http://t'}]}}]}),
     '$.storage.luks[0].clevis.tang[0].thumbprint', 'error',
     'add "thumbprint"'),
    ('tang-bad-url', _cfg(storage={'luks': [
        {'name': 'a', 'device': '/dev/a',
         'clevis': {'tang': [{'url': 'tang', 'thumbprint': 'x'}]}}]}),
     '$.storage.luks[0].clevis.tang[0].url', 'error', 'http://'),
    ('clevis-custom-mixed', _cfg(storage={'luks': [
        {'name': 'a', 'device': '/dev/a', 'clevis': {
            'tpm2': True, 'custom': {'pin': 'tpm2', 'config': '{}'}}}]}),
     '$.storage.luks[0].clevis', 'error', 'either "custom"'),
    ('clevis-custom-empty-mixed', _cfg(storage={'luks': [
        {'name': 'a', 'device': '/dev/a', 'clevis': {
            'tpm2': True, 'custom': {}}}]}),
     '$.storage.luks[0].clevis', 'error', 'either "custom"'),
    ('clevis-custom-pin', _cfg(storage={'luks': [
        {'name': 'a', 'device': '/dev/a', 'clevis': {
            'custom': {'pin': 'yubikey', 'config': '{}'}}}]}),
     '$.storage.luks[0].clevis.custom.pin', 'error', 'tpm2'),
    # kernel arguments
    ('kargs-dup', _cfg('3.3.0', kernelArguments={
        'shouldExist': ['quiet'], 'shouldNotExist': ['quiet']}),
     '$.kernelArguments.shouldNotExist[0]', 'error', 'once'),
]

# Configs that must pass without any problem.
GOOD_CASES = [
    ('gzip-data', _files(_file(contents={
        'source': _data(gzip.compress(b'hello')), 'compression': 'gzip'}))),
    ('base64-data', _files(_file(source=_data(b'\x00\x01binary')))),
    ('percent-data', _files(_file(source='data:text/plain;charset=utf-8,'
                                         'a%20b%0A'))),
    ('empty-data', _files(_file(source='data:,'))),
    ('gs-3.2', _files(_file(source='gs://bucket/x'), version='3.2.0')),
    ('arn-3.4', _files(_file(source='arn:aws:s3:::bucket/x'),
                       version='3.4.0')),
    ('sha256-3.1', _files(_file(contents={
        'source': 'https://e.com/x', 'verification': {'hash': SHA256}}),
        version='3.1.0')),
    ('remote-file-mode-unset', _files(_file(mode=None,
                                            source='https://e.com/x'))),
    ('keyfile-0600', _files(_file(
        path='/etc/NetworkManager/system-connections/a.nmconnection',
        mode=0o600))),
    ('keyfile-0400-root', _files(_file(
        path='/etc/NetworkManager/system-connections/a.nmconnection',
        mode=0o400, user={'id': 0}, group={'name': 'wheel'}))),
    ('setuid-3.6', _files(_file(mode=0o4755), version='3.6.0')),
    ('dir-no-mode', _cfg(storage={'directories': [{'path': '/var/d'}]})),
    ('unit-enabled-install-in-dropin', _unit(
        enabled=True, contents=UNIT, dropins=[
            {'name': 'i.conf',
             'contents': '[Install]\nWantedBy=multi-user.target\n'}])),
    ('unit-enabled-no-contents', _unit('sshd.service', enabled=True)),
    ('unit-comments-continuation', _unit(
        enabled=True, contents='# c\n; c\n[Service]\nExecStart=/bin/a \\\n'
        '  --flag\n\n[Install]\nWantedBy=multi-user.target\n')),
    ('unit-line-2047-bytes', _unit(contents='[Service]\nExecStart=%s\n'
                                   % ('x' * 2037))),
    ('unit-template', _unit('getty@.service', contents=UNIT_INSTALL)),
    ('ssh-keys', _cfg(passwd={'users': [{'name': 'core',
                                         'sshAuthorizedKeys': [
                                             ED25519,
                                             _key('ecdsa-sha2-nistp256'),
                                             _key('ssh-rsa'),
                                             'from="10.0.0.0/8" ' + ED25519,
                                         ]}]})),
    ('null-means-unset', _files(_file(overwrite=None, user=None))),
    ('kargs-3.3', _cfg('3.3.0', kernelArguments={
        'shouldExist': ['console=ttyS0,115200n8'],
        'shouldNotExist': ['quiet']})),
    ('format-none-3.3', _cfg('3.3.0', storage={'filesystems': [
        {'device': '/dev/sdb', 'format': 'none'}]})),
    ('partition-delete', _cfg(storage={'disks': [{
        'device': '/dev/sdb', 'partitions': [
            {'number': 5, 'shouldExist': False}]}]})),
    ('luks-tang', _cfg('3.5.0', storage={'luks': [
        {'name': 'a', 'device': '/dev/sdb', 'discard': True,
         'cex': {'enabled': False},
         'clevis': {'tang': [{'url': 'http://t', 'thumbprint': 'abc',
                              'advertisement': '{}'}]}}]})),
    ('headers', _files(_file(contents={
        'source': 'https://e.com/x',
        'httpHeaders': [{'name': 'Authorization', 'value': SECRET}]}),
        version='3.1.0')),
    ('root-reformat-other-label', _cfg(storage={'filesystems': [
        {'device': '/dev/disk/by-partlabel/var', 'format': 'xfs',
         'wipeFilesystem': True, 'label': 'var', 'path': '/var'}]})),
]


def _paths(problems):
    return [p.path for p in problems]


class TestCorpus(unittest.TestCase):
    """The shared corpus with default settings."""

    def test_expectations(self):
        with open(os.path.join(CORPUS, 'EXPECT.tsv')) as stream:
            rows = [line.rstrip('\n').split('\t') for line in stream][1:]
        self.assertGreater(len(rows), 50)
        for name, expect, why in rows:
            with self.subTest(name=name, why=why):
                with open(os.path.join(CORPUS, name), 'rb') as stream:
                    report = ignition.validate(stream.read())
                if expect in ('invalid', 'reject'):
                    self.assertTrue(report.errors)
                    for problem in report.errors:
                        self.assertTrue(problem.path.startswith('$'))
                        self.assertTrue(problem.fix)
                elif expect == 'warn':
                    self.assertEqual([], report.errors)
                    self.assertTrue(report.warnings)
                elif expect == 'valid?':
                    self.assertEqual([], report.errors)
                else:
                    self.assertEqual('valid', expect)
                    self.assertEqual([], report.errors + report.warnings)
                    self.assertIsNotNone(report.config)


class TestRules(unittest.TestCase):

    def test_rule_cases(self):
        for name, config, path, severity, fix in RULE_CASES:
            with self.subTest(name=name):
                report = ignition.validate(config)
                found = [p for p in report.errors + report.warnings
                         if p.path == path and p.severity == severity]
                self.assertTrue(found, '%s: no %s at %s in %s'
                                % (name, severity, path,
                                   report.summary()))
                self.assertTrue(any(fix in (p.fix or '') for p in found),
                                '%s: fix %r not in %s' % (
                                    name, fix, [p.fix for p in found]))
                self.assertTrue(all(p.message for p in found))
                self.assertEqual(severity == 'error', not report.valid)

    def test_good_cases(self):
        for name, config in GOOD_CASES:
            with self.subTest(name=name):
                report = ignition.validate(config)
                self.assertEqual([], report.errors + report.warnings,
                                 report.summary())
                self.assertTrue(report.valid)

    def test_all_problems_reported_at_once(self):
        config = _cfg(storag={}, storage={'files': [
            _file(path='rel', mode=644), _file(source='ftp://x/y')]},
            systemd={'units': [{'name': 'x'}]})
        report = ignition.validate(config)
        self.assertEqual(['$.storag', '$.storage.files[0].path',
                          '$.storage.files[1].contents.source',
                          '$.systemd.units[0].name'],
                         sorted(_paths(report.errors)))
        self.assertEqual(['$.storage.files[0].mode'],
                         _paths(report.warnings))

    def test_key_of_newer_spec_beyond_max_version(self):
        report = ignition.validate(
            _cfg('3.3.0', storage={'luks': [
                {'name': 'a', 'device': '/dev/a', 'discard': True}]}),
            max_version='3.3.0')
        problem = report.errors[0]
        self.assertEqual('$.storage.luks[0].discard', problem.path)
        self.assertIn('3.4.0', problem.message)
        self.assertIn('newest accepted spec (3.3.0) lacks it', problem.fix)

    def test_install_device_wipe_table(self):
        config = _cfg(storage={'disks': [{'device': '/dev/sda',
                                          'wipeTable': True}]})
        report = ignition.validate(config, install_device='/dev/sda')
        self.assertEqual(['$.storage.disks[0].wipeTable'],
                         _paths(report.errors))
        self.assertIn('install disk /dev/sda', report.errors[0].message)
        self.assertTrue(ignition.validate(config,
                                          install_device='/dev/sdb').valid)
        self.assertTrue(ignition.validate(config).valid)

    def test_install_device_partition_wipe(self):
        config = _cfg(storage={'filesystems': [
            {'device': '/dev/nvme0n1p4', 'format': 'xfs',
             'wipeFilesystem': True}]})
        report = ignition.validate(config, install_device='/dev/nvme0n1')
        self.assertEqual(['$.storage.filesystems[0].wipeFilesystem'],
                         _paths(report.errors))
        self.assertTrue(ignition.validate(
            config, install_device='/dev/nvme1n1').valid)

    def test_every_decimal_lookalike(self):
        for mode in ignition.OCTAL_LOOKALIKES:
            with self.subTest(mode=mode):
                report = ignition.validate(_files(_file(mode=mode)))
                self.assertTrue(report.valid)
                self.assertEqual(['$.storage.files[0].mode'],
                                 _paths(report.warnings))
                self.assertEqual('write %d (0o%d)' % (int(str(mode), 8),
                                                      mode),
                                 report.warnings[0].fix)

    def test_decimal_644_fix(self):
        report = ignition.validate(_files(_file(mode=644)))
        self.assertEqual('write 420 (0o644)', report.warnings[0].fix)
        self.assertTrue(report.valid)


class TestNeedsNetwork(unittest.TestCase):

    def _needs(self, config):
        report = ignition.validate(config)
        self.assertTrue(report.valid, report.summary())
        return report.needs_network

    def test_data_only(self):
        self.assertFalse(self._needs(_files(
            _file(), _file(path='/etc/y', source='data:,'),
            _file(path='/etc/z', source=None))))

    def test_remote_file(self):
        self.assertTrue(self._needs(_files(_file(source='http://e/x'))))

    def test_remote_append(self):
        self.assertTrue(self._needs(_files(_file(
            append=[{'source': 'tftp://e/x'}]))))

    def test_merge_replace_and_ca(self):
        for section in ({'config': {'merge': [{'source': 's3://b/x'}]}},
                        {'config': {'replace': {'source': 'https://e/x'}}},
                        {'security': {'tls': {'certificateAuthorities': [
                            {'source': 'https://e/ca.pem'}]}}}):
            with self.subTest(section=section):
                self.assertTrue(self._needs(_cfg(
                    ignition=dict(section, version='3.2.0'))))

    def test_data_merge(self):
        self.assertFalse(self._needs(_cfg(ignition={
            'version': '3.2.0', 'config': {'merge': [
                {'source': _data(b'{"ignition":{"version":"3.2.0"}}')}]}})))

    def test_luks_key_file_and_tang(self):
        self.assertTrue(self._needs(_cfg(storage={'luks': [
            {'name': 'a', 'device': '/dev/a',
             'keyFile': {'source': 'https://e/key'}}]})))
        self.assertTrue(self._needs(_cfg(storage={'luks': [
            {'name': 'a', 'device': '/dev/a', 'clevis': {'tang': [
                {'url': 'http://t', 'thumbprint': 'x'}]}}]})))

    def test_clevis_custom_needs_network(self):
        self.assertTrue(self._needs(_cfg(storage={'luks': [
            {'name': 'a', 'device': '/dev/a', 'clevis': {'custom': {
                'pin': 'sss', 'config': '{}', 'needsNetwork': True}}}]})))


class TestVersion(unittest.TestCase):

    def _only_error(self, data, **kwargs):
        report = ignition.validate(data, **kwargs)
        self.assertEqual(1, len(report.errors), report.summary())
        return report.errors[0]

    def test_every_stable_version(self):
        for version in spec.STABLE_VERSIONS:
            with self.subTest(version=version):
                report = ignition.validate(_cfg(version))
                self.assertTrue(report.valid)
                self.assertEqual(version, report.version)

    def test_missing_ignition(self):
        problem = self._only_error({'storage': {}})
        self.assertEqual('$', problem.path)
        self.assertIn('"version": "3.6.0"', problem.fix)

    def test_missing_version(self):
        problem = self._only_error({'ignition': {}}, max_version='3.4.0')
        self.assertEqual('$.ignition.version', problem.path)
        self.assertEqual('add "version": "3.4.0"', problem.fix)

    def test_version_number(self):
        problem = self._only_error('{"ignition": {"version": 3.1}}')
        self.assertEqual('$.ignition.version', problem.path)
        self.assertIn('"3.1.0"', problem.fix)
        self.assertEqual((1, 15), (problem.line, problem.column))

    def test_malformed(self):
        problem = self._only_error(_cfg('3.x'))
        self.assertIn('X.Y.Z', problem.message)

    def test_spec_2(self):
        problem = self._only_error(_cfg('2.3.0'))
        self.assertIn('Butane', problem.fix)

    def test_experimental(self):
        problem = self._only_error(_cfg('3.6.0-experimental'))
        self.assertIn('experimental', problem.message)
        self.assertIn('stable version', problem.fix)

    def test_unknown(self):
        problem = self._only_error(_cfg('3.9.0'))
        self.assertIn('unknown spec version 3.9.0', problem.message)

    def test_newer_than_max_version(self):
        config = _cfg('3.4.0')
        self.assertTrue(ignition.validate(config).valid)
        problem = self._only_error(config, max_version='3.3.0')
        self.assertEqual('$.ignition.version', problem.path)
        self.assertIn('[coreos]max_ignition_version', problem.message)
        self.assertIn('[coreos]max_ignition_version', problem.fix)
        self.assertTrue(ignition.validate(config,
                                          max_version='3.4.0').valid)

    def test_newer_than_max_version_still_checks_the_rest(self):
        report = ignition.validate(_cfg('3.4.0', storag={}),
                                   max_version='3.3.0')
        self.assertEqual(['$.ignition.version', '$.storag'],
                         _paths(report.errors))

    def test_bad_max_version_setting(self):
        self.assertRaises(ValueError, ignition.validate, _cfg(),
                          max_version='3.9.0')


class TestParse(unittest.TestCase):

    def _parse_error(self, data):
        exc = self.assertRaises(exception.InvalidIgnition, ignition.parse,
                                data)
        self.assertEqual(1, len(exc.problems))
        return exc.problems[0]

    def assertRaises(self, exc_class, func, *args, **kwargs):
        with super().assertRaises(exc_class) as ctx:
            func(*args, **kwargs)
        return ctx.exception

    def test_parse_text_bytes_and_dict(self):
        config = _cfg()
        self.assertEqual(config, ignition.parse(json.dumps(config)))
        self.assertEqual(config, ignition.parse(
            b'\xef\xbb\xbf' + json.dumps(config).encode()))
        parsed = ignition.parse(config)
        self.assertEqual(config, parsed)
        self.assertIsNot(config, parsed)

    def test_json_error_line_and_column(self):
        problem = self._parse_error('{\n  "ignition": {"version": "3.2.0"'
                                    ',}\n}')
        self.assertEqual((2, 35), (problem.line, problem.column))
        self.assertIn('trailing comma', problem.message)
        self.assertIn('line 2, column 35', str(problem))

    def test_duplicate_keys(self):
        text = ('{"ignition": {"version": "3.2.0"},\n'
                ' "storage": {"files": [{"path": "/a", "path": "/b"}]}}')
        problem = self._parse_error(text)
        self.assertEqual('$.storage.files[0].path', problem.path)
        self.assertEqual(2, problem.line)
        report = ignition.validate(text)
        self.assertEqual(['$.storage.files[0].path'], _paths(report.errors))

    def test_cloud_config(self):
        problem = self._parse_error('#cloud-config\nusers: []\n')
        self.assertIn('this is a cloud-config, not an Ignition config',
                      problem.message)

    def test_shell_script(self):
        problem = self._parse_error(b'#!/bin/bash\necho hi\n')
        self.assertIn('script', problem.message)

    def test_butane_and_yaml(self):
        problem = self._parse_error('variant: fcos\nversion: 1.5.0\n')
        self.assertIn('butane', problem.fix)
        problem = self._parse_error('ignition:\n  version: 3.2.0\n')
        self.assertIn('YAML', problem.message)

    def test_gzip_and_binary(self):
        problem = self._parse_error(gzip.compress(b'{}'))
        self.assertIn('gunzip', problem.fix)
        problem = self._parse_error(b'\xff\xfe{}')
        self.assertIn('UTF-8', problem.message)

    def test_not_an_object(self):
        for data in ('[]', '"x"', '3', 'null', 'true'):
            with self.subTest(data=data):
                problem = self._parse_error(data)
                self.assertIn('not a JSON object', problem.message)

    def test_syntax_errors(self):
        for data, text in (('{"a": 1', 'truncated'),
                           ('{"a": 1} x', 'after the end'),
                           ('{a: 1}', 'key in double quotes'),
                           ('{"a" 1}', '":"'),
                           ('{"a": [1 2]}', '","'),
                           ('{"a": [1,]}', 'trailing comma'),
                           ('{"a": "\x01"}', 'invalid string'),
                           ('{"a": tru}', 'unexpected character'),
                           ('{"a": 1 /* c */}', 'comments'),
                           ('   ', 'empty')):
            with self.subTest(data=data):
                problem = self._parse_error(data)
                self.assertIn(text, problem.message)
                self.assertTrue(problem.fix)

    def test_deep_nesting(self):
        problem = self._parse_error('[' * 100000)
        self.assertIn('nested too deeply', problem.message)

    def test_dict_with_non_json_values(self):
        problem = self._parse_error({'ignition': {'version': b'3.2.0'}})
        self.assertIn('not JSON', problem.message)

    def test_wrong_input_type(self):
        problem = self._parse_error(42)
        self.assertIn('int', problem.message)


class TestReportAndCheck(unittest.TestCase):

    SECRET_CONFIG = _cfg(
        storage={'files': [
            _file(path='rel', source='data:,' + SECRET),
            _file(path='/etc/b', source='https://user:%s@e.com/x' % SECRET,
                  mode='x')]},
        systemd={'units': [{'name': 'a.service',
                            'contents': 'Environment=%s\n' % SECRET}]},
        passwd={'users': [{'name': 'core', 'passwordHash': SECRET,
                           'sshAuthorizedKeys': [SECRET]}]})

    def test_secrets_never_in_messages(self):
        report = ignition.validate(self.SECRET_CONFIG)
        self.assertGreaterEqual(len(report.errors), 4)
        self.assertNotIn(SECRET, report.summary())
        self.assertNotIn(SECRET, urllib.parse.unquote(report.summary()))

    def test_summary(self):
        report = ignition.validate(_cfg(storag={}, storage={'files': [
            _file(mode=755)]}))
        summary = report.summary()
        self.assertIn('1 error(s) and 1 warning(s)', summary)
        self.assertIn('$.storag', summary)
        self.assertIn('$.storage.files[0].mode', summary)
        self.assertIn('is valid', ignition.validate(_cfg()).summary())

    def test_problems_ordered_by_line(self):
        text = json.dumps(_cfg(storage={'files': [
            _file(path='b', mode=-1), _file(path='c')]}), indent=1)
        lines = [p.line for p in ignition.validate(text).errors]
        self.assertEqual(sorted(lines), lines)
        self.assertTrue(all(lines))

    def test_check_raises_with_problems(self):
        exc = None
        try:
            ignition.check(_cfg(storag={}))
        except exception.InvalidIgnition as e:
            exc = e
        self.assertIsNotNone(exc)
        self.assertEqual(['$.storag'], _paths(exc.problems))
        self.assertIn('did you mean "storage"?', str(exc))

    def test_check_returns_report(self):
        report = ignition.check(_files(_file(mode=644)))
        self.assertEqual(1, len(report.warnings))
        self.assertEqual('3.2.0', report.version)

    def test_check_fail_on_warnings(self):
        with self.assertRaises(exception.InvalidIgnition) as ctx:
            ignition.check(_files(_file(mode=644)), fail_on_warnings=True)
        self.assertIn('[coreos]fail_on_ignition_warnings',
                      str(ctx.exception))
        self.assertEqual(1, len(ctx.exception.problems))

    def test_check_max_version(self):
        with self.assertRaises(exception.InvalidIgnition) as ctx:
            ignition.check(_cfg('3.4.0'), max_version='3.3.0')
        self.assertIn('[coreos]max_ignition_version', str(ctx.exception))

    def test_check_install_device(self):
        config = _cfg(storage={'disks': [{'device': '/dev/sda',
                                          'wipeTable': True}]})
        self.assertRaises(exception.InvalidIgnition, ignition.check, config,
                          install_device='/dev/sda')

    def test_problem_as_dict(self):
        problem = ignition.Problem('$.a', 'm', 'f', 'warning', 3, 4)
        self.assertEqual({'path': '$.a', 'message': 'm', 'fix': 'f',
                          'severity': 'warning', 'line': 3, 'column': 4},
                         problem.as_dict())
        self.assertEqual('warning at $.a (line 3, column 4): m Fix: f',
                         str(problem))


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5000, 5000) | st.text(
        max_size=12) | st.sampled_from(['/etc/x', 'data:,x', 'https://e/x',
                                        '3.2.0', 'a.service', 'gzip']),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(
        st.sampled_from(['path', 'mode', 'contents', 'source', 'name',
                         'files', 'units', 'storage', 'systemd', 'users',
                         'passwd', 'links', 'target', 'disks', 'device',
                         'filesystems', 'luks', 'clevis', 'tang',
                         'compression', 'verification', 'hash',
                         'httpHeaders', 'dropins', 'partitions', 'label',
                         'wipeTable', 'format', 'raid', 'level']),
        children, max_size=4),
    max_leaves=25)


class TestRobustness(unittest.TestCase):

    @hypothesis.settings(max_examples=150, deadline=None)
    @hypothesis.given(_JSON, st.sampled_from(spec.STABLE_VERSIONS))
    def test_validate_never_raises(self, body, version):
        config = body if isinstance(body, dict) else {'storage': body}
        config['ignition'] = {'version': version}
        report = ignition.validate(json.dumps(config))
        self.assertIsInstance(report.summary(), str)
        for problem in report.errors + report.warnings:
            self.assertIn(problem.severity, ('error', 'warning'))


def _indented_lines(config):
    """{JSON path: (line, column)} of ``json.dumps(config, indent=1)``.

    An oracle independent of the validator: with one-space indentation
    every member and every array item starts its own line, at one space
    per level.
    """
    places = {'$': (1, 1)}
    line = 1

    def walk(value, path, depth):
        nonlocal line
        if isinstance(value, dict):
            items = [(ignition._child(path, k), v) for k, v in value.items()]
        elif isinstance(value, list):
            items = [('%s[%d]' % (path, i), v) for i, v in enumerate(value)]
        else:
            return
        if not items:
            return
        for item_path, item in items:
            line += 1
            places.setdefault(item_path, (line, depth + 1))
            walk(item, item_path, depth + 1)
        line += 1  # the closing bracket

    walk(config, '$', 1)
    return places


def _expected_place(places, path):
    for candidate in ignition._ancestors(path):
        if candidate in places:
            return places[candidate]
    return None


def _keys(problems):
    return sorted((p.path, p.severity, p.message, p.fix) for p in problems)


_ODD_KEYS = st.text(alphabet=st.sampled_from(
    ['a', 'Z', '_', '"', '\\', '[', ']', '{', '}', ',', ':', ' ', '\n',
     '\u00e9', '\U0001f600', '.', '0']), max_size=6)


@st.composite
def _mutated_configs(draw):
    """Mostly valid configs with a few wrong or odd values."""
    version = draw(st.sampled_from(spec.STABLE_VERSIONS))
    files = [_file(path=draw(st.sampled_from(['/etc/a', 'rel', '/etc//b',
                                              '/etc/a'])),
                   mode=draw(st.sampled_from([420, 384, 644, '420', None,
                                              -1, 2 ** 70, 1.5])),
                   source=draw(st.sampled_from(['data:,x', 'ftp://h/x',
                                                'data:;base64,@@', None])))
             for _ in range(draw(st.integers(0, 4)))]
    for entry in files:
        if draw(st.booleans()):
            entry[draw(_ODD_KEYS)] = draw(st.sampled_from(
                [[], {}, [[1, [2]], {}], '"]}', None, 7]))
    config = _cfg(version, storage={'files': files, 'links': [
        {'path': '/etc/l', 'target': draw(st.sampled_from(['/x', '']))}]},
        systemd={'units': [{'name': draw(st.sampled_from(
            ['a.service', 'b', 'c.servce'])), 'contents': UNIT}]})
    if draw(st.booleans()):
        config[draw(_ODD_KEYS)] = draw(st.sampled_from([{'x': []}, [{}], 0]))
    return config


class TestVerdicts(unittest.TestCase):

    GOOD = {'ignition': {'version': '3.3.0'},
            'storage': {'files': [{'path': '/etc/motd',
                                   'contents': {'source': 'data:,hi'}}]}}
    WARNED = {'ignition': {'version': '3.3.0'},
              'storage': {'files': [{'path': '/etc/motd', 'mode': 0o777,
                                     'contents': {'source': 'data:,hi'}}]}}
    BAD = {'ignition': {'version': '3.3.0'}, 'storage': {'filez': []}}

    def setUp(self):
        self.verdicts = ignition.Verdicts(size=2)
        patcher = mock.patch.object(ignition, 'validate', autospec=True,
                                    side_effect=ignition.validate)
        self.validate = patcher.start()
        self.addCleanup(patcher.stop)

    def test_usable_config_checked_once(self):
        first = self.verdicts.check(self.GOOD)
        again = self.verdicts.check(json.loads(json.dumps(self.GOOD)))
        self.assertEqual(1, self.validate.call_count)
        self.assertEqual(self.GOOD, first.config)
        self.assertIsNone(again.config)
        self.assertEqual((first.version, first.errors, first.warnings,
                          first.needs_network),
                         (again.version, again.errors, again.warnings,
                          again.needs_network))

    def test_same_verdict_as_check(self):
        for config in (self.GOOD, self.WARNED, self.BAD):
            for fail_on_warnings in (False, True):
                try:
                    expected = ignition.check(
                        config, fail_on_warnings=fail_on_warnings).warnings
                except exception.InvalidIgnition as e:
                    expected = e.problems
                for _attempt in range(2):
                    try:
                        seen = self.verdicts.check(
                            config,
                            fail_on_warnings=fail_on_warnings).warnings
                    except exception.InvalidIgnition as e:
                        seen = e.problems
                    self.assertEqual(expected, seen)

    def test_errors_never_remembered(self):
        for _attempt in range(3):
            self.assertRaises(exception.InvalidIgnition,
                              self.verdicts.check, self.BAD)
        self.assertEqual(3, self.validate.call_count)

    def test_settings_and_forms_checked_apart(self):
        text = json.dumps(self.GOOD)
        self.verdicts.check(self.GOOD)
        self.verdicts.check(self.GOOD, max_version='3.3.0')
        self.verdicts.check(text)
        self.verdicts.check(text.encode())
        self.verdicts.check(json.dumps(self.GOOD, indent=1))
        self.assertEqual(5, self.validate.call_count)

    def test_changed_config_checked_again(self):
        self.verdicts.check(self.GOOD)
        changed = json.loads(json.dumps(self.GOOD))
        changed['storage']['files'][0]['mode'] = 'rw'
        self.assertRaises(exception.InvalidIgnition, self.verdicts.check,
                          changed)
        self.assertEqual(2, self.validate.call_count)

    def test_keeps_the_last_verdicts(self):
        configs = [{'ignition': {'version': v}}
                   for v in ('3.0.0', '3.1.0', '3.2.0')]
        for config in configs:
            self.verdicts.check(config)
        self.verdicts.check(configs[0])
        self.assertEqual(4, self.validate.call_count)
        self.verdicts.check(configs[2])
        self.assertEqual(4, self.validate.call_count)


class TestTextAndDict(unittest.TestCase):
    """A config as text and as a dict: same verdict, same problems."""

    def assertSameVerdict(self, config, name=''):
        as_dict = ignition.validate(config)
        text = json.dumps(config, indent=1)
        as_text = ignition.validate(text)
        self.assertEqual(_keys(as_dict.errors), _keys(as_text.errors), name)
        self.assertEqual(_keys(as_dict.warnings), _keys(as_text.warnings),
                         name)
        self.assertEqual(as_dict.valid, as_text.valid)
        places = _indented_lines(config)
        for problem in as_text.errors + as_text.warnings:
            self.assertIsNotNone(problem.line, problem)
            self.assertIn('line %d, column %d' % (problem.line,
                                                  problem.column),
                          str(problem))
            self.assertEqual(_expected_place(places, problem.path),
                             (problem.line, problem.column),
                             '%s: %s' % (name, problem))
        for problem in as_dict.errors + as_dict.warnings:
            self.assertIsNone(problem.line)
        return as_text

    def test_rule_and_good_cases(self):
        cases = [(n, c) for n, c, _p, _s, _f in RULE_CASES] + GOOD_CASES
        for name, config in cases:
            with self.subTest(name=name):
                self.assertSameVerdict(config, name)

    def test_corpus(self):
        with open(os.path.join(CORPUS, 'EXPECT.tsv')) as stream:
            names = [line.split('\t')[0] for line in stream][1:]
        compared = 0
        for name in names:
            with open(os.path.join(CORPUS, name), 'rb') as stream:
                try:
                    config = json.loads(stream.read())
                except ValueError:
                    continue  # not JSON: only text can say so
            if isinstance(config, dict):
                with self.subTest(name=name):
                    self.assertSameVerdict(config, name)
                compared += 1
        self.assertGreater(compared, 40)

    def test_large_config_with_problems(self):
        config = large_ignition.build(64 * 1024)
        files = config['storage']['files']
        files[3]['mode'] = 755
        files[-1]['path'] = 'var/lib/x'
        del files[10]['contents']['source']
        files[10]['overwrite'] = True
        config['systemd']['units'][5]['name'] = 'task.servce'
        config['passwd']['users'][0]['sshAuthorizedKeys'].append('nope')
        report = self.assertSameVerdict(config)
        self.assertEqual(
            sorted(['$.storage.files[10].overwrite',
                    '$.storage.files[%d].path' % (len(files) - 1),
                    '$.systemd.units[5].name',
                    '$.passwd.users[0].sshAuthorizedKeys[4]']),
            sorted(_paths(report.errors)))
        self.assertEqual(['$.storage.files[3].mode'],
                         _paths(report.warnings))

    @hypothesis.settings(max_examples=100, deadline=None)
    @hypothesis.given(_mutated_configs())
    def test_generated(self, config):
        self.assertSameVerdict(config)

    def test_compact_text_places(self):
        text = ('{"ignition":{"version":"3.2.0"},"storage":{"files":['
                '{"path":"/a","mode":420},{"path":"b","mode":420,'
                '"x\\"]":[1,{"y":[]}]}]}}')
        report = ignition.validate(text)
        self.assertEqual(
            [('$.storage.files[1].path', 1, text.index('"path":"b"') + 1),
             ('$.storage.files[1]["x\\"]"]', 1, text.index('"x\\"') + 1)],
            [(p.path, p.line, p.column) for p in report.errors])

    def test_duplicate_key_place(self):
        text = ('{"ignition": {"version": "3.2.0"},\n"storage": {\n'
                '"files": [],\n"files": [{"path": "x"}]}}')
        report = ignition.validate(text)
        self.assertEqual(
            [('$.storage.files', 4, 1), ('$.storage.files[0].path', 4, 12)],
            [(p.path, p.line, p.column) for p in report.errors])


@unittest.skipUnless(os.access(ORACLE, os.X_OK),
                     'ignition-validate is not installed')
class TestAgainstIgnitionValidate(unittest.TestCase):
    """Never more lenient than the real Ignition validator (spec <= 3.3)."""

    def _oracle_fails(self, path):
        result = subprocess.run([ORACLE, path], capture_output=True,
                                check=False, timeout=30)
        self.assertIn(result.returncode, (0, 1), result.stderr)
        return result.returncode == 1

    def test_corpus(self):
        names = sorted(n for n in os.listdir(CORPUS) if n.endswith('.ign'))
        checked = 0
        for name in names:
            path = os.path.join(CORPUS, name)
            with self.subTest(name=name):
                with open(path, 'rb') as stream:
                    report = ignition.validate(stream.read())
                if (report.version in spec.STABLE_VERSIONS
                        and not spec.at_least('3.3.0', report.version)):
                    continue  # the oracle (Ignition 2.14) stops at 3.3.0
                checked += 1
                if self._oracle_fails(path):
                    self.assertTrue(report.errors)
        self.assertGreater(checked, 40)

    def test_own_cases(self):
        cases = [(n, c) for n, c, _p, _s, _f in RULE_CASES] + GOOD_CASES
        checked = 0
        with tempfile.TemporaryDirectory() as tmp:
            for name, config in cases:
                version = config['ignition'].get('version')
                if not spec.at_least('3.3.0', version):
                    continue
                path = os.path.join(tmp, name + '.ign')
                with open(path, 'w') as stream:
                    json.dump(config, stream)
                with self.subTest(name=name):
                    if self._oracle_fails(path):
                        self.assertTrue(ignition.validate(config).errors)
                    checked += 1
        self.assertGreater(checked, 100)
