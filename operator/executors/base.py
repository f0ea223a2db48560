"""The executor protocol: launches, watches and kills trial workloads.

The controller knows nothing of processes or Kubernetes; it only calls these methods.
``launch`` is idempotent by trial id: after a controller restart, launching a trial
that already runs adopts it instead of starting a second copy.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Collection, Mapping, Protocol

from autotune_operator.spec import NOT_FOUND, PLACEHOLDER, follow_dotted
from tuner_server.mlflow_names import run_id_of, tracking_uri


@dataclass(frozen=True)
class TrialLaunch:
    trial_id: str
    sequence: int
    parameters: Mapping[str, Any]
    env: Mapping[str, str] = field(default_factory=dict)  # AUTOTUNE_* variables for the SDK
    # Relaunched by a restarted controller, which found the trial stopped by an earlier one
    # (decide.stopped_before_restart): its workload is adopted or, when gone, not created
    # again; the trial then ends killed with this reason. (Local mode: a trial with no
    # process record is not started; one with records is adopted or reported from them.)
    stopped: str | None = None


class LaunchRefused(Exception):
    """The trial cannot start, and trying again would not help (a Kubernetes workload of the
    trial's name that this experiment did not make, left behind by an earlier one of the
    same name): the controller ends the trial FAILED with this message, instead of retrying."""


class StopCause(str, Enum):
    """Why the experiment stopped a trial, as data (the reason's text is for people): the
    local executor keeps it in kill.json, so a run started after the one that stopped the
    trial died ends it as that one would have."""

    OVERDUE = "overdue"  # maxTrialSeconds: the trial ends FAILED
    ASSESSOR = "assessor"  # an early stop: EARLY_STOPPED
    EXPERIMENT = "experiment"  # the experiment ends (maxExecSeconds, objectiveGoal, an error): STOPPED
    USER = "user"  # Ctrl-C, SIGTERM, SIGHUP: the attempt is dropped and the trial runs again
    SHUTDOWN = "shutdown"  # the executor shut down (the run stopped on an error): an interruption, as USER


@dataclass(frozen=True)
class TrialExit:
    trial_id: str
    exit_code: int | None
    killed: bool = False  # ended because the experiment killed it
    message: str | None = None
    cause: StopCause | None = None  # why it was killed, when known as data (else only the message says)


@dataclass(frozen=True)
class LogChunk:
    """What ``Executor.read_log`` read of a trial's output."""

    lines: tuple[str, ...]  # complete lines after the cursor, in order, without the newline
    cursor: Any  # opaque; the caller passes it back next time
    # The last of ``lines`` had no newline: the output ended there (only a ``final`` read
    # takes such a line). Whether it is data depends on how the writer ended, which only the
    # controller knows: a process killed mid-write leaves half a line ('accuracy=0.9' of
    # 'accuracy=0.9734'), so the controller drops it for a killed trial (controller._collect).
    unterminated: bool = False
    # Why the trial's output can never be read where it was looked for (a File collector's
    # path that is a directory): said in the message of a trial that reported nothing.
    note: str | None = None


def complete_lines(data: bytes, limit: int, final: bool) -> tuple[tuple[str, ...], int, bool]:
    """The complete lines of ``data``, read with ``f.read(limit + 1)`` from a file, how many
    bytes they took (the next read starts there), and whether the last of them is a last line
    without a newline (LogChunk.unterminated). With ``final`` (the writer is done) such a
    line is returned, flagged; a single line longer than ``limit`` is cut there rather than
    never returned: after its last carriage return (a progress bar's update: tqdm rewrites its
    line with '\r' and may print megabytes before a newline), else its last blank, else at a
    character's boundary, so that no ``name=value`` is cut in two ('accuracy=0.97' of
    'accuracy=0.9734' would be read as a value)."""
    more = len(data) > limit
    data = data[:limit]
    end = data.rfind(b"\n") + 1
    unterminated = final and not more and end < len(data)
    if unterminated:
        end = len(data)
    elif end == 0 and more:
        end = _cut(data)
    lines = data[:end].decode("utf-8", errors="replace").split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # after the last newline
    return tuple(line.removesuffix("\r") for line in lines), end, unterminated


TOKEN_BYTES = 4096
_TOKEN = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.+-=:|")


def _cut(data: bytes) -> int:
    """Where to cut ``data``, a piece of one line too long to return whole (see complete_lines)."""
    for sep in (b"\r", b" ", b"\t"):
        at = data.rfind(sep) + 1
        if at:
            return at
    # No blank: before the trailing run of the characters a 'name=value' is made of (it
    # goes whole to the next read), unless the run is the whole piece.
    k = len(data)
    while k > 0 and len(data) - k < TOKEN_BYTES and data[k - 1] in _TOKEN:
        k -= 1
    if 0 < k < len(data) and len(data) - k < TOKEN_BYTES:
        return k
    # Else before the last UTF-8 character when it may be incomplete, so that it is not
    # decoded in two halves (the next read starts with it whole).
    k = len(data)
    while k > 0 and len(data) - k < 3 and 0x80 <= data[k - 1] < 0xC0:
        k -= 1
    return k - 1 if k > 1 and data[k - 1] >= 0xC0 else len(data)


class Executor(Protocol):
    # True when a launched trial runs at once (a local process: launching is starting);
    # False when it may wait first (a cluster workload queued for a node, a device or an
    # image): then ``started`` tells when each trial really began, and only that time
    # counts for maxTrialSeconds and the trial's duration.
    starts_on_launch: bool

    def capacity(self) -> int | None: ...
    def launch(self, trial: TrialLaunch) -> None: ...
    def started(self) -> Mapping[str, float]: ...
    # Trials whose running attempt began later than the trial (a disrupted pod replaced:
    # workloads/batch_job.py) -> that attempt's start, None while it waits; maxTrialSeconds
    # times the attempt (decide.attempt_since). Empty where attempts are never replaced.
    def attempt_starts(self) -> Mapping[str, float | None]: ...
    def active(self) -> set[str]: ...
    def poll(self) -> list[TrialExit]: ...
    def kill(self, trial_id: str, reason: str, cause: StopCause | None = None) -> None: ...
    def wait(self, timeout: float) -> None: ...
    def shutdown(self) -> None: ...

    # The trial's output (stdout and stderr) after ``cursor`` (None: from its start), for
    # metrics printed by the trial (spec.metricsCollector, autotune_operator/log_metrics.py).
    # Only complete lines, unless ``final`` (the trial ended: its last line counts without a
    # newline). None when there is no log to read yet or on a transient error (logged): the
    # caller keeps its cursor and tries again. Never raises for API or I/O errors. The
    # controller makes a ``final`` read only once the tuner server accepted all it read
    # before, so one that returns no line says the output is recorded whole (an executor
    # may then let it go: a Kubernetes workload deleted with its pods' logs).
    def read_log(self, trial_id: str, cursor: Any, final: bool = False) -> LogChunk | None: ...


def format_parameter(v: Any) -> str:
    """How a parameter value appears in a command line: strings bare, the rest as JSON."""
    return v if isinstance(v, str) else json.dumps(v)


def substitute(text: str, parameters: Mapping[str, Any]) -> str:
    """Replace ``${parameters.NAME}`` (dotted for nested choices) with the trial's values."""

    def one(m: re.Match[str]) -> str:
        found = follow_dotted(parameters, m.group(1).split("."))
        if found is NOT_FOUND:
            raise KeyError(f"${{parameters.{m.group(1)}}} is not among this trial's parameters")
        return format_parameter(found)

    return PLACEHOLDER.sub(one, text)


# Kubernetes' dependent-variable syntax in command/args: $(VAR) with VAR in the container's
# env is replaced, $$ is a literal $, anything else stays as written.
K8S_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand_vars(text: str, env: Mapping[str, str]) -> str:
    """What Kubernetes does to a container's command and args before running them, so a
    manifest with ``--epochs=$(EPOCHS)`` (e.g. a converted Katib Hyperband) runs the same
    locally as on a cluster."""
    return K8S_VAR.sub(lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), text)


def trial_env(
    server_url: str,
    token: str,
    exp_id: str,
    trial_id: str,
    sequence: int,
    parameters: Mapping[str, Any],
    *,
    budget: int | None = None,
    checkpoint_dir: str | None = None,
    resume_dir: str | None = None,
    kind: str = "search",
    user_env: Collection[str] = (),
    mlflow: bool = True,
) -> dict[str, str]:
    """The variables every trial receives, in every executor.

    Seed 000's contract: ``PIPESTEP`` is ``hpo`` during the search and ``fullytrain`` for
    final training; ``EPOCHS`` carries a multi-fidelity advisor's budget during the search
    only (final training unsets it, so a seed-000 script trains its own full epochs), while
    ``AUTOTUNE_BUDGET`` (what ``autotune.get_budget()`` reads) is set in both phases when
    there is a budget. ``AUTOTUNE_SAVE_DIR`` is where the trial may save a checkpoint and
    ``AUTOTUNE_RESUME_DIR`` the checkpoint a promoted trial continues from.

    ``MLFLOW_*`` point a script's MLflow client at the tuner server's MLflow subset
    (tuner_server/mlflow_api.py), in this trial's run, unless ``user_env`` (the names the
    trial template's env sets) has ``MLFLOW_TRACKING_URI``: the user's own MLflow server
    then wins, and none of them is set (a run id of ours would not exist there). ``mlflow``
    False (an experiment whose objective is not read from MLflow: no spec.primaryMetric nor
    spec.objectives) sets none either: a script reporting with the SDK that also keeps a
    model with MLflow (its local ./mlruns, or a server exported in the shell) would
    otherwise have it refused by the tuner server, failing the trial.
    """
    env = {
        "AUTOTUNE_SERVER_URL": server_url,
        "AUTOTUNE_TOKEN": token,
        "AUTOTUNE_EXPERIMENT_ID": exp_id,
        "AUTOTUNE_TRIAL_ID": trial_id,
        "AUTOTUNE_SEQUENCE_ID": str(sequence),
        "AUTOTUNE_PARAMETERS": json.dumps(parameters),
        "AUTOTUNE_TRIAL_KIND": kind,
        "PIPESTEP": "fullytrain" if kind == "final" else "hpo",
    }
    if budget is not None:
        env["AUTOTUNE_BUDGET"] = str(int(budget))
        if kind != "final":
            env["EPOCHS"] = str(int(budget))
    if checkpoint_dir:
        env["AUTOTUNE_SAVE_DIR"] = checkpoint_dir
    if resume_dir:
        env["AUTOTUNE_RESUME_DIR"] = resume_dir
    if mlflow and "MLFLOW_TRACKING_URI" not in user_env:
        ours = {
            "MLFLOW_TRACKING_URI": tracking_uri(server_url, exp_id, trial_id),
            "MLFLOW_TRACKING_TOKEN": token,  # sent as "Authorization: Bearer"; a Secret on a cluster
            "MLFLOW_RUN_ID": run_id_of(trial_id),  # start_run() and log_metric() resume this trial's run
            # end_run() would print links to an MLflow UI that the tuner server does not serve.
            "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
        }
        env.update({k: v for k, v in ours.items() if k not in user_env})
    return env
