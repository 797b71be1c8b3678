"""Pre-signs Ethereum value transfers for a peer chain; writes them as JSON.

Runs in the benchmark's own environment (it needs eth-account, which govchain never
imports): `python presign_eth.py --chain-id 31337 --txs 20000 --senders 32 --out F`.
Transfer i is sent by sender i mod S to sender i+1 mod S with nonce i div S: the same
shape as govchain's bench.common.presign_transfers. Legacy transactions, 21,000 gas,
value 1 wei. Sender keys are derived from their index, so every run funds the same
accounts.
"""

from __future__ import annotations

import argparse
import hashlib
import json

from eth_account import Account

GAS = 21_000
GAS_PRICE_WEI = 10 * 10**9


def sender_key(index: int) -> str:
    return "0x" + hashlib.sha256(f"govchain-bench-peer-sender-{index}".encode()).hexdigest()


def hex0x(value: bytes) -> str:
    return "0x" + bytes(value).hex()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chain-id", type=int, required=True)
    parser.add_argument("--txs", type=int, required=True)
    parser.add_argument("--senders", type=int, required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    accounts = [Account.from_key(sender_key(i)) for i in range(args.senders)]
    txs = []
    for i in range(args.txs):
        sender = accounts[i % args.senders]
        receiver = accounts[(i + 1) % args.senders]
        signed = Account.sign_transaction(
            {"nonce": i // args.senders, "gasPrice": GAS_PRICE_WEI, "gas": GAS,
             "to": receiver.address, "value": 1, "data": b"", "chainId": args.chain_id},
            sender.key)
        txs.append({"raw": hex0x(signed.raw_transaction), "hash": hex0x(signed.hash),
                    "sender": i % args.senders})
    doc = {"chain_id": args.chain_id,
           "senders": [{"key": hex0x(a.key), "address": a.address} for a in accounts],
           "txs": txs}
    with open(args.out, "w") as f:
        json.dump(doc, f)


if __name__ == "__main__":
    main()
