"""The signer over real Unix and TCP sockets in the test's loop: it signs what the
rules allow, refuses with a typed error what they do not, keeps its record on disk,
and serves an active/standby pair without ever signing twice."""

from __future__ import annotations

import asyncio
import ssl
import struct
from pathlib import Path

import nacl.signing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain import codec
from chain.crypto import Hash32, KeyPair, compute_hash
from chain.vote import Vote, VoteKind
from node.keystore import PassphraseSource, write_encrypted_key_file
from node.signer.backends import FileKeyBackend
from node.signer.client import RemoteSigner, build_client_tls
from node.signer.protocol import (
    MAX_FRAME_BYTES,
    SIGN,
    DoubleSignError,
    MalformedRequestError,
    Request,
    Response,
    SignRequest,
    SignStep,
)
from node.signer.server import ListenAddress, SignerServer, build_server_tls
from node.signer.state import SLOT_BYTES, SignGuard, SignStateFileError
from node.tls import create_self_signed_certificate
from tests.signer.kit import (
    CHAIN_ID,
    KeyPairBackend,
    run_govchain,
    running_signer,
    wait_until,
)

KEY = KeyPair.from_seed(b"\x07" * 32)
OTHER_KEY = KeyPair.from_seed(b"\x08" * 32)
BLOCK_A = compute_hash(b"block a")
BLOCK_B = compute_hash(b"block b")


def vote_request(height: int, round_: int, block_hash: bytes, *,
                 step: SignStep = SignStep.PREVOTE, chain_id: str = CHAIN_ID) -> SignRequest:
    return SignRequest(chain_id, step, height, round_, -1, Hash32(block_hash))


async def call(address: ListenAddress, *frames: bytes) -> list[Response]:
    """Send raw frames on one connection; read one response per frame (or until EOF)."""
    reader, writer = await asyncio.open_unix_connection(address.unix_path)
    responses = []
    try:
        for frame in frames:
            try:
                writer.write(frame)
                await writer.drain()
                header = await asyncio.wait_for(reader.readexactly(4), 5)
            except (asyncio.IncompleteReadError, ConnectionError):
                break  # the signer closed the link
            payload = await reader.readexactly(struct.unpack(">I", header)[0])
            responses.append(Response.decode(payload))
    finally:
        writer.close()
    return responses


def sign_frame(request: SignRequest, request_id: int = 5) -> bytes:
    return Request(request_id, SIGN, request).encode()


async def test_signs_a_vote_whose_signature_verifies(tmp_path):
    async with running_signer(tmp_path, KEY) as server:
        [response] = await call(server.address, sign_frame(vote_request(3, 0, BLOCK_A)))
    assert response.error is None and response.request_id == 5
    message = Vote(VoteKind.PREVOTE, 3, 0, BLOCK_A, KEY.public_key, b"").message(CHAIN_ID)
    nacl.signing.VerifyKey(KEY.public_key).verify(message, response.result)


async def test_invalid_double_sign_is_refused_and_changes_nothing(tmp_path):
    async with running_signer(tmp_path, KEY) as server:
        first, conflicting, again = await call(
            server.address, sign_frame(vote_request(3, 0, BLOCK_A)),
            sign_frame(vote_request(3, 0, BLOCK_B)), sign_frame(vote_request(3, 0, BLOCK_A)))
        assert first.error is None
        assert conflicting.error is not None and conflicting.error.code == "double_sign"
        assert isinstance(conflicting.error, DoubleSignError)
        # The same message again is answered with the same signature (a resend).
        assert again.error is None and again.result == first.result
        assert server.guard.last is not None and server.guard.last.request.block_hash == BLOCK_A


async def test_invalid_wrong_chain_id_is_refused(tmp_path):
    async with running_signer(tmp_path, KEY) as server:
        [response] = await call(server.address,
                                sign_frame(vote_request(3, 0, BLOCK_A, chain_id="other")))
        assert response.error is not None and response.error.code == "wrong_chain_id"
        assert server.guard.last is None
        assert SignGuard(tmp_path / "signer.state", CHAIN_ID).last is None


async def test_invalid_regression_is_refused(tmp_path):
    async with running_signer(tmp_path, KEY) as server:
        _, below_step, below_round = await call(
            server.address,
            sign_frame(vote_request(3, 1, BLOCK_A, step=SignStep.PRECOMMIT)),
            sign_frame(vote_request(3, 1, BLOCK_A, step=SignStep.PREVOTE)),
            sign_frame(vote_request(3, 0, BLOCK_A, step=SignStep.PRECOMMIT)))
    assert below_step.error is not None and below_step.error.code == "height_regression"
    assert below_round.error is not None and below_round.error.code == "height_regression"


async def test_invalid_malformed_request_gets_a_typed_error_and_the_link_stays(tmp_path):
    async with running_signer(tmp_path, KEY) as server:
        garbage = b"\x00\x00\x00\x03abc"
        bad_hash = Request(1, SIGN, vote_request(3, 0, b"\x01" * 31)).encode()
        responses = await call(server.address, garbage, bad_hash,
                               sign_frame(vote_request(3, 0, BLOCK_A)))
    assert [r.error.code if r.error else "ok" for r in responses] == [
        "malformed_request", "malformed_request", "ok"]


async def test_invalid_oversized_frame_is_refused_and_the_link_closed(tmp_path):
    async with running_signer(tmp_path, KEY) as server:
        huge = struct.pack(">I", MAX_FRAME_BYTES + 1)
        responses = await call(server.address, huge, sign_frame(vote_request(3, 0, BLOCK_A)))
        assert len(responses) == 1 and responses[0].error is not None
        assert responses[0].error.code == "oversized_request"
        assert server.guard.last is None


def test_sign_state_survives_a_restart(tmp_path):
    path = tmp_path / "state"
    guard = SignGuard(path, CHAIN_ID)
    signature = guard.sign(vote_request(9, 2, BLOCK_A), KEY.sign)
    restarted = SignGuard(path, CHAIN_ID)  # a new signer process reads the same file
    with pytest.raises(DoubleSignError):
        restarted.sign(vote_request(9, 2, BLOCK_B), KEY.sign)
    assert restarted.sign(vote_request(9, 2, BLOCK_A), KEY.sign) == signature


def test_invalid_damaged_or_foreign_state_file_stops_the_signer(tmp_path):
    path = tmp_path / "state"
    SignGuard(path, CHAIN_ID).sign(vote_request(9, 2, BLOCK_A), KEY.sign)
    with pytest.raises(SignStateFileError, match="of chain"):
        SignGuard(path, "another-chain")
    data = bytearray(path.read_bytes())
    data[SLOT_BYTES + 20] ^= 1  # the one record (slot 1) damaged, slot 0 empty
    path.write_bytes(bytes(data))
    with pytest.raises(SignStateFileError, match="damaged"):
        SignGuard(path, CHAIN_ID)
    path.write_bytes(bytes(data[:100]))
    with pytest.raises(SignStateFileError, match="damaged"):
        SignGuard(path, CHAIN_ID)


def test_a_torn_write_falls_back_to_the_previous_record(tmp_path):
    path = tmp_path / "state"
    guard = SignGuard(path, CHAIN_ID)
    guard.sign(vote_request(9, 2, BLOCK_A), KEY.sign)  # sequence 1, slot 1
    guard.sign(vote_request(9, 3, BLOCK_A), KEY.sign)  # sequence 2, slot 0
    data = bytearray(path.read_bytes())
    data[40:SLOT_BYTES] = bytes(SLOT_BYTES - 40)  # the crash cut the newest write
    path.write_bytes(bytes(data))
    restarted = SignGuard(path, CHAIN_ID)
    assert restarted.last is not None and restarted.last.request.round == 2
    with pytest.raises(DoubleSignError):
        restarted.sign(vote_request(9, 2, BLOCK_B), KEY.sign)


def test_file_back_end_unlocks_an_encrypted_key_file(tmp_path):
    (tmp_path / "pass").write_text("correct horse\n")
    write_encrypted_key_file(tmp_path / "key.json", KEY, b"correct horse", cost="test")
    backend = FileKeyBackend(tmp_path / "key.json", PassphraseSource(file=str(tmp_path / "pass")))
    assert backend.public_key == KEY.public_key
    nacl.signing.VerifyKey(KEY.public_key).verify(b"m", backend.sign(b"m"))


async def test_active_standby_pair_never_gets_two_conflicting_signatures(tmp_path):
    async with running_signer(tmp_path, KEY) as server:
        pair = [RemoteSigner(server.address, CHAIN_ID, KEY.public_key) for _ in range(2)]
        signed: list[Vote] = []
        for client in pair:
            client.on_signed = signed.append
        tasks = [asyncio.create_task(client.run()) for client in pair]
        heights = range(1, 41)
        try:
            await asyncio.wait_for(asyncio.gather(*(c.connected.wait() for c in pair)), 10)
            for h in heights:
                # Both ask at once, each for its own block.
                for i, client in enumerate(pair):
                    client.submit(Vote(VoteKind.PRECOMMIT, h, 0, compute_hash(bytes([i, h])),
                                       KEY.public_key, b""))
                await wait_until(lambda h=h: sum(c.signed_count + c.refused_count
                                                 for c in pair) == 2 * h)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    by_height: dict[int, bytes] = {}
    for vote in signed:
        assert vote.is_signature_valid(CHAIN_ID)
        assert by_height.setdefault(vote.height, vote.block_hash) == vote.block_hash, \
            f"two different precommits signed at height {vote.height}"
    assert sorted(by_height) == list(heights) and len(signed) == len(heights)
    assert server.refused_count == len(heights)
    assert sum(c.dropped_count for c in pair) == 0


async def test_node_link_refuses_a_signer_with_another_key(tmp_path):
    async with running_signer(tmp_path, OTHER_KEY) as server:
        client = RemoteSigner(server.address, CHAIN_ID, KEY.public_key)
        task = asyncio.create_task(client.run())
        try:
            # It asked for the key (a request served) and did not connect.
            await wait_until(lambda: server.served_count > 0)
            assert not client.connected.is_set()
            client.submit(Vote(VoteKind.PREVOTE, 1, 0, BLOCK_A, KEY.public_key, b""))
            assert client.dropped_count == 1 and server.signed_count == 0
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def make_cert(directory: Path, name: str) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    create_self_signed_certificate(cert, key, name, ("127.0.0.1",))
    return cert, key


async def test_mutual_tls_serves_the_trusted_node_only(tmp_path):
    signer_cert, signer_key = make_cert(tmp_path, "signer")
    node_cert, node_key = make_cert(tmp_path, "node")
    stranger_cert, stranger_key = make_cert(tmp_path, "stranger")
    server = SignerServer(KeyPairBackend(KEY), SignGuard(tmp_path / "state", CHAIN_ID),
                          ListenAddress.parse("tcp://127.0.0.1:0"),
                          build_server_tls(signer_cert, signer_key, node_cert))
    await server.start()
    address = ListenAddress.parse(server.listen_url)
    try:
        trusted = RemoteSigner(address, CHAIN_ID, KEY.public_key,
                               build_client_tls(node_cert, node_key, signer_cert))
        stranger = RemoteSigner(address, CHAIN_ID, KEY.public_key,
                                build_client_tls(stranger_cert, stranger_key, signer_cert))
        signed: asyncio.Queue[Vote] = asyncio.Queue()
        trusted.on_signed = signed.put_nowait
        anonymous_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        anonymous_tls.check_hostname = False
        anonymous_tls.load_verify_locations(signer_cert)  # trusts the signer, shows nothing
        anonymous = RemoteSigner(address, CHAIN_ID, KEY.public_key, anonymous_tls)
        tasks = [asyncio.create_task(c.run()) for c in (trusted, stranger, anonymous)]
        try:
            await asyncio.wait_for(trusted.connected.wait(), 10)
            trusted.submit(Vote(VoteKind.PREVOTE, 1, 0, BLOCK_A, KEY.public_key, b""))
            vote = await asyncio.wait_for(signed.get(), 10)
            assert vote.is_signature_valid(CHAIN_ID)
            # The stranger's handshakes fail: it never gets to ask anything.
            await wait_until(lambda: min(stranger.failed_connects,
                                         anonymous.failed_connects) >= 2)
            assert not stranger.connected.is_set() and not anonymous.connected.is_set()
            assert server.served_count == 2  # the trusted node's key request and vote
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await server.stop()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_invalid_any_bytes_decode_to_a_request_or_a_typed_error(payload: bytes) -> None:
    try:
        request = Request.decode(payload)
    except MalformedRequestError:
        return
    assert request.encode()[4:] == payload  # only canonical requests get through


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.integers(-2, 2**33), st.text(max_size=70),
                          st.binary(max_size=40)), max_size=7))
def test_invalid_any_sign_body_is_refused_with_a_typed_error(body: list[object]) -> None:
    payload = codec.encode([1, 4, "sign", body])
    try:
        request = Request.decode(payload)
    except MalformedRequestError:
        return
    assert request.sign is not None and request.sign.to_value() == body


def test_invalid_signer_flags_are_refused_before_anything_is_written(tmp_path):
    state = tmp_path / "state"
    base = ["signer", "--chain-id", CHAIN_ID, "--state-file", str(state)]
    for args, message in (
            ([*base, "--listen", f"unix:{tmp_path / 's'}", "--key-file",
              str(tmp_path / "absent.json")], "is missing"),
            ([*base, "--listen", "tcp://127.0.0.1:0", "--key-file", "k"], "mutual TLS"),
            ([*base, "--listen", "udp://x", "--key-file", "k"], "expected unix:/path"),
            ([*base, "--listen", f"unix:{tmp_path / 's'}"], "one key back end")):
        result = run_govchain(*args)
        assert result.returncode == 1 and message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    assert not state.exists()
