"""The govchain node process: config, keys, mempool, RPC, the consensus driver, the CLI.

node/ wires the lower layers together and owns every socket, clock and thread; the
layers below stay pure or storage-only. One driver task owns the chain state; RPC and
p2p handlers decode, check and enqueue, and never mutate state themselves.
"""

__version__ = "0.1.0"
