"""The PKCS#11 back end against a real SoftHSM2 token (in a temporary directory, through
SOFTHSM2_CONF): the Ed25519 key is generated inside the token and signs with CKM_EDDSA;
pynacl verifies what it signed."""

from __future__ import annotations

import nacl.signing
import pytest

from chain.crypto import Hash32, compute_hash
from chain.vote import Vote, VoteKind
from node.signer.backends import Pkcs11KeyBackend, Pkcs11Settings
from node.signer.protocol import SIGN, KeyUnavailableError, Request, SignRequest, SignStep
from node.signer.server import ListenAddress, SignerServer
from node.signer.state import SignGuard
from tests.signer.kit import CHAIN_ID, TOKEN_PIN, make_token, run_govchain

pytest.importorskip("pkcs11")


def test_key_generated_in_the_token_signs_votes_that_pynacl_verifies(tmp_path, monkeypatch):
    module = make_token(tmp_path, "ministry-a", monkeypatch)
    (tmp_path / "pin").write_text(TOKEN_PIN + "\n")
    token_args = ["--pkcs11-module", module, "--token-label", "ministry-a",
                  "--key-label", "validator", "--pin-file", str(tmp_path / "pin")]
    made = run_govchain("signer", "init-pkcs11", *token_args)
    assert made.returncode == 0, made.stderr
    public_key = bytes.fromhex(made.stdout.strip())
    again = run_govchain("signer", "init-pkcs11", *token_args)
    assert again.returncode == 1 and "already holds a key" in again.stderr

    backend = Pkcs11KeyBackend(Pkcs11Settings(module, "ministry-a", "validator", TOKEN_PIN))
    try:
        assert backend.public_key == public_key
        guard = SignGuard(tmp_path / "state", CHAIN_ID)
        block = Hash32(compute_hash(b"block"))
        signature = guard.sign(SignRequest(CHAIN_ID, SignStep.PRECOMMIT, 4, 1, -1, block),
                               backend.sign)
        message = Vote(VoteKind.PRECOMMIT, 4, 1, block, backend.public_key, b"")
        nacl.signing.VerifyKey(public_key).verify(message.message(CHAIN_ID), signature)
    finally:
        backend.close()


async def test_signer_serves_a_token_key_over_its_socket(tmp_path, monkeypatch):
    module = make_token(tmp_path, "ministry-b", monkeypatch)
    (tmp_path / "pin").write_text(TOKEN_PIN)
    made = run_govchain("signer", "init-pkcs11", "--pkcs11-module", module, "--token-label",
                   "ministry-b", "--key-label", "validator", "--pin-file",
                   str(tmp_path / "pin"))
    assert made.returncode == 0, made.stderr
    backend = Pkcs11KeyBackend(Pkcs11Settings(module, "ministry-b", "validator", TOKEN_PIN))
    server = SignerServer(backend, SignGuard(tmp_path / "state", CHAIN_ID),
                          ListenAddress.parse(f"unix:{tmp_path / 's.sock'}"))
    await server.start()
    try:
        block = Hash32(compute_hash(b"block"))
        answer = await server.answer(Request(1, SIGN, SignRequest(
            CHAIN_ID, SignStep.PROPOSAL, 2, 0, -1, block)).encode()[4:])
        assert answer.error is None
        conflicting = await server.answer(Request(2, SIGN, SignRequest(
            CHAIN_ID, SignStep.PROPOSAL, 2, 0, -1, Hash32(compute_hash(b"other")))
        ).encode()[4:])
        assert conflicting.error is not None and conflicting.error.code == "double_sign"
        request = SignRequest(CHAIN_ID, SignStep.PROPOSAL, 2, 0, -1, block)
        nacl.signing.VerifyKey(backend.public_key).verify(request.get_signing_bytes(),
                                                          answer.result)
    finally:
        await server.stop()
        backend.close()


def test_invalid_wrong_pin_or_label_is_a_clear_error(tmp_path, monkeypatch):
    module = make_token(tmp_path, "ministry-c", monkeypatch)
    with pytest.raises(KeyUnavailableError, match="cannot open token"):
        Pkcs11KeyBackend(Pkcs11Settings(module, "ministry-c", "validator", "0000"))
    with pytest.raises(KeyUnavailableError, match="no single key pair"):
        Pkcs11KeyBackend(Pkcs11Settings(module, "ministry-c", "absent", TOKEN_PIN))
