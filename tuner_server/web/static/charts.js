// ECharts options for each view, built from the trials. Pure functions: data in, option out.
import { fmtNumber } from "./common.js";
import { STATE_COLORS, axisFor, dimLabel, dimValue } from "./model.js";

// Tooltips are HTML: every name or value in one is escaped (parameter names and choice
// values come from whoever wrote the experiment).
const ESC = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
const esc = (v) => String(v).replace(/[&<>"']/g, (c) => ESC[c]);
const num = (v) => esc(fmtNumber(v));

const X_MARK = "path://M2,0L5,3L8,0L10,2L7,5L10,8L8,10L5,7L2,10L0,8L3,5L0,2Z";
const BIG = 200; // above this many trials: thinner, fainter lines

// No animation: charts redraw on every live update, and an animated redraw of hundreds
// of series costs frames for nothing.
const base = (n) => ({
  animation: false,
  grid: { left: 64, right: 32, top: 48, bottom: 56, containLabel: true },
  tooltip: { trigger: "item", confine: true },
  textStyle: { fontFamily: "system-ui, sans-serif" },
});

// Objective per trial with the best-so-far line: how the search converged.
export function historyOption(trials, mode) {
  const better = mode === "minimize" ? (a, b) => a < b : (a, b) => a > b;
  const points = [];
  const bestLine = [];
  let best = null;
  for (const t of [...trials].sort((a, b) => a.sequence - b.sequence)) {
    if (t.value === null || t.value === undefined) continue;
    points.push({ value: [t.sequence, t.value], name: t.name, itemStyle: { color: STATE_COLORS[t.state] } });
    if (t.state === "SUCCEEDED" && (best === null || better(t.value, best))) best = t.value;
    if (best !== null) bestLine.push([t.sequence, best]);
  }
  return {
    ...base(trials.length),
    legend: { top: 4, right: 16 },
    xAxis: { type: "value", name: "trial #", nameLocation: "middle", nameGap: 28, minInterval: 1, axisLine: { onZero: false } },
    yAxis: { type: "value", name: "objective", scale: true, axisLine: { onZero: false }, nameTextStyle: { align: "left" } },
    dataZoom: [{ type: "inside" }],
    series: [
      { name: "trial value", type: "scatter", data: points, symbolSize: trials.length > BIG ? 5 : 8, large: trials.length > 2000,
        tooltip: { formatter: (p) => `${esc(p.name)}<br>value ${num(p.value[1])}` } },
      { name: `best so far (${mode})`, type: "line", step: "end", data: bestLine, showSymbol: false, lineStyle: { width: 2, color: "#222" },
        itemStyle: { color: "#222" }, tooltip: { show: false } },
    ],
  };
}

// One line per trial that reported intermediate results; early-stopped ones dashed, with
// a ✕ where they were stopped (one extra scatter series holds all those marks).
export function curvesOption(trials, bestName) {
  const withCurves = trials.filter((t) => t.intermediate && t.intermediate.length);
  const many = withCurves.length > BIG;
  const series = many ? packedCurves(withCurves, bestName) : withCurves.map((t) => {
    const early = t.state === "EARLY_STOPPED";
    const isBest = t.name === bestName;
    return {
      name: early ? `${t.name} (early-stopped)` : t.name,
      type: "line",
      data: t.intermediate.map((v, i) => [i, v]),
      showSymbol: false,
      symbol: "none",
      smooth: false,
      z: isBest ? 5 : 2,
      lineStyle: {
        width: isBest ? 3 : many ? 1 : 1.5,
        type: early ? "dashed" : "solid",
        opacity: isBest ? 1 : many ? 0.45 : 0.85,
        color: isBest ? "#111" : STATE_COLORS[t.state],
      },
      itemStyle: { color: isBest ? "#111" : STATE_COLORS[t.state] },
      emphasis: { focus: "series", lineStyle: { width: 3, opacity: 1 } },
      tooltip: { formatter: (p) => `${esc(t.name)} (${esc(t.state.toLowerCase())})<br>step ${num(p.value[0])}: ${num(p.value[1])}` },
    };
  });
  const stops = withCurves.filter((t) => t.state === "EARLY_STOPPED").map((t) => ({
    name: t.name, value: [t.intermediate.length - 1, t.intermediate[t.intermediate.length - 1]],
  }));
  if (stops.length) {
    series.push({
      name: "early stop", type: "scatter", data: stops, symbol: X_MARK, symbolSize: 9, z: 6,
      itemStyle: { color: STATE_COLORS.EARLY_STOPPED },
      tooltip: { formatter: (p) => `${esc(p.name)} stopped early at step ${num(p.value[0])}` },
    });
  }
  return {
    ...base(withCurves.length),
    xAxis: { type: "value", name: "step", nameLocation: "middle", nameGap: 28, minInterval: 1, axisLine: { onZero: false } },
    yAxis: { type: "value", name: "intermediate metric", scale: true, axisLine: { onZero: false }, nameTextStyle: { align: "left" } },
    dataZoom: [{ type: "inside" }, { type: "slider", height: 18, bottom: 6 }],
    series,
  };
}

// Above BIG trials, one series per state (trials separated by gaps) instead of one per
// trial: ECharts pays per series, and 1,000 series block the page for most of a second.
// Each point carries its trial's index so the tooltip still names the trial.
function packedCurves(withCurves, bestName) {
  const groups = new Map();
  for (const [k, t] of withCurves.entries()) {
    const key = t.name === bestName ? "BEST" : t.state;
    if (!groups.has(key)) groups.set(key, []);
    const data = groups.get(key);
    t.intermediate.forEach((v, i) => data.push([i, v, k]));
    data.push(["-", "-", k]); // a gap: the next trial's line starts afresh
  }
  return [...groups.entries()].map(([key, data]) => {
    const isBest = key === "BEST";
    const color = isBest ? "#111" : STATE_COLORS[key];
    const n = data.filter((d) => d[0] === "-").length;
    return {
      name: isBest ? `best trial ${bestName}` : `${key.toLowerCase().replace("_", "-")} (${n} trials)`,
      type: "line", data, showSymbol: false, symbol: "none", connectNulls: false, z: isBest ? 5 : 2,
      lineStyle: { width: isBest ? 3 : 1, opacity: isBest ? 1 : 0.35, color, type: key === "EARLY_STOPPED" ? "dashed" : "solid" },
      itemStyle: { color }, emphasis: { disabled: true },
      tooltip: { formatter: (p) => `${esc(withCurves[p.value[2]].name)}<br>step ${num(p.value[0])}: ${num(p.value[1])}` },
    };
  });
}

// Parameters vs. the objective: one axis per parameter, the objective last.
export function parallelOption(trials, params, space, mode, bestName) {
  const rows = trials.filter((t) => t.value !== null && t.value !== undefined);
  const keys = [...params.map((p) => "param:" + p), "objective"];
  const axes = keys.map((k, i) => {
    const a = axisFor(rows.map((t) => dimValue(t, k)));
    const spec = space && k.startsWith("param:") ? space[k.slice(6)] : null;
    const logScale = a.type === "value" && spec && /log/.test(spec._type || "") && rows.every((t) => dimValue(t, k) > 0);
    return { dim: i, name: dimLabel(k), type: logScale ? "log" : a.type, data: a.data, scale: true,
             nameTextStyle: { fontWeight: k === "objective" ? "bold" : "normal" } };
  });
  const toRow = (t) => keys.map((k) => { const v = dimValue(t, k); return v === undefined ? null : v; });
  const values = rows.map((t) => t.value);
  const lo = values.length ? Math.min(...values) : 0;
  const hi = values.length ? Math.max(...values) : 1;
  const many = rows.length > BIG;
  const best = rows.find((t) => t.name === bestName);
  const series = [{
    name: "trials", type: "parallel", data: rows.map((t) => ({ name: t.name, value: toRow(t) })),
    lineStyle: { width: 1, opacity: many ? 0.25 : 0.6 }, progressive: 500, smooth: false,
    emphasis: { lineStyle: { width: 3, opacity: 1 } },
  }];
  if (best) series.push({ name: "best trial", type: "parallel", data: [{ name: best.name, value: toRow(best) }],
                          lineStyle: { width: 4, opacity: 1, color: "#111" }, z: 5 });
  return {
    animation: false,
    tooltip: { trigger: "item", confine: true, formatter: (p) => esc(p.name) },
    parallel: { left: 60, right: 110, top: 50, bottom: 40, parallelAxisDefault: { nameLocation: "end", nameGap: 16 } },
    parallelAxis: axes,
    visualMap: {
      type: "continuous", dimension: keys.length - 1, min: lo, max: hi === lo ? lo + 1 : hi, seriesIndex: 0,
      inRange: { color: mode === "minimize" ? ["#1a9850", "#fee08b", "#d73027"] : ["#d73027", "#fee08b", "#1a9850"] },
      right: 8, top: "middle", calculable: true, text: ["objective", ""], itemHeight: 160,
    },
    series,
  };
}

// Any two dimensions against each other, one series per trial state.
export function scatterOption(trials, xKey, yKey, bestName) {
  const xs = axisFor(trials.map((t) => dimValue(t, xKey)));
  const ys = axisFor(trials.map((t) => dimValue(t, yKey)));
  const byState = new Map();
  let best = null;
  for (const t of trials) {
    const x = dimValue(t, xKey);
    const y = dimValue(t, yKey);
    if (x === null || x === undefined || y === null || y === undefined) continue;
    const point = { name: t.name, value: [xs.type === "category" ? String(x) : x, ys.type === "category" ? String(y) : y] };
    if (!byState.has(t.state)) byState.set(t.state, []);
    byState.get(t.state).push(point);
    if (t.name === bestName) best = point;
  }
  const series = [...byState.entries()].map(([state, data]) => ({
    name: state.toLowerCase().replace("_", "-"), type: "scatter", data, symbolSize: trials.length > BIG ? 6 : 10,
    itemStyle: { color: STATE_COLORS[state], opacity: 0.8 }, large: data.length > 2000,
  }));
  if (best) series.push({ name: "best trial", type: "scatter", data: [best], symbol: "diamond", symbolSize: 18, z: 5,
                          itemStyle: { color: "#111" } });
  const fmt = (p) => `${esc(p.name)}<br>${esc(dimLabel(xKey))}: ${num(p.value[0])}<br>${esc(dimLabel(yKey))}: ${num(p.value[1])}`;
  return {
    ...base(trials.length),
    legend: { top: 4, right: 16 },
    tooltip: { trigger: "item", confine: true, formatter: fmt },
    xAxis: { ...xs, name: dimLabel(xKey), nameLocation: "middle", nameGap: 28, scale: true, axisLine: { onZero: false } },
    yAxis: { ...ys, name: dimLabel(yKey), scale: true, axisLine: { onZero: false }, nameTextStyle: { align: "left" } },
    series,
  };
}

// Two objectives of a multi-objective experiment; the server's Pareto front highlighted
// and joined in order of the x objective.
export function paretoOption(trials, frontNames, xKey, yKey) {
  const front = new Set(frontNames);
  const all = [];
  const onFront = [];
  for (const t of trials) {
    // Final-training reruns are not on the front (the search trials' front): drawn, one
    // would sit on its front member's point as a "dominated" trial.
    if (t.kind === "final") continue;
    const x = dimValue(t, xKey);
    const y = dimValue(t, yKey);
    if (typeof x !== "number" || typeof y !== "number") continue;
    (front.has(t.name) ? onFront : all).push({ name: t.name, value: [x, y] });
  }
  onFront.sort((a, b) => a.value[0] - b.value[0]);
  const fmt = (p) => `${esc(p.name)}<br>${esc(dimLabel(xKey))}: ${num(p.value[0])}<br>${esc(dimLabel(yKey))}: ${num(p.value[1])}`;
  return {
    ...base(trials.length),
    legend: { top: 4, right: 16 },
    tooltip: { trigger: "item", confine: true, formatter: fmt },
    xAxis: { type: "value", name: dimLabel(xKey), nameLocation: "middle", nameGap: 28, scale: true, axisLine: { onZero: false } },
    yAxis: { type: "value", name: dimLabel(yKey), scale: true, axisLine: { onZero: false }, nameTextStyle: { align: "left" } },
    series: [
      { name: "dominated trials", type: "scatter", data: all, symbolSize: 8, itemStyle: { color: "#9aa0a6", opacity: 0.7 } },
      { name: "Pareto front", type: "line", data: onFront, symbol: "circle", symbolSize: 12, z: 5,
        lineStyle: { color: "#d43b3b", width: 2 }, itemStyle: { color: "#d43b3b" } },
    ],
  };
}

// Parameter importance (the server's PED-ANOVA answer): one horizontal bar per parameter,
// the most important on top; one series per objective when there are several.
export function importanceOption(report) {
  const usable = ((report && report.results) || []).filter((r) => !r.reason && r.importances.length);
  const first = usable[0];
  // Order by the first objective's ranking; ECharts draws category 0 at the bottom.
  const names = first ? first.importances.map((p) => p.parameter).reverse() : [];
  const series = usable.map((r) => {
    const by = new Map(r.importances.map((p) => [p.parameter, p.importance]));
    return {
      name: r.objective === "default" ? "objective" : r.objective,
      type: "bar", data: names.map((n) => by.get(n) ?? 0), barMaxWidth: 18,
      label: { show: usable.length === 1, position: "right", formatter: (p) => fmtNumber(Math.round(p.value * 100) / 100) },
    };
  });
  if (!usable.length) {
    return { animation: false, title: { text: "no result yet", left: "center", top: "middle",
             textStyle: { color: "#6b7280", fontSize: 13, fontWeight: "normal" } }, series: [] };
  }
  return {
    animation: false,
    grid: { left: 8, right: 40, top: usable.length > 1 ? 28 : 8, bottom: 24, containLabel: true },
    // One scrolling line: a wrapped legend (many objectives) ran over the bars below it.
    legend: usable.length > 1 ? { top: 0, type: "scroll" } : undefined,
    tooltip: { trigger: "axis", axisPointer: { type: "shadow" }, confine: true,
               formatter: (ps) => `${esc(ps[0].name)}<br>` + ps.map((p) => `${esc(p.seriesName)}: ${num(Math.round(p.value * 1000) / 1000)}`).join("<br>") },
    xAxis: { type: "value", min: 0, max: 1, interval: 0.25 },
    yAxis: { type: "category", data: names, axisLabel: { width: 150, overflow: "truncate" } },
    series,
  };
}

// The sentence above the chart: the method, how many trials it used, or why there is none.
export function importanceInfo(report) {
  const results = (report && report.results) || [];
  if (!results.length) return "";
  // The first objective with a result (the chart draws those): the first one's reason
  // alone said "no result yet" above the bars of the others.
  const r = results.find((x) => !x.reason) || results[0];
  const at = r.budget != null ? ` at budget ${r.budget}` : "";
  if (r.reason) return `${report.method}: no result yet (${r.reason}${at}).`;
  const drawn = results.filter((x) => !x.reason).length;
  const many = drawn > 1 ? `, one per objective` : "";
  const missing = results.filter((x) => x.reason).map((x) => `${x.objective}: ${x.reason}`);
  const none = missing.length ? ` No result for ${missing.join("; ")}.` : "";
  return `${report.method}, ${r.trials} succeeded trials${at}; best ${r.topTrials} vs all${many}.${none}`;
}
