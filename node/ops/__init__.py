"""Operator work on a stopped node's data: audit and replay, export and import, recovery."""
