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

"""Tests for the coreos-installer stand-in and its disk tooling.

They run the stand-in as a separate process against plain files (no loop
devices, no root needed beyond what e2fsprogs and sfdisk need for files).
"""

import functools
import gzip
import hashlib
import http.server
import json
import lzma
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from unittest import mock

import testtools

from ironic_coreos.tests.functional.standin import disk
from ironic_coreos.tests.functional.standin import installer

MIB = disk.MIB
DISK_MIB = 80
SECRET = 'standin-secret-marker-6d1f'
IGNITION = {'ignition': {'version': '3.4.0'},
            'passwd': {'users': [{'name': 'core',
                                  'passwordHash': SECRET}]}}


def _scratch_dir(prefix):
    """A temporary directory, on tmpfs when there is room (fsync is cheap).

    The stand-in fsyncs the whole image like the real installer; on a disk
    that costs far more than the install itself.
    """
    shm = '/dev/shm'
    try:
        vfs = os.statvfs(shm)
        if vfs.f_bavail * vfs.f_frsize > 2 * 1024 * MIB and os.access(
                shm, os.W_OK):
            return tempfile.mkdtemp(prefix=prefix, dir=shm)
    except OSError:
        pass
    return tempfile.mkdtemp(prefix=prefix)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class StandinTestCase(testtools.TestCase):
    """Shared images, a local HTTP server and a fresh target per test."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.images = _scratch_dir('standin-images-')
        cls.raw = disk.make_image(os.path.join(cls.images, 'fcos.raw'),
                                  size_mib=48)
        disk.make_signature(cls.raw)
        cls.xz = disk.make_image(os.path.join(cls.images, 'fcos.raw.xz'),
                                 size_mib=48, compress='xz')
        disk.make_signature(cls.xz)
        cls.gz = disk.make_image(os.path.join(cls.images, 'fcos.raw.gz'),
                                 size_mib=48, compress='gzip')
        disk.make_signature(cls.gz)
        # Same image without a signature, and one with a wrong signature.
        cls.unsigned = os.path.join(cls.images, 'unsigned.raw.xz')
        shutil.copy(cls.xz, cls.unsigned)
        cls.badsig = os.path.join(cls.images, 'badsig.raw.xz')
        shutil.copy(cls.xz, cls.badsig)
        with open(cls.badsig + '.sig', 'w') as f:
            f.write(disk.SIGNATURE_PREFIX + '0' * 64 + '\n')
        handler = functools.partial(_QuietHandler, directory=cls.images)
        cls.server = http.server.ThreadingHTTPServer(('127.0.0.1', 0),
                                                     handler)
        cls.base_url = 'http://127.0.0.1:%d' % cls.server.server_address[1]
        cls.thread = threading.Thread(target=cls.server.serve_forever,
                                      daemon=True)
        cls.thread.start()

    @classmethod
    def tearDownClass(cls):
        cls.server.shutdown()
        cls.server.server_close()
        shutil.rmtree(cls.images, ignore_errors=True)
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        self.tmp = _scratch_dir('standin-test-')
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self.target = self.new_disk('disk.img')
        self.ign = os.path.join(self.tmp, 'config.ign')
        with open(self.ign, 'w') as f:
            json.dump(IGNITION, f)
        self.state = os.path.join(self.tmp, 'state')

    def new_disk(self, name, size_mib=DISK_MIB):
        path = os.path.join(self.tmp, name)
        with open(path, 'wb') as f:
            f.truncate(size_mib * MIB)
        return path

    def run_standin(self, *args, env=None, allowed=None, timeout=60):
        """Run the stand-in; returns (exit status, stderr lines)."""
        full_env = {k: v for k, v in os.environ.items()
                    if not k.startswith('COREOS_STANDIN_')}
        full_env['no_proxy'] = full_env['NO_PROXY'] = '127.0.0.1,localhost'
        full_env[installer.ALLOWED_DEVICES_ENV] = (
            self.target if allowed is None else allowed)
        full_env[installer.STATE_ENV] = self.state
        full_env.update(env or {})
        if full_env[installer.ALLOWED_DEVICES_ENV] == '':
            del full_env[installer.ALLOWED_DEVICES_ENV]
        proc = subprocess.run(
            [sys.executable, '-m',
             'ironic_coreos.tests.functional.standin.installer'] + list(args),
            env=full_env, capture_output=True, timeout=timeout, check=False)
        lines = (proc.stdout + proc.stderr).decode().splitlines()
        return proc.returncode, lines

    def install(self, *args, image=None, **kwargs):
        image = self.xz if image is None else image
        return self.run_standin('install', '-f', image, '-i', self.ign,
                                *args, self.target, **kwargs)

    def assertInstalled(self, result):
        rc, lines = result
        self.assertEqual(0, rc, '\n'.join(lines))
        self.assertEqual('Install complete.', lines[-1])
        return disk.inspect_disk(self.target)

    def assertFailed(self, result, message):
        rc, lines = result
        self.assertEqual(1, rc, '\n'.join(lines))
        self.assertEqual('Error: install failed', lines[-1])
        self.assertIn(message, '\n'.join(lines))
        self.assertNotIn(SECRET, '\n'.join(lines))
        return lines

    def assertWiped(self):
        self.assertIsNone(disk.partition_table(self.target))

    def assertUntouched(self):
        with open(self.target, 'rb') as f:
            self.assertEqual(b'\0' * MIB, f.read(MIB))
        self.assertEqual(DISK_MIB * MIB, os.path.getsize(self.target))


class TestImageSources(StandinTestCase):

    def _check_install(self, info):
        self.assertEqual(['BIOS-BOOT', 'EFI-SYSTEM', 'boot', 'root'],
                         [p['name'] for p in info['partitions']])
        self.assertEqual([None, 'EFI-SYSTEM', 'boot', 'root'],
                         info['labels'])
        self.assertEqual(IGNITION, json.loads(info['ignition']))
        self.assertEqual(0o600, info['ignition_mode'])
        self.assertEqual(0o700, info['ignition_dir_mode'])
        self.assertEqual('coreos', info['os_release']['VARIANT_ID'])

    def test_image_file_xz(self):
        info = self.assertInstalled(self.install())
        self._check_install(info)
        self.assertIn('ignition.platform.id=metal', info['kargs'])

    def test_image_file_gzip_and_raw(self):
        for image in (self.gz, self.raw):
            self.target = self.new_disk(os.path.basename(image) + '.disk')
            self._check_install(self.assertInstalled(
                self.install(image=image)))

    def test_compression_detected_by_magic(self):
        image = os.path.join(self.tmp, 'noext')
        shutil.copy(self.xz, image)
        disk.make_signature(image)
        self._check_install(self.assertInstalled(self.install(image=image)))

    def test_multi_member_gzip(self):
        with open(self.raw, 'rb') as f:
            data = f.read()
        image = os.path.join(self.tmp, 'multi.raw.gz')
        half = len(data) // 2
        with open(image, 'wb') as f:
            f.write(gzip.compress(data[:half], compresslevel=1))
            f.write(gzip.compress(data[half:], compresslevel=1))
        disk.make_signature(image)
        self._check_install(self.assertInstalled(self.install(image=image)))

    def test_truncated_image(self):
        image = os.path.join(self.tmp, 'short.raw.xz')
        with open(self.xz, 'rb') as f:
            data = f.read()
        with open(image, 'wb') as f:
            f.write(data[:len(data) // 2])
        disk.make_signature(image)
        self.assertFailed(self.install(image=image), 'decompressing image')
        self.assertWiped()

    def test_decompression_in_chunks(self):
        with open(self.raw, 'rb') as f:
            data = f.read()
        packed = lzma.compress(data, preset=0) + lzma.compress(b'tail')
        chunks = [packed[i:i + 1000] for i in range(0, len(packed), 1000)]
        self.assertEqual(data + b'tail',
                         b''.join(installer._decompressed(chunks)))

    def test_decompressed_pieces_are_bounded(self):
        # A run of zeros compresses a thousandfold: one chunk read must not
        # become one huge piece in memory, for either format.
        zeros = bytes(64 * installer.MIB)
        tail = b'tail'
        for packed in (gzip.compress(zeros, compresslevel=1)
                       + gzip.compress(tail),
                       lzma.compress(zeros, preset=0) + lzma.compress(tail)):
            pieces = list(installer._decompressed([packed]))
            self.assertLessEqual(max(len(p) for p in pieces),
                                 installer.OUT_CHUNK)
            self.assertEqual(zeros + b'tail', b''.join(pieces))

    def test_progress_lines(self):
        rc, lines = self.install()
        self.assertEqual(0, rc)
        progress = [line for line in lines if line.startswith('Read disk')]
        self.assertTrue(progress)
        self.assertRegex(progress[-1],
                         r'^Read disk [\d.]+ \w+/[\d.]+ \w+ \(100%\)$')

    def test_first_mib_written_last_and_whole_image(self):
        self.assertInstalled(self.install(image=self.raw))
        with open(self.raw, 'rb') as src, open(self.target, 'rb') as dst:
            image = src.read()
            written = dst.read(len(image))
        # Everything outside the boot partition is byte-identical.
        boot = disk.find_boot(self.target)
        self.assertEqual(image[:boot], written[:boot])
        self.assertEqual(image[boot + 16 * MIB:], written[boot + 16 * MIB:])

    def test_image_file_missing_signature(self):
        lines = self.assertFailed(self.install(image=self.unsigned),
                                  'use --insecure')
        # Checked before streaming: nothing of the image was read.
        self.assertFalse([line for line in lines
                          if line.startswith('Read disk')])
        self.assertWiped()

    def test_image_file_missing_signature_insecure(self):
        rc, lines = self.install('--insecure', image=self.unsigned)
        self.assertEqual(0, rc)
        self.assertIn('Signature not found; skipping verification as '
                      'requested', lines)

    def test_bad_signature_fails_even_insecure(self):
        self.assertFailed(self.install('--insecure', image=self.badsig),
                          'bad signature')
        self.assertWiped()

    def test_image_file_not_found(self):
        self.assertFailed(
            self.install(image=os.path.join(self.tmp, 'missing.raw')),
            'opening image file')

    def test_image_larger_than_device(self):
        self.target = self.new_disk('small.img', size_mib=16)
        self.assertFailed(self.install(), 'larger than the device')
        self.assertWiped()
        self.assertEqual(16 * MIB, os.path.getsize(self.target))

    def test_image_url_with_signature(self):
        result = self.run_standin('install', '--image-url',
                                  self.base_url + '/fcos.raw.xz',
                                  '--ignition-file', self.ign, self.target)
        self._check_install(self.assertInstalled(result))

    def test_image_url_without_signature(self):
        result = self.run_standin('install', '-u',
                                  self.base_url + '/unsigned.raw.xz',
                                  '-i', self.ign, self.target)
        self.assertFailed(result, 'use --insecure')
        self.assertWiped()

    def test_image_url_without_signature_insecure(self):
        result = self.run_standin('install', '-u',
                                  self.base_url + '/unsigned.raw.xz',
                                  '--insecure', '-i', self.ign, self.target)
        self._check_install(self.assertInstalled(result))

    def test_image_url_bad_signature_insecure(self):
        result = self.run_standin('install', '-u',
                                  self.base_url + '/badsig.raw.xz',
                                  '--insecure', '-i', self.ign, self.target)
        self.assertFailed(result, 'bad signature')
        self.assertWiped()

    def test_image_url_not_found(self):
        result = self.run_standin('install', '-u',
                                  self.base_url + '/nope.raw.xz',
                                  '--insecure', '-i', self.ign, self.target)
        self.assertFailed(result, '404')

    def test_image_url_connection_refused_retries(self):
        server = http.server.HTTPServer(('127.0.0.1', 0), _QuietHandler)
        port = server.server_address[1]
        server.server_close()
        result = self.run_standin('install', '-u',
                                  'http://127.0.0.1:%d/x.raw.xz' % port,
                                  '--fetch-retries', '2', '-i', self.ign,
                                  self.target)
        lines = self.assertFailed(result, 'fetching http://127.0.0.1')
        self.assertEqual(2, len([line for line in lines
                                 if 'retrying' in line]))

    def test_offline_with_payload(self):
        result = self.run_standin(
            'install', '--offline', '-i', self.ign, self.target,
            env={installer.OFFLINE_IMAGE_ENV: self.xz})
        self._check_install(self.assertInstalled(result))

    def test_default_source_is_offline_payload_when_present(self):
        result = self.run_standin(
            'install', '-i', self.ign, self.target,
            env={installer.OFFLINE_IMAGE_ENV: self.xz})
        self._check_install(self.assertInstalled(result))

    def test_offline_without_payload(self):
        self.assertFailed(
            self.run_standin('install', '--offline', self.target),
            'Error: cannot perform offline install; metadata missing')

    def test_stream_without_network(self):
        self.assertFailed(
            self.run_standin('install', '-s', 'stable', self.target),
            'fetching stream metadata')

    def test_stream_base_url(self):
        streams = os.path.join(self.images, 'streams')
        os.makedirs(streams, exist_ok=True)
        meta = {'architectures': {os.uname().machine: {'artifacts': {
            'metal': {'formats': {'raw.xz': {'disk': {
                'location': self.base_url + '/fcos.raw.xz'}}}}}}}}
        with open(os.path.join(streams, 'testing.json'), 'w') as f:
            json.dump(meta, f)
        result = self.run_standin('install', '--stream', 'testing',
                                  '--stream-base-url', self.base_url,
                                  '-i', self.ign, self.target)
        self._check_install(self.assertInstalled(result))

    def test_config_file(self):
        conf = os.path.join(self.tmp, 'install.yaml')
        with open(conf, 'w') as f:
            f.write('image-file: %s\nignition-file: %s\n'
                    'append-karg: [a=1, "b=2,3"]\ndest-device: %s\n'
                    % (self.xz, self.ign, self.target))
        result = self.run_standin('install', '--config-file', conf,
                                  '--append-karg', 'c')
        info = self.assertInstalled(result)
        self.assertEqual(['a=1', 'b=2,3', 'c'], info['kargs'][-3:])


class TestArguments(StandinTestCase):

    def _usage_error(self, *args):
        rc, lines = self.run_standin('install', *args, self.target)
        self.assertEqual(2, rc, '\n'.join(lines))
        self.assertUntouched()
        return '\n'.join(lines)

    def test_image_sources_conflict(self):
        sources = [('-u', 'http://x/y'), ('-f', self.xz),
                   ('-s', 'stable'), ('--offline',)]
        for i, first in enumerate(sources):
            for second in sources[i + 1:]:
                out = self._usage_error(*(first + second))
                self.assertIn('not allowed with argument', out)

    def test_ignition_sources_conflict(self):
        out = self._usage_error('-f', self.xz, '-i', self.ign, '-I',
                                'https://example.invalid/c.ign')
        self.assertIn('not allowed with argument', out)

    def test_stream_base_url_conflicts_with_image(self):
        out = self._usage_error('-f', self.xz, '--stream-base-url',
                                'http://x/')
        self.assertIn('--stream-base-url', out)

    def test_fetch_retries_values(self):
        self._usage_error('-f', self.xz, '--fetch-retries', 'sometimes')
        for value in ('0', '3', 'infinite'):
            self.target = self.new_disk('d%s.img' % value)
            self.assertInstalled(self.install('--fetch-retries', value))

    def test_missing_destination(self):
        rc, lines = self.run_standin('install', '-f', self.xz)
        self.assertEqual(2, rc)
        self.assertIn('DEST_DEVICE', '\n'.join(lines))

    def test_unknown_option(self):
        self.assertIn('unrecognized arguments',
                      self._usage_error('-f', self.xz, '--bogus'))

    def test_short_and_long_forms(self):
        netdir = os.path.join(self.tmp, 'net')
        os.mkdir(netdir)
        with open(os.path.join(netdir, 'a.nmconnection'), 'w') as f:
            f.write('[connection]\n')
        info = self.assertInstalled(self.run_standin(
            'install', '-f', self.xz, '-i', self.ign, '-p', 'openstack',
            '-n', '--network-dir', netdir, self.target))
        self.assertIn('ignition.platform.id=openstack', info['kargs'])
        self.assertIsNotNone(info['firstboot_network'])

    def test_version(self):
        rc, lines = self.run_standin('--version')
        self.assertEqual(0, rc)
        self.assertEqual(['coreos-installer %s' % installer.VERSION], lines)


class TestKernelArguments(StandinTestCase):

    def test_comma_karg_is_one_word(self):
        info = self.assertInstalled(self.install(
            '--append-karg', 'console=ttyS0,115200n8',
            '--append-karg', 'nosmt', '--append-karg=rd.neednet=1'))
        self.assertEqual(['console=ttyS0,115200n8', 'nosmt', 'rd.neednet=1'],
                         info['kargs'][-3:])

    def test_delete_then_append_then_platform(self):
        info = self.assertInstalled(self.install(
            '--delete-karg', 'mitigations=auto,nosmt',
            '--delete-karg', 'rw', '--append-karg', 'rw',
            '--platform', 'openstack', '--console', 'ttyS1,115200n8'))
        kargs = info['kargs']
        self.assertNotIn('mitigations=auto,nosmt', kargs)
        self.assertNotIn('ignition.platform.id=metal', kargs)
        self.assertIn('ignition.platform.id=openstack', kargs)
        self.assertEqual(['rw', 'console=ttyS1,115200n8'], kargs[-2:])
        self.assertEqual(1, kargs.count('rw'))

    def test_untouched_without_edits(self):
        info = self.assertInstalled(self.install())
        self.assertEqual(list(disk.DEFAULT_KARGS), info['kargs'])

    def test_firstboot_args(self):
        info = self.assertInstalled(self.install(
            '--firstboot-args', 'ip=eno1:dhcp'))
        self.assertTrue(info['firstboot'].startswith(
            disk.FIRSTBOOT_CONTENT.decode()))
        self.assertIn('set ignition_network_kcmdline="ip=eno1:dhcp"\n',
                      info['firstboot'])


class TestBootPartition(StandinTestCase):

    def test_ignition_modes(self):
        info = self.assertInstalled(self.install())
        self.assertEqual(0o600, info['ignition_mode'])
        self.assertEqual(0o700, info['ignition_dir_mode'])
        with open(self.ign, 'rb') as f:
            self.assertEqual(f.read(), info['ignition'])

    def test_no_ignition(self):
        info = self.assertInstalled(self.run_standin(
            'install', '-f', self.xz, self.target))
        self.assertIsNone(info['ignition'])
        self.assertIsNone(info['ignition_dir_mode'])

    def test_ignition_not_json_fails_before_touching_disk(self):
        with open(self.ign, 'w') as f:
            f.write('#cloud-config\npassword: %s\n' % SECRET)
        self.assertFailed(self.install(), 'parsing Ignition config')
        self.assertUntouched()

    def test_ignition_any_json_accepted(self):
        with open(self.ign, 'w') as f:
            f.write('{"ignition": {"version": "9.9.9"}}')
        info = self.assertInstalled(self.install())
        self.assertEqual({'ignition': {'version': '9.9.9'}},
                         json.loads(info['ignition']))

    def test_ignition_url_and_hash(self):
        shutil.copy(self.ign, os.path.join(self.images, 'hash.ign'))
        with open(self.ign, 'rb') as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        url = self.base_url + '/hash.ign'
        # http without a hash is refused before the disk is touched.
        self.assertFailed(self.run_standin(
            'install', '-f', self.xz, '-I', url, self.target),
            '--ignition-hash')
        self.assertUntouched()
        info = self.assertInstalled(self.run_standin(
            'install', '-f', self.xz, '-I', url, '--ignition-hash',
            'sha256-' + digest, self.target))
        self.assertEqual(IGNITION, json.loads(info['ignition']))

    def test_copy_network_keeps_modes(self):
        netdir = os.path.join(self.tmp, 'system-connections')
        os.mkdir(netdir)
        files = {'eth0.nmconnection': (b'[connection]\nid=eth0\n', 0o600),
                 'Wired connection 1.nmconnection': (b'[ipv4]\n', 0o640)}
        for name, (contents, mode) in files.items():
            with open(os.path.join(netdir, name), 'wb') as f:
                f.write(contents)
            os.chmod(os.path.join(netdir, name), mode)
        info = self.assertInstalled(self.install(
            '--copy-network', '--network-dir', netdir))
        self.assertEqual(
            {name: {'contents': c, 'mode': m}
             for name, (c, m) in files.items()},
            info['firstboot_network'])

    def test_network_dir_without_copy_network(self):
        info = self.assertInstalled(self.install('--network-dir', self.tmp))
        self.assertIsNone(info['firstboot_network'])


class TestFailures(StandinTestCase):

    def test_failure_after_write_wipes_table(self):
        lines = self.assertFailed(
            self.install('--ignition-hash', 'sha256-' + '0' * 64),
            'Ignition config hash mismatch')
        self.assertIn('Resetting partition table', lines)
        self.assertWiped()
        with open(self.target, 'rb') as f:
            f.seek(-MIB, os.SEEK_END)
            self.assertEqual(b'\0' * MIB, f.read())

    def test_failure_preserve_on_error_keeps_table(self):
        self.assertFailed(
            self.install('--ignition-hash', 'sha256-' + '0' * 64,
                         '--preserve-on-error'),
            'Ignition config hash mismatch')
        info = disk.inspect_disk(self.target)
        self.assertEqual(['BIOS-BOOT', 'EFI-SYSTEM', 'boot', 'root'],
                         [p['name'] for p in info['partitions']])

    def test_failed_reinstall_wipes_previous_install(self):
        self.assertInstalled(self.install())
        self.assertFailed(self.install(image=self.badsig), 'bad signature')
        self.assertWiped()

    def test_failed_reinstall_preserve_keeps_previous_install(self):
        self.assertInstalled(self.install())
        self.assertFailed(self.install('--preserve-on-error',
                                       image=self.badsig), 'bad signature')
        self.assertIsNotNone(disk.partition_table(self.target))

    def test_reinstall_over_installed_disk(self):
        self.assertInstalled(self.install())
        info = self.assertInstalled(self.install('--append-karg', 'again'))
        self.assertEqual('again', info['kargs'][-1])
        self.assertEqual(1, info['kargs'].count('again'))


class TestSavedPartitions(StandinTestCase):

    MARKER = b'saved-data-marker' * 100

    def setUp(self):
        super().setUp()
        script = ('label: gpt\nunit: sectors\n\n'
                  'start=2048, size=40960, name="old-root"\n'
                  'start=%d, size=20480, name="data"\n' % (60 * 2048))
        subprocess.run(['sfdisk', '-q', '--no-reread', '--no-tell-kernel',
                        self.target], input=script.encode(), check=True,
                       capture_output=True)
        with open(self.target, 'r+b') as f:
            f.seek(60 * MIB)
            f.write(self.MARKER)

    def _marker_intact(self):
        with open(self.target, 'rb') as f:
            f.seek(60 * MIB)
            return f.read(len(self.MARKER)) == self.MARKER

    def test_save_partlabel(self):
        info = self.assertInstalled(self.install('--save-partlabel', 'd*'))
        names = [p['name'] for p in info['partitions']]
        self.assertEqual(['BIOS-BOOT', 'EFI-SYSTEM', 'boot', 'root', 'data'],
                         names)
        self.assertEqual(60 * MIB, info['partitions'][-1]['start'])
        self.assertTrue(self._marker_intact())

    def test_save_partindex(self):
        info = self.assertInstalled(self.install('--save-partindex', '2-'))
        self.assertEqual('data', info['partitions'][-1]['name'])
        self.assertEqual(5, info['partitions'][-1]['index'])

    def test_save_overlapping_partition_fails(self):
        self.assertFailed(self.install('--save-partlabel', 'old-root,data'),
                          'overlaps the image')

    def test_saved_partitions_restored_on_failure(self):
        self.assertFailed(self.install('--save-partlabel', 'data',
                                       image=self.badsig), 'bad signature')
        info = disk.inspect_disk(self.target)
        self.assertEqual(['data'], [p['name'] for p in info['partitions']])
        self.assertTrue(self._marker_intact())

    def test_nothing_saved_without_option(self):
        info = self.assertInstalled(self.install())
        self.assertEqual(4, len(info['partitions']))


class TestSafety(StandinTestCase):

    def test_refuses_when_allow_list_unset(self):
        rc, lines = self.install(allowed='')
        self.assertEqual(1, rc)
        self.assertTrue(lines[0].startswith('Error: refusing to write to'))
        self.assertEqual('Error: install failed', lines[-1])
        self.assertUntouched()

    def test_refuses_unlisted_device(self):
        other = self.new_disk('other.img')
        rc, lines = self.install(allowed=other)
        self.assertEqual(1, rc)
        self.assertIn('not listed in COREOS_STANDIN_ALLOWED_DEVICES',
                      lines[0])
        self.assertUntouched()

    def test_listed_among_several(self):
        other = self.new_disk('other.img')
        self.assertInstalled(self.install(
            allowed='relative.img:%s:%s' % (other, self.target)))

    def test_refuses_character_device(self):
        rc, lines = self.run_standin('install', '-f', self.xz, '/dev/null',
                                     allowed='/dev/null')
        self.assertEqual(1, rc)
        self.assertTrue(lines[0].startswith(
            'Error: refusing to write to /dev/null: not a block device'))

    def test_refuses_symlink_to_unlisted_target(self):
        link = os.path.join(self.tmp, 'link.img')
        os.symlink('/dev/null', link)
        rc, lines = self.install(allowed=link)
        self.assertEqual(1, rc)
        self.assertIn('refusing', lines[0])

    def test_missing_device(self):
        missing = os.path.join(self.tmp, 'missing.img')
        rc, lines = self.run_standin('install', '-f', self.xz, missing,
                                     allowed=missing)
        self.assertEqual(1, rc)
        self.assertIn('No such file or directory', lines[0])
        self.assertFalse(os.path.exists(missing))

    def test_busy_when_loop_view_of_file_is_mounted(self):
        st = os.stat(self.target)
        with mock.patch.object(installer, '_loop_devices', autospec=True,
                               return_value=[('loop9', self.target)]), \
                mock.patch.object(installer, '_busy', autospec=True,
                                  return_value='/dev/loop9 mounted on /mnt'):
            exc = self.assertRaises(installer.InstallError,
                                    installer.check_not_busy, self.target,
                                    st)
        self.assertIn('found busy partitions', str(exc))
        self.assertIn('/dev/loop9 mounted on /mnt', str(exc))

    def test_not_busy(self):
        st = os.stat(self.target)
        with mock.patch.object(installer, '_loop_devices', autospec=True,
                               return_value=[('loop9', '/elsewhere')]):
            self.assertIsNone(installer.check_not_busy(self.target, st))

    def test_write_wrapper(self):
        bindir = os.path.join(self.tmp, 'bin')
        path = installer.write_wrapper(bindir)
        self.assertEqual(os.path.join(bindir, 'coreos-installer'), path)
        self.assertTrue(os.access(path, os.X_OK))
        env = dict(os.environ, PATH=bindir + ':' + os.environ['PATH'],
                   COREOS_STANDIN_ALLOWED_DEVICES=self.target)
        env.pop(installer.STATE_ENV, None)
        proc = subprocess.run(['coreos-installer', 'install', '-f', self.xz,
                               '-i', self.ign, self.target], env=env,
                              capture_output=True, check=False, cwd='/')
        self.assertEqual(0, proc.returncode, proc.stderr)
        self.assertIsNotNone(disk.inspect_disk(self.target)['ignition'])


class TestLoopDevice(StandinTestCase):
    """The same on a loop device (root only; detaches what it attaches)."""

    def setUp(self):
        super().setUp()
        if os.geteuid() != 0 or not shutil.which('losetup'):
            self.skipTest('loop devices need root and losetup')
        self.backing = self.target
        self.target = self.attach(self.target)

    def attach(self, path, *options):
        proc = subprocess.run(['losetup', '--find', '--show'] + list(options)
                              + [path], capture_output=True, check=False)
        if proc.returncode != 0:
            self.skipTest('cannot attach a loop device: %s'
                          % proc.stderr.decode().strip())
        device = proc.stdout.decode().strip()
        self.addCleanup(subprocess.run, ['losetup', '-d', device],
                        capture_output=True, check=False)
        return device

    def test_install_to_loop_device(self):
        info = self.assertInstalled(self.install('--append-karg', 'a,b'))
        self.assertEqual('a,b', info['kargs'][-1])
        self.assertEqual(0o600, info['ignition_mode'])

    def _mount_boot_view(self, over):
        """Mount the boot partition through an offset loop over ``over``."""
        boot = disk.find_boot(self.target)
        view = self.attach(over, '--offset', str(boot),
                           '--sizelimit', str(16 * MIB))
        mnt = tempfile.mkdtemp(dir=self.tmp)
        proc = subprocess.run(['mount', '-o', 'ro', view, mnt],
                              capture_output=True, check=False)
        if proc.returncode != 0:
            self.skipTest('cannot mount ext4: %s' % proc.stderr.decode())
        self.addCleanup(subprocess.run, ['umount', mnt],
                        capture_output=True, check=False)
        return mnt

    def test_busy_when_partition_view_mounted(self):
        self.assertInstalled(self.install())
        for over in (self.backing, self.target):
            mnt = self._mount_boot_view(over)
            self.assertFailed(self.install(), 'found busy partitions')
            subprocess.run(['umount', mnt], check=True)
        # Refused before opening the device: the install is still there.
        self.assertEqual('boot', disk.inspect_disk(self.target)['labels'][2])


class TestFaultInjection(StandinTestCase):

    def write_faults(self, faults):
        os.makedirs(self.state, exist_ok=True)
        with open(os.path.join(self.state, 'faults.json'), 'w') as f:
            json.dump(faults, f)

    def invocations(self):
        with open(os.path.join(self.state, 'invocations.jsonl')) as f:
            return [json.loads(line) for line in f]

    def test_version_probe_does_not_count(self):
        self.write_faults({'transient': 1})
        rc, _ = self.run_standin('--version')
        self.assertEqual(0, rc)
        self.assertFailed(self.install(), 'connection reset')
        self.assertEqual([None, 1],
                         [r['invocation'] for r in self.invocations()])

    def test_invocations_recorded(self):
        self.assertInstalled(self.install('--append-karg', 'x'))
        records = self.invocations()
        self.assertEqual(1, len(records))
        self.assertEqual(['install', '-f', self.xz, '-i', self.ign,
                          '--append-karg', 'x', self.target],
                         records[0]['argv'])
        self.assertIsInstance(records[0]['pid'], int)
        self.assertEqual(self.target, records[0]['env'][
            installer.ALLOWED_DEVICES_ENV])

    def test_transient(self):
        self.write_faults({'transient': 2})
        for _ in range(2):
            self.assertFailed(self.install(), 'connection reset')
            self.assertWiped()
        self.assertInstalled(self.install())
        self.assertEqual([1, 2, 3],
                         [r['invocation'] for r in self.invocations()])

    def test_permanent(self):
        self.write_faults({'permanent': 'writing to disk: I/O error'})
        for _ in range(2):
            lines = self.assertFailed(self.install(),
                                      'Error: writing to disk: I/O error')
            self.assertEqual('Error: writing to disk: I/O error', lines[-3])
        self.assertWiped()

    def test_permanent_preserve_on_error(self):
        self.assertInstalled(self.install())
        self.write_faults({'permanent': 'boom'})
        self.assertFailed(self.install('--preserve-on-error'), 'boom')
        self.assertIsNotNone(disk.partition_table(self.target))

    def test_hang(self):
        self.write_faults({'hang': 30})
        start = time.monotonic()
        self.assertRaises(subprocess.TimeoutExpired, self.install,
                          timeout=2)
        self.assertGreaterEqual(time.monotonic() - start, 2)
        self.assertEqual(1, len(self.invocations()))

    def test_short_hang_then_completes(self):
        self.write_faults({'hang': 1})
        start = time.monotonic()
        self.assertInstalled(self.install())
        self.assertGreaterEqual(time.monotonic() - start, 1)


class TestDiskTools(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.tmp = _scratch_dir('standin-disk-')
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)

    def test_make_image_layout(self):
        path = disk.make_image(os.path.join(self.tmp, 'i.raw'), size_mib=40)
        self.assertEqual(40 * MIB, os.path.getsize(path))
        info = disk.inspect_disk(path)
        self.assertEqual(['BIOS-BOOT', 'EFI-SYSTEM', 'boot', 'root'],
                         [p['name'] for p in info['partitions']])
        self.assertEqual(MIB, info['partitions'][0]['size'])
        self.assertEqual(['ext4', 'ext4'],
                         [p['fstype'] for p in info['partitions'][2:]])
        self.assertEqual(list(disk.DEFAULT_KARGS), info['kargs'])
        self.assertEqual(disk.FIRSTBOOT_CONTENT.decode(), info['firstboot'])
        self.assertIsNone(info['ignition'])
        # Sparse: far fewer blocks allocated than the apparent size.
        self.assertLess(os.stat(path).st_blocks * 512, 40 * MIB)

    def test_make_image_too_small(self):
        self.assertRaises(ValueError, disk.make_image,
                          os.path.join(self.tmp, 'i.raw'), size_mib=20)

    def test_make_signature(self):
        path = os.path.join(self.tmp, 'blob')
        with open(path, 'wb') as f:
            f.write(b'abc')
        sig = disk.make_signature(path)
        with open(sig) as f:
            match = disk.SIGNATURE_RE.match(f.read())
        self.assertEqual(hashlib.sha256(b'abc').hexdigest(), match.group(1))

    def test_inspect_wiped_disk(self):
        path = os.path.join(self.tmp, 'empty')
        with open(path, 'wb') as f:
            f.truncate(MIB)
        info = disk.inspect_disk(path)
        self.assertIsNone(info['table'])
        self.assertEqual([], info['partitions'])

    def test_debugfs_error_detected(self):
        path = disk.make_image(os.path.join(self.tmp, 'i.raw'), size_mib=40)
        boot = disk.find_boot(path)
        exc = self.assertRaises(disk.DiskError, disk.debugfs, path, boot,
                                'cat /does/not/exist')
        self.assertIn('File not found', str(exc))
        self.assertIsNone(disk.read_file(path, boot, '/does/not/exist'))

    def test_write_and_read_file(self):
        path = disk.make_image(os.path.join(self.tmp, 'i.raw'), size_mib=40)
        boot = disk.find_boot(path)
        disk.make_dir(path, boot, '/d', 0o750)
        disk.write_file(path, boot, '/d/f', b'\0\1binary', 0o640)
        self.assertEqual(b'\0\1binary', disk.read_file(path, boot, '/d/f'))
        self.assertEqual({'f': 0o100640}, disk.list_dir(path, boot, '/d'))
        self.assertEqual(0o040750, disk.stat_mode(path, boot, '/d'))
        self.assertRaises(disk.DiskError, disk.write_file, path, boot,
                          '/d/f', b'x', 0o600)
        disk.fsck(path, boot)

    def test_find_boot_requires_exactly_one(self):
        path = os.path.join(self.tmp, 'none')
        with open(path, 'wb') as f:
            f.truncate(4 * MIB)
        exc = self.assertRaises(disk.DiskError, disk.find_boot, path)
        self.assertIn('found 0', str(exc))

    def test_command_line(self):
        path = os.path.join(self.tmp, 'cli.raw.xz')
        module = 'ironic_coreos.tests.functional.standin.disk'
        subprocess.run([sys.executable, '-m', module, 'make-image', path,
                        '--size-mib', '40', '--compress', 'xz', '--sign'],
                       check=True, capture_output=True)
        self.assertTrue(os.path.exists(path + '.sig'))
        raw = os.path.join(self.tmp, 'cli.raw')
        with lzma.open(path) as fin, open(raw, 'wb') as fout:
            shutil.copyfileobj(fin, fout)
        proc = subprocess.run([sys.executable, '-m', module, 'inspect', raw],
                              check=True, capture_output=True)
        info = json.loads(proc.stdout)
        self.assertEqual(list(disk.DEFAULT_KARGS), info['kargs'])
        self.assertEqual('boot', info['labels'][2])

    def test_labels_by_offset(self):
        path = disk.make_image(os.path.join(self.tmp, 'i.raw'), size_mib=40)
        parts = disk.partitions(path)
        self.assertEqual('boot', disk.probe(path, parts[2]['start'])['LABEL'])
        self.assertTrue(re.match(r'^[0-9a-f-]{36}$',
                                 disk.probe(path, parts[3]['start'])['UUID']))
