#!/bin/bash
# The test command: installs what is missing, then runs the style checks,
# the unit tests and the end-to-end tests (real Ironic, real agents).
#
# Usage (as root): tools/run-tests.sh [TOX_ENVS]
# TOX_ENVS defaults to pep8,docs,py3,functional. With
# IRONIC_COREOS_REQUIRE_ALL=1 (.ci/run sets it) a skipped test fails the run.

set -o errexit
set -o nounset
set -o pipefail

TOP_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ENVS=${1:-pep8,docs,py3,functional}

"$TOP_DIR/tools/install-deps.sh"
cd "$TOP_DIR"
if [[ ,$ENVS, == *,functional,* ]]; then
    # The agent image the functional tests run (cached by its inputs).
    "$TOP_DIR/tools/build-agent-image.sh" >/dev/null
fi
exec "$TOP_DIR/.venv/bin/tox" -e "$ENVS"
