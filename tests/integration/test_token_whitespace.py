"""A token read with whitespace around it (a Secret made with `kubectl create secret
--from-file` ends in the file's newline; an `export` with a stray space) is the token without
it, on the server and on the clients, over real HTTP. An HTTP header cannot carry such
whitespace (it is dropped when the header is read), so the padded value could never match."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Iterator

import pytest

from autotune_operator.runtime import Settings
from tests.integration.conftest import ADMIN, ServerProcess, free_port, manifest, read_status, run_autotune, write_manifest
from tuner_server.client import HttpClient

VIEWER = "viewer-token-0123456789"
EXP_TOKEN = "experiment-token-0123456789"
CONFIG = {"searchSpace": '{"x": {"_type": "choice", "_value": [1, 2]}}', "tuner": {"name": "Random"}, "optimizeMode": "maximize"}


@pytest.fixture
def padded_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """Its admin and viewer tokens as a Secret's keys made from files (trailing newline) or
    an env var with spaces would give them."""
    s = ServerProcess(tmp_path / "tuner.db", free_port(),
                      extra_env={"AUTOTUNE_ADMIN_TOKEN": ADMIN + "\n", "AUTOTUNE_VIEWER_TOKEN": f"  {VIEWER} \n"})
    s.start()
    yield s
    s.stop()


def test_the_servers_env_tokens_are_read_without_surrounding_whitespace(padded_server: ServerProcess) -> None:
    with padded_server.client(ADMIN) as c:
        r = c.get("/api/v1/experiments")
        assert r.status_code == 200, r.text
    with padded_server.client(VIEWER) as c:
        r = c.get("/metrics")
        assert r.status_code == 200, r.text
    with padded_server.client("wrong-token-0123456789") as c:  # still a check, not open
        assert c.get("/api/v1/experiments").status_code == 403


def test_a_registration_token_with_surrounding_whitespace_is_the_one_trials_present(server: ServerProcess) -> None:
    with server.client() as admin:
        r = admin.put("/api/v1/experiments/e1", json={"name": "e1", "config": CONFIG, "token": f" {EXP_TOKEN}\n"})
        assert r.status_code == 200, r.text
        assert r.json()["token"] == EXP_TOKEN
        # The same PUT again (a client's retry) is the same experiment, not a conflict.
        again = admin.put("/api/v1/experiments/e1", json={"name": "e1", "config": CONFIG, "token": f" {EXP_TOKEN}\n"})
        assert again.status_code == 200, again.text
    with server.client(EXP_TOKEN) as trial:
        r = trial.get("/api/v1/experiments/e1")
        assert r.status_code == 200, r.text


def test_the_operators_env_token_is_read_without_its_newline(server: ServerProcess) -> None:
    settings = Settings.from_env({"AUTOTUNE_SERVER_URL": server.url, "AUTOTUNE_ADMIN_TOKEN": ADMIN + "\n"})
    assert settings.admin_token == ADMIN
    assert HttpClient(server.url, settings.admin_token, retry_seconds=5).list_experiments() == []
    with pytest.raises(SystemExit, match="AUTOTUNE_ADMIN_TOKEN"):  # blank is unset, not a token
        Settings.from_env({"AUTOTUNE_SERVER_URL": server.url, "AUTOTUNE_ADMIN_TOKEN": " \n"})


def test_autotune_run_with_server_reads_its_env_token_without_the_newline(tmp_path: Path, server: ServerProcess) -> None:
    m = write_manifest(tmp_path / "e.yaml", manifest(max_trials=1, concurrency=1))
    r = run_autotune(["run", str(m), "--output", str(tmp_path / "out"), "--server", server.url, "--quiet"],
                     env={"AUTOTUNE_ADMIN_TOKEN": f" {ADMIN}\n"})
    assert r.returncode == 0, r.stderr
    assert read_status(tmp_path / "out", "toy")["trials"]["succeeded"] == 1


SDK_TRIAL = textwrap.dedent("""
    import autotune
    assert autotune.report_intermediate_result(0.25) is False
    autotune.report_final_result(0.5)
""")


def test_the_sdks_env_token_is_read_without_its_newline(server: ServerProcess) -> None:
    with server.client() as admin:
        r = admin.put("/api/v1/experiments/e2", json={"name": "e2", "config": CONFIG, "token": EXP_TOKEN})
        assert r.status_code == 200, r.text
        tid = admin.post("/api/v1/experiments/e2/trials", json={}).json()["trialId"]
    # A trial's token from a Secret key made with --from-file: the file's newline is kept.
    env = {**os.environ, "AUTOTUNE_SERVER_URL": server.url, "AUTOTUNE_TOKEN": f" {EXP_TOKEN}\n",
           "AUTOTUNE_EXPERIMENT_ID": "e2", "AUTOTUNE_TRIAL_ID": tid, "AUTOTUNE_REPORT_TIMEOUT": "30"}
    run = subprocess.run([sys.executable, "-c", SDK_TRIAL], env=env, capture_output=True, text=True, timeout=120)
    # Before the fix urllib refused the header ('Invalid header value'): the trial crashed.
    assert run.returncode == 0, run.stderr[-2000:]
    trial = server.get(f"/api/v1/experiments/e2/trials/{tid}").json()
    assert (trial["intermediate"], trial["value"]) == ([0.25], 0.5), trial
