"""The JSON-RPC methods (chain, ledger, admin) and the specs that describe them."""
