#!/usr/bin/env bash
# The README's second command: the whole test suite, with lint, types and the layer
# contract (sets up .venv if needed). Extra arguments go to pytest, e.g. -m "not slow".
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/devnet/bootstrap.sh"
cd "$ROOT"
echo "== ruff"; ruff check .
echo "== mypy"; mypy
echo "== import contracts"; lint-imports
# Two workers: the tests of a file stay on one worker, and the multi-process (slow)
# ones take turns (tests/conftest.py). GOVCHAIN_TEST_WORKERS=0 runs all in one process.
echo "== pytest"; exec python -m pytest -q -n "${GOVCHAIN_TEST_WORKERS:-2}" --dist loadfile "$@"
