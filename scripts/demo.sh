#!/usr/bin/env bash
# Set up a virtualenv and run the embedded demo: `watchdog demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/watchdog demo "$@"
