"""Run many simulation seeds and print the count of violations.

Usage: python -m tests.simulation.run --seeds 10000 [--start 0] [--n 4]
SIM_SEED=<seed> replays one seed and prints its failure, trace included. Each seed
runs real nodes (tests/simulation/sim.py): about a tenth of a second of one core.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from tests.simulation.sim import SimulationFailure, run_seed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=1000, help="how many seeds to run")
    parser.add_argument("--start", type=int, default=0, help="first seed")
    parser.add_argument("--n", type=int, default=4, help="validators (4 to 7)")
    args = parser.parse_args(argv)
    replay = os.environ.get("SIM_SEED")
    seeds = [int(replay)] if replay else range(args.start, args.start + args.seeds)
    started = time.monotonic()
    failed: list[int] = []
    for seed in seeds:
        try:
            run_seed(seed, n=args.n)
        except SimulationFailure as e:
            failed.append(seed)
            print(str(e) if replay else str(e).splitlines()[0], flush=True)
    elapsed = time.monotonic() - started
    print(f"{len(seeds)} seeds, {len(failed)} violations, {elapsed:.1f} s"
          + (f"; failing seeds: {failed[:20]}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
