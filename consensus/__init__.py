"""The BFT proof-of-authority engine (Tendermint, Algorithm 1 of arXiv 1807.04938).

The core (consensus.core) is a state machine without I/O: process_event changes it in
place and returns effects, which the node's driver turns into I/O in the order written
on each effect type. consensus.votes counts the votes of a height.
"""
