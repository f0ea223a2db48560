"""Trials as local processes: the first task's first container, run on this machine.

Each trial runs in its own process group (so a kill reaches everything it spawned), with
its stdout and stderr in ``<output>/trials/<trial>/trial.log``. A thread per process
waits for it and queues its exit, so the controller wakes the moment a trial ends.
With ``devices``, at most one trial runs per device and it sees only that device.

Trials outlive a killed `autotune run`: each is started through local_supervisor.py,
which records in ``<trial>/process.json`` its pid and, when it ends, its exit code. The
next run, asked to launch a trial that is not finished in the history, adopts the process
if it still runs (watching it instead of starting a second copy), ends it with the
recorded exit code if it finished meanwhile, and ends it STOPPED if its process died
unrecorded (killed together with autotune): nothing reported is lost and no trial runs
twice. The trials find the new run's tuner server through ``<output>/server.url``.

A stop the experiment makes is kept in ``<trial>/kill.json``: ``{"key", "reason", "cause"}``,
``cause`` a :class:`StopCause` (files written before it had only the reason, read by
:func:`read_kill`). A run started after the one that stopped the trial died ends it as that
one would have: FAILED for ``overdue``; ``user`` (Ctrl-C) and ``shutdown`` (the run stopped
on an error) are interruptions, as is a stop signal that reached the trial's own processes
(its supervisor records it): the attempt's end is reported with cause ``user``, the controller
puts the trial back to WAITING (Engine.requeue), and its next launch starts it anew, the old
attempt's files moved to ``interrupted/<n>/``.
A trial the restarted controller found stopped (``TrialLaunch.stopped``) that has no process
record is not started again: it ends with that stop's reason, as a cluster's workload that
is gone is not created again. One still running is adopted as it is (the next pass stops it
by the same rules, as on a cluster); one that died unrecorded died with the earlier run, and
says so (GONE_MESSAGE).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence

from autotune_operator.decide import is_overdue_reason
from autotune_operator.executors.base import (LogChunk, StopCause, TrialExit, TrialLaunch, complete_lines, expand_vars,
                                              substitute)
from autotune_operator.executors.loopback_proxy import no_proxy_for
from autotune_operator.executors.metrics_path import METRICS_PATH_VAR, PathPlan, plan_path
from autotune_operator.metric_files import file_source, not_a_metrics_file, read_new
from autotune_operator.spec import MetricsCollectorSpec, reads_files

log = logging.getLogger("autotune.local")

KILL_GRACE_SECONDS = 5.0
# At most this much of a trial's log is read per call (the rest on the next pass), so a
# trial that printed gigabytes between two passes cannot take the controller's memory.
READ_LOG_BYTES = 4 << 20
SUPERVISOR = str(Path(__file__).with_name("local_supervisor.py"))
FAILURE_FILE = "failure.txt"  # in the trial's folder: why it failed, in its own words
MAX_FAILURE_CHARS = 500  # of it in the trial's message (trials.csv, the summary)
_HAS_PROC = os.path.isdir("/proc/self")  # Linux; elsewhere (macOS) processes are checked with signal 0
# The trial's end as far as anyone recorded it: its process died with the `autotune run`
# that watched it (a whole container or process tree killed), so no exit code exists.
GONE_MESSAGE = ("its process was gone when autotune started again: it was killed with the previous "
                "'autotune run' and no exit code was recorded")


@dataclass(frozen=True)
class ProcessTemplate:
    """What to run for each trial, taken from the manifest's first container."""

    command: tuple[str, ...]
    env: Mapping[str, str]
    workdir: str


class _Process(Protocol):
    """A trial's supervisor: a child (Popen) or one adopted from an earlier run."""

    pid: int

    def wait(self, timeout: float | None = None) -> int | None: ...


@dataclass
class _Running:
    proc: _Process
    device: str | None
    key: str
    killed: bool = False
    kill_reason: str | None = None
    kill_cause: StopCause | None = None
    notes: int | None = None  # the read end of the supervisor's NOTES_FD pipe (our child only)


class _Adopted:
    """A trial process started by an earlier `autotune run` (not our child: no exit status
    from the kernel; its supervisor's record has it)."""

    def __init__(self, pid: int, record: Path) -> None:
        self.pid = pid
        self.record = record
        try:
            self._fd: int | None = os.pidfd_open(pid)
        except (AttributeError, OSError):  # no pidfd: poll /proc
            self._fd = None

    def wait(self, timeout: float | None = None) -> int | None:
        """The recorded exit code once the process is gone (None if none was recorded).
        Only the watcher thread waits without a timeout, on the pidfd; the kill escalation
        polls /proc instead, so no two threads share the descriptor."""
        if timeout is None and self._fd is not None:
            try:
                select.select([self._fd], [], [])
            finally:
                os.close(self._fd)
                self._fd = None
        else:
            deadline = None if timeout is None else time.monotonic() + timeout
            while _alive(self.pid):
                if deadline is not None and time.monotonic() >= deadline:
                    raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout or 0)
                time.sleep(0.1)
        rec = _read_record(self.record)
        return rec.get("exit") if rec else None


class LocalExecutor:
    starts_on_launch = True  # a process runs from its launch: the controller reports it then

    def __init__(self, template: ProcessTemplate, output: Path, devices: Sequence[str] = (), sdk_path: str | None = None,
                 collector: MetricsCollectorSpec | None = None) -> None:
        self.template = template
        self.output = output
        self.devices = list(devices)
        self.sdk_path = sdk_path
        # spec.metricsCollector File/TensorFlowEvent: trials write their own metrics path
        # (executors/metrics_path.py), which read_log reads. None: read_log reads trial.log.
        self.collector = collector if reads_files(collector) else None
        self.metrics_plan: PathPlan | None = None
        self._wrong_paths: set[str] = set()  # trials told their File path is a directory
        if self.collector is not None and self.collector.path:
            self.metrics_plan = (plan_path(self.collector.path, template.command, template.env)
                                 or PathPlan(self.collector.path))
        self._running: dict[str, _Running] = {}
        self._exits: queue.Queue[TrialExit] = queue.Queue()
        self._lock = threading.Lock()
        self._fresh: set[str] = set()  # trials whose interrupted attempt was reported (see _put)
        self._published: str | None = None

    def capacity(self) -> int | None:
        return len(self.devices) or None

    def trial_dir(self, trial_id: str) -> Path:
        return self.output / "trials" / trial_id

    def metrics_path(self, trial_id: str) -> Path | None:
        """The file (File) or directory (TensorFlowEvent) the trial writes its metrics to."""
        return self.metrics_plan.trial_path(self.trial_dir(trial_id)) if self.metrics_plan else None

    def _free_device(self) -> str | None:
        if not self.devices:
            return None
        used = {r.device for r in self._running.values()}
        for d in self.devices:
            if d not in used:
                return d
        raise RuntimeError("no free device: the controller launched more trials than --devices allows")

    def launch(self, trial: TrialLaunch) -> None:
        """Start the trial; or, for one an earlier run started, adopt its process or report
        how it ended (see the module docstring). Idempotent."""
        with self._lock:
            if trial.trial_id in self._running:
                return  # idempotent
            tdir = self.trial_dir(trial.trial_id)
            tdir.mkdir(parents=True, exist_ok=True)
            self._publish_url(trial.env.get("AUTOTUNE_SERVER_URL"))
            key = launch_key(trial)
            if self._resume(trial, tdir, key):
                return
            if trial.stopped is not None:
                # An earlier run stopped it (decide.stopped_before_restart) and no process of it
                # is left: not started again only to be stopped, as a cluster's gone workload is
                # not created again. It ends with that stop's reason.
                self._exits.put(TrialExit(trial.trial_id, None, True, trial.stopped))
                return
            # The container's env as a pod has it (workloads/common.py): AutoTune's variables, then
            # the template's, each value's $(VAR) expanded from the variables before it -- after
            # the trial's own metrics path is put in place of the spec's (metrics_path.py), as
            # plan_path found it in the values as written: LOG=$(BASE)/metrics.log with BASE
            # the directory above, expanded first, kept the spec's path.
            plan = self.metrics_plan
            pod_vars = dict(trial.env)
            for k, v in self.template.env.items():
                if k not in trial.env:
                    text = substitute(v, trial.parameters)
                    pod_vars[k] = expand_vars(plan.replace(text, tdir) if plan is not None else text, pod_vars)
            env = dict(os.environ)
            env.update(pod_vars)
            # No proxy for the run's own server on the loopback (loopback_proxy.py: MLflow's client).
            env.update(no_proxy_for(env, env.get("AUTOTUNE_SERVER_URL", "")))
            if trial.env.get("PIPESTEP") == "fullytrain":
                env.pop("EPOCHS", None)  # seed 000: final training runs without EPOCHS
            env["AUTOTUNE_TRIAL_DIR"] = str(tdir)
            env["AUTOTUNE_SERVER_URL_FILE"] = str(self.url_file)
            # Where a trial may write why it failed (autotune.tune()'s launcher does): the
            # message of a trial that exits non-zero then says it, not only its exit code.
            env["AUTOTUNE_FAILURE_FILE"] = str(tdir / FAILURE_FILE)
            if self.sdk_path:
                env["PYTHONPATH"] = os.pathsep.join(p for p in (self.sdk_path, env.get("PYTHONPATH")) if p)
            device = self._free_device()
            if device is not None:
                env["CUDA_VISIBLE_DEVICES"] = device
                env["ASCEND_RT_VISIBLE_DEVICES"] = device
                env["DEVICE_ID"] = device
            # $(VAR) from the container's env and AutoTune's variables, as Kubernetes expands it
            # (not from this machine's environment, which a pod would not see either).
            pod_env = dict(pod_vars)
            mpath = self.metrics_path(trial.trial_id)
            if plan is not None and mpath is not None and self.collector is not None:
                # Its own metrics path, where the manifest gives the spec's (see metrics_path.py).
                for e in (env, pod_env):
                    e[METRICS_PATH_VAR] = str(mpath)
                (mpath if self.collector.kind == "TensorFlowEvent" else mpath.parent).mkdir(parents=True, exist_ok=True)
            argv = [expand_vars(plan.replace(text, tdir) if plan is not None else text, pod_env)
                    for text in (substitute(a, trial.parameters) for a in self.template.command)]
            record = tdir / "process.json"
            record.unlink(missing_ok=True)
            (tdir / "kill.json").unlink(missing_ok=True)
            (tdir / FAILURE_FILE).unlink(missing_ok=True)
            log = open(tdir / "trial.log", "ab")
            # What the supervisor could not write to disk (its records on a full disk) it says
            # on this pipe, which needs no disk (local_supervisor.py).
            notes_r, notes_w = os.pipe()
            try:
                proc = subprocess.Popen(
                    [sys.executable, "-I", "-S", SUPERVISOR, str(record), str(os.getpid()), key, str(notes_w), "--", *argv],
                    cwd=self.template.workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, start_new_session=True, pass_fds=(notes_w,),
                )
            except BaseException:
                os.close(notes_r)
                raise
            finally:
                log.close()
                os.close(notes_w)
            self._watch(trial.trial_id, _Running(proc, device, key, notes=notes_r))  # first: watched even if the next write fails
            (tdir / "pid").write_text(str(proc.pid))

    @property
    def url_file(self) -> Path:
        """Where trials look for the tuner server when theirs stops answering: a restarted
        `autotune run` serves on another port, and its orphans must reach it."""
        return self.output / "server.url"

    def _publish_url(self, url: str | None) -> None:
        if url and url != self._published:
            tmp = self.url_file.with_suffix(".tmp")
            tmp.write_text(url)
            os.replace(tmp, self.url_file)
            self._published = url

    def _resume(self, trial: TrialLaunch, tdir: Path, key: str) -> bool:
        """A process an earlier run started for this trial: adopt it, or queue how it ended.
        False when there is none to adopt or report (never started, the record is another
        experiment's, or this is the launch after its interrupted attempt was reported: the
        old files are set aside, and it starts anew)."""
        trial_id = trial.trial_id
        record = tdir / "process.json"
        if trial_id in self._fresh:
            # Its interrupted attempt was reported and the trial requeued: this is its next
            # attempt, from its start, without the old one's log, metrics file and records.
            self._fresh.discard(trial_id)
            set_aside(tdir)
            return False
        rec = _read_record(record)
        if rec is None:
            return False
        if rec.get("key") != key:
            # A trial of a forgotten history (autotune.db deleted) still running in this
            # folder: it would report to nobody and write into the new trial's log.
            pid = int(rec.get("pid") or 0)
            if pid and "exit" not in rec and _is_trial(pid, trial_id, tdir):
                _signal_group(pid, signal.SIGKILL)
            return False
        # Stopped by the earlier run (assessor, timeout) just before it died: still our stop.
        kill = read_kill(tdir / "kill.json", key)
        reason, cause = kill if kill is not None else (None, None)
        if cause is StopCause.SHUTDOWN:
            # Stopped because its `autotune run` stopped on an error (a full disk, the tuner
            # server gone): an interruption of the run, not a result of the trial, as Ctrl-C's.
            cause = StopCause.USER
        pid = int(rec.get("pid") or 0)
        if "exit" not in rec and pid and _is_trial(pid, trial_id, tdir):
            device = _environ(pid).get("DEVICE_ID")
            r = _Running(_Adopted(pid, record), device if device in self.devices else None, key)
            self._watch(trial_id, r)
            if reason is not None:
                r.killed, r.kill_reason, r.kill_cause = True, reason, cause
                _signal_group(pid, signal.SIGTERM)
                threading.Thread(target=self._escalate, args=(r,), daemon=True).start()
            return True
        rec = _read_record(record) or rec  # it may have ended since the first read
        ex = ((_stopped_from_outside(trial_id, rec) or _exit_of(trial_id, rec.get("exit"), rec.get("error"), tdir))
              if "exit" in rec
              # Died unrecorded: with the earlier run (a stop of it would have left kill.json and,
              # from its supervisor, an exit code), so that is said even when the restarted
              # controller found it stopped (TrialLaunch.stopped): unlike a cluster's gone
              # workload, which its stop may have deleted, here the process's fate is known.
              else TrialExit(trial_id, None, True, GONE_MESSAGE))
        if reason is not None:  # as for a live process: the stop decides, not how it ended
            ex = TrialExit(trial_id, ex.exit_code, True, reason, cause)
        if ex.cause is StopCause.USER:  # (as _put does; the lock is held here)
            self._fresh.add(trial_id)
        self._exits.put(ex)
        return True

    def _put(self, ex: TrialExit) -> None:
        """Queue a trial's end. One the user interrupted is put back to WAITING by the
        controller (Engine.requeue) and launched again: that launch starts it anew."""
        if ex.cause is StopCause.USER:
            with self._lock:
                self._fresh.add(ex.trial_id)
        self._exits.put(ex)

    def _watch(self, trial_id: str, r: _Running) -> None:
        self._running[trial_id] = r
        threading.Thread(target=self._wait, args=(trial_id, r), daemon=True).start()

    def _wait(self, trial_id: str, r: _Running) -> None:
        # Whatever the trial left in its process group (its supervisor killed, data loader
        # workers) ends with it, as a pod's containers do.
        if isinstance(r.proc, subprocess.Popen) and hasattr(os, "waitid"):
            try:  # wait without reaping, so the group id cannot be reused before the sweep
                os.waitid(os.P_PID, r.proc.pid, os.WEXITED | os.WNOWAIT)
            except ChildProcessError:
                pass
            _signal_group(r.proc.pid, signal.SIGKILL)
            code = r.proc.wait()
        else:  # an adopted process, or no waitid (macOS)
            code = r.proc.wait()  # once: after the exit its pid may already be someone else's
            _signal_group(r.proc.pid, signal.SIGKILL)
        rec = _read_record(self.trial_dir(trial_id) / "process.json")
        notes = _read_notes(r.notes)
        error = notes.get("error")
        ours = rec is not None and rec.get("key") == r.key and "exit" in rec
        if ours:
            code, error = rec.get("exit"), rec.get("error")  # the trial's own end, not its supervisor's
        with self._lock:
            self._running.pop(trial_id, None)
        ex = _exit_of(trial_id, code, error, self.trial_dir(trial_id))
        if "unrecorded" in notes and error is None:
            # Its supervisor exited as the trial did (0 stays 0: its metrics count); only a
            # run started after this one died would have lost the code. Say so.
            ex = TrialExit(trial_id, ex.exit_code, ex.killed, "; ".join(m for m in (ex.message, notes["unrecorded"]) if m))
        outside = _stopped_from_outside(trial_id, rec) if ours and rec is not None else None
        if r.killed:
            ex = TrialExit(trial_id, code, True, r.kill_reason, r.kill_cause)
        elif outside is not None:
            ex = outside
        self._put(ex)

    def active(self) -> set[str]:
        with self._lock:
            return set(self._running)

    def started(self) -> dict[str, float]:
        return {}  # nothing beyond the launch, which the controller reported as the start

    def attempt_starts(self) -> dict[str, float | None]:
        return {}  # a local trial is one process, never replaced

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

    def kill(self, trial_id: str, reason: str, cause: StopCause | None = None) -> None:
        with self._lock:
            r = self._running.get(trial_id)
            if r is None or r.killed:
                return
            r.killed, r.kill_reason, r.kill_cause = True, reason, cause
        try:  # a run killed before this trial exits must still know it was stopped, and why
            _write_record(self.trial_dir(trial_id) / "kill.json",
                          {"key": r.key, "reason": reason, **({"cause": cause.value} if cause is not None else {})})
        except OSError:
            pass
        _signal_group(r.proc.pid, signal.SIGTERM)
        threading.Thread(target=self._escalate, args=(r,), daemon=True).start()

    @staticmethod
    def _escalate(r: _Running) -> None:
        try:
            if isinstance(r.proc, subprocess.Popen) and hasattr(os, "waitid"):
                _wait_unreaped(r.proc.pid, KILL_GRACE_SECONDS)
            else:  # Popen.wait is safe beside the watcher's: both take Popen's lock
                r.proc.wait(timeout=KILL_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            _signal_group(r.proc.pid, signal.SIGKILL)

    def read_log(self, trial_id: str, cursor: Any, final: bool = False) -> LogChunk | None:
        """Complete lines of ``trials/<trial>/trial.log`` from byte offset ``cursor`` (None: 0);
        the new cursor is the offset of the first byte not returned. With ``final`` the last
        line counts without its newline. None when the file is not there (yet) or unreadable.
        With a File or TensorFlowEvent collector: what the trial wrote to its metrics path
        (metric_files.read_new); once it ended, a path it never wrote reads as empty, so its
        failure says nothing was written there."""
        mpath = self.metrics_path(trial_id)
        if mpath is not None and self.collector is not None:
            source = file_source(self.collector.kind, mpath)
            chunk = read_new(source, cursor, final)
            if chunk is None:
                # A directory at a File's path is waited for as a missing file (the trial
                # may still replace it), said once, and named in the message at its end.
                wrong = not_a_metrics_file(source)
                if wrong is not None and trial_id not in self._wrong_paths:
                    self._wrong_paths.add(trial_id)
                    log.warning("trial %s: %s", trial_id, wrong)
                if final and (wrong is not None or not mpath.exists()):
                    return LogChunk((), cursor, note=wrong)
            return chunk
        start = int(cursor or 0)
        try:
            with open(self.trial_dir(trial_id) / "trial.log", "rb") as f:
                f.seek(start)
                data = f.read(READ_LOG_BYTES + 1)
        except FileNotFoundError:
            return None
        except OSError as e:
            log.warning("cannot read the log of trial %s: %s", trial_id, e)
            return None
        lines, end, unterminated = complete_lines(data, READ_LOG_BYTES, final)
        return LogChunk(lines, start + end, unterminated)

    def shutdown(self) -> None:
        for tid in list(self.active()):
            self.kill(tid, SHUTDOWN_REASON, StopCause.SHUTDOWN)
        deadline = time.monotonic() + KILL_GRACE_SECONDS + 1
        while self.active() and time.monotonic() < deadline:
            time.sleep(0.05)


def surviving_trials(output: Path) -> list[str]:
    """Trials an earlier run in ``output`` started whose process still runs: the next run
    adopts them (launch). Their time since that run died counts toward maxExecSeconds."""
    alive = []
    for record in sorted((output / "trials").glob("*/process.json")):
        rec = _read_record(record)
        try:
            pid = int((rec or {}).get("pid") or 0)
        except (TypeError, ValueError):
            continue
        tdir = record.parent
        if rec is not None and "exit" not in rec and pid and _is_trial(pid, tdir.name, tdir):
            alive.append(tdir.name)
    return alive


# Why the trials still running when `autotune run` stops on an error were stopped.
SHUTDOWN_REASON = "interrupted: 'autotune run' stopped before it; it runs again when the same command is run again"


def read_kill(path: Path, key: str) -> tuple[str, StopCause | None] | None:
    """The stop kill.json records for this experiment's trial (``key``): its reason and its
    cause. A kill.json written before the cause was recorded (reason only) still says an
    overdue stop by its reason's text; any other cause of such a file is unknown (None).
    None when there is no such stop (no file, another experiment's, unreadable)."""
    kill = _read_record(path)
    if kill is None or kill.get("key") != key or kill.get("reason") is None:
        return None
    reason = str(kill["reason"])
    try:
        cause: StopCause | None = StopCause(kill["cause"]) if "cause" in kill else None
    except ValueError:  # a cause a newer version wrote: the reason still says it to people
        cause = None
    if "cause" not in kill and is_overdue_reason(reason):
        cause = StopCause.OVERDUE
    return reason, cause


ASIDE_DIR = "interrupted"  # in a trial's folder: the files of each attempt the user interrupted


def set_aside(tdir: Path) -> Path:
    """Move the files of an interrupted attempt (its log, metrics file, process records) to
    ``<trial>/interrupted/<n>/``: the attempt that runs next starts with none of them, so its
    log and metrics are read from their start without the old attempt's lines."""
    aside = tdir / ASIDE_DIR
    n = 1
    while (aside / str(n)).exists():
        n += 1
    dest = aside / str(n)
    dest.mkdir(parents=True)
    for entry in sorted(tdir.iterdir()):
        if entry.name != ASIDE_DIR:
            os.replace(entry, dest / entry.name)
    return dest


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def launch_key(trial: TrialLaunch) -> str:
    """Ties a process record to this experiment's trial (the experiment's token is random
    per experiment): a folder reused after deleting autotune.db holds other trials' records."""
    raw = f"{trial.env.get('AUTOTUNE_TOKEN', '')}\0{trial.env.get('AUTOTUNE_EXPERIMENT_ID', '')}\0{trial.trial_id}"
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def _stopped_from_outside(trial_id: str, rec: Mapping[str, Any]) -> TrialExit | None:
    """A trial that exited non-zero after a stop signal reached its processes from outside
    AutoTune (its supervisor recorded it: a Ctrl-C or a shutdown that signalled them too):
    interrupted, not failed; it runs again (cause USER). None otherwise."""
    sig, code = rec.get("signal"), rec.get("exit")
    if not sig or not isinstance(code, int) or code == 0:
        return None
    how = f"exited with code {code}" if code > 0 else f"was killed by signal {-code}"
    return TrialExit(trial_id, code, True, f"interrupted: {sig} reached its processes from outside AutoTune and it {how}; "
                                           f"it runs again, with the same parameters", StopCause.USER)


def _exit_of(trial_id: str, code: int | None, error: str | None, tdir: Path | None = None) -> TrialExit:
    if error is not None:
        return TrialExit(trial_id, None, False, f"could not start: {error}")
    if code is None:
        return TrialExit(trial_id, None, True, GONE_MESSAGE)
    if code < 0:
        return TrialExit(trial_id, code, False, f"killed by signal {-code}")
    why = _failure(tdir) if code != 0 and tdir is not None else None
    return TrialExit(trial_id, code, False, f"exited with code {code}: {why}" if why else None)


def _failure(tdir: Path) -> str | None:
    """The first line of what the trial wrote to $AUTOTUNE_FAILURE_FILE, if anything."""
    try:
        with open(tdir / FAILURE_FILE, encoding="utf-8", errors="replace") as f:
            text = f.read(MAX_FAILURE_CHARS + 1)
    except OSError:
        return None
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        return None
    return lines[0] if len(lines[0]) <= MAX_FAILURE_CHARS else lines[0][:MAX_FAILURE_CHARS] + "..."


def _read_notes(fd: int | None) -> dict[str, str]:
    """What a supervisor that exited said on its notes pipe (and close it): ``error`` (the
    trial did not start) and ``unrecorded`` (its exit code could not be written to disk)."""
    if fd is None:
        return {}
    data = b""
    try:
        os.set_blocking(fd, False)  # its writers are gone once it exited; never wait here
        while len(data) < 65536:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    finally:
        os.close(fd)
    out: dict[str, str] = {}
    for line in data.decode("utf-8", errors="replace").splitlines():
        try:
            note = json.loads(line)
        except ValueError:
            continue
        if isinstance(note, dict):
            out.update({str(k): str(v) for k, v in note.items() if k in ("error", "unrecorded")})
    return out


def _write_record(path: Path, record: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record))
    os.replace(tmp, path)


def _read_record(path: Path) -> dict[str, Any] | None:
    try:
        rec = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) else None


def _wait_unreaped(pid: int, timeout: float) -> None:
    """Wait up to ``timeout`` for our child ``pid`` to exit, leaving it to be reaped by its waiter."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is not None:
                return
        except ChildProcessError:
            return  # reaped already
        if time.monotonic() >= deadline:
            raise subprocess.TimeoutExpired(f"pid {pid}", timeout)
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    if not _HAS_PROC:  # macOS: a signal 0 tells only that the pid exists
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    return dict(kv.decode(errors="replace").partition("=")[::2] for kv in raw.split(b"\0") if b"=" in kv)


def _is_trial(pid: int, trial_id: str, tdir: Path) -> bool:
    """Whether ``pid`` is alive and is this trial's supervisor (not a reused pid)."""
    if not _alive(pid):
        return False
    if not _HAS_PROC:  # no way to read its environment: its record names it and it is alive
        return True
    env = _environ(pid)
    return env.get("AUTOTUNE_TRIAL_ID") == trial_id and env.get("AUTOTUNE_TRIAL_DIR") == str(tdir)
