"""`autotune run --server http://127.0.0.1:PORT` from a shell with a proxy set (http_proxy, as
behind a corporate proxy) and no no_proxy for 127.0.0.1: the controller's client
(tuner_server/client.py) still reaches a tuner server on this machine's loopback, where no proxy
could ever reach; a host that is not a loopback still follows the environment."""

from __future__ import annotations

import sys
import urllib.request
from pathlib import Path

import pytest

from tests.integration.conftest import ADMIN, TRIALS, ServerProcess, free_port, manifest, read_status, run_autotune, write_manifest
from tuner_server.client import HttpClient


def direct_global_opener(monkeypatch: pytest.MonkeyPatch) -> None:
    """urlopen's process-wide opener as an earlier use in this process leaves it when no proxy
    was set then (in CI the e2e tier runs first), or as code that installs its own opener
    does: going direct. The client must not take it (it did before each client had its own
    opener: these tests saw 'name not known' for 'refused'). Put back after the test."""
    monkeypatch.setattr(urllib.request, "_opener", urllib.request.build_opener(urllib.request.ProxyHandler({})))


def dead_proxy_env() -> dict[str, str]:
    proxy = f"http://127.0.0.1:{free_port()}"  # a proxy that is not there: anything sent to it fails
    return {"http_proxy": proxy, "HTTP_PROXY": proxy, "https_proxy": proxy, "HTTPS_PROXY": proxy,
            "no_proxy": "", "NO_PROXY": "", "AUTOTUNE_REPORT_TIMEOUT": "5"}


def test_autotune_run_with_a_loopback_server_bypasses_the_proxy(tmp_path: Path, server: ServerProcess) -> None:
    space = {"alpha": {"_type": "loguniform", "_value": [1e-5, 1e-2]}, "eta0": {"_type": "loguniform", "_value": [1e-3, 1e-1]}}
    doc = manifest(name="proxied", space=space, max_trials=2, concurrency=1,
                   command=[sys.executable, str(TRIALS / "sgd_epochs.py"), "--epochs", "2"])
    path = write_manifest(tmp_path / "e.yaml", doc)
    r = run_autotune(["run", str(path), "--output", str(tmp_path / "out"), "--server", server.url, "--quiet"],
                     env={**dead_proxy_env(), "AUTOTUNE_ADMIN_TOKEN": ADMIN}, timeout=300)
    # Before the fix the first call (register) went to the dead proxy and was retried as an
    # unreachable server until the client's retry budget ran out.
    assert r.returncode == 0, r.stderr[-3000:]
    assert read_status(tmp_path / "out", "proxied")["trials"]["succeeded"] == 2


def test_the_client_still_uses_the_proxy_for_other_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    # The environment of this process (not production code) is what changes here.
    for k, v in dead_proxy_env().items():
        monkeypatch.setenv(k, v)
    direct_global_opener(monkeypatch)
    c = HttpClient("http://tuner.invalid:8080", ADMIN, timeout=2, retry_seconds=0)
    with pytest.raises(OSError) as e:
        c.list_experiments()
    # Through the (dead) proxy: connection refused; not through it: the name does not resolve.
    assert "refused" in str(e.value).lower(), e.value


def test_no_proxy_is_respected_for_other_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in dead_proxy_env().items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("no_proxy", "tuner.invalid")
    monkeypatch.setenv("NO_PROXY", "tuner.invalid")
    c = HttpClient("http://tuner.invalid:8080", ADMIN, timeout=2, retry_seconds=0)
    with pytest.raises(OSError) as e:
        c.list_experiments()
    assert "refused" not in str(e.value).lower(), e.value
