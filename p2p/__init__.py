"""govchain p2p: authenticated WebSocket links between nodes, gossip, requests, peers.

A transport only: it never decodes or validates chain objects; the node plugs in
handlers that decide. Imports chain/ only.
"""
