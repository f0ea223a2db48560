// One experiment: counts, best trial, the trials table and the charts, kept live by
// polling. A poll that finds the same revision touches nothing; a new revision re-renders
// the table and the visible chart, and marks the hidden charts to redraw when shown.
import { el, fmtNumber, fmtTime, fmtValue, getJSON, poll, setLive, showError } from "./common.js";
import { curvesOption, historyOption, importanceInfo, importanceOption, paretoOption, parallelOption, scatterOption } from "./charts.js";
import { dimensions, metricNames, paramNames, paretoNames, paretoObjectives } from "./model.js";
import { TrialsTable } from "./table.js";

const expId = decodeURIComponent(location.pathname.replace(/^\/ui\/experiments\//, "").replace(/\/$/, ""));
const base = `/ui/api/experiments/${encodeURIComponent(expId)}`;
const VIEWS = ["overview", "trials", "curves", "parallel", "scatter", "pareto"];
const STATES = ["WAITING", "RUNNING", "SUCCEEDED", "FAILED", "EARLY_STOPPED", "STOPPED"];

const state = {
  summary: null, trials: [], revision: null, params: [], metrics: [], view: "overview", importance: null,
  dirty: new Set(VIEWS), charts: {}, firstRender: null,
  resized: new Set(), // views whose chart missed a window resize while hidden
};
const CHART_OF = { overview: "history", curves: "curves", parallel: "parallel", scatter: "scatter", pareto: "pareto" };
const table = new TrialsTable(document.getElementById("trials"), document.getElementById("table-info"), expId);
// For tests and the benchmark: the live state and the chart instances, never a secret.
window.autotuneUI = state;

function chart(id) {
  if (!state.charts[id]) state.charts[id] = echarts.init(document.getElementById("chart-" + id), null, { renderer: "canvas" });
  return state.charts[id];
}

function bestName() {
  return state.summary && state.summary.bestTrial ? state.summary.bestTrial.name : null;
}

function renderHeader() {
  const s = state.summary;
  document.getElementById("exp-name").textContent = s.name;
  document.title = `AutoTune Web · ${s.name}`;
  const ph = document.getElementById("phase");
  ph.textContent = s.phase;
  ph.className = "phase " + String(s.phase).toLowerCase();
  const c = s.trials;
  const chips = [["total", c.total], ["waiting", c.waiting], ["running", c.running], ["succeeded", c.succeeded],
                 ["failed", c.failed], ["early-stopped", c.earlyStopped], ["stopped", c.stopped]];
  document.getElementById("counts").replaceChildren(
    ...chips.map(([k, v]) => el("span", { class: "chip " + k, dataset: { count: k } }, el("b", {}, v ?? 0), " " + k)));
  const paretoTab = document.querySelector('#tabs [data-view="pareto"]');
  paretoTab.hidden = paretoNames(s) === null;
}

function kv(rows) {
  return el("dl", { class: "kv" }, ...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
}

function renderOverview() {
  const s = state.summary;
  const best = s.bestTrial;
  const bestBody = document.querySelector("#best .body");
  if (best) {
    const full = state.trials.find((t) => t.name === best.name);
    const logHref = `${base}/trials/${encodeURIComponent(best.name)}/log`;
    bestBody.className = "body";
    bestBody.replaceChildren(kv([
      ["trial", best.name], [`value (${s.optimizeMode})`, fmtNumber(best.value)],
      ...Object.entries(best.parameters || {}).map(([k, v]) => [k, typeof v === "object" ? JSON.stringify(v) : fmtNumber(v)]),
      // fmtValue: a metric may hold a dict or a list (per-class scores), shown as JSON.
      ...(full && full.metrics ? Object.entries(full.metrics).filter(([k]) => k !== "default").map(([k, v]) => [`${k} (metric)`, fmtValue(v)]) : []),
    ]), el("a", { href: logHref, target: "_blank", rel: "noopener" }, "trial log"));
  } else if (Array.isArray(s.bestTrials) && s.bestTrials.length) {
    // Multi-objective: no single best; the best trial of each objective.
    bestBody.className = "body";
    bestBody.replaceChildren(kv(s.bestTrials.map((b) => [
      `best ${b.objective} (${b.optimizeMode})`,
      `${b.name}: ${Object.entries(b.values || {}).map(([k, v]) => `${k}=${fmtNumber(v)}`).join(", ")}`,
    ])));
  } else {
    // No best (yet): say so, or an experiment deleted and created again under this id
    // (the page keeps polling it) would go on showing the old one's best trial.
    bestBody.className = "body muted";
    bestBody.replaceChildren("no trial has succeeded yet");
  }
  const front = paretoNames(s);
  document.querySelector("#about .body").replaceChildren(kv([
    ["id", s.experimentId], ["tuner", s.tuner], ["assessor", s.assessor || "none"], ["objective", s.optimizeMode],
    ["created", fmtTime(s.created)],
    ...state.params.map((p) => {
      const spec = s.searchSpace && s.searchSpace[p];
      return [p, spec && spec._type ? `${spec._type} ${JSON.stringify(spec._value)}` : "parameter"];
    }),
    ...(front ? [["Pareto front", `${front.length} trials`]] : []),
  ]));
  chart("history").setOption(historyOption(state.trials, s.optimizeMode), { notMerge: true });
}

function fillSelect(sel, dims, wanted) {
  const keys = dims.map((d) => d.key).join("|");
  if (sel.dataset.keys !== keys) {
    const keep = sel.value;
    sel.replaceChildren(...dims.map((d) => el("option", { value: d.key }, d.label)));
    sel.dataset.keys = keys;
    sel.value = dims.some((d) => d.key === keep) ? keep : wanted;
  }
}

function renderScatter() {
  const dims = dimensions(state.params, state.metrics, state.trials.some((t) => t.budget != null));
  const x = document.getElementById("scatter-x");
  const y = document.getElementById("scatter-y");
  fillSelect(x, dims, state.params.length ? "param:" + state.params[0] : "sequence");
  fillSelect(y, dims, "objective");
  chart("scatter").setOption(scatterOption(state.trials, x.value, y.value, bestName()), { notMerge: true });
}

function renderPareto() {
  const names = paretoNames(state.summary);
  if (names === null) return;
  const dims = dimensions(state.params, state.metrics, state.trials.some((t) => t.budget != null)).filter((d) => d.key === "objective" || d.key.startsWith("metric:"));
  const [dx, dy] = paretoObjectives(state.summary, state.metrics);
  const x = document.getElementById("pareto-x");
  const y = document.getElementById("pareto-y");
  fillSelect(x, dims, dx);
  fillSelect(y, dims, dy || dx);
  chart("pareto").setOption(paretoOption(state.trials, names, x.value, y.value), { notMerge: true });
}

// The importance panel beside parallel coordinates: asked for when that view draws (the
// server recomputes only for a new revision), drawn when the answer is for a new one.
async function renderImportance() {
  const report = await getJSON(`${base}/importance`);
  if (state.importance && state.importance.revision === report.revision) return;
  state.importance = report;
  document.getElementById("importance-info").textContent = importanceInfo(report);
  chart("importance").setOption(importanceOption(report), { notMerge: true });
}

const RENDER = {
  overview: renderOverview,
  trials: () => table.setData(state.trials, state.params, state.metrics, bestName()),
  curves: () => chart("curves").setOption(curvesOption(state.trials, bestName()), { notMerge: true }),
  parallel: () => {
    chart("parallel").setOption(
      parallelOption(state.trials, state.params, state.summary.searchSpace, state.summary.optimizeMode, bestName()), { notMerge: true });
    renderImportance().catch((e) => showError(e));
  },
  scatter: renderScatter,
  pareto: renderPareto,
};

function renderView(view) {
  if (!state.summary || !state.dirty.has(view)) return;
  state.dirty.delete(view);
  RENDER[view]();
}

function show(view) {
  if (!VIEWS.includes(view)) view = "overview";
  state.view = view;
  for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("active", b.dataset.view === view);
  for (const v of VIEWS) document.getElementById("view-" + v).hidden = v !== view;
  if (history.replaceState) history.replaceState(null, "", "#" + view);
  const c = state.charts[CHART_OF[view]];
  if (c && state.resized.has(view)) {
    state.resized.delete(view);
    c.resize();
    if (view === "parallel" && state.charts.importance) state.charts.importance.resize();
  }
  renderView(view);
}

// A partial answer holds only the trials that changed: replace those, add new ones.
function merge(trials, changed) {
  const byName = new Map(trials.map((t) => [t.name, t]));
  for (const t of changed) byName.set(t.name, t);
  return [...byName.values()].sort((a, b) => a.sequence - b.sequence);
}

async function refresh() {
  const [summary, t] = await Promise.all([
    getJSON(base),
    getJSON(`${base}/trials` + (state.revision ? `?rev=${encodeURIComponent(state.revision)}` : "")),
  ]);
  setLive("live · updated " + new Date().toLocaleTimeString());
  const summaryChanged = JSON.stringify(summary) !== JSON.stringify(state.summary);
  if (t.unchanged && !summaryChanged) return;
  state.summary = summary;
  if (!t.unchanged) {
    state.trials = t.full === false ? merge(state.trials, t.trials) : t.trials;
    state.lastFetch = { full: t.full !== false, trials: t.trials.length };
    state.revision = t.revision;
    state.params = paramNames(state.trials, summary.searchSpace);
    state.metrics = metricNames(state.trials);
  }
  renderHeader();
  state.dirty = new Set(VIEWS);
  // The trials table is cheap (one page) and the count of rows is what people check
  // first, so keep it current even when another view is showing.
  renderView("trials");
  renderView(state.view);
  if (state.firstRender === null) {
    state.firstRender = performance.now();
    performance.mark("autotune:first-render");
    document.body.dataset.loaded = "1";
  }
  document.body.dataset.revision = state.revision;
}

// ----- wiring -----
for (const b of document.querySelectorAll("#tabs button")) b.addEventListener("click", () => show(b.dataset.view));
const filter = document.getElementById("state-filter");
filter.append(...STATES.map((s) => el("option", { value: s }, s.toLowerCase().replace("_", "-"))));
filter.addEventListener("change", () => { table.stateFilter = filter.value; table.page = 0; table.render(); });
document.getElementById("page-size").addEventListener("change", (e) => { table.pageSize = Number(e.target.value); table.page = 0; table.render(); });
document.getElementById("prev").addEventListener("click", () => table.next(-1));
document.getElementById("next").addEventListener("click", () => table.next(1));
for (const id of ["scatter-x", "scatter-y"]) document.getElementById(id).addEventListener("change", () => { state.dirty.add("scatter"); renderView("scatter"); });
for (const id of ["pareto-x", "pareto-y"]) document.getElementById(id).addEventListener("change", () => { state.dirty.add("pareto"); renderView("pareto"); });
// A hidden chart has no size: resize only the visible one now, the others when shown.
window.addEventListener("resize", () => {
  for (const v of VIEWS) if (CHART_OF[v]) state.resized.add(v);
  const c = state.charts[CHART_OF[state.view]];
  if (c) { state.resized.delete(state.view); c.resize(); }
  if (state.view === "parallel" && state.charts.importance) state.charts.importance.resize();
});
window.addEventListener("hashchange", () => show(location.hash.slice(1)));

show(location.hash.slice(1) || "overview");
poll(refresh);
