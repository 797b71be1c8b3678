"""The `govchain` command: every subcommand, and the assembly of one node process (service)."""
