"""The tuner server's GET /metrics over real HTTP: a real experiment (`autotune run --server`,
trial processes training SGD on digits) moves the counters by exactly what happened, the
hand-driven API moves each trial-state counter once, and scraping needs the viewer or admin
token unless the server runs with --metrics-auth none."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import ADMIN, TRIALS, ServerProcess, free_port, manifest, run_autotune, write_manifest
from tuner_server.embedded import EmbeddedServer
from tuner_server.engine import Engine
from tuner_server.store import Store

VIEWER = "test-viewer-token-0123456789"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str, token: str | None = VIEWER) -> Samples:
    r = httpx.get(url + "/metrics", headers={"Authorization": f"Bearer {token}"} if token else {}, timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    out: Samples = {}
    for fam in text_string_to_metric_families(r.text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def get(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def viewer_server(tmp_path: Path):
    s = ServerProcess(tmp_path / "tuner.db", free_port(), extra_env={"AUTOTUNE_VIEWER_TOKEN": VIEWER})
    s.start()
    yield s
    s.stop()


def test_a_real_experiment_moves_the_counters_by_what_happened(viewer_server: ServerProcess, tmp_path: Path):
    space = {"alpha": {"_type": "loguniform", "_value": [1e-6, 1e-1]}, "eta0": {"_type": "loguniform", "_value": [1e-4, 1.0]}}
    doc = manifest(name="metrics", space=space, command=[sys.executable, str(TRIALS / "sgd_epochs.py"), "--epochs", "4"],
                   tuner="TPE", max_trials=6, concurrency=2,
                   assessor={"builtinAssessorName": "Medianstop", "classArgs": json.dumps({"start_step": 2})})
    before = scrape(viewer_server.url)
    assert get(before, "autotune_suggestions_total", algorithm="TPE", outcome="trial") == 0
    r = run_autotune(["run", str(write_manifest(tmp_path / "e.yaml", doc)), "--output", str(tmp_path / "out"),
                      "--server", viewer_server.url], env={"AUTOTUNE_ADMIN_TOKEN": ADMIN}, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    with viewer_server.client() as c:
        trials = c.get("/api/v1/experiments/local.metrics/trials").json()
    assert len(trials) == 6
    by_state: dict[str, int] = {}
    for t in trials:
        by_state[t["state"]] = by_state.get(t["state"], 0) + 1
    reports = sum(len(t["intermediate"]) for t in trials)

    m = scrape(viewer_server.url)
    assert get(m, "autotune_experiments_registered_total", algorithm="TPE") == 1
    assert get(m, "autotune_suggestions_total", algorithm="TPE", outcome="trial") == 6
    asked = sum(v for (name, labels), v in m.items() if name == "autotune_suggestions_total" and ("algorithm", "TPE") in labels)
    assert get(m, "autotune_suggestion_duration_seconds_count", algorithm="TPE") == asked >= 6
    for state in ("SUCCEEDED", "FAILED", "EARLY_STOPPED", "STOPPED"):
        assert get(m, "autotune_trials_ended_total", algorithm="TPE", state=state) == by_state.get(state, 0), state
        assert get(m, "autotune_trials", algorithm="TPE", state=state) == by_state.get(state, 0), state
    assert by_state.get("SUCCEEDED", 0) >= 1, by_state
    assert get(m, "autotune_experiments", algorithm="TPE", status="IDLE") == 1
    route = "/api/v1/experiments/{exp_id}/trials/{trial_id}/intermediate"
    assert get(m, "autotune_http_requests_total", method="POST", route=route, status="200") == reports
    assert get(m, "autotune_http_request_duration_seconds_count", method="POST", route=route) == reports
    final_route = "/api/v1/experiments/{exp_id}/trials/{trial_id}/final"
    # every succeeded trial reported a final result (an early-stopped one may have, too)
    assert 6 >= get(m, "autotune_http_requests_total", method="POST", route=final_route, status="200") >= by_state["SUCCEEDED"]
    # the route template is the label, never a path with an experiment or trial name
    assert not any("local.metrics" in v for (_, labels) in m for (_, v) in labels)


def test_each_trial_end_counts_once_and_replays_are_not_suggestions(viewer_server: ServerProcess):
    config = {"searchSpace": json.dumps({"x": {"_type": "uniform", "_value": [0, 1]}}), "tuner": {"name": "Random"}}
    base = "/api/v1/experiments/e1"
    with viewer_server.client() as c:
        assert c.put(base, json={"name": "e1", "config": config}).status_code == 200
        assert c.put(base, json={"name": "e1", "config": config}).status_code == 200  # same again: not a new experiment
        ids = [c.post(f"{base}/trials", json={"sequence": i}).json()["trialId"] for i in range(3)]
        assert c.post(f"{base}/trials", json={"sequence": 1}).json()["trialId"] == ids[1]  # a controller's retry
        c.post(f"{base}/trials/{ids[0]}/final", json={"metric": 0.5}).raise_for_status()
        for _ in range(2):  # ending an ended trial changes nothing, and counts nothing
            assert c.post(f"{base}/trials/{ids[0]}/end", json={"exitCode": 0}).json()["state"] == "SUCCEEDED"
            assert c.post(f"{base}/trials/{ids[1]}/end", json={"exitCode": 1}).json()["state"] == "FAILED"
        c.post(f"{base}/trials/{ids[2]}/stop", json={"reason": "test"}).raise_for_status()
        assert c.post(f"{base}/trials/{ids[2]}/end", json={"killed": True}).json()["state"] == "EARLY_STOPPED"
        assert c.get("/no/such/path").status_code == 404
        m = scrape(viewer_server.url)
        assert get(m, "autotune_experiments_registered_total", algorithm="Random") == 1
        assert get(m, "autotune_suggestions_total", algorithm="Random", outcome="trial") == 3
        assert get(m, "autotune_suggestion_duration_seconds_count", algorithm="Random") == 3
        assert get(m, "autotune_http_requests_total", method="POST", route="/api/v1/experiments/{exp_id}/trials",
                   status="200") == 4
        assert get(m, "autotune_http_requests_total", method="PUT", route="/api/v1/experiments/{exp_id}", status="200") == 2
        for state in ("SUCCEEDED", "FAILED", "EARLY_STOPPED"):
            assert get(m, "autotune_trials_ended_total", algorithm="Random", state=state) == 1, state
        assert get(m, "autotune_http_requests_total", method="GET", route="<unmatched>", status="404") == 1
        assert get(m, "autotune_experiments", algorithm="Random", status="IDLE") == 1
        assert c.delete(base).status_code == 200
    m = scrape(viewer_server.url)
    assert get(m, "autotune_experiments_deleted_total") == 1
    assert get(m, "autotune_experiments", algorithm="Random", status="IDLE") == 0
    assert get(m, "autotune_trials_ended_total", algorithm="Random", state="FAILED") == 1  # counters keep their history


def test_metrics_need_the_viewer_or_admin_token(viewer_server: ServerProcess):
    url = viewer_server.url + "/metrics"
    with viewer_server.client() as c:
        config = {"searchSpace": json.dumps({"x": {"_type": "uniform", "_value": [0, 1]}}), "tuner": {"name": "Random"}}
        own = c.put("/api/v1/experiments/e1", json={"name": "e1", "config": config}).json()["token"]
    r = httpx.get(url)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert "autotune_" not in r.text
    assert httpx.get(url, headers={"Authorization": "Bearer not-a-token-at-all"}).status_code == 403
    assert httpx.get(url, headers={"Authorization": f"Bearer {own}"}).status_code == 403  # a trial's token is not enough
    assert scrape(viewer_server.url, VIEWER) and scrape(viewer_server.url, ADMIN)
    m = scrape(viewer_server.url)
    assert get(m, "autotune_http_requests_total", method="GET", route="/metrics", status="401") == 1
    assert get(m, "autotune_http_requests_total", method="GET", route="/metrics", status="403") == 2


def test_guessing_metrics_tokens_is_limited_like_any_login(tmp_path: Path):
    s = ServerProcess(tmp_path / "tuner.db", free_port(),
                      extra_env={"AUTOTUNE_VIEWER_TOKEN": VIEWER, "AUTOTUNE_LOGIN_MAX_FAILURES": "2"})
    s.start()
    try:
        codes = [httpx.get(s.url + "/metrics", headers={"Authorization": f"Bearer guess-{i}"}).status_code for i in range(3)]
        assert codes == [403, 403, 429]
        assert httpx.get(s.url + "/metrics", headers={"Authorization": f"Bearer {VIEWER}"}).status_code == 429
    finally:
        s.stop()


def test_metrics_auth_none_serves_without_a_token(tmp_path: Path):
    s = ServerProcess(tmp_path / "tuner.db", free_port(), extra_env={"AUTOTUNE_METRICS_AUTH": "none"})
    s.start()
    try:
        m = scrape(s.url, token=None)
        assert ("autotune_experiments_deleted_total", ()) in m
        assert httpx.get(s.url + "/api/v1/experiments").status_code == 401  # only /metrics is open
    finally:
        s.stop()


def test_a_misspelt_metrics_auth_is_refused_not_open(tmp_path: Path):
    r = subprocess.run([sys.executable, "-m", "tuner_server", "--db", str(tmp_path / "t.db"), "--port", str(free_port())],
                       env={**os.environ, "AUTOTUNE_ADMIN_TOKEN": ADMIN, "AUTOTUNE_METRICS_AUTH": "off"},
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "AUTOTUNE_METRICS_AUTH must be token or none" in r.stderr, r.stderr


def test_two_servers_in_one_process_keep_their_own_counts(tmp_path: Path):
    with EmbeddedServer(Engine(Store(tmp_path / "a.db")), ADMIN) as a, \
            EmbeddedServer(Engine(Store(tmp_path / "b.db")), ADMIN) as b:
        for _ in range(3):
            httpx.get(a.url + "/healthz")
        assert get(scrape(a.url, ADMIN), "autotune_http_requests_total", method="GET", route="/healthz", status="200") == 3
        assert get(scrape(b.url, ADMIN), "autotune_http_requests_total", method="GET", route="/healthz", status="200") == 0


class _Rendezvous(Engine):
    """Holds each register/suggest call until a second one arrives (or 2 s pass): two
    retries of one request that overlap, as a controller's retry after a timeout does."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.meet = threading.Barrier(2, timeout=2)

    def _wait(self) -> None:
        try:
            self.meet.wait()
        except threading.BrokenBarrierError:
            self.meet.reset()  # the other call was held back (by a lock of the server's): fine

    def register(self, *args: Any, **kwargs: Any) -> Any:
        self._wait()
        return super().register(*args, **kwargs)

    def suggest(self, *args: Any, **kwargs: Any) -> Any:
        self._wait()
        return super().suggest(*args, **kwargs)


def test_overlapping_retries_of_a_register_or_a_suggestion_count_once(tmp_path: Path):
    config = {"searchSpace": json.dumps({"x": {"_type": "uniform", "_value": [0, 1]}}), "tuner": {"name": "Random"}}
    base = "/api/v1/experiments/e1"
    auth = {"Authorization": f"Bearer {ADMIN}"}
    with EmbeddedServer(_Rendezvous(Store(tmp_path / "t.db")), ADMIN) as s:
        def twice(method: str, path: str, body: dict[str, Any]) -> list[int]:
            with ThreadPoolExecutor(2) as pool:
                rs = list(pool.map(lambda _: httpx.request(method, s.url + path, json=body, headers=auth, timeout=30),
                                   range(2)))
            return [r.status_code for r in rs]

        assert twice("PUT", base, {"name": "e1", "config": config}) == [200, 200]
        assert twice("POST", f"{base}/trials", {"sequence": 0}) == [200, 200]
        m = scrape(s.url, ADMIN)
    assert get(m, "autotune_experiments_registered_total", algorithm="Random") == 1
    assert get(m, "autotune_suggestions_total", algorithm="Random", outcome="trial") == 1
    assert get(m, "autotune_suggestion_duration_seconds_count", algorithm="Random") == 1


def test_imported_trials_are_neither_suggestions_nor_trial_ends(tmp_path: Path):
    config = {"searchSpace": json.dumps({"x": {"_type": "uniform", "_value": [0, 1]}}), "tuner": {"name": "TPE"}}
    base = "/api/v1/experiments/e1"
    auth = {"Authorization": f"Bearer {ADMIN}"}
    trials = [{"id": f"old-{i}", "parameters": {"x": i / 10}, "metric": i / 10, "ended": float(i)} for i in range(5)]
    with EmbeddedServer(Engine(Store(tmp_path / "t.db")), ADMIN) as s:
        assert httpx.put(s.url + base, json={"name": "e1", "config": config}, headers=auth).status_code == 200
        r = httpx.post(s.url + base + "/imported-trials", json={"sources": [{"name": "old", "trials": trials}]}, headers=auth)
        assert r.status_code == 200 and r.json()["imported"] == 5, r.text
        m = scrape(s.url, ADMIN)
    assert not any(name == "autotune_suggestions_total" for name, _ in m)
    assert not any(name == "autotune_trials_ended_total" for name, _ in m)
    assert sum(v for (name, _), v in m.items() if name == "autotune_trials") == 0
    assert get(m, "autotune_experiments", algorithm="TPE", status="PENDING") == 1
