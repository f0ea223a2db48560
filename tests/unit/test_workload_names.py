"""Training job names (workloads/names.py): every replica Service name a training operator
derives, <job>-<type>-<index>, is a DNS-1035 label; names stay the trial's when they can.
(tests/e2e/test_operator_training_jobs.py has the real kube-apiserver accept them.)"""

from __future__ import annotations

import re

import pytest

from autotune_operator.workloads.names import DNS1035, training_job_name, workload_name

ROLES = [("chief", 1), ("ps", 2), ("worker", 100), ("evaluator", 12)]


@pytest.mark.parametrize("trial", [
    "a" * 47 + "-final-123456789", "a" * 47 + "-1", "dotted.name-7", "1st-try-1", "9" * 40 + ".x.x.x-final-2",
    "a.b-1", "a-b-1",
])
def test_every_replica_service_name_is_a_dns1035_label(trial: str) -> None:
    job = training_job_name(trial, ROLES)
    for rtype, n in ROLES:
        service = f"{job}-{rtype}-{n - 1}"
        assert DNS1035.match(service) and len(service) <= 63, service
    assert training_job_name(trial, ROLES) == job  # the same every time: a restarted operator finds it


def test_a_valid_name_is_kept_and_others_stay_readable_and_distinct() -> None:
    assert training_job_name("exp-12", ROLES) == "exp-12"
    assert training_job_name("a" * 47 + "-1", [("worker", 3)]) == "a" * 47 + "-1"  # 58 characters: fits
    dotted, dashed = training_job_name("a.b-1", ROLES), training_job_name("a-b-1", ROLES)
    assert dashed == "a-b-1" and dotted != dashed and re.fullmatch(r"a-b-1-[0-9a-f]{8}", dotted)
    assert re.fullmatch(r"t-1st-try-1-[0-9a-f]{8}", training_job_name("1st-try-1", ROLES))
    long_a, long_b = (training_job_name("a" * 47 + f"-final-12345678{d}", ROLES) for d in "01")
    assert long_a != long_b


def test_a_batch_job_keeps_the_trials_name() -> None:
    assert workload_name("job", "dotted.name-final-3", ROLES) == "dotted.name-final-3"
    assert workload_name("kubeflow", "dotted.name-final-3", ROLES) != "dotted.name-final-3"
