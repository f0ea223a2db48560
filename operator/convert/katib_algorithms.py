"""Katib ``spec.algorithm`` and ``spec.earlyStopping`` -> AutoTune tuner/advisor/assessor.

Katib's settings (kubeflow.org "How to Configure Algorithms"; hyperband/service.py for
Hyperband) are a list of ``{name, value}`` with string values. Each algorithm maps to
the AutoTune algorithm of the same method, its settings to the classArgs that mean the
same; ``random_state`` is ``spec.seed``. A setting with no equivalent is a note.

Decisions where AutoTune lacks the method:
- ``cmaes``: TPE with the multivariate Parzen estimator, noted. CMA-ES's point is
  modelling correlated continuous parameters, which the joint estimator also does, and
  refusing would leave the user with nothing to run.
- ``enas`` / ``darts``: refused. They are neural architecture search over
  ``spec.nasConfig``; there is no hyperparameter experiment to carry over.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

from autotune_operator.convert.common import ConvertError, integer, mapping, number

NAS = ("enas", "darts")


@dataclass
class Algorithm:
    block: str  # "tuner" | "advisor"
    name: str
    class_args: dict[str, Any]
    seed: int | None = None
    resource: str | None = None  # Hyperband's resource parameter (a Katib parameter name)
    notes: list[str] = field(default_factory=list)


def settings(raw: Any, where: str) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, list):
        raise ConvertError(where, "must be a list of {name, value}")
    out: dict[str, str] = {}
    for i, s in enumerate(raw):
        s = mapping(s, f"{where}[{i}]", required=True)
        name = s.get("name")
        if not isinstance(name, str) or not name:
            raise ConvertError(f"{where}[{i}].name", "is required")
        if name in out:
            raise ConvertError(f"{where}[{i}].name", f"'{name}' appears twice")
        out[name] = "" if s.get("value") is None else str(s.get("value"))
    return out


class _Settings:
    """Takes settings one by one; whatever is left at the end is noted as dropped."""

    def __init__(self, values: dict[str, str], where: str, notes: list[str]) -> None:
        self.values, self.where, self.notes = dict(values), where, notes

    def take(self, name: str, conv: Callable[[Any, str], Any]) -> Any:
        if name not in self.values:
            return None
        return conv(self.values.pop(name), f"{self.where}[{name}]")

    def drop(self, name: str, why: str) -> None:
        if name in self.values:
            self.notes.append(f"{self.where}[{name}] = {self.values.pop(name)!r}: {why}; dropped")

    def finish(self, algorithm: str) -> None:
        for name, value in self.values.items():
            self.notes.append(f"{self.where}[{name}] = {value!r}: not a Katib {algorithm} setting AutoTune knows; dropped")


def _seed(s: _Settings) -> int | None:
    seed = s.take("random_state", integer)
    if seed is not None and seed < 0:
        raise ConvertError(f"{s.where}[random_state]", f"must be >= 0, got {seed}")
    return seed


def convert_algorithm(doc: Any, mode: str, space_types: set[str]) -> Algorithm:
    """``mode``: maximize/minimize. ``space_types``: the NNI types of the converted space
    (GPTuner takes no normal types)."""
    algo = mapping(doc, "spec.algorithm", required=True)
    name = algo.get("algorithmName")
    if not isinstance(name, str) or not name:
        raise ConvertError("spec.algorithm.algorithmName", "is required")
    where = "spec.algorithm.algorithmSettings"
    notes: list[str] = []
    s = _Settings(settings(algo.get("algorithmSettings"), where), where, notes)
    for k in sorted(set(algo) - {"algorithmName", "algorithmSettings"}):
        notes.append(f"spec.algorithm.{k}: unknown Katib field; dropped")
    n = name.lower()
    args: dict[str, Any] = {"optimize_mode": mode}
    if n in NAS:
        raise ConvertError("spec.algorithm.algorithmName", f"'{name}' is neural architecture search (spec.nasConfig); "
                           "AutoTune converts hyperparameter experiments only")
    if n == "random":
        out = Algorithm("tuner", "Random", args, _seed(s))
    elif n == "grid":
        out = Algorithm("tuner", "GridSearch", args, _seed(s))
    elif n == "sobol":
        out = Algorithm("tuner", "Random", {**args, "rule": "sobol"}, _seed(s))
    elif n in ("tpe", "multivariate-tpe"):
        out = _tpe(n, s, args)
    elif n == "cmaes":
        seed = _seed(s)
        s.drop("sigma", "AutoTune has no CMA-ES")
        s.drop("restart_strategy", "AutoTune has no CMA-ES")
        notes.append("spec.algorithm.algorithmName: AutoTune has no CMA-ES: using TPE with its multivariate "
                     "estimator, which also models how parameters go together")
        out = Algorithm("tuner", "TPE", {**args, "tpe_args": {"multivariate": True}}, seed)
    elif n == "bayesianoptimization":
        out = _bayesian(s, args, space_types, notes)
    elif n == "hyperband":
        out = _hyperband(s, args, notes)
    elif n == "pbt":
        out = _pbt(s, args, notes)
    else:
        raise ConvertError("spec.algorithm.algorithmName", f"unknown Katib algorithm '{name}'; known: random, grid, "
                           "sobol, tpe, multivariate-tpe, cmaes, bayesianoptimization, hyperband, pbt")
    s.finish(name)
    out.notes = notes + out.notes
    return out


def _tpe(n: str, s: _Settings, args: dict[str, Any]) -> Algorithm:
    seed = _seed(s)
    tpe: dict[str, Any] = {}
    if n == "tpe":
        # Katib's tpe is hyperopt's per-parameter TPE: AutoTune's exact equivalent.
        tpe["multivariate"] = False
        ei = s.take("n_EI_candidates", integer)
        if ei is None:
            ei = s.take("n_ei_candidates", integer)
        gamma, prior = s.take("gamma", number), s.take("prior_weight", number)
        if gamma is not None:
            tpe["gamma"] = gamma
        if prior is not None:
            tpe["prior_weight"] = prior
    else:
        tpe["multivariate"] = True
        ei = s.take("n_ei_candidates", integer)
        startup = s.take("n_startup_trials", integer)
        if startup is not None:
            tpe["n_startup_jobs"] = startup
    if ei is not None:
        tpe["n_ei_candidates"] = ei
    return Algorithm("tuner", "TPE", {**args, "tpe_args": tpe}, seed)


_ACQ = {"ei": "ei", "pi": "poi", "lcb": "ucb"}


def _bayesian(s: _Settings, args: dict[str, Any], space_types: set[str], notes: list[str]) -> Algorithm:
    from tuner_server.tuners.gp import GPTuner  # the types it takes, so the result validates

    seed = _seed(s)
    gp: dict[str, Any] = dict(args)
    estimator = s.values.pop("base_estimator", "GP")
    if estimator.upper() != "GP":
        notes.append(f"spec.algorithm.algorithmSettings[base_estimator] = {estimator!r}: AutoTune's GPTuner models "
                     f"with a Gaussian process only; using GP")
    initial = s.take("n_initial_points", integer)
    if initial is not None:
        gp["cold_start_num"] = max(1, initial)
    acq = s.values.pop("acq_func", None)
    if acq is not None:
        utility = _ACQ.get(acq.lower())
        if utility is None:
            notes.append(f"spec.algorithm.algorithmSettings[acq_func] = {acq!r}: GPTuner's utilities are ei, ucb, poi "
                         f"(no {acq}); using ei")
            utility = "ei"
        gp["utility"] = utility
    s.drop("acq_optimizer", "GPTuner optimizes its acquisition its own way (random warm-up, then L-BFGS-B)")
    bad = sorted(space_types - set(GPTuner.supported_types))
    if bad:
        notes.append(f"spec.algorithm.algorithmName: bayesianoptimization -> GPTuner, which does not take {bad} "
                     f"parameters; using TPE")
        return Algorithm("tuner", "TPE", dict(args), seed)
    return Algorithm("tuner", "GPTuner", gp, seed)


def _hyperband(s: _Settings, args: dict[str, Any], notes: list[str]) -> Algorithm:
    resource = s.values.pop("resource_name", None)
    if not resource:
        raise ConvertError("spec.algorithm.algorithmSettings[resource_name]", "is required by Katib's hyperband "
                           "(the parameter that is the budget)")
    r_l = s.take("r_l", number)
    if r_l is None:
        raise ConvertError("spec.algorithm.algorithmSettings[r_l]", "is required by Katib's hyperband (the largest budget)")
    if r_l < 1:
        raise ConvertError("spec.algorithm.algorithmSettings[r_l]", f"must be >= 1 (a budget in epochs), got {r_l}")
    if r_l != int(r_l):  # Katib's budgets may be fractional; AutoTune's trials get an integer EPOCHS
        raise ConvertError("spec.algorithm.algorithmSettings[r_l]", f"must be a whole number of epochs, got {r_l}")
    eta = s.take("eta", number)
    eta = 3 if eta is None or int(eta) <= 0 else int(eta)  # Katib: int(float(eta)), 3 when <= 0
    if eta < 2:
        raise ConvertError("spec.algorithm.algorithmSettings[eta]", f"must be >= 2, got {eta}")
    for k in ("s_max", "b_l", "r", "n", "current_s", "current_i", "evaluating_trials"):
        s.drop(k, "Katib's own Hyperband state, recomputed by AutoTune")
    s_max = int(math.log(r_l) / math.log(eta) + 1e-9)
    # Katib runs Hyperband's outer loop once (s_max .. 0) and then ends: max_brackets says so.
    adv = {**args, "R": r_l, "eta": eta, "max_brackets": s_max + 1}
    notes.append(f"spec.algorithm.algorithmSettings[resource_name] = {resource!r}: AutoTune's Hyperband gives the "
                 f"budget as autotune.get_budget() and $EPOCHS, not as a parameter: '{resource}' is left out of the "
                 f"search space and its placeholder becomes $(EPOCHS), which Kubernetes (and local mode) expand in "
                 f"command/args")
    return Algorithm("advisor", "Hyperband", adv, None, resource)


def _pbt(s: _Settings, args: dict[str, Any], notes: list[str]) -> Algorithm:
    seed = _seed(s)
    pbt: dict[str, Any] = dict(args)
    pop = s.take("n_population", integer)
    if pop is not None:
        pbt["population_size"] = pop
    frac = s.take("truncation_threshold", number)
    if frac is not None:
        if frac > 0.5:
            notes.append(f"spec.algorithm.algorithmSettings[truncation_threshold] = {frac}: PBTTuner's fraction is at "
                         f"most 0.5 (the bottom fraction is replaced by the top one); using 0.5")
            frac = 0.5
        pbt["fraction"] = frac
    resample = s.values.pop("resample_probability", None)
    if resample not in (None, "", "null", "None"):
        pbt["resample_probability"] = number(resample, "spec.algorithm.algorithmSettings[resample_probability]")
    s.drop("suggestion_trial_dir", "PBTTuner hands each trial its checkpoint directories as the parameters "
           "load_checkpoint_dir and save_checkpoint_dir (set the root with classArgs.all_checkpoint_dir)")
    return Algorithm("tuner", "PBTTuner", pbt, seed)


def convert_early_stopping(doc: Any, mode: str) -> tuple[dict[str, Any] | None, list[str]]:
    if doc is None:
        return None, []
    es = mapping(doc, "spec.earlyStopping")
    name = es.get("algorithmName")
    if not isinstance(name, str) or not name:
        raise ConvertError("spec.earlyStopping.algorithmName", "is required")
    if name.lower() != "medianstop":
        raise ConvertError("spec.earlyStopping.algorithmName", f"unknown Katib early stopping algorithm '{name}'; "
                           "known: medianstop")
    where = "spec.earlyStopping.algorithmSettings"
    notes: list[str] = []
    for k in sorted(set(es) - {"algorithmName", "algorithmSettings"}):
        notes.append(f"spec.earlyStopping.{k}: unknown Katib field; dropped")
    s = _Settings(settings(es.get("algorithmSettings"), where), where, notes)
    start = s.take("start_step", integer)
    if start is not None and start < 0:
        raise ConvertError(f"{where}[start_step]", f"must be >= 0, got {start}")
    required = s.take("min_trials_required", integer)
    notes.append(f"{where}[min_trials_required] = {3 if required is None else required}"
                 f"{' (Katib default)' if required is None else ''}: AutoTune's Medianstop compares with every "
                 f"completed trial from the first one; dropped")
    s.finish("medianstop")
    # Katib's default start_step is 4 (AutoTune's 0): written out so the meaning stays.
    return {"builtinAssessorName": "Medianstop",
            "classArgs": {"optimize_mode": mode, "start_step": 4 if start is None else start}}, notes
