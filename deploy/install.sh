#!/bin/sh
# Install a govchain node: the steps of docs/operator.md, "1. Install", as one script.
#
#   sudo deploy/install.sh GENESIS [govchain init flags...]
#   e.g. sudo deploy/install.sh genesis.json --moniker ministry-of-justice \
#            --p2p-listen 0.0.0.0:26656 --peer node1.example.gov:26656
#
# The flags after GENESIS go to `govchain init` (--validator-key, --expect-genesis-hash,
# --rpc-listen, --peer, ...). GOVCHAIN_ROOT=/tmp/x puts every path below that prefix
# (/tmp/x/etc/govchain, /tmp/x/var/lib/govchain, ...); under a prefix, or when not run
# as root, the steps that change the system itself (service user, chown, systemctl)
# are skipped and say so. GOVCHAIN_VENV names an existing virtualenv that holds
# govchain instead of /opt/govchain/venv (tests, images).
set -eu

if [ $# -lt 1 ]; then
    echo "usage: [GOVCHAIN_ROOT=DIR] $0 GENESIS [govchain init flags...]" >&2
    exit 2
fi
GENESIS=$1
shift
ROOT=${GOVCHAIN_ROOT:-}
SOURCE=$(cd "$(dirname "$0")/.." && pwd)
VENV=${GOVCHAIN_VENV:-$ROOT/opt/govchain/venv}
ETC=$ROOT/etc/govchain
HOME_DIR=$ROOT/var/lib/govchain
if [ -z "$ROOT" ] && [ "$(id -u)" = 0 ]; then SYSTEM=yes; else SYSTEM=; fi

as_root() {  # a step on the system itself: only as root and without a prefix
    if [ -n "$SYSTEM" ]; then "$@"; else echo "skipped (needs root, no prefix): $*" >&2; fi
}

ensure_user() {  # the service user runs the node; it has no shell and no PATH of its own
    id -u govchain >/dev/null 2>&1 ||
        useradd --system --home /var/lib/govchain --shell /usr/sbin/nologin govchain
}

# --- the steps (docs/operator.md shows them; tests/operator/test_install.py runs them)
as_root ensure_user
[ -x "$VENV/bin/govchain" ] || { python3 -m venv "$VENV" && "$VENV/bin/pip" install "$SOURCE"; }
install -d -m 0755 "$ROOT/usr/local/bin"
ln -sfn "$VENV/bin/govchain" "$ROOT/usr/local/bin/govchain"
install -d -m 0700 "$ETC"
[ -s "$ETC/passphrase" ] || (umask 077 && openssl rand -base64 32 > "$ETC/passphrase")
chmod 0400 "$ETC/passphrase"
install -d -m 0700 "$HOME_DIR"
"$VENV/bin/govchain" init --home "$HOME_DIR" --genesis "$GENESIS" --passphrase-file "$ETC/passphrase" "$@"
as_root chown -R govchain:govchain "$HOME_DIR"
install -d -m 0755 "$ROOT/etc/systemd/system"
install -m 0644 "$SOURCE/deploy/govchain.service" "$ROOT/etc/systemd/system/govchain.service"
as_root systemctl daemon-reload
# --- end of the steps

echo "installed; start the node with: systemctl enable --now govchain" >&2
