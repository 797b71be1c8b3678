"""Run one fuzz target: `python -m tests.fuzz.run <target> --seconds N`.

With atheris installed (in the `dev` extra, Linux) the run is coverage-guided by libFuzzer:
it starts from the seeds and tests/fuzz/corpus/<target>/ and adds to that directory
every input that reached new code. Without atheris it mutates the corpus at random.
Either way it prints the inputs executed; a failing input is saved as
crash-<sha256> in the current directory and the command exits non-zero.

    python -m tests.fuzz.run tx --seconds 60
    python -m tests.fuzz.run all --seconds 30      # each target in turn
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MAX_LEN = 4096


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _run_atheris(name: str, seconds: int) -> int:
    import atheris

    with atheris.instrument_imports(include=["chain", "p2p", "node", "ledger", "storage"]):
        from tests.fuzz.targets import TARGETS, corpus_dir

    target = TARGETS[name]
    directory = corpus_dir(name)
    directory.mkdir(parents=True, exist_ok=True)
    seeds = Path(tempfile.mkdtemp(prefix=f"govchain-fuzz-seeds-{name}-"))
    for seed in target.seeds():
        (seeds / hashlib.sha256(seed).hexdigest()[:16]).write_bytes(seed)
    def test_one_input(data: bytes) -> None:
        target.check(data)

    # libFuzzer ends the process itself; its final "stat::number_of_executed_units"
    # line is the count of inputs executed.
    print(f"fuzz {name}: atheris, coverage-guided, {seconds} s; corpus {directory}",
          flush=True)
    atheris.Setup([sys.argv[0], str(directory), str(seeds), f"-max_total_time={seconds}",
                   f"-max_len={MAX_LEN}", "-timeout=5", "-rss_limit_mb=2048",
                   "-print_final_stats=1"], test_one_input)
    atheris.Fuzz()
    return 0


def _mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        choice = rng.randrange(4)
        if choice == 0 and buf:
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        elif choice == 1 and buf:
            del buf[rng.randrange(len(buf))]
        elif choice == 2:
            buf.insert(rng.randrange(len(buf) + 1), rng.randrange(256))
        elif buf:
            i = rng.randrange(len(buf))
            buf[i:i] = buf[i:i + rng.randint(1, 32)]
    return bytes(buf[:MAX_LEN])


def _run_random(name: str, seconds: int) -> int:
    from tests.fuzz.targets import TARGETS, corpus

    target = TARGETS[name]
    inputs = corpus(name)
    rng = random.Random(int(os.environ.get("FUZZ_SEED", "0")) or None)
    executed = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        data = _mutate(rng, rng.choice(inputs))
        try:
            target.check(data)
        except BaseException:
            crash = Path(f"crash-{hashlib.sha256(data).hexdigest()}")
            crash.write_bytes(data)
            print(f"fuzz {name}: input {crash} fails", flush=True)
            raise
        executed += 1
    print(f"fuzz {name}: {executed} inputs executed in {seconds} s (random mutation; "
          f"install atheris for coverage guidance), max RSS {_rss_mib():.0f} MiB")
    return 0


TARGET_NAMES = ("tx", "block", "vote", "proposal", "certificate", "frame", "rpc")


def main() -> int:
    # The targets are imported only inside atheris's instrumentation, so not here.
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz.run")
    parser.add_argument("target", choices=[*TARGET_NAMES, "all"])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--random", action="store_true", help="do not use atheris")
    args = parser.parse_args()
    if args.target == "all":
        # One process per target: libFuzzer runs one target per process.
        status = 0
        for name in TARGET_NAMES:
            command = [sys.executable, "-m", "tests.fuzz.run", name,
                       "--seconds", str(args.seconds)] + (["--random"] if args.random else [])
            status |= subprocess.run(command, check=False).returncode
        return status
    try:
        import atheris  # noqa: F401
    except ImportError:
        args.random = True
    if args.random:
        return _run_random(args.target, args.seconds)
    return _run_atheris(args.target, args.seconds)


if __name__ == "__main__":
    sys.exit(main())
