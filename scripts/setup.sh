#!/usr/bin/env bash
# Set up a virtual environment in .venv with torch and the harness (idempotent).
# Sourced by quickstart.sh and test.sh; `bash scripts/setup.sh` alone just sets up.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON="${PYTHON:-python3}"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || {
    echo "error: Python 3.10 or newer is needed ($PYTHON is $("$PYTHON" --version 2>&1)); set PYTHON=..." >&2
    exit 2
}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# shellcheck disable=SC1091
. .venv/bin/activate
# torch first, pinned: a range would let pip pick a multi-GB CUDA build from the index
python -c 'import torch, torchvision; assert torch.__version__.startswith("2.14.1")' 2>/dev/null ||
    pip install --quiet torch==2.14.1 torchvision==0.29.1
pip install --quiet -e ".[clip,test]"
