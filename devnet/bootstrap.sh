#!/usr/bin/env bash
# Creates (or refreshes) the project's virtualenv in .venv and installs govchain into it
# with its development extras. Sourced by devnet/up.sh and tests/run.sh; safe to re-run:
# it reinstalls only when pyproject.toml changed since the last install.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${GOVCHAIN_VENV:-$ROOT/.venv}"
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      PY="$candidate"; break
    fi
  done
fi
[ -n "$PY" ] || { echo "govchain needs Python 3.11 or newer on PATH" >&2; exit 1; }
if [ ! -x "$VENV/bin/python" ]; then
  echo "Creating the virtualenv in $VENV ..." >&2
  "$PY" -m venv "$VENV"
fi
STAMP="$VENV/.govchain-installed"
if [ ! -f "$STAMP" ] || [ "$ROOT/pyproject.toml" -nt "$STAMP" ]; then
  echo "Installing govchain and its dependencies into $VENV ..." >&2
  "$VENV/bin/python" -m pip install --quiet --upgrade pip >&2
  "$VENV/bin/python" -m pip install --quiet -e "$ROOT[dev]" >&2
  touch "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
