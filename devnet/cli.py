"""`govchain devnet ...`: argparse wiring and printing for the devnet commands.

node/cli.py calls add_devnet_parser(subparsers). Each command is a short function
over devnet.network that returns an exit status; DevnetError and OS errors are
printed here as one `govchain: error: ...` line, since node/cli does not know them.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from devnet import network
from devnet.errors import DevnetError
from devnet.manifest import Manifest, SignerEntry, has_manifest, read_manifest
from devnet.ports import DEFAULT_BASE_PORT
from devnet.shaping import (
    LinkShape,
    ShapeError,
    ShapeSet,
    format_rate,
    make_wan_profile,
    parse_duration_ms,
    parse_loss,
    parse_rate_bps,
)

DEFAULT_DIR = "devnet-data"
Command = Callable[[argparse.Namespace], int]


def _report(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _guarded(func: Command) -> Command:
    """Print our errors as one line and return 1; Ctrl-C returns 130."""

    @functools.wraps(func)
    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except DevnetError as e:
            print(f"govchain: error: {e}", file=sys.stderr)
        except OSError as e:
            print(f"govchain: error: {e}", file=sys.stderr)
        except KeyboardInterrupt:
            return 130
        return 1

    return run


def _dir(args: argparse.Namespace) -> Path:
    return Path(args.dir).expanduser().resolve()


def _print_json(doc: Any) -> None:
    print(json.dumps(doc, indent=2, sort_keys=True))


# ------------------------------------------------------------------ up


def cmd_up(args: argparse.Namespace) -> int:
    try:
        params = json.loads(args.params) if args.params else None
    except ValueError as e:
        raise DevnetError(f"--params is not JSON: {e}") from e
    options = network.UpOptions(
        devnet_dir=_dir(args), nodes=args.nodes, base_port=args.base_port,
        chain_id=args.chain_id, accounts=args.accounts, params=params,
        ready_timeout_s=args.timeout, full_nodes=args.full_nodes,
        signers=args.signers or args.signer_backend is not None,
        signer_backend=args.signer_backend)
    if options.nodes is not None and options.nodes < 1:
        raise DevnetError("--nodes must be at least 1")
    if options.full_nodes < 0:
        raise DevnetError("--full-nodes must not be negative")
    manifest = network.up(options, _report)
    if args.json:
        _print_json(json.loads(manifest.to_json()))
    else:
        _print_summary(manifest, args.detach)
    if args.detach:
        return 0
    return _run_foreground(manifest)


def _print_summary(manifest: Manifest, detached: bool) -> None:
    root = manifest.dir
    print(f"devnet {manifest.chain_id} is up in {root}")
    print(f"genesis {manifest.genesis_hash}")
    print()
    for node in manifest.nodes:
        print(f"  {node.name}  {node.rpc_url}  p2p {node.p2p_port}  pid {node.pid}  "
              f"log {node.log}" + (f"  (public, in front of {node.fronts})"
                                   if node.fronts else ""))
    signers = {signer.node: signer for signer in manifest.signers}
    print()
    print("validator keys:")
    for node in manifest.nodes:
        if not node.validator:
            continue
        signer = signers.get(node.name)
        if signer is None:
            print(f"  {node.name}  in its home, {node.home}/validator_key.json")
        elif signer.backend == "pkcs11":
            print(f"  {node.name}  in SoftHSM2 token {signer.name} ({root}/softhsm), signed "
                  f"by {signer.name}: pid {signer.pid}, {signer.address}, log {signer.log}")
        else:
            print(f"  {node.name}  in {signer.home}/validator_key.json, signed by "
                  f"{signer.name}: pid {signer.pid}, {signer.address}, log {signer.log}")
    public = [node.rpc_url for node in manifest.nodes if node.fronts]
    if public:
        print()
        print("public endpoints (give these to integrators; the validators' RPC stays "
              "for their operators):")
        for url in public:
            print(f"  {url}")
    print()
    print("dev accounts (funded at genesis; devnet keys, never use them elsewhere):")
    for account in manifest.accounts:
        print(f"  address {account.address}  secret key {account.secret_key}")
        print(f"    key file {account.key_file}")
    print()
    print(f"manifest  {root}/devnet.json")
    print(f"status    govchain devnet status --dir {root}")
    if detached:
        print(f"stop      govchain devnet down --dir {root}")
    else:
        print(f"stop      press Ctrl-C (or: govchain devnet down --dir {root})")
    sys.stdout.flush()


def _run_foreground(manifest: Manifest) -> int:
    """Wait for Ctrl-C or SIGTERM, reporting nodes that stop or restart; then stop all."""
    root = Path(manifest.dir)
    signals = {signal.SIGINT, signal.SIGTERM}
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        alive = {node.name: True for node in manifest.nodes}
        alive.update((signer.name, True) for signer in manifest.signers)
        while signal.sigtimedwait(signals, 1.0) is None:
            if not has_manifest(root):
                _report("the devnet directory was deleted: exiting")
                return 0
            current = read_manifest(root)
            processes = [(node.name, node.pid, network.is_node_running(node))
                         for node in current.nodes]
            processes += [(signer.name, signer.pid, network.is_signer_running(signer))
                          for signer in current.signers]
            for name, pid, now in processes:
                if now != alive.get(name, True):
                    _report(f"{name}: {'running, pid ' + str(pid) if now else 'stopped'}")
                alive[name] = now
            if not network.get_running_names(current):
                _report("every process of the devnet has stopped: exiting")
                return 0
        _report("stopping the devnet ...")
        network.down(root, report=_report)
        _report(f"stopped; the data stays in {root} (`govchain devnet up --dir {root}` "
                "restarts it)")
        return 0
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)


# ------------------------------------------------------------------ control


def cmd_status(args: argparse.Namespace) -> int:
    status = network.get_status(_dir(args))
    if args.json:
        _print_json(status)
        return 0
    rows = [("NODE", "PID", "STATE", "HEIGHT", "FINAL", "PEERS", "HEAD", "RPC")]
    for node in status["nodes"]:
        state = "answering" if node["answering"] else "alive" if node["alive"] else "stopped"
        rows.append((node["name"], _text(node["pid"]), state, _text(node["height"]),
                     _text(node["finalized_height"]), _text(node["peers"]),
                     (node["head_hash"] or "-")[:12], node["rpc_url"]))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
              .rstrip())
    if status["signers"]:
        print()
        signer_rows: list[tuple[str, ...]] = [("SIGNER", "PID", "STATE", "FOR", "KEY", "SOCKET")]
        for signer in status["signers"]:
            signer_rows.append((signer["name"], _text(signer["pid"]),
                                "running" if signer["alive"] else "stopped", signer["node"],
                                f"{signer['backend']} {signer['public_key'][:12]}",
                                signer["address"]))
        _print_table(signer_rows)
    links = status["links"]
    cut = ", ".join("|".join(pair) for pair in links["cut"]) or "none"
    print(f"link proxy: {'running, pid ' + str(links['pid']) if links['alive'] else 'stopped'}"
          f"; cut links: {cut}")
    return 0


def _print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
              .rstrip())


def _text(value: Any) -> str:
    return "-" if value is None else str(value)


def cmd_logs(args: argparse.Namespace) -> int:
    path = network.get_log_path(_dir(args), args.node)
    sys.stdout.writelines(network.read_tail(path, args.lines))
    sys.stdout.flush()
    if args.follow:
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how following ends
            _follow(path)
    return 0


def _follow(path: Path, poll_s: float = 0.2) -> None:
    """Print what is appended to `path` until Ctrl-C; starts over if the file shrinks."""
    with open(path, "rb") as f:
        f.seek(0, 2)
        while True:
            chunk = f.read(64 * 1024)
            if chunk:
                sys.stdout.write(chunk.decode(errors="replace"))
                sys.stdout.flush()
                continue
            if path.exists() and path.stat().st_size < f.tell():
                f.seek(0)
            time.sleep(poll_s)


def cmd_start(args: argparse.Namespace) -> int:
    node = network.start_node(_dir(args), network.normalize_name(args.node), args.timeout,
                              _report)
    if isinstance(node, SignerEntry):
        _done(args, {"signer": node.name, "pid": node.pid, "address": node.address},
              f"{node.name} is running: pid {node.pid}, signs for {node.node} on "
              f"{node.address}")
        return 0
    _done(args, {"node": node.name, "pid": node.pid, "rpc_url": node.rpc_url},
          f"{node.name} is running: pid {node.pid}, {node.rpc_url}")
    return 0


def cmd_add_node(args: argparse.Namespace) -> int:
    node = network.add_node(_dir(args), state_sync=args.state_sync,
                            ready_timeout_s=args.timeout, report=_report)
    how = "joined by state sync" if args.state_sync else "syncing blocks from genesis"
    _done(args, {"node": node.name, "pid": node.pid, "rpc_url": node.rpc_url,
                 "state_sync": args.state_sync},
          f"{node.name} is running ({how}): pid {node.pid}, {node.rpc_url}")
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    name = network.normalize_name(args.node)
    outcome = network.stop_node(_dir(args), name, kill=False)
    _done(args, {"node": name, "outcome": outcome}, f"{name}: {outcome}")
    return 0


def cmd_kill(args: argparse.Namespace) -> int:
    name = network.normalize_name(args.node)
    outcome = network.stop_node(_dir(args), name, kill=True)
    _done(args, {"node": name, "outcome": outcome}, f"{name}: {outcome}")
    return 0


def cmd_wipe(args: argparse.Namespace) -> int:
    root = _dir(args)
    node = network.wipe_node(root, args.node)
    _done(args, {"node": node.name, "wiped": str(Path(node.home) / "data")},
          f"{node.name}: stopped, {node.home}/data deleted (keys and config kept); "
          f"`govchain devnet start {node.name} --dir {root}` makes it resync")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    root = _dir(args)
    network.down(root, clean=args.clean, report=_report)
    _done(args, {"dir": str(root), "deleted": args.clean},
          f"devnet in {root} is down" + ("; its directory is deleted" if args.clean else
                                          "; its data is kept (`govchain devnet up` restarts it)"))
    return 0


def _done(args: argparse.Namespace, doc: dict[str, Any], line: str) -> None:
    if args.json:
        _print_json(doc)
    else:
        print(line)


# ------------------------------------------------------------------ partitions


def cmd_partition(args: argparse.Namespace) -> int:
    groups = [[network.normalize_name(n) for n in group.split(",") if n]
              for group in args.groups]

    def change(manifest: Manifest, _: Any) -> Any:
        return network.compute_group_cuts([n.name for n in manifest.nodes], groups)

    return _print_cuts(args, network.set_partition(_dir(args), change))


def cmd_isolate(args: argparse.Namespace) -> int:
    def change(manifest: Manifest, current: Any) -> Any:
        name = manifest.get_node(args.node).name
        return current | {frozenset((name, n.name)) for n in manifest.nodes if n.name != name}

    return _print_cuts(args, network.set_partition(_dir(args), change))


def cmd_heal(args: argparse.Namespace) -> int:
    def change(manifest: Manifest, current: Any) -> Any:
        if args.node is None:
            return frozenset()
        name = manifest.get_node(args.node).name
        return {pair for pair in current if name not in pair}

    return _print_cuts(args, network.set_partition(_dir(args), change))


def _print_cuts(args: argparse.Namespace, cuts: Any) -> int:
    pairs = [sorted(pair) for pair in sorted(cuts, key=sorted)]
    _done(args, {"cut": pairs},
          "cut links: " + (", ".join("|".join(p) for p in pairs) or "none (fully connected)"))
    return 0


# ------------------------------------------------------------------ link shapes


def cmd_link_set(args: argparse.Namespace) -> int:
    changes = {name: value for name, value in (
        ("delay_ms", args.delay), ("jitter_ms", args.jitter), ("loss", args.loss),
        ("rate_bps", args.rate)) if value is not None}
    if not changes and args.seed is None:
        raise DevnetError("say what to set: --delay, --jitter, --loss, --rate or --seed")

    def change(manifest: Manifest, current: ShapeSet) -> Any:
        keys = network.get_shape_keys(manifest, args.src, args.dst, both=args.both)
        try:
            return [(key, LinkShape(**{**current.get(*key).to_doc(), **changes}))
                    for key in keys]
        except ShapeError as e:
            raise DevnetError(str(e)) from e

    return _print_shapes(args, network.set_link_shapes(_dir(args), change, seed=args.seed))


def cmd_link_clear(args: argparse.Namespace) -> int:
    if (args.src is None) != (args.dst is None):
        raise DevnetError("name both ends of the link (`link clear node0 node1`), or neither")

    def change(manifest: Manifest, current: ShapeSet) -> Any:
        if args.src is None:
            keys = [key for key, _ in current.items()]
        else:
            keys = network.get_shape_keys(manifest, args.src, args.dst, both=args.both)
        return [(key, LinkShape()) for key in keys]

    return _print_shapes(args, network.set_link_shapes(_dir(args), change))


def cmd_link_wan(args: argparse.Namespace) -> int:
    slow = None
    if args.slow:
        ends = [network.normalize_name(n) for n in args.slow.split(",")]
        if len(ends) != 2 or ends[0] == ends[1]:
            raise DevnetError(f"--slow names two nodes, A,B, not {args.slow!r}")
        slow = (ends[0], ends[1])

    def change(manifest: Manifest, current: ShapeSet) -> Any:
        keys = network.get_shape_keys(manifest, "all", "all", both=False)
        if slow is not None:
            network.get_shape_keys(manifest, *slow, both=False)  # both must be proxied
        names = sorted({name for key in keys for name in key},
                       key=[n.name for n in manifest.nodes].index)
        try:
            profile = make_wan_profile(names, seed=args.seed, min_delay_ms=args.min_delay,
                                       max_delay_ms=args.max_delay, jitter_ms=args.jitter,
                                       loss=args.loss, rate_bps=args.rate, slow_pair=slow,
                                       slow_delay_ms=args.slow_delay,
                                       sites=network.get_sites(manifest),
                                       near_delay_ms=args.near_delay)
        except ShapeError as e:
            raise DevnetError(str(e)) from e
        linked = set(keys)
        return [(key, shape) for key, shape in profile if key in linked]

    return _print_shapes(args, network.set_link_shapes(_dir(args), change, seed=args.seed))


def cmd_link_show(args: argparse.Namespace) -> int:
    root = _dir(args)
    read_manifest(root)  # a clear error when there is no devnet here
    return _print_shapes(args, network.read_requested_shapes(root))


def _print_shapes(args: argparse.Namespace, shapes: ShapeSet) -> int:
    root = _dir(args)
    applied = network.read_applied_shapes(root)
    in_force = applied is not None and applied.version >= shapes.version
    stats = network.read_direction_stats(root)
    if args.json:
        _print_json({"version": shapes.version, "seed": shapes.seed, "applied": in_force,
                     "links": [{"src": src, "dst": dst, **shape.to_doc()}
                               for (src, dst), shape in shapes.items()],
                     "stats": stats})
        return 0
    rows = [("LINK", "DELAY", "JITTER", "LOSS", "RATE", "DELIVERED", "LOST SEGMENTS")]
    for (src, dst), shape in shapes.items():
        counters = stats.get(f"{src}->{dst}", {})
        rows.append((f"{src}->{dst}", f"{shape.delay_ms:g}ms", f"{shape.jitter_ms:g}ms",
                     f"{shape.loss * 100:g}%",
                     format_rate(shape.rate_bps) if shape.rate_bps else "-",
                     _text(counters.get("delivered_bytes")), _text(counters.get("lost_segments"))))
    if len(rows) > 1:
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    else:
        print("every link is clear (no delay, loss or rate cap)")
    print(f"version {shapes.version}, seed {shapes.seed}; "
          + ("in force" if in_force else "not applied yet (is the link proxy running?)")
          + "; delivered bytes and lost segments count since the proxy started")
    return 0


def _add_link_parser(sub: Any) -> None:
    """`devnet link set|show|clear`: shape the directed links of the link proxy."""
    link = sub.add_parser("link", help="delay, jitter, loss and bandwidth of the links",
                          description="Shape the directed links between nodes, while the "
                                      "devnet runs (docs/devnet.md, \"A WAN rehearsal\").")
    link_sub = link.add_subparsers(dest="link_command", required=True)

    def command(name: str, func: Command, help_text: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = link_sub.add_parser(name, help=help_text,
                                                         description=help_text)
        p.add_argument("--dir", default=DEFAULT_DIR,
                       help=f"the devnet directory (default ./{DEFAULT_DIR})")
        p.set_defaults(func=_guarded(func))
        return p

    def parsed(parse: Callable[[str], Any]) -> Callable[[str], Any]:
        def read(text: str) -> Any:
            try:
                return parse(text)
            except ValueError as e:
                raise argparse.ArgumentTypeError(str(e)) from None
        return read

    p = command("set", cmd_link_set, "shape the bytes SRC sends to DST (options not given "
                                     "keep their value)")
    p.add_argument("src", help="sending node (or `all`)")
    p.add_argument("dst", help="receiving node (or `all`)")
    p.add_argument("--delay", type=parsed(parse_duration_ms), help="one-way delay: 40ms, 0.3s")
    p.add_argument("--jitter", type=parsed(parse_duration_ms),
                   help="each chunk's delay is drawn from delay ± jitter")
    p.add_argument("--loss", type=parsed(parse_loss),
                   help="TCP segments lost: 1%% or 0.01 (each costs a retransmission)")
    p.add_argument("--rate", type=parsed(parse_rate_bps),
                   help="bandwidth cap: 1mbit, 512kbit, 2mbps (bytes); 0: unlimited")
    p.add_argument("--both", action="store_true", help="also shape DST -> SRC the same way")
    p.add_argument("--seed", type=int, help="seed of the jitter and loss draws of new "
                                            "connections (default 0)")
    p = command("wan", cmd_link_wan, "shape every link like a wide-area network: its own "
                                     "delay per direction, jitter, loss, one slow pair; "
                                     "public full nodes near their own validator")
    p.add_argument("--min-delay", type=parsed(parse_duration_ms), default=20.0,
                   help="shortest one-way delay, jitter included (default 20ms)")
    p.add_argument("--max-delay", type=parsed(parse_duration_ms), default=80.0,
                   help="longest one-way delay, jitter included (default 80ms)")
    p.add_argument("--jitter", type=parsed(parse_duration_ms), default=10.0,
                   help="jitter of every direction (default 10ms)")
    p.add_argument("--loss", type=parsed(parse_loss), default=0.01,
                   help="segments lost on every direction (default 1%%)")
    p.add_argument("--rate", type=parsed(parse_rate_bps), default=0,
                   help="bandwidth cap of every direction (default: none)")
    p.add_argument("--slow", metavar="A,B", help="a pair of nodes whose link is slow")
    p.add_argument("--slow-delay", type=parsed(parse_duration_ms), default=300.0,
                   help="one-way delay of the slow pair, both ways (default 300ms)")
    p.add_argument("--near-delay", type=parsed(parse_duration_ms), default=1.0,
                   help="one-way delay between a public full node and its own validator "
                        "(same site: no jitter, no loss; default 1ms)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the delays and of every draw of jitter and loss (default 0)")
    command("show", cmd_link_show, "the shaped links and whether the proxy applied them")
    p = command("clear", cmd_link_clear, "remove every shape (or only SRC -> DST's)")
    p.add_argument("src", nargs="?", help="sending node (or `all`)")
    p.add_argument("dst", nargs="?", help="receiving node (or `all`)")
    p.add_argument("--both", action="store_true", help="also clear DST -> SRC")


# ------------------------------------------------------------------ parser


def add_devnet_parser(subparsers: Any) -> None:
    """Add `devnet` and its subcommands to the govchain CLI's subparsers."""
    devnet = subparsers.add_parser(
        "devnet", help="start and control a local multi-node network",
        description="Start and control a local multi-node govchain network (docs/devnet.md).")
    sub = devnet.add_subparsers(dest="devnet_command", required=True)

    def command(name: str, func: Command, help_text: str,
                node: bool = False) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = sub.add_parser(name, help=help_text, description=help_text)
        if node:
            p.add_argument("node", help="node name (node0, node1, ... or just 0, 1, ...; "
                                        "signer0, ... where a command takes signers)")
        p.add_argument("--dir", default=DEFAULT_DIR,
                       help=f"the devnet directory (default ./{DEFAULT_DIR})")
        p.set_defaults(func=_guarded(func))
        return p

    p = command("up", cmd_up, "create (or restart) a devnet and run it until Ctrl-C")
    p.add_argument("--nodes", type=int, help="validator nodes of a new devnet (default 4)")
    p.add_argument("--base-port", type=int, default=DEFAULT_BASE_PORT,
                   help="node i serves RPC on BASE+2i and p2p on BASE+2i+1; the link "
                        f"proxy takes the ports after them (default {DEFAULT_BASE_PORT}; "
                        "0: free ports chosen by the system)")
    p.add_argument("--chain-id", default=network.DEFAULT_CHAIN_ID,
                   help="chain id of a new devnet")
    p.add_argument("--accounts", type=int, default=4, help="funded dev accounts (default 4)")
    p.add_argument("--full-nodes", type=int, default=0,
                   help="public full nodes of a new devnet, in front of the validators in "
                        "turn; the validators then admit only each other and their own "
                        "full nodes (default 0)")
    p.add_argument("--signers", action="store_true",
                   help="keep each validator's key in a `govchain signer` process of its own "
                        "(signer0, ...), not in the node's home (docs/signer.md)")
    p.add_argument("--signer-backend", choices=["file", "pkcs11"],
                   help="with --signers: a key file in the signer's folder (file, the "
                        "default) or a key generated inside a SoftHSM2 token (pkcs11; "
                        "needs softhsm2); implies --signers")
    p.add_argument("--params", help="JSON object of chain parameters to override")
    p.add_argument("--timeout", type=float, default=network.READY_TIMEOUT_S,
                   help="seconds to wait for every node to answer (default %(default)s)")
    p.add_argument("--detach", action="store_true",
                   help="leave the devnet running in the background and return")

    command("status", cmd_status, "each node's process, height and peers")
    p = command("logs", cmd_logs, "print a node's log (or a signer's, or the link proxy's: "
                "`links`)", node=True)
    p.add_argument("-n", "--lines", type=int, default=50, help="last lines (default 50)")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    p = command("start", cmd_start, "start a stopped node (or signer) as it is", node=True)
    p.add_argument("--timeout", type=float, default=network.READY_TIMEOUT_S,
                   help="seconds to wait for the node to answer")
    p = command("add-node", cmd_add_node, "add a full node that follows the devnet")
    p.add_argument("--state-sync", action="store_true",
                   help="join from a validator's state snapshot instead of replaying blocks")
    p.add_argument("--timeout", type=float, default=network.READY_TIMEOUT_S,
                   help="seconds to wait for the node to answer (default %(default)s)")
    command("stop", cmd_stop, "stop a node or signer (SIGTERM; SIGKILL if it does not exit)",
            node=True)
    command("kill", cmd_kill, "kill a node or signer at once (SIGKILL), as a crash would",
            node=True)
    command("wipe", cmd_wipe, "stop a node and delete its data (keys and config stay)",
            node=True)
    p = command("down", cmd_down, "stop every node and the link proxy")
    p.add_argument("--clean", action="store_true", help="also delete the devnet directory")

    p = command("partition", cmd_partition,
                "cut the links between groups of nodes (unnamed nodes form one more group)")
    p.add_argument("groups", nargs="+", metavar="GROUP", help="comma-separated node names")
    command("isolate", cmd_isolate, "cut every link of one node", node=True)
    p = command("heal", cmd_heal, "restore every cut link (or only one node's)")
    p.add_argument("node", nargs="?", help="heal only this node's links")
    _add_link_parser(sub)
