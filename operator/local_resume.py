"""`autotune run` on an output folder that already holds a run of the same experiment.

Running the same file again continues the experiment: same history (autotune.db), same
trial names, the tuner rebuilt from every earlier trial. A run that ended DONE or TIMEOUT
runs again once its limits are raised in the file (resume.py says when), an interrupted
or crashed one picks up where it stopped. Anything else that changed in the spec would mix
two searches in one history, so it is refused, naming the field, as the API server
refuses it on a cluster (spec_change.py). The spec a run used is kept in the folder as
``experiment.json`` for this comparison.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from autotune_operator.decide import Goal, Limits, Phase, rerun_own_keys
from autotune_operator.resume import ended_run, paused_after_crash, plan_resume
from autotune_operator.spec import Experiment
from autotune_operator.spec_change import MUTABLE, describe_limits, diff_spec
from tuner_server.history import OptimizeMode

SPEC_FILE = "experiment.json"


class SpecChanged(ValueError):
    """The file changed in more than the limits since the run in the output folder."""


@dataclass(frozen=True)
class LocalResume:
    line: str | None  # what to tell the user first; None: a new experiment
    paused_seconds: float = 0.0  # seconds it sat ended (not counted against maxExecSeconds)
    # The phase it stays in when its limits still end it: nothing runs and nothing in the
    # folder is written (running the controller anyway restamped its end, and a TIMEOUT one
    # issued new trials only to stop them), so the result agrees with the line.
    stays: Phase | None = None
    has_result: bool = True  # it has a best trial or a Pareto front (else `autotune run` exits 1)


def spec_of(exp: Experiment) -> dict[str, Any]:
    return exp.spec.model_dump(mode="json")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # absent or torn: as if there were no earlier run to compare with


def check_output(out: Path, exp: Experiment, now: float, last_alive: float | None = None,
                 survivors: Sequence[str] = ()) -> LocalResume:
    """Compare the experiment with the run already in ``out``; raise :class:`SpecChanged`
    naming every field that may not change. For a run that died without ending:
    ``last_alive``, when it was last seen alive (heartbeat.last_sign_of_life), and
    ``survivors``, its trials still running (executors.local.surviving_trials), decide
    whether the time since counts toward maxExecSeconds (resume.paused_after_crash)."""
    old_spec = _read_json(out / SPEC_FILE)
    new_spec = spec_of(exp)
    change = diff_spec(old_spec, new_spec) if isinstance(old_spec, dict) else None
    earlier = _read_json(out / "status.json")
    if change is None and (out / SPEC_FILE).exists() and isinstance(earlier, dict) and (earlier.get("trials") or {}).get("total"):
        # It is written atomically, so unreadable means edited by hand: without it any change
        # (the trial's command, its image) would pass unnoticed and mix two searches.
        raise SpecChanged(
            f"{out / SPEC_FILE} is not the spec JSON this folder's run wrote, so what changed since cannot be "
            f"checked; restore it, delete it to resume without that check, or use another --output")
    if change is not None and change.refused:
        fields = ", ".join(f"spec.{k}" for k in change.refused)
        raise SpecChanged(
            f"{fields} changed since the run in {out}: resuming it may change only {', '.join(MUTABLE)} "
            f"(anything else would mix two searches in one history); use another --output for a new search")
    status = earlier
    if not isinstance(status, dict) or not (status.get("trials") or {}).get("total"):
        return LocalResume(None)
    limits_text = describe_limits(change) if change is not None else ""
    head = f"resuming {exp.name}: {status['trials']['total']} trials so far" + (f", {limits_text}" if limits_text else "")
    # A folder from before experiment.json, or it was deleted: say what could not be checked.
    unchecked = ("" if change is not None else f"; {SPEC_FILE} was missing, so only the search space and "
                 f"algorithms were checked for changes, not the trials' command or the limits")
    run = ended_run(status, rerun_own_keys(exp.algorithm))
    if run is None:  # it did not end (the process was killed): pick up the trials it left
        paused = paused_after_crash(last_alive, now, len(survivors), float(status.get("pausedSeconds") or 0))
        return LocalResume(f"{head} (the last run stopped before it ended; {_gap_text(last_alive, now, survivors)})"
                           f"{unchecked}", paused)
    s = exp.spec
    limits = Limits(s.maxTrialNum, s.trialConcurrency, s.maxExecSeconds, None,
                    s.finalTraining is not None and s.finalTraining.enabled, s.maxFailedTrialNum, s.maxTrialSeconds)
    goal = Goal(s.objectiveGoal, exp.optimize_mode is OptimizeMode.MAXIMIZE) if s.objectiveGoal is not None else None
    # Locally an interrupted run ends ERROR and is meant to be run again; so is one that hit
    # maxFailedTrialNum, once the file raises it (no API server guards this folder).
    plan = plan_resume(run, limits, limits_text, now, goal, resume_error=True)
    paused = run.paused_seconds + (max(0.0, now - run.completion) if run.completion is not None else 0.0)
    if plan.resume:
        return LocalResume(f"{head} (it ended {run.phase.value}: {run.message}){unchecked}", paused)
    return LocalResume(f"{exp.name} has already ended with {status['trials']['total']} trials: {plan.reason}{unchecked}",
                       paused, stays=run.phase,
                       has_result=bool(status.get("bestTrial") or status.get("paretoFront")))


def _gap_text(last_alive: float | None, now: float, survivors: Sequence[str]) -> str:
    """What the resume line says of the time since the dead run was last alive."""
    if last_alive is None:
        return "it left no heartbeat, so the time since counts toward maxExecSeconds"
    gap = f"the {max(0.0, now - last_alive):.0f}s since it was last alive"
    if survivors:
        names = ", ".join(survivors[:3]) + (", ..." if len(survivors) > 3 else "")
        return f"{len(survivors)} of its trials still run ({names}) and are adopted, so {gap} count toward maxExecSeconds"
    return f"no trial of it still runs, so {gap} do not count toward maxExecSeconds"


def save_spec(out: Path, exp: Experiment) -> None:
    """Keep the spec this run uses (atomically: a torn file would hide a changed spec)."""
    fd, tmp = tempfile.mkstemp(dir=out, prefix=".experiment.", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(spec_of(exp), f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, out / SPEC_FILE)
