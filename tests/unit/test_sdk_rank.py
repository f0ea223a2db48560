"""Which process of a distributed trial records metrics: the SDK reads the launcher's rank and
world size (torchrun/PyTorchJob, Open MPI, MPICH, Horovod); only rank 0 reports."""

from __future__ import annotations

import autotune


def test_the_rank_comes_from_the_launchers_variables_with_more_than_one_process() -> None:
    rank = autotune._env_rank
    assert rank({}) is None
    assert rank({"RANK": "3", "WORLD_SIZE": "4"}) == 3
    assert rank({"RANK": "0", "WORLD_SIZE": "4"}) == 0
    assert rank({"RANK": "1"}) is None  # no world size: not taken as a distributed run
    assert rank({"RANK": "1", "WORLD_SIZE": "1"}) is None
    assert rank({"OMPI_COMM_WORLD_RANK": "2", "OMPI_COMM_WORLD_SIZE": "8"}) == 2
    assert rank({"PMI_RANK": "1", "PMI_SIZE": "2"}) == 1
    assert rank({"HOROVOD_RANK": "5", "HOROVOD_SIZE": "6"}) == 5
    assert rank({"RANK": "x", "WORLD_SIZE": "2", "PMI_RANK": "1", "PMI_SIZE": "2"}) == 1  # not a number: next


def test_the_session_is_one_per_process_and_sent_as_a_header_the_server_reads() -> None:
    from tuner_server.report_session import HEADER, check_session

    assert autotune._SESSION_HEADER == HEADER
    assert check_session(autotune._SESSION) == autotune._SESSION
