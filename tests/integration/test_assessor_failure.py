"""Assessor classArgs beyond float range. Curvefitting's epoch_num (an int: JSON has no limit)
passed the classArgs check and raised OverflowError ('int too large to convert to float') at
every assessment: each intermediate report after start_step got a 500 and the SDK ended the
trial (5cd8aa6 made the engine treat such a failure as 'no decision'; its test over HTTP used
this input, which is now refused at create; the engine rule is kept by
tests/unit/test_assessor_failure_engine.py). Float classArgs (slack_factor, threshold) that
large raised at create: a 500 naming nothing."""

from __future__ import annotations

import json

from tests.integration.conftest import ServerProcess

SPACE = json.dumps({"x": {"_type": "uniform", "_value": [0, 1]}})


def test_a_curvefitting_epoch_num_beyond_float_range_is_refused_at_create(server: ServerProcess) -> None:
    config = {"searchSpace": SPACE, "tuner": {"name": "Random"},
              "assessor": {"name": "Curvefitting", "classArgs": {"epoch_num": 10**400, "start_step": 3}}}
    with server.client() as admin:
        r = admin.put("/api/v1/experiments/cf", json={"name": "cf", "config": config})
    assert r.status_code == 422, r.text
    assert "epoch_num" in r.text and "float" in r.text.lower()


def test_a_float_class_arg_beyond_float_range_is_a_422_not_a_500(server: ServerProcess) -> None:
    for assessor in ({"name": "Bandit", "classArgs": {"slack_factor": 10**400}},
                     {"name": "Curvefitting", "classArgs": {"threshold": 10**400}}):
        config = {"searchSpace": SPACE, "tuner": {"name": "Random"}, "assessor": assessor}
        with server.client() as admin:
            r = admin.put("/api/v1/experiments/big", json={"name": "big", "config": config})
        # Before the fix: OverflowError in configure, a 500 with no word on which field.
        assert r.status_code == 422, r.text
        key = next(iter(assessor["classArgs"]))
        assert key in r.text, r.text



