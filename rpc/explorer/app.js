// govchain explorer: plain JavaScript over the node's JSON-RPC (/rpc), no build step.
// Every label comes from i18n.json (English, Russian, Kyrgyz); data from the chain is
// only ever inserted as text, never as HTML. "Verify" checks the node's answers in the
// browser with verify.js, from a genesis file (the node's, or one the reader loads);
// what is shown before that is the node's word. Methods a node may lack (state_record,
// state_attestations, state_assets) are tolerated: the page says the data is unavailable.
"use strict";

const V = GovchainVerify;
const POLL_MS = 1000;
const RECENT_BLOCKS = 10;
const CHART_EVERY_POLLS = 5;
const METHOD_NOT_FOUND = -32601;
const MAX_ATTESTATIONS = 1000;

const state = {
  lang: "en", i18n: { en: {} }, status: null, blocks: new Map(), validators: [],
  lastHeight: 0, validatorsHeight: -1, chart: null, pollCount: 0,
  assets: new Map(), renderDetail: null,
  genesis: null,       // the trust anchor: V.loadGenesis() plus {source, fileName}
  verifier: null,      // V.ChainVerifier over state.genesis, kept between checks
  verification: null,  // {route, genesisHash, outcome}: the last check, re-worded on a language change
  bundleCheck: null,   // the outcome of checking a bundle file on the overview
};

// ------------------------------------------------------------------ words and numbers

function t(key) {
  const dict = state.i18n[state.lang] || {};
  return dict[key] !== undefined ? dict[key] : (state.i18n.en[key] || key);
}

const LOCALES = { en: "en-US", ru: "ru-RU", ky: "ky-KG" };
const locale = () => LOCALES[state.lang] || "en-US";

/** The locale numbers are written in. Chromium lacks Kyrgyz number formats; Kyrgyz
 * writes numbers as Russian does (no-break space between thousands, decimal comma). */
function numberLocale() {
  const wanted = locale();
  try {
    if (Intl.NumberFormat.supportedLocalesOf([wanted]).length) return wanted;
  } catch (e) { /* below */ }
  return state.lang === "ky" ? "ru-KG" : "en-US";
}

function formatNumber(n) {
  try {
    return new Intl.NumberFormat(numberLocale()).format(n);
  } catch (e) {
    return String(n);
  }
}

/** `key`'s text with {name} replaced by params (numbers grouped as the language does). */
function tf(key, params) {
  return t(key).replace(/\{([a-z_]+)\}/g, (whole, name) => {
    const value = (params || {})[name];
    if (value === undefined || value === null) return whole;
    return typeof value === "number" || typeof value === "bigint" ? formatNumber(value) : String(value);
  });
}

/** The plural form of `base` for `count`: base_one or base_other, by the language's rules. */
function tp(base, count, params) {
  let form = "other";
  try {
    form = new Intl.PluralRules(locale()).select(Number(count)) === "one" ? "one" : "other";
  } catch (e) { /* "other" */ }
  return tf(`${base}_${form}`, params);
}

/** An amount in the asset's smallest unit, shown with its decimals: 199995000 with 2
 * decimals is "1,999,950.00" in English and "1 999 950,00" in Russian. */
function formatAmount(amount, decimals) {
  let units;
  try {
    units = BigInt(amount);
  } catch (e) {
    return String(amount);
  }
  const places = Number(decimals) || 0;
  const negative = units < 0n;
  if (negative) units = -units;
  const scale = 10n ** BigInt(places);
  let text = formatNumber(units / scale);
  if (places > 0) {
    let separator = ".";
    try {
      separator = new Intl.NumberFormat(numberLocale()).formatToParts(1.5)
        .find((part) => part.type === "decimal").value;
    } catch (e) { /* "." */ }
    text += separator + (units % scale).toString().padStart(places, "0");
  }
  return negative ? `-${text}` : text;
}

function formatAsset(amount, symbol) {
  const asset = state.assets.get(symbol);
  return `${formatAmount(amount, asset ? asset.decimals : 0)} ${symbol}`;
}

const txKind = (type) => {
  const key = `kind_${type}`;
  const dict = state.i18n[state.lang] || {};
  return dict[key] !== undefined ? dict[key] : type;
};

const short = (hex) => (hex && hex.length > 16 ? `${hex.slice(0, 8)}…${hex.slice(-6)}` : hex);
// One unambiguous format in every language (browsers lack Kyrgyz date names).
const pad = (n) => String(n).padStart(2, "0");
const formatTime = (ms) => {
  const d = new Date(Number(ms));
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
};

// ------------------------------------------------------------------ RPC

class RpcError extends Error {
  constructor(error) {
    super(error.message);
    this.code = error.code;
    this.reason = error.data && error.data.reason;
  }
}

async function post(body) {
  let text;
  try {
    const response = await fetch("/rpc", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    text = await response.text();
  } catch (error) {
    throw new RpcError({ message: String(error.message || error) });  // no connection
  }
  try {
    return V.parseJson(text);  // integers beyond 2^53 stay exact
  } catch (error) {
    throw new RpcError({ message: "the answer is not JSON" });
  }
}

async function rpc(method, params) {
  const doc = await post({ jsonrpc: "2.0", id: 1, method, params: params || {} });
  if (doc.error) throw new RpcError(doc.error);
  return doc.result;
}

/** Several calls in one JSON-RPC batch; answers in the order of `calls`. */
async function rpcBatch(calls) {
  const docs = await post(calls.map(([method, params], id) =>
    ({ jsonrpc: "2.0", id, method, params: params || {} })));
  if (!Array.isArray(docs)) throw new RpcError(docs.error || { message: "bad batch answer" });
  return calls.map((call, id) => {
    const doc = docs.find((item) => item.id === id);
    if (!doc) throw new RpcError({ message: `no answer to ${call[0]}` });
    if (doc.error) throw new RpcError(doc.error);
    return doc.result;
  });
}

const rpcClient = { call: rpc, batch: rpcBatch };

// ------------------------------------------------------------------ page helpers

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "text") node.textContent = value;
    else if (value !== undefined && value !== null) node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) {
      node.append(child instanceof Node ? child : String(child));
    }
  }
  return node;
}

const link = (href, text, cls) => el("a", { href, class: cls || "mono" }, text);

function validatorByKey(publicKey, validators) {
  return (validators || state.validators).find((v) => v.public_key === publicKey);
}

/** A validator's name, its key on hover and in small print beside it. */
function validatorLabel(publicKey, validators) {
  const found = validatorByKey(publicKey, validators);
  if (!found || !found.name) return el("span", { class: "mono", title: publicKey, text: short(publicKey) });
  return el("span", { class: "validator", title: publicKey }, found.name, " ",
    el("span", { class: "mono secondary", text: short(publicKey) }));
}

function validatorName(publicKey, validators) {
  const found = validatorByKey(publicKey, validators);
  return found && found.name ? found.name : short(publicKey);
}

function showError(text) {
  const box = document.getElementById("error");
  box.textContent = text || "";
  box.hidden = !text;
}

async function loadAssets() {
  try {
    const answer = await rpc("state_assets");
    state.assets = new Map(answer.assets.map((asset) => [asset.symbol, asset]));
  } catch (error) { /* an older node: amounts are shown in base units */ }
}

// ------------------------------------------------------------------ language

function applyLanguage() {
  document.documentElement.lang = state.lang;
  document.getElementById("lang").value = state.lang;
  for (const node of document.querySelectorAll("[data-i18n]")) {
    node.textContent = t(node.dataset.i18n);
  }
  for (const node of document.querySelectorAll("[data-i18n-placeholder]")) {
    node.placeholder = t(node.dataset.i18nPlaceholder);
  }
  document.title = t("title");
  renderHome();
  renderBundleCheck();
  if (state.renderDetail) state.renderDetail();
}

function setLanguage(lang) {
  if (!state.i18n[lang]) return;
  state.lang = lang;
  try { localStorage.setItem("govchain-lang", lang); } catch (e) { /* private mode */ }
  applyLanguage();
}

// ------------------------------------------------------------------ overview

async function refreshHome() {
  const status = await rpc("node_status");
  state.status = status;
  if (status.height !== state.validatorsHeight) {
    state.validators = (await rpc("chain_validators")).validators;
    state.validatorsHeight = status.height;
  }
  const first = Math.max(1, state.lastHeight + 1, status.height - RECENT_BLOCKS + 1);
  for (let height = first; height <= status.height; height++) {
    state.blocks.set(height, await rpc("chain_block", { height, full: true }));
  }
  state.lastHeight = Math.max(state.lastHeight, status.height);
  for (const height of [...state.blocks.keys()]) {
    if (height <= state.lastHeight - RECENT_BLOCKS) state.blocks.delete(height);
  }
  if (state.pollCount++ % CHART_EVERY_POLLS === 0) await refreshChart();
  renderHome();
}

function renderHome() {
  const status = state.status;
  if (!status) return;
  document.getElementById("st-chain").textContent = status.chain_id;
  document.getElementById("st-height").textContent = String(status.height);
  document.getElementById("st-time").textContent = formatTime(status.head_time_ms);
  document.getElementById("st-peers").textContent = String(status.peers);
  document.getElementById("st-pending").textContent = String(status.mempool_size);
  const blocks = [...state.blocks.values()].sort((a, b) => b.height - a.height);
  const proposed = new Map();
  for (const block of blocks) proposed.set(block.proposer, (proposed.get(block.proposer) || 0) + 1);

  const vbody = document.querySelector("#validators tbody");
  vbody.replaceChildren(...state.validators.map((v) => el("tr", {},
    el("td", { text: v.name }), el("td", { class: "mono", title: v.public_key, text: short(v.public_key) }),
    el("td", { text: String(proposed.get(v.public_key) || 0) }))));

  const bbody = document.querySelector("#blocks tbody");
  bbody.replaceChildren(...blocks.map((b) => el("tr", { id: `block-row-${b.height}` },
    el("td", {}, link(`#/block/${b.height}`, String(b.height))),
    el("td", { text: formatTime(b.timestamp_ms) }),
    el("td", { text: String(b.txs.length) }),
    el("td", { class: "proposer", title: b.proposer, text: validatorName(b.proposer) }))));

  const txs = blocks.flatMap((b) => b.txs.map((tx) => ({ tx, height: b.height })));
  const tbody = document.querySelector("#txs tbody");
  tbody.replaceChildren(...txs.slice(0, 20).map(({ tx, height }) => el("tr", {},
    el("td", {}, link(`#/tx/${tx.hash}`, short(tx.hash))),
    el("td", { class: "kind", "data-type": tx.type, text: txKind(tx.type) }),
    el("td", {}, link(`#/account/${tx.sender}`, short(tx.sender))),
    el("td", {}, link(`#/block/${height}`, String(height))))));
  document.getElementById("no-txs").hidden = txs.length > 0;
  renderChart();
}

// ------------------------------------------------------------------ stablecoin chart

async function refreshChart() {
  await loadAssets();
  const coin = [...state.assets.values()].find((asset) => asset.reserve_backed);
  if (!coin) { state.chart = null; return; }
  let attestations = [];
  try {
    const start = Math.max(0, Number(coin.attestations) - MAX_ATTESTATIONS);
    attestations = (await rpc("state_attestations", { asset: coin.symbol, start, limit: MAX_ATTESTATIONS }))
      .attestations;
  } catch (error) { /* only the current supply and reserve */ }
  const points = attestations.map((item) => ({ x: Number(item.height), supply: item.supply, reserve: item.reserve }));
  const height = state.status ? state.status.height : 0;
  points.push({ x: height, supply: coin.supply, reserve: coin.reserve });
  let report = null;  // attestation age, expiry and bar-list root; older nodes lack it
  try { report = await rpc("state_supply_report", { asset: coin.symbol }); } catch (error) { /* unavailable */ }
  state.chart = { coin, points, height, report };
}

function formatAge(ms) {
  const minutes = Math.max(0, Math.floor(Number(ms) / 60000));
  if (minutes < 120) return `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  return hours < 48 ? `${hours} h` : `${Math.floor(hours / 24)} d`;
}

function attestationParts(report) {
  const attestation = report && report.attestation;
  if (!attestation) return [];
  const parts = [el("br"), el("span", { id: "coin-attestation-age", text: tf("attestation_age", { age: formatAge(attestation.age_ms) }) })];
  if (attestation.bar_root) {
    parts.push(el("br"), `${t("bar_root")}: `, el("span", { id: "coin-bar-root", class: "root", text: attestation.bar_root }));
  }
  if (attestation.expired) parts.push(el("p", { id: "coin-expired", class: "expired", text: t("attestation_expired") }));
  return parts;
}

function renderChart() {
  const box = document.getElementById("chart");
  const chart = state.chart;
  document.getElementById("chart-missing").hidden = !!chart;
  document.getElementById("chart-legend").hidden = !chart;
  const summary = document.getElementById("chart-summary");
  summary.hidden = !chart;
  if (!chart) { box.replaceChildren(); return; }
  const { coin, points } = chart;
  const shortfall = BigInt(coin.supply) > BigInt(coin.reserve);
  summary.replaceChildren(...[
    el("span", { id: "coin-name", text: `${coin.name} (${coin.symbol})` }), el("br"),
    `${t("supply")}: `, el("strong", { id: "coin-supply", text: formatAsset(coin.supply, coin.symbol) }), " · ",
    `${t("reserve")}: `, el("strong", { id: "coin-reserve", text: formatAsset(coin.reserve, coin.symbol) }),
    " ", el("span", { class: "hint", text: tf("as_of_block", { height: chart.height }) }),
    shortfall ? el("p", { class: "warning", text: t("shortfall") }) : null,
    ...attestationParts(chart.report),
  ].filter((part) => part !== null));
  const width = 640, height = 180, left = 8, right = 8, top = 20, bottom = 22;
  const values = points.flatMap((p) => [Number(p.supply), Number(p.reserve)]);
  const max = Math.max(1, ...values);
  const xs = points.map((p) => p.x);
  const minX = Math.min(...xs), maxX = Math.max(...xs), spanX = Math.max(1, maxX - minX);
  const sx = (x) => left + ((x - minX) / spanX) * (width - left - right);
  const sy = (v) => height - bottom - (Number(v) / max) * (height - top - bottom);
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `${t("supply")} / ${t("reserve")}`);
  const label = (x, y, text, anchor) => {
    const node = document.createElementNS(ns, "text");
    node.setAttribute("x", x); node.setAttribute("y", y);
    node.setAttribute("font-size", "11"); node.setAttribute("fill", "#5b6b7c");
    node.setAttribute("text-anchor", anchor);
    node.textContent = text;
    svg.append(node);
  };
  const axis = document.createElementNS(ns, "polyline");
  axis.setAttribute("fill", "none"); axis.setAttribute("stroke", "#d8dee6");
  axis.setAttribute("points", `${left},${top} ${left},${height - bottom} ${width - right},${height - bottom}`);
  svg.append(axis);
  label(left + 4, top - 6, formatAsset(BigInt(Math.round(max)), coin.symbol), "start");
  label(left, height - 6, tf("chart_block", { height: minX }), "start");
  label(width - right, height - 6, tf("chart_block", { height: maxX }), "end");
  for (const [field, color] of [["reserve", "#2e9d5b"], ["supply", "#0b5cad"]]) {
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("fill", "none");
    line.setAttribute("stroke", color);
    line.setAttribute("stroke-width", "2");
    // The reserve holds from one attestation to the next: a step line. The supply is
    // known only at attestations and now: a straight line between them.
    const stepped = field === "reserve";
    const drawn = points.flatMap((p, i) => (stepped && i ? [`${sx(p.x)},${sy(points[i - 1][field])}`] : [])
      .concat([`${sx(p.x)},${sy(p[field])}`]));
    line.setAttribute("points", drawn.join(" "));
    svg.append(line);
  }
  box.replaceChildren(svg);
}

// ------------------------------------------------------------------ detail pages

function showDetail(title, rows, extra) {
  document.getElementById("detail-title").textContent = title;
  const fields = document.getElementById("detail-fields");
  fields.replaceChildren(...rows.flatMap(([label, value, id]) => [
    el("dt", { text: label }), el("dd", { id }, value)]));
  document.getElementById("detail-extra").replaceChildren(...(extra || []));
}

function pre(value) {
  return el("pre", { text: JSON.stringify(value, (k, v) => (typeof v === "bigint" ? v.toString() : v), 2) });
}

function signedSummary(signers, total, quorum) {
  return `${tp("signers_of", total, { signers, total })} (${tf("quorum_is", { quorum })})`;
}

async function renderBlock(ref) {
  const block = await rpc("chain_block", { height: Number(ref), full: true });
  const validators = (await rpc("chain_validators", { height: block.height })).validators;
  const cert = block.certificate;
  const quorum = Math.floor((2 * validators.length) / 3) + 1;
  // In the set's order (rotation order), as the verification names them.
  const position = (key) => validators.findIndex((v) => v.public_key === key);
  const signatures = (cert ? [...cert.signatures] : [])
    .sort((a, b) => position(a.validator) - position(b.validator));
  const signers = el("div", { id: "block-signers" },
    el("div", { id: "block-signed-count", text: signedSummary(signatures.length, validators.length, quorum) }),
    el("div", { id: "block-signer-names", text: signatures.map((s) => validatorName(s.validator, validators)).join(", ") }));
  const txRows = block.txs.map((tx) => el("tr", {},
    el("td", {}, link(`#/tx/${tx.hash}`, short(tx.hash))),
    el("td", { class: "kind", "data-type": tx.type, text: txKind(tx.type) }),
    el("td", {}, link(`#/account/${tx.sender}`, short(tx.sender)))));
  const certificate = cert ? [
    el("h3", { text: t("certificate") }),
    el("p", { class: "hint", text: t("certificate_hint") }),
    el("dl", {}, el("dt", { text: t("round") }), el("dd", { id: "cert-round", text: String(cert.round) }),
      el("dt", { text: t("hash") }), el("dd", { class: "mono", text: cert.block_hash })),
    el("table", { id: "cert-signatures" }, el("thead", {}, el("tr", {},
      el("th", { text: t("name") }), el("th", { text: t("key") }), el("th", { text: t("signature") }))),
    el("tbody", {}, ...signatures.map((s) => el("tr", {},
      el("td", { text: validatorName(s.validator, validators) }),
      el("td", { class: "mono", title: s.validator, text: short(s.validator) }),
      el("td", { class: "mono", title: s.signature, text: short(s.signature) }))))),
  ] : [el("p", { class: "hint", text: t("no_certificate") })];
  showDetail(`${t("block_title")} ${formatNumber(block.height)}`, [
    [t("hash"), el("span", { class: "mono", text: block.hash })],
    [t("time"), formatTime(block.timestamp_ms)],
    [t("proposer"), validatorLabel(block.proposer, validators), "block-proposer"],
    [t("round"), String(block.round)],
    [t("txs"), String(block.txs.length)],
    [t("prev_block"), block.height > 1 ? link(`#/block/${block.height - 1}`, String(block.height - 1)) : "–"],
    [t("state_root"), el("span", { class: "mono", text: block.state_root })],
    [t("tx_root"), el("span", { class: "mono", text: block.tx_root })],
    [t("signed_by"), signers],
  ], [
    verifyPanel("block", String(block.height)),
    ...certificate,
    el("h3", { text: t("txs") }),
    el("table", { id: "block-txs" }, el("thead", {}, el("tr", {},
      el("th", { text: t("tx") }), el("th", { text: t("type") }), el("th", { text: t("from") }))),
    el("tbody", {}, ...txRows)),
  ]);
}

const STATUS_KEYS = { final: "status_final", pending: "status_pending",
  rejected: "status_rejected", unknown: "status_unknown" };

async function renderTx(hash) {
  const status = await rpc("tx_get", { hash });
  let tx = null;
  if (status.height) {
    const block = await rpc("chain_block", { height: status.height, full: true });
    tx = block.txs.find((item) => item.hash === status.hash) || null;
  }
  if (!state.assets.size) await loadAssets();
  const rows = [
    [t("hash"), el("span", { class: "mono", text: status.hash })],
    [t("tx_status"), el("span", { id: "tx-status", "data-status": status.status,
      text: t(STATUS_KEYS[status.status] || "status_unknown") })],
  ];
  if (status.height) rows.push([t("block"), link(`#/block/${status.height}`, String(status.height))]);
  if (status.code) {
    rows.push([t("result"), status.code === "ok" ? t("result_ok")
      : `${status.code}${status.message ? ": " + status.message : ""}`]);
  }
  if (tx) {
    rows.push([t("type"), el("span", { id: "tx-kind", "data-type": tx.type, text: txKind(tx.type) })],
      [t("from"), link(`#/account/${tx.sender}`, tx.sender)],
      [t("nonce"), String(tx.nonce)]);
    const fields = tx.fields || {};
    const account = fields.to || fields.account;
    if (account) rows.push([t("recipient"), link(`#/account/${account}`, account)]);
    if (fields.amount !== undefined) {
      rows.push([t("amount"), el("span", { id: "tx-amount", "data-amount": String(fields.amount),
        text: fields.asset !== undefined ? formatAsset(fields.amount, fields.asset) : String(fields.amount) })]);
    }
    if (fields.asset !== undefined) {
      const asset = state.assets.get(fields.asset);
      rows.push([t("asset"), asset && asset.name !== fields.asset ? `${asset.name} (${fields.asset})` : String(fields.asset)]);
    }
  }
  const extra = [];
  if (status.height) extra.push(verifyPanel("tx", status.hash, { tx, status }));
  if (tx) extra.push(el("h3", { text: t("fields") }), pre(tx.fields));
  showDetail(t("tx_title"), rows, extra);
}

async function renderAccount(address) {
  let account;
  try {
    account = await rpc("state_account", { address });
  } catch (error) {
    if (error.reason === "unknown_account") {
      showDetail(t("account_title"), [[t("key"), address]],
        [el("p", { class: "hint", text: t("account_not_found") })]);
      return;
    }
    throw error;
  }
  await loadAssets();
  const balances = Object.entries(account.balances || {}).map(([symbol, amount]) => {
    const asset = state.assets.get(symbol);
    return el("tr", { "data-asset": symbol },
      el("td", { text: asset && asset.name !== symbol ? `${asset.name} (${symbol})` : symbol }),
      el("td", { class: "balance", "data-amount": String(amount), text: formatAsset(amount, symbol) }));
  });
  showDetail(`${t("account_title")} ${short(account.address)}`, [
    [t("key"), el("span", { class: "mono", text: account.address })],
    [t("nonce"), String(account.nonce)],
    [t("next_nonce"), String(account.next_nonce)],
    [t("pending"), String(account.pending || 0)],
  ], [el("h3", { text: t("balances") }), el("table", { id: "balances" }, el("thead", {},
    el("tr", {}, el("th", { text: t("asset") }), el("th", { text: t("amount") }))),
  el("tbody", {}, ...balances)), verifyPanel("account", account.address, { account })]);
}

/** Text when `bytes` are valid UTF-8 without control characters (other than line
 * breaks and tabs); null otherwise. */
function asPrintableText(bytes) {
  let text;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (e) {
    return null;
  }
  return /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]/.test(text) ? null : text;
}

/** A record's value: as text when it is text, as hex otherwise, with a toggle. */
function recordContent(bytes) {
  const text = asPrintableText(bytes);
  const hex = V.toHex(bytes);
  if (!bytes.length) return el("span", { id: "record-content", "data-form": "empty", text: "–" });
  const box = el("pre", { id: "record-content", class: text === null ? "mono" : "text",
    "data-form": text === null ? "hex" : "text", text: text === null ? hex : text });
  if (text === null) return box;
  const toggle = el("button", { type: "button", id: "record-toggle", text: t("show_hex") });
  toggle.addEventListener("click", () => {
    const showingText = box.dataset.form === "text";
    box.dataset.form = showingText ? "hex" : "text";
    box.className = showingText ? "mono" : "text";
    box.textContent = showingText ? hex : text;
    toggle.textContent = t(showingText ? "show_text" : "show_hex");
  });
  return el("div", {}, box, toggle);
}

function recordFromAnswer(answer) {
  try {
    return V.decode(V.fromHex(answer.value));  // exact types: bytes stay bytes
  } catch (e) {
    return null;
  }
}

async function renderRecord(ref) {
  const slash = ref.indexOf("/");
  const namespace = slash > 0 ? ref.slice(0, slash) : "", key = slash > 0 ? ref.slice(slash + 1) : "";
  const title = `${t("record_title")} ${ref}`;
  if (!namespace || !key) {
    showDetail(title, [], [el("p", { class: "hint", id: "record-missing", text: t("record_hint") })]);
    return;
  }
  let answer;
  try {
    answer = await rpc("state_record", { namespace, key });
  } catch (error) {
    const text = error.code === METHOD_NOT_FOUND ? t("records_unavailable") : t("not_found");
    showDetail(title, [], [el("p", { class: "hint", id: "record-missing", text })]);
    return;
  }
  const record = recordFromAnswer(answer);
  const shown = record || answer.record;
  const bytesOf = (value) => (value instanceof Uint8Array ? value : V.fromHex(String(value || "")));
  const hexOf = (value) => (value instanceof Uint8Array ? V.toHex(value) : String(value || ""));
  const metadata = Object.entries(shown.metadata || {});
  const rows = [
    [t("namespace"), namespace], [t("record_key"), key],
    [t("record_status"), el("span", { id: "record-status", "data-status": shown.status,
      text: t(`record_status_${shown.status}`) })],
    [t("version"), String(shown.version)],
    [t("record_value"), recordContent(bytesOf(shown.value))],
  ];
  if (shown.reason) rows.push([t("reason"), shown.reason]);
  if (shown.commitment) {  // a private record: only its commitment is on the chain
    rows.push([t("commitment"), el("span", { class: "mono", id: "record-commitment",
      text: hexOf(shown.commitment) })]);
  }
  if (answer.erased) {
    rows.push([t("erased"), el("span", { id: "record-erased", text: answer.erased.text })]);
  }
  const docHash = hexOf(shown.doc_hash);
  rows.push([t("doc_hash"), docHash ? el("span", { class: "mono", text: docHash }) : "–"]);
  if (metadata.length) {
    rows.push([t("metadata"), el("dl", { class: "metadata" }, ...metadata.flatMap(([k, v]) =>
      [el("dt", { text: k }), el("dd", { text: String(v) })]))]);
  }
  rows.push([t("written_in"), link(`#/block/${shown.height}`, formatNumber(shown.height))],
    [t("time"), formatTime(shown.timestamp_ms)],
    [t("writer"), link(`#/account/${hexOf(shown.signer)}`, hexOf(shown.signer))]);
  const extra = [verifyPanel("record", ref, { namespace, key, value: answer.value })];
  try {
    const history = await rpc("state_record_history", { namespace, key });
    extra.push(el("h3", { text: t("record_history") }), el("table", { id: "record-history" },
      el("thead", {}, el("tr", {}, el("th", { text: t("version") }), el("th", { text: t("record_status") }),
        el("th", { text: t("block") }), el("th", { text: t("time") }))),
      el("tbody", {}, ...history.versions.map((v) => el("tr", {},
        el("td", { text: String(v.version) }), el("td", { text: t(`record_status_${v.status}`) }),
        el("td", {}, link(`#/block/${v.height}`, String(v.height))),
        el("td", { text: formatTime(v.timestamp_ms) }))))));
  } catch (error) { /* no history method: the current version only */ }
  showDetail(title, rows, extra);
}

// ------------------------------------------------------------------ verification

async function ensureGenesis() {
  if (state.genesis) return state.genesis;
  let text;
  try {
    const response = await fetch("/explorer/genesis.json", { cache: "no-store" });
    if (!response.ok) throw new Error(String(response.status));
    text = await response.text();
  } catch (error) {
    throw new V.VerifyError("no_genesis", {});
  }
  state.genesis = { ...(await V.loadGenesis(text)), source: "node" };
  return state.genesis;
}

function ensureVerifier(genesis) {
  if (!state.verifier || state.verifier.genesis !== genesis) {
    state.verifier = new V.ChainVerifier(genesis, rpcClient);
  }
  return state.verifier;
}

function onProgress(height, target) {
  const box = document.getElementById("verify-result");
  if (box && box.dataset.state === "running") {
    box.replaceChildren(el("p", { class: "headline", text: tf("verify_progress", { height, target }) }));
  }
}

/** The same height for every key: a block may commit between two reads, so read again. */
async function readAccountProofs(address) {
  const account = await rpc("state_account", { address });
  const symbols = Object.keys(account.balances || {});
  const bytes = V.fromHex(address, 20);
  const keys = [V.stateKeys.account(bytes), ...symbols.flatMap((s) =>
    [V.stateKeys.balance(bytes, s), V.stateKeys.asset(s)])];
  for (let attempt = 0; attempt < 5; attempt++) {
    const answers = await rpcBatch(keys.map((key) => ["state_proof", { key: V.toHex(key) }]));
    const heights = new Set(answers.map((a) => a.height));
    if (heights.size === 1) {
      return { height: answers[0].height, proof: { address, entries: answers.map((a) =>
        ({ key: a.key, value: a.value, state_proof: a.proof })) } };
    }
  }
  throw new V.VerifyError("busy", {});
}

const jsonOf = (value) => JSON.parse(JSON.stringify(value, (k, v) => (typeof v === "bigint" ? v.toString()
  : v instanceof Uint8Array ? V.toHex(v) : v)));

/** JSON text with object keys sorted, big integers as text, bytes as hex. */
function stableJson(value) {
  const sort = (v) => {
    if (Array.isArray(v)) return v.map(sort);
    if (v && typeof v === "object") {
      return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sort(v[k])]));
    }
    return typeof v === "number" ? String(v) : v;
  };
  return JSON.stringify(sort(jsonOf(value)));
}

/** Compare the transaction the page shows (the node's JSON) with the proven bytes. */
function compareTx(shown, proven) {
  const same = (a, b) => stableJson(a) === stableJson(b);
  for (const [what, a, b] of [["sender", shown.sender, proven.sender], ["kind", shown.type, proven.type],
    ["nonce", shown.nonce, proven.nonce], ["fields", shown.fields, proven.fields]]) {
    if (!same(a, b)) throw new V.VerifyError("tx_fields_mismatch", { what });
  }
}

/** Check the page's subject from the genesis; the outcome is data, worded by renderOutcome. */
async function verify(kind, ref, context) {
  const genesis = await ensureGenesis();
  const chain = ensureVerifier(genesis);
  let certified, proof = null, reported = null;
  if (kind === "block") {
    certified = await chain.certifiedHeader(Number(ref), undefined, undefined, onProgress);
  } else if (kind === "record") {
    const answer = await rpc("state_record", { namespace: context.namespace, key: context.key, proof: true });
    if (!answer.proof) throw new V.VerifyError("malformed", { what: "no proof" });
    proof = { namespace: context.namespace, key: context.key, value: answer.value,
      state_proof: answer.proof.state_proof };
    certified = await chain.certifiedHeader(Number(answer.height), answer.proof.header,
      answer.proof.certificate, onProgress);
  } else if (kind === "account") {
    const read = await readAccountProofs(ref);
    proof = read.proof;
    certified = await chain.certifiedHeader(Number(read.height), undefined, undefined, onProgress);
  } else {
    const answer = await rpc("tx_proof", { hash: ref });
    proof = { hash: answer.hash, height: answer.height, index: answer.index,
      tx_count: answer.tx_count, tx: answer.tx, path: answer.path, result: answer.result };
    certified = await chain.certifiedHeader(Number(answer.height), undefined, undefined, onProgress);
    const status = await rpc("tx_get", { hash: ref });
    reported = { status: status.status, code: status.code || null, message: status.message || null };
  }
  const bundle = V.makeBundle(kind, genesis, certified, chain, proof, reported);
  // The bundle is checked as a reader would check the file: genesis and bundle alone.
  const checked = await V.checkBundle(jsonOf(bundle), genesis);
  if (kind === "tx" && context.tx) compareTx(context.tx, checked.subject);
  // Never a green box beside content that is not the proven one.
  if (isChangedSinceShown(kind, context, checked.subject, proof)) {
    throw new V.VerifyError(`${kind}_changed`, { height: checked.height });
  }
  const sets = chain.setChain(checked.height);
  return { ok: true, kind, height: checked.height, signed: checked.signed, subject: checked.subject,
    setChanges: sets.length - 1, namesFromNode: sets.some((s) => s.certified_by), reported,
    bundle: jsonOf(bundle), genesis: { hash: genesis.hash, chainId: genesis.chainId,
      source: genesis.source, fileName: genesis.fileName } };
}

/** True when the proven record or account differs from what the page showed: it
 * changed in between, or the node's two answers disagree (record_changed,
 * account_changed). */
function isChangedSinceShown(kind, context, subject, proof) {
  if (kind === "record") return context.value !== undefined && context.value !== proof.value;
  if (kind !== "account" || !context.account) return false;
  const shown = context.account;
  const balances = Object.fromEntries(Object.entries(subject.balances).map(([s, a]) => [s, a === null ? 0 : a]));
  return stableJson({ n: shown.nonce, b: shown.balances || {} }) !== stableJson({ n: subject.nonce, b: balances });
}

/** A failed check as data. Anything but a VerifyError or a failed call is an answer (or
 * a bundle file) without the fields the check reads. */
function failureOutcome(error, fromFile) {
  if (error instanceof V.VerifyError) return { ok: false, code: error.code, params: error.params };
  if (error instanceof RpcError) return { ok: false, code: "rpc_failed", params: { message: error.message } };
  const what = String((error && error.message) || error);
  return { ok: false, code: fromFile ? "bundle_invalid" : "malformed", params: { what } };
}

function signedSentence(signed) {
  return `${tp("signed_by_names", signed.total, { signers: signed.signers, total: signed.total,
    names: signed.names.join(", ") })}`;
}

function outcomeChecks(outcome) {
  const { height, signed, genesis } = outcome;
  const checks = [
    genesis.source === "file"
      ? tf("check_genesis_file", { file: genesis.fileName, chain: genesis.chainId, hash: short(genesis.hash) })
      : tf("check_genesis_node", { chain: genesis.chainId, hash: short(genesis.hash) }),
    outcome.offline && !outcome.setChanges ? tf("check_bundle_genesis_set", { height })
      : outcome.offline ? tf("check_bundle_sets", { changes: outcome.setChanges })
      : outcome.setChanges ? tf("check_chain_changes", { height, changes: outcome.setChanges })
        : tf("check_chain", { height }),
    tf("check_certificate", { height, signers: signed.signers, total: signed.total,
      quorum: signed.quorum, round: signed.round }),
  ];
  const subject = outcome.subject;
  if (outcome.kind === "record") {
    checks.push(tf("check_record", { height, version: subject.version }));
  } else if (outcome.kind === "account") {
    const balances = Object.entries(subject.balances).map(([symbol, amount]) => {
      const asset = subject.assets[symbol];
      return `${formatAmount(amount === null ? 0 : amount, asset ? asset.decimals : 0)} ${symbol}`;
    });
    checks.push(tf("check_account", { height, nonce: subject.nonce,
      balances: balances.length ? balances.join(", ") : "–" }));
  } else if (outcome.kind === "tx") {
    checks.push(t(subject.senderSigned ? "check_tx_signed" : "check_tx_bytes"),
      tf("check_tx_included", { height, position: subject.index + 1 }),
      subject.succeeded ? tf("check_tx_succeeded", { height })
        : tf("check_tx_refused", { height, code: subject.code }));
  }
  return checks;
}

function outcomeNotes(outcome) {
  const notes = [];
  if (outcome.namesFromNode) notes.push(["note-names", t("note_names")]);
  if (outcome.genesis.source === "node") notes.push(["note-anchor", t("note_anchor_node")]);
  return notes;
}

function renderOutcome(box, outcome) {
  box.dataset.state = outcome.ok ? "ok" : "failed";
  box.dataset.code = outcome.ok ? "" : outcome.code;
  if (!outcome.ok) {
    box.replaceChildren(
      el("p", { class: "headline", text: t("verify_failed") }),
      el("p", { class: "reason", text: tf(`fail_${outcome.code}`, outcome.params) }));
    return;
  }
  const headline = tf(`ok_${outcome.kind}`, { signed: signedSentence(outcome.signed), height: outcome.height });
  const parts = [
    el("p", { class: "headline", text: headline }),
    el("ul", { class: "checks" }, ...outcomeChecks(outcome).map((text) => el("li", { text }))),
    ...outcomeNotes(outcome).map(([name, text]) => el("p", { class: `note ${name}`, text })),
  ];
  if (!outcome.offline) {
    if (state.bundleUrl) URL.revokeObjectURL(state.bundleUrl);
    state.bundleUrl = URL.createObjectURL(new Blob([JSON.stringify(outcome.bundle, null, 2) + "\n"],
      { type: "application/json" }));
    parts.push(el("p", {}, el("a", { class: "button bundle-link", href: state.bundleUrl,
      download: `govchain-${outcome.kind}-${outcome.height}.json`, text: t("download_bundle") }),
    " ", el("span", { class: "hint", text: t("bundle_hint") })));
  }
  box.replaceChildren(...parts);
}

function anchorText() {
  const genesis = state.genesis;
  if (genesis && genesis.source === "file") {
    return tf("anchor_file", { file: genesis.fileName, hash: short(genesis.hash) });
  }
  return genesis ? tf("anchor_node", { hash: short(genesis.hash) }) : t("anchor_node_unloaded");
}

async function chooseGenesisFile(file, after) {
  let outcome = null;
  try {
    const loaded = await V.loadGenesis(await file.text());
    state.genesis = { ...loaded, source: "file", fileName: file.name };
    state.verifier = null;
  } catch (error) {
    outcome = failureOutcome(error);
  }
  state.verification = null;
  after(outcome);
}

/** The "Check it yourself" box of a detail page. */
function verifyPanel(kind, ref, context) {
  const route = location.hash;
  const result = el("div", { id: "verify-result", "data-state": "idle", "aria-live": "polite" });
  const anchor = el("span", { id: "anchor-text", text: anchorText() });
  const button = el("button", { type: "button", id: "verify-button", class: "primary", text: t("verify") });
  const input = el("input", { type: "file", id: "genesis-file", accept: ".json,application/json" });
  const chooser = el("label", { class: "button file" }, t("load_genesis"), input);
  const useNode = el("button", { type: "button", id: "genesis-node", class: "link", text: t("use_node_genesis") });
  useNode.hidden = !(state.genesis && state.genesis.source === "file");
  const refresh = (outcome) => {
    anchor.textContent = anchorText();
    useNode.hidden = !(state.genesis && state.genesis.source === "file");
    if (outcome) renderOutcome(result, outcome);
    else { result.dataset.state = "idle"; result.replaceChildren(); }
  };
  input.addEventListener("change", () => {
    if (input.files && input.files[0]) chooseGenesisFile(input.files[0], refresh);
    input.value = "";
  });
  useNode.addEventListener("click", () => {
    state.genesis = null; state.verifier = null; state.verification = null;
    refresh(null);
  });
  button.addEventListener("click", async () => {
    button.disabled = true;
    result.dataset.state = "running";
    result.replaceChildren(el("p", { class: "headline", text: t("verify_running") }));
    let outcome;
    try {
      outcome = await verify(kind, ref, context || {});
    } catch (error) {
      outcome = failureOutcome(error);
    }
    state.verification = { route, genesisHash: state.genesis && state.genesis.hash, outcome };
    button.disabled = false;
    if (location.hash === route) refresh(outcome);
  });
  const last = state.verification;
  if (last && last.route === route && state.genesis && last.genesisHash === state.genesis.hash) {
    renderOutcome(result, last.outcome);
  }
  return el("section", { id: "verify", class: "verify card" },
    el("h3", { text: t("verify_title") }),
    el("p", { class: "hint", text: t(`verify_hint_${kind}`) }),
    el("p", { class: "anchor" }, `${t("anchor")}: `, anchor, " ", chooser, " ", useNode),
    el("p", {}, button), result);
}

// ------------------------------------------------------------------ checking a bundle file

async function checkBundleFile(file) {
  let outcome;
  try {
    let bundle;
    try {
      bundle = V.parseJson(await file.text());
    } catch (error) {
      throw new V.VerifyError("bundle_invalid", { what: "JSON" });
    }
    const genesis = await ensureGenesis();
    const checked = await V.checkBundle(bundle, genesis);
    outcome = { ok: true, kind: checked.kind, height: checked.height, signed: checked.signed,
      subject: checked.subject, setChanges: (bundle.validator_sets || []).length - 1,
      namesFromNode: (bundle.validator_sets || []).length > 1, reported: bundle.reported,
      bundle, offline: true, genesis: { hash: genesis.hash, chainId: genesis.chainId,
        source: genesis.source, fileName: genesis.fileName } };
  } catch (error) {
    outcome = failureOutcome(error, true);
    if (outcome.code === "malformed") outcome.code = "bundle_invalid";  // the file, not a node
  }
  state.bundleCheck = outcome;
  renderBundleCheck();
}

function renderBundleCheck() {
  const box = document.getElementById("bundle-result");
  document.getElementById("bundle-anchor").textContent = anchorText();
  if (!state.bundleCheck) { box.dataset.state = "idle"; box.replaceChildren(); return; }
  renderOutcome(box, state.bundleCheck);
}

// ------------------------------------------------------------------ search and routes

async function search(query) {
  const q = query.trim().replace(/^0x/i, "");
  if (!q) return;
  if (/^\d+$/.test(q)) { location.hash = `#/block/${q}`; return; }
  if (/^[0-9a-fA-F]{64}$/.test(q)) {
    const status = await rpc("tx_get", { hash: q.toLowerCase() });
    if (status.status !== "unknown") { location.hash = `#/tx/${q.toLowerCase()}`; return; }
    try {
      const block = await rpc("chain_block", { hash: q.toLowerCase() });
      location.hash = `#/block/${block.height}`;
    } catch (error) {
      showError(t("not_found"));
    }
    return;
  }
  if (/^[0-9a-fA-F]{40}$/.test(q)) { location.hash = `#/account/${q.toLowerCase()}`; return; }
  location.hash = `#/record/${query.trim().split("/").map(encodeURIComponent).join("/")}`;
}

async function route() {
  showError("");
  const [, kind, ...rest] = location.hash.replace(/^#/, "").split("/");
  const ref = rest.map(decodeURIComponent).join("/");
  const renderers = { block: renderBlock, tx: renderTx, account: renderAccount, record: renderRecord };
  const render = renderers[kind];
  document.getElementById("view-home").hidden = !!render;
  document.getElementById("view-detail").hidden = !render;
  state.renderDetail = render ? () => render(ref).catch((e) => showError(
    e.reason === "block_not_found" ? t("not_found") : e.message)) : null;
  if (state.renderDetail) {
    document.getElementById("detail-title").textContent = t("loading");
    await state.renderDetail();
  }
}

// ------------------------------------------------------------------ start

async function poll() {
  const live = document.getElementById("live");
  try {
    await refreshHome();
    live.classList.remove("stale");
    live.textContent = t("live");
  } catch (error) {
    live.classList.add("stale");
    live.textContent = t("stale");
  }
  setTimeout(poll, POLL_MS);
}

async function start() {
  try {
    state.i18n = await (await fetch("/explorer/i18n.json")).json();
  } catch (error) { /* labels stay in English */ }
  const wanted = new URLSearchParams(location.search).get("lang");
  let saved = null;
  try { saved = localStorage.getItem("govchain-lang"); } catch (e) { /* private mode */ }
  state.lang = [wanted, saved, (navigator.language || "en").slice(0, 2)]
    .find((l) => l && state.i18n[l]) || "en";
  document.getElementById("lang").addEventListener("change", (e) => setLanguage(e.target.value));
  document.getElementById("search-form").addEventListener("submit", (e) => {
    e.preventDefault();
    search(document.getElementById("search").value).catch((err) => showError(err.message));
  });
  // Each input is emptied once read, so that choosing the same file again checks it again.
  document.getElementById("bundle-file").addEventListener("change", (e) => {
    if (e.target.files && e.target.files[0]) checkBundleFile(e.target.files[0]);
    e.target.value = "";
  });
  document.getElementById("bundle-genesis-file").addEventListener("change", (e) => {
    if (e.target.files && e.target.files[0]) {
      chooseGenesisFile(e.target.files[0], (outcome) => {
        state.bundleCheck = outcome;
        renderBundleCheck();
      });
    }
    e.target.value = "";
  });
  window.addEventListener("hashchange", route);
  applyLanguage();
  await route();
  poll();
}

start();
