"""Failed log-ins over real HTTP: after N wrong tokens or login codes from an address, the
tuner server answers 429 with Retry-After, for the web UI's login and the API alike."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from tests.integration.conftest import ADMIN, ServerProcess, free_port
from tuner_server.client import HttpClient
from tuner_server.embedded import EmbeddedServer
from tuner_server.engine import Engine
from tuner_server.store import Store

VIEWER = "test-viewer-token-abcdefghij"
LIMIT = 3
WINDOW = 600  # far longer than the test: nothing expires while it runs (expiry: unit tests)
CONFIG = {
    "searchSpace": json.dumps({"x": {"_type": "choice", "_value": [1, 2]}}),
    "tuner": {"name": "Random", "classArgs": {}},
    "optimizeMode": "maximize",
}


@pytest.fixture
def limited(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServerProcess]:
    """A tuner server process with the limit set the way an operator would: env vars."""
    monkeypatch.setenv("AUTOTUNE_VIEWER_TOKEN", VIEWER)
    monkeypatch.setenv("AUTOTUNE_LOGIN_MAX_FAILURES", str(LIMIT))
    monkeypatch.setenv("AUTOTUNE_LOGIN_FAILURE_WINDOW", str(WINDOW))
    s = ServerProcess(tmp_path / "tuner.db", free_port())
    s.start()
    yield s
    s.stop()


def login(server: ServerProcess, token: str) -> httpx.Response:
    return httpx.post(server.url + "/ui/login", data={"token": token, "next": "/ui/"}, follow_redirects=False, timeout=10)


def assert_too_many(r: httpx.Response) -> None:
    assert r.status_code == 429, r.text
    assert 0 < int(r.headers["retry-after"]) <= WINDOW
    assert "too many failed log-ins" in r.text.lower() and "try again in" in r.text
    assert "set-cookie" not in r.headers


def test_ui_login_answers_429_after_n_wrong_tokens_and_a_login_before_that_resets(limited: ServerProcess) -> None:
    for _ in range(LIMIT - 1):
        r = login(limited, "wrong-token-0123456789")
        assert r.status_code == 303 and r.headers["location"] == "/ui/login?error=token"
    ok = login(limited, VIEWER)  # one short of the limit: the right token still logs in ...
    assert ok.status_code == 303 and ok.headers["location"] == "/ui/" and "autotune_ui" in ok.cookies
    session = {"autotune_ui": ok.cookies["autotune_ui"]}
    for _ in range(LIMIT):  # ... and clears the count: LIMIT more wrong tokens before 429
        assert login(limited, "wrong-token-0123456789").status_code == 303
    blocked = login(limited, VIEWER)  # now even the right token is refused: guesses tell nothing
    assert_too_many(blocked)
    # A browser lands on the login page again, told why and for how long (not a bare status text).
    assert blocked.headers["content-type"].startswith("text/html")
    assert 'id="login-form"' in blocked.text
    assert '<p id="login-error" class="error" role="alert">Too many failed log-ins' in blocked.text
    assert_too_many(httpx.get(limited.url + "/ui/login?code=made-up-code", follow_redirects=False))
    # The same budget guards bearer tokens, on the UI's JSON and on the API.
    r = httpx.get(limited.url + "/ui/api/experiments", headers={"Authorization": f"Bearer {VIEWER}"})
    assert_too_many(r)
    assert "too many failed log-ins" in r.json()["detail"]
    assert_too_many(limited.get("/api/v1/experiments"))
    # A forged X-Forwarded-For is no new address (uvicorn would trust it from 127.0.0.1,
    # which is where local mode's and kubectl port-forward's clients come from).
    for i in range(3):
        r = httpx.post(limited.url + "/ui/login", data={"token": VIEWER}, headers={"X-Forwarded-For": f"198.51.100.{i}"})
        assert_too_many(r)
    # A session made before is no guess: it keeps reading; the login page itself still loads.
    assert httpx.get(limited.url + "/ui/api/experiments", cookies=session).status_code == 200
    assert httpx.get(limited.url + "/ui/login").status_code == 200
    assert httpx.get(limited.url + "/healthz").status_code == 200


def test_api_counts_unknown_tokens_only(limited: ServerProcess) -> None:
    with limited.client() as admin:
        r = admin.put("/api/v1/experiments/e1", json={"name": "e1", "config": CONFIG})
        assert r.status_code == 200, r.text
        own = r.json()["token"]
    # Not guesses, however many: no token, an experiment's own token or the viewer token
    # on an admin route (a bug in the caller, and the server knows the token).
    for _ in range(LIMIT + 2):
        assert httpx.get(limited.url + "/api/v1/experiments").status_code == 401
        with limited.client(own) as trial:
            assert trial.post("/api/v1/experiments/e1/trials", json={}).status_code == 403
        with limited.client(VIEWER) as viewer:
            assert viewer.get("/api/v1/experiments").status_code == 403
    assert limited.get("/api/v1/experiments").status_code == 200
    # Unknown tokens are: LIMIT of them, then 429 for every token from this address.
    # A non-ASCII guess is one too (it used to be an uncounted 500).
    guesses = [b"guess-0123456789abcdef", "gu\xe9ss-0123456789abcdef".encode("latin-1"), b"another-guess-0123456789"]
    assert len(guesses) == LIMIT
    for guess in guesses:
        r = httpx.get(limited.url + "/api/v1/experiments/e1", headers={"Authorization": b"Bearer " + guess})
        assert r.status_code == 403, r.text
    assert_too_many(limited.get("/api/v1/experiments"))
    with limited.client(own) as trial:
        assert_too_many(trial.get("/api/v1/experiments/e1"))
    # A refused login form says so too (the budget is the address's, not the route's).
    assert_too_many(login(limited, VIEWER))


def test_login_codes_count_and_a_valid_link_before_the_limit_works(tmp_path: Path) -> None:
    """An embedded server on a non-loopback address, with the default limit of 10."""
    with EmbeddedServer(Engine(Store(tmp_path / "tuner.db")), ADMIN, host="0.0.0.0") as server:
        url = server.url.replace("0.0.0.0", "127.0.0.1")  # the limit is per client address, not per bind
        with httpx.Client(base_url=url) as c:
            for _ in range(9):
                r = c.get("/ui/login?code=made-up", follow_redirects=False)
                assert r.status_code == 303 and r.headers["location"] == "/ui/login?error=code"
            r = c.get(server.login_link().removeprefix(server.url), follow_redirects=False)
            assert r.status_code == 303 and r.headers["location"] == "/ui/" and "autotune_ui" in r.cookies
            for _ in range(10):
                assert c.get("/ui/login?code=made-up", follow_redirects=False).status_code == 303
            assert_too_many(c.get(server.login_link().removeprefix(server.url), follow_redirects=False))
            r = c.get("/ui/login?code=made-up", headers={"X-Forwarded-For": "198.51.100.7"}, follow_redirects=False)
            assert_too_many(r)  # clients here are 127.0.0.1: a forged header changes nothing


def test_local_mode_on_loopback_is_never_locked_out(tmp_path: Path) -> None:
    """Local mode's server listens on 127.0.0.1, where the controller, the trials and the
    browser share one address: stale login links must not lock the controller out."""
    with EmbeddedServer(Engine(Store(tmp_path / "tuner.db")), ADMIN) as server, httpx.Client(base_url=server.url) as c:
        for _ in range(25):
            r = c.get("/ui/login?code=made-up", follow_redirects=False)
            assert r.status_code == 303 and r.headers["location"] == "/ui/login?error=code"
        r = c.get(server.login_link().removeprefix(server.url), follow_redirects=False)
        assert r.status_code == 303 and "autotune_ui" in r.cookies
        assert c.get("/api/v1/experiments", headers={"Authorization": f"Bearer {ADMIN}"}).status_code == 200


@pytest.fixture
def short_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServerProcess]:
    """A limit of 2 failures per 2 seconds: a block short enough to wait out in a test."""
    monkeypatch.setenv("AUTOTUNE_LOGIN_MAX_FAILURES", "2")
    monkeypatch.setenv("AUTOTUNE_LOGIN_FAILURE_WINDOW", "2")
    s = ServerProcess(tmp_path / "tuner.db", free_port())
    s.start()
    yield s
    s.stop()


def block(server: ServerProcess) -> None:
    """Two unknown tokens from 127.0.0.1, and the right one is refused for a while."""
    for _ in range(2):
        assert httpx.get(server.url + "/api/v1/experiments", headers={"Authorization": "Bearer guess-0123456789abcdef"}).status_code == 403
    r = httpx.get(server.url + "/api/v1/experiments", headers={"Authorization": f"Bearer {ADMIN}"})
    assert r.status_code == 429 and 0 < int(r.headers["retry-after"]) <= 2


def test_controller_client_and_sdk_wait_out_a_block_instead_of_failing(short_block: ServerProcess) -> None:
    """A legitimate client sharing an address with a guesser (trials on one node, a NAT) is
    refused too; the controller's client and the trial SDK wait for Retry-After and go on,
    so no call and no metric report is lost."""
    block(short_block)
    assert HttpClient(short_block.url, ADMIN, retry_seconds=30).list_experiments() == []
    block(short_block)
    code = "import autotune, json\nprint(json.dumps(autotune._request('GET', '/api/v1/experiments', None)))\n"
    env = {**os.environ, "AUTOTUNE_SERVER_URL": short_block.url, "AUTOTUNE_TOKEN": ADMIN, "AUTOTUNE_REPORT_TIMEOUT": "30"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == []
