"""DIR/devnet.json: the public record of one devnet, for the devnet commands and scripts.

The manifest names the chain, every node (ports, pid, home, log), the funded dev
accounts and the link proxy. It is written atomically (temporary file, then rename)
under an exclusive lock, so a reader never sees half a file and two devnet commands
never lose each other's updates. Field names are a stable contract: add, never rename.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from devnet.errors import DevnetError

MANIFEST_FILE = "devnet.json"
LOCK_FILE = ".devnet.lock"
FORMAT_VERSION = 1


@dataclass(slots=True)
class NodeEntry:
    """One node of the devnet."""

    name: str
    """The node's name in devnet commands: node0, node1, ..."""
    rpc_url: str
    """Base URL of its JSON-RPC server (POST {rpc_url}/rpc, GET {rpc_url}/health)."""
    rpc_port: int
    """TCP port of the RPC server on 127.0.0.1."""
    p2p_port: int
    """TCP port the node listens on for peers on 127.0.0.1 (peers reach it via the proxy)."""
    home: str
    """Absolute path of the node home (config.toml, keys, data/)."""
    log: str
    """Absolute path of the node's log file (stdout and stderr, appended)."""
    validator: bool
    """True when the node holds a validator key of the genesis validator set."""
    validator_key: str | None = None
    """The validator's public key (hex), or None for a full node."""
    pid: int | None = None
    """Process id of its `govchain run` (also its process group), None when never started."""
    fronts: str | None = None
    """For a public full node made by `up --full-nodes`: the name of the validator it
    stands in front of (its ministry's); None otherwise."""
    signer: str | None = None
    """For a validator made by `up --signers`: the name of the signer holding its key
    (signer0, ...); None when the key is in its home."""


@dataclass(slots=True)
class SignerEntry:
    """A `govchain signer` process holding one validator's key (`up --signers`)."""

    name: str
    """Its name in devnet commands: signer0, signer1, ... (signer{i} signs for node{i})."""
    node: str
    """The validator it signs for."""
    home: str
    """Absolute path of its folder (key or token settings, sign state, socket, log)."""
    address: str
    """Where the node reaches it: unix:/path/to/signer.sock."""
    public_key: str
    """The validator public key it holds (hex)."""
    backend: str
    """Where the key lives: "file" (a key file in `home`) or "pkcs11" (a SoftHSM2 token)."""
    log: str
    """Absolute path of its log file."""
    pkcs11_module: str | None = None
    """With the pkcs11 back end: the PKCS#11 library it loads (SoftHSM2's)."""
    pid: int | None = None
    """Process id of its `govchain signer` (also its process group), None when stopped."""


@dataclass(slots=True)
class DevAccount:
    """A dev account funded at genesis."""

    address: str
    """The 20-byte address, hex."""
    secret_key: str
    """The 32-byte ed25519 secret seed, hex (a devnet key: never use it elsewhere)."""
    key_file: str
    """Absolute path of its govchain key file (for `govchain tx ... --key`)."""


@dataclass(slots=True)
class LinkEntry:
    """One directed p2p link: `src` dials 127.0.0.1:`port`, the proxy forwards to `dst`."""

    src: str
    """Name of the dialling node."""
    dst: str
    """Name of the node dialled."""
    port: int
    """Port on 127.0.0.1 where the proxy listens for this link."""


@dataclass(slots=True)
class LinksEntry:
    """The link proxy process (`python -m devnet.links DIR`)."""

    links: list[LinkEntry]
    """Every directed link it forwards."""
    log: str
    """Absolute path of its log file."""
    control: str
    """Absolute path of the partition file it watches."""
    pid: int | None = None
    """Its process id (also its process group), None when not started."""


@dataclass(slots=True)
class Manifest:
    """Everything about one devnet."""

    chain_id: str
    """The chain id of its genesis."""
    genesis_hash: str
    """The genesis hash, hex; every node reports it in node_status."""
    dir: str
    """Absolute path of the devnet directory."""
    nodes: list[NodeEntry]
    """Its nodes, in order."""
    accounts: list[DevAccount]
    """The funded dev accounts."""
    links: LinksEntry
    """The link proxy between the nodes."""
    signers: list[SignerEntry] = field(default_factory=list)
    """The signer processes (`up --signers`); empty when each key is in its node's home."""
    version: int = FORMAT_VERSION
    """Format version of this file."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Unknown keys read from a newer file, written back unchanged."""

    def get_node(self, name: str) -> NodeEntry:
        """The node called `name`; `2` is accepted for `node2`."""
        wanted = f"node{name}" if name.isdigit() else name
        for node in self.nodes:
            if node.name == wanted:
                return node
        names = ", ".join(n.name for n in self.nodes)
        signers = ", ".join(s.name for s in self.signers)
        raise DevnetError(f"no node {name!r} in this devnet (its nodes: {names}"
                          + (f"; its signers: {signers})" if signers else ")"))

    def get_signer(self, name: str) -> SignerEntry:
        """The signer called `name` (signer0, ...)."""
        for signer in self.signers:
            if signer.name == name:
                return signer
        names = ", ".join(s.name for s in self.signers) or "none: it was started without " \
            "--signers"
        raise DevnetError(f"no signer {name!r} in this devnet (its signers: {names})")

    def is_signer_name(self, name: str) -> bool:
        """True when `name` names one of the signers rather than a node."""
        return any(signer.name == name for signer in self.signers)

    def to_json(self) -> str:
        doc = asdict(self)
        extra = doc.pop("extra")
        return json.dumps({**extra, **doc}, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        doc = json.loads(text)
        if not isinstance(doc, dict):
            raise ValueError("the manifest is not a JSON object")
        known = {"chain_id", "genesis_hash", "dir", "nodes", "accounts", "links", "signers",
                 "version"}
        links = doc["links"]
        return cls(
            chain_id=doc["chain_id"],
            genesis_hash=doc["genesis_hash"],
            dir=doc["dir"],
            nodes=[NodeEntry(**n) for n in doc["nodes"]],
            accounts=[DevAccount(**a) for a in doc["accounts"]],
            links=LinksEntry(**{**links, "links": [LinkEntry(**k) for k in links["links"]]}),
            signers=[SignerEntry(**s) for s in doc.get("signers", [])],
            version=doc.get("version", FORMAT_VERSION),
            extra={k: v for k, v in doc.items() if k not in known},
        )


def get_manifest_path(devnet_dir: Path) -> Path:
    return devnet_dir / MANIFEST_FILE


def has_manifest(devnet_dir: Path) -> bool:
    return get_manifest_path(devnet_dir).is_file()


def read_manifest(devnet_dir: Path) -> Manifest:
    """Read DIR/devnet.json; DevnetError when there is no devnet there."""
    path = get_manifest_path(devnet_dir)
    try:
        text = path.read_text()
    except FileNotFoundError as e:
        raise DevnetError(f"no devnet in {devnet_dir} ({path.name} is missing): "
                          f"start one with `govchain devnet up --dir {devnet_dir}`") from e
    try:
        return Manifest.from_json(text)
    except (ValueError, KeyError, TypeError) as e:
        raise DevnetError(f"{path} is not a devnet manifest: {e}") from e


def write_manifest(manifest: Manifest) -> None:
    """Write the manifest atomically: readers see the old file or the new one."""
    write_json_atomically(get_manifest_path(Path(manifest.dir)), manifest.to_json())


def write_json_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@contextlib.contextmanager
def locked(devnet_dir: Path, *, create: bool = False,
           timeout_s: float = 90.0) -> Iterator[None]:
    """Hold the devnet's lock: one devnet command changes processes or manifest at a time.

    Commands hold it while they start or stop processes (each step has its own
    deadline), so the wait for it is bounded too.
    """
    if create:
        devnet_dir.mkdir(parents=True, exist_ok=True)
    elif not devnet_dir.is_dir():
        raise DevnetError(f"no devnet in {devnet_dir} (no such directory): start one with "
                          f"`govchain devnet up --dir {devnet_dir}`")
    fd = os.open(devnet_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise DevnetError(f"another devnet command holds {devnet_dir / LOCK_FILE}"
                                      f" for more than {timeout_s:.0f} s") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # closing releases the lock
