"""The govchain node process: the driver that owns the chain state, mempool, gossip and sync.

node/ wires the lower layers together and owns every socket, clock and thread; the
layers below stay pure or storage-only. One driver task owns the chain state; p2p and
RPC handlers decode, check and enqueue, and never mutate state themselves.
"""

__version__ = "0.1.0"
