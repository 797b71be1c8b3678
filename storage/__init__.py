"""govchain durable storage: key-value layer, schema, authenticated state tree, chain store.

Everything a node writes to disk goes through this package, one atomic batch per
block. It never executes transactions or judges consensus: it stores what the
ledger and consensus hand it, and refuses only what would break its invariants.
"""
