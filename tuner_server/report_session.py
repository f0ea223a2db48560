"""Which process of a trial an SDK report comes from, and what a report at a step the curve
already has means (pure).

The SDK numbers a process's reports 0, 1, 2, ... and sends each with the session id the
process made when it started (sdk/autotune, header ``X-AutoTune-Session``). A report at a
step the curve has was taken as a retry (its answer lost on the way), and so was every report
of a trial's new process (a pod the Job re-created, a script run again without a checkpoint):
its counter starts at 0 again, so its values were dropped until it passed the old process's
last step, and an assessor judged the old values. Now:

- same session, step already held: a retry, idempotent as before;
- another session, step already held: a new run of the trial. The curve is cut back to that
  step and goes on with the new run's values (the earlier run's points stay in the trial's
  stored events), and a note says so. A script resumed from a checkpoint at epoch k says so
  with the SDK's step=k: the curve keeps steps 0..k-1; at the curve's next step the new run
  takes over just as well (nothing cut), so the earlier run's reports are stale from then on;
- a session a newer one replaced: stale (a pod cut off from the cluster still running beside
  its replacement, or one of two processes that both report). Answered, not recorded: one
  process makes the curve, and two never take turns cutting it back. Its first such report
  in the attempt makes the event STALE_REPORT_EVENT (and a log warning), the later ones none;
- no session (an SDK older than sessions): the old rule, a step already held is a retry.

A final result is the result of the run that sent it (the SDK sends it with its session too):

- from a session a newer one replaced: stale, answered but not recorded (with a note). Before,
  a replaced process still running beside its replacement overwrote the new run's result, or
  gave the trial the result of a run whose curve was replaced, the last final report winning;
- from any other session, or none: recorded as before (a process that sent no intermediate
  report replaced nobody: an evaluation script beside the training, a process resumed at its
  last epoch). It does not take over the curve either;
- a new run that takes over the curve drops a final result recorded before it (its step's
  transaction): that result was the replaced run's, so the trial's result is the new run's
  own, or none if it ends without one, as for a trial whose process never reported one.
  Whether the SDK or MLflow gave it, the note says "recorded before". Values the replaced run
  logged through MLflow or printed make no result either (mlflow_runs.RunState.result_view).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Iterable, Mapping

HEADER = "X-AutoTune-Session"
# What the SDK sends (32 hex digits), with room for other clients; no spaces or controls,
# as it is written into events and log lines.
SESSION_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,64}")
EVENT = "curve_restarted"  # the trial's event saying a new run took over its curve
STALE_FINAL_EVENT = "stale_final_ignored"  # a replaced run's final result, not recorded
STALE_REPORT_EVENT = "stale_report_ignored"  # a replaced run's intermediate reports, not recorded


class Report(Enum):
    APPEND = "append"  # the next step (the caller refuses a step beyond it)
    RETRY = "retry"  # a step already held, sent again by the process that sent it
    RESTART = "restart"  # a held step or the next, from a new run: the curve restarts there
    STALE = "stale"  # from a process a newer one replaced: not part of the curve


@dataclass
class Sessions:
    """The SDK processes of one attempt of a trial: the one whose points end the curve
    (None: not known, points of an SDK without sessions or another channel), and those a
    newer one replaced."""

    current: str | None = None
    replaced: set[str] = field(default_factory=set)
    # Replaced sessions whose ignored reports were said (STALE_REPORT_EVENT): once each, as a
    # zombie process reports every epoch.
    said_stale: set[str] = field(default_factory=set)

    def took_over(self, session: str | None) -> None:
        """``session`` sent the curve's newest point: an earlier current one is replaced."""
        if session is None or session == self.current:
            return
        if self.current is not None:
            self.replaced.add(self.current)
        self.current = session


def check_session(value: str | None) -> str | None:
    """The header's value, or ValueError naming what is wrong with it (blank: no session)."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if not SESSION_PATTERN.fullmatch(value):
        raise ValueError(f"header {HEADER} must be 1 to 64 characters of letters, digits and ._:- "
                         f"(the SDK sends a random hex id), got {value[:80]!r}")
    return value


def decide(step: int, points: int, session: str | None, sessions: Sessions) -> Report:
    """What an SDK report at ``step`` from ``session`` does to a curve of ``points`` points."""
    if session is not None and session in sessions.replaced:
        return Report.STALE
    if session is None or sessions.current is None or session == sessions.current:
        # Unknown sender of the held points: as before sessions, a retry (a restarted
        # server's curve from before sessions were recorded, an old SDK's).
        return Report.APPEND if step >= points else Report.RETRY
    # Another process: a new run, also when it goes on at the next step (a script resumed
    # from a checkpoint, the SDK's step=): it replaces the earlier one from here, which the
    # event says, so a restarted server still knows the earlier one's reports are stale.
    return Report.APPEND if step > points else Report.RESTART


def restart_note(step: int, points: int, final: float | None = None) -> str:
    """The one line saying a new run of the trial took over its curve at ``step``, replacing
    the ``points`` - ``step`` points held from there (and ``final``, the earlier run's final
    result, when one was recorded)."""
    dropped_final = ("" if final is None else
                     f"; the final result {final} recorded before is dropped (the new run reports its own)")
    if step == points:  # a resumed run going on where the earlier one stopped
        return (f"another process of this trial (restarted, or a second one reporting too) went on at step {step}: "
                f"the curve goes on with its values, and the earlier process's later reports are ignored"
                f"{dropped_final}")
    return (f"another process of this trial (restarted, or a second one reporting too) reported step {step} again: "
            f"the curve goes on with its values from step {step}; the {points - step} point(s) the earlier "
            f"process reported from there are kept in the trial's events only, and its later reports are ignored"
            f"{dropped_final}")


def restart_event(step: int, points: int, session: str, replaced: str | None, created: float,
                  final: float | None = None) -> dict[str, Any]:
    """The payload of the trial's event EVENT (``created``: the attempt's, as requeued
    attempts are runs of their own; ``final``: the trial's recorded final result, which the
    restart drops, None when it had none)."""
    return {"step": step, "dropped": points - step, "session": session, "replaced": replaced,
            "created": created, "droppedFinal": final, "note": restart_note(step, points, final)}


def final_is_stale(session: str | None, sessions: Sessions) -> bool:
    """Whether a final result from ``session`` belongs to a run a newer one replaced (not
    recorded). No session (an SDK older than sessions, MLflow's result): recorded as before."""
    return session is not None and session in sessions.replaced


def stale_final_event(value: float, metrics: Any, session: str, current: str | None) -> dict[str, Any]:
    """The payload of the trial's event STALE_FINAL_EVENT: the ignored result, kept for the record."""
    return {"value": value, "metrics": metrics, "session": session, "current": current,
            "note": (f"a final result ({value}) came from a process of this trial that a newer one replaced "
                     f"(a pod or process still running beside its replacement): not recorded, the trial's "
                     f"result is its current run's")}


def stale_report_event(step: int, value: float, session: str, current: str | None, created: float) -> dict[str, Any]:
    """The payload of the trial's event STALE_REPORT_EVENT, made at the first ignored report of
    a replaced ``session`` in the attempt ``created`` (its later ones are ignored silently)."""
    return {"step": step, "value": value, "session": session, "current": current, "created": created,
            "note": (f"intermediate reports (the first: step {step}, {value}) come from a process of this trial "
                     f"that a newer one replaced (a pod or process still running beside its replacement): "
                     f"answered but not recorded, the curve is its current run's; its later reports are "
                     f"ignored without a further note")}


def from_events(newest_point: Mapping[str, Any] | None, restarts: Iterable[Mapping[str, Any]],
                created: float, stale_notes: Iterable[Mapping[str, Any]] = ()) -> Sessions:
    """The sessions of a trial's attempt as its stored events give them (a restarted server):
    the newest point's sender is current, each restart of this attempt replaced one, and each
    STALE_REPORT_EVENT of this attempt said one's reports were ignored."""
    out = Sessions(current=(newest_point or {}).get("session"))
    for r in restarts:
        if r.get("created") == created and r.get("replaced"):
            out.replaced.add(r["replaced"])
    for n in stale_notes:
        if n.get("created") == created and n.get("session"):
            out.said_stale.add(n["session"])
    if out.current is not None:
        out.replaced.discard(out.current)
    return out
