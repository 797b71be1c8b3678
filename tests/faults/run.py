"""Run a longer fault campaign and print its counts.

    python -m tests.faults.run --minutes 10 [--seed N] [--dir DIR]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from pathlib import Path

from tests.faults.campaign import Campaign


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=random.randrange(2**32))
    parser.add_argument("--dir", help="devnet folder (default: a new temporary folder)")
    args = parser.parse_args()
    directory = Path(args.dir or tempfile.mkdtemp(prefix="govchain-faults-")) / "devnet"
    print(f"fault campaign: seed {args.seed}, {args.minutes} min, devnet in {directory}",
          flush=True)
    report = Campaign(directory, args.seed, args.minutes * 60).run()
    print(report.summary())
    for violation in report.safety_violations:
        print(f"VIOLATION: {violation}")
    return 1 if report.safety_violations or report.lost else 0


if __name__ == "__main__":
    sys.exit(main())
