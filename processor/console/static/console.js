/* PromptPulse console: vanilla JS over the HTTP API (/api/panels/* runs the Grafana dashboards' own SQL).
   No build step; the only library is uPlot (vendor/, MIT). Nothing is fetched from anywhere but this server. */
"use strict";

const PRESETS = { "1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400 };
// tag: one value at a time (a call carrying two chosen tags would be counted twice; the API refuses two)
const FILTERS = ["service", "environment", "model", "provider", "feature", "tag"];
const LIVE_MS = 30000;
const COLORS = ["#2f6fdf", "#e07b24", "#1a9c4b", "#9b4fd1", "#d23c3c", "#16a2b8", "#c99a00", "#6b7385",
  "#e84393", "#00b894"];

const state = {
  preset: "24h", start: null, end: null, live: false, filters: {}, prompts: [], compareBy: "prompt",
  token: sessionStorage.getItem("promptpulse.token") || "", catalog: {}, options: {}, drill: null,
  budget: "100", slo: "99.9", firstOverview: null,
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

function baseParams(extra = {}, scope = "main") {
  const [start, end] = range();
  const p = new URLSearchParams({ start: start.toISOString(), end: end.toISOString() });
  for (const f of FILTERS) for (const v of state.filters[f] || []) p.append(f, v);
  // scope: "main" (the top bar's prompts), "drill" (the open drill-down) or one {prompt, version}
  const drill = scope === "drill" ? state.drill : typeof scope === "object" ? scope : null;
  const prompts = drill ? [drill.prompt] : state.prompts.map((x) => x.prompt);
  for (const v of new Set(prompts)) p.append("prompt", v);
  const versions = drill ? (drill.version ? [drill.version] : []) : state.prompts.map((x) => x.version).filter(Boolean);
  for (const v of new Set(versions)) p.append("version", v);
  for (const [k, v] of Object.entries(extra)) {
    if (Array.isArray(v)) v.forEach((x) => p.append(k, x)); else if (v !== undefined && v !== null) p.set(k, v);
  }
  return p;
}

async function panelRequest(keys, extra, scope) {
  const p = baseParams(extra, scope);
  p.set("keys", keys.join(","));
  return (await api("/api/panels/data", p)).panels;
}

async function panelData(keys, extra, scope) {
  return panelRequest(keys.filter((k) => state.catalog[k]), extra, scope);
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
// compact tick labels (the legend and tables carry the exact values)
function axisFmt(v, unit) {
  if (v === null || v === undefined) return "";
  const a = Math.abs(v);
  const n = a >= 1e6 ? `${+(v / 1e6).toPrecision(3)}M` : a >= 1000 ? `${+(v / 1000).toPrecision(3)}k` :
    String(+v.toPrecision(3));
  return { percent: `${n}%`, ms: `${n} ms`, currencyUSD: `$${n}`, reqpm: `${n}/min` }[unit] ?? n;
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
function statTiles(key, data, notes = {}, hide = []) {
  const panel = state.catalog[key];
  const row = data.rows[0] || [];
  const only = panel.fields ? new RegExp(panel.fields.replace(/^\/|\/$/g, "")) : null;
  return data.columns.map((col, i) => {
    if ((only && !only.test(col)) || hide.includes(col)) return null;
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

const TIME_COLUMNS = new Set(["time", "timestamp", "since", "day"]);

function fmtTime(v) {
  if (typeof v === "number") return new Date(v * 1000).toLocaleString();
  return v;
}

function cellText(panel, column, v) {
  if (TIME_COLUMNS.has(column)) return fmtTime(v);
  if (v !== null && typeof v === "object") {
    return Object.entries(v).map(([k, x]) => `${k}=${x}`).join(", ");
  }
  if (typeof v === "boolean") return v ? "yes" : "no";
  const cfg = fieldConfig(panel, column);
  if (typeof v === "number" && /(_id|^http_status$)/.test(column)) return String(v);
  return fmt(v, cfg.unit, cfg.decimals);
}

function renderTable(key, data, opts = {}) {
  const panel = state.catalog[key];
  const wrap = el("div", { class: "table-wrap", "data-panel": key });
  if (opts.title !== false) wrap.append(el("h3", { text: opts.title || panel.title }));
  if (panel.description && opts.description !== false) wrap.append(el("p", { class: "desc", text: panel.description }));
  if (!data.rows.length) {
    wrap.append(el("div", { class: "empty", text: opts.empty || "Nothing in this range and selection." }));
    return wrap;
  }
  const cols = data.columns.map((c, i) => [c, i]).filter(([c]) => !(opts.hide || []).includes(c));
  let rows = data.rows.slice();
  const table = el("table");
  const thead = el("thead");
  const tbody = el("tbody");
  let sortCol = null, sortDir = 1;
  function fill() {
    tbody.replaceChildren(...rows.map((r) => {
      const tr = el("tr", { class: opts.onRow ? "clickable" : "" }, cols.map(([c, i]) => {
        const v = r[i];
        const text = cellText(panel, c, v);
        const o = (panel.overrides || {})[c];
        const color = o && o.thresholds && typeof v === "number" ? thresholdColor(o.thresholds, v) : null;
        const cls = [typeof v === "number" ? "" : "text", color || ""].join(" ").trim();
        return el("td", { class: cls, "data-col": c }, text === null ? unknownSpan() : text);
      }));
      if (opts.onRow) tr.addEventListener("click", () => opts.onRow(Object.fromEntries(data.columns.map((c, i) => [c, r[i]]))));
      return tr;
    }));
  }
  thead.append(el("tr", {}, cols.map(([c, i]) => el("th", { class: typeof rows[0][i] === "number" ? "" : "text",
    onclick: (e) => {
      sortDir = sortCol === i ? -sortDir : (typeof rows[0][i] === "number" ? -1 : 1);
      sortCol = i;
      rows.sort((a, b) => {
        const x = a[i], y = b[i];
        if (x === y) return 0;
        if (x === null) return 1;
        if (y === null) return -1;
        return (x < y ? -1 : 1) * sortDir;
      });
      for (const th of thead.querySelectorAll("th")) th.classList.remove("sorted-asc", "sorted-desc");
      e.target.classList.add(sortDir > 0 ? "sorted-asc" : "sorted-desc");
      fill();
    } }, c))));
  fill();
  table.append(thead, tbody);
  wrap.append(table);
  return wrap;
}

// Long format (time, series, value) or wide (time, v1, v2 ...) -> uPlot's columns.
function toSeries(data) {
  const ti = data.columns.indexOf("time");
  const si = data.columns.indexOf("series");
  const valueCols = data.columns.map((c, i) => [c, i]).filter(([c]) => c !== "time" && c !== "series");
  const xs = [...new Set(data.rows.map((r) => r[ti]))].sort((a, b) => a - b);
  const at = new Map(xs.map((x, i) => [x, i]));
  const out = [];
  if (si >= 0) {
    const names = [...new Set(data.rows.map((r) => r[si]))];
    for (const name of names) {
      for (const [c, i] of valueCols) {
        const ys = new Array(xs.length).fill(null);
        for (const r of data.rows) if (r[si] === name) ys[at.get(r[ti])] = r[i];
        out.push({ label: valueCols.length > 1 ? `${name || "(none)"} ${c}` : (name || "(none)"), column: c, ys });
      }
    }
  } else {
    for (const [c, i] of valueCols) {
      const ys = new Array(xs.length).fill(null);
      for (const r of data.rows) ys[at.get(r[ti])] = r[i];
      out.push({ label: c, column: c, ys });
    }
  }
  return { xs, series: out };
}

const charts = [];

function renderChart(key, data, opts = {}) {
  const panel = state.catalog[key];
  const box = el("div", { class: "chart", "data-panel": key },
    el("h3", { text: opts.title || panel.title }),
    panel.description ? el("p", { class: "desc", text: panel.description }) : null);
  if (!data.rows.length) {
    box.append(el("div", { class: "empty", text: opts.empty || "No data points in this range and selection." }));
    return box;
  }
  const { xs, series } = toSeries(data);
  if (series.every((x) => x.ys.every((v) => v === null))) {  // only unknowns (e.g. TTFT without streams): not zeros
    box.append(el("div", { class: "empty", text: opts.empty || "No known values in this range and selection." }));
    return box;
  }
  const stacked = panel.stacked;
  const raw = series.map((s) => s.ys);
  const drawn = series.map((s) => s.ys.slice());
  if (stacked) {
    const unstacked = series.map((s) => ((panel.overrides || {})[s.column] || {})["custom.stacking"]);
    let acc = new Array(xs.length).fill(0);
    drawn.forEach((ys, k) => {
      if (unstacked[k]) return;
      drawn[k] = ys.map((v, j) => (acc[j] += v ?? 0));
    });
  }
  const unit = panel.unit;
  const bars = panel.bars && uPlot.paths && uPlot.paths.bars ? uPlot.paths.bars({ size: [0.7, 60] }) : null;
  const uSeries = [{}].concat(series.map((s, k) => {
    const color = COLORS[k % COLORS.length];
    const line = ((panel.overrides || {})[s.column] || {})["custom.drawStyle"] === "line";
    return { label: s.label, stroke: color, width: 2, spanGaps: true, points: { show: xs.length <= 3, size: 7 },
      fill: stacked && !line ? color + "55" : undefined, paths: bars && !line ? bars : undefined,
      value: (u, v, si, idx) => (idx === null || idx === undefined ? "–" :
        (fmt(raw[si - 1][idx], unit, panel.decimals) ?? "–")) };
  }));
  // stacked areas: draw the top of the stack first so lower series stay visible
  const order = stacked ? [...series.keys()].reverse() : [...series.keys()];
  const opts2 = {
    width: Math.max(320, (opts.width || 430) - 14), height: 200, series: [uSeries[0], ...order.map((k) => uSeries[k + 1])],
    // the x axis is the selected range, whatever the data covers (a minute of demo traffic is one point)
    scales: { x: { time: true, range: () => range().map((d) => d.getTime() / 1000) }, y: { range: (u, min, max) => [Math.min(0, min), max > 0 ? max * 1.08 : 1] } },
    axes: [{}, { size: 64, values: (u, vals) => vals.map((v) => axisFmt(v, unit)) }],
    legend: { live: true },
  };
  const target = el("div", { class: "plot" });
  box.append(target);
  requestAnimationFrame(() => {
    opts2.width = Math.max(320, box.clientWidth - 14);
    charts.push(new uPlot(opts2, [xs, ...order.map((k) => drawn[k])], target));
  });
  box.dataset.points = String(xs.length);
  box.dataset.series = series.map((s) => s.label).join("|");
  return box;
}

function renderPie(key, data) {
  const panel = state.catalog[key];
  const box = el("div", { class: "chart", "data-panel": key }, el("h3", { text: panel.title }));
  const rows = data.rows.filter((r) => (r[1] ?? 0) > 0);
  if (!rows.length) { box.append(el("div", { class: "empty", text: "No known cost in this range." })); return box; }
  const total = rows.reduce((a, r) => a + r[1], 0);
  const canvas = el("canvas", { width: 180, height: 180 });
  const ctx = canvas.getContext("2d");
  let a0 = -Math.PI / 2;
  rows.forEach((r, k) => {
    const a1 = a0 + (2 * Math.PI * r[1]) / total;
    ctx.beginPath(); ctx.moveTo(90, 90); ctx.arc(90, 90, 85, a0, a1); ctx.closePath();
    ctx.fillStyle = COLORS[k % COLORS.length]; ctx.fill();
    a0 = a1;
  });
  const legend = el("ul", {}, rows.map((r, k) => el("li", { "data-slice": r[0] },
    el("span", { style: `background:${COLORS[k % COLORS.length]}` }),
    `${r[0] || "(none)"}: ${fmt(r[1], panel.unit, 4)} (${fmtNumber((100 * r[1]) / total, 1)} %)`)));
  box.append(el("div", { class: "legend-pie" }, canvas, legend));
  return box;
}

function renderBars(key, data, labelCol, valueCol) {
  const panel = state.catalog[key];
  const box = el("div", { class: "chart bars", "data-panel": key }, el("h3", { text: panel.title }));
  if (!data.rows.length) { box.append(el("div", { class: "empty", text: "Nothing in this range." })); return box; }
  const li = data.columns.indexOf(labelCol), vi = data.columns.indexOf(valueCol);
  const max = Math.max(...data.rows.map((r) => r[vi] || 0), 1);
  box.append(el("table", {}, data.rows.map((r) => el("tr", {},
    el("td", { class: "text" }, String(r[li])),
    el("td", { style: "width:60%" }, el("div", { class: "bar", style: `width:${(100 * (r[vi] || 0)) / max}%` })),
    el("td", {}, fmt(r[vi], panel.unit, 0) ?? "–")))));
  return box;
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
  const first = state.firstOverview;  // start()'s request, sent beside the catalog's
  state.firstOverview = null;
  const d = first ? await first : await panelData(OVERVIEW);
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
    // the tokens tile already counts the calls without usage
    let t = statTiles(k, d[k], k === "tokens" ? tokenNotes : k === "cost_stats" ? costNotes : {},
      k === "cost_stats" ? ["Calls without usage"] : []);
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

const PERFORMANCE = ["rpm_by_prompt", "success_ts", "latency_ts", "ttft_ts", "errors_by_category", "tokens_ts"];
const TITLES = { rpm_by_prompt: "Request volume (requests per minute, by prompt)" };

async function renderPerformance(seq, requests) {
  const body = $("#performance .body");
  if (!requests) { body.replaceChildren(emptyState(NO_DATA)); return; }
  const d = await panelData(PERFORMANCE);
  if (seq !== renderSeq) return;
  body.replaceChildren(el("div", { class: "grid" }, PERFORMANCE.filter((k) => d[k]).map((k) => renderChart(k, d[k],
    { title: TITLES[k], empty: k === "ttft_ts" ? "No streamed calls with a first token in this range." : undefined }))));
}

let breakdownRows = [];

async function renderBreakdown(seq, requests) {
  const body = $("#breakdown .body");
  if (!requests) { body.replaceChildren(emptyState(NO_DATA)); breakdownRows = []; return; }
  const d = await panelData(["prompt_breakdown"]);
  if (seq !== renderSeq) return;
  const data = d.prompt_breakdown;
  breakdownRows = data.rows.map((r) => Object.fromEntries(data.columns.map((c, i) => [c, r[i]])));
  body.replaceChildren(renderTable("prompt_breakdown", data, { title: false,
    onRow: (r) => openDrill({ prompt: r.prompt, version: r.version }) }));
}

function openDrill(drill) {
  state.drill = drill;
  renderDrill(renderSeq).catch(reportError);
  $("#drilldown").scrollIntoView();
}

const DRILL = ["success_ts", "latency_ts", "errors_by_category", "tokens_ts", "slowest_calls", "failed_calls"];

async function renderDrill(seq) {
  const section = $("#drilldown");
  if (!state.drill) { section.hidden = true; return; }
  section.hidden = false;
  const { prompt, version } = state.drill;
  $("#drill-title").textContent = `${prompt || "(no prompt)"}${version ? " v" + version : ""}`;
  const d = await panelData(DRILL, {}, "drill");
  if (seq !== renderSeq && seq !== undefined && seq < renderSeq) return;
  const onCall = (r) => openCall(r.trace_id);
  $("#drilldown .body").replaceChildren(
    el("div", { class: "grid" }, DRILL.slice(0, 4).map((k) => renderChart(k, d[k]))),
    renderTable("slowest_calls", d.slowest_calls, { onRow: onCall, hide: ["span_id"] }),
    renderTable("failed_calls", d.failed_calls, { onRow: onCall, hide: ["span_id"],
      empty: "No failed calls of this prompt in the range." }));
}

async function openCall(traceId) {
  const dlg = $("#call-dialog");
  const body = $("#call-dialog .body");
  body.replaceChildren(el("p", { text: `Loading trace ${traceId}…` }));
  if (!dlg.open) dlg.showModal();
  try {
    const doc = await api(`/api/calls/${encodeURIComponent(traceId)}`);
    body.replaceChildren(el("h3", { text: `Trace ${doc.trace_id}` }), ...doc.calls.map((c) => el("div", { class: "call" },
      el("table", {}, ["timestamp", "span_id", "service", "prompt_name", "prompt_version", "request_model", "provider",
        "status", "error_type", "error_category", "latency_ms", "ttft_ms", "input_tokens", "output_tokens",
        "cost_usd", "user_id", "feature", "tags"].map((k) => el("tr", {}, el("td", { class: "text" }, k),
        el("td", { class: "text", "data-field": k }, k === "timestamp" ? fmtTime(c[k]) :
          (k === "input_tokens" || k === "output_tokens") && !c.usage_known ? "unknown (no usage reported)" :
            k === "cost_usd" && !c.cost_known ? "unknown (no price)" :
              Array.isArray(c[k]) ? c[k].join(", ") : String(c[k] ?? ""))))),
      el("h4", { text: "Scores" }),
      c.scores.length ? el("table", { class: "scores" }, c.scores.map((s) => el("tr", {},
        el("td", { class: "text" }, s.name), el("td", {}, String(s.value)), el("td", { class: "text" }, s.label || ""),
        el("td", { class: "text" }, s.comment || "")))) : el("p", { class: "muted", text: "No scores for this call." }),
      el("h4", { text: "Span attributes" }),
      el("pre", { class: "attributes" }, JSON.stringify(c.attributes, null, 1)),
      el("h4", { text: "Resource" }), el("pre", {}, JSON.stringify(c.resource, null, 1)))));
  } catch (e) {
    if (e instanceof AuthError) throw e;
    body.replaceChildren(el("p", { class: "bad", text: `Could not load the call: ${e.message}` }));
  }
}

function compareItems() {
  const picked = state.prompts;
  if (state.compareBy === "version") {
    const prompt = picked.length ? picked[0].prompt : (breakdownRows[0] || {}).prompt;
    if (!prompt) return null;
    const explicit = picked.filter((x) => x.prompt === prompt && x.version).map((x) => x.version);
    const versions = explicit.length >= 2 ? explicit :
      breakdownRows.filter((r) => r.prompt === prompt).map((r) => r.version).slice(0, 3);
    return { by: "version", prompt, items: versions, auto: explicit.length < 2 };
  }
  const explicit = [...new Set(picked.map((x) => x.prompt))];
  const busiest = [...new Set(breakdownRows.map((r) => r.prompt))].slice(0, 3);
  return { by: "prompt", items: explicit.length >= 2 ? explicit : busiest, auto: explicit.length < 2 };
}

async function renderCompare(seq, requests) {
  const body = $("#compare .body");
  const plan = compareItems();
  if (!requests || !plan || plan.items.length < 2) {
    body.replaceChildren(emptyState(requests ?
      (plan && plan.by === "version" ? `Only one version of <b>${plan.prompt}</b> has calls in this range: pick a
        prompt with two or three versions, or switch the selector to <i>by prompt</i>.` :
        "Only one prompt has calls in this range. Pick 2 or 3 prompts (or versions) in the Prompt selector to compare them.")
      : NO_DATA));
    return;
  }
  const [start, end] = range();
  const p = new URLSearchParams({ start: start.toISOString(), end: end.toISOString() });
  for (const f of FILTERS) if ((state.filters[f] || []).length) p.set(f, state.filters[f].join(","));
  if (plan.by === "version") { p.set("prompt_id", plan.prompt); p.set("versions", plan.items.join(",")); }
  else p.set("prompts", plan.items.join(","));
  const scopeOf = (item) => (plan.by === "version" ? { prompt: plan.prompt, version: item } : { prompt: item });
  // the Compare dashboard's repeated "Latency: $prompt" panel, one per compared prompt or version, fetched at once
  const [doc, latency] = await Promise.all([api("/api/compare", p),
    Promise.all(plan.items.map((item) => panelData(["latency_per_prompt_ts"], {}, scopeOf(item))))]);
  if (seq !== renderSeq) return;
  const items = doc.items;
  const name = (it) => (plan.by === "version" ? `${plan.prompt} v${it.item}` : it.item);
  const rowsDef = [
    ["Requests", (it) => fmt(it.requests, "short", 0)],
    ["Success Rate", (it) => fmt(it.success_rate, "percent", 1)],
    ["p95 Latency", (it) => fmt(it.p95_latency_ms, "ms", 0)],
    ["Avg Tokens", (it) => fmt(it.avg_tokens, "", 0)],
    ["Cost/Request", (it) => fmt(it.cost_per_request, "currencyUSD", 4)],
  ];
  const table = el("table", { class: "compare" },
    el("thead", {}, el("tr", {}, el("th", { class: "text" }, "Metric"),
      items.map((it) => el("th", { "data-item": it.item }, name(it))))),
    el("tbody", {}, rowsDef.map(([label, f]) => el("tr", {}, el("td", { class: "text" }, label),
      items.map((it) => { const t = f(it); return el("td", { "data-item": it.item }, t === null ? unknownSpan() : t); }))),
    el("tr", { class: "winner" }, el("td", { class: "text" }, "Winner"), items.map((it) => el("td", {
      "data-item": it.item, class: it.item === doc.winner ? "win" : "" }, it.item === doc.winner ? "Winner" : "—")))));
  body.replaceChildren(...[
    plan.auto ? el("p", { class: "muted", text: plan.by === "version" ?
      `The busiest versions of ${plan.prompt}; pick versions in the Prompt selector to choose.` :
      "The busiest prompts in this range; pick 2 or 3 in the Prompt selector to choose." }) : null,
    el("div", { class: "table-wrap" }, table),
    el("p", { class: "verdict", "data-winner": doc.winner || "" }, doc.verdict),
    latency[0].latency_per_prompt_ts ? el("div", { class: "grid" }, plan.items.map((item, i) => {
      const box = renderChart("latency_per_prompt_ts", latency[i].latency_per_prompt_ts,
        { title: `Latency: ${name({ item })}` });
      box.dataset.item = item;
      return box;
    })) : null,
    doc.more_calls_needed ? el("p", { class: "muted", text: `More calls needed: ${JSON.stringify(doc.more_calls_needed)}` }) : null,
    el("p", { class: "desc muted", text: `${doc.method}` })].filter(Boolean));
}

// alert_events labels: a Map (alerts_firing) or its toString() text (alert_history): {'k':'v', ...}
function parseLabels(v) {
  if (v && typeof v === "object") return v;
  const out = {};
  for (const m of String(v || "").matchAll(/'((?:[^'\\]|\\.)*)':'((?:[^'\\]|\\.)*)'/g)) out[m[1]] = m[2];
  return out;
}

const LABEL_FILTERS = { service: "service", environment: "environment", model: "model", provider: "provider" };

function seriesLink(row) {
  const labels = parseLabels(row.labels);
  const t = (row.since ?? row.timestamp) * 1000;
  const p = new URLSearchParams({ range: "custom", start: new Date(t - 3600000).toISOString(),
    end: new Date(Math.min(Date.now(), t + 1800000)).toISOString() });
  for (const [k, v] of Object.entries(labels)) {
    if (!v) continue;
    if (LABEL_FILTERS[k]) p.append(LABEL_FILTERS[k], v);
    if (k === "prompt" || k === "prompt_name") p.append("prompt", labels.version ? `${v}@${labels.version}` : v);
  }
  return `${location.pathname}?${p}#performance`;
}

function alertTable(key, data, empty) {
  const t = renderTable(key, data, { empty });
  const li = data.columns.indexOf("labels");
  t.querySelectorAll("tbody tr").forEach((tr, k) => {
    const row = Object.fromEntries(data.columns.map((c, i) => [c, data.rows[k][i]]));
    const a = el("a", { href: seriesLink(row), class: "series-link", text: "series →",
      onclick: (e) => { e.preventDefault(); history.pushState(null, "", a.href); readUrl(); refresh(); } });
    tr.append(el("td", { class: "text" }, a));
    if (li >= 0) tr.querySelector('[data-col="labels"]').textContent =
      Object.entries(parseLabels(row.labels)).filter(([, v]) => v).map(([k, v]) => `${k}=${v}`).join(", ");
  });
  const head = t.querySelector("thead tr");
  if (head) head.append(el("th", { class: "text" }, ""));
  return t;
}

async function renderAlerts(seq) {
  const body = $("#alerts .body");
  const d = await panelData(["alerts_firing", "alert_history", "alert_counts"]);
  if (seq !== renderSeq) return;
  if (!d.alerts_firing.rows.length && !d.alert_history.rows.length) {
    body.replaceChildren(emptyState(`No alert fired or resolved in this range. The processor evaluates the alert rules
      every minute (<code>[alerts]</code> in promptpulse.toml; the built-in rules: error rate over 5 % for 5 minutes,
      p99 over 5 s, success rate under 95 %, daily budget…) and records every state change in
      <code>alert_events</code> — see docs/ALERTS.md.`));
    return;
  }
  body.replaceChildren(
    alertTable("alerts_firing", d.alerts_firing, "Nothing is firing at the end of the range."),
    el("div", { class: "grid" }, renderBars("alert_counts", d.alert_counts, "rule", "fired")),
    alertTable("alert_history", d.alert_history, "No state change in this range."));
}

function settingInput(name, label, value, onChange) {
  return el("label", {}, `${label} `, el("input", { type: "number", step: "any", min: "0", value, "data-setting": name,
    onchange: (e) => onChange(e.target.value) }));
}

async function renderCost(seq, requests) {
  const body = $("#cost .body");
  if (!requests) { body.replaceChildren(emptyState(NO_DATA)); return; }
  const keys = ["cost_stats", "budget_today", "month_projection", "cost_by_prompt_name", "cost_by_model", "cost_pie",
    "daily_spend", "cost_table"];
  const d = await panelData(keys, { daily_budget: state.budget });
  if (seq !== renderSeq) return;
  const noCost = d.cost_stats.rows[0][d.cost_stats.columns.indexOf("Calls without usage")] +
    d.cost_stats.rows[0][d.cost_stats.columns.indexOf("Calls unpriced")];
  body.replaceChildren(
    el("div", { class: "settings" }, settingInput("daily_budget", "Daily budget (USD)", state.budget, (v) => {
      state.budget = v; changed();
    }), noCost ? el("span", { class: "muted", text: `${fmtShort(noCost)} call(s) without a known cost are counted, not priced at $0.` }) : null),
    el("div", { class: "tiles" }, statTiles("cost_stats", d.cost_stats), statTiles("budget_today", d.budget_today),
      statTiles("month_projection", d.month_projection)),
    el("div", { class: "grid" }, renderChart("cost_by_prompt_name", d.cost_by_prompt_name),
      renderChart("cost_by_model", d.cost_by_model), renderPie("cost_pie", d.cost_pie),
      renderChart("daily_spend", d.daily_spend)),
    renderTable("cost_table", d.cost_table));
}

async function renderSla(seq, requests) {
  const body = $("#sla .body");
  if (!requests) { body.replaceChildren(emptyState(NO_DATA)); return; }
  const keys = ["sla_stats", "error_budget", "downtime", "burn_rate", "burn_rate_ts", "sla_daily"];
  const d = await panelData(keys, { slo_target: state.slo });
  if (seq !== renderSeq) return;
  body.replaceChildren(
    el("div", { class: "settings" }, settingInput("slo_target", "Availability SLO (%)", state.slo, (v) => {
      state.slo = v; changed();
    }), el("span", { class: "muted", text: "Targets: p95 < 2000 ms, success ≥ 95 %." })),
    el("div", { class: "tiles" }, statTiles("sla_stats", d.sla_stats), statTiles("error_budget", d.error_budget),
      statTiles("downtime", d.downtime)),
    el("div", { class: "grid" }, renderTable("burn_rate", d.burn_rate), renderChart("burn_rate_ts", d.burn_rate_ts)),
    renderTable("sla_daily", d.sla_daily));
}

// Scores, guardrail checks and judge calls keep no tags (their rollups have none): a chosen tag does not narrow them
function tagNote() {
  const tag = (state.filters.tag || [])[0];
  return tag ? el("p", { class: "note muted", "data-note": "tag", text: `The tag filter (${tag}) does not apply ` +
    "here: scores, guardrail checks and evaluation cost keep no tags, so this section shows every call's." }) : null;
}

async function renderQuality(seq) {
  const body = $("#quality .body");
  const stats = (await panelData(["quality_stats"])).quality_stats;  // the rest only when there are scores
  if (seq !== renderSeq) return;
  const n = stats.rows[0] ? stats.rows[0][stats.columns.indexOf("Scores")] : 0;
  if (!n) {
    body.replaceChildren(...[tagNote(), emptyState(`No quality scores or feedback in this range. Record them from the app —
      <code>promptpulse.score("helpfulness", 0.9)</code> after a call — or
      <code>POST /api/scores</code> with <code>{"trace_id", "span_id", "name", "value"}</code> (docs/API.md).`)]
      .filter(Boolean));
    return;
  }
  const d = await panelData(["quality_ts", "quality_distribution", "feedback_rates", "quality_by_version",
    "lowest_scores", ...GUARDRAILS]);
  if (seq !== renderSeq) return;
  body.replaceChildren(
    ...[tagNote()].filter(Boolean),
    el("div", { class: "tiles" }, statTiles("quality_stats", stats)),
    el("div", { class: "grid" }, renderChart("quality_ts", d.quality_ts),
      renderBars("quality_distribution", d.quality_distribution, "score", "scores")),
    el("div", { class: "grid" }, renderTable("feedback_rates", d.feedback_rates),
      renderTable("quality_by_version", d.quality_by_version)),
    renderGuardrails(d),
    renderTable("lowest_scores", d.lowest_scores, { onRow: (r) => openCall(r.trace_id), hide: ["span_id"] }));
}

// the Quality dashboard's "Guardrails" panels (schemas/014 guardrail_failures), when any guardrail rule checked a call
const GUARDRAILS = ["guardrail_rate", "guardrail_rate_ts", "guardrail_by_type"];

function renderGuardrails(d) {
  const box = el("div", { class: "guardrails", "data-section": "guardrails" }, el("h3", { text: "Guardrails" }));
  const rate = d.guardrail_rate;
  const checks = rate && rate.rows[0] ? rate.rows[0][rate.columns.indexOf("Checks")] : 0;
  if (!checks) {
    box.append(emptyState(`No guardrail checks in this range. Mark a heuristic evaluation rule
      <code>guardrail = true</code> (PII, format, topic, refusal, language) to count its failures here
      (docs/EVALUATION.md).`));
    return box;
  }
  box.append(el("div", { class: "tiles" }, statTiles("guardrail_rate", rate)),
    el("div", { class: "grid" }, renderChart("guardrail_rate_ts", d.guardrail_rate_ts),
      renderTable("guardrail_by_type", d.guardrail_by_type)));
  return box;
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
  if (state.budget !== "100") p.set("daily_budget", state.budget);
  if (state.slo !== "99.9") p.set("slo_target", state.slo);
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
  state.budget = p.get("daily_budget") || "100";
  state.slo = p.get("slo_target") || "99.9";
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
  $("#drill-close").addEventListener("click", () => { state.drill = null; $("#drilldown").hidden = true; });
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
const SECTIONS = [renderPerformance, renderDrill, renderAlerts, renderCost, renderSla, renderQuality];

function reportError(e) {
  if (e instanceof AuthError) { showAuth(Boolean(state.token)); return; }
  showError(`Could not load: ${e.message}`);
}

async function refresh() {
  const seq = ++renderSeq;
  document.body.dataset.loading = "1";
  try {
    charts.splice(0).forEach((c) => c.destroy());
    if (seq === 1) renderTopbar();  // the first screen does not wait for the filter options
    const requests = await renderOverview(seq);
    if (requests === null) return;
    performance.mark(`overview-${seq}`);  // bench/bench_console.py reads these
    // the sections load at once (Compare needs the breakdown's rows); the filter options beside them
    const options = loadOptions().then(() => { if (seq === renderSeq) renderTopbar(); });
    const compared = renderBreakdown(seq, requests).then(() => renderCompare(seq, requests));
    await Promise.all([options, compared, ...SECTIONS.map((render) => render(seq, requests))]);
    if (seq !== renderSeq) return;
    showError(null);
    performance.mark(`rendered-${seq}`);
    $("#last-refresh").textContent = `updated ${new Date().toLocaleTimeString()}`;
    document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes || 0) + 1);
  } catch (e) {
    reportError(e);
  } finally {
    if (seq === renderSeq) delete document.body.dataset.loading;
  }
}

async function start() {
  // the first screen's data does not wait for the panel catalog: both requests are in flight at once
  const first = panelRequest(OVERVIEW);
  first.catch(() => {});  // a refusal (401) is the catalog's to report
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
  state.firstOverview = first;
  setLive();
  await refresh();
}

document.documentElement.style.setProperty("--topbar-h", "48px");
readUrl();
bindTopbar();
start();
