/* PromptPulse console: vanilla JS over the HTTP API (/api/panels/* runs the Grafana dashboards' own SQL).
   No build step; the only library is uPlot (vendor/, MIT). Nothing is fetched from anywhere but this server. */
"use strict";

const PRESETS = { "1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400 };
const FILTERS = ["service", "environment", "model", "provider"];
const LIVE_MS = 30000;
const COLORS = ["#2f6fdf", "#e07b24", "#1a9c4b", "#9b4fd1", "#d23c3c", "#16a2b8", "#c99a00", "#6b7385",
  "#e84393", "#00b894"];

const state = {
  preset: "24h", start: null, end: null, live: false, filters: {}, prompts: [], compareBy: "prompt",
  token: sessionStorage.getItem("promptpulse.token") || "", catalog: {}, options: {}, drill: null,
};
let liveTimer = null;
let renderSeq = 0;

// ------------------------------------------------------------------------------------------------ helpers
const $ = (sel, root = document) => root.querySelector(sel);
function el(tag, attrs = {}, ...kids) {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") n.className = v;
    else if (k === "text") n.textContent = v;
    else if (k.startsWith("on")) n.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined && v !== false) n.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids.flat()) if (kid !== null && kid !== undefined) n.append(kid);
  return n;
}

class AuthError extends Error {}

async function api(path, params) {
  const url = params ? `${path}?${params}` : path;
  const headers = state.token ? { Authorization: `Bearer ${state.token}` } : {};
  const resp = await fetch(url, { headers });
  if (resp.status === 401) throw new AuthError("unauthorized");
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new Error(body.error || body.detail || `${resp.status} ${resp.statusText}`);
  return body;
}

function range() {
  if (state.preset === "custom" && state.start && state.end) return [new Date(state.start), new Date(state.end)];
  const end = new Date();
  return [new Date(end.getTime() - PRESETS[state.preset] * 1000), end];
}

function baseParams(extra = {}) {
  const [start, end] = range();
  const p = new URLSearchParams({ start: start.toISOString(), end: end.toISOString() });
  for (const f of FILTERS) for (const v of state.filters[f] || []) p.append(f, v);
  const drill = state.drill;
  const prompts = drill ? [drill.prompt] : state.prompts.map((x) => x.prompt);
  for (const v of new Set(prompts)) p.append("prompt", v);
  const versions = drill ? (drill.version ? [drill.version] : []) :
    (state.compareBy === "version" ? state.prompts.map((x) => x.version).filter(Boolean) : []);
  for (const v of new Set(versions)) p.append("version", v);
  for (const [k, v] of Object.entries(extra)) {
    if (Array.isArray(v)) v.forEach((x) => p.append(k, x)); else if (v !== undefined && v !== null) p.set(k, v);
  }
  return p;
}

async function panelData(keys, extra) {
  const known = keys.filter((k) => state.catalog[k]);
  const p = baseParams(extra);
  p.set("keys", known.join(","));
  return (await api("/api/panels/data", p)).panels;
}

// ------------------------------------------------------------------------------------------------ formatting
function fmtNumber(v, decimals) {
  const d = decimals ?? (Math.abs(v) >= 100 ? 0 : 2);
  return v.toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d });
}
function fmtShort(v, decimals) {
  const a = Math.abs(v);
  if (a >= 1e9) return fmtNumber(v / 1e9, 2) + " B";
  if (a >= 1e6) return fmtNumber(v / 1e6, 2) + " M";
  if (a >= 1e4) return fmtNumber(v / 1e3, 1) + " K";
  return fmtNumber(v, decimals ?? (Number.isInteger(v) ? 0 : 2));
}
function fmt(v, unit, decimals) {
  if (v === null || v === undefined || (typeof v === "number" && !Number.isFinite(v))) return null;
  if (typeof v !== "number") return String(v);
  switch (unit) {
    case "percent": return fmtNumber(v, decimals ?? 2) + " %";
    case "ms": return fmtNumber(v, decimals ?? 0) + " ms";
    case "currencyUSD": return "$" + fmtNumber(v, decimals ?? (Math.abs(v) < 1 ? 4 : 2));
    case "reqpm": return fmtNumber(v, decimals ?? 2) + " req/min";
    case "short": return fmtShort(v, decimals);
    default: return fmtNumber(v, decimals ?? (Number.isInteger(v) ? 0 : 2));
  }
}
function unknownSpan(title) {
  return el("span", { class: "unknown-val", title: title || "unknown: no call in this selection reports it" },
    "unknown");
}

// Grafana's absolute thresholds: the last step whose value is <= v wins.
function thresholdColor(steps, v) {
  if (!steps || v === null || v === undefined || typeof v !== "number") return null;
  let color = null;
  for (const [c, at] of steps) if (at === null || v >= at) color = c;
  return color;
}
function fieldConfig(panel, column) {
  const o = (panel.overrides && panel.overrides[column]) || {};
  return { unit: o.unit ?? panel.unit, decimals: o.decimals ?? panel.decimals,
    thresholds: o.thresholds ?? panel.thresholds };
}

// ------------------------------------------------------------------------------------------------ renderers
function statTiles(key, data, notes = {}) {
  const panel = state.catalog[key];
  const row = data.rows[0] || [];
  const only = panel.fields ? new RegExp(panel.fields.replace(/^\/|\/$/g, "")) : null;
  return data.columns.map((col, i) => {
    if (only && !only.test(col)) return null;
    const cfg = fieldConfig(panel, col);
    const text = fmt(row[i], cfg.unit, cfg.decimals);
    const color = text === null ? "unknown" : (thresholdColor(cfg.thresholds, row[i]) || "blue");
    const note = notes[col];
    return el("div", { class: `tile ${color}`, "data-kpi": col, "data-panel": key, "data-value": row[i] ?? "",
      title: panel.description },
      el("div", { class: "name", text: col }),
      el("div", { class: "value" }, text === null ? "unknown" : text),
      note ? el("div", { class: "note", text: note }) : null);
  });
}

function emptyState(html) {
  const d = el("div", { class: "empty" });
  d.innerHTML = html;
  return d;
}

const NO_DATA = `No LLM calls in this range and selection. Widen the time range or clear the filters — or point an
  app at this processor:<pre>OTEL_EXPORTER_OTLP_ENDPOINT=http://${location.hostname}:4318 \\
OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf opentelemetry-instrument python app.py</pre>
  (<code>pip install promptpulse opentelemetry-distro opentelemetry-exporter-otlp</code>; or run
  <code>promptpulse demo --keep-running</code> to see the console filled with demo traffic).`;

// ------------------------------------------------------------------------------------------------ sections
const OVERVIEW = ["requests", "rpm", "peak_rpm", "trend", "success_rate", "error_rate", "latency_stats", "tokens",
  "cost_stats"];

async function renderOverview(seq) {
  const body = $("#overview .body");
  const d = await panelData(OVERVIEW);
  if (seq !== renderSeq) return null;
  body.replaceChildren();
  const requests = d.requests.rows[0] ? d.requests.rows[0][0] : 0;
  if (!requests) {
    body.append(emptyState(NO_DATA));
    return 0;
  }
  const col = (k, name) => d[k].rows[0][d[k].columns.indexOf(name)];
  const noUsage = col("tokens", "Calls without usage");
  const unpriced = col("cost_stats", "Calls unpriced");
  const usageNote = noUsage ? `${fmtShort(noUsage)} call(s) without usage not counted` : null;
  const tokenNotes = { Input: usageNote, Output: usageNote, Total: usageNote, "Avg per request": usageNote };
  const costNote = noUsage || unpriced ? `${fmtShort(noUsage + unpriced)} call(s) without a cost not counted` : null;
  const costNotes = { "Total cost": costNote, "Cost per request": costNote, "Projected monthly": costNote };
  const tiles = [];
  for (const k of OVERVIEW) {
    if (!d[k]) continue;
    let t = statTiles(k, d[k], k === "tokens" ? tokenNotes : k === "cost_stats" ? costNotes : {});
    if (k === "tokens" || k === "cost_stats") {
      // a sum over no known call is unknown, not 0: show the count of calls without usage instead
      const allUnknown = noUsage >= requests;
      t = t.map((tile) => {
        if (!tile) return tile;
        const name = tile.dataset.kpi;
        if (allUnknown && !/^Calls/.test(name)) {
          tile.className = "tile unknown";
          tile.querySelector(".value").textContent = "unknown";
        }
        return tile;
      });
    }
    tiles.push(...t);
  }
  body.append(el("div", { class: "tiles" }, tiles));
  return requests;
}

// ------------------------------------------------------------------------------------------------ top bar
function renderTopbar() {
  for (const b of document.querySelectorAll("[data-preset]")) {
    b.classList.toggle("active", b.dataset.preset === state.preset);
  }
  $("#custom-range").hidden = state.preset !== "custom";
  $("#live").checked = state.live;
  $("#compare-by").value = state.compareBy;
  const box = $("#filters");
  box.replaceChildren();
  for (const f of FILTERS) {
    const values = state.options[f] || [];
    const chosen = new Set(state.filters[f] || []);
    const sel = el("select", { "data-filter": f, "aria-label": f, onchange: (e) => {
      state.filters[f] = e.target.value ? [e.target.value] : [];
      changed();
    } }, el("option", { value: "" }, `all ${f}s`),
    [...new Set([...values, ...chosen])].map((v) => el("option", { value: v, selected: chosen.has(v) }, v)));
    box.append(sel);
  }
  renderPromptPicker();
}

function renderPromptPicker() {
  const select = $("#prompt-select");
  const prompts = state.options.prompt || [];
  const chosen = new Set(state.prompts.map((x) => x.prompt));
  select.replaceChildren(...prompts.map((p) => el("option", { value: p, selected: chosen.has(p) }, p)));
  select.size = Math.min(Math.max(prompts.length, 1), 4);
}

async function loadOptions() {
  try {
    state.options = (await api("/api/panels/options", baseParams())).options;
  } catch (e) {
    if (e instanceof AuthError) throw e;
    state.options = {};
  }
}

function changed() {
  writeUrl();
  refresh();
}

function writeUrl() {
  const p = new URLSearchParams();
  p.set("range", state.preset);
  if (state.preset === "custom") { p.set("start", state.start); p.set("end", state.end); }
  for (const f of FILTERS) for (const v of state.filters[f] || []) p.append(f, v);
  for (const x of state.prompts) p.append("prompt", x.version ? `${x.prompt}@${x.version}` : x.prompt);
  if (state.compareBy !== "prompt") p.set("compare_by", state.compareBy);
  if (state.live) p.set("live", "1");
  history.replaceState(null, "", `${location.pathname}?${p}${location.hash}`);
}

function readUrl() {
  const p = new URLSearchParams(location.search);
  if (p.get("range") && (PRESETS[p.get("range")] || p.get("range") === "custom")) state.preset = p.get("range");
  if (state.preset === "custom") {
    state.start = p.get("start"); state.end = p.get("end");
    if (!state.start || !state.end) state.preset = "24h";
  }
  for (const f of FILTERS) state.filters[f] = p.getAll(f);
  state.prompts = p.getAll("prompt").slice(0, 3).map((s) => {
    const at = s.lastIndexOf("@");
    return at > 0 ? { prompt: s.slice(0, at), version: s.slice(at + 1) } : { prompt: s, version: null };
  });
  state.compareBy = p.get("compare_by") === "version" ? "version" : "prompt";
  state.live = p.get("live") === "1";
}

function toLocalInput(d) {
  return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
}

function bindTopbar() {
  for (const b of document.querySelectorAll("[data-preset]")) {
    b.addEventListener("click", () => {
      if (b.dataset.preset === "custom") {
        const [s, e] = range();
        $("#custom-start").value = toLocalInput(s);
        $("#custom-end").value = toLocalInput(e);
        $("#custom-range").hidden = false;
        return;
      }
      state.preset = b.dataset.preset;
      changed();
    });
  }
  $("#custom-apply").addEventListener("click", () => {
    const s = new Date($("#custom-start").value), e = new Date($("#custom-end").value);
    if (!(s < e)) { showError("The custom range needs a start before its end."); return; }
    state.preset = "custom"; state.start = s.toISOString(); state.end = e.toISOString();
    changed();
  });
  $("#live").addEventListener("change", (e) => { state.live = e.target.checked; setLive(); writeUrl(); });
  $("#compare-by").addEventListener("change", (e) => { state.compareBy = e.target.value; changed(); });
  $("#prompt-select").addEventListener("change", (e) => {
    const picked = [...e.target.selectedOptions].map((o) => o.value).slice(0, 3);
    state.prompts = picked.map((p) => ({ prompt: p, version: null }));
    changed();
  });
  $("#auth-form").addEventListener("submit", (e) => {
    e.preventDefault();
    state.token = $("#auth-token").value.trim();
    sessionStorage.setItem("promptpulse.token", state.token);
    start();
  });
}

function setLive() {
  if (liveTimer) clearInterval(liveTimer);
  liveTimer = state.live ? setInterval(refresh, LIVE_MS) : null;
}

function showError(msg) {
  const b = $("#error-banner");
  b.hidden = !msg;
  b.textContent = msg || "";
}

function showAuth(refused) {
  $("#auth").hidden = false;
  $("#main").hidden = true;
  $("#auth-error").hidden = !refused;
  $("#auth-token").focus();
}

// ------------------------------------------------------------------------------------------------ refresh
const SECTIONS = [renderOverview];

async function refresh() {
  const seq = ++renderSeq;
  document.body.dataset.loading = "1";
  try {
    await loadOptions();
    if (seq !== renderSeq) return;
    renderTopbar();
    for (const render of SECTIONS) await render(seq);
    if (seq !== renderSeq) return;
    showError(null);
    $("#last-refresh").textContent = `updated ${new Date().toLocaleTimeString()}`;
    document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes || 0) + 1);
  } catch (e) {
    if (e instanceof AuthError) { showAuth(Boolean(state.token)); return; }
    showError(`Could not load: ${e.message}`);
  } finally {
    if (seq === renderSeq) delete document.body.dataset.loading;
  }
}

async function start() {
  try {
    const cat = await api("/api/panels");
    state.catalog = Object.fromEntries(cat.panels.map((p) => [p.key, p]));
  } catch (e) {
    if (e instanceof AuthError) { showAuth(Boolean(state.token)); return; }
    showError(`Could not reach the API: ${e.message}`);
    return;
  }
  $("#auth").hidden = true;
  $("#main").hidden = false;
  setLive();
  await refresh();
}

document.documentElement.style.setProperty("--topbar-h", "48px");
readUrl();
bindTopbar();
start();
