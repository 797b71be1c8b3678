"""`python -m cli` is the govchain CLI (the same as the `govchain` command)."""

from cli.main import main

raise SystemExit(main())
