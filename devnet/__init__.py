"""Local multi-node govchain networks for developers and tests.

devnet starts, watches and stops `govchain run` processes and a link proxy between
them. It talks to nodes only through the `govchain` CLI and their JSON-RPC: it must
never import node/, storage/, consensus/ or p2p/.
"""
