"""Recovery genesis: restart a chain that lost its quorum for good from its last state.

An override agreed off-chain by the operators: a new genesis document whose
app_state.recovery carries every state key-value of the last final block of the old
chain. This module writes them verbatim, except the validator set and the chain
parameters, which come from the new genesis document (replacing the lost quorum is
the point). Procedure and tooling: docs/ledger.md, node/recovery.py.
"""

from __future__ import annotations

from collections.abc import Mapping

from chain.genesis import Genesis
from ledger.errors import InvalidGenesisStateError
from ledger.interface import TxHandler
from ledger.keys import CHAIN_PARAMS_KEY, VALIDATOR_SET_BASE_KEY, VALIDATOR_SET_KEY
from ledger.state import Overlay

RECOVERY_FIELDS = frozenset({"chain_id", "height", "block_hash", "state_root", "state"})
REPLACED_KEYS = frozenset({VALIDATOR_SET_KEY, CHAIN_PARAMS_KEY, VALIDATOR_SET_BASE_KEY})
"""Keys the new genesis document decides; the snapshot's values for them are dropped."""


class RecoveryModule:
    """Seeds the whole state from a snapshot of another chain's last final block."""

    name = "recovery"
    tx_types: Mapping[str, TxHandler] = {}

    def apply_genesis(self, view: Overlay, genesis: Genesis) -> None:
        settings = genesis.app_state.get(self.name)
        if settings is None:
            return
        others = sorted(name for name, value in genesis.app_state.items()
                        if name != self.name and value)
        if others or genesis.accounts:
            raise InvalidGenesisStateError(
                f"a recovery genesis carries its whole state in app_state.recovery; it may "
                f"not also list accounts or {others}")
        if not isinstance(settings, dict) or set(settings) != RECOVERY_FIELDS:
            raise InvalidGenesisStateError(
                f"app_state.recovery needs exactly {sorted(RECOVERY_FIELDS)}")
        previous = b""
        for item in settings["state"]:
            try:
                key, value = bytes.fromhex(item[0]), bytes.fromhex(item[1])
            except (TypeError, ValueError, IndexError) as e:
                raise InvalidGenesisStateError(f"recovery state entry {item!r}: {e}") from e
            if key <= previous:
                raise InvalidGenesisStateError("recovery state keys must be sorted and unique")
            previous = key
            if key not in REPLACED_KEYS:
                view.put(key, value)
