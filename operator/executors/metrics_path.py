"""Local mode's per-trial metrics path (spec.metricsCollector kind File or TensorFlowEvent).

On a cluster each trial's pod has its own filesystem, so every trial writes the same
``spec.metricsCollector.path`` (``/var/log/katib/metrics.log``) apart. Local trials share
this machine's, so each gets its own path instead, under ``<output>/trials/<trial>/metrics/``,
put in place of the spec's path wherever the trial's command, args and env values hold it,
and given in ``AUTOTUNE_METRICS_PATH``.

The trial may be given a directory above the path rather than the path itself: Katib's
tf-mnist-with-summaries example passes ``--log-path=/mnist-with-summaries-logs`` and collects
``/mnist-with-summaries-logs/test``. Then that directory is the one replaced (by
``metrics/mnist-with-summaries-logs``) and the collector reads ``.../test`` below it. The
longest such path the trial is given wins.

A trial given none of these would write the spec's path itself: trials would share one file
and the collector would read another, so the run is refused (:func:`not_given_message`),
unless the command, args or env refer to ``AUTOTUNE_METRICS_PATH`` (a script reading it).

Pure functions: no I/O.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

from autotune_operator.spec import MetricsCollectorSpec

METRICS_PATH_VAR = "AUTOTUNE_METRICS_PATH"
METRICS_DIR = "metrics"  # in the trial's folder


@dataclass(frozen=True)
class PathPlan:
    """Which path the trial is given (``given``: the spec's path or a directory above it) and
    where the spec's path is below it (``rest``, "" for the path itself)."""

    given: str
    rest: str = ""

    def trial_base(self, trial_dir: Path) -> Path:
        """What the trial is given in place of ``given``."""
        name = posixpath.basename(self.given)
        return trial_dir / METRICS_DIR / (name if name not in ("", ".", "..") else "metrics")

    def trial_path(self, trial_dir: Path) -> Path:
        """The trial's own metrics file (File) or event directory (TensorFlowEvent)."""
        base = self.trial_base(trial_dir)
        return base / self.rest if self.rest else base

    def replace(self, text: str, trial_dir: Path) -> str:
        """``text`` with each occurrence of ``given`` replaced by the trial's own path."""
        base = str(self.trial_base(trial_dir))
        return _occurrences(self.given, below=not self.rest).sub(lambda _: base, text)


def _occurrences(path: str, below: bool) -> re.Pattern[str]:
    # The path as a whole path, not inside a longer one: '/logs' in '--dir=/logs' is it; in
    # '/data/logs' or '/logs2' it is not. In '/logs/train' it is (``below``) for the spec's
    # path itself (a TensorFlowEvent directory's subdirectory), but not for a directory above
    # it: '/tmp' given for '/tmp/metrics.log' must not move '--data /tmp/data'. A relative
    # path may be written with a leading './', which goes with it (else './' + an absolute path).
    lead = "" if path.startswith("/") else r"(?:\./)*"
    after = r"(?![\w.~-])" if below else r"(?![\w.~/-])"
    return re.compile(r"(?<![\w.~/-])" + lead + re.escape(path) + after)


def _ancestors(path: str) -> list[tuple[str, str]]:
    """(the path or a directory above it, the rest below it), longest first; never '/' or '.',
    nor a head ending in '..' (a normalized path's leading '..' parts): '..' in a command
    (``cd ..``) is no directory given for the path, and as one the trial's own path would be
    ``metrics/../..`` -- outside its folder, shared by every trial."""
    out = []
    head, rest = path, ""
    while head not in ("", "/", ".") and posixpath.basename(head) != "..":
        out.append((head, rest))
        head, tail = posixpath.split(head)
        rest = posixpath.join(tail, rest) if rest else tail
    return out


def plan_path(spec_path: str, command: Iterable[str], env: Mapping[str, str]) -> PathPlan | None:
    """How the trial is told where to write, or None when it is not (refuse the run)."""
    path = posixpath.normpath(spec_path)
    texts = [str(t) for t in (*command, *env.values())]
    for given, rest in _ancestors(path):
        pattern = _occurrences(given, below=not rest)
        if any(pattern.search(t) for t in texts):
            return PathPlan(given, rest)
    if any(METRICS_PATH_VAR in t for t in (*texts, *env.keys())):
        return PathPlan(path)  # the script reads $AUTOTUNE_METRICS_PATH
    return None


def not_given_message(mc: MetricsCollectorSpec, where: str) -> str:
    what = "file" if mc.kind == "File" else "directory"
    return (f"spec.metricsCollector.path '{mc.path}' (or a directory above it) appears in neither the command, "
            f"args nor env of {where}: local trials run side by side on this machine, so each writes its own "
            f"{what} (trials/<trial>/{METRICS_DIR}/...), which autotune puts in place of that path where the trial "
            f"is given it. Pass the path to the script (e.g. args: [--metrics-path, {mc.path}]), or have the script "
            f"read the environment variable {METRICS_PATH_VAR} and list it in env "
            f"(- {{name: {METRICS_PATH_VAR}, value: {mc.path}}})")
