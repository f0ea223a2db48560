"""Trials as local processes: the first task's first container, run on this machine.

Each trial runs in its own process group (so a kill reaches everything it spawned), with
its stdout and stderr in ``<output>/trials/<trial>/trial.log``. A thread per process
waits for it and queues its exit, so the controller wakes the moment a trial ends.
With ``devices``, at most one trial runs per device and it sees only that device.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from autotune_operator.executors.base import TrialExit, TrialLaunch, substitute

KILL_GRACE_SECONDS = 5.0


@dataclass(frozen=True)
class ProcessTemplate:
    """What to run for each trial, taken from the manifest's first container."""

    command: tuple[str, ...]
    env: Mapping[str, str]
    workdir: str


@dataclass
class _Running:
    proc: subprocess.Popen[bytes]
    device: str | None
    killed: bool = False
    kill_reason: str | None = None


class LocalExecutor:
    starts_on_launch = True  # a process runs from its launch: the controller reports it then

    def __init__(self, template: ProcessTemplate, output: Path, devices: Sequence[str] = (), sdk_path: str | None = None) -> None:
        self.template = template
        self.output = output
        self.devices = list(devices)
        self.sdk_path = sdk_path
        self._running: dict[str, _Running] = {}
        self._exits: queue.Queue[TrialExit] = queue.Queue()
        self._lock = threading.Lock()

    def capacity(self) -> int | None:
        return len(self.devices) or None

    def trial_dir(self, trial_id: str) -> Path:
        return self.output / "trials" / trial_id

    def _free_device(self) -> str | None:
        if not self.devices:
            return None
        used = {r.device for r in self._running.values()}
        for d in self.devices:
            if d not in used:
                return d
        raise RuntimeError("no free device: the controller launched more trials than --devices allows")

    def launch(self, trial: TrialLaunch) -> None:
        with self._lock:
            if trial.trial_id in self._running:
                return  # idempotent
            tdir = self.trial_dir(trial.trial_id)
            tdir.mkdir(parents=True, exist_ok=True)
            _kill_orphan(tdir / "pid", trial.trial_id)
            env = dict(os.environ)
            env.update({k: substitute(v, trial.parameters) for k, v in self.template.env.items()})
            env.update(trial.env)
            if trial.env.get("PIPESTEP") == "fullytrain":
                env.pop("EPOCHS", None)  # seed 000: final training runs without EPOCHS
            env["AUTOTUNE_TRIAL_DIR"] = str(tdir)
            if self.sdk_path:
                env["PYTHONPATH"] = os.pathsep.join(p for p in (self.sdk_path, env.get("PYTHONPATH")) if p)
            device = self._free_device()
            if device is not None:
                env["CUDA_VISIBLE_DEVICES"] = device
                env["ASCEND_RT_VISIBLE_DEVICES"] = device
                env["DEVICE_ID"] = device
            argv = [substitute(a, trial.parameters) for a in self.template.command]
            log = open(tdir / "trial.log", "ab")
            try:
                proc = subprocess.Popen(
                    argv, cwd=self.template.workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, start_new_session=True,
                )
            finally:
                log.close()
            (tdir / "pid").write_text(str(proc.pid))
            r = _Running(proc, device)
            self._running[trial.trial_id] = r
            threading.Thread(target=self._wait, args=(trial.trial_id, r), daemon=True).start()

    def _wait(self, trial_id: str, r: _Running) -> None:
        code = r.proc.wait()
        with self._lock:
            self._running.pop(trial_id, None)
        (self.trial_dir(trial_id) / "pid").unlink(missing_ok=True)
        msg = r.kill_reason if r.killed else (f"killed by signal {-code}" if code < 0 else None)
        self._exits.put(TrialExit(trial_id, code, r.killed, msg))

    def active(self) -> set[str]:
        with self._lock:
            return set(self._running)

    def started(self) -> dict[str, float]:
        return {}  # nothing beyond the launch, which the controller reported as the start

    def poll(self) -> list[TrialExit]:
        out = []
        while True:
            try:
                out.append(self._exits.get_nowait())
            except queue.Empty:
                return out

    def wait(self, timeout: float) -> None:
        """Block until a trial exits (the exit stays queued for ``poll``) or ``timeout``."""
        try:
            ex = self._exits.get(timeout=timeout)
        except queue.Empty:
            return
        self._exits.put(ex)

    def kill(self, trial_id: str, reason: str) -> None:
        with self._lock:
            r = self._running.get(trial_id)
            if r is None or r.killed:
                return
            r.killed, r.kill_reason = True, reason
        _signal_group(r.proc.pid, signal.SIGTERM)
        threading.Thread(target=self._escalate, args=(r,), daemon=True).start()

    @staticmethod
    def _escalate(r: _Running) -> None:
        try:
            r.proc.wait(timeout=KILL_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            _signal_group(r.proc.pid, signal.SIGKILL)

    def shutdown(self) -> None:
        for tid in list(self.active()):
            self.kill(tid, "executor shut down")
        deadline = time.monotonic() + KILL_GRACE_SECONDS + 1
        while self.active() and time.monotonic() < deadline:
            time.sleep(0.05)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _kill_orphan(pid_file: Path, trial_id: str) -> None:
    """A trial process left by a controller that was killed: end it before relaunching."""
    try:
        pid = int(pid_file.read_text())
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except (OSError, ValueError):
        return
    if f"AUTOTUNE_TRIAL_ID={trial_id}".encode() in environ.split(b"\0"):
        _signal_group(pid, signal.SIGKILL)
