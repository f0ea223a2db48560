"""MLflow's per-request batch limits, AutoTune's per-run caps on params, tags and metric values,
and MLflow's refusal of a changed param (the pure checks in tuner_server/mlflow_runs.py; over
HTTP in tests/integration/test_body_limits.py and tests/integration/test_mlflow_run_limits.py)."""

from __future__ import annotations

import pytest

from tuner_server.mlflow_runs import (
    MAX_ENTITIES_PER_BATCH, MAX_METRIC_VALUES_PER_RUN, MAX_METRICS_PER_BATCH, MAX_PARAMS_TAGS_PER_BATCH, MlflowError,
    changed, check_batch, check_metric_room, check_params_unchanged, check_room,
)


def test_mlflow_documented_batch_limits() -> None:
    assert (MAX_METRICS_PER_BATCH, MAX_PARAMS_TAGS_PER_BATCH, MAX_ENTITIES_PER_BATCH) == (1000, 100, 1000)


@pytest.mark.parametrize("counts", [(0, 0, 0), (1000, 0, 0), (0, 100, 100), (800, 100, 100)])
def test_batches_within_the_limits_pass(counts: tuple[int, int, int]) -> None:
    check_batch(*counts)


@pytest.mark.parametrize("counts, what, limit, n", [
    ((1001, 0, 0), "metrics", 1000, 1001),
    ((0, 101, 0), "params", 100, 101),
    ((0, 0, 101), "tags", 100, 101),
    ((801, 100, 100), "metrics, params and tags together", 1000, 1001),
])
def test_batches_over_a_limit_are_invalid_parameter_values(counts: tuple[int, int, int], what: str, limit: int, n: int) -> None:
    with pytest.raises(MlflowError) as e:
        check_batch(*counts)
    assert (e.value.status, e.value.code) == (400, "INVALID_PARAMETER_VALUE")
    assert f"at most {limit} {what}, this one has {n}" in e.value.message


def test_changed_leaves_out_what_is_kept_with_the_same_value() -> None:
    assert changed({"a": "1", "b": "2"}, {"a": "1", "b": "3", "c": "4"}) == {"b": "3", "c": "4"}
    assert changed({"a": "1"}, {"a": "1"}) == {}


def test_check_room_counts_only_new_keys() -> None:
    kept = {f"k{i}": "v" for i in range(3)}
    check_room("param", kept, {"k0": "w", "k1": "w", "k9": "v"}, cap=4, run_id="r")  # 1 new: 4 in all
    check_room("param", kept, {"k0": "changed"}, cap=3, run_id="r")  # at the cap: changing a kept key is fine
    with pytest.raises(MlflowError) as e:
        check_room("tag", kept, {"k0": "v", "n1": "v", "n2": "v"}, cap=4, run_id="trial_1")
    assert e.value.code == "INVALID_PARAMETER_VALUE"
    assert "run 'trial_1' has 3 tags and this request adds 2 new ones (first: 'n1')" in e.value.message
    assert "at most 4 tags per run" in e.value.message


def test_a_param_logged_again_with_its_value_passes_and_with_another_is_refused() -> None:
    kept = {"lr": "0.1", "depth": "3"}
    check_params_unchanged(kept, {"lr": "0.1", "new": "x"}, run_id="r")  # the same value, a new key: fine
    with pytest.raises(MlflowError) as e:
        check_params_unchanged(kept, {"depth": "3", "lr": "0.2"}, run_id="trial_1")
    assert (e.value.status, e.value.code) == (400, "INVALID_PARAMETER_VALUE")
    assert "param 'lr' was logged with value '0.1', this request logs '0.2'" in e.value.message
    assert "run 'trial_1'" in e.value.message and "depth" not in e.value.message


def test_many_changed_params_name_the_first_three_and_count_the_rest() -> None:
    kept = {f"p{i}": "a" for i in range(5)}
    with pytest.raises(MlflowError) as e:
        check_params_unchanged(kept, {f"p{i}": "b" for i in range(5)}, run_id="r")
    assert "'p0'" in e.value.message and "'p2'" in e.value.message and "'p3'" not in e.value.message
    assert "(and 2 more)" in e.value.message


def test_metric_values_cap_is_a_resource_limit_naming_the_run_and_the_limit() -> None:
    assert MAX_METRIC_VALUES_PER_RUN == 1_000_000
    check_metric_room(999_000, 1000, run_id="r")  # exactly at the cap
    with pytest.raises(MlflowError) as e:
        check_metric_room(999_000, 1001, run_id="trial_7")
    assert (e.value.status, e.value.code) == (400, "RESOURCE_LIMIT_EXCEEDED")
    assert "run 'trial_7' has 999000 metric values and this request adds 1001" in e.value.message
    assert "at most 1000000 metric values per run" in e.value.message
    with pytest.raises(MlflowError):
        check_metric_room(10, 1, run_id="r", cap=10)
