"""An Azure ML sweep job's search space, sampling algorithm and early-termination policy
in AutoTune's (NNI's) terms. Pure functions; ``azure.py`` assembles the experiment.

Field facts: Azure's "CLI (v2) sweep job YAML schema" (parameter expressions, sampling
algorithms, early termination policies) and its hyperparameter-tuning guide (seed 003).
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from autotune_operator.convert.common import ConvertError, integer, mapping, number

# Each Azure parameter expression: its keys, in the order NNI's _value lists them.
EXPRESSIONS: dict[str, tuple[str, ...]] = {
    "choice": ("values",),
    "randint": ("upper",),
    "uniform": ("min_value", "max_value"),
    "quniform": ("min_value", "max_value", "q"),
    "loguniform": ("min_value", "max_value"),
    "qloguniform": ("min_value", "max_value", "q"),
    "normal": ("mu", "sigma"),
    "qnormal": ("mu", "sigma", "q"),
    "lognormal": ("mu", "sigma"),
    "qlognormal": ("mu", "sigma", "q"),
}
# Azure's Bayesian sampling takes choice, uniform and quniform; GPTuner takes those and the
# log-uniform ones, so only a normal-family parameter (which Azure itself would refuse)
# needs TPE, the other model-based tuner.
GP_TYPES = frozenset({"choice", "randint", "uniform", "quniform", "loguniform", "qloguniform"})


def _exp(log_bound: float, where: str) -> float:
    why = (f"is the logarithm of the bound (Azure's loguniform samples exp(uniform(min_value, max_value))); "
           f"exp({log_bound}) is too")
    try:
        # 12 significant digits: exp(log(1e-4)) is 1e-4, not 9.999999999999991e-05
        value = float(f"{math.exp(log_bound):.12g}")
    except OverflowError:
        raise ConvertError(where, f"{why} large for a number") from None
    if value == 0:  # underflow: the converted space's own check would only say 'low=0.0'
        raise ConvertError(where, f"{why} small for a number (it is 0)")
    return value


def parameter(name: str, raw: Any, notes: list[str]) -> dict[str, Any]:
    """One ``search_space.<name>`` expression as NNI's ``{"_type", "_value"}``."""
    where = f"search_space.{name}"
    expr = mapping(raw, where, required=True)
    kind = expr.get("type")
    if not isinstance(kind, str) or kind.lower() not in EXPRESSIONS:
        raise ConvertError(f"{where}.type", f"must be one of {sorted(EXPRESSIONS)}, got {kind!r}")
    kind = kind.lower()
    keys = EXPRESSIONS[kind]
    extra = sorted(set(expr) - {"type", *keys}, key=str)
    if extra:
        raise ConvertError(f"{where}.{extra[0]}", f"is not a key of a {kind} expression (it takes {list(keys)})")
    for k in keys:
        if k not in expr:
            raise ConvertError(f"{where}.{k}", f"is required by a {kind} expression")
    if kind == "choice":
        values = expr["values"]
        if not isinstance(values, list) or not values:
            raise ConvertError(f"{where}.values", "must be a non-empty list")
        return {"_type": "choice", "_value": list(values)}
    if kind == "randint":  # Azure: an integer in [0, upper); NNI's randint [low, high) is the same with low 0
        upper = integer(expr["upper"], f"{where}.upper")
        if upper < 1:
            raise ConvertError(f"{where}.upper", f"must be >= 1 (the range is [0, upper)), got {upper}")
        return {"_type": "randint", "_value": [0, upper]}
    args = [number(expr[k], f"{where}.{k}") for k in keys]
    if kind in ("loguniform", "qloguniform"):
        low, high = _exp(args[0], f"{where}.min_value"), _exp(args[1], f"{where}.max_value")
        args[:2] = [low, high]
        notes.append(f"{where}: Azure's {kind} bounds are logarithms (min_value {expr['min_value']}, max_value "
                     f"{expr['max_value']}); AutoTune's {kind} takes the values themselves: [{low:.6g}, {high:.6g}]")
    return {"_type": kind, "_value": args}


def search_space(raw: Any, notes: list[str]) -> dict[str, Any]:
    space = mapping(raw, "search_space", required=True)
    if not space:
        raise ConvertError("search_space", "must name at least one hyperparameter")
    for name in space:
        if not isinstance(name, str):
            raise ConvertError("search_space", f"a hyperparameter's name must be text, got {name!r}")
    return {name: parameter(name, expr, notes) for name, expr in space.items()}


def _sampling(raw: Any) -> dict[str, Any]:
    if raw is None:
        raise ConvertError("sampling_algorithm", "is required (random, grid or bayesian)")
    if isinstance(raw, str):
        return {"type": raw}
    return mapping(raw, "sampling_algorithm")


def tuner(raw: Any, space: Mapping[str, Any], mode: str, notes: list[str]) -> tuple[dict[str, Any], int | None]:
    """(the spec.tuner block, the seed) for ``sampling_algorithm``."""
    algo = _sampling(raw)
    kind = algo.get("type")
    if not isinstance(kind, str) or kind.lower() not in ("random", "grid", "bayesian"):
        raise ConvertError("sampling_algorithm.type", f"must be random, grid or bayesian, got {kind!r}")
    kind = kind.lower()
    allowed = {"random": {"type", "seed", "rule"}}.get(kind, {"type"})
    extra = sorted(set(algo) - allowed, key=str)
    if extra:
        raise ConvertError(f"sampling_algorithm.{extra[0]}", f"is not a setting of {kind} sampling "
                           f"(it takes {sorted(allowed - {'type'}) or 'none'})")
    args: dict[str, Any] = {"optimize_mode": mode}
    seed = None
    if kind == "random":
        rule = algo.get("rule", "random")
        if not isinstance(rule, str) or rule.lower() not in ("random", "sobol"):
            raise ConvertError("sampling_algorithm.rule", f"must be random or sobol, got {rule!r}")
        if rule.lower() == "sobol":
            args["rule"] = "sobol"
        if algo.get("seed") is not None:
            seed = integer(algo["seed"], "sampling_algorithm.seed")
            if seed < 0:
                raise ConvertError("sampling_algorithm.seed", f"must be >= 0, got {seed}")
        return {"builtinTunerName": "Random", "classArgs": args}, seed
    if kind == "grid":
        for name, p in space.items():
            if p["_type"] != "choice":
                raise ConvertError(f"search_space.{name}.type", f"is {p['_type']}; grid sampling takes only choice "
                                   f"parameters (Azure's rule): list its values, or use random or bayesian sampling")
        return {"builtinTunerName": "GridSearch", "classArgs": {}}, None
    others = sorted(n for n, p in space.items() if p["_type"] not in GP_TYPES)
    if others:
        notes.append(f"sampling_algorithm bayesian: {others} {'is' if len(others) == 1 else 'are'} normal-family "
                     f"parameters, which Azure's Bayesian sampling refuses and AutoTune's Gaussian process (GPTuner) "
                     f"cannot take: using TPE, AutoTune's other model-based tuner")
        return {"builtinTunerName": "TPE", "classArgs": args}, None
    return {"builtinTunerName": "GPTuner", "classArgs": args}, None


POLICIES = {"bandit": "Bandit", "median_stopping": "Medianstop", "truncation_selection": "TruncationSelection"}
POLICY_KEYS = {"bandit": {"slack_factor", "slack_amount"}, "median_stopping": set(),
               "truncation_selection": {"truncation_percentage", "exclude_finished_jobs"}}


def _policy_kind(kind: Any) -> str:
    """Azure's YAML names (bandit, median_stopping, truncation_selection); the REST API's
    (Bandit, MedianStopping, TruncationSelection) too."""
    folded = kind.lower().replace("_", "") if isinstance(kind, str) else None
    for k in POLICIES:
        if folded in (k.replace("_", ""), k.replace("_", "") + "policy"):
            return k
    raise ConvertError("early_termination.type", f"must be one of {sorted(POLICIES)}, got {kind!r}")


def _interval(policy: dict[str, Any], notes: list[str]) -> int:
    raw = policy.get("evaluation_interval")
    if raw is None:
        return 1
    interval = integer(raw, "early_termination.evaluation_interval")
    if interval < 0:
        raise ConvertError("early_termination.evaluation_interval", f"must be >= 0, got {interval}")
    if interval == 0:  # azure-ai-ml's Python default; the YAML schema's default is 1
        notes.append("early_termination.evaluation_interval 0: the policy is applied at every report (1)")
        return 1
    return interval


def assessor(raw: Any, mode: str, notes: list[str]) -> dict[str, Any] | None:
    """The spec.assessor block for ``early_termination`` (None when there is none)."""
    if raw is None:
        return None
    policy = mapping(raw, "early_termination")
    kind = _policy_kind(policy.get("type"))
    extra = sorted(set(policy) - {"type", "evaluation_interval", "delay_evaluation", *POLICY_KEYS[kind]}, key=str)
    if extra:
        raise ConvertError(f"early_termination.{extra[0]}", f"is not a setting of the {kind} policy")
    args: dict[str, Any] = {"optimize_mode": mode}
    interval = _interval(policy, notes)
    delay = integer(policy.get("delay_evaluation") or 0, "early_termination.delay_evaluation")
    if delay < 0:
        raise ConvertError("early_termination.delay_evaluation", f"must be >= 0, got {delay}")
    args["evaluation_interval"] = interval
    args["delay_evaluation"] = delay
    if kind == "median_stopping":
        # Azure's median is over all runs; Medianstop's default (NNI's) over completed ones.
        args["median_over"] = "all"
        return {"builtinAssessorName": POLICIES[kind], "classArgs": args}
    if kind == "bandit":
        given = [k for k in ("slack_factor", "slack_amount") if policy.get(k) is not None]
        if len(given) != 1:
            raise ConvertError("early_termination.slack_factor", "a bandit policy needs exactly one of slack_factor and "
                               f"slack_amount, got {'both' if given else 'neither'}")
        value = number(policy[given[0]], f"early_termination.{given[0]}")
        if value < 0:
            raise ConvertError(f"early_termination.{given[0]}", f"must be >= 0, got {value}")
        args[given[0]] = value
    else:
        if policy.get("truncation_percentage") is None:
            raise ConvertError("early_termination.truncation_percentage", "is required by a truncation_selection policy "
                               "(an integer 1..99)")
        p = integer(policy["truncation_percentage"], "early_termination.truncation_percentage")
        if not 1 <= p <= 99:
            raise ConvertError("early_termination.truncation_percentage", f"must be an integer 1..99, got {p}")
        args["truncation_percentage"] = p
        if "exclude_finished_jobs" in policy:
            ex = policy["exclude_finished_jobs"]
            if not isinstance(ex, bool):
                raise ConvertError("early_termination.exclude_finished_jobs", f"must be true or false, got {ex!r}")
            args["exclude_finished_jobs"] = ex
    return {"builtinAssessorName": POLICIES[kind], "classArgs": args}
