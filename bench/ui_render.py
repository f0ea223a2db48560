"""AutoTune Web with 1,000 trials: time to first render in headless Chromium (not a test).

Usage: python bench/ui_render.py [--trials 1000] [--steps 20] [--runs 3] [--screenshots DIR]

Writes a synthetic history (Random tuner, 4 parameters, an intermediate curve of --steps
points per trial, a fifth of the trials early-stopped) through the engine into SQLite,
starts `python -m tuner_server` on it, logs Debian's chromium in with the viewer token and
then, --runs times per view, loads the experiment page opened on that view and reads:

- first render: the page's own `autotune:first-render` mark (navigation start -> the
  summary, the table page and the view's chart drawn), in ms;
- long tasks: main-thread tasks over 50 ms (PerformanceObserver 'longtask') up to then,
  their count and the longest, i.e. how long the page could not respond;
- then a tab switch into each other view (its chart drawn from the same data).

Also the size of the full trials JSON and of an unchanged live-update poll.
Prints a table and writes bench/results/ui_render.json.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ADMIN = "bench-admin-token-0123456789"
VIEWER = "bench-viewer-token-0123456789"
CHROMIUM = os.environ.get("AUTOTUNE_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWS = ["overview", "trials", "curves", "parallel", "scatter"]
EXP = "bench-1000"
# Registered before any page script runs; CDP injects it, so the page's CSP does not apply.
LONGTASKS = """
window.__longtasks = [];
new PerformanceObserver((l) => { for (const e of l.getEntries()) window.__longtasks.push([e.startTime, e.duration]); })
  .observe({ type: "longtask", buffered: true });
"""


def build_history(db: Path, trials: int, steps: int) -> None:
    from tuner_server.engine import Engine, ExperimentConfig
    from tuner_server.store import Store

    store = Store(db)
    # Synthetic data only: skip the per-write fsync so 20,000 reports take seconds.
    store._db.execute("PRAGMA synchronous=OFF")
    engine = Engine(store)
    space = {
        "learning_rate": {"_type": "loguniform", "_value": [1e-4, 1e-1]},
        "dropout": {"_type": "uniform", "_value": [0.0, 0.6]},
        "optimizer": {"_type": "choice", "_value": ["sgd", "adam", "rmsprop"]},
        "batch_size": {"_type": "choice", "_value": [32, 64, 128, 256]},
    }
    cfg = ExperimentConfig(searchSpace=json.dumps(space), tuner={"name": "Random"}, optimizeMode="maximize")
    engine.register(EXP, EXP, cfg)
    rng = np.random.default_rng(0)
    for _ in range(trials):
        a = engine.suggest(EXP)
        assert a is not None and hasattr(a, "trial_id")
        p = a.parameters
        top = 0.98 - 3 * (np.log10(p["learning_rate"]) + 2.5) ** 2 / 10 - 0.2 * p["dropout"] - (p["optimizer"] == "sgd") * 0.05
        early = rng.random() < 0.2
        n = steps // 3 if early else steps
        engine.started(EXP, a.trial_id)
        curve = [float(top * (1 - np.exp(-(s + 1) / 4)) + rng.normal(0, 0.01)) for s in range(n)]
        for v in curve:
            engine.report_intermediate(EXP, a.trial_id, v)
        if early:
            engine.request_stop(EXP, a.trial_id, "bench: early stop")
        else:
            engine.report_final(EXP, a.trial_id, {"default": curve[-1], "loss": 1 - curve[-1]})
        engine.end(EXP, a.trial_id, 0)
    store.close()


def add_trial(url: str) -> None:
    """One trial through the admin API, as a controller would report it."""
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30) as c:
        tid = c.post(f"/api/v1/experiments/{EXP}/trials", json={}).json()["trialId"]
        c.post(f"/api/v1/experiments/{EXP}/trials/{tid}/start", json={}).raise_for_status()
        for v in (0.3, 0.5, 0.6):
            c.post(f"/api/v1/experiments/{EXP}/trials/{tid}/intermediate", json={"metric": v}).raise_for_status()
        c.post(f"/api/v1/experiments/{EXP}/trials/{tid}/final", json={"metric": 0.6}).raise_for_status()
        c.post(f"/api/v1/experiments/{EXP}/trials/{tid}/end", json={"exitCode": 0}).raise_for_status()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(url: str, trials: int, runs: int, shots: Path | None = None) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    out: dict[str, Any] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        ctx = browser.new_context(viewport={"width": 1400, "height": 900})
        ctx.add_init_script(LONGTASKS)
        page = ctx.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{url}/ui/login?next=/ui/")
        page.fill("#token", VIEWER)
        with page.expect_navigation():
            page.click("#login-form button[type=submit]")
        for view in VIEWS:
            first, longest, count, switch = [], [], [], {}
            for _ in range(runs):
                page.goto("about:blank")
                page.goto(f"{url}/ui/experiments/{EXP}#{view}")
                page.wait_for_selector("body[data-loaded='1']", state="attached", timeout=120_000)
                page.wait_for_timeout(300)  # let a long task that ends the render be reported
                m = page.evaluate("""() => ({
                    first: performance.getEntriesByName('autotune:first-render')[0].startTime,
                    tasks: window.__longtasks.filter(([s]) => s <= performance.getEntriesByName('autotune:first-render')[0].startTime + 1),
                    rows: document.querySelectorAll('#trials tbody tr').length,
                    total: autotuneUI.trials.length })""")
                assert m["total"] == trials and m["rows"] == 50, m
                first.append(m["first"])
                longest.append(max([d for _, d in m["tasks"]], default=0.0))
                count.append(len(m["tasks"]))
            # From this view, switch to each other one: that chart is drawn on demand.
            for other in VIEWS:
                if other == view:
                    continue
                ms = page.evaluate("""(v) => { const t = performance.now();
                    document.querySelector(`#tabs button[data-view=${v}]`).click(); return performance.now() - t; }""", other)
                switch[other] = ms
            out.setdefault("views", {})[view] = {
                "first_render_ms": statistics.median(first), "first_render_runs_ms": first,
                "longest_task_ms": statistics.median(longest), "long_tasks": statistics.median(count),
                "switch_ms": switch,
            }
        # A live update at this size: one more trial arrives while the curves are showing.
        page.goto(f"{url}/ui/experiments/{EXP}#curves")
        page.wait_for_selector("body[data-loaded='1']", state="attached", timeout=120_000)
        page.wait_for_timeout(500)
        mark = page.evaluate("performance.now()")
        rev = page.get_attribute("body", "data-revision")
        add_trial(url)
        deadline = time.monotonic() + 30
        while page.get_attribute("body", "data-revision") == rev:
            assert time.monotonic() < deadline, "the page did not update"
            time.sleep(0.05)
        page.wait_for_timeout(300)
        tasks = page.evaluate("(m) => window.__longtasks.filter(([s]) => s >= m).map(([, d]) => d)", mark)
        out["live_update"] = {"long_tasks": len(tasks), "longest_task_ms": max(tasks, default=0.0), "blocked_ms": sum(tasks)}
        if shots is not None:
            for k, view in enumerate(VIEWS):
                page.click(f"#tabs button[data-view={view}]")
                page.wait_for_timeout(500)
                page.screenshot(path=str(shots / f"1{k}-{view}-{trials}-trials.png"), full_page=True)
        series = page.evaluate("autotuneUI.charts.curves.getOption().series.length")
        out["curves_series"] = series
        out["console_errors"] = errors
        browser.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--screenshots", type=Path, help="also save each view at this size here (e.g. docs/screenshots)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "ui.db"
        t0 = time.perf_counter()
        build_history(db, a.trials, a.steps)
        built = time.perf_counter() - t0
        port = free_port()
        env = {**os.environ, "AUTOTUNE_ADMIN_TOKEN": ADMIN, "AUTOTUNE_VIEWER_TOKEN": VIEWER}
        server = subprocess.Popen([sys.executable, "-m", "tuner_server", "--db", str(db), "--port", str(port)], env=env)
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(200):
                try:
                    if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.05)
            h = {"Authorization": f"Bearer {VIEWER}"}
            full = httpx.get(f"{url}/ui/api/experiments/{EXP}/trials", headers=h, timeout=60)
            rev = full.json()["revision"]
            t = time.perf_counter()
            unchanged = httpx.get(f"{url}/ui/api/experiments/{EXP}/trials", params={"rev": rev}, headers=h, timeout=60)
            poll_ms = (time.perf_counter() - t) * 1000
            result = measure(url, a.trials, a.runs, a.screenshots)
            # measure() added one trial: what a page holding the old revision now fetches.
            changed = httpx.get(f"{url}/ui/api/experiments/{EXP}/trials", params={"rev": rev}, headers=h, timeout=60)
            assert changed.json()["full"] is False and len(changed.json()["trials"]) == 1
        finally:
            server.terminate()
            server.wait(timeout=10)
    result.update({
        "trials": a.trials, "steps": a.steps, "runs": a.runs, "history_build_s": built,
        "trials_json_bytes": len(full.content), "unchanged_poll_bytes": len(unchanged.content),
        "unchanged_poll_ms": poll_ms, "one_trial_changed_poll_bytes": len(changed.content), "chromium": subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True).stdout.strip(),
    })
    print(f"AutoTune Web, {a.trials} trials x {a.steps} intermediate steps, median of {a.runs} loads ({result['chromium']})")
    print(f"{'opened on':<10} {'first render ms':>16} {'long tasks':>11} {'longest ms':>11}   switch to other views (ms)")
    for v in VIEWS:
        r = result["views"][v]
        sw = ", ".join(f"{k} {ms:.0f}" for k, ms in r["switch_ms"].items())
        print(f"{v:<10} {r['first_render_ms']:>16.0f} {r['long_tasks']:>11.0f} {r['longest_task_ms']:>11.0f}   {sw}")
    lu = result["live_update"]
    print(f"live update (one more trial, curves showing): {lu['long_tasks']} long tasks, longest {lu['longest_task_ms']:.0f} ms, "
          f"{lu['blocked_ms']:.0f} ms blocked in all")
    print(f"trials JSON {result['trials_json_bytes'] / 1e6:.2f} MB; an unchanged live poll: {result['unchanged_poll_bytes']} bytes "
          f"in {poll_ms:.1f} ms; after one new trial: {result['one_trial_changed_poll_bytes']} bytes; curves chart series: {result['curves_series']}; console errors: {len(result['console_errors'])}")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "ui_render.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out / 'ui_render.json'}")


if __name__ == "__main__":
    main()
