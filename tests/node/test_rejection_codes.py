"""One vocabulary of rejection codes: the lower layers' codes are members, the wire strings
are unchanged, and docs/rpc.md's table says what the code says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from chain import errors as chain_errors
from ledger import errors as ledger_errors
from node.errors import MempoolError, MempoolFullError
from node.rejection import RejectionCode

DOCS = Path(__file__).resolve().parents[2] / "docs"

NOT_ABOUT_A_TRANSACTION = {"ledger_error", "invalid_genesis", "corrupt_state"}
"""Ledger codes of genesis and of a damaged disk: never the reason a transaction fails."""


def _subclasses(root: type) -> list[type]:
    found, todo = [], [root]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def test_every_ledger_code_of_a_transaction_is_a_member() -> None:
    codes = {cls.CODE for cls in _subclasses(ledger_errors._CodedError)}
    assert codes - NOT_ABOUT_A_TRANSACTION <= set(RejectionCode)
    assert len(codes) > 40  # the walk found the tree, not just the root


def test_every_chain_code_of_a_transaction_is_a_member() -> None:
    for cls in (chain_errors.MalformedError, chain_errors.TooLargeError,
                chain_errors.WrongChainError, chain_errors.BadSignatureError):
        assert RejectionCode(cls.code) is not None


def test_wire_strings_and_their_meaning_are_unchanged() -> None:
    # The sets node.py and gossip.py kept before there was one enum.
    assert {c.value for c in RejectionCode if c.is_peer_fault} == {
        "bad_signature", "malformed", "wrong_chain", "too_large"}
    assert {c.value for c in RejectionCode if c.is_permanent} == {
        "bad_signature", "malformed", "wrong_chain", "too_large", "nonce_too_low", "nonce_used"}
    assert [c.value for c in RejectionCode if c.is_busy] == ["mempool_full", "halted_for_upgrade"]
    assert all(c.value == c.name.lower() for c in RejectionCode)


def test_mempool_errors_carry_members() -> None:
    error = MempoolError(RejectionCode.NONCE_IN_USE, "taken")
    assert error.code is RejectionCode.NONCE_IN_USE and error.code == "nonce_in_use"
    assert MempoolFullError("full").code is RejectionCode.MEMPOOL_FULL
    with pytest.raises(ValueError):
        RejectionCode("no_such_reason")


def _rejection_table() -> dict[str, tuple[str, str, str]]:
    """docs/rpc.md's transaction rejection table: reason -> (found, permanent, peer fault)."""
    text = (DOCS / "rpc.md").read_text()
    section = text.split("### Transaction rejections", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        match = re.fullmatch(r"`(\w+)`", cells[0]) if len(cells) >= 6 else None
        if match:
            rows[match.group(1)] = (cells[2], cells[3], cells[4])
    return rows


def test_docs_table_says_what_the_code_says() -> None:
    table = _rejection_table()
    for reason, (_found, permanent, peer_fault) in table.items():
        code = RejectionCode(reason)
        assert (permanent == "yes") == code.is_permanent, reason
        assert (peer_fault == "yes") == code.is_peer_fault, reason
    # Every code with a consequence of its own has a row.
    special = {c for c in RejectionCode if c.is_permanent or c.is_peer_fault or c.is_busy}
    assert special <= set(table)
    assert {"nonce_used", "expired", "flushed", "unknown_account"} <= set(table)
