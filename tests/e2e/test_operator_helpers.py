"""Shared pieces of the operator e2e tests (no tests here): the CRD, a tuner server and
the operator as local processes, experiments' manifests, Jobs and Events. The manifest
builder and waiting for a phase live in kube_harness.experiments (bench/ uses them too)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import yaml

from kube_harness.experiments import experiment_manifest
from tests.integration.conftest import ADMIN
from tests.integration.conftest import ServerProcess as TunerServer  # the same real tuner-server process

ROOT = Path(__file__).resolve().parents[2]
CRD = str(ROOT / "crds" / "autotuneexperiments.yaml")
# The T9k manual's example, verbatim (shared with the spec tests).
SEED_EXAMPLE = (ROOT / "tests" / "fixtures" / "seed-001-example.yaml").read_text()
LABEL = "autotune.tensorstack.dev/experiment"  # the operator's label on an experiment's workloads
X_SPACE = '{"x": {"_type": "choice", "_value": [1, 2, 3, 4]}}'


def install_crd(cluster) -> None:
    """The CRD and the admission policy next to it (everything in crds/), once the policy is
    in force: the apiserver takes up a (re)applied binding a moment after the apply returns
    (test_operator_restart_after_refused_edit and test_crd_rules_old_objects remove it), and
    a test expecting its refusal must not run before. Probed with a dry run (nothing made)."""
    cluster.kubectl("apply", "-f", str(ROOT / "crds"))
    cluster.wait_crd_established("autotuneexperiments.tensorstack.dev")
    probe = yaml.safe_load(SEED_EXAMPLE)
    probe["metadata"] = {"generateName": "policy-probe-"}
    probe["spec"]["searchSpace"] = [1]  # the policy's refusal (the CRD cannot see this schemaless field)
    wait_for(lambda: "spec.searchSpace must be" in cluster.kubectl(
        "create", "--dry-run=server", "-n", "default", "-f", "-", input=json.dumps(probe), check=False).stderr,
        60, "the admission policy in force")


def wait_for(probe: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


@dataclass
class OperatorProcess:
    """`autotune operator` against the test cluster, watching given namespaces (a flag,
    the rest from the environment as the Helm chart sets it)."""

    cluster: Any
    server: TunerServer
    namespaces: list[str]
    log: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {
            **self.cluster.env(),
            "AUTOTUNE_SERVER_URL": self.server.url,
            "AUTOTUNE_ADMIN_TOKEN": ADMIN,
            **self.extra_env,
        }
        out = open(self.log, "ab")
        argv = [sys.executable, "-m", "autotune_operator.cli", "operator", "--namespaces", ",".join(self.namespaces)]
        self.proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        out.close()

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


TRIAL_SCRIPT = '''\
import sys, time
import autotune
p = autotune.get_next_parameter()
x = float(p["x"])
for step in range(3):
    time.sleep(float(p.get("sleep", 0.05)))
    autotune.report_intermediate_result(x * (step + 1) / 3)
if p.get("fail"):
    sys.exit(3)
autotune.report_final_result({"default": x, "argv": sys.argv[1]})
'''


def trial_experiment(name: str, script: Path, *, space: str = X_SPACE, max_trials: int = 4,
                     **kw: Any) -> dict[str, Any]:
    """An experiment whose master runs `script --x=<x>` (TRIAL_SCRIPT's contract); the rest
    as in kube_harness.experiments.experiment_manifest."""
    return experiment_manifest(name, [sys.executable, str(script), "--x=${parameters.x}"], space=space,
                               max_trials=max_trials, **kw)


def apply_manifest(cluster, ns: str, manifest: dict[str, Any]):
    return cluster.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(manifest))


def jobs(cluster, ns: str, exp: str) -> list[dict[str, Any]]:
    """The experiment's trial Jobs (by the operator's label)."""
    out = cluster.kubectl("get", "jobs", "-n", ns, "-l", f"{LABEL}={exp}", "-o", "json").stdout
    return json.loads(out)["items"]


def stopped_in_place(cluster, ns: str, trial: str) -> list[dict[str, Any]] | None:
    """The pods of a trial the operator stopped, once the kubelet (the fake node agent) has
    stopped them for the activeDeadlineSeconds the operator set (workloads/stop_in_place.py):
    each kept, Failed with reason DeadlineExceeded. None until then (or if any was deleted)."""
    out = cluster.kubectl("get", "pods", "-n", ns, "-l", f"autotune.tensorstack.dev/trial={trial}", "-o", "json").stdout
    pods = json.loads(out)["items"]
    done = [p for p in pods if p["spec"].get("activeDeadlineSeconds") == 1 and not p["metadata"].get("deletionTimestamp")
            and (p.get("status") or {}).get("phase") == "Failed" and p["status"].get("reason") == "DeadlineExceeded"]
    return pods if pods and len(done) == len(pods) else None


def events_of(cluster, ns: str, name: str) -> list[dict[str, Any]]:
    """The Events whose involved object is `name` (the experiment's, mostly)."""
    return json.loads(cluster.kubectl("get", "events", "-n", ns, "--field-selector",
                                      f"involvedObject.name={name}", "-o", "json").stdout)["items"]


@contextmanager
def running_operator(cluster, tmp: Path, namespaces: list[str],
                     extra_env: dict[str, str] | None = None) -> Iterator[tuple[TunerServer, OperatorProcess]]:
    """A tuner server (database in tmp) and the operator watching `namespaces` (log in
    tmp/operator.log), stopped again in reverse order however the block ends."""
    server = TunerServer(tmp / "tuner.db")
    server.start()
    try:
        op = OperatorProcess(cluster, server, namespaces, tmp / "operator.log", extra_env=dict(extra_env or {}))
        op.start()
        try:
            yield server, op
        finally:
            op.stop()
    finally:
        server.stop()


@contextmanager
def operator_env(cluster, tmp: Path, ns_prefix: str, extra_env: dict[str, str] | None = None,
                 script: str | None = TRIAL_SCRIPT) -> Iterator[dict[str, Any]]:
    """What an operator test module's `env` fixture yields: the CRD installed, `script`
    written to tmp/trial.py, a fresh namespace, and a tuner server + operator watching it.
    Keys: ns, tmp, script (the path, or None), server, op."""
    install_crd(cluster)
    path = None
    if script is not None:
        path = tmp / "trial.py"
        path.write_text(script)
    ns = cluster.new_namespace(ns_prefix)
    with running_operator(cluster, tmp, [ns], extra_env) as (server, op):
        yield {"ns": ns, "tmp": tmp, "script": path, "server": server, "op": op}
