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


"""Tests of the devstack plugin's post-config phase."""

import os
import subprocess

import fixtures
import testtools

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..',
                                   '..'))

# Minimal stand-ins for the devstack functions the plugin calls; iniset and
# iniget keep values in a flat file of "section option value" lines.
STUBS = r'''
function echo_summary { :; }
function setup_develop { echo "setup_develop $1" >> "$CALLS"; }
function iniget {
    awk -v s="$2" -v o="$3" '$1==s && $2==o {print $3}' "$1" | tail -n 1
}
function iniset { echo "$2 $3 $4" >> "$1"; }
'''


class TestDevstackPlugin(testtools.TestCase):

    def _run(self, phase, ini_lines, extra_env=None):
        tmp = self.useFixture(fixtures.TempDir()).path
        conf = os.path.join(tmp, 'ironic.conf')
        calls = os.path.join(tmp, 'calls')
        with open(conf, 'w') as f:
            f.write(''.join(line + '\n' for line in ini_lines))
        script = (STUBS + 'source %s/devstack/settings\n'
                  'source %s/devstack/plugin.sh stack %s\n'
                  % (TOP, TOP, phase))
        env = {'PATH': os.environ['PATH'], 'IRONIC_CONF_FILE': conf,
               'CALLS': calls, 'DEST': '/opt/stack'}
        env.update(extra_env or {})
        # NOTE: the plugin uses define_plugin/plugin_requires from settings.
        script = ('function define_plugin { :; }\n'
                  'function plugin_requires { :; }\n' + script)
        subprocess.run(['bash', '-c', script], env=env, check=True,
                       capture_output=True)
        values = {}
        with open(conf) as f:
            for line in f:
                section, option, value = line.split()
                values[(section, option)] = value
        called = open(calls).read() if os.path.exists(calls) else ''
        return values, called

    def test_post_config_appends_interfaces_once(self):
        values, _ = self._run('post-config', [
            'DEFAULT enabled_deploy_interfaces direct,custom-agent',
            'DEFAULT enabled_hardware_types ipmi',
        ])
        self.assertEqual('direct,custom-agent,coreos',
                         values[('DEFAULT', 'enabled_deploy_interfaces')])
        self.assertEqual('ipmi,coreos-ipmi,coreos-redfish',
                         values[('DEFAULT', 'enabled_hardware_types')])
        self.assertNotIn(('coreos', 'max_ignition_version'), values)

    def test_post_config_sets_max_ignition_version(self):
        values, _ = self._run(
            'post-config', ['DEFAULT enabled_deploy_interfaces direct'],
            {'IRONIC_COREOS_MAX_IGNITION_VERSION': '3.4.0'})
        self.assertEqual('3.4.0', values[('coreos', 'max_ignition_version')])
        self.assertEqual('direct,custom-agent,coreos',
                         values[('DEFAULT', 'enabled_deploy_interfaces')])

    def test_install_develops_the_package(self):
        _, called = self._run('install', [])
        self.assertEqual('setup_develop /opt/stack/ironic-coreos\n', called)
