// govchain explorer: checks what a node says without trusting it, in the browser.
// Written from docs/protocol.md: canonical msgpack (section 1), signing bytes (3),
// headers (5), the tx Merkle tree (6), validator sets and commit certificates (7), the
// genesis hash (8) and state proofs (11). SHA-256 and Ed25519 come from WebCrypto.
// The trust anchor is a genesis document; every other input is the node's word until
// checked here. No DOM access: app.js shows the results. A failed check throws
// VerifyError with a stable code; app.js words it as i18n key "fail_<code>".
"use strict";

const GovchainVerify = (() => {
  const MAX_DEPTH = 16;
  const INT_MIN = -(2n ** 63n);
  const INT_MAX = 2n ** 64n - 1n;
  const HEADER_VERSION = 2;
  const STATE_PROOF_VERSION = 1;
  const BUCKET_BITS = 16;
  const PRECOMMIT = 2;
  const DOMAIN_VOTE = "govchain/vote/v1";
  const DOMAIN_TX = "govchain/tx/v1";
  const ADDRESS_DOMAIN = "govchain/address/ed25519\x00";
  const BLOCKS_PER_REQUEST = 50;
  // chain/genesis.py ChainParams: the genesis hash covers every parameter, defaults
  // filled in. A test compares this table with the Python one.
  const GENESIS_PARAM_DEFAULTS = {
    block_interval_ms: 200, empty_block_interval_ms: 5000, max_block_txs: 10000,
    max_block_bytes: 8388608, max_tx_bytes: 16384, timeout_propose_ms: 1000,
    timeout_vote_ms: 500, timeout_delta_ms: 500, timeout_max_ms: 10000,
    clock_skew_ms: 5000,
  };
  const GENESIS_FIELDS = ["chain_id", "genesis_time_ms", "validators", "accounts", "params",
    "app_state"];

  class VerifyError extends Error {
    /** `code` names what failed (i18n "fail_<code>"); `params` fill its message. */
    constructor(code, params) {
      super(`${code} ${JSON.stringify(params || {}, (k, v) =>
        (typeof v === "bigint" ? v.toString() : v))}`);
      this.code = code;
      this.params = params || {};
    }
  }

  const fail = (code, params) => { throw new VerifyError(code, params); };
  const malformed = (what) => fail("malformed", { what });

  // ---------------------------------------------------------------- bytes

  const utf8Encoder = new TextEncoder();
  const utf8Decoder = new TextDecoder("utf-8", { fatal: true });

  function fromHex(hex, size) {
    if (typeof hex !== "string" || hex.length % 2 || /[^0-9a-fA-F]/.test(hex)) {
      malformed("hex");
    }
    const out = new Uint8Array(hex.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(2 * i, 2), 16);
    if (size !== undefined && out.length !== size) malformed(`expected ${size} bytes`);
    return out;
  }

  function toHex(bytes) {
    let hex = "";
    for (const b of bytes) hex += b.toString(16).padStart(2, "0");
    return hex;
  }

  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const part of parts) { out.set(part, at); at += part.length; }
    return out;
  }

  function isEqualBytes(a, b) {
    if (a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
    return true;
  }

  function compareBytes(a, b) {
    const n = Math.min(a.length, b.length);
    for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
    return a.length - b.length;
  }

  const utf8 = (text) => utf8Encoder.encode(text);

  // ---------------------------------------------------------------- canonical msgpack

  class Writer {
    constructor() { this.buffer = new Uint8Array(256); this.length = 0; }
    reserve(n) {
      if (this.length + n <= this.buffer.length) return;
      let size = this.buffer.length * 2;
      while (size < this.length + n) size *= 2;
      const grown = new Uint8Array(size);
      grown.set(this.buffer.subarray(0, this.length));
      this.buffer = grown;
    }
    byte(b) { this.reserve(1); this.buffer[this.length++] = b; }
    bytes(data) { this.reserve(data.length); this.buffer.set(data, this.length); this.length += data.length; }
    uint(value, size) {  // big-endian, `size` bytes, value a BigInt
      this.reserve(size);
      for (let i = size - 1; i >= 0; i--) {
        this.buffer[this.length + i] = Number(value & 0xffn);
        value >>= 8n;
      }
      this.length += size;
    }
    result() { return this.buffer.slice(0, this.length); }
  }

  function writeInt(w, n) {
    if (n < INT_MIN || n > INT_MAX) malformed("integer outside the 64-bit range");
    if (n >= 0n) {
      if (n < 128n) w.byte(Number(n));
      else if (n < 256n) { w.byte(0xcc); w.uint(n, 1); }
      else if (n < 65536n) { w.byte(0xcd); w.uint(n, 2); }
      else if (n < 4294967296n) { w.byte(0xce); w.uint(n, 4); }
      else { w.byte(0xcf); w.uint(n, 8); }
    } else if (n >= -32n) w.byte(Number(256n + n));
    else if (n >= -128n) { w.byte(0xd0); w.uint(256n + n, 1); }
    else if (n >= -32768n) { w.byte(0xd1); w.uint(65536n + n, 2); }
    else if (n >= -2147483648n) { w.byte(0xd2); w.uint(4294967296n + n, 4); }
    else { w.byte(0xd3); w.uint(18446744073709551616n + n, 8); }
  }

  function writeLength(w, n, fix, fixMax, tag8, tag16, tag32) {
    if (n <= fixMax) w.byte(fix | n);
    else if (tag8 !== null && n < 256) { w.byte(tag8); w.uint(BigInt(n), 1); }
    else if (n < 65536) { w.byte(tag16); w.uint(BigInt(n), 2); }
    else { w.byte(tag32); w.uint(BigInt(n), 4); }
  }

  function writeText(w, text) {
    if (!text.isWellFormed()) malformed("text is not valid Unicode");
    const data = utf8(text);
    writeLength(w, data.length, 0xa0, 31, 0xd9, 0xda, 0xdb);
    w.bytes(data);
  }

  function mapEntries(value) {
    const entries = value instanceof Map ? [...value.entries()] : Object.entries(value);
    const keyed = entries.map(([key, item]) => {
      if (typeof key !== "string") malformed("map keys must be text");
      return [utf8(key), key, item];
    });
    return keyed.sort((a, b) => compareBytes(a[0], b[0]));
  }

  function writeValue(w, value, depth) {
    if (depth > MAX_DEPTH) malformed("value nests deeper than 16 levels");
    if (value === null) w.byte(0xc0);
    else if (value === false) w.byte(0xc2);
    else if (value === true) w.byte(0xc3);
    else if (typeof value === "number") {
      if (!Number.isInteger(value)) malformed("floats are not allowed");
      writeInt(w, BigInt(value));
    } else if (typeof value === "bigint") writeInt(w, value);
    else if (typeof value === "string") writeText(w, value);
    else if (value instanceof Uint8Array) {
      writeLength(w, value.length, 0, -1, 0xc4, 0xc5, 0xc6);
      w.bytes(value);
    } else if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) {
      malformed("bytes must be a Uint8Array");
    } else if (Array.isArray(value)) {
      if (depth >= MAX_DEPTH && value.length) malformed("value nests deeper than 16 levels");
      writeLength(w, value.length, 0x90, 15, null, 0xdc, 0xdd);
      for (const item of value) writeValue(w, item, depth + 1);
    } else if (typeof value === "object" && !(value instanceof JsonFloat)) {
      const entries = mapEntries(value);
      if (depth >= MAX_DEPTH && entries.length) malformed("value nests deeper than 16 levels");
      writeLength(w, entries.length, 0x80, 15, null, 0xde, 0xdf);
      for (const [, key, item] of entries) {
        writeText(w, key);
        writeValue(w, item, depth + 1);
      }
    } else if (value instanceof JsonFloat) malformed("floats are not allowed");
    else malformed(`a ${typeof value} cannot be encoded`);
  }

  /** The canonical msgpack bytes of `value` (docs/protocol.md section 1). Integers are
   * numbers or BigInts, text strings, bytes Uint8Arrays, maps plain objects or Maps. */
  function encode(value) {
    const w = new Writer();
    writeValue(w, value, 0);
    return w.result();
  }

  class Reader {
    constructor(data) { this.data = data; this.at = 0; this.view = new DataView(data.buffer, data.byteOffset, data.byteLength); }
    need(n) { if (this.at + n > this.data.length) malformed("truncated msgpack"); }
    uint(size) {
      this.need(size);
      let n = 0n;
      for (let i = 0; i < size; i++) n = (n << 8n) | BigInt(this.data[this.at + i]);
      this.at += size;
      return n;
    }
    take(n) { this.need(n); const out = this.data.slice(this.at, this.at + n); this.at += n; return out; }
  }

  const asNumber = (n) => (n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n);

  function readText(r, n) {
    try {
      return utf8Decoder.decode(r.take(n));
    } catch (e) {
      if (e instanceof VerifyError) throw e;
      return malformed("text is not valid UTF-8");
    }
  }

  function readArray(r, n, depth) {
    const out = [];
    for (let i = 0; i < n; i++) out.push(readValue(r, depth + 1));
    return out;
  }

  function readMap(r, n, depth) {
    const out = Object.create(null);
    for (let i = 0; i < n; i++) {
      const key = readValue(r, depth + 1);
      if (typeof key !== "string") malformed("map keys must be text");
      if (Object.prototype.hasOwnProperty.call(out, key)) malformed("a map key appears twice");
      out[key] = readValue(r, depth + 1);
    }
    return out;
  }

  function readValue(r, depth) {
    if (depth > MAX_DEPTH + 1) malformed("value nests deeper than 16 levels");
    const tag = r.uint(1);
    const t = Number(tag);
    if (t <= 0x7f) return t;
    if (t >= 0xe0) return t - 256;
    if (t >= 0x80 && t <= 0x8f) return readMap(r, t & 0x0f, depth);
    if (t >= 0x90 && t <= 0x9f) return readArray(r, t & 0x0f, depth);
    if (t >= 0xa0 && t <= 0xbf) return readText(r, t & 0x1f);
    switch (t) {
      case 0xc0: return null;
      case 0xc2: return false;
      case 0xc3: return true;
      case 0xc4: return r.take(Number(r.uint(1)));
      case 0xc5: return r.take(Number(r.uint(2)));
      case 0xc6: return r.take(Number(r.uint(4)));
      case 0xcc: return asNumber(r.uint(1));
      case 0xcd: return asNumber(r.uint(2));
      case 0xce: return asNumber(r.uint(4));
      case 0xcf: return asNumber(r.uint(8));
      case 0xd0: return asNumber(BigInt.asIntN(8, r.uint(1)));
      case 0xd1: return asNumber(BigInt.asIntN(16, r.uint(2)));
      case 0xd2: return asNumber(BigInt.asIntN(32, r.uint(4)));
      case 0xd3: return asNumber(BigInt.asIntN(64, r.uint(8)));
      case 0xd9: return readText(r, Number(r.uint(1)));
      case 0xda: return readText(r, Number(r.uint(2)));
      case 0xdb: return readText(r, Number(r.uint(4)));
      case 0xdc: return readArray(r, Number(r.uint(2)), depth);
      case 0xdd: return readArray(r, Number(r.uint(4)), depth);
      case 0xde: return readMap(r, Number(r.uint(2)), depth);
      case 0xdf: return readMap(r, Number(r.uint(4)), depth);
      case 0xca: case 0xcb: return malformed("floats are not allowed");
      default: return malformed(`msgpack type 0x${t.toString(16)} is not allowed`);
    }
  }

  /** Decode canonical bytes; refuse trailing bytes and any non-canonical form (by
   * re-encoding and comparing, as chain/codec.py does). Maps come back as objects
   * without a prototype, integers as numbers (BigInt beyond 2^53), bytes as Uint8Array. */
  function decode(data) {
    const r = new Reader(data);
    const value = readValue(r, 0);
    if (r.at !== data.length) malformed("trailing bytes after the value");
    if (!isEqualBytes(encode(value), data)) malformed("encoding is not canonical");
    return value;
  }

  // ---------------------------------------------------------------- JSON with big integers

  /** A JSON number with a fraction or exponent: kept apart so that the encoder refuses it
   * (Python's json gives a float, which chain/codec.py refuses). */
  class JsonFloat { constructor(value) { this.value = value; } }

  /** JSON.parse, but integers beyond 2^53 stay exact (BigInt) and fractional numbers
   * become JsonFloat. Needs JSON.parse's source text access (Chromium 114+). */
  function parseJson(text) {
    return JSON.parse(text, function revive(key, value, context) {
      if (typeof value !== "number") return value;
      const source = context && context.source;
      if (source === undefined) return value;
      if (!/^-?\d+$/.test(source)) return new JsonFloat(value);
      return Number.isSafeInteger(value) ? value : BigInt(source);
    });
  }

  // ---------------------------------------------------------------- hashes and signatures

  function requireWebCrypto() {
    if (!globalThis.crypto || !globalThis.crypto.subtle) fail("no_webcrypto");
  }

  async function sha256(data) {
    requireWebCrypto();
    return new Uint8Array(await crypto.subtle.digest("SHA-256", data));
  }

  const importedKeys = new Map();

  /** True when `signature` is a valid Ed25519 signature of `message` by `publicKey`. */
  async function isValidSignature(publicKey, message, signature) {
    requireWebCrypto();
    if (publicKey.length !== 32 || signature.length !== 64) return false;
    const id = toHex(publicKey);
    try {
      let key = importedKeys.get(id);
      if (!key) {
        key = await crypto.subtle.importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]);
        importedKeys.set(id, key);
      }
      return await crypto.subtle.verify({ name: "Ed25519" }, key, signature, message);
    } catch (e) {
      if (e instanceof DOMException && e.name === "NotSupportedError") fail("no_webcrypto");
      return false;  // a key that is not a curve point, for one
    }
  }

  /** canonical([domain, chain_id, payload]): the bytes every govchain signature covers. */
  const signingBytes = (domain, chainId, payload) => encode([domain, chainId, payload]);

  async function computeAddress(publicKey) {
    return (await sha256(concat(utf8(ADDRESS_DOMAIN), publicKey))).slice(0, 20);
  }

  // ---------------------------------------------------------------- tx Merkle tree (RFC 9162)

  const leafHash = (leaf) => sha256(concat(Uint8Array.of(0), leaf));
  const nodeHash = (left, right) => sha256(concat(Uint8Array.of(1), left, right));

  async function computeMerkleRoot(leaves) {
    if (!leaves.length) return sha256(new Uint8Array(0));
    let level = await Promise.all(leaves.map(leafHash));
    while (level.length > 1) {
      const paired = [];
      for (let i = 0; i + 1 < level.length; i += 2) paired.push(nodeHash(level[i], level[i + 1]));
      const next = await Promise.all(paired);
      if (level.length % 2) next.push(level[level.length - 1]);
      level = next;
    }
    return level[0];
  }

  /** RFC 9162 section 2.1.3.2, as chain/merkle.py is_valid_proof. */
  async function isValidMerkleProof(leaf, index, size, path, root) {
    if (!(Number.isSafeInteger(index) && Number.isSafeInteger(size) && index >= 0 && index < size)) return false;
    let fn = BigInt(index), sn = BigInt(size - 1);
    let result = await leafHash(leaf);
    for (const sibling of path) {
      if (sn === 0n) return false;
      if ((fn & 1n) || fn === sn) {
        result = await nodeHash(sibling, result);
        if (!(fn & 1n)) {
          while ((fn & 1n) === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
        }
      } else {
        result = await nodeHash(result, sibling);
      }
      fn >>= 1n; sn >>= 1n;
    }
    return sn === 0n && isEqualBytes(result, root);
  }

  // ---------------------------------------------------------------- state proofs

  function parseStateProof(doc) {
    try {
      if (doc.version !== STATE_PROOF_VERSION) malformed("state proof version");
      if (!Array.isArray(doc.entries) || !Array.isArray(doc.siblings) ||
          doc.siblings.length !== BUCKET_BITS) malformed("state proof shape");
      return {
        height: doc.height, root: fromHex(doc.root, 32),
        entries: doc.entries.map((e) => [fromHex(e.key_hash, 32), fromHex(e.value_hash, 32)]),
        siblings: doc.siblings.map((s) => fromHex(s, 32)),
      };
    } catch (e) {
      if (e instanceof VerifyError) return fail("state_proof_malformed", {});
      throw e;
    }
  }

  /** Check that state `key` holds `value` (null: is absent) under `root`, as
   * chain/state_proof.py verify_state_proof. Throws VerifyError naming the failing step:
   * state_proof_malformed, value_mismatch or state_root_mismatch. */
  async function verifyStateProof(proofDoc, key, value, root, height) {
    const proof = parseStateProof(proofDoc);
    const keyHash = await sha256(key);
    const bucket = (keyHash[0] << 8) | keyHash[1];
    let found = null;
    let previous = new Uint8Array(0);
    for (const [entryKeyHash, entryValueHash] of proof.entries) {
      if (((entryKeyHash[0] << 8) | entryKeyHash[1]) !== bucket ||
          compareBytes(entryKeyHash, previous) <= 0) fail("state_proof_malformed", {});
      previous = entryKeyHash;
      if (isEqualBytes(entryKeyHash, keyHash)) found = entryValueHash;
    }
    const expected = value === null ? null : await sha256(value);
    if ((found === null) !== (expected === null) || (found && !isEqualBytes(found, expected))) {
      fail("value_mismatch", { height });
    }
    let node = await sha256(concat(Uint8Array.of(0), ...proof.entries.flat()));
    let index = bucket;
    for (const sibling of proof.siblings) {
      node = index & 1 ? await nodeHash(sibling, node) : await nodeHash(node, sibling);
      index >>= 1;
    }
    if (!isEqualBytes(node, root)) fail("state_root_mismatch", { height });
  }

  // State keys (ledger/keys.py): built here, never taken from the node.
  const stateKeys = {
    account: (address) => concat(utf8("acct/v1/"), address),
    balance: (address, asset) => concat(utf8("bal/v1/"), address, utf8("/"), utf8(asset)),
    asset: (symbol) => concat(utf8("asset/v1/"), utf8(symbol)),
    record: (namespace, key) => concat(utf8("rec/v1/"), utf8(namespace), utf8("/"), utf8(key)),
  };

  // ---------------------------------------------------------------- headers and certificates

  const isInt = (v) => (typeof v === "number" && Number.isInteger(v) && v >= 0) ||
    (typeof v === "bigint" && v >= 0n);
  const isBytes = (v, size) => v instanceof Uint8Array && (size === undefined || v.length === size);

  /** The fields of canonical header bytes (docs/protocol.md section 5). */
  function decodeHeader(data) {
    const value = decode(data);
    if (Array.isArray(value) && value.length && value[0] !== HEADER_VERSION) malformed("header version");
    if (!Array.isArray(value) || value.length !== 12) malformed("header: expected 12 items");
    const [version, chainId, height, round, timestampMs, prevHash, proposer, txRoot, resultsRoot,
      stateRoot, validatorSetHash, nextValidatorSetHash] = value;
    if (typeof chainId !== "string" || [...chainId].length > 64) malformed("header chain_id");
    if (!isInt(height) || !isInt(round) || !isInt(timestampMs)) malformed("header numbers");
    for (const item of [prevHash, proposer, txRoot, resultsRoot, stateRoot, validatorSetHash,
      nextValidatorSetHash]) {
      if (!isBytes(item, 32)) malformed("header hashes");
    }
    return { version, chainId, height: Number(height), round, timestampMs, prevHash, proposer,
      txRoot, resultsRoot, stateRoot, validatorSetHash, nextValidatorSetHash };
  }

  /** The fields of canonical commit certificate bytes (section 7). */
  function decodeCertificate(data) {
    const value = decode(data);
    if (!Array.isArray(value) || value.length !== 4) malformed("certificate: expected 4 items");
    const [height, round, blockHash, signatures] = value;
    if (!isInt(height) || !isInt(round) || !isBytes(blockHash, 32) || !Array.isArray(signatures) ||
        signatures.length > 256) malformed("certificate");
    const pairs = signatures.map((item) => {
      if (!Array.isArray(item) || item.length !== 2 || !isBytes(item[0], 32) || !isBytes(item[1], 64)) {
        malformed("certificate signature");
      }
      return { validator: item[0], signature: item[1] };
    });
    return { height: Number(height), round: Number(round), blockHash, signatures: pairs };
  }

  /** A validator set: keys in rotation order, names (not covered by its hash), its hash. */
  async function makeValidatorSet(validators, namesFrom) {
    const keys = validators.map((v) => (v.publicKey instanceof Uint8Array ? v.publicKey : fromHex(v.public_key, 32)));
    const hexKeys = keys.map(toHex);
    if (!keys.length || keys.length > 256 || new Set(hexKeys).size !== keys.length) {
      malformed("a validator set has 1 to 256 distinct keys");
    }
    const hash = await sha256(encode(keys));
    return {
      keys, hexKeys, names: validators.map((v) => String(v.name || "")), hash: toHex(hash),
      quorum: Math.floor((2 * keys.length) / 3) + 1, namesFrom,
    };
  }

  const nameOf = (set, hexKey) => {
    const i = set.hexKeys.indexOf(hexKey);
    return i >= 0 && set.names[i] ? set.names[i] : `${hexKey.slice(0, 8)}…`;
  };

  /** chain/vote.py validate_certificate: the block, no signer twice, members only, a
   * quorum, and every precommit signature (with `quorumOnly`, those of the first quorum
   * of signers: what proves a validator-set change, as sdk/bundle.py checks it).
   * Returns the signers' names in set order. */
  async function validateCertificate(cert, set, chainId, height, blockHash, quorumOnly) {
    if (cert.height !== height || !isEqualBytes(cert.blockHash, blockHash)) {
      fail("cert_wrong_block", { height });
    }
    const signers = cert.signatures.map((s) => toHex(s.validator));
    for (let i = 1; i < signers.length; i++) {
      if (signers[i] <= signers[i - 1]) fail("cert_duplicate", { height });
    }
    const outsider = signers.find((key) => !set.hexKeys.includes(key));
    if (outsider) fail("cert_outsider", { height, key: `${outsider.slice(0, 16)}…` });
    if (signers.length < set.quorum) {
      fail("cert_no_quorum", { height, signers: signers.length, quorum: set.quorum });
    }
    const message = signingBytes(DOMAIN_VOTE, chainId,
      [PRECOMMIT, cert.height, cert.round, cert.blockHash]);
    const checked = quorumOnly ? cert.signatures.slice(0, set.quorum) : cert.signatures;
    for (const { validator, signature } of checked) {
      if (!(await isValidSignature(validator, message, signature))) {
        fail("cert_bad_signature", { height, name: nameOf(set, toHex(validator)) });
      }
    }
    const signed = new Set(signers);
    return {
      signers: signers.length, total: set.keys.length, quorum: set.quorum, round: cert.round,
      names: set.hexKeys.filter((k) => signed.has(k)).map((k) => nameOf(set, k)),
    };
  }

  // ---------------------------------------------------------------- genesis

  function genesisError(what) { return fail("genesis_invalid", { what }); }

  const isPositiveInt = (v) => (typeof v === "number" && Number.isInteger(v) && v > 0) ||
    (typeof v === "bigint" && v > 0n);
  const isAmount = (v) => (typeof v === "number" && Number.isInteger(v) && v >= 0) ||
    (typeof v === "bigint" && v >= 0n);

  /** A genesis document (JSON text): its chain id, validator set and hash, computed as
   * chain/genesis.py Genesis.hash over the canonical map of section 8. Anything wrong
   * with the document is genesis_invalid. */
  async function loadGenesis(text) {
    try {
      return await readGenesis(text);
    } catch (e) {
      if (e instanceof VerifyError) throw e;
      return genesisError(String(e.message || e));
    }
  }

  async function readGenesis(text) {
    let doc;
    try {
      doc = parseJson(text);
    } catch (e) {
      return genesisError("not JSON");
    }
    if (!doc || typeof doc !== "object" || Array.isArray(doc)) return genesisError("not a JSON object");
    const unknown = Object.keys(doc).filter((k) => !GENESIS_FIELDS.includes(k));
    if (unknown.length) return genesisError(`unknown field ${unknown.sort()[0]}`);
    const chainId = doc.chain_id;
    if (typeof chainId !== "string" || !chainId.length || [...chainId].length > 64) {
      return genesisError("chain_id");
    }
    if (!(typeof doc.genesis_time_ms === "number" && Number.isInteger(doc.genesis_time_ms)) &&
        typeof doc.genesis_time_ms !== "bigint") return genesisError("genesis_time_ms");
    if (!Array.isArray(doc.validators)) return genesisError("validators");
    const validators = [];
    for (const item of doc.validators) {
      if (!item || typeof item.public_key !== "string" || !/^[0-9a-fA-F]{64}$/.test(item.public_key) ||
          (item.name !== undefined && typeof item.name !== "string")) {
        return genesisError("a validator");
      }
      validators.push({ publicKey: fromHex(item.public_key), name: item.name || "" });
    }
    const accounts = [];
    for (const item of doc.accounts || []) {
      if (!item || typeof item.address !== "string" || !/^[0-9a-fA-F]{40}$/.test(item.address)) {
        return genesisError("an account address");
      }
      const balances = item.balances || {};
      if (typeof balances !== "object" || Array.isArray(balances) ||
          !Object.values(balances).every(isAmount)) return genesisError("a balance");
      accounts.push([fromHex(item.address), balances]);
    }
    const params = { ...GENESIS_PARAM_DEFAULTS };
    const given = doc.params || {};
    for (const [name, value] of Object.entries(given)) {
      if (!(name in GENESIS_PARAM_DEFAULTS)) return genesisError(`unknown parameter ${name}`);
      if (!isPositiveInt(value)) return genesisError(`parameter ${name}`);
      params[name] = value;
    }
    let set;
    try {
      set = await makeValidatorSet(validators, "genesis");
    } catch (e) {
      return genesisError("validators");
    }
    let encoded;
    try {
      encoded = encode({
        accounts, app_state: doc.app_state === undefined ? {} : doc.app_state, chain_id: chainId,
        genesis_time_ms: doc.genesis_time_ms, params,
        validators: validators.map((v) => [v.publicKey, v.name]),
      });
    } catch (e) {
      if (e instanceof VerifyError) return genesisError(e.params.what || "app_state");
      throw e;
    }
    return { chainId, validatorSet: set, hash: toHex(await sha256(encoded)), text };
  }

  // ---------------------------------------------------------------- the light client

  /** Follows a chain from its genesis: every header must link to the previous one, name
   * the validator set in force and carry a commit certificate by a quorum of it; a set
   * change is accepted only as the set whose hash the previous certified header names
   * (docs/protocol.md section 7, as sdk/ledger.py LightClient). Keeps the hash of each
   * verified block, so a later check of an older block needs no new walk. */
  class ChainVerifier {
    constructor(genesis, rpc) {
      this.genesis = genesis;
      this.rpc = rpc;  // {call(method, params), batch([[method, params], ...])}
      this.height = 0;
      this.blockHashes = [genesis.hash];  // index h: hash of the verified block h
      this.sets = [{ fromHeight: 1, set: genesis.validatorSet, certifiedBy: null }];
      this.setsKnownTo = 1;  // this.sets holds every set in force up to this height
    }

    setAt(height) {
      let found = this.sets[0];
      for (const entry of this.sets) if (entry.fromHeight <= height) found = entry;
      return found.set;
    }

    async verifyTo(target, onProgress) {
      while (this.height < target) {
        const first = this.height + 1;
        const last = Math.min(target, this.height + BLOCKS_PER_REQUEST);
        const calls = [];
        for (let h = first; h <= last; h++) calls.push(["chain_block", { height: h }]);
        const blocks = await this.rpc.batch(calls);
        for (const block of blocks) {
          await this.verifyNext(block);
          if (onProgress) onProgress(this.height, target);
        }
      }
    }

    async verifyNext(block) {
      const height = this.height + 1;
      const set = this.setAt(height);
      const { header, bytes } = readHeader(block && block.header, height);
      if (header.height !== height) fail("wrong_height", { height, got: header.height });
      if (header.chainId !== this.genesis.chainId) fail("wrong_chain", { height, chain: header.chainId });
      if (toHex(header.prevHash) !== this.blockHashes[height - 1]) {
        fail(height === 1 ? "genesis_mismatch" : "broken_link", { height, previous: height - 1 });
      }
      if (toHex(header.validatorSetHash) !== set.hash) fail("wrong_set", { height });
      const blockHash = await sha256(bytes);
      const cert = readCertificate(block.certificate && block.certificate.encoded, height);
      await validateCertificate(cert, set, this.genesis.chainId, height, blockHash);
      if (toHex(header.nextValidatorSetHash) !== set.hash) {
        await this.followSetChange(height, header, block);
      }
      this.blockHashes[height] = toHex(blockHash);
      this.height = height;
      this.setsKnownTo = Math.max(this.setsKnownTo, height + 1);
    }

    async followSetChange(height, header, block) {
      const answer = await this.rpc.call("chain_validators", { height: height + 1 });
      let next;
      try {
        next = await makeValidatorSet(answer.validators || [], "node");
      } catch (e) {
        if (e instanceof VerifyError) fail("set_unproven", { height: height + 1, previous: height });
        throw e;
      }
      if (next.hash !== toHex(header.nextValidatorSetHash)) {
        fail("set_unproven", { height: height + 1, previous: height });
      }
      if (this.sets.some((entry) => entry.fromHeight === height + 1)) return;  // already followed
      this.sets.push({ fromHeight: height + 1, set: next,
        certifiedBy: { height, header: block.header, certificate: block.certificate.encoded } });
    }

    /** Follow the node's validator-set changes (chain_validator_changes) until every set
     * in force up to `target` is known: each change only as the set its certifying header
     * names, that header certified by the set before (the heights between changes are
     * skipped). A change the node leaves out shows as a header naming another set. */
    async followChanges(target, onProgress) {
      while (this.setsKnownTo < target) {
        const last = this.sets[this.sets.length - 1];
        const page = await this.rpc.call("chain_validator_changes", { after_height: last.fromHeight });
        const changes = page && Array.isArray(page.changes) ? page.changes : malformed("validator-set changes");
        for (const change of changes) {
          const previous = this.sets[this.sets.length - 1];
          if (!change || !Number.isInteger(change.from_height) ||
              change.from_height <= previous.fromHeight) malformed("validator-set changes");
          if (change.from_height > target) { this.setsKnownTo = target; return; }
          await this.acceptChange(change, previous.set);
          if (onProgress) onProgress(change.from_height, target);
        }
        if (!page.more || !changes.length) this.setsKnownTo = target;
      }
    }

    async acceptChange(change, current) {
      const height = change.from_height - 1;
      const by = change.certified_by || {};
      let next;
      try {
        next = await makeValidatorSet(change.validators || [], "node");
      } catch (e) {
        if (e instanceof VerifyError) fail("set_unproven", { height: height + 1, previous: height });
        throw e;
      }
      const { header, bytes } = readHeader(by.header, height);
      if (header.height !== height) fail("wrong_height", { height, got: header.height });
      if (header.chainId !== this.genesis.chainId) fail("wrong_chain", { height, chain: header.chainId });
      if (toHex(header.validatorSetHash) !== current.hash) await this.setMismatch(height);
      if (next.hash !== toHex(header.nextValidatorSetHash) || next.hash === current.hash) {
        fail("set_unproven", { height: height + 1, previous: height });
      }
      await validateCertificate(readCertificate(by.certificate, height), current,
        this.genesis.chainId, height, await sha256(bytes), true);
      this.sets.push({ fromHeight: change.from_height, set: next,
        certifiedBy: { height, header: by.header, certificate: by.certificate } });
    }

    /** A header at `height` names another set than the one in force: a change is missing,
     * or (no change followed yet) the chain does not start from this genesis at all. */
    async setMismatch(height) {
      if (this.sets.length === 1 && height > 1) {
        const block = await this.rpc.call("chain_block", { height: 1 });
        const { header } = readHeader(block && block.header, 1);
        if (toHex(header.prevHash) !== this.genesis.hash ||
            toHex(header.validatorSetHash) !== this.genesis.validatorSet.hash) {
          fail("genesis_mismatch", { height: 1, previous: 0 });
        }
      }
      fail("wrong_set", { height });
    }

    /** The certified header at `height`, its certificate checked by the set in force there
     * (the certificate given, e.g. sent with a proof, or the block's own). Below the height
     * walked block by block (verifyTo) the header must also be the walked one; above it,
     * the set changes are followed from the genesis and the heights between skipped. */
    async certifiedHeader(height, headerHex, certificateHex, onProgress) {
      if (height > this.height) await this.followChanges(height, onProgress);
      if (headerHex === undefined) {
        const block = await this.rpc.call("chain_block", { height });
        headerHex = block.header;
        certificateHex = block.certificate && block.certificate.encoded;
      }
      const { header, bytes } = readHeader(headerHex, height);
      const blockHash = await sha256(bytes);
      if (height <= this.height) {
        if (toHex(blockHash) !== this.blockHashes[height]) fail("header_mismatch", { height });
      } else {
        if (header.height !== height) fail("wrong_height", { height, got: header.height });
        if (header.chainId !== this.genesis.chainId) fail("wrong_chain", { height, chain: header.chainId });
        if (height === 1 && toHex(header.prevHash) !== this.genesis.hash) {
          fail("genesis_mismatch", { height, previous: 0 });
        }
        if (toHex(header.validatorSetHash) !== this.setAt(height).hash) await this.setMismatch(height);
      }
      const set = this.setAt(height);
      const cert = readCertificate(certificateHex, height);
      const signed = await validateCertificate(cert, set, this.genesis.chainId, height, blockHash);
      return { header, headerHex, certificateHex, signed, set };
    }

    /** The validator-set chain a bundle carries: every set in force up to `height`. */
    setChain(height) {
      return this.sets.filter((entry) => entry.fromHeight <= height).map((entry) => ({
        from_height: entry.fromHeight, hash: entry.set.hash,
        validators: entry.set.hexKeys.map((key, i) => ({ public_key: key, name: entry.set.names[i] })),
        certified_by: entry.certifiedBy,
      }));
    }
  }

  function readHeader(hex, height) {
    try {
      const bytes = fromHex(hex);
      return { header: decodeHeader(bytes), bytes };
    } catch (e) {
      if (e instanceof VerifyError) fail("malformed", { what: `header of block ${height}` });
      throw e;
    }
  }

  function readCertificate(hex, height) {
    if (typeof hex !== "string") fail("no_certificate", { height });
    try {
      return decodeCertificate(fromHex(hex));
    } catch (e) {
      if (e instanceof VerifyError) fail("malformed", { what: `certificate of block ${height}` });
      throw e;
    }
  }

  // ---------------------------------------------------------------- what is proven

  const decodeValue = (hex, what) => {
    try {
      return decode(fromHex(hex));
    } catch (e) {
      if (e instanceof VerifyError) fail("malformed", { what });
      throw e;
    }
  };

  /** `check`, with a value_mismatch named for what the value is. */
  async function renamed(check, code) {
    try {
      await check;
    } catch (e) {
      if (e instanceof VerifyError && e.code === "value_mismatch") fail(code, e.params);
      throw e;
    }
  }

  /** A registry record: its state proof against the certified header. */
  async function checkRecordProof(proof, header, height) {
    if (proof.state_proof.height !== height) fail("header_mismatch", { height });
    const key = stateKeys.record(proof.namespace, proof.key);
    if (typeof proof.value !== "string") fail("malformed", { what: "record value" });
    await renamed(verifyStateProof(proof.state_proof, key, fromHex(proof.value), header.stateRoot,
      height), "record_altered");
    const record = decodeValue(proof.value, "record");
    if (!record || record.namespace !== proof.namespace || record.key !== proof.key) {
      fail("record_mismatch", { height });
    }
    return record;
  }

  /** An account: its record (nonce, assets held), each balance and each asset's record
   * (for its decimals), every one proven against the certified header. */
  async function checkAccountProof(proof, header, height) {
    const address = fromHex(proof.address, 20);
    const proven = new Map();
    for (const item of proof.entries) {
      if (item.state_proof.height !== height) fail("header_mismatch", { height });
      const key = fromHex(item.key);
      const value = item.value === null ? null : fromHex(item.value);
      await renamed(verifyStateProof(item.state_proof, key, value, header.stateRoot, height),
        "account_altered");
      proven.set(toHex(key), value === null ? null : decodeValue(item.value, "account state"));
    }
    const get = (key) => {
      const id = toHex(key);
      if (!proven.has(id)) fail("account_mismatch", { what: "a proof is missing" });
      return proven.get(id);
    };
    const account = get(stateKeys.account(address));
    if (!account || !Array.isArray(account.assets)) fail("account_mismatch", { what: "account" });
    const balances = {}, assets = {};
    for (const symbol of account.assets) {
      // An integer, or [amount, tier, rolling day] for an asset with identity tiers.
      const balance = get(stateKeys.balance(address, symbol));
      balances[symbol] = Array.isArray(balance) ? balance[0] : balance;
      const asset = get(stateKeys.asset(symbol));
      assets[symbol] = asset ? { name: asset.name, decimals: asset.decimals } : null;
    }
    return { nonce: account.nonce, balances, assets };
  }

  /** A transaction: its bytes hash to its id, its signatures verify, and its audit path
   * leads to the certified header's tx root. Returns the decoded transaction. */
  async function checkTxProof(proof, header, height, chainId) {
    if (proof.height !== height) fail("header_mismatch", { height });
    const bytes = fromHex(proof.tx);
    const hash = await sha256(bytes);
    if (toHex(hash) !== proof.hash) fail("tx_hash_mismatch", { height });
    const value = decodeValue(proof.tx, "transaction");
    if (!Array.isArray(value) || value.length !== 6 || !Array.isArray(value[5])) {
      fail("malformed", { what: "transaction" });
    }
    const [txChainId, sender, nonce, txType, fields, signatures] = value;
    const message = signingBytes(DOMAIN_TX, txChainId, [txChainId, sender, nonce, txType, fields]);
    let senderSigned = false;
    for (const pair of signatures) {
      if (!Array.isArray(pair) || !isBytes(pair[0], 32) || !isBytes(pair[1], 64) ||
          !(await isValidSignature(pair[0], message, pair[1]))) fail("tx_bad_signature", { height });
      if (isEqualBytes(await computeAddress(pair[0]), sender)) senderSigned = true;
    }
    if (txChainId !== chainId) fail("wrong_chain", { height, chain: txChainId });
    const path = (proof.path || []).map((p) => fromHex(p, 32));
    if (!(await isValidMerkleProof(hash, proof.index, proof.tx_count, path, header.txRoot))) {
      fail("tx_not_included", { height });
    }
    const result = await checkResultProof(proof, hash, header, height);
    return { hash: proof.hash, chainId: txChainId, sender, nonce, type: txType, fields,
      senderSigned, index: proof.index, code: result.code, succeeded: result.code === "ok" };
  }

  /** The transaction's result (section 6.2): the leaf [tx_hash, code, events_hash] names
   * this transaction, its audit path at the same index leads to the certified header's
   * results root, and the events given hash to the leaf's events hash. Returns {code}. */
  async function checkResultProof(proof, txHash, header, height) {
    const result = proof.result;
    if (!result || typeof result.leaf !== "string") fail("result_unproven", { height });
    const leaf = decodeValue(result.leaf, "result leaf");
    if (!Array.isArray(leaf) || leaf.length !== 3 || !isBytes(leaf[0], 32) ||
        typeof leaf[1] !== "string" || !isBytes(leaf[2], 32)) fail("malformed", { what: "result leaf" });
    if (!isEqualBytes(leaf[0], txHash)) fail("result_unproven", { height });
    const path = (result.path || []).map((p) => fromHex(p, 32));
    if (!(await isValidMerkleProof(fromHex(result.leaf), proof.index, proof.tx_count, path,
      header.resultsRoot))) fail("result_unproven", { height });
    // The events are optional (`govchain proof` leaves them out); given, they must match.
    if (result.events !== undefined && (typeof result.events !== "string" ||
        !isEqualBytes(await sha256(fromHex(result.events)), leaf[2]))) fail("result_unproven", { height });
    return { code: leaf[1] };
  }

  // ---------------------------------------------------------------- proof bundles

  const BUNDLE_FORMAT = "govchain-proof-bundle";
  const BUNDLE_VERSION = 1;
  /** Versions checkBundle reads: 1 (written here and by `govchain proof`) adds
   * `checkpoint` (read only when null here: a page has no way to state a trusted
   * checkpoint) and a tx proof's `result` (checked: the leaf under the results root). */
  const READABLE_BUNDLE_VERSIONS = [0, 1];

  function makeBundle(kind, genesis, certified, chain, proof, reported) {
    return {
      format: BUNDLE_FORMAT, version: BUNDLE_VERSION, kind,
      chain_id: genesis.chainId, genesis_hash: genesis.hash, checkpoint: null,
      validator_sets: chain.setChain(certified.header.height),
      block: { height: certified.header.height, header: certified.headerHex,
        certificate: certified.certificateHex },
      proof, reported: reported || null,
    };
  }

  /** Check a proof bundle against a genesis alone, with no node: the validator-set chain
   * from the genesis set, the block's certificate by the set in force at its height, then
   * the proof. Returns {kind, height, signed, subject}. */
  async function checkBundle(bundle, genesis) {
    if (!bundle || bundle.format !== BUNDLE_FORMAT) fail("bundle_invalid", { what: "format" });
    if (!READABLE_BUNDLE_VERSIONS.includes(bundle.version)) fail("bundle_invalid", { what: "version" });
    if (bundle.checkpoint != null) fail("bundle_invalid", { what: "checkpoint" });
    if (bundle.genesis_hash !== genesis.hash) {
      fail("bundle_other_genesis", { expected: genesis.hash.slice(0, 16), got: String(bundle.genesis_hash).slice(0, 16) });
    }
    const sets = bundle.validator_sets;
    if (!Array.isArray(sets) || !sets.length || sets[0].from_height !== 1 ||
        sets[0].hash !== genesis.validatorSet.hash) fail("bundle_invalid", { what: "validator_sets" });
    let current = genesis.validatorSet, fromHeight = 1;
    for (const entry of sets.slice(1)) {
      if (!entry || !Number.isInteger(entry.from_height) || entry.from_height <= fromHeight) {
        fail("bundle_invalid", { what: "validator_sets" });
      }
      const next = await makeValidatorSet(entry.validators, "node");
      const by = entry.certified_by || {};
      const height = entry.from_height - 1;
      const { header, bytes } = readHeader(by.header, height);
      if (header.height !== height || header.chainId !== genesis.chainId) {
        fail("set_unproven", { height: height + 1, previous: height });
      }
      if (toHex(header.validatorSetHash) !== current.hash) fail("wrong_set", { height });
      if (toHex(header.nextValidatorSetHash) !== next.hash || next.hash === current.hash) {
        fail("set_unproven", { height: height + 1, previous: height });
      }
      await validateCertificate(readCertificate(by.certificate, height), current,
        genesis.chainId, height, await sha256(bytes), true);
      current = next;
      fromHeight = entry.from_height;
    }
    const height = bundle.block && bundle.block.height;
    const { header, bytes } = readHeader(bundle.block && bundle.block.header, height);
    if (header.height !== height) fail("wrong_height", { height, got: header.height });
    if (header.chainId !== genesis.chainId) fail("wrong_chain", { height, chain: header.chainId });
    if (height === 1 && toHex(header.prevHash) !== genesis.hash) fail("genesis_mismatch", { height });
    if (toHex(header.validatorSetHash) !== current.hash) fail("wrong_set", { height });
    const signed = await validateCertificate(readCertificate(bundle.block.certificate, height),
      current, genesis.chainId, height, await sha256(bytes));
    let subject = null;
    if (bundle.kind === "record") subject = await checkRecordProof(bundle.proof, header, height);
    else if (bundle.kind === "account") subject = await checkAccountProof(bundle.proof, header, height);
    else if (bundle.kind === "tx") subject = await checkTxProof(bundle.proof, header, height, genesis.chainId);
    else if (bundle.kind !== "block") fail("bundle_invalid", { what: "kind" });
    return { kind: bundle.kind, height, signed, subject, header };
  }

  return {
    VerifyError, JsonFloat, GENESIS_PARAM_DEFAULTS, BUNDLE_FORMAT, BUNDLE_VERSION,
    fromHex, toHex, concat, isEqualBytes, encode, decode, parseJson, sha256,
    isValidSignature, signingBytes, computeAddress, computeMerkleRoot, isValidMerkleProof,
    verifyStateProof, stateKeys, decodeHeader, decodeCertificate, makeValidatorSet,
    validateCertificate, loadGenesis, ChainVerifier, checkRecordProof, checkAccountProof,
    checkTxProof, checkResultProof, makeBundle, checkBundle,
  };
})();
