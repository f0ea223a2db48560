"""Shared pieces of the operator e2e tests (no tests here): the CRD, a tuner server and
the operator as local processes, waiting for an experiment's status."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from tests.integration.conftest import ADMIN
from tests.integration.conftest import ServerProcess as TunerServer  # the same real tuner-server process

ROOT = Path(__file__).resolve().parents[2]
CRD = str(ROOT / "crds" / "autotuneexperiments.yaml")
# The T9k manual's example, verbatim (shared with the spec tests).
SEED_EXAMPLE = (ROOT / "tests" / "fixtures" / "seed-001-example.yaml").read_text()


def install_crd(cluster) -> None:
    """The CRD and the admission policy next to it (everything in crds/)."""
    cluster.kubectl("apply", "-f", str(ROOT / "crds"))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                    "crd/autotuneexperiments.tensorstack.dev")


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


def get_ate(cluster, ns: str, name: str) -> dict[str, Any]:
    r = cluster.kubectl("get", "ate", name, "-n", ns, "-o", "json", check=False)
    return json.loads(r.stdout) if r.returncode == 0 else {}


def phase_of(cluster, ns: str, name: str) -> str | None:
    return (get_ate(cluster, ns, name).get("status") or {}).get("phase")


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


def experiment_yaml(name: str, script: Path, *, max_trials: int = 4, concurrency: int = 1,
                    space: str = '{"x": {"_type": "choice", "_value": [1, 2, 3, 4]}}',
                    max_seconds: int | None = None, tuner: str = "GridSearch", extra_meta: str = "",
                    training_type: str = "pytorch", tasks: str | None = None) -> str:
    import textwrap

    limit = f"  maxExecSeconds: {max_seconds}\n" if max_seconds else ""
    if tasks is None:
        tasks = textwrap.dedent(f"""\
              - type: master
                replicas: 1
                template:
                  spec:
                    containers:
                      - name: {training_type}
                        image: python:3.11
                        command: ["{sys.executable}", "{script}", "--x=${{parameters.x}}"]
            """)
    tasks = textwrap.indent(textwrap.dedent(tasks), "      ")
    return (
        "apiVersion: tensorstack.dev/v1beta1\nkind: AutoTuneExperiment\n"
        f"metadata:\n  name: {name}\n{extra_meta}"
        f"spec:\n{limit}  maxTrialNum: {max_trials}\n  trialConcurrency: {concurrency}\n"
        f"  searchSpace: '{space}'\n"
        f"  trainingConfig:\n    type: {training_type}\n    tasks:\n{tasks}"
        f"  tuner:\n    builtinTunerName: {tuner}\n    classArgs: '{{\"optimize_mode\": \"maximize\"}}'\n"
    )


def apply_text(cluster, ns: str, text: str):
    return cluster.kubectl("apply", "-n", ns, "-f", "-", input=text)
