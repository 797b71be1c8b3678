"""Link shapes: the delivery model with explicit times, the proxy over real sockets
(delay, live changes, bounded queues, intact bytes), the shape file and `devnet link`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from devnet.cli import add_devnet_parser
from devnet.links import PARTITION_FILE, Link, LinkProxy, ProxyLimits, watch_partition
from devnet.manifest import LinkEntry, LinksEntry, Manifest, NodeEntry, write_manifest
from devnet.shaping import (
    PTO_MIN_S,
    RTO_MIN_S,
    SEGMENT_BYTES,
    SHAPE_APPLIED_FILE,
    SHAPE_FILE,
    DeliverySchedule,
    LinkShape,
    ShapeError,
    ShapeSet,
    get_retransmission_s,
    get_rng,
    make_wan_profile,
    parse_duration_ms,
    parse_loss,
    parse_rate_bps,
    parse_shape_file,
    render_shape_file,
    replace_shapes,
)
from tests.devnet.test_devnet_links import poll_until

HOST = "127.0.0.1"
DEADLINE_S = 10.0


class ScriptedRandom:
    """Draws given in advance: `losses` are the random() results, `jitters` uniform()'s."""

    def __init__(self, losses: list[float] | None = None,
                 jitters: list[float] | None = None) -> None:
        self.losses = list(losses or [])
        self.jitters = list(jitters or [])

    def random(self) -> float:
        return self.losses.pop(0) if self.losses else 1.0

    def uniform(self, a: float, b: float) -> float:
        value = self.jitters.pop(0)
        assert a <= value <= b
        return value


# ------------------------------------------------------------------ the model


def test_delay_alone_delivers_each_chunk_after_the_delay() -> None:
    schedule = DeliverySchedule(ScriptedRandom())
    shape = LinkShape(delay_ms=40)
    assert schedule.plan(10.0, 100, shape, 0.08) == [(pytest.approx(10.04), 100)]
    # A chunk of many segments arrives in one piece: nothing spaces them.
    assert schedule.plan(11.0, 10 * SEGMENT_BYTES, shape, 0.08) == [
        (pytest.approx(11.04), 10 * SEGMENT_BYTES)]


def test_jitter_varies_the_delay_but_never_reorders() -> None:
    schedule = DeliverySchedule(ScriptedRandom(jitters=[10.0, -10.0]))
    shape = LinkShape(delay_ms=40, jitter_ms=10)
    first = schedule.plan(0.0, 10, shape, 0.08)
    second = schedule.plan(0.001, 10, shape, 0.08)  # drawn 30 ms, but behind the first
    assert first == [(pytest.approx(0.05), 10)]
    assert second == [(pytest.approx(0.05), 10)]


def test_jitter_stays_within_delay_plus_or_minus_jitter() -> None:
    schedule = DeliverySchedule(random.Random(7))
    shape = LinkShape(delay_ms=40, jitter_ms=10)
    for i in range(1000):
        now = float(i)  # a second apart: each chunk's own delay shows
        ((at, _),) = schedule.plan(now, 10, shape, 0.08)
        assert 0.030 - 1e-9 <= at - now <= 0.050 + 1e-9


def test_rate_cap_spaces_segments_by_their_serialisation_time() -> None:
    schedule = DeliverySchedule(ScriptedRandom())
    rate_bps = 8 * SEGMENT_BYTES * 100  # 100 segments a second: 10 ms each
    shape = LinkShape(delay_ms=5, rate_bps=rate_bps)
    pieces = schedule.plan(0.0, 10 * SEGMENT_BYTES, shape, 0.01)
    assert [size for _, size in pieces] == [SEGMENT_BYTES] * 10
    assert [at for at, _ in pieces] == [pytest.approx(0.01 * (k + 1) + 0.005)
                                        for k in range(10)]
    # A chunk read meanwhile waits until the link has sent the first one.
    ((at, _),) = schedule.plan(0.02, SEGMENT_BYTES, shape, 0.01)
    assert at == pytest.approx(0.11 + 0.005)


def test_a_lost_segment_costs_a_round_trip_and_holds_back_what_follows() -> None:
    # Segment 2 of 10 is lost: 7 segments follow it, duplicate acks find the loss.
    losses = [1.0, 1.0, 0.0, 1.0] + [1.0] * 7
    schedule = DeliverySchedule(ScriptedRandom(losses=losses))
    shape = LinkShape(delay_ms=25, loss=0.01)
    pieces = schedule.plan(0.0, 10 * SEGMENT_BYTES, shape, rtt_s=0.05)
    assert pieces == [(pytest.approx(0.025), 2 * SEGMENT_BYTES),
                      (pytest.approx(0.075), 8 * SEGMENT_BYTES)]
    assert schedule.lost_segments == 1


def test_a_lost_tail_segment_waits_for_the_loss_probe() -> None:
    schedule = DeliverySchedule(ScriptedRandom(losses=[1.0, 0.0, 1.0]))
    pieces = schedule.plan(0.0, 2 * SEGMENT_BYTES, LinkShape(delay_ms=25, loss=0.01), 0.05)
    assert pieces == [(pytest.approx(0.025), SEGMENT_BYTES),
                      (pytest.approx(0.025 + 0.1), SEGMENT_BYTES)]


def test_a_lost_retransmission_waits_for_the_retransmission_timeout() -> None:
    schedule = DeliverySchedule(ScriptedRandom(losses=[0.0, 0.0, 1.0]))
    ((at, _),) = schedule.plan(0.0, 100, LinkShape(delay_ms=25, loss=0.01), 0.05)
    assert at == pytest.approx(0.025 + 0.1 + (0.05 + RTO_MIN_S))
    assert schedule.lost_segments == 2


def test_retransmission_times() -> None:
    assert get_retransmission_s(0, 0.05, following=3) == 0.05
    assert get_retransmission_s(0, 0.05, following=2) == 0.1
    assert get_retransmission_s(0, 0.001, following=0) == PTO_MIN_S
    assert get_retransmission_s(1, 0.05, 0) == pytest.approx(0.25)
    assert get_retransmission_s(3, 0.05, 0) == pytest.approx(1.0)


def test_seeded_draws_repeat_and_loss_rate_matches() -> None:
    shape = LinkShape(delay_ms=40, jitter_ms=10, loss=0.01)

    def run(seed: int) -> tuple[list[list[tuple[float, int]]], int]:
        schedule = DeliverySchedule(get_rng(seed, ("node0", "node1"), 0))
        plans = [schedule.plan(float(i), 64 * 1024, shape, 0.08) for i in range(2000)]
        return plans, schedule.lost_segments

    plans, lost = run(1)
    assert run(1) == (plans, lost)
    assert run(2)[0] != plans
    segments = 2000 * -(-64 * 1024 // SEGMENT_BYTES)
    assert 0.008 * segments < lost < 0.012 * segments  # 1 % of 92,000, seed 1: a fixed draw


# ------------------------------------------------------------------ parsing


def test_parse_units() -> None:
    assert parse_duration_ms("40ms") == 40
    assert parse_duration_ms("0.3s") == 300
    assert parse_duration_ms("500us") == 0.5
    assert parse_duration_ms("12") == 12
    assert parse_loss("1%") == 0.01
    assert parse_loss("0.02") == 0.02
    assert parse_rate_bps("1mbit") == 1_000_000
    assert parse_rate_bps("512kbit") == 512_000
    assert parse_rate_bps("2mbps") == 16_000_000
    assert parse_rate_bps("0") == 0


@pytest.mark.parametrize("parse,text", [(parse_duration_ms, "40 minutes"),
                                        (parse_duration_ms, "-3ms"), (parse_loss, "lots"),
                                        (parse_loss, "nan"), (parse_rate_bps, "fast"),
                                        (parse_rate_bps, "1mb")])
def test_invalid_units_are_refused(parse: object, text: str) -> None:
    with pytest.raises(ShapeError):
        parse(text)  # type: ignore[operator]


@pytest.mark.parametrize("fields", [{"loss": 0.6}, {"loss": -0.1}, {"delay_ms": -1},
                                    {"jitter_ms": 10**6}, {"rate_bps": 100},
                                    {"rate_bps": 1.5}])
def test_invalid_shape_is_refused(fields: dict[str, float]) -> None:
    with pytest.raises(ShapeError):
        LinkShape(**fields)  # type: ignore[arg-type]


def test_shape_file_round_trip() -> None:
    shapes = replace_shapes(ShapeSet(), [(("node0", "node1"), LinkShape(40, 10, 0.01, 10**6)),
                                         (("node1", "node0"), LinkShape(300))], seed=9)
    assert parse_shape_file(render_shape_file(shapes)) == shapes
    cleared = replace_shapes(shapes, [(("node1", "node0"), LinkShape())])
    assert cleared.version == 2 and cleared.seed == 9
    assert cleared.items() == [(("node0", "node1"), LinkShape(40, 10, 0.01, 10**6))]


@pytest.mark.parametrize("text", [
    "{", "[]", '{"links": {}}', '{"version": "1"}', '{"links": [1]}',
    '{"links": [{"src": "a", "dst": "a"}]}', '{"links": [{"src": "a", "dst": "b", "x": 1}]}',
    '{"links": [{"src": "a", "dst": "b", "loss": 2}]}'])
def test_invalid_shape_file_is_refused(text: str) -> None:
    with pytest.raises(ShapeError):
        parse_shape_file(text)


# ------------------------------------------------------------------ the proxy on sockets


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


@contextlib.asynccontextmanager
async def shaped_proxy(shapes: ShapeSet, limits: ProxyLimits | None = None
                       ) -> AsyncIterator[tuple[LinkProxy, int]]:
    """A proxy for link a->b in front of an echo server, with `shapes` in force."""
    server = await asyncio.start_server(_echo, HOST, 0)
    proxy = LinkProxy([Link("a", "b", 0, server.sockets[0].getsockname()[1])], limits)
    proxy.apply_shapes(shapes)
    await proxy.start()
    try:
        yield proxy, proxy.ports["a->b"]
    finally:
        await proxy.close()
        server.close()
        await asyncio.wait_for(server.wait_closed(), DEADLINE_S)


def _shapes(**by_direction: LinkShape) -> ShapeSet:
    return replace_shapes(ShapeSet(), [(tuple(k.split("_")), v)  # type: ignore[misc]
                                       for k, v in by_direction.items()])


async def _round_trip_s(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                        data: bytes) -> float:
    start = time.monotonic()
    writer.write(data)
    await writer.drain()
    assert await asyncio.wait_for(reader.readexactly(len(data)), DEADLINE_S) == data
    return time.monotonic() - start


async def test_delay_is_applied_each_way_and_changes_live() -> None:
    async with shaped_proxy(_shapes(a_b=LinkShape(delay_ms=150))) as (proxy, port):
        reader, writer = await asyncio.open_connection(HOST, port)
        assert await _round_trip_s(reader, writer, b"ping") >= 0.150
        # The reply direction is shaped on its own: now both ways are delayed.
        proxy.apply_shapes(_shapes(a_b=LinkShape(delay_ms=150), b_a=LinkShape(delay_ms=200)))
        assert await _round_trip_s(reader, writer, b"ping again") >= 0.350
        writer.close()


async def test_bytes_arrive_intact_and_in_order_through_loss_jitter_and_a_rate_cap() -> None:
    shape = LinkShape(delay_ms=5, jitter_ms=5, loss=0.05, rate_bps=200_000_000)
    async with shaped_proxy(_shapes(a_b=shape, b_a=shape)) as (proxy, port):
        reader, writer = await asyncio.open_connection(HOST, port)
        data = random.Random(3).randbytes(2 * 1024 * 1024)
        writer.write(data)
        echoed = await asyncio.wait_for(reader.readexactly(len(data)), 60)
        assert echoed == data
        assert proxy.count_lost_segments("a->b") > 0  # the losses happened
        writer.close()


async def test_queued_bytes_stay_within_the_bound() -> None:
    limits = ProxyLimits(chunk_bytes=16 * 1024, max_queued_bytes=128 * 1024)
    async with shaped_proxy(_shapes(a_b=LinkShape(delay_ms=200, rate_bps=1_000_000)),
                            limits) as (proxy, port):
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(b"x" * (4 * 1024 * 1024))  # far more than the link takes in a second
        samples = []
        deadline = time.monotonic() + DEADLINE_S
        while not samples or max(samples) < limits.max_queued_bytes - limits.chunk_bytes:
            assert time.monotonic() < deadline, f"the queue never filled: {samples[-5:]}"
            samples.append(proxy.count_queued_bytes("a->b"))
            await asyncio.sleep(0.005)
        for _ in range(50):  # and it stays bounded while the sender keeps pushing
            samples.append(proxy.count_queued_bytes("a->b"))
            await asyncio.sleep(0.005)
        assert max(samples) <= limits.max_queued_bytes
        writer.transport.abort()
        await asyncio.wait_for(reader.read(), DEADLINE_S)


# ------------------------------------------------------------------ the file and the command


def _write_stub_devnet(root: Path, *, full_nodes: int = 0) -> None:
    """Three validators; full{j} fronts node{j} and dials it and the other full nodes
    (as `devnet up --full-nodes` lays them out)."""
    names = ["node0", "node1", "node2"]
    nodes = [NodeEntry(name=n, rpc_url="http://127.0.0.1:1", rpc_port=1, p2p_port=i + 2,
                       home=str(root / n), log=str(root / n / "node.log"), validator=True)
             for i, n in enumerate(names)]
    links = [LinkEntry(a, b, 1) for a in names for b in names if a != b]
    full = [f"full{j}" for j in range(full_nodes)]
    nodes += [NodeEntry(name=n, rpc_url="http://127.0.0.1:1", rpc_port=1, p2p_port=j + 10,
                        home=str(root / n), log=str(root / n / "node.log"), validator=False,
                        fronts=names[j]) for j, n in enumerate(full)]
    links += [LinkEntry(n, names[j], 1) for j, n in enumerate(full)]
    links += [LinkEntry(a, b, 1) for a in full for b in full if a != b]
    write_manifest(Manifest(chain_id="test", genesis_hash="ab" * 32, dir=str(root), nodes=nodes,
                            accounts=[], links=LinksEntry(links=links, log=str(root / "links.log"),
                                                          control=str(root / PARTITION_FILE))))


async def test_watch_applies_the_shape_file_and_ignores_a_broken_one(tmp_path: Path) -> None:
    _write_stub_devnet(tmp_path)
    shapes = _shapes(node0_node1=LinkShape(delay_ms=40, loss=0.01))
    (tmp_path / SHAPE_FILE).write_text(render_shape_file(shapes))
    proxy = LinkProxy([])
    stop = asyncio.Event()
    watcher = asyncio.create_task(watch_partition(proxy, tmp_path, stop, poll_s=0.01))
    applied = tmp_path / SHAPE_APPLIED_FILE
    try:
        await poll_until(applied.exists)
        assert parse_shape_file(applied.read_text()) == shapes
        assert proxy.shapes.get("node0", "node1") == LinkShape(delay_ms=40, loss=0.01)
        applied.unlink()
        (tmp_path / SHAPE_FILE).write_text('{"links": [{"src": "node0"}]}')
        # The broken file is read (the partition watch of the same pass writes its file)
        # and the shapes stay as they were, with no new applied file.
        (tmp_path / PARTITION_FILE).write_text('{"version": 5, "cut": []}')
        await poll_until(lambda: json.loads(
            (tmp_path / "partition.applied.json").read_text())["version"] == 5)
        assert proxy.shapes == shapes
        assert not applied.exists()
    finally:
        stop.set()
        await asyncio.wait_for(watcher, DEADLINE_S)


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="govchain")
    parser.add_argument("--json", action="store_true")
    add_devnet_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    result: int = args.func(args)
    return result


@pytest.fixture
def stub_devnet(tmp_path: Path) -> Iterator[Path]:
    _write_stub_devnet(tmp_path)
    yield tmp_path


def test_link_set_records_shapes_and_keeps_options_not_given(
        stub_devnet: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = str(stub_devnet)
    assert run("devnet", "link", "set", "all", "all", "--delay", "40ms", "--loss", "1%",
               "--dir", root) == 1  # no proxy runs: recorded, and said so
    assert "link proxy is not running" in capsys.readouterr().err
    assert run("devnet", "link", "set", "0", "2", "--both", "--delay", "0.3s", "--rate",
               "1mbit", "--seed", "4", "--dir", root) == 1
    shapes = parse_shape_file((stub_devnet / SHAPE_FILE).read_text())
    assert shapes.version == 2 and shapes.seed == 4
    assert shapes.get("node0", "node2") == LinkShape(300, 0, 0.01, 1_000_000)
    assert shapes.get("node2", "node0") == LinkShape(300, 0, 0.01, 1_000_000)
    assert shapes.get("node1", "node2") == LinkShape(40, 0, 0.01)
    capsys.readouterr()

    assert run("--json", "devnet", "link", "show", "--dir", root) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["applied"] is False and len(shown["links"]) == 6

    assert run("devnet", "link", "clear", "node0", "node2", "--dir", root) == 1
    assert parse_shape_file((stub_devnet / SHAPE_FILE).read_text()).get(
        "node0", "node2").is_clear
    assert run("devnet", "link", "clear", "--dir", root) == 1
    assert parse_shape_file((stub_devnet / SHAPE_FILE).read_text()).items() == []


@pytest.mark.parametrize("argv,message", [
    (["set", "node0", "node1", "--loss", "70%"], "loss must be between 0 and 50%"),
    (["set", "node0", "node9", "--delay", "1ms"], "no node 'node9'"),
    (["set", "node0", "node0", "--delay", "1ms"], "names no link"),
    (["set", "node0", "node1"], "say what to set"),
    (["clear", "node0"], "name both ends"),
    (["set", "full0", "node1", "--delay", "1ms"], "full0 and node1 do not talk"),
    (["wan", "--slow", "full0,node2"], "full0 and node2 do not talk"),
])
def test_invalid_link_commands_change_nothing(tmp_path: Path, argv: list[str], message: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    _write_stub_devnet(tmp_path, full_nodes=2)
    stub_devnet = tmp_path
    assert run("devnet", "link", *argv, "--dir", str(stub_devnet)) == 1
    assert message in capsys.readouterr().err
    assert not (stub_devnet / SHAPE_FILE).exists()


def test_wan_profile_is_seeded_and_stays_within_its_bounds() -> None:
    names = ["node0", "node1", "node2", "node3"]
    profile = make_wan_profile(names, seed=1, slow_pair=("node0", "node3"))
    assert make_wan_profile(names, seed=1, slow_pair=("node0", "node3")) == profile
    assert make_wan_profile(names, seed=2, slow_pair=("node0", "node3")) != profile
    assert len(profile) == 12
    for (src, dst), shape in profile:
        assert shape.loss == 0.01 and shape.jitter_ms == 10
        if {src, dst} == {"node0", "node3"}:
            assert shape.delay_ms == 300
        else:
            assert shape.delay_ms - shape.jitter_ms >= 20
            assert shape.delay_ms + shape.jitter_ms <= 80
    with pytest.raises(ShapeError):
        make_wan_profile(names, min_delay_ms=80, max_delay_ms=20)


def test_wan_places_full_nodes_near_their_validator_and_shapes_only_links(
        tmp_path: Path) -> None:
    _write_stub_devnet(tmp_path, full_nodes=2)
    assert run("devnet", "link", "wan", "--slow", "node0,node2", "--seed", "3",
               "--dir", str(tmp_path)) == 1  # no proxy runs: recorded, and said so
    shapes = dict(parse_shape_file((tmp_path / SHAPE_FILE).read_text()).items())
    # 6 validator directions, 2 each for full0 <-> node0, full1 <-> node1, full0 <-> full1.
    assert len(shapes) == 12 and ("full0", "node1") not in shapes
    assert shapes["full0", "node0"] == shapes["node1", "full1"] == LinkShape(delay_ms=1)
    assert shapes["full0", "full1"] == shapes["node0", "node1"]  # as far as their sites
    assert shapes["full1", "full0"] == shapes["node1", "node0"]
    assert shapes["node0", "node2"].delay_ms == 300
    # The validators' delays do not depend on full nodes standing at their sites.
    validators = make_wan_profile(["node0", "node1", "node2"], seed=3,
                                  slow_pair=("node0", "node2"))
    assert all(shapes[key] == shape for key, shape in validators)
