"""govchain primitives: hashes, keys, canonical encoding, transactions, blocks, votes.

Pure code: no I/O, no asyncio, no clocks. Everything above builds on these types.
"""
