#!/usr/bin/env bash
# Set up everything and run the whole check: lint, format, types, tests (with real tools).
# With CI=true a test that needs a real tool fails instead of skipping when the tool is missing.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
# shellcheck source=scripts/tools.sh
source scripts/tools.sh
trap stop_tools EXIT
if [ "${CI:-}" = "true" ]; then export WATCHDOG_REQUIRE_TOOLS=1; fi

status=0
echo "== ruff check";        .venv/bin/ruff check . || status=1
echo "== ruff format";       .venv/bin/ruff format --check . || status=1
echo "== mypy";              .venv/bin/mypy || status=1
echo "== import contracts";  .venv/bin/lint-imports --no-cache || status=1
echo "== pytest";            .venv/bin/python -m pytest -q -p no:cacheprovider "$@" || status=1
# the wheel a user installs, outside this venv and tree (skipped for a focused local run)
if [ $# -eq 0 ] || [ "${CI:-}" = "true" ]; then
  echo "== install check";   bash scripts/install-check.sh || status=1
fi
exit $status
