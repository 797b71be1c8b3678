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
# Two workers: the multi-process tests (marked slow) run one at a time on one of them
# (tests/conftest.py), the in-process tests share both. GOVCHAIN_TEST_WORKERS=0 runs
# everything in this process.
echo "== pytest"; exec python -m pytest -q -n "${GOVCHAIN_TEST_WORKERS:-2}" --dist loadgroup "$@"
