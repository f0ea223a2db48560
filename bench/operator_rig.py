"""The pieces the operator benchmarks share (not a benchmark itself).

A real control plane (kube_harness: etcd, kube-apiserver, kube-controller-manager and the
fake-node agent that runs pods as local processes), the AutoTuneExperiment CRD, a tuner
server process and the operator process (`autotune operator`), all on loopback in one
temporary directory, torn down on exit. Used by bench/operator_latency.py and
bench/operator_memory.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import yaml

from kube_harness import build
from kube_harness.controlplane import ControlPlane
from kube_harness.experiments import experiment_manifest, get_experiment

ROOT = Path(__file__).resolve().parents[1]
CRD = ROOT / "crds" / "autotuneexperiments.yaml"
RESULTS = ROOT / "bench" / "results"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Rig:
    cluster: ControlPlane
    namespace: str
    tmp: Path
    server_url: str
    admin_token: str
    server: subprocess.Popen[bytes]
    operator: subprocess.Popen[bytes]
    operator_log: Path

    def kubectl(self, *args: str, input: str | None = None) -> str:
        return self.cluster.kubectl(*args, input=input).stdout

    def apply(self, manifest: str) -> None:
        self.kubectl("apply", "-n", self.namespace, "-f", "-", input=manifest)

    def status(self, name: str) -> dict:
        return get_experiment(self.cluster, self.namespace, name).get("status") or {}

    def operator_tail(self, n: int = 40) -> str:
        return "\n".join(self.operator_log.read_text(errors="replace").splitlines()[-n:])


def _wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


def _stop(p: subprocess.Popen[bytes]) -> None:
    if p.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()


@contextlib.contextmanager
def rig(operator_env: dict[str, str] | None = None, log=print) -> Iterator[Rig]:
    """Everything up; yields a :class:`Rig`; everything down again (also on errors)."""
    build.ensure_built(out=sys.stderr)
    tmp = Path(tempfile.mkdtemp(prefix="autotune-bench-"))
    cluster = ControlPlane(tmp / "cluster")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        cluster.start()
        log(f"control plane up in {cluster.started_seconds:.1f}s ({cluster.server})")
        cluster.kubectl("apply", "-f", str(CRD))
        cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                        "crd/autotuneexperiments.tensorstack.dev")
        ns = cluster.new_namespace("bench")
        token = secrets.token_hex(16)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [sys.executable, "-m", "tuner_server", "--db", str(tmp / "tuner.db"), "--port", str(port)],
            env={**os.environ, "AUTOTUNE_ADMIN_TOKEN": token}, start_new_session=True,
            stdout=open(tmp / "tuner.log", "wb"), stderr=subprocess.STDOUT,
        )
        procs.append(server)
        _wait_http(url + "/healthz")
        op_log = tmp / "operator.log"
        env = {**cluster.env(), "AUTOTUNE_SERVER_URL": url, "AUTOTUNE_ADMIN_TOKEN": token,
               "AUTOTUNE_NAMESPACES": ns, "AUTOTUNE_WORKLOAD_KIND": "job", **(operator_env or {})}
        operator = subprocess.Popen(
            [sys.executable, "-m", "autotune_operator.cli", "operator"], env=env, start_new_session=True,
            stdout=open(op_log, "wb"), stderr=subprocess.STDOUT,
        )
        procs.append(operator)
        yield Rig(cluster, ns, tmp, url, token, server, operator, op_log)
    finally:
        for p in reversed(procs):
            _stop(p)
        cluster.stop()


def experiment(name: str, command: list[str], *, max_trials: int, concurrency: int = 1,
               values: int = 64, tuner: str = "GridSearch") -> str:
    """An AutoTuneExperiment (YAML, so callers may join several with "---") whose trials
    are batch Jobs running `command` plus `--x=<x>`, x one of range(values); the manifest
    is the one the e2e tests build (kube_harness.experiments)."""
    space = json.dumps({"x": {"_type": "choice", "_value": list(range(values))}})
    return yaml.safe_dump(experiment_manifest(name, [*command, "--x=${parameters.x}"], space=space,
                                              max_trials=max_trials, concurrency=concurrency, tuner=tuner),
                          sort_keys=False)


def percentile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    if not s:
        return float("nan")
    k = (len(s) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def write_result(name: str, data: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    path.write_text(json.dumps(data, indent=2))
    return path
