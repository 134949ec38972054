#!/usr/bin/env bash
# One command from a fresh clone to a first result: set up, then run TIES on mini8.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. .venv/bin/activate
harness eval --method ties --tasks mini8 "$@"
echo "next: . .venv/bin/activate && harness --help"
