"""The node's HTTP face: JSON-RPC and WebSocket, health, metrics, operator routes, the explorer."""
