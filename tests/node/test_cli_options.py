"""The CLI's shared options: where the RPC endpoint comes from (and what an unreachable
one says), integer options that name themselves when out of range, help for every
option, and `subscribe tx` for a transaction that is already final.

Real `govchain` subprocesses against a real node on OS-assigned ports, in folders
made for each test (a `./devnet-data` manifest is looked for in the working folder).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.main import build_parser
from cli.options import (
    DEFAULT_RPC,
    DEVNET_MANIFEST,
    ENV_RPC,
    U64,
    EndpointError,
    HelpFormatter,
    IntRange,
    find_endpoint,
)
from devnet.cli import DEFAULT_DIR
from devnet.manifest import (
    MANIFEST_FILE,
    LinksEntry,
    Manifest,
    NodeEntry,
    write_manifest,
)
from devnet.ports import get_free_port
from tests.node.procs import ENV, ProcessSet
from tests.node.test_cli import CliChain, start_chain

CLI_ENV = {k: v for k, v in ENV.items() if k != ENV_RPC}


def govchain(*args: str, cwd: Path, env: dict[str, str] | None = None,
             timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
    """`govchain ARGS...` run in `cwd`, with GOVCHAIN_RPC only if `env` sets it."""
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=cwd,
                          env={**CLI_ENV, **(env or {})}, capture_output=True, text=True,
                          timeout=timeout_s)


def write_devnet_manifest(folder: Path, rpc_url: str) -> Path:
    """A manifest as `govchain devnet up` writes it, in folder/devnet-data."""
    devnet_dir = folder / DEFAULT_DIR
    devnet_dir.mkdir(parents=True)
    port = int(rpc_url.rsplit(":", 1)[1])
    nodes = [NodeEntry(f"node{i}", rpc_url if i == 0 else "http://127.0.0.1:1", port + 2 * i,
                       port + 2 * i + 1, str(devnet_dir / f"node{i}"), "log", True)
             for i in range(2)]
    write_manifest(Manifest("govchain-devnet", "00" * 32, str(devnet_dir), nodes, [],
                            LinksEntry([], "links.log", "partition.json")))
    return devnet_dir / MANIFEST_FILE


def dead_url() -> str:
    return f"http://127.0.0.1:{get_free_port()}"


# ------------------------------------------------------------------ endpoint


def test_manifest_path_is_the_devnet_default():
    assert Path(DEFAULT_DIR) / MANIFEST_FILE == DEVNET_MANIFEST


def test_endpoint_order_flag_env_manifest_default(tmp_path: Path):
    assert find_endpoint(None, {}, tmp_path).url == DEFAULT_RPC
    assert "default" in find_endpoint(None, {}, tmp_path).source
    write_devnet_manifest(tmp_path, "http://127.0.0.1:9100")
    from_manifest = find_endpoint(None, {}, tmp_path)
    assert from_manifest.url == "http://127.0.0.1:9100"  # node0, not node1
    assert from_manifest.source == "./devnet-data/devnet.json (node0)"
    from_env = find_endpoint(None, {ENV_RPC: "http://127.0.0.1:9200"}, tmp_path)
    assert (from_env.url, from_env.source) == ("http://127.0.0.1:9200", "$GOVCHAIN_RPC")
    from_flag = find_endpoint("http://127.0.0.1:9300", {ENV_RPC: "http://x:1"}, tmp_path)
    assert (from_flag.url, from_flag.source) == ("http://127.0.0.1:9300", "--rpc")


@pytest.mark.parametrize("text, url", [
    ("127.0.0.1:8547", "http://127.0.0.1:8547"),
    ("localhost:8547", "http://localhost:8547"),
    ("https://node.example:443/", "https://node.example:443"),
    ("http://127.0.0.1:8547/rpc", "http://127.0.0.1:8547/rpc"),
])
def test_endpoint_without_scheme_is_http(tmp_path: Path, text: str, url: str):
    assert find_endpoint(text, {}, tmp_path).url == url
    assert find_endpoint(None, {ENV_RPC: text}, tmp_path).url == url


@pytest.mark.parametrize("text, needle", [
    ("ftp://127.0.0.1:21", "not an http(s) URL"),
    ("127.0.0.1:notaport", "port"),
    ("http://", "not an http(s) URL"),
])
def test_invalid_endpoint_names_where_it_came_from(tmp_path: Path, text: str, needle: str):
    with pytest.raises(EndpointError) as info:
        find_endpoint(text, {}, tmp_path)
    assert str(info.value).startswith("--rpc: ") and needle in str(info.value)
    with pytest.raises(EndpointError) as info:
        find_endpoint(None, {ENV_RPC: text}, tmp_path)
    assert str(info.value).startswith("$GOVCHAIN_RPC: ")


def test_invalid_devnet_manifest_is_named(tmp_path: Path):
    (tmp_path / DEFAULT_DIR).mkdir()
    (tmp_path / DEVNET_MANIFEST).write_text('{"nodes": []}')
    with pytest.raises(EndpointError) as info:
        find_endpoint(None, {}, tmp_path)
    assert "devnet-data/devnet.json" in str(info.value) and "--rpc" in str(info.value)
    assert find_endpoint("127.0.0.1:1", {}, tmp_path).source == "--rpc"  # not read then


@pytest.mark.parametrize("where", ["manifest", "env", "flag"])
def test_invalid_unreachable_endpoint_says_which_and_what_to_try(tmp_path: Path, where: str):
    url = dead_url()
    args, env = ["query", "status"], {}
    if where == "manifest":
        write_devnet_manifest(tmp_path, url)
        source, hint = "./devnet-data/devnet.json (node0)", "govchain devnet status"
    elif where == "env":
        env = {ENV_RPC: url.removeprefix("http://")}
        source, hint = "$GOVCHAIN_RPC", "--rpc"
    else:
        args += ["--rpc", url]
        source, hint = "--rpc", "is the node running"
    result = govchain(*args, cwd=tmp_path, env=env)
    assert result.returncode == 1, result
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("govchain: error: unreachable"), lines
    assert url in lines[0] and f"from {source}" in lines[0] and hint in lines[0], lines[0]


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliChain]:
    procs = ProcessSet()
    try:
        yield start_chain(tmp_path_factory.mktemp("cli-options-chain"), procs)
    finally:
        procs.close()


def test_every_command_finds_the_devnet_without_rpc(chain: CliChain, tmp_path: Path):
    write_devnet_manifest(tmp_path, chain.node.rpc_url)
    result = govchain("--json", "query", "status", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["chain_id"] == "govchain-cli"
    receiver = chain.address(1)
    result = govchain("--json", "query", "account", receiver, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    result = govchain("--json", "rpc", "node_status", cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def test_env_then_flag_take_precedence(chain: CliChain, tmp_path: Path):
    write_devnet_manifest(tmp_path, dead_url())
    host_port = chain.node.rpc_url.removeprefix("http://")
    result = govchain("--json", "query", "status", cwd=tmp_path, env={ENV_RPC: host_port})
    assert result.returncode == 0, result.stderr
    result = govchain("--json", "query", "status", "--rpc", host_port, cwd=tmp_path,
                      env={ENV_RPC: dead_url()})
    assert result.returncode == 0, result.stderr


# ------------------------------------------------------------------ subscribe tx


def test_subscribe_tx_after_no_wait_transfer_returns(chain: CliChain, tmp_path: Path):
    for _ in range(3):  # it hung every time
        sent = govchain("--json", "tx", "transfer", "--no-wait", "--key", chain.account_key(1),
                        "--to", chain.address(0), "--amount", "1", *chain.rpc, cwd=tmp_path)
        assert sent.returncode == 0, sent.stderr
        tx_hash = json.loads(sent.stdout)["hash"]
        followed = govchain("--json", "subscribe", "tx", "--hash", tx_hash, *chain.rpc,
                            cwd=tmp_path, timeout_s=30)
        assert followed.returncode == 0, followed.stderr
        result = json.loads(followed.stdout)
        assert (result["type"], result["status"], result["hash"]) == ("tx", "final", tx_hash)
        again = govchain("--json", "subscribe", "tx", "--hash", tx_hash, *chain.rpc,
                         cwd=tmp_path, timeout_s=30)  # now surely final before subscribing
        assert again.returncode == 0 and json.loads(again.stdout)["status"] == "final"


def test_invalid_subscribe_tx_that_never_comes_times_out(chain: CliChain, tmp_path: Path):
    result = govchain("subscribe", "tx", "--hash", "ab" * 32, "--timeout", "0.5", *chain.rpc,
                      cwd=tmp_path, timeout_s=30)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("govchain: error: timeout: "), lines
    assert "ab" * 32 in lines[0] and "unknown" in lines[0]


# ------------------------------------------------------------------ integers


def each_parser(parser: argparse.ArgumentParser, path: str = "govchain"
                ) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            seen: set[int] = set()
            for name, child in action.choices.items():
                if id(child) not in seen:  # aliases share a parser
                    seen.add(id(child))
                    yield from each_parser(child, f"{path} {name}")


def each_argument(parser: argparse.ArgumentParser
                  ) -> Iterator[tuple[str, argparse.ArgumentParser, argparse.Action]]:
    for path, p in each_parser(parser):
        for action in p._actions:
            if not isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
                yield path, p, action


def test_every_integer_option_has_bounds():
    integers = [(path, a) for path, _, a in each_argument(build_parser())
                if isinstance(a.type, IntRange) or a.type is int]
    assert len(integers) > 20
    plain = [f"{path} {a.option_strings}" for path, a in integers if a.type is int]
    assert plain == []


def test_integer_type_names_the_range():
    assert U64("18446744073709551615") == 2**64 - 1
    with pytest.raises(argparse.ArgumentTypeError, match=r"^99999999999999999999 is "
                                                         r"outside 0\.\.2\^64-1$"):
        U64("99999999999999999999")
    with pytest.raises(argparse.ArgumentTypeError, match=r"^-1 is outside 0\.\.2\^64-1$"):
        U64("-1")
    with pytest.raises(argparse.ArgumentTypeError, match="'ten' is not an integer"):
        U64("ten")


@pytest.mark.parametrize("args, option", [
    (["tx", "transfer", "--key", "k.json", "--to", "00" * 20, "--amount",
      "99999999999999999999"], "--amount"),
    (["tx", "transfer", "--key", "k.json", "--to", "00" * 20, "--amount", "1",
      "--nonce", "-1"], "--nonce"),
    (["tx", "mint", "--asset", "KGS", "--to", "00" * 20, "--key", "k.json", "--amount",
      "99999999999999999999"], "--amount"),
    (["subscribe", "blocks", "--from-height", "2e3"], "--from-height"),
    (["devnet", "up", "--accounts", "99999999999999999999"], "--accounts"),
])
def test_invalid_integer_option_is_named(tmp_path: Path, args: list[str], option: str):
    result = govchain(*args, cwd=tmp_path)
    assert result.returncode == 2
    last = result.stderr.splitlines()[-1]
    assert f"argument {option}: " in last and ("outside 0..2^64-1" in last
                                              or "not an integer" in last), last
    assert "Traceback" not in result.stderr
    assert not (tmp_path / DEFAULT_DIR).exists()  # refused before doing anything


def test_invalid_integer_field_is_named(tmp_path: Path):
    result = govchain("tx", "build", "--type", "transfer", "--sender", "00" * 20,
                      "--chain-id", "c", "--nonce", "0", "--field",
                      "amount=99999999999999999999", "--out", str(tmp_path / "tx.json"),
                      cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == ("govchain: error: --field amount: 99999999999999999999 "
                                     "is outside -2^63..2^64-1")
    assert not (tmp_path / "tx.json").exists()


# ------------------------------------------------------------------ help


def test_every_option_has_help_and_shows_its_default():
    parser = build_parser()
    missing = [f"{path} {a.option_strings or a.dest}"
               for path, _, a in each_argument(parser) if not a.help]
    assert missing == []
    for path, p, action in each_argument(parser):
        assert p.formatter_class is HelpFormatter, path
        default = action.default
        if default is None or isinstance(default, bool) or default in ([], ()) or \
                default is argparse.SUPPRESS or not action.option_strings:
            continue
        shown = HelpFormatter(path)._get_help_string(action) or ""
        assert "default" in shown.lower(), f"{path} {action.option_strings}: {shown}"


def test_help_shows_defaults_and_the_endpoint_order(tmp_path: Path):
    result = govchain("tx", "transfer", "--help", cwd=tmp_path)
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "(default: GOV)" in text
    assert "$GOVCHAIN_RPC" in text and "./devnet-data" in text and DEFAULT_RPC in text
