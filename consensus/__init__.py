"""The BFT proof-of-authority engine (Tendermint, Algorithm 1 of arXiv 1807.04938).

The core (consensus.core) is a pure state machine: step(state, event) -> (state,
effects). It never awaits, reads a clock, draws randomness or touches storage; the
node's driver turns effects into I/O in the order documented on each effect type.
"""
