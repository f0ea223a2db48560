"""Which edits of a running experiment's spec take effect: a pure function of old and new.

The limits (``maxTrialNum``, ``maxFailedTrialNum``, ``maxTrialSeconds``, ``trialConcurrency``,
``maxExecSeconds``) may change at any time and apply on the next reconcile: more or fewer
trials, more or fewer failures tolerated, a longer or shorter time per trial, more or less
parallelism, a longer or shorter time limit; on an experiment that ended DONE or TIMEOUT,
raising them resumes it (resume.py). Everything else fixes what the search *is* (search space,
tuner and its arguments, assessor, advisor, seed, objectives, the trial's workload) and
the tuner server's history depends on it, so it cannot change; the CRD's transition rules
and the ValidatingAdmissionPolicy refuse such edits at apply time, and this is the
operator's check for clusters without them (the edit is ignored, with a Warning Event).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

MUTABLE = ("maxTrialNum", "maxFailedTrialNum", "maxTrialSeconds", "trialConcurrency", "maxExecSeconds")
DEFAULTS: dict[str, Any] = {"trialConcurrency": 1}


@dataclass(frozen=True)
class SpecChange:
    limits: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # field -> (old, new)
    refused: tuple[str, ...] = ()  # fields that changed but may not

    @property
    def empty(self) -> bool:
        return not self.limits and not self.refused


def diff_spec(old: Mapping[str, Any], new: Mapping[str, Any]) -> SpecChange:
    limits = {}
    for k in MUTABLE:
        a, b = old.get(k, DEFAULTS.get(k)), new.get(k, DEFAULTS.get(k))
        if a != b:
            limits[k] = (a, b)
    refused = tuple(sorted(k for k in set(old) | set(new) if k not in MUTABLE and old.get(k) != new.get(k)))
    return SpecChange(limits, refused)


def limits_of(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The limits a spec sets (absent ones left out), as the status records them."""
    return {k: spec[k] for k in MUTABLE if spec.get(k) is not None}


def describe_limits(change: SpecChange) -> str:
    """'maxTrialNum 4 -> 8, trialConcurrency 1 -> 2' ('none' for an absent limit)."""
    def show(v: Any) -> str:
        return "none" if v is None else str(v)

    return ", ".join(f"{k} {show(a)} -> {show(b)}" for k, (a, b) in change.limits.items())


def refused_message(change: SpecChange) -> str:
    fields = ", ".join(f"spec.{k}" for k in change.refused)
    return (f"{fields} changed, but only {', '.join(MUTABLE)} can change on an existing experiment; "
            f"the experiment keeps its original values (create a new experiment to search differently)")
