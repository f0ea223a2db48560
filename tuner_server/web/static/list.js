// The experiments page: one row per experiment, refreshed every 2 s.
import { el, fmtNumber, fmtTime, getJSON, poll, setLive } from "./common.js";

const body = document.querySelector("#experiments tbody");
let last = "";

function row(e) {
  const c = e.trials || {};
  const best = e.bestTrial;
  return el("tr", { dataset: { experiment: e.experimentId } },
    el("td", {}, el("a", { href: "/ui/experiments/" + encodeURIComponent(e.experimentId) }, e.name)),
    el("td", {}, el("span", { class: "phase " + String(e.phase).toLowerCase() }, e.phase)),
    el("td", {}, e.optimizeMode),
    el("td", { class: "num" }, c.total ?? 0),
    el("td", { class: "num" }, c.running ?? 0),
    el("td", { class: "num" }, c.succeeded ?? 0),
    el("td", { class: "num" }, c.failed ?? 0),
    el("td", { class: "num" }, c.earlyStopped ?? 0),
    el("td", { class: "num" }, best ? fmtNumber(best.value) : Array.isArray(e.paretoFront) ? `Pareto front: ${e.paretoFront.length}` : ""),
    el("td", {}, best ? best.name : ""),
    el("td", {}, fmtTime(e.created)),
  );
}

async function refresh() {
  const list = await getJSON("/ui/api/experiments");
  const key = JSON.stringify(list);
  setLive("updated " + new Date().toLocaleTimeString());
  if (key === last) return; // nothing changed: leave the DOM alone
  last = key;
  body.replaceChildren(...list.map(row));
  document.getElementById("empty").hidden = list.length > 0;
  document.body.dataset.loaded = "1";
}

poll(refresh);
