#!/usr/bin/env bash
# Run the test suite from ./.venv. Extra arguments go to pytest.
# pytest exits 5 when it collects no test: that is a failure here, never a silent pass.
set -uo pipefail
cd "$(dirname "$0")/.."
venv="${VIDORA_VENV:-.venv}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
"$venv/bin/python" -m pytest "$@"
rc=$?
if [ "$rc" = "5" ]; then
    echo "test.sh: pytest collected no tests" >&2
fi
exit $rc
