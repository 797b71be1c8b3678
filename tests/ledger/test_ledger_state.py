"""Overlay semantics: buffered reads and writes, nested rollback, deletes, changes()."""

from __future__ import annotations

import pytest

from ledger.state import Overlay


def test_reads_fall_through_to_base_and_see_own_writes() -> None:
    view = Overlay({b"a": b"1"})
    assert view.get(b"a") == b"1"
    assert view.get(b"missing") is None
    view.put(b"a", b"2")
    view.put(b"b", b"3")
    assert (view.get(b"a"), view.get(b"b")) == (b"2", b"3")
    assert view.changes() == {b"a": b"2", b"b": b"3"}


def test_base_is_never_written() -> None:
    base = {b"a": b"1"}
    view = Overlay(base)
    view.put(b"a", b"2")
    view.delete(b"a")
    view.put(b"c", b"3")
    assert base == {b"a": b"1"}


def test_delete_of_base_key_is_a_change_and_hides_it() -> None:
    view = Overlay({b"a": b"1"})
    view.delete(b"a")
    assert view.get(b"a") is None
    assert view.changes() == {b"a": None}


def test_delete_of_key_only_written_here_leaves_no_change() -> None:
    view = Overlay({})
    view.put(b"new", b"1")
    view.delete(b"new")
    view.delete(b"never")
    assert view.get(b"new") is None
    assert view.changes() == {}


def test_put_after_delete_restores_a_value() -> None:
    view = Overlay({b"a": b"1"})
    view.delete(b"a")
    view.put(b"a", b"9")
    assert view.get(b"a") == b"9"
    assert view.changes() == {b"a": b"9"}


def test_dropped_child_leaves_parent_unchanged() -> None:
    parent = Overlay({b"a": b"1"})
    parent.put(b"b", b"2")
    child = parent.child()
    child.put(b"a", b"x")
    child.delete(b"b")
    child.put(b"c", b"3")
    assert (child.get(b"a"), child.get(b"b"), child.get(b"c")) == (b"x", None, b"3")
    assert (parent.get(b"a"), parent.get(b"b"), parent.get(b"c")) == (b"1", b"2", None)
    assert parent.changes() == {b"b": b"2"}


def test_commit_merges_child_into_parent_with_deletes() -> None:
    parent = Overlay({b"a": b"1", b"d": b"4"})
    parent.put(b"b", b"2")
    child = parent.child()
    child.put(b"a", b"x")
    child.delete(b"b")  # only written in parent: no change left against the base
    child.delete(b"d")  # in the base: a delete
    child.put(b"c", b"3")
    assert child.changes() == {b"a": b"x", b"b": None, b"d": None, b"c": b"3"}
    child.commit()
    assert parent.changes() == {b"a": b"x", b"d": None, b"c": b"3"}
    assert parent.get(b"b") is None
    assert child.changes() == {}


def test_grandchild_commits_through_two_levels() -> None:
    root = Overlay({})
    block = root.child()
    tx = block.child()
    tx.put(b"k", b"v")
    tx.commit()
    assert root.get(b"k") is None
    block.commit()
    assert root.changes() == {b"k": b"v"}


def test_changes_is_a_copy() -> None:
    view = Overlay({})
    view.put(b"a", b"1")
    changes = view.changes()
    changes[b"z"] = b"9"
    assert view.changes() == {b"a": b"1"}


def test_commit_without_parent_overlay_is_refused() -> None:
    with pytest.raises(TypeError):
        Overlay({}).commit()
