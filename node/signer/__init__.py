"""The validator's signer: a process of its own that holds the consensus key and the
record of what it signed, and signs for a node over a Unix socket or mutual TLS
(docs/signer.md)."""
