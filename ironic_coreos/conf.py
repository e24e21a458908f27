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

"""Options of ironic-coreos, in the ``[coreos]`` group.

The same group is read by the conductor (from ironic.conf) and by the agent
(from the ironic-python-agent configuration files); each side uses the
options that concern it.
"""

from oslo_config import cfg

from ironic_coreos.engine import spec

GROUP = 'coreos'

common_opts = [
    cfg.StrOpt('max_ignition_version',
               default=spec.NEWEST_VERSION,
               choices=spec.STABLE_VERSIONS,
               help='Newest Ignition spec version the installed CoreOS '
                    'release accepts. Configs declaring a newer version are '
                    'rejected before anything is installed. Older RHEL '
                    'CoreOS releases stop at 3.3.0 or 3.4.0.'),
    cfg.BoolOpt('fail_on_ignition_warnings',
                default=False,
                help='Treat Ignition validation warnings (for example a '
                     'mode that looks like a decimal spelling of an octal '
                     'mode) as errors.'),
    cfg.IntOpt('configdrive_fetch_timeout',
               default=60, min=1,
               help='Timeout in seconds when the config drive is given as '
                    'a URL.'),
    cfg.StrOpt('ssh_user',
               default='core',
               help='User that receives the SSH keys of the config drive '
                    'meta_data (public_keys) in the Ignition config. Read '
                    'by the conductor (coreos deploy interface) and by the '
                    'agent (install_coreos reading the config drive itself, '
                    'as with custom-agent and Metal3).'),
    cfg.BoolOpt('convert_network_data',
                default=True,
                help='Convert the config drive network_data (on the '
                     'conductor also the one Ironic generates from the '
                     'ports) into NetworkManager keyfiles in the Ignition '
                     'config. Read by the conductor and by the agent; when '
                     'false, network_data is not used and this is logged.'),
    cfg.BoolOpt('set_hostname',
                default=True,
                help='Write /etc/hostname from the config drive meta_data '
                     '(hostname, else local-hostname, local_hostname, '
                     'name) unless the Ignition config writes /etc/hostname '
                     'itself. Read by the conductor and by the agent; when '
                     'false, the host name is not used and this is '
                     'logged.'),
]

agent_opts = [
    cfg.StrOpt('host_root',
               default='/mnt/coreos',
               help='Where the root of the CoreOS live system is visible to '
                    'the agent. The agent container bind-mounts it at '
                    '/mnt/coreos; use / for an agent running on the live '
                    'system itself.'),
    cfg.StrOpt('installer',
               default='coreos-installer',
               help='The coreos-installer command, run with chroot inside '
                    'the host root.'),
    cfg.StrOpt('work_dir',
               default='/run/ironic-coreos',
               help='Directory inside the host root where the Ignition '
                    'config is written (mode 0600) for the installer. '
                    'Removed after every install.'),
    cfg.IntOpt('install_attempts',
               default=3, min=1,
               help='How many times an install that failed for a reason '
                    'that can be transient (an image or signature fetch) '
                    'is attempted in total. Other failures are not '
                    'retried.'),
    cfg.IntOpt('install_timeout',
               default=7200, min=0,
               help='Seconds one run of the installer may take before it '
                    'is stopped and the install fails (0: no limit). A '
                    'stalled image download otherwise blocks the deploy '
                    'for ever, since the agent keeps heartbeating.'),
    cfg.IntOpt('install_retry_delay',
               default=10, min=0,
               help='Seconds to wait between two install attempts.'),
    cfg.IntOpt('efi_attempts',
               default=3, min=1,
               help='How many times setting the UEFI boot entry of the '
                    'installed system is attempted (some firmware fails '
                    'the first write to its NVRAM).'),
    cfg.IntOpt('progress_report_interval',
               default=10, min=0,
               help='While coreos-installer writes the image, ask for a '
                    'heartbeat at most this often (seconds) when its '
                    'progress changed, so that the conductor publishes the '
                    'progress without waiting for the next regular '
                    'heartbeat. 0: progress reaches the conductor with the '
                    'regular heartbeats only.'),
]

conductor_opts = [
    cfg.IntOpt('install_stall_timeout',
               default=0, min=0,
               help='Fail a deployment whose install_coreos step has made '
                    'no progress (no new bytes read, no new phase) for '
                    'this many seconds, as seen on the agent\'s '
                    'heartbeats, instead of waiting for the whole deploy '
                    'timeout. 0 (the default): off. The agent reports '
                    'progress only while coreos-installer prints it.'),
    cfg.StrOpt('default_platform',
               default='metal',
               help='Ignition platform id of the installed system.'),
    cfg.ListOpt('default_append_kargs',
                default=[],
                help='Kernel arguments appended to every installed system '
                     '(one argument per list item), before those of the '
                     'node and of the deploy step.'),
]

vmedia_opts = [
    cfg.StrOpt('live_iso',
               help='URL (http://, https://, file://) or Glance image of '
                    'the stock CoreOS live ISO the coreos-*-virtual-media '
                    'boot interfaces customise per node, for nodes whose '
                    'driver_info has no deploy_iso (redfish_deploy_iso). '
                    'Fetched once and cached (by URL and checksum) in '
                    'live_iso_master_path.'),
    cfg.StrOpt('live_iso_checksum',
               help='Checksum of live_iso, "sha256:HEX" or "sha512:HEX" '
                    '(a bare HEX is read by its length). Checked when the '
                    'ISO is downloaded; part of the cache key. A node\'s '
                    'driver_info/coreos_live_iso_checksum is used for its '
                    'own ISO instead.'),
    cfg.StrOpt('live_agent_image',
               help='Container image of ironic-python-agent with '
                    'ironic-coreos[agent] that the live system runs '
                    '(tools/build-agent-image.sh builds it), e.g. '
                    '192.0.2.1:5000/ironic-coreos-agent:TAG. Required by '
                    'the coreos-*-virtual-media boot interfaces unless the '
                    'node\'s driver_info/coreos_agent_image is set.'),
    cfg.ListOpt('live_agent_options',
                default=[],
                help='Options of the agent on the live system, each '
                     '[SECTION.]NAME=VALUE (DEFAULT when no section), '
                     'written into its configuration file in the per-node '
                     'ISO. A node\'s driver_info/coreos_agent_options '
                     '(a JSON object of the same keys) overrides them.'),
    cfg.ListOpt('live_insecure_registries',
                default=[],
                help='Registries (HOST[:PORT]) from which the live system '
                     'of the coreos-*-virtual-media boot interfaces pulls '
                     'the agent image without TLS verification (plain '
                     'HTTP is allowed), e.g. a registry on the provisioning '
                     'network without a certificate.'),
    cfg.StrOpt('live_ssh_keys_file',
               help='File of SSH public keys (one per line, # for '
                    'comments) that the coreos-*-virtual-media boot '
                    'interfaces authorize for the user core of the live '
                    'system, for debugging. Unset: no SSH login.'),
    cfg.StrOpt('live_iso_master_path',
               default='/var/lib/ironic/master_coreos_live_isos',
               help='Directory where the stock CoreOS live ISOs are cached '
                    'on the conductor, shared by all nodes. Size and age '
                    'limits are those of Ironic\'s ISO cache '
                    '([deploy]iso_cache_size, iso_cache_ttl).'),
    cfg.IntOpt('live_iso_file_permission',
               default=0o640,
               help='Mode of the per-node live ISOs in [deploy]http_root '
                    '(they hold the agent configuration), as an octal '
                    'number such as 0o640. Bits for "others" are refused.'),
    cfg.StrOpt('live_iso_file_group',
               help='Group of the per-node live ISOs, so that the HTTP '
                    'server serving [deploy]http_root (and only it, besides '
                    'the conductor) can read them, e.g. www-data. Unset: '
                    'the group the file system gives (run the HTTP server '
                    'as the conductor\'s user or group then).'),
]


def register_opts(conf):
    conf.register_opts(common_opts, group=GROUP)
    conf.register_opts(agent_opts, group=GROUP)
    conf.register_opts(conductor_opts, group=GROUP)
    conf.register_opts(vmedia_opts, group=GROUP)


def list_opts():
    """Return the options for oslo-config-generator."""
    return [(GROUP, common_opts + agent_opts + conductor_opts
             + vmedia_opts)]


CONF = cfg.CONF
register_opts(CONF)
