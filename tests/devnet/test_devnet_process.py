"""Process groups: stop, kill and wait with deadlines, leaving no process and no zombie."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devnet import process

Spawn = Callable[..., int]

# A stub that forks a grandchild, as a node forks signature workers.
PARENT_WITH_CHILD = (
    "import subprocess, sys, time;"
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
    "print('ready', flush=True); time.sleep(60)"
)
IGNORES_SIGTERM = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
    "print('ready', flush=True); time.sleep(60)"
)


def _wait_for_line(log: Path, text: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline, f"{text!r} not in {log} before the deadline"
        time.sleep(0.01)


def _is_zombie_or_gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat[stat.rindex(")") + 2] in "ZX"


@pytest.fixture
def spawned(tmp_path: Path) -> Iterator[Spawn]:
    """Spawn stubs; whatever a test leaves running is killed and reaped."""
    pids: list[int] = []

    def spawn(code: str, marker: str = "") -> int:
        argv = [sys.executable, "-c", code, *([marker] if marker else [])]
        pid = process.spawn(argv, tmp_path / f"stub{len(pids)}.log")
        pids.append(pid)
        return pid

    yield spawn
    for pid in pids:
        if process.get_group_members(pid):
            process.kill_group(pid)
    for pid in pids:
        assert not process.get_group_members(pid)


def test_stop_group_ends_the_process_and_its_children(spawned: Spawn, tmp_path: Path) -> None:
    pid = spawned(PARENT_WITH_CHILD)
    _wait_for_line(tmp_path / "stub0.log", "ready")
    members = process.get_group_members(pid)
    assert pid in members and len(members) == 2
    assert os.getpgid(pid) == pid  # its own group, and its own session
    assert os.getsid(pid) == pid

    assert process.stop_group(pid, term_timeout_s=10) == "stopped"

    assert process.get_group_members(pid) == []
    assert all(_is_zombie_or_gone(member) for member in members)
    assert _is_zombie_or_gone(pid) and not Path(f"/proc/{pid}").exists()  # reaped


def test_stop_group_kills_a_process_that_ignores_sigterm(spawned: Spawn, tmp_path: Path) -> None:
    pid = spawned(IGNORES_SIGTERM)
    _wait_for_line(tmp_path / "stub0.log", "ready")
    assert process.stop_group(pid, term_timeout_s=0.3) == "killed"
    assert not process.is_group_running(pid)
    assert not Path(f"/proc/{pid}").exists()


def test_stop_groups_stops_several_at_once(spawned: Spawn, tmp_path: Path) -> None:
    pids = [spawned(PARENT_WITH_CHILD), spawned(IGNORES_SIGTERM)]
    for i in range(2):
        _wait_for_line(tmp_path / f"stub{i}.log", "ready")
    assert process.stop_groups(pids, term_timeout_s=1.0) == {pids[0]: "stopped",
                                                             pids[1]: "killed"}
    assert not any(process.get_group_members(pid) for pid in pids)


def test_kill_group(spawned: Spawn, tmp_path: Path) -> None:
    pid = spawned(PARENT_WITH_CHILD)
    _wait_for_line(tmp_path / "stub0.log", "ready")
    process.kill_group(pid)
    assert process.get_group_members(pid) == []


def test_marker_guards_against_a_reused_pid(spawned: Spawn, tmp_path: Path) -> None:
    pid = spawned("import time; time.sleep(60)", marker="/devnet/node0")
    assert process.is_group_running(pid, marker="/devnet/node0")
    assert not process.is_group_running(pid, marker="/devnet/node1")
    assert not process.is_group_running(None)


def test_a_process_that_exits_by_itself_is_reaped(spawned: Spawn) -> None:
    pid = spawned("pass")
    assert process.wait_group_gone(pid, timeout_s=10)
    assert not Path(f"/proc/{pid}").exists()


def test_python_env_puts_this_govchain_first() -> None:
    env = process.get_python_env()
    root = str(Path(process.__file__).resolve().parent.parent)
    assert env["PYTHONPATH"].split(os.pathsep)[0] == root
