"""Fixtures for the web UI tier: a real tuner server holding real experiments' history,
and Debian's chromium driven headless by Playwright.

The history comes from `autotune run --server URL`: real trial processes (scikit-learn's
digits MLP, and the toy trial of the integration tier) reporting over HTTP to a real
`python -m tuner_server` process, with Medianstop stopping some of them early.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from tests.integration.conftest import ADMIN, TRIALS, ServerProcess, free_port, manifest, run_autotune, write_manifest

ROOT = Path(__file__).resolve().parents[2]
VIEWER = "test-viewer-token-abcdefghij"
CHROMIUM = os.environ.get("AUTOTUNE_CHROMIUM", "/usr/bin/chromium")
# Flags for a sandboxed CI box as root: no sandbox, no GPU, and nothing that phones home.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
VIEWPORT = {"width": 1400, "height": 900}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.ui)


def _no_browser(reason: str) -> None:
    # In CI a missing browser is a failure (scripts/_browser.sh should have installed it);
    # on a developer's machine say so and skip. Never a silent pass.
    msg = f"web UI tests need Chromium: {reason} (scripts/test installs Debian's chromium as root; or set AUTOTUNE_CHROMIUM)"
    if os.environ.get("CI"):
        pytest.fail(msg)
    pytest.skip(msg)


# Module scope, not session: Playwright's sync API keeps an asyncio loop running in the main
# thread while it is started, and every later test calling asyncio.run() (the body-limit
# middleware's) would fail with "cannot be called from a running event loop".
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.access(CHROMIUM, os.X_OK):
        _no_browser(f"{CHROMIUM} is not there")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as e:  # the test extra holds playwright
        _no_browser(f"the playwright package is missing ({e})")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@dataclass
class UiPage:
    """A page plus every console error and uncaught exception it produced."""

    page: Any
    base: str
    errors: list[str] = field(default_factory=list)

    def login(self, token: str = VIEWER, next_path: str = "/ui/") -> None:
        self.page.goto(f"{self.base}/ui/login?next={next_path}")
        self.page.fill("#token", token)
        with self.page.expect_navigation():
            self.page.click("#login-form button[type=submit]")

    def wait_loaded(self) -> None:
        self.page.wait_for_selector("body[data-loaded='1']", state="attached", timeout=20_000)


@pytest.fixture
def ui_page(browser: Any, ui_server: "UiServer") -> Iterator[UiPage]:
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    p = UiPage(page, ui_server.url)
    page.on("console", lambda m: p.errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: p.errors.append(f"uncaught: {e}"))
    yield p
    context.close()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where each view's screenshot goes: $AUTOTUNE_UI_SCREENSHOTS (docs/screenshots to
    refresh the committed ones) or a temporary folder."""
    d = Path(os.environ.get("AUTOTUNE_UI_SCREENSHOTS") or tmp_path_factory.mktemp("ui-screenshots"))
    d.mkdir(parents=True, exist_ok=True)
    return d


@dataclass
class UiServer:
    proc: ServerProcess
    experiments: dict[str, str]  # name -> experiment id
    tokens: list[str]  # every experiment's own token (must never reach a page)

    @property
    def url(self) -> str:
        return self.proc.url

    def admin(self) -> httpx.Client:
        return self.proc.client(ADMIN)

    def summary(self, exp_id: str) -> dict[str, Any]:
        r = self.admin().get(f"/api/v1/experiments/{exp_id}")
        r.raise_for_status()
        return r.json()

    def trials(self, exp_id: str) -> list[dict[str, Any]]:
        r = self.admin().get(f"/api/v1/experiments/{exp_id}/trials")
        r.raise_for_status()
        return r.json()


def digits_manifest(name: str, trials: int) -> dict[str, Any]:
    space = {
        "hidden_units": {"_type": "choice", "_value": [16, 32, 64]},
        "learning_rate": {"_type": "loguniform", "_value": [0.0005, 0.05]},
        "alpha": {"_type": "loguniform", "_value": [0.000001, 0.01]},
        "batch_size": {"_type": "choice", "_value": [64, 128, 256]},
    }
    return manifest(
        name=name, space=space, tuner="TPE", class_args={"optimize_mode": "maximize"}, max_trials=trials, concurrency=2,
        command=[sys.executable, str(ROOT / "examples" / "digits_mlp.py"), "--epochs", "8"],
        assessor={"builtinAssessorName": "Medianstop", "classArgs": json.dumps({"optimize_mode": "maximize", "start_step": 3})},
    )


def toy_manifest(name: str, trials: int) -> dict[str, Any]:
    return manifest(
        name=name, tuner="TPE", class_args={"optimize_mode": "maximize"}, max_trials=trials, concurrency=2,
        command=[sys.executable, str(TRIALS / "toy.py"), "--steps", "6"],
        assessor={"builtinAssessorName": "Medianstop", "classArgs": json.dumps({"optimize_mode": "maximize", "start_step": 2})},
    )


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiServer]:
    tmp = tmp_path_factory.mktemp("ui-server")
    proc = ServerProcess(tmp / "tuner.db", free_port())
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AUTOTUNE_VIEWER_TOKEN", VIEWER)
        proc.start()
    try:
        experiments = {}
        for doc in (digits_manifest("digits-mlp", 8), toy_manifest("toy-medianstop", 10)):
            path = write_manifest(tmp / f"{doc['metadata']['name']}.yaml", doc)
            r = run_autotune(["run", str(path), "--server", proc.url, "--output", str(tmp / "out"), "--quiet"],
                             env={"AUTOTUNE_ADMIN_TOKEN": ADMIN}, timeout=300)
            assert r.returncode == 0, r.stderr
            experiments[doc["metadata"]["name"]] = f"local.{doc['metadata']['name']}"
        with sqlite3.connect(tmp / "tuner.db") as db:
            tokens = [row[0] for row in db.execute("SELECT token FROM experiments")]
        yield UiServer(proc, experiments, tokens)
    finally:
        proc.stop()
