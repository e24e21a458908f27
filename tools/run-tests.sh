#!/bin/bash
# The test command: installs what is missing, then runs the style checks,
# the unit tests and the end-to-end tests (real Ironic, real agents).
#
# Usage (as root): tools/run-tests.sh [TOX_ENVS]
# TOX_ENVS defaults to pep8,docs,py3,functional, plus vmlab (virtual
# machines deployed through Redfish with the CoreOS-alike live system; a
# machine that cannot run them fails naming what is missing) when
# IRONIC_COREOS_VMLAB=1. IRONIC_COREOS_VMLAB_TESTS (a regular expression of
# test ids) runs only those VM tests. With IRONIC_COREOS_REQUIRE_ALL=1
# (.ci/run sets it) a skipped test fails the run.

set -o errexit
set -o nounset
set -o pipefail

TOP_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEFAULT_ENVS=pep8,docs,py3,functional
if [[ ${IRONIC_COREOS_VMLAB:-0} == 1 ]]; then
    DEFAULT_ENVS+=,vmlab
fi
ENVS=${1:-$DEFAULT_ENVS}

"$TOP_DIR/tools/install-deps.sh"
cd "$TOP_DIR"
if [[ ,$ENVS, == *,functional,* || ,$ENVS, == *,vmlab,* ]]; then
    # The agent image the functional tests and the VMs run (cached by its
    # inputs).
    nice -n 10 "$TOP_DIR/tools/build-agent-image.sh" >/dev/null
fi
if [[ ,$ENVS, == *,vmlab,* ]]; then
    # The VMs' live system and installed image (cached by its inputs).
    nice -n 10 "$TOP_DIR/tools/build-live-system.sh" >/dev/null
fi
if [[ ,$ENVS, != *,vmlab,* ]]; then
    exec "$TOP_DIR/.venv/bin/tox" -e "$ENVS"
fi
# The VMs last, on their own (they take the machine's cores), with the
# test selection as stestr's filter.
OTHER_ENVS=$(tr , '\n' <<<"$ENVS" | grep -vx vmlab | paste -sd, -)
if [[ -n $OTHER_ENVS ]]; then
    "$TOP_DIR/.venv/bin/tox" -e "$OTHER_ENVS"
fi
VMLAB_ARGS=()
if [[ -n ${IRONIC_COREOS_VMLAB_TESTS:-} ]]; then
    VMLAB_ARGS=(-- "$IRONIC_COREOS_VMLAB_TESTS")
fi
exec "$TOP_DIR/.venv/bin/tox" -e vmlab "${VMLAB_ARGS[@]}"
