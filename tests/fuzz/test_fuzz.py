"""Quick fuzz for CI: replay each target's stored corpus (tests/fuzz/corpus/), then a
few thousand hypothesis examples. The long, coverage-guided runs are
`python -m tests.fuzz.run <target> --seconds N` (docs/reliability.md)."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chain import codec
from tests.fuzz.run import TARGET_NAMES
from tests.fuzz.targets import RPC, TARGETS, corpus

QUICK = settings(max_examples=250, deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.too_slow])


def test_target_names_match():
    assert tuple(TARGETS) == TARGET_NAMES


@pytest.mark.parametrize("name", TARGET_NAMES)
def test_corpus_replays(name):
    inputs = corpus(name)
    assert inputs
    for data in inputs:
        TARGETS[name].check(data)


@st.composite
def _mutated(draw, name: str) -> bytes:
    """A seed with a few bytes changed, inserted or removed."""
    buf = bytearray(draw(st.sampled_from(TARGETS[name].seeds())))
    for _ in range(draw(st.integers(1, 6))):
        position = draw(st.integers(0, len(buf)))
        action = draw(st.sampled_from(["set", "insert", "delete"]))
        if action == "insert" or not buf:
            buf.insert(position, draw(st.integers(0, 255)))
        elif action == "set":
            buf[min(position, len(buf) - 1)] = draw(st.integers(0, 255))
        else:
            del buf[min(position, len(buf) - 1)]
    return bytes(buf)


_msgpack_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.binary(max_size=40)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=8), max_leaves=30)


@pytest.mark.parametrize("name", ["tx", "block", "vote", "proposal", "certificate", "frame"])
@QUICK
@given(data=st.data())
def test_decoders_hold_their_invariants(name, data):
    target = TARGETS[name]
    target.check(data.draw(st.binary(max_size=300)))
    target.check(data.draw(_mutated(name)))
    target.check(codec.encode(data.draw(_msgpack_values)))


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False)
    | st.text(max_size=70),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner,
                                                                max_size=5),
    max_leaves=20)


@st.composite
def _rpc_call(draw) -> object:
    method = draw(st.sampled_from(RPC.methods()) | st.text(max_size=12))
    params = draw(st.none() | st.dictionaries(
        st.sampled_from(["height", "hash", "address", "tx", "txs", "from", "count", "key",
                         "module", "limit", "asset", "id", "params"]) | st.text(max_size=8),
        _json, max_size=4) | st.lists(_json, max_size=4))
    call = {"jsonrpc": draw(st.sampled_from(["2.0", "1.0", 2])), "method": method,
            "params": params}
    if draw(st.booleans()):
        call["id"] = draw(st.integers(0, 2**40) | st.text(max_size=5) | st.none())
    return call


@QUICK
@given(body=st.one_of(_rpc_call(), st.lists(_rpc_call(), min_size=1, max_size=4)))
def test_rpc_holds_its_invariants(body):
    RPC.check(json.dumps(body).encode())


@QUICK
@given(data=st.binary(max_size=200))
def test_rpc_survives_any_bytes(data):
    RPC.check(data)
