"""An operator killed right after it stopped a trial, before it recorded the trial's end: the
next operator process ends the trial as the stop meant, once, without running it again.

The operator talks to the tuner server through a proxy that refuses (503) every trial's "end"
once the test arms it (the trials talk to the server directly: AUTOTUNE_TRIAL_SERVER_URL), so
the stop is deleted on the cluster while the trial is still RUNNING in the tuner server; the
test then SIGKILLs that operator and starts another, talking to the server directly.

- maxTrialSeconds, the Job gone at once (Background deletion): FAILED with the
  maxTrialSeconds message (decide.stopped_before_restart, from the tuner server's start);
- maxTrialSeconds, the Job kept while it stops (a finalizer, as a training job's operator
  keeps its job) and the limit raised meanwhile: FAILED with the message of the stop, which
  the Job carries (the stop-reason annotation);
- a stop asked for the trial (the flag an assessor sets): EARLY_STOPPED, its last metric kept;
- the experiment's own stop (maxExecSeconds: TIMEOUT), the Job gone: STOPPED with the
  experiment's message (decide.experiment_stop_before_restart, on the state recorded);
- maxTrialSeconds with the stopped trial's pod kept (the operator's default: the pod stopped
  by activeDeadlineSeconds, its Job kept, stop_in_place.py): FAILED with the message the Job
  carries, the Job and pod still there.
The "Job gone" cases run the operator with AUTOTUNE_KEEP_STOPPED_PODS=false (a stopped
trial's Job deleted at once, as for training jobs).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import httpx
import pytest

from kube_harness.experiments import get_experiment, wait_for_phase
from tests.e2e.test_operator_helpers import (
    TRIAL_SCRIPT,
    OperatorProcess,
    TunerServer,
    apply_manifest,
    events_of,
    install_crd,
    jobs,
    stopped_in_place,
    trial_experiment,
    wait_for,
)
from tests.integration.conftest import ADMIN

LIMIT = 4  # maxTrialSeconds
HOLD = "e2e.autotune.tensorstack.dev/hold"  # a finalizer keeping a deleted Job visible
OVERDUE = f"ran longer than maxTrialSeconds ({LIMIT}s) and was stopped"


class EndRefusingProxy:
    """HTTP proxy to the tuner server; once ``armed``, answers every POST .../trials/<t>/end
    with 503 (and remembers the trial), so the operator cannot record a trial's end."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.armed = threading.Event()
        self.refused: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if proxy.armed.is_set() and self.command == "POST" and self.path.endswith("/end"):
                    proxy.refused.append(self.path.rsplit("/", 2)[-2])
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length", "connection")}
                r = httpx.request(self.command, proxy.upstream + self.path, headers=headers, content=body, timeout=60)
                self.send_response(r.status_code)
                for k, v in r.headers.items():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(r.content)))
                self.end_headers()
                self.wfile.write(r.content)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def env(kube_cluster, tmp_path_factory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("stoprestart")
    install_crd(kube_cluster)
    script = tmp / "trial.py"
    script.write_text(TRIAL_SCRIPT)
    ns = kube_cluster.new_namespace("stoprst")
    server = TunerServer(tmp / "tuner.db")
    server.start()
    proxy = EndRefusingProxy(server.url)
    try:
        yield {"ns": ns, "tmp": tmp, "script": script, "server": server, "proxy": proxy}
    finally:
        proxy.close()
        server.stop()


def operator(kube_cluster, env: dict[str, Any], log: str, proxied: bool, keep: bool = False) -> OperatorProcess:
    extra = {"AUTOTUNE_WORKLOAD_KIND": "job", "AUTOTUNE_RESYNC_SECONDS": "0.5",
             "AUTOTUNE_KEEP_STOPPED_PODS": "true" if keep else "false"}
    if proxied:
        extra |= {"AUTOTUNE_SERVER_URL": env["proxy"].url, "AUTOTUNE_TRIAL_SERVER_URL": env["server"].url}
    op = OperatorProcess(kube_cluster, env["server"], [env["ns"]], env["tmp"] / log, extra_env=extra)
    op.start()
    return op


def the_trial(env: dict[str, Any], uid: str) -> dict[str, Any]:
    (t,) = env["server"].get(f"/api/v1/experiments/{uid}/trials").json()
    return t


def reasons(kube_cluster, ns: str, name: str) -> list[str]:
    return sorted(e["reason"] for e in events_of(kube_cluster, ns, name))


def stop_then_die(kube_cluster, env: dict[str, Any], name: str, manifest: dict[str, Any], hold: bool = False,
                  stop_request: bool = False, keep: bool = False) -> tuple[str, str]:
    """Run the experiment's one trial under a proxied operator, let it stop the trial (past
    LIMIT, or asked by the test), and SIGKILL the operator as it tries to record the end."""
    ns, proxy = env["ns"], env["proxy"]
    proxy.armed.set()
    proxy.refused.clear()
    op = operator(kube_cluster, env, f"{name}-1.log", proxied=True, keep=keep)
    try:
        apply_manifest(kube_cluster, ns, manifest)
        (job,) = wait_for(lambda: jobs(kube_cluster, ns, name), 60, "the trial's Job")
        tid = job["metadata"]["name"]
        if hold:
            kube_cluster.kubectl("patch", "job", tid, "-n", ns, "--type=merge", "-p",
                                 json.dumps({"metadata": {"finalizers": [HOLD]}}))
        uid = get_experiment(kube_cluster, ns, name)["metadata"]["uid"]
        if stop_request:
            wait_for(lambda: the_trial(env, uid)["intermediate"], 60, "the trial's first report", interval=0.1)
            with env["server"].client() as c:
                assert c.post(f"/api/v1/experiments/{uid}/trials/{tid}/stop", json={"reason": "asked"}).status_code == 200
        wait_for(lambda: tid in proxy.refused, 60, "the operator trying to record the stopped trial's end", interval=0.05)
    finally:
        op.kill()  # SIGKILL: right after the stop, its end not recorded
    assert the_trial(env, uid)["state"] == "RUNNING", the_trial(env, uid)
    left = jobs(kube_cluster, ns, name)
    if keep:
        (j,) = left
        assert not j["metadata"].get("deletionTimestamp"), j["metadata"]
    elif hold:
        (j,) = left
        assert j["metadata"].get("deletionTimestamp"), j["metadata"]
    else:
        assert left == [], "a deleted Job is gone at once (Background)"
    return tid, uid


def restart_and_finish(kube_cluster, env: dict[str, Any], name: str, keep: bool = False) -> dict[str, Any]:
    op = operator(kube_cluster, env, f"{name}-2.log", proxied=False, keep=keep)
    try:
        return wait_for_phase(kube_cluster, env["ns"], name, "DONE", timeout=90, log=op.output)["status"]
    finally:
        op.stop()


def test_an_overdue_trial_whose_job_is_gone_ends_failed_after_the_operator_died(kube_cluster, env):
    ns, name = env["ns"], "gone"
    space = '{"x": {"_type": "choice", "_value": [1]}, "sleep": {"_type": "choice", "_value": [60]}}'
    tid, uid = stop_then_die(kube_cluster, env, name, trial_experiment(
        name, env["script"], max_trials=1, space=space, maxTrialSeconds=LIMIT))
    st = restart_and_finish(kube_cluster, env, name)
    t = the_trial(env, uid)
    assert t["state"] == "FAILED" and t["message"] == OVERDUE, t
    assert st["trials"]["failed"] == 1 and st["trials"]["stopped"] == 0, st
    # Not started again, each said once: one Job created (none now), one stop.
    assert jobs(kube_cluster, ns, name) == []
    assert reasons(kube_cluster, ns, name).count("TrialCreated") == 1, reasons(kube_cluster, ns, name)
    assert reasons(kube_cluster, ns, name).count("TrialStopped") == 1, reasons(kube_cluster, ns, name)


def test_a_stopping_job_keeps_its_stops_reason_though_the_limit_was_raised(kube_cluster, env):
    ns, name = env["ns"], "held"
    space = '{"x": {"_type": "choice", "_value": [1]}, "sleep": {"_type": "choice", "_value": [60]}}'
    tid, uid = stop_then_die(kube_cluster, env, name, trial_experiment(
        name, env["script"], max_trials=1, space=space, maxTrialSeconds=LIMIT), hold=True)
    try:
        (j,) = jobs(kube_cluster, ns, name)
        assert j["metadata"]["annotations"]["autotune.tensorstack.dev/stop-reason"] == OVERDUE, j["metadata"]
        # Raised while no operator runs: by the limit now the trial would not be overdue.
        r = kube_cluster.kubectl("patch", "ate", name, "-n", ns, "--type=merge", "-p",
                                 json.dumps({"spec": {"maxTrialSeconds": 3600}}), check=False)
        assert r.returncode == 0, r.stderr
        st = restart_and_finish(kube_cluster, env, name)
        t = the_trial(env, uid)
        assert t["state"] == "FAILED" and t["message"] == OVERDUE, t
        assert st["trials"]["failed"] == 1, st
        evs = reasons(kube_cluster, ns, name)
        assert evs.count("TrialCreated") == 1 and evs.count("TrialStopped") == 1, evs
    finally:
        kube_cluster.kubectl("patch", "job", tid, "-n", ns, "--type=json", "-p",
                             json.dumps([{"op": "remove", "path": "/metadata/finalizers"}]), check=False)


def test_a_trial_asked_to_stop_stays_early_stopped_with_its_last_metric_after_the_operator_died(kube_cluster, env):
    ns, name = env["ns"], "asked"
    space = '{"x": {"_type": "choice", "_value": [3]}, "sleep": {"_type": "choice", "_value": [8]}}'
    tid, uid = stop_then_die(kube_cluster, env, name, trial_experiment(
        name, env["script"], max_trials=1, space=space), stop_request=True)
    before = the_trial(env, uid)["intermediate"]
    st = restart_and_finish(kube_cluster, env, name)
    t = the_trial(env, uid)
    assert t["state"] == "EARLY_STOPPED", t
    assert before and t["intermediate"] == before and t["value"] == before[-1], (t, before)
    assert st["trials"]["earlyStopped"] == 1, st
    evs = reasons(kube_cluster, ns, name)
    assert evs.count("TrialCreated") == 1 and evs.count("TrialEarlyStopped") == 1, evs
    assert jobs(kube_cluster, ns, name) == []


def test_a_trial_the_timed_out_experiment_stopped_whose_job_is_gone_ends_stopped_after_the_operator_died(
        kube_cluster, env):
    ns, name = env["ns"], "timeout"
    space = '{"x": {"_type": "choice", "_value": [1]}, "sleep": {"_type": "choice", "_value": [60]}}'
    tid, uid = stop_then_die(kube_cluster, env, name, trial_experiment(
        name, env["script"], max_trials=1, space=space, maxExecSeconds=10))  # (time for the trial to begin)
    # The dead operator already wrote TIMEOUT (not finished: no completionTime); the next one finishes it.
    op = operator(kube_cluster, env, f"{name}-2.log", proxied=False)
    try:
        st = wait_for(lambda: (get_experiment(kube_cluster, ns, name).get("status") or {}).get("completionTime")
                      and get_experiment(kube_cluster, ns, name)["status"], 90, "the experiment finished")
    finally:
        op.stop()
    assert st["phase"] == "TIMEOUT", st
    t = the_trial(env, uid)
    assert t["state"] == "STOPPED" and t["message"] == "maxExecSeconds (10s) reached after 0 trial(s) ended", t
    assert st["trials"]["stopped"] == 1, st
    # Not created again, and stopped once: one Job created (none now), one stop.
    assert jobs(kube_cluster, ns, name) == []
    evs = reasons(kube_cluster, ns, name)
    assert evs.count("TrialCreated") == 1 and evs.count("TrialStopped") == 1, evs


def test_an_overdue_trial_whose_pod_was_stopped_and_kept_ends_failed_after_the_operator_died(kube_cluster, env):
    ns, name = env["ns"], "kept"
    space = '{"x": {"_type": "choice", "_value": [1]}, "sleep": {"_type": "choice", "_value": [60]}}'
    tid, uid = stop_then_die(kube_cluster, env, name, trial_experiment(
        name, env["script"], max_trials=1, space=space, maxTrialSeconds=LIMIT), keep=True)
    wait_for(lambda: stopped_in_place(kube_cluster, ns, tid), 60, "the stopped trial's pod stopped and kept")
    st = restart_and_finish(kube_cluster, env, name, keep=True)
    t = the_trial(env, uid)
    assert t["state"] == "FAILED" and t["message"] == OVERDUE, t
    assert st["trials"]["failed"] == 1 and st["trials"]["stopped"] == 0, st
    # Neither deleted nor created again: its Job and its one pod are still there, stopped.
    (j,) = jobs(kube_cluster, ns, name)
    assert j["metadata"]["annotations"]["autotune.tensorstack.dev/stop-reason"] == OVERDUE, j["metadata"]
    assert len(stopped_in_place(kube_cluster, ns, tid) or []) == 1
    evs = reasons(kube_cluster, ns, name)
    assert evs.count("TrialCreated") == 1 and evs.count("TrialStopped") == 1, evs
