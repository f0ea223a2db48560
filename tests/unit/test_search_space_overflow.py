"""A q so small for its range that high/q overflows a float is refused naming the parameter:
it crashed spec validation (and the tuner server's PUT) with OverflowError while counting
the grid (quniform_count: round(inf))."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from autotune_operator.spec import SpecError, validate_manifest

SEED = yaml.safe_load((Path(__file__).resolve().parents[1] / "fixtures" / "seed-001-example.yaml").read_text())


@pytest.mark.parametrize("t,value", [("quniform", [0, 1e300, 1e-300]), ("qloguniform", [1, 1e300, 1e-300]),
                                     ("quniform", [-1e300, 0, 1e-300])])
def test_a_grid_step_too_small_for_its_range_is_refused(t: str, value: list[float]) -> None:
    doc = copy.deepcopy(SEED)
    doc["spec"]["searchSpace"] = json.dumps({"a": {"_type": t, "_value": value}})
    with pytest.raises(SpecError) as e:
        validate_manifest(doc)
    assert e.value.problems == [f"spec.searchSpace parameter 'a': {t} q={value[2]!r} is too small for its range "
                                f"(high/q or low/q overflows a float)"]


def test_a_small_step_that_fits_is_accepted() -> None:
    doc = copy.deepcopy(SEED)
    doc["spec"]["searchSpace"] = json.dumps({"a": {"_type": "quniform", "_value": [0, 1e10, 1e-290]}})
    assert validate_manifest(doc).space.cardinality() is not None
