"""The node home: config.toml, genesis.json, key files and the data directory.

    HOME/config.toml        settings (see NodeConfig and docs/operator.md)
    HOME/genesis.json       the chain's genesis document
    HOME/validator_key.json the consensus key (absent on a full node)
    HOME/node_key.json      the p2p identity key
    HOME/data/              LevelDB

Unknown keys and bad values are refused at start, naming the key.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chain.crypto import KeyPair
from chain.errors import ChainError
from chain.genesis import Genesis
from node.errors import ConfigError

CONFIG_FILE = "config.toml"
GENESIS_FILE = "genesis.json"
VALIDATOR_KEY_FILE = "validator_key.json"
NODE_KEY_FILE = "node_key.json"
DATA_DIR = "data"


@dataclass(slots=True)
class NodeConfig:
    """Effective settings of one node; each has a default suitable for a devnet."""

    moniker: str = "govchain-node"
    """A human name for logs and status."""
    rpc_listen: str = "127.0.0.1:8545"
    """host:port of the JSON-RPC / WebSocket / health server."""
    p2p_listen: str = "127.0.0.1:26656"
    """host:port of the node-to-node WebSocket server."""
    peers: list[str] = field(default_factory=list)
    """Static peers as host:port, dialled at start and re-dialled when lost."""
    peer_exchange: bool = True
    """Learn and dial peers of peers; off to dial only `peers` (devnet partitions)."""
    mempool_max_txs: int = 100_000
    """Most transactions held in the mempool."""
    mempool_max_bytes: int = 128 * 1024 * 1024
    """Most bytes of transactions held in the mempool."""
    mempool_max_per_sender: int = 1024
    """Most pending transactions of one sender (also the nonce window ahead)."""
    mempool_tx_ttl_s: int = 600
    """A pending transaction older than this is dropped as expired."""
    rpc_max_body_bytes: int = 8 * 1024 * 1024
    """Largest accepted JSON-RPC request body."""
    rpc_max_batch: int = 10_000
    """Most calls in one JSON-RPC batch, or transactions in one tx_submit_batch."""
    log_level: str = "INFO"
    """DEBUG, INFO, WARNING or ERROR."""
    verify_threads: int = 0
    """Signature verification threads; 0 means one per core."""
    p2p_tls: bool = True
    """Encrypt node-to-node links with TLS bound to the node keys (docs/p2p.md); every
    node of a network must agree, since a TLS node does not speak plain WebSocket."""
    p2p_closed: bool = False
    """Admit only peers whose key is in the validator set or in `p2p_allowed_peers`.
    A validator then uses its validator key as its p2p identity."""
    p2p_allowed_peers: list[str] = field(default_factory=list)
    """Hex public keys of the (non-validator) nodes admitted to a closed network."""
    p2p_max_peers: int = 32
    """Most connected peers."""
    p2p_max_inbound_per_host: int = 16
    """Most inbound connections from one IP address (loopback included)."""
    rpc_tls_cert: str = ""
    """PEM certificate (chain) of the RPC server; with `rpc_tls_key` the RPC serves
    https only. A relative path is taken from the node home."""
    rpc_tls_key: str = ""
    """PEM private key of `rpc_tls_cert`."""

    @property
    def rpc_host_port(self) -> tuple[str, int]:
        return split_host_port(self.rpc_listen, "rpc_listen")

    @property
    def p2p_host_port(self) -> tuple[str, int]:
        return split_host_port(self.p2p_listen, "p2p_listen")


def split_host_port(value: str, key: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"config key {key!r}: expected host:port, got {value!r}")
    return host, int(port)


def load_config(home: Path) -> NodeConfig:
    """Read HOME/config.toml, refusing unknown keys and values of the wrong type."""
    path = home / CONFIG_FILE
    try:
        doc = tomllib.loads(path.read_text())
    except FileNotFoundError as e:
        raise ConfigError(f"{path} is missing: run `govchain init --home {home}` first") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path} is not valid TOML: {e}") from e
    config = NodeConfig()
    fields = {f.name: f for f in dataclasses.fields(NodeConfig)}
    for key, value in doc.items():
        if key not in fields:
            raise ConfigError(f"{path}: unknown config key {key!r}")
        default = getattr(config, key)
        if type(value) is not type(default):
            raise ConfigError(f"{path}: config key {key!r} must be a {type(default).__name__}")
        setattr(config, key, value)
    config.rpc_host_port  # noqa: B018  (validates)
    config.p2p_host_port  # noqa: B018
    for text in config.p2p_allowed_peers:
        try:
            valid = isinstance(text, str) and len(bytes.fromhex(text)) == 32
        except ValueError:
            valid = False
        if not valid:
            raise ConfigError(f"{path}: config key 'p2p_allowed_peers': {text!r} is not "
                              "a node key (64 hex digits)")
    if bool(config.rpc_tls_cert) != bool(config.rpc_tls_key):
        raise ConfigError(f"{path}: set both rpc_tls_cert and rpc_tls_key, or neither")
    if config.log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"{path}: config key 'log_level' must be DEBUG, INFO, WARNING or ERROR")
    return config


def render_config(config: NodeConfig) -> str:
    """The TOML text of `config`, one documented key per line."""
    lines = ["# govchain node configuration; every key is optional (defaults shown by",
             "# `govchain config show`)."]
    for f in dataclasses.fields(NodeConfig):
        value = getattr(config, f.name)
        lines.append(f"{f.name} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


def write_key_file(path: Path, key: KeyPair) -> None:
    """Write a key file readable only by its owner."""
    doc = {"public_key": key.public_key.hex(), "secret_seed": key.seed.hex()}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")


def read_key_file(path: Path) -> KeyPair:
    try:
        doc: Any = json.loads(path.read_text())
        key = KeyPair.from_seed(bytes.fromhex(doc["secret_seed"]))
    except FileNotFoundError as e:
        raise ConfigError(f"key file {path} is missing") from e
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"key file {path} is not a govchain key file") from e
    if "public_key" in doc and doc["public_key"] != key.public_key.hex():
        raise ConfigError(f"key file {path}: public_key does not match the secret seed")
    return key


def read_genesis(path: Path) -> Genesis:
    try:
        return Genesis.from_json(path.read_text())
    except FileNotFoundError as e:
        raise ConfigError(f"genesis file {path} is missing") from e
    except ChainError as e:
        raise ConfigError(f"genesis file {path}: {e.message}") from e


@dataclass(frozen=True)
class NodeHome:
    """Everything loaded from a node home directory."""

    path: Path
    """The home directory."""
    config: NodeConfig
    """Effective settings."""
    genesis: Genesis
    """The chain's genesis."""
    validator_key: KeyPair | None
    """The consensus key, or None for a full node."""
    node_key: KeyPair
    """The p2p identity key."""

    @property
    def data_dir(self) -> Path:
        return self.path / DATA_DIR

    @classmethod
    def load(cls, home: Path) -> NodeHome:
        if not home.is_dir():
            raise ConfigError(f"node home {home} does not exist: run `govchain init` first")
        validator_path = home / VALIDATOR_KEY_FILE
        return cls(
            path=home,
            config=load_config(home),
            genesis=read_genesis(home / GENESIS_FILE),
            validator_key=read_key_file(validator_path) if validator_path.exists() else None,
            node_key=read_key_file(home / NODE_KEY_FILE),
        )


def init_home(home: Path, genesis_text: str, config: NodeConfig,
              validator_key: KeyPair | None) -> None:
    """Create a node home; refuses to overwrite an existing one."""
    if (home / CONFIG_FILE).exists():
        raise ConfigError(f"{home} already holds a node home; choose another --home")
    home.mkdir(parents=True, exist_ok=True)
    Genesis.from_json(genesis_text)  # refuse a bad genesis before writing anything
    (home / GENESIS_FILE).write_text(genesis_text)
    (home / CONFIG_FILE).write_text(render_config(config))
    node_key = KeyPair.generate()
    write_key_file(home / NODE_KEY_FILE, node_key)
    if config.p2p_tls:
        from node.tls import ensure_p2p_certificate
        ensure_p2p_certificate(home, node_key.public_key.hex())
    if validator_key is not None:
        write_key_file(home / VALIDATOR_KEY_FILE, validator_key)
