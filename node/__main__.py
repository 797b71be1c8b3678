"""`python -m node` is the govchain CLI (the same as the `govchain` command)."""

from node.cli import main

raise SystemExit(main())
