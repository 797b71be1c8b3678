"""The explorer's in-browser verifier (rpc/explorer/verify.js) against the Python code it
re-implements: canonical msgpack both ways (fixed edge cases, seeded random values and
mutated encodings), signing bytes, Merkle proofs, state proofs, the genesis hash,
commit certificates, and the light client following a validator-set change on a
synthetic chain served by a fake node. Everything runs in a real headless Chromium.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from aiohttp import web

from chain import codec, merkle
from chain.block import BlockHeader
from chain.crypto import KeyPair, compute_hash
from chain.errors import ChainError
from chain.genesis import ChainParams, Genesis, GenesisAccount
from chain.state_proof import (
    BUCKET_COUNT,
    EMPTY_BUCKET_HASH,
    StateProof,
    compute_bucket_hash,
    compute_key_hash,
    compute_node_hash,
    compute_value_hash,
    get_bucket,
    verify_state_proof,
)
from chain.vote import (
    CommitCertificate,
    Validator,
    ValidatorSet,
    Vote,
    VoteKind,
    validate_certificate,
)
from cli.ledger import add_dev_ledger
from rpc.operator import EXPLORER_DIR
from tests.node.conftest import ACCOUNT_KEYS, BALANCE, make_genesis
from tests.operator.browser import DevTools, open_browser

pytestmark = pytest.mark.slow  # a headless Chromium per test

PAGE = """<!doctype html><meta charset="utf-8"><title>verifier</title>
<script src="/explorer/verify.js"></script>
<script>
const V = GovchainVerify;
async function post(body) {
  const r = await fetch("/rpc", {method: "POST", headers: {"Content-Type": "application/json"},
                                 body: JSON.stringify(body)});
  return V.parseJson(await r.text());
}
const rpc = {
  async call(method, params) {
    const doc = await post({jsonrpc: "2.0", id: 1, method, params});
    if (doc.error) throw new Error(doc.error.message);
    return doc.result;
  },
  async batch(calls) {
    const docs = await post(calls.map(([method, params], id) =>
      ({jsonrpc: "2.0", id, method, params})));
    return calls.map((_, i) => docs.find((d) => d.id === i).result);
  },
};
// Values cross the DevTools protocol tagged: {"int": "..."}, {"bytes": hex}, {"map": [[k, v]]}.
const T = {
  from(x) {
    if (x === null || typeof x !== "object") return x;
    if (Array.isArray(x)) return x.map(T.from);
    if ("int" in x) return (x.small ? Number(x.int) : BigInt(x.int));
    if ("bytes" in x) return V.fromHex(x.bytes);
    const out = Object.create(null);
    for (const [k, v] of x.map) out[k] = T.from(v);
    return out;
  },
  to(v) {
    if (v === null || typeof v === "boolean" || typeof v === "string") return v;
    if (typeof v === "number" || typeof v === "bigint") return {int: String(v)};
    if (v instanceof Uint8Array) return {bytes: V.toHex(v)};
    if (Array.isArray(v)) return v.map(T.to);
    return {map: Object.entries(v).map(([k, x]) => [k, T.to(x)])};
  },
};
// Run an async check; answer {ok, value} or the VerifyError's {code, params}.
async function attempt(fn) {
  try {
    const value = (await fn()) ?? null;
    return {ok: true, value: JSON.parse(JSON.stringify(value, (k, v) =>
      (typeof v === "bigint" ? String(v) : v instanceof Uint8Array ? V.toHex(v) : v)))};
  } catch (e) {
    if (!(e instanceof V.VerifyError)) return {ok: false, code: "exception", message: String(e)};
    return {ok: false, code: e.code, params: JSON.parse(JSON.stringify(e.params, (k, v) =>
      (typeof v === "bigint" ? String(v) : v)))};
  }
}
</script>"""


@dataclass
class FakeNode:
    """Answers chain_block, chain_validators and chain_validator_changes from a chain built
    in the test, and logs the calls."""

    blocks: dict[int, dict[str, Any]] = field(default_factory=dict)
    sets: dict[int, ValidatorSet] = field(default_factory=dict)
    tamper: Callable[[str, dict[str, Any], Any], Any] | None = None
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def changes(self, after: int) -> list[dict[str, Any]]:
        out = []
        for height, block in sorted(self.blocks.items()):
            header = BlockHeader.decode(bytes.fromhex(block["header"]))
            if header.next_validator_set_hash != header.validator_set_hash and height >= after:
                vset = self.sets[height + 1]
                out.append({"from_height": height + 1, "hash": vset.hash.hex(),
                            "validators": [{"public_key": v.public_key.hex(), "name": v.name}
                                           for v in vset.validators],
                            "certified_by": {"height": height, "header": block["header"],
                                             "certificate": block["certificate"]["encoded"]}})
        return out

    def answer(self, method: str, params: dict[str, Any]) -> Any:
        self.calls.append((method, params))
        if method == "chain_validator_changes":
            result: Any = {"changes": self.changes(params.get("after_height", 0)),
                           "more": False}
        elif method == "chain_block":
            result = self.blocks[params["height"]]
        elif method == "chain_validators":
            vset = self.sets[params["height"]]
            result = {"height": params["height"], "hash": vset.hash.hex(),
                      "validators": [{"public_key": v.public_key.hex(), "name": v.name}
                                     for v in vset.validators]}
        else:
            raise AssertionError(f"the fake node has no {method}")
        return self.tamper(method, params, result) if self.tamper else result

    async def handle(self, request: web.Request) -> web.Response:
        doc = await request.json()
        calls = doc if isinstance(doc, list) else [doc]
        answers = [{"jsonrpc": "2.0", "id": c["id"],
                    "result": self.answer(c["method"], c.get("params") or {})} for c in calls]
        return web.json_response(answers if isinstance(doc, list) else answers[0])


@dataclass
class Page:
    devtools: DevTools
    node: FakeNode

    async def run(self, body: str) -> Any:
        """Evaluate `body` (an async function body using V, T, rpc) and return its
        attempt() answer."""
        return await self.devtools.evaluate(f"attempt(async () => {{ {body} }})")


@pytest.fixture
async def page(chromium: str) -> AsyncIterator[Page]:
    node = FakeNode()
    app = web.Application(client_max_size=64 * 1024 * 1024)

    async def index(request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    app.router.add_get("/", index)
    app.router.add_post("/rpc", node.handle)
    app.router.add_static("/explorer/", EXPLORER_DIR)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with open_browser(chromium) as devtools:
            await devtools.call("Page.navigate", url=f"http://127.0.0.1:{port}/")
            await devtools.wait_for("typeof attempt === 'function' && !!window.crypto.subtle",
                                    "the verifier page")
            yield Page(devtools, node)
            assert devtools.exceptions == [], devtools.exceptions
    finally:
        await runner.cleanup()


# ------------------------------------------------------------------ canonical msgpack


def tag(value: Any, rng: random.Random | None = None) -> Any:
    """A canonical value as tagged JSON; `rng` picks number or BigInt for small ints."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        small = abs(value) < 2**53 and (rng is None or rng.random() < 0.5)
        return {"int": str(value), "small": small}
    if isinstance(value, bytes):
        return {"bytes": value.hex()}
    if isinstance(value, list | tuple):
        return [tag(v, rng) for v in value]
    assert isinstance(value, dict)
    return {"map": [[k, tag(v, rng)] for k, v in value.items()]}


def untag(value: Any) -> Any:
    """Tagged JSON from the page back to a Python value (maps with sorted keys)."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, list):
        return tuple(untag(v) for v in value)
    if "int" in value:
        return int(value["int"])
    if "bytes" in value:
        return bytes.fromhex(value["bytes"])
    return {k: untag(v) for k, v in sorted(value["map"])}


INT_EDGES = [0, 1, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**53 - 1, 2**53,
             2**53 + 1, 2**63, 2**64 - 1, -1, -31, -32, -33, -127, -128, -129, -32768, -32769,
             -(2**31), -(2**31) - 1, -(2**53), -(2**63)]
EDGE_VALUES: list[Any] = [
    *INT_EDGES, None, True, False, "", "a" * 31, "a" * 32, "a" * 255, "a" * 256, "я" * 40000,
    "Кыргызча", "\U0001f600", b"", b"\x00" * 255, b"\x01" * 256, b"\x02" * 65536, [], [1] * 15,
    [1] * 16, list(range(70000)), {}, {str(i): i for i in range(15)},
    {str(i): i for i in range(16)},
    # UTF-8 byte order differs from UTF-16 order for these keys (U+FFFF before U+1F600).
    {"\uffff": 1, "\U0001f600": 2, "é": 3, "z": 4, "": 5, "__proto__": 6, "10": 7, "9": 8},
    [[], [[]], {"a": [b"x", {"b": None}]}],
]


def nested(depth: int, leaf: Any) -> Any:
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


def random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.choice(["int", "int", "str", "bytes", "bool", "nil", "list", "map"]
                      if depth < 4 else ["int", "str", "bytes"])
    if kind == "int":
        bits = rng.choice([4, 7, 8, 16, 32, 53, 63, 64])
        return rng.randrange(0, 2**bits) if rng.random() < 0.6 or bits == 64 \
            else -rng.randrange(1, 2**min(bits, 63) + 1)
    if kind == "str":
        alphabet = "aZ0 /é\u044f\u0416\u4e2d\uffff\U0001f600\U00010000"
        return "".join(rng.choice(alphabet) for _ in range(rng.choice([0, 1, 5, 31, 32, 300])))
    if kind == "bytes":
        return rng.randbytes(rng.choice([0, 1, 20, 32, 255, 256]))
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "nil":
        return None
    size = rng.choice([0, 1, 3, 15, 16, 17])
    if kind == "list":
        return [random_value(rng, depth + 1) for _ in range(size)]
    return {"".join(rng.choice("abcé\uffff\U0001f600") for _ in range(rng.randint(0, 4))):
            random_value(rng, depth + 1) for _ in range(size)}


async def js_encode(page: Page, values: list[Any], rng: random.Random | None = None
                    ) -> list[Any]:
    cases = json.dumps([tag(v, rng) for v in values])
    return await page.devtools.evaluate(f"""(() => {cases}.map((c) => {{
        try {{ return V.toHex(V.encode(T.from(c))); }} catch (e) {{ return {{error: e.code}}; }}
    }}))()""")


async def js_decode(page: Page, encodings: list[bytes]) -> list[Any]:
    cases = json.dumps([e.hex() for e in encodings])
    return await page.devtools.evaluate(f"""(() => {cases}.map((hex) => {{
        try {{ return {{value: T.to(V.decode(V.fromHex(hex)))}}; }}
        catch (e) {{ return {{error: e.code || String(e)}}; }}
    }}))()""")


def py_decode(data: bytes) -> Any:
    try:
        return {"value": codec.decode(data)}
    except ChainError:
        return {"error": "malformed"}


async def test_codec_encodes_as_python(page: Page) -> None:
    rng = random.Random(20240611)
    values = [*EDGE_VALUES, nested(16, []), nested(16, 1)]
    values += [random_value(rng) for _ in range(400)]
    got = await js_encode(page, values, rng)
    for value, hex_ in zip(values, got, strict=True):
        assert hex_ == codec.encode(value).hex(), f"encode({str(value)[:80]})"


async def test_codec_refuses_what_python_refuses(page: Page) -> None:
    refused: list[Any] = [2**64, -(2**63) - 1, nested(17, 1), nested(18, [])]
    for value in refused:
        with pytest.raises(ChainError):
            codec.encode(value)
    got = await js_encode(page, refused)
    assert got == [{"error": "malformed"}] * len(refused)
    floats = await page.devtools.evaluate(
        "[1.5, NaN, new V.JsonFloat(1), undefined, new ArrayBuffer(2), new Uint16Array(2)]"
        ".map((v) => { try { V.encode([v]); return 'accepted'; } catch (e) { return e.code; } })")
    assert floats == ["malformed"] * 6


async def test_codec_decodes_as_python(page: Page) -> None:
    rng = random.Random(7)
    valid = [codec.encode(v) for v in EDGE_VALUES + [random_value(rng) for _ in range(150)]]
    non_canonical = [
        b"\xcc\x05", b"\xcd\x00\x80", b"\xd0\x05", b"\xd1\xff\x80", b"\xd9\x01a",
        b"\xc5\x00\x01a", b"\xdc\x00\x01\x01", b"\xde\x00\x01\xa1a\x01",
        b"\x82\xa1b\x01\xa1a\x02", b"\x82\xa1a\x01\xa1a\x01", b"\x01\x02", b"",
        b"\xca\x3f\x80\x00\x00", b"\xcb" + b"\x00" * 8, b"\xd4\x01\x00", b"\xc7\x01\x01\x00",
        b"\xa1\xff", b"\xa2\xed\xa0", b"\x81\xc4\x01a\x01", b"\x81\x01\x01", b"\xc1",
        b"\x92\x01", b"\xc4\x05ab", codec.encode(nested(16, None))[:-1] + b"\x91\xc0",
        b"\x91" * 17 + b"\x01", b"\x91" * 200 + b"\x90",
    ]
    mutated = []
    for data in valid[-150:]:
        for _ in range(4):
            raw = bytearray(data)
            choice = rng.random()
            if choice < 0.6 and raw:
                raw[rng.randrange(len(raw))] = rng.randrange(256)
            elif choice < 0.8 and raw:
                del raw[rng.randrange(len(raw)):]
            else:
                raw += bytes([rng.randrange(256)])
            mutated.append(bytes(raw))
    encodings = valid + non_canonical + mutated
    got = await js_decode(page, encodings)
    for data, answer in zip(encodings, got, strict=True):
        expected = py_decode(data)
        if "error" in expected:
            assert answer == {"error": "malformed"}, f"JS accepted {data[:40].hex()}: {answer}"
        else:
            assert "value" in answer, f"JS refused {data[:40].hex()}: {answer}"
            assert untag(answer["value"]) == untag(tag(expected["value"])), data[:40].hex()


# ------------------------------------------------------------------ hashes, signatures, Merkle


async def test_signing_bytes_signatures_and_merkle_proofs(page: Page) -> None:
    key = KeyPair.from_seed(b"\x01" * 32)
    block_hash = bytes(range(32))
    vote = Vote.create("govchain-example", key, VoteKind.PRECOMMIT, 1, 0, block_hash)
    answer = await page.run(f"""
        const msg = V.signingBytes("govchain/vote/v1", "govchain-example",
                                   [2, 1, 0, V.fromHex("{block_hash.hex()}")]);
        const sig = V.fromHex("{vote.signature.hex()}"), key = V.fromHex("{key.public_key.hex()}");
        const bad = sig.slice(); bad[5] ^= 1;
        return {{msg, good: await V.isValidSignature(key, msg, sig),
                 bad: await V.isValidSignature(key, msg, bad),
                 notAKey: await V.isValidSignature(new Uint8Array(32).fill(255), msg, sig),
                 address: await V.computeAddress(key)}};""")
    assert answer["ok"], answer
    assert answer["value"] == {"msg": vote.message("govchain-example").hex(), "good": True,
                               "bad": False, "notAKey": False, "address": key.address.hex()}

    cases = []
    for size in [0, 1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 33]:
        leaves = [compute_hash(bytes([size, i])) for i in range(size)]
        proofs = [[p.hex() for p in merkle.compute_proof(leaves, i)] for i in range(size)]
        cases.append({"leaves": [x.hex() for x in leaves],
                      "root": merkle.compute_root(leaves).hex(), "proofs": proofs})
    answer = await page.run(f"""
        const out = [];
        for (const c of {json.dumps(cases)}) {{
          const leaves = c.leaves.map((x) => V.fromHex(x)), root = V.fromHex(c.root);
          const computed = V.toHex(await V.computeMerkleRoot(leaves));
          const valid = [], wrongIndex = [], wrongSize = [];
          for (let i = 0; i < leaves.length; i++) {{
            const path = c.proofs[i].map((p) => V.fromHex(p));
            valid.push(await V.isValidMerkleProof(leaves[i], i, leaves.length, path, root));
            wrongIndex.push(await V.isValidMerkleProof(leaves[i], (i + 1) % (leaves.length + 1),
                                                       leaves.length, path, root));
            wrongSize.push(await V.isValidMerkleProof(leaves[i], i, leaves.length + 1, path, root));
          }}
          out.push({{computed, valid, wrongIndex, wrongSize}});
        }}
        return out;""")
    assert answer["ok"], answer
    for case, result in zip(cases, answer["value"], strict=True):
        size = len(case["leaves"])
        assert result["computed"] == case["root"]
        assert result["valid"] == [True] * size
        for i in range(size):
            leaves = [bytes.fromhex(x) for x in case["leaves"]]
            path = merkle.compute_proof(leaves, i)
            root = bytes.fromhex(case["root"])
            assert result["wrongIndex"][i] == merkle.is_valid_proof(
                leaves[i], (i + 1) % (size + 1), size, path, root)
            assert result["wrongSize"][i] == merkle.is_valid_proof(
                leaves[i], i, size + 1, path, root)


# ------------------------------------------------------------------ state proofs


def make_state_proof(items: dict[bytes, bytes], key: bytes, height: int = 5) -> StateProof:
    """The proof of `key` over a whole state, computed from the tree's rules."""
    buckets: dict[int, list[tuple[bytes, bytes]]] = {}
    for k, v in items.items():
        kh = compute_key_hash(k)
        buckets.setdefault(get_bucket(kh), []).append((kh, compute_value_hash(v)))
    level = [EMPTY_BUCKET_HASH] * BUCKET_COUNT
    for bucket, entries in buckets.items():
        level[bucket] = compute_bucket_hash(b"".join(kh + vh for kh, vh in sorted(entries)))
    index = get_bucket(compute_key_hash(key))
    entries = tuple(sorted(buckets.get(index, [])))
    siblings = []
    while len(level) > 1:
        siblings.append(level[index ^ 1])
        level = [compute_node_hash(level[i], level[i + 1]) for i in range(0, len(level), 2)]
        index >>= 1
    return StateProof(height, level[0], entries, tuple(siblings))  # type: ignore[arg-type]


def same_bucket_keys(count: int) -> list[bytes]:
    """`count` distinct keys whose hashes fall in one bucket."""
    target = get_bucket(compute_key_hash(b"k0"))
    found = [b"k0"]
    n = 1
    while len(found) < count:
        candidate = f"k{n}".encode()
        if get_bucket(compute_key_hash(candidate)) == target:
            found.append(candidate)
        n += 1
    return found


async def test_state_proofs_as_python(page: Page) -> None:
    a, b, c = same_bucket_keys(3)
    items = {a: b"alpha", b: b"beta", b"elsewhere": b"x", b"rec/v1/ns/key": b"\x80"}
    cases = []
    for key, value in [(a, b"alpha"), (b, b"beta"), (c, None), (b"nothing-here", None),
                       (a, b"ALPHA"), (c, b"gamma")]:
        proof = make_state_proof(items, key)
        cases.append((key, value, proof, proof.root))
    good = make_state_proof(items, a)
    cases.append((a, b"alpha", good, compute_hash(b"another root")))
    unsorted = replace(good, entries=tuple(reversed(good.entries)))
    cases.append((a, b"alpha", unsorted, good.root))
    other_bucket = replace(good, entries=(*good.entries,
                                          (compute_key_hash(b"elsewhere"), compute_hash(b"x"))))
    cases.append((a, b"alpha", other_bucket, good.root))
    docs = [{"key": k.hex(), "value": None if v is None else v.hex(), "proof": p.to_json(),
             "root": r.hex()} for k, v, p, r in cases]
    answer = await page.run(f"""
        const out = [];
        for (const c of {json.dumps(docs)}) {{
          out.push(await attempt(() => V.verifyStateProof(c.proof, V.fromHex(c.key),
              c.value === null ? null : V.fromHex(c.value), V.fromHex(c.root), 5)));
        }}
        return out;""")
    assert answer["ok"], answer
    codes = [r.get("code") if not r["ok"] else "ok" for r in answer["value"]]
    expected = ["ok" if verify_state_proof(p, k, v, r) else "failed" for k, v, p, r in cases]
    assert [("ok" if code == "ok" else "failed") for code in codes] == expected
    assert codes == ["ok", "ok", "ok", "ok", "value_mismatch", "value_mismatch",
                     "state_root_mismatch", "state_proof_malformed", "state_proof_malformed"]


# ------------------------------------------------------------------ genesis


async def js_genesis(page: Page, texts: list[str]) -> list[Any]:
    answer = await page.run(f"""
        const out = [];
        for (const text of {json.dumps(texts)}) {{
          out.push(await attempt(async () => {{ const g = await V.loadGenesis(text);
            return {{hash: g.hash, chain: g.chainId, set: g.validatorSet.hash,
                     quorum: g.validatorSet.quorum}}; }}));
        }}
        return out;""")
    assert answer["ok"], answer
    return list(answer["value"])


async def test_genesis_hash_as_python(page: Page) -> None:
    keys = [KeyPair.from_seed(bytes([i + 1]) * 32) for i in range(4)]
    dev = add_dev_ledger(make_genesis(keys), list(ACCOUNT_KEYS), BALANCE)
    big = Genesis(chain_id="ачык-\U0001f600", genesis_time_ms=2**53 + 5,
                  validator_set=ValidatorSet((Validator(keys[0].public_key, "Минфин \uffff"),)),
                  accounts=(GenesisAccount(keys[1].address, {"KGS": 2**64 - 1, "GOV": 0}),),
                  params=ChainParams(max_block_txs=7))
    minimal = json.dumps({"chain_id": "x", "genesis_time_ms": 1, "validators": [
        {"public_key": keys[2].public_key.hex()}]})
    texts = [dev.to_json(), big.to_json(), minimal]
    got = await js_genesis(page, texts)
    for text, answer in zip(texts, got, strict=True):
        genesis = Genesis.from_json(text)
        assert answer == {"ok": True, "value": {
            "hash": genesis.hash.hex(), "chain": genesis.chain_id,
            "set": genesis.validator_set.hash.hex(), "quorum": genesis.validator_set.quorum}}

    doc = json.loads(dev.to_json())
    refused = [
        {**doc, "extra": 1}, {**doc, "params": {"block_interval_ms": 0}},
        {**doc, "params": {"nope": 5}}, {**doc, "app_state": {"x": 1.5}},
        {**doc, "validators": []}, {**doc, "validators": doc["validators"] * 2},
        {**doc, "chain_id": ""},
    ]
    refused += [{**doc, "accounts": {"not": "a list"}}, {**doc, "validators": [None]}]
    texts = [json.dumps(d) for d in refused] + [dev.to_json().replace('"reserve": 100000000',
                                                                      '"reserve": 1.0e8'), "[]"]
    got = await js_genesis(page, texts)
    for text, answer in zip(texts, got, strict=True):
        with pytest.raises(ChainError):
            Genesis.from_json(text)
        assert answer["code"] == "genesis_invalid", (text[:200], answer)

    defaults = await page.devtools.evaluate("V.GENESIS_PARAM_DEFAULTS")
    assert defaults == ChainParams().to_value()


# ------------------------------------------------------------------ certificates and chains

CHAIN = "govchain-verifier"
KEYS = [KeyPair.from_seed(bytes([40 + i]) * 32) for i in range(6)]
NAMES = ["Finance", "Justice", "Health", "Interior", "Education", "Energy"]


def validator_set(indexes: list[int]) -> ValidatorSet:
    return ValidatorSet(tuple(Validator(KEYS[i].public_key, NAMES[i]) for i in indexes))


def certify(header: BlockHeader, signers: list[int], round_: int = 0) -> CommitCertificate:
    votes = [Vote.create(CHAIN, KEYS[i], VoteKind.PRECOMMIT, header.height, round_, header.hash)
             for i in signers]
    return CommitCertificate.from_votes(votes)


def block_doc(header: BlockHeader, cert: CommitCertificate) -> dict[str, Any]:
    return {"height": header.height, "header": header.encoded.hex(),
            "certificate": {"encoded": cert.encoded.hex()}}


@dataclass
class SyntheticChain:
    genesis: Genesis
    headers: list[BlockHeader]
    node: FakeNode


def build_chain(node: FakeNode, length: int = 7, change_at: int = 3) -> SyntheticChain:
    """Set A (validators 0-3) certifies heights 1..change_at; block `change_at` names set
    B (validators 1-4), which certifies the rest."""
    set_a, set_b = validator_set([0, 1, 2, 3]), validator_set([1, 2, 3, 4])
    genesis = Genesis(chain_id=CHAIN, genesis_time_ms=1_700_000_000_000, validator_set=set_a)
    prev, headers = genesis.hash, []
    for height in range(1, length + 1):
        current = set_a if height <= change_at else set_b
        following = set_a if height < change_at else set_b
        header = BlockHeader(CHAIN, height, 0, genesis.genesis_time_ms + height, prev,
                             current.get_proposer(height, 0), merkle.EMPTY_ROOT, merkle.EMPTY_ROOT,
                             compute_hash(b"state %d" % height), current.hash, following.hash)
        signers = [0, 1, 2] if height <= change_at else [2, 3, 4]
        node.blocks[height] = block_doc(header, certify(header, signers))
        node.sets[height + 1] = following
        headers.append(header)
        prev = header.hash
    return SyntheticChain(genesis, headers, node)


async def test_certificates_as_python(page: Page) -> None:
    chain = build_chain(page.node)
    header = chain.headers[0]
    vset = chain.genesis.validator_set
    variants: dict[str, CommitCertificate] = {
        "three_of_four": certify(header, [0, 1, 2]),
        "all_four": certify(header, [0, 1, 2, 3], round_=2),
        "two_of_four": certify(header, [0, 1]),
        "outsider": certify(header, [0, 1, 5]),
        "other_height": certify(chain.headers[1], [0, 1, 2]),
    }
    bad = certify(header, [0, 1, 2])
    key, sig = bad.signatures[1]
    variants["bad_signature"] = replace(bad, signatures=(
        bad.signatures[0], (key, sig[:10] + bytes([sig[10] ^ 1]) + sig[11:]), bad.signatures[2]))
    docs = {name: cert.encoded.hex() for name, cert in variants.items()}
    answer = await page.run(f"""
        const genesis = await V.loadGenesis({json.dumps(chain.genesis.to_json())});
        const out = {{}};
        for (const [name, hex] of Object.entries({json.dumps(docs)})) {{
          out[name] = await attempt(() => V.validateCertificate(V.decodeCertificate(V.fromHex(hex)),
              genesis.validatorSet, {json.dumps(CHAIN)}, 1, V.fromHex("{header.hash.hex()}")));
        }}
        return out;""")
    assert answer["ok"], answer
    got = answer["value"]
    for name, cert in variants.items():
        try:
            validate_certificate(cert, vset, CHAIN, height=1, block_hash=header.hash)
            python_ok = True
        except ChainError:
            python_ok = False
        assert got[name]["ok"] == python_ok, (name, got[name])
    assert got["three_of_four"]["value"] == {"signers": 3, "total": 4, "quorum": 3, "round": 0,
                                             "names": ["Finance", "Justice", "Health"]}
    assert got["all_four"]["value"]["round"] == 2
    assert got["two_of_four"]["code"] == "cert_no_quorum"
    assert got["two_of_four"]["params"] == {"height": 1, "signers": 2, "quorum": 3}
    assert got["outsider"]["code"] == "cert_outsider"
    assert got["other_height"]["code"] == "cert_wrong_block"
    signer_name = NAMES[[k.public_key for k in KEYS].index(key)]
    assert got["bad_signature"] == {"ok": False, "code": "cert_bad_signature",
                                    "params": {"height": 1, "name": signer_name}}


FOLLOW = """
    const genesis = await V.loadGenesis(GENESIS);
    const chain = new V.ChainVerifier(genesis, rpc);
    await chain.verifyTo(7);
    const certified = await chain.certifiedHeader(5);
    const bundle = V.makeBundle("block", genesis, certified, chain, null);
    const offline = await V.checkBundle(JSON.parse(JSON.stringify(bundle)), genesis);
    return {height: chain.height, sets: bundle.validator_sets, signed: certified.signed,
            offline: offline.signed};"""


async def test_light_client_follows_a_validator_set_change(page: Page) -> None:
    chain = build_chain(page.node)
    script = FOLLOW.replace("GENESIS", json.dumps(chain.genesis.to_json()))
    answer = await page.run(script)
    assert answer["ok"], answer
    result = answer["value"]
    assert result["height"] == 7
    assert [s["from_height"] for s in result["sets"]] == [1, 4]
    assert result["sets"][1]["hash"] == validator_set([1, 2, 3, 4]).hash.hex()
    assert result["sets"][1]["certified_by"]["height"] == 3
    assert result["signed"] == {"signers": 3, "total": 4, "quorum": 3, "round": 0,
                                "names": ["Health", "Interior", "Education"]}
    assert result["offline"] == result["signed"]

    # The node lies about the new set: it is not the one block 3 names.
    def wrong_set(method: str, params: dict[str, Any], result: Any) -> Any:
        if method == "chain_validators":
            return {**result, "validators": result["validators"][:3]}
        return result

    page.node.tamper = wrong_set
    answer = await page.run(script)
    assert answer == {"ok": False, "code": "set_unproven", "params": {"height": 4, "previous": 3}}

    # The old set signs a later block (e.g. keys of retired validators): not in force.
    page.node.tamper = None
    header = chain.headers[4]
    page.node.blocks[5] = block_doc(header, certify(header, [0, 1, 2]))
    answer = await page.run(script)
    assert answer["code"] == "cert_outsider" and answer["params"]["height"] == 5, answer

    # A block that does not follow its parent, though its certificate is good.
    header = replace(chain.headers[4], prev_hash=compute_hash(b"elsewhere"))
    page.node.blocks[5] = block_doc(header, certify(header, [2, 3, 4]))
    answer = await page.run(script)
    assert answer == {"ok": False, "code": "broken_link", "params": {"height": 5, "previous": 4}}

    # Another genesis (another key among the validators): block 1 does not build on it.
    build_chain(page.node)
    other = replace(chain.genesis, validator_set=validator_set([0, 1, 2, 5]))
    answer = await page.run(FOLLOW.replace("GENESIS", json.dumps(other.to_json())))
    assert answer == {"ok": False, "code": "genesis_mismatch", "params": {"height": 1,
                                                                           "previous": 0}}

    # What the explorer's pages do: no walk, the set changes followed from the genesis
    # (chain_validator_changes) and only the block asked about fetched.
    build_chain(page.node)
    skip = script.replace("await chain.verifyTo(7);\n", "").replace("chain.height", "7")
    page.node.calls.clear()
    answer = await page.run(skip)
    assert answer["ok"], answer
    assert [s["from_height"] for s in answer["value"]["sets"]] == [1, 4]
    assert answer["value"]["offline"] == result["signed"]
    assert [method for method, _ in page.node.calls] == ["chain_validator_changes",
                                                         "chain_block"]
    assert page.node.calls[1][1] == {"height": 5}

    def drop_changes(method: str, params: dict[str, Any], result: Any) -> Any:
        return {**result, "changes": []} if method == "chain_validator_changes" else result

    def other_new_set(method: str, params: dict[str, Any], result: Any) -> Any:
        if method != "chain_validator_changes":
            return result
        return {**result, "changes": [{**c, "validators": c["validators"][:3]}
                                      for c in result["changes"]]}

    def old_set_certifies(method: str, params: dict[str, Any], result: Any) -> Any:
        if method != "chain_validator_changes":
            return result
        forged = certify(chain.headers[2], [1, 2, 4])  # set B signs the block of set A
        return {**result, "changes": [{**c, "certified_by": {
            **c["certified_by"], "certificate": forged.encoded.hex()}}
            for c in result["changes"]]}

    outcomes = {}
    for tamper in (drop_changes, other_new_set, old_set_certifies):
        page.node.tamper = tamper
        outcomes[tamper.__name__] = await page.run(skip)
    page.node.tamper = None
    assert outcomes["drop_changes"] == {"ok": False, "code": "wrong_set", "params": {"height": 5}}
    assert outcomes["other_new_set"] == {"ok": False, "code": "set_unproven",
                                         "params": {"height": 4, "previous": 3}}
    assert outcomes["old_set_certifies"]["code"] == "cert_outsider", outcomes


async def test_bundle_check_refuses_a_forged_set_chain(page: Page) -> None:
    chain = build_chain(page.node)
    script = FOLLOW.replace("GENESIS", json.dumps(chain.genesis.to_json())).replace(
        "JSON.parse(JSON.stringify(bundle))", "forge(JSON.parse(JSON.stringify(bundle)))")
    forgeries = {
        # the bundle claims the new set is set A again: block 3's header names B
        "set_hash": "b.validator_sets[1].validators = b.validator_sets[0].validators;",
        "no_chain": "b.validator_sets = b.validator_sets.slice(0, 1);",
        "format": "b.format = 'something-else';",
        "genesis": "b.genesis_hash = '00'.repeat(32);",
    }
    codes = {}
    for name, body in forgeries.items():
        forged = script.replace("const genesis", f"const forge = (b) => {{ {body} return b; }};"
                                                 "\nconst genesis", 1)
        codes[name] = (await page.run(forged)).get("code")
    assert codes == {"set_hash": "set_unproven", "no_chain": "wrong_set",
                     "format": "bundle_invalid", "genesis": "bundle_other_genesis"}


async def test_page_checks_a_bundle_that_govchain_proof_writes(page: Page) -> None:
    # Format version 1 as sdk.bundle writes it, over three validator-set changes; the
    # page reads it by the same rules, and refuses one that needs a stated checkpoint.
    from bench.bench_verify_bundle import build_chain_bundle
    genesis, bundle = build_chain_bundle(3)
    script = f"""
    const genesis = await V.loadGenesis({json.dumps(genesis.to_json())});
    const bundle = {json.dumps(bundle)};
    const checked = await V.checkBundle(bundle, genesis);
    return {{height: checked.height, signed: checked.signed,
             value: V.toHex(checked.subject.value)}};"""
    answer = await page.run(script)
    assert answer["ok"], answer
    assert answer["value"]["height"] == bundle["block"]["height"]
    assert answer["value"]["value"] == b"Crypto Exchange LLC".hex()
    assert answer["value"]["signed"]["signers"] == 4
    answer = await page.run(script.replace('"checkpoint": null',
                                           '"checkpoint": {"height": 1, "header": ""}'))
    assert answer["code"] == "bundle_invalid" and "checkpoint" in answer["params"]["what"]

    # Every validator signs each change (as the explorer's downloads keep them), the last
    # signature in certificate order flipped: a quorum before it proves the change, for
    # the page as for verify_bundle; the same flip in the final block is refused by both.
    from sdk.bundle import BadSignatureError, verify_bundle
    genesis, bundle = build_chain_bundle(3, full_certificates=True)
    by = bundle["validator_sets"][2]["certified_by"]
    by["certificate"] = by["certificate"][:-2] + f"{int(by['certificate'][-2:], 16) ^ 1:02x}"
    verify_bundle(bundle, genesis)
    final = copy.deepcopy(bundle)
    cert = final["block"]["certificate"]
    final["block"]["certificate"] = cert[:-2] + f"{int(cert[-2:], 16) ^ 1:02x}"
    with pytest.raises(BadSignatureError):
        verify_bundle(final, genesis)
    check = """
    const genesis = await V.loadGenesis(GENESIS);
    return (await V.checkBundle(BUNDLE, genesis)).height;"""
    for doc, ok in ((bundle, True), (final, False)):
        answer = await page.run(check.replace("GENESIS", json.dumps(genesis.to_json()))
                                .replace("BUNDLE", json.dumps(doc)))
        assert answer["ok"] is ok, answer
        if not ok:
            assert answer["code"] == "cert_bad_signature", answer
