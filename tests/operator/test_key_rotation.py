"""A validator key rotated on a live network: five nodes in one process over real p2p.

Four genesis validators and a fifth node holding the new key of validator 3. One
`replace_validator` swaps the keys: the set has four members, quorum three, at every
height; the new key signs from the next height on, the old node is stopped, and the
chain finalizes throughout. /metrics then reports signing only for current members,
so the "validator stopped signing" alert cannot fire for the retired key.
"""

from __future__ import annotations

import aiohttp
import pytest

from cli.ledger import decode_json_fields
from ledger.governance import sign_acceptance
from rpc.metrics import parse_exposition
from tests.node.conftest import (
    ACCOUNT_KEYS,
    CHAIN_ID,
    VALIDATOR_KEYS,
    RunningNode,
    make_genesis,
    start_network,
    stop_network,
    wait_for,
)
from tests.node.test_ledger_network import decide, send

V = VALIDATOR_KEYS[:5]
OLD, NEW = V[3], V[4]
LAST_SIGNED = "govchain_validator_last_signed_height"


def test_cli_args_of_replace_validator_are_keys() -> None:
    """`govchain tx propose --args` carries both keys of a replacement as bytes."""
    args = decode_json_fields({"args": {"public_key": OLD.public_key.hex(),
                                        "new_public_key": NEW.public_key.hex()}})["args"]
    assert args == {"public_key": OLD.public_key, "new_public_key": NEW.public_key}


async def last_signed(node: RunningNode) -> dict[str, float]:
    async with aiohttp.ClientSession() as session, \
            session.get(f"{node.service.rpc_url}/metrics") as response:
        samples = parse_exposition(await response.text())
    return {labels["validator"]: value for labels, value in samples.get(LAST_SIGNED, [])}


@pytest.mark.slow
async def test_replace_validator_keeps_the_set_size_on_a_live_network(tmp_path) -> None:
    nodes = await start_network(tmp_path, len(V), make_genesis(V[:4]))
    live = [n for i, n in enumerate(nodes) if i != 3]
    try:
        await wait_for(lambda: _all_at_least(nodes, 2), 30, "first blocks everywhere")
        async def old_key_signed() -> bool:  # a certificate needs 3 of 4: not every one
            return OLD.public_key.hex() in await last_signed(nodes[0])
        await wait_for(old_key_signed, 30, "a certificate signed by the old key")
        accepted = await send(nodes[0], ACCOUNT_KEYS[0], "validator_accept", {
            "public_key": NEW.public_key, "name": "ministry-3",
            "signature": sign_acceptance(CHAIN_ID, NEW, "ministry-3")})
        assert accepted["code"] == "ok", accepted
        kinds = await decide(nodes, V[:3], "replace_validator",
                             {"public_key": OLD.public_key, "new_public_key": NEW.public_key})
        assert kinds[-1] == "validator_replaced"
        store = nodes[0].node.store
        replaced_at = next(h for h in range(store.head_height, 0, -1)
                           if store.get_validator_set(h + 1).is_member(NEW.public_key)
                           and not store.get_validator_set(h).is_member(NEW.public_key))

        async def old_node_retired() -> bool:  # it watches as a full node from then on
            return nodes[3].node.store.head_height > replaced_at and \
                not nodes[3].node.core.is_validator
        await wait_for(old_node_retired, 30, "the old key's node to stop being a validator")
        await nodes[3].client.close()
        await nodes[3].service.stop()
        target = replaced_at + 6
        await wait_for(lambda: _all_at_least(live, target), 60, f"height {target} without v3")

        for h in range(1, store.head_height + 2):
            validator_set = store.get_validator_set(h)
            assert (validator_set.size, validator_set.quorum) == (4, 3), h
            assert validator_set.is_member(OLD.public_key) == (h <= replaced_at), h
        for h in range(replaced_at + 1, target + 1):
            assert OLD.public_key not in {k for k, _ in store.get_certificate(h).signatures}

        for node in live:  # each node's certificates are its own quorum of precommits
            async def new_key_signed(node: RunningNode = node) -> bool:
                signed = await last_signed(node)
                assert OLD.public_key.hex() not in signed
                return signed.get(NEW.public_key.hex(), 0) > replaced_at
            await wait_for(new_key_signed, 60, "a certificate signed by the new key")
        assert not any(n.service.failed.is_set() for n in live)
    finally:
        await stop_network(live)


async def _all_at_least(nodes: list[RunningNode], height: int) -> bool:
    return min(n.node.store.head_height for n in nodes) >= height
