"""govchain's ledger: the deterministic state machine that applies transactions to state.

Pure over a key-value view (ledger.state): no I/O, no asyncio, no clock, no floats,
and no iteration order that depends on hashing. Imports only the chain layer.
"""
