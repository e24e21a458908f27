#!/bin/bash
# The main job: deploy a simulated CoreOS node through a real Ironic with
# the coreos deploy interface and a real ironic-python-agent, then show what
# was installed and what the first boot produced.
#
# Usage (as root): tools/demo.sh [demo options, see --help]
#                  tools/demo.sh --vm [--timeout S]   (a virtual machine
#                  deployed through Redfish by the VM lab, tox env vmlab)

set -o errexit
set -o nounset
set -o pipefail

TOP_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

"$TOP_DIR/tools/install-deps.sh"
cd "$TOP_DIR"
if [[ ${1:-} == --vm ]]; then
    shift
    exec "$TOP_DIR/.venv/bin/tox" -q exec -e vmlab -- \
        python -m ironic_coreos.tests.functional.vmlab.demo "$@"
fi
exec "$TOP_DIR/.venv/bin/tox" -q -e demo -- "$@"
