"""The node home: config.toml, genesis.json, key files and the data directory.

    HOME/config.toml        settings (see NodeConfig and docs/operator.md)
    HOME/genesis.json       the chain's genesis document
    HOME/validator_key.json the consensus key (absent on a full node)
    HOME/node_key.json      the p2p identity key
    HOME/admin_token        the bearer token of admin RPC methods
    HOME/data/              LevelDB
    HOME/state-snapshots/   state snapshots served to nodes that state-sync

Each setting comes from, in rising priority: its default, the file, an environment
variable GOVCHAIN_<KEY> and a `govchain run` flag. Unknown keys and bad values are
refused at start, naming the key. Key files are encrypted (node.keystore) or, on
devnets, plaintext and flagged as insecure.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import itertools
import json
import os
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chain.crypto import KeyPair, PublicKey
from chain.errors import ChainError
from chain.genesis import Genesis
from chain.keyfile import encode_plain_key
from node.errors import ConfigError
from node.keystore import (
    DEFAULT_KDF_COST,
    PassphraseSource,
    load_key_file,
    write_encrypted_key_file,
)

CONFIG_FILE = "config.toml"
GENESIS_FILE = "genesis.json"
VALIDATOR_KEY_FILE = "validator_key.json"
NODE_KEY_FILE = "node_key.json"
ADMIN_TOKEN_FILE = "admin_token"
DATA_DIR = "data"
STATE_SNAPSHOTS_DIR = "state-snapshots"
"""Apart from HOME/snapshots, where `govchain snapshot` writes database backups."""
ENV_PREFIX = "GOVCHAIN_"
RENAMED_KEYS = {"verify_threads": "verify_workers"}
"""Keys an earlier release wrote into config.toml, read under their new names (and
their GOVCHAIN_ environment variables too)."""
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("human", "json")
PRUNING_MODES = ("head-state-only",)


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
    mempool_max_rejections: int = 100_000
    """Refused or dropped transactions remembered for tx_get, least recently used
    forgotten first (about 390 bytes each: 100,000 are about 37 MiB)."""
    rpc_max_body_bytes: int = 8 * 1024 * 1024
    """Largest accepted JSON-RPC request body."""
    rpc_max_batch: int = 10_000
    """Most calls in one JSON-RPC batch, or transactions in one tx_submit_batch."""
    rpc_rate_limit_per_s: float = 500.0
    """Requests per second allowed per client address (token bucket); 0 turns it off."""
    rpc_rate_burst: int = 1000
    """Requests a client may make at once before the rate limit applies."""
    rpc_admin_allow_local: bool = True
    """Admin methods answer to 127.0.0.1/::1 without the token; false: token always."""
    ws_max_connections: int = 256
    """Most WebSocket clients at once."""
    ws_max_subscriptions: int = 32
    """Most subscriptions per WebSocket client."""
    ws_queue_max: int = 1024
    """Notifications queued per WebSocket client before it is told it lagged."""
    ws_ping_interval_s: float = 15.0
    """Ping each WebSocket client this often; one with no pong is closed."""
    log_level: str = "INFO"
    """DEBUG, INFO, WARNING or ERROR."""
    verify_workers: int = 0
    """Signature verification worker processes; 0 means one per core but one (at least
    one). Formerly verify_threads (GOVCHAIN_VERIFY_THREADS), still read."""
    log_format: str = "human"
    """Log lines as "human" text or "json" objects (one per line, for log shippers)."""
    metrics_enabled: bool = True
    """Serve Prometheus metrics at /metrics on the RPC address."""
    explorer_enabled: bool = True
    """Serve the block explorer page at /explorer/ on the RPC address."""
    max_blocks_behind: int = 2
    """/ready answers 503 while the best peer's height is more than this above ours."""
    ready_min_peers: int = 1
    """/ready answers 503 with fewer peers connected (a node with no `peers` needs none)."""
    key_passphrase_file: str = ""
    """File holding the passphrase of encrypted key files ("" = flag, env or prompt)."""
    pruning: str = "head-state-only"
    """The only mode: no historical state is kept (state at head); see `retain_blocks`."""
    retain_blocks: int = 0
    """Keep the last N blocks (and their tx index) only, deleting older history segments;
    0 keeps every block (archive and full nodes)."""
    p2p_tls: bool = True
    """Encrypt node-to-node links with TLS bound to the node keys (docs/p2p.md); every
    node of a network must agree, since a TLS node does not speak plain WebSocket."""
    p2p_closed: bool = False
    """Admit only peers whose key is in the validator set or in `p2p_allowed_peers`.
    A validator then uses its validator key as its p2p identity."""
    p2p_allowed_peers: list[str] = field(default_factory=list)
    """Hex public keys of the (non-validator) nodes admitted to a closed network."""
    p2p_private_peers: list[str] = field(default_factory=list)
    """Hex node keys of peers whose address this node never tells other peers (peer
    exchange): on a public full node, its ministry's validator."""
    p2p_max_peers: int = 32
    """Most connected peers."""
    p2p_max_inbound_per_host: int = 16
    """Most inbound connections from one IP address (loopback included)."""
    rpc_tls_cert: str = ""
    """PEM certificate (chain) of the RPC server; with `rpc_tls_key` the RPC serves
    https only. A relative path is taken from the node home."""
    rpc_tls_key: str = ""
    """PEM private key of `rpc_tls_cert`."""
    state_sync: bool = False
    """On an empty data directory, fetch a recent certified state from peers in chunks
    instead of replaying history, then follow blocks (docs/state-sync.md); without a
    snapshot offered above the trust point the node block-syncs from genesis."""
    trusted_height: int = 0
    """State sync's trust point: the height of a block the operator trusts (with
    `trusted_hash`); 0 = prove the validator sets from genesis instead."""
    trusted_hash: str = ""
    """The hash (64 hex digits) of the block at `trusted_height`, from a source the
    operator trusts (another ministry's node, its published checkpoint)."""
    upgrade_halt_linger_s: int = 5
    """When the node halts for an upgrade it does not implement, it keeps answering RPC
    (node_status, /health and /ready say why) this many seconds, then exits with status 3."""
    snapshot_interval: int = 1000
    """Take a state snapshot at every height that is a multiple of this and serve the
    last 2 to nodes that state-sync (HOME/state-snapshots); 0 = serve none."""
    signer_address: str = ""
    """Sign through a `govchain signer` at `unix:/path` or `tcp://host:port` instead of
    holding the validator key here ("" = the key file in the home, docs/signer.md)."""
    signer_public_key: str = ""
    """The validator public key (64 hex digits) the signer must hold."""
    signer_tls_cert: str = ""
    """With a tcp:// signer: this node's client certificate (PEM); relative to the home."""
    signer_tls_key: str = ""
    """Its private key (PEM)."""
    signer_tls_ca: str = ""
    """The signer's certificate (PEM), the only one trusted for the signer link."""

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


SOURCE_DEFAULT, SOURCE_FILE, SOURCE_ENV, SOURCE_FLAG = "default", "file", "env", "flag"


def get_setting_docs() -> dict[str, str]:
    """Each NodeConfig key's docstring (the line under it in the class body)."""
    tree = ast.parse(inspect.getsource(NodeConfig))
    class_def = tree.body[0]
    assert isinstance(class_def, ast.ClassDef)
    docs: dict[str, str] = {}
    for item, following in itertools.pairwise(class_def.body):
        if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name) and \
                isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant):
            docs[item.target.id] = " ".join(str(following.value.value).split())
    return docs


def get_env_name(key: str) -> str:
    """The environment variable that overrides `key`, e.g. GOVCHAIN_RPC_LISTEN."""
    return ENV_PREFIX + key.upper()


def parse_setting(key: str, text: str, where: str = "flag") -> Any:
    """A setting's value from the text of an environment variable or a flag."""
    try:
        return _parse_setting(key, text)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e.message}") from e


def _parse_setting(key: str, text: str) -> Any:
    default = getattr(NodeConfig(), key)
    if isinstance(default, bool):
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"config key {key!r} must be true or false, got {text!r}")
    if isinstance(default, int):
        try:
            return int(text.strip())
        except ValueError as e:
            raise ConfigError(f"config key {key!r} must be an integer, got {text!r}") from e
    if isinstance(default, list):
        return [part.strip() for part in text.split(",") if part.strip()]
    return text


def _check_type(key: str, value: Any, where: str) -> None:
    default = getattr(NodeConfig(), key)
    if type(value) is not type(default):
        raise ConfigError(f"{where}: config key {key!r} must be a {type(default).__name__}")
    if isinstance(value, list) and not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: config key {key!r} must be a list of strings")


def validate_config(config: NodeConfig, sources: Mapping[str, str] | None = None) -> None:
    """Refuse values that are of the right type but meaningless, naming the key."""
    def fail(key: str, what: str) -> None:
        source = (sources or {}).get(key, SOURCE_DEFAULT)
        raise ConfigError(f"config key {key!r} (from {source}) {what}, "
                          f"got {getattr(config, key)!r}")

    for key in ("rpc_listen", "p2p_listen"):
        try:
            split_host_port(getattr(config, key), key)
        except ConfigError:
            fail(key, "must be host:port")
    for peer in config.peers:
        try:
            split_host_port(peer, "peers")
        except ConfigError:
            fail("peers", f"must hold host:port entries ({peer!r} is not)")
    for key in ("p2p_allowed_peers", "p2p_private_peers"):
        for text in getattr(config, key):
            try:
                valid = isinstance(text, str) and len(bytes.fromhex(text)) == 32
            except ValueError:
                valid = False
            if not valid:
                fail(key, f"must hold node keys of 64 hex digits ({text!r} is not)")
    if bool(config.rpc_tls_cert) != bool(config.rpc_tls_key):
        fail("rpc_tls_cert", "needs rpc_tls_key too (set both, or neither)")
    if config.log_level not in LOG_LEVELS:
        fail("log_level", "must be one of " + ", ".join(LOG_LEVELS))
    if config.log_format not in LOG_FORMATS:
        fail("log_format", "must be one of " + ", ".join(LOG_FORMATS))
    if config.pruning not in PRUNING_MODES:
        fail("pruning", "must be one of " + ", ".join(PRUNING_MODES))
    for key in ("mempool_max_txs", "mempool_max_bytes", "mempool_max_per_sender",
                "mempool_tx_ttl_s", "mempool_max_rejections", "rpc_max_body_bytes",
                "rpc_max_batch"):
        if getattr(config, key) < 1:
            fail(key, "must be at least 1")
    if (config.trusted_height > 0) != bool(config.trusted_hash):
        fail("trusted_height", "needs trusted_hash too (set both, or neither)")
    if config.trusted_hash and not _is_hash_hex(config.trusted_hash):
        fail("trusted_hash", "must be a block hash of 64 hex digits")
    for key in ("verify_workers", "max_blocks_behind", "ready_min_peers", "trusted_height",
                "snapshot_interval", "upgrade_halt_linger_s", "retain_blocks"):
        if getattr(config, key) < 0:
            fail(key, "must not be negative")
    if not config.moniker.strip():
        fail("moniker", "must not be empty")
    if config.signer_address:
        if not (config.signer_address.startswith("unix:")
                or config.signer_address.startswith("tcp://")):
            fail("signer_address", "must be unix:/path or tcp://host:port")
        if not _is_hash_hex(config.signer_public_key):
            fail("signer_public_key", "must be the signer's public key, 64 hex digits")
        if config.signer_address.startswith("tcp://") and not (
                config.signer_tls_cert and config.signer_tls_key and config.signer_tls_ca):
            fail("signer_address", "a tcp:// signer needs signer_tls_cert, signer_tls_key "
                 "and signer_tls_ca (mutual TLS)")


def _is_hash_hex(text: str) -> bool:
    try:
        return len(bytes.fromhex(text.removeprefix("0x"))) == 32
    except ValueError:
        return False


def load_config_with_sources(
        home: Path, *, env: Mapping[str, str] | None = None,
        overrides: Mapping[str, Any] | None = None) -> tuple[NodeConfig, dict[str, str]]:
    """The effective config and where each value came from (default/file/env/flag).

    `env` defaults to os.environ; `overrides` are `govchain run` flags (strings are
    parsed like environment values).
    """
    path = home / CONFIG_FILE
    try:
        doc = tomllib.loads(path.read_text())
    except FileNotFoundError as e:
        raise ConfigError(f"{path} is missing: run `govchain init --home {home}` first") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path} is not valid TOML: {e}") from e
    config = NodeConfig()
    names = [f.name for f in dataclasses.fields(NodeConfig)]
    sources = dict.fromkeys(names, SOURCE_DEFAULT)
    for key, value in doc.items():
        key = RENAMED_KEYS.get(key, key)
        if key not in names:
            raise ConfigError(f"{path}: unknown config key {key!r}")
        _check_type(key, value, str(path))
        setattr(config, key, value)
        sources[key] = SOURCE_FILE
    environ = os.environ if env is None else env
    old_names = {new: get_env_name(old) for old, new in RENAMED_KEYS.items()}
    for key in names:
        env_name = get_env_name(key)
        if env_name not in environ and key in old_names and old_names[key] in environ:
            env_name = old_names[key]
        text = environ.get(env_name)
        if text is not None:
            setattr(config, key, parse_setting(key, text, f"env {env_name}"))
            sources[key] = SOURCE_ENV
    for key, value in (overrides or {}).items():
        if key not in names:
            raise ConfigError(f"unknown config key {key!r} in a flag")
        value = parse_setting(key, value) if isinstance(value, str) and \
            not isinstance(getattr(config, key), str) else value
        _check_type(key, value, "flag")
        setattr(config, key, value)
        sources[key] = SOURCE_FLAG
    validate_config(config, sources)
    return config, sources


def load_config(home: Path, *, env: Mapping[str, str] | None = None,
                overrides: Mapping[str, Any] | None = None) -> NodeConfig:
    """Read HOME/config.toml with env and flag overrides, refusing unknown keys and values
    of the wrong type."""
    return load_config_with_sources(home, env=env, overrides=overrides)[0]


def render_config(config: NodeConfig) -> str:
    """The TOML text of `config`, one documented key per line."""
    docs = get_setting_docs()
    defaults = NodeConfig()
    lines = ["# govchain node configuration. Every key is optional: a commented-out key",
             "# shows its default. Environment variables GOVCHAIN_<KEY> and `govchain run`",
             "# flags override this file; `govchain config show --home DIR` prints the",
             "# effective values and their sources (docs/operator.md)."]
    for f in dataclasses.fields(NodeConfig):
        value = getattr(config, f.name)
        lines.append("")
        lines.append(f"# {docs.get(f.name, '')}")
        comment = "# " if value == getattr(defaults, f.name) else ""
        lines.append(f"{comment}{f.name} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


def render_settings_table() -> str:
    """The Markdown table of settings in docs/operator.md (checked by a test)."""
    docs = get_setting_docs()
    defaults = NodeConfig()
    rows = ["| key | default | environment | meaning |", "|---|---|---|---|"]
    for f in dataclasses.fields(NodeConfig):
        default = json.dumps(getattr(defaults, f.name))
        rows.append(f"| `{f.name}` | `{default}` | `{get_env_name(f.name)}` | "
                    f"{docs.get(f.name, '')} |")
    return "\n".join(rows) + "\n"


def write_key_file(path: Path, key: KeyPair) -> None:
    """Write a PLAINTEXT key file readable only by its owner (devnets and tests only)."""
    doc = encode_plain_key(key)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")


def read_key_file(path: Path | str, passphrase: PassphraseSource | None = None) -> KeyPair:
    """A key from a plaintext or encrypted key file (unlocked from env, file or prompt)."""
    return load_key_file(Path(path), passphrase or PassphraseSource()).key


def ensure_admin_token(home: Path) -> str:
    """The admin token of `home`, created (owner-only file) if it is missing."""
    path = home / ADMIN_TOKEN_FILE
    try:
        token = path.read_text().strip()
    except FileNotFoundError:
        token = ""
    if not token:
        token = secrets.token_hex(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")
    return token


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
    insecure_key_files: tuple[str, ...] = ()
    """Key files read in plaintext (dev keys): logged as a warning at start."""
    sources: dict[str, str] = field(default_factory=dict)
    """Where each config value came from: default, file, env or flag."""

    @property
    def data_dir(self) -> Path:
        return self.path / DATA_DIR

    @property
    def validator_public_key(self) -> PublicKey | None:
        """The consensus public key: of the key file, or the one the signer holds."""
        if self.validator_key is not None:
            return self.validator_key.public_key
        if self.config.signer_address:
            return PublicKey(bytes.fromhex(self.config.signer_public_key.removeprefix("0x")))
        return None

    @property
    def state_snapshots_dir(self) -> Path:
        return self.path / STATE_SNAPSHOTS_DIR

    @classmethod
    def load(cls, home: Path, *, env: Mapping[str, str] | None = None,
             overrides: Mapping[str, Any] | None = None,
             passphrase: PassphraseSource | None = None) -> NodeHome:
        """Load a home; encrypted keys are unlocked from `passphrase`, else from the
        config's key_passphrase_file, the environment or a prompt."""
        if not home.is_dir():
            raise ConfigError(f"node home {home} does not exist: run `govchain init` first")
        config, sources = load_config_with_sources(home, env=env, overrides=overrides)
        if passphrase is None:
            passphrase = PassphraseSource(file=config.key_passphrase_file or None, env=env)
        validator_path = home / VALIDATOR_KEY_FILE
        if config.signer_address and validator_path.exists():
            raise ConfigError(f"{home}: signer_address is set and {VALIDATOR_KEY_FILE} is "
                              "here too; a validator signs in one place only (move the key "
                              "to the signer's host)")
        validator = load_key_file(validator_path, passphrase) if validator_path.exists() \
            else None
        node_key = load_key_file(home / NODE_KEY_FILE, passphrase)
        insecure = tuple(str(path) for path, loaded in ((validator_path, validator),
                                                        (home / NODE_KEY_FILE, node_key))
                         if loaded is not None and not loaded.encrypted)
        return cls(
            path=home, config=config, genesis=read_genesis(home / GENESIS_FILE),
            validator_key=validator.key if validator else None, node_key=node_key.key,
            insecure_key_files=insecure, sources=sources)


class GenesisMismatchError(ConfigError):
    """Raised when a genesis document's hash is not the one the operator expects."""

    code = "genesis_mismatch"


def validate_genesis_hash(genesis: Genesis, expected: str) -> None:
    """Refuse `genesis` unless its hash is `expected` (64 hex digits, 0x optional)."""
    text = expected.strip().lower().removeprefix("0x")
    try:
        valid = len(bytes.fromhex(text)) == 32
    except ValueError:
        valid = False
    if not valid:
        raise GenesisMismatchError(f"the expected genesis hash {expected!r} is not 64 hex "
                                   "digits")
    if genesis.hash.hex() != text:
        raise GenesisMismatchError(
            f"the genesis has hash {genesis.hash.hex()}, not the expected {text}: it is "
            "another document than the one the ministries agreed on; compare with "
            "`govchain genesis hash` and get the right file")


def init_home(home: Path, genesis_text: str, config: NodeConfig,
              validator_key: KeyPair | None, *, passphrase: bytes | None = None,
              kdf_cost: str = DEFAULT_KDF_COST,
              expected_genesis_hash: str | None = None) -> None:
    """Create a node home; refuses to overwrite an existing one.

    With `passphrase` both keys are written encrypted; without, in plaintext (devnets and
    tests: the node logs them as insecure dev keys at every start). With
    `expected_genesis_hash`, a genesis of any other hash is refused before anything is
    written.
    """
    if (home / CONFIG_FILE).exists():
        raise ConfigError(f"{home} already holds a node home; choose another --home")
    genesis = Genesis.from_json(genesis_text)  # refuse a bad genesis before writing anything
    if expected_genesis_hash is not None:
        validate_genesis_hash(genesis, expected_genesis_hash)
    home.mkdir(parents=True, exist_ok=True)
    (home / GENESIS_FILE).write_text(genesis_text)
    (home / CONFIG_FILE).write_text(render_config(config))
    node_key = KeyPair.generate()
    keys = [(home / NODE_KEY_FILE, node_key)]
    ensure_admin_token(home)
    if config.p2p_tls:
        from node.tls import ensure_p2p_certificate
        ensure_p2p_certificate(home, node_key.public_key.hex())
    if validator_key is not None:
        keys.append((home / VALIDATOR_KEY_FILE, validator_key))
    for path, key in keys:
        if passphrase is None:
            write_key_file(path, key)
        else:
            write_encrypted_key_file(path, key, passphrase, kdf_cost)
