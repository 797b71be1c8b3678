"""/metrics, /ready, /health and structured logs on a real node over real sockets."""

from __future__ import annotations

import io
import json
import logging

import aiohttp
import pytest

from cli.service import NodeService
from node import logs
from rpc.metrics import parse_exposition
from sdk import RpcClientError
from tests.node.conftest import VALIDATOR_KEYS, make_genesis, make_home, wait_for
from tests.operator.chain_builder import transfer


async def get(url: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, response.headers.get("Content-Type", ""), await response.text()


def value(samples, name: str, **labels: str) -> float:
    for sample_labels, sample_value in samples.get(name, []):
        if all(sample_labels.get(k) == v for k, v in labels.items()):
            return sample_value
    raise AssertionError(f"no sample {name}{labels}")


async def test_metrics_count_blocks_txs_rejections_and_rpc(single_node) -> None:
    url = single_node.service.rpc_url
    await single_node.client.submit(transfer(0, 5), wait="final")
    with pytest.raises(RpcClientError) as refused:  # nonce 0 is used up
        await single_node.client.submit(transfer(0, 6))
    status, content_type, text = await get(f"{url}/metrics")
    assert status == 200 and content_type.startswith("text/plain")
    samples = parse_exposition(text)
    height = value(samples, "govchain_height")
    assert height >= 1
    assert value(samples, "govchain_finalized_height") == height
    assert value(samples, "govchain_tx_admitted_total") == 1
    assert value(samples, "govchain_tx_rejected_total", code=refused.value.reason) == 1
    assert value(samples, "govchain_txs_final_total") == 1
    assert value(samples, "govchain_rpc_requests_total", method="tx_submit", status="ok") == 1
    assert value(samples, "govchain_block_rounds_count") >= 1
    assert value(samples, "govchain_block_execution_seconds_count") >= 1
    assert value(samples, "govchain_storage_bytes") > 0
    assert value(samples, "govchain_mempool_txs") == 0
    key = VALIDATOR_KEYS[0].public_key.hex()
    assert value(samples, "govchain_validator_last_signed_height", validator=key) >= 1
    for name in ("govchain_peers", "govchain_consensus_round", "govchain_p2p_bytes_total",
                 "govchain_mempool_bytes", "govchain_head_age_seconds"):
        assert name in samples

    async def grew() -> bool:
        later = parse_exposition((await get(f"{url}/metrics"))[2])
        return value(later, "govchain_height") > height

    await wait_for(grew, 10, "the height metric to grow")


async def test_ready_and_health_of_a_lone_validator(single_node) -> None:
    url = single_node.service.rpc_url
    status, _, text = await get(f"{url}/ready")
    assert status == 200 and json.loads(text)["ready"] is True
    status, _, _ = await get(f"{url}/health")
    assert status == 200


async def test_not_ready_without_peers_and_metrics_can_be_disabled(tmp_path) -> None:
    key = VALIDATOR_KEYS[0]
    home = make_home(tmp_path / "n", make_genesis([key, VALIDATOR_KEYS[1]]), key,
                     peers=["127.0.0.1:9"], metrics_enabled=False, explorer_enabled=False)
    service = NodeService(home)
    await service.start()
    try:
        status, _, text = await get(f"{service.rpc_url}/ready")
        doc = json.loads(text)
        assert status == 503 and doc["ready"] is False
        assert "peers connected" in doc["reasons"][0]
        assert (await get(f"{service.rpc_url}/metrics"))[0] == 404
        assert (await get(f"{service.rpc_url}/explorer/"))[0] == 404
    finally:
        await service.stop()


async def test_invalid_admin_snapshot_from_a_non_loopback_address_is_refused(single_node,
                                                                             monkeypatch):
    from rpc import operator as operator_http

    monkeypatch.setattr(operator_http, "is_loopback", lambda remote: False)
    async with aiohttp.ClientSession() as session, session.post(
            f"{single_node.service.rpc_url}/admin/snapshot", json={"name": "x"}) as response:
        assert response.status == 403
    assert not (single_node.service.home.path / "snapshots").exists()


async def test_online_snapshot_is_a_consistent_database(single_node) -> None:
    url = single_node.service.rpc_url
    await single_node.client.submit(transfer(0, 5), wait="final")
    async with aiohttp.ClientSession() as session, session.post(
            f"{url}/admin/snapshot", json={"name": "s1"}) as response:
        doc = await response.json()
    assert response.status == 200, doc
    from node.ops.replay import audit

    report = audit(single_node.service.home.path, single_node.service.home.path /
                   "snapshots" / "s1")
    assert report.blocks >= doc["height_at_start"] and report.txs == 1
    async with aiohttp.ClientSession() as session, session.post(
            f"{url}/admin/snapshot", json={"name": "../escape"}) as response:
        assert response.status == 400


def test_json_logs_carry_height_round_and_peer() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(logs.ContextFilter())
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger("govchain.test-logs")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logs.set_log_context(lambda: (42, 3))
    try:
        logger.warning("peer misbehaved", extra={"peer": "ab" * 32})
        logger.info("plain line")
    finally:
        logs.set_log_context(None)
        logger.removeHandler(handler)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["height"] == 42 and first["round"] == 3 and first["peer"] == "ab" * 32
    assert first["level"] == "WARNING" and first["message"] == "peer misbehaved"
    assert "peer" not in second


def test_human_logs_carry_height_and_round() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(logs.ContextFilter())
    handler.setFormatter(logging.Formatter(logs.HUMAN_FORMAT))
    logger = logging.getLogger("govchain.test-logs-human")
    logger.addHandler(handler)
    logs.set_log_context(lambda: (7, 1))
    try:
        logger.warning("hello", extra={"peer": "cd" * 32})
    finally:
        logs.set_log_context(None)
        logger.removeHandler(handler)
    assert "h=7 r=1 peer=cdcdcdcdcdcd: hello" in stream.getvalue()
