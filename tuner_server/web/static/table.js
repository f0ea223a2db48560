// The trials table: sortable by any column, filterable by state, paged so that a
// 1,000-trial experiment puts only one page of rows in the DOM.
import { durationSeconds, el, fmtDuration, fmtNumber, fmtValue } from "./common.js";

function cmp(a, b) {
  const an = a === null || a === undefined;
  const bn = b === null || b === undefined;
  if (an || bn) return an && bn ? 0 : an ? 1 : -1; // blanks last either way
  if (typeof a === "number" && typeof b === "number") return a - b;
  if (typeof a === "object" || typeof b === "object") {
    // A nested choice's value is an object: compare the JSON the cell shows, as plain text
    // (String() made every one "[object Object]", so the column never sorted; numeric
    // collation would read a decimal's digits after the point as a whole number).
    const [x, y] = [a, b].map((v) => (typeof v === "object" ? JSON.stringify(v) : String(v)));
    return x < y ? -1 : x > y ? 1 : 0;
  }
  return String(a).localeCompare(String(b), undefined, { numeric: true });
}

export class TrialsTable {
  constructor(table, info, expId) {
    this.table = table;
    this.info = info;
    this.expId = expId;
    this.trials = [];
    this.columns = [];
    this.sortKey = "sequence";
    this.sortDir = 1;
    this.page = 0;
    this.pageSize = 50;
    this.stateFilter = "";
    this.bestName = null;
    this.headerKey = "";
  }

  setData(trials, params, metrics, bestName) {
    this.trials = trials;
    this.bestName = bestName;
    const cols = [
      { key: "sequence", label: "#", num: true, get: (t) => t.sequence },
      { key: "name", label: "Trial", get: (t) => t.name },
      { key: "state", label: "State", get: (t) => t.state },
      { key: "value", label: "Value", num: true, get: (t) => t.value },
      ...params.map((p) => ({ key: "param:" + p, label: p, param: true, get: (t) => (t.parameters || {})[p] })),
      // A metric named like a parameter (a trial echoing its input) gets told apart.
      ...metrics.map((m) => ({ key: "metric:" + m, label: params.includes(m) ? `${m} (metric)` : m, num: true,
                                get: (t) => (t.metrics || {})[m] })),
      // Multi-fidelity advisors give trials a budget; final training reruns have a kind.
      ...(trials.some((t) => t.budget !== undefined && t.budget !== null)
        ? [{ key: "budget", label: "Budget", num: true, get: (t) => t.budget }] : []),
      ...(trials.some((t) => t.kind && t.kind !== "search") ? [{ key: "kind", label: "Kind", get: (t) => t.kind }] : []),
      { key: "steps", label: "Steps", num: true, get: (t) => (t.intermediate || []).length },
      { key: "duration", label: "Duration", num: true, get: durationSeconds, show: fmtDuration },
      { key: "log", label: "Log", sortable: false },
    ];
    this.columns = cols;
    const headerKey = cols.map((c) => c.key).join("\u0000");
    if (headerKey !== this.headerKey) { this.headerKey = headerKey; this.renderHeader(); }
    this.render();
  }

  sortBy(key) {
    if (this.sortKey === key) this.sortDir = -this.sortDir;
    else { this.sortKey = key; this.sortDir = 1; }
    this.page = 0;
    this.renderHeader();
    this.render();
  }

  renderHeader() {
    const tr = el("tr");
    for (const c of this.columns) {
      const sorted = c.key === this.sortKey;
      const th = el("th", {
        class: [c.num ? "num" : "", c.sortable === false ? "" : "sortable", c.param ? "param" : ""].join(" ").trim(),
        dataset: { key: c.key },
        "aria-sort": sorted ? (this.sortDir > 0 ? "ascending" : "descending") : null,
      }, c.label, sorted ? (this.sortDir > 0 ? " ▲" : " ▼") : "");
      if (c.sortable !== false) th.addEventListener("click", () => this.sortBy(c.key));
      tr.append(th);
    }
    this.table.tHead.replaceChildren(tr);
  }

  rows() {
    const col = this.columns.find((c) => c.key === this.sortKey) || this.columns[0];
    const list = this.stateFilter ? this.trials.filter((t) => t.state === this.stateFilter) : this.trials.slice();
    const dir = this.sortDir;
    // Blanks stay last whichever way the column is sorted.
    list.sort((a, b) => {
      const x = col.get(a);
      const y = col.get(b);
      const blank = (v) => v === null || v === undefined;
      if (blank(x) || blank(y)) return cmp(x, y) || a.sequence - b.sequence;
      return dir * cmp(x, y) || a.sequence - b.sequence;
    });
    return list;
  }

  render() {
    const list = this.rows();
    const pages = Math.max(1, Math.ceil(list.length / this.pageSize));
    this.page = Math.min(this.page, pages - 1);
    const start = this.page * this.pageSize;
    const shown = list.slice(start, start + this.pageSize);
    const body = this.table.tBodies[0];
    body.replaceChildren(...shown.map((t) => this.row(t)));
    this.info.textContent = list.length
      ? `${start + 1}–${start + shown.length} of ${list.length} trials (page ${this.page + 1}/${pages})`
      : "no trials";
    this.pages = pages;
  }

  row(t) {
    const tr = el("tr", { dataset: { trial: t.name }, class: t.name === this.bestName ? "best" : null });
    for (const c of this.columns) {
      if (c.key === "log") {
        const href = `/ui/api/experiments/${encodeURIComponent(this.expId)}/trials/${encodeURIComponent(t.name)}/log`;
        tr.append(el("td", {}, el("a", { href, target: "_blank", rel: "noopener" }, "log")));
        continue;
      }
      if (c.key === "state") {
        const title = [t.message, t.stopRequested && t.state === "RUNNING" ? "stop requested" : null].filter(Boolean).join("; ");
        tr.append(el("td", { title: title || null }, el("span", { class: "state " + t.state.toLowerCase() }, t.state)));
        continue;
      }
      const v = c.get(t);
      tr.append(el("td", { class: c.num ? "num" : null }, c.show ? c.show(t) : c.num ? fmtNumber(v) : fmtValue(v)));
    }
    return tr;
  }

  next(delta) {
    this.page = Math.max(0, Math.min((this.pages || 1) - 1, this.page + delta));
    this.render();
  }
}
