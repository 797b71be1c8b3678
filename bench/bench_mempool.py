"""Memory of a node whose mempool is full at its default cap.

Starts one validator of a two-validator chain as a separate process (its partner never
runs, so no block becomes final and nothing leaves the mempool), submits pre-signed
transfers from 1,000 senders in `tx_submit_batch` requests until the node answers
`busy` (mempool_full), and prints the mempool's size, the refusals and the node's
resident memory before and after. Bounded in count (`--txs`) and time; 127.0.0.1 only.

    python bench/bench_mempool.py                 # default caps: 100,000 txs, 128 MiB
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    get_free_port,
    init_node,
    make_genesis,
    make_keys,
    presign_transfers,
    wait_ready,
)
from chain.genesis import ChainParams
from sdk import AsyncClient

MIB = 1024 * 1024


async def run(args: argparse.Namespace) -> None:
    chain_id = "govchain-bench"
    validators = make_keys(2, salt=1)
    senders = make_keys(args.senders, salt=2)
    genesis = make_genesis(chain_id, validators, senders, ChainParams())
    print(f"pre-signing {args.txs} transfers from {args.senders} senders ...", flush=True)
    txs = presign_transfers(chain_id, senders, args.txs)
    workdir = Path(tempfile.mkdtemp(prefix="govchain-bench-"))
    node = init_node(workdir, "node0", genesis, validators[0], [], get_free_port())
    node.start()
    client = AsyncClient(node.rpc_url, timeout_s=60)
    try:
        await wait_ready([client], 30)
        start_rss = node.memory_mib()["VmRSS"]
        admitted = busy = other = 0
        first_other = None
        for i in range(0, len(txs), args.batch):
            answers = await client.submit_batch(txs[i:i + args.batch])
            for answer in answers:
                reason = answer.get("error", {}).get("data", {}).get("reason")
                if "error" not in answer:
                    admitted += 1
                elif reason == "mempool_full":
                    busy += 1
                else:
                    other += 1
                    first_other = first_other or answer
            if busy >= args.batch:
                break  # a whole batch refused as busy: the mempool is at its cap
        status = await client.call("node_status")
        rss = node.memory_mib()
        print(f"mempool            {status['mempool_size']:,} transactions "
              f"(admitted {admitted:,}, refused busy {busy:,}, other refusals {other})")
        print(f"height             {status['height']} (no block final: the mempool only fills)")
        print(f"RSS at start       {start_rss:.0f} MiB")
        print(f"RSS mempool full   {rss['VmRSS']:.0f} MiB (peak {rss['VmHWM']:.0f} MiB)")
        print(f"per pending tx     {(rss['VmRSS'] - start_rss) * MIB / max(admitted, 1):,.0f} "
              "bytes of RSS")
        if first_other:
            print(f"first other refusal: {first_other}")
    finally:
        await client.close()
        node.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--txs", type=int, default=110_000,
                        help="transfers to offer (the default cap is 100,000)")
    parser.add_argument("--senders", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=1000)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
