"""Local mode's result files: status.json (the resource's .status), trials.csv,
importance.json (which parameters mattered) and, for a multi-objective experiment,
pareto.svg (the Pareto front)."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

from autotune_operator.pareto_plot import pareto_svg
from autotune_operator.status import ExperimentStatus
from tuner_server import importance
from tuner_server.history import OptimizeMode
from tuner_server.searchspace import parse_search_space

# Multi-objective fields, left out of a single-objective status.json rather than written as null.
_MO_FIELDS = ("objectives", "paretoFront", "paretoFrontSize", "bestTrials")

TRIAL_COLUMNS = ["id", "sequence", "state", "value", "parameters", "metrics", "intermediate", "duration_s", "exit_code", "message", "kind", "budget"]


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_status(directory: Path, status: ExperimentStatus) -> None:
    unset = {k for k in _MO_FIELDS if getattr(status, k) is None}
    _atomic_write(directory / "status.json", status.model_dump_json(indent=2, exclude=unset) + "\n")


def write_pareto_plot(directory: Path, status: ExperimentStatus, trials: list[dict[str, Any]]) -> Path | None:
    """pareto.svg: every succeeded search trial on the first two objectives, the front
    highlighted (final-training reruns left out, as from the front: each would be drawn over
    its front member). Plain SVG text, so no plotting library is needed. None for
    single-objective experiments."""
    if not status.objectives or status.paretoFront is None:
        return None
    names = [o.name for o in status.objectives]
    points = []
    for t in trials:
        m = t.get("metrics")
        if (t.get("state") == "SUCCEEDED" and t.get("kind", "search") == "search" and isinstance(m, dict)
                and all(n in m for n in names[:2])):
            points.append((t["name"], float(m[names[0]]), float(m[names[1]])))
    front = {p.name for p in status.paretoFront}
    svg = pareto_svg(points, front, [(o.name, o.optimizeMode) for o in status.objectives], title=f"Pareto front ({len(front)} of {len(points)} trials)")
    path = directory / "pareto.svg"
    _atomic_write(path, svg)
    return path


def format_pareto(status: ExperimentStatus, limit: int = 10) -> list[str]:
    """Lines describing the front and each objective's best, for the end of `autotune run`."""
    if not status.objectives or status.paretoFront is None:
        return []
    goals = ", ".join(f"{o.name} ({o.optimizeMode})" for o in status.objectives)
    out = [f"pareto front: {len(status.paretoFront)} trial(s) on {goals}"]
    for p in status.paretoFront[:limit]:
        vals = " ".join(f"{k}={v:.6g}" for k, v in p.values.items())
        out.append(f"  {p.name}: {vals} parameters={p.parameters}")
    if len(status.paretoFront) > limit:
        out.append(f"  ... and {len(status.paretoFront) - limit} more (status.json)")
    for b in status.bestTrials or []:
        out.append(f"best {b.objective} ({b.optimizeMode}): {b.name} {b.objective}={b.values[b.objective]:.6g}")
    return out


def format_final(status: ExperimentStatus, trials: list[dict[str, Any]], limit: int = 10) -> list[str]:
    """Lines saying how each final-training rerun went (spec.finalTraining), for the end of
    `autotune run`: its result is what final training is for, and one that failed or was
    stopped says why (``trials``: the trial views, which carry the message)."""
    why = {t.get("name"): t.get("message") for t in trials}
    metrics = {t.get("name"): t.get("metrics") for t in trials}
    names = [o.name for o in status.objectives or []]
    out = []
    for f in (status.finalTraining or [])[:limit]:
        m = metrics.get(f.name)
        if f.state == "SUCCEEDED" and names and isinstance(m, dict) and all(isinstance(m.get(n), (int, float)) for n in names):
            vals = " ".join(f"{n}={m[n]:.6g}" for n in names)  # each objective, as the front is printed
            out.append(f"final training: {f.name} SUCCEEDED {vals} parameters={f.parameters}")
        elif f.state == "SUCCEEDED" and f.value is not None:
            out.append(f"final training: {f.name} SUCCEEDED value={f.value:.6g} parameters={f.parameters}")
        else:
            reason = f" ({why[f.name]})" if why.get(f.name) else ""
            out.append(f"final training: {f.name} {f.state}{reason} parameters={f.parameters}")
    if len(status.finalTraining or []) > limit:
        out.append(f"final training: ... and {len(status.finalTraining or []) - limit} more (status.json)")
    return out


def write_importance(directory: Path, search_space: str | dict[str, Any], status: ExperimentStatus,
                     trials: list[dict[str, Any]]) -> list[importance.Result]:
    """importance.json: which parameters mattered (PED-ANOVA over the succeeded trials, one
    result per objective), as the web UI's importance route gives it."""
    space = parse_search_space(search_space)
    objectives = [(o.name, OptimizeMode(o.optimizeMode)) for o in status.objectives] if status.objectives else None
    results = importance.from_trials(space, trials, OptimizeMode(status.optimizeMode), objectives)
    _atomic_write(directory / "importance.json", json.dumps(importance.report(results), indent=2) + "\n")
    return results


def format_importance(results: list[importance.Result]) -> list[str]:
    """``importance (PED-ANOVA, 16 trials): learning_rate 0.71, alpha 0.22, ...`` per objective."""
    out = []
    for r in results:
        if r.trials == 0:  # nothing succeeded: the summary already says why
            continue
        about = f"{importance.METHOD}, {r.trials} trials" + (f" at budget {r.budget}" if r.budget is not None else "")
        of = f" of {r.objective}" if r.objective != "default" else ""
        out.append(f"importance{of} ({about}): {r.line()}")
    return out


def write_trials_csv(directory: Path, trials: list[dict[str, Any]]) -> None:
    tmp = directory / "trials.csv.tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(TRIAL_COLUMNS)
        for t in trials:
            duration = None
            if t.get("started") is not None and t.get("ended") is not None:
                duration = round(t["ended"] - t["started"], 3)
            w.writerow(
                [
                    t["name"],
                    t["sequence"],
                    t["state"],
                    "" if t["value"] is None else t["value"],
                    json.dumps(t["parameters"], sort_keys=True),
                    "" if t["metrics"] is None else json.dumps(t["metrics"], sort_keys=True),
                    json.dumps(t["intermediate"]),
                    "" if duration is None else duration,
                    "" if t["exitCode"] is None else t["exitCode"],
                    t["message"] or "",
                    t.get("kind", "search"),  # "final": final training
                    "" if t.get("budget") is None else t["budget"],  # epochs given by an advisor
                ]
            )
    os.replace(tmp, directory / "trials.csv")
