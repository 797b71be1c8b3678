"""Create, start, stop and inspect a devnet: the operations behind `govchain devnet ...`.

A devnet is a directory: genesis/ (keys and genesis.json from `govchain genesis
new`), node{i}/ (homes from `govchain init`, each with node.log), the link proxy's
links.log, partition.json, and the manifest devnet.json. Nodes are driven only
through the `govchain` CLI (`python -m cli ...`) and their JSON-RPC. Commands that
start or stop processes hold the devnet's lock, and every wait has a deadline.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devnet import process
from devnet import signers as signer_procs
from devnet.errors import DevnetError
from devnet.links import (
    APPLIED_FILE,
    PARTITION_FILE,
    STATS_FILE,
    CutPair,
    parse_partition,
    render_partition,
)
from devnet.manifest import (
    DevAccount,
    LinkEntry,
    LinksEntry,
    Manifest,
    NodeEntry,
    SignerEntry,
    has_manifest,
    locked,
    read_manifest,
    write_json_atomically,
    write_manifest,
)
from devnet.ports import HOST, get_free_ports, get_link_pairs, plan_ports
from devnet.process import run_govchain
from devnet.rpc import get_node_status
from devnet.shaping import (
    SHAPE_APPLIED_FILE,
    SHAPE_FILE,
    LinkShape,
    ShapeError,
    ShapeKey,
    ShapeSet,
    parse_shape_file,
    render_shape_file,
    replace_shapes,
)

DEFAULT_CHAIN_ID = "govchain-devnet"
DEFAULT_PARAMS = {"empty_block_interval_ms": 1000}
"""Devnet chain parameters: an empty block every second, so the chain visibly moves."""
DEVNET_SNAPSHOT_INTERVAL = 20
"""The validators of a new devnet take a state snapshot every 20 heights (about 20 s
with the default parameters), so that a node added with state sync can join soon."""
READY_TIMEOUT_S = 60.0
"""How long `up` and `start` wait for a node to answer node_status."""
LINKS_LOG = "links.log"
NODE_LOG = "node.log"

Report = Callable[[str], None]
"""Where progress lines go (stderr in the CLI, nowhere in tests)."""


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True, slots=True)
class UpOptions:
    """What `govchain devnet up` was asked for."""

    devnet_dir: Path
    """The devnet directory."""
    nodes: int | None = None
    """Number of validator nodes (None: 4 for a new devnet, as many as before on resume)."""
    base_port: int = 8545
    """First port of the fixed layout; 0 lets the system choose free ports."""
    chain_id: str = DEFAULT_CHAIN_ID
    """Chain id of a new devnet."""
    accounts: int = 4
    """Funded dev accounts of a new devnet."""
    params: dict[str, int] | None = None
    """Chain parameters overriding DEFAULT_PARAMS."""
    ready_timeout_s: float = READY_TIMEOUT_S
    """Deadline for every node to answer node_status."""
    full_nodes: int = 0
    """Public full nodes of a new devnet, in front of the validators in turn (one per
    ministry when equal to `nodes`); with any, validators admit only each other and
    their own full nodes (docs/operator.md, "Topology")."""
    signers: bool = False
    """Each validator's key in a `govchain signer` process of its own (signer{i} for
    node{i}), reached over a Unix socket in its folder; the key is never in the home."""
    signer_backend: str | None = None
    """Where the signers keep the keys: "file" (a key file in the signer's folder; also
    when None) or "pkcs11" (an Ed25519 key generated inside a SoftHSM2 token of the
    devnet folder)."""


# ------------------------------------------------------------------ create


def create_devnet(options: UpOptions, node_count: int, report: Report = _quiet) -> Manifest:
    """Keys, genesis and one home per node in a new devnet directory; nothing started."""
    root = options.devnet_dir
    plan = plan_ports(node_count, options.base_port)
    genesis_dir = root / "genesis"
    params = {**DEFAULT_PARAMS, **(options.params or {})}
    signers: list[SignerEntry] = []
    if options.signers and options.signer_backend == "pkcs11":
        signers = signer_procs.create_token_signers(root, node_count, report)
        validator_args = [arg for signer in signers
                          for arg in ("--validator-public-key", signer.public_key)]
    else:
        validator_args = ["--validators", str(node_count)]
    report(f"creating keys and genesis for {node_count} validators in {genesis_dir}")
    created = run_govchain("genesis", "new", "--chain-id", options.chain_id, *validator_args,
                           "--accounts", str(options.accounts),
                           "--params", json.dumps(params), "--out-dir", str(genesis_dir))
    if options.signers and options.signer_backend != "pkcs11":
        signers = signer_procs.create_file_signers(root, genesis_dir, created["validators"],
                                                   report)
    names = [f"node{i}" for i in range(node_count)]
    links = [LinkEntry(names[i], names[j], port)
             for (i, j), port in zip(get_link_pairs(node_count), plan.links, strict=True)]
    nodes = []
    for i, name in enumerate(names):
        home = root / name
        peers = [arg for link in links if link.src == name
                 for arg in ("--peer", f"{HOST}:{link.port}")]
        if signers:
            key_args = ["--signer-address", signers[i].address,
                        "--signer-public-key", signers[i].public_key]
        else:
            key_args = ["--validator-key", str(genesis_dir / f"validator{i}_key.json")]
        run_govchain("init", "--home", str(home), "--genesis", created["genesis"], *key_args,
                     "--moniker", name, "--rpc-listen", f"{HOST}:{plan.rpc[i]}",
                     "--p2p-listen", f"{HOST}:{plan.p2p[i]}", *peers, "--no-peer-exchange")
        append_settings(home, {"snapshot_interval": DEVNET_SNAPSHOT_INTERVAL})
        nodes.append(NodeEntry(name=name, rpc_url=f"http://{HOST}:{plan.rpc[i]}",
                               rpc_port=plan.rpc[i], p2p_port=plan.p2p[i], home=str(home),
                               log=str(home / NODE_LOG), validator=True,
                               validator_key=created["validators"][i],
                               signer=signers[i].name if signers else None))
    full_nodes, full_links = _create_full_nodes(root, Path(created["genesis"]), nodes,
                                                options.full_nodes, report)
    nodes += full_nodes
    links += full_links
    manifest = Manifest(
        chain_id=options.chain_id, genesis_hash=created["genesis_hash"], dir=str(root),
        nodes=nodes, accounts=[_read_account(a) for a in created["accounts"]],
        links=LinksEntry(links=links, log=str(root / LINKS_LOG),
                         control=str(root / PARTITION_FILE)), signers=signers)
    write_manifest(manifest)
    return manifest


def _create_full_nodes(root: Path, genesis: Path, validators: list[NodeEntry], count: int,
                       report: Report) -> tuple[list[NodeEntry], list[LinkEntry]]:
    """`count` full nodes, full{j} in front of validator j mod n, and their links: each
    dials its validator and the other full nodes through the link proxy (so partitions
    and shapes apply to them as to the validators' links) and never tells peers its
    validator's address; each validator is closed to all but the validators and its
    own full nodes."""
    if count == 0:
        return [], []
    report(f"creating {count} public full nodes in front of the validators")
    names = [f"full{j}" for j in range(count)]
    fronted = [validators[j % len(validators)] for j in range(count)]
    pairs = [(j, None) for j in range(count)] + [(j, k) for j in range(count)
                                                 for k in range(count) if k != j]
    ports = get_free_ports(2 * count + len(pairs))
    link_ports = iter(ports[2 * count:])
    links = [LinkEntry(names[j], fronted[j].name if k is None else names[k], next(link_ports))
             for j, k in pairs]
    entries: list[NodeEntry] = []
    for j, name in enumerate(names):
        home = root / name
        rpc_port, p2p_port = ports[2 * j], ports[2 * j + 1]
        peers = [arg for link in links if link.src == name
                 for arg in ("--peer", f"{HOST}:{link.port}")]
        run_govchain("init", "--home", str(home), "--genesis", str(genesis),
                     "--moniker", name, "--rpc-listen", f"{HOST}:{rpc_port}",
                     "--p2p-listen", f"{HOST}:{p2p_port}", *peers, "--no-peer-exchange")
        append_settings(home, {"p2p_private_peers": [get_p2p_identity(fronted[j])]})
        entries.append(NodeEntry(name=name, rpc_url=f"http://{HOST}:{rpc_port}",
                                 rpc_port=rpc_port, p2p_port=p2p_port, home=str(home),
                                 log=str(home / NODE_LOG), validator=False,
                                 fronts=fronted[j].name))
    for validator in validators:
        own = [read_node_key(Path(entry.home)) for entry in entries
               if entry.fronts == validator.name]
        # A validator whose key is in a signer meets peers with its node key, which no
        # validator set names: the other validators admit it by name.
        signed_apart = [get_p2p_identity(other) for other in validators
                        if other.signer and other is not validator]
        append_settings(Path(validator.home), {"p2p_closed": True,
                                               "p2p_allowed_peers": own + signed_apart})
    return entries, links


def get_p2p_identity(node: NodeEntry) -> str:
    """The key a validator meets its peers with: its validator key when it holds it, its
    node key when the key is in a signer (a closed network admits validators by the
    validator key, and only a process holding it can prove it)."""
    if node.validator_key and not node.signer:
        return node.validator_key
    return read_node_key(Path(node.home))


def read_node_key(home: Path) -> str:
    """The public node key (hex) of a devnet home (its key file is plaintext)."""
    doc = json.loads((home / "node_key.json").read_text())
    return str(doc["public_key"])


def append_settings(home: Path, settings: dict[str, Any]) -> None:
    """Set config keys that `govchain init` has no flag for, at the end of config.toml
    (where init left them commented out)."""
    lines = [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
    with open(home / "config.toml", "a") as config:
        config.write("\n# Set by govchain devnet.\n" + "\n".join(lines) + "\n")


def _read_account(entry: dict[str, str]) -> DevAccount:
    key_file = Path(entry["key_file"]).resolve()
    doc = json.loads(key_file.read_text())
    return DevAccount(address=entry["address"], secret_key=doc["secret_seed"],
                      key_file=str(key_file))


# ------------------------------------------------------------------ state


def is_node_running(node: NodeEntry) -> bool:
    return process.is_group_running(node.pid, marker=node.home)


def is_signer_running(signer: SignerEntry) -> bool:
    return signer_procs.is_signer_running(signer)


def is_links_running(manifest: Manifest) -> bool:
    return process.is_group_running(manifest.links.pid, marker="devnet.links")


def get_running_names(manifest: Manifest) -> list[str]:
    names = [node.name for node in manifest.nodes if is_node_running(node)]
    names += [signer.name for signer in manifest.signers
              if signer_procs.is_signer_running(signer)]
    return names + (["link proxy"] if is_links_running(manifest) else [])


# ------------------------------------------------------------------ up


def up(options: UpOptions, report: Report = _quiet) -> Manifest:
    """Create the devnet (or reuse a stopped one in the same directory) and start it all.

    On any failure, whatever was started is stopped again before the error is raised.
    """
    root = options.devnet_dir
    with locked(root, create=True):
        if has_manifest(root):
            manifest = read_manifest(root)
            running = get_running_names(manifest)
            if running:
                raise DevnetError(f"a devnet is already running in {root} ({', '.join(running)})"
                                  f": stop it with `govchain devnet down --dir {root}`, "
                                  "or choose another --dir")
            validators = sum(1 for node in manifest.nodes if node.validator)
            full_nodes = sum(1 for node in manifest.nodes if node.fronts)
            if options.nodes is not None and options.nodes != validators:
                raise DevnetError(f"{root} holds a stopped devnet of {validators} "
                                  f"validators, not {options.nodes}: restart it without "
                                  "--nodes, or delete it with `govchain devnet down --clean`")
            if options.full_nodes and options.full_nodes != full_nodes:
                raise DevnetError(f"{root} holds a stopped devnet of {full_nodes} public full "
                                  f"nodes, not {options.full_nodes}: restart it without "
                                  "--full-nodes, or delete it with `govchain devnet down "
                                  "--clean`")
            if options.signers and not manifest.signers:
                raise DevnetError(f"{root} holds a stopped devnet whose validators keep their "
                                  "keys in their homes: restart it without --signers, or "
                                  "delete it with `govchain devnet down --clean`")
            backends = {signer.backend for signer in manifest.signers}
            if options.signer_backend and backends and backends != {options.signer_backend}:
                raise DevnetError(f"{root} holds a stopped devnet whose signers use the "
                                  f"{', '.join(sorted(backends))} back end, not "
                                  f"{options.signer_backend}: restart it without "
                                  "--signer-backend")
            report(f"restarting the stopped devnet in {root}")
        else:
            if root.exists() and any(p.name != ".devnet.lock" for p in root.iterdir()):
                raise DevnetError(f"{root} exists and holds no devnet: choose another --dir")
            try:
                manifest = create_devnet(options, options.nodes or 4, report)
            except BaseException:
                # The directory held nothing but our lock: leave nothing half-made in it.
                shutil.rmtree(root, ignore_errors=True)
                raise
        try:
            _start_all(manifest, options.ready_timeout_s, report)
        except BaseException:
            _stop_all(manifest, report)
            raise
    return manifest


def _start_all(manifest: Manifest, ready_timeout_s: float, report: Report) -> None:
    _start_links(manifest, report)
    # The signers first: the nodes sign from their first round.
    signer_procs.start_signers(manifest, manifest.signers, report)
    for node in manifest.nodes:
        _spawn_node(manifest, node, report)
    deadline = time.monotonic() + ready_timeout_s
    for node in manifest.nodes:
        _wait_ready(manifest, node, deadline)
    report(f"all {len(manifest.nodes)} nodes answer node_status")


def _start_links(manifest: Manifest, report: Report, timeout_s: float = 15.0) -> None:
    root = Path(manifest.dir)
    (root / APPLIED_FILE).unlink(missing_ok=True)
    manifest.links.pid = process.spawn(
        process.python_argv("-m", "devnet.links", str(root)), Path(manifest.links.log),
        env=process.get_python_env())
    write_manifest(manifest)
    report(f"link proxy: pid {manifest.links.pid}, {len(manifest.links.links)} links")
    deadline = time.monotonic() + timeout_s
    while not (root / APPLIED_FILE).exists():  # written once it listens on every port
        if not is_links_running(manifest):
            raise DevnetError(f"the link proxy exited at start: {_tail_text(manifest.links.log)}"
                              f" (see {manifest.links.log})")
        if time.monotonic() > deadline:
            raise DevnetError(f"the link proxy is not ready after {timeout_s:.0f} s: "
                              f"see {manifest.links.log}")
        time.sleep(0.05)


def _spawn_node(manifest: Manifest, node: NodeEntry, report: Report) -> None:
    node.pid = process.spawn(process.python_argv("-m", "cli", "run", "--home", node.home),
                             Path(node.log), env=process.get_python_env())
    write_manifest(manifest)
    report(f"{node.name}: pid {node.pid}, rpc {node.rpc_url}, log {node.log}")


def _wait_ready(manifest: Manifest, node: NodeEntry, deadline: float) -> None:
    """Poll node_status until the node answers for our genesis; DevnetError otherwise."""
    delay = 0.05
    while True:
        status = get_node_status(node.rpc_url, timeout_s=1.0)
        if status is not None:
            if status.get("genesis_hash") != manifest.genesis_hash:
                raise DevnetError(f"{node.rpc_url} answers for genesis "
                                  f"{status.get('genesis_hash')}, not this devnet's: "
                                  "is another node on that port?")
            return
        if not is_node_running(node):
            raise DevnetError(f"{node.name} exited at start: {_tail_text(node.log)} "
                              f"(see {node.log})")
        if time.monotonic() > deadline:
            raise DevnetError(f"{node.name} does not answer node_status at {node.rpc_url} "
                              f"in time: see {node.log}")
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


def _tail_text(log_path: str) -> str:
    lines = read_tail(Path(log_path), 1)
    return lines[-1].strip() if lines else f"(nothing in {log_path})"


# ------------------------------------------------------------------ stop and down


def _stop_all(manifest: Manifest, report: Report) -> None:
    """Stop every node, then the proxy; record that none is running."""
    nodes = [n for n in manifest.nodes if n.pid is not None and is_node_running(n)]
    outcome = process.stop_groups([n.pid for n in nodes if n.pid is not None])
    for node in nodes:
        report(f"{node.name}: {outcome[node.pid or 0]}")
    signers = [s for s in manifest.signers if s.pid is not None
               and signer_procs.is_signer_running(s)]
    outcome = process.stop_groups([s.pid for s in signers if s.pid is not None])
    for signer in signers:
        report(f"{signer.name}: {outcome[signer.pid or 0]}")
    if manifest.links.pid is not None and is_links_running(manifest):
        process.stop_group(manifest.links.pid)
    for node in manifest.nodes:
        node.pid = None
    for signer in manifest.signers:
        signer.pid = None
    manifest.links.pid = None
    if has_manifest(Path(manifest.dir)):
        write_manifest(manifest)


def down(devnet_dir: Path, *, clean: bool = False, report: Report = _quiet) -> None:
    """Stop the whole devnet; with `clean`, delete its directory as well."""
    with locked(devnet_dir):
        manifest = read_manifest(devnet_dir)
        _stop_all(manifest, report)
        if clean:
            # Only a directory holding a manifest gets here: never some other folder.
            shutil.rmtree(devnet_dir)
            report(f"deleted {devnet_dir}")


def start_node(devnet_dir: Path, name: str, ready_timeout_s: float = READY_TIMEOUT_S,
               report: Report = _quiet) -> NodeEntry | SignerEntry:
    """Start a stopped node (or signer) as it is; wait until it answers (or listens)."""
    with locked(devnet_dir):
        manifest = read_manifest(devnet_dir)
        if manifest.is_signer_name(name):
            signer = manifest.get_signer(name)
            if signer_procs.is_signer_running(signer):
                raise DevnetError(f"{signer.name} is already running (pid {signer.pid})")
            signer_procs.start_signers(manifest, [signer], report)
            return signer
        node = manifest.get_node(name)
        if is_node_running(node):
            raise DevnetError(f"{node.name} is already running (pid {node.pid})")
        if not is_links_running(manifest):
            report("the link proxy was not running: starting it")
            _start_links(manifest, report)
        _spawn_node(manifest, node, report)
        _wait_ready(manifest, node, time.monotonic() + ready_timeout_s)
        return node


def add_node(devnet_dir: Path, *, state_sync: bool = False,
             ready_timeout_s: float = READY_TIMEOUT_S, report: Report = _quiet) -> NodeEntry:
    """Create a full node (no validator key) whose peers are the devnet's nodes, start it
    and wait until it answers. With `state_sync` it joins from a validator's snapshot
    instead of replaying the chain (docs/state-sync.md).

    Its links go straight to the other nodes' p2p ports, not through the link proxy:
    partitions and link shapes do not apply to them."""
    with locked(devnet_dir):
        manifest = read_manifest(devnet_dir)
        names = {node.name for node in manifest.nodes}
        name = next(f"node{i}" for i in range(len(names) + 1) if f"node{i}" not in names)
        rpc_port, p2p_port = get_free_ports(2)
        home = devnet_dir / name
        # Behind public full nodes the validators admit no one else: dial the full nodes.
        fronted = [node for node in manifest.nodes if node.fronts]
        peers = [arg for node in fronted or manifest.nodes
                 for arg in ("--peer", f"{HOST}:{node.p2p_port}")]
        report(f"{name}: creating a full node home in {home}"
               + (" (joins by state sync)" if state_sync else ""))
        run_govchain("init", "--home", str(home),
                     "--genesis", str(devnet_dir / "genesis" / "genesis.json"),
                     "--moniker", name, "--rpc-listen", f"{HOST}:{rpc_port}",
                     "--p2p-listen", f"{HOST}:{p2p_port}", *peers, "--no-peer-exchange")
        if state_sync:
            append_settings(home, {"state_sync": True})
            _wait_first_snapshot(manifest, time.monotonic() + ready_timeout_s, report)
        node = NodeEntry(name=name, rpc_url=f"http://{HOST}:{rpc_port}", rpc_port=rpc_port,
                         p2p_port=p2p_port, home=str(home), log=str(home / NODE_LOG),
                         validator=False)
        manifest.nodes.append(node)
        write_manifest(manifest)
        _spawn_node(manifest, node, report)
        _wait_ready(manifest, node, time.monotonic() + ready_timeout_s)
        return node


def _wait_first_snapshot(manifest: Manifest, deadline: float, report: Report) -> None:
    """Wait until a validator serves a state snapshot (without one, a state-syncing node
    would fall back to replaying blocks)."""
    homes = [Path(node.home) for node in manifest.nodes if node.validator]
    announced = False
    while not any(next(home.glob("state-snapshots/*/snapshot.json"), None) for home in homes):
        if not announced:
            report("waiting for a validator's first state snapshot (one every "
                   f"{DEVNET_SNAPSHOT_INTERVAL} heights)")
            announced = True
        if time.monotonic() > deadline:
            raise DevnetError("no validator has taken a state snapshot yet: is the devnet "
                              "running, and does its config set snapshot_interval?")
        time.sleep(0.2)


def stop_node(devnet_dir: Path, name: str, *, kill: bool = False) -> str:
    """SIGTERM (or SIGKILL with `kill`) a node or signer and wait until it is gone; say
    what happened."""
    with locked(devnet_dir):
        manifest = read_manifest(devnet_dir)
        if manifest.is_signer_name(name):
            outcome = signer_procs.stop_signer(manifest.get_signer(name), kill=kill)
        else:
            outcome = _stop_node(manifest.get_node(name), kill=kill)
        write_manifest(manifest)
        return outcome


def _stop_node(node: NodeEntry, *, kill: bool) -> str:
    if node.pid is None or not is_node_running(node):
        node.pid = None
        return "was not running"
    if kill:
        process.kill_group(node.pid)
        outcome = "killed"
    else:
        outcome = process.stop_group(node.pid)
    node.pid = None
    return outcome


def wipe_node(devnet_dir: Path, name: str) -> NodeEntry:
    """Stop a node and delete its data directory, keeping its keys and config."""
    with locked(devnet_dir):
        manifest = read_manifest(devnet_dir)
        if manifest.is_signer_name(name):
            raise DevnetError(f"{name} is a signer: wipe deletes a node's data (a signer's "
                              "sign state is what keeps it from signing twice)")
        node = manifest.get_node(name)
        _stop_node(node, kill=False)
        write_manifest(manifest)
        shutil.rmtree(Path(node.home) / "data", ignore_errors=True)
        return node


# ------------------------------------------------------------------ status and logs


def get_status(devnet_dir: Path) -> dict[str, Any]:
    """What each process is doing: pid alive, height, peers (from node_status)."""
    manifest = read_manifest(devnet_dir)
    nodes = []
    for node in manifest.nodes:
        running = is_node_running(node)
        status = get_node_status(node.rpc_url, timeout_s=1.0) if running else None
        peers = status.get("peers") if status else None
        nodes.append({
            "name": node.name, "pid": node.pid, "alive": running, "rpc_url": node.rpc_url,
            "answering": status is not None,
            "height": status.get("height") if status else None,
            "finalized_height": status.get("finalized_height") if status else None,
            "head_hash": status.get("head_hash") if status else None,
            "peers": len(peers) if isinstance(peers, list) else peers,
            "signer": node.signer,
        })
    signers = [{"name": signer.name, "pid": signer.pid, "node": signer.node,
                "alive": signer_procs.is_signer_running(signer), "backend": signer.backend,
                "address": signer.address, "public_key": signer.public_key}
               for signer in manifest.signers]
    return {"chain_id": manifest.chain_id, "dir": manifest.dir, "nodes": nodes,
            "signers": signers,
            "links": {"pid": manifest.links.pid, "alive": is_links_running(manifest),
                      "cut": [sorted(p) for p in sorted(read_applied_cuts(devnet_dir),
                                                        key=sorted)]}}


def read_tail(path: Path, lines: int, block_bytes: int = 64 * 1024) -> list[str]:
    """The last `lines` lines of a file, reading backwards from its end."""
    if lines <= 0:
        return []
    try:
        with open(path, "rb") as f:
            end = f.seek(0, 2)
            data = b""
            position = end
            while position > 0 and data.count(b"\n") <= lines:
                step = min(block_bytes, position)
                position -= step
                f.seek(position)
                data = f.read(step) + data
    except FileNotFoundError:
        return []
    return data.decode(errors="replace").splitlines(keepends=True)[-lines:]


def get_log_path(devnet_dir: Path, name: str) -> Path:
    manifest = read_manifest(devnet_dir)
    if name in ("links", "proxy"):
        return Path(manifest.links.log)
    if manifest.is_signer_name(name):
        return Path(manifest.get_signer(name).log)
    return Path(manifest.get_node(name).log)


# ------------------------------------------------------------------ partitions


def read_requested_partition(devnet_dir: Path) -> tuple[int, frozenset[CutPair]]:
    try:
        return parse_partition((devnet_dir / PARTITION_FILE).read_text())
    except FileNotFoundError:
        return 0, frozenset()
    except ValueError as e:
        raise DevnetError(f"{devnet_dir / PARTITION_FILE}: {e}") from e


def read_applied_cuts(devnet_dir: Path) -> frozenset[CutPair]:
    try:
        return parse_partition((devnet_dir / APPLIED_FILE).read_text())[1]
    except (FileNotFoundError, ValueError):
        return frozenset()


def compute_group_cuts(names: list[str], groups: list[list[str]]) -> frozenset[CutPair]:
    """Cut pairs that split `names` into `groups`; unnamed nodes form one more group."""
    seen: dict[str, int] = {}
    for index, group in enumerate(groups):
        for name in group:
            if name not in names:
                raise DevnetError(f"no node {name!r} in this devnet (its nodes: "
                                  f"{', '.join(names)})")
            if name in seen:
                raise DevnetError(f"{name} is named in two groups")
            seen[name] = index
    rest = len(groups)
    group_of = {name: seen.get(name, rest) for name in names}
    return frozenset(frozenset((a, b)) for a in names for b in names
                     if a < b and group_of[a] != group_of[b])


def set_partition(devnet_dir: Path, change: Callable[[Manifest, frozenset[CutPair]],
                                                     Iterable[CutPair]],
                  timeout_s: float = 5.0) -> frozenset[CutPair]:
    """Write the new cut set and wait until the proxy applied it (if it runs)."""
    with locked(devnet_dir):
        manifest = read_manifest(devnet_dir)
        version, current = read_requested_partition(devnet_dir)
        cuts = frozenset(change(manifest, current))
        version += 1
        write_json_atomically(devnet_dir / PARTITION_FILE, render_partition(version, cuts))
        if not is_links_running(manifest):
            raise DevnetError("the link proxy is not running: the cut is recorded and applies "
                              f"when it starts (`govchain devnet up --dir {devnet_dir}`)")
        _wait_applied(devnet_dir, version, timeout_s)
        return cuts


def _wait_applied(devnet_dir: Path, version: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            applied, _ = parse_partition((devnet_dir / APPLIED_FILE).read_text())
        except (FileNotFoundError, ValueError):
            applied = -1
        if applied >= version:
            return
        if time.monotonic() > deadline:
            raise DevnetError(f"the link proxy did not apply the partition within "
                              f"{timeout_s:.0f} s: see {devnet_dir / LINKS_LOG}")
        time.sleep(0.05)


def normalize_name(name: str) -> str:
    return f"node{name}" if name.isdigit() else name


# ------------------------------------------------------------------ link shapes


def read_requested_shapes(devnet_dir: Path) -> ShapeSet:
    try:
        return parse_shape_file((devnet_dir / SHAPE_FILE).read_text())
    except FileNotFoundError:
        return ShapeSet()
    except ShapeError as e:
        raise DevnetError(f"{devnet_dir / SHAPE_FILE}: {e}") from e


def read_applied_shapes(devnet_dir: Path) -> ShapeSet | None:
    """The shapes the proxy has in force, None when it has applied none yet."""
    try:
        return parse_shape_file((devnet_dir / SHAPE_APPLIED_FILE).read_text())
    except (FileNotFoundError, ShapeError):
        return None


def get_shape_keys(manifest: Manifest, src: str, dst: str, *, both: bool) -> list[ShapeKey]:
    """The directions `src -> dst` names among the linked nodes; `all` matches every
    node. Only directions of a link count: behind public full nodes, a validator has
    no link to another ministry's full node."""
    linked = {(a, b) for link in manifest.links.links
              for a, b in ((link.src, link.dst), (link.dst, link.src))}
    proxied = [node.name for node in manifest.nodes if any(node.name == a for a, _ in linked)]

    def match(name: str) -> list[str]:
        if name == "all":
            return proxied
        wanted = manifest.get_node(name).name
        if wanted not in proxied:
            raise DevnetError(f"{wanted} does not talk through the link proxy (nodes added "
                              "with add-node reach the others directly)")
        return [wanted]

    keys = {(a, b) for a in match(src) for b in match(dst) if (a, b) in linked}
    if both:
        keys |= {(b, a) for a, b in keys}
    if not keys:
        if src != dst and "all" not in (src, dst):
            raise DevnetError(f"{src} -> {dst} names no link: {match(src)[0]} and "
                              f"{match(dst)[0]} do not talk to each other (a validator talks "
                              "to the validators and its own full nodes only)")
        raise DevnetError(f"{src} -> {dst} names no link (a node has no link to itself)")
    return sorted(keys)


def get_sites(manifest: Manifest) -> dict[str, str]:
    """Where each node stands for `link wan`: a public full node at its validator's site."""
    return {node.name: node.fronts or node.name for node in manifest.nodes}


def set_link_shapes(devnet_dir: Path,
                    change: Callable[[Manifest, ShapeSet], Iterable[tuple[ShapeKey, LinkShape]]],
                    *, seed: int | None = None, timeout_s: float = 5.0) -> ShapeSet:
    """Write the changed shapes (`change` gives the new shape of each direction it
    changes) and wait until the proxy applied them (if it runs)."""
    with locked(devnet_dir):
        manifest = read_manifest(devnet_dir)
        current = read_requested_shapes(devnet_dir)
        shapes = replace_shapes(current, change(manifest, current), seed=seed)
        write_json_atomically(devnet_dir / SHAPE_FILE, render_shape_file(shapes))
        if not is_links_running(manifest):
            raise DevnetError("the link proxy is not running: the shapes are recorded and "
                              f"apply when it starts (`govchain devnet up --dir {devnet_dir}`)")
        deadline = time.monotonic() + timeout_s
        while True:
            applied = read_applied_shapes(devnet_dir)
            if applied is not None and applied.version >= shapes.version:
                return shapes
            if time.monotonic() > deadline:
                raise DevnetError(f"the link proxy did not apply the shapes within "
                                  f"{timeout_s:.0f} s: see {devnet_dir / LINKS_LOG}")
            time.sleep(0.05)


def read_direction_stats(devnet_dir: Path) -> dict[str, dict[str, int]]:
    """Per direction `src->dst`: bytes delivered and segments lost since the proxy started,
    over both links of the pair (from DIR/links.stats.json, written every second)."""
    try:
        doc = json.loads((devnet_dir / STATS_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return {}
    totals: dict[str, dict[str, int]] = {}
    for link in doc.values() if isinstance(doc, dict) else ():
        for direction, counters in link.get("directions", {}).items():
            total = totals.setdefault(direction, {"delivered_bytes": 0, "lost_segments": 0})
            for name in total:
                total[name] += int(counters.get(name, 0))
    return totals
