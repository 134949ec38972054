#!/usr/bin/env bash
# One command from a fresh clone to the whole test suite: set up, Chromium for the
# browser tests (when root and apt-get exist; otherwise those tests skip and say why),
# then pytest. Extra arguments go to pytest (e.g. -m "not slow").
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# the grid's engines too (Ray, submitit), so their tests run for real instead of skipping
HARNESS_EXTRAS="clip,lm,test,ray,slurm" bash scripts/setup.sh
if { ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; } &&
    command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null
fi
# shellcheck disable=SC1091
. .venv/bin/activate
python -m pytest -q "$@"
