#!/bin/bash
# Regenerate upper-constraints.txt: install everything development, tests,
# docs, style checks and CI use into a temporary virtual environment, with
# the two pins this release is tested against (ironic, ironic-python-agent),
# and write what pip resolved.
#
# Usage: tools/update-constraints.sh [OUTPUT]   (default: upper-constraints.txt)
# Review the diff before committing it.

set -o errexit
set -o nounset
set -o pipefail

TOP_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUTPUT=${1:-$TOP_DIR/upper-constraints.txt}
PYTHON=${PYTHON:-python3}
# Never change these two without testing the new versions end to end.
PINS=(ironic==39.0.0 ironic-python-agent==13.0.0)
# The tools of tox.ini's pep8 env and tox itself.
TOOLS=(flake8 hacking ruff bashate doc8 tox)

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

printf '%s\n' "${PINS[@]}" > "$WORK/pins.txt"
"$PYTHON" -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install -q -c "$WORK/pins.txt" \
    "${PINS[@]}" \
    -r "$TOP_DIR/requirements.txt" \
    -r "$TOP_DIR/test-requirements.txt" \
    -r "$TOP_DIR/doc/requirements.txt" \
    "${TOOLS[@]}"

"$WORK/venv/bin/pip" freeze --exclude-editable \
    | grep -v -i -E '^ironic[-_]coreos( |==|@)' \
    | LC_ALL=C sort -f > "$WORK/freeze.txt"
for pin in "${PINS[@]}"; do
    if ! grep -qixF "$pin" "$WORK/freeze.txt"; then
        echo "update-constraints: $pin was not kept" >&2
        exit 1
    fi
done

{
    echo "# Pins for ironic-coreos development, tests and CI" \
        "($("$WORK/venv/bin/python" -c \
            'import sys; print("Python %d.%d" % sys.version_info[:2])'))."
    echo "# Regenerate with tools/update-constraints.sh."
    cat "$WORK/freeze.txt"
} > "$WORK/constraints.txt"
mv "$WORK/constraints.txt" "$OUTPUT"
echo "update-constraints: wrote $(grep -vc '^#' "$OUTPUT") pins to $OUTPUT"
