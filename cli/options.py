"""Options every `govchain` subcommand shares: where the node's RPC is (`--rpc`, then
$GOVCHAIN_RPC, then node0 of ./devnet-data, then the default), integers checked against
their range, and help that shows each option's default.

It reads the command line, the environment and the devnet manifest; it never talks to a
node.
"""

from __future__ import annotations

import argparse
import json
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENV_RPC = "GOVCHAIN_RPC"
DEFAULT_RPC = "http://127.0.0.1:8545"
DEVNET_MANIFEST = Path("devnet-data") / "devnet.json"
"""The manifest of a devnet in its default folder (devnet/cli.py DEFAULT_DIR, format in
devnet/manifest.py), relative to the working folder. Read as JSON: only its nodes'
`name` and `rpc_url` matter here."""
RPC_HELP = (f"the node's RPC URL, or HOST:PORT for http (default: ${ENV_RPC}, else node0 of "
            f"./{DEVNET_MANIFEST} when there is one, else {DEFAULT_RPC})")


class EndpointError(ValueError):
    """Raised when an endpoint is not an http(s) URL or HOST:PORT, or the devnet manifest
    cannot tell node0's URL; the message names where the endpoint came from."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """The node's RPC that a command talks to, and why that one."""

    url: str
    """Base URL, http(s)://host:port (a trailing /rpc is kept: the SDK accepts it)."""
    source: str
    """Where it came from: --rpc, $GOVCHAIN_RPC, ./devnet-data/devnet.json (node0), or
    the default."""

    def get_unreachable_hint(self) -> str:
        """What to try when nothing answers at `url`, given where it came from."""
        if self.source == "--rpc":
            return "is the node running, and is this its rpc_listen address?"
        if self.source == f"${ENV_RPC}":
            return f"is the node running? fix ${ENV_RPC}, or pass --rpc URL"
        if self.source == "the default":
            return (f"start a node or a devnet (`govchain devnet up`), or pass --rpc URL "
                    f"or set ${ENV_RPC}")
        return (f"is the devnet running? see `govchain devnet status`; or pass --rpc URL "
                f"or set ${ENV_RPC}")


def find_endpoint(flag: str | None, env: Mapping[str, str], cwd: Path) -> Endpoint:
    """The endpoint by precedence: --rpc, $GOVCHAIN_RPC, the devnet manifest, default."""
    if flag:
        return Endpoint(get_http_url(flag, "--rpc"), "--rpc")
    if env.get(ENV_RPC):
        return Endpoint(get_http_url(env[ENV_RPC], f"${ENV_RPC}"), f"${ENV_RPC}")
    if (cwd / DEVNET_MANIFEST).is_file():
        return _find_devnet_endpoint(cwd / DEVNET_MANIFEST)
    return Endpoint(DEFAULT_RPC, "the default")


def get_http_url(text: str, where: str) -> str:
    """`text` as an http(s) URL; HOST:PORT without a scheme means http."""
    url = text.strip()
    if "://" not in url:
        url = "http://" + url
    parts = urllib.parse.urlsplit(url)
    try:
        parts.port  # noqa: B018 - reading it checks it
    except ValueError as e:
        raise EndpointError(f"{where}: {text!r} has no valid port") from e
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EndpointError(f"{where}: {text!r} is not an http(s) URL or HOST:PORT")
    return url.rstrip("/")


def _find_devnet_endpoint(path: Path) -> Endpoint:
    shown = f"./{DEVNET_MANIFEST}"
    try:
        node = json.loads(path.read_text())["nodes"][0]
        name, url = str(node["name"]), str(node["rpc_url"])
    except (OSError, ValueError, LookupError, TypeError) as e:
        raise EndpointError(f"{shown} names no node's rpc_url ({type(e).__name__}: {e}): "
                            f"fix or remove it, or pass --rpc URL or set ${ENV_RPC}") from e
    return Endpoint(get_http_url(url, shown), f"{shown} ({name})")


def add_rpc_option(parser: argparse.ArgumentParser) -> None:
    """`--rpc`, resolved by `resolve_endpoint` once the command line is parsed."""
    parser.add_argument("--rpc", help=RPC_HELP)
    parser.set_defaults(finds_endpoint=True)


def resolve_endpoint(args: argparse.Namespace, env: Mapping[str, str], cwd: Path) -> None:
    """Set args.rpc to the URL and args.endpoint to the Endpoint, for commands that
    took `add_rpc_option`."""
    if getattr(args, "finds_endpoint", False):
        args.endpoint = find_endpoint(args.rpc, env, cwd)
        args.rpc = args.endpoint.url


# ------------------------------------------------------------------ integers


@dataclass(frozen=True, slots=True)
class IntRange:
    """An argparse type: a decimal integer in lo..hi. argparse prefixes the option's name
    to the error (`argument --amount: ... is outside 0..2^64-1`)."""

    lo: int
    """The smallest value allowed."""
    hi: int
    """The largest value allowed."""

    def __call__(self, text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not self.lo <= value <= self.hi:
            raise argparse.ArgumentTypeError(f"{text} is outside {self.describe()}")
        return value

    def describe(self) -> str:
        return f"{_power_name(self.lo)}..{_power_name(self.hi)}"


def _power_name(value: int) -> str:
    """2^64-1 and -2^63 by name: nobody reads 18446744073709551615 at a glance."""
    names = {2**64 - 1: "2^64-1", -(2**63): "-2^63", 2**63 - 1: "2^63-1"}
    return names.get(value, str(value))


U64 = IntRange(0, 2**64 - 1)
"""Amounts, nonces, heights, counts: what the chain's codec carries as an unsigned int."""
FIELD_INT = IntRange(-(2**63), 2**64 - 1)
"""An integer field of a transaction: the codec's whole range."""


def bound_integer_options(parser: argparse.ArgumentParser) -> None:
    """Give every `type=int` option of `parser` and its subcommands the U64 type, so that
    an out-of-range value is refused with the option's name, before anything runs."""
    for action in parser._actions:
        if action.type is int:
            action.type = U64
        for child in _subparsers(action):
            bound_integer_options(child)


# ------------------------------------------------------------------ help


class HelpFormatter(argparse.HelpFormatter):
    """Appends "(default: ...)" to an option's help unless the help already says it.

    Switches (true/false) and options without a default say nothing more."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if not action.option_strings or "default" in text.lower() or default is None \
                or isinstance(default, bool) or default == [] \
                or default is argparse.SUPPRESS:
            return text
        return f"{text} (default: %(default)s)"


def use_help_formatter(parser: argparse.ArgumentParser) -> None:
    """HelpFormatter for `parser` and every subcommand under it."""
    parser.formatter_class = HelpFormatter
    for action in parser._actions:
        for child in _subparsers(action):
            use_help_formatter(child)


def _subparsers(action: argparse.Action) -> list[argparse.ArgumentParser]:
    # argparse has no public accessor for a parser's subcommand table.
    if not isinstance(action, argparse._SubParsersAction):
        return []
    unique: dict[int, Any] = {id(p): p for p in action.choices.values()}
    return list(unique.values())
