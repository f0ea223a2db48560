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


def test_a_rank_that_is_no_rank_of_the_world_is_named_and_said_once(monkeypatch, capsys) -> None:
    problem = autotune._env_rank_and_problem
    assert problem({"RANK": "abc", "WORLD_SIZE": "4"}) == (
        None, "WORLD_SIZE=4 but RANK='abc' is not a rank from 0 to 3: this process reports as rank 0 "
              "(every rank that does so makes the trial's curve in turn)")
    assert problem({"WORLD_SIZE": "2"})[1].startswith("WORLD_SIZE=2 but RANK=None is not a rank from 0 to 1")
    assert problem({"RANK": "4", "WORLD_SIZE": "4"})[0] is None  # out of range: not taken
    assert problem({"RANK": "-1", "WORLD_SIZE": "4"})[0] is None
    assert problem({"RANK": "3", "WORLD_SIZE": "4"}) == (3, None)
    assert problem({"RANK": "x", "WORLD_SIZE": "2", "PMI_RANK": "1", "PMI_SIZE": "2"}) == (1, None)  # another launcher's
    assert problem({"RANK": "1", "WORLD_SIZE": "1"}) == (None, None)
    monkeypatch.setitem(autotune._state, "warned", set())
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "abc")
    for var in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "HOROVOD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    assert autotune._reporting_rank() and autotune._reporting_rank()  # reports, as rank 0
    err = capsys.readouterr().err
    assert err.count("[autotune] warning: WORLD_SIZE=2 but RANK='abc' is not a rank from 0 to 1") == 1
    monkeypatch.setenv("RANK", "1")
    assert not autotune._reporting_rank() and capsys.readouterr().err == ""
