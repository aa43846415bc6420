#!/usr/bin/env bash
# models/central's tests (scripts/test.sh calls this): creates models/.venv when it is missing,
# installs the pinned requirements and this package (editable) when they changed, runs pytest.
#
# Usage: models/central/test.sh [pytest arguments]     (from anywhere in the repository)
#
# The tests start their own tansu broker (installed by scripts/test.sh, or:
# cargo install tansu --features dynostore,libsql) and run the `lab` tool (built by
# scripts/test.sh, or: cargo build -p edgewatch-lab; EDGEWATCH_LAB names another binary).
# Either missing fails the tests that need it, naming the command. PYTHON picks the
# interpreter that makes the venv (default python3, 3.11 or newer).
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=models/.venv
if [ ! -x "$VENV/bin/python" ]; then
  "${PYTHON:-python3}" -m venv "$VENV"
fi
stamp="$VENV/.edgewatch-central-installed"
want=$(cat models/requirements.txt models/central/requirements.txt models/central/pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    -r models/central/requirements.txt -e models/central
  echo "$want" > "$stamp"
fi
exec "$VENV/bin/python" -m pytest models/central/tests "$@"
