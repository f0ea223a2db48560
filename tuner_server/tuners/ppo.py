"""PPOTuner: architecture search with proximal policy optimisation, in numpy.

Each search-space key is one step of an episode; the action at a step picks one option
(choice / layer_choice) or one combination of ``n_chosen`` inputs (input_choice). The
policy is a small per-step softmax (one logit vector per step, no TensorFlow, no LSTM)
with a per-step value baseline. A trial's final metric is the episode's reward at its last
step (negated when minimizing); advantages by GAE(gamma, lam), standardised per batch.

Every ``trials_per_update`` completed trials (in sequence order) form a batch; the policy
then takes ``epochs_per_update`` epochs of clipped-PPO updates (cliprange) over minibatches
of ``minibatch_size`` trials, loss = -clipped surrogate - ent_coef * entropy + vf_coef *
value loss, gradients clipped to ``max_grad_norm`` and applied with Adam (``lr``).
The state is rebuilt on every call by replaying these updates over the history, with
minibatch shuffles from an RNG derived from the seed and the batch number, so it is a
deterministic function of the history. Note: with a tabular policy NNI's lr (3e-4) moves
the logits slowly; a larger lr (e.g. 0.05) learns within a few hundred trials.
Suggestions are drawn from the current policy; repeats are re-drawn (then a fresh prior
sample); a finite space ends with NoMoreTrials.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Sequence

import numpy as np

from tuner_server.history import TrialRecord
from tuner_server.tuners.base import Tuner, TunerArgsError, arg, reject_unknown
from tuner_server.tuners.tpe import HistoryMemo, flat_key, fresh_prior_sample

_MAX_ACTIONS = 10_000
_REDRAWS = 50


class PPOTuner(Tuner):
    name = "PPOTuner"
    aliases = ("PPO",)
    supported_types = frozenset({"choice", "layer_choice", "input_choice"})

    def configure(self, args: dict[str, Any]) -> None:
        n = self.name
        keys = ("trials_per_update", "epochs_per_update", "minibatch_size", "ent_coef", "lr", "vf_coef",
                "max_grad_norm", "gamma", "lam", "cliprange")
        reject_unknown(n, args, keys)
        num = (int, float)
        self.trials_per_update = arg(n, args, "trials_per_update", 20, int, lambda v: v >= 1, "must be >= 1")
        self.epochs_per_update = arg(n, args, "epochs_per_update", 4, int, lambda v: v >= 1, "must be >= 1")
        self.minibatch_size = arg(n, args, "minibatch_size", 4, int, lambda v: v >= 1, "must be >= 1")
        if self.trials_per_update % self.minibatch_size:
            raise TunerArgsError(f"{n} classArgs.trials_per_update ({self.trials_per_update}) must be a multiple of "
                                 f"classArgs.minibatch_size ({self.minibatch_size})")
        self.ent_coef = float(arg(n, args, "ent_coef", 0.0, num, lambda v: v >= 0, "must be >= 0"))
        self.lr = float(arg(n, args, "lr", 3e-4, num, lambda v: v > 0, "must be > 0"))
        self.vf_coef = float(arg(n, args, "vf_coef", 0.5, num, lambda v: v >= 0, "must be >= 0"))
        self.max_grad_norm = float(arg(n, args, "max_grad_norm", 0.5, num, lambda v: v > 0, "must be > 0"))
        self.gamma = float(arg(n, args, "gamma", 0.99, num, lambda v: 0 <= v <= 1, "must be in [0, 1]"))
        self.lam = float(arg(n, args, "lam", 0.95, num, lambda v: 0 <= v <= 1, "must be in [0, 1]"))
        self.cliprange = float(arg(n, args, "cliprange", 0.2, num, lambda v: v > 0, "must be > 0"))
        self.steps: list[tuple[str, list[Any]]] = []  # key, the actions (option index or candidate list)
        for d in self.space.dims:
            if d.is_nested_choice:
                raise TunerArgsError(f"tuner {n} does not support nested choice (parameter '{d.key}')")
            if d.type == "input_choice":
                cands, k = d.args
                if math.comb(len(cands), k) > _MAX_ACTIONS:
                    raise TunerArgsError(f"tuner {n}: input_choice '{d.key}' has more than {_MAX_ACTIONS} combinations")
                acts = [[cands[i] for i in c] for c in itertools.combinations(range(len(cands)), k)]
            else:
                acts = list(range(len(d.options)))
            self.steps.append((d.key, acts))
        self._memo = HistoryMemo(self.space)
        self._card = self.space.cardinality()

    # ----- policy -----
    def _actions(self, flat: dict[str, Any]) -> list[int]:
        out = []
        for key, acts in self.steps:
            v = flat[key]
            out.append(acts.index(list(v)) if isinstance(v, (list, tuple)) else int(v))
        return out

    def policy(self, history: Sequence[TrialRecord]) -> list[np.ndarray]:
        """Per-step logits after replaying every full batch of completed trials."""
        logits = [np.zeros(len(acts)) for _, acts in self.steps]
        values = np.zeros(len(self.steps))
        params = logits + [values]
        m = [np.zeros_like(p) for p in params]
        v = [np.zeros_like(p) for p in params]
        done: list[tuple[list[int], float]] = []
        for t in sorted(history, key=lambda t: t.sequence):
            if t.state.ended and t.value is not None and math.isfinite(t.value):
                flat, _ = self._memo.flat(t)
                if flat is not None:
                    done.append((self._actions(flat), -self.mode.loss(float(t.value))))
        n_batches = len(done) // self.trials_per_update
        step = 0
        for b in range(n_batches):
            batch = done[b * self.trials_per_update : (b + 1) * self.trials_per_update]
            A = np.array([a for a, _ in batch])  # trials x steps
            r = np.array([x for _, x in batch])
            r = (r - r.mean()) / (r.std() + 1e-8)
            T = len(self.steps)
            vals = np.tile(values, (len(batch), 1))
            adv = np.zeros_like(vals)
            last = np.zeros(len(batch))
            for s in reversed(range(T)):
                nxt = vals[:, s + 1] if s + 1 < T else 0.0
                rew = r if s == T - 1 else 0.0
                delta = rew + self.gamma * nxt - vals[:, s]
                last = delta + self.gamma * self.lam * (last if s + 1 < T else 0.0)
                adv[:, s] = last
            ret = adv + vals
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
            old_logp = np.stack([_log_softmax(logits[s])[A[:, s]] for s in range(T)], axis=1)
            shuffle = np.random.default_rng([self.seed, 0x990, b])
            for _ in range(self.epochs_per_update):
                order = shuffle.permutation(len(batch))
                for mb in np.split(order, len(batch) // self.minibatch_size):
                    grads = [np.zeros_like(p) for p in params]
                    for s in range(T):
                        lp = _log_softmax(logits[s])
                        pi = np.exp(lp)
                        acts, a_s = A[mb, s], adv[mb, s]
                        ratio = np.exp(lp[acts] - old_logp[mb, s])
                        clipped = ((a_s > 0) & (ratio > 1 + self.cliprange)) | ((a_s < 0) & (ratio < 1 - self.cliprange))
                        coef = np.where(clipped, 0.0, a_s * ratio) / len(mb)
                        onehot = np.zeros((len(mb), len(pi)))
                        onehot[np.arange(len(mb)), acts] = 1.0
                        g = -(coef[:, None] * (onehot - pi)).sum(0)  # minimise -surrogate
                        ent = -(pi * lp).sum()
                        g += self.ent_coef * pi * (lp + ent)  # minimise -entropy
                        grads[s] += g
                        grads[-1][s] += self.vf_coef * np.mean(values[s] - ret[mb, s])
                    norm = math.sqrt(sum(float((g * g).sum()) for g in grads))
                    if norm > self.max_grad_norm:
                        grads = [g * (self.max_grad_norm / norm) for g in grads]
                    step += 1
                    for i, g in enumerate(grads):  # Adam
                        m[i] = 0.9 * m[i] + 0.1 * g
                        v[i] = 0.999 * v[i] + 0.001 * g * g
                        mh, vh = m[i] / (1 - 0.9**step), v[i] / (1 - 0.999**step)
                        params[i] -= self.lr * mh / (np.sqrt(vh) + 1e-8)
        return logits

    def suggest(self, history: Sequence[TrialRecord], rng: np.random.Generator) -> dict[str, Any]:
        seen = {k for k in (self._memo.flat(t)[1] for t in history) if k is not None}
        if self._card is not None and len(seen) >= self._card:
            fresh_prior_sample(self.space, seen, rng, self._card)  # raises NoMoreTrials
        logits = self.policy(history)
        for _ in range(_REDRAWS):
            flat: dict[str, Any] = {}
            for (key, acts), lg in zip(self.steps, logits):
                p = np.exp(_log_softmax(lg))
                flat[key] = acts[int(rng.choice(len(acts), p=p / p.sum()))]
            if flat_key(flat) not in seen:
                return self.space.to_parameters(flat)
        return self.space.to_parameters(fresh_prior_sample(self.space, seen, rng, self._card))


def _log_softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max()
    return z - math.log(np.exp(z).sum())
