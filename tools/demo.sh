#!/bin/bash
# The main job: deploy a simulated CoreOS node through a real Ironic with
# the coreos deploy interface and a real ironic-python-agent, then show what
# was installed and what the first boot produced.
#
# Usage (as root): tools/demo.sh [demo options, see --help]

set -o errexit
set -o nounset
set -o pipefail

TOP_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

"$TOP_DIR/tools/install-deps.sh"
cd "$TOP_DIR"
exec "$TOP_DIR/.venv/bin/tox" -q -e demo -- "$@"
