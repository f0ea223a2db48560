"""AutoTune Web in headless Chromium against a real tuner server with real history.

Each view is checked for what it must show (rows, series, points), for console errors,
and saved as a screenshot (see the `screenshots` fixture).
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import ADMIN, TRIALS, ServerProcess, autotune_cmd, free_port, manifest, write_manifest
from tests.ui.conftest import VIEWER, VIEWPORT, UiPage, UiServer

SERIES_JS = """(k) => autotuneUI.charts[k].getOption().series.map(s => ({name: s.name, type: s.type, n: (s.data || []).length}))"""


def wait_until(p: UiPage, js: str, timeout: float = 15.0) -> None:
    """Poll a JS expression from the test side: the page's CSP (no eval) rules out
    Playwright's wait_for_function."""
    deadline = time.monotonic() + timeout
    while not p.page.evaluate(js):
        assert time.monotonic() < deadline, f"timed out waiting for: {js}"
        time.sleep(0.1)


def series(p: UiPage, chart: str) -> list[dict[str, Any]]:
    return p.page.evaluate(SERIES_JS, chart)


def show(p: UiPage, view: str) -> None:
    p.page.click(f"#tabs button[data-view={view}]")
    p.page.wait_for_selector(f"#view-{view}:not([hidden])")


def rows(p: UiPage) -> list[str]:
    return p.page.eval_on_selector_all("#trials tbody tr", "trs => trs.map(t => t.dataset.trial)")


def open_experiment(p: UiPage, exp_id: str, view: str = "overview") -> None:
    p.page.goto(f"{p.base}/ui/experiments/{exp_id}#{view}")
    p.wait_loaded()


# ----- authentication -----

def test_pages_need_a_login_and_a_wrong_token_is_refused(ui_page: UiPage, ui_server: UiServer, screenshots: Path) -> None:
    page = ui_page.page
    page.goto(ui_server.url + "/ui/")
    assert page.url.endswith("/ui/login"), "no session must mean the login page"
    page.screenshot(path=str(screenshots / "01-login.png"))
    ui_page.login("not-the-token-0123456789")
    assert "error=token" in page.url
    assert page.is_visible("#login-error")
    assert page.context.cookies() == [], "a refused login must not set a cookie"
    # JSON: no session -> 401; a wrong or an experiment's own token -> 403; the viewer token -> 200.
    assert httpx.get(ui_server.url + "/ui/api/experiments").status_code == 401
    for bad in ["wrong-token-0123456789", ui_server.tokens[0]]:
        r = httpx.get(ui_server.url + "/ui/api/experiments", headers={"Authorization": f"Bearer {bad}"})
        assert r.status_code == 403
    assert httpx.get(ui_server.url + "/ui/api/experiments", headers={"Authorization": f"Bearer {VIEWER}"}).status_code == 200
    assert ui_page.errors == []


def test_too_many_wrong_tokens_show_the_login_page_saying_how_long_to_wait(
        browser: Any, tmp_path: Path, screenshots: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Its own server with a limit of 2: blocking 127.0.0.1 on the shared one would lock out the other tests.
    monkeypatch.setenv("AUTOTUNE_VIEWER_TOKEN", VIEWER)
    monkeypatch.setenv("AUTOTUNE_LOGIN_MAX_FAILURES", "2")
    monkeypatch.setenv("AUTOTUNE_LOGIN_FAILURE_WINDOW", "600")
    server = ServerProcess(tmp_path / "tuner.db", free_port())
    server.start()
    context = browser.new_context(viewport=VIEWPORT)
    try:
        p = UiPage(context.new_page(), server.url)
        p.page.on("pageerror", lambda e: p.errors.append(f"uncaught: {e}"))
        for _ in range(2):
            p.login("not-the-token-0123456789")
            assert "error=token" in p.page.url
        with p.page.expect_navigation() as nav:  # the third try, even with the right token, is refused
            p.page.fill("#token", VIEWER)
            p.page.click("#login-form button[type=submit]")
        assert nav.value.status == 429
        message = p.page.inner_text("#login-error")
        assert p.page.is_visible("#login-error") and p.page.is_visible("#login-form")
        assert re.search(r"Too many failed log-ins .* try again in \d+ seconds", message), message
        assert context.cookies() == []
        p.page.screenshot(path=str(screenshots / "01b-login-blocked.png"))
        assert p.errors == []
    finally:
        context.close()
        server.stop()


def test_session_cookie_is_httponly_and_only_reads(ui_page: UiPage, ui_server: UiServer) -> None:
    ui_page.login(VIEWER)
    (cookie,) = ui_page.page.context.cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/ui"
    assert cookie["value"] not in (VIEWER, ADMIN)
    assert ui_page.page.evaluate("document.cookie") == "", "page scripts must not see the session"
    req = ui_page.page.request  # carries the browser's cookies
    exp_id = ui_server.experiments["toy-medianstop"]
    assert req.get(f"{ui_server.url}/ui/api/experiments/{exp_id}").status == 200
    # The cookie never authorises the API, let alone a change (no CSRF surface).
    assert req.get(f"{ui_server.url}/api/v1/experiments/{exp_id}").status == 401
    assert req.post(f"{ui_server.url}/api/v1/experiments/{exp_id}/trials", data="{}",
                    headers={"Content-Type": "application/json"}).status == 401
    # A login form posted from another site is refused.
    r = httpx.post(ui_server.url + "/ui/login", data={"token": VIEWER}, headers={"Origin": "https://evil.example"})
    assert r.status_code == 403
    # Logging out ends the session on the server, not just in the browser.
    sid = cookie["value"]
    ui_page.page.goto(ui_server.url + "/ui/")
    with ui_page.page.expect_navigation():
        ui_page.page.click("header form button")
    assert ui_page.page.url.endswith("/ui/login")
    assert httpx.get(ui_server.url + "/ui/api/experiments", cookies={"autotune_ui": sid}).status_code == 401


def test_no_token_in_any_served_page_script_or_json(ui_page: UiPage, ui_server: UiServer) -> None:
    ui_page.login(VIEWER)
    exp_id = ui_server.experiments["digits-mlp"]
    open_experiment(ui_page, exp_id)
    served: list[str] = []
    for path in ["/ui/login", "/ui/", f"/ui/experiments/{exp_id}"]:
        served.append(ui_page.page.request.get(ui_server.url + path).text())
    scripts = ui_page.page.eval_on_selector_all("script[src]", "ss => ss.map(s => s.src)")
    modules = [f"/ui/static/{m}.js" for m in ("common", "experiment", "charts", "model", "table", "list", "login")]
    for src in scripts + [ui_server.url + m for m in modules]:
        r = ui_page.page.request.get(src if src.startswith("http") else ui_server.url + src)
        assert r.status == 200, src
        served.append(r.text())
    for api in ["/ui/api/experiments", f"/ui/api/experiments/{exp_id}", f"/ui/api/experiments/{exp_id}/trials"]:
        served.append(ui_page.page.request.get(ui_server.url + api).text())
    served.append(ui_page.page.content())
    secrets = [ADMIN, VIEWER, *ui_server.tokens]
    assert len(ui_server.tokens) == 2
    for text in served:
        for s in secrets:
            assert s not in text
    assert ui_page.errors == []


# ----- views -----

def test_experiment_list(ui_page: UiPage, ui_server: UiServer, screenshots: Path) -> None:
    ui_page.login(VIEWER)
    ui_page.wait_loaded()
    listed = ui_page.page.eval_on_selector_all("#experiments tbody tr", "trs => trs.map(t => t.dataset.experiment)")
    assert sorted(listed) == sorted(ui_server.experiments.values())
    for exp_id in listed:
        s = ui_server.summary(exp_id)
        cells = ui_page.page.eval_on_selector_all(f"#experiments tr[data-experiment='{exp_id}'] td", "tds => tds.map(t => t.textContent)")
        assert cells[3] == str(s["trials"]["total"]) and cells[7] == str(s["trials"]["earlyStopped"])
        assert cells[9] == s["bestTrial"]["name"]
    ui_page.page.screenshot(path=str(screenshots / "02-experiments.png"))
    assert ui_page.errors == []


def test_trials_table_rows_sorting_and_log_link(ui_page: UiPage, ui_server: UiServer, screenshots: Path) -> None:
    exp_id = ui_server.experiments["digits-mlp"]
    trials = ui_server.trials(exp_id)
    ui_page.login(VIEWER, f"/ui/experiments/{exp_id}")
    ui_page.wait_loaded()
    show(ui_page, "trials")
    assert sorted(rows(ui_page)) == sorted(t["name"] for t in trials)
    headers = ui_page.page.eval_on_selector_all("#trials thead th", "ths => ths.map(t => t.dataset.key)")
    assert {"param:hidden_units", "param:learning_rate", "param:alpha", "param:batch_size", "value", "duration", "log"} <= set(headers)
    # Sort by value, then flip to descending: the best trial comes first.
    ui_page.page.click("#trials th[data-key=value]")
    ascending = rows(ui_page)
    ui_page.page.click("#trials th[data-key=value]")
    descending = rows(ui_page)
    by_value = sorted((t for t in trials if t["value"] is not None), key=lambda t: t["value"])
    assert ascending[0] == by_value[0]["name"]
    assert descending[0] == by_value[-1]["name"]
    assert ui_page.page.get_attribute("#trials th[data-key=value]", "aria-sort") == "descending"
    ui_page.page.screenshot(path=str(screenshots / "04-trials.png"), full_page=True)
    # On a cluster the tuner server holds no logs: the link says how to get them.
    href = ui_page.page.get_attribute(f"#trials tr[data-trial='{descending[0]}'] a", "href")
    r = ui_page.page.request.get(ui_server.url + href)
    assert r.status == 404 and f"autotune.tensorstack.dev/trial={descending[0]}" in r.text()
    assert ui_page.errors == []


def test_charts_have_one_series_per_trial_and_mark_early_stops(ui_page: UiPage, ui_server: UiServer, screenshots: Path) -> None:
    exp_id = ui_server.experiments["toy-medianstop"]
    trials = ui_server.trials(exp_id)
    summary = ui_server.summary(exp_id)
    early = [t["name"] for t in trials if t["state"] == "EARLY_STOPPED"]
    assert early, "Medianstop should have stopped some toy trials (precondition)"
    with_value = [t for t in trials if t["value"] is not None]
    ui_page.login(VIEWER, f"/ui/experiments/{exp_id}")
    ui_page.wait_loaded()

    ui_page.page.screenshot(path=str(screenshots / "03-overview.png"), full_page=True)
    assert summary["bestTrial"]["name"] in ui_page.page.inner_text("#best")
    hist = series(ui_page, "history")
    assert [s["n"] for s in hist][0] == len(with_value)

    show(ui_page, "curves")
    curves = series(ui_page, "curves")
    lines = [s for s in curves if s["type"] == "line"]
    assert len(lines) == sum(1 for t in trials if t["intermediate"])
    assert sorted(s["name"].removesuffix(" (early-stopped)") for s in lines if s["name"].endswith("(early-stopped)")) == sorted(early)
    (marks,) = [s for s in curves if s["name"] == "early stop"]
    assert marks["n"] == len(early)
    for s, t in zip(lines, trials):
        assert s["n"] == len(t["intermediate"])
    ui_page.page.screenshot(path=str(screenshots / "05-curves.png"), full_page=True)

    show(ui_page, "parallel")
    par = series(ui_page, "parallel")
    assert [s["name"] for s in par] == ["trials", "best trial"]
    assert par[0]["n"] == len(with_value)
    axes = ui_page.page.evaluate("autotuneUI.charts.parallel.getOption().parallelAxis.map(a => a.name)")
    assert axes == ["x", "y", "objective"]
    ui_page.page.screenshot(path=str(screenshots / "06-parallel.png"), full_page=True)

    show(ui_page, "scatter")
    sc = series(ui_page, "scatter")
    states = {t["state"] for t in with_value}
    assert len(sc) == len(states) + 1 and sc[-1]["name"] == "best trial"
    assert sum(s["n"] for s in sc[:-1]) == len(with_value)
    # Any two dimensions: duration against a metric the trial reported.
    ui_page.page.select_option("#scatter-x", "duration")
    ui_page.page.select_option("#scatter-y", "metric:x")
    wait_until(ui_page, "autotuneUI.charts.scatter.getOption().xAxis[0].name === 'duration (s)'")
    assert sum(s["n"] for s in series(ui_page, "scatter")[:-1]) == sum(1 for t in trials if (t["metrics"] or {}).get("x") is not None)
    ui_page.page.select_option("#scatter-x", "param:x")
    ui_page.page.select_option("#scatter-y", "objective")
    ui_page.page.screenshot(path=str(screenshots / "07-scatter.png"), full_page=True)
    assert ui_page.page.is_hidden('#tabs button[data-view="pareto"]'), "single objective: no Pareto tab"
    assert ui_page.errors == []


# ----- live updates -----

def _register(client: httpx.Client, exp_id: str, config: dict[str, Any]) -> httpx.Response:
    return client.put(f"/api/v1/experiments/{exp_id}", json={"name": exp_id, "config": config})


def _run_trial(client: httpx.Client, exp_id: str, curve: list[float], final: Any) -> str:
    a = client.post(f"/api/v1/experiments/{exp_id}/trials", json={}).json()
    tid = a["trialId"]
    client.post(f"/api/v1/experiments/{exp_id}/trials/{tid}/start", json={}).raise_for_status()
    for v in curve:
        client.post(f"/api/v1/experiments/{exp_id}/trials/{tid}/intermediate", json={"metric": v}).raise_for_status()
    client.post(f"/api/v1/experiments/{exp_id}/trials/{tid}/final", json={"metric": final}).raise_for_status()
    client.post(f"/api/v1/experiments/{exp_id}/trials/{tid}/end", json={"exitCode": 0}).raise_for_status()
    return tid


def test_live_update_shows_a_trial_added_after_load(ui_page: UiPage, ui_server: UiServer) -> None:
    space = json.dumps({"lr": {"_type": "loguniform", "_value": [0.001, 0.1]}, "opt": {"_type": "choice", "_value": ["sgd", "adam"]}})
    config = {"searchSpace": space, "tuner": {"name": "Random"}, "optimizeMode": "maximize"}
    with ui_server.admin() as c:
        _register(c, "live", config).raise_for_status()
        for k in range(2):
            _run_trial(c, "live", [0.1 * k, 0.2 * k], 0.3 * k)
        ui_page.login(VIEWER, "/ui/experiments/live")
        ui_page.wait_loaded()
        show(ui_page, "curves")
        assert len(series(ui_page, "curves")) == 2
        revision = ui_page.page.get_attribute("body", "data-revision")
        new = _run_trial(c, "live", [0.5, 0.6, 0.7], 0.9)
        wait_until(ui_page, f"document.body.dataset.revision !== '{revision}'")
        # A poll may land between the new trial's reports; wait until it has ended.
        wait_until(ui_page, "autotuneUI.summary.trials.succeeded === 3")
        assert len(series(ui_page, "curves")) == 3, "the visible chart redraws"
        assert ui_page.page.evaluate("autotuneUI.lastFetch") == {"full": False, "trials": 1}, "only the new trial travels"
        assert ui_page.page.inner_text("[data-count=total] b") == "3"
        show(ui_page, "trials")
        assert new in rows(ui_page) and len(rows(ui_page)) == 3
        show(ui_page, "overview")
        assert new in ui_page.page.inner_text("#best"), "hidden views redraw when shown"
        # Categorical parameters become category axes in parallel coordinates.
        show(ui_page, "parallel")
        types = ui_page.page.evaluate("autotuneUI.charts.parallel.getOption().parallelAxis.map(a => a.type)")
        assert types == ["log", "category", "value"]
        c.delete("/api/v1/experiments/live").raise_for_status()
    assert ui_page.errors == []


def test_pareto_front_of_a_multi_objective_experiment(ui_page: UiPage, ui_server: UiServer, screenshots: Path) -> None:
    space = json.dumps({"width": {"_type": "uniform", "_value": [0, 1]}})
    config = {"searchSpace": space, "tuner": {"name": "Random"}, "optimizeMode": "maximize",
              "objectives": [{"name": "accuracy", "optimizeMode": "maximize"}, {"name": "size", "optimizeMode": "minimize"}]}
    points = [(0.9, 10), (0.8, 5), (0.95, 20), (0.7, 8), (0.85, 12)]  # the last two are dominated
    with ui_server.admin() as c:
        r = _register(c, "pareto", config)
        if r.status_code == 422 and "objectives" in r.text:
            pytest.skip("this tuner server has no multi-objective experiments (spec.objectives)")
        r.raise_for_status()
        for acc, size in points:
            _run_trial(c, "pareto", [], {"accuracy": acc, "size": size})
        summary = c.get("/api/v1/experiments/pareto").json()
        front = {t["name"] for t in summary["paretoFront"]}
        assert len(front) == 3
        # Final training reran a front member, with its values: drawn neither as a dominated
        # trial nor as a second front point (the front is the search trials').
        member = summary["paretoFront"][0]
        final = c.post("/api/v1/experiments/pareto/final-trials",
                       json={"sequence": len(points), "parameters": member["parameters"]}).json()["trialId"]
        c.post(f"/api/v1/experiments/pareto/trials/{final}/start", json={}).raise_for_status()
        c.post(f"/api/v1/experiments/pareto/trials/{final}/final", json={"metric": member["values"]}).raise_for_status()
        c.post(f"/api/v1/experiments/pareto/trials/{final}/end", json={"exitCode": 0}).raise_for_status()
        ui_page.login(VIEWER, "/ui/experiments/pareto")
        ui_page.wait_loaded()
        show(ui_page, "pareto")
        assert ui_page.page.input_value("#pareto-x") == "metric:accuracy"
        assert ui_page.page.input_value("#pareto-y") == "metric:size"
        pts = ui_page.page.evaluate("autotuneUI.charts.pareto.getOption().series.map(s => s.data.map(d => d.name))")
        assert set(pts[1]) == front and len(pts[0]) == 2
        ui_page.page.screenshot(path=str(screenshots / "08-pareto.png"), full_page=True)
        c.delete("/api/v1/experiments/pareto").raise_for_status()
    assert ui_page.errors == []


def test_parameter_importance_panel_names_the_parameter_that_decides(ui_page: UiPage, ui_server: UiServer, screenshots: Path) -> None:
    # 40 random trials whose value depends on the learning rate alone.
    space = {"learning_rate": {"_type": "loguniform", "_value": [1e-4, 1e-1]}, "dropout": {"_type": "uniform", "_value": [0, 0.5]},
             "optimizer": {"_type": "choice", "_value": ["sgd", "adam", "rmsprop"]}}
    config = {"searchSpace": json.dumps(space), "tuner": {"name": "Random"}, "optimizeMode": "maximize"}
    with ui_server.admin() as c:
        _register(c, "importance", config).raise_for_status()
        for _ in range(40):
            a = c.post("/api/v1/experiments/importance/trials", json={}).json()
            tid, lr = a["trialId"], a["parameters"]["learning_rate"]
            c.post(f"/api/v1/experiments/importance/trials/{tid}/start", json={}).raise_for_status()
            c.post(f"/api/v1/experiments/importance/trials/{tid}/final", json={"metric": 0.95 - abs(math.log10(lr) + 2.5) / 5}).raise_for_status()
            c.post(f"/api/v1/experiments/importance/trials/{tid}/end", json={"exitCode": 0}).raise_for_status()
        # The JSON route answers scripts holding the viewer token.
        r = httpx.get(ui_server.url + "/ui/api/experiments/importance/importance", headers={"Authorization": f"Bearer {VIEWER}"})
        (res,) = r.json()["results"]
        assert r.json()["method"] == "PED-ANOVA" and res["trials"] == 40 and res["topTrials"] == 12
        assert res["importances"][0]["parameter"] == "learning_rate" and res["importances"][0]["importance"] > 0.5
        ui_page.login(VIEWER, "/ui/experiments/importance")
        ui_page.wait_loaded()
        show(ui_page, "parallel")
        wait_until(ui_page, "autotuneUI.importance !== null")
        # Most important on top: ECharts draws the last category of a y axis at the top.
        names = ui_page.page.evaluate("autotuneUI.charts.importance.getOption().yAxis[0].data")
        assert names[-1] == "learning_rate" and sorted(names) == sorted(space)
        assert ui_page.page.inner_text("#importance-info").startswith("PED-ANOVA, 40 succeeded trials; best 12 vs all")
        assert ui_page.page.is_visible("#chart-importance canvas")
        ui_page.page.screenshot(path=str(screenshots / "15-importance.png"), full_page=True)
        c.delete("/api/v1/experiments/importance").raise_for_status()
    # Too few succeeded trials: the panel says so instead of drawing noise.
    exp_id = ui_server.experiments["digits-mlp"]
    ui_page.page.goto(f"{ui_server.url}/ui/experiments/{exp_id}#parallel")
    ui_page.wait_loaded()
    wait_until(ui_page, "autotuneUI.importance !== null")
    assert "no result yet (needs at least 10 succeeded trials" in ui_page.page.inner_text("#importance-info")
    assert ui_page.page.evaluate("autotuneUI.charts.importance.getOption().series.length") == 0
    assert ui_page.errors == []


def test_importance_panel_with_many_objectives_one_without_a_result(ui_page: UiPage, ui_server: UiServer) -> None:
    """Five objectives, the first the same in every trial: the sentence above the chart took
    only the first objective's reason ("no result yet") while the bars of the other four
    were drawn, and the legend wrapped over the bars (now one scrolling line)."""
    space = {"a": {"_type": "uniform", "_value": [0, 1]}, "b": {"_type": "uniform", "_value": [0, 1]}}
    names = ["constant_score", "validation_accuracy_top1", "training_seconds_total", "model_size_megabytes", "latency_p99_ms"]
    objs = [{"name": n, "optimizeMode": "maximize"} for n in names]
    config = {"searchSpace": json.dumps(space), "tuner": {"name": "Random"}, "objectives": objs}
    with ui_server.admin() as c:
        _register(c, "many-objectives", config).raise_for_status()
        for _ in range(20):
            a = c.post("/api/v1/experiments/many-objectives/trials", json={}).json()
            tid, x = a["trialId"], a["parameters"]["a"]
            metric = {"constant_score": 1.0, **{n: x * (k + 1) for k, n in enumerate(names[1:])}}
            c.post(f"/api/v1/experiments/many-objectives/trials/{tid}/start", json={}).raise_for_status()
            c.post(f"/api/v1/experiments/many-objectives/trials/{tid}/final", json={"metric": metric}).raise_for_status()
            c.post(f"/api/v1/experiments/many-objectives/trials/{tid}/end", json={"exitCode": 0}).raise_for_status()
        ui_page.login(VIEWER, "/ui/experiments/many-objectives")
        ui_page.wait_loaded()
        show(ui_page, "parallel")
        wait_until(ui_page, "autotuneUI.importance !== null")
        info = ui_page.page.inner_text("#importance-info")
        assert info.startswith("PED-ANOVA, 20 succeeded trials; best 6 vs all, one per objective."), info
        assert "No result for constant_score: every trial has the same objective value" in info, info
        option = ui_page.page.evaluate("(() => { const o = autotuneUI.charts.importance.getOption(); "
                                       "return {series: o.series.length, legend: o.legend[0].type}; })()")
        assert option == {"series": 4, "legend": "scroll"}
        assert ui_page.errors == []
        c.delete("/api/v1/experiments/many-objectives").raise_for_status()


# ----- local mode -----

def test_local_mode_ui_link_logs_in_once_and_serves_trial_logs(ui_page: UiPage, tmp_path: Path, screenshots: Path) -> None:
    # The trial prints a line (its log) and then runs the toy trial slowly enough to look at.
    code = (
        "import runpy, sys; print('hello from the trial log', flush=True); "
        f"sys.argv = ['toy.py', '--steps', '6', '--sleep', '0.8']; runpy.run_path({str(TRIALS / 'toy.py')!r}, run_name='__main__')"
    )
    doc = manifest(name="local-ui", command=[sys.executable, "-c", code], max_trials=6, concurrency=2)
    path = write_manifest(tmp_path / "local-ui.yaml", doc)
    proc = subprocess.Popen(
        autotune_cmd() + ["run", str(path), "--output", str(tmp_path / "out"), "--quiet", "--ui"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stderr is not None
        link = None
        deadline = time.monotonic() + 30
        while link is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            m = re.search(r"web UI .*?: (http://127\.0\.0\.1:\d+/ui/login\?\S+)", line)
            link = m.group(1) if m else None
        assert link, "autotune run --ui must print a login link"
        base = link.split("/ui/")[0]
        ui_page.base = base
        ui_page.page.goto(link)
        assert ui_page.page.url.split("#")[0] == f"{base}/ui/experiments/local.local-ui", "the link lands on the experiment, code gone"
        ui_page.wait_loaded()
        # Local mode knows the controller's phase (from status.json, once it is written).
        wait_until(ui_page, "document.querySelector('#phase').textContent === 'RUNNING'")
        show(ui_page, "trials")
        wait_until(ui_page, "document.querySelectorAll('#trials tbody tr').length >= 3", timeout=20)
        ui_page.page.screenshot(path=str(screenshots / "09-local-mode-running.png"), full_page=True)
        first = rows(ui_page)[0]
        href = ui_page.page.get_attribute(f"#trials tr[data-trial='{first}'] a", "href")
        r = ui_page.page.request.get(base + href)
        assert r.status == 200 and "hello from the trial log" in r.text()
        assert ui_page.errors == []
        # The code was single-use: the same link now only shows the login form.
        other = ui_page.page.context.browser.new_context()
        p2 = other.new_page()
        p2.goto(link)
        assert "/ui/login?error=code" in p2.url
        other.close()
        ui_page.page.close()  # stop polling before the run ends and the server goes away
        assert proc.wait(timeout=120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # Afterwards, `autotune ui` shows the finished run from what it left on disk.
    viewer = subprocess.Popen(autotune_cmd() + ["ui", str(tmp_path / "out" / "local-ui")],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert viewer.stderr is not None
        m = re.search(r"(http://127\.0\.0\.1:\d+/ui/login\?\S+)", viewer.stderr.readline())
        assert m, "autotune ui must print a login link"
        context = ui_page.page.context.browser.new_context()
        page = context.new_page()
        page.goto(m.group(1) + "#trials")
        page.wait_for_selector("body[data-loaded='1']", state="attached")
        assert page.inner_text("#phase") == "DONE"
        assert len(page.query_selector_all("#trials tbody tr")) == 6
        context.close()
    finally:
        viewer.terminate()
        assert viewer.wait(timeout=10) == 0


def test_names_and_values_from_the_experiment_are_shown_as_text(ui_page: UiPage, ui_server: UiServer) -> None:
    nasty = "<img src=x id=pwned>"
    space = json.dumps({"opt<b>": {"_type": "choice", "_value": [nasty, "plain"]}})
    with ui_server.admin() as c:
        _register(c, "escape", {"searchSpace": space, "tuner": {"name": "GridSearch"}, "optimizeMode": "maximize"}).raise_for_status()
        for k in range(2):
            _run_trial(c, "escape", [0.1, 0.2], 0.5 + k)
        ui_page.login(VIEWER, "/ui/experiments/escape")
        ui_page.wait_loaded()
        show(ui_page, "trials")
        assert nasty in ui_page.page.inner_text("#trials tbody")
        show(ui_page, "scatter")
        ui_page.page.evaluate("autotuneUI.charts.scatter.dispatchAction({type: 'showTip', seriesIndex: 0, dataIndex: 0})")
        wait_until(ui_page, "[...document.querySelectorAll('#chart-scatter div')].some(d => d.textContent.includes('opt<b>'))")
        assert ui_page.page.evaluate("document.querySelector('#pwned') === null && document.querySelector('#chart-scatter b') === null")
        c.delete("/api/v1/experiments/escape").raise_for_status()
    assert ui_page.errors == []


def test_ui_responses_carry_security_headers_and_the_api_is_untouched(ui_server: UiServer) -> None:
    page = httpx.get(ui_server.url + "/ui/login")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff" and page.headers["referrer-policy"] == "same-origin"
    assert "content-security-policy" not in httpx.get(ui_server.url + "/healthz").headers
