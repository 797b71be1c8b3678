"""Signing latency and throughput through `govchain signer`, against signing in-process.

    python -m bench.bench_signer [--count 2000] [--state-dir DIR]

Starts one signer process per back end (encrypted key file on a Unix socket, the same
over TCP with mutual TLS, and a SoftHSM2 token on a Unix socket when softhsm2 is
installed), asks it for `count` precommits one after the other (each a new height, so
each is checked, fsynced and signed), and prints p50/p99 latency per signature and the
rate. The sign state is fsynced on every signature: put --state-dir on the disk the
signer will really use.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from chain.crypto import Hash32, KeyPair, compute_hash
from chain.vote import Vote, VoteKind
from node.keystore import write_encrypted_key_file
from node.signer.client import build_client_tls
from node.signer.protocol import FRAME_HEADER, SIGN, Request, Response, SignRequest, SignStep
from node.signer.server import ListenAddress
from node.tls import create_self_signed_certificate

ROOT = Path(__file__).resolve().parent.parent
CHAIN_ID = "govchain-bench"
KEY = KeyPair.from_seed(b"\x42" * 32)
SOFTHSM = "/usr/lib/softhsm/libsofthsm2.so"


def start_signer(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    process = subprocess.Popen([sys.executable, "-m", "cli", "signer", *args], cwd=ROOT,
                               env={**env, "PYTHONPATH": str(ROOT)}, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("signer ready"):
        process.kill()
        raise SystemExit(f"the signer did not start: {line!r}")
    return process


async def measure(address: ListenAddress, count: int,
                  tls: ssl.SSLContext | None) -> list[float]:
    if address.unix_path:
        reader, writer = await asyncio.open_unix_connection(address.unix_path)
    else:
        reader, writer = await asyncio.open_connection(address.host, address.port, ssl=tls)
    latencies = []
    block = Hash32(compute_hash(b"bench"))
    try:
        for height in range(1, count + 1):
            frame = Request(height, SIGN, SignRequest(CHAIN_ID, SignStep.PRECOMMIT, height, 0,
                                                      -1, block)).encode()
            started = time.perf_counter()
            writer.write(frame)
            header = await reader.readexactly(FRAME_HEADER.size)
            response = Response.decode(await reader.readexactly(
                int.from_bytes(header, "big")))
            latencies.append(time.perf_counter() - started)
            if response.error is not None:
                raise SystemExit(f"refused: {response.error.message}")
    finally:
        writer.close()
    return latencies


def report(name: str, latencies: list[float]) -> None:
    ms = sorted(x * 1000 for x in latencies)
    p50, p99 = ms[len(ms) // 2], ms[int(len(ms) * 0.99)]
    rate = len(ms) / sum(latencies)
    print(f"{name:38s} n={len(ms):5d}  p50 {p50:6.3f} ms  p99 {p99:6.3f} ms  "
          f"mean {statistics.fmean(ms):6.3f} ms  {rate:7.0f} signatures/s", flush=True)


def in_process(count: int) -> list[float]:
    latencies = []
    for height in range(1, count + 1):
        started = time.perf_counter()
        Vote.create(CHAIN_ID, KEY, VoteKind.PRECOMMIT, height, 0, compute_hash(b"bench"))
        latencies.append(time.perf_counter() - started)
    return latencies


def fdatasync_alone(directory: Path, count: int) -> list[float]:
    """The disk's share: overwrite a 512-byte slot and fdatasync it, as the signer does."""
    path = directory / "fdatasync-probe"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    latencies = []
    try:
        os.write(fd, bytes(1024))
        os.fsync(fd)
        for i in range(count):
            started = time.perf_counter()
            os.pwrite(fd, bytes([i % 256]) * 512, (i % 2) * 512)
            os.fdatasync(fd)
            latencies.append(time.perf_counter() - started)
    finally:
        os.close(fd)
        path.unlink()
    return latencies


def run_backend(name: str, args: list[str], address: ListenAddress, count: int,
                env: dict[str, str], tls: ssl.SSLContext | None = None) -> None:
    process = start_signer(args, env)
    try:
        report(name, asyncio.run(measure(address, count, tls)))
    finally:
        process.terminate()
        process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--state-dir", help="where the sign states go (default: a temp dir)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-signer-"))
    state_dir = Path(args.state_dir) if args.state_dir else work
    env = dict(os.environ)
    try:
        print(f"{os.cpu_count()} cores; sign state in {state_dir}", flush=True)
        report("in-process (no signer, no fsync)", in_process(args.count))
        report("fdatasync of a slot alone (the disk)", fdatasync_alone(state_dir, args.count))
        (work / "pass").write_text("bench passphrase\n")
        write_encrypted_key_file(work / "key.json", KEY, b"bench passphrase", cost="test")
        file_args = ["--chain-id", CHAIN_ID, "--key-file", str(work / "key.json"),
                     "--passphrase-file", str(work / "pass")]

        sock = ListenAddress.parse(f"unix:{work / 'file.sock'}")
        run_backend("key file, Unix socket", [*file_args, "--listen", str(sock),
                                              "--state-file", str(state_dir / "s1")],
                    sock, args.count, env)

        for name in ("signer", "node"):
            create_self_signed_certificate(work / f"{name}.pem", work / f"{name}.key", name,
                                           ("127.0.0.1",))
        port = _free_port()
        tcp = ListenAddress.parse(f"tcp://127.0.0.1:{port}")
        run_backend("key file, TCP + mutual TLS",
                    [*file_args, "--listen", str(tcp), "--state-file", str(state_dir / "s2"),
                     "--tls-cert", str(work / "signer.pem"), "--tls-key",
                     str(work / "signer.key"), "--tls-trusted", str(work / "node.pem")],
                    tcp, args.count, env,
                    build_client_tls(work / "node.pem", work / "node.key",
                                     work / "signer.pem"))

        if Path(SOFTHSM).exists() and shutil.which("softhsm2-util"):
            (work / "tokens").mkdir()
            (work / "softhsm2.conf").write_text(
                f"directories.tokendir = {work / 'tokens'}\nobjectstore.backend = file\n")
            env["SOFTHSM2_CONF"] = str(work / "softhsm2.conf")
            subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "bench",
                            "--so-pin", "1234", "--pin", "5678"], check=True,
                           capture_output=True, env=env)
            (work / "pin").write_text("5678")
            token = ["--pkcs11-module", SOFTHSM, "--token-label", "bench", "--key-label",
                     "validator", "--pin-file", str(work / "pin")]
            subprocess.run([sys.executable, "-m", "cli", "signer", "init-pkcs11", *token],
                           check=True, capture_output=True, cwd=ROOT,
                           env={**env, "PYTHONPATH": str(ROOT)})
            hsm = ListenAddress.parse(f"unix:{work / 'hsm.sock'}")
            run_backend("SoftHSM2 (PKCS#11), Unix socket",
                        ["--chain-id", CHAIN_ID, *token, "--listen", str(hsm),
                         "--state-file", str(state_dir / "s3")], hsm, args.count, env)
        else:
            print("SoftHSM2 not installed: apt-get install -y softhsm2 to measure it")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if args.state_dir:
            for name in ("s1", "s2", "s3"):
                (state_dir / name).unlink(missing_ok=True)


def _free_port() -> int:
    from devnet.ports import get_free_port
    return get_free_port()


if __name__ == "__main__":
    main()
