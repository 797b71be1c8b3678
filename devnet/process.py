"""Start, signal and wait for the devnet's processes, each in its own session.

Every process devnet starts leads its own session and process group, so a signal
reaches it and anything it forked (signature workers), and a Ctrl-C in the
developer's terminal reaches only devnet, which then stops the nodes in order.
Every wait has a deadline; our own children are reaped so none is left a zombie.
A pid read from the manifest is trusted only while its command line still names
the expected home, so a reused pid is never signalled.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from devnet.errors import DevnetError

TERM_TIMEOUT_S = 15.0
"""How long a process gets to exit after SIGTERM before it is killed."""
KILL_TIMEOUT_S = 5.0
"""How long the kernel gets to remove a process after SIGKILL."""
CLI_TIMEOUT_S = 120.0
"""Deadline of one `govchain genesis new`, `govchain init` or `signer init-pkcs11` run."""
_PROC = Path("/proc")

_children: dict[int, subprocess.Popen[bytes]] = {}
"""Processes this process started and has not reaped yet."""


def spawn(argv: Sequence[str], log_path: Path, *, env: dict[str, str] | None = None,
          cwd: Path | None = None) -> int:
    """Start `argv` in a new session with stdout and stderr appended to `log_path`.

    Returns its pid, which is also its process group id.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                env=env, cwd=cwd)
    _children[proc.pid] = proc
    return proc.pid


def get_python_env() -> dict[str, str]:
    """The environment for `python -m cli` / `python -m devnet.links` children.

    The folder holding the devnet package goes first on PYTHONPATH, so children
    import the same govchain as this process, whatever their working directory.
    """
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    paths = [root, *(p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p)]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def python_argv(*args: str) -> list[str]:
    return [sys.executable, *args]


def run_govchain(*args: str, timeout_s: float = CLI_TIMEOUT_S,
                 env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run `govchain --json ARGS` to completion and return its JSON output."""
    argv = python_argv("-m", "cli", "--json", *args)
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s,
                              env={**get_python_env(), **(env or {})},
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise DevnetError(f"`govchain {args[0]}` did not finish within {timeout_s:.0f} s") from e
    if done.returncode != 0:
        lines = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()
        raise DevnetError(f"`govchain {' '.join(args[:2])}` failed: {lines[-1]}")
    try:
        doc: dict[str, Any] = json.loads(done.stdout)
    except ValueError as e:
        raise DevnetError(f"`govchain {args[0]}` printed no JSON: {done.stdout[:200]!r}") from e
    return doc


def _reap(pid: int) -> None:
    """Collect the exit status of `pid` if it is our exited child."""
    proc = _children.get(pid)
    if proc is not None:
        if proc.poll() is not None:
            del _children[pid]
        return
    with contextlib.suppress(ChildProcessError):  # not our child: its parent reaps it
        os.waitpid(pid, os.WNOHANG)


def _read_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, process group) of `pid` from /proc, None when it is gone."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = text[text.rindex(")") + 2:].split()
    return fields[0], int(fields[2])


def read_cmdline(pid: int) -> str | None:
    """The command line of `pid` with spaces between arguments; None when unknown."""
    try:
        raw = (_PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return None
    return raw.replace(b"\0", b" ").decode(errors="replace")


def is_alive(pid: int) -> bool:
    """True when `pid` exists and is not a zombie (reaping it first if it is our child)."""
    _reap(pid)
    if not _PROC.is_dir():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    stat = _read_stat(pid)
    return stat is not None and stat[0] not in "ZX"


def get_group_members(pgid: int) -> list[int]:
    """Living (not zombie) processes of process group `pgid`."""
    _reap(pgid)
    if not _PROC.is_dir():  # no /proc (macOS): ask the kernel about the group
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return []
        except PermissionError:
            return []
        return [pgid]
    members = []
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        stat = _read_stat(int(entry.name))
        if stat is not None and stat[1] == pgid and stat[0] not in "ZX":
            members.append(int(entry.name))
    if not members:
        _reap(pgid)  # the leader may have exited during the scan: leave no zombie of ours
    return members


def is_group_running(pgid: int | None, marker: str | None = None) -> bool:
    """True when process group `pgid` has a living member that is ours.

    `marker` is a string the leader's command line must contain (a node's home):
    a living leader without it is some other program that reused the pid.
    """
    if pgid is None or pgid <= 0:
        return False
    members = get_group_members(pgid)
    if not members:
        return False
    if marker is None or pgid not in members:
        return True
    cmdline = read_cmdline(pgid)
    return cmdline is None or marker in cmdline


def signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def wait_group_gone(pgid: int, timeout_s: float) -> bool:
    """Poll until process group `pgid` has no living member; False at the deadline."""
    deadline = time.monotonic() + timeout_s
    delay = 0.01
    while get_group_members(pgid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.2)
    return True


def stop_group(pgid: int, *, term_timeout_s: float = TERM_TIMEOUT_S,
               kill_timeout_s: float = KILL_TIMEOUT_S) -> str:
    """SIGTERM the group, SIGKILL it after `term_timeout_s`; say which ended it.

    Returns "stopped" (exited after SIGTERM) or "killed". The caller has checked
    that the group is ours (is_group_running).
    """
    signal_group(pgid, signal.SIGTERM)
    if wait_group_gone(pgid, term_timeout_s):
        return "stopped"
    kill_group(pgid, timeout_s=kill_timeout_s)
    return "killed"


def stop_groups(pgids: Sequence[int], *, term_timeout_s: float = TERM_TIMEOUT_S,
                kill_timeout_s: float = KILL_TIMEOUT_S) -> dict[int, str]:
    """stop_group for several groups at once: all get SIGTERM, then one shared deadline."""
    for pgid in pgids:
        signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + term_timeout_s
    result = {}
    for pgid in pgids:
        if wait_group_gone(pgid, max(0.0, deadline - time.monotonic())):
            result[pgid] = "stopped"
        else:
            kill_group(pgid, timeout_s=kill_timeout_s)
            result[pgid] = "killed"
    return result


def kill_group(pgid: int, *, timeout_s: float = KILL_TIMEOUT_S) -> None:
    """SIGKILL the group and wait until it is gone."""
    signal_group(pgid, signal.SIGKILL)
    if not wait_group_gone(pgid, timeout_s):
        raise DevnetError(f"process group {pgid} is still alive {timeout_s:.0f} s after "
                          "SIGKILL (stuck in the kernel?)")
