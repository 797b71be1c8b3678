#!/usr/bin/env bash
# The README's first command: start a local 4-validator devnet (sets up .venv if needed).
# Extra arguments go to `govchain devnet up`, e.g. --detach or --dir DIR.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/devnet/bootstrap.sh"
cd "$ROOT"
exec govchain devnet up --nodes 4 "$@"
