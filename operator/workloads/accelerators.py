"""Scheduling for accelerators: tolerations and node selectors from the resources asked for.

A pod that asks for ``nvidia.com/gpu``, ``amd.com/gpu`` or a Huawei Ascend NPU
(``huawei.com/Ascend910`` / ``Ascend310`` / ``Ascend310P``) gets a toleration for the taint
such nodes usually carry (key = resource name, operator Exists, effect NoSchedule) and, when
the policy names one, a node selector. The user's own tolerations and nodeSelector are kept
and win on conflicts.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any, Mapping

ACCELERATORS = (
    "nvidia.com/gpu",
    "amd.com/gpu",
    "huawei.com/Ascend910",
    "huawei.com/Ascend310",
    "huawei.com/Ascend310P",
)

# Node labels the usual device plugins / operators put on accelerator nodes. NVIDIA's GPU
# feature discovery labels nvidia.com/gpu.product with a model name, so no fixed selector
# fits every GPU node: the resource request alone places the pod.
DEFAULT_NODE_SELECTORS: dict[str, dict[str, str]] = {
    "huawei.com/Ascend910": {"accelerator": "huawei-Ascend910"},
    "huawei.com/Ascend310": {"accelerator": "huawei-Ascend310"},
    "huawei.com/Ascend310P": {"accelerator": "huawei-Ascend310P"},
}


@dataclass(frozen=True)
class AcceleratorPolicy:
    tolerate: bool = True
    node_selectors: Mapping[str, Mapping[str, str]] = field(default_factory=lambda: dict(DEFAULT_NODE_SELECTORS))


def parse_node_selectors(text: str) -> dict[str, dict[str, str]]:
    """The operator setting AUTOTUNE_ACCELERATOR_NODE_SELECTORS: a JSON object of resource name
    -> node labels, e.g. {"huawei.com/Ascend910": {"accelerator": "huawei-Ascend910"}}. A label
    value written as a number or boolean (the Helm chart's values.yaml: accelerator: true) is
    that text ("true", "1"), as a label holds it; any other shape is refused naming the entry
    (it would otherwise fail every accelerator trial: a string where labels belong broke the
    build, a number made every trial's workload invalid)."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"is not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"must be a JSON object of resource name -> {{label: value}}, not {type(doc).__name__}")
    out: dict[str, dict[str, str]] = {}
    for resource, labels in doc.items():
        if not isinstance(labels, dict):
            raise ValueError(f"{resource!r} must map to an object of node labels ({{\"accelerator\": \"...\"}}), "
                             f"not {json.dumps(labels)}")
        out[resource] = {}
        for key, value in labels.items():
            if isinstance(value, (dict, list)) or value is None:
                raise ValueError(f"{resource!r}: label {key!r} must have a text value, not {json.dumps(value)}")
            out[resource][key] = value if isinstance(value, str) else json.dumps(value)
    return out


def requested(pod_spec: Mapping[str, Any]) -> list[str]:
    """The accelerator resources any container asks for (limits or requests > 0), in order."""
    found: list[str] = []
    for c in list(pod_spec.get("containers") or []) + list(pod_spec.get("initContainers") or []):
        res = c.get("resources") or {}
        for section in ("limits", "requests"):
            for name, qty in (res.get(section) or {}).items():
                if name in ACCELERATORS and name not in found and str(qty) not in ("0", ""):
                    found.append(name)
    return found


def apply_accelerators(pod_spec: Mapping[str, Any], policy: AcceleratorPolicy) -> dict[str, Any]:
    spec = copy.deepcopy(dict(pod_spec))
    wanted = requested(spec)
    if not wanted:
        return spec
    if policy.tolerate:
        tolerations = list(spec.get("tolerations") or [])
        have = {t.get("key") for t in tolerations}
        for name in wanted:
            if name not in have:
                tolerations.append({"key": name, "operator": "Exists", "effect": "NoSchedule"})
        spec["tolerations"] = tolerations
    selector: dict[str, str] = {}
    for name in wanted:
        selector.update(policy.node_selectors.get(name) or {})
    if selector:
        spec["nodeSelector"] = {**selector, **(spec.get("nodeSelector") or {})}
    return spec
