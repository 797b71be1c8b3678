"""The stored tx record's fast encoder gives exactly codec.encode's bytes, or its error."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain import codec
from chain.errors import MalformedError
from storage.chain_store import encode_tx_record

TX = b"\x96" + bytes(180)

leaves = st.one_of(st.binary(max_size=40), st.text(max_size=12),
                   st.integers(min_value=-(2**64), max_value=2**65), st.booleans(),
                   st.none())
attributes = st.dictionaries(st.text(max_size=8), leaves, max_size=6)
events = st.lists(st.one_of(st.lists(st.one_of(st.text(max_size=12), attributes),
                                     min_size=2, max_size=2),
                            st.tuples(st.text(max_size=12), attributes)), max_size=4)


def outcome(encoder: Any, *args: Any) -> bytes | str:
    try:
        return bytes(encoder(*args))
    except MalformedError as e:
        return f"MalformedError: {e}"


@settings(max_examples=400, deadline=None)
@given(events=events, code=st.sampled_from(["ok", "insufficient_funds"]),
       message=st.text(max_size=20))
def test_same_bytes_or_error_as_the_generic_encoder(events: Any, code: str,
                                                    message: str) -> None:
    generic = outcome(lambda *a: codec.encode(list(a)), TX, code, message, events)
    assert outcome(encode_tx_record, TX, code, message, events) == generic


@pytest.mark.parametrize("event", [
    ["transferred", {"to": b"b" * 20, "amount": 5}],            # keys out of order
    ["transferred", {"amount": 2**64}],                          # integer too large
    ["transferred", {"amount": True, "asset": "GOV"}],           # a boolean
    ["transferred", {"amount": 1.5}],                            # a float
    ["transferred", {1: b"x"}],                                  # a key that is not text
    ("transferred", {"amount": 5}),                              # a tuple, not a list
])
def test_unusual_events_take_the_generic_path(event: Any) -> None:
    args = (TX, "ok", "", [event])
    assert outcome(encode_tx_record, *args) == outcome(lambda *a: codec.encode(list(a)), *args)


def test_a_remembered_key_order_does_not_pass_other_orders() -> None:
    ordered = ["minted", {"amount": 1, "asset": "GOV", "supply": 9, "to": b"t" * 20}]
    encode_tx_record(TX, "ok", "", [ordered])
    shuffled = ["minted", {"to": b"t" * 20, "supply": 9, "asset": "GOV", "amount": 1}]
    assert encode_tx_record(TX, "ok", "", [shuffled]) == codec.encode([TX, "ok", "", [ordered]])
    assert codec.decode(encode_tx_record(TX, "ok", "", [shuffled]))[3][0][1] == ordered[1]
