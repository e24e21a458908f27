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

"""Simulated hardware for ironic-python-agent processes in end-to-end tests.

Loaded *inside* the agent process (never by the test runner): the harness
generates a ``*.dist-info`` with an ``ironic_python_agent.hardware_managers``
entry point in a per-run site directory on the agent's ``PYTHONPATH``.
The agent's view of the machine is described by a JSON file named in the
environment variable ``IRONIC_COREOS_SIMHW`` (see :mod:`.manager`).
"""
