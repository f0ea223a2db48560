"""Fixtures for the integration tier: real tuner servers, real `autotune run` processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

TRIALS = Path(__file__).parent / "trials"
ADMIN = "test-admin-token-0123456789"

# A test run started in the background of a non-interactive shell (`./scripts/test ... &`)
# inherits SIGINT ignored, and every `autotune run` it starts would inherit that too and shrug
# off the Ctrl-C the interrupt tests send (they then fail with exit 0 for 130). A handler of
# our own here is reset to the default in each child at exec, which an ignored one is not.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ServerProcess:
    """`python -m tuner_server` as a child process, restartable on the same port and DB."""

    db: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    extra_env: dict[str, str] = field(default_factory=dict)  # e.g. AUTOTUNE_VIEWER_TOKEN

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {**os.environ, "AUTOTUNE_ADMIN_TOKEN": ADMIN, **self.extra_env}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tuner_server", "--db", str(self.db), "--port", str(self.port)], env=env
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("tuner server did not start")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10)

    def client(self, token: str = ADMIN) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=10)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    s = ServerProcess(tmp_path / "tuner.db", free_port())
    s.start()
    yield s
    s.stop()


def manifest(
    name: str = "toy",
    space: dict[str, Any] | None = None,
    command: list[str] | None = None,
    tuner: str = "Random",
    class_args: dict[str, Any] | None = None,
    max_trials: int = 4,
    concurrency: int = 2,
    max_seconds: int | None = None,
    assessor: dict[str, Any] | None = None,
    env: list[dict[str, str]] | None = None,
    working_dir: str | None = None,
) -> dict[str, Any]:
    space = space or {"x": {"_type": "uniform", "_value": [-2, 2]}, "y": {"_type": "choice", "_value": [-1, 0, 1]}}
    container: dict[str, Any] = {
        "name": "trainer",
        "image": "python:3.11",
        "command": command or [sys.executable, str(TRIALS / "toy.py")],
    }
    if env:
        container["env"] = env
    if working_dir:
        container["workingDir"] = working_dir
    spec: dict[str, Any] = {
        "maxTrialNum": max_trials,
        "trialConcurrency": concurrency,
        "searchSpace": json.dumps(space),
        "trainingConfig": {"type": "pytorch", "tasks": [{"type": "master", "replicas": 1, "template": {"spec": {"containers": [container]}}}]},
        "tuner": {"builtinTunerName": tuner, "classArgs": json.dumps(class_args or {"optimize_mode": "maximize"})},
    }
    if max_seconds is not None:
        spec["maxExecSeconds"] = max_seconds
    if assessor is not None:
        spec["assessor"] = assessor
    return {"apiVersion": "tensorstack.dev/v1beta1", "kind": "AutoTuneExperiment", "metadata": {"name": name}, "spec": spec}


def write_manifest(path: Path, doc: dict[str, Any]) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def autotune_cmd() -> list[str]:
    exe = shutil.which("autotune", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "autotune_operator.cli"]


def run_autotune(args: list[str], env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        autotune_cmd() + args, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout
    )


def read_status(out: Path, name: str) -> dict[str, Any]:
    return json.loads((out / name / "status.json").read_text())


def exit_code_for(folder: Path) -> int:
    """What `autotune run` exits with for the experiment whose results are in ``folder``
    (f92d75c, README): 1 when it ended ERROR or with no result (no best trial, no Pareto
    front), else 0. Tests whose runs may or may not leave a trial succeeded compare with it."""
    s = json.loads((folder / "status.json").read_text())
    return 1 if s.get("phase") == "ERROR" or not (s.get("bestTrial") or s.get("paretoFront")) else 0


def read_records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


__all__ = ["ADMIN", "ServerProcess", "manifest", "write_manifest", "run_autotune", "read_status", "read_records", "pid_alive", "textwrap"]
