// What the charts and the table need from the raw trials: parameter and metric names,
// one accessor per plottable dimension, and the objective's direction. No DOM here.
import { durationSeconds } from "./common.js";

export const STATE_COLORS = {
  SUCCEEDED: "#3b6fd4", EARLY_STOPPED: "#e8883a", FAILED: "#d43b3b",
  RUNNING: "#2ea44f", WAITING: "#9aa0a6", STOPPED: "#7a5cc4",
};

export function paramNames(trials, space) {
  const names = [];
  const seen = new Set();
  for (const n of Object.keys(space && typeof space === "object" ? space : {})) { names.push(n); seen.add(n); }
  for (const t of trials) for (const n of Object.keys(t.parameters || {})) if (!seen.has(n)) { seen.add(n); names.push(n); }
  return names;
}

export function metricNames(trials) {
  // Numeric keys of reported metric dicts besides "default" (that one is the objective).
  const names = new Set();
  for (const t of trials) {
    const m = t.metrics;
    if (m && typeof m === "object") for (const [k, v] of Object.entries(m)) if (k !== "default" && typeof v === "number") names.add(k);
  }
  return [...names].sort();
}

// Dimensions are "sequence", "objective", "duration", "param:NAME" or "metric:NAME".
export function dimensions(params, metrics, withBudget = false) {
  return [
    { key: "objective", label: "objective" },
    ...params.map((p) => ({ key: "param:" + p, label: p })),
    ...metrics.map((m) => ({ key: "metric:" + m, label: m })),
    { key: "sequence", label: "trial #" },
    ...(withBudget ? [{ key: "budget", label: "budget" }] : []),
    { key: "duration", label: "duration (s)" },
  ];
}

export function dimValue(t, key) {
  if (key === "objective") return t.value;
  if (key === "sequence") return t.sequence;
  if (key === "duration") return durationSeconds(t);
  if (key === "budget") return t.budget ?? null;
  if (key.startsWith("param:")) {
    const v = (t.parameters || {})[key.slice(6)];
    return v !== null && typeof v === "object" ? JSON.stringify(v) : v;
  }
  if (key.startsWith("metric:")) {
    const m = t.metrics;
    const v = m && typeof m === "object" ? m[key.slice(7)] : undefined;
    return typeof v === "number" ? v : null;
  }
  return null;
}

export function dimLabel(key) {
  if (key.includes(":")) return key.slice(key.indexOf(":") + 1);
  return key === "sequence" ? "trial #" : key === "duration" ? "duration (s)" : key;
}

// A dimension is categorical when any of its values is not a number.
export function axisFor(values) {
  const present = values.filter((v) => v !== null && v !== undefined);
  if (present.every((v) => typeof v === "number")) return { type: "value" };
  const cats = [...new Set(present.map(String))].sort();
  return { type: "category", data: cats };
}

export function paretoNames(summary) {
  const front = summary && summary.paretoFront;
  if (!Array.isArray(front)) return null;
  return front.map((x) => (typeof x === "string" ? x : x && (x.name || x.trialId || x.id))).filter(Boolean);
}

// The objectives a multi-objective summary names, as dimension keys, when it names them.
export function paretoObjectives(summary, metrics) {
  const raw = summary && (summary.objectives || summary.metrics);
  const names = [];
  if (Array.isArray(raw)) {
    for (const o of raw) {
      const n = typeof o === "string" ? o : o && (o.name || o.metric || o.key);
      if (n) names.push(n);
    }
  }
  const keys = names.map((n) => (n === "default" ? "objective" : "metric:" + n));
  if (keys.length >= 2) return keys;
  return metrics.length >= 2 ? metrics.slice(0, 2).map((m) => "metric:" + m) : ["objective", ...(metrics[0] ? ["metric:" + metrics[0]] : [])];
}
