"""What every source format's converter shares: the result type, the error, and small
parsers (numbers written as strings, NNI durations, Kubernetes names).

Converters are pure functions from a parsed document to a :class:`Conversion`; reading
files and printing belong to ``command.py``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from autotune_operator.spec import API_GROUP, API_VERSION, KIND, MAX_NAME_CHARS, NAME_RE

API = f"{API_GROUP}/{API_VERSION}"
# The operator annotation that pins the trial workload kind (operator/runtime.py): a Katib
# trial that was a batch Job stays a batch Job, a PyTorchJob stays a Kubeflow PyTorchJob.
WORKLOAD_KIND_ANNOTATION = "autotune.tensorstack.dev/workload-kind"
# A search-space key usable in ${parameters.NAME} (operator/spec.py PLACEHOLDER, no '.',
# which would read as a nested parameter).
PARAM_NAME = re.compile(r"^[A-Za-z0-9_\-]+$")


class ConvertError(ValueError):
    """The input is not something the converter understands. ``field`` names where."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}" if field else message)


@dataclass
class Conversion:
    """An AutoTuneExperiment manifest and one line per thing not carried over exactly,
    each naming the source field and what was done."""

    manifest: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    source: str = ""  # "katib" | "nni" | "azure"


def number(value: Any, where: str) -> int | float:
    """A number that Katib writes as a string ("0.01") and YAML may give as either."""
    if isinstance(value, bool):
        raise ConvertError(where, f"must be a number, got {value!r}")
    if isinstance(value, (int, float)):
        out: int | float = value
    elif isinstance(value, str):
        text = value.strip()
        try:
            out = int(text)
        except ValueError:
            try:
                out = float(text)
            except ValueError:
                raise ConvertError(where, f"must be a number, got {value!r}") from None
    else:
        raise ConvertError(where, f"must be a number, got {value!r}")
    if isinstance(out, float) and not math.isfinite(out):
        raise ConvertError(where, f"must be a finite number, got {value!r}")
    return out


def integer(value: Any, where: str) -> int:
    v = number(value, where)
    if isinstance(v, float):
        if not v.is_integer():
            raise ConvertError(where, f"must be an integer, got {value!r}")
        return int(v)
    return v


def tidy(x: float) -> int | float:
    """min + k*step without binary noise (0.30000000000000004 -> 0.3); ints stay ints."""
    if isinstance(x, int):
        return x
    r = round(x, 12)
    return int(r) if r.is_integer() and abs(r) < 2**53 else r


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*([smhd]?)\s*$", re.IGNORECASE)  # NNI lowercases first
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def duration_seconds(value: Any, where: str) -> int:
    """NNI's ``number + s|m|h|d`` ("1h", "30m", "0.5h"), a plain number being seconds;
    rounded up to whole seconds (a limit must not become shorter)."""
    if isinstance(value, bool):
        raise ConvertError(where, f"must be a duration like '1h' or '30m', got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _UNIT[m.group(2).lower()]
    else:
        raise ConvertError(where, f"must be a duration like '1h', '30m' or '0.5h' (number + s|m|h|d), got {value!r}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConvertError(where, f"must be a positive duration, got {value!r}")
    return max(1, math.ceil(seconds - 1e-9))


def k8s_name(raw: str) -> str:
    """A lowercase RFC 1123 name close to ``raw`` ("MNIST example" -> "mnist-example")."""
    name = re.sub(r"[^a-z0-9.-]+", "-", raw.strip().lower())
    name = re.sub(r"-{2,}", "-", name).strip("-.")[:MAX_NAME_CHARS].strip("-.")
    return name or "experiment"


def valid_name(name: str) -> bool:
    return bool(NAME_RE.match(name)) and len(name) <= MAX_NAME_CHARS


def mapping(doc: Any, where: str, required: bool = False) -> dict[str, Any]:
    if doc is None:
        if required:
            raise ConvertError(where, "is required")
        return {}
    if not isinstance(doc, Mapping):
        raise ConvertError(where, f"must be a mapping, got {type(doc).__name__}")
    return dict(doc)


def manifest(name: str, spec: dict[str, Any], namespace: str | None = None, labels: Mapping[str, Any] | None = None,
             annotations: Mapping[str, Any] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = dict(labels)
    if annotations:
        meta["annotations"] = dict(annotations)
    return {"apiVersion": API, "kind": KIND, "metadata": meta, "spec": spec}
