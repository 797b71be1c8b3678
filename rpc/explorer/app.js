// govchain explorer: plain JavaScript over the node's JSON-RPC (/rpc), no build step.
// Every label comes from i18n.json (English, Russian, Kyrgyz); data from the chain is
// only ever inserted as text, never as HTML. Methods a node may lack (state_record,
// state_attestations, state_asset) are tolerated: the page says the data is unavailable.
"use strict";

const POLL_MS = 1000;
const RECENT_BLOCKS = 10;
const METHOD_NOT_FOUND = -32601;

const state = {
  lang: "en", i18n: { en: {} }, status: null, blocks: new Map(), validators: [],
  lastHeight: 0, validatorsHeight: -1, chartPoints: [], chartTick: 0, view: "home",
  renderDetail: null,
};

// ------------------------------------------------------------------ helpers

function t(key) {
  const dict = state.i18n[state.lang] || {};
  return dict[key] !== undefined ? dict[key] : (state.i18n.en[key] || key);
}

async function rpc(method, params) {
  const response = await fetch("/rpc", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params: params || {} }),
  });
  const doc = await response.json();
  if (doc.error) {
    const error = new Error(doc.error.message);
    error.code = doc.error.code;
    error.reason = doc.error.data && doc.error.data.reason;
    throw error;
  }
  return doc.result;
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) {
      node.append(child instanceof Node ? child : String(child));
    }
  }
  return node;
}

const short = (hex) => (hex && hex.length > 16 ? `${hex.slice(0, 8)}…${hex.slice(-6)}` : hex);
const link = (href, text, cls) => el("a", { href, class: cls || "mono" }, text);
// One unambiguous format in every language (browsers lack Kyrgyz date names).
const pad = (n) => String(n).padStart(2, "0");
const formatTime = (ms) => {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
};

function validatorName(publicKey) {
  const found = state.validators.find((v) => v.public_key === publicKey);
  return found ? found.name : short(publicKey);
}

function showError(text) {
  const box = document.getElementById("error");
  box.textContent = text || "";
  box.hidden = !text;
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
  if (state.chartTick++ % 5 === 0) await refreshChart();
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
    el("td", { text: v.name }), el("td", { class: "mono", text: short(v.public_key) }),
    el("td", { text: String(proposed.get(v.public_key) || 0) }))));

  const bbody = document.querySelector("#blocks tbody");
  bbody.replaceChildren(...blocks.map((b) => el("tr", { id: `block-row-${b.height}` },
    el("td", {}, link(`#/block/${b.height}`, String(b.height))),
    el("td", { text: formatTime(b.timestamp_ms) }),
    el("td", { text: String(b.txs.length) }),
    el("td", { text: validatorName(b.proposer) }))));

  const txs = blocks.flatMap((b) => b.txs.map((tx) => ({ tx, height: b.height })));
  const tbody = document.querySelector("#txs tbody");
  tbody.replaceChildren(...txs.slice(0, 20).map(({ tx, height }) => el("tr", {},
    el("td", {}, link(`#/tx/${tx.hash}`, short(tx.hash))),
    el("td", { text: tx.type }),
    el("td", {}, link(`#/account/${tx.sender}`, short(tx.sender))),
    el("td", {}, link(`#/block/${height}`, String(height))))));
  document.getElementById("no-txs").hidden = txs.length > 0;
  renderChart();
}

// ------------------------------------------------------------------ stablecoin chart

function pickNumber(item, names) {
  for (const name of names) {
    if (item && typeof item[name] === "number") return item[name];
  }
  return null;
}

async function refreshChart() {
  let result;
  try {
    result = await rpc("state_attestations", {});
  } catch (error) {
    state.chartPoints = null;  // the node has no such method (or no stablecoin)
    return;
  }
  const items = Array.isArray(result) ? result : (result && result.attestations) || [];
  const points = items.map((item, i) => ({
    x: pickNumber(item, ["height", "time_ms", "timestamp_ms"]) ?? i,
    reserve: pickNumber(item, ["reserve", "reserve_amount", "attested_reserve", "amount"]),
    supply: pickNumber(item, ["supply", "supply_at", "circulating_supply", "total_supply"]),
  }));
  if (points.length && points.some((p) => p.supply === null) && items[0].asset !== undefined) {
    try {
      const asset = await rpc("state_asset", { asset: items[0].asset });
      const supply = pickNumber(asset, ["supply", "total_supply", "circulating_supply"]);
      for (const p of points) if (p.supply === null) p.supply = supply;
    } catch (error) { /* supply unknown: only the reserve is drawn */ }
  }
  state.chartPoints = points;
}

function renderChart() {
  const box = document.getElementById("chart");
  const points = state.chartPoints;
  const available = !!(points && points.length);
  document.getElementById("chart-missing").hidden = available;
  document.getElementById("chart-legend").hidden = !available;
  if (!points || !points.length) { box.replaceChildren(); return; }
  const width = 640, height = 180, pad = 24;
  const values = points.flatMap((p) => [p.supply, p.reserve]).filter((v) => v !== null);
  const max = Math.max(1, ...values);
  const xs = points.map((p) => p.x);
  const minX = Math.min(...xs), spanX = Math.max(1, Math.max(...xs) - minX);
  const sx = (x) => pad + ((x - minX) / spanX) * (width - 2 * pad);
  const sy = (v) => height - pad - (v / max) * (height - 2 * pad);
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `${t("supply")} / ${t("reserve")}`);
  for (const [field, color] of [["reserve", "#2e9d5b"], ["supply", "#0b5cad"]]) {
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("fill", "none");
    line.setAttribute("stroke", color);
    line.setAttribute("stroke-width", "2");
    line.setAttribute("points", points.filter((p) => p[field] !== null)
      .map((p) => `${sx(p.x)},${sy(p[field])}`).join(" "));
    svg.append(line);
  }
  box.replaceChildren(svg);
}

// ------------------------------------------------------------------ detail pages

function showDetail(title, rows, extra) {
  document.getElementById("detail-title").textContent = title;
  const fields = document.getElementById("detail-fields");
  fields.replaceChildren(...rows.flatMap(([label, value]) => [
    el("dt", { text: label }), el("dd", {}, value)]));
  document.getElementById("detail-extra").replaceChildren(...(extra || []));
}

function pre(value) {
  return el("pre", { text: JSON.stringify(value, null, 2) });
}

async function renderBlock(ref) {
  const block = await rpc("chain_block", { height: Number(ref), full: true });
  const signers = (block.certificate ? block.certificate.signatures : [])
    .map((s) => validatorName(s.validator)).join(", ");
  const txRows = block.txs.map((tx) => el("tr", {},
    el("td", {}, link(`#/tx/${tx.hash}`, short(tx.hash))), el("td", { text: tx.type }),
    el("td", {}, link(`#/account/${tx.sender}`, short(tx.sender)))));
  showDetail(`${t("block_title")} ${block.height}`, [
    [t("hash"), el("span", { class: "mono", text: block.hash })],
    [t("time"), formatTime(block.timestamp_ms)],
    [t("proposer"), validatorName(block.proposer)],
    [t("round"), String(block.round)],
    [t("txs"), String(block.txs.length)],
    [t("prev_block"), block.height > 1 ? link(`#/block/${block.height - 1}`, String(block.height - 1)) : "–"],
    [t("state_root"), el("span", { class: "mono", text: block.state_root })],
    [t("signed_by"), signers],
  ], [el("table", { id: "block-txs" }, el("thead", {}, el("tr", {},
    el("th", { text: t("tx") }), el("th", { text: t("type") }), el("th", { text: t("from") }))),
  el("tbody", {}, ...txRows))]);
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
  const rows = [
    [t("hash"), el("span", { class: "mono", text: status.hash })],
    [t("tx_status"), el("span", { id: "tx-status", "data-status": status.status,
      text: t(STATUS_KEYS[status.status] || "status_unknown") })],
  ];
  if (status.height) rows.push([t("block"), link(`#/block/${status.height}`, String(status.height))]);
  if (status.code) rows.push([t("result"), `${status.code}${status.message ? ": " + status.message : ""}`]);
  if (tx) {
    rows.push([t("type"), tx.type], [t("from"), link(`#/account/${tx.sender}`, tx.sender)],
      [t("nonce"), String(tx.nonce)]);
    const fields = tx.fields || {};
    if (fields.to) rows.push([t("recipient"), link(`#/account/${fields.to}`, fields.to)]);
    if (fields.amount !== undefined) rows.push([t("amount"), String(fields.amount)]);
    if (fields.asset !== undefined) rows.push([t("asset"), String(fields.asset)]);
  }
  showDetail(t("tx_title"), rows, tx ? [el("h3", { text: t("fields") }), pre(tx.fields)] : []);
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
  const balances = Object.entries(account.balances || {}).map(([asset, amount]) =>
    el("tr", {}, el("td", { text: asset }), el("td", { class: "balance", text: String(amount) })));
  showDetail(`${t("account_title")} ${short(account.address)}`, [
    [t("key"), el("span", { class: "mono", text: account.address })],
    [t("nonce"), String(account.nonce)],
    [t("next_nonce"), String(account.next_nonce)],
    [t("pending"), String(account.pending || 0)],
  ], [el("h3", { text: t("balances") }), el("table", { id: "balances" }, el("thead", {},
    el("tr", {}, el("th", { text: t("asset") }), el("th", { text: t("amount") }))),
  el("tbody", {}, ...balances))]);
}

async function renderRecord(key) {
  let record;
  try {
    record = await rpc("state_record", { key });
  } catch (error) {
    const text = error.code === METHOD_NOT_FOUND ? t("records_unavailable") : t("not_found");
    showDetail(`${t("record_title")} ${key}`, [], [el("p", { class: "hint", id: "record-missing", text })]);
    return;
  }
  const extra = [el("h3", { text: t("record_value") }), pre(record.value !== undefined ? record.value : record)];
  if (record.history) extra.push(el("h3", { text: t("record_history") }), pre(record.history));
  if (record.proof) {
    extra.push(el("h3", { text: t("record_proof") }), el("p", { class: "hint", text: t("proof_hint") }),
      pre(record.proof));
  }
  showDetail(`${t("record_title")} ${key}`, [], extra);
}

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
  location.hash = `#/record/${encodeURIComponent(query.trim())}`;
}

async function route() {
  showError("");
  const [, kind, ...rest] = location.hash.replace(/^#/, "").split("/");
  const ref = decodeURIComponent(rest.join("/"));
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
  window.addEventListener("hashchange", route);
  applyLanguage();
  await route();
  poll();
}

start();
