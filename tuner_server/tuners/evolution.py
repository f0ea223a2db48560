"""Evolution: NNI's naive evolution (tournament of two, mutate the winner, drop the loser).

The population is rebuilt from the history on every call, so the tuner stays a pure
function of (history, rng):

* Completed trials join the population in sequence order. Whenever it holds more than
  ``population_size`` members, a tournament of two is held and the loser leaves. The
  tournament's draw uses an RNG derived from the tuner's seed and the sequence number of
  the trial that overfilled the population, so replaying the same history always removes
  the same members (NNI removes the loser when it issues the winner's child; doing it when
  the next result arrives keeps the population at ``population_size`` the same way).
* The first ``population_size`` suggestions are prior samples (the initial population).
* After that, a tournament of two among the current population picks a winner; the child
  is the winner with one active parameter re-sampled from the prior -- for a nested
  choice, its whole sub-tree is re-sampled.
* Concurrency above ``population_size`` (where NNI breaks, because the population is not
  yet full of results when more parameters are requested): if nothing has finished yet, a
  prior sample is returned; otherwise the tournament runs among whatever has finished
  (a single member is mutated directly).

A child that was already tried is mutated again (up to a few dozen times); failing that, a
fresh prior sample is returned, and a finite space ends with NoMoreTrials.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from tuner_server.history import OptimizeMode, TrialRecord
from tuner_server.searchspace import NestedOption
from tuner_server.tuners.base import NoMoreTrials, Tuner, arg, reject_unknown
from tuner_server.tuners.tpe import HistoryMemo, flat_key, fresh_prior_sample, order_flat

_MUTATION_TRIES = 40


class EvolutionTuner(Tuner):
    name = "Evolution"
    aliases = ("EvolutionTuner",)
    default_mode = OptimizeMode.MAXIMIZE

    def configure(self, args: dict[str, Any]) -> None:
        reject_unknown(self.name, args, ("population_size",))
        self.population_size = arg(self.name, args, "population_size", 32, int, lambda v: v >= 2, "must be >= 2")
        self._memo = HistoryMemo(self.space)
        self._card = self.space.cardinality()

    # ----- population -----
    def population(self, history: Sequence[TrialRecord]) -> list[tuple[dict[str, Any], float]]:
        """(flat, loss) of the current population, rebuilt deterministically from the history."""
        pop: list[tuple[dict[str, Any], float]] = []
        for t in sorted(history, key=lambda t: t.sequence):
            if not t.state.ended or t.value is None or not math.isfinite(t.value):
                continue
            flat, _ = self._memo.flat(t)
            if flat is None:
                continue
            pop.append((flat, self.mode.loss(float(t.value))))
            if len(pop) > self.population_size:
                r = np.random.default_rng([self.seed, 0xE70, t.sequence])
                i, j = (int(x) for x in r.choice(len(pop), size=2, replace=False))
                # the loser (ties: the older member) leaves
                loser = i if (pop[i][1], -i) > (pop[j][1], -j) else j
                pop.pop(loser)
        return pop

    def suggest(self, history: Sequence[TrialRecord], rng: np.random.Generator) -> dict[str, Any]:
        seen = {k for k in (self._memo.flat(t)[1] for t in history) if k is not None}
        if self._card is not None and len(seen) >= self._card:
            raise NoMoreTrials(f"all {self._card} configurations of the search space were tried")
        pop = self.population(history)
        if len(history) < self.population_size or not pop:
            return self.space.to_parameters(fresh_prior_sample(self.space, seen, rng, self._card))
        for _ in range(_MUTATION_TRIES):
            if len(pop) == 1:
                winner = pop[0][0]
            else:
                i, j = (int(x) for x in rng.choice(len(pop), size=2, replace=False))
                winner = pop[i][0] if pop[i][1] <= pop[j][1] else pop[j][0]
            child = self.mutate(winner, rng)
            if flat_key(child) not in seen:
                return self.space.to_parameters(child)
        return self.space.to_parameters(fresh_prior_sample(self.space, seen, rng, self._card))

    def mutate(self, flat: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
        """Re-sample one active parameter (and, for a nested choice, its sub-tree)."""
        active = self.space.active_keys(flat)
        target = active[int(rng.integers(len(active)))]
        out: dict[str, Any] = {}

        def walk(keys: Sequence[str], fresh: bool) -> None:
            for k in keys:
                d = self.space[k]
                redo = fresh or k == target
                if redo or k not in flat:
                    out[k] = d.sample(rng)
                elif d.is_categorical or d.type == "input_choice":
                    out[k] = flat[k]
                else:
                    # A kept value is handed out again: in the space's own form, as a sample
                    # is. An imported trial's 8.0 for an integer quniform (or 3.0 for a
                    # randint) passes the warm-start check and went on to the trial as a float.
                    out[k] = d.quantize(flat[k])
                if d.is_nested_choice:
                    opt = d.options[int(out[k])]
                    if isinstance(opt, NestedOption):
                        walk(opt.children, redo)

        walk(self.space.top, False)
        return order_flat(self.space, out)
