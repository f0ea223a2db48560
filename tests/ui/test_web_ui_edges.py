"""AutoTune Web in headless Chromium on edge cases: an experiment re-created under the same
id while its page is open, parameters and metrics whose values are objects (nested search
spaces, per-class scores).
A tuner server process of its own, no pre-built history."""

from __future__ import annotations

import http.client
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import pytest

from tests.integration.conftest import ServerProcess, free_port
from tests.ui.conftest import VIEWER, UiPage, UiServer
from tests.ui.test_web_ui import _register, _run_trial, rows, show, wait_until


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiServer]:
    proc = ServerProcess(tmp_path_factory.mktemp("ui-edges") / "tuner.db", free_port(), extra_env={"AUTOTUNE_VIEWER_TOKEN": VIEWER})
    proc.start()
    try:
        yield UiServer(proc, {}, [])
    finally:
        proc.stop()


CONFIG = {"searchSpace": json.dumps({"lr": {"_type": "uniform", "_value": [0.0, 1.0]}}), "tuner": {"name": "Random"},
          "optimizeMode": "maximize"}


def test_an_experiment_recreated_while_its_page_is_open_drops_the_old_best(ui_page: UiPage, ui_server: UiServer) -> None:
    with ui_server.admin() as c:
        _register(c, "again", CONFIG).raise_for_status()
        old = _run_trial(c, "again", [0.5], 0.75)
        ui_page.login(VIEWER, "/ui/experiments/again")
        ui_page.wait_loaded()
        assert old in ui_page.page.inner_text("#best")
        c.delete("/api/v1/experiments/again").raise_for_status()
        _register(c, "again", CONFIG).raise_for_status()
        wait_until(ui_page, "autotuneUI.summary.bestTrial === null && autotuneUI.trials.length === 0")
        # Before the fix the card kept the deleted experiment's best trial and its value.
        best = ui_page.page.inner_text("#best")
        assert old not in best and "0.75" not in best
        assert "no trial has succeeded yet" in best
        c.delete("/api/v1/experiments/again").raise_for_status()
    assert ui_page.errors == []


NESTED = {"searchSpace": json.dumps({"model": {"_type": "choice", "_value": [
    {"_name": "svm", "C": {"_type": "uniform", "_value": [0.1, 1.0]}},
    {"_name": "tree", "depth": {"_type": "choice", "_value": [2, 4]}}]}}),
    "tuner": {"name": "Random"}, "optimizeMode": "maximize", "seed": 7}


def test_a_nested_parameter_column_sorts_by_its_values(ui_page: UiPage, ui_server: UiServer) -> None:
    with ui_server.admin() as c:
        _register(c, "nested", NESTED).raise_for_status()
        for k in range(6):
            _run_trial(c, "nested", [0.1 * k], 0.1 * k)
        ui_page.login(VIEWER, "/ui/experiments/nested")
        ui_page.wait_loaded()
        show(ui_page, "trials")
        ui_page.page.click("#trials th[data-key='param:model']")
        cells = ui_page.page.eval_on_selector_all(
            "#trials tbody tr", "trs => trs.map(t => t.children[4].textContent)")
        assert len(cells) == 6 and len(set(cells)) > 1
        # Before the fix every object compared equal ("[object Object]"): the rows stayed in
        # trial order, svm and tree configurations mixed.
        assert cells == sorted(cells)
        c.delete("/api/v1/experiments/nested").raise_for_status()
    assert ui_page.errors == []


def test_the_best_trial_card_shows_structured_metrics_as_json(ui_page: UiPage, ui_server: UiServer) -> None:
    final = {"default": 0.9, "per_class": {"cat": 0.8, "dog": 1.0}, "confusion": [[5, 1], [0, 6]]}
    with ui_server.admin() as c:
        _register(c, "structured", CONFIG).raise_for_status()
        _run_trial(c, "structured", [0.5], final)
        ui_page.login(VIEWER, "/ui/experiments/structured")
        ui_page.wait_loaded()
        best = ui_page.page.inner_text("#best")
        # Before the fix: "per_class (metric) [object Object]" and "confusion (metric) 5,1,0,6".
        assert "[object Object]" not in best
        assert '{"cat":0.8,"dog":1}' in best and "[[5,1],[0,6]]" in best
        c.delete("/api/v1/experiments/structured").raise_for_status()
    assert ui_page.errors == []


class _HostRewritingProxy(BaseHTTPRequestHandler):
    """A reverse proxy as nginx's proxy_pass is by default: it sends the upstream's own
    host:port as Host (``proxy_set_header Host $proxy_host``), the rest as it came."""

    upstream: tuple[str, int] = ("127.0.0.1", 0)

    def _forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        headers["Host"] = f"{self.upstream[0]}:{self.upstream[1]}"
        conn = http.client.HTTPConnection(*self.upstream, timeout=30)
        conn.request(self.command, self.path, body=body or None, headers=headers)
        r = conn.getresponse()
        data = r.read()
        self.send_response(r.status)
        for k, v in r.getheaders():
            if k.lower() not in ("content-length", "connection", "transfer-encoding", "date", "server"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        conn.close()

    do_GET = do_POST = _forward

    def log_message(self, *args: object) -> None:
        pass


def test_login_through_a_reverse_proxy_that_sets_its_own_host_header(browser: Any, ui_server: UiServer) -> None:
    _HostRewritingProxy.upstream = ("127.0.0.1", ui_server.proc.port)
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), _HostRewritingProxy)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    # "localhost" rather than 127.0.0.1: the browser's Origin then differs from the Host the
    # server sees, as with any proxy in front of it under another name.
    base = f"http://localhost:{proxy.server_address[1]}"
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(base + "/ui/login")
        page.fill("#token", VIEWER)
        with page.expect_navigation():
            page.click("#login-form button[type=submit]")
        # Before the fix: 403 "cross-site login refused", although the browser said
        # Sec-Fetch-Site: same-origin (its Origin named the proxy, not the server's Host).
        assert page.url == base + "/ui/", page.content()[:500]
        page.wait_for_selector("body[data-loaded='1']", state="attached", timeout=20_000)
        assert [c["name"] for c in context.cookies()] == ["autotune_ui"]
    finally:
        context.close()
        proxy.shutdown()
