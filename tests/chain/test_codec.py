"""Canonical codec: round trips, and every non-canonical form refused."""

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chain import codec
from chain.errors import MalformedError, TooLargeError

values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.text(max_size=20) | st.binary(max_size=40),
    lambda children: st.lists(children, max_size=5).map(tuple)
    | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=20,
)


@given(values)
def test_round_trip(value):
    data = codec.encode(value)
    assert codec.decode(data) == value
    assert codec.encode(codec.decode(data)) == data


@given(st.dictionaries(st.text(max_size=8), st.integers(-(2**63), 2**64 - 1), min_size=2,
                       max_size=6))
def test_map_key_order_is_canonical(d):
    reversed_dict = dict(reversed(list(d.items())))
    assert codec.encode(d) == codec.encode(reversed_dict)


def test_invalid_unsorted_map_rejected():
    data = msgpack.packb({"b": 1, "a": 2})
    with pytest.raises(MalformedError, match="canonical"):
        codec.decode(data)


def test_invalid_non_minimal_int_rejected():
    # 5 encoded as uint16 (0xcd) instead of a positive fixint.
    with pytest.raises(MalformedError, match="canonical"):
        codec.decode(b"\xcd\x00\x05")


def test_invalid_trailing_bytes_rejected():
    with pytest.raises(MalformedError):
        codec.decode(codec.encode([1, 2]) + b"\x00")


def test_invalid_float_rejected():
    with pytest.raises(MalformedError, match="float"):
        codec.decode(msgpack.packb(1.5))
    with pytest.raises(MalformedError):
        codec.encode([1.5])


def test_invalid_ext_type_rejected():
    with pytest.raises(MalformedError, match="extension"):
        codec.decode(msgpack.packb(msgpack.ExtType(1, b"x")))


def test_invalid_bytes_as_str_rejected():
    # Text where binary is expected encodes differently: raw str bytes are not bin.
    data = msgpack.packb(b"abc", use_bin_type=False)  # str8 form
    assert codec.decode(data) == "abc"  # it is text, not bytes
    with pytest.raises(MalformedError):
        codec.decode(b"\xa3\xff\xfe\xfd")  # invalid UTF-8 in a str


def test_invalid_truncated_rejected():
    data = codec.encode([b"x" * 50])
    with pytest.raises(MalformedError):
        codec.decode(data[:-3])


def test_too_large_rejected():
    with pytest.raises(TooLargeError):
        codec.decode(codec.encode(b"x" * 100), max_size=50)


def test_invalid_non_text_map_key_rejected():
    with pytest.raises(MalformedError):
        codec.decode(msgpack.packb({1: 2}))
    with pytest.raises(MalformedError):
        codec.encode({1: 2})


@given(st.binary(max_size=64))
def test_random_bytes_never_crash(data):
    try:
        value = codec.decode(data)
    except MalformedError:
        return
    assert codec.encode(value) == data


def test_invalid_out_of_range_int_rejected():
    with pytest.raises(MalformedError, match="64-bit"):
        codec.encode(2**64)
