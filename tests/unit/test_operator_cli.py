"""`autotune operator` / `python -m autotune_operator`: flags stand for the AUTOTUNE_* variables."""

from __future__ import annotations

import argparse

import pytest

from autotune_operator.__main__ import FLAG_ENV, add_arguments, environment
from autotune_operator.runtime import Settings


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_arguments(p)
    return p.parse_args(list(argv))


def test_flags_override_the_environment_and_unset_flags_keep_it():
    base = {"AUTOTUNE_ADMIN_TOKEN": "tok", "AUTOTUNE_NAMESPACES": "from-env", "AUTOTUNE_SERVER_URL": "http://env:1"}
    env = environment(parse("--namespaces", "a,b", "--workload-kind", "job", "--resync-seconds", "0.5"), base)
    s = Settings.from_env(env)
    assert s.namespaces == ("a", "b") and s.workload_kind == "job" and s.resync_seconds == 0.5
    assert s.server_url == "http://env:1" and s.admin_token == "tok"
    assert base["AUTOTUNE_NAMESPACES"] == "from-env", "the caller's environment is not modified"


def test_keep_stopped_pods_is_a_flag_too():
    """AUTOTUNE_KEEP_STOPPED_PODS (cd48a08) had no flag, though every setting may be one."""
    base = {"AUTOTUNE_ADMIN_TOKEN": "tok"}
    assert Settings.from_env(environment(parse("--no-keep-stopped-pods"), base)).keep_stopped_pods is False
    assert Settings.from_env(environment(parse("--keep-stopped-pods"), {**base, "AUTOTUNE_KEEP_STOPPED_PODS": "false"}
                                         )).keep_stopped_pods is True
    assert Settings.from_env(environment(parse(), base)).keep_stopped_pods is True


def test_every_flag_names_a_variable_settings_or_the_entry_point_reads():
    p = argparse.ArgumentParser()
    add_arguments(p)
    dests = {a.dest for a in p._actions if a.dest != "help"}
    assert dests == set(FLAG_ENV)


def test_autotune_cli_has_the_operator_subcommand(capsys):
    from autotune_operator.cli import main

    with pytest.raises(SystemExit) as e:
        main(["operator", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "--namespaces" in out and "AUTOTUNE_SERVER_URL" in out
