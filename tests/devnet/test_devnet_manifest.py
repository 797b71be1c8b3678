"""The manifest round trip, port plans and partition groups (no node needed)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from devnet.errors import DevnetError
from devnet.manifest import (
    DevAccount,
    LinkEntry,
    LinksEntry,
    Manifest,
    NodeEntry,
    SignerEntry,
    locked,
    read_manifest,
    write_manifest,
)
from devnet.network import compute_group_cuts, read_tail
from devnet.ports import (
    EphemeralPortsError,
    PortRange,
    get_free_ports,
    get_link_pairs,
    plan_ports,
    read_ephemeral_range,
    read_reserved_ports,
    suggest_base_port,
    validate_outside_ephemeral_range,
)


def _manifest(root: Path) -> Manifest:
    nodes = [NodeEntry(name=f"node{i}", rpc_url=f"http://127.0.0.1:{8545 + 2 * i}",
                       rpc_port=8545 + 2 * i, p2p_port=8546 + 2 * i, home=str(root / f"node{i}"),
                       log=str(root / f"node{i}" / "node.log"), validator=True,
                       validator_key="ab" * 32, pid=1000 + i)
             for i in range(2)]
    return Manifest(
        chain_id="govchain-devnet", genesis_hash="cd" * 32, dir=str(root), nodes=nodes,
        accounts=[DevAccount(address="ef" * 20, secret_key="01" * 32,
                             key_file=str(root / "genesis" / "account0_key.json"))],
        links=LinksEntry(links=[LinkEntry("node0", "node1", 8549),
                                LinkEntry("node1", "node0", 8550)],
                         log=str(root / "links.log"), control=str(root / "partition.json"),
                         pid=999))


def test_manifest_round_trip(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path)
    write_manifest(manifest)
    assert read_manifest(tmp_path) == manifest
    doc = json.loads((tmp_path / "devnet.json").read_text())
    assert {"chain_id", "genesis_hash", "nodes", "accounts", "links"} <= set(doc)
    assert set(doc["nodes"][0]) >= {"name", "rpc_url", "p2p_port", "pid", "home", "log",
                                    "validator"}
    assert set(doc["accounts"][0]) >= {"address", "secret_key"}
    assert not list(tmp_path.glob(".*.tmp"))  # written through a renamed temporary file


def test_manifest_keeps_unknown_keys(tmp_path: Path) -> None:
    write_manifest(_manifest(tmp_path))
    doc = json.loads((tmp_path / "devnet.json").read_text())
    doc["added_later"] = {"x": 1}
    (tmp_path / "devnet.json").write_text(json.dumps(doc))
    write_manifest(read_manifest(tmp_path))
    assert json.loads((tmp_path / "devnet.json").read_text())["added_later"] == {"x": 1}


def test_get_node_accepts_a_number() -> None:
    manifest = _manifest(Path("/x"))
    assert manifest.get_node("1").name == "node1"
    assert manifest.get_node("node0").name == "node0"
    with pytest.raises(DevnetError, match="node0, node1"):
        manifest.get_node("node7")


def test_invalid_manifest_is_reported(tmp_path: Path) -> None:
    with pytest.raises(DevnetError, match="no devnet"):
        read_manifest(tmp_path)
    (tmp_path / "devnet.json").write_text('{"chain_id": 1}')
    with pytest.raises(DevnetError, match="not a devnet manifest"):
        read_manifest(tmp_path)


def test_lock_refuses_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(DevnetError, match="no devnet"), locked(tmp_path / "missing"):
        pass
    assert not (tmp_path / "missing").exists()
    with locked(tmp_path / "new", create=True):
        assert (tmp_path / "new").is_dir()


def test_lock_times_out_while_held(tmp_path: Path) -> None:
    with locked(tmp_path), pytest.raises(DevnetError, match="holds"), \
            locked(tmp_path, timeout_s=0.1):
        pass


# ------------------------------------------------------------------ ports


def test_free_ports_are_distinct_and_cover_every_link() -> None:
    plan = plan_ports(4, 0)
    ports = [*plan.rpc, *plan.p2p, *plan.links]
    assert len(plan.rpc) == len(plan.p2p) == 4
    assert len(plan.links) == len(get_link_pairs(4)) == 12
    assert len(set(ports)) == len(ports)
    assert all(port > 0 for port in ports)


def test_free_ports_stay_reserved_until_a_server_takes_them() -> None:
    reserved = set(get_free_ports(20))
    handed_out = set()
    for _ in range(2000):  # neither bind(0) nor outgoing connections may take them
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            handed_out.add(sock.getsockname()[1])
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(256)
        for _ in range(200):
            with socket.create_connection(server.getsockname()) as client:
                handed_out.add(client.getsockname()[1])
                server.accept()[0].close()
    assert not reserved & handed_out
    port = min(reserved)
    with socket.socket() as server:  # as asyncio and aiohttp bind their servers
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen(1)
        with socket.create_connection(("127.0.0.1", port)):
            pass


NO_EPHEMERAL = PortRange(65535, 65535)
"""An ephemeral range that no test layout reaches: these tests look at other checks."""


def test_fixed_base_port_layout() -> None:
    for _ in range(50):  # find a free range: ask for one port, take the five after it too
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            base = sock.getsockname()[1]
        if base > 65535 - 6:
            continue
        try:
            plan = plan_ports(2, base, ephemeral=NO_EPHEMERAL)
        except DevnetError:
            continue  # one of the five after it is taken
        break
    else:
        raise AssertionError("no six free ports in a row in 50 tries")
    assert plan.rpc == (base, base + 2)
    assert plan.p2p == (base + 1, base + 3)
    assert plan.links == (base + 4, base + 5)


def test_taken_port_is_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        taken = sock.getsockname()[1]
        with pytest.raises(DevnetError, match=f"port {taken} .* in use"):
            plan_ports(1, taken, ephemeral=NO_EPHEMERAL)


def test_invalid_base_port_in_the_ephemeral_range_is_refused() -> None:
    # The kernel's own range: outgoing connections of earlier nodes take their source
    # ports from it, so a node could find its port taken ("address already in use").
    ephemeral = read_ephemeral_range()
    if ephemeral is None:
        pytest.skip("no /proc/sys/net/ipv4/ip_local_port_range here")
    total = 2 * 16 + 16 * 15
    base = ephemeral.first + 100
    assert base + total - 1 <= min(ephemeral.last, 65535)
    with pytest.raises(EphemeralPortsError) as e:
        plan_ports(16, base)
    message = str(e.value)
    assert e.value.code == "ephemeral_ports"
    assert f"{base}-{base + total - 1}" in message
    assert f"ephemeral port range {ephemeral.first}-{ephemeral.last}" in message
    assert "address already in use" in message
    suggested = suggest_base_port(total, ephemeral)
    assert f"--base-port {suggested}" in message
    assert suggested + total - 1 < ephemeral.first or suggested > ephemeral.last
    assert 1024 <= suggested <= 65535 - total + 1


@pytest.mark.parametrize(("ephemeral", "suggested"), [
    (PortRange(32768, 60999), 32000),   # Linux's default: just below the range
    (PortRange(49152, 65535), 48000),   # the IANA range (BSD, Windows)
    (PortRange(1500, 65400), 0),        # no room below or above: let the system pick
    (PortRange(1024, 20000), 21000),    # no room below: just above
])
def test_suggested_base_port_lies_outside_the_range(ephemeral: PortRange,
                                                    suggested: int) -> None:
    assert suggest_base_port(272, ephemeral) == suggested


def test_invalid_layout_overlapping_an_injected_range_is_refused() -> None:
    ephemeral = PortRange(40000, 50000)
    with pytest.raises(EphemeralPortsError, match=r"ports 39990-40009 overlap .* "
                                                  r"40000-50000.* --base-port 39000"):
        validate_outside_ephemeral_range(39990, 20, ephemeral, reserved=())
    with pytest.raises(EphemeralPortsError, match="ports 50000-50019"):
        validate_outside_ephemeral_range(50000, 20, ephemeral, reserved=())
    validate_outside_ephemeral_range(39980, 20, ephemeral, reserved=())  # ends at 39999
    validate_outside_ephemeral_range(50001, 20, ephemeral, reserved=())
    # Ports the kernel is told to keep (ip_local_reserved_ports) are never source ports.
    validate_outside_ephemeral_range(40000, 20, ephemeral,
                                     reserved=(PortRange(39000, 40010), PortRange(40011, 40019)))
    with pytest.raises(EphemeralPortsError, match="40019"):
        validate_outside_ephemeral_range(40000, 20, ephemeral, reserved=(PortRange(40000, 40018),))


def test_reserved_ports_are_read_from_the_kernel_list(tmp_path: Path) -> None:
    path = tmp_path / "ip_local_reserved_ports"
    path.write_text("8545,35000-35271\n")
    assert read_reserved_ports(path) == (PortRange(8545, 8545), PortRange(35000, 35271))
    path.write_text("\n")
    assert read_reserved_ports(path) == ()
    assert read_reserved_ports(tmp_path / "missing") == ()
    range_file = tmp_path / "ip_local_port_range"
    range_file.write_text("32768\t60999\n")
    assert read_ephemeral_range(range_file) == PortRange(32768, 60999)
    assert read_ephemeral_range(tmp_path / "missing") is None


def test_invalid_base_port_is_refused() -> None:
    with pytest.raises(DevnetError, match="base-port"):
        plan_ports(4, 65530)
    with pytest.raises(DevnetError, match="at least one node"):
        plan_ports(0, 0)


# ------------------------------------------------------------------ partitions and logs


NAMES = ["node0", "node1", "node2", "node3"]


def test_two_groups_cut_the_links_between_them() -> None:
    cuts = compute_group_cuts(NAMES, [["node0", "node1"], ["node2", "node3"]])
    assert cuts == {frozenset(p) for p in [("node0", "node2"), ("node0", "node3"),
                                           ("node1", "node2"), ("node1", "node3")]}


def test_unnamed_nodes_form_one_more_group() -> None:
    assert compute_group_cuts(NAMES, [["node0"]]) == {
        frozenset(("node0", n)) for n in NAMES[1:]}


def test_invalid_groups_are_refused() -> None:
    with pytest.raises(DevnetError, match="no node 'node9'"):
        compute_group_cuts(NAMES, [["node9"]])
    with pytest.raises(DevnetError, match="two groups"):
        compute_group_cuts(NAMES, [["node0"], ["node0", "node1"]])


def test_read_tail(tmp_path: Path) -> None:
    log = tmp_path / "node.log"
    log.write_text("".join(f"line {i}\n" for i in range(1000)))
    assert read_tail(log, 3, block_bytes=16) == ["line 997\n", "line 998\n", "line 999\n"]
    assert read_tail(log, 0) == []
    assert len(read_tail(log, 5000)) == 1000
    assert read_tail(tmp_path / "missing.log", 3) == []


def test_manifest_with_signers_round_trip_and_lookup(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path)
    manifest.nodes[1].signer = "signer1"
    manifest.signers = [SignerEntry(
        name="signer1", node="node1", home=str(tmp_path / "signer1"),
        address=f"unix:{tmp_path / 'signer1' / 'signer.sock'}", public_key="ab" * 32,
        backend="pkcs11", log=str(tmp_path / "signer1" / "signer.log"),
        pkcs11_module="/usr/lib/softhsm/libsofthsm2.so", pid=1234)]
    write_manifest(manifest)
    again = read_manifest(tmp_path)
    assert again == manifest
    assert again.is_signer_name("signer1") and not again.is_signer_name("node1")
    assert again.get_signer("signer1").node == "node1"
    with pytest.raises(DevnetError, match="its signers: signer1"):
        again.get_signer("signer7")
    with pytest.raises(DevnetError, match="its signers: signer1"):
        again.get_node("signer7")


def test_manifest_without_signers_reads_as_none(tmp_path: Path) -> None:
    """A manifest written before signers existed has no "signers" key."""
    write_manifest(_manifest(tmp_path))
    doc = json.loads((tmp_path / "devnet.json").read_text())
    del doc["signers"]
    for node in doc["nodes"]:
        del node["signer"]
    (tmp_path / "devnet.json").write_text(json.dumps(doc))
    manifest = read_manifest(tmp_path)
    assert manifest.signers == [] and manifest.nodes[0].signer is None
    with pytest.raises(DevnetError, match="without --signers"):
        manifest.get_signer("signer0")
