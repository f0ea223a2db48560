"""Resuming an experiment that ended: a pure function of its last status and its new limits.

Katib restarts a Succeeded experiment whose maxTrialCount was raised; NNI's ``nnictl resume``
continues a stopped one with a higher maxTrialNumber. Here an experiment that ended DONE or
TIMEOUT runs again, with its whole history, when its limits (spec_change.MUTABLE) are edited
so that :func:`decide` would no longer end it: more trials, a later or no time limit.

- ERROR stays ended. It covers an invalid spec, a tuner failure, a refused registration,
  an unreadable warm-start source and maxFailedTrialNum; the cure for all of them but the
  last is a change of what the search *is* (the trial's image or command, the search space),
  which cannot change on an existing experiment. For maxFailedTrialNum, raising it would
  mostly spend more of the cluster on the same broken trial (the CRD cannot tell a flaky
  node from a broken image); a new experiment with ``warmStart`` from this one keeps the
  results. Katib, too, restarts only Succeeded experiments.
- maxExecSeconds limits the time the experiment *runs*: the seconds it sat ended are not
  counted (``pausedSeconds`` in the status), so a DONE experiment resumed a day later does
  not end TIMEOUT at once, and a TIMEOUT one resumed with maxExecSeconds 600 -> 900 runs
  300 seconds more. NNI's maxExperimentDuration counts its run time the same way.
- A tuner that has no new configurations (a finished grid) is found out when it is asked:
  the experiment runs again, gets none, and ends DONE saying so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Collection, Mapping

from autotune_operator.decide import Goal, Limits, Observed, Phase, decide, final_pending, final_trained
from autotune_operator.status import parse_time

ENDED = ("DONE", "TIMEOUT", "ERROR")
RESUMABLE = ("DONE", "TIMEOUT")


@dataclass(frozen=True)
class EndedRun:
    """What the last status of an experiment that ended says about it."""

    phase: Phase
    ran_seconds: float  # from its start to its end, earlier pauses not counted
    paused_seconds: float  # pauses before its end (earlier resumes)
    completion: float | None  # when it ended (epoch seconds)
    issued: int  # search trials
    failed: int  # search trials that failed
    final_issued: int
    final_pending: bool
    best: float | None
    best_name: str
    message: str
    # Search trials issued and not ended: none on a cluster; locally, those Ctrl-C cut (they
    # wait to run again, Engine.requeue), so a run cut at its last trials still resumes.
    active: int = 0
    final_active: int = 0  # final-training trials likewise


@dataclass(frozen=True)
class ResumePlan:
    resume: bool
    message: str  # the Event's text: what changed, and why it stays ended if it does
    paused_seconds: float = 0.0  # the new total, when it resumes
    reason: str = ""  # why it stays ended (the message without what changed)


def ended_run(status: Mapping[str, Any], rerun_own: Collection[str] = frozenset()) -> EndedRun | None:
    """The ended run an experiment's ``.status`` (or status.json) describes; None if it has not
    ended. ``rerun_own``: the parameters its tuner gives a final rerun afresh (decide.rerun_own_keys)."""
    phase = status.get("phase")
    if phase not in ENDED:
        return None
    start, end = parse_time(status.get("startTime")), parse_time(status.get("completionTime"))
    paused = float(status.get("pausedSeconds") or 0)
    ran = max(0.0, end - start - paused) if start is not None and end is not None else 0.0
    trials = status.get("trials") or {}
    finals = list(status.get("finalTraining") or [])
    chosen = list(status.get("paretoFront") or ([status["bestTrial"]] if status.get("bestTrial") else []))
    # A cluster's status lists part of a large front (status.CLUSTER_FRONT_LIMIT): a member
    # it leaves out may lack its final trial. Only a DONE run is sure to have trained them
    # all; else a resume looks (with the tuner server's whole front) rather than never does.
    # Its finalTraining too, then counted whole in finalTrainingCounts (for_cluster).
    counts = status.get("finalTrainingCounts")
    listed = counts is None
    partial = (len(status.get("paretoFront") or []) < int(status.get("paretoFrontSize") or 0) or not listed) \
        and phase != "DONE"
    c = counts if isinstance(counts, Mapping) else {}
    n_finals = len(finals) if listed else int(c.get("total") or 0)
    failed_finals = sum(1 for f in finals if f.get("state") == "FAILED") if listed else int(c.get("failed") or 0)
    active_finals = (sum(1 for f in finals if f.get("state") in ("WAITING", "RUNNING")) if listed
                     else int(c.get("waiting") or 0) + int(c.get("running") or 0))
    best = status.get("bestTrial") or {}
    return EndedRun(
        phase=Phase(phase),
        ran_seconds=ran,
        paused_seconds=paused,
        completion=end,
        issued=int(trials.get("total") or 0) - n_finals,
        failed=int(trials.get("failed") or 0) - failed_finals,
        final_issued=n_finals,
        # A DONE run trained them all; a part of its final trials cannot show that.
        final_pending=partial or (listed and final_pending([m.get("parameters") or {} for m in chosen],
                                                           final_trained(finals), rerun_own)),
        best=best.get("value"),
        best_name=str(best.get("name") or ""),
        message=str(status.get("message") or ""),
        active=max(0, int(trials.get("waiting") or 0) + int(trials.get("running") or 0) - active_finals),
        final_active=active_finals,
    )


def plan_resume(run: EndedRun, limits: Limits, change: str, now: float, goal: Goal | None = None,
                resume_error: bool = False) -> ResumePlan:
    """Whether the experiment runs again under ``limits`` (``change`` says what was edited,
    e.g. "maxTrialNum 16 -> 32"), and the Event's message either way. ``resume_error``:
    local mode, where ERROR is mostly Ctrl-C ("run the same command again to continue")."""
    what = change or "no limit changed"
    if run.phase is Phase.ERROR and not resume_error:
        reason = (f"an experiment that ended ERROR is not resumed ({run.message}); "
                  f"create a new experiment (spec.warmStart can reuse this one's trials)")
        return ResumePlan(False, f"{what}: {reason}", reason=reason)
    obs = Observed(elapsed=run.ran_seconds, issued=run.issued, active=run.active, failed=run.failed,
                   final_issued=run.final_issued, final_active=run.final_active, final_pending=run.final_pending,
                   best=run.best, best_name=run.best_name)
    d = decide(limits, obs, goal)
    if d.phase is Phase.RUNNING:
        pause = max(0.0, now - run.completion) if run.completion is not None else 0.0
        return ResumePlan(True, f"{what}: resumed after {run.issued} trial(s)", run.paused_seconds + pause)
    hint = ""
    if d.phase is Phase.TIMEOUT:
        hint = f"; it has run {run.ran_seconds:.0f}s: raise maxExecSeconds above that or remove it to resume"
    elif d.phase is Phase.DONE and limits.max_trials is not None and run.issued >= limits.max_trials:
        hint = f"; raise maxTrialNum above {run.issued} to resume"
    reason = f"the experiment stays {run.phase.value} ({d.message}){hint}"
    return ResumePlan(False, f"{what}: {reason}", reason=reason)


def paused_after_crash(last_sign_of_life: float | None, now: float, survivors: int, paused: float) -> float:
    """The new ``pausedSeconds`` of a local run that died without ending (SIGKILL, power
    loss, a reboot) and is started again at ``now``.

    maxExecSeconds limits the time the experiment could make progress. With no trial of the
    dead run still running (``survivors`` 0), nothing progressed from its last sign of life
    (its heartbeat, or a trial's last record after it) until now: that gap is not counted,
    as the time an ended run sat is not. A trial still running did progress meanwhile, so
    then the gap counts. Unknown (None: no heartbeat, a folder from an older version): it
    counts, as before."""
    if survivors > 0 or last_sign_of_life is None:
        return paused
    return paused + max(0.0, now - last_sign_of_life)
