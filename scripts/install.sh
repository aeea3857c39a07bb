#!/usr/bin/env bash
# Install Vidora into ./.venv on a fresh machine.
#   scripts/install.sh          the package (what `vidora generate` needs)
#   scripts/install.sh dev      plus training, server and test tools, and the system
#                               packages the tests drive (PostgreSQL, Chromium)
# The CPU build of PyTorch is pinned and installed first: an unpinned `torch` from PyPI
# pulls several GB of CUDA libraries that a CPU machine never uses.
set -euo pipefail
cd "$(dirname "$0")/.."

extras="${1:-}"
venv="${VIDORA_VENV:-.venv}"
torch_version="${VIDORA_TORCH:-2.13.0}"

if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip
fi
pip=("$venv/bin/pip" install --quiet --disable-pip-version-check)

if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
    echo "==> installing torch==$torch_version (CPU)"
    "${pip[@]}" "torch==$torch_version"
fi

if [ "$extras" = "dev" ]; then
    echo "==> installing vidora[dev]"
    "${pip[@]}" -e ".[dev]"
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
        need=()
        command -v pg_ctlcluster >/dev/null || [ -d /usr/lib/postgresql ] || need+=(postgresql)
        [ -x /usr/bin/chromium ] || need+=(chromium)
        if [ ${#need[@]} -gt 0 ]; then
            echo "==> apt-get install ${need[*]}"
            export DEBIAN_FRONTEND=noninteractive
            apt-get update -qq
            apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
        fi
    fi
else
    echo "==> installing vidora"
    "${pip[@]}" -e .
fi
echo "==> ready: $venv/bin/vidora"
