"""Batch: the user lists whole parameter sets; they are handed out once each, in order."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Sequence

import numpy as np

from tuner_server.history import TrialRecord
from tuner_server.searchspace import SearchSpace
from tuner_server.tuners.base import NoMoreTrials, Tuner, TunerArgsError


class BatchTuner(Tuner):
    name = "Batch"
    multi_objective = True  # never reads results, so any number of objectives works
    warm_start_refused = "Batch never reads results; it hands out its listed parameter sets in order"
    aliases = ("BatchTuner",)
    supported_types = frozenset({"choice"})
    # The T9k manual's Batch example passes these although Batch takes no arguments.
    ignored_args = frozenset({"optimize_mode", "population_size"})

    def __init__(self, space: SearchSpace, class_args: Mapping[str, Any], seed: int = 0) -> None:
        if len(space.top) != 1:
            raise TunerArgsError(
                f"Batch needs a search space with exactly one 'choice' parameter listing the parameter "
                f"sets; this one has {len(space.top)}: {list(space.top)}"
            )
        if space.is_nested:
            # Said apart: "exactly one ... this one has 1" left the user guessing.
            raise TunerArgsError(
                f"Batch does not support nested choice (parameter '{space.top[0]}'): its options are "
                f"whole parameter sets, given as plain objects without '_name' or sub-parameters"
            )
        dim = space[space.top[0]]
        sets = [i for i, o in enumerate(dim.options) if isinstance(o, Mapping)]
        if sets and len(sets) < len(dim.options):
            # Objects are whole parameter sets and other values fill the one parameter: mixed,
            # some trials got {"lr": 0.1} and others {"sets": 0.2}; which was meant cannot be told.
            plain = next(i for i in range(len(dim.options)) if i not in sets)
            raise TunerArgsError(
                f"Batch parameter '{dim.key}' mixes parameter sets (objects, e.g. option {sets[0]}) with plain "
                f"values (e.g. option {plain}: {dim.options[plain]!r}); list either whole parameter sets or "
                f"values of the one parameter"
            )
        super().__init__(space, class_args, seed)
        # A dict element is a whole parameter set (NNI's combine_params); a scalar is the
        # value of the single parameter.
        self.sets: list[dict[str, Any]] = [
            dict(o) if isinstance(o, Mapping) else {dim.name: o} for o in dim.options
        ]

    def suggest(self, history: Sequence[TrialRecord], rng: np.random.Generator) -> dict[str, Any]:
        n = len(history)
        if n >= len(self.sets):
            raise NoMoreTrials(f"all {len(self.sets)} parameter sets of the batch were handed out")
        return dict(self.sets[n])
