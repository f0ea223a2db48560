// Shared helpers of AutoTune Web's pages: authenticated JSON fetches (the session cookie,
// never a token), formatting, and a poller that pauses while the tab is hidden.

export class Unauthorized extends Error {}

export async function getJSON(path) {
  const r = await fetch(path, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (r.status === 401) {
    // The session ended (logout, expiry, server restart): back to the login form.
    location.assign("/ui/login?next=" + encodeURIComponent(location.pathname));
    throw new Unauthorized("not logged in");
  }
  if (!r.ok) {
    let detail = r.statusText;
    try { detail = (await r.json()).detail || detail; } catch (_) { /* not JSON */ }
    throw new Error(`${path}: ${r.status} ${detail}`);
  }
  return r.json();
}

export function fmtNumber(v) {
  if (v === null || v === undefined) return "";
  if (typeof v !== "number") return String(v);
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e6) ? v.toExponential(3) : String(Number(v.toPrecision(5)));
}

export function fmtValue(v) {
  if (v === null || v === undefined) return "";
  if (typeof v === "number") return fmtNumber(v);
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

export function fmtTime(ts) {
  if (!ts) return "";
  return new Date(ts * 1000).toLocaleString();
}

export function fmtDuration(t) {
  if (!t.started) return "";
  const end = t.ended || Date.now() / 1000;
  const s = Math.max(0, end - t.started);
  if (s < 60) return s.toFixed(1) + " s";
  if (s < 3600) return (s / 60).toFixed(1) + " min";
  return (s / 3600).toFixed(2) + " h";
}

export function durationSeconds(t) {
  if (!t.started) return null;
  return (t.ended || Date.now() / 1000) - t.started;
}

// Build an element: el("td", {class: "num"}, "text", child, ...). Text is never parsed as HTML.
export function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "dataset") Object.assign(e.dataset, v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

export function showError(err) {
  if (err instanceof Unauthorized) return;
  const p = document.getElementById("error");
  if (p) { p.textContent = String(err.message || err); p.hidden = false; }
  console.warn(err);
}

export function clearError() {
  const p = document.getElementById("error");
  if (p) p.hidden = true;
}

export function setLive(text) {
  const s = document.getElementById("live");
  if (s) s.textContent = text;
}

// Calls fn now and then every `ms`, never overlapping, skipping while the page is hidden.
export function poll(fn, ms = 2000) {
  let timer = null;
  const tick = async () => {
    timer = null;
    if (!document.hidden) {
      try { await fn(); clearError(); } catch (e) { showError(e); }
    }
    timer = setTimeout(tick, ms);
  };
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && timer !== null) { clearTimeout(timer); tick(); }
  });
  return tick();
}
