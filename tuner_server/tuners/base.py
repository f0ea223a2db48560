"""The tuner protocol: every algorithm is a function of the recorded history plus a seeded RNG.

A tuner never keeps state that cannot be rebuilt from the history it is handed: the
tuner server persists every trial and, after a restart, simply calls ``suggest`` again
with the same history. The RNG passed to ``suggest`` is derived from the experiment's
seed and the trial's sequence number, so the same history gives the same suggestion.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np

from tuner_server.history import OptimizeMode, TrialRecord
from tuner_server.searchspace import SearchSpace, param_key  # noqa: F401  (re-exported: tuners import it from here)


class NoMoreTrials(Exception):
    """The tuner has nothing new to give: the experiment should end DONE."""


class TryLater(Exception):
    """The tuner has nothing to give until running trials end (e.g. PBT's next generation)."""


class TunerArgsError(ValueError):
    """Invalid classArgs or a search space the algorithm cannot handle."""


class Tuner(ABC):
    #: builtinTunerName as users spell it, plus accepted aliases (matched case-insensitively).
    name: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    #: search-space _types this algorithm supports; others are rejected at validation time.
    supported_types: ClassVar[frozenset[str]] = frozenset(
        {"choice", "randint", "uniform", "quniform", "loguniform", "qloguniform", "normal", "qnormal", "lognormal", "qlognormal"}
    )
    #: classArgs accepted and ignored (with a warning), e.g. the seed's Batch example.
    ignored_args: ClassVar[frozenset[str]] = frozenset()
    #: default optimize_mode when classArgs omit it (NNI's default for the algorithm).
    default_mode: ClassVar[OptimizeMode] = OptimizeMode.MAXIMIZE
    #: True for tuners that handle several objectives (spec.objectives): they read each
    #: trial's ``values`` with the directions in ``self.objectives``. Others are refused
    #: for a multi-objective experiment at validation time.
    multi_objective: ClassVar[bool] = False
    #: the direction of each objective (empty for a single-objective experiment).
    objectives: tuple[OptimizeMode, ...] = ()
    #: Why this algorithm takes no imported trials (spec.warmStart), or "" when it does. A
    #: tuner reading only results and parameters learns from them; one that counts or
    #: orders its own trials (a grid, a batch, generations, brackets) would be thrown off.
    warm_start_refused: ClassVar[str] = ""
    #: Keys this tuner writes into every trial's parameters itself (PBT's checkpoint folders).
    #: Never a search-space parameter: its configure refuses such a name. Another experiment
    #: importing these trials (warm start) leaves them out: its search space has no such keys.
    added_parameters: ClassVar[frozenset[str]] = frozenset()
    #: Those of :attr:`added_parameters` that :meth:`final_parameters` gives a rerun afresh:
    #: a final rerun is matched to the configuration it reruns without them.
    rerun_own_parameters: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, space: SearchSpace, class_args: Mapping[str, Any], seed: int = 0) -> None:
        self.space = space
        self.seed = seed
        self.warnings: list[str] = []
        # (sequence, trial id) -> (parameters, their param_key): pure cache for seen_keys
        self._key_memo: dict[tuple[int, str], tuple[Mapping[str, Any], Any]] = {}
        args = dict(class_args)
        for k in sorted(set(args) & self.ignored_args):
            self.warnings.append(f"{self.name} ignores classArgs.{k}")
            args.pop(k)
        unsupported = sorted({d.type for d in space.dims} - self.supported_types)
        if unsupported:
            which = [d.key for d in space.dims if d.type in unsupported]
            raise TunerArgsError(
                f"tuner {self.name} does not support search-space type(s) {unsupported} "
                f"(parameter(s) {which}); it supports {sorted(self.supported_types)}"
            )
        if "seed" in args:
            self.seed = arg(self.name, args, "seed", 0, int, lambda v: v >= 0, "must be >= 0")
            args.pop("seed")
        mode = args.pop("optimize_mode", None)
        if mode is None:
            self.mode = self.default_mode
            self.mode_given = False
        else:
            if mode not in ("maximize", "minimize"):
                raise TunerArgsError(f"classArgs.optimize_mode must be 'maximize' or 'minimize', got {mode!r}")
            self.mode = OptimizeMode(mode)
            self.mode_given = True
        self.configure(args)

    def configure(self, args: dict[str, Any]) -> None:
        """Validate and take the algorithm's own classArgs; the default takes none."""
        reject_unknown(self.name, args, ())

    def bind_experiment(self, experiment: str, checkpoint_base: str | None = None) -> None:
        """Told the id of the experiment this tuner serves (the engine calls it once built);
        a tuner that names files on disk keys them by it, under ``checkpoint_base`` when the
        engine has one (a local run's output folder). The default needs nothing."""

    def final_parameters(self, parameters: Mapping[str, Any], sequence: int,
                         history: Sequence[TrialRecord]) -> dict[str, Any]:
        """The parameters a final-training rerun (trial ``sequence``) of a chosen search
        trial's ``parameters`` is given. A tuner whose parameters name where a trial writes
        (PBT's checkpoint folder) gives the rerun its own place, so it never writes over the
        trial it reruns. The default: the same parameters."""
        return dict(parameters)

    @classmethod
    def not_own_result(cls, parameters: Mapping[str, Any]) -> str | None:
        """Why a trial of this tuner given ``parameters`` measured more than its
        configuration trained from scratch (None: it did not), so that another experiment
        must not import its result as that configuration's (warm start). The default: never."""
        return None

    @abstractmethod
    def suggest(self, history: Sequence[TrialRecord], rng: np.random.Generator) -> dict[str, Any]:
        """The next trial's parameters. Raise NoMoreTrials when nothing new remains."""

    # ----- helpers shared by algorithms -----
    def losses(self, history: Sequence[TrialRecord]) -> list[tuple[TrialRecord, float]]:
        """Completed trials with a result, as (trial, loss) with lower = better."""
        return [(t, self.mode.loss(t.value)) for t in history if t.value is not None and t.state.ended and math.isfinite(t.value)]

    def seen_keys(self, history: Sequence[TrialRecord]) -> set[Any]:
        """param_key of every trial in the history (any state).

        Each trial's key is computed once and reused while its parameters compare equal
        (the server hands fresh but equal records each call): at 1,000 trials this is a
        dict lookup and an equality test per trial instead of a JSON encoding.
        """
        memo = self._key_memo
        out: set[Any] = set()
        for t in history:
            ck = (t.sequence, t.trial_id)
            hit = memo.get(ck)
            if hit is None or not (hit[0] is t.parameters or hit[0] == t.parameters):
                hit = (t.parameters, param_key(t.parameters))
                memo[ck] = hit
            out.add(hit[1])
        return out

    def space_exhausted(self, history: Sequence[TrialRecord], seen: set[Any] | None = None) -> bool:
        card = self.space.cardinality()
        return card is not None and len(self.seen_keys(history) if seen is None else seen) >= card

    def sample_new(self, history: Sequence[TrialRecord], rng: np.random.Generator, tries: int = 200) -> dict[str, Any]:
        """A prior sample not tried before (NoMoreTrials when a finite space is used up)."""
        seen = self.seen_keys(history)
        if self.space_exhausted(history, seen):
            raise NoMoreTrials(f"all {self.space.cardinality()} configurations of the search space were tried")
        params = self.space.to_parameters(self.space.sample_flat(rng))
        for _ in range(tries):
            if param_key(params) not in seen:
                return params
            params = self.space.to_parameters(self.space.sample_flat(rng))
        # A nearly used-up finite space: draw among what is left (near the end of 2,000
        # configurations, giving up with a repeat ran 26 duplicate trials).
        from tuner_server.tuners.tpe import _ENUMERATE_LIMIT, enumerate_flats  # here: tpe imports this module

        card = self.space.cardinality()
        if card is not None and card <= _ENUMERATE_LIMIT:
            rest = [p for p in map(self.space.to_parameters, enumerate_flats(self.space)) if param_key(p) not in seen]
            if not rest:
                raise NoMoreTrials(f"all {card} configurations of the search space were tried")
            return rest[int(rng.integers(len(rest)))]
        return params  # a huge space nearly used up: a repeat beats stalling


def reject_unknown(tuner: str, args: Mapping[str, Any], known: Sequence[str]) -> None:
    unknown = sorted(set(args) - set(known))
    if unknown:
        hint = f"; known: {sorted(known)}" if known else "; it takes none"
        raise TunerArgsError(f"{tuner} does not know classArgs {unknown}{hint}")


def arg(
    tuner: str, args: Mapping[str, Any], key: str, default: Any, kind: type | tuple[type, ...], check: Any = None, why: str = ""
) -> Any:
    """Read one classArg with a type check and an optional predicate; errors name the arg."""
    v = args.get(key, default)
    if v is None and default is None:
        return None
    ok_type = isinstance(v, kind) and not (isinstance(v, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)))
    if not ok_type:
        want = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise TunerArgsError(f"{tuner} classArgs.{key} must be {want}, got {v!r}")
    if check is not None and not check(v):
        raise TunerArgsError(f"{tuner} classArgs.{key} {why}, got {v!r}")
    return v
